/* kith engine: open the store, load the catalog, bootstrap a new data dir, run the apply thread. */
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "kith/engine.h"
#include "kith/ca.h"
#include "kith/ingest.h"
#include "kith/recent.h"
#include "kith/segsvc.h"

const kith_limits KITH_LIMITS_DEFAULT = {
    .body_max = 1u << 20,
    .file_max = 256u << 20,
    .json_depth = 64,
    .max_identities = 20,
    .max_identity_len = 1024,
    .record_max = 100 * 1000,
    .event_max = 10 * 1000,
    .batch_messages = 5000,
    .graph_max = 50,
    .queue_max = 200000,
    .writer_nice = 5,
};

/* Runs on the writer thread: lowers its CPU priority by lim.writer_nice (Linux nice is per thread). Profile reads run
 * on the HTTP threads at the process's priority and preempt the writer when both want a core; the
 * writer's group commit absorbs the delay (a group just grows), so writes lose latency, not
 * throughput, while reads stay fast. Failure to renice only loses that preference. */
static int renice_writer(void *ctx, store_batch *b)
{
    (void)b;
    /* relative to the thread's current nice (the process's), as `nice -n` is */
    errno = 0;
    int cur = getpriority(PRIO_PROCESS, (id_t)syscall(SYS_gettid));
    if (cur == -1 && errno) cur = 0;
    int n = cur + *(const int *)ctx;
    if (n > 19) n = 19;
    if (setpriority(PRIO_PROCESS, (id_t)syscall(SYS_gettid), n) != 0)
        kith_log(KITH_LOG_WARN, "engine", "writer nice %d: %s", n, strerror(errno));
    return 0;
}

static int group_flush(void *arg, store_batch *b)
{
    kith_engine *e = arg;
    recent_prune(e); /* before the consumers read events: what the syncer wrote is in the store */
    ingest_group_end(e);
    catalog_flush_seq(e->cat, b);
    int rc = profile_flush_dirty(e, b);
    if (rc == 0) rc = identity_flush_group(e, b);
    if (rc == 0) rc = ca_flush_group(e, b);
    return rc ? rc : segsvc_flush_group(e, b);
}

/* The segment service's change stream: collected per group, published once durable. */
static void *group_sealed(void *arg, int rc)
{
    kith_engine *e = arg;
    if (rc != 0) { /* none of the group was written */
        recent_group_failed(e, apply_group_number(e->apply));
        ingest_group_failed(e, apply_group_number(e->apply));
    }
    return segsvc_group_sealed(arg, rc);
}

static void group_durable(void *arg, void *token, int rc)
{
    segsvc_group_durable(arg, token, rc);
}

/* Apply thread: a rollback or a failed group invalidates what the caches remember. */
static void engine_reset(void *arg)
{
    identity_cache_reset(arg);
}

struct bootstrap_ctx {
    kith_engine *e;
    const char *admin_secret;
};

static int bootstrap_fn(void *ctx, store_batch *b)
{
    struct bootstrap_ctx *c = ctx;
    kith_engine *e = c->e;
    identity_attach(e, b);
    catalog_rdlock(e->cat);
    bool has_prod = catalog_sandbox(e->cat, "prod") != NULL;
    catalog_unlock(e->cat);
    if (!has_prod) {
        char ts[40];
        kith_time_format(kith_now_ms(), ts, sizeof ts);
        json_t *doc = json_pack("{s:s, s:s, s:s, s:s, s:b, s:s}", "name", "prod", "title",
                                "Production", "type", "production", "state", "active", "isDefault",
                                1, "createdDate", ts);
        catalog_put_sandbox(e->cat, b, "prod", doc, NULL);
    }
    if (c->admin_secret) {
        char id[KITH_ID_LEN + 1];
        catalog_new_id(id);
        uint8_t h[32];
        catalog_hash_secret(c->admin_secret, h);
        json_t *sbs = json_pack("[s]", "*");
        json_t *doc = json_pack("{s:s, s:s, s:s, s:O, s:I}", "id", id, "name", "bootstrap admin",
                                "role", "admin", "sandboxes", sbs, "createdAt",
                                (json_int_t)kith_now_ms());
        catalog_put_key(e->cat, b, id, h, ROLE_ADMIN, sbs, doc);
    }
    return 0;
}

static void count_one(const cat_key *k, void *arg)
{
    (void)k;
    (*(int *)arg)++;
}

static int count_keys(kith_catalog *c)
{
    int n = 0;
    catalog_each_key(c, count_one, &n);
    return n;
}

int engine_open(const char *data_dir, const kith_limits *lim, const char *admin_key, bool sync,
                kith_engine **out, char **errmsg)
{
    if (mkdir(data_dir, 0700) != 0 && errno != EEXIST) {
        if (errmsg && asprintf(errmsg, "cannot create data dir %s: %s", data_dir, strerror(errno)) < 0)
            *errmsg = NULL;
        return KITH_EIO;
    }
    kith_engine *e = kith_xcalloc(1, sizeof *e);
    e->lim = lim ? *lim : KITH_LIMITS_DEFAULT;
    snprintf(e->data_dir, sizeof e->data_dir, "%s", data_dir);
    if (kith_random(&e->epoch, sizeof e->epoch) != 0) e->epoch = (uint64_t)kith_now_ms();
    char path[4200];
    snprintf(path, sizeof path, "%s/db", data_dir);
    store_options so = {.sync = sync, .block_cache_bytes = e->lim.cache_bytes};
    int rc = store_open(path, &so, &e->store, errmsg);
    if (rc) {
        free(e);
        return rc;
    }
    /* The identity log's records a crash left behind (graph writes not yet materialised) first. */
    size_t replayed = 0;
    rc = identity_log_replay(e, &replayed);
    if (rc) {
        if (errmsg) *errmsg = kith_xstrdup("identity log replay failed (see the log)");
        store_close(e->store);
        identity_state_free(e);
        free(e);
        return rc;
    }
    catalog_load(e->store, &e->cat);
    recent_init(e);
    rc = apply_start(e->store, e->lim.queue_max, group_flush, e, &e->apply);
    if (rc) {
        recent_free(e);
        catalog_free(e->cat);
        store_close(e->store);
        free(e);
        return rc;
    }
    apply_set_reset(e->apply, engine_reset, e);
    apply_set_publish(e->apply, group_sealed, group_durable, e);
    apply_set_blind_fill(e->apply, identity_blind_fill, e);
    /* First start of a data dir: create prod and the bootstrap admin key. */
    catalog_rdlock(e->cat);
    int nkeys = count_keys(e->cat);
    catalog_unlock(e->cat);
    struct bootstrap_ctx bc = {.e = e};
    char generated[80];
    if (nkeys == 0) {
        if (admin_key && *admin_key) {
            bc.admin_secret = admin_key;
        } else {
            uint8_t r[24];
            kith_random(r, sizeof r);
            strcpy(generated, "kith_");
            kith_hex(r, sizeof r, generated + 5);
            bc.admin_secret = generated;
            snprintf(path, sizeof path, "%s/admin.key", data_dir);
            int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
            if (fd >= 0) {
                dprintf(fd, "%s\n", generated);
                fsync(fd);
                close(fd);
            }
            fprintf(stderr, "kithd: generated admin key (saved to %s): %s\n", path, generated);
        }
    }
    rc = apply_call(e->apply, bootstrap_fn, &bc, false);
    if (rc) {
        if (errmsg) *errmsg = kith_xstrdup("bootstrap write failed");
        engine_close(e);
        return rc;
    }
    if (e->lim.writer_nice > 0) {
        (void)apply_call(e->apply, renice_writer, &e->lim.writer_nice, false);
        /* The syncer writes the events and their dedup entries (blind appends): write work too. */
        apply_set_syncer_nice(e->apply, e->lim.writer_nice);
    }
    ca_init(e); /* before segsvc_init: segments may read _computed.<name> */
    segsvc_init(e);
    profile_remat_start(e);
    *out = e;
    return 0;
}

void engine_close(kith_engine *e)
{
    if (!e) return;
    profile_remat_stop(e);
    segsvc_stop(e);
    ca_stop(e);
    apply_stop(e->apply);
    catalog_free(e->cat);
    store_close(e->store);
    profile_dirty_free(e);
    identity_state_free(e);
    segsvc_free(e);
    ca_free(e);
    recent_free(e);
    ingest_state_free(e);
    free(e);
}
