/* kith recent events: the events applied in groups whose blind appends may not be in the store yet.
 *
 * The writer puts an event into the group's blind appends, which the syncer writes after the writer's
 * commit (src/ingest/apply.c), so a reader on the apply thread that reads a profile's events from the
 * store — streaming segments (src/segment/svc_stream.c), computed attributes (src/ca/) — misses the
 * events of the group being written and of the groups the syncer has not reached. This buffer keeps
 * them, once for every consumer: an event is copied (and parsed, on demand) at most once, and only when
 * a consumer asks to keep it. An entry goes when the syncer reports its group's appends written
 * (apply_blind_written), or when its group failed (nothing of it was written).
 *
 * Apply thread only. A consumer reads the store and the buffer like this, so that every event is seen
 * by one of the two (and maybe by both: drop duplicates by key):
 *
 *     uint64_t mark = recent_mark(e);             // before any store read
 *     ... read the events from the store ...
 *     for (const recent_event *r = recent_first(e, mark, sb, identity); r; r = recent_next(r, mark))
 *         ... r->ts, r->event_id, recent_tree(r) ...
 */
#ifndef KITH_RECENT_H
#define KITH_RECENT_H

#include <jansson.h>

#include "kith/engine.h"

typedef struct recent_event {
    uint32_t sb;
    uint64_t identity; /* the identity the event is stored under */
    int64_t ts;        /* ms */
    uint64_t group;    /* the writer's group number (apply_group_number) */
    char dataset[KITH_ID_LEN + 1];
    const char *event_id; /* NUL-terminated, inside the entry */
    const char *json;     /* the event as stored, NUL-terminated, inside the entry */
    size_t len;
    json_t *tree; /* the parsed event, once recent_tree asked for it */
    /* private */
    struct recent_event *next, **pprev; /* hash chain */
    struct recent_event *older, *newer; /* age list */
} recent_event;

/* Engine lifecycle (engine.c). */
void recent_init(kith_engine *e);
void recent_free(kith_engine *e);

/* Keeps the event just applied (stored under identity, in the group being written) for readers of
 * the coming groups; a second call for the same event returns the same entry. Borrowed: valid until
 * the next recent_prune. */
const recent_event *recent_keep(kith_engine *e, uint32_t sb, uint64_t identity, const char *dataset,
                                int64_t ts, const char *event_id, const char *json, size_t len);
/* The event parsed (borrowed; incref to keep it past recent_prune), or NULL if it does not parse. */
json_t *recent_tree(const recent_event *r);

/* Every group numbered up to the mark has its appends in the store: read it before reading the store. */
uint64_t recent_mark(kith_engine *e);
/* The kept events of (sb, identity) whose group is after mark, newest first. */
const recent_event *recent_first(kith_engine *e, uint64_t mark, uint32_t sb, uint64_t identity);
const recent_event *recent_next(const recent_event *r, uint64_t mark);

/* Drops the entries whose appends are written (called once per group, before the consumers run). */
void recent_prune(kith_engine *e);
/* The group being written failed: its events were never written; forget them. */
void recent_group_failed(kith_engine *e, uint64_t group);
/* Entries kept (tests, metrics). */
size_t recent_count(kith_engine *e);

#endif
