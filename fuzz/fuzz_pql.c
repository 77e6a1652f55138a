/* PQL fuzz target: lexer, parser, checker (with and without a schema) and compiler on arbitrary
 * text; when it compiles, explain it and evaluate it on a small fixed profile with a tight budget.
 * Errors must carry a line and column inside the input. */
#include <assert.h>
#include <jansson.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "kith/pql.h"

static json_t *profile, *events, *schema;
static pql_evaluator *ev;

static int seg_mode(void *arg, const char *id)
{
    (void)arg;
    return strcmp(id, "s1") == 0 ? PQL_MODE_STREAMING : strcmp(id, "s2") == 0 ? PQL_MODE_BATCH : -1;
}

static bool in_seg(void *arg, const char *id)
{
    (void)arg;
    return strcmp(id, "s1") == 0;
}

static void init(void)
{
    profile = json_loads(
        "{\"person\": {\"name\": {\"firstName\": \"Ann\"}}, \"homeAddress\": {\"city\": "
        "\"Paris\"}, \"_acme\": {\"tags\": [\"a\", \"b\"], \"n\": 3, \"m\": {\"k\": \"v\"}}}",
        0, NULL);
    events = json_loads(
        "[{\"timestamp\": \"2024-05-01T10:00:00Z\", \"eventType\": \"commerce.purchases\", "
        "\"commerce\": {\"order\": {\"priceTotal\": 10.5}}, \"productListItems\": [{\"SKU\": "
        "\"PS\"}]},"
        "{\"timestamp\": \"2024-05-08T11:00:00Z\", \"eventType\": \"advertising.impressions\", "
        "\"_acme\": {\"campaignId\": \"c-101\"}}]",
        0, NULL);
    schema = json_loads(
        "{\"properties\": {\"person\": {\"type\": \"object\", \"properties\": {\"name\": "
        "{\"type\": \"object\", \"properties\": {\"firstName\": {\"type\": \"string\"}}}}},"
        "\"homeAddress\": {\"type\": \"object\", \"properties\": {\"city\": {\"type\": "
        "\"string\"}}}}}",
        0, NULL);
    pql_limits lim = {.max_steps = 200000, .max_depth = 32, .max_scratch = 4096};
    ev = pql_evaluator_new(&lim);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!ev) init();
    if (size > 4096) return 0;
    for (int pass = 0; pass < 2; pass++) {
        pql_env env = {.segment_mode = seg_mode, .profile_schema = pass ? schema : NULL};
        pql_program *p = NULL;
        pql_error err;
        int rc = pql_compile((const char *)data, size, &env, &p, &err);
        if (rc) {
            assert(p == NULL);
            assert(err.line >= 1 && err.column >= 1 && err.message[0]);
            continue;
        }
        kith_buf b = {0};
        pql_explain(p, &b);
        kith_buf_free(&b);
        json_decref(pql_deps_json(p));
        pql_input in = {
            .profile = profile, .events = events, .now_ms = 1715169600000LL, .in_segment = in_seg};
        pql_result res;
        json_t *v = NULL;
        rc = pql_eval_value(ev, p, &in, &res, &v);
        assert(rc == 0 || rc == KITH_EBUSY);
        assert(res.next_change_ms > in.now_ms);
        json_decref(v);
        pql_program_free(p);
    }
    return 0;
}
