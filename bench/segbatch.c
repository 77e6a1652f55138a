/* bench/segbatch: batch segmentation time, in process (the engine without HTTP).
 *
 *   segbatch [--people N] [--segments M] [--events E] [--seed S] [--dir DIR] [--streaming]
 *            [--seed-segments] [--runs R]
 *
 * It creates a data dir (DIR, default a temporary one, removed at the end), the loadgen schemas (a
 * profile class with person, personal, loyalty and _acme.crm fields; an ExperienceEvent class with
 * commerce, web, advertising and _acme.campaignId) and ingests the bench population (bench/common.h):
 * every person's CRM and loyalty records and one browsing session of E events (page views, product
 * views, ad impressions, purchases over the last 30 days), linked by CRMID/ECID into clusters.
 * Then it creates M segment definitions of mixed shapes in one group (profile attributes, event
 * counts and sums, the seed's three segments with varied constants; batch-only unless --streaming),
 * which queues ONE backfill job over all of them — the first evaluation, timed — and then runs a
 * segment job over "*" again (R times; the best is reported), the re-evaluation of a population whose
 * memberships exist. With
 * --seed-segments the M segments are just the seed's three (PQL.md). It prints the load rate, the
 * two job times, profiles/s and segment evaluations/s; the last line, "RESULT ...", is for scripts. */
#include <getopt.h>
#include <sys/resource.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "common.h"
#include "kith/ingest.h"
#include "kith/jalloc.h"
#include "kith/segsvc.h"

static struct {
    long people, segments, events;
    uint64_t seed;
    const char *dir;
    bool streaming, seed_segments;
    long runs;
} opt = {.people = 100000, .segments = 100, .events = 4, .seed = 1, .runs = 1};

#define BENCH_NAME "segbatch"
#include "segpop.h"

/* The i-th segment expression: mixed shapes with varied constants. */
static void expression(long i, char *out, size_t cap)
{
    static const char *const seeds[] = {
        "xEvent[eventType = \"commerce.purchases\"].max(timestamp) occurs = 7 days before today",
        "xEvent[eventType = \"commerce.purchases\"].sum(commerce.order.priceTotal) > 10000",
        "xEvent[eventType = \"advertising.impressions\" and _acme.campaignId in [\"c-101\", "
        "\"c-102\", \"c-103\", \"c-104\", \"c-105\"] and timestamp occurs <= 30 minutes before "
        "now]._acme.campaignId.distinct().count() >= 3"};
    if (opt.seed_segments) {
        snprintf(out, cap, "%s", seeds[i % 3]);
        return;
    }
    long k = i / 10;
    switch (i % 10) {
    case 0:
    case 1:
    case 2:
        snprintf(out, cap, "%s", seeds[i % 10]);
        if (k && i % 10 == 1)
            snprintf(out, cap,
                     "xEvent[eventType = \"commerce.purchases\"].sum(commerce.order.priceTotal) > %ld",
                     100 + k * 150);
        else if (k && i % 10 == 0)
            snprintf(out, cap,
                     "xEvent[eventType = \"commerce.purchases\"].max(timestamp) occurs <= %ld days "
                     "before today",
                     1 + k * 3);
        break;
    case 3:
        snprintf(out, cap, "person.name.lastName = \"%s\"",
                 bench_last_names[k % BENCH_ARRAY_LEN(bench_last_names)]);
        break;
    case 4:
        snprintf(out, cap, "_acme.crm.lifetimeValue > %ld and _acme.crm.marketingOptIn = true",
                 k * 400);
        break;
    case 5:
        snprintf(out, cap, "homeAddress.city = \"%s\" or loyalty.tier = \"%s\"",
                 bench_cities[k % BENCH_ARRAY_LEN(bench_cities)].city,
                 bench_loyalty_tiers[k % BENCH_ARRAY_LEN(bench_loyalty_tiers)]);
        break;
    case 6:
        snprintf(out, cap, "xEvent[eventType = \"web.webpagedetails.pageViews\"].count() >= %ld",
                 1 + k % 4);
        break;
    case 7:
        snprintf(out, cap,
                 "xEvent[eventType = \"advertising.impressions\" and _acme.campaignId = "
                 "\"c-%ld\"].count() > 0",
                 101 + k % BENCH_CAMPAIGNS);
        break;
    case 8:
        snprintf(out, cap,
                 "xEvent[eventType = \"commerce.productViews\" and timestamp occurs <= %ld days "
                 "before now].count() >= 1",
                 1 + k * 3);
        break;
    default:
        snprintf(out, cap, "person.birthDate occurs before date(%ld, 1, 1)", 1950 + k * 5);
        break;
    }
}

struct defs_ctx {
    char job[SEGDEF_ID_LEN + 1];
    long failed;
};

static int defs_fn(void *arg, store_batch *b)
{
    struct defs_ctx *c = arg;
    for (long i = 0; i < opt.segments; i++) {
        char text[512], id[SEGDEF_ID_LEN + 1], name[32];
        expression(i, text, sizeof text);
        kith_uuid4(id);
        snprintf(name, sizeof name, "segment %ld", i);
        json_t *body = json_pack("{s:s, s:{s:s, s:s, s:s}}", "name", name, "expression", "type",
                                 "PQL", "format", "pql/text", "value", text);
        if (!opt.streaming)
            json_object_set_new(body, "evaluationInfo",
                                json_pack("{s:{s:b}, s:{s:b}}", "batch", "enabled", 1,
                                          "continuous", "enabled", 0));
        segdef_result res;
        if (segdef_put(eng, b, 1, id, body, true, &res) != 0) {
            fprintf(stderr, "segbatch: segment %ld (%s): %s\n", i, text, res.detail);
            c->failed++;
        } else {
            const char *job = json_string_value(json_object_get(res.doc, "kith:backfillJobId"));
            if (job) snprintf(c->job, sizeof c->job, "%s", job);
        }
        json_decref(res.doc);
        json_decref(res.errors);
        json_decref(body);
    }
    return 0;
}

/* CPU seconds of every thread of the process so far (user + system). */
static double cpu_s(void)
{
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    return (double)ru.ru_utime.tv_sec + ru.ru_utime.tv_usec / 1e6 + (double)ru.ru_stime.tv_sec +
           ru.ru_stime.tv_usec / 1e6;
}

static double last_cpu;  /* CPU seconds of the last job waited for (all threads) */
static double last_wcpu; /* ... of its evaluating workers only (kith:workerCpuMs) */

/* Waits for the job and prints its figures; returns its time in ms (-1: failed). */
static long wait_job(const char *what, const char *id, uint64_t *members)
{
    json_t *job = NULL;
    double c0 = cpu_s();
    for (;;) {
        json_decref(job);
        job = segsvc_job_get(eng, 1, SEGJOB_SEGMENT, id);
        const char *st = json_string_value(json_object_get(job, "status"));
        if (!st || (strcmp(st, "NEW") != 0 && strcmp(st, "PROCESSING") != 0)) break;
        usleep(20000);
    }
    const char *st = json_string_value(json_object_get(job, "status"));
    json_t *m = json_object_get(job, "metrics");
    long ms = (long)json_integer_value(json_object_get(json_object_get(m, "totalTime"), "totalTimeInMs"));
    long profiles = (long)json_integer_value(json_object_get(m, "totalProfiles"));
    uint64_t sum = 0;
    const char *k;
    json_t *v;
    json_object_foreach(json_object_get(m, "segmentedProfileCounter"), k, v) sum += (uint64_t)json_integer_value(v);
    long nseg = (long)json_object_size(json_object_get(m, "segmentedProfileCounter"));
    double s = ms > 0 ? ms / 1000.0 : 0.001;
    json_t *w = json_object_get(job, "kith:writes");
    last_cpu = cpu_s() - c0;
    last_wcpu = json_integer_value(json_object_get(job, "kith:workerCpuMs")) / 1000.0;
    double evals = (double)profiles * nseg;
    printf("%-26s %s in %.2f s: %ld profiles x %ld segments, %.0f profiles/s, %.0f evaluations/s, "
           "%llu memberships, %lld written (workers waited %.2f s for the writer); %.2f s CPU "
           "(all threads), %.2f us CPU per profile and segment; workers %.2f s CPU, %.3f us per "
           "profile and segment\n",
           what, st ? st : "?", ms / 1000.0, profiles, nseg, profiles / s, evals / s,
           (unsigned long long)sum, (long long)json_integer_value(json_object_get(w, "memberships")),
           json_integer_value(json_object_get(w, "waitMs")) / 1000.0, last_cpu,
           evals > 0 ? last_cpu * 1e6 / evals : 0.0, last_wcpu,
           evals > 0 ? last_wcpu * 1e6 / evals : 0.0);
    *members = sum;
    bool ok = st && strcmp(st, "SUCCEEDED") == 0;
    json_decref(job);
    return ok ? ms : -1;
}

int main(int argc, char **argv)
{
    static const struct option lo[] = {
        {"people", 1, 0, 'n'},    {"segments", 1, 0, 'm'}, {"events", 1, 0, 'e'},
        {"seed", 1, 0, 's'},      {"dir", 1, 0, 'D'},      {"streaming", 0, 0, 'S'},
        {"seed-segments", 0, 0, 'T'}, {"runs", 1, 0, 'R'}, {0, 0, 0, 0},
    };
    int c;
    while ((c = getopt_long(argc, argv, "", lo, NULL)) != -1) {
        switch (c) {
        case 'n':
            opt.people = atol(optarg);
            break;
        case 'm':
            opt.segments = atol(optarg);
            break;
        case 'e':
            opt.events = atol(optarg);
            break;
        case 's':
            opt.seed = strtoull(optarg, NULL, 10);
            break;
        case 'D':
            opt.dir = optarg;
            break;
        case 'S':
            opt.streaming = true;
            break;
        case 'T':
            opt.seed_segments = true;
            break;
        case 'R':
            opt.runs = atol(optarg);
            break;
        default:
            fprintf(stderr, "usage: segbatch [--people N] [--segments M] [--events E] [--seed S] "
                            "[--dir DIR] [--streaming] [--seed-segments] [--runs R]\n");
            return 2;
        }
    }
    if (opt.seed_segments) opt.segments = 3;
    if (opt.runs < 1 || opt.runs > 1000) return 2;
    if (opt.people < 1 || opt.segments < 1 || opt.segments > SEGDEF_MAX_PER_SANDBOX ||
        opt.events < 0 || opt.events > 100)
        return 2;
    jalloc_install(); /* as kithd: before any jansson allocation */
    char tmp[] = "/tmp/kith-bench-segbatch-XXXXXX";
    const char *dir = opt.dir ? opt.dir : mkdtemp(tmp);
    char *err = NULL;
    if (!dir || engine_open(dir, NULL, "bench-admin", false, &eng, &err) != 0) {
        fprintf(stderr, "segbatch: cannot open engine: %s\n", err ? err : "?");
        return 1;
    }
    kith_log_set_level(KITH_LOG_ERROR);
    if (apply_call(eng->apply, setup_fn, NULL, false) != 0) return 1;

    printf("segbatch --people %ld --segments %ld --events %ld --seed %llu%s%s (%ld cores)\n",
           opt.people, opt.segments, opt.events, (unsigned long long)opt.seed,
           opt.streaming ? " --streaming" : "", opt.seed_segments ? " --seed-segments" : "",
           sysconf(_SC_NPROCESSORS_ONLN));
    double t0 = now_s();
    size_t total = load_population(opt.people, opt.events, opt.seed);
    double load = now_s() - t0;
    printf("load: %zu records and events in %.1f s, %.0f/s\n", total, load, total / load);

    struct defs_ctx dc = {{0}, 0};
    if (apply_call(eng->apply, defs_fn, &dc, false) != 0 || !dc.job[0] || dc.failed) {
        fprintf(stderr, "segbatch: defining the segments failed\n");
        return 1;
    }
    uint64_t members1 = 0, members2 = 0;
    long first = wait_job("first evaluation (backfill)", dc.job, &members1);
    double first_cpu = last_cpu, again_cpu = 0, again_wcpu = 0;
    long again = -1;
    for (long run = 0; run < opt.runs; run++) { /* the best of the re-runs */
        segdef_result res;
        json_t *body = json_pack("[{s:s}]", "segmentId", "*");
        if (segsvc_job_create(eng, 1, SEGJOB_SEGMENT, body, &res) != 0) {
            fprintf(stderr, "segbatch: job: %s\n", res.detail);
            return 1;
        }
        json_decref(body);
        char id[64];
        snprintf(id, sizeof id, "%s", json_string_value(json_object_get(res.doc, "id")));
        json_decref(res.doc);
        long ms = wait_job("re-evaluation (\"*\" job)", id, &members2);
        if (ms < 0) {
            again = -1;
            break;
        }
        if (again < 0 || ms < again) again = ms, again_cpu = last_cpu;
        if (run == 0 || last_wcpu < again_wcpu) again_wcpu = last_wcpu;
    }
    printf("RESULT people=%ld segments=%ld events=%ld load_per_s=%.0f first_ms=%ld again_ms=%ld "
           "first_cpu_s=%.2f again_cpu_s=%.2f again_worker_cpu_s=%.2f members=%llu\n",
           opt.people, opt.segments, opt.events, total / load, first, again, first_cpu, again_cpu,
           again_wcpu,
           (unsigned long long)members2);
    engine_close(eng);
    if (!opt.dir) {
        char cmd[256];
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
        if (system(cmd) != 0) fprintf(stderr, "segbatch: could not remove %s\n", dir);
    }
    (void)members1;
    return first < 0 || again < 0 ? 1 : 0;
}
