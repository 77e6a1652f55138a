/* Unit tests: the segment index (src/segment/svc_index.c) — a change re-evaluates only the
 * streaming segments whose inputs it touched: an event only the segments whose event filters admit
 * its type (and those reading events of any type), a record only the segments reading a field whose
 * union-view value changed, an inSegment reader only when the segment it reads changed; timers,
 * merges and deletes re-evaluate everything. Counted with the service's evaluation counter, and the
 * memberships stay right. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "kith/ingest.h"
#include "kith/schema.h"
#include "kith/segsvc.h"
#include "segment/svc_int.h"

#define FIXTURE_NAME "segindex"
#define FIXTURE_GRAPH_MAX 5
#include "engine_fixture.h"


struct put_ctx {
    kith_engine *e;
    const char *id;
    json_t *body;
    segdef_result res;
};

static int put_fn(void *ctx, store_batch *b)
{
    struct put_ctx *c = ctx;
    return segdef_put(c->e, b, 1, c->id, c->body, true, &c->res);
}

static void define(fixture *f, const char *id, const char *expr)
{
    struct put_ctx c = {.e = f->e, .id = id};
    c.body = json_pack("{s:s, s:{s:s, s:s, s:s}}", "name", id, "expression", "type", "PQL",
                       "format", "pql/text", "value", expr);
    assert_int_equal(apply_call(f->e->apply, put_fn, &c, false), 0);
    assert_int_equal(c.res.status, 201);
    /* The backfill job of the new definition (over the existing profiles) finishes first: its
     * evaluations must not count among those of the events below. */
    const char *job = json_string_value(json_object_get(c.res.doc, "kith:backfillJobId"));
    for (int i = 0; job && i < 5000; i++) {
        json_t *j = segsvc_job_get(f->e, 1, SEGJOB_SEGMENT, job);
        const char *st = json_string_value(json_object_get(j, "status"));
        bool done = !st || (strcmp(st, "NEW") != 0 && strcmp(st, "PROCESSING") != 0);
        json_decref(j);
        if (done) break;
        struct timespec ts = {0, 2000000};
        nanosleep(&ts, NULL);
    }
    json_decref(c.res.doc);
    json_decref(c.body);
}

static uint64_t evaluations(fixture *f)
{
    segsvc_stats st;
    segsvc_get_stats(f->e, &st);
    return st.evaluations;
}

/* Status of segment id for the profile of CRMID c1 ("none" when absent). */
static const char *status(fixture *f, const char *id)
{
    static char out[16];
    uint64_t ident, cluster;
    catalog_rdlock(f->e->cat);
    uint32_t ns = catalog_namespace(f->e->cat, 1, "CRMID")->id;
    catalog_unlock(f->e->cat);
    snprintf(out, sizeof out, "none");
    if (identity_lookup(f->e, 1, ns, "c1", 2, &ident, &cluster) != 0) return out;
    json_t *m = segsvc_membership(f->e, 1, cluster);
    const char *st = json_string_value(
        json_object_get(json_object_get(json_object_get(m, "ups"), id), "status"));
    if (st) snprintf(out, sizeof out, "%s", st);
    json_decref(m);
    return out;
}

#define SEG_P "00000000-0000-4000-8000-000000000001" /* purchases (typed events) */
#define SEG_A "00000000-0000-4000-8000-000000000002" /* any event */
#define SEG_T "00000000-0000-4000-8000-000000000003" /* _acme.tier */
#define SEG_N "00000000-0000-4000-8000-000000000004" /* person.name.firstName */
#define SEG_D "00000000-0000-4000-8000-000000000005" /* inSegment(T) */
#define SEG_X "00000000-0000-4000-8000-000000000006" /* typed filter + whole xEvent */

static int event(fixture *f, int i, const char *type)
{
    char ev[512];
    snprintf(ev, sizeof ev,
             "{\"_id\":\"ev%d\",\"timestamp\":\"2024-01-01T00:00:%02dZ\",%s%s%s"
             "\"identityMap\":{\"CRMID\":[{\"id\":\"c1\",\"primary\":true}]}}",
             i, i, type ? "\"eventType\":\"" : "", type ? type : "", type ? "\"," : "");
    return ingest(f, f->ds_web, ev, NULL);
}

static int record(fixture *f, const char *fields)
{
    char rec[512];
    snprintf(rec, sizeof rec,
             "{%s%s\"identityMap\":{\"CRMID\":[{\"id\":\"c1\",\"primary\":true}]}}", fields,
             *fields ? "," : "");
    return ingest(f, f->ds_crm, rec, NULL);
}

static void test_skipping(void **state)
{
    fixture *f = *state;
    define(f, SEG_P, "xEvent[eventType = \"commerce.purchases\"].count() >= 1");
    define(f, SEG_A, "xEvent.count() >= 100");
    define(f, SEG_T, "_acme.tier = \"gold\"");
    define(f, SEG_N, "person.name.firstName = \"Ann\"");
    define(f, SEG_D, "inSegment(\"" SEG_T "\")");
    define(f, SEG_X, "xEvent[eventType = \"commerce.purchases\"].count() >= 1 and xEvent.count() >= 3");
    /* An event of another type: the any-type readers (A, X) run; P, T, N, D are skipped. */
    uint64_t n0 = evaluations(f);
    assert_int_equal(event(f, 1, "web.webpagedetails.pageViews"), 0);
    assert_int_equal(evaluations(f) - n0, 2);
    /* An event without eventType: the same. */
    n0 = evaluations(f);
    assert_int_equal(event(f, 2, NULL), 0);
    assert_int_equal(evaluations(f) - n0, 2);
    assert_string_equal(status(f, SEG_P), "none");
    /* A purchase: P, A and X run; P and X qualify. */
    n0 = evaluations(f);
    assert_int_equal(event(f, 3, "commerce.purchases"), 0);
    assert_int_equal(evaluations(f) - n0, 3);
    assert_string_equal(status(f, SEG_P), "realized");
    assert_string_equal(status(f, SEG_X), "realized");
    assert_string_equal(status(f, SEG_A), "none");
    /* A record setting the tier: only T reads it (and stays out); D is not run (T did not
     * change), N not (person unchanged), no event segment. */
    n0 = evaluations(f);
    assert_int_equal(record(f, "\"_acme\":{\"tier\":\"silver\"}"), 0);
    assert_int_equal(evaluations(f) - n0, 1);
    /* Gold: T enters, so D (inSegment T) runs and enters too. */
    n0 = evaluations(f);
    assert_int_equal(record(f, "\"_acme\":{\"tier\":\"gold\"}"), 0);
    assert_int_equal(evaluations(f) - n0, 2);
    assert_string_equal(status(f, SEG_T), "realized");
    assert_string_equal(status(f, SEG_D), "realized");
    /* The same record again: the union view does not change, nothing runs. */
    n0 = evaluations(f);
    assert_int_equal(record(f, "\"_acme\":{\"tier\":\"gold\"}"), 0);
    assert_int_equal(evaluations(f) - n0, 0);
    /* A record replacing the tier by a name: T (tier gone) exits, D follows, N runs and enters. */
    n0 = evaluations(f);
    assert_int_equal(record(f, "\"person\":{\"name\":{\"firstName\":\"Ann\"}}"), 0);
    assert_int_equal(evaluations(f) - n0, 3);
    assert_string_equal(status(f, SEG_T), "exited");
    assert_string_equal(status(f, SEG_D), "exited");
    assert_string_equal(status(f, SEG_N), "realized");
    /* A sibling field of a read one (person.name.lastName vs person.name.firstName): skipped. */
    n0 = evaluations(f);
    assert_int_equal(
        record(f, "\"person\":{\"name\":{\"firstName\":\"Ann\",\"lastName\":\"Lee\"}}"), 0);
    assert_int_equal(evaluations(f) - n0, 0);
    assert_string_equal(status(f, SEG_N), "realized");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_skipping, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
