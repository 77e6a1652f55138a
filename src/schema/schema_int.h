/* Private to src/schema: the compiled node tree and the helpers its files share.
 *
 * Pipeline, in reading order: builtin.c (the XDM classes, field groups and data types as JSON text)
 * → compile.c (definition → expanded JSON → node tree) → validate.c (entity × node tree) →
 * identity.c (descriptors, identity extraction) → union.c (union of compiled schemas). */
#ifndef KITH_SCHEMA_INT_H
#define KITH_SCHEMA_INT_H

#include "kith/base.h"
#include "kith/schema.h"

#include <stdint.h>
#include <string.h>

enum node_type {
    NODE_STRING = 1,
    NODE_INTEGER,
    NODE_NUMBER,
    NODE_BOOLEAN,
    NODE_OBJECT,
    NODE_ARRAY,
};

enum node_format { FMT_NONE, FMT_DATE, FMT_DATE_TIME, FMT_EMAIL, FMT_URI, FMT_URI_REFERENCE };

enum node_flags {
    NODE_HAS_MIN = 1 << 0,
    NODE_HAS_MAX = 1 << 1,
    NODE_MIN_EXCL = 1 << 2,
    NODE_MAX_EXCL = 1 << 3,
    NODE_IS_MAP = 1 << 4,
    NODE_OPEN = 1 << 5, /* extra keys allowed and not checked beyond "no nulls, bounded depth" */
    NODE_HAS_LEN = 1 << 6,
};

struct schema_node;

struct schema_prop {
    const char *name;
    uint32_t len;
    struct schema_node *node;
    bool required;
};

/* One field of a compiled schema. Everything is allocated from the schema's arena. */
typedef struct schema_node {
    uint8_t type;              /* enum node_type */
    uint8_t format;            /* enum node_format (strings) */
    uint8_t flags;             /* enum node_flags */
    const char *xdm_type;      /* "long", "int", "short", "byte" for integers, else NULL */
    double minimum, maximum;   /* declared bounds, with NODE_HAS_MIN/MAX and *_EXCL */
    double range_lo, range_hi; /* the XDM integer type's range */
    uint32_t min_len, max_len; /* code points, when NODE_HAS_LEN */
    uint32_t min_items, max_items;
    const struct schema_regex *pattern;
    const char *pattern_src;
    const json_t *enum_values; /* borrowed from the schema's expanded properties */
    const char *enum_text;     /* the enum as compact JSON, for messages */
    struct schema_prop *props; /* sorted by name (strcmp) */
    uint32_t nprops, nrequired;
    uint32_t *slots;                /* open-addressing hash of props: index + 1, 0 = empty */
    uint32_t mask;                  /* table size - 1 (a power of two >= 2 * nprops) */
    struct schema_node *additional; /* schema of a map's values / additionalProperties */
    struct schema_node *items;
} schema_node;

struct schema_descriptor {
    char *pointer; /* "/personalEmail/address" */
    char **segs;   /* unescaped segments */
    int nsegs;
    char *ns;
    bool primary;
};

struct schema_arena_chunk;

struct kith_schema {
    schema_class cls;
    json_t *properties; /* expanded, owned */
    schema_node *root;
    struct schema_descriptor *descs;
    size_t ndescs;
    struct schema_arena_chunk *arena;
    const struct schema_regex **patterns; /* each distinct pattern compiled once */
    const char **pattern_srcs;
    size_t npatterns;
};

/* builtin.c ------------------------------------------------------------------------------------ */

enum builtin_kind { BUILTIN_CLASS, BUILTIN_FIELD_GROUP, BUILTIN_DATA_TYPE };

typedef struct schema_builtin {
    const char *id;
    enum builtin_kind kind;
    unsigned classes;  /* for field groups: bit (1 << schema_class) per class it may extend */
    const json_t *def; /* parsed once; read-only and shared by all threads */
} schema_builtin;

/* NULL when id names no built-in. Thread-safe (parses the built-ins on first use). */
const schema_builtin *schema_builtin_find(const char *id);
size_t schema_builtin_count(void);
const schema_builtin *schema_builtin_at(size_t i);

/* compile.c ------------------------------------------------------------------------------------ */

/* Zeroed memory / a copy of str that lives until schema_free(s). */
void *schema_arena_alloc(kith_schema *s, size_t n);
char *schema_arena_strdup(kith_schema *s, const char *str);

/* Expands a built-in into {"type": "object", "properties", "required"?} (returns owned), or NULL
 * if a built-in is broken (a bug, caught by the unit tests). */
json_t *schema_expand_builtin(const schema_builtin *b);
/* FNV-1a over a key, for the per-node property hash. */
static inline uint32_t schema_key_hash(const char *key, size_t len)
{
    uint32_t h = 2166136261u;
    for (size_t i = 0; i < len; i++)
        h = (h ^ (unsigned char)key[i]) * 16777619u;
    return h;
}

/* The property named key (len bytes) of an object node, or NULL: one hash and, almost always, one
 * comparison (the table is at most half full). */
static inline const struct schema_prop *schema_node_findn(const schema_node *n, const char *key,
                                                          size_t len)
{
    if (!n->nprops) return NULL;
    for (uint32_t i = schema_key_hash(key, len) & n->mask;; i = (i + 1) & n->mask) {
        uint32_t slot = n->slots[i];
        if (!slot) return NULL;
        const struct schema_prop *p = &n->props[slot - 1];
        if (p->len == len && memcmp(p->name, key, len) == 0) return p;
    }
}
static inline const struct schema_prop *schema_node_find(const schema_node *n, const char *key)
{
    return schema_node_findn(n, key, strlen(key));
}

/* regex.c: the pattern engine (POSIX ERE; allocation-free and lock-free matching). check returns 0
 * or KITH_EINVAL with a static reason; compile returns NULL exactly when check fails, and the
 * result lives in s's arena. */
typedef struct schema_regex schema_regex;
int schema_regex_check(const char *pattern, const char **why);
schema_regex *schema_regex_compile(kith_schema *s, const char *pattern);
/* True when the pattern matches anywhere in s[0..len) (valid UTF-8). */
bool schema_regex_match(const schema_regex *re, const char *s, size_t len);

/* identity.c: compiles def's "kith:descriptors" into s->descs; appends errors and counts them. */
void schema_descriptors_compile(kith_schema *s, const json_t *def, json_t *errors, int *nerrors);

/* Helpers shared by the files of this module (schema_util in compile.c). */

/* A JSON pointer being built; long paths are cut (the error stays useful, the buffer bounded). */
#define SCHEMA_PATH_MAX 1024
typedef struct schema_path {
    size_t len;
    char buf[SCHEMA_PATH_MAX];
} schema_path;
/* Appends "/" and key escaped as RFC 6901 (~0, ~1); returns the old length for schema_path_pop. */
size_t schema_path_push(schema_path *p, const char *key);
size_t schema_path_push_index(schema_path *p, size_t i);
static inline void schema_path_pop(schema_path *p, size_t old)
{
    p->len = old;
    p->buf[old] = '\0';
}

/* Appends {"path", "message"} to errors, cutting both at a UTF-8 boundary if very long. */
void schema_error_add(json_t *errors, const char *path, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* Copies s into buf (cap >= 4) cut at a UTF-8 boundary, with "..." when cut; returns buf. */
const char *schema_clip(const char *s, char *buf, size_t cap);
/* "string", "number", "boolean", "object", "array", "null" */
const char *schema_json_type_name(const json_t *v);

#endif
