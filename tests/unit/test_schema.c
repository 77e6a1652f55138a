/* Unit tests for the schema module: compile, validate, descriptors, identities, union, built-ins.
 * JSON in this file is written with single quotes (J() turns them into double quotes). The
 * data-driven cases live in tests/golden/schema/<name>.json (see test_golden). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <dirent.h>
#include <pthread.h>
#include <regex.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kith/base.h"
#include "kith/schema.h"
#include "schema/schema_int.h" /* the pattern matcher, tested against glibc's */

#define PROFILE_CLASS "'meta:class': '" SCHEMA_CLASS_PROFILE_ID "'"
#define EVENT_CLASS "'meta:class': '" SCHEMA_CLASS_EVENT_ID "'"
#define FG(name) "{'$ref': 'https://ns.adobe.com/xdm/context/" name "'}"
#define FG_PERSON FG("profile-person-details")
#define FG_PERSONAL FG("profile-personal-details")
#define FG_IDMAP FG("identitymap")
#define FG_LOYALTY FG("profile-loyalty-details")
#define FG_CONSENTS "{'$ref': 'https://ns.adobe.com/xdm/mixins/profile-consents'}"
#define FG_SEGMENTS FG("segmentmembership")
#define FG_AUDIT "{'$ref': 'https://ns.adobe.com/xdm/common/external-source-system-audit-details'}"
#define FG_COMMERCE FG("experienceevent-commerce")
#define FG_WEB FG("experienceevent-web")
#define FG_ENV FG("experienceevent-environment-details")
#define FG_ADS FG("experienceevent-advertising")

/* Helpers ------------------------------------------------------------------------------------- */

static json_t *J(const char *text)
{
    char *t = strdup(text);
    for (char *c = t; *c; c++)
        if (*c == '\'') *c = '"';
    json_error_t jerr;
    json_t *v = json_loads(t, JSON_DECODE_ANY, &jerr);
    if (!v) fail_msg("bad test JSON (%s at column %d): %s", jerr.text, jerr.column, t);
    free(t);
    return v;
}

static void print_errors(const char *what, const json_t *errors)
{
    char *t = json_dumps(errors, JSON_INDENT(1));
    print_error("%s: %s\n", what, t);
    free(t);
}

static kith_schema *compile_ok(const char *def_text)
{
    json_t *def = J(def_text), *errors = json_array();
    kith_schema *s = NULL;
    int rc = schema_compile(def, &s, errors);
    if (rc != 0) print_errors("unexpected compile errors", errors);
    assert_int_equal(rc, 0);
    assert_non_null(s);
    assert_int_equal(json_array_size(errors), 0);
    json_decref(def);
    json_decref(errors);
    return s;
}

/* Compiles a definition that must fail; returns the errors (owned). */
static json_t *compile_err(const char *def_text)
{
    json_t *def = J(def_text), *errors = json_array();
    kith_schema *s = (kith_schema *)0x1;
    assert_int_equal(schema_compile(def, &s, errors), KITH_EINVAL);
    assert_null(s);
    assert_true(json_array_size(errors) > 0);
    json_decref(def);
    return errors;
}

static json_t *validate_lim(const kith_schema *s, const char *entity, const schema_limits *lim)
{
    json_t *e = J(entity), *errors = json_array();
    int n = schema_validate(s, e, lim, errors);
    assert_int_equal(n, (int)json_array_size(errors));
    json_decref(e);
    return errors;
}

static json_t *validate(const kith_schema *s, const char *entity)
{
    return validate_lim(s, entity, NULL);
}

static void assert_valid(const kith_schema *s, const char *entity)
{
    json_t *errors = validate(s, entity);
    if (json_array_size(errors)) print_errors("unexpected validation errors", errors);
    assert_int_equal(json_array_size(errors), 0);
    json_decref(errors);
}

/* errors[i] has exactly this path and a message containing msg. */
static void assert_error_at(const json_t *errors, size_t i, const char *path, const char *msg)
{
    const json_t *e = json_array_get(errors, i);
    if (!e) print_errors("missing error", errors);
    assert_non_null(e);
    const char *p = json_string_value(json_object_get(e, "path"));
    const char *m = json_string_value(json_object_get(e, "message"));
    assert_non_null(p);
    assert_non_null(m);
    if (strcmp(p, path) != 0 || !strstr(m, msg)) print_errors("unexpected error", errors);
    assert_string_equal(p, path);
    assert_non_null(strstr(m, msg));
}

/* Exactly one error, at path, with msg in its message; takes errors. */
static void assert_one_error(json_t *errors, const char *path, const char *msg)
{
    if (json_array_size(errors) != 1) print_errors("expected one error", errors);
    assert_int_equal(json_array_size(errors), 1);
    assert_error_at(errors, 0, path, msg);
    json_decref(errors);
}

static void assert_invalid(const kith_schema *s, const char *entity, const char *path,
                           const char *msg)
{
    assert_one_error(validate(s, entity), path, msg);
}

static void assert_compile_error(const char *def, const char *path, const char *msg)
{
    json_t *errors = compile_err(def);
    bool found = false;
    for (size_t i = 0; i < json_array_size(errors); i++) {
        const json_t *e = json_array_get(errors, i);
        found = found || (strcmp(json_string_value(json_object_get(e, "path")), path) == 0 &&
                          strstr(json_string_value(json_object_get(e, "message")), msg));
    }
    if (!found) {
        print_error("wanted %s: %s\n", path, msg);
        print_errors("compile errors", errors);
    }
    assert_true(found);
    json_decref(errors);
}

/* A schema with one tenant field _acme.f of the given JSON schema. */
static kith_schema *field_schema(const char *field)
{
    char def[4096];
    snprintf(def, sizeof def,
             "{" PROFILE_CLASS ", 'properties': {'_acme': {'type': 'object', 'properties': "
             "{'f': %s}}}}",
             field);
    return compile_ok(def);
}

static void field_valid(const kith_schema *s, const char *value)
{
    char e[4096];
    snprintf(e, sizeof e, "{'_acme': {'f': %s}}", value);
    assert_valid(s, e);
}

static void field_invalid(const kith_schema *s, const char *value, const char *msg)
{
    char e[4096];
    snprintf(e, sizeof e, "{'_acme': {'f': %s}}", value);
    assert_invalid(s, e, "/_acme/f", msg);
}

/* v equals the JSON text (single quotes). */
static bool json_eq_text(const json_t *v, const char *text)
{
    json_t *want = J(text);
    bool eq = json_equal((json_t *)v, want);
    json_decref(want);
    return eq;
}

/* Walks "a.b.c" through nested "properties" of an expanded properties object. */
static const json_t *field_at(const json_t *props, const char *dotted)
{
    char buf[256];
    snprintf(buf, sizeof buf, "%s", dotted);
    const json_t *f = NULL;
    for (char *save, *seg = strtok_r(buf, ".", &save); seg; seg = strtok_r(NULL, ".", &save)) {
        if (f) props = json_object_get(f, "properties");
        f = json_object_get(props, seg);
        if (!f) return NULL;
    }
    return f;
}

static const char *type_at(const kith_schema *s, const char *dotted)
{
    const json_t *f = field_at(schema_properties(s), dotted);
    return f ? json_string_value(json_object_get(f, "type")) : NULL;
}

static const char *PROFILE_ALL =
    "{'title': 'Customers', " PROFILE_CLASS ", 'allOf': [" FG_PERSON ", " FG_PERSONAL ", " FG_IDMAP
    ", " FG_LOYALTY ", " FG_CONSENTS ", " FG_SEGMENTS ", " FG_AUDIT "],"
    " 'properties': {'_acme': {'type': 'object', 'properties': {"
    "   'tier': {'type': 'string', 'enum': ['gold', 'silver']},"
    "   'score': {'type': 'integer', 'minimum': 0, 'maximum': 100}}}},"
    " 'kith:descriptors': [{'xdm:sourceProperty': '/personalEmail/address',"
    "   'xdm:namespace': 'Email', 'xdm:isPrimary': true}]}";

static const char *EVENT_ALL =
    "{'title': 'Web events', " EVENT_CLASS ", 'allOf': [" FG_IDMAP ", " FG_COMMERCE ", " FG_WEB
    ", " FG_ENV ", " FG_ADS ", " FG_AUDIT "],"
    " 'properties': {'_acme': {'type': 'object', 'properties': {'campaignId': {'type': "
    "'string'}}}}}";

/* Built-ins ----------------------------------------------------------------------------------- */

static void test_builtin_list(void **state)
{
    json_t *doc = schema_builtin_list();
    assert_int_equal(json_array_size(json_object_get(doc, "classes")), 2);
    assert_int_equal(json_array_size(json_object_get(doc, "fieldGroups")), 11);
    assert_true(json_array_size(json_object_get(doc, "dataTypes")) >= 6);
    size_t i;
    json_t *fg;
    json_array_foreach(json_object_get(doc, "fieldGroups"), i, fg)
    {
        assert_non_null(json_string_value(json_object_get(fg, "$id")));
        assert_non_null(json_string_value(json_object_get(fg, "title")));
        assert_true(json_object_size(json_object_get(fg, "properties")) > 0);
        assert_true(json_array_size(json_object_get(fg, "meta:intendedToExtend")) > 0);
    }
    json_t *ev = json_array_get(json_object_get(doc, "classes"), 1);
    assert_string_equal(json_string_value(json_object_get(ev, "$id")), SCHEMA_CLASS_EVENT_ID);
    assert_true(json_eq_text(json_object_get(ev, "required"), "['_id', 'timestamp']"));
    json_decref(doc);
}

static void test_profile_field_groups(void **state)
{
    kith_schema *s = compile_ok(PROFILE_ALL);
    assert_int_equal(schema_get_class(s), SCHEMA_CLASS_PROFILE);
    static const char *const fields[][2] = {
        {"_id", "string"},
        {"_repo.createDate", "string"},
        {"personID", "string"},
        {"createdByBatchID", "string"},
        {"modifiedByBatchID", "string"},
        {"identityMap", "object"},
        {"person.name.firstName", "string"},
        {"person.name.lastName", "string"},
        {"person.birthDate", "string"},
        {"person.gender", "string"},
        {"person.birthYear", "integer"},
        {"personalEmail.address", "string"},
        {"mobilePhone.number", "string"},
        {"homePhone.number", "string"},
        {"homeAddress.city", "string"},
        {"homeAddress.countryCode", "string"},
        {"homeAddress.postalCode", "string"},
        {"loyalty.tier", "string"},
        {"loyalty.points", "number"},
        {"loyalty.loyaltyID", "array"},
        {"loyalty.joinDate", "string"},
        {"consents.collect.val", "string"},
        {"consents.marketing.email.val", "string"},
        {"consents.marketing.preferred", "string"},
        {"consents.personalize.content.val", "string"},
        {"consents.metadata.time", "string"},
        {"segmentMembership", "object"},
        {"extSourceSystemAudit.lastUpdatedDate", "string"},
        {"_acme.tier", "string"},
    };
    for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++) {
        const char *t = type_at(s, fields[i][0]);
        if (!t) print_error("no field %s\n", fields[i][0]);
        assert_non_null(t);
        assert_string_equal(t, fields[i][1]);
    }
    const json_t *bd = field_at(schema_properties(s), "person.birthDate");
    assert_string_equal(json_string_value(json_object_get(bd, "format")), "date");
    const json_t *im = field_at(schema_properties(s), "identityMap");
    assert_string_equal(json_string_value(json_object_get(im, "meta:xdmType")), "map");
    /* Annotations used while compiling never leak into the output. */
    char *dump = json_dumps(schema_properties(s), 0);
    assert_null(strstr(dump, "kith:"));
    free(dump);

    assert_valid(s,
                 "{'_id': 'r1', '_repo': {'createDate': '2024-01-02T03:04:05Z'},"
                 " 'personID': 'p1', 'createdByBatchID': 'batch-1',"
                 " 'modifiedByBatchID': 'batch-2', 'repositoryCreatedBy': 'x',"
                 " 'person': {'name': {'firstName': 'Ada', 'lastName': 'Lovelace',"
                 "   'fullName': 'Ada Lovelace'}, 'birthDate': '1815-12-10', 'gender': 'female',"
                 "   'birthYear': 1815, 'birthDayAndMonth': '12-10', 'nationality': 'GB'},"
                 " 'personalEmail': {'address': 'ada@example.com', 'primary': true},"
                 " 'mobilePhone': {'number': '+44 20 7946 0000'},"
                 " 'homePhone': {'number': '020 7946 0001', 'status': 'active'},"
                 " 'homeAddress': {'street1': '12 St James Sq', 'city': 'London',"
                 "   'postalCode': 'SW1Y 4JH', 'countryCode': 'GB', 'country': 'UK'},"
                 " 'loyalty': {'loyaltyID': ['L-1'], 'tier': 'gold', 'points': 1200.5,"
                 "   'program': 'Stars', 'joinDate': '2020-01-01T00:00:00Z',"
                 "   'pointsExpiration': [{'pointsExpiring': 10,"
                 "     'pointsExpirationDate': '2025-01-01T00:00:00Z'}]},"
                 " 'consents': {'collect': {'val': 'y'}, 'marketing': {'preferred': 'email',"
                 "   'email': {'val': 'n', 'reason': 'too many', 'time': "
                 "'2024-01-01T00:00:00Z'}},"
                 "   'personalize': {'content': {'val': 'dy'}},"
                 "   'idSpecific': {'Email': {'ada@example.com': {'marketing': {'email': {'val': "
                 "'y'}}}}},"
                 "   'metadata': {'time': '2024-01-01T00:00:00Z'}},"
                 " 'segmentMembership': {'ups': {'seg-1': {'status': 'realized',"
                 "   'lastQualificationTime': '2024-04-26T15:52:25Z', 'version': '3',"
                 "   'payload': {'payloadType': 'boolean', 'payloadBooleanValue': true}}}},"
                 " 'extSourceSystemAudit': {'lastUpdatedDate': '2024-05-01T10:00:00+02:00'},"
                 " 'identityMap': {'Email': [{'id': 'ada@example.com', 'primary': true}]},"
                 " '_acme': {'tier': 'gold', 'score': 100}}");

    /* One mistake per field group. */
    assert_invalid(s, "{'person': {'gender': 'F'}}", "/person/gender",
                   "\"F\" is not one of [\"male\",\"female\",\"not_specified\",\"non_specific\"]");
    assert_invalid(s, "{'person': {'name': {'firstName': 7}}}", "/person/name/firstName",
                   "expected string, got number");
    assert_invalid(s, "{'person': {'birthDate': '1815-13-10'}}", "/person/birthDate",
                   "not a valid date (YYYY-MM-DD)");
    assert_invalid(s, "{'person': {'birthYear': 0}}", "/person/birthYear", "must be >= 1");
    assert_invalid(s, "{'personalEmail': {'address': 'not an email'}}", "/personalEmail/address",
                   "not a valid email address");
    assert_invalid(s, "{'homeAddress': {'countryCode': 'gb'}}", "/homeAddress/countryCode",
                   "does not match pattern \"^[A-Z]{2}$\"");
    assert_invalid(s, "{'loyalty': {'points': '12'}}", "/loyalty/points",
                   "expected number, got string");
    assert_invalid(s, "{'loyalty': {'loyaltyID': 'L-1'}}", "/loyalty/loyaltyID",
                   "expected array, got string");
    assert_invalid(s, "{'consents': {'collect': {'val': 'yes'}}}", "/consents/collect/val",
                   "\"yes\" is not one of [\"y\",\"n\",\"p\",\"u\",\"dy\",\"dn\"");
    assert_invalid(s, "{'consents': {'collect': {}}}", "/consents/collect/val",
                   "missing required field \"val\"");
    assert_invalid(s,
                   "{'consents': {'marketing': {'email': {'val': 'y', 'reason': "
                   "'abcdefghijklmnopq'}}}}",
                   "/consents/marketing/email/reason", "must be at most 16 characters long");
    assert_invalid(s, "{'segmentMembership': {'ups': {'s1': {'status': 'gone'}}}}",
                   "/segmentMembership/ups/s1/status", "\"gone\" is not one of");
    assert_invalid(s,
                   "{'segmentMembership': {'ups': {'s1': {'payload': {'payloadPropensityValue': "
                   "1.5}}}}}",
                   "/segmentMembership/ups/s1/payload/payloadPropensityValue", "must be <= 1");
    assert_invalid(s, "{'extSourceSystemAudit': {'lastUpdatedDate': 'yesterday'}}",
                   "/extSourceSystemAudit/lastUpdatedDate", "not a valid date-time (RFC 3339)");
    assert_invalid(s, "{'_repo': {'createDate': '2024-01-02'}}", "/_repo/createDate",
                   "not a valid date-time (RFC 3339)");
    assert_invalid(s, "{'createdByBatchID': 'a b'}", "/createdByBatchID",
                   "not a valid URI reference");
    assert_invalid(s, "{'identityMap': {'Email': [{'primary': true}]}}", "/identityMap/Email/0/id",
                   "missing required field \"id\"");
    assert_invalid(s, "{'identityMap': {'Email': [{'id': 'a', 'authenticatedState': 'maybe'}]}}",
                   "/identityMap/Email/0/authenticatedState", "\"maybe\" is not one of");
    /* An event-only field is not part of a profile schema. */
    assert_invalid(s, "{'timestamp': '2024-01-01T00:00:00Z'}", "/timestamp",
                   "unknown field \"timestamp\" (not in schema)");
    schema_free(s);
}

static void test_event_field_groups(void **state)
{
    kith_schema *s = compile_ok(EVENT_ALL);
    assert_int_equal(schema_get_class(s), SCHEMA_CLASS_EVENT);
    static const char *const fields[] = {"_id",
                                         "timestamp",
                                         "eventType",
                                         "producedBy",
                                         "eventMergeId",
                                         "identityMap",
                                         "commerce.order.priceTotal",
                                         "commerce.order.currencyCode",
                                         "commerce.purchases.value",
                                         "commerce.productViews.value",
                                         "commerce.checkouts.value",
                                         "productListItems",
                                         "web.webPageDetails.URL",
                                         "web.webPageDetails.pageViews.value",
                                         "web.webReferrer.type",
                                         "web.webInteraction.linkClicks.value",
                                         "environment.browserDetails.userAgent",
                                         "environment.operatingSystem",
                                         "device.screenHeight",
                                         "advertising.impressions.value",
                                         "advertising.clicks.value",
                                         "extSourceSystemAudit.createdDate",
                                         "_acme.campaignId"};
    for (size_t i = 0; i < sizeof fields / sizeof fields[0]; i++) {
        if (!type_at(s, fields[i])) print_error("no field %s\n", fields[i]);
        assert_non_null(type_at(s, fields[i]));
    }
    const json_t *items =
        json_object_get(field_at(schema_properties(s), "productListItems"), "items");
    assert_non_null(json_object_get(json_object_get(items, "properties"), "SKU"));

    assert_valid(s, "{'_id': 'e1', 'timestamp': '2024-05-01T10:00:00.123Z',"
                    " 'eventType': 'commerce.purchases', 'producedBy': 'self', 'eventMergeId': 'm',"
                    " 'identityMap': {'ECID': [{'id': '12345678901234567890123456789012345678'}]},"
                    " 'commerce': {'order': {'purchaseID': 'o-1', 'priceTotal': 99.5,"
                    "   'currencyCode': 'EUR', 'payments': [{'paymentAmount': 99.5,"
                    "   'paymentType': 'credit_card'}]}, 'purchases': {'value': 1}},"
                    " 'productListItems': [{'SKU': 'PS', 'name': 'Pen', 'quantity': 2,"
                    "   'priceTotal': 9.5}],"
                    " 'web': {'webPageDetails': {'URL': 'https://shop.example.com/cart?x=1',"
                    "   'name': 'cart', 'pageViews': {'value': 1}},"
                    "   'webReferrer': {'type': 'search_engine', 'URL': '/home'}},"
                    " 'environment': {'type': 'browser', 'browserDetails': {'userAgent': "
                    "'Mozilla/5.0', 'viewportWidth': 1280}},"
                    " 'device': {'screenHeight': 1080, 'screenOrientation': 'landscape'},"
                    " 'advertising': {'impressions': {'value': 1}},"
                    " '_acme': {'campaignId': 'c-101'}}");

    assert_invalid(s,
                   "{'_id': 'e1', 'timestamp': '2024-05-01T10:00:00Z', 'commerce': {'order': "
                   "{'currencyCode': 'eur'}}}",
                   "/commerce/order/currencyCode", "does not match pattern");
    assert_invalid(s,
                   "{'_id': 'e1', 'timestamp': '2024-05-01T10:00:00Z', 'productListItems': "
                   "[{'SKU': 'a'}, {'quantity': 1.5}]}",
                   "/productListItems/1/quantity", "expected integer, got 1.5 (a fraction)");
    assert_invalid(s,
                   "{'_id': 'e1', 'timestamp': '2024-05-01T10:00:00Z', 'web': {'webReferrer': "
                   "{'type': 'radio'}}}",
                   "/web/webReferrer/type", "\"radio\" is not one of");
    assert_invalid(s,
                   "{'_id': 'e1', 'timestamp': '2024-05-01T10:00:00Z', 'device': "
                   "{'screenOrientation': 'square'}}",
                   "/device/screenOrientation", "\"square\" is not one of");
    assert_invalid(s,
                   "{'_id': 'e1', 'timestamp': '2024-05-01T10:00:00Z', 'device': "
                   "{'screenHeight': 3000000000}}",
                   "/device/screenHeight", "out of range for int");
    assert_invalid(s,
                   "{'_id': 'e1', 'timestamp': '2024-05-01T10:00:00Z', 'advertising': "
                   "{'clicks': {'value': true}}}",
                   "/advertising/clicks/value", "expected number, got boolean");
    assert_invalid(s,
                   "{'_id': 'e1', 'timestamp': '2024-05-01T10:00:00Z', 'environment': "
                   "{'browserDetails': {'cookiesEnabled': 'yes'}}}",
                   "/environment/browserDetails/cookiesEnabled", "expected boolean, got string");
    assert_invalid(s, "{'_id': 'e1', 'timestamp': '2024-05-01T10:00:00Z', 'person': {}}", "/person",
                   "unknown field \"person\" (not in schema)");
    schema_free(s);
}

static void test_event_required(void **state)
{
    kith_schema *s = compile_ok("{" EVENT_CLASS "}");
    json_t *errors = validate(s, "{'eventType': 'web.webpagedetails.pageViews'}");
    assert_int_equal(json_array_size(errors), 2);
    assert_error_at(errors, 0, "/_id", "missing required field \"_id\"");
    assert_error_at(errors, 1, "/timestamp", "missing required field \"timestamp\"");
    json_decref(errors);
    assert_invalid(s, "{'_id': '', 'timestamp': '2024-05-01T10:00:00Z'}", "/_id",
                   "must be at least 1 character long");
    assert_invalid(s, "{'_id': 'x', 'timestamp': '2024-05-01'}", "/timestamp",
                   "not a valid date-time (RFC 3339)");
    assert_invalid(s, "{'_id': 'x', 'timestamp': 1714557600000}", "/timestamp",
                   "expected string, got number");
    assert_invalid(s, "{'_id': 'x', 'timestamp': null}", "/timestamp",
                   "null is not allowed; omit the field");
    assert_valid(s, "{'_id': 'x', 'timestamp': '2024-05-01T10:00:00-07:00', 'identityMap': {}}");
    /* Both classes accept identityMap without the field group. */
    kith_schema *p = compile_ok("{" PROFILE_CLASS "}");
    assert_valid(p, "{'identityMap': {'Email': [{'id': 'a@b.c'}]}}");
    schema_free(p);
    schema_free(s);
}

static void test_class_from_allof(void **state)
{
    kith_schema *s = compile_ok("{'allOf': [{'$ref': '" SCHEMA_CLASS_EVENT_ID "'}, " FG_WEB "]}");
    assert_int_equal(schema_get_class(s), SCHEMA_CLASS_EVENT);
    schema_free(s);
    s = compile_ok("{" PROFILE_CLASS ", 'allOf': [{'$ref': '" SCHEMA_CLASS_PROFILE_ID "'}]}");
    schema_free(s);
}

/* Keywords ------------------------------------------------------------------------------------ */

static void test_types(void **state)
{
    kith_schema *s = compile_ok("{" PROFILE_CLASS ", 'properties': {'_acme': {'type': 'object',"
                                " 'properties': {'s': {'type': 'string'}, 'i': {'type': "
                                "'integer'}, 'n': {'type': 'number'}, 'b': {'type': 'boolean'},"
                                " 'o': {'type': 'object', 'properties': {}}, 'a': {'type': "
                                "'array', 'items': {'type': 'string'}}}}}}");
    assert_valid(s, "{'_acme': {'s': 'x', 'i': 3, 'n': 1.5, 'b': false, 'o': {}, 'a': ['x']}}");
    assert_valid(s, "{'_acme': {'i': 3.0, 'n': 2}}");
    assert_invalid(s, "{'_acme': {'s': 1}}", "/_acme/s", "expected string, got number");
    assert_invalid(s, "{'_acme': {'i': '1'}}", "/_acme/i", "expected integer, got string");
    assert_invalid(s, "{'_acme': {'i': 0.5}}", "/_acme/i",
                   "expected integer, got 0.5 (a fraction)");
    assert_invalid(s, "{'_acme': {'n': true}}", "/_acme/n", "expected number, got boolean");
    assert_invalid(s, "{'_acme': {'b': 'true'}}", "/_acme/b", "expected boolean, got string");
    assert_invalid(s, "{'_acme': {'o': []}}", "/_acme/o", "expected object, got array");
    assert_invalid(s, "{'_acme': {'a': {}}}", "/_acme/a", "expected array, got object");
    assert_invalid(s, "{'_acme': {'a': ['x', 2]}}", "/_acme/a/1", "expected string, got number");
    assert_invalid(s, "{'_acme': {'o': null}}", "/_acme/o", "null is not allowed; omit the field");
    assert_invalid(s, "{'_acme': {'a': [null]}}", "/_acme/a/0", "null is not allowed");
    assert_invalid(s, "{'_acme': {'o': {'x': 1}}}", "/_acme/o/x", "unknown field \"x\"");
    assert_invalid(s, "{'foo': 1}", "/foo", "unknown field \"foo\" (not in schema)");
    /* The entity itself must be an object. */
    json_t *e = J("[1]"), *errors = json_array();
    assert_int_equal(schema_validate(s, e, NULL, errors), 1);
    assert_error_at(errors, 0, "", "the entity must be a JSON object, got array");
    json_decref(e);
    json_decref(errors);
    schema_free(s);
}

static void test_xdm_integer_types(void **state)
{
    kith_schema *s = compile_ok(
        "{" PROFILE_CLASS ", 'properties': {'_acme': {'type': 'object', 'properties': {"
        "'l': {'type': 'integer', 'meta:xdmType': 'long'}, 'i': {'meta:xdmType': 'int'},"
        "'s': {'type': 'integer', 'meta:xdmType': 'short'}, 'b': {'meta:xdmType': 'byte'},"
        "'d': {'meta:xdmType': 'double'}, 'plain': {'type': 'integer'}}}}}");
    assert_valid(s, "{'_acme': {'l': 9007199254740991, 'i': -2147483648, 's': 32767, 'b': -128,"
                    " 'd': 1, 'plain': -9007199254740991}}");
    assert_invalid(s, "{'_acme': {'l': 9007199254740992}}", "/_acme/l",
                   "out of range for long: must be between -9007199254740991 and 9007199254740991");
    assert_invalid(s, "{'_acme': {'i': 2147483648}}", "/_acme/i",
                   "out of range for int: must be between -2147483648 and 2147483647");
    assert_invalid(s, "{'_acme': {'s': -32769}}", "/_acme/s", "out of range for short");
    assert_invalid(s, "{'_acme': {'b': 128}}", "/_acme/b",
                   "out of range for byte: must be between -128 and 127");
    assert_invalid(s, "{'_acme': {'b': 1.25}}", "/_acme/b", "expected integer");
    assert_invalid(s, "{'_acme': {'plain': 1e300}}", "/_acme/plain", "out of range for long");
    assert_invalid(s, "{'_acme': {'d': 'x'}}", "/_acme/d", "expected number, got string");
    const json_t *i = field_at(schema_properties(s), "_acme.i");
    assert_string_equal(json_string_value(json_object_get(i, "type")), "integer");
    assert_string_equal(json_string_value(json_object_get(i, "meta:xdmType")), "int");
    schema_free(s);
}

static void test_numeric_bounds(void **state)
{
    kith_schema *s = field_schema("{'type': 'integer', 'minimum': 0, 'maximum': 100}");
    field_valid(s, "0");
    field_valid(s, "100");
    field_invalid(s, "101", "must be <= 100");
    field_invalid(s, "-1", "must be >= 0");
    schema_free(s);
    s = field_schema("{'type': 'number', 'exclusiveMinimum': 0, 'exclusiveMaximum': 1.5}");
    field_valid(s, "0.001");
    field_invalid(s, "0", "must be > 0");
    field_invalid(s, "1.5", "must be < 1.5");
    schema_free(s);
    /* Draft-04 boolean form. */
    s = field_schema("{'type': 'number', 'minimum': 0, 'exclusiveMinimum': true, 'maximum': 10,"
                     " 'exclusiveMaximum': false}");
    field_invalid(s, "0", "must be > 0");
    field_valid(s, "10");
    schema_free(s);
}

static void test_string_lengths_and_pattern(void **state)
{
    kith_schema *s = field_schema("{'type': 'string', 'minLength': 2, 'maxLength': 3}");
    field_valid(s, "'ab'");
    field_valid(s, "'\\u00e9\\u00e9\\u00e9'"); /* three code points, six bytes */
    field_invalid(s, "'a'", "must be at least 2 characters long (got 1)");
    field_invalid(s, "'abcd'", "must be at most 3 characters long (got 4)");
    schema_free(s);
    s = field_schema("{'type': 'string', 'pattern': '^\\\\d{3}-[A-Z]+$'}");
    field_valid(s, "'123-AB'");
    field_invalid(s, "'12-AB'", "does not match pattern \"^\\d{3}-[A-Z]+$\"");
    field_invalid(s, "'123-ab'", "does not match pattern");
    schema_free(s);
    /* Patterns search (they are not anchored unless they say so). */
    /* Realistic patterns stay well inside the complexity bound. */
    s = field_schema("{'type': 'string', 'pattern': "
                     "'^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$'}");
    field_valid(s, "'123e4567-e89b-12d3-a456-426614174000'");
    field_invalid(s, "'123e4567'", "does not match pattern");
    schema_free(s);
    s = field_schema("{'type': 'string', 'pattern': '^.{0,255}$'}");
    field_valid(s, "'short'");
    schema_free(s);
    s = field_schema("{'type': 'string', 'pattern': 'b+'}");
    field_valid(s, "'abbbc'");
    field_invalid(s, "'ac'", "does not match pattern \"b+\"");
    schema_free(s);
}

static void test_enum(void **state)
{
    kith_schema *s = field_schema("{'type': 'string', 'enum': ['gold', 'silver']}");
    field_valid(s, "'gold'");
    field_invalid(s, "'gold2'", "\"gold2\" is not one of [\"gold\",\"silver\"]");
    schema_free(s);
    s = field_schema("{'type': 'integer', 'enum': [1, 2, 3]}");
    field_valid(s, "2");
    field_valid(s, "3.0");
    field_invalid(s, "4", "4 is not one of [1,2,3]");
    schema_free(s);
    s = field_schema("{'type': 'boolean', 'enum': [true]}");
    field_invalid(s, "false", "false is not one of [true]");
    schema_free(s);
}

static void test_formats(void **state)
{
    kith_schema *s = field_schema("{'type': 'string', 'format': 'date'}");
    field_valid(s, "'2024-02-29'");
    field_invalid(s, "'2024-2-29'", "not a valid date (YYYY-MM-DD)");
    field_invalid(s, "'2024-02-29T00:00:00Z'", "not a valid date");
    schema_free(s);
    s = field_schema("{'type': 'string', 'format': 'date-time'}");
    field_valid(s, "'2024-05-01T10:00:00Z'");
    field_valid(s, "'2024-05-01T10:00:00.5+05:30'");
    field_invalid(s, "'2024-05-01T10:00:00'", "not a valid date-time (RFC 3339)");
    schema_free(s);
    s = field_schema("{'meta:xdmType': 'date-time'}");
    field_invalid(s, "'now'", "not a valid date-time (RFC 3339)");
    schema_free(s);
    s = field_schema("{'type': 'string', 'format': 'email'}");
    field_valid(s, "'first.last+tag@mail.example.co.uk'");
    field_invalid(s, "'@example.com'", "not a valid email address");
    field_invalid(s, "'a@b'", "not a valid email address");
    field_invalid(s, "'a b@example.com'", "not a valid email address");
    field_invalid(s, "'a@exa..mple.com'", "not a valid email address");
    schema_free(s);
    s = field_schema("{'type': 'string', 'format': 'uri'}");
    field_valid(s, "'https://example.com/a?b=c#d'");
    field_valid(s, "'urn:isbn:0451450523'");
    field_invalid(s, "'/relative/path'", "not a valid URI");
    field_invalid(s, "'https://exa mple.com'", "not a valid URI");
    field_invalid(s, "'http://x/%zz'", "not a valid URI");
    schema_free(s);
    s = field_schema("{'type': 'string', 'format': 'uri-reference'}");
    field_valid(s, "'/relative/path?x=1'");
    field_valid(s, "'https://example.com'");
    field_invalid(s, "'1http://x'", "not a valid URI reference");
    field_invalid(s, "'a<b'", "not a valid URI reference");
    schema_free(s);
    /* Unknown formats are accepted and not checked. */
    s = field_schema("{'type': 'string', 'format': 'ipv4'}");
    field_valid(s, "'anything'");
    schema_free(s);
}

static void test_objects_maps_additional(void **state)
{
    kith_schema *s = compile_ok(
        "{" PROFILE_CLASS ", 'properties': {'_acme': {'type': 'object', 'required': ['id'],"
        " 'properties': {'id': {'type': 'string'},"
        "  'open': {'type': 'object', 'additionalProperties': true, 'properties': {'n': "
        "{'type': 'number'}}},"
        "  'typed': {'type': 'object', 'additionalProperties': {'type': 'integer'}},"
        "  'closed': {'type': 'object', 'additionalProperties': false, 'properties': {}},"
        "  'anymap': {'type': 'object', 'meta:xdmType': 'map'},"
        "  'strmap': {'type': 'object', 'meta:xdmType': 'map', 'additionalProperties': {'type': "
        "'string'}}}}}}");
    assert_valid(s, "{'_acme': {'id': 'a', 'open': {'n': 1, 'x': {'y': [1, 'z']}}, 'typed': {'k': "
                    "1}, 'closed': {}, 'anymap': {'a': {'b': 1}}, 'strmap': {'k': 'v'}}}");
    assert_invalid(s, "{'_acme': {}}", "/_acme/id", "missing required field \"id\"");
    assert_invalid(s, "{'_acme': {'id': 'a', 'open': {'n': 'x'}}}", "/_acme/open/n",
                   "expected number");
    assert_invalid(s, "{'_acme': {'id': 'a', 'open': {'x': {'y': null}}}}", "/_acme/open/x/y",
                   "null is not allowed");
    assert_invalid(s, "{'_acme': {'id': 'a', 'typed': {'k': 'v'}}}", "/_acme/typed/k",
                   "expected integer, got string");
    assert_invalid(s, "{'_acme': {'id': 'a', 'closed': {'k': 1}}}", "/_acme/closed/k",
                   "unknown field \"k\" (not in schema)");
    assert_invalid(s, "{'_acme': {'id': 'a', 'anymap': {'a': [null]}}}", "/_acme/anymap/a/0",
                   "null is not allowed");
    assert_invalid(s, "{'_acme': {'id': 'a', 'strmap': {'a/b~c': 1}}}", "/_acme/strmap/a~1b~0c",
                   "expected string, got number");
    schema_free(s);
}

static void test_arrays(void **state)
{
    kith_schema *s = field_schema("{'type': 'array', 'minItems': 1, 'maxItems': 2, 'items': "
                                  "{'type': 'object', 'properties': {'sku': {'type': 'string'}},"
                                  " 'required': ['sku']}}");
    field_valid(s, "[{'sku': 'a'}, {'sku': 'b'}]");
    field_invalid(s, "[]", "must have at least 1 item (got 0)");
    field_invalid(s, "[{'sku': 'a'}, {'sku': 'b'}, {'sku': 'c'}]",
                  "must have at most 2 items (got 3)");
    assert_invalid(s, "{'_acme': {'f': [{'sku': 'a'}, {}]}}", "/_acme/f/1/sku",
                   "missing required field \"sku\"");
    schema_free(s);
    /* Without items, elements are free-form (but never null). */
    s = field_schema("{'type': 'array'}");
    field_valid(s, "[1, 'a', {'b': []}]");
    assert_invalid(s, "{'_acme': {'f': [1, null]}}", "/_acme/f/1", "null is not allowed");
    schema_free(s);
}

static void test_labels_and_unknown_keywords(void **state)
{
    kith_schema *s = field_schema("{'type': 'string', 'meta:labels': ['C2', 'I1'], 'title': 'F',"
                                  " 'description': 'a field', 'meta:enum': {'a': 'A'}, 'default': "
                                  "'x', 'examples': ['y'], 'meta:status': 'stable'}");
    const json_t *f = field_at(schema_properties(s), "_acme.f");
    assert_true(json_eq_text(json_object_get(f, "meta:labels"), "['C2', 'I1']"));
    assert_string_equal(json_string_value(json_object_get(f, "title")), "F");
    assert_null(json_object_get(f, "default"));
    field_valid(s, "'z'");
    schema_free(s);
}

static void test_limits(void **state)
{
    kith_schema *s = compile_ok("{" PROFILE_CLASS ", 'properties': {'_acme': {'type': 'object',"
                                " 'additionalProperties': true}}}");
    /* At most max_errors errors. */
    char e[4096] = "{";
    for (int i = 0; i < 30; i++)
        snprintf(e + strlen(e), sizeof e - strlen(e), "%s'x%d': 1", i ? ", " : "", i);
    strcat(e, "}");
    json_t *errors = validate(s, e);
    assert_int_equal(json_array_size(errors), 20);
    assert_error_at(errors, 19, "/x19", "unknown field \"x19\"");
    json_decref(errors);
    schema_limits lim = SCHEMA_LIMITS_DEFAULT;
    lim.max_errors = 3;
    errors = validate_lim(s, e, &lim);
    assert_int_equal(json_array_size(errors), 3);
    json_decref(errors);
    /* Nesting inside free-form content is bounded. */
    lim = SCHEMA_LIMITS_DEFAULT;
    lim.max_depth = 4;
    errors = validate_lim(s, "{'_acme': {'a': {'b': {'c': 1}}}}", &lim);
    assert_int_equal(json_array_size(errors), 0);
    json_decref(errors);
    assert_one_error(validate_lim(s, "{'_acme': {'a': {'b': {'c': {'d': 1}}}}}", &lim),
                     "/_acme/a/b/c/d", "nested deeper than 4 levels");
    schema_free(s);
}

/* Compile errors ------------------------------------------------------------------------------ */

static void test_compile_errors(void **state)
{
    assert_compile_error("[]", "", "a schema definition must be a JSON object");
    assert_compile_error("{'title': 'x'}", "/meta:class", "missing \"meta:class\"");
    assert_compile_error("{'meta:class': 'https://ns.adobe.com/xdm/context/product'}",
                         "/meta:class",
                         "unknown class \"https://ns.adobe.com/xdm/context/product\"");
    assert_compile_error("{" PROFILE_CLASS ", 'properties': {'_acme': {'type': 'strin'}}}",
                         "/properties/_acme/type",
                         "unknown type \"strin\" (expected string, integer, number, boolean, "
                         "object or array)");
    assert_compile_error("{" PROFILE_CLASS ", 'properties': {'_acme': {'type': ['string', "
                         "'null']}}}",
                         "/properties/_acme/type", "unknown type [\"string\",\"null\"]");
    assert_compile_error("{" PROFILE_CLASS ", 'properties': {'_acme': {'meta:xdmType': 'float'}}}",
                         "/properties/_acme/meta:xdmType", "unknown meta:xdmType \"float\"");
    assert_compile_error("{" PROFILE_CLASS ", 'properties': {'_acme': {'type': 'string', "
                         "'meta:xdmType': 'long'}}}",
                         "/properties/_acme/meta:xdmType",
                         "meta:xdmType \"long\" needs type \"integer\", not \"string\"");
    assert_compile_error("{" PROFILE_CLASS ", 'properties': {'_acme': {'description': 'x'}}}",
                         "/properties/_acme", "missing \"type\"");
    assert_compile_error("{" PROFILE_CLASS ", 'allOf': [{'$ref': 'https://example.com/nope'}]}",
                         "/allOf/0/$ref", "unknown $ref \"https://example.com/nope\"");
    assert_compile_error("{" PROFILE_CLASS ", 'allOf': [{'$ref': '#/definitions/missing'}]}",
                         "/allOf/0/$ref", "unknown $ref \"#/definitions/missing\"");
    assert_compile_error("{" PROFILE_CLASS ", 'properties': {'_acme': {'$ref': 7}}}",
                         "/properties/_acme/$ref", "$ref must be a string");
    assert_compile_error("{" PROFILE_CLASS ", 'properties': {'_acme': {'type': 'object', "
                         "'properties': {'a': {'type': 'string'}}, 'required': ['a', 'b']}}}",
                         "/properties/_acme/required/1",
                         "required names \"b\", which is not a field here");
    assert_compile_error("{" PROFILE_CLASS ", 'required': ['nope']}", "/required/0",
                         "required names \"nope\"");
    assert_compile_error("{" PROFILE_CLASS ", 'properties': {'_acme': {'type': 'string', "
                         "'pattern': '(unclosed'}}}",
                         "/properties/_acme/pattern", "pattern does not compile");
    assert_compile_error("{" PROFILE_CLASS ", 'properties': {'_acme': {'type': 'string', "
                         "'pattern': '(a)\\\\1'}}}",
                         "/properties/_acme/pattern", "back-references");
    assert_compile_error("{" PROFILE_CLASS ", 'properties': {'_acme': {'type': 'string', "
                         "'pattern': '(a{1000}){1000}'}}}",
                         "/properties/_acme/pattern", "pattern is too complex");
    assert_compile_error("{" PROFILE_CLASS ", 'properties': {'_acme': {'type': 'string', "
                         "'pattern': '\\\\bcat'}}}",
                         "/properties/_acme/pattern", "word boundaries");
    /* A trailing backslash once read past the end of the pattern (ASan find). */
    assert_compile_error("{" PROFILE_CLASS ", 'properties': {'_acme': {'type': 'string', "
                         "'pattern': 'abc\\\\'}}}",
                         "/properties/_acme/pattern", "lone backslash");
    assert_compile_error("{" PROFILE_CLASS ", 'properties': {'_acme': {'type': 'string', "
                         "'pattern': 'a{1001}'}}}",
                         "/properties/_acme/pattern", "counted repetitions are limited to {1000}");
    /* Nested counted repetitions expand past the state bound (stacked + and * do not). */
    assert_compile_error("{" PROFILE_CLASS ", 'properties': {'_acme': {'type': 'string', "
                         "'pattern': '((a{20}){20}){20}'}}}",
                         "/properties/_acme/pattern", "pattern is too complex");
    kith_schema *stacked = field_schema("{'type': 'string', 'pattern': "
                                        "'^(ab|cd)*#+++++++++++++++++++++++++++++++++e?$'}");
    field_valid(stacked, "'abcd###e'");
    field_invalid(stacked, "'abcde'", "does not match pattern");
    schema_free(stacked);
    kith_schema *ok = field_schema("{'type': 'string', 'pattern': "
                                   "'^[a-z]+(-[a-z]+)*(\\\\.[a-z]{2,})?$|^(a|b|)*$'}");
    field_valid(ok, "'ab-cd.com'");
    field_invalid(ok, "'Ab'", "does not match pattern");
    schema_free(ok);
    assert_compile_error("{" PROFILE_CLASS ", 'properties': {'_acme': {'type': 'string', "
                         "'enum': []}}}",
                         "/properties/_acme/enum", "must be a non-empty array");
    assert_compile_error("{" PROFILE_CLASS ", 'properties': {'_acme': {'type': 'string', "
                         "'enum': ['a', 1]}}}",
                         "/properties/_acme", "enum value 1 is not of type string");
    assert_compile_error("{" PROFILE_CLASS ", 'properties': {'_acme': {'type': 'integer', "
                         "'minimum': 5, 'maximum': 1}}}",
                         "/properties/_acme", "minimum is greater than maximum");
    assert_compile_error("{" PROFILE_CLASS ", 'properties': {'_acme': {'type': 'integer', "
                         "'minimum': '5'}}}",
                         "/properties/_acme/minimum", "must be a number");
    assert_compile_error("{" PROFILE_CLASS ", 'properties': {'_acme': {'type': 'string', "
                         "'maxLength': -1}}}",
                         "/properties/_acme/maxLength", "must be a non-negative integer");
    assert_compile_error("{" PROFILE_CLASS ", 'properties': {'_acme': {'type': 'array', "
                         "'items': [{'type': 'string'}]}}}",
                         "/properties/_acme/items", "tuple items");
    assert_compile_error("{" PROFILE_CLASS ", 'properties': {'_acme': {'type': 'object', "
                         "'meta:xdmType': 'map', 'properties': {'a': {'type': 'string'}}}}}",
                         "/properties/_acme",
                         "a map (meta:xdmType \"map\") cannot declare properties");
    assert_compile_error("{" PROFILE_CLASS ", 'properties': {'_acme': 'string'}}",
                         "/properties/_acme", "expected a schema object, got string");
    assert_compile_error("{" PROFILE_CLASS ", 'properties': {'_acme': {'type': 'string', "
                         "'meta:labels': 'C2'}}}",
                         "/properties/_acme/meta:labels", "must be an array");
}

static void test_compile_ref_errors(void **state)
{
    /* A field group must suit the class and sit in the top-level allOf. */
    assert_compile_error("{" EVENT_CLASS ", 'allOf': [" FG_PERSON "]}", "/allOf/0/$ref",
                         "does not extend the XDM ExperienceEvent class");
    assert_compile_error("{" PROFILE_CLASS ", 'allOf': [" FG_COMMERCE "]}", "/allOf/0/$ref",
                         "does not extend the XDM Individual Profile class");
    assert_compile_error("{" PROFILE_CLASS ", 'properties': {'_acme': " FG_PERSON "}}",
                         "/properties/_acme/$ref",
                         "can only be used in the schema's top-level allOf");
    assert_compile_error("{" PROFILE_CLASS ", 'allOf': [{'$ref': '" SCHEMA_CLASS_EVENT_ID "'}]}",
                         "/allOf/0/$ref", "does not match the schema's class");
    assert_compile_error("{" PROFILE_CLASS ", 'allOf': [{'$ref': "
                         "'https://ns.adobe.com/xdm/common/address'}]}",
                         "/allOf/0/$ref", "describes a field, not a whole schema");
    /* Recursion is cut by the $ref chain bound or the depth bound. */
    assert_compile_error("{" PROFILE_CLASS ", 'allOf': [{'$ref': '#/definitions/a'}],"
                         " 'definitions': {'a': {'$ref': '#/definitions/a'}}}",
                         "/definitions/a/$ref", "$ref chain deeper than 32");
    json_t *errors =
        compile_err("{" PROFILE_CLASS ", 'properties': {'_acme': {'$ref': "
                    "'#/definitions/node'}}, 'definitions': {'node': {'type': "
                    "'object', 'properties': {'next': {'$ref': '#/definitions/node'}}}}}");
    assert_error_at(errors, 0, "/definitions/node/properties/next",
                    "definition nested deeper than 64 levels");
    json_decref(errors);
    /* A fan-out of repeated $refs is bounded by the expansion budget. */
    char def[8192];
    int n = snprintf(def, sizeof def,
                     "{" PROFILE_CLASS ", 'properties': {'_acme': {'$ref': "
                     "'#/definitions/d0'}}, 'definitions': {");
    for (int i = 0; i < 40; i++)
        n += snprintf(def + n, sizeof def - (size_t)n,
                      "%s'd%d': {'type': 'object', 'properties': {'a': {'$ref': "
                      "'#/definitions/d%d'}, 'b': {'$ref': '#/definitions/d%d'}}}",
                      i ? ", " : "", i, i + 1, i + 1);
    snprintf(def + n, sizeof def - (size_t)n, ", 'd40': {'type': 'string'}}}");
    errors = compile_err(def);
    bool budget = false;
    for (size_t i = 0; i < json_array_size(errors); i++)
        budget = budget ||
                 strstr(json_string_value(json_object_get(json_array_get(errors, i), "message")),
                        "schema expands to more than");
    assert_true(budget);
    json_decref(errors);
}

static void test_depth_bound(void **state)
{
    /* 64 levels of nested objects compile; 65 do not. */
    char def[8192];
    for (int levels = 64; levels <= 65; levels++) {
        int n = snprintf(def, sizeof def, "{" PROFILE_CLASS ", 'properties': ");
        for (int i = 0; i < levels; i++)
            n += snprintf(def + n, sizeof def - (size_t)n,
                          "{'l%d': {'type': 'object', 'properties': ", i);
        n += snprintf(def + n, sizeof def - (size_t)n, "{}");
        for (int i = 0; i < levels; i++)
            n += snprintf(def + n, sizeof def - (size_t)n, "}}");
        snprintf(def + n, sizeof def - (size_t)n, "}");
        if (levels == 64) {
            kith_schema *s = compile_ok(def);
            schema_free(s);
        } else {
            json_t *errors = compile_err(def);
            const char *path =
                json_string_value(json_object_get(json_array_get(errors, 0), "path"));
            assert_non_null(strstr(path, "/l64"));
            assert_error_at(errors, 0, path, "definition nested deeper than 64 levels");
            json_decref(errors);
        }
    }
}

static void test_builtin_conflicts(void **state)
{
    assert_compile_error("{" PROFILE_CLASS ", 'allOf': [" FG_PERSON
                         "], 'properties': {'person': {'type': "
                         "'string'}}}",
                         "/properties/person/type",
                         "type \"string\" conflicts with \"object\" in "
                         "https://ns.adobe.com/xdm/context/profile-person-details");
    assert_compile_error("{" PROFILE_CLASS ", 'allOf': [" FG_PERSON "], 'properties': {'person': "
                         "{'properties': {'birthYear': {'type': 'integer', 'meta:xdmType': "
                         "'long'}}}}}",
                         "/properties/person/properties/birthYear/meta:xdmType",
                         "meta:xdmType \"long\" conflicts with \"short\"");
    assert_compile_error("{" PROFILE_CLASS ", 'properties': {'_id': {'type': 'integer'}}}",
                         "/properties/_id/type",
                         "conflicts with \"string\" in " SCHEMA_CLASS_PROFILE_ID);
    /* Redefining a tenant field inconsistently is caught too. */
    assert_compile_error("{" PROFILE_CLASS ", 'allOf': [{'properties': {'_acme': {'type': "
                         "'object', 'properties': {'a': {'type': 'string'}}}}}], 'properties': "
                         "{'_acme': {'properties': {'a': {'type': 'number'}}}}}",
                         "/properties/_acme/properties/a/type",
                         "type \"number\" conflicts with \"string\" given earlier");
    /* A field group brought in after an inline field of another type is reported at its $ref. */
    assert_compile_error("{" PROFILE_CLASS ", 'allOf': [{'properties': {'loyalty': {'type': "
                         "'string'}}}, " FG_LOYALTY "]}",
                         "/allOf/1/$ref",
                         "in https://ns.adobe.com/xdm/context/profile-loyalty-details: type");
    /* Adding fields inside a built-in object, or repeating the same definition, is fine. */
    kith_schema *s = compile_ok("{" PROFILE_CLASS ", 'allOf': [" FG_PERSON ", " FG_PERSON "],"
                                " 'properties': {'person': {'type': 'object', 'properties': "
                                "{'nickname': {'type': 'string'}}}}}");
    assert_string_equal(type_at(s, "person.nickname"), "string");
    assert_string_equal(type_at(s, "person.name.firstName"), "string");
    schema_free(s);
}

static void test_definitions_and_datatypes(void **state)
{
    kith_schema *s = compile_ok(
        "{'title': 'Loyalty members', " PROFILE_CLASS ","
        " 'allOf': [{'$ref': '" SCHEMA_CLASS_PROFILE_ID "'}, " FG_PERSONAL ","
        "  {'$ref': '#/definitions/acme'}, {'properties': {'_acme2': {'type': 'object', "
        "'properties': {'x': {'type': 'boolean'}}}}}],"
        " 'definitions': {'acme': {'properties': {'_acme': {'type': 'object', 'properties': {"
        "   'shipTo': {'$ref': 'https://ns.adobe.com/xdm/common/address'},"
        "   'billTo': {'$ref': '#/definitions/addr', 'description': 'billing'},"
        "   'level': {'type': 'string', 'enum': ['gold', 'silver']}}, 'required': ['level']}}},"
        "  'addr': {'type': 'object', 'properties': {'zip': {'type': 'string', 'pattern': "
        "'^[0-9]{5}$'}}},"
        "  'unused': {'type': 'nonsense'}}}");
    assert_string_equal(type_at(s, "_acme.shipTo.city"), "string");
    assert_string_equal(type_at(s, "_acme.billTo.zip"), "string");
    assert_string_equal(type_at(s, "_acme2.x"), "boolean");
    assert_string_equal(type_at(s, "personalEmail.address"), "string");
    assert_valid(s, "{'_acme': {'level': 'gold', 'shipTo': {'city': 'Paris'}, 'billTo': {'zip': "
                    "'75001'}}, '_acme2': {'x': true}}");
    assert_invalid(s, "{'_acme': {'level': 'gold', 'billTo': {'zip': '7500'}}}",
                   "/_acme/billTo/zip", "does not match pattern \"^[0-9]{5}$\"");
    assert_invalid(s, "{'_acme': {'level': 'gold2'}}", "/_acme/level",
                   "\"gold2\" is not one of [\"gold\",\"silver\"]");
    assert_invalid(s, "{'_acme': {}}", "/_acme/level", "missing required field \"level\"");
    schema_free(s);
}

/* Descriptors --------------------------------------------------------------------------------- */

static void test_descriptors(void **state)
{
    kith_schema *s = compile_ok(PROFILE_ALL);
    json_t *errors = json_array();
    assert_int_equal(schema_check_descriptor(s, "/personalEmail/address", errors), 0);
    assert_int_equal(schema_check_descriptor(s, "/_acme/tier", errors), 0);
    assert_int_equal(schema_check_descriptor(s, "/mobilePhone/number", errors), 0);
    assert_int_equal(json_array_size(errors), 0);
    json_decref(errors);
    static const char *const bad[][2] = {
        {"personalEmail/address", "must be a JSON pointer starting with \"/\""},
        {"", "must be a JSON pointer"},
        {"/nope/address", "\"/nope\" is not a field of this schema"},
        {"/personalEmail/nope", "\"/personalEmail/nope\" is not a field of this schema"},
        {"/personalEmail", "\"/personalEmail\" is an object; an identity field must be a string"},
        {"/person/birthYear", "is an integer; an identity field must be a string"},
        {"/loyalty/loyaltyID", "\"/loyalty/loyaltyID\" is an array; an identity field must be a "
                               "string outside arrays and maps"},
        {"/identityMap/Email", "\"/identityMap\" is a map"},
        {"/segmentMembership/ups", "\"/segmentMembership\" is a map"},
        {"/loyalty/pointsExpiration/pointsExpiring", "\"/loyalty/pointsExpiration\" is an array"},
        {"/personalEmail/address/x", "is not a field of this schema"},
        {"/a~2b", "not a valid JSON pointer"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        errors = json_array();
        assert_int_equal(schema_check_descriptor(s, bad[i][0], errors), KITH_EINVAL);
        assert_one_error(errors, "/xdm:sourceProperty", bad[i][1]);
    }
    schema_free(s);

    assert_compile_error("{" PROFILE_CLASS ", 'kith:descriptors': [{'xdm:sourceProperty': "
                         "'/personID', 'xdm:namespace': 'CRMID', 'xdm:isPrimary': true}, "
                         "{'xdm:sourceProperty': '/_id', 'xdm:namespace': 'X', 'xdm:isPrimary': "
                         "true}]}",
                         "/kith:descriptors/1/xdm:isPrimary",
                         "descriptor #0 is already the primary identity");
    assert_compile_error("{" PROFILE_CLASS ", 'kith:descriptors': [{'xdm:sourceProperty': "
                         "'/nope', 'xdm:namespace': 'X'}]}",
                         "/kith:descriptors/0/xdm:sourceProperty",
                         "\"/nope\" is not a field of this schema");
    assert_compile_error("{" PROFILE_CLASS ", 'kith:descriptors': [{'xdm:sourceProperty': "
                         "'/personID'}]}",
                         "/kith:descriptors/0/xdm:namespace", "missing or empty");
    assert_compile_error("{" PROFILE_CLASS ", 'kith:descriptors': {}}", "/kith:descriptors",
                         "must be an array");
    assert_compile_error("{" PROFILE_CLASS ", 'kith:descriptors': [{'xdm:sourceProperty': "
                         "'/personID', 'xdm:namespace': 'A'}, {'xdm:sourceProperty': "
                         "'/personID', 'xdm:namespace': 'B'}]}",
                         "/kith:descriptors/1/xdm:sourceProperty", "already has a descriptor");
    assert_compile_error("{" PROFILE_CLASS ", 'kith:descriptors': [{'xdm:sourceProperty': "
                         "'/personID', 'xdm:namespace': 'A', 'xdm:isPrimary': 'yes'}]}",
                         "/kith:descriptors/0/xdm:isPrimary", "must be true or false");
}

/* Identities ---------------------------------------------------------------------------------- */

/* Keeps the entity alive for as long as the identities are inspected. */
typedef struct held {
    json_t *entity, *errors;
    schema_identity ids[32];
    int n;
} held;

static held *run_extract(const kith_schema *s, const char *entity, const schema_limits *lim,
                         int cap)
{
    held *h = calloc(1, sizeof *h);
    h->entity = J(entity);
    h->errors = json_array();
    h->n = schema_extract_identities(s, h->entity, lim, h->ids, cap, h->errors);
    return h;
}

static void held_free(held *h)
{
    json_decref(h->entity);
    json_decref(h->errors);
    free(h);
}

static void assert_identity(const held *h, int i, const char *ns, const char *value, bool primary,
                            const char *path)
{
    assert_true(i < h->n);
    assert_string_equal(h->ids[i].ns, ns);
    assert_string_equal(h->ids[i].value, value);
    assert_int_equal(h->ids[i].primary, primary);
    assert_string_equal(h->ids[i].path, path);
}

static void assert_extract_error(const kith_schema *s, const char *entity, const schema_limits *lim,
                                 const char *path, const char *msg)
{
    held *h = run_extract(s, entity, lim, 32);
    assert_int_equal(h->n, KITH_EINVAL);
    assert_error_at(h->errors, 0, path, msg);
    held_free(h);
}

static void test_identities(void **state)
{
    kith_schema *s = compile_ok(PROFILE_ALL);
    held *h = run_extract(s,
                          "{'identityMap': {'ECID': [{'id': 'e1'}, {'id': 'e2', 'primary': true}],"
                          " 'CRM~ID/x': [{'id': 'c1', 'authenticatedState': 'authenticated'}]},"
                          " 'personalEmail': {'address': 'a@example.com'}}",
                          NULL, 32);
    assert_int_equal(h->n, 4);
    assert_identity(h, 0, "ECID", "e1", false, "/identityMap/ECID/0/id");
    assert_identity(h, 1, "ECID", "e2", true, "/identityMap/ECID/1/id");
    assert_identity(h, 2, "CRM~ID/x", "c1", false, "/identityMap/CRM~0ID~1x/0/id");
    /* The descriptor says primary, but the identityMap's primary wins. */
    assert_identity(h, 3, "Email", "a@example.com", false, "/personalEmail/address");
    held_free(h);

    /* No identityMap primary: the descriptor's primary. */
    h = run_extract(s,
                    "{'identityMap': {'ECID': [{'id': 'e1'}]}, 'personalEmail': {'address': "
                    "'a@example.com'}}",
                    NULL, 32);
    assert_int_equal(h->n, 2);
    assert_identity(h, 0, "ECID", "e1", false, "/identityMap/ECID/0/id");
    assert_identity(h, 1, "Email", "a@example.com", true, "/personalEmail/address");
    held_free(h);

    /* Duplicates merge (the descriptor's Email equals the identityMap's). */
    h = run_extract(s,
                    "{'identityMap': {'Email': [{'id': 'a@example.com'}, {'id': "
                    "'a@example.com'}], 'ECID': [{'id': 'e1', 'primary': false}]},"
                    " 'personalEmail': {'address': 'a@example.com'}}",
                    NULL, 32);
    assert_int_equal(h->n, 2);
    assert_identity(h, 0, "Email", "a@example.com", true, "/identityMap/Email/0/id");
    assert_identity(h, 1, "ECID", "e1", false, "/identityMap/ECID/0/id");
    held_free(h);
    schema_free(s);

    /* No primary anywhere: the first. */
    s = compile_ok("{" PROFILE_CLASS ", 'allOf': [" FG_PERSONAL "], 'kith:descriptors': ["
                   "{'xdm:sourceProperty': '/personalEmail/address', 'xdm:namespace': 'Email'},"
                   "{'xdm:sourceProperty': '/personID', 'xdm:namespace': 'CRMID'}]}");
    h = run_extract(s, "{'personID': 'p1', 'personalEmail': {'address': 'a@example.com'}}", NULL,
                    32);
    assert_int_equal(h->n, 2);
    assert_identity(h, 0, "Email", "a@example.com", true, "/personalEmail/address");
    assert_identity(h, 1, "CRMID", "p1", false, "/personID");
    held_free(h);
    h = run_extract(s, "{'identityMap': {'ECID': [{'id': 'e1'}]}, 'personID': 'p1'}", NULL, 32);
    assert_int_equal(h->n, 2);
    assert_identity(h, 0, "ECID", "e1", true, "/identityMap/ECID/0/id");
    held_free(h);

    /* Errors. */
    assert_extract_error(s, "{}", NULL, "",
                         "no identity: add an identityMap entry or fill "
                         "/personalEmail/address");
    assert_extract_error(s,
                         "{'identityMap': {'A': [{'id': 'a', 'primary': true}], 'B': [{'id': "
                         "'b', 'primary': true}]}}",
                         NULL, "/identityMap/B/0/id",
                         "two identities are flagged primary (/identityMap/A/0/id and "
                         "/identityMap/B/0/id); flag exactly one");
    assert_extract_error(s, "{'identityMap': []}", NULL, "/identityMap",
                         "identityMap must be an object");
    assert_extract_error(s, "{'identityMap': {'Email': {'id': 'a'}}}", NULL, "/identityMap/Email",
                         "expected an array of {\"id\": ...} objects, got object");
    assert_extract_error(s, "{'identityMap': {'Email': ['a']}}", NULL, "/identityMap/Email/0",
                         "expected an object with \"id\", got string");
    assert_extract_error(s, "{'identityMap': {'Email': [{'primary': true}]}}", NULL,
                         "/identityMap/Email/0", "missing \"id\"");
    assert_extract_error(s, "{'identityMap': {'Email': [{'id': 5}]}}", NULL,
                         "/identityMap/Email/0/id", "identity value must be a string, got number");
    assert_extract_error(s, "{'identityMap': {'Email': [{'id': ''}]}}", NULL,
                         "/identityMap/Email/0/id", "identity value is empty");
    assert_extract_error(s, "{'identityMap': {'Email': [{'id': 'a', 'primary': 'yes'}]}}", NULL,
                         "/identityMap/Email/0/primary", "expected boolean, got string");
    assert_extract_error(s, "{'identityMap': {'': [{'id': 'a'}]}}", NULL, "/identityMap/",
                         "empty namespace code");
    assert_extract_error(s, "{'personID': 7}", NULL, "/personID",
                         "identity value must be a string, got number");
    assert_extract_error(s, "{'personID': ''}", NULL, "/personID", "identity value is empty");

    schema_limits lim = SCHEMA_LIMITS_DEFAULT;
    lim.max_identity_len = 4;
    assert_extract_error(s, "{'personID': 'abcde'}", &lim, "/personID",
                         "identity value is 5 bytes; the limit is 4");
    h = run_extract(s, "{'personID': 'abcd'}", &lim, 32);
    assert_int_equal(h->n, 1);
    held_free(h);

    /* At most max_identities (after de-duplication), and at most cap. */
    char e[4096] = "{'identityMap': {'ECID': [";
    for (int i = 0; i < 21; i++)
        snprintf(e + strlen(e), sizeof e - strlen(e), "%s{'id': 'v%d'}", i ? ", " : "", i);
    strcat(e, "]}}");
    assert_extract_error(s, e, NULL, "/identityMap/ECID/20/id",
                         "more than 20 identities in one record (the limit is 20)");
    e[0] = '\0';
    strcat(e, "{'identityMap': {'ECID': [");
    for (int i = 0; i < 25; i++)
        snprintf(e + strlen(e), sizeof e - strlen(e), "%s{'id': 'v%d'}", i ? ", " : "", i % 20);
    strcat(e, "]}}");
    h = run_extract(s, e, NULL, 32);
    assert_int_equal(h->n, 20);
    held_free(h);
    h = run_extract(s, e, NULL, 5);
    assert_int_equal(h->n, KITH_EINVAL);
    assert_error_at(h->errors, 0, "/identityMap/ECID/5/id", "more than 5 identities");
    held_free(h);
    schema_free(s);
}

/* Union --------------------------------------------------------------------------------------- */

static void test_union(void **state)
{
    kith_schema *a = compile_ok("{" PROFILE_CLASS ", 'allOf': [" FG_PERSON "], 'properties': "
                                "{'_acme': {'type': 'object', 'properties': {'x': {'type': "
                                "'string', 'meta:labels': ['C2']}, 'm': {'type': 'object', "
                                "'meta:xdmType': 'map', 'additionalProperties': {'type': "
                                "'object', 'properties': {'p': {'type': 'string'}}}}}}}}");
    kith_schema *b = compile_ok("{" PROFILE_CLASS ", 'allOf': [" FG_LOYALTY "], 'properties': "
                                "{'_acme': {'type': 'object', 'properties': {'x': {'type': "
                                "'integer', 'meta:labels': ['I1']}, 'y': {'type': 'boolean'}, "
                                "'m': {'type': 'object', 'meta:xdmType': 'map', "
                                "'additionalProperties': {'type': 'object', 'properties': {'q': "
                                "{'type': 'number'}}}}}}}}");
    kith_schema *c =
        compile_ok("{" PROFILE_CLASS ", 'properties': {'_acme': {'type': 'object', "
                   "'properties': {'x': {'type': 'string', 'meta:labels': ['I1']}}}}}");
    kith_schema *ev = compile_ok("{" EVENT_CLASS "}");
    const kith_schema *all[] = {a, b, NULL, ev, c};
    json_t *errors = json_array();
    json_t *u = schema_union(all, 5, errors);
    const json_t *props = json_object_get(u, "properties");
    assert_non_null(field_at(props, "person.name.firstName"));
    assert_non_null(field_at(props, "loyalty.tier"));
    assert_string_equal(json_string_value(json_object_get(field_at(props, "_acme.x"), "type")),
                        "string");
    assert_non_null(field_at(props, "_acme.y"));
    assert_true(
        json_eq_text(json_object_get(field_at(props, "_acme.x"), "meta:labels"), "['C2', 'I1']"));
    const json_t *mv = json_object_get(field_at(props, "_acme.m"), "additionalProperties");
    assert_non_null(json_object_get(json_object_get(mv, "properties"), "p"));
    assert_non_null(json_object_get(json_object_get(mv, "properties"), "q"));
    assert_null(field_at(props, "timestamp"));
    assert_int_equal(json_array_size(errors), 2);
    assert_error_at(errors, 0, "/_acme/x",
                    "schema #2 defines this field as integer but an earlier schema as string; "
                    "the union keeps string");
    assert_error_at(errors, 1, "", "schema #4 is of class ExperienceEvent, not Profile");
    json_decref(u);
    json_decref(errors);
    errors = json_array();
    u = schema_union(NULL, 0, errors);
    assert_int_equal(json_object_size(json_object_get(u, "properties")), 0);
    json_decref(u);
    json_decref(errors);
    schema_free(a);
    schema_free(b);
    schema_free(c);
    schema_free(ev);
}

/* Pattern matcher ---------------------------------------------------------------------------- */

static void test_regex_engine(void **state)
{
    kith_schema *s = compile_ok("{" PROFILE_CLASS "}");
    static const char *const patterns[] = {"^[A-Z]{3}$",
                                           "^[0-1][0-9]-[0-3][0-9]$",
                                           "b+",
                                           "^(ab|cd)*e?$",
                                           "a{2,4}",
                                           "^a{2,4}$",
                                           "x|y|z",
                                           "^$",
                                           "",
                                           "[^a-z]",
                                           "[]a]",
                                           "[a-]",
                                           "[[:digit:]]+",
                                           "\\.",
                                           "a.c",
                                           "^(a|)+b$",
                                           "(a*)*b",
                                           "^[[:alpha:]_][[:alnum:]_]*$",
                                           "\\w+@\\w+",
                                           "^\\s*$",
                                           "colou?r",
                                           "^[^@ ]+@[^@ ]+\\.[a-z]{2,}$",
                                           "a$b",
                                           "(^a|b)",
                                           "((a))",
                                           "a+*",
                                           "^(a{2}){2}$",
                                           "[[:upper:][:digit:]]",
                                           "^[[:xdigit:]]{2}$",
                                           "a||b",
                                           "()",
                                           "^[^]a]$",
                                           "\\W",
                                           "\\S+$",
                                           "^c-[0-9]+$",
                                           "[.]",
                                           "a{0}b",
                                           "^(x|xy)(z|yz)$"};
    static const char *const subjects[] = {
        "",      "a",     "ab",     "abc", "AAA", "AB",    "12-31", "abcd", "aa",
        "aaaaa", "x",     "-",      "]",   "a.c", "cdcde", "b",     "aab",  "foo@bar.com",
        "  ",    "color", "colour", "a.b", "Z9_", "1ab",   "aaaa",  "e",    "ababe",
        "0f",    "c-101", "c-",     "xyz", "ba",  "a b",   "A1"};
    for (size_t i = 0; i < sizeof patterns / sizeof patterns[0]; i++) {
        const schema_regex *re = schema_regex_compile(s, patterns[i]);
        if (!re) print_error("pattern %s not compiled\n", patterns[i]);
        assert_non_null(re);
        regex_t posix;
        assert_int_equal(regcomp(&posix, patterns[i], REG_EXTENDED | REG_NOSUB), 0);
        for (size_t j = 0; j < sizeof subjects / sizeof subjects[0]; j++) {
            bool want = regexec(&posix, subjects[j], 0, NULL, 0) == 0;
            bool got = schema_regex_match(re, subjects[j], strlen(subjects[j]));
            if (want != got)
                print_error("pattern %s on \"%s\": glibc %d, ours %d\n", patterns[i], subjects[j],
                            want, got);
            assert_int_equal(want, got);
        }
        regfree(&posix);
    }
    /* Inside brackets, escapes read as in ECMA patterns. */
    const schema_regex *re = schema_regex_compile(s, "^[\\w.+-]+@[\\w-]+\\.[a-z]{2,}$");
    assert_non_null(re);
    assert_true(schema_regex_match(re, "first.last+x@mail-1.com", 23));
    assert_false(schema_regex_match(re, "a b@c.com", 9));
    re = schema_regex_compile(s, "^[\\]\\\\]+$");
    assert_true(schema_regex_match(re, "]\\]", 3));
    assert_false(schema_regex_match(re, "a", 1));
    /* Anchors inside repeated groups: glibc gets this wrong (fuzzer find); ^ only matches at 0. */
    re = schema_regex_compile(s, "(^ab|cd)+e");
    assert_false(schema_regex_match(re, "ababe", 5));
    assert_true(schema_regex_match(re, "abcde", 5));
    /* '.' and bracket expressions take a whole UTF-8 code point. */
    re = schema_regex_compile(s, "^.$");
    assert_true(schema_regex_match(re, "\xc3\xa9", 2));
    assert_false(schema_regex_match(re, "ab", 2));
    re = schema_regex_compile(s, "^[\xc3\xa0-\xc3\xbf]{2}$");
    assert_true(schema_regex_match(re, "\xc3\xa9\xc3\xa8", 4));
    assert_false(schema_regex_match(re,
                                    "\xc3\xa9"
                                    "e",
                                    3));
    re = schema_regex_compile(s, "^[^a]$");
    assert_true(schema_regex_match(re, "\xe2\x82\xac", 3));
    /* Invalid, or outside the subset: rejected with a reason. */
    static const char *const bad[][2] = {
        {"\\bword", "word boundaries"},
        {"a\\>", "word boundaries"},
        {"[[.a.]]", "collating elements"},
        {"[[=a=]]", "equivalence classes"},
        {"[[:nope:]]", "unknown [:class:]"},
        {"a{1,3000}", "too complex"},
        {"(a{50}){50}", "too complex"},
        {"^*", "cannot apply to ^ or $"},
        {"*a", "nothing to repeat"},
        {"a{,3}", "'{' must start a repetition count"},
        {"a{3,2}", "n <= m"},
        {"(a", "a '(' without its ')'"},
        {"a)", "a ')' without its '('"},
        {"[abc", "unterminated bracket expression"},
        {"[z-a]", "runs backwards"},
        {"a\\", "lone backslash"},
        {"[\\W]", "inside [...] only"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        const char *why = NULL;
        assert_int_equal(schema_regex_check(bad[i][0], &why), KITH_EINVAL);
        if (!why || !strstr(why, bad[i][1])) print_error("%s: %s\n", bad[i][0], why);
        assert_non_null(strstr(why, bad[i][1]));
        assert_null(schema_regex_compile(s, bad[i][0]));
    }
    /* Patterns on which glibc's regcomp takes seconds or exhausts memory (fuzzer finds) compile
     * at once here, and match in linear time. */
    static const char *const hostile[] = {"(((((((((((a*)+)+)+)+)+)+)+)+)+)+)+",
                                          "(((((((((((((((((((())))))))))|))))))))))+x",
                                          "^(cd)*++++++++#############e?$"};
    static char subject[4096];
    memset(subject, 'a', sizeof subject - 1);
    for (size_t i = 0; i < sizeof hostile / sizeof hostile[0]; i++) {
        const char *why = NULL;
        if (schema_regex_check(hostile[i], &why)) print_error("%s: %s\n", hostile[i], why);
        re = schema_regex_compile(s, hostile[i]);
        assert_non_null(re);
        assert_int_equal(schema_regex_match(re, subject, strlen(subject)), i == 0);
    }
    schema_free(s);
}

/* Threads ------------------------------------------------------------------------------------- */

static void *validate_many(void *arg)
{
    const kith_schema *s = arg;
    json_t *e = J("{'_id': 'e', 'timestamp': '2024-05-01T10:00:00Z', 'commerce': {'order': "
                  "{'currencyCode': 'usd'}}}");
    long bad = 0;
    for (int i = 0; i < 2000; i++) {
        json_t *errors = json_array();
        bad += schema_validate(s, e, NULL, errors) != 1;
        json_decref(errors);
    }
    json_decref(e);
    return (void *)bad;
}

static void *compile_one(void *arg)
{
    json_t *def = J(EVENT_ALL), *errors = json_array();
    kith_schema *s = NULL;
    long rc = schema_compile(def, &s, errors);
    schema_free(s);
    json_decref(def);
    json_decref(errors);
    (void)arg;
    return (void *)rc;
}

static void test_threads(void **state)
{
    pthread_t t[4];
    for (int i = 0; i < 4; i++)
        pthread_create(&t[i], NULL, compile_one, NULL);
    for (int i = 0; i < 4; i++) {
        void *rc;
        pthread_join(t[i], &rc);
        assert_int_equal((long)rc, 0);
    }
    kith_schema *s = compile_ok(EVENT_ALL);
    for (int i = 0; i < 4; i++)
        pthread_create(&t[i], NULL, validate_many, s);
    for (int i = 0; i < 4; i++) {
        void *bad;
        pthread_join(t[i], &bad);
        assert_int_equal((long)bad, 0);
    }
    schema_free(s);
}

/* Golden cases -------------------------------------------------------------------------------- */

/* Each tests/golden/schema/<name>.json is {"schema": definition, "compile_errors"?: [...],
 * "cases": [{"entity": ..., "errors": [{"path", "message"}...], "identities"?: [...]}]}; messages
 * match as substrings. Files are found next to this source file. */
static void run_golden(const char *file)
{
    json_error_t jerr;
    json_t *doc = json_load_file(file, JSON_REJECT_DUPLICATES, &jerr);
    if (!doc) fail_msg("%s: %s at line %d", file, jerr.text, jerr.line);
    json_t *errors = json_array();
    kith_schema *s = NULL;
    int rc = schema_compile(json_object_get(doc, "schema"), &s, errors);
    const json_t *want_compile = json_object_get(doc, "compile_errors");
    if (want_compile) {
        assert_int_equal(rc, KITH_EINVAL);
        assert_int_equal(json_array_size(errors), json_array_size(want_compile));
        for (size_t i = 0; i < json_array_size(want_compile); i++) {
            const json_t *w = json_array_get(want_compile, i);
            assert_error_at(errors, i, json_string_value(json_object_get(w, "path")),
                            json_string_value(json_object_get(w, "message")));
        }
    } else {
        if (rc) print_errors(file, errors);
        assert_int_equal(rc, 0);
    }
    json_decref(errors);
    size_t i;
    const json_t *c;
    json_array_foreach(json_object_get(doc, "cases"), i, c)
    {
        errors = json_array();
        schema_validate(s, json_object_get(c, "entity"), NULL, errors);
        const json_t *want = json_object_get(c, "errors");
        if (json_array_size(errors) != json_array_size(want)) {
            print_error("%s case %zu\n", file, i);
            print_errors("errors", errors);
        }
        assert_int_equal(json_array_size(errors), json_array_size(want));
        for (size_t j = 0; j < json_array_size(want); j++) {
            const json_t *w = json_array_get(want, j);
            assert_error_at(errors, j, json_string_value(json_object_get(w, "path")),
                            json_string_value(json_object_get(w, "message")));
        }
        json_decref(errors);
        const json_t *want_ids = json_object_get(c, "identities");
        if (!want_ids) continue;
        schema_identity ids[32];
        errors = json_array();
        int n = schema_extract_identities(s, json_object_get(c, "entity"), NULL, ids, 32, errors);
        assert_int_equal(n, (int)json_array_size(want_ids));
        for (int j = 0; j < n; j++) {
            const json_t *w = json_array_get(want_ids, (size_t)j);
            assert_string_equal(ids[j].ns, json_string_value(json_array_get(w, 0)));
            assert_string_equal(ids[j].value, json_string_value(json_array_get(w, 1)));
            assert_int_equal(ids[j].primary, json_is_true(json_array_get(w, 2)));
        }
        json_decref(errors);
    }
    schema_free(s);
    json_decref(doc);
}

static void test_golden(void **state)
{
    char dir[1024];
    snprintf(dir, sizeof dir, "%s", __FILE__);
    char *slash = strrchr(dir, '/');
    snprintf(slash ? slash + 1 : dir, sizeof dir - (size_t)(slash ? slash + 1 - dir : 0),
             "../golden/schema");
    DIR *d = opendir(dir);
    if (!d) {
        print_message("no golden directory %s; skipped\n", dir);
        return;
    }
    int n = 0;
    struct dirent *de;
    while ((de = readdir(d))) {
        size_t len = strlen(de->d_name);
        if (len < 5 || strcmp(de->d_name + len - 5, ".json") != 0) continue;
        char file[2048];
        snprintf(file, sizeof file, "%s/%s", dir, de->d_name);
        run_golden(file);
        n++;
    }
    closedir(d);
    assert_true(n > 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_builtin_list),
        cmocka_unit_test(test_profile_field_groups),
        cmocka_unit_test(test_event_field_groups),
        cmocka_unit_test(test_event_required),
        cmocka_unit_test(test_class_from_allof),
        cmocka_unit_test(test_types),
        cmocka_unit_test(test_xdm_integer_types),
        cmocka_unit_test(test_numeric_bounds),
        cmocka_unit_test(test_string_lengths_and_pattern),
        cmocka_unit_test(test_enum),
        cmocka_unit_test(test_formats),
        cmocka_unit_test(test_objects_maps_additional),
        cmocka_unit_test(test_arrays),
        cmocka_unit_test(test_labels_and_unknown_keywords),
        cmocka_unit_test(test_limits),
        cmocka_unit_test(test_compile_errors),
        cmocka_unit_test(test_compile_ref_errors),
        cmocka_unit_test(test_depth_bound),
        cmocka_unit_test(test_builtin_conflicts),
        cmocka_unit_test(test_definitions_and_datatypes),
        cmocka_unit_test(test_descriptors),
        cmocka_unit_test(test_identities),
        cmocka_unit_test(test_union),
        cmocka_unit_test(test_regex_engine),
        cmocka_unit_test(test_threads),
        cmocka_unit_test(test_golden),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
