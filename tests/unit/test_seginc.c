/* Unit tests: streaming segments' event aggregates from per-profile incremental state
 * (src/segment/svc_inc.c) against a rescan. Random events, identity merges (links), unlinks,
 * profile deletes, restarts and definitions added midway (one sharing another's aggregate with a
 * wider window); after every step each profile's stored membership must be what the segment's
 * program says over the profile's stored events with no state at all. */
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

#define FIXTURE_NAME "seginc"
#define FIXTURE_GRAPH_MAX 50
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

#define NSEG 7
static const char *const seg_ids[NSEG] = {
    "00000000-0000-4000-8000-000000000001", "00000000-0000-4000-8000-000000000002",
    "00000000-0000-4000-8000-000000000003", "00000000-0000-4000-8000-000000000004",
    "00000000-0000-4000-8000-000000000005", "00000000-0000-4000-8000-000000000006",
    "00000000-0000-4000-8000-000000000007"};
static const char *const seg_exprs[NSEG] = {
    "xEvent[eventType = \"commerce.purchases\"].sum(commerce.order.priceTotal) > 100",
    "xEvent[eventType = \"web.webpagedetails.pageViews\" and timestamp occurs <= 3 days before "
    "now].count() >= 2",
    "xEvent[eventType = \"commerce.purchases\"].max(timestamp) occurs <= 2 days before now",
    "xEvent.count() >= 4",
    "xEvent[timestamp occurs <= 1 days before now].commerce.order.priceTotal.max() > 50",
    /* defined midway: a new aggregate, and S2's aggregate with a wider window */
    "xEvent[eventType = \"commerce.purchases\"].count() >= 2",
    "xEvent[eventType = \"web.webpagedetails.pageViews\" and timestamp occurs <= 5 days before "
    "now].count() >= 3",
};

static uint64_t rng = 0x9E3779B97F4A7C15ull;
static uint64_t rnd(void)
{
    rng ^= rng << 13;
    rng ^= rng >> 7;
    rng ^= rng << 17;
    return rng;
}

static int evseq;
static void event(fixture *f, const char *ns, int who)
{
    static const char *const types[] = {"commerce.purchases", "web.webpagedetails.pageViews",
                                        "commerce.productViews"};
    /* hours ago, away from the windows' edges (1, 2, 3, 5 days) by more than an hour */
    static const int hours[] = {0, 2, 5, 10, 20, 30, 40, 55, 60, 65, 80, 90, 100, 110, 130, 150, 200};
    int64_t ts = kith_now_ms() - (int64_t)hours[rnd() % (sizeof hours / sizeof hours[0])] * 3600000LL -
                 (int64_t)(rnd() % 600000);
    char t[40], ev[600];
    kith_time_format(ts, t, sizeof t);
    snprintf(ev, sizeof ev,
             "{\"_id\":\"e%d\",\"timestamp\":\"%s\",\"eventType\":\"%s\","
             "\"commerce\":{\"order\":{\"priceTotal\":%d.5}},"
             "\"identityMap\":{\"%s\":[{\"id\":\"%s%d%s\",\"primary\":true}]}}",
             evseq++, t, types[rnd() % 3], (int)(rnd() % 80), ns, ns[0] == 'C' ? "c" : "u", who,
             ns[0] == 'C' ? "" : "@x.io");
    json_t *errors = NULL;
    int rc = ingest(f, f->ds_web, ev, &errors);
    if (rc) {
        char *es = json_dumps(errors, 0);
        fail_msg("%s: %d %s", ev, rc, es);
    }
    json_decref(errors);
}

static void link(fixture *f, int c, int e)
{
    char rec[300];
    snprintf(rec, sizeof rec,
             "{\"identityMap\":{\"CRMID\":[{\"id\":\"c%d\",\"primary\":true}],"
             "\"Email\":[{\"id\":\"u%d@x.io\"}]}}",
             c, e);
    json_t *errors = NULL;
    int rc = ingest(f, f->ds_crm, rec, &errors);
    if (rc) {
        char *es = json_dumps(errors, 0);
        fail_msg("%s: %d %s", rec, rc, es);
    }
    json_decref(errors);
}

struct op_ctx {
    kith_engine *e;
    uint32_t ns;
    char value[16];
};

static int unlink_fn(void *ctx, store_batch *b)
{
    struct op_ctx *c = ctx;
    return identity_unlink_identity(c->e, b, 1, c->ns, c->value, strlen(c->value));
}

static int delete_fn(void *ctx, store_batch *b)
{
    struct op_ctx *c = ctx;
    uint64_t id, cluster;
    int rc = identity_lookup(c->e, 1, c->ns, c->value, strlen(c->value), &id, &cluster);
    if (rc) return 0;
    size_t deleted = 0;
    return profile_delete(c->e, b, 1, cluster, &deleted);
}

static uint32_t ns_id(fixture *f, const char *ns)
{
    catalog_rdlock(f->e->cat);
    uint32_t id = catalog_namespace(f->e->cat, 1, ns)->id;
    catalog_unlock(f->e->cat);
    return id;
}

/* Every profile's membership of the nseg first segments against a rescan of its events. */
static int verify(fixture *f, int nseg)
{
    struct segsvc *s = svc_of(f->e);
    pql_evaluator *ev = pql_evaluator_new(NULL);
    int checked = 0;
    for (int k = 0; k < 2; k++) {
        const char *ns = k ? "Email" : "CRMID";
        for (int who = 0; who < 8; who++) {
            char value[16];
            snprintf(value, sizeof value, "%s%d%s", k ? "u" : "c", who, k ? "@x.io" : "");
            uint64_t ident, cluster;
            if (identity_lookup(f->e, 1, ns_id(f, ns), value, strlen(value), &ident, &cluster))
                continue;
            int64_t now = kith_now_ms();
            svc_profile p;
            if (svc_profile_load(f->e, 1, cluster, SVC_LOAD_EVENTS, INT64_MIN, now, NULL, &p))
                continue;
            json_t *m = segsvc_membership(f->e, 1, cluster);
            for (int i = 0; i < nseg; i++) {
                segdef *d = svc_def_find(s, 1, seg_ids[i]);
                assert_non_null(d);
                pql_input in = {.profile = p.entity, .events = p.events, .now_ms = now};
                pql_result r;
                assert_int_equal(pql_eval(ev, d->prog, &in, &r), 0);
                const char *st = json_string_value(json_object_get(
                    json_object_get(json_object_get(m, "ups"), seg_ids[i]), "status"));
                bool in_seg = st && (!strcmp(st, "realized") || !strcmp(st, "existing"));
                if (in_seg != r.match)
                    fail_msg("%s %s, segment %d (%s): stored %s, rescan says %s (%zu events)", ns,
                             value, i + 1, seg_exprs[i], st ? st : "none",
                             r.match ? "member" : "not a member", json_array_size(p.events));
                checked++;
            }
            json_decref(m);
            svc_profile_clear(&p);
        }
    }
    pql_evaluator_free(ev);
    return checked;
}

static void test_random_history(void **state)
{
    fixture *f = *state;
    if (getenv("SEGINC_SEED")) rng = strtoull(getenv("SEGINC_SEED"), NULL, 10) | 1;
    for (int i = 0; i < 5; i++)
        define(f, seg_ids[i], seg_exprs[i]);
    int nseg = 5, checked = 0, nevents = 0;
    for (int step = 0; step < 240; step++) {
        uint64_t r = rnd() % 100;
        if (r < 70) {
            event(f, rnd() % 3 ? "CRMID" : "Email", (int)(rnd() % 8));
            nevents++;
        } else if (r < 82) {
            link(f, (int)(rnd() % 8), (int)(rnd() % 8));
        } else if (r < 88) {
            struct op_ctx c = {.e = f->e, .ns = ns_id(f, "Email")};
            snprintf(c.value, sizeof c.value, "u%d@x.io", (int)(rnd() % 8));
            apply_call(f->e->apply, unlink_fn, &c, false); /* may not exist: fine */
        } else if (r < 92) {
            struct op_ctx c = {.e = f->e, .ns = ns_id(f, "CRMID")};
            snprintf(c.value, sizeof c.value, "c%d", (int)(rnd() % 8));
            assert_int_equal(apply_call(f->e->apply, delete_fn, &c, true), 0);
        } else if (r < 95) {
            engine_close(f->e);
            open_engine(f);
        }
        if (step == 120) { /* definitions change: states built before lack their sites */
            define(f, seg_ids[5], seg_exprs[5]);
            define(f, seg_ids[6], seg_exprs[6]);
            nseg = 7;
        }
        if (step % 2 == 1) checked += verify(f, nseg);
    }
    checked += verify(f, nseg);
    segsvc_stats st;
    segsvc_get_stats(f->e, &st);
    print_message("%d events, %d memberships checked; %llu states built, %llu profiles' events "
                  "read, %llu values written since the last restart\n",
                  nevents, checked, (unsigned long long)st.inc_builds,
                  (unsigned long long)st.event_reads, (unsigned long long)st.inc_writes);
    assert_true(checked > 500);
    assert_true(st.inc_writes > 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_random_history, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
