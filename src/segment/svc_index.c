/* kith segment index: which streaming segments a change of a profile concerns (DESIGN.md section 4,
 * "skipping"). Built from each compiled program's dependencies (pql_deps: profile fields read, event
 * types its event filters restrict to, whether it reads events, inSegment references) whenever the
 * definitions change, per sandbox:
 *
 *   all          every streaming or edge segment, creation order (timers, merges, deletes)
 *   by_type      eventType hash → segments whose every event source filters to that type
 *   any_events   segments that read events of any type
 *   by_root      first field name hash → segments reading a field under it
 *   with_deps    segments with inSegment (concerned when a segment they read changes)
 *   own_policy   segments with a mergePolicyId (their view is not always the materialised one)
 *
 * Skipping is sound because a segment's answer is a function of the fields it reads and the events
 * its filters can admit, plus `now`, whose effect the timers cover: a skipped segment's stored
 * answer and timer stay right. Anything the index cannot vouch for is evaluated. */
#include <stdlib.h>
#include <string.h>

#include "svc_int.h"

struct hpos {
    uint64_t h;
    uint32_t pos;
};

struct sb_index {
    uint32_t sb;
    uint32_t *all, *any_events, *with_deps, *own_policy;
    size_t nall, nany, ndeps, nown;
    struct hpos *by_type, *by_root;
    size_t ntype, nroot;
};

struct seg_index {
    uint64_t gen;
    struct sb_index *v;
    size_t n;
    uint32_t *mark; /* per position: the stamp of the last candidate set it joined */
    uint32_t stamp;
    size_t cap;
};

uint64_t svc_etype_hash(const char *s, size_t len)
{
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < len; i++)
        h = (h ^ (uint8_t)s[i]) * 0x100000001b3ull;
    return h ? h : 1;
}

static uint64_t root_hash(const char *path)
{
    return svc_etype_hash(path, strcspn(path, "."));
}

static int hpos_cmp(const void *a, const void *b)
{
    const struct hpos *x = a, *y = b;
    if (x->h != y->h) return x->h < y->h ? -1 : 1;
    return x->pos < y->pos ? -1 : x->pos > y->pos;
}

static void push_u32(uint32_t **v, size_t *n, uint32_t x)
{
    if ((*n & (*n - 1)) == 0) *v = kith_xrealloc(*v, (*n ? *n * 2 : 1) * sizeof **v);
    (*v)[(*n)++] = x;
}

static void push_hpos(struct hpos **v, size_t *n, uint64_t h, uint32_t pos)
{
    if ((*n & (*n - 1)) == 0) *v = kith_xrealloc(*v, (*n ? *n * 2 : 1) * sizeof **v);
    (*v)[(*n)++] = (struct hpos){h, pos};
}

static void sb_index_clear(struct sb_index *x)
{
    free(x->all);
    free(x->any_events);
    free(x->with_deps);
    free(x->own_policy);
    free(x->by_type);
    free(x->by_root);
    memset(x, 0, sizeof *x);
}

void svc_index_free(struct segsvc *s)
{
    struct seg_index *ix = s->idx;
    if (!ix) return;
    for (size_t i = 0; i < ix->n; i++)
        sb_index_clear(&ix->v[i]);
    free(ix->v);
    free(ix->mark);
    free(s->cand);
    free(s->cand_kind);
    free(ix);
    s->idx = NULL;
    s->cand = NULL;
    s->cand_kind = NULL;
}

static struct sb_index *sb_find(struct seg_index *ix, uint32_t sb)
{
    for (size_t i = 0; i < ix->n; i++)
        if (ix->v[i].sb == sb) return &ix->v[i];
    return NULL;
}

/* Apply thread: rebuilds the index when the definitions changed since it was built. */
static struct seg_index *index_get(struct segsvc *s)
{
    struct seg_index *ix = s->idx;
    if (ix && ix->gen == s->gen) return ix;
    if (!ix) ix = s->idx = kith_xcalloc(1, sizeof *ix);
    for (size_t i = 0; i < ix->n; i++)
        sb_index_clear(&ix->v[i]);
    ix->n = 0;
    for (size_t pos = 0; pos < s->n; pos++) {
        const segdef *d = s->v[pos];
        if (!d->prog || d->mode == PQL_MODE_BATCH) continue;
        struct sb_index *x = sb_find(ix, d->sb);
        if (!x) {
            ix->v = kith_xrealloc(ix->v, (ix->n + 1) * sizeof *ix->v);
            x = &ix->v[ix->n++];
            memset(x, 0, sizeof *x);
            x->sb = d->sb;
        }
        const pql_deps *dp = pql_program_deps(d->prog);
        push_u32(&x->all, &x->nall, (uint32_t)pos);
        if (dp->reads_events) {
            if (dp->n_event_types == 0) push_u32(&x->any_events, &x->nany, (uint32_t)pos);
            for (size_t i = 0; i < dp->n_event_types; i++)
                push_hpos(&x->by_type, &x->ntype,
                          svc_etype_hash(dp->event_types[i], strlen(dp->event_types[i])),
                          (uint32_t)pos);
        }
        for (size_t i = 0; i < dp->n_fields; i++)
            push_hpos(&x->by_root, &x->nroot, root_hash(dp->fields[i]), (uint32_t)pos);
        if (dp->n_segments) push_u32(&x->with_deps, &x->ndeps, (uint32_t)pos);
        if (d->mpid[0]) push_u32(&x->own_policy, &x->nown, (uint32_t)pos);
    }
    for (size_t i = 0; i < ix->n; i++) {
        if (ix->v[i].ntype > 1)
            qsort(ix->v[i].by_type, ix->v[i].ntype, sizeof *ix->v[i].by_type, hpos_cmp);
        if (ix->v[i].nroot > 1)
            qsort(ix->v[i].by_root, ix->v[i].nroot, sizeof *ix->v[i].by_root, hpos_cmp);
    }
    if (ix->cap < s->n + 1) {
        ix->cap = s->n + 64;
        ix->mark = kith_xrealloc(ix->mark, ix->cap * sizeof *ix->mark);
        s->cand = kith_xrealloc(s->cand, ix->cap * sizeof *s->cand);
        s->cand_kind = kith_xrealloc(s->cand_kind, ix->cap * sizeof *s->cand_kind);
    }
    memset(ix->mark, 0, ix->cap * sizeof *ix->mark);
    ix->stamp = 0;
    ix->gen = s->gen;
    return ix;
}

bool svc_sandbox_has_streaming(struct segsvc *s, uint32_t sb)
{
    const struct sb_index *x = sb_find(index_get(s), sb);
    return x && x->nall;
}

/* Does a field the segment reads overlap a changed path (one a prefix of the other)? */
static bool paths_overlap(const char *f, const char *c)
{
    size_t lf = strlen(f), lc = strlen(c), l = lf < lc ? lf : lc;
    if (strncmp(f, c, l) != 0) return false;
    return lf == lc || (lf > lc ? f[l] : c[l]) == '.';
}

static bool fields_touched(const pql_deps *dp, const seg_touch *t)
{
    for (size_t i = 0; i < dp->n_fields; i++)
        for (size_t j = 0; j < t->npaths; j++)
            if (paths_overlap(dp->fields[i], t->paths[j])) return true;
    return false;
}

static void add(struct segsvc *s, struct seg_index *ix, size_t *n, uint32_t pos, uint8_t kind)
{
    if (ix->mark[pos] != ix->stamp) {
        ix->mark[pos] = ix->stamp;
        s->cand[*n] = pos;
        s->cand_kind[pos] = kind;
        (*n)++;
    } else if (kind < s->cand_kind[pos]) {
        s->cand_kind[pos] = kind; /* DIRECT < DEPS < POLICY: the stronger reason wins */
    }
}

static void add_range(struct segsvc *s, struct seg_index *ix, size_t *n, const struct hpos *v,
                      size_t nv, uint64_t h, const segdef *const *defs, const seg_touch *t)
{
    size_t lo = 0, hi = nv;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        if (v[mid].h < h) lo = mid + 1;
        else hi = mid;
    }
    for (; lo < nv && v[lo].h == h; lo++) {
        if (t && !fields_touched(pql_program_deps(defs[v[lo].pos]->prog), t)) continue;
        add(s, ix, n, v[lo].pos, SVC_CAND_DIRECT);
    }
}

static int u32_cmp(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? -1 : x > y;
}

size_t svc_index_candidates(struct segsvc *s, uint32_t sb, const seg_touch *t)
{
    struct seg_index *ix = index_get(s);
    const struct sb_index *x = sb_find(ix, sb);
    if (!x) return 0;
    if (++ix->stamp == 0) { /* wrapped: forget every old mark */
        memset(ix->mark, 0, ix->cap * sizeof *ix->mark);
        ix->stamp = 1;
    }
    size_t n = 0;
    const segdef *const *defs = (const segdef *const *)s->v;
    bool all = (t->what & (SEGSVC_TOUCH_PROFILE | SEGSVC_TOUCH_TIMER | SEGSVC_TOUCH_DELETE)) ||
               ((t->what & SEGSVC_TOUCH_RECORD) && t->paths_all);
    if (all) {
        for (size_t i = 0; i < x->nall; i++)
            add(s, ix, &n, x->all[i], SVC_CAND_DIRECT);
        return n; /* already in creation order */
    }
    if (t->what & SEGSVC_TOUCH_EVENT) {
        for (size_t i = 0; i < x->nany; i++)
            add(s, ix, &n, x->any_events[i], SVC_CAND_DIRECT);
        if (t->etypes_all) {
            for (size_t i = 0; i < x->ntype; i++)
                add(s, ix, &n, x->by_type[i].pos, SVC_CAND_DIRECT);
        } else {
            for (size_t i = 0; i < t->netypes; i++)
                add_range(s, ix, &n, x->by_type, x->ntype, t->etypes[i], defs, NULL);
        }
    }
    if (t->what & SEGSVC_TOUCH_RECORD) {
        for (size_t j = 0; j < t->npaths; j++)
            add_range(s, ix, &n, x->by_root, x->nroot, root_hash(t->paths[j]), defs, t);
        for (size_t i = 0; i < x->nown; i++)
            add(s, ix, &n, x->own_policy[i], SVC_CAND_POLICY);
    }
    if (n)
        for (size_t i = 0; i < x->ndeps; i++)
            add(s, ix, &n, x->with_deps[i], SVC_CAND_DEPS);
    if (n > 1) qsort(s->cand, n, sizeof *s->cand, u32_cmp);
    return n;
}

/* --- what a record changed in the union view --- */

static void diff_add(char ***v, size_t *n, bool *all, const char *prefix, const char *key)
{
    if (*all) return;
    if (*n == SVC_MAX_PATHS) {
        *all = true;
        return;
    }
    size_t lp = strlen(prefix), lk = strlen(key);
    char *p = kith_xmalloc(lp + lk + 2);
    memcpy(p, prefix, lp);
    if (lp) p[lp++] = '.';
    memcpy(p + lp, key, lk + 1);
    if ((*n & (*n - 1)) == 0) *v = kith_xrealloc(*v, (*n ? *n * 2 : 1) * sizeof **v);
    (*v)[(*n)++] = p;
}

static void diff_rec(const json_t *a, const json_t *b, const char *prefix, char ***v, size_t *n,
                     bool *all)
{
    const char *key;
    json_t *va;
    json_object_foreach((json_t *)a, key, va)
    {
        if (*all) return;
        json_t *vb = json_object_get(b, key);
        if (!vb) {
            diff_add(v, n, all, prefix, key);
        } else if (json_is_object(va) && json_is_object(vb)) {
            size_t lp = strlen(prefix), lk = strlen(key);
            char *sub = kith_xmalloc(lp + lk + 2);
            memcpy(sub, prefix, lp);
            size_t o = lp;
            if (lp) sub[o++] = '.';
            memcpy(sub + o, key, lk + 1);
            diff_rec(va, vb, sub, v, n, all);
            free(sub);
        } else if (!json_equal(va, vb)) {
            diff_add(v, n, all, prefix, key);
        }
    }
    json_t *vb;
    json_object_foreach((json_t *)b, key, vb)
    {
        if (*all) return;
        if (!json_object_get(a, key)) diff_add(v, n, all, prefix, key);
    }
}

void svc_profile_diff(const json_t *old, const json_t *cur, char ***paths, size_t *n, bool *all)
{
    json_t *e = !old || !cur ? json_object() : NULL;
    diff_rec(old ? old : e, cur ? cur : e, "", paths, n, all);
    json_decref(e);
}
