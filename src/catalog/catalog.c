/* kith catalog: control-plane objects in memory, persisted in the meta column family.
 *
 * Meta keys: [sandbox u32][kind u8][id bytes]. Sandbox 0 holds process-wide objects: 'S' sandboxes by
 * name, 'K' API keys by id, 'Q' sequences. Other sandboxes hold 'n' custom namespaces by code, 's' schemas
 * by meta:altId, 'd' datasets by id, 'i' inlets by inlet id. Control-plane sizes are small (tens to
 * hundreds of objects), so lookups scan arrays; the hot path (inlet → dataset → schema) touches a few. */
#include "kith/jalloc.h"
#include "kith/catalog.h"

#include <openssl/evp.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define PTRVEC(T)                                                                                   \
    struct {                                                                                       \
        T **v;                                                                                     \
        size_t n, cap;                                                                             \
    }

struct kith_catalog {
    pthread_rwlock_t lock;
    kith_store *st;
    PTRVEC(cat_sandbox) sandboxes;
    PTRVEC(cat_key) keys;
    PTRVEC(cat_namespace) namespaces; /* custom ones; sandbox in doc */
    PTRVEC(cat_schema) schemas;
    PTRVEC(cat_dataset) datasets;
    PTRVEC(cat_inlet) inlets;
    PTRVEC(kith_schema) retired;
    uint32_t ns_sandbox[4096]; /* parallel to namespaces.v: owning sandbox (bounded below) */
    uint64_t seq[SEQ_COUNT];      /* last value handed out */
    uint64_t reserved[SEQ_COUNT]; /* persisted high-water mark */
    bool seq_dirty;
};

#define VEC_PUSH(vec, item)                                                                        \
    do {                                                                                           \
        if ((vec).n == (vec).cap) {                                                                \
            (vec).cap = (vec).cap ? (vec).cap * 2 : 16;                                            \
            (vec).v = kith_xrealloc((vec).v, (vec).cap * sizeof *(vec).v);                         \
        }                                                                                          \
        (vec).v[(vec).n++] = (item);                                                               \
    } while (0)

#define VEC_REMOVE_AT(vec, i)                                                                      \
    do {                                                                                           \
        memmove(&(vec).v[i], &(vec).v[(i) + 1], ((vec).n - (i)-1) * sizeof *(vec).v);              \
        (vec).n--;                                                                                 \
    } while (0)

static const struct {
    uint32_t id;
    const char *code, *name;
    int type;
} std_namespaces[] = {
    {0, "CORE", "Adobe Audience Manager", NS_COOKIE},
    {4, "ECID", "Experience Cloud ID", NS_COOKIE},
    {6, "Email", "Email", NS_EMAIL},
    {7, "Phone", "Phone", NS_PHONE},
    {8, "CRMID", "CRM ID", NS_CROSS_DEVICE},
    {9, "TNTID", "Adobe Target", NS_COOKIE},
    {10, "AAID", "Adobe Analytics (Legacy ID)", NS_COOKIE},
    {11, "Email_LC_SHA256", "Emails (SHA256, lowercased)", NS_EMAIL},
    {12, "Phone_E.164", "Phone (E.164)", NS_PHONE},
    {13, "Phone_SHA256", "Phone (SHA256)", NS_PHONE},
    {14, "Phone_SHA256_E.164", "Phone (SHA256_E.164)", NS_PHONE},
    {15, "FPID", "First-party device id", NS_DEVICE},
    {16, "GCLID", "Google Click ID", NS_COOKIE},
    {20, "IDFA", "Apple IDFA (ID for Advertisers)", NS_DEVICE},
    {21, "GAID", "Google Ad ID", NS_DEVICE},
    {22, "WAID", "Windows AID", NS_DEVICE},
    {23, "APNS", "Apple Push Notification service", NS_DEVICE},
    {24, "FCM", "Firebase Cloud Messaging", NS_DEVICE},
    {30, "AnonymousId", "Segment anonymous id (kith)", NS_COOKIE},
    {411, "AdCloud", "AdCloud", NS_COOKIE},
};
#define N_STD_NS (sizeof std_namespaces / sizeof std_namespaces[0])
static cat_namespace std_ns[N_STD_NS];
static pthread_once_t std_once = PTHREAD_ONCE_INIT;

static const char *role_names[] = {"none", "ingest", "viewer", "editor", "admin"};
const char *kith_role_name(int role)
{
    return role >= 0 && role <= ROLE_ADMIN ? role_names[role] : "none";
}
int kith_role_parse(const char *s)
{
    for (int i = 1; i <= ROLE_ADMIN; i++)
        if (s && strcmp(s, role_names[i]) == 0) return i;
    return ROLE_NONE;
}

static const char *ns_type_names[] = {"COOKIE", "DEVICE", "CROSS_DEVICE", "EMAIL",
                                      "PHONE",  "NON_PEOPLE", "PARTNER"};
const char *ns_type_name(int t)
{
    return t >= 0 && t <= NS_PARTNER ? ns_type_names[t] : "COOKIE";
}
int ns_type_parse(const char *s)
{
    if (!s) return -1;
    for (int i = 0; i <= NS_PARTNER; i++)
        if (strcasecmp(s, ns_type_names[i]) == 0) return i;
    if (strcasecmp(s, "cross-device") == 0 || strcasecmp(s, "crossdevice") == 0) return NS_CROSS_DEVICE;
    if (strcasecmp(s, "non-people") == 0 || strcasecmp(s, "nonpeople") == 0) return NS_NON_PEOPLE;
    return -1;
}

static json_t *namespace_doc(uint32_t id, const char *code, const char *name, int type, bool custom,
                             const char *desc, json_int_t t)
{
    return json_pack("{s:I, s:s, s:s, s:s, s:s, s:s, s:b, s:I, s:I}", "id", (json_int_t)id, "code",
                     code, "name", name, "description", desc ? desc : "", "idType",
                     ns_type_name(type), "status", "ACTIVE", "custom", custom, "createTime", t,
                     "updateTime", t);
}

static void std_init(void)
{
    for (size_t i = 0; i < N_STD_NS; i++) {
        std_ns[i].id = std_namespaces[i].id;
        snprintf(std_ns[i].code, sizeof std_ns[i].code, "%s", std_namespaces[i].code);
        std_ns[i].type = std_namespaces[i].type;
        std_ns[i].custom = false;
        std_ns[i].doc = namespace_doc(std_ns[i].id, std_ns[i].code, std_namespaces[i].name,
                                      std_ns[i].type, false, std_namespaces[i].name, 0);
    }
}

void catalog_new_id(char *out)
{
    uint8_t r[12];
    if (kith_random(r, sizeof r) != 0) memset(r, 0, sizeof r);
    kith_hex(r, sizeof r, out);
}

void catalog_hash_secret(const char *secret, uint8_t out[32])
{
    unsigned int n = 32;
    EVP_Digest(secret, strlen(secret), out, &n, EVP_sha256(), NULL);
}

/* --- persistence --- */

static void meta_key(store_key *k, uint32_t sandbox, char kind, const char *id)
{
    skey_init(k, sandbox);
    skey_u8(k, (uint8_t)kind);
    skey_bytes(k, id, strlen(id));
}

static void meta_put(store_batch *b, uint32_t sandbox, char kind, const char *id, const json_t *doc)
{
    store_key k;
    meta_key(&k, sandbox, kind, id);
    char *s = kith_json_dumps(doc, JSON_COMPACT);
    store_batch_put(b, STORE_CF_META, k.b, k.n, s, strlen(s));
    free(s);
}

static void meta_del(store_batch *b, uint32_t sandbox, char kind, const char *id)
{
    store_key k;
    meta_key(&k, sandbox, kind, id);
    store_batch_delete(b, STORE_CF_META, k.b, k.n);
}

static const char *jstr(const json_t *o, const char *key)
{
    const char *s = json_string_value(json_object_get(o, key));
    return s ? s : "";
}

static bool has_tag_enabled(const json_t *doc, const char *tag)
{
    json_t *arr = json_object_get(json_object_get(doc, "tags"), tag);
    size_t i;
    json_t *v;
    json_array_foreach(arr, i, v)
    {
        const char *s = json_string_value(v);
        if (s && strcmp(s, "enabled:true") == 0) return true;
    }
    return false;
}

static bool schema_doc_union(const json_t *doc)
{
    size_t i;
    json_t *v;
    json_array_foreach(json_object_get(doc, "meta:immutableTags"), i, v)
    {
        if (json_string_value(v) && strcmp(json_string_value(v), "union") == 0) return true;
    }
    return false;
}

/* --- memory updates (caller holds the write lock) --- */

static void mem_sandbox(kith_catalog *c, uint32_t id, const char *name, json_t *doc)
{
    for (size_t i = 0; i < c->sandboxes.n; i++)
        if (c->sandboxes.v[i]->id == id) {
            json_decref(c->sandboxes.v[i]->doc);
            c->sandboxes.v[i]->doc = doc;
            return;
        }
    cat_sandbox *s = kith_xcalloc(1, sizeof *s);
    s->id = id;
    snprintf(s->name, sizeof s->name, "%s", name);
    s->doc = doc;
    VEC_PUSH(c->sandboxes, s);
}

static void mem_key(kith_catalog *c, const char *id, const uint8_t hash[32], int role,
                    json_t *sandboxes, json_t *doc)
{
    cat_key *k = NULL;
    for (size_t i = 0; i < c->keys.n; i++)
        if (strcmp(c->keys.v[i]->id, id) == 0) k = c->keys.v[i];
    if (!k) {
        k = kith_xcalloc(1, sizeof *k);
        snprintf(k->id, sizeof k->id, "%s", id);
        VEC_PUSH(c->keys, k);
    } else {
        json_decref(k->sandboxes);
        json_decref(k->doc);
    }
    memcpy(k->hash, hash, 32);
    k->role = role;
    k->sandboxes = sandboxes;
    k->doc = doc;
}

static void mem_namespace(kith_catalog *c, uint32_t sandbox, json_t *doc)
{
    if (c->namespaces.n >= sizeof c->ns_sandbox / sizeof c->ns_sandbox[0]) {
        json_decref(doc);
        return;
    }
    cat_namespace *n = kith_xcalloc(1, sizeof *n);
    n->id = (uint32_t)json_integer_value(json_object_get(doc, "id"));
    snprintf(n->code, sizeof n->code, "%s", jstr(doc, "code"));
    n->type = ns_type_parse(jstr(doc, "idType"));
    if (n->type < 0) n->type = NS_CROSS_DEVICE;
    n->custom = true;
    n->doc = doc;
    c->ns_sandbox[c->namespaces.n] = sandbox;
    VEC_PUSH(c->namespaces, n);
}

static cat_schema *find_schema(kith_catalog *c, uint32_t sandbox, const char *id, size_t *at)
{
    for (size_t i = 0; i < c->schemas.n; i++) {
        cat_schema *s = c->schemas.v[i];
        if (s->sandbox == sandbox && (strcmp(s->id, id) == 0 || strcmp(s->altid, id) == 0)) {
            if (at) *at = i;
            return s;
        }
    }
    return NULL;
}

static void mem_schema(kith_catalog *c, uint32_t sandbox, json_t *doc, kith_schema *compiled)
{
    cat_schema *s = find_schema(c, sandbox, jstr(doc, "meta:altId"), NULL);
    if (!s) {
        s = kith_xcalloc(1, sizeof *s);
        VEC_PUSH(c->schemas, s);
    } else {
        json_decref(s->doc);
        VEC_PUSH(c->retired, s->compiled);
    }
    snprintf(s->id, sizeof s->id, "%s", jstr(doc, "$id"));
    snprintf(s->altid, sizeof s->altid, "%s", jstr(doc, "meta:altId"));
    s->sandbox = sandbox;
    s->compiled = compiled;
    s->cls = compiled ? schema_get_class(compiled) : SCHEMA_CLASS_PROFILE;
    s->profile_enabled = schema_doc_union(doc);
    s->doc = doc;
}

static void mem_dataset(kith_catalog *c, uint32_t sandbox, json_t *doc)
{
    const char *id = jstr(doc, "id");
    cat_dataset *d = NULL;
    for (size_t i = 0; i < c->datasets.n; i++)
        if (c->datasets.v[i]->sandbox == sandbox && strcmp(c->datasets.v[i]->id, id) == 0)
            d = c->datasets.v[i];
    if (!d) {
        d = kith_xcalloc(1, sizeof *d);
        VEC_PUSH(c->datasets, d);
    } else {
        json_decref(d->doc);
    }
    snprintf(d->id, sizeof d->id, "%s", id);
    d->sandbox = sandbox;
    snprintf(d->schema_id, sizeof d->schema_id, "%s",
             jstr(json_object_get(doc, "schemaRef"), "id"));
    d->profile_enabled = has_tag_enabled(doc, "unifiedProfile");
    d->identity_enabled = has_tag_enabled(doc, "unifiedIdentity");
    d->doc = doc;
}

static void mem_inlet(kith_catalog *c, uint32_t sandbox, json_t *doc)
{
    cat_inlet *in = kith_xcalloc(1, sizeof *in);
    snprintf(in->id, sizeof in->id, "%s", jstr(doc, "id"));
    snprintf(in->inlet, sizeof in->inlet, "%s", jstr(doc, "inletId"));
    in->sandbox = sandbox;
    in->auth_required = json_is_true(json_object_get(doc, "authenticationRequired"));
    in->doc = doc;
    VEC_PUSH(c->inlets, in);
}

/* --- load --- */

static int load_one(kith_catalog *c, uint32_t sandbox, char kind, const char *id, json_t *doc)
{
    switch (kind) {
    case 'S':
        mem_sandbox(c, (uint32_t)json_integer_value(json_object_get(doc, "kith:id")), id, doc);
        return 0;
    case 'K': {
        uint8_t hash[32] = {0};
        const char *hx = jstr(doc, "kith:hash");
        for (int i = 0; i < 32 && hx[2 * i] && hx[2 * i + 1]; i++) {
            unsigned v;
            sscanf(hx + 2 * i, "%2x", &v);
            hash[i] = (uint8_t)v;
        }
        json_t *pub = json_deep_copy(doc);
        json_object_del(pub, "kith:hash");
        mem_key(c, id, hash, kith_role_parse(jstr(doc, "role")),
                json_incref(json_object_get(doc, "sandboxes")), pub);
        json_decref(doc);
        return 0;
    }
    case 'Q':
        /* Values up to the persisted mark may have been handed out before a crash: continue after it. */
        if (id[0] >= 0 && id[0] < SEQ_COUNT)
            c->seq[(int)id[0]] = c->reserved[(int)id[0]] =
                (uint64_t)json_integer_value(json_object_get(doc, "v"));
        json_decref(doc);
        return 0;
    case 'n':
        mem_namespace(c, sandbox, doc);
        return 0;
    case 's': {
        json_t *errors = json_array();
        kith_schema *compiled = NULL;
        if (schema_compile(doc, &compiled, errors) != 0) {
            char *e = kith_json_dumps(errors, JSON_COMPACT);
            kith_log(KITH_LOG_ERROR, "catalog", "stored schema %s no longer compiles: %s", id, e);
            free(e);
        }
        json_decref(errors);
        mem_schema(c, sandbox, doc, compiled);
        return 0;
    }
    case 'd':
        mem_dataset(c, sandbox, doc);
        return 0;
    case 'i':
        mem_inlet(c, sandbox, doc);
        return 0;
    }
    json_decref(doc);
    return 0;
}

int catalog_load(kith_store *st, kith_catalog **out)
{
    pthread_once(&std_once, std_init);
    kith_catalog *c = kith_xcalloc(1, sizeof *c);
    pthread_rwlock_init(&c->lock, NULL);
    c->st = st;
    store_iter *it = store_iter_new(st, NULL, STORE_CF_META, "", 0);
    for (; store_iter_valid(it); store_iter_next(it)) {
        size_t kl, vl;
        const uint8_t *k = store_iter_key(it, &kl);
        const uint8_t *v = store_iter_value(it, &vl);
        if (kl < 5) continue;
        char id[1200];
        size_t idl = kl - 5 < sizeof id - 1 ? kl - 5 : sizeof id - 1;
        memcpy(id, k + 5, idl);
        id[idl] = 0;
        json_error_t jerr;
        json_t *doc = json_loadb((const char *)v, vl, 0, &jerr);
        if (!doc) {
            kith_log(KITH_LOG_ERROR, "catalog", "corrupt meta entry (kind %c): %s", k[4], jerr.text);
            continue;
        }
        load_one(c, kith_get_be32(k), (char)k[4], id, doc);
    }
    store_iter_free(it);
    *out = c;
    return 0;
}

void catalog_free(kith_catalog *c)
{
    if (!c) return;
    for (size_t i = 0; i < c->sandboxes.n; i++) json_decref(c->sandboxes.v[i]->doc), free(c->sandboxes.v[i]);
    for (size_t i = 0; i < c->keys.n; i++) {
        json_decref(c->keys.v[i]->doc);
        json_decref(c->keys.v[i]->sandboxes);
        free(c->keys.v[i]);
    }
    for (size_t i = 0; i < c->namespaces.n; i++) json_decref(c->namespaces.v[i]->doc), free(c->namespaces.v[i]);
    for (size_t i = 0; i < c->schemas.n; i++) {
        json_decref(c->schemas.v[i]->doc);
        schema_free(c->schemas.v[i]->compiled);
        free(c->schemas.v[i]);
    }
    for (size_t i = 0; i < c->datasets.n; i++) json_decref(c->datasets.v[i]->doc), free(c->datasets.v[i]);
    for (size_t i = 0; i < c->inlets.n; i++) json_decref(c->inlets.v[i]->doc), free(c->inlets.v[i]);
    for (size_t i = 0; i < c->retired.n; i++) schema_free(c->retired.v[i]);
    free(c->sandboxes.v), free(c->keys.v), free(c->namespaces.v), free(c->schemas.v);
    free(c->datasets.v), free(c->inlets.v), free(c->retired.v);
    pthread_rwlock_destroy(&c->lock);
    free(c);
}

void catalog_rdlock(kith_catalog *c)
{
    pthread_rwlock_rdlock(&c->lock);
}
void catalog_wrlock(kith_catalog *c)
{
    pthread_rwlock_wrlock(&c->lock);
}
void catalog_unlock(kith_catalog *c)
{
    pthread_rwlock_unlock(&c->lock);
}

/* --- lookups --- */

const cat_sandbox *catalog_sandbox(kith_catalog *c, const char *name)
{
    for (size_t i = 0; i < c->sandboxes.n; i++)
        if (strcmp(c->sandboxes.v[i]->name, name) == 0) return c->sandboxes.v[i];
    return NULL;
}

const cat_sandbox *catalog_sandbox_by_id(kith_catalog *c, uint32_t id)
{
    for (size_t i = 0; i < c->sandboxes.n; i++)
        if (c->sandboxes.v[i]->id == id) return c->sandboxes.v[i];
    return NULL;
}

void catalog_each_sandbox(kith_catalog *c, void (*fn)(const cat_sandbox *, void *), void *arg)
{
    for (size_t i = 0; i < c->sandboxes.n; i++) fn(c->sandboxes.v[i], arg);
}

const cat_key *catalog_key_by_secret(kith_catalog *c, const char *secret)
{
    uint8_t h[32];
    catalog_hash_secret(secret, h);
    for (size_t i = 0; i < c->keys.n; i++) {
        /* Constant-time comparison: the loop does not stop at the first differing byte. */
        uint8_t diff = 0;
        for (int j = 0; j < 32; j++) diff |= (uint8_t)(c->keys.v[i]->hash[j] ^ h[j]);
        if (!diff) return c->keys.v[i];
    }
    return NULL;
}

const cat_key *catalog_key(kith_catalog *c, const char *id)
{
    for (size_t i = 0; i < c->keys.n; i++)
        if (strcmp(c->keys.v[i]->id, id) == 0) return c->keys.v[i];
    return NULL;
}

void catalog_each_key(kith_catalog *c, void (*fn)(const cat_key *, void *), void *arg)
{
    for (size_t i = 0; i < c->keys.n; i++) fn(c->keys.v[i], arg);
}

bool catalog_key_allows(const cat_key *k, const char *sandbox)
{
    if (k->role == ROLE_ADMIN) return true;
    size_t i;
    json_t *v;
    json_array_foreach(k->sandboxes, i, v)
    {
        const char *s = json_string_value(v);
        if (s && (strcmp(s, "*") == 0 || strcmp(s, sandbox) == 0)) return true;
    }
    return false;
}

const cat_namespace *catalog_namespace(kith_catalog *c, uint32_t sandbox, const char *code)
{
    pthread_once(&std_once, std_init);
    for (size_t i = 0; i < N_STD_NS; i++)
        if (strcasecmp(std_ns[i].code, code) == 0) return &std_ns[i];
    for (size_t i = 0; i < c->namespaces.n; i++)
        if (c->ns_sandbox[i] == sandbox && strcasecmp(c->namespaces.v[i]->code, code) == 0)
            return c->namespaces.v[i];
    return NULL;
}

const cat_namespace *catalog_namespace_by_id(kith_catalog *c, uint32_t sandbox, uint32_t id)
{
    pthread_once(&std_once, std_init);
    for (size_t i = 0; i < N_STD_NS; i++)
        if (std_ns[i].id == id) return &std_ns[i];
    for (size_t i = 0; i < c->namespaces.n; i++)
        if (c->ns_sandbox[i] == sandbox && c->namespaces.v[i]->id == id) return c->namespaces.v[i];
    return NULL;
}

void catalog_each_namespace(kith_catalog *c, uint32_t sandbox,
                            void (*fn)(const cat_namespace *, void *), void *arg)
{
    pthread_once(&std_once, std_init);
    for (size_t i = 0; i < N_STD_NS; i++) fn(&std_ns[i], arg);
    for (size_t i = 0; i < c->namespaces.n; i++)
        if (c->ns_sandbox[i] == sandbox) fn(c->namespaces.v[i], arg);
}

const cat_schema *catalog_schema(kith_catalog *c, uint32_t sandbox, const char *id_or_altid)
{
    return find_schema(c, sandbox, id_or_altid, NULL);
}

void catalog_each_schema(kith_catalog *c, uint32_t sandbox, void (*fn)(const cat_schema *, void *),
                         void *arg)
{
    for (size_t i = 0; i < c->schemas.n; i++)
        if (c->schemas.v[i]->sandbox == sandbox) fn(c->schemas.v[i], arg);
}

const cat_dataset *catalog_dataset(kith_catalog *c, uint32_t sandbox, const char *id)
{
    for (size_t i = 0; i < c->datasets.n; i++)
        if (c->datasets.v[i]->sandbox == sandbox && strcmp(c->datasets.v[i]->id, id) == 0)
            return c->datasets.v[i];
    return NULL;
}

void catalog_each_dataset(kith_catalog *c, uint32_t sandbox, void (*fn)(const cat_dataset *, void *),
                          void *arg)
{
    for (size_t i = 0; i < c->datasets.n; i++)
        if (c->datasets.v[i]->sandbox == sandbox) fn(c->datasets.v[i], arg);
}

const cat_inlet *catalog_inlet(kith_catalog *c, const char *inlet_id)
{
    for (size_t i = 0; i < c->inlets.n; i++)
        if (strcmp(c->inlets.v[i]->inlet, inlet_id) == 0) return c->inlets.v[i];
    return NULL;
}

const cat_inlet *catalog_inlet_by_write_key(kith_catalog *c, const char *key)
{
    for (size_t i = 0; i < c->inlets.n; i++) {
        const char *wk = json_string_value(json_object_get(c->inlets.v[i]->doc, "writeKey"));
        if (wk && strcmp(wk, key) == 0) return c->inlets.v[i];
    }
    return NULL;
}

void catalog_each_inlet(kith_catalog *c, uint32_t sandbox, void (*fn)(const cat_inlet *, void *),
                        void *arg)
{
    for (size_t i = 0; i < c->inlets.n; i++)
        if (c->inlets.v[i]->sandbox == sandbox) fn(c->inlets.v[i], arg);
}

/* --- mutations (apply thread) --- */

uint64_t catalog_next_seq(kith_catalog *c, store_batch *b, int which)
{
    (void)b;
    uint64_t v = ++c->seq[which];
    if (v > c->reserved[which]) {
        /* Reserve a block: one meta write per 4096 ids instead of one per id. The mark is written
         * by catalog_flush_seq at the end of the group, where no savepoint can roll it back. */
        c->reserved[which] = v + 4095;
        c->seq_dirty = true;
    }
    return v;
}

void catalog_flush_seq(kith_catalog *c, store_batch *b)
{
    if (!c->seq_dirty) return;
    for (int which = 0; which < SEQ_COUNT; which++) {
        char val[32];
        int n = snprintf(val, sizeof val, "{\"v\":%llu}", (unsigned long long)c->reserved[which]);
        store_key k;
        skey_init(&k, 0);
        skey_u8(&k, 'Q');
        skey_u8(&k, (uint8_t)which);
        store_batch_put(b, STORE_CF_META, k.b, k.n, val, (size_t)n);
    }
    c->seq_dirty = false;
}

int catalog_put_sandbox(kith_catalog *c, store_batch *b, const char *name, json_t *doc, uint32_t *id_out)
{
    catalog_wrlock(c);
    const cat_sandbox *old = catalog_sandbox(c, name);
    uint32_t id = old ? old->id : (uint32_t)catalog_next_seq(c, b, SEQ_SANDBOX);
    json_object_set_new(doc, "kith:id", json_integer(id));
    meta_put(b, 0, 'S', name, doc);
    mem_sandbox(c, id, name, doc);
    catalog_unlock(c);
    if (id_out) *id_out = id;
    return 0;
}

int catalog_delete_sandbox(kith_catalog *c, store_batch *b, uint32_t id)
{
    catalog_wrlock(c);
    int rc = KITH_ENOTFOUND;
    for (size_t i = 0; i < c->sandboxes.n; i++) {
        cat_sandbox *s = c->sandboxes.v[i];
        if (s->id != id) continue;
        meta_del(b, 0, 'S', s->name);
        json_decref(s->doc);
        free(s);
        VEC_REMOVE_AT(c->sandboxes, i);
        rc = 0;
        break;
    }
    /* Drop the sandbox's objects from memory; their keys go with the sandbox's range delete. */
    for (size_t i = c->schemas.n; i-- > 0;)
        if (c->schemas.v[i]->sandbox == id) {
            VEC_PUSH(c->retired, c->schemas.v[i]->compiled);
            json_decref(c->schemas.v[i]->doc);
            free(c->schemas.v[i]);
            VEC_REMOVE_AT(c->schemas, i);
        }
    for (size_t i = c->datasets.n; i-- > 0;)
        if (c->datasets.v[i]->sandbox == id) {
            json_decref(c->datasets.v[i]->doc);
            free(c->datasets.v[i]);
            VEC_REMOVE_AT(c->datasets, i);
        }
    for (size_t i = c->inlets.n; i-- > 0;)
        if (c->inlets.v[i]->sandbox == id) {
            json_decref(c->inlets.v[i]->doc);
            free(c->inlets.v[i]);
            VEC_REMOVE_AT(c->inlets, i);
        }
    for (size_t i = c->namespaces.n; i-- > 0;)
        if (c->ns_sandbox[i] == id) {
            json_decref(c->namespaces.v[i]->doc);
            free(c->namespaces.v[i]);
            memmove(&c->ns_sandbox[i], &c->ns_sandbox[i + 1],
                    (c->namespaces.n - i - 1) * sizeof c->ns_sandbox[0]);
            VEC_REMOVE_AT(c->namespaces, i);
        }
    catalog_unlock(c);
    return rc;
}

int catalog_put_key(kith_catalog *c, store_batch *b, const char *id, const uint8_t hash[32], int role,
                    json_t *sandboxes, json_t *doc)
{
    char hx[65];
    kith_hex(hash, 32, hx);
    json_t *stored = json_deep_copy(doc);
    json_object_set_new(stored, "kith:hash", json_string(hx));
    json_object_set(stored, "sandboxes", sandboxes);
    json_object_set_new(stored, "role", json_string(kith_role_name(role)));
    meta_put(b, 0, 'K', id, stored);
    json_decref(stored);
    catalog_wrlock(c);
    mem_key(c, id, hash, role, sandboxes, doc);
    catalog_unlock(c);
    return 0;
}

int catalog_delete_key(kith_catalog *c, store_batch *b, const char *id)
{
    catalog_wrlock(c);
    int rc = KITH_ENOTFOUND;
    for (size_t i = 0; i < c->keys.n; i++) {
        if (strcmp(c->keys.v[i]->id, id) != 0) continue;
        meta_del(b, 0, 'K', id);
        json_decref(c->keys.v[i]->doc);
        json_decref(c->keys.v[i]->sandboxes);
        free(c->keys.v[i]);
        VEC_REMOVE_AT(c->keys, i);
        rc = 0;
        break;
    }
    catalog_unlock(c);
    return rc;
}

int catalog_put_namespace(kith_catalog *c, store_batch *b, uint32_t sandbox, json_t *doc,
                          uint32_t *id_out)
{
    catalog_wrlock(c);
    if (c->namespaces.n >= sizeof c->ns_sandbox / sizeof c->ns_sandbox[0]) {
        catalog_unlock(c);
        json_decref(doc);
        return KITH_ETOOLARGE;
    }
    uint32_t id = 10000000u + (uint32_t)catalog_next_seq(c, b, SEQ_NAMESPACE);
    json_object_set_new(doc, "id", json_integer(id));
    meta_put(b, sandbox, 'n', jstr(doc, "code"), doc);
    mem_namespace(c, sandbox, doc);
    catalog_unlock(c);
    if (id_out) *id_out = id;
    return 0;
}

int catalog_update_namespace(kith_catalog *c, store_batch *b, uint32_t sandbox, json_t *doc)
{
    uint32_t id = (uint32_t)json_integer_value(json_object_get(doc, "id"));
    catalog_wrlock(c);
    cat_namespace *n = NULL;
    for (size_t i = 0; i < c->namespaces.n && !n; i++)
        if (c->ns_sandbox[i] == sandbox && c->namespaces.v[i]->id == id) n = c->namespaces.v[i];
    if (!n || strcmp(n->code, jstr(doc, "code")) != 0) {
        catalog_unlock(c);
        json_decref(doc);
        return KITH_ENOTFOUND;
    }
    meta_put(b, sandbox, 'n', n->code, doc);
    json_decref(n->doc); /* readers hold their own reference */
    n->doc = doc;
    catalog_unlock(c);
    return 0;
}

int catalog_put_schema(kith_catalog *c, store_batch *b, uint32_t sandbox, json_t *doc,
                       kith_schema *compiled)
{
    meta_put(b, sandbox, 's', jstr(doc, "meta:altId"), doc);
    catalog_wrlock(c);
    mem_schema(c, sandbox, doc, compiled);
    catalog_unlock(c);
    return 0;
}

int catalog_delete_schema(kith_catalog *c, store_batch *b, uint32_t sandbox, const char *id)
{
    catalog_wrlock(c);
    size_t at;
    cat_schema *s = find_schema(c, sandbox, id, &at);
    if (!s) {
        catalog_unlock(c);
        return KITH_ENOTFOUND;
    }
    meta_del(b, sandbox, 's', s->altid);
    VEC_PUSH(c->retired, s->compiled);
    json_decref(s->doc);
    free(s);
    VEC_REMOVE_AT(c->schemas, at);
    catalog_unlock(c);
    return 0;
}

int catalog_put_dataset(kith_catalog *c, store_batch *b, uint32_t sandbox, json_t *doc)
{
    meta_put(b, sandbox, 'd', jstr(doc, "id"), doc);
    catalog_wrlock(c);
    mem_dataset(c, sandbox, doc);
    catalog_unlock(c);
    return 0;
}

int catalog_delete_dataset(kith_catalog *c, store_batch *b, uint32_t sandbox, const char *id)
{
    catalog_wrlock(c);
    int rc = KITH_ENOTFOUND;
    for (size_t i = 0; i < c->datasets.n; i++) {
        cat_dataset *d = c->datasets.v[i];
        if (d->sandbox != sandbox || strcmp(d->id, id) != 0) continue;
        meta_del(b, sandbox, 'd', id);
        json_decref(d->doc);
        free(d);
        VEC_REMOVE_AT(c->datasets, i);
        rc = 0;
        break;
    }
    catalog_unlock(c);
    return rc;
}

int catalog_put_inlet(kith_catalog *c, store_batch *b, uint32_t sandbox, json_t *doc)
{
    meta_put(b, sandbox, 'i', jstr(doc, "inletId"), doc);
    catalog_wrlock(c);
    mem_inlet(c, sandbox, doc);
    catalog_unlock(c);
    return 0;
}
