/* PQL checker: resolves every name (variables, the implicit scope of filters, `^`, xEvent, fields
 * of the union schemas), gives every node a type, coerces literals to the type of the other
 * operand, rejects what cannot be evaluated (unknown field, function or segment, type mismatch),
 * folds date(...) and allocates variable slots. On the way it collects the dependency information
 * (fields, event types, lookback, segments) and the eligibility class. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pql_int.h"

typedef struct scope {
    const char *var;    /* NULL: an implicit scope (profile root or a filter's element) */
    int slot;           /* -1: the profile root */
    pql_type ty;        /* of the element / variable */
    const char *prefix; /* dotted path of the element from its origin root ("" for roots) */
} scope;

typedef struct checker {
    const pql_env *env;
    pql_arena *a;
    pql_checked *ck;
    pql_error *err;
    scope sc[PQL_MAX_NEST * 2];
    int nsc;
    const char *lambda;
    int bounded_src; /* the parent bounds the xEvent it is about to check */
    bool etypes_any;
} checker;

static const char *const ty_names[] = {"any",    "null",      "boolean", "integer", "number",
                                       "string", "date-time", "object",  "map",     "array"};

static int fail(checker *c, const pql_node *n, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int fail(checker *c, const pql_node *n, const char *fmt, ...)
{
    c->err->line = n->line;
    c->err->column = n->col;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->err->message, sizeof c->err->message, fmt, ap);
    va_end(ap);
    return KITH_EINVAL;
}

static pql_type mkty(int t)
{
    pql_type r = {.t = (uint8_t)t};
    return r;
}

static pql_type ty_of_schema(const json_t *def)
{
    pql_type r = {0};
    if (!json_is_object(def)) return r;
    const char *type = json_string_value(json_object_get(def, "type"));
    const json_t *props = json_object_get(def, "properties");
    if (!type) {
        if (props) r.t = TY_OBJ, r.sch = def;
        return r;
    }
    if (!strcmp(type, "string")) {
        const char *f = json_string_value(json_object_get(def, "format"));
        r.t = f && (!strcmp(f, "date-time") || !strcmp(f, "date")) ? TY_TIME : TY_STR;
    } else if (!strcmp(type, "integer")) {
        r.t = TY_INT;
    } else if (!strcmp(type, "number")) {
        r.t = TY_DBL;
    } else if (!strcmp(type, "boolean")) {
        r.t = TY_BOOL;
    } else if (!strcmp(type, "object")) {
        r.sch = def;
        r.t = !props && json_is_object(json_object_get(def, "additionalProperties")) ? TY_MAP
                                                                                     : TY_OBJ;
    } else if (!strcmp(type, "array")) {
        r.t = TY_ARR;
        r.sch = json_object_get(def, "items");
        r.et = ty_of_schema(r.sch).t;
    }
    return r;
}

static pql_type elem_ty(pql_type arr)
{
    if (arr.t != TY_ARR) return mkty(TY_ANY);
    pql_type e = arr.sch ? ty_of_schema(arr.sch) : mkty(arr.et);
    e.origin = arr.origin;
    return e;
}

static bool is_num(int t)
{
    return t == TY_INT || t == TY_DBL;
}

static void add_str(checker *c, const char ***v, int *n, int *cap, const char *s)
{
    for (int i = 0; i < *n; i++)
        if (!strcmp((*v)[i], s)) return;
    if (*n == *cap) {
        *cap = *cap ? *cap * 2 : 8;
        const char **nv = pql_arena_alloc(c->a, sizeof *nv * (size_t)*cap);
        if (*n) memcpy(nv, *v, sizeof *nv * (size_t)*n);
        *v = nv;
    }
    (*v)[(*n)++] = pql_arena_strndup(c->a, s, strlen(s));
}

static const char *join(checker *c, const char *prefix, const char *name)
{
    if (!prefix || !*prefix) return pql_arena_strndup(c->a, name, strlen(name));
    size_t a = strlen(prefix), b = strlen(name);
    char *s = pql_arena_alloc(c->a, a + b + 2);
    memcpy(s, prefix, a);
    s[a] = '.';
    memcpy(s + a + 1, name, b + 1);
    return s;
}

static void note_field(checker *c, int origin, const char *path)
{
    if (!path) return;
    if (origin == 1) add_str(c, &c->ck->fields, &c->ck->nfields, &c->ck->capfields, path);
    if (origin == 2) add_str(c, &c->ck->efields, &c->ck->nefields, &c->ck->capefields, path);
}

/* The type of field `name` of a value of type parent (projection over arrays). */
static int field_of(checker *c, pql_node *n, pql_type parent, const char *name, pql_type *out)
{
    pql_type r = mkty(TY_ANY);
    pql_type base = parent.t == TY_ARR ? elem_ty(parent) : parent;
    switch (base.t) {
    case TY_OBJ: {
        const json_t *props = base.sch ? json_object_get(base.sch, "properties") : NULL;
        if (props) {
            const json_t *def = json_object_get(props, name);
            if (!def)
                return fail(c, n, "unknown field '%s' (expected a field of the %s schema)",
                            n->path ? n->path : name, parent.origin == 2 ? "event" : "profile");
            r = ty_of_schema(def);
        } else if (!base.sch && !strcmp(name, "timestamp")) {
            r.t = TY_TIME;
        }
        break;
    }
    case TY_MAP: {
        const json_t *ap = json_object_get(base.sch, "additionalProperties");
        r = ty_of_schema(ap);
        break;
    }
    case TY_ANY:
        if (!strcmp(name, "timestamp")) r.t = TY_TIME;
        break;
    default:
        return fail(c, n, "cannot read field '%s' of a %s (expected an object)", name,
                    ty_names[base.t]);
    }
    if (parent.t == TY_ARR) {
        /* projection: an array of the field's values, flattened */
        if (r.t == TY_ARR) {
            r.origin = 0;
        } else {
            pql_type a = {
                .t = TY_ARR, .et = r.t, .sch = (r.t == TY_OBJ || r.t == TY_MAP) ? r.sch : NULL};
            if (a.sch) {
                /* keep the element definition reachable */
            }
            r = a;
        }
    }
    r.origin = parent.origin;
    *out = r;
    return 0;
}

static int check(checker *c, pql_node *n);

static int push_scope(checker *c, const pql_node *at, const char *var, int slot, pql_type ty,
                      const char *prefix)
{
    if (c->nsc == (int)(sizeof c->sc / sizeof c->sc[0]))
        return fail(c, at, "expected at most %d nested scopes",
                    (int)(sizeof c->sc / sizeof c->sc[0]));
    c->sc[c->nsc++] = (scope){.var = var, .slot = slot, .ty = ty, .prefix = prefix};
    return 0;
}

static int new_slot(checker *c, const pql_node *at)
{
    if (c->ck->nslots >= PQL_MAX_SLOTS)
        return fail(c, at, "expected at most %d variables and filters", PQL_MAX_SLOTS), -1;
    return c->ck->nslots++;
}

/* Coerces literal node lit to type t (the other operand's schema type); false if impossible. */
static bool coerce(checker *c, pql_node *lit, int t)
{
    pql_val *v = &lit->val;
    char buf[64];
    if (lit->kind != N_LIT) return false;
    if (v->t == V_STR) {
        char *s = pql_arena_strndup(c->a, v->s, v->len);
        char *end;
        switch (t) {
        case TY_BOOL:
            if (!strcmp(s, "true") || !strcmp(s, "false")) {
                v->t = V_BOOL;
                v->i = !strcmp(s, "true");
                lit->ty = mkty(TY_BOOL);
                return true;
            }
            return false;
        case TY_INT:
        case TY_DBL: {
            if (!*s) return false;
            long long ll = strtoll(s, &end, 10);
            if (!*end) {
                v->t = V_INT, v->i = ll, lit->ty = mkty(TY_INT);
                return true;
            }
            double d = strtod(s, &end);
            if (*end) return false;
            v->t = V_DBL, v->d = d, lit->ty = mkty(TY_DBL);
            return true;
        }
        case TY_TIME: {
            int64_t ms;
            if (kith_time_parse(s, &ms) && kith_date_parse(s, &ms)) return false;
            v->t = V_TIME, v->i = ms, lit->ty = mkty(TY_TIME);
            return true;
        }
        default:
            return false;
        }
    }
    if (t == TY_STR && (v->t == V_INT || v->t == V_DBL || v->t == V_BOOL)) {
        if (v->t == V_INT)
            snprintf(buf, sizeof buf, "%lld", (long long)v->i);
        else if (v->t == V_DBL)
            snprintf(buf, sizeof buf, "%.17g", v->d);
        else
            snprintf(buf, sizeof buf, "%s", v->i ? "true" : "false");
        v->s = pql_arena_strndup(c->a, buf, strlen(buf));
        v->len = (uint32_t)strlen(buf);
        v->t = V_STR;
        lit->ty = mkty(TY_STR);
        return true;
    }
    return false;
}

static bool comparable(int a, int b)
{
    if (a == TY_ANY || b == TY_ANY || a == TY_NULL || b == TY_NULL) return true;
    if (is_num(a) && is_num(b)) return true;
    if ((a == TY_TIME && b == TY_STR) || (a == TY_STR && b == TY_TIME)) return true;
    return a == b && a != TY_ARR;
}

static int check_cmp_operands(checker *c, pql_node *n, pql_node *l, pql_node *r)
{
    int a = l->ty.t, b = r->ty.t;
    if (comparable(a, b) && !(a == TY_TIME && r->kind == N_LIT && b == TY_STR) &&
        !(b == TY_TIME && l->kind == N_LIT && a == TY_STR))
        return 0;
    if (r->kind == N_LIT && coerce(c, r, a)) return 0;
    if (l->kind == N_LIT && coerce(c, l, b)) return 0;
    if (a == TY_TIME || b == TY_TIME)
        return fail(c, r->kind == N_LIT ? r : l,
                    "type mismatch: expected a date-time (RFC 3339 "
                    "text or date(y, m, d)) to compare with a date-time");
    return fail(c, n, "type mismatch: cannot compare %s with %s (expected two %ss)", ty_names[a],
                ty_names[b], ty_names[a == TY_ARR ? b : a]);
}

/* ---- dependency helpers ---- */

/* Is node the field `name` of the element being filtered (implicit, slot) or of variable var? */
static bool is_elem_field(const pql_node *n, const char *name, int slot, const char *var)
{
    if (n->kind == N_NAME && n->ref == 0 && n->slot == slot && !strcmp(n->name, name)) return true;
    if (n->kind == N_FIELD && !strcmp(n->name, name) && n->a->kind == N_NAME && n->a->ref == 1 &&
        var && !strcmp(n->a->name, var))
        return true;
    return false;
}

/* Collects eventType values from the conjuncts of pred; true if pred constrains eventType. */
static bool event_types_of(checker *c, const pql_node *p, int slot, const char *var)
{
    if (!p) return false;
    if (p->kind == N_BIN && p->op == B_AND) {
        bool l = event_types_of(c, p->a, slot, var); /* both sides collect */
        bool r = event_types_of(c, p->b, slot, var);
        return l || r;
    }
    if (p->kind == N_BIN && p->op == B_OR) {
        /* both sides must constrain it */
        pql_checked save = *c->ck;
        bool l = event_types_of(c, p->a, slot, var), r = event_types_of(c, p->b, slot, var);
        if (!(l && r)) {
            c->ck->netypes = save.netypes;
            return false;
        }
        return true;
    }
    const pql_node *f = NULL, *lit = NULL;
    if (p->kind == N_BIN && (p->op == B_EQ || p->op == B_IN)) f = p->a, lit = p->b;
    if (p->kind == N_METHOD && !strcmp(p->name, "equals") && p->nkids >= 1)
        f = p->a, lit = p->kids[0];
    if (!f || !is_elem_field(f, "eventType", slot, var)) return false;
    if (lit->kind == N_LIT && lit->val.t == V_STR) {
        add_str(c, &c->ck->etypes, &c->ck->netypes, &c->ck->capetypes, lit->val.s);
        return true;
    }
    if (lit->kind == N_LIST) {
        for (int i = 0; i < lit->nkids; i++)
            if (lit->kids[i]->val.t == V_STR)
                add_str(c, &c->ck->etypes, &c->ck->netypes, &c->ck->capetypes, lit->kids[i]->val.s);
        return true;
    }
    return false;
}

static int64_t unit_ms(int unit, int64_t n)
{
    return pql_time_add(0, unit, n < 0 ? 0 : n) + (unit >= U_MONTH ? 3 * 86400000LL : 0);
}

/* How far back an occurs window relative to now reaches, or -1 when it is not bounded below. */
static int64_t occ_lookback(const pql_occ *o)
{
    if (!o) return -1;
    int w = o->ref1 && o->ref1->kind == N_TIMEWORD ? o->ref1->op : -1;
    int64_t day = 86400000LL;
    int64_t extra = w == W_TODAY ? day : w == W_YESTERDAY ? 2 * day : 0;
    switch (o->kind) {
    case O_REL:
        if (w < 0) return -1;
        if (o->dir == D_AFTER) return extra;
        if (o->cmp == B_LT || o->cmp == B_LE) return unit_ms(o->unit, o->n) + extra;
        if (o->cmp == B_EQ) return unit_ms(o->unit, o->n + 1) + extra;
        return -1;
    case O_ON:
        return w >= 0 ? (extra ? extra : day) : -1;
    case O_PERIOD:
        return o->shift >= 0 ? unit_ms(o->unit, 1) : unit_ms(o->unit, 2);
    case O_PLAIN:
        return o->dir == D_AFTER && w >= 0 ? extra : -1;
    default:
        return -1;
    }
}

static int64_t pred_lookback(const pql_node *p, int slot, const char *var)
{
    if (!p) return -1;
    if (p->kind == N_BIN && p->op == B_AND) {
        int64_t a = pred_lookback(p->a, slot, var), b = pred_lookback(p->b, slot, var);
        if (a < 0) return b;
        if (b < 0) return a;
        return a < b ? a : b;
    }
    if (p->kind == N_OCCURS && is_elem_field(p->a, "timestamp", slot, var))
        return occ_lookback(p->occ);
    return -1;
}

static void note_event_source(checker *c, int64_t lookback)
{
    if (lookback < 0)
        c->ck->unbounded = true;
    else if (lookback > c->ck->lookback)
        c->ck->lookback = lookback;
}

/* ---- the checker proper ---- */

static int check_occ(checker *c, pql_node *at, pql_occ *o)
{
    pql_node *refs[2] = {o->ref1, o->ref2};
    if (o->kind == O_PERIOD) c->ck->uses_now = true;
    for (int i = 0; i < 2; i++) {
        pql_node *r = refs[i];
        if (!r) continue;
        if (i == 0 && o->step_ref) continue;
        if (r->kind == N_TIMEWORD) {
            c->ck->uses_now = true;
            continue;
        }
        if (check(c, r)) return KITH_EINVAL;
        if (r->kind == N_LIT && r->val.t == V_STR && !coerce(c, r, TY_TIME))
            return fail(c, r, "expected a date-time (RFC 3339 text) after 'occurs'");
        int t = r->ty.t;
        if (t != TY_TIME && t != TY_STR && t != TY_ANY)
            return fail(c, r, "type mismatch: expected a date-time, found %s", ty_names[t]);
    }
    if (o->kind == O_REL && o->dir == D_FROM && o->cmp == B_EQ)
        return fail(c, at, "'occurs = n unit from' is not supported (expected <, <=, > or >=)");
    return 0;
}

static int check_bool_ok(checker *c, pql_node *n)
{
    (void)c;
    (void)n;
    return 0; /* any value can be a condition: a non-boolean means "exists" */
}

static int check_elem_block(checker *c, pql_node *src, pql_node *body, int *slot_out,
                            const char *var)
{
    int slot = new_slot(c, body ? body : src);
    if (slot < 0) return KITH_EINVAL;
    *slot_out = slot;
    pql_type et = elem_ty(src->ty);
    if (push_scope(c, body ? body : src, var, slot, et, src->path ? src->path : ""))
        return KITH_EINVAL;
    int rc = body ? check(c, body) : 0;
    c->nsc--;
    return rc;
}

static int check_source(checker *c, pql_node *src, bool bounded_parent)
{
    c->bounded_src = bounded_parent && src->kind == N_NAME;
    int rc = check(c, src);
    c->bounded_src = 0;
    if (rc) return rc;
    if (src->ty.t != TY_ARR && src->ty.t != TY_ANY)
        return fail(c, src, "type mismatch: expected an array, found %s", ty_names[src->ty.t]);
    return 0;
}

static bool is_xevent(const pql_node *n)
{
    return n->kind == N_NAME && n->ref == 2;
}

static int check_method(checker *c, pql_node *n)
{
    const char *m = n->name;
    pql_node *r = n->a;
    int k = n->nkids;
#define NARGS(lo, hi)                                                                              \
    do {                                                                                           \
        if (k < (lo) || k > (hi))                                                                  \
            return fail(c, n, "%s() takes %d to %d arguments, found %d", m, lo, hi, k);            \
    } while (0)
    if (!strcmp(m, "count")) {
        NARGS(0, 0);
        if (r->kind == N_QUANT && r->quant == 2) r->count_all = true;
        if (check(c, r)) return KITH_EINVAL;
        if (r->kind != N_QUANT && r->ty.t != TY_ARR && r->ty.t != TY_ANY && r->ty.t != TY_MAP)
            return fail(c, n, "count() needs an array, found %s", ty_names[r->ty.t]);
        n->ty = mkty(TY_INT);
        return 0;
    }
    static const char *const aggs[] = {"sum", "average", "avg", "min", "max", NULL};
    for (int i = 0; aggs[i]; i++) {
        if (strcmp(m, aggs[i])) continue;
        NARGS(0, 1);
        if (check_source(c, r, false)) return KITH_EINVAL;
        pql_type vt = elem_ty(r->ty);
        if (k == 1) {
            if (check_elem_block(c, r, n->kids[0], &n->slot, NULL)) return KITH_EINVAL;
            vt = n->kids[0]->ty;
        }
        bool minmax = i >= 3;
        if (!(is_num(vt.t) || vt.t == TY_ANY || (minmax && (vt.t == TY_TIME || vt.t == TY_STR))))
            return fail(c, k ? n->kids[0] : n, "%s() needs %s, found %s", m,
                        minmax ? "numbers, date-times or strings" : "numbers", ty_names[vt.t]);
        n->ty = mkty(minmax                       ? vt.t
                     : (i == 0 && vt.t == TY_INT) ? TY_INT
                     : i == 0 && vt.t == TY_ANY   ? TY_ANY
                                                  : TY_DBL);
        return 0;
    }
    if (!strcmp(m, "distinct") || !strcmp(m, "head")) {
        NARGS(0, 0);
        if (check_source(c, r, false)) return KITH_EINVAL;
        n->ty = !strcmp(m, "head") ? elem_ty(r->ty) : r->ty;
        return 0;
    }
    if (!strcmp(m, "topN") || !strcmp(m, "bottomN")) {
        NARGS(2, 2);
        if (check_source(c, r, false)) return KITH_EINVAL;
        if (check_elem_block(c, r, n->kids[0], &n->slot, NULL)) return KITH_EINVAL;
        if (check(c, n->kids[1])) return KITH_EINVAL;
        if (n->kids[1]->ty.t != TY_INT && n->kids[1]->ty.t != TY_ANY)
            return fail(c, n->kids[1], "%s() needs an integer count, found %s", m,
                        ty_names[n->kids[1]->ty.t]);
        n->ty = r->ty;
        return 0;
    }
    if (!strcmp(m, "filter") || !strcmp(m, "exists") || !strcmp(m, "forall") || !strcmp(m, "map")) {
        NARGS(1, 1);
        if (check_source(c, r, false)) return KITH_EINVAL;
        if (check_elem_block(c, r, n->kids[0], &n->slot, NULL)) return KITH_EINVAL;
        if (!strcmp(m, "filter"))
            n->ty = r->ty;
        else if (!strcmp(m, "map"))
            n->ty = (pql_type){.t = TY_ARR, .et = n->kids[0]->ty.t};
        else
            n->ty = mkty(TY_BOOL);
        return 0;
    }
    static const char *const sets[] = {"includes",   "intersects",   "subsetOf",
                                       "supersetOf", "intersection", NULL};
    for (int i = 0; sets[i]; i++) {
        if (strcmp(m, sets[i])) continue;
        NARGS(1, 1);
        if (check_source(c, r, false) || check(c, n->kids[0])) return KITH_EINVAL;
        if (i > 0 && n->kids[0]->ty.t != TY_ARR && n->kids[0]->ty.t != TY_ANY)
            return fail(c, n->kids[0], "%s() needs an array, found %s", m,
                        ty_names[n->kids[0]->ty.t]);
        n->ty = i == 4 ? r->ty : mkty(TY_BOOL);
        return 0;
    }
    if (!strcmp(m, "get") || !strcmp(m, "keys") || !strcmp(m, "values")) {
        NARGS(!strcmp(m, "get") ? 1 : 0, !strcmp(m, "get") ? 1 : 0);
        if (check(c, r)) return KITH_EINVAL;
        if (r->ty.t != TY_MAP && r->ty.t != TY_OBJ && r->ty.t != TY_ANY)
            return fail(c, n, "%s() needs a map, found %s", m, ty_names[r->ty.t]);
        if (k &&
            (check(c, n->kids[0]) || (n->kids[0]->ty.t != TY_STR && n->kids[0]->ty.t != TY_ANY)))
            return c->err->message[0] ? KITH_EINVAL
                                      : fail(c, n->kids[0], "get() needs a string key");
        if (!strcmp(m, "keys"))
            n->ty = (pql_type){.t = TY_ARR, .et = TY_STR};
        else if (!strcmp(m, "values"))
            n->ty = (pql_type){.t = TY_ARR};
        else {
            n->ty = r->ty.t == TY_MAP
                        ? ty_of_schema(json_object_get(r->ty.sch, "additionalProperties"))
                        : mkty(TY_ANY);
        }
        return 0;
    }
    if (!strcmp(m, "isNull") || !strcmp(m, "isNotNull")) {
        NARGS(0, 0);
        if (check(c, r)) return KITH_EINVAL;
        n->ty = mkty(TY_BOOL);
        return 0;
    }
    static const char *const strfns[] = {"equals",         "notEqualTo",     "contains",
                                         "doesNotContain", "startsWith",     "doesNotStartWith",
                                         "endsWith",       "doesNotEndWith", NULL};
    for (int i = 0; strfns[i]; i++) {
        if (strcmp(m, strfns[i])) continue;
        NARGS(1, 2);
        if (check(c, r) || check(c, n->kids[0])) return KITH_EINVAL;
        if (r->ty.t != TY_STR && r->ty.t != TY_ANY && r->ty.t != TY_TIME)
            return fail(c, n, "%s() needs a string, found %s", m, ty_names[r->ty.t]);
        pql_node *a = n->kids[0];
        if (a->ty.t != TY_STR && a->ty.t != TY_ANY && !coerce(c, a, TY_STR))
            return fail(c, a, "%s() needs a string argument, found %s", m, ty_names[a->ty.t]);
        if (k == 2) {
            pql_node *cs = n->kids[1];
            if (cs->kind != N_LIT || cs->val.t != V_BOOL)
                return fail(c, cs,
                            "expected true or false (case sensitivity) as the second "
                            "argument of %s()",
                            m);
        }
        n->op = (uint8_t)i;
        n->ty = mkty(TY_BOOL);
        return 0;
    }
    if (!strcmp(m, "matches") || !strcmp(m, "regexGroup")) {
        bool grp = !strcmp(m, "regexGroup");
        NARGS(grp ? 2 : 1, grp ? 2 : 1);
        if (check(c, r)) return KITH_EINVAL;
        if (r->ty.t != TY_STR && r->ty.t != TY_ANY)
            return fail(c, n, "%s() needs a string, found %s", m, ty_names[r->ty.t]);
        pql_node *re = n->kids[0];
        if (re->kind != N_LIT || re->val.t != V_STR)
            return fail(c, re, "expected a string literal regular expression");
        if (grp && (n->kids[1]->kind != N_LIT || n->kids[1]->val.t != V_INT ||
                    n->kids[1]->val.i < 0 || n->kids[1]->val.i > 9))
            return fail(c, n->kids[1], "expected a group number 0..9");
        regex_t rx;
        char *pat = kith_xmalloc(re->val.len + 8);
        snprintf(pat, re->val.len + 8, "^(%s)$", re->val.s);
        int rc = regcomp(&rx, pat, REG_EXTENDED);
        free(pat);
        if (rc) return fail(c, re, "invalid regular expression (expected POSIX extended syntax)");
        regfree(&rx);
        n->ty = mkty(grp ? TY_STR : TY_BOOL);
        return 0;
    }
    if (!strcmp(m, "getMonth") || !strcmp(m, "getYear") || !strcmp(m, "getDayOfMonth")) {
        NARGS(0, 0);
        if (check(c, r)) return KITH_EINVAL;
        if (r->ty.t != TY_TIME && r->ty.t != TY_STR && r->ty.t != TY_ANY)
            return fail(c, n, "%s() needs a date-time, found %s", m, ty_names[r->ty.t]);
        n->ty = mkty(TY_INT);
        return 0;
    }
    return fail(c, n,
                "unknown method '%s' (expected a PQL function such as count, sum, "
                "contains, get)",
                m);
#undef NARGS
}

static int check_call(checker *c, pql_node *n)
{
    const char *f = n->name;
    int k = n->nkids;
    if (!strcmp(f, "inSegment")) {
        if (k != 1 || n->kids[0]->kind != N_LIT || n->kids[0]->val.t != V_STR)
            return fail(c, n, "inSegment() takes one segment id string");
        const char *id = n->kids[0]->val.s;
        int mode = PQL_MODE_STREAMING;
        if (c->env && c->env->segment_mode) {
            mode = c->env->segment_mode(c->env->arg, id);
            if (mode < 0)
                return fail(c, n->kids[0],
                            "unknown segment '%s' (expected the id of an "
                            "existing segment definition)",
                            id);
        }
        add_str(c, &c->ck->segs, &c->ck->nsegs, &c->ck->capsegs, id);
        if (mode == PQL_MODE_BATCH && c->ck->mode != PQL_MODE_BATCH) {
            c->ck->mode = PQL_MODE_BATCH;
            c->ck->reason = "inSegment() of a batch segment";
        } else if (mode == PQL_MODE_STREAMING && c->ck->mode == PQL_MODE_EDGE) {
            c->ck->mode = PQL_MODE_STREAMING;
        }
        n->ty = mkty(TY_BOOL);
        return 0;
    }
    if (!strcmp(f, "date")) {
        if (k < 3 || k > 6) return fail(c, n, "date() takes (year, month, day[, h, m, s])");
        int64_t v[6] = {0};
        for (int i = 0; i < k; i++) {
            if (n->kids[i]->kind != N_LIT || n->kids[i]->val.t != V_INT)
                return fail(c, n->kids[i], "expected an integer in date()");
            v[i] = n->kids[i]->val.i;
        }
        if (v[1] < 1 || v[1] > 12 || v[2] < 1 || v[2] > 31 || v[0] < -100000 || v[0] > 100000 ||
            v[3] < 0 || v[3] > 23 || v[4] < 0 || v[4] > 59 || v[5] < 0 || v[5] > 60)
            return fail(c, n, "expected a valid date in date(year, month, day)");
        n->kind = N_LIT;
        n->val.t = V_TIME;
        n->val.i = pql_time_from_civil((int)v[0], (int)v[1], (int)v[2]) +
                   ((v[3] * 60 + v[4]) * 60 + v[5]) * 1000;
        n->ty = mkty(TY_TIME);
        n->op = 1; /* a date literal: a whole day where a day is meant */
        return 0;
    }
    if (!strcmp(f, "if")) {
        if (k != 3) return fail(c, n, "if() takes (condition, then, else)");
        for (int i = 0; i < 3; i++)
            if (check(c, n->kids[i])) return KITH_EINVAL;
        int a = n->kids[1]->ty.t, b = n->kids[2]->ty.t;
        n->ty = a == b ? n->kids[1]->ty : (is_num(a) && is_num(b)) ? mkty(TY_DBL) : mkty(TY_ANY);
        return 0;
    }
    if (!strcmp(f, "currentMonth") || !strcmp(f, "currentYear") ||
        !strcmp(f, "currentDayOfMonth")) {
        if (k) return fail(c, n, "%s() takes no arguments", f);
        c->ck->uses_now = true;
        n->ty = mkty(TY_INT);
        return 0;
    }
    if ((!strcmp(f, "now") || !strcmp(f, "today")) && k == 0) {
        n->kind = N_TIMEWORD;
        n->op = !strcmp(f, "now") ? W_NOW : W_TODAY;
        c->ck->uses_now = true;
        n->ty = mkty(TY_TIME);
        return 0;
    }
    return fail(c, n,
                "unknown function '%s' (expected inSegment, date, if, currentMonth, "
                "currentYear or currentDayOfMonth)",
                f);
}

static int check(checker *c, pql_node *n)
{
    int bounded = c->bounded_src;
    c->bounded_src = 0;
    switch (n->kind) {
    case N_LIT:
        n->ty = mkty(n->val.t == V_MISSING ? TY_NULL
                     : n->val.t == V_BOOL  ? TY_BOOL
                     : n->val.t == V_INT   ? TY_INT
                     : n->val.t == V_DBL   ? TY_DBL
                     : n->val.t == V_TIME  ? TY_TIME
                                           : TY_STR);
        return 0;
    case N_LIST: {
        int et = -1;
        for (int i = 0; i < n->nkids; i++) {
            pql_node *e = n->kids[i];
            if (e->kind == N_CALL && !strcmp(e->name, "date") && check(c, e)) return KITH_EINVAL;
            if (e->kind != N_LIT) return fail(c, e, "expected a literal in a list");
            check(c, e);
            et = et < 0                            ? e->ty.t
                 : et == e->ty.t                   ? et
                 : (is_num(et) && is_num(e->ty.t)) ? TY_DBL
                                                   : TY_ANY;
        }
        n->ty = (pql_type){.t = TY_ARR, .et = (uint8_t)(et < 0 ? TY_ANY : et)};
        return 0;
    }
    case N_PARAM:
        n->ref = 3;
        n->ty = c->sc[0].ty;
        n->path = ""; /* $1.a.b reads the profile field a.b, as a.b does */
        return 0;
    case N_NAME: {
        if (!n->up) {
            for (int i = c->nsc - 1; i >= 0; i--) {
                if (c->sc[i].var && !strcmp(c->sc[i].var, n->name)) {
                    n->ref = c->sc[i].slot < 0 ? 3 : 1;
                    n->slot = c->sc[i].slot;
                    n->ty = c->sc[i].ty;
                    n->path = c->sc[i].prefix;
                    return 0;
                }
            }
            if (!strcmp(n->name, "xEvent")) {
                n->ref = 2;
                n->ty = (pql_type){.t = TY_ARR,
                                   .et = TY_OBJ,
                                   .sch = c->env ? c->env->event_schema : NULL,
                                   .origin = 2};
                n->path = "";
                c->ck->reads_events = true;
                if (c->ck->mode == PQL_MODE_EDGE) {
                    c->ck->mode = PQL_MODE_STREAMING;
                    c->ck->reason = "aggregates over events";
                }
                if (!bounded) { /* read whole (xEvent.count()): every event matters */
                    c->ck->unbounded = true;
                    c->etypes_any = true;
                }
                return 0;
            }
        }
        int k = n->up;
        for (int i = c->nsc - 1; i >= 0; i--) {
            if (c->sc[i].var) continue;
            if (k-- > 0) continue;
            n->ref = c->sc[i].slot < 0 ? 3 : 0;
            n->slot = c->sc[i].slot;
            n->path = join(c, c->sc[i].prefix, n->name);
            if (field_of(c, n, c->sc[i].ty, n->name, &n->ty)) return KITH_EINVAL;
            note_field(c, c->sc[i].ty.origin, n->path);
            return 0;
        }
        return fail(c, n, "'^' climbs above the profile (expected at most %d)", n->up - k - 1);
    }
    case N_FIELD: {
        if (check(c, n->a)) return KITH_EINVAL;
        n->path = n->a->path ? join(c, n->a->path, n->name) : NULL;
        if (field_of(c, n, n->a->ty, n->name, &n->ty)) return KITH_EINVAL;
        note_field(c, n->ty.origin, n->path);
        return 0;
    }
    case N_FILTER: {
        if (check_source(c, n->a, true)) return KITH_EINVAL;
        if (check_elem_block(c, n->a, n->b, &n->slot, NULL)) return KITH_EINVAL;
        if (check_bool_ok(c, n->b)) return KITH_EINVAL;
        if (is_xevent(n->a)) {
            if (!event_types_of(c, n->b, n->slot, NULL)) c->etypes_any = true;
            note_event_source(c, pred_lookback(n->b, n->slot, NULL));
        }
        n->ty = n->a->ty;
        n->path = n->a->path;
        return 0;
    }
    case N_BIN:
        if (check(c, n->a) || check(c, n->b)) return KITH_EINVAL;
        switch (n->op) {
        case B_AND:
        case B_OR:
            n->ty = mkty(TY_BOOL);
            return 0;
        case B_IN:
        case B_NOTIN:
            if (n->b->ty.t != TY_ARR && n->b->ty.t != TY_ANY)
                return fail(c, n->b, "expected a list after '%s', found %s",
                            n->op == B_IN ? "in" : "notIn", ty_names[n->b->ty.t]);
            if (n->b->kind == N_LIST && n->a->ty.t != TY_ANY)
                for (int i = 0; i < n->b->nkids; i++) {
                    pql_node *e = n->b->kids[i];
                    if (!comparable(n->a->ty.t, e->ty.t) && !coerce(c, e, n->a->ty.t))
                        return fail(c, e, "type mismatch: expected a %s in the list, found %s",
                                    ty_names[n->a->ty.t], ty_names[e->ty.t]);
                }
            n->ty = mkty(TY_BOOL);
            return 0;
        case B_LIKE:
            if (n->a->ty.t != TY_STR && n->a->ty.t != TY_ANY)
                return fail(c, n, "'like' needs a string, found %s", ty_names[n->a->ty.t]);
            n->ty = mkty(TY_BOOL);
            return 0;
        case B_ADD:
        case B_SUB:
        case B_MUL:
        case B_DIV:
        case B_MOD: {
            int a = n->a->ty.t, b = n->b->ty.t;
            if (!(is_num(a) || a == TY_ANY))
                return fail(c, n->a, "arithmetic needs numbers, found %s", ty_names[a]);
            if (!(is_num(b) || b == TY_ANY))
                return fail(c, n->b, "arithmetic needs numbers, found %s", ty_names[b]);
            n->ty = mkty(a == TY_ANY || b == TY_ANY                       ? TY_ANY
                         : (a == TY_INT && b == TY_INT && n->op != B_DIV) ? TY_INT
                                                                          : TY_DBL);
            if (n->op == B_DIV && a == TY_INT && b == TY_INT) n->ty = mkty(TY_ANY);
            return 0;
        }
        default:
            if (check_cmp_operands(c, n, n->a, n->b)) return KITH_EINVAL;
            n->ty = mkty(TY_BOOL);
            if (n->op >= B_LT && n->op <= B_GE &&
                (n->a->kind == N_TIMEWORD || n->b->kind == N_TIMEWORD) &&
                !(n->a->kind == N_TIMEWORD && n->b->kind == N_TIMEWORD)) {
                /* "x < now" is "x occurs before now": exact, with its next change known */
                static const uint8_t flip[] = {
                    [B_LT] = B_GT, [B_LE] = B_GE, [B_GT] = B_LT, [B_GE] = B_LE};
                pql_occ *o = pql_arena_alloc(c->a, sizeof *o);
                o->kind = O_PLAIN;
                o->exact = true;
                o->cmp = n->a->kind == N_TIMEWORD ? flip[n->op] : n->op;
                o->ref1 = n->a->kind == N_TIMEWORD ? n->a : n->b;
                pql_node *x = n->a->kind == N_TIMEWORD ? n->b : n->a;
                if (x->ty.t != TY_TIME && x->ty.t != TY_STR && x->ty.t != TY_ANY) return 0;
                n->kind = N_OCCURS;
                n->a = x;
                n->b = NULL;
                n->occ = o;
            }
            return 0;
        }
    case N_NOT:
        if (check(c, n->a)) return KITH_EINVAL;
        n->ty = mkty(TY_BOOL);
        return 0;
    case N_NEG:
        if (check(c, n->a)) return KITH_EINVAL;
        if (!is_num(n->a->ty.t) && n->a->ty.t != TY_ANY)
            return fail(c, n, "'-' needs a number, found %s", ty_names[n->a->ty.t]);
        n->ty = n->a->ty;
        return 0;
    case N_OCCURS:
        if (check(c, n->a)) return KITH_EINVAL;
        if (n->a->kind == N_LIT && n->a->val.t == V_STR && !coerce(c, n->a, TY_TIME))
            return fail(c, n->a, "expected a date-time before 'occurs'");
        if (n->a->ty.t != TY_TIME && n->a->ty.t != TY_STR && n->a->ty.t != TY_ANY)
            return fail(c, n->a, "'occurs' needs a date-time, found %s", ty_names[n->a->ty.t]);
        if (check_occ(c, n, n->occ)) return KITH_EINVAL;
        n->ty = mkty(TY_BOOL);
        return 0;
    case N_TIMEWORD:
        c->ck->uses_now = true;
        n->ty = mkty(TY_TIME);
        return 0;
    case N_CALL:
        return check_call(c, n);
    case N_METHOD:
        return check_method(c, n);
    case N_LET: {
        if (check(c, n->a)) return KITH_EINVAL;
        int slot = new_slot(c, n);
        if (slot < 0) return KITH_EINVAL;
        n->slot = slot;
        if (push_scope(c, n, n->name, slot, n->a->ty, n->a->path)) return KITH_EINVAL;
        int rc = check(c, n->b);
        c->nsc--;
        n->ty = n->b->ty;
        return rc;
    }
    case N_AGGOVER:
    case N_QUANT: {
        int base = c->nsc;
        for (int i = 0; i < n->nbinds; i++) {
            pql_bind *b = &n->binds[i];
            if (check_source(c, b->src, true)) return KITH_EINVAL;
            if ((b->slot = new_slot(c, b->src)) < 0) return KITH_EINVAL;
            if (push_scope(c, b->src, b->var, b->slot, elem_ty(b->src->ty),
                           b->src->path ? b->src->path : ""))
                return KITH_EINVAL;
            if (b->where && check(c, b->where)) return KITH_EINVAL;
            if (is_xevent(b->src)) {
                if (!event_types_of(c, b->where, -2, b->var)) c->etypes_any = true;
                note_event_source(c, pred_lookback(b->where, -2, b->var));
            }
        }
        if (n->kind == N_AGGOVER) {
            if (check(c, n->a)) return KITH_EINVAL;
            int vt = n->a->ty.t;
            bool mm = !strcmp(n->name, "min") || !strcmp(n->name, "max");
            if (strcmp(n->name, "count") && !(is_num(vt) || vt == TY_ANY || (mm && vt == TY_TIME)))
                return fail(c, n->a, "%s needs numbers, found %s", n->name, ty_names[vt]);
            n->ty = mkty(!strcmp(n->name, "count")                 ? TY_INT
                         : mm                                      ? vt
                         : !strcmp(n->name, "sum") && vt == TY_INT ? TY_INT
                                                                   : TY_DBL);
        } else {
            n->ty = mkty(n->count_all ? TY_INT : TY_BOOL);
        }
        c->nsc = base;
        return 0;
    }
    case N_CHAIN: {
        if (check_source(c, n->a, true)) return KITH_EINVAL;
        if ((n->slot = new_slot(c, n)) < 0) return KITH_EINVAL;
        int64_t lb = 0;
        bool all_now = true, any_types = false;
        for (int i = 0; i < n->nsteps; i++) {
            pql_chain_step *s = &n->steps[i];
            if (push_scope(c, s->what, NULL, n->slot, elem_ty(n->a->ty),
                           n->a->path ? n->a->path : ""))
                return KITH_EINVAL;
            if (check(c, s->what)) return KITH_EINVAL;
            if (is_xevent(n->a) && !event_types_of(c, s->what, n->slot, NULL)) any_types = true;
            c->nsc--;
            if (s->when) {
                if (s->step_ref >= 0) {
                    all_now = false;
                    s->when->step_ref = n->steps[s->step_ref].label;
                    if (s->when->kind != O_REL && s->when->kind != O_PLAIN)
                        return fail(c, s->what, "expected 'n unit after <step>' in WHEN");
                }
                if (check_occ(c, s->what, s->when)) return KITH_EINVAL;
                int64_t l = s->step_ref >= 0 ? -1 : occ_lookback(s->when);
                if (l < 0)
                    all_now = false;
                else if (l > lb)
                    lb = l;
            } else {
                all_now = false;
            }
        }
        if (is_xevent(n->a)) {
            /* the steps' event types: any event of one of them may complete the chain */
            if (any_types) c->etypes_any = true;
            note_event_source(c, all_now ? lb : -1);
        }
        n->ty = mkty(TY_BOOL);
        return 0;
    }
    }
    return fail(c, n, "internal: unknown node");
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Drops "a.b" when "a.b.c" is also read: a field's dependents are found by prefix. */
static void drop_prefixes(const char **v, int *n)
{
    int k = 0;
    for (int i = 0; i < *n; i++) {
        size_t l = strlen(v[i]);
        bool prefix = false;
        for (int j = 0; j < *n && !prefix; j++)
            prefix = j != i && !strncmp(v[j], v[i], l) && v[j][l] == '.';
        if (!prefix) v[k++] = v[i];
    }
    *n = k;
}

int pql_check(pql_parse_out *po, const pql_env *env, pql_arena *a, pql_checked *ck, pql_error *err)
{
    memset(ck, 0, sizeof *ck);
    ck->mode = PQL_MODE_EDGE;
    ck->reason = "reads profile attributes only";
    checker c = {.env = env, .a = a, .ck = ck, .err = err, .lambda = po->lambda_param};
    pql_type root = {.t = TY_OBJ, .sch = env ? env->profile_schema : NULL, .origin = 1};
    c.sc[0] = (scope){.var = NULL, .slot = -1, .ty = root, .prefix = ""};
    c.nsc = 1;
    if (po->lambda_param)
        c.sc[c.nsc++] = (scope){.var = po->lambda_param, .slot = -1, .ty = root, .prefix = ""};
    int rc = check(&c, po->root);
    if (rc) return rc;
    if (c.etypes_any) ck->netypes = 0;
    if (ck->unbounded) ck->lookback = -1;
    if (ck->reads_events && ck->mode == PQL_MODE_STREAMING) {
        ck->reason = ck->lookback < 0 ? "aggregates over all of the profile's events (incremental "
                                        "state and timers keep it streaming)"
                                      : "aggregates over a bounded window of events";
    } else if (ck->mode == PQL_MODE_STREAMING) {
        ck->reason = "inSegment() of a streaming segment";
    }
    drop_prefixes(ck->fields, &ck->nfields);
    drop_prefixes(ck->efields, &ck->nefields);
    if (ck->nfields) qsort(ck->fields, (size_t)ck->nfields, sizeof *ck->fields, cmp_str);
    if (ck->nefields) qsort(ck->efields, (size_t)ck->nefields, sizeof *ck->efields, cmp_str);
    if (ck->netypes) qsort(ck->etypes, (size_t)ck->netypes, sizeof *ck->etypes, cmp_str);
    return 0;
}
