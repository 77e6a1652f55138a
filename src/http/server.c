/* kith http server: libmicrohttpd in epoll thread-pool mode with suspend/resume, a table-driven router,
 * API-key auth with roles and sandboxes, bounded bodies, problem+json errors, metrics. */
#include "kith/jalloc.h"
#include <arpa/inet.h>
#include <netdb.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>
#include <zlib.h>

#include "http.h"
#include "kith/segsvc.h"
#include "metrics.h"
#include "pool.h"

struct kith_server {
    struct MHD_Daemon *d;
    kith_engine *e;
    kith_pool *pool; /* CPU-heavy request work (ingest parsing and validation) */
    atomic_int inflight;
};

int http_offload(kith_req *r, void (*fn)(void *), void *arg)
{
    return pool_submit(r->srv->pool, fn, arg);
}

static const route routes[] = {
#define X(m, pattern, fn, auth, body, summary) {m, pattern, fn, auth, body, summary},
#include "routes.def"
#undef X
};
#define N_ROUTES (sizeof routes / sizeof routes[0])

const route *http_routes(size_t *n)
{
    *n = N_ROUTES;
    return routes;
}

/* --- responses --- */

void http_json(kith_req *r, int status, json_t *body)
{
    if (r->json) json_decref(r->json);
    r->status = status;
    r->json = body;
    r->ctype = "application/json";
}

static const char *problem_slug(int status)
{
    switch (status) {
    case 400: return "bad-request";
    case 401: return "unauthorized";
    case 403: return "forbidden";
    case 404: return "not-found";
    case 405: return "method-not-allowed";
    case 409: return "conflict";
    case 413: return "payload-too-large";
    case 415: return "unsupported-media-type";
    case 422: return "unprocessable";
    case 429: return "too-many-requests";
    case 503: return "unavailable";
    default: return "server-error";
    }
}

__attribute__((format(printf, 5, 0))) static void problem_v(kith_req *r, int status,
                                                             const char *title, json_t *errors,
                                                             const char *fmt, va_list ap)
{
    char detail[1024];
    vsnprintf(detail, sizeof detail, fmt, ap);
    kith_utf8_sanitize(detail); /* details quote input and may be cut inside a UTF-8 sequence */
    char type[128];
    snprintf(type, sizeof type, "https://kith.dev/problems/%s", problem_slug(status));
    json_t *p = json_pack("{s:s, s:s, s:i, s:s}", "type", type, "title", title, "status", status,
                          "detail", detail);
    if (errors) json_object_set_new(p, "errors", errors);
    http_json(r, status, p);
    r->ctype = "application/problem+json";
}

void http_problem(kith_req *r, int status, const char *title, json_t *errors, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    problem_v(r, status, title, errors, fmt, ap);
    va_end(ap);
}

void http_error(kith_req *r, int err, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int status = kith_err_http_status(err);
    problem_v(r, status, kith_strerror(err), NULL, fmt, ap);
    va_end(ap);
    if (status == 429 || status == 503) r->retry_after = 1;
}

/* --- requests --- */

static char *pct_decode(const char *s, size_t n);

/* The server keeps paths and arguments raw (no MHD unescaping) so that an encoded '/' inside a
 * route parameter survives; arguments are decoded here, once, and cached on the request. */
const char *http_query(kith_req *r, const char *name)
{
#ifndef NDEBUG
    /* Every parameter a handler reads is documented (src/http/query.def): the test builds stop
     * at the first read of an undocumented one. */
    if (r->rt && !http_query_declared(r->rt->fn, name)) {
        kith_log(KITH_LOG_ERROR, "http",
                 "the handler of %s reads query parameter \"%s\", which src/http/query.def does "
                 "not list for it", r->rt->pattern, name);
        abort();
    }
#endif
    for (size_t i = 0; i < r->nq; i++)
        if (strcmp(r->qname[i], name) == 0) return r->qval[i];
    const char *raw = MHD_lookup_connection_value(r->conn, MHD_GET_ARGUMENT_KIND, name);
    if (!raw || r->nq >= HTTP_MAX_QUERY) return raw && r->nq >= HTTP_MAX_QUERY ? NULL : NULL;
    char *plus = kith_xstrdup(raw);
    for (char *p = plus; *p; p++)
        if (*p == '+') *p = ' ';
    char *v = pct_decode(plus, strlen(plus));
    free(plus);
    if (!v) v = kith_xstrdup("");
    r->qname[r->nq] = kith_xstrdup(name);
    r->qval[r->nq] = v;
    r->nq++;
    return v;
}

const char *http_header(kith_req *r, const char *name)
{
    return MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, name);
}

json_t *http_body_json(kith_req *r)
{
    json_error_t err;
    if (r->body.len == 0) {
        http_problem(r, 400, "Bad Request", NULL, "the request body is empty; a JSON document is expected");
        return NULL;
    }
    json_t *j = json_loadb(r->body.data, r->body.len, JSON_REJECT_DUPLICATES, &err);
    if (!j) {
        http_problem(r, 400, "Malformed JSON", NULL, "malformed JSON at line %d, column %d: %s",
                     err.line, err.column, err.text);
        return NULL;
    }
    return j;
}

static int hexval(int c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* Percent-decodes s[0..n) into a new string; NULL when an escape is malformed or decodes to NUL. */
static char *pct_decode(const char *s, size_t n)
{
    char *out = kith_xmalloc(n + 1);
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        if (s[i] == '%') {
            if (i + 2 >= n) {
                free(out);
                return NULL;
            }
            int h = hexval(s[i + 1]), l = hexval(s[i + 2]);
            if (h < 0 || l < 0 || (h == 0 && l == 0)) {
                free(out);
                return NULL;
            }
            out[o++] = (char)(h << 4 | l);
            i += 2;
        } else {
            out[o++] = s[i];
        }
    }
    out[o] = 0;
    return out;
}

/* Matches path against pattern, filling decoded params. */
static bool route_match(const char *pattern, const char *path, char **params, int *nparams)
{
    const char *p = pattern, *s = path;
    int np = 0;
    while (*p && *s) {
        if (*p == '{') {
            bool tail = p[1] == '*';
            const char *pe = strchr(p, '}');
            if (!pe) return false;
            const char *se = tail ? s + strlen(s) : strchr(s, '/');
            if (!se) se = s + strlen(s);
            if (se == s || np >= HTTP_MAX_PARAMS) goto fail;
            params[np] = pct_decode(s, (size_t)(se - s));
            if (!params[np]) goto fail;
            np++;
            p = pe + 1;
            s = se;
        } else {
            if (*p != *s) goto fail;
            p++, s++;
        }
    }
    if (*p || *s) goto fail;
    *nparams = np;
    return true;
fail:
    for (int i = 0; i < np; i++) free(params[i]), params[i] = NULL;
    return false;
}

static int method_bit(const char *m)
{
    static const struct {
        const char *name;
        int bit;
    } ms[] = {{"GET", M_GET},       {"POST", M_POST},       {"PUT", M_PUT}, {"PATCH", M_PATCH},
              {"DELETE", M_DELETE}, {"OPTIONS", M_OPTIONS}, {"HEAD", M_HEAD}};
    for (size_t i = 0; i < sizeof ms / sizeof ms[0]; i++)
        if (strcmp(m, ms[i].name) == 0) return ms[i].bit;
    return 0;
}

/* Finds the route; sets *status to 404 or 405 when none fits. */
static const route *route_find(kith_req *r, int *status)
{
    bool path_ok = false;
    int method = r->method == M_HEAD ? M_GET : r->method;
    for (size_t i = 0; i < N_ROUTES; i++) {
        char *params[HTTP_MAX_PARAMS] = {0};
        int np = 0;
        if (!route_match(routes[i].pattern, r->path, params, &np)) continue;
        if (routes[i].method & method) {
            memcpy(r->params, params, sizeof params);
            return &routes[i];
        }
        path_ok = true;
        for (int j = 0; j < np; j++) free(params[j]);
    }
    *status = path_ok ? 405 : 404;
    return NULL;
}

/* Authenticates the key and checks role and sandbox. 0 when allowed; otherwise the problem is set. */
int http_authorize(kith_req *r, int need);
int http_authorize(kith_req *r, int need)
{
    const char *auth = http_header(r, "Authorization");
    const char *secret = NULL;
    if (auth && strncasecmp(auth, "Bearer ", 7) == 0) secret = auth + 7;
    if (!secret) secret = http_header(r, "x-api-key");
    if (!secret || !*secret) {
        http_problem(r, 401, "Unauthorized", NULL,
                     "an API key is required: send \"Authorization: Bearer <key>\" or \"x-api-key\"");
        return -1;
    }
    catalog_rdlock(r->e->cat);
    const cat_key *k = catalog_key_by_secret(r->e->cat, secret);
    if (!k) {
        catalog_unlock(r->e->cat);
        http_problem(r, 401, "Unauthorized", NULL, "unknown or revoked API key");
        return -1;
    }
    r->role = k->role;
    snprintf(r->key_id, sizeof r->key_id, "%s", k->id);
    bool sandbox_ok = catalog_key_allows(k, r->sandbox);
    const cat_sandbox *sb = catalog_sandbox(r->e->cat, r->sandbox);
    if (sb) r->sandbox_id = sb->id;
    catalog_unlock(r->e->cat);
    bool role_ok;
    switch (need) {
    case AUTH_READ: role_ok = r->role >= ROLE_VIEWER; break;
    case AUTH_WRITE: role_ok = r->role >= ROLE_EDITOR; break;
    case AUTH_INGEST: role_ok = r->role == ROLE_INGEST || r->role >= ROLE_EDITOR; break;
    case AUTH_ADMIN: role_ok = r->role == ROLE_ADMIN; break;
    default: role_ok = true;
    }
    if (!role_ok) {
        http_problem(r, 403, "Forbidden", NULL, "the key's role (%s) may not call %s %s",
                     kith_role_name(r->role), r->method_name, r->rt->pattern);
        return -1;
    }
    if (!sandbox_ok) {
        http_problem(r, 403, "Forbidden", NULL, "the key may not access sandbox \"%s\"", r->sandbox);
        return -1;
    }
    if (!sb) {
        http_problem(r, 404, "Not Found", NULL,
                     "sandbox \"%s\" does not exist (x-sandbox-name header)", r->sandbox);
        return -1;
    }
    return 0;
}

/* --- MHD glue --- */

enum { ST_NEW, ST_PENDING, ST_RESUMED, ST_DONE };

static enum MHD_Result send_response(kith_req *r)
{
    char *text = NULL;
    size_t len = 0;
    const char *ctype = r->ctype ? r->ctype : "application/json";
    if (r->json) {
        text = kith_json_dumps(r->json, JSON_COMPACT);
        len = text ? strlen(text) : 0;
    } else if (r->raw.data) {
        text = r->raw.data;
        len = r->raw.len;
        r->raw.data = NULL;
        r->raw.len = r->raw.cap = 0;
    }
    struct MHD_Response *resp;
    if (r->stream) {
        resp = MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 64 * 1024, r->stream, r->stream_cls,
                                                 r->stream_free);
        r->stream = NULL; /* the response owns stream_cls now */
        r->stream_cls = NULL;
        MHD_add_response_header(resp, "Content-Type", ctype);
        if (strcmp(ctype, "text/event-stream") == 0)
            MHD_add_response_header(resp, "Cache-Control", "no-cache");
    } else {
        resp = MHD_create_response_from_buffer(len, text ? text : (char *)"",
                                               text ? MHD_RESPMEM_MUST_FREE : MHD_RESPMEM_PERSISTENT);
        if (len || r->json) MHD_add_response_header(resp, "Content-Type", ctype);
    }
    if (r->retry_after > 0) {
        char ra[16];
        snprintf(ra, sizeof ra, "%d", r->retry_after);
        MHD_add_response_header(resp, "Retry-After", ra);
    }
    if (r->location[0]) MHD_add_response_header(resp, "Location", r->location);
    if (r->cors) {
        const char *origin = http_header(r, "Origin");
        MHD_add_response_header(resp, "Access-Control-Allow-Origin", origin ? origin : "*");
        if (origin) MHD_add_response_header(resp, "Access-Control-Allow-Credentials", "true");
        MHD_add_response_header(resp, "Access-Control-Allow-Methods", "POST, OPTIONS");
        MHD_add_response_header(resp, "Access-Control-Allow-Headers",
                                "authorization, content-type, content-encoding, x-retry-count");
        MHD_add_response_header(resp, "Access-Control-Max-Age", "86400");
        MHD_add_response_header(resp, "Vary", "Origin");
    }
    const char *org = http_header(r, "x-gw-ims-org-id");
    if (org) MHD_add_response_header(resp, "x-gw-ims-org-id", org);
    enum MHD_Result ret = MHD_queue_response(r->conn, (unsigned)r->status, resp);
    MHD_destroy_response(resp);
    metrics_request(r->rt ? (int)(r->rt - routes) : -1, r->status, kith_mono_ns() - r->t0);
    r->state = ST_DONE;
    return ret;
}

void http_resume(kith_req *r)
{
    r->state = ST_RESUMED;
    MHD_resume_connection(r->conn);
}

/* Content-Encoding: gzip (RudderStack's SDK sends it by default): inflates the body in place, bounded
 * by the same limit as a plain body. 0, or -1 with the answer set (400 corrupt, 413 too large). */
static int gunzip_body(kith_req *r)
{
    const char *ce = http_header(r, "Content-Encoding");
    if (!ce || strcasecmp(ce, "gzip") != 0 || r->body.len == 0) return 0;
    z_stream zs = {0};
    if (inflateInit2(&zs, 16 + MAX_WBITS) != Z_OK) {
        http_problem(r, 500, "Internal Server Error", NULL, "cannot start gzip decoding");
        return -1;
    }
    kith_buf out = {0};
    zs.next_in = (Bytef *)r->body.data;
    zs.avail_in = (uInt)r->body.len;
    int zrc = Z_OK;
    while (zrc != Z_STREAM_END) {
        if (out.len >= r->body_limit) break;
        kith_buf_reserve(&out, 64 * 1024);
        size_t room = out.cap - out.len - 1;
        if (room > r->body_limit - out.len) room = r->body_limit - out.len;
        zs.next_out = (Bytef *)out.data + out.len;
        zs.avail_out = (uInt)room;
        zrc = inflate(&zs, Z_NO_FLUSH);
        out.len += room - zs.avail_out;
        if (zrc != Z_OK && zrc != Z_STREAM_END) break;
    }
    inflateEnd(&zs);
    if (zrc != Z_STREAM_END) {
        kith_buf_free(&out);
        if (zrc == Z_OK)
            http_problem(r, 413, "Payload Too Large", NULL,
                         "the decompressed body exceeds the limit of %zu bytes", r->body_limit);
        else
            http_problem(r, 400, "Bad Request", NULL,
                         "Content-Encoding is gzip but the body is not valid gzip data");
        return -1;
    }
    out.data[out.len] = 0;
    kith_buf_free(&r->body);
    r->body = out;
    return 0;
}

static void dispatch(kith_req *r)
{
    int status = 0;
    r->rt = route_find(r, &status);
    if (!r->rt) {
        if (status == 405)
            http_problem(r, 405, "Method Not Allowed", NULL, "%s is not allowed on %s",
                         r->method_name, r->path);
        else
            http_problem(r, 404, "Not Found", NULL, "no route for %s %s", r->method_name, r->path);
        return;
    }
    if (r->body_over) {
        http_problem(r, 413, "Payload Too Large", NULL,
                     "the request body exceeds the limit of %zu bytes", r->body_limit);
        return;
    }
    if (gunzip_body(r) != 0) return;
    if (r->rt->auth != AUTH_NONE && r->rt->auth != AUTH_INLET && http_authorize(r, r->rt->auth) != 0)
        return;
    int rc = r->rt->fn(r);
    if (rc == HTTP_PENDING) return;
    if (!r->status) http_problem(r, 500, "Internal Server Error", NULL, "the handler gave no answer");
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version, const char *upload_data,
                                  size_t *upload_data_size, void **con_cls)
{
    kith_server *s = cls;
    kith_req *r = *con_cls;
    if (!r) {
        r = kith_xcalloc(1, sizeof *r);
        r->srv = s;
        r->e = s->e;
        r->conn = conn;
        r->t0 = kith_mono_ns();
        r->method = method_bit(method);
        r->method_name = method;
        r->path = kith_xstrdup(url);
        const char *sb = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "x-sandbox-name");
        snprintf(r->sandbox, sizeof r->sandbox, "%s", sb && *sb ? sb : "prod");
        bool file = strncmp(url, "/data/foundation/import/batches/", 32) == 0;
        r->body_limit = file ? s->e->lim.file_max : s->e->lim.body_max;
        const char *cl = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Content-Length");
        if (cl && strtoull(cl, NULL, 10) > r->body_limit) r->body_over = true;
        atomic_fetch_add(&s->inflight, 1);
        *con_cls = r;
        return MHD_YES;
    }
    if (r->state == ST_NEW && *upload_data_size) {
        if (!r->body_over && r->body.len + *upload_data_size <= r->body_limit)
            kith_buf_append(&r->body, upload_data, *upload_data_size);
        else
            r->body_over = true;
        *upload_data_size = 0;
        return MHD_YES;
    }
    if (r->state == ST_RESUMED) {
        if (r->finish) r->finish(r);
        if (!r->status) http_problem(r, 500, "Internal Server Error", NULL, "no answer");
        return send_response(r);
    }
    if (r->state != ST_NEW) return MHD_YES;
    dispatch(r);
    if (r->submit && !r->status) {
        r->state = ST_PENDING;
        MHD_suspend_connection(conn);
        int rc = r->submit(r);
        if (rc != 0) {
            /* Refused before any work started: answer now (the submitter may have said why). */
            if (!r->status && rc == KITH_EBUSY)
                http_error(r, KITH_EBUSY, "the ingest queue is full; retry after the indicated delay");
            else if (!r->status)
                http_error(r, rc, "the request could not be queued");
            r->finish = NULL;
            r->state = ST_RESUMED;
            MHD_resume_connection(conn);
        }
        return MHD_YES;
    }
    return send_response(r);
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                         enum MHD_RequestTerminationCode toe)
{
    kith_server *s = cls;
    kith_req *r = *con_cls;
    if (!r) return;
    /* The response may reference nodes of the handler's arena: release it before the arena. */
    if (r->json) json_decref(r->json);
    r->json = NULL;
    if (r->cleanup) r->cleanup(r);
    if (r->stream_cls && r->stream_free) r->stream_free(r->stream_cls);
    for (int i = 0; i < HTTP_MAX_PARAMS; i++) free(r->params[i]);
    for (size_t i = 0; i < r->nq; i++) free(r->qname[i]), free(r->qval[i]);
    free(r->path);
    kith_buf_free(&r->body);
    kith_buf_free(&r->raw);
    free(r);
    *con_cls = NULL;
    atomic_fetch_sub(&s->inflight, 1);
}

static size_t no_unescape(void *cls, struct MHD_Connection *c, char *uri)
{
    return strlen(uri);
}

__attribute__((format(printf, 2, 0))) static void log_mhd(void *cls, const char *fmt, va_list ap)
{
    char line[512];
    vsnprintf(line, sizeof line, fmt, ap);
    size_t n = strlen(line);
    while (n && line[n - 1] == '\n') line[--n] = 0;
    kith_log(KITH_LOG_WARN, "http", "%s", line);
}

int http_start(kith_engine *e, const http_options *o, kith_server **out, char **errmsg)
{
    kith_server *s = kith_xcalloc(1, sizeof *s);
    s->e = e;
    char host[256] = "127.0.0.1";
    const char *colon = strrchr(o->listen, ':');
    const char *port = colon ? colon + 1 : o->listen;
    if (colon) snprintf(host, sizeof host, "%.*s", (int)(colon - o->listen), o->listen);
    if (host[0] == '[') { /* [::1]:8080 */
        memmove(host, host + 1, strlen(host));
        host[strcspn(host, "]")] = 0;
    }
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM,
                             .ai_flags = AI_PASSIVE | AI_NUMERICSERV};
    struct addrinfo *ai = NULL;
    int gai = getaddrinfo(host[0] ? host : NULL, port, &hints, &ai);
    if (gai != 0) {
        if (asprintf(errmsg, "cannot resolve listen address %s: %s", o->listen, gai_strerror(gai)) < 0)
            *errmsg = NULL;
        free(s);
        return KITH_EINVAL;
    }
    unsigned flags = MHD_USE_EPOLL_INTERNAL_THREAD | MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ERROR_LOG;
    if (ai->ai_family == AF_INET6) flags |= MHD_USE_IPv6;
    s->d = MHD_start_daemon(
        flags, 0, NULL, NULL, on_request, s, MHD_OPTION_EXTERNAL_LOGGER, log_mhd, NULL,
        MHD_OPTION_SOCK_ADDR, ai->ai_addr,
        MHD_OPTION_THREAD_POOL_SIZE, o->threads ? o->threads : 2, MHD_OPTION_CONNECTION_LIMIT,
        o->connection_limit ? o->connection_limit : 1024, MHD_OPTION_CONNECTION_TIMEOUT,
        o->timeout_s ? o->timeout_s : 60, MHD_OPTION_NOTIFY_COMPLETED, on_completed, s,
        MHD_OPTION_UNESCAPE_CALLBACK, no_unescape, NULL,
        MHD_OPTION_LISTENING_ADDRESS_REUSE, 1, MHD_OPTION_END);
    freeaddrinfo(ai);
    s->pool = s->d ? pool_start(o->threads ? o->threads : 2, 4096) : NULL;
    if (s->d && !s->pool) {
        MHD_stop_daemon(s->d);
        s->d = NULL;
    }
    if (!s->d) {
        if (asprintf(errmsg, "cannot listen on %s (address in use or not allowed)", o->listen) < 0)
            *errmsg = NULL;
        free(s);
        return KITH_EIO;
    }
    *out = s;
    return 0;
}

void http_stop(kith_server *s, int wait_ms)
{
    if (!s) return;
    MHD_quiesce_daemon(s->d);
    segfeed_shutdown(s->e); /* change streams never end by themselves */
    int waited = 0;
    for (; atomic_load(&s->inflight) > 0 && waited < wait_ms; waited += 10)
        usleep(10000);
    /* A request still in flight is a write waiting for the writer (its connection suspended), and
     * libmicrohttpd aborts the process when stopped with suspended connections: keep waiting while
     * the writer drains, up to a hard bound; past it, leave the daemon to the process's exit. */
    if (atomic_load(&s->inflight) > 0)
        kith_log(KITH_LOG_WARN, "http", "%d requests still in flight after %d ms; waiting for them",
                 atomic_load(&s->inflight), wait_ms);
    for (; atomic_load(&s->inflight) > 0 && waited < wait_ms + 120000; waited += 10)
        usleep(10000);
    if (atomic_load(&s->inflight) > 0) {
        kith_log(KITH_LOG_ERROR, "http", "%d requests never finished; exiting without them",
                 atomic_load(&s->inflight));
        return;
    }
    MHD_stop_daemon(s->d);
    pool_stop(s->pool);
    free(s);
}
