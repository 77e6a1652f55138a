/* RFC 6902 JSON Patch over jansson. */
#ifndef KITH_JSONPATCH_H
#define KITH_JSONPATCH_H

#include <jansson.h>

/* Applies patch (borrowed) to doc in place. Returns 0, or -1 with err naming the operation at fault
 * ("/<index>: ..."); doc may then be partly changed, so patch a copy. */
int jsonpatch_apply(json_t *doc, const json_t *patch, char *err, size_t errcap);

#endif
