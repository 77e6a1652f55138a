/* kith recent events: one buffer of the events whose blind appends may not be written yet, shared by
 * the consumers that read events on the apply thread (see include/kith/recent.h). */
#include "kith/recent.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kith/kjson.h"

#define RECENT_BUCKETS (1u << 14)

struct recent_buf {
    recent_event *bucket[RECENT_BUCKETS];
    recent_event *oldest, *newest;
    size_t n;
};

static size_t bucket_of(uint32_t sb, uint64_t identity)
{
    uint64_t h = (identity ^ ((uint64_t)sb << 40)) * 0x9E3779B97F4A7C15ull;
    return (size_t)(h >> 32) & (RECENT_BUCKETS - 1);
}

void recent_init(kith_engine *e)
{
    if (!e->recent) e->recent = kith_xcalloc(1, sizeof *e->recent);
}

static void unlink_free(struct recent_buf *rb, recent_event *r)
{
    *r->pprev = r->next;
    if (r->next) r->next->pprev = r->pprev;
    if (r->older) r->older->newer = r->newer;
    else rb->oldest = r->newer;
    if (r->newer) r->newer->older = r->older;
    else rb->newest = r->older;
    rb->n--;
    json_decref(r->tree);
    free(r);
}

void recent_free(kith_engine *e)
{
    struct recent_buf *rb = e ? e->recent : NULL;
    if (!rb) return;
    while (rb->oldest)
        unlink_free(rb, rb->oldest);
    free(rb);
    e->recent = NULL;
}

static bool same(const recent_event *r, uint32_t sb, uint64_t identity, int64_t ts, uint64_t group,
                 const char *event_id)
{
    return r->sb == sb && r->identity == identity && r->ts == ts && r->group == group &&
           strcmp(r->event_id, event_id) == 0;
}

const recent_event *recent_keep(kith_engine *e, uint32_t sb, uint64_t identity, const char *dataset,
                                int64_t ts, const char *event_id, const char *json, size_t len)
{
    if (!e->recent) recent_init(e);
    struct recent_buf *rb = e->recent;
    uint64_t group = apply_group_number(e->apply);
    if (rb->newest && same(rb->newest, sb, identity, ts, group, event_id)) return rb->newest;
    size_t bk = bucket_of(sb, identity);
    for (recent_event *r = rb->bucket[bk]; r && r->group == group; r = r->next)
        if (same(r, sb, identity, ts, group, event_id)) return r;
    size_t idl = strlen(event_id);
    recent_event *r = kith_xmalloc(sizeof *r + idl + 1 + len + 1);
    memset(r, 0, sizeof *r);
    char *p = (char *)(r + 1);
    memcpy(p, event_id, idl + 1);
    r->event_id = p;
    p += idl + 1;
    memcpy(p, json, len);
    p[len] = 0;
    r->json = p;
    r->len = len;
    r->sb = sb;
    r->identity = identity;
    r->ts = ts;
    r->group = group;
    snprintf(r->dataset, sizeof r->dataset, "%s", dataset ? dataset : "");
    r->next = rb->bucket[bk];
    if (r->next) r->next->pprev = &r->next;
    r->pprev = &rb->bucket[bk];
    rb->bucket[bk] = r;
    r->older = rb->newest;
    if (rb->newest) rb->newest->newer = r;
    else rb->oldest = r;
    rb->newest = r;
    rb->n++;
    return r;
}

json_t *recent_tree(const recent_event *r)
{
    recent_event *w = (recent_event *)r; /* the parse is a cache of the entry's own text */
    if (!w->tree) w->tree = kjson_parse(r->json, r->len, 256, NULL, NULL);
    return w->tree;
}

uint64_t recent_mark(kith_engine *e)
{
    return apply_blind_written(e->apply);
}

static const recent_event *match(const recent_event *r, uint64_t mark, uint32_t sb, uint64_t identity)
{
    /* A chain is newest first: past the first entry at or before the mark, every one is. */
    for (; r && r->group > mark; r = r->next)
        if (r->sb == sb && r->identity == identity) return r;
    return NULL;
}

const recent_event *recent_first(kith_engine *e, uint64_t mark, uint32_t sb, uint64_t identity)
{
    struct recent_buf *rb = e->recent;
    if (!rb || !rb->n) return NULL;
    return match(rb->bucket[bucket_of(sb, identity)], mark, sb, identity);
}

const recent_event *recent_next(const recent_event *r, uint64_t mark)
{
    return match(r->next, mark, r->sb, r->identity);
}

void recent_prune(kith_engine *e)
{
    struct recent_buf *rb = e->recent;
    if (!rb || !rb->n) return;
    uint64_t mark = recent_mark(e);
    while (rb->oldest && rb->oldest->group <= mark)
        unlink_free(rb, rb->oldest);
}

void recent_group_failed(kith_engine *e, uint64_t group)
{
    struct recent_buf *rb = e->recent;
    if (!rb) return;
    while (rb->newest && rb->newest->group == group)
        unlink_free(rb, rb->newest);
}

size_t recent_count(kith_engine *e)
{
    return e->recent ? e->recent->n : 0;
}
