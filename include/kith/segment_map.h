/* kith segment_map: one Segment-spec message (identify, track, page, screen, group, alias) → one
 * XDM entity, as API.md section 3 describes. Pure: no catalog, no store, no clock (the caller
 * passes the receive time), so it is unit-tested and fuzzed on its own.
 *
 * identify → a record for the profile dataset: userId and anonymousId in identityMap (userId
 *   primary), reserved traits on XDM fields (email → personalEmail.address, firstName/lastName/name
 * → person.name.*, phone → mobilePhone.number, address.* → homeAddress.*), every other trait under
 *   _segment.traits, extSourceSystemAudit.lastUpdatedDate = the message time (fragment ordering).
 * track, page, screen, group, alias → an ExperienceEvent for the event dataset: _id = messageId,
 *   timestamp = the message time, eventType = the event name (track),
 *   "web.webpagedetails.pageViews" (page), "application.screenView" (screen), "segment.group",
 *   "segment.alias"; properties under _segment.properties, revenue (else total) →
 *   commerce.order.priceTotal; alias carries userId and previousId in identityMap, which links
 * them.
 *
 * The message time follows Segment: "timestamp" when given, else "originalTimestamp" corrected for
 * the client's clock skew by (received - sentAt), else the receive time. */
#ifndef KITH_SEGMENT_MAP_H
#define KITH_SEGMENT_MAP_H

#include <jansson.h>
#include <stdbool.h>
#include <stdint.h>

enum segment_type {
    SEGMENT_NONE = 0,
    SEGMENT_IDENTIFY,
    SEGMENT_TRACK,
    SEGMENT_PAGE,
    SEGMENT_SCREEN,
    SEGMENT_GROUP,
    SEGMENT_ALIAS,
};

/* "identify", "track", ... (and the one-letter browser forms "i", "t", ...) → the type;
 * SEGMENT_NONE when unknown. */
int segment_type_parse(const char *s);
const char *segment_type_name(int type);

typedef struct segment_map_opts {
    const char *user_ns;     /* namespace of userId (e.g. "CRMID") */
    const char *anon_ns;     /* namespace of anonymousId (e.g. "AnonymousId") */
    const char *previous_ns; /* namespace of an alias's previousId; NULL → anon_ns */
    const char *fallback_id; /* _id of an event whose message has no messageId; NULL → error */
    int64_t received;        /* ms, the server's receive time */
} segment_map_opts;

/* Maps msg (borrowed). type: the endpoint's type, or SEGMENT_NONE to take the message's "type". On
 * success returns 0, *out a new entity (owned) and *is_event. Otherwise KITH_EINVAL with
 * {"path", "message"} objects appended to errors; paths are JSON pointers into the message,
 * prefixed with prefix ("" for a single message, "/batch/3" in a batch). */
int segment_map(const json_t *msg, int type, const segment_map_opts *o, const char *prefix,
                json_t **out, bool *is_event, json_t *errors);

/* Folds a batch's top-level "context", "integrations" and "sentAt" into msg (in place; the
 * message's own keys win), as the Segment spec says. */
void segment_batch_defaults(json_t *msg, const json_t *batch);

/* The message field an error path of the mapped entity came from ("/personalEmail/address" →
 * "/traits/email", "/_segment/properties/x" → "/properties/x"), written to out; the entity path
 * itself when no field maps to it. */
void segment_source_path(const char *entity_path, bool is_event, char *out, size_t cap);

/* The message's string id field (userId, anonymousId, messageId...) as text: strings as they are,
 * integers printed (Segment allows numeric ids). NULL when absent, empty or of another type. Writes
 * into buf for integers. */
const char *segment_id_field(const json_t *msg, const char *key, char *buf, size_t cap);

#endif
