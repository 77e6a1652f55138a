/* bench/gen: writes a deterministic synthetic customer population as JSON lines.
 *
 *   gen --people N --seed S --out-dir DIR [--events-per-person K] [--days D] [--now TIME]
 *       [--truth FILE] [--seed-segments A,B,C]
 *
 * Files in DIR, one bare XDM entity per line (no envelope):
 *   profiles-crm.jsonl      CRM records (CRMID primary + Email; person, personalEmail, homeAddress,
 *                           mobilePhone, _acme.crm)
 *   profiles-loyalty.jsonl  loyalty records (CRMID primary + Phone; loyalty.tier/points)
 *   events-web.jsonl        ExperienceEvents spread over the D days before --now
 * --truth FILE gets one line per person: the identities that person really has in the data, so a
 * stitching run can be scored for precision and recall. An ECID has "linked": false when it only
 * appears in anonymous events: no identity graph can tie it to the person.
 *
 * --seed-segments A,B,C (per mille of the people with a CRM record, disjoint draws) adds events that
 * put people in the seed's three segments (shared/PQL.md), dated relative to --now:
 *   A  a last purchase on the day 7 days before --now's day (drawn only among people whose own
 *      purchases all fall before that day: their last purchase is then exactly on it);
 *   B  one purchase of 10,000-15,000 (a bulk order), at a random time of the --days window, so
 *      their purchases sum to more than 10,000;
 *   C  a logged-in burst of 3-5 ad impressions of distinct campaigns among c-101..c-105, 2 to 8
 *      minutes before --now (in the 30-minute window of segment 3 until 22 minutes after --now).
 * The added events are logged in (CRMID beside the ECID), so the person's CRM profile is the member;
 * a member count can still differ from the placed count where shared devices or emails stitch
 * people together, or where the random events already qualify someone. The counts placed are
 * printed. Without the option nothing is added (the bytes are those of earlier versions).
 *
 * The output depends only on (people, seed, events-per-person, days, now, seed-segments); --now
 * defaults to the current time rounded down to the hour, so pass it to reproduce bytes across
 * hours. The population model is in bench/common.h. */
#include "common.h"

#include <errno.h>
#include <getopt.h>
#include <stdlib.h>
#include <sys/stat.h>

static void usage(FILE *f)
{
    fprintf(f, "usage: gen --people N --seed S --out-dir DIR [--events-per-person K] [--days D]\n"
               "           [--now RFC3339] [--truth FILE]\n"
               "  --people N             population size (required)\n"
               "  --seed S               PRNG seed (default 1)\n"
               "  --out-dir DIR          output directory, created if missing (required)\n"
               "  --events-per-person K  mean web events per person (default 10, max 10000)\n"
               "  --days D               events spread over the last D days (default 30)\n"
               "  --now TIME             reference time (default: now, rounded down to the hour)\n"
               "  --truth FILE           write person -> identities (JSON lines)\n"
               "  --seed-segments A,B,C  per mille of CRM people placed in the seed's segments\n"
               "                         (7 days since the last purchase, purchases > 10000, 3\n"
               "                         campaigns in 30 minutes), e.g. 20,10,20\n");
}

static int parse_u64(const char *s, uint64_t *out)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (errno || end == s || *end || s[0] == '-') return -1;
    *out = v;
    return 0;
}

static FILE *open_out(const char *dir, const char *name)
{
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    if (!f) {
        fprintf(stderr, "gen: cannot write %s: %s\n", path, strerror(errno));
        return NULL;
    }
    setvbuf(f, NULL, _IOFBF, 1 << 20);
    return f;
}

static int write_line(FILE *f, kith_buf *b)
{
    kith_buf_append(b, "\n", 1);
    size_t n = fwrite(b->data, 1, b->len, f);
    b->len = 0;
    return n == 0 ? -1 : 0;
}

/* An event of a placed person (--seed-segments): logged in on device d at t_ms; a purchase of
 * `total` (price > 0) or an impression of campaign c-<campaign>. */
static void write_placed_event(kith_buf *b, const bench_person *p, int d, int64_t t_ms,
                               double total, int campaign, bench_rng *r, uint64_t unique)
{
    char id[BENCH_EVENT_ID_LEN + 1], ts[40];
    bench_event_id(bench_rng_next(r), unique, id);
    kith_time_format(t_ms, ts, sizeof ts);
    kith_buf_printf(b, "{\"_id\":\"%s\",\"timestamp\":\"%s\",\"eventType\":\"%s\",", id, ts,
                    total > 0 ? "commerce.purchases" : "advertising.impressions");
    kith_buf_printf(b,
                    "\"identityMap\":{\"ECID\":[{\"id\":\"%s\",\"primary\":true,"
                    "\"authenticatedState\":\"authenticated\"}],\"CRMID\":[{\"id\":\"%s\","
                    "\"authenticatedState\":\"authenticated\"}]},",
                    p->ecid[d], p->crmid);
    if (total > 0) {
        const struct bench_product *pr = &bench_products[bench_rng_below(r, BENCH_ARRAY_LEN(bench_products))];
        int qty = (int)(total / pr->price) + 1;
        total = pr->price * qty;
        kith_buf_printf(b,
                        "\"productListItems\":[{\"SKU\":\"%s\",\"name\":\"%s\",\"quantity\":%d,"
                        "\"priceTotal\":%.2f}],\"commerce\":{\"purchases\":{\"value\":1},"
                        "\"order\":{\"purchaseID\":\"O-%.12s\",\"priceTotal\":%.2f,"
                        "\"currencyCode\":\"USD\"}}}",
                        pr->sku, pr->name, qty, total, id + 24, total);
    } else {
        kith_buf_printf(b,
                        "\"advertising\":{\"impressions\":{\"value\":1}},"
                        "\"_acme\":{\"campaignId\":\"c-%d\"}}",
                        campaign);
    }
}

/* Writes the truth line of p; used[] says which of its devices appear in its events, linked[]
 * which of them appear in a logged-in event (only those can be stitched to the CRMID). */
static void write_truth(kith_buf *b, const bench_person *p, const bool *used, const bool *linked,
                        int events)
{
    kith_buf_printf(b, "{\"person\":%" PRIu64 ",\"crmId\":\"%s\",\"identities\":[", p->index,
                    p->crmid);
    bool first = true;
    if (p->has_crm) {
        kith_buf_printf(
            b,
            "{\"namespace\":\"CRMID\",\"id\":\"%s\"},{\"namespace\":\"Email\",\"id\":", p->crmid);
        bench_json_str(b, p->email);
        kith_buf_puts(b, "}");
        first = false;
    }
    if (p->has_loyalty) kith_buf_printf(b, ",{\"namespace\":\"Phone\",\"id\":\"%s\"}", p->phone);
    for (int d = 0; d < p->ndevices; d++) {
        if (!used[d]) continue;
        kith_buf_printf(b, "%s{\"namespace\":\"ECID\",\"id\":\"%s\",\"linked\":%s}",
                        first ? "" : ",", p->ecid[d], linked[d] ? "true" : "false");
        first = false;
    }
    kith_buf_printf(b,
                    "],\"hasCrm\":%s,\"hasLoyalty\":%s,\"sharedEmail\":%s,\"junkEmail\":%s,"
                    "\"lendsDevice\":%s,\"borrowsDevice\":%s,\"events\":%d}",
                    p->has_crm ? "true" : "false", p->has_loyalty ? "true" : "false",
                    p->email_shared ? "true" : "false", p->email_junk ? "true" : "false",
                    p->lends_device ? "true" : "false", p->borrows_device ? "true" : "false",
                    events);
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {
        {"people", required_argument, NULL, 'n'},
        {"seed", required_argument, NULL, 's'},
        {"out-dir", required_argument, NULL, 'o'},
        {"events-per-person", required_argument, NULL, 'k'},
        {"days", required_argument, NULL, 'd'},
        {"now", required_argument, NULL, 't'},
        {"truth", required_argument, NULL, 'T'},
        {"seed-segments", required_argument, NULL, 'S'},
        {"help", no_argument, NULL, 'h'},
        {0},
    };
    uint64_t people = 0, seed = 1, k = 10, days = 30;
    const char *out_dir = NULL, *truth_path = NULL;
    int64_t now_ms = kith_now_ms() / 3600000 * 3600000;
    bool have_people = false;
    unsigned share[3] = {0, 0, 0}; /* --seed-segments, per mille */
    int c;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        int bad = 0;
        switch (c) {
        case 'n':
            bad = parse_u64(optarg, &people);
            have_people = true;
            break;
        case 's':
            bad = parse_u64(optarg, &seed);
            break;
        case 'o':
            out_dir = optarg;
            break;
        case 'k':
            bad = parse_u64(optarg, &k) || k > 10000;
            break;
        case 'd':
            bad = parse_u64(optarg, &days) || days < 1 || days > 3650;
            break;
        case 't':
            bad = kith_time_parse(optarg, &now_ms) != 0;
            break;
        case 'T':
            truth_path = optarg;
            break;
        case 'S': {
            int used = 0;
            bad = sscanf(optarg, "%u,%u,%u%n", &share[0], &share[1], &share[2], &used) != 3 ||
                  optarg[used] != 0 || share[0] + share[1] + share[2] > 1000;
            break;
        }
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
        if (bad) {
            const char *name = "?";
            for (const struct option *o = opts; o->name; o++)
                if (o->val == c) name = o->name;
            fprintf(stderr, "gen: bad value for --%s: %s\n", name, optarg);
            return 2;
        }
    }
    if (!have_people || !out_dir || optind != argc) {
        usage(stderr);
        return 2;
    }
    if (mkdir(out_dir, 0755) != 0 && errno != EEXIST) {
        fprintf(stderr, "gen: cannot create %s: %s\n", out_dir, strerror(errno));
        return 1;
    }

    int rc = 1;
    FILE *crm = open_out(out_dir, "profiles-crm.jsonl");
    FILE *loyalty = open_out(out_dir, "profiles-loyalty.jsonl");
    FILE *events = open_out(out_dir, "events-web.jsonl");
    FILE *truth = NULL;
    if (truth_path) {
        truth = fopen(truth_path, "w");
        if (!truth) fprintf(stderr, "gen: cannot write %s: %s\n", truth_path, strerror(errno));
    }
    kith_buf line = {0};
    uint64_t n_crm = 0, n_loyalty = 0, n_events = 0, placed[3] = {0, 0, 0};
    /* segment A's day: the UTC day 7 days before --now's */
    int64_t day_a = now_ms / BENCH_DAY_MS * BENCH_DAY_MS - 7 * BENCH_DAY_MS;
    uint64_t t0 = kith_mono_ns();
    if (!crm || !loyalty || !events || (truth_path && !truth)) goto done;

    for (uint64_t i = 0; i < people; i++) {
        bench_person p;
        bench_person_make(seed, i, people, &p);
        if (p.has_crm) {
            bench_write_crm(&line, &p);
            if (write_line(crm, &line)) goto write_error;
            n_crm++;
        }
        if (p.has_loyalty) {
            bench_write_loyalty(&line, &p);
            if (write_line(loyalty, &line)) goto write_error;
            n_loyalty++;
        }
        /* Events: a person-specific count around K, in sessions of 1-8 events on one device. */
        bench_rng r;
        bench_person_rng(seed, i, 2, &r);
        int target = (int)bench_rng_below(&r, 2 * k + 1);
        bool used[BENCH_MAX_DEVICES] = {0}, linked[BENCH_MAX_DEVICES] = {0};
        int written = 0;
        int64_t last_purchase = INT64_MIN;
        while (written < target) {
            bench_session s;
            bench_session_begin(&s, &p, &r, now_ms, (int)days);
            int len = 1 + (int)bench_rng_below(&r, 8);
            used[s.device] = true;
            for (int e = 0; e < len && written < target; e++, written++) {
                int64_t t = s.t_ms < now_ms ? s.t_ms : now_ms;
                bench_write_event(&line, &s, &r, (i << 16) | (uint64_t)written);
                if (s.logged_in) linked[s.device] = true;
                if (memmem(line.data, line.len, "\"eventType\":\"commerce.purchases\"", 32) &&
                    t > last_purchase)
                    last_purchase = t;
                if (write_line(events, &line)) goto write_error;
            }
        }
        /* --seed-segments: one draw per CRM person from its own stream (3), so the rest of the
         * data does not change */
        if (p.has_crm && share[0] + share[1] + share[2] > 0) {
            bench_rng q;
            bench_person_rng(seed, i, 3, &q);
            uint64_t u = bench_rng_below(&q, 1000);
            int d = (int)bench_rng_below(&q, (uint64_t)p.ndevices);
            int which = u < share[0] ? 0 : u < share[0] + share[1] ? 1 : u < share[0] + share[1] + share[2] ? 2 : -1;
            if (which == 0 && last_purchase >= day_a) which = -1; /* a later purchase: not placeable */
            if (which == 0) {
                int64_t t = day_a + (int64_t)bench_rng_below(&q, (uint64_t)BENCH_DAY_MS);
                write_placed_event(&line, &p, d, t, 20 + (double)bench_rng_below(&q, 300), 0, &q,
                                   (i << 16) | (uint64_t)written++);
                if (write_line(events, &line)) goto write_error;
            } else if (which == 1) {
                int64_t span = (int64_t)days * BENCH_DAY_MS;
                int64_t t = now_ms - span + (int64_t)bench_rng_below(&q, (uint64_t)span);
                write_placed_event(&line, &p, d, t, 10001 + (double)bench_rng_below(&q, 5000), 0, &q,
                                   (i << 16) | (uint64_t)written++);
                if (write_line(events, &line)) goto write_error;
            } else if (which == 2) {
                int n = 3 + (int)bench_rng_below(&q, 3), camp[5] = {101, 102, 103, 104, 105};
                for (int x = 4; x > 0; x--) { /* a shuffle: distinct campaigns */
                    int y = (int)bench_rng_below(&q, (uint64_t)x + 1), tmp = camp[x];
                    camp[x] = camp[y];
                    camp[y] = tmp;
                }
                int64_t t = now_ms - 8 * 60000 + (int64_t)bench_rng_below(&q, 60000);
                for (int x = 0; x < n; x++, t += 20000 + (int64_t)bench_rng_below(&q, 40000)) {
                    write_placed_event(&line, &p, d, t, 0, camp[x], &q, (i << 16) | (uint64_t)written++);
                    if (write_line(events, &line)) goto write_error;
                }
            }
            if (which >= 0) {
                used[d] = linked[d] = true;
                placed[which]++;
            }
        }
        n_events += (uint64_t)written;
        if (truth) {
            write_truth(&line, &p, used, linked, written);
            if (write_line(truth, &line)) goto write_error;
        }
    }
    if (fflush(crm) || fflush(loyalty) || fflush(events) || (truth && fflush(truth)))
        goto write_error;

    double secs = (double)(kith_mono_ns() - t0) / 1e9;
    if (share[0] + share[1] + share[2] > 0)
        fprintf(stderr,
                "gen: placed %" PRIu64 " people in segment A (7 days since the last purchase), %" PRIu64
                " in B (purchases > 10000), %" PRIu64 " in C (3 campaigns in 30 minutes)\n",
                placed[0], placed[1], placed[2]);
    char ts[40];
    fprintf(stderr,
            "gen: %" PRIu64 " people (seed %" PRIu64 "): %" PRIu64 " CRM, %" PRIu64
            " loyalty, %" PRIu64 " events up to %s in %s/ (%.2f s)\n",
            people, seed, n_crm, n_loyalty, n_events, kith_time_format(now_ms, ts, sizeof ts),
            out_dir, secs);
    rc = 0;
    goto done;

write_error:
    fprintf(stderr, "gen: write failed: %s\n", strerror(errno));
done:
    kith_buf_free(&line);
    if (crm && fclose(crm)) rc = 1;
    if (loyalty && fclose(loyalty)) rc = 1;
    if (events && fclose(events)) rc = 1;
    if (truth && fclose(truth)) rc = 1;
    return rc;
}
