/* Dataset export (kith): every record or event a dataset holds, as JSON lines — the reverse of an
 * import batch, streamed from a RocksDB iterator (a consistent snapshot) without building the body. */
#include <microhttpd.h>
#include <stdlib.h>
#include <string.h>

#include "http.h"

typedef struct export_state {
    kith_engine *e;
    store_iter *it;
    uint32_t sandbox;
    char dataset[KITH_ID_LEN + 1];
    bool events;
    kith_buf pending;
    size_t off;
    uint64_t lines;
} export_state;

static void export_free(void *cls)
{
    export_state *x = cls;
    store_iter_free(x->it);
    kith_buf_free(&x->pending);
    free(x);
}

/* Appends the next entity of the dataset to pending; false at the end. */
static bool export_next(export_state *x)
{
    for (; store_iter_valid(x->it); store_iter_next(x->it)) {
        size_t kl, vl;
        const uint8_t *k = store_iter_key(x->it, &kl);
        const uint8_t *v = store_iter_value(x->it, &vl);
        const uint8_t *json = NULL;
        size_t jl = 0;
        if (!x->events) {
            if (kl == 4 + 8 + KITH_ID_LEN && vl > 16 && memcmp(k + 12, x->dataset, KITH_ID_LEN) == 0)
                json = v + 16, jl = vl - 16;
        } else if (vl > 8 + KITH_ID_LEN && memcmp(v + 8, x->dataset, KITH_ID_LEN) == 0) {
            json = v + 8 + KITH_ID_LEN, jl = vl - 8 - KITH_ID_LEN;
        }
        if (!json) continue;
        kith_buf_append(&x->pending, json, jl);
        kith_buf_append(&x->pending, "\n", 1);
        x->lines++;
        store_iter_next(x->it);
        return true;
    }
    return false;
}

static ssize_t export_read(void *cls, uint64_t pos, char *buf, size_t max)
{
    export_state *x = cls;
    size_t n = 0;
    while (n < max) {
        if (x->off == x->pending.len) {
            x->pending.len = x->off = 0;
            if (!export_next(x)) break;
        }
        size_t take = x->pending.len - x->off;
        if (take > max - n) take = max - n;
        memcpy(buf + n, x->pending.data + x->off, take);
        n += take;
        x->off += take;
    }
    return n ? (ssize_t)n : MHD_CONTENT_READER_END_OF_STREAM;
}

int h_dataset_export(kith_req *r)
{
    catalog_rdlock(r->e->cat);
    const cat_dataset *d = catalog_dataset(r->e->cat, r->sandbox_id, r->params[0]);
    const cat_schema *s = d ? catalog_schema(r->e->cat, r->sandbox_id, d->schema_id) : NULL;
    bool events = s && s->cls == SCHEMA_CLASS_EVENT;
    catalog_unlock(r->e->cat);
    if (!d) {
        http_problem(r, 404, "Not Found", NULL, "no dataset %s in sandbox %s", r->params[0], r->sandbox);
        return 0;
    }
    export_state *x = kith_xcalloc(1, sizeof *x);
    x->e = r->e;
    x->sandbox = r->sandbox_id;
    x->events = events;
    snprintf(x->dataset, sizeof x->dataset, "%s", r->params[0]);
    uint8_t prefix[4];
    kith_put_be32(prefix, r->sandbox_id);
    x->it = store_iter_new(r->e->store, NULL, events ? STORE_CF_EVENT : STORE_CF_FRAG, prefix, 4);
    r->stream = export_read;
    r->stream_cls = x;
    r->stream_free = export_free;
    r->status = 200;
    r->ctype = "application/x-ndjson";
    return 0;
}
