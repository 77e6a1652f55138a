/* kith engine: the state one kithd process owns — store, catalog, apply thread, limits, counters — and
 * the data-plane operations that run on the apply thread (identity linking, fragments, events, union
 * views) or on any thread (reads). The HTTP layer and the CLI-less tools use only this header. */
#ifndef KITH_ENGINE_H
#define KITH_ENGINE_H

#include <jansson.h>
#include <stdatomic.h>

#include "kith/apply.h"
#include "kith/catalog.h"
#include "kith/store.h"

typedef struct kith_limits {
    size_t body_max;        /* streaming request body (1 MiB) */
    size_t file_max;        /* batch file (256 MiB) */
    int json_depth;         /* 64 */
    int max_identities;     /* per record (20) */
    int max_identity_len;   /* bytes (1024) */
    size_t record_max;      /* serialized profile record (100 KB) */
    size_t event_max;       /* serialized event (10 KB) */
    size_t batch_messages;  /* messages per /collection/batch request (5000) */
    int graph_max;          /* identities per cluster (50) */
    size_t queue_max;       /* messages waiting for the apply thread (200000) */
    size_t cache_bytes;     /* RocksDB block cache (0: 1 GiB) */
    size_t ident_cache_bytes; /* the writer's identity graph cache (0: 2 GiB) */
    int writer_nice;          /* the writer's and syncer's nice above the process's (5): reads preempt them */
} kith_limits;
extern const kith_limits KITH_LIMITS_DEFAULT;

typedef struct kith_metrics {
    atomic_ullong records_ingested, events_ingested, events_duplicate, messages_rejected;
    atomic_ullong rejected_validation, rejected_limit, rejected_unknown;
    atomic_ullong links_created, clusters_merged, links_refused;
    atomic_ullong unions_computed;
    atomic_ullong read_time_merges;   /* profile lookups merged at read time (policy or stale view) */
    atomic_ullong views_rematerialised; /* views recomputed by the re-materialisation thread */
    atomic_ullong remat_pending;       /* sandboxes whose views are being re-materialised */
} kith_metrics;

typedef struct kith_engine kith_engine;

struct kith_engine {
    kith_store *store;
    kith_catalog *cat;
    kith_apply *apply;
    kith_limits lim;
    char data_dir[4096];
    kith_metrics m;
    struct engine_dirty *dirty; /* apply thread: clusters whose union view must be recomputed */
    int64_t last_stamp;         /* apply thread: last fragment write stamp (µs, increasing) */
    struct ident_state *ident;  /* identity graph: linking rules, cluster-change subscribers */
    struct mpolicy_cache *_Atomic mpol; /* merge policies (src/profile/mergepolicy.c), loaded lazily */
    struct segsvc *segsvc; /* segment service (src/segment/svc_*.c, kith/segsvc.h) */
    struct ca_svc *ca;     /* computed attributes (src/ca/, kith/ca.h) */
    struct ingest_state *ingest; /* apply thread: dedup keys in flight (src/ingest/ingest.c) */
    struct recent_buf *recent; /* apply thread: events whose blind appends may be unwritten (kith/recent.h) */
    uint64_t epoch;        /* differs at every engine_open (dedup entries name the run they are of) */
    struct profile_remat *remat; /* re-materialisation of views after a policy change (remat.c) */
};

/* Opens the store in data_dir, loads the catalog, creates the prod sandbox and the bootstrap admin key
 * on a new data dir (admin_key: the secret to use, or NULL to generate one into DATA_DIR/admin.key and
 * print it), starts the apply thread. Returns 0 or an error with *errmsg (owned). */
int engine_open(const char *data_dir, const kith_limits *lim, const char *admin_key, bool sync,
                kith_engine **out, char **errmsg);
void engine_close(kith_engine *e);

/* --- identities (identity/) --- */

#define KITH_XID_MAX 1500
typedef struct ident_in {
    uint32_t ns;
    int type;       /* enum ns_type */
    bool primary;
    bool linkable;  /* false for non-people namespaces and blocked junk values */
    const char *value;
    size_t len;
} ident_in;

typedef struct cluster_member {
    uint64_t id;
    uint32_t ns;
    char *value; /* owned by the cluster_members */
    size_t len;
} cluster_member;

typedef struct cluster_members {
    uint64_t cluster, version;
    size_t n;
    cluster_member *v;
} cluster_members;
void cluster_members_free(cluster_members *m);

/* Apply thread: resolves (creating) every identity and, when link is set, links the linkable ones
 * (not blocked by the sandbox's linking rules) into one cluster under the linking rules: unique
 * namespaces (the identity optimisation algorithm drops the older conflicting links) and the graph
 * limit (maxIdentities; the oldest cookie, then device, then person identity is evicted first).
 * record_id (borrowed, may be NULL) is kept as the provenance of new edges. ids_out[i] receives the
 * identity id of ids[i]; *cluster_out the cluster of the primary one. Marks changed clusters for union
 * recomputation and for the group's cluster-change event. */
int identity_apply(kith_engine *e, store_batch *b, uint32_t sandbox, const ident_in *ids, int n,
                   bool link, const char *dataset, const char *record_id, int64_t now,
                   uint64_t *ids_out, uint64_t *cluster_out);
/* Any thread: the index of the identity an event is stored under: the one with the highest priority
 * when the sandbox's linking rules name a priority, else primary (AEP, identity settings). */
int identity_event_primary(kith_engine *e, uint32_t sandbox, const ident_in *ids, int n, int primary);

/* Linking rules of a sandbox (GET/PUT /data/core/identity/config/linking-rules). */
/* Any thread: the rules document (returns owned json). */
json_t *identity_rules_get(kith_engine *e, uint32_t sandbox);
/* Apply thread: validates doc (borrowed) and stores it in the meta CF; it applies to data applied
 * after it. 0, or KITH_EINVAL with {path, message} items appended to errors (nothing changes). */
int identity_rules_put(kith_engine *e, store_batch *b, uint32_t sandbox, json_t *doc, json_t *errors);

/* Apply thread: unlink. Removes the edge between two identities, or every edge of one identity; the
 * cluster splits where it must and the removal is kept for explain. KITH_ENOTFOUND when the identity
 * (or the edge) does not exist. */
int identity_unlink_edge(kith_engine *e, store_batch *b, uint32_t sandbox, uint32_t ns1,
                         const char *v1, size_t l1, uint32_t ns2, const char *v2, size_t l2);
int identity_unlink_identity(kith_engine *e, store_batch *b, uint32_t sandbox, uint32_t ns,
                             const char *v, size_t len);
/* Any thread: {"clusterId", "members", "edges", "removedLinks"} of the identity's cluster with
 * provenance (returns owned json), or NULL with *err (KITH_ENOTFOUND, KITH_EIO). */
json_t *identity_explain(kith_engine *e, uint32_t sandbox, uint32_t ns, const char *v, size_t len,
                         int *err);
/* Any thread: the other members of the identity's cluster in namespace target_ns (every namespace when
 * target_ns < 0): [{"nsid", "id", "lastAssociationTime" (ms: the member's newest link)}] (owned), or NULL
 * with *err (KITH_ENOTFOUND, KITH_EIO). */
json_t *identity_mapping(kith_engine *e, uint32_t sandbox, uint32_t ns, const char *v, size_t len,
                         int64_t target_ns, int *err);
/* Any thread: [{"clusterId", "cRecordedTS"}] newest first (returns owned json), or NULL with *err. */
json_t *identity_history(kith_engine *e, uint32_t sandbox, uint32_t ns, const char *v, size_t len,
                         int *err);
/* The public cluster id ("clusterId") of a cluster: a UUID-shaped string (out: 37 bytes). */
void identity_cluster_uuid(uint32_t sandbox, uint64_t cluster, char *out);

/* Cluster-change events: every change of a cluster's membership (merge, split, eviction, unlink) is
 * published once per cluster per group, on the apply thread at the end of the group, after the union
 * views were recomputed and before the commit (subscribers may write into b). */
enum cluster_change_reason {
    CLUSTER_MERGED = 1,
    CLUSTER_SPLIT = 2,
    CLUSTER_EVICTED = 4,
    CLUSTER_UNLINKED = 8,
};
typedef struct cluster_change {
    uint32_t sandbox;
    uint64_t cluster;
    unsigned reasons; /* enum cluster_change_reason bits */
    bool gone;        /* the cluster no longer exists (merged into another one) */
} cluster_change;
/* v borrowed for the call. A non-zero return fails the group (nothing of it is written). */
typedef int (*cluster_change_fn)(void *arg, store_batch *b, const cluster_change *v, size_t n);
/* Registers fn (before data flows, or on the apply thread); at most 16 subscribers. */
void engine_on_cluster_change(kith_engine *e, cluster_change_fn fn, void *arg);
/* Apply thread, once per group after profile_flush_dirty: publishes the group's changes. */
int identity_flush_group(kith_engine *e, store_batch *b);
/* engine_close: frees the identity module's state. */
void identity_state_free(kith_engine *e);
/* Apply thread: forget cached identities and edges (after a rollback, a failed group, a range delete). */
void identity_cache_reset(kith_engine *e);
/* Apply thread, once, with the apply thread's batch: the identity module follows its savepoints, so
 * that a rolled-back operation leaves no change event and no cached key behind. */
void identity_attach(kith_engine *e, store_batch *b);
/* The writer's cached identity → cluster (apply thread, or while it is idle): KITH_ENOTFOUND when the
 * cache does not hold the identity. */
int identity_writer_lookup(kith_engine *e, uint32_t sandbox, uint32_t ns, const char *value, size_t len,
                           uint64_t *id_out, uint64_t *cluster_out);
/* The writer cache's size (apply thread, or while it is idle): keys held, bytes, clears when full. */
void identity_cache_stats(kith_engine *e, size_t *entries, size_t *bytes, uint64_t *clears);
/* Any thread: the identity index's size for /metrics — the writer cache after the last group (keys,
 * bytes, clears when full) and the identity log (records and bytes written since start, records
 * materialised from it at start-up). */
typedef struct identity_stats {
    size_t cache_entries, cache_bytes;
    uint64_t cache_clears, log_records, log_bytes, log_replayed;
} identity_stats;
void identity_index_stats(kith_engine *e, identity_stats *out);
/* engine_open, before the apply thread starts: writes the graph keys of every identity log record a
 * crash left behind (a group committed, its blind part not written), in order. */
int identity_log_replay(kith_engine *e, size_t *replayed);
/* Syncer thread (apply_set_blind_fill): the graph keys of group `group` into its blind part. */
void identity_blind_fill(void *arg, uint64_t group, bool ok, store_blind **bl);
/* Apply thread: a graph key (STORE_CF_IDENT/NODE/CLUSTER) as the writer sees it (its cache, the
 * group's own writes, then the store once earlier groups' writes landed). Same returns as store_get. */
int identity_graph_get(kith_engine *e, store_batch *b, int cf, const void *key, size_t klen,
                       kith_buf *val);
/* Apply thread: identity → (id, cluster) as the writer sees it. */
int identity_get(kith_engine *e, store_batch *b, uint32_t sandbox, uint32_t ns, const char *value,
                 size_t len, uint64_t *id_out, uint64_t *cluster_out);
/* Any thread: committed lookups. Return 0, KITH_ENOTFOUND or KITH_EIO. */
int identity_lookup(kith_engine *e, uint32_t sandbox, uint32_t ns, const char *value, size_t len,
                    uint64_t *id_out, uint64_t *cluster_out);
int identity_members(kith_engine *e, store_batch *b, uint32_t sandbox, uint64_t cluster,
                     cluster_members *out);
/* The members of cluster from its cluster CF value (val[0..len), as a scan of that CF reads it):
 * 0 or KITH_EIO (then *out holds nothing to free). */
int identity_members_decode(const void *val, size_t len, uint64_t cluster, cluster_members *out);
/* XID: an opaque, stable, URL-safe string for (namespace, value); reversible. */
void identity_xid(uint32_t ns, const char *value, size_t len, char *out, size_t cap);
int identity_xid_parse(const char *xid, uint32_t *ns, char *value, size_t cap, size_t *len);

/* --- profiles (profile/) --- */

/* Apply thread: stores the record fragment (dataset, primary identity), replacing the previous one. */
int profile_put_fragment(kith_engine *e, store_batch *b, uint32_t sandbox, uint64_t identity,
                         const char *dataset, int64_t order_ts, int64_t received, const char *json,
                         size_t len, uint64_t cluster);
/* Apply thread: appends an event under its primary identity. */
/* The event CF key of an event: sandbox, identity, timestamp + 2^63, event id. */
void profile_event_key(store_key *k, uint32_t sandbox, uint64_t identity, int64_t ts,
                       const char *event_id);
int profile_put_event(kith_engine *e, store_batch *b, uint32_t sandbox, uint64_t identity,
                      const char *dataset, int64_t ts, const char *event_id, int64_t received,
                      const char *json, size_t len);
/* Apply thread: marks a cluster's union view for recomputation at the end of the group. */
void profile_mark_dirty(kith_engine *e, uint32_t sandbox, uint64_t cluster);
/* Apply thread, once per group: recomputes every dirty cluster's union view. */
int profile_flush_dirty(kith_engine *e, store_batch *b);
/* At engine close: frees the profile module's state (dirty set, merge policy cache). */
void profile_dirty_free(kith_engine *e);
/* Apply thread: forget the materialised view of a cluster that no longer exists. */
void profile_drop_view(kith_engine *e, store_batch *b, uint32_t sandbox, uint64_t cluster);

/* Apply thread: deletes every record fragment and event of the cluster's identities (the identity
 * graph stays); the union view becomes empty. *deleted counts the keys removed. */
int profile_delete(kith_engine *e, store_batch *b, uint32_t sandbox, uint64_t cluster, size_t *deleted);

/* Apply thread: deletes the record fragments and events stored under one identity only (a delete
 * under a merge policy whose identityGraph is "none"); the cluster's view is recomputed. */
int profile_delete_identity(kith_engine *e, store_batch *b, uint32_t sandbox, uint64_t identity,
                            uint64_t cluster, size_t *deleted);

/* A merge policy as reads use it (see src/profile/mergepolicy.h for the stored documents). The
 * union view is materialised under the sandbox's default policy (profile_materialised_policy); a
 * policy with another signature merges at read time. */
enum { MP_TIMESTAMP_ORDERED = 0, MP_DATASET_PRECEDENCE = 1 };
enum { MP_GRAPH_PDG = 0, MP_GRAPH_NONE = 1 };
typedef struct merge_policy {
    char id[64];   /* "" for kith's system default (no stored default for the sandbox) */
    int attr;      /* MP_TIMESTAMP_ORDERED, MP_DATASET_PRECEDENCE */
    int graph;     /* MP_GRAPH_PDG, MP_GRAPH_NONE */
    size_t norder; /* dataSetPrecedence: datasets, highest priority first */
    char (*order)[KITH_ID_LEN + 1]; /* owned; merge_policy_clear frees it */
    bool read_time; /* force the read-time merge even for {timestampOrdered, pdg} (tests, bench) */
} merge_policy;
void merge_policy_clear(merge_policy *p);
/* Which stored view answers for a policy: 0 for {timestampOrdered, pdg}; a hash of the dataset order
 * for {dataSetPrecedence, pdg} (never 0 nor PROFILE_SIG_NONE); PROFILE_SIG_NONE for identityGraph
 * none or read_time (merged at read time only). NULL: 0. */
#define PROFILE_SIG_NONE UINT64_MAX
uint64_t merge_policy_signature(const merge_policy *p);
/* Any thread: the policy the sandbox's union views are materialised with: its default policy when
 * that merges the whole cluster (identityGraph pdg), else {timestampOrdered, pdg}. A stored view
 * carries the signature it was merged with ("mp", absent for 0); a view whose signature differs
 * from the reader's policy is stale for it and the reader merges at read time. */
void profile_materialised_policy(kith_engine *e, uint32_t sandbox, merge_policy *out);
/* The signature a stored view (parsed) was merged under; a reader whose policy signature differs
 * merges at read time. */
uint64_t profile_view_signature(const json_t *view);
/* Apply thread: the sandbox's materialised policy changed (a default moved, the default's content
 * changed, a dataset left its order): records it durably in b and has the re-materialisation thread
 * recompute every view of the sandbox whose signature differs (src/profile/remat.c). */
void profile_remat_request(kith_engine *e, store_batch *b, uint32_t sandbox);
/* Engine lifecycle: start (resumes requests recorded before a restart) / stop. */
void profile_remat_start(kith_engine *e);
void profile_remat_stop(kith_engine *e);
/* Any thread: the policy to read with. id NULL or "" → the sandbox's default policy for
 * _xdm.context.profile, or kith's system default {timestampOrdered, pdg} when none is stored.
 * 0, KITH_ENOTFOUND (no such policy), or KITH_EINVAL (the policy is for another class). */
int profile_policy_resolve(kith_engine *e, uint32_t sandbox, const char *id, merge_policy *out);

/* Any thread: the profile response object for an identity, keyed by XID as Profile Access returns it
 * (returns owned json), or NULL with *err = KITH_ENOTFOUND / KITH_EIO. fields: NULL or comma list.
 * profile_lookup reads with the sandbox default; policy NULL means the same. */
json_t *profile_lookup(kith_engine *e, uint32_t sandbox, uint32_t ns, const char *value, size_t len,
                       const char *fields, int *err);
json_t *profile_lookup_policy(kith_engine *e, uint32_t sandbox, uint32_t ns, const char *value,
                              size_t len, const char *fields, const merge_policy *policy, int *err);
/* The same response as text, byte for byte what profile_lookup_policy's tree dumps to, appended to
 * out without building a tree: the materialised view's entity and sources are copied as stored.
 * For a policy a stored view may answer (profile_policy_materialised) and no fields projection;
 * when the stored view was merged under another signature it merges at read time and dumps that.
 * 0, KITH_ENOTFOUND or KITH_EIO. */
bool profile_policy_materialised(const merge_policy *p);
int profile_lookup_text(kith_engine *e, uint32_t sandbox, uint32_t ns, const char *value, size_t len,
                        const merge_policy *policy, kith_buf *out);

/* Apply thread (b: the group's batch) or any thread (b NULL: committed data): the view of the given
 * identities (borrowed) merged now under policy (borrowed), as profile_lookup_policy's read-time
 * path builds it: {"entity", "sources", "owners", "lastModifiedAt"} (owned). Streaming segments
 * with a merge policy other than the materialised one read their profile through it. */
json_t *profile_view_members(kith_engine *e, store_batch *b, uint32_t sandbox, const uint64_t *ids,
                             size_t n, const merge_policy *policy);

/* Segment service hooks (src/segment/svc_stream.c; kith/segsvc.h). Apply thread: a record or an
 * event of cluster was applied (events: the identity stored under, the dataset, timestamp, id,
 * JSON). Any thread:
 * {"ups": {segmentId: {status, lastQualificationTime}}} of a cluster (owned), or NULL. */
void segsvc_note_apply(kith_engine *e, uint32_t sb, uint64_t cluster, uint64_t identity,
                       const char *dataset, bool is_event, int64_t ts, const char *event_id,
                       const char *json, size_t len);
json_t *segsvc_membership(kith_engine *e, uint32_t sb, uint64_t cluster);
/* Apply thread, in an exclusive operation (a profile or dataset delete): data of cluster was
 * deleted in this batch; its streaming segments are re-evaluated at the end of the group over what
 * the batch leaves, so the profile exits the segments it no longer qualifies for. */
void segsvc_note_delete(kith_engine *e, uint32_t sb, uint64_t cluster);

/* Event property filter "path op value" (op: = != < <= > >=). */
enum { EVF_EQ, EVF_NE, EVF_LT, EVF_LE, EVF_GT, EVF_GE };
typedef struct event_filter {
    char path[256];
    int op;
    char value[256];
} event_filter;
#define EVENT_FILTERS_MAX 3
/* Parses one filter; 0 or KITH_EINVAL. */
int profile_event_filter_parse(const char *s, event_filter *out);

typedef struct event_query {
    int64_t start_ms, end_ms; /* [start, end) ; INT64_MIN / INT64_MAX when open */
    size_t limit;
    bool descending;
    const char *cursor;           /* from _page.next, or NULL */
    const merge_policy *policy;   /* NULL: the sandbox default (borrowed) */
    const event_filter *filters;  /* borrowed, nfilters ≤ EVENT_FILTERS_MAX */
    size_t nfilters;
    const char *fields;           /* NULL or comma list projecting each event */
} event_query;
/* Any thread: the events of the identity's cluster, Profile Access shape (owned json), or NULL + *err. */
json_t *profile_events(kith_engine *e, uint32_t sandbox, uint32_t ns, const char *value, size_t len,
                       const event_query *q, int *err);

#endif
