/* Unit tests: the Segment → XDM mapping (src/ingest/segment_map.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "kith/base.h"
#include "kith/segment_map.h"

static const segment_map_opts OPTS = {"CRMID", "AnonymousId", NULL, NULL, 1714557600000};

static json_t *map_ok(const char *text, int type, bool *is_event)
{
    json_t *msg = json_loads(text, 0, NULL);
    assert_non_null(msg);
    json_t *errors = json_array(), *ent = NULL;
    int rc = segment_map(msg, type, &OPTS, "", &ent, is_event, errors);
    if (rc) print_error("unexpected errors for %s\n", text);
    assert_int_equal(rc, 0);
    assert_int_equal(json_array_size(errors), 0);
    json_decref(errors);
    json_decref(msg);
    return ent;
}

/* The one error path of a rejected message. */
static void map_err(const char *text, int type, const char *prefix, const char *path)
{
    json_t *msg = json_loads(text, 0, NULL);
    assert_non_null(msg);
    json_t *errors = json_array(), *ent = NULL;
    bool ev;
    assert_int_equal(segment_map(msg, type, &OPTS, prefix, &ent, &ev, errors), KITH_EINVAL);
    assert_null(ent);
    assert_true(json_array_size(errors) >= 1);
    assert_string_equal(json_string_value(json_object_get(json_array_get(errors, 0), "path")),
                        path);
    json_decref(errors);
    json_decref(msg);
}

static const char *str_at(json_t *j, const char *p)
{
    char buf[256];
    snprintf(buf, sizeof buf, "%s", p);
    for (char *tok = strtok(buf, "."); tok && j; tok = strtok(NULL, "."))
        j = json_object_get(j, tok);
    return json_string_value(j);
}

static json_t *at(json_t *j, const char *p)
{
    char buf[256];
    snprintf(buf, sizeof buf, "%s", p);
    for (char *tok = strtok(buf, "."); tok && j; tok = strtok(NULL, "."))
        j = json_object_get(j, tok);
    return j;
}

static void test_types(void **state)
{
    assert_int_equal(segment_type_parse("identify"), SEGMENT_IDENTIFY);
    assert_int_equal(segment_type_parse("t"), SEGMENT_TRACK);
    assert_int_equal(segment_type_parse("a"), SEGMENT_ALIAS);
    assert_int_equal(segment_type_parse("b"), SEGMENT_NONE);
    assert_int_equal(segment_type_parse(NULL), SEGMENT_NONE);
    assert_string_equal(segment_type_name(SEGMENT_SCREEN), "screen");
}

static void test_identify(void **state)
{
    bool ev = true;
    json_t *e =
        map_ok("{\"type\":\"identify\",\"userId\":\"u1\",\"anonymousId\":\"a1\","
               "\"timestamp\":\"2024-05-01T10:00:00Z\",\"traits\":{\"email\":\"x@y.example\","
               "\"firstName\":\"Ann\",\"lastName\":\"Lee\",\"name\":\"Ann Lee\",\"phone\":\"+1\","
               "\"address\":{\"street\":\"1 Main\",\"city\":\"Paris\",\"state\":\"IDF\","
               "\"postalCode\":\"75001\",\"country\":\"FR\",\"floor\":2},\"plan\":\"pro\","
               "\"email2\":5}}",
               SEGMENT_NONE, &ev);
    assert_false(ev);
    assert_string_equal(str_at(e, "personalEmail.address"), "x@y.example");
    assert_string_equal(str_at(e, "person.name.firstName"), "Ann");
    assert_string_equal(str_at(e, "person.name.lastName"), "Lee");
    assert_string_equal(str_at(e, "person.name.fullName"), "Ann Lee");
    assert_string_equal(str_at(e, "mobilePhone.number"), "+1");
    assert_string_equal(str_at(e, "homeAddress.street1"), "1 Main");
    assert_string_equal(str_at(e, "homeAddress.stateProvince"), "IDF");
    assert_string_equal(str_at(e, "homeAddress.postalCode"), "75001");
    assert_string_equal(str_at(e, "_segment.traits.plan"), "pro");
    assert_int_equal(json_integer_value(at(e, "_segment.traits.address.floor")), 2);
    assert_int_equal(json_integer_value(at(e, "_segment.traits.email2")), 5);
    assert_null(at(e, "_segment.traits.email"));
    assert_string_equal(str_at(e, "extSourceSystemAudit.lastUpdatedDate"), "2024-05-01T10:00:00Z");
    json_t *crm = json_array_get(at(e, "identityMap.CRMID"), 0);
    json_t *anon = json_array_get(at(e, "identityMap.AnonymousId"), 0);
    assert_string_equal(str_at(crm, "id"), "u1");
    assert_true(json_is_true(json_object_get(crm, "primary")));
    assert_string_equal(str_at(anon, "id"), "a1");
    assert_false(json_is_true(json_object_get(anon, "primary")));
    assert_null(at(e, "_id"));
    json_decref(e);
    /* Traits from context.traits (RudderStack), anonymous only: the anonymous id is primary; an
     * email without '@' stays a plain trait; a numeric userId is printed. */
    e = map_ok("{\"anonymousId\":\"a2\",\"context\":{\"traits\":{\"email\":\"nope\"}}}",
               SEGMENT_IDENTIFY, &ev);
    assert_string_equal(str_at(e, "_segment.traits.email"), "nope");
    assert_true(json_is_true(
        json_object_get(json_array_get(at(e, "identityMap.AnonymousId"), 0), "primary")));
    json_decref(e);
    e = map_ok("{\"userId\":42}", SEGMENT_IDENTIFY, &ev);
    assert_string_equal(str_at(json_array_get(at(e, "identityMap.CRMID"), 0), "id"), "42");
    assert_non_null(at(e, "_segment.traits"));
    json_decref(e);
}

static void test_track(void **state)
{
    bool ev = false;
    json_t *e = map_ok(
        "{\"type\":\"track\",\"event\":\"Order Completed\",\"userId\":\"u\",\"messageId\":\"m1\","
        "\"timestamp\":\"2024-05-01T10:00:00.250Z\",\"properties\":{\"total\":10,"
        "\"revenue\":42.5,\"currency\":\"EUR\",\"sku\":\"s\"},\"context\":{\"ip\":\"1.2.3.4\"}}",
        SEGMENT_NONE, &ev);
    assert_true(ev);
    assert_string_equal(str_at(e, "_id"), "m1");
    assert_string_equal(str_at(e, "timestamp"), "2024-05-01T10:00:00.250Z");
    assert_string_equal(str_at(e, "eventType"), "Order Completed");
    assert_true(json_real_value(at(e, "commerce.order.priceTotal")) == 42.5);
    assert_string_equal(str_at(e, "commerce.order.currencyCode"), "EUR");
    assert_string_equal(str_at(e, "_segment.properties.sku"), "s");
    assert_string_equal(str_at(e, "_segment.context.ip"), "1.2.3.4");
    json_decref(e);
    /* total when no revenue; a bad currency is left out; skew-corrected originalTimestamp. */
    e = map_ok(
        "{\"event\":\"E\",\"anonymousId\":\"a\",\"messageId\":\"m\",\"properties\":{\"total\":3,"
        "\"currency\":\"eur\"},\"originalTimestamp\":\"2024-05-01T09:59:00Z\","
        "\"sentAt\":\"2024-05-01T09:59:30Z\"}",
        SEGMENT_TRACK, &ev);
    assert_true(json_number_value(at(e, "commerce.order.priceTotal")) == 3);
    assert_null(at(e, "commerce.order.currencyCode"));
    /* received (10:00:00) - sentAt (09:59:30) = +30 s on 09:59:00 */
    assert_string_equal(str_at(e, "timestamp"), "2024-05-01T09:59:30Z");
    json_decref(e);
    /* A skew correction that would leave years 1..9999 keeps the client's time (found by
     * fuzz_segment: the timestamp could not be parsed back). */
    e = map_ok("{\"event\":\"E\",\"userId\":7,\"messageId\":\"m\",\"originalTimestamp\":"
               "\"0252-05-01T10:00:00Z\",\"sentAt\":\"5675-05-01T10:00:01Z\"}",
               SEGMENT_TRACK, &ev);
    assert_string_equal(str_at(e, "timestamp"), "0252-05-01T10:00:00Z");
    json_decref(e);
    /* No time at all: the receive time. */
    e = map_ok("{\"event\":\"E\",\"userId\":\"u\",\"messageId\":\"m\"}", SEGMENT_TRACK, &ev);
    assert_string_equal(str_at(e, "timestamp"), "2024-05-01T10:00:00Z");
    json_decref(e);
}

static void test_page_screen_group_alias(void **state)
{
    bool ev = false;
    json_t *e = map_ok(
        "{\"name\":\"Pricing\",\"category\":\"Docs\",\"anonymousId\":\"a\",\"messageId\":\"m\","
        "\"context\":{\"page\":{\"url\":\"https://x.example/p\",\"referrer\":\"https://r.example/"
        "\"}}}",
        SEGMENT_PAGE, &ev);
    assert_string_equal(str_at(e, "eventType"), "web.webpagedetails.pageViews");
    assert_string_equal(str_at(e, "web.webPageDetails.name"), "Pricing");
    assert_string_equal(str_at(e, "web.webPageDetails.URL"), "https://x.example/p");
    assert_string_equal(str_at(e, "web.webReferrer.URL"), "https://r.example/");
    assert_true(json_number_value(at(e, "web.webPageDetails.pageViews.value")) == 1);
    assert_string_equal(str_at(e, "_segment.category"), "Docs");
    json_decref(e);
    e = map_ok("{\"name\":\"Home\",\"userId\":\"u\",\"messageId\":\"m\"}", SEGMENT_SCREEN, &ev);
    assert_string_equal(str_at(e, "eventType"), "application.screenView");
    assert_string_equal(str_at(e, "_segment.name"), "Home");
    json_decref(e);
    e = map_ok("{\"groupId\":\"acme\",\"userId\":\"u\",\"messageId\":\"m\",\"traits\":{\"name\":"
               "\"Acme\"}}",
               SEGMENT_GROUP, &ev);
    assert_string_equal(str_at(e, "eventType"), "segment.group");
    assert_string_equal(str_at(e, "_segment.groups.acme.name"), "Acme");
    json_decref(e);
    e = map_ok("{\"userId\":\"u\",\"previousId\":\"a\",\"messageId\":\"m\"}", SEGMENT_ALIAS, &ev);
    assert_string_equal(str_at(e, "eventType"), "segment.alias");
    assert_string_equal(str_at(json_array_get(at(e, "identityMap.CRMID"), 0), "id"), "u");
    assert_string_equal(str_at(json_array_get(at(e, "identityMap.AnonymousId"), 0), "id"), "a");
    json_decref(e);
    /* previousId in the userId namespace (a former userId). */
    segment_map_opts o = OPTS;
    o.previous_ns = "CRMID";
    json_t *msg =
        json_loads("{\"userId\":\"u\",\"previousId\":\"old\",\"messageId\":\"m\"}", 0, NULL);
    json_t *errors = json_array();
    assert_int_equal(segment_map(msg, SEGMENT_ALIAS, &o, "", &e, &ev, errors), 0);
    assert_int_equal(json_array_size(at(e, "identityMap.CRMID")), 2);
    json_decref(e);
    json_decref(msg);
    json_decref(errors);
}

static void test_errors(void **state)
{
    map_err("{\"event\":\"E\",\"messageId\":\"m\"}", SEGMENT_TRACK, "", "/userId");
    map_err("{\"userId\":\"u\",\"messageId\":\"m\"}", SEGMENT_TRACK, "/batch/2", "/batch/2/event");
    map_err("{\"userId\":\"u\",\"event\":\"E\"}", SEGMENT_TRACK, "", "/messageId");
    map_err("{\"userId\":\"u\",\"messageId\":\"m\"}", SEGMENT_ALIAS, "", "/previousId");
    map_err("{\"previousId\":\"u\",\"messageId\":\"m\"}", SEGMENT_ALIAS, "", "/userId");
    map_err("{\"userId\":\"u\",\"messageId\":\"m\"}", SEGMENT_GROUP, "", "/groupId");
    map_err("{\"userId\":\"u\",\"traits\":[]}", SEGMENT_IDENTIFY, "", "/traits");
    map_err("{\"userId\":\"u\",\"context\":\"x\"}", SEGMENT_IDENTIFY, "", "/context");
    map_err("{\"type\":\"nope\",\"userId\":\"u\"}", SEGMENT_NONE, "/batch/0", "/batch/0/type");
    map_err("[1]", SEGMENT_NONE, "/batch/1", "/batch/1");
    map_err("{\"userId\":\"\",\"anonymousId\":{}}", SEGMENT_IDENTIFY, "", "/userId");
    /* A fallback id makes messageId optional. */
    segment_map_opts o = OPTS;
    o.fallback_id = "gen";
    json_t *msg = json_loads("{\"userId\":\"u\",\"event\":\"E\"}", 0, NULL), *e = NULL,
           *errors = json_array();
    bool ev;
    assert_int_equal(segment_map(msg, SEGMENT_TRACK, &o, "", &e, &ev, errors), 0);
    assert_string_equal(str_at(e, "_id"), "gen");
    json_decref(e);
    json_decref(msg);
    json_decref(errors);
}

static void test_batch_defaults_and_paths(void **state)
{
    json_t *batch = json_loads(
        "{\"context\":{\"ip\":\"1\",\"library\":{\"name\":\"x\"}},\"integrations\":{\"All\":true},"
        "\"sentAt\":\"2024-01-01T00:00:00Z\",\"batch\":[{\"context\":{\"ip\":\"2\"}},{}]}",
        0, NULL);
    json_t *a = json_array_get(json_object_get(batch, "batch"), 0);
    json_t *b = json_array_get(json_object_get(batch, "batch"), 1);
    segment_batch_defaults(a, batch);
    segment_batch_defaults(b, batch);
    assert_string_equal(str_at(a, "context.ip"), "2");
    assert_string_equal(str_at(a, "context.library.name"), "x");
    assert_string_equal(str_at(b, "context.ip"), "1");
    assert_string_equal(str_at(b, "sentAt"), "2024-01-01T00:00:00Z");
    assert_true(json_is_true(at(b, "integrations.All")));
    json_decref(batch);
    char p[128];
    segment_source_path("/personalEmail/address", false, p, sizeof p);
    assert_string_equal(p, "/traits/email");
    segment_source_path("/_segment/traits/a/b", false, p, sizeof p);
    assert_string_equal(p, "/traits/a/b");
    segment_source_path("/_segment/properties/x", true, p, sizeof p);
    assert_string_equal(p, "/properties/x");
    segment_source_path("/commerce/order/priceTotal", true, p, sizeof p);
    assert_string_equal(p, "/properties/revenue");
    segment_source_path("/identityMap/CRMID/0/id", true, p, sizeof p);
    assert_string_equal(p, "/userId");
    segment_source_path("/other", true, p, sizeof p);
    assert_string_equal(p, "/other");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_types),  cmocka_unit_test(test_identify),
        cmocka_unit_test(test_track),  cmocka_unit_test(test_page_screen_group_alias),
        cmocka_unit_test(test_errors), cmocka_unit_test(test_batch_defaults_and_paths),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
