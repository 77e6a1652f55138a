/* kith metrics: lock-free counters (atomics) per route and status class, and a latency histogram. */
#include "metrics.h"

#include <stdatomic.h>

#include "http.h"

#define MAX_ROUTES 128
static const double bucket_s[] = {0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005,
                                  0.01,   0.025,   0.05,   0.1,   0.5,    1.0};
#define N_BUCKETS (sizeof bucket_s / sizeof bucket_s[0])

static atomic_ullong req_count[MAX_ROUTES + 1][6]; /* [route][status / 100] */
static atomic_ullong lat_bucket[MAX_ROUTES + 1][N_BUCKETS + 1];
static atomic_ullong lat_sum_us[MAX_ROUTES + 1];

void metrics_request(int route_index, int status, uint64_t ns)
{
    int ri = route_index < 0 || route_index >= MAX_ROUTES ? MAX_ROUTES : route_index;
    int sc = status / 100;
    if (sc < 1 || sc > 5) sc = 0;
    atomic_fetch_add(&req_count[ri][sc], 1);
    double s = (double)ns / 1e9;
    size_t b = 0;
    while (b < N_BUCKETS && s > bucket_s[b]) b++;
    atomic_fetch_add(&lat_bucket[ri][b], 1);
    atomic_fetch_add(&lat_sum_us[ri], ns / 1000);
}

void metrics_render_http(kith_buf *out)
{
    size_t n;
    const route *rt = http_routes(&n);
    kith_buf_puts(out, "# HELP kith_http_requests_total HTTP requests by route and status class.\n"
                       "# TYPE kith_http_requests_total counter\n");
    for (size_t i = 0; i <= n && i <= MAX_ROUTES; i++) {
        size_t ri = i == n ? MAX_ROUTES : i;
        const char *pat = i == n ? "unrouted" : rt[i].pattern;
        for (int sc = 1; sc <= 5; sc++) {
            unsigned long long v = atomic_load(&req_count[ri][sc]);
            if (v)
                kith_buf_printf(out, "kith_http_requests_total{route=\"%s\",code=\"%dxx\"} %llu\n",
                                pat, sc, v);
        }
    }
    kith_buf_puts(out, "# HELP kith_http_request_duration_seconds Request latency by route.\n"
                       "# TYPE kith_http_request_duration_seconds histogram\n");
    for (size_t i = 0; i < n && i < MAX_ROUTES; i++) {
        unsigned long long cum = 0;
        for (size_t b = 0; b <= N_BUCKETS; b++) cum += atomic_load(&lat_bucket[i][b]);
        if (!cum) continue;
        unsigned long long acc = 0;
        for (size_t b = 0; b < N_BUCKETS; b++) {
            acc += atomic_load(&lat_bucket[i][b]);
            kith_buf_printf(out, "kith_http_request_duration_seconds_bucket{route=\"%s\",le=\"%g\"} %llu\n",
                            rt[i].pattern, bucket_s[b], acc);
        }
        kith_buf_printf(out, "kith_http_request_duration_seconds_bucket{route=\"%s\",le=\"+Inf\"} %llu\n",
                        rt[i].pattern, cum);
        kith_buf_printf(out, "kith_http_request_duration_seconds_sum{route=\"%s\"} %.6f\n",
                        rt[i].pattern, (double)atomic_load(&lat_sum_us[i]) / 1e6);
        kith_buf_printf(out, "kith_http_request_duration_seconds_count{route=\"%s\"} %llu\n",
                        rt[i].pattern, cum);
    }
}
