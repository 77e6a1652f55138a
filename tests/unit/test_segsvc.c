/* Unit tests: the segment service without HTTP — definitions (compile errors, inSegment checks,
 * delete conflicts, reload after restart) and streaming membership from records. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "kith/segsvc.h"

static char dir[256];

struct put_ctx {
    kith_engine *e;
    const char *id;
    json_t *body;
    bool create;
    segdef_result res;
    int rc;
};

static int put_fn(void *ctx, store_batch *b)
{
    struct put_ctx *c = ctx;
    c->rc = segdef_put(c->e, b, 1, c->id, c->body, c->create, &c->res);
    return c->rc;
}

static segdef_result put(kith_engine *e, const char *id, const char *name, const char *expr)
{
    struct put_ctx c = {.e = e, .id = id, .create = true};
    c.body = json_pack("{s:s, s:{s:s, s:s, s:s}}", "name", name, "expression", "type", "PQL",
                       "format", "pql/text", "value", expr);
    apply_call(e->apply, put_fn, &c, false);
    json_decref(c.body);
    return c.res;
}

struct del_ctx {
    kith_engine *e;
    const char *id;
    char detail[200];
};

static int del_fn(void *ctx, store_batch *b)
{
    struct del_ctx *c = ctx;
    return segdef_delete(c->e, b, 1, c->id, c->detail, sizeof c->detail);
}

static kith_engine *open_engine(void)
{
    kith_engine *e = NULL;
    char *err = NULL;
    assert_int_equal(engine_open(dir, NULL, "test-admin", false, &e, &err), 0);
    return e;
}

#define ID_A "00000000-0000-4000-8000-00000000000a"
#define ID_B "00000000-0000-4000-8000-00000000000b"

static void test_definitions(void **state)
{
    (void)state;
    snprintf(dir, sizeof dir, "/tmp/kith-test-segsvc-XXXXXX");
    assert_non_null(mkdtemp(dir));
    kith_engine *e = open_engine();
    /* a syntax error names line and column */
    segdef_result r = put(e, ID_A, "bad", "a = 1 and\n  (b > )");
    assert_int_equal(r.status, 400);
    json_t *err = json_array_get(r.errors, 0);
    assert_int_equal(json_integer_value(json_object_get(err, "line")), 2);
    assert_true(json_integer_value(json_object_get(err, "column")) > 0);
    json_decref(r.errors);
    /* inSegment to a missing segment */
    r = put(e, ID_B, "b", "inSegment(\"" ID_A "\")");
    assert_int_equal(r.status, 400);
    json_decref(r.errors);
    /* a good one; evaluationInfo decided by kith */
    r = put(e, ID_A, "a", "_acme.tier = \"gold\"");
    assert_int_equal(r.status, 201);
    json_t *ei = json_object_get(r.doc, "evaluationInfo");
    assert_true(json_is_true(json_object_get(json_object_get(ei, "continuous"), "enabled")));
    assert_non_null(json_string_value(json_object_get(ei, "kith:reason")));
    json_decref(r.doc);
    r = put(e, ID_B, "b", "inSegment(\"" ID_A "\") and _acme.vip = true");
    assert_int_equal(r.status, 201);
    json_decref(r.doc);
    /* the same name twice */
    r = put(e, "00000000-0000-4000-8000-00000000000c", "a", "_acme.tier = \"x\"");
    assert_int_equal(r.status, 409);
    json_decref(r.errors);
    /* a used segment cannot go */
    struct del_ctx d = {.e = e, .id = ID_A};
    assert_int_equal(apply_call(e->apply, del_fn, &d, false), KITH_ECONFLICT);
    json_t *list = segdef_list(e, 1);
    assert_int_equal(json_array_size(list), 2);
    json_decref(list);
    engine_close(e);
    /* reload after a restart, in creation order */
    e = open_engine();
    json_t *doc = segdef_get(e, 1, ID_B);
    assert_non_null(doc);
    assert_string_equal(json_string_value(json_object_get(doc, "name")), "b");
    json_decref(doc);
    char id[SEGDEF_ID_LEN + 1];
    assert_true(segdef_find_name(e, 1, "a", id));
    assert_string_equal(id, ID_A);
    d.e = e;
    d.id = ID_B;
    assert_int_equal(apply_call(e->apply, del_fn, &d, false), 0);
    d.id = ID_A;
    assert_int_equal(apply_call(e->apply, del_fn, &d, false), 0);
    assert_null(segdef_get(e, 1, ID_A));
    assert_int_equal(apply_call(e->apply, del_fn, &d, false), KITH_ENOTFOUND);
    assert_string_equal(seg_status_name(SEG_EXITED), "exited");
    engine_close(e);
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    assert_int_equal(system(cmd), 0);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_definitions),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
