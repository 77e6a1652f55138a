/* kith http: the server (libmicrohttpd), the route table, the request object handlers work on, and
 * problem+json errors. Handlers are plain functions over a kith_req; they either fill the response and
 * return 0, or return HTTP_PENDING after setting r->submit, which the server calls once the connection
 * is suspended: the apply thread's completion then calls http_resume(). */
#ifndef KITH_HTTP_H
#define KITH_HTTP_H

#include <jansson.h>
#include <microhttpd.h>

#include "kith/engine.h"

#define HTTP_PENDING 1

enum http_method { M_GET = 1, M_POST = 2, M_PUT = 4, M_PATCH = 8, M_DELETE = 16, M_OPTIONS = 32,
                   M_HEAD = 64 };

/* What a route needs: who may call it. */
enum route_auth {
    AUTH_NONE,   /* no key (health, metrics, openapi) */
    AUTH_READ,   /* viewer, editor, admin */
    AUTH_WRITE,  /* editor, admin (control plane) */
    AUTH_INGEST, /* ingest, editor, admin */
    AUTH_ADMIN,  /* admin only */
    AUTH_INLET,  /* decided by the inlet (authenticationRequired) */
};

typedef struct kith_server kith_server;
typedef struct kith_req kith_req;
typedef int (*http_handler)(kith_req *r);

typedef struct route {
    int method;
    const char *pattern; /* "/a/{x}/b", "{*x}" takes the rest of the path */
    http_handler fn;
    int auth;
    int body;            /* 0: streaming limit, 1: file limit */
    const char *summary; /* for /openapi.json */
} route;

#define HTTP_MAX_PARAMS 4
#define HTTP_MAX_QUERY 16

struct kith_req {
    kith_server *srv;
    kith_engine *e;
    struct MHD_Connection *conn;
    int method;
    const char *method_name;
    char *path; /* raw path, owned */
    const route *rt;
    char *params[HTTP_MAX_PARAMS]; /* percent-decoded route parameters, owned */
    char *qname[HTTP_MAX_QUERY], *qval[HTTP_MAX_QUERY]; /* decoded query arguments (cache) */
    size_t nq;
    kith_buf body;
    size_t body_limit;
    bool body_over;
    /* auth */
    int role;
    char key_id[KITH_ID_LEN + 1];
    char sandbox[KITH_SANDBOX_NAME_MAX + 1];
    uint32_t sandbox_id;
    /* response */
    int status;
    json_t *json;      /* response body (taken) */
    kith_buf raw;      /* or raw bytes */
    const char *ctype; /* content type of raw */
    int retry_after;   /* seconds, 0 = none */
    char location[512];
    bool cors; /* browser endpoints: CORS headers echoing Origin (credentialed) */
    /* A streamed response body (instead of json/raw): MHD pulls it in chunks; stream_free releases
     * stream_cls when the response is done. */
    ssize_t (*stream)(void *cls, uint64_t pos, char *buf, size_t max);
    void *stream_cls;
    void (*stream_free)(void *cls);
    /* async */
    int state;
    int (*submit)(kith_req *r);
    void (*finish)(kith_req *r);
    void *async; /* handler state, freed by the handler's finish or cleanup */
    void (*cleanup)(kith_req *r);
    uint64_t t0;
};

typedef struct http_options {
    const char *listen; /* HOST:PORT */
    unsigned threads;
    unsigned connection_limit;
    unsigned timeout_s;
} http_options;

int http_start(kith_engine *e, const http_options *o, kith_server **out, char **errmsg);
/* Stops accepting, waits up to wait_ms for requests in flight, stops the server. */
void http_stop(kith_server *s, int wait_ms);
const route *http_routes(size_t *n);

/* Runs fn(arg) on the worker pool (for a pending request). 0, KITH_EBUSY or KITH_ESHUTDOWN. */
int http_offload(kith_req *r, void (*fn)(void *), void *arg);
/* Completion of a pending request (any thread). */
void http_resume(kith_req *r);

/* Response helpers. */
void http_json(kith_req *r, int status, json_t *body); /* takes body */
/* problem+json: {"type","title","status","detail"} plus "errors" when errors is not NULL (taken). */
void http_problem(kith_req *r, int status, const char *title, json_t *errors, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
void http_error(kith_req *r, int kith_err, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* Request helpers. */
const char *http_query(kith_req *r, const char *name); /* decoded, borrowed, NULL when absent */
/* Whether src/http/query.def lists query parameter name for handler fn (/openapi.json documents
 * those; http_query aborts on any other in builds with assertions). */
bool http_query_declared(http_handler fn, const char *name);
const char *http_header(kith_req *r, const char *name);
/* Parses the body as JSON; on failure answers 400 naming line and column and returns NULL. */
json_t *http_body_json(kith_req *r);

/* Handlers (one file per area). */
#define X(m, pattern, fn, auth, body, summary) int fn(kith_req *r);
#include "routes.def"
#undef X

#endif
