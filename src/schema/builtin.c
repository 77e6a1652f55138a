/* The built-in XDM classes, field groups and data types.
 *
 * Each is JSON text in the same subset a tenant posts (properties, $ref to a data type, required),
 * written with single quotes so that it reads well inside C string literals; builtin_init turns
 * them into double quotes and parses everything once, on first use, under pthread_once. Field names
 * follow Adobe's standard XDM components (github.com/adobe/xdm) without the "xdm:" prefix, as
 * Platform shows them in xdmEntity payloads. A broken text is a bug: the unit tests expand every
 * built-in. */
#include "schema_int.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>

/* Data types ----------------------------------------------------------------------------------- */

#define STR "{'type': 'string'}"
#define NUM "{'type': 'number'}"
#define BOOL "{'type': 'boolean'}"
#define DATE_TIME "{'type': 'string', 'format': 'date-time'}"
#define MEASURE "{'$ref': 'https://ns.adobe.com/xdm/data/measure'}"
#define CONTACT_STATUS                                                                             \
    "'status': {'type': 'string', 'enum': ['active', 'incomplete', 'pending_verification', "       \
    "'blocked']}, 'statusReason': " STR

static const char DT_PERSON_NAME[] =
    "{'title': 'Person name', 'description': 'The parts of a person name.', 'type': 'object',"
    " 'properties': {'courtesyTitle': " STR ", 'firstName': " STR ", 'middleName': " STR
    ", 'lastName': " STR ", 'fullName': " STR ", 'suffix': " STR "}}";

static const char DT_PERSON[] =
    "{'title': 'Person', 'description': 'An individual person.', 'type': 'object', 'properties': {"
    " 'name': {'$ref': 'https://ns.adobe.com/xdm/context/person-name'},"
    " 'birthDate': {'type': 'string', 'format': 'date'},"
    " 'birthDayAndMonth': {'type': 'string', 'pattern': '^[0-1][0-9]-[0-3][0-9]$'},"
    " 'birthYear': {'type': 'integer', 'meta:xdmType': 'short', 'minimum': 1, 'maximum': 32767},"
    " 'gender': {'type': 'string', 'enum': ['male', 'female', 'not_specified', 'non_specific']},"
    " 'maritalStatus': {'type': 'string', 'enum': ['married', 'single', 'divorced', 'widowed',"
    "   'not_specified']},"
    " 'nationality': {'type': 'string', 'pattern': '^[A-Z]{2}$'},"
    " 'taxId': " STR "}}";

static const char DT_ADDRESS[] =
    "{'title': 'Postal address', 'description': 'A postal address.', 'type': 'object',"
    " 'properties': {'primary': " BOOL ", 'label': " STR ", 'street1': " STR ", 'street2': " STR
    ", 'street3': " STR ", 'street4': " STR ", 'city': " STR ", 'stateProvince': " STR
    ", 'postalCode': " STR ", 'country': " STR ","
    " 'countryCode': {'type': 'string', 'pattern': '^[A-Z]{2}$'}, 'region': " STR ","
    " 'lastVerifiedDate': {'type': 'string', 'format': 'date'}, " CONTACT_STATUS "}}";

static const char DT_EMAIL[] =
    "{'title': 'Email address', 'description': 'An email address.', 'type': 'object',"
    " 'properties': {'address': {'type': 'string', 'format': 'email'}, 'primary': " BOOL
    ", 'label': " STR
    ", 'type': {'type': 'string', 'enum': ['personal', 'work', 'unknown']}, " CONTACT_STATUS "}}";

static const char DT_PHONE[] =
    "{'title': 'Phone number', 'description': 'A phone number.', 'type': 'object',"
    " 'properties': {'number': " STR ", 'extension': " STR ", 'countryCode': " STR
    ", 'primary': " BOOL ", 'label': " STR ", " CONTACT_STATUS "}}";

static const char DT_MEASURE[] =
    "{'title': 'Measure', 'description': 'A counted or summed metric.', 'type': 'object',"
    " 'properties': {'id': " STR ", 'value': {'type': 'number', 'meta:xdmType': 'double'}}}";

#define CHOICE_VALUE                                                                               \
    "{'type': 'string', 'enum': ['y', 'n', 'p', 'u', 'dy', 'dn', 'LI', 'CT', 'CP', 'VI', 'PI']}"

static const char DT_CONSENT_FIELD[] =
    "{'title': 'Consent field', 'description': 'A consent choice.', 'type': 'object',"
    " 'properties': {'val': " CHOICE_VALUE "}, 'required': ['val']}";

static const char DT_MARKETING_FIELD[] =
    "{'title': 'Marketing field', 'description': 'A marketing preference for one channel.',"
    " 'type': 'object', 'properties': {'val': " CHOICE_VALUE ", 'time': " DATE_TIME ","
    " 'reason': {'type': 'string', 'maxLength': 16},"
    " 'subscriptions': {'type': 'object', 'meta:xdmType': 'map', 'additionalProperties': {"
    "   'type': 'object', 'properties': {'val': " CHOICE_VALUE ","
    "   'type': {'type': 'string', 'maxLength': 15},"
    "   'subscribers': {'type': 'object', 'meta:xdmType': 'map', 'additionalProperties': {"
    "     'type': 'object', 'properties': {'time': " DATE_TIME ","
    "     'source': {'type': 'string', 'maxLength': 15}}}}}}}},"
    " 'required': ['val']}";

/* Classes -------------------------------------------------------------------------------------- */

/* identityMap: namespace code → [{id, primary?, authenticatedState?}] (aep-spec 2.2). */
#define IDENTITY_MAP_FIELD                                                                         \
    "'identityMap': {'title': 'Identity map', 'type': 'object', 'meta:xdmType': 'map',"            \
    " 'additionalProperties': {'type': 'array', 'items': {'type': 'object', 'properties': {"       \
    "   'id': " STR ", 'primary': " BOOL ","                                                       \
    "   'authenticatedState': {'type': 'string', 'enum': ['ambiguous', 'authenticated',"           \
    "     'loggedOut']}}, 'required': ['id']}}}"

static const char CLASS_PROFILE[] =
    "{'title': 'XDM Individual Profile', 'description': 'A single customer (record data).',"
    " 'type': 'object', 'properties': {"
    " '_id': {'type': 'string', 'minLength': 1},"
    " '_repo': {'type': 'object', 'properties': {'createDate': " DATE_TIME
    ", 'modifyDate': " DATE_TIME "}},"
    " 'personID': " STR ","
    " 'createdByBatchID': {'type': 'string', 'format': 'uri-reference'},"
    " 'modifiedByBatchID': {'type': 'string', 'format': 'uri-reference'},"
    " 'repositoryCreatedBy': " STR ", 'repositoryLastModifiedBy': " STR ", " IDENTITY_MAP_FIELD
    "}}";

static const char CLASS_EVENT[] =
    "{'title': 'XDM ExperienceEvent', 'description': 'A time-stamped fact about a customer.',"
    " 'type': 'object', 'properties': {"
    " '_id': {'type': 'string', 'minLength': 1},"
    " 'timestamp': " DATE_TIME ","
    " 'eventType': " STR ","
    " 'producedBy': " STR ","
    " 'eventMergeId': " STR ", " IDENTITY_MAP_FIELD "},"
    " 'required': ['_id', 'timestamp']}";

/* Field groups --------------------------------------------------------------------------------- */

static const char FG_PERSON_DETAILS[] =
    "{'title': 'Demographic Details', 'description': 'Name, gender and birth date.',"
    " 'properties': {'person': {'$ref': 'https://ns.adobe.com/xdm/context/person'}}}";

static const char FG_PERSONAL_DETAILS[] =
    "{'title': 'Personal Contact Details', 'description': 'Email, phones and home address.',"
    " 'properties': {"
    " 'personalEmail': {'$ref': 'https://ns.adobe.com/xdm/context/emailaddress'},"
    " 'mobilePhone': {'$ref': 'https://ns.adobe.com/xdm/context/phonenumber'},"
    " 'homePhone': {'$ref': 'https://ns.adobe.com/xdm/context/phonenumber'},"
    " 'homeAddress': {'$ref': 'https://ns.adobe.com/xdm/common/address'}}}";

static const char FG_IDENTITY_MAP[] = "{'title': 'IdentityMap', 'description': 'Identities by "
                                      "namespace.', 'properties': {" IDENTITY_MAP_FIELD "}}";

static const char FG_LOYALTY[] =
    "{'title': 'Loyalty Details', 'description': 'Loyalty program membership.',"
    " 'properties': {'loyalty': {'type': 'object', 'properties': {"
    " 'loyaltyID': {'type': 'array', 'items': " STR "},"
    " 'program': " STR ", 'tier': " STR ", 'status': " STR ","
    " 'points': " NUM ", 'pointsRedeemed': " NUM ","
    " 'pointsExpiration': {'type': 'array', 'items': {'type': 'object', 'properties': {"
    "   'pointsExpiring': " NUM ", 'pointsExpirationDate': " DATE_TIME "}}},"
    " 'joinDate': " DATE_TIME ", 'upgradeDate': " DATE_TIME ", 'downgradeDate': " DATE_TIME "}}}}";

#define CONSENT "{'$ref': 'https://ns.adobe.com/xdm/datatypes/consent-field'}"
#define MARKETING "{'$ref': 'https://ns.adobe.com/xdm/datatypes/marketing-field'}"

static const char FG_CONSENTS[] =
    "{'title': 'Consents and Preferences', 'description': 'Privacy, personalization and"
    " marketing consents.', 'properties': {'consents': {'type': 'object', 'properties': {"
    " 'collect': " CONSENT ", 'adID': " CONSENT ", 'share': " CONSENT ","
    " 'personalize': {'type': 'object', 'properties': {'content': " CONSENT "}},"
    " 'marketing': {'type': 'object', 'properties': {"
    "   'preferred': {'type': 'string', 'enum': ['email', 'push', 'inApp', 'sms', 'phone',"
    "     'phyMail', 'inVehicle', 'inHome', 'iot', 'social', 'other', 'none', 'unknown']},"
    "   'any': " MARKETING ", 'email': " MARKETING ", 'push': " MARKETING ", 'sms': " MARKETING
    ",   'call': " MARKETING ", 'whatsApp': " MARKETING ", 'postalMail': " MARKETING
    ",   'commercialEmail': " MARKETING ", 'fax': " MARKETING "}},"
    " 'idSpecific': {'type': 'object', 'meta:xdmType': 'map'},"
    " 'metadata': {'type': 'object', 'properties': {'time': " DATE_TIME "}}}}}}";

static const char FG_SEGMENT_MEMBERSHIP[] =
    "{'title': 'Segment Membership Details', 'description': 'Audience memberships by namespace"
    " and segment id; written by the system.', 'properties': {"
    " 'segmentMembership': {'type': 'object', 'meta:xdmType': 'map', 'additionalProperties': {"
    "  'type': 'object', 'meta:xdmType': 'map', 'additionalProperties': {"
    "   'type': 'object', 'properties': {"
    "   'version': " STR ","
    "   'status': {'type': 'string', 'enum': ['realized', 'existing', 'exited']},"
    "   'lastQualificationTime': " DATE_TIME ", 'validUntil': " DATE_TIME ","
    "   'payload': {'type': 'object', 'properties': {"
    "     'payloadType': {'type': 'string', 'enum': ['boolean', 'number', 'propensity',"
    "       'string']},"
    "     'payloadBooleanValue': " BOOL ", 'payloadNumberValue': " NUM ","
    "     'payloadPropensityValue': {'type': 'number', 'minimum': 0, 'maximum': 1},"
    "     'payloadStringValue': " STR "}}}}}}}}";

static const char FG_SOURCE_AUDIT[] =
    "{'title': 'External Source System Audit Details', 'description': 'Audit attributes kept"
    " by the external source system.', 'properties': {'extSourceSystemAudit': {'type': 'object',"
    " 'properties': {'createdBy': " STR ", 'createdDate': " DATE_TIME ", 'lastUpdatedBy': " STR
    ", 'lastUpdatedDate': " DATE_TIME ", 'lastActivityDate': " DATE_TIME
    ", 'lastReferencedDate': " DATE_TIME ", 'lastViewedDate': " DATE_TIME "}}}}";

#define CURRENCY "{'type': 'string', 'pattern': '^[A-Z]{3}$'}"

static const char FG_COMMERCE[] =
    "{'title': 'Commerce Details', 'description': 'Orders, carts and product views.',"
    " 'properties': {'commerce': {'type': 'object', 'properties': {"
    " 'order': {'type': 'object', 'properties': {'purchaseID': " STR ", 'purchaseOrderNumber': " STR
    ", 'orderType': " STR ", 'priceTotal': " NUM ", 'currencyCode': " CURRENCY ", 'taxAmount': " NUM
    ", 'discountAmount': " NUM ","
    "   'payments': {'type': 'array', 'items': {'type': 'object', 'properties': {"
    "     'transactionID': " STR ", 'paymentAmount': " NUM ", 'paymentType': " STR
    ", 'currencyCode': " CURRENCY "}}}}},"
    " 'purchases': " MEASURE ", 'productViews': " MEASURE ", 'productListAdds': " MEASURE
    ", 'productListRemovals': " MEASURE ", 'productListOpens': " MEASURE
    ", 'productListReopens': " MEASURE ", 'productListViews': " MEASURE ", 'checkouts': " MEASURE
    ", 'saveForLaters': " MEASURE "}},"
    " 'productListItems': {'type': 'array', 'items': {'type': 'object', 'properties': {"
    "   '_id': " STR ", 'SKU': " STR ", 'name': " STR ","
    "   'product': {'type': 'string', 'format': 'uri-reference'},"
    "   'quantity': {'type': 'integer', 'meta:xdmType': 'int'},"
    "   'priceTotal': " NUM ", 'currencyCode': " CURRENCY ", 'productAddMethod': " STR "}}}}}";

static const char FG_WEB[] =
    "{'title': 'Web Details', 'description': 'Page views, referrers and link clicks.',"
    " 'properties': {'web': {'type': 'object', 'properties': {"
    " 'webPageDetails': {'type': 'object', 'properties': {"
    "   'URL': {'type': 'string', 'format': 'uri-reference'}, 'name': " STR ", 'server': " STR
    ",   'siteSection': " STR ", 'viewName': " STR ", 'isErrorPage': " BOOL
    ",   'isHomePage': " BOOL ", 'pageViews': " MEASURE "}},"
    " 'webReferrer': {'type': 'object', 'properties': {"
    "   'URL': {'type': 'string', 'format': 'uri-reference'},"
    "   'type': {'type': 'string', 'enum': ['internal', 'external', 'search_engine', 'email',"
    "     'social', 'unknown', 'usenet', 'typed_bookmarked']}}},"
    " 'webInteraction': {'type': 'object', 'properties': {"
    "   'URL': {'type': 'string', 'format': 'uri-reference'}, 'name': " STR ", 'region': " STR
    ",   'type': {'type': 'string', 'enum': ['download', 'exit', 'other']},"
    "   'linkClicks': " MEASURE "}}}}}}";

#define INT "{'type': 'integer', 'meta:xdmType': 'int'}"

static const char FG_ENVIRONMENT[] =
    "{'title': 'Environment Details', 'description': 'Browser, operating system and device.',"
    " 'properties': {'environment': {'type': 'object', 'properties': {"
    " 'type': {'type': 'string', 'enum': ['browser', 'application', 'iot', 'external',"
    "   'widget']},"
    " 'browserDetails': {'type': 'object', 'properties': {'name': " STR ", 'vendor': " STR
    ",   'version': " STR ", 'userAgent': " STR ", 'acceptLanguage': " STR
    ",   'cookiesEnabled': " BOOL ", 'javaScriptEnabled': " BOOL ", 'viewportHeight': " INT
    ",   'viewportWidth': " INT "}},"
    " 'operatingSystem': " STR ", 'operatingSystemVersion': " STR ", 'operatingSystemVendor': " STR
    ", 'connectionType': " STR ", 'carrier': " STR ", 'ipV4': " STR ", 'ipV6': " STR
    ", 'language': " STR "}},"
    " 'device': {'type': 'object', 'properties': {'manufacturer': " STR ", 'model': " STR
    ", 'modelNumber': " STR ", 'type': " STR ", 'typeID': " STR ", 'typeIDService': " STR
    ", 'colorDepth': " INT ", 'screenHeight': " INT ", 'screenWidth': " INT ","
    "   'screenOrientation': {'type': 'string', 'enum': ['portrait', 'landscape']}}}}}";

static const char FG_ADVERTISING[] =
    "{'title': 'Advertising Details', 'description': 'Ad impressions, clicks and video"
    " completion.', 'properties': {'advertising': {'type': 'object', 'properties': {"
    " 'impressions': " MEASURE ", 'clicks': " MEASURE ", 'starts': " MEASURE
    ", 'firstQuartiles': " MEASURE ", 'midpoints': " MEASURE ", 'thirdQuartiles': " MEASURE
    ", 'completes': " MEASURE ", 'timePlayed': " MEASURE "}}}}";

/* The table --------------------------------------------------------------------------------------
 * Order matters only for schema_builtin_list: classes, then field groups, then data types. */

#define P (1u << SCHEMA_CLASS_PROFILE)
#define E (1u << SCHEMA_CLASS_EVENT)

static const struct {
    const char *id;
    enum builtin_kind kind;
    unsigned classes;
    const char *text;
} builtin_sources[] = {
    {SCHEMA_CLASS_PROFILE_ID, BUILTIN_CLASS, P, CLASS_PROFILE},
    {SCHEMA_CLASS_EVENT_ID, BUILTIN_CLASS, E, CLASS_EVENT},
    {"https://ns.adobe.com/xdm/context/profile-person-details", BUILTIN_FIELD_GROUP, P,
     FG_PERSON_DETAILS},
    {"https://ns.adobe.com/xdm/context/profile-personal-details", BUILTIN_FIELD_GROUP, P,
     FG_PERSONAL_DETAILS},
    {"https://ns.adobe.com/xdm/context/identitymap", BUILTIN_FIELD_GROUP, P | E, FG_IDENTITY_MAP},
    {"https://ns.adobe.com/xdm/context/profile-loyalty-details", BUILTIN_FIELD_GROUP, P,
     FG_LOYALTY},
    {"https://ns.adobe.com/xdm/mixins/profile-consents", BUILTIN_FIELD_GROUP, P, FG_CONSENTS},
    {"https://ns.adobe.com/xdm/context/segmentmembership", BUILTIN_FIELD_GROUP, P,
     FG_SEGMENT_MEMBERSHIP},
    {"https://ns.adobe.com/xdm/common/external-source-system-audit-details", BUILTIN_FIELD_GROUP,
     P | E, FG_SOURCE_AUDIT},
    {"https://ns.adobe.com/xdm/context/experienceevent-commerce", BUILTIN_FIELD_GROUP, E,
     FG_COMMERCE},
    {"https://ns.adobe.com/xdm/context/experienceevent-web", BUILTIN_FIELD_GROUP, E, FG_WEB},
    {"https://ns.adobe.com/xdm/context/experienceevent-environment-details", BUILTIN_FIELD_GROUP, E,
     FG_ENVIRONMENT},
    {"https://ns.adobe.com/xdm/context/experienceevent-advertising", BUILTIN_FIELD_GROUP, E,
     FG_ADVERTISING},
    {"https://ns.adobe.com/xdm/context/person", BUILTIN_DATA_TYPE, P | E, DT_PERSON},
    {"https://ns.adobe.com/xdm/context/person-name", BUILTIN_DATA_TYPE, P | E, DT_PERSON_NAME},
    {"https://ns.adobe.com/xdm/common/address", BUILTIN_DATA_TYPE, P | E, DT_ADDRESS},
    {"https://ns.adobe.com/xdm/context/emailaddress", BUILTIN_DATA_TYPE, P | E, DT_EMAIL},
    {"https://ns.adobe.com/xdm/context/phonenumber", BUILTIN_DATA_TYPE, P | E, DT_PHONE},
    {"https://ns.adobe.com/xdm/data/measure", BUILTIN_DATA_TYPE, P | E, DT_MEASURE},
    {"https://ns.adobe.com/xdm/datatypes/consent-field", BUILTIN_DATA_TYPE, P | E,
     DT_CONSENT_FIELD},
    {"https://ns.adobe.com/xdm/datatypes/marketing-field", BUILTIN_DATA_TYPE, P | E,
     DT_MARKETING_FIELD},
};

#define NBUILTINS (sizeof builtin_sources / sizeof builtin_sources[0])

static schema_builtin builtins[NBUILTINS];
static pthread_once_t builtin_once = PTHREAD_ONCE_INIT;

/* Runs once. The texts hold no apostrophes of their own, so every ' is a JSON quote. */
static void builtin_init(void)
{
    for (size_t i = 0; i < NBUILTINS; i++) {
        char *text = kith_xstrdup(builtin_sources[i].text);
        for (char *c = text; *c; c++)
            if (*c == '\'') *c = '"';
        json_error_t jerr;
        json_t *def = json_loads(text, JSON_REJECT_DUPLICATES, &jerr);
        if (!def)
            kith_log(KITH_LOG_ERROR, "schema", "built-in %s: %s at column %d",
                     builtin_sources[i].id, jerr.text, jerr.column);
        free(text);
        builtins[i] = (schema_builtin){builtin_sources[i].id, builtin_sources[i].kind,
                                       builtin_sources[i].classes, def};
    }
}

const schema_builtin *schema_builtin_find(const char *id)
{
    pthread_once(&builtin_once, builtin_init);
    for (size_t i = 0; i < NBUILTINS; i++)
        if (builtins[i].def && strcmp(builtins[i].id, id) == 0) return &builtins[i];
    return NULL;
}

size_t schema_builtin_count(void)
{
    return NBUILTINS;
}

const schema_builtin *schema_builtin_at(size_t i)
{
    pthread_once(&builtin_once, builtin_init);
    return i < NBUILTINS ? &builtins[i] : NULL;
}

json_t *schema_builtin_list(void)
{
    static const char *const kind_keys[] = {"classes", "fieldGroups", "dataTypes"};
    json_t *doc = json_object();
    for (int k = 0; k < 3; k++)
        json_object_set_new(doc, kind_keys[k], json_array());
    for (size_t i = 0; i < NBUILTINS; i++) {
        const schema_builtin *b = schema_builtin_at(i);
        json_t *item = b->def ? schema_expand_builtin(b) : NULL;
        if (!item) continue;
        json_t *head = json_object();
        json_object_set_new(head, "$id", json_string(b->id));
        if (b->kind == BUILTIN_FIELD_GROUP) {
            json_t *ext = json_array();
            if (b->classes & P) json_array_append_new(ext, json_string(SCHEMA_CLASS_PROFILE_ID));
            if (b->classes & E) json_array_append_new(ext, json_string(SCHEMA_CLASS_EVENT_ID));
            json_object_set_new(head, "meta:intendedToExtend", ext);
        }
        json_object_update(head, item);
        json_decref(item);
        json_array_append_new(json_object_get(doc, kind_keys[b->kind]), head);
    }
    return doc;
}
