/* Operations endpoints: liveness, readiness, metrics, the OpenAPI document. */
#include <string.h>

#include "http.h"
#include "kith/ca.h"
#include "metrics.h"

int h_livez(kith_req *r)
{
    http_json(r, 200, json_pack("{s:s}", "status", "ok"));
    return 0;
}

int h_readyz(kith_req *r)
{
    apply_stats st;
    apply_get_stats(r->e->apply, &st);
    http_json(r, 200, json_pack("{s:s, s:I}", "status", "ready", "applyQueue",
                                (json_int_t)st.queued_weight));
    return 0;
}

int h_metrics(kith_req *r)
{
    kith_engine *e = r->e;
    kith_buf *o = &r->raw;
    metrics_render_http(o);
    apply_stats st;
    apply_get_stats(e->apply, &st);
#define COUNTER(name, help, v)                                                                     \
    kith_buf_printf(o, "# HELP " name " " help "\n# TYPE " name " counter\n" name " %llu\n",        \
                    (unsigned long long)(v))
#define GAUGE(name, help, v)                                                                       \
    kith_buf_printf(o, "# HELP " name " " help "\n# TYPE " name " gauge\n" name " %llu\n",          \
                    (unsigned long long)(v))
    COUNTER("kith_records_ingested_total", "Profile records applied.", atomic_load(&e->m.records_ingested));
    COUNTER("kith_events_ingested_total", "Experience events applied.", atomic_load(&e->m.events_ingested));
    COUNTER("kith_events_duplicate_total", "Events acknowledged as resends of a stored (dataset, _id).",
            atomic_load(&e->m.events_duplicate));
    kith_buf_puts(o, "# HELP kith_messages_rejected_total Messages rejected, by reason.\n"
                     "# TYPE kith_messages_rejected_total counter\n");
    kith_buf_printf(o, "kith_messages_rejected_total{reason=\"validation\"} %llu\n",
                    (unsigned long long)atomic_load(&e->m.rejected_validation));
    kith_buf_printf(o, "kith_messages_rejected_total{reason=\"limit\"} %llu\n",
                    (unsigned long long)atomic_load(&e->m.rejected_limit));
    kith_buf_printf(o, "kith_messages_rejected_total{reason=\"unknown\"} %llu\n",
                    (unsigned long long)atomic_load(&e->m.rejected_unknown));
    COUNTER("kith_identity_links_total", "Identity edges created.", atomic_load(&e->m.links_created));
    COUNTER("kith_cluster_merges_total", "Cluster merges.", atomic_load(&e->m.clusters_merged));
    COUNTER("kith_identity_links_refused_total",
            "Identity links the linking rules removed (a unique namespace twice in a graph, or an "
            "eviction at the graph limit); unlinks by API are not counted.",
            atomic_load(&e->m.links_refused));
    COUNTER("kith_union_views_computed_total", "Union views recomputed.", atomic_load(&e->m.unions_computed));
    COUNTER("kith_profile_read_time_merges_total",
            "Profile lookups merged at read time (a policy other than the materialised one, or a view "
            "not yet re-materialised after a merge policy change).",
            atomic_load(&e->m.read_time_merges));
    COUNTER("kith_views_rematerialised_total",
            "Union views recomputed because the sandbox's default merge policy changed.",
            atomic_load(&e->m.views_rematerialised));
    GAUGE("kith_views_remat_pending", "Sandboxes whose union views are being re-materialised.",
          atomic_load(&e->m.remat_pending));
    COUNTER("kith_apply_groups_total", "Groups written by the apply thread.", st.groups);
    COUNTER("kith_wal_syncs_total", "WAL fsyncs (each acknowledges every group written before it).", st.syncs);
    COUNTER("kith_apply_ops_total", "Operations applied.", st.ops);
    GAUGE("kith_apply_queue_depth", "Messages waiting for the apply thread.", st.queued_weight);
    kith_buf_printf(o, "# HELP kith_commit_seconds WAL sync time.\n"
                       "# TYPE kith_commit_seconds summary\nkith_commit_seconds_sum %.6f\n"
                       "kith_commit_seconds_count %llu\n",
                    (double)st.commit_ns_total / 1e9, (unsigned long long)st.syncs);
    kith_buf_printf(o, "# HELP kith_apply_write_seconds Time writing group batches.\n"
                       "# TYPE kith_apply_write_seconds counter\nkith_apply_write_seconds %.6f\n",
                    (double)st.write_ns_total / 1e9);
    GAUGE("kith_commit_seconds_max_ns", "Longest group commit in ns.", st.commit_ns_max);
    ca_stats cs; /* computed attributes (src/ca/) */
    ca_get_stats(e, &cs);
    COUNTER("kith_ca_attribute_updates_total", "Computed attribute states an event fed.", cs.events_matched);
    COUNTER("kith_ca_recomputations_total", "Profiles whose computed attributes were recomputed from their events.",
            cs.recomputes);
    COUNTER("kith_ca_backfill_events_total", "Stored events read by computed attribute backfills.", cs.backfill_events);
    kith_buf_printf(o, "# HELP kith_ca_update_cpu_seconds Writer CPU time updating computed attributes on events.\n"
                       "# TYPE kith_ca_update_cpu_seconds counter\nkith_ca_update_cpu_seconds %.6f\n",
                    (double)cs.note_ns / 1e9);
    identity_stats is; /* the writer's identity index (src/identity/cache.c) and the identity log */
    identity_index_stats(e, &is);
    GAUGE("kith_identity_cache_entries", "Keys in the writer's identity graph cache (after the last group).",
          is.cache_entries);
    GAUGE("kith_identity_cache_bytes", "Bytes held by the writer's identity graph cache (entries and slots).",
          is.cache_bytes);
    COUNTER("kith_identity_cache_clears_total", "Times the identity graph cache was dropped because it was full.",
            is.cache_clears);
    COUNTER("kith_identity_log_records_total", "Identity log records written (one per group that changed the graph).",
            is.log_records);
    COUNTER("kith_identity_log_bytes_total", "Bytes of identity graph writes logged.", is.log_bytes);
    GAUGE("kith_identity_log_replayed", "Identity log records materialised at start-up (left by a crash).",
          is.log_replayed);
    GAUGE("kith_profiles_estimate", "Materialised union views (RocksDB estimate).",
          store_estimate_keys(e->store, STORE_CF_PROFILE));
    GAUGE("kith_clusters_estimate", "Identity clusters (RocksDB estimate).",
          store_estimate_keys(e->store, STORE_CF_CLUSTER));
    GAUGE("kith_identities_estimate", "Identities (RocksDB estimate).",
          store_estimate_keys(e->store, STORE_CF_IDENT));
    r->status = 200;
    r->ctype = "text/plain; version=0.0.4";
    return 0;
}
