/* Computed attributes: /data/core/ca/attributes (aep-spec 6.4, API.md 6). Definitions, state and
 * jobs live in src/ca/; this file checks requests and shapes answers. Changes run on the apply
 * thread. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "http.h"
#include "kith/ca.h"

#define LIST_LIMIT_DEFAULT 20
#define LIST_LIMIT_MAX 40

struct ca_op {
    kith_engine *e;
    uint32_t sb;
    const char *id;
    const json_t *body; /* NULL: delete */
    bool create;
    ca_result res;
    char detail[300];
};

static int ca_fn(void *ctx, store_batch *b)
{
    struct ca_op *c = ctx;
    if (!c->body) return ca_delete(c->e, b, c->sb, c->id, c->detail, sizeof c->detail);
    return ca_put(c->e, b, c->sb, c->id, c->body, c->create, &c->res);
}

static void store_and_answer(kith_req *r, const char *id, const json_t *body, bool create)
{
    struct ca_op c = {.e = r->e, .sb = r->sandbox_id, .id = id, .body = body, .create = create};
    int rc = apply_call(r->e->apply, ca_fn, &c, false);
    if (rc == 0) {
        json_t *doc = ca_get(r->e, r->sandbox_id, id);
        json_decref(c.res.doc);
        http_json(r, c.res.status, doc ? doc : json_object());
        return;
    }
    json_decref(c.res.doc);
    if (c.res.status >= 400)
        http_problem(r, c.res.status,
                     c.res.status == 400   ? "Invalid computed attribute"
                     : c.res.status == 404 ? "Not Found"
                                           : "Conflict",
                     c.res.errors, "%s", c.res.detail);
    else
        http_error(r, rc, "the computed attribute could not be stored");
}

int h_ca_create(kith_req *r)
{
    json_t *body = http_body_json(r);
    if (!body) return 0;
    char id[40];
    kith_uuid4(id);
    store_and_answer(r, id, body, true);
    json_decref(body);
    return 0;
}

static json_t *get_or_404(kith_req *r, const char *id)
{
    json_t *doc = ca_get(r->e, r->sandbox_id, id);
    if (!doc)
        http_problem(r, 404, "Not Found", NULL, "no computed attribute \"%s\" in sandbox %s", id,
                     r->sandbox);
    return doc;
}

int h_ca_get(kith_req *r)
{
    json_t *doc = get_or_404(r, r->params[0]);
    if (doc) http_json(r, 200, doc);
    return 0;
}

/* PATCH: a partial attribute object merged over the current one (drafts: any field; published:
 * displayName and description). */
int h_ca_patch(kith_req *r)
{
    json_t *body = http_body_json(r);
    if (!body) return 0;
    json_t *cur = NULL;
    if (!json_is_object(body)) {
        http_problem(r, 400, "Invalid computed attribute", NULL,
                     "a PATCH body is a (partial) computed attribute object");
    } else if ((cur = get_or_404(r, r->params[0]))) {
        json_object_del(cur, "backfill");
        json_object_update(cur, body);
        store_and_answer(r, r->params[0], cur, false);
    }
    json_decref(cur);
    json_decref(body);
    return 0;
}

int h_ca_delete(kith_req *r)
{
    struct ca_op c = {.e = r->e, .sb = r->sandbox_id, .id = r->params[0]};
    int rc = apply_call(r->e->apply, ca_fn, &c, false);
    if (rc == KITH_ENOTFOUND)
        http_problem(r, 404, "Not Found", NULL, "no computed attribute \"%s\" in sandbox %s",
                     r->params[0], r->sandbox);
    else if (rc == KITH_ECONFLICT)
        http_problem(r, 409, "Conflict", NULL, "the computed attribute cannot be deleted: %s",
                     c.detail);
    else if (rc)
        http_error(r, rc, "the computed attribute could not be deleted");
    else
        http_json(r, 200, json_pack("{s:s, s:s}", "id", r->params[0], "status", "deleted"));
    return 0;
}

static bool parse_count(const char *s, long lo, long hi, long *out)
{
    char *end;
    long v = strtol(s, &end, 10);
    if (!*s || *end || v < lo || v > hi) return false;
    *out = v;
    return true;
}

static __thread const char *sort_key;
static __thread bool sort_desc;

static int doc_cmp(const void *a, const void *b)
{
    const json_t *x = *(json_t *const *)a, *y = *(json_t *const *)b;
    int c;
    if (!strcmp(sort_key, "name") || !strcmp(sort_key, "status")) {
        const json_t *xs = json_object_get(x, sort_key), *ys = json_object_get(y, sort_key);
        if (json_is_object(xs)) xs = json_object_get(xs, "type"), ys = json_object_get(ys, "type");
        const char *p = json_string_value(xs), *q = json_string_value(ys);
        c = strcmp(p ? p : "", q ? q : "");
    } else {
        json_int_t p = json_integer_value(json_object_get(x, sort_key));
        json_int_t q = json_integer_value(json_object_get(y, sort_key));
        c = p < q ? -1 : p > q;
    }
    if (c == 0) {
        const char *p = json_string_value(json_object_get(x, "id"));
        const char *q = json_string_value(json_object_get(y, "id"));
        c = strcmp(p ? p : "", q ? q : "");
    }
    return sort_desc ? -c : c;
}

/* GET: limit (1-40, default 20), offset, sortBy (name|status|updateEpoch|createEpoch, '-' for
 * descending; default -updateEpoch), state (published|draft), status (the job status). */
int h_ca_list(kith_req *r)
{
    long offset = 0, limit = LIST_LIMIT_DEFAULT;
    const char *s;
    if ((s = http_query(r, "limit")) && !parse_count(s, 1, LIST_LIMIT_MAX, &limit)) {
        http_problem(r, 400, "Bad Request", NULL, "limit must be an integer from 1 to %d",
                     LIST_LIMIT_MAX);
        return 0;
    }
    if ((s = http_query(r, "offset")) && !parse_count(s, 0, 1000000, &offset)) {
        http_problem(r, 400, "Bad Request", NULL, "offset must be a non-negative integer");
        return 0;
    }
    const char *sort = http_query(r, "sortBy");
    bool desc = true;
    const char *key = "updateEpoch";
    if (sort) {
        desc = sort[0] == '-';
        key = desc ? sort + 1 : sort;
        if (strcmp(key, "name") && strcmp(key, "status") && strcmp(key, "updateEpoch") &&
            strcmp(key, "createEpoch")) {
            http_problem(r, 400, "Bad Request", NULL,
                         "sortBy must be name, status, updateEpoch or createEpoch (prefix '-' "
                         "for descending)");
            return 0;
        }
    }
    const char *state = http_query(r, "state");
    if (state && strcasecmp(state, "published") && strcasecmp(state, "draft")) {
        http_problem(r, 400, "Bad Request", NULL, "state must be published or draft");
        return 0;
    }
    const char *status = http_query(r, "status");
    json_t *all = ca_list(r->e, r->sandbox_id);
    size_t n = 0, i;
    json_t *d;
    json_t **v = kith_xcalloc(json_array_size(all) + 1, sizeof *v);
    json_array_foreach(all, i, d)
    {
        json_t *st = json_object_get(d, "status");
        const char *type = json_string_value(json_object_get(st, "type"));
        const char *job = json_string_value(json_object_get(st, "job"));
        if (state && (!type || strcasecmp(type, state))) continue;
        if (status && (!job || strcasecmp(job, status))) continue;
        v[n++] = d;
    }
    sort_key = key; /* qsort has no context argument: thread-local */
    sort_desc = desc;
    qsort(v, n, sizeof *v, doc_cmp);
    json_t *page = json_array();
    for (size_t k = (size_t)offset; k < n && k < (size_t)(offset + limit); k++)
        json_array_append(page, v[k]);
    free(v);
    json_decref(all);
    char self[160], next[160];
    snprintf(self, sizeof self, "/data/core/ca/attributes?offset=%ld&limit=%ld", offset, limit);
    snprintf(next, sizeof next, "/data/core/ca/attributes?offset=%ld&limit=%ld", offset + limit,
             limit);
    json_t *links = json_pack("{s:{s:s}}", "self", "href", self);
    if ((size_t)(offset + limit) < n) json_object_set_new(links, "next", json_pack("{s:s}", "href", next));
    http_json(r, 200,
              json_pack("{s:o, s:o, s:{s:i, s:i, s:I, s:I}}", "_links", links, "computedAttributes",
                        page, "_page", "offset", (int)offset, "limit", (int)limit, "count",
                        (json_int_t)json_array_size(page), "totalCount", (json_int_t)n));
    return 0;
}
