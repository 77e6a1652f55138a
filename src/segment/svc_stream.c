/* kith streaming segmentation: the clusters a group touched are re-evaluated at the end of the
 * group, on the apply thread, before the group is acknowledged; membership goes to the segidx CF,
 * and the next instant an answer can change by itself to the timer CF, which a timer thread drains
 * through the apply thread (see kith/segsvc.h for the keys). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "kith/jalloc.h"
#include "kith/ca.h"
#include "kith/kjson.h"
#include "kith/recent.h"
#include "svc_int.h"

#define TS_BIAS 0x8000000000000000ull
#define TIMER_BATCH 10000

/* --- lifecycle --- */

static void *timer_main(void *arg);
static void policies_clear(struct segsvc *s);
struct seg_touch;
static int eval_candidates(struct segsvc *s, store_batch *b, uint32_t sb, uint64_t cluster,
                           const struct seg_touch *t, int64_t now, size_t ncand, bool use_inc);
static int on_cluster_change(void *arg, store_batch *b, const cluster_change *v, size_t n);

int segsvc_init(kith_engine *e)
{
    struct segsvc *s = kith_xcalloc(1, sizeof *s);
    s->e = e;
    pthread_rwlock_init(&s->lock, NULL);
    pthread_mutex_init(&s->mu, NULL);
    pthread_cond_init(&s->cv, NULL);
    s->ev = pql_evaluator_new(NULL);
    svc_feed_init(s);
    e->segsvc = s;
    svc_defs_load(s);
    engine_on_cluster_change(e, on_cluster_change, e);
    if (pthread_create(&s->timer, NULL, timer_main, s) == 0) s->timer_started = true;
    svc_jobs_start(s);
    return 0;
}

void segsvc_stop(kith_engine *e)
{
    struct segsvc *s = e ? svc_of(e) : NULL;
    if (s) svc_jobs_stop(s);
    if (!s || !s->timer_started) return;
    pthread_mutex_lock(&s->mu);
    s->stopping = true;
    pthread_cond_broadcast(&s->cv);
    pthread_mutex_unlock(&s->mu);
    pthread_join(s->timer, NULL);
    s->timer_started = false;
}

static void changes_clear(struct seg_change *v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        free(v[i].value);
}

void segsvc_free(kith_engine *e)
{
    struct segsvc *s = e ? svc_of(e) : NULL;
    if (!s) return;
    segsvc_stop(e);
    svc_feed_free(s);
    svc_jobs_free(s);
    svc_defs_free(s);
    changes_clear(s->chg, s->nchg);
    free(s->chg);
    segsvc_preview_free_all();
    free(s->t);
    policies_clear(s);
    free(s->pol);
    svc_inc_free(s);
    svc_index_free(s);
    pql_evaluator_free(s->ev);
    pthread_rwlock_destroy(&s->lock);
    pthread_mutex_destroy(&s->mu);
    pthread_cond_destroy(&s->cv);
    free(s);
    e->segsvc = NULL;
}

void segsvc_get_stats(kith_engine *e, segsvc_stats *out)
{
    struct segsvc *s = svc_of(e);
    memset(out, 0, sizeof *out);
    if (!s) return;
    out->evaluations = s->evaluations;
    out->realized = s->realized;
    out->exited = s->exited;
    out->timers_fired = s->timers_fired;
    out->timers_set = s->timers_set;
    out->flush_ns = s->flush_ns;
    out->inc_builds = s->inc_builds;
    out->inc_writes = s->inc_writes;
    out->event_reads = s->event_reads;
}

/* --- what a group touched --- */

static bool sandbox_has_streaming(struct segsvc *s, uint32_t sb)
{
    return svc_sandbox_has_streaming(s, sb);
}

static void touch(struct segsvc *s, uint32_t sb, uint64_t cluster, unsigned what, uint64_t etype)
{
    if (s->nt && s->t[s->nt - 1].sb == sb && s->t[s->nt - 1].cluster == cluster &&
        s->t[s->nt - 1].etype == etype) {
        s->t[s->nt - 1].what |= what;
        return;
    }
    if (s->nt == s->capt) {
        s->capt = s->capt ? s->capt * 2 : 256;
        s->t = kith_xrealloc(s->t, s->capt * sizeof *s->t);
    }
    s->t[s->nt++] = (struct touched){sb, cluster, what, etype};
}

void segsvc_touch(kith_engine *e, uint32_t sb, uint64_t cluster, unsigned what)
{
    struct segsvc *s = svc_of(e);
    if (s) touch(s, sb, cluster, what, 0);
}

void segsvc_note_apply(kith_engine *e, uint32_t sb, uint64_t cluster, uint64_t identity,
                       const char *dataset, bool is_event, int64_t ts, const char *event_id,
                       const char *json, size_t len)
{
    struct segsvc *s = svc_of(e);
    if (!s || !sandbox_has_streaming(s, sb)) return;
    if (!is_event) {
        touch(s, sb, cluster, SEGSVC_TOUCH_RECORD, 0);
        return;
    }
    /* Events are blind appends written by the syncer: the ingest layer's buffer of recent events
     * (kith/recent.h) keeps it until it is surely written, parsed once for every reader. */
    json_t *ev = recent_tree(recent_keep(e, sb, identity, dataset, ts, event_id, json, len));
    if (!ev) { /* validated before: cannot happen; be safe anyway */
        touch(s, sb, cluster, SEGSVC_TOUCH_PROFILE | SEGSVC_TOUCH_MOVED, 0);
        return;
    }
    const char *et = json_string_value(json_object_get(ev, "eventType"));
    touch(s, sb, cluster, SEGSVC_TOUCH_EVENT, et ? svc_etype_hash(et, strlen(et)) : 0);
    svc_inc_note_event(s, sb, cluster, ev); /* into the profile's aggregate states (svc_inc.c) */
}

void segsvc_note_delete(kith_engine *e, uint32_t sb, uint64_t cluster)
{
    struct segsvc *s = svc_of(e);
    if (!s || !sandbox_has_streaming(s, sb)) return;
    /* A delete runs exclusive, after the blind appends of every earlier group were written: the
     * recent events are all in the store (recent_first lists none of them), where the delete sees
     * and removes them. */
    segsvc_touch(e, sb, cluster, SEGSVC_TOUCH_DELETE);
}

static int on_cluster_change(void *arg, store_batch *b, const cluster_change *v, size_t n)
{
    kith_engine *e = arg;
    struct segsvc *s = svc_of(e);
    if (!s) return 0;
    uint32_t moved_sb = 0;
    bool sb_moved = true;
    if (n) moved_sb = v[0].sandbox + 1; /* none yet */
    for (size_t i = 0; i < n; i++) {
        if (!sandbox_has_streaming(s, v[i].sandbox) && !v[i].gone) continue;
        if (v[i].gone) {
            /* The cluster merged away: its memberships go (the surviving cluster is re-evaluated).
             */
            store_key k;
            skey_init(&k, v[i].sandbox);
            skey_u8(&k, 0);
            skey_u64(&k, v[i].cluster);
            store_iter *it = store_iter_new(e->store, b, STORE_CF_SEGIDX, k.b, k.n);
            for (; store_iter_valid(it); store_iter_next(it)) {
                size_t kl, vl;
                const uint8_t *key = store_iter_key(it, &kl);
                const uint8_t *val = store_iter_value(it, &vl);
                if (kl != 13 + SEGDEF_ID_LEN) continue;
                store_key a;
                skey_init(&a, v[i].sandbox);
                skey_bytes(&a, key + 13, SEGDEF_ID_LEN);
                skey_u64(&a, v[i].cluster);
                store_batch_delete(b, STORE_CF_SEGIDX, a.b, a.n);
                if (vl >= 17 && kith_get_be64(val + 9)) {
                    store_key t;
                    skey_init(&t, v[i].sandbox);
                    skey_u64(&t, kith_get_be64(val + 9));
                    skey_u64(&t, v[i].cluster);
                    skey_bytes(&t, key + 13, SEGDEF_ID_LEN);
                    store_batch_delete(b, STORE_CF_TIMER, t.b, t.n);
                }
                store_batch_delete(b, STORE_CF_SEGIDX, key, kl);
            }
            store_iter_free(it);
            svc_inc_drop(e, b, v[i].sandbox, v[i].cluster);
        } else {
            /* Did stored events change clusters? Not when the only change of the sandbox in this
             * group is identities added to clusters (no cluster dissolved, split or lost one). */
            if (v[i].sandbox != moved_sb) { /* v is sorted by sandbox */
                moved_sb = v[i].sandbox;
                sb_moved = false;
                for (size_t j = 0; j < n; j++)
                    if (v[j].sandbox == moved_sb &&
                        (v[j].gone || (v[j].reasons & ~(unsigned)CLUSTER_MERGED)))
                        sb_moved = true;
            }
            bool moved = sb_moved || v[i].reasons != CLUSTER_MERGED;
            segsvc_touch(e, v[i].sandbox, v[i].cluster,
                         SEGSVC_TOUCH_PROFILE | (moved ? SEGSVC_TOUCH_MOVED : 0));
        }
    }
    return 0;
}

/* --- membership state --- */

static void idx_key(store_key *k, uint32_t sb, const char *seg, uint64_t cluster)
{
    skey_init(k, sb);
    skey_bytes(k, seg, SEGDEF_ID_LEN);
    skey_u64(k, cluster);
}

static void rev_key(store_key *k, uint32_t sb, uint64_t cluster, const char *seg)
{
    skey_init(k, sb);
    skey_u8(k, 0);
    skey_u64(k, cluster);
    skey_bytes(k, seg, SEGDEF_ID_LEN);
}

static void timer_key(store_key *k, uint32_t sb, int64_t due, uint64_t cluster, const char *seg)
{
    skey_init(k, sb);
    skey_u64(k, (uint64_t)due);
    skey_u64(k, cluster);
    skey_bytes(k, seg, SEGDEF_ID_LEN);
}

seg_state svc_state_get(kith_engine *e, store_batch *b, uint32_t sb, const char *seg,
                        uint64_t cluster)
{
    seg_state st = {0};
    store_key k;
    idx_key(&k, sb, seg, cluster);
    kith_buf v = {0};
    if (store_batch_get(e->store, b, STORE_CF_SEGIDX, k.b, k.n, &v) == 0 && v.len >= 17) {
        const uint8_t *p = (const uint8_t *)v.data;
        st.status = p[0];
        st.lqt = (int64_t)kith_get_be64(p + 1);
        st.due = (int64_t)kith_get_be64(p + 9);
    }
    kith_buf_free(&v);
    return st;
}

void svc_state_put(kith_engine *e, store_batch *b, uint32_t sb, const char *seg, uint64_t cluster,
                   const seg_state *st)
{
    (void)e;
    store_key k, r;
    idx_key(&k, sb, seg, cluster);
    rev_key(&r, sb, cluster, seg);
    if (st->status == SEG_NONE && st->due == 0) {
        store_batch_delete(b, STORE_CF_SEGIDX, k.b, k.n);
        store_batch_delete(b, STORE_CF_SEGIDX, r.b, r.n);
        return;
    }
    uint8_t v[17];
    v[0] = (uint8_t)st->status;
    kith_put_be64(v + 1, (uint64_t)st->lqt);
    kith_put_be64(v + 9, (uint64_t)st->due);
    store_batch_put(b, STORE_CF_SEGIDX, k.b, k.n, v, sizeof v);
    store_batch_put(b, STORE_CF_SEGIDX, r.b, r.n, v, sizeof v);
}

void svc_membership_drop_segment(kith_engine *e, store_batch *b, uint32_t sb, const char *id)
{
    store_key p;
    skey_init(&p, sb);
    skey_bytes(&p, id, SEGDEF_ID_LEN);
    store_iter *it = store_iter_new(e->store, b, STORE_CF_SEGIDX, p.b, p.n);
    for (; store_iter_valid(it); store_iter_next(it)) {
        size_t kl, vl;
        const uint8_t *key = store_iter_key(it, &kl);
        const uint8_t *val = store_iter_value(it, &vl);
        if (kl != p.n + 8) continue;
        uint64_t cluster = kith_get_be64(key + p.n);
        store_key r;
        rev_key(&r, sb, cluster, id);
        store_batch_delete(b, STORE_CF_SEGIDX, r.b, r.n);
        if (vl >= 17 && kith_get_be64(val + 9)) {
            store_key t;
            timer_key(&t, sb, (int64_t)kith_get_be64(val + 9), cluster, id);
            store_batch_delete(b, STORE_CF_TIMER, t.b, t.n);
        }
        store_batch_delete(b, STORE_CF_SEGIDX, key, kl);
    }
    store_iter_free(it);
}

json_t *segsvc_membership(kith_engine *e, uint32_t sb, uint64_t cluster)
{
    if (!svc_of(e)) return NULL;
    store_key p;
    skey_init(&p, sb);
    skey_u8(&p, 0);
    skey_u64(&p, cluster);
    json_t *ups = NULL;
    store_iter *it = store_iter_new(e->store, NULL, STORE_CF_SEGIDX, p.b, p.n);
    for (; store_iter_valid(it); store_iter_next(it)) {
        size_t kl, vl;
        const uint8_t *key = store_iter_key(it, &kl);
        const uint8_t *val = store_iter_value(it, &vl);
        if (kl != p.n + SEGDEF_ID_LEN || vl < 17 || val[0] == SEG_NONE) continue;
        char id[SEGDEF_ID_LEN + 1], ts[40];
        memcpy(id, key + p.n, SEGDEF_ID_LEN);
        id[SEGDEF_ID_LEN] = 0;
        kith_time_format((int64_t)kith_get_be64(val + 1), ts, sizeof ts);
        if (!ups) ups = json_object();
        json_object_set_new(ups, id,
                            json_pack("{s:s, s:s}", "status",
                                      seg_status_name(svc_status_shown(
                                          svc_of(e), sb, id, val[0], (int64_t)kith_get_be64(val + 1))),
                                      "lastQualificationTime", ts));
    }
    store_iter_free(it);
    return ups ? json_pack("{s:o}", "ups", ups) : NULL;
}

/* --- evaluation --- */

/* One event of the cluster for an evaluation: stored or recent, parsed once. */
struct ev_rec {
    int64_t ts;
    uint64_t identity;
    char id[KITH_ID_LEN * 4]; /* event id (truncated copies never collide in practice) */
    char dataset[KITH_ID_LEN + 1];
    json_t *ev; /* owned reference */
};

static int ev_cmp(const void *a, const void *b)
{
    const struct ev_rec *x = a, *y = b;
    if (x->ts != y->ts) return x->ts < y->ts ? -1 : 1;
    if (x->identity != y->identity) return x->identity < y->identity ? -1 : 1;
    return strcmp(x->id, y->id);
}

static struct ev_rec *ev_push(struct ev_rec **v, size_t *n, size_t *cap)
{
    if (*n == *cap) {
        *cap = *cap ? *cap * 2 : 64;
        *v = kith_xrealloc(*v, *cap * sizeof **v);
    }
    return &(*v)[(*n)++];
}

/* The events of a cluster's members at or after since (ms; INT64_MIN = all), committed (or read
 * through batch b when not NULL: a delete in this group hides them) plus those appended recently,
 * sorted by timestamp and deduplicated, into *out (owned; ev_recs_free). */
static size_t cluster_events(struct segsvc *s, store_batch *b, uint32_t sb,
                             const cluster_members *m, int64_t since, struct ev_rec **out)
{
    kith_engine *e = s->e;
    struct ev_rec *v = NULL;
    size_t n = 0, cap = 0;
    uint64_t mark = recent_mark(e); /* before the store is read: see kith/recent.h */
    for (size_t i = 0; i < m->n; i++) {
        store_key k;
        skey_init(&k, sb);
        skey_u64(&k, m->v[i].id);
        size_t plen = k.n;
        store_iter *it = store_iter_new(e->store, b, STORE_CF_EVENT, k.b, plen);
        if (since != INT64_MIN) {
            skey_u64(&k, (uint64_t)since + TS_BIAS);
            store_iter_seek(it, k.b, k.n);
        }
        for (; store_iter_valid(it); store_iter_next(it)) {
            size_t kl, vl;
            const uint8_t *key = store_iter_key(it, &kl);
            const uint8_t *val = store_iter_value(it, &vl);
            if (kl < plen + 8 || vl < 8 + KITH_ID_LEN) continue;
            json_t *ev = kjson_parse((const char *)val + 8 + KITH_ID_LEN, vl - 8 - KITH_ID_LEN,
                                     256, NULL, NULL);
            if (!ev) continue;
            struct ev_rec *r = ev_push(&v, &n, &cap);
            r->ts = (int64_t)(kith_get_be64(key + plen) - TS_BIAS);
            r->identity = m->v[i].id;
            size_t idl = kl - plen - 8;
            if (idl >= sizeof r->id) idl = sizeof r->id - 1;
            memcpy(r->id, key + plen + 8, idl);
            r->id[idl] = 0;
            memcpy(r->dataset, val + 8, KITH_ID_LEN);
            r->dataset[KITH_ID_LEN] = 0;
            r->ev = ev;
        }
        store_iter_free(it);
        for (const recent_event *p = recent_first(e, mark, sb, m->v[i].id); p;
             p = recent_next(p, mark)) {
            json_t *ev = p->ts < since ? NULL : recent_tree(p);
            if (!ev) continue;
            struct ev_rec *r = ev_push(&v, &n, &cap);
            r->ts = p->ts;
            r->identity = p->identity;
            snprintf(r->id, sizeof r->id, "%s", p->event_id);
            memcpy(r->dataset, p->dataset, sizeof r->dataset);
            r->ev = json_incref(ev);
        }
    }
    if (n > 1) qsort(v, n, sizeof *v, ev_cmp);
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        if (k > 0 && ev_cmp(&v[i], &v[k - 1]) == 0) { /* written and still pending */
            json_decref(v[i].ev);
            continue;
        }
        v[k++] = v[i];
    }
    *out = v;
    return k;
}

static void ev_recs_free(struct ev_rec *v, size_t n)
{
    for (size_t i = 0; i < n; i++)
        json_decref(v[i].ev);
    free(v);
}

struct inseg_ctx {
    kith_engine *e;
    store_batch *b;
    uint32_t sb;
    uint64_t cluster;
};

static bool in_segment_cb(void *arg, const char *id)
{
    struct inseg_ctx *c = arg;
    if (strlen(id) != SEGDEF_ID_LEN) return false;
    seg_state st = svc_state_get(c->e, c->b, c->sb, id, c->cluster);
    return st.status == SEG_REALIZED || st.status == SEG_EXISTING;
}


/* Remembers a realized or exited change for the change stream (published once durable). */
static void note_change(struct segsvc *s, uint32_t sb, uint64_t cluster, const char *seg,
                        int status, int64_t lqt, const cluster_members *m)
{
    if (s->nchg == s->capchg) {
        s->capchg = s->capchg ? s->capchg * 2 : 64;
        s->chg = kith_xrealloc(s->chg, s->capchg * sizeof *s->chg);
    }
    struct seg_change *c = &s->chg[s->nchg++];
    memset(c, 0, sizeof *c);
    c->sb = sb;
    c->cluster = cluster;
    memcpy(c->seg, seg, SEGDEF_ID_LEN);
    c->status = status;
    c->lqt = lqt;
    if (m && m->n) {
        c->ns = m->v[0].ns;
        c->value = kith_xmalloc(m->v[0].len + 1);
        memcpy(c->value, m->v[0].value, m->v[0].len);
        c->value[m->v[0].len] = 0;
        c->len = m->v[0].len;
    }
}

void svc_note_change(struct segsvc *s, uint32_t sb, uint64_t cluster, const char *seg, int status,
                     int64_t lqt, const cluster_members *m)
{
    note_change(s, sb, cluster, seg, status, lqt, m);
}

struct change_token {
    struct seg_change *v;
    size_t n;
};

void *segsvc_group_sealed(kith_engine *e, int rc)
{
    struct segsvc *s = svc_of(e);
    if (!s || s->nchg == 0) return NULL;
    if (rc != 0) { /* the group was not written: its changes never happened */
        changes_clear(s->chg, s->nchg);
        s->nchg = 0;
        return NULL;
    }
    struct change_token *t = kith_xmalloc(sizeof *t);
    t->v = s->chg;
    t->n = s->nchg;
    s->chg = NULL;
    s->nchg = s->capchg = 0;
    return t;
}

void segsvc_group_durable(kith_engine *e, void *token, int rc)
{
    struct change_token *t = token;
    if (!t) return;
    if (rc == 0) segfeed_publish_frames(e, t->v, t->n);
    changes_clear(t->v, t->n);
    free(t->v);
    free(t);
}

/* --- merge policies of segments (resolved once per group) --- */

/* The policy a segment evaluates with: its mergePolicyId, else the sandbox's default; a policy
 * deleted since the definition was stored falls back to the default. Index into s->pol. */
static size_t policy_slot(struct segsvc *s, uint32_t sb, const char *mpid)
{
    for (size_t i = 0; i < s->npol; i++)
        if (s->pol[i].sb == sb && strcmp(s->pol[i].id, mpid) == 0) return i;
    if (s->npol == s->cappol) {
        s->cappol = s->cappol ? s->cappol * 2 : 8;
        s->pol = kith_xrealloc(s->pol, s->cappol * sizeof *s->pol);
    }
    struct pol_slot *p = &s->pol[s->npol];
    memset(p, 0, sizeof *p);
    p->sb = sb;
    snprintf(p->id, sizeof p->id, "%s", mpid);
    if (profile_policy_resolve(s->e, sb, *mpid ? mpid : NULL, &p->p) != 0)
        profile_policy_resolve(s->e, sb, NULL, &p->p);
    /* the views are merged under the sandbox's materialised policy: they answer for this one
     * (and their diffs tell which fields a record changed) when it merges the same way */
    merge_policy mp;
    profile_materialised_policy(s->e, sb, &mp);
    p->sig = merge_policy_signature(&p->p);
    p->materialised = p->sig != PROFILE_SIG_NONE && p->sig == merge_policy_signature(&mp);
    merge_policy_clear(&mp);
    return s->npol++;
}

static void policies_clear(struct segsvc *s)
{
    for (size_t i = 0; i < s->npol; i++)
        merge_policy_clear(&s->pol[i].p);
    s->npol = 0;
}

/* The inputs of one (policy, member) pair within a cluster's evaluation. */
struct eval_input {
    size_t slot;
    ssize_t member; /* -1: the whole cluster (pdg) */
    json_t *profile, *events;
};

struct cluster_ctx {
    struct segsvc *s;
    store_batch *b;
    uint32_t sb;
    uint64_t cluster;
    const cluster_members *m;
    json_t *view;          /* the materialised view entity from the batch (lazily) */
    uint64_t view_sig;     /* the signature it was merged under */
    bool view_read, view_stored;
    struct ev_rec *evs;    /* the events in the widest lookback any wanted segment needs */
    size_t nevs;
    json_t *all_events;    /* evs as an array (lazily) */
    json_t *computed;      /* computed attribute values, when a wanted segment reads them */
    svc_inc *inc;          /* the incremental aggregate states (svc_inc.c) */
    const pql_inc_state **incp; /* scratch: one program's states */
    struct eval_input in[8];
    size_t nin;
};

static bool dataset_listed(const merge_policy *p, const char *dataset)
{
    for (size_t i = 0; i < p->norder; i++)
        if (strcmp(p->order[i], dataset) == 0) return true;
    return false;
}

/* The profile and events a segment of policy slot sees, for member (or the whole cluster). */
static struct eval_input *input_for(struct cluster_ctx *c, size_t slot, ssize_t member)
{
    for (size_t i = 0; i < c->nin; i++)
        if (c->in[i].slot == slot && c->in[i].member == member) return &c->in[i];
    struct eval_input *in;
    if (c->nin < 8) {
        in = &c->in[c->nin++];
    } else { /* full (a "none" policy over a big cluster): recycle the last one */
        in = &c->in[7];
        json_decref(in->profile);
        json_decref(in->events);
    }
    const struct pol_slot *ps = &c->s->pol[slot];
    in->slot = slot;
    in->member = member;
    if (ps->materialised && member < 0 && !c->view_read) {
        c->view_read = true;
        store_key pk;
        skey_init(&pk, c->sb);
        skey_u64(&pk, c->cluster);
        kith_buf pv = {0};
        if (store_batch_get(c->s->e->store, c->b, STORE_CF_PROFILE, pk.b, pk.n, &pv) == 0) {
            json_t *view = kjson_parse(pv.data, pv.len, 256, NULL, NULL);
            c->view = json_incref(json_object_get(view, "entity"));
            c->view_sig = profile_view_signature(view);
            c->view_stored = view != NULL;
            json_decref(view);
        }
        kith_buf_free(&pv);
    }
    /* the stored view answers when it was merged under this policy (else a re-materialisation
     * after a policy change is under way: merge now) */
    if (ps->materialised && member < 0 && (!c->view_stored || c->view_sig == ps->sig)) {
        in->profile = json_incref(c->view);
    } else {
        uint64_t one;
        uint64_t *ids = member >= 0 ? &one : kith_xcalloc(c->m->n + 1, sizeof *ids);
        size_t nids = member >= 0 ? 1 : c->m->n;
        if (member >= 0)
            one = c->m->v[member].id;
        else
            for (size_t i = 0; i < c->m->n; i++)
                ids[i] = c->m->v[i].id;
        json_t *view = profile_view_members(c->s->e, c->b, c->sb, ids, nids, &ps->p);
        in->profile = json_incref(json_object_get(view, "entity"));
        json_decref(view);
        if (member < 0) free(ids);
    }
    if (c->computed) { /* _computed.<name> (src/ca/): the cluster's, whatever the policy */
        if (!in->profile) in->profile = json_object();
        json_object_set(in->profile, "_computed", c->computed);
    }
    bool precedence = ps->p.attr == MP_DATASET_PRECEDENCE;
    if (!precedence && member < 0) {
        if (!c->all_events) {
            c->all_events = json_array();
            for (size_t i = 0; i < c->nevs; i++)
                json_array_append(c->all_events, c->evs[i].ev);
        }
        in->events = json_incref(c->all_events);
    } else {
        in->events = json_array();
        for (size_t i = 0; i < c->nevs; i++) {
            if (member >= 0 && c->evs[i].identity != c->m->v[member].id) continue;
            if (precedence && !dataset_listed(&ps->p, c->evs[i].dataset)) continue;
            json_array_append(in->events, c->evs[i].ev);
        }
    }
    return in;
}

static void cluster_ctx_free(struct cluster_ctx *c)
{
    for (size_t i = 0; i < c->nin; i++) {
        json_decref(c->in[i].profile);
        json_decref(c->in[i].events);
    }
    json_decref(c->view);
    json_decref(c->all_events);
    json_decref(c->computed);
    ev_recs_free(c->evs, c->nevs);
}

/* Event aggregates come from the cluster's incremental states when the policy sees all of the
 * cluster's events (a dataset-precedence policy filters them by dataset, a "none" graph splits
 * them by identity: those rescan). */
static bool inc_policy(const merge_policy *p)
{
    return p->graph != MP_GRAPH_NONE && p->attr != MP_DATASET_PRECEDENCE;
}

/* Evaluates d for the cluster under its merge policy: over the stitched profile, or, for a
 * policy whose identityGraph is "none", over each member identity alone (the profile qualifies
 * when one of them does; the next change is the earliest of theirs). */
static int eval_def(struct cluster_ctx *c, const segdef *d, pql_input *base, pql_result *res)
{
    size_t slot = policy_slot(c->s, c->sb, d->mpid);
    base->inc = NULL;
    if (c->s->pol[slot].p.graph != MP_GRAPH_NONE) {
        struct eval_input *in = input_for(c, slot, -1);
        base->profile = in->profile;
        base->events = in->events;
        if (inc_policy(&c->s->pol[slot].p) && c->inc) {
            svc_inc_states_for(c->inc, d, c->incp);
            base->inc = c->incp;
        }
        int rc = pql_eval(c->s->ev, d->prog, base, res);
        base->inc = NULL;
        return rc;
    }
    pql_result acc = {.match = false, .next_change_ms = PQL_NEVER};
    for (size_t i = 0; i < c->m->n; i++) {
        struct eval_input *in = input_for(c, slot, (ssize_t)i);
        base->profile = in->profile;
        base->events = in->events;
        pql_result r;
        int rc = pql_eval(c->s->ev, d->prog, base, &r);
        if (rc) return rc;
        acc.match = acc.match || r.match;
        acc.steps += r.steps;
        if (r.next_change_ms < acc.next_change_ms) acc.next_change_ms = r.next_change_ms;
    }
    *res = acc;
    return 0;
}

/* Does candidate d run? DIRECT always; DEPS when a segment it reads changed membership for this
 * profile in this group (changed: ids, n); POLICY when its merge policy is not materialised. */
static bool candidate_runs(struct cluster_ctx *c, const segdef *d, int kind, const char **changed,
                           size_t nchanged)
{
    if (kind == SVC_CAND_DIRECT) return true;
    if (kind == SVC_CAND_POLICY) {
        size_t slot = policy_slot(c->s, c->sb, d->mpid); /* may grow c->s->pol */
        return !c->s->pol[slot].materialised;
    }
    const pql_deps *dp = pql_program_deps(d->prog);
    for (size_t i = 0; i < dp->n_segments; i++)
        for (size_t j = 0; j < nchanged; j++)
            if (strcmp(dp->segments[i], changed[j]) == 0) return true;
    return false;
}

/* The union-view paths a record changed: the committed view (before this group) against the
 * batch's. */
static void record_changes(struct segsvc *s, store_batch *b, uint32_t sb, uint64_t cluster,
                           seg_touch *t)
{
    store_key pk;
    skey_init(&pk, sb);
    skey_u64(&pk, cluster);
    json_t *views[2] = {NULL, NULL};
    for (int i = 0; i < 2; i++) {
        kith_buf pv = {0};
        int rc = i == 0 ? store_get(s->e->store, STORE_CF_PROFILE, pk.b, pk.n, &pv)
                        : store_batch_get(s->e->store, b, STORE_CF_PROFILE, pk.b, pk.n, &pv);
        if (rc == 0) views[i] = kjson_parse(pv.data, pv.len, 256, NULL, NULL);
        else if (rc != KITH_ENOTFOUND) t->paths_all = true;
        kith_buf_free(&pv);
    }
    /* views merged under different policies (a re-materialisation is under way) tell nothing */
    if (views[0] && views[1] && profile_view_signature(views[0]) != profile_view_signature(views[1]))
        t->paths_all = true;
    if (!t->paths_all)
        svc_profile_diff(json_object_get(views[0], "entity"), json_object_get(views[1], "entity"),
                         &t->paths, &t->npaths, &t->paths_all);
    json_decref(views[0]);
    json_decref(views[1]);
}

/* Re-evaluates the streaming segments of one cluster that the touch concerns (svc_index.c), or
 * only segment `only` when it is not NULL. */
static int eval_cluster(struct segsvc *s, store_batch *b, uint32_t sb, uint64_t cluster,
                        seg_touch *t, int64_t now, const segdef *only)
{
    if (only) {
        if (!only->prog) return 0;
        size_t ncand = 0;
        for (size_t i = 0; i < s->n && !ncand; i++)
            if (s->v[i] == only) {
                svc_index_candidates(s, sb, &(seg_touch){0}); /* sizes s->cand */
                s->cand[ncand++] = (uint32_t)i;
                s->cand_kind[i] = SVC_CAND_DIRECT;
            }
        /* A job's re-evaluation (not the end of the group) reads the events: the group's own
         * events reach the aggregate states once, at its end (svc_inc_begin). */
        return ncand ? eval_candidates(s, b, sb, cluster, t, now, 1, false) : 0;
    }
    if ((t->what & SEGSVC_TOUCH_RECORD) &&
        !(t->what & (SEGSVC_TOUCH_PROFILE | SEGSVC_TOUCH_TIMER | SEGSVC_TOUCH_DELETE))) {
        /* Field-level skipping holds for the materialised view only; a sandbox whose default
         * policy merges otherwise re-runs every segment on a record. */
        size_t slot = policy_slot(s, sb, ""); /* may grow s->pol */
        if (!s->pol[slot].materialised) t->paths_all = true;
        else record_changes(s, b, sb, cluster, t);
    }
    return eval_candidates(s, b, sb, cluster, t, now, svc_index_candidates(s, sb, t), true);
}

/* Evaluates the ncand candidates in s->cand for one cluster. */
static int eval_candidates(struct segsvc *s, store_batch *b, uint32_t sb, uint64_t cluster,
                           const seg_touch *t, int64_t now, size_t ncand, bool use_inc)
{
    kith_engine *e = s->e;
    bool events = false, computed = false;
    int64_t lookback = 0;
    if (!ncand) return 0;
    cluster_members m;
    int rc = identity_members(e, b, sb, cluster, &m);
    if (rc == KITH_ENOTFOUND) return 0;
    if (rc) return rc;
    /* Event aggregates from the profile's incremental states; only what they cannot answer
     * reads the events (the states being built read them too). */
    svc_inc inc = {0};
    int64_t build_since =
        use_inc ? svc_inc_begin(s, b, sb, cluster, t->what, ncand, now, &inc) : INT64_MAX;
    size_t maxsites = 1;
    for (size_t k = 0; k < ncand; k++) {
        const segdef *d = s->v[s->cand[k]];
        size_t ns = pql_inc_nsites(d->prog);
        if (ns > maxsites) maxsites = ns;
    }
    const pql_inc_state **incp = kith_xcalloc(maxsites, sizeof *incp);
    for (size_t k = 0; k < ncand; k++) {
        const segdef *d = s->v[s->cand[k]];
        const pql_deps *dp = pql_program_deps(d->prog);
        if (svc_reads_computed(dp)) computed = true;
        if (dp->reads_events && build_since == INT64_MAX && pql_inc_only(d->prog)) {
            /* answered by states when they are usable (known now: nothing is being built) and
             * the segment's policy sees every event of the cluster */
            size_t slot = policy_slot(s, sb, d->mpid);
            if (inc_policy(&s->pol[slot].p) && svc_inc_states_for(&inc, d, incp)) continue;
        }
        if (dp->reads_events) {
            events = true;
            if (dp->lookback_ms < 0 || lookback < 0)
                lookback = -1;
            else if (dp->lookback_ms > lookback)
                lookback = dp->lookback_ms;
        }
    }
    struct cluster_ctx c = {
        .s = s, .b = b, .sb = sb, .cluster = cluster, .m = &m, .inc = &inc, .incp = incp};
    int64_t ca_next = INT64_MAX; /* the next instant a computed attribute ages */
    c.computed = computed ? ca_values(e, b, sb, cluster, now, &ca_next) : NULL;
    if (events || build_since != INT64_MAX) {
        /* A day of slack: calendar-relative windows (today, this month) reach a little further
         * back than their nominal length. */
        int64_t since = !events ? INT64_MAX : lookback < 0 ? INT64_MIN : now - lookback - 86400000LL * 2;
        if (build_since < since) since = build_since;
        c.nevs = cluster_events(s, (t->what & SEGSVC_TOUCH_DELETE) ? b : NULL, sb, &m, since,
                                &c.evs);
        s->event_reads++;
        if (build_since != INT64_MAX) {
            json_t **evs = kith_xcalloc(c.nevs + 1, sizeof *evs);
            size_t n = 0;
            for (size_t i = 0; i < c.nevs; i++)
                if (c.evs[i].ts >= build_since) evs[n++] = c.evs[i].ev;
            svc_inc_build(s, &inc, evs, n);
            free(evs);
        }
    }
    /* Every membership state of the cluster in one ordered scan (profile → segments index, through
     * the batch) instead of one point read per evaluated segment. */
    struct state_ent {
        char id[SEGDEF_ID_LEN];
        seg_state st;
    } *states = NULL;
    size_t nstates = 0, capstates = 0;
    {
        store_key p;
        skey_init(&p, sb);
        skey_u8(&p, 0);
        skey_u64(&p, cluster);
        store_iter *it = store_iter_new(e->store, b, STORE_CF_SEGIDX, p.b, p.n);
        for (; store_iter_valid(it); store_iter_next(it)) {
            size_t kl, vl;
            const uint8_t *key = store_iter_key(it, &kl);
            const uint8_t *val = store_iter_value(it, &vl);
            if (kl != p.n + SEGDEF_ID_LEN || vl < 17) continue;
            if (nstates == capstates) {
                capstates = capstates ? capstates * 2 : 16;
                states = kith_xrealloc(states, capstates * sizeof *states);
            }
            memcpy(states[nstates].id, key + p.n, SEGDEF_ID_LEN);
            states[nstates].st = (seg_state){val[0], (int64_t)kith_get_be64(val + 1),
                                             (int64_t)kith_get_be64(val + 9)};
            nstates++;
        }
        store_iter_free(it);
    }
    struct inseg_ctx ic = {e, b, sb, cluster};
    pql_input in = {.now_ms = now, .in_segment = in_segment_cb, .arg = &ic};
    const char **changed = NULL; /* segments whose membership flipped for this profile */
    size_t nchanged = 0;
    for (size_t k = 0; k < ncand; k++) {
        segdef *d = s->v[s->cand[k]];
        if (!candidate_runs(&c, d, s->cand_kind[s->cand[k]], changed, nchanged)) continue;
        pql_result res;
        int erc = eval_def(&c, d, &in, &res);
        s->evaluations++;
        if (erc) {
            kith_log(KITH_LOG_WARN, "segment", "segment %s: evaluation budget exceeded", d->id);
            continue;
        }
        if (ca_next < res.next_change_ms && svc_reads_computed(pql_program_deps(d->prog)))
            res.next_change_ms = ca_next;
        seg_state old = {0};
        for (size_t lo = 0, hi = nstates; lo < hi;) { /* the scan is in segment id order */
            size_t mid = (lo + hi) / 2;
            int cmp = memcmp(states[mid].id, d->id, SEGDEF_ID_LEN);
            if (cmp == 0) {
                old = states[mid].st;
                break;
            }
            if (cmp < 0) lo = mid + 1;
            else hi = mid;
        }
        seg_state st = old;
        bool was = old.status == SEG_REALIZED || old.status == SEG_EXISTING;
        if (was != res.match) {
            changed = kith_xrealloc(changed, (nchanged + 1) * sizeof *changed);
            changed[nchanged++] = d->id;
        }
        if (res.match) {
            if (old.status == SEG_NONE || old.status == SEG_EXITED) {
                st.status = SEG_REALIZED;
                st.lqt = now;
                s->realized++;
                note_change(s, sb, cluster, d->id, SEG_REALIZED, now, &m);
            } else if (old.status == SEG_REALIZED && !(t->what & SEGSVC_TOUCH_TIMER)) {
                st.status = SEG_EXISTING;
            }
        } else if (old.status == SEG_REALIZED || old.status == SEG_EXISTING) {
            st.status = SEG_EXITED;
            st.lqt = now;
            s->exited++;
            note_change(s, sb, cluster, d->id, SEG_EXITED, now, &m);
        }
        st.due = res.next_change_ms == PQL_NEVER ? 0 : res.next_change_ms;
        if (st.due && st.due <= now) st.due = now + 1;
        if (st.status == old.status && st.lqt == old.lqt && st.due == old.due) continue;
        if (old.due != st.due) {
            store_key tk;
            if (old.due) {
                timer_key(&tk, sb, old.due, cluster, d->id);
                store_batch_delete(b, STORE_CF_TIMER, tk.b, tk.n);
            }
            if (st.due) {
                timer_key(&tk, sb, st.due, cluster, d->id);
                store_batch_put(b, STORE_CF_TIMER, tk.b, tk.n, "", 0);
                s->timers_set++;
            }
        }
        svc_state_put(e, b, sb, d->id, cluster, &st);
    }
    free(changed);
    free(states);
    cluster_ctx_free(&c);
    cluster_members_free(&m);
    svc_inc_end(s, b, &inc);
    free(incp);
    return 0;
}

int svc_eval_segment(kith_engine *e, store_batch *b, uint32_t sb, uint64_t cluster, const segdef *d,
                     int64_t now)
{
    struct segsvc *s = svc_of(e);
    seg_touch t = {.what = SEGSVC_TOUCH_TIMER};
    int rc = eval_cluster(s, b, sb, cluster, &t, now, d);
    policies_clear(s);
    return rc;
}

static int touched_cmp(const void *a, const void *b)
{
    const struct touched *x = a, *y = b;
    if (x->sb != y->sb) return x->sb < y->sb ? -1 : 1;
    if (x->cluster != y->cluster) return x->cluster < y->cluster ? -1 : 1;
    return 0;
}

int segsvc_flush_group(kith_engine *e, store_batch *b)
{
    struct segsvc *s = svc_of(e);
    if (!s) return 0;
    int64_t now = kith_now_ms();
    if (s->nt == 0) {
        svc_inc_group_end(s);
        return 0;
    }
    uint64_t t0 = kith_mono_ns();
    qsort(s->t, s->nt, sizeof *s->t, touched_cmp);
    int rc = 0;
    uint64_t etypes[16];
    for (size_t i = 0; i < s->nt && rc == 0;) {
        size_t j = i;
        seg_touch t = {.etypes = etypes};
        for (; j < s->nt && touched_cmp(&s->t[i], &s->t[j]) == 0; j++) {
            t.what |= s->t[j].what;
            if (!(s->t[j].what & SEGSVC_TOUCH_EVENT)) continue;
            size_t k = 0;
            while (k < t.netypes && etypes[k] != s->t[j].etype)
                k++;
            if (k < t.netypes) continue;
            if (t.netypes == 16) t.etypes_all = true;
            else etypes[t.netypes++] = s->t[j].etype;
        }
        rc = eval_cluster(s, b, s->t[i].sb, s->t[i].cluster, &t, now, NULL);
        for (size_t k = 0; k < t.npaths; k++)
            free(t.paths[k]);
        free(t.paths);
        i = j;
    }
    s->nt = 0;
    svc_inc_group_end(s);
    policies_clear(s);
    s->flush_ns += kith_mono_ns() - t0;
    return rc;
}

/* --- timers --- */

struct timer_item {
    uint8_t key[4 + 8 + 8 + SEGDEF_ID_LEN];
};
struct timer_call {
    kith_engine *e;
    struct timer_item *v;
    size_t n;
};

static int timer_fire_fn(void *ctx, store_batch *b)
{
    struct timer_call *c = ctx;
    struct segsvc *s = svc_of(c->e);
    for (size_t i = 0; i < c->n; i++) {
        const uint8_t *k = c->v[i].key;
        kith_buf v = {0};
        int rc = store_batch_get(c->e->store, b, STORE_CF_TIMER, k, sizeof c->v[i].key, &v);
        kith_buf_free(&v);
        if (rc) continue; /* rescheduled or dropped meanwhile */
        store_batch_delete(b, STORE_CF_TIMER, k, sizeof c->v[i].key);
        s->timers_fired++;
        segsvc_touch(c->e, kith_get_be32(k), kith_get_be64(k + 12), SEGSVC_TOUCH_TIMER);
    }
    return 0;
}

/* Collects due timers (at most TIMER_BATCH); returns the earliest future due (or INT64_MAX). */
static int64_t timers_due(kith_engine *e, int64_t now, struct timer_call *c)
{
    int64_t next = INT64_MAX;
    store_iter *it = store_iter_new(e->store, NULL, STORE_CF_TIMER, "", 0);
    while (store_iter_valid(it) && c->n < TIMER_BATCH) {
        size_t kl;
        const uint8_t *k = store_iter_key(it, &kl);
        if (kl != sizeof c->v[0].key) {
            store_iter_next(it);
            continue;
        }
        int64_t due = (int64_t)kith_get_be64(k + 4);
        if (due <= now) {
            memcpy(c->v[c->n++].key, k, kl);
            store_iter_next(it);
            continue;
        }
        if (due < next) next = due;
        uint32_t sb = kith_get_be32(k);
        if (sb == UINT32_MAX) break;
        uint8_t nk[4];
        kith_put_be32(nk, sb + 1);
        store_iter_seek(it, nk, 4);
    }
    store_iter_free(it);
    return next;
}

static void *timer_main(void *arg)
{
    struct segsvc *s = arg;
    struct timer_call c = {s->e, kith_xcalloc(TIMER_BATCH, sizeof(struct timer_item)), 0};
    pthread_mutex_lock(&s->mu);
    while (!s->stopping) {
        pthread_mutex_unlock(&s->mu);
        int64_t now = kith_now_ms();
        c.n = 0;
        int64_t next = timers_due(s->e, now, &c);
        if (c.n) apply_call(s->e->apply, timer_fire_fn, &c, false);
        int64_t wait = c.n == TIMER_BATCH ? 0 : next == INT64_MAX ? 200 : next - kith_now_ms();
        if (wait > 200) wait = 200; /* new timers may have been set meanwhile */
        pthread_mutex_lock(&s->mu);
        if (wait > 0 && !s->stopping) {
            struct timespec ts;
            clock_gettime(CLOCK_REALTIME, &ts);
            ts.tv_nsec += (long)(wait % 1000) * 1000000L;
            ts.tv_sec += wait / 1000 + ts.tv_nsec / 1000000000L;
            ts.tv_nsec %= 1000000000L;
            pthread_cond_timedwait(&s->cv, &s->mu, &ts);
        }
    }
    pthread_mutex_unlock(&s->mu);
    free(c.v);
    return NULL;
}
