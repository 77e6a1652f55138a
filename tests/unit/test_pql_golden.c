/* Runs every tests/golden/segment/<name>.test: PQL cases as data (adding a case is adding text).
 *
 * A file is a sequence of "key: value" lines; a line starting with a space or tab continues the
 * previous value, '#' starts a comment line. Context keys apply to the cases after them:
 *   schema: default | none       check names against tests/golden/segment/schema.json, or not
 *   segments: {"id": "streaming"|"edge"|"batch", ...}   segments inSegment may name
 *   member: ["id", ...]          segments this profile is in
 *   profile: {...}               the merged profile
 *   events: [...]                its events, sorted by timestamp
 *   now: RFC 3339                the evaluation instant
 * A case starts with "expr:" and takes:
 *   expect: true | false | JSON value (compared with pql_eval_value)
 *   next: never | RFC 3339       expected next-change instant
 *   error: LINE:COL substring    expected compile error
 *   explain: substring           the disassembly contains it
 *   deps: {...}                  these keys of pql_deps_json are equal
 * Every case that parses also goes text → pql/json → text → program and must give the same program
 * (disassembly and dependencies) as the text itself, or the same error. Every evaluated case is
 * evaluated again twice with a pql_memo shared by all the cases of the same context (profile,
 * events, now...), so filters that equal an earlier case's are answered from the memo, and must
 * give the same value, match and next change as without it. */
#include <dirent.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "kith/pql.h"
#include "kith/pqlinc.h"

typedef struct ctx {
    json_t *schema_file, *segments, *member, *profile, *events;
    bool use_schema;
    int64_t now;
    pql_memo *memo;     /* shared by the cases of one context */
    pql_program **kept; /* their programs, alive while the memo holds their filters' keys */
    int nkept;
} ctx;

#define KEPT_MAX 512

static void ctx_forget(ctx *c)
{
    pql_memo_reset(c->memo);
    for (int i = 0; i < c->nkept; i++)
        pql_program_free(c->kept[i]);
    c->nkept = 0;
}

typedef struct kase {
    const char *file;
    int line;
    char *expr, *expect, *next, *error, *explain, *deps;
} kase;

static int failures, cases;
static uint64_t total_memo_hits;

static void failf(const kase *k, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void failf(const kase *k, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    fprintf(stderr, "%s:%d: ", k->file, k->line);
    vfprintf(stderr, fmt, ap);
    fprintf(stderr, "\n    expr: %s\n", k->expr);
    va_end(ap);
    failures++;
}

static int seg_mode(void *arg, const char *id)
{
    ctx *c = arg;
    const char *m = json_string_value(json_object_get(c->segments, id));
    if (!m) return -1;
    return !strcmp(m, "batch")  ? PQL_MODE_BATCH
           : !strcmp(m, "edge") ? PQL_MODE_EDGE
                                : PQL_MODE_STREAMING;
}

static bool in_seg(void *arg, const char *id)
{
    ctx *c = arg;
    size_t i;
    json_t *v;
    json_array_foreach(c->member, i, v) if (!strcmp(json_string_value(v), id)) return true;
    return false;
}

static json_t *parse_json(const kase *k, const char *what, const char *s)
{
    json_error_t e;
    json_t *j = json_loads(s, JSON_DECODE_ANY, &e);
    if (!j) failf(k, "bad JSON in %s: %s", what, e.text);
    return j;
}

static char *explain_of(const pql_program *p)
{
    kith_buf b = {0};
    pql_explain(p, &b);
    json_t *d = pql_deps_json(p);
    char *ds = json_dumps(d, JSON_COMPACT | JSON_SORT_KEYS);
    kith_buf_puts(&b, ds);
    free(ds);
    json_decref(d);
    kith_buf_append(&b, "", 1);
    return b.data;
}

/* text → tree → (serialised, parsed again) → text → program; the same program as from the text. */
static void round_trip(kase *k, const pql_env *env, const pql_program *p, int rc)
{
    json_t *tree = NULL;
    pql_error perr;
    if (pql_text_to_json(k->expr, strlen(k->expr), &tree, &perr)) {
        if (!rc) failf(k, "pql/json: compiles but does not convert: %s", perr.message);
        return;
    }
    char *ser = json_dumps(tree, JSON_COMPACT);
    json_t *again = json_loads(ser, 0, NULL);
    char *text = NULL;
    pql_json_error jerr;
    if (pql_json_to_text(again, &text, &jerr)) {
        failf(k, "pql/json: %s does not convert back: %s: %s", ser, jerr.path, jerr.message);
        goto out;
    }
    pql_program *q = NULL;
    pql_error qerr;
    int qrc = pql_compile(text, strlen(text), env, &q, &qerr);
    if (!rc != !qrc) {
        failf(k, "pql/json: text %s %s", text, qrc ? qerr.message : "compiles, the original does not");
    } else if (!rc) {
        char *a = explain_of(p), *b = explain_of(q);
        if (strcmp(a, b)) failf(k, "pql/json: %s gives another program:\n%s\n---\n%s", text, a, b);
        free(a);
        free(b);
        json_t *tree2 = NULL;
        if (pql_text_to_json(text, strlen(text), &tree2, &perr) || !json_equal(tree, tree2))
            failf(k, "pql/json: the canonical text %s gives another tree", text);
        json_decref(tree2);
        pql_program *r = NULL;
        pql_json_error cerr;
        if (pql_compile_json(again, env, &r, NULL, &cerr))
            failf(k, "pql/json: pql_compile_json: %s: %s", cerr.path, cerr.message);
        pql_program_free(r);
    } else {
        pql_program *r = NULL;
        pql_json_error cerr;
        if (!pql_compile_json(again, env, &r, NULL, &cerr) || !cerr.message[0])
            failf(k, "pql/json: pql_compile_json accepts what the text refuses");
        pql_program_free(r);
    }
    pql_program_free(q);
out:
    free(text);
    free(ser);
    json_decref(again);
    json_decref(tree);
}

/* Every case with incremental sites is evaluated a second time from per-site states built from
 * its events one by one (in reverse order, through an encode/decode round trip): the answer must
 * be the rescan's. */
static int inc_cases;
static void check_incremental(ctx *c, kase *k, const pql_program *p, const pql_input *base,
                              const json_t *want, bool want_match)
{
    size_t n = pql_inc_nsites(p);
    if (!n) return;
    inc_cases++;
    pql_evaluator *ev = pql_evaluator_new(NULL);
    pql_inc_state *st = calloc(n, sizeof *st);
    const pql_inc_state **ptr = calloc(n, sizeof *ptr);
    for (size_t i = 0; i < n; i++) {
        pql_inc_state_init(&st[i], p, i);
        for (size_t j = json_array_size(c->events); j-- > 0;)
            pql_inc_add(ev, p, i, &st[i], json_array_get(c->events, j));
        size_t ki = i;
        pql_inc_prune(&st[i], &p, &ki, 1, c->now);
        kith_buf b = {0};
        pql_inc_encode(&st[i], &b);
        pql_inc_state_free(&st[i]);
        size_t used = 0;
        if (pql_inc_decode(&st[i], b.data, b.len, &used) || used != b.len)
            failf(k, "incremental: state %zu does not decode", i);
        kith_buf_free(&b);
        if (st[i].bad) failf(k, "incremental: state %zu unusable", i);
        ptr[i] = &st[i];
    }
    pql_input in = *base;
    in.inc = ptr;
    if (pql_inc_only(p)) in.events = NULL; /* the states answer every read of xEvent */
    pql_result res;
    json_t *got = NULL;
    if (pql_eval_value(ev, p, &in, &res, &got)) {
        failf(k, "incremental: evaluation failed");
    } else if (res.match != want_match ||
               !(json_equal(got, want) || (json_is_number(got) && json_is_number(want) &&
                                          json_number_value(got) == json_number_value(want)))) {
        char *g = json_dumps(got, JSON_COMPACT | JSON_ENCODE_ANY);
        char *w = json_dumps(want, JSON_COMPACT | JSON_ENCODE_ANY);
        failf(k, "incremental: got %s, the rescan %s", g ? g : "?", w ? w : "?");
        free(g);
        free(w);
    }
    json_decref(got);
    for (size_t i = 0; i < n; i++)
        pql_inc_state_free(&st[i]);
    free(st);
    free(ptr);
    pql_evaluator_free(ev);
}

static void run_case(ctx *c, kase *k)
{
    cases++;
    pql_env env = {.segment_mode = seg_mode, .arg = c};
    if (c->use_schema) {
        env.profile_schema = json_object_get(c->schema_file, "profile");
        env.event_schema = json_object_get(c->schema_file, "event");
    }
    pql_program *p = NULL;
    pql_error err;
    int rc = pql_compile(k->expr, strlen(k->expr), &env, &p, &err);
    round_trip(k, &env, p, rc);
    if (k->error) {
        int line = 0, col = 0, off = 0;
        sscanf(k->error, "%d:%d %n", &line, &col, &off);
        if (!rc)
            failf(k, "compiled, expected error %s", k->error);
        else if (err.line != line || err.column != col || !strstr(err.message, k->error + off))
            failf(k, "error %d:%d %s, expected %s", err.line, err.column, err.message, k->error);
        pql_program_free(p);
        return;
    }
    if (rc) {
        failf(k, "compile error %d:%d %s", err.line, err.column, err.message);
        return;
    }
    if (k->explain) {
        kith_buf b = {0};
        pql_explain(p, &b);
        kith_buf_append(&b, "", 1);
        if (!strstr(b.data, k->explain)) failf(k, "explain lacks \"%s\":\n%s", k->explain, b.data);
        kith_buf_free(&b);
    }
    if (k->deps) {
        json_t *want = parse_json(k, "deps", k->deps), *got = pql_deps_json(p);
        const char *key;
        json_t *v;
        json_object_foreach(want, key, v)
        {
            if (!json_equal(v, json_object_get(got, key))) {
                char *g = json_dumps(json_object_get(got, key), JSON_COMPACT | JSON_ENCODE_ANY);
                failf(k, "deps.%s = %s", key, g ? g : "(absent)");
                free(g);
            }
        }
        json_decref(want);
        json_decref(got);
    }
    if (k->expect || k->next) {
        pql_evaluator *ev = pql_evaluator_new(NULL);
        pql_input in = {.profile = c->profile,
                        .events = c->events,
                        .now_ms = c->now,
                        .in_segment = in_seg,
                        .arg = c};
        pql_result res;
        json_t *val = NULL;
        rc = pql_eval_value(ev, p, &in, &res, &val);
        if (rc) {
            failf(k, "evaluation failed: %d", rc);
        } else {
            if (k->expect) {
                json_t *want = parse_json(k, "expect", k->expect);
                bool same = want && (json_equal(want, val) ||
                                     (json_is_number(want) && json_is_number(val) &&
                                      json_number_value(want) == json_number_value(val)));
                if (want && !same) {
                    char *g = json_dumps(val, JSON_COMPACT | JSON_ENCODE_ANY);
                    failf(k, "got %s, expected %s", g, k->expect);
                    free(g);
                }
                json_decref(want);
            }
            if (k->next) {
                int64_t want = PQL_NEVER;
                if (strcmp(k->next, "never") && kith_time_parse(k->next, &want))
                    failf(k, "bad next: %s", k->next);
                if (res.next_change_ms != want) {
                    char b[40];
                    failf(k, "next change %s, expected %s",
                          res.next_change_ms == PQL_NEVER
                              ? "never"
                              : kith_time_format(res.next_change_ms, b, sizeof b),
                          k->next);
                }
            }
        }
        if (!rc) check_incremental(c, k, p, &in, val, res.match);
        /* the same with the context's memo: once filling it, once answered from it */
        for (int pass = 0; pass < 2 && rc == 0; pass++) {
            pql_input mi = in;
            mi.memo = c->memo;
            pql_result mres;
            json_t *mval = NULL;
            int mrc = pql_eval_value(ev, p, &mi, &mres, &mval);
            bool same = json_equal(val, mval) ||
                        (json_is_number(val) && json_is_number(mval) &&
                         json_number_value(val) == json_number_value(mval));
            if (mrc != rc || !same || mres.match != res.match ||
                mres.next_change_ms != res.next_change_ms)
                failf(k, "with a shared memo (pass %d): rc %d, match %d, next %lld; without: rc %d, "
                         "match %d, next %lld",
                      pass, mrc, mres.match, (long long)mres.next_change_ms, rc, res.match,
                      (long long)res.next_change_ms);
            json_decref(mval);
        }
        json_decref(val);
        pql_evaluator_free(ev);
    }
    if (c->nkept == KEPT_MAX) ctx_forget(c);
    c->kept[c->nkept++] = p;
}

static void run_file(const char *path, json_t *schema_file)
{
    FILE *f = fopen(path, "r");
    assert_non_null(f);
    ctx c = {.schema_file = schema_file,
             .use_schema = true,
             .segments = json_object(),
             .member = json_array(),
             .memo = pql_memo_new(),
             .kept = calloc(KEPT_MAX, sizeof(pql_program *))};
    kith_time_parse("2024-05-08T12:00:00Z", &c.now);
    kase k = {0};
    char *line = NULL;
    size_t cap = 0;
    int lineno = 0;
    char **last = NULL; /* value being continued */
    const char *fname = strrchr(path, '/') ? strrchr(path, '/') + 1 : path;
    /* A context key that has been read but not applied yet (applied when its value is complete). */
    char pending_key[32] = "";
    char *pending_val = NULL;
#define APPLY_PENDING()                                                                            \
    do {                                                                                           \
        if (pending_key[0]) {                                                                      \
            ctx_forget(&c);                                                                        \
            kase pk = {.file = fname, .line = lineno, .expr = pending_key};                        \
            if (!strcmp(pending_key, "profile"))                                                   \
                json_decref(c.profile), c.profile = parse_json(&pk, "profile", pending_val);       \
            else if (!strcmp(pending_key, "events"))                                               \
                json_decref(c.events), c.events = parse_json(&pk, "events", pending_val);          \
            else if (!strcmp(pending_key, "segments"))                                             \
                json_decref(c.segments), c.segments = parse_json(&pk, "segments", pending_val);    \
            else if (!strcmp(pending_key, "member"))                                               \
                json_decref(c.member), c.member = parse_json(&pk, "member", pending_val);          \
            else if (!strcmp(pending_key, "now")) {                                                \
                if (kith_time_parse(pending_val, &c.now)) failf(&pk, "bad now");                   \
            } else if (!strcmp(pending_key, "schema"))                                             \
                c.use_schema = strcmp(pending_val, "none") != 0;                                   \
            else                                                                                   \
                failf(&pk, "unknown key %s", pending_key);                                         \
            free(pending_val);                                                                     \
            pending_val = NULL;                                                                    \
            pending_key[0] = 0;                                                                    \
        }                                                                                          \
    } while (0)
#define FLUSH_CASE()                                                                               \
    do {                                                                                           \
        if (k.expr) {                                                                              \
            if (!k.expect && !k.error && !k.next && !k.explain && !k.deps)                         \
                failf(&k, "case has no expectation");                                              \
            else                                                                                   \
                run_case(&c, &k);                                                                  \
            free(k.expr), free(k.expect), free(k.next), free(k.error), free(k.explain),            \
                free(k.deps);                                                                      \
        }                                                                                          \
        memset(&k, 0, sizeof k);                                                                   \
    } while (0)
    ssize_t n;
    while ((n = getline(&line, &cap, f)) >= 0) {
        lineno++;
        while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r'))
            line[--n] = 0;
        if ((line[0] == ' ' || line[0] == '\t') && last && *last) {
            char *s = line;
            while (*s == ' ' || *s == '\t')
                s++;
            size_t a = strlen(*last), b = strlen(s);
            *last = realloc(*last, a + b + 2);
            (*last)[a] = '\n';
            memcpy(*last + a + 1, s, b + 1);
            continue;
        }
        last = NULL;
        if (line[0] == '#' || line[0] == 0) continue;
        char *colon = strchr(line, ':');
        if (!colon) {
            kase pk = {.file = fname, .line = lineno, .expr = line};
            failf(&pk, "expected key: value");
            continue;
        }
        *colon = 0;
        char *v = colon + 1;
        while (*v == ' ')
            v++;
        APPLY_PENDING();
        char **slot = NULL;
        if (!strcmp(line, "expr")) {
            FLUSH_CASE();
            k.file = fname;
            k.line = lineno;
            slot = &k.expr;
        } else if (!strcmp(line, "expect"))
            slot = &k.expect;
        else if (!strcmp(line, "next"))
            slot = &k.next;
        else if (!strcmp(line, "error"))
            slot = &k.error;
        else if (!strcmp(line, "explain"))
            slot = &k.explain;
        else if (!strcmp(line, "deps"))
            slot = &k.deps;
        else {
            FLUSH_CASE();
            snprintf(pending_key, sizeof pending_key, "%s", line);
            slot = &pending_val;
        }
        free(*slot);
        *slot = strdup(v);
        last = slot;
    }
    APPLY_PENDING();
    FLUSH_CASE();
    free(line);
    fclose(f);
    ctx_forget(&c);
    uint64_t hits, misses;
    pql_memo_stats(c.memo, &hits, &misses);
    printf("%s: %llu filters answered from the shared memo, %llu run and kept\n", fname,
           (unsigned long long)hits, (unsigned long long)misses);
    total_memo_hits += hits;
    pql_memo_free(c.memo);
    free(c.kept);
    json_decref(c.profile);
    json_decref(c.events);
    json_decref(c.segments);
    json_decref(c.member);
}

static int cmp_names(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

static void test_golden(void **state)
{
    (void)state;
    char dir[4096];
    snprintf(dir, sizeof dir, "%s", __FILE__);
    char *slash = strrchr(dir, '/');
    assert_non_null(slash);
    snprintf(slash + 1, sizeof dir - (size_t)(slash + 1 - dir), "../golden/segment");
    char schema_path[4200];
    snprintf(schema_path, sizeof schema_path, "%s/schema.json", dir);
    json_error_t e;
    json_t *schema = json_load_file(schema_path, 0, &e);
    if (!schema) fail_msg("cannot load %s: %s", schema_path, e.text);
    DIR *d = opendir(dir);
    assert_non_null(d);
    char *names[512];
    int nn = 0;
    struct dirent *de;
    while ((de = readdir(d)) && nn < 512) {
        size_t l = strlen(de->d_name);
        if (l > 5 && !strcmp(de->d_name + l - 5, ".test")) names[nn++] = strdup(de->d_name);
    }
    closedir(d);
    qsort(names, (size_t)nn, sizeof *names, cmp_names);
    for (int i = 0; i < nn; i++) {
        char path[8400];
        snprintf(path, sizeof path, "%s/%s", dir, names[i]);
        run_file(path, schema);
        free(names[i]);
    }
    json_decref(schema);
    print_message("%d golden PQL cases in %d files (%d also from incremental state), %d failed\n",
                  cases, nn, inc_cases, failures);
    assert_int_equal(failures, 0);
    /* the golden events cases share filters: the memo must have answered some */
    assert_true(total_memo_hits > 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {cmocka_unit_test(test_golden)};
    return cmocka_run_group_tests(tests, NULL, NULL);
}
