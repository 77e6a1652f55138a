/* kith metrics: request counters and latency histograms per route, rendered as Prometheus text. */
#ifndef KITH_HTTP_METRICS_H
#define KITH_HTTP_METRICS_H

#include "kith/base.h"

/* route: index in the route table, or -1 for unrouted requests. */
void metrics_request(int route, int status, uint64_t ns);
/* Appends the request metrics to out. */
void metrics_render_http(kith_buf *out);

#endif
