/* kith kjson: recursive-descent JSON parser over a buffer, building jansson values (see kjson.h). */
#include "kith/kjson.h"

#include <errno.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kith/base.h"

typedef struct parser {
    const unsigned char *p, *start, *end;
    int depth, max_depth;
    kjson_spans *spans;
    kjson_error *err;
    char *tmp; /* scratch for unescaped strings */
    size_t tmpcap;
    int failed;
} parser;

__attribute__((format(printf, 3, 4))) static void fail_at(parser *ps, const unsigned char *at,
                                                          const char *fmt, ...)
{
    if (ps->failed) return;
    ps->failed = 1;
    kjson_error *e = ps->err;
    if (!e) return;
    if (at > ps->end) at = ps->end;
    int line = 1, col = 1;
    for (const unsigned char *q = ps->start; q < at; q++) {
        if (*q == '\n') line++, col = 1;
        else col++;
    }
    e->line = line;
    e->column = col;
    e->position = (size_t)(at - ps->start);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(e->text, sizeof e->text, fmt, ap);
    va_end(ap);
}

static inline void skip_ws(parser *ps)
{
    while (ps->p < ps->end && (*ps->p == ' ' || *ps->p == '\n' || *ps->p == '\r' || *ps->p == '\t'))
        ps->p++;
}

static json_t *parse_value(parser *ps);

static void span_add(parser *ps, const json_t *obj, size_t start, size_t end)
{
    kjson_spans *s = ps->spans;
    if (s->n == s->cap) {
        s->cap = s->cap ? s->cap * 2 : 64;
        s->v = kith_xrealloc(s->v, s->cap * sizeof *s->v);
    }
    s->v[s->n++] = (kjson_span){obj, start, end};
    s->sorted = 0;
}

static int hexdig(unsigned char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

static int read_hex4(parser *ps, const unsigned char *q, unsigned *out)
{
    if (ps->end - q < 4) return -1;
    unsigned v = 0;
    for (int i = 0; i < 4; i++) {
        int h = hexdig(q[i]);
        if (h < 0) return -1;
        v = v << 4 | (unsigned)h;
    }
    *out = v;
    return 0;
}

static size_t put_utf8(char *o, unsigned cp)
{
    if (cp < 0x80) {
        o[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        o[0] = (char)(0xc0 | cp >> 6);
        o[1] = (char)(0x80 | (cp & 0x3f));
        return 2;
    }
    if (cp < 0x10000) {
        o[0] = (char)(0xe0 | cp >> 12);
        o[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
        o[2] = (char)(0x80 | (cp & 0x3f));
        return 3;
    }
    o[0] = (char)(0xf0 | cp >> 18);
    o[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
    o[2] = (char)(0x80 | ((cp >> 6) & 0x3f));
    o[3] = (char)(0x80 | (cp & 0x3f));
    return 4;
}

/* Length of a valid UTF-8 sequence at q (strict: no overlongs, surrogates or > U+10FFFF), or 0. */
static size_t utf8_len(const unsigned char *q, const unsigned char *end)
{
    unsigned char c = q[0];
    size_t n;
    unsigned cp;
    if (c < 0x80) return 1;
    if (c >= 0xc2 && c <= 0xdf) n = 2, cp = c & 0x1f;
    else if (c >= 0xe0 && c <= 0xef) n = 3, cp = c & 0x0f;
    else if (c >= 0xf0 && c <= 0xf4) n = 4, cp = c & 0x07;
    else return 0;
    if ((size_t)(end - q) < n) return 0;
    for (size_t i = 1; i < n; i++) {
        if ((q[i] & 0xc0) != 0x80) return 0;
        cp = cp << 6 | (q[i] & 0x3f);
    }
    if ((n == 3 && cp < 0x800) || (n == 4 && (cp < 0x10000 || cp > 0x10ffff)) ||
        (cp >= 0xd800 && cp <= 0xdfff))
        return 0;
    return n;
}

/* Parses a string at ps->p (on the opening quote). Returns a pointer to its bytes (in the input when
 * it has no escapes, else in ps->tmp) and its length; NULL on error. */
static const char *parse_string(parser *ps, size_t *len_out)
{
    const unsigned char *q = ps->p + 1;
    const unsigned char *s = q;
    /* Fast scan: plain ASCII without escapes is used in place. */
    while (q < ps->end && *q != '"' && *q != '\\' && *q >= 0x20 && *q < 0x80) q++;
    if (q < ps->end && *q == '"') {
        ps->p = q + 1;
        *len_out = (size_t)(q - s);
        return (const char *)s;
    }
    /* Slow path: escapes, UTF-8, errors. Worst case output = input length. */
    size_t need = (size_t)(ps->end - s) + 4;
    if (need > ps->tmpcap) {
        free(ps->tmp);
        ps->tmpcap = need < 4096 ? 4096 : need;
        ps->tmp = kith_xmalloc(ps->tmpcap);
    }
    char *o = ps->tmp;
    size_t n = (size_t)(q - s);
    memcpy(o, s, n);
    while (q < ps->end) {
        unsigned char c = *q;
        if (c == '"') {
            ps->p = q + 1;
            *len_out = n;
            return o;
        }
        if (c < 0x20) {
            fail_at(ps, q, "control character 0x%02x in a string (escape it)", c);
            return NULL;
        }
        if (c == '\\') {
            if (q + 1 >= ps->end) break;
            unsigned char x = q[1];
            q += 2;
            switch (x) {
            case '"': o[n++] = '"'; break;
            case '\\': o[n++] = '\\'; break;
            case '/': o[n++] = '/'; break;
            case 'b': o[n++] = '\b'; break;
            case 'f': o[n++] = '\f'; break;
            case 'n': o[n++] = '\n'; break;
            case 'r': o[n++] = '\r'; break;
            case 't': o[n++] = '\t'; break;
            case 'u': {
                unsigned cp;
                if (read_hex4(ps, q, &cp)) {
                    fail_at(ps, q - 2, "invalid \\u escape");
                    return NULL;
                }
                q += 4;
                if (cp >= 0xd800 && cp <= 0xdbff) {
                    unsigned lo;
                    if (ps->end - q < 6 || q[0] != '\\' || q[1] != 'u' || read_hex4(ps, q + 2, &lo) ||
                        lo < 0xdc00 || lo > 0xdfff) {
                        fail_at(ps, q - 6, "invalid Unicode surrogate pair");
                        return NULL;
                    }
                    q += 6;
                    cp = 0x10000 + ((cp - 0xd800) << 10) + (lo - 0xdc00);
                } else if (cp >= 0xdc00 && cp <= 0xdfff) {
                    fail_at(ps, q - 6, "invalid Unicode surrogate");
                    return NULL;
                }
                if (cp == 0) {
                    fail_at(ps, q - 6, "\\u0000 is not allowed");
                    return NULL;
                }
                n += put_utf8(o + n, cp);
                break;
            }
            default:
                fail_at(ps, q - 2, "invalid escape '\\%c'", x);
                return NULL;
            }
            continue;
        }
        size_t u = utf8_len(q, ps->end);
        if (!u) {
            fail_at(ps, q, "invalid UTF-8 in a string");
            return NULL;
        }
        memcpy(o + n, q, u);
        n += u;
        q += u;
    }
    fail_at(ps, ps->p, "unterminated string");
    return NULL;
}

static json_t *parse_number(parser *ps)
{
    const unsigned char *q = ps->p, *s = q;
    int is_real = 0;
    if (q < ps->end && *q == '-') q++;
    if (q >= ps->end || *q < '0' || *q > '9') {
        fail_at(ps, s, "invalid number");
        return NULL;
    }
    if (*q == '0') {
        q++;
        if (q < ps->end && *q >= '0' && *q <= '9') {
            fail_at(ps, s, "invalid number (leading zero)");
            return NULL;
        }
    } else {
        while (q < ps->end && *q >= '0' && *q <= '9') q++;
    }
    if (q < ps->end && *q == '.') {
        is_real = 1;
        q++;
        if (q >= ps->end || *q < '0' || *q > '9') {
            fail_at(ps, s, "invalid number (digits expected after '.')");
            return NULL;
        }
        while (q < ps->end && *q >= '0' && *q <= '9') q++;
    }
    if (q < ps->end && (*q == 'e' || *q == 'E')) {
        is_real = 1;
        q++;
        if (q < ps->end && (*q == '+' || *q == '-')) q++;
        if (q >= ps->end || *q < '0' || *q > '9') {
            fail_at(ps, s, "invalid number (digits expected in the exponent)");
            return NULL;
        }
        while (q < ps->end && *q >= '0' && *q <= '9') q++;
    }
    size_t n = (size_t)(q - s);
    if (!is_real && n > 20) {
        fail_at(ps, s, "too big integer");
        return NULL;
    }
    char small[64];
    char *buf = n < sizeof small ? small : kith_xmalloc(n + 1);
    memcpy(buf, s, n);
    buf[n] = 0;
    ps->p = q;
    errno = 0;
    json_t *out = NULL;
    if (!is_real) {
        long long v = strtoll(buf, NULL, 10);
        if (errno == ERANGE) fail_at(ps, s, "too big integer");
        else out = json_integer((json_int_t)v);
    } else {
        double d = strtod(buf, NULL);
        if (errno == ERANGE && (d > 1 || d < -1)) fail_at(ps, s, "real number overflow");
        else out = json_real(d);
    }
    if (buf != small) free(buf);
    return out;
}

static json_t *parse_object(parser *ps)
{
    const unsigned char *open = ps->p;
    size_t start = (size_t)(open - ps->start);
    int depth = ps->depth;
    if (++ps->depth > ps->max_depth) {
        fail_at(ps, open, "maximum nesting depth (%d) exceeded", ps->max_depth);
        return NULL;
    }
    ps->p++;
    json_t *obj = json_object();
    skip_ws(ps);
    if (ps->p < ps->end && *ps->p == '}') {
        ps->p++;
        goto done;
    }
    for (;;) {
        skip_ws(ps);
        if (ps->p >= ps->end || *ps->p != '"') {
            fail_at(ps, ps->p, "string or '}' expected");
            goto fail;
        }
        const unsigned char *kat = ps->p;
        size_t klen;
        const char *k = parse_string(ps, &klen);
        if (!k) goto fail;
        char kbuf[256];
        char *key = klen < sizeof kbuf ? kbuf : kith_xmalloc(klen + 1);
        memcpy(key, k, klen);
        key[klen] = 0;
        if (json_object_get(obj, key)) {
            fail_at(ps, kat, "duplicate object key \"%.60s\"", key);
            if (key != kbuf) free(key);
            goto fail;
        }
        skip_ws(ps);
        if (ps->p >= ps->end || *ps->p != ':') {
            fail_at(ps, ps->p, "':' expected");
            if (key != kbuf) free(key);
            goto fail;
        }
        ps->p++;
        json_t *v = parse_value(ps);
        if (!v) {
            if (key != kbuf) free(key);
            goto fail;
        }
        json_object_set_new_nocheck(obj, key, v);
        if (key != kbuf) free(key);
        skip_ws(ps);
        if (ps->p < ps->end && *ps->p == ',') {
            ps->p++;
            continue;
        }
        if (ps->p < ps->end && *ps->p == '}') {
            ps->p++;
            break;
        }
        fail_at(ps, ps->p, "',' or '}' expected");
        goto fail;
    }
done:
    ps->depth--;
    if (ps->spans && depth <= ps->spans->max_depth)
        span_add(ps, obj, start, (size_t)(ps->p - ps->start));
    return obj;
fail:
    json_decref(obj);
    return NULL;
}

static json_t *parse_array(parser *ps)
{
    if (++ps->depth > ps->max_depth) {
        fail_at(ps, ps->p, "maximum nesting depth (%d) exceeded", ps->max_depth);
        return NULL;
    }
    ps->p++;
    json_t *arr = json_array();
    skip_ws(ps);
    if (ps->p < ps->end && *ps->p == ']') {
        ps->p++;
        ps->depth--;
        return arr;
    }
    for (;;) {
        json_t *v = parse_value(ps);
        if (!v) {
            json_decref(arr);
            return NULL;
        }
        json_array_append_new(arr, v);
        skip_ws(ps);
        if (ps->p < ps->end && *ps->p == ',') {
            ps->p++;
            continue;
        }
        if (ps->p < ps->end && *ps->p == ']') {
            ps->p++;
            break;
        }
        fail_at(ps, ps->p, "',' or ']' expected");
        json_decref(arr);
        return NULL;
    }
    ps->depth--;
    return arr;
}

static int literal(parser *ps, const char *word, size_t n)
{
    if ((size_t)(ps->end - ps->p) >= n && memcmp(ps->p, word, n) == 0) {
        ps->p += n;
        return 1;
    }
    return 0;
}

static json_t *parse_value(parser *ps)
{
    skip_ws(ps);
    if (ps->p >= ps->end) {
        fail_at(ps, ps->p, "unexpected end of input");
        return NULL;
    }
    switch (*ps->p) {
    case '{': return parse_object(ps);
    case '[': return parse_array(ps);
    case '"': {
        size_t n;
        const char *s = parse_string(ps, &n);
        return s ? json_stringn_nocheck(s, n) : NULL;
    }
    case 't':
        if (literal(ps, "true", 4)) return json_true();
        break;
    case 'f':
        if (literal(ps, "false", 5)) return json_false();
        break;
    case 'n':
        if (literal(ps, "null", 4)) return json_null();
        break;
    default:
        if (*ps->p == '-' || (*ps->p >= '0' && *ps->p <= '9')) return parse_number(ps);
    }
    fail_at(ps, ps->p, "invalid token");
    return NULL;
}

json_t *kjson_parse(const char *buf, size_t len, int max_depth, kjson_spans *spans, kjson_error *err)
{
    parser ps = {.p = (const unsigned char *)buf,
                 .start = (const unsigned char *)buf,
                 .end = (const unsigned char *)buf + len,
                 .max_depth = max_depth > 0 ? max_depth : 64,
                 .spans = spans,
                 .err = err};
    if (spans) spans->n = 0;
    json_t *v = parse_value(&ps);
    if (v) {
        skip_ws(&ps);
        if (ps.p != ps.end) {
            fail_at(&ps, ps.p, "end of input expected");
            json_decref(v);
            v = NULL;
        }
    }
    free(ps.tmp);
    if (!v && spans) spans->n = 0;
    return v;
}

static int span_cmp(const void *a, const void *b)
{
    const kjson_span *x = a, *y = b;
    return x->obj < y->obj ? -1 : x->obj > y->obj;
}

int kjson_span_find(kjson_spans *spans, const json_t *obj, size_t *start, size_t *end)
{
    if (!spans || !spans->n) return -1;
    if (!spans->sorted) {
        qsort(spans->v, spans->n, sizeof *spans->v, span_cmp);
        spans->sorted = 1;
    }
    kjson_span key = {obj, 0, 0};
    kjson_span *hit = bsearch(&key, spans->v, spans->n, sizeof *spans->v, span_cmp);
    if (!hit) return -1;
    *start = hit->start;
    *end = hit->end;
    return 0;
}

void kjson_spans_free(kjson_spans *spans)
{
    if (!spans) return;
    free(spans->v);
    spans->v = NULL;
    spans->n = spans->cap = 0;
}

/* --- writer --- */

static void dump_string(kith_buf *b, const char *s, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    kith_buf_reserve(b, n + 2);
    b->data[b->len++] = '"';
    size_t run = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c >= 0x20 && c != '"' && c != '\\') continue;
        kith_buf_append(b, s + run, i - run);
        run = i + 1;
        char esc[7] = {'\\', 0};
        switch (c) {
        case '"': esc[1] = '"'; break;
        case '\\': esc[1] = '\\'; break;
        case '\n': esc[1] = 'n'; break;
        case '\r': esc[1] = 'r'; break;
        case '\t': esc[1] = 't'; break;
        case '\b': esc[1] = 'b'; break;
        case '\f': esc[1] = 'f'; break;
        default:
            memcpy(esc, "\\u00", 4);
            esc[4] = hex[c >> 4];
            esc[5] = hex[c & 15];
            kith_buf_append(b, esc, 6);
            continue;
        }
        kith_buf_append(b, esc, 2);
    }
    kith_buf_append(b, s + run, n - run);
    kith_buf_append(b, "\"", 1);
}

void kjson_dump_string(const char *s, size_t n, kith_buf *out)
{
    dump_string(out, s, n);
}

static void dump_real(kith_buf *b, double d)
{
    char buf[40];
    snprintf(buf, sizeof buf, "%.15g", d);
    if (strtod(buf, NULL) != d) snprintf(buf, sizeof buf, "%.17g", d);
    /* Keep it a real when read back: 1 → 1.0 (as jansson does). */
    if (!strpbrk(buf, ".eE") && !strstr(buf, "inf") && !strstr(buf, "nan")) strcat(buf, ".0");
    kith_buf_puts(b, buf);
}

static int dump_value(kith_buf *b, const json_t *v, int depth)
{
    if (depth > 2048) return -1;
    switch (json_typeof(v)) {
    case JSON_OBJECT: {
        kith_buf_append(b, "{", 1);
        const char *k;
        json_t *x;
        int first = 1;
        json_object_foreach((json_t *)v, k, x)
        {
            if (!first) kith_buf_append(b, ",", 1);
            first = 0;
            dump_string(b, k, strlen(k));
            kith_buf_append(b, ":", 1);
            if (dump_value(b, x, depth + 1)) return -1;
        }
        kith_buf_append(b, "}", 1);
        return 0;
    }
    case JSON_ARRAY: {
        kith_buf_append(b, "[", 1);
        size_t n = json_array_size(v);
        for (size_t i = 0; i < n; i++) {
            if (i) kith_buf_append(b, ",", 1);
            if (dump_value(b, json_array_get(v, i), depth + 1)) return -1;
        }
        kith_buf_append(b, "]", 1);
        return 0;
    }
    case JSON_STRING:
        dump_string(b, json_string_value(v), json_string_length(v));
        return 0;
    case JSON_INTEGER: {
        char buf[24];
        int n = snprintf(buf, sizeof buf, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
        kith_buf_append(b, buf, (size_t)n);
        return 0;
    }
    case JSON_REAL: dump_real(b, json_real_value(v)); return 0;
    case JSON_TRUE: kith_buf_puts(b, "true"); return 0;
    case JSON_FALSE: kith_buf_puts(b, "false"); return 0;
    case JSON_NULL: kith_buf_puts(b, "null"); return 0;
    }
    return -1;
}

int kjson_dump(const json_t *v, kith_buf *out)
{
    return v ? dump_value(out, v, 0) : -1;
}
