/* kith schema: XDM classes, field groups, compiled schemas, validation, identities, union.
 *
 * A schema definition (the JSON posted to /tenant/schemas) is compiled once into an immutable
 * kith_schema: every $ref resolved, built-in class and field groups merged in, and the result
 * turned into a tree of nodes whose children are sorted for binary search and whose patterns are
 * compiled. Validation then walks the entity and that tree side by side; it parses nothing and
 * allocates only to report errors. A compiled schema is never modified, so any number of threads
 * may validate, extract identities and read schema_properties() concurrently.
 *
 * Errors from every function here are {"path": JSON pointer, "message": text} objects appended to a
 * caller-owned json array. For schema_compile the path points into the definition; for
 * schema_validate and schema_extract_identities it points into the entity (the xdmEntity).
 *
 * Built-in classes, field groups and data types (see schema_builtin_list()):
 *   classes      https://ns.adobe.com/xdm/context/profile,
 * https://ns.adobe.com/xdm/context/experienceevent field groups
 * https://ns.adobe.com/xdm/context/profile-person-details        person.*            profile
 *                https://ns.adobe.com/xdm/context/profile-personal-details      personalEmail,
 *                                            mobilePhone, homePhone, homeAddress profile
 *                https://ns.adobe.com/xdm/context/identitymap                   identityMap both
 *                https://ns.adobe.com/xdm/context/profile-loyalty-details       loyalty.* profile
 *                https://ns.adobe.com/xdm/mixins/profile-consents               consents.* profile
 *                https://ns.adobe.com/xdm/context/segmentmembership             segmentMembership
 * profile https://ns.adobe.com/xdm/common/external-source-system-audit-details
 *                                                                extSourceSystemAudit.* both
 *                https://ns.adobe.com/xdm/context/experienceevent-commerce      commerce.*,
 *                                                                productListItems[] event
 *                https://ns.adobe.com/xdm/context/experienceevent-web           web.* event
 *                https://ns.adobe.com/xdm/context/experienceevent-environment-details
 *                                                                environment.*, device.* event
 *                https://ns.adobe.com/xdm/context/experienceevent-advertising   advertising.* event
 *   data types   (usable as "$ref" on any field) person, person-name, address, emailaddress,
 *                phonenumber, measure, consent-field, marketing-field.
 */
#ifndef KITH_SCHEMA_H
#define KITH_SCHEMA_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

typedef enum { SCHEMA_CLASS_PROFILE = 1, SCHEMA_CLASS_EVENT = 2 } schema_class;
#define SCHEMA_CLASS_PROFILE_ID "https://ns.adobe.com/xdm/context/profile"
#define SCHEMA_CLASS_EVENT_ID "https://ns.adobe.com/xdm/context/experienceevent"

/* Compiled, immutable, safe to read from many threads. */
typedef struct kith_schema kith_schema;

/* Bounds applied by schema_validate and schema_extract_identities. A field <= 0 means "the
 * default"; a NULL limits pointer means SCHEMA_LIMITS_DEFAULT. */
typedef struct schema_limits {
    int max_identities;   /* identities per record after de-duplication */
    int max_identity_len; /* bytes per identity value */
    int max_errors;       /* error objects appended per call */
    int max_depth;        /* nesting of the entity (the root object is depth 0; at most 254) */
} schema_limits;
extern const schema_limits SCHEMA_LIMITS_DEFAULT; /* 20, 1024, 20, 64 */

/* Compiles a schema definition: the JSON body as posted to /tenant/schemas, i.e. "title",
 * "meta:class" (or a class in "allOf"), "allOf" with {"$ref": built-in field group}, inline
 * {"properties": ...} items or {"$ref": "#/definitions/<name>"}, top-level "properties",
 * "required", "definitions"; plus an optional "kith:descriptors" array of identity descriptors
 *   [{"xdm:sourceProperty": "/personalEmail/address", "xdm:namespace": "Email", "xdm:isPrimary":
 * true}] (at most one primary; each checked as by schema_check_descriptor).
 *
 * Supported keywords: type (string, integer, number, boolean, object, array), meta:xdmType (map,
 * long, int, short, byte, date, date-time, double), format (date, date-time, email, uri,
 * uri-reference; others are accepted and not checked), enum, minimum, maximum, exclusiveMinimum,
 * exclusiveMaximum (number or draft-04 boolean), minLength, maxLength (code points), pattern (POSIX
 * extended regex run by kith's own engine, searched not anchored; '.' is one code point; \d \D \w
 * \W \s \S accepted; back-references, \b \< \> and collating elements rejected; at most 2048
 * states once counts are expanded), required, properties, additionalProperties (bool or schema),
 * items, minItems, maxItems, meta:labels (kept, not enforced), allOf, $ref, title, description.
 * Other keywords are ignored. Objects are closed unless "additionalProperties" allows more or
 * "meta:xdmType" is "map". A plain "integer" has the range of an XDM long (+-2^53-1). Nesting is
 * limited to SCHEMA_LIMITS_DEFAULT.max_depth levels and the expansion to SCHEMA_MAX_NODES steps.
 *
 * def and errors are borrowed. Returns 0 and *out (returns owned; free with schema_free), or
 * KITH_EINVAL after appending {"path", "message"} objects to errors, where path is the JSON pointer
 * inside def of the fault (inside a built-in field group it is the "$ref" that brought it in). */
#define SCHEMA_MAX_NODES 100000
int schema_compile(const json_t *def, kith_schema **out, json_t *errors);
/* Takes s (NULL is allowed). */
void schema_free(kith_schema *s);

schema_class schema_get_class(const kith_schema *s);
/* The fully expanded "properties" object: all refs resolved, class fields included, each field
 * normalised to the keywords above (meta:xdmType only when it adds to type). Borrowed, read-only,
 * valid until schema_free(s); json_deep_copy it to change or keep it. */
const json_t *schema_properties(const kith_schema *s);

/* Checks an identity descriptor's source property against the schema: pointer (borrowed) must be a
 * JSON pointer such as "/personalEmail/address" naming a string field that is inside no array and
 * no map. Returns 0, or KITH_EINVAL after appending {"path": "/xdm:sourceProperty", "message"} to
 * errors (borrowed). */
int schema_check_descriptor(const kith_schema *s, const char *pointer, json_t *errors);

/* Validates an entity (the xdmEntity) against s. entity, lim (NULL = defaults) and errors are
 * borrowed. Appends at most lim->max_errors {"path": JSON pointer into the entity, "message"}
 * objects to errors and returns how many it appended (0 = valid). A missing required field is
 * reported at the field's own path ("/timestamp"). Allocates nothing when the entity is valid. */
int schema_validate(const kith_schema *s, const json_t *entity, const schema_limits *lim,
                    json_t *errors);

typedef struct schema_identity {
    const char *ns;    /* namespace code as written (identityMap key or descriptor namespace);
                          borrowed from entity or s */
    const char *value; /* borrowed from the entity */
    bool primary;
    char path[160]; /* JSON pointer of the value, e.g. "/identityMap/Email/0/id" or
                       "/personalEmail/address" */
} schema_identity;

/* Extracts identities from the entity's identityMap (document order) and then from the fields named
 * by s's descriptors (descriptor order), into out[0..cap). The pointers in out are borrowed and
 * valid while both s and entity live. Pairs with the same namespace (compared exactly) and value
 * are merged into the first. Exactly one identity comes out primary: an identityMap "primary": true
 * wins over a descriptor's isPrimary; two identityMap primaries are an error; none flagged means
 * the first. Errors (appended to errors, borrowed, with the path at fault): more than min(cap,
 * lim->max_identities) identities; a value that is not a string, is empty or is longer than
 * lim->max_identity_len bytes; a malformed identityMap (not an object of arrays of objects with a
 * string "id" and an optional boolean "primary"); no identity at all (path ""). Returns the count
 * (>= 1) or KITH_EINVAL. */
int schema_extract_identities(const kith_schema *s, const json_t *entity, const schema_limits *lim,
                              schema_identity *out, int cap, json_t *errors);

/* The union of n compiled schemas (borrowed; NULL entries are skipped) of one class: returns owned
 * {"properties": {...}} holding every field of every schema. Objects, maps and array items are
 * merged field by field and meta:labels are united. When two schemas give one field different types
 * the first wins and {"path": field pointer, "message"} is appended to errors (borrowed); a schema
 * of another class than the first is skipped with an error at path "". */
json_t *schema_union(const kith_schema *const *schemas, size_t n, json_t *errors);

/* The built-in classes, field groups and data types (returns owned):
 * {"classes": [...], "fieldGroups": [...], "dataTypes": [...]}, each item
 * {"$id", "title", "description", "meta:intendedToExtend": [class ids] (field groups),
 *  "type": "object", "properties": {expanded}, "required"?}. */
json_t *schema_builtin_list(void);

#endif
