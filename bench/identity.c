/* kith bench: the identity graph through the apply path, in process.
 *
 *   build/bench/identity [--identities N] [--links M] [--lookups L] [--cache-mb MB] [--dir DIR]
 *
 * 1. preload: N identities (N/2 people, each a CRMID linked to an ECID), 1,000 records per writer
 *    operation, WAL sync off (a bulk load);
 * 2. links: M new ECIDs, each linked to a random existing person (the new ECID joins the person's
 *    cluster: its ident and node, the person's node and the cluster record are written), 1,000 per
 *    writer operation, two operations in flight (the writer prepares one while the syncer writes the
 *    other's blind part), WAL sync off;
 * 3. lookups: identity → cluster, L random existing identities, through identity_lookup (any
 * thread, committed data: RocksDB) and through the writer's cache (identity_writer_lookup). Prints the
 * figures and the command that reproduces them. */
#include <getopt.h>
#include <pthread.h>
#include <time.h>
#include <sys/resource.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kith/engine.h"

#define GROUP 1000

typedef struct link_job {
    kith_engine *e;
    uint64_t first, n; /* person index range */
    uint64_t people;   /* for random targets; 0 = preload */
    uint64_t seed;
} link_job;

static uint64_t rnd(uint64_t *s)
{
    uint64_t z = (*s += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

static void ecid_of(uint64_t i, uint64_t salt, char *out)
{
    snprintf(out, 39, "%019llu%019llu", (unsigned long long)(i % 10000000000000000000ull),
             (unsigned long long)salt);
}

static int link_fn(void *ctx, store_batch *b)
{
    link_job *j = ctx;
    for (uint64_t k = 0; k < j->n; k++) {
        uint64_t person = j->people ? rnd(&j->seed) % j->people : j->first + k;
        char crm[32], ecid[40];
        snprintf(crm, sizeof crm, "crm-%llu", (unsigned long long)person);
        ecid_of(j->people ? j->first + k : person, j->people ? 2 : 1, ecid);
        ident_in ids[2] = {
            {.ns = 8,
             .type = NS_CROSS_DEVICE,
             .primary = true,
             .linkable = true,
             .value = crm,
             .len = strlen(crm)},
            {.ns = 4, .type = NS_COOKIE, .linkable = true, .value = ecid, .len = 38},
        };
        uint64_t out[2], cl;
        int rc = identity_apply(j->e, b, 1, ids, 2, true, "bench", NULL, kith_now_ms(), out, &cl);
        if (rc) return rc;
    }
    return 0;
}

/* CPU time, to read the figures on a busy machine: the apply thread's, and the whole process's
 * (writer, syncer, RocksDB's flushes and compactions). */
static clockid_t writer_clock;

static int find_writer(void *ctx, store_batch *b)
{
    (void)b;
    return pthread_getcpuclockid(pthread_self(), ctx);
}

static double cpu_s(clockid_t c)
{
    struct timespec ts;
    clock_gettime(c, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

typedef struct phase_cpu {
    double writer, process;
} phase_cpu;

/* Operations in flight: the next one is queued as soon as the writer starts the previous one, so the
 * writer takes one operation per group and prepares the next group while the syncer writes the
 * previous one's blind part (events, identity graph keys), as under concurrent ingestion. */
#define WINDOW 4

typedef struct inflight {
    apply_op op;
    link_job job;
} inflight;

static pthread_mutex_t win_mu = PTHREAD_MUTEX_INITIALIZER;
static pthread_cond_t win_cv = PTHREAD_COND_INITIALIZER;
static int win_busy, win_failed;
static uint64_t win_started;

static int link_op(void *ctx, store_batch *b)
{
    pthread_mutex_lock(&win_mu);
    win_started++;
    pthread_cond_signal(&win_cv);
    pthread_mutex_unlock(&win_mu);
    return link_fn(ctx, b);
}

static void link_done(void *ctx, int rc)
{
    (void)ctx;
    pthread_mutex_lock(&win_mu);
    win_busy--;
    if (rc) win_failed = 1;
    pthread_cond_signal(&win_cv);
    pthread_mutex_unlock(&win_mu);
}

static double run_links(kith_engine *e, uint64_t first, uint64_t n, uint64_t people, phase_cpu *cpu)
{
    double w0 = cpu_s(writer_clock), p0 = cpu_s(CLOCK_PROCESS_CPUTIME_ID);
    uint64_t t0 = kith_mono_ns();
    inflight slots[WINDOW];
    int next = 0;
    uint64_t submitted = 0;
    pthread_mutex_lock(&win_mu);
    win_started = 0;
    pthread_mutex_unlock(&win_mu);
    for (uint64_t i = 0; i < n; i += GROUP) {
        pthread_mutex_lock(&win_mu);
        while (win_busy == WINDOW || win_started < submitted) pthread_cond_wait(&win_cv, &win_mu);
        win_busy++;
        pthread_mutex_unlock(&win_mu);
        submitted++;
        inflight *f = &slots[next];
        next = (next + 1) % WINDOW; /* free: at most WINDOW - 1 others are in flight */
        f->job = (link_job){e, first + i, n - i < GROUP ? n - i : GROUP, people, first + i};
        f->op = (apply_op){.fn = link_op, .done = link_done, .ctx = &f->job, .weight = 0};
        if (apply_submit(e->apply, &f->op) != 0) link_done(NULL, 1);
    }
    pthread_mutex_lock(&win_mu);
    while (win_busy) pthread_cond_wait(&win_cv, &win_mu);
    int failed = win_failed;
    pthread_mutex_unlock(&win_mu);
    if (failed) {
        fprintf(stderr, "identity: a link group failed\n");
        exit(1);
    }
    cpu->writer = cpu_s(writer_clock) - w0;
    cpu->process = cpu_s(CLOCK_PROCESS_CPUTIME_ID) - p0;
    return (double)(kith_mono_ns() - t0) / 1e9;
}

int main(int argc, char **argv)
{
    uint64_t identities = 2000000, links = 500000, lookups = 1000000, cache_mb = 0;
    const char *dir = NULL;
    static const struct option opts[] = {{"identities", required_argument, NULL, 'n'},
                                         {"links", required_argument, NULL, 'm'},
                                         {"lookups", required_argument, NULL, 'l'},
                                         {"dir", required_argument, NULL, 'd'},
                                         {"cache-mb", required_argument, NULL, 'c'},
                                         {NULL, 0, NULL, 0}};
    int c;
    while ((c = getopt_long(argc, argv, "", opts, NULL)) != -1) {
        switch (c) {
        case 'n':
            identities = strtoull(optarg, NULL, 10);
            break;
        case 'm':
            links = strtoull(optarg, NULL, 10);
            break;
        case 'l':
            lookups = strtoull(optarg, NULL, 10);
            break;
        case 'd':
            dir = optarg;
            break;
        case 'c':
            cache_mb = strtoull(optarg, NULL, 10);
            break;
        default:
            fprintf(stderr,
                    "usage: identity [--identities N] [--links M] [--lookups L] [--cache-mb MB] "
                    "[--dir DIR]\n");
            return 2;
        }
    }
    char tmp[] = "/tmp/kith-bench-identity-XXXXXX";
    if (!dir) dir = mkdtemp(tmp);
    kith_engine *e = NULL;
    char *err = NULL;
    kith_limits lim = KITH_LIMITS_DEFAULT;
    lim.ident_cache_bytes = (size_t)cache_mb << 20; /* 0: the engine's default */
    if (engine_open(dir, &lim, "bench-admin", false, &e, &err) != 0) {
        fprintf(stderr, "identity: %s\n", err ? err : "engine_open failed");
        return 1;
    }
    if (apply_call(e->apply, find_writer, &writer_clock, false) != 0) {
        fprintf(stderr, "identity: no CPU clock for the apply thread\n");
        return 1;
    }
    uint64_t people = identities / 2;
    phase_cpu cpu;
    double t = run_links(e, 0, people, 0, &cpu);
    printf("preload   %llu identities (%llu people, CRMID+ECID) in %.1f s: %.0f records/s; CPU: "
           "writer %.1f s (%.0f records per writer-CPU-second), process %.1f s\n",
           (unsigned long long)identities, (unsigned long long)people, t, people / t, cpu.writer,
           people / cpu.writer, cpu.process);
    t = run_links(e, 0, links, people, &cpu);
    printf("links     %llu new ECIDs onto random people of a %llu-identity graph: %.1f s, %.0f "
           "link operations/s; CPU: writer %.1f s (%.0f per writer-CPU-second, %.2f us each), "
           "process %.1f s (%.0f per process-CPU-second)\n",
           (unsigned long long)links, (unsigned long long)identities, t, links / t, cpu.writer,
           links / cpu.writer, cpu.writer * 1e6 / links, cpu.process, links / cpu.process);
    /* identity → cluster, committed reads. */
    uint64_t s = 42, found = 0;
    double c0 = cpu_s(CLOCK_THREAD_CPUTIME_ID);
    uint64_t t0 = kith_mono_ns();
    for (uint64_t i = 0; i < lookups; i++) {
        char crm[32];
        snprintf(crm, sizeof crm, "crm-%llu", (unsigned long long)(rnd(&s) % people));
        uint64_t id, cl;
        found += identity_lookup(e, 1, 8, crm, strlen(crm), &id, &cl) == 0;
    }
    double dt = (double)(kith_mono_ns() - t0) / 1e9, dc = cpu_s(CLOCK_THREAD_CPUTIME_ID) - c0;
    printf("lookup    identity_lookup (RocksDB, committed): %llu in %.2f s: %.0f/s, %.2f us each "
           "(%.2f us of CPU) (%llu found)\n",
           (unsigned long long)lookups, dt, lookups / dt, dt * 1e6 / lookups, dc * 1e6 / lookups,
           (unsigned long long)found);
    /* The writer's cache: the same lookups, with the key built as graph.c builds it. */
    s = 42;
    found = 0;
    c0 = cpu_s(CLOCK_THREAD_CPUTIME_ID);
    t0 = kith_mono_ns();
    for (uint64_t i = 0; i < lookups; i++) {
        char crm[32];
        int n = snprintf(crm, sizeof crm, "crm-%llu", (unsigned long long)(rnd(&s) % people));
        uint64_t id, cl;
        found += identity_writer_lookup(e, 1, 8, crm, (size_t)n, &id, &cl) == 0;
    }
    dt = (double)(kith_mono_ns() - t0) / 1e9;
    dc = cpu_s(CLOCK_THREAD_CPUTIME_ID) - c0;
    printf("lookup    writer cache (identity_writer_lookup): %llu in %.2f s: %.0f/s, %.3f us each "
           "(%.3f us of CPU) (%llu hits)\n",
           (unsigned long long)lookups, dt, lookups / dt, dt * 1e6 / lookups, dc * 1e6 / lookups,
           (unsigned long long)found);
    size_t entries, bytes;
    uint64_t clears;
    identity_cache_stats(e, &entries, &bytes, &clears);
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    printf("memory    writer cache %zu keys, %.0f MiB (%llu clears when full); peak RSS %.0f MiB\n",
           entries, bytes / 1048576.0, (unsigned long long)clears, ru.ru_maxrss / 1024.0);
    printf("command   build/bench/identity --identities %llu --links %llu --lookups %llu%s",
           (unsigned long long)identities, (unsigned long long)links, (unsigned long long)lookups,
           cache_mb ? "" : "\n");
    if (cache_mb) printf(" --cache-mb %llu\n", (unsigned long long)cache_mb);
    engine_close(e);
    if (dir == tmp) {
        char cmd[200];
        snprintf(cmd, sizeof cmd, "rm -rf %s", tmp);
        if (system(cmd) != 0) return 1;
    }
    return 0;
}
