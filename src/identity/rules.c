/* kith identity: linking rules per sandbox (unique namespaces, namespace priority, maximum
 * identities per graph, blocked values), and the cluster-change events of a group.
 *
 * meta [sb]['L']"linking-rules" → the rules document as PUT (namespace codes). Without one, a
 * sandbox has the default rules: no unique namespace, priority by namespace type (people, then
 * devices, then cookies), --max-graph identities, and the junk emails AEP's documentation names
 * blocked. */
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "kith/jalloc.h"
#include "identity_int.h"

static const char RULES_ID[] = "linking-rules";

/* Junk emails that glue unrelated people together (AEP: graph collapse). The generic junk values
 * (null, anonymous, invalid, ...) are refused for every namespace by ingest. */
static const char *default_blocked_emails[] = {
    "test@test.com",       "test@example.com", "user@example.com", "email@email.com",
    "noemail@noemail.com", "no@email.com",     "none@none.com",    "not-specified",
    "user_null",           "na@na.com",
};

struct ident_state *ident_state_get(kith_engine *e)
{
    struct ident_state *s = __atomic_load_n(&e->ident, __ATOMIC_ACQUIRE);
    if (s) return s;
    struct ident_state *n = kith_xcalloc(1, sizeof *n);
    pthread_mutex_init(&n->mu, NULL);
    pthread_mutex_init(&n->pmu, NULL);
    struct ident_state *expected = NULL;
    if (__atomic_compare_exchange_n(&e->ident, &expected, n, false, __ATOMIC_ACQ_REL,
                                    __ATOMIC_ACQUIRE))
        return n;
    pthread_mutex_destroy(&n->mu);
    pthread_mutex_destroy(&n->pmu);
    free(n);
    return expected;
}

void rules_free(link_rules *r)
{
    if (!r) return;
    for (size_t i = 0; i < r->nblocked; i++)
        free(r->blocked[i].v);
    free(r->blocked);
    json_decref(r->doc);
    free(r);
}

void identity_state_free(kith_engine *e)
{
    struct ident_state *s = e->ident;
    if (!s) return;
    for (size_t i = 0; i < s->nrules; i++)
        rules_free(s->rules[i].r);
    for (size_t i = 0; i < s->nretired; i++)
        rules_free(s->retired[i]);
    free(s->rules);
    free(s->retired);
    free(s->chg);
    free(s->marks);
    kith_buf_free(&s->wlog);
    kv_cache_free(s->kv);
    for (struct ident_pending *p = s->phead, *next; p; p = next) {
        next = p->next;
        kith_buf_free(&p->w);
        free(p);
    }
    pthread_mutex_destroy(&s->mu);
    pthread_mutex_destroy(&s->pmu);
    free(s);
    e->ident = NULL;
}

static int type_rank(int type)
{
    switch (type) {
    case NS_CROSS_DEVICE:
        return 0;
    case NS_EMAIL:
        return 1;
    case NS_PHONE:
        return 2;
    case NS_DEVICE:
        return 3;
    case NS_COOKIE:
        return 4;
    case NS_PARTNER:
        return 5;
    default:
        return 6;
    }
}

/* People (0), devices (1), cookies and partner ids (2): the classes a priority may not invert. */
static int type_class(int type)
{
    int t = type_rank(type);
    return t <= 2 ? 0 : t == 3 ? 1 : 2;
}

int rules_rank(const link_rules *r, uint32_t ns, int type)
{
    for (int i = 0; i < r->nprio; i++)
        if (r->prio[i] == ns) return i;
    return RULES_MAX_PRIORITY + type_rank(type);
}

int rules_unique_index(const link_rules *r, uint32_t ns)
{
    for (int i = 0; i < r->nunique; i++)
        if (r->unique[i] == ns) return i;
    return -1;
}

bool rules_blocked(const link_rules *r, uint32_t ns, const char *v, size_t len)
{
    for (size_t i = 0; i < r->nblocked; i++)
        if (r->blocked[i].ns == ns && strlen(r->blocked[i].v) == len &&
            strncasecmp(r->blocked[i].v, v, len) == 0)
            return true;
    return false;
}

static void add_error(json_t *errors, const char *path, const char *msg)
{
    json_array_append_new(errors, json_pack("{s:s, s:s}", "path", path, "message", msg));
}

/* Parses and validates doc (borrowed) against the sandbox's namespaces. Returns the rules (owned)
 * or NULL with errors appended. Missing members take their defaults. */
static link_rules *rules_parse(kith_engine *e, uint32_t sb, json_t *doc, json_t *errors)
{
    link_rules *r = kith_xcalloc(1, sizeof *r);
    size_t nerr = json_array_size(errors);
    char path[160], msg[256];
    if (!json_is_object(doc)) {
        add_error(errors, "", "the linking rules must be a JSON object");
        rules_free(r);
        return NULL;
    }
    const char *k;
    json_t *v;
    json_object_foreach(doc, k, v)
    {
        if (strcmp(k, "uniqueNamespaces") && strcmp(k, "priority") && strcmp(k, "maxIdentities") &&
            strcmp(k, "blockedValues")) {
            snprintf(path, sizeof path, "/%s", k);
            add_error(errors, path,
                      "unknown member; expected uniqueNamespaces, priority, maxIdentities, "
                      "blockedValues");
        }
    }
    catalog_rdlock(e->cat);
    json_t *uniq = json_object_get(doc, "uniqueNamespaces");
    if (uniq && !json_is_array(uniq)) add_error(errors, "/uniqueNamespaces", "expected an array");
    size_t i;
    json_array_foreach(uniq, i, v)
    {
        snprintf(path, sizeof path, "/uniqueNamespaces/%zu", i);
        const cat_namespace *ns =
            json_is_string(v) ? catalog_namespace(e->cat, sb, json_string_value(v)) : NULL;
        if (!ns) {
            snprintf(msg, sizeof msg, "unknown identity namespace %s",
                     json_is_string(v) ? json_string_value(v) : "(not a string)");
            add_error(errors, path, msg);
        } else if (ns->type == NS_NON_PEOPLE) {
            add_error(errors, path, "a non-people namespace never links; it cannot be unique");
        } else if (rules_unique_index(r, ns->id) >= 0) {
            add_error(errors, path, "listed twice");
        } else if (r->nunique >= RULES_MAX_UNIQUE) {
            add_error(errors, path, "at most 64 unique namespaces");
        } else {
            r->unique[r->nunique++] = ns->id;
        }
    }
    json_t *prio = json_object_get(doc, "priority");
    if (prio && !json_is_array(prio)) add_error(errors, "/priority", "expected an array");
    int last_class = 0;
    const char *last_code = NULL;
    json_array_foreach(prio, i, v)
    {
        snprintf(path, sizeof path, "/priority/%zu", i);
        const cat_namespace *ns =
            json_is_string(v) ? catalog_namespace(e->cat, sb, json_string_value(v)) : NULL;
        if (!ns) {
            snprintf(msg, sizeof msg, "unknown identity namespace %s",
                     json_is_string(v) ? json_string_value(v) : "(not a string)");
            add_error(errors, path, msg);
            continue;
        }
        bool dup = false;
        for (int j = 0; j < r->nprio; j++)
            dup |= r->prio[j] == ns->id;
        int cls = type_class(ns->type);
        if (dup) {
            add_error(errors, path, "listed twice");
        } else if (r->nprio >= RULES_MAX_PRIORITY) {
            add_error(errors, path, "at most 256 namespaces");
        } else if (cls < last_class) {
            snprintf(msg, sizeof msg,
                     "%s (%s) cannot rank below %s: people namespaces rank above devices, devices "
                     "above cookies",
                     ns->code, ns_type_name(ns->type), last_code);
            add_error(errors, path, msg);
        } else {
            r->prio[r->nprio++] = ns->id;
            last_class = cls;
            last_code = ns->code;
        }
    }
    json_t *max = json_object_get(doc, "maxIdentities");
    r->max_identities = e->lim.graph_max;
    if (max) {
        if (!json_is_integer(max) || json_integer_value(max) < 2 || json_integer_value(max) > 10000)
            add_error(errors, "/maxIdentities", "an integer from 2 to 10000");
        else
            r->max_identities = (int)json_integer_value(max);
    }
    json_t *blocked = json_object_get(doc, "blockedValues");
    if (blocked && !json_is_object(blocked))
        add_error(errors, "/blockedValues", "expected an object: namespace code → array of values");
    if (!blocked) {
        const cat_namespace *em = catalog_namespace(e->cat, sb, "Email");
        for (size_t j = 0; em && j < sizeof default_blocked_emails / sizeof *default_blocked_emails;
             j++) {
            r->blocked = kith_xrealloc(r->blocked, (r->nblocked + 1) * sizeof *r->blocked);
            r->blocked[r->nblocked++] =
                (struct blocked_value){em->id, kith_xstrdup(default_blocked_emails[j])};
        }
    }
    json_object_foreach(blocked, k, v)
    {
        snprintf(path, sizeof path, "/blockedValues/%.100s", k);
        const cat_namespace *ns = catalog_namespace(e->cat, sb, k);
        if (!ns) {
            snprintf(msg, sizeof msg, "unknown identity namespace %.100s", k);
            add_error(errors, path, msg);
            continue;
        }
        if (!json_is_array(v)) {
            add_error(errors, path, "expected an array of strings");
            continue;
        }
        size_t j;
        json_t *s;
        json_array_foreach(v, j, s)
        {
            if (!json_is_string(s) || json_string_length(s) > (size_t)e->lim.max_identity_len) {
                snprintf(path, sizeof path, "/blockedValues/%.100s/%zu", k, j);
                add_error(errors, path, "expected a string of at most 1024 bytes");
                continue;
            }
            if (r->nblocked >= RULES_MAX_BLOCKED) {
                add_error(errors, "/blockedValues", "at most 4096 blocked values");
                break;
            }
            r->blocked = kith_xrealloc(r->blocked, (r->nblocked + 1) * sizeof *r->blocked);
            r->blocked[r->nblocked++] =
                (struct blocked_value){ns->id, kith_xstrdup(json_string_value(s))};
        }
    }
    catalog_unlock(e->cat);
    if (json_array_size(errors) > nerr) {
        rules_free(r);
        return NULL;
    }
    r->doc = json_incref(doc);
    return r;
}

static void rules_key(store_key *k, uint32_t sb)
{
    skey_init(k, sb);
    skey_u8(k, 'L');
    skey_bytes(k, RULES_ID, sizeof RULES_ID - 1);
}

static link_rules *rules_load(kith_engine *e, uint32_t sb)
{
    store_key k;
    rules_key(&k, sb);
    kith_buf v = {0};
    json_t *doc = NULL;
    if (store_get(e->store, STORE_CF_META, k.b, k.n, &v) == 0)
        doc = json_loadb(v.data, v.len, 0, NULL);
    kith_buf_free(&v);
    json_t *errors = json_array();
    link_rules *r = doc ? rules_parse(e, sb, doc, errors) : NULL;
    if (doc && !r)
        kith_log(KITH_LOG_ERROR, "identity", "stored linking rules of sandbox %u no longer valid",
                 sb);
    if (!r) {
        json_t *empty = json_object();
        json_array_clear(errors);
        r = rules_parse(e, sb, empty, errors);
        json_decref(empty);
    }
    json_decref(errors);
    json_decref(doc);
    return r;
}

const link_rules *rules_for(kith_engine *e, uint32_t sb)
{
    struct ident_state *s = ident_state_get(e);
    pthread_mutex_lock(&s->mu);
    for (size_t i = 0; i < s->nrules; i++)
        if (s->rules[i].sb == sb) {
            link_rules *r = s->rules[i].r;
            pthread_mutex_unlock(&s->mu);
            return r;
        }
    link_rules *r = rules_load(e, sb);
    if (s->nrules == s->caprules) {
        s->caprules = s->caprules ? s->caprules * 2 : 8;
        s->rules = kith_xrealloc(s->rules, s->caprules * sizeof *s->rules);
    }
    s->rules[s->nrules++] = (struct rules_slot){sb, r};
    pthread_mutex_unlock(&s->mu);
    return r;
}

static json_t *codes_of(kith_engine *e, uint32_t sb, const uint32_t *ids, int n)
{
    json_t *a = json_array();
    for (int i = 0; i < n; i++) {
        const cat_namespace *ns = catalog_namespace_by_id(e->cat, sb, ids[i]);
        if (ns) json_array_append_new(a, json_string(ns->code));
    }
    return a;
}

struct prio_item {
    int rank;
    uint32_t id;
    const char *code;
};

static void collect_ns(const cat_namespace *n, void *arg)
{
    json_t *a = arg;
    if (n->type == NS_NON_PEOPLE) return;
    json_array_append_new(a, json_pack("{s:i, s:s}", "t", type_rank(n->type), "c", n->code));
}

static int prio_cmp(const void *a, const void *b)
{
    json_t *x = *(json_t *const *)a, *y = *(json_t *const *)b;
    json_int_t tx = json_integer_value(json_object_get(x, "t")),
               ty = json_integer_value(json_object_get(y, "t"));
    if (tx != ty) return tx < ty ? -1 : 1;
    return strcasecmp(json_string_value(json_object_get(x, "c")),
                      json_string_value(json_object_get(y, "c")));
}

json_t *identity_rules_get(kith_engine *e, uint32_t sandbox)
{
    const link_rules *r = rules_for(e, sandbox);
    catalog_rdlock(e->cat);
    json_t *prio;
    if (r->nprio) {
        prio = codes_of(e, sandbox, r->prio, r->nprio);
    } else {
        /* The default: by type (people, devices, cookies), then by code. */
        json_t *items = json_array();
        catalog_each_namespace(e->cat, sandbox, collect_ns, items);
        size_t n = json_array_size(items);
        json_t **v = kith_xcalloc(n ? n : 1, sizeof *v);
        for (size_t i = 0; i < n; i++)
            v[i] = json_array_get(items, i);
        if (n) qsort(v, n, sizeof *v, prio_cmp);
        prio = json_array();
        for (size_t i = 0; i < n; i++)
            json_array_append(prio, json_object_get(v[i], "c"));
        free(v);
        json_decref(items);
    }
    json_t *blocked = json_object();
    for (size_t i = 0; i < r->nblocked; i++) {
        const cat_namespace *ns = catalog_namespace_by_id(e->cat, sandbox, r->blocked[i].ns);
        if (!ns) continue;
        json_t *a = json_object_get(blocked, ns->code);
        if (!a) json_object_set_new(blocked, ns->code, a = json_array());
        json_array_append_new(a, json_string(r->blocked[i].v));
    }
    json_t *out =
        json_pack("{s:o, s:o, s:i, s:o, s:b}", "uniqueNamespaces",
                  codes_of(e, sandbox, r->unique, r->nunique), "priority", prio, "maxIdentities",
                  r->max_identities, "blockedValues", blocked, "priorityDefault", r->nprio == 0);
    catalog_unlock(e->cat);
    return out;
}

int identity_rules_put(kith_engine *e, store_batch *b, uint32_t sandbox, json_t *doc,
                       json_t *errors)
{
    link_rules *r = rules_parse(e, sandbox, doc, errors);
    if (!r) return KITH_EINVAL;
    char *text = kith_json_dumps(doc, JSON_COMPACT);
    store_key k;
    rules_key(&k, sandbox);
    store_batch_put(b, STORE_CF_META, k.b, k.n, text, strlen(text));
    free(text);
    struct ident_state *s = ident_state_get(e);
    pthread_mutex_lock(&s->mu);
    bool placed = false;
    for (size_t i = 0; i < s->nrules && !placed; i++)
        if (s->rules[i].sb == sandbox) {
            s->retired = kith_xrealloc(s->retired, (s->nretired + 1) * sizeof *s->retired);
            s->retired[s->nretired++] = s->rules[i].r;
            s->rules[i].r = r;
            placed = true;
        }
    if (!placed) {
        if (s->nrules == s->caprules) {
            s->caprules = s->caprules ? s->caprules * 2 : 8;
            s->rules = kith_xrealloc(s->rules, s->caprules * sizeof *s->rules);
        }
        s->rules[s->nrules++] = (struct rules_slot){sandbox, r};
    }
    pthread_mutex_unlock(&s->mu);
    return 0;
}

int identity_event_primary(kith_engine *e, uint32_t sandbox, const ident_in *ids, int n,
                           int primary)
{
    const link_rules *r = rules_for(e, sandbox);
    if (r->nprio == 0) return primary;
    int best = primary, best_rank = RULES_MAX_PRIORITY;
    for (int i = 0; i < n; i++) {
        int rk = rules_rank(r, ids[i].ns, ids[i].type);
        if (rk < best_rank) best = i, best_rank = rk;
    }
    return best;
}

/* --- cluster-change events --- */

void engine_on_cluster_change(kith_engine *e, cluster_change_fn fn, void *arg)
{
    struct ident_state *s = ident_state_get(e);
    if (s->nsubs < (int)(sizeof s->subs / sizeof s->subs[0])) {
        s->subs[s->nsubs].fn = fn;
        s->subs[s->nsubs].arg = arg;
        s->nsubs++;
    }
}

void identity_changed(kith_engine *e, uint32_t sandbox, uint64_t cluster, unsigned reasons)
{
    struct ident_state *s = ident_state_get(e);
    if (s->nchg == s->capchg) {
        s->capchg = s->capchg ? s->capchg * 2 : 64;
        s->chg = kith_xrealloc(s->chg, s->capchg * sizeof *s->chg);
    }
    s->chg[s->nchg++] = (cluster_change){sandbox, cluster, reasons, false};
}

static int chg_cmp(const void *a, const void *b)
{
    const cluster_change *x = a, *y = b;
    if (x->sandbox != y->sandbox) return x->sandbox < y->sandbox ? -1 : 1;
    if (x->cluster != y->cluster) return x->cluster < y->cluster ? -1 : 1;
    return 0;
}

int identity_flush_group(kith_engine *e, store_batch *b)
{
    struct ident_state *s = e->ident;
    if (s) identity_emit_writes(e, b);
    if (!s || s->nchg == 0) return 0;
    qsort(s->chg, s->nchg, sizeof *s->chg, chg_cmp);
    size_t n = 0;
    for (size_t i = 0; i < s->nchg; i++) {
        if (n && chg_cmp(&s->chg[n - 1], &s->chg[i]) == 0) {
            s->chg[n - 1].reasons |= s->chg[i].reasons;
            continue;
        }
        s->chg[n++] = s->chg[i];
    }
    /* A cluster that vanished never comes back (cluster ids are not reused), so one "gone" record
     * decides; the bit is internal. */
    for (size_t i = 0; i < n; i++) {
        s->chg[i].gone = (s->chg[i].reasons & CLUSTER_GONE_BIT) != 0;
        s->chg[i].reasons &= ~CLUSTER_GONE_BIT;
    }
    s->nchg = 0;
    int rc = 0;
    for (int i = 0; i < s->nsubs && rc == 0; i++)
        rc = s->subs[i].fn(s->subs[i].arg, b, s->chg, n);
    return rc;
}
