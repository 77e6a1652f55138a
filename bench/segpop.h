/* The in-process population of bench/segbatch and bench/segments: an engine (eng) with one
 * profile schema, one event schema and three datasets (CRM, loyalty, web) in sandbox 1, JSON lines
 * applied through the writer, and the loadgen population loaded. Define BENCH_NAME (the program's
 * name, for messages) before including; bench/common.h and kith/ingest.h come first. */
#ifndef KITH_BENCH_SEGPOP_H
#define KITH_BENCH_SEGPOP_H

static kith_engine *eng;
static char ds_crm[KITH_ID_LEN + 1], ds_loy[KITH_ID_LEN + 1], ds_web[KITH_ID_LEN + 1];

static const char profile_schema[] =
    "{\"title\":\"segment bench profiles\",\"type\":\"object\","
    "\"meta:class\":\"https://ns.adobe.com/xdm/context/profile\",\"allOf\":["
    "{\"$ref\":\"https://ns.adobe.com/xdm/context/profile-person-details\"},"
    "{\"$ref\":\"https://ns.adobe.com/xdm/context/profile-personal-details\"},"
    "{\"$ref\":\"https://ns.adobe.com/xdm/context/identitymap\"},"
    "{\"$ref\":\"https://ns.adobe.com/xdm/context/profile-loyalty-details\"}],"
    "\"properties\":{\"_acme\":{\"type\":\"object\",\"properties\":{"
    "\"crm\":{\"type\":\"object\",\"properties\":{"
    "\"customerSince\":{\"type\":\"string\",\"format\":\"date\"},"
    "\"segment\":{\"type\":\"string\",\"enum\":[\"new\",\"active\",\"lapsed\",\"vip\"]},"
    "\"lifetimeValue\":{\"type\":\"number\",\"minimum\":0},"
    "\"marketingOptIn\":{\"type\":\"boolean\"}}},"
    "\"loyalty\":{\"type\":\"object\",\"properties\":{"
    "\"memberId\":{\"type\":\"string\",\"maxLength\":64}}}}}},"
    "\"$id\":\"https://ns.adobe.com/kith/schemas/segbench-profile\","
    "\"meta:altId\":\"_kith.schemas.segbench-profile\",\"meta:immutableTags\":[\"union\"]}";

static const char event_schema[] =
    "{\"title\":\"segment bench events\",\"type\":\"object\","
    "\"meta:class\":\"https://ns.adobe.com/xdm/context/experienceevent\",\"allOf\":["
    "{\"$ref\":\"https://ns.adobe.com/xdm/context/identitymap\"},"
    "{\"$ref\":\"https://ns.adobe.com/xdm/context/experienceevent-commerce\"},"
    "{\"$ref\":\"https://ns.adobe.com/xdm/context/experienceevent-web\"},"
    "{\"$ref\":\"https://ns.adobe.com/xdm/context/experienceevent-environment-details\"},"
    "{\"$ref\":\"https://ns.adobe.com/xdm/context/experienceevent-advertising\"}],"
    "\"properties\":{\"_acme\":{\"type\":\"object\",\"properties\":{"
    "\"campaignId\":{\"type\":\"string\",\"maxLength\":64}}}},"
    "\"$id\":\"https://ns.adobe.com/kith/schemas/segbench-event\","
    "\"meta:altId\":\"_kith.schemas.segbench-event\",\"meta:immutableTags\":[\"union\"]}";

static int put_schema(store_batch *b, const char *text)
{
    json_t *doc = json_loads(text, 0, NULL);
    json_t *errors = json_array();
    kith_schema *s = NULL;
    int rc = doc && schema_compile(doc, &s, errors) == 0 ? 0 : KITH_EINVAL;
    if (rc == 0) catalog_put_schema(eng->cat, b, 1, doc, s);
    else
        fprintf(stderr, BENCH_NAME ": schema: %s\n",
                json_string_value(json_object_get(json_array_get(errors, 0), "message")));
    json_decref(errors);
    return rc;
}

static int setup_fn(void *ctx, store_batch *b)
{
    (void)ctx;
    if (put_schema(b, profile_schema) || put_schema(b, event_schema)) return KITH_EINVAL;
    struct {
        char *id;
        const char *schema;
    } ds[3] = {{ds_crm, "https://ns.adobe.com/kith/schemas/segbench-profile"},
               {ds_loy, "https://ns.adobe.com/kith/schemas/segbench-profile"},
               {ds_web, "https://ns.adobe.com/kith/schemas/segbench-event"}};
    for (int i = 0; i < 3; i++) {
        catalog_new_id(ds[i].id);
        catalog_put_dataset(eng->cat, b, 1,
                            json_pack("{s:s, s:s, s:{s:s}, s:{s:[s], s:[s]}}", "id", ds[i].id,
                                      "name", ds[i].id, "schemaRef", "id", ds[i].schema, "tags",
                                      "unifiedProfile", "enabled:true", "unifiedIdentity",
                                      "enabled:true"));
    }
    return 0;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/* Validates and applies the n entities of buf (one per line) into their datasets. */
static size_t apply_lines(const kith_buf *buf, const char **ds, size_t n)
{
    ingest_msg *m = kith_xcalloc(n ? n : 1, sizeof *m);
    json_t *errors = json_array();
    size_t k = 0;
    const char *p = buf->data;
    for (size_t i = 0; i < n; i++) {
        const char *nl = memchr(p, '\n', buf->len - (size_t)(p - buf->data));
        json_t *ent = json_loadb(p, (size_t)(nl - p), 0, NULL);
        p = nl + 1;
        const char *msg;
        if (ent && ingest_prepare(eng, 1, ds[i], NULL, ent, NULL, kith_now_ms(), &m[k], errors,
                                  &msg) == 0)
            k++;
        json_decref(ent);
    }
    json_decref(errors);
    if (k && ingest_run(eng, m, k) != 0) fprintf(stderr, BENCH_NAME ": ingest_run failed\n");
    for (size_t i = 0; i < k; i++)
        ingest_msg_clear(&m[i]);
    free(m);
    return k;
}

/* Loads the bench population (bench/common.h): people's CRM and loyalty records and `events` web
 * events each, in chunks through the writer; returns the lines applied. */
static size_t load_population(long people, long events, uint64_t seed)
{
    enum { CHUNK = 2000 };
    kith_buf buf = {0};
    const char **ds = kith_xmalloc((size_t)CHUNK * (2 + (size_t)events) * sizeof *ds);
    size_t n = 0, total = 0;
    int64_t now = kith_now_ms();
    for (long i = 0; i < people; i++) {
        bench_person p;
        bench_person_make(seed, (uint64_t)i, (uint64_t)people, &p);
        if (p.has_crm) {
            bench_write_crm(&buf, &p);
            kith_buf_puts(&buf, "\n");
            ds[n++] = ds_crm;
        }
        if (p.has_loyalty) {
            bench_write_loyalty(&buf, &p);
            kith_buf_puts(&buf, "\n");
            ds[n++] = ds_loy;
        }
        bench_rng r;
        bench_person_rng(seed, (uint64_t)i, 7, &r);
        bench_session s;
        bench_session_begin(&s, &p, &r, now, 30);
        for (long k = 0; k < events; k++) {
            bench_write_event(&buf, &s, &r, (uint64_t)i * 128 + (uint64_t)k);
            kith_buf_puts(&buf, "\n");
            ds[n++] = ds_web;
        }
        if ((i + 1) % CHUNK == 0 || i + 1 == people) {
            total += apply_lines(&buf, ds, n);
            buf.len = 0;
            n = 0;
        }
    }
    kith_buf_free(&buf);
    free(ds);
    return total;
}

#endif
