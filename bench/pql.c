/* Micro-benchmark of the PQL evaluator: evaluations per second of the seed's three segments
 * (PQL.md) on one profile with ~100 events (purchases, impressions, page views over 30 days), and
 * compile time per definition.
 *
 *   make build && ./build/bench/pql [seconds-per-figure, default 1]
 * Prints one line per figure; not a test (no assertions on speed). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kith/base.h"
#include "kith/pql.h"

static const char *const SEGMENTS[][2] = {
    {"week-since-last-purchase",
     "xEvent[eventType = \"commerce.purchases\"].max(timestamp) occurs = 7 days before today"},
    {"lifetime-value>10000",
     "xEvent[eventType = \"commerce.purchases\"].sum(commerce.order.priceTotal) > 10000"},
    {"3-campaigns-in-30-min",
     "xEvent[eventType = \"advertising.impressions\" and _acme.campaignId in [\"c-101\", "
     "\"c-102\", \"c-103\", \"c-104\", \"c-105\"] and timestamp occurs <= 30 minutes before "
     "now]._acme.campaignId.distinct().count() >= 3"},
};

static double now_s(void)
{
    return (double)kith_mono_ns() / 1e9;
}

int main(int argc, char **argv)
{
    double secs = argc > 1 ? atof(argv[1]) : 1.0;
    if (secs <= 0) secs = 1.0;
    int64_t now = 1715169600000LL; /* 2024-05-08T12:00:00Z */
    json_t *events = json_array();
    for (int i = 0; i < 100; i++) {
        /* oldest first; the last 10 are impressions inside the last 30 minutes */
        int64_t t =
            i < 90 ? now - (int64_t)(90 - i) * 8 * 3600000LL : now - (int64_t)(100 - i) * 120000LL;
        char ts[40];
        kith_time_format(t, ts, sizeof ts);
        json_t *e;
        if (i % 5 == 0 && i < 90)
            e = json_pack("{s:s, s:s, s:{s:{s:f, s:s}}, s:[{s:s, s:i}]}", "timestamp", ts,
                          "eventType", "commerce.purchases", "commerce", "order", "priceTotal",
                          250.0 + i, "currencyCode", "USD", "productListItems", "SKU", "PS-1001",
                          "quantity", 1);
        else if (i % 5 == 1 || i >= 90)
            e = json_pack("{s:s, s:s, s:{s:s}}", "timestamp", ts, "eventType",
                          "advertising.impressions", "_acme", "campaignId",
                          (const char *[]){"c-101", "c-102", "c-103", "c-900"}[i % 4]);
        else
            e = json_pack("{s:s, s:s, s:{s:{s:s}}}", "timestamp", ts, "eventType",
                          "web.webpagedetails.pageViews", "web", "webPageDetails", "name", "home");
        json_array_append_new(events, e);
    }
    json_t *profile = json_pack("{s:{s:{s:s}}}", "person", "name", "firstName", "Ann");
    pql_evaluator *ev = pql_evaluator_new(NULL);
    printf("PQL evaluator, one profile with %zu events, %.1f s per figure\n",
           json_array_size(events), secs);
    for (size_t s = 0; s < sizeof SEGMENTS / sizeof SEGMENTS[0]; s++) {
        const char *text = SEGMENTS[s][1];
        pql_program *p;
        pql_error err;
        double t0 = now_s();
        long nc = 0;
        do {
            if (pql_compile(text, strlen(text), NULL, &p, &err)) {
                fprintf(stderr, "compile: %s\n", err.message);
                return 1;
            }
            pql_program_free(p);
            nc++;
        } while (now_s() - t0 < secs / 4);
        double compile_us = (now_s() - t0) / (double)nc * 1e6;
        pql_compile(text, strlen(text), NULL, &p, &err);
        pql_input in = {.profile = profile, .events = events, .now_ms = now};
        pql_result res = {0};
        long n = 0;
        t0 = now_s();
        double el;
        do {
            for (int k = 0; k < 256; k++) {
                pql_eval(ev, p, &in, &res);
                in.now_ms = now + (n & 1023);
                n++;
            }
        } while ((el = now_s() - t0) < secs);
        printf(
            "  %-26s %10.0f evaluations/s  %6.2f us/eval  %6llu steps  match=%d  compile %.1f us\n",
            SEGMENTS[s][0], (double)n / el, el / (double)n * 1e6, (unsigned long long)res.steps,
            res.match, compile_us);
        pql_program_free(p);
    }
    printf("command: make build && ./build/bench/pql %g\n", secs);
    pql_evaluator_free(ev);
    json_decref(events);
    json_decref(profile);
    return 0;
}
