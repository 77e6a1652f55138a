/* Profile Access: profiles and events by any identity of a cluster. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http.h"
#include "kith/ca.h"

/* Resolves (entityId, entityIdNS) — or an XID alone — to a namespace id and value. 0, or a problem
 * is set on r. value must hold KITH_XID_MAX bytes. */
static int resolve_identity(kith_req *r, const char *id, const char *ns, const char *id_name,
                            uint32_t *ns_out, char *value, size_t *len)
{
    if (!id || !*id) {
        http_problem(r, 400, "Bad Request", NULL, "%s is required", id_name);
        return -1;
    }
    if (!ns || !*ns) {
        if (identity_xid_parse(id, ns_out, value, KITH_XID_MAX, len) == 0) return 0;
        http_problem(r, 400, "Bad Request", NULL, "%sNS is required unless %s is an XID", id_name,
                     id_name);
        return -1;
    }
    size_t n = strlen(id);
    if (n > (size_t)r->e->lim.max_identity_len) {
        http_problem(r, 400, "Bad Request", NULL, "%s is longer than %d bytes", id_name,
                     r->e->lim.max_identity_len);
        return -1;
    }
    catalog_rdlock(r->e->cat);
    const cat_namespace *nsd = catalog_namespace(r->e->cat, r->sandbox_id, ns);
    if (nsd) *ns_out = nsd->id;
    catalog_unlock(r->e->cat);
    if (!nsd) {
        http_problem(r, 404, "Not Found", NULL, "unknown identity namespace \"%s\"", ns);
        return -1;
    }
    memcpy(value, id, n + 1);
    *len = n;
    return 0;
}

static bool parse_ms(const char *s, int64_t *out)
{
    char *end;
    long long v = strtoll(s, &end, 10);
    if (!*s || *end) return false;
    /* Values below 1e11 are seconds (one of AEP's examples uses seconds). */
    *out = v < 100000000000LL && v > -100000000000LL ? v * 1000 : v;
    return true;
}

static void not_found(kith_req *r, const char *id, const char *ns)
{
    http_problem(r, 404, "Not Found", NULL, "no profile for identity %s%s%s", ns ? ns : "",
                 ns ? ":" : "", id);
}

/* Resolves mergePolicyId (NULL or "" → the sandbox default). 0, or a problem is set on r. */
static int resolve_policy(kith_req *r, const char *id, merge_policy *out)
{
    int rc = profile_policy_resolve(r->e, r->sandbox_id, id, out);
    if (rc == KITH_ENOTFOUND)
        http_problem(r, 404, "Not Found", NULL, "no merge policy \"%s\" in sandbox %s", id,
                     r->sandbox);
    else if (rc == KITH_EINVAL)
        http_problem(r, 400, "Bad Request", NULL,
                     "merge policy \"%s\" is not for schema.name _xdm.context.profile", id);
    else if (rc)
        http_error(r, rc, "the merge policy could not be read");
    return rc;
}

static int hexval(char c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

/* Query arguments arrive raw (the server does not unescape): '+' is a space, %XX a byte. */
static char *qdecode(const char *raw)
{
    size_t n = strlen(raw), o = 0;
    char *out = kith_xmalloc(n + 1);
    for (size_t i = 0; i < n; i++) {
        int h, l;
        if (raw[i] == '+')
            out[o++] = ' ';
        else if (raw[i] == '%' && i + 2 < n && (h = hexval(raw[i + 1])) >= 0 &&
                 (l = hexval(raw[i + 2])) >= 0 && (h | l)) {
            out[o++] = (char)(h << 4 | l);
            i += 2;
        } else
            out[o++] = raw[i];
    }
    out[o] = 0;
    return out;
}

struct prop_args {
    char *v[EVENT_FILTERS_MAX + 1];
    size_t n;
};

static enum MHD_Result collect_property(void *cls, enum MHD_ValueKind kind, const char *key,
                                        const char *value)
{
    struct prop_args *a = cls;
    (void)kind;
    if (strcmp(key, "property") != 0) return MHD_YES;
    if (a->n <= EVENT_FILTERS_MAX) a->v[a->n] = qdecode(value ? value : "");
    a->n++;
    return MHD_YES;
}

/* Every `property` argument (repeatable, at most 3). 0, or a problem is set on r. *raw (owned, for
 * the next link) gets the decoded values. */
static int parse_properties(kith_req *r, event_filter *f, size_t *n, struct prop_args *raw)
{
    memset(raw, 0, sizeof *raw);
    MHD_get_connection_values(r->conn, MHD_GET_ARGUMENT_KIND, collect_property, raw);
    *n = 0;
    if (raw->n > EVENT_FILTERS_MAX) {
        http_problem(r, 400, "Bad Request", NULL, "at most %d property filters", EVENT_FILTERS_MAX);
        return -1;
    }
    for (size_t i = 0; i < raw->n; i++) {
        if (profile_event_filter_parse(raw->v[i], &f[i]) != 0) {
            http_problem(r, 400, "Bad Request", NULL,
                         "property \"%s\" is not \"path op value\" (op: = != < <= > >=)",
                         raw->v[i]);
            return -1;
        }
    }
    *n = raw->n;
    return 0;
}

static void prop_args_free(struct prop_args *a)
{
    for (size_t i = 0; i < a->n && i <= EVENT_FILTERS_MAX; i++)
        free(a->v[i]);
}

static void append_enc(kith_buf *b, const char *name, const char *v)
{
    kith_buf_printf(b, "&%s=", name);
    for (const char *p = v; *p; p++) {
        unsigned char c = (unsigned char)*p;
        if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
            c == '-' || c == '_' || c == '.')
            kith_buf_append(b, p, 1);
        else
            kith_buf_printf(b, "%%%02X", c);
    }
}

static int get_events(kith_req *r)
{
    const char *rel = http_query(r, "relatedSchema.name");
    if (rel && strcmp(rel, "_xdm.context.profile") != 0) {
        http_problem(r, 400, "Bad Request", NULL,
                     "relatedSchema.name must be _xdm.context.profile");
        return 0;
    }
    const char *id = http_query(r, "relatedEntityId");
    const char *ns = http_query(r, "relatedEntityIdNS");
    char value[KITH_XID_MAX];
    uint32_t nsid;
    size_t len;
    if (resolve_identity(r, id, ns, "relatedEntityId", &nsid, value, &len) != 0) return 0;
    event_query q = {.start_ms = INT64_MIN, .end_ms = INT64_MAX, .limit = 1000};
    const char *s;
    if ((s = http_query(r, "startTime")) && !parse_ms(s, &q.start_ms)) {
        http_problem(r, 400, "Bad Request", NULL, "startTime must be epoch milliseconds");
        return 0;
    }
    if ((s = http_query(r, "endTime")) && !parse_ms(s, &q.end_ms)) {
        http_problem(r, 400, "Bad Request", NULL, "endTime must be epoch milliseconds");
        return 0;
    }
    if ((s = http_query(r, "limit"))) {
        char *end;
        long v = strtol(s, &end, 10);
        if (!*s || *end || v < 1 || v > 1000) {
            http_problem(r, 400, "Bad Request", NULL, "limit must be an integer from 1 to 1000");
            return 0;
        }
        q.limit = (size_t)v;
    }
    if ((s = http_query(r, "orderby"))) {
        if (strcmp(s, "-timestamp") == 0)
            q.descending = true;
        else if (strcmp(s, "+timestamp") != 0 && strcmp(s, "timestamp") != 0 &&
                 strcmp(s, " timestamp") != 0) {
            http_problem(r, 400, "Bad Request", NULL, "orderby must be +timestamp or -timestamp");
            return 0;
        }
    }
    q.cursor = http_query(r, "start");
    q.fields = http_query(r, "fields");
    event_filter filters[EVENT_FILTERS_MAX];
    struct prop_args props;
    if (parse_properties(r, filters, &q.nfilters, &props) != 0) {
        prop_args_free(&props);
        return 0;
    }
    q.filters = filters;
    const char *mpid = http_query(r, "mergePolicyId");
    merge_policy policy;
    if (resolve_policy(r, mpid, &policy) != 0) {
        prop_args_free(&props);
        return 0;
    }
    q.policy = &policy;
    int err = 0;
    json_t *out = profile_events(r->e, r->sandbox_id, nsid, value, len, &q, &err);
    merge_policy_clear(&policy);
    if (!out) {
        if (err == KITH_ENOTFOUND)
            not_found(r, id, ns);
        else if (err == KITH_EINVAL)
            http_problem(r, 400, "Bad Request", NULL, "start is not a cursor from _page.next");
        else
            http_error(r, err, "the events could not be read");
        prop_args_free(&props);
        return 0;
    }
    const char *next = json_string_value(json_object_get(json_object_get(out, "_page"), "next"));
    kith_buf href = {0};
    if (next && *next) {
        kith_buf_printf(&href, "/entities?schema.name=_xdm.context.experienceevent&relatedSchema."
                               "name=_xdm.context.profile&relatedEntityId=");
        for (const char *p = id; *p; p++) {
            unsigned char c = (unsigned char)*p;
            if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                c == '-' || c == '_' || c == '.')
                kith_buf_append(&href, p, 1);
            else
                kith_buf_printf(&href, "%%%02X", c);
        }
        if (ns) kith_buf_printf(&href, "&relatedEntityIdNS=%s", ns);
        kith_buf_printf(&href, "&limit=%zu&orderby=%s&start=%s", q.limit,
                        q.descending ? "-timestamp" : "%2Btimestamp", next);
        if (q.start_ms != INT64_MIN)
            kith_buf_printf(&href, "&startTime=%lld", (long long)q.start_ms);
        if (q.end_ms != INT64_MAX) kith_buf_printf(&href, "&endTime=%lld", (long long)q.end_ms);
        if (mpid && *mpid) append_enc(&href, "mergePolicyId", mpid);
        if (q.fields && *q.fields) append_enc(&href, "fields", q.fields);
        for (size_t i = 0; i < q.nfilters; i++)
            append_enc(&href, "property", props.v[i]);
    }
    prop_args_free(&props);
    json_object_set_new(out, "_links",
                        json_pack("{s:{s:s}}", "next", "href", href.data ? href.data : ""));
    kith_buf_free(&href);
    http_json(r, 200, out);
    return 0;
}

/* The profile named by entityId/entityIdNS and the merge policy of mergePolicyId, from the query
 * (GET and DELETE of a profile). 0, or the problem is set on r. */
static int resolve_entity_query(kith_req *r, const char *id, const char *ns, uint32_t *nsid,
                                char *value, size_t *len, merge_policy *policy)
{
    if (resolve_identity(r, id, ns, "entityId", nsid, value, len) != 0) return -1;
    return resolve_policy(r, http_query(r, "mergePolicyId"), policy);
}

/* withCA=true: the computed attributes (src/ca/) at `_computed` in the entity of each profile of
 * out, read at this instant. */
static void attach_ca(kith_req *r, json_t *out, uint32_t nsid, const char *value, size_t len)
{
    uint64_t id, cluster;
    if (identity_lookup(r->e, r->sandbox_id, nsid, value, len, &id, &cluster) != 0) return;
    json_t *v = ca_values(r->e, NULL, r->sandbox_id, cluster, kith_now_ms(), NULL);
    if (!v) return;
    const char *k;
    json_t *prof;
    json_object_foreach(out, k, prof)
    {
        json_t *ent = json_object_get(prof, "entity");
        if (json_is_object(ent)) json_object_set(ent, "_computed", v);
    }
    json_decref(v);
}

int h_entities_get(kith_req *r)
{
    const char *schema = http_query(r, "schema.name");
    if (!schema) {
        http_problem(
            r, 400, "Bad Request", NULL,
            "schema.name is required (_xdm.context.profile or _xdm.context.experienceevent)");
        return 0;
    }
    if (strcmp(schema, "_xdm.context.experienceevent") == 0) return get_events(r);
    if (strcmp(schema, "_xdm.context.profile") != 0) {
        http_problem(r, 400, "Bad Request", NULL, "unknown schema.name \"%s\"", schema);
        return 0;
    }
    const char *id = http_query(r, "entityId");
    const char *ns = http_query(r, "entityIdNS");
    const char *wca = http_query(r, "withCA");
    if (wca && strcmp(wca, "true") != 0 && strcmp(wca, "false") != 0) {
        http_problem(r, 400, "Bad Request", NULL, "withCA must be true or false");
        return 0;
    }
    char value[KITH_XID_MAX];
    uint32_t nsid;
    size_t len;
    merge_policy policy;
    if (resolve_entity_query(r, id, ns, &nsid, value, &len, &policy) != 0) return 0;
    int err = 0;
    const char *fields = http_query(r, "fields");
    bool with_ca = wca && strcmp(wca, "true") == 0;
    if ((!fields || !*fields) && !with_ca && profile_policy_materialised(&policy)) {
        /* the common lookup: the stored view's text goes out as it is */
        err = profile_lookup_text(r->e, r->sandbox_id, nsid, value, len, &policy, &r->raw);
        merge_policy_clear(&policy);
        if (err == 0) {
            r->status = 200;
            r->ctype = "application/json";
        } else if (err == KITH_ENOTFOUND) {
            not_found(r, id, ns);
        } else {
            http_error(r, err, "the profile could not be read");
        }
        return 0;
    }
    json_t *out = profile_lookup_policy(r->e, r->sandbox_id, nsid, value, len, fields, &policy,
                                        &err);
    merge_policy_clear(&policy);
    if (out && with_ca) attach_ca(r, out, nsid, value, len);
    if (!out) {
        if (err == KITH_ENOTFOUND)
            not_found(r, id, ns);
        else
            http_error(r, err, "the profile could not be read");
        return 0;
    }
    http_json(r, 200, out);
    return 0;
}

/* Resolves a bulk identity item (id + namespace as a string or {"code"}), as resolve_identity but
 * without answering: false when the identity cannot be named. */
static bool bulk_identity(kith_req *r, const char *id, const json_t *nsv, uint32_t *nsid,
                          char *value, size_t *len)
{
    const char *ns = json_is_string(nsv) ? json_string_value(nsv)
                                         : json_string_value(json_object_get(nsv, "code"));
    if (!id || !*id) return false;
    if (!ns || !*ns) return identity_xid_parse(id, nsid, value, KITH_XID_MAX, len) == 0;
    catalog_rdlock(r->e->cat);
    const cat_namespace *nsd = catalog_namespace(r->e->cat, r->sandbox_id, ns);
    if (nsd) *nsid = nsd->id;
    catalog_unlock(r->e->cat);
    *len = strlen(id);
    if (!nsd || *len >= KITH_XID_MAX) return false;
    memcpy(value, id, *len + 1);
    return true;
}

static void bad_body(kith_req *r, const char *path, const char *msg, const char *detail)
{
    http_problem(r, 400, "Bad Request", json_pack("[{s:s, s:s}]", "path", path, "message", msg),
                 "%s", detail);
}

/* Bulk events: each identity gets its own {_page, children, _links.next.payload}, where payload is
 * the POST body that fetches that identity's next page (identities[0].start set). */
static void post_events(kith_req *r, json_t *body, json_t *ids, const char *fields,
                        const merge_policy *policy)
{
    event_query q = {.start_ms = INT64_MIN,
                     .end_ms = INT64_MAX,
                     .limit = 1000,
                     .policy = policy,
                     .fields = fields};
    const char *rel =
        json_string_value(json_object_get(json_object_get(body, "relatedSchema"), "name"));
    if (json_object_get(body, "relatedSchema") &&
        (!rel || strcmp(rel, "_xdm.context.profile") != 0))
        return bad_body(r, "/relatedSchema/name", "must be _xdm.context.profile",
                        "relatedSchema.name must be _xdm.context.profile");
    json_t *tf = json_object_get(body, "timeFilter"), *v;
    if (tf && !json_is_object(tf))
        return bad_body(r, "/timeFilter", "an object {startTime, endTime}",
                        "timeFilter must be an object");
    if ((v = json_object_get(tf, "startTime"))) {
        if (!json_is_integer(v))
            return bad_body(r, "/timeFilter/startTime", "epoch milliseconds",
                            "timeFilter.startTime must be epoch milliseconds");
        q.start_ms = json_integer_value(v);
        if (q.start_ms < 100000000000LL && q.start_ms > -100000000000LL) q.start_ms *= 1000;
    }
    if ((v = json_object_get(tf, "endTime"))) {
        if (!json_is_integer(v))
            return bad_body(r, "/timeFilter/endTime", "epoch milliseconds",
                            "timeFilter.endTime must be epoch milliseconds");
        q.end_ms = json_integer_value(v);
        if (q.end_ms < 100000000000LL && q.end_ms > -100000000000LL) q.end_ms *= 1000;
    }
    if ((v = json_object_get(body, "limit"))) {
        if (!json_is_integer(v) || json_integer_value(v) < 1 || json_integer_value(v) > 1000)
            return bad_body(r, "/limit", "an integer from 1 to 1000",
                            "limit must be an integer from 1 to 1000");
        q.limit = (size_t)json_integer_value(v);
    }
    if ((v = json_object_get(body, "orderby"))) {
        const char *o = json_string_value(v);
        if (o && strcmp(o, "-timestamp") == 0)
            q.descending = true;
        else if (!o || (strcmp(o, "+timestamp") != 0 && strcmp(o, "timestamp") != 0))
            return bad_body(r, "/orderby", "+timestamp or -timestamp",
                            "orderby must be +timestamp or -timestamp");
    }
    json_t *out = json_object();
    size_t i;
    json_array_foreach(ids, i, v)
    {
        const char *id = json_string_value(json_object_get(v, "relatedEntityId"));
        json_t *nsv = json_object_get(v, "relatedEntityIdNS");
        if (!id) {
            id = json_string_value(json_object_get(v, "entityId"));
            nsv = json_object_get(v, "entityIdNS");
        }
        const char *start = json_string_value(json_object_get(v, "start"));
        char value[KITH_XID_MAX], key[KITH_XID_MAX];
        uint32_t nsid = 0;
        size_t len = 0;
        bool ok = bulk_identity(r, id, nsv, &nsid, value, &len);
        if (ok)
            identity_xid(nsid, value, len, key, sizeof key);
        else
            snprintf(key, sizeof key, "%s", id ? id : "");
        q.cursor = start;
        int err = 0;
        json_t *page = ok ? profile_events(r->e, r->sandbox_id, nsid, value, len, &q, &err) : NULL;
        if (!page && err == KITH_EINVAL) {
            char path[48];
            snprintf(path, sizeof path, "/identities/%zu/start", i);
            bad_body(r, path, "a cursor from _page.next",
                     "identities[].start is not a cursor from _page.next");
            json_decref(out);
            return;
        }
        if (!page && err && err != KITH_ENOTFOUND) {
            http_error(r, err, "the events could not be read");
            json_decref(out);
            return;
        }
        if (!page)
            page = json_pack("{s:{s:s, s:s, s:i, s:s}, s:[]}", "_page", "orderby",
                             q.descending ? "-timestamp" : "timestamp", "start", "", "count", 0,
                             "next", "", "children");
        const char *next =
            json_string_value(json_object_get(json_object_get(page, "_page"), "next"));
        json_t *payload;
        if (next && *next) {
            payload = json_deep_copy(body);
            json_t *item = json_deep_copy(v);
            json_object_set_new(item, "start", json_string(next));
            json_object_set_new(payload, "identities", json_pack("[o]", item));
        } else {
            payload = json_string("");
        }
        json_object_set_new(page, "_links", json_pack("{s:{s:o}}", "next", "payload", payload));
        json_object_set_new(out, key, page);
    }
    http_json(r, 200, out);
}

/* Bulk lookup: {"schema": {"name"}, "identities": [{"entityId", "entityIdNS": {"code"}}], "fields",
 * "mergePolicyId"}. An unknown identity gets an empty entry, as AEP does. schema.name
 * _xdm.context.experienceevent asks for events instead (post_events). */
int h_entities_post(kith_req *r)
{
    json_t *body = http_body_json(r);
    if (!body) return 0;
    const char *schema =
        json_string_value(json_object_get(json_object_get(body, "schema"), "name"));
    json_t *ids = json_object_get(body, "identities");
    bool events = schema && strcmp(schema, "_xdm.context.experienceevent") == 0;
    kith_buf fields = {0};
    merge_policy policy = {0};
    json_t *f = json_object_get(body, "fields"), *mp = json_object_get(body, "mergePolicyId");
    json_t *wca = json_object_get(body, "withCA");
    size_t i;
    json_t *v;
    if (!json_is_object(body) || !schema ||
        (!events && strcmp(schema, "_xdm.context.profile") != 0)) {
        bad_body(
            r, "/schema/name", "_xdm.context.profile or _xdm.context.experienceevent",
            "bulk lookup needs schema.name _xdm.context.profile or _xdm.context.experienceevent");
        goto done;
    }
    if (!json_is_array(ids) || json_array_size(ids) == 0 || json_array_size(ids) > 100) {
        bad_body(r, "/identities", "an array of 1 to 100 identities",
                 "identities must list 1 to 100 identities");
        goto done;
    }
    if (mp && !json_is_string(mp)) {
        bad_body(r, "/mergePolicyId", "a merge policy id (string)",
                 "mergePolicyId must be a string");
        goto done;
    }
    if (wca && !json_is_boolean(wca)) {
        bad_body(r, "/withCA", "true or false", "withCA must be a boolean");
        goto done;
    }
    if (f && !json_is_array(f) && !json_is_string(f)) {
        bad_body(r, "/fields", "an array of dotted paths",
                 "fields must be an array of dotted paths");
        goto done;
    }
    if (json_is_string(f)) kith_buf_puts(&fields, json_string_value(f));
    json_array_foreach(f, i, v)
    {
        if (!json_is_string(v)) continue;
        if (fields.len) kith_buf_puts(&fields, ",");
        kith_buf_puts(&fields, json_string_value(v));
    }
    if (resolve_policy(r, json_string_value(mp), &policy) != 0) goto done;
    if (events) {
        post_events(r, body, ids, fields.data, &policy);
        goto done;
    }
    json_t *out = json_object();
    json_array_foreach(ids, i, v)
    {
        const char *id = json_string_value(json_object_get(v, "entityId"));
        char value[KITH_XID_MAX];
        uint32_t nsid = 0;
        size_t len = 0;
        bool ok = bulk_identity(r, id, json_object_get(v, "entityIdNS"), &nsid, value, &len);
        int err = 0;
        json_t *p = ok ? profile_lookup_policy(r->e, r->sandbox_id, nsid, value, len, fields.data,
                                               &policy, &err)
                       : NULL;
        if (p) {
            if (json_is_true(wca)) attach_ca(r, p, nsid, value, len);
            json_object_update(out, p);
            json_decref(p);
        } else {
            char key[KITH_XID_MAX];
            if (ok)
                identity_xid(nsid, value, len, key, sizeof key);
            else
                snprintf(key, sizeof key, "%s", id ? id : "");
            json_object_set_new(out, key,
                                json_pack("{s:s, s:[s], s:{}, s:s}", "entityId", key, "sources", "",
                                          "entity", "lastModifiedAt", "1970-01-01T00:00:00Z"));
        }
    }
    http_json(r, 200, out);
done:
    merge_policy_clear(&policy);
    kith_buf_free(&fields);
    json_decref(body);
    return 0;
}

struct profile_del {
    kith_engine *e;
    uint32_t sandbox, ns;
    const char *value;
    size_t len;
    bool only_identity; /* the merge policy's identityGraph is "none" */
    size_t deleted;
};

static int profile_del_fn(void *ctx, store_batch *b)
{
    struct profile_del *c = ctx;
    uint64_t id, cluster;
    int rc = identity_lookup(c->e, c->sandbox, c->ns, c->value, c->len, &id, &cluster);
    if (rc) return rc;
    if (c->only_identity) {
        ca_identity_events_deleted(c->e, b, c->sandbox, id, NULL); /* computed attributes */
        return profile_delete_identity(c->e, b, c->sandbox, id, cluster, &c->deleted);
    }
    ca_profile_deleted(c->e, b, c->sandbox, cluster);
    return profile_delete(c->e, b, c->sandbox, cluster, &c->deleted);
}

int h_entities_delete(kith_req *r)
{
    const char *schema = http_query(r, "schema.name");
    if (!schema || strcmp(schema, "_xdm.context.profile") != 0) {
        http_problem(r, 400, "Bad Request", NULL, "schema.name must be _xdm.context.profile");
        return 0;
    }
    const char *id = http_query(r, "entityId");
    const char *ns = http_query(r, "entityIdNS");
    char value[KITH_XID_MAX];
    uint32_t nsid;
    size_t len;
    merge_policy policy;
    if (resolve_entity_query(r, id, ns, &nsid, value, &len, &policy) != 0) return 0;
    struct profile_del c = {r->e, r->sandbox_id, nsid, value, len, policy.graph == MP_GRAPH_NONE,
                            0};
    merge_policy_clear(&policy);
    /* Exclusive: events are blind appends, so the delete must run after earlier groups were
     * written. */
    int rc = apply_call(r->e->apply, profile_del_fn, &c, true);
    if (rc == KITH_ENOTFOUND)
        not_found(r, id, ns);
    else if (rc)
        http_error(r, rc, "the profile could not be deleted");
    else
        r->status = 202;
    return 0;
}
