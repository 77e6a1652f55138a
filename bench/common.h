/* kith bench: the synthetic population shared by bench/gen and bench/loadgen (header-only).
 *
 * Everything is derived from (seed, person index) alone, so a person can be rebuilt at random
 * without generating the people before it: gen streams millions of people in O(1) memory, and
 * loadgen builds any subset in memory. Same seed, same person, same bytes.
 *
 * The population, per person i of N:
 * - 90% have a CRM record (CRMID primary + Email) and may log in on the web; 10% stay anonymous.
 * - 40% of the CRM customers also have a loyalty record (CRMID primary + Phone,
 * loyalty.tier/points).
 * - 1-4 devices, each an ECID (38 digits); 5% of people lend their first device to person i+1
 *   (a shared family tablet), so two CRMIDs meet on one ECID.
 * - 3% use the email of person i-1 (a household address); 1% give a junk email (test@test.com...).
 * - Web events come in sessions on one device; 35% of sessions log in (CRMID in identityMap), and a
 *   purchase always does.
 *
 * Writers append one bare XDM entity (no envelope, no newline) to a kith_buf; the buffer owns its
 * memory and the caller frees it. */
#ifndef KITH_BENCH_COMMON_H
#define KITH_BENCH_COMMON_H

#include "kith/base.h"

#include <inttypes.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#define BENCH_ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))
#define BENCH_MAX_DEVICES 5
#define BENCH_DAY_MS 86400000LL
/* Length of an event _id: a UUID-shaped string, fixed so that loadgen can rewrite it in place. */
#define BENCH_EVENT_ID_LEN 36

/* ---- PRNG: splitmix64 to seed, xoshiro256** to draw ---- */

static inline uint64_t bench_splitmix64(uint64_t *state)
{
    uint64_t z = (*state += 0x9E3779B97F4A7C15ull);
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

/* A stateless mix of up to three words: the per-person and per-device derivations use it. */
static inline uint64_t bench_mix(uint64_t a, uint64_t b, uint64_t c)
{
    uint64_t s = a;
    uint64_t h = bench_splitmix64(&s);
    s = h ^ b;
    h = bench_splitmix64(&s);
    s = h ^ c;
    return bench_splitmix64(&s);
}

typedef struct bench_rng {
    uint64_t s[4];
} bench_rng;

static inline void bench_rng_seed(bench_rng *r, uint64_t seed)
{
    uint64_t st = seed;
    for (int i = 0; i < 4; i++)
        r->s[i] = bench_splitmix64(&st);
}

static inline uint64_t bench_rotl(uint64_t x, int k)
{
    return (x << k) | (x >> (64 - k));
}

static inline uint64_t bench_rng_next(bench_rng *r)
{
    uint64_t *s = r->s;
    uint64_t result = bench_rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = bench_rotl(s[3], 45);
    return result;
}

/* Uniform in [0, n); n > 0. Lemire's multiply-shift; the bias is below 2^-32 for our n. */
static inline uint64_t bench_rng_below(bench_rng *r, uint64_t n)
{
    return (uint64_t)(((unsigned __int128)bench_rng_next(r) * n) >> 64);
}

/* Uniform in [0, 1). */
static inline double bench_rng_unit(bench_rng *r)
{
    return (double)(bench_rng_next(r) >> 11) * (1.0 / 9007199254740992.0);
}

static inline bool bench_rng_chance(bench_rng *r, double p)
{
    return bench_rng_unit(r) < p;
}

/* ---- word lists ---- */

/* Alternately female and male; the gender follows the parity of the index. */
static const char *const bench_first_names[] = {
    "Emma",   "Liam",    "Olivia", "Noah",   "Ava",    "Elijah", "Sophia", "James",
    "Mia",    "William", "Amelia", "Lucas",  "Harper", "Mason",  "Evelyn", "Ethan",
    "Ella",   "Logan",   "Chloe",  "Aiden",  "Grace",  "Mateo",  "Zoe",    "Leo",
    "Nora",   "Hiroshi", "Aisha",  "Carlos", "Fatima", "Wei",    "Priya",  "Omar",
    "Ingrid", "Lars",    "Sofia",  "Diego",  "Hannah", "Jonas",  "Leila",  "Marco",
    "Yuki",   "Pierre",  "Anna",   "Chen",   "Amara",  "Kofi",   "Elena",  "Ravi",
};

static const char *const bench_last_names[] = {
    "Smith",    "Johnson", "Williams", "Brown",  "Jones",     "Garcia",  "Miller", "Davis",
    "Martinez", "Lopez",   "Wilson",   "Moore",  "Taylor",    "Thomas",  "Lee",    "Walker",
    "Hall",     "Young",   "King",     "Wright", "Scott",     "Green",   "Baker",  "Adams",
    "Nelson",   "Hill",    "Campbell", "Nguyen", "Tanaka",    "Schmidt", "Rossi",  "Dubois",
    "Kowalski", "Olsen",   "Okafor",   "Patel",  "Fernandez", "Kim",     "Novak",  "Ahmed",
};

static const char *const bench_streets[] = {
    "Main St",         "Oak Ave",      "Maple Dr",      "Cedar Ln",  "Pine St",     "Elm St",
    "Washington Blvd", "Lakeview Rd",  "Hillcrest Ave", "Park Pl",   "Sunset Blvd", "River Rd",
    "Church St",       "Highland Ave", "Mill Rd",       "Forest Dr", "Spring St",   "Broadway",
};

static const struct bench_city {
    const char *city, *state;
    int zip;
} bench_cities[] = {
    {"San Jose", "CA", 95110},    {"Seattle", "WA", 98101}, {"Austin", "TX", 73301},
    {"Denver", "CO", 80202},      {"Boston", "MA", 2108},   {"Chicago", "IL", 60601},
    {"Portland", "OR", 97201},    {"Atlanta", "GA", 30301}, {"Miami", "FL", 33101},
    {"New York", "NY", 10001},    {"Phoenix", "AZ", 85001}, {"Columbus", "OH", 43004},
    {"Nashville", "TN", 37201},   {"Lehi", "UT", 84043},    {"Raleigh", "NC", 27601},
    {"Minneapolis", "MN", 55401},
};

static const char *const bench_email_domains[] = {
    "example.com", "example.net", "example.org", "mail.example", "inbox.example",
};

/* Junk values real forms collect; AEP's identity service blocks several of them. */
static const char *const bench_junk_emails[] = {
    "test@test.com",
    "none@none.com",
    "noemail@noemail.com",
    "a@a.com",
};

static const char *const bench_crm_segments[] = {"new", "active", "lapsed", "vip"};
static const char *const bench_loyalty_tiers[] = {"bronze", "silver", "gold", "platinum"};
static const char *const bench_genders[] = {"female", "male", "not_specified"};

static const struct bench_product {
    const char *sku, *name;
    double price;
} bench_products[] = {
    {"SKU-1001", "Trail Running Shoes", 129.99},
    {"SKU-1002", "Rain Jacket", 189.00},
    {"SKU-1003", "Merino Wool Socks", 19.50},
    {"SKU-1004", "Hiking Backpack 30L", 149.95},
    {"SKU-1005", "Insulated Bottle", 34.00},
    {"SKU-1006", "Yoga Mat", 59.90},
    {"SKU-1007", "Cycling Helmet", 89.99},
    {"SKU-1008", "Fleece Pullover", 79.00},
    {"SKU-1009", "Camping Stove", 64.50},
    {"SKU-1010", "Headlamp", 29.99},
    {"SKU-1011", "Down Sleeping Bag", 299.00},
    {"SKU-1012", "Trekking Poles", 119.00},
    {"SKU-1013", "Sunglasses", 149.00},
    {"SKU-1014", "Running Shorts", 39.99},
    {"SKU-1015", "Smart Watch", 349.00},
    {"SKU-1016", "Wireless Earbuds", 129.00},
    {"SKU-1017", "Tent 2P", 399.95},
    {"SKU-1018", "Climbing Harness", 69.00},
    {"SKU-1019", "Ski Goggles", 99.50},
    {"SKU-1020", "Base Layer Top", 54.00},
};

static const struct bench_page {
    const char *name, *path;
} bench_pages[] = {
    {"home", "/"},       {"new arrivals", "/new"}, {"men", "/men"},
    {"women", "/women"}, {"sale", "/sale"},        {"store locator", "/stores"},
    {"help", "/help"},   {"account", "/account"},  {"blog: trail guide", "/blog/trail-guide"},
    {"cart", "/cart"},
};

#define BENCH_SITE "https://shop.acme.example"
#define BENCH_CAMPAIGNS 10 /* "c-101".."c-110" */

/* ---- people ---- */

typedef struct bench_person {
    uint64_t index;
    bool has_crm, has_loyalty;
    bool email_shared; /* uses the email of person index-1 */
    bool email_junk;
    bool lends_device;   /* lends device 0 to person index+1 */
    bool borrows_device; /* the last device is device 0 of person index-1 */
    char crmid[16];
    char email[96];
    char phone[16];
    const char *first_name, *last_name, *gender, *street, *segment, *tier;
    const struct bench_city *city;
    int street_no, birth_year, birth_month, birth_day, since_year, since_month, since_day;
    int points;
    double lifetime_value;
    bool marketing_opt_in;
    int ndevices;
    char ecid[BENCH_MAX_DEVICES][40];
} bench_person;

/* The 38-digit ECID of device `device` of person `person`. */
static inline void bench_ecid(uint64_t seed, uint64_t person, uint64_t device, char out[40])
{
    uint64_t a = bench_mix(seed ^ 0xEC1D, person, device);
    uint64_t b = bench_mix(a, person, device ^ 0x5A5A);
    a = 1000000000000000000ull + a % 9000000000000000000ull;
    b = b % 10000000000000000000ull;
    snprintf(out, 40, "%019" PRIu64 "%019" PRIu64, a, b);
}

/* CRMIDs and phone numbers are bijections of the index, so they are unique by construction. */
static inline void bench_crmid(uint64_t seed, uint64_t person, char out[16])
{
    uint64_t m = 10000000000ull;
    uint64_t v = ((person % m) * 2654435761ull + bench_mix(seed, 0xC4, 0) % m) % m;
    snprintf(out, 16, "C%010" PRIu64, v);
}

static inline void bench_phone(uint64_t seed, uint64_t person, char out[16])
{
    uint64_t m = 8000000000ull;
    uint64_t v = ((person % m) * 2654435769ull + bench_mix(seed, 0x9E, 0) % m) % m;
    snprintf(out, 16, "+1%010" PRIu64, (uint64_t)2000000000 + v);
}

static inline void bench_person_rng(uint64_t seed, uint64_t person, uint64_t stream, bench_rng *r)
{
    bench_rng_seed(r, bench_mix(seed, person, stream));
}

/* Fills p from person i's own stream only (no neighbours). Draw order is part of the format. */
static inline void bench_person_base(uint64_t seed, uint64_t i, bench_person *p)
{
    bench_rng r;
    bench_person_rng(seed, i, 1, &r);
    memset(p, 0, sizeof *p);
    p->index = i;
    p->has_crm = bench_rng_chance(&r, 0.90);
    p->has_loyalty = p->has_crm && bench_rng_chance(&r, 0.40);
    uint64_t first = bench_rng_below(&r, BENCH_ARRAY_LEN(bench_first_names));
    p->first_name = bench_first_names[first];
    p->last_name = bench_last_names[bench_rng_below(&r, BENCH_ARRAY_LEN(bench_last_names))];
    p->gender = bench_rng_chance(&r, 0.05) ? bench_genders[2] : bench_genders[first & 1];
    p->city = &bench_cities[bench_rng_below(&r, BENCH_ARRAY_LEN(bench_cities))];
    p->street = bench_streets[bench_rng_below(&r, BENCH_ARRAY_LEN(bench_streets))];
    p->street_no = 1 + (int)bench_rng_below(&r, 9899);
    p->birth_year = 1945 + (int)bench_rng_below(&r, 60);
    p->birth_month = 1 + (int)bench_rng_below(&r, 12);
    p->birth_day = 1 + (int)bench_rng_below(&r, 28);
    p->since_year = 2012 + (int)bench_rng_below(&r, 13);
    p->since_month = 1 + (int)bench_rng_below(&r, 12);
    p->since_day = 1 + (int)bench_rng_below(&r, 28);
    p->segment = bench_crm_segments[bench_rng_below(&r, BENCH_ARRAY_LEN(bench_crm_segments))];
    p->lifetime_value = (double)bench_rng_below(&r, 500000) / 100.0;
    p->marketing_opt_in = bench_rng_chance(&r, 0.6);
    uint64_t tier = bench_rng_below(&r, 100);
    p->tier = bench_loyalty_tiers[tier < 50 ? 0 : tier < 80 ? 1 : tier < 95 ? 2 : 3];
    p->points = (int)bench_rng_below(&r, 50000);
    p->email_shared = bench_rng_chance(&r, 0.03);
    p->email_junk = bench_rng_chance(&r, 0.01);
    p->lends_device = bench_rng_chance(&r, 0.05);
    uint64_t nd = bench_rng_below(&r, 100);
    p->ndevices = nd < 40 ? 1 : nd < 70 ? 2 : nd < 90 ? 3 : 4;
    const char *domain =
        bench_email_domains[bench_rng_below(&r, BENCH_ARRAY_LEN(bench_email_domains))];

    bench_crmid(seed, i, p->crmid);
    bench_phone(seed, i, p->phone);
    if (p->email_junk) {
        snprintf(p->email, sizeof p->email, "%s",
                 bench_junk_emails[bench_rng_below(&r, BENCH_ARRAY_LEN(bench_junk_emails))]);
    } else {
        int n = snprintf(p->email, sizeof p->email, "%s.%s%" PRIu64 "@%s", p->first_name,
                         p->last_name, i, domain);
        for (int k = 0; k < n; k++)
            if (p->email[k] >= 'A' && p->email[k] <= 'Z') p->email[k] = (char)(p->email[k] + 32);
    }
    for (int d = 0; d < p->ndevices; d++)
        bench_ecid(seed, i, (uint64_t)d, p->ecid[d]);
}

/* Person i of a population of n, with what it shares with its neighbours. */
static inline void bench_person_make(uint64_t seed, uint64_t i, uint64_t n, bench_person *p)
{
    bench_person_base(seed, i, p);
    if (i + 1 >= n) p->lends_device = false;
    if (i == 0) {
        p->email_shared = false;
        return;
    }
    bench_person prev;
    bench_person_base(seed, i - 1, &prev);
    if (p->email_shared && !p->email_junk)
        snprintf(p->email, sizeof p->email, "%s", prev.email);
    else
        p->email_shared = false;
    if (prev.lends_device) {
        p->borrows_device = true;
        memcpy(p->ecid[p->ndevices], prev.ecid[0], sizeof p->ecid[0]);
        p->ndevices++;
    }
}

/* ---- JSON writing ---- */

static inline void bench_json_str(kith_buf *b, const char *s)
{
    kith_buf_reserve(b, strlen(s) + 2);
    b->data[b->len++] = '"';
    for (; *s; s++) {
        unsigned char c = (unsigned char)*s;
        if (c == '"' || c == '\\') {
            kith_buf_reserve(b, 2);
            b->data[b->len++] = '\\';
            b->data[b->len++] = (char)c;
        } else if (c < 0x20) {
            kith_buf_printf(b, "\\u%04x", c);
        } else {
            kith_buf_reserve(b, 1);
            b->data[b->len++] = (char)c;
        }
    }
    kith_buf_reserve(b, 1);
    b->data[b->len++] = '"';
    b->data[b->len] = '\0';
}

static inline void bench_json_identity(kith_buf *b, const char *id, bool primary)
{
    kith_buf_puts(b, "[{\"id\":");
    bench_json_str(b, id);
    kith_buf_puts(b, primary ? ",\"primary\":true}]" : "}]");
}

/* A CRM record (profile class: person-details, personal-details, identitymap, _acme.crm). */
static inline void bench_write_crm(kith_buf *b, const bench_person *p)
{
    kith_buf_puts(b, "{\"identityMap\":{\"CRMID\":");
    bench_json_identity(b, p->crmid, true);
    kith_buf_puts(b, ",\"Email\":");
    bench_json_identity(b, p->email, false);
    kith_buf_printf(b,
                    "},\"person\":{\"name\":{\"firstName\":\"%s\",\"lastName\":\"%s\","
                    "\"fullName\":\"%s %s\"},\"birthDate\":\"%04d-%02d-%02d\",\"gender\":\"%s\"},",
                    p->first_name, p->last_name, p->first_name, p->last_name, p->birth_year,
                    p->birth_month, p->birth_day, p->gender);
    kith_buf_puts(b, "\"personalEmail\":{\"address\":");
    bench_json_str(b, p->email);
    kith_buf_printf(b,
                    "},\"homeAddress\":{\"street1\":\"%d %s\",\"city\":\"%s\","
                    "\"stateProvince\":\"US-%s\",\"postalCode\":\"%05d\",\"countryCode\":\"US\"},"
                    "\"mobilePhone\":{\"number\":\"%s\"},",
                    p->street_no, p->street, p->city->city, p->city->state, p->city->zip, p->phone);
    kith_buf_printf(b,
                    "\"_acme\":{\"crm\":{\"customerSince\":\"%04d-%02d-%02d\",\"segment\":\"%s\","
                    "\"lifetimeValue\":%.2f,\"marketingOptIn\":%s}}}",
                    p->since_year, p->since_month, p->since_day, p->segment, p->lifetime_value,
                    p->marketing_opt_in ? "true" : "false");
}

/* A loyalty record (profile class: identitymap, loyalty, _acme.loyalty). */
static inline void bench_write_loyalty(kith_buf *b, const bench_person *p)
{
    kith_buf_puts(b, "{\"identityMap\":{\"CRMID\":");
    bench_json_identity(b, p->crmid, true);
    kith_buf_puts(b, ",\"Phone\":");
    bench_json_identity(b, p->phone, false);
    kith_buf_printf(b,
                    "},\"loyalty\":{\"program\":\"Acme Rewards\",\"tier\":\"%s\",\"points\":%d,"
                    "\"joinDate\":\"%04d-%02d-%02dT00:00:00Z\"},"
                    "\"_acme\":{\"loyalty\":{\"memberId\":\"L-%s\"}}}",
                    p->tier, p->points, p->since_year, p->since_month, p->since_day, p->crmid + 1);
}

/* One browsing session of a person on one device. */
typedef struct bench_session {
    const bench_person *person;
    int device;
    bool logged_in;
    int64_t t_ms; /* timestamp of the next event */
    int64_t now_ms;
    int nevents; /* events written so far in this session */
} bench_session;

/* Starts a session at a random time in the `days` days before now_ms. */
static inline void bench_session_begin(bench_session *s, const bench_person *p, bench_rng *r,
                                       int64_t now_ms, int days)
{
    s->person = p;
    s->device = (int)bench_rng_below(r, (uint64_t)p->ndevices);
    s->logged_in = p->has_crm && bench_rng_chance(r, 0.35);
    int64_t span = (int64_t)days * BENCH_DAY_MS;
    s->t_ms = now_ms - span + (int64_t)bench_rng_below(r, (uint64_t)(span > 0 ? span : 1));
    s->now_ms = now_ms;
    s->nevents = 0;
}

/* Writes a UUID-shaped id of exactly BENCH_EVENT_ID_LEN characters: random except the last 12
 * hex digits, which carry `unique` (the caller keeps it unique). out has room for 37 bytes. */
static inline void bench_event_id(uint64_t rand64, uint64_t unique, char *out)
{
    snprintf(out, BENCH_EVENT_ID_LEN + 1,
             "%08" PRIx64 "-%04" PRIx64 "-4%03" PRIx64 "-%04" PRIx64 "-%012" PRIx64, rand64 >> 32,
             (rand64 >> 16) & 0xffff, (rand64 >> 4) & 0xfff, 0x8000 | (rand64 & 0x3fff),
             unique & (uint64_t)0xffffffffffff);
}

/* Writes the session's next ExperienceEvent with `_id` first (loadgen relies on that: the id
 * starts at byte 8 of the entity). `unique` feeds the id (see bench_event_id). */
static inline void bench_write_event(kith_buf *b, bench_session *s, bench_rng *r, uint64_t unique)
{
    const bench_person *p = s->person;
    char id[BENCH_EVENT_ID_LEN + 1], ts[40];
    uint64_t roll = bench_rng_below(r, 100);
    const char *type;
    if (s->nevents == 0 || roll < 45)
        type = "web.webpagedetails.pageViews";
    else if (roll < 75)
        type = "commerce.productViews";
    else if (roll < 92)
        type = "advertising.impressions";
    else
        type = "commerce.purchases";
    if (!strcmp(type, "commerce.purchases") && p->has_crm) s->logged_in = true;
    if (!strcmp(type, "commerce.purchases") && !p->has_crm) type = "commerce.productViews";

    bench_event_id(bench_rng_next(r), unique, id);
    if (s->t_ms > s->now_ms) s->t_ms = s->now_ms;
    kith_time_format(s->t_ms, ts, sizeof ts);
    kith_buf_printf(b, "{\"_id\":\"%s\",\"timestamp\":\"%s\",\"eventType\":\"%s\",", id, ts, type);
    const char *ecid = p->ecid[s->device];
    kith_buf_printf(b,
                    "\"identityMap\":{\"ECID\":[{\"id\":\"%s\",\"primary\":true,"
                    "\"authenticatedState\":\"%s\"}]",
                    ecid, s->logged_in ? "authenticated" : "ambiguous");
    if (s->logged_in)
        kith_buf_printf(b, ",\"CRMID\":[{\"id\":\"%s\",\"authenticatedState\":\"authenticated\"}]",
                        p->crmid);
    /* The device's kind and browser follow from its ECID, so they stay put across sessions. */
    static const char *const kinds[] = {"desktop", "mobile", "mobile", "tablet"};
    static const char *const browsers[] = {"Chrome", "Safari", "Firefox", "Edge", "Chrome"};
    kith_buf_printf(b,
                    "},\"environment\":{\"type\":\"browser\",\"browserDetails\":{\"name\":\"%s\"}},"
                    "\"device\":{\"type\":\"%s\"}",
                    browsers[(ecid[7] - '0') % 5], kinds[(ecid[5] - '0') % 4]);

    if (!strcmp(type, "web.webpagedetails.pageViews")) {
        const struct bench_page *pg =
            &bench_pages[bench_rng_below(r, BENCH_ARRAY_LEN(bench_pages))];
        kith_buf_printf(b,
                        ",\"web\":{\"webPageDetails\":{\"name\":\"%s\",\"URL\":\"" BENCH_SITE
                        "%s\",\"isHomePage\":%s,\"pageViews\":{\"value\":1}}}",
                        pg->name, pg->path, pg == bench_pages ? "true" : "false");
    } else if (!strcmp(type, "commerce.productViews")) {
        const struct bench_product *pr =
            &bench_products[bench_rng_below(r, BENCH_ARRAY_LEN(bench_products))];
        kith_buf_printf(
            b,
            ",\"web\":{\"webPageDetails\":{\"name\":\"product: %s\",\"URL\":\"" BENCH_SITE
            "/p/%s\"}},\"commerce\":{\"productViews\":{\"value\":1}},"
            "\"productListItems\":[{\"SKU\":\"%s\",\"name\":\"%s\",\"quantity\":1,"
            "\"priceTotal\":%.2f}]",
            pr->name, pr->sku, pr->sku, pr->name, pr->price);
    } else if (!strcmp(type, "commerce.purchases")) {
        int nitems = 1 + (int)bench_rng_below(r, 3);
        double total = 0;
        kith_buf_puts(b, ",\"productListItems\":[");
        for (int k = 0; k < nitems; k++) {
            const struct bench_product *pr =
                &bench_products[bench_rng_below(r, BENCH_ARRAY_LEN(bench_products))];
            int qty = 1 + (int)bench_rng_below(r, 2);
            total += pr->price * qty;
            kith_buf_printf(
                b, "%s{\"SKU\":\"%s\",\"name\":\"%s\",\"quantity\":%d,\"priceTotal\":%.2f}",
                k ? "," : "", pr->sku, pr->name, qty, pr->price * qty);
        }
        kith_buf_printf(b,
                        "],\"commerce\":{\"purchases\":{\"value\":1},\"order\":{\"purchaseID\":"
                        "\"O-%.12s\",\"priceTotal\":%.2f,\"currencyCode\":\"USD\"}},"
                        "\"web\":{\"webPageDetails\":{\"name\":\"order confirmation\","
                        "\"URL\":\"" BENCH_SITE "/checkout/done\"}}",
                        id + 24, total);
    } else {
        kith_buf_printf(b,
                        ",\"advertising\":{\"impressions\":{\"value\":1}},"
                        "\"_acme\":{\"campaignId\":\"c-%d\"}",
                        101 + (int)bench_rng_below(r, BENCH_CAMPAIGNS));
    }
    kith_buf_puts(b, "}");
    s->nevents++;
    s->t_ms += 5000 + (int64_t)bench_rng_below(r, 85000);
}

/* Wraps an entity as an AEP streaming envelope for dataset_id / schema_id. */
static inline void bench_envelope_begin(kith_buf *b, const char *schema_id, const char *dataset_id)
{
    kith_buf_printf(b,
                    "{\"header\":{\"schemaRef\":{\"id\":\"%s\",\"contentType\":"
                    "\"application/vnd.adobe.xed-full+json;version=1\"},\"datasetId\":\"%s\"},"
                    "\"body\":{\"xdmMeta\":{\"schemaRef\":{\"id\":\"%s\",\"contentType\":"
                    "\"application/vnd.adobe.xed-full+json;version=1\"}},\"xdmEntity\":",
                    schema_id, dataset_id, schema_id);
}

static inline void bench_envelope_end(kith_buf *b)
{
    kith_buf_puts(b, "}}");
}

#endif
