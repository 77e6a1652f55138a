/* bench/ca: computed attributes, in process (the engine without HTTP).
 *
 *   ca [--people N] [--events E] [--attrs A] [--threads T] [--dir DIR] [--sync]
 *
 * It creates a data dir (DIR, default a temporary one, removed at the end), one Profile-enabled
 * ExperienceEvent schema (commerce, web, identityMap) and one dataset, then:
 *  1. ingests E events of N people (purchases with amounts, page views, impressions, stamped over
 *     the last 30 days) with no computed attribute, from T threads in batches of 500: events/s;
 *  2. publishes one attribute (a 7-day sum of purchases) and times its backfill over the stored
 *     events: events scanned per second, clusters per second;
 *  3. publishes A - 1 more (a mix of SUM, COUNT, MIN, MAX, AVG, MOST_RECENT, filters on the event
 *     type, lookbacks from hours to months) and waits for their backfills (the backfills queued
 *     while one runs share one pass over the events);
 *  4. ingests E more events with the A attributes: events/s, and the added cost per event: the
 *     process CPU time per event (every thread) minus that of phase 1 — robust on a busy machine —
 *     and the writer's CPU time inside the computed-attribute update alone.
 * The last lines, "RESULT ...", are for scripts. */
#include <getopt.h>
#include <sys/resource.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "kith/ca.h"
#include "kith/ingest.h"

static struct {
    long people, events, attrs, threads;
    const char *dir;
    bool sync;
} opt = {.people = 10000, .events = 200000, .attrs = 50, .threads = 2};

static kith_engine *eng;
static char ds_web[KITH_ID_LEN + 1];
static atomic_long next_event;
static long phase_end;
static long id_base;

static const char *schema_def =
    "{\"title\":\"bench events\",\"meta:class\":\"https://ns.adobe.com/xdm/context/experienceevent\","
    "\"allOf\":[{\"$ref\":\"https://ns.adobe.com/xdm/context/experienceevent-commerce\"},"
    "{\"$ref\":\"https://ns.adobe.com/xdm/context/experienceevent-web\"},"
    "{\"$ref\":\"https://ns.adobe.com/xdm/context/identitymap\"}],"
    "\"$id\":\"https://ns.adobe.com/kith/schemas/benchev\",\"meta:altId\":\"_kith.schemas.benchev\","
    "\"meta:immutableTags\":[\"union\"]}";

static int setup_fn(void *ctx, store_batch *b)
{
    (void)ctx;
    json_t *doc = json_loads(schema_def, 0, NULL);
    json_t *errors = json_array();
    kith_schema *s = NULL;
    if (schema_compile(doc, &s, errors) != 0) return KITH_EINVAL;
    json_decref(errors);
    catalog_put_schema(eng->cat, b, 1, doc, s);
    catalog_new_id(ds_web);
    catalog_put_dataset(eng->cat, b, 1,
                        json_pack("{s:s, s:s, s:{s:s}, s:{s:[s], s:[s]}}", "id", ds_web, "name",
                                  ds_web, "schemaRef", "id",
                                  "https://ns.adobe.com/kith/schemas/benchev", "tags",
                                  "unifiedProfile", "enabled:true", "unifiedIdentity",
                                  "enabled:true"));
    return 0;
}

static uint64_t mix(uint64_t x)
{
    x ^= x >> 33;
    x *= 0xff51afd7ed558ccdull;
    x ^= x >> 33;
    x *= 0xc4ceb9fe1a85ec53ull;
    return x ^ (x >> 33);
}

static const char *const pages[] = {"home", "cart", "search", "product", "checkout"};

static json_t *event_of(long i, int64_t now)
{
    uint64_t h = mix((uint64_t)i + 1);
    char crm[32], id[48], ts[40];
    snprintf(crm, sizeof crm, "c%ld", (long)(h % (uint64_t)opt.people));
    snprintf(id, sizeof id, "ev-%ld", i);
    kith_time_format(now - (int64_t)((h >> 20) % (30ull * 86400000ull)), ts, sizeof ts);
    json_t *ids = json_pack("{s:[{s:s, s:b}]}", "CRMID", "id", crm, "primary", 1);
    switch ((h >> 8) % 3) {
    case 0:
        return json_pack("{s:s, s:s, s:s, s:o, s:{s:{s:f}}}", "_id", id, "timestamp", ts,
                         "eventType", "commerce.purchases", "identityMap", ids, "commerce",
                         "order", "priceTotal", (double)((h >> 12) % 50000) / 100.0);
    case 1:
        return json_pack("{s:s, s:s, s:s, s:o, s:{s:{s:s}}}", "_id", id, "timestamp", ts,
                         "eventType", "web.webpagedetails.pageViews", "identityMap", ids, "web",
                         "webPageDetails", "name", pages[(h >> 16) % 5]);
    default:
        return json_pack("{s:s, s:s, s:s, s:o}", "_id", id, "timestamp", ts, "eventType",
                         "advertising.impressions", "identityMap", ids);
    }
}

static void *ingest_thread(void *arg)
{
    (void)arg;
    enum { BATCH = 500 };
    ingest_msg *m = calloc(BATCH, sizeof *m);
    json_t *errors = json_array();
    int64_t now = kith_now_ms();
    for (;;) {
        long first = atomic_fetch_add(&next_event, BATCH);
        if (first >= phase_end) break;
        size_t k = 0;
        for (long i = first; i < first + BATCH && i < phase_end; i++) {
            json_t *ev = event_of(id_base + i, now);
            const char *msg;
            if (ingest_prepare(eng, 1, ds_web, NULL, ev, NULL, kith_now_ms(), &m[k], errors, &msg) == 0)
                k++;
            json_decref(ev);
        }
        if (k && ingest_run(eng, m, k) != 0) fprintf(stderr, "ca: ingest_run failed\n");
        for (size_t i = 0; i < k; i++)
            ingest_msg_clear(&m[i]);
    }
    json_decref(errors);
    free(m);
    return NULL;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* CPU time of the whole process (every thread: validation, writer, RocksDB), seconds. */
static double cpu_s(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + (double)ru.ru_utime.tv_usec / 1e6 +
           (double)ru.ru_stime.tv_sec + (double)ru.ru_stime.tv_usec / 1e6;
}

static double phase_cpu_us; /* CPU µs per event of the last ingest phase */

/* Ingests events [from, from + n) from opt.threads threads; returns events/s. */
static double ingest_phase(long from, long n)
{
    double c0 = cpu_s();
    atomic_store(&next_event, 0);
    id_base = from;
    phase_end = n;
    pthread_t *t = calloc((size_t)opt.threads, sizeof *t);
    double t0 = now_s();
    for (long i = 0; i < opt.threads; i++)
        pthread_create(&t[i], NULL, ingest_thread, NULL);
    for (long i = 0; i < opt.threads; i++)
        pthread_join(t[i], NULL);
    double dt = now_s() - t0;
    free(t);
    phase_cpu_us = (cpu_s() - c0) * 1e6 / (double)n;
    return (double)n / dt;
}

struct put_ctx {
    const char *id;
    json_t *body;
    ca_result res;
};

static int put_fn(void *ctx, store_batch *b)
{
    struct put_ctx *c = ctx;
    return ca_put(eng, b, 1, c->id, c->body, true, &c->res);
}

static const char *const fns[] = {"sum(commerce.order.priceTotal)", "count()",
                                  "min(commerce.order.priceTotal)", "max(timestamp)",
                                  "avg(commerce.order.priceTotal)",
                                  "mostRecent(web.webPageDetails.name)"};
static const char *const filters[] = {"eventType = \"commerce.purchases\"",
                                      "eventType = \"web.webpagedetails.pageViews\"",
                                      ("eventType = \"advertising.impressions\" or eventType = "
                                       "\"commerce.purchases\"")};
static const char *const units[] = {"HOURS", "DAYS", "WEEKS", "MONTHS"};
static const int counts[] = {24, 7, 4, 6};

static int create_attr(long i, char *id_out)
{
    snprintf(id_out, CA_ID_LEN + 1, "00000000-0000-4000-8000-%012d", (int)(i % 1000000));
    char expr[300], name[32];
    int f = (int)(i % 6);
    /* Purchases for the numeric functions, page views for mostRecent, a mix for count. */
    const char *filt = i == 0 ? filters[0] : f == 5 ? filters[1] : f == 1 ? filters[(i / 6) % 3] : filters[0];
    snprintf(expr, sizeof expr, "xEvent[%s].%s", filt, i == 0 ? fns[0] : fns[f]);
    snprintf(name, sizeof name, "attr%ld", i);
    int u = i == 0 ? 1 : (int)((i / 2) % 4);
    struct put_ctx c = {id_out,
                        json_pack("{s:s, s:{s:s, s:s, s:s}, s:{s:i, s:s}, s:s}", "name", name,
                                  "expression", "type", "PQL", "format", "pql/text", "value", expr,
                                  "duration", "count", counts[u], "unit", units[u], "status",
                                  "PUBLISHED"),
                        {0}};
    int rc = apply_call(eng->apply, put_fn, &c, false);
    if (rc) fprintf(stderr, "ca: attribute %ld refused: %s\n", i, c.res.detail);
    json_decref(c.body);
    json_decref(c.res.doc);
    json_decref(c.res.errors);
    return rc;
}

/* Waits for the backfill of id; returns its events scanned and clusters. */
static void wait_backfill(const char *id, long *events, long *clusters)
{
    for (;;) {
        json_t *d = ca_get(eng, 1, id);
        json_t *bf = json_object_get(d, "backfill");
        const char *st = json_string_value(json_object_get(bf, "state"));
        if (st && (!strcmp(st, "succeeded") || !strcmp(st, "failed"))) {
            *events = (long)json_integer_value(json_object_get(bf, "eventsScanned"));
            *clusters = (long)json_integer_value(json_object_get(bf, "clustersTotal"));
            json_decref(d);
            return;
        }
        json_decref(d);
        usleep(2000);
    }
}

int main(int argc, char **argv)
{
    static const struct option lo[] = {{"people", required_argument, 0, 'p'},
                                       {"events", required_argument, 0, 'e'},
                                       {"attrs", required_argument, 0, 'a'},
                                       {"threads", required_argument, 0, 't'},
                                       {"dir", required_argument, 0, 'd'},
                                       {"sync", no_argument, 0, 's'},
                                       {0, 0, 0, 0}};
    int c;
    while ((c = getopt_long(argc, argv, "", lo, NULL)) != -1) {
        switch (c) {
        case 'p': opt.people = atol(optarg); break;
        case 'e': opt.events = atol(optarg); break;
        case 'a': opt.attrs = atol(optarg); break;
        case 't': opt.threads = atol(optarg); break;
        case 'd': opt.dir = optarg; break;
        case 's': opt.sync = true; break;
        default:
            fprintf(stderr, "usage: ca [--people N] [--events E] [--attrs A] [--threads T] [--dir DIR] [--sync]\n");
            return 2;
        }
    }
    if (opt.people < 1 || opt.events < 1 || opt.attrs < 1 || opt.attrs > CA_MAX_PER_SANDBOX ||
        opt.threads < 1 || opt.threads > 64)
        return 2;
    char tmp[] = "/tmp/kith-bench-ca-XXXXXX";
    const char *dir = opt.dir ? opt.dir : mkdtemp(tmp);
    char *err = NULL;
    if (!dir || engine_open(dir, NULL, "bench-admin", opt.sync, &eng, &err) != 0) {
        fprintf(stderr, "ca: cannot open engine: %s\n", err ? err : "?");
        return 1;
    }
    kith_log_set_level(KITH_LOG_ERROR);
    if (apply_call(eng->apply, setup_fn, NULL, false) != 0) return 1;

    double base = ingest_phase(0, opt.events);
    double base_cpu = phase_cpu_us;
    printf("1. %ld events of %ld people, no computed attribute: %.0f events/s, %.1f us CPU per "
           "event\n",
           opt.events, opt.people, base, base_cpu);

    char (*ids)[CA_ID_LEN + 1] = calloc((size_t)opt.attrs, sizeof *ids);
    double t0 = now_s();
    if (create_attr(0, ids[0])) return 1;
    long ev1 = 0, cl1 = 0;
    wait_backfill(ids[0], &ev1, &cl1);
    double bf1 = now_s() - t0;
    printf("2. backfill of one attribute (7-day sum): %ld events of %ld profiles in %.2f s: "
           "%.0f events/s, %.0f profiles/s\n",
           ev1, cl1, bf1, (double)ev1 / bf1, (double)cl1 / bf1);

    ca_stats st0;
    ca_get_stats(eng, &st0);
    t0 = now_s();
    for (long i = 1; i < opt.attrs; i++)
        if (create_attr(i, ids[i])) return 1;
    for (long i = 1; i < opt.attrs; i++) {
        long e1, c1;
        wait_backfill(ids[i], &e1, &c1);
    }
    double bfn = now_s() - t0;
    ca_stats st1;
    ca_get_stats(eng, &st1);
    long evs = (long)(st1.backfill_events - st0.backfill_events);
    printf("3. %ld more attributes published one after the other (backfills waiting together share "
           "a pass over the events): all backfilled in %.2f s, %ld events read (%.0f events/s)\n",
           opt.attrs - 1, bfn, evs, (double)evs / bfn);

    double with = ingest_phase(opt.events, opt.events);
    double added_us = phase_cpu_us - base_cpu;
    printf("4. %ld more events with %ld computed attributes: %.0f events/s, %.1f us CPU per "
           "event: added cost %.1f us CPU per event (wall: %.1f us)\n",
           opt.events, opt.attrs, with, phase_cpu_us, added_us, 1e6 / with - 1e6 / base);
    ca_stats st;
    ca_get_stats(eng, &st);
    double note_us = st.events_noted ? (double)st.note_ns / 1e3 / (double)st.events_noted : 0;
    printf("   writer CPU time in the computed-attribute update: %.1f us per event (%llu attribute "
           "updates)\n",
           note_us, (unsigned long long)st.events_matched);
    printf("command: ca --people %ld --events %ld --attrs %ld --threads %ld%s\n", opt.people,
           opt.events, opt.attrs, opt.threads, opt.sync ? " --sync" : "");
    printf("RESULT base_events_per_s=%.0f with_attrs_events_per_s=%.0f added_us_per_event=%.1f "
           "writer_us_per_event=%.1f backfill_events_per_s=%.0f backfill_profiles_per_s=%.0f "
           "backfill_rest_s=%.2f\n",
           base, with, added_us, note_us, (double)ev1 / bf1, (double)cl1 / bf1, bfn);
    free(ids);
    engine_close(eng);
    if (!opt.dir) {
        char cmd[200];
        snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
        if (system(cmd) != 0) fprintf(stderr, "ca: could not remove %s\n", dir);
    }
    return 0;
}
