/* The membership change stream (kith): GET /data/core/ups/stream/memberships answers with
 * server-sent events, one "membership" event per realized or exited change of the key's sandbox,
 * published once the change is durable (src/segment/svc_feed.c). The response is a libmicrohttpd
 * callback response: when the subscriber has nothing to send, the reader suspends the connection
 * (no thread is held) and the hub resumes it when a change or a heartbeat is due. */
#include <microhttpd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http.h"
#include "kith/segsvc.h"

typedef struct stream_state {
    struct MHD_Connection *conn;
    segfeed_sub *sub;
} stream_state;

static void stream_suspend(void *arg)
{
    MHD_suspend_connection(((stream_state *)arg)->conn);
}

static void stream_wake(void *arg)
{
    MHD_resume_connection(((stream_state *)arg)->conn);
}

static ssize_t stream_read(void *cls, uint64_t pos, char *buf, size_t max)
{
    (void)pos;
    stream_state *x = cls;
    ssize_t n = segfeed_read(x->sub, buf, max, stream_suspend, x);
    return n < 0 ? MHD_CONTENT_READER_END_OF_STREAM : n;
}

static void stream_free(void *cls)
{
    stream_state *x = cls;
    segfeed_unsubscribe(x->sub);
    free(x);
}

/* Reads an integer query argument in [lo, hi]; def when absent. false (answer set) when bad. */
static bool query_int(kith_req *r, const char *name, long lo, long hi, long def, long *out)
{
    const char *v = http_query(r, name);
    *out = def;
    if (!v) return true;
    char *end;
    long n = strtol(v, &end, 10);
    if (!*v || *end || n < lo || n > hi) {
        http_problem(r, 400, "Bad Request",
                     json_pack("[{s:s, s:s}]", "path", name, "message", "an integer in range"),
                     "%s must be an integer from %ld to %ld", name, lo, hi);
        return false;
    }
    *out = n;
    return true;
}

int h_stream_memberships(kith_req *r)
{
    long heartbeat, buffer;
    if (!query_int(r, "heartbeat", 1, 60, SEGFEED_HEARTBEAT_MS / 1000, &heartbeat) ||
        !query_int(r, "buffer", 1, SEGFEED_QUEUE_MAX, SEGFEED_QUEUE_DEFAULT, &buffer))
        return 0;
    char(*segs)[SEGDEF_ID_LEN + 1] = NULL;
    size_t nsegs = 0;
    const char *filter = http_query(r, "segmentId");
    if (filter) {
        segs = kith_xcalloc(SEGFEED_MAX_FILTER, sizeof *segs);
        char *list = kith_xstrdup(filter), *save = NULL;
        for (char *t = strtok_r(list, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
            while (*t == ' ')
                t++;
            if (!*t) continue;
            json_t *def = strlen(t) == SEGDEF_ID_LEN ? segdef_get(r->e, r->sandbox_id, t) : NULL;
            if (!def || nsegs == SEGFEED_MAX_FILTER) {
                if (def)
                    http_problem(r, 400, "Bad Request",
                                 json_pack("[{s:s, s:s}]", "path", "segmentId", "message",
                                           "at most 100 segment ids"),
                                 "segmentId lists more than %d segments", SEGFEED_MAX_FILTER);
                else
                    http_problem(r, 400, "Bad Request",
                                 json_pack("[{s:s, s:s}]", "path", "segmentId", "message",
                                           "a segment id of this sandbox"),
                                 "segmentId: no segment definition \"%.64s\" in this sandbox", t);
                json_decref(def);
                free(list);
                free(segs);
                return 0;
            }
            json_decref(def);
            snprintf(segs[nsegs++], SEGDEF_ID_LEN + 1, "%s", t);
        }
        free(list);
    }
    const char *last = http_header(r, "Last-Event-ID");
    if (!last) last = http_query(r, "lastEventId");
    stream_state *x = kith_xcalloc(1, sizeof *x);
    x->conn = r->conn;
    segfeed_opts o = {.sb = r->sandbox_id,
                      .segments = (const char(*)[SEGDEF_ID_LEN + 1])segs,
                      .nsegments = nsegs,
                      .queue_max = (size_t)buffer,
                      .heartbeat_ms = (int)heartbeat * 1000,
                      .last_event_id = last,
                      .wake = stream_wake,
                      .wake_arg = x};
    int rc = segfeed_subscribe(r->e, &o, &x->sub);
    free(segs);
    if (rc) {
        free(x);
        if (rc == KITH_EBUSY)
            http_error(r, rc, "%d change streams are open already; retry later",
                       SEGFEED_MAX_SUBSCRIBERS);
        else
            http_error(r, rc, "the server is stopping");
        return 0;
    }
    r->stream = stream_read;
    r->stream_cls = x;
    r->stream_free = stream_free;
    r->status = 200;
    r->ctype = "text/event-stream";
    return 0;
}
