/* Disassembly of PQL programs (tests, `kith pql explain`) and the dependency report as JSON. */
#include <string.h>

#include "pql_int.h"

const char *const pql_op_names[] = {
#define X(name, operands, doc) #name,
#include "opcodes.def"
#undef X
};

static const char *const cmp_names[] = {
    "and", "or", "=", "!=", "<", "<=", ">", ">=", "in", "notIn", "like", "+", "-", "*", "/", "%"};
static const char *const strfn_names[] = {"equals",         "notEqualTo",    "contains",
                                          "doesNotContain", "startsWith",    "doesNotStartWith",
                                          "endsWith",       "doesNotEndWith"};
static const char *const agg_names[] = {"sum", "avg", "min", "max"};
static const char *const set_names[] = {"includes", "intersects", "subsetOf", "supersetOf",
                                        "intersection"};
static const char *const part_names[] = {"year", "month", "dayOfMonth"};
static const char *const word_names[] = {"now", "today", "yesterday", "tomorrow"};
static const char *const ref_names[] = {"-",        "now",   "today", "yesterday",
                                        "tomorrow", "const", "stack", "day"};

static void put_val(kith_buf *b, const pql_val *v)
{
    char tbuf[40];
    switch (v->t) {
    case V_MISSING:
        kith_buf_puts(b, "null");
        break;
    case V_BOOL:
        kith_buf_puts(b, v->i ? "true" : "false");
        break;
    case V_INT:
        kith_buf_printf(b, "%lld", (long long)v->i);
        break;
    case V_DBL:
        kith_buf_printf(b, "%.17g", v->d);
        break;
    case V_STR:
        kith_buf_printf(b, "\"%.*s\"", (int)v->len, v->s);
        break;
    case V_TIME:
        kith_buf_printf(b, "@%s", kith_time_format(v->i, tbuf, sizeof tbuf));
        break;
    case V_SEQ:
        kith_buf_puts(b, "[");
        for (uint32_t i = 0; i < v->len; i++) {
            if (i) kith_buf_puts(b, ", ");
            put_val(b, &v->seq[i]);
        }
        kith_buf_puts(b, "]");
        break;
    default:
        kith_buf_puts(b, "<json>");
        break;
    }
}

static void put_occ(kith_buf *b, const pql_occ_prog *o)
{
    static const char *const kinds[] = {"plain", "rel", "on", "period", "between"};
    static const char *const dirs[] = {"before", "after", "from"};
    kith_buf_printf(b, "%s", kinds[o->kind]);
    if (o->kind == O_REL)
        kith_buf_printf(b, " %s %lld %s(s) %s", cmp_names[o->cmp], (long long)o->n,
                        pql_unit_names[o->unit], dirs[o->dir]);
    else if (o->kind == O_PLAIN)
        kith_buf_printf(b, " %s", o->exact ? cmp_names[o->cmp] : dirs[o->dir]);
    else if (o->kind == O_PERIOD)
        kith_buf_printf(b, " %+d %s", o->shift, pql_unit_names[o->unit]);
    kith_buf_printf(b, " ref=%s", ref_names[o->ref1]);
    if (o->ref2) kith_buf_printf(b, ",%s", ref_names[o->ref2]);
    if (o->linear) kith_buf_puts(b, " linear");
}

void pql_explain(const pql_program *p, kith_buf *b)
{
    for (int i = 0; i < p->ncode; i++) {
        const pql_step *s = &p->code[i];
        kith_buf_printf(b, "%4d  %-10s", i, pql_op_names[s->op]);
        switch ((enum pql_op)s->op) {
        case OP_CONST:
            kith_buf_printf(b, " k%d  ; ", s->a);
            put_val(b, &p->consts[s->a]);
            break;
        case OP_FIELD:
        case OP_INSEGMENT:
            kith_buf_printf(b, " k%d  ; %s", s->a, p->consts[s->a].s);
            break;
        case OP_SLOT:
        case OP_SETSLOT:
            kith_buf_printf(b, " s%d", s->s);
            break;
        case OP_JUMP:
        case OP_JUMPF:
        case OP_ANDJ:
        case OP_ORJ:
        case OP_IF:
            kith_buf_printf(b, " -> %d", s->a);
            break;
        case OP_CMP:
        case OP_ARITH:
            kith_buf_printf(b, " %s", cmp_names[s->a8]);
            break;
        case OP_IN:
            kith_buf_puts(b, s->a8 ? " notIn" : " in");
            break;
        case OP_STRFN:
            kith_buf_printf(b, " %s%s", strfn_names[s->a8 & 0x7F],
                            s->a8 & 0x80 ? "" : " (case-insensitive)");
            break;
        case OP_MATCHES:
            kith_buf_printf(b, " r%d", s->a);
            break;
        case OP_REGEXGROUP:
            kith_buf_printf(b, " r%d group %d", s->a, s->b);
            break;
        case OP_ISNULL:
            kith_buf_puts(b, s->a8 ? " not" : "");
            break;
        case OP_FILTER:
        case OP_MAP:
            kith_buf_printf(b, " s%d block %d", s->s, s->a);
            break;
        case OP_ANYALL:
            kith_buf_printf(b, " %s s%d block %d", s->a8 ? "all" : "any", s->s, s->a);
            break;
        case OP_AGG:
            kith_buf_printf(b, " %s", agg_names[s->a8]);
            if (s->a >= 0) kith_buf_printf(b, " s%d block %d", s->s, s->a);
            break;
        case OP_TOPN:
            kith_buf_printf(b, " %s s%d block %d", s->a8 ? "bottom" : "top", s->s, s->a);
            break;
        case OP_SETFN:
            kith_buf_printf(b, " %s", set_names[s->a8]);
            break;
        case OP_SELECT: {
            const pql_quant_prog *q = &p->quants[s->a];
            kith_buf_printf(b, " q%d %s%s", s->a,
                            q->quant == 0   ? "exists"
                            : q->quant == 1 ? "forall"
                                            : "select",
                            q->count_all ? " count" : "");
            for (int k = 0; k < q->nbinds; k++)
                kith_buf_printf(b, " [s%d from %d where %d]", q->b[k].slot, q->b[k].src,
                                q->b[k].where);
            break;
        }
        case OP_CHAIN: {
            const pql_chain_prog *c = &p->chains[s->a];
            kith_buf_printf(b, " c%d ts=%s", s->a, p->consts[c->src_ts_field].s);
            for (int k = 0; k < c->nsteps; k++) {
                kith_buf_printf(b, " [what %d", c->st[k].what);
                if (c->st[k].occ >= 0) {
                    kith_buf_puts(b, " when ");
                    put_occ(b, &p->occs[c->st[k].occ]);
                    if (c->st[k].step_ref >= 0)
                        kith_buf_printf(b, " of step %d", c->st[k].step_ref);
                }
                kith_buf_puts(b, "]");
            }
            break;
        }
        case OP_INCAGG: {
            const pql_inc_site *is = &p->sites[s->a];
            static const char *const kinds[] = {"count", "sum", "avg", "min", "max", "distinct"};
            kith_buf_printf(b, " i%d -> %d  ; %s%s, %d static, %d windows, sig %016llx", s->a, s->b,
                            kinds[is->kind], is->proj ? " of projection" : "", is->nstatic, is->nx,
                            (unsigned long long)is->sig);
            break;
        }
        case OP_OCCURS:
            kith_buf_printf(b, " o%d  ; ", s->a);
            put_occ(b, &p->occs[s->a]);
            break;
        case OP_TIMEWORD:
            kith_buf_printf(b, " %s", word_names[s->a8]);
            break;
        case OP_CURRENT:
        case OP_GETPART:
            kith_buf_printf(b, " %s", part_names[s->a8]);
            break;
        default:
            break;
        }
        kith_buf_puts(b, "\n");
    }
}

static json_t *str_array(const char *const *v, size_t n)
{
    json_t *a = json_array();
    for (size_t i = 0; i < n; i++)
        json_array_append_new(a, json_string(v[i]));
    return a;
}

json_t *pql_deps_json(const pql_program *p)
{
    const pql_deps *d = &p->deps;
    static const char *const modes[] = {"streaming", "edge", "batch"};
    return json_pack("{s:o, s:o, s:o, s:o, s:b, s:b, s:o, s:s, s:s}", "fields",
                     str_array(d->fields, d->n_fields), "eventFields",
                     str_array(d->event_fields, d->n_event_fields), "eventTypes",
                     str_array(d->event_types, d->n_event_types), "segments",
                     str_array(d->segments, d->n_segments), "readsEvents", d->reads_events,
                     "usesNow", d->uses_now, "lookbackMs",
                     d->lookback_ms < 0 ? json_null() : json_integer(d->lookback_ms), "mode",
                     modes[d->mode], "reason", d->mode_reason);
}
