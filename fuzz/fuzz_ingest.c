/* Fuzz target for the ingest path: kjson parse of a /collection body (single envelope or batch),
 * then envelope checks, schema validation and identity extraction against a real catalog (an engine
 * on a temporary data dir, with a profile and an event dataset). Nothing is applied. */
#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kith/ingest.h"

static kith_engine *eng;
static char ds_profile[KITH_ID_LEN + 1], ds_event[KITH_ID_LEN + 1];

static const char *schemas[2] = {
    "{\"title\":\"p\",\"meta:class\":\"https://ns.adobe.com/xdm/context/profile\",\"$id\":\"https://ns.adobe.com/kith/schemas/p\","
    "\"meta:altId\":\"_kith.schemas.p\",\"allOf\":[{\"$ref\":\"https://ns.adobe.com/xdm/context/profile-person-details\"},"
    "{\"$ref\":\"https://ns.adobe.com/xdm/context/profile-personal-details\"},{\"$ref\":\"https://ns.adobe.com/xdm/context/identitymap\"}],"
    "\"properties\":{\"_acme\":{\"type\":\"object\",\"properties\":{\"tier\":{\"type\":\"string\",\"enum\":[\"gold\",\"silver\"]},"
    "\"n\":{\"type\":\"integer\",\"minimum\":0,\"maximum\":100},\"d\":{\"type\":\"string\",\"format\":\"date\"}}}},"
    "\"kith:descriptors\":[{\"xdm:sourceProperty\":\"/personalEmail/address\",\"xdm:namespace\":\"Email\",\"xdm:isPrimary\":false}]}",
    "{\"title\":\"e\",\"meta:class\":\"https://ns.adobe.com/xdm/context/experienceevent\",\"$id\":\"https://ns.adobe.com/kith/schemas/e\","
    "\"meta:altId\":\"_kith.schemas.e\",\"allOf\":[{\"$ref\":\"https://ns.adobe.com/xdm/context/identitymap\"},"
    "{\"$ref\":\"https://ns.adobe.com/xdm/context/experienceevent-commerce\"},{\"$ref\":\"https://ns.adobe.com/xdm/context/experienceevent-web\"}]}"};

static int setup_fn(void *ctx, store_batch *b)
{
    for (int i = 0; i < 2; i++) {
        json_t *doc = json_loads(schemas[i], 0, NULL);
        json_t *errors = json_array();
        kith_schema *s = NULL;
        if (schema_compile(doc, &s, errors) != 0) abort();
        json_decref(errors);
        catalog_put_schema(eng->cat, b, 1, doc, s);
    }
    snprintf(ds_profile, sizeof ds_profile, "%s", "aaaaaaaaaaaaaaaaaaaaaaaa");
    snprintf(ds_event, sizeof ds_event, "%s", "bbbbbbbbbbbbbbbbbbbbbbbb");
    catalog_put_dataset(eng->cat, b, 1, json_pack("{s:s, s:s, s:{s:s}, s:{s:[s]}}", "id", ds_profile, "name", "p",
                                                  "schemaRef", "id", "https://ns.adobe.com/kith/schemas/p", "tags",
                                                  "unifiedProfile", "enabled:true"));
    catalog_put_dataset(eng->cat, b, 1, json_pack("{s:s, s:s, s:{s:s}, s:{s:[s]}}", "id", ds_event, "name", "e",
                                                  "schemaRef", "id", "https://ns.adobe.com/kith/schemas/e", "tags",
                                                  "unifiedProfile", "enabled:true"));
    return 0;
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    char dir[] = "/tmp/kith-fuzz-ingest-XXXXXX";
    if (!mkdtemp(dir)) abort();
    char *err = NULL;
    if (engine_open(dir, NULL, "fuzz", false, &eng, &err) != 0) abort();
    if (apply_call(eng->apply, setup_fn, NULL, false) != 0) abort();
    return 0;
}

static void prepare(json_t *env, const ingest_source *src)
{
    json_t *errors = json_array();
    const char *message = NULL;
    ingest_msg m;
    if (ingest_prepare_envelope(eng, 1, env, src, 0, &m, errors, &message) == 0) {
        if (m.nids < 1 || !m.json) abort();
        ingest_msg_clear(&m);
    } else if (json_array_size(errors) == 0 || !message) {
        abort(); /* a rejection always says why */
    }
    json_decref(errors);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 1 << 16) return 0;
    kjson_spans spans = {.max_depth = 4};
    kjson_error err;
    json_t *body = kjson_parse((const char *)data, size, 64, &spans, &err);
    if (body) {
        ingest_source src = {(const char *)data, &spans};
        json_t *msgs = json_object_get(body, "messages");
        if (json_is_array(msgs)) {
            size_t i;
            json_t *v;
            json_array_foreach(msgs, i, v) prepare(v, &src);
        } else {
            prepare(body, &src);
        }
        json_decref(body);
    }
    kjson_spans_free(&spans);
    return 0;
}
