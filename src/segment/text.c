/* Strings for PQL: UTF-8 decoding (invalid bytes read as themselves, so every input is total),
 * Unicode simple case folding for the ranges below, the string functions and `like`.
 *
 * Folding covers ASCII, Latin-1, Latin Extended-A, Latin Extended Additional, Greek, Cyrillic
 * (basic and extended), Armenian and fullwidth Latin: every simple (C+S) mapping of
 * CaseFolding.txt in those blocks. Other scripts compare exactly (documented in
 * docs/PQL-IMPLEMENTATION.md). Folding is one code point to one code point, so lengths in code
 * points are preserved. */
#include <string.h>

#include "pql_int.h"

static uint32_t utf8_next(const char *s, size_t n, size_t *i)
{
    const unsigned char *p = (const unsigned char *)s + *i;
    size_t left = n - *i;
    uint32_t c = p[0];
    if (c < 0x80) {
        *i += 1;
        return c;
    }
    int len = c >= 0xF0 ? 4 : c >= 0xE0 ? 3 : c >= 0xC0 ? 2 : 1;
    if (len == 1 || (size_t)len > left) {
        *i += 1;
        return c;
    }
    uint32_t v = c & (0xFF >> (len + 1));
    for (int k = 1; k < len; k++) {
        if ((p[k] & 0xC0) != 0x80) {
            *i += 1;
            return c;
        }
        v = (v << 6) | (p[k] & 0x3F);
    }
    *i += (size_t)len;
    return v;
}

uint32_t pql_fold(uint32_t c)
{
    if (c < 0x80) return (c >= 'A' && c <= 'Z') ? c + 32 : c;
    if (c < 0x100) {
        if (c == 0xB5) return 0x3BC;
        if (c >= 0xC0 && c <= 0xDE && c != 0xD7) return c + 32;
        return c;
    }
    if (c < 0x180) {
        if (c == 0x130 || c == 0x131 || c == 0x138 || c == 0x149) return c;
        if (c == 0x178) return 0xFF;
        if (c == 0x17F) return 's';
        if ((c >= 0x139 && c <= 0x148) || (c >= 0x179 && c <= 0x17E)) return (c & 1) ? c + 1 : c;
        return (c & 1) ? c : c + 1;
    }
    if (c >= 0x370 && c < 0x400) {
        if (c == 0x386) return 0x3AC;
        if (c >= 0x388 && c <= 0x38A) return c + 37;
        if (c == 0x38C) return 0x3CC;
        if (c == 0x38E || c == 0x38F) return c + 63;
        if (c >= 0x391 && c <= 0x3AB && c != 0x3A2) return c + 32;
        if (c == 0x3C2) return 0x3C3;
        if (c >= 0x3D8 && c <= 0x3EF) return (c & 1) ? c : c + 1;
        return c;
    }
    if (c >= 0x400 && c < 0x530) {
        if (c < 0x410) return c + 80;
        if (c < 0x430) return c + 32;
        if ((c >= 0x460 && c <= 0x481) || (c >= 0x48A && c <= 0x4BF) || (c >= 0x4D0 && c <= 0x52F))
            return (c & 1) ? c : c + 1;
        if (c == 0x4C0) return 0x4CF;
        if (c >= 0x4C1 && c <= 0x4CE) return (c & 1) ? c + 1 : c;
        return c;
    }
    if (c >= 0x531 && c <= 0x556) return c + 48;
    if (c >= 0x1E00 && c <= 0x1EFF) {
        if (c == 0x1E9E) return 0xDF;
        if (c == 0x1E9B) return 0x1E61;
        if ((c >= 0x1E00 && c <= 0x1E95) || (c >= 0x1EA0 && c <= 0x1EFF))
            return (c & 1) ? c : c + 1;
        return c;
    }
    if (c >= 0xFF21 && c <= 0xFF3A) return c + 32;
    return c;
}

/* Compares code point sequences (byte order of UTF-8 is code point order). */
int pql_str_cmp(const char *a, size_t an, const char *b, size_t bn, bool cs)
{
    if (cs) {
        int r = memcmp(a, b, an < bn ? an : bn);
        if (r) return r < 0 ? -1 : 1;
        return an < bn ? -1 : an > bn ? 1 : 0;
    }
    size_t i = 0, j = 0;
    while (i < an && j < bn) {
        uint32_t x = pql_fold(utf8_next(a, an, &i)), y = pql_fold(utf8_next(b, bn, &j));
        if (x != y) return x < y ? -1 : 1;
    }
    return i < an ? 1 : j < bn ? -1 : 0;
}

/* Does b match a at byte offset ai? On success *end is the byte after the match. */
static bool match_at(const char *a, size_t an, size_t ai, const char *b, size_t bn, bool cs,
                     size_t *end)
{
    if (cs) {
        if (an - ai < bn || memcmp(a + ai, b, bn) != 0) return false;
        *end = ai + bn;
        return true;
    }
    size_t j = 0;
    while (j < bn) {
        if (ai >= an) return false;
        if (pql_fold(utf8_next(a, an, &ai)) != pql_fold(utf8_next(b, bn, &j))) return false;
    }
    *end = ai;
    return true;
}

static bool str_contains(const char *a, size_t an, const char *b, size_t bn, bool cs)
{
    if (bn == 0) return true;
    if (cs) return memmem(a, an, b, bn) != NULL;
    size_t end;
    for (size_t i = 0; i < an;) {
        if (match_at(a, an, i, b, bn, false, &end)) return true;
        utf8_next(a, an, &i);
    }
    return false;
}

static bool str_ends(const char *a, size_t an, const char *b, size_t bn, bool cs)
{
    if (cs) return an >= bn && memcmp(a + an - bn, b, bn) == 0;
    size_t end;
    for (size_t i = 0; i <= an;) {
        if (match_at(a, an, i, b, bn, false, &end) && end == an) return true;
        if (i == an) break;
        utf8_next(a, an, &i);
    }
    return false;
}

bool pql_str_fn(int fn, const char *a, size_t an, const char *b, size_t bn, bool cs)
{
    size_t end;
    switch (fn) {
    case SF_EQUALS:
        return pql_str_cmp(a, an, b, bn, cs) == 0;
    case SF_NOTEQUALTO:
        return pql_str_cmp(a, an, b, bn, cs) != 0;
    case SF_CONTAINS:
        return str_contains(a, an, b, bn, cs);
    case SF_DOESNOTCONTAIN:
        return !str_contains(a, an, b, bn, cs);
    case SF_STARTSWITH:
        return match_at(a, an, 0, b, bn, cs, &end);
    case SF_DOESNOTSTARTWITH:
        return !match_at(a, an, 0, b, bn, cs, &end);
    case SF_ENDSWITH:
        return str_ends(a, an, b, bn, cs);
    case SF_DOESNOTENDWITH:
        return !str_ends(a, an, b, bn, cs);
    }
    return false;
}

/* `%` matches any run of code points, `_` exactly one; case-sensitive. Linear-time two-pointer
 * matching with one backtrack point (the last '%'), so no pattern is exponential. */
bool pql_like(const char *s, size_t sn, const char *p, size_t pn)
{
    size_t i = 0, j = 0, star_j = (size_t)-1, star_i = 0;
    while (i < sn) {
        if (j < pn && p[j] == '%') {
            star_j = ++j;
            star_i = i;
            continue;
        }
        if (j < pn) {
            size_t i2 = i, j2 = j;
            uint32_t pc = utf8_next(p, pn, &j2);
            uint32_t sc = utf8_next(s, sn, &i2);
            if (pc == '_' || pc == sc) {
                i = i2, j = j2;
                continue;
            }
        }
        if (star_j == (size_t)-1) return false;
        utf8_next(s, sn, &star_i);
        i = star_i;
        j = star_j;
    }
    while (j < pn && p[j] == '%')
        j++;
    return j == pn;
}
