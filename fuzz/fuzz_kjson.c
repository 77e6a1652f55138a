/* Differential fuzz target: kjson must accept exactly what jansson's strict loader accepts
 * (JSON_REJECT_DUPLICATES, no NUL), and build an equal tree; spans must cover valid JSON text. */
#include <assert.h>
#include <jansson.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "kith/kjson.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 65536) return 0;
    kjson_error err;
    kjson_spans spans = {.max_depth = 3};
    json_t *a = kjson_parse((const char *)data, size, 2048, &spans, &err);
    json_error_t jerr;
    if (memchr(data, 0, size)) {
        /* jansson stops at a NUL byte; kjson rejects it. Only check kjson holds up. */
        assert(a == NULL);
        kjson_spans_free(&spans);
        return 0;
    }
    json_t *b = json_loadb((const char *)data, size, JSON_REJECT_DUPLICATES | JSON_DECODE_ANY, &jerr);
    if ((a == NULL) != (b == NULL)) {
        /* jansson's own depth bound is 2048 as well; anything else is a disagreement. */
        abort();
    }
    if (a) {
        if (!json_equal(a, b)) abort();
        kith_buf out = {0};
        if (kjson_dump(a, &out) != 0) abort();
        json_t *back = kjson_parse(out.data, out.len, 4096, NULL, &err);
        if (!back || !json_equal(back, a)) abort();
        json_decref(back);
        kith_buf_free(&out);
        for (size_t i = 0; i < spans.n; i++) {
            const kjson_span *s = &spans.v[i];
            assert(s->start < s->end && s->end <= size);
            json_t *c = json_loadb((const char *)data + s->start, s->end - s->start,
                                   JSON_REJECT_DUPLICATES, &jerr);
            if (!c || !json_equal(c, s->obj)) abort();
            json_decref(c);
        }
    } else {
        assert(err.line >= 1 && err.column >= 1 && err.position <= size);
    }
    kjson_spans_free(&spans);
    json_decref(a);
    json_decref(b);
    return 0;
}
