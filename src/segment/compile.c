/* PQL code generation: the checked AST becomes one flat array of steps (opcodes.def) with a
 * constant pool and side tables for occurs windows, quantifiers and CHAINs. Sub-blocks (a filter's
 * predicate, an aggregate's expression) are emitted inline behind a JUMP and end with RET; the step
 * that runs them names their first step. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kith/pqlinc.h"
#include "pql_int.h"

typedef struct cg {
    pql_program *p;
    pql_error *err;
    int nevents; /* xEvent reads emitted */
    int insite;  /* of them, inside incremental sites */
    int in_site; /* > 0 while generating a site's fallback code */
} cg;

static int emit(cg *g, int op, int a, int b, int s, int a8)
{
    pql_program *p = g->p;
    if (p->ncode == p->capcode) {
        p->capcode = p->capcode ? p->capcode * 2 : 64;
        p->code = kith_xrealloc(p->code, sizeof *p->code * (size_t)p->capcode);
    }
    p->code[p->ncode] =
        (pql_step){.op = (uint8_t)op, .a = a, .b = b, .s = (uint16_t)s, .a8 = (uint8_t)a8};
    return p->ncode++;
}

static int add_const(cg *g, pql_val v)
{
    pql_program *p = g->p;
    for (int i = 0; i < p->nconsts; i++) {
        const pql_val *c = &p->consts[i];
        if (c->t == v.t && c->t == V_STR && c->len == v.len && !memcmp(c->s, v.s, v.len)) return i;
    }
    if (p->nconsts == p->capconsts) {
        p->capconsts = p->capconsts ? p->capconsts * 2 : 16;
        p->consts = kith_xrealloc(p->consts, sizeof *p->consts * (size_t)p->capconsts);
    }
    p->consts[p->nconsts] = v;
    return p->nconsts++;
}

static int str_const(cg *g, const char *s)
{
    pql_val v = {.t = V_STR, .len = (uint32_t)strlen(s), .s = s};
    return add_const(g, v);
}

static int gen(cg *g, pql_node *n);

static int gen_bool(cg *g, pql_node *n)
{
    if (gen(g, n)) return KITH_EINVAL;
    if (n->ty.t != TY_BOOL) emit(g, OP_TRUTH, 0, 0, 0, 0);
    return 0;
}

/* Emits "JUMP over; <block>; RET" and returns the block's first step (or -1). */
static int gen_block(cg *g, pql_node *n, bool as_bool)
{
    int j = emit(g, OP_JUMP, 0, 0, 0, 0);
    int start = g->p->ncode;
    if ((as_bool ? gen_bool(g, n) : gen(g, n))) return -1;
    emit(g, OP_RET, 0, 0, 0, 0);
    g->p->code[j].a = g->p->ncode;
    return start;
}

static int ref_kind(const pql_node *r, int64_t *c)
{
    if (!r) return REF_NONE;
    if (r->kind == N_TIMEWORD) return REF_NOW + r->op;
    if (r->kind == N_LIT && r->val.t == V_TIME) {
        *c = r->val.i;
        return r->op == 1 ? REF_DAYCONST : REF_CONST;
    }
    return REF_STACK;
}

static int add_occ(cg *g, const pql_occ *o)
{
    pql_program *p = g->p;
    p->occs = kith_xrealloc(p->occs, sizeof *p->occs * (size_t)(p->noccs + 1));
    pql_occ_prog *q = &p->occs[p->noccs];
    memset(q, 0, sizeof *q);
    q->kind = o->kind, q->cmp = o->cmp, q->unit = o->unit, q->dir = o->dir;
    q->shift = o->shift, q->n = o->n, q->exact = o->exact;
    q->ref1 = (uint8_t)(o->step_ref ? REF_STACK : ref_kind(o->ref1, &q->c1));
    q->ref2 = (uint8_t)ref_kind(o->ref2, &q->c2);
    q->linear = q->ref1 == REF_NOW && q->unit <= U_WEEK &&
                ((q->kind == O_REL && q->cmp != B_EQ && q->cmp != B_NE && q->dir != D_FROM) ||
                 q->kind == O_PLAIN);
    return p->noccs++;
}

static int gen_occ_refs(cg *g, const pql_occ *o)
{
    const pql_node *refs[2] = {o->ref1, o->ref2};
    for (int i = 0; i < 2; i++) {
        int64_t c;
        if (ref_kind(refs[i], &c) == REF_STACK) {
            if (gen(g, (pql_node *)refs[i])) return KITH_EINVAL;
            emit(g, OP_TOTIME, 0, 0, 0, 0);
        }
    }
    return 0;
}

static int add_regex(cg *g, pql_node *lit)
{
    pql_program *p = g->p;
    p->regexes = kith_xrealloc(p->regexes, sizeof *p->regexes * (size_t)(p->nregexes + 1));
    char *pat = kith_xmalloc(lit->val.len + 8);
    snprintf(pat, lit->val.len + 8, "^(%s)$", lit->val.s);
    int rc = regcomp(&p->regexes[p->nregexes], pat, REG_EXTENDED);
    free(pat);
    if (rc) {
        g->err->line = lit->line, g->err->column = lit->col;
        snprintf(g->err->message, sizeof g->err->message, "invalid regular expression");
        return -1;
    }
    return p->nregexes++;
}

static const char *const method_aggs[] = {"sum", "average", "avg", "min", "max", NULL};

static int gen_site(cg *g, pql_node *n, int *done);

static int gen_method_plain(cg *g, pql_node *n);

static int gen_method(cg *g, pql_node *n)
{
    int done = 0;
    if (!g->in_site) {
        int rc = gen_site(g, n, &done);
        if (rc || done) return rc;
    }
    return gen_method_plain(g, n);
}

static int gen_method_plain(cg *g, pql_node *n)
{
    const char *m = n->name;
    pql_node *r = n->a;
    if (!strcmp(m, "count")) {
        if (gen(g, r)) return KITH_EINVAL;
        if (!(r->kind == N_QUANT && r->count_all)) emit(g, OP_COUNT, 0, 0, 0, 0);
        return 0;
    }
    for (int i = 0; method_aggs[i]; i++) {
        if (strcmp(m, method_aggs[i])) continue;
        int fn = i == 0 ? AG_SUM : i <= 2 ? AG_AVG : i == 3 ? AG_MIN : AG_MAX;
        if (gen(g, r)) return KITH_EINVAL;
        int blk = -1;
        if (n->nkids && (blk = gen_block(g, n->kids[0], false)) < 0) return KITH_EINVAL;
        emit(g, OP_AGG, blk, 0, n->nkids ? n->slot : 0, fn);
        return 0;
    }
    if (!strcmp(m, "distinct") || !strcmp(m, "head")) {
        if (gen(g, r)) return KITH_EINVAL;
        emit(g, !strcmp(m, "head") ? OP_HEAD : OP_DISTINCT, 0, 0, 0, 0);
        return 0;
    }
    if (!strcmp(m, "topN") || !strcmp(m, "bottomN")) {
        if (gen(g, r) || gen(g, n->kids[1])) return KITH_EINVAL;
        int blk = gen_block(g, n->kids[0], false);
        if (blk < 0) return KITH_EINVAL;
        emit(g, OP_TOPN, blk, 0, n->slot, !strcmp(m, "bottomN"));
        return 0;
    }
    if (!strcmp(m, "filter") || !strcmp(m, "exists") || !strcmp(m, "forall") || !strcmp(m, "map")) {
        if (gen(g, r)) return KITH_EINVAL;
        bool map = !strcmp(m, "map");
        int blk = gen_block(g, n->kids[0], !map);
        if (blk < 0) return KITH_EINVAL;
        if (!strcmp(m, "filter"))
            emit(g, OP_FILTER, blk, 0, n->slot, 0);
        else if (map)
            emit(g, OP_MAP, blk, 0, n->slot, 0);
        else
            emit(g, OP_ANYALL, blk, 0, n->slot, !strcmp(m, "forall"));
        return 0;
    }
    static const char *const sets[] = {"includes",   "intersects",   "subsetOf",
                                       "supersetOf", "intersection", NULL};
    for (int i = 0; sets[i]; i++) {
        if (strcmp(m, sets[i])) continue;
        if (gen(g, r) || gen(g, n->kids[0])) return KITH_EINVAL;
        emit(g, OP_SETFN, 0, 0, 0, i);
        return 0;
    }
    if (!strcmp(m, "get")) {
        if (gen(g, r) || gen(g, n->kids[0])) return KITH_EINVAL;
        emit(g, OP_MAPGET, 0, 0, 0, 0);
        return 0;
    }
    if (!strcmp(m, "keys") || !strcmp(m, "values")) {
        if (gen(g, r)) return KITH_EINVAL;
        emit(g, !strcmp(m, "keys") ? OP_MAPKEYS : OP_MAPVALUES, 0, 0, 0, 0);
        return 0;
    }
    if (!strcmp(m, "isNull") || !strcmp(m, "isNotNull")) {
        if (gen(g, r)) return KITH_EINVAL;
        emit(g, OP_ISNULL, 0, 0, 0, !strcmp(m, "isNotNull"));
        return 0;
    }
    if (!strcmp(m, "matches") || !strcmp(m, "regexGroup")) {
        if (gen(g, r)) return KITH_EINVAL;
        int rx = add_regex(g, n->kids[0]);
        if (rx < 0) return KITH_EINVAL;
        if (!strcmp(m, "matches"))
            emit(g, OP_MATCHES, rx, 0, 0, 0);
        else
            emit(g, OP_REGEXGROUP, rx, (int)n->kids[1]->val.i, 0, 0);
        return 0;
    }
    if (!strcmp(m, "getMonth") || !strcmp(m, "getYear") || !strcmp(m, "getDayOfMonth")) {
        if (gen(g, r)) return KITH_EINVAL;
        emit(g, OP_TOTIME, 0, 0, 0, 0);
        emit(g, OP_GETPART, 0, 0, 0,
             !strcmp(m, "getYear")    ? P_YEAR
             : !strcmp(m, "getMonth") ? P_MONTH
                                      : P_DAY);
        return 0;
    }
    /* string functions: the checker put the function's index in n->op */
    if (gen(g, r) || gen(g, n->kids[0])) return KITH_EINVAL;
    bool cs = n->nkids < 2 || n->kids[1]->val.i;
    emit(g, OP_STRFN, 0, 0, 0, n->op | (cs ? 0x80 : 0));
    return 0;
}

static void field_steps(cg *g, pql_node *n)
{
    emit(g, OP_FIELD, str_const(g, n->name), 0, 0, 0);
    if (n->ty.t == TY_TIME || (n->ty.t == TY_ARR && n->ty.et == TY_TIME))
        emit(g, OP_TOTIME, 0, 0, 0, 0);
}

static int gen(cg *g, pql_node *n)
{
    switch (n->kind) {
    case N_LIT:
        emit(g, OP_CONST, add_const(g, n->val), 0, 0, 0);
        return 0;
    case N_LIST: {
        pql_val *arr =
            pql_arena_alloc(&g->p->arena, sizeof(pql_val) * (size_t)(n->nkids ? n->nkids : 1));
        for (int i = 0; i < n->nkids; i++)
            arr[i] = n->kids[i]->val;
        pql_val v = {.t = V_SEQ, .len = (uint32_t)n->nkids, .seq = arr};
        emit(g, OP_CONST, add_const(g, v), 0, 0, 0);
        return 0;
    }
    case N_PARAM:
        emit(g, OP_ROOT, 0, 0, 0, 0);
        return 0;
    case N_NAME:
        switch (n->ref) {
        case 0:
            emit(g, OP_SLOT, 0, 0, n->slot, 0);
            field_steps(g, n);
            return 0;
        case 1:
            emit(g, OP_SLOT, 0, 0, n->slot, 0);
            return 0;
        case 2:
            g->nevents++;
            emit(g, OP_EVENTS, 0, 0, 0, 0);
            return 0;
        default:
            emit(g, OP_ROOT, 0, 0, 0, 0);
            if (n->slot == -1 && n->path && *n->path) field_steps(g, n);
            return 0;
        }
    case N_FIELD:
        if (gen(g, n->a)) return KITH_EINVAL;
        field_steps(g, n);
        return 0;
    case N_FILTER: {
        if (gen(g, n->a)) return KITH_EINVAL;
        int blk = gen_block(g, n->b, true);
        if (blk < 0) return KITH_EINVAL;
        emit(g, OP_FILTER, blk, 0, n->slot, 0);
        return 0;
    }
    case N_BIN:
        if (n->op == B_AND || n->op == B_OR) {
            if (gen_bool(g, n->a)) return KITH_EINVAL;
            int j = emit(g, n->op == B_AND ? OP_ANDJ : OP_ORJ, 0, 0, 0, 0);
            if (gen_bool(g, n->b)) return KITH_EINVAL;
            g->p->code[j].a = g->p->ncode;
            return 0;
        }
        if (gen(g, n->a) || gen(g, n->b)) return KITH_EINVAL;
        switch (n->op) {
        case B_IN:
        case B_NOTIN:
            emit(g, OP_IN, 0, 0, 0, n->op == B_NOTIN);
            return 0;
        case B_LIKE:
            emit(g, OP_LIKE, 0, 0, 0, 0);
            return 0;
        case B_ADD:
        case B_SUB:
        case B_MUL:
        case B_DIV:
        case B_MOD:
            emit(g, OP_ARITH, 0, 0, 0, n->op);
            return 0;
        default:
            emit(g, OP_CMP, 0, 0, 0, n->op);
            return 0;
        }
    case N_NOT:
        if (gen_bool(g, n->a)) return KITH_EINVAL;
        emit(g, OP_NOT, 0, 0, 0, 0);
        return 0;
    case N_NEG:
        if (gen(g, n->a)) return KITH_EINVAL;
        emit(g, OP_NEG, 0, 0, 0, 0);
        return 0;
    case N_OCCURS:
        if (gen(g, n->a)) return KITH_EINVAL;
        emit(g, OP_TOTIME, 0, 0, 0, 0);
        if (gen_occ_refs(g, n->occ)) return KITH_EINVAL;
        emit(g, OP_OCCURS, add_occ(g, n->occ), 0, 0, 0);
        return 0;
    case N_TIMEWORD:
        if (n->op == W_NOW)
            emit(g, OP_NOW, 0, 0, 0, 0);
        else
            emit(g, OP_TIMEWORD, 0, 0, 0, n->op);
        return 0;
    case N_CALL:
        if (!strcmp(n->name, "inSegment")) {
            emit(g, OP_INSEGMENT, str_const(g, n->kids[0]->val.s), 0, 0, 0);
            return 0;
        }
        if (!strcmp(n->name, "if")) {
            if (gen_bool(g, n->kids[0])) return KITH_EINVAL;
            int j = emit(g, OP_IF, 0, 0, 0, 0);
            if (gen(g, n->kids[1])) return KITH_EINVAL;
            int j2 = emit(g, OP_JUMP, 0, 0, 0, 0);
            g->p->code[j].a = g->p->ncode;
            if (gen(g, n->kids[2])) return KITH_EINVAL;
            g->p->code[j2].a = g->p->ncode;
            return 0;
        }
        emit(g, OP_CURRENT, 0, 0, 0,
             !strcmp(n->name, "currentYear")    ? P_YEAR
             : !strcmp(n->name, "currentMonth") ? P_MONTH
                                                : P_DAY);
        return 0;
    case N_METHOD:
        return gen_method(g, n);
    case N_LET:
        if (gen(g, n->a)) return KITH_EINVAL;
        emit(g, OP_SETSLOT, 0, 0, n->slot, 0);
        return gen(g, n->b);
    case N_AGGOVER: {
        pql_bind *b = &n->binds[0];
        if (gen(g, b->src)) return KITH_EINVAL;
        if (b->where) {
            int blk = gen_block(g, b->where, true);
            if (blk < 0) return KITH_EINVAL;
            emit(g, OP_FILTER, blk, 0, b->slot, 0);
        }
        if (!strcmp(n->name, "count")) {
            emit(g, OP_COUNT, 0, 0, 0, 0);
            return 0;
        }
        int blk = gen_block(g, n->a, false);
        if (blk < 0) return KITH_EINVAL;
        int fn = !strcmp(n->name, "sum")   ? AG_SUM
                 : !strcmp(n->name, "min") ? AG_MIN
                 : !strcmp(n->name, "max") ? AG_MAX
                                           : AG_AVG;
        emit(g, OP_AGG, blk, 0, b->slot, fn);
        return 0;
    }
    case N_QUANT: {
        pql_quant_prog q = {.quant = n->quant, .count_all = n->count_all, .nbinds = n->nbinds};
        if (n->nbinds > 8) return KITH_EINVAL;
        for (int i = 0; i < n->nbinds; i++) {
            q.b[i].slot = n->binds[i].slot;
            if ((q.b[i].src = gen_block(g, n->binds[i].src, false)) < 0) return KITH_EINVAL;
            q.b[i].where = -1;
            if (n->binds[i].where && (q.b[i].where = gen_block(g, n->binds[i].where, true)) < 0)
                return KITH_EINVAL;
        }
        pql_program *p = g->p;
        p->quants = kith_xrealloc(p->quants, sizeof *p->quants * (size_t)(p->nquants + 1));
        p->quants[p->nquants] = q;
        emit(g, OP_SELECT, p->nquants++, 0, 0, 0);
        return 0;
    }
    case N_CHAIN: {
        if (gen(g, n->a)) return KITH_EINVAL;
        pql_chain_prog c = {
            .src_ts_field = str_const(g, n->name), .nsteps = n->nsteps, .slot = n->slot};
        for (int i = 0; i < n->nsteps; i++) {
            if ((c.st[i].what = gen_block(g, n->steps[i].what, true)) < 0) return KITH_EINVAL;
            c.st[i].occ = n->steps[i].when ? add_occ(g, n->steps[i].when) : -1;
            c.st[i].step_ref = n->steps[i].step_ref;
        }
        pql_program *p = g->p;
        p->chains = kith_xrealloc(p->chains, sizeof *p->chains * (size_t)(p->nchains + 1));
        p->chains[p->nchains] = c;
        emit(g, OP_CHAIN, p->nchains++, 0, 0, 0);
        return 0;
    }
    }
    return KITH_EINVAL;
}

int pql_codegen(pql_program *p, pql_parse_out *po, pql_error *err)
{
    cg g = {.p = p, .err = err};
    if (gen(&g, po->root)) return KITH_EINVAL;
    emit(&g, OP_RET, 0, 0, 0, 0);
    p->inc_only = p->nsites > 0 && g.nevents == g.insite;
    return 0;
}

/* ---- filter keys (pql_fkey) ---- */

static bool key_const(kith_buf *k, const pql_val *v, int depth)
{
    kith_buf_append(k, &v->t, 1);
    switch (v->t) {
    case V_MISSING:
        return true;
    case V_BOOL:
    case V_INT:
    case V_TIME:
        kith_buf_append(k, &v->i, sizeof v->i);
        return true;
    case V_DBL:
        kith_buf_append(k, &v->d, sizeof v->d);
        return true;
    case V_STR:
        kith_buf_append(k, &v->len, sizeof v->len);
        kith_buf_append(k, v->s, v->len);
        return true;
    case V_SEQ:
        if (depth > 8) return false;
        kith_buf_append(k, &v->len, sizeof v->len);
        for (uint32_t i = 0; i < v->len; i++)
            if (!key_const(k, &v->seq[i], depth + 1)) return false;
        return true;
    default:
        return false;
    }
}

static void key_i64(kith_buf *k, int64_t v)
{
    kith_buf_append(k, &v, sizeof v);
}

/* The key of FILTER step f, when its block reads only its own slot, constants and now: every step
 * with what it depends on spelled out (constants by value, jumps relative to the block, occurs
 * windows field by field), never a program's table index. */
static bool filter_key(const pql_program *p, int f, kith_buf *k)
{
    const pql_step *fs = &p->code[f];
    int start = fs->a;
    if (start < 1 || start >= f || p->code[start - 1].op != OP_JUMP || p->code[start - 1].a != f)
        return false;
    for (int pc = start; pc < f; pc++) {
        const pql_step *st = &p->code[pc];
        kith_buf_append(k, &st->op, 1);
        kith_buf_append(k, &st->a8, 1);
        switch ((enum pql_op)st->op) {
        case OP_SLOT:
            if (st->s != fs->s) return false;
            break;
        case OP_CONST:
        case OP_FIELD:
            if (st->a < 0 || st->a >= p->nconsts || !key_const(k, &p->consts[st->a], 0)) return false;
            break;
        case OP_JUMP:
        case OP_JUMPF:
        case OP_IF:
        case OP_ANDJ:
        case OP_ORJ:
            if (st->a < start || st->a > f) return false;
            key_i64(k, st->a - start);
            break;
        case OP_OCCURS: {
            if (st->a < 0 || st->a >= p->noccs) return false;
            const pql_occ_prog *o = &p->occs[st->a];
            int64_t v[] = {o->kind, o->cmp,  o->unit, o->dir, o->exact, o->shift,
                           o->n,    o->ref1, o->ref2, o->c1,  o->c2,    o->linear};
            kith_buf_append(k, v, sizeof v);
            break;
        }
        case OP_CMP:
        case OP_IN:
        case OP_LIKE:
        case OP_NOT:
        case OP_TRUTH:
        case OP_TOTIME:
        case OP_NOW:
        case OP_TIMEWORD:
        case OP_ARITH:
        case OP_NEG:
        case OP_STRFN:
        case OP_ISNULL:
        case OP_RET:
        case OP_COUNT:
        case OP_CURRENT:
        case OP_GETPART:
        case OP_POP:
            break; /* operands: a8 only */
        default:
            return false;
        }
    }
    return true;
}

static void filter_keys(pql_program *p)
{
    int n = 0;
    for (int pc = 0; pc < p->ncode; pc++)
        n += p->code[pc].op == OP_FILTER;
    if (!n) return;
    p->fkeys = pql_arena_alloc(&p->arena, sizeof *p->fkeys * (size_t)n);
    kith_buf k = {0};
    for (int pc = 0; pc < p->ncode; pc++) {
        if (p->code[pc].op != OP_FILTER) continue;
        k.len = 0;
        if (!filter_key(p, pc, &k) || k.len > 65536) continue;
        uint64_t h = 1469598103934665603ull;
        for (size_t i = 0; i < k.len; i++)
            h = (h ^ (uint8_t)k.data[i]) * 1099511628211ull;
        uint8_t *key = pql_arena_alloc(&p->arena, k.len);
        memcpy(key, k.data, k.len);
        p->fkeys[p->nfkeys] = (pql_fkey){h, key, (uint32_t)k.len};
        p->code[pc].b = ++p->nfkeys;
    }
    kith_buf_free(&k);
}

static const char **copy_strs(pql_arena *a, const char **v, int n)
{
    const char **r = pql_arena_alloc(a, sizeof *r * (size_t)(n ? n : 1));
    for (int i = 0; i < n; i++)
        r[i] = v[i];
    return r;
}

int pql_compile(const char *text, size_t len, const pql_env *env, pql_program **out, pql_error *err)
{
    pql_error scratch_err;
    if (!err) err = &scratch_err;
    memset(err, 0, sizeof *err);
    *out = NULL;
    pql_program *p = kith_xcalloc(1, sizeof *p);
    pql_parse_out po;
    int rc = pql_parse(text, len, &p->arena, &po, err);
    pql_checked ck;
    if (!rc) rc = pql_check(&po, env, &p->arena, &ck, err);
    if (!rc) {
        p->nslots = ck.nslots;
        rc = pql_codegen(p, &po, err);
    }
    if (rc) {
        pql_program_free(p);
        return rc == KITH_ETOOLARGE ? rc : KITH_EINVAL;
    }
    filter_keys(p);
    p->text = pql_arena_strndup(&p->arena, text, len);
    pql_deps *d = &p->deps;
    d->fields = copy_strs(&p->arena, ck.fields, ck.nfields);
    d->n_fields = (size_t)ck.nfields;
    d->event_fields = copy_strs(&p->arena, ck.efields, ck.nefields);
    d->n_event_fields = (size_t)ck.nefields;
    d->event_types = copy_strs(&p->arena, ck.etypes, ck.netypes);
    d->n_event_types = (size_t)ck.netypes;
    d->segments = copy_strs(&p->arena, ck.segs, ck.nsegs);
    d->n_segments = (size_t)ck.nsegs;
    d->reads_events = ck.reads_events;
    d->uses_now = ck.uses_now;
    d->lookback_ms = ck.reads_events ? ck.lookback : 0;
    d->mode = (enum pql_mode)ck.mode;
    d->mode_reason = ck.reason;
    *out = p;
    return 0;
}

void pql_program_free(pql_program *p)
{
    if (!p) return;
    for (int i = 0; i < p->nregexes; i++)
        regfree(&p->regexes[i]);
    free(p->regexes);
    free(p->code);
    free(p->consts);
    free(p->occs);
    free(p->quants);
    free(p->chains);
    free(p->sites);
    pql_arena_free(&p->arena);
    free(p);
}

const pql_deps *pql_program_deps(const pql_program *p)
{
    return &p->deps;
}

/* ---- incremental aggregate sites (kith/pqlinc.h) ---- */

typedef struct slotset {
    int v[PQL_MAX_SLOTS];
    int n;
} slotset;

static void slot_add(slotset *s, int slot)
{
    if (slot >= 0 && s->n < PQL_MAX_SLOTS) s->v[s->n++] = slot;
}

static bool slot_has(const slotset *s, int slot)
{
    for (int i = 0; i < s->n; i++)
        if (s->v[i] == slot) return true;
    return false;
}

static bool method_binds(const pql_node *n)
{
    static const char *const m[] = {"sum",  "average", "avg",    "min",    "max",    "topN",
                                    "bottomN", "filter", "exists", "forall", "map",    NULL};
    if (n->nkids == 0) return false;
    for (int i = 0; m[i]; i++)
        if (!strcmp(n->name, m[i])) return true;
    return false;
}

/* The slots bound inside a subtree. */
static void bound_slots(const pql_node *n, slotset *s)
{
    if (!n) return;
    switch (n->kind) {
    case N_FILTER:
    case N_LET:
    case N_CHAIN:
        slot_add(s, n->slot);
        break;
    case N_METHOD:
        if (method_binds(n)) slot_add(s, n->slot);
        break;
    default:
        break;
    }
    bound_slots(n->a, s);
    bound_slots(n->b, s);
    bound_slots(n->c, s);
    for (int i = 0; i < n->nkids; i++)
        bound_slots(n->kids[i], s);
    for (int i = 0; i < n->nbinds; i++) {
        slot_add(s, n->binds[i].slot);
        bound_slots(n->binds[i].src, s);
        bound_slots(n->binds[i].where, s);
    }
    for (int i = 0; i < n->nsteps; i++)
        bound_slots(n->steps[i].what, s);
}

/* True when n reads only the element (slots in s, and slots bound inside it), never the instant,
 * the profile, other events or memberships. */
static bool static_ok(const pql_node *n, const slotset *s)
{
    if (!n) return true;
    switch (n->kind) {
    case N_TIMEWORD:
    case N_PARAM:
    case N_CHAIN:
        return false;
    case N_NAME:
        if (n->ref == 2 || n->ref == 3) return false;
        if (!slot_has(s, n->slot)) return false;
        break;
    case N_CALL:
        if (strcmp(n->name, "if") != 0 && strcmp(n->name, "date") != 0) return false;
        break;
    case N_OCCURS:
        if (n->occ->kind == O_PERIOD || n->occ->step_ref) return false;
        if (!static_ok(n->occ->ref1, s) || !static_ok(n->occ->ref2, s)) return false;
        break;
    default:
        break;
    }
    if (!static_ok(n->a, s) || !static_ok(n->b, s) || !static_ok(n->c, s)) return false;
    for (int i = 0; i < n->nkids; i++)
        if (!static_ok(n->kids[i], s)) return false;
    for (int i = 0; i < n->nbinds; i++)
        if (!static_ok(n->binds[i].src, s) || !static_ok(n->binds[i].where, s)) return false;
    return true;
}

static bool static_in(const pql_node *n, int slot)
{
    slotset s = {.n = 0};
    slot_add(&s, slot);
    bound_slots(n, &s);
    return static_ok(n, &s);
}

/* A window an entry's timestamp can be tested against with no stack operands. */
static bool time_ok(const pql_node *c, int slot)
{
    if (c->kind != N_OCCURS || c->occ->step_ref) return false;
    int64_t k;
    if (ref_kind(c->occ->ref1, &k) == REF_STACK || ref_kind(c->occ->ref2, &k) == REF_STACK)
        return false;
    return static_in(c->a, slot);
}

static void conjuncts(pql_node *n, pql_node **v, int *nv, int cap, bool *over)
{
    if (n->kind == N_BIN && n->op == B_AND) {
        conjuncts(n->a, v, nv, cap, over);
        conjuncts(n->b, v, nv, cap, over);
        return;
    }
    if (*nv == cap) {
        *over = true;
        return;
    }
    v[(*nv)++] = n;
}

/* --- signatures: FNV-1a over the structure, slots numbered by first appearance --- */
typedef struct sigh {
    uint64_t h;
    int map[PQL_MAX_SLOTS];
    int nmap;
} sigh;

static void mix(sigh *h, const void *p, size_t n)
{
    const uint8_t *b = p;
    for (size_t i = 0; i < n; i++) {
        h->h ^= b[i];
        h->h *= 0x100000001b3ull;
    }
}
static void mix_i(sigh *h, int64_t v)
{
    mix(h, &v, sizeof v);
}
static void mix_s(sigh *h, const char *s)
{
    if (!s) {
        mix_i(h, -7);
        return;
    }
    mix_i(h, (int64_t)strlen(s));
    mix(h, s, strlen(s));
}
static void mix_slot(sigh *h, int slot)
{
    for (int i = 0; i < h->nmap; i++)
        if (h->map[i] == slot) {
            mix_i(h, 1000 + i);
            return;
        }
    if (h->nmap < PQL_MAX_SLOTS) h->map[h->nmap++] = slot;
    mix_i(h, 1000 + h->nmap - 1);
}
static void mix_val(sigh *h, const pql_val *v)
{
    mix_i(h, v->t);
    switch (v->t) {
    case V_STR:
        mix_i(h, v->len);
        mix(h, v->s, v->len);
        break;
    case V_DBL:
        mix(h, &v->d, sizeof v->d);
        break;
    case V_SEQ:
        mix_i(h, v->len);
        for (uint32_t i = 0; i < v->len; i++)
            mix_val(h, &v->seq[i]);
        break;
    case V_BOOL:
    case V_INT:
    case V_TIME:
        mix_i(h, v->i);
        break;
    default:
        break;
    }
}
static void mix_node(sigh *h, const pql_node *n);
static void mix_occ(sigh *h, const pql_occ *o)
{
    if (!o) {
        mix_i(h, -9);
        return;
    }
    mix_i(h, o->kind), mix_i(h, o->cmp), mix_i(h, o->unit), mix_i(h, o->dir);
    mix_i(h, o->exact), mix_i(h, o->shift), mix_i(h, o->n);
    mix_node(h, o->ref1);
    mix_node(h, o->ref2);
    mix_s(h, o->step_ref);
}
static void mix_node(sigh *h, const pql_node *n)
{
    if (!n) {
        mix_i(h, -1);
        return;
    }
    mix_i(h, n->kind), mix_i(h, n->op), mix_i(h, n->up), mix_i(h, n->ref);
    mix_i(h, n->quant), mix_i(h, n->count_all), mix_i(h, n->ty.t), mix_i(h, n->ty.et);
    mix_s(h, n->name);
    if ((n->kind == N_NAME && (n->ref == 0 || n->ref == 1)) || n->kind == N_FILTER ||
        n->kind == N_LET || n->kind == N_CHAIN || (n->kind == N_METHOD && method_binds(n)))
        mix_slot(h, n->slot);
    if (n->kind == N_LIT) mix_val(h, &n->val);
    if (n->kind == N_OCCURS) mix_occ(h, n->occ);
    mix_node(h, n->a);
    mix_node(h, n->b);
    mix_node(h, n->c);
    mix_i(h, n->nkids);
    for (int i = 0; i < n->nkids; i++)
        mix_node(h, n->kids[i]);
    mix_i(h, n->nbinds);
    for (int i = 0; i < n->nbinds; i++) {
        mix_s(h, n->binds[i].var);
        mix_slot(h, n->binds[i].slot);
        mix_node(h, n->binds[i].src);
        mix_node(h, n->binds[i].where);
    }
    mix_i(h, n->nsteps);
    for (int i = 0; i < n->nsteps; i++) {
        mix_s(h, n->steps[i].label);
        mix_node(h, n->steps[i].what);
        mix_occ(h, n->steps[i].when);
    }
}

/* The base of a site's receiver: xEvent or xEvent[F]; *fields: the projection above it. */
static pql_node *site_base(pql_node *r, pql_node **fields, int *nfields)
{
    *nfields = 0;
    while (r->kind == N_FIELD) {
        if (*nfields == 16) return NULL;
        fields[(*nfields)++] = r;
        r = r->a;
    }
    if (r->kind == N_NAME && r->ref == 2) return r;
    if (r->kind == N_FILTER && r->a->kind == N_NAME && r->a->ref == 2) return r;
    return NULL;
}

static int gen_block_time(cg *g, pql_node *n)
{
    int j = emit(g, OP_JUMP, 0, 0, 0, 0);
    int start = g->p->ncode;
    if (gen(g, n)) return -1;
    emit(g, OP_TOTIME, 0, 0, 0, 0);
    emit(g, OP_RET, 0, 0, 0, 0);
    g->p->code[j].a = g->p->ncode;
    return start;
}

/* Generates n as an incremental site when its shape allows (*done = 1), else leaves it. */
static int gen_site(cg *g, pql_node *n, int *done)
{
    *done = 0;
    pql_program *p = g->p;
    pql_inc_site site = {.vblk = -1, .vslot = -1};
    pql_node *r = n->a, *fields[16], *base;
    int nfields;
    const char *m = n->name;
    if (!strcmp(m, "count") && n->nkids == 0) {
        if (r->kind == N_METHOD && !strcmp(r->name, "distinct") && r->nkids == 0) {
            base = site_base(r->a, fields, &nfields);
            if (!base || !nfields) return 0;
            site.kind = IK_DISTINCT;
        } else {
            base = site_base(r, fields, &nfields);
            if (!base) return 0;
            site.kind = IK_COUNT;
        }
    } else {
        int kind = !strcmp(m, "sum")                            ? IK_SUM
                   : !strcmp(m, "avg") || !strcmp(m, "average") ? IK_AVG
                   : !strcmp(m, "min")                          ? IK_MIN
                   : !strcmp(m, "max")                          ? IK_MAX
                                                                : -1;
        if (kind < 0 || n->nkids > 1) return 0;
        if ((kind == IK_MIN || kind == IK_MAX) && n->ty.t != TY_INT && n->ty.t != TY_DBL &&
            n->ty.t != TY_TIME)
            return 0;
        base = site_base(r, fields, &nfields);
        if (!base) return 0;
        if (n->nkids == 1 ? nfields != 0 : nfields == 0) return 0;
        site.kind = (uint8_t)kind;
    }
    site.proj = nfields > 0;
    pql_node *conj[PQL_INC_MAX_CONJ + 2];
    int nconj = 0;
    bool over = false;
    if (base->kind == N_FILTER) {
        site.slot = base->slot;
        conjuncts(base->b, conj, &nconj, PQL_INC_MAX_CONJ + 2, &over);
        if (over) return 0;
    } else {
        if (p->nslots >= PQL_MAX_SLOTS) return 0;
        site.slot = -2; /* allocated below */
    }
    pql_node *statics[PQL_INC_MAX_CONJ + 2], *times[PQL_INC_MAX_CONJ + 2];
    int ns = 0, nt = 0;
    for (int i = 0; i < nconj; i++) {
        if (static_in(conj[i], site.slot))
            statics[ns++] = conj[i];
        else if (time_ok(conj[i], site.slot))
            times[nt++] = conj[i];
        else
            return 0;
    }
    if (ns > PQL_INC_MAX_CONJ || nt > PQL_INC_MAX_X) return 0;
    if (n->nkids == 1 && !static_in(n->kids[0], n->slot)) return 0;
    if (site.slot == -2) site.slot = p->nslots++;
    /* the signature: everything but the windows */
    sigh h = {.h = 0xcbf29ce484222325ull};
    mix_i(&h, site.kind), mix_i(&h, site.proj), mix_i(&h, ns), mix_i(&h, nt);
    mix_slot(&h, site.slot);
    for (int i = 0; i < ns; i++)
        mix_node(&h, statics[i]);
    for (int i = 0; i < nt; i++)
        mix_node(&h, times[i]->a);
    for (int i = nfields - 1; i >= 0; i--) {
        mix_s(&h, fields[i]->name);
        mix_i(&h, fields[i]->ty.t), mix_i(&h, fields[i]->ty.et);
    }
    if (n->nkids == 1) mix_node(&h, n->kids[0]);
    site.sig = h.h;
    /* INCAGG, then the rescan code it skips */
    int at = emit(g, OP_INCAGG, p->nsites, 0, 0, 0);
    int e0 = g->nevents;
    g->in_site++;
    int rc = gen_method_plain(g, n);
    g->in_site--;
    if (rc) return rc;
    g->insite += g->nevents - e0;
    p->code[at].b = p->ncode;
    /* the blocks run on one event */
    for (int i = 0; i < ns; i++)
        if ((site.statics[site.nstatic++] = gen_block(g, statics[i], true)) < 0) return KITH_EINVAL;
    for (int i = 0; i < nt; i++) {
        if ((site.xblk[i] = gen_block_time(g, times[i]->a)) < 0) return KITH_EINVAL;
        site.xocc[i] = add_occ(g, times[i]->occ);
    }
    site.nx = nt;
    if (n->nkids == 1) {
        site.vslot = n->slot;
        if ((site.vblk = gen_block(g, n->kids[0], false)) < 0) return KITH_EINVAL;
    } else if (nfields) {
        int j = emit(g, OP_JUMP, 0, 0, 0, 0);
        site.vblk = p->ncode;
        emit(g, OP_SLOT, 0, 0, site.slot, 0);
        for (int i = nfields - 1; i >= 0; i--)
            field_steps(g, fields[i]);
        emit(g, OP_RET, 0, 0, 0, 0);
        p->code[j].a = p->ncode;
    }
    p->sites = kith_xrealloc(p->sites, sizeof *p->sites * (size_t)(p->nsites + 1));
    p->sites[p->nsites++] = site;
    *done = 1;
    return 0;
}

size_t pql_inc_nsites(const pql_program *p)
{
    return (size_t)p->nsites;
}

uint64_t pql_inc_sig(const pql_program *p, size_t k)
{
    return k < (size_t)p->nsites ? p->sites[k].sig : 0;
}

bool pql_inc_only(const pql_program *p)
{
    return p->inc_only;
}
