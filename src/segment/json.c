/* pql/json (AEP's AST form): not yet implemented; see docs/PQL-IMPLEMENTATION.md. */
#include <stdio.h>

#include "pql_int.h"

json_t *pql_to_json(const char *text, size_t len, pql_error *err)
{
    (void)text;
    (void)len;
    if (err)
        snprintf(err->message, sizeof err->message, "pql/json conversion is not supported yet");
    return NULL;
}

char *pql_from_json(const json_t *ast, pql_error *err)
{
    (void)ast;
    if (err)
        snprintf(err->message, sizeof err->message, "pql/json conversion is not supported yet");
    return NULL;
}
