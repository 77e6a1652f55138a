/* pql/json, AEP's tree form of PQL, in and out (kith/pql.h; docs/CONTRACT-NOTES.md "pql/json").
 *
 * Text → tree walks the parser's AST. Tree → program prints the tree as canonical PQL text and hands
 * that to the one parser and checker (no second implementation of the language); while printing it
 * records, for the token each AST node is anchored at (the parser's line/column of that node), the
 * JSON pointer of the tree node it came from, so a compile error names the JSON path at fault.
 *
 * Node shapes (AEP's where AEP documents one): literal {literalType, value}, fieldLookup {fieldName,
 * object}, parameterReference {position: 1}, varRef {varName}, fnApply {fnName, params} for
 * operators, functions (inSegment, date, if, ...), methods (receiver first: count, sum, contains,
 * ...) and time words; quantification {quantifier: some|all, variables: [varDecl {varName, from,
 * where}]}, set {variables} (select), fnCreate {params: [varDecl], body} (a lambda, at the root).
 * kith's own for what AEP does not document: filter {object, predicate}, occurs {value, ...tail},
 * let {varName, value, body}, aggregate {fnName, value, variables}, chain {events, timestampField,
 * steps: [{label, what, when}]}, fieldLookup {up: n} for '^'. */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "kith/kjson.h"
#include "pql_int.h"

static const char *const bin_names[] = {[B_AND] = "and", [B_OR] = "or",     [B_EQ] = "=",
                                        [B_NE] = "!=",   [B_LT] = "<",      [B_LE] = "<=",
                                        [B_GT] = ">",    [B_GE] = ">=",     [B_IN] = "in",
                                        [B_NOTIN] = "notIn", [B_LIKE] = "like", [B_ADD] = "+",
                                        [B_SUB] = "-",   [B_MUL] = "*",     [B_DIV] = "/",
                                        [B_MOD] = "%"};
static const char *const call_names[] = {"inSegment",    "date",        "if", "currentMonth",
                                         "currentYear", "currentDayOfMonth", NULL};
static const char *const method_names[] = {
    "count",      "sum",         "average",  "avg",      "min",           "max",
    "distinct",   "head",        "topN",     "bottomN",  "filter",        "exists",
    "forall",     "map",         "includes", "intersects", "subsetOf",    "supersetOf",
    "intersection", "get",       "keys",     "values",   "isNull",        "isNotNull",
    "equals",     "notEqualTo",  "contains", "doesNotContain", "startsWith", "doesNotStartWith",
    "endsWith",   "doesNotEndWith", "matches", "regexGroup", "getMonth",  "getYear",
    "getDayOfMonth", NULL};
static const char *const word_names[] = {"now", "today", "yesterday", "tomorrow", NULL};
static const char *const dir_names[] = {"before", "after", "from", NULL};
static const char *const agg_names[] = {"sum", "count", "min", "max", "avg", "average", NULL};
/* Words a declared variable cannot be named (the parser's reserved words). */
static const char *const reserved[] = {"and",    "or",     "not",    "in",    "notIn",  "like",
                                       "occurs", "let",    "select", "exists", "forall", "from",
                                       "where",  "over",   "before", "after", "between", NULL};
/* Words a bare field name or a variable reference cannot be: the parser reads them as keywords. */
static const char *const keywords[] = {
    "and",   "or",     "not",    "in",     "notIn",   "like",  "occurs", "let",   "select",
    "exists", "forall", "from",  "where",  "over",    "before", "after", "between", "true",
    "false", "null",   "now",    "today",  "yesterday", "tomorrow", NULL};

static int find(const char *const *v, const char *s)
{
    for (int i = 0; v[i]; i++)
        if (!strcmp(v[i], s)) return i;
    return -1;
}

static int bin_of(const char *s)
{
    for (int i = 0; i < (int)(sizeof bin_names / sizeof *bin_names); i++)
        if (!strcmp(bin_names[i], s)) return i;
    return -1;
}

/* ================================ text → tree ================================ */

typedef struct tj {
    const char *vars[PQL_MAX_NEST * 16];
    int nvars;
    int depth; /* nodes nested, bounded as trees are read (PQL_JSON_MAX_DEPTH) */
    int elem; /* implicit element scopes (filters, method arguments, CHAIN steps) entered */
    pql_error *err;
    int failed;
} tj;

static json_t *tj_fail(tj *t, const pql_node *n, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static json_t *tj_fail(tj *t, const pql_node *n, const char *fmt, ...)
{
    if (t->failed) return NULL;
    t->failed = 1;
    t->err->line = n->line;
    t->err->column = n->col;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(t->err->message, sizeof t->err->message, fmt, ap);
    va_end(ap);
    return NULL;
}

static bool tj_push(tj *t, const char *v)
{
    if (t->nvars == (int)(sizeof t->vars / sizeof *t->vars)) return false;
    t->vars[t->nvars++] = v;
    return true;
}

static bool tj_is_var(const tj *t, const char *name)
{
    for (int i = t->nvars - 1; i >= 0; i--)
        if (!strcmp(t->vars[i], name)) return true;
    return false;
}

static json_t *jnode(const char *type)
{
    json_t *o = json_object();
    json_object_set_new(o, "nodeType", json_string(type));
    return o;
}

static json_t *jfn(const char *name)
{
    json_t *o = jnode("fnApply");
    json_object_set_new(o, "fnName", json_string(name));
    json_object_set_new(o, "params", json_array());
    return o;
}

static json_t *jparam_ref(void)
{
    json_t *o = jnode("parameterReference");
    json_object_set_new(o, "position", json_integer(1));
    return o;
}

static json_t *to_json(tj *t, const pql_node *n);

/* Adds child (a new reference or NULL on failure) to o under key; false on failure. */
static bool put(json_t *o, const char *key, json_t *child)
{
    if (!child) return false;
    json_object_set_new(o, key, child);
    return true;
}
static bool add(json_t *arr, json_t *child)
{
    if (!child) return false;
    json_array_append_new(arr, child);
    return true;
}

static json_t *lit_scalar(const pql_val *v)
{
    switch (v->t) {
    case V_BOOL:
        return json_boolean(v->i);
    case V_INT:
        return json_integer(v->i);
    case V_DBL:
        return json_real(v->d);
    case V_STR:
        return json_stringn(v->s, v->len);
    default:
        return json_null();
    }
}

static json_t *occ_json(tj *t, const pql_occ *o, const pql_node *value)
{
    json_t *j = jnode("occurs");
    if (value && !put(j, "value", to_json(t, value))) goto bad;
    switch (o->kind) {
    case O_REL:
        json_object_set_new(j, "comparison", json_string(bin_names[o->cmp]));
        json_object_set_new(j, "amount", json_integer(o->n));
        json_object_set_new(j, "unit", json_string(pql_unit_names[o->unit]));
        json_object_set_new(j, "direction", json_string(dir_names[o->dir]));
        if (!put(j, "reference", to_json(t, o->ref1))) goto bad;
        break;
    case O_PLAIN:
        json_object_set_new(j, "direction", json_string(dir_names[o->dir]));
        if (!put(j, "reference", to_json(t, o->ref1))) goto bad;
        break;
    case O_ON:
        if (!put(j, "on", to_json(t, o->ref1))) goto bad;
        break;
    case O_PERIOD:
        json_object_set_new(j, "period",
                            json_string(o->shift < 0 ? "last" : o->shift > 0 ? "next" : "this"));
        json_object_set_new(j, "unit", json_string(pql_unit_names[o->unit]));
        break;
    default: {
        json_t *b = json_array();
        json_object_set_new(j, "between", b);
        if (!add(b, to_json(t, o->ref1)) || !add(b, to_json(t, o->ref2))) goto bad;
        break;
    }
    }
    return j;
bad:
    json_decref(j);
    return NULL;
}

static json_t *var_decl(tj *t, const pql_bind *b, int *pushed)
{
    json_t *v = jnode("varDecl");
    json_object_set_new(v, "varName", json_string(b->var));
    if (!put(v, "from", to_json(t, b->src))) goto bad;
    if (!tj_push(t, b->var)) {
        tj_fail(t, b->src, "too many variables");
        goto bad;
    }
    (*pushed)++;
    if (b->where && !put(v, "where", to_json(t, b->where))) goto bad;
    return v;
bad:
    json_decref(v);
    return NULL;
}

static json_t *to_json_node(tj *t, const pql_node *n);

/* A chain such as 1 + 1 + ... nests one node per operator: the tree keeps the bound trees are read
 * with, and the recursion stays shallow. */
static json_t *to_json(tj *t, const pql_node *n)
{
    if (t->failed) return NULL;
    if (++t->depth > PQL_JSON_MAX_DEPTH) {
        t->depth--;
        return tj_fail(t, n, "expected at most %d nested nodes (the bound of pql/json trees)",
                       PQL_JSON_MAX_DEPTH);
    }
    json_t *j = to_json_node(t, n);
    t->depth--;
    return j;
}

static json_t *to_json_node(tj *t, const pql_node *n)
{
    json_t *j = NULL;
    switch (n->kind) {
    case N_LIT: {
        if (n->val.t == V_DBL && !isfinite(n->val.d))
            return tj_fail(t, n, "expected a finite number (JSON has no infinity)");
        static const char *const types[] = {[V_MISSING] = "Null", [V_BOOL] = "Boolean",
                                            [V_INT] = "Integer", [V_DBL] = "Double",
                                            [V_STR] = "String"};
        j = jnode("literal");
        json_object_set_new(j, "literalType", json_string(n->val.t <= V_STR ? types[n->val.t] : "Null"));
        json_object_set_new(j, "value", lit_scalar(&n->val));
        return j;
    }
    case N_LIST: {
        bool lits = true;
        for (int i = 0; i < n->nkids; i++) {
            lits = lits && n->kids[i]->kind == N_LIT;
            if (n->kids[i]->kind == N_LIT && n->kids[i]->val.t == V_DBL &&
                !isfinite(n->kids[i]->val.d))
                return tj_fail(t, n->kids[i], "expected a finite number (JSON has no infinity)");
        }
        if (lits) {
            j = jnode("literal");
            json_object_set_new(j, "literalType", json_string("List"));
            json_t *a = json_array();
            for (int i = 0; i < n->nkids; i++)
                json_array_append_new(a, lit_scalar(&n->kids[i]->val));
            json_object_set_new(j, "value", a);
            return j;
        }
        j = jfn("list");
        json_t *ps = json_object_get(j, "params");
        for (int i = 0; i < n->nkids; i++)
            if (!add(ps, to_json(t, n->kids[i]))) goto bad;
        return j;
    }
    case N_NAME:
        if (!n->up && (tj_is_var(t, n->name) || !strcmp(n->name, "xEvent"))) {
            j = jnode("varRef");
            json_object_set_new(j, "varName", json_string(n->name));
            return j;
        }
        j = jnode("fieldLookup");
        json_object_set_new(j, "fieldName", json_string(n->name));
        if (n->up)
            json_object_set_new(j, "up", json_integer(n->up));
        else if (!t->elem)
            json_object_set_new(j, "object", jparam_ref());
        return j;
    case N_PARAM:
        return jparam_ref();
    case N_FIELD:
        j = jnode("fieldLookup");
        json_object_set_new(j, "fieldName", json_string(n->name));
        if (!put(j, "object", to_json(t, n->a))) goto bad;
        return j;
    case N_CALL:
        if (find(call_names, n->name) < 0 &&
            !(n->nkids == 0 && (!strcmp(n->name, "now") || !strcmp(n->name, "today"))))
            return tj_fail(t, n,
                           "unknown function '%s' (expected inSegment, date, if, currentMonth, "
                           "currentYear or currentDayOfMonth)",
                           n->name);
        j = jfn(n->name);
        for (int i = 0; i < n->nkids; i++)
            if (!add(json_object_get(j, "params"), to_json(t, n->kids[i]))) goto bad;
        return j;
    case N_METHOD: {
        if (find(method_names, n->name) < 0)
            return tj_fail(t, n, "unknown method '%s' (expected a PQL function such as count, sum, "
                                 "contains, get)",
                           n->name);
        j = jfn(n->name);
        json_t *ps = json_object_get(j, "params");
        if (!add(ps, to_json(t, n->a))) goto bad;
        t->elem++;
        for (int i = 0; i < n->nkids; i++)
            if (!add(ps, to_json(t, n->kids[i]))) {
                t->elem--;
                goto bad;
            }
        t->elem--;
        return j;
    }
    case N_FILTER:
        j = jnode("filter");
        if (!put(j, "object", to_json(t, n->a))) goto bad;
        t->elem++;
        bool ok = put(j, "predicate", to_json(t, n->b));
        t->elem--;
        if (!ok) goto bad;
        return j;
    case N_BIN: {
        j = jfn(bin_names[n->op]);
        json_t *ps = json_object_get(j, "params");
        if (n->op == B_AND || n->op == B_OR) {
            /* a and b and c: one fnApply with the left spine flattened (the parser folds left) */
            int k = 0;
            const pql_node *x = n;
            for (; x->kind == N_BIN && x->op == n->op; x = x->a)
                k++;
            const pql_node **spine = kith_xmalloc(sizeof *spine * (size_t)k);
            x = n;
            for (int i = 0; i < k; i++, x = x->a)
                spine[i] = x->b;
            bool okl = add(ps, to_json(t, x));
            while (okl && k--)
                okl = add(ps, to_json(t, spine[k]));
            free(spine);
            if (!okl) goto bad;
            return j;
        }
        if (!add(ps, to_json(t, n->a)) || !add(ps, to_json(t, n->b))) goto bad;
        return j;
    }
    case N_NOT:
    case N_NEG:
        j = jfn(n->kind == N_NOT ? "not" : "-");
        if (!add(json_object_get(j, "params"), to_json(t, n->a))) goto bad;
        return j;
    case N_OCCURS:
        return occ_json(t, n->occ, n->a);
    case N_TIMEWORD:
        return jfn(word_names[n->op]);
    case N_LET: {
        j = jnode("let");
        json_object_set_new(j, "varName", json_string(n->name));
        if (!put(j, "value", to_json(t, n->a))) goto bad;
        if (!tj_push(t, n->name)) {
            tj_fail(t, n, "too many variables");
            goto bad;
        }
        bool okb = put(j, "body", to_json(t, n->b));
        t->nvars--;
        if (!okb) goto bad;
        return j;
    }
    case N_QUANT:
    case N_AGGOVER: {
        if (n->kind == N_AGGOVER) {
            j = jnode("aggregate");
            json_object_set_new(j, "fnName", json_string(n->name));
        } else if (n->quant == 2) {
            j = jnode("set");
        } else {
            j = jnode("quantification");
            json_object_set_new(j, "quantifier", json_string(n->quant ? "all" : "some"));
        }
        json_t *vs = json_array();
        json_object_set_new(j, "variables", vs);
        int pushed = 0;
        bool okq = true;
        for (int i = 0; i < n->nbinds && okq; i++)
            okq = add(vs, var_decl(t, &n->binds[i], &pushed));
        if (okq && n->kind == N_AGGOVER) okq = put(j, "value", to_json(t, n->a));
        t->nvars -= pushed;
        if (!okq) goto bad;
        return j;
    }
    case N_CHAIN: {
        j = jnode("chain");
        if (!put(j, "events", to_json(t, n->a))) goto bad;
        json_object_set_new(j, "timestampField", json_string(n->name));
        json_t *st = json_array();
        json_object_set_new(j, "steps", st);
        for (int i = 0; i < n->nsteps; i++) {
            const pql_chain_step *s = &n->steps[i];
            json_t *sj = json_object();
            json_array_append_new(st, sj);
            json_object_set_new(sj, "label", json_string(s->label));
            t->elem++;
            bool okw = put(sj, "what", to_json(t, s->what));
            t->elem--;
            if (!okw) goto bad;
            if (s->when) {
                int base = t->nvars;
                for (int k = 0; k < i; k++)
                    tj_push(t, n->steps[k].label);
                okw = put(sj, "when", occ_json(t, s->when, NULL));
                t->nvars = base;
                if (!okw) goto bad;
            }
        }
        return j;
    }
    }
    return tj_fail(t, n, "internal: unknown node");
bad:
    json_decref(j);
    return NULL;
}

/* Offset of the first byte of text that is not valid UTF-8 (overlong forms, surrogates and code
 * points above U+10FFFF included), or len. */
static size_t utf8_invalid_at(const unsigned char *s, size_t len)
{
    size_t i = 0;
    while (i < len) {
        unsigned c = s[i];
        size_t n = c < 0x80 ? 1 : (c & 0xe0) == 0xc0 ? 2 : (c & 0xf0) == 0xe0 ? 3 : (c & 0xf8) == 0xf0 ? 4 : 0;
        if (!n || i + n > len || c == 0) return i;
        uint32_t cp = n == 1 ? c : n == 2 ? c & 0x1f : n == 3 ? c & 0x0f : c & 0x07;
        for (size_t k = 1; k < n; k++) {
            if ((s[i + k] & 0xc0) != 0x80) return i;
            cp = cp << 6 | (s[i + k] & 0x3f);
        }
        if ((n == 2 && cp < 0x80) || (n == 3 && cp < 0x800) || (n == 4 && cp < 0x10000) ||
            cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
            return i;
        i += n;
    }
    return len;
}

int pql_text_to_json(const char *text, size_t len, json_t **out, pql_error *err)
{
    pql_error scratch;
    if (!err) err = &scratch;
    memset(err, 0, sizeof *err);
    *out = NULL;
    size_t bad = len <= PQL_MAX_TEXT ? utf8_invalid_at((const unsigned char *)text, len) : len;
    if (bad < len) {
        /* JSON text is UTF-8: names and strings of the tree must be */
        err->line = 1;
        size_t ls = 0;
        for (size_t i = 0; i < bad; i++)
            if (text[i] == '\n') err->line++, ls = i + 1;
        err->column = (int)(bad - ls) + 1;
        snprintf(err->message, sizeof err->message,
                 "expected UTF-8 text (a pql/json tree holds only UTF-8 names and strings)");
        return KITH_EINVAL;
    }
    pql_arena a = {0};
    pql_parse_out po;
    int rc = pql_parse(text, len, &a, &po, err);
    if (rc) {
        pql_arena_free(&a);
        return rc;
    }
    tj t = {.err = err};
    if (po.lambda_param) tj_push(&t, po.lambda_param);
    json_t *body = to_json(&t, po.root);
    if (body && po.lambda_param) {
        json_t *f = jnode("fnCreate");
        json_t *ps = json_array();
        json_t *v = jnode("varDecl");
        json_object_set_new(v, "varName", json_string(po.lambda_param));
        json_array_append_new(ps, v);
        json_object_set_new(f, "params", ps);
        json_object_set_new(f, "body", body);
        body = f;
    }
    pql_arena_free(&a);
    if (!body) return KITH_EINVAL;
    *out = body;
    return 0;
}

/* ================================ tree → text ================================ */

typedef struct pmark {
    size_t off;
    char *path;
} pmark;

typedef struct tp {
    kith_buf out;
    const char *vars[2048];
    int nvars;
    int elem;
    int depth, nodes;
    char path[4096];
    size_t plen;
    pmark *marks;
    int nmarks, capmarks;
    pql_json_error *err;
    int rc;
} tp;

static int tp_fail(tp *t, const char *key, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int tp_fail(tp *t, const char *key, const char *fmt, ...)
{
    if (t->rc) return t->rc;
    t->rc = KITH_EINVAL;
    snprintf(t->err->path, sizeof t->err->path, "%.*s%s%s", (int)t->plen, t->path, key ? "/" : "",
             key ? key : "");
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(t->err->message, sizeof t->err->message, fmt, ap);
    va_end(ap);
    return t->rc;
}

static size_t path_key(tp *t, const char *k)
{
    size_t save = t->plen;
    int n = snprintf(t->path + t->plen, sizeof t->path - t->plen, "/%s", k);
    if (n > 0 && (size_t)n < sizeof t->path - t->plen) t->plen += (size_t)n;
    return save;
}
static size_t path_idx(tp *t, size_t i)
{
    size_t save = t->plen;
    int n = snprintf(t->path + t->plen, sizeof t->path - t->plen, "/%zu", i);
    if (n > 0 && (size_t)n < sizeof t->path - t->plen) t->plen += (size_t)n;
    return save;
}

static void mark(tp *t)
{
    if (t->nmarks == t->capmarks) {
        t->capmarks = t->capmarks ? t->capmarks * 2 : 64;
        t->marks = kith_xrealloc(t->marks, sizeof *t->marks * (size_t)t->capmarks);
    }
    t->marks[t->nmarks].off = t->out.len;
    t->marks[t->nmarks].path = kith_xstrndup(t->path, t->plen);
    t->nmarks++;
}

static void puts_(tp *t, const char *s)
{
    kith_buf_puts(&t->out, s);
}

static bool tp_push(tp *t, const char *v)
{
    if (t->nvars == (int)(sizeof t->vars / sizeof *t->vars)) {
        tp_fail(t, NULL, "more than %d variables", (int)(sizeof t->vars / sizeof *t->vars));
        return false;
    }
    t->vars[t->nvars++] = v;
    return true;
}
static bool tp_is_var(const tp *t, const char *name)
{
    for (int i = t->nvars - 1; i >= 0; i--)
        if (!strcmp(t->vars[i], name)) return true;
    return false;
}

static const char *node_type(const json_t *n)
{
    return json_string_value(json_object_get(n, "nodeType"));
}

/* A PQL identifier: a letter, '_' or a non-ASCII byte, then those or digits. */
static bool is_ident(const char *s)
{
    if (!s || !*s) return false;
    for (const unsigned char *p = (const unsigned char *)s; *p; p++) {
        bool ok = (*p >= 'a' && *p <= 'z') || (*p >= 'A' && *p <= 'Z') || *p == '_' || *p >= 0x80 ||
                  (p != (const unsigned char *)s && *p >= '0' && *p <= '9');
        if (!ok) return false;
    }
    return true;
}

/* A string member that must be an identifier. */
static const char *ident_member(tp *t, const json_t *n, const char *key, const char *what)
{
    const char *s = json_string_value(json_object_get(n, key));
    if (!is_ident(s)) {
        tp_fail(t, key, "expected %s: a name of letters, digits and '_' (not starting with a digit)",
                what);
        return NULL;
    }
    return s;
}

static void put_string(tp *t, const char *s, size_t n)
{
    kith_buf *b = &t->out;
    kith_buf_append(b, "\"", 1);
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        switch (c) {
        case '"':
            kith_buf_append(b, "\\\"", 2);
            break;
        case '\\':
            kith_buf_append(b, "\\\\", 2);
            break;
        case '\n':
            kith_buf_append(b, "\\n", 2);
            break;
        case '\t':
            kith_buf_append(b, "\\t", 2);
            break;
        case '\r':
            kith_buf_append(b, "\\r", 2);
            break;
        default:
            if (c < 0x20)
                kith_buf_printf(b, "\\u%04x", c);
            else
                kith_buf_append(b, &s[i], 1);
        }
    }
    kith_buf_append(b, "\"", 1);
}

static void put_double(tp *t, double d)
{
    char buf[40];
    snprintf(buf, sizeof buf, "%.15g", d);
    if (strtod(buf, NULL) != d) snprintf(buf, sizeof buf, "%.17g", d);
    if (!strpbrk(buf, ".eE")) strcat(buf, ".0");
    puts_(t, buf);
}

/* A scalar JSON value as a PQL literal; want: 'S'tring 'I'nteger 'D'ouble 'B'oolean 'N'ull or 0
 * (by the JSON type). */
static int put_scalar(tp *t, const json_t *v, int want, const char *key)
{
    if (!want)
        want = json_is_string(v)    ? 'S'
               : json_is_integer(v) ? 'I'
               : json_is_real(v)    ? 'D'
               : json_is_boolean(v) ? 'B'
               : json_is_null(v)    ? 'N'
                                    : 0;
    switch (want) {
    case 'S':
        if (!json_is_string(v)) return tp_fail(t, key, "expected a string");
        if (memchr(json_string_value(v), 0, json_string_length(v)))
            return tp_fail(t, key, "a NUL character cannot be in a PQL string");
        put_string(t, json_string_value(v), json_string_length(v));
        return 0;
    case 'I':
        if (!json_is_integer(v)) return tp_fail(t, key, "expected an integer");
        if (json_integer_value(v) == INT64_MIN)
            return tp_fail(t, key, "integer out of range (expected -2^63+1 .. 2^63-1)");
        kith_buf_printf(&t->out, "%lld", (long long)json_integer_value(v));
        return 0;
    case 'D':
        if (!json_is_number(v)) return tp_fail(t, key, "expected a number");
        put_double(t, json_number_value(v));
        return 0;
    case 'B':
        if (!json_is_boolean(v)) return tp_fail(t, key, "expected true or false");
        puts_(t, json_is_true(v) ? "true" : "false");
        return 0;
    case 'N':
        if (v && !json_is_null(v)) return tp_fail(t, key, "expected null");
        puts_(t, "null");
        return 0;
    default:
        return tp_fail(t, key, "expected a string, a number, true, false or null");
    }
}

/* literalType → the kind of scalar ('S', 'I', 'D', 'B', 'N'), 'L' for a list, 'P' for the profile
 * object (AEP's XDMObject "profile"), 0 when absent, -1 when unknown. */
static int literal_kind(const char *lt)
{
    static const struct {
        const char *name;
        int k;
    } m[] = {{"string", 'S'}, {"integer", 'I'}, {"long", 'I'},    {"int", 'I'},
             {"double", 'D'}, {"number", 'D'},  {"decimal", 'D'}, {"float", 'D'},
             {"boolean", 'B'}, {"null", 'N'},   {"list", 'L'},    {"array", 'L'},
             {"xdmobject", 'P'}};
    if (!lt) return 0;
    for (size_t i = 0; i < sizeof m / sizeof *m; i++)
        if (!strcasecmp(m[i].name, lt)) return m[i].k;
    return -1;
}

static bool is_profile_object(const json_t *o)
{
    const char *nt = node_type(o);
    if (!nt) return false;
    if (!strcmp(nt, "parameterReference")) return true;
    return !strcmp(nt, "literal") &&
           literal_kind(json_string_value(json_object_get(o, "literalType"))) == 'P';
}

/* Precedence levels: 0 let/select/exists/forall/aggregate (they extend to the right as far as they
 * can), 1 or, 2 and, 3 not, 4 comparisons/in/like/occurs, 5 + -, 6 * / %, 7 unary minus and
 * negative numbers, 8 postfix and primaries. */
static int level_of(const json_t *n)
{
    const char *nt = node_type(n);
    if (!nt) return 8;
    if (!strcmp(nt, "fnApply")) {
        const char *f = json_string_value(json_object_get(n, "fnName"));
        size_t np = json_array_size(json_object_get(n, "params"));
        if (!f) return 8;
        if (!strcmp(f, "or")) return 1;
        if (!strcmp(f, "and")) return 2;
        if (!strcmp(f, "not")) return 3;
        if (!strcmp(f, "-") && np == 1) return 7;
        int b = bin_of(f);
        if (b < 0) return 8;
        return b >= B_MUL ? 6 : b >= B_ADD ? 5 : 4;
    }
    if (!strcmp(nt, "literal")) {
        const json_t *v = json_object_get(n, "value");
        if ((json_is_integer(v) && json_integer_value(v) < 0) ||
            (json_is_real(v) && (json_real_value(v) < 0 || (json_real_value(v) == 0 &&
                                                            1 / json_real_value(v) < 0))))
            return 7;
        return 8;
    }
    if (!strcmp(nt, "occurs")) return 4;
    if (!strcmp(nt, "let") || !strcmp(nt, "quantification") || !strcmp(nt, "set") ||
        !strcmp(nt, "aggregate"))
        return 0;
    return 8;
}

static int pr(tp *t, const json_t *n, int need);

/* Prints member key of n at level need. */
static int pr_member(tp *t, const json_t *n, const char *key, int need)
{
    const json_t *c = json_object_get(n, key);
    if (!json_is_object(c)) return tp_fail(t, key, "expected a pql/json node (an object)");
    size_t save = path_key(t, key);
    int rc = pr(t, c, need);
    t->plen = save;
    return rc;
}

/* Prints element i of the array member key of n. */
static int pr_elem(tp *t, const json_t *arr, const char *key, size_t i, int need)
{
    const json_t *c = json_array_get(arr, i);
    size_t save = path_key(t, key);
    path_idx(t, i);
    int rc = json_is_object(c) ? pr(t, c, need)
                               : tp_fail(t, NULL, "expected a pql/json node (an object)");
    t->plen = save;
    return rc;
}

static const json_t *array_member(tp *t, const json_t *n, const char *key, size_t lo, size_t hi)
{
    const json_t *a = json_object_get(n, key);
    if (!json_is_array(a) || json_array_size(a) < lo || json_array_size(a) > hi) {
        if (lo == hi)
            tp_fail(t, key, "expected an array of %zu", lo);
        else
            tp_fail(t, key, "expected an array of %zu to %zu", lo, hi);
        return NULL;
    }
    return a;
}

static int pr_timeref(tp *t, const json_t *n, const char *key, size_t idx)
{
    const json_t *c = json_object_get(n, key);
    size_t save = path_key(t, key);
    if (idx != (size_t)-1) {
        c = json_array_get(c, idx);
        path_idx(t, idx);
    }
    int rc = json_is_object(c) ? pr(t, c, 8)
                               : tp_fail(t, NULL, "expected a time: a pql/json node (an object)");
    t->plen = save;
    return rc;
}

static int unit_member(tp *t, const json_t *n)
{
    const char *u = json_string_value(json_object_get(n, "unit"));
    int unit = u ? pql_unit_parse(u, strlen(u)) : -1;
    if (unit < 0)
        return tp_fail(t, "unit", "expected a time unit (millisecond, second, minute, hour, day, "
                                  "week, month, year, decade, century, millennium)"),
               -1;
    return unit;
}

/* The tail of an occurs node (after 'occurs', or inside WHEN(...)). */
static int pr_tail(tp *t, const json_t *n)
{
    if (json_object_get(n, "between")) {
        if (!array_member(t, n, "between", 2, 2)) return t->rc;
        puts_(t, "between ");
        if (pr_timeref(t, n, "between", 0)) return t->rc;
        puts_(t, " and ");
        return pr_timeref(t, n, "between", 1);
    }
    if (json_object_get(n, "period")) {
        const char *p = json_string_value(json_object_get(n, "period"));
        if (!p || (strcmp(p, "this") && strcmp(p, "last") && strcmp(p, "next")))
            return tp_fail(t, "period", "expected \"this\", \"last\" or \"next\"");
        int u = unit_member(t, n);
        if (u < 0) return t->rc;
        kith_buf_printf(&t->out, "%s %s", p, pql_unit_names[u]);
        return 0;
    }
    if (json_object_get(n, "on")) {
        puts_(t, "on ");
        return pr_timeref(t, n, "on", (size_t)-1);
    }
    const char *dir = json_string_value(json_object_get(n, "direction"));
    if (json_object_get(n, "comparison")) {
        const char *c = json_string_value(json_object_get(n, "comparison"));
        int b = c ? bin_of(c) : -1;
        if (b < B_EQ || b > B_GE)
            return tp_fail(t, "comparison", "expected one of = != < <= > >=");
        const json_t *amt = json_object_get(n, "amount");
        if (!json_is_integer(amt) || json_integer_value(amt) < 0)
            return tp_fail(t, "amount", "expected a non-negative integer count of units");
        int u = unit_member(t, n);
        if (u < 0) return t->rc;
        if (!dir || find(dir_names, dir) < 0)
            return tp_fail(t, "direction", "expected \"before\", \"after\" or \"from\"");
        static const char *const plural[] = {"milliseconds", "seconds", "minutes", "hours",
                                             "days",         "weeks",   "months",  "years",
                                             "decades",      "centuries", "millennia"};
        kith_buf_printf(&t->out, "%s %lld %s %s ", c, (long long)json_integer_value(amt),
                        json_integer_value(amt) == 1 ? pql_unit_names[u] : plural[u], dir);
        return pr_timeref(t, n, "reference", (size_t)-1);
    }
    if (dir) {
        if (strcmp(dir, "before") && strcmp(dir, "after"))
            return tp_fail(t, "direction", "expected \"before\" or \"after\"");
        kith_buf_printf(&t->out, "%s ", dir);
        return pr_timeref(t, n, "reference", (size_t)-1);
    }
    return tp_fail(t, NULL,
                   "expected an occurs condition: \"between\", \"period\", \"on\", \"comparison\" "
                   "(with amount, unit, direction, reference) or \"direction\" with \"reference\"");
}

static int pr_field(tp *t, const json_t *n)
{
    const char *name = ident_member(t, n, "fieldName", "a field name");
    if (!name) return t->rc;
    const json_t *obj = json_object_get(n, "object");
    const json_t *up = json_object_get(n, "up");
    if (up && obj) return tp_fail(t, "up", "\"up\" (a '^' scope) cannot be used with \"object\"");
    bool kw = find(keywords, name) >= 0;
    bool agg = find(agg_names, name) >= 0;
    bool hidden = tp_is_var(t, name) || !strcmp(name, "xEvent");
    if (up) {
        if (!json_is_integer(up) || json_integer_value(up) < 0 || json_integer_value(up) > 64)
            return tp_fail(t, "up", "expected the number of scopes to climb (0..64)");
        int k = (int)json_integer_value(up);
        if (k > 0) {
            mark(t);
            for (int i = 0; i < k; i++)
                puts_(t, "^");
            puts_(t, name);
            return 0;
        }
    }
    if (obj && !is_profile_object(obj)) {
        if (!json_is_object(obj)) return tp_fail(t, "object", "expected a pql/json node (an object)");
        if (pr_member(t, n, "object", 8)) return t->rc;
        puts_(t, ".");
        mark(t);
        puts_(t, name);
        return 0;
    }
    if (obj || !t->elem) {
        /* a profile field: bare at the top level when nothing hides it, else through $1 */
        if (t->elem || kw || hidden) {
            puts_(t, "$1.");
            mark(t);
            puts_(t, name);
            return 0;
        }
    } else if (kw || hidden) {
        return tp_fail(t, "fieldName",
                       "the field '%s' of the current element cannot be named here (%s)", name,
                       kw ? "it is a PQL keyword" : "a variable of that name hides it");
    }
    mark(t);
    if (agg) {
        kith_buf_printf(&t->out, "(%s)", name);
        return 0;
    }
    puts_(t, name);
    return 0;
}

static int pr_literal(tp *t, const json_t *n)
{
    const char *lt = json_string_value(json_object_get(n, "literalType"));
    const json_t *v = json_object_get(n, "value");
    int k = literal_kind(lt);
    if (k < 0 || (json_object_get(n, "literalType") && !lt))
        return tp_fail(t, "literalType",
                       "expected String, Integer, Double, Boolean, Null, List or XDMObject");
    if (k == 'P') {
        if (!json_is_string(v) || strcmp(json_string_value(v), "profile"))
            return tp_fail(t, "value", "expected \"profile\" (the only XDMObject PQL reads)");
        mark(t);
        puts_(t, "$1");
        return 0;
    }
    if (!v && k != 'N') return tp_fail(t, NULL, "expected a \"value\"");
    if (k == 'L' || (!k && json_is_array(v))) {
        if (!json_is_array(v)) return tp_fail(t, "value", "expected an array");
        mark(t);
        puts_(t, "[");
        size_t save = path_key(t, "value");
        for (size_t i = 0; i < json_array_size(v); i++) {
            if (i) puts_(t, ", ");
            size_t s2 = path_idx(t, i);
            int rc = put_scalar(t, json_array_get(v, i), 0, NULL);
            t->plen = s2;
            if (rc) {
                t->plen = save;
                return rc;
            }
        }
        t->plen = save;
        puts_(t, "]");
        return 0;
    }
    mark(t);
    return put_scalar(t, v, k, "value");
}

/* varDecl i of arr: "X from src [where w]"; pushes X (counted in *pushed). */
static int pr_binding(tp *t, const json_t *vs, size_t i, int *pushed, bool where_ok)
{
    const json_t *v = json_array_get(vs, i);
    size_t save = path_key(t, "variables");
    path_idx(t, i);
    if (!json_is_object(v)) {
        tp_fail(t, NULL, "expected a varDecl {varName, from, where}");
        goto out;
    }
    const char *name = ident_member(t, v, "varName", "a variable name");
    if (!name) goto out;
    if (find(reserved, name) >= 0) {
        tp_fail(t, "varName", "'%s' is a PQL keyword", name);
        goto out;
    }
    const char *src = json_object_get(v, "from") ? "from" : "range";
    kith_buf_printf(&t->out, "%s from ", name);
    if (pr_member(t, v, src, 8)) goto out;
    if (!tp_push(t, name)) goto out;
    (*pushed)++;
    if (json_object_get(v, "where")) {
        if (!where_ok) {
            tp_fail(t, "where", "not allowed here");
            goto out;
        }
        puts_(t, " where ");
        if (pr_member(t, v, "where", 1)) goto out;
    }
out:
    t->plen = save;
    return t->rc;
}

static int pr_fnapply(tp *t, const json_t *n)
{
    const char *f = json_string_value(json_object_get(n, "fnName"));
    const json_t *ps = json_object_get(n, "params");
    if (!f) return tp_fail(t, "fnName", "expected the function's name");
    if (!json_is_array(ps)) return tp_fail(t, "params", "expected an array of pql/json nodes");
    size_t np = json_array_size(ps);
    int b = bin_of(f);
    if (b == B_AND || b == B_OR) {
        if (np < 2 || np > 4096) return tp_fail(t, "params", "expected 2 to 4096 operands");
        int lv = b == B_AND ? 2 : 1;
        for (size_t i = 0; i < np; i++) {
            if (i) {
                puts_(t, " ");
                mark(t);
                kith_buf_printf(&t->out, "%s ", f);
            }
            if (pr_elem(t, ps, "params", i, i ? lv + 1 : lv)) return t->rc;
        }
        return 0;
    }
    if (!strcmp(f, "not")) {
        if (np != 1) return tp_fail(t, "params", "expected one operand");
        mark(t);
        puts_(t, "not ");
        return pr_elem(t, ps, "params", 0, 3);
    }
    if (b == B_SUB && np == 1) {
        const json_t *x = json_array_get(ps, 0);
        const json_t *xv = json_object_get(x, "value");
        int xk = literal_kind(json_string_value(json_object_get(x, "literalType")));
        const char *xt = node_type(x);
        if (xt && !strcmp(xt, "literal") && json_is_number(xv) &&
            (xk == 'I' || xk == 'D' || xk == 0) && !(json_is_integer(xv) && xk == 'D')) {
            /* the parser folds '-' into a number: print the folded number */
            size_t save = path_key(t, "params");
            path_idx(t, 0);
            mark(t);
            if (json_is_integer(xv) && json_integer_value(xv) != INT64_MIN)
                kith_buf_printf(&t->out, "%lld", -(long long)json_integer_value(xv));
            else if (json_is_real(xv))
                put_double(t, -json_real_value(xv));
            else
                tp_fail(t, "value", "integer out of range (expected -2^63+1 .. 2^63-1)");
            t->plen = save;
            return t->rc;
        }
        mark(t);
        puts_(t, "-");
        return pr_elem(t, ps, "params", 0, 8);
    }
    if (b >= 0) {
        if (np != 2) return tp_fail(t, "params", "expected two operands");
        int l = b >= B_MUL ? 6 : b >= B_ADD ? 5 : 5, r = b >= B_MUL ? 7 : b >= B_ADD ? 6 : 5;
        if (b == B_LIKE) {
            const json_t *pat = json_array_get(ps, 1);
            const char *pt = node_type(pat);
            if (!pt || strcmp(pt, "literal") || !json_is_string(json_object_get(pat, "value"))) {
                size_t save = path_key(t, "params");
                path_idx(t, 1);
                tp_fail(t, NULL, "expected a string literal pattern after 'like'");
                t->plen = save;
                return t->rc;
            }
        }
        if (pr_elem(t, ps, "params", 0, l)) return t->rc;
        puts_(t, " ");
        mark(t);
        kith_buf_printf(&t->out, "%s ", f);
        return pr_elem(t, ps, "params", 1, r);
    }
    int w = find(word_names, f);
    if (w >= 0) {
        if (np) return tp_fail(t, "params", "expected no parameters");
        mark(t);
        puts_(t, f);
        return 0;
    }
    if (!strcmp(f, "list")) {
        mark(t);
        puts_(t, "[");
        for (size_t i = 0; i < np; i++) {
            if (i) puts_(t, ", ");
            if (pr_elem(t, ps, "params", i, 5)) return t->rc;
        }
        puts_(t, "]");
        return 0;
    }
    if (find(call_names, f) >= 0) {
        if (np > 16) return tp_fail(t, "params", "expected at most 16 arguments");
        mark(t);
        kith_buf_printf(&t->out, "%s(", f);
        for (size_t i = 0; i < np; i++) {
            if (i) puts_(t, ", ");
            if (pr_elem(t, ps, "params", i, 0)) return t->rc;
        }
        puts_(t, ")");
        return 0;
    }
    if (find(method_names, f) >= 0) {
        if (np < 1 || np > 17)
            return tp_fail(t, "params", "expected the receiver and at most 16 arguments");
        if (pr_elem(t, ps, "params", 0, 8)) return t->rc;
        puts_(t, ".");
        mark(t);
        kith_buf_printf(&t->out, "%s(", f);
        t->elem++;
        for (size_t i = 1; i < np; i++) {
            if (i > 1) puts_(t, ", ");
            if (pr_elem(t, ps, "params", i, 0)) break;
        }
        t->elem--;
        if (t->rc) return t->rc;
        puts_(t, ")");
        return 0;
    }
    return tp_fail(t, "fnName",
                   "unknown function '%s' (expected an operator, a function such as inSegment, "
                   "date, if, a method such as count, sum, contains, or now, today, yesterday, "
                   "tomorrow)",
                   f);
}

static int pr(tp *t, const json_t *n, int need)
{
    if (t->rc) return t->rc;
    if (++t->nodes > PQL_JSON_MAX_NODES) {
        tp_fail(t, NULL, "more than %d nodes", PQL_JSON_MAX_NODES);
        return t->rc = KITH_ETOOLARGE;
    }
    if (++t->depth > PQL_JSON_MAX_DEPTH) {
        tp_fail(t, NULL, "nested deeper than %d nodes", PQL_JSON_MAX_DEPTH);
        return t->rc = KITH_ETOOLARGE;
    }
    if (t->out.len > PQL_MAX_TEXT) {
        tp_fail(t, NULL, "the expression's text form exceeds %d bytes", PQL_MAX_TEXT);
        return t->rc = KITH_ETOOLARGE;
    }
    const char *nt = node_type(n);
    int lv = level_of(n);
    bool paren = lv < need;
    if (paren) puts_(t, "(");
    if (!nt) {
        tp_fail(t, "nodeType", "expected a nodeType");
    } else if (!strcmp(nt, "literal")) {
        pr_literal(t, n);
    } else if (!strcmp(nt, "fieldLookup")) {
        pr_field(t, n);
    } else if (!strcmp(nt, "parameterReference")) {
        const json_t *pos = json_object_get(n, "position");
        if (pos && (!json_is_integer(pos) || json_integer_value(pos) != 1))
            tp_fail(t, "position", "expected 1 (the profile; there is one parameter)");
        mark(t);
        puts_(t, "$1");
    } else if (!strcmp(nt, "varRef")) {
        const char *v = ident_member(t, n, "varName", "a variable name");
        if (v && find(keywords, v) >= 0)
            tp_fail(t, "varName", "'%s' is a PQL keyword: a variable of that name cannot be used", v);
        else if (v && !tp_is_var(t, v) && strcmp(v, "xEvent"))
            tp_fail(t, "varName",
                    "unknown variable '%s' (expected xEvent or a variable of an enclosing let, "
                    "select, exists, forall, lambda or CHAIN step)",
                    v);
        if (v && !t->rc) {
            mark(t);
            puts_(t, v);
        }
    } else if (!strcmp(nt, "fnApply")) {
        pr_fnapply(t, n);
    } else if (!strcmp(nt, "filter")) {
        if (!pr_member(t, n, "object", 8)) {
            mark(t);
            puts_(t, "[");
            t->elem++;
            pr_member(t, n, "predicate", 0);
            t->elem--;
            puts_(t, "]");
        }
    } else if (!strcmp(nt, "occurs")) {
        if (!pr_member(t, n, "value", 5)) {
            puts_(t, " ");
            mark(t);
            puts_(t, "occurs ");
            pr_tail(t, n);
        }
    } else if (!strcmp(nt, "let")) {
        const char *v = ident_member(t, n, "varName", "a variable name");
        if (v && find(reserved, v) >= 0) tp_fail(t, "varName", "'%s' is a PQL keyword", v);
        if (!t->rc) {
            mark(t);
            kith_buf_printf(&t->out, "let %s = (", v);
            if (!pr_member(t, n, "value", 0)) {
                puts_(t, ") in ");
                if (tp_push(t, v)) {
                    pr_member(t, n, "body", 0);
                    t->nvars--;
                }
            }
        }
    } else if (!strcmp(nt, "quantification") || !strcmp(nt, "set")) {
        const char *q = !strcmp(nt, "set") ? "select"
                                           : json_string_value(json_object_get(n, "quantifier"));
        const char *kw = !q                                                    ? NULL
                         : !strcmp(q, "some") || !strcmp(q, "exists")          ? "exists"
                         : !strcmp(q, "all") || !strcmp(q, "forall") || !strcmp(q, "every") ? "forall"
                         : !strcmp(q, "select")                                ? "select"
                                                                               : NULL;
        const json_t *vs = kw ? array_member(t, n, "variables", 1, 8) : NULL;
        if (!kw) tp_fail(t, "quantifier", "expected \"some\" or \"all\"");
        if (vs) {
            mark(t);
            kith_buf_printf(&t->out, "%s ", kw);
            int pushed = 0;
            for (size_t i = 0; i < json_array_size(vs) && !t->rc; i++) {
                if (i) puts_(t, ", ");
                pr_binding(t, vs, i, &pushed, true);
            }
            t->nvars -= pushed;
        }
    } else if (!strcmp(nt, "aggregate")) {
        const char *f = json_string_value(json_object_get(n, "fnName"));
        const json_t *vs = array_member(t, n, "variables", 1, 1);
        if (!f || find(agg_names, f) < 0) {
            tp_fail(t, "fnName", "expected sum, count, min, max, avg or average");
        } else if (vs) {
            const json_t *v0 = json_array_get(vs, 0);
            const char *var = json_string_value(json_object_get(v0, "varName"));
            mark(t);
            kith_buf_printf(&t->out, "%s ", f);
            size_t at = t->out.len;
            if (is_ident(var) && tp_push(t, var)) {
                pr_member(t, n, "value", 8);
                t->nvars--;
            }
            const char *s = t->out.data + at;
            if (!t->rc && !(*s == '$' || (is_ident((char[]){*s, 0}) && *s != '(')))
                tp_fail(t, "value", "expected a field path (the aggregated value)");
            if (!t->rc) {
                puts_(t, " over ");
                int pushed = 0;
                pr_binding(t, vs, 0, &pushed, true);
                t->nvars -= pushed;
            }
        }
    } else if (!strcmp(nt, "chain")) {
        const char *ts = ident_member(t, n, "timestampField", "the timestamp field name");
        const json_t *st = ts ? array_member(t, n, "steps", 1, 16) : NULL;
        if (st) {
            mark(t);
            puts_(t, "CHAIN(");
            if (!pr_member(t, n, "events", 8)) {
                kith_buf_printf(&t->out, ", %s, [", ts);
                int base = t->nvars;
                for (size_t i = 0; i < json_array_size(st) && !t->rc; i++) {
                    const json_t *s = json_array_get(st, i);
                    size_t save = path_key(t, "steps");
                    path_idx(t, i);
                    const char *label = json_is_object(s)
                                            ? ident_member(t, s, "label", "a step label such as C0")
                                            : NULL;
                    if (!json_is_object(s)) tp_fail(t, NULL, "expected a step {label, what, when}");
                    if (label) {
                        kith_buf_printf(&t->out, "%s%s: WHAT(", i ? ", " : "", label);
                        t->elem++;
                        int rc = pr_member(t, s, "what", 0);
                        t->elem--;
                        puts_(t, ")");
                        if (!rc && json_object_get(s, "when")) {
                            const json_t *w = json_object_get(s, "when");
                            puts_(t, " WHEN(");
                            size_t s2 = path_key(t, "when");
                            /* WHEN may refer to the labels of the earlier steps */
                            for (size_t k = 0; k < i && !t->rc; k++)
                                tp_push(t, json_string_value(json_object_get(
                                               json_array_get(st, k), "label")));
                            if (json_is_object(w))
                                pr_tail(t, w);
                            else
                                tp_fail(t, NULL, "expected an occurs condition (an object)");
                            t->nvars = base;
                            t->plen = s2;
                            puts_(t, ")");
                        }
                    }
                    t->plen = save;
                }
                t->nvars = base;
                puts_(t, "])");
            }
        }
    } else if (!strcmp(nt, "fnCreate")) {
        tp_fail(t, "nodeType", "a lambda (fnCreate) is only allowed at the root");
    } else {
        tp_fail(t, "nodeType",
                "unknown nodeType '%s' (expected literal, fieldLookup, parameterReference, "
                "varRef, fnApply, filter, occurs, let, quantification, set, aggregate or chain)",
                nt);
    }
    if (paren) puts_(t, ")");
    t->depth--;
    return t->rc;
}

static void tp_free(tp *t)
{
    for (int i = 0; i < t->nmarks; i++)
        free(t->marks[i].path);
    free(t->marks);
    kith_buf_free(&t->out);
}

static int to_text(tp *t, const json_t *tree)
{
    if (!json_is_object(tree)) return tp_fail(t, NULL, "expected a pql/json node (an object)");
    const char *nt = node_type(tree);
    if (nt && !strcmp(nt, "fnCreate")) {
        const json_t *ps = array_member(t, tree, "params", 1, 1);
        if (!ps) return t->rc;
        const json_t *p0 = json_array_get(ps, 0);
        size_t save = path_key(t, "params");
        path_idx(t, 0);
        const char *v = json_is_object(p0) ? ident_member(t, p0, "varName", "the parameter name")
                                           : NULL;
        if (!json_is_object(p0)) tp_fail(t, NULL, "expected a varDecl {varName}");
        t->plen = save;
        if (t->rc) return t->rc;
        kith_buf_printf(&t->out, "(%s) => ", v);
        if (!tp_push(t, v)) return t->rc;
        pr_member(t, tree, "body", 0);
        t->nvars--;
    } else {
        pr(t, tree, 0);
    }
    if (!t->rc && t->out.len > PQL_MAX_TEXT) {
        tp_fail(t, NULL, "the expression's text form exceeds %d bytes", PQL_MAX_TEXT);
        t->rc = KITH_ETOOLARGE;
    }
    kith_buf_append(&t->out, "", 1);
    t->out.len--;
    return t->rc;
}

int pql_json_to_text(const json_t *tree, char **text, pql_json_error *err)
{
    pql_json_error scratch;
    if (!err) err = &scratch;
    memset(err, 0, sizeof *err);
    *text = NULL;
    tp *t = kith_xcalloc(1, sizeof *t);
    t->err = err;
    int rc = to_text(t, tree);
    if (!rc) {
        *text = t->out.data;
        t->out.data = NULL;
    }
    tp_free(t);
    free(t);
    return rc;
}

int pql_compile_json(const json_t *tree, const pql_env *env, pql_program **out, char **text,
                     pql_json_error *err)
{
    pql_json_error scratch;
    if (!err) err = &scratch;
    memset(err, 0, sizeof *err);
    *out = NULL;
    if (text) *text = NULL;
    tp *t = kith_xcalloc(1, sizeof *t);
    t->err = err;
    int rc = to_text(t, tree);
    if (!rc) {
        pql_error perr;
        rc = pql_compile(t->out.data, t->out.len, env, out, &perr);
        if (rc) {
            /* the node whose anchor token is at (or last before) the error's column */
            size_t off = perr.column > 0 ? (size_t)perr.column - 1 : 0;
            const char *path = "";
            for (int i = 0; i < t->nmarks && t->marks[i].off <= off; i++)
                path = t->marks[i].path;
            snprintf(err->path, sizeof err->path, "%s", path);
            snprintf(err->message, sizeof err->message, "%s", perr.message);
        } else if (text) {
            *text = t->out.data;
            t->out.data = NULL;
        }
    }
    tp_free(t);
    free(t);
    return rc;
}

json_t *pql_json_value(const json_t *value, pql_json_error *err)
{
    memset(err, 0, sizeof *err);
    if (json_is_object(value)) return json_incref((json_t *)value);
    if (!json_is_string(value)) {
        snprintf(err->message, sizeof err->message,
                 "expected a pql/json tree: an object, or a string holding one");
        return NULL;
    }
    kjson_error ke;
    json_t *j = kjson_parse(json_string_value(value), json_string_length(value),
                            2 * PQL_JSON_MAX_DEPTH + 8, NULL, &ke);
    if (!j) {
        snprintf(err->message, sizeof err->message,
                 "the pql/json string is not JSON: line %d, column %d: %s", ke.line, ke.column,
                 ke.text);
        return NULL;
    }
    if (!json_is_object(j)) {
        json_decref(j);
        snprintf(err->message, sizeof err->message,
                 "expected a pql/json tree: the string holds JSON that is not an object");
        return NULL;
    }
    return j;
}
