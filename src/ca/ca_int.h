/* kith computed attributes internals shared by ca.c (definitions, state, streaming) and jobs.c
 * (backfill and state removal). */
#ifndef KITH_CA_INT_H
#define KITH_CA_INT_H

#include <pthread.h>
#include <stdatomic.h>

#include "kith/agg.h"
#include "kith/ca.h"
#include "kith/pql.h"

#define CA_META_KIND 'c'

enum ca_fn { CA_SUM, CA_COUNT, CA_MIN, CA_MAX, CA_AVG, CA_MOST_RECENT };
/* The kind of value an attribute returns. */
enum ca_vt { CA_VT_NUM, CA_VT_INT, CA_VT_TIME, CA_VT_ANY };

typedef struct ca_def {
    uint32_t sb;
    char id[CA_ID_LEN + 1];
    char name[CA_NAME_MAX + 1];
    uint32_t slot;
    json_t *doc;         /* stored object (owned) */
    int fn;              /* enum ca_fn */
    agg_window w;
    bool published;
    pql_program *filter; /* `xEvent[F].count() > 0` (owned), NULL: every event */
    uint64_t filter_hash; /* of the filter's text: attributes with the same filter share one run */
    char field[256];     /* dotted event path; "" for COUNT */
    int vt;              /* enum ca_vt */
    json_t *field_schema; /* the field's schema (owned) or NULL */
    int64_t created;
} ca_def;

/* A backfill or state-removal job. */
enum ca_job_kind { CA_JOB_BACKFILL = 1, CA_JOB_DROP = 2 };
enum ca_job_state { CA_JOB_QUEUED = 0, CA_JOB_RUNNING = 1, CA_JOB_DONE = 2, CA_JOB_FAILED = 3 };
typedef struct ca_job {
    int kind;
    uint32_t sb;
    char id[CA_ID_LEN + 1];
    uint32_t slot;
    int state;
    uint64_t total, done, events;
    int64_t queued_at, started_at, finished_at;
    struct ca_job *next;
} ca_job;

typedef struct ca_svc {
    kith_engine *e;
    pthread_rwlock_t lock; /* defs: written on the apply thread, read anywhere */
    ca_def **v;
    size_t n, cap;
    /* apply thread */
    pql_evaluator *ev;
    struct ca_recalc {
        uint32_t sb;
        uint64_t cluster;
    } * rc;
    size_t nrc, caprc;
    /* jobs (mu) */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    ca_job *jobs; /* every job of this process, newest first */
    pthread_t thread;
    bool started, stopping;
    bool loading; /* ca_init: definitions read back from the store */
    _Atomic uint64_t events_matched, recomputes, backfill_events, events_noted, note_ns;
} ca_svc;

static inline ca_svc *ca_of(kith_engine *e)
{
    return e->ca;
}

/* ca.c */
ca_def *ca_def_find(ca_svc *s, uint32_t sb, const char *id);
/* Apply thread: recomputes the state of a cluster from its events for the given attributes (only,
 * nonly; all published ones of the sandbox when only is NULL), in one pass over the events.
 * *events (may be NULL) counts the events read. */
int ca_recompute(ca_svc *s, store_batch *b, uint32_t sb, uint64_t cluster, const ca_def *const *only,
                 size_t nonly, uint64_t *events);
/* Apply thread: removes slot's state from the cluster's blob. */
void ca_state_drop_slot(ca_svc *s, store_batch *b, uint32_t sb, uint64_t cluster, uint32_t slot);
/* Apply thread: stores the definition's document again (job status). */
void ca_def_store(ca_svc *s, store_batch *b, ca_def *d);

/* jobs.c */
void ca_jobs_start(ca_svc *s);
void ca_jobs_stop(ca_svc *s);
void ca_jobs_free(ca_svc *s);
/* Queues a job (any thread; the job waits for the commit of the caller's group by its first
 * apply_call). */
void ca_job_queue(ca_svc *s, int kind, uint32_t sb, const char *id, uint32_t slot);
/* The latest backfill job of an attribute as JSON (owned) or NULL. */
json_t *ca_job_json(ca_svc *s, uint32_t sb, const char *id);
/* True when a state-removal job for slot is queued or running. */
bool ca_job_slot_busy(ca_svc *s, uint32_t sb, uint32_t slot);

#endif
