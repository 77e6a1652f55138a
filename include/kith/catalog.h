/* kith catalog: the control plane held in memory (sandboxes, API keys, namespaces, schemas, datasets,
 * inlets), persisted as JSON in the meta column family.
 *
 * Readers take catalog_rdlock()/catalog_unlock() around lookups; pointers returned by lookups are borrowed
 * and valid while the lock is held, except compiled schemas, which live until catalog_free (a replaced
 * schema is retired, never freed while kithd runs, so a validation in flight keeps working).
 * Mutations happen only on the apply thread (catalog_apply_*), which writes the meta keys into the batch
 * and updates memory after the batch commits. */
#ifndef KITH_CATALOG_H
#define KITH_CATALOG_H

#include <jansson.h>
#include <pthread.h>

#include "kith/base.h"
#include "kith/schema.h"
#include "kith/store.h"

#define KITH_SANDBOX_NAME_MAX 64
#define KITH_ID_LEN 24 /* dataset, inlet, key, batch ids: 24 lowercase hex characters */

enum kith_role { ROLE_NONE = 0, ROLE_INGEST = 1, ROLE_VIEWER = 2, ROLE_EDITOR = 3, ROLE_ADMIN = 4 };
const char *kith_role_name(int role);
int kith_role_parse(const char *s); /* ROLE_NONE when unknown */

enum ns_type { NS_COOKIE, NS_DEVICE, NS_CROSS_DEVICE, NS_EMAIL, NS_PHONE, NS_NON_PEOPLE, NS_PARTNER };
const char *ns_type_name(int t);
int ns_type_parse(const char *s); /* -1 when unknown; case-insensitive, accepts "Cross_device" */

typedef struct cat_sandbox {
    uint32_t id;
    char name[KITH_SANDBOX_NAME_MAX + 1];
    json_t *doc; /* {name, title, type, state, createdDate, ...} */
} cat_sandbox;

typedef struct cat_key {
    char id[KITH_ID_LEN + 1];
    uint8_t hash[32]; /* SHA-256 of the secret */
    int role;
    json_t *sandboxes; /* array of names; ["*"] = all */
    json_t *doc;       /* public document (no secret, no hash) */
} cat_key;

typedef struct cat_namespace {
    uint32_t id;
    char code[64];
    int type;
    bool custom;
    json_t *doc;
} cat_namespace;

typedef struct cat_schema {
    char id[160];    /* $id */
    char altid[160]; /* meta:altId */
    uint32_t sandbox;
    schema_class cls;
    bool profile_enabled;  /* meta:immutableTags contains "union" */
    kith_schema *compiled; /* never freed before catalog_free */
    json_t *doc;           /* stored definition + descriptors ("kith:descriptors") */
} cat_schema;

typedef struct cat_dataset {
    char id[KITH_ID_LEN + 1];
    uint32_t sandbox;
    char schema_id[160];
    bool profile_enabled, identity_enabled;
    json_t *doc;
} cat_dataset;

typedef struct cat_inlet {
    char id[KITH_ID_LEN + 1];   /* connection id */
    char inlet[KITH_ID_LEN * 2 + 1]; /* inlet id (48 hex) */
    uint32_t sandbox;
    bool auth_required;
    json_t *doc;
} cat_inlet;

typedef struct kith_catalog kith_catalog;

int catalog_load(kith_store *st, kith_catalog **out);
void catalog_free(kith_catalog *c);
void catalog_rdlock(kith_catalog *c);
void catalog_wrlock(kith_catalog *c);
void catalog_unlock(kith_catalog *c);

/* Lookups (hold the read lock). */
const cat_sandbox *catalog_sandbox(kith_catalog *c, const char *name);
const cat_sandbox *catalog_sandbox_by_id(kith_catalog *c, uint32_t id);
/* Calls fn for every sandbox, in id order. */
void catalog_each_sandbox(kith_catalog *c, void (*fn)(const cat_sandbox *, void *), void *arg);
const cat_key *catalog_key_by_secret(kith_catalog *c, const char *secret);
const cat_key *catalog_key(kith_catalog *c, const char *id);
void catalog_each_key(kith_catalog *c, void (*fn)(const cat_key *, void *), void *arg);
bool catalog_key_allows(const cat_key *k, const char *sandbox);
/* Namespaces: standard ones exist in every sandbox; code match is case-insensitive. */
const cat_namespace *catalog_namespace(kith_catalog *c, uint32_t sandbox, const char *code);
const cat_namespace *catalog_namespace_by_id(kith_catalog *c, uint32_t sandbox, uint32_t id);
void catalog_each_namespace(kith_catalog *c, uint32_t sandbox,
                            void (*fn)(const cat_namespace *, void *), void *arg);
const cat_schema *catalog_schema(kith_catalog *c, uint32_t sandbox, const char *id_or_altid);
void catalog_each_schema(kith_catalog *c, uint32_t sandbox, void (*fn)(const cat_schema *, void *),
                         void *arg);
const cat_dataset *catalog_dataset(kith_catalog *c, uint32_t sandbox, const char *id);
void catalog_each_dataset(kith_catalog *c, uint32_t sandbox, void (*fn)(const cat_dataset *, void *),
                          void *arg);
const cat_inlet *catalog_inlet(kith_catalog *c, const char *inlet_id); /* any sandbox */
/* The Segment-type connection whose doc carries "writeKey": key (any sandbox); NULL when none. */
const cat_inlet *catalog_inlet_by_write_key(kith_catalog *c, const char *key);
void catalog_each_inlet(kith_catalog *c, uint32_t sandbox, void (*fn)(const cat_inlet *, void *),
                        void *arg);

/* Mutations: apply thread only. Each writes its meta key(s) into b and updates memory at once (under the
 * write lock); the caller acknowledges only after the batch committed. json docs are taken (reference
 * stolen); kith_schema pointers are taken. */
int catalog_put_sandbox(kith_catalog *c, store_batch *b, const char *name, json_t *doc, uint32_t *id_out);
int catalog_delete_sandbox(kith_catalog *c, store_batch *b, uint32_t id);
int catalog_put_key(kith_catalog *c, store_batch *b, const char *id, const uint8_t hash[32], int role,
                    json_t *sandboxes, json_t *doc);
int catalog_delete_key(kith_catalog *c, store_batch *b, const char *id);
int catalog_put_namespace(kith_catalog *c, store_batch *b, uint32_t sandbox, json_t *doc,
                          uint32_t *id_out);
/* Replaces the document of an existing custom namespace (doc owned: same "id" and "code"; only its
 * name and description may differ). KITH_ENOTFOUND when there is no such custom namespace. */
int catalog_update_namespace(kith_catalog *c, store_batch *b, uint32_t sandbox, json_t *doc);
int catalog_put_schema(kith_catalog *c, store_batch *b, uint32_t sandbox, json_t *doc,
                       kith_schema *compiled);
int catalog_delete_schema(kith_catalog *c, store_batch *b, uint32_t sandbox, const char *id);
int catalog_put_dataset(kith_catalog *c, store_batch *b, uint32_t sandbox, json_t *doc);
int catalog_delete_dataset(kith_catalog *c, store_batch *b, uint32_t sandbox, const char *id);
int catalog_put_inlet(kith_catalog *c, store_batch *b, uint32_t sandbox, json_t *doc);

/* Per-process counters persisted in meta (identity ids, cluster ids, sandbox ids). Apply thread only. */
uint64_t catalog_next_seq(kith_catalog *c, store_batch *b, int which);
enum { SEQ_IDENTITY, SEQ_CLUSTER, SEQ_SANDBOX, SEQ_NAMESPACE, SEQ_COUNT };
/* Apply thread, once per group after its operations: persists reserved sequence blocks. */
void catalog_flush_seq(kith_catalog *c, store_batch *b);

/* A new random id of 24 hex characters (out: 25 bytes). */
void catalog_new_id(char *out);
/* SHA-256 of a key secret. */
void catalog_hash_secret(const char *secret, uint8_t out[32]);

#endif
