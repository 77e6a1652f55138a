/* Preview and estimate of an unsaved segment expression (AEP's /preview and /estimate). The work is
 * done at POST time on the request's thread (bounded by the sample size), so GET answers at once. */
#include <string.h>

#include "http.h"
#include "kith/segsvc.h"

int h_preview_create(kith_req *r)
{
    json_t *body = http_body_json(r);
    if (!body) return 0;
    const char *expr = json_string_value(json_object_get(body, "predicateExpression"));
    const char *type = json_string_value(json_object_get(body, "predicateType"));
    const char *model = json_string_value(json_object_get(body, "predicateModel"));
    json_t *errors = json_array();
    if (!expr || !*expr)
        json_array_append_new(errors, json_pack("{s:s, s:s}", "path", "/predicateExpression", "message",
                                                "required: the PQL expression to preview"));
    if (type && strcmp(type, "pql/text") != 0)
        json_array_append_new(errors, json_pack("{s:s, s:s}", "path", "/predicateType", "message",
                                                "only \"pql/text\" is supported"));
    if (model && strcmp(model, "_xdm.context.profile") != 0)
        json_array_append_new(errors, json_pack("{s:s, s:s}", "path", "/predicateModel", "message",
                                                "must be \"_xdm.context.profile\""));
    if (json_array_size(errors)) {
        http_problem(r, 400, "Invalid preview", errors, "the preview request is invalid");
        json_decref(body);
        return 0;
    }
    json_decref(errors);
    char id[33];
    pql_error err = {0};
    int rc = segsvc_preview(r->e, r->sandbox_id, expr, kith_now_ms(), id, &err);
    if (rc) {
        json_t *e = json_pack("[{s:s, s:s, s:i, s:i}]", "path", "/predicateExpression", "message",
                              err.message, "line", err.line, "column", err.column);
        http_problem(r, 400, "Invalid expression", e, "the expression does not compile: %d:%d: %s",
                     err.line, err.column, err.message);
    } else {
        http_json(r, 201, json_pack("{s:s, s:s, s:s, s:s, s:i}", "state", "RESULT_READY", "previewId", id,
                                    "previewQueryId", id, "previewQueryStatus", "RESULT_READY",
                                    "previewExecutionId", 0));
    }
    json_decref(body);
    return 0;
}

static int preview_get(kith_req *r, bool estimate)
{
    json_t *out = segsvc_preview_get(r->sandbox_id, r->params[0], estimate);
    if (!out) http_problem(r, 404, "Not Found", NULL, "no preview %s in sandbox %s", r->params[0], r->sandbox);
    else http_json(r, 200, out);
    return 0;
}

int h_preview_get(kith_req *r)
{
    return preview_get(r, false);
}

int h_estimate_get(kith_req *r)
{
    return preview_get(r, true);
}
