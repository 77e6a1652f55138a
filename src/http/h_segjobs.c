/* Segment jobs (/data/core/ups/segment/jobs) and export jobs (/data/core/ups/export/jobs), aep-spec
 * 4.6 and 4.7. The jobs themselves live in src/segment/svc_jobs.c; this file checks requests, shapes
 * answers and streams an export's JSON-lines file. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "http.h"
#include "kith/segsvc.h"

#define LIST_LIMIT_DEFAULT 20
#define LIST_LIMIT_MAX 100

static int create(kith_req *r, int kind)
{
    json_t *body = http_body_json(r);
    if (!body) return 0;
    segdef_result res;
    int rc = segsvc_job_create(r->e, r->sandbox_id, kind, body, &res);
    json_decref(body);
    if (rc == 0) {
        http_json(r, 200, res.doc);
    } else if (res.status == 429) {
        http_problem(r, 429, "Too Many Requests", NULL, "%s", res.detail);
        r->retry_after = 5;
    } else {
        http_problem(r, res.status ? res.status : 400,
                     kind == SEGJOB_EXPORT ? "Invalid export job" : "Invalid segment job",
                     res.errors, "%s", res.detail);
    }
    return 0;
}

static int get(kith_req *r, int kind)
{
    json_t *doc = segsvc_job_get(r->e, r->sandbox_id, kind, r->params[0]);
    if (!doc)
        http_problem(r, 404, "Not Found", NULL, "no %s job \"%s\" in sandbox %s",
                     kind == SEGJOB_EXPORT ? "export" : "segment", r->params[0], r->sandbox);
    else
        http_json(r, 200, doc);
    return 0;
}

static int cancel(kith_req *r, int kind)
{
    const char *what = kind == SEGJOB_EXPORT ? "export" : "segment";
    int rc = segsvc_job_cancel(r->e, r->sandbox_id, kind, r->params[0]);
    if (rc == KITH_ENOTFOUND)
        http_problem(r, 404, "Not Found", NULL, "no %s job \"%s\" in sandbox %s", what,
                     r->params[0], r->sandbox);
    else if (rc == KITH_ECONFLICT)
        http_problem(r, 409, "Conflict", NULL, "the %s job \"%s\" has already finished", what,
                     r->params[0]);
    else {
        char msg[160];
        snprintf(msg, sizeof msg, "%s job %s marked for cancelling", what, r->params[0]);
        http_json(r, 200, json_pack("{s:b, s:s}", "status", 1, "message", msg));
    }
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

static int list(kith_req *r, int kind)
{
    long start = 0, limit = LIST_LIMIT_DEFAULT;
    const char *l = http_query(r, "limit");
    const char *s = http_query(r, kind == SEGJOB_EXPORT ? "offset" : "start");
    const char *status = http_query(r, "status");
    if (l && !parse_count(l, 1, LIST_LIMIT_MAX, &limit)) {
        http_problem(r, 400, "Bad Request", NULL, "limit must be an integer from 1 to %d",
                     LIST_LIMIT_MAX);
        return 0;
    }
    if (s && !parse_count(s, 0, 1L << 30, &start)) {
        http_problem(r, 400, "Bad Request", NULL, "%s must be a non-negative integer",
                     kind == SEGJOB_EXPORT ? "offset" : "start");
        return 0;
    }
    static const char *const known[] = {"NEW", "PROCESSING", "SUCCEEDED", "FAILED", "CANCELLED"};
    bool ok = !status;
    for (size_t i = 0; i < 5 && !ok; i++)
        ok = strcasecmp(status, known[i]) == 0;
    if (!ok) {
        http_problem(r, 400, "Bad Request", NULL,
                     "status must be one of NEW, PROCESSING, SUCCEEDED, FAILED, CANCELLED");
        return 0;
    }
    size_t total = 0;
    json_t *items = segsvc_job_list(r->e, r->sandbox_id, kind, status, (size_t)start,
                                    (size_t)limit, &total);
    json_t *page = json_pack("{s:I, s:I, s:I, s:s, s:s}", "totalCount", (json_int_t)total,
                             "pageSize", (json_int_t)json_array_size(items), "limit",
                             (json_int_t)limit, "sortField",
                             kind == SEGJOB_EXPORT ? "createdTime" : "creationTime", "sort",
                             "desc");
    if (kind == SEGJOB_EXPORT)
        http_json(r, 200, json_pack("{s:o, s:o, s:{}}", "records", items, "page", page, "link"));
    else
        http_json(r, 200,
                  json_pack("{s:o, s:o, s:{}}", "children", items, "_page", page, "_links"));
    return 0;
}

int h_segjob_list(kith_req *r)
{
    return list(r, SEGJOB_SEGMENT);
}
int h_segjob_create(kith_req *r)
{
    return create(r, SEGJOB_SEGMENT);
}
int h_segjob_get(kith_req *r)
{
    return get(r, SEGJOB_SEGMENT);
}
int h_segjob_cancel(kith_req *r)
{
    return cancel(r, SEGJOB_SEGMENT);
}
int h_exportjob_list(kith_req *r)
{
    return list(r, SEGJOB_EXPORT);
}
int h_exportjob_create(kith_req *r)
{
    return create(r, SEGJOB_EXPORT);
}
int h_exportjob_get(kith_req *r)
{
    return get(r, SEGJOB_EXPORT);
}
int h_exportjob_cancel(kith_req *r)
{
    return cancel(r, SEGJOB_EXPORT);
}

static ssize_t file_read(void *cls, uint64_t pos, char *buf, size_t max)
{
    (void)pos;
    size_t n = fread(buf, 1, max, (FILE *)cls);
    return n ? (ssize_t)n : MHD_CONTENT_READER_END_OF_STREAM;
}

static void file_close(void *cls)
{
    fclose((FILE *)cls);
}

int h_exportjob_file(kith_req *r)
{
    char path[4400];
    const char *status = "";
    int rc = segsvc_export_file(r->e, r->sandbox_id, r->params[0], path, sizeof path, &status);
    FILE *f = rc == 0 ? fopen(path, "r") : NULL;
    if (rc == KITH_ENOTFOUND) {
        http_problem(r, 404, "Not Found", NULL, "no export job \"%s\" in sandbox %s", r->params[0],
                     r->sandbox);
    } else if (rc == KITH_ECONFLICT) {
        http_problem(r, 409, "Conflict", NULL,
                     "export job \"%s\" has no file: its status is %s (a file exists once it "
                     "SUCCEEDED)",
                     r->params[0], status);
    } else if (!f) {
        http_problem(r, 410, "Gone", NULL, "the file of export job \"%s\" was removed",
                     r->params[0]);
    } else {
        r->stream = file_read;
        r->stream_cls = f;
        r->stream_free = file_close;
        r->status = 200;
        r->ctype = "application/x-ndjson";
    }
    return 0;
}
