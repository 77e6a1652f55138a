/* Incremental event aggregates (kith/pqlinc.h): which shapes become sites, and a differential test
 * over random events — states built event by event in random arrival order, pruned as time moves
 * forward and carried through encode/decode must give the rescan's answer at every instant. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "kith/pql.h"
#include "kith/pqlinc.h"

#define DAY 86400000LL

static json_t *event_schema(void)
{
    return json_loads(
        "{\"properties\": {\"timestamp\": {\"type\": \"string\", \"format\": \"date-time\"},"
        " \"eventType\": {\"type\": \"string\"},"
        " \"qty\": {\"type\": \"integer\"},"
        " \"tags\": {\"type\": \"array\", \"items\": {\"type\": \"string\"}},"
        " \"commerce\": {\"type\": \"object\", \"properties\": {\"order\": {\"type\": \"object\","
        "   \"properties\": {\"priceTotal\": {\"type\": \"number\"}}}}},"
        " \"_acme\": {\"type\": \"object\", \"properties\": {\"campaignId\": {\"type\": \"string\"}}}}}",
        0, NULL);
}

static pql_program *compile_env(const char *s, const json_t *evs)
{
    pql_env env = {.event_schema = evs};
    pql_program *p = NULL;
    pql_error err;
    if (pql_compile(s, strlen(s), &env, &p, &err))
        fail_msg("%s: %d:%d %s", s, err.line, err.column, err.message);
    return p;
}

static void test_shapes(void **state)
{
    (void)state;
    json_t *sch = event_schema();
    static const struct {
        const char *expr;
        int sites;
        bool only;
    } v[] = {
        {"xEvent[eventType = \"commerce.purchases\"].sum(commerce.order.priceTotal) > 10000", 1, true},
        {"xEvent[eventType = \"commerce.purchases\"].max(timestamp) occurs = 7 days before today", 1,
         true},
        {"xEvent[eventType = \"advertising.impressions\" and _acme.campaignId in [\"c-101\", "
         "\"c-102\"] and timestamp occurs <= 30 minutes before now]._acme.campaignId.distinct()"
         ".count() >= 3",
         1, true},
        {"xEvent.count() > 1 and xEvent[qty > 2].qty.sum() > 3", 2, true},
        {"xEvent[timestamp occurs <= 2 days before now and timestamp occurs >= 1 days before now]"
         ".count() > 0",
         1, true},
        /* not incremental: the filter mixes time and data under or, reads the instant in data, is a
         * CHAIN, a quantifier, topN */
        {"xEvent[eventType = \"a\" or timestamp occurs <= 1 days before now].count() > 0", 0, false},
        {"xEvent[qty > currentMonth()].count() > 0", 0, false},
        {"CHAIN(xEvent, timestamp, [C0: WHAT(eventType = \"a\")])", 0, false},
        {"exists E from xEvent where E.eventType = \"a\"", 0, false},
        {"xEvent.topN(qty, 2).count() = 2", 0, false},
        /* one site, but the program also reads xEvent elsewhere */
        {"xEvent[qty > 1].count() > 0 and (exists E from xEvent where E.qty = 3)", 1, false},
    };
    for (size_t i = 0; i < sizeof v / sizeof v[0]; i++) {
        pql_program *p = compile_env(v[i].expr, sch);
        if ((int)pql_inc_nsites(p) != v[i].sites || pql_inc_only(p) != v[i].only)
            fail_msg("%s: %zu sites (only %d), expected %d (%d)", v[i].expr, pql_inc_nsites(p),
                     pql_inc_only(p), v[i].sites, v[i].only);
        pql_program_free(p);
    }
    /* the same filter and values in another program share a signature, whatever the window */
    pql_program *a = compile_env("xEvent[eventType = \"x\" and timestamp occurs <= 3 days before "
                                 "now].count() > 2",
                                 sch);
    pql_program *b = compile_env("xEvent[eventType = \"x\" and timestamp occurs <= 9 days before "
                                 "now].count() = 1",
                                 sch);
    pql_program *c = compile_env("xEvent[eventType = \"y\" and timestamp occurs <= 3 days before "
                                 "now].count() > 2",
                                 sch);
    assert_true(pql_inc_sig(a, 0) == pql_inc_sig(b, 0));
    assert_true(pql_inc_sig(a, 0) != pql_inc_sig(c, 0));
    pql_program_free(a);
    pql_program_free(b);
    pql_program_free(c);
    json_decref(sch);
}

static uint64_t rng = 88172645463325252ull;
static uint64_t rnd(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

static json_t *random_event(int64_t t0)
{
    static const char *const types[] = {"commerce.purchases", "web.pageViews",
                                        "advertising.impressions", "commerce.productViews"};
    static const char *const camps[] = {"c-101", "c-102", "c-103", "c-104", "c-105", "c-200"};
    char ts[40];
    /* 60 days back to 2 days ahead, some on the same millisecond */
    int64_t t = t0 - 60 * DAY + (int64_t)(rnd() % (62 * 96)) * (DAY / 96) + (int64_t)(rnd() % 3);
    kith_time_format(t, ts, sizeof ts);
    json_t *e = json_pack("{s:s, s:s}", "timestamp", ts, "eventType", types[rnd() % 4]);
    if (rnd() % 5)
        json_object_set_new(e, "commerce",
                            json_pack("{s:{s:f}}", "order", "priceTotal",
                                      (double)(rnd() % 2000) / 4.0));
    if (rnd() % 3) json_object_set_new(e, "qty", json_integer((json_int_t)(rnd() % 7) - 1));
    if (rnd() % 4) json_object_set_new(e, "_acme", json_pack("{s:s}", "campaignId", camps[rnd() % 6]));
    if (rnd() % 2) {
        json_t *tags = json_array();
        for (uint64_t k = rnd() % 3; k > 0; k--)
            json_array_append_new(tags, json_string(camps[rnd() % 3]));
        json_object_set_new(e, "tags", tags);
    }
    return e;
}

static int64_t ts_of(const json_t *e)
{
    int64_t t = 0;
    kith_time_parse(json_string_value(json_object_get(e, "timestamp")), &t);
    return t;
}

static int by_ts(const void *a, const void *b)
{
    int64_t x = ts_of(*(json_t *const *)a), y = ts_of(*(json_t *const *)b);
    return x < y ? -1 : x > y;
}

static bool same_value(const json_t *a, const json_t *b)
{
    return json_equal(a, b) ||
           (json_is_number(a) && json_is_number(b) && json_number_value(a) == json_number_value(b));
}

static void test_differential(void **state)
{
    (void)state;
    static const char *const exprs[] = {
        "xEvent[eventType = \"commerce.purchases\"].sum(commerce.order.priceTotal)",
        "xEvent[eventType = \"commerce.purchases\"].max(timestamp)",
        "xEvent[eventType = \"commerce.purchases\"].max(timestamp) occurs = 7 days before today",
        "xEvent[eventType = \"advertising.impressions\" and _acme.campaignId in [\"c-101\", "
        "\"c-102\", \"c-103\", \"c-104\"] and timestamp occurs <= 2 days before now]"
        "._acme.campaignId.distinct().count()",
        "xEvent[eventType = \"web.pageViews\" and timestamp occurs <= 7 days before now].count()",
        "xEvent[timestamp occurs <= 3 days before now and eventType = \"commerce.purchases\"]"
        ".avg(commerce.order.priceTotal)",
        "xEvent[eventType = \"commerce.purchases\"].min(commerce.order.priceTotal)",
        "xEvent.count()",
        "xEvent[qty > 2].qty.sum()",
        "xEvent.qty.sum()",
        "xEvent[eventType = \"commerce.purchases\" and timestamp occurs this month]"
        ".commerce.order.priceTotal.max()",
        "xEvent[timestamp occurs > 10 days before now].count()",
        "xEvent.tags.distinct().count()",
        "xEvent[timestamp occurs < 2 days after now].qty.count()",
        "xEvent[timestamp occurs = 1 days before today].count()",
        "xEvent[eventType = \"commerce.purchases\" and timestamp occurs >= 1 days before now and "
        "timestamp occurs <= 20 days before now].count()",
        "xEvent[timestamp occurs <= 5 days before now].min(timestamp)",
        "xEvent[timestamp occurs <= 5 days before now].qty.max()",
        "xEvent[_acme.campaignId.startsWith(\"c-1\") and timestamp occurs <= 14 days before "
        "now].sum(qty) > 10",
        "xEvent[eventType = \"web.pageViews\"].count() > 3 and xEvent[timestamp occurs <= 1 days "
        "before now].count() = 0",
    };
    json_t *sch = event_schema();
    pql_evaluator *ev = pql_evaluator_new(NULL);
    const int64_t t0 = 1767225600000LL + 13 * 3600000LL; /* 2026-01-01T13:00Z */
    enum { NEV = 400, NCHECK = 8 };
    json_t *all[NEV];
    for (int i = 0; i < NEV; i++)
        all[i] = random_event(t0);
    int compared = 0;
    for (size_t x = 0; x < sizeof exprs / sizeof exprs[0]; x++) {
        pql_program *p = compile_env(exprs[x], sch);
        size_t ns = pql_inc_nsites(p);
        if (!ns || !pql_inc_only(p)) fail_msg("%s: not incremental", exprs[x]);
        pql_inc_state *st = calloc(ns, sizeof *st);
        const pql_inc_state **ptr = calloc(ns, sizeof *ptr);
        for (size_t k = 0; k < ns; k++) {
            pql_inc_state_init(&st[k], p, k);
            ptr[k] = &st[k];
        }
        json_t *seen = json_array();
        int64_t now = t0 - 30 * DAY;
        for (int c = 0; c < NCHECK; c++) {
            /* a batch of arrivals in random order, then time moves on */
            for (int i = c * NEV / NCHECK; i < (c + 1) * NEV / NCHECK; i++) {
                for (size_t k = 0; k < ns; k++)
                    assert_true(pql_inc_add(ev, p, k, &st[k], all[i]) >= 0);
                json_array_append(seen, all[i]);
            }
            now += (int64_t)(rnd() % (8 * DAY));
            for (size_t k = 0; k < ns; k++) {
                pql_inc_prune(&st[k], (const pql_program *const *)&p, &k, 1, now);
                kith_buf b = {0};
                pql_inc_encode(&st[k], &b);
                pql_inc_state_free(&st[k]);
                assert_int_equal(pql_inc_decode(&st[k], b.data, b.len, NULL), 0);
                kith_buf_free(&b);
                assert_false(st[k].bad);
            }
            size_t n = json_array_size(seen);
            json_t **sorted = malloc(n * sizeof *sorted);
            for (size_t i = 0; i < n; i++)
                sorted[i] = json_array_get(seen, i);
            qsort(sorted, n, sizeof *sorted, by_ts);
            json_t *evs = json_array();
            for (size_t i = 0; i < n; i++)
                json_array_append(evs, sorted[i]);
            free(sorted);
            /* now and a few instants after it (no prune in between: windows only move forward) */
            for (int64_t at = now; at < now + 5 * DAY; at += (int64_t)(rnd() % DAY) + 3600000) {
                pql_input a = {.events = evs, .now_ms = at}, b = {.now_ms = at, .inc = ptr};
                pql_result ra, rb;
                json_t *va = NULL, *vb = NULL;
                assert_int_equal(pql_eval_value(ev, p, &a, &ra, &va), 0);
                assert_int_equal(pql_eval_value(ev, p, &b, &rb, &vb), 0);
                if (ra.match != rb.match || !same_value(va, vb)) {
                    char *sa = json_dumps(va, JSON_ENCODE_ANY), *sb = json_dumps(vb, JSON_ENCODE_ANY);
                    fail_msg("%s at %lld after %zu events: rescan %s, incremental %s", exprs[x],
                             (long long)at, n, sa, sb);
                }
                /* the incremental answer announces its changes no later than they happen */
                assert_true(rb.next_change_ms > at);
                json_decref(va);
                json_decref(vb);
                compared++;
            }
            json_decref(evs);
        }
        for (size_t k = 0; k < ns; k++)
            pql_inc_state_free(&st[k]);
        free(st);
        free(ptr);
        json_decref(seen);
        pql_program_free(p);
    }
    print_message("%d incremental answers compared with the rescan\n", compared);
    for (int i = 0; i < NEV; i++)
        json_decref(all[i]);
    pql_evaluator_free(ev);
    json_decref(sch);
}

/* A state that grows past its bound becomes unusable and the program falls back to the events. */
static void test_overflow_falls_back(void **state)
{
    (void)state;
    json_t *sch = event_schema();
    pql_program *p = compile_env("xEvent[timestamp occurs <= 100 days before now].count()", sch);
    pql_evaluator *ev = pql_evaluator_new(NULL);
    pql_inc_state st;
    pql_inc_state_init(&st, p, 0);
    json_t *evs = json_array();
    const int64_t t0 = 1767225600000LL;
    for (int i = 0; i < PQL_INC_MAX_ENTRIES + 5; i++) {
        char ts[40];
        kith_time_format(t0 - (int64_t)i * 1000, ts, sizeof ts);
        json_t *e = json_pack("{s:s, s:s}", "timestamp", ts, "eventType", "x");
        pql_inc_add(ev, p, 0, &st, e);
        json_array_insert_new(evs, 0, e);
    }
    assert_true(st.bad);
    const pql_inc_state *ptr[1] = {&st};
    pql_input in = {.events = evs, .now_ms = t0, .inc = ptr};
    pql_result r;
    json_t *v = NULL;
    assert_int_equal(pql_eval_value(ev, p, &in, &r, &v), 0);
    assert_int_equal(json_integer_value(v), PQL_INC_MAX_ENTRIES + 5);
    json_decref(v);
    json_decref(evs);
    pql_inc_state_free(&st);
    pql_evaluator_free(ev);
    pql_program_free(p);
    json_decref(sch);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_shapes),
        cmocka_unit_test(test_differential),
        cmocka_unit_test(test_overflow_falls_back),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
