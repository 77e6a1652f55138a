/* Union schema: all fields of several compiled schemas of one class (aep-spec 5.1).
 *
 * Works on the expanded properties, which are already normalised, so merging is structural: a
 * field new to the union is copied, a field seen before is descended into when both sides are
 * objects (properties, map values) or arrays (items), and a type clash keeps the first schema's
 * definition and is reported. Governance labels accumulate. */
#include "schema_int.h"

#include <stdio.h>
#include <string.h>

/* "string", "integer (int)", "object (map)"... */
static const char *field_kind(const json_t *f, char *buf, size_t cap)
{
    const char *type = json_string_value(json_object_get(f, "type"));
    const char *xdm = json_string_value(json_object_get(f, "meta:xdmType"));
    if (xdm)
        snprintf(buf, cap, "%s (%s)", type ? type : "?", xdm);
    else
        snprintf(buf, cap, "%s", type ? type : "?");
    return buf;
}

static void union_labels(json_t *dst, const json_t *src)
{
    const json_t *labels = json_object_get(src, "meta:labels");
    if (!json_array_size(labels)) return;
    json_t *have = json_object_get(dst, "meta:labels");
    if (!have) json_object_set_new(dst, "meta:labels", have = json_array());
    size_t i, j;
    const json_t *l, *m;
    json_array_foreach(labels, i, l)
    {
        bool seen = false;
        json_array_foreach(have, j, m) seen = seen || json_equal((json_t *)m, (json_t *)l);
        if (!seen) json_array_append_new(have, json_deep_copy(l));
    }
}

static void union_field(json_t *dst, const json_t *src, schema_path *p, size_t idx, json_t *errors);

static void union_properties(json_t *dst, const json_t *src, schema_path *p, size_t idx,
                             json_t *errors)
{
    const char *key;
    const json_t *f;
    json_object_foreach((json_t *)src, key, f)
    {
        json_t *have = json_object_get(dst, key);
        if (!have) {
            json_object_set_new(dst, key, json_deep_copy(f));
            continue;
        }
        size_t old = schema_path_push(p, key);
        union_field(have, f, p, idx, errors);
        schema_path_pop(p, old);
    }
}

static void union_field(json_t *dst, const json_t *src, schema_path *p, size_t idx, json_t *errors)
{
    char k1[64], k2[64];
    field_kind(dst, k1, sizeof k1);
    field_kind(src, k2, sizeof k2);
    if (strcmp(k1, k2) != 0) {
        schema_error_add(errors, p->buf,
                         "schema #%zu defines this field as %s but an earlier schema as %s; the "
                         "union keeps %s",
                         idx + 1, k2, k1, k1);
        return;
    }
    union_labels(dst, src);
    const json_t *sp = json_object_get(src, "properties");
    if (sp) {
        json_t *dp = json_object_get(dst, "properties");
        if (!dp) json_object_set_new(dst, "properties", dp = json_object());
        union_properties(dp, sp, p, idx, errors);
    }
    static const char *const nested[] = {"additionalProperties", "items"};
    for (int i = 0; i < 2; i++) {
        const json_t *s = json_object_get(src, nested[i]);
        json_t *d = json_object_get(dst, nested[i]);
        if (!json_is_object(s)) continue;
        if (!d)
            json_object_set_new(dst, nested[i], json_deep_copy(s));
        else if (json_is_object(d))
            union_field(d, s, p, idx, errors);
    }
}

json_t *schema_union(const kith_schema *const *schemas, size_t n, json_t *errors)
{
    json_t *props = json_object();
    schema_class cls = 0;
    schema_path p = {0};
    for (size_t i = 0; i < n; i++) {
        const kith_schema *s = schemas[i];
        if (!s) continue;
        if (!cls) cls = s->cls;
        if (s->cls != cls) {
            schema_error_add(errors, "",
                             "schema #%zu is of class %s, not %s; it is left out of the union",
                             i + 1, s->cls == SCHEMA_CLASS_EVENT ? "ExperienceEvent" : "Profile",
                             cls == SCHEMA_CLASS_EVENT ? "ExperienceEvent" : "Profile");
            continue;
        }
        union_properties(props, s->properties, &p, i, errors);
    }
    return json_pack("{s:o}", "properties", props);
}
