/* kith profiles: record fragments, events, and the materialised union view of a cluster.
 *
 *   frag    [sb][identity id u64][dataset 24]                  → [order ts i64][received i64][entity JSON]
 *   event   [sb][identity id u64][ts u64 (ms + 2^63)][event id] → [received i64][dataset 24][event JSON]
 *   profile [sb][cluster id u64] → {"entity", "sources", "owners", "lastModifiedAt", "mp"?}: the union
 *           view under the sandbox's materialised policy (profile_materialised_policy), "mp" its merge
 *           signature (hex; absent for timestampOrdered); identities come from the cluster.
 */
#include "kith/jalloc.h"
#include <stdlib.h>
#include <string.h>

#include "kith/kjson.h"
#include "kith/engine.h"
#include "mergepolicy.h"

#define TS_BIAS 0x8000000000000000ull

/* A cluster whose union view must be recomputed: identity 0 when anything may have changed (a
 * merge, a split, a delete, a policy change), else the identity whose fragment was stored. */
struct dirty_item {
    uint32_t sb;
    uint64_t cluster, identity;
};
struct engine_dirty {
    struct dirty_item *v;
    size_t n, cap;
    jalloc_arena *arena; /* the recomputation's JSON trees, released after each flush */
};

static void mark_dirty(kith_engine *e, uint32_t sandbox, uint64_t cluster, uint64_t identity);

static void frag_prefix(store_key *k, uint32_t sb, uint64_t identity)
{
    skey_init(k, sb);
    skey_u64(k, identity);
}

int profile_put_fragment(kith_engine *e, store_batch *b, uint32_t sandbox, uint64_t identity,
                         const char *dataset, int64_t order_ts, int64_t received, const char *json,
                         size_t len, uint64_t cluster)
{
    store_key k;
    frag_prefix(&k, sandbox, identity);
    skey_bytes(&k, dataset, KITH_ID_LEN);
    kith_buf v = {0};
    uint8_t h[16];
    /* The second field is the write stamp (µs, strictly increasing on the apply thread): it orders
     * fragments whose ordering timestamps are equal by arrival. */
    int64_t stamp = received * 1000;
    if (stamp <= e->last_stamp) stamp = e->last_stamp + 1;
    e->last_stamp = stamp;
    kith_put_be64(h, (uint64_t)order_ts);
    kith_put_be64(h + 8, (uint64_t)stamp);
    kith_buf_append(&v, h, sizeof h);
    kith_buf_append(&v, json, len);
    store_batch_put(b, STORE_CF_FRAG, k.b, k.n, v.data, v.len);
    kith_buf_free(&v);
    mark_dirty(e, sandbox, cluster, identity);
    return 0;
}

void profile_event_key(store_key *k, uint32_t sandbox, uint64_t identity, int64_t ts,
                       const char *event_id)
{
    frag_prefix(k, sandbox, identity);
    skey_u64(k, (uint64_t)ts + TS_BIAS);
    skey_bytes(k, event_id, strlen(event_id));
}

int profile_put_event(kith_engine *e, store_batch *b, uint32_t sandbox, uint64_t identity,
                      const char *dataset, int64_t ts, const char *event_id, int64_t received,
                      const char *json, size_t len)
{
    store_key k;
    profile_event_key(&k, sandbox, identity, ts, event_id);
    uint8_t h[8 + KITH_ID_LEN];
    kith_put_be64(h, (uint64_t)received);
    memset(h + 8, 0, KITH_ID_LEN);
    memcpy(h + 8, dataset, strnlen(dataset, KITH_ID_LEN));
    store_batch_put_blind2(b, STORE_CF_EVENT, k.b, k.n, h, sizeof h, json, len);
    return 0;
}

static void mark_dirty(kith_engine *e, uint32_t sandbox, uint64_t cluster, uint64_t identity)
{
    if (!e->dirty) e->dirty = kith_xcalloc(1, sizeof *e->dirty);
    struct engine_dirty *d = e->dirty;
    if (d->n && d->v[d->n - 1].sb == sandbox && d->v[d->n - 1].cluster == cluster &&
        d->v[d->n - 1].identity == identity)
        return;
    if (d->n == d->cap) {
        d->cap = d->cap ? d->cap * 2 : 256;
        d->v = kith_xrealloc(d->v, d->cap * sizeof *d->v);
    }
    d->v[d->n++] = (struct dirty_item){sandbox, cluster, identity};
}

void profile_mark_dirty(kith_engine *e, uint32_t sandbox, uint64_t cluster)
{
    mark_dirty(e, sandbox, cluster, 0);
}

void profile_dirty_free(kith_engine *e)
{
    mpolicy_cache_free(e);
    if (!e->dirty) return;
    jalloc_arena_free(e->dirty->arena);
    free(e->dirty->v);
    free(e->dirty);
    e->dirty = NULL;
}

static void profile_key(store_key *k, uint32_t sb, uint64_t cluster)
{
    skey_init(k, sb);
    skey_u64(k, cluster);
}

void profile_drop_view(kith_engine *e, store_batch *b, uint32_t sandbox, uint64_t cluster)
{
    store_key k;
    profile_key(&k, sandbox, cluster);
    store_batch_delete(b, STORE_CF_PROFILE, k.b, k.n);
}

/* dst takes src's leaves: objects merge recursively; arrays and scalars replace. */
static void merge_objects(json_t *dst, json_t *src)
{
    const char *key;
    json_t *v;
    json_object_foreach(src, key, v)
    {
        json_t *cur = json_object_get(dst, key);
        if (json_is_object(v) && json_is_object(cur))
            merge_objects(cur, v);
        else
            json_object_set_new(dst, key, json_deep_copy(v));
    }
}

/* A fragment with its rank (dataSetPrecedence: index of its dataset in the order, lower is
 * stronger; 0 for every fragment under timestampOrdered). */
typedef struct ranked_frag {
    profile_frag f;
    size_t rank;
} ranked_frag;

/* Weakest first: the merge applies fragments in this order and the last one written wins. */
static int ranked_cmp(const void *a, const void *b)
{
    const ranked_frag *x = a, *y = b;
    if (x->rank != y->rank) return x->rank > y->rank ? -1 : 1;
    if (x->f.order != y->f.order) return x->f.order < y->f.order ? -1 : 1;
    if (x->f.stamp != y->f.stamp) return x->f.stamp < y->f.stamp ? -1 : 1;
    return strcmp(x->f.dataset, y->f.dataset);
}

json_t *profile_merge(profile_frag *f, size_t n, const merge_policy *policy)
{
    bool precedence = policy && policy->attr == MP_DATASET_PRECEDENCE;
    ranked_frag *r = kith_xcalloc(n + 1, sizeof *r);
    size_t m = 0;
    for (size_t i = 0; i < n; i++) {
        size_t rank = 0;
        if (precedence) {
            for (rank = 0; rank < policy->norder; rank++)
                if (strcmp(policy->order[rank], f[i].dataset) == 0) break;
            if (rank == policy->norder) { /* not listed: not merged at all */
                json_decref(f[i].entity);
                f[i].entity = NULL;
                continue;
            }
        }
        r[m++] = (ranked_frag){f[i], rank};
    }
    if (m > 1) qsort(r, m, sizeof *r, ranked_cmp);
    json_t *entity = json_object(), *sources = json_array(), *owners = json_array();
    int64_t last = 0;
    for (size_t i = 0; i < m; i++) {
        profile_frag *x = &r[i].f;
        /* identities and memberships come from the cluster and the segment index */
        json_object_del(x->entity, "identityMap");
        json_object_del(x->entity, "identities");
        json_object_del(x->entity, "segmentMembership");
        merge_objects(entity, x->entity);
        bool seen = false;
        size_t j;
        json_t *s;
        json_array_foreach(sources, j, s) if (strcmp(json_string_value(s), x->dataset) == 0) seen =
            true;
        if (!seen) json_array_append_new(sources, json_string(x->dataset));
        json_array_append_new(owners, json_integer((json_int_t)x->owner));
        if (x->stamp / 1000 > last) last = x->stamp / 1000;
        json_decref(x->entity);
    }
    free(r);
    return json_pack("{s:o, s:o, s:o, s:I}", "entity", entity, "sources", sources, "owners", owners,
                     "lastModifiedAt", (json_int_t)last);
}

/* Reads the record fragments stored under each of ids (through b when not NULL). */
static size_t gather_frags(kith_engine *e, store_batch *b, uint32_t sb, const uint64_t *ids,
                           size_t nids, profile_frag **out)
{
    profile_frag *items = NULL;
    size_t n = 0, cap = 0;
    for (size_t i = 0; i < nids; i++) {
        store_key k;
        frag_prefix(&k, sb, ids[i]);
        store_iter *it = store_iter_new(e->store, b, STORE_CF_FRAG, k.b, k.n);
        for (; store_iter_valid(it); store_iter_next(it)) {
            size_t kl, vl;
            const uint8_t *key = store_iter_key(it, &kl);
            const uint8_t *val = store_iter_value(it, &vl);
            if (vl < 16 || kl < k.n + KITH_ID_LEN) continue;
            json_t *ent = kjson_parse((const char *)val + 16, vl - 16, 256, NULL, NULL);
            if (!ent) continue;
            if (n == cap) {
                cap = cap ? cap * 2 : 8;
                items = kith_xrealloc(items, cap * sizeof *items);
            }
            profile_frag *f = &items[n++];
            f->order = (int64_t)kith_get_be64(val);
            f->stamp = (int64_t)kith_get_be64(val + 8);
            f->owner = ids[i];
            memcpy(f->dataset, key + k.n, KITH_ID_LEN);
            f->dataset[KITH_ID_LEN] = 0;
            f->entity = ent;
        }
        store_iter_free(it);
    }
    *out = items;
    return n;
}

/* The view of the given identities under policy, merged now (the read-time path; the materialised
 * view is the same call with every member and policy NULL). */
static json_t *view_merge(kith_engine *e, store_batch *b, uint32_t sb, const uint64_t *ids,
                          size_t nids, const merge_policy *policy)
{
    profile_frag *items = NULL;
    size_t n = gather_frags(e, b, sb, ids, nids, &items);
    json_t *doc = profile_merge(items, n, policy);
    free(items);
    return doc;
}

json_t *profile_view_members(kith_engine *e, store_batch *b, uint32_t sandbox, const uint64_t *ids,
                             size_t n, const merge_policy *policy)
{
    return view_merge(e, b, sandbox, ids, n, policy);
}

static uint64_t *member_ids(const cluster_members *m)
{
    uint64_t *ids = kith_xcalloc(m->n + 1, sizeof *ids);
    for (size_t i = 0; i < m->n; i++)
        ids[i] = m->v[i].id;
    return ids;
}

uint64_t merge_policy_signature(const merge_policy *p)
{
    if (!p) return 0;
    if (p->graph != MP_GRAPH_PDG || p->read_time) return PROFILE_SIG_NONE;
    if (p->attr == MP_TIMESTAMP_ORDERED) return 0;
    uint64_t h = 0xcbf29ce484222325ull; /* FNV-1a over "d" and each dataset id, NUL-terminated */
    h = (h ^ 'd') * 0x100000001b3ull;
    for (size_t i = 0; i < p->norder; i++)
        for (const char *c = p->order[i];; c++) {
            h = (h ^ (uint8_t)*c) * 0x100000001b3ull;
            if (!*c) break;
        }
    return h == 0 || h == PROFILE_SIG_NONE ? 1 : h;
}

void profile_materialised_policy(kith_engine *e, uint32_t sandbox, merge_policy *out)
{
    if (profile_policy_resolve(e, sandbox, NULL, out) != 0 || out->graph != MP_GRAPH_PDG ||
        out->read_time) {
        merge_policy_clear(out);
        memset(out, 0, sizeof *out);
    }
}

uint64_t profile_view_signature(const json_t *view)
{
    const char *mp = json_string_value(json_object_get(view, "mp"));
    return mp ? strtoull(mp, NULL, 16) : 0;
}

typedef struct span {
    const char *p;
    size_t n;
} span;
static bool view_split(const char *s, size_t n, span *entity, span *sources, span *owners,
                       int64_t *last, uint64_t *sig);
static bool owns(span owners, uint64_t id);

/* Recomputes a cluster's union view. put (n_put identities, sorted) lists whose fragments were
 * stored when nothing else may have changed the cluster (full false): then, if the stored view was
 * merged under the same policy, only those identities and the members owning a fragment of that
 * view can contribute, and only they are read — a record of a known person reads one or two
 * identities' fragments instead of one iterator per device and email of the cluster. */
static int compute_union(kith_engine *e, store_batch *b, uint32_t sb, uint64_t cluster,
                         const merge_policy *policy, const uint64_t *put, size_t n_put, bool full)
{
    cluster_members m;
    int rc = identity_members(e, b, sb, cluster, &m);
    if (rc == KITH_ENOTFOUND) {
        profile_drop_view(e, b, sb, cluster);
        return 0;
    }
    if (rc) return rc;
    store_key k;
    profile_key(&k, sb, cluster);
    uint64_t sig = merge_policy_signature(policy);
    uint64_t *ids = member_ids(&m);
    size_t nids = m.n;
    if (!full) {
        kith_buf old = {0};
        int grc = store_batch_get(e->store, b, STORE_CF_PROFILE, k.b, k.n, &old);
        span entity = {0}, sources = {0}, owners = {"[]", 2};
        int64_t last = 0;
        uint64_t old_sig = 0;
        if (grc == KITH_ENOTFOUND ||
            (grc == 0 && view_split(old.data, old.len, &entity, &sources, &owners, &last, &old_sig) &&
             old_sig == sig)) {
            nids = 0;
            for (size_t i = 0; i < m.n; i++) {
                bool keep = owns(owners, m.v[i].id);
                for (size_t j = 0; j < n_put && !keep; j++)
                    keep = put[j] == m.v[i].id;
                if (keep) ids[nids++] = m.v[i].id;
            }
        }
        kith_buf_free(&old);
    }
    json_t *doc = view_merge(e, b, sb, ids, nids, policy);
    free(ids);
    cluster_members_free(&m);
    if (sig) {
        char hex[17];
        snprintf(hex, sizeof hex, "%016llx", (unsigned long long)sig);
        json_object_set_new(doc, "mp", json_string(hex));
    }
    char *s = kith_json_dumps(doc, JSON_COMPACT);
    store_batch_put(b, STORE_CF_PROFILE, k.b, k.n, s, strlen(s));
    free(s);
    json_decref(doc);
    atomic_fetch_add(&e->m.unions_computed, 1);
    return 0;
}

static int dirty_cmp(const void *a, const void *b)
{
    const struct dirty_item *x = a, *y = b;
    if (x->sb != y->sb) return x->sb < y->sb ? -1 : 1;
    if (x->cluster != y->cluster) return x->cluster < y->cluster ? -1 : 1;
    if (x->identity != y->identity) return x->identity < y->identity ? -1 : 1;
    return 0;
}

int profile_flush_dirty(kith_engine *e, store_batch *b)
{
    struct engine_dirty *d = e->dirty;
    if (!d || d->n == 0) return 0;
    qsort(d->v, d->n, sizeof *d->v, dirty_cmp);
    int rc = 0;
    merge_policy mp = {0};
    uint32_t mp_sb = 0;
    bool have = false;
    uint64_t *put = NULL;
    size_t cap = 0;
    for (size_t i = 0; i < d->n && rc == 0;) {
        if (!have || mp_sb != d->v[i].sb) { /* sorted by sandbox: one resolve per sandbox */
            merge_policy_clear(&mp);
            profile_materialised_policy(e, d->v[i].sb, &mp); /* (may load the policy cache) */
            mp_sb = d->v[i].sb;
            have = true;
        }
        size_t j = i, n_put = 0;
        bool full = false;
        for (; j < d->n && d->v[j].sb == d->v[i].sb && d->v[j].cluster == d->v[i].cluster; j++) {
            if (d->v[j].identity == 0) {
                full = true;
                continue;
            }
            if (n_put && put[n_put - 1] == d->v[j].identity) continue;
            if (n_put == cap) {
                cap = cap ? cap * 2 : 16;
                put = kith_xrealloc(put, cap * sizeof *put);
            }
            put[n_put++] = d->v[j].identity;
        }
        /* Every tree of the recomputation (fragments parsed, the merged view) lives in one arena,
         * released at the end: no malloc and free per JSON node on the writer. */
        jalloc_arena_enter(&d->arena);
        rc = compute_union(e, b, d->v[i].sb, d->v[i].cluster, &mp, put, n_put, full);
        jalloc_arena_leave();
        i = j;
    }
    jalloc_arena_free(d->arena);
    d->arena = NULL;
    free(put);
    merge_policy_clear(&mp);
    d->n = 0;
    return rc;
}

/* --- reads --- */

/* Keeps only the listed dotted paths of entity (returns owned). */
static json_t *project_fields(json_t *entity, const char *fields)
{
    json_t *out = json_object();
    char *list = kith_xstrdup(fields), *save = NULL;
    for (char *f = strtok_r(list, ",", &save); f; f = strtok_r(NULL, ",", &save)) {
        while (*f == ' ')
            f++;
        if (!*f) continue;
        json_t *src = entity, *dst = out;
        char *psave = NULL;
        char *path = kith_xstrdup(f);
        char *seg = strtok_r(path, ".", &psave);
        while (seg && src) {
            char *next = strtok_r(NULL, ".", &psave);
            json_t *v = json_object_get(src, seg);
            if (!v) break;
            if (!next) {
                json_object_set(dst, seg, v);
            } else {
                json_t *d2 = json_object_get(dst, seg);
                if (!json_is_object(d2)) {
                    d2 = json_object();
                    json_object_set_new(dst, seg, d2);
                }
                dst = d2;
            }
            src = json_is_object(v) ? v : NULL;
            seg = next;
        }
        free(path);
    }
    free(list);
    return out;
}

/* True when a stored view may answer for policy (it does when its signature matches). */
bool profile_policy_materialised(const merge_policy *p)
{
    return merge_policy_signature(p) != PROFILE_SIG_NONE;
}

/* Keeps only the member with identity id (identityGraph "none"). */
static void members_keep_only(cluster_members *m, uint64_t id)
{
    size_t k = 0;
    for (size_t i = 0; i < m->n; i++) {
        if (m->v[i].id == id)
            m->v[k++] = m->v[i];
        else
            free(m->v[i].value);
    }
    m->n = k;
}

json_t *profile_lookup(kith_engine *e, uint32_t sandbox, uint32_t ns, const char *value, size_t len,
                       const char *fields, int *err)
{
    return profile_lookup_policy(e, sandbox, ns, value, len, fields, NULL, err);
}

json_t *profile_lookup_policy(kith_engine *e, uint32_t sandbox, uint32_t ns, const char *value,
                              size_t len, const char *fields, const merge_policy *policy, int *err)
{
    merge_policy dflt;
    if (!policy) {
        int prc = profile_policy_resolve(e, sandbox, NULL, &dflt);
        if (prc) {
            *err = prc;
            return NULL;
        }
        policy = &dflt;
    } else {
        memset(&dflt, 0, sizeof dflt);
    }
    uint64_t id, cluster;
    int rc = identity_lookup(e, sandbox, ns, value, len, &id, &cluster);
    cluster_members m = {0};
    if (rc == 0) rc = identity_members(e, NULL, sandbox, cluster, &m);
    if (rc) {
        merge_policy_clear(&dflt);
        *err = rc;
        return NULL;
    }
    json_t *view = NULL;
    bool stale = false;
    if (profile_policy_materialised(policy)) {
        store_key k;
        profile_key(&k, sandbox, cluster);
        kith_buf v = {0};
        if (store_get(e->store, STORE_CF_PROFILE, k.b, k.n, &v) == 0)
            view = kjson_parse(v.data, v.len, 256, NULL, NULL);
        kith_buf_free(&v);
        if (view && profile_view_signature(view) != merge_policy_signature(policy)) {
            stale = true; /* merged under another policy (a re-materialisation is under way) */
            json_decref(view);
            view = NULL;
        }
    }
    if (stale || !profile_policy_materialised(policy)) {
        atomic_fetch_add(&e->m.read_time_merges, 1);
        if (policy->graph == MP_GRAPH_NONE) members_keep_only(&m, id);
        uint64_t *ids = member_ids(&m);
        view = view_merge(e, NULL, sandbox, ids, m.n, policy);
        free(ids);
    }
    if (!view)
        view = json_pack("{s:{}, s:[], s:[], s:I}", "entity", "sources", "owners", "lastModifiedAt",
                         (json_int_t)0);
    json_t *entity = json_incref(json_object_get(view, "entity"));
    json_t *owners = json_object_get(view, "owners");
    json_t *identities = json_array(), *idmap = json_object();
    catalog_rdlock(e->cat);
    for (size_t i = 0; i < m.n; i++) {
        const cat_namespace *nsd = catalog_namespace_by_id(e->cat, sandbox, m.v[i].ns);
        const char *code = nsd ? nsd->code : "unknown";
        bool primary = false;
        size_t j;
        json_t *o;
        json_array_foreach(owners, j, o) if ((uint64_t)json_integer_value(o) == m.v[i].id) primary =
            true;
        char xid[KITH_XID_MAX];
        identity_xid(m.v[i].ns, m.v[i].value, m.v[i].len, xid, sizeof xid);
        json_array_append_new(identities,
                              json_pack("{s:s%, s:{s:s}, s:s, s:b}", "id", m.v[i].value, m.v[i].len,
                                        "namespace", "code", code, "xid", xid, "primary", primary));
        json_t *arr = json_object_get(idmap, code);
        if (!arr) {
            arr = json_array();
            json_object_set_new(idmap, code, arr);
        }
        json_array_append_new(
            arr, json_pack("{s:s%, s:b}", "id", m.v[i].value, m.v[i].len, "primary", primary));
    }
    catalog_unlock(e->cat);
    json_object_set_new(entity, "identityMap", idmap);
    json_object_set(entity, "identities", identities);
    json_t *seg = segsvc_membership(e, sandbox, cluster); /* src/segment/svc_stream.c */
    if (seg) json_object_set_new(entity, "segmentMembership", seg);
    if (fields && *fields) {
        json_t *p = project_fields(entity, fields);
        json_decref(entity);
        entity = p;
    }
    char xid[KITH_XID_MAX], ts[40];
    identity_xid(ns, value, len, xid, sizeof xid);
    kith_time_format(json_integer_value(json_object_get(view, "lastModifiedAt")), ts, sizeof ts);
    json_t *prof = json_pack("{s:s, s:O, s:o, s:o, s:s, s:I}", "entityId", xid, "sources",
                             json_object_get(view, "sources"), "identities", identities, "entity",
                             entity, "lastModifiedAt", ts, "clusterVersion", (json_int_t)m.version);
    if (policy->id[0])
        json_object_set_new(prof, "mergePolicy", json_pack("{s:s}", "id", policy->id));
    json_t *out = json_object();
    json_object_set_new(out, xid, prof);
    json_decref(view);
    cluster_members_free(&m);
    merge_policy_clear(&dflt);
    return out;
}

/* --- the text path: a lookup under the materialised policy without building a tree --- */

static const char *skip_ws(const char *p, const char *end)
{
    while (p < end && (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r'))
        p++;
    return p;
}

/* The end of the JSON value starting at p (text kith wrote itself, still bounded by end), or NULL. */
static const char *skip_value(const char *p, const char *end)
{
    int depth = 0;
    do {
        if (p >= end) return NULL;
        char c = *p;
        if (c == '"') {
            for (p++; p < end && *p != '"'; p++)
                if (*p == '\\') p++;
            if (p >= end) return NULL;
            p++;
        } else if (c == '{' || c == '[') {
            depth++, p++;
        } else if (c == '}' || c == ']') {
            if (--depth < 0) return NULL;
            p++;
        } else if (depth == 0) {
            while (p < end && *p != ',' && *p != '}' && *p != ']' && *p != ' ' && *p != '\n' &&
                   *p != '\t' && *p != '\r')
                p++;
            return p;
        } else {
            p++;
        }
    } while (depth > 0);
    return p;
}

/* Splits a stored view {"entity", "sources", "owners", "lastModifiedAt"} into the text of its
 * members. */
static bool view_split(const char *s, size_t n, span *entity, span *sources, span *owners,
                       int64_t *last, uint64_t *sig)
{
    const char *p = skip_ws(s, s + n), *end = s + n;
    if (p >= end || *p++ != '{') return false;
    p = skip_ws(p, end);
    if (p < end && *p == '}') return true;
    for (;;) {
        p = skip_ws(p, end);
        const char *k = p, *ke = skip_value(p, end);
        if (!ke || *k != '"') return false;
        p = skip_ws(ke, end);
        if (p >= end || *p++ != ':') return false;
        p = skip_ws(p, end);
        const char *v = p, *ve = skip_value(p, end);
        if (!ve) return false;
        span val = {v, (size_t)(ve - v)};
        size_t kl = (size_t)(ke - k);
        if (kl == 8 && memcmp(k, "\"entity\"", 8) == 0 && *v == '{')
            *entity = val;
        else if (kl == 9 && memcmp(k, "\"sources\"", 9) == 0 && *v == '[')
            *sources = val;
        else if (kl == 8 && memcmp(k, "\"owners\"", 8) == 0 && *v == '[')
            *owners = val;
        else if (kl == 16 && memcmp(k, "\"lastModifiedAt\"", 16) == 0)
            *last = strtoll(v, NULL, 10);
        else if (kl == 4 && memcmp(k, "\"mp\"", 4) == 0 && *v == '"')
            *sig = strtoull(v + 1, NULL, 16);
        p = skip_ws(ve, end);
        if (p < end && *p == ',') {
            p++;
            continue;
        }
        return p < end && *p == '}';
    }
}

static bool owns(span owners, uint64_t id)
{
    const char *p = owners.p, *end = owners.p + owners.n;
    while (p < end) {
        if (*p >= '0' && *p <= '9') {
            char *q;
            unsigned long long v = strtoull(p, &q, 10);
            if (v == id) return true;
            p = q;
        } else {
            p++;
        }
    }
    return false;
}

int profile_lookup_text(kith_engine *e, uint32_t sandbox, uint32_t ns, const char *value, size_t len,
                        const merge_policy *policy, kith_buf *out)
{
    uint64_t id, cluster;
    int rc = identity_lookup(e, sandbox, ns, value, len, &id, &cluster);
    cluster_members m = {0};
    if (rc == 0) rc = identity_members(e, NULL, sandbox, cluster, &m);
    if (rc) return rc;
    store_key k;
    profile_key(&k, sandbox, cluster);
    kith_buf v = {0};
    span entity = {"{}", 2}, sources = {"[]", 2}, owners = {"[]", 2};
    int64_t last = 0;
    uint64_t sig = 0;
    int grc = store_get(e->store, STORE_CF_PROFILE, k.b, k.n, &v);
    if (grc == 0 && !view_split(v.data, v.len, &entity, &sources, &owners, &last, &sig)) {
        kith_buf_free(&v);
        cluster_members_free(&m);
        return KITH_EIO;
    }
    if (grc == 0 && sig != merge_policy_signature(policy)) {
        /* merged under another policy (a re-materialisation is under way): merge now */
        kith_buf_free(&v);
        cluster_members_free(&m);
        int err = 0;
        json_t *doc = profile_lookup_policy(e, sandbox, ns, value, len, NULL, policy, &err);
        if (!doc) return err;
        kjson_dump(doc, out);
        json_decref(doc);
        return 0;
    }
    char xid[KITH_XID_MAX], mxid[KITH_XID_MAX], ts[40];
    identity_xid(ns, value, len, xid, sizeof xid);
    kith_buf ids = {0}, idmap = {0};
    kith_buf_append(&ids, "[", 1);
    kith_buf_append(&idmap, "{", 1);
    bool *done = kith_xcalloc(m.n + 1, sizeof *done);
    catalog_rdlock(e->cat);
    for (size_t i = 0; i < m.n; i++) {
        const cat_namespace *nsd = catalog_namespace_by_id(e->cat, sandbox, m.v[i].ns);
        const char *code = nsd ? nsd->code : "unknown";
        bool primary = owns(owners, m.v[i].id);
        identity_xid(m.v[i].ns, m.v[i].value, m.v[i].len, mxid, sizeof mxid);
        kith_buf_puts(&ids, i ? ",{\"id\":" : "{\"id\":");
        kjson_dump_string(m.v[i].value, m.v[i].len, &ids);
        kith_buf_puts(&ids, ",\"namespace\":{\"code\":");
        kjson_dump_string(code, strlen(code), &ids);
        kith_buf_puts(&ids, "},\"xid\":");
        kjson_dump_string(mxid, strlen(mxid), &ids);
        kith_buf_puts(&ids, primary ? ",\"primary\":true}" : ",\"primary\":false}");
        if (done[i]) continue;
        /* identityMap: one array per namespace code, codes in order of first appearance */
        if (idmap.len > 1) kith_buf_append(&idmap, ",", 1);
        kjson_dump_string(code, strlen(code), &idmap);
        kith_buf_append(&idmap, ":[", 2);
        for (size_t j = i; j < m.n; j++) {
            const cat_namespace *nj = catalog_namespace_by_id(e->cat, sandbox, m.v[j].ns);
            if (done[j] || strcmp(nj ? nj->code : "unknown", code) != 0) continue;
            done[j] = true;
            kith_buf_puts(&idmap, j == i ? "{\"id\":" : ",{\"id\":");
            kjson_dump_string(m.v[j].value, m.v[j].len, &idmap);
            kith_buf_puts(&idmap, owns(owners, m.v[j].id) ? ",\"primary\":true}"
                                                          : ",\"primary\":false}");
        }
        kith_buf_append(&idmap, "]", 1);
    }
    catalog_unlock(e->cat);
    free(done);
    kith_buf_append(&ids, "]", 1);
    kith_buf_append(&idmap, "}", 1);

    kith_buf_append(out, "{", 1);
    kjson_dump_string(xid, strlen(xid), out);
    kith_buf_puts(out, ":{\"entityId\":");
    kjson_dump_string(xid, strlen(xid), out);
    kith_buf_puts(out, ",\"sources\":");
    kith_buf_append(out, sources.p, sources.n);
    kith_buf_puts(out, ",\"identities\":");
    kith_buf_append(out, ids.data, ids.len);
    kith_buf_puts(out, ",\"entity\":");
    /* the stored entity's members, then the cluster's identities and memberships */
    const char *in = skip_ws(entity.p + 1, entity.p + entity.n - 1);
    size_t inner = (size_t)(entity.p + entity.n - 1 - in);
    kith_buf_append(out, "{", 1);
    if (inner) {
        kith_buf_append(out, in, inner);
        kith_buf_append(out, ",", 1);
    }
    kith_buf_puts(out, "\"identityMap\":");
    kith_buf_append(out, idmap.data, idmap.len);
    kith_buf_puts(out, ",\"identities\":");
    kith_buf_append(out, ids.data, ids.len);
    json_t *seg = segsvc_membership(e, sandbox, cluster); /* src/segment/svc_stream.c */
    if (seg) {
        kith_buf_puts(out, ",\"segmentMembership\":");
        kjson_dump(seg, out);
        json_decref(seg);
    }
    kith_buf_puts(out, "},\"lastModifiedAt\":");
    kith_time_format(last, ts, sizeof ts);
    kjson_dump_string(ts, strlen(ts), out);
    kith_buf_printf(out, ",\"clusterVersion\":%llu", (unsigned long long)m.version);
    if (policy && policy->id[0]) {
        kith_buf_puts(out, ",\"mergePolicy\":{\"id\":");
        kjson_dump_string(policy->id, strlen(policy->id), out);
        kith_buf_append(out, "}", 1);
    }
    kith_buf_puts(out, "}}");
    kith_buf_free(&ids);
    kith_buf_free(&idmap);
    kith_buf_free(&v);
    cluster_members_free(&m);
    return 0;
}

typedef struct ev_item {
    uint64_t ts_biased, owner;
    char *event_id;
    int64_t received;
    json_t *entity;
} ev_item;

static int ev_cmp(const void *a, const void *b)
{
    const ev_item *x = a, *y = b;
    if (x->ts_biased != y->ts_biased) return x->ts_biased < y->ts_biased ? -1 : 1;
    if (x->owner != y->owner) return x->owner < y->owner ? -1 : 1;
    return strcmp(x->event_id, y->event_id);
}

/* Cursor: "<ts ms>.<owner id>.<event id>" — the first event of the next page (inclusive). */
static bool parse_cursor(const char *c, ev_item *out)
{
    char *end;
    long long ts = strtoll(c, &end, 10);
    if (*end != '.') return false;
    unsigned long long owner = strtoull(end + 1, &end, 10);
    if (*end != '.') return false;
    out->ts_biased = (uint64_t)ts + TS_BIAS;
    out->owner = owner;
    out->event_id = end + 1;
    return true;
}

int profile_event_filter_parse(const char *s, event_filter *out)
{
    memset(out, 0, sizeof *out);
    const char *op = s + strcspn(s, "=!<>");
    if (!*op) return KITH_EINVAL;
    const char *p = s, *pe = op;
    while (*p == ' ')
        p++;
    while (pe > p && pe[-1] == ' ')
        pe--;
    if (pe == p || (size_t)(pe - p) >= sizeof out->path) return KITH_EINVAL;
    for (const char *c = p; c < pe; c++)
        if (!(*c == '_' || *c == '.' || *c == '-' || *c == '@' || *c == ':' ||
              (*c >= '0' && *c <= '9') || (*c >= 'a' && *c <= 'z') || (*c >= 'A' && *c <= 'Z')))
            return KITH_EINVAL;
    memcpy(out->path, p, (size_t)(pe - p));
    const char *v;
    if (op[0] == '!' && op[1] == '=')
        out->op = EVF_NE, v = op + 2;
    else if (op[0] == '<' && op[1] == '=')
        out->op = EVF_LE, v = op + 2;
    else if (op[0] == '>' && op[1] == '=')
        out->op = EVF_GE, v = op + 2;
    else if (op[0] == '<')
        out->op = EVF_LT, v = op + 1;
    else if (op[0] == '>')
        out->op = EVF_GT, v = op + 1;
    else if (op[0] == '=')
        out->op = EVF_EQ, v = op + (op[1] == '=' ? 2 : 1);
    else
        return KITH_EINVAL;
    while (*v == ' ')
        v++;
    size_t n = strlen(v);
    while (n && v[n - 1] == ' ')
        n--;
    if (n >= 2 && v[0] == '"' && v[n - 1] == '"') v++, n -= 2; /* a quoted string */
    if (n >= sizeof out->value || memchr(v, '=', n) || memchr(v, '<', n) || memchr(v, '>', n))
        return KITH_EINVAL;
    memcpy(out->value, v, n);
    return 0;
}

/* True when the dataset (24 bytes, zero padded) is in the policy's order. */
static bool order_lists(const merge_policy *p, const uint8_t *dataset)
{
    for (size_t i = 0; i < p->norder; i++)
        if (strncmp(p->order[i], (const char *)dataset, KITH_ID_LEN) == 0) return true;
    return false;
}

static bool cmp_holds(int op, int c)
{
    switch (op) {
    case EVF_EQ:
        return c == 0;
    case EVF_NE:
        return c != 0;
    case EVF_LT:
        return c < 0;
    case EVF_LE:
        return c <= 0;
    case EVF_GT:
        return c > 0;
    case EVF_GE:
        return c >= 0;
    }
    return false;
}

/* A field that is absent, an object or an array matches no filter; numbers compare as numbers,
 * booleans and null by equality only, strings byte-wise (so ISO dates compare in time order). */
static bool filter_match(const event_filter *f, json_t *entity)
{
    json_t *v = entity;
    char path[sizeof f->path];
    memcpy(path, f->path, sizeof path);
    char *save = NULL;
    for (char *seg = strtok_r(path, ".", &save); seg && v; seg = strtok_r(NULL, ".", &save))
        v = json_is_object(v) ? json_object_get(v, seg) : NULL;
    if (!v) return false;
    if (json_is_number(v)) {
        char *end;
        double want = strtod(f->value, &end);
        if (!f->value[0] || *end) return f->op == EVF_NE;
        double have = json_number_value(v);
        return cmp_holds(f->op, have < want ? -1 : have > want ? 1 : 0);
    }
    if (json_is_boolean(v) || json_is_null(v)) {
        const char *have = json_is_null(v) ? "null" : json_is_true(v) ? "true" : "false";
        if (f->op != EVF_EQ && f->op != EVF_NE) return false;
        return cmp_holds(f->op, strcmp(have, f->value));
    }
    if (json_is_string(v)) {
        int c = strcmp(json_string_value(v), f->value);
        return cmp_holds(f->op, c < 0 ? -1 : c > 0 ? 1 : 0);
    }
    return false;
}

json_t *profile_events(kith_engine *e, uint32_t sandbox, uint32_t ns, const char *value, size_t len,
                       const event_query *q, int *err)
{
    merge_policy dflt = {0};
    const merge_policy *policy = q->policy;
    if (!policy) {
        int prc = profile_policy_resolve(e, sandbox, NULL, &dflt);
        if (prc) {
            *err = prc;
            return NULL;
        }
        policy = &dflt;
    }
    uint64_t id, cluster;
    int rc = identity_lookup(e, sandbox, ns, value, len, &id, &cluster);
    cluster_members m = {0};
    if (rc == 0) rc = identity_members(e, NULL, sandbox, cluster, &m);
    if (rc) {
        merge_policy_clear(&dflt);
        *err = rc;
        return NULL;
    }
    if (policy->graph == MP_GRAPH_NONE) members_keep_only(&m, id);
    ev_item cur = {0};
    bool has_cursor = q->cursor && *q->cursor && parse_cursor(q->cursor, &cur);
    if (q->cursor && *q->cursor && !has_cursor) {
        cluster_members_free(&m);
        merge_policy_clear(&dflt);
        *err = KITH_EINVAL;
        return NULL;
    }
    size_t limit = q->limit ? q->limit : 1000;
    ev_item *items = NULL;
    size_t n = 0, cap = 0;
    for (size_t i = 0; i < m.n; i++) {
        store_key pfx, seek;
        frag_prefix(&pfx, sandbox, m.v[i].id);
        store_iter *it = store_iter_new(e->store, NULL, STORE_CF_EVENT, pfx.b, pfx.n);
        size_t taken = 0;
        if (!q->descending) {
            uint64_t from = q->start_ms == INT64_MIN ? 0 : (uint64_t)q->start_ms + TS_BIAS;
            if (has_cursor && cur.ts_biased > from) from = cur.ts_biased;
            seek = pfx;
            skey_u64(&seek, from);
            store_iter_seek(it, seek.b, seek.n);
        } else {
            uint64_t to = q->end_ms == INT64_MAX ? UINT64_MAX : (uint64_t)q->end_ms + TS_BIAS - 1;
            if (has_cursor && cur.ts_biased < to) to = cur.ts_biased;
            seek = pfx;
            skey_u64(&seek, to);
            skey_u8(&seek, 0xff);
            store_iter_seek_for_prev(it, seek.b, seek.n);
        }
        for (; store_iter_valid(it) && taken <= limit;
             q->descending ? store_iter_prev(it) : store_iter_next(it)) {
            size_t kl, vl;
            const uint8_t *key = store_iter_key(it, &kl);
            const uint8_t *val = store_iter_value(it, &vl);
            if (kl < pfx.n + 8 || vl < 8 + KITH_ID_LEN) continue;
            ev_item ev = {.ts_biased = kith_get_be64(key + pfx.n), .owner = m.v[i].id};
            int64_t ts = (int64_t)(ev.ts_biased - TS_BIAS);
            if (!q->descending && q->end_ms != INT64_MAX && ts >= q->end_ms) break;
            if (q->descending && q->start_ms != INT64_MIN && ts < q->start_ms) break;
            ev.event_id = kith_xstrndup((const char *)key + pfx.n + 8, kl - pfx.n - 8);
            if (has_cursor) {
                int c = ev_cmp(&ev, &cur);
                if (q->descending ? c > 0 : c < 0) {
                    free(ev.event_id);
                    continue;
                }
            }
            if (policy->attr == MP_DATASET_PRECEDENCE && !order_lists(policy, val + 8)) {
                free(ev.event_id);
                continue;
            }
            ev.received = (int64_t)kith_get_be64(val);
            ev.entity =
                kjson_parse((const char *)val + 8 + KITH_ID_LEN, vl - 8 - KITH_ID_LEN, 256, NULL, NULL);
            bool keep = ev.entity != NULL;
            for (size_t fi = 0; keep && fi < q->nfilters; fi++)
                keep = filter_match(&q->filters[fi], ev.entity);
            if (!keep) {
                json_decref(ev.entity);
                free(ev.event_id);
                continue;
            }
            if (n == cap) {
                cap = cap ? cap * 2 : 64;
                items = kith_xrealloc(items, cap * sizeof *items);
            }
            items[n++] = ev;
            taken++;
        }
        store_iter_free(it);
    }
    if (n) qsort(items, n, sizeof *items, ev_cmp);
    if (q->descending)
        for (size_t i = 0; i < n / 2; i++) {
            ev_item t = items[i];
            items[i] = items[n - 1 - i];
            items[n - 1 - i] = t;
        }
    char xid[KITH_XID_MAX];
    identity_xid(ns, value, len, xid, sizeof xid);
    json_t *children = json_array();
    size_t count = n < limit ? n : limit;
    for (size_t i = 0; i < count; i++) {
        char ts[40];
        kith_time_format(items[i].received, ts, sizeof ts);
        if (q->fields && *q->fields) {
            json_t *p = project_fields(items[i].entity, q->fields);
            json_decref(items[i].entity);
            items[i].entity = p;
        }
        json_array_append_new(children,
                              json_pack("{s:s, s:s, s:I, s:O, s:s}", "relatedEntityId", xid,
                                        "entityId", items[i].event_id, "timestamp",
                                        (json_int_t)(int64_t)(items[i].ts_biased - TS_BIAS),
                                        "entity", items[i].entity, "lastModifiedAt", ts));
    }
    char next[1200] = "";
    if (n > limit)
        snprintf(next, sizeof next, "%lld.%llu.%s",
                 (long long)(int64_t)(items[limit].ts_biased - TS_BIAS),
                 (unsigned long long)items[limit].owner, items[limit].event_id);
    json_t *out = json_pack("{s:{s:s, s:s, s:I, s:s}, s:o}", "_page", "orderby",
                            q->descending ? "-timestamp" : "timestamp", "start",
                            count ? items[0].event_id : "", "count", (json_int_t)count, "next",
                            next, "children", children);
    for (size_t i = 0; i < n; i++) {
        free(items[i].event_id);
        json_decref(items[i].entity);
    }
    free(items);
    cluster_members_free(&m);
    merge_policy_clear(&dflt);
    return out;
}

int profile_delete(kith_engine *e, store_batch *b, uint32_t sandbox, uint64_t cluster,
                   size_t *deleted)
{
    cluster_members m;
    int rc = identity_members(e, b, sandbox, cluster, &m);
    if (rc) return rc;
    size_t n = 0;
    static const int cfs[] = {STORE_CF_FRAG, STORE_CF_EVENT};
    for (size_t i = 0; i < m.n; i++) {
        store_key k;
        frag_prefix(&k, sandbox, m.v[i].id);
        for (size_t c = 0; c < 2; c++) {
            store_iter *it = store_iter_new(e->store, b, cfs[c], k.b, k.n);
            for (; store_iter_valid(it); store_iter_next(it)) {
                size_t kl;
                const uint8_t *key = store_iter_key(it, &kl);
                store_batch_delete(b, cfs[c], key, kl);
                n++;
            }
            store_iter_free(it);
        }
    }
    cluster_members_free(&m);
    profile_mark_dirty(e, sandbox, cluster);
    segsvc_note_delete(e, sandbox, cluster); /* memberships follow (src/segment/svc_stream.c) */
    if (deleted) *deleted = n;
    return 0;
}

int profile_delete_identity(kith_engine *e, store_batch *b, uint32_t sandbox, uint64_t identity,
                            uint64_t cluster, size_t *deleted)
{
    size_t n = 0;
    static const int cfs[] = {STORE_CF_FRAG, STORE_CF_EVENT};
    store_key k;
    frag_prefix(&k, sandbox, identity);
    for (size_t c = 0; c < 2; c++) {
        store_iter *it = store_iter_new(e->store, b, cfs[c], k.b, k.n);
        for (; store_iter_valid(it); store_iter_next(it)) {
            size_t kl;
            const uint8_t *key = store_iter_key(it, &kl);
            store_batch_delete(b, cfs[c], key, kl);
            n++;
        }
        store_iter_free(it);
    }
    profile_mark_dirty(e, sandbox, cluster);
    segsvc_note_delete(e, sandbox, cluster);
    if (deleted) *deleted = n;
    return 0;
}
