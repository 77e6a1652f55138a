/* kith segment service internals shared by svc_defs.c (definitions) and svc_stream.c (streaming
 * evaluation, membership, timers). */
#ifndef KITH_SVC_INT_H
#define KITH_SVC_INT_H

#include <pthread.h>

#include "kith/segsvc.h"

#define SEGDEF_META_KIND 'g'

typedef struct segdef {
    uint32_t sb;
    char id[SEGDEF_ID_LEN + 1];
    json_t *doc;       /* stored definition (owned) */
    pql_program *prog; /* compiled (owned); NULL when it no longer compiles */
    int mode;          /* enum pql_mode */
    int64_t created;   /* creationTime (ms), the evaluation order */
    char mpid[64];     /* mergePolicyId ("" = the sandbox's default policy) */
} segdef;

/* A merge policy resolved for the group's evaluations (svc_stream.c). */
struct pol_slot {
    uint32_t sb;
    char id[64];
    merge_policy p;
    bool materialised; /* {timestampOrdered, pdg}: the profile CF's view answers */
};

struct pending_ev;
struct segfeed;

/* A realized or exited change of one group, published on the change stream once the group is
 * durable (svc_feed.c). */
struct seg_change {
    uint32_t sb;
    uint64_t cluster;
    char seg[SEGDEF_ID_LEN + 1];
    int status;
    int64_t lqt;
    uint32_t ns;  /* an identity of the profile (the cluster's first member) */
    char *value;  /* owned, may be NULL */
    size_t len;
};

struct segsvc {
    kith_engine *e;
    pthread_rwlock_t lock; /* defs: written on the apply thread, read anywhere */
    segdef **v;
    size_t n, cap;
    /* apply thread */
    struct touched {
        uint32_t sb;
        uint64_t cluster;
        unsigned what;
    } * t;
    size_t nt, capt;
    pql_evaluator *ev;
    struct pending_ev *pend; /* events appended recently (their blind writes may still be queued) */
    size_t npend, cappend;
    int32_t *phead; /* hash buckets (identity) → index into pend, -1 terminated */
    int32_t *pnext;
    size_t pbuckets;
    int64_t last_prune;
    struct seg_change *chg; /* the group's membership changes, for the change stream */
    size_t nchg, capchg;
    struct segfeed *feed;
    struct pol_slot *pol; /* policies resolved in this group */
    size_t npol, cappol;
    /* timer thread */
    pthread_t timer;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool timer_started, stopping;
    /* counters */
    _Atomic uint64_t evaluations, realized, exited, timers_fired, timers_set;
};

static inline struct segsvc *svc_of(kith_engine *e)
{
    return e->segsvc;
}

/* svc_defs.c */
int svc_defs_load(struct segsvc *s);
void svc_defs_free(struct segsvc *s);
/* The definitions of a sandbox, apply thread (no lock needed there). */
segdef *svc_def_find(struct segsvc *s, uint32_t sb, const char *id);

/* svc_feed.c */
void svc_feed_init(struct segsvc *s);
void svc_feed_free(struct segsvc *s);
/* Syncer thread: publishes the changes of a durable group (borrowed). */
void segfeed_publish_frames(kith_engine *e, struct seg_change *v, size_t n);

/* svc_stream.c */
void svc_membership_drop_segment(kith_engine *e, store_batch *b, uint32_t sb, const char *id);

#endif
