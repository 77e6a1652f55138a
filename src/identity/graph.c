/* kith identity graph: identities, clusters (connected components) and edges with provenance.
 *
 * ident   [sb][ns u32][value]        → [identity id u64][cluster id u64][first seen i64][last seen
 * i64] node    [sb][identity id u64]      → [ns u32][len u16][value][n u16]{[other id u64][first
 * i64][last i64][dataset 24]} cluster [sb][cluster id u64]       → [version u64][n u32]{[identity
 * id u64][ns u32][len u16][value]}
 *
 * Fragments and events are keyed by identity id, so merging two clusters rewrites only the cluster
 * records and the ident entries of the smaller side; no data moves. Union by size keeps that cheap.
 */
#include <stdlib.h>
#include <string.h>

#include "kith/engine.h"
#include "cache.h"
#include "identity_int.h"

#define IDENT_VAL_LEN 32
#define HIST_MAX 10                /* cluster history entries kept per identity */
#define REC_MAX 64                 /* record id bytes kept per edge */
#define REMOVED_MAX 32             /* removed links kept per identity */
#define MAX_EDGES 256              /* edges per identity */
#define EDGE_REFRESH_US 60000000LL /* an edge's last-seen is rewritten at most once a minute */

void cluster_members_free(cluster_members *m)
{
    for (size_t i = 0; i < m->n; i++)
        free(m->v[i].value);
    free(m->v);
    m->v = NULL;
    m->n = 0;
}

static void ident_key(store_key *k, uint32_t sb, uint32_t ns, const char *v, size_t len)
{
    skey_init(k, sb);
    skey_u32(k, ns);
    skey_bytes(k, v, len);
}

static void id_key(store_key *k, uint32_t sb, uint64_t id)
{
    skey_init(k, sb);
    skey_u64(k, id);
}

/* --- the writer's reads and writes of the graph's keys (ident, node, cluster).
 *
 * Reads go through the writer's cache (cache.h), so a key is read from the store at most once. Writes
 * go to the cache and to the group's write log. At the end of the group (identity_flush_group) the
 * write log is handed over twice:
 *
 *  - as ONE record of the identity log (STORE_CF_IDLOG, key: a sequence number), a put in the
 *    batch's tail, so it is written atomically with the group's indexed part (sequence marks,
 *    fragments) and WAL-synced with it: the durable record of the group's graph changes;
 *  - to the syncer thread (identity_blind_fill, through apply_set_blind_fill), which adds the keys
 *    themselves plus the log record's delete to the group's blind part; the blind write sorts them
 *    and keeps one write per key however often the group changed it (a person's node and cluster
 *    are written once per group), before the WAL sync that acknowledges the group.
 *
 * So the writer thread inserts one memtable entry per group for the graph instead of ~4 per link;
 * the syncer materialises the keys while the writer prepares the next group. A crash between the two
 * writes leaves the log record behind: identity_log_replay, at start-up, writes the keys of every log
 * record left (in key order, each with its delete) before anything else runs. Readers on other
 * threads read the committed keys: a group's graph becomes visible with its blind part, before its
 * acknowledgement. The writer itself reads its cache; after the cache was dropped (full, a rollback,
 * a failed group) it waits for the blind parts in flight before its first read from the store.
 * Nothing reads the graph's keys through the batch. A rolled-back savepoint truncates the write
 * log; the cache is then rebuilt from the store plus what the log still holds (dropped, then the log
 * replayed into it). b NULL: a committed read, any thread. */

#define WCACHE_DEFAULT_BYTES (2ull << 30)

static kv_cache *wcache(kith_engine *e)
{
    struct ident_state *s = ident_state_get(e);
    if (!s->kv)
        s->kv = kv_cache_new(e->lim.ident_cache_bytes ? e->lim.ident_cache_bytes
                                                      : WCACHE_DEFAULT_BYTES);
    return s->kv;
}

static int gread(kith_engine *e, store_batch *b, int cf, const store_key *k, kith_buf *v)
{
    if (!b) return store_get(e->store, cf, k->b, k->n, v);
    kv_cache *c = wcache(e);
    const kv_ent *h = kv_cache_get(c, cf, k->b, k->n);
    if (h) {
        if (h->absent) return KITH_ENOTFOUND;
        v->len = 0;
        kith_buf_append(v, kv_val(h), h->vlen);
        return 0;
    }
    struct ident_state *s = e->ident;
    if (s->stale) { /* the cache was dropped: earlier groups' keys may still be on their way */
        if (e->apply && apply_on_thread(e->apply)) apply_wait_blind(e->apply);
        s->stale = false;
    }
    /* Graph keys are never in the batch's index (the log goes to its tail, the keys to the blind
     * part): a committed read. */
    int rc = store_get(e->store, cf, k->b, k->n, v);
    if (rc == 0) kv_cache_put(c, cf, k->b, k->n, v->data, v->len);
    else if (rc == KITH_ENOTFOUND) kv_cache_put(c, cf, k->b, k->n, NULL, 0);
    return rc;
}

/* Write log entry: [cf u8][absent u8][klen u16][vlen u32][key][value]. */
#define WLOG_HDR 8

static void wlog_append(struct ident_state *s, int cf, const store_key *k, const void *v,
                        size_t len)
{
    uint8_t h[WLOG_HDR];
    h[0] = (uint8_t)cf;
    h[1] = v == NULL;
    h[2] = (uint8_t)(k->n >> 8);
    h[3] = (uint8_t)k->n;
    kith_put_be32(h + 4, (uint32_t)(v ? len : 0));
    kith_buf_append(&s->wlog, h, WLOG_HDR);
    kith_buf_append(&s->wlog, k->b, k->n);
    if (v && len) kith_buf_append(&s->wlog, v, len);
    s->nwlog++;
}

static void gput(kith_engine *e, store_batch *b, int cf, const store_key *k, const void *v,
                 size_t len)
{
    (void)b;
    wlog_append(ident_state_get(e), cf, k, v, len);
    kv_cache_put(wcache(e), cf, k->b, k->n, v, len);
}

static void gdel(kith_engine *e, store_batch *b, int cf, const store_key *k)
{
    (void)b;
    wlog_append(ident_state_get(e), cf, k, NULL, 0);
    kv_cache_put(wcache(e), cf, k->b, k->n, NULL, 0);
}

/* Drops the cache and replays the group's write log into it: the store plus the group. */
static void wcache_rebuild(struct ident_state *s)
{
    if (!s->kv) return;
    kv_cache_clear(s->kv);
    s->stale = true;
    const uint8_t *p = (const uint8_t *)s->wlog.data, *end = p + s->wlog.len;
    while (p && p < end) {
        size_t kl = (size_t)p[2] << 8 | p[3], vl = kith_get_be32(p + 4);
        kv_cache_put(s->kv, p[0], p + WLOG_HDR, kl, p[1] ? NULL : p + WLOG_HDR + kl, vl);
        p += WLOG_HDR + kl + vl;
    }
}

/* The keys of a write log, in its order, and the delete of its log record into a blind part: a
 * detached one (*bl) or, b not NULL, the batch's own. The blind write sorts them by key and writes
 * the last write of each key (store_blind_write). */
static void wlog_to_blind(kith_store *st, store_blind **bl, store_batch *b, const kith_buf *w,
                          uint64_t seq)
{
    const uint8_t *p = (const uint8_t *)w->data, *end = p + w->len;
    while (p && p < end) {
        size_t kl = (size_t)p[2] << 8 | p[3], vl = kith_get_be32(p + 4);
        const uint8_t *k = p + WLOG_HDR;
        if (b && !p[1]) store_batch_put_blind(b, p[0], k, kl, k + kl, vl);
        else if (b) store_batch_delete_blind(b, p[0], k, kl);
        else if (!p[1]) store_blind_put(st, bl, p[0], k, kl, k + kl, vl);
        else store_blind_delete(st, bl, p[0], k, kl);
        p += WLOG_HDR + kl + vl;
    }
    uint8_t lk[8];
    kith_put_be64(lk, seq);
    if (b) store_batch_delete_blind(b, STORE_CF_IDLOG, lk, sizeof lk);
    else store_blind_delete(st, bl, STORE_CF_IDLOG, lk, sizeof lk);
}

int identity_emit_writes(kith_engine *e, store_batch *b)
{
    struct ident_state *s = e->ident;
    if (!s || s->nwlog == 0) return 0;
    /* The log record: the group's writes as the write log holds them (replayed in order, the last
     * write of a key wins), written with the group's indexed part. */
    uint8_t lk[8];
    uint64_t seq = ++s->log_seq;
    kith_put_be64(lk, seq);
    store_batch_put_tail(b, STORE_CF_IDLOG, lk, sizeof lk, s->wlog.data, s->wlog.len);
    atomic_fetch_add(&s->st_log_records, 1);
    atomic_fetch_add(&s->st_log_bytes, s->wlog.len);
    if (e->apply && apply_on_thread(e->apply)) {
        /* The syncer sorts it and writes the keys (identity_blind_fill): the write log moves there. */
        struct ident_pending *p = kith_xcalloc(1, sizeof *p);
        p->group = apply_group_number(e->apply);
        p->seq = seq;
        p->w = s->wlog;
        p->n = s->nwlog;
        memset(&s->wlog, 0, sizeof s->wlog);
        pthread_mutex_lock(&s->pmu);
        if (s->ptail) s->ptail->next = p;
        else s->phead = p;
        s->ptail = p;
        pthread_mutex_unlock(&s->pmu);
    } else { /* a batch outside the apply thread (tests): its own blind part */
        wlog_to_blind(e->store, NULL, b, &s->wlog, seq);
        s->wlog.len = 0;
    }
    s->nwlog = 0;
    return 0;
}

void identity_blind_fill(void *arg, uint64_t group, bool ok, store_blind **bl)
{
    kith_engine *e = arg;
    struct ident_state *s = e->ident;
    if (!s) return;
    for (;;) {
        pthread_mutex_lock(&s->pmu);
        struct ident_pending *p = s->phead;
        if (p && p->group <= group) {
            s->phead = p->next;
            if (!s->phead) s->ptail = NULL;
        } else {
            p = NULL;
        }
        pthread_mutex_unlock(&s->pmu);
        if (!p) return;
        /* An older group's entry can only be left by a group that never reached the syncer: its
         * log record stays for the replay at the next start. */
        if (ok && p->group == group) wlog_to_blind(e->store, bl, NULL, &p->w, p->seq);
        kith_buf_free(&p->w);
        free(p);
    }
}

/* Decodes one log record into b (its keys, then its own delete). KITH_EIO when it is malformed. */
static int log_record_apply(store_batch *b, const uint8_t *key, size_t klen, const uint8_t *p,
                            size_t len)
{
    const uint8_t *end = p + len;
    while (p < end) {
        if (end - p < WLOG_HDR) return KITH_EIO;
        size_t kl = (size_t)p[2] << 8 | p[3], vl = kith_get_be32(p + 4);
        if ((size_t)(end - p) - WLOG_HDR < kl + vl ||
            (p[0] != STORE_CF_IDENT && p[0] != STORE_CF_NODE && p[0] != STORE_CF_CLUSTER))
            return KITH_EIO;
        if (p[1]) store_batch_delete(b, p[0], p + WLOG_HDR, kl);
        else store_batch_put(b, p[0], p + WLOG_HDR, kl, p + WLOG_HDR + kl, vl);
        p += WLOG_HDR + kl + vl;
    }
    store_batch_delete(b, STORE_CF_IDLOG, key, klen);
    return 0;
}

int identity_log_replay(kith_engine *e, size_t *replayed)
{
    *replayed = 0;
    store_iter *it = store_iter_new(e->store, NULL, STORE_CF_IDLOG, "", 0);
    store_batch *b = store_batch_new(e->store);
    int rc = 0;
    for (; rc == 0 && store_iter_valid(it); store_iter_next(it)) {
        size_t kl, vl;
        const uint8_t *k = store_iter_key(it, &kl), *v = store_iter_value(it, &vl);
        rc = log_record_apply(b, k, kl, v, vl);
        if (rc) {
            kith_log(KITH_LOG_ERROR, "identity", "identity log record %zu is malformed", *replayed);
            break;
        }
        rc = store_batch_commit(e->store, b); /* one record at a time, in order: each atomic */
        (*replayed)++;
    }
    store_iter_free(it);
    store_batch_free(b);
    if (rc == 0 && *replayed) rc = store_sync_wal(e->store);
    if (rc == 0 && *replayed) {
        kith_log(KITH_LOG_INFO, "identity", "identity log: %zu group(s) materialised at start-up",
                 *replayed);
        atomic_store(&ident_state_get(e)->st_replayed, *replayed);
    }
    return rc;
}

void identity_index_stats(kith_engine *e, identity_stats *out)
{
    struct ident_state *s = ident_state_get(e);
    out->cache_entries = atomic_load(&s->st_entries);
    out->cache_bytes = atomic_load(&s->st_bytes);
    out->cache_clears = atomic_load(&s->st_clears);
    out->log_records = atomic_load(&s->st_log_records);
    out->log_bytes = atomic_load(&s->st_log_bytes);
    out->log_replayed = atomic_load(&s->st_replayed);
}

/* --- following the batch: the group's change list and the cache undo with it --- */

static void hook_savepoint(void *arg)
{
    struct ident_state *s = arg;
    if (s->nmarks == s->capmarks) {
        s->capmarks = s->capmarks ? s->capmarks * 2 : 64;
        s->marks = kith_xrealloc(s->marks, s->capmarks * sizeof *s->marks);
    }
    s->marks[s->nmarks++] = (struct ident_mark){s->nchg, s->wlog.len, s->nwlog};
}

static void hook_rollback(void *arg)
{
    struct ident_state *s = arg;
    /* What was staged since the savepoint was rolled back with the batch: no change of it is
     * published, none of its writes is written, the cache forgets them. */
    struct ident_mark m = s->nmarks ? s->marks[--s->nmarks] : (struct ident_mark){0, 0, 0};
    if (m.nchg < s->nchg) s->nchg = m.nchg;
    if (m.wlog < s->wlog.len) {
        s->wlog.len = m.wlog;
        s->nwlog = m.nwlog;
    }
    wcache_rebuild(s);
}

static void hook_settled(void *arg, bool ok)
{
    struct ident_state *s = arg;
    s->nmarks = 0;
    if (s->nwlog && ok)
        kith_log(KITH_LOG_ERROR, "identity", "%zu graph writes staged after the group's flush: lost",
                 s->nwlog);
    s->wlog.len = 0;
    s->nwlog = 0;
    if (!ok) {
        s->nchg = 0;
        if (s->kv) kv_cache_clear(s->kv);
        s->stale = true;
    } else if (s->kv && kv_cache_full(s->kv)) {
        kv_cache_clear_full(s->kv);
        s->stale = true;
    }
    if (s->kv) {
        atomic_store(&s->st_entries, kv_cache_entries(s->kv));
        atomic_store(&s->st_bytes, kv_cache_bytes(s->kv));
        atomic_store(&s->st_clears, kv_cache_clears(s->kv));
    }
}

void identity_attach(kith_engine *e, store_batch *b)
{
    struct ident_state *s = ident_state_get(e);
    store_batch_hooks h = {hook_savepoint, hook_rollback, hook_settled, s};
    store_batch_set_hooks(b, &h);
    s->nmarks = 0;
}

void identity_cache_stats(kith_engine *e, size_t *entries, size_t *bytes, uint64_t *clears)
{
    kv_cache *c = wcache(e);
    *entries = kv_cache_entries(c);
    *bytes = kv_cache_bytes(c);
    *clears = kv_cache_clears(c);
}

int identity_writer_lookup(kith_engine *e, uint32_t sandbox, uint32_t ns, const char *value,
                           size_t len, uint64_t *id_out, uint64_t *cluster_out)
{
    store_key k;
    skey_init(&k, sandbox);
    skey_u32(&k, ns);
    skey_bytes(&k, value, len);
    const kv_ent *h = kv_cache_get(wcache(e), STORE_CF_IDENT, k.b, k.n);
    if (!h || h->absent || h->vlen < 16) return KITH_ENOTFOUND;
    *id_out = kith_get_be64(kv_val(h));
    *cluster_out = kith_get_be64(kv_val(h) + 8);
    return 0;
}

static int decode_cluster(const kith_buf *v, cluster_members *out)
{
    const uint8_t *p = (const uint8_t *)v->data, *end = p + v->len;
    if (v->len < 12) return KITH_EIO;
    out->version = kith_get_be64(p);
    uint32_t n = kith_get_be32(p + 8);
    p += 12;
    out->v = kith_xcalloc(n ? n : 1, sizeof *out->v);
    out->n = 0;
    for (uint32_t i = 0; i < n; i++) {
        if (end - p < 14) return KITH_EIO;
        cluster_member *m = &out->v[out->n++];
        m->id = kith_get_be64(p);
        m->ns = kith_get_be32(p + 8);
        m->len = (size_t)p[12] << 8 | p[13];
        p += 14;
        if ((size_t)(end - p) < m->len) return KITH_EIO;
        m->value = kith_xstrndup((const char *)p, m->len);
        p += m->len;
    }
    return 0;
}

static void encode_cluster(const cluster_members *m, kith_buf *out)
{
    out->len = 0;
    uint8_t h[12];
    kith_put_be64(h, m->version);
    kith_put_be32(h + 8, (uint32_t)m->n);
    kith_buf_append(out, h, sizeof h);
    for (size_t i = 0; i < m->n; i++) {
        uint8_t e[14];
        kith_put_be64(e, m->v[i].id);
        kith_put_be32(e + 8, m->v[i].ns);
        e[12] = (uint8_t)(m->v[i].len >> 8);
        e[13] = (uint8_t)m->v[i].len;
        kith_buf_append(out, e, sizeof e);
        kith_buf_append(out, m->v[i].value, m->v[i].len);
    }
}

int identity_members(kith_engine *e, store_batch *b, uint32_t sandbox, uint64_t cluster,
                     cluster_members *out)
{
    store_key k;
    id_key(&k, sandbox, cluster);
    kith_buf v = {0};
    int rc = gread(e, b, STORE_CF_CLUSTER, &k, &v);
    out->cluster = cluster;
    out->n = 0;
    out->v = NULL;
    if (rc == 0) {
        rc = decode_cluster(&v, out);
        if (rc) cluster_members_free(out);
    }
    kith_buf_free(&v);
    return rc;
}

int identity_members_decode(const void *val, size_t len, uint64_t cluster, cluster_members *out)
{
    kith_buf v = {.data = (char *)val, .len = len, .cap = len};
    out->cluster = cluster;
    out->n = 0;
    out->v = NULL;
    int rc = decode_cluster(&v, out);
    if (rc) cluster_members_free(out);
    return rc;
}

void identity_cache_reset(kith_engine *e)
{
    if (e->ident) wcache_rebuild(e->ident); /* the group's own writes stay known */
}

/* --- ident entries: [id][cluster][first][last] then the cluster history, newest first --- */

typedef struct hist_entry {
    uint64_t cluster;
    int64_t ts; /* ms */
} hist_entry;

static void put_ident(kith_engine *e, store_batch *b, uint32_t sb, uint32_t ns, const char *v,
                      size_t len, uint64_t id, uint64_t cluster, int64_t first, int64_t last,
                      const hist_entry *hist, size_t nhist)
{
    store_key k;
    ident_key(&k, sb, ns, v, len);
    uint8_t val[IDENT_VAL_LEN + HIST_MAX * 16];
    kith_put_be64(val, id);
    kith_put_be64(val + 8, cluster);
    kith_put_be64(val + 16, (uint64_t)first);
    kith_put_be64(val + 24, (uint64_t)last);
    if (nhist > HIST_MAX) nhist = HIST_MAX;
    for (size_t i = 0; i < nhist; i++) {
        kith_put_be64(val + IDENT_VAL_LEN + 16 * i, hist[i].cluster);
        kith_put_be64(val + IDENT_VAL_LEN + 16 * i + 8, (uint64_t)hist[i].ts);
    }
    gput(e, b, STORE_CF_IDENT, &k, val, IDENT_VAL_LEN + 16 * nhist);
}

/* Decodes the history of an ident value; an entry without one has been in its cluster since first.
 */
static size_t decode_hist(const uint8_t *p, size_t len, hist_entry *out)
{
    if (len < IDENT_VAL_LEN) return 0;
    size_t n = (len - IDENT_VAL_LEN) / 16;
    if (n > HIST_MAX) n = HIST_MAX;
    for (size_t i = 0; i < n; i++) {
        out[i].cluster = kith_get_be64(p + IDENT_VAL_LEN + 16 * i);
        out[i].ts = (int64_t)kith_get_be64(p + IDENT_VAL_LEN + 16 * i + 8);
    }
    if (n == 0) {
        out[0].cluster = kith_get_be64(p + 8);
        out[0].ts = (int64_t)kith_get_be64(p + 16);
        n = 1;
    }
    return n;
}

/* Moves an identity to another cluster, recording the move in its history. */
static int ident_move(kith_engine *e, store_batch *b, uint32_t sb, uint32_t ns, const char *v,
                      size_t len, uint64_t cluster, int64_t now)
{
    store_key k;
    ident_key(&k, sb, ns, v, len);
    kith_buf val = {0};
    int rc = gread(e, b, STORE_CF_IDENT, &k, &val);
    if (rc == 0 && val.len < IDENT_VAL_LEN) rc = KITH_EIO;
    if (rc == 0) {
        const uint8_t *p = (const uint8_t *)val.data;
        hist_entry h[HIST_MAX + 1];
        size_t n = decode_hist(p, val.len, h + 1);
        h[0] = (hist_entry){cluster, now};
        put_ident(e, b, sb, ns, v, len, kith_get_be64(p), cluster, (int64_t)kith_get_be64(p + 16),
                  now, h, n + 1);
    }
    kith_buf_free(&val);
    return rc;
}

static int get_ident(kith_engine *e, store_batch *b, uint32_t sb, uint32_t ns, const char *v,
                     size_t len, uint64_t *id, uint64_t *cluster, int64_t *first)
{
    store_key k;
    ident_key(&k, sb, ns, v, len);
    if (b) { /* the writer: straight from its cache when it is there (no copy) */
        const kv_ent *h = kv_cache_get(wcache(e), STORE_CF_IDENT, k.b, k.n);
        if (h && h->absent) return KITH_ENOTFOUND;
        if (h && h->vlen >= IDENT_VAL_LEN) {
            const uint8_t *p = kv_val(h);
            *id = kith_get_be64(p);
            *cluster = kith_get_be64(p + 8);
            if (first) *first = (int64_t)kith_get_be64(p + 16);
            return 0;
        }
    }
    kith_buf val = {0};
    int rc = gread(e, b, STORE_CF_IDENT, &k, &val);
    if (rc == 0 && val.len < IDENT_VAL_LEN) rc = KITH_EIO;
    if (rc == 0) {
        const uint8_t *p = (const uint8_t *)val.data;
        *id = kith_get_be64(p);
        *cluster = kith_get_be64(p + 8);
        if (first) *first = (int64_t)kith_get_be64(p + 16);
    }
    kith_buf_free(&val);
    return rc;
}

int identity_graph_get(kith_engine *e, store_batch *b, int cf, const void *key, size_t klen,
                       kith_buf *val)
{
    store_key k;
    if (klen > sizeof k.b) return KITH_EINVAL;
    memcpy(k.b, key, klen);
    k.n = klen;
    return gread(e, b, cf, &k, val);
}

int identity_get(kith_engine *e, store_batch *b, uint32_t sandbox, uint32_t ns, const char *value,
                 size_t len, uint64_t *id_out, uint64_t *cluster_out)
{
    return get_ident(e, b, sandbox, ns, value, len, id_out, cluster_out, NULL);
}

int identity_lookup(kith_engine *e, uint32_t sandbox, uint32_t ns, const char *value, size_t len,
                    uint64_t *id_out, uint64_t *cluster_out)
{
    return get_ident(e, NULL, sandbox, ns, value, len, id_out, cluster_out, NULL);
}

/* --- nodes: an identity with its edges and the links removed from it --- */

typedef struct gedge {
    uint64_t other;
    int64_t first, last; /* µs stamps */
    char dataset[KITH_ID_LEN + 1];
    char record[REC_MAX + 1];
    int64_t removed;  /* removed links only: when (µs) */
    uint8_t rule;     /* removed links only: enum remove_rule */
    uint32_t rule_ns; /* the unique namespace that was violated */
} gedge;

typedef struct gnode {
    uint64_t id, cluster;
    uint32_t ns;
    int type;
    char *value;
    size_t len;
    gedge *e, *r;
    size_t ne, nr;
    bool dirty, in_record;
} gnode;

enum remove_rule { RULE_UNIQUE = 1, RULE_LIMIT = 2, RULE_UNLINK = 3 };

static void gnode_free(gnode *n)
{
    free(n->value);
    free(n->e);
    free(n->r);
    memset(n, 0, sizeof *n);
}

static int decode_edge(const uint8_t **pp, const uint8_t *end, bool v2, bool removed, gedge *g)
{
    const uint8_t *p = *pp;
    memset(g, 0, sizeof *g);
    if (end - p < 24 + KITH_ID_LEN) return KITH_EIO;
    g->other = kith_get_be64(p);
    g->first = (int64_t)kith_get_be64(p + 8);
    g->last = (int64_t)kith_get_be64(p + 16);
    memcpy(g->dataset, p + 24, KITH_ID_LEN);
    g->dataset[KITH_ID_LEN] = 0;
    p += 24 + KITH_ID_LEN;
    if (!v2) { /* v1: times in ms, no record */
        g->first *= 1000;
        g->last *= 1000;
    } else {
        if (end - p < 1) return KITH_EIO;
        size_t rl = *p++;
        if (rl > REC_MAX || (size_t)(end - p) < rl) return KITH_EIO;
        memcpy(g->record, p, rl);
        g->record[rl] = 0;
        p += rl;
        if (removed) {
            if (end - p < 13) return KITH_EIO;
            g->removed = (int64_t)kith_get_be64(p);
            g->rule = p[8];
            g->rule_ns = kith_get_be32(p + 9);
            p += 13;
        }
    }
    *pp = p;
    return 0;
}

static void encode_edge(kith_buf *out, const gedge *g, bool removed)
{
    uint8_t h[24 + KITH_ID_LEN + 1 + REC_MAX + 13];
    kith_put_be64(h, g->other);
    kith_put_be64(h + 8, (uint64_t)g->first);
    kith_put_be64(h + 16, (uint64_t)g->last);
    memset(h + 24, 0, KITH_ID_LEN);
    memcpy(h + 24, g->dataset, strnlen(g->dataset, KITH_ID_LEN));
    size_t rl = strnlen(g->record, REC_MAX), n = 24 + KITH_ID_LEN;
    h[n++] = (uint8_t)rl;
    memcpy(h + n, g->record, rl);
    n += rl;
    if (removed) {
        kith_put_be64(h + n, (uint64_t)g->removed);
        h[n + 8] = g->rule;
        kith_put_be32(h + n + 9, g->rule_ns);
        n += 13;
    }
    kith_buf_append(out, h, n);
}

/* Node record: [ns u32][len u16][value][n u16]{edge} — v1 edges are fixed-size with ms times; v2
 * sets the top bit of n, edges carry a record id and µs stamps, and a removed-links list follows.
 */
static int node_decode(const uint8_t *p, size_t len, gnode *n)
{
    const uint8_t *end = p + len;
    if (len < 8) return KITH_EIO;
    n->ns = kith_get_be32(p);
    n->len = (size_t)p[4] << 8 | p[5];
    if (6 + n->len + 2 > len) return KITH_EIO;
    n->value = kith_xstrndup((const char *)p + 6, n->len);
    p += 6 + n->len;
    unsigned cnt = (unsigned)p[0] << 8 | p[1];
    p += 2;
    bool v2 = cnt & 0x8000;
    cnt &= 0x7fff;
    n->e = kith_xcalloc(cnt + 1, sizeof *n->e);
    for (unsigned i = 0; i < cnt; i++) {
        if (decode_edge(&p, end, v2, false, &n->e[n->ne]) != 0) return KITH_EIO;
        n->ne++;
    }
    if (v2 && end - p >= 2) {
        unsigned nr = (unsigned)p[0] << 8 | p[1];
        p += 2;
        n->r = kith_xcalloc(nr + 1, sizeof *n->r);
        for (unsigned i = 0; i < nr; i++) {
            if (decode_edge(&p, end, true, true, &n->r[n->nr]) != 0) return KITH_EIO;
            n->nr++;
        }
    }
    return 0;
}

static void node_encode(const gnode *n, kith_buf *out)
{
    uint8_t h[8];
    out->len = 0;
    kith_put_be32(h, n->ns);
    h[4] = (uint8_t)(n->len >> 8);
    h[5] = (uint8_t)n->len;
    kith_buf_append(out, h, 6);
    kith_buf_append(out, n->value, n->len);
    h[0] = (uint8_t)(0x80 | n->ne >> 8);
    h[1] = (uint8_t)n->ne;
    kith_buf_append(out, h, 2);
    for (size_t i = 0; i < n->ne; i++)
        encode_edge(out, &n->e[i], false);
    h[0] = (uint8_t)(n->nr >> 8);
    h[1] = (uint8_t)n->nr;
    kith_buf_append(out, h, 2);
    for (size_t i = 0; i < n->nr; i++)
        encode_edge(out, &n->r[i], true);
}

/* b NULL: committed data. KITH_ENOTFOUND when the node does not exist. */
static int node_load(kith_engine *e, store_batch *b, uint32_t sb, uint64_t id, gnode *n)
{
    store_key k;
    id_key(&k, sb, id);
    kith_buf v = {0};
    memset(n, 0, sizeof *n);
    n->id = id;
    int rc = gread(e, b, STORE_CF_NODE, &k, &v);
    if (rc == 0) rc = node_decode((const uint8_t *)v.data, v.len, n);
    kith_buf_free(&v);
    if (rc) {
        gnode_free(n);
        n->id = id;
    }
    return rc;
}

static void node_save(kith_engine *e, store_batch *b, uint32_t sb, gnode *n)
{
    store_key k;
    id_key(&k, sb, n->id);
    kith_buf v = {0};
    node_encode(n, &v);
    gput(e, b, STORE_CF_NODE, &k, v.data, v.len);
    kith_buf_free(&v);
    n->dirty = false;
}

static gedge *node_edge(gnode *n, uint64_t other)
{
    for (size_t i = 0; i < n->ne; i++)
        if (n->e[i].other == other) return &n->e[i];
    return NULL;
}

/* Adds (or refreshes) the edge to other; returns true when it is new. */
static bool node_link(gnode *n, uint64_t other, const char *dataset, const char *record,
                      int64_t stamp)
{
    gedge *g = node_edge(n, other);
    n->dirty = true;
    if (g) {
        if (stamp > g->last) g->last = stamp;
        return false;
    }
    if (n->ne >= MAX_EDGES) { /* a node's edge list is bounded: the oldest edge goes */
        size_t old = 0;
        for (size_t i = 1; i < n->ne; i++)
            if (n->e[i].last < n->e[old].last) old = i;
        n->e[old] = n->e[--n->ne];
    }
    n->e = kith_xrealloc(n->e, (n->ne + 1) * sizeof *n->e);
    g = &n->e[n->ne++];
    memset(g, 0, sizeof *g);
    g->other = other;
    g->first = g->last = stamp;
    snprintf(g->dataset, sizeof g->dataset, "%s", dataset ? dataset : "");
    snprintf(g->record, sizeof g->record, "%s", record ? record : "");
    return true;
}

/* Removes the edge to other, keeping it in the removed list (bounded, newest kept). */
static bool node_unlink(gnode *n, uint64_t other, int rule, uint32_t rule_ns, int64_t stamp)
{
    gedge *g = node_edge(n, other);
    if (!g) return false;
    gedge r = *g;
    *g = n->e[--n->ne];
    r.removed = stamp;
    r.rule = (uint8_t)rule;
    r.rule_ns = rule_ns;
    if (n->nr >= REMOVED_MAX) {
        memmove(n->r, n->r + 1, (n->nr - 1) * sizeof *n->r);
        n->nr--;
    }
    n->r = kith_xrealloc(n->r, (n->nr + 1) * sizeof *n->r);
    n->r[n->nr++] = r;
    n->dirty = true;
    return true;
}

/* The time an identity was last linked (its newest edge), for eviction. */
static int64_t node_seen(const gnode *n)
{
    int64_t t = 0;
    for (size_t i = 0; i < n->ne; i++)
        if (n->e[i].last > t) t = n->e[i].last;
    return t;
}

/* The writer's hot check (a returning visitor): is the edge hub—other known, and was its last-seen
 * written less than EDGE_REFRESH_US before now_us? Reads the cached node record in place. */
static bool edge_fresh(kith_engine *e, store_batch *b, uint32_t sb, uint64_t hub, uint64_t other,
                       int64_t now_us)
{
    store_key k;
    id_key(&k, sb, hub);
    const kv_ent *h = kv_cache_get(wcache(e), STORE_CF_NODE, k.b, k.n);
    if (!h) {
        kith_buf v = {0};
        gread(e, b, STORE_CF_NODE, &k, &v);
        kith_buf_free(&v);
        h = kv_cache_get(wcache(e), STORE_CF_NODE, k.b, k.n);
    }
    if (!h || h->absent || h->vlen < 8) return false;
    const uint8_t *p = kv_val(h), *end = p + h->vlen;
    size_t len = (size_t)p[4] << 8 | p[5];
    if (6 + len + 2 > h->vlen) return false;
    p += 6 + len;
    unsigned cnt = (unsigned)p[0] << 8 | p[1];
    p += 2;
    if (!(cnt & 0x8000)) return false; /* v1 record: take the slow path, which rewrites it */
    cnt &= 0x7fff;
    for (unsigned i = 0; i < cnt; i++) {
        if (end - p < 24 + KITH_ID_LEN + 1) return false;
        uint64_t o = kith_get_be64(p);
        int64_t last = (int64_t)kith_get_be64(p + 16);
        size_t rl = p[24 + KITH_ID_LEN];
        if (o == other) return now_us - last <= EDGE_REFRESH_US;
        p += 24 + KITH_ID_LEN + 1 + rl;
    }
    return false;
}

/* --- clusters --- */

static int put_cluster(kith_engine *e, store_batch *b, uint32_t sb, cluster_members *m)
{
    store_key k;
    id_key(&k, sb, m->cluster);
    kith_buf v = {0};
    m->version++;
    encode_cluster(m, &v);
    gput(e, b, STORE_CF_CLUSTER, &k, v.data, v.len);
    kith_buf_free(&v);
    return 0;
}

static void drop_cluster(kith_engine *e, store_batch *b, uint32_t sb, uint64_t cluster)
{
    store_key k;
    id_key(&k, sb, cluster);
    gdel(e, b, STORE_CF_CLUSTER, &k);
    profile_drop_view(e, b, sb, cluster);
}

void identity_cluster_uuid(uint32_t sandbox, uint64_t cluster, char *out)
{
    snprintf(out, 37, "%08x-0000-4000-8000-%012llx", sandbox,
             (unsigned long long)(cluster & 0xffffffffffffull));
}

/* A loaded piece of the graph: every node of some clusters, sorted by id. */
typedef struct graph {
    gnode *n;
    size_t nn;
    cluster_members *old; /* the clusters as loaded */
    size_t nold;
} graph;

static void graph_free(graph *g)
{
    for (size_t i = 0; i < g->nn; i++)
        gnode_free(&g->n[i]);
    for (size_t i = 0; i < g->nold; i++)
        cluster_members_free(&g->old[i]);
    free(g->n);
    free(g->old);
    memset(g, 0, sizeof *g);
}

static int gnode_cmp(const void *a, const void *b)
{
    const gnode *x = a, *y = b;
    return x->id < y->id ? -1 : x->id > y->id;
}

static gnode *graph_node(graph *g, uint64_t id)
{
    gnode key = {.id = id};
    return bsearch(&key, g->n, g->nn, sizeof *g->n, gnode_cmp);
}

static int graph_load(kith_engine *e, store_batch *b, uint32_t sb, const uint64_t *clusters,
                      size_t k, graph *g)
{
    memset(g, 0, sizeof *g);
    g->old = kith_xcalloc(k ? k : 1, sizeof *g->old);
    int rc = 0;
    catalog_rdlock(e->cat);
    for (size_t i = 0; i < k && rc == 0; i++) {
        bool dup = false;
        for (size_t j = 0; j < g->nold; j++)
            dup |= g->old[j].cluster == clusters[i];
        if (dup) continue;
        cluster_members *m = &g->old[g->nold];
        rc = identity_members(e, b, sb, clusters[i], m);
        if (rc) break;
        g->nold++;
        g->n = kith_xrealloc(g->n, (g->nn + m->n) * sizeof *g->n);
        for (size_t j = 0; j < m->n; j++) {
            gnode *n = &g->n[g->nn++];
            if (node_load(e, b, sb, m->v[j].id, n) != 0) {
                n->ns = m->v[j].ns;
                n->len = m->v[j].len;
                n->value = kith_xstrndup(m->v[j].value, m->v[j].len);
            }
            n->cluster = clusters[i];
            const cat_namespace *ns = catalog_namespace_by_id(e->cat, sb, n->ns);
            n->type = ns ? ns->type : NS_COOKIE;
        }
    }
    catalog_unlock(e->cat);
    if (rc) {
        graph_free(g);
        return rc;
    }
    qsort(g->n, g->nn, sizeof *g->n, gnode_cmp);
    return 0;
}

static size_t uf_find(size_t *p, size_t x)
{
    while (p[x] != x)
        x = p[x] = p[p[x]];
    return x;
}

/* comp[i] = component index of node i (0..returned count-1). */
static size_t graph_components(graph *g, size_t *comp)
{
    size_t *p = kith_xcalloc(g->nn ? g->nn : 1, sizeof *p);
    for (size_t i = 0; i < g->nn; i++)
        p[i] = i;
    for (size_t i = 0; i < g->nn; i++)
        for (size_t j = 0; j < g->n[i].ne; j++) {
            gnode *o = graph_node(g, g->n[i].e[j].other);
            if (!o) continue;
            size_t a = uf_find(p, i), c = uf_find(p, (size_t)(o - g->n));
            if (a != c) p[a] = c;
        }
    size_t nc = 0;
    size_t *label = kith_xcalloc(g->nn ? g->nn : 1, sizeof *label);
    for (size_t i = 0; i < g->nn; i++)
        label[i] = SIZE_MAX;
    for (size_t i = 0; i < g->nn; i++) {
        size_t r = uf_find(p, i);
        if (label[r] == SIZE_MAX) label[r] = nc++;
        comp[i] = label[r];
    }
    free(label);
    free(p);
    return nc;
}

/* Removes the edge a—c on both sides, recording why. */
static void graph_cut(kith_engine *e, uint32_t sb, gnode *a, gnode *c, int rule, uint32_t rule_ns,
                      int64_t stamp)
{
    node_unlink(a, c->id, rule, rule_ns, stamp);
    node_unlink(c, a->id, rule, rule_ns, stamp);
    if (rule != RULE_UNLINK) atomic_fetch_add(&e->m.links_refused, 1);
}

typedef struct wedge {
    gnode *a, *c;
    int64_t last;
    int rank;
} wedge;

static int wedge_cmp(const void *x, const void *y)
{
    const wedge *p = x, *q = y;
    if (p->last != q->last) return p->last > q->last ? -1 : 1; /* most recent first */
    if (p->rank != q->rank) return p->rank < q->rank ? -1 : 1; /* then higher priority */
    if (p->a->id != q->a->id) return p->a->id < q->a->id ? -1 : 1;
    return p->c->id < q->c->id ? -1 : p->c->id > q->c->id;
}

/* The identity optimisation algorithm (AEP): when the links would put two identities of a unique
 * namespace in one graph, keep the most recent links (ties: the higher-priority namespaces) and
 * drop the older ones that would join them. Returns the number of links dropped. */
static size_t graph_optimise(kith_engine *e, uint32_t sb, graph *g, const link_rules *r,
                             int64_t stamp)
{
    if (r->nunique == 0) return 0;
    int count[RULES_MAX_UNIQUE] = {0};
    bool conflict = false;
    for (size_t i = 0; i < g->nn; i++) {
        int u = rules_unique_index(r, g->n[i].ns);
        if (u >= 0 && ++count[u] > 1) conflict = true;
    }
    if (!conflict) return 0;
    wedge *w = NULL;
    size_t nw = 0;
    for (size_t i = 0; i < g->nn; i++)
        for (size_t j = 0; j < g->n[i].ne; j++) {
            gnode *o = graph_node(g, g->n[i].e[j].other);
            if (!o || o->id < g->n[i].id) continue;
            w = kith_xrealloc(w, (nw + 1) * sizeof *w);
            int ra = rules_rank(r, g->n[i].ns, g->n[i].type), rc = rules_rank(r, o->ns, o->type);
            w[nw++] = (wedge){&g->n[i], o, g->n[i].e[j].last, ra < rc ? ra : rc};
        }
    if (nw) qsort(w, nw, sizeof *w, wedge_cmp);
    size_t *p = kith_xcalloc(g->nn, sizeof *p);
    uint64_t *mask = kith_xcalloc(g->nn, sizeof *mask);
    for (size_t i = 0; i < g->nn; i++) {
        p[i] = i;
        int u = rules_unique_index(r, g->n[i].ns);
        if (u >= 0) mask[i] = 1ull << u;
    }
    size_t dropped = 0;
    for (size_t i = 0; i < nw; i++) {
        size_t a = uf_find(p, (size_t)(w[i].a - g->n)), c = uf_find(p, (size_t)(w[i].c - g->n));
        if (a == c) continue;
        uint64_t both = mask[a] & mask[c];
        if (both) {
            int u = __builtin_ctzll(both);
            graph_cut(e, sb, w[i].a, w[i].c, RULE_UNIQUE, r->unique[u], stamp);
            dropped++;
            continue;
        }
        p[a] = c;
        mask[c] |= mask[a];
    }
    free(p);
    free(mask);
    free(w);
    return dropped;
}

static int evict_rank(int type)
{
    switch (type) {
    case NS_COOKIE:
    case NS_PARTNER:
        return 0;
    case NS_DEVICE:
        return 1;
    default:
        return 2;
    }
}

/* Is x a better eviction victim than y? Identities of the record being applied go last; then
 * cookies, devices, people; then the oldest; exact ties by namespace and value. */
static bool victim_before(const gnode *x, const gnode *y)
{
    if (x->in_record != y->in_record) return !x->in_record;
    if (evict_rank(x->type) != evict_rank(y->type))
        return evict_rank(x->type) < evict_rank(y->type);
    int64_t sx = node_seen(x), sy = node_seen(y);
    if (sx != sy) return sx < sy;
    if (x->ns != y->ns) return x->ns < y->ns;
    size_t m = x->len < y->len ? x->len : y->len;
    int c = memcmp(x->value, y->value, m);
    return c ? c < 0 : x->len < y->len;
}

/* Finishes a change of the loaded graph: evicts while a component is over the limit, gives each
 * component a cluster (the old cluster it shares most identities with keeps its id), rewrites what
 * moved and publishes the changes. */
static int graph_commit(kith_engine *e, store_batch *b, uint32_t sb, graph *g, const link_rules *r,
                        unsigned reasons, int64_t stamp, int64_t now)
{
    size_t nn = g->nn;
    size_t *comp = kith_xcalloc(nn ? nn : 1, sizeof *comp);
    size_t *size = NULL, nc;
    int max = r->max_identities;
    for (;;) {
        nc = graph_components(g, comp);
        size = kith_xrealloc(size, (nc ? nc : 1) * sizeof *size);
        memset(size, 0, (nc ? nc : 1) * sizeof *size);
        for (size_t i = 0; i < nn; i++)
            size[comp[i]]++;
        size_t over = SIZE_MAX;
        for (size_t c = 0; c < nc && over == SIZE_MAX; c++)
            if (size[c] > (size_t)max) over = c;
        if (over == SIZE_MAX) break;
        gnode *victim = NULL;
        for (size_t i = 0; i < nn; i++)
            if (comp[i] == over && g->n[i].ne > 0 && (!victim || victim_before(&g->n[i], victim)))
                victim = &g->n[i];
        if (!victim) break;
        while (victim->ne > 0) {
            gnode *o = graph_node(g, victim->e[0].other);
            if (o)
                graph_cut(e, sb, victim, o, RULE_LIMIT, 0, stamp);
            else
                node_unlink(victim, victim->e[0].other, RULE_LIMIT, 0, stamp);
        }
        reasons |= CLUSTER_EVICTED;
    }
    /* Cluster ids: largest components choose first among the old clusters they overlap. */
    size_t *order = kith_xcalloc(nc ? nc : 1, sizeof *order);
    for (size_t c = 0; c < nc; c++)
        order[c] = c;
    for (size_t i = 1; i < nc; i++) /* insertion sort by size desc, stable */
        for (size_t j = i; j > 0 && size[order[j]] > size[order[j - 1]]; j--) {
            size_t t = order[j];
            order[j] = order[j - 1];
            order[j - 1] = t;
        }
    uint64_t *newcl = kith_xcalloc(nc ? nc : 1, sizeof *newcl);
    size_t *reuse = kith_xcalloc(nc ? nc : 1, sizeof *reuse); /* old index + 1, 0 = new */
    bool *taken = kith_xcalloc(g->nold ? g->nold : 1, sizeof *taken);
    size_t *tally = kith_xcalloc(g->nold ? g->nold : 1, sizeof *tally);
    size_t *pieces = kith_xcalloc(g->nold ? g->nold : 1, sizeof *pieces);
    for (size_t oi = 0; oi < nc; oi++) {
        size_t c = order[oi];
        memset(tally, 0, g->nold * sizeof *tally);
        for (size_t i = 0; i < nn; i++)
            if (comp[i] == c)
                for (size_t o = 0; o < g->nold; o++)
                    if (g->old[o].cluster == g->n[i].cluster) tally[o]++;
        size_t best = SIZE_MAX;
        for (size_t o = 0; o < g->nold; o++) {
            if (tally[o]) pieces[o]++;
            if (!taken[o] && tally[o] && (best == SIZE_MAX || tally[o] > tally[best])) best = o;
        }
        if (best != SIZE_MAX) {
            taken[best] = true;
            newcl[c] = g->old[best].cluster;
            reuse[c] = best + 1;
        } else {
            newcl[c] = catalog_next_seq(e->cat, b, SEQ_CLUSTER);
        }
    }
    /* Which old clusters each component holds identities of (for the event's reasons). */
    bool *origin_in = kith_xcalloc((nc ? nc : 1) * (g->nold ? g->nold : 1), sizeof *origin_in);
    bool *merged = kith_xcalloc(nc ? nc : 1, sizeof *merged);
    for (size_t i = 0; i < nn; i++)
        for (size_t o = 0; o < g->nold; o++)
            if (g->old[o].cluster == g->n[i].cluster) origin_in[comp[i] * g->nold + o] = true;
    for (size_t c = 0; c < nc; c++) {
        int from = 0;
        for (size_t o = 0; o < g->nold; o++)
            from += origin_in[c * g->nold + o];
        merged[c] = from > 1;
    }
    int rc = 0;
    bool *changed = kith_xcalloc(nc ? nc : 1, sizeof *changed);
    for (size_t i = 0; i < nn && rc == 0; i++) {
        gnode *n = &g->n[i];
        uint64_t to = newcl[comp[i]];
        if (to == n->cluster) continue;
        changed[comp[i]] = true;
        for (size_t c = 0; c < nc; c++)
            if (newcl[c] == n->cluster) changed[c] = true;
        rc = ident_move(e, b, sb, n->ns, n->value, n->len, to, now);
        n->cluster = to;
    }
    for (size_t c = 0; c < nc && rc == 0; c++) {
        if (reuse[c] && size[c] != g->old[reuse[c] - 1].n) changed[c] = true;
        if (!changed[c]) continue;
        cluster_members m = {.cluster = newcl[c],
                             .version = reuse[c] ? g->old[reuse[c] - 1].version : 0};
        m.v = kith_xcalloc(size[c], sizeof *m.v);
        unsigned why = reasons;
        for (size_t i = 0; i < nn; i++)
            if (comp[i] == c)
                m.v[m.n++] = (cluster_member){g->n[i].id, g->n[i].ns, g->n[i].value, g->n[i].len};
        for (size_t o = 0; o < g->nold; o++)
            if (pieces[o] > 1 && origin_in[c * g->nold + o]) why |= CLUSTER_SPLIT;
        why &= ~(unsigned)CLUSTER_MERGED;
        if (merged[c]) why |= CLUSTER_MERGED;
        put_cluster(e, b, sb, &m);
        free(m.v); /* values borrowed from the nodes */
        profile_mark_dirty(e, sb, newcl[c]);
        identity_changed(e, sb, newcl[c], why);
    }
    for (size_t o = 0; o < g->nold && rc == 0; o++)
        if (!taken[o]) {
            drop_cluster(e, b, sb, g->old[o].cluster);
            identity_changed(e, sb, g->old[o].cluster, reasons | CLUSTER_MERGED | CLUSTER_GONE_BIT);
        }
    for (size_t i = 0; i < nn && rc == 0; i++)
        if (g->n[i].dirty) node_save(e, b, sb, &g->n[i]);
    free(changed);
    free(merged);
    free(origin_in);
    free(pieces);
    free(tally);
    free(taken);
    free(reuse);
    free(newcl);
    free(order);
    free(size);
    free(comp);
    return rc;
}

static int64_t next_stamp(kith_engine *e, int64_t now_ms)
{
    struct ident_state *s = ident_state_get(e);
    int64_t t = now_ms * 1000;
    if (t <= s->stamp) t = s->stamp + 1;
    s->stamp = t;
    return t;
}

/* A new identity on its own: a cluster of one (an ident, a node and a cluster record). */
static void create_single(kith_engine *e, store_batch *b, uint32_t sb, const ident_in *in,
                          uint64_t id, int64_t now, uint64_t *cl_out)
{
    uint64_t cl = catalog_next_seq(e->cat, b, SEQ_CLUSTER);
    hist_entry h = {cl, now};
    put_ident(e, b, sb, in->ns, in->value, in->len, id, cl, now, now, &h, 1);
    gnode nd = {.id = id, .ns = in->ns, .value = (char *)in->value, .len = in->len};
    node_save(e, b, sb, &nd);
    cluster_member m = {.id = id, .ns = in->ns, .value = (char *)in->value, .len = in->len};
    cluster_members one = {.cluster = cl, .version = 0, .n = 1, .v = &m};
    put_cluster(e, b, sb, &one);
    *cl_out = cl;
}

/* The node of an identity of the record: stored, or new (fresh identities, or a lost node). */
static int node_get(kith_engine *e, store_batch *b, uint32_t sb, const ident_in *in, uint64_t id,
                    bool fresh, gnode *out)
{
    if (!fresh) {
        int rc = node_load(e, b, sb, id, out);
        if (rc != KITH_ENOTFOUND) return rc;
    }
    memset(out, 0, sizeof *out);
    out->id = id;
    out->ns = in->ns;
    out->value = kith_xstrndup(in->value, in->len);
    out->len = in->len;
    return 0;
}

/* The edges of a record: the hub to every other linkable identity, both node records written once. */
static int link_edges(kith_engine *e, store_batch *b, uint32_t sb, const ident_in *ids, int n,
                      const bool *linkable, const bool *fresh, const uint64_t *ids_out, int hub,
                      const char *dataset, const char *record_id, int64_t stamp)
{
    gnode h;
    int rc = node_get(e, b, sb, &ids[hub], ids_out[hub], fresh[hub], &h);
    if (rc) return rc;
    for (int i = 0; i < n && rc == 0; i++) {
        if (!linkable[i] || i == hub) continue;
        gnode x;
        rc = node_get(e, b, sb, &ids[i], ids_out[i], fresh[i], &x);
        if (rc) break;
        if (node_link(&h, x.id, dataset, record_id, stamp))
            atomic_fetch_add(&e->m.links_created, 1);
        node_link(&x, h.id, dataset, record_id, stamp);
        node_save(e, b, sb, &x);
        gnode_free(&x);
    }
    if (rc == 0) node_save(e, b, sb, &h);
    gnode_free(&h);
    return rc;
}

/* Merges the involved clusters and the record's new identities when the rules hold as they are (the
 * common case): union by size — only the ident entries of the smaller clusters are rewritten, new
 * identities are written once, straight into the surviving cluster. *target: that cluster. */
static int merge_into(kith_engine *e, store_batch *b, uint32_t sb, cluster_members *cl, size_t k,
                      const ident_in *ids, int n, const bool *linkable, const bool *fresh,
                      const uint64_t *ids_out, int64_t now, uint64_t *target)
{
    int rc = 0;
    cluster_members created = {0};
    cluster_members *into = &created;
    if (k == 0) {
        created.cluster = catalog_next_seq(e->cat, b, SEQ_CLUSTER);
    } else {
        size_t big = 0;
        for (size_t i = 1; i < k; i++)
            if (cl[i].n > cl[big].n) big = i;
        into = &cl[big];
    }
    for (size_t i = 0; i < k && rc == 0; i++) {
        cluster_members *from = &cl[i];
        if (from == into) continue;
        for (size_t j = 0; j < from->n && rc == 0; j++) {
            cluster_member *m = &from->v[j];
            rc = ident_move(e, b, sb, m->ns, m->value, m->len, into->cluster, now);
            into->v = kith_xrealloc(into->v, (into->n + 1) * sizeof *into->v);
            into->v[into->n++] = *m;
            m->value = NULL; /* moved */
        }
        drop_cluster(e, b, sb, from->cluster);
        identity_changed(e, sb, from->cluster, CLUSTER_MERGED | CLUSTER_GONE_BIT);
        atomic_fetch_add(&e->m.clusters_merged, 1);
    }
    for (int i = 0; i < n && rc == 0; i++) {
        if (!linkable[i] || !fresh[i]) continue;
        hist_entry h = {into->cluster, now};
        put_ident(e, b, sb, ids[i].ns, ids[i].value, ids[i].len, ids_out[i], into->cluster, now,
                  now, &h, 1);
        into->v = kith_xrealloc(into->v, (into->n + 1) * sizeof *into->v);
        into->v[into->n++] = (cluster_member){ids_out[i], ids[i].ns,
                                              kith_xstrndup(ids[i].value, ids[i].len), ids[i].len};
    }
    if (rc == 0) {
        put_cluster(e, b, sb, into);
        /* The union view changes only when stored data moved: new identities bring none. */
        if (k > 1) profile_mark_dirty(e, sb, into->cluster);
        identity_changed(e, sb, into->cluster, CLUSTER_MERGED);
        *target = into->cluster;
    }
    cluster_members_free(&created);
    return rc;
}

int identity_apply(kith_engine *e, store_batch *b, uint32_t sandbox, const ident_in *ids, int n,
                   bool link, const char *dataset, const char *record_id, int64_t now,
                   uint64_t *ids_out, uint64_t *cluster_out)
{
    uint64_t clusters[64] = {0};
    bool linkable[64], fresh[64];
    int same[64]; /* an earlier entry naming the same identity, or -1 */
    int primary = 0, nlink = 0, rc = 0;
    if (n > 64) n = 64;
    const link_rules *r = link ? rules_for(e, sandbox) : NULL;
    for (int i = 0; i < n; i++) {
        if (ids[i].primary) primary = i;
        same[i] = -1;
        fresh[i] = linkable[i] = false;
        for (int j = 0; j < i && same[i] < 0; j++)
            if (same[j] < 0 && ids[j].ns == ids[i].ns && ids[j].len == ids[i].len &&
                memcmp(ids[j].value, ids[i].value, ids[i].len) == 0)
                same[i] = j;
        if (same[i] >= 0) {
            ids_out[i] = ids_out[same[i]];
            continue;
        }
        uint64_t id = 0, cl = 0;
        rc = get_ident(e, b, sandbox, ids[i].ns, ids[i].value, ids[i].len, &id, &cl, NULL);
        if (rc == KITH_ENOTFOUND) {
            fresh[i] = true;
            id = catalog_next_seq(e->cat, b, SEQ_IDENTITY);
            rc = 0;
        } else if (rc != 0) {
            return rc;
        }
        ids_out[i] = id;
        clusters[i] = cl;
        linkable[i] =
            link && ids[i].linkable && !rules_blocked(r, ids[i].ns, ids[i].value, ids[i].len);
        nlink += linkable[i];
    }
    /* New identities that link nowhere get a cluster of their own. */
    for (int i = 0; i < n; i++)
        if (fresh[i] && (!linkable[i] || nlink < 2)) {
            create_single(e, b, sandbox, &ids[i], ids_out[i], now, &clusters[i]);
            fresh[i] = false;
        }
    if (nlink < 2) goto done;
    /* The hub: the linkable identity of highest priority; every other one links to it. */
    int hub = -1, hub_rank = 0;
    for (int i = 0; i < n; i++) {
        if (!linkable[i]) continue;
        int rk = rules_rank(r, ids[i].ns, ids[i].type);
        if (hub < 0 || rk < hub_rank) hub = i, hub_rank = rk;
    }
    /* The clusters involved and the new identities that join them. */
    uint64_t involved[64];
    size_t k = 0;
    int nnew = 0;
    for (int i = 0; i < n; i++) {
        if (!linkable[i]) continue;
        if (fresh[i]) {
            nnew++;
            continue;
        }
        bool seen = false;
        for (size_t j = 0; j < k; j++)
            seen |= involved[j] == clusters[i];
        if (!seen) involved[k++] = clusters[i];
    }
    if (nnew == 0 && k == 1) {
        /* One cluster already: nothing to do when every edge is known and fresh (a returning
         * visitor), else the edges are added or their last-seen refreshed. */
        bool work = false;
        for (int i = 0; i < n && !work; i++)
            if (linkable[i] && i != hub &&
                !edge_fresh(e, b, sandbox, ids_out[hub], ids_out[i], now * 1000))
                work = true;
        if (work)
            rc = link_edges(e, b, sandbox, ids, n, linkable, fresh, ids_out, hub, dataset,
                            record_id, next_stamp(e, now));
        goto done;
    }
    int64_t stamp = next_stamp(e, now);
    cluster_members cl[64];
    size_t loaded = 0, total = (size_t)nnew;
    for (; loaded < k; loaded++) {
        rc = identity_members(e, b, sandbox, involved[loaded], &cl[loaded]);
        if (rc) break;
        total += cl[loaded].n;
    }
    bool fast = rc == 0 && total <= (size_t)r->max_identities;
    int count[RULES_MAX_UNIQUE] = {0};
    for (size_t c = 0; fast && c < k; c++)
        for (size_t j = 0; fast && j < cl[c].n; j++) {
            int u = rules_unique_index(r, cl[c].v[j].ns);
            if (u >= 0 && ++count[u] > 1) fast = false;
        }
    for (int i = 0; fast && i < n; i++) {
        int u = linkable[i] && fresh[i] ? rules_unique_index(r, ids[i].ns) : -1;
        if (u >= 0 && ++count[u] > 1) fast = false;
    }
    uint64_t target = 0;
    if (fast) rc = merge_into(e, b, sandbox, cl, k, ids, n, linkable, fresh, ids_out, now, &target);
    for (size_t c = 0; c < loaded; c++)
        cluster_members_free(&cl[c]);
    if (rc) return rc;
    if (fast) {
        for (int i = 0; i < n; i++)
            if (linkable[i]) clusters[i] = target;
        rc = link_edges(e, b, sandbox, ids, n, linkable, fresh, ids_out, hub, dataset, record_id,
                        stamp);
        goto done;
    }
    /* The rules have work to do: new identities become clusters of one, then the graph of every
     * involved cluster is re-formed (links, the optimisation algorithm, the graph limit). */
    for (int i = 0; i < n; i++)
        if (linkable[i] && fresh[i]) {
            create_single(e, b, sandbox, &ids[i], ids_out[i], now, &clusters[i]);
            fresh[i] = false;
            involved[k++] = clusters[i];
        }
    graph g;
    rc = graph_load(e, b, sandbox, involved, k, &g);
    if (rc) return rc;
    for (int i = 0; i < n; i++) {
        gnode *x = linkable[i] ? graph_node(&g, ids_out[i]) : NULL;
        if (x) x->in_record = true;
    }
    gnode *h = graph_node(&g, ids_out[hub]);
    for (int i = 0; i < n && h; i++) {
        gnode *x = linkable[i] && i != hub ? graph_node(&g, ids_out[i]) : NULL;
        if (!x || x == h) continue;
        if (node_link(h, x->id, dataset, record_id, stamp))
            atomic_fetch_add(&e->m.links_created, 1);
        node_link(x, h->id, dataset, record_id, stamp);
    }
    graph_optimise(e, sandbox, &g, r, stamp);
    rc = graph_commit(e, b, sandbox, &g, r, CLUSTER_MERGED, stamp, now);
    graph_free(&g);
    for (int i = 0; i < n && rc == 0; i++) {
        uint64_t id, cl2;
        if (same[i] < 0 &&
            get_ident(e, b, sandbox, ids[i].ns, ids[i].value, ids[i].len, &id, &cl2, NULL) == 0)
            clusters[i] = cl2;
    }
done:
    for (int i = 0; i < n; i++)
        if (same[i] >= 0) clusters[i] = clusters[same[i]];
    *cluster_out = clusters[primary];
    return rc;
}

/* --- unlink --- */

static int unlink_common(kith_engine *e, store_batch *b, uint32_t sb, uint64_t cluster, uint64_t a,
                         uint64_t c, bool whole)
{
    const link_rules *r = rules_for(e, sb);
    graph g;
    int rc = graph_load(e, b, sb, &cluster, 1, &g);
    if (rc) return rc;
    int64_t now = kith_now_ms(), stamp = next_stamp(e, now);
    gnode *x = graph_node(&g, a);
    bool any = false;
    if (x && whole) {
        while (x->ne > 0) {
            gnode *o = graph_node(&g, x->e[0].other);
            if (o)
                graph_cut(e, sb, x, o, RULE_UNLINK, 0, stamp);
            else
                node_unlink(x, x->e[0].other, RULE_UNLINK, 0, stamp);
            any = true;
        }
    } else if (x) {
        gnode *o = graph_node(&g, c);
        if (o && node_edge(x, c)) {
            graph_cut(e, sb, x, o, RULE_UNLINK, 0, stamp);
            any = true;
        }
    }
    if (!any && !whole)
        rc = KITH_ENOTFOUND;
    else
        rc = graph_commit(e, b, sb, &g, r, CLUSTER_UNLINKED, stamp, now);
    graph_free(&g);
    return rc;
}

int identity_unlink_edge(kith_engine *e, store_batch *b, uint32_t sandbox, uint32_t ns1,
                         const char *v1, size_t l1, uint32_t ns2, const char *v2, size_t l2)
{
    uint64_t a, c, cl1, cl2;
    int rc = get_ident(e, b, sandbox, ns1, v1, l1, &a, &cl1, NULL);
    if (rc == 0) rc = get_ident(e, b, sandbox, ns2, v2, l2, &c, &cl2, NULL);
    if (rc) return rc;
    if (cl1 != cl2 || a == c) return KITH_ENOTFOUND;
    return unlink_common(e, b, sandbox, cl1, a, c, false);
}

int identity_unlink_identity(kith_engine *e, store_batch *b, uint32_t sandbox, uint32_t ns,
                             const char *v, size_t len)
{
    uint64_t a, cl;
    int rc = get_ident(e, b, sandbox, ns, v, len, &a, &cl, NULL);
    if (rc) return rc;
    return unlink_common(e, b, sandbox, cl, a, 0, true);
}

/* --- reads: explain and history --- */

static const char *rule_name(int rule)
{
    switch (rule) {
    case RULE_UNIQUE:
        return "uniqueNamespace";
    case RULE_LIMIT:
        return "graphLimit";
    case RULE_UNLINK:
        return "unlink";
    default:
        return "unknown";
    }
}

static json_t *ident_json(kith_engine *e, uint32_t sb, uint32_t ns, const char *v, size_t len)
{
    const cat_namespace *n = catalog_namespace_by_id(e->cat, sb, ns);
    char xid[KITH_XID_MAX];
    identity_xid(ns, v, len, xid, sizeof xid);
    return json_pack("{s:s, s:I, s:s%, s:s}", "namespace", n ? n->code : "", "nsid", (json_int_t)ns,
                     "id", v, len, "xid", xid);
}

static json_t *edge_json(kith_engine *e, uint32_t sb, const gnode *a, const gnode *c,
                         const gedge *g, bool removed)
{
    json_t *o = json_pack(
        "{s:o, s:o, s:s, s:I, s:I}", "from", ident_json(e, sb, a->ns, a->value, a->len), "to",
        ident_json(e, sb, c->ns, c->value, c->len), "dataset", g->dataset, "firstSeen",
        (json_int_t)(g->first / 1000), "lastSeen", (json_int_t)(g->last / 1000));
    json_object_set_new(o, "recordId", g->record[0] ? json_string(g->record) : json_null());
    if (removed) {
        json_object_set_new(o, "removedAt", json_integer((json_int_t)(g->removed / 1000)));
        json_object_set_new(o, "rule", json_string(rule_name(g->rule)));
        char why[256];
        const cat_namespace *ns = catalog_namespace_by_id(e->cat, sb, g->rule_ns);
        switch (g->rule) {
        case RULE_UNIQUE:
            snprintf(why, sizeof why,
                     "%s is a unique namespace: a graph holds at most one; the older link was "
                     "dropped",
                     ns ? ns->code : "?");
            break;
        case RULE_LIMIT:
            snprintf(why, sizeof why,
                     "the graph reached maxIdentities; the oldest identity of the lowest type "
                     "was evicted");
            break;
        default:
            snprintf(why, sizeof why, "removed through POST /data/core/identity/unlink");
            break;
        }
        json_object_set_new(o, "reason", json_string(why));
    }
    return o;
}

json_t *identity_explain(kith_engine *e, uint32_t sandbox, uint32_t ns, const char *v, size_t len,
                         int *err)
{
    uint64_t id, cl;
    *err = get_ident(e, NULL, sandbox, ns, v, len, &id, &cl, NULL);
    if (*err) return NULL;
    graph g;
    *err = graph_load(e, NULL, sandbox, &cl, 1, &g);
    if (*err) return NULL;
    char uuid[40];
    identity_cluster_uuid(sandbox, cl, uuid);
    json_t *members = json_array(), *edges = json_array(), *removed = json_array();
    catalog_rdlock(e->cat);
    for (size_t i = 0; i < g.nn; i++) {
        gnode *a = &g.n[i];
        json_t *m = ident_json(e, sandbox, a->ns, a->value, a->len);
        json_object_set_new(m, "type", json_string(ns_type_name(a->type)));
        json_object_set_new(m, "lastLinked", json_integer((json_int_t)(node_seen(a) / 1000)));
        json_array_append_new(members, m);
        for (size_t j = 0; j < a->ne; j++) {
            gnode *c = graph_node(&g, a->e[j].other);
            if (c && c->id > a->id)
                json_array_append_new(edges, edge_json(e, sandbox, a, c, &a->e[j], false));
        }
        for (size_t j = 0; j < a->nr; j++) {
            /* Each removal is kept on both sides; report it once (from the lower id, or from the
             * member when the other side is no longer in this cluster). */
            gnode *c = graph_node(&g, a->r[j].other);
            if (c && c->id < a->id) continue;
            gnode other;
            bool loaded = false;
            if (!c) {
                if (node_load(e, NULL, sandbox, a->r[j].other, &other) != 0) continue;
                c = &other;
                loaded = true;
            }
            json_array_append_new(removed, edge_json(e, sandbox, a, c, &a->r[j], true));
            if (loaded) gnode_free(&other);
        }
    }
    catalog_unlock(e->cat);
    uint64_t version = g.nold ? g.old[0].version : 0;
    graph_free(&g);
    return json_pack("{s:s, s:I, s:o, s:o, s:o}", "clusterId", uuid, "version", (json_int_t)version,
                     "members", members, "edges", edges, "removedLinks", removed);
}

json_t *identity_mapping(kith_engine *e, uint32_t sandbox, uint32_t ns, const char *v, size_t len,
                         int64_t target_ns, int *err)
{
    uint64_t id, cl;
    *err = get_ident(e, NULL, sandbox, ns, v, len, &id, &cl, NULL);
    if (*err) return NULL;
    cluster_members m;
    *err = identity_members(e, NULL, sandbox, cl, &m);
    if (*err) return NULL;
    json_t *out = json_array();
    for (size_t i = 0; i < m.n; i++) {
        if (m.v[i].id == id || (target_ns >= 0 && m.v[i].ns != (uint32_t)target_ns)) continue;
        gnode n;
        int64_t seen = 0;
        if (node_load(e, NULL, sandbox, m.v[i].id, &n) == 0) {
            seen = node_seen(&n);
            gnode_free(&n);
        }
        json_array_append_new(out, json_pack("{s:I, s:s%, s:I}", "nsid", (json_int_t)m.v[i].ns,
                                             "id", m.v[i].value, m.v[i].len,
                                             "lastAssociationTime", (json_int_t)(seen / 1000)));
    }
    cluster_members_free(&m);
    return out;
}

json_t *identity_history(kith_engine *e, uint32_t sandbox, uint32_t ns, const char *v, size_t len,
                         int *err)
{
    store_key k;
    ident_key(&k, sandbox, ns, v, len);
    kith_buf val = {0};
    *err = store_get(e->store, STORE_CF_IDENT, k.b, k.n, &val);
    if (*err == 0 && val.len < IDENT_VAL_LEN) *err = KITH_EIO;
    json_t *out = NULL;
    if (*err == 0) {
        hist_entry h[HIST_MAX];
        size_t n = decode_hist((const uint8_t *)val.data, val.len, h);
        out = json_array();
        for (size_t i = 0; i < n; i++) {
            char uuid[40];
            identity_cluster_uuid(sandbox, h[i].cluster, uuid);
            json_array_append_new(out, json_pack("{s:s, s:I}", "clusterId", uuid, "cRecordedTS",
                                                 (json_int_t)h[i].ts));
        }
    }
    kith_buf_free(&val);
    return out;
}

/* XID: "X" + base64url(ns u32 big-endian ‖ value), no padding. */
static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

void identity_xid(uint32_t ns, const char *value, size_t len, char *out, size_t cap)
{
    uint8_t buf[4 + 1100];
    if (len > 1100) len = 1100;
    kith_put_be32(buf, ns);
    memcpy(buf + 4, value, len);
    size_t n = 4 + len, o = 0;
    if (cap < 2) return;
    out[o++] = 'X';
    for (size_t i = 0; i < n && o + 4 < cap; i += 3) {
        uint32_t v = (uint32_t)buf[i] << 16;
        if (i + 1 < n) v |= (uint32_t)buf[i + 1] << 8;
        if (i + 2 < n) v |= buf[i + 2];
        out[o++] = b64[(v >> 18) & 63];
        out[o++] = b64[(v >> 12) & 63];
        if (i + 1 < n) out[o++] = b64[(v >> 6) & 63];
        if (i + 2 < n) out[o++] = b64[v & 63];
    }
    out[o] = 0;
}

int identity_xid_parse(const char *xid, uint32_t *ns, char *value, size_t cap, size_t *len)
{
    if (!xid || xid[0] != 'X') return KITH_EINVAL;
    uint8_t buf[4 + 1100];
    size_t n = 0;
    uint32_t acc = 0;
    int bits = 0;
    for (const char *p = xid + 1; *p; p++) {
        const char *q = strchr(b64, *p);
        if (!q || !*p) return KITH_EINVAL;
        acc = (acc << 6) | (uint32_t)(q - b64);
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            if (n >= sizeof buf) return KITH_EINVAL;
            buf[n++] = (uint8_t)(acc >> bits);
        }
    }
    if (n < 5 || n - 4 >= cap) return KITH_EINVAL;
    *ns = kith_get_be32(buf);
    memcpy(value, buf + 4, n - 4);
    value[n - 4] = 0;
    *len = n - 4;
    return 0;
}
