/* kith identity cache: open addressing with linear probing over (hash, key) slots. */
#include "cache.h"

#include <stdlib.h>
#include <string.h>

#include "kith/base.h"

typedef struct slot {
    uint64_t hash; /* 0 = empty */
    uint8_t *key;
    size_t klen;
    ident_entry v;
} slot;

struct ident_cache {
    slot *slots;
    size_t cap, n, max;
};

ident_cache *ident_cache_new(size_t max_entries)
{
    ident_cache *c = kith_xcalloc(1, sizeof *c);
    c->max = max_entries ? max_entries : 1;
    c->cap = 1024;
    c->slots = kith_xcalloc(c->cap, sizeof *c->slots);
    return c;
}

void ident_cache_clear(ident_cache *c)
{
    for (size_t i = 0; i < c->cap; i++)
        if (c->slots[i].hash) free(c->slots[i].key);
    memset(c->slots, 0, c->cap * sizeof *c->slots);
    c->n = 0;
}

void ident_cache_free(ident_cache *c)
{
    if (!c) return;
    ident_cache_clear(c);
    free(c->slots);
    free(c);
}

static uint64_t hash_of(const void *key, size_t klen)
{
    uint64_t h = kith_hash64(key, klen, 0x9e3779b97f4a7c15ull);
    return h ? h : 1;
}

static slot *find(ident_cache *c, uint64_t h, const void *key, size_t klen)
{
    size_t mask = c->cap - 1;
    for (size_t i = h & mask;; i = (i + 1) & mask) {
        slot *s = &c->slots[i];
        if (!s->hash) return s;
        if (s->hash == h && s->klen == klen && memcmp(s->key, key, klen) == 0) return s;
    }
}

ident_entry *ident_cache_get(ident_cache *c, const void *key, size_t klen)
{
    slot *s = find(c, hash_of(key, klen), key, klen);
    return s->hash ? &s->v : NULL;
}

static void grow(ident_cache *c)
{
    slot *old = c->slots;
    size_t oldcap = c->cap;
    c->cap *= 2;
    c->slots = kith_xcalloc(c->cap, sizeof *c->slots);
    for (size_t i = 0; i < oldcap; i++)
        if (old[i].hash) *find(c, old[i].hash, old[i].key, old[i].klen) = old[i];
    free(old);
}

void ident_cache_put(ident_cache *c, const void *key, size_t klen, const ident_entry *v)
{
    uint64_t h = hash_of(key, klen);
    slot *s = find(c, h, key, klen);
    if (s->hash) {
        s->v = *v;
        return;
    }
    if (c->n >= c->max) {
        ident_cache_clear(c);
        s = find(c, h, key, klen);
    } else if ((c->n + 1) * 4 > c->cap * 3) {
        grow(c);
        s = find(c, h, key, klen);
    }
    s->hash = h;
    s->key = kith_xmalloc(klen);
    memcpy(s->key, key, klen);
    s->klen = klen;
    s->v = *v;
    c->n++;
}

size_t ident_cache_size(const ident_cache *c)
{
    return c->n;
}
