/* kith membership change stream: the hub behind GET /data/core/ups/stream/memberships.
 *
 * The writer collects the realized and exited changes of a group (svc_stream.c); once the group is
 * durable and acknowledged the syncer publishes them here (segfeed_publish). Each change becomes one
 * server-sent event frame, formatted once and shared by reference between the subscribers that
 * want it and a replay ring (the last SEGFEED_REPLAY frames, for Last-Event-ID). Every subscriber
 * has a bounded queue: a subscriber that falls further behind is dropped with a final "dropped"
 * event, so a slow consumer never holds unbounded memory and never slows the writer (publishing
 * only takes the hub's lock and copies pointers). A heartbeat thread wakes idle subscribers so they
 * send a comment line every heartbeat interval. The hub knows nothing of HTTP: the reader passes a
 * suspend callback, the subscriber a wake callback (libmicrohttpd suspend/resume in h_stream.c). */
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "kith/jalloc.h"
#include "svc_int.h"

typedef struct feed_event {
    _Atomic int refs;
    uint32_t sb;
    uint64_t seq;
    char seg[SEGDEF_ID_LEN + 1];
    size_t len;
    char text[]; /* the whole SSE frame */
} feed_event;

struct segfeed_sub {
    struct segfeed *hub;
    uint32_t sb;
    char (*segs)[SEGDEF_ID_LEN + 1];
    size_t nsegs;
    feed_event **q; /* ring of queued frames */
    size_t qcap, qhead, qn;
    feed_event *cur; /* the frame being sent */
    size_t cur_off;
    char ctl[512]; /* a control frame being sent (hello, heartbeat, gap, dropped) */
    size_t ctl_len, ctl_off;
    bool dropped, ended, waiting;
    int64_t hb_ms, next_hb;
    void (*wake)(void *);
    void *wake_arg;
    uint64_t sent, last_seq;
    struct segfeed_sub *next;
};

struct segfeed {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    segfeed_sub *subs;
    size_t nsubs;
    int64_t epoch; /* process start (ms): event ids of an earlier process are told apart */
    uint64_t seq;
    feed_event **ring;
    size_t rhead, rn;
    pthread_t hb;
    bool hb_started, stopping;
    _Atomic uint64_t published, dropped_subs;
};

static void ev_release(feed_event *ev)
{
    if (ev && atomic_fetch_sub(&ev->refs, 1) == 1) free(ev);
}

static struct segfeed *hub_of(kith_engine *e)
{
    struct segsvc *s = svc_of(e);
    return s ? s->feed : NULL;
}

void svc_feed_init(struct segsvc *s)
{
    struct segfeed *h = kith_xcalloc(1, sizeof *h);
    pthread_mutex_init(&h->mu, NULL);
    pthread_cond_init(&h->cv, NULL);
    h->epoch = kith_now_ms();
    h->ring = kith_xcalloc(SEGFEED_REPLAY, sizeof *h->ring);
    s->feed = h;
}

void segfeed_shutdown(kith_engine *e)
{
    struct segfeed *h = hub_of(e);
    if (!h) return;
    pthread_mutex_lock(&h->mu);
    h->stopping = true;
    pthread_cond_broadcast(&h->cv);
    for (segfeed_sub *s = h->subs; s; s = s->next) {
        s->ended = true;
        if (s->waiting) {
            s->waiting = false;
            s->wake(s->wake_arg);
        }
    }
    bool join = h->hb_started;
    h->hb_started = false;
    pthread_mutex_unlock(&h->mu);
    if (join) pthread_join(h->hb, NULL);
}

void svc_feed_free(struct segsvc *s)
{
    struct segfeed *h = s->feed;
    if (!h) return;
    segfeed_shutdown(s->e);
    for (size_t i = 0; i < h->rn; i++)
        ev_release(h->ring[(h->rhead + i) % SEGFEED_REPLAY]);
    free(h->ring);
    pthread_mutex_destroy(&h->mu);
    pthread_cond_destroy(&h->cv);
    free(h);
    s->feed = NULL;
}

/* --- subscribers --- */

static bool sub_wants(const segfeed_sub *s, const feed_event *ev)
{
    if (s->sb != ev->sb) return false;
    if (!s->nsegs) return true;
    for (size_t i = 0; i < s->nsegs; i++)
        if (strcmp(s->segs[i], ev->seg) == 0) return true;
    return false;
}

/* Hub locked. Queues ev for s; a full queue drops the subscriber instead. */
static void sub_push(segfeed_sub *s, feed_event *ev)
{
    if (s->dropped || s->ended) return;
    if (s->qn == s->qcap) {
        s->dropped = true;
        atomic_fetch_add(&s->hub->dropped_subs, 1);
        return;
    }
    atomic_fetch_add(&ev->refs, 1);
    s->q[(s->qhead + s->qn) % s->qcap] = ev;
    s->qn++;
}

static void sub_wake(segfeed_sub *s)
{
    if (!s->waiting) return;
    s->waiting = false;
    s->wake(s->wake_arg);
}

static void set_ctl(segfeed_sub *s, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void set_ctl(segfeed_sub *s, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(s->ctl, sizeof s->ctl, fmt, ap);
    va_end(ap);
    s->ctl_len = n < 0 ? 0 : (size_t)n < sizeof s->ctl ? (size_t)n : sizeof s->ctl - 1;
    s->ctl_off = 0;
}

static void *hb_main(void *arg)
{
    struct segfeed *h = arg;
    pthread_mutex_lock(&h->mu);
    while (!h->stopping) {
        int64_t now = kith_now_ms();
        for (segfeed_sub *s = h->subs; s; s = s->next)
            if (s->waiting && now >= s->next_hb) sub_wake(s);
        struct timespec ts;
        clock_gettime(CLOCK_REALTIME, &ts);
        ts.tv_nsec += 200 * 1000000L;
        ts.tv_sec += ts.tv_nsec / 1000000000L;
        ts.tv_nsec %= 1000000000L;
        pthread_cond_timedwait(&h->cv, &h->mu, &ts);
    }
    pthread_mutex_unlock(&h->mu);
    return NULL;
}

/* Parses "<epoch>.<seq>". */
static bool parse_event_id(const char *s, int64_t *epoch, uint64_t *seq)
{
    char *end;
    long long e = strtoll(s, &end, 10);
    if (end == s || *end != '.') return false;
    const char *p = end + 1;
    unsigned long long q = strtoull(p, &end, 10);
    if (end == p || *end) return false;
    *epoch = e;
    *seq = q;
    return true;
}

int segfeed_subscribe(kith_engine *e, const segfeed_opts *o, segfeed_sub **out)
{
    struct segfeed *h = hub_of(e);
    if (!h) return KITH_ESHUTDOWN;
    segfeed_sub *s = kith_xcalloc(1, sizeof *s);
    s->hub = h;
    s->sb = o->sb;
    if (o->nsegments) {
        s->segs = kith_xcalloc(o->nsegments, sizeof *s->segs);
        memcpy(s->segs, o->segments, o->nsegments * sizeof *s->segs);
        s->nsegs = o->nsegments;
    }
    s->qcap = o->queue_max ? o->queue_max : SEGFEED_QUEUE_DEFAULT;
    if (s->qcap > SEGFEED_QUEUE_MAX) s->qcap = SEGFEED_QUEUE_MAX;
    s->q = kith_xcalloc(s->qcap, sizeof *s->q);
    s->hb_ms = o->heartbeat_ms > 0 ? o->heartbeat_ms : SEGFEED_HEARTBEAT_MS;
    s->wake = o->wake;
    s->wake_arg = o->wake_arg;
    pthread_mutex_lock(&h->mu);
    if (h->stopping || h->nsubs >= SEGFEED_MAX_SUBSCRIBERS) {
        int rc = h->stopping ? KITH_ESHUTDOWN : KITH_EBUSY;
        pthread_mutex_unlock(&h->mu);
        free(s->segs);
        free(s->q);
        free(s);
        return rc;
    }
    s->next_hb = kith_now_ms() + s->hb_ms;
    /* The first frame: a comment so the client sees the stream open, or the replay's gap. */
    set_ctl(s, ": kith membership stream\nretry: 2000\n\n");
    int64_t epoch;
    uint64_t seq;
    if (o->last_event_id && *o->last_event_id) {
        uint64_t oldest = h->rn ? h->ring[h->rhead]->seq : h->seq + 1;
        if (!parse_event_id(o->last_event_id, &epoch, &seq) || epoch != h->epoch ||
            seq > h->seq || seq + 1 < oldest) {
            set_ctl(s,
                    "event: gap\ndata: {\"lastEventId\":\"%.40s\",\"reason\":\"changes after this "
                    "id are no longer kept (the server restarted or more than %d changes "
                    "happened); read the memberships from the profiles or an export\"}\n\n",
                    o->last_event_id, SEGFEED_REPLAY);
        } else {
            for (size_t i = 0; i < h->rn; i++) {
                feed_event *ev = h->ring[(h->rhead + i) % SEGFEED_REPLAY];
                if (ev->seq > seq && sub_wants(s, ev)) sub_push(s, ev);
            }
            s->last_seq = seq;
        }
    }
    s->next = h->subs;
    h->subs = s;
    h->nsubs++;
    if (!h->hb_started && pthread_create(&h->hb, NULL, hb_main, h) == 0) h->hb_started = true;
    pthread_mutex_unlock(&h->mu);
    *out = s;
    return 0;
}

void segfeed_unsubscribe(segfeed_sub *s)
{
    if (!s) return;
    struct segfeed *h = s->hub;
    pthread_mutex_lock(&h->mu);
    for (segfeed_sub **p = &h->subs; *p; p = &(*p)->next) {
        if (*p == s) {
            *p = s->next;
            h->nsubs--;
            break;
        }
    }
    pthread_mutex_unlock(&h->mu);
    ev_release(s->cur);
    for (size_t i = 0; i < s->qn; i++)
        ev_release(s->q[(s->qhead + i) % s->qcap]);
    free(s->q);
    free(s->segs);
    free(s);
}

ssize_t segfeed_read(segfeed_sub *s, char *buf, size_t max, void (*suspend)(void *), void *arg)
{
    struct segfeed *h = s->hub;
    size_t n = 0;
    pthread_mutex_lock(&h->mu);
    int64_t now = kith_now_ms();
    while (n < max) {
        if (s->ctl_off < s->ctl_len) {
            size_t take = s->ctl_len - s->ctl_off;
            if (take > max - n) take = max - n;
            memcpy(buf + n, s->ctl + s->ctl_off, take);
            s->ctl_off += take;
            n += take;
            continue;
        }
        if (s->cur) {
            size_t take = s->cur->len - s->cur_off;
            if (take > max - n) take = max - n;
            memcpy(buf + n, s->cur->text + s->cur_off, take);
            s->cur_off += take;
            n += take;
            if (s->cur_off == s->cur->len) {
                ev_release(s->cur);
                s->cur = NULL;
            }
            continue;
        }
        if (s->ended) break;
        if (s->qn) {
            s->cur = s->q[s->qhead];
            s->qhead = (s->qhead + 1) % s->qcap;
            s->qn--;
            s->cur_off = 0;
            s->last_seq = s->cur->seq;
            s->sent++;
            continue;
        }
        if (s->dropped) {
            /* The queue is drained: say why the stream ends, then end it. */
            set_ctl(s,
                    "event: dropped\nid: %" PRId64 ".%" PRIu64 "\ndata: {\"reason\":\"the "
                    "subscriber fell more than %zu changes behind\",\"lastEventId\":\"%" PRId64
                    ".%" PRIu64 "\"}\n\n",
                    h->epoch, s->last_seq, s->qcap, h->epoch, s->last_seq);
            s->ended = true;
            continue;
        }
        if (n == 0 && now >= s->next_hb) {
            set_ctl(s, ": heartbeat\n\n");
            s->next_hb = now + s->hb_ms;
            continue;
        }
        break;
    }
    ssize_t rc = (ssize_t)n;
    if (n == 0) {
        if (s->ended) {
            rc = -1;
        } else {
            s->waiting = true;
            suspend(arg); /* under the lock: a wake cannot come before the suspension */
        }
    } else {
        s->next_hb = now + s->hb_ms;
    }
    pthread_mutex_unlock(&h->mu);
    return rc;
}

/* --- publishing (syncer thread) --- */

void segfeed_publish_frames(kith_engine *e, struct seg_change *v, size_t n)
{
    struct segfeed *h = hub_of(e);
    if (!h || n == 0) return;
    /* Format the payloads outside the lock; only the id is added under it. */
    kith_buf *data = kith_xcalloc(n, sizeof *data);
    catalog_rdlock(e->cat);
    for (size_t i = 0; i < n; i++) {
        struct seg_change *c = &v[i];
        char cid[40], ts[40], xid[KITH_XID_MAX];
        identity_cluster_uuid(c->sb, c->cluster, cid);
        kith_time_format(c->lqt, ts, sizeof ts);
        const cat_namespace *ns = catalog_namespace_by_id(e->cat, c->sb, c->ns);
        json_t *d = json_pack("{s:s, s:s, s:s, s:s}", "segmentId", c->seg, "status",
                              seg_status_name(c->status), "lastQualificationTime", ts, "clusterId",
                              cid);
        if (c->value) {
            identity_xid(c->ns, c->value, c->len, xid, sizeof xid);
            json_object_set_new(d, "identity",
                                json_pack("{s:{s:s}, s:s%, s:s}", "namespace", "code",
                                          ns ? ns->code : "unknown", "id", c->value, c->len,
                                          "xid", xid));
        }
        char *txt = kith_json_dumps(d, JSON_COMPACT);
        kith_buf_puts(&data[i], txt ? txt : "{}");
        free(txt);
        json_decref(d);
    }
    catalog_unlock(e->cat);
    pthread_mutex_lock(&h->mu);
    for (size_t i = 0; i < n; i++) {
        size_t cap = data[i].len + 96;
        feed_event *ev = kith_xmalloc(sizeof *ev + cap);
        atomic_init(&ev->refs, 1); /* the ring's reference */
        ev->sb = v[i].sb;
        ev->seq = ++h->seq;
        memcpy(ev->seg, v[i].seg, sizeof ev->seg);
        int len = snprintf(ev->text, cap, "id: %" PRId64 ".%" PRIu64 "\nevent: membership\ndata: ",
                           h->epoch, ev->seq);
        memcpy(ev->text + len, data[i].data, data[i].len);
        memcpy(ev->text + len + data[i].len, "\n\n", 3);
        ev->len = (size_t)len + data[i].len + 2;
        for (segfeed_sub *s = h->subs; s; s = s->next) {
            if (!sub_wants(s, ev)) continue;
            sub_push(s, ev);
            sub_wake(s);
        }
        if (h->rn == SEGFEED_REPLAY) {
            ev_release(h->ring[h->rhead]);
            h->rhead = (h->rhead + 1) % SEGFEED_REPLAY;
            h->rn--;
        }
        h->ring[(h->rhead + h->rn) % SEGFEED_REPLAY] = ev;
        h->rn++;
        kith_buf_free(&data[i]);
    }
    pthread_mutex_unlock(&h->mu);
    atomic_fetch_add(&h->published, n);
    free(data);
}

void segfeed_get_stats(kith_engine *e, uint64_t *published, uint64_t *dropped, size_t *subscribers)
{
    struct segfeed *h = hub_of(e);
    *published = *dropped = 0;
    *subscribers = 0;
    if (!h) return;
    *published = h->published;
    *dropped = h->dropped_subs;
    pthread_mutex_lock(&h->mu);
    *subscribers = h->nsubs;
    pthread_mutex_unlock(&h->mu);
}
