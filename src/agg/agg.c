/* kith agg: time-bucketed aggregate state (see include/kith/agg.h). */
#include "kith/agg.h"

#include <stdlib.h>
#include <string.h>

#define HOUR_MS 3600000LL
#define DAY_MS 86400000LL

static int64_t floordiv(int64_t a, int64_t b)
{
    int64_t q = a / b;
    return (a % b != 0 && (a < 0) != (b < 0)) ? q - 1 : q;
}

/* Days since 1970-01-01 of a civil date, and back (H. Hinnant's algorithms). */
static int64_t days_from_civil(int64_t y, int m, int d)
{
    y -= m <= 2;
    int64_t era = floordiv(y, 400);
    int64_t yoe = y - era * 400;
    int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

static void civil_from_days(int64_t z, int64_t *y, int *m)
{
    z += 719468;
    int64_t era = floordiv(z, 146097);
    int64_t doe = z - era * 146097;
    int64_t yoe = (doe - doe / 1460 + doe / 36524 - doe / 146096) / 365;
    int64_t doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    int64_t mp = (5 * doy + 2) / 153;
    *m = (int)(mp < 10 ? mp + 3 : mp - 9);
    *y = yoe + era * 400 + (*m <= 2);
}

int64_t agg_period_of(int unit, int64_t ts)
{
    switch (unit) {
    case AGG_HOURS: return floordiv(ts, HOUR_MS);
    case AGG_DAYS: return floordiv(ts, DAY_MS);
    case AGG_WEEKS: return floordiv(floordiv(ts, DAY_MS) + 4, 7); /* 1969-12-28 was a Sunday */
    default: {
        int64_t y;
        int m;
        civil_from_days(floordiv(ts, DAY_MS), &y, &m);
        return (y - 1970) * 12 + (m - 1);
    }
    }
}

int64_t agg_period_start(int unit, int64_t p)
{
    switch (unit) {
    case AGG_HOURS: return p * HOUR_MS;
    case AGG_DAYS: return p * DAY_MS;
    case AGG_WEEKS: return (p * 7 - 4) * DAY_MS;
    default: return days_from_civil(1970 + floordiv(p, 12), (int)(p - floordiv(p, 12) * 12) + 1, 1) * DAY_MS;
    }
}

static int64_t first_period(agg_window w, int64_t now)
{
    return agg_period_of(w.unit, now) - w.count;
}

int64_t agg_window_start(agg_window w, int64_t now)
{
    return agg_period_start(w.unit, first_period(w, now));
}

void agg_init(agg_state *s, agg_window w)
{
    memset(s, 0, sizeof *s);
    s->w = w;
    s->keep = AGG_KEEP_ALL;
}

static void bucket_clear(agg_bucket *b)
{
    free(b->last);
    b->last = NULL;
}

void agg_free(agg_state *s)
{
    for (size_t i = 0; i < s->n; i++)
        bucket_clear(&s->b[i]);
    free(s->b);
    s->b = NULL;
    s->n = s->cap = 0;
}

void agg_prune(agg_state *s, int64_t now)
{
    int64_t first = first_period(s->w, now);
    size_t k = 0;
    while (k < s->n && s->b[k].period < first)
        bucket_clear(&s->b[k++]);
    if (k) {
        memmove(s->b, s->b + k, (s->n - k) * sizeof *s->b);
        s->n -= k;
    }
}

/* The bucket of period p (inserted empty when missing). */
static agg_bucket *bucket_at(agg_state *s, int64_t p)
{
    size_t i = s->n;
    while (i > 0 && s->b[i - 1].period > p)
        i--;
    if (i > 0 && s->b[i - 1].period == p) return &s->b[i - 1];
    if (s->n == s->cap) {
        s->cap = s->cap ? s->cap * 2 : 4;
        s->b = kith_xrealloc(s->b, s->cap * sizeof *s->b);
    }
    memmove(s->b + i + 1, s->b + i, (s->n - i) * sizeof *s->b);
    s->n++;
    agg_bucket *b = &s->b[i];
    memset(b, 0, sizeof *b);
    b->period = p;
    b->last_ts = INT64_MIN;
    return b;
}

/* src's figures into dst (same or later period). */
static void bucket_fold(agg_bucket *dst, const agg_bucket *src)
{
    if (src->nnum) {
        if (!dst->nnum || src->min < dst->min) dst->min = src->min;
        if (!dst->nnum || src->max > dst->max) dst->max = src->max;
    }
    dst->count += src->count;
    dst->nnum += src->nnum;
    dst->sum += src->sum;
    if (src->last_ts != INT64_MIN && src->last_ts >= dst->last_ts) {
        dst->last_ts = src->last_ts;
        free(dst->last);
        dst->last = NULL;
        dst->last_len = src->last_len;
        if (src->last) {
            dst->last = kith_xmalloc(src->last_len + 1);
            memcpy(dst->last, src->last, src->last_len);
            dst->last[src->last_len] = 0;
        }
    }
}

static void cap_buckets(agg_state *s)
{
    while (s->n > AGG_MAX_BUCKETS) {
        bucket_fold(&s->b[s->n - 2], &s->b[s->n - 1]);
        bucket_clear(&s->b[s->n - 1]);
        s->n--;
    }
}

bool agg_add(agg_state *s, int64_t ts, bool has_num, double num, const void *last, size_t last_len,
             int64_t now)
{
    if (last && last_len > AGG_LAST_MAX) return false;
    agg_prune(s, now);
    int64_t p = agg_period_of(s->w.unit, ts);
    if (p < first_period(s->w, now)) return false;
    agg_bucket *b = bucket_at(s, p);
    agg_bucket one = {.period = p, .count = 1, .last_ts = ts, .last = (char *)last,
                      .last_len = (uint32_t)last_len};
    if (has_num) {
        one.nnum = 1;
        one.sum = one.min = one.max = num;
    }
    bucket_fold(b, &one);
    cap_buckets(s);
    return true;
}

void agg_merge(agg_state *dst, const agg_state *src)
{
    for (size_t i = 0; i < src->n; i++)
        bucket_fold(bucket_at(dst, src->b[i].period), &src->b[i]);
    cap_buckets(dst);
}

void agg_read(const agg_state *s, int64_t now, agg_result *out)
{
    memset(out, 0, sizeof *out);
    out->last_ts = INT64_MIN;
    out->next_change = INT64_MAX;
    int64_t first = first_period(s->w, now);
    bool oldest = true;
    for (size_t i = 0; i < s->n; i++) {
        const agg_bucket *b = &s->b[i];
        if (b->period < first) continue;
        if (oldest) {
            /* It leaves when the window starts after it. */
            out->next_change = agg_period_start(s->w.unit, b->period + s->w.count + 1);
            oldest = false;
        }
        if (b->nnum) {
            if (!out->nnum || b->min < out->min) out->min = b->min;
            if (!out->nnum || b->max > out->max) out->max = b->max;
        }
        out->count += b->count;
        out->nnum += b->nnum;
        out->sum += b->sum;
        if (b->last_ts != INT64_MIN && b->last_ts >= out->last_ts) {
            out->last_ts = b->last_ts;
            out->last = b->last;
            out->last_len = b->last_len;
        }
    }
}

/* --- serialization: [u8 version 2][u8 unit][u16 count][u8 keep][varint n] then per bucket
 * [varint zigzag(period - previous period)][varint count]
 * [varint nnum, when SUM, MIN or MAX is kept][f64 sum][f64 min][f64 max] (those kept)
 * [varint zigzag(last_ts - period start)][varint last length + 1, 0 = none][bytes] (when LAST is kept)
 * doubles as their IEEE-754 bit patterns, big-endian. --- */

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

static void put_f64(kith_buf *o, double d)
{
    uint64_t u;
    memcpy(&u, &d, 8);
    uint8_t b[8];
    kith_put_be64(b, u);
    kith_buf_append(o, b, 8);
}

void agg_encode(const agg_state *s, kith_buf *o)
{
    uint8_t h[5] = {2, (uint8_t)s->w.unit, (uint8_t)(s->w.count >> 8), (uint8_t)s->w.count,
                    (uint8_t)(s->keep & AGG_KEEP_ALL)};
    kith_buf_append(o, h, sizeof h);
    put_varint(o, s->n);
    bool num = s->keep & (AGG_KEEP_SUM | AGG_KEEP_MIN | AGG_KEEP_MAX);
    int64_t prev = 0;
    for (size_t i = 0; i < s->n; i++) {
        const agg_bucket *b = &s->b[i];
        put_varint(o, zz(b->period - prev));
        prev = b->period;
        put_varint(o, b->count);
        if (num) put_varint(o, b->nnum);
        if (s->keep & AGG_KEEP_SUM) put_f64(o, b->sum);
        if (s->keep & AGG_KEEP_MIN) put_f64(o, b->min);
        if (s->keep & AGG_KEEP_MAX) put_f64(o, b->max);
        if (s->keep & AGG_KEEP_LAST) {
            bool has = b->last_ts != INT64_MIN;
            put_varint(o, has ? zz(b->last_ts - agg_period_start(s->w.unit, b->period)) + 1 : 0);
            put_varint(o, b->last ? (uint64_t)b->last_len + 1 : 0);
            if (b->last) kith_buf_append(o, b->last, b->last_len);
        }
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

static double get_f64(rd *r)
{
    if (r->len - r->off < 8) {
        r->bad = true;
        return 0;
    }
    uint64_t u = kith_get_be64(r->p + r->off);
    r->off += 8;
    double d;
    memcpy(&d, &u, 8);
    return d;
}

int agg_decode(agg_state *s, const void *p, size_t len, size_t *used)
{
    const uint8_t *q = p;
    memset(s, 0, sizeof *s);
    if (len < 6 || q[0] != 2 || q[1] > AGG_MONTHS) return KITH_EINVAL;
    s->w.unit = q[1];
    s->w.count = q[2] << 8 | q[3];
    s->keep = q[4] & AGG_KEEP_ALL;
    rd r = {q, len, 5, false};
    uint64_t n = get_varint(&r);
    if (r.bad || n > AGG_MAX_BUCKETS) return KITH_EINVAL;
    if (n) {
        s->b = kith_xcalloc((size_t)n, sizeof *s->b);
        s->cap = (size_t)n;
    }
    bool num = s->keep & (AGG_KEEP_SUM | AGG_KEEP_MIN | AGG_KEEP_MAX);
    int64_t prev = 0;
    for (size_t i = 0; i < n; i++) {
        agg_bucket *b = &s->b[i];
        s->n = i + 1;
        b->period = prev + unzz(get_varint(&r));
        prev = b->period;
        b->count = get_varint(&r);
        if (num) b->nnum = get_varint(&r);
        if (s->keep & AGG_KEEP_SUM) b->sum = get_f64(&r);
        if (s->keep & AGG_KEEP_MIN) b->min = get_f64(&r);
        if (s->keep & AGG_KEEP_MAX) b->max = get_f64(&r);
        b->last_ts = INT64_MIN;
        if (s->keep & AGG_KEEP_LAST) {
            uint64_t t = get_varint(&r);
            if (t) b->last_ts = agg_period_start(s->w.unit, b->period) + unzz(t - 1);
            uint64_t l = get_varint(&r);
            if (l) {
                l--;
                if (l > AGG_LAST_MAX || r.len - r.off < l) goto bad;
                b->last = kith_xmalloc((size_t)l + 1);
                memcpy(b->last, q + r.off, (size_t)l);
                b->last[l] = 0;
                b->last_len = (uint32_t)l;
                r.off += (size_t)l;
            }
        }
        if (r.bad || (i > 0 && b->period <= s->b[i - 1].period)) goto bad;
    }
    if (used) *used = r.off;
    return 0;
bad:
    agg_free(s);
    return KITH_EINVAL;
}
