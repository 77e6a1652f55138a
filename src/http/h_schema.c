/* Schema registry (schemas, descriptors, unions), catalog datasets and streaming connections. */
#include <stdlib.h>
#include <string.h>

#include "http.h"
#include "kith/ca.h"
#include "jsonpatch.h"
#include "kith/schema.h"
#include "profile/mergepolicy.h"

#define TENANT "kith"

/* --- shared control-plane write: put a doc through the apply thread --- */

enum cp_kind { CP_SCHEMA, CP_SCHEMA_DEL, CP_DATASET, CP_DATASET_DEL, CP_INLET };

struct cp_put {
    kith_engine *e;
    int kind;
    uint32_t sandbox;
    json_t *doc;
    kith_schema *compiled;
    const char *id;
};

/* The cluster of an identity id (committed data), or 0. */
static uint64_t cluster_of_identity(kith_engine *e, uint32_t sb, const uint8_t *id_be)
{
    store_key nk;
    skey_init(&nk, sb);
    skey_bytes(&nk, id_be, 8);
    kith_buf nv = {0};
    uint64_t cl = 0;
    if (store_get(e->store, STORE_CF_NODE, nk.b, nk.n, &nv) == 0 && nv.len >= 6) {
        const uint8_t *p = (const uint8_t *)nv.data;
        size_t len = (size_t)p[4] << 8 | p[5];
        uint64_t id;
        if (6 + len > nv.len ||
            identity_lookup(e, sb, kith_get_be32(p), (const char *)p + 6, len, &id, &cl) != 0)
            cl = 0;
    }
    kith_buf_free(&nv);
    return cl;
}

/* Removes every fragment and event of a dataset in a sandbox and marks the clusters they belonged to
 * for recomputation (union views, streaming memberships). Runs exclusive on the apply thread. */
static int purge_dataset(kith_engine *e, store_batch *b, uint32_t sb, const char *dataset)
{
    uint8_t prefix[4];
    kith_put_be32(prefix, sb);
    store_iter *it = store_iter_new(e->store, NULL, STORE_CF_FRAG, prefix, 4);
    for (; store_iter_valid(it); store_iter_next(it)) {
        size_t kl;
        const uint8_t *k = store_iter_key(it, &kl);
        if (kl != 4 + 8 + KITH_ID_LEN || memcmp(k + 12, dataset, KITH_ID_LEN) != 0) continue;
        store_batch_delete(b, STORE_CF_FRAG, k, kl);
        uint64_t cl = cluster_of_identity(e, sb, k + 4);
        if (cl) {
            profile_mark_dirty(e, sb, cl);
            segsvc_note_delete(e, sb, cl);
        }
    }
    store_iter_free(it);
    /* The dataset's event ids: resending them after the delete stores them again. */
    store_key dk;
    skey_init(&dk, sb);
    skey_bytes(&dk, dataset, KITH_ID_LEN);
    int drc = store_delete_prefix(e->store, STORE_CF_DEDUP, dk.b, dk.n);
    if (drc) return drc;
    it = store_iter_new(e->store, NULL, STORE_CF_EVENT, prefix, 4);
    uint8_t last_owner[8] = {0};
    bool have_owner = false;
    for (; store_iter_valid(it); store_iter_next(it)) {
        size_t kl, vl;
        const uint8_t *k = store_iter_key(it, &kl);
        const uint8_t *v = store_iter_value(it, &vl);
        if (vl >= 8 + KITH_ID_LEN && kl >= 12 && memcmp(v + 8, dataset, KITH_ID_LEN) == 0) {
            store_batch_delete(b, STORE_CF_EVENT, k, kl);
            if (!have_owner || memcmp(last_owner, k + 4, 8) != 0) { /* once per identity */
                memcpy(last_owner, k + 4, 8);
                have_owner = true;
                uint64_t cl = cluster_of_identity(e, sb, k + 4);
                if (cl) segsvc_note_delete(e, sb, cl);
                ca_identity_events_deleted(e, b, sb, kith_get_be64(k + 4), dataset); /* src/ca/ */
            }
        }
    }
    store_iter_free(it);
    return 0;
}

static int cp_put_fn(void *ctx, store_batch *b)
{
    struct cp_put *c = ctx;
    switch (c->kind) {
    case CP_SCHEMA: return catalog_put_schema(c->e->cat, b, c->sandbox, json_incref(c->doc), c->compiled);
    case CP_SCHEMA_DEL: return catalog_delete_schema(c->e->cat, b, c->sandbox, c->id);
    case CP_DATASET: return catalog_put_dataset(c->e->cat, b, c->sandbox, json_incref(c->doc));
    case CP_DATASET_DEL: {
        int rc = purge_dataset(c->e, b, c->sandbox, c->id);
        if (!rc) mpolicy_prune_dataset(c->e, b, c->sandbox, c->id); /* out of every order */
        return rc ? rc : catalog_delete_dataset(c->e->cat, b, c->sandbox, c->id);
    }
    case CP_INLET: return catalog_put_inlet(c->e->cat, b, c->sandbox, json_incref(c->doc));
    }
    return KITH_EINVAL;
}

static int cp_put(kith_req *r, int kind, json_t *doc, kith_schema *compiled, const char *id)
{
    struct cp_put c = {r->e, kind, r->sandbox_id, doc, compiled, id};
    return apply_call(r->e->apply, cp_put_fn, &c, kind == CP_DATASET_DEL);
}

static json_t *err1(const char *path, const char *msg)
{
    return json_pack("[{s:s, s:s}]", "path", path, "message", msg);
}

/* --- schemas --- */

static void schema_collect(const cat_schema *s, void *arg)
{
    json_array_append(arg, s->doc);
}

int h_schema_list(kith_req *r)
{
    json_t *arr = json_array();
    catalog_rdlock(r->e->cat);
    catalog_each_schema(r->e->cat, r->sandbox_id, schema_collect, arr);
    catalog_unlock(r->e->cat);
    http_json(r, 200, json_pack("{s:o, s:{s:I}}", "results", arr, "_page", "count",
                                (json_int_t)json_array_size(arr)));
    return 0;
}

int h_schema_get(kith_req *r)
{
    catalog_rdlock(r->e->cat);
    const cat_schema *s = catalog_schema(r->e->cat, r->sandbox_id, r->params[0]);
    json_t *doc = s ? json_deep_copy(s->doc) : NULL;
    if (doc && s->compiled) {
        const char *accept = http_header(r, "Accept");
        if (accept && strstr(accept, "xed-full"))
            json_object_set_new(doc, "properties", json_deep_copy(schema_properties(s->compiled)));
    }
    catalog_unlock(r->e->cat);
    if (!doc) http_problem(r, 404, "Not Found", NULL, "no schema \"%s\" in sandbox %s", r->params[0], r->sandbox);
    else http_json(r, 200, doc);
    return 0;
}

/* Profile enablement needs a way to identify people: a primary identity descriptor or identityMap. */
static bool schema_can_join_union(const json_t *doc, const kith_schema *compiled)
{
    if (json_object_get(schema_properties(compiled), "identityMap")) return true;
    size_t i;
    json_t *d;
    json_array_foreach(json_object_get(doc, "kith:descriptors"), i, d) if (json_is_true(json_object_get(d, "xdm:isPrimary"))) return true;
    return false;
}

static bool doc_has_union_tag(const json_t *doc)
{
    size_t i;
    json_t *v;
    json_array_foreach(json_object_get(doc, "meta:immutableTags"), i, v) if (json_string_value(v) && strcmp(json_string_value(v), "union") == 0) return true;
    return false;
}

/* Compiles doc and answers 400 with the compiler's errors when it fails. */
static kith_schema *compile_or_400(kith_req *r, json_t *doc)
{
    json_t *errors = json_array();
    kith_schema *compiled = NULL;
    if (schema_compile(doc, &compiled, errors) != 0) {
        http_problem(r, 400, "Invalid schema", errors, "the schema definition is invalid (%zu problem%s)",
                     json_array_size(errors), json_array_size(errors) == 1 ? "" : "s");
        return NULL;
    }
    json_decref(errors);
    if (doc_has_union_tag(doc) && !schema_can_join_union(doc, compiled)) {
        http_problem(r, 400, "Invalid schema", err1("/meta:immutableTags", "a schema enabled for Profile needs identityMap or a primary identity descriptor"),
                     "the schema cannot be enabled for Profile");
        schema_free(compiled);
        return NULL;
    }
    return compiled;
}

int h_schema_create(kith_req *r)
{
    json_t *body = http_body_json(r);
    if (!body) return 0;
    if (!json_is_object(body)) {
        http_problem(r, 400, "Invalid schema", err1("", "expected a JSON object"), "the body must be a schema object");
        json_decref(body);
        return 0;
    }
    if (!json_is_string(json_object_get(body, "title"))) {
        http_problem(r, 400, "Invalid schema", err1("/title", "required string"), "the schema needs a title");
        json_decref(body);
        return 0;
    }
    uint8_t rnd[16];
    kith_random(rnd, sizeof rnd);
    char hex[33], id[160], alt[160];
    kith_hex(rnd, sizeof rnd, hex);
    snprintf(id, sizeof id, "https://ns.adobe.com/%s/schemas/%s", TENANT, hex);
    snprintf(alt, sizeof alt, "_%s.schemas.%s", TENANT, hex);
    json_object_del(body, "kith:descriptors");
    json_object_set_new(body, "$id", json_string(id));
    json_object_set_new(body, "meta:altId", json_string(alt));
    json_object_set_new(body, "version", json_string("1.0"));
    json_object_set_new(body, "meta:tenantNamespace", json_string("_" TENANT));
    json_int_t now = (json_int_t)kith_now_ms();
    json_object_set_new(body, "meta:registryMetadata",
                        json_pack("{s:I, s:I}", "repo:createdDate", now, "repo:lastModifiedDate", now));
    kith_schema *compiled = compile_or_400(r, body);
    if (!compiled) {
        json_decref(body);
        return 0;
    }
    if (!json_object_get(body, "meta:class"))
        json_object_set_new(body, "meta:class",
                            json_string(schema_get_class(compiled) == SCHEMA_CLASS_EVENT ? SCHEMA_CLASS_EVENT_ID : SCHEMA_CLASS_PROFILE_ID));
    int rc = cp_put(r, CP_SCHEMA, body, compiled, NULL);
    if (rc) http_error(r, rc, "the schema could not be stored");
    else http_json(r, 201, json_incref(body));
    json_decref(body);
    return 0;
}

int h_schema_patch(kith_req *r)
{
    json_t *patch = http_body_json(r);
    if (!patch) return 0;
    catalog_rdlock(r->e->cat);
    const cat_schema *s = catalog_schema(r->e->cat, r->sandbox_id, r->params[0]);
    json_t *doc = s ? json_deep_copy(s->doc) : NULL;
    catalog_unlock(r->e->cat);
    if (!doc) {
        http_problem(r, 404, "Not Found", NULL, "no schema \"%s\" in sandbox %s", r->params[0], r->sandbox);
        json_decref(patch);
        return 0;
    }
    json_t *keep_id = json_incref(json_object_get(doc, "$id"));
    json_t *keep_alt = json_incref(json_object_get(doc, "meta:altId"));
    char err[512];
    if (jsonpatch_apply(doc, patch, err, sizeof err) != 0) {
        http_problem(r, 400, "Invalid patch", err1("", err), "the JSON Patch cannot be applied: %s", err);
    } else if (!json_equal(keep_id, json_object_get(doc, "$id")) || !json_equal(keep_alt, json_object_get(doc, "meta:altId"))) {
        http_problem(r, 400, "Invalid patch", err1("/$id", "$id and meta:altId are immutable"), "$id and meta:altId cannot change");
    } else {
        json_object_set_new(doc, "version", json_string("1.1"));
        kith_schema *compiled = compile_or_400(r, doc);
        if (compiled) {
            int rc = cp_put(r, CP_SCHEMA, doc, compiled, NULL);
            if (rc) http_error(r, rc, "the schema could not be stored");
            else http_json(r, 200, json_incref(doc));
        }
    }
    json_decref(keep_id);
    json_decref(keep_alt);
    json_decref(doc);
    json_decref(patch);
    return 0;
}

struct ds_uses {
    const char *id, *alt;
    int n;
};

static void ds_uses_schema(const cat_dataset *d, void *arg)
{
    struct ds_uses *u = arg;
    if (strcmp(d->schema_id, u->id) == 0 || strcmp(d->schema_id, u->alt) == 0) u->n++;
}

int h_schema_delete(kith_req *r)
{
    catalog_rdlock(r->e->cat);
    const cat_schema *s = catalog_schema(r->e->cat, r->sandbox_id, r->params[0]);
    struct ds_uses u = {s ? s->id : "", s ? s->altid : "", 0};
    if (s) catalog_each_dataset(r->e->cat, r->sandbox_id, ds_uses_schema, &u);
    catalog_unlock(r->e->cat);
    if (!s) {
        http_problem(r, 404, "Not Found", NULL, "no schema \"%s\"", r->params[0]);
        return 0;
    }
    if (u.n) {
        http_problem(r, 409, "Conflict", NULL, "%d dataset%s still use%s this schema; delete them first", u.n,
                     u.n == 1 ? "" : "s", u.n == 1 ? "s" : "");
        return 0;
    }
    int rc = cp_put(r, CP_SCHEMA_DEL, NULL, NULL, r->params[0]);
    if (rc) http_error(r, rc, "the schema could not be deleted");
    else r->status = 204;
    return 0;
}

/* --- descriptors --- */

static void descriptor_collect(const cat_schema *s, void *arg)
{
    size_t i;
    json_t *d;
    json_array_foreach(json_object_get(s->doc, "kith:descriptors"), i, d) json_array_append(arg, d);
}

int h_descriptor_list(kith_req *r)
{
    json_t *arr = json_array();
    catalog_rdlock(r->e->cat);
    catalog_each_schema(r->e->cat, r->sandbox_id, descriptor_collect, arr);
    catalog_unlock(r->e->cat);
    http_json(r, 200, arr);
    return 0;
}

int h_descriptor_create(kith_req *r)
{
    json_t *body = http_body_json(r);
    if (!body) return 0;
    const char *type = json_string_value(json_object_get(body, "@type"));
    const char *src = json_string_value(json_object_get(body, "xdm:sourceSchema"));
    const char *prop = json_string_value(json_object_get(body, "xdm:sourceProperty"));
    const char *ns = json_string_value(json_object_get(body, "xdm:namespace"));
    json_t *errors = json_array();
    if (!type || strcmp(type, "xdm:descriptorIdentity") != 0)
        json_array_append_new(errors, json_pack("{s:s, s:s}", "path", "/@type", "message", "only \"xdm:descriptorIdentity\" is supported"));
    if (!src) json_array_append_new(errors, json_pack("{s:s, s:s}", "path", "/xdm:sourceSchema", "message", "required: the schema's $id"));
    if (!prop || prop[0] != '/') json_array_append_new(errors, json_pack("{s:s, s:s}", "path", "/xdm:sourceProperty", "message", "required: a JSON pointer such as /personalEmail/address"));
    if (!ns) json_array_append_new(errors, json_pack("{s:s, s:s}", "path", "/xdm:namespace", "message", "required: a namespace code"));
    json_t *doc = NULL;
    if (!json_array_size(errors)) {
        catalog_rdlock(r->e->cat);
        const cat_schema *s = catalog_schema(r->e->cat, r->sandbox_id, src);
        const cat_namespace *nsd = catalog_namespace(r->e->cat, r->sandbox_id, ns);
        if (!s) json_array_append_new(errors, json_pack("{s:s, s:s}", "path", "/xdm:sourceSchema", "message", "unknown schema"));
        else if (!nsd) json_array_append_new(errors, json_pack("{s:s, s:s}", "path", "/xdm:namespace", "message", "unknown identity namespace"));
        else if (s->compiled && schema_check_descriptor(s->compiled, prop, errors) != 0) {
            json_t *last = json_array_get(errors, json_array_size(errors) - 1);
            json_object_set_new(last, "path", json_string("/xdm:sourceProperty"));
        } else {
            doc = json_deep_copy(s->doc);
        }
        catalog_unlock(r->e->cat);
    }
    if (json_array_size(errors)) {
        http_problem(r, 400, "Invalid descriptor", errors, "the descriptor is invalid");
        json_decref(doc);
        json_decref(body);
        return 0;
    }
    json_decref(errors);
    uint8_t rnd[16];
    char hex[33];
    kith_random(rnd, sizeof rnd);
    kith_hex(rnd, sizeof rnd, hex);
    json_object_set_new(body, "@id", json_string(hex));
    json_t *descs = json_object_get(doc, "kith:descriptors");
    if (!json_is_array(descs)) {
        descs = json_array();
        json_object_set_new(doc, "kith:descriptors", descs);
    }
    json_array_append(descs, body);
    kith_schema *compiled = compile_or_400(r, doc);
    if (compiled) {
        int rc = cp_put(r, CP_SCHEMA, doc, compiled, NULL);
        if (rc) http_error(r, rc, "the descriptor could not be stored");
        else http_json(r, 201, json_incref(body));
    }
    json_decref(doc);
    json_decref(body);
    return 0;
}

/* --- unions and built-ins --- */

struct union_ctx {
    schema_class cls;
    const kith_schema *v[256];
    size_t n;
};

static void union_collect(const cat_schema *s, void *arg)
{
    struct union_ctx *u = arg;
    if (s->profile_enabled && s->compiled && s->cls == u->cls && u->n < 256) u->v[u->n++] = s->compiled;
}

int h_union_get(kith_req *r)
{
    const char *c = r->params[0];
    struct union_ctx u = {0};
    if (strcmp(c, "_xdm.context.profile") == 0 || strcmp(c, SCHEMA_CLASS_PROFILE_ID) == 0 ||
        strcmp(c, "_xdm.context.profile__union") == 0)
        u.cls = SCHEMA_CLASS_PROFILE;
    else if (strcmp(c, "_xdm.context.experienceevent") == 0 || strcmp(c, SCHEMA_CLASS_EVENT_ID) == 0 ||
             strcmp(c, "_xdm.context.experienceevent__union") == 0)
        u.cls = SCHEMA_CLASS_EVENT;
    else {
        http_problem(r, 404, "Not Found", NULL,
                     "unknown class \"%s\" (use _xdm.context.profile or _xdm.context.experienceevent)", c);
        return 0;
    }
    json_t *errors = json_array();
    catalog_rdlock(r->e->cat);
    catalog_each_schema(r->e->cat, r->sandbox_id, union_collect, &u);
    json_t *un = schema_union(u.v, u.n, errors);
    catalog_unlock(r->e->cat);
    const char *cls = u.cls == SCHEMA_CLASS_PROFILE ? SCHEMA_CLASS_PROFILE_ID : SCHEMA_CLASS_EVENT_ID;
    const char *alt = u.cls == SCHEMA_CLASS_PROFILE ? "_xdm.context.profile__union" : "_xdm.context.experienceevent__union";
    char id[200];
    snprintf(id, sizeof id, "%s__union", cls);
    json_object_set_new(un, "$id", json_string(id));
    json_object_set_new(un, "meta:altId", json_string(alt));
    json_object_set_new(un, "meta:class", json_string(cls));
    json_object_set_new(un, "title", json_string(u.cls == SCHEMA_CLASS_PROFILE ? "XDM Individual Profile union" : "XDM ExperienceEvent union"));
    json_object_set_new(un, "meta:schemaCount", json_integer((json_int_t)u.n));
    if (json_array_size(errors)) json_object_set(un, "meta:conflicts", errors);
    json_decref(errors);
    http_json(r, 200, un);
    return 0;
}

int h_fieldgroups(kith_req *r)
{
    http_json(r, 200, schema_builtin_list());
    return 0;
}

/* --- datasets --- */

static void dataset_collect(const cat_dataset *d, void *arg)
{
    json_object_set(arg, d->id, d->doc);
}

int h_dataset_list(kith_req *r)
{
    json_t *obj = json_object();
    catalog_rdlock(r->e->cat);
    catalog_each_dataset(r->e->cat, r->sandbox_id, dataset_collect, obj);
    catalog_unlock(r->e->cat);
    http_json(r, 200, obj);
    return 0;
}

int h_dataset_get(kith_req *r)
{
    catalog_rdlock(r->e->cat);
    const cat_dataset *d = catalog_dataset(r->e->cat, r->sandbox_id, r->params[0]);
    json_t *out = d ? json_pack("{s:O}", d->id, d->doc) : NULL;
    catalog_unlock(r->e->cat);
    if (!out) http_problem(r, 404, "Not Found", NULL, "no dataset %s in sandbox %s", r->params[0], r->sandbox);
    else http_json(r, 200, out);
    return 0;
}

/* Checks the fields a dataset may carry; appends errors. */
static void dataset_check(kith_req *r, json_t *doc, json_t *errors)
{
    const char *name = json_string_value(json_object_get(doc, "name"));
    if (!name || !*name || strlen(name) > 256)
        json_array_append_new(errors, json_pack("{s:s, s:s}", "path", "/name", "message", "required string of 1 to 256 characters"));
    const char *sid = json_string_value(json_object_get(json_object_get(doc, "schemaRef"), "id"));
    if (!sid) {
        json_array_append_new(errors, json_pack("{s:s, s:s}", "path", "/schemaRef/id", "message", "required: the $id of the dataset's schema"));
    } else {
        catalog_rdlock(r->e->cat);
        bool ok = catalog_schema(r->e->cat, r->sandbox_id, sid) != NULL;
        catalog_unlock(r->e->cat);
        if (!ok) json_array_append_new(errors, json_pack("{s:s, s:s}", "path", "/schemaRef/id", "message", "unknown schema in this sandbox"));
    }
    json_t *tags = json_object_get(doc, "tags");
    if (tags && !json_is_object(tags))
        json_array_append_new(errors, json_pack("{s:s, s:s}", "path", "/tags", "message", "must be an object of string arrays"));
    const char *k;
    json_t *v;
    json_object_foreach(tags, k, v)
    {
        size_t i;
        json_t *t;
        bool ok = json_is_array(v);
        json_array_foreach(v, i, t) if (!json_is_string(t)) ok = false;
        if (!ok) {
            char path[300];
            snprintf(path, sizeof path, "/tags/%s", k);
            json_array_append_new(errors, json_pack("{s:s, s:s}", "path", path, "message", "must be an array of strings such as [\"enabled:true\"]"));
        }
    }
}

int h_dataset_create(kith_req *r)
{
    json_t *body = http_body_json(r);
    if (!body) return 0;
    json_t *errors = json_array();
    if (!json_is_object(body)) json_array_append_new(errors, json_pack("{s:s, s:s}", "path", "", "message", "expected an object"));
    else dataset_check(r, body, errors);
    if (json_array_size(errors)) {
        http_problem(r, 400, "Invalid dataset", errors, "the dataset definition is invalid");
        json_decref(body);
        return 0;
    }
    json_decref(errors);
    char id[KITH_ID_LEN + 1];
    catalog_new_id(id);
    json_int_t now = (json_int_t)kith_now_ms();
    json_object_set_new(body, "id", json_string(id));
    json_object_set_new(body, "created", json_integer(now));
    json_object_set_new(body, "updated", json_integer(now));
    if (!json_object_get(body, "tags")) json_object_set_new(body, "tags", json_object());
    int rc = cp_put(r, CP_DATASET, body, NULL, NULL);
    if (rc) http_error(r, rc, "the dataset could not be stored");
    else {
        char ref[64];
        snprintf(ref, sizeof ref, "@/dataSets/%s", id);
        http_json(r, 201, json_pack("[s]", ref));
    }
    json_decref(body);
    return 0;
}

int h_dataset_patch(kith_req *r)
{
    json_t *patch = http_body_json(r);
    if (!patch) return 0;
    catalog_rdlock(r->e->cat);
    const cat_dataset *d = catalog_dataset(r->e->cat, r->sandbox_id, r->params[0]);
    json_t *doc = d ? json_deep_copy(d->doc) : NULL;
    catalog_unlock(r->e->cat);
    if (!doc) {
        http_problem(r, 404, "Not Found", NULL, "no dataset %s in sandbox %s", r->params[0], r->sandbox);
        json_decref(patch);
        return 0;
    }
    json_t *old_schema = json_deep_copy(json_object_get(doc, "schemaRef"));
    char err[512] = "";
    int prc = 0;
    if (json_is_array(patch)) {
        prc = jsonpatch_apply(doc, patch, err, sizeof err);
    } else if (json_is_object(patch)) {
        /* A merge of top-level fields (name, description, tags), as Catalog's PATCH allows. */
        const char *k;
        json_t *v;
        json_object_foreach(patch, k, v) json_object_set(doc, k, v);
    } else {
        prc = -1;
        snprintf(err, sizeof err, "expected a JSON Patch array or an object of fields");
    }
    json_t *errors = json_array();
    if (prc) json_array_append_new(errors, json_pack("{s:s, s:s}", "path", "", "message", err));
    else {
        dataset_check(r, doc, errors);
        if (!json_equal(old_schema, json_object_get(doc, "schemaRef")))
            json_array_append_new(errors, json_pack("{s:s, s:s}", "path", "/schemaRef", "message", "a dataset's schema cannot change"));
        json_object_set_new(doc, "id", json_string(r->params[0]));
    }
    if (json_array_size(errors)) {
        http_problem(r, 400, "Invalid patch", errors, "the dataset patch is invalid");
    } else {
        json_decref(errors);
        json_object_set_new(doc, "updated", json_integer((json_int_t)kith_now_ms()));
        int rc = cp_put(r, CP_DATASET, doc, NULL, NULL);
        if (rc) http_error(r, rc, "the dataset could not be stored");
        else {
            char ref[64];
            snprintf(ref, sizeof ref, "@/dataSets/%s", r->params[0]);
            http_json(r, 200, json_pack("[s]", ref));
        }
    }
    json_decref(old_schema);
    json_decref(doc);
    json_decref(patch);
    return 0;
}

int h_dataset_delete(kith_req *r)
{
    catalog_rdlock(r->e->cat);
    bool exists = catalog_dataset(r->e->cat, r->sandbox_id, r->params[0]) != NULL;
    catalog_unlock(r->e->cat);
    if (!exists) {
        http_problem(r, 404, "Not Found", NULL, "no dataset %s in sandbox %s", r->params[0], r->sandbox);
        return 0;
    }
    int rc = cp_put(r, CP_DATASET_DEL, NULL, NULL, r->params[0]);
    if (rc) http_error(r, rc, "the dataset could not be deleted");
    else {
        char ref[64];
        snprintf(ref, sizeof ref, "@/dataSets/%s", r->params[0]);
        http_json(r, 200, json_pack("[s]", ref));
    }
    return 0;
}

/* --- streaming connections (inlets) --- */

static void inlet_collect(const cat_inlet *in, void *arg)
{
    json_array_append(arg, in->doc);
}

int h_connection_list(kith_req *r)
{
    json_t *arr = json_array();
    catalog_rdlock(r->e->cat);
    catalog_each_inlet(r->e->cat, r->sandbox_id, inlet_collect, arr);
    catalog_unlock(r->e->cat);
    http_json(r, 200, json_pack("{s:o}", "items", arr));
    return 0;
}

struct inlet_find {
    const char *id;
    json_t *doc;
};

static void inlet_find(const cat_inlet *in, void *arg)
{
    struct inlet_find *f = arg;
    if (strcmp(in->id, f->id) == 0 || strcmp(in->inlet, f->id) == 0) f->doc = json_incref(in->doc);
}

int h_connection_get(kith_req *r)
{
    struct inlet_find f = {r->params[0], NULL};
    catalog_rdlock(r->e->cat);
    catalog_each_inlet(r->e->cat, r->sandbox_id, inlet_find, &f);
    catalog_unlock(r->e->cat);
    if (!f.doc) http_problem(r, 404, "Not Found", NULL, "no connection %s in sandbox %s", r->params[0], r->sandbox);
    else http_json(r, 200, json_pack("{s:[o]}", "items", f.doc));
    return 0;
}

int segment_connection_create(kith_req *r, json_t *body); /* h_segment.c; borrows body */

int h_connection_create(kith_req *r)
{
    json_t *body = http_body_json(r);
    if (!body) return 0;
    const char *name = json_string_value(json_object_get(body, "name"));
    const char *type = json_string_value(json_object_get(body, "type"));
    if (type && strcmp(type, "segment") == 0) {
        segment_connection_create(r, body);
        json_decref(body);
        return 0;
    }
    json_t *errors = json_array();
    if (!name || !*name || strlen(name) > 256)
        json_array_append_new(errors, json_pack("{s:s, s:s}", "path", "/name", "message", "required string of 1 to 256 characters"));
    if (type && strcmp(type, "http") != 0 && strcmp(type, "aep") != 0)
        json_array_append_new(errors, json_pack("{s:s, s:s}", "path", "/type", "message",
                                                "unsupported connection type (this kithd supports AEP streaming inlets)"));
    if (json_array_size(errors)) {
        http_problem(r, 400, "Invalid connection", errors, "the connection definition is invalid");
        json_decref(body);
        return 0;
    }
    json_decref(errors);
    json_t *ar = json_object_get(body, "authenticationRequired");
    if (!ar) ar = json_object_get(json_object_get(json_object_get(body, "auth"), "params"), "authenticationRequired");
    bool auth = json_is_true(ar);
    char id[KITH_ID_LEN + 1], in1[KITH_ID_LEN + 1], in2[KITH_ID_LEN + 1], inlet[2 * KITH_ID_LEN + 1], url[128];
    catalog_new_id(id);
    catalog_new_id(in1);
    catalog_new_id(in2);
    snprintf(inlet, sizeof inlet, "%s%s", in1, in2);
    snprintf(url, sizeof url, "/collection/%s", inlet);
    json_int_t now = (json_int_t)kith_now_ms();
    json_t *doc = json_pack("{s:s, s:s, s:s, s:s, s:b, s:s, s:I, s:I}", "id", id, "name", name, "inletId", inlet,
                            "inletUrl", url, "authenticationRequired", auth, "sandboxName", r->sandbox,
                            "createdAt", now, "updatedAt", now);
    int rc = cp_put(r, CP_INLET, doc, NULL, NULL);
    if (rc) http_error(r, rc, "the connection could not be stored");
    else http_json(r, 201, json_incref(doc));
    json_decref(doc);
    json_decref(body);
    return 0;
}
