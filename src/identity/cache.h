/* kith identity cache: the apply thread's copy of the identity column families (ident, node,
 * cluster), so that the writer reads no key of the graph twice. It holds what the store holds — the
 * committed data plus the group's batch — key by key, including keys known to be absent: every
 * graph write goes to the batch and to the cache together (write-through), a miss is read through the
 * batch once. Bounded in bytes: its owner drops it between groups when it is full.
 * Owned by the apply thread (any other thread only while the apply thread is idle, e.g. a benchmark).
 */
#ifndef KITH_IDENTITY_CACHE_H
#define KITH_IDENTITY_CACHE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct kv_cache kv_cache;

typedef struct kv_ent {
    uint32_t klen, vlen;
    uint8_t cf;
    bool absent;     /* the key is known not to exist */
    uint8_t data[];  /* key, then value */
} kv_ent;

static inline const uint8_t *kv_val(const kv_ent *e)
{
    return e->data + e->klen;
}

kv_cache *kv_cache_new(size_t max_bytes);
void kv_cache_free(kv_cache *c);
void kv_cache_clear(kv_cache *c);
/* NULL when the cache knows nothing of the key. The entry is valid until the next put or clear. */
const kv_ent *kv_cache_get(kv_cache *c, int cf, const void *key, size_t klen);
/* val NULL: the key is absent (deleted or never written). */
void kv_cache_put(kv_cache *c, int cf, const void *key, size_t klen, const void *val, size_t vlen);
size_t kv_cache_entries(const kv_cache *c);
bool kv_cache_full(const kv_cache *c);
void kv_cache_clear_full(kv_cache *c); /* a clear because it was full (counted) */
size_t kv_cache_bytes(const kv_cache *c);
uint64_t kv_cache_clears(const kv_cache *c); /* times it was dropped because it was full */

#endif
