/* kith re-materialisation: after a sandbox's materialised policy changes (its default merge policy
 * moved to another policy, the default's content changed, or a dataset left its order), every
 * union view of the sandbox merged under the old signature is recomputed under the new one.
 *
 * The request is durable: meta [sb]['r'] is written in the same batch as the policy change and
 * deleted when a pass finds no stale view left, so a restart resumes it. Until a view is redone,
 * readers see that its signature differs from their policy's and merge at read time, so answers
 * are right from the moment the change is acknowledged; the pass only brings back the fast path.
 *
 * One thread walks the sandbox's views in key order and hands the stale clusters to the apply
 * thread in operations of REMAT_CHUNK (profile_mark_dirty: the group recomputes each under the
 * policy current then), waiting for each to commit, so ingestion keeps its share of the writer. */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "kith/apply.h"
#include "kith/engine.h"
#include "kith/kjson.h"

#define REMAT_KIND 'r'
#define REMAT_CHUNK 256

struct profile_remat {
    pthread_t thread;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool started, stopping;
    uint32_t *pending; /* sandboxes to (re)walk; a sandbox is listed once */
    size_t n, cap;
};

static void remat_key(store_key *k, uint32_t sb)
{
    skey_init(k, sb);
    skey_u8(k, REMAT_KIND);
}

/* Adds sb to the pending list (once). Caller holds mu. */
static void pend_locked(struct profile_remat *r, uint32_t sb)
{
    for (size_t i = 0; i < r->n; i++)
        if (r->pending[i] == sb) return;
    if (r->n == r->cap) {
        r->cap = r->cap ? r->cap * 2 : 8;
        r->pending = kith_xrealloc(r->pending, r->cap * sizeof *r->pending);
    }
    r->pending[r->n++] = sb;
}

void profile_remat_request(kith_engine *e, store_batch *b, uint32_t sandbox)
{
    store_key k;
    remat_key(&k, sandbox);
    store_batch_put(b, STORE_CF_META, k.b, k.n, "{}", 2); /* JSON: the catalog reads every meta value */
    struct profile_remat *r = e->remat;
    if (!r) return; /* not started (tests without the thread): the marker resumes it later */
    pthread_mutex_lock(&r->mu);
    pend_locked(r, sandbox);
    atomic_store(&e->m.remat_pending, r->n);
    pthread_cond_broadcast(&r->cv);
    pthread_mutex_unlock(&r->mu);
}

struct chunk_ctx {
    kith_engine *e;
    uint32_t sb;
    uint64_t clusters[REMAT_CHUNK];
    size_t n;
};

static int chunk_fn(void *ctx, store_batch *b)
{
    (void)b;
    struct chunk_ctx *c = ctx;
    for (size_t i = 0; i < c->n; i++)
        profile_mark_dirty(c->e, c->sb, c->clusters[i]);
    atomic_fetch_add(&c->e->m.views_rematerialised, c->n);
    return 0;
}

struct finish_ctx {
    kith_engine *e;
    uint32_t sb;
    uint64_t sig; /* the signature the pass brought every view to */
    bool done;
};

/* Deletes the marker when the sandbox's materialised policy is still the one the pass used (a
 * change meanwhile re-listed the sandbox and keeps the marker). */
static int finish_fn(void *ctx, store_batch *b)
{
    struct finish_ctx *f = ctx;
    merge_policy mp;
    profile_materialised_policy(f->e, f->sb, &mp);
    f->done = merge_policy_signature(&mp) == f->sig;
    merge_policy_clear(&mp);
    if (f->done) {
        store_key k;
        remat_key(&k, f->sb);
        store_batch_delete(b, STORE_CF_META, k.b, k.n);
    }
    return 0;
}

/* One pass over the views of sb: returns the number of stale views handed to the writer, or -1
 * when stopping. */
static long pass(kith_engine *e, uint32_t sb, uint64_t sig)
{
    struct profile_remat *r = e->remat;
    store_key prefix;
    skey_init(&prefix, sb);
    uint8_t resume[12];
    size_t resume_n = 0;
    long total = 0;
    struct chunk_ctx *c = kith_xcalloc(1, sizeof *c);
    c->e = e;
    c->sb = sb;
    for (;;) {
        /* a fresh iterator per chunk: no long-lived iterator pins memtables and files */
        store_iter *it = store_iter_new(e->store, NULL, STORE_CF_PROFILE, prefix.b, prefix.n);
        if (resume_n) {
            store_iter_seek(it, resume, resume_n);
            if (store_iter_valid(it)) {
                size_t kl;
                const uint8_t *k = store_iter_key(it, &kl);
                if (kl == resume_n && memcmp(k, resume, kl) == 0) store_iter_next(it);
            }
        }
        c->n = 0;
        size_t scanned = 0;
        for (; store_iter_valid(it) && c->n < REMAT_CHUNK && scanned < 64 * REMAT_CHUNK;
             store_iter_next(it), scanned++) {
            size_t kl, vl;
            const uint8_t *k = store_iter_key(it, &kl);
            if (kl != 12) continue;
            memcpy(resume, k, 12);
            resume_n = 12;
            const uint8_t *v = store_iter_value(it, &vl);
            json_t *view = kjson_parse((const char *)v, vl, 256, NULL, NULL);
            if (!view || profile_view_signature(view) != sig)
                c->clusters[c->n++] = kith_get_be64(k + 4);
            json_decref(view);
        }
        bool more = store_iter_valid(it);
        store_iter_free(it);
        if (c->n) {
            int rc = apply_call(e->apply, chunk_fn, c, false);
            if (rc == 0) total += (long)c->n;
        }
        pthread_mutex_lock(&r->mu);
        bool stop = r->stopping;
        pthread_mutex_unlock(&r->mu);
        if (stop) {
            free(c);
            return -1;
        }
        if (!more) break;
    }
    free(c);
    return total;
}

static void *remat_main(void *arg)
{
    kith_engine *e = arg;
    struct profile_remat *r = e->remat;
    pthread_setname_np(pthread_self(), "kith-remat");
    pthread_mutex_lock(&r->mu);
    for (;;) {
        while (!r->stopping && r->n == 0)
            pthread_cond_wait(&r->cv, &r->mu);
        if (r->stopping) break;
        uint32_t sb = r->pending[0];
        memmove(r->pending, r->pending + 1, (r->n - 1) * sizeof *r->pending);
        r->n--;
        pthread_mutex_unlock(&r->mu);

        merge_policy mp;
        profile_materialised_policy(e, sb, &mp);
        uint64_t sig = merge_policy_signature(&mp);
        merge_policy_clear(&mp);
        long n = pass(e, sb, sig);
        struct finish_ctx f = {.e = e, .sb = sb, .sig = sig};
        if (n >= 0 && apply_call(e->apply, finish_fn, &f, false) == 0 && !f.done) n = -2;

        pthread_mutex_lock(&r->mu);
        if (n == -2) pend_locked(r, sb); /* the policy changed again during the pass */
        atomic_store(&e->m.remat_pending, r->n);
    }
    pthread_mutex_unlock(&r->mu);
    return NULL;
}

void profile_remat_start(kith_engine *e)
{
    struct profile_remat *r = kith_xcalloc(1, sizeof *r);
    pthread_mutex_init(&r->mu, NULL);
    pthread_cond_init(&r->cv, NULL);
    /* requests recorded before a restart */
    store_iter *it = store_iter_new(e->store, NULL, STORE_CF_META, "", 0);
    for (; store_iter_valid(it); store_iter_next(it)) {
        size_t kl;
        const uint8_t *k = store_iter_key(it, &kl);
        if (kl == 5 && k[4] == REMAT_KIND) pend_locked(r, kith_get_be32(k));
    }
    store_iter_free(it);
    atomic_store(&e->m.remat_pending, r->n);
    e->remat = r;
    if (pthread_create(&r->thread, NULL, remat_main, e) == 0) r->started = true;
}

void profile_remat_stop(kith_engine *e)
{
    struct profile_remat *r = e->remat;
    if (!r) return;
    pthread_mutex_lock(&r->mu);
    r->stopping = true;
    pthread_cond_broadcast(&r->cv);
    pthread_mutex_unlock(&r->mu);
    if (r->started) pthread_join(r->thread, NULL);
    e->remat = NULL;
    pthread_mutex_destroy(&r->mu);
    pthread_cond_destroy(&r->cv);
    free(r->pending);
    free(r);
}
