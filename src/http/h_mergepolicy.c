/* Merge policies: /data/core/ups/config/mergePolicies (aep-spec section 3.3). Storage and the
 * default/edge flag rules live in src/profile/mergepolicy.c; this file checks requests and shapes
 * answers. Every change runs on the apply thread. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "http.h"
#include "jsonpatch.h"
#include "kith/segsvc.h"
#include "profile/mergepolicy.h"

#define LIST_LIMIT_DEFAULT 20
#define LIST_LIMIT_MAX 100
#define BULK_MAX 100

static json_t *err1(const char *path, const char *msg)
{
    return json_pack("[{s:s, s:s}]", "path", path, "message", msg);
}

struct mp_op {
    kith_engine *e;
    uint32_t sandbox;
    const char *id;
    const json_t *fields; /* NULL: delete */
    int64_t expect_version;
    json_t *stored;
};

/* What a policy merges, as one value (segments naming a missing policy use the default). */
static uint64_t semantics(kith_engine *e, uint32_t sb, const char *id)
{
    merge_policy p;
    if (profile_policy_resolve(e, sb, id, &p) != 0 && profile_policy_resolve(e, sb, NULL, &p) != 0)
        return 0;
    bool none = p.graph == MP_GRAPH_NONE;
    p.graph = MP_GRAPH_PDG;
    uint64_t sem = merge_policy_signature(&p) ^ (none ? 0x9e3779b97f4a7c15ull : 0);
    merge_policy_clear(&p);
    return sem;
}

static int mp_fn(void *ctx, store_batch *b)
{
    struct mp_op *c = ctx;
    uint64_t dflt = semantics(c->e, c->sandbox, NULL), self = semantics(c->e, c->sandbox, c->id);
    int rc = !c->fields ? mpolicy_delete(c->e, b, c->sandbox, c->id)
                        : mpolicy_store(c->e, b, c->sandbox, c->id, c->fields, c->expect_version,
                                        &c->stored);
    if (rc == 0) /* segments evaluating under a changed policy are re-evaluated (src/segment/) */
        segsvc_policy_changed(c->e, c->sandbox, c->id, semantics(c->e, c->sandbox, c->id) != self,
                              semantics(c->e, c->sandbox, NULL) != dflt);
    return rc;
}

/* Validates body and answers 400 when it is not a policy; returns the normalised fields or NULL. */
static json_t *validate_or_400(kith_req *r, const json_t *body)
{
    json_t *fields = NULL, *errors = NULL;
    char detail[400];
    if (mpolicy_validate(r->e, r->sandbox_id, body, &fields, &errors, detail, sizeof detail) != 0) {
        http_problem(r, 400, "Invalid merge policy", errors, "%s", detail);
        return NULL;
    }
    return fields;
}

/* Stores fields as policy id; answers with the stored document (status ok) or the error. */
static void store_and_answer(kith_req *r, const char *id, json_t *fields, int64_t expect, int ok)
{
    struct mp_op c = {r->e, r->sandbox_id, id, fields, expect, NULL};
    int rc = apply_call(r->e->apply, mp_fn, &c, false);
    if (rc == 0)
        http_json(r, ok, c.stored);
    else if (rc == KITH_ENOTFOUND)
        http_problem(r, 404, "Not Found", NULL, "no merge policy \"%s\" in sandbox %s", id,
                     r->sandbox);
    else if (rc == KITH_ECONFLICT)
        http_problem(r, 409, "Conflict", NULL,
                     "merge policy \"%s\" changed meanwhile; read it and retry", id);
    else if (rc == KITH_EUNPROC)
        http_problem(r, 422, "Unprocessable Entity", NULL,
                     "sandbox %s already has %d merge policies (the limit)", r->sandbox,
                     MPOLICY_MAX_PER_SANDBOX);
    else
        http_error(r, rc, "the merge policy could not be stored");
}

int h_mp_create(kith_req *r)
{
    json_t *body = http_body_json(r);
    if (!body) return 0;
    json_t *fields = validate_or_400(r, body);
    if (fields) {
        char id[40];
        kith_uuid4(id);
        store_and_answer(r, id, fields, 0, 201);
        json_decref(fields);
    }
    json_decref(body);
    return 0;
}

static json_t *get_or_404(kith_req *r, const char *id)
{
    json_t *doc = mpolicy_get(r->e, r->sandbox_id, id);
    if (!doc)
        http_problem(r, 404, "Not Found", NULL, "no merge policy \"%s\" in sandbox %s", id,
                     r->sandbox);
    return doc;
}

static bool parse_count(const char *s, long lo, long hi, long *out);

/* GET one; ?version=N answers that earlier version (kept until the policy is deleted). */
int h_mp_get(kith_req *r)
{
    const char *vq = http_query(r, "version");
    long version = 0;
    if (vq && !parse_count(vq, 1, 1L << 40, &version)) {
        http_problem(r, 400, "Bad Request", err1("version", "a positive integer"),
                     "version must be a positive integer");
        return 0;
    }
    json_t *doc = get_or_404(r, r->params[0]);
    if (doc && version) {
        int64_t cur = json_integer_value(json_object_get(doc, "version"));
        json_decref(doc);
        doc = mpolicy_get_version(r->e, r->sandbox_id, r->params[0], version);
        if (!doc)
            http_problem(r, 404, "Not Found", NULL,
                         "merge policy \"%s\" has no version %ld (its versions are 1 to %lld)",
                         r->params[0], version, (long long)cur);
    }
    if (doc) http_json(r, 200, doc);
    return 0;
}

/* The built-in policy cannot be changed: 403 (true when answered). */
static bool builtin_403(kith_req *r)
{
    if (!mpolicy_is_builtin(r->params[0])) return false;
    http_problem(r, 403, "Forbidden", NULL,
                 "\"%s\" is kith's built-in merge policy: it cannot be changed or deleted",
                 r->params[0]);
    return true;
}

int h_mp_put(kith_req *r)
{
    if (builtin_403(r)) return 0;
    json_t *body = http_body_json(r);
    if (!body) return 0;
    json_t *cur = get_or_404(r, r->params[0]);
    json_t *fields = cur ? validate_or_400(r, body) : NULL;
    if (fields) {
        store_and_answer(r, r->params[0], fields,
                         json_integer_value(json_object_get(cur, "version")), 200);
        json_decref(fields);
    }
    json_decref(cur);
    json_decref(body);
    return 0;
}

/* The JSON pointer a PATCH path stands for: AEP writes nested fields with dots
 * ("/identityGraph.type"); plain pointers are accepted too. NULL when the path cannot be patched.
 */
static const char *patch_pointer(const char *path)
{
    static const char *const map[][2] = {
        {"/name", "/name"},
        {"/identityGraph.type", "/identityGraph/type"},
        {"/identityGraph/type", "/identityGraph/type"},
        {"/identityGraph", "/identityGraph"},
        {"/attributeMerge.type", "/attributeMerge/type"},
        {"/attributeMerge/type", "/attributeMerge/type"},
        {"/attributeMerge.order", "/attributeMerge/order"},
        {"/attributeMerge/order", "/attributeMerge/order"},
        {"/attributeMerge", "/attributeMerge"},
        {"/schema.name", "/schema/name"},
        {"/schema/name", "/schema/name"},
        {"/schema", "/schema"},
        {"/default", "/default"},
        {"/isActiveOnEdge", "/isActiveOnEdge"},
    };
    for (size_t i = 0; i < sizeof map / sizeof map[0]; i++)
        if (strcmp(path, map[i][0]) == 0) return map[i][1];
    return NULL;
}

/* PATCH: one JSON-Patch operation object (AEP), or an array holding exactly one. */
int h_mp_patch(kith_req *r)
{
    if (builtin_403(r)) return 0;
    json_t *body = http_body_json(r);
    if (!body) return 0;
    json_t *cur = NULL, *fields = NULL;
    json_t *op = json_is_array(body) && json_array_size(body) == 1 ? json_array_get(body, 0) : body;
    const char *opname = json_string_value(json_object_get(op, "op"));
    const char *path = json_string_value(json_object_get(op, "path"));
    const json_t *value = json_object_get(op, "value");
    const char *ptr = path ? patch_pointer(path) : NULL;
    if (!json_is_object(op)) {
        http_problem(r, 400, "Invalid patch", err1("", "expected one operation {op, path, value}"),
                     "a merge policy PATCH is a single JSON-Patch operation object");
    } else if (!opname || (strcmp(opname, "add") != 0 && strcmp(opname, "replace") != 0)) {
        http_problem(r, 400, "Invalid patch", err1("/op", "\"add\" or \"replace\""),
                     "unsupported patch operation \"%s\" (add or replace)", opname ? opname : "");
    } else if (path && strcmp(path, "/version") == 0) {
        http_problem(r, 400, "Invalid patch", err1("/path", "version is maintained by the server"),
                     "version cannot be patched: it goes up by one on every change");
    } else if (!ptr) {
        http_problem(r, 400, "Invalid patch",
                     err1("/path",
                          "one of /name, /identityGraph.type, /attributeMerge.type, "
                          "/attributeMerge.order, /schema.name, /default, /isActiveOnEdge"),
                     "path \"%s\" cannot be patched", path ? path : "");
    } else if (!value) {
        http_problem(r, 400, "Invalid patch", err1("/value", "required"),
                     "the operation needs a value");
    } else if ((cur = get_or_404(r, r->params[0]))) {
        json_t *patched = json_pack(
            "{s:O, s:O, s:O, s:O, s:O, s:O}", "name", json_object_get(cur, "name"), "schema",
            json_object_get(cur, "schema"), "identityGraph", json_object_get(cur, "identityGraph"),
            "attributeMerge", json_object_get(cur, "attributeMerge"), "default",
            json_object_get(cur, "default"), "isActiveOnEdge",
            json_object_get(cur, "isActiveOnEdge"));
        json_t *copy = json_deep_copy(patched);
        json_decref(patched);
        patched = copy; /* deep: the patch must not reach into cur */
        json_t *one = json_pack("[{s:s, s:s, s:O}]", "op", "add", "path", ptr, "value", value);
        char err[300];
        if (jsonpatch_apply(patched, one, err, sizeof err) != 0)
            http_problem(r, 400, "Invalid patch", err1("/path", err),
                         "the patch cannot be applied: %s", err);
        else if ((fields = validate_or_400(r, patched)))
            store_and_answer(r, r->params[0], fields,
                             json_integer_value(json_object_get(cur, "version")), 200);
        json_decref(one);
        json_decref(patched);
    }
    json_decref(fields);
    json_decref(cur);
    json_decref(body);
    return 0;
}

int h_mp_delete(kith_req *r)
{
    if (builtin_403(r)) return 0;
    struct mp_op c = {r->e, r->sandbox_id, r->params[0], NULL, 0, NULL};
    int rc = apply_call(r->e->apply, mp_fn, &c, false);
    if (rc == KITH_ENOTFOUND)
        http_problem(r, 404, "Not Found", NULL, "no merge policy \"%s\" in sandbox %s",
                     r->params[0], r->sandbox);
    else if (rc)
        http_error(r, rc, "the merge policy could not be deleted");
    else
        r->status = 200;
    return 0;
}

/* A boolean query filter: 0 absent, 1 true, 2 false, -1 bad. */
static int bool_filter(kith_req *r, const char *name)
{
    const char *s = http_query(r, name);
    if (!s) return 0;
    if (strcasecmp(s, "true") == 0) return 1;
    if (strcasecmp(s, "false") == 0) return 2;
    http_problem(r, 400, "Bad Request", NULL, "%s must be true or false", name);
    return -1;
}

static bool parse_count(const char *s, long lo, long hi, long *out)
{
    char *end;
    long v = strtol(s, &end, 10);
    if (!*s || *end || v < lo || v > hi) return false;
    *out = v;
    return true;
}

static void append_q(kith_buf *b, const char *name, const char *v)
{
    kith_buf_printf(b, "&%s=", name);
    for (const char *p = v; *p; p++) {
        unsigned char c = (unsigned char)*p;
        if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
            c == '-' || c == '_' || c == '.')
            kith_buf_append(b, p, 1);
        else
            kith_buf_printf(b, "%%%02X", c);
    }
}

static int by_name_desc(const void *a, const void *b)
{
    const json_t *x = *(json_t *const *)a, *y = *(json_t *const *)b;
    int c = strcmp(json_string_value(json_object_get(y, "name")),
                   json_string_value(json_object_get(x, "name")));
    return c ? c
             : strcmp(json_string_value(json_object_get(y, "id")),
                      json_string_value(json_object_get(x, "id")));
}

/* GET list: filters schema.name, default, identityGraph.type, attributeMerge.type, isActiveOnEdge,
 * version; orderBy name|+name|-name; limit (20); start (an offset from _links.next) or page. */
int h_mp_list(kith_req *r)
{
    const char *cls = http_query(r, "schema.name");
    const char *graph = http_query(r, "identityGraph.type");
    const char *attr = http_query(r, "attributeMerge.type");
    const char *order = http_query(r, "orderBy");
    const char *s;
    int dflt = bool_filter(r, "default");
    if (dflt < 0) return 0;
    int edge = bool_filter(r, "isActiveOnEdge");
    if (edge < 0) return 0;
    long limit = LIST_LIMIT_DEFAULT, start = 0, page = 0, version = 0;
    if ((s = http_query(r, "limit")) && !parse_count(s, 1, LIST_LIMIT_MAX, &limit)) {
        http_problem(r, 400, "Bad Request", NULL, "limit must be an integer from 1 to %d",
                     LIST_LIMIT_MAX);
        return 0;
    }
    if ((s = http_query(r, "start")) && !parse_count(s, 0, 1000000, &start)) {
        http_problem(r, 400, "Bad Request", NULL, "start must be the cursor from _links.next");
        return 0;
    }
    if ((s = http_query(r, "page")) && !parse_count(s, 0, 1000000, &page)) {
        http_problem(r, 400, "Bad Request", NULL, "page must be a non-negative integer");
        return 0;
    }
    if ((s = http_query(r, "version")) && !parse_count(s, 1, 1L << 40, &version)) {
        http_problem(r, 400, "Bad Request", NULL, "version must be a positive integer");
        return 0;
    }
    if (order && strcmp(order, "name") != 0 && strcmp(order, "+name") != 0 &&
        strcmp(order, " name") != 0 && strcmp(order, "-name") != 0) {
        http_problem(r, 400, "Bad Request", NULL, "orderBy must be name, +name or -name");
        return 0;
    }
    if (graph && strcmp(graph, "pdg") != 0 && strcmp(graph, "none") != 0) {
        http_problem(r, 400, "Bad Request", NULL, "identityGraph.type must be pdg or none");
        return 0;
    }
    if (attr && strcmp(attr, "timestampOrdered") != 0 && strcmp(attr, "dataSetPrecedence") != 0) {
        http_problem(r, 400, "Bad Request", NULL,
                     "attributeMerge.type must be timestampOrdered or dataSetPrecedence");
        return 0;
    }
    if (!http_query(r, "start")) start = page * limit;
    json_t *all = mpolicy_list(r->e, r->sandbox_id);
    json_t *keep = json_array();
    size_t i;
    json_t *p;
    if (version) {
        /* version=N: each policy as it was at version N (those that had one) */
        json_t *then = json_array();
        json_array_foreach(all, i, p)
        {
            json_t *old = mpolicy_get_version(r->e, r->sandbox_id,
                                              json_string_value(json_object_get(p, "id")), version);
            if (old) json_array_append_new(then, old);
        }
        json_decref(all);
        all = then;
    }
    json_array_foreach(all, i, p)
    {
        if (cls && strcmp(cls, json_string_value(
                                   json_object_get(json_object_get(p, "schema"), "name"))) != 0)
            continue;
        if (graph && strcmp(graph, json_string_value(json_object_get(
                                       json_object_get(p, "identityGraph"), "type"))) != 0)
            continue;
        if (attr && strcmp(attr, json_string_value(json_object_get(
                                     json_object_get(p, "attributeMerge"), "type"))) != 0)
            continue;
        if (dflt && json_is_true(json_object_get(p, "default")) != (dflt == 1)) continue;
        if (edge && json_is_true(json_object_get(p, "isActiveOnEdge")) != (edge == 1)) continue;
        json_array_append(keep, p);
    }
    json_decref(all);
    size_t total = json_array_size(keep);
    if (order && order[0] == '-' && total > 1) {
        json_t **v = kith_xcalloc(total, sizeof *v);
        for (i = 0; i < total; i++)
            v[i] = json_incref(json_array_get(keep, i));
        qsort(v, total, sizeof *v, by_name_desc);
        json_array_clear(keep);
        for (i = 0; i < total; i++)
            json_array_append_new(keep, v[i]);
        free(v);
    }
    json_t *children = json_array();
    for (i = (size_t)start; i < total && i < (size_t)(start + limit); i++)
        json_array_append(children, json_array_get(keep, i));
    json_decref(keep);
    kith_buf href = {0};
    if ((size_t)(start + limit) < total) {
        kith_buf_printf(&href, "@/mergePolicies?start=%ld&limit=%ld", start + limit, limit);
        if (cls) append_q(&href, "schema.name", cls);
        if (graph) append_q(&href, "identityGraph.type", graph);
        if (attr) append_q(&href, "attributeMerge.type", attr);
        if (dflt) append_q(&href, "default", dflt == 1 ? "true" : "false");
        if (edge) append_q(&href, "isActiveOnEdge", edge == 1 ? "true" : "false");
        if (order) append_q(&href, "orderBy", order);
        if (version) kith_buf_printf(&href, "&version=%ld", version);
    }
    http_json(r, 200,
              json_pack("{s:{s:I, s:I}, s:o, s:{s:{s:s}}}", "_page", "totalCount",
                        (json_int_t)total, "pageSize", (json_int_t)json_array_size(children),
                        "children", children, "_links", "next", "href",
                        href.data ? href.data : ""));
    kith_buf_free(&href);
    return 0;
}

/* POST bulk-get {"ids": [{"id"}]} → 207 {"results": {id: policy}}; an unknown id is listed under
 * "errors" with its own status instead. */
int h_mp_bulk_get(kith_req *r)
{
    json_t *body = http_body_json(r);
    if (!body) return 0;
    json_t *ids = json_object_get(body, "ids");
    if (!json_is_array(ids) || json_array_size(ids) == 0 || json_array_size(ids) > BULK_MAX) {
        http_problem(r, 400, "Bad Request",
                     err1("/ids", "an array of 1 to 100 {\"id\": ...} objects"),
                     "bulk-get needs ids: 1 to %d merge policy ids", BULK_MAX);
        json_decref(body);
        return 0;
    }
    size_t i;
    json_t *v;
    json_array_foreach(ids, i, v)
    {
        if (!json_is_string(json_is_object(v) ? json_object_get(v, "id") : v)) {
            char path[40];
            snprintf(path, sizeof path, "/ids/%zu/id", i);
            http_problem(r, 400, "Bad Request", err1(path, "a merge policy id (string)"),
                         "ids[%zu] has no id", i);
            json_decref(body);
            return 0;
        }
    }
    json_t *results = json_object(), *errors = json_object();
    json_array_foreach(ids, i, v)
    {
        const char *id = json_string_value(json_is_object(v) ? json_object_get(v, "id") : v);
        json_t *doc = mpolicy_get(r->e, r->sandbox_id, id);
        if (doc)
            json_object_set_new(results, id, doc);
        else
            json_object_set_new(errors, id,
                                json_pack("{s:I, s:s, s:s}", "status", (json_int_t)404, "title",
                                          "Not Found", "detail", "no such merge policy"));
    }
    json_t *out = json_pack("{s:o}", "results", results);
    if (json_object_size(errors))
        json_object_set_new(out, "errors", errors);
    else
        json_decref(errors);
    http_json(r, 207, out);
    json_decref(body);
    return 0;
}
