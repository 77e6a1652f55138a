/* Schema compilation: definition → expanded JSON → node tree.
 *
 * Expansion walks the definition and merges everything that contributes to a field into one
 * normalised JSON object per field: the class first, then the top-level allOf items in order
 * (built-in field groups, "#/definitions/<name>", inline schemas), then the top-level properties.
 * While it works, each field object carries private annotations: "kith:path" (where in the
 * definition the field was first declared, for errors found later), "kith:from" (the built-in it
 * came from, to name it when a tenant field conflicts with it) and "kith:reqpaths" (where each
 * "required" entry was written). The node tree is then built from the expanded JSON, which is
 * stripped of the annotations and kept as schema_properties().
 *
 * Every bound is checked here, once: nesting depth, $ref chains, total expansion work, pattern
 * complexity. Validation can then trust the tree. */
#include "kith/jalloc.h"
#include "schema_int.h"

#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const schema_limits SCHEMA_LIMITS_DEFAULT = {20, 1024, 20, 64};

#define MAX_COMPILE_ERRORS                                                                         \
    50                  /* error objects appended per compile; later ones are only counted         \
                         */
#define MAX_REF_HOPS 32 /* $ref / allOf indirections without descending into a field */
#define MAX_PATTERN_LEN 1024
#define XDM_LONG_MAX 9007199254740991.0 /* 2^53 - 1: the XDM long range */

/* Shared helpers ------------------------------------------------------------------------------ */

/* Length of s[0..len) cut back so that it does not end inside a UTF-8 sequence. */
static size_t utf8_complete(const char *s, size_t len)
{
    size_t i = len, back = 0;
    while (i > 0 && back < 4 && ((unsigned char)s[i - 1] & 0xC0) == 0x80)
        i--, back++;
    if (i == 0) return len;
    unsigned char lead = (unsigned char)s[i - 1];
    size_t need = lead < 0x80 ? 1 : lead >= 0xF0 ? 4 : lead >= 0xE0 ? 3 : lead >= 0xC0 ? 2 : 1;
    return back + 1 >= need ? len : i - 1;
}

const char *schema_clip(const char *s, char *buf, size_t cap)
{
    size_t len = strlen(s);
    if (len < cap) {
        memcpy(buf, s, len + 1);
        return buf;
    }
    size_t keep = utf8_complete(s, cap - 4);
    memcpy(buf, s, keep);
    memcpy(buf + keep, "...", 4);
    return buf;
}

void schema_error_add(json_t *errors, const char *path, const char *fmt, ...)
{
    if (!errors) return;
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (n >= (int)sizeof msg) msg[utf8_complete(msg, sizeof msg - 1)] = '\0';
    char pbuf[SCHEMA_PATH_MAX];
    size_t plen = strlen(path);
    if (plen >= sizeof pbuf) plen = sizeof pbuf - 1;
    plen = utf8_complete(path, plen);
    memcpy(pbuf, path, plen);
    pbuf[plen] = '\0';
    json_t *e = json_object();
    json_t *jp = json_string(pbuf), *jm = json_string(msg);
    json_object_set_new(e, "path", jp ? jp : json_string(""));
    json_object_set_new(e, "message", jm ? jm : json_string("invalid value"));
    json_array_append_new(errors, e);
}

const char *schema_json_type_name(const json_t *v)
{
    switch (json_typeof(v)) {
    case JSON_OBJECT:
        return "object";
    case JSON_ARRAY:
        return "array";
    case JSON_STRING:
        return "string";
    case JSON_INTEGER:
    case JSON_REAL:
        return "number";
    case JSON_TRUE:
    case JSON_FALSE:
        return "boolean";
    default:
        return "null";
    }
}

size_t schema_path_push(schema_path *p, const char *key)
{
    size_t old = p->len, n = p->len;
    if (n + 1 < SCHEMA_PATH_MAX) p->buf[n++] = '/';
    for (const char *c = key; *c && n + 2 < SCHEMA_PATH_MAX; c++) {
        if (*c == '~' || *c == '/') {
            p->buf[n++] = '~';
            p->buf[n++] = *c == '~' ? '0' : '1';
        } else {
            p->buf[n++] = *c;
        }
    }
    p->buf[n] = '\0';
    p->len = n;
    return old;
}

size_t schema_path_push_index(schema_path *p, size_t i)
{
    char num[24], *d = num + sizeof num;
    *--d = '\0';
    do
        *--d = (char)('0' + i % 10);
    while (i /= 10);
    return schema_path_push(p, d);
}

/* Arena: nodes, property tables and strings of one schema, freed together. */
struct schema_arena_chunk {
    struct schema_arena_chunk *next;
    size_t used, cap;
    max_align_t data[];
};

void *schema_arena_alloc(kith_schema *s, size_t n)
{
    n = (n + sizeof(max_align_t) - 1) / sizeof(max_align_t) * sizeof(max_align_t);
    struct schema_arena_chunk *c = s->arena;
    if (!c || c->cap - c->used < n) {
        size_t cap = n > 16384 ? n : 16384;
        c = kith_xmalloc(sizeof *c + cap);
        c->next = s->arena;
        c->used = 0;
        c->cap = cap;
        s->arena = c;
    }
    void *p = (char *)c->data + c->used;
    c->used += n;
    memset(p, 0, n);
    return p;
}

char *schema_arena_strdup(kith_schema *s, const char *str)
{
    size_t n = strlen(str) + 1;
    char *p = schema_arena_alloc(s, n);
    memcpy(p, str, n);
    return p;
}

/* Patterns ------------------------------------------------------------------------------------ */

/* Rewrites the ECMA-isms \d and \D that XDM patterns use into POSIX classes, and rejects what would
 * make no sense for the engine (regex.c): back-references and counts above 1000. Returns a
 * malloc'd pattern, or NULL with why. */
static char *pattern_translate(const char *src, const char **why)
{
    size_t len = strlen(src);
    if (len > MAX_PATTERN_LEN) {
        *why = "pattern is longer than 1024 bytes";
        return NULL;
    }
    kith_buf b = {0};
    bool in_bracket = false;
    for (size_t i = 0; i < len; i++) {
        char c = src[i];
        if (c == '\\' && i + 1 < len) {
            char e = src[++i];
            if (e == 'd' || e == 'D') {
                if (in_bracket)
                    kith_buf_puts(&b, "0-9"); /* [\D] is rare; treat it as [\d] plus the rest */
                else
                    kith_buf_puts(&b, e == 'd' ? "[0-9]" : "[^0-9]");
                continue;
            }
            if (!in_bracket && e >= '1' && e <= '9') {
                *why = "back-references (\\1...\\9) are not supported";
                kith_buf_free(&b);
                return NULL;
            }
            kith_buf_append(&b, src + i - 1, 2);
            continue;
        }
        if (in_bracket) {
            if (c == ']') in_bracket = false;
        } else if (c == '[') {
            in_bracket = true;
            kith_buf_append(&b, &c, 1);
            /* A ']' right after '[' or '[^' is a literal member. */
            if (i + 1 < len && src[i + 1] == '^') kith_buf_append(&b, &src[++i], 1);
            if (i + 1 < len && src[i + 1] == ']') kith_buf_append(&b, &src[++i], 1);
            continue;
        } else if (c == '{') {
            double hi = 0, cur = 0;
            for (size_t j = i + 1; j < len && src[j] != '}'; j++) {
                if (src[j] >= '0' && src[j] <= '9')
                    cur = cur * 10 + (src[j] - '0');
                else
                    cur = 0;
                if (cur > hi) hi = cur;
            }
            if (hi > 1000) {
                *why = "counted repetitions are limited to {1000}";
                kith_buf_free(&b);
                return NULL;
            }
        }
        kith_buf_append(&b, &c, 1);
    }
    kith_buf_append(&b, "", 1);
    return b.data;
}

/* Checks src, and compiles it into s's arena into *out unless s is NULL. Returns 0, or
 * KITH_EINVAL with a reason in *why. */
static int pattern_compile(kith_schema *s, const char *src, const char **why,
                           const schema_regex **out)
{
    char *pat = pattern_translate(src, why);
    int rc = pat ? schema_regex_check(pat, why) : KITH_EINVAL;
    if (rc == 0 && s) *out = schema_regex_compile(s, pat);
    free(pat);
    return rc;
}

/* Expansion ----------------------------------------------------------------------------------- */

typedef struct expand_ctx {
    const json_t *def; /* the whole definition, for "#/definitions/<name>"; NULL for built-ins */
    json_t *errors;
    int nerrors;
    long budget; /* expand_into calls left */
    schema_class cls;
    int max_depth;
    json_t *patterns;           /* pattern → "" (compiles) or why not: each is compiled once */
    const char *builtin;        /* the outermost built-in being expanded, or NULL */
    char site[SCHEMA_PATH_MAX]; /* where the definition referenced it */
} expand_ctx;

#define PATH_KEY "kith:path"
#define FROM_KEY "kith:from"
#define REQPATHS_KEY "kith:reqpaths"

/* Reports an error at p, or at the $ref that brought in the built-in being expanded. */
__attribute__((format(printf, 3, 4))) static void cerr(expand_ctx *c, const char *path,
                                                       const char *fmt, ...)
{
    if (++c->nerrors > MAX_COMPILE_ERRORS) return;
    char msg[480];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (c->builtin)
        schema_error_add(c->errors, c->site, "in %s: %s", c->builtin, msg);
    else
        schema_error_add(c->errors, path, "%s", msg);
}

static json_t *new_field(expand_ctx *c, const schema_path *p)
{
    json_t *n = json_object();
    json_object_set_new(n, PATH_KEY, json_string(c->builtin ? c->site : p->buf));
    if (c->builtin) json_object_set_new(n, FROM_KEY, json_string(c->builtin));
    return n;
}

/* Equality that treats 1 and 1.0 as the same number. */
static bool values_equal(const json_t *a, const json_t *b)
{
    if (json_is_number(a) && json_is_number(b)) return json_number_value(a) == json_number_value(b);
    return json_equal((json_t *)a, (json_t *)b);
}

/* Sets dst[key] = value (takes value), or reports a conflict when dst already has another value. */
static void merge_keyword(expand_ctx *c, json_t *dst, const char *key, json_t *value,
                          const schema_path *p)
{
    json_t *old = json_object_get(dst, key);
    if (!old) {
        json_object_set_new(dst, key, value);
        return;
    }
    if (!values_equal(old, value)) {
        char *mine = kith_json_dumps(value, JSON_COMPACT | JSON_ENCODE_ANY);
        char *theirs = kith_json_dumps(old, JSON_COMPACT | JSON_ENCODE_ANY);
        char b1[120], b2[120];
        const char *from = json_string_value(json_object_get(dst, FROM_KEY));
        if (from && (!c->builtin || strcmp(from, c->builtin) != 0))
            cerr(c, p->buf,
                 "%s %s conflicts with %s in %s; a schema cannot change a field of a built-in "
                 "field group",
                 key, schema_clip(mine ? mine : "?", b1, sizeof b1),
                 schema_clip(theirs ? theirs : "?", b2, sizeof b2), from);
        else
            cerr(c, p->buf, "%s %s conflicts with %s given earlier for this field", key,
                 schema_clip(mine ? mine : "?", b1, sizeof b1),
                 schema_clip(theirs ? theirs : "?", b2, sizeof b2));
        free(mine);
        free(theirs);
    }
    json_decref(value);
}

static const char *const TYPES[] = {"string", "integer", "number", "boolean", "object", "array"};

static bool known_type(const char *t)
{
    for (size_t i = 0; i < sizeof TYPES / sizeof TYPES[0]; i++)
        if (strcmp(t, TYPES[i]) == 0) return true;
    return false;
}

/* meta:xdmType → the JSON type it implies, the format it implies, and whether it says more than
 * the type alone (then it is kept in the expanded output). */
static const struct xdm_type {
    const char *name, *type, *format;
    bool keep;
} XDM_TYPES[] = {
    {"map", "object", NULL, true},     {"long", "integer", NULL, true},
    {"int", "integer", NULL, true},    {"short", "integer", NULL, true},
    {"byte", "integer", NULL, true},   {"double", "number", NULL, true},
    {"date", "string", "date", false}, {"date-time", "string", "date-time", false},
    {"string", "string", NULL, false}, {"integer", "integer", NULL, false},
    {"number", "number", NULL, false}, {"boolean", "boolean", NULL, false},
    {"object", "object", NULL, false}, {"array", "array", NULL, false},
};

static const struct xdm_type *xdm_type_find(const char *name)
{
    for (size_t i = 0; i < sizeof XDM_TYPES / sizeof XDM_TYPES[0]; i++)
        if (strcmp(name, XDM_TYPES[i].name) == 0) return &XDM_TYPES[i];
    return NULL;
}

static bool is_count(const json_t *v)
{
    return json_is_integer(v) && json_integer_value(v) >= 0 &&
           json_integer_value(v) <= (json_int_t)UINT32_MAX - 1;
}

static void expand_into(expand_ctx *c, json_t *dst, const json_t *src, schema_path *p, int depth,
                        int hops, bool at_root);

static void expand_builtin(expand_ctx *c, json_t *dst, const schema_builtin *b, schema_path *p,
                           int depth, int hops, bool at_root)
{
    bool outer = !c->builtin;
    if (outer) {
        c->builtin = b->id;
        memcpy(c->site, p->buf, p->len + 1);
    }
    schema_path bp = {0};
    expand_into(c, dst, b->def, &bp, depth, hops + 1, at_root);
    if (outer) c->builtin = NULL;
}

static void expand_ref(expand_ctx *c, json_t *dst, const json_t *ref, schema_path *p, int depth,
                       int hops, bool at_root)
{
    char b1[200];
    if (!json_is_string(ref)) {
        cerr(c, p->buf, "$ref must be a string");
        return;
    }
    const char *r = json_string_value(ref);
    if (hops >= MAX_REF_HOPS) {
        cerr(c, p->buf, "$ref chain deeper than %d (a definition that refers to itself?)",
             MAX_REF_HOPS);
        return;
    }
    static const char local[] = "#/definitions/";
    if (strncmp(r, local, sizeof local - 1) == 0) {
        /* One segment: unescape ~1 and ~0. */
        const char *raw = r + sizeof local - 1;
        char name[256];
        size_t n = 0;
        bool ok = !c->builtin && *raw && strlen(raw) < sizeof name;
        for (const char *q = raw; ok && *q; q++) {
            if (*q == '/') ok = false;
            if (*q == '~') {
                ok = q[1] == '0' || q[1] == '1';
                if (ok) name[n++] = *++q == '0' ? '~' : '/';
            } else {
                name[n++] = *q;
            }
        }
        name[ok ? n : 0] = '\0';
        const json_t *target =
            ok ? json_object_get(json_object_get(c->def, "definitions"), name) : NULL;
        if (!target) {
            cerr(c, p->buf, "unknown $ref \"%s\": \"definitions\" has no such entry",
                 schema_clip(r, b1, sizeof b1));
            return;
        }
        schema_path tp = {0};
        schema_path_push(&tp, "definitions");
        schema_path_push(&tp, name);
        expand_into(c, dst, target, &tp, depth, hops + 1, at_root);
        return;
    }
    const schema_builtin *b = schema_builtin_find(r);
    if (!b) {
        cerr(c, p->buf,
             "unknown $ref \"%s\" (expected a built-in class, field group or data type, or "
             "\"#/definitions/<name>\")",
             schema_clip(r, b1, sizeof b1));
        return;
    }
    switch (b->kind) {
    case BUILTIN_CLASS:
        if (!at_root)
            cerr(c, p->buf, "class %s can only be referenced from the top-level allOf", r);
        else if (b->classes != 1u << c->cls)
            cerr(c, p->buf, "class %s does not match the schema's class %s", r,
                 c->cls == SCHEMA_CLASS_PROFILE ? SCHEMA_CLASS_PROFILE_ID : SCHEMA_CLASS_EVENT_ID);
        /* The schema's own class was merged first. */
        break;
    case BUILTIN_FIELD_GROUP:
        if (!at_root)
            cerr(c, p->buf,
                 "field group %s can only be used in the schema's top-level allOf; use a data "
                 "type or #/definitions/<name> for a field",
                 r);
        else if (!(b->classes & (1u << c->cls)))
            cerr(c, p->buf, "field group %s does not extend the %s class", r,
                 c->cls == SCHEMA_CLASS_PROFILE ? "XDM Individual Profile" : "XDM ExperienceEvent");
        else
            expand_builtin(c, dst, b, p, depth, hops, at_root);
        break;
    case BUILTIN_DATA_TYPE:
        if (at_root)
            cerr(c, p->buf,
                 "data type %s describes a field, not a whole schema; reference it from a "
                 "property",
                 r);
        else
            expand_builtin(c, dst, b, p, depth, hops, at_root);
        break;
    }
}

static void expand_type(expand_ctx *c, json_t *dst, const json_t *src, schema_path *p)
{
    const json_t *tk = json_object_get(src, "type"), *xk = json_object_get(src, "meta:xdmType");
    const char *type = NULL;
    size_t old;
    char b1[120];
    if (tk) {
        old = schema_path_push(p, "type");
        if (!json_is_string(tk) || !known_type(json_string_value(tk))) {
            char *t = kith_json_dumps(tk, JSON_COMPACT | JSON_ENCODE_ANY);
            cerr(c, p->buf,
                 "unknown type %s (expected string, integer, number, boolean, object or array)",
                 schema_clip(t ? t : "?", b1, sizeof b1));
            free(t);
        } else {
            type = json_string_value(tk);
        }
        schema_path_pop(p, old);
    }
    if (xk) {
        old = schema_path_push(p, "meta:xdmType");
        const struct xdm_type *x = json_is_string(xk) ? xdm_type_find(json_string_value(xk)) : NULL;
        if (!x) {
            char *t = kith_json_dumps(xk, JSON_COMPACT | JSON_ENCODE_ANY);
            cerr(c, p->buf,
                 "unknown meta:xdmType %s (expected map, long, int, short, byte, double, date or "
                 "date-time)",
                 schema_clip(t ? t : "?", b1, sizeof b1));
            free(t);
        } else if (type && strcmp(type, x->type) != 0) {
            cerr(c, p->buf, "meta:xdmType \"%s\" needs type \"%s\", not \"%s\"", x->name, x->type,
                 type);
        } else {
            if (!tk) merge_keyword(c, dst, "type", json_string(x->type), p);
            if (x->keep) merge_keyword(c, dst, "meta:xdmType", json_string(x->name), p);
            if (x->format) merge_keyword(c, dst, "format", json_string(x->format), p);
        }
        schema_path_pop(p, old);
    }
    if (type) {
        old = schema_path_push(p, "type");
        merge_keyword(c, dst, "type", json_string(type), p);
        schema_path_pop(p, old);
    }
}

/* minimum, maximum, exclusiveMinimum, exclusiveMaximum; the draft-04 boolean form of the
 * exclusive keywords is rewritten into the numeric one. */
static void expand_bounds(expand_ctx *c, json_t *dst, const json_t *src, schema_path *p)
{
    static const char *const names[2][2] = {{"minimum", "exclusiveMinimum"},
                                            {"maximum", "exclusiveMaximum"}};
    for (int i = 0; i < 2; i++) {
        const json_t *plain = json_object_get(src, names[i][0]);
        const json_t *excl = json_object_get(src, names[i][1]);
        bool plain_is_excl = false;
        size_t old;
        if (excl) {
            old = schema_path_push(p, names[i][1]);
            if (json_is_number(excl)) {
                merge_keyword(c, dst, names[i][1], json_deep_copy(excl), p);
            } else if (json_is_true(excl)) {
                if (json_is_number(plain))
                    plain_is_excl = true;
                else
                    cerr(c, p->buf, "%s: true needs a numeric %s", names[i][1], names[i][0]);
            } else if (!json_is_false(excl)) {
                cerr(c, p->buf, "must be a number");
            }
            schema_path_pop(p, old);
        }
        if (plain) {
            old = schema_path_push(p, names[i][0]);
            if (!json_is_number(plain))
                cerr(c, p->buf, "must be a number");
            else
                merge_keyword(c, dst, names[i][plain_is_excl], json_deep_copy(plain), p);
            schema_path_pop(p, old);
        }
    }
}

/* "" when src compiles, else why not; remembered in c->patterns (valid until the compile ends). */
static const char *pattern_check(expand_ctx *c, const char *src)
{
    if (!c->patterns) c->patterns = json_object();
    const json_t *known = json_object_get(c->patterns, src);
    if (!known) {
        const char *why = "";
        if (pattern_compile(NULL, src, &why, NULL) == 0) why = "";
        json_object_set_new(c->patterns, src, json_string(why));
        known = json_object_get(c->patterns, src);
    }
    return json_string_value(known);
}

/* The compiled form of a pattern that pattern_check accepted, shared by every field using it. */
static const schema_regex *pattern_get(kith_schema *s, const char *src)
{
    for (size_t i = 0; i < s->npatterns; i++)
        if (strcmp(s->pattern_srcs[i], src) == 0) return s->patterns[i];
    const char *why;
    const schema_regex *re = NULL;
    if (pattern_compile(s, src, &why, &re) || !re) return NULL;
    size_t n = s->npatterns + 1;
    s->patterns = kith_xrealloc(s->patterns, n * sizeof *s->patterns);
    s->pattern_srcs = kith_xrealloc(s->pattern_srcs, n * sizeof *s->pattern_srcs);
    s->pattern_srcs[s->npatterns] = schema_arena_strdup(s, src);
    s->patterns[s->npatterns++] = re;
    return re;
}

static void expand_keywords(expand_ctx *c, json_t *dst, const json_t *src, schema_path *p)
{
    static const char *const counts[] = {"minLength", "maxLength", "minItems", "maxItems"};
    const json_t *v;
    size_t old;
    for (size_t i = 0; i < 4; i++) {
        if (!(v = json_object_get(src, counts[i]))) continue;
        old = schema_path_push(p, counts[i]);
        if (is_count(v))
            merge_keyword(c, dst, counts[i], json_deep_copy(v), p);
        else
            cerr(c, p->buf, "must be a non-negative integer");
        schema_path_pop(p, old);
    }
    if ((v = json_object_get(src, "format"))) {
        old = schema_path_push(p, "format");
        if (json_is_string(v))
            merge_keyword(c, dst, "format", json_deep_copy(v), p);
        else
            cerr(c, p->buf, "must be a string such as \"date-time\"");
        schema_path_pop(p, old);
    }
    if ((v = json_object_get(src, "enum"))) {
        old = schema_path_push(p, "enum");
        if (json_is_array(v) && json_array_size(v) > 0)
            merge_keyword(c, dst, "enum", json_deep_copy(v), p);
        else
            cerr(c, p->buf, "must be a non-empty array of allowed values");
        schema_path_pop(p, old);
    }
    if ((v = json_object_get(src, "pattern"))) {
        old = schema_path_push(p, "pattern");
        const char *why = NULL;
        if (!json_is_string(v)) {
            cerr(c, p->buf, "must be a string (a POSIX extended regular expression)");
        } else if ((why = pattern_check(c, json_string_value(v)))[0]) {
            cerr(c, p->buf, "pattern does not compile: %s", why);
        } else {
            merge_keyword(c, dst, "pattern", json_deep_copy(v), p);
        }
        schema_path_pop(p, old);
    }
    if ((v = json_object_get(src, "meta:labels"))) {
        old = schema_path_push(p, "meta:labels");
        json_t *labels = json_object_get(dst, "meta:labels");
        if (!json_is_array(v)) {
            cerr(c, p->buf, "must be an array of label strings such as \"C2\"");
        } else {
            if (!labels) json_object_set_new(dst, "meta:labels", labels = json_array());
            size_t i;
            const json_t *l;
            json_array_foreach(v, i, l)
            {
                bool seen = false;
                size_t j;
                const json_t *m;
                if (!json_is_string(l)) {
                    cerr(c, p->buf, "must be an array of label strings such as \"C2\"");
                    break;
                }
                json_array_foreach(labels, j, m) seen = seen || json_equal(m, (json_t *)l);
                if (!seen) json_array_append_new(labels, json_deep_copy(l));
            }
        }
        schema_path_pop(p, old);
    }
    static const char *const texts[] = {"title", "description"};
    for (size_t i = 0; i < 2; i++)
        if (json_is_string(v = json_object_get(src, texts[i])) && !json_object_get(dst, texts[i]))
            json_object_set_new(dst, texts[i], json_deep_copy(v));
}

static void expand_required(expand_ctx *c, json_t *dst, const json_t *req, schema_path *p)
{
    size_t old = schema_path_push(p, "required");
    if (!json_is_array(req)) {
        cerr(c, p->buf, "must be an array of field names");
        schema_path_pop(p, old);
        return;
    }
    json_t *names = json_object_get(dst, "required"), *paths = json_object_get(dst, REQPATHS_KEY);
    if (!names) {
        json_object_set_new(dst, "required", names = json_array());
        json_object_set_new(dst, REQPATHS_KEY, paths = json_array());
    }
    size_t i;
    const json_t *name;
    json_array_foreach(req, i, name)
    {
        size_t o2 = schema_path_push_index(p, i);
        if (!json_is_string(name)) {
            cerr(c, p->buf, "must be a field name (a string)");
        } else {
            bool seen = false;
            size_t j;
            const json_t *m;
            json_array_foreach(names, j, m) seen = seen || json_equal(m, (json_t *)name);
            if (!seen) {
                json_array_append_new(names, json_deep_copy(name));
                json_array_append_new(paths, json_string(c->builtin ? c->site : p->buf));
            }
        }
        schema_path_pop(p, o2);
    }
    schema_path_pop(p, old);
}

/* Expands a sub-schema (properties/x, additionalProperties, items) into the field object dst[key]
 * (or dst[key][name] for properties), creating it on first sight. */
static void expand_child(expand_ctx *c, json_t *parent, const char *name, const json_t *src,
                         schema_path *p, int depth)
{
    if (depth > c->max_depth) {
        cerr(c, p->buf, "definition nested deeper than %d levels", c->max_depth);
        return;
    }
    json_t *child = json_object_get(parent, name);
    if (child && !json_is_object(child)) {
        cerr(c, p->buf, "a schema conflicts with %s given earlier for this field",
             json_is_true(child) ? "true" : "false");
        return;
    }
    if (!child) json_object_set_new(parent, name, child = new_field(c, p));
    expand_into(c, child, src, p, depth, 0, false);
}

/* Merges the schema src (at path p of the definition, or inside c->builtin) into the field object
 * dst. depth counts field nesting (the schema root is 0); hops counts $ref/allOf indirections since
 * the last field. */
static void expand_into(expand_ctx *c, json_t *dst, const json_t *src, schema_path *p, int depth,
                        int hops, bool at_root)
{
    if (--c->budget < 0) {
        if (c->budget == -1)
            cerr(c, p->buf,
                 "schema expands to more than %d definitions (a recursive or repeated $ref?)",
                 SCHEMA_MAX_NODES);
        return;
    }
    if (!json_is_object(src)) {
        cerr(c, p->buf, "expected a schema object, got %s", schema_json_type_name(src));
        return;
    }
    const json_t *v;
    size_t old;
    if ((v = json_object_get(src, "$ref"))) {
        old = schema_path_push(p, "$ref");
        expand_ref(c, dst, v, p, depth, hops, at_root);
        schema_path_pop(p, old);
    }
    if ((v = json_object_get(src, "allOf"))) {
        old = schema_path_push(p, "allOf");
        if (!json_is_array(v)) {
            cerr(c, p->buf, "must be an array of schemas");
        } else if (hops >= MAX_REF_HOPS) {
            cerr(c, p->buf, "allOf nested deeper than %d", MAX_REF_HOPS);
        } else {
            size_t i;
            const json_t *item;
            json_array_foreach(v, i, item)
            {
                size_t o2 = schema_path_push_index(p, i);
                expand_into(c, dst, item, p, depth, hops + 1, at_root);
                schema_path_pop(p, o2);
            }
        }
        schema_path_pop(p, old);
    }
    expand_type(c, dst, src, p);
    expand_bounds(c, dst, src, p);
    expand_keywords(c, dst, src, p);
    if ((v = json_object_get(src, "required"))) expand_required(c, dst, v, p);
    if ((v = json_object_get(src, "properties"))) {
        old = schema_path_push(p, "properties");
        if (!json_is_object(v)) {
            cerr(c, p->buf, "must be an object of field schemas");
        } else {
            json_t *props = json_object_get(dst, "properties");
            if (!props) json_object_set_new(dst, "properties", props = json_object());
            const char *key;
            const json_t *fs;
            json_object_foreach((json_t *)v, key, fs)
            {
                size_t o2 = schema_path_push(p, key);
                expand_child(c, props, key, fs, p, depth + 1);
                schema_path_pop(p, o2);
            }
        }
        schema_path_pop(p, old);
    }
    if ((v = json_object_get(src, "additionalProperties"))) {
        old = schema_path_push(p, "additionalProperties");
        if (json_is_boolean(v)) {
            json_t *prev = json_object_get(dst, "additionalProperties");
            if (json_is_object(prev))
                cerr(c, p->buf, "%s conflicts with a schema given earlier for this field",
                     json_is_true(v) ? "true" : "false");
            else
                merge_keyword(c, dst, "additionalProperties", json_boolean(json_is_true(v)), p);
        } else if (json_is_object(v)) {
            expand_child(c, dst, "additionalProperties", v, p, depth + 1);
        } else {
            cerr(c, p->buf, "must be true, false or a schema");
        }
        schema_path_pop(p, old);
    }
    if ((v = json_object_get(src, "items"))) {
        old = schema_path_push(p, "items");
        if (json_is_object(v))
            expand_child(c, dst, "items", v, p, depth + 1);
        else if (json_is_array(v))
            cerr(c, p->buf, "tuple items (an array of schemas) are not supported; give one schema");
        else
            cerr(c, p->buf, "must be a schema object");
        schema_path_pop(p, old);
    }
}

/* Removes the private annotations from a field object and everything below it. */
static void strip_annotations(json_t *n)
{
    json_object_del(n, PATH_KEY);
    json_object_del(n, FROM_KEY);
    json_object_del(n, REQPATHS_KEY);
    json_t *v;
    const char *key;
    json_object_foreach(json_object_get(n, "properties"), key, v) strip_annotations(v);
    if (json_is_object(v = json_object_get(n, "additionalProperties"))) strip_annotations(v);
    if ((v = json_object_get(n, "items"))) strip_annotations(v);
}

/* Node tree ----------------------------------------------------------------------------------- */

/* An error found while building: reported at the field's declaration (kith:path). */
__attribute__((format(printf, 3, 4))) static void berr(expand_ctx *c, const json_t *n,
                                                       const char *fmt, ...)
{
    if (++c->nerrors > MAX_COMPILE_ERRORS) return;
    char msg[480];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    const char *path = json_string_value(json_object_get(n, PATH_KEY));
    const char *from = json_string_value(json_object_get(n, FROM_KEY));
    if (from)
        schema_error_add(c->errors, path ? path : "", "in %s: %s", from, msg);
    else
        schema_error_add(c->errors, path ? path : "", "%s", msg);
}

static int prop_cmp(const void *a, const void *b)
{
    return strcmp(((const struct schema_prop *)a)->name, ((const struct schema_prop *)b)->name);
}

static void build_bounds(const json_t *n, schema_node *node)
{
    const json_t *v;
    if (json_is_number(v = json_object_get(n, "minimum"))) {
        node->minimum = json_number_value(v);
        node->flags |= NODE_HAS_MIN;
    }
    if (json_is_number(v = json_object_get(n, "exclusiveMinimum"))) {
        double x = json_number_value(v);
        if (!(node->flags & NODE_HAS_MIN) || x >= node->minimum) {
            node->minimum = x;
            node->flags |= NODE_HAS_MIN | NODE_MIN_EXCL;
        }
    }
    if (json_is_number(v = json_object_get(n, "maximum"))) {
        node->maximum = json_number_value(v);
        node->flags |= NODE_HAS_MAX;
    }
    if (json_is_number(v = json_object_get(n, "exclusiveMaximum"))) {
        double x = json_number_value(v);
        if (!(node->flags & NODE_HAS_MAX) || x <= node->maximum) {
            node->maximum = x;
            node->flags |= NODE_HAS_MAX | NODE_MAX_EXCL;
        }
    }
}

static uint32_t count_or(const json_t *n, const char *key, uint32_t dflt)
{
    const json_t *v = json_object_get(n, key);
    return v ? (uint32_t)json_integer_value(v) : dflt;
}

static bool enum_value_fits(const schema_node *node, const json_t *v)
{
    switch (node->type) {
    case NODE_STRING:
        return json_is_string(v);
    case NODE_INTEGER:
        return json_is_integer(v) ||
               (json_is_real(v) && json_real_value(v) == trunc(json_real_value(v)));
    case NODE_NUMBER:
        return json_is_number(v);
    case NODE_BOOLEAN:
        return json_is_boolean(v);
    default:
        return false;
    }
}

static schema_node *build_node(expand_ctx *c, kith_schema *s, json_t *n);

static void build_object(expand_ctx *c, kith_schema *s, json_t *n, schema_node *node,
                         const char *xdm)
{
    json_t *props = json_object_get(n, "properties"),
           *addl = json_object_get(n, "additionalProperties");
    if (xdm && strcmp(xdm, "map") == 0) {
        node->flags |= NODE_IS_MAP;
        if (json_object_size(props))
            berr(c, n,
                 "a map (meta:xdmType \"map\") cannot declare properties; describe its "
                 "values with additionalProperties");
        if (!addl || json_is_true(addl)) node->flags |= NODE_OPEN;
    }
    if (json_is_true(addl)) node->flags |= NODE_OPEN;
    if (json_is_object(addl)) node->additional = build_node(c, s, addl);

    size_t np = json_object_size(props);
    node->props = schema_arena_alloc(s, (np ? np : 1) * sizeof *node->props);
    const char *key;
    json_t *fs;
    json_object_foreach(props, key, fs)
    {
        struct schema_prop *pr = &node->props[node->nprops++];
        pr->name = schema_arena_strdup(s, key);
        pr->len = (uint32_t)strlen(key);
        pr->node = build_node(c, s, fs);
    }
    qsort(node->props, node->nprops, sizeof *node->props, prop_cmp);
    uint32_t size = 4;
    while (size < 2 * node->nprops)
        size *= 2;
    node->mask = size - 1;
    node->slots = schema_arena_alloc(s, size * sizeof *node->slots);
    for (uint32_t k = 0; k < node->nprops; k++) {
        uint32_t h = schema_key_hash(node->props[k].name, node->props[k].len) & node->mask;
        while (node->slots[h])
            h = (h + 1) & node->mask;
        node->slots[h] = k + 1;
    }

    json_t *req = json_object_get(n, "required"), *paths = json_object_get(n, REQPATHS_KEY);
    size_t i;
    json_t *name;
    json_array_foreach(req, i, name)
    {
        struct schema_prop *pr =
            (struct schema_prop *)schema_node_find(node, json_string_value(name));
        if (pr && !pr->required) {
            pr->required = true;
            node->nrequired++;
        } else if (!pr && ++c->nerrors <= MAX_COMPILE_ERRORS) {
            char b1[120];
            const char *path = json_string_value(json_array_get(paths, i));
            schema_error_add(c->errors, path ? path : "",
                             "required names \"%s\", which is not a field here (add it to "
                             "properties or remove it from required)",
                             schema_clip(json_string_value(name), b1, sizeof b1));
        }
    }
}

static schema_node *build_node(expand_ctx *c, kith_schema *s, json_t *n)
{
    schema_node *node = schema_arena_alloc(s, sizeof *node);
    node->max_len = node->max_items = UINT32_MAX;
    const char *type = json_string_value(json_object_get(n, "type"));
    if (!type) {
        if (json_object_get(n, "properties") || json_object_get(n, "additionalProperties"))
            type = "object";
        else if (json_object_get(n, "items"))
            type = "array";
        else {
            berr(c, n, "missing \"type\" (string, integer, number, boolean, object or array)");
            node->type = NODE_OBJECT;
            node->flags = NODE_OPEN;
            return node;
        }
        json_object_set_new(n, "type", json_string(type));
    }
    const char *xdm = json_string_value(json_object_get(n, "meta:xdmType"));
    const json_t *v;
    if (strcmp(type, "string") == 0) {
        static const char *const formats[] = {NULL,    "date", "date-time",
                                              "email", "uri",  "uri-reference"};
        node->type = NODE_STRING;
        const char *f = json_string_value(json_object_get(n, "format"));
        for (int i = 1; f && i < 6; i++)
            if (strcmp(f, formats[i]) == 0) node->format = (uint8_t)i;
        if (json_object_get(n, "minLength") || json_object_get(n, "maxLength")) {
            node->flags |= NODE_HAS_LEN;
            node->min_len = count_or(n, "minLength", 0);
            node->max_len = count_or(n, "maxLength", UINT32_MAX);
            if (node->min_len > node->max_len) berr(c, n, "minLength is greater than maxLength");
        }
        if ((v = json_object_get(n, "pattern")) &&
            (node->pattern = pattern_get(s, json_string_value(v))))
            node->pattern_src = schema_arena_strdup(s, json_string_value(v));
    } else if (strcmp(type, "integer") == 0) {
        static const struct {
            const char *name;
            double lo, hi;
        } ranges[] = {{"long", -XDM_LONG_MAX, XDM_LONG_MAX},
                      {"int", -2147483648.0, 2147483647.0},
                      {"short", -32768, 32767},
                      {"byte", -128, 127}};
        node->type = NODE_INTEGER;
        node->xdm_type = "long";
        node->range_lo = -XDM_LONG_MAX;
        node->range_hi = XDM_LONG_MAX;
        for (int i = 0; xdm && i < 4; i++)
            if (strcmp(xdm, ranges[i].name) == 0) {
                node->xdm_type = ranges[i].name;
                node->range_lo = ranges[i].lo;
                node->range_hi = ranges[i].hi;
            }
        build_bounds(n, node);
    } else if (strcmp(type, "number") == 0) {
        node->type = NODE_NUMBER;
        build_bounds(n, node);
    } else if (strcmp(type, "boolean") == 0) {
        node->type = NODE_BOOLEAN;
    } else if (strcmp(type, "object") == 0) {
        node->type = NODE_OBJECT;
        build_object(c, s, n, node, xdm);
    } else {
        node->type = NODE_ARRAY;
        if (json_is_object(v = json_object_get(n, "items")))
            node->items = build_node(c, s, (json_t *)v);
        node->min_items = count_or(n, "minItems", 0);
        node->max_items = count_or(n, "maxItems", UINT32_MAX);
        if (node->min_items > node->max_items) berr(c, n, "minItems is greater than maxItems");
    }
    if ((node->flags & NODE_HAS_MIN) && (node->flags & NODE_HAS_MAX) &&
        node->minimum > node->maximum)
        berr(c, n, "minimum is greater than maximum");

    if ((v = json_object_get(n, "enum"))) {
        size_t i;
        const json_t *e;
        if (node->type == NODE_OBJECT || node->type == NODE_ARRAY) {
            berr(c, n, "enum is only supported on strings, numbers and booleans");
        } else {
            json_array_foreach(v, i, e)
            {
                if (enum_value_fits(node, e)) continue;
                char *t = kith_json_dumps(e, JSON_COMPACT | JSON_ENCODE_ANY);
                char b1[120];
                berr(c, n, "enum value %s is not of type %s",
                     schema_clip(t ? t : "?", b1, sizeof b1), type);
                free(t);
                break;
            }
            char *t = kith_json_dumps(v, JSON_COMPACT);
            char b1[240];
            node->enum_values = v;
            node->enum_text = schema_arena_strdup(s, schema_clip(t ? t : "[]", b1, sizeof b1));
            free(t);
        }
    }
    return node;
}

/* Entry points -------------------------------------------------------------------------------- */

/* The class named by "meta:class", or by a class $ref in the top-level allOf. */
static const schema_builtin *find_class(expand_ctx *c, const json_t *def, schema_path *site)
{
    const json_t *mc = json_object_get(def, "meta:class");
    char b1[200];
    if (mc) {
        schema_path_push(site, "meta:class");
        const schema_builtin *b =
            json_is_string(mc) ? schema_builtin_find(json_string_value(mc)) : NULL;
        if (!b || b->kind != BUILTIN_CLASS) {
            char *t = kith_json_dumps(mc, JSON_COMPACT | JSON_ENCODE_ANY);
            cerr(c, site->buf, "unknown class %s (expected \"%s\" or \"%s\")",
                 schema_clip(t ? t : "?", b1, sizeof b1), SCHEMA_CLASS_PROFILE_ID,
                 SCHEMA_CLASS_EVENT_ID);
            free(t);
            return NULL;
        }
        return b;
    }
    size_t i;
    const json_t *item;
    json_array_foreach(json_object_get(def, "allOf"), i, item)
    {
        const json_t *ref = json_object_get(item, "$ref");
        const schema_builtin *b =
            json_is_string(ref) ? schema_builtin_find(json_string_value(ref)) : NULL;
        if (b && b->kind == BUILTIN_CLASS) {
            schema_path_push(site, "allOf");
            schema_path_push_index(site, i);
            schema_path_push(site, "$ref");
            return b;
        }
    }
    cerr(c, "/meta:class", "missing \"meta:class\" (\"%s\" or \"%s\")", SCHEMA_CLASS_PROFILE_ID,
         SCHEMA_CLASS_EVENT_ID);
    return NULL;
}

int schema_compile(const json_t *def, kith_schema **out, json_t *errors)
{
    expand_ctx c = {.def = def,
                    .errors = errors,
                    .budget = SCHEMA_MAX_NODES,
                    .max_depth = SCHEMA_LIMITS_DEFAULT.max_depth};
    kith_schema *s = NULL;
    json_t *root = NULL;
    schema_path p = {0}, site = {0};
    *out = NULL;
    if (!json_is_object(def)) {
        cerr(&c, "", "a schema definition must be a JSON object, got %s",
             def ? schema_json_type_name(def) : "nothing");
        goto fail;
    }
    const schema_builtin *cls = find_class(&c, def, &site);
    if (!cls) goto fail;
    c.cls = cls->classes == 1u << SCHEMA_CLASS_EVENT ? SCHEMA_CLASS_EVENT : SCHEMA_CLASS_PROFILE;

    root = new_field(&c, &p);
    expand_builtin(&c, root, cls, &site, 0, 0, true);
    expand_into(&c, root, def, &p, 0, 0, true);
    if (c.budget < 0) goto fail;

    s = kith_xcalloc(1, sizeof *s);
    s->cls = c.cls;
    s->root = build_node(&c, s, root);
    if (s->root->type != NODE_OBJECT || (s->root->flags & NODE_IS_MAP))
        berr(&c, root, "the schema itself must be an object with properties");
    if (c.nerrors) goto fail;
    schema_descriptors_compile(s, def, errors, &c.nerrors);
    if (c.nerrors) goto fail;

    strip_annotations(root);
    s->properties = json_incref(json_object_get(root, "properties"));
    json_decref(root);
    json_decref(c.patterns);
    *out = s;
    return 0;
fail:
    json_decref(c.patterns);
    json_decref(root);
    schema_free(s);
    return KITH_EINVAL;
}

json_t *schema_expand_builtin(const schema_builtin *b)
{
    json_t *errors = json_array();
    expand_ctx c = {.errors = errors,
                    .budget = SCHEMA_MAX_NODES,
                    .max_depth = SCHEMA_LIMITS_DEFAULT.max_depth,
                    .cls = (b->classes & (1u << SCHEMA_CLASS_PROFILE)) ? SCHEMA_CLASS_PROFILE
                                                                       : SCHEMA_CLASS_EVENT};
    schema_path p = {0};
    json_t *root = json_object();
    expand_builtin(&c, root, b, &p, 0, 0, b->kind != BUILTIN_DATA_TYPE);
    if (c.nerrors) {
        char *t = kith_json_dumps(errors, JSON_COMPACT);
        kith_log(KITH_LOG_ERROR, "schema", "built-in %s does not expand: %s", b->id, t);
        free(t);
        json_decref(root);
        root = NULL;
    } else {
        strip_annotations(root);
    }
    json_decref(c.patterns);
    json_decref(errors);
    return root;
}

void schema_free(kith_schema *s)
{
    if (!s) return;
    free(s->patterns);
    free(s->pattern_srcs);
    while (s->arena) {
        struct schema_arena_chunk *next = s->arena->next;
        free(s->arena);
        s->arena = next;
    }
    json_decref(s->properties);
    free(s);
}

schema_class schema_get_class(const kith_schema *s)
{
    return s->cls;
}

const json_t *schema_properties(const kith_schema *s)
{
    return s->properties;
}
