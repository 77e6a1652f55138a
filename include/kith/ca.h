/* kith computed attributes (aep-spec 6, API.md 6): definitions of windowed event aggregates per
 * sandbox, kept current on the apply thread for every profile (cluster) as incremental time-bucketed
 * state (kith/agg.h), read at `_computed.<name>` by Profile Access (withCA=true) and by PQL.
 *
 * Storage (all keys start with the 4-byte sandbox id):
 *   meta [sb]['c'][attribute id]   → definition JSON
 *   ca   [sb][cluster u64]         → state of every attribute of the cluster:
 *          [u16 n] then n × ([u32 slot][u32 len][agg state (len bytes)])
 * A slot is a per-attribute number that is never reused while state of it may remain.
 *
 * Expressions: `xEvent[<event filter>].<fn>(<event field>)` with fn sum, count, min, max, avg
 * (average) or mostRecent; the filter is PQL over one event (no `now`, no profile fields). */
#ifndef KITH_CA_H
#define KITH_CA_H

#include <jansson.h>

#include "kith/engine.h"

#define CA_ID_LEN 36
#define CA_MAX_PER_SANDBOX 50
#define CA_NAME_MAX 63

/* Engine lifecycle: init after segsvc_init (loads the definitions, registers the cluster-change
 * subscriber, starts the job thread and resumes unfinished backfills); stop before the apply thread
 * stops; free at the end. */
int ca_init(kith_engine *e);
void ca_stop(kith_engine *e);
void ca_free(kith_engine *e);

typedef struct ca_result {
    int status;       /* HTTP status to answer with */
    char detail[512]; /* what went wrong */
    json_t *errors;   /* [{path, message, line?, column?}] (owned) or NULL */
    json_t *doc;      /* the stored attribute (owned) on success */
} ca_result;

/* Apply thread: creates or replaces attribute id with body (for PATCH: the current object merged
 * with the patch). Validates everything first (nothing changes on an error). Publishing starts a
 * backfill job. 0, or KITH_EINVAL / KITH_ENOTFOUND / KITH_ECONFLICT with res filled. */
int ca_put(kith_engine *e, store_batch *b, uint32_t sb, const char *id, const json_t *body,
           bool create, ca_result *res);
/* Apply thread: deletes an attribute; its state is removed by a job. KITH_ENOTFOUND, or
 * KITH_ECONFLICT when a segment reads it (detail names the segment). */
int ca_delete(kith_engine *e, store_batch *b, uint32_t sb, const char *id, char *detail,
              size_t cap);
/* Any thread: the attribute with its job progress (owned), or NULL. */
json_t *ca_get(kith_engine *e, uint32_t sb, const char *id);
/* Any thread: every attribute of the sandbox (owned array). */
json_t *ca_list(kith_engine *e, uint32_t sb);

/* Apply thread: an event was stored under identity of cluster (ts ms, JSON text). */
void ca_note_event(kith_engine *e, store_batch *b, uint32_t sb, uint64_t cluster,
                   uint64_t identity, const char *dataset, int64_t ts, const char *event_id,
                   const char *json, size_t len);
/* Apply thread: every event of the cluster was deleted (profile delete). */
void ca_profile_deleted(kith_engine *e, store_batch *b, uint32_t sb, uint64_t cluster);
/* Apply thread: events stored under identity were deleted (a delete under one identity, a dataset
 * purge); the identity's cluster is recomputed at the end of the group. Deletes run exclusive, so no
 * recent event (kith/recent.h) is outside the store then; dataset (the purged one, or NULL) is unused. */
void ca_identity_events_deleted(kith_engine *e, store_batch *b, uint32_t sb, uint64_t identity,
                                const char *dataset);
/* Apply thread, end of group (after identity_flush_group, before segsvc_flush_group): recomputes the
 * clusters that changed shape or lost events. */
int ca_flush_group(kith_engine *e, store_batch *b);

/* Any thread (b: the apply thread's batch, or NULL for committed data): the `_computed` object of a
 * cluster at now, or NULL when the sandbox has no published attribute. *next_change (may be NULL)
 * receives the next instant a value ages (INT64_MAX: never). */
json_t *ca_values(kith_engine *e, store_batch *b, uint32_t sb, uint64_t cluster, int64_t now,
                  int64_t *next_change);
/* As ca_values, set into profile (an object) at "_computed"; returns the next-change instant. */
int64_t ca_attach(kith_engine *e, store_batch *b, uint32_t sb, uint64_t cluster, int64_t now,
                  json_t *profile);
/* Any thread: adds `_computed` with each published attribute's type to a union profile schema
 * ({"properties": ...}, as pql_env takes it); NULL is left alone. */
void ca_schema_augment(kith_engine *e, uint32_t sb, json_t *profile_schema);

typedef struct ca_stats {
    uint64_t events_matched, recomputes, backfill_events;
    uint64_t events_noted, note_ns; /* events seen by ca_note_event and the writer CPU time it took */
} ca_stats;
void ca_get_stats(kith_engine *e, ca_stats *out);

#endif
