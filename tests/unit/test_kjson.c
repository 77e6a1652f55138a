/* Unit tests: kjson (strict parsing, errors with line and column, spans, equality with jansson). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "kith/kjson.h"

static json_t *parse(const char *s, kjson_error *err)
{
    return kjson_parse(s, strlen(s), 64, NULL, err);
}

static void test_accepts_like_jansson(void **state)
{
    const char *docs[] = {
        "{}", "[]", "0", "-0", "1.5e-3", "\"\"", "true", "false", "null", " {\"a\" : [1, 2, {\"b\": null}] } ",
        "\"\\u00e9\\ud83d\\ude00\\n\\t\\\"\\\\\\/\"", "\"caf\xc3\xa9 \xf0\x9f\x98\x80\"", "9223372036854775807",
        "-9223372036854775808", "1e308", "[1e-400]", "{\"a\":{\"a\":{\"a\":1}}}",
        "0.0000000000000000000000000000000000000000000000000000000000000000000000000001"};
    for (size_t i = 0; i < sizeof docs / sizeof docs[0]; i++) {
        kjson_error err;
        json_t *a = parse(docs[i], &err);
        json_t *b = json_loads(docs[i], JSON_DECODE_ANY | JSON_REJECT_DUPLICATES, NULL);
        assert_non_null(a);
        assert_non_null(b);
        assert_true(json_equal(a, b));
        json_decref(a);
        json_decref(b);
    }
}

static void test_rejects(void **state)
{
    const char *bad[] = {"", "{", "[1,]", "{\"a\":1,}", "{\"a\" 1}", "01", "1.", ".5", "1e", "+1", "tru",
                         "nul", "\"abc", "\"\\x\"", "\"\\u12\"", "\"\\ud800\"", "\"\\udc00x\"",
                         "\"\\u0000\"", "\"a\x01\"", "\"\xc3\x28\"", "\"\xed\xa0\x80\"", "\"\xc0\xaf\"",
                         "{\"a\":1,\"a\":2}", "[1] 2", "99999999999999999999", "1e400", "[\"\xff\"]"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        kjson_error err;
        json_t *a = parse(bad[i], &err);
        if (a) fail_msg("accepted: %s", bad[i]);
        assert_true(err.line >= 1 && err.column >= 1);
        assert_true(err.text[0] != 0);
    }
}

static void test_error_position(void **state)
{
    kjson_error err;
    assert_null(parse("{\n  \"a\": 1,\n  \"b\": tru,\n  \"c\": 3\n}", &err));
    assert_int_equal(err.line, 3);
    assert_int_equal(err.column, 8);
    assert_null(parse("{\"a\":1,\"a\":2}", &err));
    assert_int_equal(err.line, 1);
    assert_int_equal(err.column, 8);
    assert_non_null(strstr(err.text, "duplicate"));
}

static void test_depth_bound(void **state)
{
    char deep[200];
    memset(deep, '[', 100);
    memset(deep + 100, ']', 100);
    kjson_error err;
    assert_null(kjson_parse(deep, 200, 64, NULL, &err));
    assert_non_null(strstr(err.text, "depth"));
    json_t *ok = kjson_parse(deep + 40, 120, 64, NULL, &err);
    assert_non_null(ok);
    json_decref(ok);
}

static void test_spans(void **state)
{
    const char *doc = "{\"messages\": [ {\"body\": {\"xdmEntity\":  {\"x\": [1, 2], \"y\": \"\\u00e9\"} }} ]}";
    kjson_spans spans = {.max_depth = 4};
    kjson_error err;
    json_t *root = kjson_parse(doc, strlen(doc), 64, &spans, &err);
    assert_non_null(root);
    json_t *ent = json_object_get(json_object_get(json_array_get(json_object_get(root, "messages"), 0), "body"), "xdmEntity");
    size_t a, b;
    assert_int_equal(kjson_span_find(&spans, ent, &a, &b), 0);
    assert_memory_equal(doc + a, "{\"x\": [1, 2], \"y\": \"\\u00e9\"}", b - a);
    assert_int_equal(b - a, strlen("{\"x\": [1, 2], \"y\": \"\\u00e9\"}"));
    /* Objects deeper than max_depth are not recorded. */
    kjson_spans shallow = {.max_depth = 1};
    json_t *root2 = kjson_parse(doc, strlen(doc), 64, &shallow, &err);
    json_t *ent2 = json_object_get(json_object_get(json_array_get(json_object_get(root2, "messages"), 0), "body"), "xdmEntity");
    assert_int_equal(kjson_span_find(&shallow, ent2, &a, &b), -1);
    kjson_spans_free(&spans);
    kjson_spans_free(&shallow);
    json_decref(root);
    json_decref(root2);
}

static void test_dump_roundtrip(void **state)
{
    const char *docs[] = {"{\"a\":[1,2.5,-0.0,1e300,\"x\\u00e9\\n\\u0001\\\"\"],\"b\":{\"c\":null,\"d\":true}}",
                          "[]", "{}", "[99.99,0.1,123456789012,-9223372036854775808]"};
    for (size_t i = 0; i < sizeof docs / sizeof docs[0]; i++) {
        kjson_error err;
        json_t *a = parse(docs[i], &err);
        assert_non_null(a);
        kith_buf b = {0};
        assert_int_equal(kjson_dump(a, &b), 0);
        json_t *back = kjson_parse(b.data, b.len, 64, NULL, &err);
        assert_non_null(back);
        assert_true(json_equal(a, back));
        json_decref(a);
        json_decref(back);
        kith_buf_free(&b);
    }
    kjson_error err;
    json_t *a = parse("{\"p\":99.99,\"q\":[1,\"\\\"\"],\"r\":2.0}", &err);
    kith_buf b = {0};
    kjson_dump(a, &b);
    assert_string_equal(b.data, "{\"p\":99.99,\"q\":[1,\"\\\"\"],\"r\":2.0}");
    kith_buf_free(&b);
    json_decref(a);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_accepts_like_jansson), cmocka_unit_test(test_rejects),
        cmocka_unit_test(test_error_position),       cmocka_unit_test(test_depth_bound),
        cmocka_unit_test(test_spans),        cmocka_unit_test(test_dump_roundtrip),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
