/* PQL parser: recursive descent over the whole token list (the grammar needs a few tokens of
 * look-ahead for lambdas and aggregate forms), building the AST in the arena. The grammar is
 * aep-spec 4.3.3; errors name the token found and what was expected. */
#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "pql_int.h"

typedef struct parser {
    pql_token *toks;
    int n, pos;
    pql_arena *a;
    pql_error *err;
    int depth;
    int chain; /* binary operators so far (PQL_MAX_CHAIN) */
    int failed;
    int no_in; /* inside a let value: 'in' ends it */
} parser;

#define CUR(P) (&(P)->toks[(P)->pos])
#define PEEK(P, k) (&(P)->toks[(P)->pos + (k) < (P)->n ? (P)->pos + (k) : (P)->n - 1])

static int fail_at(parser *p, const pql_token *t, const char *what)
{
    if (p->failed) return KITH_EINVAL;
    p->failed = 1;
    p->err->line = t->line;
    p->err->column = t->col;
    char found[64];
    if (t->kind == T_IDENT || t->kind == T_STRING)
        snprintf(found, sizeof found, "%s%.*s%s", t->kind == T_STRING ? "\"" : "'",
                 (int)(t->len > 40 ? 40 : t->len), t->s, t->kind == T_STRING ? "\"" : "'");
    else
        snprintf(found, sizeof found, "%s", pql_tok_name(t->kind));
    snprintf(p->err->message, sizeof p->err->message, "expected %.150s, found %.63s", what, found);
    return KITH_EINVAL;
}

static bool is_kw(const pql_token *t, const char *kw)
{
    return t->kind == T_IDENT && t->len == strlen(kw) && memcmp(t->s, kw, t->len) == 0;
}
static bool is_kw_ci(const pql_token *t, const char *kw)
{
    return t->kind == T_IDENT && t->len == strlen(kw) && strncasecmp(t->s, kw, t->len) == 0;
}

static pql_node *mk(parser *p, int kind, const pql_token *t)
{
    pql_node *n = pql_arena_alloc(p->a, sizeof *n);
    n->kind = (uint8_t)kind;
    n->line = t->line;
    n->col = t->col;
    n->slot = -1;
    return n;
}

static const char *tok_str(parser *p, const pql_token *t)
{
    return pql_arena_strndup(p->a, t->s, t->len);
}

static bool expect(parser *p, enum pql_tok k, const char *what)
{
    if (CUR(p)->kind != k) {
        fail_at(p, CUR(p), what);
        return false;
    }
    p->pos++;
    return true;
}
static bool expect_kw(parser *p, const char *kw, const char *what)
{
    if (!is_kw(CUR(p), kw)) {
        fail_at(p, CUR(p), what);
        return false;
    }
    p->pos++;
    return true;
}

static pql_node *parse_expr(parser *p);
static pql_node *parse_or(parser *p);
static pql_node *parse_postfix(parser *p);
static pql_node *parse_add(parser *p);

static const char *const reserved[] = {"and",    "or",   "not",    "in",     "notIn",   "like",
                                       "occurs", "let",  "select", "exists", "forall",  "from",
                                       "where",  "over", "before", "after",  "between", NULL};

static bool is_reserved(const pql_token *t)
{
    for (int i = 0; reserved[i]; i++)
        if (is_kw(t, reserved[i])) return true;
    return false;
}

static int cmp_of(enum pql_tok k)
{
    switch (k) {
    case T_EQ:
        return B_EQ;
    case T_NE:
        return B_NE;
    case T_LT:
        return B_LT;
    case T_LE:
        return B_LE;
    case T_GT:
        return B_GT;
    case T_GE:
        return B_GE;
    default:
        return -1;
    }
}

/* timeRef := now | today | yesterday | tomorrow | postfix (date(...), a path, a CHAIN label) */
static pql_node *parse_timeref(parser *p)
{
    pql_token *t = CUR(p);
    static const char *const words[] = {"now", "today", "yesterday", "tomorrow"};
    for (int i = 0; i < 4; i++)
        if (is_kw(t, words[i])) {
            p->pos++;
            pql_node *n = mk(p, N_TIMEWORD, t);
            n->op = (uint8_t)i;
            return n;
        }
    if (t->kind != T_IDENT && t->kind != T_DOLLAR && t->kind != T_CARET && t->kind != T_LP &&
        t->kind != T_STRING) {
        fail_at(p, t, "a time (now, today, yesterday, tomorrow, date(...) or a field)");
        return NULL;
    }
    return parse_postfix(p);
}

static bool parse_unit(parser *p, pql_occ *o)
{
    pql_token *t = CUR(p);
    int u = t->kind == T_IDENT ? pql_unit_parse(t->s, t->len) : -1;
    if (u < 0) {
        fail_at(p, t, "a time unit (milliseconds ... millennia)");
        return false;
    }
    o->unit = (uint8_t)u;
    p->pos++;
    return true;
}

/* occursTail, after 'occurs' (or inside WHEN(...)). */
static pql_occ *parse_occurs_tail(parser *p)
{
    pql_occ *o = pql_arena_alloc(p->a, sizeof *o);
    pql_token *t = CUR(p);
    int cmp = cmp_of(t->kind);
    if (cmp >= 0) {
        p->pos++;
        o->kind = O_REL;
        o->cmp = (uint8_t)cmp;
        if (CUR(p)->kind != T_INT) {
            fail_at(p, CUR(p), "an integer count of units");
            return NULL;
        }
        o->n = CUR(p)->i;
        p->pos++;
        if (!parse_unit(p, o)) return NULL;
        t = CUR(p);
        if (is_kw(t, "before"))
            o->dir = D_BEFORE;
        else if (is_kw(t, "after"))
            o->dir = D_AFTER;
        else if (is_kw(t, "from"))
            o->dir = D_FROM;
        else {
            fail_at(p, t, "'before', 'after' or 'from'");
            return NULL;
        }
        p->pos++;
        if (!(o->ref1 = parse_timeref(p))) return NULL;
        return o;
    }
    if (is_kw(t, "before") || is_kw(t, "after")) {
        o->kind = O_PLAIN;
        o->dir = is_kw(t, "before") ? D_BEFORE : D_AFTER;
        p->pos++;
        if (!(o->ref1 = parse_timeref(p))) return NULL;
        return o;
    }
    if (is_kw(t, "between")) {
        o->kind = O_BETWEEN;
        p->pos++;
        if (!(o->ref1 = parse_timeref(p))) return NULL;
        if (!expect_kw(p, "and", "'and' in 'between ... and ...'")) return NULL;
        if (!(o->ref2 = parse_timeref(p))) return NULL;
        return o;
    }
    if (is_kw(t, "this") || is_kw(t, "last") || is_kw(t, "next")) {
        o->kind = O_PERIOD;
        o->shift = is_kw(t, "this") ? 0 : is_kw(t, "last") ? -1 : 1;
        p->pos++;
        if (!parse_unit(p, o)) return NULL;
        return o;
    }
    if (is_kw(t, "on")) p->pos++;
    o->kind = O_ON;
    if (!(o->ref1 = parse_timeref(p))) return NULL;
    return o;
}

static bool parse_args(parser *p, pql_node *n)
{
    /* at '(' */
    p->pos++;
    pql_node *tmp[16];
    int k = 0;
    if (CUR(p)->kind != T_RP) {
        for (;;) {
            if (k == 16) {
                fail_at(p, CUR(p), "at most 16 arguments");
                return false;
            }
            if (!(tmp[k++] = parse_expr(p))) return false;
            if (CUR(p)->kind == T_COMMA) {
                p->pos++;
                continue;
            }
            break;
        }
    }
    if (!expect(p, T_RP, "')' or ',' in the arguments")) return false;
    n->nkids = k;
    n->kids = pql_arena_alloc(p->a, sizeof(pql_node *) * (size_t)(k ? k : 1));
    memcpy(n->kids, tmp, sizeof(pql_node *) * (size_t)k);
    return true;
}

/* binding := IDENT 'from' postfix [('where'|':') expr] */
static bool parse_bindings(parser *p, pql_node *n)
{
    pql_bind tmp[8];
    int k = 0;
    for (;;) {
        pql_token *v = CUR(p);
        if (v->kind != T_IDENT || is_reserved(v)) {
            fail_at(p, v, "a variable name");
            return false;
        }
        if (k == 8) {
            fail_at(p, v, "at most 8 variables");
            return false;
        }
        p->pos++;
        memset(&tmp[k], 0, sizeof tmp[k]);
        tmp[k].var = tok_str(p, v);
        if (!expect_kw(p, "from", "'from'")) return false;
        if (!(tmp[k].src = parse_postfix(p))) return false;
        if (is_kw(CUR(p), "where") || CUR(p)->kind == T_COLON) {
            p->pos++;
            if (!(tmp[k].where = parse_or(p))) return false;
        }
        k++;
        if (CUR(p)->kind == T_COMMA && PEEK(p, 1)->kind == T_IDENT && is_kw(PEEK(p, 2), "from")) {
            p->pos++;
            continue;
        }
        break;
    }
    n->nbinds = k;
    n->binds = pql_arena_alloc(p->a, sizeof(pql_bind) * (size_t)k);
    memcpy(n->binds, tmp, sizeof(pql_bind) * (size_t)k);
    return true;
}

static pql_node *parse_chain(parser *p, pql_token *t)
{
    pql_node *n = mk(p, N_CHAIN, t);
    if (!expect(p, T_LP, "'(' after CHAIN")) return NULL;
    if (!(n->a = parse_postfix(p))) return NULL;
    if (!expect(p, T_COMMA, "',' after the CHAIN's events")) return NULL;
    if (CUR(p)->kind != T_IDENT) {
        fail_at(p, CUR(p), "the timestamp field name");
        return NULL;
    }
    n->name = tok_str(p, CUR(p));
    p->pos++;
    if (!expect(p, T_COMMA, "',' after the timestamp field")) return NULL;
    if (!expect(p, T_LB, "'[' before the CHAIN steps")) return NULL;
    pql_chain_step tmp[16];
    int k = 0;
    for (;;) {
        if (k == 16) {
            fail_at(p, CUR(p), "at most 16 steps");
            return NULL;
        }
        pql_chain_step *s = &tmp[k];
        memset(s, 0, sizeof *s);
        s->step_ref = -1;
        if (CUR(p)->kind != T_IDENT) {
            fail_at(p, CUR(p), "a step label such as C0");
            return NULL;
        }
        s->label = tok_str(p, CUR(p));
        p->pos++;
        if (!expect(p, T_COLON, "':' after the step label")) return NULL;
        if (!is_kw_ci(CUR(p), "WHAT")) {
            fail_at(p, CUR(p), "WHAT(...)");
            return NULL;
        }
        p->pos++;
        if (!expect(p, T_LP, "'(' after WHAT")) return NULL;
        if (!(s->what = parse_expr(p))) return NULL;
        if (!expect(p, T_RP, "')' after the WHAT condition")) return NULL;
        if (is_kw_ci(CUR(p), "WHEN")) {
            p->pos++;
            if (!expect(p, T_LP, "'(' after WHEN")) return NULL;
            if (!(s->when = parse_occurs_tail(p))) return NULL;
            pql_node *r = s->when->ref1;
            if (r && r->kind == N_NAME && !r->up)
                for (int j = 0; j < k; j++)
                    if (strcmp(tmp[j].label, r->name) == 0) s->step_ref = j;
            if (!expect(p, T_RP, "')' after the WHEN condition")) return NULL;
        }
        k++;
        if (CUR(p)->kind == T_COMMA) {
            p->pos++;
            continue;
        }
        break;
    }
    if (!expect(p, T_RB, "']' or ',' after a CHAIN step")) return NULL;
    if (!expect(p, T_RP, "')' after the CHAIN steps")) return NULL;
    n->nsteps = k;
    n->steps = pql_arena_alloc(p->a, sizeof(pql_chain_step) * (size_t)k);
    memcpy(n->steps, tmp, sizeof(pql_chain_step) * (size_t)k);
    return n;
}

static pql_node *parse_primary(parser *p)
{
    pql_token *t = CUR(p);
    pql_node *n;
    switch (t->kind) {
    case T_STRING:
        p->pos++;
        n = mk(p, N_LIT, t);
        n->val.t = V_STR;
        n->val.s = t->s;
        n->val.len = (uint32_t)t->len;
        return n;
    case T_INT:
        p->pos++;
        n = mk(p, N_LIT, t);
        n->val.t = V_INT;
        n->val.i = t->i;
        return n;
    case T_DOUBLE:
        p->pos++;
        n = mk(p, N_LIT, t);
        n->val.t = V_DBL;
        n->val.d = t->d;
        return n;
    case T_LB: {
        p->pos++;
        n = mk(p, N_LIST, t);
        pql_node **tmp = NULL;
        int k = 0, cap = 0;
        if (CUR(p)->kind != T_RB) {
            for (;;) {
                pql_node *e = parse_add(p);
                if (!e) return NULL;
                if (k == cap) {
                    cap = cap ? cap * 2 : 8;
                    pql_node **nt = pql_arena_alloc(p->a, sizeof *nt * (size_t)cap);
                    if (k) memcpy(nt, tmp, sizeof *nt * (size_t)k);
                    tmp = nt;
                }
                tmp[k++] = e;
                if (CUR(p)->kind == T_COMMA) {
                    p->pos++;
                    continue;
                }
                break;
            }
        }
        if (!expect(p, T_RB, "']' or ',' in the list")) return NULL;
        n->kids = tmp;
        n->nkids = k;
        return n;
    }
    case T_LP: {
        p->pos++;
        int save = p->no_in;
        p->no_in = 0;
        n = parse_expr(p);
        p->no_in = save;
        if (!n || !expect(p, T_RP, "')'")) return NULL;
        return n;
    }
    case T_DOLLAR:
        p->pos++;
        if (t->i != 1) {
            fail_at(p, t, "$1 (the profile; there is one parameter)");
            return NULL;
        }
        return mk(p, N_PARAM, t);
    case T_CARET: {
        int up = 0;
        while (CUR(p)->kind == T_CARET)
            up++, p->pos++;
        if (up > PQL_MAX_NEST) { /* no expression has more scopes to climb (and pql/json says so) */
            fail_at(p, t, "at most 64 '^' (one per enclosing scope)");
            return NULL;
        }
        pql_token *id = CUR(p);
        if (id->kind != T_IDENT) {
            fail_at(p, id, "a field name after '^'");
            return NULL;
        }
        p->pos++;
        n = mk(p, N_NAME, t);
        n->name = tok_str(p, id);
        n->up = up;
        return n;
    }
    case T_IDENT:
        break;
    default:
        fail_at(p, t, "a value, a field or a function");
        return NULL;
    }
    /* identifiers */
    if (is_kw(t, "true") || is_kw(t, "false")) {
        p->pos++;
        n = mk(p, N_LIT, t);
        n->val.t = V_BOOL;
        n->val.i = is_kw(t, "true");
        return n;
    }
    if (is_kw(t, "null")) {
        p->pos++;
        return mk(p, N_LIT, t);
    }
    static const char *const words[] = {"now", "today", "yesterday", "tomorrow"};
    for (int i = 0; i < 4; i++)
        if (is_kw(t, words[i])) {
            p->pos++;
            n = mk(p, N_TIMEWORD, t);
            n->op = (uint8_t)i;
            return n;
        }
    if (is_kw(t, "select") || is_kw(t, "exists") || is_kw(t, "forall")) {
        p->pos++;
        n = mk(p, N_QUANT, t);
        n->quant = is_kw(t, "exists") ? 0 : is_kw(t, "forall") ? 1 : 2;
        if (!parse_bindings(p, n)) return NULL;
        return n;
    }
    if (is_kw_ci(t, "chain") && PEEK(p, 1)->kind == T_LP) {
        p->pos++;
        return parse_chain(p, t);
    }
    if ((is_kw(t, "sum") || is_kw(t, "count") || is_kw(t, "min") || is_kw(t, "max") ||
         is_kw(t, "avg") || is_kw(t, "average")) &&
        (PEEK(p, 1)->kind == T_IDENT || PEEK(p, 1)->kind == T_DOLLAR)) {
        /* sum X.a over X from A where c */
        p->pos++;
        n = mk(p, N_AGGOVER, t);
        n->name = tok_str(p, t);
        if (!(n->a = parse_postfix(p))) return NULL;
        if (!expect_kw(p, "over", "'over'")) return NULL;
        if (!parse_bindings(p, n)) return NULL;
        if (n->nbinds != 1) {
            fail_at(p, t, "one variable in an aggregate 'over'");
            return NULL;
        }
        return n;
    }
    if (is_reserved(t)) {
        fail_at(p, t, "a value, a field or a function");
        return NULL;
    }
    p->pos++;
    if (CUR(p)->kind == T_LP) {
        n = mk(p, N_CALL, t);
        n->name = tok_str(p, t);
        if (!parse_args(p, n)) return NULL;
        return n;
    }
    n = mk(p, N_NAME, t);
    n->name = tok_str(p, t);
    return n;
}

static pql_node *parse_postfix(parser *p)
{
    if (++p->depth > PQL_MAX_NEST) {
        fail_at(p, CUR(p), "at most 64 levels of nesting");
        return NULL;
    }
    pql_node *n = parse_primary(p);
    while (n) {
        pql_token *t = CUR(p);
        if (t->kind == T_DOT) {
            p->pos++;
            pql_token *id = CUR(p);
            if (id->kind != T_IDENT) {
                fail_at(p, id, "a field or method name after '.'");
                return NULL;
            }
            p->pos++;
            pql_node *m;
            if (CUR(p)->kind == T_LP) {
                m = mk(p, N_METHOD, id);
                m->name = tok_str(p, id);
                m->a = n;
                if (!parse_args(p, m)) return NULL;
            } else {
                m = mk(p, N_FIELD, id);
                m->name = tok_str(p, id);
                m->a = n;
            }
            n = m;
        } else if (t->kind == T_LB) {
            p->pos++;
            pql_node *f = mk(p, N_FILTER, t);
            f->a = n;
            if (!(f->b = parse_expr(p))) return NULL;
            if (!expect(p, T_RB, "']' after the filter")) return NULL;
            n = f;
        } else {
            break;
        }
    }
    p->depth--;
    return n;
}

static pql_node *parse_unary(parser *p)
{
    pql_token *t = CUR(p);
    if (t->kind == T_MINUS) {
        if (++p->depth > PQL_MAX_NEST) { /* "- - - ... x" nests like parentheses */
            fail_at(p, t, "at most 64 levels of nesting");
            return NULL;
        }
        p->pos++;
        pql_node *a = parse_unary(p);
        if (!a) return NULL;
        p->depth--;
        if (a->kind == N_LIT && a->val.t == V_INT && a->val.i != INT64_MIN) {
            a->val.i = -a->val.i;
            a->line = t->line, a->col = t->col;
            return a;
        }
        if (a->kind == N_LIT && a->val.t == V_DBL) {
            a->val.d = -a->val.d;
            a->line = t->line, a->col = t->col;
            return a;
        }
        pql_node *n = mk(p, N_NEG, t);
        n->a = a;
        return n;
    }
    return parse_postfix(p);
}

/* One more binary operator (see PQL_MAX_CHAIN): counted over the whole expression, so the tree's
 * depth stays bounded however the chains nest. */
static bool chain_next(parser *p, const pql_token *t)
{
    if (++p->chain <= PQL_MAX_CHAIN) return true;
    fail_at(p, t, "at most 4096 binary operators in an expression");
    return false;
}

static pql_node *parse_mul(parser *p)
{
    pql_node *l = parse_unary(p);
    while (l) {
        pql_token *t = CUR(p);
        int op = t->kind == T_STAR      ? B_MUL
                 : t->kind == T_SLASH   ? B_DIV
                 : t->kind == T_PERCENT ? B_MOD
                                        : -1;
        if (op < 0) break;
        if (!chain_next(p, t)) return NULL;
        p->pos++;
        pql_node *n = mk(p, N_BIN, t);
        n->op = (uint8_t)op;
        n->a = l;
        if (!(n->b = parse_unary(p))) return NULL;
        l = n;
    }
    return l;
}

static pql_node *parse_add(parser *p)
{
    pql_node *l = parse_mul(p);
    while (l) {
        pql_token *t = CUR(p);
        int op = t->kind == T_PLUS ? B_ADD : t->kind == T_MINUS ? B_SUB : -1;
        if (op < 0) break;
        if (!chain_next(p, t)) return NULL;
        p->pos++;
        pql_node *n = mk(p, N_BIN, t);
        n->op = (uint8_t)op;
        n->a = l;
        if (!(n->b = parse_mul(p))) return NULL;
        l = n;
    }
    return l;
}

static pql_node *parse_cmp(parser *p)
{
    pql_node *l = parse_add(p);
    if (!l) return NULL;
    pql_token *t = CUR(p);
    int op = cmp_of(t->kind);
    if (op < 0) {
        if (is_kw(t, "in") && !p->no_in)
            op = B_IN;
        else if (is_kw(t, "notIn"))
            op = B_NOTIN;
        else if (is_kw(t, "like"))
            op = B_LIKE;
        else if (is_kw(t, "occurs")) {
            p->pos++;
            pql_node *n = mk(p, N_OCCURS, t);
            n->a = l;
            if (!(n->occ = parse_occurs_tail(p))) return NULL;
            return n;
        } else
            return l;
    }
    p->pos++;
    pql_node *n = mk(p, N_BIN, t);
    n->op = (uint8_t)op;
    n->a = l;
    if (op == B_LIKE && CUR(p)->kind != T_STRING) {
        fail_at(p, CUR(p), "a string pattern after 'like'");
        return NULL;
    }
    if (!(n->b = parse_add(p))) return NULL;
    return n;
}

static pql_node *parse_not(parser *p)
{
    pql_token *t = CUR(p);
    if (is_kw(t, "not") || t->kind == T_BANG) {
        if (++p->depth > PQL_MAX_NEST) {
            fail_at(p, t, "at most 64 levels of nesting");
            return NULL;
        }
        p->pos++;
        pql_node *n = mk(p, N_NOT, t);
        if (!(n->a = parse_not(p))) return NULL;
        p->depth--;
        return n;
    }
    return parse_cmp(p);
}

static pql_node *parse_and(parser *p)
{
    pql_node *l = parse_not(p);
    while (l && is_kw(CUR(p), "and")) {
        pql_token *t = CUR(p);
        if (!chain_next(p, t)) return NULL;
        p->pos++;
        pql_node *n = mk(p, N_BIN, t);
        n->op = B_AND;
        n->a = l;
        if (!(n->b = parse_not(p))) return NULL;
        l = n;
    }
    return l;
}

static pql_node *parse_or(parser *p)
{
    pql_node *l = parse_and(p);
    while (l && is_kw(CUR(p), "or")) {
        pql_token *t = CUR(p);
        if (!chain_next(p, t)) return NULL;
        p->pos++;
        pql_node *n = mk(p, N_BIN, t);
        n->op = B_OR;
        n->a = l;
        if (!(n->b = parse_and(p))) return NULL;
        l = n;
    }
    return l;
}

static pql_node *parse_expr(parser *p)
{
    if (++p->depth > PQL_MAX_NEST) {
        fail_at(p, CUR(p), "at most 64 levels of nesting");
        return NULL;
    }
    pql_node *r;
    pql_token *t = CUR(p);
    if (is_kw(t, "let")) {
        p->pos++;
        pql_token *v = CUR(p);
        if (v->kind != T_IDENT || is_reserved(v)) {
            fail_at(p, v, "a variable name after 'let'");
            return NULL;
        }
        p->pos++;
        r = mk(p, N_LET, t);
        r->name = tok_str(p, v);
        if (!expect(p, T_EQ, "'=' after the let variable")) return NULL;
        int save = p->no_in;
        p->no_in = 1;
        r->a = parse_or(p);
        p->no_in = save;
        if (!r->a) return NULL;
        if (!expect_kw(p, "in", "'in' after the let value")) return NULL;
        if (!(r->b = parse_expr(p))) return NULL;
    } else {
        r = parse_or(p);
    }
    p->depth--;
    return r;
}

int pql_parse(const char *text, size_t len, pql_arena *a, pql_parse_out *out, pql_error *err)
{
    memset(out, 0, sizeof *out);
    if (len > PQL_MAX_TEXT) {
        err->line = 1, err->column = 1;
        snprintf(err->message, sizeof err->message, "expression longer than %d bytes",
                 PQL_MAX_TEXT);
        return KITH_ETOOLARGE;
    }
    pql_lexer lx;
    pql_lex_init(&lx, text, len, a, err);
    parser p = {.a = a, .err = err};
    int cap = 64;
    p.toks = kith_xmalloc(sizeof(pql_token) * (size_t)cap);
    for (;;) {
        if (p.n == cap) {
            cap *= 2;
            p.toks = kith_xrealloc(p.toks, sizeof(pql_token) * (size_t)cap);
        }
        if (pql_lex_next(&lx, &p.toks[p.n])) {
            free(p.toks);
            return KITH_EINVAL;
        }
        if (p.toks[p.n++].kind == T_EOF) break;
    }
    int rc = KITH_EINVAL;
    /* lambda: (P) => body */
    if (p.n > 4 && p.toks[0].kind == T_LP && p.toks[1].kind == T_IDENT && p.toks[2].kind == T_RP &&
        p.toks[3].kind == T_ARROW) {
        out->lambda_param = tok_str(&p, &p.toks[1]);
        p.pos = 4;
    }
    out->root = parse_expr(&p);
    if (out->root && CUR(&p)->kind != T_EOF)
        fail_at(&p, CUR(&p), "an operator or the end of the expression");
    else if (out->root)
        rc = 0;
    if (rc && p.depth > PQL_MAX_NEST) rc = KITH_ETOOLARGE;
    free(p.toks);
    return rc;
}
