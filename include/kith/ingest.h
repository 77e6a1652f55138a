/* kith ingest: turning envelopes and batch-file lines into validated messages (any thread), and
 * applying messages on the apply thread (identities, fragments, events).
 *
 * Validation runs on the worker thread that received the request, in parallel; a message that fails
 * stores nothing. A prepared message owns copies of everything it needs, so the request's JSON can be
 * freed before the apply thread sees it. */
#ifndef KITH_INGEST_H
#define KITH_INGEST_H

#include "kith/engine.h"
#include "kith/kjson.h"

#define INGEST_MAX_IDS 64

typedef struct ingest_msg {
    uint32_t sandbox;
    char dataset[KITH_ID_LEN + 1];
    bool is_event, to_profile, to_identity;
    int64_t ts;       /* event timestamp, or the record's ordering time (ms) */
    int64_t received; /* ms */
    char *event_id;   /* owned; the entity's _id: an event's id, a record's when it has one */
    int nids;
    ident_in ids[INGEST_MAX_IDS]; /* values owned */
    char *json;                   /* owned compact entity */
    size_t json_len;
    int rc; /* apply result */
} ingest_msg;

void ingest_msg_clear(ingest_msg *m);

/* Where the JSON came from, when it was parsed by kjson with spans: the entity's own text is then
 * stored as sent instead of being serialised again. NULL: serialise. */
typedef struct ingest_source {
    const char *buf;
    kjson_spans *spans;
} ingest_source;

/* Validates entity (borrowed) as a record of dataset_id in sandbox. schema_ref, when not NULL, must name
 * the dataset's schema ($id or meta:altId). Returns 0 and fills out, or an error code (KITH_EINVAL,
 * KITH_ETOOLARGE) with {"path","message"} objects appended to errors and *message set to a static
 * summary. */
int ingest_prepare(kith_engine *e, uint32_t sandbox, const char *dataset_id, const char *schema_ref,
                   json_t *entity, const ingest_source *src, int64_t received, ingest_msg *out,
                   json_t *errors, const char **message);
/* Same, for an AEP envelope {"header": {"schemaRef": {"id"}, "datasetId"}, "body": {"xdmEntity"}}. */
int ingest_prepare_envelope(kith_engine *e, uint32_t sandbox, json_t *envelope,
                            const ingest_source *src, int64_t received, ingest_msg *out,
                            json_t *errors, const char **message);

/* Apply thread: identities, then the fragment or the event. */
int ingest_apply_msg(kith_engine *e, store_batch *b, ingest_msg *m);

/* Apply thread, at every group's end: forgets the dedup keys of events the syncer has written. */
void ingest_group_end(kith_engine *e);
/* Apply thread: group (apply_group_number) failed; its events were never written. */
void ingest_group_failed(kith_engine *e, uint64_t group);
void ingest_state_free(kith_engine *e);

/* An asynchronous group of messages for the apply thread. done(ctx) runs on the apply thread after the
 * commit; the msgs' rc fields hold each result. */
typedef struct ingest_job {
    apply_op op;
    kith_engine *e;
    ingest_msg *msgs;
    size_t n;
    void (*done)(struct ingest_job *job, int rc);
    void *user;
} ingest_job;
int ingest_submit(kith_engine *e, ingest_job *job);
/* Blocking form (batch files, tools): submits and waits. */
int ingest_run(kith_engine *e, ingest_msg *msgs, size_t n);

#endif
