/* Streaming ingestion (/collection) and batch file ingestion (import batches). */
#include "kith/jalloc.h"
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "http.h"
#include "kith/ingest.h"

int http_authorize(kith_req *r, int need);

/* --- /collection --- */

typedef struct collect_ctx {
    ingest_job job;
    kith_req *r;
    char inlet[2 * KITH_ID_LEN + 1];
    int64_t received;
    bool single;
    size_t total;
    json_t **errs;        /* per message: NULL when prepared, else the error entry */
    size_t *slot;         /* per message: index in job.msgs */
    jalloc_arena *arena;  /* the request's JSON (parse, validation errors) */
    char xbase[48];       /* xactionId prefix */
} collect_ctx;

static void collect_cleanup(kith_req *r)
{
    collect_ctx *c = r->async;
    if (!c) return;
    for (size_t i = 0; i < c->job.n; i++) ingest_msg_clear(&c->job.msgs[i]);
    for (size_t i = 0; i < c->total; i++) json_decref(c->errs[i]);
    free(c->job.msgs);
    free(c->errs);
    free(c->slot);
    jalloc_arena_free(c->arena);
    free(c);
    r->async = NULL;
}

static void collect_done(ingest_job *job, int rc)
{
    collect_ctx *c = job->user;
    http_resume(c->r);
}

static void count_rejection(kith_engine *e, int rc)
{
    atomic_fetch_add(&e->m.messages_rejected, 1);
    if (rc == KITH_ETOOLARGE) atomic_fetch_add(&e->m.rejected_limit, 1);
    else atomic_fetch_add(&e->m.rejected_validation, 1);
}

static void collect_finish(kith_req *r)
{
    collect_ctx *c = r->async;
    if (c->single) {
        ingest_msg *m = &c->job.msgs[0];
        if (m->rc) {
            http_error(r, m->rc, "the message could not be stored");
            return;
        }
        char x[80];
        snprintf(x, sizeof x, "%s:0", c->xbase);
        json_t *body = json_pack("{s:s, s:s, s:I}", "inletId", c->inlet, "xactionId", x,
                                 "receivedTimeMs", (json_int_t)c->received);
        if (http_query(r, "syncValidation") && strcmp(http_query(r, "syncValidation"), "true") == 0)
            json_object_set_new(body, "syncValidation", json_pack("{s:s}", "status", "pass"));
        else
            json_object_set_new(body, "syncValidation", json_pack("{s:b}", "skipped", 1));
        http_json(r, 200, body);
        return;
    }
    json_t *responses = json_array();
    for (size_t i = 0; i < c->total; i++) {
        if (c->errs[i]) {
            json_array_append(responses, c->errs[i]);
            continue;
        }
        ingest_msg *m = &c->job.msgs[c->slot[i]];
        if (m->rc) {
            json_array_append_new(responses,
                                  json_pack("{s:i, s:s}", "statusCode", kith_err_http_status(m->rc),
                                            "message", "the message could not be stored"));
        } else {
            char x[80];
            snprintf(x, sizeof x, "%s:%zu", c->xbase, i);
            json_array_append_new(responses, json_pack("{s:s}", "xactionId", x));
        }
    }
    char batch[KITH_ID_LEN + 1];
    catalog_new_id(batch);
    http_json(r, 207, json_pack("{s:s, s:s, s:I, s:o}", "inletId", c->inlet, "batchId", batch,
                                "receivedTimeMs", (json_int_t)c->received, "responses", responses));
}

/* Resolves the inlet, sets the request's sandbox, checks auth when the inlet requires it. */
static bool collect_inlet(kith_req *r)
{
    catalog_rdlock(r->e->cat);
    const cat_inlet *in = catalog_inlet(r->e->cat, r->params[0]);
    bool auth = in && in->auth_required;
    const cat_sandbox *sb = in ? catalog_sandbox_by_id(r->e->cat, in->sandbox) : NULL;
    if (sb) {
        snprintf(r->sandbox, sizeof r->sandbox, "%s", sb->name);
        r->sandbox_id = sb->id;
    }
    catalog_unlock(r->e->cat);
    if (!in || !sb) {
        http_problem(r, 404, "Not Found", NULL, "no streaming inlet %s", r->params[0]);
        return false;
    }
    if (auth && http_authorize(r, AUTH_INGEST) != 0) return false;
    return true;
}

static collect_ctx *collect_new(kith_req *r, size_t n)
{
    collect_ctx *c = kith_xcalloc(1, sizeof *c);
    c->r = r;
    c->received = kith_now_ms();
    c->total = n;
    if (n) {
        c->errs = kith_xcalloc(n, sizeof *c->errs);
        c->slot = kith_xcalloc(n, sizeof *c->slot);
        c->job.msgs = kith_xcalloc(n, sizeof *c->job.msgs);
    }
    c->job.done = collect_done;
    c->job.user = c;
    snprintf(c->inlet, sizeof c->inlet, "%s", r->params[0]);
    uint32_t rnd;
    kith_random(&rnd, sizeof rnd);
    snprintf(c->xbase, sizeof c->xbase, "%lld:%u", (long long)c->received, rnd % 100000);
    r->async = c;
    r->cleanup = collect_cleanup;
    return c;
}

/* Parses the body with kjson, remembering where the objects of the first levels are, so each entity
 * can be stored as sent. On failure the answer (400 with line and column) is set and NULL returned. */
static json_t *collect_parse_body(kith_req *r, kjson_spans *spans)
{
    kjson_error err;
    if (r->body.len == 0) {
        http_problem(r, 400, "Bad Request", NULL, "the request body is empty; a JSON document is expected");
        return NULL;
    }
    json_t *j = kjson_parse(r->body.data, r->body.len, r->e->lim.json_depth, spans, &err);
    if (!j)
        http_problem(r, 400, "Malformed JSON", NULL, "malformed JSON at line %d, column %d: %s",
                     err.line, err.column, err.text);
    return j;
}

/* Parses and validates one envelope, on the worker pool. Returns true when the message is ready for
 * the writer; otherwise the answer is set on r. */
static bool collect_parse_one(kith_req *r, collect_ctx *c)
{
    jalloc_arena_enter(&c->arena);
    kjson_spans spans = {.max_depth = 2};
    json_t *env = collect_parse_body(r, &spans);
    if (!env) {
        jalloc_arena_leave();
        kjson_spans_free(&spans);
        return false;
    }
    json_t *errors = json_array();
    const char *message = "Invalid XDM Message Format";
    ingest_source src = {r->body.data, &spans};
    int rc = ingest_prepare_envelope(r->e, r->sandbox_id, env, &src, c->received, &c->job.msgs[0],
                                     errors, &message);
    json_decref(env);
    jalloc_arena_leave();
    kjson_spans_free(&spans);
    if (rc) {
        count_rejection(r->e, rc);
        int status = rc == KITH_ETOOLARGE ? 413 : 400;
        http_problem(r, status, message, errors, "the message was rejected and nothing was stored "
                                                 "(%zu problem%s)",
                     json_array_size(errors), json_array_size(errors) == 1 ? "" : "s");
        return false;
    }
    json_decref(errors);
    c->job.n = 1;
    return true;
}

/* Parses and validates a batch, on the worker pool. Returns true when at least one message is ready
 * for the writer; otherwise the answer is set on r (a problem, or the 207 of all-rejected messages). */
static bool collect_parse_batch(kith_req *r, collect_ctx *c)
{
    jalloc_arena_enter(&c->arena);
    kjson_spans spans = {.max_depth = 4};
    json_t *body = collect_parse_body(r, &spans);
    json_t *msgs = json_object_get(body, "messages");
    ingest_source src = {r->body.data, &spans};
    if (!body || !json_is_array(msgs)) {
        kjson_spans_free(&spans);
        if (body)
            http_problem(r, 400, "Invalid batch",
                         json_pack("[{s:s, s:s}]", "path", "/messages", "message",
                                   "required: an array of message envelopes"),
                         "a batch is {\"messages\": [envelope, ...]}");
        json_decref(body);
        jalloc_arena_leave();
        return false;
    }
    size_t n = json_array_size(msgs);
    if (n > r->e->lim.batch_messages) {
        json_decref(body);
        jalloc_arena_leave();
        kjson_spans_free(&spans);
        http_problem(r, 413, "Payload Too Large", NULL,
                     "the batch has %zu messages; the limit is %zu per request", n,
                     r->e->lim.batch_messages);
        return false;
    }
    c->total = n;
    c->errs = kith_xcalloc(n ? n : 1, sizeof *c->errs);
    c->slot = kith_xcalloc(n ? n : 1, sizeof *c->slot);
    c->job.msgs = kith_xcalloc(n ? n : 1, sizeof *c->job.msgs);
    for (size_t i = 0; i < n; i++) {
        json_t *errors = json_array();
        const char *message = "Invalid XDM Message Format";
        ingest_msg *m = &c->job.msgs[c->job.n];
        int rc = ingest_prepare_envelope(r->e, r->sandbox_id, json_array_get(msgs, i), &src,
                                         c->received, m, errors, &message);
        if (rc) {
            count_rejection(r->e, rc);
            c->errs[i] = json_pack("{s:i, s:s, s:o}", "statusCode", rc == KITH_ETOOLARGE ? 413 : 400,
                                   "message", message, "errors", errors);
        } else {
            json_decref(errors);
            c->slot[i] = c->job.n++;
        }
    }
    json_decref(body);
    jalloc_arena_leave();
    kjson_spans_free(&spans);
    if (c->job.n == 0) {
        collect_finish(r);
        return false;
    }
    return true;
}

/* Worker pool: parse, validate, hand the good messages to the writer (whose completion resumes the
 * connection), or resume at once with the answer. */
static void collect_work(void *arg)
{
    kith_req *r = arg;
    collect_ctx *c = r->async;
    bool ready = c->single ? collect_parse_one(r, c) : collect_parse_batch(r, c);
    if (ready) {
        int rc = ingest_submit(r->e, &c->job);
        if (rc == 0) return;
        http_error(r, rc, rc == KITH_EBUSY ? "the ingest queue is full; retry after the indicated delay"
                                           : "the messages could not be queued");
    }
    r->finish = NULL;
    http_resume(r);
}

static int collect_offload(kith_req *r)
{
    int rc = http_offload(r, collect_work, r);
    if (rc == KITH_EBUSY)
        http_error(r, KITH_EBUSY, "too many ingest requests are being validated; retry after the "
                                  "indicated delay");
    return rc;
}

static int collect_start(kith_req *r, bool single)
{
    if (!collect_inlet(r)) return 0;
    collect_ctx *c = collect_new(r, single ? 1 : 0);
    c->single = single;
    r->submit = collect_offload;
    r->finish = collect_finish;
    return HTTP_PENDING;
}

int h_collect_one(kith_req *r)
{
    return collect_start(r, true);
}

int h_collect_batch(kith_req *r)
{
    return collect_start(r, false);
}

/* --- import batches --- */

static pthread_mutex_t batch_mu = PTHREAD_MUTEX_INITIALIZER;

struct batch_put {
    kith_engine *e;
    uint32_t sandbox;
    json_t *doc;
};

static int batch_put_fn(void *ctx, store_batch *b)
{
    struct batch_put *c = ctx;
    store_key k;
    skey_init(&k, c->sandbox);
    skey_u8(&k, 'b');
    const char *id = json_string_value(json_object_get(c->doc, "id"));
    skey_bytes(&k, id, strlen(id));
    char *s = kith_json_dumps(c->doc, JSON_COMPACT);
    store_batch_put(b, STORE_CF_META, k.b, k.n, s, strlen(s));
    free(s);
    return 0;
}

static int batch_save(kith_engine *e, uint32_t sandbox, json_t *doc)
{
    struct batch_put c = {e, sandbox, doc};
    return apply_call(e->apply, batch_put_fn, &c, false);
}

static json_t *batch_load(kith_engine *e, uint32_t sandbox, const char *id)
{
    store_key k;
    skey_init(&k, sandbox);
    skey_u8(&k, 'b');
    skey_bytes(&k, id, strlen(id));
    kith_buf v = {0};
    json_t *doc = NULL;
    if (store_get(e->store, STORE_CF_META, k.b, k.n, &v) == 0) doc = json_loadb(v.data, v.len, 0, NULL);
    kith_buf_free(&v);
    return doc;
}

static bool valid_id(const char *s)
{
    if (strlen(s) != KITH_ID_LEN) return false;
    for (const char *p = s; *p; p++)
        if (!((*p >= '0' && *p <= '9') || (*p >= 'a' && *p <= 'f'))) return false;
    return true;
}

static void batch_dir(kith_engine *e, const char *id, char *out, size_t cap)
{
    snprintf(out, cap, "%s/batches/%s", e->data_dir, id);
}

int h_import_create(kith_req *r)
{
    json_t *body = http_body_json(r);
    if (!body) return 0;
    const char *ds = json_string_value(json_object_get(body, "datasetId"));
    const char *fmt = json_string_value(json_object_get(json_object_get(body, "inputFormat"), "format"));
    json_t *errors = json_array();
    catalog_rdlock(r->e->cat);
    bool known = ds && catalog_dataset(r->e->cat, r->sandbox_id, ds);
    catalog_unlock(r->e->cat);
    if (!ds) json_array_append_new(errors, json_pack("{s:s, s:s}", "path", "/datasetId", "message", "required"));
    else if (!known) json_array_append_new(errors, json_pack("{s:s, s:s}", "path", "/datasetId", "message", "unknown dataset in this sandbox"));
    if (fmt && strcmp(fmt, "json") != 0)
        json_array_append_new(errors, json_pack("{s:s, s:s}", "path", "/inputFormat/format", "message", "only \"json\" (JSON lines) is supported"));
    if (json_array_size(errors)) {
        http_problem(r, 400, "Invalid batch", errors, "the batch cannot be created");
        json_decref(body);
        return 0;
    }
    json_decref(errors);
    char id[KITH_ID_LEN + 1];
    catalog_new_id(id);
    json_int_t now = (json_int_t)kith_now_ms();
    json_t *doc = json_pack("{s:s, s:s, s:[{s:s, s:s}], s:{s:s}, s:I, s:I, s:[], s:{s:i, s:i, s:i}, s:[]}", "id", id,
                            "status", "loading", "relatedObjects", "type", "dataSet", "id", ds,
                            "inputFormat", "format", "json", "created", now, "updated", now, "files",
                            "metrics", "recordsRead", 0, "recordsWritten", 0, "recordsFailed", 0, "errors");
    char dir[4300];
    batch_dir(r->e, id, dir, sizeof dir);
    char parent[4200];
    snprintf(parent, sizeof parent, "%s/batches", r->e->data_dir);
    mkdir(parent, 0700);
    if (mkdir(dir, 0700) != 0) {
        http_problem(r, 500, "Storage Error", NULL, "cannot create the batch directory: %s", strerror(errno));
    } else {
        int rc = batch_save(r->e, r->sandbox_id, doc);
        if (rc) http_error(r, rc, "the batch could not be created");
        else http_json(r, 201, json_incref(doc));
    }
    json_decref(doc);
    json_decref(body);
    return 0;
}

static bool safe_file_name(const char *n)
{
    if (!*n || strlen(n) > 200 || strcmp(n, ".") == 0 || strcmp(n, "..") == 0) return false;
    for (const char *p = n; *p; p++)
        if (*p == '/' || *p == '\\' || (unsigned char)*p < 32) return false;
    return true;
}

int h_import_file(kith_req *r)
{
    const char *id = r->params[0], *ds = r->params[1], *name = r->params[2];
    if (!valid_id(id)) {
        http_problem(r, 404, "Not Found", NULL, "no batch %s in sandbox %s", id, r->sandbox);
        return 0;
    }
    if (!safe_file_name(name)) {
        http_problem(r, 400, "Bad Request", NULL, "invalid file name \"%s\" (no '/', no control characters)", name);
        return 0;
    }
    pthread_mutex_lock(&batch_mu);
    json_t *doc = batch_load(r->e, r->sandbox_id, id);
    const char *status = json_string_value(json_object_get(doc, "status"));
    const char *bds = json_string_value(json_object_get(json_array_get(json_object_get(doc, "relatedObjects"), 0), "id"));
    if (!doc) http_problem(r, 404, "Not Found", NULL, "no batch %s in sandbox %s", id, r->sandbox);
    else if (strcmp(status, "loading") != 0) http_problem(r, 409, "Conflict", NULL, "batch %s is %s; files can be added only while it is loading", id, status);
    else if (!bds || strcmp(bds, ds) != 0) http_problem(r, 400, "Bad Request", NULL, "batch %s belongs to dataset %s, not %s", id, bds ? bds : "?", ds);
    else {
        char path[4600];
        char dir[4300];
        batch_dir(r->e, id, dir, sizeof dir);
        snprintf(path, sizeof path, "%s/%s", dir, name);
        int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
        bool ok = fd >= 0;
        size_t off = 0;
        while (ok && off < r->body.len) {
            ssize_t w = write(fd, r->body.data + off, r->body.len - off);
            if (w < 0 && errno == EINTR) continue;
            if (w <= 0) ok = false;
            else off += (size_t)w;
        }
        if (fd >= 0 && fsync(fd) != 0) ok = false;
        if (fd >= 0) close(fd);
        if (!ok) {
            http_problem(r, 500, "Storage Error", NULL, "cannot write the file: %s", strerror(errno));
        } else {
            json_t *files = json_object_get(doc, "files");
            size_t i;
            json_t *f;
            bool seen = false;
            json_array_foreach(files, i, f) if (strcmp(json_string_value(f), name) == 0) seen = true;
            if (!seen) json_array_append_new(files, json_string(name));
            int rc = batch_save(r->e, r->sandbox_id, doc);
            if (rc) http_error(r, rc, "the batch could not be updated");
            else r->status = 200;
        }
    }
    pthread_mutex_unlock(&batch_mu);
    json_decref(doc);
    return 0;
}

typedef struct import_job {
    kith_engine *e;
    uint32_t sandbox;
    char id[KITH_ID_LEN + 1];
    char dataset[KITH_ID_LEN + 1];
} import_job;

#define IMPORT_CHUNK 1000
#define IMPORT_MAX_ERRORS 1000

static atomic_int imports_running;

/* Reads every file of the batch line by line, validates, applies in chunks; records per-line errors. */
static void *import_main(void *arg)
{
    import_job *j = arg;
    kith_engine *e = j->e;
    json_t *doc = batch_load(e, j->sandbox, j->id);
    json_t *errs = json_array();
    long long read = 0, written = 0, failed = 0;
    ingest_msg *msgs = kith_xcalloc(IMPORT_CHUNK, sizeof *msgs);
    size_t nm = 0;
    char dir[4300];
    batch_dir(e, j->id, dir, sizeof dir);
    size_t fi;
    json_t *fname;
    bool io_error = false;
    json_array_foreach(json_object_get(doc, "files"), fi, fname)
    {
        char path[4600];
        snprintf(path, sizeof path, "%s/%s", dir, json_string_value(fname));
        FILE *fp = fopen(path, "r");
        if (!fp) {
            io_error = true;
            json_array_append_new(errs, json_pack("{s:s, s:i, s:s, s:s}", "file", json_string_value(fname), "line", 0, "code", "500", "description", "cannot read the file"));
            continue;
        }
        char *line = NULL;
        size_t cap = 0;
        ssize_t len;
        long long lineno = 0;
        while ((len = getline(&line, &cap, fp)) >= 0) {
            lineno++;
            while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r')) line[--len] = 0;
            if (len == 0) continue;
            read++;
            kjson_error jerr;
            kjson_spans spans = {.max_depth = 0};
            json_t *entity = kjson_parse(line, (size_t)len, e->lim.json_depth, &spans, &jerr);
            ingest_source src = {line, &spans};
            json_t *errors = json_array();
            const char *message = "Invalid XDM Message Format";
            int rc;
            if (!entity) {
                char m[300];
                snprintf(m, sizeof m, "malformed JSON at column %d: %s", jerr.column, jerr.text);
                json_array_append_new(errors, json_pack("{s:s, s:s}", "path", "", "message", m));
                message = "Malformed JSON";
                rc = KITH_EINVAL;
            } else {
                rc = ingest_prepare(e, j->sandbox, j->dataset, NULL, entity, &src, kith_now_ms(), &msgs[nm], errors, &message);
                json_decref(entity);
            }
            kjson_spans_free(&spans);
            if (rc) {
                failed++;
                count_rejection(e, rc);
                if (json_array_size(errs) < IMPORT_MAX_ERRORS)
                    json_array_append_new(errs, json_pack("{s:s, s:I, s:s, s:s, s:O}", "file", json_string_value(fname), "line", (json_int_t)lineno,
                                                          "code", rc == KITH_ETOOLARGE ? "413" : "400", "description", message, "errors", errors));
                json_decref(errors);
                continue;
            }
            json_decref(errors);
            if (++nm == IMPORT_CHUNK) {
                int arc = ingest_run(e, msgs, nm);
                for (size_t i = 0; i < nm; i++) {
                    if (arc || msgs[i].rc) failed++;
                    else written++;
                    ingest_msg_clear(&msgs[i]);
                }
                nm = 0;
            }
        }
        free(line);
        fclose(fp);
    }
    if (nm) {
        int arc = ingest_run(e, msgs, nm);
        for (size_t i = 0; i < nm; i++) {
            if (arc || msgs[i].rc) failed++;
            else written++;
            ingest_msg_clear(&msgs[i]);
        }
    }
    free(msgs);
    pthread_mutex_lock(&batch_mu);
    json_t *cur = batch_load(e, j->sandbox, j->id);
    if (cur) {
        json_object_set_new(cur, "status", json_string(io_error || (written == 0 && failed > 0) ? "failed" : "success"));
        json_object_set_new(cur, "metrics", json_pack("{s:I, s:I, s:I}", "recordsRead", read, "recordsWritten", written, "recordsFailed", failed));
        json_object_set(cur, "errors", errs);
        json_object_set_new(cur, "updated", json_integer((json_int_t)kith_now_ms()));
        batch_save(e, j->sandbox, cur);
        json_decref(cur);
    }
    pthread_mutex_unlock(&batch_mu);
    json_decref(errs);
    json_decref(doc);
    free(j);
    atomic_fetch_sub(&imports_running, 1);
    return NULL;
}

int h_import_action(kith_req *r)
{
    const char *id = r->params[0];
    const char *action = http_query(r, "action");
    if (!action || (strcmp(action, "COMPLETE") != 0 && strcmp(action, "ABORT") != 0)) {
        http_problem(r, 400, "Bad Request", NULL, "use ?action=COMPLETE or ?action=ABORT");
        return 0;
    }
    if (!valid_id(id)) {
        http_problem(r, 404, "Not Found", NULL, "no batch %s", id);
        return 0;
    }
    pthread_mutex_lock(&batch_mu);
    json_t *doc = batch_load(r->e, r->sandbox_id, id);
    const char *status = json_string_value(json_object_get(doc, "status"));
    if (!doc) {
        http_problem(r, 404, "Not Found", NULL, "no batch %s in sandbox %s", id, r->sandbox);
    } else if (strcmp(status, "loading") != 0) {
        http_problem(r, 409, "Conflict", NULL, "batch %s is already %s", id, status);
    } else if (strcmp(action, "ABORT") == 0) {
        json_object_set_new(doc, "status", json_string("aborted"));
        int rc = batch_save(r->e, r->sandbox_id, doc);
        if (rc) http_error(r, rc, "the batch could not be updated");
        else r->status = 200;
    } else {
        json_object_set_new(doc, "status", json_string("processing"));
        int rc = batch_save(r->e, r->sandbox_id, doc);
        if (rc) {
            http_error(r, rc, "the batch could not be updated");
        } else {
            import_job *j = kith_xcalloc(1, sizeof *j);
            j->e = r->e;
            j->sandbox = r->sandbox_id;
            snprintf(j->id, sizeof j->id, "%s", id);
            snprintf(j->dataset, sizeof j->dataset, "%s",
                     json_string_value(json_object_get(json_array_get(json_object_get(doc, "relatedObjects"), 0), "id")));
            pthread_t t;
            atomic_fetch_add(&imports_running, 1);
            if (pthread_create(&t, NULL, import_main, j) != 0) {
                atomic_fetch_sub(&imports_running, 1);
                free(j);
                http_problem(r, 503, "Unavailable", NULL, "cannot start the batch job");
            } else {
                pthread_detach(t);
                r->status = 200;
            }
        }
    }
    pthread_mutex_unlock(&batch_mu);
    json_decref(doc);
    return 0;
}

int h_batch_status(kith_req *r)
{
    json_t *doc = valid_id(r->params[0]) ? batch_load(r->e, r->sandbox_id, r->params[0]) : NULL;
    if (!doc) http_problem(r, 404, "Not Found", NULL, "no batch %s in sandbox %s", r->params[0], r->sandbox);
    else http_json(r, 200, json_pack("{s:o}", r->params[0], doc));
    return 0;
}

int http_imports_running(void);
int http_imports_running(void)
{
    return atomic_load(&imports_running);
}
