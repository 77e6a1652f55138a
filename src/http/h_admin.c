/* Sandboxes, API keys and identity namespaces. */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include "http.h"

/* --- sandboxes --- */

static json_t *sandbox_public(const cat_sandbox *s)
{
    json_t *d = json_deep_copy(s->doc);
    json_object_del(d, "kith:id");
    return d;
}

struct sb_list {
    json_t *arr;
    kith_req *r;
};

static void sb_collect(const cat_sandbox *s, void *arg)
{
    struct sb_list *l = arg;
    /* The key sees only the sandboxes it may use. */
    const cat_key *k = catalog_key(l->r->e->cat, l->r->key_id);
    if (k && catalog_key_allows(k, s->name)) json_array_append_new(l->arr, sandbox_public(s));
}

int h_sandbox_list(kith_req *r)
{
    struct sb_list l = {json_array(), r};
    catalog_rdlock(r->e->cat);
    catalog_each_sandbox(r->e->cat, sb_collect, &l);
    catalog_unlock(r->e->cat);
    http_json(r, 200, json_pack("{s:o, s:{s:I}}", "sandboxes", l.arr, "_page", "count",
                                (json_int_t)json_array_size(l.arr)));
    return 0;
}

int h_sandbox_get(kith_req *r)
{
    catalog_rdlock(r->e->cat);
    const cat_sandbox *s = catalog_sandbox(r->e->cat, r->params[0]);
    const cat_key *k = catalog_key(r->e->cat, r->key_id);
    json_t *d = s && k && catalog_key_allows(k, s->name) ? sandbox_public(s) : NULL;
    catalog_unlock(r->e->cat);
    if (!d) {
        http_problem(r, 404, "Not Found", NULL, "no sandbox named \"%s\"", r->params[0]);
        return 0;
    }
    http_json(r, 200, d);
    return 0;
}

static bool valid_sandbox_name(const char *n)
{
    size_t len = strlen(n);
    if (len < 1 || len > KITH_SANDBOX_NAME_MAX || !islower((unsigned char)n[0])) return false;
    for (size_t i = 0; i < len; i++)
        if (!islower((unsigned char)n[i]) && !isdigit((unsigned char)n[i]) && n[i] != '-')
            return false;
    return true;
}

struct sb_put {
    kith_engine *e;
    const char *name;
    json_t *doc;
    bool exists;
};

static int sb_put_fn(void *ctx, store_batch *b)
{
    struct sb_put *c = ctx;
    catalog_rdlock(c->e->cat);
    c->exists = catalog_sandbox(c->e->cat, c->name) != NULL;
    catalog_unlock(c->e->cat);
    if (c->exists) return KITH_ECONFLICT;
    return catalog_put_sandbox(c->e->cat, b, c->name, json_incref(c->doc), NULL);
}

int h_sandbox_create(kith_req *r)
{
    json_t *body = http_body_json(r);
    if (!body) return 0;
    const char *name = json_string_value(json_object_get(body, "name"));
    const char *type = json_string_value(json_object_get(body, "type"));
    const char *title = json_string_value(json_object_get(body, "title"));
    json_t *errors = json_array();
    if (!name || !valid_sandbox_name(name))
        json_array_append_new(errors, json_pack("{s:s, s:s}", "path", "/name", "message",
                                                "required: lowercase letters, digits and '-', "
                                                "starting with a letter, at most 64 characters"));
    if (type && strcmp(type, "development") != 0 && strcmp(type, "production") != 0)
        json_array_append_new(errors, json_pack("{s:s, s:s}", "path", "/type", "message",
                                                "must be \"development\" or \"production\""));
    if (title && strlen(title) > 256)
        json_array_append_new(errors, json_pack("{s:s, s:s}", "path", "/title", "message",
                                                "at most 256 characters"));
    if (json_array_size(errors)) {
        http_problem(r, 400, "Invalid sandbox", errors, "the sandbox definition is invalid");
        json_decref(body);
        return 0;
    }
    json_decref(errors);
    char ts[40];
    kith_time_format(kith_now_ms(), ts, sizeof ts);
    json_t *doc = json_pack("{s:s, s:s, s:s, s:s, s:b, s:s}", "name", name, "title",
                            title ? title : name, "type", type ? type : "development", "state",
                            "active", "isDefault", 0, "createdDate", ts);
    struct sb_put c = {r->e, name, doc, false};
    int rc = apply_call(r->e->apply, sb_put_fn, &c, false);
    if (rc == KITH_ECONFLICT)
        http_problem(r, 409, "Conflict", NULL, "a sandbox named \"%s\" already exists", name);
    else if (rc)
        http_error(r, rc, "the sandbox could not be created");
    else {
        json_t *pub = json_deep_copy(doc);
        json_object_del(pub, "kith:id");
        http_json(r, 201, pub);
    }
    json_decref(doc);
    json_decref(body);
    return 0;
}

struct sb_del {
    kith_engine *e;
    uint32_t id;
};

static int sb_del_fn(void *ctx, store_batch *b)
{
    struct sb_del *c = ctx;
    /* Exclusive: everything before is committed; range-delete the sandbox's keys in every family. */
    uint8_t prefix[4];
    kith_put_be32(prefix, c->id);
    identity_cache_reset(c->e);
    for (int cf = 0; cf < STORE_CF_COUNT; cf++) {
        if (cf == STORE_CF_IDLOG) continue; /* keyed by log seq, not sandbox; empty here (exclusive) */
        int rc = store_delete_prefix(c->e->store, cf, prefix, sizeof prefix);
        if (rc) return rc;
    }
    return catalog_delete_sandbox(c->e->cat, b, c->id);
}

int h_sandbox_delete(kith_req *r)
{
    if (strcmp(r->params[0], "prod") == 0) {
        http_problem(r, 400, "Bad Request", NULL, "the prod sandbox cannot be deleted");
        return 0;
    }
    catalog_rdlock(r->e->cat);
    const cat_sandbox *s = catalog_sandbox(r->e->cat, r->params[0]);
    uint32_t id = s ? s->id : 0;
    catalog_unlock(r->e->cat);
    if (!id) {
        http_problem(r, 404, "Not Found", NULL, "no sandbox named \"%s\"", r->params[0]);
        return 0;
    }
    struct sb_del c = {r->e, id};
    int rc = apply_call(r->e->apply, sb_del_fn, &c, true);
    if (rc) http_error(r, rc, "the sandbox could not be deleted");
    else http_json(r, 200, json_pack("{s:s, s:s}", "name", r->params[0], "state", "deleted"));
    return 0;
}

/* --- API keys --- */

static void key_collect(const cat_key *k, void *arg)
{
    json_array_append(arg, k->doc);
}

int h_key_list(kith_req *r)
{
    json_t *arr = json_array();
    catalog_rdlock(r->e->cat);
    catalog_each_key(r->e->cat, key_collect, arr);
    catalog_unlock(r->e->cat);
    http_json(r, 200, json_pack("{s:o}", "keys", arr));
    return 0;
}

struct key_put {
    kith_engine *e;
    char id[KITH_ID_LEN + 1];
    uint8_t hash[32];
    int role;
    json_t *sandboxes, *doc;
};

static int key_put_fn(void *ctx, store_batch *b)
{
    struct key_put *c = ctx;
    return catalog_put_key(c->e->cat, b, c->id, c->hash, c->role, json_incref(c->sandboxes),
                           json_incref(c->doc));
}

int h_key_create(kith_req *r)
{
    json_t *body = http_body_json(r);
    if (!body) return 0;
    const char *name = json_string_value(json_object_get(body, "name"));
    const char *role = json_string_value(json_object_get(body, "role"));
    json_t *sbs = json_object_get(body, "sandboxes");
    json_t *errors = json_array();
    if (!name || !*name || strlen(name) > 128)
        json_array_append_new(errors, json_pack("{s:s, s:s}", "path", "/name", "message",
                                                "required string of 1 to 128 characters"));
    int rl = kith_role_parse(role);
    if (!rl)
        json_array_append_new(errors, json_pack("{s:s, s:s}", "path", "/role", "message",
                                                "must be one of admin, editor, viewer, ingest"));
    if (sbs && !json_is_array(sbs))
        json_array_append_new(errors, json_pack("{s:s, s:s}", "path", "/sandboxes", "message",
                                                "must be an array of sandbox names"));
    size_t i;
    json_t *v;
    json_array_foreach(sbs, i, v)
    {
        if (!json_is_string(v)) {
            char path[64];
            snprintf(path, sizeof path, "/sandboxes/%zu", i);
            json_array_append_new(errors, json_pack("{s:s, s:s}", "path", path, "message",
                                                    "expected a sandbox name (string)"));
        }
    }
    if (json_array_size(errors)) {
        http_problem(r, 400, "Invalid key", errors, "the key definition is invalid");
        json_decref(body);
        return 0;
    }
    json_decref(errors);
    struct key_put c = {.e = r->e, .role = rl};
    catalog_new_id(c.id);
    uint8_t rnd[24];
    kith_random(rnd, sizeof rnd);
    char secret[64] = "kith_";
    kith_hex(rnd, sizeof rnd, secret + 5);
    catalog_hash_secret(secret, c.hash);
    c.sandboxes = sbs ? json_deep_copy(sbs) : json_pack("[s]", "prod");
    c.doc = json_pack("{s:s, s:s, s:s, s:O, s:I}", "id", c.id, "name", name, "role",
                      kith_role_name(rl), "sandboxes", c.sandboxes, "createdAt",
                      (json_int_t)kith_now_ms());
    int rc = apply_call(r->e->apply, key_put_fn, &c, false);
    if (rc) {
        http_error(r, rc, "the key could not be created");
    } else {
        json_t *out = json_deep_copy(c.doc);
        json_object_set_new(out, "key", json_string(secret));
        http_json(r, 201, out);
    }
    json_decref(c.sandboxes);
    json_decref(c.doc);
    json_decref(body);
    return 0;
}

struct key_del {
    kith_engine *e;
    const char *id;
};

static int key_del_fn(void *ctx, store_batch *b)
{
    struct key_del *c = ctx;
    return catalog_delete_key(c->e->cat, b, c->id);
}

int h_key_delete(kith_req *r)
{
    if (strcmp(r->params[0], r->key_id) == 0) {
        http_problem(r, 409, "Conflict", NULL, "a key cannot revoke itself");
        return 0;
    }
    struct key_del c = {r->e, r->params[0]};
    int rc = apply_call(r->e->apply, key_del_fn, &c, false);
    if (rc == KITH_ENOTFOUND) http_problem(r, 404, "Not Found", NULL, "no key with id %s", r->params[0]);
    else if (rc) http_error(r, rc, "the key could not be revoked");
    else {
        r->status = 204;
    }
    return 0;
}

/* --- namespaces --- */

static void ns_collect(const cat_namespace *n, void *arg)
{
    json_array_append(arg, n->doc);
}

int h_namespace_list(kith_req *r)
{
    json_t *arr = json_array();
    catalog_rdlock(r->e->cat);
    catalog_each_namespace(r->e->cat, r->sandbox_id, ns_collect, arr);
    catalog_unlock(r->e->cat);
    http_json(r, 200, arr);
    return 0;
}

int h_namespace_get(kith_req *r)
{
    char *end;
    unsigned long id = strtoul(r->params[0], &end, 10);
    catalog_rdlock(r->e->cat);
    const cat_namespace *n = *end == 0 ? catalog_namespace_by_id(r->e->cat, r->sandbox_id, (uint32_t)id)
                                       : catalog_namespace(r->e->cat, r->sandbox_id, r->params[0]);
    json_t *doc = n ? json_incref(n->doc) : NULL;
    catalog_unlock(r->e->cat);
    if (!doc) http_problem(r, 404, "Not Found", NULL, "no identity namespace \"%s\"", r->params[0]);
    else http_json(r, 200, doc);
    return 0;
}

struct ns_put {
    kith_engine *e;
    uint32_t sandbox;
    json_t *doc;
    const char *code;
};

static int ns_put_fn(void *ctx, store_batch *b)
{
    struct ns_put *c = ctx;
    catalog_rdlock(c->e->cat);
    bool exists = catalog_namespace(c->e->cat, c->sandbox, c->code) != NULL;
    catalog_unlock(c->e->cat);
    if (exists) return KITH_ECONFLICT;
    return catalog_put_namespace(c->e->cat, b, c->sandbox, json_incref(c->doc), NULL);
}

int h_namespace_create(kith_req *r)
{
    json_t *body = http_body_json(r);
    if (!body) return 0;
    const char *code = json_string_value(json_object_get(body, "code"));
    const char *name = json_string_value(json_object_get(body, "name"));
    const char *type = json_string_value(json_object_get(body, "idType"));
    const char *desc = json_string_value(json_object_get(body, "description"));
    json_t *errors = json_array();
    bool code_ok = code && *code && strlen(code) < 64;
    for (const char *p = code; code_ok && *p; p++)
        if (!isalnum((unsigned char)*p) && *p != '_' && *p != '-' && *p != '.') code_ok = false;
    if (!code_ok)
        json_array_append_new(errors, json_pack("{s:s, s:s}", "path", "/code", "message",
                                                "required: 1 to 63 letters, digits, '_', '-', '.'"));
    if (!name || !*name)
        json_array_append_new(errors, json_pack("{s:s, s:s}", "path", "/name", "message", "required string"));
    int t = ns_type_parse(type);
    if (t < 0)
        json_array_append_new(errors, json_pack("{s:s, s:s}", "path", "/idType", "message",
                                                "must be one of COOKIE, DEVICE, CROSS_DEVICE, EMAIL, "
                                                "PHONE, NON_PEOPLE, PARTNER"));
    if (json_array_size(errors)) {
        http_problem(r, 400, "Invalid namespace", errors, "the namespace definition is invalid");
        json_decref(body);
        return 0;
    }
    json_decref(errors);
    json_int_t now = (json_int_t)kith_now_ms();
    json_t *doc = json_pack("{s:s, s:s, s:s, s:s, s:s, s:b, s:I, s:I}", "code", code, "name", name,
                            "description", desc ? desc : "", "idType", ns_type_name(t), "status",
                            "ACTIVE", "custom", 1, "createTime", now, "updateTime", now);
    struct ns_put c = {r->e, r->sandbox_id, doc, code};
    int rc = apply_call(r->e->apply, ns_put_fn, &c, false);
    if (rc == KITH_ECONFLICT)
        http_problem(r, 409, "Conflict", NULL, "identity namespace \"%s\" already exists", code);
    else if (rc) http_error(r, rc, "the namespace could not be created");
    else http_json(r, 200, json_incref(doc));
    json_decref(doc);
    json_decref(body);
    return 0;
}

#define NS_NAME_MAX 256
#define NS_DESC_MAX 1024

struct ns_update {
    kith_engine *e;
    uint32_t sandbox;
    json_t *doc; /* the new document (owned by the handler) */
};

static int ns_update_fn(void *ctx, store_batch *b)
{
    struct ns_update *c = ctx;
    return catalog_update_namespace(c->e->cat, b, c->sandbox, json_incref(c->doc));
}

/* AEP: a custom namespace's display name and description can change; its code (symbol) and type
 * cannot, and standard namespaces cannot change at all. */
int h_namespace_update(kith_req *r)
{
    json_t *body = http_body_json(r);
    if (!body) return 0;
    char *end;
    unsigned long nid = strtoul(r->params[0], &end, 10);
    catalog_rdlock(r->e->cat);
    const cat_namespace *n = *end == 0
                                 ? catalog_namespace_by_id(r->e->cat, r->sandbox_id, (uint32_t)nid)
                                 : catalog_namespace(r->e->cat, r->sandbox_id, r->params[0]);
    bool custom = n && n->custom;
    int type = n ? n->type : 0;
    json_t *doc = custom ? json_deep_copy(n->doc) : NULL;
    char code[64] = "";
    if (n) snprintf(code, sizeof code, "%s", n->code);
    catalog_unlock(r->e->cat);
    if (!n) {
        http_problem(r, 404, "Not Found", NULL, "no identity namespace \"%s\"", r->params[0]);
        json_decref(body);
        return 0;
    }
    json_t *errors = json_array();
    if (!json_is_object(body)) {
        json_array_append_new(errors, json_pack("{s:s, s:s}", "path", "", "message",
                                                "expected an object with \"name\" and/or "
                                                "\"description\""));
    } else if (!custom) {
        json_array_append_new(errors, json_pack("{s:s, s:s}", "path", "", "message",
                                                "a standard namespace cannot be changed"));
    } else {
        json_t *name = json_object_get(body, "name"), *desc = json_object_get(body, "description");
        json_t *bcode = json_object_get(body, "code"), *btype = json_object_get(body, "idType");
        if (name && (!json_is_string(name) || json_string_length(name) == 0 ||
                     json_string_length(name) > NS_NAME_MAX))
            json_array_append_new(errors, json_pack("{s:s, s:s}", "path", "/name", "message",
                                                    "a string of 1 to 256 bytes"));
        if (desc && (!json_is_string(desc) || json_string_length(desc) > NS_DESC_MAX))
            json_array_append_new(errors, json_pack("{s:s, s:s}", "path", "/description",
                                                    "message", "a string of at most 1024 bytes"));
        if (bcode && (!json_is_string(bcode) || strcmp(json_string_value(bcode), code) != 0))
            json_array_append_new(errors, json_pack("{s:s, s:s}", "path", "/code", "message",
                                                    "immutable: a namespace's code cannot change"));
        if (btype && (!json_is_string(btype) || ns_type_parse(json_string_value(btype)) != type))
            json_array_append_new(errors, json_pack("{s:s, s:s}", "path", "/idType", "message",
                                                    "immutable: a namespace's type cannot change"));
        if (json_array_size(errors) == 0) {
            if (name) json_object_set(doc, "name", name);
            if (desc) json_object_set(doc, "description", desc);
            json_object_set_new(doc, "updateTime", json_integer((json_int_t)kith_now_ms()));
        }
    }
    json_decref(body);
    if (json_array_size(errors)) {
        http_problem(r, 400, "Invalid namespace", errors, "the namespace cannot be changed so");
        json_decref(doc);
        return 0;
    }
    json_decref(errors);
    struct ns_update c = {r->e, r->sandbox_id, doc};
    int rc = apply_call(r->e->apply, ns_update_fn, &c, false);
    if (rc == KITH_ENOTFOUND)
        http_problem(r, 404, "Not Found", NULL, "no identity namespace \"%s\"", r->params[0]);
    else if (rc) http_error(r, rc, "the namespace could not be changed");
    else http_json(r, 200, json_incref(doc));
    json_decref(doc);
    return 0;
}
