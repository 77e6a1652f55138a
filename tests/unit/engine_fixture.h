/* The engine fixture shared by unit tests that drive kith_engine without HTTP (test_engine.c,
 * test_identity.c, test_segindex.c): a temporary data dir, one profile schema and one event schema
 * with a dataset each in sandbox 1, ingest of JSON text, and profile lookups. Define FIXTURE_NAME
 * (the data dir's name part) and FIXTURE_GRAPH_MAX (the engine's graph limit) before including. */
#ifndef KITH_TEST_ENGINE_FIXTURE_H
#define KITH_TEST_ENGINE_FIXTURE_H

#include "kith/ingest.h"

static char dir[256];

typedef struct fixture {
    kith_engine *e;
    char ds_crm[KITH_ID_LEN + 1], ds_web[KITH_ID_LEN + 1];
} fixture;

static const char *profile_schema =
    "{\"title\":\"crm\",\"meta:class\":\"https://ns.adobe.com/xdm/context/profile\","
    "\"allOf\":[{\"$ref\":\"https://ns.adobe.com/xdm/context/profile-person-details\"},"
    "{\"$ref\":\"https://ns.adobe.com/xdm/context/profile-personal-details\"},"
    "{\"$ref\":\"https://ns.adobe.com/xdm/context/identitymap\"}],"
    "\"properties\":{\"_acme\":{\"type\":\"object\",\"properties\":{\"tags\":{\"type\":\"array\","
    "\"items\":{\"type\":\"string\"}},\"tier\":{\"type\":\"string\"}}}},"
    "\"$id\":\"https://ns.adobe.com/kith/schemas/p1\",\"meta:altId\":\"_kith.schemas.p1\","
    "\"meta:immutableTags\":[\"union\"]}";
static const char *event_schema =
    "{\"title\":\"web\",\"meta:class\":\"https://ns.adobe.com/xdm/context/experienceevent\","
    "\"allOf\":[{\"$ref\":\"https://ns.adobe.com/xdm/context/identitymap\"},"
    "{\"$ref\":\"https://ns.adobe.com/xdm/context/experienceevent-commerce\"}],"
    "\"$id\":\"https://ns.adobe.com/kith/schemas/e1\",\"meta:altId\":\"_kith.schemas.e1\","
    "\"meta:immutableTags\":[\"union\"]}";

static inline int setup_fn(void *ctx, store_batch *b)
{
    fixture *f = ctx;
    kith_engine *e = f->e;
    const char *defs[2] = {profile_schema, event_schema};
    for (int i = 0; i < 2; i++) {
        json_t *doc = json_loads(defs[i], 0, NULL);
        json_t *errors = json_array();
        kith_schema *s = NULL;
        if (schema_compile(doc, &s, errors) != 0) {
            char *t = json_dumps(errors, 0);
            fprintf(stderr, "schema errors: %s\n", t);
            free(t);
            return KITH_EINVAL;
        }
        json_decref(errors);
        catalog_put_schema(e->cat, b, 1, doc, s);
    }
    catalog_new_id(f->ds_crm);
    catalog_new_id(f->ds_web);
    catalog_put_dataset(e->cat, b, 1,
                        json_pack("{s:s, s:s, s:{s:s}, s:{s:[s], s:[s]}}", "id", f->ds_crm, "name",
                                  "crm", "schemaRef", "id", "https://ns.adobe.com/kith/schemas/p1",
                                  "tags", "unifiedProfile", "enabled:true", "unifiedIdentity",
                                  "enabled:true"));
    catalog_put_dataset(e->cat, b, 1,
                        json_pack("{s:s, s:s, s:{s:s}, s:{s:[s], s:[s]}}", "id", f->ds_web, "name",
                                  "web", "schemaRef", "id", "https://ns.adobe.com/kith/schemas/e1",
                                  "tags", "unifiedProfile", "enabled:true", "unifiedIdentity",
                                  "enabled:true"));
    return 0;
}

static inline void open_engine(fixture *f)
{
    char *err = NULL;
    kith_limits lim = KITH_LIMITS_DEFAULT;
    lim.graph_max = FIXTURE_GRAPH_MAX;
    assert_int_equal(engine_open(dir, &lim, "test-admin", true, &f->e, &err), 0);
}

static inline int setup(void **state)
{
    snprintf(dir, sizeof dir, "/tmp/kith-test-%s-XXXXXX", FIXTURE_NAME);
    assert_non_null(mkdtemp(dir));
    fixture *f = calloc(1, sizeof *f);
    open_engine(f);
    assert_int_equal(apply_call(f->e->apply, setup_fn, f, false), 0);
    *state = f;
    return 0;
}

static inline int teardown(void **state)
{
    fixture *f = *state;
    engine_close(f->e);
    free(f);
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    return system(cmd) == 0 ? 0 : -1;
}

/* Validates and applies one entity (JSON text) into a dataset; returns the prepare/apply code. */
static inline int ingest(fixture *f, const char *ds, const char *json, json_t **errors_out)
{
    json_t *entity = json_loads(json, 0, NULL);
    assert_non_null(entity);
    json_t *errors = json_array();
    const char *msg;
    ingest_msg m;
    int rc = ingest_prepare(f->e, 1, ds, NULL, entity, NULL, kith_now_ms(), &m, errors, &msg);
    json_decref(entity);
    if (rc == 0) {
        rc = ingest_run(f->e, &m, 1);
        if (rc == 0) rc = m.rc;
        ingest_msg_clear(&m);
    }
    if (errors_out) *errors_out = errors;
    else json_decref(errors);
    return rc;
}

static inline json_t *lookup(fixture *f, const char *ns, const char *value)
{
    catalog_rdlock(f->e->cat);
    const cat_namespace *n = catalog_namespace(f->e->cat, 1, ns);
    uint32_t id = n->id;
    catalog_unlock(f->e->cat);
    int err = 0;
    json_t *p = profile_lookup(f->e, 1, id, value, strlen(value), NULL, &err);
    if (!p) return NULL;
    const char *k;
    json_t *v;
    json_object_foreach(p, k, v)
    {
        json_t *out = json_incref(v);
        json_decref(p);
        return out;
    }
    return NULL;
}

#endif
