/* pql/json fuzz target. The first byte picks the direction:
 *   'T': the rest is PQL text. When it converts, tree → text → program must equal text → program
 *        (same disassembly), and the canonical text must convert to the same tree again.
 *   else: the rest is JSON (a pql/json tree). Conversion to text either fails with a message and a
 *        JSON pointer that resolves inside the tree (up to a missing last member), or gives text
 *        that parses, whose tree prints the same text again (a fixpoint). */
#include <assert.h>
#include <jansson.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "kith/kjson.h"
#include "kith/pql.h"

static char *explain(const pql_program *p)
{
    kith_buf b = {0};
    pql_explain(p, &b);
    kith_buf_append(&b, "", 1);
    return b.data;
}

/* The pointer resolves in tree, but for its last token, which may name a missing member. */
static void check_pointer(const json_t *tree, const char *path)
{
    assert(path[0] == 0 || path[0] == '/');
    const json_t *cur = tree;
    const char *p = path;
    while (*p == '/') {
        const char *e = strchr(p + 1, '/');
        size_t n = e ? (size_t)(e - p - 1) : strlen(p + 1);
        char tok[256];
        assert(n < sizeof tok);
        memcpy(tok, p + 1, n);
        tok[n] = 0;
        const json_t *next = json_is_object(cur)  ? json_object_get(cur, tok)
                             : json_is_array(cur) ? json_array_get(cur, strtoul(tok, NULL, 10))
                                                  : NULL;
        if (!e) return; /* the last token may be missing */
        assert(next);
        cur = next;
        p = e;
    }
}

static void text_case(const char *text, size_t len)
{
    json_t *tree = NULL;
    pql_error err;
    if (pql_text_to_json(text, len, &tree, &err)) {
        assert(err.line >= 1 && err.column >= 1 && err.message[0]);
        return;
    }
    char *back = NULL;
    pql_json_error jerr;
    int rc = pql_json_to_text(tree, &back, &jerr);
    assert(rc == 0 || rc == KITH_ETOOLARGE);
    if (rc == 0) {
        pql_program *a = NULL, *b = NULL;
        int ra = pql_compile(text, len, NULL, &a, &err);
        int rb = pql_compile(back, strlen(back), NULL, &b, &err);
        if (ra == 0 && rb == 0) {
            char *x = explain(a), *y = explain(b);
            assert(strcmp(x, y) == 0);
            free(x);
            free(y);
        }
        json_t *again = NULL;
        if (pql_text_to_json(back, strlen(back), &again, &err) == 0) {
            assert(json_equal(tree, again));
            json_decref(again);
        }
        pql_program_free(a);
        pql_program_free(b);
        free(back);
    }
    json_decref(tree);
}

static void json_case(const char *data, size_t len)
{
    kjson_error ke;
    json_t *tree = kjson_parse(data, len, 2 * PQL_JSON_MAX_DEPTH + 8, NULL, &ke);
    if (!tree) return;
    char *text = NULL;
    pql_json_error jerr;
    if (pql_json_to_text(tree, &text, &jerr)) {
        assert(jerr.message[0]);
        check_pointer(tree, jerr.path);
    } else {
        json_t *t2 = NULL;
        pql_error err;
        if (pql_text_to_json(text, strlen(text), &t2, &err) == 0) {
            char *text2 = NULL;
            if (pql_json_to_text(t2, &text2, &jerr) == 0) {
                assert(strcmp(text, text2) == 0);
                free(text2);
            }
            json_decref(t2);
        }
        pql_program *p = NULL;
        if (pql_compile_json(tree, NULL, &p, NULL, &jerr)) {
            assert(jerr.message[0]);
            check_pointer(tree, jerr.path);
        }
        pql_program_free(p);
        free(text);
    }
    json_decref(tree);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1 || size > 8192) return 0;
    if (data[0] == 'T')
        text_case((const char *)data + 1, size - 1);
    else
        json_case((const char *)data + 1, size - 1);
    return 0;
}
