/* Identity Service: XIDs, cluster members and history (single and batch), explain, unlink, and the
 * linking rules of a sandbox. Reads go to committed data on the HTTP thread; unlink and the rules
 * run on the writer. */
#include <stdlib.h>
#include <string.h>

#include "http.h"

#define BATCH_MAX 1000

/* An identity named by the request: ns (code) | nsId | namespace, with id; or xid. */
typedef struct ident_ref {
    uint32_t ns;
    char value[KITH_XID_MAX];
    size_t len;
    char code[64];
} ident_ref;

static int ns_by_code(kith_req *r, const char *code, ident_ref *out)
{
    catalog_rdlock(r->e->cat);
    const cat_namespace *n = catalog_namespace(r->e->cat, r->sandbox_id, code);
    if (n) {
        out->ns = n->id;
        snprintf(out->code, sizeof out->code, "%s", n->code);
    }
    catalog_unlock(r->e->cat);
    return n ? 0 : KITH_ENOTFOUND;
}

static int ns_by_id(kith_req *r, uint32_t id, ident_ref *out)
{
    catalog_rdlock(r->e->cat);
    const cat_namespace *n = catalog_namespace_by_id(r->e->cat, r->sandbox_id, id);
    if (n) {
        out->ns = n->id;
        snprintf(out->code, sizeof out->code, "%s", n->code);
    }
    catalog_unlock(r->e->cat);
    return n ? 0 : KITH_ENOTFOUND;
}

static int set_value(ident_ref *out, const char *v)
{
    size_t n = strlen(v);
    if (n == 0 || n >= sizeof out->value || n > 1024) return KITH_EINVAL;
    memcpy(out->value, v, n + 1);
    out->len = n;
    return 0;
}

/* From the query string; answers 400/404 itself and returns non-zero when the request is done. */
static int ref_from_query(kith_req *r, ident_ref *out)
{
    memset(out, 0, sizeof *out);
    const char *xid = http_query(r, "xid"), *id = http_query(r, "id");
    const char *code = http_query(r, "ns");
    if (!code) code = http_query(r, "namespace");
    const char *nsid = http_query(r, "nsId");
    if (!nsid) nsid = http_query(r, "nsid");
    if (xid) {
        if (identity_xid_parse(xid, &out->ns, out->value, sizeof out->value, &out->len) != 0 ||
            ns_by_id(r, out->ns, out) != 0) {
            http_problem(r, 400, "Bad Request", NULL,
                         "xid \"%.100s\" is not an identity of this sandbox", xid);
            return 1;
        }
        return 0;
    }
    if (!id || (!code && !nsid)) {
        http_problem(
            r, 400, "Bad Request", NULL,
            "name the identity with ns=<code> (or nsId=<id>) and id=<value>, or xid=<xid>");
        return 1;
    }
    int rc;
    if (code) {
        rc = ns_by_code(r, code, out);
    } else {
        char *end;
        unsigned long v = strtoul(nsid, &end, 10);
        rc = *nsid && !*end ? ns_by_id(r, (uint32_t)v, out) : KITH_ENOTFOUND;
    }
    if (rc) {
        http_problem(
            r, 400, "Bad Request", NULL,
            "unknown identity namespace \"%.100s\" (see GET /data/core/idnamespace/identities)",
            code ? code : nsid);
        return 1;
    }
    if (set_value(out, id) != 0) {
        http_problem(r, 400, "Bad Request", NULL, "id must be 1 to 1,024 bytes");
        return 1;
    }
    return 0;
}

static json_t *composite(const ident_ref *ref)
{
    return json_pack("{s:I, s:s%}", "nsid", (json_int_t)ref->ns, "id", ref->value, ref->len);
}

static void xid_of(const ident_ref *ref, char *out)
{
    identity_xid(ref->ns, ref->value, ref->len, out, KITH_XID_MAX);
}

int h_identity_xid(kith_req *r)
{
    ident_ref ref;
    if (ref_from_query(r, &ref)) return 0;
    char xid[KITH_XID_MAX];
    xid_of(&ref, xid);
    http_json(r, 200, json_pack("{s:s, s:o}", "xid", xid, "compositeXid", composite(&ref)));
    return 0;
}

/* The members of ref's cluster ([] when the identity is unknown); NULL on a storage error. */
static json_t *members_of(kith_req *r, const ident_ref *ref, bool *found)
{
    uint64_t id, cl;
    *found = false;
    int rc = identity_lookup(r->e, r->sandbox_id, ref->ns, ref->value, ref->len, &id, &cl);
    if (rc == KITH_ENOTFOUND) return json_array();
    if (rc) return NULL;
    cluster_members m;
    rc = identity_members(r->e, NULL, r->sandbox_id, cl, &m);
    if (rc == KITH_ENOTFOUND) return json_array();
    if (rc) return NULL;
    *found = true;
    json_t *a = json_array();
    for (size_t i = 0; i < m.n; i++)
        json_array_append_new(a, json_pack("{s:I, s:s%}", "nsid", (json_int_t)m.v[i].ns, "id",
                                           m.v[i].value, m.v[i].len));
    cluster_members_free(&m);
    return a;
}

/* What a cluster query answers: its members, the identity's cluster history, or its mappings (the
 * other members, optionally of one target namespace, with the time each was last linked). */
enum view { V_MEMBERS, V_HISTORY, V_MAPPING };

static json_t *mapping_of(kith_req *r, const ident_ref *ref, int64_t target, bool *found)
{
    int err = 0;
    json_t *raw = identity_mapping(r->e, r->sandbox_id, ref->ns, ref->value, ref->len, target, &err);
    *found = raw != NULL;
    if (!raw) return err == KITH_ENOTFOUND ? json_array() : NULL;
    json_t *out = json_array();
    size_t i;
    json_t *m;
    json_array_foreach(raw, i, m)
    {
        ident_ref mref = {.ns = (uint32_t)json_integer_value(json_object_get(m, "nsid"))};
        if (set_value(&mref, json_string_value(json_object_get(m, "id"))) != 0) continue;
        char mx[KITH_XID_MAX];
        xid_of(&mref, mx);
        json_array_append_new(out, json_pack("{s:s, s:o, s:O}", "xid", mx, "compositeXid",
                                             composite(&mref), "lastAssociationTime",
                                             json_object_get(m, "lastAssociationTime")));
    }
    json_decref(raw);
    return out;
}

static json_t *cluster_entry(kith_req *r, const ident_ref *ref, enum view view, int64_t target,
                             bool *found)
{
    char xid[KITH_XID_MAX];
    xid_of(ref, xid);
    json_t *body;
    bool history = view == V_HISTORY;
    if (view == V_MAPPING) {
        body = mapping_of(r, ref, target, found);
    } else if (history) {
        int err = 0;
        body = identity_history(r->e, r->sandbox_id, ref->ns, ref->value, ref->len, &err);
        *found = body != NULL;
        if (!body && err == KITH_ENOTFOUND) body = json_array();
    } else {
        body = members_of(r, ref, found);
    }
    if (!body) return NULL;
    return json_pack("{s:s, s:o, s:o}", "xid", xid, "compositeXid", composite(ref),
                     view == V_MAPPING ? "mapping" : history ? "clusterHistory" : "members", body);
}

/* targetNs (mappings): a namespace id of the sandbox, as a number or a string of digits; absent: every
 * namespace (*out = -1). Answers the 400 itself and returns non-zero when the value is wrong. */
static int target_ns(kith_req *r, json_t *v, const char *path, int64_t *out)
{
    *out = -1;
    if (!v) return 0;
    json_int_t n = -1;
    if (json_is_integer(v)) {
        n = json_integer_value(v);
    } else if (json_is_string(v)) {
        char *end;
        const char *s = json_string_value(v);
        n = *s ? (json_int_t)strtoll(s, &end, 10) : -1;
        if (*s && *end) n = -1;
    }
    ident_ref tmp;
    if (n < 0 || n > UINT32_MAX || ns_by_id(r, (uint32_t)n, &tmp) != 0) {
        http_problem(r, 400, "Bad Request",
                     json_pack("[{s:s, s:s}]", "path", path, "message",
                               "a namespace id of this sandbox (see GET "
                               "/data/core/idnamespace/identities)"),
                     "targetNs is not a namespace id of this sandbox");
        return 1;
    }
    *out = n;
    return 0;
}

static int single(kith_req *r, enum view view)
{
    ident_ref ref;
    if (ref_from_query(r, &ref)) return 0;
    int64_t target = -1;
    if (view == V_MAPPING) {
        const char *t = http_query(r, "targetNs");
        json_t *tv = t ? json_string(t) : NULL;
        int bad = target_ns(r, tv, "targetNs", &target);
        json_decref(tv);
        if (bad) return 0;
    }
    bool found;
    json_t *out = cluster_entry(r, &ref, view, target, &found);
    if (!out)
        http_error(r, KITH_EIO, "the identity graph could not be read");
    else if (!found) {
        json_decref(out);
        http_problem(r, 404, "Not Found", NULL, "no identity %s:%.200s in this sandbox", ref.code,
                     ref.value);
    } else if (view == V_MAPPING && json_array_size(json_object_get(out, "mapping")) == 0) {
        json_decref(out);
        r->status = 204; /* nothing related (aep-spec 2.6) */
    } else
        http_json(r, 200, out);
    return 0;
}

int h_cluster_members(kith_req *r)
{
    return single(r, V_MEMBERS);
}

int h_cluster_history(kith_req *r)
{
    return single(r, V_HISTORY);
}

int h_identity_mapping(kith_req *r)
{
    return single(r, V_MAPPING);
}

/* Batch form: {"xids": [...]} or {"compositeXids": [{"nsid", "id"}]}, at most 1,000. One entry per
 * requested identity; malformed ones are listed in unprocessedXids / unprocessedNids. */
static int batch(kith_req *r, enum view view)
{
    json_t *body = http_body_json(r);
    if (!body) return 0;
    int64_t target = -1;
    if (view == V_MAPPING && target_ns(r, json_object_get(body, "targetNs"), "/targetNs", &target)) {
        json_decref(body);
        return 0;
    }
    json_t *xids = json_object_get(body, "xids"), *nids = json_object_get(body, "compositeXids");
    if ((xids && !json_is_array(xids)) || (nids && !json_is_array(nids)) || (!xids && !nids)) {
        http_problem(r, 400, "Bad Request",
                     json_pack("[{s:s, s:s}]", "path", xids ? "/xids" : "/compositeXids", "message",
                               "expected an array"),
                     "give \"xids\" (array of XIDs) or \"compositeXids\" (array of {nsid, id})");
        json_decref(body);
        return 0;
    }
    size_t n = json_array_size(xids) + json_array_size(nids);
    if (n > BATCH_MAX) {
        http_problem(r, 400, "Bad Request",
                     json_pack("[{s:s, s:s}]", "path", xids ? "/xids" : "/compositeXids", "message",
                               "at most 1000 identities per request"),
                     "%zu identities requested; the limit is %d", n, BATCH_MAX);
        json_decref(body);
        return 0;
    }
    json_t *clusters = json_array(), *bad_x = json_array(), *bad_n = json_array();
    size_t i;
    json_t *v;
    bool io = false;
    json_array_foreach(xids, i, v)
    {
        ident_ref ref = {0};
        const char *s = json_string_value(v);
        if (!s || identity_xid_parse(s, &ref.ns, ref.value, sizeof ref.value, &ref.len) != 0 ||
            ns_by_id(r, ref.ns, &ref) != 0) {
            json_array_append(bad_x, v);
            continue;
        }
        bool found;
        json_t *e = cluster_entry(r, &ref, view, target, &found);
        if (!e)
            io = true;
        else
            json_array_append_new(clusters, e);
    }
    json_array_foreach(nids, i, v)
    {
        ident_ref ref = {0};
        json_t *ns = json_object_get(v, "nsid");
        const char *id = json_string_value(json_object_get(v, "id"));
        json_int_t nsv = json_is_integer(ns)  ? json_integer_value(ns)
                         : json_is_string(ns) ? strtoll(json_string_value(ns), NULL, 10)
                                              : -1;
        if (nsv < 0 || nsv > UINT32_MAX || !id || ns_by_id(r, (uint32_t)nsv, &ref) != 0 ||
            set_value(&ref, id) != 0) {
            json_array_append(bad_n, v);
            continue;
        }
        bool found;
        json_t *e = cluster_entry(r, &ref, view, target, &found);
        if (!e)
            io = true;
        else
            json_array_append_new(clusters, e);
    }
    json_decref(body);
    if (io) {
        json_decref(clusters);
        json_decref(bad_x);
        json_decref(bad_n);
        http_error(r, KITH_EIO, "the identity graph could not be read");
        return 0;
    }
    if (view == V_MAPPING && json_array_size(bad_x) + json_array_size(bad_n) == 0) {
        bool any = false;
        json_array_foreach(clusters, i, v) any |= json_array_size(json_object_get(v, "mapping")) > 0;
        if (!any) { /* nothing related (aep-spec 2.6) */
            json_decref(clusters);
            json_decref(bad_x);
            json_decref(bad_n);
            r->status = 204;
            return 0;
        }
    }
    http_json(r, 200,
              json_pack("{s:s, s:o, s:o, s:o}", "version", "1.0.0", "unprocessedXids", bad_x,
                        "unprocessedNids", bad_n,
                        view == V_MAPPING   ? "mappings"
                        : view == V_HISTORY ? "xidsHistory"
                                            : "clusters",
                        clusters));
    return 0;
}

int h_clusters_members(kith_req *r)
{
    return batch(r, V_MEMBERS);
}

int h_clusters_history(kith_req *r)
{
    return batch(r, V_HISTORY);
}

int h_identities_mapping(kith_req *r)
{
    return batch(r, V_MAPPING);
}

int h_cluster_explain(kith_req *r)
{
    ident_ref ref;
    if (ref_from_query(r, &ref)) return 0;
    int err = 0;
    json_t *x = identity_explain(r->e, r->sandbox_id, ref.ns, ref.value, ref.len, &err);
    if (!x && err == KITH_ENOTFOUND)
        http_problem(r, 404, "Not Found", NULL, "no identity %s:%.200s in this sandbox", ref.code,
                     ref.value);
    else if (!x)
        http_error(r, err, "the identity graph could not be read");
    else {
        json_object_set_new(x, "linkingRules", identity_rules_get(r->e, r->sandbox_id));
        http_json(r, 200, x);
    }
    return 0;
}

/* --- unlink --- */

static int ref_from_json(kith_req *r, json_t *o, const char *path, ident_ref *out, json_t *errors)
{
    memset(out, 0, sizeof *out);
    const char *code = json_string_value(json_object_get(o, "namespace"));
    const char *id = json_string_value(json_object_get(o, "id"));
    char p[64];
    if (!code || ns_by_code(r, code, out) != 0) {
        snprintf(p, sizeof p, "%s/namespace", path);
        json_array_append_new(errors, json_pack("{s:s, s:s}", "path", p, "message",
                                                "an identity namespace code of this sandbox"));
        return KITH_EINVAL;
    }
    if (!id || set_value(out, id) != 0) {
        snprintf(p, sizeof p, "%s/id", path);
        json_array_append_new(
            errors, json_pack("{s:s, s:s}", "path", p, "message", "a string of 1 to 1024 bytes"));
        return KITH_EINVAL;
    }
    return 0;
}

struct unlink_ctx {
    kith_engine *e;
    uint32_t sb;
    ident_ref a, c;
    bool edge;
};

static int unlink_fn(void *ctx, store_batch *b)
{
    struct unlink_ctx *u = ctx;
    if (u->edge)
        return identity_unlink_edge(u->e, b, u->sb, u->a.ns, u->a.value, u->a.len, u->c.ns,
                                    u->c.value, u->c.len);
    return identity_unlink_identity(u->e, b, u->sb, u->a.ns, u->a.value, u->a.len);
}

static json_t *cluster_id_of(kith_req *r, const ident_ref *ref)
{
    uint64_t id, cl;
    if (identity_lookup(r->e, r->sandbox_id, ref->ns, ref->value, ref->len, &id, &cl) != 0)
        return json_null();
    char uuid[40];
    identity_cluster_uuid(r->sandbox_id, cl, uuid);
    return json_string(uuid);
}

int h_identity_unlink(kith_req *r)
{
    json_t *body = http_body_json(r);
    if (!body) return 0;
    json_t *edge = json_object_get(body, "edge"), *one = json_object_get(body, "identity");
    json_t *errors = json_array();
    struct unlink_ctx u = {.e = r->e, .sb = r->sandbox_id, .edge = edge != NULL};
    if ((edge != NULL) == (one != NULL)) {
        json_array_append_new(errors, json_pack("{s:s, s:s}", "path", "", "message",
                                                "give exactly one of \"edge\" (two identities) or "
                                                "\"identity\""));
    } else if (edge) {
        if (!json_is_array(edge) || json_array_size(edge) != 2)
            json_array_append_new(errors, json_pack("{s:s, s:s}", "path", "/edge", "message",
                                                    "an array of two {namespace, id} objects"));
        else {
            ref_from_json(r, json_array_get(edge, 0), "/edge/0", &u.a, errors);
            ref_from_json(r, json_array_get(edge, 1), "/edge/1", &u.c, errors);
        }
    } else {
        ref_from_json(r, one, "/identity", &u.a, errors);
    }
    json_decref(body);
    if (json_array_size(errors)) {
        http_problem(r, 400, "Bad Request", errors, "the unlink request is invalid");
        return 0;
    }
    json_decref(errors);
    int rc = apply_call(r->e->apply, unlink_fn, &u, false);
    if (rc == KITH_ENOTFOUND)
        http_problem(r, 404, "Not Found", NULL,
                     u.edge ? "there is no link between %s:%.200s and these identities"
                            : "no identity %s:%.200s in this sandbox",
                     u.a.code, u.a.value);
    else if (rc)
        http_error(r, rc, "the unlink could not be applied");
    else {
        json_t *out = json_pack("{s:b, s:[o]}", "unlinked", 1, "clusters", cluster_id_of(r, &u.a));
        if (u.edge) json_array_append_new(json_object_get(out, "clusters"), cluster_id_of(r, &u.c));
        http_json(r, 200, out);
    }
    return 0;
}

/* --- linking rules --- */

int h_linking_rules_get(kith_req *r)
{
    http_json(r, 200, identity_rules_get(r->e, r->sandbox_id));
    return 0;
}

struct rules_ctx {
    kith_engine *e;
    uint32_t sb;
    json_t *doc, *errors;
};

static int rules_fn(void *ctx, store_batch *b)
{
    struct rules_ctx *c = ctx;
    return identity_rules_put(c->e, b, c->sb, c->doc, c->errors);
}

int h_linking_rules_put(kith_req *r)
{
    json_t *body = http_body_json(r);
    if (!body) return 0;
    struct rules_ctx c = {r->e, r->sandbox_id, body, json_array()};
    int rc = apply_call(r->e->apply, rules_fn, &c, false);
    if (rc == KITH_EINVAL) {
        http_problem(r, 400, "Invalid linking rules", c.errors, "the linking rules are invalid");
        c.errors = NULL;
    } else if (rc) {
        http_error(r, rc, "the linking rules could not be stored");
    } else {
        http_json(r, 200, identity_rules_get(r->e, r->sandbox_id));
    }
    json_decref(c.errors);
    json_decref(body);
    return 0;
}
