/* PQL code generation: the checked AST becomes one flat array of steps (opcodes.def) with a
 * constant pool and side tables for occurs windows, quantifiers and CHAINs. Sub-blocks (a filter's
 * predicate, an aggregate's expression) are emitted inline behind a JUMP and end with RET; the step
 * that runs them names their first step. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pql_int.h"

typedef struct cg {
    pql_program *p;
    pql_error *err;
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

static int gen_method(cg *g, pql_node *n)
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
    return 0;
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
    if (!rc) rc = pql_codegen(p, &po, err);
    if (rc) {
        pql_program_free(p);
        return rc == KITH_ETOOLARGE ? rc : KITH_EINVAL;
    }
    p->nslots = ck.nslots;
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
    pql_arena_free(&p->arena);
    free(p);
}

const pql_deps *pql_program_deps(const pql_program *p)
{
    return &p->deps;
}
