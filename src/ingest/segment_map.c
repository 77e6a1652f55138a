/* Segment message → XDM entity (see include/kith/segment_map.h). */
#include "kith/segment_map.h"

#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "kith/base.h"

static const struct {
    const char *name, *letter;
    int type;
} seg_types[] = {
    {"identify", "i", SEGMENT_IDENTIFY}, {"track", "t", SEGMENT_TRACK},
    {"page", "p", SEGMENT_PAGE},         {"screen", "s", SEGMENT_SCREEN},
    {"group", "g", SEGMENT_GROUP},       {"alias", "a", SEGMENT_ALIAS},
};

int segment_type_parse(const char *s)
{
    if (!s) return SEGMENT_NONE;
    for (size_t i = 0; i < sizeof seg_types / sizeof seg_types[0]; i++)
        if (strcmp(s, seg_types[i].name) == 0 || strcmp(s, seg_types[i].letter) == 0)
            return seg_types[i].type;
    return SEGMENT_NONE;
}

const char *segment_type_name(int type)
{
    for (size_t i = 0; i < sizeof seg_types / sizeof seg_types[0]; i++)
        if (seg_types[i].type == type) return seg_types[i].name;
    return "unknown";
}

static void add_error(json_t *errors, const char *prefix, const char *field, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
static void add_error(json_t *errors, const char *prefix, const char *field, const char *fmt, ...)
{
    char msg[300], path[300];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    snprintf(path, sizeof path, "%s%s", prefix, field);
    /* Both quote input and may have been cut inside a UTF-8 sequence. */
    json_array_append_new(errors, json_pack("{s:s, s:s}", "path", kith_utf8_sanitize(path), "message",
                                            kith_utf8_sanitize(msg)));
}

const char *segment_id_field(const json_t *msg, const char *key, char *buf, size_t cap)
{
    json_t *v = json_object_get(msg, key);
    if (json_is_string(v)) {
        const char *s = json_string_value(v);
        return *s ? s : NULL;
    }
    if (json_is_integer(v)) {
        snprintf(buf, cap, "%" JSON_INTEGER_FORMAT, json_integer_value(v));
        return buf;
    }
    return NULL;
}

/* Sets obj[a][b]... (creating objects on the way) to v (taken). */
static void set_path(json_t *obj, const char *const *keys, size_t n, json_t *v)
{
    for (size_t i = 0; i + 1 < n; i++) {
        json_t *child = json_object_get(obj, keys[i]);
        if (!json_is_object(child)) {
            child = json_object();
            json_object_set_new(obj, keys[i], child);
        }
        obj = child;
    }
    json_object_set_new(obj, keys[n - 1], v);
}
#define SET(obj, v, ...)                                                                           \
    set_path((obj), (const char *const[]){__VA_ARGS__},                                            \
             sizeof((const char *const[]){__VA_ARGS__}) / sizeof(const char *), (v))

#define TIME_MIN (-62135596800000LL) /* 0001-01-01T00:00:00Z */
#define TIME_MAX (253402300799999LL) /* 9999-12-31T23:59:59.999Z */

/* The message time in ms (see the header). */
static int64_t message_time(const json_t *msg, int64_t received)
{
    int64_t t, orig, sent;
    const char *ts = json_string_value(json_object_get(msg, "timestamp"));
    if (ts && kith_time_parse(ts, &t) == 0 && t >= TIME_MIN && t <= TIME_MAX) return t;
    const char *os = json_string_value(json_object_get(msg, "originalTimestamp"));
    if (os && kith_time_parse(os, &orig) == 0 && orig >= TIME_MIN && orig <= TIME_MAX) {
        const char *ss = json_string_value(json_object_get(msg, "sentAt"));
        /* A skew correction that leaves years 1..9999 is nonsense: keep the client's time. */
        if (ss && kith_time_parse(ss, &sent) == 0 && sent > TIME_MIN && sent < TIME_MAX &&
            orig + (received - sent) >= TIME_MIN && orig + (received - sent) <= TIME_MAX)
            return orig + (received - sent);
        return orig;
    }
    return received;
}

/* identityMap entry list for ns, created on first use. */
static void idmap_add(json_t *idmap, const char *ns, const char *id, bool primary,
                      const char *state)
{
    json_t *list = json_object_get(idmap, ns);
    if (!list) {
        list = json_array();
        json_object_set_new(idmap, ns, list);
    }
    json_array_append_new(list, json_pack("{s:s, s:b, s:s}", "id", id, "primary", primary,
                                          "authenticatedState", state));
}

static bool nonempty_string(const json_t *v)
{
    return json_is_string(v) && json_string_length(v) > 0;
}

/* Reserved traits → XDM fields; the rest → _segment.traits. */
static void map_traits(json_t *ent, const json_t *traits)
{
    json_t *rest = json_object();
    const char *k;
    json_t *v;
    json_object_foreach((json_t *)traits, k, v)
    {
        if (strcmp(k, "email") == 0 && nonempty_string(v) && strchr(json_string_value(v), '@')) {
            SET(ent, json_incref(v), "personalEmail", "address");
        } else if (strcmp(k, "firstName") == 0 && json_is_string(v)) {
            SET(ent, json_incref(v), "person", "name", "firstName");
        } else if (strcmp(k, "lastName") == 0 && json_is_string(v)) {
            SET(ent, json_incref(v), "person", "name", "lastName");
        } else if (strcmp(k, "name") == 0 && json_is_string(v)) {
            SET(ent, json_incref(v), "person", "name", "fullName");
        } else if (strcmp(k, "phone") == 0 && json_is_string(v)) {
            SET(ent, json_incref(v), "mobilePhone", "number");
        } else if (strcmp(k, "address") == 0 && json_is_object(v)) {
            static const char *const amap[][2] = {
                {"street", "street1"},        {"street1", "street1"},
                {"street2", "street2"},       {"city", "city"},
                {"state", "stateProvince"},   {"region", "region"},
                {"postalCode", "postalCode"}, {"postal_code", "postalCode"},
                {"country", "country"},
            };
            json_t *addr = json_object(), *other = json_object();
            const char *ak;
            json_t *av;
            json_object_foreach(v, ak, av)
            {
                const char *to = NULL;
                for (size_t i = 0; i < sizeof amap / sizeof amap[0] && json_is_string(av); i++)
                    if (strcmp(ak, amap[i][0]) == 0) to = amap[i][1];
                if (to)
                    json_object_set(addr, to, av);
                else
                    json_object_set(other, ak, av);
            }
            if (json_object_size(addr))
                json_object_set_new(ent, "homeAddress", addr);
            else
                json_decref(addr);
            if (json_object_size(other))
                json_object_set_new(rest, "address", other);
            else
                json_decref(other);
        } else {
            json_object_set(rest, k, v);
        }
    }
    SET(ent, rest, "_segment", "traits");
}

int segment_map(const json_t *msg, int type, const segment_map_opts *o, const char *prefix,
                json_t **out, bool *is_event, json_t *errors)
{
    *out = NULL;
    *is_event = false;
    if (!prefix) prefix = "";
    if (!json_is_object(msg)) {
        add_error(errors, prefix, "", "a message must be a JSON object");
        return KITH_EINVAL;
    }
    if (type == SEGMENT_NONE) {
        const char *t = json_string_value(json_object_get(msg, "type"));
        type = segment_type_parse(t);
        if (type == SEGMENT_NONE) {
            add_error(errors, prefix, "/type",
                      "\"type\" must be identify, track, page, screen, group or alias");
            return KITH_EINVAL;
        }
    }
    char ubuf[32], abuf[32], pbuf[32], mbuf[32];
    const char *user = segment_id_field(msg, "userId", ubuf, sizeof ubuf);
    const char *anon = segment_id_field(msg, "anonymousId", abuf, sizeof abuf);
    const char *prev = segment_id_field(msg, "previousId", pbuf, sizeof pbuf);
    const char *mid = segment_id_field(msg, "messageId", mbuf, sizeof mbuf);
    const char *event = json_string_value(json_object_get(msg, "event"));
    const char *group = NULL;
    char gbuf[32];
    int bad = 0;
    if (type == SEGMENT_ALIAS) {
        if (!user) add_error(errors, prefix, "/userId", "an alias needs \"userId\""), bad++;
        if (!prev) add_error(errors, prefix, "/previousId", "an alias needs \"previousId\""), bad++;
    } else if (!user && !anon) {
        add_error(errors, prefix, "/userId", "a message needs \"userId\" or \"anonymousId\"");
        bad++;
    }
    if (type == SEGMENT_TRACK && (!event || !*event))
        add_error(errors, prefix, "/event", "a track needs a non-empty \"event\" string"), bad++;
    if (type == SEGMENT_GROUP) {
        group = segment_id_field(msg, "groupId", gbuf, sizeof gbuf);
        if (!group) add_error(errors, prefix, "/groupId", "a group needs \"groupId\""), bad++;
    }
    if (type != SEGMENT_IDENTIFY && !mid && !o->fallback_id)
        add_error(errors, prefix, "/messageId", "an event needs \"messageId\""), bad++;
    const char *props_key =
        type == SEGMENT_IDENTIFY || type == SEGMENT_GROUP ? "traits" : "properties";
    json_t *props = json_object_get(msg, props_key);
    if (props && !json_is_object(props) && !json_is_null(props)) {
        char f[32];
        snprintf(f, sizeof f, "/%s", props_key);
        add_error(errors, prefix, f, "\"%s\" must be an object", props_key);
        bad++;
    }
    json_t *context = json_object_get(msg, "context");
    if (context && !json_is_object(context) && !json_is_null(context)) {
        add_error(errors, prefix, "/context", "\"context\" must be an object");
        bad++;
    }
    if (bad) return KITH_EINVAL;
    if (!json_is_object(props)) props = NULL;
    if (!json_is_object(context)) context = NULL;

    char ts[40];
    kith_time_format(message_time(msg, o->received), ts, sizeof ts);
    json_t *ent = json_object();
    json_t *idmap = json_object();
    if (type == SEGMENT_ALIAS) {
        idmap_add(idmap, o->user_ns, user, true, "authenticated");
        const char *pns = o->previous_ns ? o->previous_ns : o->anon_ns;
        if (strcmp(pns, o->user_ns) != 0 || strcmp(prev, user) != 0)
            idmap_add(idmap, pns, prev, false, "ambiguous");
    } else {
        if (user) idmap_add(idmap, o->user_ns, user, true, "authenticated");
        if (anon && !(user && strcmp(o->anon_ns, o->user_ns) == 0 && strcmp(anon, user) == 0))
            idmap_add(idmap, o->anon_ns, anon, !user, "ambiguous");
    }
    json_object_set_new(ent, "identityMap", idmap);

    if (type == SEGMENT_IDENTIFY) {
        if (!props) {
            json_t *ct = json_object_get(context, "traits");
            if (json_is_object(ct)) props = ct;
        }
        if (props)
            map_traits(ent, props);
        else
            SET(ent, json_object(), "_segment", "traits");
        SET(ent, json_string(ts), "extSourceSystemAudit", "lastUpdatedDate");
        *out = ent;
        return 0;
    }

    *is_event = true;
    json_object_set_new(ent, "_id", json_string(mid ? mid : o->fallback_id));
    json_object_set_new(ent, "timestamp", json_string(ts));
    json_t *seg = json_object();
    json_object_set_new(ent, "_segment", seg);
    json_object_set_new(seg, "type", json_string(segment_type_name(type)));
    const char *name = json_string_value(json_object_get(msg, "name"));
    const char *category = json_string_value(json_object_get(msg, "category"));
    switch (type) {
    case SEGMENT_TRACK: {
        json_object_set_new(ent, "eventType", json_string(event));
        json_object_set_new(seg, "event", json_string(event));
        json_t *rev = json_object_get(props, "revenue");
        if (!json_is_number(rev)) rev = json_object_get(props, "total");
        if (json_is_number(rev))
            SET(ent, json_real(json_number_value(rev)), "commerce", "order", "priceTotal");
        const char *cur = json_string_value(json_object_get(props, "currency"));
        if (json_is_number(rev) && cur && strlen(cur) == 3 && cur[0] >= 'A' && cur[0] <= 'Z' &&
            cur[1] >= 'A' && cur[1] <= 'Z' && cur[2] >= 'A' && cur[2] <= 'Z')
            SET(ent, json_string(cur), "commerce", "order", "currencyCode");
        break;
    }
    case SEGMENT_PAGE: {
        json_object_set_new(ent, "eventType", json_string("web.webpagedetails.pageViews"));
        json_t *page = json_object_get(context, "page");
        const char *url = json_string_value(json_object_get(props, "url"));
        if (!url) url = json_string_value(json_object_get(page, "url"));
        const char *ref = json_string_value(json_object_get(props, "referrer"));
        if (!ref) ref = json_string_value(json_object_get(page, "referrer"));
        SET(ent, json_pack("{s:f}", "value", 1.0), "web", "webPageDetails", "pageViews");
        if (name) SET(ent, json_string(name), "web", "webPageDetails", "name");
        if (url && *url) SET(ent, json_string(url), "web", "webPageDetails", "URL");
        if (ref && *ref) SET(ent, json_string(ref), "web", "webReferrer", "URL");
        break;
    }
    case SEGMENT_SCREEN:
        json_object_set_new(ent, "eventType", json_string("application.screenView"));
        break;
    case SEGMENT_GROUP: {
        json_object_set_new(ent, "eventType", json_string("segment.group"));
        json_object_set_new(seg, "groupId", json_string(group));
        json_t *g = json_object();
        json_object_set_new(g, group, props ? json_deep_copy(props) : json_object());
        json_object_set_new(seg, "groups", g);
        props = NULL;
        break;
    }
    case SEGMENT_ALIAS:
        json_object_set_new(ent, "eventType", json_string("segment.alias"));
        json_object_set_new(seg, "previousId", json_string(prev));
        break;
    }
    if (name && type != SEGMENT_TRACK) json_object_set_new(seg, "name", json_string(name));
    if (category && type != SEGMENT_TRACK)
        json_object_set_new(seg, "category", json_string(category));
    if (props) json_object_set_new(seg, "properties", json_deep_copy(props));
    if (context) json_object_set_new(seg, "context", json_deep_copy(context));
    *out = ent;
    return 0;
}

void segment_batch_defaults(json_t *msg, const json_t *batch)
{
    static const char *const keys[] = {"context", "integrations"};
    if (!json_is_object(msg) || !json_is_object(batch)) return;
    for (size_t i = 0; i < 2; i++) {
        json_t *top = json_object_get(batch, keys[i]);
        if (!json_is_object(top)) continue;
        json_t *own = json_object_get(msg, keys[i]);
        if (!own) {
            json_object_set(msg, keys[i], top);
        } else if (json_is_object(own)) {
            const char *k;
            json_t *v;
            json_object_foreach(top, k, v) if (!json_object_get(own, k)) json_object_set(own, k, v);
        }
    }
    json_t *sent = json_object_get(batch, "sentAt");
    if (json_is_string(sent) && !json_object_get(msg, "sentAt"))
        json_object_set(msg, "sentAt", sent);
}

void segment_source_path(const char *p, bool is_event, char *out, size_t cap)
{
    static const char *const rec[][2] = {
        {"/personalEmail/address", "/traits/email"},
        {"/person/name/firstName", "/traits/firstName"},
        {"/person/name/lastName", "/traits/lastName"},
        {"/person/name/fullName", "/traits/name"},
        {"/mobilePhone/number", "/traits/phone"},
        {"/homeAddress/street1", "/traits/address/street"},
        {"/homeAddress/city", "/traits/address/city"},
        {"/homeAddress/stateProvince", "/traits/address/state"},
        {"/homeAddress/postalCode", "/traits/address/postalCode"},
        {"/homeAddress/country", "/traits/address/country"},
    };
    static const char *const ev[][2] = {
        {"/commerce/order/priceTotal", "/properties/revenue"},
        {"/commerce/order/currencyCode", "/properties/currency"},
        {"/web/webPageDetails/URL", "/properties/url"},
        {"/web/webReferrer/URL", "/properties/referrer"},
        {"/web/webPageDetails/name", "/name"},
        {"/eventType", "/event"},
        {"/_id", "/messageId"},
        {"/timestamp", "/timestamp"},
    };
    if (!is_event) {
        for (size_t i = 0; i < sizeof rec / sizeof rec[0]; i++)
            if (strcmp(p, rec[i][0]) == 0) {
                snprintf(out, cap, "%s", rec[i][1]);
                return;
            }
        if (strncmp(p, "/_segment/traits", 16) == 0) {
            snprintf(out, cap, "/traits%s", p + 16);
            return;
        }
    } else {
        for (size_t i = 0; i < sizeof ev / sizeof ev[0]; i++)
            if (strcmp(p, ev[i][0]) == 0) {
                snprintf(out, cap, "%s", ev[i][1]);
                return;
            }
        if (strncmp(p, "/_segment/", 10) == 0) {
            snprintf(out, cap, "/%s", p + 10);
            return;
        }
    }
    if (strncmp(p, "/identityMap/", 13) == 0) {
        snprintf(out, cap, "/userId");
        return;
    }
    snprintf(out, cap, "%s", p);
}
