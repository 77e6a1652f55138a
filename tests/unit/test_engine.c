/* Unit tests: engine (identity stitching, union views, events, limits, restart) without HTTP. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "kith/ingest.h"
#include "kith/recent.h"

#define FIXTURE_NAME "engine"
#define FIXTURE_GRAPH_MAX 5
#include "engine_fixture.h"

static size_t identity_count(json_t *p)
{
    return json_array_size(json_object_get(p, "identities"));
}

static void test_stitching_three_records(void **state)
{
    fixture *f = *state;
    assert_int_equal(ingest(f, f->ds_crm, "{\"identityMap\":{\"Email\":[{\"id\":\"a@x.com\",\"primary\":true}],\"CRMID\":[{\"id\":\"c1\"}]},\"person\":{\"name\":{\"firstName\":\"Ann\"}}}", NULL), 0);
    assert_int_equal(ingest(f, f->ds_web, "{\"_id\":\"e1\",\"timestamp\":\"2024-01-01T00:00:00Z\",\"identityMap\":{\"ECID\":[{\"id\":\"12345678901234567890123456789012345678\",\"primary\":true}],\"CRMID\":[{\"id\":\"c1\"}]}}", NULL), 0);
    assert_int_equal(ingest(f, f->ds_crm, "{\"identityMap\":{\"Phone\":[{\"id\":\"555\",\"primary\":true}],\"ECID\":[{\"id\":\"12345678901234567890123456789012345678\"}]},\"person\":{\"name\":{\"lastName\":\"Lee\"}}}", NULL), 0);
    const char *ids[][2] = {{"Email", "a@x.com"}, {"CRMID", "c1"}, {"ECID", "12345678901234567890123456789012345678"}, {"Phone", "555"}};
    for (int i = 0; i < 4; i++) {
        json_t *p = lookup(f, ids[i][0], ids[i][1]);
        assert_non_null(p);
        assert_int_equal(identity_count(p), 4);
        json_t *name = json_object_get(json_object_get(json_object_get(p, "entity"), "person"), "name");
        assert_string_equal(json_string_value(json_object_get(name, "firstName")), "Ann");
        assert_string_equal(json_string_value(json_object_get(name, "lastName")), "Lee");
        json_decref(p);
    }
    assert_null(lookup(f, "Email", "nobody@x.com"));
}

static void test_newest_wins_arrays_atomic(void **state)
{
    fixture *f = *state;
    assert_int_equal(ingest(f, f->ds_crm, "{\"identityMap\":{\"CRMID\":[{\"id\":\"k1\",\"primary\":true}]},\"_acme\":{\"tags\":[\"a\",\"b\",\"c\"],\"tier\":\"gold\"}}", NULL), 0);
    assert_int_equal(ingest(f, f->ds_crm, "{\"identityMap\":{\"Email\":[{\"id\":\"k@x.com\",\"primary\":true}],\"CRMID\":[{\"id\":\"k1\"}]},\"_acme\":{\"tags\":[\"z\"]}}", NULL), 0);
    json_t *p = lookup(f, "CRMID", "k1");
    json_t *acme = json_object_get(json_object_get(p, "entity"), "_acme");
    assert_int_equal(json_array_size(json_object_get(acme, "tags")), 1);
    assert_string_equal(json_string_value(json_array_get(json_object_get(acme, "tags"), 0)), "z");
    assert_string_equal(json_string_value(json_object_get(acme, "tier")), "gold");
    json_decref(p);
    /* Replacing the first fragment (same dataset, same primary identity) replaces it whole. */
    assert_int_equal(ingest(f, f->ds_crm, "{\"identityMap\":{\"CRMID\":[{\"id\":\"k1\",\"primary\":true}]},\"_acme\":{\"tier\":\"silver\"}}", NULL), 0);
    p = lookup(f, "CRMID", "k1");
    acme = json_object_get(json_object_get(p, "entity"), "_acme");
    assert_string_equal(json_string_value(json_object_get(acme, "tier")), "silver");
    assert_string_equal(json_string_value(json_array_get(json_object_get(acme, "tags"), 0)), "z");
    json_decref(p);
}

static void test_rejection_stores_nothing(void **state)
{
    fixture *f = *state;
    json_t *errors = NULL;
    assert_int_equal(ingest(f, f->ds_crm, "{\"identityMap\":{\"Email\":[{\"id\":\"r@x.com\",\"primary\":true}]},\"person\":{\"name\":{\"firstName\":7}}}", &errors), KITH_EINVAL);
    assert_string_equal(json_string_value(json_object_get(json_array_get(errors, 0), "path")), "/person/name/firstName");
    json_decref(errors);
    assert_null(lookup(f, "Email", "r@x.com"));
    /* Unknown namespace. */
    assert_int_equal(ingest(f, f->ds_crm, "{\"identityMap\":{\"Nope\":[{\"id\":\"x\",\"primary\":true}]}}", &errors), KITH_EINVAL);
    assert_string_equal(json_string_value(json_object_get(json_array_get(errors, 0), "path")), "/identityMap/Nope/0/id");
    json_decref(errors);
    /* An event without _id. */
    assert_int_equal(ingest(f, f->ds_web, "{\"timestamp\":\"2024-01-01T00:00:00Z\",\"identityMap\":{\"ECID\":[{\"id\":\"12345678901234567890123456789012345678\"}]}}", &errors), KITH_EINVAL);
    json_decref(errors);
}

static void test_graph_limit_evicts_oldest(void **state)
{
    fixture *f = *state; /* graph_max = 5 in this fixture: the default maxIdentities */
    char rec[512];
    for (int i = 0; i < 6; i++) {
        snprintf(rec, sizeof rec, "{\"identityMap\":{\"CRMID\":[{\"id\":\"g0\",\"primary\":true}],\"Email\":[{\"id\":\"g%d@x.com\"}]}}", i);
        assert_int_equal(ingest(f, f->ds_crm, rec, NULL), 0);
    }
    /* The full graph evicted its oldest identity (g1@x.com) to take g5@x.com. */
    json_t *p = lookup(f, "CRMID", "g0");
    assert_int_equal(identity_count(p), 5);
    json_decref(p);
    p = lookup(f, "Email", "g5@x.com");
    assert_int_equal(identity_count(p), 5);
    json_decref(p);
    p = lookup(f, "Email", "g1@x.com");
    assert_int_equal(identity_count(p), 1);
    json_decref(p);
}

static void test_junk_values_do_not_link(void **state)
{
    fixture *f = *state;
    assert_int_equal(ingest(f, f->ds_crm, "{\"identityMap\":{\"CRMID\":[{\"id\":\"j1\",\"primary\":true}],\"Email\":[{\"id\":\"null\"}]}}", NULL), 0);
    assert_int_equal(ingest(f, f->ds_crm, "{\"identityMap\":{\"CRMID\":[{\"id\":\"j2\",\"primary\":true}],\"Email\":[{\"id\":\"null\"}]}}", NULL), 0);
    json_t *p = lookup(f, "CRMID", "j1");
    assert_int_equal(identity_count(p), 1);
    json_decref(p);
    /* An invalid ECID (not 38 digits) is rejected with its path; nothing is stored. */
    json_t *errors = NULL;
    assert_int_equal(ingest(f, f->ds_crm, "{\"identityMap\":{\"CRMID\":[{\"id\":\"j3\",\"primary\":true}],\"ECID\":[{\"id\":\"abc\"}]}}", &errors), KITH_EINVAL);
    assert_string_equal(json_string_value(json_object_get(json_array_get(errors, 0), "path")), "/identityMap/ECID/0/id");
    json_decref(errors);
    assert_null(lookup(f, "CRMID", "j3"));
}

static void test_events_order_and_paging(void **state)
{
    fixture *f = *state;
    char ev[512];
    /* Events under two identities of one cluster, out of order. */
    assert_int_equal(ingest(f, f->ds_crm, "{\"identityMap\":{\"CRMID\":[{\"id\":\"p1\",\"primary\":true}],\"ECID\":[{\"id\":\"11111111111111111111111111111111111111\"}]}}", NULL), 0);
    for (int i = 9; i >= 0; i--) {
        snprintf(ev, sizeof ev, "{\"_id\":\"ev%d\",\"timestamp\":\"2024-01-01T00:00:%02dZ\",\"identityMap\":{\"%s\":[{\"id\":\"%s\",\"primary\":true}]}}",
                 i, i, i % 2 ? "CRMID" : "ECID", i % 2 ? "p1" : "11111111111111111111111111111111111111");
        assert_int_equal(ingest(f, f->ds_web, ev, NULL), 0);
    }
    catalog_rdlock(f->e->cat);
    uint32_t crm = catalog_namespace(f->e->cat, 1, "CRMID")->id;
    catalog_unlock(f->e->cat);
    event_query q = {.start_ms = INT64_MIN, .end_ms = INT64_MAX, .limit = 4};
    char cursor[1200] = "";
    int seen = 0, err = 0;
    for (int page = 0; page < 5; page++) {
        q.cursor = cursor[0] ? cursor : NULL;
        json_t *r = profile_events(f->e, 1, crm, "p1", 2, &q, &err);
        assert_non_null(r);
        json_t *children = json_object_get(r, "children");
        size_t i;
        json_t *c;
        json_array_foreach(children, i, c)
        {
            char want[16];
            snprintf(want, sizeof want, "ev%d", seen);
            assert_string_equal(json_string_value(json_object_get(c, "entityId")), want);
            assert_int_equal(json_integer_value(json_object_get(c, "timestamp")), 1704067200000LL + seen * 1000);
            seen++;
        }
        const char *next = json_string_value(json_object_get(json_object_get(r, "_page"), "next"));
        snprintf(cursor, sizeof cursor, "%s", next);
        json_decref(r);
        if (!cursor[0]) break;
    }
    assert_int_equal(seen, 10);
    /* Window [3 s, 6 s) and descending order. */
    q = (event_query){.start_ms = 1704067203000LL, .end_ms = 1704067206000LL, .limit = 100, .descending = true};
    json_t *r = profile_events(f->e, 1, crm, "p1", 2, &q, &err);
    json_t *children = json_object_get(r, "children");
    assert_int_equal(json_array_size(children), 3);
    assert_string_equal(json_string_value(json_object_get(json_array_get(children, 0), "entityId")), "ev5");
    assert_string_equal(json_string_value(json_object_get(json_array_get(children, 2), "entityId")), "ev3");
    json_decref(r);
}

static void test_restart_keeps_everything(void **state)
{
    fixture *f = *state;
    assert_int_equal(ingest(f, f->ds_crm, "{\"identityMap\":{\"Email\":[{\"id\":\"d@x.com\",\"primary\":true}],\"CRMID\":[{\"id\":\"d1\"}]},\"person\":{\"name\":{\"firstName\":\"Dee\"}}}", NULL), 0);
    engine_close(f->e);
    open_engine(f);
    json_t *p = lookup(f, "CRMID", "d1");
    assert_non_null(p);
    assert_int_equal(identity_count(p), 2);
    assert_string_equal(json_string_value(json_object_get(json_object_get(json_object_get(json_object_get(p, "entity"), "person"), "name"), "firstName")), "Dee");
    json_decref(p);
    /* Sequences continue after restart: a new identity does not reuse an id. */
    assert_int_equal(ingest(f, f->ds_crm, "{\"identityMap\":{\"Email\":[{\"id\":\"new@x.com\",\"primary\":true}]}}", NULL), 0);
    p = lookup(f, "Email", "new@x.com");
    assert_int_equal(identity_count(p), 1);
    json_decref(p);
    p = lookup(f, "CRMID", "d1");
    assert_int_equal(identity_count(p), 2);
    json_decref(p);
}

/* The shared buffer of recent events (kith/recent.h): an event kept in a group is listed to readers
 * until the syncer has written that group's blind appends, kept once however many consumers ask,
 * and forgotten when its group fails. */
struct recent_ctx {
    kith_engine *e;
    int step;
    const recent_event *kept;
    size_t listed, count;
};

static size_t recent_listed(kith_engine *e, uint32_t sb, uint64_t identity)
{
    size_t n = 0;
    uint64_t mark = recent_mark(e);
    for (const recent_event *r = recent_first(e, mark, sb, identity); r; r = recent_next(r, mark))
        n++;
    return n;
}

static int recent_fn(void *ctx, store_batch *b)
{
    (void)b;
    struct recent_ctx *c = ctx;
    kith_engine *e = c->e;
    const char *ev = "{\"_id\":\"e1\",\"eventType\":\"web.webpagedetails.pageViews\"}";
    if (c->step == 0) {
        c->kept = recent_keep(e, 1, 77, "ds", 1000, "e1", ev, strlen(ev));
        /* A second consumer of the same event gets the same entry: one copy. */
        assert_ptr_equal(recent_keep(e, 1, 77, "ds", 1000, "e1", ev, strlen(ev)), c->kept);
        recent_keep(e, 1, 77, "ds", 2000, "e2", ev, strlen(ev));
        recent_keep(e, 2, 77, "ds", 1000, "e1", ev, strlen(ev)); /* another sandbox */
        json_t *t = recent_tree(c->kept);
        assert_non_null(t);
        assert_ptr_equal(recent_tree(c->kept), t); /* parsed once */
        assert_string_equal(json_string_value(json_object_get(t, "_id")), "e1");
        c->listed = recent_listed(e, 1, 77);
        assert_int_equal(recent_listed(e, 1, 78), 0);
    } else if (c->step == 1) {
        /* The previous group is durable, so its appends are written: nothing is listed. */
        c->listed = recent_listed(e, 1, 77);
        recent_keep(e, 1, 77, "ds", 3000, "e3", ev, strlen(ev));
        recent_group_failed(e, apply_group_number(e->apply));
    }
    c->count = recent_count(e);
    return 0;
}

static void test_recent_events_buffer(void **state)
{
    fixture *f = *state;
    struct recent_ctx c = {.e = f->e};
    assert_int_equal(apply_call(f->e->apply, recent_fn, &c, false), 0);
    assert_int_equal(c.listed, 2);
    assert_int_equal(c.count, 3);
    c.step = 1;
    assert_int_equal(apply_call(f->e->apply, recent_fn, &c, false), 0);
    assert_int_equal(c.listed, 0);
    assert_int_equal(c.count, 3); /* the written ones go at the group's end, the failed one now */
    c.step = 2;
    assert_int_equal(apply_call(f->e->apply, recent_fn, &c, false), 0);
    assert_int_equal(c.count, 0);
}

static void test_xid_roundtrip(void **state)
{
    char xid[KITH_XID_MAX], val[KITH_XID_MAX];
    const char *vals[] = {"a", "ab", "abc", "abcd", "jane@example.com", "12345678901234567890123456789012345678"};
    for (size_t i = 0; i < sizeof vals / sizeof vals[0]; i++) {
        identity_xid(6, vals[i], strlen(vals[i]), xid, sizeof xid);
        uint32_t ns;
        size_t len;
        assert_int_equal(identity_xid_parse(xid, &ns, val, sizeof val, &len), 0);
        assert_int_equal(ns, 6);
        assert_int_equal(len, strlen(vals[i]));
        assert_memory_equal(val, vals[i], len);
    }
    uint32_t ns;
    size_t len;
    assert_int_not_equal(identity_xid_parse("nope", &ns, val, sizeof val, &len), 0);
    assert_int_not_equal(identity_xid_parse("X!!", &ns, val, sizeof val, &len), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_stitching_three_records, setup, teardown),
        cmocka_unit_test_setup_teardown(test_newest_wins_arrays_atomic, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rejection_stores_nothing, setup, teardown),
        cmocka_unit_test_setup_teardown(test_graph_limit_evicts_oldest, setup, teardown),
        cmocka_unit_test_setup_teardown(test_junk_values_do_not_link, setup, teardown),
        cmocka_unit_test_setup_teardown(test_events_order_and_paging, setup, teardown),
        cmocka_unit_test_setup_teardown(test_restart_keeps_everything, setup, teardown),
        cmocka_unit_test_setup_teardown(test_recent_events_buffer, setup, teardown),
        cmocka_unit_test(test_xid_roundtrip),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
