/* kith streaming segmentation: the per-profile state of incremental event aggregates
 * (kith/pqlinc.h), kept by the writer so a new event costs O(1) per aggregate instead of a rescan
 * of the profile's events.
 *
 * Storage: segidx [sb][0x01][cluster u64] → [u8 1][u64 built_at][varint n] then per state
 * [u64 signature][u64 built][pql_inc_encode]. States are per *signature* (kith/pqlinc.h: the
 * same filter, values and time expressions, whatever the window), shared by every segment
 * of the sandbox that has such a site.
 *
 * Validity. A state is exact when every event of the cluster since it was built (from a rescan of
 * the stored and recent events) was added to it. The writer adds each new event to the states of
 * the segments the event can concern (the streaming index: a segment whose filters cannot admit the
 * event's type has no site it can contribute to), so a state built at `built` is valid unless a
 * definition using its signature became active later (`newest`: a new or changed definition,
 * whose site was not maintained before). A signature with no state in the value is empty and valid
 * when the whole value was built after its newest definition (`built_at`, set by full rebuilds).
 * Merges that dissolve a cluster, splits, evictions and unlinks (cluster change events: MOVED
 * touches; a merge that only adds new identities moves no event) and deletes (DELETE touches) rebuild
 * every state of the cluster from a rescan; a cluster that merged away loses its value. Entries
 * that left every window are pruned when the value is written. */
#include <stdlib.h>
#include <string.h>

#include "kith/pqlinc.h"
#include "kith/recent.h"
#include "svc_int.h"

#define DAY_MS 86400000LL

struct inc_use {
    const segdef *d;
    size_t k;
};
struct inc_sig {
    uint64_t sig;
    int64_t newest;   /* the latest activation of a definition using it */
    int64_t lookback; /* widest lookback of those definitions (-1 unbounded) */
    struct inc_use *u;
    size_t nu, capu;
    const pql_program **progs; /* the uses as prune wants them */
    size_t *ks;
};
struct inc_reg {
    uint32_t sb;
    uint64_t gen;
    struct inc_sig *v; /* sorted by sig */
    size_t n;
};

static void reg_clear(struct inc_reg *r)
{
    for (size_t i = 0; i < r->n; i++) {
        free(r->v[i].u);
        free(r->v[i].progs);
        free(r->v[i].ks);
    }
    free(r->v);
    r->v = NULL;
    r->n = 0;
}

static int sig_cmp(const void *a, const void *b)
{
    uint64_t x = ((const struct inc_sig *)a)->sig, y = ((const struct inc_sig *)b)->sig;
    return x < y ? -1 : x > y;
}

static struct inc_sig *reg_find(struct inc_reg *r, uint64_t sig)
{
    size_t lo = 0, hi = r->n;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (r->v[mid].sig == sig) return &r->v[mid];
        if (r->v[mid].sig < sig) lo = mid + 1;
        else hi = mid;
    }
    return NULL;
}

/* The registry of sandbox sb's streaming sites (rebuilt when the definitions changed). */
static struct inc_reg *registry(struct segsvc *s, uint32_t sb)
{
    struct inc_reg *r = NULL;
    for (size_t i = 0; i < s->ninc_reg; i++)
        if (s->inc_reg[i].sb == sb) r = &s->inc_reg[i];
    if (!r) {
        s->inc_reg = kith_xrealloc(s->inc_reg, (s->ninc_reg + 1) * sizeof *s->inc_reg);
        r = &s->inc_reg[s->ninc_reg++];
        memset(r, 0, sizeof *r);
        r->sb = sb;
        r->gen = s->gen - 1;
    }
    if (r->gen == s->gen) return r;
    reg_clear(r);
    r->gen = s->gen;
    size_t cap = 0;
    for (size_t i = 0; i < s->n; i++) {
        const segdef *d = s->v[i];
        if (d->sb != sb || !d->prog || d->mode == PQL_MODE_BATCH) continue;
        size_t ns = pql_inc_nsites(d->prog);
        int64_t lb = pql_program_deps(d->prog)->lookback_ms;
        for (size_t k = 0; k < ns; k++) {
            uint64_t sig = pql_inc_sig(d->prog, k);
            struct inc_sig *g = NULL;
            for (size_t j = 0; j < r->n && !g; j++) /* sorted below; linear while building */
                if (r->v[j].sig == sig) g = &r->v[j];
            if (!g) {
                if (r->n == cap) {
                    cap = cap ? cap * 2 : 16;
                    r->v = kith_xrealloc(r->v, cap * sizeof *r->v);
                }
                g = &r->v[r->n++];
                memset(g, 0, sizeof *g);
                g->sig = sig;
                g->newest = INT64_MIN;
            }
            if (d->active_since > g->newest) g->newest = d->active_since;
            if (lb < 0 || g->lookback < 0) g->lookback = -1;
            else if (lb > g->lookback) g->lookback = lb;
            if (g->nu == g->capu) {
                g->capu = g->capu ? g->capu * 2 : 2;
                g->u = kith_xrealloc(g->u, g->capu * sizeof *g->u);
            }
            g->u[g->nu++] = (struct inc_use){d, k};
        }
    }
    if (r->n > 1) qsort(r->v, r->n, sizeof *r->v, sig_cmp);
    for (size_t i = 0; i < r->n; i++) {
        struct inc_sig *g = &r->v[i];
        g->progs = kith_xcalloc(g->nu, sizeof *g->progs);
        g->ks = kith_xcalloc(g->nu, sizeof *g->ks);
        for (size_t j = 0; j < g->nu; j++) {
            g->progs[j] = g->u[j].d->prog;
            g->ks[j] = g->u[j].k;
        }
    }
    return r;
}

/* The registry lookup needs a linear pass while building; sandboxes with thousands of sites use the
 * sorted array afterwards. (Building is once per definition change.) */

void svc_inc_free(struct segsvc *s)
{
    for (size_t i = 0; i < s->ninc_reg; i++)
        reg_clear(&s->inc_reg[i]);
    free(s->inc_reg);
    s->inc_reg = NULL;
    s->ninc_reg = 0;
    svc_inc_group_end(s);
    free(s->gev);
    s->gev = NULL;
    s->capgev = 0;
}

void svc_inc_note_event(struct segsvc *s, uint32_t sb, uint64_t cluster, json_t *ev)
{
    if (s->ngev == s->capgev) {
        s->capgev = s->capgev ? s->capgev * 2 : 256;
        s->gev = kith_xrealloc(s->gev, s->capgev * sizeof *s->gev);
    }
    s->gev[s->ngev++] = (struct inc_gev){sb, cluster, json_incref(ev)};
}

void svc_inc_group_end(struct segsvc *s)
{
    for (size_t i = 0; i < s->ngev; i++)
        json_decref(s->gev[i].ev);
    s->ngev = 0;
}

static void blob_key(store_key *k, uint32_t sb, uint64_t cluster)
{
    skey_init(k, sb);
    skey_u8(k, 1);
    skey_u64(k, cluster);
}

void svc_inc_drop(kith_engine *e, store_batch *b, uint32_t sb, uint64_t cluster)
{
    (void)e;
    store_key k;
    blob_key(&k, sb, cluster);
    store_batch_delete(b, STORE_CF_SEGIDX, k.b, k.n);
}

/* The slot of sig in x (inserted, empty and not valid, when missing and add). */
static struct svc_inc_slot *slot_of(svc_inc *x, uint64_t sig, bool add)
{
    size_t lo = 0, hi = x->n;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (x->v[mid].sig == sig) return &x->v[mid];
        if (x->v[mid].sig < sig) lo = mid + 1;
        else hi = mid;
    }
    if (!add) return NULL;
    if (x->n == x->cap) {
        x->cap = x->cap ? x->cap * 2 : 8;
        x->v = kith_xrealloc(x->v, x->cap * sizeof *x->v);
    }
    memmove(x->v + lo + 1, x->v + lo, (x->n - lo) * sizeof *x->v);
    x->n++;
    struct svc_inc_slot *sl = &x->v[lo];
    memset(sl, 0, sizeof *sl);
    sl->sig = sig;
    return sl;
}

static void slot_reset(struct svc_inc_slot *sl, const struct inc_sig *g)
{
    pql_inc_state_free(&sl->st);
    pql_inc_state_init(&sl->st, g->u[0].d->prog, g->u[0].k);
    sl->g = g;
    sl->valid = false;
    sl->need = true;
}

/* Reads the cluster's value into x (an absent or malformed one is empty). */
static void blob_load(kith_engine *e, store_batch *b, svc_inc *x, struct inc_reg *r)
{
    store_key k;
    blob_key(&k, x->sb, x->cluster);
    kith_buf v = {0};
    if (store_batch_get(e->store, b, STORE_CF_SEGIDX, k.b, k.n, &v) != 0) {
        kith_buf_free(&v);
        return;
    }
    const uint8_t *p = (const uint8_t *)v.data;
    size_t off = 0, len = v.len;
    if (len < 10 || p[0] != 1) goto bad;
    x->exists = true;
    x->built_at = (int64_t)kith_get_be64(p + 1);
    off = 9;
    uint64_t n = 0;
    for (int shift = 0; off < len; shift += 7) {
        uint8_t c = p[off++];
        n |= (uint64_t)(c & 0x7f) << shift;
        if (!(c & 0x80)) break;
        if (shift > 56) goto bad;
    }
    for (uint64_t i = 0; i < n; i++) {
        if (len - off < 8) goto bad;
        int64_t built = (int64_t)kith_get_be64(p + off);
        off += 8;
        pql_inc_state st;
        size_t used = 0;
        if (pql_inc_decode(&st, p + off, len - off, &used)) goto bad;
        off += used;
        const struct inc_sig *g = reg_find(r, st.sig);
        if (!g) { /* no definition uses it any more */
            pql_inc_state_free(&st);
            x->dirty = true;
            continue;
        }
        struct svc_inc_slot *sl = slot_of(x, st.sig, true);
        pql_inc_state_free(&sl->st);
        sl->st = st;
        sl->built = built;
        sl->g = g;
        sl->valid = built > g->newest;
    }
    kith_buf_free(&v);
    return;
bad: /* rebuilt from the events */
    for (size_t i = 0; i < x->n; i++)
        pql_inc_state_free(&x->v[i].st);
    x->n = 0;
    x->exists = false;
    x->built_at = 0;
    x->dirty = true;
    kith_buf_free(&v);
}

int64_t svc_inc_begin(struct segsvc *s, store_batch *b, uint32_t sb, uint64_t cluster, unsigned what,
                      size_t ncand, int64_t now, svc_inc *x)
{
    memset(x, 0, sizeof *x);
    x->sb = sb;
    x->cluster = cluster;
    x->now = now;
    struct inc_reg *r = registry(s, sb);
    x->reg = r;
    if (!r->n) return INT64_MAX;
    blob_load(s->e, b, x, r);
    bool full = (what & (SEGSVC_TOUCH_MOVED | SEGSVC_TOUCH_DELETE)) != 0;
    /* the candidates' signatures */
    for (size_t c = 0; c < ncand && !full; c++) {
        const segdef *d = s->v[s->cand[c]];
        if (!d->prog) continue;
        size_t ns = pql_inc_nsites(d->prog);
        for (size_t k = 0; k < ns; k++) {
            const struct inc_sig *g = reg_find(r, pql_inc_sig(d->prog, k));
            if (!g) continue;
            struct svc_inc_slot *sl = slot_of(x, g->sig, false);
            if (!sl) {
                sl = slot_of(x, g->sig, true);
                slot_reset(sl, g);
                /* absent: empty, and valid when the whole value was built after its definitions */
                if (x->exists && x->built_at > g->newest) {
                    sl->valid = true, sl->need = false;
                    sl->built = x->built_at; /* maintained (empty) since the full build */
                }
            } else if (!sl->valid && !sl->need) {
                slot_reset(sl, g);
            }
            sl->cand = true;
            if (sl->need) x->nneed++;
        }
    }
    if (!full && x->nneed && !(x->exists && x->built_at > 0)) full = true; /* first build */
    if (full) {
        x->full = true;
        x->dirty = true;
        x->nneed = 0;
        for (size_t i = 0; i < r->n; i++) {
            struct svc_inc_slot *sl = slot_of(x, r->v[i].sig, true);
            slot_reset(sl, &r->v[i]);
            sl->cand = true;
            x->nneed++;
        }
        for (size_t i = 0; i < x->n;) { /* anything left has no definition */
            if (!x->v[i].g) {
                pql_inc_state_free(&x->v[i].st);
                memmove(x->v + i, x->v + i + 1, (x->n - i - 1) * sizeof *x->v);
                x->n--;
            } else {
                i++;
            }
        }
    }
    /* this group's events into the valid states (a state being built reads them from the store's
     * recent events instead) */
    for (size_t i = 0; i < s->ngev; i++) {
        if (s->gev[i].sb != sb || s->gev[i].cluster != cluster) continue;
        for (size_t j = 0; j < x->n; j++) {
            struct svc_inc_slot *sl = &x->v[j];
            if (!sl->cand || sl->need || !sl->valid || sl->st.bad) continue;
            if (pql_inc_add(s->ev, sl->g->u[0].d->prog, sl->g->u[0].k, &sl->st, s->gev[i].ev))
                sl->changed = true;
        }
    }
    if (!x->nneed) return INT64_MAX;
    int64_t since = INT64_MAX;
    for (size_t j = 0; j < x->n; j++) {
        const struct svc_inc_slot *sl = &x->v[j];
        if (!sl->need) continue;
        int64_t from = sl->g->lookback < 0 ? INT64_MIN : now - sl->g->lookback - 2 * DAY_MS;
        if (from < since) since = from;
    }
    return since;
}

void svc_inc_build(struct segsvc *s, svc_inc *x, json_t *const *evs, size_t n)
{
    for (size_t j = 0; j < x->n; j++) {
        struct svc_inc_slot *sl = &x->v[j];
        if (!sl->need) continue;
        for (size_t i = 0; i < n && !sl->st.bad; i++)
            pql_inc_add(s->ev, sl->g->u[0].d->prog, sl->g->u[0].k, &sl->st, evs[i]);
        sl->need = false;
        sl->valid = true;
        sl->built = x->now;
        sl->changed = true;
        s->inc_builds++;
    }
    if (x->full) x->built_at = x->now;
}

bool svc_inc_states_for(svc_inc *x, const segdef *d, const pql_inc_state **out)
{
    size_t ns = d->prog && x->reg ? pql_inc_nsites(d->prog) : 0;
    bool all = ns > 0;
    for (size_t k = 0; k < ns; k++) {
        struct svc_inc_slot *sl = slot_of(x, pql_inc_sig(d->prog, k), false);
        out[k] = sl && sl->valid && !sl->need && !sl->st.bad ? &sl->st : NULL;
        if (!out[k]) all = false;
    }
    return all;
}

static bool state_empty(const pql_inc_state *st)
{
    return !st->bad && st->n == 0 && st->ne == 0 && st->nset == 0;
}

void svc_inc_end(struct segsvc *s, store_batch *b, svc_inc *x)
{
    if (!x->reg) return; /* not begun */
    for (size_t j = 0; j < x->n; j++) {
        struct svc_inc_slot *sl = &x->v[j];
        if (sl->cand && sl->valid && sl->g &&
            pql_inc_prune(&sl->st, sl->g->progs, sl->g->ks, sl->g->nu, x->now))
            sl->changed = true;
        if (sl->changed) x->dirty = true;
    }
    if (x->dirty && x->reg && x->reg->n) {
        kith_buf v = {0};
        uint8_t h[9] = {1};
        kith_buf_append(&v, h, sizeof h);
        size_t keep = 0;
        bool *kept = kith_xcalloc(x->n + 1, sizeof *kept);
        for (size_t j = 0; j < x->n; j++) {
            const struct svc_inc_slot *sl = &x->v[j];
            /* not built (a candidate of no group yet), or empty where absence says as much */
            if (!sl->g || sl->need || !sl->valid) {
                /* absence must not read as "empty and valid" (cannot happen: a state is never
                 * older than the full build; kept as a guard) */
                if (sl->g && x->built_at > sl->g->newest) x->built_at = 0;
                continue;
            }
            if (state_empty(&sl->st) && x->built_at > sl->g->newest) continue;
            kept[j] = true;
            keep++;
        }
        uint64_t n = keep;
        uint8_t vb[10];
        size_t vn = 0;
        while (n >= 0x80) {
            vb[vn++] = (uint8_t)(n | 0x80);
            n >>= 7;
        }
        vb[vn++] = (uint8_t)n;
        kith_buf_append(&v, vb, vn);
        for (size_t j = 0; j < x->n; j++) {
            if (!kept[j]) continue;
            uint8_t bt[8];
            kith_put_be64(bt, (uint64_t)x->v[j].built);
            kith_buf_append(&v, bt, 8);
            pql_inc_encode(&x->v[j].st, &v);
        }
        free(kept);
        kith_put_be64((uint8_t *)v.data + 1, (uint64_t)x->built_at);
        store_key k;
        blob_key(&k, x->sb, x->cluster);
        if (keep == 0 && x->built_at == 0)
            store_batch_delete(b, STORE_CF_SEGIDX, k.b, k.n);
        else
            store_batch_put(b, STORE_CF_SEGIDX, k.b, k.n, v.data, v.len);
        s->inc_writes++;
        kith_buf_free(&v);
    }
    for (size_t j = 0; j < x->n; j++)
        pql_inc_state_free(&x->v[j].st);
    free(x->v);
    memset(x, 0, sizeof *x);
}
