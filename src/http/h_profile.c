/* Profile Access: profiles and events by any identity of a cluster. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "http.h"

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
        http_problem(r, 400, "Bad Request", NULL,
                     "%sNS is required unless %s is an XID", id_name, id_name);
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

static int get_events(kith_req *r)
{
    const char *rel = http_query(r, "relatedSchema.name");
    if (rel && strcmp(rel, "_xdm.context.profile") != 0) {
        http_problem(r, 400, "Bad Request", NULL, "relatedSchema.name must be _xdm.context.profile");
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
        if (strcmp(s, "-timestamp") == 0) q.descending = true;
        else if (strcmp(s, "+timestamp") != 0 && strcmp(s, "timestamp") != 0 && strcmp(s, " timestamp") != 0) {
            http_problem(r, 400, "Bad Request", NULL, "orderby must be +timestamp or -timestamp");
            return 0;
        }
    }
    q.cursor = http_query(r, "start");
    int err = 0;
    json_t *out = profile_events(r->e, r->sandbox_id, nsid, value, len, &q, &err);
    if (!out) {
        if (err == KITH_ENOTFOUND) not_found(r, id, ns);
        else if (err == KITH_EINVAL) http_problem(r, 400, "Bad Request", NULL, "start is not a cursor from _page.next");
        else http_error(r, err, "the events could not be read");
        return 0;
    }
    const char *next = json_string_value(json_object_get(json_object_get(out, "_page"), "next"));
    kith_buf href = {0};
    if (next && *next) {
        kith_buf_printf(&href, "/entities?schema.name=_xdm.context.experienceevent&relatedSchema.name=_xdm.context.profile&relatedEntityId=");
        for (const char *p = id; *p; p++) {
            unsigned char c = (unsigned char)*p;
            if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' || c == '_' || c == '.')
                kith_buf_append(&href, p, 1);
            else
                kith_buf_printf(&href, "%%%02X", c);
        }
        if (ns) kith_buf_printf(&href, "&relatedEntityIdNS=%s", ns);
        kith_buf_printf(&href, "&limit=%zu&orderby=%s&start=%s", q.limit, q.descending ? "-timestamp" : "%2Btimestamp", next);
        if (q.start_ms != INT64_MIN) kith_buf_printf(&href, "&startTime=%lld", (long long)q.start_ms);
        if (q.end_ms != INT64_MAX) kith_buf_printf(&href, "&endTime=%lld", (long long)q.end_ms);
    }
    json_object_set_new(out, "_links", json_pack("{s:{s:s}}", "next", "href", href.data ? href.data : ""));
    kith_buf_free(&href);
    http_json(r, 200, out);
    return 0;
}

int h_entities_get(kith_req *r)
{
    const char *schema = http_query(r, "schema.name");
    if (!schema) {
        http_problem(r, 400, "Bad Request", NULL,
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
    char value[KITH_XID_MAX];
    uint32_t nsid;
    size_t len;
    if (resolve_identity(r, id, ns, "entityId", &nsid, value, &len) != 0) return 0;
    int err = 0;
    json_t *out = profile_lookup(r->e, r->sandbox_id, nsid, value, len, http_query(r, "fields"), &err);
    if (!out) {
        if (err == KITH_ENOTFOUND) not_found(r, id, ns);
        else http_error(r, err, "the profile could not be read");
        return 0;
    }
    http_json(r, 200, out);
    return 0;
}

/* Bulk lookup: {"schema": {"name"}, "identities": [{"entityId", "entityIdNS": {"code"}}], "fields"}.
 * An unknown identity gets an empty entry, as AEP does. */
int h_entities_post(kith_req *r)
{
    json_t *body = http_body_json(r);
    if (!body) return 0;
    const char *schema = json_string_value(json_object_get(json_object_get(body, "schema"), "name"));
    json_t *ids = json_object_get(body, "identities");
    if (!schema || strcmp(schema, "_xdm.context.profile") != 0) {
        http_problem(r, 400, "Bad Request",
                     json_pack("[{s:s, s:s}]", "path", "/schema/name", "message", "must be _xdm.context.profile"),
                     "bulk lookup needs schema.name _xdm.context.profile");
        json_decref(body);
        return 0;
    }
    if (!json_is_array(ids) || json_array_size(ids) == 0 || json_array_size(ids) > 100) {
        http_problem(r, 400, "Bad Request",
                     json_pack("[{s:s, s:s}]", "path", "/identities", "message", "an array of 1 to 100 identities"),
                     "identities must list 1 to 100 identities");
        json_decref(body);
        return 0;
    }
    kith_buf fields = {0};
    json_t *f = json_object_get(body, "fields");
    size_t i;
    json_t *v;
    json_array_foreach(f, i, v)
    {
        if (!json_is_string(v)) continue;
        if (fields.len) kith_buf_puts(&fields, ",");
        kith_buf_puts(&fields, json_string_value(v));
    }
    json_t *out = json_object();
    json_array_foreach(ids, i, v)
    {
        const char *id = json_string_value(json_object_get(v, "entityId"));
        json_t *nsv = json_object_get(v, "entityIdNS");
        const char *ns = json_is_string(nsv) ? json_string_value(nsv) : json_string_value(json_object_get(nsv, "code"));
        char value[KITH_XID_MAX];
        uint32_t nsid = 0;
        size_t len = 0;
        bool ok = id && *id;
        if (ok && (!ns || !*ns)) ok = identity_xid_parse(id, &nsid, value, sizeof value, &len) == 0;
        else if (ok) {
            catalog_rdlock(r->e->cat);
            const cat_namespace *nsd = catalog_namespace(r->e->cat, r->sandbox_id, ns);
            if (nsd) nsid = nsd->id;
            catalog_unlock(r->e->cat);
            len = strlen(id);
            ok = nsd && len < sizeof value;
            if (ok) memcpy(value, id, len + 1);
        }
        int err = 0;
        json_t *p = ok ? profile_lookup(r->e, r->sandbox_id, nsid, value, len, fields.data, &err) : NULL;
        if (p) {
            json_object_update(out, p);
            json_decref(p);
        } else {
            char key[KITH_XID_MAX];
            if (ok) identity_xid(nsid, value, len, key, sizeof key);
            else snprintf(key, sizeof key, "%s", id ? id : "");
            json_object_set_new(out, key, json_pack("{s:s, s:[s], s:{}, s:s}", "entityId", key, "sources", "", "entity",
                                                    "lastModifiedAt", "1970-01-01T00:00:00Z"));
        }
    }
    kith_buf_free(&fields);
    json_decref(body);
    http_json(r, 200, out);
    return 0;
}

struct profile_del {
    kith_engine *e;
    uint32_t sandbox, ns;
    const char *value;
    size_t len;
    size_t deleted;
};

static int profile_del_fn(void *ctx, store_batch *b)
{
    struct profile_del *c = ctx;
    uint64_t id, cluster;
    int rc = identity_lookup(c->e, c->sandbox, c->ns, c->value, c->len, &id, &cluster);
    return rc ? rc : profile_delete(c->e, b, c->sandbox, cluster, &c->deleted);
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
    if (resolve_identity(r, id, ns, "entityId", &nsid, value, &len) != 0) return 0;
    struct profile_del c = {r->e, r->sandbox_id, nsid, value, len, 0};
    /* Exclusive: events are blind appends, so the delete must run after earlier groups were written. */
    int rc = apply_call(r->e->apply, profile_del_fn, &c, true);
    if (rc == KITH_ENOTFOUND) not_found(r, id, ns);
    else if (rc) http_error(r, rc, "the profile could not be deleted");
    else r->status = 202;
    return 0;
}
