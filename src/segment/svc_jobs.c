/* kith segment jobs and export jobs (AEP /segment/jobs, /export/jobs; aep-spec 4.6, 4.7).
 *
 * Jobs are kept in memory (at most SEGJOB_KEEP records) and run one at a time, in creation order, by
 * one job thread. A job waits for the apply thread to commit everything queued before it (so every
 * acknowledged write is in), takes a RocksDB snapshot, and hands the sandbox's clusters out in chunks
 * to worker threads (one per core, at most JOB_WORKERS_MAX), each with its own evaluator, reading the
 * snapshot through svc_scan.c. One `now` per job (PQL.md).
 *
 * Segment jobs: every segment of the job is evaluated for every profile, in creation order (an
 * inSegment to a segment of the same job sees this job's answer). Metrics count the transitions
 * against the snapshot's memberships. The memberships that must change are sent to the apply thread
 * in chunks of JOB_WRITE_CHUNK, which decides against the state at write time
 * (docs/CONTRACT-NOTES.md "Segment jobs"): a batch segment's membership is written from the job's
 * answer (the transition computed from the current state); a streaming segment, whose memberships
 * the streaming evaluator keeps current, is only re-evaluated for that profile on current data when
 * the job's answer disagrees with the current membership — so a snapshot answer never overwrites a
 * newer streaming one. A definition changed or deleted during the job is not written.
 *
 * Backfill: creating a definition, or changing its expression, queues a segment job for it (source
 * "backfill"; queued backfills of a sandbox coalesce into one job).
 *
 * Export jobs: the profiles that hold one of the filter's segments in one of its statuses (all
 * profiles without a filter) are written, as their Profile Access entity projected on `fields` and
 * merged with the job's merge policy, one JSON object a line, to DATA_DIR/exports/<id>.jsonl. */
#include <dirent.h>
#include <errno.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "kith/jalloc.h"
#include "svc_int.h"

#define JOB_WORKERS_MAX 8
#define JOB_CLUSTER_CHUNK 256 /* clusters a worker takes at once */
#define JOB_WRITE_CHUNK 2048  /* membership changes per apply-thread call */
#define JOB_STATES_MAX SEGDEF_MAX_PER_SANDBOX
#define EXPORT_FIELDS_MAX 4096
#define EXPORT_FLUSH 262144 /* bytes a worker buffers before appending to the file */
#define JOB_SEGMENTS_SHOWN 1500
#define JOB_POLICIES 16 /* distinct merge policies in one job (more: the sandbox default) */
#define JOB_INPUTS 8    /* (policy, member) inputs kept per profile */ /* AEP: more segments collapse to [{"segmentId": "*"}] */

enum { J_NEW, J_PROCESSING, J_SUCCEEDED, J_FAILED, J_CANCELLED };
static const char *const status_names[] = {"NEW", "PROCESSING", "SUCCEEDED", "FAILED", "CANCELLED"};

typedef struct job_seg {
    char id[SEGDEF_ID_LEN + 1];
    char *text;        /* the expression evaluated (owned; NULL: the definition is gone) */
    char *mp;          /* mergePolicyId (owned) or NULL */
    pql_program *prog; /* compiled at the start (owned) */
    bool streaming;
    unsigned statuses; /* export filter: bits 1 << SEG_* */
    int slot;          /* its merge policy in job_run.pol */
    int64_t batch_eval; /* batch segments: the definition's last complete evaluation at the start */
    atomic_ullong realized, existing, exited, failed;
} job_seg;

typedef struct seg_job {
    char id[40];
    uint32_t sb;
    int kind;
    const char *source; /* "api", "backfill" */
    _Atomic int status;
    atomic_bool cancel;
    int64_t created, started, ended;
    int64_t now; /* the evaluation instant */
    job_seg *seg;
    size_t nseg, capseg;
    bool all; /* "*" */
    atomic_ullong total, processed, writes, write_ns;
    atomic_ullong cpu_ns; /* CPU time of the job's workers (their own threads only) */
    char error[256];
    /* export */
    char *fields;
    char mp_id[64];
    bool has_policy, empty_profiles;
    atomic_ullong exported;
    char path[4300];
} seg_job;

struct svc_jobs {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    seg_job **v; /* creation order */
    size_t n, cap;
    pthread_t runner;
    bool started, stopping;
    uint64_t export_seq;
};

/* --- records --- */

static void job_free(seg_job *j)
{
    if (!j) return;
    for (size_t i = 0; i < j->nseg; i++) {
        free(j->seg[i].text);
        free(j->seg[i].mp);
        pql_program_free(j->seg[i].prog);
    }
    free(j->seg);
    free(j->fields);
    free(j);
}

static job_seg *job_add_seg(seg_job *j, const char *id)
{
    for (size_t i = 0; i < j->nseg; i++)
        if (strcmp(j->seg[i].id, id) == 0) return &j->seg[i];
    if (j->nseg == j->capseg) {
        j->capseg = j->capseg ? j->capseg * 2 : 8;
        j->seg = kith_xrealloc(j->seg, j->capseg * sizeof *j->seg);
    }
    job_seg *g = &j->seg[j->nseg++];
    memset(g, 0, sizeof *g);
    snprintf(g->id, sizeof g->id, "%s", id);
    return g;
}

static bool finished(const seg_job *j)
{
    return j->status >= J_SUCCEEDED;
}

/* Adds j to the registry, dropping the oldest finished records beyond SEGJOB_KEEP. Locked. */
static void registry_add(struct svc_jobs *J, seg_job *j)
{
    while (J->n >= SEGJOB_KEEP) {
        size_t k = 0;
        while (k < J->n && !finished(J->v[k]))
            k++;
        if (k == J->n) break;
        if (J->v[k]->path[0]) unlink(J->v[k]->path);
        job_free(J->v[k]);
        memmove(&J->v[k], &J->v[k + 1], (J->n - k - 1) * sizeof *J->v);
        J->n--;
    }
    if (J->n == J->cap) {
        J->cap = J->cap ? J->cap * 2 : 64;
        J->v = kith_xrealloc(J->v, J->cap * sizeof *J->v);
    }
    J->v[J->n++] = j;
}

static seg_job *registry_find(struct svc_jobs *J, uint32_t sb, int kind, const char *id)
{
    for (size_t i = 0; i < J->n; i++)
        if (J->v[i]->sb == sb && J->v[i]->kind == kind && strcmp(J->v[i]->id, id) == 0)
            return J->v[i];
    return NULL;
}

/* --- the job as JSON (jobs locked) --- */

static json_t *time_block(const seg_job *j)
{
    int64_t end = j->ended ? j->ended : j->started ? kith_now_ms() : 0;
    return json_pack("{s:I, s:I, s:I}", "startTimeInMs", (json_int_t)j->started, "endTimeInMs",
                     (json_int_t)j->ended, "totalTimeInMs",
                     (json_int_t)(j->started ? end - j->started : 0));
}

static json_t *progress(const seg_job *j)
{
    uint64_t total = j->total, done = j->processed;
    return json_pack("{s:I, s:I, s:f}", "profilesProcessed", (json_int_t)done, "totalProfiles",
                     (json_int_t)total,
                     "percent", finished(j) && j->status == J_SUCCEEDED ? 100.0
                                : total ? 100.0 * (double)done / (double)total
                                        : 0.0);
}

static json_t *sandbox_obj(kith_engine *e, uint32_t sb)
{
    catalog_rdlock(e->cat);
    const cat_sandbox *s = catalog_sandbox_by_id(e->cat, sb);
    json_t *o = json_pack("{s:s, s:s}", "sandboxId", s ? s->name : "", "sandboxName",
                          s ? s->name : "");
    catalog_unlock(e->cat);
    return o;
}

static json_t *segment_job_json(kith_engine *e, const seg_job *j)
{
    json_t *segs = json_array();
    json_t *counter = json_object(), *by_status = json_object();
    if (j->all || j->nseg > JOB_SEGMENTS_SHOWN)
        json_array_append_new(segs, json_pack("{s:s}", "segmentId", "*"));
    for (size_t i = 0; i < j->nseg; i++) {
        const job_seg *g = &j->seg[i];
        if (!j->all && j->nseg <= JOB_SEGMENTS_SHOWN) {
            json_t *seg = json_pack("{s:s}", "id", g->id);
            if (g->text)
                json_object_set_new(seg, "expression",
                                    json_pack("{s:s, s:s, s:s}", "type", "PQL", "format",
                                              "pql/text", "value", g->text));
            if (g->mp) json_object_set_new(seg, "mergePolicyId", json_string(g->mp));
            json_array_append_new(segs, json_pack("{s:s, s:o}", "segmentId", g->id, "segment", seg));
        }
        if (j->status == J_NEW) continue;
        json_object_set_new(counter, g->id, json_integer((json_int_t)(g->realized + g->existing)));
        json_t *st = json_pack("{s:I, s:I, s:I}", "realized", (json_int_t)g->realized, "existing",
                               (json_int_t)g->existing, "exited", (json_int_t)g->exited);
        if (g->failed) json_object_set_new(st, "kith:failed", json_integer((json_int_t)g->failed));
        json_object_set_new(by_status, g->id, st);
    }
    char link[96];
    snprintf(link, sizeof link, "/data/core/ups/segment/jobs/%s", j->id);
    json_t *metrics = json_pack(
        "{s:o, s:o, s:I, s:o, s:o}", "totalTime", time_block(j), "profileSegmentationTime",
        time_block(j), "totalProfiles", (json_int_t)j->total, "segmentedProfileCounter", counter,
        "segmentedProfileByStatusCounter", by_status);
    json_t *doc = json_pack(
        "{s:s, s:o, s:s, s:s, s:s, s:o, s:o, s:{s:{s:s, s:s}, s:{s:s, s:s}}, s:I, s:I, s:I, s:o}",
        "id", j->id, "sandbox", sandbox_obj(e, j->sb), "profileInstanceId", "ups", "source",
        j->source, "status", status_names[j->status], "segments", segs, "metrics", metrics,
        "_links", "cancel", "href", link, "method", "DELETE", "checkStatus", "href", link, "method",
        "GET", "creationTime", (json_int_t)j->created, "updateTime",
        (json_int_t)(j->ended ? j->ended : j->started ? j->started : j->created), "updateEpoch",
        (json_int_t)((j->ended ? j->ended : j->created) / 1000), "kith:progress", progress(j));
    if (j->now) json_object_set_new(doc, "kith:now", json_integer(j->now));
    /* Memberships the writer changed, and the time workers waited for those writes. */
    json_object_set_new(doc, "kith:writes",
                        json_pack("{s:I, s:I}", "memberships", (json_int_t)j->writes, "waitMs",
                                  (json_int_t)(j->write_ns / 1000000)));
    /* CPU time of the evaluating threads (the writer's share is not in it) */
    if (finished(j))
        json_object_set_new(doc, "kith:workerCpuMs", json_integer((json_int_t)(j->cpu_ns / 1000000)));
    if (j->error[0])
        json_object_set_new(doc, "errors",
                            json_pack("[{s:s, s:s}]", "code", "kith-job", "msg", j->error));
    return doc;
}

static json_t *export_job_json(kith_engine *e, const seg_job *j)
{
    (void)e;
    json_t *segs = json_array();
    for (size_t i = 0; i < j->nseg; i++) {
        json_t *st = json_array();
        for (int k = SEG_REALIZED; k <= SEG_EXITED; k++)
            if (j->seg[i].statuses & (1u << k)) json_array_append_new(st, json_string(seg_status_name(k)));
        json_array_append_new(segs, json_pack("{s:s, s:s, s:o}", "segmentId", j->seg[i].id,
                                              "segmentNs", "ups", "status", st));
    }
    char link[96];
    snprintf(link, sizeof link, "/data/core/ups/export/jobs/%s/file", j->id);
    json_t *doc = json_pack(
        "{s:I, s:s, s:s, s:s, s:{s:o, s:b}, s:o, s:{s:o, s:o, s:I}, s:I, s:I, s:o}", "id",
        (json_int_t)strtoll(j->id, NULL, 10), "jobType", "BATCH", "status",
        status_names[j->status], "fields", j->fields ? j->fields : "", "filter", "segments", segs,
        "emptyProfiles", j->empty_profiles, "mergePolicy",
        j->mp_id[0] ? json_pack("{s:s, s:i}", "id", j->mp_id, "version", 1) : json_object(),
        "metrics", "totalTime", time_block(j), "profileExportTime", time_block(j),
        "totalExportedProfileCounter", (json_int_t)j->exported, "createdTime",
        (json_int_t)j->created, "updateTime",
        (json_int_t)(j->ended ? j->ended : j->started ? j->started : j->created), "kith:progress",
        progress(j));
    if (j->status == J_SUCCEEDED)
        json_object_set_new(doc, "_links", json_pack("{s:{s:s}}", "file", "href", link));
    if (j->error[0])
        json_object_set_new(doc, "errors",
                            json_pack("[{s:s, s:s}]", "code", "kith-job", "msg", j->error));
    return doc;
}

static json_t *job_json(kith_engine *e, const seg_job *j)
{
    return j->kind == SEGJOB_EXPORT ? export_job_json(e, j) : segment_job_json(e, j);
}

/* --- running a job --- */

struct job_run {
    struct segsvc *s;
    seg_job *j;
    store_snapshot *snap;
    pthread_mutex_t mu;
    store_iter *it; /* the sandbox's clusters, over the snapshot (mu) */
    unsigned load;  /* SVC_LOAD_* */
    int64_t since;
    size_t *by_id;  /* job segment indexes sorted by id */
    _Atomic int rc; /* first error */
    merge_policy pol[JOB_POLICIES]; /* the segments' merge policies (slot 0: the sandbox default) */
    bool pol_materialised[JOB_POLICIES];
    uint64_t pol_sig[JOB_POLICIES];
    size_t npol;
    FILE *out;      /* export (mu) */
    char *fields;   /* export: the job's fields plus identityMap (owned) */
};

/* The next clusters to evaluate, with their cluster CF values when vals is not NULL (vals holds
 * them back to back; off[i], len[i] locate cluster i's). */
static size_t next_clusters(struct job_run *r, uint64_t *ids, kith_buf *vals, size_t *off,
                            size_t *len, size_t cap)
{
    size_t n = 0;
    if (vals) vals->len = 0;
    pthread_mutex_lock(&r->mu);
    for (; n < cap && store_iter_valid(r->it); store_iter_next(r->it)) {
        size_t kl, vl;
        const uint8_t *k = store_iter_key(r->it, &kl);
        if (kl != 12) continue;
        if (vals) {
            const uint8_t *v = store_iter_value(r->it, &vl);
            off[n] = vals->len;
            len[n] = vl;
            kith_buf_append(vals, v, vl);
        }
        ids[n++] = kith_get_be64(k + 4);
    }
    pthread_mutex_unlock(&r->mu);
    return n;
}

static const seg_state *state_find(const svc_state_ent *v, size_t n, const char *id)
{
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        int c = memcmp(v[mid].id, id, SEGDEF_ID_LEN);
        if (c == 0) return &v[mid].st;
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return NULL;
}

static long seg_find(const struct job_run *r, const char *id)
{
    size_t lo = 0, hi = r->j->nseg;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        int c = strcmp(r->j->seg[r->by_id[mid]].id, id);
        if (c == 0) return (long)r->by_id[mid];
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    return -1;
}

/* The transition a membership makes when an evaluation answers match (AEP statuses). */
static int transition(int old, bool match)
{
    if (match) return old == SEG_REALIZED || old == SEG_EXISTING ? SEG_EXISTING : SEG_REALIZED;
    return old == SEG_REALIZED || old == SEG_EXISTING ? SEG_EXITED : old;
}

static bool is_member(int status)
{
    return status == SEG_REALIZED || status == SEG_EXISTING;
}

struct witem {
    uint64_t cluster;
    uint32_t seg;
    bool match;
};

struct wcall {
    struct job_run *r;
    const struct witem *v;
    size_t n;
};

/* Apply thread: one chunk of membership changes, decided against the state at write time. */
static int write_fn(void *ctx, store_batch *b)
{
    struct wcall *c = ctx;
    struct segsvc *s = c->r->s;
    seg_job *j = c->r->j;
    kith_engine *e = s->e;
    int64_t now = kith_now_ms();
    /* The chunk's items come cluster by cluster: the definitions are looked up once per chunk,
     * the cluster's existence and members once per cluster. */
    segdef **defs = kith_xcalloc(j->nseg ? j->nseg : 1, sizeof *defs);
    uint8_t *looked = kith_xcalloc(j->nseg ? j->nseg : 1, 1);
    uint64_t last = 0;
    bool have_last = false, exists = false, have_m = false;
    cluster_members m = {0};
    int rc = 0;
    for (size_t i = 0; i < c->n && rc == 0; i++) {
        const struct witem *w = &c->v[i];
        const job_seg *g = &j->seg[w->seg];
        if (!looked[w->seg]) {
            looked[w->seg] = 1;
            segdef *d = svc_def_find(s, j->sb, g->id);
            const char *text = svc_def_text(d); /* pql/json definitions: their canonical text */
            /* changed or deleted meanwhile: not written */
            defs[w->seg] = d && d->prog && text && strcmp(text, g->text) == 0 ? d : NULL;
        }
        segdef *d = defs[w->seg];
        if (!d) continue;
        if (!have_last || last != w->cluster) {
            if (have_m) cluster_members_free(&m);
            have_m = false;
            last = w->cluster;
            have_last = true;
            store_key k;
            skey_init(&k, j->sb);
            skey_u64(&k, w->cluster);
            kith_buf v = {0};
            int grc = identity_graph_get(e, b, STORE_CF_CLUSTER, k.b, k.n, &v);
            kith_buf_free(&v);
            if (grc && grc != KITH_ENOTFOUND) rc = grc;
            exists = grc == 0; /* else merged away meanwhile */
        }
        if (!exists) continue;
        seg_state cur = svc_state_get(e, b, j->sb, g->id, w->cluster);
        if (is_member(cur.status) == w->match) continue; /* nothing to change */
        if (d->mode == PQL_MODE_BATCH) {
            /* Only entries and exits are written: a member the job confirms reads as existing
             * once the job is complete (svc_status_shown). */
            seg_state st = cur;
            st.status = w->match ? SEG_REALIZED : SEG_EXITED;
            st.lqt = j->now;
            svc_state_put(e, b, j->sb, g->id, w->cluster, &st);
            if (!have_m) have_m = identity_members(e, b, j->sb, w->cluster, &m) == 0;
            svc_note_change(s, j->sb, w->cluster, g->id, st.status, st.lqt, have_m ? &m : NULL);
        } else {
            /* streaming disagrees with the job: decide again on current data */
            rc = svc_eval_segment(e, b, j->sb, w->cluster, d, now);
        }
        j->writes++;
    }
    if (have_m) cluster_members_free(&m);
    free(defs);
    free(looked);
    return rc;
}

static int flush_writes(struct job_run *r, struct witem *v, size_t *n)
{
    if (*n == 0) return 0;
    struct wcall c = {r, v, *n};
    struct timespec t0, t1;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    int rc = apply_call(r->s->e->apply, write_fn, &c, false);
    clock_gettime(CLOCK_MONOTONIC, &t1);
    r->j->write_ns += (uint64_t)((t1.tv_sec - t0.tv_sec) * 1000000000LL + (t1.tv_nsec - t0.tv_nsec));
    *n = 0;
    return rc;
}

struct inseg_ctx {
    struct job_run *r;
    const svc_state_ent *states;
    size_t nstates;
    const int8_t *answer; /* this job's answers for this profile: -1 not yet */
};

static bool job_in_segment(void *arg, const char *id)
{
    struct inseg_ctx *c = arg;
    long i = seg_find(c->r, id);
    if (i >= 0 && c->answer[i] >= 0) return c->answer[i] == 1;
    if (strlen(id) != SEGDEF_ID_LEN) return false;
    const seg_state *st = state_find(c->states, c->nstates, id);
    return st && is_member(st->status);
}

/* The merge policy each segment evaluates with, as streaming does (svc_stream.c): its
 * mergePolicyId, else the sandbox's default; a policy deleted since falls back to the default. */
static void resolve_policies(struct job_run *r)
{
    seg_job *j = r->j;
    kith_engine *e = r->s->e;
    char ids[JOB_POLICIES][64];
    profile_policy_resolve(e, j->sb, NULL, &r->pol[0]);
    ids[0][0] = 0;
    r->npol = 1;
    for (size_t i = 0; i < j->nseg; i++) {
        job_seg *g = &j->seg[i];
        const char *mp = g->mp ? g->mp : "";
        g->slot = 0;
        for (size_t k = 0; k < r->npol && *mp; k++)
            if (strcmp(ids[k], mp) == 0) g->slot = (int)k;
        if (!*mp || g->slot || r->npol == JOB_POLICIES) continue;
        merge_policy p;
        if (profile_policy_resolve(e, j->sb, mp, &p) != 0) continue;
        snprintf(ids[r->npol], sizeof ids[0], "%s", mp);
        r->pol[r->npol] = p;
        g->slot = (int)r->npol++;
    }
    for (size_t k = 0; k < r->npol; k++) {
        const merge_policy *p = &r->pol[k];
        r->pol_materialised[k] = profile_policy_materialised(p);
        r->pol_sig[k] = merge_policy_signature(p);
        if (!r->pol_materialised[k]) r->load |= SVC_LOAD_MEMBERS;
    }
}

/* What a segment of one merge policy sees of a profile: the stitched profile (member -1) or one
 * member identity's (identityGraph "none"), and the events (only the listed datasets' under
 * dataSetPrecedence), as the streaming evaluator builds them. */
struct job_input {
    int slot;
    long member;
    json_t *profile, *events;
};

struct job_inputs {
    struct job_input v[JOB_INPUTS];
    size_t n;
    pql_memo *memo; /* filter results shared by the profile's evaluations (keyed by events array) */
};

static void inputs_clear(struct job_inputs *in)
{
    for (size_t i = 0; i < in->n; i++) {
        json_decref(in->v[i].profile);
        json_decref(in->v[i].events);
    }
    in->n = 0;
}

static const struct job_input *input_for(struct job_run *r, struct job_inputs *in,
                                         const svc_profile *p, int slot, long member)
{
    for (size_t i = 0; i < in->n; i++)
        if (in->v[i].slot == slot && in->v[i].member == member) return &in->v[i];
    struct job_input *x;
    if (in->n < JOB_INPUTS) {
        x = &in->v[in->n++];
    } else {
        x = &in->v[JOB_INPUTS - 1];
        json_decref(x->profile);
        json_decref(x->events);
        pql_memo_reset(in->memo); /* a new events array may reuse the freed one's address */
    }
    const merge_policy *pol = &r->pol[slot];
    x->slot = slot;
    x->member = member;
    if (r->pol_materialised[slot] && member < 0 && (!p->view || p->view_sig == r->pol_sig[slot])) {
        x->profile = json_incref(p->entity);
    } else {
        /* a view merged under another policy (a re-materialisation is under way) reads the
         * members this job did not load */
        cluster_members local = {0};
        const cluster_members *mm = &p->m;
        if (!p->has_members && identity_members(r->s->e, NULL, r->j->sb, p->cluster, &local) == 0)
            mm = &local;
        uint64_t one = member >= 0 ? mm->v[member].id : 0;
        uint64_t *ids = member >= 0 ? &one : kith_xcalloc(mm->n + 1, sizeof *ids);
        for (size_t i = 0; member < 0 && i < mm->n; i++)
            ids[i] = mm->v[i].id;
        json_t *view = profile_view_members(r->s->e, NULL, r->j->sb, ids,
                                            member >= 0 ? 1 : mm->n, pol);
        if (mm == &local) cluster_members_free(&local);
        x->profile = json_incref(json_object_get(view, "entity"));
        json_decref(view);
        if (member < 0) free(ids);
        json_t *ca = json_object_get(p->entity, "_computed"); /* the cluster's, whatever the policy */
        if (ca) {
            if (!x->profile) x->profile = json_object();
            json_object_set(x->profile, "_computed", ca);
        }
    }
    bool precedence = pol->attr == MP_DATASET_PRECEDENCE;
    if (!p->events || (!precedence && member < 0)) {
        x->events = json_incref(p->events);
    } else {
        x->events = json_array();
        for (size_t i = 0; i < json_array_size(p->events); i++) {
            if (member >= 0 && p->evmeta[i].identity != p->m.v[member].id) continue;
            bool listed = !precedence;
            for (size_t k = 0; k < pol->norder && !listed; k++)
                listed = strcmp(pol->order[k], p->evmeta[i].dataset) == 0;
            if (listed) json_array_append(x->events, json_array_get(p->events, i));
        }
    }
    return x;
}

/* Evaluates g for the profile under its merge policy; identityGraph "none": a member when one of
 * the identities alone qualifies. */
static int eval_seg(struct job_run *r, struct job_inputs *in, const svc_profile *p,
                    pql_evaluator *ev, const job_seg *g, pql_input *base, bool *match)
{
    pql_result res;
    if (r->pol[g->slot].graph != MP_GRAPH_NONE) {
        const struct job_input *x = input_for(r, in, p, g->slot, -1);
        base->profile = x->profile;
        base->events = x->events;
        int rc = pql_eval(ev, g->prog, base, &res);
        *match = rc == 0 && res.match;
        return rc;
    }
    *match = false;
    for (size_t i = 0; i < p->m.n && !*match; i++) {
        const struct job_input *x = input_for(r, in, p, g->slot, (long)i);
        base->profile = x->profile;
        base->events = x->events;
        int rc = pql_eval(ev, g->prog, base, &res);
        if (rc) return rc;
        *match = res.match;
    }
    return 0;
}

/* A worker's counts of one segment, added to the job's (shared, atomic) once per chunk of
 * clusters instead of once per profile. */
struct seg_counts {
    uint64_t realized, existing, exited, failed;
};

static void counts_flush(seg_job *j, struct seg_counts *c)
{
    for (size_t i = 0; i < j->nseg; i++) {
        job_seg *g = &j->seg[i];
        if (c[i].realized) g->realized += c[i].realized;
        if (c[i].existing) g->existing += c[i].existing;
        if (c[i].exited) g->exited += c[i].exited;
        if (c[i].failed) g->failed += c[i].failed;
    }
    memset(c, 0, (j->nseg ? j->nseg : 1) * sizeof *c);
}

static void *segment_worker(void *arg)
{
    struct job_run *r = arg;
    seg_job *j = r->j;
    kith_engine *e = r->s->e;
    store_snapshot_use(r->snap);
    pql_evaluator *ev = pql_evaluator_new(NULL);
    svc_state_ent *states = kith_xmalloc(JOB_STATES_MAX * sizeof *states);
    int8_t *answer = kith_xmalloc(j->nseg ? j->nseg : 1);
    struct seg_counts *cnt = kith_xcalloc(j->nseg ? j->nseg : 1, sizeof *cnt);
    const seg_state **st_of = kith_xcalloc(j->nseg ? j->nseg : 1, sizeof *st_of);
    struct witem *w = kith_xmalloc(JOB_WRITE_CHUNK * sizeof *w);
    size_t nw = 0;
    struct job_inputs inputs = {.n = 0, .memo = pql_memo_new()};
    svc_iters its = {.use_arena = jalloc_installed() != 0};
    uint64_t ids[JOB_CLUSTER_CHUNK];
    size_t n;
    kith_buf vals = {0};
    size_t off[JOB_CLUSTER_CHUNK], len[JOB_CLUSTER_CHUNK];
    while (!j->cancel && r->rc == 0 &&
           (n = next_clusters(r, ids, &vals, off, len, JOB_CLUSTER_CHUNK)) > 0) {
        size_t done = 0;
        for (size_t c = 0; c < n && !j->cancel && r->rc == 0; c++) {
            svc_profile p;
            done++;
            its.cluster_val = (const uint8_t *)vals.data + off[c];
            its.cluster_len = len[c];
            if (svc_profile_load(e, j->sb, ids[c], r->load, r->since, j->now, &its, &p) != 0)
                continue;
            size_t ns = svc_states_load(e, j->sb, ids[c], &its, states, JOB_STATES_MAX);
            /* each job segment's state: one merge of two id-ordered lists */
            for (size_t a = 0, b = 0; a < j->nseg; a++) {
                size_t i = r->by_id[a];
                int cmp = 1;
                while (b < ns && (cmp = memcmp(states[b].id, j->seg[i].id, SEGDEF_ID_LEN)) < 0)
                    b++;
                st_of[i] = b < ns && cmp == 0 ? &states[b].st : NULL;
            }
            memset(answer, 0xff, j->nseg ? j->nseg : 1);
            struct inseg_ctx ic = {r, states, ns, answer};
            pql_input in = {.now_ms = j->now, .in_segment = job_in_segment, .arg = &ic,
                            .memo = inputs.memo};
            for (size_t i = 0; i < j->nseg; i++) {
                job_seg *g = &j->seg[i];
                if (!g->prog) continue;
                bool match;
                if (eval_seg(r, &inputs, &p, ev, g, &in, &match) != 0) {
                    cnt[i].failed++;
                    continue;
                }
                answer[i] = match ? 1 : 0;
                const seg_state *old = st_of[i];
                int ost = old ? old->status : SEG_NONE;
                if (ost == SEG_REALIZED && old->lqt < g->batch_eval) ost = SEG_EXISTING;
                int nst = transition(ost, match);
                if (nst == SEG_REALIZED) cnt[i].realized++;
                else if (nst == SEG_EXISTING) cnt[i].existing++;
                else if (nst == SEG_EXITED && ost != SEG_EXITED) cnt[i].exited++;
                bool change = is_member(ost) != match;
                if (!change) continue;
                w[nw++] = (struct witem){ids[c], (uint32_t)i, match};
                if (nw == JOB_WRITE_CHUNK) {
                    int rc = flush_writes(r, w, &nw);
                    if (rc) r->rc = rc;
                }
            }
            inputs_clear(&inputs);
            pql_memo_reset(inputs.memo);
            svc_profile_clear(&p);
            jalloc_arena_reset(its.arena);
        }
        counts_flush(j, cnt);
        j->processed += done;
    }
    if (!j->cancel && r->rc == 0) {
        int rc = flush_writes(r, w, &nw);
        if (rc) r->rc = rc;
    }
    struct timespec cpu;
    if (clock_gettime(CLOCK_THREAD_CPUTIME_ID, &cpu) == 0)
        j->cpu_ns += (uint64_t)cpu.tv_sec * 1000000000ull + (uint64_t)cpu.tv_nsec;
    pql_memo_free(inputs.memo);
    kith_buf_free(&vals);
    free(w);
    free(st_of);
    free(cnt);
    free(answer);
    free(states);
    pql_evaluator_free(ev);
    svc_iters_free(&its);
    store_snapshot_use(NULL);
    return NULL;
}

static void *export_worker(void *arg)
{
    struct job_run *r = arg;
    seg_job *j = r->j;
    kith_engine *e = r->s->e;
    store_snapshot_use(r->snap);
    merge_policy pol;
    memset(&pol, 0, sizeof pol);
    if (profile_policy_resolve(e, j->sb, j->mp_id[0] ? j->mp_id : NULL, &pol) != 0) {
        r->rc = KITH_ENOTFOUND;
        snprintf(j->error, sizeof j->error, "the merge policy %s no longer exists", j->mp_id);
    }
    svc_state_ent *states = kith_xmalloc(JOB_STATES_MAX * sizeof *states);
    svc_iters its = {0};
    kith_buf buf = {0};
    uint64_t ids[JOB_CLUSTER_CHUNK];
    size_t n;
    while (!j->cancel && r->rc == 0 &&
           (n = next_clusters(r, ids, NULL, NULL, NULL, JOB_CLUSTER_CHUNK)) > 0) {
        for (size_t c = 0; c < n && !j->cancel && r->rc == 0; c++) {
            j->processed++;
            bool pass = j->nseg == 0;
            if (!pass) {
                size_t ns = svc_states_load(e, j->sb, ids[c], &its, states, JOB_STATES_MAX);
                for (size_t i = 0; i < j->nseg && !pass; i++) {
                    const seg_state *st = state_find(states, ns, j->seg[i].id);
                    int shown = st ? svc_status_shown(r->s, j->sb, j->seg[i].id, st->status, st->lqt) : 0;
                    pass = st && (j->seg[i].statuses & (1u << shown));
                }
            }
            if (!pass) continue;
            cluster_members m;
            if (identity_members(e, NULL, j->sb, ids[c], &m) != 0) continue;
            int err = 0;
            /* The projection of Profile Access, keeping identityMap so a line names its profile. */
            json_t *out = m.n ? profile_lookup_policy(e, j->sb, m.v[0].ns, m.v[0].value, m.v[0].len,
                                                      r->fields, &pol, &err)
                              : NULL;
            cluster_members_free(&m);
            const char *xid;
            json_t *prof = NULL;
            json_object_foreach(out, xid, prof) break;
            json_t *line = json_object_get(prof, "entity");
            if (!line || (!j->empty_profiles && json_array_size(json_object_get(prof, "sources")) == 0)) {
                json_decref(out);
                continue;
            }
            char *ser = kith_json_dumps(line, JSON_COMPACT);
            json_decref(out);
            if (!ser) continue;
            kith_buf_append(&buf, ser, strlen(ser));
            kith_buf_append(&buf, "\n", 1);
            free(ser);
            j->exported++;
            if (buf.len >= EXPORT_FLUSH) {
                pthread_mutex_lock(&r->mu);
                if (fwrite(buf.data, 1, buf.len, r->out) != buf.len) r->rc = KITH_EIO;
                pthread_mutex_unlock(&r->mu);
                buf.len = 0;
            }
        }
    }
    if (buf.len) {
        pthread_mutex_lock(&r->mu);
        if (fwrite(buf.data, 1, buf.len, r->out) != buf.len) r->rc = KITH_EIO;
        pthread_mutex_unlock(&r->mu);
    }
    kith_buf_free(&buf);
    free(states);
    merge_policy_clear(&pol);
    svc_iters_free(&its);
    store_snapshot_use(NULL);
    return NULL;
}

/* Apply thread: the job evaluated its batch segments completely (their members' statuses now
 * read against its now). */
static int mark_fn(void *ctx, store_batch *b)
{
    struct job_run *r = ctx;
    seg_job *j = r->j;
    for (size_t i = 0; i < j->nseg; i++) {
        const job_seg *g = &j->seg[i];
        segdef *d = g->prog ? svc_def_find(r->s, j->sb, g->id) : NULL;
        const char *text = svc_def_text(d);
        if (d && d->mode == PQL_MODE_BATCH && text && strcmp(text, g->text) == 0 && !g->failed)
            svc_def_mark_evaluated(r->s, b, d, j->now);
    }
    return 0;
}

static int barrier_fn(void *ctx, store_batch *b)
{
    (void)ctx;
    (void)b;
    return 0;
}

static int by_id_cmp(const void *a, const void *b, void *arg)
{
    const seg_job *j = arg;
    return strcmp(j->seg[*(const size_t *)a].id, j->seg[*(const size_t *)b].id);
}

static int workers_count(void)
{
    long n = sysconf(_SC_NPROCESSORS_ONLN);
    return n < 1 ? 1 : n > JOB_WORKERS_MAX ? JOB_WORKERS_MAX : (int)n;
}

/* Resolves the job's segments to their current definitions (creation order) and compiles them. */
static void resolve_segments(struct segsvc *s, seg_job *j)
{
    kith_engine *e = s->e;
    pthread_mutex_lock(&s->jobs->mu);
    pthread_rwlock_rdlock(&s->lock);
    if (j->all) {
        for (size_t i = 0; i < s->n; i++)
            if (s->v[i]->sb == j->sb) job_add_seg(j, s->v[i]->id);
    } else {
        /* creation order, so that an inSegment sees the answer of a segment of this job */
        size_t k = 0;
        for (size_t i = 0; i < s->n; i++) {
            if (s->v[i]->sb != j->sb) continue;
            for (size_t t = k; t < j->nseg; t++) {
                if (strcmp(j->seg[t].id, s->v[i]->id) == 0) {
                    job_seg tmp = j->seg[k];
                    j->seg[k] = j->seg[t];
                    j->seg[t] = tmp;
                    k++;
                    break;
                }
            }
        }
    }
    for (size_t i = 0; i < j->nseg; i++) {
        job_seg *g = &j->seg[i];
        segdef *d = svc_def_find(s, j->sb, g->id);
        free(g->text);
        const char *text = svc_def_text(d); /* pql/json definitions: their canonical text */
        g->text = text ? kith_xstrdup(text) : NULL;
        const char *mp = d ? json_string_value(json_object_get(d->doc, "mergePolicyId")) : NULL;
        free(g->mp);
        g->mp = mp ? kith_xstrdup(mp) : NULL;
        g->streaming = d && d->mode != PQL_MODE_BATCH;
        g->batch_eval = d && !g->streaming ? d->batch_eval : 0;
    }
    pthread_rwlock_unlock(&s->lock);
    pthread_mutex_unlock(&s->jobs->mu);
    for (size_t i = 0; i < j->nseg; i++) {
        job_seg *g = &j->seg[i];
        pql_error err;
        if (g->text && segsvc_compile(e, j->sb, g->text, &g->prog, &err) != 0) g->prog = NULL;
    }
}

static void run_job(struct segsvc *s, seg_job *j, int rc)
{
    kith_engine *e = s->e;
    struct job_run r = {.s = s, .j = j};
    pthread_mutex_init(&r.mu, NULL);
    if (j->kind == SEGJOB_SEGMENT && rc == 0) resolve_segments(s, j);
    pthread_mutex_lock(&s->jobs->mu);
    j->started = kith_now_ms();
    j->now = j->started;
    pthread_mutex_unlock(&s->jobs->mu);
    if (rc == 0 && j->kind == SEGJOB_SEGMENT) {
        int64_t lookback = 0;
        for (size_t i = 0; i < j->nseg; i++) {
            if (!j->seg[i].prog) continue;
            const pql_deps *dp = pql_program_deps(j->seg[i].prog);
            if (svc_reads_computed(dp)) r.load |= SVC_LOAD_COMPUTED;
            if (!dp->reads_events) continue;
            r.load |= SVC_LOAD_EVENTS;
            if (dp->lookback_ms < 0 || lookback < 0)
                lookback = -1;
            else if (dp->lookback_ms > lookback)
                lookback = dp->lookback_ms;
        }
        resolve_policies(&r);
        /* Two days of slack: calendar windows reach a little beyond their nominal length. */
        r.since = lookback < 0 ? INT64_MIN : j->now - lookback - 2 * 86400000LL;
        r.by_id = kith_xmalloc((j->nseg ? j->nseg : 1) * sizeof *r.by_id);
        for (size_t i = 0; i < j->nseg; i++)
            r.by_id[i] = i;
        qsort_r(r.by_id, j->nseg, sizeof *r.by_id, by_id_cmp, j);
    }
    char tmp[4400] = "";
    if (rc == 0 && j->kind == SEGJOB_EXPORT) {
        char dir[4200];
        snprintf(dir, sizeof dir, "%s/exports", e->data_dir);
        if (mkdir(dir, 0700) != 0 && errno != EEXIST) rc = KITH_EIO;
        snprintf(j->path, sizeof j->path, "%s/%s.jsonl", dir, j->id);
        snprintf(tmp, sizeof tmp, "%s.tmp", j->path);
        if (rc == 0 && !(r.out = fopen(tmp, "w"))) rc = KITH_EIO;
        if (j->fields) {
            size_t fl = strlen(j->fields) + 16;
            r.fields = kith_xmalloc(fl);
            snprintf(r.fields, fl, "%s,identityMap", j->fields);
        }
        if (rc) snprintf(j->error, sizeof j->error, "cannot write the export file under %.120s/exports: %s", e->data_dir, strerror(errno));
    }
    if (rc == 0) {
        r.snap = store_snapshot_new(e->store);
        store_snapshot_use(r.snap);
        uint8_t prefix[4];
        kith_put_be32(prefix, j->sb);
        uint64_t total = 0;
        store_iter *it = store_iter_new(e->store, NULL, STORE_CF_CLUSTER, prefix, 4);
        for (; store_iter_valid(it); store_iter_next(it))
            total++;
        store_iter_free(it);
        j->total = total;
        r.it = store_iter_new(e->store, NULL, STORE_CF_CLUSTER, prefix, 4);
        store_snapshot_use(NULL);
        int nw = workers_count();
        pthread_t th[JOB_WORKERS_MAX];
        int started = 0;
        for (int i = 0; i < nw; i++)
            if (pthread_create(&th[started], NULL,
                               j->kind == SEGJOB_EXPORT ? export_worker : segment_worker, &r) == 0)
                started++;
        if (started == 0) (j->kind == SEGJOB_EXPORT ? export_worker : segment_worker)(&r);
        for (int i = 0; i < started; i++)
            pthread_join(th[i], NULL);
        rc = r.rc;
        if (rc == 0 && !j->cancel && j->kind == SEGJOB_SEGMENT)
            rc = apply_call(e->apply, mark_fn, &r, false);
        store_iter_free(r.it);
        store_snapshot_free(r.snap);
    }
    if (r.out) {
        if (fclose(r.out) != 0 && rc == 0) rc = KITH_EIO;
        if (rc == 0 && !j->cancel && rename(tmp, j->path) != 0) rc = KITH_EIO;
        if (rc || j->cancel) unlink(tmp);
    }
    free(r.by_id);
    free(r.fields);
    for (size_t i = 0; i < r.npol; i++)
        merge_policy_clear(&r.pol[i]);
    pthread_mutex_destroy(&r.mu);
    pthread_mutex_lock(&s->jobs->mu);
    j->ended = kith_now_ms();
    if (rc && !j->error[0])
        snprintf(j->error, sizeof j->error, "%s", rc == KITH_ESHUTDOWN ? "the server stopped"
                                                                      : kith_strerror(rc));
    j->status = j->cancel ? J_CANCELLED : rc ? J_FAILED : J_SUCCEEDED;
    if (j->status != J_SUCCEEDED) j->path[0] = 0;
    pthread_mutex_unlock(&s->jobs->mu);
    kith_log(KITH_LOG_INFO, "segment", "job %s (%s) %s: %llu profiles in %lld ms", j->id,
             j->kind == SEGJOB_EXPORT ? "export" : j->source, status_names[j->status],
             (unsigned long long)j->processed, (long long)(j->ended - j->started));
}

static void *runner_main(void *arg)
{
    struct segsvc *s = arg;
    struct svc_jobs *J = s->jobs;
    pthread_mutex_lock(&J->mu);
    for (;;) {
        seg_job *next = NULL;
        for (size_t i = 0; i < J->n && !next; i++)
            if (J->v[i]->status == J_NEW) next = J->v[i];
        if (J->stopping) break;
        if (!next) {
            pthread_cond_wait(&J->cv, &J->mu);
            continue;
        }
        /* Everything acknowledged before the job starts is committed before its snapshot (and
         * backfills of definitions stored meanwhile still coalesce into it). */
        pthread_mutex_unlock(&J->mu);
        int rc = apply_call(s->e->apply, barrier_fn, NULL, false);
        pthread_mutex_lock(&J->mu);
        if (next->status != J_NEW) continue; /* cancelled meanwhile */
        next->status = J_PROCESSING;
        pthread_mutex_unlock(&J->mu);
        run_job(s, next, rc);
        pthread_mutex_lock(&J->mu);
    }
    pthread_mutex_unlock(&J->mu);
    return NULL;
}

/* --- lifecycle --- */

/* Export files of an earlier run: their job records are gone with it, so nothing can name them. */
static void exports_sweep(kith_engine *e)
{
    char dir[4200];
    snprintf(dir, sizeof dir, "%s/exports", e->data_dir);
    DIR *d = opendir(dir);
    if (!d) return;
    for (struct dirent *de; (de = readdir(d));) {
        size_t n = strlen(de->d_name);
        bool ours = (n > 6 && strcmp(de->d_name + n - 6, ".jsonl") == 0) ||
                    (n > 10 && strcmp(de->d_name + n - 10, ".jsonl.tmp") == 0);
        if (!ours) continue;
        char path[4500];
        snprintf(path, sizeof path, "%s/%s", dir, de->d_name);
        unlink(path);
    }
    closedir(d);
}

void svc_jobs_start(struct segsvc *s)
{
    exports_sweep(s->e);
    struct svc_jobs *J = kith_xcalloc(1, sizeof *J);
    pthread_mutex_init(&J->mu, NULL);
    pthread_cond_init(&J->cv, NULL);
    J->export_seq = (uint64_t)kith_now_ms() * 1000;
    s->jobs = J;
    if (pthread_create(&J->runner, NULL, runner_main, s) == 0) J->started = true;
}

void svc_jobs_stop(struct segsvc *s)
{
    struct svc_jobs *J = s->jobs;
    if (!J || !J->started) return;
    pthread_mutex_lock(&J->mu);
    J->stopping = true;
    for (size_t i = 0; i < J->n; i++) {
        J->v[i]->cancel = true;
        if (J->v[i]->status == J_NEW) J->v[i]->status = J_CANCELLED;
    }
    pthread_cond_broadcast(&J->cv);
    pthread_mutex_unlock(&J->mu);
    pthread_join(J->runner, NULL);
    J->started = false;
}

void svc_jobs_free(struct segsvc *s)
{
    struct svc_jobs *J = s->jobs;
    if (!J) return;
    svc_jobs_stop(s);
    for (size_t i = 0; i < J->n; i++)
        job_free(J->v[i]);
    free(J->v);
    pthread_mutex_destroy(&J->mu);
    pthread_cond_destroy(&J->cv);
    free(J);
    s->jobs = NULL;
}

void svc_jobs_backfill(struct segsvc *s, uint32_t sb, const char *segment_id, char *job_id)
{
    struct svc_jobs *J = s->jobs;
    job_id[0] = 0;
    if (!J || !J->started) return;
    pthread_mutex_lock(&J->mu);
    seg_job *j = NULL;
    for (size_t i = 0; i < J->n && !j; i++)
        if (J->v[i]->sb == sb && J->v[i]->kind == SEGJOB_SEGMENT && J->v[i]->status == J_NEW &&
            strcmp(J->v[i]->source, "backfill") == 0)
            j = J->v[i];
    if (!j) {
        j = kith_xcalloc(1, sizeof *j);
        kith_uuid4(j->id);
        j->sb = sb;
        j->kind = SEGJOB_SEGMENT;
        j->source = "backfill";
        j->created = kith_now_ms();
        registry_add(J, j);
    }
    job_add_seg(j, segment_id);
    snprintf(job_id, SEGDEF_ID_LEN + 1, "%.36s", j->id);
    pthread_cond_broadcast(&J->cv);
    pthread_mutex_unlock(&J->mu);
}

/* --- the API --- */

static void add_err(json_t *errors, const char *path, const char *msg)
{
    json_array_append_new(errors, json_pack("{s:s, s:s}", "path", path, "message", msg));
}

static int refuse(segdef_result *res, int status, json_t *errors, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static int refuse(segdef_result *res, int status, json_t *errors, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    res->status = status;
    vsnprintf(res->detail, sizeof res->detail, fmt, ap);
    va_end(ap);
    res->errors = errors;
    return status == 429 ? KITH_EBUSY : KITH_EINVAL;
}

static bool segment_exists(kith_engine *e, uint32_t sb, const char *id)
{
    struct segsvc *s = svc_of(e);
    pthread_rwlock_rdlock(&s->lock);
    bool ok = strlen(id) == SEGDEF_ID_LEN && svc_def_find(s, sb, id) != NULL;
    pthread_rwlock_unlock(&s->lock);
    return ok;
}

/* Segment job body: [{"segmentId": id | "*"}, ...] (AEP) or {"segments": [...]}. */
static int parse_segment_job(kith_engine *e, uint32_t sb, const json_t *body, seg_job *j,
                             segdef_result *res)
{
    const json_t *arr = body;
    const char *base = "";
    if (json_is_object(body)) {
        arr = json_object_get(body, "segments");
        base = "/segments";
    }
    json_t *errors = json_array();
    char path[96];
    if (!json_is_array(arr) || json_array_size(arr) == 0) {
        add_err(errors, base[0] ? base : "",
                "a non-empty array of {\"segmentId\": \"<id>\"} (\"*\": every segment)");
        return refuse(res, 400, errors, "the body names no segment");
    }
    if (json_array_size(arr) > SEGDEF_MAX_PER_SANDBOX) {
        add_err(errors, base[0] ? base : "", "at most 10000 segments");
        return refuse(res, 400, errors, "too many segments in one job");
    }
    size_t i;
    const json_t *it;
    const char *unknown = NULL;
    json_array_foreach(arr, i, it)
    {
        const char *id = json_string_value(json_object_get(it, "segmentId"));
        snprintf(path, sizeof path, "%s/%zu/segmentId", base, i);
        if (!json_is_object(it) || !id) {
            add_err(errors, path, "required: a segment definition id, or \"*\"");
            continue;
        }
        if (strcmp(id, "*") == 0) {
            j->all = true;
            continue;
        }
        if (!segment_exists(e, sb, id)) {
            char msg[128];
            snprintf(msg, sizeof msg, "no segment definition \"%.40s\" in this sandbox", id);
            add_err(errors, path, msg);
            if (!unknown) unknown = id;
            continue;
        }
        job_add_seg(j, id);
    }
    if (json_array_size(errors)) {
        if (unknown) return refuse(res, 400, errors, "unknown segment definition \"%.40s\"", unknown);
        return refuse(res, 400, errors, "invalid segment job");
    }
    json_decref(errors);
    if (j->all) j->nseg = 0; /* every segment, resolved at the start */
    return 0;
}

static int parse_statuses(const json_t *st, unsigned *out)
{
    if (!st) {
        *out = 1u << SEG_REALIZED | 1u << SEG_EXISTING;
        return 0;
    }
    if (!json_is_array(st) || json_array_size(st) == 0) return -1;
    size_t i;
    const json_t *v;
    *out = 0;
    json_array_foreach(st, i, v)
    {
        const char *s = json_string_value(v);
        if (s && strcmp(s, "realized") == 0) *out |= 1u << SEG_REALIZED;
        else if (s && strcmp(s, "existing") == 0) *out |= 1u << SEG_EXISTING;
        else if (s && strcmp(s, "exited") == 0) *out |= 1u << SEG_EXITED;
        else return (int)i + 1;
    }
    return 0;
}

/* Export body: {"fields", "mergePolicy": {"id"}, "filter": {"segments": [{"segmentId",
 * "segmentNs", "status"}], "emptyProfiles"}, "schema": {"name"}, "evaluationInfo"}. */
static int parse_export_job(kith_engine *e, uint32_t sb, const json_t *body, seg_job *j,
                            segdef_result *res)
{
    json_t *errors = json_array();
    if (!json_is_object(body)) {
        add_err(errors, "", "an export job object");
        return refuse(res, 400, errors, "the body is not an export job object");
    }
    const json_t *fields = json_object_get(body, "fields");
    if (fields && !json_is_null(fields)) {
        if (!json_is_string(fields) || json_string_length(fields) > EXPORT_FIELDS_MAX)
            add_err(errors, "/fields", "a comma-separated list of field paths (≤ 4096 bytes)");
        else if (json_string_length(fields))
            j->fields = kith_xstrdup(json_string_value(fields));
    }
    const json_t *mp = json_object_get(body, "mergePolicy");
    if (mp) {
        const char *id = json_string_value(json_object_get(mp, "id"));
        merge_policy pol;
        if (!json_is_object(mp) || !id || strlen(id) >= sizeof j->mp_id)
            add_err(errors, "/mergePolicy/id", "required: a merge policy id");
        else if (profile_policy_resolve(e, sb, id, &pol) != 0)
            add_err(errors, "/mergePolicy/id", "no such merge policy for _xdm.context.profile");
        else {
            merge_policy_clear(&pol);
            snprintf(j->mp_id, sizeof j->mp_id, "%s", id);
            j->has_policy = true;
        }
    }
    const json_t *schema = json_object_get(body, "schema");
    const char *sname = json_string_value(json_object_get(schema, "name"));
    if (schema && (!sname || strcmp(sname, "_xdm.context.profile") != 0))
        add_err(errors, "/schema/name", "\"_xdm.context.profile\"");
    const json_t *einfo = json_object_get(body, "evaluationInfo");
    if (json_is_true(json_object_get(einfo, "segmentation")))
        add_err(errors, "/evaluationInfo/segmentation",
                "false or absent: kith exports the current memberships (run a segment job first "
                "to re-evaluate batch segments)");
    const json_t *filter = json_object_get(body, "filter");
    if (filter && !json_is_object(filter)) add_err(errors, "/filter", "an object");
    const json_t *ep = json_object_get(filter, "emptyProfiles");
    if (ep && !json_is_boolean(ep)) add_err(errors, "/filter/emptyProfiles", "a boolean");
    j->empty_profiles = json_is_true(ep);
    const json_t *segs = json_object_get(filter, "segments");
    if (segs && (!json_is_array(segs) || json_array_size(segs) > 1500))
        add_err(errors, "/filter/segments", "an array of at most 1500 {\"segmentId\", \"status\"}");
    size_t i;
    const json_t *it;
    char path[96];
    json_array_foreach(json_is_array(segs) ? segs : NULL, i, it)
    {
        const char *id = json_string_value(json_object_get(it, "segmentId"));
        const char *ns = json_string_value(json_object_get(it, "segmentNs"));
        snprintf(path, sizeof path, "/filter/segments/%zu/segmentId", i);
        if (!json_is_object(it) || !id) {
            add_err(errors, path, "required: a segment definition id");
            continue;
        }
        if (!segment_exists(e, sb, id)) {
            char msg[128];
            snprintf(msg, sizeof msg, "no segment definition \"%.40s\" in this sandbox", id);
            add_err(errors, path, msg);
            continue;
        }
        if (ns && strcmp(ns, "ups") != 0) {
            snprintf(path, sizeof path, "/filter/segments/%zu/segmentNs", i);
            add_err(errors, path, "\"ups\" (kith's segments)");
            continue;
        }
        unsigned st;
        int bad = parse_statuses(json_object_get(it, "status"), &st);
        if (bad) {
            snprintf(path, sizeof path, "/filter/segments/%zu/status%s", i, bad > 0 ? "/" : "");
            if (bad > 0) snprintf(path + strlen(path), sizeof path - strlen(path), "%d", bad - 1);
            add_err(errors, path, "statuses among \"realized\", \"existing\", \"exited\"");
            continue;
        }
        job_add_seg(j, id)->statuses |= st;
    }
    if (json_array_size(errors)) {
        const char *first = json_string_value(json_object_get(json_array_get(errors, 0), "message"));
        return refuse(res, 400, errors, "invalid export job: %s", first);
    }
    json_decref(errors);
    return 0;
}

int segsvc_job_create(kith_engine *e, uint32_t sb, int kind, const json_t *body,
                      segdef_result *res)
{
    struct segsvc *s = svc_of(e);
    struct svc_jobs *J = s->jobs;
    memset(res, 0, sizeof *res);
    seg_job *j = kith_xcalloc(1, sizeof *j);
    j->sb = sb;
    j->kind = kind;
    j->source = "api";
    int rc = kind == SEGJOB_EXPORT ? parse_export_job(e, sb, body, j, res)
                                   : parse_segment_job(e, sb, body, j, res);
    if (rc) {
        job_free(j);
        return rc;
    }
    pthread_mutex_lock(&J->mu);
    size_t active = 0;
    for (size_t i = 0; i < J->n; i++)
        if (!finished(J->v[i]) && strcmp(J->v[i]->source, "api") == 0) active++;
    if (active >= SEGJOB_ACTIVE_MAX || !J->started || J->stopping) {
        pthread_mutex_unlock(&J->mu);
        job_free(j);
        res->status = 429;
        snprintf(res->detail, sizeof res->detail,
                 "%d jobs are queued or running; retry when one has finished", SEGJOB_ACTIVE_MAX);
        return KITH_EBUSY;
    }
    j->created = kith_now_ms();
    if (kind == SEGJOB_EXPORT)
        snprintf(j->id, sizeof j->id, "%llu", (unsigned long long)++J->export_seq);
    else
        kith_uuid4(j->id);
    registry_add(J, j);
    res->doc = job_json(e, j);
    res->status = 200;
    pthread_cond_broadcast(&J->cv);
    pthread_mutex_unlock(&J->mu);
    return 0;
}

json_t *segsvc_job_get(kith_engine *e, uint32_t sb, int kind, const char *id)
{
    struct svc_jobs *J = svc_of(e)->jobs;
    pthread_mutex_lock(&J->mu);
    seg_job *j = registry_find(J, sb, kind, id);
    json_t *doc = j ? job_json(e, j) : NULL;
    pthread_mutex_unlock(&J->mu);
    return doc;
}

json_t *segsvc_job_list(kith_engine *e, uint32_t sb, int kind, const char *status, size_t start,
                        size_t limit, size_t *total)
{
    struct svc_jobs *J = svc_of(e)->jobs;
    json_t *arr = json_array();
    *total = 0;
    pthread_mutex_lock(&J->mu);
    for (size_t i = J->n; i-- > 0;) {
        seg_job *j = J->v[i];
        if (j->sb != sb || j->kind != kind) continue;
        if (status && strcasecmp(status, status_names[j->status]) != 0) continue;
        if (*total >= start && json_array_size(arr) < limit) json_array_append_new(arr, job_json(e, j));
        (*total)++;
    }
    pthread_mutex_unlock(&J->mu);
    return arr;
}

int segsvc_job_cancel(kith_engine *e, uint32_t sb, int kind, const char *id)
{
    struct svc_jobs *J = svc_of(e)->jobs;
    int rc = 0;
    pthread_mutex_lock(&J->mu);
    seg_job *j = registry_find(J, sb, kind, id);
    if (!j) {
        rc = KITH_ENOTFOUND;
    } else if (finished(j)) {
        rc = KITH_ECONFLICT;
    } else {
        j->cancel = true;
        if (j->status == J_NEW) {
            j->status = J_CANCELLED;
            j->ended = kith_now_ms();
        }
    }
    pthread_mutex_unlock(&J->mu);
    return rc;
}

int segsvc_export_file(kith_engine *e, uint32_t sb, const char *id, char *path, size_t cap,
                       const char **status)
{
    struct svc_jobs *J = svc_of(e)->jobs;
    int rc = 0;
    pthread_mutex_lock(&J->mu);
    seg_job *j = registry_find(J, sb, SEGJOB_EXPORT, id);
    if (!j) {
        rc = KITH_ENOTFOUND;
    } else if (j->status != J_SUCCEEDED || !j->path[0]) {
        *status = status_names[j->status];
        rc = KITH_ECONFLICT;
    } else {
        snprintf(path, cap, "%s", j->path);
    }
    pthread_mutex_unlock(&J->mu);
    return rc;
}
