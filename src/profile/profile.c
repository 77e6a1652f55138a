/* kith profiles: record fragments, events, and the materialised union view of a cluster.
 *
 * frag    [sb][identity id u64][dataset 24]                    → [order ts i64][received i64][entity JSON]
 * event   [sb][identity id u64][ts u64 (ms + 2^63)][event id]   → [received i64][dataset 24][event JSON]
 * profile [sb][cluster id u64] → {"entity", "sources", "owners", "lastModifiedAt"} (default policy:
 *         newest fragment wins per leaf value, arrays are atomic; identities come from the cluster)
 */
#include "kith/jalloc.h"
#include <stdlib.h>
#include <string.h>

#include "kith/engine.h"

#define TS_BIAS 0x8000000000000000ull

struct dirty_item {
    uint32_t sb;
    uint64_t cluster;
};
struct engine_dirty {
    struct dirty_item *v;
    size_t n, cap;
};

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
    profile_mark_dirty(e, sandbox, cluster);
    return 0;
}

int profile_put_event(kith_engine *e, store_batch *b, uint32_t sandbox, uint64_t identity,
                      const char *dataset, int64_t ts, const char *event_id, int64_t received,
                      const char *json, size_t len)
{
    store_key k;
    frag_prefix(&k, sandbox, identity);
    skey_u64(&k, (uint64_t)ts + TS_BIAS);
    skey_bytes(&k, event_id, strlen(event_id));
    kith_buf v = {0};
    uint8_t h[8 + KITH_ID_LEN];
    kith_put_be64(h, (uint64_t)received);
    memset(h + 8, 0, KITH_ID_LEN);
    memcpy(h + 8, dataset, strnlen(dataset, KITH_ID_LEN));
    kith_buf_append(&v, h, sizeof h);
    kith_buf_append(&v, json, len);
    store_batch_put_blind(b, STORE_CF_EVENT, k.b, k.n, v.data, v.len);
    kith_buf_free(&v);
    return 0;
}

void profile_mark_dirty(kith_engine *e, uint32_t sandbox, uint64_t cluster)
{
    if (!e->dirty) e->dirty = kith_xcalloc(1, sizeof *e->dirty);
    struct engine_dirty *d = e->dirty;
    if (d->n && d->v[d->n - 1].sb == sandbox && d->v[d->n - 1].cluster == cluster) return;
    if (d->n == d->cap) {
        d->cap = d->cap ? d->cap * 2 : 256;
        d->v = kith_xrealloc(d->v, d->cap * sizeof *d->v);
    }
    d->v[d->n++] = (struct dirty_item){sandbox, cluster};
}

void profile_dirty_free(kith_engine *e)
{
    if (!e->dirty) return;
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

/* Default merge: dst takes src's leaves (objects merge recursively; arrays and scalars replace). */
static void merge_objects(json_t *dst, json_t *src)
{
    const char *key;
    json_t *v;
    json_object_foreach(src, key, v)
    {
        json_t *cur = json_object_get(dst, key);
        if (json_is_object(v) && json_is_object(cur)) merge_objects(cur, v);
        else json_object_set_new(dst, key, json_deep_copy(v));
    }
}

typedef struct frag_item {
    int64_t order, received, stamp;
    uint64_t owner;
    char dataset[KITH_ID_LEN + 1];
    json_t *entity;
} frag_item;

static int frag_cmp(const void *a, const void *b)
{
    const frag_item *x = a, *y = b;
    if (x->order != y->order) return x->order < y->order ? -1 : 1;
    if (x->stamp != y->stamp) return x->stamp < y->stamp ? -1 : 1;
    return strcmp(x->dataset, y->dataset);
}

static int compute_union(kith_engine *e, store_batch *b, uint32_t sb, uint64_t cluster)
{
    cluster_members m;
    int rc = identity_members(e, b, sb, cluster, &m);
    if (rc == KITH_ENOTFOUND) {
        profile_drop_view(e, b, sb, cluster);
        return 0;
    }
    if (rc) return rc;
    frag_item *items = NULL;
    size_t n = 0, cap = 0;
    for (size_t i = 0; i < m.n; i++) {
        store_key k;
        frag_prefix(&k, sb, m.v[i].id);
        store_iter *it = store_iter_new(e->store, b, STORE_CF_FRAG, k.b, k.n);
        for (; store_iter_valid(it); store_iter_next(it)) {
            size_t kl, vl;
            const uint8_t *key = store_iter_key(it, &kl);
            const uint8_t *val = store_iter_value(it, &vl);
            if (vl < 16 || kl < k.n + KITH_ID_LEN) continue;
            json_t *ent = json_loadb((const char *)val + 16, vl - 16, 0, NULL);
            if (!ent) continue;
            if (n == cap) {
                cap = cap ? cap * 2 : 8;
                items = kith_xrealloc(items, cap * sizeof *items);
            }
            frag_item *f = &items[n++];
            f->order = (int64_t)kith_get_be64(val);
            f->received = (int64_t)kith_get_be64(val + 8) / 1000;
            f->stamp = (int64_t)kith_get_be64(val + 8);
            f->owner = m.v[i].id;
            memcpy(f->dataset, key + k.n, KITH_ID_LEN);
            f->dataset[KITH_ID_LEN] = 0;
            f->entity = ent;
        }
        store_iter_free(it);
    }
    if (n) qsort(items, n, sizeof *items, frag_cmp);
    json_t *entity = json_object(), *sources = json_array(), *owners = json_array();
    int64_t last = 0;
    for (size_t i = 0; i < n; i++) {
        json_object_del(items[i].entity, "identityMap"); /* identities come from the cluster */
        merge_objects(entity, items[i].entity);
        bool seen = false;
        size_t j;
        json_t *s;
        json_array_foreach(sources, j, s) if (strcmp(json_string_value(s), items[i].dataset) == 0)
            seen = true;
        if (!seen) json_array_append_new(sources, json_string(items[i].dataset));
        json_array_append_new(owners, json_integer((json_int_t)items[i].owner));
        if (items[i].received > last) last = items[i].received;
        json_decref(items[i].entity);
    }
    free(items);
    cluster_members_free(&m);
    json_t *doc = json_pack("{s:o, s:o, s:o, s:I}", "entity", entity, "sources", sources, "owners",
                            owners, "lastModifiedAt", (json_int_t)last);
    char *s = kith_json_dumps(doc, JSON_COMPACT);
    store_key k;
    profile_key(&k, sb, cluster);
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
    return 0;
}

int profile_flush_dirty(kith_engine *e, store_batch *b)
{
    struct engine_dirty *d = e->dirty;
    if (!d || d->n == 0) return 0;
    qsort(d->v, d->n, sizeof *d->v, dirty_cmp);
    int rc = 0;
    for (size_t i = 0; i < d->n && rc == 0; i++) {
        if (i > 0 && dirty_cmp(&d->v[i], &d->v[i - 1]) == 0) continue;
        rc = compute_union(e, b, d->v[i].sb, d->v[i].cluster);
    }
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
        while (*f == ' ') f++;
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

json_t *profile_lookup(kith_engine *e, uint32_t sandbox, uint32_t ns, const char *value, size_t len,
                       const char *fields, int *err)
{
    uint64_t id, cluster;
    int rc = identity_lookup(e, sandbox, ns, value, len, &id, &cluster);
    cluster_members m = {0};
    if (rc == 0) rc = identity_members(e, NULL, sandbox, cluster, &m);
    if (rc) {
        *err = rc;
        return NULL;
    }
    store_key k;
    profile_key(&k, sandbox, cluster);
    kith_buf v = {0};
    json_t *view = NULL;
    if (store_get(e->store, STORE_CF_PROFILE, k.b, k.n, &v) == 0)
        view = json_loadb(v.data, v.len, 0, NULL);
    kith_buf_free(&v);
    if (!view) view = json_pack("{s:{}, s:[], s:[], s:I}", "entity", "sources", "owners",
                                "lastModifiedAt", (json_int_t)0);
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
        json_array_foreach(owners, j, o) if ((uint64_t)json_integer_value(o) == m.v[i].id) primary = true;
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
        json_array_append_new(arr, json_pack("{s:s%, s:b}", "id", m.v[i].value, m.v[i].len,
                                             "primary", primary));
    }
    catalog_unlock(e->cat);
    json_object_set_new(entity, "identityMap", idmap);
    json_object_set(entity, "identities", identities);
    if (fields && *fields) {
        json_t *p = project_fields(entity, fields);
        json_decref(entity);
        entity = p;
    }
    char xid[KITH_XID_MAX], ts[40];
    identity_xid(ns, value, len, xid, sizeof xid);
    kith_time_format(json_integer_value(json_object_get(view, "lastModifiedAt")), ts, sizeof ts);
    json_t *out = json_object();
    json_object_set_new(out, xid,
                        json_pack("{s:s, s:O, s:o, s:o, s:s, s:I}", "entityId", xid, "sources",
                                  json_object_get(view, "sources"), "identities", identities,
                                  "entity", entity, "lastModifiedAt", ts, "clusterVersion",
                                  (json_int_t)m.version));
    json_decref(view);
    cluster_members_free(&m);
    return out;
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

json_t *profile_events(kith_engine *e, uint32_t sandbox, uint32_t ns, const char *value, size_t len,
                       const event_query *q, int *err)
{
    uint64_t id, cluster;
    int rc = identity_lookup(e, sandbox, ns, value, len, &id, &cluster);
    cluster_members m = {0};
    if (rc == 0) rc = identity_members(e, NULL, sandbox, cluster, &m);
    if (rc) {
        *err = rc;
        return NULL;
    }
    ev_item cur = {0};
    bool has_cursor = q->cursor && *q->cursor && parse_cursor(q->cursor, &cur);
    if (q->cursor && *q->cursor && !has_cursor) {
        cluster_members_free(&m);
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
            ev.received = (int64_t)kith_get_be64(val);
            ev.entity = json_loadb((const char *)val + 8 + KITH_ID_LEN, vl - 8 - KITH_ID_LEN, 0, NULL);
            if (!ev.entity) {
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
        json_array_append_new(
            children, json_pack("{s:s, s:s, s:I, s:O, s:s}", "relatedEntityId", xid, "entityId",
                                items[i].event_id, "timestamp",
                                (json_int_t)(int64_t)(items[i].ts_biased - TS_BIAS), "entity",
                                items[i].entity, "lastModifiedAt", ts));
    }
    char next[1200] = "";
    if (n > limit)
        snprintf(next, sizeof next, "%lld.%llu.%s",
                 (long long)(int64_t)(items[limit].ts_biased - TS_BIAS),
                 (unsigned long long)items[limit].owner, items[limit].event_id);
    json_t *out = json_pack("{s:{s:s, s:s, s:I, s:s}, s:o}", "_page", "orderby",
                            q->descending ? "-timestamp" : "timestamp", "start",
                            count ? items[0].event_id : "", "count", (json_int_t)count, "next", next,
                            "children", children);
    for (size_t i = 0; i < n; i++) {
        free(items[i].event_id);
        json_decref(items[i].entity);
    }
    free(items);
    cluster_members_free(&m);
    return out;
}

int profile_delete(kith_engine *e, store_batch *b, uint32_t sandbox, uint64_t cluster, size_t *deleted)
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
    if (deleted) *deleted = n;
    return 0;
}
