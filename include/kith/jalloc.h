/* kith jalloc: jansson's allocator, with per-request arenas on the ingest hot path.
 *
 * jansson allocates every node, key and string with malloc and frees each one; for a 1 KB event that is
 * dozens of malloc/free pairs. kithd installs jalloc_install() at start-up; a worker thread then opens an
 * arena for the parse-and-validate phase of a request (jalloc_arena_enter), and every jansson allocation
 * of that thread comes from the arena until jalloc_arena_leave(). Freeing a node from an arena is a no-op;
 * the arena is released whole with jalloc_arena_free() when the request ends. Each block carries a tag,
 * so a node from the heap and a node from an arena can be freed the same way. */
#ifndef KITH_JALLOC_H
#define KITH_JALLOC_H

#include <stddef.h>

typedef struct jalloc_arena jalloc_arena;

/* Installs the tagged allocator into jansson. Call before any other jansson use (kithd main). */
void jalloc_install(void);
/* Routes this thread's jansson allocations to *a (created on first use) until jalloc_arena_leave. */
void jalloc_arena_enter(jalloc_arena **a);
void jalloc_arena_leave(void);
/* Non-zero once jalloc_install ran: only then do arenas take jansson's allocations. */
int jalloc_installed(void);
/* Empties the arena for reuse (every node allocated in it is gone; its memory is kept for the next
 * allocations). NULL is fine. */
void jalloc_arena_reset(jalloc_arena *a);
/* Releases the arena (and every node allocated in it). NULL is fine. */
void jalloc_arena_free(jalloc_arena *a);
/* Bytes the arena holds (for limits and metrics). */
size_t jalloc_arena_size(const jalloc_arena *a);

/* json_dumps into a plain malloc'ed string (free with free()), whichever allocator jansson uses.
 * Returns NULL on failure. */
#include <jansson.h>
char *kith_json_dumps(const json_t *j, size_t flags);

#endif
