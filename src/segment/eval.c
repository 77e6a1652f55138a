/* PQL evaluator: a switch over the steps of one block, re-entered for sub-blocks (filters,
 * aggregates, quantifiers, CHAIN steps). Nothing is allocated: the value stack, the variable slots
 * and the scratch area (where filters and projections put their results) belong to the evaluator
 * and are reset per evaluation; a block's scratch use is released when its value has been consumed.
 * Budgets: steps, block depth, scratch size, stack size.
 *
 * Every leaf that depends on the evaluation instant notes the next instant at which its own value
 * would change; the minimum over the leaves actually evaluated is when the whole answer may change
 * (until then every evaluated leaf keeps its value, so evaluation takes the same path). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "kith/pqlinc.h"
#include "pql_int.h"

#define STACK_CAP 4096
#define DAY_MS 86400000LL
#define HORIZON_MS (400LL * 366 * DAY_MS)

struct pql_evaluator {
    pql_limits lim;
    pql_val stack[STACK_CAP];
    uint32_t sp;
    pql_val slots[PQL_MAX_SLOTS];
    pql_val *scratch;
    uint32_t stop;
    const pql_program *p;
    const pql_input *in;
    uint64_t steps;
    uint32_t depth;
    int64_t now, today, next;
    int err;
};

pql_evaluator *pql_evaluator_new(const pql_limits *lim)
{
    pql_evaluator *ev = kith_xcalloc(1, sizeof *ev);
    if (lim) ev->lim = *lim;
    if (!ev->lim.max_steps) ev->lim.max_steps = 10000000;
    if (!ev->lim.max_depth) ev->lim.max_depth = 64;
    if (!ev->lim.max_scratch) ev->lim.max_scratch = 262144;
    ev->scratch = kith_xmalloc(sizeof(pql_val) * ev->lim.max_scratch);
    return ev;
}

void pql_evaluator_free(pql_evaluator *ev)
{
    if (!ev) return;
    free(ev->scratch);
    free(ev);
}

static const pql_val MISSING = {0};

/* ---- pql_memo ---- */
#define MEMO_ENTRIES 512
#define MEMO_VALS 65536

struct memo_ent {
    uint64_t hash;
    const uint8_t *key; /* the program's (borrowed until reset) */
    uint32_t klen;
    const json_t *events;
    int64_t now, next; /* next: the filter's own earliest change */
    uint32_t start, len;
};

struct pql_memo {
    struct memo_ent ent[MEMO_ENTRIES];
    uint32_t n, nvals;
    uint64_t hits, misses;
    pql_val vals[MEMO_VALS];
};

pql_memo *pql_memo_new(void)
{
    return kith_xcalloc(1, sizeof(pql_memo));
}

void pql_memo_reset(pql_memo *m)
{
    if (m) m->n = m->nvals = 0;
}

void pql_memo_free(pql_memo *m)
{
    free(m);
}

void pql_memo_stats(const pql_memo *m, uint64_t *hits, uint64_t *misses)
{
    *hits = m ? m->hits : 0;
    *misses = m ? m->misses : 0;
}

static const struct memo_ent *memo_find(const pql_memo *m, const pql_fkey *k, const json_t *events,
                                        int64_t now)
{
    for (uint32_t i = 0; i < m->n; i++) {
        const struct memo_ent *e = &m->ent[i];
        if (e->hash == k->hash && e->events == events && e->now == now && e->klen == k->len &&
            (e->key == k->key || memcmp(e->key, k->key, k->len) == 0))
            return e;
    }
    return NULL;
}

static void memo_put(pql_memo *m, const pql_fkey *k, const json_t *events, int64_t now,
                     int64_t next, const pql_val *v, uint32_t n)
{
    if (m->n == MEMO_ENTRIES || n > MEMO_VALS - m->nvals) return;
    m->ent[m->n++] = (struct memo_ent){k->hash, k->key, k->len, events, now, next, m->nvals, n};
    memcpy(m->vals + m->nvals, v, sizeof *v * n);
    m->nvals += n;
    m->misses++;
}

static pql_val vbool(bool b)
{
    pql_val v = {.t = V_BOOL, .i = b};
    return v;
}
static pql_val vint(int64_t i)
{
    pql_val v = {.t = V_INT, .i = i};
    return v;
}
static pql_val vdbl(double d)
{
    pql_val v = {.t = V_DBL, .d = d};
    return v;
}
static pql_val vtime(int64_t i)
{
    pql_val v = {.t = V_TIME, .i = i};
    return v;
}

static pql_val from_json(const json_t *j)
{
    pql_val v = {0};
    switch (json_typeof(j)) {
    case JSON_OBJECT:
        v.t = V_OBJ, v.j = j;
        break;
    case JSON_ARRAY:
        v.t = V_ARR, v.j = j, v.len = (uint32_t)json_array_size(j);
        break;
    case JSON_STRING:
        v.t = V_STR, v.s = json_string_value(j), v.len = (uint32_t)json_string_length(j);
        break;
    case JSON_INTEGER:
        v.t = V_INT, v.i = json_integer_value(j);
        break;
    case JSON_REAL:
        v.t = V_DBL, v.d = json_real_value(j);
        break;
    case JSON_TRUE:
        v.t = V_BOOL, v.i = 1;
        break;
    case JSON_FALSE:
        v.t = V_BOOL, v.i = 0;
        break;
    default:
        break;
    }
    return v;
}

static bool is_coll(const pql_val *v)
{
    return v->t == V_ARR || v->t == V_SEQ;
}
static uint32_t coll_len(const pql_val *v)
{
    return is_coll(v) ? v->len : 0;
}
static pql_val coll_at(const pql_val *v, uint32_t i)
{
    if (v->t == V_SEQ) return v->seq[i];
    return from_json(json_array_get(v->j, i));
}

static bool fail(pql_evaluator *ev, int err)
{
    if (!ev->err) ev->err = err;
    return false;
}

static bool push(pql_evaluator *ev, pql_val v)
{
    if (ev->sp >= STACK_CAP) return fail(ev, KITH_EBUSY);
    ev->stack[ev->sp++] = v;
    return true;
}
#define POP(ev) ((ev)->stack[--(ev)->sp])
#define TOP(ev) ((ev)->stack[(ev)->sp - 1])

static bool spush(pql_evaluator *ev, pql_val v)
{
    if (ev->stop >= ev->lim.max_scratch) return fail(ev, KITH_EBUSY);
    ev->scratch[ev->stop++] = v;
    return true;
}
static pql_val seq_from(pql_evaluator *ev, uint32_t start)
{
    pql_val v = {.t = V_SEQ, .len = ev->stop - start, .seq = ev->scratch + start};
    return v;
}

static void note_change(pql_evaluator *ev, int64_t t)
{
    if (t > ev->now && t < ev->next) ev->next = t;
}

static bool truth(const pql_val *v)
{
    switch (v->t) {
    case V_MISSING:
        return false;
    case V_BOOL:
        return v->i != 0;
    case V_ARR:
    case V_SEQ:
        return v->len > 0;
    default:
        return true;
    }
}

static bool parse_time(const char *s, size_t n, int64_t *out)
{
    char buf[64];
    if (n >= sizeof buf) return false;
    memcpy(buf, s, n);
    buf[n] = 0;
    return kith_time_parse(buf, out) == 0 || kith_date_parse(buf, out) == 0;
}

static pql_val to_time(const pql_val *v)
{
    int64_t t;
    if (v->t == V_TIME) return *v;
    if (v->t == V_STR && parse_time(v->s, v->len, &t)) return vtime(t);
    return MISSING;
}

/* Three-way compare; false when the values do not compare. */
static bool cmp3(const pql_val *a, const pql_val *b, int *r)
{
    if (a->t == V_MISSING || b->t == V_MISSING) return false;
    if ((a->t == V_INT || a->t == V_DBL) && (b->t == V_INT || b->t == V_DBL)) {
        if (a->t == V_INT && b->t == V_INT) {
            *r = a->i < b->i ? -1 : a->i > b->i;
            return true;
        }
        double x = a->t == V_INT ? (double)a->i : a->d, y = b->t == V_INT ? (double)b->i : b->d;
        if (isnan(x) || isnan(y)) return false;
        *r = x < y ? -1 : x > y;
        return true;
    }
    if (a->t == V_STR && b->t == V_STR) {
        *r = pql_str_cmp(a->s, a->len, b->s, b->len, true);
        return true;
    }
    if (a->t == V_TIME || b->t == V_TIME) {
        pql_val x = to_time(a), y = to_time(b);
        if (x.t != V_TIME || y.t != V_TIME) return false;
        *r = x.i < y.i ? -1 : x.i > y.i;
        return true;
    }
    if (a->t == V_BOOL && b->t == V_BOOL) {
        *r = (int)a->i - (int)b->i;
        return true;
    }
    return false;
}

static bool val_eq(const pql_val *a, const pql_val *b)
{
    int r;
    if (cmp3(a, b, &r)) return r == 0;
    if (a->t == V_OBJ && b->t == V_OBJ) return json_equal((json_t *)a->j, (json_t *)b->j);
    return false;
}

static bool coll_has(const pql_val *c, const pql_val *x)
{
    uint32_t n = coll_len(c);
    for (uint32_t i = 0; i < n; i++) {
        pql_val e = coll_at(c, i);
        if (val_eq(&e, x)) return true;
    }
    return false;
}

static pql_val arith(int op, const pql_val *a, const pql_val *b)
{
    bool ai = a->t == V_INT, bi = b->t == V_INT;
    if (!(ai || a->t == V_DBL) || !(bi || b->t == V_DBL)) return MISSING;
    if (ai && bi) {
        int64_t x = a->i, y = b->i, r;
        switch (op) {
        case B_ADD:
            return __builtin_add_overflow(x, y, &r) ? vdbl((double)x + (double)y) : vint(r);
        case B_SUB:
            return __builtin_sub_overflow(x, y, &r) ? vdbl((double)x - (double)y) : vint(r);
        case B_MUL:
            return __builtin_mul_overflow(x, y, &r) ? vdbl((double)x * (double)y) : vint(r);
        case B_DIV:
            if (y == 0) return MISSING;
            if (y == -1 && x == INT64_MIN) return vdbl(-(double)x);
            return x % y == 0 ? vint(x / y) : vdbl((double)x / (double)y);
        default:
            if (y == 0) return MISSING;
            if (y == -1) return vint(0);
            return vint(x % y);
        }
    }
    double x = ai ? (double)a->i : a->d, y = bi ? (double)b->i : b->d;
    switch (op) {
    case B_ADD:
        return vdbl(x + y);
    case B_SUB:
        return vdbl(x - y);
    case B_MUL:
        return vdbl(x * y);
    case B_DIV:
        return y == 0 ? MISSING : vdbl(x / y);
    default:
        return y == 0 ? MISSING : vdbl(fmod(x, y));
    }
}

/* ---- occurs ---- */

typedef struct win {
    int64_t lo, hi; /* INT64_MIN / INT64_MAX: unbounded */
    bool lo_in, hi_in;
} win;

static bool dayish(int ref)
{
    return ref == REF_TODAY || ref == REF_YESTERDAY || ref == REF_TOMORROW || ref == REF_DAYCONST;
}

static int64_t ref_at(int ref, int64_t c, int64_t stackv, int64_t now)
{
    int64_t today = pql_time_floor(now, U_DAY);
    switch (ref) {
    case REF_NOW:
        return now;
    case REF_TODAY:
        return today;
    case REF_YESTERDAY:
        return today - DAY_MS;
    case REF_TOMORROW:
        return today + DAY_MS;
    case REF_CONST:
    case REF_DAYCONST:
        return c;
    default:
        return stackv;
    }
}

static win mkwin(int64_t lo, bool lo_in, int64_t hi, bool hi_in)
{
    win w = {lo, hi, lo_in, hi_in};
    return w;
}

/* The window(s) of o at instant now: x must be in *must and, when *has_not, not in *mustnot. */
static void occ_windows(const pql_occ_prog *o, int64_t now, int64_t s1, int64_t s2, win *must,
                        win *mustnot, bool *has_not)
{
    int64_t T = ref_at(o->ref1, o->c1, s1, now);
    *has_not = false;
    *must = mkwin(INT64_MIN, true, INT64_MAX, true);
    switch (o->kind) {
    case O_PLAIN:
        if (o->exact) {
            switch (o->cmp) {
            case B_LT:
                *must = mkwin(INT64_MIN, true, T, false);
                break;
            case B_LE:
                *must = mkwin(INT64_MIN, true, T, true);
                break;
            case B_GT:
                *must = mkwin(T, false, INT64_MAX, true);
                break;
            default:
                *must = mkwin(T, true, INT64_MAX, true);
                break;
            }
        } else if (o->dir == D_BEFORE) {
            *must = mkwin(INT64_MIN, true, T, false);
        } else {
            /* after a day means after its end */
            *must = dayish(o->ref1) ? mkwin(T + DAY_MS, true, INT64_MAX, true)
                                    : mkwin(T, false, INT64_MAX, true);
        }
        return;
    case O_ON: {
        int64_t d = pql_time_floor(T, U_DAY);
        *must = mkwin(d, true, d + DAY_MS, false);
        return;
    }
    case O_PERIOD: {
        int64_t p = pql_time_add(pql_time_floor(now, o->unit), o->unit, o->shift);
        *must = mkwin(p, true, pql_time_add(p, o->unit, 1), false);
        return;
    }
    case O_BETWEEN: {
        int64_t T2 = ref_at(o->ref2, o->c2, s2, now);
        int64_t lo = dayish(o->ref1) ? pql_time_floor(T, U_DAY) : T;
        if (dayish(o->ref2))
            *must = mkwin(lo, true, pql_time_floor(T2, U_DAY) + DAY_MS, false);
        else
            *must = mkwin(lo, true, T2, true);
        return;
    }
    default:
        break;
    }
    /* O_REL */
    int64_t n = o->n;
    int64_t back = pql_time_add(T, o->unit, -n), fwd = pql_time_add(T, o->unit, n);
    if (o->dir == D_FROM) {
        switch (o->cmp) {
        case B_LT:
            *must = mkwin(back, false, fwd, false);
            break;
        case B_LE:
            *must = mkwin(back, true, fwd, true);
            break;
        case B_GT:
            *has_not = true, *mustnot = mkwin(back, true, fwd, true);
            break;
        default:
            *has_not = true, *mustnot = mkwin(back, false, fwd, false);
            break;
        }
        return;
    }
    bool before = o->dir == D_BEFORE;
    int64_t B = before ? back : fwd;
    int64_t p = pql_time_floor(B, o->unit);
    win eq = mkwin(p, true, pql_time_add(p, o->unit, 1), false);
    switch (o->cmp) {
    case B_LT:
        *must = before ? mkwin(B, false, T, true) : mkwin(T, true, B, false);
        break;
    case B_LE:
        *must = before ? mkwin(B, true, T, true) : mkwin(T, true, B, true);
        break;
    case B_GT:
        *must = before ? mkwin(INT64_MIN, true, B, false) : mkwin(B, false, INT64_MAX, true);
        break;
    case B_GE:
        *must = before ? mkwin(INT64_MIN, true, B, true) : mkwin(B, true, INT64_MAX, true);
        break;
    case B_EQ:
        *must = eq;
        break;
    default:
        *must = before ? mkwin(INT64_MIN, true, T, true) : mkwin(T, true, INT64_MAX, true);
        *has_not = true;
        *mustnot = eq;
        break;
    }
}

/* 0: x is above (later than) the window, 1: inside, 2: below. */
static int win_state(const win *w, int64_t x)
{
    if (x > w->hi || (x == w->hi && !w->hi_in)) return 0;
    if (x < w->lo || (x == w->lo && !w->lo_in)) return 2;
    return 1;
}

static int state_at(const pql_occ_prog *o, int64_t t, int64_t s1, int64_t s2, int64_t x, int which)
{
    win must, mustnot;
    bool has_not;
    occ_windows(o, t, s1, s2, &must, &mustnot, &has_not);
    return win_state(which ? &mustnot : &must, x);
}

/* Windows only move forward as now grows, so a timestamp goes above → inside → below, and the
 * state changes at the least t with a greater state: closed form when the bounds are now + c,
 * binary search otherwise. */
static int64_t next_state_change(const pql_occ_prog *o, int64_t now, int64_t s1, int64_t s2,
                                 int64_t x, int which, const win *w)
{
    int s0 = win_state(w, x);
    if (s0 == 2) return PQL_NEVER;
    if (o->linear) {
        if (s0 == 0) {
            if (w->hi == INT64_MAX) return PQL_NEVER;
            int64_t d = w->hi - now;
            return x - d + (w->hi_in ? 0 : 1);
        }
        if (w->lo == INT64_MIN) return PQL_NEVER;
        int64_t d = w->lo - now;
        return x - d + (w->lo_in ? 1 : 0);
    }
    int64_t lo = now, hi = now > INT64_MAX - HORIZON_MS ? INT64_MAX : now + HORIZON_MS;
    if (state_at(o, hi, s1, s2, x, which) <= s0) return PQL_NEVER;
    while (hi - lo > 1) {
        int64_t mid = lo + (hi - lo) / 2;
        if (state_at(o, mid, s1, s2, x, which) > s0)
            hi = mid;
        else
            lo = mid;
    }
    return hi;
}

static bool occ_now_dependent(const pql_occ_prog *o)
{
    return o->kind == O_PERIOD || (o->ref1 >= REF_NOW && o->ref1 <= REF_TOMORROW) ||
           (o->ref2 >= REF_NOW && o->ref2 <= REF_TOMORROW);
}

static bool occurs(pql_evaluator *ev, const pql_occ_prog *o, int64_t x, int64_t s1, int64_t s2)
{
    win must, mustnot;
    bool has_not;
    occ_windows(o, ev->now, s1, s2, &must, &mustnot, &has_not);
    bool r = win_state(&must, x) == 1 && !(has_not && win_state(&mustnot, x) == 1);
    if (occ_now_dependent(o)) {
        note_change(ev, next_state_change(o, ev->now, s1, s2, x, 0, &must));
        if (has_not) note_change(ev, next_state_change(o, ev->now, s1, s2, x, 1, &mustnot));
    }
    return r;
}

/* ---- blocks ---- */

static bool run(pql_evaluator *ev, int pc);

/* Runs block blk with slot s = el and returns its value; scratch it used is kept (the caller
 * releases it after consuming the value). */
static bool run_with(pql_evaluator *ev, int blk, int s, pql_val el, pql_val *out)
{
    ev->slots[s] = el;
    if (!run(ev, blk)) return false;
    *out = POP(ev);
    return true;
}

static bool run_truth(pql_evaluator *ev, int blk, int s, pql_val el, bool *out)
{
    uint32_t mark = ev->stop;
    pql_val v;
    if (!run_with(ev, blk, s, el, &v)) return false;
    *out = truth(&v);
    ev->stop = mark;
    return true;
}

static pql_val get_field(pql_evaluator *ev, const pql_val *v, const char *name, size_t nlen)
{
    if (v->t == V_OBJ) {
        const json_t *f = json_object_getn(v->j, name, nlen);
        return f ? from_json(f) : MISSING;
    }
    if (!is_coll(v)) return MISSING;
    uint32_t start = ev->stop, n = v->len;
    for (uint32_t i = 0; i < n; i++) {
        pql_val e = coll_at(v, i);
        if (e.t != V_OBJ) continue;
        const json_t *f = json_object_getn(e.j, name, nlen);
        if (!f || json_is_null(f)) continue;
        if (json_is_array(f)) {
            for (size_t k = 0; k < json_array_size(f); k++)
                if (!spush(ev, from_json(json_array_get(f, k)))) return MISSING;
        } else if (!spush(ev, from_json(f))) {
            return MISSING;
        }
    }
    return seq_from(ev, start);
}

static bool agg(pql_evaluator *ev, const pql_step *st, pql_val src, pql_val *out)
{
    int fn = st->a8;
    uint32_t n = coll_len(&src), count = 0;
    bool all_int = true;
    __int128 isum = 0; /* exact: the sum is an integer when it fits, whatever the order */
    double dsum = 0;
    pql_val best = MISSING;
    for (uint32_t i = 0; i < n; i++) {
        pql_val el = coll_at(&src, i), v = el;
        uint32_t mark = ev->stop;
        if (st->a >= 0 && !run_with(ev, st->a, st->s, el, &v)) return false;
        ev->stop = mark; /* v is a scalar or borrowed; collections are ignored below */
        if (fn == AG_MIN || fn == AG_MAX) {
            if (v.t != V_INT && v.t != V_DBL && v.t != V_TIME && v.t != V_STR) continue;
            int r;
            if (best.t == V_MISSING)
                best = v;
            else if (cmp3(&v, &best, &r) && (fn == AG_MIN ? r < 0 : r > 0))
                best = v;
            continue;
        }
        if (v.t == V_INT) {
            isum += v.i;
            dsum += (double)v.i;
        } else if (v.t == V_DBL) {
            all_int = false;
            dsum += v.d;
        } else {
            continue;
        }
        count++;
    }
    if (fn == AG_MIN || fn == AG_MAX)
        *out = best;
    else if (fn == AG_SUM)
        *out = all_int && isum >= INT64_MIN && isum <= INT64_MAX ? vint((int64_t)isum)
                                                                 : vdbl(dsum);
    else
        *out = count ? vdbl(dsum / count) : MISSING;
    return true;
}

static bool topn(pql_evaluator *ev, const pql_step *st, pql_val src, int64_t k, pql_val *out)
{
    uint32_t start = ev->stop, n = coll_len(&src), have = 0;
    if (k < 0) k = 0;
    bool asc = st->a8;
    for (uint32_t i = 0; i < n; i++) {
        pql_val el = coll_at(&src, i), key;
        uint32_t mark = ev->stop;
        if (!run_with(ev, st->a, st->s, el, &key)) return false;
        ev->stop = mark;
        if (key.t == V_MISSING || is_coll(&key) || k == 0) continue;
        /* find the insertion point among the pairs (key, element) */
        uint32_t pos = have;
        while (pos > 0) {
            int r;
            pql_val *pk = &ev->scratch[start + 2 * (pos - 1)];
            if (!cmp3(&key, pk, &r)) break;
            if (asc ? r < 0 : r > 0)
                pos--;
            else
                break;
        }
        if (pos >= (uint32_t)k) continue;
        if (have < (uint32_t)k) {
            if (!spush(ev, MISSING) || !spush(ev, MISSING)) return false;
            have++;
        }
        memmove(&ev->scratch[start + 2 * (pos + 1)], &ev->scratch[start + 2 * pos],
                sizeof(pql_val) * 2 * (have - 1 - pos));
        ev->scratch[start + 2 * pos] = key;
        ev->scratch[start + 2 * pos + 1] = el;
    }
    for (uint32_t i = 0; i < have; i++)
        ev->scratch[start + i] = ev->scratch[start + 2 * i + 1];
    ev->stop = start + have;
    *out = seq_from(ev, start);
    return true;
}

static bool quant_rec(pql_evaluator *ev, const pql_quant_prog *q, int level, int64_t *count)
{
    uint32_t mark = ev->stop;
    pql_val src;
    if (!run(ev, q->b[level].src)) return false;
    src = POP(ev);
    uint32_t n = coll_len(&src);
    bool forall = q->quant == 1;
    for (uint32_t i = 0; i < n && !ev->err; i++) {
        pql_val el = coll_at(&src, i);
        ev->slots[q->b[level].slot] = el;
        bool ok = true;
        if (q->b[level].where >= 0 && !run_truth(ev, q->b[level].where, q->b[level].slot, el, &ok))
            return false;
        if (forall) {
            if (!ok) {
                *count = 0;
                break;
            }
            if (level + 1 < q->nbinds) {
                if (!quant_rec(ev, q, level + 1, count)) return false;
                if (!*count) break;
            }
            continue;
        }
        if (!ok) continue;
        if (level + 1 < q->nbinds) {
            if (!quant_rec(ev, q, level + 1, count)) return false;
        } else {
            (*count)++;
        }
        if (*count && !q->count_all) break;
    }
    ev->stop = mark;
    return !ev->err;
}

static bool chain_rec(pql_evaluator *ev, const pql_chain_prog *c, const pql_val *src, int step,
                      uint32_t from, int64_t *ts)
{
    const char *tsf = ev->p->consts[c->src_ts_field].s;
    uint32_t n = coll_len(src);
    if (++ev->depth > ev->lim.max_depth) return fail(ev, KITH_EBUSY);
    bool found = false;
    for (uint32_t i = from; i < n && !found && !ev->err; i++) {
        if (++ev->steps > ev->lim.max_steps) return fail(ev, KITH_EBUSY);
        pql_val el = coll_at(src, i);
        pql_val tv = get_field(ev, &el, tsf, strlen(tsf));
        tv = to_time(&tv);
        if (tv.t != V_TIME || (step > 0 && tv.i <= ts[step - 1])) continue;
        bool ok;
        if (!run_truth(ev, c->st[step].what, c->slot, el, &ok)) return false;
        if (!ok) continue;
        if (c->st[step].occ >= 0) {
            const pql_occ_prog *o = &ev->p->occs[c->st[step].occ];
            int64_t r1 = c->st[step].step_ref >= 0 ? ts[c->st[step].step_ref] : 0;
            if (!occurs(ev, o, tv.i, r1, 0)) continue;
        }
        ts[step] = tv.i;
        if (step + 1 == c->nsteps)
            found = true;
        else if (chain_rec(ev, c, src, step + 1, i + 1, ts))
            found = true;
    }
    ev->depth--;
    return found;
}

static bool regex_exec(const regex_t *re, const pql_val *s, size_t nm, regmatch_t *m)
{
    m[0].rm_so = 0;
    m[0].rm_eo = (regoff_t)s->len;
    return regexec(re, s->s, nm, m, REG_STARTEND) == 0;
}

/* ---- incremental aggregate sites (kith/pqlinc.h) ---- */

static pql_val inc_to_val(const pql_inc_val *v)
{
    pql_val r = {0};
    switch (v->kind) {
    case 1:
        return vbool(v->i != 0);
    case 2:
        return vint(v->i);
    case 3:
        return vdbl(v->d);
    case 4:
        r.t = V_STR, r.s = v->s, r.len = v->len;
        return r;
    case 5:
        return vtime(v->i);
    default:
        return r;
    }
}

/* v as an owned state value; false when it cannot be kept (too long). */
static bool val_to_inc(const pql_val *v, pql_inc_val *out)
{
    memset(out, 0, sizeof *out);
    switch (v->t) {
    case V_BOOL:
        out->kind = 1, out->i = v->i;
        return true;
    case V_INT:
        out->kind = 2, out->i = v->i;
        return true;
    case V_DBL:
        out->kind = 3, out->d = v->d;
        return true;
    case V_STR:
        if (v->len > PQL_INC_MAX_STR) return false;
        out->kind = 4, out->len = v->len;
        out->s = kith_xmalloc(v->len + 1);
        memcpy(out->s, v->s, v->len);
        out->s[v->len] = 0;
        return true;
    case V_TIME:
        out->kind = 5, out->i = v->i;
        return true;
    default:
        return true; /* kind 0: counted only */
    }
}

/* The aggregate of a sequence of contributions (as agg()/COUNT do over the events). */
typedef struct inc_acc {
    int kind;
    uint64_t n, nnum;
    __int128 isum;
    bool all_int, bad;
    double dsum;
    pql_val best;
    int fam;
} inc_acc;

static void acc_add(inc_acc *a, const pql_val *v)
{
    a->n++;
    if (a->kind == IK_SUM || a->kind == IK_AVG) {
        if (v->t == V_INT) {
            a->isum += v->i;
            a->dsum += (double)v->i;
        } else if (v->t == V_DBL) {
            a->all_int = false;
            a->dsum += v->d;
        } else {
            return;
        }
        a->nnum++;
    } else if (a->kind == IK_MIN || a->kind == IK_MAX) {
        int fam = v->t == V_INT || v->t == V_DBL ? 1 : v->t == V_TIME ? 2 : v->t == V_STR ? 3 : 0;
        if (!fam) return;
        if (a->fam && a->fam != fam) a->bad = true; /* the answer would depend on the order */
        a->fam = fam;
        int r;
        if (a->best.t == V_MISSING)
            a->best = *v;
        else if (cmp3(v, &a->best, &r) && (a->kind == IK_MIN ? r < 0 : r > 0))
            a->best = *v;
    }
}

static pql_val acc_result(const inc_acc *a)
{
    switch (a->kind) {
    case IK_COUNT:
        return vint((int64_t)a->n);
    case IK_SUM:
        return a->all_int && a->isum >= INT64_MIN && a->isum <= INT64_MAX ? vint((int64_t)a->isum)
                                                                          : vdbl(a->dsum);
    case IK_AVG:
        return a->nnum ? vdbl(a->dsum / (double)a->nnum) : MISSING;
    default:
        return a->best;
    }
}

static __int128 isum_of(const pql_inc_state *s)
{
    return (__int128)(((unsigned __int128)(uint64_t)s->isum_hi << 64) | s->isum_lo);
}

/* The site's value from its state at ev->now (noting when an entry enters or leaves a window):
 * 1, 0 when the state cannot answer (the caller rescans), -1 on a budget error. */
static int inc_value(pql_evaluator *ev, const pql_inc_site *site, const pql_inc_state *s,
                      pql_val *out)
{
    const pql_program *p = ev->p;
    if (s->nx == 0) {
        if (site->kind == IK_DISTINCT) {
            *out = vint((int64_t)s->nset);
            return 1;
        }
        inc_acc a = {.kind = site->kind, .n = s->n, .nnum = s->nnum, .isum = isum_of(s),
                     .all_int = s->all_int, .dsum = s->dsum, .best = inc_to_val(&s->best)};
        *out = acc_result(&a);
        return 1;
    }
    ev->steps += s->ne / 4;
    uint32_t mark = ev->stop;
    inc_acc a = {.kind = site->kind, .all_int = true};
    for (size_t i = 0; i < s->ne; i++) {
        const pql_inc_entry *e = &s->e[i];
        bool in = true;
        for (int j = 0; j < s->nx && j < site->nx; j++)
            if (!occurs(ev, &p->occs[site->xocc[j]], e->x[j], 0, 0)) in = false;
        if (!in) continue;
        pql_val v = inc_to_val(&e->v);
        if (site->kind != IK_DISTINCT) {
            acc_add(&a, &v);
            continue;
        }
        if (v.t == V_MISSING) continue;
        bool seen = false;
        for (uint32_t k = mark; k < ev->stop && !seen; k++)
            seen = val_eq(&ev->scratch[k], &v);
        if (!seen && !spush(ev, v)) return -1;
    }
    if (site->kind == IK_DISTINCT) {
        *out = vint(ev->stop - mark);
        ev->stop = mark;
        return 1;
    }
    if (a.bad) return 0;
    *out = acc_result(&a);
    return 1;
}

/* One contribution into the state; false when the state became unusable. */
static bool inc_contribute(pql_inc_state *st, const int64_t *x, const pql_val *v)
{
    if (st->nx) {
        if (st->kind == IK_DISTINCT && (v->t == V_OBJ || is_coll(v))) return false;
        if (st->kind == IK_MIN || st->kind == IK_MAX) { /* one family of values, as running */
            int fam = v->t == V_INT || v->t == V_DBL ? 1 : v->t == V_TIME ? 2 : v->t == V_STR ? 3 : 0;
            if (fam && st->nnum && (int)st->nnum != fam) return false;
            if (fam) st->nnum = (uint64_t)fam;
        }
        if (st->ne >= PQL_INC_MAX_ENTRIES) return false;
        if (st->ne == st->cape) {
            st->cape = st->cape ? st->cape * 2 : 4;
            st->e = kith_xrealloc(st->e, st->cape * sizeof *st->e);
        }
        pql_inc_entry *e = &st->e[st->ne];
        memset(e, 0, sizeof *e);
        for (int j = 0; j < st->nx; j++)
            e->x[j] = x[j];
        if (st->kind != IK_COUNT && !val_to_inc(v, &e->v)) return false;
        st->ne++;
        return true;
    }
    if (st->kind == IK_DISTINCT) {
        if (v->t == V_MISSING) return true;
        if (v->t == V_OBJ || is_coll(v)) return false;
        for (size_t i = 0; i < st->nset; i++) {
            pql_val s = inc_to_val(&st->set[i]);
            if (val_eq(&s, v)) return true;
        }
        if (st->nset >= PQL_INC_MAX_SET) return false;
        if (st->nset == st->capset) {
            st->capset = st->capset ? st->capset * 2 : 4;
            st->set = kith_xrealloc(st->set, st->capset * sizeof *st->set);
        }
        if (!val_to_inc(v, &st->set[st->nset])) return false;
        st->nset++;
        return true;
    }
    inc_acc a = {.kind = st->kind, .n = st->n, .nnum = st->nnum, .isum = isum_of(st),
                 .all_int = st->all_int, .dsum = st->dsum, .best = inc_to_val(&st->best)};
    if (st->best.kind) a.fam = a.best.t == V_TIME ? 2 : a.best.t == V_STR ? 3 : 1;
    pql_val old = a.best;
    acc_add(&a, v);
    if (a.bad) return false;
    st->n = a.n, st->nnum = a.nnum, st->all_int = a.all_int, st->dsum = a.dsum;
    unsigned __int128 u = (unsigned __int128)a.isum;
    st->isum_hi = (int64_t)(uint64_t)(u >> 64);
    st->isum_lo = (uint64_t)u;
    if (a.best.t != old.t || a.best.i != old.i || a.best.s != old.s) {
        pql_inc_val nb;
        if (!val_to_inc(&a.best, &nb)) return false;
        if (st->best.kind == 4) free(st->best.s);
        st->best = nb;
    }
    return true;
}

static void eval_reset(pql_evaluator *ev, const pql_program *p, const pql_input *in)
{
    ev->p = p;
    ev->in = in;
    ev->sp = 0;
    ev->stop = 0;
    ev->steps = 0;
    ev->depth = 0;
    ev->err = 0;
    ev->now = in->now_ms;
    ev->today = pql_time_floor(in->now_ms, U_DAY);
    ev->next = PQL_NEVER;
    memset(ev->slots, 0, sizeof(pql_val) * (size_t)(p->nslots ? p->nslots : 1));
}

int pql_inc_add(pql_evaluator *ev, const pql_program *p, size_t k, pql_inc_state *st,
                const json_t *event)
{
    if (k >= (size_t)p->nsites || st->bad) return 0;
    const pql_inc_site *site = &p->sites[k];
    pql_input in = {.now_ms = 0};
    eval_reset(ev, p, &in);
    pql_val el = from_json(event);
    for (int i = 0; i < site->nstatic; i++) {
        bool ok;
        if (!run_truth(ev, site->statics[i], site->slot, el, &ok)) goto busy;
        if (!ok) return 0;
    }
    int64_t x[PQL_INC_MAX_X] = {0};
    for (int j = 0; j < site->nx; j++) {
        pql_val v;
        uint32_t mark = ev->stop;
        if (!run_with(ev, site->xblk[j], site->slot, el, &v)) goto busy;
        ev->stop = mark;
        if (v.t != V_TIME) return 0; /* the window test is false at every instant */
        x[j] = v.i;
    }
    if (site->vblk < 0) {
        if (!inc_contribute(st, x, &MISSING)) goto bad;
        return 1;
    }
    pql_val v;
    if (!site->proj) {
        if (!run_with(ev, site->vblk, site->vslot, el, &v)) goto busy;
        if (is_coll(&v)) v = MISSING; /* agg() ignores collections */
        if (!inc_contribute(st, x, &v)) goto bad;
        return 1;
    }
    pql_val one[1] = {el};
    pql_val seq = {.t = V_SEQ, .len = 1, .seq = one};
    if (!run_with(ev, site->vblk, site->slot, seq, &v)) goto busy;
    uint32_t n = coll_len(&v);
    for (uint32_t i = 0; i < n; i++) {
        pql_val e = coll_at(&v, i);
        if (!inc_contribute(st, x, &e)) goto bad;
    }
    return n > 0;
busy:
    st->bad = true;
    return KITH_EBUSY;
bad:
    st->bad = true;
    return 1;
}

bool pql_inc_prune(pql_inc_state *st, const pql_program *const *progs, const size_t *ks, size_t n,
                   int64_t now)
{
    if (!st->nx || !st->ne || st->bad) return false;
    size_t k = 0;
    for (size_t i = 0; i < st->ne; i++) {
        pql_inc_entry *e = &st->e[i];
        bool live = n == 0;
        for (size_t s = 0; s < n && !live; s++) {
            if (ks[s] >= (size_t)progs[s]->nsites) {
                live = true;
                break;
            }
            const pql_inc_site *site = &progs[s]->sites[ks[s]];
            bool below = false;
            for (int j = 0; j < site->nx && j < st->nx && !below; j++) {
                win must, mustnot;
                bool has_not;
                occ_windows(&progs[s]->occs[site->xocc[j]], now, 0, 0, &must, &mustnot, &has_not);
                below = win_state(&must, e->x[j]) == 2;
            }
            live = !below;
        }
        if (live) {
            st->e[k++] = *e;
        } else if (e->v.kind == 4) {
            free(e->v.s);
        }
    }
    bool changed = k != st->ne;
    st->ne = k;
    return changed;
}

static int64_t next_boundary(int64_t now, int unit)
{
    return pql_time_add(pql_time_floor(now, unit), unit, 1);
}

static bool run(pql_evaluator *ev, int pc)
{
    if (++ev->depth > ev->lim.max_depth) return fail(ev, KITH_EBUSY);
    const pql_program *p = ev->p;
    for (;;) {
        if (++ev->steps > ev->lim.max_steps) return fail(ev, KITH_EBUSY);
        const pql_step *st = &p->code[pc++];
        switch ((enum pql_op)st->op) {
        case OP_RET:
            ev->depth--;
            return !ev->err;
        case OP_CONST:
            push(ev, p->consts[st->a]);
            break;
        case OP_ROOT:
            push(ev, ev->in->profile ? from_json(ev->in->profile) : MISSING);
            break;
        case OP_EVENTS:
            push(ev, ev->in->events ? from_json(ev->in->events) : MISSING);
            break;
        case OP_SLOT:
            push(ev, ev->slots[st->s]);
            break;
        case OP_SETSLOT:
            ev->slots[st->s] = POP(ev);
            break;
        case OP_POP:
            ev->sp--;
            break;
        case OP_FIELD: {
            pql_val v = POP(ev);
            push(ev, get_field(ev, &v, p->consts[st->a].s, p->consts[st->a].len));
            break;
        }
        case OP_TOTIME: {
            pql_val v = POP(ev);
            if (is_coll(&v)) {
                uint32_t start = ev->stop;
                for (uint32_t i = 0; i < v.len; i++) {
                    pql_val e = coll_at(&v, i), t = to_time(&e);
                    if (t.t == V_TIME && !spush(ev, t)) break;
                }
                push(ev, seq_from(ev, start));
            } else {
                push(ev, to_time(&v));
            }
            break;
        }
        case OP_TRUTH: {
            pql_val v = POP(ev);
            push(ev, vbool(truth(&v)));
            break;
        }
        case OP_NOT: {
            pql_val v = POP(ev);
            push(ev, vbool(!truth(&v)));
            break;
        }
        case OP_JUMPF: {
            pql_val v = POP(ev);
            if (!truth(&v)) pc = st->a;
            break;
        }
        case OP_INCAGG: {
            const pql_inc_state *is = ev->in->inc ? ev->in->inc[st->a] : NULL;
            if (!is || is->bad) break; /* rescan: the code that follows */
            pql_val r;
            int ok = inc_value(ev, &p->sites[st->a], is, &r);
            if (ok < 0) return false;
            if (!ok) break;
            push(ev, r);
            pc = st->b;
            break;
        }
        case OP_IF: {
            pql_val v = POP(ev);
            if (!truth(&v)) pc = st->a;
            break;
        }
        case OP_ANDJ:
            if (!truth(&TOP(ev)))
                pc = st->a;
            else
                ev->sp--;
            break;
        case OP_ORJ:
            if (truth(&TOP(ev)))
                pc = st->a;
            else
                ev->sp--;
            break;
        case OP_JUMP:
            pc = st->a;
            break;
        case OP_CMP: {
            pql_val b = POP(ev), a = POP(ev);
            int r;
            bool ok;
            if (st->a8 == B_EQ || st->a8 == B_NE) {
                ok = a.t != V_MISSING && b.t != V_MISSING;
                if (ok) {
                    if (cmp3(&a, &b, &r))
                        ok = st->a8 == B_EQ ? r == 0 : r != 0;
                    else if (a.t == V_OBJ && b.t == V_OBJ)
                        ok = json_equal((json_t *)a.j, (json_t *)b.j) == (st->a8 == B_EQ);
                    else
                        ok = false;
                }
            } else if (cmp3(&a, &b, &r)) {
                ok = st->a8 == B_LT   ? r < 0
                     : st->a8 == B_LE ? r <= 0
                     : st->a8 == B_GT ? r > 0
                                      : r >= 0;
            } else {
                ok = false;
            }
            push(ev, vbool(ok));
            break;
        }
        case OP_IN: {
            pql_val list = POP(ev), v = POP(ev);
            bool r = false;
            if (v.t != V_MISSING && is_coll(&list)) r = coll_has(&list, &v) != (bool)st->a8;
            push(ev, vbool(r));
            break;
        }
        case OP_LIKE: {
            pql_val pat = POP(ev), s = POP(ev);
            push(ev, vbool(s.t == V_STR && pat.t == V_STR && pql_like(s.s, s.len, pat.s, pat.len)));
            break;
        }
        case OP_ARITH: {
            pql_val b = POP(ev), a = POP(ev);
            push(ev, arith(st->a8, &a, &b));
            break;
        }
        case OP_NEG: {
            pql_val a = POP(ev);
            if (a.t == V_INT && a.i != INT64_MIN)
                a.i = -a.i;
            else if (a.t == V_INT)
                a = vdbl(-(double)a.i);
            else if (a.t == V_DBL)
                a.d = -a.d;
            else
                a = MISSING;
            push(ev, a);
            break;
        }
        case OP_STRFN: {
            pql_val t = POP(ev), s = POP(ev);
            bool r = s.t == V_STR && t.t == V_STR &&
                     pql_str_fn(st->a8 & 0x7F, s.s, s.len, t.s, t.len, (st->a8 & 0x80) != 0);
            push(ev, vbool(r));
            break;
        }
        case OP_MATCHES: {
            pql_val s = POP(ev);
            regmatch_t m[1];
            push(ev, vbool(s.t == V_STR && regex_exec(&p->regexes[st->a], &s, 1, m)));
            break;
        }
        case OP_REGEXGROUP: {
            pql_val s = POP(ev), r = MISSING;
            regmatch_t m[12];
            if (s.t == V_STR && regex_exec(&p->regexes[st->a], &s, (size_t)st->b + 2, m) &&
                m[st->b + 1].rm_so >= 0) {
                r.t = V_STR;
                r.s = s.s + m[st->b + 1].rm_so;
                r.len = (uint32_t)(m[st->b + 1].rm_eo - m[st->b + 1].rm_so);
            }
            push(ev, r);
            break;
        }
        case OP_ISNULL: {
            pql_val v = POP(ev);
            push(ev, vbool((v.t == V_MISSING) != (bool)st->a8));
            break;
        }
        case OP_MAPGET: {
            pql_val k = POP(ev), m = POP(ev), r = MISSING;
            char key[512];
            if (m.t == V_OBJ && k.t == V_STR && k.len < sizeof key) {
                memcpy(key, k.s, k.len);
                key[k.len] = 0;
                const json_t *f = json_object_get(m.j, key);
                if (f) r = from_json(f);
            }
            push(ev, r);
            break;
        }
        case OP_MAPKEYS:
        case OP_MAPVALUES: {
            pql_val m = POP(ev);
            uint32_t start = ev->stop;
            if (m.t == V_OBJ) {
                const char *key;
                json_t *val;
                json_object_foreach((json_t *)m.j, key, val)
                {
                    pql_val e = from_json(val);
                    if (st->op == OP_MAPKEYS)
                        e = (pql_val){.t = V_STR, .len = (uint32_t)strlen(key), .s = key};
                    if (!spush(ev, e)) break;
                }
            }
            push(ev, m.t == V_OBJ ? seq_from(ev, start) : MISSING);
            break;
        }
        case OP_INSEGMENT:
            push(ev,
                 vbool(ev->in->in_segment && ev->in->in_segment(ev->in->arg, p->consts[st->a].s)));
            break;
        case OP_FILTER:
        case OP_MAP: {
            pql_val src = POP(ev);
            uint32_t start = ev->stop, n = coll_len(&src);
            const pql_fkey *fk = NULL;
            int64_t outer_next = 0;
            if (st->op == OP_FILTER && st->b > 0 && ev->in->memo && src.t == V_ARR &&
                src.j == ev->in->events) {
                fk = &p->fkeys[st->b - 1];
                const struct memo_ent *me = memo_find(ev->in->memo, fk, src.j, ev->now);
                if (me) {
                    for (uint32_t i = 0; i < me->len; i++)
                        if (!spush(ev, ev->in->memo->vals[me->start + i])) break;
                    note_change(ev, me->next);
                    ev->in->memo->hits++;
                    push(ev, seq_from(ev, start));
                    break;
                }
                outer_next = ev->next; /* the filter's own next change, kept with its answer */
                ev->next = PQL_NEVER;
            }
            for (uint32_t i = 0; i < n && !ev->err; i++) {
                pql_val el = coll_at(&src, i);
                if (st->op == OP_FILTER) {
                    bool ok;
                    if (!run_truth(ev, st->a, st->s, el, &ok)) break;
                    if (ok) spush(ev, el);
                    continue;
                }
                uint32_t mark = ev->stop;
                pql_val v;
                if (!run_with(ev, st->a, st->s, el, &v)) break;
                if (v.t == V_SEQ && v.seq >= ev->scratch + mark) {
                    memmove(ev->scratch + mark, v.seq, sizeof(pql_val) * v.len);
                    ev->stop = mark + v.len;
                } else {
                    ev->stop = mark;
                    if (is_coll(&v)) {
                        for (uint32_t k = 0; k < v.len; k++)
                            spush(ev, coll_at(&v, k));
                    } else if (v.t != V_MISSING) {
                        spush(ev, v);
                    }
                }
            }
            if (fk) {
                int64_t own = ev->next;
                ev->next = outer_next < own ? outer_next : own;
                if (!ev->err)
                    memo_put(ev->in->memo, fk, src.j, ev->now, own, ev->scratch + start,
                             ev->stop - start);
            }
            push(ev, src.t == V_MISSING ? MISSING : seq_from(ev, start));
            break;
        }
        case OP_COUNT: {
            pql_val v = POP(ev);
            push(ev, vint(is_coll(&v)        ? v.len
                          : v.t == V_OBJ     ? (int64_t)json_object_size(v.j)
                          : v.t == V_MISSING ? 0
                                             : 1));
            break;
        }
        case OP_AGG: {
            pql_val src = POP(ev), r;
            if (!agg(ev, st, src, &r)) break;
            push(ev, r);
            break;
        }
        case OP_DISTINCT: {
            pql_val src = POP(ev);
            uint32_t start = ev->stop, n = coll_len(&src);
            for (uint32_t i = 0; i < n; i++) {
                pql_val e = coll_at(&src, i);
                if (e.t == V_MISSING) continue;
                bool seen = false;
                for (uint32_t k = start; k < ev->stop && !seen; k++)
                    seen = val_eq(&ev->scratch[k], &e);
                if (!seen && !spush(ev, e)) break;
            }
            ev->steps += (uint64_t)n * (ev->stop - start) / 16;
            push(ev, seq_from(ev, start));
            break;
        }
        case OP_HEAD: {
            pql_val src = POP(ev);
            push(ev, coll_len(&src) ? coll_at(&src, 0) : MISSING);
            break;
        }
        case OP_TOPN: {
            pql_val k = POP(ev), src = POP(ev), r;
            if (k.t != V_INT) {
                push(ev, MISSING);
                break;
            }
            if (!topn(ev, st, src, k.i, &r)) break;
            push(ev, r);
            break;
        }
        case OP_SETFN: {
            pql_val b = POP(ev), a = POP(ev);
            bool r = false;
            if (st->a8 == ST_INCLUDES) {
                r = b.t != V_MISSING && coll_has(&a, &b);
            } else if (is_coll(&a) && is_coll(&b)) {
                const pql_val *x = st->a8 == ST_SUPERSETOF ? &b : &a,
                              *y = st->a8 == ST_SUPERSETOF ? &a : &b;
                if (st->a8 == ST_INTERSECTION) {
                    uint32_t start = ev->stop;
                    for (uint32_t i = 0; i < a.len; i++) {
                        pql_val e = coll_at(&a, i);
                        bool dup = false;
                        for (uint32_t k = start; k < ev->stop && !dup; k++)
                            dup = val_eq(&ev->scratch[k], &e);
                        if (!dup && coll_has(&b, &e) && !spush(ev, e)) break;
                    }
                    push(ev, seq_from(ev, start));
                    break;
                }
                bool any = false, all = true;
                for (uint32_t i = 0; i < x->len; i++) {
                    pql_val e = coll_at(x, i);
                    if (coll_has(y, &e))
                        any = true;
                    else
                        all = false;
                }
                r = st->a8 == ST_INTERSECTS ? any : all;
            } else if (st->a8 == ST_INTERSECTION) {
                push(ev, MISSING);
                break;
            }
            push(ev, vbool(r));
            break;
        }
        case OP_ANYALL: {
            pql_val src = POP(ev);
            uint32_t n = coll_len(&src);
            bool all = st->a8, r = all && src.t != V_MISSING;
            for (uint32_t i = 0; i < n; i++) {
                bool ok;
                if (!run_truth(ev, st->a, st->s, coll_at(&src, i), &ok)) break;
                if (all && !ok) {
                    r = false;
                    break;
                }
                if (!all && ok) {
                    r = true;
                    break;
                }
            }
            push(ev, vbool(r));
            break;
        }
        case OP_SELECT: {
            const pql_quant_prog *q = &p->quants[st->a];
            int64_t count = q->quant == 1 ? 1 : 0;
            if (!quant_rec(ev, q, 0, &count)) break;
            push(ev, q->count_all ? vint(count) : vbool(count > 0));
            break;
        }
        case OP_CHAIN: {
            pql_val src = POP(ev);
            int64_t ts[16];
            const pql_chain_prog *c = &p->chains[st->a];
            bool r = chain_rec(ev, c, &src, 0, 0, ts);
            push(ev, vbool(r));
            break;
        }
        case OP_OCCURS: {
            const pql_occ_prog *o = &p->occs[st->a];
            pql_val r2 = o->ref2 == REF_STACK ? POP(ev) : MISSING;
            pql_val r1 = o->ref1 == REF_STACK ? POP(ev) : MISSING;
            pql_val x = POP(ev);
            bool ok = x.t == V_TIME && (o->ref1 != REF_STACK || r1.t == V_TIME) &&
                      (o->ref2 != REF_STACK || r2.t == V_TIME) && occurs(ev, o, x.i, r1.i, r2.i);
            push(ev, vbool(ok));
            break;
        }
        case OP_NOW:
            note_change(ev, ev->now + 1);
            push(ev, vtime(ev->now));
            break;
        case OP_TIMEWORD:
            note_change(ev, ev->today + DAY_MS);
            push(ev, vtime(ev->today + (st->a8 == W_YESTERDAY  ? -DAY_MS
                                        : st->a8 == W_TOMORROW ? DAY_MS
                                                               : 0)));
            break;
        case OP_CURRENT:
        case OP_GETPART: {
            int64_t t = ev->now;
            if (st->op == OP_GETPART) {
                pql_val v = POP(ev);
                if (v.t != V_TIME) {
                    push(ev, MISSING);
                    break;
                }
                t = v.i;
            } else {
                note_change(ev, next_boundary(ev->now, st->a8 == P_YEAR    ? U_YEAR
                                                       : st->a8 == P_MONTH ? U_MONTH
                                                                           : U_DAY));
            }
            int y, m, d;
            pql_time_civil(t, &y, &m, &d);
            push(ev, vint(st->a8 == P_YEAR ? y : st->a8 == P_MONTH ? m : d));
            break;
        }
        case OP__COUNT:
            break;
        }
        if (ev->err) return false;
    }
}

static int eval_top(pql_evaluator *ev, const pql_program *p, const pql_input *in, pql_result *res,
                    pql_val *top)
{
    ev->p = p;
    ev->in = in;
    ev->sp = 0;
    ev->stop = 0;
    ev->steps = 0;
    ev->depth = 0;
    ev->err = 0;
    ev->now = in->now_ms;
    ev->today = pql_time_floor(in->now_ms, U_DAY);
    ev->next = PQL_NEVER;
    memset(ev->slots, 0, sizeof(pql_val) * (size_t)(p->nslots ? p->nslots : 1));
    bool ok = run(ev, 0) && ev->sp > 0;
    res->steps = ev->steps;
    if (!ok) {
        res->match = false;
        res->next_change_ms = PQL_NEVER;
        *top = MISSING;
        return ev->err ? ev->err : KITH_EINVAL;
    }
    *top = TOP(ev);
    res->match = truth(top);
    res->next_change_ms = ev->next;
    return 0;
}

int pql_eval(pql_evaluator *ev, const pql_program *p, const pql_input *in, pql_result *res)
{
    pql_val top;
    return eval_top(ev, p, in, res, &top);
}

static json_t *to_json(const pql_val *v)
{
    char buf[40];
    switch (v->t) {
    case V_BOOL:
        return json_boolean(v->i);
    case V_INT:
        return json_integer(v->i);
    case V_DBL:
        return json_real(v->d);
    case V_STR:
        return json_stringn_nocheck(v->s, v->len);
    case V_TIME:
        return json_string(kith_time_format(v->i, buf, sizeof buf));
    case V_OBJ:
    case V_ARR:
        return json_deep_copy(v->j);
    case V_SEQ: {
        json_t *a = json_array();
        for (uint32_t i = 0; i < v->len; i++)
            json_array_append_new(a, to_json(&v->seq[i]));
        return a;
    }
    default:
        return json_null();
    }
}

int pql_eval_value(pql_evaluator *ev, const pql_program *p, const pql_input *in, pql_result *res,
                   json_t **value)
{
    pql_val top;
    int rc = eval_top(ev, p, in, res, &top);
    *value = rc ? NULL : to_json(&top);
    return rc;
}
