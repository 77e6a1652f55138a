/* kith computed attributes: definitions, per-cluster state, streaming updates and reads (see
 * include/kith/ca.h). Every write runs on the apply thread; reads take the definitions' read lock. */
#include <ctype.h>
#include <stdarg.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "ca_int.h"
#include "kith/jalloc.h"
#include "kith/kjson.h"
#include "kith/recent.h"
#include "kith/segsvc.h"

#define TS_BIAS 0x8000000000000000ull
#define EXPR_MAX 65536

static const char *const fn_names[] = {"SUM", "COUNT", "MIN", "MAX", "AVG", "MOST_RECENT"};
static const char *const unit_names[] = {"HOURS", "DAYS", "WEEKS", "MONTHS"};
static const int unit_max[] = {24, 7, 4, 6}; /* aep-spec 6.3 */

/* --- definitions cache --- */

static void def_free(ca_def *d)
{
    if (!d) return;
    json_decref(d->doc);
    json_decref(d->field_schema);
    pql_program_free(d->filter);
    free(d);
}

ca_def *ca_def_find(ca_svc *s, uint32_t sb, const char *id)
{
    for (size_t i = 0; i < s->n; i++)
        if (s->v[i]->sb == sb && strcmp(s->v[i]->id, id) == 0) return s->v[i];
    return NULL;
}

static ca_def *def_find_name(ca_svc *s, uint32_t sb, const char *name)
{
    for (size_t i = 0; i < s->n; i++)
        if (s->v[i]->sb == sb && strcmp(s->v[i]->name, name) == 0) return s->v[i];
    return NULL;
}

static size_t count_in(ca_svc *s, uint32_t sb)
{
    size_t n = 0;
    for (size_t i = 0; i < s->n; i++)
        n += s->v[i]->sb == sb;
    return n;
}

/* The published definitions of sb, in creation order, into out (at most cap). Apply thread, or
 * under the lock. */
static size_t published_of(ca_svc *s, uint32_t sb, const ca_def **out, size_t cap)
{
    size_t n = 0;
    for (size_t i = 0; i < s->n && n < cap; i++)
        if (s->v[i]->sb == sb && s->v[i]->published) out[n++] = s->v[i];
    return n;
}

static void cache_put(ca_svc *s, ca_def *d)
{
    pthread_rwlock_wrlock(&s->lock);
    for (size_t i = 0; i < s->n; i++) {
        if (s->v[i]->sb == d->sb && strcmp(s->v[i]->id, d->id) == 0) {
            ca_def *old = s->v[i];
            s->v[i] = d;
            pthread_rwlock_unlock(&s->lock);
            def_free(old);
            return;
        }
    }
    if (s->n == s->cap) {
        s->cap = s->cap ? s->cap * 2 : 16;
        s->v = kith_xrealloc(s->v, s->cap * sizeof *s->v);
    }
    s->v[s->n++] = d;
    pthread_rwlock_unlock(&s->lock);
}

static void cache_remove(ca_svc *s, ca_def *d)
{
    pthread_rwlock_wrlock(&s->lock);
    for (size_t i = 0; i < s->n; i++) {
        if (s->v[i] == d) {
            memmove(s->v + i, s->v + i + 1, (s->n - i - 1) * sizeof *s->v);
            s->n--;
            break;
        }
    }
    pthread_rwlock_unlock(&s->lock);
    def_free(d);
}

/* --- the expression: xEvent[<filter>].<fn>(<field>) --- */

typedef struct ca_expr {
    int fn;
    bool has_filter;
    size_t close; /* offset of the filter's closing ']' */
    char field[256];
} ca_expr;

static void line_col(const char *t, size_t pos, int *line, int *col)
{
    *line = 1;
    *col = 1;
    for (size_t i = 0; i < pos && t[i]; i++) {
        if (t[i] == '\n') {
            (*line)++;
            *col = 1;
        } else if (((unsigned char)t[i] & 0xc0) != 0x80) {
            (*col)++;
        }
    }
}

static int expr_fail(const char *t, size_t pos, pql_error *err, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int expr_fail(const char *t, size_t pos, pql_error *err, const char *fmt, ...)
{
    line_col(t, pos, &err->line, &err->column);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err->message, sizeof err->message, fmt, ap);
    va_end(ap);
    return KITH_EINVAL;
}

static size_t skip_ws(const char *t, size_t i)
{
    while (t[i] == ' ' || t[i] == '\t' || t[i] == '\n' || t[i] == '\r')
        i++;
    return i;
}

static bool ident_start(char c)
{
    return isalpha((unsigned char)c) || c == '_';
}

static bool ident_char(char c)
{
    return isalnum((unsigned char)c) || c == '_';
}

static const struct {
    const char *name;
    int fn;
} fn_words[] = {{"sum", CA_SUM},         {"count", CA_COUNT},         {"min", CA_MIN},
                {"max", CA_MAX},         {"avg", CA_AVG},             {"average", CA_AVG},
                {"mostRecent", CA_MOST_RECENT}, {"most_recent", CA_MOST_RECENT}};

static int parse_expr(const char *t, ca_expr *x, pql_error *err)
{
    memset(x, 0, sizeof *x);
#define SHAPE "expected xEvent[<event filter>].<function>(<event field>)"
    size_t i = skip_ws(t, 0);
    if (strncmp(t + i, "xEvent", 6) != 0 || ident_char(t[i + 6]))
        return expr_fail(t, i, err, SHAPE ": a computed attribute aggregates the profile's events (xEvent)");
    i = skip_ws(t, i + 6);
    if (t[i] == '[') {
        size_t open = i;
        int depth = 1;
        size_t j = i + 1;
        for (; t[j] && depth > 0; j++) {
            char c = t[j];
            if (c == '"' || c == '\'' || c == '`') {
                for (j++; t[j] && t[j] != c; j++)
                    if (t[j] == '\\' && t[j + 1]) j++;
                if (!t[j]) return expr_fail(t, j, err, "unterminated string");
            } else if (c == '[') {
                depth++;
            } else if (c == ']') {
                depth--;
            }
        }
        if (depth > 0) return expr_fail(t, open, err, "'[' is never closed");
        x->close = j - 1;
        x->has_filter = true;
        if (skip_ws(t, open + 1) == x->close)
            return expr_fail(t, x->close, err, "expected an event filter inside [ ]");
        i = skip_ws(t, j);
    }
    if (t[i] != '.')
        return expr_fail(t, i, err, SHAPE ": a function call such as .sum(field) is missing");
    i = skip_ws(t, i + 1);
    size_t ws = i;
    while (ident_char(t[i]))
        i++;
    char word[32];
    snprintf(word, sizeof word, "%.*s", (int)(i - ws), t + ws);
    x->fn = -1;
    for (size_t k = 0; k < sizeof fn_words / sizeof fn_words[0]; k++)
        if (strcasecmp(word, fn_words[k].name) == 0) x->fn = fn_words[k].fn;
    if (x->fn < 0)
        return expr_fail(t, ws, err,
                         "unsupported function '%s' (expected sum, count, min, max, avg or "
                         "mostRecent)",
                         word);
    i = skip_ws(t, i);
    if (t[i] != '(') return expr_fail(t, i, err, "expected '(' after the function");
    i = skip_ws(t, i + 1);
    size_t fs = i;
    while (ident_start(t[i])) {
        while (ident_char(t[i]))
            i++;
        if (t[i] != '.' || !ident_start(t[i + 1])) break;
        i++;
    }
    if (i - fs >= sizeof x->field) return expr_fail(t, fs, err, "the field path is too long");
    memcpy(x->field, t + fs, i - fs);
    x->field[i - fs] = 0;
    i = skip_ws(t, i);
    if (t[i] != ')')
        return expr_fail(t, i, err, "expected ')' or a dotted event field such as commerce.order.priceTotal");
    if (x->fn == CA_COUNT && x->field[0])
        return expr_fail(t, fs, err, "count() takes no field");
    if (x->fn != CA_COUNT && !x->field[0])
        return expr_fail(t, fs, err, "this function needs an event field, as in .sum(commerce.order.priceTotal)");
    i = skip_ws(t, i + 1);
    if (t[i]) return expr_fail(t, i, err, "unexpected text after the expression");
    return 0;
}

struct union_ctx {
    schema_class cls;
    const kith_schema *v[256];
    size_t n;
};

static void union_collect(const cat_schema *sc, void *arg)
{
    struct union_ctx *u = arg;
    if (sc->profile_enabled && sc->compiled && sc->cls == u->cls && u->n < 256)
        u->v[u->n++] = sc->compiled;
}

/* The union schema of the sandbox's ExperienceEvent class (owned), or NULL when it has none. */
static json_t *event_union(kith_engine *e, uint32_t sb)
{
    struct union_ctx u = {.cls = SCHEMA_CLASS_EVENT};
    catalog_rdlock(e->cat);
    catalog_each_schema(e->cat, sb, union_collect, &u);
    json_t *un = NULL;
    if (u.n) {
        json_t *errors = json_array();
        un = schema_union(u.v, u.n, errors);
        json_decref(errors);
    }
    catalog_unlock(e->cat);
    return un;
}

/* The schema of a dotted path in a union schema (borrowed) or NULL. */
static const json_t *schema_at(const json_t *sch, const char *path)
{
    char seg[256];
    const char *p = path;
    while (sch && *p) {
        const char *dot = strchr(p, '.');
        size_t l = dot ? (size_t)(dot - p) : strlen(p);
        if (l >= sizeof seg) return NULL;
        memcpy(seg, p, l);
        seg[l] = 0;
        sch = json_object_get(json_object_get(sch, "properties"), seg);
        p = dot ? dot + 1 : p + l;
    }
    return sch;
}

static bool is_primitive_schema(const json_t *s)
{
    const char *t = json_string_value(json_object_get(s, "type"));
    return t && (!strcmp(t, "string") || !strcmp(t, "integer") || !strcmp(t, "number") ||
                 !strcmp(t, "boolean"));
}

/* Compiles the expression of d (fn, field, filter, value type). */
static int compile_def(kith_engine *e, ca_def *d, const char *text, pql_error *err)
{
    ca_expr x;
    if (parse_expr(text, &x, err)) return KITH_EINVAL;
    d->fn = x.fn;
    snprintf(d->field, sizeof d->field, "%s", x.field);
    json_t *evs = event_union(e, d->sb);
    int rc = 0;
    if (x.has_filter) {
        kith_buf t = {0};
        kith_buf_append(&t, text, x.close + 1);
        kith_buf_puts(&t, ".count() > 0");
        pql_env env = {.event_schema = evs};
        rc = pql_compile(t.data, t.len, &env, &d->filter, err);
        d->filter_hash = kith_hash64(t.data, t.len, 0x6361);
        kith_buf_free(&t);
        if (rc == 0) {
            const pql_deps *dp = pql_program_deps(d->filter);
            const char *why = dp->uses_now ? "the event filter must not depend on now (the lookback is "
                                             "given by duration)"
                              : dp->n_fields  ? "the event filter may read only event fields, not profile "
                                                "fields"
                              : dp->n_segments ? "the event filter may not use inSegment"
                                               : NULL;
            if (why) {
                line_col(text, 0, &err->line, &err->column);
                snprintf(err->message, sizeof err->message, "%s", why);
                rc = KITH_EINVAL;
            }
        }
    }
    d->vt = x.fn == CA_COUNT ? CA_VT_INT : x.fn == CA_MOST_RECENT ? CA_VT_ANY : CA_VT_NUM;
    if (rc == 0 && x.fn != CA_COUNT) {
        const json_t *fs = evs ? schema_at(evs, x.field) : NULL;
        const char *fpos = strstr(text + (x.has_filter ? x.close : 0), x.field);
        size_t at = fpos ? (size_t)(fpos - text) : 0;
        const char *ty = json_string_value(json_object_get(fs, "type"));
        const char *fmt = json_string_value(json_object_get(fs, "format"));
        bool time = (ty && !strcmp(ty, "string") && fmt &&
                     (!strcmp(fmt, "date-time") || !strcmp(fmt, "date"))) ||
                    (!evs && !strcmp(x.field, "timestamp"));
        if (evs && !fs) {
            rc = expr_fail(text, at, err, "unknown event field '%.120s'", x.field);
        } else if (x.fn == CA_MOST_RECENT) {
            if (fs && !is_primitive_schema(fs) &&
                !(ty && !strcmp(ty, "array") && is_primitive_schema(json_object_get(fs, "items"))))
                rc = expr_fail(text, at, err,
                               "mostRecent needs a primitive field or an array of primitives, "
                               "'%.120s' is not",
                               x.field);
            d->field_schema = fs ? json_deep_copy(fs) : NULL;
        } else if (time && (x.fn == CA_MIN || x.fn == CA_MAX)) {
            d->vt = CA_VT_TIME;
        } else if (fs && !(ty && (!strcmp(ty, "integer") || !strcmp(ty, "number")))) {
            rc = expr_fail(text, at, err,
                           x.fn == CA_MIN || x.fn == CA_MAX
                               ? "min and max need a numeric or date-time field, '%.120s' is not"
                               : "sum and avg need a numeric field, '%.120s' is not",
                           x.field);
        } else if (ty && !strcmp(ty, "integer") && x.fn != CA_AVG) {
            d->vt = CA_VT_INT;
        }
    }
    json_decref(evs);
    return rc;
}

/* --- documents --- */

static void meta_key(store_key *k, uint32_t sb, const char *id)
{
    skey_init(k, sb);
    skey_u8(k, CA_META_KIND);
    skey_bytes(k, id, strlen(id));
}

void ca_def_store(ca_svc *s, store_batch *b, ca_def *d)
{
    (void)s;
    char *ser = kith_json_dumps(d->doc, JSON_COMPACT);
    store_key k;
    meta_key(&k, d->sb, d->id);
    store_batch_put(b, STORE_CF_META, k.b, k.n, ser, strlen(ser));
    free(ser);
}

static json_t *return_schema(const ca_def *d)
{
    switch (d->vt) {
    case CA_VT_INT: return json_pack("{s:s, s:s}", "type", "integer", "meta:xdmType", "long");
    case CA_VT_TIME:
        return json_pack("{s:s, s:s, s:s}", "type", "string", "format", "date-time", "meta:xdmType",
                         "date-time");
    case CA_VT_NUM: return json_pack("{s:s, s:s}", "type", "number", "meta:xdmType", "number");
    default:
        return json_pack("{s:s, s:{s:O?, s:{s:s, s:s}}}", "type", "object", "properties", "value",
                         d->field_schema, "timestamp", "type", "string", "format", "date-time");
    }
}

static void add_err(json_t *errors, const char *path, const char *msg)
{
    json_array_append_new(errors, json_pack("{s:s, s:s}", "path", path, "message", msg));
}

static int fail(ca_result *res, int status, json_t *errors, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int fail(ca_result *res, int status, json_t *errors, const char *fmt, ...)
{
    res->status = status;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(res->detail, sizeof res->detail, fmt, ap);
    va_end(ap);
    res->errors = errors;
    return status == 404 ? KITH_ENOTFOUND : status == 409 ? KITH_ECONFLICT : KITH_EINVAL;
}

static bool valid_name(const char *n)
{
    if (!n || !isalpha((unsigned char)n[0]) || strlen(n) > CA_NAME_MAX) return false;
    for (const char *p = n; *p; p++)
        if (!ident_char(*p)) return false;
    return true;
}

/* "DRAFT" / "PUBLISHED" from a string or {"type": ...}; NULL when absent, "" when invalid. */
static const char *status_of(const json_t *st)
{
    if (!st) return NULL;
    const char *v = json_is_object(st) ? json_string_value(json_object_get(st, "type"))
                                       : json_string_value(st);
    if (v && !strcasecmp(v, "DRAFT")) return "DRAFT";
    if (v && !strcasecmp(v, "PUBLISHED")) return "PUBLISHED";
    return "";
}

static uint32_t new_slot(ca_svc *s, uint32_t sb)
{
    for (;;) {
        uint32_t slot;
        kith_random(&slot, sizeof slot);
        if (slot == 0) continue;
        bool used = ca_job_slot_busy(s, sb, slot);
        for (size_t i = 0; i < s->n && !used; i++)
            used = s->v[i]->sb == sb && s->v[i]->slot == slot;
        if (!used) return slot;
    }
}

int ca_put(kith_engine *e, store_batch *b, uint32_t sb, const char *id, const json_t *body,
           bool create, ca_result *res)
{
    ca_svc *s = ca_of(e);
    memset(res, 0, sizeof *res);
    json_t *errors = json_array();
    if (!json_is_object(body)) {
        add_err(errors, "", "expected a computed attribute object");
        return fail(res, 400, errors, "the body is not a computed attribute object");
    }
    ca_def *cur = ca_def_find(s, sb, id);
    if (!create && !cur) {
        json_decref(errors);
        return fail(res, 404, NULL, "no computed attribute \"%s\"", id);
    }
    const char *name = json_string_value(json_object_get(body, "name"));
    if (!valid_name(name))
        add_err(errors, "/name",
                "required: a letter then letters, digits or '_' (at most 63); it is the field "
                "name under _computed");
    const json_t *dn = json_object_get(body, "displayName"), *desc = json_object_get(body, "description");
    if (dn && !json_is_null(dn) && (!json_is_string(dn) || json_string_length(dn) > 512))
        add_err(errors, "/displayName", "a string of at most 512 bytes");
    if (desc && !json_is_null(desc) && (!json_is_string(desc) || json_string_length(desc) > 4096))
        add_err(errors, "/description", "a string of at most 4096 bytes");
    const json_t *ex = json_object_get(body, "expression");
    const char *etype = json_string_value(json_object_get(ex, "type"));
    const char *efmt = json_string_value(json_object_get(ex, "format"));
    const json_t *ev = json_object_get(ex, "value");
    if (!json_is_object(ex))
        add_err(errors, "/expression", "required: {\"type\": \"PQL\", \"format\": \"pql/text\", \"value\"}");
    else if (!etype || strcmp(etype, "PQL") != 0)
        add_err(errors, "/expression/type", "\"PQL\"");
    else if (efmt && strcmp(efmt, "pql/text") != 0)
        add_err(errors, "/expression/format", "\"pql/text\"");
    else if (!json_is_string(ev) || json_string_length(ev) == 0 || json_string_length(ev) > EXPR_MAX)
        add_err(errors, "/expression/value", "a PQL string of 1 to 65536 bytes");
    const json_t *du = json_object_get(body, "duration");
    const json_t *dc = json_object_get(du, "count");
    const char *unit = json_string_value(json_object_get(du, "unit"));
    int u = -1;
    for (int i = 0; unit && i < 4; i++)
        if (!strcasecmp(unit, unit_names[i])) u = i;
    char msg[400];
    if (!json_is_object(du)) {
        add_err(errors, "/duration", "required: {\"count\": n, \"unit\": \"HOURS|DAYS|WEEKS|MONTHS\"}");
    } else if (u < 0) {
        add_err(errors, "/duration/unit", "one of HOURS, DAYS, WEEKS, MONTHS");
    } else if (!json_is_integer(dc) || json_integer_value(dc) < 1 ||
               json_integer_value(dc) > unit_max[u]) {
        snprintf(msg, sizeof msg, "lookback out of range: %s allows a count from 1 to %d",
                 unit_names[u], unit_max[u]);
        add_err(errors, "/duration/count", msg);
    }
    const char *st = status_of(json_object_get(body, "status"));
    if (st && !*st) add_err(errors, "/status", "\"DRAFT\" or \"PUBLISHED\"");
    if (!st) st = cur && cur->published ? "PUBLISHED" : "DRAFT";
    bool publish = !strcmp(st, "PUBLISHED");
    if (json_array_size(errors)) {
        json_t *first = json_array_get(errors, 0);
        snprintf(msg, sizeof msg, "%s: %s", json_string_value(json_object_get(first, "path")),
                 json_string_value(json_object_get(first, "message")));
        return fail(res, 400, errors, "invalid computed attribute: %s", msg);
    }
    const char *text = json_string_value(ev);
    if (cur && cur->published) {
        /* Published: only the labels may change (aep-spec 6.4). */
        const json_t *ce = json_object_get(cur->doc, "expression");
        const json_t *cd = json_object_get(cur->doc, "duration");
        const char *bad = strcmp(name, cur->name)                                          ? "/name"
                          : strcmp(text, json_string_value(json_object_get(ce, "value"))) ? "/expression"
                          : json_integer_value(dc) != json_integer_value(json_object_get(cd, "count")) ||
                                  u != cur->w.unit
                              ? "/duration"
                          : !publish ? "/status"
                                     : NULL;
        if (bad) {
            add_err(errors, bad, "a published computed attribute keeps its name, expression, "
                                 "duration and status; only displayName and description change");
            return fail(res, 400, errors, "%s cannot change on a published computed attribute", bad);
        }
    }
    ca_def *other = def_find_name(s, sb, name);
    if (other && other != cur) {
        snprintf(msg, sizeof msg, "name clash: computed attribute %s is already named \"%s\"",
                 other->id, name);
        add_err(errors, "/name", msg);
        return fail(res, 400, errors, "%s", msg);
    }
    if (create && count_in(s, sb) >= CA_MAX_PER_SANDBOX) {
        snprintf(msg, sizeof msg, "a sandbox holds at most %d computed attributes", CA_MAX_PER_SANDBOX);
        add_err(errors, "", msg);
        return fail(res, 400, errors, "%s", msg);
    }
    ca_def *d = kith_xcalloc(1, sizeof *d);
    d->sb = sb;
    snprintf(d->id, sizeof d->id, "%s", id);
    snprintf(d->name, sizeof d->name, "%s", name);
    d->w = (agg_window){u, (int)json_integer_value(dc)};
    d->published = publish;
    pql_error perr = {0};
    if (compile_def(e, d, text, &perr)) {
        def_free(d);
        snprintf(msg, sizeof msg, "line %d, column %d: %s", perr.line, perr.column, perr.message);
        json_array_append_new(errors, json_pack("{s:s, s:s, s:i, s:i}", "path", "/expression/value",
                                                "message", msg, "line", perr.line, "column",
                                                perr.column));
        return fail(res, 400, errors, "the expression is not a supported computed attribute: %s", msg);
    }
    json_decref(errors);
    /* A definition loaded at start keeps its slot, times and job status (never taken from a
     * request); a new one gets a fresh slot. */
    const json_t *stored = s->loading ? body : NULL;
    const json_t *js = json_object_get(stored, "kith:slot");
    d->slot = cur ? cur->slot
              : json_is_integer(js) && json_integer_value(js) > 0
                  ? (uint32_t)json_integer_value(js)
                  : new_slot(s, sb);
    int64_t now = kith_now_ms();
    d->created = cur ? cur->created
                     : json_is_integer(json_object_get(stored, "createEpoch"))
                         ? json_integer_value(json_object_get(stored, "createEpoch"))
                         : now;
    const char *job = !publish ? "NOT_STARTED"
                      : cur && cur->published
                          ? json_string_value(json_object_get(json_object_get(cur->doc, "status"), "job"))
                          : "PROCESSING";
    const json_t *given_job = json_object_get(json_object_get(stored, "status"), "job");
    if (!cur && json_is_string(given_job) && publish) job = json_string_value(given_job);
    json_t *doc = json_object();
    json_object_set_new(doc, "id", json_string(id));
    json_object_set_new(doc, "type", json_string("ComputedAttribute"));
    json_object_set_new(doc, "name", json_string(name));
    json_object_set_new(doc, "displayName", json_string(json_is_string(dn) ? json_string_value(dn) : name));
    json_object_set_new(doc, "description", json_string(json_is_string(desc) ? json_string_value(desc) : ""));
    json_object_set_new(doc, "expression",
                        json_pack("{s:s, s:s, s:s}", "type", "PQL", "format", "pql/text", "value", text));
    json_object_set_new(doc, "duration",
                        json_pack("{s:i, s:s}", "count", d->w.count, "unit", unit_names[u]));
    json_object_set_new(doc, "mergeFunction", json_pack("{s:s}", "value", fn_names[d->fn]));
    json_object_set_new(doc, "status", json_pack("{s:s, s:s}", "type", st, "job", job ? job : "PROCESSING"));
    json_object_set_new(doc, "keepCurrent", json_true());
    json_object_set_new(doc, "path", json_string("_computed"));
    json_object_set_new(doc, "positionPath", json_pack("[s, s]", "_computed", name));
    json_object_set_new(doc, "schema", json_pack("{s:s}", "name", "_xdm.context.profile"));
    json_object_set_new(doc, "returnSchema", return_schema(d));
    json_object_set_new(doc, "definedOn",
                        json_pack("[{s:s, s:s}]", "$ref", "https://ns.adobe.com/xdm/context/profile__union",
                                  "contentType", "application/vnd.adobe.xed+json;version=1"));
    catalog_rdlock(e->cat);
    const cat_sandbox *sbx = catalog_sandbox_by_id(e->cat, sb);
    json_object_set_new(doc, "imsOrgId", json_string("kith"));
    json_object_set_new(doc, "sandbox", json_pack("{s:s, s:s}", "sandboxName", sbx ? sbx->name : "",
                                                  "sandboxId", sbx ? sbx->name : ""));
    catalog_unlock(e->cat);
    json_object_set_new(doc, "createEpoch", json_integer(d->created));
    json_object_set_new(doc, "updateEpoch",
                        json_integer(cur || !json_is_integer(json_object_get(stored, "updateEpoch"))
                                         ? now
                                         : json_integer_value(json_object_get(stored, "updateEpoch"))));
    json_object_set_new(doc, "kith:slot", json_integer(d->slot));
    d->doc = doc;
    bool start_backfill = publish && (!cur || !cur->published) && (!job || strcmp(job, "ENABLED") != 0);
    ca_def_store(s, b, d);
    cache_put(s, d);
    if (start_backfill) ca_job_queue(s, CA_JOB_BACKFILL, sb, id, d->slot);
    res->status = create ? 201 : 200;
    res->doc = json_incref(doc);
    return 0;
}

/* Segments that read `_computed.<name>`: the first one's id into out. */
static bool segment_reads(kith_engine *e, uint32_t sb, const char *name, char *out, size_t cap)
{
    json_t *defs = segdef_list(e, sb);
    char want[CA_NAME_MAX + 16];
    snprintf(want, sizeof want, "_computed.%s", name);
    size_t wl = strlen(want), i;
    json_t *d;
    bool found = false;
    json_array_foreach(defs, i, d)
    {
        json_t *fields = json_object_get(json_object_get(d, "kith:deps"), "fields");
        size_t j;
        json_t *f;
        json_array_foreach(fields, j, f)
        {
            const char *fs = json_string_value(f);
            if (fs && !strncmp(fs, want, wl) && (fs[wl] == 0 || fs[wl] == '.')) {
                snprintf(out, cap, "%s", json_string_value(json_object_get(d, "id")));
                found = true;
                break;
            }
        }
        if (found) break;
    }
    json_decref(defs);
    return found;
}

int ca_delete(kith_engine *e, store_batch *b, uint32_t sb, const char *id, char *detail, size_t cap)
{
    ca_svc *s = ca_of(e);
    ca_def *d = ca_def_find(s, sb, id);
    if (!d) return KITH_ENOTFOUND;
    char seg[64];
    if (segment_reads(e, sb, d->name, seg, sizeof seg)) {
        snprintf(detail, cap, "segment definition \"%s\" reads _computed.%s", seg, d->name);
        return KITH_ECONFLICT;
    }
    store_key k;
    meta_key(&k, sb, id);
    store_batch_delete(b, STORE_CF_META, k.b, k.n);
    if (d->published) ca_job_queue(s, CA_JOB_DROP, sb, id, d->slot);
    cache_remove(s, d);
    return 0;
}

static json_t *with_job(ca_svc *s, const ca_def *d)
{
    json_t *doc = json_deep_copy(d->doc);
    json_object_del(doc, "kith:slot");
    json_t *job = ca_job_json(s, d->sb, d->id);
    if (job) json_object_set_new(doc, "backfill", job);
    return doc;
}

json_t *ca_get(kith_engine *e, uint32_t sb, const char *id)
{
    ca_svc *s = ca_of(e);
    if (!s) return NULL;
    pthread_rwlock_rdlock(&s->lock);
    ca_def *d = ca_def_find(s, sb, id);
    json_t *doc = d ? with_job(s, d) : NULL;
    pthread_rwlock_unlock(&s->lock);
    return doc;
}

json_t *ca_list(kith_engine *e, uint32_t sb)
{
    ca_svc *s = ca_of(e);
    json_t *arr = json_array();
    if (!s) return arr;
    pthread_rwlock_rdlock(&s->lock);
    for (size_t i = 0; i < s->n; i++)
        if (s->v[i]->sb == sb) json_array_append_new(arr, with_job(s, s->v[i]));
    pthread_rwlock_unlock(&s->lock);
    return arr;
}

/* --- per-cluster state blob --- */

/* An entry is decoded only when an attribute touches it; the others are written back as they were
 * read (raw points into the buffer the blob was loaded from, which outlives the blob). */
typedef struct blob_ent {
    uint32_t slot;
    bool decoded;
    const uint8_t *raw;
    uint32_t rawlen;
    agg_state st; /* valid when decoded */
} blob_ent;

typedef struct blob {
    blob_ent *v;
    size_t n, cap;
} blob;

static void state_key(store_key *k, uint32_t sb, uint64_t cluster)
{
    skey_init(k, sb);
    skey_u64(k, cluster);
}

static void ent_clear(blob_ent *en)
{
    if (en->decoded) agg_free(&en->st);
}

static void blob_free(blob *bl)
{
    for (size_t i = 0; i < bl->n; i++)
        ent_clear(&bl->v[i]);
    free(bl->v);
    memset(bl, 0, sizeof *bl);
}

static void blob_decode(blob *bl, const uint8_t *p, size_t len)
{
    memset(bl, 0, sizeof *bl);
    if (len < 2) return;
    size_t n = (size_t)p[0] << 8 | p[1], off = 2;
    bl->v = kith_xcalloc(n ? n : 1, sizeof *bl->v);
    bl->cap = n ? n : 1;
    for (size_t i = 0; i < n && len - off >= 8; i++) {
        uint32_t slot = kith_get_be32(p + off), l = kith_get_be32(p + off + 4);
        off += 8;
        if (len - off < l) break;
        blob_ent *en = &bl->v[bl->n++];
        en->slot = slot;
        en->raw = p + off;
        en->rawlen = l;
        off += l;
    }
}

static void blob_encode(const blob *bl, kith_buf *out)
{
    size_t n = 0;
    for (size_t i = 0; i < bl->n; i++)
        n += !bl->v[i].decoded || bl->v[i].st.n > 0;
    uint8_t h[2] = {(uint8_t)(n >> 8), (uint8_t)n};
    kith_buf_append(out, h, 2);
    kith_buf st = {0};
    for (size_t i = 0; i < bl->n; i++) {
        const blob_ent *en = &bl->v[i];
        if (en->decoded && en->st.n == 0) continue; /* empty: nothing to keep */
        st.len = 0;
        if (en->decoded) agg_encode(&en->st, &st);
        uint8_t e[8];
        kith_put_be32(e, en->slot);
        kith_put_be32(e + 4, (uint32_t)(en->decoded ? st.len : en->rawlen));
        kith_buf_append(out, e, 8);
        if (en->decoded) kith_buf_append(out, st.data, st.len);
        else kith_buf_append(out, en->raw, en->rawlen);
    }
    kith_buf_free(&st);
}

static agg_state *blob_find(blob *bl, uint32_t slot)
{
    for (size_t i = 0; i < bl->n; i++) {
        blob_ent *en = &bl->v[i];
        if (en->slot != slot) continue;
        if (!en->decoded) {
            if (agg_decode(&en->st, en->raw, en->rawlen, NULL) != 0)
                agg_init(&en->st, (agg_window){AGG_HOURS, 0}); /* unreadable: starts empty */
            en->decoded = true;
        }
        return &en->st;
    }
    return NULL;
}

static unsigned keep_of(int fn)
{
    switch (fn) {
    case CA_SUM:
    case CA_AVG: return AGG_KEEP_SUM;
    case CA_MIN: return AGG_KEEP_MIN;
    case CA_MAX: return AGG_KEEP_MAX;
    case CA_MOST_RECENT: return AGG_KEEP_LAST;
    default: return 0;
    }
}

/* The entry of slot, created empty with window w (and re-created if its window changed). The
 * pointer is valid until the next blob_get (which may move the entries). */
static agg_state *blob_get(blob *bl, uint32_t slot, agg_window w, unsigned keep)
{
    agg_state *st = blob_find(bl, slot);
    if (st && (st->w.unit != w.unit || st->w.count != w.count)) {
        agg_free(st);
        agg_init(st, w);
    }
    if (!st) {
        if (bl->n == bl->cap) {
            bl->cap = bl->cap ? bl->cap * 2 : 4;
            bl->v = kith_xrealloc(bl->v, bl->cap * sizeof *bl->v);
        }
        blob_ent *en = &bl->v[bl->n++];
        memset(en, 0, sizeof *en);
        en->slot = slot;
        en->decoded = true;
        agg_init(&en->st, w);
        st = &en->st;
    }
    st->keep = keep;
    return st;
}

static int blob_load(kith_engine *e, store_batch *b, uint32_t sb, uint64_t cluster, blob *bl,
                     kith_buf *raw)
{
    store_key k;
    state_key(&k, sb, cluster);
    int rc = b ? store_batch_get(e->store, b, STORE_CF_CA, k.b, k.n, raw)
               : store_get(e->store, STORE_CF_CA, k.b, k.n, raw);
    if (rc == 0) blob_decode(bl, (const uint8_t *)raw->data, raw->len);
    else memset(bl, 0, sizeof *bl);
    return rc == KITH_ENOTFOUND ? 0 : rc;
}

/* Writes bl unless it encodes to old; true when it changed. */
static bool blob_store(kith_engine *e, store_batch *b, uint32_t sb, uint64_t cluster, const blob *bl,
                       const kith_buf *old)
{
    kith_buf v = {0};
    blob_encode(bl, &v);
    bool empty = v.len == 2;
    bool same = old->len == v.len && (v.len == 0 || memcmp(old->data, v.data, v.len) == 0);
    if (old->len == 0 && empty) same = true;
    if (!same) {
        store_key k;
        state_key(&k, sb, cluster);
        if (empty) store_batch_delete(b, STORE_CF_CA, k.b, k.n);
        else store_batch_put(b, STORE_CF_CA, k.b, k.n, v.data, v.len);
    }
    kith_buf_free(&v);
    return !same;
}

/* --- values --- */

static json_t *path_get(json_t *root, const char *path)
{
    char seg[256];
    const char *p = path;
    json_t *v = root;
    while (v && *p) {
        const char *dot = strchr(p, '.');
        size_t l = dot ? (size_t)(dot - p) : strlen(p);
        if (l >= sizeof seg) return NULL;
        memcpy(seg, p, l);
        seg[l] = 0;
        v = json_object_get(v, seg);
        p = dot ? dot + 1 : p + l;
    }
    return v;
}

static bool primitive(const json_t *v)
{
    return json_is_string(v) || json_is_number(v) || json_is_boolean(v);
}

/* Feeds one event (ts, parsed ev inside the one-element array arr) to the definitions; returns
 * whether a state changed. */
static bool feed(ca_svc *s, const ca_def *const *defs, blob *bl, size_t n, json_t *arr, int64_t ts,
                 int64_t now)
{
    json_t *ev = json_array_get(arr, 0);
    bool changed = false;
    int8_t match[CA_MAX_PER_SANDBOX];
    for (size_t i = 0; i < n; i++) {
        const ca_def *d = defs[i];
        if (d->filter) {
            /* The same filter text as an earlier attribute: its answer. */
            match[i] = -1;
            for (size_t j = 0; j < i && match[i] < 0; j++)
                if (defs[j]->filter && defs[j]->filter_hash == d->filter_hash) match[i] = match[j];
            if (match[i] < 0) {
                pql_input in = {.events = arr, .now_ms = now};
                pql_result r;
                match[i] = pql_eval(s->ev, d->filter, &in, &r) == 0 && r.match;
            }
            if (!match[i]) continue;
        } else {
            match[i] = 1;
        }
        bool has_num = false;
        double num = 0;
        char *last = NULL;
        json_t *v = d->fn == CA_COUNT ? NULL : path_get(ev, d->field);
        switch (d->fn) {
        case CA_COUNT: break;
        case CA_MOST_RECENT: {
            bool ok = primitive(v);
            if (json_is_array(v)) {
                ok = true;
                size_t j;
                json_t *x;
                json_array_foreach(v, j, x) if (!primitive(x)) ok = false;
            }
            if (!ok) continue;
            last = kith_json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
            break;
        }
        default:
            if (json_is_number(v)) {
                has_num = true;
                num = json_number_value(v);
            } else if (d->vt == CA_VT_TIME && json_is_string(v)) {
                int64_t ms;
                if (kith_time_parse(json_string_value(v), &ms) == 0 ||
                    kith_date_parse(json_string_value(v), &ms) == 0) {
                    has_num = true;
                    num = (double)ms;
                }
            }
            if (!has_num) continue;
        }
        agg_state *st = blob_get(bl, d->slot, d->w, keep_of(d->fn));
        if (agg_add(st, ts, has_num, num, last, last ? strlen(last) : 0, now)) changed = true;
        free(last);
        s->events_matched++;
    }
    return changed;
}

static json_t *value_json(const ca_def *d, const agg_result *r)
{
    switch (d->fn) {
    case CA_COUNT: return json_integer((json_int_t)r->count);
    case CA_SUM: return d->vt == CA_VT_INT ? json_integer((json_int_t)llround(r->sum)) : json_real(r->sum);
    case CA_MIN:
    case CA_MAX: {
        if (!r->nnum) return NULL;
        double v = d->fn == CA_MIN ? r->min : r->max;
        if (d->vt == CA_VT_TIME) {
            char ts[40];
            return json_string(kith_time_format((int64_t)v, ts, sizeof ts));
        }
        return d->vt == CA_VT_INT ? json_integer((json_int_t)llround(v)) : json_real(v);
    }
    case CA_AVG: return r->nnum ? json_real(r->sum / (double)r->nnum) : NULL;
    default: {
        if (!r->last) return NULL;
        json_t *v = json_loadb(r->last, r->last_len, JSON_DECODE_ANY, NULL);
        if (!v) return NULL;
        char ts[40];
        return json_pack("{s:o, s:s}", "value", v, "timestamp", kith_time_format(r->last_ts, ts, sizeof ts));
    }
    }
}

json_t *ca_values(kith_engine *e, store_batch *b, uint32_t sb, uint64_t cluster, int64_t now,
                  int64_t *next_change)
{
    ca_svc *s = ca_of(e);
    if (next_change) *next_change = INT64_MAX;
    if (!s) return NULL;
    pthread_rwlock_rdlock(&s->lock);
    const ca_def *defs[CA_MAX_PER_SANDBOX];
    size_t n = published_of(s, sb, defs, CA_MAX_PER_SANDBOX);
    json_t *out = NULL;
    if (n) {
        blob bl;
        kith_buf raw = {0};
        blob_load(e, b, sb, cluster, &bl, &raw);
        out = json_object();
        for (size_t i = 0; i < n; i++) {
            agg_state *st = blob_find(&bl, defs[i]->slot);
            agg_state empty;
            agg_init(&empty, defs[i]->w);
            if (!st || st->w.unit != defs[i]->w.unit || st->w.count != defs[i]->w.count) st = &empty;
            agg_result r;
            agg_read(st, now, &r);
            json_t *v = value_json(defs[i], &r);
            if (v) json_object_set_new(out, defs[i]->name, v);
            if (next_change && r.next_change < *next_change) *next_change = r.next_change;
        }
        blob_free(&bl);
        kith_buf_free(&raw);
    }
    pthread_rwlock_unlock(&s->lock);
    return out;
}

int64_t ca_attach(kith_engine *e, store_batch *b, uint32_t sb, uint64_t cluster, int64_t now,
                  json_t *profile)
{
    int64_t next = INT64_MAX;
    json_t *v = ca_values(e, b, sb, cluster, now, &next);
    if (v && json_is_object(profile)) json_object_set_new(profile, "_computed", v);
    else json_decref(v);
    return next;
}

void ca_schema_augment(kith_engine *e, uint32_t sb, json_t *schema)
{
    ca_svc *s = ca_of(e);
    json_t *props = json_object_get(schema, "properties");
    if (!s || !json_is_object(props)) return;
    json_t *cp = json_object();
    pthread_rwlock_rdlock(&s->lock);
    for (size_t i = 0; i < s->n; i++) {
        const ca_def *d = s->v[i];
        if (d->sb == sb && d->published) json_object_set_new(cp, d->name, return_schema(d));
    }
    pthread_rwlock_unlock(&s->lock);
    json_object_set_new(props, "_computed", json_pack("{s:s, s:o}", "type", "object", "properties", cp));
}

/* --- streaming --- */

static void recalc_add(ca_svc *s, uint32_t sb, uint64_t cluster)
{
    if (s->nrc && s->rc[s->nrc - 1].sb == sb && s->rc[s->nrc - 1].cluster == cluster) return;
    if (s->nrc == s->caprc) {
        s->caprc = s->caprc ? s->caprc * 2 : 64;
        s->rc = kith_xrealloc(s->rc, s->caprc * sizeof *s->rc);
    }
    s->rc[s->nrc++] = (struct ca_recalc){sb, cluster};
}

static bool sandbox_has_any(ca_svc *s, uint32_t sb)
{
    for (size_t i = 0; i < s->n; i++)
        if (s->v[i]->sb == sb) return true;
    return false;
}

/* CPU time of the calling thread (the writer's cost, whatever else the machine runs). */
static uint64_t cpu_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

void ca_note_event(kith_engine *e, store_batch *b, uint32_t sb, uint64_t cluster, uint64_t identity,
                   const char *dataset, int64_t ts, const char *event_id, const char *json, size_t len)
{
    ca_svc *s = ca_of(e);
    if (!s) return;
    const ca_def *defs[CA_MAX_PER_SANDBOX];
    size_t n = published_of(s, sb, defs, CA_MAX_PER_SANDBOX);
    if (!n) return;
    uint64_t t0 = cpu_ns();
    /* Kept until surely written (the ingest layer's buffer of recent events, kith/recent.h), so
     * that a recomputation this soon still sees it; parsed once for every reader. */
    json_t *ev = recent_tree(recent_keep(e, sb, identity, dataset, ts, event_id, json, len));
    if (!ev) return;
    json_t *arr = json_array();
    json_array_append(arr, ev);
    blob bl;
    kith_buf raw = {0};
    if (blob_load(e, b, sb, cluster, &bl, &raw) == 0) {
        if (feed(s, defs, &bl, n, arr, ts, kith_now_ms()) &&
            blob_store(e, b, sb, cluster, &bl, &raw))
            segsvc_touch(e, sb, cluster, SEGSVC_TOUCH_PROFILE);
    }
    blob_free(&bl);
    kith_buf_free(&raw);
    json_decref(arr);
    s->events_noted++;
    s->note_ns += cpu_ns() - t0;
}

static int feed_stored(ca_svc *s, store_batch *b, uint32_t sb, uint64_t identity, int64_t since,
                       const ca_def *const *defs, blob *bl, size_t n, int64_t now,
                       uint64_t *events)
{
    kith_engine *e = s->e;
    /* Recent events whose blind appends were not written at the mark (kith/recent.h): the store
     * read below may or may not see them, so they are fed after it unless it did. */
    uint64_t mark = recent_mark(e);
    const recent_event **rv = NULL;
    bool *rseen = NULL;
    size_t nr = 0, capr = 0;
    for (const recent_event *r = recent_first(e, mark, sb, identity); r; r = recent_next(r, mark)) {
        if (r->ts < since) continue;
        if (nr == capr) {
            capr = capr ? capr * 2 : 16;
            rv = kith_xrealloc(rv, capr * sizeof *rv);
        }
        rv[nr++] = r;
    }
    if (nr) rseen = kith_xcalloc(nr, sizeof *rseen);
    store_key k;
    skey_init(&k, sb);
    skey_u64(&k, identity);
    size_t plen = k.n;
    store_iter *it = store_iter_new(e->store, b, STORE_CF_EVENT, k.b, plen);
    skey_u64(&k, (uint64_t)since + TS_BIAS);
    store_iter_seek(it, k.b, k.n);
    for (; store_iter_valid(it); store_iter_next(it)) {
        size_t kl, vl;
        const uint8_t *key = store_iter_key(it, &kl);
        const uint8_t *val = store_iter_value(it, &vl);
        if (kl < plen + 8 || vl < 8 + KITH_ID_LEN) continue;
        int64_t ts = (int64_t)(kith_get_be64(key + plen) - TS_BIAS);
        for (size_t j = 0; j < nr; j++)
            if (!rseen[j] && rv[j]->ts == ts && strlen(rv[j]->event_id) == kl - plen - 8 &&
                memcmp(rv[j]->event_id, key + plen + 8, kl - plen - 8) == 0)
                rseen[j] = true;
        json_t *ev = kjson_parse((const char *)val + 8 + KITH_ID_LEN, vl - 8 - KITH_ID_LEN, 64, NULL, NULL);
        if (!ev) continue;
        json_t *arr = json_array();
        json_array_append_new(arr, ev);
        feed(s, defs, bl, n, arr, ts, now);
        json_decref(arr);
        (*events)++;
    }
    store_iter_free(it);
    for (size_t j = 0; j < nr; j++) {
        json_t *ev = rseen[j] ? NULL : recent_tree(rv[j]);
        if (!ev) continue;
        json_t *arr = json_array();
        json_array_append(arr, ev);
        feed(s, defs, bl, n, arr, rv[j]->ts, now);
        json_decref(arr);
        (*events)++;
    }
    free(rv);
    free(rseen);
    return 0;
}

int ca_recompute(ca_svc *s, store_batch *b, uint32_t sb, uint64_t cluster, const ca_def *const *only,
                 size_t nonly, uint64_t *events_out)
{
    kith_engine *e = s->e;
    const ca_def *defs[CA_MAX_PER_SANDBOX];
    size_t n = only ? (nonly < CA_MAX_PER_SANDBOX ? nonly : CA_MAX_PER_SANDBOX)
                    : published_of(s, sb, defs, CA_MAX_PER_SANDBOX);
    for (size_t i = 0; only && i < n; i++)
        defs[i] = only[i];
    s->recomputes++;
    int64_t now = kith_now_ms();
    blob bl;
    kith_buf raw = {0};
    int rc = blob_load(e, b, sb, cluster, &bl, &raw);
    if (rc) {
        kith_buf_free(&raw);
        return rc;
    }
    cluster_members m = {0};
    rc = identity_members(e, b, sb, cluster, &m);
    if (rc && rc != KITH_ENOTFOUND) {
        blob_free(&bl);
        kith_buf_free(&raw);
        return rc;
    }
    /* Fresh states for the attributes recomputed; entries of unknown slots go on a full pass. */
    if (!only) {
        size_t k = 0;
        for (size_t i = 0; i < bl.n; i++) {
            bool known = false;
            for (size_t j = 0; j < n && !known; j++)
                known = defs[j]->slot == bl.v[i].slot;
            if (known) bl.v[k++] = bl.v[i];
            else ent_clear(&bl.v[i]);
        }
        bl.n = k;
    }
    int64_t since = INT64_MAX;
    for (size_t i = 0; i < n; i++) {
        agg_state *st = blob_get(&bl, defs[i]->slot, defs[i]->w, keep_of(defs[i]->fn));
        agg_free(st);
        agg_init(st, defs[i]->w);
        st->keep = keep_of(defs[i]->fn);
        int64_t ws = agg_window_start(defs[i]->w, now);
        if (ws < since) since = ws;
    }
    uint64_t events = 0;
    for (size_t i = 0; i < m.n && rc == 0; i++)
        rc = feed_stored(s, b, sb, m.v[i].id, since, defs, &bl, n, now, &events);
    if (rc == 0 && blob_store(e, b, sb, cluster, &bl, &raw))
        segsvc_touch(e, sb, cluster, SEGSVC_TOUCH_PROFILE);
    if (events_out) *events_out += events;
    cluster_members_free(&m);
    blob_free(&bl);
    kith_buf_free(&raw);
    return rc == KITH_ENOTFOUND ? 0 : rc;
}

void ca_state_drop_slot(ca_svc *s, store_batch *b, uint32_t sb, uint64_t cluster, uint32_t slot)
{
    blob bl;
    kith_buf raw = {0};
    if (blob_load(s->e, b, sb, cluster, &bl, &raw) == 0) {
        agg_state *st = blob_find(&bl, slot);
        if (st) {
            agg_free(st);
            blob_store(s->e, b, sb, cluster, &bl, &raw);
        }
    }
    blob_free(&bl);
    kith_buf_free(&raw);
}

static int on_cluster_change(void *arg, store_batch *b, const cluster_change *v, size_t n)
{
    kith_engine *e = arg;
    ca_svc *s = ca_of(e);
    if (!s || !s->n) return 0;
    for (size_t i = 0; i < n; i++) {
        if (!sandbox_has_any(s, v[i].sandbox)) continue;
        if (v[i].gone) {
            /* Merged away: the surviving cluster is recomputed from the union of the events. */
            store_key k;
            state_key(&k, v[i].sandbox, v[i].cluster);
            store_batch_delete(b, STORE_CF_CA, k.b, k.n);
        } else {
            recalc_add(s, v[i].sandbox, v[i].cluster);
        }
    }
    return 0;
}

static int recalc_cmp(const void *a, const void *b)
{
    const struct ca_recalc *x = a, *y = b;
    if (x->sb != y->sb) return x->sb < y->sb ? -1 : 1;
    return x->cluster < y->cluster ? -1 : x->cluster > y->cluster;
}

int ca_flush_group(kith_engine *e, store_batch *b)
{
    ca_svc *s = ca_of(e);
    if (!s) return 0;
    if (!s->nrc) return 0;
    qsort(s->rc, s->nrc, sizeof *s->rc, recalc_cmp);
    int rc = 0;
    for (size_t i = 0; i < s->nrc && rc == 0; i++) {
        if (i > 0 && recalc_cmp(&s->rc[i], &s->rc[i - 1]) == 0) continue;
        rc = ca_recompute(s, b, s->rc[i].sb, s->rc[i].cluster, NULL, 0, NULL);
    }
    s->nrc = 0;
    return rc;
}

void ca_profile_deleted(kith_engine *e, store_batch *b, uint32_t sb, uint64_t cluster)
{
    ca_svc *s = ca_of(e);
    (void)b;
    if (!s || !sandbox_has_any(s, sb)) return;
    /* A delete runs exclusive, after every earlier group's blind appends were written: no recent
     * event of the cluster is outside the store, where the delete removes them. */
    recalc_add(s, sb, cluster);
}

void ca_identity_events_deleted(kith_engine *e, store_batch *b, uint32_t sb, uint64_t identity,
                                const char *dataset)
{
    ca_svc *s = ca_of(e);
    (void)dataset; /* exclusive: the recent events are all in the store (see ca_profile_deleted) */
    if (!s || !sandbox_has_any(s, sb)) return;
    /* identity → node (namespace, value) → cluster */
    store_key nk;
    skey_init(&nk, sb);
    skey_u64(&nk, identity);
    kith_buf nv = {0};
    if (identity_graph_get(e, b, STORE_CF_NODE, nk.b, nk.n, &nv) == 0 && nv.len >= 6) {
        const uint8_t *p = (const uint8_t *)nv.data;
        size_t len = (size_t)p[4] << 8 | p[5];
        uint64_t id, cl;
        if (6 + len <= nv.len &&
            identity_get(e, b, sb, kith_get_be32(p), (const char *)p + 6, len, &id, &cl) == 0)
            recalc_add(s, sb, cl);
    }
    kith_buf_free(&nv);
}

/* --- lifecycle --- */

static void load_defs(ca_svc *s)
{
    kith_engine *e = s->e;
    store_iter *it = store_iter_new(e->store, NULL, STORE_CF_META, "", 0);
    store_batch *b = store_batch_new(e->store); /* loading writes nothing it keeps */
    s->loading = true;
    for (; store_iter_valid(it); store_iter_next(it)) {
        size_t kl, vl;
        const uint8_t *k = store_iter_key(it, &kl);
        const uint8_t *v = store_iter_value(it, &vl);
        if (kl != 5 + CA_ID_LEN || k[4] != CA_META_KIND) continue;
        json_t *doc = json_loadb((const char *)v, vl, 0, NULL);
        char id[CA_ID_LEN + 1];
        memcpy(id, k + 5, CA_ID_LEN);
        id[CA_ID_LEN] = 0;
        ca_result res;
        if (doc && ca_put(e, b, kith_get_be32(k), id, doc, true, &res) == 0) {
            json_decref(res.doc);
        } else {
            kith_log(KITH_LOG_WARN, "ca", "computed attribute %s no longer compiles: %s", id,
                     doc ? res.detail : "unreadable");
            json_decref(res.errors);
        }
        json_decref(doc);
    }
    s->loading = false;
    store_batch_free(b);
    store_iter_free(it);
}

int ca_init(kith_engine *e)
{
    ca_svc *s = kith_xcalloc(1, sizeof *s);
    s->e = e;
    pthread_rwlock_init(&s->lock, NULL);
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->cv, NULL);
    s->ev = pql_evaluator_new(NULL);
    e->ca = s;
    load_defs(s);
    engine_on_cluster_change(e, on_cluster_change, e);
    ca_jobs_start(s);
    return 0;
}

void ca_stop(kith_engine *e)
{
    if (e && ca_of(e)) ca_jobs_stop(ca_of(e));
}

void ca_free(kith_engine *e)
{
    ca_svc *s = e ? ca_of(e) : NULL;
    if (!s) return;
    ca_jobs_stop(s);
    ca_jobs_free(s);
    for (size_t i = 0; i < s->n; i++)
        def_free(s->v[i]);
    free(s->v);
    free(s->rc);
    pql_evaluator_free(s->ev);
    pthread_rwlock_destroy(&s->lock);
    pthread_mutex_destroy(&s->mu);
    pthread_cond_destroy(&s->cv);
    free(s);
    e->ca = NULL;
}

void ca_get_stats(kith_engine *e, ca_stats *out)
{
    ca_svc *s = ca_of(e);
    memset(out, 0, sizeof *out);
    if (!s) return;
    out->events_matched = s->events_matched;
    out->recomputes = s->recomputes;
    out->backfill_events = s->backfill_events;
    out->events_noted = s->events_noted;
    out->note_ns = s->note_ns;
}
