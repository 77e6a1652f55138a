/* bench/segments: streaming segmentation cost, in process (the engine without HTTP).
 *
 *   segments [--people N] [--history H] [--events E] [--segments M[,M...]] [--seed S]
 *            [--dir DIR] [--loaders L]
 *
 * For each M (default 0,100,1000,9999; at most 9,999: with the latency segment a sandbox's 10,000
 * definitions), on a fresh data dir (WAL-synced, as kithd): the loadgen
 * schemas and population of bench/segbatch (CRM and loyalty records of N people and H events each,
 * loaded before any segment exists), then M streaming segment definitions of mixed shapes (profile
 * attributes, event counts and sums, the seed's three segments with varied constants, one tenth each
 * shape) plus one latency segment; their backfill job is cancelled (batch work, measured by
 * bench/segbatch), so the existing profiles hold no memberships yet. Then, timed: L loader
 * threads ingest E new events (browsing sessions of random people: page views, product views, ad
 * impressions, purchases) in operations of 500 while a sampler sends a purchase that makes a new
 * profile enter the latency segment every 10 ms, and a reader takes the changes from the membership
 * change stream (the same hub as GET /data/core/ups/stream/memberships).
 *
 * It prints, per M: events/s, segment evaluations per event, the writer's time in the streaming
 * evaluation per event (the in-process evaluation cost), the added cost per event against M = 0, and
 * the event → membership change latency (ingest call → change readable on the stream: durable, WAL
 * fsync included) p50/p99/max, and the CPU time per event of the writer thread and of the process
 * (wall-clock rates on a shared machine are not comparable). The last lines, "RESULT ...", are for
 * scripts. */
#include <getopt.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common.h"
#include "kith/ingest.h"
#include "kith/segsvc.h"

static struct {
    long people, history, events, loaders;
    long segs[16];
    int nsegs;
    uint64_t seed;
    const char *dir;
} opt = {.people = 20000, .history = 4, .events = 100000, .loaders = 2, .seed = 1};
static long opt_warmup; /* events applied (untimed) before the timed phase */

#define BENCH_NAME "segments"
#include "segpop.h"

/* The i-th segment expression: ten shapes with varied constants (as bench/segbatch). */
static void expression(long i, char *out, size_t cap)
{
    long k = i / 10;
    switch (i % 10) {
    case 0:
        snprintf(out, cap,
                 "xEvent[eventType = \"commerce.purchases\"].max(timestamp) occurs <= %ld days "
                 "before today",
                 1 + k % 60);
        break;
    case 1:
        snprintf(out, cap,
                 "xEvent[eventType = \"commerce.purchases\"].sum(commerce.order.priceTotal) > %ld",
                 100 + k * 150);
        break;
    case 2:
        snprintf(out, cap,
                 "xEvent[eventType = \"advertising.impressions\" and _acme.campaignId in [\"c-%ld\", "
                 "\"c-%ld\", \"c-%ld\"] and timestamp occurs <= %ld minutes before "
                 "now]._acme.campaignId.distinct().count() >= 2",
                 101 + k % BENCH_CAMPAIGNS, 101 + (k + 1) % BENCH_CAMPAIGNS,
                 101 + (k + 2) % BENCH_CAMPAIGNS, 30 + k % 90);
        break;
    case 3:
        snprintf(out, cap, "person.name.lastName = \"%s\" and _acme.crm.lifetimeValue > %ld",
                 bench_last_names[k % BENCH_ARRAY_LEN(bench_last_names)], k % 50);
        break;
    case 4:
        snprintf(out, cap, "_acme.crm.lifetimeValue > %ld and _acme.crm.marketingOptIn = true",
                 k * 40);
        break;
    case 5:
        snprintf(out, cap, "homeAddress.city = \"%s\" or loyalty.tier = \"%s\"",
                 bench_cities[k % BENCH_ARRAY_LEN(bench_cities)].city,
                 bench_loyalty_tiers[k % BENCH_ARRAY_LEN(bench_loyalty_tiers)]);
        break;
    case 6:
        snprintf(out, cap, "xEvent[eventType = \"web.webpagedetails.pageViews\"].count() >= %ld",
                 1 + k % 20);
        break;
    case 7:
        snprintf(out, cap,
                 "xEvent[eventType = \"advertising.impressions\" and _acme.campaignId = "
                 "\"c-%ld\"].count() > %ld",
                 101 + k % BENCH_CAMPAIGNS, k % 5);
        break;
    case 8:
        snprintf(out, cap,
                 "xEvent[eventType = \"commerce.productViews\" and timestamp occurs <= %ld days "
                 "before now].count() >= %ld",
                 1 + k % 30, 1 + k % 3);
        break;
    default:
        snprintf(out, cap, "person.birthDate occurs before date(%ld, 1, 1)", 1950 + k % 50);
        break;
    }
}

#define LATENCY_SEGMENT                                                                            \
    "xEvent[eventType = \"commerce.purchases\"].sum(commerce.order.priceTotal) > 5000000"

struct defs_ctx {
    long m;
    char job[SEGDEF_ID_LEN + 1];
    char latency_id[SEGDEF_ID_LEN + 1];
    long failed;
};

static int defs_fn(void *arg, store_batch *b)
{
    struct defs_ctx *c = arg;
    for (long i = 0; i <= c->m; i++) {
        char text[512], id[SEGDEF_ID_LEN + 1], name[32];
        if (i < c->m) expression(i, text, sizeof text);
        else snprintf(text, sizeof text, "%s", LATENCY_SEGMENT);
        kith_uuid4(id);
        snprintf(name, sizeof name, i < c->m ? "segment %ld" : "latency", i);
        json_t *body = json_pack("{s:s, s:{s:s, s:s, s:s}}", "name", name, "expression", "type",
                                 "PQL", "format", "pql/text", "value", text);
        segdef_result res;
        if (segdef_put(eng, b, 1, id, body, true, &res) != 0) {
            fprintf(stderr, "segments: segment %ld (%s): %s\n", i, text, res.detail);
            c->failed++;
        } else {
            const char *job = json_string_value(json_object_get(res.doc, "kith:backfillJobId"));
            if (job) snprintf(c->job, sizeof c->job, "%s", job);
            if (i == c->m) snprintf(c->latency_id, sizeof c->latency_id, "%s", id);
        }
        json_decref(res.doc);
        json_decref(res.errors);
        json_decref(body);
    }
    return 0;
}

static void wait_job(const char *id)
{
    for (;;) {
        json_t *job = segsvc_job_get(eng, 1, SEGJOB_SEGMENT, id);
        const char *st = json_string_value(json_object_get(job, "status"));
        bool running = st && (!strcmp(st, "NEW") || !strcmp(st, "PROCESSING"));
        json_decref(job);
        if (!running) return;
        usleep(50000);
    }
}

/* --- the timed phase --- */

static struct {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    bool woken;
    volatile bool loading;
    long next_person; /* loaders take people in turn */
    long events_done;
    double sent[4096]; /* sampler: when sample k was submitted */
    double seen[4096]; /* reader: when its change came out of the stream */
    long nsamples;
} run;

static void feed_wake(void *arg)
{
    (void)arg;
    pthread_mutex_lock(&run.mu);
    run.woken = true;
    pthread_cond_signal(&run.cv);
    pthread_mutex_unlock(&run.mu);
}

static void feed_suspend(void *arg)
{
    (void)arg;
}

/* Reads frames from the change stream; a frame for profile "lat-<k>" completes sample k. */
static void *reader_main(void *arg)
{
    segfeed_sub *sub = arg;
    static char buf[65536];
    kith_buf acc = {0};
    for (;;) {
        ssize_t n = segfeed_read(sub, buf, sizeof buf, feed_suspend, NULL);
        if (n < 0) break;
        if (n == 0) {
            pthread_mutex_lock(&run.mu);
            if (!run.woken) {
                struct timespec ts;
                clock_gettime(CLOCK_REALTIME, &ts);
                ts.tv_nsec += 50 * 1000000L;
                ts.tv_sec += ts.tv_nsec / 1000000000L;
                ts.tv_nsec %= 1000000000L;
                pthread_cond_timedwait(&run.cv, &run.mu, &ts);
            }
            run.woken = false;
            bool stop = !run.loading && run.nsamples > 0 && run.seen[run.nsamples - 1] > 0;
            pthread_mutex_unlock(&run.mu);
            if (stop) break;
            continue;
        }
        double t = now_s();
        kith_buf_append(&acc, buf, (size_t)n);
        const char *p = acc.data;
        const char *end = acc.data + acc.len;
        while (p < end) {
            const char *lat = memmem(p, (size_t)(end - p), "\"id\":\"lat-", 10);
            if (!lat) break;
            long k = strtol(lat + 10, NULL, 10);
            if (k >= 0 && k < 4096 && run.seen[k] == 0) run.seen[k] = t;
            p = lat + 10;
        }
        acc.len = 0; /* frames arrive whole or are re-read next time: ids are short */
        pthread_mutex_lock(&run.mu);
        bool stop = !run.loading && run.nsamples > 0 && run.seen[run.nsamples - 1] > 0;
        pthread_mutex_unlock(&run.mu);
        if (stop) break;
    }
    kith_buf_free(&acc);
    return NULL;
}

static void *loader_main(void *arg)
{
    long per = (long)(intptr_t)arg;
    kith_buf buf = {0};
    enum { OP = 500 };
    const char **ds = kith_xmalloc(OP * sizeof *ds);
    long done = 0;
    int64_t now = kith_now_ms();
    while (done < per) {
        size_t n = 0;
        buf.len = 0;
        while (n < OP && done + (long)n < per) {
            pthread_mutex_lock(&run.mu);
            long i = run.next_person++ % opt.people;
            pthread_mutex_unlock(&run.mu);
            bench_person p;
            bench_person_make(opt.seed, (uint64_t)i, (uint64_t)opt.people, &p);
            bench_rng r;
            bench_person_rng(opt.seed ^ 0x5e9, (uint64_t)i, (uint64_t)done + 17, &r);
            bench_session s;
            bench_session_begin(&s, &p, &r, now, 1);
            for (int k = 0; k < 5 && n < OP && done + (long)n < per; k++) {
                bench_write_event(&buf, &s, &r, ((uint64_t)(uintptr_t)pthread_self() << 32) ^
                                                    (uint64_t)(done + (long)n) ^ ((uint64_t)i << 20));
                kith_buf_puts(&buf, "\n");
                ds[n++] = ds_web;
            }
        }
        apply_lines(&buf, ds, n);
        done += (long)n;
        pthread_mutex_lock(&run.mu);
        run.events_done += (long)n;
        pthread_mutex_unlock(&run.mu);
    }
    free(ds);
    kith_buf_free(&buf);
    return NULL;
}

static void *sampler_main(void *arg)
{
    (void)arg;
    kith_buf buf = {0};
    const char *ds[1] = {ds_web};
    long k = 0;
    while (k < 4096) {
        pthread_mutex_lock(&run.mu);
        bool go = run.loading;
        pthread_mutex_unlock(&run.mu);
        if (!go) break;
        char ts[40];
        kith_time_format(kith_now_ms() - 1000, ts, sizeof ts);
        buf.len = 0;
        kith_buf_printf(&buf,
                        "{\"_id\":\"lat-event-%ld\",\"timestamp\":\"%s\",\"eventType\":"
                        "\"commerce.purchases\",\"identityMap\":{\"CRMID\":[{\"id\":\"lat-%ld\","
                        "\"primary\":true}]},\"commerce\":{\"order\":{\"priceTotal\":9000000}}}\n",
                        k, ts, k);
        run.sent[k] = now_s();
        pthread_mutex_lock(&run.mu);
        run.nsamples = k + 1;
        pthread_mutex_unlock(&run.mu);
        apply_lines(&buf, ds, 1);
        k++;
        usleep(10000);
    }
    kith_buf_free(&buf);
    return NULL;
}

/* CPU time, to read the figures on a busy machine: the apply thread's (found by running on it). */
static int find_writer(void *ctx, store_batch *b)
{
    (void)b;
    return pthread_getcpuclockid(pthread_self(), ctx);
}

static double cpu_s(clockid_t c)
{
    struct timespec ts;
    clock_gettime(c, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static int dbl_cmp(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

struct result {
    long m;
    double events_per_s, evals_per_event, eval_us_per_event, p50_ms, p99_ms, max_ms;
    double writer_cpu_us, process_cpu_us; /* per event */
    long samples;
};

static int run_one(long m, struct result *out)
{
    char tmp[] = "/tmp/kith-bench-segments-XXXXXX";
    char path[512];
    const char *dir;
    if (opt.dir) {
        snprintf(path, sizeof path, "%s/m%ld", opt.dir, m);
        dir = path;
    } else {
        dir = mkdtemp(tmp);
    }
    char *err = NULL;
    if (!dir || engine_open(dir, NULL, "bench-admin", true, &eng, &err) != 0) {
        fprintf(stderr, "segments: cannot open engine: %s\n", err ? err : "?");
        return 1;
    }
    if (apply_call(eng->apply, setup_fn, NULL, false) != 0) return 1;
    /* the population, before any segment */
    double t0 = now_s();
    size_t total = load_population(opt.people, opt.history, opt.seed);
    printf("M=%ld: population %zu records and events in %.1f s\n", m, total, now_s() - t0);
    t0 = now_s();
    struct defs_ctx dc = {.m = m};
    if (apply_call(eng->apply, defs_fn, &dc, false) != 0 || dc.failed) return 1;
    double tdef = now_s() - t0;
    /* The backfill job over the existing profiles is batch work (bench/segbatch measures it):
     * cancel it so that it does not share the writer with the timed phase. */
    if (dc.job[0]) {
        segsvc_job_cancel(eng, 1, SEGJOB_SEGMENT, dc.job);
        wait_job(dc.job);
    }
    printf("M=%ld: %ld definitions (+1 latency segment) in %.1f s (backfill cancelled)\n", m, m,
           tdef);

    /* warm-up (untimed): the same browsing over the first people, so that the timed phase meets
     * profiles that were evaluated before (membership and aggregate states in place) */
    if (opt_warmup > 0) {
        double tw = now_s();
        long before = run.events_done;
        run.next_person = 0;
        long wl = opt.loaders < 1 ? 1 : opt.loaders > 16 ? 16 : opt.loaders;
        pthread_t wt[16];
        for (long i = 0; i < wl; i++)
            pthread_create(&wt[i], NULL, loader_main, (void *)(intptr_t)(opt_warmup / wl));
        for (long i = 0; i < wl; i++)
            pthread_join(wt[i], NULL);
        printf("M=%ld: warm-up %ld events in %.1f s\n", m, run.events_done - before, now_s() - tw);
    }
    /* the timed phase */
    memset(&run.sent, 0, sizeof run.sent);
    memset(&run.seen, 0, sizeof run.seen);
    run.nsamples = 0;
    run.events_done = 0;
    run.next_person = 0;
    run.woken = false;
    char filter[1][SEGDEF_ID_LEN + 1];
    snprintf(filter[0], sizeof filter[0], "%s", dc.latency_id);
    segfeed_opts fo = {.sb = 1, .segments = (const char(*)[SEGDEF_ID_LEN + 1])filter,
                       .nsegments = 1, .queue_max = SEGFEED_QUEUE_MAX, .wake = feed_wake};
    segfeed_sub *sub = NULL;
    if (segfeed_subscribe(eng, &fo, &sub) != 0) return 1;
    segsvc_stats s0, s1;
    segsvc_get_stats(eng, &s0);
    clockid_t writer_clock;
    if (apply_call(eng->apply, find_writer, &writer_clock, false) != 0) return 1;
    double w0 = cpu_s(writer_clock), c0 = cpu_s(CLOCK_PROCESS_CPUTIME_ID);
    run.loading = true;
    pthread_t lt[16], st, rt;
    pthread_create(&rt, NULL, reader_main, sub);
    pthread_create(&st, NULL, sampler_main, NULL);
    t0 = now_s();
    long loaders = opt.loaders < 1 ? 1 : opt.loaders > 16 ? 16 : opt.loaders;
    for (long i = 0; i < loaders; i++)
        pthread_create(&lt[i], NULL, loader_main, (void *)(intptr_t)(opt.events / loaders));
    for (long i = 0; i < loaders; i++)
        pthread_join(lt[i], NULL);
    double dt = now_s() - t0;
    double wcpu = cpu_s(writer_clock) - w0, pcpu = cpu_s(CLOCK_PROCESS_CPUTIME_ID) - c0;
    pthread_mutex_lock(&run.mu);
    run.loading = false;
    pthread_mutex_unlock(&run.mu);
    pthread_join(st, NULL);
    /* give the last samples a second to come out */
    double until = now_s() + 1.0;
    while (now_s() < until && run.nsamples && run.seen[run.nsamples - 1] == 0)
        usleep(10000);
    segfeed_shutdown(eng);
    pthread_join(rt, NULL);
    segfeed_unsubscribe(sub);
    segsvc_get_stats(eng, &s1);
    long events = run.events_done + run.nsamples;
    double lat[4096];
    long nl = 0;
    for (long k = 0; k < run.nsamples; k++)
        if (run.seen[k] > 0) lat[nl++] = (run.seen[k] - run.sent[k]) * 1000.0;
    qsort(lat, (size_t)nl, sizeof *lat, dbl_cmp);
    out->m = m;
    out->events_per_s = events / dt;
    out->evals_per_event = (double)(s1.evaluations - s0.evaluations) / (double)events;
    out->eval_us_per_event = (double)(s1.flush_ns - s0.flush_ns) / 1000.0 / (double)events;
    out->writer_cpu_us = wcpu * 1e6 / (double)events;
    out->process_cpu_us = pcpu * 1e6 / (double)events;
    out->samples = nl;
    out->p50_ms = nl ? lat[nl / 2] : 0;
    out->p99_ms = nl ? lat[(nl * 99) / 100 < nl ? (nl * 99) / 100 : nl - 1] : 0;
    out->max_ms = nl ? lat[nl - 1] : 0;
    printf("M=%ld: %ld events in %.2f s = %.0f events/s; %.2f evaluations/event; streaming "
           "evaluation on the writer %.1f us/event; event -> membership change p50 %.2f ms, p99 "
           "%.2f ms, max %.2f ms (%ld of %ld samples); CPU per event: writer thread %.1f us, "
           "process %.1f us\n",
           m, events, dt, out->events_per_s, out->evals_per_event, out->eval_us_per_event,
           out->p50_ms, out->p99_ms, out->max_ms, nl, run.nsamples, out->writer_cpu_us,
           out->process_cpu_us);
    printf("M=%ld: per event: %.3f profiles' events read (rescan or state build), %.3f aggregate "
           "states built, %.3f aggregate values written\n",
           m, (double)(s1.event_reads - s0.event_reads) / (double)events,
           (double)(s1.inc_builds - s0.inc_builds) / (double)events,
           (double)(s1.inc_writes - s0.inc_writes) / (double)events);
    engine_close(eng);
    eng = NULL;
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0) fprintf(stderr, "segments: could not remove %s\n", dir);
    return nl ? 0 : 1;
}

int main(int argc, char **argv)
{
    static const struct option lo[] = {
        {"people", 1, 0, 'n'}, {"history", 1, 0, 'h'}, {"events", 1, 0, 'e'},
        {"segments", 1, 0, 'm'}, {"seed", 1, 0, 's'}, {"dir", 1, 0, 'D'},
        {"loaders", 1, 0, 'l'}, {"warmup", 1, 0, 'w'}, {0, 0, 0, 0},
    };
    const char *segs = "0,100,1000,9999";
    int c;
    while ((c = getopt_long(argc, argv, "", lo, NULL)) != -1) {
        switch (c) {
        case 'n': opt.people = atol(optarg); break;
        case 'h': opt.history = atol(optarg); break;
        case 'e': opt.events = atol(optarg); break;
        case 'm': segs = optarg; break;
        case 's': opt.seed = strtoull(optarg, NULL, 10); break;
        case 'D': opt.dir = optarg; break;
        case 'l': opt.loaders = atol(optarg); break;
        case 'w': opt_warmup = atol(optarg); break;
        default:
            fprintf(stderr, "usage: segments [--people N] [--history H] [--events E] "
                            "[--segments M[,M...]] [--seed S] [--dir DIR] [--loaders L] "
                            "[--warmup W]\n");
            return 2;
        }
    }
    for (const char *p = segs; *p && opt.nsegs < 16;) {
        char *end;
        long m = strtol(p, &end, 10);
        if (end == p || m < 0 || m >= SEGDEF_MAX_PER_SANDBOX) return 2;
        opt.segs[opt.nsegs++] = m;
        p = *end == ',' ? end + 1 : end;
        if (end == p && *p) return 2;
    }
    if (opt.people < 1 || opt.events < 1 || opt.history < 0 || opt.history > 100) return 2;
    pthread_mutex_init(&run.mu, NULL);
    pthread_cond_init(&run.cv, NULL);
    kith_log_set_level(KITH_LOG_ERROR);
    printf("segments --people %ld --history %ld --events %ld --segments %s --loaders %ld --seed "
           "%llu --warmup %ld (%ld cores)\n",
           opt.people, opt.history, opt.events, segs, opt.loaders, (unsigned long long)opt.seed,
           opt_warmup,
           sysconf(_SC_NPROCESSORS_ONLN));
    struct result r[16];
    int rc = 0;
    for (int i = 0; i < opt.nsegs; i++)
        if (run_one(opt.segs[i], &r[i]) != 0) rc = 1;
    double base = 0, base_cpu = -1;
    for (int i = 0; i < opt.nsegs; i++)
        if (r[i].m == 0) base = 1e6 / r[i].events_per_s, base_cpu = r[i].writer_cpu_us;
    for (int i = 0; i < opt.nsegs && rc == 0; i++)
        printf("RESULT segments=%ld events_per_s=%.0f evals_per_event=%.2f eval_us_per_event=%.1f "
               "added_us_per_event=%.1f writer_cpu_us_per_event=%.1f "
               "added_writer_cpu_us_per_event=%.1f process_cpu_us_per_event=%.1f p50_ms=%.2f "
               "p99_ms=%.2f max_ms=%.2f samples=%ld\n",
               r[i].m, r[i].events_per_s, r[i].evals_per_event, r[i].eval_us_per_event,
               base > 0 ? 1e6 / r[i].events_per_s - base : 0.0, r[i].writer_cpu_us,
               base_cpu >= 0 ? r[i].writer_cpu_us - base_cpu : 0.0, r[i].process_cpu_us,
               r[i].p50_ms, r[i].p99_ms, r[i].max_ms, r[i].samples);
    return rc;
}
