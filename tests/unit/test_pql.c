/* PQL API tests that are not data: budgets, evaluator reuse, explain, deps for the streaming index,
 * concurrency-free reuse of one program by several evaluators. The language itself is tested by
 * the golden files (test_pql_golden.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "kith/pql.h"

static pql_program *compile_ok(const char *s)
{
    pql_program *p = NULL;
    pql_error err;
    int rc = pql_compile(s, strlen(s), NULL, &p, &err);
    if (rc) fail_msg("%s: %d:%d %s", s, err.line, err.column, err.message);
    return p;
}

static json_t *many_events(int n, int64_t start_ms)
{
    json_t *a = json_array();
    for (int i = 0; i < n; i++) {
        char ts[40];
        kith_time_format(start_ms + (int64_t)i * 60000, ts, sizeof ts);
        json_array_append_new(a, json_pack("{s:s, s:s, s:{s:s}}", "timestamp", ts, "eventType",
                                           i % 2 ? "advertising.impressions" : "commerce.purchases",
                                           "_acme", "campaignId", i % 3 ? "c-101" : "c-102"));
    }
    return a;
}

static void test_step_budget(void **state)
{
    (void)state;
    pql_program *p = compile_ok("(select A from xEvent, B from xEvent, C from xEvent where "
                                "C.eventType = \"none\").count() > 0");
    json_t *ev_json = many_events(200, 1715000000000LL);
    pql_limits lim = {.max_steps = 100000};
    pql_evaluator *ev = pql_evaluator_new(&lim);
    pql_input in = {.events = ev_json, .now_ms = 1715169600000LL};
    pql_result res;
    assert_int_equal(pql_eval(ev, p, &in, &res), KITH_EBUSY);
    assert_false(res.match);
    /* the evaluator is reusable after a budget failure */
    pql_program *q = compile_ok("xEvent.count() = 200");
    assert_int_equal(pql_eval(ev, q, &in, &res), 0);
    assert_true(res.match);
    pql_program_free(p);
    pql_program_free(q);
    pql_evaluator_free(ev);
    json_decref(ev_json);
}

static void test_scratch_budget(void **state)
{
    (void)state;
    pql_program *p = compile_ok("xEvent.eventType.distinct().count() = 2");
    json_t *ev_json = many_events(100, 1715000000000LL);
    pql_limits lim = {.max_scratch = 50};
    pql_evaluator *ev = pql_evaluator_new(&lim);
    pql_input in = {.events = ev_json, .now_ms = 1715169600000LL};
    pql_result res;
    assert_int_equal(pql_eval(ev, p, &in, &res), KITH_EBUSY);
    pql_evaluator_free(ev);
    ev = pql_evaluator_new(NULL);
    assert_int_equal(pql_eval(ev, p, &in, &res), 0);
    assert_true(res.match);
    pql_evaluator_free(ev);
    pql_program_free(p);
    json_decref(ev_json);
}

static void test_explain_and_deps(void **state)
{
    (void)state;
    pql_program *p =
        compile_ok("xEvent[eventType = \"advertising.impressions\" and timestamp occurs "
                   "<= 30 minutes before now]._acme.campaignId.distinct().count() >= 3");
    kith_buf b = {0};
    pql_explain(p, &b);
    kith_buf_append(&b, "", 1);
    assert_non_null(strstr(b.data, "FILTER"));
    assert_non_null(strstr(b.data, "OCCURS"));
    assert_non_null(strstr(b.data, "linear"));
    assert_non_null(strstr(b.data, "DISTINCT"));
    kith_buf_free(&b);
    const pql_deps *d = pql_program_deps(p);
    assert_int_equal(d->n_event_types, 1);
    assert_string_equal(d->event_types[0], "advertising.impressions");
    assert_int_equal(d->lookback_ms, 30 * 60000);
    assert_true(d->reads_events);
    assert_true(d->uses_now);
    assert_int_equal(d->mode, PQL_MODE_STREAMING);
    assert_int_equal(d->n_event_fields, 3);
    pql_program_free(p);
}

static void test_too_large(void **state)
{
    (void)state;
    size_t n = 70000;
    char *s = malloc(n);
    memset(s, '(', n);
    pql_program *p;
    pql_error err;
    assert_int_equal(pql_compile(s, n, NULL, &p, &err), KITH_ETOOLARGE);
    assert_null(p);
    assert_int_not_equal(pql_compile(s, 200, NULL, &p, &err), 0);
    assert_null(p);
    /* A long run of unary minus nests as deep (found by fuzz_pql: the checker overflowed the stack). */
    memset(s, '-', 500);
    s[500] = '1';
    assert_int_not_equal(pql_compile(s, 501, NULL, &p, &err), 0);
    assert_null(p);
    assert_non_null(strstr(err.message, "64 levels"));
    assert_int_equal(pql_compile(s + 500 - 3, 4, NULL, &p, &err), 0); /* ---1 */
    pql_program_free(p);
    /* A chain of binary operators nests the tree one level per operand: 30,000 of them overflowed
     * the compiler's stack; an expression holds at most 4,096. */
    for (int ops = 4096; ops <= 30000; ops += 30000 - 4096) {
        size_t len = 0;
        s[len++] = '1';
        for (int i = 0; i < ops; i++)
            memcpy(s + len, "+1", 2), len += 2;
        memcpy(s + len, " > 3", 4), len += 4;
        int rc = pql_compile(s, len, NULL, &p, &err);
        if (ops == 4096) {
            assert_int_equal(rc, 0);
            pql_program_free(p);
        } else {
            assert_int_not_equal(rc, 0);
            assert_null(p);
            assert_non_null(strstr(err.message, "4096 binary operators"));
        }
    }
    /* '^' climbs one enclosing scope each: more than 64 is refused (pql/json cannot say it) */
    memset(s, '^', 65);
    memcpy(s + 65, "x", 1);
    assert_int_not_equal(pql_compile(s, 66, NULL, &p, &err), 0);
    assert_non_null(strstr(err.message, "at most 64 '^'"));
    free(s);
}

static void test_many_evaluations_share_a_program(void **state)
{
    (void)state;
    pql_program *p = compile_ok("xEvent[eventType = \"commerce.purchases\"].count() > 10");
    pql_evaluator *a = pql_evaluator_new(NULL), *b = pql_evaluator_new(NULL);
    json_t *e1 = many_events(30, 1715000000000LL), *e2 = many_events(10, 1715000000000LL);
    pql_input i1 = {.events = e1, .now_ms = 1715169600000LL},
              i2 = {.events = e2, .now_ms = 1715169600000LL};
    pql_result r;
    for (int k = 0; k < 100; k++) {
        assert_int_equal(pql_eval(a, p, &i1, &r), 0);
        assert_true(r.match);
        assert_int_equal(pql_eval(b, p, &i2, &r), 0);
        assert_false(r.match);
    }
    pql_evaluator_free(a);
    pql_evaluator_free(b);
    json_decref(e1);
    json_decref(e2);
    pql_program_free(p);
}

/* Programs whose filters differ only in a constant, a window length or a field must not share a
 * memo entry; equal filters must; every answer equals the one without a memo. */
static void test_memo_shares_only_equal_filters(void **state)
{
    (void)state;
    static const char *const exprs[] = {
        "xEvent[eventType = \"commerce.purchases\"].count()",
        "xEvent[eventType = \"advertising.impressions\"].count()",
        "xEvent[eventType = \"commerce.purchases\"].count() > 3",
        "xEvent[_acme.campaignId = \"c-101\"].count()",
        "xEvent[_acme.campaignId = \"c-102\"].count()",
        "xEvent[_acme.campaignId in [\"c-101\", \"c-103\"]].count()",
        "xEvent[_acme.campaignId in [\"c-102\", \"c-103\"]].count()",
        "xEvent[timestamp occurs <= 5 minutes before now].count()",
        "xEvent[timestamp occurs <= 9 minutes before now].count()",
        "xEvent[timestamp occurs <= 9 hours before now].count()",
        "xEvent[eventType = \"commerce.purchases\" and timestamp occurs <= 9 minutes before now].count()",
        "xEvent[eventType = \"commerce.purchases\" or timestamp occurs <= 9 minutes before now].count()",
        "xEvent[not(eventType = \"commerce.purchases\")].count()",
        "xEvent[eventType = \"commerce.purchases\"]._acme.campaignId.distinct().count()",
        "xEvent[eventType = \"commerce.purchases\"].count()",
    };
    enum { N = sizeof exprs / sizeof *exprs };
    pql_program *p[N];
    for (int i = 0; i < N; i++)
        p[i] = compile_ok(exprs[i]);
    json_t *events = many_events(30, 1715000000000LL);
    int64_t now = 1715000000000LL + 25 * 60000 + 30000;
    pql_evaluator *ev = pql_evaluator_new(NULL);
    pql_memo *memo = pql_memo_new();
    for (int round = 0; round < 2; round++) {
        for (int i = 0; i < N; i++) {
            pql_input plain = {.events = events, .now_ms = now}, shared = plain;
            shared.memo = memo;
            pql_result r1, r2;
            json_t *v1 = NULL, *v2 = NULL;
            assert_int_equal(pql_eval_value(ev, p[i], &plain, &r1, &v1), 0);
            assert_int_equal(pql_eval_value(ev, p[i], &shared, &r2, &v2), 0);
            if (!json_equal(v1, v2))
                fail_msg("%s: %lld without the memo, %lld with it", exprs[i],
                         (long long)json_integer_value(v1), (long long)json_integer_value(v2));
            assert_int_equal(r1.match, r2.match);
            assert_int_equal(r1.next_change_ms, r2.next_change_ms);
            json_decref(v1);
            json_decref(v2);
        }
    }
    uint64_t hits, misses;
    pql_memo_stats(memo, &hits, &misses);
    /* 12 distinct filters run once; every other evaluation is answered */
    assert_int_equal(misses, 12);
    assert_int_equal(hits, 2 * N - 12);
    /* another events array (the next profile) is not answered from the first one's entries */
    json_t *other = many_events(4, 1715000000000LL);
    pql_input in = {.events = other, .now_ms = now, .memo = memo};
    pql_result r;
    json_t *v = NULL;
    assert_int_equal(pql_eval_value(ev, p[0], &in, &r, &v), 0);
    assert_int_equal(json_integer_value(v), 2);
    json_decref(v);
    pql_memo_stats(memo, &hits, &misses);
    assert_int_equal(misses, 13);
    json_decref(other);
    pql_memo_free(memo);
    pql_evaluator_free(ev);
    json_decref(events);
    for (int i = 0; i < N; i++)
        pql_program_free(p[i]);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_step_budget),
        cmocka_unit_test(test_scratch_budget),
        cmocka_unit_test(test_explain_and_deps),
        cmocka_unit_test(test_too_large),
        cmocka_unit_test(test_many_evaluations_share_a_program),
        cmocka_unit_test(test_memo_shares_only_equal_filters),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
