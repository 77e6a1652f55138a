/* kith agg: incremental, time-bucketed aggregate state over a stream of timestamped values — the
 * per-profile state behind computed attributes (src/ca/) and reusable for any windowed event
 * aggregate (count, sum, min, max, average, most recent value with its timestamp).
 *
 * Windows are calendar-aligned (aep-spec 6.3): a window of `count` units at instant `now` covers
 * every value whose timestamp is at or after the start of the unit `count` units before the unit
 * holding `now` (HOURS: hour starts; DAYS: midnight UTC; WEEKS: Sunday 00:00 UTC; MONTHS: the 1st,
 * 00:00 UTC), up to and including values stamped later than now. The state keeps one bucket per
 * unit, so a read at any instant is exact for that definition, and values leave the window at unit
 * boundaries with no new data (agg_read reports the next such instant). Pure: no storage, no
 * threads, no globals. */
#ifndef KITH_AGG_H
#define KITH_AGG_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kith/base.h"

enum agg_unit { AGG_HOURS = 0, AGG_DAYS = 1, AGG_WEEKS = 2, AGG_MONTHS = 3 };

typedef struct agg_window {
    int unit;  /* enum agg_unit */
    int count; /* ≥ 1 */
} agg_window;

/* The unit period holding ts (ms since the epoch, UTC): hours, days, weeks (Sunday first) or
 * months since 1970-01; and the instant a period starts. */
int64_t agg_period_of(int unit, int64_t ts_ms);
int64_t agg_period_start(int unit, int64_t period);
/* The first instant the window covers at now. */
int64_t agg_window_start(agg_window w, int64_t now_ms);

/* Buckets beyond this (values stamped far in the future) fold into the latest one kept. */
#define AGG_MAX_BUCKETS 64
/* A most-recent value is kept as opaque bytes up to this size (longer ones are refused). */
#define AGG_LAST_MAX 4096

typedef struct agg_bucket {
    int64_t period;
    uint64_t count;            /* values added (numeric or not) */
    uint64_t nnum;             /* numeric values among them */
    double sum, min, max;      /* over the numeric values */
    int64_t last_ts;           /* timestamp of the most recent value (INT64_MIN: none) */
    char *last;                /* its bytes (owned), NULL when none were given */
    uint32_t last_len;
} agg_bucket;

/* What agg_encode keeps besides the counts (a state that only answers COUNT needs none of them):
 * the figures not kept read back as zero after a decode. */
enum { AGG_KEEP_SUM = 1, AGG_KEEP_MIN = 2, AGG_KEEP_MAX = 4, AGG_KEEP_LAST = 8, AGG_KEEP_ALL = 15 };

typedef struct agg_state {
    agg_window w;
    unsigned keep; /* AGG_KEEP_* (agg_init: AGG_KEEP_ALL) */
    agg_bucket *b; /* ascending by period (owned) */
    size_t n, cap;
} agg_state;

void agg_init(agg_state *s, agg_window w);
void agg_free(agg_state *s);
/* Drops the buckets that left the window at now. */
void agg_prune(agg_state *s, int64_t now_ms);

/* One value stamped ts: num (when has_num) feeds sum/min/max/average, last/last_len (may be NULL)
 * becomes the bucket's most recent value when ts is at or after the current one (a tie goes to the
 * later call). A value already out of the window at now is ignored (returns false); buckets out of
 * the window are dropped. Returns true when the state changed. */
bool agg_add(agg_state *s, int64_t ts, bool has_num, double num, const void *last,
             size_t last_len, int64_t now_ms);

/* dst takes every bucket of src (same window; identity merges: the union of two event sets). */
void agg_merge(agg_state *dst, const agg_state *src);

typedef struct agg_result {
    uint64_t count, nnum;
    double sum, min, max; /* min/max valid when nnum > 0 */
    int64_t last_ts;      /* INT64_MIN when no most-recent value */
    const char *last;     /* borrowed from the state */
    size_t last_len;
    int64_t next_change;  /* next instant > now at which a bucket leaves the window, or INT64_MAX */
} agg_result;
/* The aggregate over the buckets in the window at now. */
void agg_read(const agg_state *s, int64_t now_ms, agg_result *out);

/* Serialization, compact (varints; only the figures `keep` asks for: 2 bytes per bucket for a
 * count, 11 for a sum). agg_decode returns 0 and the bytes used, or KITH_EINVAL on malformed input
 * (s is then empty). */
void agg_encode(const agg_state *s, kith_buf *out);
int agg_decode(agg_state *s, const void *p, size_t len, size_t *used);

#endif
