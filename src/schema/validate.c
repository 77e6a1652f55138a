/* Validation: walks the entity and the compiled node tree side by side.
 *
 * This runs for every ingested record, so it does no parsing and no allocation unless it reports an
 * error: object keys are looked up by binary search in the node's sorted property table, the way
 * to the current value is a stack of borrowed keys and indexes that becomes a JSON pointer only
 * when an error is reported, and required fields are
 * counted on the way through the entity's keys so that absent ones are searched for only when one
 * is actually missing. Recursion follows the schema, whose depth compile bounded; free-form values
 * (open objects, maps without a value schema) are walked only to reject nulls and bound nesting. */
#include "schema_int.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_SEGS 256 /* lim->max_depth is clamped below this */

/* One step of the way from the entity to the current value: an object key or an array index. */
typedef struct vseg {
    const char *key; /* borrowed from the entity; NULL for an index */
    size_t index;
} vseg;

typedef struct vctx {
    json_t *errors;
    int nerr, max_err, max_depth;
    int nsegs;
    vseg segs[MAX_SEGS];
} vctx;

static inline void push_key(vctx *v, const char *key)
{
    v->segs[v->nsegs++] = (vseg){key, 0};
}

static inline void push_index(vctx *v, size_t i)
{
    v->segs[v->nsegs++] = (vseg){NULL, i};
}

static inline void pop(vctx *v)
{
    v->nsegs--;
}

__attribute__((format(printf, 2, 3))) static void verr(vctx *v, const char *fmt, ...)
{
    if (v->nerr >= v->max_err) return;
    char msg[480];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    schema_path path = {0};
    for (int i = 0; i < v->nsegs; i++) {
        if (v->segs[i].key)
            schema_path_push(&path, v->segs[i].key);
        else
            schema_path_push_index(&path, v->segs[i].index);
    }
    schema_error_add(v->errors, path.buf, "%s", msg);
    v->nerr++;
}

/* Shortest text that reads back as d: 100, 0.5, 1e+300. */
static const char *number_text(double d, char *buf, size_t cap)
{
    if (d == trunc(d) && fabs(d) < 1e17) {
        snprintf(buf, cap, "%.0f", d);
        return buf;
    }
    snprintf(buf, cap, "%.15g", d);
    if (strtod(buf, NULL) != d) snprintf(buf, cap, "%.17g", d);
    return buf;
}

/* The value as it would appear in JSON, shortened for messages. */
static const char *value_text(const json_t *val, char *buf, size_t cap)
{
    char clip[128];
    if (json_is_string(val))
        snprintf(buf, cap, "\"%s\"", schema_clip(json_string_value(val), clip, sizeof clip));
    else if (json_is_number(val))
        number_text(json_number_value(val), buf, cap);
    else
        snprintf(buf, cap, "%s", json_is_true(val) ? "true" : "false");
    return buf;
}

static void type_error(vctx *v, const char *expected, const json_t *val)
{
    verr(v, "expected %s, got %s", expected, schema_json_type_name(val));
}

/* Formats ------------------------------------------------------------------------------------- */

static bool is_scheme(const char *s, size_t n)
{
    if (n == 0 || !((s[0] >= 'a' && s[0] <= 'z') || (s[0] >= 'A' && s[0] <= 'Z'))) return false;
    for (size_t i = 1; i < n; i++) {
        char c = s[i];
        if (!((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
              c == '+' || c == '-' || c == '.'))
            return false;
    }
    return true;
}

static bool is_hex(char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f') || (c >= 'A' && c <= 'F');
}

/* RFC 3986 characters (non-ASCII accepted, as IRIs), with well-formed %-escapes; when the text
 * starts with "x:" before any '/', '?' or '#', x must be a scheme. need_scheme asks for a URI
 * rather than a URI reference. */
static bool is_uri(const char *s, bool need_scheme)
{
    size_t colon = strcspn(s, ":/?#");
    bool has_scheme = s[colon] == ':';
    if (has_scheme && !is_scheme(s, colon)) return false;
    if (need_scheme && !has_scheme) return false;
    for (const unsigned char *c = (const unsigned char *)s; *c; c++) {
        if (*c <= 0x20 || *c == 0x7f || *c == '"' || *c == '<' || *c == '>' || *c == '\\' ||
            *c == '^' || *c == '`' || *c == '{' || *c == '|' || *c == '}')
            return false;
        if (*c == '%' && !(is_hex((char)c[1]) && is_hex((char)c[2]))) return false;
    }
    return true;
}

/* A pragmatic address check: local@domain, no spaces or controls, a dotted domain of
 * letters/digits/hyphens (or non-ASCII), no empty labels. */
static bool is_email(const char *s)
{
    const char *at = strrchr(s, '@');
    if (!at || at == s || at[1] == '\0') return false;
    for (const unsigned char *c = (const unsigned char *)s; c < (const unsigned char *)at; c++)
        if (*c <= 0x20 || *c == 0x7f || strchr("\"(),:;<>@[\\]", *c)) return false;
    if (s[0] == '.' || at[-1] == '.' || strstr(s, "..")) return false;
    const char *dom = at + 1;
    if (!strchr(dom, '.') || dom[0] == '.' || dom[strlen(dom) - 1] == '.') return false;
    for (const unsigned char *c = (const unsigned char *)dom; *c; c++) {
        bool ok = *c >= 0x80 || (*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z') ||
                  (*c >= '0' && *c <= '9') || *c == '-' || (*c == '.' && c[1] != '.');
        if (!ok) return false;
    }
    return true;
}

/* Values -------------------------------------------------------------------------------------- */

static void check_string(vctx *v, const schema_node *n, const json_t *val)
{
    const char *s = json_string_value(val);
    char buf[200];
    if (n->flags & NODE_HAS_LEN) {
        size_t len = json_string_length(val), cps = 0;
        for (size_t i = 0; i < len; i++)
            cps += ((unsigned char)s[i] & 0xC0) != 0x80;
        if (cps < n->min_len)
            verr(v, "must be at least %u character%s long (got %zu)", n->min_len,
                 n->min_len == 1 ? "" : "s", cps);
        else if (cps > n->max_len)
            verr(v, "must be at most %u character%s long (got %zu)", n->max_len,
                 n->max_len == 1 ? "" : "s", cps);
    }
    if (n->pattern && !schema_regex_match(n->pattern, s, json_string_length(val)))
        verr(v, "does not match pattern \"%s\"", schema_clip(n->pattern_src, buf, sizeof buf));
    int64_t ms;
    switch (n->format) {
    case FMT_DATE:
        if (kith_date_parse(s, &ms)) verr(v, "not a valid date (YYYY-MM-DD)");
        break;
    case FMT_DATE_TIME:
        if (kith_time_parse(s, &ms)) verr(v, "not a valid date-time (RFC 3339)");
        break;
    case FMT_EMAIL:
        if (!is_email(s)) verr(v, "not a valid email address");
        break;
    case FMT_URI:
        if (!is_uri(s, true)) verr(v, "not a valid URI (scheme:rest, no spaces)");
        break;
    case FMT_URI_REFERENCE:
        if (!is_uri(s, false)) verr(v, "not a valid URI reference (no spaces or quotes)");
        break;
    }
}

static void check_bounds(vctx *v, const schema_node *n, double d)
{
    char buf[40];
    if (n->flags & NODE_HAS_MIN) {
        bool excl = n->flags & NODE_MIN_EXCL;
        if (excl ? !(d > n->minimum) : !(d >= n->minimum))
            verr(v, "must be %s %s", excl ? ">" : ">=", number_text(n->minimum, buf, sizeof buf));
    }
    if (n->flags & NODE_HAS_MAX) {
        bool excl = n->flags & NODE_MAX_EXCL;
        if (excl ? !(d < n->maximum) : !(d <= n->maximum))
            verr(v, "must be %s %s", excl ? "<" : "<=", number_text(n->maximum, buf, sizeof buf));
    }
}

static bool enum_contains(const json_t *values, const json_t *val)
{
    size_t i;
    const json_t *e;
    json_array_foreach(values, i, e)
    {
        if (json_is_string(val)) {
            if (json_is_string(e) && json_string_length(e) == json_string_length(val) &&
                memcmp(json_string_value(e), json_string_value(val), json_string_length(e)) == 0)
                return true;
        } else if (json_is_number(val)) {
            if (json_is_number(e) && json_number_value(e) == json_number_value(val)) return true;
        } else if (json_typeof(e) == json_typeof(val)) {
            return true;
        }
    }
    return false;
}

static void validate_value(vctx *v, const schema_node *n, const json_t *val, int depth);

/* Content nobody described (open objects, maps without a value schema, arrays without items):
 * no nulls, bounded nesting. */
static void validate_free(vctx *v, const json_t *val, int depth)
{
    if (v->nerr >= v->max_err) return;
    if (depth > v->max_depth) {
        verr(v, "nested deeper than %d levels", v->max_depth);
        return;
    }
    const char *key;
    const json_t *child;
    size_t i;
    switch (json_typeof(val)) {
    case JSON_NULL:
        verr(v, "null is not allowed; omit the field");
        break;
    case JSON_OBJECT:
        json_object_foreach((json_t *)val, key, child)
        {
            push_key(v, key);
            validate_free(v, child, depth + 1);
            pop(v);
        }
        break;
    case JSON_ARRAY:
        json_array_foreach(val, i, child)
        {
            push_index(v, i);
            validate_free(v, child, depth + 1);
            pop(v);
        }
        break;
    default:
        break;
    }
}

static void validate_object(vctx *v, const schema_node *n, const json_t *obj, int depth)
{
    uint32_t seen = 0;
    char buf[128];
    for (void *it = json_object_iter((json_t *)obj); it;
         it = json_object_iter_next((json_t *)obj, it)) {
        if (v->nerr >= v->max_err) return;
        const char *key = json_object_iter_key(it);
        const json_t *val = json_object_iter_value(it);
        const struct schema_prop *pr = schema_node_findn(n, key, json_object_iter_key_len(it));
        push_key(v, key);
        if (pr) {
            validate_value(v, pr->node, val, depth + 1);
            seen += pr->required;
        } else if (n->additional) {
            validate_value(v, n->additional, val, depth + 1);
        } else if (n->flags & NODE_OPEN) {
            validate_free(v, val, depth + 1);
        } else {
            verr(v, "unknown field \"%s\" (not in schema)", schema_clip(key, buf, sizeof buf));
        }
        pop(v);
    }
    if (seen == n->nrequired) return;
    for (uint32_t i = 0; i < n->nprops; i++) {
        if (!n->props[i].required || json_object_get(obj, n->props[i].name)) continue;
        push_key(v, n->props[i].name);
        verr(v, "missing required field \"%s\"", schema_clip(n->props[i].name, buf, sizeof buf));
        pop(v);
    }
}

static void validate_array(vctx *v, const schema_node *n, const json_t *arr, int depth)
{
    size_t size = json_array_size(arr), i;
    const json_t *item;
    if (size < n->min_items)
        verr(v, "must have at least %u item%s (got %zu)", n->min_items,
             n->min_items == 1 ? "" : "s", size);
    else if (n->max_items != UINT32_MAX && size > n->max_items)
        verr(v, "must have at most %u item%s (got %zu)", n->max_items, n->max_items == 1 ? "" : "s",
             size);
    json_array_foreach(arr, i, item)
    {
        if (v->nerr >= v->max_err) return;
        push_index(v, i);
        if (n->items)
            validate_value(v, n->items, item, depth + 1);
        else
            validate_free(v, item, depth + 1);
        pop(v);
    }
}

static void validate_value(vctx *v, const schema_node *n, const json_t *val, int depth)
{
    char buf[160], b2[40];
    if (v->nerr >= v->max_err) return;
    if (json_is_null(val)) {
        verr(v, "null is not allowed; omit the field");
        return;
    }
    if (depth > v->max_depth) {
        verr(v, "nested deeper than %d levels", v->max_depth);
        return;
    }
    switch (n->type) {
    case NODE_STRING:
        if (!json_is_string(val)) {
            type_error(v, "string", val);
            return;
        }
        check_string(v, n, val);
        break;
    case NODE_INTEGER: {
        double d;
        if (json_is_integer(val)) {
            d = (double)json_integer_value(val);
        } else if (json_is_real(val)) {
            d = json_real_value(val);
            if (d != trunc(d)) {
                verr(v, "expected integer, got %s (a fraction)", number_text(d, b2, sizeof b2));
                return;
            }
        } else {
            type_error(v, "integer", val);
            return;
        }
        if (d < n->range_lo || d > n->range_hi) {
            verr(v, "out of range for %s: must be between %s and %s", n->xdm_type,
                 number_text(n->range_lo, buf, sizeof buf),
                 number_text(n->range_hi, b2, sizeof b2));
            return;
        }
        check_bounds(v, n, d);
        break;
    }
    case NODE_NUMBER:
        if (!json_is_number(val)) {
            type_error(v, "number", val);
            return;
        }
        check_bounds(v, n, json_number_value(val));
        break;
    case NODE_BOOLEAN:
        if (!json_is_boolean(val)) {
            type_error(v, "boolean", val);
            return;
        }
        break;
    case NODE_OBJECT:
        if (!json_is_object(val)) {
            type_error(v, "object", val);
            return;
        }
        validate_object(v, n, val, depth);
        return;
    case NODE_ARRAY:
        if (!json_is_array(val)) {
            type_error(v, "array", val);
            return;
        }
        validate_array(v, n, val, depth);
        return;
    }
    if (n->enum_values && !enum_contains(n->enum_values, val))
        verr(v, "%s is not one of %s", value_text(val, buf, sizeof buf), n->enum_text);
}

int schema_validate(const kith_schema *s, const json_t *entity, const schema_limits *lim,
                    json_t *errors)
{
    const schema_limits *d = &SCHEMA_LIMITS_DEFAULT;
    vctx v;
    v.errors = errors;
    v.nerr = v.nsegs = 0;
    v.max_err = lim && lim->max_errors > 0 ? lim->max_errors : d->max_errors;
    v.max_depth = lim && lim->max_depth > 0 ? lim->max_depth : d->max_depth;
    if (v.max_depth > MAX_SEGS - 2) v.max_depth = MAX_SEGS - 2;
    if (!json_is_object(entity))
        verr(&v, "the entity must be a JSON object, got %s",
             entity ? schema_json_type_name(entity) : "nothing");
    else
        validate_object(&v, s->root, entity, 0);
    return v.nerr;
}
