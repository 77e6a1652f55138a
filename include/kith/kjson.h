/* kith kjson: a strict, fast JSON parser that builds a jansson tree.
 *
 * The ingest hot path used jansson's own loader, whose byte-at-a-time stream lexer was most of the
 * cost of an event. kjson reads the buffer directly and builds the same json_t tree (so validation and
 * everything downstream is unchanged), with the same strictness as json_loadb(JSON_REJECT_DUPLICATES):
 * RFC 8259 grammar, valid UTF-8 in strings, no NUL characters, no duplicate keys, integers within
 * 64 bits; plus a nesting bound. It can also remember where each object of the first levels starts and
 * ends in the input, so the exact text of an entity can be stored without serialising it again. */
#ifndef KITH_KJSON_H
#define KITH_KJSON_H

#include <jansson.h>
#include <stddef.h>

typedef struct kjson_error {
    int line, column; /* 1-based; column counts bytes */
    size_t position;  /* byte offset */
    char text[160];
} kjson_error;

typedef struct kjson_span {
    const json_t *obj; /* borrowed: identity only */
    size_t start, end; /* [start, end) in the input */
} kjson_span;

typedef struct kjson_spans {
    kjson_span *v;
    size_t n, cap;
    int max_depth; /* record objects nested at most this deep (root = 0); -1 = none */
    int sorted;
} kjson_spans;

/* Parses buf[0..len) (no NUL needed). Returns a new reference, or NULL with *err filled. max_depth
 * bounds nesting (arrays and objects). spans may be NULL. */
json_t *kjson_parse(const char *buf, size_t len, int max_depth, kjson_spans *spans, kjson_error *err);
/* Finds the recorded span of obj; returns 0 and sets start/end, or -1. */
int kjson_span_find(kjson_spans *spans, const json_t *obj, size_t *start, size_t *end);
void kjson_spans_free(kjson_spans *spans);

/* Appends the compact JSON text of v to out (insertion order of keys, reals in their shortest
 * round-trip form). Returns 0, or -1 for nesting deeper than 2048. */
#include "kith/base.h"
int kjson_dump(const json_t *v, kith_buf *out);
/* Appends s[0..n) as a JSON string (quoted, escaped as kjson_dump escapes). */
void kjson_dump_string(const char *s, size_t n, kith_buf *out);

#endif
