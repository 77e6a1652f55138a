/* RFC 6902 JSON Patch (add, remove, replace, test) over jansson, for PATCH endpoints. */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "jsonpatch.h"

/* Decodes one reference token (~1 → /, ~0 → ~) into out. */
static void unescape_token(const char *s, size_t n, char *out, size_t cap)
{
    size_t o = 0;
    for (size_t i = 0; i < n && o + 1 < cap; i++) {
        if (s[i] == '~' && i + 1 < n && (s[i + 1] == '0' || s[i + 1] == '1')) {
            out[o++] = s[i + 1] == '0' ? '~' : '/';
            i++;
        } else {
            out[o++] = s[i];
        }
    }
    out[o] = 0;
}

/* Resolves the parent container of pointer and its last token. */
static json_t *resolve_parent(json_t *doc, const char *ptr, char *last, size_t cap)
{
    if (*ptr != '/') return NULL;
    json_t *cur = doc;
    const char *p = ptr + 1;
    for (;;) {
        const char *slash = strchr(p, '/');
        size_t n = slash ? (size_t)(slash - p) : strlen(p);
        char tok[512];
        unescape_token(p, n, tok, sizeof tok);
        if (!slash) {
            snprintf(last, cap, "%s", tok);
            return cur;
        }
        if (json_is_object(cur)) {
            cur = json_object_get(cur, tok);
        } else if (json_is_array(cur)) {
            char *end;
            unsigned long i = strtoul(tok, &end, 10);
            cur = *end || !*tok ? NULL : json_array_get(cur, i);
        } else {
            cur = NULL;
        }
        if (!cur) return NULL;
        p = slash + 1;
    }
}

int jsonpatch_apply(json_t *doc, const json_t *patch, char *err, size_t errcap)
{
    if (!json_is_array(patch)) {
        snprintf(err, errcap, "a JSON Patch must be an array of operations");
        return -1;
    }
    size_t i;
    json_t *op;
    json_array_foreach(patch, i, op)
    {
        const char *o = json_string_value(json_object_get(op, "op"));
        const char *path = json_string_value(json_object_get(op, "path"));
        json_t *value = json_object_get(op, "value");
        if (!o || !path) {
            snprintf(err, errcap, "/%zu: each operation needs \"op\" and \"path\" strings", i);
            return -1;
        }
        char last[512];
        json_t *parent = resolve_parent(doc, path, last, sizeof last);
        if (!parent) {
            snprintf(err, errcap, "/%zu: path \"%s\" does not exist", i, path);
            return -1;
        }
        bool is_add = strcmp(o, "add") == 0, is_replace = strcmp(o, "replace") == 0;
        if ((is_add || is_replace || strcmp(o, "test") == 0) && !value) {
            snprintf(err, errcap, "/%zu: \"%s\" needs a \"value\"", i, o);
            return -1;
        }
        if (json_is_object(parent)) {
            json_t *cur = json_object_get(parent, last);
            if (is_add) {
                json_object_set(parent, last, value);
            } else if (is_replace || strcmp(o, "remove") == 0) {
                if (!cur) {
                    snprintf(err, errcap, "/%zu: path \"%s\" does not exist", i, path);
                    return -1;
                }
                if (is_replace) json_object_set(parent, last, value);
                else json_object_del(parent, last);
            } else if (strcmp(o, "test") == 0) {
                if (!cur || !json_equal(cur, value)) {
                    snprintf(err, errcap, "/%zu: test failed at \"%s\"", i, path);
                    return -1;
                }
            } else {
                snprintf(err, errcap, "/%zu: unsupported op \"%s\" (add, remove, replace, test)", i, o);
                return -1;
            }
        } else if (json_is_array(parent)) {
            size_t n = json_array_size(parent);
            char *end;
            unsigned long idx = strcmp(last, "-") == 0 ? n : strtoul(last, &end, 10);
            if (strcmp(last, "-") != 0 && (*end || !*last)) {
                snprintf(err, errcap, "/%zu: \"%s\" is not an array index", i, last);
                return -1;
            }
            if (is_add) {
                if (idx > n) goto range;
                json_array_insert(parent, idx, value);
            } else if (is_replace) {
                if (idx >= n) goto range;
                json_array_set(parent, idx, value);
            } else if (strcmp(o, "remove") == 0) {
                if (idx >= n) goto range;
                json_array_remove(parent, idx);
            } else if (strcmp(o, "test") == 0) {
                if (idx >= n || !json_equal(json_array_get(parent, idx), value)) {
                    snprintf(err, errcap, "/%zu: test failed at \"%s\"", i, path);
                    return -1;
                }
            } else {
                snprintf(err, errcap, "/%zu: unsupported op \"%s\"", i, o);
                return -1;
            }
        } else {
            snprintf(err, errcap, "/%zu: path \"%s\" does not name a container", i, path);
            return -1;
        }
        continue;
    range:
        snprintf(err, errcap, "/%zu: index out of range in \"%s\"", i, path);
        return -1;
    }
    return 0;
}
