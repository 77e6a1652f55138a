/* kith ingest: envelope → validated message → apply (see include/kith/ingest.h). */
#include "kith/jalloc.h"
#include "kith/ingest.h"

#include <ctype.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "kith/ca.h"
#include "kith/schema.h"

void ingest_msg_clear(ingest_msg *m)
{
    free(m->event_id);
    free(m->json);
    for (int i = 0; i < m->nids; i++) free((char *)m->ids[i].value);
    memset(m, 0, sizeof *m);
}

static void add_error(json_t *errors, const char *path, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void add_error(json_t *errors, const char *path, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    char p2[512];
    snprintf(p2, sizeof p2, "%s", path);
    /* Messages quote input and may have been cut inside a UTF-8 sequence. */
    json_array_append_new(errors, json_pack("{s:s, s:s}", "path", kith_utf8_sanitize(p2), "message",
                                            kith_utf8_sanitize(msg)));
}

/* Values that identify nobody; AEP blocks them from the graph. */
static bool junk_value(const char *v)
{
    static const char *junk[] = {"", "null", "anonymous", "invalid", "undefined", "unknown"};
    for (size_t i = 0; i < sizeof junk / sizeof junk[0]; i++)
        if (strcasecmp(v, junk[i]) == 0) return true;
    return false;
}

static bool valid_ecid(const char *v)
{
    size_t n = strlen(v);
    if (n != 38) return false;
    for (size_t i = 0; i < n; i++)
        if (!isdigit((unsigned char)v[i])) return false;
    return true;
}

int ingest_prepare(kith_engine *e, uint32_t sandbox, const char *dataset_id, const char *schema_ref,
                   json_t *entity, const ingest_source *src, int64_t received, ingest_msg *out,
                   json_t *errors, const char **message)
{
    memset(out, 0, sizeof *out);
    out->sandbox = sandbox;
    out->received = received;
    if (!json_is_object(entity)) {
        add_error(errors, "", "the entity must be a JSON object");
        *message = "Invalid XDM Message Format";
        return KITH_EINVAL;
    }
    catalog_rdlock(e->cat);
    const cat_dataset *ds = catalog_dataset(e->cat, sandbox, dataset_id ? dataset_id : "");
    const cat_schema *sc = ds ? catalog_schema(e->cat, sandbox, ds->schema_id) : NULL;
    int rc = 0;
    if (!ds) {
        add_error(errors, "/header/datasetId", "unknown dataset \"%s\" in this sandbox",
                  dataset_id ? dataset_id : "");
        *message = "Unknown dataset";
        rc = KITH_EINVAL;
    } else if (!sc || !sc->compiled) {
        add_error(errors, "/header/datasetId", "the schema of dataset %s is missing", ds->id);
        *message = "Unknown schema";
        rc = KITH_EINVAL;
    } else if (schema_ref && strcmp(schema_ref, sc->id) != 0 && strcmp(schema_ref, sc->altid) != 0) {
        add_error(errors, "/header/schemaRef/id",
                  "schema \"%s\" is not the schema of dataset %s (expected \"%s\")", schema_ref,
                  ds->id, sc->id);
        *message = "Schema does not match the dataset";
        rc = KITH_EINVAL;
    }
    if (rc) {
        catalog_unlock(e->cat);
        return rc;
    }
    kith_schema *schema = sc->compiled; /* lives until catalog_free */
    snprintf(out->dataset, sizeof out->dataset, "%s", ds->id);
    out->is_event = sc->cls == SCHEMA_CLASS_EVENT;
    out->to_profile = ds->profile_enabled;
    out->to_identity = ds->identity_enabled;
    catalog_unlock(e->cat);

    schema_limits lim = {e->lim.max_identities, e->lim.max_identity_len, 20, e->lim.json_depth};
    if (schema_validate(schema, entity, &lim, errors) > 0) {
        *message = "Invalid XDM Message Format";
        return KITH_EINVAL;
    }
    schema_identity ids[INGEST_MAX_IDS];
    int n = schema_extract_identities(schema, entity, &lim, ids, INGEST_MAX_IDS, errors);
    if (n < 0) {
        *message = "Invalid identities";
        return KITH_EINVAL;
    }
    catalog_rdlock(e->cat);
    for (int i = 0; i < n; i++) {
        const cat_namespace *ns = catalog_namespace(e->cat, sandbox, ids[i].ns);
        if (!ns) {
            add_error(errors, ids[i].path,
                      "unknown identity namespace \"%s\" (create it with POST "
                      "/data/core/idnamespace/identities)",
                      ids[i].ns);
            rc = KITH_EINVAL;
            continue;
        }
        if (strcmp(ns->code, "ECID") == 0 && !valid_ecid(ids[i].value) && !junk_value(ids[i].value)) {
            add_error(errors, ids[i].path,
                      "\"%.40s\" is not an ECID: an ECID is exactly 38 digits", ids[i].value);
            rc = KITH_EINVAL;
            continue;
        }
        ident_in *d = &out->ids[out->nids++];
        d->ns = ns->id;
        d->type = ns->type;
        d->primary = ids[i].primary;
        d->len = strlen(ids[i].value);
        d->value = kith_xstrndup(ids[i].value, d->len);
        d->linkable = ns->type != NS_NON_PEOPLE && !junk_value(ids[i].value);
    }
    catalog_unlock(e->cat);
    if (rc) {
        *message = "Invalid identities";
        ingest_msg_clear(out);
        return rc;
    }
    if (out->is_event) {
        const char *ts = json_string_value(json_object_get(entity, "timestamp"));
        const char *id = json_string_value(json_object_get(entity, "_id"));
        if (!ts || kith_time_parse(ts, &out->ts) != 0) {
            add_error(errors, "/timestamp", "not a valid date-time (RFC 3339)");
            rc = KITH_EINVAL;
        } else if (!id || !*id || strlen(id) > 512) {
            add_error(errors, "/_id", "an event needs a non-empty \"_id\" of at most 512 bytes");
            rc = KITH_EINVAL;
        } else {
            out->event_id = kith_xstrdup(id);
        }
    } else {
        out->ts = received;
        const char *lud = json_string_value(
            json_object_get(json_object_get(entity, "extSourceSystemAudit"), "lastUpdatedDate"));
        int64_t t;
        if (lud && kith_time_parse(lud, &t) == 0) out->ts = t;
        /* A record's own _id, when it has one, is the provenance of the links it makes (explain). */
        const char *rid = json_string_value(json_object_get(entity, "_id"));
        if (rid && *rid && strlen(rid) <= 512) out->event_id = kith_xstrdup(rid);
    }
    if (rc) {
        *message = "Invalid XDM Message Format";
        ingest_msg_clear(out);
        return rc;
    }
    size_t a, b;
    if (src && kjson_span_find(src->spans, entity, &a, &b) == 0) {
        out->json = kith_xstrndup(src->buf + a, b - a);
        out->json_len = b - a;
    } else {
        out->json = kith_json_dumps(entity, JSON_COMPACT);
        out->json_len = out->json ? strlen(out->json) : 0;
    }
    size_t max = out->is_event ? e->lim.event_max : e->lim.record_max;
    if (!out->json || out->json_len > max) {
        add_error(errors, "", "%s is %zu bytes; the limit is %zu bytes",
                  out->is_event ? "the event" : "the record", out->json_len, max);
        *message = "Message too large";
        ingest_msg_clear(out);
        return KITH_ETOOLARGE;
    }
    return 0;
}

int ingest_prepare_envelope(kith_engine *e, uint32_t sandbox, json_t *envelope,
                            const ingest_source *src, int64_t received, ingest_msg *out,
                            json_t *errors, const char **message)
{
    memset(out, 0, sizeof *out);
    json_t *header = json_object_get(envelope, "header");
    json_t *body = json_object_get(envelope, "body");
    *message = "Invalid message envelope";
    if (!json_is_object(envelope)) {
        add_error(errors, "", "a message must be an object with \"header\" and \"body\"");
        return KITH_EINVAL;
    }
    if (!json_is_object(header)) {
        add_error(errors, "/header", "missing \"header\" object");
        return KITH_EINVAL;
    }
    const char *dataset = json_string_value(json_object_get(header, "datasetId"));
    if (!dataset) {
        add_error(errors, "/header/datasetId", "missing \"datasetId\" string");
        return KITH_EINVAL;
    }
    const char *schema_ref =
        json_string_value(json_object_get(json_object_get(header, "schemaRef"), "id"));
    if (!schema_ref) {
        add_error(errors, "/header/schemaRef/id", "missing \"schemaRef.id\" string");
        return KITH_EINVAL;
    }
    if (!json_is_object(body)) {
        add_error(errors, "/body", "missing \"body\" object");
        return KITH_EINVAL;
    }
    json_t *entity = json_object_get(body, "xdmEntity");
    if (!json_is_object(entity)) {
        add_error(errors, "/body/xdmEntity", "missing \"xdmEntity\" object");
        return KITH_EINVAL;
    }
    /* Paths from validation point into the entity (API.md: "/person/name/firstName"). */
    return ingest_prepare(e, sandbox, dataset, schema_ref, entity, src, received, out, errors,
                          message);
}

/* Dedup keys in flight. An event's dedup entry is a blind append, like the event, written by the
 * syncer in the same RocksDB write (so neither is stored without the other): the writer spends no time
 * indexing or inserting it. Until the syncer has written a group's appends, its keys are only here,
 * so a resend in the same group or in the next ones is still found. An entry counts while its group
 * is after the syncer's mark (apply_blind_written): past it, the key is in the store — or was deleted
 * since by an exclusive operation (a dataset delete), which runs after every earlier group was
 * written, so a stale entry here can never hide the deletion. Entries go at the group's end
 * (ingest_group_end) once written, or when their group fails (ingest_group_failed). Apply thread. */
#define PENDING_BUCKETS (1u << 16)
typedef struct pending_key {
    struct pending_key *next, **pprev; /* hash chain */
    struct pending_key *older, *newer; /* age list */
    uint64_t hash, group;
    size_t klen;
    uint8_t key[];
} pending_key;
struct ingest_state {
    pending_key *bucket[PENDING_BUCKETS];
    pending_key *oldest, *newest;
    size_t n;
};

static struct ingest_state *ingest_state(kith_engine *e)
{
    if (!e->ingest) e->ingest = kith_xcalloc(1, sizeof *e->ingest);
    return e->ingest;
}

static bool pending_has(kith_engine *e, const uint8_t *key, size_t klen, uint64_t h)
{
    struct ingest_state *st = ingest_state(e);
    if (!st->n) return false;
    uint64_t mark = apply_blind_written(e->apply);
    for (pending_key *p = st->bucket[h & (PENDING_BUCKETS - 1)]; p && p->group > mark; p = p->next)
        if (p->hash == h && p->klen == klen && memcmp(p->key, key, klen) == 0) return true;
    return false;
}

static void pending_add(kith_engine *e, const uint8_t *key, size_t klen, uint64_t h)
{
    struct ingest_state *st = ingest_state(e);
    pending_key *p = kith_xmalloc(sizeof *p + klen);
    p->hash = h;
    p->group = apply_group_number(e->apply);
    p->klen = klen;
    memcpy(p->key, key, klen);
    pending_key **bk = &st->bucket[h & (PENDING_BUCKETS - 1)];
    p->next = *bk; /* chains stay newest first: every entry is of the newest group */
    if (p->next) p->next->pprev = &p->next;
    p->pprev = bk;
    *bk = p;
    p->newer = NULL;
    p->older = st->newest;
    if (st->newest) st->newest->newer = p;
    else st->oldest = p;
    st->newest = p;
    st->n++;
}

static void pending_drop(struct ingest_state *st, pending_key *p)
{
    *p->pprev = p->next;
    if (p->next) p->next->pprev = p->pprev;
    if (p->older) p->older->newer = p->newer;
    else st->oldest = p->newer;
    if (p->newer) p->newer->older = p->older;
    else st->newest = p->older;
    st->n--;
    free(p);
}

void ingest_group_end(kith_engine *e)
{
    struct ingest_state *st = e->ingest;
    if (!st || !st->n) return;
    uint64_t mark = apply_blind_written(e->apply);
    while (st->oldest && st->oldest->group <= mark)
        pending_drop(st, st->oldest);
}

void ingest_group_failed(kith_engine *e, uint64_t group)
{
    struct ingest_state *st = e->ingest;
    while (st && st->newest && st->newest->group == group)
        pending_drop(st, st->newest);
}

void ingest_state_free(kith_engine *e)
{
    struct ingest_state *st = e ? e->ingest : NULL;
    if (!st) return;
    while (st->oldest)
        pending_drop(st, st->oldest);
    free(st);
    e->ingest = NULL;
}

/* The dedup value: the first copy's timestamp, arrival, identity it is stored under, and the engine
 * run and group that wrote it (entries written before these last three were kept are 16 bytes). */
#define DEDUP_VALUE_LEN 40

/* Whether the first copy of an event, whose dedup entry is seen, is stored or on its way. The dedup
 * key is committed by the writer, the event itself by the syncer's blind append right after it; a
 * process killed between the two leaves the key without the event, and the resend — never
 * acknowledged the first time — must be stored, not dropped as a duplicate. So: a first copy whose
 * group's blind appends are not written yet (same run) is on its way; otherwise it is kept exactly
 * when its event key is in the store. */
static bool dedup_first_copy_kept(kith_engine *e, const ingest_msg *m, const kith_buf *seen)
{
    if (seen->len < DEDUP_VALUE_LEN) return true;
    const uint8_t *v = (const uint8_t *)seen->data;
    uint64_t epoch = kith_get_be64(v + 24), group = kith_get_be64(v + 32);
    if (epoch == e->epoch && group > apply_blind_written(e->apply)) return true;
    store_key ek;
    profile_event_key(&ek, m->sandbox, kith_get_be64(v + 16), (int64_t)kith_get_be64(v),
                      m->event_id);
    kith_buf ev = {0};
    int rc = store_get(e->store, STORE_CF_EVENT, ek.b, ek.n, &ev);
    kith_buf_free(&ev);
    return rc != KITH_ENOTFOUND;
}

int ingest_apply_msg(kith_engine *e, store_batch *b, ingest_msg *m)
{
    uint64_t ids[INGEST_MAX_IDS], cluster = 0;
    int primary = 0;
    for (int i = 0; i < m->nids; i++)
        if (m->ids[i].primary) primary = i;
    int rc = identity_apply(e, b, m->sandbox, m->ids, m->nids, m->to_identity && m->nids > 1,
                            m->dataset, m->event_id, m->received, ids, &cluster);
    if (rc) return rc;
    if (m->is_event) {
        /* Idempotency: an event is identified by (dataset, _id); a resend — whatever its timestamp —
         * is acknowledged and not stored again. The dedup CF remembers where the first one went. */
        int under = identity_event_primary(e, m->sandbox, m->ids, m->nids, primary);
        store_key dk;
        skey_init(&dk, m->sandbox);
        skey_bytes(&dk, m->dataset, KITH_ID_LEN);
        skey_bytes(&dk, m->event_id, strlen(m->event_id));
        uint64_t dh = kith_hash64(dk.b, dk.n, 0);
        bool dup = pending_has(e, dk.b, dk.n, dh);
        int drc = 0;
        if (!dup) { /* not in flight: the store (committed) */
            kith_buf seen = {0};
            drc = store_get(e->store, STORE_CF_DEDUP, dk.b, dk.n, &seen);
            dup = drc == 0 && dedup_first_copy_kept(e, m, &seen);
            kith_buf_free(&seen);
        }
        if (dup) {
            atomic_fetch_add(&e->m.events_duplicate, 1);
            return 0;
        }
        if (drc != 0 && drc != KITH_ENOTFOUND) return drc;
        uint8_t where[DEDUP_VALUE_LEN];
        kith_put_be64(where, (uint64_t)m->ts);
        kith_put_be64(where + 8, (uint64_t)m->received);
        kith_put_be64(where + 16, ids[under]);
        kith_put_be64(where + 24, e->epoch);
        kith_put_be64(where + 32, apply_group_number(e->apply));
        /* Events go under their highest-priority identity when the linking rules name a priority. */
        rc = profile_put_event(e, b, m->sandbox, ids[under], m->dataset, m->ts, m->event_id,
                               m->received, m->json, m->json_len);
        if (rc == 0) {
            /* In the event's write (blind, by the syncer); nothing after this fails, so no
             * savepoint rollback has to take it back from the keys in flight. */
            store_batch_put_blind(b, STORE_CF_DEDUP, dk.b, dk.n, where, sizeof where);
            pending_add(e, dk.b, dk.n, dh); /* streaming segmentation (src/segment/svc_stream.c), computed attributes */
            segsvc_note_apply(e, m->sandbox, cluster, ids[under], m->dataset, true, m->ts,
                              m->event_id, m->json, m->json_len);
            ca_note_event(e, b, m->sandbox, cluster, ids[under], m->dataset, m->ts, m->event_id,
                          m->json, m->json_len);
        }
        atomic_fetch_add(&e->m.events_ingested, 1);
    } else if (m->to_profile) {
        rc = profile_put_fragment(e, b, m->sandbox, ids[primary], m->dataset, m->ts, m->received,
                                  m->json, m->json_len, cluster);
        if (rc == 0)
            segsvc_note_apply(e, m->sandbox, cluster, 0, m->dataset, false, 0, NULL, NULL, 0);
        atomic_fetch_add(&e->m.records_ingested, 1);
    } else {
        atomic_fetch_add(&e->m.records_ingested, 1);
    }
    return rc;
}

static int job_fn(void *ctx, store_batch *b)
{
    ingest_job *job = ctx;
    for (size_t i = 0; i < job->n; i++) {
        ingest_msg *m = &job->msgs[i];
        if (m->rc) continue; /* rejected at validation */
        store_batch_savepoint(b);
        m->rc = ingest_apply_msg(job->e, b, m);
        if (m->rc) {
            store_batch_rollback(b);
            identity_cache_reset(job->e);
        }
    }
    return 0;
}

static void job_done(void *ctx, int rc)
{
    ingest_job *job = ctx;
    if (rc)
        for (size_t i = 0; i < job->n; i++)
            if (!job->msgs[i].rc) job->msgs[i].rc = rc;
    job->done(job, rc);
}

int ingest_submit(kith_engine *e, ingest_job *job)
{
    job->e = e;
    job->op = (apply_op){.fn = job_fn, .done = job_done, .ctx = job, .weight = job->n ? job->n : 1};
    return apply_submit(e->apply, &job->op);
}

int ingest_run(kith_engine *e, ingest_msg *msgs, size_t n)
{
    ingest_job job = {.e = e, .msgs = msgs, .n = n};
    return apply_call(e->apply, job_fn, &job, false);
}
