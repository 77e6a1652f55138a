/* Unit tests: the identity graph — linking rules (AEP's documented cases), the graph limit, unlink,
 * explain and history, cluster-change events, and a property test against connected components. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "kith/ingest.h"

#define FIXTURE_NAME "identity"
#define FIXTURE_GRAPH_MAX 50
#include "engine_fixture.h"

static size_t identity_count(json_t *p)
{
    return json_array_size(json_object_get(p, "identities"));
}


/* --- helpers --- */

static uint32_t nsid(fixture *f, const char *code)
{
    catalog_rdlock(f->e->cat);
    uint32_t id = catalog_namespace(f->e->cat, 1, code)->id;
    catalog_unlock(f->e->cat);
    return id;
}

static uint64_t cluster_of(fixture *f, const char *ns, const char *v)
{
    uint64_t id, cl;
    assert_int_equal(identity_lookup(f->e, 1, nsid(f, ns), v, strlen(v), &id, &cl), 0);
    return cl;
}

struct rules_ctx {
    fixture *f;
    json_t *doc, *errors;
};

static int rules_fn(void *ctx, store_batch *b)
{
    struct rules_ctx *c = ctx;
    return identity_rules_put(c->f->e, b, 1, c->doc, c->errors);
}

static int put_rules(fixture *f, const char *json, json_t **errors_out)
{
    struct rules_ctx c = {f, json_loads(json, 0, NULL), json_array()};
    assert_non_null(c.doc);
    int rc = apply_call(f->e->apply, rules_fn, &c, false);
    json_decref(c.doc);
    if (errors_out) *errors_out = c.errors;
    else json_decref(c.errors);
    return rc;
}

static int rec2(fixture *f, const char *ns1, const char *v1, const char *ns2, const char *v2)
{
    char rec[1024];
    if (strcmp(ns1, ns2) == 0)
        snprintf(rec, sizeof rec,
                 "{\"identityMap\":{\"%s\":[{\"id\":\"%s\",\"primary\":true},{\"id\":\"%s\"}]}}",
                 ns1, v1, v2);
    else
        snprintf(rec, sizeof rec,
                 "{\"identityMap\":{\"%s\":[{\"id\":\"%s\",\"primary\":true}],\"%s\":[{\"id\":\"%s\"}]}}",
                 ns1, v1, ns2, v2);
    return ingest(f, f->ds_crm, rec, NULL);
}

struct unlink_ctx {
    fixture *f;
    const char *ns1, *v1, *ns2, *v2;
};

static int unlink_fn(void *ctx, store_batch *b)
{
    struct unlink_ctx *c = ctx;
    kith_engine *e = c->f->e;
    if (!c->ns2)
        return identity_unlink_identity(e, b, 1, nsid(c->f, c->ns1), c->v1, strlen(c->v1));
    return identity_unlink_edge(e, b, 1, nsid(c->f, c->ns1), c->v1, strlen(c->v1),
                                nsid(c->f, c->ns2), c->v2, strlen(c->v2));
}

static int unlink2(fixture *f, const char *ns1, const char *v1, const char *ns2, const char *v2)
{
    struct unlink_ctx c = {f, ns1, v1, ns2, v2};
    return apply_call(f->e->apply, unlink_fn, &c, false);
}

#define ECID1 "11111111111111111111111111111111111111"
#define ECID2 "22222222222222222222222222222222222222"
#define ECID3 "33333333333333333333333333333333333333"
#define ECID4 "44444444444444444444444444444444444444"

/* --- tests --- */

/* The identity log: a group's graph keys reach the store through the syncer (the batch's blind part),
 * the log record with the group's indexed part. A crash between the two writes (simulated: the group
 * is committed on this thread and its blind part dropped) leaves only the log record; reopening the
 * engine materialises it, so the graph is the one the writer had built. */
static void test_log_replay_after_crash(void **state)
{
    fixture *f = *state;
    assert_int_equal(rec2(f, "CRMID", "c1", "ECID", ECID1), 0);
    assert_int_equal(rec2(f, "CRMID", "c2", "ECID", ECID2), 0);
    uint32_t crm = nsid(f, "CRMID"), ecid = nsid(f, "ECID");
    /* The crashing group (the apply thread is idle): ECID3 joins c1, ECID1 links c2 → one cluster. */
    kith_engine *e = f->e;
    store_batch *b = store_batch_new(e->store);
    identity_attach(e, b);
    ident_in a[2] = {{.ns = crm, .type = NS_CROSS_DEVICE, .primary = true, .linkable = true,
                      .value = "c1", .len = 2},
                     {.ns = ecid, .type = NS_COOKIE, .linkable = true, .value = ECID3, .len = 38}};
    ident_in c[2] = {{.ns = crm, .type = NS_CROSS_DEVICE, .primary = true, .linkable = true,
                      .value = "c2", .len = 2},
                     {.ns = ecid, .type = NS_COOKIE, .linkable = true, .value = ECID1, .len = 38}};
    uint64_t ids[2], cl;
    assert_int_equal(identity_apply(e, b, 1, a, 2, true, f->ds_crm, NULL, kith_now_ms(), ids, &cl), 0);
    assert_int_equal(identity_apply(e, b, 1, c, 2, true, f->ds_crm, NULL, kith_now_ms(), ids, &cl), 0);
    catalog_flush_seq(e->cat, b);
    assert_int_equal(profile_flush_dirty(e, b), 0);
    assert_int_equal(identity_flush_group(e, b), 0);
    assert_int_equal(store_batch_commit(e->store, b), 0);
    store_blind_free(store_batch_take_blind(b)); /* the crash: the syncer never writes it */
    store_batch_free(b);
    /* What the writer built (its cache), and that the committed graph does not have it yet. */
    const char *vals[4] = {"c1", "c2", ECID1, ECID3};
    uint32_t nss[4] = {crm, crm, ecid, ecid};
    uint64_t want[4], id;
    for (int i = 0; i < 4; i++)
        assert_int_equal(identity_writer_lookup(e, 1, nss[i], vals[i], strlen(vals[i]), &id, &want[i]), 0);
    for (int i = 1; i < 4; i++) assert_true(want[i] == want[0]);
    assert_int_equal(identity_lookup(e, 1, ecid, ECID3, 38, &id, &cl), KITH_ENOTFOUND);
    store_sync_wal(e->store);
    engine_close(f->e);
    open_engine(f);
    identity_stats st;
    identity_index_stats(f->e, &st);
    assert_int_equal(st.log_replayed, 1);
    for (int i = 0; i < 4; i++) {
        assert_int_equal(identity_lookup(f->e, 1, nss[i], vals[i], strlen(vals[i]), &id, &cl), 0);
        assert_true(cl == want[i]);
    }
    cluster_members m;
    assert_int_equal(identity_members(f->e, NULL, 1, want[0], &m), 0);
    assert_int_equal((int)m.n, 5); /* c1, c2, ECID1, ECID2, ECID3 */
    cluster_members_free(&m);
    /* Nothing is left to replay at the next start, and the graph keeps working. */
    engine_close(f->e);
    open_engine(f);
    identity_index_stats(f->e, &st);
    assert_int_equal(st.log_replayed, 0);
    assert_int_equal(rec2(f, "CRMID", "c2", "ECID", ECID4), 0);
    assert_true(cluster_of(f, "ECID", ECID4) == want[0]);
    assert_true(cluster_of(f, "ECID", ECID2) == want[0]);
}

/* AEP's shared-laptop case: the shared ECID goes to the last person who authenticated. */
static void test_shared_device_goes_to_last_login(void **state)
{
    fixture *f = *state;
    assert_int_equal(put_rules(f, "{\"uniqueNamespaces\":[\"CRMID\"],\"priority\":[\"CRMID\",\"Email\",\"ECID\"]}", NULL), 0);
    assert_int_equal(rec2(f, "CRMID", "jane", "ECID", ECID1), 0);
    assert_int_equal(cluster_of(f, "CRMID", "jane"), cluster_of(f, "ECID", ECID1));
    assert_int_equal(rec2(f, "CRMID", "john", "ECID", ECID1), 0);
    assert_int_equal(cluster_of(f, "CRMID", "john"), cluster_of(f, "ECID", ECID1));
    assert_int_not_equal(cluster_of(f, "CRMID", "jane"), cluster_of(f, "ECID", ECID1));
    json_t *p = lookup(f, "CRMID", "jane");
    assert_int_equal(identity_count(p), 1); /* no longer a graph, still a profile */
    json_decref(p);
    /* Jane logs in again: the ECID moves back to her. */
    assert_int_equal(rec2(f, "CRMID", "jane", "ECID", ECID1), 0);
    assert_int_equal(cluster_of(f, "CRMID", "jane"), cluster_of(f, "ECID", ECID1));
    assert_int_not_equal(cluster_of(f, "CRMID", "john"), cluster_of(f, "ECID", ECID1));
    /* Explain names the rule for the removed link. */
    int err = 0;
    json_t *x = identity_explain(f->e, 1, nsid(f, "CRMID"), "jane", 4, &err);
    assert_non_null(x);
    json_t *rm = json_object_get(x, "removedLinks");
    assert_true(json_array_size(rm) >= 1);
    bool unique_rule = false;
    size_t i;
    json_t *v;
    json_array_foreach(rm, i, v) unique_rule |=
        strcmp(json_string_value(json_object_get(v, "rule")), "uniqueNamespace") == 0;
    assert_true(unique_rule);
    assert_int_equal(json_array_size(json_object_get(x, "edges")), 1);
    json_decref(x);
    /* History of the ECID: newest first, several clusters (it was created straight into Jane's
     * cluster, stayed there when John took it, then moved when Jane logged in again). */
    json_t *h = identity_history(f->e, 1, nsid(f, "ECID"), ECID1, 38, &err);
    assert_non_null(h);
    assert_true(json_array_size(h) >= 2);
    assert_true(json_integer_value(json_object_get(json_array_get(h, 0), "cRecordedTS")) >=
                json_integer_value(json_object_get(json_array_get(h, 1), "cRecordedTS")));
    json_decref(h);
}

/* AEP's bad-email case: two CRM ids linked to one email → the older CRM↔email link goes. Junk emails
 * blocked by default never link at all. */
static void test_shared_email_and_blocked_values(void **state)
{
    fixture *f = *state;
    assert_int_equal(put_rules(f, "{\"uniqueNamespaces\":[\"CRMID\"]}", NULL), 0);
    assert_int_equal(rec2(f, "CRMID", "c1", "Email", "shared@acme.com"), 0);
    assert_int_equal(rec2(f, "CRMID", "c2", "Email", "shared@acme.com"), 0);
    assert_int_equal(cluster_of(f, "CRMID", "c2"), cluster_of(f, "Email", "shared@acme.com"));
    assert_int_not_equal(cluster_of(f, "CRMID", "c1"), cluster_of(f, "Email", "shared@acme.com"));
    /* test@test.com is blocked by default (the rules above left blockedValues out). */
    assert_int_equal(rec2(f, "CRMID", "c3", "Email", "TEST@test.com"), 0);
    assert_int_equal(rec2(f, "CRMID", "c4", "Email", "test@test.com"), 0);
    assert_int_not_equal(cluster_of(f, "CRMID", "c3"), cluster_of(f, "CRMID", "c4"));
    assert_int_not_equal(cluster_of(f, "CRMID", "c3"), cluster_of(f, "Email", "test@test.com"));
    /* A per-namespace blocked value from the rules. */
    assert_int_equal(put_rules(f, "{\"blockedValues\":{\"Phone\":[\"000\"]}}", NULL), 0);
    assert_int_equal(rec2(f, "CRMID", "c5", "Phone", "000"), 0);
    assert_int_not_equal(cluster_of(f, "CRMID", "c5"), cluster_of(f, "Phone", "000"));
    /* Without the default list, test@test.com links like any other value. */
    assert_int_equal(rec2(f, "CRMID", "c6", "Email", "test@test.com"), 0);
    assert_int_equal(cluster_of(f, "CRMID", "c6"), cluster_of(f, "Email", "test@test.com"));
}

static void test_rules_validation(void **state)
{
    fixture *f = *state;
    json_t *errors = NULL;
    assert_int_equal(put_rules(f, "{\"priority\":[\"CRMID\",\"Nope\"]}", &errors), KITH_EINVAL);
    assert_string_equal(json_string_value(json_object_get(json_array_get(errors, 0), "path")), "/priority/1");
    json_decref(errors);
    assert_int_equal(put_rules(f, "{\"uniqueNamespaces\":[\"Nope\"]}", &errors), KITH_EINVAL);
    assert_string_equal(json_string_value(json_object_get(json_array_get(errors, 0), "path")), "/uniqueNamespaces/0");
    json_decref(errors);
    assert_int_equal(put_rules(f, "{\"maxIdentities\":1}", &errors), KITH_EINVAL);
    assert_string_equal(json_string_value(json_object_get(json_array_get(errors, 0), "path")), "/maxIdentities");
    json_decref(errors);
    assert_int_equal(put_rules(f, "{\"priority\":[\"ECID\",\"CRMID\"]}", &errors), KITH_EINVAL);
    json_decref(errors);
    /* Nothing changed: the defaults are still in force. */
    json_t *r = identity_rules_get(f->e, 1);
    assert_int_equal(json_integer_value(json_object_get(r, "maxIdentities")), 50);
    assert_int_equal(json_array_size(json_object_get(r, "uniqueNamespaces")), 0);
    assert_true(json_array_size(json_object_get(json_object_get(r, "blockedValues"), "Email")) > 0);
    json_decref(r);
}

/* Graph limit: cookies go first, then devices, then people; oldest first. */
static void test_eviction_order(void **state)
{
    fixture *f = *state;
    assert_int_equal(put_rules(f, "{\"maxIdentities\":4}", NULL), 0);
    assert_int_equal(rec2(f, "CRMID", "e0", "ECID", ECID1), 0);
    assert_int_equal(rec2(f, "CRMID", "e0", "IDFA", "dev-1"), 0);
    assert_int_equal(rec2(f, "CRMID", "e0", "ECID", ECID2), 0); /* full: 4 */
    assert_int_equal(rec2(f, "CRMID", "e0", "ECID", ECID3), 0); /* evicts ECID1 (oldest cookie) */
    uint64_t c = cluster_of(f, "CRMID", "e0");
    assert_int_not_equal(cluster_of(f, "ECID", ECID1), c);
    assert_int_equal(cluster_of(f, "ECID", ECID2), c);
    assert_int_equal(cluster_of(f, "ECID", ECID3), c);
    assert_int_equal(rec2(f, "CRMID", "e0", "Email", "e0@x.com"), 0); /* evicts ECID2 */
    assert_int_not_equal(cluster_of(f, "ECID", ECID2), c);
    assert_int_equal(rec2(f, "CRMID", "e0", "Phone", "555-1"), 0); /* evicts ECID3, the last cookie */
    assert_int_not_equal(cluster_of(f, "ECID", ECID3), c);
    assert_int_equal(cluster_of(f, "IDFA", "dev-1"), c);
    json_t *p = lookup(f, "CRMID", "e0");
    assert_int_equal(identity_count(p), 4);
    json_decref(p);
    /* Only people and a device left: the device goes next. */
    assert_int_equal(rec2(f, "CRMID", "e0", "Phone", "555-2"), 0);
    assert_int_not_equal(cluster_of(f, "IDFA", "dev-1"), c);
    assert_int_equal(cluster_of(f, "Phone", "555-1"), c);
    /* Then the oldest person identifier not in the record. */
    assert_int_equal(rec2(f, "CRMID", "e0", "Phone", "555-3"), 0);
    assert_int_not_equal(cluster_of(f, "Email", "e0@x.com"), c);
    assert_int_equal(cluster_of(f, "Phone", "555-3"), c);
    int err;
    json_t *x = identity_explain(f->e, 1, nsid(f, "IDFA"), "dev-1", 5, &err);
    assert_non_null(x);
    assert_string_equal(json_string_value(json_object_get(json_array_get(json_object_get(x, "removedLinks"), 0), "rule")), "graphLimit");
    json_decref(x);
}

/* Unlink of an edge splits the cluster; of an identity isolates it; new data re-creates the link. */
static void test_unlink(void **state)
{
    fixture *f = *state;
    assert_int_equal(rec2(f, "CRMID", "u1", "Email", "u1@x.com"), 0);
    assert_int_equal(rec2(f, "Email", "u1@x.com", "ECID", ECID1), 0);
    assert_int_equal(cluster_of(f, "CRMID", "u1"), cluster_of(f, "ECID", ECID1));
    unsigned long long refused = atomic_load(&f->e->m.links_refused);
    assert_int_equal(unlink2(f, "Email", "u1@x.com", "ECID", ECID1), 0);
    assert_int_equal(atomic_load(&f->e->m.links_refused), refused); /* an unlink is no rule */
    assert_int_not_equal(cluster_of(f, "CRMID", "u1"), cluster_of(f, "ECID", ECID1));
    assert_int_equal(cluster_of(f, "CRMID", "u1"), cluster_of(f, "Email", "u1@x.com"));
    json_t *p = lookup(f, "ECID", ECID1);
    assert_int_equal(identity_count(p), 1);
    json_decref(p);
    assert_int_equal(unlink2(f, "Email", "u1@x.com", "ECID", ECID1), KITH_ENOTFOUND);
    /* New data asserting the link again re-creates it. */
    assert_int_equal(rec2(f, "Email", "u1@x.com", "ECID", ECID1), 0);
    assert_int_equal(cluster_of(f, "CRMID", "u1"), cluster_of(f, "ECID", ECID1));
    /* Unlink of an identity: it stands alone, the rest stays together. */
    assert_int_equal(unlink2(f, "Email", "u1@x.com", NULL, NULL), 0);
    assert_int_not_equal(cluster_of(f, "CRMID", "u1"), cluster_of(f, "Email", "u1@x.com"));
    assert_int_not_equal(cluster_of(f, "CRMID", "u1"), cluster_of(f, "ECID", ECID1));
    assert_int_equal(unlink2(f, "Email", "nobody@x.com", NULL, NULL), KITH_ENOTFOUND);
}

/* --- cluster-change events --- */

struct events_seen {
    int calls;
    size_t n;
    cluster_change v[256];
};

static int on_change(void *arg, store_batch *b, const cluster_change *v, size_t n)
{
    struct events_seen *s = arg;
    s->calls++;
    for (size_t i = 0; i < n && s->n < 256; i++) s->v[s->n++] = v[i];
    return 0;
}

static void msg_of(fixture *f, const char *json, ingest_msg *m)
{
    json_t *entity = json_loads(json, 0, NULL);
    json_t *errors = json_array();
    const char *msg;
    assert_int_equal(ingest_prepare(f->e, 1, f->ds_crm, NULL, entity, NULL, kith_now_ms(), m, errors, &msg), 0);
    json_decref(entity);
    json_decref(errors);
}

static void test_one_event_per_cluster_per_group(void **state)
{
    fixture *f = *state;
    static struct events_seen seen;
    memset(&seen, 0, sizeof seen);
    engine_on_cluster_change(f->e, on_change, &seen);
    /* One group: A+B merge, then C joins, then D+E merge, then B is asserted again. */
    ingest_msg m[4];
    msg_of(f, "{\"identityMap\":{\"CRMID\":[{\"id\":\"A\",\"primary\":true}],\"Email\":[{\"id\":\"b@x.com\"}]}}", &m[0]);
    msg_of(f, "{\"identityMap\":{\"Email\":[{\"id\":\"b@x.com\",\"primary\":true}],\"Phone\":[{\"id\":\"c\"}]}}", &m[1]);
    msg_of(f, "{\"identityMap\":{\"CRMID\":[{\"id\":\"D\",\"primary\":true}],\"Email\":[{\"id\":\"e@x.com\"}]}}", &m[2]);
    msg_of(f, "{\"identityMap\":{\"CRMID\":[{\"id\":\"A\",\"primary\":true}],\"Email\":[{\"id\":\"b@x.com\"}]}}", &m[3]);
    assert_int_equal(ingest_run(f->e, m, 4), 0);
    for (int i = 0; i < 4; i++) {
        assert_int_equal(m[i].rc, 0);
        ingest_msg_clear(&m[i]);
    }
    assert_int_equal(seen.calls, 1);
    for (size_t i = 0; i < seen.n; i++)
        for (size_t j = i + 1; j < seen.n; j++)
            assert_false(seen.v[i].sandbox == seen.v[j].sandbox && seen.v[i].cluster == seen.v[j].cluster);
    uint64_t abc = cluster_of(f, "CRMID", "A"), de = cluster_of(f, "CRMID", "D");
    int live = 0;
    for (size_t i = 0; i < seen.n; i++) {
        if (!seen.v[i].gone) {
            live++;
            assert_true(seen.v[i].cluster == abc || seen.v[i].cluster == de);
            assert_true(seen.v[i].reasons & CLUSTER_MERGED);
        }
    }
    assert_int_equal(live, 2);
    /* An unlink is one more group with one event for each resulting cluster. */
    seen.n = 0;
    seen.calls = 0;
    assert_int_equal(unlink2(f, "Email", "b@x.com", "Phone", "c"), 0);
    assert_int_equal(seen.calls, 1);
    assert_int_equal(seen.n, 2);
    for (size_t i = 0; i < seen.n; i++) assert_true(seen.v[i].reasons & CLUSTER_UNLINKED);
    assert_true(seen.v[0].reasons & CLUSTER_SPLIT);
}

/* A record rejected after its identity work was staged (its savepoint rolled back) publishes no
 * change event, and the writer forgets what it staged; an operation that fails as a whole neither. */
struct rollback_ctx {
    fixture *f;
    ingest_msg *before, *rejected, *kept;
};

static int rollback_fn(void *ctx, store_batch *b)
{
    struct rollback_ctx *c = ctx;
    if (c->before) {
        store_batch_savepoint(b);
        assert_int_equal(ingest_apply_msg(c->f->e, b, c->before), 0);
    }
    store_batch_savepoint(b);
    assert_int_equal(ingest_apply_msg(c->f->e, b, c->rejected), 0); /* merges two clusters... */
    store_batch_rollback(b);                                         /* ...then is rejected */
    if (!c->kept) return KITH_EINVAL; /* the whole operation fails */
    store_batch_savepoint(b);
    return ingest_apply_msg(c->f->e, b, c->kept);
}

static void test_rollback_publishes_nothing(void **state)
{
    fixture *f = *state;
    static struct events_seen seen;
    memset(&seen, 0, sizeof seen);
    assert_int_equal(rec2(f, "CRMID", "r1", "Email", "r1@x.com"), 0);
    assert_int_equal(rec2(f, "CRMID", "r2", "Phone", "p2"), 0);
    uint64_t p = cluster_of(f, "CRMID", "r1"), q = cluster_of(f, "CRMID", "r2");
    assert_int_not_equal(p, q);
    engine_on_cluster_change(f->e, on_change, &seen);
    ingest_msg m[4];
    msg_of(f, "{\"identityMap\":{\"Email\":[{\"id\":\"r1@x.com\",\"primary\":true}],\"Phone\":[{\"id\":\"p2\"}]}}", &m[0]);
    msg_of(f, "{\"identityMap\":{\"CRMID\":[{\"id\":\"r3\",\"primary\":true}],\"Email\":[{\"id\":\"r3@x.com\"}]}}", &m[1]);
    struct rollback_ctx c = {f, NULL, &m[0], &m[1]};
    assert_int_equal(apply_call(f->e->apply, rollback_fn, &c, false), 0);
    /* Nothing of the rejected record: both clusters as they were, no event naming them. */
    assert_int_equal(cluster_of(f, "CRMID", "r1"), p);
    assert_int_equal(cluster_of(f, "Phone", "p2"), q);
    assert_int_equal(cluster_of(f, "Email", "r1@x.com"), p);
    uint64_t r3 = cluster_of(f, "CRMID", "r3");
    assert_int_equal(cluster_of(f, "Email", "r3@x.com"), r3);
    assert_int_equal(seen.calls, 1);
    for (size_t i = 0; i < seen.n; i++) {
        assert_true(seen.v[i].cluster != p && seen.v[i].cluster != q);
        assert_int_equal(seen.v[i].cluster, r3);
    }
    /* The whole operation fails: no event at all. */
    seen.n = 0;
    seen.calls = 0;
    c.kept = NULL;
    assert_int_equal(apply_call(f->e->apply, rollback_fn, &c, false), KITH_EINVAL);
    assert_int_equal(seen.calls, 0);
    assert_int_equal(cluster_of(f, "Email", "r1@x.com"), p);
    assert_int_equal(cluster_of(f, "Phone", "p2"), q);
    /* The writer kept nothing stale: the same merge, accepted now, merges. */
    assert_int_equal(ingest_run(f->e, &m[0], 1), 0);
    assert_int_equal(m[0].rc, 0);
    assert_int_equal(cluster_of(f, "CRMID", "r1"), cluster_of(f, "CRMID", "r2"));
    assert_int_equal(seen.calls, 1);
    /* In one group: a record creates new identities, the next one touches them and is rejected, a
     * third links to them — it finds what the first wrote (one identity each, one cluster). */
    msg_of(f, "{\"identityMap\":{\"CRMID\":[{\"id\":\"r5\",\"primary\":true}],\"Email\":[{\"id\":\"r5@x.com\"}]}}", &m[2]);
    msg_of(f, "{\"identityMap\":{\"Email\":[{\"id\":\"r5@x.com\",\"primary\":true}],\"Phone\":[{\"id\":\"p6\"}]}}", &m[3]);
    ingest_msg_clear(&m[1]);
    msg_of(f, "{\"identityMap\":{\"CRMID\":[{\"id\":\"r5\",\"primary\":true}],\"Phone\":[{\"id\":\"p7\"}]}}", &m[1]);
    c = (struct rollback_ctx){f, &m[2], &m[3], &m[1]};
    assert_int_equal(apply_call(f->e->apply, rollback_fn, &c, false), 0);
    uint64_t r5 = cluster_of(f, "CRMID", "r5");
    assert_int_equal(cluster_of(f, "Email", "r5@x.com"), r5);
    assert_int_equal(cluster_of(f, "Phone", "p7"), r5);
    uint64_t id;
    assert_int_equal(identity_lookup(f->e, 1, nsid(f, "Phone"), "p6", 2, &id, &r3), KITH_ENOTFOUND);
    cluster_members cm;
    assert_int_equal(identity_members(f->e, NULL, 1, r5, &cm), 0);
    assert_int_equal((int)cm.n, 3);
    cluster_members_free(&cm);
    for (int i = 0; i < 4; i++) ingest_msg_clear(&m[i]);
}

/* Events are stored under their highest-priority identity when the rules name a priority. */
static void test_event_stored_under_priority(void **state)
{
    fixture *f = *state;
    assert_int_equal(put_rules(f, "{\"priority\":[\"CRMID\",\"IDFA\",\"GAID\",\"ECID\",\"AAID\"]}", NULL), 0);
    assert_int_equal(ingest(f, f->ds_web, "{\"_id\":\"pe1\",\"timestamp\":\"2024-01-01T00:00:00Z\",\"identityMap\":{\"ECID\":[{\"id\":\"" ECID1 "\",\"primary\":true}],\"IDFA\":[{\"id\":\"idfa-1\"}]}}", NULL), 0);
    uint64_t id, cl;
    assert_int_equal(identity_lookup(f->e, 1, nsid(f, "IDFA"), "idfa-1", 6, &id, &cl), 0);
    store_key k;
    skey_init(&k, 1);
    skey_u64(&k, id);
    store_iter *it = store_iter_new(f->e->store, NULL, STORE_CF_EVENT, k.b, k.n);
    assert_true(store_iter_valid(it));
    store_iter_free(it);
}

/* Property test: clusters equal the connected components of the asserted-minus-unlinked edges. */
static void test_property_components(void **state)
{
    fixture *f = *state;
    enum { N = 24, STEPS = 300 };
    static bool adj[N][N];
    memset(adj, 0, sizeof adj);
    for (unsigned seed = 1; seed <= 3; seed++) {
        srand(seed);
        char va[32], vb[32];
        for (int step = 0; step < STEPS; step++) {
            int a = rand() % N, c = rand() % N;
            if (a == c) continue;
            snprintf(va, sizeof va, "p%u-%d@x.com", seed, a);
            snprintf(vb, sizeof vb, "p%u-%d@x.com", seed, c);
            if (rand() % 4 == 0) {
                int rc = unlink2(f, "Email", va, "Email", vb);
                assert_int_equal(rc, adj[a][c] ? 0 : KITH_ENOTFOUND);
                adj[a][c] = adj[c][a] = false;
            } else {
                assert_int_equal(rec2(f, "Email", va, "Email", vb), 0);
                adj[a][c] = adj[c][a] = true;
            }
        }
        /* Reference components by BFS. */
        int comp[N];
        for (int i = 0; i < N; i++) comp[i] = -1;
        for (int i = 0; i < N; i++) {
            if (comp[i] >= 0) continue;
            int q[N], h = 0, t = 0;
            q[t++] = i;
            comp[i] = i;
            while (h < t) {
                int x = q[h++];
                for (int y = 0; y < N; y++)
                    if (adj[x][y] && comp[y] < 0) comp[y] = i, q[t++] = y;
            }
        }
        for (int i = 0; i < N; i++) {
            snprintf(va, sizeof va, "p%u-%d@x.com", seed, i);
            uint64_t id, ci;
            if (identity_lookup(f->e, 1, nsid(f, "Email"), va, strlen(va), &id, &ci) != 0) continue;
            cluster_members m;
            assert_int_equal(identity_members(f->e, NULL, 1, ci, &m), 0);
            int size = 0;
            for (int j = 0; j < N; j++) size += comp[j] == comp[i];
            assert_int_equal((int)m.n, size);
            cluster_members_free(&m);
            for (int j = 0; j < N; j++) {
                snprintf(vb, sizeof vb, "p%u-%d@x.com", seed, j);
                uint64_t cj;
                if (identity_lookup(f->e, 1, nsid(f, "Email"), vb, strlen(vb), &id, &cj) != 0) continue;
                assert_int_equal(ci == cj, comp[i] == comp[j]);
            }
        }
        memset(adj, 0, sizeof adj);
    }
}


/* Property test under rules: with CRMID unique and maxIdentities 6, random links between CRMIDs and
 * ECIDs leave every cluster (1) exactly the connected component of its remaining edges, (2) with at
 * most one CRMID, (3) with at most 6 identities. */
static void test_property_rules_invariants(void **state)
{
    fixture *f = *state;
    assert_int_equal(put_rules(f, "{\"uniqueNamespaces\":[\"CRMID\"],\"maxIdentities\":6}", NULL), 0);
    enum { NC = 8, NE = 30, STEPS = 400 };
    srand(7);
    char crm[32], ecid[40];
    for (int step = 0; step < STEPS; step++) {
        int a = rand() % NC, c = rand() % NE;
        snprintf(crm, sizeof crm, "rc%d", a);
        snprintf(ecid, sizeof ecid, "%038d", c + 1);
        if (rand() % 3 == 0) {
            /* ECID to ECID (an anonymous device pair) */
            char e2[40];
            snprintf(e2, sizeof e2, "%038d", rand() % NE + 1);
            if (strcmp(e2, ecid) != 0) {
                char rec[512];
                snprintf(rec, sizeof rec, "{\"identityMap\":{\"ECID\":[{\"id\":\"%s\",\"primary\":true},{\"id\":\"%s\"}]}}", ecid, e2);
                assert_int_equal(ingest(f, f->ds_crm, rec, NULL), 0);
            }
        } else {
            assert_int_equal(rec2(f, "CRMID", crm, "ECID", ecid), 0);
        }
        if (rand() % 10 == 0) unlink2(f, "CRMID", crm, "ECID", ecid);
    }
    assert_true(atomic_load(&f->e->m.links_refused) > 20); /* the rules did remove links */
    for (int i = 0; i < NE; i++) {
        snprintf(ecid, sizeof ecid, "%038d", i + 1);
        int err = 0;
        json_t *x = identity_explain(f->e, 1, nsid(f, "ECID"), ecid, 38, &err);
        if (!x) continue;
        json_t *members = json_object_get(x, "members"), *edges = json_object_get(x, "edges");
        size_t n = json_array_size(members), j, k;
        assert_true(n <= 6);
        int crms = 0;
        json_t *m;
        json_array_foreach(members, j, m) crms +=
            strcmp(json_string_value(json_object_get(m, "namespace")), "CRMID") == 0;
        assert_true(crms <= 1);
        /* BFS over the edges from member 0 reaches every member, and every edge is inside. */
        bool reached[64] = {false};
        reached[0] = true;
        for (bool grew = true; grew;) {
            grew = false;
            json_t *ed;
            json_array_foreach(edges, k, ed)
            {
                const char *fx = json_string_value(json_object_get(json_object_get(ed, "from"), "xid"));
                const char *tx = json_string_value(json_object_get(json_object_get(ed, "to"), "xid"));
                int fi = -1, ti = -1;
                json_array_foreach(members, j, m)
                {
                    const char *mx = json_string_value(json_object_get(m, "xid"));
                    if (strcmp(mx, fx) == 0) fi = (int)j;
                    if (strcmp(mx, tx) == 0) ti = (int)j;
                }
                assert_true(fi >= 0 && ti >= 0);
                if (reached[fi] != reached[ti]) reached[fi] = reached[ti] = grew = true;
            }
        }
        for (j = 0; j < n; j++) assert_true(reached[j]);
        json_decref(x);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_shared_device_goes_to_last_login, setup, teardown),
        cmocka_unit_test_setup_teardown(test_shared_email_and_blocked_values, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rules_validation, setup, teardown),
        cmocka_unit_test_setup_teardown(test_eviction_order, setup, teardown),
        cmocka_unit_test_setup_teardown(test_unlink, setup, teardown),
        cmocka_unit_test_setup_teardown(test_one_event_per_cluster_per_group, setup, teardown),
        cmocka_unit_test_setup_teardown(test_rollback_publishes_nothing, setup, teardown),
        cmocka_unit_test_setup_teardown(test_event_stored_under_priority, setup, teardown),
        cmocka_unit_test_setup_teardown(test_property_components, setup, teardown),
        cmocka_unit_test_setup_teardown(test_property_rules_invariants, setup, teardown),
        cmocka_unit_test_setup_teardown(test_log_replay_after_crash, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
