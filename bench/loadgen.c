/* bench/loadgen: an HTTP/1.1 keep-alive load generator for kithd.
 *
 *   loadgen --url http://127.0.0.1:PORT --key KEY [--sandbox NAME]
 *           (--setup | --inlet ID --dataset-crm ID --dataset-web ID)
 *           [--clients C] [--duration S] [--batch B] [--lookup-clients L] [--people N] [--seed S]
 *
 * It builds a population of N people in memory (bench/common.h, the same model as bench/gen),
 * preloads every CRM record so that lookups find known people, then for S seconds runs C ingest
 * clients, each POSTing /collection/batch/{inlet} bodies of B envelopes (about 10% CRM records and
 * 90% web events with overlapping identities) and waiting for each 207, beside L lookup clients
 * GETting profiles by CRMID. Each client owns one keep-alive connection; the hot path is plain
 * sockets (no libcurl), and bodies are assembled from pre-serialised envelopes, patching only each
 * event's _id so that every posted event is new.
 *
 * With --segment it measures the Segment tracking API instead: --setup creates a Segment-type
 * connection, and each request is POST /v1/batch with a gzip body of B Segment messages (identify
 * for about --crm-ratio of them, track otherwise), authenticated with the write key by HTTP Basic,
 * as the RudderStack SDK sends it; each message gets a new messageId.
 *
 * It only talks to a loopback URL (127.0.0.0/8, ::1, localhost) and stops after --duration. It
 * prints throughput, latency percentiles, errors by status code and the command line; the last
 * line, "RESULT k=v ...", is for scripts. Exit status: 0 when messages were accepted (and, with
 * lookup clients, lookups answered 200), 1 otherwise, 2 on usage errors. */
#include "common.h"

#include <arpa/inet.h>
#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <strings.h>
#include <sys/socket.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>
#include <zlib.h>

#define MAX_STATUS 600
#define MAX_CLIENTS 256
#define EVENT_POOL_MAX 50000
#define IO_TIMEOUT_S 30

/* ---- options and shared state ---- */

static struct {
    const char *url, *key, *sandbox;
    const char *inlet, *dataset_crm, *dataset_web;
    bool setup, preload, segment;
    int clients, lookup_clients, batch;
    double duration, crm_ratio;
    uint64_t people, seed;
    int days;
} opt = {
    .clients = 4,
    .lookup_clients = 0,
    .batch = 100,
    .duration = 10,
    .crm_ratio = 0.10,
    .people = 10000,
    .seed = 1,
    .days = 30,
    .preload = true,
};

static struct {
    struct sockaddr_storage addr;
    socklen_t addr_len;
    char host_header[128];
    char auth_headers[1024]; /* "Authorization: ...\r\n[x-sandbox-name: ...\r\n]" */
    char segment_headers[512]; /* --segment: Basic auth with the write key, gzip */
} target;

/* Pre-serialised envelopes, concatenated; each entry is (offset, length, _id offset or 0). */
typedef struct pool {
    kith_buf data;
    size_t *off, *len, *id_off;
    size_t n, cap;
    char **crmid; /* CRM pool only: the CRMID of entry i (points into data-independent storage) */
} pool;

static pool crm_pool, event_pool, segment_pool;
static char *write_key;
static char *schema_profile_id, *schema_event_id, *inlet_id, *dataset_crm_id, *dataset_web_id;
static atomic_bool stop_flag;

/* ---- HTTP/1.1 client on one keep-alive connection ---- */

typedef struct http_conn {
    int fd;
    kith_buf in;
} http_conn;

typedef struct http_resp {
    int status;
    char *body; /* NUL-terminated, inside conn->in; valid until the next request */
    size_t body_len;
    double retry_after; /* seconds, 0 when absent */
} http_resp;

static void conn_close(http_conn *c)
{
    if (c->fd >= 0) close(c->fd);
    c->fd = -1;
}

static int conn_open(http_conn *c)
{
    conn_close(c);
    int fd = socket(target.addr.ss_family, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (fd < 0) return -1;
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    struct timeval tv = {.tv_sec = IO_TIMEOUT_S};
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    if (connect(fd, (struct sockaddr *)&target.addr, target.addr_len) != 0) {
        close(fd);
        return -1;
    }
    c->fd = fd;
    return 0;
}

static int send_all(int fd, struct iovec *iov, int iovcnt)
{
    while (iovcnt > 0) {
        ssize_t n = writev(fd, iov, iovcnt);
        if (n < 0) {
            if (errno == EINTR) continue;
            return -1;
        }
        while (iovcnt > 0 && (size_t)n >= iov->iov_len) {
            n -= (ssize_t)iov->iov_len;
            iov++;
            iovcnt--;
        }
        if (iovcnt > 0) {
            iov->iov_base = (char *)iov->iov_base + n;
            iov->iov_len -= (size_t)n;
        }
    }
    return 0;
}

/* Reads more bytes into c->in; returns bytes read, 0 on EOF, -1 on error. */
static ssize_t recv_more(http_conn *c)
{
    kith_buf_reserve(&c->in, 65536);
    for (;;) {
        ssize_t n = recv(c->fd, c->in.data + c->in.len, c->in.cap - c->in.len - 1, 0);
        if (n < 0 && errno == EINTR) continue;
        if (n > 0) c->in.len += (size_t)n;
        return n;
    }
}

static const char *find_header(const char *head, size_t head_len, const char *name)
{
    size_t nl = strlen(name);
    const char *p = head, *end = head + head_len;
    while (p < end) {
        const char *eol = memmem(p, (size_t)(end - p), "\r\n", 2);
        if (!eol) break;
        if ((size_t)(eol - p) > nl && p[nl] == ':' && !strncasecmp(p, name, nl)) {
            const char *v = p + nl + 1;
            while (*v == ' ' || *v == '\t')
                v++;
            return v;
        }
        p = eol + 2;
    }
    return NULL;
}

/* Decodes a complete chunked body in place; returns its length or -1 when incomplete. */
static ssize_t dechunk(char *p, size_t len)
{
    size_t r = 0, w = 0;
    for (;;) {
        char *eol = memmem(p + r, len - r, "\r\n", 2);
        if (!eol) return -1;
        size_t sz = strtoul(p + r, NULL, 16);
        r = (size_t)(eol - p) + 2;
        if (sz == 0) return memmem(p + r, len - r, "\r\n", 2) ? (ssize_t)w : -1;
        if (r + sz + 2 > len) return -1;
        memmove(p + w, p + r, sz);
        w += sz;
        r += sz + 2;
    }
}

/* Sends one request and reads the whole response. Reconnects once when a kept-alive connection
 * turns out closed. Returns 0 with *out filled, or -1 on a transport error. */
static int http_do_h(http_conn *c, const char *method, const char *path, const char *headers,
                     const char *body, size_t body_len, http_resp *out)
{
    char head[2048];
    int head_len = snprintf(head, sizeof head,
                            "%s %s HTTP/1.1\r\nHost: %s\r\n%s"
                            "Content-Type: application/json\r\nContent-Length: %zu\r\n\r\n",
                            method, path, target.host_header, headers, body_len);
    if (head_len < 0 || (size_t)head_len >= sizeof head) return -1;
    for (int attempt = 0; attempt < 2; attempt++) {
        if (c->fd < 0 && conn_open(c) != 0) return -1;
        struct iovec iov[2] = {{head, (size_t)head_len}, {(void *)body, body_len}};
        c->in.len = 0;
        if (send_all(c->fd, iov, body_len ? 2 : 1) != 0) {
            conn_close(c);
            continue;
        }
        /* Headers. */
        char *hend = NULL;
        ssize_t n = 1;
        while (!(hend = c->in.len ? memmem(c->in.data, c->in.len, "\r\n\r\n", 4) : NULL)) {
            n = recv_more(c);
            if (n <= 0) break;
        }
        if (!hend) {
            conn_close(c);
            if (c->in.len == 0 && attempt == 0) continue; /* closed while idle: retry once */
            return -1;
        }
        size_t hlen = (size_t)(hend - c->in.data) + 4;
        if (c->in.len < 12 || strncmp(c->in.data, "HTTP/1.", 7)) {
            conn_close(c);
            return -1;
        }
        out->status = atoi(c->in.data + 9);
        const char *v;
        bool chunked = false, close_after = false;
        long long content_length = -1;
        if ((v = find_header(c->in.data, hlen, "Content-Length"))) content_length = atoll(v);
        if ((v = find_header(c->in.data, hlen, "Transfer-Encoding")) &&
            !strncasecmp(v, "chunked", 7))
            chunked = true;
        if ((v = find_header(c->in.data, hlen, "Connection")) && !strncasecmp(v, "close", 5))
            close_after = true;
        out->retry_after = (v = find_header(c->in.data, hlen, "Retry-After")) ? atof(v) : 0;
        /* Body. */
        if (!strcmp(method, "HEAD") || out->status == 204 || out->status == 304) {
            content_length = 0;
            chunked = false;
        }
        ssize_t blen;
        if (chunked) {
            while ((blen = dechunk(c->in.data + hlen, c->in.len - hlen)) < 0)
                if (recv_more(c) <= 0) goto broken;
        } else if (content_length >= 0) {
            while (c->in.len - hlen < (size_t)content_length)
                if (recv_more(c) <= 0) goto broken;
            blen = content_length;
        } else {
            while ((n = recv_more(c)) > 0)
                ;
            if (n < 0) goto broken;
            blen = (ssize_t)(c->in.len - hlen);
            close_after = true;
        }
        out->body = c->in.data + hlen;
        out->body_len = (size_t)blen;
        out->body[blen] = '\0';
        if (close_after) conn_close(c);
        return 0;
    broken:
        conn_close(c);
        return -1;
    }
    return -1;
}

static int http_do(http_conn *c, const char *method, const char *path, const char *body,
                   size_t body_len, http_resp *out)
{
    return http_do_h(c, method, path, target.auth_headers, body, body_len, out);
}

/* ---- the control plane (setup), through jansson ---- */

/* Calls the API with an optional JSON body; on 2xx returns 0 and the parsed response (may be
 * NULL for an empty body) in *resp (owned by the caller); otherwise prints the failure. */
static int api_call(http_conn *c, const char *method, const char *path, json_t *body, json_t **resp)
{
    char *text = body ? json_dumps(body, JSON_COMPACT) : NULL;
    http_resp r;
    int rc = http_do(c, method, path, text ? text : "", text ? strlen(text) : 0, &r);
    free(text);
    if (resp) *resp = NULL;
    if (rc != 0) {
        fprintf(stderr, "loadgen: %s %s: connection failed: %s\n", method, path, strerror(errno));
        return -1;
    }
    if (r.status < 200 || r.status > 299) {
        fprintf(stderr, "loadgen: %s %s: HTTP %d: %.2000s\n", method, path, r.status, r.body);
        return -1;
    }
    if (resp && r.body_len) {
        json_error_t err;
        *resp = json_loadb(r.body, r.body_len, 0, &err);
        if (!*resp) {
            fprintf(stderr, "loadgen: %s %s: response is not JSON (%s): %.500s\n", method, path,
                    err.text, r.body);
            return -1;
        }
    }
    return 0;
}

/* The schemas: the same shapes as scripts/demo-setup.sh. */
static const char profile_schema_json[] =
    "{\"type\": \"object\", \"meta:class\": \"https://ns.adobe.com/xdm/context/profile\","
    " \"allOf\": ["
    "  {\"$ref\": \"https://ns.adobe.com/xdm/context/profile-person-details\"},"
    "  {\"$ref\": \"https://ns.adobe.com/xdm/context/profile-personal-details\"},"
    "  {\"$ref\": \"https://ns.adobe.com/xdm/context/identitymap\"},"
    "  {\"$ref\": \"https://ns.adobe.com/xdm/context/profile-loyalty-details\"}],"
    " \"properties\": {\"_acme\": {\"type\": \"object\", \"properties\": {"
    "  \"crm\": {\"type\": \"object\", \"properties\": {"
    "   \"customerSince\": {\"type\": \"string\", \"format\": \"date\"},"
    "   \"segment\": {\"type\": \"string\", \"enum\": [\"new\", \"active\", \"lapsed\", \"vip\"]},"
    "   \"lifetimeValue\": {\"type\": \"number\", \"minimum\": 0},"
    "   \"marketingOptIn\": {\"type\": \"boolean\"}}},"
    "  \"loyalty\": {\"type\": \"object\", \"properties\": {"
    "   \"memberId\": {\"type\": \"string\", \"maxLength\": 64}}}}}}}";

static const char event_schema_json[] =
    "{\"type\": \"object\", \"meta:class\": \"https://ns.adobe.com/xdm/context/experienceevent\","
    " \"allOf\": ["
    "  {\"$ref\": \"https://ns.adobe.com/xdm/context/identitymap\"},"
    "  {\"$ref\": \"https://ns.adobe.com/xdm/context/experienceevent-commerce\"},"
    "  {\"$ref\": \"https://ns.adobe.com/xdm/context/experienceevent-web\"},"
    "  {\"$ref\": \"https://ns.adobe.com/xdm/context/experienceevent-environment-details\"},"
    "  {\"$ref\": \"https://ns.adobe.com/xdm/context/experienceevent-advertising\"}],"
    " \"properties\": {\"_acme\": {\"type\": \"object\", \"properties\": {"
    "  \"campaignId\": {\"type\": \"string\", \"maxLength\": 64}}}}}";

static json_t *schema_body(bool profile, const char *title)
{
    json_t *s = json_loads(profile ? profile_schema_json : event_schema_json, 0, NULL);
    if (!s) abort(); /* a bug in the literals above */
    json_object_set_new(s, "title", json_string(title));
    return s;
}

static char *xstrdup_json(json_t *v)
{
    return json_is_string(v) ? kith_xstrdup(json_string_value(v)) : NULL;
}

/* Creates a schema and enables it for Profile; returns its $id (owned) or NULL. */
static char *setup_schema(http_conn *c, bool profile, const char *title)
{
    json_t *resp = NULL, *body = schema_body(profile, title);
    char *id = NULL, path[1024];
    int rc = api_call(c, "POST", "/data/foundation/schemaregistry/tenant/schemas", body, &resp);
    json_decref(body);
    if (rc) goto out;
    id = xstrdup_json(json_object_get(resp, "$id"));
    const char *alt = json_string_value(json_object_get(resp, "meta:altId"));
    if (!id || !alt) {
        fprintf(stderr, "loadgen: schema response lacks $id or meta:altId\n");
        free(id);
        id = NULL;
        goto out;
    }
    snprintf(path, sizeof path, "/data/foundation/schemaregistry/tenant/schemas/%s", alt);
    json_t *patch =
        json_pack("[{ss ss s[s]}]", "op", "add", "path", "/meta:immutableTags", "value", "union");
    json_t *presp = NULL;
    rc = api_call(c, "PATCH", path, patch, &presp);
    json_decref(patch);
    json_decref(presp);
    if (rc) {
        free(id);
        id = NULL;
    }
out:
    json_decref(resp);
    return id;
}

/* Creates a Profile- and Identity-enabled dataset; returns its id (owned) or NULL. */
static char *setup_dataset(http_conn *c, const char *name, const char *schema_id)
{
    json_t *resp = NULL;
    json_t *body =
        json_pack("{ss s{ss ss} s{s[s] s[s]}}", "name", name, "schemaRef", "id", schema_id,
                  "contentType", "application/vnd.adobe.xed-full+json;version=1", "tags",
                  "unifiedProfile", "enabled:true", "unifiedIdentity", "enabled:true");
    char *id = NULL;
    if (api_call(c, "POST", "/data/foundation/catalog/dataSets", body, &resp) == 0) {
        const char *ref = json_string_value(json_array_get(resp, 0));
        const char *slash = ref ? strrchr(ref, '/') : NULL;
        if (slash && slash[1])
            id = kith_xstrdup(slash + 1);
        else
            fprintf(stderr, "loadgen: dataset response is not [\"@/dataSets/<id>\"]\n");
    }
    json_decref(body);
    json_decref(resp);
    return id;
}

static char *setup_inlet(http_conn *c, const char *name)
{
    json_t *resp = NULL;
    json_t *body = json_pack("{ss sb}", "name", name, "authenticationRequired", 1);
    char *id = NULL;
    if (api_call(c, "POST", "/data/foundation/flowservice/connections", body, &resp) == 0) {
        id = xstrdup_json(json_object_get(resp, "inletId"));
        if (!id) fprintf(stderr, "loadgen: connection response lacks inletId\n");
    }
    json_decref(body);
    json_decref(resp);
    return id;
}

/* The schema $id of an existing dataset (GET answers {"<id>": {..., "schemaRef": {"id"}}}). */
static char *dataset_schema(http_conn *c, const char *dataset)
{
    char path[1024];
    json_t *resp = NULL;
    char *id = NULL;
    snprintf(path, sizeof path, "/data/foundation/catalog/dataSets/%s", dataset);
    if (api_call(c, "GET", path, NULL, &resp) == 0) {
        json_t *ds = json_object_get(resp, dataset);
        if (!ds) ds = resp;
        id = xstrdup_json(json_object_get(json_object_get(ds, "schemaRef"), "id"));
        if (!id) fprintf(stderr, "loadgen: dataset %s has no schemaRef.id\n", dataset);
    }
    json_decref(resp);
    return id;
}

static char *setup_segment(http_conn *c, const char *name)
{
    json_t *resp = NULL;
    json_t *body = json_pack("{ss ss}", "name", name, "type", "segment");
    char *key = NULL;
    if (api_call(c, "POST", "/data/foundation/flowservice/connections", body, &resp) == 0) {
        key = xstrdup_json(json_object_get(resp, "writeKey"));
        dataset_crm_id = xstrdup_json(json_object_get(resp, "profileDataset"));
        dataset_web_id = xstrdup_json(json_object_get(resp, "eventDataset"));
        inlet_id = xstrdup_json(json_object_get(resp, "id"));
        if (!key || !dataset_crm_id || !dataset_web_id || !inlet_id) {
            fprintf(stderr, "loadgen: Segment connection response lacks writeKey or datasets\n");
            free(key);
            key = NULL;
        }
    }
    json_decref(body);
    json_decref(resp);
    return key;
}

static int setup(void)
{
    http_conn c = {.fd = -1};
    int rc = -1;
    if (opt.segment) {
        char name[128];
        snprintf(name, sizeof name, "loadgen segment %u", (unsigned)(kith_now_ms() % 100000000));
        if (!(write_key = setup_segment(&c, name))) goto out;
    } else if (opt.setup) {
        char title[128], name[128];
        unsigned nonce = (unsigned)(kith_now_ms() % 100000000);
        snprintf(title, sizeof title, "loadgen profile %u", nonce);
        if (!(schema_profile_id = setup_schema(&c, true, title))) goto out;
        snprintf(title, sizeof title, "loadgen events %u", nonce);
        if (!(schema_event_id = setup_schema(&c, false, title))) goto out;
        snprintf(name, sizeof name, "loadgen CRM %u", nonce);
        if (!(dataset_crm_id = setup_dataset(&c, name, schema_profile_id))) goto out;
        snprintf(name, sizeof name, "loadgen web events %u", nonce);
        if (!(dataset_web_id = setup_dataset(&c, name, schema_event_id))) goto out;
        snprintf(name, sizeof name, "loadgen %u", nonce);
        if (!(inlet_id = setup_inlet(&c, name))) goto out;
    } else {
        inlet_id = kith_xstrdup(opt.inlet);
        dataset_crm_id = kith_xstrdup(opt.dataset_crm);
        dataset_web_id = kith_xstrdup(opt.dataset_web);
        if (!(schema_profile_id = dataset_schema(&c, dataset_crm_id))) goto out;
        if (!(schema_event_id = dataset_schema(&c, dataset_web_id))) goto out;
    }
    rc = 0;
out:
    conn_close(&c);
    kith_buf_free(&c.in);
    return rc;
}

/* ---- the in-memory population ---- */

static void pool_add(pool *p, size_t off, size_t id_off)
{
    if (p->n == p->cap) {
        p->cap = p->cap ? p->cap * 2 : 1024;
        p->off = kith_xrealloc(p->off, p->cap * sizeof *p->off);
        p->len = kith_xrealloc(p->len, p->cap * sizeof *p->len);
        p->id_off = kith_xrealloc(p->id_off, p->cap * sizeof *p->id_off);
        p->crmid = kith_xrealloc(p->crmid, p->cap * sizeof *p->crmid);
    }
    p->off[p->n] = off;
    p->len[p->n] = p->data.len - off;
    p->id_off[p->n] = id_off;
    p->crmid[p->n] = NULL;
    p->n++;
}

/* CRM envelopes for every person with a CRM record, and a pool of web-event envelopes from
 * sessions of random people (as many as N x 5, at most EVENT_POOL_MAX). */
static void build_pools(void)
{
    int64_t now_ms = kith_now_ms();
    for (uint64_t i = 0; i < opt.people; i++) {
        bench_person p;
        bench_person_make(opt.seed, i, opt.people, &p);
        if (!p.has_crm) continue;
        size_t off = crm_pool.data.len;
        bench_envelope_begin(&crm_pool.data, schema_profile_id, dataset_crm_id);
        bench_write_crm(&crm_pool.data, &p);
        bench_envelope_end(&crm_pool.data);
        pool_add(&crm_pool, off, 0);
        crm_pool.crmid[crm_pool.n - 1] = kith_xstrdup(p.crmid);
    }
    bench_rng r;
    bench_rng_seed(&r, bench_mix(opt.seed, 0x10AD, 0));
    uint64_t want = opt.people * 5 < EVENT_POOL_MAX ? opt.people * 5 : EVENT_POOL_MAX;
    uint64_t made = 0;
    while (made < want) {
        bench_person p;
        bench_person_make(opt.seed, bench_rng_below(&r, opt.people), opt.people, &p);
        bench_session s;
        bench_session_begin(&s, &p, &r, now_ms, opt.days);
        int len = 1 + (int)bench_rng_below(&r, 8);
        for (int e = 0; e < len && made < want; e++, made++) {
            size_t off = event_pool.data.len;
            bench_envelope_begin(&event_pool.data, schema_event_id, dataset_web_id);
            size_t id_off = event_pool.data.len + 8; /* {"_id":" */
            bench_write_event(&event_pool.data, &s, &r, made);
            bench_envelope_end(&event_pool.data);
            pool_add(&event_pool, off, id_off - off);
        }
    }
}

/* --segment: Segment messages; each entry's messageId placeholder is patched on every send. */
static void build_segment_pool(void)
{
    bench_rng r;
    bench_rng_seed(&r, bench_mix(opt.seed, 0x5E6, 0));
    uint64_t want = opt.people * 5 < EVENT_POOL_MAX ? opt.people * 5 : EVENT_POOL_MAX;
    static const char *const events[] = {"Product Viewed", "Product Added", "Order Completed",
                                         "Signed In", "Search"};
    int64_t now_ms = kith_now_ms();
    kith_buf *b = &segment_pool.data;
    for (uint64_t made = 0; made < want; made++) {
        bench_person p;
        bench_person_make(opt.seed, bench_rng_below(&r, opt.people), opt.people, &p);
        char anon[40], ts[40];
        bench_ecid(opt.seed, p.index, 0, anon);
        kith_time_format(now_ms - (int64_t)bench_rng_below(&r, (uint64_t)opt.days * 86400000), ts,
                         sizeof ts);
        size_t off = b->len;
        bool identify = p.has_crm && bench_rng_chance(&r, opt.crm_ratio);
        kith_buf_printf(b, "{\"type\":\"%s\",\"messageId\":\"", identify ? "identify" : "track");
        size_t id_off = b->len;
        for (int i = 0; i < BENCH_EVENT_ID_LEN; i++)
            kith_buf_append(b, "x", 1);
        kith_buf_printf(b, "\",\"anonymousId\":\"a-%s\",\"timestamp\":\"%s\"", anon, ts);
        if (p.has_crm && (identify || bench_rng_chance(&r, 0.5)))
            kith_buf_printf(b, ",\"userId\":\"%s\"", p.crmid);
        if (identify) {
            kith_buf_printf(b,
                            ",\"traits\":{\"email\":\"%s\",\"firstName\":\"%s\",\"lastName\":\"%s\","
                            "\"phone\":\"%s\",\"plan\":\"%s\",\"points\":%d}}",
                            p.email, p.first_name, p.last_name, p.phone, p.tier ? p.tier : "none",
                            p.points);
        } else {
            const char *ev = events[bench_rng_below(&r, 5)];
            kith_buf_printf(b,
                            ",\"event\":\"%s\",\"properties\":{\"sku\":\"SKU-%" PRIu64
                            "\",\"revenue\":%.2f,\"currency\":\"EUR\"},\"context\":{\"ip\":"
                            "\"203.0.113.9\",\"library\":{\"name\":\"loadgen\",\"version\":\"1\"}}}",
                            ev, bench_rng_below(&r, 5000),
                            (double)bench_rng_below(&r, 50000) / 100.0);
        }
        pool_add(&segment_pool, off, id_off - off);
    }
}

/* gzip (not zlib) framing, as the SDKs send it. */
static int gzip_buf(const char *in, size_t len, kith_buf *out)
{
    z_stream zs = {0};
    if (deflateInit2(&zs, Z_DEFAULT_COMPRESSION, Z_DEFLATED, 16 + MAX_WBITS, 8,
                     Z_DEFAULT_STRATEGY) != Z_OK)
        return -1;
    out->len = 0;
    kith_buf_reserve(out, deflateBound(&zs, len) + 64);
    zs.next_in = (Bytef *)in;
    zs.avail_in = (uInt)len;
    zs.next_out = (Bytef *)out->data;
    zs.avail_out = (uInt)(out->cap - 1);
    int rc = deflate(&zs, Z_FINISH);
    out->len = zs.total_out;
    deflateEnd(&zs);
    return rc == Z_STREAM_END ? 0 : -1;
}

static void b64_encode(const char *in, size_t n, char *out)
{
    static const char t[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    size_t o = 0;
    for (size_t i = 0; i < n; i += 3) {
        uint32_t v = (uint32_t)(unsigned char)in[i] << 16;
        if (i + 1 < n) v |= (uint32_t)(unsigned char)in[i + 1] << 8;
        if (i + 2 < n) v |= (unsigned char)in[i + 2];
        out[o++] = t[v >> 18 & 63];
        out[o++] = t[v >> 12 & 63];
        out[o++] = i + 1 < n ? t[v >> 6 & 63] : '=';
        out[o++] = i + 2 < n ? t[v & 63] : '=';
    }
    out[o] = 0;
}

/* ---- clients ---- */

typedef struct lat_vec {
    uint32_t *v;
    size_t n, cap;
} lat_vec;

static void lat_push(lat_vec *l, uint64_t ns)
{
    if (l->n == l->cap) {
        l->cap = l->cap ? l->cap * 2 : 4096;
        l->v = kith_xrealloc(l->v, l->cap * sizeof *l->v);
    }
    uint64_t us = ns / 1000;
    l->v[l->n++] = us > UINT32_MAX ? UINT32_MAX : (uint32_t)us;
}

typedef struct client {
    int id;
    pthread_t thread;
    /* preload range of the CRM pool */
    size_t pre_from, pre_to;
    uint64_t deadline_ns, end_ns;
    uint64_t requests, accepted, lookups_ok;
    uint64_t http_err[MAX_STATUS], entry_err[MAX_STATUS], transport_err;
    lat_vec lat;
} client;

static void count_status(uint64_t *table, int status)
{
    table[status > 0 && status < MAX_STATUS ? status : 0]++;
}

/* Counts the accepted messages of a 207 and the per-message error codes. The fast path (no
 * "statusCode" anywhere) counts xactionIds without parsing the JSON. */
static uint64_t tally_batch(client *cl, const http_resp *r, int expected)
{
    if (!strstr(r->body, "\"statusCode\"")) {
        uint64_t n = 0;
        for (const char *p = r->body; (p = strstr(p, "\"xactionId\"")); p += 11)
            n++;
        return n > (uint64_t)expected ? (uint64_t)expected : n;
    }
    json_t *doc = json_loadb(r->body, r->body_len, 0, NULL);
    json_t *responses = json_object_get(doc, "responses"), *entry;
    size_t i;
    uint64_t ok = 0;
    json_array_foreach(responses, i, entry)
    {
        json_t *sc = json_object_get(entry, "statusCode");
        if (!sc)
            ok++;
        else
            count_status(cl->entry_err, (int)json_integer_value(sc));
    }
    json_decref(doc);
    return ok;
}

static void backoff(const http_resp *r, uint64_t deadline_ns)
{
    double s = r->retry_after > 0 ? r->retry_after : 0.01;
    uint64_t now = kith_mono_ns();
    if (now >= deadline_ns) return;
    double left = (double)(deadline_ns - now) / 1e9;
    if (s > left) s = left;
    if (s > 1) s = 1;
    struct timespec ts = {(time_t)s, (long)((s - (double)(time_t)s) * 1e9)};
    nanosleep(&ts, NULL);
}

/* Appends pool entry i to body; for events, rewrites the _id so the event is new. */
static void append_entry(kith_buf *body, const pool *p, size_t i, bench_rng *r, uint64_t unique)
{
    size_t at = body->len;
    kith_buf_append(body, p->data.data + p->off[i], p->len[i]);
    if (p->id_off[i]) {
        char id[BENCH_EVENT_ID_LEN + 1];
        bench_event_id(bench_rng_next(r), unique, id);
        memcpy(body->data + at + p->id_off[i], id, BENCH_EVENT_ID_LEN);
    }
}

static char batch_path[512];

static void *preload_main(void *arg)
{
    client *cl = arg;
    http_conn c = {.fd = -1};
    kith_buf body = {0};
    for (size_t from = cl->pre_from; from < cl->pre_to; from += (size_t)opt.batch) {
        size_t to = from + (size_t)opt.batch < cl->pre_to ? from + (size_t)opt.batch : cl->pre_to;
        body.len = 0;
        kith_buf_puts(&body, "{\"messages\":[");
        for (size_t i = from; i < to; i++) {
            if (i > from) kith_buf_append(&body, ",", 1);
            append_entry(&body, &crm_pool, i, NULL, 0);
        }
        kith_buf_puts(&body, "]}");
        http_resp r;
        for (int tries = 0;; tries++) {
            cl->requests++;
            if (http_do(&c, "POST", batch_path, body.data, body.len, &r) != 0) {
                cl->transport_err++;
                break;
            }
            if (r.status == 429 && tries < 100) {
                count_status(cl->http_err, r.status);
                backoff(&r, kith_mono_ns() + 2000000000ull);
                continue;
            }
            if (r.status == 207)
                cl->accepted += tally_batch(cl, &r, (int)(to - from));
            else
                count_status(cl->http_err, r.status);
            break;
        }
    }
    conn_close(&c);
    kith_buf_free(&c.in);
    kith_buf_free(&body);
    return NULL;
}

static void *ingest_main(void *arg)
{
    client *cl = arg;
    http_conn c = {.fd = -1};
    kith_buf body = {0};
    bench_rng r;
    bench_rng_seed(&r, bench_mix(kith_mono_ns(), (uint64_t)cl->id, 0x1A));
    uint64_t seq = 0;
    kith_buf zbody = {0};
    while (opt.segment && !atomic_load(&stop_flag) && kith_mono_ns() < cl->deadline_ns) {
        body.len = 0;
        kith_buf_puts(&body, "{\"batch\":[");
        for (int j = 0; j < opt.batch; j++) {
            if (j) kith_buf_append(&body, ",", 1);
            append_entry(&body, &segment_pool, bench_rng_below(&r, segment_pool.n), &r,
                         ((uint64_t)cl->id << 40) | seq++);
        }
        char sent[40];
        kith_buf_printf(&body, "],\"sentAt\":\"%s\"}", kith_time_format(kith_now_ms(), sent, sizeof sent));
        http_resp resp;
        uint64_t t0 = kith_mono_ns();
        int rc = gzip_buf(body.data, body.len, &zbody);
        if (rc == 0)
            rc = http_do_h(&c, "POST", "/v1/batch", target.segment_headers, zbody.data, zbody.len,
                           &resp);
        uint64_t t1 = kith_mono_ns();
        cl->requests++;
        if (rc != 0) {
            cl->transport_err++;
            backoff(&(http_resp){.retry_after = 0.1}, cl->deadline_ns);
            continue;
        }
        lat_push(&cl->lat, t1 - t0);
        if (resp.status == 200) {
            cl->accepted += (uint64_t)opt.batch;
        } else {
            count_status(cl->http_err, resp.status);
            if (resp.status == 429 || resp.status == 503) backoff(&resp, cl->deadline_ns);
        }
    }
    kith_buf_free(&zbody);
    while (!opt.segment && !atomic_load(&stop_flag) && kith_mono_ns() < cl->deadline_ns) {
        body.len = 0;
        kith_buf_puts(&body, "{\"messages\":[");
        for (int j = 0; j < opt.batch; j++) {
            if (j) kith_buf_append(&body, ",", 1);
            if (crm_pool.n && bench_rng_chance(&r, opt.crm_ratio))
                append_entry(&body, &crm_pool, bench_rng_below(&r, crm_pool.n), &r, 0);
            else
                append_entry(&body, &event_pool, bench_rng_below(&r, event_pool.n), &r,
                             ((uint64_t)cl->id << 40) | seq++);
        }
        kith_buf_puts(&body, "]}");
        http_resp resp;
        uint64_t t0 = kith_mono_ns();
        int rc = http_do(&c, "POST", batch_path, body.data, body.len, &resp);
        uint64_t t1 = kith_mono_ns();
        cl->requests++;
        if (rc != 0) {
            cl->transport_err++;
            backoff(&(http_resp){.retry_after = 0.1}, cl->deadline_ns);
            continue;
        }
        lat_push(&cl->lat, t1 - t0);
        if (resp.status == 207) {
            cl->accepted += tally_batch(cl, &resp, opt.batch);
        } else {
            count_status(cl->http_err, resp.status);
            if (resp.status == 429 || resp.status == 503) backoff(&resp, cl->deadline_ns);
        }
    }
    cl->end_ns = kith_mono_ns();
    conn_close(&c);
    kith_buf_free(&c.in);
    kith_buf_free(&body);
    return NULL;
}

static void *lookup_main(void *arg)
{
    client *cl = arg;
    http_conn c = {.fd = -1};
    bench_rng r;
    bench_rng_seed(&r, bench_mix(kith_mono_ns(), (uint64_t)cl->id, 0x100C));
    char path[512];
    while (!atomic_load(&stop_flag) && kith_mono_ns() < cl->deadline_ns) {
        const char *crmid = crm_pool.crmid[bench_rng_below(&r, crm_pool.n)];
        snprintf(path, sizeof path,
                 "/data/core/ups/access/entities?schema.name=_xdm.context.profile"
                 "&entityId=%s&entityIdNS=CRMID",
                 crmid);
        http_resp resp;
        uint64_t t0 = kith_mono_ns();
        int rc = http_do(&c, "GET", path, NULL, 0, &resp);
        uint64_t t1 = kith_mono_ns();
        cl->requests++;
        if (rc != 0) {
            cl->transport_err++;
            backoff(&(http_resp){.retry_after = 0.1}, cl->deadline_ns);
            continue;
        }
        lat_push(&cl->lat, t1 - t0);
        if (resp.status == 200)
            cl->lookups_ok++;
        else
            count_status(cl->http_err, resp.status);
        if (resp.status == 429 || resp.status == 503) backoff(&resp, cl->deadline_ns);
    }
    cl->end_ns = kith_mono_ns();
    conn_close(&c);
    kith_buf_free(&c.in);
    return NULL;
}

/* ---- reporting ---- */

static int cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? -1 : x > y;
}

typedef struct lat_summary {
    uint64_t n;
    uint32_t p50, p99, max;
} lat_summary;

static lat_summary summarize(client *cls, int n)
{
    lat_vec all = {0};
    for (int i = 0; i < n; i++)
        for (size_t j = 0; j < cls[i].lat.n; j++)
            lat_push(&all, (uint64_t)cls[i].lat.v[j] * 1000);
    lat_summary s = {.n = all.n};
    if (all.n) {
        qsort(all.v, all.n, sizeof *all.v, cmp_u32);
        s.p50 = all.v[(all.n - 1) * 50 / 100];
        s.p99 = all.v[(all.n - 1) * 99 / 100];
        s.max = all.v[all.n - 1];
    }
    free(all.v);
    return s;
}

/* Prints "label NNN xCOUNT, ..." for the non-zero entries of a status table; returns the total. */
static uint64_t print_errors(const char *label, const uint64_t *table, bool *first)
{
    uint64_t total = 0;
    for (int s = 0; s < MAX_STATUS; s++) {
        if (!table[s]) continue;
        printf("%s%s %d x%" PRIu64, *first ? "" : ", ", label, s, table[s]);
        *first = false;
        total += table[s];
    }
    return total;
}

static void print_command(int argc, char **argv)
{
    printf("command: ");
    for (int i = 0; i < argc; i++) {
        bool plain = argv[i][0] && !strpbrk(argv[i], " \t\"'$\\&;|<>*?()`");
        printf(plain ? "%s%s" : "%s'%s'", i ? " " : "", argv[i]);
    }
    printf("\n");
}

/* ---- main ---- */

static int parse_url(const char *url)
{
    if (strncmp(url, "http://", 7)) {
        fprintf(stderr, "loadgen: --url must start with http:// (got %s)\n", url);
        return -1;
    }
    const char *h = url + 7, *hend, *port_s = NULL;
    char host[64];
    if (*h == '[') {
        hend = strchr(h, ']');
        if (!hend) return -1;
        snprintf(host, sizeof host, "%.*s", (int)(hend - h - 1), h + 1);
        if (hend[1] == ':') port_s = hend + 2;
    } else {
        hend = h + strcspn(h, ":/");
        snprintf(host, sizeof host, "%.*s", (int)(hend - h), h);
        if (*hend == ':') port_s = hend + 1;
    }
    long port = port_s ? strtol(port_s, NULL, 10) : 80;
    if (port <= 0 || port > 65535) {
        fprintf(stderr, "loadgen: bad port in %s\n", url);
        return -1;
    }
    struct sockaddr_in *v4 = (struct sockaddr_in *)&target.addr;
    struct sockaddr_in6 *v6 = (struct sockaddr_in6 *)&target.addr;
    memset(&target.addr, 0, sizeof target.addr);
    if (!strcmp(host, "localhost")) snprintf(host, sizeof host, "127.0.0.1");
    if (inet_pton(AF_INET, host, &v4->sin_addr) == 1) {
        if ((ntohl(v4->sin_addr.s_addr) >> 24) != 127) goto not_loopback;
        v4->sin_family = AF_INET;
        v4->sin_port = htons((uint16_t)port);
        target.addr_len = sizeof *v4;
    } else if (inet_pton(AF_INET6, host, &v6->sin6_addr) == 1) {
        if (!IN6_IS_ADDR_LOOPBACK(&v6->sin6_addr)) goto not_loopback;
        v6->sin6_family = AF_INET6;
        v6->sin6_port = htons((uint16_t)port);
        target.addr_len = sizeof *v6;
    } else {
        goto not_loopback;
    }
    snprintf(target.host_header, sizeof target.host_header, "%.*s", (int)strcspn(url + 7, "/"),
             url + 7);
    return 0;
not_loopback:
    fprintf(stderr, "loadgen: refusing %s: only loopback targets (127.0.0.0/8, ::1, localhost)\n",
            url);
    return -1;
}

static void usage(FILE *f)
{
    fprintf(f, "usage: loadgen --url http://127.0.0.1:PORT --key KEY [--sandbox NAME]\n"
               "               (--setup | --inlet ID --dataset-crm ID --dataset-web ID)\n"
               "               [--clients C] [--duration S] [--batch B] [--lookup-clients L]\n"
               "               [--people N] [--seed S] [--crm-ratio R] [--days D] [--no-preload]\n"
               "  --url URL            kithd base URL; loopback only\n"
               "  --key KEY            API key (Bearer)\n"
               "  --sandbox NAME       x-sandbox-name (default: the server's, prod)\n"
               "  --setup              create schemas, datasets and an inlet through the API\n"
               "  --inlet, --dataset-crm, --dataset-web   use existing ones instead\n"
               "  --clients C          ingest clients (default 4; 0 for lookups only)\n"
               "  --duration S         seconds of measured load (default 10)\n"
               "  --batch B            envelopes per batch request (default 100)\n"
               "  --lookup-clients L   profile lookup clients (default 0)\n"
               "  --people N           population size (default 10000)\n"
               "  --seed S             population seed (default 1)\n"
               "  --crm-ratio R        share of CRM records among messages (default 0.10)\n"
               "  --days D             event timestamps over the last D days (default 30)\n"
               "  --no-preload         skip loading every CRM record before the measured run\n"
               "  --segment            measure POST /v1/batch (gzip, Segment messages) on a new\n"
               "                       Segment connection instead of /collection/batch\n");
}

static void on_signal(int sig)
{
    (void)sig;
    atomic_store(&stop_flag, true);
}

int main(int argc, char **argv)
{
    enum {
        O_URL = 256,
        O_KEY,
        O_SANDBOX,
        O_SETUP,
        O_INLET,
        O_DCRM,
        O_DWEB,
        O_CLIENTS,
        O_DURATION,
        O_BATCH,
        O_LOOKUP,
        O_PEOPLE,
        O_SEED,
        O_RATIO,
        O_DAYS,
        O_NOPRELOAD,
        O_SEGMENT
    };
    static const struct option opts[] = {
        {"url", required_argument, NULL, O_URL},
        {"key", required_argument, NULL, O_KEY},
        {"sandbox", required_argument, NULL, O_SANDBOX},
        {"setup", no_argument, NULL, O_SETUP},
        {"inlet", required_argument, NULL, O_INLET},
        {"dataset-crm", required_argument, NULL, O_DCRM},
        {"dataset-web", required_argument, NULL, O_DWEB},
        {"clients", required_argument, NULL, O_CLIENTS},
        {"duration", required_argument, NULL, O_DURATION},
        {"batch", required_argument, NULL, O_BATCH},
        {"lookup-clients", required_argument, NULL, O_LOOKUP},
        {"people", required_argument, NULL, O_PEOPLE},
        {"seed", required_argument, NULL, O_SEED},
        {"crm-ratio", required_argument, NULL, O_RATIO},
        {"days", required_argument, NULL, O_DAYS},
        {"no-preload", no_argument, NULL, O_NOPRELOAD},
        {"segment", no_argument, NULL, O_SEGMENT},
        {"help", no_argument, NULL, 'h'},
        {0},
    };
    int ch;
    while ((ch = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        char *end = NULL;
        switch (ch) {
        case O_URL:
            opt.url = optarg;
            break;
        case O_KEY:
            opt.key = optarg;
            break;
        case O_SANDBOX:
            opt.sandbox = optarg;
            break;
        case O_SETUP:
            opt.setup = true;
            break;
        case O_INLET:
            opt.inlet = optarg;
            break;
        case O_DCRM:
            opt.dataset_crm = optarg;
            break;
        case O_DWEB:
            opt.dataset_web = optarg;
            break;
        case O_CLIENTS:
            opt.clients = (int)strtol(optarg, &end, 10);
            break;
        case O_DURATION:
            opt.duration = strtod(optarg, &end);
            break;
        case O_BATCH:
            opt.batch = (int)strtol(optarg, &end, 10);
            break;
        case O_LOOKUP:
            opt.lookup_clients = (int)strtol(optarg, &end, 10);
            break;
        case O_PEOPLE:
            opt.people = strtoull(optarg, &end, 10);
            break;
        case O_SEED:
            opt.seed = strtoull(optarg, &end, 10);
            break;
        case O_RATIO:
            opt.crm_ratio = strtod(optarg, &end);
            break;
        case O_DAYS:
            opt.days = (int)strtol(optarg, &end, 10);
            break;
        case O_NOPRELOAD:
            opt.preload = false;
            break;
        case O_SEGMENT:
            opt.segment = true;
            break;
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
        if (end && (*end || end == optarg)) {
            fprintf(stderr, "loadgen: bad number: %s\n", optarg);
            return 2;
        }
    }
    const char *why = NULL;
    if (optind != argc)
        why = "unexpected arguments";
    else if (!opt.url || !opt.key)
        why = "--url and --key are required";
    else if (opt.segment && opt.lookup_clients)
        why = "--segment measures ingestion only (no --lookup-clients)";
    else if (!opt.setup && !opt.segment && (!opt.inlet || !opt.dataset_crm || !opt.dataset_web))
        why = "give --setup, or --inlet, --dataset-crm and --dataset-web";
    else if (opt.clients < 0 || opt.lookup_clients < 0 ||
             opt.clients + opt.lookup_clients > MAX_CLIENTS ||
             opt.clients + opt.lookup_clients == 0)
        why = "need 1..256 clients in all";
    else if (opt.batch < 1 || opt.batch > 10000)
        why = "--batch must be 1..10000";
    else if (!(opt.duration > 0 && opt.duration <= 3600))
        why = "--duration must be in (0, 3600]";
    else if (opt.people < 1 || opt.people > 100000000)
        why = "--people must be 1..1e8";
    else if (!(opt.crm_ratio >= 0 && opt.crm_ratio <= 1))
        why = "--crm-ratio must be in [0, 1]";
    else if (opt.days < 1 || opt.days > 3650)
        why = "--days must be 1..3650";
    if (why) {
        fprintf(stderr, "loadgen: %s\n", why);
        usage(stderr);
        return 2;
    }
    if (parse_url(opt.url) != 0) return 2;
    if (strpbrk(opt.key, "\r\n") || (opt.sandbox && strpbrk(opt.sandbox, "\r\n"))) {
        fprintf(stderr, "loadgen: key and sandbox must not contain line breaks\n");
        return 2;
    }
    snprintf(target.auth_headers, sizeof target.auth_headers, "Authorization: Bearer %s\r\n%s%s%s",
             opt.key, opt.sandbox ? "x-sandbox-name: " : "", opt.sandbox ? opt.sandbox : "",
             opt.sandbox ? "\r\n" : "");
    signal(SIGPIPE, SIG_IGN);
    struct sigaction sa = {.sa_handler = on_signal};
    sigaction(SIGINT, &sa, NULL);
    sigaction(SIGTERM, &sa, NULL);

    if (setup() != 0) return 1;
    for (const char *p = inlet_id; *p; p++)
        if (!strchr("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-_.", *p)) {
            fprintf(stderr, "loadgen: unexpected characters in inlet id %s\n", inlet_id);
            return 1;
        }
    snprintf(batch_path, sizeof batch_path, "/collection/batch/%s", inlet_id);
    if (opt.segment) {
        char user[128], b64[200];
        snprintf(user, sizeof user, "%s:", write_key);
        b64_encode(user, strlen(user), b64);
        snprintf(target.segment_headers, sizeof target.segment_headers,
                 "Authorization: Basic %s\r\nContent-Encoding: gzip\r\n", b64);
        snprintf(batch_path, sizeof batch_path, "/v1/batch");
        opt.preload = false;
    }

    uint64_t t0 = kith_mono_ns();
    if (opt.segment)
        build_segment_pool();
    else
        build_pools();
    double build_s = (double)(kith_mono_ns() - t0) / 1e9;
    if (crm_pool.n == 0 && opt.lookup_clients > 0) {
        fprintf(stderr, "loadgen: no person with a CRM record to look up; raise --people\n");
        return 1;
    }

    printf("loadgen: %s  clients %d x batch %d, lookup clients %d, people %" PRIu64 ", %.0f s\n",
           opt.url, opt.clients, opt.batch, opt.lookup_clients, opt.people, opt.duration);
    printf("setup:   inlet %s, datasets CRM %s / web %s\n", inlet_id, dataset_crm_id,
           dataset_web_id);
    if (opt.segment)
        printf("data:    %zu Segment messages (%.1f MB) for POST /v1/batch (gzip), built in %.2f s\n",
               segment_pool.n, (double)segment_pool.data.len / 1e6, build_s);
    else
        printf("data:    %zu CRM envelopes (%.1f MB), %zu event envelopes (%.1f MB), built in %.2f s\n",
               crm_pool.n, (double)crm_pool.data.len / 1e6, event_pool.n,
               (double)event_pool.data.len / 1e6, build_s);
    fflush(stdout);

    int nthreads = opt.clients + opt.lookup_clients;
    client *cls = kith_xcalloc((size_t)nthreads, sizeof *cls);
    bool first = true;
    uint64_t errors = 0;

    /* Preload: every CRM record once, so that lookups hit known people. */
    if (opt.preload && crm_pool.n) {
        int np = opt.clients > 0 ? opt.clients : 1;
        uint64_t p0 = kith_mono_ns();
        for (int i = 0; i < np; i++) {
            cls[i].id = i;
            cls[i].pre_from = crm_pool.n * (size_t)i / (size_t)np;
            cls[i].pre_to = crm_pool.n * (size_t)(i + 1) / (size_t)np;
            pthread_create(&cls[i].thread, NULL, preload_main, &cls[i]);
        }
        uint64_t accepted = 0, failed = 0;
        uint64_t ph[MAX_STATUS] = {0}, pe[MAX_STATUS] = {0};
        for (int i = 0; i < np; i++) {
            pthread_join(cls[i].thread, NULL);
            accepted += cls[i].accepted;
            failed += cls[i].transport_err;
            for (int s = 0; s < MAX_STATUS; s++) {
                ph[s] += cls[i].http_err[s];
                pe[s] += cls[i].entry_err[s];
                failed += cls[i].http_err[s] + cls[i].entry_err[s];
            }
        }
        double ps = (double)(kith_mono_ns() - p0) / 1e9;
        printf("preload: %" PRIu64 " of %zu CRM records accepted in %.2f s (%.0f records/s)\n",
               accepted, crm_pool.n, ps, ps > 0 ? (double)accepted / ps : 0);
        if (failed) {
            printf("preload errors: ");
            print_errors("http", ph, &first);
            print_errors("message", pe, &first);
            printf("\n");
        }
        if (accepted == 0) {
            fprintf(stderr, "loadgen: the preload stored nothing; stopping\n");
            return 1;
        }
        memset(cls, 0, (size_t)nthreads * sizeof *cls);
        first = true;
        errors = 0;
        fflush(stdout);
    }

    uint64_t start = kith_mono_ns();
    uint64_t deadline = start + (uint64_t)(opt.duration * 1e9);
    for (int i = 0; i < nthreads; i++) {
        cls[i].id = i;
        cls[i].deadline_ns = deadline;
        pthread_create(&cls[i].thread, NULL, i < opt.clients ? ingest_main : lookup_main, &cls[i]);
    }
    uint64_t end = start;
    for (int i = 0; i < nthreads; i++) {
        pthread_join(cls[i].thread, NULL);
        if (cls[i].end_ns > end) end = cls[i].end_ns;
    }
    double secs = (double)(end - start) / 1e9;

    uint64_t ing_req = 0, accepted = 0, lk_req = 0, lk_ok = 0;
    for (int i = 0; i < nthreads; i++) {
        if (i < opt.clients) {
            ing_req += cls[i].requests;
            accepted += cls[i].accepted;
        } else {
            lk_req += cls[i].requests;
            lk_ok += cls[i].lookups_ok;
        }
    }
    lat_summary il = summarize(cls, opt.clients);
    lat_summary ll = summarize(cls + opt.clients, opt.lookup_clients);
    double eps = secs > 0 ? (double)accepted / secs : 0;
    double rps = secs > 0 ? (double)ing_req / secs : 0;
    double lps = secs > 0 ? (double)lk_req / secs : 0;
    if (opt.clients) {
        printf("ingest:  %" PRIu64 " messages accepted in %.2f s = %.0f events/s; %" PRIu64
               " requests = %.1f req/s\n",
               accepted, secs, eps, ing_req, rps);
        printf("         request latency p50 %u us, p99 %u us, max %u us\n", il.p50, il.p99,
               il.max);
    }
    if (opt.lookup_clients)
        printf("lookups: %" PRIu64 " in %.2f s = %.0f lookups/s (%" PRIu64
               " answered 200); p50 %u us, p99 %u us, max %u us\n",
               lk_req, secs, lps, lk_ok, ll.p50, ll.p99, ll.max);
    printf("errors:  ");
    uint64_t transport = 0;
    uint64_t ih[MAX_STATUS] = {0}, ie[MAX_STATUS] = {0}, lh[MAX_STATUS] = {0};
    for (int i = 0; i < nthreads; i++) {
        transport += cls[i].transport_err;
        for (int s = 0; s < MAX_STATUS; s++) {
            if (i < opt.clients) {
                ih[s] += cls[i].http_err[s];
                ie[s] += cls[i].entry_err[s];
            } else {
                lh[s] += cls[i].http_err[s];
            }
        }
    }
    errors += print_errors("ingest http", ih, &first);
    errors += print_errors("ingest message", ie, &first);
    errors += print_errors("lookup http", lh, &first);
    if (transport) {
        printf("%sconnection x%" PRIu64, first ? "" : ", ", transport);
        first = false;
        errors += transport;
    }
    printf("%s\n", first ? "none" : "");
    print_command(argc, argv);
    printf("RESULT events_per_s=%.0f requests_per_s=%.1f ingest_p50_us=%u ingest_p99_us=%u "
           "ingest_max_us=%u lookups_per_s=%.0f lookup_p50_us=%u lookup_p99_us=%u "
           "lookup_max_us=%u errors=%" PRIu64 " seconds=%.2f\n",
           eps, rps, il.p50, il.p99, il.max, lps, ll.p50, ll.p99, ll.max, errors, secs);
    fflush(stdout);
    bool ok = (opt.clients == 0 || accepted > 0) && (opt.lookup_clients == 0 || lk_ok > 0);
    for (int i = 0; i < nthreads; i++) free(cls[i].lat.v);
    free(cls);
    return ok ? 0 : 1;
}
