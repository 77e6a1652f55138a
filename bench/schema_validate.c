/* Micro-benchmark of the schema module on a realistic ExperienceEvent (~1 KB of JSON) against a
 * schema with the class, five field groups and tenant fields: validation alone, identity
 * extraction, JSON parsing plus validation (what ingestion pays per message), and schema
 * compilation.
 *
 *   make build && ./build/bench/schema_validate [seconds-per-figure, default 1]
 * Prints one line per figure; not a test (no assertions on speed). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "kith/base.h"
#include "kith/schema.h"

static const char SCHEMA[] =
    "{\"title\": \"Web and commerce events\","
    " \"meta:class\": \"https://ns.adobe.com/xdm/context/experienceevent\","
    " \"allOf\": [{\"$ref\": \"https://ns.adobe.com/xdm/context/identitymap\"},"
    "  {\"$ref\": \"https://ns.adobe.com/xdm/context/experienceevent-commerce\"},"
    "  {\"$ref\": \"https://ns.adobe.com/xdm/context/experienceevent-web\"},"
    "  {\"$ref\": \"https://ns.adobe.com/xdm/context/experienceevent-environment-details\"},"
    "  {\"$ref\": \"https://ns.adobe.com/xdm/context/experienceevent-advertising\"},"
    "  {\"properties\": {\"_acme\": {\"type\": \"object\", \"properties\": {"
    "   \"campaignId\": {\"type\": \"string\", \"pattern\": \"^c-[0-9]+$\"},"
    "   \"channel\": {\"type\": \"string\", \"enum\": [\"web\", \"app\", \"store\"]},"
    "   \"score\": {\"type\": \"integer\", \"meta:xdmType\": \"int\", \"minimum\": 0}}}}}],"
    " \"kith:descriptors\": [{\"xdm:sourceProperty\": \"/_acme/campaignId\","
    "  \"xdm:namespace\": \"Campaign\"}]}";

static const char EVENT[] =
    "{\"_id\": \"5f1c0bd8c2b1f0a3e4d5c6b7a8f9e0d1c2b3a4f5\", \"timestamp\": "
    "\"2024-05-01T10:15:30.123Z\", \"eventType\": \"commerce.purchases\", \"producedBy\": "
    "\"self\", \"identityMap\": {\"ECID\": [{\"id\": \"87098882279810196101440938110216748923\", "
    "\"primary\": true, \"authenticatedState\": \"ambiguous\"}], \"Email\": [{\"id\": "
    "\"jsmith@example.com\", \"authenticatedState\": \"authenticated\"}]}, \"commerce\": "
    "{\"order\": {\"purchaseID\": \"ord-2024-000123\", \"priceTotal\": 129.97, \"currencyCode\": "
    "\"USD\", \"payments\": [{\"paymentType\": \"credit_card\", \"paymentAmount\": 129.97, "
    "\"currencyCode\": \"USD\"}]}, \"purchases\": {\"value\": 1}}, \"productListItems\": "
    "[{\"SKU\": \"PS-1001\", \"name\": \"Pencil set\", \"quantity\": 2, \"priceTotal\": 19.98}, "
    "{\"SKU\": \"NB-2002\", \"name\": \"Notebook\", \"quantity\": 1, \"priceTotal\": 109.99}], "
    "\"web\": {\"webPageDetails\": {\"URL\": \"https://shop.example.com/checkout/complete\", "
    "\"name\": \"checkout complete\", \"siteSection\": \"checkout\", \"pageViews\": {\"value\": "
    "1}}, \"webReferrer\": {\"URL\": \"https://shop.example.com/cart\", \"type\": \"internal\"}}, "
    "\"environment\": {\"type\": \"browser\", \"browserDetails\": {\"userAgent\": \"Mozilla/5.0 "
    "(X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0 Safari/537.36\", "
    "\"acceptLanguage\": \"en-US\", \"viewportWidth\": 1280, \"viewportHeight\": 720}, "
    "\"operatingSystem\": \"Linux\"}, \"device\": {\"screenWidth\": 1920, \"screenHeight\": 1080, "
    "\"screenOrientation\": \"landscape\"}, \"_acme\": {\"campaignId\": \"c-101\", \"channel\": "
    "\"web\", \"score\": 42}}";

static double seconds(uint64_t from)
{
    return (double)(kith_mono_ns() - from) / 1e9;
}

/* Runs op until budget seconds have passed; returns operations per second. */
#define MEASURE(budget, op)                                                                        \
    ({                                                                                             \
        long n_ = 0;                                                                               \
        uint64_t t0_ = kith_mono_ns();                                                             \
        double el_;                                                                                \
        do {                                                                                       \
            for (int k_ = 0; k_ < 256; k_++) {                                                     \
                op;                                                                                \
            }                                                                                      \
            n_ += 256;                                                                             \
        } while ((el_ = seconds(t0_)) < (budget));                                                 \
        n_ / el_;                                                                                  \
    })

int main(int argc, char **argv)
{
    double budget = argc > 1 ? atof(argv[1]) : 1.0;
    if (budget <= 0) budget = 1.0;
    json_t *def = json_loads(SCHEMA, 0, NULL), *errors = json_array();
    kith_schema *s = NULL;
    if (!def || schema_compile(def, &s, errors) != 0) {
        fprintf(stderr, "schema does not compile: %s\n", json_dumps(errors, 0));
        return 1;
    }
    json_t *event = json_loads(EVENT, 0, NULL);
    if (!event || schema_validate(s, event, NULL, errors) != 0) {
        fprintf(stderr, "event does not validate: %s\n", json_dumps(errors, 0));
        return 1;
    }
    schema_identity ids[20];
    if (schema_extract_identities(s, event, NULL, ids, 20, errors) != 3) {
        fprintf(stderr, "unexpected identities: %s\n", json_dumps(errors, 0));
        return 1;
    }

    long sink = 0;
    double v = MEASURE(budget, sink += schema_validate(s, event, NULL, errors));
    double x = MEASURE(budget, sink += schema_extract_identities(s, event, NULL, ids, 20, errors));
    double pv = MEASURE(budget, {
        json_t *e = json_loads(EVENT, 0, NULL);
        sink += schema_validate(s, e, NULL, errors);
        json_decref(e);
    });
    double c = MEASURE(budget / 4, {
        kith_schema *t = NULL;
        sink += schema_compile(def, &t, errors);
        schema_free(t);
    });

    printf("schema_validate: event of %zu bytes, %zu top-level fields in the schema\n",
           strlen(EVENT), json_object_size(schema_properties(s)));
    printf("  validate            %12.0f validations/s  %8.0f ns each\n", v, 1e9 / v);
    printf("  extract identities  %12.0f records/s      %8.0f ns each\n", x, 1e9 / x);
    printf("  parse + validate    %12.0f messages/s     %8.0f ns each\n", pv, 1e9 / pv);
    printf("  compile schema      %12.0f compiles/s     %8.0f us each\n", c, 1e6 / c);
    printf("reproduce: make build && ./build/bench/schema_validate %g  (sink %ld)\n", budget, sink);
    json_decref(event);
    json_decref(def);
    json_decref(errors);
    schema_free(s);
    return 0;
}
