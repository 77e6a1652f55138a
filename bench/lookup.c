/* bench/lookup: profile lookups/s and latency percentiles, in process (the engine without HTTP),
 * for the default policy (the materialised view) and for a read-time policy (dataSetPrecedence),
 * while one thread keeps ingesting.
 *
 *   lookup [--people N] [--rate R] [--threads T] [--duration S] [--dir DIR] [--sync]
 *
 * It creates a data dir (DIR, default a temporary one, removed at the end), one profile schema and
 * two profile datasets (crm, loyalty), and ingests N people: every person a CRM record (CRMID
 * primary + Email, name, tier), 40% also a loyalty record (Phone primary + CRMID, tier, points)
 * that links into the same cluster. Then, for each policy, T threads look up random people by CRMID
 * for S seconds, paced to R lookups/s in total (0: as fast as they can), while an ingest thread
 * rewrites random people's CRM records in groups of 200. It prints lookups/s, p50/p99/p99.9/max and
 * the command line; the last lines, "RESULT ...", are for scripts. */
#include <getopt.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "kith/ingest.h"
#include "kith/kjson.h"

static struct {
    long people, rate, threads;
    double duration;
    const char *dir;
    bool sync;
} opt = {.people = 100000, .rate = 20000, .threads = 4, .duration = 10};

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

static void *ingest_thread(void *arg)
{
    (void)arg;
    uint64_t s = 0x9e3779b97f4a7c15ull;
    long visits = 1;
    json_t *ents[200];
    const char *ds[200];
    while (!atomic_load(&stop_ingest)) {
        for (int i = 0; i < 200; i++) {
            ents[i] = crm_record((long)(rng_next(&s) % (uint64_t)opt.people), visits++);
            ds[i] = ds_crm;
        }
        apply_all(ents, ds, 200);
    }
    return NULL;
}

typedef struct lk_thread {
    pthread_t t;
    int idx;
    const merge_policy *policy;
    uint64_t *lat; /* ns */
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
        if (!per) due = now_ns();
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
        }
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
    uint64_t *all = malloc((total + 1) * sizeof *all);
    size_t k = 0;
    for (long i = 0; i < opt.threads; i++) {
        memcpy(all + k, th[i].lat, th[i].n * sizeof *all);
        k += th[i].n;
        free(th[i].lat);
    }
    qsort(all, total, sizeof *all, cmp_u64);
#define PCT(p) (total ? (double)all[(size_t)((double)(total - 1) * (p))] / 1e6 : 0)
    printf("%-28s %9.0f lookups/s  p50 %.3f ms  p99 %.3f ms  p99.9 %.3f ms  max %.3f ms  "
           "errors %zu  ingest %.0f records/s\n",
           name, (double)total / secs, PCT(0.50), PCT(0.99), PCT(0.999), PCT(1.0), errors,
           (double)ing / secs);
    printf("RESULT policy=%s lookups_per_s=%.0f p50_ms=%.3f p99_ms=%.3f p999_ms=%.3f max_ms=%.3f "
           "errors=%zu ingest_per_s=%.0f\n",
           name, (double)total / secs, PCT(0.50), PCT(0.99), PCT(0.999), PCT(1.0), errors,
           (double)ing / secs);
    free(all);
    free(th);
}

int main(int argc, char **argv)
{
    static const struct option lo[] = {
        {"people", 1, 0, 'n'}, {"rate", 1, 0, 'r'}, {"threads", 1, 0, 't'}, {"duration", 1, 0, 'd'},
        {"dir", 1, 0, 'D'},    {"sync", 0, 0, 's'}, {0, 0, 0, 0},
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
        default:
            fprintf(stderr, "usage: lookup [--people N] [--rate R] [--threads T] [--duration S] "
                            "[--dir DIR] [--sync]\n");
            return 2;
        }
    }
    if (opt.people < 1 || opt.threads < 1 || opt.threads > 256 || opt.duration <= 0) return 2;
    char tmp[] = "/tmp/kith-bench-lookup-XXXXXX";
    const char *dir = opt.dir ? opt.dir : mkdtemp(tmp);
    char *err = NULL;
    if (!dir || engine_open(dir, NULL, "bench-admin", opt.sync, &eng, &err) != 0) {
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

    run_phase("default(materialised)", NULL);
    char order[2][KITH_ID_LEN + 1];
    memcpy(order[0], ds_loy, sizeof order[0]);
    memcpy(order[1], ds_crm, sizeof order[1]);
    merge_policy prec = {
        .attr = MP_DATASET_PRECEDENCE, .graph = MP_GRAPH_PDG, .norder = 2, .order = order};
    run_phase("dataSetPrecedence(read-time)", &prec);

    printf("command: lookup --people %ld --rate %ld --threads %ld --duration %g%s\n", opt.people,
           opt.rate, opt.threads, opt.duration, opt.sync ? " --sync" : "");
    engine_close(eng);
    if (!opt.dir) {
        char cmd[200];
        snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
        if (system(cmd) != 0) fprintf(stderr, "lookup: could not remove %s\n", dir);
    }
    return 0;
}
