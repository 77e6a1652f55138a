/* kith apply: one writer thread with group commit (see include/kith/apply.h). */
#include "kith/apply.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

/* A written group on its way to the syncer: its operations and its blind appends (events), which the
 * syncer writes — so the writer spends no time inserting them — before the fsync that acknowledges. */
typedef struct group {
    apply_op *first;
    store_blind *blind;
    void *token; /* from the sealed hook, for the durable hook */
    int rc;
    struct group *next;
} group;

struct kith_apply {
    kith_store *st;
    store_batch *batch;
    pthread_t thread, syncer;
    pthread_mutex_t mu;
    pthread_cond_t cv, sync_cv;
    apply_op *head, *tail;           /* waiting for the writer */
    group *shead, *stail;            /* written, waiting for blind appends and the WAL sync */
    uint64_t handed, blind_done;     /* groups handed to the syncer / whose blind appends are written */
    pthread_cond_t blind_cv;
    size_t weight, max_weight;
    bool stopping, writer_done;
    apply_group_fn group_fn;
    void *group_arg;
    void (*reset_fn)(void *);
    void *reset_arg;
    void *(*sealed_fn)(void *, int);
    void (*durable_fn)(void *, void *, int);
    void *publish_arg;
    void (*fill_fn)(void *, uint64_t, bool, store_blind **);
    void *fill_arg;
    apply_stats stats;
    _Atomic int syncer_nice; /* > 0: the syncer lowers its CPU priority by this much, once */
};

void apply_set_syncer_nice(kith_apply *a, int nice)
{
    atomic_store(&a->syncer_nice, nice);
    pthread_mutex_lock(&a->mu);
    pthread_cond_signal(&a->sync_cv);
    pthread_mutex_unlock(&a->mu);
}

/* The syncer, on itself: nice is per thread on Linux, relative to the thread's current one. */
static void syncer_renice(kith_apply *a)
{
    int by = atomic_exchange(&a->syncer_nice, 0);
    if (by <= 0) return;
    id_t tid = (id_t)syscall(SYS_gettid);
    errno = 0;
    int cur = getpriority(PRIO_PROCESS, tid);
    if (cur == -1 && errno) cur = 0;
    int n = cur + by > 19 ? 19 : cur + by;
    if (setpriority(PRIO_PROCESS, tid, n) != 0)
        kith_log(KITH_LOG_WARN, "apply", "syncer nice %d: %s", n, strerror(errno));
}

void apply_set_reset(kith_apply *a, void (*fn)(void *), void *arg)
{
    a->reset_fn = fn;
    a->reset_arg = arg;
}

void apply_set_publish(kith_apply *a, void *(*sealed)(void *arg, int rc),
                       void (*durable)(void *arg, void *token, int rc), void *arg)
{
    a->sealed_fn = sealed;
    a->durable_fn = durable;
    a->publish_arg = arg;
}

void apply_set_blind_fill(kith_apply *a, void (*fill)(void *arg, uint64_t group, bool ok, store_blind **bl),
                          void *arg)
{
    a->fill_fn = fill;
    a->fill_arg = arg;
}

static void rollback(kith_apply *a)
{
    store_batch_rollback(a->batch);
    if (a->reset_fn) a->reset_fn(a->reset_arg);
}

/* Hands a written group (a NULL-terminated list of operations) to the syncer. */
static void to_syncer(kith_apply *a, apply_op *first, store_blind *blind, void *token, int rc)
{
    group *g = kith_xcalloc(1, sizeof *g);
    g->first = first;
    g->blind = blind;
    g->token = token;
    g->rc = rc;
    pthread_mutex_lock(&a->mu);
    if (a->stail) a->stail->next = g;
    else a->shead = g;
    a->stail = g;
    a->handed++;
    pthread_cond_signal(&a->sync_cv);
    pthread_mutex_unlock(&a->mu);
}

/* Waits until the syncer has written the blind appends of every group handed to it, so that an
 * exclusive operation (which may read or delete events) sees them. */
static void wait_blind(kith_apply *a)
{
    pthread_mutex_lock(&a->mu);
    while (a->blind_done != a->handed) pthread_cond_wait(&a->blind_cv, &a->mu);
    pthread_mutex_unlock(&a->mu);
}

/* The writer: runs a group's operations into the batch, recomputes what the group touched, writes the
 * batch (visible, not yet durable) and passes the group on; it does not wait for the fsync, so the next
 * group is prepared while the syncer makes the previous ones durable. */
static void run_group(kith_apply *a, apply_op *ops)
{
    apply_op *start = ops;
    while (start) {
        /* One group: operations up to the next exclusive one; an exclusive operation runs alone. */
        apply_op *end, *last = start;
        size_t n = 0;
        if (start->exclusive) {
            end = start->next;
            n = 1;
            wait_blind(a);
            store_batch_savepoint(a->batch);
            start->rc = start->fn(start->ctx, a->batch);
            if (start->rc != 0) rollback(a);
        } else {
            end = start;
            while (end && !end->exclusive) {
                store_batch_savepoint(a->batch);
                end->rc = end->fn(end->ctx, a->batch);
                if (end->rc != 0) rollback(a);
                last = end;
                end = end->next;
                n++;
            }
        }
        int rc = 0;
        if (a->group_fn) rc = a->group_fn(a->group_arg, a->batch);
        uint64_t t0 = kith_mono_ns();
        if (rc == 0) rc = store_batch_commit(a->st, a->batch);
        else store_batch_clear(a->batch);
        if (rc != 0 && a->reset_fn) a->reset_fn(a->reset_arg);
        uint64_t dt = kith_mono_ns() - t0;
        if (rc != 0)
            for (apply_op *op = start; op != end; op = op->next) op->rc = rc;
        pthread_mutex_lock(&a->mu);
        a->stats.groups++;
        a->stats.ops += n;
        a->stats.write_ns_total += dt;
        pthread_mutex_unlock(&a->mu);
        last->next = NULL;
        store_blind *blind = store_batch_take_blind(a->batch);
        if (rc != 0) {
            store_blind_free(blind);
            blind = NULL;
        }
        void *token = a->sealed_fn ? a->sealed_fn(a->publish_arg, rc) : NULL;
        to_syncer(a, start, blind, token, rc);
        start = end;
    }
}

/* The syncer: writes each group's blind appends, then one WAL fsync covers every group written before
 * it; then each operation is answered. */
static void *syncer_main(void *arg)
{
    kith_apply *a = arg;
    pthread_setname_np(pthread_self(), "kith-sync");
    for (;;) {
        syncer_renice(a);
        pthread_mutex_lock(&a->mu);
        while (!a->shead && !a->writer_done && !atomic_load(&a->syncer_nice))
            pthread_cond_wait(&a->sync_cv, &a->mu);
        group *groups = a->shead;
        a->shead = a->stail = NULL;
        bool done = a->writer_done;
        pthread_mutex_unlock(&a->mu);
        if (!groups) {
            if (done) break;
            continue;
        }
        for (group *g = groups; g; g = g->next) {
            if (a->fill_fn) a->fill_fn(a->fill_arg, a->blind_done + 1, g->rc == 0, &g->blind);
            if (g->blind) {
                int brc = store_blind_write(a->st, g->blind);
                if (brc && !g->rc) g->rc = brc;
                store_blind_free(g->blind);
                g->blind = NULL;
            }
            pthread_mutex_lock(&a->mu);
            a->blind_done++;
            pthread_cond_broadcast(&a->blind_cv);
            pthread_mutex_unlock(&a->mu);
        }
        uint64_t t0 = kith_mono_ns();
        int rc = store_sync_wal(a->st);
        uint64_t dt = kith_mono_ns() - t0;
        pthread_mutex_lock(&a->mu);
        a->stats.syncs++;
        a->stats.commit_ns_total += dt;
        if (dt > a->stats.commit_ns_max) a->stats.commit_ns_max = dt;
        pthread_mutex_unlock(&a->mu);
        for (group *g = groups; g;) {
            group *gnext = g->next;
            for (apply_op *op = g->first; op;) {
                apply_op *next = op->next; /* done() may free op */
                size_t w = op->weight;
                if (g->rc != 0) op->rc = g->rc;
                else if (rc != 0 && op->rc == 0) op->rc = rc;
                if (op->done) op->done(op->ctx, op->rc);
                pthread_mutex_lock(&a->mu);
                a->weight -= w;
                pthread_mutex_unlock(&a->mu);
                op = next;
            }
            if (a->durable_fn) a->durable_fn(a->publish_arg, g->token, g->rc ? g->rc : rc);
            free(g);
            g = gnext;
        }
    }
    return NULL;
}

static void *apply_main(void *arg)
{
    kith_apply *a = arg;
    for (;;) {
        pthread_mutex_lock(&a->mu);
        while (!a->head && !a->stopping) pthread_cond_wait(&a->cv, &a->mu);
        apply_op *ops = a->head;
        a->head = a->tail = NULL;
        bool stop = a->stopping;
        pthread_mutex_unlock(&a->mu);
        if (ops) run_group(a, ops);
        else if (stop) break;
    }
    pthread_mutex_lock(&a->mu);
    a->writer_done = true;
    pthread_cond_signal(&a->sync_cv);
    pthread_mutex_unlock(&a->mu);
    return NULL;
}

void apply_wait_blind(kith_apply *a)
{
    wait_blind(a);
}

uint64_t apply_group_number(kith_apply *a)
{
    return a->handed + 1; /* only the writer changes handed */
}

uint64_t apply_blind_written(kith_apply *a)
{
    pthread_mutex_lock(&a->mu);
    uint64_t n = a->blind_done;
    pthread_mutex_unlock(&a->mu);
    return n;
}

static __thread kith_apply *current_apply;

static void *apply_thread_entry(void *arg)
{
    current_apply = arg;
    pthread_setname_np(pthread_self(), "kith-apply");
    return apply_main(arg);
}

int apply_start(kith_store *st, size_t max_weight, apply_group_fn group_fn, void *group_arg,
                kith_apply **out)
{
    kith_apply *a = kith_xcalloc(1, sizeof *a);
    a->st = st;
    a->batch = store_batch_new(st);
    a->max_weight = max_weight ? max_weight : 200000;
    a->group_fn = group_fn;
    a->group_arg = group_arg;
    pthread_mutex_init(&a->mu, NULL);
    pthread_cond_init(&a->cv, NULL);
    pthread_cond_init(&a->sync_cv, NULL);
    pthread_cond_init(&a->blind_cv, NULL);
    if (pthread_create(&a->syncer, NULL, syncer_main, a) != 0) {
        store_batch_free(a->batch);
        free(a);
        return KITH_ENOMEM;
    }
    if (pthread_create(&a->thread, NULL, apply_thread_entry, a) != 0) {
        pthread_mutex_lock(&a->mu);
        a->writer_done = true;
        pthread_cond_signal(&a->sync_cv);
        pthread_mutex_unlock(&a->mu);
        pthread_join(a->syncer, NULL);
        store_batch_free(a->batch);
        free(a);
        return KITH_ENOMEM;
    }
    *out = a;
    return 0;
}

void apply_stop(kith_apply *a)
{
    if (!a) return;
    pthread_mutex_lock(&a->mu);
    a->stopping = true;
    pthread_cond_signal(&a->cv);
    pthread_mutex_unlock(&a->mu);
    pthread_join(a->thread, NULL);
    pthread_join(a->syncer, NULL);
    store_batch_free(a->batch);
    pthread_mutex_destroy(&a->mu);
    pthread_cond_destroy(&a->cv);
    pthread_cond_destroy(&a->sync_cv);
    pthread_cond_destroy(&a->blind_cv);
    free(a);
}

static int enqueue(kith_apply *a, apply_op *op, bool bounded)
{
    pthread_mutex_lock(&a->mu);
    if (a->stopping) {
        pthread_mutex_unlock(&a->mu);
        return KITH_ESHUTDOWN;
    }
    if (bounded && a->weight + op->weight > a->max_weight && a->weight > 0) {
        pthread_mutex_unlock(&a->mu);
        return KITH_EBUSY;
    }
    a->weight += op->weight;
    op->next = NULL;
    if (a->tail) a->tail->next = op;
    else a->head = op;
    a->tail = op;
    pthread_cond_signal(&a->cv);
    pthread_mutex_unlock(&a->mu);
    return 0;
}

int apply_submit(kith_apply *a, apply_op *op)
{
    return enqueue(a, op, true);
}

struct call_ctx {
    apply_fn fn;
    void *ctx;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool done;
    int rc;
};

static int call_fn(void *ctx, store_batch *b)
{
    struct call_ctx *c = ctx;
    return c->fn(c->ctx, b);
}

static void call_done(void *ctx, int rc)
{
    struct call_ctx *c = ctx;
    pthread_mutex_lock(&c->mu);
    c->rc = rc;
    c->done = true;
    pthread_cond_signal(&c->cv);
    pthread_mutex_unlock(&c->mu);
}

int apply_call(kith_apply *a, apply_fn fn, void *ctx, bool exclusive)
{
    struct call_ctx c = {.fn = fn, .ctx = ctx};
    pthread_mutex_init(&c.mu, NULL);
    pthread_cond_init(&c.cv, NULL);
    apply_op op = {.fn = call_fn, .done = call_done, .ctx = &c, .weight = 0, .exclusive = exclusive};
    int rc = enqueue(a, &op, false);
    if (rc == 0) {
        pthread_mutex_lock(&c.mu);
        while (!c.done) pthread_cond_wait(&c.cv, &c.mu);
        pthread_mutex_unlock(&c.mu);
        rc = c.rc;
    }
    pthread_mutex_destroy(&c.mu);
    pthread_cond_destroy(&c.cv);
    return rc;
}

void apply_get_stats(kith_apply *a, apply_stats *out)
{
    pthread_mutex_lock(&a->mu);
    *out = a->stats;
    out->queued_weight = a->weight;
    pthread_mutex_unlock(&a->mu);
}

bool apply_on_thread(kith_apply *a)
{
    return current_apply == a;
}
