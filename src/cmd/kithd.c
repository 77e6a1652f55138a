/* kithd: the kith server. Parses options, opens the engine, serves HTTP, stops gracefully on
 * SIGTERM/SIGINT (stop accepting, finish requests in flight, drain the apply queue, flush, exit 0). */
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "http/http.h"
#include "kith/engine.h"
#include "kith/jalloc.h"

#define KITH_VERSION "0.1.0"

int http_imports_running(void);

typedef struct options {
    const char *data_dir, *listen, *log_level;
    unsigned threads, connections;
    bool sync;
    kith_limits lim;
    char *owned[32]; /* strings copied from arguments and the config file */
    int nowned;
} options;

static const char *keep(options *o, const char *s)
{
    char *c = strdup(s);
    if (o->nowned < (int)(sizeof o->owned / sizeof o->owned[0])) o->owned[o->nowned++] = c;
    return c;
}

static void options_free(options *o)
{
    for (int i = 0; i < o->nowned; i++) free(o->owned[i]);
    o->nowned = 0;
}

static const struct option long_opts[] = {
    {"data-dir", required_argument, 0, 'd'},   {"listen", required_argument, 0, 'l'},
    {"threads", required_argument, 0, 't'},    {"durability", required_argument, 0, 'D'},
    {"max-body", required_argument, 0, 'b'},   {"max-file", required_argument, 0, 'F'},
    {"max-batch", required_argument, 0, 'B'},  {"max-identities", required_argument, 0, 'I'},
    {"max-graph", required_argument, 0, 'G'},  {"queue", required_argument, 0, 'Q'},
    {"connections", required_argument, 0, 'C'}, {"log-level", required_argument, 0, 'L'},
    {"cache-mb", required_argument, 0, 'M'},    {"log-format", required_argument, 0, 'J'},
    {"identity-cache-mb", required_argument, 0, 'W'}, {"writer-nice", required_argument, 0, 'N'},
    {"config", required_argument, 0, 'c'},     {"help", no_argument, 0, 'h'},
    {"version", no_argument, 0, 'V'},          {0, 0, 0, 0}};

static void usage(FILE *f)
{
    fprintf(f,
            "usage: kithd [options]\n"
            "  --data-dir DIR        embedded store directory (default ./data)\n"
            "  --listen HOST:PORT    address to serve on (default 127.0.0.1:8080)\n"
            "  --threads N           HTTP worker threads (default: number of cores)\n"
            "  --connections N       maximum open connections (default 1024)\n"
            "  --durability MODE     sync: fsync the WAL before every acknowledgement (default);\n"
            "                        async: acknowledge after the write reaches the OS\n"
            "  --max-body BYTES      streaming request body limit (default 1048576)\n"
            "  --max-file BYTES      batch file limit (default 268435456)\n"
            "  --max-batch N         messages per /collection/batch request (default 5000)\n"
            "  --max-identities N    identities per record (default 20)\n"
            "  --max-graph N         identities per identity graph (default 50)\n"
            "  --queue N             messages waiting for the writer before 429 (default 200000)\n"
            "  --cache-mb N          RocksDB block cache in MiB (default 1024)\n"
            "  --identity-cache-mb N the writer's copy of the identity graph in MiB (default 2048;\n"
            "                        ~420 bytes per identity: raise it beyond ~5 million identities)\n"
            "  --writer-nice N       the writer and syncer threads' CPU nice above the process's,\n"
            "                        0-19 (default 5: profile reads on the HTTP threads preempt them)\n"
            "  --log-level LEVEL     debug, info, warn, error (default info)\n"
            "  --log-format FORMAT   text (default) or json (one object per line on stderr)\n"
            "  --config FILE         read options from FILE: one \"name = value\" per line,\n"
            "                        names as the long options without dashes\n"
            "  --help, --version\n"
            "environment:\n"
            "  KITH_ADMIN_KEY        admin API key set at the first start of a new data dir;\n"
            "                        without it one is generated into DATA_DIR/admin.key\n");
}

static bool parse_size(const char *s, size_t *out)
{
    char *end;
    unsigned long long v = strtoull(s, &end, 10);
    if (!*s || *end || v == 0) return false;
    *out = (size_t)v;
    return true;
}

static int apply_option(options *o, int c, const char *arg)
{
    size_t v;
    switch (c) {
    case 'd': o->data_dir = keep(o, arg); return 0;
    case 'l': o->listen = keep(o, arg); return 0;
    case 't': return parse_size(arg, &v) && v <= 256 ? (o->threads = (unsigned)v, 0) : -1;
    case 'C': return parse_size(arg, &v) && v <= 100000 ? (o->connections = (unsigned)v, 0) : -1;
    case 'D':
        if (strcmp(arg, "sync") == 0) o->sync = true;
        else if (strcmp(arg, "async") == 0) o->sync = false;
        else return -1;
        return 0;
    case 'b': return parse_size(arg, &o->lim.body_max) ? 0 : -1;
    case 'F': return parse_size(arg, &o->lim.file_max) ? 0 : -1;
    case 'B': return parse_size(arg, &o->lim.batch_messages) ? 0 : -1;
    case 'I': return parse_size(arg, &v) && v <= 64 ? (o->lim.max_identities = (int)v, 0) : -1;
    case 'G': return parse_size(arg, &v) && v >= 2 && v <= 10000 ? (o->lim.graph_max = (int)v, 0) : -1;
    case 'Q': return parse_size(arg, &o->lim.queue_max) ? 0 : -1;
    case 'J':
        if (strcmp(arg, "text") == 0) kith_log_set_json(false);
        else if (strcmp(arg, "json") == 0) kith_log_set_json(true);
        else return -1;
        return 0;
    case 'M':
        if (!parse_size(arg, &v) || v < 8 || v > (1u << 20)) return -1;
        o->lim.cache_bytes = v << 20;
        return 0;
    case 'W':
        if (!parse_size(arg, &v) || v > (1u << 20)) return -1;
        o->lim.ident_cache_bytes = v << 20;
        return 0;
    case 'N': {
        char *end;
        long n = strtol(arg, &end, 10);
        if (!*arg || *end || n < 0 || n > 19) return -1;
        o->lim.writer_nice = (int)n;
        return 0;
    }
    case 'L':
        if (strcmp(arg, "debug") && strcmp(arg, "info") && strcmp(arg, "warn") && strcmp(arg, "error"))
            return -1;
        o->log_level = keep(o, arg);
        return 0;
    }
    return -1;
}

static int read_config(options *o, const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        fprintf(stderr, "kithd: cannot open config file %s\n", path);
        return -1;
    }
    char line[1024];
    int lineno = 0, rc = 0;
    while (fgets(line, sizeof line, f)) {
        lineno++;
        char *p = line + strspn(line, " \t");
        if (*p == '#' || *p == '\n' || !*p) continue;
        char *eq = strchr(p, '=');
        if (!eq) {
            fprintf(stderr, "kithd: %s:%d: expected \"name = value\"\n", path, lineno);
            rc = -1;
            continue;
        }
        char *name = p, *val = eq + 1;
        *eq = 0;
        name[strcspn(name, " \t")] = 0;
        val += strspn(val, " \t");
        val[strcspn(val, "\r\n")] = 0;
        for (size_t i = strlen(val); i > 0 && (val[i - 1] == ' ' || val[i - 1] == '\t'); i--) val[i - 1] = 0;
        int c = 0;
        for (const struct option *lo = long_opts; lo->name; lo++)
            if (strcmp(lo->name, name) == 0 && lo->has_arg == required_argument && lo->val != 'c') c = lo->val;
        if (!c || apply_option(o, c, val) != 0) {
            fprintf(stderr, "kithd: %s:%d: invalid option \"%s = %s\"\n", path, lineno, name, val);
            rc = -1;
        }
    }
    fclose(f);
    return rc;
}

int main(int argc, char **argv)
{
    jalloc_install(); /* before any jansson allocation */
    options o = {.data_dir = "./data", .listen = "127.0.0.1:8080", .sync = true,
                 .lim = KITH_LIMITS_DEFAULT};
    long cores = sysconf(_SC_NPROCESSORS_ONLN);
    o.threads = cores > 0 ? (unsigned)cores : 2;
    int c;
    while ((c = getopt_long(argc, argv, "hV", long_opts, NULL)) != -1) {
        if (c == 'h') {
            usage(stdout);
            options_free(&o);
            return 0;
        }
        if (c == 'V') {
            printf("kithd %s\n", KITH_VERSION);
            options_free(&o);
            return 0;
        }
        if (c == 'c') {
            if (read_config(&o, optarg) != 0) {
                options_free(&o);
                return 2;
            }
            continue;
        }
        if (c == '?' || apply_option(&o, c, optarg) != 0) {
            if (c != '?') fprintf(stderr, "kithd: invalid value for option: %s\n", optarg);
            usage(stderr);
            options_free(&o);
            return 2;
        }
    }
    if (optind < argc) {
        fprintf(stderr, "kithd: unexpected argument: %s\n", argv[optind]);
        usage(stderr);
        options_free(&o);
        return 2;
    }
    if (o.log_level) {
        kith_log_set_level(strcmp(o.log_level, "debug") == 0  ? KITH_LOG_DEBUG
                           : strcmp(o.log_level, "warn") == 0 ? KITH_LOG_WARN
                           : strcmp(o.log_level, "error") == 0 ? KITH_LOG_ERROR
                                                               : KITH_LOG_INFO);
    }
    /* Signals are taken by sigwait in this thread; every other thread inherits the mask. */
    sigset_t sigs;
    sigemptyset(&sigs);
    sigaddset(&sigs, SIGTERM);
    sigaddset(&sigs, SIGINT);
    pthread_sigmask(SIG_BLOCK, &sigs, NULL);
    signal(SIGPIPE, SIG_IGN);

    kith_engine *e = NULL;
    char *err = NULL;
    if (engine_open(o.data_dir, &o.lim, getenv("KITH_ADMIN_KEY"), o.sync, &e, &err) != 0) {
        fprintf(stderr, "kithd: cannot open data dir %s: %s\n", o.data_dir, err ? err : "error");
        free(err);
        options_free(&o);
        return 1;
    }
    kith_server *srv = NULL;
    http_options ho = {.listen = o.listen, .threads = o.threads, .connection_limit = o.connections};
    if (http_start(e, &ho, &srv, &err) != 0) {
        fprintf(stderr, "kithd: %s\n", err ? err : "cannot start the HTTP server");
        free(err);
        engine_close(e);
        options_free(&o);
        return 1;
    }
    kith_log(KITH_LOG_INFO, "kithd", "kith %s serving http://%s (data dir %s, %u threads, durability %s)",
             KITH_VERSION, o.listen, o.data_dir, o.threads, o.sync ? "sync" : "async");
    int sig = 0;
    sigwait(&sigs, &sig);
    kith_log(KITH_LOG_INFO, "kithd", "signal %d: stopping (draining requests and the apply queue)", sig);
    http_stop(srv, 10000);
    for (int i = 0; i < 3000 && http_imports_running() > 0; i++) usleep(10000);
    engine_close(e);
    kith_log(KITH_LOG_INFO, "kithd", "stopped cleanly");
    options_free(&o);
    return 0;
}
