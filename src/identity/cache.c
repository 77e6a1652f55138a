/* kith identity cache: open addressing with linear probing; one allocation per entry (key and value
 * together) and a 16-byte slot (hash, entry). */
#include "cache.h"

#include <stdlib.h>
#include <string.h>

#include "kith/base.h"

typedef struct slot {
    uint64_t hash; /* 0 = empty */
    kv_ent *e;
} slot;

struct kv_cache {
    slot *slots;
    size_t cap, n, bytes, max_bytes;
    uint64_t clears;
};

#define SLOT_MIN 1024
#define ENT_OVERHEAD 16 /* malloc's own bookkeeping, counted against the bound */

kv_cache *kv_cache_new(size_t max_bytes)
{
    kv_cache *c = kith_xcalloc(1, sizeof *c);
    c->max_bytes = max_bytes ? max_bytes : 1;
    c->cap = SLOT_MIN;
    c->slots = kith_xcalloc(c->cap, sizeof *c->slots);
    return c;
}

void kv_cache_clear(kv_cache *c)
{
    if (c->n == 0) return;
    for (size_t i = 0; i < c->cap; i++)
        free(c->slots[i].e);
    if (c->cap > SLOT_MIN) { /* give the memory back */
        free(c->slots);
        c->cap = SLOT_MIN;
        c->slots = kith_xcalloc(c->cap, sizeof *c->slots);
    } else {
        memset(c->slots, 0, c->cap * sizeof *c->slots);
    }
    c->n = 0;
    c->bytes = 0;
}

void kv_cache_free(kv_cache *c)
{
    if (!c) return;
    kv_cache_clear(c);
    free(c->slots);
    free(c);
}

static uint64_t hash_of(int cf, const void *key, size_t klen)
{
    uint64_t h = kith_hash64(key, klen, 0x9e3779b97f4a7c15ull + (uint64_t)cf);
    return h ? h : 1;
}

static slot *find(kv_cache *c, uint64_t h, int cf, const void *key, size_t klen)
{
    size_t mask = c->cap - 1;
    for (size_t i = h & mask;; i = (i + 1) & mask) {
        slot *s = &c->slots[i];
        if (!s->hash) return s;
        if (s->hash == h && s->e->cf == cf && s->e->klen == klen &&
            memcmp(s->e->data, key, klen) == 0)
            return s;
    }
}

const kv_ent *kv_cache_get(kv_cache *c, int cf, const void *key, size_t klen)
{
    slot *s = find(c, hash_of(cf, key, klen), cf, key, klen);
    return s->hash ? s->e : NULL;
}

static void grow(kv_cache *c)
{
    slot *old = c->slots;
    size_t oldcap = c->cap;
    c->cap *= 2;
    c->slots = kith_xcalloc(c->cap, sizeof *c->slots);
    for (size_t i = 0; i < oldcap; i++)
        if (old[i].hash) *find(c, old[i].hash, old[i].e->cf, old[i].e->data, old[i].e->klen) = old[i];
    free(old);
}

static size_t ent_bytes(const kv_ent *e)
{
    return sizeof *e + e->klen + e->vlen + ENT_OVERHEAD;
}

void kv_cache_put(kv_cache *c, int cf, const void *key, size_t klen, const void *val, size_t vlen)
{
    if (!val) vlen = 0;
    uint64_t h = hash_of(cf, key, klen);
    slot *s = find(c, h, cf, key, klen);
    if (!s->hash && (c->n + 1) * 4 > c->cap * 3) {
        grow(c);
        s = find(c, h, cf, key, klen);
    }
    kv_ent *e = s->hash ? s->e : NULL;
    if (e && e->vlen == vlen) { /* same size: in place */
        c->bytes -= ent_bytes(e);
    } else {
        if (e) c->bytes -= ent_bytes(e);
        e = kith_xrealloc(e, sizeof *e + klen + vlen);
        if (!s->hash) {
            c->n++;
            s->hash = h;
        }
        s->e = e;
        e->klen = (uint32_t)klen;
        e->cf = (uint8_t)cf;
        memcpy(e->data, key, klen);
    }
    e->vlen = (uint32_t)vlen;
    e->absent = val == NULL;
    if (val && vlen) memcpy(e->data + klen, val, vlen);
    c->bytes += ent_bytes(e);
}

size_t kv_cache_entries(const kv_cache *c)
{
    return c->n;
}

size_t kv_cache_bytes(const kv_cache *c)
{
    return c->bytes + c->cap * sizeof(slot);
}

bool kv_cache_full(const kv_cache *c)
{
    return kv_cache_bytes(c) > c->max_bytes;
}

void kv_cache_clear_full(kv_cache *c)
{
    kv_cache_clear(c);
    c->clears++;
}

uint64_t kv_cache_clears(const kv_cache *c)
{
    return c->clears;
}
