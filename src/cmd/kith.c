/* kith — the command-line client of kithd.
 *
 * Every command is one row of the command table below (name, synopsis, options, handler); the table
 * feeds dispatch, option parsing and every --help text, so they cannot drift apart. Commands talk
 * to kithd over HTTP with libcurl (one handle, so one keep-alive connection) and read JSON with
 * jansson.
 *
 * Exit codes: 0 success, 1 the server or the data said no (the problem is printed), 2 usage error
 * (the usage is printed). Everything read is bounded: response bodies up to 256 MiB, import files
 * are uploaded in pieces of whole lines no larger than the server's batch-file limit. */
#include "kith/pql.h"
#include "kith/base.h"

#include <ctype.h>
#include <curl/curl.h>
#include <errno.h>
#include <inttypes.h>
#include <jansson.h>
#include <signal.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define KITH_CLI_VERSION "0.1.0"
#define KITH_DEFAULT_URL "http://127.0.0.1:8080"
#define MAX_RESPONSE_BYTES ((size_t)256 << 20)   /* largest response body we read */
#define MAX_BATCH_FILE_BYTES ((size_t)256 << 20) /* the server's limit per batch file */
#define CONNECT_TIMEOUT_S 5L
#define STALL_TIMEOUT_S 300L  /* a transfer slower than 1 byte/s for this long is aborted */
#define MAX_ATTEMPTS 6        /* sends of one request answered 429/503 */
#define MAX_RETRY_AFTER_S 30L /* longest Retry-After we honour */

enum { EXIT_OK = 0, EXIT_FAIL = 1, EXIT_USAGE = 2 };

/* ---------------------------------------------------------------------------------------------- */
/* Command table */

struct cli;
struct args;

/* One option of a command: `--name ARG` (arg != NULL) or a flag `--name`. */
struct opt {
    const char *name;
    const char *arg;
    const char *help;
};

struct command {
    const char *group; /* "profile" for `kith profile get`; NULL for a top-level command */
    const char *name;
    const char *synopsis; /* everything after the command words */
    const char *summary;  /* one line, for the command list */
    const char *details;  /* paragraph(s) for --help; may be NULL */
    int min_pos, max_pos; /* positional arguments */
    const struct opt *opts;
    int (*run)(struct cli *c, const struct args *a);
};

#define MAX_VALUES 64
#define MAX_POS 8

/* The parsed command line of one command. Values borrow argv. */
struct args {
    const struct command *cmd;
    const char *pos[MAX_POS];
    int npos;
    struct {
        const char *name;
        const char *value; /* "" for a flag */
    } vals[MAX_VALUES];
    int nvals;
};

/* Global state: connection settings (borrowing argv or the environment) and the curl handle. */
struct cli {
    const char *url;
    const char *key;
    const char *sandbox;
    bool json;
    bool tty;      /* stderr is a terminal: show progress */
    bool no_retry; /* report 429/503 at once instead of waiting for Retry-After */
    FILE *sink;    /* set around one call: a 2xx body goes there (export) */
    CURL *curl;
};

static const struct opt global_opts[] = {
    {"url", "URL", "kithd base URL (env KITH_URL; default " KITH_DEFAULT_URL ")"},
    {"key", "KEY", "API key, sent as Authorization: Bearer (env KITH_KEY)"},
    {"sandbox", "NAME",
     "sandbox to work in, sent as x-sandbox-name (env KITH_SANDBOX; default prod)"},
    {"json", NULL, "print the server's JSON instead of human-readable output"},
    {"help", NULL, "show help and exit"},
    {NULL, NULL, NULL},
};

static int cmd_import(struct cli *c, const struct args *a);
static int cmd_batch_get(struct cli *c, const struct args *a);
static int cmd_profile_get(struct cli *c, const struct args *a);
static int cmd_profile_events(struct cli *c, const struct args *a);
static int cmd_sandbox_list(struct cli *c, const struct args *a);
static int cmd_sandbox_create(struct cli *c, const struct args *a);
static int cmd_sandbox_delete(struct cli *c, const struct args *a);
static int cmd_key_list(struct cli *c, const struct args *a);
static int cmd_key_create(struct cli *c, const struct args *a);
static int cmd_key_delete(struct cli *c, const struct args *a);
static int cmd_schema_list(struct cli *c, const struct args *a);
static int cmd_dataset_list(struct cli *c, const struct args *a);
static int cmd_inlet_create(struct cli *c, const struct args *a);
static int cmd_health(struct cli *c, const struct args *a);
static int cmd_export(struct cli *c, const struct args *a);
static int cmd_pql_check(struct cli *c, const struct args *a);
static int cmd_pql_explain(struct cli *c, const struct args *a);
static int cmd_pql_eval(struct cli *c, const struct args *a);
static int cmd_pql_convert(struct cli *c, const struct args *a);
static int cmd_version(struct cli *c, const struct args *a);
static int cmd_help(struct cli *c, const struct args *a);

static const struct opt import_opts[] = {
    {"dataset", "ID", "dataset to load the records into (required)"},
    {"wait", NULL, "wait until the batch is processed (the default)"},
    {"no-wait", NULL, "submit the batch, print its id and return"},
    {"timeout", "SECONDS", "give up waiting after this long (default 3600)"},
    {"split-size", "BYTES", "largest piece uploaded as one file (default 256M)"},
    {NULL, NULL, NULL},
};
static const struct opt batch_get_opts[] = {
    {"wait", NULL, "wait until the batch is processed"},
    {"timeout", "SECONDS", "with --wait, give up after this long (default 3600)"},
    {NULL, NULL, NULL},
};
static const struct opt profile_get_opts[] = {
    {"ns", "NS", "identity namespace code (CRMID, Email, ECID, ...)"},
    {"id", "VALUE", "identity value in that namespace"},
    {"xid", "XID", "the cluster's XID instead of --ns/--id"},
    {"fields", "a,b", "only these fields of the entity (comma-separated paths)"},
    {"policy", "ID", "merge policy id (default: the sandbox's default policy)"},
    {NULL, NULL, NULL},
};
static const struct opt profile_events_opts[] = {
    {"ns", "NS", "identity namespace code"},
    {"id", "VALUE", "identity value in that namespace"},
    {"xid", "XID", "the cluster's XID instead of --ns/--id"},
    {"limit", "N", "events per page (default: the server's)"},
    {"all", NULL, "follow the pages to the last event"},
    {NULL, NULL, NULL},
};
static const struct opt sandbox_create_opts[] = {
    {"title", "T", "display title (default: the name)"},
    {"type", "TYPE", "development (default) or production"},
    {NULL, NULL, NULL},
};
static const struct opt key_create_opts[] = {
    {"name", "N", "a name to recognise the key by (required)"},
    {"role", "ROLE", "admin, editor, viewer or ingest (required)"},
    {"sandbox", "S", "a sandbox the key may use; repeat or separate with commas"},
    {NULL, NULL, NULL},
};
static const struct opt inlet_create_opts[] = {
    {"name", "N", "inlet name (required)"},
    {"auth", NULL, "require an API key on the inlet"},
    {NULL, NULL, NULL},
};
static const struct opt export_opts[] = {
    {"dataset", "ID", "dataset to export (required)"},
    {"output", "FILE", "write to FILE instead of standard output"},
    {NULL, NULL, NULL},
};
static const struct opt pql_check_opts[] = {
    {"server", NULL, "check names and types against the sandbox's union schemas from kithd"},
    {NULL, NULL, NULL},
};
static const struct opt pql_eval_opts[] = {
    {"ns", "NS", "identity namespace code of the profile"},
    {"id", "VALUE", "identity value in that namespace"},
    {"xid", "XID", "the cluster's XID instead of --ns/--id"},
    {"now", "TIME", "evaluate at this RFC 3339 instant (default: now)"},
    {NULL, NULL, NULL},
};
static const struct opt no_opts[] = {{NULL, NULL, NULL}};

static const struct command commands[] = {
    {NULL, "import", "--dataset ID [--wait|--no-wait] [--timeout SECONDS] FILE.jsonl|-",
     "load a JSON-lines file into a dataset through the batch import API",
     "Creates an import batch, uploads FILE (or standard input for -) as JSON lines,\n"
     "one XDM record or event per line, and completes the batch. Input larger than the\n"
     "server's 256 MiB file limit is uploaded as several files of whole lines. Then waits\n"
     "for the batch and prints records read/written/failed and every failed line with its\n"
     "errors. The exit status is 0 only if every record was written. With --no-wait,\n"
     "prints the batch id and returns; follow it with 'kith batch get ID --wait'.",
     1, 1, import_opts, cmd_import},
    {NULL, "export", "--dataset ID [--output FILE]", "write every record or event of a dataset as JSON lines",
     "Streams the dataset's records (profile datasets) or events (event datasets) from kithd as\n"
     "JSON lines, one XDM entity per line — the format 'kith import' reads, so an export can be\n"
     "imported into another dataset or another kithd.",
     0, 0, export_opts, cmd_export},
    {"batch", "get", "ID [--wait] [--timeout SECONDS]", "show the status of an import batch",
     "Prints the batch status, its record counts and every failed line with its errors. The exit\n"
     "status is 0 only if the batch succeeded and every record was written.",
     1, 1, batch_get_opts, cmd_batch_get},
    {"profile", "get", "(--ns NS --id VALUE | --xid XID) [--fields a,b] [--policy ID]",
     "print the merged profile of an identity",
     "Looks the profile up by any identity of its cluster and prints the merged entity as JSON\n"
     "(--json prints the whole Profile Access response: identities, sources, timestamps).",
     0, 0, profile_get_opts, cmd_profile_get},
    {"profile", "events", "(--ns NS --id VALUE | --xid XID) [--limit N] [--all]",
     "print the events of a profile, one JSON object per line",
     "Prints the ExperienceEvents of the identity's cluster in time order, one JSON event per "
     "line.\n"
     "Without --all, prints the first page only. --json prints each response page as returned.",
     0, 0, profile_events_opts, cmd_profile_events},
    {"sandbox", "list", "", "list sandboxes", NULL, 0, 0, no_opts, cmd_sandbox_list},
    {"sandbox", "create", "NAME [--title T] [--type development|production]", "create a sandbox",
     NULL, 1, 1, sandbox_create_opts, cmd_sandbox_create},
    {"sandbox", "delete", "NAME", "delete a sandbox and all of its data (admin only)", NULL, 1, 1,
     no_opts, cmd_sandbox_delete},
    {"key", "list", "", "list API keys (never their secrets)", NULL, 0, 0, no_opts, cmd_key_list},
    {"key", "create", "--name N --role admin|editor|viewer|ingest [--sandbox S ...]",
     "create an API key; the key is printed once",
     "Creates an API key and prints it. The server stores only a hash: the key cannot be shown\n"
     "again, so store it now. Without --sandbox the server decides the key's sandboxes.",
     0, 0, key_create_opts, cmd_key_create},
    {"key", "delete", "ID", "delete an API key", NULL, 1, 1, no_opts, cmd_key_delete},
    {"schema", "list", "", "list the sandbox's schemas", NULL, 0, 0, no_opts, cmd_schema_list},
    {"dataset", "list", "", "list the sandbox's datasets", NULL, 0, 0, no_opts, cmd_dataset_list},
    {"inlet", "create", "--name N [--auth]", "create a streaming inlet (HTTP API connection)", NULL,
     0, 0, inlet_create_opts, cmd_inlet_create},
    {"pql", "check", "[--server] EXPRESSION|-", "check a PQL expression",
     "Compiles the expression (- reads it from standard input) and prints its evaluation mode and\n"
     "what it reads; a mistake is printed as LINE:COLUMN: message and exits 1. Without --server\n"
     "any field name is accepted; with --server names and types are checked against the union\n"
     "schemas of the sandbox, as kithd checks a segment definition.",
     1, 1, pql_check_opts, cmd_pql_check},
    {"pql", "explain", "[--server] EXPRESSION|-", "show the compiled step program of a PQL expression",
     "Prints the disassembly of the compiled program (one step per line, the constant pool) and its\n"
     "dependency information.",
     1, 1, pql_check_opts, cmd_pql_explain},
    {"pql", "convert", "EXPRESSION|TREE|-", "convert between pql/text and pql/json",
     "A PQL expression is printed as its pql/json tree (AEP's AST form); a pql/json tree (input\n"
     "starting with '{') is printed as canonical PQL text. Syntax only, as the conversion\n"
     "endpoint's first step; a mistake is printed as LINE:COLUMN or as the JSON path at fault.",
     1, 1, no_opts, cmd_pql_convert},
    {"pql", "eval", "EXPRESSION|- (--ns NS --id VALUE | --xid XID) [--now TIME]",
     "evaluate a PQL expression on a stored profile",
     "Reads the merged profile and every event of the identity's cluster from kithd and evaluates\n"
     "the expression on them here: prints its value, whether the profile qualifies, and the next\n"
     "instant at which the answer would change with no new data.",
     1, 1, pql_eval_opts, cmd_pql_eval},
    {NULL, "health", "", "check that kithd is ready (GET /readyz)",
     "Prints \"ok\" and exits 0 when kithd answers /readyz with 200; otherwise prints why not and\n"
     "exits 1.",
     0, 0, no_opts, cmd_health},
    {NULL, "version", "", "print the client's version", NULL, 0, 0, no_opts, cmd_version},
    {NULL, "help", "[COMMAND...]", "show help for a command", NULL, 0, 2, no_opts, cmd_help},
};
#define NCOMMANDS (sizeof commands / sizeof commands[0])

/* ---------------------------------------------------------------------------------------------- */
/* Help and usage */

static void print_opts(FILE *f, const struct opt *opts)
{
    for (const struct opt *o = opts; o->name; o++) {
        char left[64];
        snprintf(left, sizeof left, "--%s%s%s", o->name, o->arg ? " " : "", o->arg ? o->arg : "");
        fprintf(f, "  %-22s %s\n", left, o->help);
    }
}

static void print_command_usage(FILE *f, const struct command *cmd)
{
    fprintf(f, "usage: kith [global options] %s%s%s%s%s\n", cmd->group ? cmd->group : "",
            cmd->group ? " " : "", cmd->name, cmd->synopsis[0] ? " " : "", cmd->synopsis);
}

static void print_command_help(FILE *f, const struct command *cmd)
{
    print_command_usage(f, cmd);
    fprintf(f, "\n%s%s\n", cmd->details ? cmd->details : cmd->summary, cmd->details ? "" : ".");
    if (cmd->opts[0].name) {
        fprintf(f, "\noptions:\n");
        print_opts(f, cmd->opts);
    }
    fprintf(f, "\nglobal options:\n");
    print_opts(f, global_opts);
}

static void print_group_help(FILE *f, const char *group)
{
    fprintf(f, "usage: kith [global options] %s COMMAND [options]\n\ncommands:\n", group);
    for (size_t i = 0; i < NCOMMANDS; i++) {
        if (!commands[i].group || strcmp(commands[i].group, group) != 0) continue;
        char left[64];
        snprintf(left, sizeof left, "%s %s", group, commands[i].name);
        fprintf(f, "  %-18s %s\n", left, commands[i].summary);
    }
    fprintf(f, "\nRun 'kith %s COMMAND --help' for a command's options.\n", group);
}

static void print_main_help(FILE *f)
{
    fprintf(f, "kith — command-line client of the kithd real-time customer profile server\n\n"
               "usage: kith [global options] COMMAND [options] [arguments]\n\ncommands:\n");
    for (size_t i = 0; i < NCOMMANDS; i++) {
        char left[64];
        snprintf(left, sizeof left, "%s%s%s", commands[i].group ? commands[i].group : "",
                 commands[i].group ? " " : "", commands[i].name);
        fprintf(f, "  %-18s %s\n", left, commands[i].summary);
    }
    fprintf(f, "\nglobal options (anywhere on the line):\n");
    print_opts(f, global_opts);
    fprintf(f, "\nRun 'kith COMMAND --help' for a command's options.\n"
               "Exit status: 0 success, 1 failure (the reason is printed), 2 usage error.\n");
}

/* Prints "kith: <message>" and the command's usage to stderr; returns EXIT_USAGE. */
static int usage_error(const struct command *cmd, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
static int usage_error(const struct command *cmd, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("kith: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    if (cmd) {
        print_command_usage(stderr, cmd);
        fprintf(stderr, "Run 'kith %s%s%s --help' for details.\n", cmd->group ? cmd->group : "",
                cmd->group ? " " : "", cmd->name);
    } else {
        fputs("usage: kith [global options] COMMAND [options] [arguments]\n"
              "Run 'kith --help' for the list of commands.\n",
              stderr);
    }
    return EXIT_USAGE;
}

/* Prints "kith: <message>" to stderr; returns EXIT_FAIL. */
static int fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int fail(const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fputs("kith: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    return EXIT_FAIL;
}

/* ---------------------------------------------------------------------------------------------- */
/* Argument parsing */

static const struct opt *opt_find(const struct opt *opts, const char *name, size_t len)
{
    for (const struct opt *o = opts; o->name; o++)
        if (strlen(o->name) == len && memcmp(o->name, name, len) == 0) return o;
    return NULL;
}

/* Applies a global option (the value borrows argv). */
static void global_set(struct cli *c, const char *name, const char *value)
{
    if (strcmp(name, "url") == 0)
        c->url = value;
    else if (strcmp(name, "key") == 0)
        c->key = value;
    else if (strcmp(name, "sandbox") == 0)
        c->sandbox = value;
    else if (strcmp(name, "json") == 0)
        c->json = true;
}

/* Parses one "--name[=value]" at argv[*i] against the command's options, then the global ones.
 * Returns 0, 1 for --help, or EXIT_USAGE (after printing the usage). */
static int parse_option(struct cli *c, const struct command *cmd, struct args *a, int argc,
                        char **argv, int *i)
{
    const char *arg = argv[*i];
    if (strcmp(arg, "-h") == 0 || strcmp(arg, "--help") == 0) return 1;
    const char *name = arg + 2;
    const char *eq = strchr(name, '=');
    size_t len = eq ? (size_t)(eq - name) : strlen(name);
    const struct opt *o = cmd ? opt_find(cmd->opts, name, len) : NULL;
    bool global = false;
    if (!o) {
        o = opt_find(global_opts, name, len);
        global = o != NULL;
    }
    if (!o) return usage_error(cmd, "unknown option '%.*s'", (int)(len + 2), arg);
    const char *value = "";
    if (o->arg) {
        if (eq) {
            value = eq + 1;
        } else if (*i + 1 < argc) {
            value = argv[++*i];
        } else {
            return usage_error(cmd, "option '--%s' needs a value (%s)", o->name, o->arg);
        }
    } else if (eq) {
        return usage_error(cmd, "option '--%s' takes no value", o->name);
    }
    if (strcmp(o->name, "help") == 0 && global) return 1;
    if (global) {
        global_set(c, o->name, value);
        return 0;
    }
    if (a->nvals == MAX_VALUES) return usage_error(cmd, "too many options");
    a->vals[a->nvals].name = o->name;
    a->vals[a->nvals].value = value;
    a->nvals++;
    return 0;
}

/* The last value given for an option, or NULL. */
static const char *arg_get(const struct args *a, const char *name)
{
    for (int i = a->nvals - 1; i >= 0; i--)
        if (strcmp(a->vals[i].name, name) == 0) return a->vals[i].value;
    return NULL;
}

static bool arg_flag(const struct args *a, const char *name)
{
    return arg_get(a, name) != NULL;
}

/* Parses a positive integer option; returns false (after a usage error) when malformed. */
static bool arg_long(const struct args *a, const char *name, long min, long max, long *out, int *rc)
{
    const char *v = arg_get(a, name);
    if (!v) return true;
    char *end;
    errno = 0;
    long n = strtol(v, &end, 10);
    if (errno || end == v || *end || n < min || n > max) {
        *rc = usage_error(a->cmd, "--%s must be a whole number from %ld to %ld, not '%s'", name,
                          min, max, v);
        return false;
    }
    *out = n;
    return true;
}

/* Parses "123", "64K", "256M", "1G" into bytes; returns false when malformed. */
static bool parse_size(const char *s, size_t *out)
{
    char *end;
    errno = 0;
    unsigned long long n = strtoull(s, &end, 10);
    if (errno || end == s || s[0] == '-') return false;
    unsigned shift = 0;
    if (*end == 'K' || *end == 'k')
        shift = 10, end++;
    else if (*end == 'M' || *end == 'm')
        shift = 20, end++;
    else if (*end == 'G' || *end == 'g')
        shift = 30, end++;
    if (*end) return false;
    if (n > (SIZE_MAX >> shift)) return false;
    *out = (size_t)n << shift;
    return true;
}

/* ---------------------------------------------------------------------------------------------- */
/* HTTP */

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    nanosleep(&ts, NULL);
}

struct response {
    long status;
    char *body; /* NUL-terminated; owned */
    size_t len, cap;
    bool too_large;
    FILE *sink;      /* when set, a 2xx body is written here instead of being kept */
    uint64_t sunk;   /* bytes written to sink */
    CURL *handle;
};

static void response_free(struct response *r)
{
    free(r->body);
    memset(r, 0, sizeof *r);
}

static size_t on_body(char *p, size_t size, size_t n, void *ud)
{
    struct response *r = ud;
    size_t add = size * n;
    if (r->sink) {
        long status = 0;
        curl_easy_getinfo(r->handle, CURLINFO_RESPONSE_CODE, &status);
        if (status >= 200 && status < 300) {
            if (fwrite(p, 1, add, r->sink) != add) return 0;
            r->sunk += add;
            return add;
        }
    }
    if (add > MAX_RESPONSE_BYTES - r->len) {
        r->too_large = true;
        return 0; /* aborts the transfer */
    }
    if (r->len + add + 1 > r->cap) {
        size_t cap = r->cap ? r->cap : 4096;
        while (cap < r->len + add + 1)
            cap *= 2;
        char *nb = realloc(r->body, cap);
        if (!nb) return 0;
        r->body = nb;
        r->cap = cap;
    }
    memcpy(r->body + r->len, p, add);
    r->len += add;
    r->body[r->len] = '\0';
    return add;
}

/* Shows upload progress of large bodies on a terminal. */
struct progress {
    const char *label;
    double last;
    curl_off_t shown; /* bytes at the last redraw */
};

static int on_progress(void *ud, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal,
                       curl_off_t ulnow)
{
    (void)dltotal;
    (void)dlnow;
    struct progress *p = ud;
    if (ultotal <= 0) return 0;
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    double now = (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
    if (ulnow == p->shown || (now - p->last < 0.2 && ulnow < ultotal)) return 0;
    p->shown = ulnow;
    p->last = now;
    fprintf(stderr, "\r\033[Kuploading %s: %.1f / %.1f MiB (%d%%)", p->label,
            (double)ulnow / 1048576.0, (double)ultotal / 1048576.0, (int)(100 * ulnow / ultotal));
    return 0;
}

/* Appends "name=value" (URL-encoded) to a query string being built in b. */
static void query_add(kith_buf *b, const char *name, const char *value)
{
    char *enc = curl_easy_escape(NULL, value, 0);
    kith_buf_printf(b, "%s%s=%s", strchr(b->data ? b->data : "", '?') ? "&" : "?", name,
                    enc ? enc : "");
    curl_free(enc);
}

/* Appends a URL-encoded path segment. */
static void path_add(kith_buf *b, const char *segment)
{
    char *enc = curl_easy_escape(NULL, segment, 0);
    kith_buf_printf(b, "/%s", enc ? enc : "");
    curl_free(enc);
}

/* Sends one request and reads the response into *r (any HTTP status). path begins with '/'.
 * body may be NULL (no body). progress_label shows upload progress on a TTY. Returns 0, or
 * EXIT_FAIL after printing why the request could not be made. */
static int http(struct cli *c, const char *method, const char *path, const char *content_type,
                const char *body, size_t body_len, const char *progress_label, struct response *r)
{
    memset(r, 0, sizeof r[0]);
    r->sink = c->sink;
    CURL *h = c->curl;
    r->handle = h;
    curl_easy_reset(h);

    size_t ulen = strlen(c->url);
    while (ulen > 0 && c->url[ulen - 1] == '/')
        ulen--;
    kith_buf url = {0};
    kith_buf_printf(&url, "%.*s%s", (int)ulen, c->url, path);

    struct curl_slist *hdrs = NULL;
    kith_buf line = {0};
    hdrs = curl_slist_append(hdrs, "Accept: application/json, application/problem+json");
    hdrs = curl_slist_append(hdrs, "Expect:");
    if (c->key && c->key[0]) {
        kith_buf_printf(&line, "Authorization: Bearer %s", c->key);
        hdrs = curl_slist_append(hdrs, line.data);
        line.len = 0;
    }
    if (c->sandbox && c->sandbox[0]) {
        kith_buf_printf(&line, "x-sandbox-name: %s", c->sandbox);
        hdrs = curl_slist_append(hdrs, line.data);
        line.len = 0;
    }
    if (content_type) {
        kith_buf_printf(&line, "Content-Type: %s", content_type);
        hdrs = curl_slist_append(hdrs, line.data);
        line.len = 0;
    }

    curl_easy_setopt(h, CURLOPT_URL, url.data);
    curl_easy_setopt(h, CURLOPT_HTTPHEADER, hdrs);
    curl_easy_setopt(h, CURLOPT_USERAGENT, "kith/" KITH_CLI_VERSION);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(h, CURLOPT_CONNECTTIMEOUT, CONNECT_TIMEOUT_S);
    curl_easy_setopt(h, CURLOPT_LOW_SPEED_LIMIT, 1L);
    curl_easy_setopt(h, CURLOPT_LOW_SPEED_TIME, STALL_TIMEOUT_S);
    curl_easy_setopt(h, CURLOPT_MAXFILESIZE_LARGE, (curl_off_t)MAX_RESPONSE_BYTES);
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http,https");
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(h, CURLOPT_WRITEDATA, r);
    if (body || strcmp(method, "POST") == 0 || strcmp(method, "PUT") == 0) {
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, body ? body : "");
        curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)(body ? body_len : 0));
    }
    if (strcmp(method, "GET") != 0 && strcmp(method, "POST") != 0)
        curl_easy_setopt(h, CURLOPT_CUSTOMREQUEST, method);
    struct progress prog = {progress_label, 0, -1};
    if (progress_label && c->tty) {
        curl_easy_setopt(h, CURLOPT_NOPROGRESS, 0L);
        curl_easy_setopt(h, CURLOPT_XFERINFOFUNCTION, on_progress);
        curl_easy_setopt(h, CURLOPT_XFERINFODATA, &prog);
    }

    /* Back-pressure (429, or 503 while kithd is busy) is answered with Retry-After: wait and send
     * again, a bounded number of times. The request was not processed, so this is safe for POST. */
    CURLcode rc;
    bool drew = progress_label && c->tty;
    for (int attempt = 1;; attempt++) {
        rc = curl_easy_perform(h);
        if (rc != CURLE_OK || c->no_retry || attempt == MAX_ATTEMPTS) break;
        long status = 0;
        curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
        if (status != 429 && status != 503) break;
        curl_off_t after = 0;
        curl_easy_getinfo(h, CURLINFO_RETRY_AFTER, &after);
        if (after <= 0) after = attempt;
        if (after > MAX_RETRY_AFTER_S) after = MAX_RETRY_AFTER_S;
        if (c->tty) {
            fprintf(stderr, "\r\033[Kkithd is busy (HTTP %ld); retrying in %ld s", status,
                    (long)after);
            drew = true;
        }
        sleep_ms((long)after * 1000);
        r->len = 0;
        if (r->body) r->body[0] = '\0';
    }
    if (drew) fputs("\r\033[K", stderr);
    int ret = 0;
    if (rc != CURLE_OK) {
        if (r->too_large || rc == CURLE_FILESIZE_EXCEEDED)
            ret = fail("%s %s: the response is larger than %zu MiB; refusing to read it", method,
                       path, MAX_RESPONSE_BYTES >> 20);
        else if (rc == CURLE_COULDNT_CONNECT || rc == CURLE_COULDNT_RESOLVE_HOST ||
                 rc == CURLE_OPERATION_TIMEDOUT)
            ret = fail("cannot reach kithd at %.*s: %s (set --url or KITH_URL)", (int)ulen, c->url,
                       curl_easy_strerror(rc));
        else
            ret = fail("%s %s: %s", method, url.data, curl_easy_strerror(rc));
        response_free(r);
    } else {
        curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &r->status);
        if (!r->body) {
            r->body = kith_xstrdup("");
            r->cap = 1;
        }
    }
    curl_slist_free_all(hdrs);
    kith_buf_free(&url);
    kith_buf_free(&line);
    return ret;
}

/* Sends a JSON body (stolen reference; may be NULL). */
static int http_json(struct cli *c, const char *method, const char *path, json_t *body,
                     struct response *r)
{
    char *text = body ? json_dumps(body, JSON_COMPACT) : NULL;
    json_decref(body);
    int rc = http(c, method, path, text ? "application/json" : NULL, text, text ? strlen(text) : 0,
                  NULL, r);
    free(text);
    return rc;
}

static bool http_ok(const struct response *r)
{
    return r->status >= 200 && r->status < 300;
}

/* Prints a non-2xx response as clearly as the API gives it: problem+json title and detail, then
 * each errors[] entry as "path: message". Returns EXIT_FAIL. */
static int print_problem(const char *what, const struct response *r)
{
    json_error_t jerr;
    json_t *p = r->body && r->len ? json_loadb(r->body, r->len, 0, &jerr) : NULL;
    const char *title = json_string_value(json_object_get(p, "title"));
    const char *detail = json_string_value(json_object_get(p, "detail"));
    if (!detail) detail = json_string_value(json_object_get(p, "message"));
    if (title || detail) {
        if (title && detail && strcmp(title, detail) != 0)
            fprintf(stderr, "kith: %s: %s: %s\n", what, title, detail);
        else
            fprintf(stderr, "kith: %s: %s (HTTP %ld)\n", what, title ? title : detail, r->status);
    } else if (r->len) {
        int n = r->len > 300 ? 300 : (int)r->len;
        while (n > 0 && isspace((unsigned char)r->body[n - 1]))
            n--;
        fprintf(stderr, "kith: %s: HTTP %ld: %.*s%s\n", what, r->status, n, r->body,
                r->len > 300 ? "..." : "");
    } else {
        fprintf(stderr, "kith: %s: HTTP %ld with no explanation\n", what, r->status);
    }
    json_t *errs = json_object_get(p, "errors");
    size_t i;
    json_t *e;
    json_array_foreach(errs, i, e)
    {
        const char *path = json_string_value(json_object_get(e, "path"));
        const char *msg = json_string_value(json_object_get(e, "message"));
        if (!msg) msg = json_string_value(json_object_get(e, "description"));
        if (path || msg)
            fprintf(stderr, "  %s: %s\n", path && path[0] ? path : "/", msg ? msg : "");
    }
    if (r->status == 401) fputs("kith: hint: pass an API key with --key or KITH_KEY\n", stderr);
    json_decref(p);
    return EXIT_FAIL;
}

/* Parses a 2xx body as JSON; prints why not and returns NULL when it is not JSON. */
static json_t *parse_body(const char *what, const struct response *r)
{
    json_error_t jerr;
    json_t *j = json_loadb(r->body, r->len, JSON_DECODE_ANY, &jerr);
    if (!j)
        fail("%s: the server's answer is not JSON (line %d, column %d: %s)", what, jerr.line,
             jerr.column, jerr.text);
    return j;
}

/* Prints the body as returned, with a final newline. */
static void print_raw(const struct response *r)
{
    fwrite(r->body, 1, r->len, stdout);
    if (r->len && r->body[r->len - 1] != '\n') putchar('\n');
}

static void print_pretty(json_t *j)
{
    char *s = json_dumps(j, JSON_INDENT(2) | JSON_PRESERVE_ORDER | JSON_ENCODE_ANY);
    if (s) puts(s);
    free(s);
}

/* ---------------------------------------------------------------------------------------------- */
/* Tables */

/* A column: its title and where its value is, as "a.b" paths; "x|y" tries x then y. */
struct column {
    const char *title;
    const char *paths;
    bool time_ms; /* an epoch-milliseconds number, shown as an RFC 3339 time */
};

static json_t *json_path(json_t *obj, const char *path, size_t len)
{
    json_t *cur = obj;
    const char *p = path, *end = path + len;
    while (cur && p < end) {
        const char *dot = memchr(p, '.', (size_t)(end - p));
        size_t n = dot ? (size_t)(dot - p) : (size_t)(end - p);
        cur = json_object_getn(cur, p, n);
        p += n + (dot ? 1 : 0);
    }
    return cur;
}

/* Formats a cell; returns an owned string. */
static char *cell_text(json_t *v)
{
    kith_buf b = {0};
    if (!v || json_is_null(v)) {
        kith_buf_puts(&b, "-");
    } else if (json_is_string(v)) {
        kith_buf_puts(&b, json_string_length(v) ? json_string_value(v) : "-");
    } else if (json_is_integer(v)) {
        kith_buf_printf(&b, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
    } else if (json_is_real(v)) {
        kith_buf_printf(&b, "%g", json_real_value(v));
    } else if (json_is_boolean(v)) {
        kith_buf_puts(&b, json_is_true(v) ? "yes" : "no");
    } else if (json_is_array(v) && json_array_size(v) == 0) {
        kith_buf_puts(&b, "-");
    } else if (json_is_array(v)) {
        size_t i;
        json_t *x;
        json_array_foreach(v, i, x)
        {
            char *t = cell_text(x);
            kith_buf_printf(&b, "%s%s", i ? "," : "", t);
            free(t);
        }
    } else {
        char *s = json_dumps(v, JSON_COMPACT);
        kith_buf_puts(&b, s ? s : "?");
        free(s);
    }
    /* One line per row: control characters would break the table. */
    for (size_t i = 0; i < b.len; i++)
        if ((unsigned char)b.data[i] < 0x20) b.data[i] = ' ';
    return b.data;
}

static json_t *column_value(json_t *row, const char *paths)
{
    const char *p = paths;
    for (;;) {
        const char *bar = strchr(p, '|');
        size_t n = bar ? (size_t)(bar - p) : strlen(p);
        json_t *v = json_path(row, p, n);
        if (v || !bar) return v;
        p = bar + 1;
    }
}

/* Display width of UTF-8 text (code points; good enough for names and ids). */
static size_t text_width(const char *s)
{
    size_t w = 0;
    for (; *s; s++)
        if (((unsigned char)*s & 0xC0) != 0x80) w++;
    return w;
}

/* Prints rows (an array of objects) as an aligned table. */
static void print_table(json_t *rows, const struct column *cols, size_t ncols, const char *empty)
{
    size_t nrows = json_array_size(rows);
    if (nrows == 0) {
        printf("%s\n", empty);
        return;
    }
    char **cells = kith_xcalloc((nrows + 1) * ncols, sizeof(char *));
    size_t *width = kith_xcalloc(ncols, sizeof(size_t));
    for (size_t j = 0; j < ncols; j++) {
        cells[j] = kith_xstrdup(cols[j].title);
        width[j] = text_width(cells[j]);
    }
    for (size_t i = 0; i < nrows; i++) {
        for (size_t j = 0; j < ncols; j++) {
            json_t *v = column_value(json_array_get(rows, i), cols[j].paths);
            char *t;
            if (cols[j].time_ms && json_is_integer(v)) {
                char ts[40];
                t = kith_xstrdup(kith_time_format(json_integer_value(v), ts, sizeof ts));
            } else {
                t = cell_text(v);
            }
            size_t w = text_width(t);
            if (w > width[j]) width[j] = w;
            cells[(i + 1) * ncols + j] = t;
        }
    }
    for (size_t i = 0; i <= nrows; i++) {
        for (size_t j = 0; j < ncols; j++) {
            const char *t = cells[i * ncols + j];
            if (j + 1 == ncols) {
                printf("%s\n", t);
            } else {
                fputs(t, stdout);
                for (size_t k = text_width(t); k < width[j] + 2; k++)
                    putchar(' ');
            }
        }
    }
    for (size_t i = 0; i < (nrows + 1) * ncols; i++)
        free(cells[i]);
    free(cells);
    free(width);
}

/* The list inside a list response, as a new array: the response itself when it is an array; the
 * first array under a known key ("results", "sandboxes", "keys", ...); or, for Catalog's
 * `{"<id>": {...}, ...}` maps, the values with "id" filled in from the key. */
static json_t *list_items(json_t *root)
{
    static const char *const keys[] = {"results", "sandboxes", "keys",       "children",
                                       "items",   "data",      "connections"};
    if (json_is_array(root)) return json_incref(root);
    json_t *out = json_array();
    if (!json_is_object(root)) return out;
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
        json_t *v = json_object_get(root, keys[i]);
        if (json_is_array(v)) {
            json_decref(out);
            return json_incref(v);
        }
    }
    const char *k;
    json_t *v;
    json_object_foreach(root, k, v)
    {
        if (k[0] == '_') continue; /* _page, _links */
        if (!json_is_object(v)) continue;
        json_t *row = json_copy(v);
        if (!json_object_get(row, "id")) json_object_set_new(row, "id", json_string(k));
        json_array_append_new(out, row);
    }
    return out;
}

/* GETs a list and prints it as a table (or raw with --json). */
static int list_command(struct cli *c, const char *what, const char *path,
                        const struct column *cols, size_t ncols, const char *empty)
{
    struct response r;
    if (http(c, "GET", path, NULL, NULL, 0, NULL, &r)) return EXIT_FAIL;
    int rc = EXIT_OK;
    if (!http_ok(&r)) {
        rc = print_problem(what, &r);
    } else if (c->json) {
        print_raw(&r);
    } else {
        json_t *j = parse_body(what, &r);
        if (!j) {
            rc = EXIT_FAIL;
        } else {
            json_t *rows = list_items(j);
            print_table(rows, cols, ncols, empty);
            json_decref(rows);
            json_decref(j);
        }
    }
    response_free(&r);
    return rc;
}

/* ---------------------------------------------------------------------------------------------- */
/* Import */

/* One uploaded file of the batch: its name and the input line its first line is. */
struct piece {
    char *name;
    long first_line;
};

/* Reads the input in pieces of whole lines, each at most `limit` bytes. */
struct piece_reader {
    FILE *in;
    char *buf;
    size_t len, cap, limit, consumed;
    bool eof;
};

/* Returns 1 with the next piece in (*data, *len), 0 at the end of the input, or -1 after printing
 * the error. The piece is valid until the next call. */
static int piece_next(struct piece_reader *pr, const char *label, long line, const char **data,
                      size_t *len)
{
    if (pr->consumed) {
        memmove(pr->buf, pr->buf + pr->consumed, pr->len - pr->consumed);
        pr->len -= pr->consumed;
        pr->consumed = 0;
    }
    while (!pr->eof) {
        if (pr->len == pr->cap) {
            if (pr->cap == pr->limit) break;
            size_t cap = pr->cap ? pr->cap * 2 : (size_t)1 << 20;
            if (cap > pr->limit) cap = pr->limit;
            char *nb = realloc(pr->buf, cap);
            if (!nb) {
                fail("%s: out of memory reading %zu bytes", label, cap);
                return -1;
            }
            pr->buf = nb;
            pr->cap = cap;
        }
        size_t n = fread(pr->buf + pr->len, 1, pr->cap - pr->len, pr->in);
        pr->len += n;
        if (n == 0) {
            if (ferror(pr->in)) {
                fail("%s: read error: %s", label, strerror(errno));
                return -1;
            }
            pr->eof = true;
        }
    }
    if (pr->len == 0) return 0;
    size_t take = pr->len;
    if (!pr->eof) {
        const char *nl = memrchr(pr->buf, '\n', pr->len);
        if (!nl) {
            fail("%s: line %ld is longer than %zu bytes, the most one uploaded file may hold",
                 label, line, pr->limit);
            return -1;
        }
        take = (size_t)(nl - pr->buf) + 1;
    }
    *data = pr->buf;
    *len = take;
    pr->consumed = take;
    return 1;
}

static long count_lines(const char *p, size_t n)
{
    long lines = 0;
    for (const char *q = p; (q = memchr(q, '\n', (size_t)(p + n - q))) != NULL; q++)
        lines++;
    return lines;
}

/* The batch object of a catalog response `{"<id>": {...}}` (borrowed). */
static json_t *catalog_batch(json_t *root, const char *id)
{
    json_t *b = json_object_get(root, id);
    if (json_is_object(b)) return b;
    if (json_object_get(root, "status")) return root;
    if (json_object_size(root) == 1) {
        void *it = json_object_iter(root);
        return json_object_iter_value(it);
    }
    return NULL;
}

static json_int_t metric(json_t *batch, const char *name)
{
    return json_integer_value(json_object_get(json_object_get(batch, "metrics"), name));
}

/* Polls the batch until it leaves loading/processing (when wait) and returns the batch response
 * root (owned) in *out; returns 0 or EXIT_FAIL. */
static int batch_fetch(struct cli *c, const char *id, bool wait, long timeout_s, json_t **out)
{
    kith_buf path = {0};
    kith_buf_puts(&path, "/data/foundation/catalog/batches");
    path_add(&path, id);
    uint64_t start = kith_mono_ns();
    long delay = 50;
    int rc = EXIT_OK;
    *out = NULL;
    for (;;) {
        struct response r;
        if (http(c, "GET", path.data, NULL, NULL, 0, NULL, &r)) {
            rc = EXIT_FAIL;
            break;
        }
        if (!http_ok(&r)) {
            rc = print_problem(id, &r);
            response_free(&r);
            break;
        }
        json_t *root = parse_body("batch status", &r);
        response_free(&r);
        if (!root) {
            rc = EXIT_FAIL;
            break;
        }
        json_t *b = catalog_batch(root, id);
        const char *status = json_string_value(json_object_get(b, "status"));
        if (!status) {
            json_decref(root);
            rc = fail("batch %s: the status response has no status", id);
            break;
        }
        bool pending = strcmp(status, "loading") == 0 || strcmp(status, "processing") == 0 ||
                       strcmp(status, "queued") == 0 || strcmp(status, "staging") == 0;
        double elapsed = (double)(kith_mono_ns() - start) / 1e9;
        if (!wait || !pending) {
            *out = root;
            break;
        }
        if (timeout_s > 0 && elapsed > (double)timeout_s) {
            if (c->tty) fputs("\r\033[K", stderr);
            rc = fail("batch %s is still %s after %ld s; check later with 'kith batch get %s'", id,
                      status, timeout_s, id);
            json_decref(root);
            break;
        }
        if (c->tty && json_object_get(json_object_get(b, "metrics"), "recordsRead"))
            fprintf(stderr, "\r\033[Kbatch %s: %s, %" JSON_INTEGER_FORMAT " records read (%.0f s)",
                    id, status, metric(b, "recordsRead"), elapsed);
        else if (c->tty)
            fprintf(stderr, "\r\033[Kbatch %s: %s (%.0f s)", id, status, elapsed);
        json_decref(root);
        sleep_ms(delay);
        delay = delay * 2 > 1000 ? 1000 : delay * 2;
    }
    if (c->tty && wait) fputs("\r\033[K", stderr);
    kith_buf_free(&path);
    return rc;
}

static const char *error_file(json_t *e)
{
    const char *file = json_string_value(json_object_get(e, "file"));
    return file ? file : json_string_value(json_object_get(e, "fileName"));
}

static bool error_file_known(json_t *e, const struct piece *pieces, size_t npieces)
{
    const char *file = error_file(e);
    for (size_t i = 0; file && i < npieces; i++)
        if (strcmp(pieces[i].name, file) == 0) return true;
    return false;
}

/* Maps a failed-record entry to the input line: pieces are numbered from their first line. */
static long error_line(json_t *e, const struct piece *pieces, size_t npieces)
{
    long line = (long)json_integer_value(json_object_get(e, "line"));
    if (!json_is_integer(json_object_get(e, "line"))) return 0;
    if (npieces <= 1) return line;
    const char *file = error_file(e);
    for (size_t i = 0; file && i < npieces; i++)
        if (strcmp(pieces[i].name, file) == 0) return pieces[i].first_line + line - 1;
    return line;
}

/* Prints the batch report; returns EXIT_OK only when the batch succeeded and wrote every record. */
static int batch_report(struct cli *c, const char *id, json_t *root, const char *label,
                        const struct piece *pieces, size_t npieces)
{
    json_t *b = catalog_batch(root, id);
    const char *status = json_string_value(json_object_get(b, "status"));
    json_int_t nread = metric(b, "recordsRead"), written = metric(b, "recordsWritten"),
               failed = metric(b, "recordsFailed");
    bool pending = status && (strcmp(status, "loading") == 0 || strcmp(status, "processing") == 0);
    bool ok = status && strcmp(status, "success") == 0 && failed == 0 && written == nread;
    if (c->json) {
        print_pretty(root);
        return ok || pending ? EXIT_OK : EXIT_FAIL;
    }
    if (label)
        printf("batch %s (%s): %s\n", id, label, status ? status : "?");
    else
        printf("batch %s: %s\n", id, status ? status : "?");
    if (!pending)
        printf("records: %" JSON_INTEGER_FORMAT " read, %" JSON_INTEGER_FORMAT
               " written, %" JSON_INTEGER_FORMAT " failed\n",
               nread, written, failed);
    size_t i;
    json_t *e;
    json_array_foreach(json_object_get(b, "errors"), i, e)
    {
        long line = error_line(e, pieces, npieces);
        const char *desc = json_string_value(json_object_get(e, "description"));
        if (!desc) desc = json_string_value(json_object_get(e, "message"));
        if (!desc) desc = "rejected";
        if (line > 0 && npieces > 1 && !error_file_known(e, pieces, npieces))
            printf(
                "line %ld of one of the %zu uploaded pieces (the server did not say which): %s\n",
                line, npieces, desc);
        else if (line > 0)
            printf("line %ld: %s\n", line, desc);
        else
            printf("%s\n", desc);
        size_t k;
        json_t *d;
        json_array_foreach(json_object_get(e, "errors"), k, d)
        {
            const char *path = json_string_value(json_object_get(d, "path"));
            const char *msg = json_string_value(json_object_get(d, "message"));
            printf("  %s: %s\n", path && path[0] ? path : "/", msg ? msg : "");
        }
    }
    if (pending) {
        printf("still processing; check again with 'kith batch get %s --wait'\n", id);
        return EXIT_OK;
    }
    return ok ? EXIT_OK : EXIT_FAIL;
}

/* The name a piece is uploaded as: the file's own name, or name.partN.ext when split. */
static char *piece_name(const char *base, size_t index, bool split)
{
    kith_buf b = {0};
    if (!split) {
        kith_buf_puts(&b, base);
        return b.data;
    }
    const char *dot = strrchr(base, '.');
    if (dot && dot != base)
        kith_buf_printf(&b, "%.*s.part%zu%s", (int)(dot - base), base, index + 1, dot);
    else
        kith_buf_printf(&b, "%s.part%zu", base, index + 1);
    return b.data;
}

static int cmd_import(struct cli *c, const struct args *a)
{
    const char *dataset = arg_get(a, "dataset");
    const char *file = a->pos[0];
    if (!dataset || !dataset[0]) return usage_error(a->cmd, "--dataset ID is required");
    long timeout_s = 3600;
    int rc = EXIT_OK;
    if (!arg_long(a, "timeout", 0, 1000000, &timeout_s, &rc)) return rc;
    size_t limit = MAX_BATCH_FILE_BYTES;
    const char *split = arg_get(a, "split-size");
    if (split && (!parse_size(split, &limit) || limit == 0))
        return usage_error(a->cmd, "--split-size must be a size such as 1048576, 64M or 1G");

    bool from_stdin = strcmp(file, "-") == 0;
    const char *label = from_stdin ? "<stdin>" : file;
    const char *slash = strrchr(file, '/');
    const char *base = from_stdin ? "stdin.jsonl" : slash ? slash + 1 : file;
    if (!base[0]) return usage_error(a->cmd, "'%s' is not a file name", file);
    FILE *in = from_stdin ? stdin : fopen(file, "rb");
    if (!in) return fail("cannot open %s: %s", file, strerror(errno));

    struct piece_reader pr = {.in = in, .limit = limit};
    struct piece *pieces = NULL;
    size_t npieces = 0;
    char *batch_id = NULL;
    json_t *status = NULL;
    kith_buf path = {0};
    const char *data;
    size_t len;
    long line = 1;

    /* Read the first piece before creating the batch, so an unreadable or empty input leaves no
     * batch behind. */
    int more = piece_next(&pr, label, line, &data, &len);
    if (more < 0) {
        rc = EXIT_FAIL;
        goto out;
    }
    if (more == 0) {
        fprintf(stderr, "kith: %s is empty; nothing to import\n", label);
        goto out;
    }

    {
        struct response r;
        json_t *body =
            json_pack("{s:s, s:{s:s}}", "datasetId", dataset, "inputFormat", "format", "json");
        if (http_json(c, "POST", "/data/foundation/import/batches", body, &r)) {
            rc = EXIT_FAIL;
            goto out;
        }
        if (!http_ok(&r)) {
            rc = print_problem("cannot create the import batch", &r);
            response_free(&r);
            goto out;
        }
        json_t *j = parse_body("create batch", &r);
        response_free(&r);
        const char *id = json_string_value(json_object_get(j, "id"));
        if (id) batch_id = kith_xstrdup(id);
        json_decref(j);
        if (!batch_id) {
            rc = fail("create batch: the server's answer has no batch id");
            goto out;
        }
    }

    while (more > 0) {
        bool split_input = npieces > 0 || !pr.eof || pr.len > len;
        pieces = kith_xrealloc(pieces, (npieces + 1) * sizeof *pieces);
        pieces[npieces].name = piece_name(base, npieces, split_input);
        pieces[npieces].first_line = line;
        npieces++;
        path.len = 0;
        kith_buf_puts(&path, "/data/foundation/import/batches");
        path_add(&path, batch_id);
        kith_buf_puts(&path, "/datasets");
        path_add(&path, dataset);
        kith_buf_puts(&path, "/files");
        path_add(&path, pieces[npieces - 1].name);
        struct response r;
        if (http(c, "PUT", path.data, "application/octet-stream", data, len,
                 pieces[npieces - 1].name, &r)) {
            rc = EXIT_FAIL;
            goto abort;
        }
        if (!http_ok(&r)) {
            char what[512];
            snprintf(what, sizeof what, "upload of %s failed", pieces[npieces - 1].name);
            rc = print_problem(what, &r);
            response_free(&r);
            goto abort;
        }
        response_free(&r);
        line += count_lines(data, len);
        more = piece_next(&pr, label, line, &data, &len);
        if (more < 0) {
            rc = EXIT_FAIL;
            goto abort;
        }
    }

    {
        path.len = 0;
        kith_buf_puts(&path, "/data/foundation/import/batches");
        path_add(&path, batch_id);
        kith_buf_puts(&path, "?action=COMPLETE");
        struct response r;
        if (http(c, "POST", path.data, NULL, NULL, 0, NULL, &r)) {
            rc = EXIT_FAIL;
            goto out;
        }
        if (!http_ok(&r)) {
            rc = print_problem("cannot complete the import batch", &r);
            response_free(&r);
            goto out;
        }
        response_free(&r);
    }

    if (arg_flag(a, "no-wait") && !arg_flag(a, "wait")) {
        if (c->json) {
            json_t *j = json_pack("{s:s}", "id", batch_id);
            print_pretty(j);
            json_decref(j);
        } else
            printf("batch %s submitted (%zu file%s); follow it with 'kith batch get %s --wait'\n",
                   batch_id, npieces, npieces == 1 ? "" : "s", batch_id);
        goto out;
    }
    rc = batch_fetch(c, batch_id, true, timeout_s, &status);
    if (rc == EXIT_OK) rc = batch_report(c, batch_id, status, label, pieces, npieces);
    goto out;

abort:
    /* Best effort: tell the server to drop the half-uploaded batch. */
    path.len = 0;
    kith_buf_puts(&path, "/data/foundation/import/batches");
    path_add(&path, batch_id);
    kith_buf_puts(&path, "?action=ABORT");
    {
        struct response r;
        if (http(c, "POST", path.data, NULL, NULL, 0, NULL, &r) == 0) response_free(&r);
    }
    fprintf(stderr, "kith: batch %s aborted\n", batch_id);
out:
    if (in && !from_stdin) fclose(in);
    free(pr.buf);
    for (size_t i = 0; i < npieces; i++)
        free(pieces[i].name);
    free(pieces);
    free(batch_id);
    json_decref(status);
    kith_buf_free(&path);
    return rc;
}

static int cmd_batch_get(struct cli *c, const struct args *a)
{
    long timeout_s = 3600;
    int rc = EXIT_OK;
    if (!arg_long(a, "timeout", 0, 1000000, &timeout_s, &rc)) return rc;
    json_t *status = NULL;
    rc = batch_fetch(c, a->pos[0], arg_flag(a, "wait"), timeout_s, &status);
    if (rc == EXIT_OK) rc = batch_report(c, a->pos[0], status, NULL, NULL, 0);
    json_decref(status);
    return rc;
}

/* ---------------------------------------------------------------------------------------------- */
/* Profiles */

/* Reports a 404 lookup: "no profile for NS:VALUE", with the server's reason when it says more
 * (an unknown namespace, say). Returns EXIT_FAIL. */
static int no_profile(const char *label, const struct response *r)
{
    json_t *p = json_loadb(r->body, r->len, 0, NULL);
    const char *detail = json_string_value(json_object_get(p, "detail"));
    if (detail && !strstr(detail, "no profile"))
        fail("no profile for %s (%s)", label, detail);
    else
        fail("no profile for %s", label);
    json_decref(p);
    return EXIT_FAIL;
}

/* Checks (--ns NS --id VALUE | --xid XID); returns 0 or the usage error's exit code. */
static int identity_args(const struct args *a, const char **ns, const char **id, const char **xid)
{
    *ns = arg_get(a, "ns");
    *id = arg_get(a, "id");
    *xid = arg_get(a, "xid");
    if (*xid && (*ns || *id))
        return usage_error(a->cmd, "give either --ns/--id or --xid, not both");
    if (*xid) return *xid[0] ? 0 : usage_error(a->cmd, "--xid must not be empty");
    if (!*ns && !*id)
        return usage_error(a->cmd, "which profile? give --ns NS --id VALUE or --xid XID");
    if (!*ns || !(*ns)[0]) return usage_error(a->cmd, "--ns NS is required with --id");
    if (!*id || !(*id)[0]) return usage_error(a->cmd, "--id VALUE is required with --ns");
    return 0;
}

static void identity_label(char *out, size_t cap, const char *ns, const char *id, const char *xid)
{
    if (xid)
        snprintf(out, cap, "xid %s", xid);
    else
        snprintf(out, cap, "%s:%s", ns, id);
}

static int cmd_profile_get(struct cli *c, const struct args *a)
{
    const char *ns, *id, *xid;
    int rc = identity_args(a, &ns, &id, &xid);
    if (rc) return rc;
    const char *fields = arg_get(a, "fields");
    const char *policy = arg_get(a, "policy");
    kith_buf path = {0};
    kith_buf_puts(&path, "/data/core/ups/access/entities");
    query_add(&path, "schema.name", "_xdm.context.profile");
    query_add(&path, "entityId", xid ? xid : id);
    if (!xid) query_add(&path, "entityIdNS", ns);
    if (fields && fields[0]) query_add(&path, "fields", fields);
    if (policy && policy[0]) query_add(&path, "mergePolicyId", policy);

    char label[1200];
    identity_label(label, sizeof label, ns, id, xid);
    struct response r;
    if (http(c, "GET", path.data, NULL, NULL, 0, NULL, &r)) {
        kith_buf_free(&path);
        return EXIT_FAIL;
    }
    kith_buf_free(&path);
    if (r.status == 404) {
        rc = no_profile(label, &r);
    } else if (!http_ok(&r)) {
        rc = print_problem(label, &r);
    } else if (c->json) {
        print_raw(&r);
    } else {
        json_t *j = parse_body("profile", &r);
        json_t *p = NULL;
        if (json_is_object(j) && json_object_size(j) >= 1)
            p = json_object_iter_value(json_object_iter(j));
        if (!j) {
            rc = EXIT_FAIL;
        } else if (!json_is_object(p)) {
            rc = fail("no profile for %s", label);
        } else {
            json_t *entity = json_object_get(p, "entity");
            print_pretty(entity ? entity : p);
        }
        json_decref(j);
    }
    response_free(&r);
    return rc;
}

static int cmd_profile_events(struct cli *c, const struct args *a)
{
    const char *ns, *id, *xid;
    int rc = identity_args(a, &ns, &id, &xid);
    if (rc) return rc;
    long limit = 0;
    if (!arg_long(a, "limit", 1, 1000000, &limit, &rc)) return rc;
    bool all = arg_flag(a, "all");
    char label[1200];
    identity_label(label, sizeof label, ns, id, xid);

    char *cursor = NULL;
    kith_buf path = {0};
    for (;;) {
        path.len = 0;
        kith_buf_puts(&path, "/data/core/ups/access/entities");
        query_add(&path, "schema.name", "_xdm.context.experienceevent");
        query_add(&path, "relatedSchema.name", "_xdm.context.profile");
        query_add(&path, "relatedEntityId", xid ? xid : id);
        if (!xid) query_add(&path, "relatedEntityIdNS", ns);
        if (limit > 0) {
            char n[32];
            snprintf(n, sizeof n, "%ld", limit);
            query_add(&path, "limit", n);
        }
        if (cursor) query_add(&path, "start", cursor);

        struct response r;
        if (http(c, "GET", path.data, NULL, NULL, 0, NULL, &r)) {
            rc = EXIT_FAIL;
            break;
        }
        if (r.status == 404) {
            rc = no_profile(label, &r);
            response_free(&r);
            break;
        }
        if (!http_ok(&r)) {
            rc = print_problem(label, &r);
            response_free(&r);
            break;
        }
        json_t *j = parse_body("events", &r);
        if (!j) {
            rc = EXIT_FAIL;
            response_free(&r);
            break;
        }
        if (c->json) {
            char *s = json_dumps(j, JSON_COMPACT | JSON_PRESERVE_ORDER);
            if (s) puts(s);
            free(s);
        } else {
            size_t i;
            json_t *child;
            json_array_foreach(json_object_get(j, "children"), i, child)
            {
                json_t *entity = json_object_get(child, "entity");
                char *s = json_dumps(entity ? entity : child, JSON_COMPACT | JSON_PRESERVE_ORDER);
                if (s) puts(s);
                free(s);
            }
        }
        response_free(&r);
        const char *next = json_string_value(json_object_get(json_object_get(j, "_page"), "next"));
        bool again = all && next && next[0] && !(cursor && strcmp(cursor, next) == 0);
        if (all && next && cursor && strcmp(cursor, next) == 0)
            rc = fail("events of %s: the server returned the same page cursor twice", label);
        free(cursor);
        cursor = again ? kith_xstrdup(next) : NULL;
        json_decref(j);
        if (!again) break;
    }
    if (fflush(stdout) != 0 && rc == EXIT_OK) rc = fail("writing the events: %s", strerror(errno));
    free(cursor);
    kith_buf_free(&path);
    return rc;
}

/* ---------------------------------------------------------------------------------------------- */
/* Export */

static int cmd_export(struct cli *c, const struct args *a)
{
    const char *ds = arg_get(a, "dataset");
    if (!ds || !ds[0]) return usage_error(a->cmd, "--dataset ID is required");
    const char *out = arg_get(a, "output");
    FILE *f = stdout;
    if (out && out[0] && !(f = fopen(out, "w"))) return fail("cannot write %s: %s", out, strerror(errno));
    kith_buf path = {0};
    kith_buf_printf(&path, "/data/foundation/catalog/dataSets/");
    for (const char *p = ds; *p; p++) {
        unsigned char ch = (unsigned char)*p;
        if (isalnum(ch) || ch == '-' || ch == '_' || ch == '.') kith_buf_append(&path, p, 1);
        else kith_buf_printf(&path, "%%%02X", ch);
    }
    kith_buf_puts(&path, "/export");
    struct response r;
    c->sink = f;
    int rc = http(c, "GET", path.data, NULL, NULL, 0, NULL, &r) ? EXIT_FAIL : EXIT_OK;
    c->sink = NULL;
    kith_buf_free(&path);
    if (rc == EXIT_OK && !http_ok(&r)) rc = print_problem("export", &r);
    bool to_stdout = f == stdout;
    if (!to_stdout && fclose(f) != 0 && rc == EXIT_OK) rc = fail("writing %s: %s", out, strerror(errno));
    if (to_stdout && fflush(stdout) != 0 && rc == EXIT_OK)
        rc = fail("writing the export: %s", strerror(errno));
    if (rc == EXIT_OK && c->tty) fprintf(stderr, "exported %llu bytes\n", (unsigned long long)r.sunk);
    response_free(&r);
    return rc;
}

/* ---------------------------------------------------------------------------------------------- */
/* PQL: check, explain, eval (the language runs here, in the client) */

/* The expression from the positional argument, or standard input for "-" (owned). */
static char *pql_text(const struct args *a)
{
    const char *arg = a->pos[0];
    if (strcmp(arg, "-") != 0) return kith_xstrdup(arg);
    kith_buf b = {0};
    char chunk[4096];
    size_t n;
    while ((n = fread(chunk, 1, sizeof chunk, stdin)) > 0) {
        kith_buf_append(&b, chunk, n);
        if (b.len > (64u << 10)) break;
    }
    if (!b.data) kith_buf_append(&b, "", 0);
    return b.data;
}

/* The union schema of a class from kithd ({"properties": ...}), or NULL after printing why. */
static json_t *fetch_union(struct cli *c, const char *cls)
{
    char path[200];
    snprintf(path, sizeof path, "/data/foundation/schemaregistry/tenant/unions/%s", cls);
    struct response r;
    if (http(c, "GET", path, NULL, NULL, 0, NULL, &r)) return NULL;
    json_t *j = NULL;
    if (!http_ok(&r)) print_problem("union schema", &r);
    else j = parse_body("union schema", &r);
    response_free(&r);
    return j;
}

static int pql_compile_args(struct cli *c, const struct args *a, pql_program **out)
{
    char *text = pql_text(a);
    json_t *profile = NULL, *event = NULL;
    if (arg_flag(a, "server")) {
        profile = fetch_union(c, "_xdm.context.profile");
        event = profile ? fetch_union(c, "_xdm.context.experienceevent") : NULL;
        if (!profile || !event) {
            json_decref(profile);
            json_decref(event);
            free(text);
            return EXIT_FAIL;
        }
    }
    pql_env env = {.profile_schema = profile, .event_schema = event};
    pql_error err = {0};
    int rc = pql_compile(text, strlen(text), &env, out, &err);
    json_decref(profile);
    json_decref(event);
    free(text);
    if (rc) {
        fprintf(stderr, "%d:%d: %s\n", err.line, err.column, err.message);
        return EXIT_FAIL;
    }
    return EXIT_OK;
}

static void print_deps(struct cli *c, const pql_program *p)
{
    json_t *deps = pql_deps_json(p);
    if (c->json) {
        print_pretty(deps);
    } else {
        printf("mode: %s (%s)\n", json_string_value(json_object_get(deps, "mode")),
               json_string_value(json_object_get(deps, "reason")));
        const char *keys[] = {"fields", "eventFields", "eventTypes", "segments"};
        for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
            json_t *arr = json_object_get(deps, keys[i]);
            if (!json_array_size(arr)) continue;
            printf("%s:", keys[i]);
            size_t k;
            json_t *v;
            json_array_foreach(arr, k, v) printf(" %s", json_string_value(v));
            printf("\n");
        }
        json_t *lb = json_object_get(deps, "lookbackMs");
        if (json_is_true(json_object_get(deps, "readsEvents")))
            printf("lookback: %s\n", json_is_integer(lb) ? "bounded" : "unbounded");
        if (json_is_integer(lb) && json_integer_value(lb) > 0)
            printf("lookbackMs: %lld\n", (long long)json_integer_value(lb));
    }
    json_decref(deps);
}

static int cmd_pql_check(struct cli *c, const struct args *a)
{
    pql_program *p = NULL;
    int rc = pql_compile_args(c, a, &p);
    if (rc) return rc;
    if (!c->json) printf("ok\n");
    print_deps(c, p);
    pql_program_free(p);
    return EXIT_OK;
}

static int cmd_pql_explain(struct cli *c, const struct args *a)
{
    pql_program *p = NULL;
    int rc = pql_compile_args(c, a, &p);
    if (rc) return rc;
    kith_buf out = {0};
    pql_explain(p, &out);
    if (out.data) fputs(out.data, stdout);
    kith_buf_free(&out);
    print_deps(c, p);
    pql_program_free(p);
    return EXIT_OK;
}

static int cmd_pql_convert(struct cli *c, const struct args *a)
{
    (void)c;
    char *in = pql_text(a);
    const char *s = in;
    while (isspace((unsigned char)*s))
        s++;
    int rc = EXIT_OK;
    if (*s == '{') {
        json_error_t je;
        json_t *tree = json_loads(s, JSON_REJECT_DUPLICATES, &je);
        char *text = NULL;
        pql_json_error err;
        if (!tree) {
            fprintf(stderr, "%d:%d: %s\n", je.line, je.column, je.text);
            rc = EXIT_FAIL;
        } else if (pql_json_to_text(tree, &text, &err)) {
            fprintf(stderr, "%s: %s\n", err.path[0] ? err.path : "/", err.message);
            rc = EXIT_FAIL;
        } else {
            printf("%s\n", text);
        }
        free(text);
        json_decref(tree);
    } else {
        json_t *tree = NULL;
        pql_error err;
        if (pql_text_to_json(in, strlen(in), &tree, &err)) {
            fprintf(stderr, "%d:%d: %s\n", err.line, err.column, err.message);
            rc = EXIT_FAIL;
        } else {
            print_pretty(tree);
        }
        json_decref(tree);
    }
    free(in);
    return rc;
}

/* GET of one Profile Access resource; returns the parsed body or NULL after printing why. */
static json_t *get_json(struct cli *c, const char *path, const char *label)
{
    struct response r;
    if (http(c, "GET", path, NULL, NULL, 0, NULL, &r)) return NULL;
    json_t *j = NULL;
    if (r.status == 404) no_profile(label, &r);
    else if (!http_ok(&r)) print_problem(label, &r);
    else j = parse_body(label, &r);
    response_free(&r);
    return j;
}

static int cmd_pql_eval(struct cli *c, const struct args *a)
{
    const char *ns, *id, *xid;
    int rc = identity_args(a, &ns, &id, &xid);
    if (rc) return rc;
    int64_t now = kith_now_ms();
    const char *nowarg = arg_get(a, "now");
    if (nowarg && kith_time_parse(nowarg, &now) != 0)
        return usage_error(a->cmd, "--now must be an RFC 3339 time such as 2026-01-31T12:00:00Z");
    pql_program *p = NULL;
    rc = pql_compile_args(c, a, &p);
    if (rc) return rc;
    char label[1200];
    identity_label(label, sizeof label, ns, id, xid);
    kith_buf path = {0};
    kith_buf_puts(&path, "/data/core/ups/access/entities");
    query_add(&path, "schema.name", "_xdm.context.profile");
    query_add(&path, "entityId", xid ? xid : id);
    if (!xid) query_add(&path, "entityIdNS", ns);
    json_t *prof = get_json(c, path.data, label);
    json_t *entity = NULL, *events = json_array();
    if (prof && json_object_size(prof))
        entity = json_object_get(json_object_iter_value(json_object_iter(prof)), "entity");
    char *cursor = NULL;
    for (int page = 0; prof && page < 10000; page++) {
        path.len = 0;
        kith_buf_puts(&path, "/data/core/ups/access/entities");
        query_add(&path, "schema.name", "_xdm.context.experienceevent");
        query_add(&path, "relatedSchema.name", "_xdm.context.profile");
        query_add(&path, "relatedEntityId", xid ? xid : id);
        if (!xid) query_add(&path, "relatedEntityIdNS", ns);
        query_add(&path, "limit", "1000");
        if (cursor) query_add(&path, "start", cursor);
        json_t *j = get_json(c, path.data, label);
        if (!j) {
            json_decref(prof);
            prof = NULL;
            break;
        }
        size_t i;
        json_t *ch;
        json_array_foreach(json_object_get(j, "children"), i, ch)
            json_array_append(events, json_object_get(ch, "entity"));
        const char *next = json_string_value(json_object_get(json_object_get(j, "_page"), "next"));
        free(cursor);
        cursor = next && next[0] ? kith_xstrdup(next) : NULL;
        json_decref(j);
        if (!cursor) break;
    }
    free(cursor);
    kith_buf_free(&path);
    if (!prof) {
        json_decref(events);
        pql_program_free(p);
        return EXIT_FAIL;
    }
    pql_evaluator *ev = pql_evaluator_new(NULL);
    pql_input in = {.profile = entity, .events = events, .now_ms = now};
    pql_result res = {0};
    json_t *value = NULL;
    rc = pql_eval_value(ev, p, &in, &res, &value);
    if (rc) {
        rc = fail("the evaluation ran out of its budget (%s)", kith_strerror(rc));
    } else {
        char when[40] = "never";
        if (res.next_change_ms != PQL_NEVER) kith_time_format(res.next_change_ms, when, sizeof when);
        json_t *out = json_pack("{s:O, s:b, s:s, s:I, s:I}", "value", value ? value : json_null(),
                                "match", res.match, "nextChange", when, "events",
                                (json_int_t)json_array_size(events), "steps", (json_int_t)res.steps);
        print_pretty(out);
        json_decref(out);
        rc = EXIT_OK;
    }
    json_decref(value);
    pql_evaluator_free(ev);
    json_decref(events);
    json_decref(prof);
    pql_program_free(p);
    return rc;
}

/* ---------------------------------------------------------------------------------------------- */
/* Sandboxes, keys, schemas, datasets, inlets */

#define SANDBOXES_PATH "/data/foundation/sandbox-management/sandboxes"
#define KEYS_PATH "/data/foundation/keys"

static int cmd_sandbox_list(struct cli *c, const struct args *a)
{
    (void)a;
    static const struct column cols[] = {{"NAME", "name", false},
                                         {"TITLE", "title", false},
                                         {"TYPE", "type", false},
                                         {"STATE", "state|status", false}};
    return list_command(c, "sandbox list", SANDBOXES_PATH, cols, 4, "no sandboxes");
}

/* Runs a request whose answer is either printed raw (--json) or summarised by `done`. */
static int simple_request(struct cli *c, const char *what, const char *method, const char *path,
                          json_t *body, const char *done)
{
    struct response r;
    if (http_json(c, method, path, body, &r)) return EXIT_FAIL;
    int rc = EXIT_OK;
    if (!http_ok(&r))
        rc = print_problem(what, &r);
    else if (c->json)
        print_raw(&r);
    else
        printf("%s\n", done);
    response_free(&r);
    return rc;
}

static int cmd_sandbox_create(struct cli *c, const struct args *a)
{
    const char *name = a->pos[0];
    const char *title = arg_get(a, "title");
    const char *type = arg_get(a, "type");
    if (!type) type = "development";
    if (strcmp(type, "development") != 0 && strcmp(type, "production") != 0)
        return usage_error(a->cmd, "--type must be development or production, not '%s'", type);
    if (!name[0]) return usage_error(a->cmd, "the sandbox name must not be empty");
    json_t *body =
        json_pack("{s:s, s:s, s:s}", "name", name, "title", title ? title : name, "type", type);
    char done[512];
    snprintf(done, sizeof done, "created sandbox %s (%s)", name, type);
    return simple_request(c, "cannot create the sandbox", "POST", SANDBOXES_PATH, body, done);
}

static int cmd_sandbox_delete(struct cli *c, const struct args *a)
{
    kith_buf path = {0};
    kith_buf_puts(&path, SANDBOXES_PATH);
    path_add(&path, a->pos[0]);
    char done[512];
    snprintf(done, sizeof done, "deleted sandbox %s", a->pos[0]);
    int rc = simple_request(c, "cannot delete the sandbox", "DELETE", path.data, NULL, done);
    kith_buf_free(&path);
    return rc;
}

static int cmd_key_list(struct cli *c, const struct args *a)
{
    (void)a;
    static const struct column cols[] = {{"ID", "id", false},
                                         {"NAME", "name", false},
                                         {"ROLE", "role", false},
                                         {"SANDBOXES", "sandboxes", false},
                                         {"CREATED", "createdAt|created|createdDate", true}};
    return list_command(c, "key list", KEYS_PATH, cols, 5, "no keys");
}

static int cmd_key_create(struct cli *c, const struct args *a)
{
    const char *name = arg_get(a, "name");
    const char *role = arg_get(a, "role");
    if (!name || !name[0]) return usage_error(a->cmd, "--name N is required");
    if (!role) return usage_error(a->cmd, "--role is required (admin, editor, viewer or ingest)");
    if (strcmp(role, "admin") && strcmp(role, "editor") && strcmp(role, "viewer") &&
        strcmp(role, "ingest"))
        return usage_error(a->cmd, "--role must be admin, editor, viewer or ingest, not '%s'",
                           role);
    json_t *body = json_pack("{s:s, s:s}", "name", name, "role", role);
    json_t *sandboxes = NULL;
    for (int i = 0; i < a->nvals; i++) {
        if (strcmp(a->vals[i].name, "sandbox") != 0) continue;
        if (!sandboxes) sandboxes = json_array();
        char *copy = kith_xstrdup(a->vals[i].value), *save = NULL;
        for (char *t = strtok_r(copy, ",", &save); t; t = strtok_r(NULL, ",", &save))
            if (t[0]) json_array_append_new(sandboxes, json_string(t));
        free(copy);
    }
    if (sandboxes) json_object_set_new(body, "sandboxes", sandboxes);

    struct response r;
    if (http_json(c, "POST", KEYS_PATH, body, &r)) return EXIT_FAIL;
    int rc = EXIT_OK;
    if (!http_ok(&r)) {
        rc = print_problem("cannot create the key", &r);
    } else if (c->json) {
        print_raw(&r);
    } else {
        json_t *j = parse_body("key create", &r);
        if (!j) {
            rc = EXIT_FAIL;
        } else {
            const char *kid = json_string_value(json_object_get(j, "id"));
            const char *secret = NULL;
            static const char *const fields[] = {"key", "apiKey", "secret", "token"};
            for (size_t i = 0; !secret && i < sizeof fields / sizeof fields[0]; i++)
                secret = json_string_value(json_object_get(j, fields[i]));
            char *sb = cell_text(json_object_get(j, "sandboxes"));
            printf("created key %s (name %s, role %s, sandboxes %s)\n", kid ? kid : "?", name, role,
                   sb);
            free(sb);
            if (secret) {
                printf("key: %s\n", secret);
                fputs("kith: this key is shown once; store it now\n", stderr);
            } else {
                rc = fail("the server's answer has no key; create another");
            }
            json_decref(j);
        }
    }
    response_free(&r);
    return rc;
}

static int cmd_key_delete(struct cli *c, const struct args *a)
{
    kith_buf path = {0};
    kith_buf_puts(&path, KEYS_PATH);
    path_add(&path, a->pos[0]);
    char done[512];
    snprintf(done, sizeof done, "deleted key %s", a->pos[0]);
    int rc = simple_request(c, "cannot delete the key", "DELETE", path.data, NULL, done);
    kith_buf_free(&path);
    return rc;
}

static int cmd_schema_list(struct cli *c, const struct args *a)
{
    (void)a;
    static const struct column cols[] = {{"ALT ID", "meta:altId", false},
                                         {"TITLE", "title", false},
                                         {"CLASS", "meta:class", false},
                                         {"VERSION", "version", false},
                                         {"PROFILE", "meta:immutableTags", false}};
    return list_command(c, "schema list", "/data/foundation/schemaregistry/tenant/schemas", cols, 5,
                        "no schemas");
}

static int cmd_dataset_list(struct cli *c, const struct args *a)
{
    (void)a;
    static const struct column cols[] = {{"ID", "id", false},
                                         {"NAME", "name", false},
                                         {"SCHEMA", "schemaRef.id", false},
                                         {"PROFILE", "tags.unifiedProfile", false},
                                         {"IDENTITY", "tags.unifiedIdentity", false}};
    return list_command(c, "dataset list", "/data/foundation/catalog/dataSets", cols, 5,
                        "no datasets");
}

static int cmd_inlet_create(struct cli *c, const struct args *a)
{
    const char *name = arg_get(a, "name");
    if (!name || !name[0]) return usage_error(a->cmd, "--name N is required");
    json_t *body =
        json_pack("{s:s, s:b}", "name", name, "authenticationRequired", arg_flag(a, "auth"));
    struct response r;
    if (http_json(c, "POST", "/data/foundation/flowservice/connections", body, &r))
        return EXIT_FAIL;
    int rc = EXIT_OK;
    if (!http_ok(&r)) {
        rc = print_problem("cannot create the inlet", &r);
    } else if (c->json) {
        print_raw(&r);
    } else {
        json_t *j = parse_body("inlet create", &r);
        if (!j) {
            rc = EXIT_FAIL;
        } else {
            const char *inlet = json_string_value(json_object_get(j, "inletId"));
            const char *url = json_string_value(json_object_get(j, "inletUrl"));
            const char *cid = json_string_value(json_object_get(j, "id"));
            printf("created inlet %s\n", inlet ? inlet : "?");
            if (cid) printf("connection: %s\n", cid);
            if (url) {
                size_t ulen = strlen(c->url);
                while (ulen > 0 && c->url[ulen - 1] == '/')
                    ulen--;
                printf("url: %.*s%s\n", url[0] == '/' ? (int)ulen : 0, c->url, url);
            }
            json_decref(j);
        }
    }
    response_free(&r);
    return rc;
}

/* ---------------------------------------------------------------------------------------------- */
/* Health, version, help */

static int cmd_health(struct cli *c, const struct args *a)
{
    (void)a;
    struct response r;
    c->no_retry = true;
    if (http(c, "GET", "/readyz", NULL, NULL, 0, NULL, &r)) {
        puts("not ready");
        return EXIT_FAIL;
    }
    int rc = EXIT_OK;
    if (c->json) {
        print_raw(&r);
        rc = r.status == 200 ? EXIT_OK : EXIT_FAIL;
    } else if (r.status == 200) {
        puts("ok");
    } else {
        printf("not ready (HTTP %ld)\n", r.status);
        rc = EXIT_FAIL;
    }
    response_free(&r);
    return rc;
}

static int cmd_version(struct cli *c, const struct args *a)
{
    (void)a;
    if (c->json)
        printf("{\"version\":\"%s\",\"curl\":\"%s\",\"jansson\":\"%s\"}\n", KITH_CLI_VERSION,
               curl_version_info(CURLVERSION_NOW)->version, jansson_version_str());
    else
        printf("kith %s\n", KITH_CLI_VERSION);
    return EXIT_OK;
}

static const struct command *command_find(const char *group, const char *name);
static bool group_exists(const char *group);

static int cmd_help(struct cli *c, const struct args *a)
{
    (void)c;
    if (a->npos == 0) {
        print_main_help(stdout);
        return EXIT_OK;
    }
    const struct command *cmd =
        a->npos == 2 ? command_find(a->pos[0], a->pos[1]) : command_find(NULL, a->pos[0]);
    if (cmd) {
        print_command_help(stdout, cmd);
        return EXIT_OK;
    }
    if (a->npos == 1 && group_exists(a->pos[0])) {
        print_group_help(stdout, a->pos[0]);
        return EXIT_OK;
    }
    return usage_error(NULL, "no command '%s%s%s'", a->pos[0], a->npos == 2 ? " " : "",
                       a->npos == 2 ? a->pos[1] : "");
}

/* ---------------------------------------------------------------------------------------------- */
/* Dispatch */

static const struct command *command_find(const char *group, const char *name)
{
    for (size_t i = 0; i < NCOMMANDS; i++) {
        const struct command *cmd = &commands[i];
        if ((group == NULL) != (cmd->group == NULL)) continue;
        if (group && strcmp(group, cmd->group) != 0) continue;
        if (strcmp(name, cmd->name) == 0) return cmd;
    }
    return NULL;
}

static bool group_exists(const char *group)
{
    for (size_t i = 0; i < NCOMMANDS; i++)
        if (commands[i].group && strcmp(commands[i].group, group) == 0) return true;
    return false;
}

static bool is_option(const char *s)
{
    return (s[0] == '-' && s[1] == '-' && s[2]) || strcmp(s, "-h") == 0;
}

/* Parses argv and runs the command; returns the exit status. */
static int run(struct cli *c, int argc, char **argv)
{
    int i = 1;
    /* Global options before the command. */
    for (; i < argc && is_option(argv[i]); i++) {
        if (strcmp(argv[i], "--version") == 0) {
            struct args none = {0};
            return cmd_version(c, &none);
        }
        int rc = parse_option(c, NULL, NULL, argc, argv, &i);
        if (rc == 1) {
            print_main_help(stdout);
            return EXIT_OK;
        }
        if (rc) return rc;
    }
    if (i >= argc) return usage_error(NULL, "which command?");

    const char *word = argv[i++];
    const struct command *cmd = command_find(NULL, word);
    if (!cmd) {
        if (!group_exists(word)) return usage_error(NULL, "unknown command '%s'", word);
        /* A group: `kith profile --help`, `kith profile get ...`. */
        int j = i;
        while (j < argc && is_option(argv[j])) {
            if (strcmp(argv[j], "--help") == 0 || strcmp(argv[j], "-h") == 0) {
                print_group_help(stdout, word);
                return EXIT_OK;
            }
            j++;
        }
        if (i >= argc || is_option(argv[i])) {
            fprintf(stderr, "kith: which '%s' command?\n", word);
            print_group_help(stderr, word);
            return EXIT_USAGE;
        }
        const char *sub = argv[i++];
        cmd = command_find(word, sub);
        if (!cmd) {
            fprintf(stderr, "kith: unknown command '%s %s'\n", word, sub);
            print_group_help(stderr, word);
            return EXIT_USAGE;
        }
    }

    struct args a = {.cmd = cmd};
    bool only_pos = false;
    bool help = false;
    for (; i < argc; i++) {
        const char *arg = argv[i];
        if (!only_pos && strcmp(arg, "--") == 0) {
            only_pos = true;
        } else if (!only_pos && is_option(arg)) {
            int rc = parse_option(c, cmd, &a, argc, argv, &i);
            if (rc == 1)
                help = true;
            else if (rc)
                return rc;
        } else if (!only_pos && arg[0] == '-' && arg[1] && strcmp(arg, "-") != 0) {
            return usage_error(cmd, "unknown option '%s'", arg);
        } else {
            if (a.npos == MAX_POS || a.npos >= cmd->max_pos)
                return usage_error(cmd, "unexpected argument '%s'", arg);
            a.pos[a.npos++] = arg;
        }
    }
    if (help) {
        print_command_help(stdout, cmd);
        return EXIT_OK;
    }
    if (a.npos < cmd->min_pos) {
        /* The positional argument is the synopsis' first word when it leads, else its last. */
        const char *syn = cmd->synopsis;
        const char *sp = strchr(syn, ' ');
        const char *last = strrchr(syn, ' ');
        if (isupper((unsigned char)syn[0]))
            return usage_error(cmd, "missing %.*s", sp ? (int)(sp - syn) : (int)strlen(syn), syn);
        return usage_error(cmd, "missing %s", last ? last + 1 : syn);
    }
    return cmd->run(c, &a);
}

int main(int argc, char **argv)
{
    signal(SIGPIPE, SIG_IGN);
    struct cli c = {0};
    c.url = getenv("KITH_URL");
    if (!c.url || !c.url[0]) c.url = KITH_DEFAULT_URL;
    c.key = getenv("KITH_KEY");
    c.sandbox = getenv("KITH_SANDBOX");
    c.tty = isatty(STDERR_FILENO);
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) return fail("cannot initialise libcurl");
    c.curl = curl_easy_init();
    if (!c.curl) {
        curl_global_cleanup();
        return fail("cannot initialise libcurl");
    }
    int rc = run(&c, argc, argv);
    if (fflush(stdout) != 0 && rc == EXIT_OK) rc = fail("writing output: %s", strerror(errno));
    curl_easy_cleanup(c.curl);
    curl_global_cleanup();
    return rc;
}
