/* kith merge policies: validation, the meta-CF store and the in-memory cache (see mergepolicy.h).
 */
#include "mergepolicy.h"

#include <ctype.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "kith/jalloc.h"

#define META_KIND 'm'
#define HIST_KIND 'V' /* meta [sb]['V'][id][0][version u64] → that version's document */

typedef struct mp_entry {
    uint32_t sb;
    char id[MPOLICY_ID_MAX + 1];
    json_t *doc; /* owned */
} mp_entry;

struct mpolicy_cache {
    pthread_rwlock_t lock;
    mp_entry *v;
    size_t n, cap;
};

static pthread_mutex_t load_mutex = PTHREAD_MUTEX_INITIALIZER;

static void cache_add(struct mpolicy_cache *c, uint32_t sb, const char *id, json_t *doc)
{
    if (c->n == c->cap) {
        c->cap = c->cap ? c->cap * 2 : 16;
        c->v = kith_xrealloc(c->v, c->cap * sizeof *c->v);
    }
    mp_entry *m = &c->v[c->n++];
    m->sb = sb;
    snprintf(m->id, sizeof m->id, "%s", id);
    m->doc = doc;
}

/* The cache, loaded from the meta column family on first use by any thread. */
static struct mpolicy_cache *cache_get(kith_engine *e)
{
    struct mpolicy_cache *c = atomic_load(&e->mpol);
    if (c) return c;
    pthread_mutex_lock(&load_mutex);
    c = atomic_load(&e->mpol);
    if (!c) {
        c = kith_xcalloc(1, sizeof *c);
        pthread_rwlock_init(&c->lock, NULL);
        store_iter *it = store_iter_new(e->store, NULL, STORE_CF_META, "", 0);
        for (; store_iter_valid(it); store_iter_next(it)) {
            size_t kl, vl;
            const uint8_t *k = store_iter_key(it, &kl);
            if (kl < 6 || k[4] != META_KIND || kl - 5 > MPOLICY_ID_MAX) continue;
            const uint8_t *v = store_iter_value(it, &vl);
            json_t *doc = json_loadb((const char *)v, vl, 0, NULL);
            if (!doc) continue;
            char id[MPOLICY_ID_MAX + 1];
            memcpy(id, k + 5, kl - 5);
            id[kl - 5] = 0;
            cache_add(c, kith_get_be32(k), id, doc);
        }
        store_iter_free(it);
        atomic_store(&e->mpol, c);
    }
    pthread_mutex_unlock(&load_mutex);
    return c;
}

void mpolicy_cache_free(kith_engine *e)
{
    struct mpolicy_cache *c = atomic_load(&e->mpol);
    if (!c) return;
    for (size_t i = 0; i < c->n; i++)
        json_decref(c->v[i].doc);
    free(c->v);
    pthread_rwlock_destroy(&c->lock);
    free(c);
    atomic_store(&e->mpol, NULL);
}

static mp_entry *cache_find(struct mpolicy_cache *c, uint32_t sb, const char *id)
{
    for (size_t i = 0; i < c->n; i++)
        if (c->v[i].sb == sb && strcmp(c->v[i].id, id) == 0) return &c->v[i];
    return NULL;
}

static const char *doc_str(const json_t *doc, const char *obj, const char *key)
{
    return json_string_value(json_object_get(obj ? json_object_get(doc, obj) : doc, key));
}

/* --- validation --- */

static void add_err(json_t *errors, const char *path, const char *msg)
{
    json_array_append_new(errors, json_pack("{s:s, s:s}", "path", path, "message", msg));
}

/* true/false, or the strings "true"/"false" (AEP's PATCH example sends "true"). */
static int parse_bool(const json_t *v, bool *out)
{
    if (json_is_boolean(v)) {
        *out = json_is_true(v);
        return 0;
    }
    const char *s = json_string_value(v);
    if (s && strcasecmp(s, "true") == 0)
        *out = true;
    else if (s && strcasecmp(s, "false") == 0)
        *out = false;
    else
        return -1;
    return 0;
}

static bool class_name_ok(const char *s)
{
    size_t n = strlen(s);
    if (n == 0 || n > 200) return false;
    for (const char *p = s; *p; p++)
        if (!isalnum((unsigned char)*p) && *p != '_' && *p != '.' && *p != '-') return false;
    return true;
}

int mpolicy_validate(kith_engine *e, uint32_t sandbox, const json_t *body, json_t **out,
                     json_t **errors_out, char *detail, size_t cap)
{
    json_t *errors = json_array();
    json_t *o = json_object();
    *out = NULL;
    *errors_out = NULL;
    if (!json_is_object(body)) {
        add_err(errors, "", "expected a merge policy object");
        goto done;
    }
    const json_t *name = json_object_get(body, "name");
    if (!json_is_string(name) || json_string_length(name) == 0 || json_string_length(name) > 256)
        add_err(errors, "/name", "required: a string of 1 to 256 characters");
    else
        json_object_set_new(o, "name", json_string(json_string_value(name)));

    const char *cls = doc_str(body, "schema", "name");
    if (!cls || !class_name_ok(cls))
        add_err(errors, "/schema/name",
                "required: the class the policy applies to, e.g. \"_xdm.context.profile\"");
    else
        json_object_set_new(o, "schema", json_pack("{s:s}", "name", cls));

    const char *graph = doc_str(body, "identityGraph", "type");
    if (!graph || (strcasecmp(graph, "none") != 0 && strcasecmp(graph, "pdg") != 0))
        add_err(errors, "/identityGraph/type", "required: \"pdg\" or \"none\"");
    else
        json_object_set_new(
            o, "identityGraph",
            json_pack("{s:s}", "type", strcasecmp(graph, "none") == 0 ? "none" : "pdg"));

    const json_t *am = json_object_get(body, "attributeMerge");
    const char *type = doc_str(body, "attributeMerge", "type");
    if (!type ||
        (strcasecmp(type, "timestampOrdered") != 0 && strcasecmp(type, "dataSetPrecedence") != 0)) {
        add_err(errors, "/attributeMerge/type",
                "required: \"timestampOrdered\" or \"dataSetPrecedence\"");
    } else if (strcasecmp(type, "timestampOrdered") == 0) {
        json_object_set_new(o, "attributeMerge", json_pack("{s:s}", "type", "timestampOrdered"));
    } else {
        const json_t *order = json_object_get(am, "order");
        size_t n = json_array_size(order);
        if (!json_is_array(order) || n == 0 || n > 100) {
            add_err(errors, "/attributeMerge/order",
                    "dataSetPrecedence needs an order: an array of 1 to 100 dataset ids");
        } else {
            json_t *ids = json_array();
            size_t before = json_array_size(errors);
            catalog_rdlock(e->cat);
            for (size_t i = 0; i < n; i++) {
                const char *ds = json_string_value(json_array_get(order, i));
                char path[64], msg[160];
                snprintf(path, sizeof path, "/attributeMerge/order/%zu", i);
                if (!ds) {
                    add_err(errors, path, "a dataset id (string)");
                    continue;
                }
                if (!catalog_dataset(e->cat, sandbox, ds)) {
                    snprintf(msg, sizeof msg, "unknown dataset \"%.60s\" in this sandbox", ds);
                    add_err(errors, path, msg);
                    continue;
                }
                for (size_t j = 0; j < i; j++)
                    if (json_equal(json_array_get(order, j), json_array_get(order, i))) {
                        snprintf(msg, sizeof msg, "dataset \"%.60s\" is listed twice", ds);
                        add_err(errors, path, msg);
                    }
                json_array_append_new(ids, json_string(ds));
            }
            catalog_unlock(e->cat);
            if (json_array_size(errors) == before)
                json_object_set_new(
                    o, "attributeMerge",
                    json_pack("{s:s, s:o}", "type", "dataSetPrecedence", "order", ids));
            else
                json_decref(ids);
        }
    }
    bool b = false;
    const json_t *v = json_object_get(body, "default");
    if (v && parse_bool(v, &b) != 0) add_err(errors, "/default", "a boolean");
    json_object_set_new(o, "default", json_boolean(b));
    b = false;
    v = json_object_get(body, "isActiveOnEdge");
    if (v && parse_bool(v, &b) != 0) add_err(errors, "/isActiveOnEdge", "a boolean");
    json_object_set_new(o, "isActiveOnEdge", json_boolean(b));
done:
    if (json_array_size(errors) == 0) {
        json_decref(errors);
        *out = o;
        return 0;
    }
    const json_t *first = json_array_get(errors, 0);
    snprintf(detail, cap, "invalid merge policy: %s: %s", doc_str(first, NULL, "path"),
             doc_str(first, NULL, "message"));
    json_decref(o);
    *errors_out = errors;
    return KITH_EINVAL;
}

/* --- apply thread --- */

/* The signature the sandbox's views are materialised under (profile_materialised_policy). */
static uint64_t materialised_sig(kith_engine *e, uint32_t sb)
{
    merge_policy mp;
    profile_materialised_policy(e, sb, &mp);
    uint64_t sig = merge_policy_signature(&mp);
    merge_policy_clear(&mp);
    return sig;
}

/* After a change of the sandbox's policies: re-materialise its views when their policy changed. */
static void remat_if_changed(kith_engine *e, store_batch *b, uint32_t sb, uint64_t before)
{
    if (materialised_sig(e, sb) != before) profile_remat_request(e, b, sb);
}

static void hist_key(store_key *k, uint32_t sb, const char *id, int64_t version)
{
    skey_init(k, sb);
    skey_u8(k, HIST_KIND);
    skey_bytes(k, id, strlen(id));
    skey_u8(k, 0);
    if (version > 0) skey_u64(k, (uint64_t)version);
}

/* Writes doc as the current policy id and as its version in the history; NULL deletes the policy
 * and every version of it. */
static void meta_write(kith_engine *e, store_batch *b, uint32_t sb, const char *id,
                       const json_t *doc)
{
    store_key k;
    skey_init(&k, sb);
    skey_u8(&k, META_KIND);
    skey_bytes(&k, id, strlen(id));
    store_key h;
    if (!doc) {
        store_batch_delete(b, STORE_CF_META, k.b, k.n);
        hist_key(&h, sb, id, 0);
        store_iter *it = store_iter_new(e->store, b, STORE_CF_META, h.b, h.n);
        for (; store_iter_valid(it); store_iter_next(it)) {
            size_t kl;
            const uint8_t *key = store_iter_key(it, &kl);
            if (kl == h.n + 8) store_batch_delete(b, STORE_CF_META, key, kl);
        }
        store_iter_free(it);
        return;
    }
    char *s = kith_json_dumps(doc, JSON_COMPACT);
    store_batch_put(b, STORE_CF_META, k.b, k.n, s, strlen(s));
    hist_key(&h, sb, id, json_integer_value(json_object_get(doc, "version")));
    store_batch_put(b, STORE_CF_META, h.b, h.n, s, strlen(s));
    free(s);
}

/* Takes a flag (default, isActiveOnEdge) from the other policies of the sandbox that hold it
 * (same class only for default). */
static void take_flag(kith_engine *e, struct mpolicy_cache *c, store_batch *b, uint32_t sb,
                      const char *id, const char *flag, const char *cls, json_int_t now_s)
{
    for (size_t i = 0; i < c->n; i++) {
        mp_entry *m = &c->v[i];
        if (m->sb != sb || strcmp(m->id, id) == 0) continue;
        if (!json_is_true(json_object_get(m->doc, flag))) continue;
        const char *mcls = doc_str(m->doc, "schema", "name");
        if (cls && (!mcls || strcmp(mcls, cls) != 0)) continue;
        json_t *doc = json_deep_copy(m->doc);
        json_object_set_new(doc, flag, json_false());
        json_object_set_new(doc, "version",
                            json_integer(json_integer_value(json_object_get(doc, "version")) + 1));
        json_object_set_new(doc, "updateEpoch", json_integer(now_s));
        meta_write(e, b, sb, m->id, doc);
        json_decref(m->doc);
        m->doc = doc;
    }
}

int mpolicy_store(kith_engine *e, store_batch *b, uint32_t sandbox, const char *id,
                  const json_t *fields, int64_t expect_version, json_t **stored)
{
    struct mpolicy_cache *c = cache_get(e);
    json_t *sbdoc = NULL;
    char sbname[KITH_SANDBOX_NAME_MAX + 1] = "";
    catalog_rdlock(e->cat);
    const cat_sandbox *s = catalog_sandbox_by_id(e->cat, sandbox);
    if (s) {
        snprintf(sbname, sizeof sbname, "%s", s->name);
        const char *type = json_string_value(json_object_get(s->doc, "type"));
        sbdoc = json_pack("{s:I, s:s, s:s, s:b}", "sandboxId", (json_int_t)sandbox, "sandboxName",
                          sbname, "type", type ? type : "development", "default",
                          strcmp(sbname, "prod") == 0);
    }
    catalog_unlock(e->cat);
    if (!sbdoc) return KITH_ENOTFOUND;
    uint64_t before = materialised_sig(e, sandbox);
    pthread_rwlock_wrlock(&c->lock);
    int rc = 0;
    mp_entry *cur = cache_find(c, sandbox, id);
    int64_t version = 1;
    if (expect_version == 0) {
        size_t count = 0;
        for (size_t i = 0; i < c->n; i++)
            count += c->v[i].sb == sandbox;
        if (cur)
            rc = KITH_ECONFLICT;
        else if (count >= MPOLICY_MAX_PER_SANDBOX)
            rc = KITH_EUNPROC;
    } else if (!cur) {
        rc = KITH_ENOTFOUND;
    } else {
        int64_t have = json_integer_value(json_object_get(cur->doc, "version"));
        if (have != expect_version) rc = KITH_ECONFLICT;
        version = have + 1;
    }
    if (rc) {
        pthread_rwlock_unlock(&c->lock);
        json_decref(sbdoc);
        return rc;
    }
    json_int_t now_s = (json_int_t)(kith_now_ms() / 1000);
    json_t *doc =
        json_pack("{s:s, s:O, s:s, s:o, s:O, s:I, s:O, s:O, s:O, s:O, s:I}", "id", id, "name",
                  json_object_get(fields, "name"), "imsOrgId", "kith@AdobeOrg", "sandbox", sbdoc,
                  "schema", json_object_get(fields, "schema"), "version", (json_int_t)version,
                  "identityGraph", json_object_get(fields, "identityGraph"), "attributeMerge",
                  json_object_get(fields, "attributeMerge"), "isActiveOnEdge",
                  json_object_get(fields, "isActiveOnEdge"), "default",
                  json_object_get(fields, "default"), "updateEpoch", now_s);
    if (json_is_true(json_object_get(doc, "default")))
        take_flag(e, c, b, sandbox, id, "default", doc_str(doc, "schema", "name"), now_s);
    if (json_is_true(json_object_get(doc, "isActiveOnEdge")))
        take_flag(e, c, b, sandbox, id, "isActiveOnEdge", NULL, now_s);
    meta_write(e, b, sandbox, id, doc);
    cur = cache_find(c, sandbox, id); /* take_flag does not move entries, but be plain about it */
    if (cur) {
        json_decref(cur->doc);
        cur->doc = doc;
    } else {
        cache_add(c, sandbox, id, doc);
    }
    *stored = json_deep_copy(doc);
    pthread_rwlock_unlock(&c->lock);
    remat_if_changed(e, b, sandbox, before);
    return 0;
}

int mpolicy_delete(kith_engine *e, store_batch *b, uint32_t sandbox, const char *id)
{
    struct mpolicy_cache *c = cache_get(e);
    uint64_t before = materialised_sig(e, sandbox);
    pthread_rwlock_wrlock(&c->lock);
    mp_entry *cur = cache_find(c, sandbox, id);
    if (!cur) {
        pthread_rwlock_unlock(&c->lock);
        return KITH_ENOTFOUND;
    }
    meta_write(e, b, sandbox, id, NULL);
    json_decref(cur->doc);
    *cur = c->v[--c->n];
    pthread_rwlock_unlock(&c->lock);
    remat_if_changed(e, b, sandbox, before);
    return 0;
}

int mpolicy_prune_dataset(kith_engine *e, store_batch *b, uint32_t sandbox, const char *dataset)
{
    struct mpolicy_cache *c = cache_get(e);
    json_int_t now_s = (json_int_t)(kith_now_ms() / 1000);
    int n = 0;
    uint64_t before = materialised_sig(e, sandbox);
    pthread_rwlock_wrlock(&c->lock);
    for (size_t i = 0; i < c->n; i++) {
        mp_entry *m = &c->v[i];
        if (m->sb != sandbox) continue;
        const json_t *order = json_object_get(json_object_get(m->doc, "attributeMerge"), "order");
        size_t j, at = SIZE_MAX;
        const json_t *v;
        json_array_foreach(order, j, v) if (json_is_string(v) && !strcmp(json_string_value(v), dataset)) at = j;
        if (at == SIZE_MAX) continue;
        json_t *doc = json_deep_copy(m->doc);
        json_array_remove(json_object_get(json_object_get(doc, "attributeMerge"), "order"), at);
        json_object_set_new(doc, "version",
                            json_integer(json_integer_value(json_object_get(doc, "version")) + 1));
        json_object_set_new(doc, "updateEpoch", json_integer(now_s));
        meta_write(e, b, sandbox, m->id, doc);
        json_decref(m->doc);
        m->doc = doc;
        n++;
    }
    pthread_rwlock_unlock(&c->lock);
    if (n) remat_if_changed(e, b, sandbox, before);
    return n;
}

/* --- reads --- */

bool mpolicy_is_builtin(const char *id)
{
    return id && strcmp(id, MPOLICY_BUILTIN_ID) == 0;
}

/* The built-in policy of a sandbox (owned): timestampOrdered, identity graph none, never the
 * default, read-only, version 1 (aep-spec 3.3: export jobs name it). */
static json_t *builtin_doc(kith_engine *e, uint32_t sandbox)
{
    char sbname[KITH_SANDBOX_NAME_MAX + 1] = "";
    const char *type = "development";
    catalog_rdlock(e->cat);
    const cat_sandbox *s = catalog_sandbox_by_id(e->cat, sandbox);
    if (s) {
        snprintf(sbname, sizeof sbname, "%s", s->name);
        if (json_string_value(json_object_get(s->doc, "type")))
            type = strcmp(json_string_value(json_object_get(s->doc, "type")), "production") == 0
                       ? "production"
                       : "development";
    }
    catalog_unlock(e->cat);
    if (!s) return NULL;
    return json_pack("{s:s, s:s, s:s, s:{s:I, s:s, s:s, s:b}, s:{s:s}, s:i, s:{s:s}, s:{s:s}, "
                     "s:b, s:b, s:i, s:b}",
                     "id", MPOLICY_BUILTIN_ID, "name", MPOLICY_BUILTIN_ID, "imsOrgId",
                     "kith@AdobeOrg", "sandbox", "sandboxId", (json_int_t)sandbox, "sandboxName",
                     sbname, "type", type, "default", strcmp(sbname, "prod") == 0, "schema",
                     "name", MPOLICY_PROFILE_CLASS, "version", 1, "identityGraph", "type", "none",
                     "attributeMerge", "type", "timestampOrdered", "isActiveOnEdge", 0, "default",
                     0, "updateEpoch", 0, "kith:builtIn", 1);
}

json_t *mpolicy_get(kith_engine *e, uint32_t sandbox, const char *id)
{
    struct mpolicy_cache *c = cache_get(e);
    pthread_rwlock_rdlock(&c->lock);
    mp_entry *m = cache_find(c, sandbox, id);
    json_t *out = m ? json_deep_copy(m->doc) : NULL;
    pthread_rwlock_unlock(&c->lock);
    if (!out && mpolicy_is_builtin(id)) out = builtin_doc(e, sandbox);
    return out;
}

json_t *mpolicy_get_version(kith_engine *e, uint32_t sandbox, const char *id, int64_t version)
{
    json_t *cur = mpolicy_get(e, sandbox, id);
    if (!cur) return NULL;
    if (json_integer_value(json_object_get(cur, "version")) == version) return cur;
    json_decref(cur);
    store_key h;
    hist_key(&h, sandbox, id, version);
    kith_buf v = {0};
    json_t *doc = NULL;
    if (version > 0 && store_get(e->store, STORE_CF_META, h.b, h.n, &v) == 0)
        doc = json_loadb(v.data, v.len, 0, NULL);
    kith_buf_free(&v);
    return doc;
}

static int by_name(const void *a, const void *b)
{
    const json_t *x = *(json_t *const *)a, *y = *(json_t *const *)b;
    int c = strcmp(doc_str(x, NULL, "name"), doc_str(y, NULL, "name"));
    return c ? c : strcmp(doc_str(x, NULL, "id"), doc_str(y, NULL, "id"));
}

json_t *mpolicy_list(kith_engine *e, uint32_t sandbox)
{
    struct mpolicy_cache *c = cache_get(e);
    pthread_rwlock_rdlock(&c->lock);
    json_t **v = kith_xcalloc(c->n + 1, sizeof *v);
    size_t n = 0;
    bool builtin_stored = false;
    for (size_t i = 0; i < c->n; i++)
        if (c->v[i].sb == sandbox) {
            v[n++] = json_deep_copy(c->v[i].doc);
            builtin_stored = builtin_stored || mpolicy_is_builtin(c->v[i].id);
        }
    pthread_rwlock_unlock(&c->lock);
    if (!builtin_stored) {
        v = kith_xrealloc(v, (n + 2) * sizeof *v);
        if ((v[n] = builtin_doc(e, sandbox))) n++;
    }
    if (n > 1) qsort(v, n, sizeof *v, by_name);
    json_t *arr = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(arr, v[i]);
    free(v);
    return arr;
}

void merge_policy_clear(merge_policy *p)
{
    free(p->order);
    p->order = NULL;
    p->norder = 0;
}

/* Reads the policy fields of a stored document into p. */
static void policy_from_doc(const json_t *doc, merge_policy *p)
{
    snprintf(p->id, sizeof p->id, "%s", doc_str(doc, NULL, "id"));
    const char *g = doc_str(doc, "identityGraph", "type");
    p->graph = g && strcmp(g, "none") == 0 ? MP_GRAPH_NONE : MP_GRAPH_PDG;
    const char *t = doc_str(doc, "attributeMerge", "type");
    p->attr =
        t && strcmp(t, "dataSetPrecedence") == 0 ? MP_DATASET_PRECEDENCE : MP_TIMESTAMP_ORDERED;
    if (p->attr == MP_DATASET_PRECEDENCE) {
        const json_t *order = json_object_get(json_object_get(doc, "attributeMerge"), "order");
        p->norder = json_array_size(order);
        p->order = kith_xcalloc(p->norder + 1, sizeof *p->order);
        for (size_t i = 0; i < p->norder; i++)
            snprintf(p->order[i], sizeof p->order[i], "%s",
                     json_string_value(json_array_get(order, i)) ?: "");
    }
}

int profile_policy_resolve(kith_engine *e, uint32_t sandbox, const char *id, merge_policy *out)
{
    memset(out, 0, sizeof *out);
    struct mpolicy_cache *c = cache_get(e);
    int rc = 0;
    pthread_rwlock_rdlock(&c->lock);
    const mp_entry *m = NULL;
    if (id && *id) {
        m = cache_find(c, sandbox, id);
        if (!m && mpolicy_is_builtin(id)) {
            snprintf(out->id, sizeof out->id, "%s", id);
            out->graph = MP_GRAPH_NONE;
            out->attr = MP_TIMESTAMP_ORDERED;
        } else if (!m)
            rc = KITH_ENOTFOUND;
        else if (strcmp(doc_str(m->doc, "schema", "name") ?: "", MPOLICY_PROFILE_CLASS) != 0)
            rc = KITH_EINVAL;
    } else {
        for (size_t i = 0; i < c->n && !m; i++)
            if (c->v[i].sb == sandbox && json_is_true(json_object_get(c->v[i].doc, "default")) &&
                strcmp(doc_str(c->v[i].doc, "schema", "name") ?: "", MPOLICY_PROFILE_CLASS) == 0)
                m = &c->v[i];
    }
    if (rc == 0 && m) policy_from_doc(m->doc, out);
    pthread_rwlock_unlock(&c->lock);
    return rc;
}
