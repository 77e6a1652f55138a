/* kith segment service internals shared by svc_defs.c (definitions) and svc_stream.c (streaming
 * evaluation, membership, timers). */
#ifndef KITH_SVC_INT_H
#define KITH_SVC_INT_H

#include <pthread.h>

#include "kith/pqlinc.h"
#include "kith/segsvc.h"

#define SEGDEF_META_KIND 'g'

typedef struct segdef {
    uint32_t sb;
    char id[SEGDEF_ID_LEN + 1];
    json_t *doc;       /* stored definition (owned) */
    char *name;        /* its name (owned copy, for the uniqueness check) */
    struct segdef *id_next, *name_next; /* hash chains of the id and name indexes (svc_defs.c) */
    pql_program *prog; /* compiled (owned); NULL when it no longer compiles */
    int mode;          /* enum pql_mode */
    int64_t created;   /* creationTime (ms), the evaluation order */
    char mpid[64];     /* mergePolicyId ("" = the sandbox's default policy) */
    int64_t batch_eval; /* batch segments: `now` of the last segment job that evaluated this
                           expression completely (0: none); a realized membership older than it
                           reads as existing (svc_status_shown) */
    char *text;        /* the PQL text compiled (owned): pql/json definitions' canonical text */
    int64_t active_since; /* when this program began to be maintained (updateTime): incremental
                             aggregate states built before it lack its sites (svc_inc.c) */
} segdef;

/* A merge policy resolved for the group's evaluations (svc_stream.c). */
struct pol_slot {
    uint32_t sb;
    char id[64];
    merge_policy p;
    bool materialised; /* merges as the sandbox's views are materialised (their diffs hold) */
    uint64_t sig;      /* merge_policy_signature(&p): a view merged under it answers */
};

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
struct svc_jobs;

struct segsvc {
    kith_engine *e;
    pthread_rwlock_t lock; /* defs: written on the apply thread, read anywhere */
    segdef **v;
    size_t n, cap;
    segdef **idh;   /* (sandbox, id) → definition, chained (svc_defs.c); under lock like v */
    segdef **nameh; /* (sandbox, name) → definition, the same way */
    size_t idh_cap;
    /* apply thread */
    struct touched {
        uint32_t sb;
        uint64_t cluster;
        unsigned what;
        uint64_t etype; /* EVENT: the hash of the event's eventType (svc_etype_hash) */
    } * t;
    size_t nt, capt;
    pql_evaluator *ev;
    struct seg_change *chg; /* the group's membership changes, for the change stream */
    size_t nchg, capchg;
    struct segfeed *feed;
    struct pol_slot *pol; /* policies resolved in this group */
    size_t npol, cappol;
    uint64_t gen;           /* bumped whenever the definitions change (svc_defs.c) */
    struct seg_index *idx;  /* svc_index.c */
    uint32_t *cand;         /* candidates of the cluster being evaluated (positions in v) */
    uint8_t *cand_kind;     /* per position: SVC_CAND_* */
    /* timer thread */
    pthread_t timer;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool timer_started, stopping;
    /* counters */
    _Atomic uint64_t evaluations, realized, exited, timers_fired, timers_set, flush_ns;
    struct svc_jobs *jobs; /* segment and export jobs (svc_jobs.c) */
    /* incremental aggregates (svc_inc.c), apply thread */
    struct inc_reg *inc_reg;
    size_t ninc_reg;
    struct inc_gev {
        uint32_t sb;
        uint64_t cluster;
        json_t *ev; /* owned reference */
    } * gev;        /* the group's events */
    size_t ngev, capgev;
    _Atomic uint64_t inc_builds, inc_writes, event_reads;
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
/* The PQL text of a definition (borrowed, as long as d): its pql/text value, or the canonical text
 * of its pql/json tree; NULL when it has none (or d is NULL). */
const char *svc_def_text(const segdef *d);

/* svc_index.c: which streaming segments a change concerns. */
#define SVC_MAX_PATHS 64
enum { SVC_CAND_DIRECT = 0, SVC_CAND_DEPS = 1, SVC_CAND_POLICY = 2 };
typedef struct seg_touch {
    unsigned what;          /* SEGSVC_TOUCH_* bits */
    const uint64_t *etypes; /* EVENT: hashes of the new events' eventType */
    size_t netypes;
    bool etypes_all;        /* too many to list: every segment reading events */
    char **paths;           /* RECORD: union-view paths whose value changed (dotted) */
    size_t npaths;
    bool paths_all;         /* RECORD: treat every field as changed */
} seg_touch;
uint64_t svc_etype_hash(const char *s, size_t len);
/* Apply thread: the positions (in s->v, creation order) of sandbox sb's streaming segments that
 * touch t may concern, in s->cand (returns how many), with s->cand_kind[pos]: DIRECT (evaluate),
 * DEPS (evaluate when a segment it reads with inSegment changed for this profile), POLICY (a
 * record touch: evaluate when its merge policy is not the materialised one). */
size_t svc_index_candidates(struct segsvc *s, uint32_t sb, const seg_touch *t);
bool svc_sandbox_has_streaming(struct segsvc *s, uint32_t sb);
void svc_index_free(struct segsvc *s);
/* The dotted paths whose value differs between two profile entities (either may be NULL),
 * appended to *paths (owned strings); *all when there are more than SVC_MAX_PATHS. */
void svc_profile_diff(const json_t *old, const json_t *cur, char ***paths, size_t *n, bool *all);

/* svc_inc.c: per-profile incremental aggregate states of the streaming segments' event
 * aggregates (kith/pqlinc.h). Apply thread. */
struct inc_sig;
struct svc_inc_slot {
    uint64_t sig;
    int64_t built;
    pql_inc_state st;
    const struct inc_sig *g;
    bool valid, need, cand, changed;
};
typedef struct svc_inc {
    uint32_t sb;
    uint64_t cluster;
    int64_t now, built_at;
    struct inc_reg *reg;
    struct svc_inc_slot *v; /* by signature */
    size_t n, cap, nneed;
    bool exists, full, dirty;
} svc_inc;
/* Loads the cluster's states for the candidates in s->cand (every signature when what has PROFILE
 * or DELETE), adds the group's events to the valid ones; returns INT64_MAX, or the instant from
 * which the events must be read (INT64_MIN: all) for svc_inc_build. */
int64_t svc_inc_begin(struct segsvc *s, store_batch *b, uint32_t sb, uint64_t cluster, unsigned what,
                      size_t ncand, int64_t now, svc_inc *x);
/* Builds the states begin asked for from the cluster's events (sorted by timestamp). */
void svc_inc_build(struct segsvc *s, svc_inc *x, json_t *const *evs, size_t n);
/* The states of d's sites (out: one per site, NULL when not usable); true when all are usable. */
bool svc_inc_states_for(svc_inc *x, const segdef *d, const pql_inc_state **out);
/* Prunes, writes the value when it changed, frees. */
void svc_inc_end(struct segsvc *s, store_batch *b, svc_inc *x);
void svc_inc_note_event(struct segsvc *s, uint32_t sb, uint64_t cluster, json_t *ev);
void svc_inc_group_end(struct segsvc *s);
/* A cluster merged away: its value goes. */
void svc_inc_drop(kith_engine *e, store_batch *b, uint32_t sb, uint64_t cluster);
void svc_inc_free(struct segsvc *s);

/* svc_feed.c */
void svc_feed_init(struct segsvc *s);
void svc_feed_free(struct segsvc *s);
/* Syncer thread: publishes the changes of a durable group (borrowed). */
void segfeed_publish_frames(kith_engine *e, struct seg_change *v, size_t n);

/* svc_stream.c */
void svc_membership_drop_segment(kith_engine *e, store_batch *b, uint32_t sb, const char *id);

/* Membership state of (segment, cluster) in the segidx CF (kith/segsvc.h). */
typedef struct seg_state {
    int status;
    int64_t lqt, due;
} seg_state;
/* Apply thread: read through the batch / write both index entries (and nothing of timers). */
seg_state svc_state_get(kith_engine *e, store_batch *b, uint32_t sb, const char *seg,
                        uint64_t cluster);
void svc_state_put(kith_engine *e, store_batch *b, uint32_t sb, const char *seg, uint64_t cluster,
                   const seg_state *st);
/* Apply thread: a realized or exited change written outside the streaming evaluation (batch segment
 * jobs), for the change stream once the group is durable; m: the cluster's members (may be NULL). */
void svc_note_change(struct segsvc *s, uint32_t sb, uint64_t cluster, const char *seg, int status,
                     int64_t lqt, const cluster_members *m);
/* Apply thread: re-evaluates streaming segment d for one cluster on current data at now, as a timer
 * would (a realized membership stays realized), writing state and timer (segment jobs). */
int svc_eval_segment(kith_engine *e, store_batch *b, uint32_t sb, uint64_t cluster, const segdef *d,
                     int64_t now);

/* svc_scan.c: one profile read from committed data (the calling thread's snapshot, if any). */
enum { SVC_LOAD_MEMBERS = 1, SVC_LOAD_EVENTS = 2, SVC_LOAD_COMPUTED = 4 };
typedef struct svc_profile {
    uint64_t cluster;
    bool has_members;
    cluster_members m; /* with SVC_LOAD_MEMBERS or SVC_LOAD_EVENTS */
    json_t *view;      /* materialised union view (owned) or NULL */
    uint64_t view_sig; /* the signature it was merged under (profile_view_signature) */
    json_t *entity;    /* its "entity" (borrowed from view, or own) or NULL */
    json_t *own;       /* an empty entity made to carry _computed (owned) */
    json_t *events;    /* with SVC_LOAD_EVENTS: events at or after since, by timestamp (owned) */
    bool in_arena;     /* view, own and events live in the iterators' arena (svc_profile_clear
                          leaves them to jalloc_arena_reset) */
    struct svc_ev_meta {
        uint64_t identity;             /* the member it is stored under */
        char dataset[KITH_ID_LEN + 1]; /* its dataset */
    } * evmeta;                        /* one per event (owned) */
} svc_profile;
/* Iterators a scanning thread keeps and re-aims (store_iter_reset) instead of making one per
 * profile; NULL members are made on first use. svc_iters_free at the end. With use_arena (only
 * when jalloc_installed()), the JSON a profile load parses is allocated in the thread's arena:
 * no malloc per node and no free walk; the caller calls jalloc_arena_reset(arena) once everything
 * borrowed from the profile is released (svc_profile_clear, then any references it took). */
typedef struct svc_iters {
    store_iter *events;
    /* Sandbox-wide forward cursors over the profile CF and the segidx CF's state entries: a scan
     * that visits clusters in id order (segment and export jobs) steps to the next cluster's
     * entries with Next instead of a seek per profile (any other order still works: a cursor
     * seeks when it would have to go back or is far behind). */
    store_iter *views, *states;
    uint32_t views_sb, states_sb;
    uint64_t views_last, states_last; /* the cluster each was last aimed at */
    /* The cluster CF value of the cluster the next svc_profile_load reads, when the caller's scan
     * of that CF already holds it (borrowed; that load consumes it): no second read. */
    const uint8_t *cluster_val;
    size_t cluster_len;
    bool use_arena;
    struct jalloc_arena *arena;
} svc_iters;
void svc_iters_free(svc_iters *it);
/* 0, or the identity_members error (KITH_ENOTFOUND: the cluster is gone). since: ms or INT64_MIN.
 * SVC_LOAD_COMPUTED sets the computed attributes at now into the entity (`_computed`). its: the
 * thread's iterators, or NULL. */
int svc_profile_load(kith_engine *e, uint32_t sb, uint64_t cluster, unsigned what, int64_t since,
                     int64_t now, svc_iters *its, svc_profile *p);
/* True when a program reads computed attributes. */
bool svc_reads_computed(const pql_deps *dp);
void svc_profile_clear(svc_profile *p);
/* Every membership state of a cluster, in segment id order (at most cap), as stored (the caller
 * applies svc_status_shown's rule). */
typedef struct svc_state_ent {
    char id[SEGDEF_ID_LEN + 1];
    seg_state st;
} svc_state_ent;
size_t svc_states_load(kith_engine *e, uint32_t sb, uint64_t cluster, svc_iters *its,
                       svc_state_ent *out, size_t cap);

/* A batch segment's realized membership entered before the segment's last complete evaluation
 * reads as existing: the job that confirms a member writes nothing (CONTRACT-NOTES "Segment
 * jobs"). Any thread; locks the definitions when status is realized. */
int svc_status_shown(struct segsvc *s, uint32_t sb, const char *seg, int status, int64_t lqt);
/* Apply thread: records that a job at now evaluated batch segment d completely (persisted in the
 * definition as kith:lastBatchEvaluation). */
void svc_def_mark_evaluated(struct segsvc *s, store_batch *b, segdef *d, int64_t now);

/* svc_jobs.c */
void svc_jobs_start(struct segsvc *s);
void svc_jobs_stop(struct segsvc *s);
void svc_jobs_free(struct segsvc *s);
/* Apply thread (segdef_put): evaluates a new or changed definition over the existing profiles as a
 * backfill job (coalesced per sandbox while queued); its id into job_id (37 bytes). */
void svc_jobs_backfill(struct segsvc *s, uint32_t sb, const char *segment_id, char *job_id);

#endif
