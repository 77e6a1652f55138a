/* kith base: error table, clocks, time parsing, logging, buffers. */
#include "kith/base.h"

#include <errno.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

static const struct {
    int code;
    int status;
    const char *title;
} err_table[] = {
#define X(name, status, title) {name, status, title},
#include "errors.def"
#undef X
};

const char *kith_strerror(int err)
{
    if (err == 0) return "OK";
    for (size_t i = 0; i < sizeof err_table / sizeof err_table[0]; i++)
        if (err_table[i].code == err) return err_table[i].title;
    return "Unknown Error";
}

int kith_err_http_status(int err)
{
    if (err == 0) return 200;
    for (size_t i = 0; i < sizeof err_table / sizeof err_table[0]; i++)
        if (err_table[i].code == err) return err_table[i].status;
    return 500;
}

int64_t kith_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

uint64_t kith_mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

/* Days from 1970-01-01 to y-m-d (proleptic Gregorian); Howard Hinnant's algorithm. */
static int64_t days_from_civil(int64_t y, unsigned m, unsigned d)
{
    y -= m <= 2;
    const int64_t era = (y >= 0 ? y : y - 399) / 400;
    const unsigned yoe = (unsigned)(y - era * 400);
    const unsigned doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    const unsigned doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + (int64_t)doe - 719468;
}

static int days_in_month(int y, int m)
{
    static const int dm[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    if (m == 2 && ((y % 4 == 0 && y % 100 != 0) || y % 400 == 0)) return 29;
    return dm[m - 1];
}

static int digits(const char *s, int n, int *out)
{
    int v = 0;
    for (int i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9') return -1;
        v = v * 10 + (s[i] - '0');
    }
    *out = v;
    return 0;
}

static int parse_date_part(const char *s, int *y, int *mo, int *d)
{
    if (digits(s, 4, y) || s[4] != '-' || digits(s + 5, 2, mo) || s[7] != '-' || digits(s + 8, 2, d))
        return KITH_EINVAL;
    if (*mo < 1 || *mo > 12 || *d < 1 || *d > days_in_month(*y, *mo)) return KITH_EINVAL;
    return 0;
}

int kith_date_parse(const char *s, int64_t *out_ms)
{
    int y, mo, d;
    if (strlen(s) != 10 || parse_date_part(s, &y, &mo, &d)) return KITH_EINVAL;
    *out_ms = days_from_civil(y, (unsigned)mo, (unsigned)d) * 86400000;
    return 0;
}

int kith_time_parse(const char *s, int64_t *out_ms)
{
    int y, mo, d, h, mi, sec, ms = 0;
    if (strlen(s) < 19 || parse_date_part(s, &y, &mo, &d)) return KITH_EINVAL;
    if ((s[10] != 'T' && s[10] != 't' && s[10] != ' ') || digits(s + 11, 2, &h) || s[13] != ':' ||
        digits(s + 14, 2, &mi) || s[16] != ':' || digits(s + 17, 2, &sec))
        return KITH_EINVAL;
    if (h > 23 || mi > 59 || sec > 60) return KITH_EINVAL;
    const char *p = s + 19;
    if (*p == '.') {
        p++;
        int n = 0, scale = 100;
        while (*p >= '0' && *p <= '9') {
            if (n < 3) ms += (*p - '0') * scale, scale /= 10;
            n++, p++;
        }
        if (n == 0 || n > 9) return KITH_EINVAL;
    }
    int64_t off = 0;
    if (*p == 'Z' || *p == 'z') {
        p++;
    } else if (*p == '+' || *p == '-') {
        int oh, om;
        if (digits(p + 1, 2, &oh) || p[3] != ':' || digits(p + 4, 2, &om) || oh > 23 || om > 59)
            return KITH_EINVAL;
        off = (int64_t)(oh * 60 + om) * 60000 * (*p == '+' ? 1 : -1);
        p += 6;
    } else {
        return KITH_EINVAL;
    }
    if (*p) return KITH_EINVAL;
    int64_t days = days_from_civil(y, (unsigned)mo, (unsigned)d);
    *out_ms = ((days * 24 + h) * 60 + mi) * 60000 + (int64_t)sec * 1000 + ms - off;
    return 0;
}

char *kith_time_format(int64_t ms, char *buf, size_t cap)
{
    int64_t secs = ms >= 0 ? ms / 1000 : (ms - 999) / 1000;
    int msec = (int)(ms - secs * 1000);
    time_t t = (time_t)secs;
    struct tm tm;
    gmtime_r(&t, &tm);
    if (msec)
        snprintf(buf, cap, "%04d-%02d-%02dT%02d:%02d:%02d.%03dZ", tm.tm_year + 1900, tm.tm_mon + 1,
                 tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec, msec);
    else
        snprintf(buf, cap, "%04d-%02d-%02dT%02d:%02d:%02dZ", tm.tm_year + 1900, tm.tm_mon + 1,
                 tm.tm_mday, tm.tm_hour, tm.tm_min, tm.tm_sec);
    return buf;
}

static enum kith_log_level log_level = KITH_LOG_INFO;
static bool log_json;

void kith_log_set_json(bool json)
{
    log_json = json;
}

void kith_log_set_level(enum kith_log_level lvl)
{
    log_level = lvl;
}

void kith_log(enum kith_log_level lvl, const char *module, const char *fmt, ...)
{
    static const char *names[] = {"debug", "info", "warn", "error"};
    if (lvl < log_level) return;
    char ts[40], line[2048];
    kith_time_format(kith_now_ms(), ts, sizeof ts);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof line, fmt, ap);
    va_end(ap);
    if (!log_json) {
        fprintf(stderr, "%s %s %s: %s\n", ts, names[lvl], module, line);
        return;
    }
    /* JSON: escape the message (module names are plain). */
    char esc[4200];
    size_t o = 0;
    for (const unsigned char *p = (const unsigned char *)line; *p && o + 8 < sizeof esc; p++) {
        if (*p == '"' || *p == '\\') esc[o++] = '\\', esc[o++] = (char)*p;
        else if (*p < 0x20) o += (size_t)snprintf(esc + o, sizeof esc - o, "\\u%04x", *p);
        else esc[o++] = (char)*p;
    }
    esc[o] = 0;
    kith_utf8_sanitize(esc);
    fprintf(stderr, "{\"ts\":\"%s\",\"level\":\"%s\",\"module\":\"%s\",\"msg\":\"%s\"}\n", ts,
            names[lvl], module, esc);
}

uint64_t kith_hash64(const void *data, size_t len, uint64_t seed)
{
    const uint8_t *p = data;
    uint64_t h = 1469598103934665603ull ^ seed;
    for (size_t i = 0; i < len; i++) {
        h ^= p[i];
        h *= 1099511628211ull;
    }
    h ^= h >> 29;
    h *= 0xbf58476d1ce4e5b9ull;
    h ^= h >> 32;
    return h;
}

int kith_random(void *buf, size_t n)
{
    uint8_t *p = buf;
    while (n) {
        ssize_t r = getrandom(p, n, 0);
        if (r < 0) {
            if (errno == EINTR) continue;
            return KITH_EIO;
        }
        p += r, n -= (size_t)r;
    }
    return 0;
}

void kith_hex(const void *data, size_t n, char *out)
{
    static const char hx[] = "0123456789abcdef";
    const uint8_t *p = data;
    for (size_t i = 0; i < n; i++) {
        out[2 * i] = hx[p[i] >> 4];
        out[2 * i + 1] = hx[p[i] & 15];
    }
    out[2 * n] = 0;
}

void kith_uuid4(char *out)
{
    uint8_t b[16];
    char hex[33];
    kith_random(b, sizeof b);
    b[6] = (uint8_t)((b[6] & 0x0f) | 0x40);
    b[8] = (uint8_t)((b[8] & 0x3f) | 0x80);
    kith_hex(b, sizeof b, hex);
    snprintf(out, 37, "%.8s-%.4s-%.4s-%.4s-%.12s", hex, hex + 8, hex + 12, hex + 16, hex + 20);
}

static void oom(void)
{
    fputs("kith: out of memory\n", stderr);
    abort();
}

void *kith_xmalloc(size_t n)
{
    void *p = malloc(n ? n : 1);
    if (!p) oom();
    return p;
}

void *kith_xcalloc(size_t n, size_t sz)
{
    void *p = calloc(n ? n : 1, sz ? sz : 1);
    if (!p) oom();
    return p;
}

void *kith_xrealloc(void *p, size_t n)
{
    p = realloc(p, n ? n : 1);
    if (!p) oom();
    return p;
}

char *kith_xstrdup(const char *s)
{
    return kith_xstrndup(s, strlen(s));
}

char *kith_xstrndup(const char *s, size_t n)
{
    char *p = kith_xmalloc(n + 1);
    memcpy(p, s, n);
    p[n] = 0;
    return p;
}

void kith_buf_reserve(kith_buf *b, size_t extra)
{
    if (b->len + extra + 1 <= b->cap) return;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < b->len + extra + 1) cap *= 2;
    b->data = kith_xrealloc(b->data, cap);
    b->cap = cap;
}

void kith_buf_append(kith_buf *b, const void *p, size_t n)
{
    kith_buf_reserve(b, n);
    memcpy(b->data + b->len, p, n);
    b->len += n;
    b->data[b->len] = 0;
}

void kith_buf_puts(kith_buf *b, const char *s)
{
    kith_buf_append(b, s, strlen(s));
}

void kith_buf_printf(kith_buf *b, const char *fmt, ...)
{
    va_list ap, ap2;
    va_start(ap, fmt);
    va_copy(ap2, ap);
    int n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n > 0) {
        kith_buf_reserve(b, (size_t)n);
        vsnprintf(b->data + b->len, (size_t)n + 1, fmt, ap2);
        b->len += (size_t)n;
    }
    va_end(ap2);
}

void kith_buf_free(kith_buf *b)
{
    free(b->data);
    b->data = NULL;
    b->len = b->cap = 0;
}

char *kith_utf8_sanitize(char *s)
{
    unsigned char *p = (unsigned char *)s;
    while (*p) {
        unsigned char c = *p;
        size_t n = c < 0x80 ? 1 : (c >= 0xc2 && c <= 0xdf) ? 2 : (c >= 0xe0 && c <= 0xef) ? 3
                                 : (c >= 0xf0 && c <= 0xf4) ? 4 : 0;
        size_t have = 1;
        while (n > 1 && have < n && (p[have] & 0xc0) == 0x80) have++;
        if (n == 0 || have < n) {
            if (n > 1 && p[have] == 0) { /* cut short by truncation at the end */
                *p = 0;
                break;
            }
            *p++ = '?';
            continue;
        }
        uint32_t cp = n == 1 ? c : (uint32_t)(c & (0x7f >> n));
        for (size_t i = 1; i < n; i++) cp = cp << 6 | (p[i] & 0x3f);
        if ((n == 3 && (cp < 0x800 || (cp >= 0xd800 && cp <= 0xdfff))) ||
            (n == 4 && (cp < 0x10000 || cp > 0x10ffff))) {
            *p++ = '?';
            continue;
        }
        p += n;
    }
    return s;
}
