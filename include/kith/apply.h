/* kith apply: the single writer.
 *
 * Worker threads submit operations; one apply thread takes everything queued, runs each operation into
 * one store_batch (read-your-writes), commits the batch with one WAL sync, and only then calls every
 * operation's done callback. So an acknowledged write is durable and already visible to readers.
 * The queue is bounded by weight (messages); a full queue refuses with KITH_EBUSY (HTTP 429). */
#ifndef KITH_APPLY_H
#define KITH_APPLY_H

#include "kith/base.h"
#include "kith/store.h"

typedef struct kith_apply kith_apply;
typedef struct apply_op apply_op;

/* Runs on the apply thread inside the group's batch. A non-zero return rolls back what this operation
 * wrote to the batch (savepoint) and becomes op->rc. */
typedef int (*apply_fn)(void *ctx, store_batch *b);
/* Runs on the syncer thread after the group is durable (or failed: rc < 0); must not block long. */
typedef void (*apply_done_fn)(void *ctx, int rc);
/* Runs on the apply thread after the operations of a group ran and before the commit, once per group
 * (e.g. re-materialising the union views of the clusters the group touched). */
typedef int (*apply_group_fn)(void *arg, store_batch *b);

struct apply_op {
    apply_fn fn;
    apply_done_fn done;
    void *ctx;
    size_t weight;  /* messages in this operation (queue bound) */
    bool exclusive; /* commit what came before, run alone, commit (range deletes, sandbox deletes) */
    int rc;
    apply_op *next;
};

typedef struct apply_stats {
    uint64_t groups, ops, syncs, write_ns_total, commit_ns_total, commit_ns_max;
    size_t queued_weight;
} apply_stats;

/* st borrowed. max_weight bounds queued messages. group_fn/group_arg may be NULL. */
int apply_start(kith_store *st, size_t max_weight, apply_group_fn group_fn, void *group_arg,
                kith_apply **out);
/* fn(arg) runs on the apply thread whenever writes are undone (a savepoint rollback or a failed group),
 * so that caches of the writer can be dropped. */
void apply_set_reset(kith_apply *a, void (*fn)(void *), void *arg);
/* Post-commit publication (e.g. the membership change stream): after each group's commit
 * sealed(arg, rc) runs on the apply thread (rc: the commit's result) and returns a token (or NULL);
 * once the group is durable — or failed — durable(arg, token, rc) runs on the syncer thread, after
 * the group's operations were answered; rc 0 means the group is durable and acknowledged. It must
 * not block. Set before data flows. */
void apply_set_publish(kith_apply *a, void *(*sealed)(void *arg, int rc),
                       void (*durable)(void *arg, void *token, int rc), void *arg);
/* Lowers the syncer thread's CPU priority by nice (like the writer's: reads preempt both). */
void apply_set_syncer_nice(kith_apply *a, int nice);
/* Work the writer hands to the syncer: before writing group number `group`'s blind part, the syncer
 * calls fill(arg, group, ok, &blind), which may add writes to it (creating it when NULL); ok is false
 * for a group whose commit failed (drop what was prepared for it). Set before data flows. */
void apply_set_blind_fill(kith_apply *a, void (*fill)(void *arg, uint64_t group, bool ok, store_blind **bl),
                          void *arg);
/* Drains the queue, commits, stops the thread. */
void apply_stop(kith_apply *a);

/* Queues op (borrowed until done is called). Returns 0, KITH_EBUSY when the queue is full, or
 * KITH_ESHUTDOWN when stopping. */
int apply_submit(kith_apply *a, apply_op *op);
/* Submits fn and waits for the commit; returns fn's result, or the commit/queue error. Never refused
 * for weight (control plane). */
int apply_call(kith_apply *a, apply_fn fn, void *ctx, bool exclusive);
void apply_get_stats(kith_apply *a, apply_stats *out);
/* Apply thread: the number of the group being written (groups are numbered 1, 2, ... in commit
 * order, failed ones included). */
uint64_t apply_group_number(kith_apply *a);
/* Any thread: every group numbered up to this one has had its blind appends written (or failed). */
uint64_t apply_blind_written(kith_apply *a);
/* Apply thread: waits until the syncer has written the blind appends of every group handed to it
 * (e.g. before the writer reads back from the store keys whose writes it handed over blind). */
void apply_wait_blind(kith_apply *a);
/* True on the apply thread. */
bool apply_on_thread(kith_apply *a);

#endif
