/* kith identity cache: the apply thread's memory of identities and edges it has seen, so that the
 * hot path (an event with an ECID already known) costs no store read. Owned by the apply thread;
 * write-through (every ident write updates it) and cleared whenever a batch is rolled back, a group
 * fails or a sandbox is deleted, so it never disagrees with the store. Bounded: when full it is cleared. */
#ifndef KITH_IDENTITY_CACHE_H
#define KITH_IDENTITY_CACHE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct ident_cache ident_cache;

typedef struct ident_entry {
    uint64_t id, cluster;
    int64_t first;
} ident_entry;

ident_cache *ident_cache_new(size_t max_entries);
void ident_cache_free(ident_cache *c);
void ident_cache_clear(ident_cache *c);
/* key borrowed; returns NULL when absent. The pointer is valid until the next put or clear. */
ident_entry *ident_cache_get(ident_cache *c, const void *key, size_t klen);
void ident_cache_put(ident_cache *c, const void *key, size_t klen, const ident_entry *v);
size_t ident_cache_size(const ident_cache *c);

#endif
