/* pql/json (src/segment/pqljson.c): AEP's documented trees exactly, the input forms kith accepts
 * besides its own output (AEP's older shapes and aliases), errors at the JSON pointer at fault, and
 * the bounds. Every golden case also round-trips (test_pql_golden.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "kith/pql.h"

static json_t *load(const char *s)
{
    json_error_t e;
    json_t *j = json_loads(s, 0, &e);
    if (!j) fail_msg("bad test JSON: %s: %s", e.text, s);
    return j;
}

/* The text a tree converts to (owned), or fails the test. */
static char *text_of(const char *tree)
{
    json_t *j = load(tree);
    char *text = NULL;
    pql_json_error err;
    if (pql_json_to_text(j, &text, &err)) fail_msg("%s: %s at '%s'", tree, err.message, err.path);
    json_decref(j);
    return text;
}

static void expect_text(const char *tree, const char *want)
{
    char *t = text_of(tree);
    if (strcmp(t, want)) fail_msg("%s\n  gave %s\n  want %s", tree, t, want);
    free(t);
}

static void expect_error(const char *tree, const char *path, const char *msg)
{
    json_t *j = load(tree);
    char *text = NULL;
    pql_json_error err;
    pql_program *p = NULL;
    int rc = pql_compile_json(j, NULL, &p, &text, &err);
    if (rc == 0) fail_msg("%s compiled (%s), expected an error at %s", tree, text, path);
    if (strcmp(err.path, path) || !strstr(err.message, msg))
        fail_msg("%s: error at '%s': %s; expected '%s': %s", tree, err.path, err.message, path, msg);
    assert_null(p);
    assert_null(text);
    json_decref(j);
}

static void test_aep_example(void **state)
{
    (void)state;
    const char *aep =
        "{\"nodeType\":\"fnApply\",\"fnName\":\"=\",\"params\":[{\"nodeType\":\"fieldLookup\","
        "\"fieldName\":\"country\",\"object\":{\"nodeType\":\"fieldLookup\",\"fieldName\":"
        "\"workAddress\",\"object\":{\"nodeType\":\"parameterReference\",\"position\":1}}},"
        "{\"nodeType\":\"literal\",\"literalType\":\"String\",\"value\":\"US\"}]}";
    const char *text = "workAddress.country = \"US\"";
    json_t *tree = NULL;
    pql_error err;
    assert_int_equal(pql_text_to_json(text, strlen(text), &tree, &err), 0);
    json_t *want = load(aep);
    assert_true(json_equal(tree, want));
    json_decref(tree);
    json_decref(want);
    expect_text(aep, text);
}

static void test_input_forms(void **state)
{
    (void)state;
    /* AEP's older root (XDMObject "profile"), no literalType, the Flow service's object-less field */
    expect_text("{\"nodeType\":\"fnApply\",\"fnName\":\"in\",\"params\":[{\"nodeType\":\"fieldLookup\","
                "\"fieldName\":\"gender\",\"object\":{\"nodeType\":\"fieldLookup\",\"fieldName\":"
                "\"person\",\"object\":{\"nodeType\":\"literal\",\"literalType\":\"XDMObject\","
                "\"value\":\"profile\"}}},{\"literalType\":\"List\",\"nodeType\":\"literal\","
                "\"value\":[\"female\"]}]}",
                "person.gender in [\"female\"]");
    expect_text("{\"nodeType\":\"fnApply\",\"fnName\":\"=\",\"params\":[{\"nodeType\":\"fieldLookup\","
                "\"fieldName\":\"city\"},{\"nodeType\":\"literal\",\"value\":\"DDN\"}]}",
                "city = \"DDN\"");
    /* n-ary and, lower-case literal types, a double that is integral stays a double */
    expect_text("{\"nodeType\":\"fnApply\",\"fnName\":\"and\",\"params\":[{\"nodeType\":\"literal\","
                "\"literalType\":\"boolean\",\"value\":true},{\"nodeType\":\"literal\","
                "\"literalType\":\"integer\",\"value\":1},{\"nodeType\":\"literal\","
                "\"literalType\":\"Double\",\"value\":2}]}",
                "true and 1 and 2.0");
    /* right-nested and keeps its parentheses; precedence gives them where needed */
    expect_text("{\"nodeType\":\"fnApply\",\"fnName\":\"*\",\"params\":[{\"nodeType\":\"fnApply\","
                "\"fnName\":\"+\",\"params\":[{\"nodeType\":\"fieldLookup\",\"fieldName\":\"a\"},"
                "{\"nodeType\":\"literal\",\"value\":1}]},{\"nodeType\":\"fnApply\",\"fnName\":\"-\","
                "\"params\":[{\"nodeType\":\"literal\",\"value\":-2}]}]}",
                "(a + 1) * 2");
    /* quantifier aliases, varDecl range, varRef */
    expect_text("{\"nodeType\":\"quantification\",\"quantifier\":\"exists\",\"variables\":[{"
                "\"nodeType\":\"varDecl\",\"varName\":\"X\",\"range\":{\"nodeType\":\"varRef\","
                "\"varName\":\"xEvent\"},\"where\":{\"nodeType\":\"fnApply\",\"fnName\":\"=\","
                "\"params\":[{\"nodeType\":\"fieldLookup\",\"fieldName\":\"eventType\",\"object\":"
                "{\"nodeType\":\"varRef\",\"varName\":\"X\"}},{\"nodeType\":\"literal\",\"value\":"
                "\"a\"}]}}]}",
                "exists X from xEvent where X.eventType = \"a\"");
    /* a lambda at the root; strings are escaped for PQL */
    expect_text("{\"nodeType\":\"fnCreate\",\"params\":[{\"nodeType\":\"varDecl\",\"varName\":\"P\"}],"
                "\"body\":{\"nodeType\":\"fnApply\",\"fnName\":\"=\",\"params\":[{\"nodeType\":"
                "\"fieldLookup\",\"fieldName\":\"x\",\"object\":{\"nodeType\":\"varRef\",\"varName\":"
                "\"P\"}},{\"nodeType\":\"literal\",\"value\":\"a\\\"b\\\\c\\n\"}]}}",
                "(P) => P.x = \"a\\\"b\\\\c\\n\"");
    /* a profile field hidden by a variable is reached through $1 */
    expect_text("{\"nodeType\":\"let\",\"varName\":\"x\",\"value\":{\"nodeType\":\"literal\",\"value\":1},"
                "\"body\":{\"nodeType\":\"fnApply\",\"fnName\":\"=\",\"params\":[{\"nodeType\":"
                "\"varRef\",\"varName\":\"x\"},{\"nodeType\":\"fieldLookup\",\"fieldName\":\"x\","
                "\"object\":{\"nodeType\":\"parameterReference\",\"position\":1}}]}}",
                "let x = (1) in x = $1.x");
}

static void test_errors_name_the_path(void **state)
{
    (void)state;
    expect_error("[]", "", "expected a pql/json node");
    expect_error("{\"nodeType\":\"frob\"}", "/nodeType", "unknown nodeType 'frob'");
    expect_error("{\"nodeType\":\"fnApply\",\"fnName\":\"not\",\"params\":[{\"nodeType\":\"literal\","
                 "\"literalType\":\"Integer\",\"value\":\"x\"}]}",
                 "/params/0/value", "expected an integer");
    expect_error("{\"nodeType\":\"fnApply\",\"fnName\":\"like\",\"params\":[{\"nodeType\":\"fieldLookup\","
                 "\"fieldName\":\"a\"},{\"nodeType\":\"fieldLookup\",\"fieldName\":\"b\"}]}",
                 "/params/1", "string literal pattern");
    expect_error("{\"nodeType\":\"varRef\",\"varName\":\"Q\"}", "/varName", "unknown variable 'Q'");
    expect_error("{\"nodeType\":\"fnApply\",\"fnName\":\"=\",\"params\":[{\"nodeType\":\"fieldLookup\","
                 "\"fieldName\":\"a-b\"},{\"nodeType\":\"literal\",\"value\":1}]}",
                 "/params/0/fieldName", "a field name");
    expect_error("{\"nodeType\":\"occurs\",\"value\":{\"nodeType\":\"fieldLookup\",\"fieldName\":\"t\"},"
                 "\"comparison\":\"<=\",\"amount\":3,\"unit\":\"fortnight\",\"direction\":\"before\","
                 "\"reference\":{\"nodeType\":\"fnApply\",\"fnName\":\"now\",\"params\":[]}}",
                 "/unit", "time unit");
    /* errors of the checker land on the node whose token they name */
    expect_error("{\"nodeType\":\"fnApply\",\"fnName\":\"or\",\"params\":[{\"nodeType\":\"literal\","
                 "\"value\":true},{\"nodeType\":\"fnApply\",\"fnName\":\"count\",\"params\":[{"
                 "\"nodeType\":\"literal\",\"value\":\"s\"}]}]}",
                 "/params/1", "count() needs an array");
    expect_error("{\"nodeType\":\"fnApply\",\"fnName\":\"date\",\"params\":[{\"nodeType\":\"literal\","
                 "\"value\":2020},{\"nodeType\":\"literal\",\"value\":\"x\"},{\"nodeType\":\"literal\","
                 "\"value\":1}]}",
                 "/params/1", "expected an integer in date()");
}

static void test_bounds(void **state)
{
    (void)state;
    kith_buf b = {0};
    for (int i = 0; i < 200; i++)
        kith_buf_puts(&b, "{\"nodeType\":\"fnApply\",\"fnName\":\"not\",\"params\":[");
    kith_buf_puts(&b, "{\"nodeType\":\"literal\",\"value\":true}");
    for (int i = 0; i < 200; i++)
        kith_buf_puts(&b, "]}");
    kith_buf_append(&b, "", 1);
    json_t *j = load(b.data);
    char *text = NULL;
    pql_json_error err;
    assert_int_equal(pql_json_to_text(j, &text, &err), KITH_ETOOLARGE);
    assert_non_null(strstr(err.message, "deeper than 128"));
    json_decref(j);
    kith_buf_free(&b);
    /* a text that converts but is too long for PQL when printed */
    json_t *list = json_array();
    for (int i = 0; i < 5000; i++)
        json_array_append_new(list, json_string("0123456789abcdef"));
    j = json_pack("{s:s, s:s, s:o}", "nodeType", "literal", "literalType", "List", "value", list);
    assert_int_equal(pql_json_to_text(j, &text, &err), KITH_ETOOLARGE);
    json_decref(j);
    /* invalid UTF-8 in text cannot become a tree */
    json_t *tree = NULL;
    pql_error perr;
    assert_int_equal(pql_text_to_json("a = \"\xff\"", 8, &tree, &perr), KITH_EINVAL);
    assert_int_equal(perr.column, 6);
    assert_int_equal(pql_text_to_json("a = 1e999", 9, &tree, &perr), KITH_EINVAL);
    assert_null(tree);
    /* text nests one node per operator of a chain: the parser's bound on binary operators applies */
    b = (kith_buf){0};
    kith_buf_puts(&b, "x = 1");
    for (int i = 0; i < 15000; i++)
        kith_buf_puts(&b, " + 1");
    assert_int_equal(pql_text_to_json(b.data, b.len, &tree, &perr), KITH_EINVAL);
    assert_non_null(strstr(perr.message, "4096 binary operators"));
    kith_buf_free(&b);
    b = (kith_buf){0};
    kith_buf_puts(&b, "x");
    for (int i = 0; i < 4000; i++)
        kith_buf_puts(&b, " and x");
    assert_int_equal(pql_text_to_json(b.data, b.len, &tree, &perr), 0); /* flattened: shallow */
    assert_int_equal(json_array_size(json_object_get(tree, "params")), 4001);
    json_decref(tree);
    kith_buf_free(&b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_aep_example),
        cmocka_unit_test(test_input_forms),
        cmocka_unit_test(test_errors_name_the_path),
        cmocka_unit_test(test_bounds),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
