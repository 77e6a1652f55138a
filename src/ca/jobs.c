/* kith computed attributes: jobs on their own thread — backfill (computing a newly published
 * attribute over the events already stored, cluster by cluster through the apply thread, with
 * progress) and state removal after a delete. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ca_int.h"

#define CHUNK 256        /* clusters per apply call */
#define JOBS_KEPT 1000   /* finished jobs remembered for GET */

static const char *const job_states[] = {"queued", "running", "succeeded", "failed"};

void ca_job_queue(ca_svc *s, int kind, uint32_t sb, const char *id, uint32_t slot)
{
    ca_job *j = kith_xcalloc(1, sizeof *j);
    j->kind = kind;
    j->sb = sb;
    snprintf(j->id, sizeof j->id, "%s", id);
    j->slot = slot;
    j->queued_at = kith_now_ms();
    pthread_mutex_lock(&s->mu);
    j->next = s->jobs;
    s->jobs = j;
    /* Forget the oldest finished jobs beyond JOBS_KEPT. */
    size_t n = 0;
    for (ca_job **p = &s->jobs; *p;) {
        ca_job *x = *p;
        if (++n > JOBS_KEPT && x->state >= CA_JOB_DONE) {
            *p = x->next;
            free(x);
        } else {
            p = &x->next;
        }
    }
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
}

json_t *ca_job_json(ca_svc *s, uint32_t sb, const char *id)
{
    json_t *out = NULL;
    pthread_mutex_lock(&s->mu);
    for (ca_job *j = s->jobs; j; j = j->next) {
        if (j->kind != CA_JOB_BACKFILL || j->sb != sb || strcmp(j->id, id) != 0) continue;
        char q[40], st[40], fi[40];
        kith_time_format(j->queued_at, q, sizeof q);
        out = json_pack("{s:s, s:I, s:I, s:I, s:s}", "state", job_states[j->state], "clustersTotal",
                        (json_int_t)j->total, "clustersDone", (json_int_t)j->done, "eventsScanned",
                        (json_int_t)j->events, "queuedAt", q);
        json_object_set_new(out, "progress",
                            json_real(j->state == CA_JOB_DONE ? 100.0
                                      : j->total            ? 100.0 * (double)j->done / (double)j->total
                                                            : 0.0));
        if (j->started_at) {
            json_object_set_new(out, "startedAt",
                                json_string(kith_time_format(j->started_at, st, sizeof st)));
            int64_t end = j->finished_at ? j->finished_at : kith_now_ms();
            if (end > j->started_at)
                json_object_set_new(out, "eventsPerSecond",
                                    json_real((double)j->events * 1000.0 / (double)(end - j->started_at)));
        }
        if (j->finished_at)
            json_object_set_new(out, "finishedAt",
                                json_string(kith_time_format(j->finished_at, fi, sizeof fi)));
        break;
    }
    pthread_mutex_unlock(&s->mu);
    return out;
}

bool ca_job_slot_busy(ca_svc *s, uint32_t sb, uint32_t slot)
{
    bool busy = false;
    pthread_mutex_lock(&s->mu);
    for (ca_job *j = s->jobs; j && !busy; j = j->next)
        busy = j->kind == CA_JOB_DROP && j->sb == sb && j->slot == slot && j->state < CA_JOB_DONE;
    pthread_mutex_unlock(&s->mu);
    return busy;
}

/* One apply call of a job run: a chunk of clusters for the jobs run together (backfills of one
 * sandbox queued at the same time share one pass over the events). */
struct chunk_call {
    ca_svc *s;
    ca_job **jobs;
    size_t nj;
    uint64_t *clusters;
    size_t n;
    uint64_t events;
    bool ok[CA_MAX_PER_SANDBOX]; /* finish_fn: the job's attribute still exists */
};

static int noop_fn(void *ctx, store_batch *b)
{
    (void)ctx;
    (void)b;
    return 0;
}

/* The attribute the job is for, still the same one (published, same slot), or NULL. */
static ca_def *job_def(ca_svc *s, const ca_job *j)
{
    ca_def *d = ca_def_find(s, j->sb, j->id);
    return d && d->slot == j->slot && d->published ? d : NULL;
}

static int backfill_fn(void *ctx, store_batch *b)
{
    struct chunk_call *c = ctx;
    const ca_def *defs[CA_MAX_PER_SANDBOX];
    size_t nd = 0;
    for (size_t k = 0; k < c->nj && nd < CA_MAX_PER_SANDBOX; k++) {
        const ca_def *d = job_def(c->s, c->jobs[k]);
        if (d) defs[nd++] = d;
    }
    if (!nd) return KITH_ENOTFOUND;
    for (size_t i = 0; i < c->n; i++) {
        int rc = ca_recompute(c->s, b, c->jobs[0]->sb, c->clusters[i], defs, nd, &c->events);
        if (rc) return rc;
    }
    return 0;
}

static int drop_fn(void *ctx, store_batch *b)
{
    struct chunk_call *c = ctx;
    for (size_t i = 0; i < c->n; i++)
        ca_state_drop_slot(c->s, b, c->jobs[0]->sb, c->clusters[i], c->jobs[0]->slot);
    return 0;
}

static int finish_fn(void *ctx, store_batch *b)
{
    struct chunk_call *c = ctx;
    for (size_t k = 0; k < c->nj; k++) {
        ca_def *d = job_def(c->s, c->jobs[k]);
        c->ok[k] = d != NULL;
        if (!d) continue;
        pthread_rwlock_wrlock(&c->s->lock);
        json_object_set_new(json_object_get(d->doc, "status"), "job", json_string("ENABLED"));
        pthread_rwlock_unlock(&c->s->lock);
        ca_def_store(c->s, b, d);
    }
    return 0;
}

/* The clusters of the sandbox (backfill: every cluster; drop: those with state). */
static uint64_t *list_clusters(ca_svc *s, uint32_t sb, int cf, size_t *n_out)
{
    uint8_t p[4];
    kith_put_be32(p, sb);
    uint64_t *v = NULL;
    size_t n = 0, cap = 0;
    store_iter *it = store_iter_new(s->e->store, NULL, cf, p, 4);
    for (; store_iter_valid(it); store_iter_next(it)) {
        size_t kl;
        const uint8_t *k = store_iter_key(it, &kl);
        if (kl != 12) continue;
        if (n == cap) {
            cap = cap ? cap * 2 : 1024;
            v = kith_xrealloc(v, cap * sizeof *v);
        }
        v[n++] = kith_get_be64(k + 4);
    }
    store_iter_free(it);
    *n_out = n;
    return v;
}

static bool stopping(ca_svc *s)
{
    pthread_mutex_lock(&s->mu);
    bool st = s->stopping;
    pthread_mutex_unlock(&s->mu);
    return st;
}

static void finish_jobs(ca_svc *s, ca_job **jobs, size_t nj, int rc, const bool *ok)
{
    pthread_mutex_lock(&s->mu);
    int64_t now = kith_now_ms();
    for (size_t k = 0; k < nj; k++) {
        jobs[k]->state = rc || (ok && !ok[k]) ? CA_JOB_FAILED : CA_JOB_DONE;
        jobs[k]->finished_at = now;
    }
    pthread_mutex_unlock(&s->mu);
    if (rc)
        kith_log(KITH_LOG_WARN, "ca", "computed attribute %s: %s job stopped: %s", jobs[0]->id,
                 jobs[0]->kind == CA_JOB_BACKFILL ? "backfill" : "state removal", kith_strerror(rc));
}

/* Runs jobs[0..nj) together (one kind, one sandbox). */
static void run_jobs(ca_svc *s, ca_job **jobs, size_t nj)
{
    kith_engine *e = s->e;
    int kind = jobs[0]->kind;
    /* The group that queued the jobs is committed before the clusters are listed. */
    int rc = apply_call(e->apply, noop_fn, NULL, false);
    if (rc) {
        finish_jobs(s, jobs, nj, rc, NULL);
        return;
    }
    size_t n = 0;
    uint64_t *cl = list_clusters(s, jobs[0]->sb, kind == CA_JOB_BACKFILL ? STORE_CF_CLUSTER : STORE_CF_CA, &n);
    pthread_mutex_lock(&s->mu);
    for (size_t k = 0; k < nj; k++)
        jobs[k]->total = n;
    pthread_mutex_unlock(&s->mu);
    struct chunk_call c = {.s = s, .jobs = jobs, .nj = nj};
    for (size_t i = 0; i < n && rc == 0; i += CHUNK) {
        if (stopping(s)) {
            free(cl);
            return; /* resumed at the next start (status.job stays PROCESSING) */
        }
        c.clusters = cl + i;
        c.n = n - i < CHUNK ? n - i : CHUNK;
        c.events = 0;
        rc = apply_call(e->apply, kind == CA_JOB_BACKFILL ? backfill_fn : drop_fn, &c, false);
        pthread_mutex_lock(&s->mu);
        for (size_t k = 0; k < nj; k++) {
            jobs[k]->done += c.n;
            jobs[k]->events += c.events;
        }
        pthread_mutex_unlock(&s->mu);
        s->backfill_events += c.events;
    }
    free(cl);
    if (rc == 0 && kind == CA_JOB_BACKFILL) {
        rc = apply_call(e->apply, finish_fn, &c, false);
        finish_jobs(s, jobs, nj, rc, c.ok);
        return;
    }
    finish_jobs(s, jobs, nj, rc, NULL);
}

static void *job_main(void *arg)
{
    ca_svc *s = arg;
    ca_job *batch[CA_MAX_PER_SANDBOX];
    pthread_mutex_lock(&s->mu);
    while (!s->stopping) {
        ca_job *first = NULL;
        for (ca_job *j = s->jobs; j; j = j->next)
            if (j->state == CA_JOB_QUEUED) first = j; /* the oldest queued */
        if (!first) {
            pthread_cond_wait(&s->cv, &s->mu);
            continue;
        }
        /* Backfills of the same sandbox waiting together run in one pass over the events. */
        size_t nj = 0;
        batch[nj++] = first;
        for (ca_job *j = s->jobs; j && first->kind == CA_JOB_BACKFILL; j = j->next)
            if (j != first && j->state == CA_JOB_QUEUED && j->kind == CA_JOB_BACKFILL &&
                j->sb == first->sb && nj < CA_MAX_PER_SANDBOX)
                batch[nj++] = j;
        int64_t now = kith_now_ms();
        for (size_t k = 0; k < nj; k++) {
            batch[k]->state = CA_JOB_RUNNING;
            batch[k]->started_at = now;
        }
        pthread_mutex_unlock(&s->mu);
        run_jobs(s, batch, nj);
        pthread_mutex_lock(&s->mu);
    }
    pthread_mutex_unlock(&s->mu);
    return NULL;
}

void ca_jobs_start(ca_svc *s)
{
    if (pthread_create(&s->thread, NULL, job_main, s) == 0) s->started = true;
}

void ca_jobs_stop(ca_svc *s)
{
    if (!s->started) return;
    pthread_mutex_lock(&s->mu);
    s->stopping = true;
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
    pthread_join(s->thread, NULL);
    s->started = false;
}

void ca_jobs_free(ca_svc *s)
{
    while (s->jobs) {
        ca_job *j = s->jobs;
        s->jobs = j->next;
        free(j);
    }
}
