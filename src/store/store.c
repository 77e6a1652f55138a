/* kith store: RocksDB behind one small interface (see include/kith/store.h). */
#include "kith/store.h"

#include <rocksdb/c.h>
#include <stdlib.h>
#include <string.h>

static const char *cf_names[STORE_CF_COUNT] = {"meta",    "ident",   "node",  "cluster", "frag",
                                               "event",   "profile", "segidx", "timer",  "dedup",
                                               "ca",      "idlog"};

struct kith_store {
    rocksdb_t *db;
    rocksdb_env_t *env;
    rocksdb_options_t *opts;
    rocksdb_cache_t *cache;
    rocksdb_block_based_table_options_t *table;
    rocksdb_options_t *cf_opts[STORE_CF_COUNT + 1];
    rocksdb_column_family_handle_t *cf[STORE_CF_COUNT + 1]; /* [STORE_CF_COUNT] = default */
    rocksdb_writeoptions_t *wopts;
    rocksdb_readoptions_t *ropts;
    bool sync;
};

/* Blind appends, kept as (column family, key, value) in one buffer and written sorted by key: a
 * group's events are of random people at random timestamps, and in key order consecutive skip-list
 * inserts walk down the same upper levels, which stay in cache (3-5% less CPU per event measured;
 * RocksDB's sequential splice itself only helps a key that lands right after the previous one). */
typedef struct blind_ent {
    size_t off;       /* key, then value, in data */
    uint32_t klen, vlen;
    uint32_t seq;     /* insertion order: of two writes of one key, the later wins */
    uint8_t cf;
    bool del;         /* a delete (no value) */
} blind_ent;
struct store_blind {
    kith_buf data;
    blind_ent *v;
    size_t n, cap;
    size_t (*sp)[2]; /* savepoints: (n, data.len) */
    size_t nsp, capsp;
};

struct store_batch {
    rocksdb_writebatch_wi_t *wb;
    store_blind *blind; /* appends never read back within the group (no index) */
    rocksdb_writebatch_t *tail;  /* written with the indexed part, never read back (no index) */
    kith_store *st; /* borrowed: column family handles */
    store_batch_hooks hooks;
};

struct store_snapshot {
    kith_store *st;
    const rocksdb_snapshot_t *snap;
    rocksdb_readoptions_t *ropts;
};

/* The snapshot this thread's committed reads use (store_snapshot_use), or NULL for the latest. */
static _Thread_local store_snapshot *tl_snap;

static size_t prefix_successor(const uint8_t *p, size_t n, uint8_t *out);

static const rocksdb_readoptions_t *read_opts(kith_store *st)
{
    return tl_snap && tl_snap->st == st ? tl_snap->ropts : st->ropts;
}

struct store_iter {
    kith_store *st;
    int cf;
    store_batch *b; /* borrowed, or NULL */
    rocksdb_iterator_t *it;
    rocksdb_readoptions_t *ropts;
    uint8_t prefix[64];
    size_t plen;
    uint8_t upper[64]; /* the prefix's successor: RocksDB stops there */
    size_t ulen;       /* its length (0: no bound) */
};

/* The dedup CF is only read by whole key (and range-deleted by prefix, which needs no iterator): its
 * "prefix" is the whole key, so a hashed memtable (one bucket per key) replaces the skip list, whose
 * insert of a random key was the writer's largest single cost (one dedup key per event). */
static char *whole_key(void *state, const char *key, size_t len, size_t *dlen)
{
    (void)state;
    *dlen = len;
    return (char *)key;
}
static unsigned char always(void *state, const char *key, size_t len)
{
    (void)state, (void)key, (void)len;
    return 1;
}
static unsigned char never(void *state, const char *key, size_t len)
{
    (void)state, (void)key, (void)len;
    return 0;
}
static void no_state(void *state)
{
    (void)state;
}
static const char *whole_key_name(void *state)
{
    (void)state;
    return "kith.WholeKey";
}

int store_open(const char *dir, const store_options *opt, kith_store **out, char **errmsg)
{
    kith_store *st = kith_xcalloc(1, sizeof *st);
    char *err = NULL;
    st->opts = rocksdb_options_create();
    /* Flushes and compactions run below the request threads: on two cores a profile read or the
     * writer should not wait behind a compaction (they still get the CPU when it is idle). */
    st->env = rocksdb_create_default_env();
    rocksdb_env_lower_thread_pool_cpu_priority(st->env);
    rocksdb_env_lower_high_priority_thread_pool_cpu_priority(st->env);
    /* and their disk I/O in the idle class: a read that misses the page cache goes before a
     * compaction's (Linux ioprio; ignored where unsupported) */
    rocksdb_env_lower_thread_pool_io_priority(st->env);
    rocksdb_env_lower_high_priority_thread_pool_io_priority(st->env);
    rocksdb_options_set_env(st->opts, st->env);
    rocksdb_options_set_create_if_missing(st->opts, 1);
    rocksdb_options_set_create_missing_column_families(st->opts, 1);
    rocksdb_options_increase_parallelism(st->opts, 2);
    rocksdb_options_set_max_background_jobs(st->opts, 2);
    /* Flushes run at lower CPU priority: with the default two memtables a busy writer fills the
     * second before the first is flushed and RocksDB stalls every write for seconds. Four give the
     * flush room (memtables are allocated as they fill: idle column families cost nothing). */
    rocksdb_options_set_max_write_buffer_number(st->opts, 4);
    rocksdb_options_set_allow_concurrent_memtable_write(st->opts, 0); /* the dedup CF's hashed memtable */
    st->cache = rocksdb_cache_create_lru(opt && opt->block_cache_bytes ? opt->block_cache_bytes
                                                                       : (size_t)1 << 30);
    st->table = rocksdb_block_based_options_create();
    rocksdb_block_based_options_set_block_cache(st->table, st->cache);
    rocksdb_block_based_options_set_filter_policy(st->table, rocksdb_filterpolicy_create_bloom(10));
    rocksdb_block_based_options_set_cache_index_and_filter_blocks(st->table, 1);
    /* Index and filter blocks live in the block cache (bounded memory), but a point read needs
     * them before any data block: keep them in the cache's high-priority pool, and pin those of
     * L0 files (every point read consults each L0 file), so a scan or a compaction-fresh working
     * set of data blocks does not evict them and a lookup does not reload them. */
    rocksdb_block_based_options_set_cache_index_and_filter_blocks_with_high_priority(st->table, 1);
    rocksdb_block_based_options_set_pin_l0_filter_and_index_blocks_in_cache(st->table, 1);

    const char *names[STORE_CF_COUNT + 1];
    const rocksdb_options_t *cfo[STORE_CF_COUNT + 1];
    for (int i = 0; i <= STORE_CF_COUNT; i++) {
        st->cf_opts[i] = rocksdb_options_create_copy(st->opts);
        rocksdb_options_set_block_based_table_factory(st->cf_opts[i], st->table);
        rocksdb_options_set_compression(st->cf_opts[i], rocksdb_lz4_compression);
        /* Most point reads on the write path miss (a new identity, a new event id): a bloom filter
         * over the memtable's whole keys answers those without walking the skip list. */
        rocksdb_options_set_memtable_prefix_bloom_size_ratio(st->cf_opts[i], 0.05);
        rocksdb_options_set_memtable_whole_key_filtering(st->cf_opts[i], 1);
        /* ident and node keys, too, are only read whole (the identity graph's point reads; a
         * sandbox goes by range delete), and a new person's keys land at random in them. */
        if (i == STORE_CF_DEDUP || i == STORE_CF_IDENT || i == STORE_CF_NODE) {
            rocksdb_options_set_prefix_extractor(
                st->cf_opts[i],
                rocksdb_slicetransform_create(NULL, no_state, whole_key, always, never, whole_key_name));
            rocksdb_options_set_hash_link_list_rep(st->cf_opts[i], 1u << 20);
        }
        names[i] = i < STORE_CF_COUNT ? cf_names[i] : "default";
        cfo[i] = st->cf_opts[i];
    }
    st->db = rocksdb_open_column_families(st->opts, dir, STORE_CF_COUNT + 1, names, cfo, st->cf, &err);
    if (err) {
        if (errmsg) *errmsg = kith_xstrdup(err);
        rocksdb_free(err);
        st->db = NULL;
        store_close(st);
        return KITH_EIO;
    }
    /* Batches are written without a sync; store_sync_wal() makes everything written so far durable
     * with one fsync, so the writer can prepare the next group while the previous one syncs. */
    st->wopts = rocksdb_writeoptions_create();
    rocksdb_writeoptions_set_sync(st->wopts, 0);
    st->sync = opt ? opt->sync : true;
    st->ropts = rocksdb_readoptions_create();
    *out = st;
    return 0;
}

void store_close(kith_store *st)
{
    if (!st) return;
    if (st->db) {
        for (int i = 0; i <= STORE_CF_COUNT; i++)
            if (st->cf[i]) rocksdb_column_family_handle_destroy(st->cf[i]);
        rocksdb_close(st->db);
    }
    for (int i = 0; i <= STORE_CF_COUNT; i++)
        if (st->cf_opts[i]) rocksdb_options_destroy(st->cf_opts[i]);
    if (st->wopts) rocksdb_writeoptions_destroy(st->wopts);
    if (st->ropts) rocksdb_readoptions_destroy(st->ropts);
    if (st->table) rocksdb_block_based_options_destroy(st->table);
    if (st->cache) rocksdb_cache_destroy(st->cache);
    rocksdb_options_destroy(st->opts);
    if (st->env) rocksdb_env_destroy(st->env);
    free(st);
}

static int finish_get(char *v, size_t vl, char *err, kith_buf *val)
{
    if (err) {
        kith_log(KITH_LOG_ERROR, "store", "get: %s", err);
        rocksdb_free(err);
        return KITH_EIO;
    }
    if (!v) return KITH_ENOTFOUND;
    val->len = 0;
    kith_buf_append(val, v, vl);
    rocksdb_free(v);
    return 0;
}

int store_get(kith_store *st, int cf, const void *key, size_t klen, kith_buf *val)
{
    char *err = NULL;
    size_t vl = 0;
    char *v = rocksdb_get_cf(st->db, read_opts(st), st->cf[cf], key, klen, &vl, &err);
    return finish_get(v, vl, err, val);
}

store_batch *store_batch_new(kith_store *st)
{
    store_batch *b = kith_xcalloc(1, sizeof *b);
    b->st = st;
    b->wb = rocksdb_writebatch_wi_create(1 << 20, 1);
    b->blind = kith_xcalloc(1, sizeof *b->blind);
    b->tail = rocksdb_writebatch_create();
    return b;
}

void store_batch_free(store_batch *b)
{
    if (!b) return;
    rocksdb_writebatch_wi_destroy(b->wb);
    store_blind_free(b->blind);
    rocksdb_writebatch_destroy(b->tail);
    free(b);
}

void store_batch_put(store_batch *b, int cf, const void *k, size_t kl, const void *v, size_t vl)
{
    rocksdb_writebatch_wi_put_cf(b->wb, b->st->cf[cf], k, kl, v, vl);
}

void store_batch_put_blind2(store_batch *b, int cf, const void *k, size_t kl, const void *v1,
                            size_t vl1, const void *v2, size_t vl2)
{
    store_blind *bl = b->blind;
    if (bl->n == bl->cap) {
        bl->cap = bl->cap ? bl->cap * 2 : 1024;
        bl->v = kith_xrealloc(bl->v, bl->cap * sizeof *bl->v);
    }
    bl->v[bl->n] = (blind_ent){bl->data.len, (uint32_t)kl, (uint32_t)(vl1 + vl2), (uint32_t)bl->n,
                               (uint8_t)cf, false};
    bl->n++;
    kith_buf_append(&bl->data, k, kl);
    if (vl1) kith_buf_append(&bl->data, v1, vl1);
    if (vl2) kith_buf_append(&bl->data, v2, vl2);
}

void store_batch_put_blind(store_batch *b, int cf, const void *k, size_t kl, const void *v, size_t vl)
{
    store_batch_put_blind2(b, cf, k, kl, v, vl, NULL, 0);
}

void store_batch_delete_blind(store_batch *b, int cf, const void *k, size_t kl)
{
    store_blind_delete(b->st, &b->blind, cf, k, kl);
}

void store_batch_delete(store_batch *b, int cf, const void *k, size_t kl)
{
    rocksdb_writebatch_wi_delete_cf(b->wb, b->st->cf[cf], k, kl);
}

int store_batch_get(kith_store *st, store_batch *b, int cf, const void *k, size_t kl, kith_buf *val)
{
    char *err = NULL;
    size_t vl = 0;
    char *v = rocksdb_writebatch_wi_get_from_batch_and_db_cf(b->wb, st->db, st->ropts, st->cf[cf], k,
                                                             kl, &vl, &err);
    return finish_get(v, vl, err, val);
}

void store_batch_put_tail(store_batch *b, int cf, const void *k, size_t kl, const void *v, size_t vl)
{
    rocksdb_writebatch_put_cf(b->tail, b->st->cf[cf], k, kl, v, vl);
}

void store_batch_delete_tail(store_batch *b, int cf, const void *k, size_t kl)
{
    rocksdb_writebatch_delete_cf(b->tail, b->st->cf[cf], k, kl);
}

/* The indexed part and the tail as one atomic write: one WriteBatch of both reps (a rep is an 8-byte
 * sequence, a 4-byte little-endian count, then the records). */
static void write_with_tail(kith_store *st, store_batch *b, char **err)
{
    size_t wl = 0, tl = 0;
    const char *w = rocksdb_writebatch_wi_data(b->wb, &wl);
    const char *t = rocksdb_writebatch_data(b->tail, &tl);
    if (wl < 12 || tl < 12) {
        *err = strdup("malformed write batch");
        return;
    }
    uint32_t n = (uint32_t)rocksdb_writebatch_wi_count(b->wb) + (uint32_t)rocksdb_writebatch_count(b->tail);
    char *all = kith_xmalloc(wl + tl - 12);
    memcpy(all, w, wl);
    memcpy(all + wl, t + 12, tl - 12);
    for (int i = 0; i < 4; i++) all[8 + i] = (char)(n >> (8 * i));
    rocksdb_writebatch_t *wb = rocksdb_writebatch_create_from(all, wl + tl - 12);
    free(all);
    rocksdb_write(st->db, st->wopts, wb, err);
    rocksdb_writebatch_destroy(wb);
}

size_t store_batch_count(store_batch *b)
{
    return (size_t)rocksdb_writebatch_wi_count(b->wb) + b->blind->n +
           (size_t)rocksdb_writebatch_count(b->tail);
}

void store_batch_set_hooks(store_batch *b, const store_batch_hooks *h)
{
    if (h) b->hooks = *h;
    else memset(&b->hooks, 0, sizeof b->hooks);
}

int store_batch_commit(kith_store *st, store_batch *b)
{
    char *err = NULL;
    if (rocksdb_writebatch_count(b->tail) > 0) write_with_tail(st, b, &err);
    else if (rocksdb_writebatch_wi_count(b->wb) > 0) rocksdb_write_writebatch_wi(st->db, st->wopts, b->wb, &err);
    rocksdb_writebatch_wi_clear(b->wb);
    rocksdb_writebatch_clear(b->tail);
    if (b->hooks.settled) b->hooks.settled(b->hooks.arg, err == NULL);
    if (err) {
        kith_log(KITH_LOG_ERROR, "store", "commit: %s", err);
        rocksdb_free(err);
        return KITH_EIO;
    }
    return 0;
}

int store_sync_wal(kith_store *st)
{
    if (!st->sync) return 0;
    char *err = NULL;
    rocksdb_flush_wal(st->db, 1, &err);
    if (err) {
        kith_log(KITH_LOG_ERROR, "store", "WAL sync: %s", err);
        rocksdb_free(err);
        return KITH_EIO;
    }
    return 0;
}

void store_batch_clear(store_batch *b)
{
    rocksdb_writebatch_wi_clear(b->wb);
    rocksdb_writebatch_clear(b->tail);
    b->blind->n = b->blind->nsp = 0;
    b->blind->data.len = 0;
    if (b->hooks.settled) b->hooks.settled(b->hooks.arg, false);
}

void store_batch_savepoint(store_batch *b)
{
    rocksdb_writebatch_wi_set_save_point(b->wb);
    store_blind *bl = b->blind;
    if (bl->nsp == bl->capsp) {
        bl->capsp = bl->capsp ? bl->capsp * 2 : 64;
        bl->sp = kith_xrealloc(bl->sp, bl->capsp * sizeof *bl->sp);
    }
    bl->sp[bl->nsp][0] = bl->n;
    bl->sp[bl->nsp][1] = bl->data.len;
    bl->nsp++;
    if (b->hooks.savepoint) b->hooks.savepoint(b->hooks.arg);
}

void store_batch_rollback(store_batch *b)
{
    char *err = NULL;
    rocksdb_writebatch_wi_rollback_to_save_point(b->wb, &err);
    if (err) rocksdb_free(err);
    store_blind *bl = b->blind;
    if (bl->nsp > 0) {
        bl->nsp--;
        bl->n = bl->sp[bl->nsp][0];
        bl->data.len = bl->sp[bl->nsp][1];
    }
    if (b->hooks.rollback) b->hooks.rollback(b->hooks.arg);
}

store_blind *store_batch_take_blind(store_batch *b)
{
    if (b->blind->n == 0) {
        b->blind->nsp = 0;
        b->blind->data.len = 0;
        return NULL;
    }
    store_blind *taken = b->blind;
    taken->nsp = 0;
    b->blind = kith_xcalloc(1, sizeof *b->blind);
    /* The next group is likely of the same size: no regrowth on the way. */
    kith_buf_reserve(&b->blind->data, taken->data.len);
    b->blind->cap = taken->n;
    b->blind->v = kith_xmalloc(b->blind->cap * sizeof *b->blind->v);
    return taken;
}

static _Thread_local const char *sort_data;

static int blind_cmp(const void *a, const void *b)
{
    const blind_ent *x = a, *y = b;
    if (x->cf != y->cf) return x->cf < y->cf ? -1 : 1;
    uint32_t n = x->klen < y->klen ? x->klen : y->klen;
    int c = memcmp(sort_data + x->off, sort_data + y->off, n);
    if (c) return c;
    if (x->klen != y->klen) return x->klen < y->klen ? -1 : 1;
    return x->seq < y->seq ? -1 : x->seq > y->seq;
}

int store_blind_write(kith_store *st, store_blind *bl)
{
    sort_data = bl->data.data;
    qsort(bl->v, bl->n, sizeof *bl->v, blind_cmp);
    rocksdb_writebatch_t *wb = rocksdb_writebatch_create();
    for (size_t i = 0; i < bl->n; i++) {
        const blind_ent *x = &bl->v[i];
        const char *p = bl->data.data + x->off;
        if (i + 1 < bl->n && x[1].cf == x->cf && x[1].klen == x->klen &&
            memcmp(bl->data.data + x[1].off, p, x->klen) == 0)
            continue; /* a later write of the key follows */
        if (x->del) rocksdb_writebatch_delete_cf(wb, st->cf[x->cf], p, x->klen);
        else rocksdb_writebatch_put_cf(wb, st->cf[x->cf], p, x->klen, p + x->klen, x->vlen);
    }
    char *err = NULL;
    rocksdb_write(st->db, st->wopts, wb, &err);
    rocksdb_writebatch_destroy(wb);
    if (err) {
        kith_log(KITH_LOG_ERROR, "store", "write: %s", err);
        rocksdb_free(err);
        return KITH_EIO;
    }
    return 0;
}

static void blind_add(store_blind *bl, int cf, const void *k, size_t kl, const void *v, size_t vl,
                      bool del)
{
    if (bl->n == bl->cap) {
        bl->cap = bl->cap ? bl->cap * 2 : 1024;
        bl->v = kith_xrealloc(bl->v, bl->cap * sizeof *bl->v);
    }
    bl->v[bl->n] = (blind_ent){bl->data.len, (uint32_t)kl, (uint32_t)vl, (uint32_t)bl->n, (uint8_t)cf, del};
    bl->n++;
    kith_buf_append(&bl->data, k, kl);
    if (vl) kith_buf_append(&bl->data, v, vl);
}

void store_blind_put(kith_store *st, store_blind **bl, int cf, const void *k, size_t kl, const void *v,
                     size_t vl)
{
    (void)st;
    if (!*bl) *bl = kith_xcalloc(1, sizeof **bl);
    blind_add(*bl, cf, k, kl, v, vl, false);
}

void store_blind_delete(kith_store *st, store_blind **bl, int cf, const void *k, size_t kl)
{
    (void)st;
    if (!*bl) *bl = kith_xcalloc(1, sizeof **bl);
    blind_add(*bl, cf, k, kl, NULL, 0, true);
}

void store_blind_free(store_blind *bl)
{
    if (!bl) return;
    kith_buf_free(&bl->data);
    free(bl->v);
    free(bl->sp);
    free(bl);
}

/* The smallest key greater than every key with this prefix; returns its length (0: no upper bound). */
static size_t prefix_successor(const uint8_t *p, size_t n, uint8_t *out)
{
    memcpy(out, p, n);
    while (n > 0) {
        if (out[n - 1] != 0xff) {
            out[n - 1]++;
            return n;
        }
        n--;
    }
    return 0;
}

int store_delete_prefix(kith_store *st, int cf, const void *prefix, size_t plen)
{
    uint8_t end[64];
    if (plen > sizeof end) return KITH_EINVAL;
    size_t elen = prefix_successor(prefix, plen, end);
    char *err = NULL;
    if (elen == 0) {
        memset(end, 0xff, sizeof end);
        elen = sizeof end;
    }
    rocksdb_delete_range_cf(st->db, st->wopts, st->cf[cf], prefix, plen, (const char *)end, elen, &err);
    if (!err) return store_sync_wal(st);
    if (err) {
        kith_log(KITH_LOG_ERROR, "store", "delete range: %s", err);
        rocksdb_free(err);
        return KITH_EIO;
    }
    return 0;
}

/* (Re)makes the RocksDB iterator of it with its read options (bound and snapshot set). */
static void iter_build(store_iter *it)
{
    if (it->it) rocksdb_iter_destroy(it->it);
    rocksdb_iterator_t *base = rocksdb_create_iterator_cf(it->st->db, it->ropts, it->st->cf[it->cf]);
    it->it = it->b ? rocksdb_writebatch_wi_create_iterator_with_base_cf(it->b->wb, base,
                                                                        it->st->cf[it->cf])
                   : base;
}

store_iter *store_iter_new(kith_store *st, store_batch *b, int cf, const void *prefix, size_t plen)
{
    store_iter *it = kith_xcalloc(1, sizeof *it);
    it->st = st;
    it->cf = cf;
    it->b = b;
    if (plen > sizeof it->prefix) plen = sizeof it->prefix;
    memcpy(it->prefix, prefix, plen);
    it->plen = plen;
    it->ropts = rocksdb_readoptions_create();
    rocksdb_readoptions_set_total_order_seek(it->ropts, 1);
    /* Without an upper bound a seek past the prefix's last visible key walks every key after it
     * that the read cannot see (newer than a snapshot, deleted) until a visible one: quadratic
     * for scans over a snapshot while the writer adds keys. */
    it->ulen = plen ? prefix_successor(it->prefix, plen, it->upper) : 0;
    if (it->ulen)
        rocksdb_readoptions_set_iterate_upper_bound(it->ropts, (const char *)it->upper, it->ulen);
    if (!b && tl_snap && tl_snap->st == st) rocksdb_readoptions_set_snapshot(it->ropts, tl_snap->snap);
    iter_build(it);
    rocksdb_iter_seek(it->it, prefix, plen);
    return it;
}

void store_iter_reset(store_iter *it, const void *prefix, size_t plen)
{
    if (plen > sizeof it->prefix) plen = sizeof it->prefix;
    memcpy(it->prefix, prefix, plen);
    it->plen = plen;
    size_t was = it->ulen;
    it->ulen = plen ? prefix_successor(it->prefix, plen, it->upper) : 0;
    /* The RocksDB iterator reads its upper bound through the read options' Slice at every seek and
     * step, so setting it again moves the bound for the next seek; only a change between "a bound"
     * and "none" needs a new iterator (the snapshot stays in the read options). */
    rocksdb_readoptions_set_iterate_upper_bound(it->ropts, it->ulen ? (const char *)it->upper : NULL,
                                                it->ulen);
    if ((was == 0) != (it->ulen == 0)) iter_build(it);
    rocksdb_iter_seek(it->it, prefix, plen);
}

void store_iter_seek(store_iter *it, const void *key, size_t klen)
{
    rocksdb_iter_seek(it->it, key, klen);
}

void store_iter_seek_for_prev(store_iter *it, const void *key, size_t klen)
{
    rocksdb_iter_seek_for_prev(it->it, key, klen);
}

bool store_iter_valid(store_iter *it)
{
    if (!rocksdb_iter_valid(it->it)) return false;
    size_t kl;
    const char *k = rocksdb_iter_key(it->it, &kl);
    return kl >= it->plen && memcmp(k, it->prefix, it->plen) == 0;
}

void store_iter_next(store_iter *it)
{
    rocksdb_iter_next(it->it);
}

void store_iter_prev(store_iter *it)
{
    rocksdb_iter_prev(it->it);
}

const uint8_t *store_iter_key(store_iter *it, size_t *klen)
{
    return (const uint8_t *)rocksdb_iter_key(it->it, klen);
}

const uint8_t *store_iter_value(store_iter *it, size_t *vlen)
{
    return (const uint8_t *)rocksdb_iter_value(it->it, vlen);
}

void store_iter_free(store_iter *it)
{
    if (!it) return;
    rocksdb_iter_destroy(it->it);
    rocksdb_readoptions_destroy(it->ropts);
    free(it);
}

store_snapshot *store_snapshot_new(kith_store *st)
{
    store_snapshot *s = kith_xcalloc(1, sizeof *s);
    s->st = st;
    s->snap = rocksdb_create_snapshot(st->db);
    s->ropts = rocksdb_readoptions_create();
    rocksdb_readoptions_set_snapshot(s->ropts, s->snap);
    return s;
}

void store_snapshot_free(store_snapshot *s)
{
    if (!s) return;
    if (tl_snap == s) tl_snap = NULL;
    rocksdb_readoptions_destroy(s->ropts);
    rocksdb_release_snapshot(s->st->db, s->snap);
    free(s);
}

void store_snapshot_use(store_snapshot *s)
{
    tl_snap = s;
}

uint64_t store_estimate_keys(kith_store *st, int cf)
{
    uint64_t v = 0;
    if (!rocksdb_property_int_cf(st->db, st->cf[cf], "rocksdb.estimate-num-keys", &v)) return v;
    return 0;
}


bool store_background_pending(kith_store *st)
{
    uint64_t v = 0;
    if (!rocksdb_property_int(st->db, "rocksdb.num-running-compactions", &v) && v) return true;
    if (!rocksdb_property_int(st->db, "rocksdb.num-running-flushes", &v) && v) return true;
    for (int i = 0; i <= STORE_CF_COUNT; i++) {
        if (!rocksdb_property_int_cf(st->db, st->cf[i], "rocksdb.compaction-pending", &v) && v)
            return true;
        if (!rocksdb_property_int_cf(st->db, st->cf[i], "rocksdb.mem-table-flush-pending", &v) && v)
            return true;
    }
    return false;
}
