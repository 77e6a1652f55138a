/* kith base: error codes, time, logging, small helpers shared by every module.
 *
 * Functions that can fail return 0 or a negative kith error code (errors.def); detail goes into an
 * out-parameter. Strings are NUL-terminated unless a length is passed beside them. */
#ifndef KITH_BASE_H
#define KITH_BASE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum kith_err {
    KITH_OK = 0,
    KITH_ERR_BASE_ = -1000,
#define X(name, status, title) name,
#include "../../src/base/errors.def"
#undef X
};

/* Static strings; never NULL. */
const char *kith_strerror(int err);
int kith_err_http_status(int err);

/* Milliseconds since the epoch (wall clock) and a monotonic clock in nanoseconds. */
int64_t kith_now_ms(void);
uint64_t kith_mono_ns(void);

/* Parses an RFC 3339 / ISO-8601 date-time ("2024-05-01T10:00:00Z", fractions and offsets allowed)
 * into epoch milliseconds. Returns 0 or KITH_EINVAL. */
int kith_time_parse(const char *s, int64_t *out_ms);
/* Parses a full-date "YYYY-MM-DD"; returns 0 or KITH_EINVAL. */
int kith_date_parse(const char *s, int64_t *out_ms);
/* Formats epoch ms as "YYYY-MM-DDTHH:MM:SS.mmmZ" (or without .mmm when whole seconds) into buf
 * (at least 32 bytes). Returns buf. */
char *kith_time_format(int64_t ms, char *buf, size_t cap);

/* Logging to stderr: one line per call, "ts level module: message". */
enum kith_log_level { KITH_LOG_DEBUG, KITH_LOG_INFO, KITH_LOG_WARN, KITH_LOG_ERROR };
void kith_log_set_level(enum kith_log_level lvl);
/* false: "ts level module: message" lines (default); true: one JSON object per line
 * {"ts","level","module","msg"}. */
void kith_log_set_json(bool json);
void kith_log(enum kith_log_level lvl, const char *module, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Big-endian fixed-width integers, for ordered keys. */
static inline void kith_put_be32(uint8_t *p, uint32_t v)
{
    p[0] = (uint8_t)(v >> 24); p[1] = (uint8_t)(v >> 16); p[2] = (uint8_t)(v >> 8); p[3] = (uint8_t)v;
}
static inline void kith_put_be64(uint8_t *p, uint64_t v)
{
    kith_put_be32(p, (uint32_t)(v >> 32));
    kith_put_be32(p + 4, (uint32_t)v);
}
static inline uint32_t kith_get_be32(const uint8_t *p)
{
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}
static inline uint64_t kith_get_be64(const uint8_t *p)
{
    return ((uint64_t)kith_get_be32(p) << 32) | kith_get_be32(p + 4);
}

/* 64-bit FNV-1a; good enough for in-memory hash tables of identities. */
uint64_t kith_hash64(const void *data, size_t len, uint64_t seed);

/* Fills buf with n random bytes from the OS; returns 0 or KITH_EIO. */
int kith_random(void *buf, size_t n);
/* Writes 2*n lowercase hex characters of data plus a NUL into out. */
void kith_hex(const void *data, size_t n, char *out);
/* A random (version 4) UUID, "xxxxxxxx-xxxx-4xxx-yxxx-xxxxxxxxxxxx", into out (37 bytes). */
void kith_uuid4(char *out);

/* Makes s valid UTF-8 in place: a truncated sequence at the end is cut, any other invalid byte
 * becomes '?'. For messages that quote input and were cut to a buffer. Returns s. */
char *kith_utf8_sanitize(char *s);

/* malloc/strdup that abort on out-of-memory (for small, bounded allocations only). */
void *kith_xmalloc(size_t n);
void *kith_xcalloc(size_t n, size_t sz);
void *kith_xrealloc(void *p, size_t n);
char *kith_xstrdup(const char *s);
char *kith_xstrndup(const char *s, size_t n);

/* A growable byte buffer. */
typedef struct kith_buf {
    char *data;
    size_t len, cap;
} kith_buf;
void kith_buf_reserve(kith_buf *b, size_t extra);
void kith_buf_append(kith_buf *b, const void *p, size_t n);
void kith_buf_puts(kith_buf *b, const char *s);
void kith_buf_printf(kith_buf *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
void kith_buf_free(kith_buf *b);

#endif
