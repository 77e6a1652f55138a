/* Unit tests: the membership change stream's hub (src/segment/svc_feed.c) without HTTP — changes of
 * a failed group or of a group whose sync failed are never published; a subscriber sees only its
 * sandbox and segments; a slow subscriber is dropped with a final event instead of growing without
 * bound; the reader suspends when there is nothing to send and is woken by a change; Last-Event-ID
 * replays; heartbeats. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "kith/segsvc.h"
#include "segment/svc_int.h"

#define SEG_A "00000000-0000-4000-8000-00000000000a"
#define SEG_B "00000000-0000-4000-8000-00000000000b"

static char dir[256];

static kith_engine *open_engine(void)
{
    snprintf(dir, sizeof dir, "/tmp/kith-test-segfeed-XXXXXX");
    assert_non_null(mkdtemp(dir));
    kith_engine *e = NULL;
    char *err = NULL;
    assert_int_equal(engine_open(dir, NULL, "test-admin", false, &e, &err), 0);
    return e;
}

static void close_engine(kith_engine *e)
{
    engine_close(e);
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    assert_int_equal(system(cmd), 0);
}

struct waiter {
    int suspended, woken;
};

static void on_suspend(void *arg)
{
    ((struct waiter *)arg)->suspended++;
}

static void on_wake(void *arg)
{
    ((struct waiter *)arg)->woken++;
}

/* Reads everything available into out (appended); returns the reader's last result. */
static ssize_t read_all(segfeed_sub *s, struct waiter *w, kith_buf *out)
{
    char buf[100]; /* small: frames are copied in pieces */
    ssize_t n;
    while ((n = segfeed_read(s, buf, sizeof buf, on_suspend, w)) > 0)
        kith_buf_append(out, buf, (size_t)n);
    return n;
}

static size_t count(const kith_buf *b, const char *needle)
{
    size_t n = 0;
    if (!b->data) return 0;
    for (const char *p = b->data; (p = memmem(p, b->len - (size_t)(p - b->data), needle,
                                              strlen(needle))) != NULL;
         p++)
        n++;
    return n;
}

/* The apply thread's side: a group's changes, then sealed (commit rc) and durable (sync rc). */
static void group(kith_engine *e, uint32_t sb, const char *seg, int status, int commit_rc,
                  int sync_rc)
{
    struct segsvc *s = e->segsvc;
    s->chg = kith_xrealloc(s->chg, (s->nchg + 1) * sizeof *s->chg);
    s->capchg = s->nchg + 1;
    struct seg_change *c = &s->chg[s->nchg++];
    memset(c, 0, sizeof *c);
    c->sb = sb;
    c->cluster = 42;
    snprintf(c->seg, sizeof c->seg, "%s", seg);
    c->status = status;
    c->lqt = kith_now_ms();
    c->ns = 1;
    c->value = kith_xstrdup("crm-1");
    c->len = 5;
    void *tok = segsvc_group_sealed(e, commit_rc);
    if (commit_rc) assert_null(tok);
    segsvc_group_durable(e, tok, sync_rc);
}

static void test_publish_only_durable(void **state)
{
    (void)state;
    kith_engine *e = open_engine();
    struct waiter w = {0};
    segfeed_opts o = {.sb = 7, .wake = on_wake, .wake_arg = &w};
    segfeed_sub *sub;
    assert_int_equal(segfeed_subscribe(e, &o, &sub), 0);
    kith_buf out = {0};
    assert_int_equal(read_all(sub, &w, &out), 0);
    assert_int_equal(w.suspended, 1);
    assert_int_equal(count(&out, "kith membership stream"), 1);
    /* a group that failed to commit, a group whose WAL sync failed: nothing */
    group(e, 7, SEG_A, SEG_REALIZED, KITH_EIO, 0);
    group(e, 7, SEG_A, SEG_REALIZED, 0, KITH_EIO);
    assert_int_equal(w.woken, 0);
    /* another sandbox: nothing for this subscriber */
    group(e, 8, SEG_A, SEG_REALIZED, 0, 0);
    assert_int_equal(w.woken, 0);
    /* a durable group: one frame, the waiting reader is woken once */
    group(e, 7, SEG_A, SEG_REALIZED, 0, 0);
    assert_int_equal(w.woken, 1);
    out.len = 0;
    assert_int_equal(read_all(sub, &w, &out), 0);
    assert_int_equal(count(&out, "event: membership\n"), 1);
    assert_int_equal(count(&out, "\"status\":\"realized\""), 1);
    assert_int_equal(count(&out, "\"segmentId\":\"" SEG_A "\""), 1);
    assert_int_equal(count(&out, "\"id\":\"crm-1\""), 1);
    assert_int_equal(w.suspended, 2);
    uint64_t published, dropped;
    size_t subs;
    segfeed_get_stats(e, &published, &dropped, &subs);
    assert_int_equal(published, 2); /* sandbox 8's and 7's */
    assert_int_equal(subs, 1);
    segfeed_unsubscribe(sub);
    kith_buf_free(&out);
    close_engine(e);
}

static void test_filter_overflow_replay(void **state)
{
    (void)state;
    kith_engine *e = open_engine();
    struct waiter w = {0}, w2 = {0};
    const char segs[1][SEGDEF_ID_LEN + 1] = {SEG_B};
    segfeed_opts o = {.sb = 7, .segments = segs, .nsegments = 1, .queue_max = 3,
                      .wake = on_wake, .wake_arg = &w};
    segfeed_sub *slow, *all;
    assert_int_equal(segfeed_subscribe(e, &o, &slow), 0);
    segfeed_opts o2 = {.sb = 7, .wake = on_wake, .wake_arg = &w2};
    assert_int_equal(segfeed_subscribe(e, &o2, &all), 0);
    kith_buf out = {0}, out2 = {0};
    /* segment A changes are not for the filtered subscriber */
    group(e, 7, SEG_A, SEG_REALIZED, 0, 0);
    group(e, 7, SEG_B, SEG_REALIZED, 0, 0);
    group(e, 7, SEG_B, SEG_EXITED, 0, 0);
    assert_int_equal(read_all(all, &w2, &out2), 0);
    assert_int_equal(count(&out2, "event: membership"), 3);
    /* the slow one never read; three B changes fill its queue, the fourth drops it */
    group(e, 7, SEG_B, SEG_REALIZED, 0, 0);
    group(e, 7, SEG_B, SEG_EXITED, 0, 0);
    uint64_t published, dropped;
    size_t subs;
    segfeed_get_stats(e, &published, &dropped, &subs);
    assert_int_equal(dropped, 1);
    assert_int_equal(read_all(slow, &w, &out), -1); /* queued frames, the final event, the end */
    assert_int_equal(count(&out, "event: membership"), 3);
    assert_int_equal(count(&out, SEG_A), 0);
    assert_int_equal(count(&out, "event: dropped"), 1);
    segfeed_unsubscribe(slow);
    /* Last-Event-ID: a new subscriber that saw the second frame gets the three after it */
    const char *second = strstr(strstr(out2.data, "id: ") + 4, "id: ") + 4;
    char last[64];
    snprintf(last, sizeof last, "%.*s", (int)strcspn(second, "\n"), second);
    segfeed_opts o3 = {.sb = 7, .last_event_id = last, .wake = on_wake, .wake_arg = &w};
    segfeed_sub *again;
    assert_int_equal(segfeed_subscribe(e, &o3, &again), 0);
    out.len = 0;
    assert_int_equal(read_all(again, &w, &out), 0);
    assert_int_equal(count(&out, "event: membership"), 3);
    assert_int_equal(count(&out, "event: gap"), 0);
    segfeed_unsubscribe(again);
    /* an id this process never gave: a gap event */
    segfeed_opts o4 = {.sb = 7, .last_event_id = "12.3", .wake = on_wake, .wake_arg = &w};
    assert_int_equal(segfeed_subscribe(e, &o4, &again), 0);
    out.len = 0;
    assert_int_equal(read_all(again, &w, &out), 0);
    assert_int_equal(count(&out, "event: gap"), 1);
    segfeed_unsubscribe(again);
    /* heartbeat: after the interval, an idle reader sends a comment */
    segfeed_opts o5 = {.sb = 7, .heartbeat_ms = 50, .wake = on_wake, .wake_arg = &w};
    assert_int_equal(segfeed_subscribe(e, &o5, &again), 0);
    out.len = 0;
    read_all(again, &w, &out);
    usleep(60000);
    read_all(again, &w, &out);
    assert_int_equal(count(&out, ": heartbeat"), 1);
    /* shutdown ends every stream */
    segfeed_shutdown(e);
    out.len = 0;
    assert_int_equal(read_all(again, &w, &out), -1);
    assert_int_equal(read_all(all, &w2, &out2), -1);
    segfeed_unsubscribe(again);
    segfeed_unsubscribe(all);
    kith_buf_free(&out);
    kith_buf_free(&out2);
    close_engine(e);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_publish_only_durable),
        cmocka_unit_test(test_filter_overflow_replay),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
