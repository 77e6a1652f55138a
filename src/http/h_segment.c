/* The Segment tracking API (/v1/batch, /v1/identify, ... and analytics.js's /v1/b, /v1/i, ...):
 * write keys from Segment-type connections, parsing and mapping on the worker pool exactly as
 * /collection does (src/ingest/segment_map.c builds the XDM entity, ingest_prepare validates it,
 * ingest_submit hands it to the writer), deduplication on messageId, and the creation of
 * Segment-type connections (with their built-in schemas and datasets). */
#include "kith/jalloc.h"
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "http.h"
#include "kith/ingest.h"
#include "kith/schema.h"
#include "kith/segment_map.h"

#define SEGMENT_PROFILE_SCHEMA "https://ns.adobe.com/kith/schemas/segment-profile"
#define SEGMENT_EVENT_SCHEMA "https://ns.adobe.com/kith/schemas/segment-event"
#define DEDUP_WINDOW_DEFAULT_S 86400
#define DEDUP_WINDOW_MAX_S (30 * 86400)

/* --- messageId deduplication ---
 * A bounded in-memory table of (sandbox, connection, messageId) hashes with their first-seen time,
 * consulted before a message is mapped and filled once the message is durable (so a retry of a
 * request that failed is never mistaken for a duplicate). Open addressing over DEDUP_SLOTS slots
 * (16 MiB, allocated on first use); a slot is reused when its entry is older than the window, or,
 * when all DEDUP_PROBE candidates are live, the oldest of them is replaced: under more than about a
 * million distinct messages per window the oldest ids are forgotten early. Events are also
 * idempotent on (dataset, _id = messageId) in the store, so a forgotten id re-stores nothing. */
#define DEDUP_SLOTS (1u << 20)
#define DEDUP_PROBE 16

typedef struct dedup_slot {
    uint64_t hash;
    int64_t seen; /* ms */
} dedup_slot;

static dedup_slot *dedup_tab;
static pthread_mutex_t dedup_mu = PTHREAD_MUTEX_INITIALIZER;

static uint64_t dedup_hash(uint32_t sandbox, const char *conn, const char *mid)
{
    uint64_t h = kith_hash64(conn, strlen(conn), sandbox);
    h = kith_hash64(mid, strlen(mid), h ^ 0x9e3779b97f4a7c15ull);
    return h ? h : 1;
}

static bool dedup_seen(uint64_t h, int64_t now, int64_t window_ms)
{
    bool seen = false;
    pthread_mutex_lock(&dedup_mu);
    for (unsigned i = 0; dedup_tab && i < DEDUP_PROBE && !seen; i++) {
        const dedup_slot *s = &dedup_tab[(h + i) & (DEDUP_SLOTS - 1)];
        seen = s->hash == h && now - s->seen < window_ms;
    }
    pthread_mutex_unlock(&dedup_mu);
    return seen;
}

static void dedup_remember(uint64_t h, int64_t now, int64_t window_ms)
{
    pthread_mutex_lock(&dedup_mu);
    if (!dedup_tab) dedup_tab = kith_xcalloc(DEDUP_SLOTS, sizeof *dedup_tab);
    dedup_slot *victim = NULL;
    for (unsigned i = 0; i < DEDUP_PROBE; i++) {
        dedup_slot *s = &dedup_tab[(h + i) & (DEDUP_SLOTS - 1)];
        if (s->hash == h && now - s->seen < window_ms) { /* keep the first-seen time */
            victim = NULL;
            break;
        }
        if (s->hash == 0 || now - s->seen >= window_ms) {
            victim = s;
            break;
        }
        if (!victim || s->seen < victim->seen) victim = s;
    }
    if (victim) *victim = (dedup_slot){h, now};
    pthread_mutex_unlock(&dedup_mu);
}

/* --- write keys --- */

static int b64val(int c)
{
    if (c >= 'A' && c <= 'Z') return c - 'A';
    if (c >= 'a' && c <= 'z') return c - 'a' + 26;
    if (c >= '0' && c <= '9') return c - '0' + 52;
    if (c == '+' || c == '-') return 62;
    if (c == '/' || c == '_') return 63;
    return -1;
}

/* The user part of "Authorization: Basic base64(user:password)" (owned), or NULL. */
static char *basic_auth_user(const char *h)
{
    if (!h || strncasecmp(h, "Basic ", 6) != 0) return NULL;
    h += 6;
    while (*h == ' ')
        h++;
    size_t n = strlen(h);
    if (n > 4096) return NULL;
    char *out = kith_xmalloc(n + 1);
    size_t o = 0;
    unsigned acc = 0;
    int bits = 0;
    for (size_t i = 0; i < n && h[i] != '='; i++) {
        int v = b64val((unsigned char)h[i]);
        if (v < 0) {
            free(out);
            return NULL;
        }
        acc = (acc << 6) | (unsigned)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out[o++] = (char)((acc >> bits) & 0xff);
        }
    }
    out[o] = 0;
    char *colon = memchr(out, ':', o);
    if (colon) *colon = 0;
    if (!*out || strlen(out) != (colon ? (size_t)(colon - out) : o)) {
        free(out);
        return NULL;
    }
    return out;
}

/* What a request needs of its connection, copied out of the catalog. */
typedef struct seg_source {
    uint32_t sandbox;
    char sandbox_name[KITH_SANDBOX_NAME_MAX + 1];
    char id[KITH_ID_LEN + 1];
    char profile_ds[KITH_ID_LEN + 1], event_ds[KITH_ID_LEN + 1];
    char user_ns[64], anon_ns[64];
    uint32_t user_ns_id;
    int64_t window_ms;
} seg_source;

static bool seg_source_find(kith_engine *e, const char *key, seg_source *s)
{
    bool ok = false;
    catalog_rdlock(e->cat);
    const cat_inlet *in = catalog_inlet_by_write_key(e->cat, key);
    const cat_sandbox *sb = in ? catalog_sandbox_by_id(e->cat, in->sandbox) : NULL;
    if (in && sb) {
        const json_t *d = in->doc;
        memset(s, 0, sizeof *s);
        s->sandbox = sb->id;
        snprintf(s->sandbox_name, sizeof s->sandbox_name, "%s", sb->name);
        snprintf(s->id, sizeof s->id, "%s", in->id);
        snprintf(s->profile_ds, sizeof s->profile_ds, "%s",
                 json_string_value(json_object_get(d, "profileDataset")) ?: "");
        snprintf(s->event_ds, sizeof s->event_ds, "%s",
                 json_string_value(json_object_get(d, "eventDataset")) ?: "");
        snprintf(s->user_ns, sizeof s->user_ns, "%s",
                 json_string_value(json_object_get(d, "userIdNamespace")) ?: "CRMID");
        snprintf(s->anon_ns, sizeof s->anon_ns, "%s",
                 json_string_value(json_object_get(d, "anonymousIdNamespace")) ?: "AnonymousId");
        json_t *w = json_object_get(d, "dedupWindowSeconds");
        s->window_ms = (json_is_integer(w) ? json_integer_value(w) : DEDUP_WINDOW_DEFAULT_S) * 1000;
        const cat_namespace *ns = catalog_namespace(e->cat, sb->id, s->user_ns);
        s->user_ns_id = ns ? ns->id : 0;
        ok = true;
    }
    catalog_unlock(e->cat);
    return ok;
}

/* --- the /v1 handlers --- */

typedef struct seg_ctx {
    ingest_job job;
    kith_req *r;
    int type;       /* the endpoint's message type; SEGMENT_NONE for a batch */
    char *auth_key; /* write key from Basic auth (owned) */
    char *query_key;
    jalloc_arena *arena;
    json_t *errors; /* {path, message} of rejected messages (arena) */
    size_t total, duplicates;
    uint64_t *hashes; /* per job message: its dedup hash, 0 when none */
    seg_source src;
    int64_t received;
} seg_ctx;

static void seg_cleanup(kith_req *r)
{
    seg_ctx *c = r->async;
    if (!c) return;
    for (size_t i = 0; i < c->job.n; i++)
        ingest_msg_clear(&c->job.msgs[i]);
    free(c->job.msgs);
    free(c->hashes);
    free(c->auth_key);
    free(c->query_key);
    jalloc_arena_free(c->arena);
    free(c);
    r->async = NULL;
}

static void seg_done(ingest_job *job, int rc)
{
    seg_ctx *c = job->user;
    http_resume(c->r);
}

static void seg_finish(kith_req *r)
{
    seg_ctx *c = r->async;
    int fail = 0;
    for (size_t i = 0; i < c->job.n; i++) {
        if (c->job.msgs[i].rc)
            fail = c->job.msgs[i].rc;
        else if (c->hashes[i])
            dedup_remember(c->hashes[i], c->received, c->src.window_ms);
    }
    if (fail) {
        /* Not the client's fault: 429/503 make every SDK retry (stored messages are idempotent). */
        http_error(r, fail, "the messages could not be stored; retry");
        if (r->status >= 500) r->retry_after = 1;
        return;
    }
    size_t nerr = json_array_size(c->errors);
    if (nerr) {
        size_t stored = c->job.n, rejected = c->total - stored - c->duplicates;
        http_problem(r, 400, "Invalid Segment message", json_incref(c->errors),
                     "%zu of %zu message%s rejected and not stored (%zu stored); fix the fields "
                     "named in errors",
                     rejected, c->total, c->total == 1 ? " was" : "s were", stored);
        return;
    }
    http_json(r, 200, json_pack("{s:b}", "success", 1));
}

/* Appends the validation errors of a mapped entity, with paths translated back to the message. */
static void seg_entity_errors(seg_ctx *c, json_t *perr, const char *prefix, bool is_event,
                              const char *message)
{
    size_t i;
    json_t *e;
    json_array_foreach(perr, i, e)
    {
        const char *p = json_string_value(json_object_get(e, "path"));
        char src[300], path[400];
        segment_source_path(p ? p : "", is_event, src, sizeof src);
        snprintf(path, sizeof path, "%s%s", prefix, src);
        const char *m = json_string_value(json_object_get(e, "message"));
        char msg[700];
        snprintf(msg, sizeof msg, "%s: %s (XDM %s)", message, m ? m : "invalid", p ? p : "");
        json_array_append_new(c->errors, json_pack("{s:s, s:s}", "path", kith_utf8_sanitize(path),
                                                   "message", kith_utf8_sanitize(msg)));
    }
}

/* Maps and validates message i (borrowed); true when it is ready for the writer. */
static bool seg_prepare_one(seg_ctx *c, json_t *msg, const char *prefix)
{
    kith_engine *e = c->r->e;
    char mbuf[32], ubuf[32], pbuf[32], fallback[33];
    const char *mid = segment_id_field(msg, "messageId", mbuf, sizeof mbuf);
    uint64_t h = 0;
    if (mid && c->src.window_ms > 0) {
        h = dedup_hash(c->src.sandbox, c->src.id, mid);
        if (dedup_seen(h, c->received, c->src.window_ms)) {
            c->duplicates++;
            return false;
        }
    }
    segment_map_opts o = {c->src.user_ns, c->src.anon_ns, NULL, NULL, c->received};
    if (!mid) {
        uint8_t rnd[16];
        kith_random(rnd, sizeof rnd);
        kith_hex(rnd, sizeof rnd, fallback);
        o.fallback_id = fallback;
    }
    int type = c->type;
    if (type == SEGMENT_NONE)
        type = segment_type_parse(json_string_value(json_object_get(msg, "type")));
    if (type == SEGMENT_ALIAS) {
        /* previousId is a former userId when the graph knows it as one, else an anonymous id. */
        const char *prev = segment_id_field(msg, "previousId", pbuf, sizeof pbuf);
        uint64_t id, cl;
        if (prev && c->src.user_ns_id &&
            identity_lookup(e, c->src.sandbox, c->src.user_ns_id, prev, strlen(prev), &id, &cl) ==
                0)
            o.previous_ns = c->src.user_ns;
    }
    (void)ubuf;
    json_t *entity = NULL;
    bool is_event = false;
    if (segment_map(msg, type, &o, prefix, &entity, &is_event, c->errors) != 0) {
        atomic_fetch_add(&e->m.messages_rejected, 1);
        atomic_fetch_add(&e->m.rejected_validation, 1);
        return false;
    }
    json_t *perr = json_array();
    const char *message = "Invalid XDM Message Format";
    ingest_msg *m = &c->job.msgs[c->job.n];
    int rc = ingest_prepare(e, c->src.sandbox, is_event ? c->src.event_ds : c->src.profile_ds, NULL,
                            entity, NULL, c->received, m, perr, &message);
    json_decref(entity);
    if (rc) {
        atomic_fetch_add(&e->m.messages_rejected, 1);
        atomic_fetch_add(rc == KITH_ETOOLARGE ? &e->m.rejected_limit : &e->m.rejected_validation,
                         1);
        seg_entity_errors(c, perr, prefix, is_event, message);
        json_decref(perr);
        return false;
    }
    json_decref(perr);
    c->hashes[c->job.n++] = h;
    return true;
}

/* Worker pool: parse, authenticate by write key, map, validate; the answer is set on r when nothing
 * goes to the writer. Returns true when the job was submitted. */
static bool seg_parse(kith_req *r, seg_ctx *c)
{
    kith_engine *e = r->e;
    if (r->body.len == 0) {
        http_problem(r, 400, "Bad Request", NULL,
                     "the request body is empty; a JSON document is expected");
        return false;
    }
    kjson_error err;
    json_t *body = kjson_parse(r->body.data, r->body.len, e->lim.json_depth, NULL, &err);
    if (!body) {
        http_problem(r, 400, "Malformed JSON", NULL, "malformed JSON at line %d, column %d: %s",
                     err.line, err.column, err.text);
        return false;
    }
    bool ok = false;
    const char *key = c->auth_key;
    if (!key) key = json_string_value(json_object_get(body, "writeKey"));
    if (!key || !*key) key = c->query_key;
    json_t *batch = json_object_get(body, "batch");
    if (!json_is_object(body)) {
        http_problem(r, 400, "Bad Request",
                     json_pack("[{s:s, s:s}]", "path", "", "message", "expected a JSON object"),
                     "the body must be a Segment message object");
    } else if (!key || !*key) {
        http_problem(
            r, 401, "Unauthorized", NULL,
            "a write key is required: HTTP Basic auth with the write key as the user name, "
            "\"writeKey\" in the body, or ?writeKey=");
    } else if (!seg_source_find(e, key, &c->src)) {
        http_problem(
            r, 401, "Unauthorized", NULL,
            "unknown write key (create one with POST /data/foundation/flowservice/connections "
            "{\"name\", \"type\": \"segment\"})");
    } else if (c->type == SEGMENT_NONE && !json_is_array(batch)) {
        http_problem(r, 400, "Bad Request",
                     json_pack("[{s:s, s:s}]", "path", "/batch", "message",
                               "required: an array of messages"),
                     "a batch is {\"batch\": [message, ...]}");
    } else if (c->type == SEGMENT_NONE && json_array_size(batch) > e->lim.batch_messages) {
        http_problem(r, 400, "Bad Request",
                     json_pack("[{s:s, s:s}]", "path", "/batch", "message", "too many messages"),
                     "the batch has %zu messages; the limit is %zu per request",
                     json_array_size(batch), e->lim.batch_messages);
    } else {
        ok = true;
    }
    if (!ok) {
        json_decref(body);
        return false;
    }
    r->sandbox_id = c->src.sandbox;
    snprintf(r->sandbox, sizeof r->sandbox, "%s", c->src.sandbox_name);
    size_t n = c->type == SEGMENT_NONE ? json_array_size(batch) : 1;
    c->total = n;
    c->errors = json_array();
    c->job.msgs = kith_xcalloc(n ? n : 1, sizeof *c->job.msgs);
    c->hashes = kith_xcalloc(n ? n : 1, sizeof *c->hashes);
    if (c->type != SEGMENT_NONE) {
        seg_prepare_one(c, body, "");
    } else {
        for (size_t i = 0; i < n; i++) {
            json_t *msg = json_array_get(batch, i);
            char prefix[32];
            snprintf(prefix, sizeof prefix, "/batch/%zu", i);
            segment_batch_defaults(msg, body);
            seg_prepare_one(c, msg, prefix);
        }
    }
    json_decref(body);
    if (c->job.n == 0) {
        seg_finish(r);
        return false;
    }
    int rc = ingest_submit(e, &c->job);
    if (rc == 0) return true;
    http_error(r, rc,
               rc == KITH_EBUSY ? "the ingest queue is full; retry after the indicated delay"
                                : "the messages could not be queued");
    return false;
}

static void seg_work(void *arg)
{
    kith_req *r = arg;
    seg_ctx *c = r->async;
    jalloc_arena_enter(&c->arena);
    bool submitted = seg_parse(r, c);
    jalloc_arena_leave();
    if (submitted) return;
    r->finish = NULL;
    http_resume(r);
}

static int seg_offload(kith_req *r)
{
    int rc = http_offload(r, seg_work, r);
    if (rc == KITH_EBUSY)
        http_error(r, KITH_EBUSY,
                   "too many ingest requests are being validated; retry after the "
                   "indicated delay");
    return rc;
}

static int seg_start(kith_req *r, int type)
{
    r->cors = true;
    if (r->method == M_OPTIONS) {
        r->status = 204;
        return 0;
    }
    seg_ctx *c = kith_xcalloc(1, sizeof *c);
    c->r = r;
    c->type = type;
    c->received = kith_now_ms();
    c->auth_key = basic_auth_user(http_header(r, "Authorization"));
    const char *q = http_query(r, "writeKey");
    if (q && *q) c->query_key = kith_xstrdup(q);
    c->job.done = seg_done;
    c->job.user = c;
    r->async = c;
    r->cleanup = seg_cleanup;
    r->submit = seg_offload;
    r->finish = seg_finish;
    return HTTP_PENDING;
}

int h_segment_batch(kith_req *r)
{
    return seg_start(r, SEGMENT_NONE);
}
int h_segment_identify(kith_req *r)
{
    return seg_start(r, SEGMENT_IDENTIFY);
}
int h_segment_track(kith_req *r)
{
    return seg_start(r, SEGMENT_TRACK);
}
int h_segment_page(kith_req *r)
{
    return seg_start(r, SEGMENT_PAGE);
}
int h_segment_screen(kith_req *r)
{
    return seg_start(r, SEGMENT_SCREEN);
}
int h_segment_group(kith_req *r)
{
    return seg_start(r, SEGMENT_GROUP);
}
int h_segment_alias(kith_req *r)
{
    return seg_start(r, SEGMENT_ALIAS);
}

/* --- Segment-type connections --- */

/* The built-in schema of a Segment source (one per sandbox, shared by its Segment connections): XDM
 * field groups for the mapped fields plus an open _segment object for everything else. */
static json_t *segment_schema_doc(bool event)
{
    const char *id = event ? SEGMENT_EVENT_SCHEMA : SEGMENT_PROFILE_SCHEMA;
    json_t *segment =
        json_pack("{s:{s:s, s:s, s:b}}", "_segment", "type", "object", "description",
                  "Segment fields kith does not map to XDM (kith)", "additionalProperties", 1);
    json_t *all_of =
        event ? json_pack("[{s:s}, {s:s}, {s:s}, {s:s}, {s:o}]", "$ref",
                          "https://ns.adobe.com/xdm/context/identitymap", "$ref",
                          "https://ns.adobe.com/xdm/context/experienceevent-commerce", "$ref",
                          "https://ns.adobe.com/xdm/context/experienceevent-web", "$ref",
                          "https://ns.adobe.com/xdm/context/experienceevent-environment-details",
                          "properties", segment)
              : json_pack("[{s:s}, {s:s}, {s:s}, {s:s}, {s:o}]", "$ref",
                          "https://ns.adobe.com/xdm/context/profile-person-details", "$ref",
                          "https://ns.adobe.com/xdm/context/profile-personal-details", "$ref",
                          "https://ns.adobe.com/xdm/context/identitymap", "$ref",
                          "https://ns.adobe.com/xdm/common/external-source-system-audit-details",
                          "properties", segment);
    char alt[160];
    snprintf(alt, sizeof alt, "_kith.schemas.%s", strrchr(id, '/') + 1);
    json_int_t now = (json_int_t)kith_now_ms();
    return json_pack(
        "{s:s, s:s, s:s, s:s, s:s, s:o, s:[s], s:s, s:s, s:{s:I, s:I}}", "$id", id, "meta:altId",
        alt, "title", event ? "Segment events (kith)" : "Segment profiles (kith)", "type", "object",
        "meta:class", event ? SCHEMA_CLASS_EVENT_ID : SCHEMA_CLASS_PROFILE_ID, "allOf", all_of,
        "meta:immutableTags", "union", "version", "1.0", "meta:tenantNamespace", "_kith",
        "meta:registryMetadata", "repo:createdDate", now, "repo:lastModifiedDate", now);
}

struct seg_setup {
    kith_engine *e;
    uint32_t sandbox;
    json_t *schema[2];
    kith_schema *compiled[2];
    json_t *dataset[2];
    json_t *inlet;
};

static int seg_setup_fn(void *ctx, store_batch *b)
{
    struct seg_setup *s = ctx;
    int rc = 0;
    for (int i = 0; i < 2 && !rc; i++)
        if (s->schema[i]) {
            rc = catalog_put_schema(s->e->cat, b, s->sandbox, json_incref(s->schema[i]),
                                    s->compiled[i]);
            s->compiled[i] = NULL; /* taken */
        }
    for (int i = 0; i < 2 && !rc; i++)
        if (s->dataset[i])
            rc = catalog_put_dataset(s->e->cat, b, s->sandbox, json_incref(s->dataset[i]));
    if (!rc) rc = catalog_put_inlet(s->e->cat, b, s->sandbox, json_incref(s->inlet));
    return rc;
}

static void err_add(json_t *errors, const char *path, const char *msg)
{
    char p2[512], m2[1024];
    snprintf(p2, sizeof p2, "%s", path);
    snprintf(m2, sizeof m2, "%s", msg);
    json_array_append_new(errors, json_pack("{s:s, s:s}", "path", kith_utf8_sanitize(p2), "message",
                                            kith_utf8_sanitize(m2)));
}

/* An existing dataset of the sandbox whose schema has class cls; appends an error otherwise. */
static void check_dataset(kith_req *r, const char *id, schema_class cls, const char *path,
                          json_t *errors)
{
    catalog_rdlock(r->e->cat);
    const cat_dataset *d = catalog_dataset(r->e->cat, r->sandbox_id, id);
    const cat_schema *s = d ? catalog_schema(r->e->cat, r->sandbox_id, d->schema_id) : NULL;
    bool exists = d != NULL, right = s && s->cls == cls;
    catalog_unlock(r->e->cat);
    if (!exists)
        err_add(errors, path, "unknown dataset in this sandbox");
    else if (!right)
        err_add(errors, path,
                cls == SCHEMA_CLASS_EVENT
                    ? "the dataset's schema must be of the ExperienceEvent class"
                    : "the dataset's schema must be of the Profile class");
}

int segment_connection_create(kith_req *r, json_t *body);
int segment_connection_create(kith_req *r, json_t *body)
{
    json_t *errors = json_array();
    const char *name = json_string_value(json_object_get(body, "name"));
    if (!name || !*name || strlen(name) > 256)
        err_add(errors, "/name", "required string of 1 to 256 characters");
    const char *pds = json_string_value(json_object_get(body, "profileDataset"));
    const char *eds = json_string_value(json_object_get(body, "eventDataset"));
    if (json_object_get(body, "profileDataset") && !pds)
        err_add(errors, "/profileDataset", "must be a dataset id");
    if (json_object_get(body, "eventDataset") && !eds)
        err_add(errors, "/eventDataset", "must be a dataset id");
    if (pds) check_dataset(r, pds, SCHEMA_CLASS_PROFILE, "/profileDataset", errors);
    if (eds) check_dataset(r, eds, SCHEMA_CLASS_EVENT, "/eventDataset", errors);
    const char *nsf[2] = {"userIdNamespace", "anonymousIdNamespace"};
    const char *nsdef[2] = {"CRMID", "AnonymousId"};
    char ns[2][64];
    for (int i = 0; i < 2; i++) {
        json_t *v = json_object_get(body, nsf[i]);
        const char *code = v ? json_string_value(v) : nsdef[i];
        char path[64];
        snprintf(path, sizeof path, "/%s", nsf[i]);
        catalog_rdlock(r->e->cat);
        const cat_namespace *n = code ? catalog_namespace(r->e->cat, r->sandbox_id, code) : NULL;
        if (n) snprintf(ns[i], sizeof ns[i], "%s", n->code);
        catalog_unlock(r->e->cat);
        if (!n)
            err_add(errors, path,
                    "unknown identity namespace (see GET /data/core/idnamespace/identities)");
    }
    json_t *win = json_object_get(body, "dedupWindowSeconds");
    if (win && (!json_is_integer(win) || json_integer_value(win) < 0 ||
                json_integer_value(win) > DEDUP_WINDOW_MAX_S))
        err_add(errors, "/dedupWindowSeconds",
                "an integer of seconds from 0 (no deduplication) to 2592000 (30 days)");
    if (json_array_size(errors)) {
        http_problem(r, 400, "Invalid connection", errors,
                     "the Segment connection definition is invalid");
        return 0;
    }
    json_decref(errors);

    struct seg_setup s = {.e = r->e, .sandbox = r->sandbox_id};
    for (int i = 0; i < 2; i++) {
        bool event = i == 1;
        if (event ? eds : pds) continue;
        catalog_rdlock(r->e->cat);
        bool have = catalog_schema(r->e->cat, r->sandbox_id,
                                   event ? SEGMENT_EVENT_SCHEMA : SEGMENT_PROFILE_SCHEMA) != NULL;
        catalog_unlock(r->e->cat);
        if (!have) {
            s.schema[i] = segment_schema_doc(event);
            json_t *cerr = json_array();
            if (schema_compile(s.schema[i], &s.compiled[i], cerr) != 0) {
                char *t = kith_json_dumps(cerr, JSON_COMPACT);
                kith_log(KITH_LOG_ERROR, "segment", "built-in schema does not compile: %s", t);
                free(t);
                json_decref(cerr);
                http_problem(r, 500, "Internal Server Error", NULL,
                             "the built-in Segment schema does not compile");
                goto out;
            }
            json_decref(cerr);
        }
        char id[KITH_ID_LEN + 1], dsname[300];
        catalog_new_id(id);
        snprintf(dsname, sizeof dsname, "%s (Segment %s)", name, event ? "events" : "profiles");
        json_int_t now = (json_int_t)kith_now_ms();
        s.dataset[i] = json_pack(
            "{s:s, s:s, s:{s:s, s:s}, s:{s:[s], s:[s]}, s:I, s:I}", "id", id, "name", dsname,
            "schemaRef", "id", event ? SEGMENT_EVENT_SCHEMA : SEGMENT_PROFILE_SCHEMA, "contentType",
            "application/vnd.adobe.xed-full+json;version=1", "tags", "unifiedProfile",
            "enabled:true", "unifiedIdentity", "enabled:true", "created", now, "updated", now);
    }
    char id[KITH_ID_LEN + 1], in1[KITH_ID_LEN + 1], in2[KITH_ID_LEN + 1],
        inlet[2 * KITH_ID_LEN + 1];
    char url[128], key[33];
    catalog_new_id(id);
    catalog_new_id(in1);
    catalog_new_id(in2);
    snprintf(inlet, sizeof inlet, "%s%s", in1, in2);
    snprintf(url, sizeof url, "/collection/%s", inlet);
    uint8_t rnd[16];
    kith_random(rnd, sizeof rnd);
    kith_hex(rnd, sizeof rnd, key);
    json_int_t now = (json_int_t)kith_now_ms();
    const char *pid = pds ? pds : json_string_value(json_object_get(s.dataset[0], "id"));
    const char *eid = eds ? eds : json_string_value(json_object_get(s.dataset[1], "id"));
    s.inlet = json_pack(
        "{s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:s, s:I, s:b, s:s, s:I, s:I}", "id", id,
        "name", name, "type", "segment", "writeKey", key, "profileDataset", pid, "eventDataset",
        eid, "userIdNamespace", ns[0], "anonymousIdNamespace", ns[1], "inletId", inlet, "inletUrl",
        url, "dedupWindowSeconds",
        win ? json_integer_value(win) : (json_int_t)DEDUP_WINDOW_DEFAULT_S,
        "authenticationRequired", 0, "sandboxName", r->sandbox, "createdAt", now, "updatedAt", now);
    int rc = apply_call(r->e->apply, seg_setup_fn, &s, false);
    if (rc)
        http_error(r, rc, "the Segment connection could not be stored");
    else
        http_json(r, 201, json_incref(s.inlet));
out:
    for (int i = 0; i < 2; i++) {
        json_decref(s.schema[i]);
        json_decref(s.dataset[i]);
        if (s.compiled[i]) schema_free(s.compiled[i]);
    }
    json_decref(s.inlet);
    return 0;
}
