/* Preview and estimate of an unsaved PQL expression (POST /preview, GET /preview/{id},
 * GET /estimate/{id}): the expression is evaluated over the sandbox's profiles — every profile when
 * the sandbox holds at most PREVIEW_FULL_SCAN of them (exact), else the first PREVIEW_SAMPLE in key
 * order, a sample spread over the cluster-id space (estimated) — on committed data, on the calling
 * thread, with its own evaluator. Results are kept in memory (at most PREVIEW_KEEP, oldest dropped). */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "kith/kjson.h"
#include "svc_int.h"

#define PREVIEW_FULL_SCAN 100000
#define PREVIEW_SAMPLE 100000
#define PREVIEW_RESULTS 100 /* sample profiles listed by GET /preview */
#define PREVIEW_KEEP 64

typedef struct preview {
    char id[33];
    uint32_t sb;
    json_t *preview, *estimate; /* owned answers */
} preview;

static pthread_mutex_t mu = PTHREAD_MUTEX_INITIALIZER;
static preview *kept[PREVIEW_KEEP];
static size_t nkept;

struct inseg {
    kith_engine *e;
    uint32_t sb;
    uint64_t cluster;
};

static bool in_segment(void *arg, const char *segment_id)
{
    struct inseg *c = arg;
    json_t *m = segsvc_membership(c->e, c->sb, c->cluster);
    const char *st = json_string_value(
        json_object_get(json_object_get(json_object_get(m, "ups"), segment_id), "status"));
    bool in = st && (strcmp(st, "realized") == 0 || strcmp(st, "existing") == 0);
    json_decref(m);
    return in;
}

int segsvc_preview(kith_engine *e, uint32_t sb, const char *text, int64_t now, char *id_out,
                   pql_error *err)
{
    pql_program *prog = NULL;
    int rc = segsvc_compile(e, sb, text, &prog, err);
    if (rc) return rc;
    bool events = pql_program_deps(prog)->reads_events;
    pql_evaluator *ev = pql_evaluator_new(NULL);
    uint64_t total = 0, read = 0, matched = 0;
    uint8_t prefix[4];
    kith_put_be32(prefix, sb);
    /* Count the sandbox's profiles (clusters: a profile may hold only events), then evaluate the
     * first sample of them. */
    store_iter *it = store_iter_new(e->store, NULL, STORE_CF_CLUSTER, prefix, 4);
    for (; store_iter_valid(it); store_iter_next(it)) total++;
    store_iter_free(it);
    bool exact = total <= PREVIEW_FULL_SCAN;
    uint64_t limit = exact ? total : PREVIEW_SAMPLE;
    json_t *results = json_array();
    json_t *by_ns = json_object();
    it = store_iter_new(e->store, NULL, STORE_CF_CLUSTER, prefix, 4);
    for (; store_iter_valid(it) && read < limit; store_iter_next(it)) {
        size_t kl;
        const uint8_t *k = store_iter_key(it, &kl);
        if (kl != 12) continue;
        uint64_t cluster = kith_get_be64(k + 4);
        svc_profile p;
        if (svc_profile_load(e, sb, cluster,
                             SVC_LOAD_MEMBERS | SVC_LOAD_COMPUTED | (events ? SVC_LOAD_EVENTS : 0),
                             INT64_MIN, now, NULL, &p) != 0)
            continue;
        const cluster_members *mp = &p.m;
        struct inseg ic = {e, sb, cluster};
        pql_input in = {.profile = p.entity, .events = p.events, .now_ms = now,
                        .in_segment = in_segment, .arg = &ic};
        pql_result res;
        read++;
        if (pql_eval(ev, prog, &in, &res) == 0 && res.match) {
            matched++;
            if (mp->n) {
                char xid[KITH_XID_MAX], nsid[16];
                identity_xid(mp->v[0].ns, mp->v[0].value, mp->v[0].len, xid, sizeof xid);
                snprintf(nsid, sizeof nsid, "%u", mp->v[0].ns);
                json_object_set_new(by_ns, nsid, json_integer(json_integer_value(json_object_get(by_ns, nsid)) + 1));
                if (json_array_size(results) < PREVIEW_RESULTS) {
                    json_t *ids = json_object();
                    catalog_rdlock(e->cat);
                    for (size_t i = 0; i < mp->n; i++) {
                        const cat_namespace *ns = catalog_namespace_by_id(e->cat, sb, mp->v[i].ns);
                        const char *code = ns ? ns->code : "unknown";
                        json_t *arr = json_object_get(ids, code);
                        if (!arr) json_object_set_new(ids, code, arr = json_array());
                        json_array_append_new(arr, json_pack("{s:s%}", "id", mp->v[i].value, mp->v[i].len));
                    }
                    catalog_unlock(e->cat);
                    char href[KITH_XID_MAX + 64];
                    snprintf(href, sizeof href, "/data/core/ups/access/entities?entityId=%s", xid);
                    json_array_append_new(results, json_pack("{s:{s:s, s:o}}", xid, "_href", href,
                                                             "endCustomerIds", ids));
                }
            }
        }
        svc_profile_clear(&p);
    }
    store_iter_free(it);
    pql_evaluator_free(ev);
    pql_program_free(prog);

    uint8_t rnd[16];
    kith_random(rnd, sizeof rnd);
    char id[33];
    kith_hex(rnd, sizeof rnd, id);
    double estimate = read ? (double)matched * (double)total / (double)read : 0;
    json_t *dist = json_array();
    const char *k;
    json_t *v;
    json_object_foreach(by_ns, k, v) json_array_append_new(dist, json_pack("{s:s, s:I}", "namespaceId", k,
                                                                            "profilesMatchedSoFar", json_integer_value(v)));
    json_decref(by_ns);
    char link[96];
    snprintf(link, sizeof link, "/data/core/ups/preview/%s", id);
    preview *p = kith_xcalloc(1, sizeof *p);
    snprintf(p->id, sizeof p->id, "%s", id);
    p->sb = sb;
    p->preview = json_pack("{s:o, s:s, s:{s:i, s:I}, s:{s:s, s:s}, s:b}", "results", results, "state",
                           "RESULT_READY", "page", "offset", 0, "size", (json_int_t)json_array_size(results),
                           "links", "next", "", "prev", "", "kith:exact", exact);
    p->estimate = json_pack("{s:I, s:I, s:o, s:s, s:I, s:I, s:I, s:f, s:s, s:b, s:{s:s}}",
                            "estimatedSize", (json_int_t)(estimate + 0.5), "numRowsToRead", (json_int_t)limit,
                            "estimatedNamespaceDistribution", dist, "state", "RESULT_READY",
                            "profilesReadSoFar", (json_int_t)read, "profilesMatchedSoFar", (json_int_t)matched,
                            "totalRows", (json_int_t)total, "standardError",
                            exact || !read ? 0.0 : estimate / (double)read, "confidenceInterval", "95%",
                            "kith:exact", exact, "_links", "preview", link);
    pthread_mutex_lock(&mu);
    if (nkept == PREVIEW_KEEP) {
        json_decref(kept[0]->preview);
        json_decref(kept[0]->estimate);
        free(kept[0]);
        memmove(kept, kept + 1, (PREVIEW_KEEP - 1) * sizeof kept[0]);
        nkept--;
    }
    kept[nkept++] = p;
    pthread_mutex_unlock(&mu);
    memcpy(id_out, id, 33);
    return 0;
}

json_t *segsvc_preview_get(uint32_t sb, const char *id, bool estimate)
{
    json_t *out = NULL;
    pthread_mutex_lock(&mu);
    for (size_t i = 0; i < nkept; i++)
        if (kept[i]->sb == sb && strcmp(kept[i]->id, id) == 0)
            out = json_deep_copy(estimate ? kept[i]->estimate : kept[i]->preview);
    pthread_mutex_unlock(&mu);
    return out;
}

void segsvc_preview_free_all(void)
{
    pthread_mutex_lock(&mu);
    for (size_t i = 0; i < nkept; i++) {
        json_decref(kept[i]->preview);
        json_decref(kept[i]->estimate);
        free(kept[i]);
    }
    nkept = 0;
    pthread_mutex_unlock(&mu);
}
