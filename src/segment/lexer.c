/* PQL lexer: identifiers (with '_' and a leading letter or '_'), strings with backslash escapes,
 * integers and doubles (with exponent), $N, operators. Keywords are identifiers; the parser
 * decides, so a field may be named like a keyword where that is unambiguous. Also the module's
 * arena. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "pql_int.h"

void *pql_arena_alloc(pql_arena *a, size_t n)
{
    n = (n + 15) & ~(size_t)15;
    if (!a->head || a->head->cap - a->head->used < n) {
        size_t cap = n > 16384 ? n : 16384;
        pql_arena_chunk *c = kith_xmalloc(sizeof *c + cap);
        c->next = a->head, c->used = 0, c->cap = cap;
        a->head = c;
    }
    void *p = a->head->data + a->head->used;
    a->head->used += n;
    memset(p, 0, n);
    return p;
}

char *pql_arena_strndup(pql_arena *a, const char *s, size_t n)
{
    char *d = pql_arena_alloc(a, n + 1);
    memcpy(d, s, n);
    d[n] = 0;
    return d;
}

void pql_arena_free(pql_arena *a)
{
    for (pql_arena_chunk *c = a->head, *n; c; c = n) {
        n = c->next;
        free(c);
    }
    a->head = NULL;
}

const char *pql_tok_name(enum pql_tok k)
{
    static const char *const names[] = {
        "end of input", "identifier", "string", "integer", "number", "$N",   "'('",
        "')'",          "'['",        "']'",    "','",     "'.'",    "':'",  "'='",
        "'!='",         "'<'",        "'<='",   "'>'",     "'>='",   "'+'",  "'-'",
        "'*'",          "'/'",        "'%'",    "'!'",     "'^'",    "'=>'", "error"};
    return names[k];
}

void pql_lex_init(pql_lexer *lx, const char *text, size_t len, pql_arena *a, pql_error *err)
{
    lx->text = lx->p = text;
    lx->end = text + len;
    lx->line = 1;
    lx->line_start = text;
    lx->arena = a;
    lx->err = err;
}

static int lex_fail(pql_lexer *lx, const char *at, const char *msg)
{
    lx->err->line = lx->line;
    lx->err->column = (int)(at - lx->line_start) + 1;
    snprintf(lx->err->message, sizeof lx->err->message, "%s", msg);
    return KITH_EINVAL;
}

static void put_utf8(char *d, size_t *n, uint32_t c)
{
    if (c < 0x80) {
        d[(*n)++] = (char)c;
    } else if (c < 0x800) {
        d[(*n)++] = (char)(0xC0 | (c >> 6));
        d[(*n)++] = (char)(0x80 | (c & 0x3F));
    } else if (c < 0x10000) {
        d[(*n)++] = (char)(0xE0 | (c >> 12));
        d[(*n)++] = (char)(0x80 | ((c >> 6) & 0x3F));
        d[(*n)++] = (char)(0x80 | (c & 0x3F));
    } else {
        d[(*n)++] = (char)(0xF0 | (c >> 18));
        d[(*n)++] = (char)(0x80 | ((c >> 12) & 0x3F));
        d[(*n)++] = (char)(0x80 | ((c >> 6) & 0x3F));
        d[(*n)++] = (char)(0x80 | (c & 0x3F));
    }
}

static int hexval(int c)
{
    if (c >= '0' && c <= '9') return c - '0';
    if (c >= 'a' && c <= 'f') return c - 'a' + 10;
    if (c >= 'A' && c <= 'F') return c - 'A' + 10;
    return -1;
}

static int lex_string(pql_lexer *lx, pql_token *t)
{
    const char *start = lx->p++;
    char *d = pql_arena_alloc(lx->arena, (size_t)(lx->end - lx->p) + 1);
    size_t n = 0;
    for (;;) {
        if (lx->p >= lx->end) return lex_fail(lx, start, "unterminated string (expected '\"')");
        char c = *lx->p;
        if (c == '"') {
            lx->p++;
            break;
        }
        if (c == '\n') return lex_fail(lx, start, "unterminated string (expected '\"')");
        if (c != '\\') {
            d[n++] = c;
            lx->p++;
            continue;
        }
        if (lx->p + 1 >= lx->end) return lex_fail(lx, lx->p, "unterminated escape");
        char e = lx->p[1];
        lx->p += 2;
        switch (e) {
        case '"':
            d[n++] = '"';
            break;
        case '\\':
            d[n++] = '\\';
            break;
        case '/':
            d[n++] = '/';
            break;
        case '\'':
            d[n++] = '\'';
            break;
        case 'n':
            d[n++] = '\n';
            break;
        case 't':
            d[n++] = '\t';
            break;
        case 'r':
            d[n++] = '\r';
            break;
        case 'b':
            d[n++] = '\b';
            break;
        case 'f':
            d[n++] = '\f';
            break;
        case 'u': {
            uint32_t c4 = 0;
            for (int i = 0; i < 4; i++) {
                int h = lx->p + i < lx->end ? hexval((unsigned char)lx->p[i]) : -1;
                if (h < 0) return lex_fail(lx, lx->p - 2, "bad \\u escape (expected 4 hex digits)");
                c4 = c4 * 16 + (uint32_t)h;
            }
            lx->p += 4;
            if (c4 == 0 || (c4 >= 0xD800 && c4 <= 0xDFFF))
                return lex_fail(lx, lx->p - 6, "bad \\u escape (NUL or surrogate)");
            put_utf8(d, &n, c4);
            break;
        }
        default:
            /* Regex escapes such as \d and \. pass through, as the documentation's examples
             * write them with one backslash. */
            d[n++] = '\\';
            d[n++] = e;
            break;
        }
    }
    d[n] = 0;
    t->kind = T_STRING;
    t->s = d;
    t->len = n;
    return 0;
}

static bool is_ident_start(int c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_' || c >= 0x80;
}
static bool is_ident(int c)
{
    return is_ident_start(c) || (c >= '0' && c <= '9') || c == '-';
}

int pql_lex_next(pql_lexer *lx, pql_token *t)
{
    memset(t, 0, sizeof *t);
    for (;;) {
        while (lx->p < lx->end &&
               (*lx->p == ' ' || *lx->p == '\t' || *lx->p == '\r' || *lx->p == '\n')) {
            if (*lx->p == '\n') lx->line++, lx->line_start = lx->p + 1;
            lx->p++;
        }
        /* "//" comments to the end of the line */
        if (lx->p + 1 < lx->end && lx->p[0] == '/' && lx->p[1] == '/') {
            while (lx->p < lx->end && *lx->p != '\n')
                lx->p++;
            continue;
        }
        break;
    }
    t->line = lx->line;
    t->col = (int)(lx->p - lx->line_start) + 1;
    if (lx->p >= lx->end) {
        t->kind = T_EOF;
        return 0;
    }
    const char *s = lx->p;
    unsigned char c = (unsigned char)*s;
    if (c == 0) return lex_fail(lx, s, "NUL byte in expression");
    if (c == '"') return lex_string(lx, t);
    if (c >= '0' && c <= '9') {
        const char *q = s;
        bool dbl = false;
        while (q < lx->end && *q >= '0' && *q <= '9')
            q++;
        if (q + 1 < lx->end && *q == '.' && q[1] >= '0' && q[1] <= '9') {
            dbl = true;
            q++;
            while (q < lx->end && *q >= '0' && *q <= '9')
                q++;
        }
        if (q < lx->end && (*q == 'e' || *q == 'E')) {
            const char *e = q + 1;
            if (e < lx->end && (*e == '+' || *e == '-')) e++;
            if (e < lx->end && *e >= '0' && *e <= '9') {
                dbl = true;
                q = e;
                while (q < lx->end && *q >= '0' && *q <= '9')
                    q++;
            }
        }
        char buf[64];
        size_t n = (size_t)(q - s);
        if (n >= sizeof buf) return lex_fail(lx, s, "number too long");
        memcpy(buf, s, n);
        buf[n] = 0;
        lx->p = q;
        if (dbl) {
            t->kind = T_DOUBLE;
            t->d = strtod(buf, NULL);
        } else {
            char *endp;
            errno = 0;
            unsigned long long v = strtoull(buf, &endp, 10);
            if (errno || v > (unsigned long long)INT64_MAX)
                return lex_fail(lx, s, "integer out of range (expected a 64-bit integer)");
            t->kind = T_INT;
            t->i = (int64_t)v;
        }
        return 0;
    }
    if (is_ident_start(c)) {
        const char *q = s + 1;
        while (q < lx->end && is_ident((unsigned char)*q)) {
            /* '-' only inside names such as "commerce.product-views"? No: PQL has '-' as minus. */
            if (*q == '-') break;
            q++;
        }
        t->kind = T_IDENT;
        t->s = s;
        t->len = (size_t)(q - s);
        lx->p = q;
        return 0;
    }
    lx->p++;
    char n1 = lx->p < lx->end ? *lx->p : 0;
    switch (c) {
    case '$': {
        const char *q = lx->p;
        int64_t v = 0;
        while (q < lx->end && *q >= '0' && *q <= '9' && v < 1000000)
            v = v * 10 + (*q++ - '0');
        if (q == lx->p) return lex_fail(lx, s, "expected a number after '$'");
        lx->p = q;
        t->kind = T_DOLLAR;
        t->i = v;
        return 0;
    }
    case '(':
        t->kind = T_LP;
        return 0;
    case ')':
        t->kind = T_RP;
        return 0;
    case '[':
        t->kind = T_LB;
        return 0;
    case ']':
        t->kind = T_RB;
        return 0;
    case ',':
        t->kind = T_COMMA;
        return 0;
    case '.':
        t->kind = T_DOT;
        return 0;
    case ':':
        t->kind = T_COLON;
        return 0;
    case '+':
        t->kind = T_PLUS;
        return 0;
    case '-':
        t->kind = T_MINUS;
        return 0;
    case '*':
        t->kind = T_STAR;
        return 0;
    case '/':
        t->kind = T_SLASH;
        return 0;
    case '%':
        t->kind = T_PERCENT;
        return 0;
    case '^':
        t->kind = T_CARET;
        return 0;
    case '=':
        if (n1 == '>') return lx->p++, t->kind = T_ARROW, 0;
        if (n1 == '=') lx->p++; /* "==" is accepted as "=" */
        t->kind = T_EQ;
        return 0;
    case '!':
        if (n1 == '=') return lx->p++, t->kind = T_NE, 0;
        t->kind = T_BANG;
        return 0;
    case '<':
        if (n1 == '=') return lx->p++, t->kind = T_LE, 0;
        if (n1 == '>') return lx->p++, t->kind = T_NE, 0;
        t->kind = T_LT;
        return 0;
    case '>':
        if (n1 == '=') return lx->p++, t->kind = T_GE, 0;
        t->kind = T_GT;
        return 0;
    }
    return lex_fail(lx, s, "unexpected character");
}
