/* bench/lookup: profile lookups/s and latency percentiles, in process (the engine without HTTP),
 * for the default policy (the materialised view) and for a read-time policy (dataSetPrecedence),
 * while one thread keeps ingesting.
 *
 *   lookup [--people N] [--rate R] [--threads T] [--duration S] [--ingest-rate I[,I...]]
 *          [--ingest-group G] [--settle S] [--policies default|all] [--writer-nice N]
 *          [--ingest-nice N] [--ab] [--dir DIR] [--sync]
 *
 * It creates a data dir (DIR, default a temporary one, removed at the end), one profile schema and
 * two profile datasets (crm, loyalty), and ingests N people: every person a CRM record (CRMID
 * primary + Email, name, tier), 40% also a loyalty record (Phone primary + CRMID, tier, points)
 * that links into the same cluster. It then waits until RocksDB has no flush or compaction pending
 * (at most --settle seconds), so the load's own compactions are not what the lookups measure.
 * Then, for each concurrent ingest rate I and each policy, T threads look up random people by
 * CRMID for S seconds, paced to R lookups/s in total (0: as fast as they can), while an ingest
 * thread rewrites random people's CRM records in groups of G, paced to I records/s (open loop: a
 * group is due every G/I seconds; "max" or 0 ingests as fast as the writer takes it). It prints
 * lookups/s, p50/p99/p99.9/max, the ingest rate asked for and reached, the load average, and the
 * command line; the "RESULT ..." lines are for scripts. The writer runs --writer-nice (kithd's
 * default 5) and the ingest thread --ingest-nice (10, as kithd's parse pool) nice levels below the
 * lookup threads; --ab runs every phase a second time, right after, with all threads at the same
 * priority (an A/B close in time, over the same population). */
#include <getopt.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "kith/ingest.h"
#include "kith/kjson.h"

enum { MAX_RATES = 16 };

static struct {
    long people, rate, threads, group;
    int writer_nice, ingest_nice; /* the writer thread's (kithd --writer-nice) and the ingest thread's */
    bool ab; /* each phase again with every thread at the same priority */
    double duration, settle;
    long ingest[MAX_RATES]; /* records/s; 0: unpaced */
    int ningest;
    bool all_policies;
    const char *dir;
    bool sync;
} opt = {.people = 100000, .rate = 20000, .threads = 4, .duration = 10, .group = 50,
         .settle = 120, .ingest = {5000}, .ningest = 1, .all_policies = true,
         .writer_nice = -1, .ingest_nice = 10};
static long cur_ingest; /* the phase's ingest rate */
static int cur_ingest_nice, base_nice; /* the phase's ingest thread nice (relative); the process's */

static kith_engine *eng;
static char ds_crm[KITH_ID_LEN + 1], ds_loy[KITH_ID_LEN + 1];
static uint32_t ns_crm;
static atomic_bool stop_ingest, stop_lookups;
static atomic_ullong ingested;

static const char *schema_def =
    "{\"title\":\"bench\",\"meta:class\":\"https://ns.adobe.com/xdm/context/profile\","
    "\"allOf\":[{\"$ref\":\"https://ns.adobe.com/xdm/context/profile-person-details\"},"
    "{\"$ref\":\"https://ns.adobe.com/xdm/context/profile-personal-details\"},"
    "{\"$ref\":\"https://ns.adobe.com/xdm/context/profile-loyalty-details\"},"
    "{\"$ref\":\"https://ns.adobe.com/xdm/context/identitymap\"}],"
    "\"properties\":{\"_acme\":{\"type\":\"object\",\"properties\":{\"tier\":{\"type\":\"string\"},"
    "\"visits\":{\"type\":\"integer\"}}}},"
    "\"$id\":\"https://ns.adobe.com/kith/schemas/bench\",\"meta:altId\":\"_kith.schemas.bench\","
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
    char *ids[2] = {ds_crm, ds_loy};
    for (int i = 0; i < 2; i++) {
        catalog_new_id(ids[i]);
        catalog_put_dataset(
            eng->cat, b, 1,
            json_pack("{s:s, s:s, s:{s:s}, s:{s:[s], s:[s]}}", "id", ids[i], "name", ids[i],
                      "schemaRef", "id", "https://ns.adobe.com/kith/schemas/bench", "tags",
                      "unifiedProfile", "enabled:true", "unifiedIdentity", "enabled:true"));
    }
    return 0;
}

static json_t *crm_record(long i, long visits)
{
    char crm[32], email[48];
    snprintf(crm, sizeof crm, "c%ld", i);
    snprintf(email, sizeof email, "p%ld@bench.example", i);
    return json_pack("{s:{s:[{s:s, s:b}], s:[{s:s}]}, s:{s:{s:s, s:s}}, s:{s:s, s:I}}",
                     "identityMap", "CRMID", "id", crm, "primary", 1, "Email", "id", email,
                     "person", "name", "firstName", "Ann", "lastName", crm, "_acme", "tier",
                     i % 3 ? "silver" : "gold", "visits", (json_int_t)visits);
}

static json_t *loyalty_record(long i)
{
    char crm[32], phone[32];
    snprintf(crm, sizeof crm, "c%ld", i);
    snprintf(phone, sizeof phone, "+1555%07ld", i);
    return json_pack("{s:{s:[{s:s, s:b}], s:[{s:s}]}, s:{s:s, s:I}, s:{s:s}}", "identityMap",
                     "Phone", "id", phone, "primary", 1, "CRMID", "id", crm, "loyalty", "tier",
                     "gold", "points", (json_int_t)(i % 5000), "_acme", "tier", "bronze");
}

/* Validates and applies n entities of dataset ds (taken). */
static void apply_all(json_t **ents, const char **ds, size_t n)
{
    ingest_msg *m = calloc(n, sizeof *m);
    size_t k = 0;
    json_t *errors = json_array();
    for (size_t i = 0; i < n; i++) {
        const char *msg;
        if (ingest_prepare(eng, 1, ds[i], NULL, ents[i], NULL, kith_now_ms(), &m[k], errors,
                           &msg) == 0)
            k++;
        json_decref(ents[i]);
    }
    json_decref(errors);
    if (k && ingest_run(eng, m, k) != 0) fprintf(stderr, "lookup: ingest_run failed\n");
    for (size_t i = 0; i < k; i++)
        ingest_msg_clear(&m[i]);
    free(m);
    atomic_fetch_add(&ingested, k);
}

static uint64_t rng_next(uint64_t *s)
{
    *s ^= *s << 13;
    *s ^= *s >> 7;
    *s ^= *s << 17;
    return *s;
}

static uint64_t now_ns(void);

/* Rewrites random people's CRM records in groups of opt.group, a group due every group/rate
 * seconds (open loop: a late group is sent at once, the rate reached is reported). */
static void *ingest_thread(void *arg)
{
    (void)arg;
    pthread_setname_np(pthread_self(), "bench-ingest");
    uint64_t s = 0x9e3779b97f4a7c15ull;
    long visits = 1;
    size_t g = (size_t)opt.group;
    json_t **ents = calloc(g, sizeof *ents);
    const char **ds = calloc(g, sizeof *ds);
    double per = cur_ingest ? 1e9 * (double)g / (double)cur_ingest : 0;
    /* This thread parses and validates, as kithd's parse pool does for ingest requests: at the
     * pool's priority (src/http/pool.c), below the lookups. */
    (void)setpriority(PRIO_PROCESS, (id_t)syscall(SYS_gettid),
                      base_nice + cur_ingest_nice > 19 ? 19 : base_nice + cur_ingest_nice);
    uint64_t start = now_ns(), n = 0;
    while (!atomic_load(&stop_ingest)) {
        if (per) {
            uint64_t due = start + (uint64_t)(per * (double)n++), now = now_ns();
            if (due > now) {
                uint64_t left = due - now;
                /* sleep in slices of at most 50 ms so the end of a phase is not held up */
                struct timespec ts = {0, (long)(left > 50000000ull ? 50000000ull : left)};
                nanosleep(&ts, NULL);
                if (left > 50000000ull) {
                    n--;
                    continue;
                }
            }
        }
        for (size_t i = 0; i < g; i++) {
            ents[i] = crm_record((long)(rng_next(&s) % (uint64_t)opt.people), visits++);
            ds[i] = ds_crm;
        }
        apply_all(ents, ds, g);
    }
    free(ents);
    free(ds);
    return NULL;
}

typedef struct lk_thread {
    pthread_t t;
    int idx;
    const merge_policy *policy;
    uint64_t *lat; /* ns from the due time */
    uint64_t *svc; /* ns from the start of the lookup */
    size_t n, cap;
    size_t errors;
} lk_thread;

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* Paced (open loop per thread): each lookup has a due time; latency counts from the due time, so
 * falling behind shows in the percentiles instead of lowering the rate silently. */
static void *lookup_thread(void *arg)
{
    lk_thread *t = arg;
    pthread_setname_np(pthread_self(), "bench-lookup");
    uint64_t s = 0x1234567ull + (uint64_t)t->idx * 7919;
    double per = opt.rate ? 1e9 * (double)opt.threads / (double)opt.rate : 0;
    uint64_t start = now_ns(), i = 0;
    while (!atomic_load(&stop_lookups)) {
        uint64_t due = start + (uint64_t)(per * (double)i++);
        uint64_t now = now_ns();
        if (per && due > now) {
            struct timespec ts = {0, (long)(due - now)};
            nanosleep(&ts, NULL);
        }
        uint64_t begin = now_ns();
        if (!per) due = begin;
        char crm[32];
        int len = snprintf(crm, sizeof crm, "c%ld", (long)(rng_next(&s) % (uint64_t)opt.people));
        /* A lookup is the response text, as kithd sends it: the materialised policy copies the
         * stored view (profile_lookup_text), a read-time policy merges a tree and writes it. */
        int err = 0;
        kith_buf text = {0};
        if (profile_policy_materialised(t->policy)) {
            err = profile_lookup_text(eng, 1, ns_crm, crm, (size_t)len, t->policy, &text);
        } else {
            json_t *p =
                profile_lookup_policy(eng, 1, ns_crm, crm, (size_t)len, NULL, t->policy, &err);
            if (p) kjson_dump(p, &text);
            json_decref(p);
        }
        uint64_t done = now_ns();
        if (err) t->errors++;
        kith_buf_free(&text);
        if (t->n == t->cap) {
            t->cap = t->cap ? t->cap * 2 : 1 << 16;
            t->lat = realloc(t->lat, t->cap * sizeof *t->lat);
            t->svc = realloc(t->svc, t->cap * sizeof *t->svc);
        }
        t->svc[t->n] = done - begin;
        t->lat[t->n++] = done - due;
    }
    return NULL;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static void run_phase(const char *name, const merge_policy *policy)
{
    lk_thread *th = calloc((size_t)opt.threads, sizeof *th);
    atomic_store(&stop_lookups, false);
    atomic_store(&stop_ingest, false);
    unsigned long long ing0 = atomic_load(&ingested);
    pthread_t it;
    pthread_create(&it, NULL, ingest_thread, NULL);
    uint64_t t0 = now_ns();
    for (long i = 0; i < opt.threads; i++) {
        th[i].idx = (int)i;
        th[i].policy = policy;
        pthread_create(&th[i].t, NULL, lookup_thread, &th[i]);
    }
    usleep((useconds_t)(opt.duration * 1e6));
    atomic_store(&stop_lookups, true);
    size_t total = 0, errors = 0;
    for (long i = 0; i < opt.threads; i++) {
        pthread_join(th[i].t, NULL);
        total += th[i].n;
        errors += th[i].errors;
    }
    double secs = (double)(now_ns() - t0) / 1e9;
    atomic_store(&stop_ingest, true);
    pthread_join(it, NULL);
    unsigned long long ing = atomic_load(&ingested) - ing0;
    uint64_t *all = malloc((total + 1) * sizeof *all), *svc = malloc((total + 1) * sizeof *svc);
    size_t k = 0;
    for (long i = 0; i < opt.threads; i++) {
        memcpy(all + k, th[i].lat, th[i].n * sizeof *all);
        memcpy(svc + k, th[i].svc, th[i].n * sizeof *svc);
        k += th[i].n;
        free(th[i].lat);
        free(th[i].svc);
    }
    qsort(all, total, sizeof *all, cmp_u64);
    qsort(svc, total, sizeof *svc, cmp_u64);
#define PCT(p) (total ? (double)all[(size_t)((double)(total - 1) * (p))] / 1e6 : 0)
#define SVC(p) (total ? (double)svc[(size_t)((double)(total - 1) * (p))] / 1e6 : 0)
    double la[3] = {0};
    if (getloadavg(la, 3) < 1) la[0] = -1;
    char want[32];
    if (cur_ingest) snprintf(want, sizeof want, "%ld", cur_ingest);
    else snprintf(want, sizeof want, "max");
    printf("%-28s %9.0f lookups/s  p50 %.3f ms  p99 %.3f ms  p99.9 %.3f ms  max %.3f ms  "
           "errors %zu  ingest %s -> %.0f records/s  load %.2f\n",
           name, (double)total / secs, PCT(0.50), PCT(0.99), PCT(0.999), PCT(1.0), errors, want,
           (double)ing / secs, la[0]);
    printf("%-28s service time (from the lookup's start): p50 %.3f ms  p99 %.3f ms  p99.9 %.3f ms  "
           "max %.3f ms\n", "", SVC(0.50), SVC(0.99), SVC(0.999), SVC(1.0));
    printf("RESULT policy=%s lookups_per_s=%.0f p50_ms=%.3f p99_ms=%.3f p999_ms=%.3f max_ms=%.3f "
           "errors=%zu ingest_target=%s ingest_per_s=%.0f load1=%.2f\n",
           name, (double)total / secs, PCT(0.50), PCT(0.99), PCT(0.999), PCT(1.0), errors, want,
           (double)ing / secs, la[0]);
    free(svc);
    free(all);
    free(th);
}

/* On the writer thread: its nice, relative to the process's (--ab switches it between phases). */
static int set_writer_nice(void *ctx, store_batch *b)
{
    (void)b;
    int n = base_nice + *(const int *)ctx;
    (void)setpriority(PRIO_PROCESS, (id_t)syscall(SYS_gettid), n > 19 ? 19 : n);
    return 0;
}

/* kithd's priorities (the options' writer and ingest nice) or, with flat, all threads equal. */
static void priorities(bool flat)
{
    int w = flat ? 0 : opt.writer_nice;
    cur_ingest_nice = flat ? 0 : opt.ingest_nice;
    apply_call(eng->apply, set_writer_nice, &w, false);
}

static int parse_rates(const char *arg)
{
    opt.ningest = 0;
    char buf[256];
    snprintf(buf, sizeof buf, "%s", arg);
    for (char *save = NULL, *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
        if (opt.ningest == MAX_RATES) return -1;
        char *end;
        long v = strcmp(t, "max") == 0 ? 0 : strtol(t, &end, 10);
        if (strcmp(t, "max") != 0 && (*end || v < 0)) return -1;
        opt.ingest[opt.ningest++] = v;
    }
    return opt.ningest ? 0 : -1;
}

/* Waits until RocksDB runs and owes no flush or compaction, for at most opt.settle seconds. */
static void settle(void)
{
    uint64_t t0 = now_ns();
    while ((double)(now_ns() - t0) / 1e9 < opt.settle && store_background_pending(eng->store))
        usleep(200000);
    printf("settled: background work %s after %.1f s\n",
           store_background_pending(eng->store) ? "still pending" : "done",
           (double)(now_ns() - t0) / 1e9);
}

int main(int argc, char **argv)
{
    static const struct option lo[] = {
        {"people", 1, 0, 'n'}, {"rate", 1, 0, 'r'}, {"threads", 1, 0, 't'}, {"duration", 1, 0, 'd'},
        {"dir", 1, 0, 'D'},    {"sync", 0, 0, 's'}, {"ingest-rate", 1, 0, 'i'},
        {"ingest-group", 1, 0, 'g'}, {"settle", 1, 0, 'S'}, {"policies", 1, 0, 'p'},
        {"writer-nice", 1, 0, 'w'}, {"ingest-nice", 1, 0, 'k'}, {"ab", 0, 0, 'a'},
        {0, 0, 0, 0},
    };
    int c;
    while ((c = getopt_long(argc, argv, "", lo, NULL)) != -1) {
        switch (c) {
        case 'n':
            opt.people = atol(optarg);
            break;
        case 'r':
            opt.rate = atol(optarg);
            break;
        case 't':
            opt.threads = atol(optarg);
            break;
        case 'd':
            opt.duration = atof(optarg);
            break;
        case 'D':
            opt.dir = optarg;
            break;
        case 's':
            opt.sync = true;
            break;
        case 'i':
            if (parse_rates(optarg) != 0) return 2;
            break;
        case 'g':
            opt.group = atol(optarg);
            break;
        case 'S':
            opt.settle = atof(optarg);
            break;
        case 'w':
            opt.writer_nice = atoi(optarg);
            break;
        case 'k':
            opt.ingest_nice = atoi(optarg);
            break;
        case 'a':
            opt.ab = true;
            break;
        case 'p':
            opt.all_policies = strcmp(optarg, "default") != 0;
            break;
        default:
            fprintf(stderr, "usage: lookup [--people N] [--rate R] [--threads T] [--duration S] "
                            "[--ingest-rate I[,I...]|max] [--ingest-group G] [--settle S] "
                            "[--policies default|all] [--writer-nice N] [--ingest-nice N] [--ab] [--dir DIR] "
                            "[--sync]\n");
            return 2;
        }
    }
    if (opt.people < 1 || opt.threads < 1 || opt.threads > 256 || opt.duration <= 0 ||
        opt.group < 1 || opt.group > 10000 || opt.settle < 0)
        return 2;
    char tmp[] = "/tmp/kith-bench-lookup-XXXXXX";
    const char *dir = opt.dir ? opt.dir : mkdtemp(tmp);
    char *err = NULL;
    base_nice = getpriority(PRIO_PROCESS, 0);
    kith_limits lim = KITH_LIMITS_DEFAULT;
    if (opt.writer_nice >= 0) lim.writer_nice = opt.writer_nice;
    opt.writer_nice = lim.writer_nice;
    if (!dir || engine_open(dir, &lim, "bench-admin", opt.sync, &eng, &err) != 0) {
        fprintf(stderr, "lookup: cannot open engine: %s\n", err ? err : "?");
        return 1;
    }
    kith_log_set_level(KITH_LOG_ERROR);
    if (apply_call(eng->apply, setup_fn, NULL, false) != 0) return 1;
    catalog_rdlock(eng->cat);
    ns_crm = catalog_namespace(eng->cat, 1, "CRMID")->id;
    catalog_unlock(eng->cat);

    uint64_t t0 = now_ns();
    enum { CHUNK = 1000 };
    json_t *ents[2 * CHUNK];
    const char *ds[2 * CHUNK];
    for (long i = 0; i < opt.people;) {
        size_t n = 0;
        for (long j = 0; j < CHUNK && i < opt.people; j++, i++) {
            ents[n] = crm_record(i, 0);
            ds[n++] = ds_crm;
            if (i % 5 < 2) {
                ents[n] = loyalty_record(i);
                ds[n++] = ds_loy;
            }
        }
        apply_all(ents, ds, n);
    }
    double load_s = (double)(now_ns() - t0) / 1e9;
    printf("population: %ld people, %llu records in %.1f s (%.0f records/s)\n", opt.people,
           (unsigned long long)atomic_load(&ingested), load_s,
           (double)atomic_load(&ingested) / load_s);

    settle();

    char order[2][KITH_ID_LEN + 1];
    memcpy(order[0], ds_loy, sizeof order[0]);
    memcpy(order[1], ds_crm, sizeof order[1]);
    merge_policy prec = {
        .attr = MP_DATASET_PRECEDENCE, .graph = MP_GRAPH_PDG, .norder = 2, .order = order};
    for (int r = 0; r < opt.ningest; r++) {
        cur_ingest = opt.ingest[r];
        for (int flat = 0; flat <= (opt.ab ? 1 : 0); flat++) {
            priorities(flat);
            run_phase(flat ? "default(equal priorities)" : "default(materialised)", NULL);
            if (opt.all_policies)
                run_phase(flat ? "dataSetPrecedence(equal)" : "dataSetPrecedence(read-time)", &prec);
        }
    }

    printf("command: lookup --people %ld --rate %ld --threads %ld --duration %g --ingest-rate ",
           opt.people, opt.rate, opt.threads, opt.duration);
    for (int r = 0; r < opt.ningest; r++) {
        if (opt.ingest[r]) printf("%s%ld", r ? "," : "", opt.ingest[r]);
        else printf("%smax", r ? "," : "");
    }
    printf(" --ingest-group %ld --settle %g --policies %s --writer-nice %d --ingest-nice %d%s%s "
           "(process nice %d)\n",
           opt.group, opt.settle, opt.all_policies ? "all" : "default", opt.writer_nice,
           opt.ingest_nice, opt.ab ? " --ab" : "", opt.sync ? " --sync" : "", base_nice);
    engine_close(eng);
    if (!opt.dir) {
        char cmd[200];
        snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
        if (system(cmd) != 0) fprintf(stderr, "lookup: could not remove %s\n", dir);
    }
    return 0;
}
