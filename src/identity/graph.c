/* kith identity graph: identities, clusters (connected components) and edges with provenance.
 *
 * ident   [sb][ns u32][value]        → [identity id u64][cluster id u64][first seen i64][last seen i64]
 * node    [sb][identity id u64]      → [ns u32][len u16][value][n u16]{[other id u64][first i64][last i64][dataset 24]}
 * cluster [sb][cluster id u64]       → [version u64][n u32]{[identity id u64][ns u32][len u16][value]}
 *
 * Fragments and events are keyed by identity id, so merging two clusters rewrites only the cluster
 * records and the ident entries of the smaller side; no data moves. Union by size keeps that cheap. */
#include <stdlib.h>
#include <string.h>

#include "kith/engine.h"
#include "cache.h"

#define IDENT_VAL_LEN 32
#define EDGE_LEN (8 + 8 + 8 + KITH_ID_LEN)
#define MAX_EDGES 256

void cluster_members_free(cluster_members *m)
{
    for (size_t i = 0; i < m->n; i++) free(m->v[i].value);
    free(m->v);
    m->v = NULL;
    m->n = 0;
}

static void ident_key(store_key *k, uint32_t sb, uint32_t ns, const char *v, size_t len)
{
    skey_init(k, sb);
    skey_u32(k, ns);
    skey_bytes(k, v, len);
}

static void id_key(store_key *k, uint32_t sb, uint64_t id)
{
    skey_init(k, sb);
    skey_u64(k, id);
}

static int decode_cluster(const kith_buf *v, cluster_members *out)
{
    const uint8_t *p = (const uint8_t *)v->data, *end = p + v->len;
    if (v->len < 12) return KITH_EIO;
    out->version = kith_get_be64(p);
    uint32_t n = kith_get_be32(p + 8);
    p += 12;
    out->v = kith_xcalloc(n ? n : 1, sizeof *out->v);
    out->n = 0;
    for (uint32_t i = 0; i < n; i++) {
        if (end - p < 14) return KITH_EIO;
        cluster_member *m = &out->v[out->n++];
        m->id = kith_get_be64(p);
        m->ns = kith_get_be32(p + 8);
        m->len = (size_t)p[12] << 8 | p[13];
        p += 14;
        if ((size_t)(end - p) < m->len) return KITH_EIO;
        m->value = kith_xstrndup((const char *)p, m->len);
        p += m->len;
    }
    return 0;
}

static void encode_cluster(const cluster_members *m, kith_buf *out)
{
    out->len = 0;
    uint8_t h[12];
    kith_put_be64(h, m->version);
    kith_put_be32(h + 8, (uint32_t)m->n);
    kith_buf_append(out, h, sizeof h);
    for (size_t i = 0; i < m->n; i++) {
        uint8_t e[14];
        kith_put_be64(e, m->v[i].id);
        kith_put_be32(e + 8, m->v[i].ns);
        e[12] = (uint8_t)(m->v[i].len >> 8);
        e[13] = (uint8_t)m->v[i].len;
        kith_buf_append(out, e, sizeof e);
        kith_buf_append(out, m->v[i].value, m->v[i].len);
    }
}

int identity_members(kith_engine *e, store_batch *b, uint32_t sandbox, uint64_t cluster,
                     cluster_members *out)
{
    store_key k;
    id_key(&k, sandbox, cluster);
    kith_buf v = {0};
    int rc = b ? store_batch_get(e->store, b, STORE_CF_CLUSTER, k.b, k.n, &v)
               : store_get(e->store, STORE_CF_CLUSTER, k.b, k.n, &v);
    out->cluster = cluster;
    out->n = 0;
    out->v = NULL;
    if (rc == 0) {
        rc = decode_cluster(&v, out);
        if (rc) cluster_members_free(out);
    }
    kith_buf_free(&v);
    return rc;
}

static int put_cluster(kith_engine *e, store_batch *b, uint32_t sb, cluster_members *m)
{
    store_key k;
    id_key(&k, sb, m->cluster);
    kith_buf v = {0};
    m->version++;
    encode_cluster(m, &v);
    store_batch_put(b, STORE_CF_CLUSTER, k.b, k.n, v.data, v.len);
    kith_buf_free(&v);
    return 0;
}

void identity_cache_reset(kith_engine *e)
{
    if (e->icache) ident_cache_clear(e->icache);
    if (e->ecache) ident_cache_clear(e->ecache);
}

static void put_ident(kith_engine *e, store_batch *b, uint32_t sb, uint32_t ns, const char *v,
                      size_t len, uint64_t id, uint64_t cluster, int64_t first, int64_t last)
{
    store_key k;
    ident_key(&k, sb, ns, v, len);
    if (e->icache) {
        ident_entry ent = {id, cluster, first};
        ident_cache_put(e->icache, k.b, k.n, &ent);
    }
    uint8_t val[IDENT_VAL_LEN];
    kith_put_be64(val, id);
    kith_put_be64(val + 8, cluster);
    kith_put_be64(val + 16, (uint64_t)first);
    kith_put_be64(val + 24, (uint64_t)last);
    store_batch_put(b, STORE_CF_IDENT, k.b, k.n, val, sizeof val);
}

static int get_ident(kith_engine *e, store_batch *b, uint32_t sb, uint32_t ns, const char *v,
                     size_t len, uint64_t *id, uint64_t *cluster, int64_t *first)
{
    store_key k;
    ident_key(&k, sb, ns, v, len);
    ident_entry *hit = b && e->icache ? ident_cache_get(e->icache, k.b, k.n) : NULL;
    if (hit) {
        *id = hit->id;
        *cluster = hit->cluster;
        if (first) *first = hit->first;
        return 0;
    }
    kith_buf val = {0};
    int rc = b ? store_batch_get(e->store, b, STORE_CF_IDENT, k.b, k.n, &val)
               : store_get(e->store, STORE_CF_IDENT, k.b, k.n, &val);
    if (rc == 0 && val.len < IDENT_VAL_LEN) rc = KITH_EIO;
    if (rc == 0) {
        const uint8_t *p = (const uint8_t *)val.data;
        *id = kith_get_be64(p);
        *cluster = kith_get_be64(p + 8);
        int64_t f = (int64_t)kith_get_be64(p + 16);
        if (first) *first = f;
        if (b && e->icache) {
            ident_entry ent = {*id, *cluster, f};
            ident_cache_put(e->icache, k.b, k.n, &ent);
        }
    }
    kith_buf_free(&val);
    return rc;
}

int identity_lookup(kith_engine *e, uint32_t sandbox, uint32_t ns, const char *value, size_t len,
                    uint64_t *id_out, uint64_t *cluster_out)
{
    return get_ident(e, NULL, sandbox, ns, value, len, id_out, cluster_out, NULL);
}

/* A new identity's node record: namespace and value, no edges yet (id → identity for scans). */
static void put_node(store_batch *b, uint32_t sb, uint64_t id, uint32_t ns, const char *v, size_t len)
{
    store_key k;
    id_key(&k, sb, id);
    uint8_t h[6];
    kith_buf val = {0};
    kith_put_be32(h, ns);
    h[4] = (uint8_t)(len >> 8);
    h[5] = (uint8_t)len;
    kith_buf_append(&val, h, 6);
    kith_buf_append(&val, v, len);
    uint8_t z[2] = {0, 0};
    kith_buf_append(&val, z, 2);
    store_batch_put(b, STORE_CF_NODE, k.b, k.n, val.data, val.len);
    kith_buf_free(&val);
}

/* Adds an edge a—b to a's node record unless present; returns true when it was new. */
static bool node_add_edge(kith_engine *e, store_batch *b, uint32_t sb, uint64_t a, uint32_t ns,
                          const char *v, size_t len, uint64_t other, const char *dataset, int64_t now)
{
    /* Known edges (the common case: a returning visitor) need no node read. */
    store_key ek;
    skey_init(&ek, sb);
    skey_u64(&ek, a);
    skey_u64(&ek, other);
    if (e->ecache && ident_cache_get(e->ecache, ek.b, ek.n)) return false;
    if (e->ecache) {
        ident_entry none = {0, 0, 0};
        ident_cache_put(e->ecache, ek.b, ek.n, &none);
    }
    store_key k;
    id_key(&k, sb, a);
    kith_buf val = {0};
    int rc = store_batch_get(e->store, b, STORE_CF_NODE, k.b, k.n, &val);
    size_t head = 4 + 2 + len;
    if (rc != 0 || val.len < head + 2) {
        val.len = 0;
        uint8_t h[6];
        kith_put_be32(h, ns);
        h[4] = (uint8_t)(len >> 8);
        h[5] = (uint8_t)len;
        kith_buf_append(&val, h, 6);
        kith_buf_append(&val, v, len);
        uint8_t z[2] = {0, 0};
        kith_buf_append(&val, z, 2);
    }
    uint8_t *p = (uint8_t *)val.data;
    unsigned n = (unsigned)p[head] << 8 | p[head + 1];
    bool added = false;
    bool found = false;
    for (unsigned i = 0; i < n; i++) {
        size_t off = head + 2 + (size_t)i * EDGE_LEN;
        if (off + EDGE_LEN > val.len) break;
        if (kith_get_be64(p + off) == other) {
            found = true;
            break;
        }
    }
    if (!found && n < MAX_EDGES) {
        uint8_t edge[EDGE_LEN];
        kith_put_be64(edge, other);
        kith_put_be64(edge + 8, (uint64_t)now);
        kith_put_be64(edge + 16, (uint64_t)now);
        memset(edge + 24, 0, KITH_ID_LEN);
        memcpy(edge + 24, dataset, strnlen(dataset, KITH_ID_LEN));
        kith_buf_append(&val, edge, EDGE_LEN);
        p = (uint8_t *)val.data;
        n++;
        p[head] = (uint8_t)(n >> 8);
        p[head + 1] = (uint8_t)n;
        store_batch_put(b, STORE_CF_NODE, k.b, k.n, val.data, val.len);
        added = true;
    }
    kith_buf_free(&val);
    return added;
}

/* Moves every member of cluster `from` into cluster `into` (both loaded); deletes `from`. */
static void merge_into(kith_engine *e, store_batch *b, uint32_t sb, cluster_members *into,
                       cluster_members *from, int64_t now)
{
    for (size_t i = 0; i < from->n; i++) {
        cluster_member *m = &from->v[i];
        uint64_t id, cl;
        int64_t first = now;
        if (get_ident(e, b, sb, m->ns, m->value, m->len, &id, &cl, &first) != 0) first = now;
        put_ident(e, b, sb, m->ns, m->value, m->len, m->id, into->cluster, first, now);
        into->v = kith_xrealloc(into->v, (into->n + 1) * sizeof *into->v);
        into->v[into->n++] = *m;
        m->value = NULL; /* moved */
    }
    from->n = 0;
    store_key k;
    id_key(&k, sb, from->cluster);
    store_batch_delete(b, STORE_CF_CLUSTER, k.b, k.n);
    profile_drop_view(e, b, sb, from->cluster);
    atomic_fetch_add(&e->m.clusters_merged, 1);
}

int identity_apply(kith_engine *e, store_batch *b, uint32_t sandbox, const ident_in *ids, int n,
                   bool link, const char *dataset, int64_t now, uint64_t *ids_out,
                   uint64_t *cluster_out)
{
    uint64_t clusters[64];
    int primary = 0;
    if (n > 64) n = 64;
    for (int i = 0; i < n; i++) {
        uint64_t id, cl;
        int rc = get_ident(e, b, sandbox, ids[i].ns, ids[i].value, ids[i].len, &id, &cl, NULL);
        if (rc == KITH_ENOTFOUND) {
            id = catalog_next_seq(e->cat, b, SEQ_IDENTITY);
            cl = catalog_next_seq(e->cat, b, SEQ_CLUSTER);
            put_ident(e, b, sandbox, ids[i].ns, ids[i].value, ids[i].len, id, cl, now, now);
            put_node(b, sandbox, id, ids[i].ns, ids[i].value, ids[i].len);
            cluster_member m = {.id = id, .ns = ids[i].ns, .value = (char *)ids[i].value,
                                .len = ids[i].len};
            cluster_members one = {.cluster = cl, .version = 0, .n = 1, .v = &m};
            put_cluster(e, b, sandbox, &one);
        } else if (rc != 0) {
            return rc;
        }
        ids_out[i] = id;
        clusters[i] = cl;
        if (ids[i].primary) primary = i;
    }
    if (link) {
        /* Link every linkable identity to the first linkable one (a star is enough for connectivity;
         * the edge records carry the provenance). Clusters merge by size, bounded by graph_max. */
        int hub = -1;
        for (int i = 0; i < n; i++)
            if (ids[i].linkable) {
                hub = i;
                break;
            }
        for (int i = hub + 1; hub >= 0 && i < n; i++) {
            if (!ids[i].linkable || ids_out[i] == ids_out[hub]) continue;
            if (clusters[i] != clusters[hub]) {
                cluster_members a, c2;
                if (identity_members(e, b, sandbox, clusters[hub], &a) != 0) continue;
                if (identity_members(e, b, sandbox, clusters[i], &c2) != 0) {
                    cluster_members_free(&a);
                    continue;
                }
                if (a.n + c2.n > (size_t)e->lim.graph_max) {
                    /* The graph limit: refuse the link rather than grow past it (eviction comes
                     * with the identity-graph work; see docs/ARCHITECTURE.md). */
                    atomic_fetch_add(&e->m.links_refused, 1);
                    cluster_members_free(&a);
                    cluster_members_free(&c2);
                    continue;
                }
                cluster_members *big = a.n >= c2.n ? &a : &c2, *small = big == &a ? &c2 : &a;
                uint64_t gone = small->cluster;
                merge_into(e, b, sandbox, big, small, now);
                put_cluster(e, b, sandbox, big);
                profile_mark_dirty(e, sandbox, big->cluster);
                for (int j = 0; j < n; j++)
                    if (clusters[j] == gone) clusters[j] = big->cluster;
                cluster_members_free(&a);
                cluster_members_free(&c2);
            }
            if (node_add_edge(e, b, sandbox, ids_out[hub], ids[hub].ns, ids[hub].value, ids[hub].len,
                              ids_out[i], dataset, now)) {
                node_add_edge(e, b, sandbox, ids_out[i], ids[i].ns, ids[i].value, ids[i].len,
                              ids_out[hub], dataset, now);
                atomic_fetch_add(&e->m.links_created, 1);
            }
        }
    }
    *cluster_out = clusters[primary];
    return 0;
}

/* XID: "X" + base64url(ns u32 big-endian ‖ value), no padding. */
static const char b64[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

void identity_xid(uint32_t ns, const char *value, size_t len, char *out, size_t cap)
{
    uint8_t buf[4 + 1100];
    if (len > 1100) len = 1100;
    kith_put_be32(buf, ns);
    memcpy(buf + 4, value, len);
    size_t n = 4 + len, o = 0;
    if (cap < 2) return;
    out[o++] = 'X';
    for (size_t i = 0; i < n && o + 4 < cap; i += 3) {
        uint32_t v = (uint32_t)buf[i] << 16;
        if (i + 1 < n) v |= (uint32_t)buf[i + 1] << 8;
        if (i + 2 < n) v |= buf[i + 2];
        out[o++] = b64[(v >> 18) & 63];
        out[o++] = b64[(v >> 12) & 63];
        if (i + 1 < n) out[o++] = b64[(v >> 6) & 63];
        if (i + 2 < n) out[o++] = b64[v & 63];
    }
    out[o] = 0;
}

int identity_xid_parse(const char *xid, uint32_t *ns, char *value, size_t cap, size_t *len)
{
    if (!xid || xid[0] != 'X') return KITH_EINVAL;
    uint8_t buf[4 + 1100];
    size_t n = 0;
    uint32_t acc = 0;
    int bits = 0;
    for (const char *p = xid + 1; *p; p++) {
        const char *q = strchr(b64, *p);
        if (!q || !*p) return KITH_EINVAL;
        acc = (acc << 6) | (uint32_t)(q - b64);
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            if (n >= sizeof buf) return KITH_EINVAL;
            buf[n++] = (uint8_t)(acc >> bits);
        }
    }
    if (n < 5 || n - 4 >= cap) return KITH_EINVAL;
    *ns = kith_get_be32(buf);
    memcpy(value, buf + 4, n - 4);
    value[n - 4] = 0;
    *len = n - 4;
    return 0;
}
