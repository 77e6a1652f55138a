/* kith store: the only module that sees RocksDB.
 *
 * One database per data directory, one column family per access pattern (DESIGN.md section 3). Every key
 * starts with the 4-byte big-endian sandbox id, so a sandbox is a key prefix and deleting one is a range
 * delete. Writes happen only on the apply thread through a store_batch (read-your-writes, committed with
 * one WAL sync per group); any thread may read committed data with store_get and iterators. */
#ifndef KITH_STORE_H
#define KITH_STORE_H

#include "kith/base.h"

enum store_cf {
    STORE_CF_META,    /* sandbox, kind, id → JSON control-plane objects */
    STORE_CF_IDENT,   /* sandbox, namespace id, value → identity id, cluster id, seen times */
    STORE_CF_NODE,    /* sandbox, identity id → namespace, value, edges */
    STORE_CF_CLUSTER, /* sandbox, cluster id → members */
    STORE_CF_FRAG,    /* sandbox, identity id, dataset id → record fragment */
    STORE_CF_EVENT,   /* sandbox, identity id, timestamp, event id → event */
    STORE_CF_PROFILE, /* sandbox, cluster id → materialised union view */
    STORE_CF_SEGIDX,  /* sandbox, segment id, cluster id → membership */
    STORE_CF_TIMER,   /* sandbox, due time, cluster id, segment id */
    STORE_CF_DEDUP,   /* sandbox, message id → first seen */
    STORE_CF_CA,      /* sandbox, cluster id → computed attribute state (kith/ca.h) */
    STORE_CF_IDLOG,   /* log seq → a group's identity graph writes, until they are materialised */
    STORE_CF_COUNT
};

typedef struct kith_store kith_store;
typedef struct store_batch store_batch;
typedef struct store_iter store_iter;

typedef struct store_options {
    size_t block_cache_bytes; /* 0 → 1 GiB (profiles, identities and memberships stay in memory) */
    bool sync;                /* WAL fsync on every commit (default true: an ack is durable) */
} store_options;

/* Opens (creating if needed) the database in dir. Returns 0 and *out (owned; store_close), or KITH_EIO
 * with *errmsg (owned, free()) saying why. */
int store_open(const char *dir, const store_options *opt, kith_store **out, char **errmsg);
void store_close(kith_store *st);

/* Committed read. Returns 0 and fills val (reset first; caller frees), KITH_ENOTFOUND, or KITH_EIO. */
int store_get(kith_store *st, int cf, const void *key, size_t klen, kith_buf *val);

/* A write batch with read-your-writes over st (borrowed). Owned by the apply thread. */
store_batch *store_batch_new(kith_store *st);
void store_batch_free(store_batch *b);
void store_batch_put(store_batch *b, int cf, const void *k, size_t kl, const void *v, size_t vl);
/* An append that nothing reads back within the group (events): skips the batch's index. It is not
 * visible to store_batch_get or batch iterators before the commit; operations that must see such
 * writes run exclusive (after the previous group was written). */
void store_batch_put_blind(store_batch *b, int cf, const void *k, size_t kl, const void *v, size_t vl);
/* The same with the value in two parts (a header and a body), copied once. */
void store_batch_put_blind2(store_batch *b, int cf, const void *k, size_t kl, const void *v1,
                            size_t vl1, const void *v2, size_t vl2);
void store_batch_delete(store_batch *b, int cf, const void *k, size_t kl);
void store_batch_delete_blind(store_batch *b, int cf, const void *k, size_t kl);
/* The batch's tail: writes committed atomically with the indexed part (one RocksDB write) that skip the
 * index, so nothing reads them back before the commit and no savepoint covers them. For a module that
 * keeps its own copy of what it wrote and hands the group's writes over once, at the group's end (the
 * identity graph). */
void store_batch_put_tail(store_batch *b, int cf, const void *k, size_t kl, const void *v, size_t vl);
void store_batch_delete_tail(store_batch *b, int cf, const void *k, size_t kl);
/* Reads through the batch to the committed database. Same returns as store_get. */
int store_batch_get(kith_store *st, store_batch *b, int cf, const void *k, size_t kl, kith_buf *val);
size_t store_batch_count(store_batch *b);
/* Writes the batch's indexed part atomically (to the memtable and the WAL, visible to readers, not yet
 * synced) and clears it. The blind part is not written: take it with store_batch_take_blind. 0 or
 * KITH_EIO. */
int store_batch_commit(kith_store *st, store_batch *b);
/* The blind appends of a batch, detached (NULL when there are none); the batch starts a fresh set.
 * Write them after the indexed part they refer to (blind appends are keyed by ids the indexed part
 * creates, so a crash between the two writes leaves unreachable appends, never dangling references);
 * neither is acknowledged before the WAL sync that follows. Any thread. */
typedef struct store_blind store_blind;
store_blind *store_batch_take_blind(store_batch *b);
int store_blind_write(kith_store *st, store_blind *bl);
/* Adds writes to a detached blind part (NULL *bl: one is made), e.g. on the syncer thread. */
void store_blind_put(kith_store *st, store_blind **bl, int cf, const void *k, size_t kl, const void *v,
                     size_t vl);
void store_blind_delete(kith_store *st, store_blind **bl, int cf, const void *k, size_t kl);
void store_blind_free(store_blind *bl);
/* Makes every batch written so far durable (one fsync of the WAL), unless the store was opened with
 * sync = false. 0 or KITH_EIO. */
int store_sync_wal(kith_store *st);
void store_batch_clear(store_batch *b);
/* Savepoints: undo everything one failed operation put in the batch. */
void store_batch_savepoint(store_batch *b);
void store_batch_rollback(store_batch *b);
/* Lets the owner of state kept beside a batch (the identity graph's change list and writer cache) follow
 * it: savepoint after a savepoint is set, rollback after the batch was rolled back to the latest one,
 * settled when the batch was committed (ok) or cleared (!ok) — every savepoint is gone then. One set
 * of hooks per batch (NULL removes them); they run on the apply thread. */
typedef struct store_batch_hooks {
    void (*savepoint)(void *arg);
    void (*rollback)(void *arg);
    void (*settled)(void *arg, bool ok);
    void *arg;
} store_batch_hooks;
void store_batch_set_hooks(store_batch *b, const store_batch_hooks *h);

/* Deletes every key starting with prefix in cf (a range delete written and synced at once). Apply thread
 * only, outside a batch. */
int store_delete_prefix(kith_store *st, int cf, const void *prefix, size_t plen);

/* Iterates keys beginning with prefix, in key order, over committed data, or over committed data plus
 * batch b when b is not NULL. The iterator borrows st (and b) and must be freed before them. */
store_iter *store_iter_new(kith_store *st, store_batch *b, int cf, const void *prefix, size_t plen);
/* Re-aims the iterator at another prefix (the same length as the one it was made with, else it is
 * rebuilt) and positions at its first key: a scan that visits many small prefixes (a profile's
 * events, its memberships) makes one iterator instead of one per prefix. Keeps the snapshot. */
void store_iter_reset(store_iter *it, const void *prefix, size_t plen);
/* Positions at the first key >= key (still bounded by the prefix). */
void store_iter_seek(store_iter *it, const void *key, size_t klen);
/* Positions at the last key <= key within the prefix (for descending scans). */
void store_iter_seek_for_prev(store_iter *it, const void *key, size_t klen);
bool store_iter_valid(store_iter *it);
void store_iter_next(store_iter *it);
void store_iter_prev(store_iter *it);
/* Borrowed; valid until the iterator moves. */
const uint8_t *store_iter_key(store_iter *it, size_t *klen);
const uint8_t *store_iter_value(store_iter *it, size_t *vlen);
void store_iter_free(store_iter *it);

/* Snapshots: a consistent, frozen view of the whole store (every column family) as of the moment it is
 * taken. store_snapshot_use(s) makes the calling thread's committed reads (store_get and
 * store_iter_new without a batch) read s until store_snapshot_use(NULL), so any read path (identity,
 * profile) can run over a snapshot unchanged. Free a snapshot only after every thread stopped using it. */
typedef struct store_snapshot store_snapshot;
store_snapshot *store_snapshot_new(kith_store *st);
void store_snapshot_free(store_snapshot *s);
void store_snapshot_use(store_snapshot *s);

/* Rough count of keys in a column family (RocksDB's estimate). */
uint64_t store_estimate_keys(kith_store *st, int cf);
/* True while RocksDB runs a flush or compaction, or one is due (for benchmarks and tests that want
 * a settled store). */
bool store_background_pending(kith_store *st);

/* Key building: a fixed buffer with append helpers (keys are short). */
typedef struct store_key {
    uint8_t b[1200];
    size_t n;
} store_key;
static inline void skey_init(store_key *k, uint32_t sandbox)
{
    k->n = 0;
    kith_put_be32(k->b, sandbox);
    k->n = 4;
}
static inline void skey_u8(store_key *k, uint8_t v)
{
    if (k->n < sizeof k->b) k->b[k->n++] = v;
}
static inline void skey_u32(store_key *k, uint32_t v)
{
    if (k->n + 4 <= sizeof k->b) kith_put_be32(k->b + k->n, v), k->n += 4;
}
static inline void skey_u64(store_key *k, uint64_t v)
{
    if (k->n + 8 <= sizeof k->b) kith_put_be64(k->b + k->n, v), k->n += 8;
}
static inline void skey_bytes(store_key *k, const void *p, size_t len)
{
    if (k->n + len > sizeof k->b) len = sizeof k->b - k->n;
    for (size_t i = 0; i < len; i++) k->b[k->n + i] = ((const uint8_t *)p)[i];
    k->n += len;
}

#endif
