/* Fuzz target: Segment message → XDM entity (src/ingest/segment_map.c). Any JSON in, for every
 * message type and as a batch: an entity that is an object with an identityMap (events: a non-empty
 * _id and a parseable timestamp), or errors that each carry a path and a message; never a crash or
 * a leak. */
#include <jansson.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "kith/base.h"
#include "kith/kjson.h"
#include "kith/segment_map.h"

static void check_one(const json_t *msg, int type, const char *fallback)
{
    segment_map_opts o = {"CRMID", "AnonymousId", type == SEGMENT_ALIAS ? "CRMID" : NULL, fallback,
                          1714557600000};
    json_t *errors = json_array(), *ent = NULL;
    bool is_event = false;
    int rc = segment_map(msg, type, &o, "/batch/0", &ent, &is_event, errors);
    if (rc == 0) {
        if (!json_is_object(ent) || !json_is_object(json_object_get(ent, "identityMap"))) abort();
        if (json_array_size(errors)) abort();
        if (is_event) {
            const char *id = json_string_value(json_object_get(ent, "_id"));
            const char *ts = json_string_value(json_object_get(ent, "timestamp"));
            int64_t t;
            if (!id || !*id || !ts || kith_time_parse(ts, &t) != 0) abort();
        }
        kith_buf out = {0};
        if (kjson_dump(ent, &out) != 0) abort();
        kith_buf_free(&out);
        /* Any entity path maps back to some message path. */
        char p[300];
        segment_source_path("/_segment/traits/x", is_event, p, sizeof p);
        segment_source_path("/personalEmail/address", is_event, p, sizeof p);
    } else {
        if (ent || json_array_size(errors) == 0) abort();
        size_t i;
        json_t *e;
        json_array_foreach(errors, i, e)
        {
            const char *path = json_string_value(json_object_get(e, "path"));
            if (!path || strncmp(path, "/batch/0", 8) != 0) abort();
            if (!json_string_value(json_object_get(e, "message"))) abort();
        }
    }
    json_decref(ent);
    json_decref(errors);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 65536) return 0;
    kjson_error err;
    json_t *msg = kjson_parse((const char *)data, size, 64, NULL, &err);
    if (!msg) return 0;
    for (int type = SEGMENT_NONE; type <= SEGMENT_ALIAS; type++) {
        check_one(msg, type, NULL);
        check_one(msg, type, "fallback-id");
    }
    /* As a batch: top-level defaults folded into each item. */
    json_t *batch = json_object_get(msg, "batch");
    size_t i;
    json_t *item;
    json_array_foreach(batch, i, item)
    {
        if (i >= 8) break;
        segment_batch_defaults(item, msg);
        check_one(item, SEGMENT_NONE, "fallback-id");
    }
    json_decref(msg);
    return 0;
}
