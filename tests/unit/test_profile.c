/* Unit tests: the merge function (every rule, ties, arrays, dataSetPrecedence exclusions) and merge
 * policies through the engine (read-time == materialised, lastUpdatedDate across datasets, events
 * under dataSetPrecedence and identityGraph none, a stored default followed by lookups). */
#include "kith/kjson.h"
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "kith/ingest.h"
#include "profile/mergepolicy.h"

/* --- the merge function alone --- */

static profile_frag frag(int64_t order, int64_t stamp, uint64_t owner, const char *ds,
                         const char *json)
{
    profile_frag f = {.order = order, .stamp = stamp, .owner = owner};
    snprintf(f.dataset, sizeof f.dataset, "%s", ds);
    f.entity = json_loads(json, 0, NULL);
    assert_non_null(f.entity);
    return f;
}

static const char *str_at(json_t *doc, const char *a, const char *b)
{
    json_t *v = json_object_get(json_object_get(doc, "entity"), a);
    if (b) v = json_object_get(v, b);
    return json_string_value(v);
}

#define DS_A "aaaaaaaaaaaaaaaaaaaaaaaa"
#define DS_B "bbbbbbbbbbbbbbbbbbbbbbbb"
#define DS_C "cccccccccccccccccccccccc"

static void test_merge_timestamp_ordered(void **state)
{
    (void)state;
    /* Given out of order: the merge sorts by ordering time, not by position. */
    profile_frag f[3] = {
        frag(300, 1000, 1, DS_B, "{\"p\":{\"first\":\"new\"},\"tags\":[\"z\"]}"),
        frag(100, 3000, 2, DS_A,
             "{\"p\":{\"first\":\"old\",\"last\":\"L\"},\"tags\":[\"a\",\"b\"],\"x\":1}"),
        frag(200, 2000, 1, DS_C, "{\"x\":2,\"identityMap\":{\"Email\":[{\"id\":\"q\"}]}}"),
    };
    json_t *doc = profile_merge(f, 3, NULL);
    assert_string_equal(str_at(doc, "p", "first"), "new");
    assert_string_equal(str_at(doc, "p", "last"), "L"); /* objects merge key by key */
    json_t *tags = json_object_get(json_object_get(doc, "entity"), "tags");
    assert_int_equal(json_array_size(tags), 1); /* arrays are atomic: no element merge */
    assert_string_equal(json_string_value(json_array_get(tags, 0)), "z");
    assert_int_equal(json_integer_value(json_object_get(json_object_get(doc, "entity"), "x")), 2);
    assert_null(json_object_get(json_object_get(doc, "entity"), "identityMap"));
    json_t *src = json_object_get(doc, "sources");
    assert_int_equal(json_array_size(src), 3);
    assert_string_equal(json_string_value(json_array_get(src, 0)), DS_A);
    assert_int_equal(json_integer_value(json_object_get(doc, "lastModifiedAt")), 3);
    json_decref(doc);
}

static void test_merge_ties_by_write_stamp(void **state)
{
    (void)state;
    /* Equal ordering times: the later write wins, whatever the dataset ids say. */
    profile_frag f[2] = {
        frag(100, 2000, 1, DS_A, "{\"v\":\"second\"}"),
        frag(100, 1000, 1, DS_B, "{\"v\":\"first\"}"),
    };
    json_t *doc = profile_merge(f, 2, NULL);
    assert_string_equal(str_at(doc, "v", NULL), "second");
    json_decref(doc);
}

static void test_merge_dataset_precedence(void **state)
{
    (void)state;
    char order[2][KITH_ID_LEN + 1] = {DS_B, DS_A};
    merge_policy p = {.attr = MP_DATASET_PRECEDENCE, .norder = 2, .order = order};
    profile_frag f[3] = {
        frag(900, 9000, 1, DS_A, "{\"v\":\"a-newest\",\"onlyA\":1,\"arr\":[1,2,3]}"),
        frag(100, 1000, 1, DS_B, "{\"v\":\"b-oldest\",\"arr\":[9]}"),
        frag(950, 9500, 1, DS_C, "{\"v\":\"c-unlisted\",\"onlyC\":1}"),
    };
    json_t *doc = profile_merge(f, 3, &p);
    assert_string_equal(str_at(doc, "v", NULL), "b-oldest"); /* B outranks A, however old */
    json_t *ent = json_object_get(doc, "entity");
    assert_non_null(json_object_get(ent, "onlyA"));
    assert_null(json_object_get(ent, "onlyC")); /* unlisted: not merged at all */
    assert_int_equal(json_array_size(json_object_get(ent, "arr")), 1);
    assert_int_equal(json_array_size(json_object_get(doc, "sources")), 2);
    json_decref(doc);
    /* Two identities of a cluster in the same dataset: time decides between them. */
    char one[1][KITH_ID_LEN + 1] = {DS_A};
    merge_policy q = {.attr = MP_DATASET_PRECEDENCE, .norder = 1, .order = one};
    profile_frag g[2] = {
        frag(200, 2000, 7, DS_A, "{\"v\":\"newer\"}"),
        frag(100, 1000, 8, DS_A, "{\"v\":\"older\"}"),
    };
    doc = profile_merge(g, 2, &q);
    assert_string_equal(str_at(doc, "v", NULL), "newer");
    json_decref(doc);
}

static void test_merge_empty(void **state)
{
    (void)state;
    json_t *doc = profile_merge(NULL, 0, NULL);
    assert_int_equal(json_object_size(json_object_get(doc, "entity")), 0);
    assert_int_equal(json_array_size(json_object_get(doc, "sources")), 0);
    json_decref(doc);
}

static void test_filter_parse(void **state)
{
    (void)state;
    event_filter f;
    assert_int_equal(profile_event_filter_parse("web.webPageDetails.isHomePage=true", &f), 0);
    assert_string_equal(f.path, "web.webPageDetails.isHomePage");
    assert_int_equal(f.op, EVF_EQ);
    assert_string_equal(f.value, "true");
    assert_int_equal(profile_event_filter_parse("_acme.seq >= 3", &f), 0);
    assert_int_equal(f.op, EVF_GE);
    assert_string_equal(f.value, "3");
    assert_int_equal(profile_event_filter_parse("a!=\"x y\"", &f), 0);
    assert_int_equal(f.op, EVF_NE);
    assert_string_equal(f.value, "x y");
    assert_int_equal(profile_event_filter_parse("a<b", &f), 0);
    assert_int_equal(f.op, EVF_LT);
    assert_int_equal(profile_event_filter_parse("a>1", &f), 0);
    assert_int_equal(f.op, EVF_GT);
    assert_int_equal(profile_event_filter_parse("a<=1", &f), 0);
    assert_int_equal(f.op, EVF_LE);
    assert_int_equal(profile_event_filter_parse("noop", &f), KITH_EINVAL);
    assert_int_equal(profile_event_filter_parse("=1", &f), KITH_EINVAL);
    assert_int_equal(profile_event_filter_parse("a b=1", &f), KITH_EINVAL);
    assert_int_equal(profile_event_filter_parse("a=1=2", &f), KITH_EINVAL);
}

/* --- through the engine --- */

static char dir[256];

typedef struct fixture {
    kith_engine *e;
    char ds_crm[KITH_ID_LEN + 1], ds_loy[KITH_ID_LEN + 1], ds_web[KITH_ID_LEN + 1];
} fixture;

static const char *profile_schema =
    "{\"title\":\"crm\",\"meta:class\":\"https://ns.adobe.com/xdm/context/profile\","
    "\"allOf\":[{\"$ref\":\"https://ns.adobe.com/xdm/context/profile-person-details\"},"
    "{\"$ref\":\"https://ns.adobe.com/xdm/context/identitymap\"},"
    "{\"$ref\":\"https://ns.adobe.com/xdm/common/external-source-system-audit-details\"}],"
    "\"properties\":{\"_acme\":{\"type\":\"object\",\"properties\":{\"tags\":{\"type\":\"array\","
    "\"items\":{\"type\":\"string\"}},\"tier\":{\"type\":\"string\"}}}},"
    "\"$id\":\"https://ns.adobe.com/kith/schemas/p1\",\"meta:altId\":\"_kith.schemas.p1\","
    "\"meta:immutableTags\":[\"union\"]}";
static const char *event_schema =
    "{\"title\":\"web\",\"meta:class\":\"https://ns.adobe.com/xdm/context/experienceevent\","
    "\"allOf\":[{\"$ref\":\"https://ns.adobe.com/xdm/context/identitymap\"},"
    "{\"$ref\":\"https://ns.adobe.com/xdm/context/experienceevent-web\"}],"
    "\"$id\":\"https://ns.adobe.com/kith/schemas/e1\",\"meta:altId\":\"_kith.schemas.e1\","
    "\"meta:immutableTags\":[\"union\"]}";

static void put_dataset(kith_engine *e, store_batch *b, char *id, const char *schema)
{
    catalog_new_id(id);
    catalog_put_dataset(e->cat, b, 1,
                        json_pack("{s:s, s:s, s:{s:s}, s:{s:[s], s:[s]}}", "id", id, "name", id,
                                  "schemaRef", "id", schema, "tags", "unifiedProfile",
                                  "enabled:true", "unifiedIdentity", "enabled:true"));
}

static int setup_fn(void *ctx, store_batch *b)
{
    fixture *f = ctx;
    const char *defs[2] = {profile_schema, event_schema};
    for (int i = 0; i < 2; i++) {
        json_t *doc = json_loads(defs[i], 0, NULL);
        json_t *errors = json_array();
        kith_schema *s = NULL;
        if (schema_compile(doc, &s, errors) != 0) return KITH_EINVAL;
        json_decref(errors);
        catalog_put_schema(f->e->cat, b, 1, doc, s);
    }
    put_dataset(f->e, b, f->ds_crm, "https://ns.adobe.com/kith/schemas/p1");
    put_dataset(f->e, b, f->ds_loy, "https://ns.adobe.com/kith/schemas/p1");
    put_dataset(f->e, b, f->ds_web, "https://ns.adobe.com/kith/schemas/e1");
    return 0;
}

static int setup(void **state)
{
    snprintf(dir, sizeof dir, "/tmp/kith-test-profile-XXXXXX");
    assert_non_null(mkdtemp(dir));
    fixture *f = calloc(1, sizeof *f);
    char *err = NULL;
    assert_int_equal(engine_open(dir, NULL, "test-admin", false, &f->e, &err), 0);
    assert_int_equal(apply_call(f->e->apply, setup_fn, f, false), 0);
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    fixture *f = *state;
    engine_close(f->e);
    free(f);
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    return system(cmd) == 0 ? 0 : -1;
}

static void ingest(fixture *f, const char *ds, const char *json)
{
    json_t *entity = json_loads(json, 0, NULL);
    assert_non_null(entity);
    json_t *errors = json_array();
    const char *msg;
    ingest_msg m;
    int rc = ingest_prepare(f->e, 1, ds, NULL, entity, NULL, kith_now_ms(), &m, errors, &msg);
    if (rc) {
        char *t = json_dumps(errors, 0);
        fprintf(stderr, "ingest: %s %s\n", msg ? msg : "", t);
        free(t);
    }
    json_decref(entity);
    json_decref(errors);
    assert_int_equal(rc, 0);
    rc = ingest_run(f->e, &m, 1);
    if (rc == 0) rc = m.rc;
    ingest_msg_clear(&m);
    assert_int_equal(rc, 0);
}

static uint32_t ns_id(fixture *f, const char *code)
{
    catalog_rdlock(f->e->cat);
    uint32_t id = catalog_namespace(f->e->cat, 1, code)->id;
    catalog_unlock(f->e->cat);
    return id;
}

/* The profile object under its XID key (owned). */
static json_t *lookup(fixture *f, const char *ns, const char *value, const merge_policy *p)
{
    int err = 0;
    json_t *r = profile_lookup_policy(f->e, 1, ns_id(f, ns), value, strlen(value), NULL, p, &err);
    assert_non_null(r);
    json_t *out = json_incref(json_object_iter_value(json_object_iter(r)));
    json_decref(r);
    return out;
}

static const char *first_name(json_t *p)
{
    json_t *person = json_object_get(json_object_get(p, "entity"), "person");
    return json_string_value(json_object_get(json_object_get(person, "name"), "firstName"));
}

static void two_people(fixture *f)
{
    ingest(f, f->ds_crm,
           "{\"identityMap\":{\"CRMID\":[{\"id\":\"c1\",\"primary\":true}],\"Email\":[{\"id\":"
           "\"c1@x.com\"}]},\"person\":{\"name\":{\"firstName\":\"Crm\",\"lastName\":\"C\"}},"
           "\"_acme\":{\"tier\":\"gold\",\"tags\":[\"a\",\"b\"]}}");
    ingest(f, f->ds_loy,
           "{\"identityMap\":{\"Phone\":[{\"id\":\"555\",\"primary\":true}],\"CRMID\":[{\"id\":"
           "\"c1\"}]},\"person\":{\"name\":{\"firstName\":\"Loy\"}},\"_acme\":{\"tags\":[\"z\"]}}");
    ingest(f, f->ds_web,
           "{\"_id\":\"e-crm\",\"timestamp\":\"2024-01-01T00:00:00Z\",\"identityMap\":{\"CRMID\":[{"
           "\"id\":\"c1\",\"primary\":true}]},\"web\":{\"webPageDetails\":{\"name\":\"a\"}}}");
    ingest(
        f, f->ds_web,
        "{\"_id\":\"e-phone\",\"timestamp\":\"2024-01-01T00:00:01Z\",\"identityMap\":{\"Phone\":[{"
        "\"id\":\"555\",\"primary\":true}]},\"web\":{\"webPageDetails\":{\"name\":\"b\"}}}");
}

/* The read-time merge of the default policy equals the materialised view. */
static void test_read_time_equals_materialised(void **state)
{
    fixture *f = *state;
    two_people(f);
    merge_policy rt = {.attr = MP_TIMESTAMP_ORDERED, .graph = MP_GRAPH_PDG, .read_time = true};
    const char *who[][2] = {{"CRMID", "c1"}, {"Phone", "555"}, {"Email", "c1@x.com"}};
    for (size_t i = 0; i < 3; i++) {
        json_t *mat = lookup(f, who[i][0], who[i][1], NULL);
        json_t *now = lookup(f, who[i][0], who[i][1], &rt);
        assert_true(json_equal(json_object_get(mat, "entity"), json_object_get(now, "entity")));
        assert_true(json_equal(json_object_get(mat, "sources"), json_object_get(now, "sources")));
        assert_true(
            json_equal(json_object_get(mat, "identities"), json_object_get(now, "identities")));
        assert_true(json_equal(json_object_get(mat, "lastModifiedAt"),
                               json_object_get(now, "lastModifiedAt")));
        json_decref(mat);
        json_decref(now);
    }
    json_t *p = lookup(f, "CRMID", "c1", NULL);
    assert_string_equal(first_name(p), "Loy");
    json_decref(p);
}

/* The text path writes exactly what the tree path dumps to, for every identity of a cluster, for a
 * profile with only events (no stored view), and with a named policy; unknown identities are 404s. */
static void test_text_equals_tree(void **state)
{
    fixture *f = *state;
    two_people(f);
    ingest(f, f->ds_web,
           "{\"_id\":\"e-lone\",\"timestamp\":\"2024-01-01T00:00:02Z\",\"identityMap\":{\"ECID\":[{"
           "\"id\":\"12345678901234567890123456789012345678\",\"primary\":true}]},"
           "\"web\":{\"webPageDetails\":{\"name\":\"q\\\"uote\"}}}");
    merge_policy named = {.attr = MP_TIMESTAMP_ORDERED, .graph = MP_GRAPH_PDG};
    snprintf(named.id, sizeof named.id, "%s", "policy-\"x\"");
    const char *who[][2] = {{"CRMID", "c1"},
                            {"Phone", "555"},
                            {"Email", "c1@x.com"},
                            {"ECID", "12345678901234567890123456789012345678"}};
    for (size_t pol = 0; pol < 2; pol++)
        for (size_t i = 0; i < 4; i++) {
            const merge_policy *p = pol ? &named : NULL;
            int err = 0;
            uint32_t ns = ns_id(f, who[i][0]);
            json_t *tree =
                profile_lookup_policy(f->e, 1, ns, who[i][1], strlen(who[i][1]), NULL, p, &err);
            assert_non_null(tree);
            kith_buf want = {0}, got = {0};
            assert_int_equal(kjson_dump(tree, &want), 0);
            json_decref(tree);
            assert_int_equal(profile_lookup_text(f->e, 1, ns, who[i][1], strlen(who[i][1]), p, &got),
                             0);
            assert_int_equal(got.len, want.len);
            assert_memory_equal(got.data, want.data, want.len);
            /* and it is JSON */
            json_t *back = json_loadb(got.data, got.len, JSON_REJECT_DUPLICATES, NULL);
            assert_non_null(back);
            json_decref(back);
            kith_buf_free(&want);
            kith_buf_free(&got);
        }
    kith_buf none = {0};
    assert_int_equal(profile_lookup_text(f->e, 1, ns_id(f, "CRMID"), "nobody", 6, NULL, &none),
                     KITH_ENOTFOUND);
    assert_int_equal(none.len, 0);
}

/* A dedup entry whose event never reached the store (a process killed between the writer's commit
 * and the syncer's blind append) does not swallow the resend; once stored, a resend is a duplicate,
 * and two copies in one group store one event. */
static int put_orphan_dedup(void *ctx, store_batch *b)
{
    fixture *f = ctx;
    store_key k;
    skey_init(&k, 1);
    skey_bytes(&k, f->ds_web, KITH_ID_LEN);
    skey_bytes(&k, "e-orphan", 8);
    uint8_t v[40];
    kith_put_be64(v, 1704067200000ull);
    kith_put_be64(v + 8, 1704067200000ull);
    kith_put_be64(v + 16, 987654321ull); /* the identity the lost copy went under */
    kith_put_be64(v + 24, f->e->epoch ^ 1); /* an earlier run */
    kith_put_be64(v + 32, 1);
    store_batch_put(b, STORE_CF_DEDUP, k.b, k.n, v, sizeof v);
    return 0;
}

static size_t events_named(fixture *f, const char *id)
{
    size_t n = 0, idl = strlen(id);
    store_iter *it = store_iter_new(f->e->store, NULL, STORE_CF_EVENT, "\0\0\0\1", 4);
    for (; store_iter_valid(it); store_iter_next(it)) {
        size_t kl;
        const uint8_t *k = store_iter_key(it, &kl);
        if (kl >= idl && memcmp(k + kl - idl, id, idl) == 0) n++;
    }
    store_iter_free(it);
    return n;
}

static void test_dedup_entry_without_event(void **state)
{
    fixture *f = *state;
    assert_int_equal(apply_call(f->e->apply, put_orphan_dedup, f, false), 0);
    const char *ev = "{\"_id\":\"e-orphan\",\"timestamp\":\"2024-01-01T00:00:00Z\",\"identityMap\":"
                     "{\"CRMID\":[{\"id\":\"c9\",\"primary\":true}]},"
                     "\"web\":{\"webPageDetails\":{\"name\":\"a\"}}}";
    uint64_t dup0 = atomic_load(&f->e->m.events_duplicate);
    ingest(f, f->ds_web, ev);
    assert_int_equal(events_named(f, "e-orphan"), 1);
    assert_int_equal(atomic_load(&f->e->m.events_duplicate), dup0);
    ingest(f, f->ds_web, ev);
    assert_int_equal(events_named(f, "e-orphan"), 1);
    assert_int_equal(atomic_load(&f->e->m.events_duplicate), dup0 + 1);
    /* two copies in one group: the second finds the first in flight */
    ingest_msg m[2];
    for (int i = 0; i < 2; i++) {
        json_t *entity = json_loads("{\"_id\":\"e-twice\",\"timestamp\":\"2024-01-02T00:00:00Z\","
                                    "\"identityMap\":{\"CRMID\":[{\"id\":\"c9\",\"primary\":true}]}}",
                                    0, NULL);
        json_t *errors = json_array();
        const char *msg;
        assert_int_equal(ingest_prepare(f->e, 1, f->ds_web, NULL, entity, NULL, kith_now_ms(),
                                        &m[i], errors, &msg),
                         0);
        json_decref(entity);
        json_decref(errors);
    }
    assert_int_equal(ingest_run(f->e, m, 2), 0);
    assert_int_equal(m[0].rc, 0);
    assert_int_equal(m[1].rc, 0);
    ingest_msg_clear(&m[0]);
    ingest_msg_clear(&m[1]);
    assert_int_equal(events_named(f, "e-twice"), 1);
    assert_int_equal(atomic_load(&f->e->m.events_duplicate), dup0 + 2);
}

static void test_identity_graph_none(void **state)
{
    fixture *f = *state;
    two_people(f);
    merge_policy none = {.attr = MP_TIMESTAMP_ORDERED, .graph = MP_GRAPH_NONE};
    json_t *p = lookup(f, "CRMID", "c1", &none);
    json_t *name = json_object_get(json_object_get(json_object_get(p, "entity"), "person"), "name");
    assert_string_equal(json_string_value(json_object_get(name, "firstName")), "Crm");
    assert_int_equal(json_array_size(json_object_get(p, "identities")), 1);
    assert_int_equal(json_array_size(json_object_get(p, "sources")), 1);
    json_decref(p);
    /* Events: only those stored under the identity asked for. */
    event_query q = {.start_ms = INT64_MIN, .end_ms = INT64_MAX, .limit = 10, .policy = &none};
    int err = 0;
    json_t *r = profile_events(f->e, 1, ns_id(f, "CRMID"), "c1", 2, &q, &err);
    assert_non_null(r);
    json_t *ch = json_object_get(r, "children");
    assert_int_equal(json_array_size(ch), 1);
    assert_string_equal(json_string_value(json_object_get(json_array_get(ch, 0), "entityId")),
                        "e-crm");
    json_decref(r);
    q.policy = NULL;
    r = profile_events(f->e, 1, ns_id(f, "CRMID"), "c1", 2, &q, &err);
    assert_int_equal(json_array_size(json_object_get(r, "children")), 2);
    json_decref(r);
}

static void test_precedence_excludes_records_and_events(void **state)
{
    fixture *f = *state;
    two_people(f);
    char order[1][KITH_ID_LEN + 1];
    memcpy(order[0], f->ds_crm, sizeof order[0]);
    merge_policy p = {
        .attr = MP_DATASET_PRECEDENCE, .graph = MP_GRAPH_PDG, .norder = 1, .order = order};
    json_t *v = lookup(f, "Phone", "555", &p);
    json_t *acme = json_object_get(json_object_get(v, "entity"), "_acme");
    assert_int_equal(json_array_size(json_object_get(acme, "tags")), 2); /* crm's, not loyalty's */
    assert_int_equal(json_array_size(json_object_get(v, "sources")), 1);
    json_decref(v);
    event_query q = {.start_ms = INT64_MIN, .end_ms = INT64_MAX, .limit = 10, .policy = &p};
    int err = 0;
    json_t *r = profile_events(f->e, 1, ns_id(f, "Phone"), "555", 3, &q, &err);
    assert_int_equal(json_array_size(json_object_get(r, "children")), 0); /* web not listed */
    json_decref(r);
    char two[2][KITH_ID_LEN + 1];
    memcpy(two[0], f->ds_web, sizeof two[0]);
    memcpy(two[1], f->ds_crm, sizeof two[1]);
    merge_policy p2 = {.attr = MP_DATASET_PRECEDENCE, .norder = 2, .order = two};
    q.policy = &p2;
    r = profile_events(f->e, 1, ns_id(f, "Phone"), "555", 3, &q, &err);
    assert_int_equal(json_array_size(json_object_get(r, "children")), 2);
    json_decref(r);
}

static void test_last_updated_date_across_datasets(void **state)
{
    fixture *f = *state;
    ingest(
        f, f->ds_crm,
        "{\"identityMap\":{\"CRMID\":[{\"id\":\"u1\",\"primary\":true}]},\"person\":{\"name\":{"
        "\"firstName\":\"Newer\"}},\"extSourceSystemAudit\":{\"lastUpdatedDate\":\"2024-03-02T00:"
        "00:00Z\"}}");
    ingest(
        f, f->ds_loy,
        "{\"identityMap\":{\"CRMID\":[{\"id\":\"u1\",\"primary\":true}]},\"person\":{\"name\":{"
        "\"firstName\":\"Older\"}},\"extSourceSystemAudit\":{\"lastUpdatedDate\":\"2024-03-01T00:"
        "00:00Z\"}}");
    merge_policy rt = {.read_time = true};
    for (int i = 0; i < 2; i++) {
        json_t *p = lookup(f, "CRMID", "u1", i ? &rt : NULL);
        json_t *name =
            json_object_get(json_object_get(json_object_get(p, "entity"), "person"), "name");
        assert_string_equal(json_string_value(json_object_get(name, "firstName")), "Newer");
        json_decref(p);
    }
}

struct store_ctx {
    kith_engine *e;
    json_t *fields;
    json_t *stored;
};

static int store_fn(void *ctx, store_batch *b)
{
    struct store_ctx *c = ctx;
    return mpolicy_store(c->e, b, 1, "mp-1", c->fields, 0, &c->stored);
}

/* A stored default of another shape is followed by lookups without a policy (read-time). */
static void test_stored_default_followed(void **state)
{
    fixture *f = *state;
    two_people(f);
    json_t *body =
        json_pack("{s:s, s:{s:s}, s:{s:s}, s:{s:s, s:[s]}, s:b}", "name", "crm-only", "schema",
                  "name", "_xdm.context.profile", "identityGraph", "type", "pdg", "attributeMerge",
                  "type", "dataSetPrecedence", "order", f->ds_crm, "default", 1);
    json_t *fields = NULL, *errors = NULL;
    char detail[200];
    assert_int_equal(mpolicy_validate(f->e, 1, body, &fields, &errors, detail, sizeof detail), 0);
    struct store_ctx c = {f->e, fields, NULL};
    assert_int_equal(apply_call(f->e->apply, store_fn, &c, false), 0);
    assert_int_equal(json_integer_value(json_object_get(c.stored, "version")), 1);
    json_t *p = lookup(f, "Phone", "555", NULL);
    json_t *name = json_object_get(json_object_get(json_object_get(p, "entity"), "person"), "name");
    assert_string_equal(json_string_value(json_object_get(name, "firstName")), "Crm");
    assert_string_equal(json_string_value(json_object_get(json_object_get(p, "mergePolicy"), "id")),
                        "mp-1");
    json_decref(p);
    /* Bad order: unknown dataset, nothing returned. */
    json_object_set_new(json_object_get(body, "attributeMerge"), "order", json_pack("[s]", "nope"));
    json_t *f2 = NULL;
    assert_int_equal(mpolicy_validate(f->e, 1, body, &f2, &errors, detail, sizeof detail),
                     KITH_EINVAL);
    assert_null(f2);
    assert_string_equal(json_string_value(json_object_get(json_array_get(errors, 0), "path")),
                        "/attributeMerge/order/0");
    json_decref(errors);
    json_decref(c.stored);
    json_decref(fields);
    json_decref(body);
}

/* Every stored view of sandbox 1 carries signature sig. */
static void assert_views_signed(fixture *f, uint64_t sig)
{
    uint8_t prefix[4] = {0, 0, 0, 1};
    store_iter *it = store_iter_new(f->e->store, NULL, STORE_CF_PROFILE, prefix, 4);
    size_t n = 0;
    for (; store_iter_valid(it); store_iter_next(it), n++) {
        size_t vl;
        const uint8_t *v = store_iter_value(it, &vl);
        json_t *view = json_loadb((const char *)v, vl, 0, NULL);
        assert_non_null(view);
        assert_true(profile_view_signature(view) == sig);
        json_decref(view);
    }
    store_iter_free(it);
    assert_true(n >= 1);
}

/* The text path equals the tree path for the default policy (stale views included). */
static void assert_text_equals_tree(fixture *f, const char *ns, const char *value)
{
    merge_policy dflt;
    assert_int_equal(profile_policy_resolve(f->e, 1, NULL, &dflt), 0);
    int err = 0;
    json_t *tree = profile_lookup_policy(f->e, 1, ns_id(f, ns), value, strlen(value), NULL, &dflt, &err);
    assert_non_null(tree);
    kith_buf want = {0}, got = {0};
    assert_int_equal(kjson_dump(tree, &want), 0);
    json_decref(tree);
    assert_int_equal(profile_lookup_text(f->e, 1, ns_id(f, ns), value, strlen(value), &dflt, &got), 0);
    assert_int_equal(got.len, want.len);
    assert_memory_equal(got.data, want.data, want.len);
    kith_buf_free(&want);
    kith_buf_free(&got);
    merge_policy_clear(&dflt);
}

/* A new default of another shape: views are re-materialised under it, and a request recorded
 * before a restart (the thread was stopped) is resumed by the next engine_open. Until then lookups
 * merge at read time and answer the same. */
static void test_default_remat_resumes(void **state)
{
    fixture *f = *state;
    two_people(f);
    assert_views_signed(f, 0);
    profile_remat_stop(f->e); /* the request is only recorded */
    json_t *body =
        json_pack("{s:s, s:{s:s}, s:{s:s}, s:{s:s, s:[s, s]}, s:b}", "name", "crm-first", "schema",
                  "name", "_xdm.context.profile", "identityGraph", "type", "pdg", "attributeMerge",
                  "type", "dataSetPrecedence", "order", f->ds_crm, f->ds_loy, "default", 1);
    json_t *fields = NULL, *errors = NULL;
    char detail[200];
    assert_int_equal(mpolicy_validate(f->e, 1, body, &fields, &errors, detail, sizeof detail), 0);
    struct store_ctx c = {f->e, fields, NULL};
    assert_int_equal(apply_call(f->e->apply, store_fn, &c, false), 0);
    merge_policy dflt;
    assert_int_equal(profile_policy_resolve(f->e, 1, NULL, &dflt), 0);
    uint64_t sig = merge_policy_signature(&dflt);
    merge_policy_clear(&dflt);
    assert_true(sig != 0 && sig != PROFILE_SIG_NONE);
    assert_views_signed(f, 0); /* stale */
    uint64_t rt = f->e->m.read_time_merges;
    json_t *p = lookup(f, "Phone", "555", NULL);
    assert_string_equal(first_name(p), "Crm"); /* crm outranks the newer loyalty record */
    json_decref(p);
    assert_true(f->e->m.read_time_merges > rt);
    assert_text_equals_tree(f, "Phone", "555");

    engine_close(f->e);
    char *err = NULL;
    assert_int_equal(engine_open(dir, NULL, "test-admin", false, &f->e, &err), 0);
    for (int i = 0; i < 500 && (f->e->m.remat_pending || !f->e->m.views_rematerialised); i++)
        usleep(10000);
    assert_int_equal(f->e->m.remat_pending, 0);
    assert_true(f->e->m.views_rematerialised >= 1);
    assert_views_signed(f, sig);
    rt = f->e->m.read_time_merges;
    p = lookup(f, "CRMID", "c1", NULL);
    assert_string_equal(first_name(p), "Crm");
    json_decref(p);
    assert_true(f->e->m.read_time_merges == rt); /* served from the view */
    assert_text_equals_tree(f, "Email", "c1@x.com");
    json_decref(c.stored);
    json_decref(fields);
    json_decref(body);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_merge_timestamp_ordered),
        cmocka_unit_test(test_merge_ties_by_write_stamp),
        cmocka_unit_test(test_merge_dataset_precedence),
        cmocka_unit_test(test_merge_empty),
        cmocka_unit_test(test_filter_parse),
        cmocka_unit_test_setup_teardown(test_read_time_equals_materialised, setup, teardown),
        cmocka_unit_test_setup_teardown(test_text_equals_tree, setup, teardown),
        cmocka_unit_test_setup_teardown(test_dedup_entry_without_event, setup, teardown),
        cmocka_unit_test_setup_teardown(test_identity_graph_none, setup, teardown),
        cmocka_unit_test_setup_teardown(test_precedence_excludes_records_and_events, setup,
                                        teardown),
        cmocka_unit_test_setup_teardown(test_last_updated_date_across_datasets, setup, teardown),
        cmocka_unit_test_setup_teardown(test_stored_default_followed, setup, teardown),
        cmocka_unit_test_setup_teardown(test_default_remat_resumes, setup, teardown),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
