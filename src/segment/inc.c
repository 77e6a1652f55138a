/* PQL incremental aggregate states (kith/pqlinc.h): life cycle and serialization. Adding events,
 * pruning and answering live in eval.c beside the evaluator they share. */
#include <stdlib.h>
#include <string.h>

#include "kith/pqlinc.h"
#include "pql_int.h"

void pql_inc_state_init(pql_inc_state *st, const pql_program *p, size_t k)
{
    memset(st, 0, sizeof *st);
    st->all_int = true;
    if (k < (size_t)p->nsites) {
        st->sig = p->sites[k].sig;
        st->kind = p->sites[k].kind;
        st->nx = (uint8_t)p->sites[k].nx;
    } else {
        st->bad = true;
    }
}

static void val_free(pql_inc_val *v)
{
    if (v->kind == 4) free(v->s);
    v->kind = 0;
}

void pql_inc_state_free(pql_inc_state *st)
{
    val_free(&st->best);
    for (size_t i = 0; i < st->nset; i++)
        val_free(&st->set[i]);
    free(st->set);
    for (size_t i = 0; i < st->ne; i++)
        val_free(&st->e[i].v);
    free(st->e);
    memset(st, 0, sizeof *st);
}

/* --- serialization: [u8 1][u64 sig][u8 kind][u8 nx][u8 bad], then
 * running (nx 0): [varint n][varint nnum][varint zz(isum hi)][varint isum lo][u8 all_int]
 *   [f64 dsum][val best][varint nset][val]...
 * entries: [varint ne] then per entry nx x [varint zz(x - previous x of that conjunct)] [val]
 * val: [u8 kind] then int/time: varint zz, double: f64, string: varint len + bytes, bool: u8. */

static void put_varint(kith_buf *o, uint64_t v)
{
    uint8_t b[10];
    size_t n = 0;
    while (v >= 0x80) {
        b[n++] = (uint8_t)(v | 0x80);
        v >>= 7;
    }
    b[n++] = (uint8_t)v;
    kith_buf_append(o, b, n);
}
static uint64_t zz(int64_t v)
{
    return ((uint64_t)v << 1) ^ (uint64_t)(v >> 63);
}
static int64_t unzz(uint64_t v)
{
    return (int64_t)(v >> 1) ^ -(int64_t)(v & 1);
}
static void put_u64(kith_buf *o, uint64_t v)
{
    uint8_t b[8];
    kith_put_be64(b, v);
    kith_buf_append(o, b, 8);
}
static void put_f64(kith_buf *o, double d)
{
    uint64_t u;
    memcpy(&u, &d, 8);
    put_u64(o, u);
}
static void put_val(kith_buf *o, const pql_inc_val *v)
{
    uint8_t k = v->kind;
    kith_buf_append(o, &k, 1);
    switch (k) {
    case 1: {
        uint8_t b = v->i != 0;
        kith_buf_append(o, &b, 1);
        break;
    }
    case 2:
    case 5:
        put_varint(o, zz(v->i));
        break;
    case 3:
        put_f64(o, v->d);
        break;
    case 4:
        put_varint(o, v->len);
        kith_buf_append(o, v->s, v->len);
        break;
    default:
        break;
    }
}

void pql_inc_encode(const pql_inc_state *st, kith_buf *o)
{
    uint8_t h = 1;
    kith_buf_append(o, &h, 1);
    put_u64(o, st->sig);
    uint8_t t[3] = {st->kind, st->nx, st->bad};
    kith_buf_append(o, t, 3);
    if (st->bad) return;
    if (st->nx == 0) {
        put_varint(o, st->n);
        put_varint(o, st->nnum);
        put_varint(o, zz(st->isum_hi));
        put_varint(o, st->isum_lo);
        uint8_t ai = st->all_int;
        kith_buf_append(o, &ai, 1);
        put_f64(o, st->dsum);
        put_val(o, &st->best);
        put_varint(o, st->nset);
        for (size_t i = 0; i < st->nset; i++)
            put_val(o, &st->set[i]);
        return;
    }
    put_varint(o, st->nnum);
    put_varint(o, st->ne);
    int64_t prev[PQL_INC_MAX_X] = {0};
    for (size_t i = 0; i < st->ne; i++) {
        for (int j = 0; j < st->nx; j++) {
            put_varint(o, zz((int64_t)((uint64_t)st->e[i].x[j] - (uint64_t)prev[j])));
            prev[j] = st->e[i].x[j];
        }
        put_val(o, &st->e[i].v);
    }
}

typedef struct rd {
    const uint8_t *p;
    size_t len, off;
    bool bad;
} rd;

static uint64_t get_varint(rd *r)
{
    uint64_t v = 0;
    for (int shift = 0; shift < 64; shift += 7) {
        if (r->off >= r->len) break;
        uint8_t c = r->p[r->off++];
        v |= (uint64_t)(c & 0x7f) << shift;
        if (!(c & 0x80)) return v;
    }
    r->bad = true;
    return 0;
}
static uint8_t get_u8(rd *r)
{
    if (r->off >= r->len) {
        r->bad = true;
        return 0;
    }
    return r->p[r->off++];
}
static uint64_t get_u64(rd *r)
{
    if (r->len - r->off < 8) {
        r->bad = true;
        return 0;
    }
    uint64_t v = kith_get_be64(r->p + r->off);
    r->off += 8;
    return v;
}
static double get_f64(rd *r)
{
    uint64_t u = get_u64(r);
    double d;
    memcpy(&d, &u, 8);
    return d;
}
static void get_val(rd *r, pql_inc_val *v)
{
    memset(v, 0, sizeof *v);
    uint8_t k = get_u8(r);
    switch (k) {
    case 0:
        break;
    case 1:
        v->i = get_u8(r) != 0;
        break;
    case 2:
    case 5:
        v->i = unzz(get_varint(r));
        break;
    case 3:
        v->d = get_f64(r);
        break;
    case 4: {
        uint64_t n = get_varint(r);
        if (r->bad || n > PQL_INC_MAX_STR || r->len - r->off < n) {
            r->bad = true;
            return;
        }
        v->s = kith_xmalloc((size_t)n + 1);
        memcpy(v->s, r->p + r->off, (size_t)n);
        v->s[n] = 0;
        v->len = (uint32_t)n;
        r->off += (size_t)n;
        break;
    }
    default:
        r->bad = true;
        return;
    }
    if (!r->bad) v->kind = k;
}

int pql_inc_decode(pql_inc_state *st, const void *p, size_t len, size_t *used)
{
    memset(st, 0, sizeof *st);
    rd r = {p, len, 0, false};
    if (get_u8(&r) != 1) return KITH_EINVAL;
    st->sig = get_u64(&r);
    st->kind = get_u8(&r);
    st->nx = get_u8(&r);
    st->bad = get_u8(&r) != 0;
    st->all_int = true;
    if (r.bad || st->kind > IK_DISTINCT || st->nx > PQL_INC_MAX_X) return KITH_EINVAL;
    if (!st->bad && st->nx == 0) {
        st->n = get_varint(&r);
        st->nnum = get_varint(&r);
        st->isum_hi = unzz(get_varint(&r));
        st->isum_lo = get_varint(&r);
        st->all_int = get_u8(&r) != 0;
        st->dsum = get_f64(&r);
        get_val(&r, &st->best);
        uint64_t n = get_varint(&r);
        if (r.bad || n > PQL_INC_MAX_SET) goto bad;
        st->set = n ? kith_xcalloc((size_t)n, sizeof *st->set) : NULL;
        st->capset = (size_t)n;
        for (size_t i = 0; i < n && !r.bad; i++) {
            get_val(&r, &st->set[i]);
            st->nset = i + 1;
        }
    } else if (!st->bad) {
        st->nnum = get_varint(&r);
        uint64_t n = get_varint(&r);
        if (r.bad || n > PQL_INC_MAX_ENTRIES) goto bad;
        st->e = n ? kith_xcalloc((size_t)n, sizeof *st->e) : NULL;
        st->cape = (size_t)n;
        int64_t prev[PQL_INC_MAX_X] = {0};
        for (size_t i = 0; i < n && !r.bad; i++) {
            for (int j = 0; j < st->nx; j++) {
                prev[j] = (int64_t)((uint64_t)prev[j] + (uint64_t)unzz(get_varint(&r)));
                st->e[i].x[j] = prev[j];
            }
            get_val(&r, &st->e[i].v);
            st->ne = i + 1;
        }
    }
    if (r.bad) goto bad;
    if (used) *used = r.off;
    return 0;
bad:
    pql_inc_state_free(st);
    return KITH_EINVAL;
}
