/* kith merge policies: the stored documents behind /data/core/ups/config/mergePolicies.
 *
 * meta [sb]['m'][policy id] → the policy document as the API returns it (and [sb]['V'][id][0][version
 * u64] → every version of it, for GET ?version=):
 *   {"id", "name", "imsOrgId", "sandbox": {...}, "schema": {"name"}, "version", "identityGraph":
 *    {"type"}, "attributeMerge": {"type", "order"?}, "isActiveOnEdge", "default", "updateEpoch"}
 *
 * An in-memory cache behind a read-write lock serves reads on any thread; it is loaded from the
 * meta column family on first use and changed only on the apply thread, at once, like the catalog.
 * At most one policy per (sandbox, schema.name) is the default, and at most one per sandbox is
 * active on edge: storing a policy that claims either silently takes it from the previous holder
 * (whose version goes up), as AEP resolves it. */
#ifndef KITH_PROFILE_MERGEPOLICY_H
#define KITH_PROFILE_MERGEPOLICY_H

#include "kith/engine.h"

#define MPOLICY_PROFILE_CLASS "_xdm.context.profile"
#define MPOLICY_MAX_PER_SANDBOX 100
#define MPOLICY_ID_MAX 63

/* Any thread: checks a create or PUT body (borrowed) and returns the normalised policy fields
 * (owned: name, schema, identityGraph, attributeMerge, default, isActiveOnEdge) in *out. On bad
 * input returns KITH_EINVAL with *errors (owned [{path, message}]) and a sentence in detail.
 * Dataset ids of an order must be datasets of the sandbox. */
int mpolicy_validate(kith_engine *e, uint32_t sandbox, const json_t *body, json_t **out,
                     json_t **errors, char *detail, size_t cap);

/* Apply thread: stores fields (borrowed, as mpolicy_validate returns them) as policy id (a new one
 * when expect_version is 0, else only when the stored version still equals expect_version:
 * KITH_ECONFLICT otherwise, KITH_ENOTFOUND when gone). *stored (owned) receives the document. */
int mpolicy_store(kith_engine *e, store_batch *b, uint32_t sandbox, const char *id,
                  const json_t *fields, int64_t expect_version, json_t **stored);
/* Apply thread: 0 or KITH_ENOTFOUND. */
int mpolicy_delete(kith_engine *e, store_batch *b, uint32_t sandbox, const char *id);

/* Apply thread: removes a deleted dataset from the dataSetPrecedence order of every policy of the
 * sandbox that lists it (each such policy's version goes up). Returns how many changed. */
int mpolicy_prune_dataset(kith_engine *e, store_batch *b, uint32_t sandbox, const char *dataset);

/* The built-in policy every sandbox has (aep-spec 3.3: export jobs name it): timestampOrdered,
 * identity graph none, never the default, read-only, not counted in the limit. */
#define MPOLICY_BUILTIN_ID "timestampOrdered-none-mp"
bool mpolicy_is_builtin(const char *id);

/* Any thread: a copy (owned) of one policy (the built-in one included), or NULL. */
json_t *mpolicy_get(kith_engine *e, uint32_t sandbox, const char *id);
/* Any thread: version `version` of a policy that still exists (owned), or NULL. Every stored
 * version is kept (meta [sb]['V'][id][0][version]) until the policy is deleted. */
json_t *mpolicy_get_version(kith_engine *e, uint32_t sandbox, const char *id, int64_t version);
/* Any thread: copies (owned array) of the sandbox's policies, sorted by name then id. */
json_t *mpolicy_list(kith_engine *e, uint32_t sandbox);

/* --- the merge itself (profile.c), shared by the materialised view and read-time merges --- */

typedef struct profile_frag {
    int64_t order;  /* ordering time: extSourceSystemAudit.lastUpdatedDate, else arrival (ms) */
    int64_t stamp;  /* write stamp (µs, strictly increasing): breaks ties by arrival */
    uint64_t owner; /* identity id the fragment is stored under */
    char dataset[KITH_ID_LEN + 1];
    json_t *entity; /* taken */
} profile_frag;

/* Merges fragments by policy (NULL: timestampOrdered) and returns the view document (owned)
 * {"entity", "sources", "owners", "lastModifiedAt"}: timestampOrdered — the newest fragment wins
 * per leaf (ordering time, then write stamp); dataSetPrecedence — the highest listed dataset wins
 * per leaf and unlisted datasets are left out. Objects merge key by key; arrays and scalars are
 * atomic; identityMap is left out (identities come from the cluster). Takes every entity (f itself
 * stays the caller's). */
json_t *profile_merge(profile_frag *f, size_t n, const merge_policy *policy);

/* Frees the cache (engine close). */
void mpolicy_cache_free(kith_engine *e);

#endif
