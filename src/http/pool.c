/* kith pool: a fixed set of threads over one bounded FIFO (see pool.h). */
#include "pool.h"

#include <errno.h>
#include <pthread.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <stdbool.h>
#include <stdlib.h>

#include "kith/base.h"

typedef struct job {
    void (*fn)(void *);
    void *arg;
    struct job *next;
} job;

struct kith_pool {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    job *head, *tail;
    size_t queued, max_queue;
    bool stopping;
    unsigned n;
    pthread_t threads[];
};

static void *worker(void *arg)
{
    kith_pool *p = arg;
    pthread_setname_np(pthread_self(), "kith-ingest");
    /* Parsing batches is throughput work: the HTTP threads (profile reads) preempt it (nice 10
     * above the process's). Failure to lower the priority only loses that preference. */
    id_t tid = (id_t)syscall(SYS_gettid);
    errno = 0;
    int cur = getpriority(PRIO_PROCESS, tid);
    if (cur == -1 && errno) cur = 0;
    (void)setpriority(PRIO_PROCESS, tid, cur + 10 > 19 ? 19 : cur + 10);
    for (;;) {
        pthread_mutex_lock(&p->mu);
        while (!p->head && !p->stopping) pthread_cond_wait(&p->cv, &p->mu);
        job *j = p->head;
        if (j) {
            p->head = j->next;
            if (!p->head) p->tail = NULL;
            p->queued--;
        }
        pthread_mutex_unlock(&p->mu);
        if (!j) break;
        j->fn(j->arg);
        free(j);
    }
    return NULL;
}

kith_pool *pool_start(unsigned threads, size_t max_queue)
{
    if (!threads) threads = 1;
    kith_pool *p = kith_xcalloc(1, sizeof *p + threads * sizeof(pthread_t));
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->cv, NULL);
    p->max_queue = max_queue ? max_queue : 1024;
    for (unsigned i = 0; i < threads; i++)
        if (pthread_create(&p->threads[p->n], NULL, worker, p) == 0) p->n++;
    if (!p->n) {
        free(p);
        return NULL;
    }
    return p;
}

void pool_stop(kith_pool *p)
{
    if (!p) return;
    pthread_mutex_lock(&p->mu);
    p->stopping = true;
    pthread_cond_broadcast(&p->cv);
    pthread_mutex_unlock(&p->mu);
    for (unsigned i = 0; i < p->n; i++) pthread_join(p->threads[i], NULL);
    pthread_mutex_destroy(&p->mu);
    pthread_cond_destroy(&p->cv);
    free(p);
}

int pool_submit(kith_pool *p, void (*fn)(void *), void *arg)
{
    job *j = kith_xmalloc(sizeof *j);
    j->fn = fn;
    j->arg = arg;
    j->next = NULL;
    pthread_mutex_lock(&p->mu);
    int rc = 0;
    if (p->stopping) rc = KITH_ESHUTDOWN;
    else if (p->queued >= p->max_queue) rc = KITH_EBUSY;
    if (rc) {
        pthread_mutex_unlock(&p->mu);
        free(j);
        return rc;
    }
    if (p->tail) p->tail->next = j;
    else p->head = j;
    p->tail = j;
    p->queued++;
    pthread_cond_signal(&p->cv);
    pthread_mutex_unlock(&p->mu);
    return 0;
}
