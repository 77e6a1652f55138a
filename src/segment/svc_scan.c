/* kith segment service: one profile as the off-writer evaluators (previews, segment jobs, export
 * jobs) read it — members, materialised union view, events — from committed data, i.e. from the
 * calling thread's store snapshot when it uses one (store_snapshot_use). The streaming evaluator on
 * the apply thread reads through the group's batch instead (svc_stream.c). */
#include <stdlib.h>
#include <string.h>

#include "kith/ca.h"
#include "kith/jalloc.h"
#include "kith/kjson.h"
#include "svc_int.h"

#define TS_BIAS 0x8000000000000000ull

struct ev_ent {
    int64_t ts;
    size_t order; /* member, then key order: a stable sort */
    json_t *ev;
    struct svc_ev_meta meta;
};

static int ev_ent_cmp(const void *a, const void *b)
{
    const struct ev_ent *x = a, *y = b;
    if (x->ts != y->ts) return x->ts < y->ts ? -1 : 1;
    return x->order < y->order ? -1 : x->order > y->order;
}

/* The committed events of the members at or after since (ms; INT64_MIN: all), sorted by timestamp
 * (owned array), and who and which dataset each one is of (*meta, owned). */
/* An iterator over prefix: the thread's one re-aimed, or a new one (*own then). */
static store_iter *iter_at(kith_engine *e, store_iter **kept, int cf, const void *prefix,
                           size_t plen, store_iter **own)
{
    *own = NULL;
    if (!kept) return *own = store_iter_new(e->store, NULL, cf, prefix, plen);
    if (!*kept)
        *kept = store_iter_new(e->store, NULL, cf, prefix, plen);
    else
        store_iter_reset(*kept, prefix, plen);
    return *kept;
}

void svc_iters_free(svc_iters *it)
{
    store_iter_free(it->events);
    store_iter_free(it->views);
    store_iter_free(it->states);
    jalloc_arena_free(it->arena);
    it->events = it->views = it->states = NULL;
    it->arena = NULL;
}

#define CURSOR_STEPS 8 /* Nexts tried before a seek */

/* Positions cursor *cur (made over prefix[0..plen) on first use, or again when the sandbox changes)
 * at the first key >= key, the key of cluster. After a read of cluster *last every key before the
 * cursor belongs to a cluster <= *last, so for a later cluster a few Nexts find it; an earlier one,
 * or one far ahead, is a seek. */
static store_iter *cursor_goto(kith_engine *e, store_iter **cur, uint32_t *cur_sb, uint64_t *last,
                               uint32_t sb, uint64_t cluster, int cf, const uint8_t *prefix,
                               size_t plen, const uint8_t *key, size_t klen)
{
    if (*cur && *cur_sb != sb) {
        store_iter_free(*cur);
        *cur = NULL;
    }
    bool forward = *cur && cluster > *last;
    *last = cluster;
    if (!*cur) {
        *cur = store_iter_new(e->store, NULL, cf, prefix, plen);
        *cur_sb = sb;
    }
    store_iter *it = *cur;
    for (int i = 0; forward && i <= CURSOR_STEPS; i++) {
        if (!store_iter_valid(it)) return it; /* nothing at or after key */
        size_t kl;
        const uint8_t *k = store_iter_key(it, &kl);
        int c = memcmp(k, key, kl < klen ? kl : klen);
        if (c > 0 || (c == 0 && kl >= klen)) return it;
        if (i < CURSOR_STEPS) store_iter_next(it);
    }
    store_iter_seek(it, key, klen);
    return it;
}

static json_t *events_committed(kith_engine *e, uint32_t sb, const cluster_members *m, int64_t since,
                                svc_iters *its, struct svc_ev_meta **meta)
{
    struct ev_ent *v = NULL;
    size_t n = 0, cap = 0;
    for (size_t i = 0; i < m->n; i++) {
        store_key k;
        skey_init(&k, sb);
        skey_u64(&k, m->v[i].id);
        size_t plen = k.n;
        store_iter *own, *it = iter_at(e, its ? &its->events : NULL, STORE_CF_EVENT, k.b, plen, &own);
        if (since != INT64_MIN) {
            skey_u64(&k, (uint64_t)since + TS_BIAS);
            store_iter_seek(it, k.b, k.n);
        }
        for (; store_iter_valid(it); store_iter_next(it)) {
            size_t kl, vl;
            const uint8_t *key = store_iter_key(it, &kl);
            const uint8_t *val = store_iter_value(it, &vl);
            if (kl < plen + 8 || vl <= 8 + KITH_ID_LEN) continue;
            json_t *ev = kjson_parse((const char *)val + 8 + KITH_ID_LEN, vl - 8 - KITH_ID_LEN, 256,
                                     NULL, NULL);
            if (!ev) continue;
            if (n == cap) {
                cap = cap ? cap * 2 : 64;
                v = kith_xrealloc(v, cap * sizeof *v);
            }
            v[n] = (struct ev_ent){(int64_t)(kith_get_be64(key + plen) - TS_BIAS), n, ev, {0}};
            v[n].meta.identity = m->v[i].id;
            memcpy(v[n].meta.dataset, val + 8, KITH_ID_LEN);
            n++;
        }
        store_iter_free(own);
    }
    if (m->n > 1 && n > 1) qsort(v, n, sizeof *v, ev_ent_cmp);
    json_t *arr = json_array();
    *meta = kith_xmalloc((n ? n : 1) * sizeof **meta);
    for (size_t i = 0; i < n; i++) {
        json_array_append_new(arr, v[i].ev);
        (*meta)[i] = v[i].meta;
    }
    free(v);
    return arr;
}

bool svc_reads_computed(const pql_deps *dp)
{
    for (size_t i = 0; i < dp->n_fields; i++)
        if (!strncmp(dp->fields[i], "_computed", 9) && (!dp->fields[i][9] || dp->fields[i][9] == '.'))
            return true;
    return false;
}

int svc_profile_load(kith_engine *e, uint32_t sb, uint64_t cluster, unsigned what, int64_t since,
                     int64_t now, svc_iters *its, svc_profile *p)
{
    memset(p, 0, sizeof *p);
    p->cluster = cluster;
    const uint8_t *given = its ? its->cluster_val : NULL;
    size_t given_len = its ? its->cluster_len : 0;
    if (its) its->cluster_val = NULL;
    if (what & (SVC_LOAD_MEMBERS | SVC_LOAD_EVENTS)) {
        int rc = given ? identity_members_decode(given, given_len, cluster, &p->m)
                       : identity_members(e, NULL, sb, cluster, &p->m);
        if (rc) return rc;
        p->has_members = true;
    }
    if (its && its->use_arena) {
        jalloc_arena_enter(&its->arena);
        p->in_arena = true;
    }
    store_key k;
    skey_init(&k, sb);
    skey_u64(&k, cluster);
    if (its) {
        store_iter *it = cursor_goto(e, &its->views, &its->views_sb, &its->views_last, sb,
                                     cluster, STORE_CF_PROFILE, k.b, 4, k.b, k.n);
        size_t kl, vl;
        const uint8_t *key = store_iter_valid(it) ? store_iter_key(it, &kl) : NULL;
        if (key && kl == k.n && memcmp(key, k.b, k.n) == 0) {
            const uint8_t *val = store_iter_value(it, &vl);
            p->view = kjson_parse((const char *)val, vl, 256, NULL, NULL);
        }
    } else {
        kith_buf pv = {0};
        if (store_get(e->store, STORE_CF_PROFILE, k.b, k.n, &pv) == 0)
            p->view = kjson_parse(pv.data, pv.len, 256, NULL, NULL);
        kith_buf_free(&pv);
    }
    p->view_sig = profile_view_signature(p->view);
    p->entity = json_object_get(p->view, "entity");
    if (what & SVC_LOAD_COMPUTED) {
        if (!p->entity) p->entity = p->own = json_object();
        ca_attach(e, NULL, sb, cluster, now, p->entity); /* _computed.<name> (src/ca/) */
    }
    if (what & SVC_LOAD_EVENTS) p->events = events_committed(e, sb, &p->m, since, its, &p->evmeta);
    if (p->in_arena) jalloc_arena_leave();
    return 0;
}

void svc_profile_clear(svc_profile *p)
{
    if (p->has_members) cluster_members_free(&p->m);
    if (!p->in_arena) {
        json_decref(p->view);
        json_decref(p->own);
        json_decref(p->events);
    }
    free(p->evmeta);
    memset(p, 0, sizeof *p);
}

size_t svc_states_load(kith_engine *e, uint32_t sb, uint64_t cluster, svc_iters *its,
                       svc_state_ent *out, size_t cap)
{
    store_key p;
    skey_init(&p, sb);
    skey_u8(&p, 0);
    skey_u64(&p, cluster);
    size_t n = 0;
    store_iter *own = NULL, *it;
    if (its)
        it = cursor_goto(e, &its->states, &its->states_sb, &its->states_last, sb, cluster,
                         STORE_CF_SEGIDX, p.b, 5, p.b, p.n);
    else
        it = own = store_iter_new(e->store, NULL, STORE_CF_SEGIDX, p.b, p.n);
    for (; store_iter_valid(it) && n < cap; store_iter_next(it)) {
        size_t kl, vl;
        const uint8_t *key = store_iter_key(it, &kl);
        if (kl < p.n || memcmp(key, p.b, p.n) != 0) break; /* the next cluster's */
        const uint8_t *val = store_iter_value(it, &vl);
        if (kl != p.n + SEGDEF_ID_LEN || vl < 17) continue;
        memcpy(out[n].id, key + p.n, SEGDEF_ID_LEN);
        out[n].id[SEGDEF_ID_LEN] = 0;
        out[n].st.lqt = (int64_t)kith_get_be64(val + 1);
        out[n].st.status = val[0];
        out[n].st.due = (int64_t)kith_get_be64(val + 9);
        n++;
    }
    store_iter_free(own);
    return n;
}
