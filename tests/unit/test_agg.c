/* Unit tests: agg (calendar periods, windowed incremental aggregates, ageing out, merges,
 * serialization). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "kith/agg.h"

#define H 3600000LL
#define D 86400000LL

static int64_t T(const char *s)
{
    int64_t ms = 0;
    assert_int_equal(kith_time_parse(s, &ms), 0);
    return ms;
}

static void test_periods(void **state)
{
    (void)state;
    /* Hours and days. */
    assert_int_equal(agg_period_start(AGG_HOURS, agg_period_of(AGG_HOURS, T("2024-03-10T13:45:00Z"))),
                     T("2024-03-10T13:00:00Z"));
    assert_int_equal(agg_period_start(AGG_DAYS, agg_period_of(AGG_DAYS, T("2024-03-10T13:45:00Z"))),
                     T("2024-03-10T00:00:00Z"));
    /* Weeks start on Sunday: 2023-10-15 was a Sunday, 2023-10-21 a Saturday. */
    int64_t w = agg_period_of(AGG_WEEKS, T("2023-10-21T23:59:59Z"));
    assert_int_equal(agg_period_start(AGG_WEEKS, w), T("2023-10-15T00:00:00Z"));
    assert_int_equal(agg_period_of(AGG_WEEKS, T("2023-10-22T00:00:00Z")), w + 1);
    /* Months are calendar months, leap years included; before the epoch too. */
    int64_t m = agg_period_of(AGG_MONTHS, T("2024-02-29T12:00:00Z"));
    assert_int_equal(agg_period_start(AGG_MONTHS, m), T("2024-02-01T00:00:00Z"));
    assert_int_equal(agg_period_start(AGG_MONTHS, m + 1), T("2024-03-01T00:00:00Z"));
    assert_int_equal(agg_period_start(AGG_MONTHS, m - 2), T("2023-12-01T00:00:00Z"));
    assert_int_equal(agg_period_of(AGG_MONTHS, T("1969-12-31T23:00:00Z")), -1);
    assert_int_equal(agg_period_start(AGG_MONTHS, -1), T("1969-12-01T00:00:00Z"));
    /* AEP's example: a 2-week window evaluated on 15 Oct covers 1-15 Oct. */
    agg_window w2 = {AGG_WEEKS, 2};
    assert_int_equal(agg_window_start(w2, T("2023-10-15T10:00:00Z")), T("2023-10-01T00:00:00Z"));
    assert_int_equal(agg_window_start(w2, T("2023-10-22T10:00:00Z")), T("2023-10-08T00:00:00Z"));
}

static void test_sum_count_min_max(void **state)
{
    (void)state;
    agg_state s;
    agg_init(&s, (agg_window){AGG_DAYS, 7});
    int64_t now = T("2024-05-20T12:00:00Z");
    assert_true(agg_add(&s, now - 1 * H, true, 10, NULL, 0, now));
    assert_true(agg_add(&s, now - 2 * D, true, -4.5, NULL, 0, now));
    assert_true(agg_add(&s, now - 3 * D, false, 0, NULL, 0, now)); /* counted, not numeric */
    assert_true(agg_add(&s, now - 6 * D, true, 100, NULL, 0, now));
    /* Older than the window: ignored. */
    assert_false(agg_add(&s, T("2024-05-12T23:59:59Z"), true, 1000, NULL, 0, now));
    agg_result r;
    agg_read(&s, now, &r);
    assert_int_equal(r.count, 4);
    assert_int_equal(r.nnum, 3);
    assert_true(r.sum == 105.5);
    assert_true(r.min == -4.5);
    assert_true(r.max == 100);
    /* The oldest bucket (14 May) leaves when the window starts on 15 May: 22 May 00:00. */
    assert_int_equal(r.next_change, T("2024-05-22T00:00:00Z"));
    agg_free(&s);
}

static void test_ageing_out(void **state)
{
    (void)state;
    agg_state s;
    agg_init(&s, (agg_window){AGG_HOURS, 1});
    int64_t t0 = T("2024-05-20T10:10:00Z");
    agg_add(&s, t0, true, 5, NULL, 0, t0);
    agg_add(&s, t0 + H, true, 7, NULL, 0, t0 + H); /* 11:10 */
    agg_result r;
    agg_read(&s, t0 + H, &r);
    assert_int_equal(r.count, 2);
    assert_int_equal(r.next_change, T("2024-05-20T12:00:00Z"));
    /* At 12:00 the 10:xx bucket is out, with no new data. */
    agg_read(&s, T("2024-05-20T12:00:00Z"), &r);
    assert_int_equal(r.count, 1);
    assert_true(r.sum == 7 && r.min == 7 && r.max == 7);
    assert_int_equal(r.next_change, T("2024-05-20T13:00:00Z"));
    agg_read(&s, T("2024-05-20T13:00:00Z"), &r);
    assert_int_equal(r.count, 0);
    assert_int_equal(r.nnum, 0);
    assert_int_equal(r.next_change, INT64_MAX);
    /* Pruning drops the buckets themselves. */
    agg_prune(&s, T("2024-05-20T13:00:00Z"));
    assert_int_equal(s.n, 0);
    agg_free(&s);
}

static void test_most_recent(void **state)
{
    (void)state;
    agg_state s;
    agg_init(&s, (agg_window){AGG_MONTHS, 6});
    int64_t now = T("2024-05-20T12:00:00Z");
    agg_add(&s, now - 30 * D, false, 0, "\"b\"", 3, now);
    agg_add(&s, now - 40 * D, false, 0, "\"a\"", 3, now); /* older: not the most recent */
    agg_result r;
    agg_read(&s, now, &r);
    assert_int_equal(r.last_ts, now - 30 * D);
    assert_memory_equal(r.last, "\"b\"", 3);
    /* A tie goes to the later call. */
    agg_add(&s, now - 30 * D, false, 0, "\"c\"", 3, now);
    agg_read(&s, now, &r);
    assert_memory_equal(r.last, "\"c\"", 3);
    /* Too long a value is refused. */
    char *big = calloc(1, AGG_LAST_MAX + 1);
    assert_false(agg_add(&s, now, false, 0, big, AGG_LAST_MAX + 1, now));
    free(big);
    agg_free(&s);
}

static void test_merge(void **state)
{
    (void)state;
    agg_window w = {AGG_DAYS, 3};
    int64_t now = T("2024-05-20T12:00:00Z");
    agg_state a, b, all;
    agg_init(&a, w);
    agg_init(&b, w);
    agg_init(&all, w);
    double va[] = {1, 2, 3}, vb[] = {10, -20};
    int64_t ta[] = {now - D, now - 2 * D, now}, tb[] = {now - D, now - 3 * D};
    for (int i = 0; i < 3; i++) {
        agg_add(&a, ta[i], true, va[i], "\"a\"", 3, now);
        agg_add(&all, ta[i], true, va[i], "\"a\"", 3, now);
    }
    for (int i = 0; i < 2; i++) {
        agg_add(&b, tb[i], true, vb[i], "\"b\"", 3, now);
        agg_add(&all, tb[i], true, vb[i], "\"b\"", 3, now);
    }
    agg_merge(&a, &b);
    agg_result r1, r2;
    agg_read(&a, now, &r1);
    agg_read(&all, now, &r2);
    assert_int_equal(r1.count, 5);
    assert_int_equal(r1.count, r2.count);
    assert_true(r1.sum == r2.sum && r1.sum == -4);
    assert_true(r1.min == -20 && r1.max == 10);
    assert_int_equal(r1.last_ts, now);
    assert_memory_equal(r1.last, "\"a\"", 3);
    assert_int_equal(r1.next_change, r2.next_change);
    agg_free(&a);
    agg_free(&b);
    agg_free(&all);
}

static void test_future_buckets_capped(void **state)
{
    (void)state;
    agg_state s;
    agg_init(&s, (agg_window){AGG_HOURS, 1});
    int64_t now = T("2024-05-20T12:00:00Z");
    for (int i = 0; i < AGG_MAX_BUCKETS + 20; i++)
        agg_add(&s, now + i * H, true, 1, NULL, 0, now);
    assert_int_equal(s.n, AGG_MAX_BUCKETS);
    agg_result r;
    agg_read(&s, now, &r);
    assert_int_equal(r.count, AGG_MAX_BUCKETS + 20); /* nothing lost */
    agg_free(&s);
}

static void test_encode_decode(void **state)
{
    (void)state;
    agg_state s, d;
    agg_init(&s, (agg_window){AGG_WEEKS, 4});
    int64_t now = T("2024-05-20T12:00:00Z");
    agg_add(&s, now - 10 * D, true, 2.5, "[1,2]", 5, now);
    agg_add(&s, now - 1 * D, true, 7, NULL, 0, now);
    kith_buf b = {0};
    agg_encode(&s, &b);
    size_t used = 0;
    assert_int_equal(agg_decode(&d, b.data, b.len, &used), 0);
    assert_int_equal(used, b.len);
    assert_int_equal(d.w.unit, AGG_WEEKS);
    assert_int_equal(d.w.count, 4);
    agg_result r1, r2;
    agg_read(&s, now, &r1);
    agg_read(&d, now, &r2);
    assert_int_equal(r1.count, r2.count);
    assert_true(r1.sum == r2.sum && r1.min == r2.min && r1.max == r2.max);
    assert_int_equal(r1.last_ts, r2.last_ts);
    /* Truncated or garbled input is refused, never read past its end. */
    for (size_t cut = 0; cut < b.len; cut++) {
        agg_state x;
        int rc = agg_decode(&x, b.data, cut, NULL);
        if (rc == 0) agg_free(&x);
        else assert_int_equal(rc, KITH_EINVAL);
    }
    /* A count-only state keeps 2 bytes per bucket after the first. */
    agg_state c;
    agg_init(&c, (agg_window){AGG_HOURS, 24});
    c.keep = 0;
    for (int i = 0; i < 24; i++)
        agg_add(&c, now - i * H, true, 1.5, "\"x\"", 3, now);
    kith_buf cb = {0};
    agg_encode(&c, &cb);
    assert_true(cb.len <= 10 + 24 * 2); /* header, first period, then 2 bytes a bucket */
    agg_state c2;
    assert_int_equal(agg_decode(&c2, cb.data, cb.len, NULL), 0);
    agg_read(&c2, now, &r2);
    assert_int_equal(r2.count, 24);
    assert_int_equal(r2.last_ts, INT64_MIN);
    kith_buf_free(&cb);
    agg_free(&c);
    agg_free(&c2);
    agg_free(&d);
    ((uint8_t *)b.data)[0] = 9;
    assert_int_equal(agg_decode(&d, b.data, b.len, NULL), KITH_EINVAL);
    kith_buf_free(&b);
    agg_free(&s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_periods),           cmocka_unit_test(test_sum_count_min_max),
        cmocka_unit_test(test_ageing_out),        cmocka_unit_test(test_most_recent),
        cmocka_unit_test(test_merge),             cmocka_unit_test(test_future_buckets_capped),
        cmocka_unit_test(test_encode_decode),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
