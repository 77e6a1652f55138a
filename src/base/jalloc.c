/* kith jalloc: tagged jansson allocator with per-thread arenas (see include/kith/jalloc.h). */
#include "kith/jalloc.h"

#include <jansson.h>
#include <stdint.h>
#include <stdlib.h>

#include "kith/base.h"
#include "kith/kjson.h"

#define TAG_HEAP 0x6b697468u  /* "kith" */
#define TAG_ARENA 0x6172656eu /* "aren" */
#define HDR 16                /* keeps 16-byte alignment */
#define CHUNK (64 * 1024)

typedef struct chunk {
    struct chunk *next;
    size_t used, cap;
    _Alignas(16) unsigned char data[];
} chunk;

struct jalloc_arena {
    chunk *head;
    chunk *spare; /* emptied by jalloc_arena_reset, reused before any new chunk */
    size_t total;
};

static _Atomic int installed;

static __thread jalloc_arena *current;

static void *tagged(unsigned char *p, uint32_t tag)
{
    *(uint32_t *)p = tag;
    return p + HDR;
}

static void *jmalloc(size_t n)
{
    jalloc_arena *a = current;
    if (a) {
        size_t need = (n + HDR + 15) & ~(size_t)15;
        chunk *c = a->head;
        if (!c || c->used + need > c->cap) {
            if (a->spare && a->spare->cap >= need) {
                c = a->spare;
                a->spare = c->next;
            } else {
                size_t cap = need > CHUNK ? need : CHUNK;
                c = malloc(sizeof *c + cap);
                if (!c) return NULL;
                c->cap = cap;
                a->total += cap;
            }
            c->used = 0;
            c->next = a->head;
            a->head = c;
        }
        unsigned char *p = c->data + c->used;
        c->used += need;
        return tagged(p, TAG_ARENA);
    }
    unsigned char *p = malloc(n + HDR);
    return p ? tagged(p, TAG_HEAP) : NULL;
}

static void jfree(void *ptr)
{
    if (!ptr) return;
    unsigned char *p = (unsigned char *)ptr - HDR;
    if (*(uint32_t *)p == TAG_HEAP) {
        *(uint32_t *)p = 0;
        free(p);
    }
    /* TAG_ARENA: released with the arena. */
}

void jalloc_install(void)
{
    json_set_alloc_funcs(jmalloc, jfree);
    installed = 1;
}

int jalloc_installed(void)
{
    return installed;
}

void jalloc_arena_enter(jalloc_arena **a)
{
    if (!*a) *a = kith_xcalloc(1, sizeof **a);
    current = *a;
}

void jalloc_arena_leave(void)
{
    current = NULL;
}

static void chunks_free(chunk *c)
{
    while (c) {
        chunk *n = c->next;
        free(c);
        c = n;
    }
}

void jalloc_arena_reset(jalloc_arena *a)
{
    if (!a) return;
    while (a->head) {
        chunk *c = a->head;
        a->head = c->next;
        c->next = a->spare;
        a->spare = c;
    }
}

void jalloc_arena_free(jalloc_arena *a)
{
    if (!a) return;
    chunks_free(a->head);
    chunks_free(a->spare);
    free(a);
}

size_t jalloc_arena_size(const jalloc_arena *a)
{
    return a ? a->total : 0;
}

static int dump_cb(const char *buf, size_t size, void *data)
{
    kith_buf_append(data, buf, size);
    return 0;
}

char *kith_json_dumps(const json_t *j, size_t flags)
{
    kith_buf b = {0};
    int rc;
    /* Compact output (every use in kithd) goes through kjson's writer, several times faster than
     * jansson's; anything else through jansson. */
    if ((flags & ~(size_t)(JSON_COMPACT | JSON_ENCODE_ANY | 0x1F /* JSON_MAX_INDENT */)) == 0 &&
        (flags & 0x1F) == 0 && (json_is_object(j) || json_is_array(j) || (flags & JSON_ENCODE_ANY)))
        rc = kjson_dump(j, &b);
    else
        rc = json_dump_callback(j, dump_cb, &b, flags);
    if (rc != 0) {
        kith_buf_free(&b);
        return NULL;
    }
    if (!b.data) kith_buf_append(&b, "", 0);
    return b.data;
}
