/* Segment definitions: /data/core/ups/segment/definitions (aep-spec 4.1,
 * 4.2). Storage, compilation and evaluationInfo live in src/segment/svc_defs.c; this file checks
 * requests and shapes answers. Every change runs on the apply thread. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http.h"
#include "kith/segsvc.h"

#define LIST_LIMIT_DEFAULT 20
#define LIST_LIMIT_MAX 1000
#define BULK_MAX 100

struct sd_op {
    kith_engine *e;
    uint32_t sb;
    const char *id;
    const json_t *body; /* NULL: delete */
    bool create;
    segdef_result res;
    char detail[300];
};

static int sd_fn(void *ctx, store_batch *b)
{
    struct sd_op *c = ctx;
    if (!c->body) return segdef_delete(c->e, b, c->sb, c->id, c->detail, sizeof c->detail);
    return segdef_put(c->e, b, c->sb, c->id, c->body, c->create, &c->res);
}

static void store_and_answer(kith_req *r, const char *id, const json_t *body, bool create)
{
    struct sd_op c = {.e = r->e, .sb = r->sandbox_id, .id = id, .body = body, .create = create};
    int rc = apply_call(r->e->apply, sd_fn, &c, false);
    if (rc == 0) {
        http_json(r, c.res.status, c.res.doc);
        return;
    }
    if (c.res.status >= 400)
        http_problem(r, c.res.status,
                     c.res.status == 400   ? "Invalid segment definition"
                     : c.res.status == 404 ? "Not Found"
                                           : "Conflict",
                     c.res.errors, "%s", c.res.detail);
    else
        http_error(r, rc, "the segment definition could not be stored");
}

int h_segdef_create(kith_req *r)
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
    json_t *doc = segdef_get(r->e, r->sandbox_id, id);
    if (!doc)
        http_problem(r, 404, "Not Found", NULL, "no segment definition \"%s\" in sandbox %s", id,
                     r->sandbox);
    return doc;
}

/* ?expressionFormat=pql/text|pql/json (kith): answer with the expressions in that form, whatever
 * form they were written in. *fmt is NULL when absent; false after answering 400. */
static bool want_format(kith_req *r, const char **fmt)
{
    *fmt = http_query(r, "expressionFormat");
    if (*fmt && strcmp(*fmt, "pql/text") != 0 && strcmp(*fmt, "pql/json") != 0) {
        http_problem(r, 400, "Bad Request",
                     json_pack("[{s:s, s:s}]", "path", "expressionFormat", "message",
                               "\"pql/text\" or \"pql/json\""),
                     "expressionFormat must be \"pql/text\" or \"pql/json\"");
        return false;
    }
    return true;
}

static void as_format(json_t *doc, const char *fmt)
{
    if (fmt && segdef_expression_as(doc, fmt))
        kith_log(KITH_LOG_WARN, "segment", "definition %s: the expression does not convert to %s",
                 json_string_value(json_object_get(doc, "id")), fmt);
}

int h_segdef_get(kith_req *r)
{
    const char *fmt;
    if (!want_format(r, &fmt)) return 0;
    json_t *doc = get_or_404(r, r->params[0]);
    if (doc) {
        as_format(doc, fmt);
        http_json(r, 200, doc);
    }
    return 0;
}

/* POST /segment/conversion (AEP pql-conversions): a definition-like object whose expression is
 * converted pql/text ↔ pql/json (to the other format, or to "targetFormat", a kith extension) and
 * answered as 200 with the same object. The expression must compile in the sandbox, as a
 * definition's must; errors name line and column (text) or the JSON path in the tree (json). */
int h_segdef_convert(kith_req *r)
{
    json_t *body = http_body_json(r);
    if (!body) return 0;
    const json_t *ex = json_object_get(body, "expression");
    const char *type = json_string_value(json_object_get(ex, "type"));
    const char *fmt = json_string_value(json_object_get(ex, "format"));
    const json_t *val = json_object_get(ex, "value");
    const json_t *tj = json_object_get(body, "targetFormat");
    const char *tgt = json_string_value(tj);
    const char *bad_path = NULL, *bad_msg = NULL;
    json_t *tree = NULL;
    pql_json_error jerr;
    if (!json_is_object(body))
        bad_path = "", bad_msg = "a definition-like object with an \"expression\"";
    else if (!json_is_object(ex))
        bad_path = "/expression", bad_msg = "required: {\"type\": \"PQL\", \"format\", \"value\"}";
    else if (!type || strcmp(type, "PQL") != 0)
        bad_path = "/expression/type", bad_msg = "\"PQL\"";
    else if (!fmt || (strcmp(fmt, "pql/text") != 0 && strcmp(fmt, "pql/json") != 0))
        bad_path = "/expression/format", bad_msg = "\"pql/text\" or \"pql/json\"";
    else if (tj && (!tgt || (strcmp(tgt, "pql/text") != 0 && strcmp(tgt, "pql/json") != 0)))
        bad_path = "/targetFormat", bad_msg = "\"pql/text\" or \"pql/json\"";
    else if (!strcmp(fmt, "pql/text") && (!json_is_string(val) || !json_string_length(val)))
        bad_path = "/expression/value", bad_msg = "a non-empty PQL string";
    else if (!strcmp(fmt, "pql/json") && !(tree = pql_json_value(val, &jerr)))
        bad_path = "/expression/value", bad_msg = jerr.message;
    if (bad_path) {
        http_problem(r, 400, "Invalid conversion request",
                     json_pack("[{s:s, s:s}]", "path", bad_path, "message", bad_msg), "%s: %s",
                     *bad_path ? bad_path : "/", bad_msg);
        json_decref(body);
        return 0;
    }
    if (!tgt) tgt = !strcmp(fmt, "pql/text") ? "pql/json" : "pql/text";
    pql_program *p = NULL;
    char *canon = NULL;
    int rc;
    if (tree) {
        rc = segsvc_compile_json(r->e, r->sandbox_id, tree, &p, &canon, &jerr);
        if (rc) {
            char path[300];
            snprintf(path, sizeof path, "/expression/value%s", jerr.path);
            http_problem(r, 400, "Invalid conversion request",
                         json_pack("[{s:s, s:s}]", "path", path, "message", jerr.message),
                         "the expression does not compile: %s: %s", path, jerr.message);
        }
    } else {
        pql_error perr;
        rc = segsvc_compile(r->e, r->sandbox_id, json_string_value(val), &p, &perr);
        if (rc) {
            char msg[400];
            snprintf(msg, sizeof msg, "line %d, column %d: %s", perr.line, perr.column,
                     perr.message);
            http_problem(r, 400, "Invalid conversion request",
                         json_pack("[{s:s, s:s, s:i, s:i}]", "path", "/expression/value",
                                   "message", msg, "line", perr.line, "column", perr.column),
                         "the expression does not compile: %s", msg);
        } else {
            canon = kith_xstrdup(json_string_value(val));
        }
    }
    pql_program_free(p);
    if (!rc) {
        json_t *out = json_deep_copy(body);
        json_object_del(out, "targetFormat");
        json_t *wrap = json_pack("{s:{s:s, s:s, s:s}}", "expression", "type", "PQL", "format",
                                 "pql/text", "value", canon);
        /* text to text: the canonical text (through the tree) */
        int crc = !tree && !strcmp(tgt, "pql/text") ? segdef_expression_as(wrap, "pql/json") : 0;
        if (crc == 0 && segdef_expression_as(wrap, tgt) == 0) {
            json_object_set(out, "expression", json_object_get(wrap, "expression"));
            http_json(r, 200, out);
        } else {
            json_decref(out);
            http_error(r, KITH_EINVAL, "the expression could not be converted");
        }
        json_decref(wrap);
    }
    free(canon);
    json_decref(tree);
    json_decref(body);
    return 0;
}

/* PATCH: a partial definition object (AEP), merged over the current one. */
int h_segdef_patch(kith_req *r)
{
    json_t *body = http_body_json(r);
    if (!body) return 0;
    json_t *cur = NULL;
    if (!json_is_object(body)) {
        http_problem(r, 400, "Invalid segment definition", NULL,
                     "a PATCH body is a (partial) segment definition object");
    } else if ((cur = get_or_404(r, r->params[0]))) {
        json_object_update(cur, body);
        store_and_answer(r, r->params[0], cur, false);
    }
    json_decref(cur);
    json_decref(body);
    return 0;
}

int h_segdef_delete(kith_req *r)
{
    struct sd_op c = {.e = r->e, .sb = r->sandbox_id, .id = r->params[0]};
    int rc = apply_call(r->e->apply, sd_fn, &c, false);
    if (rc == KITH_ENOTFOUND)
        http_problem(r, 404, "Not Found", NULL, "no segment definition \"%s\" in sandbox %s",
                     r->params[0], r->sandbox);
    else if (rc == KITH_ECONFLICT)
        http_problem(r, 409, "Conflict", NULL, "the segment cannot be deleted: %s", c.detail);
    else if (rc)
        http_error(r, rc, "the segment definition could not be deleted");
    else
        r->status = 200;
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

/* evaluationInfo.<kind>.enabled filter: keep only matching docs. */
static bool filter_ok(kith_req *r, const json_t *doc)
{
    static const char *const kinds[] = {"batch", "continuous", "synchronous"};
    for (size_t i = 0; i < 3; i++) {
        char q[64];
        snprintf(q, sizeof q, "evaluationInfo.%s.enabled", kinds[i]);
        const char *v = http_query(r, q);
        if (!v) continue;
        bool want = strcmp(v, "true") == 0;
        bool has = json_is_true(json_object_get(
            json_object_get(json_object_get(doc, "evaluationInfo"), kinds[i]), "enabled"));
        if (want != has) return false;
    }
    return true;
}

int h_segdef_list(kith_req *r)
{
    const char *fmt;
    if (!want_format(r, &fmt)) return 0;
    long start = 0, limit = LIST_LIMIT_DEFAULT;
    const char *s = http_query(r, "start"), *l = http_query(r, "limit"), *p = http_query(r, "page");
    if (l && !parse_count(l, 1, LIST_LIMIT_MAX, &limit)) {
        http_problem(r, 400, "Bad Request", NULL, "limit must be an integer from 1 to %d",
                     LIST_LIMIT_MAX);
        return 0;
    }
    if (s && !parse_count(s, 0, 1L << 30, &start)) {
        http_problem(r, 400, "Bad Request", NULL, "start must be a non-negative integer");
        return 0;
    }
    long page = 0;
    if (p && !parse_count(p, 0, 1L << 30, &page)) {
        http_problem(r, 400, "Bad Request", NULL, "page must be a non-negative integer");
        return 0;
    }
    if (p && !s) start = page * limit;
    json_t *all = segdef_list(r->e, r->sandbox_id), *kept = json_array(), *doc;
    size_t i;
    json_array_foreach(all, i, doc) if (filter_ok(r, doc)) json_array_append(kept, doc);
    json_decref(all);
    size_t total = json_array_size(kept);
    json_t *segs = json_array();
    for (size_t k = (size_t)start; k < total && json_array_size(segs) < (size_t)limit; k++) {
        as_format(json_array_get(kept, k), fmt);
        json_array_append(segs, json_array_get(kept, k));
    }
    json_decref(kept);
    json_t *body = json_pack("{s:o, s:{s:I, s:I, s:s, s:s, s:I, s:I, s:I}, s:{}}", "segments", segs,
                             "page", "totalCount", (json_int_t)total, "totalPages",
                             (json_int_t)((total + limit - 1) / limit), "sortField", "creationTime",
                             "sort", "asc", "pageSize", (json_int_t)json_array_size(segs), "limit",
                             (json_int_t)limit, "start", (json_int_t)start, "link");
    http_json(r, 200, body);
    return 0;
}

/* {"ids": [{"id": ...}]} → 207 {"results": {id: definition | {"status", "title", "detail"}}} */
int h_segdef_bulk_get(kith_req *r)
{
    const char *fmt;
    if (!want_format(r, &fmt)) return 0;
    json_t *body = http_body_json(r);
    if (!body) return 0;
    json_t *ids = json_object_get(body, "ids");
    if (!json_is_array(ids) || json_array_size(ids) == 0 || json_array_size(ids) > BULK_MAX) {
        http_problem(
            r, 400, "Bad Request",
            json_pack("[{s:s, s:s}]", "path", "/ids", "message", "1 to 100 {\"id\"} objects"),
            "bulk-get takes {\"ids\": [{\"id\": ...}]} with 1 to %d ids", BULK_MAX);
        json_decref(body);
        return 0;
    }
    json_t *results = json_object(), *it;
    size_t i;
    json_array_foreach(ids, i, it)
    {
        const char *id = json_string_value(json_is_object(it) ? json_object_get(it, "id") : it);
        if (!id) continue;
        json_t *doc = segdef_get(r->e, r->sandbox_id, id);
        if (doc) as_format(doc, fmt);
        json_object_set_new(results, id,
                            doc ? doc
                                : json_pack("{s:i, s:s, s:s}", "status", 404, "title", "Not Found",
                                            "detail", "no such segment definition"));
    }
    http_json(r, 207, json_pack("{s:o}", "results", results));
    json_decref(body);
    return 0;
}

