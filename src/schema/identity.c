/* Identity descriptors and identity extraction (aep-spec 2.2).
 *
 * Identities come from two places: the identityMap (namespace → [{id, primary?}]) and string fields
 * marked by identity descriptors. Extraction reads both in a fixed order (identityMap in document
 * order, then descriptors in the order they were declared), merges repeated (namespace, value)
 * pairs and picks exactly one primary. It borrows every string from the entity or the schema. */
#include "schema_int.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define IDENTITY_PATH_MAX ((int)sizeof(((schema_identity *)0)->path))

/* Reads the next segment of a JSON pointer at *p (which points at '/') into seg, unescaping ~0 and
 * ~1. Returns false on a bad escape or a segment too long for seg. */
static bool pointer_segment(const char **p, char *seg, size_t cap)
{
    const char *q = *p + 1;
    size_t n = 0;
    for (; *q && *q != '/'; q++) {
        char c = *q;
        if (c == '~') {
            if (q[1] != '0' && q[1] != '1') return false;
            c = *++q == '0' ? '~' : '/';
        }
        if (n + 1 >= cap) return false;
        seg[n++] = c;
    }
    seg[n] = '\0';
    *p = q;
    return true;
}

static const char *node_kind(const schema_node *n)
{
    switch (n->type) {
    case NODE_INTEGER:
        return "an integer";
    case NODE_NUMBER:
        return "a number";
    case NODE_BOOLEAN:
        return "a boolean";
    case NODE_ARRAY:
        return "an array";
    default:
        return n->flags & NODE_IS_MAP ? "a map" : "an object";
    }
}

/* Checks pointer against the node tree; on failure writes why into msg and returns KITH_EINVAL. */
static int descriptor_walk(const kith_schema *s, const char *pointer, char *msg, size_t cap)
{
    char seg[IDENTITY_PATH_MAX], clip[IDENTITY_PATH_MAX + 8];
    if (!pointer || pointer[0] != '/') {
        snprintf(msg, cap,
                 "must be a JSON pointer starting with \"/\", such as \"/personalEmail/address\"");
        return KITH_EINVAL;
    }
    if (strlen(pointer) >= (size_t)IDENTITY_PATH_MAX) {
        snprintf(msg, cap, "is longer than %d bytes", IDENTITY_PATH_MAX - 1);
        return KITH_EINVAL;
    }
    const schema_node *n = s->root;
    const char *p = pointer;
    while (*p) {
        if (!pointer_segment(&p, seg, sizeof seg)) {
            snprintf(msg, cap, "\"%s\" is not a valid JSON pointer (use ~0 for ~ and ~1 for /)",
                     schema_clip(pointer, clip, sizeof clip));
            return KITH_EINVAL;
        }
        const struct schema_prop *pr = n->type == NODE_OBJECT ? schema_node_find(n, seg) : NULL;
        if (!pr) {
            snprintf(msg, cap, "\"%.*s\" is not a field of this schema", (int)(p - pointer),
                     pointer);
            return KITH_EINVAL;
        }
        n = pr->node;
        if (n->type == NODE_ARRAY || (n->flags & NODE_IS_MAP)) {
            snprintf(msg, cap,
                     "\"%.*s\" is %s; an identity field must be a string outside arrays and maps",
                     (int)(p - pointer), pointer, node_kind(n));
            return KITH_EINVAL;
        }
    }
    if (n->type != NODE_STRING) {
        snprintf(msg, cap, "\"%s\" is %s; an identity field must be a string", pointer,
                 node_kind(n));
        return KITH_EINVAL;
    }
    return 0;
}

int schema_check_descriptor(const kith_schema *s, const char *pointer, json_t *errors)
{
    char msg[320];
    if (descriptor_walk(s, pointer, msg, sizeof msg) == 0) return 0;
    schema_error_add(errors, "/xdm:sourceProperty", "%s", msg);
    return KITH_EINVAL;
}

void schema_descriptors_compile(kith_schema *s, const json_t *def, json_t *errors, int *nerrors)
{
    const json_t *descs = json_object_get(def, "kith:descriptors");
    schema_path p = {0};
    if (!descs) return;
    schema_path_push(&p, "kith:descriptors");
    if (!json_is_array(descs)) {
        schema_error_add(errors, p.buf, "must be an array of identity descriptors");
        ++*nerrors;
        return;
    }
    s->descs = schema_arena_alloc(s, (json_array_size(descs) + 1) * sizeof *s->descs);
    int primary = -1;
    size_t i;
    const json_t *d;
    json_array_foreach(descs, i, d)
    {
        size_t old = schema_path_push_index(&p, i), o2;
        const json_t *sp = json_object_get(d, "xdm:sourceProperty");
        const json_t *ns = json_object_get(d, "xdm:namespace");
        const json_t *pr = json_object_get(d, "xdm:isPrimary");
        char msg[320];
        int before = *nerrors;
        if (!json_is_object(d)) {
            schema_error_add(errors, p.buf, "expected a descriptor object, got %s",
                             schema_json_type_name(d));
            ++*nerrors;
            schema_path_pop(&p, old);
            continue;
        }
        o2 = schema_path_push(&p, "xdm:sourceProperty");
        if (!json_is_string(sp)) {
            schema_error_add(errors, p.buf,
                             "missing or not a string (a JSON pointer such as "
                             "\"/personalEmail/address\")");
            ++*nerrors;
        } else if (descriptor_walk(s, json_string_value(sp), msg, sizeof msg)) {
            schema_error_add(errors, p.buf, "%s", msg);
            ++*nerrors;
        } else {
            for (size_t j = 0; j < s->ndescs; j++)
                if (strcmp(s->descs[j].pointer, json_string_value(sp)) == 0) {
                    schema_error_add(errors, p.buf, "this field already has a descriptor (#%zu)",
                                     j);
                    ++*nerrors;
                }
        }
        schema_path_pop(&p, o2);
        o2 = schema_path_push(&p, "xdm:namespace");
        if (!json_is_string(ns) || json_string_length(ns) == 0) {
            schema_error_add(errors, p.buf,
                             "missing or empty (a namespace code such as \"Email\")");
            ++*nerrors;
        }
        schema_path_pop(&p, o2);
        o2 = schema_path_push(&p, "xdm:isPrimary");
        if (pr && !json_is_boolean(pr)) {
            schema_error_add(errors, p.buf, "must be true or false");
            ++*nerrors;
        } else if (json_is_true(pr) && primary >= 0) {
            schema_error_add(errors, p.buf,
                             "descriptor #%d is already the primary identity; a schema has at most "
                             "one",
                             primary);
            ++*nerrors;
        }
        schema_path_pop(&p, o2);
        schema_path_pop(&p, old);
        if (*nerrors != before) continue;

        struct schema_descriptor *sd = &s->descs[s->ndescs];
        sd->pointer = schema_arena_strdup(s, json_string_value(sp));
        sd->ns = schema_arena_strdup(s, json_string_value(ns));
        sd->primary = json_is_true(pr);
        if (sd->primary) primary = (int)s->ndescs;
        for (const char *c = sd->pointer; *c; c++)
            sd->nsegs += *c == '/';
        sd->segs = schema_arena_alloc(s, (size_t)sd->nsegs * sizeof *sd->segs);
        const char *q = sd->pointer;
        char seg[IDENTITY_PATH_MAX];
        for (int k = 0; k < sd->nsegs && pointer_segment(&q, seg, sizeof seg); k++)
            sd->segs[k] = schema_arena_strdup(s, seg);
        s->ndescs++;
    }
}

/* Extraction ---------------------------------------------------------------------------------- */

typedef struct xctx {
    json_t *errors;
    int nerr, max_err;
    int n, limit, max_len;
    bool overflow;
    int desc_primary; /* index in out of the identity a descriptor made primary, or -1 */
    schema_identity *out;
} xctx;

__attribute__((format(printf, 3, 4))) static void xerr(xctx *x, const char *path, const char *fmt,
                                                       ...)
{
    x->nerr++;
    if (x->nerr > x->max_err) return;
    char msg[400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    schema_error_add(x->errors, path, "%s", msg);
}

/* Checks a value and adds it. primary_map: flagged in the identityMap; primary_desc: by descriptor.
 */
static void identity_add(xctx *x, const char *ns, const json_t *val, const char *path,
                         bool primary_map, bool primary_desc)
{
    if (!json_is_string(val)) {
        xerr(x, path, "identity value must be a string, got %s", schema_json_type_name(val));
        return;
    }
    size_t len = json_string_length(val);
    if (len == 0) {
        xerr(x, path, "identity value is empty");
        return;
    }
    if (len > (size_t)x->max_len) {
        xerr(x, path, "identity value is %zu bytes; the limit is %d", len, x->max_len);
        return;
    }
    const char *value = json_string_value(val);
    int at = -1;
    for (int i = 0; i < x->n && at < 0; i++)
        if (strcmp(x->out[i].ns, ns) == 0 && strcmp(x->out[i].value, value) == 0) at = i;
    if (at < 0) {
        if (x->n >= x->limit) {
            if (!x->overflow)
                xerr(x, path, "more than %d identities in one record (the limit is %d)", x->limit,
                     x->limit);
            x->overflow = true;
            return;
        }
        at = x->n++;
        schema_identity *id = &x->out[at];
        id->ns = ns;
        id->value = value;
        id->primary = false;
        snprintf(id->path, sizeof id->path, "%s", path);
    }
    /* During collection .primary means "flagged in the identityMap". */
    if (primary_map) x->out[at].primary = true;
    if (primary_desc) x->desc_primary = at;
}

static void extract_identity_map(xctx *x, const json_t *im)
{
    schema_path p = {0};
    schema_path_push(&p, "identityMap");
    if (!json_is_object(im)) {
        xerr(x, p.buf,
             "identityMap must be an object of namespace code → array of {\"id\": ...}, got %s",
             schema_json_type_name(im));
        return;
    }
    const char *ns;
    const json_t *arr;
    json_object_foreach((json_t *)im, ns, arr)
    {
        size_t old = schema_path_push(&p, ns);
        size_t i;
        const json_t *item;
        if (ns[0] == '\0') {
            xerr(x, p.buf, "empty namespace code");
        } else if (!json_is_array(arr)) {
            xerr(x, p.buf, "expected an array of {\"id\": ...} objects, got %s",
                 schema_json_type_name(arr));
        } else {
            json_array_foreach(arr, i, item)
            {
                if (x->overflow) break;
                size_t o2 = schema_path_push_index(&p, i);
                const json_t *id = json_object_get(item, "id");
                const json_t *prim = json_object_get(item, "primary");
                if (!json_is_object(item)) {
                    xerr(x, p.buf, "expected an object with \"id\", got %s",
                         schema_json_type_name(item));
                } else if (!id) {
                    xerr(x, p.buf, "missing \"id\"");
                } else if (prim && !json_is_boolean(prim)) {
                    schema_path_push(&p, "primary");
                    xerr(x, p.buf, "expected boolean, got %s", schema_json_type_name(prim));
                } else {
                    schema_path_push(&p, "id");
                    if (p.len >= (size_t)IDENTITY_PATH_MAX)
                        xerr(x, p.buf, "namespace code too long (the path exceeds %d bytes)",
                             IDENTITY_PATH_MAX - 1);
                    else
                        identity_add(x, ns, id, p.buf, json_is_true(prim), false);
                }
                schema_path_pop(&p, o2);
            }
        }
        schema_path_pop(&p, old);
        if (x->overflow) break;
    }
}

int schema_extract_identities(const kith_schema *s, const json_t *entity, const schema_limits *lim,
                              schema_identity *out, int cap, json_t *errors)
{
    const schema_limits *d = &SCHEMA_LIMITS_DEFAULT;
    int max_ids = lim && lim->max_identities > 0 ? lim->max_identities : d->max_identities;
    xctx x = {.errors = errors,
              .max_err = lim && lim->max_errors > 0 ? lim->max_errors : d->max_errors,
              .limit = cap < max_ids ? (cap > 0 ? cap : 0) : max_ids,
              .max_len =
                  lim && lim->max_identity_len > 0 ? lim->max_identity_len : d->max_identity_len,
              .desc_primary = -1,
              .out = out};
    if (!json_is_object(entity)) {
        xerr(&x, "", "the entity must be a JSON object, got %s",
             entity ? schema_json_type_name(entity) : "nothing");
        return KITH_EINVAL;
    }
    const json_t *im = json_object_get(entity, "identityMap");
    if (im) extract_identity_map(&x, im);
    for (size_t i = 0; i < s->ndescs && !x.overflow; i++) {
        const struct schema_descriptor *sd = &s->descs[i];
        const json_t *v = entity;
        for (int k = 0; k < sd->nsegs && v; k++)
            v = json_is_object(v) ? json_object_get(v, sd->segs[k]) : NULL;
        if (v) identity_add(&x, sd->ns, v, sd->pointer, false, sd->primary);
    }

    /* Exactly one primary: the identityMap's, else the descriptor's, else the first. */
    int flagged = -1;
    for (int i = 0; i < x.n; i++) {
        if (!out[i].primary) continue;
        if (flagged >= 0) {
            xerr(&x, out[i].path,
                 "two identities are flagged primary (%s and %s); flag exactly one",
                 out[flagged].path, out[i].path);
            out[i].primary = false;
        } else {
            flagged = i;
        }
    }
    if (flagged < 0 && x.n > 0) out[x.desc_primary >= 0 ? x.desc_primary : 0].primary = true;
    if (x.n == 0 && x.nerr == 0)
        xerr(&x, "", "no identity: add an identityMap entry%s%s", s->ndescs ? " or fill " : "",
             s->ndescs ? s->descs[0].pointer : "");
    return x.nerr ? KITH_EINVAL : x.n;
}
