/* kith pool: worker threads for CPU-heavy request work (parsing and validating ingest batches), so
 * that the HTTP threads stay free for reads: a profile lookup never waits behind a 1 MiB batch being
 * parsed on the same event loop. Bounded queue; a full queue refuses (429). */
#ifndef KITH_HTTP_POOL_H
#define KITH_HTTP_POOL_H

#include <stddef.h>

typedef struct kith_pool kith_pool;

kith_pool *pool_start(unsigned threads, size_t max_queue);
/* Runs queued jobs to the end, then stops the threads. */
void pool_stop(kith_pool *p);
/* Queues fn(arg). Returns 0, or KITH_EBUSY when max_queue jobs are waiting, or KITH_ESHUTDOWN. */
int pool_submit(kith_pool *p, void (*fn)(void *), void *arg);

#endif
