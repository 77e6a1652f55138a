/* kith apply: one writer thread with group commit (see include/kith/apply.h). */
#include "kith/apply.h"

#include <pthread.h>
#include <stdlib.h>

struct kith_apply {
    kith_store *st;
    store_batch *batch;
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    apply_op *head, *tail;
    size_t weight, max_weight;
    bool stopping;
    apply_group_fn group_fn;
    void *group_arg;
    apply_stats stats;
};

static void run_group(kith_apply *a, apply_op *ops)
{
    apply_op *start = ops;
    while (start) {
        /* One group: operations up to (not including) the next exclusive one; an exclusive operation
         * forms a group of its own. */
        apply_op *end = start;
        size_t n = 0;
        if (start->exclusive) {
            end = start->next;
            n = 1;
            store_batch_savepoint(a->batch);
            int rc = start->fn(start->ctx, a->batch);
            if (rc != 0) store_batch_rollback(a->batch);
            start->rc = rc;
        } else {
            while (end && !end->exclusive) {
                store_batch_savepoint(a->batch);
                int rc = end->fn(end->ctx, a->batch);
                if (rc != 0) store_batch_rollback(a->batch);
                end->rc = rc;
                end = end->next;
                n++;
            }
        }
        int rc = 0;
        if (a->group_fn) rc = a->group_fn(a->group_arg, a->batch);
        uint64_t t0 = kith_mono_ns();
        if (rc == 0) rc = store_batch_commit(a->st, a->batch);
        else store_batch_clear(a->batch);
        uint64_t dt = kith_mono_ns() - t0;
        pthread_mutex_lock(&a->mu);
        a->stats.groups++;
        a->stats.ops += n;
        a->stats.commit_ns_total += dt;
        if (dt > a->stats.commit_ns_max) a->stats.commit_ns_max = dt;
        pthread_mutex_unlock(&a->mu);
        for (apply_op *op = start; op != end;) {
            apply_op *next = op->next; /* done() may free op */
            size_t w = op->weight;
            int orc = rc != 0 ? rc : op->rc;
            op->rc = orc;
            if (op->done) op->done(op->ctx, orc);
            pthread_mutex_lock(&a->mu);
            a->weight -= w;
            pthread_mutex_unlock(&a->mu);
            op = next;
        }
        start = end;
    }
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
    return NULL;
}

static __thread kith_apply *current_apply;

static void *apply_thread_entry(void *arg)
{
    current_apply = arg;
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
    if (pthread_create(&a->thread, NULL, apply_thread_entry, a) != 0) {
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
    store_batch_free(a->batch);
    pthread_mutex_destroy(&a->mu);
    pthread_cond_destroy(&a->cv);
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
