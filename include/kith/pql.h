/* kith PQL: Adobe's Profile Query Language, compiled to a flat step program and evaluated over one
 * profile and its events. Pure: no storage, no HTTP, no threads of its own.
 *
 * Pipeline (src/segment/): lexer.c → parser.c (AST in an arena) → check.c (names and types against
 * the union schemas, dependency analysis) → compile.c (steps, constant pool; opcodes.def) →
 * eval.c (switch dispatch, no allocation, step/depth/scratch budgets). explain.c disassembles.
 *
 * A program is immutable once compiled and may be evaluated by many threads at once, each with its
 * own pql_evaluator. Semantics: ../../docs/PQL-IMPLEMENTATION.md and ../shared/PQL.md. */
#ifndef KITH_PQL_H
#define KITH_PQL_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "kith/base.h"

/* "The answer cannot change with no new data." */
#define PQL_NEVER INT64_MAX

typedef struct pql_program pql_program;
typedef struct pql_evaluator pql_evaluator;

/* Where a definition-time error is: 1-based line and column of the offending token, and a message
 * saying what was found and what was expected. */
typedef struct pql_error {
    int line, column;
    char message[256];
} pql_error;

/* Evaluation mode of a segment (PQL.md "Modes"). */
enum pql_mode { PQL_MODE_STREAMING = 0, PQL_MODE_EDGE = 1, PQL_MODE_BATCH = 2 };

/* What the checker knows. Everything is borrowed for the duration of pql_compile only.
 * profile_schema / event_schema: {"properties": {...}} as schema_union() returns for the profile
 * and the ExperienceEvent class; NULL means "no schema": any field name is accepted and types are
 * found at evaluation time. segment_mode: returns the pql_mode of a known segment id, or -1 when no
 * such segment exists (inSegment to it is a definition-time error); NULL accepts every id as a
 * streaming segment. */
typedef struct pql_env {
    const json_t *profile_schema;
    const json_t *event_schema;
    int (*segment_mode)(void *arg, const char *segment_id);
    void *arg;
} pql_env;

/* Compiles PQL text (len bytes, need not be NUL-terminated). On success *out is an owned program
 * (free with pql_program_free) and 0 is returned; otherwise KITH_EINVAL with err filled (line,
 * column, message), or KITH_ETOOLARGE when text exceeds 64 KiB or nests deeper than 64 levels. */
int pql_compile(const char *text, size_t len, const pql_env *env, pql_program **out,
                pql_error *err);
void pql_program_free(pql_program *p);

/* Dependency information, computed at compile time; valid while p lives. */
typedef struct pql_deps {
    const char *const *fields; /* profile fields read, dotted from the root
                                  ("person.name.firstName"), sorted, unique */
    size_t n_fields;
    const char *const *event_fields; /* event fields read, dotted from the event root */
    size_t n_event_fields;
    const char *const *event_types; /* eventType values named by equality filters on events; empty
                                       means "any event type may matter" when reads_events */
    size_t n_event_types;
    const char *const *segments; /* inSegment ids */
    size_t n_segments;
    bool reads_events;   /* xEvent appears: the program aggregates over events */
    bool uses_now;       /* the answer depends on the evaluation instant */
    int64_t lookback_ms; /* how far back events matter: -1 unbounded, 0 when no events are read */
    enum pql_mode mode;  /* eligibility class (PQL.md "Modes") */
    const char *mode_reason; /* one sentence, static */
} pql_deps;
const pql_deps *pql_program_deps(const pql_program *p);
/* The same as a JSON object (returns owned): {"fields", "eventFields", "eventTypes", "segments",
 * "readsEvents", "usesNow", "lookbackMs" (null = unbounded), "mode", "reason"}. */
json_t *pql_deps_json(const pql_program *p);

/* Appends a human-readable disassembly (one step per line, constant pool, blocks) to out. */
void pql_explain(const pql_program *p, kith_buf *out);

/* Evaluation budgets. Zeroes take the defaults shown. */
typedef struct pql_limits {
    uint32_t max_steps;   /* steps executed per evaluation (default 10,000,000) */
    uint32_t max_depth;   /* nesting of blocks (filters in filters, CHAIN search) (default 64) */
    uint32_t max_scratch; /* values materialised at once (filter results...) (default 262,144) */
} pql_limits;

/* An evaluator holds the value stack, variable slots and the scratch area. It is allocated once
 * (returns owned; free with pql_evaluator_free) and reused: pql_eval itself allocates nothing. One
 * thread at a time. */
pql_evaluator *pql_evaluator_new(const pql_limits *lim);
void pql_evaluator_free(pql_evaluator *ev);

/* Shared filter results: many segments filter a profile's events the same way
 * (xEvent[eventType = "commerce.purchases"] ...). A filter over the input's events whose predicate
 * reads only the event, constants and now is keyed by its canonical form (compile time); with a
 * memo in the input, the first evaluation that runs it keeps which events passed and later
 * evaluations of any program with the same filter, over the same events array at the same now, take
 * that answer instead of running the predicate again. The memo is the caller's, allocated once:
 * pql_memo_reset before the events change (the next profile) and before a program whose
 * evaluations filled it is freed. Bounded: when full, filters run unshared. One thread at a time. */
typedef struct pql_memo pql_memo;
pql_memo *pql_memo_new(void);
void pql_memo_reset(pql_memo *m);
void pql_memo_free(pql_memo *m);
/* Filters answered from the memo and filters run and kept since pql_memo_new. */
void pql_memo_stats(const pql_memo *m, uint64_t *hits, uint64_t *misses);

/* The input of one evaluation; everything borrowed for the duration of the call.
 * profile: the merged union view (an object; NULL = empty profile).
 * events: array of event entities sorted by timestamp ascending (NULL = none). Each event's
 *   "timestamp" is RFC 3339 text and is parsed when read (kith_time_parse).
 * now_ms: the evaluation instant (fixed for the evaluation; a batch job passes one now to all).
 * in_segment: membership of this profile in another segment (realized or existing → true); NULL
 *   means "in no segment". */
typedef struct pql_input {
    const json_t *profile;
    const json_t *events;
    int64_t now_ms;
    bool (*in_segment)(void *arg, const char *segment_id);
    void *arg;
    /* Incremental aggregate states (kith/pqlinc.h), one per site of the program (NULL: none): a
     * site whose state is given (and usable) is answered from it instead of from events. */
    const struct pql_inc_state *const *inc;
    pql_memo *memo; /* NULL: every filter runs */
} pql_input;

typedef struct pql_result {
    bool match;             /* the expression's truth (a non-boolean value: exists and non-empty) */
    int64_t next_change_ms; /* earliest instant > now at which the answer may change with no new
                               data, or PQL_NEVER */
    uint64_t steps;         /* steps executed */
} pql_result;

/* Evaluates p. Returns 0, or KITH_EBUSY when a budget ran out (res->match is then false and the
 * caller should report the segment as failed for this profile, not as "not a member"). Allocates
 * nothing. */
int pql_eval(pql_evaluator *ev, const pql_program *p, const pql_input *in, pql_result *res);

/* As pql_eval, and also returns the expression's value as JSON (owned; allocates, for tests,
 * previews and `kith pql eval`): booleans, numbers, strings, timestamps as RFC 3339 text,
 * collections as arrays, a missing value as JSON null. */
int pql_eval_value(pql_evaluator *ev, const pql_program *p, const pql_input *in, pql_result *res,
                   json_t **value);

/* ---- pql/json: AEP's tree form of PQL (src/segment/pqljson.c; docs/CONTRACT-NOTES.md "pql/json") ----
 * A tree is read by printing it as canonical PQL text and compiling that text, so the one parser and
 * checker decide everything; a position map ties every printed token back to the JSON pointer of its
 * node, so errors name the JSON path at fault. Bounds: nesting PQL_JSON_MAX_DEPTH, node count
 * PQL_JSON_MAX_NODES, and the printed text the 64 KiB of PQL text. */
#define PQL_JSON_MAX_DEPTH 128
#define PQL_JSON_MAX_NODES 20000

typedef struct pql_json_error {
    char path[256]; /* JSON pointer inside the tree ("" = the root) */
    char message[256];
} pql_json_error;

/* PQL text → tree (returns owned). Syntax only (the parser, not the checker): errors are a line and
 * column of the text, as pql_compile's. */
int pql_text_to_json(const char *text, size_t len, json_t **out, pql_error *err);
/* Tree → canonical PQL text (*text owned, NUL-terminated). Checks the tree's shape only. Returns 0,
 * KITH_EINVAL or KITH_ETOOLARGE with err naming the JSON pointer at fault. */
int pql_json_to_text(const json_t *tree, char **text, pql_json_error *err);
/* Tree → program: pql_json_to_text and pql_compile; a compile error names the node's JSON pointer.
 * *text (optional) receives the canonical text (owned). */
int pql_compile_json(const json_t *tree, const pql_env *env, pql_program **out, char **text,
                     pql_json_error *err);
/* The value of a pql/json expression object: a tree, or (as AEP writes it) a string holding one.
 * Returns the tree (new reference), or NULL with err filled (path relative to the value). */
json_t *pql_json_value(const json_t *value, pql_json_error *err);

#endif
