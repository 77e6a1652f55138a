/* kith PQL incremental event aggregates: per-profile state that answers an event aggregate of a
 * compiled program without rescanning the profile's events.
 *
 * The compiler marks every *site* it can answer from state (src/segment/compile.c,
 * docs/PQL-IMPLEMENTATION.md "Incremental aggregates"):
 *
 *   xEvent[F].count()            xEvent[F].sum(E) / avg(E) / min(E) / max(E)
 *   xEvent[F].P.count()          xEvent[F].P.sum() / avg() / min() / max()
 *   xEvent[F].P.distinct().count()              (and the same over xEvent without a filter)
 *
 * where F is a conjunction (`and`) of *static* predicates (they read only the event: no `now`,
 * no profile field, no `^`, no inSegment, no other xEvent) and at most two *time* conjuncts
 * `<event expression> occurs <window relative to now/today/a constant>`; E and P are static too;
 * min/max only when the checker types the result as a number or a timestamp. Everything else
 * (CHAIN, select/exists over events, topN, an F that mixes time and data under `or`, ...) is read
 * by rescanning the events, as before.
 *
 * A site's state is its *contributions* (the values the aggregate would see from each event F's
 * static part admits): with no time conjunct, running figures (count, exact integer sum, double
 * sum, min, max, the distinct set); with time conjuncts, one entry per contribution holding the
 * conjunct's timestamps, filtered through the windows at evaluation time (so the answer is exact at
 * any instant, and the evaluator notes when an entry enters or leaves a window), and pruned once
 * below every window that shares it. Sites whose static part, values and time expressions are the
 * same have the same signature and may share one state, whatever their windows.
 *
 * Pure: no storage, no threads, no globals. State is owned by the caller (src/segment/svc_stream.c
 * keeps one value per profile in the segidx CF). */
#ifndef KITH_PQLINC_H
#define KITH_PQLINC_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kith/base.h"
#include "kith/pql.h"

#define PQL_INC_MAX_X 2          /* time conjuncts per site */
#define PQL_INC_MAX_ENTRIES 4096 /* windowed contributions kept per state; more → unusable */
#define PQL_INC_MAX_SET 1024     /* distinct values kept per state; more → unusable */
#define PQL_INC_MAX_STR 1024     /* a longer string value makes the state unusable */

/* A contribution's value: kind is 0 none/other, 1 bool, 2 int, 3 double, 4 string, 5 timestamp. */
typedef struct pql_inc_val {
    uint8_t kind;
    uint32_t len; /* string length */
    union {
        int64_t i;
        double d;
        char *s; /* owned, NUL-terminated */
    };
} pql_inc_val;

typedef struct pql_inc_entry {
    int64_t x[PQL_INC_MAX_X]; /* the time conjuncts' timestamps */
    pql_inc_val v;
} pql_inc_entry;

typedef struct pql_inc_state {
    uint64_t sig;
    uint8_t kind; /* the site's aggregate (internal enum) */
    uint8_t nx;   /* time conjuncts: 0 running figures, else entries */
    bool bad;     /* too big or mixed types: unusable (the caller rescans) */
    /* running figures (nx == 0) */
    uint64_t n, nnum;
    int64_t isum_hi; /* exact integer sum as a 128-bit two's complement (hi, lo) */
    uint64_t isum_lo;
    bool all_int;
    double dsum;
    pql_inc_val best; /* min/max */
    pql_inc_val *set; /* distinct values (owned) */
    size_t nset, capset;
    /* entries (nx > 0), in arrival order (owned) */
    pql_inc_entry *e;
    size_t ne, cape;
} pql_inc_state;

/* The sites of a compiled program (0 when it has none). */
size_t pql_inc_nsites(const pql_program *p);
/* Site k's signature: equal signatures accept the same contributions (any program). */
uint64_t pql_inc_sig(const pql_program *p, size_t k);
/* True when every read of xEvent in p is inside a site: given the states of all its sites, the
 * program needs no events at all. */
bool pql_inc_only(const pql_program *p);

/* An empty state for site k of p. */
void pql_inc_state_init(pql_inc_state *st, const pql_program *p, size_t k);
void pql_inc_state_free(pql_inc_state *st);
/* Adds one event entity (the object with "timestamp", "eventType", ...) to st, the state of site k
 * of p (or of any site with the same signature). Returns 1 when it contributed, 0 when not,
 * KITH_EBUSY when the evaluation budget ran out (st is then marked unusable). ev: any evaluator. */
int pql_inc_add(pql_evaluator *ev, const pql_program *p, size_t k, pql_inc_state *st,
                const json_t *event);
/* Drops the entries that are below the windows of every site sharing st at now (windows only move
 * forward, so they never count again): sites (progs[i], ks[i]), n of them. Returns true when it
 * dropped something. */
bool pql_inc_prune(pql_inc_state *st, const pql_program *const *progs, const size_t *ks, size_t n,
                   int64_t now);
/* Compact serialization; decode returns 0 and the bytes used, or KITH_EINVAL. */
void pql_inc_encode(const pql_inc_state *st, kith_buf *out);
int pql_inc_decode(pql_inc_state *st, const void *p, size_t len, size_t *used);

#endif
