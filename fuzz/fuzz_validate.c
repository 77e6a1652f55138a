/* libFuzzer target for the schema module.
 *
 * The input is parsed as JSON (bounded size, duplicate keys rejected, as the HTTP layer does). If
 * it is an object it is validated against a fixed schema that uses several field groups, tenant
 * fields and descriptors, and its identities are extracted; then it is compiled as a schema
 * definition and, if that succeeds, validated against itself and united with the fixed schema.
 *
 *   make fuzz && ./build-fuzz/fuzz_validate -max_total_time=30 */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "kith/base.h"
#include "kith/schema.h"
#include "schema/schema_int.h"

#include <regex.h>

#define MAX_INPUT (64 * 1024)

static const char FIXED_SCHEMA[] =
    "{\"title\": \"fuzz\", \"meta:class\": \"https://ns.adobe.com/xdm/context/profile\","
    " \"allOf\": [{\"$ref\": \"https://ns.adobe.com/xdm/context/profile-person-details\"},"
    "  {\"$ref\": \"https://ns.adobe.com/xdm/context/profile-personal-details\"},"
    "  {\"$ref\": \"https://ns.adobe.com/xdm/context/profile-loyalty-details\"},"
    "  {\"$ref\": \"https://ns.adobe.com/xdm/mixins/profile-consents\"},"
    "  {\"$ref\": \"https://ns.adobe.com/xdm/context/segmentmembership\"},"
    "  {\"$ref\": \"#/definitions/acme\"}],"
    " \"definitions\": {\"acme\": {\"properties\": {\"_acme\": {\"type\": \"object\","
    "  \"required\": [\"tier\"], \"properties\": {"
    "   \"tier\": {\"type\": \"string\", \"enum\": [\"gold\", \"silver\"]},"
    "   \"score\": {\"type\": \"integer\", \"meta:xdmType\": \"short\", \"minimum\": 0},"
    "   \"ratio\": {\"type\": \"number\", \"exclusiveMaximum\": 1},"
    "   \"code\": {\"type\": \"string\", \"pattern\": \"^[A-Z]\\\\d+$\", \"maxLength\": 8},"
    "   \"site\": {\"type\": \"string\", \"format\": \"uri\"},"
    "   \"when\": {\"type\": \"string\", \"format\": \"date-time\"},"
    "   \"extra\": {\"type\": \"object\", \"additionalProperties\": true},"
    "   \"attrs\": {\"type\": \"object\", \"meta:xdmType\": \"map\","
    "     \"additionalProperties\": {\"type\": \"array\", \"items\": {\"type\": \"integer\"}}},"
    "   \"crm\": {\"type\": \"string\"}}}}}},"
    " \"kith:descriptors\": ["
    "  {\"xdm:sourceProperty\": \"/personalEmail/address\", \"xdm:namespace\": \"Email\","
    "   \"xdm:isPrimary\": true},"
    "  {\"xdm:sourceProperty\": \"/_acme/crm\", \"xdm:namespace\": \"CRMID\"}]}";

static kith_schema *fixed;

static void fixed_init(void)
{
    json_t *def = json_loads(FIXED_SCHEMA, 0, NULL), *errors = json_array();
    if (!def || schema_compile(def, &fixed, errors) != 0) abort();
    json_decref(def);
    json_decref(errors);
}

static void exercise(const kith_schema *s, const json_t *entity)
{
    static const schema_limits small = {4, 16, 5, 8};
    schema_identity ids[32];
    json_t *errors = json_array();
    schema_validate(s, entity, NULL, errors);
    schema_validate(s, entity, &small, errors);
    int n = schema_extract_identities(s, entity, NULL, ids, 32, errors);
    if (n > 32) abort();
    int primaries = 0;
    for (int i = 0; i < n; i++) {
        primaries += ids[i].primary;
        if (!ids[i].ns || !ids[i].value || strlen(ids[i].path) >= sizeof ids[i].path) abort();
    }
    if (n > 0 && primaries != 1) abort();
    schema_extract_identities(s, entity, &small, ids, 3, errors);
    json_decref(errors);
}

static bool ascii(const char *s)
{
    for (; *s; s++)
        if ((unsigned char)*s >= 0x80) return false;
    return true;
}

/* kith's matcher and glibc's must agree wherever the former accepts the pattern. */
static void differential_regex(const json_t *doc)
{
    const char *pattern = json_string_value(json_object_get(doc, "pattern"));
    const char *subject = json_string_value(json_object_get(doc, "subject"));
    if (!pattern || !subject || !ascii(pattern) || !ascii(subject)) return;
    /* Only patterns a schema accepts; \d and \D are left out because schemas rewrite them before
     * the engine sees them. glibc's regcomp is exponential in stacked and nested quantifiers (the
     * reason kith has its own engine), so the comparison keeps to patterns it handles quickly. */
    if (strstr(pattern, "\\d") || strstr(pattern, "\\D") || strlen(pattern) > 48) return;
    /* Inside [...] kith reads backslashes as ECMA does, POSIX as literals. */
    if (strchr(pattern, '[') && strchr(pattern, '\\')) return;
    /* glibc mishandles anchors inside repeated groups ("(^ab)+e" matches "ababe" there). */
    const char *anchor = *pattern ? strpbrk(pattern + 1, "^$") : NULL;
    if (anchor && anchor[1] != '\0') return;
    int quantifiers = 0;
    for (const char *q = pattern; *q; q++) {
        quantifiers += *q == '*' || *q == '+' || *q == '?' || *q == '{';
        if (q[0] >= '0' && q[0] <= '9' && q[1] >= '0' && q[1] <= '9') return; /* counts < 10 */
    }
    if (quantifiers > 3) return;
    kith_schema *s = NULL;
    json_t *def = json_pack("{s:s, s:{s:{s:s, s:s}}}", "meta:class", SCHEMA_CLASS_PROFILE_ID,
                            "properties", "_f", "type", "string", "pattern", pattern);
    json_t *errors = json_array();
    regex_t posix;
    if (!def || schema_compile(def, &s, errors) != 0 ||
        regcomp(&posix, pattern, REG_EXTENDED | REG_NOSUB) != 0) {
        schema_free(s);
        json_decref(def);
        json_decref(errors);
        return;
    }
    const schema_regex *re = schema_regex_compile(s, pattern);
    if (re && schema_regex_match(re, subject, strlen(subject)) !=
                  (regexec(&posix, subject, 0, NULL, 0) == 0))
        abort();
    regfree(&posix);
    schema_free(s);
    json_decref(def);
    json_decref(errors);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!fixed) fixed_init();
    if (size > MAX_INPUT) return 0;
    json_t *doc = json_loadb((const char *)data, size, JSON_REJECT_DUPLICATES, NULL);
    if (!json_is_object(doc)) {
        json_decref(doc);
        return 0;
    }
    exercise(fixed, doc);
    differential_regex(doc);

    json_t *errors = json_array();
    kith_schema *s = NULL;
    if (schema_compile(doc, &s, errors) == 0) {
        exercise(s, doc);
        const kith_schema *both[] = {fixed, s};
        json_decref(schema_union(both, 2, errors));
        const json_t *props = schema_properties(s);
        const char *key;
        const json_t *v;
        json_object_foreach((json_t *)props, key, v)
        {
            char ptr[64] = "/";
            strncat(ptr, key, sizeof ptr - 2);
            schema_check_descriptor(s, ptr, errors);
        }
        schema_free(s);
    } else if (s || json_array_size(errors) == 0) {
        abort(); /* a failed compile must say why and return nothing */
    }
    json_decref(errors);
    json_decref(doc);
    return 0;
}
