/* kith segment definitions: validation, compilation against the sandbox's union schemas, the meta
 * store (kind 'g') and the in-memory cache of compiled programs (see kith/segsvc.h). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kith/jalloc.h"
#include "kith/schema.h"
#include "kith/ca.h"
#include "svc_int.h"

const char *seg_status_name(int status)
{
    switch (status) {
    case SEG_REALIZED:
        return "realized";
    case SEG_EXISTING:
        return "existing";
    case SEG_EXITED:
        return "exited";
    default:
        return "none";
    }
}

static const char *mode_name(int mode)
{
    return mode == PQL_MODE_EDGE ? "edge" : mode == PQL_MODE_BATCH ? "batch" : "streaming";
}

/* The id index: a chained hash over (sandbox, id), so that finding a definition (and creating
 * 10,000 of them) does not scan every definition. */
static size_t id_bucket(const struct segsvc *s, uint32_t sb, const char *id)
{
    return (size_t)(kith_hash64(id, strlen(id), sb) & (s->idh_cap - 1));
}

static void index_link(struct segsvc *s, segdef *d)
{
    size_t k = id_bucket(s, d->sb, d->id);
    d->id_next = s->idh[k];
    s->idh[k] = d;
    if (d->name) {
        k = id_bucket(s, d->sb, d->name);
        d->name_next = s->nameh[k];
        s->nameh[k] = d;
    }
}

static void id_index_add(struct segsvc *s, segdef *d)
{
    if (s->n + 1 > s->idh_cap / 2) { /* grow and rehash from v */
        free(s->idh);
        free(s->nameh);
        s->idh_cap = s->idh_cap ? s->idh_cap * 2 : 64;
        while (s->idh_cap / 2 < s->n + 1)
            s->idh_cap *= 2;
        s->idh = kith_xcalloc(s->idh_cap, sizeof *s->idh);
        s->nameh = kith_xcalloc(s->idh_cap, sizeof *s->nameh);
        for (size_t i = 0; i < s->n; i++)
            if (s->v[i] != d) index_link(s, s->v[i]);
    }
    index_link(s, d);
}

static void id_index_remove(struct segsvc *s, segdef *d)
{
    if (!s->idh_cap) return;
    for (segdef **pp = &s->idh[id_bucket(s, d->sb, d->id)]; *pp; pp = &(*pp)->id_next)
        if (*pp == d) {
            *pp = d->id_next;
            break;
        }
    if (d->name)
        for (segdef **pp = &s->nameh[id_bucket(s, d->sb, d->name)]; *pp; pp = &(*pp)->name_next)
            if (*pp == d) {
                *pp = d->name_next;
                break;
            }
}

segdef *svc_def_find(struct segsvc *s, uint32_t sb, const char *id)
{
    if (!s->idh_cap) return NULL;
    for (segdef *d = s->idh[id_bucket(s, sb, id)]; d; d = d->id_next)
        if (d->sb == sb && strcmp(d->id, id) == 0) return d;
    return NULL;
}

const char *svc_def_text(const segdef *d)
{
    return d ? d->text : NULL;
}

static void def_free(segdef *d)
{
    if (!d) return;
    json_decref(d->doc);
    pql_program_free(d->prog);
    free(d->text);
    free(d->name);
    free(d);
}

/* The union schemas of a sandbox, computed once for as long as its set of profile-enabled schemas
 * stays the same (a compiled schema is never freed before the catalog, so its address names it):
 * creating 10,000 definitions no longer builds 20,000 union schemas. */
struct union_cache {
    uint32_t sb;
    uint64_t fp;
    json_t *prof, *ev;
};
static pthread_mutex_t ucache_mu = PTHREAD_MUTEX_INITIALIZER;
static struct union_cache *ucache;
static size_t nucache;

void svc_defs_free(struct segsvc *s)
{
    for (size_t i = 0; i < s->n; i++)
        def_free(s->v[i]);
    free(s->v);
    s->v = NULL;
    s->n = s->cap = 0;
    free(s->idh);
    free(s->nameh);
    s->idh = s->nameh = NULL;
    s->idh_cap = 0;
    pthread_mutex_lock(&ucache_mu);
    for (size_t i = 0; i < nucache; i++) {
        json_decref(ucache[i].prof);
        json_decref(ucache[i].ev);
    }
    free(ucache);
    ucache = NULL;
    nucache = 0;
    pthread_mutex_unlock(&ucache_mu);
}

/* --- compilation --- */

struct union_ctx {
    schema_class cls;
    const kith_schema *v[256];
    size_t n;
};

static void union_collect(const cat_schema *sc, void *arg)
{
    struct union_ctx *u = arg;
    if (sc->profile_enabled && sc->compiled && sc->cls == u->cls && u->n < 256)
        u->v[u->n++] = sc->compiled;
}

static void fp_collect(const cat_schema *sc, void *arg)
{
    uint64_t *h = arg;
    if (!sc->profile_enabled || !sc->compiled) return;
    uint64_t v[2] = {(uint64_t)(uintptr_t)sc->compiled, (uint64_t)sc->cls};
    *h = kith_hash64(v, sizeof v, *h);
}

/* The union schema of a class in a sandbox (owned), or NULL when the sandbox has no
 * profile-enabled schema of that class (the checker then accepts any field). Catalog locked. */
static json_t *union_of(kith_engine *e, uint32_t sb, schema_class cls)
{
    struct union_ctx u = {.cls = cls};
    catalog_each_schema(e->cat, sb, union_collect, &u);
    if (u.n == 0) return NULL;
    json_t *errors = json_array();
    json_t *un = schema_union(u.v, u.n, errors);
    json_decref(errors);
    return un;
}

struct mode_ctx {
    struct segsvc *s;
    uint32_t sb;
    const char *self;
};

static int segment_mode_cb(void *arg, const char *id)
{
    struct mode_ctx *c = arg;
    if (c->self && strcmp(id, c->self) == 0) return -1; /* no self reference */
    segdef *d = svc_def_find(c->s, c->sb, id);
    return d ? d->mode : -1;
}

/* Compiles text, or a pql/json tree (then *canon receives the canonical text, owned, and a
 * failure names the tree's JSON pointer in *jerr), for sandbox sb; *out owned. Apply thread (or
 * load, before data flows), or any thread under the segsvc read lock. */
static int compile_any(struct segsvc *s, uint32_t sb, const char *self, const char *text,
                       const json_t *tree, pql_program **out, char **canon, pql_error *err,
                       pql_json_error *jerr, bool apply_thread)
{
    kith_engine *e = s->e;
    json_t *prof = NULL, *ev = NULL;
    if (!apply_thread) { /* another thread may allocate from a request arena (kith/jalloc.h):
                            nothing it makes may outlive the call */
        catalog_rdlock(e->cat);
        prof = union_of(e, sb, SCHEMA_CLASS_PROFILE);
        ev = union_of(e, sb, SCHEMA_CLASS_EVENT);
        catalog_unlock(e->cat);
        goto compile;
    }
    pthread_mutex_lock(&ucache_mu);
    catalog_rdlock(e->cat);
    uint64_t fp = 0x6a09e667f3bcc908ull;
    catalog_each_schema(e->cat, sb, fp_collect, &fp);
    struct union_cache *uc = NULL;
    for (size_t i = 0; i < nucache && !uc; i++)
        if (ucache[i].sb == sb) uc = &ucache[i];
    if (!uc) {
        ucache = kith_xrealloc(ucache, (nucache + 1) * sizeof *ucache);
        uc = &ucache[nucache++];
        memset(uc, 0, sizeof *uc);
        uc->sb = sb;
        uc->fp = ~fp;
    }
    if (uc->fp != fp) {
        json_decref(uc->prof);
        json_decref(uc->ev);
        uc->prof = union_of(e, sb, SCHEMA_CLASS_PROFILE);
        uc->ev = union_of(e, sb, SCHEMA_CLASS_EVENT);
        uc->fp = fp;
    }
    catalog_unlock(e->cat);
    ev = json_incref(uc->ev);
    if (uc->prof) { /* a copy of the two top levels: _computed goes into the copy */
        prof = json_copy(uc->prof);
        json_t *props = json_object_get(prof, "properties");
        if (json_is_object(props)) json_object_set_new(prof, "properties", json_copy(props));
    }
    pthread_mutex_unlock(&ucache_mu);
compile:
    ca_schema_augment(e, sb, prof); /* _computed.<name> (src/ca/) */
    struct mode_ctx mc = {s, sb, self};
    pql_env env = {
        .profile_schema = prof, .event_schema = ev, .segment_mode = segment_mode_cb, .arg = &mc};
    int rc = tree ? pql_compile_json(tree, &env, out, canon, jerr)
                  : pql_compile(text, strlen(text), &env, out, err);
    json_decref(prof);
    json_decref(ev);
    return rc;
}

static int compile_for(struct segsvc *s, uint32_t sb, const char *self, const char *text,
                       pql_program **out, pql_error *err)
{
    return compile_any(s, sb, self, text, NULL, out, NULL, err, NULL, false);
}

/* Any thread: compiles a pql/json tree as a definition of sandbox sb would be. */
int segsvc_compile_json(kith_engine *e, uint32_t sb, const json_t *tree, pql_program **out,
                        char **canon, pql_json_error *err)
{
    struct segsvc *s = svc_of(e);
    pthread_rwlock_rdlock(&s->lock);
    int rc = compile_any(s, sb, NULL, NULL, tree, out, canon, NULL, err, false);
    pthread_rwlock_unlock(&s->lock);
    return rc;
}

/* The canonical pql/json value (AEP writes the tree as a JSON string) of PQL text (owned), or
 * NULL when the text does not parse. */
static char *tree_string(const char *text)
{
    json_t *tree = NULL;
    if (pql_text_to_json(text, strlen(text), &tree, NULL)) return NULL;
    char *s = kith_json_dumps(tree, JSON_COMPACT);
    json_decref(tree);
    return s;
}

int segdef_expression_as(json_t *doc, const char *format)
{
    json_t *ex = json_object_get(doc, "expression");
    const char *cur = json_string_value(json_object_get(ex, "format"));
    const json_t *v = json_object_get(ex, "value");
    if (strcmp(format, "pql/text") != 0 && strcmp(format, "pql/json") != 0) return KITH_EINVAL;
    if (!cur || !strcmp(cur, format)) return 0;
    char *out = NULL;
    if (!strcmp(format, "pql/json")) {
        if (json_is_string(v)) out = tree_string(json_string_value(v));
    } else {
        pql_json_error je;
        json_t *tree = pql_json_value(v, &je);
        if (tree) pql_json_to_text(tree, &out, &je);
        json_decref(tree);
    }
    if (!out) return KITH_EINVAL;
    json_object_set_new(ex, "format", json_string(format));
    json_object_set_new(ex, "value", json_string(out));
    free(out);
    return 0;
}

/* Any thread: compiles text for sandbox sb against its union schemas and definitions (previews). */
int segsvc_compile(kith_engine *e, uint32_t sb, const char *text, pql_program **out, pql_error *err)
{
    struct segsvc *s = svc_of(e);
    pthread_rwlock_rdlock(&s->lock);
    int rc = compile_for(s, sb, NULL, text, out, err);
    pthread_rwlock_unlock(&s->lock);
    return rc;
}

/* --- store --- */

static void meta_key(store_key *k, uint32_t sb, const char *id)
{
    skey_init(k, sb);
    skey_u8(k, SEGDEF_META_KIND);
    skey_bytes(k, id, strlen(id));
}

static void cache_put(struct segsvc *s, segdef *d)
{
    pthread_rwlock_wrlock(&s->lock);
    segdef *old = svc_def_find(s, d->sb, d->id);
    if (old) {
        for (size_t i = 0; i < s->n; i++) {
            if (s->v[i] == old) {
                s->v[i] = d;
                break;
            }
        }
        id_index_remove(s, old);
        id_index_add(s, d);
        s->gen++;
        pthread_rwlock_unlock(&s->lock);
        def_free(old);
        return;
    }
    if (s->n == s->cap) {
        s->cap = s->cap ? s->cap * 2 : 32;
        s->v = kith_xrealloc(s->v, s->cap * sizeof *s->v);
    }
    id_index_add(s, d);
    s->v[s->n++] = d;
    s->gen++;
    pthread_rwlock_unlock(&s->lock);
}

static void add_err(json_t *errors, const char *path, const char *msg)
{
    json_array_append_new(errors, json_pack("{s:s, s:s}", "path", path, "message", msg));
}

static int fail(segdef_result *res, int status, json_t *errors, const char *what, const char *arg)
{
    res->status = status;
    snprintf(res->detail, sizeof res->detail, "%s%s%s%s", what, arg ? " \"" : "", arg ? arg : "",
             arg ? "\"" : "");
    res->errors = errors;
    return status == 404 ? KITH_ENOTFOUND : status == 409 ? KITH_ECONFLICT : KITH_EINVAL;
}

/* Everything kith derives from the program: evaluationInfo, dependencies. */
/* True when a definition's evaluationInfo asks for batch evaluation only (AEP: batch enabled,
 * continuous and synchronous not): kith then evaluates it by segment jobs only. */
static bool batch_requested(const json_t *doc)
{
    const json_t *ei = json_object_get(doc, "evaluationInfo");
    return json_is_true(json_object_get(json_object_get(ei, "batch"), "enabled")) &&
           !json_is_true(json_object_get(json_object_get(ei, "continuous"), "enabled")) &&
           !json_is_true(json_object_get(json_object_get(ei, "synchronous"), "enabled"));
}

static void derive(json_t *doc, const pql_program *p, bool want_batch)
{
    const pql_deps *d = pql_program_deps(p);
    int m = want_batch ? PQL_MODE_BATCH : d->mode;
    const char *reason = want_batch && d->mode != PQL_MODE_BATCH
                             ? "batch evaluation requested (evaluationInfo: batch only)"
                             : d->mode_reason;
    json_t *ei = json_pack("{s:{s:b}, s:{s:b}, s:{s:b}, s:s, s:s}", "batch", "enabled",
                           m == PQL_MODE_BATCH, "continuous", "enabled", m != PQL_MODE_BATCH,
                           "synchronous", "enabled", m == PQL_MODE_EDGE, "kith:mode", mode_name(m),
                           "kith:reason", reason ? reason : "");
    json_object_set_new(doc, "evaluationInfo", ei);
    json_t *deps = json_array();
    for (size_t i = 0; i < d->n_segments; i++)
        json_array_append_new(deps, json_string(d->segments[i]));
    json_object_set_new(doc, "dependencies", deps);
    json_object_set_new(doc, "kith:deps", pql_deps_json(p));
}

int segdef_put(kith_engine *e, store_batch *b, uint32_t sb, const char *id, const json_t *body,
               bool create, segdef_result *res)
{
    struct segsvc *s = svc_of(e);
    memset(res, 0, sizeof *res);
    json_t *errors = json_array();
    if (!json_is_object(body)) {
        add_err(errors, "", "expected a segment definition object");
        return fail(res, 400, errors, "the body is not a segment definition object", NULL);
    }
    segdef *cur = svc_def_find(s, sb, id);
    if (!create && !cur) {
        json_decref(errors);
        return fail(res, 404, NULL, "no segment definition", id);
    }
    if (create && cur) {
        json_decref(errors);
        return fail(res, 409, NULL, "a segment definition exists with the id", id);
    }
    const char *name = json_string_value(json_object_get(body, "name"));
    if (!name || !*name || strlen(name) > 512)
        add_err(errors, "/name", "a non-empty string (≤ 512)");
    const json_t *desc = json_object_get(body, "description");
    if (desc && !json_is_string(desc) && !json_is_null(desc))
        add_err(errors, "/description", "a string");
    const json_t *schema = json_object_get(body, "schema");
    const char *sname = json_string_value(json_object_get(schema, "name"));
    if (schema &&
        (!json_is_object(schema) || (sname && strcmp(sname, "_xdm.context.profile") != 0)))
        add_err(errors, "/schema/name", "\"_xdm.context.profile\" (segments are of profiles)");
    const json_t *ex = json_object_get(body, "expression");
    const char *etype = json_string_value(json_object_get(ex, "type"));
    const char *efmt = json_string_value(json_object_get(ex, "format"));
    const json_t *eval = json_object_get(ex, "value");
    char *text = NULL;
    json_t *tree = NULL;
    pql_json_error jerr = {.path = ""};
    if (!json_is_object(ex)) {
        add_err(errors, "/expression",
                "required: {\"type\": \"PQL\", \"format\": \"pql/text\", \"value\"}");
    } else if (!etype || strcmp(etype, "PQL") != 0) {
        add_err(errors, "/expression/type", "\"PQL\"");
    } else if (efmt && strcmp(efmt, "pql/json") == 0) {
        if (!(tree = pql_json_value(eval, &jerr))) add_err(errors, "/expression/value", jerr.message);
    } else if (efmt && strcmp(efmt, "pql/text") != 0) {
        add_err(errors, "/expression/format", "\"pql/text\" or \"pql/json\"");
    } else if (!json_is_string(eval) || json_string_length(eval) == 0) {
        add_err(errors, "/expression/value", "a non-empty PQL string");
    } else {
        text = kith_xstrdup(json_string_value(eval));
    }
    /* The merge policy the segment evaluates with (absent: the sandbox's default). */
    const json_t *mpj = json_object_get(body, "mergePolicyId");
    if (mpj && !json_is_null(mpj)) {
        merge_policy pol;
        int prc = json_is_string(mpj) && json_string_length(mpj) < sizeof((segdef *)0)->mpid
                      ? profile_policy_resolve(e, sb, json_string_value(mpj), &pol)
                      : KITH_ENOTFOUND;
        if (prc == 0) merge_policy_clear(&pol);
        if (prc == KITH_EINVAL)
            add_err(errors, "/mergePolicyId", "a merge policy of _xdm.context.profile");
        else if (prc)
            add_err(errors, "/mergePolicyId", "the id of a merge policy of this sandbox");
    }
    if (json_array_size(errors)) {
        free(text);
        json_decref(tree);
        return fail(res, 400, errors, "invalid segment definition", NULL);
    }
    char other[SEGDEF_ID_LEN + 1];
    if (segdef_find_name(e, sb, name, other) && strcmp(other, id) != 0) {
        free(text);
        json_decref(tree);
        add_err(errors, "/name", "unique in the sandbox");
        return fail(res, 409, errors, "a segment definition exists with the name", name);
    }
    pql_program *prog = NULL;
    pql_error perr = {0};
    int rc = compile_any(s, sb, id, text, tree, &prog, &text, &perr, &jerr, true);
    bool is_json = tree != NULL;
    json_decref(tree);
    if (rc && is_json) {
        char path[300], msg[600];
        snprintf(path, sizeof path, "/expression/value%s", jerr.path);
        snprintf(msg, sizeof msg, "%s: %s", path, jerr.message);
        add_err(errors, path, jerr.message);
        return fail(res, 400, errors, "the expression does not compile:", msg);
    }
    if (rc) {
        char msg[400];
        snprintf(msg, sizeof msg, "line %d, column %d: %s", perr.line, perr.column, perr.message);
        json_array_append_new(errors,
                              json_pack("{s:s, s:s, s:i, s:i}", "path", "/expression/value",
                                        "message", msg, "line", perr.line, "column", perr.column));
        free(text);
        return fail(res, 400, errors, "the expression does not compile:", msg);
    }
    json_decref(errors);
    int64_t now = kith_now_ms();
    json_t *doc = json_object();
    json_object_set_new(doc, "id", json_string(id));
    json_object_set_new(doc, "name", json_string(name));
    json_object_set_new(doc, "description",
                        json_string(json_string_value(desc) ? json_string_value(desc) : ""));
    json_object_set_new(doc, "schema", json_pack("{s:s}", "name", "_xdm.context.profile"));
    json_object_set_new(doc, "profileInstanceId", json_string("ups"));
    char *stored = is_json ? tree_string(text) : NULL; /* pql/json: stored as the canonical tree */
    json_object_set_new(doc, "expression",
                        json_pack("{s:s, s:s, s:s}", "type", "PQL", "format",
                                  stored ? "pql/json" : "pql/text", "value", stored ? stored : text));
    free(stored);
    char *compiled_text = text; /* kept with the program (svc_def_text) */
    const char *mp = json_string_value(json_object_get(body, "mergePolicyId"));
    if (mp) json_object_set_new(doc, "mergePolicyId", json_string(mp));
    const json_t *ttl = json_object_get(body, "ttlInDays");
    if (json_is_integer(ttl)) json_object_set(doc, "ttlInDays", (json_t *)ttl);
    const json_t *dgp = json_object_get(body, "dataGovernancePolicy");
    json_object_set_new(doc, "dataGovernancePolicy",
                        json_is_object(dgp) ? json_deep_copy(dgp)
                                            : json_pack("{s:b}", "excludeOptOut", 1));
    catalog_rdlock(e->cat);
    const cat_sandbox *sbx = catalog_sandbox_by_id(e->cat, sb);
    json_object_set_new(doc, "sandbox",
                        json_pack("{s:s, s:s}", "sandboxName", sbx ? sbx->name : "", "sandboxId",
                                  sbx ? sbx->name : ""));
    catalog_unlock(e->cat);
    int64_t created = cur ? cur->created : now;
    int64_t version = cur ? json_integer_value(json_object_get(cur->doc, "version")) + 1 : 1;
    json_object_set_new(doc, "creationTime", json_integer(created));
    json_object_set_new(doc, "updateTime", json_integer(now));
    json_object_set_new(doc, "updateEpoch", json_integer(now / 1000));
    json_object_set_new(doc, "version", json_integer(version));
    json_object_set_new(doc, "type", json_string("SegmentDefinition"));
    bool want_batch = batch_requested(body);
    derive(doc, prog, want_batch);
    /* A new expression is evaluated over the existing profiles by a backfill job; the definition
     * names its latest one. */
    const char *old_text = cur ? cur->text : NULL; /* compiled texts: the format does not matter */
    char job[SEGDEF_ID_LEN + 1] = "";
    if (!old_text || strcmp(old_text, compiled_text) != 0) svc_jobs_backfill(s, sb, id, job);
    const char *prev_job = cur ? json_string_value(json_object_get(cur->doc, "kith:backfillJobId")) : NULL;
    if (job[0] || prev_job)
        json_object_set_new(doc, "kith:backfillJobId", json_string(job[0] ? job : prev_job));
    int64_t batch_eval = !job[0] && cur ? cur->batch_eval : 0; /* same expression: still evaluated */
    if (batch_eval) json_object_set_new(doc, "kith:lastBatchEvaluation", json_integer(batch_eval));
    char *ser = kith_json_dumps(doc, JSON_COMPACT);
    store_key k;
    meta_key(&k, sb, id);
    store_batch_put(b, STORE_CF_META, k.b, k.n, ser, strlen(ser));
    free(ser);
    segdef *d = kith_xcalloc(1, sizeof *d);
    d->sb = sb;
    snprintf(d->id, sizeof d->id, "%s", id);
    d->doc = json_incref(doc);
    d->name = json_string_value(json_object_get(doc, "name"))
                  ? kith_xstrdup(json_string_value(json_object_get(doc, "name")))
                  : NULL;
    d->prog = prog;
    d->text = compiled_text;
    d->mode = want_batch ? PQL_MODE_BATCH : pql_program_deps(prog)->mode;
    d->created = created;
    d->active_since = now;
    snprintf(d->mpid, sizeof d->mpid, "%s", mp ? mp : "");
    d->batch_eval = batch_eval;
    cache_put(s, d);
    res->status = create ? 201 : 200;
    res->doc = doc;
    return 0;
}

int segdef_delete(kith_engine *e, store_batch *b, uint32_t sb, const char *id, char *detail,
                  size_t cap)
{
    struct segsvc *s = svc_of(e);
    segdef *d = svc_def_find(s, sb, id);
    if (!d) return KITH_ENOTFOUND;
    for (size_t i = 0; i < s->n; i++) {
        segdef *o = s->v[i];
        if (o->sb != sb || o == d || !o->prog) continue;
        const pql_deps *dp = pql_program_deps(o->prog);
        for (size_t j = 0; j < dp->n_segments; j++) {
            if (strcmp(dp->segments[j], id) == 0) {
                snprintf(detail, cap, "segment definition \"%s\" uses it (inSegment)", o->id);
                return KITH_ECONFLICT;
            }
        }
    }
    store_key k;
    meta_key(&k, sb, id);
    store_batch_delete(b, STORE_CF_META, k.b, k.n);
    svc_membership_drop_segment(e, b, sb, id);
    pthread_rwlock_wrlock(&s->lock);
    for (size_t i = 0; i < s->n; i++) {
        if (s->v[i] == d) {
            id_index_remove(s, d);
            memmove(&s->v[i], &s->v[i + 1], (s->n - i - 1) * sizeof *s->v);
            s->n--;
            s->gen++;
            break;
        }
    }
    pthread_rwlock_unlock(&s->lock);
    def_free(d);
    return 0;
}

json_t *segdef_get(kith_engine *e, uint32_t sb, const char *id)
{
    struct segsvc *s = svc_of(e);
    pthread_rwlock_rdlock(&s->lock);
    segdef *d = svc_def_find(s, sb, id);
    json_t *doc = d ? json_deep_copy(d->doc) : NULL;
    pthread_rwlock_unlock(&s->lock);
    return doc;
}

json_t *segdef_list(kith_engine *e, uint32_t sb)
{
    struct segsvc *s = svc_of(e);
    json_t *arr = json_array();
    pthread_rwlock_rdlock(&s->lock);
    for (size_t i = 0; i < s->n; i++)
        if (s->v[i]->sb == sb) json_array_append_new(arr, json_deep_copy(s->v[i]->doc));
    pthread_rwlock_unlock(&s->lock);
    return arr;
}

bool segdef_find_name(kith_engine *e, uint32_t sb, const char *name, char *out)
{
    struct segsvc *s = svc_of(e);
    bool found = false;
    pthread_rwlock_rdlock(&s->lock);
    for (segdef *d = s->idh_cap ? s->nameh[id_bucket(s, sb, name)] : NULL; d && !found;
         d = d->name_next) {
        if (d->sb == sb && d->name && strcmp(d->name, name) == 0) {
            snprintf(out, SEGDEF_ID_LEN + 1, "%s", d->id);
            found = true;
        }
    }
    pthread_rwlock_unlock(&s->lock);
    return found;
}

/* --- load --- */

static int by_created(const void *a, const void *b)
{
    const segdef *x = *(segdef *const *)a, *y = *(segdef *const *)b;
    if (x->created != y->created) return x->created < y->created ? -1 : 1;
    return strcmp(x->id, y->id);
}

/* Loads every stored definition and compiles them in creation order (a segment only refers to
 * older ones). A definition that no longer compiles is kept without a program (not evaluated). */
int svc_defs_load(struct segsvc *s)
{
    store_iter *it = store_iter_new(s->e->store, NULL, STORE_CF_META, "", 0);
    for (; store_iter_valid(it); store_iter_next(it)) {
        size_t kl, vl;
        const uint8_t *k = store_iter_key(it, &kl);
        if (kl != 5 + SEGDEF_ID_LEN || k[4] != SEGDEF_META_KIND) continue;
        const uint8_t *v = store_iter_value(it, &vl);
        json_t *doc = json_loadb((const char *)v, vl, 0, NULL);
        if (!doc) continue;
        segdef *d = kith_xcalloc(1, sizeof *d);
        d->sb = kith_get_be32(k);
        memcpy(d->id, k + 5, SEGDEF_ID_LEN);
        d->doc = doc;
        d->name = json_string_value(json_object_get(doc, "name"))
                      ? kith_xstrdup(json_string_value(json_object_get(doc, "name")))
                      : NULL;
        d->created = json_integer_value(json_object_get(doc, "creationTime"));
        d->active_since = json_integer_value(json_object_get(doc, "updateTime"));
        d->batch_eval = json_integer_value(json_object_get(doc, "kith:lastBatchEvaluation"));
        snprintf(d->mpid, sizeof d->mpid, "%s",
                 json_string_value(json_object_get(doc, "mergePolicyId")) ?: "");
        d->mode = PQL_MODE_BATCH;
        if (s->n == s->cap) {
            s->cap = s->cap ? s->cap * 2 : 32;
            s->v = kith_xrealloc(s->v, s->cap * sizeof *s->v);
        }
        id_index_add(s, d);
        s->v[s->n++] = d;
    }
    store_iter_free(it);
    if (s->n > 1) qsort(s->v, s->n, sizeof *s->v, by_created);
    s->gen++;
    for (size_t i = 0; i < s->n; i++) {
        segdef *d = s->v[i];
        const json_t *ex = json_object_get(d->doc, "expression");
        const char *text = json_string_value(json_object_get(ex, "value"));
        const char *fmt = json_string_value(json_object_get(ex, "format"));
        pql_error err = {0};
        pql_json_error jerr = {.path = ""};
        json_t *tree = NULL;
        if (text && fmt && !strcmp(fmt, "pql/json") &&
            !(tree = pql_json_value(json_object_get(ex, "value"), &jerr)))
            text = NULL;
        char *canon = NULL;
        if (text && compile_any(s, d->sb, d->id, text, tree, &d->prog, &canon, &err, &jerr, true) == 0) {
            d->mode = batch_requested(d->doc) ? PQL_MODE_BATCH : pql_program_deps(d->prog)->mode;
            d->text = tree ? canon : kith_xstrdup(text);
            canon = NULL;
        } else
            kith_log(KITH_LOG_WARN, "segment", "definition %s no longer compiles: %s", d->id,
                     !text ? "no expression" : tree ? jerr.message : err.message);
        free(canon);
        json_decref(tree);
    }
    return 0;
}

int svc_status_shown(struct segsvc *s, uint32_t sb, const char *seg, int status, int64_t lqt)
{
    if (status != SEG_REALIZED) return status;
    pthread_rwlock_rdlock(&s->lock);
    const segdef *d = NULL;
    for (size_t i = 0; i < s->n && !d; i++)
        if (s->v[i]->sb == sb && memcmp(s->v[i]->id, seg, SEGDEF_ID_LEN) == 0) d = s->v[i];
    if (d && d->mode == PQL_MODE_BATCH && lqt < d->batch_eval) status = SEG_EXISTING;
    pthread_rwlock_unlock(&s->lock);
    return status;
}

void svc_def_mark_evaluated(struct segsvc *s, store_batch *b, segdef *d, int64_t now)
{
    json_t *doc = json_deep_copy(d->doc);
    json_object_set_new(doc, "kith:lastBatchEvaluation", json_integer(now));
    char *ser = kith_json_dumps(doc, JSON_COMPACT);
    store_key k;
    meta_key(&k, d->sb, d->id);
    store_batch_put(b, STORE_CF_META, k.b, k.n, ser, strlen(ser));
    free(ser);
    pthread_rwlock_wrlock(&s->lock);
    json_t *old = d->doc;
    d->doc = doc;
    d->batch_eval = now;
    pthread_rwlock_unlock(&s->lock);
    json_decref(old);
}

void segsvc_policy_changed(kith_engine *e, uint32_t sb, const char *policy_id, bool policy_changed,
                           bool default_changed)
{
    struct segsvc *s = svc_of(e);
    if (!s || (!policy_changed && !default_changed)) return;
    char job[SEGDEF_ID_LEN + 1];
    for (size_t i = 0; i < s->n; i++) {
        segdef *d = s->v[i];
        if (d->sb != sb || !d->prog) continue;
        bool affected;
        if (d->mpid[0] && strcmp(d->mpid, policy_id) == 0) {
            affected = policy_changed;
        } else if (!d->mpid[0]) {
            affected = default_changed;
        } else { /* names another policy: affected only when that one is gone (the default then) */
            merge_policy p;
            int rc = profile_policy_resolve(e, sb, d->mpid, &p);
            if (rc == 0) merge_policy_clear(&p);
            affected = rc != 0 && default_changed;
        }
        if (affected) svc_jobs_backfill(s, sb, d->id, job);
    }
}
