/* kith segment service: segment definitions (stored in the meta CF, kind 'g', compiled programs
 * cached in memory per sandbox), streaming evaluation inside the writer's group, membership in the
 * segidx CF, timers in the timer CF with a timer thread. PQL itself is kith/pql.h.
 *
 * Storage (all keys start with the 4-byte sandbox id):
 *   meta   [sb]['g'][segment id]                          → definition JSON
 *   segidx [sb][segment id (36)][cluster u64]             → state (17 bytes, below)
 *   segidx [sb][0x00][cluster u64][segment id (36)]       → the same state (by-profile index)
 *   timer  [sb][due ms u64][cluster u64][segment id (36)] → empty
 * State: status u8 (0 none, 1 realized, 2 existing, 3 exited), lastQualificationTime ms u64,
 * pending timer due ms u64 (0 = none). A "none" entry exists only to remember a pending timer. */
#ifndef KITH_SEGSVC_H
#define KITH_SEGSVC_H

#include <jansson.h>
#include <sys/types.h>

#include "kith/engine.h"
#include "kith/pql.h"

#define SEGDEF_ID_LEN 36
#define SEGDEF_MAX_PER_SANDBOX 10000

enum seg_status { SEG_NONE = 0, SEG_REALIZED = 1, SEG_EXISTING = 2, SEG_EXITED = 3 };
const char *seg_status_name(int status);

/* Engine lifecycle (engine.c): init after the apply thread started (loads and compiles the stored
 * definitions, registers the cluster-change subscriber, starts the timer thread); stop before the
 * apply thread stops; free at the end. */
int segsvc_init(kith_engine *e);
void segsvc_stop(kith_engine *e);
void segsvc_free(kith_engine *e);

/* The outcome of storing a definition. */
typedef struct segdef_result {
    int status;       /* HTTP status to answer with */
    char detail[768]; /* what went wrong */
    json_t *errors;   /* [{path, message, line?, column?}] (owned) or NULL */
    json_t *doc;      /* the stored definition (owned) on success */
} segdef_result;

/* Apply thread: creates (cur_version 0) or replaces definition id with body (already merged with
 * the current one for PATCH). Compiles the expression against the sandbox's union schemas, decides
 * evaluationInfo, stores. 0 or an error with res filled. */
int segdef_put(kith_engine *e, store_batch *b, uint32_t sb, const char *id, const json_t *body,
               bool create, segdef_result *res);
/* Apply thread: deletes a definition and its memberships. KITH_ENOTFOUND, KITH_ECONFLICT (another
 * segment uses it: detail names it). */
int segdef_delete(kith_engine *e, store_batch *b, uint32_t sb, const char *id, char *detail,
                  size_t cap);
/* Any thread: the definition (owned) or NULL. */
json_t *segdef_get(kith_engine *e, uint32_t sb, const char *id);
/* Any thread: every definition of the sandbox, oldest first (owned array). */
json_t *segdef_list(kith_engine *e, uint32_t sb);
/* Any thread: id of the definition named name, into out (37 bytes); false when none. */
bool segdef_find_name(kith_engine *e, uint32_t sb, const char *name, char *out);

/* Apply thread: marks a cluster for re-evaluation at the end of the group (what: SEGSVC_TOUCH_*).
 */
/* PROFILE: something of the profile changed (a merge, a computed attribute): every segment runs.
 * EVENT: events were appended (segsvc_note_apply: only segments whose filters admit their types).
 * TIMER: a timer fired. DELETE: data was deleted in this (exclusive) group: everything is
 * re-evaluated, reading events through the batch. RECORD: a record fragment was stored
 * (segsvc_note_apply: only segments reading a field whose union-view value changed). */
/* MOVED (with PROFILE): stored events changed clusters (a merge that dissolved a cluster, a split,
 * an eviction, an unlink): the cluster's incremental aggregate states are rebuilt (svc_inc.c); a
 * merge that only added new identities, or a computed attribute change, keeps them. */
enum { SEGSVC_TOUCH_PROFILE = 1, SEGSVC_TOUCH_EVENT = 2, SEGSVC_TOUCH_TIMER = 4,
       SEGSVC_TOUCH_DELETE = 8, SEGSVC_TOUCH_RECORD = 16, SEGSVC_TOUCH_MOVED = 32 };
void segsvc_touch(kith_engine *e, uint32_t sb, uint64_t cluster, unsigned what);
/* Apply thread, end of group: re-evaluates the touched clusters. */
int segsvc_flush_group(kith_engine *e, store_batch *b);

/* Apply thread: merge policy policy_id of sb was stored, replaced or deleted. policy_changed: what
 * it merges changed (or it appeared or went); default_changed: what the sandbox's default merges
 * changed. Every definition that evaluates under a changed policy (naming it, or the default) is
 * re-evaluated over the existing profiles by a backfill job. */
void segsvc_policy_changed(kith_engine *e, uint32_t sb, const char *policy_id, bool policy_changed,
                           bool default_changed);

/* Any thread: {"ups": {id: {status, lastQualificationTime}}} of a cluster (owned), NULL if none. */
json_t *segsvc_membership(kith_engine *e, uint32_t sb, uint64_t cluster);

/* Preview and estimate of an unsaved expression (svc_preview.c): evaluates text over the sandbox's
 * committed profiles (all of them up to 100,000, else a sample of 100,000) on the calling thread and
 * keeps the answers in memory under a new id (id_out: 33 bytes). 0, or the compile error. */
int segsvc_preview(kith_engine *e, uint32_t sb, const char *text, int64_t now, char *id_out,
                   pql_error *err);
/* Any thread: compiles text as a definition of sandbox sb would be (union schemas, segment ids). */
int segsvc_compile(kith_engine *e, uint32_t sb, const char *text, pql_program **out, pql_error *err);
/* The same for a pql/json tree: *canon (owned) receives its canonical PQL text; a failure names the
 * tree's JSON pointer at fault. */
int segsvc_compile_json(kith_engine *e, uint32_t sb, const json_t *tree, pql_program **out,
                        char **canon, pql_json_error *err);
/* Rewrites doc's expression object into format "pql/text" or "pql/json" (the tree as a JSON string,
 * as AEP writes it). 0, or KITH_EINVAL for another format or an expression that does not convert. */
int segdef_expression_as(json_t *doc, const char *format);
/* The kept preview (estimate = false) or estimate answer (owned), or NULL when unknown. */
json_t *segsvc_preview_get(uint32_t sb, const char *id, bool estimate);
void segsvc_preview_free_all(void);

/* The membership change stream (svc_feed.c; GET /data/core/ups/stream/memberships): every
 * realized and exited change, published once its group is durable and acknowledged, never for
 * work that was rolled back. A subscriber sees the changes of one sandbox (optionally of some
 * segments only) through a bounded queue: one that falls further behind is dropped with a final
 * "dropped" event. The last SEGFEED_REPLAY changes are kept for Last-Event-ID. */
#define SEGFEED_MAX_SUBSCRIBERS 64
#define SEGFEED_REPLAY 4096
#define SEGFEED_QUEUE_DEFAULT 1024
#define SEGFEED_QUEUE_MAX 4096
#define SEGFEED_HEARTBEAT_MS 15000
#define SEGFEED_MAX_FILTER 100

typedef struct segfeed_sub segfeed_sub;
typedef struct segfeed_opts {
    uint32_t sb;
    const char (*segments)[SEGDEF_ID_LEN + 1]; /* borrowed (copied); NULL: every segment */
    size_t nsegments;
    size_t queue_max;          /* changes buffered before the subscriber is dropped (0: default) */
    int heartbeat_ms;          /* 0: SEGFEED_HEARTBEAT_MS */
    const char *last_event_id; /* borrowed; NULL or "": live changes only */
    /* Called with the hub's lock held, on any thread, when a subscriber that waits (its reader
     * called suspend) has something to send; must not block. */
    void (*wake)(void *arg);
    void *wake_arg;
} segfeed_opts;
/* Any thread: 0 and *out (owned; segfeed_unsubscribe), KITH_EBUSY (too many subscribers) or
 * KITH_ESHUTDOWN. */
int segfeed_subscribe(kith_engine *e, const segfeed_opts *o, segfeed_sub **out);
/* The reader (one thread at a time per subscriber): copies up to max bytes of frames into buf and
 * returns how many; 0 when there is nothing to send now, after calling suspend(arg) under the
 * hub's lock (so the next wake comes after it); -1 at the end of the stream (dropped, shutdown). */
ssize_t segfeed_read(segfeed_sub *s, char *buf, size_t max, void (*suspend)(void *), void *arg);
void segfeed_unsubscribe(segfeed_sub *s);
/* Ends every stream (server shutdown); later subscriptions are refused. */
void segfeed_shutdown(kith_engine *e);
void segfeed_get_stats(kith_engine *e, uint64_t *published, uint64_t *dropped,
                       size_t *subscribers);

/* Apply-hook glue (engine.c, apply_set_publish): the group's changes after its commit, then
 * published (rc 0) or dropped once the group is durable or failed. */
void *segsvc_group_sealed(kith_engine *e, int rc);
void segsvc_group_durable(kith_engine *e, void *token, int rc);
/* Segment jobs (POST /segment/jobs) and export jobs (POST /export/jobs), svc_jobs.c: queued in
 * memory, run one at a time by a job thread over a store snapshot with worker threads; membership
 * writes go through the apply thread in chunks (docs/CONTRACT-NOTES.md "Segment jobs"). */
enum { SEGJOB_SEGMENT = 0, SEGJOB_EXPORT = 1 };
#define SEGJOB_ACTIVE_MAX 8 /* API jobs queued or running at once; more → 429 */
#define SEGJOB_KEEP 256     /* job records kept in memory (the oldest finished ones go) */
/* Any thread: validates body (AEP shapes, see svc_jobs.c) and queues a job of kind. 0 with res->doc
 * (the job, owned) and res->status 200; or an error with res filled (400 naming the path, 429). */
int segsvc_job_create(kith_engine *e, uint32_t sb, int kind, const json_t *body,
                      segdef_result *res);
/* Any thread: the job (owned) or NULL. */
json_t *segsvc_job_get(kith_engine *e, uint32_t sb, int kind, const char *id);
/* Any thread: jobs of a kind, newest first, filtered by status (NULL: any), (owned array), and the
 * number that matched into *total. */
json_t *segsvc_job_list(kith_engine *e, uint32_t sb, int kind, const char *status, size_t start,
                        size_t limit, size_t *total);
/* Any thread: asks a job to stop. 0, KITH_ENOTFOUND, KITH_ECONFLICT (already finished). */
int segsvc_job_cancel(kith_engine *e, uint32_t sb, int kind, const char *id);
/* Any thread: the path of a finished export job's JSON-lines file into path. 0, KITH_ENOTFOUND,
 * KITH_ECONFLICT (not finished: *status names its status). */
int segsvc_export_file(kith_engine *e, uint32_t sb, const char *id, char *path, size_t cap,
                       const char **status);

/* Counters. */
typedef struct segsvc_stats {
    uint64_t evaluations, realized, exited, timers_fired, timers_set;
    uint64_t flush_ns; /* writer time spent in the streaming evaluation (segsvc_flush_group) */
    uint64_t inc_builds; /* incremental aggregate states built from a rescan of events */
    uint64_t inc_writes; /* per-profile aggregate values written */
    uint64_t event_reads; /* clusters whose events were read (rescan or build) */
} segsvc_stats;
void segsvc_get_stats(kith_engine *e, segsvc_stats *out);

#endif
