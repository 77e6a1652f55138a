/* kith identity: what graph.c, rules.c and events.c share (not a public header). */
#ifndef KITH_IDENTITY_INT_H
#define KITH_IDENTITY_INT_H

#include <pthread.h>
#include <stdatomic.h>

#include "kith/engine.h"
#include "cache.h"

#define RULES_MAX_UNIQUE 64
#define RULES_MAX_PRIORITY 256
#define RULES_MAX_BLOCKED 4096

/* The linking rules of one sandbox, parsed. Immutable once published; a replaced one is retired and
 * freed with the engine, so a pointer from rules_for() stays valid while kithd runs. */
typedef struct link_rules {
    uint32_t unique[RULES_MAX_UNIQUE];
    int nunique;
    uint32_t prio[RULES_MAX_PRIORITY]; /* namespace ids, highest priority first; empty: by type */
    int nprio;
    int max_identities;
    struct blocked_value {
        uint32_t ns;
        char *v;
    } * blocked;
    size_t nblocked;
    json_t *doc; /* the document as stored (namespace codes) */
} link_rules;

struct ident_state {
    pthread_mutex_t mu; /* rules table */
    struct rules_slot {
        uint32_t sb;
        link_rules *r;
    } * rules;
    size_t nrules, caprules;
    link_rules **retired;
    size_t nretired;
    /* apply thread */
    cluster_change *chg;
    size_t nchg, capchg;
    struct {
        cluster_change_fn fn;
        void *arg;
    } subs[16];
    int nsubs;
    int64_t stamp; /* last edge stamp handed out (µs, strictly increasing) */
    kv_cache *kv;   /* the writer's copy of the graph's keys (cache.h) */
    kith_buf wlog;  /* the group's writes of graph keys, in order (graph.c) */
    size_t nwlog;
    uint64_t log_seq; /* the last identity log record's key (identity_emit_writes) */
    /* groups' write logs on their way to the syncer (identity_blind_fill), oldest first */
    pthread_mutex_t pmu;
    struct ident_pending {
        uint64_t group, seq;
        kith_buf w;
        size_t n;
        struct ident_pending *next;
    } *phead, *ptail;
    bool stale;       /* the cache was dropped: wait for in-flight blind writes before a store read */
    /* for /metrics (any thread): the writer cache's size after the last group, the log's traffic */
    _Atomic size_t st_entries, st_bytes;
    _Atomic uint64_t st_clears, st_log_records, st_log_bytes, st_replayed;
    struct ident_mark {
        size_t nchg, wlog, nwlog;
    } * marks; /* at each savepoint of the batch (store_batch_hooks) */
    size_t nmarks, capmarks;
};

/* Apply thread, at the end of a group (identity_flush_group): the group's graph writes into the
 * batch's tail, one per key, in key order. */
int identity_emit_writes(kith_engine *e, store_batch *b);

/* Lazily created, any thread. */
struct ident_state *ident_state_get(kith_engine *e);
/* Any thread: the rules of a sandbox (defaults when none were set); borrowed, valid until close. */
const link_rules *rules_for(kith_engine *e, uint32_t sandbox);
void rules_free(link_rules *r);
/* Rank of a namespace: lower is higher priority (explicit list first, then by type). */
int rules_rank(const link_rules *r, uint32_t ns, int type);
int rules_unique_index(const link_rules *r, uint32_t ns); /* -1 when not unique */
bool rules_blocked(const link_rules *r, uint32_t ns, const char *v, size_t len);

/* Apply thread: remembers a changed cluster for the group's event; reasons may carry
 * CLUSTER_GONE_BIT when the cluster no longer exists. */
#define CLUSTER_GONE_BIT 0x80000000u
void identity_changed(kith_engine *e, uint32_t sandbox, uint64_t cluster, unsigned reasons);

#endif
