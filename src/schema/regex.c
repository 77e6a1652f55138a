/* The pattern engine: POSIX extended regular expressions for "pattern" keywords.
 *
 * glibc's regex is not used: regexec takes a per-pattern lock (every ingest thread would queue on a
 * hot field) and allocates on each call, and regcomp's time and memory explode on short hostile
 * patterns ("(a*)+++++...", deeply nested empty groups), which anyone who may post a schema could
 * send. Here a pattern (after pattern_translate) is parsed into a tree, compiled into a Thompson
 * NFA of at most REGEX_MAX_STATES states, and run as a Pike VM without captures: only "is there a
 * match anywhere" is asked, so leftmost-longest rules do not matter, compiling is linear in the
 * states and matching is O(length * states) with fixed-size state lists on the stack.
 *
 * Supported: literals, '.', bracket expressions with ranges, negation, [:classes:] and (as in ECMA
 * patterns, which is what schema authors write) \d \w \s and escaped punctuation, anchors ^ $
 * anywhere, groups, alternation, * + ? {n} {n,} {n,m}, and the GNU escapes \w \W \s \S. '.' and
 * bracket expressions consume one UTF-8 code point; classes and \w \s are ASCII, as in the C
 * locale. Not supported, and rejected with a reason: back-references, word boundaries (\b \< \>),
 * other letter escapes, collating elements and equivalence classes. The unit tests and the fuzz
 * target check that matching agrees with glibc's on ASCII text. */
#include "schema_int.h"

#include <stdlib.h>
#include <string.h>

#define REGEX_MAX_STATES 2048
#define REGEX_MAX_NODES 4096

enum op { OP_CHAR, OP_ANY, OP_CLASS, OP_BOL, OP_EOL, OP_SPLIT, OP_JMP, OP_MATCH };

struct rclass {
    uint32_t ascii[4];     /* bitmap of code points 0..127 */
    uint32_t (*ranges)[2]; /* inclusive ranges of code points >= 128 */
    uint32_t nranges;
    bool negate;
};

struct inst {
    uint8_t op;
    uint16_t x, y; /* jump targets */
    uint32_t arg;  /* code point or class index */
};

struct schema_regex {
    struct inst *prog;
    uint32_t n;
    bool anchored; /* starts with ^: no need to try later start positions */
    struct rclass *classes;
};

/* Parsing ------------------------------------------------------------------------------------- */

enum rnode_kind { R_EMPTY, R_CHAR, R_ANY, R_CLASS, R_BOL, R_EOL, R_CAT, R_ALT, R_REPEAT };

struct rnode {
    uint8_t kind;
    int a, b;     /* children (CAT, ALT), child (REPEAT) */
    uint32_t arg; /* code point, class index */
    int min, max; /* REPEAT; max < 0 = unbounded */
};

typedef struct rparser {
    const char *p;
    bool bad;        /* invalid or outside the subset */
    const char *why; /* the first reason */
    struct rnode nodes[REGEX_MAX_NODES];
    int nnodes;
    struct rclass *classes;
    uint32_t nclasses;
    kith_schema *s; /* NULL when only checking */
} rparser;

static void rbad(rparser *r, const char *why)
{
    if (!r->bad) r->why = why;
    r->bad = true;
}

static int rnode_new(rparser *r, uint8_t kind)
{
    if (r->nnodes >= REGEX_MAX_NODES) {
        rbad(r, "pattern is too long");
        return 0;
    }
    struct rnode *n = &r->nodes[r->nnodes];
    memset(n, 0, sizeof *n);
    n->kind = kind;
    return r->nnodes++;
}

/* Decodes one UTF-8 code point at *p (valid UTF-8 assumed; a stray byte is taken as itself). */
static uint32_t utf8_next(const char **p)
{
    const unsigned char *s = (const unsigned char *)*p;
    uint32_t c = s[0];
    int n = c < 0x80 ? 0 : c >= 0xF0 ? 3 : c >= 0xE0 ? 2 : c >= 0xC0 ? 1 : 0;
    if (n) c &= 0x3F >> n;
    int i = 1;
    for (; i <= n && (s[i] & 0xC0) == 0x80; i++)
        c = (c << 6) | (s[i] & 0x3F);
    *p += i;
    return c;
}

static void class_add(rparser *r, struct rclass *k, uint32_t lo, uint32_t hi)
{
    for (uint32_t c = lo; c <= hi && c < 128; c++)
        k->ascii[c / 32] |= 1u << (c % 32);
    if (hi >= 128 && r->s) {
        if (lo < 128) lo = 128;
        uint32_t(*grown)[2] = schema_arena_alloc(r->s, (k->nranges + 1) * sizeof *grown);
        if (k->nranges) memcpy(grown, k->ranges, k->nranges * sizeof *grown);
        grown[k->nranges][0] = lo;
        grown[k->nranges][1] = hi;
        k->ranges = grown;
        k->nranges++;
    }
}

static bool ascii_in(int c, const char *name)
{
    if (!strcmp(name, "alpha")) return (c | 32) >= 'a' && (c | 32) <= 'z';
    if (!strcmp(name, "digit")) return c >= '0' && c <= '9';
    if (!strcmp(name, "alnum")) return ascii_in(c, "alpha") || ascii_in(c, "digit");
    if (!strcmp(name, "upper")) return c >= 'A' && c <= 'Z';
    if (!strcmp(name, "lower")) return c >= 'a' && c <= 'z';
    if (!strcmp(name, "space")) return c == ' ' || (c >= '\t' && c <= '\r');
    if (!strcmp(name, "blank")) return c == ' ' || c == '\t';
    if (!strcmp(name, "xdigit"))
        return ascii_in(c, "digit") || ((c | 32) >= 'a' && (c | 32) <= 'f');
    if (!strcmp(name, "punct")) return c > 32 && c < 127 && !ascii_in(c, "alnum");
    if (!strcmp(name, "cntrl")) return c < 32 || c == 127;
    if (!strcmp(name, "print")) return c >= 32 && c < 127;
    if (!strcmp(name, "graph")) return c > 32 && c < 127;
    if (!strcmp(name, "word")) return ascii_in(c, "alnum") || c == '_';
    return false;
}

static bool class_add_named(rparser *r, struct rclass *k, const char *name)
{
    static const char *const known[] = {"alpha", "digit", "alnum",  "upper", "lower",
                                        "space", "blank", "xdigit", "punct", "cntrl",
                                        "print", "graph", "word"};
    bool ok = false;
    for (size_t i = 0; i < sizeof known / sizeof known[0]; i++)
        ok = ok || !strcmp(name, known[i]);
    if (!ok) return false;
    for (int c = 0; c < 128; c++)
        if (ascii_in(c, name)) class_add(r, k, (uint32_t)c, (uint32_t)c);
    return true;
}

static int class_new(rparser *r, struct rclass **out)
{
    r->classes = kith_xrealloc(r->classes, (r->nclasses + 1) * sizeof *r->classes);
    memset(&r->classes[r->nclasses], 0, sizeof *r->classes);
    *out = &r->classes[r->nclasses];
    int n = rnode_new(r, R_CLASS);
    r->nodes[n].arg = r->nclasses++;
    return n;
}

/* A bracket expression; *p is just past '['. */
static int parse_bracket(rparser *r)
{
    struct rclass *k;
    int n = class_new(r, &k);
    if (*r->p == '^') {
        k->negate = true;
        r->p++;
    }
    bool first = true;
    while (*r->p && (first || *r->p != ']')) {
        first = false;
        if (r->p[0] == '[' && (r->p[1] == '.' || r->p[1] == '=')) {
            rbad(r, "collating elements and equivalence classes ([. .], [= =]) are not supported");
            return n;
        }
        if (r->p[0] == '[' && r->p[1] == ':') {
            const char *end = strstr(r->p + 2, ":]");
            char name[16];
            size_t len = end ? (size_t)(end - r->p - 2) : sizeof name;
            if (len >= sizeof name) {
                rbad(r, "unterminated or unknown [:class:] in a bracket expression");
                return n;
            }
            memcpy(name, r->p + 2, len);
            name[len] = '\0';
            if (!class_add_named(r, k, name)) {
                rbad(r, "unknown [:class:] (alpha, digit, alnum, upper, lower, space, blank, "
                        "xdigit, punct, cntrl, print, graph)");
                return n;
            }
            r->p = end + 2;
            continue;
        }
        if (r->p[0] == '\\' && r->p[1]) {
            /* ECMA-style escapes, as schema authors write them ([\w.-]); POSIX would read a
             * literal backslash. */
            char e = r->p[1];
            if (e == 'w' || e == 's' || e == 'd') {
                class_add_named(r, k, e == 'w' ? "word" : e == 's' ? "space" : "digit");
                r->p += 2;
                continue;
            }
            if ((e >= '0' && e <= '9') || (e >= 'a' && e <= 'z') || (e >= 'A' && e <= 'Z')) {
                rbad(r, "inside [...] only \\d \\w \\s and escaped punctuation are supported");
                return n;
            }
            r->p++;
        }
        uint32_t lo = utf8_next(&r->p), hi = lo;
        if (r->p[0] == '-' && r->p[1] && r->p[1] != ']') {
            r->p++;
            if (r->p[0] == '[') {
                rbad(r, "a range cannot end with a [:class:]");
                return n;
            }
            hi = utf8_next(&r->p);
            if (hi < lo) {
                rbad(r, "a range in a bracket expression runs backwards (as in [z-a])");
                return n;
            }
        }
        class_add(r, k, lo, hi);
    }
    if (*r->p != ']') {
        rbad(r, "unterminated bracket expression (a '[' without its ']')");
        return n;
    }
    r->p++;
    return n;
}

static int parse_alt(rparser *r, int depth);

static int parse_atom(rparser *r, int depth)
{
    char c = *r->p;
    int n;
    switch (c) {
    case '(':
        r->p++;
        n = parse_alt(r, depth + 1);
        if (*r->p != ')')
            rbad(r, "unbalanced parentheses (a '(' without its ')')");
        else
            r->p++;
        return n;
    case '[':
        r->p++;
        return parse_bracket(r);
    case '.':
        r->p++;
        return rnode_new(r, R_ANY);
    case '^':
        r->p++;
        return rnode_new(r, R_BOL);
    case '$':
        r->p++;
        return rnode_new(r, R_EOL);
    case '\\': {
        char e = r->p[1];
        if (!e) {
            r->p++;
            rbad(r, "a pattern cannot end with a lone backslash");
            return 0;
        }
        r->p += 2;
        if (e == 'w' || e == 'W' || e == 's' || e == 'S') {
            struct rclass *k;
            n = class_new(r, &k);
            class_add_named(r, k, e == 'w' || e == 'W' ? "word" : "space");
            k->negate = e == 'W' || e == 'S';
            return n;
        }
        /* Escaped punctuation is literal; other escapes (\b, \<, \1...) are GNU-specific. */
        if ((e >= '0' && e <= '9') || (e >= 'a' && e <= 'z') || (e >= 'A' && e <= 'Z') ||
            (unsigned char)e >= 0x80 || e == '<' || e == '>' || e == '`' || e == '\'') {
            rbad(r, "back-references, word boundaries (\\b, \\<, \\>) and escapes other than \\d "
                    "\\D \\w \\W \\s \\S and escaped punctuation are not supported");
            return 0;
        }
        n = rnode_new(r, R_CHAR);
        r->nodes[n].arg = (unsigned char)e;
        return n;
    }
    case '*':
    case '+':
    case '?':
    case '{':
        rbad(r, "a quantifier (*, +, ?, {n,m}) has nothing to repeat");
        return 0;
    default:
        n = rnode_new(r, R_CHAR);
        r->nodes[n].arg = utf8_next(&r->p);
        return n;
    }
}

static bool parse_int(rparser *r, int *out)
{
    if (*r->p < '0' || *r->p > '9') return false;
    long v = 0;
    while (*r->p >= '0' && *r->p <= '9' && v <= 100000)
        v = v * 10 + (*r->p++ - '0');
    *out = (int)v;
    return v <= 100000;
}

static int parse_repeat(rparser *r, int depth)
{
    int n = parse_atom(r, depth);
    for (;;) {
        int min, max;
        char q = *r->p;
        if (q == '*' || q == '+' || q == '?') {
            r->p++;
            min = q == '+';
            max = q == '?' ? 1 : -1;
        } else if (q == '{') {
            r->p++;
            if (!parse_int(r, &min)) {
                rbad(r, "'{' must start a repetition count such as {2}, {2,} or {2,5}; write \\{ "
                        "for a literal brace");
                return n;
            }
            max = min;
            if (*r->p == ',') {
                r->p++;
                max = -1;
                if (*r->p != '}' && !parse_int(r, &max)) {
                    rbad(r, "invalid repetition count (use {n}, {n,} or {n,m})");
                    return n;
                }
            }
            if (*r->p != '}' || (max >= 0 && max < min)) {
                rbad(r, "invalid repetition count (use {n}, {n,} or {n,m} with n <= m)");
                return n;
            }
            r->p++;
        } else {
            return n;
        }
        if (r->nodes[n].kind == R_BOL || r->nodes[n].kind == R_EOL) {
            rbad(r, "a quantifier cannot apply to ^ or $");
            return n;
        }
        int rep = rnode_new(r, R_REPEAT);
        r->nodes[rep].a = n;
        r->nodes[rep].min = min;
        r->nodes[rep].max = max;
        n = rep;
    }
}

static int parse_cat(rparser *r, int depth)
{
    int n = -1;
    while (!r->bad && *r->p && *r->p != '|' && *r->p != ')') {
        int next = parse_repeat(r, depth);
        if (n < 0) {
            n = next;
        } else {
            int cat = rnode_new(r, R_CAT);
            r->nodes[cat].a = n;
            r->nodes[cat].b = next;
            n = cat;
        }
    }
    return n < 0 ? rnode_new(r, R_EMPTY) : n;
}

static int parse_alt(rparser *r, int depth)
{
    if (depth > 64) {
        rbad(r, "parentheses nested deeper than 64");
        return 0;
    }
    int n = parse_cat(r, depth);
    while (!r->bad && *r->p == '|') {
        r->p++;
        int alt = rnode_new(r, R_ALT);
        r->nodes[alt].a = n;
        r->nodes[alt].b = parse_cat(r, depth);
        n = alt;
    }
    return n;
}

/* Code generation ----------------------------------------------------------------------------- */

typedef struct rgen {
    struct inst prog[REGEX_MAX_STATES];
    uint32_t n;
    bool full;
    const struct rnode *nodes;
} rgen;

static uint32_t emit(rgen *g, uint8_t op, uint32_t arg)
{
    if (g->n >= REGEX_MAX_STATES) {
        g->full = true;
        return g->n - 1;
    }
    g->prog[g->n] = (struct inst){.op = op, .arg = arg};
    return g->n++;
}

static void gen(rgen *g, int idx, int depth)
{
    const struct rnode *n = &g->nodes[idx];
    if (g->full || depth > 128) {
        g->full = true;
        return;
    }
    uint32_t split, jmp;
    switch (n->kind) {
    case R_EMPTY:
        break;
    case R_CHAR:
        emit(g, OP_CHAR, n->arg);
        break;
    case R_ANY:
        emit(g, OP_ANY, 0);
        break;
    case R_CLASS:
        emit(g, OP_CLASS, n->arg);
        break;
    case R_BOL:
        emit(g, OP_BOL, 0);
        break;
    case R_EOL:
        emit(g, OP_EOL, 0);
        break;
    case R_CAT:
        gen(g, n->a, depth + 1);
        gen(g, n->b, depth + 1);
        break;
    case R_ALT:
        split = emit(g, OP_SPLIT, 0);
        g->prog[split].x = (uint16_t)g->n;
        gen(g, n->a, depth + 1);
        jmp = emit(g, OP_JMP, 0);
        g->prog[split].y = (uint16_t)g->n;
        gen(g, n->b, depth + 1);
        g->prog[jmp].x = (uint16_t)g->n;
        break;
    case R_REPEAT: {
        /* X* = L: split(X, end); X; jmp L.  X{n,} = X^(n-1) then L: X; split(L, end).
         * X{n,m} = X^n then m - n optional copies. Only counted copies duplicate X. */
        if (n->min == 0 && n->max < 0) {
            split = emit(g, OP_SPLIT, 0);
            g->prog[split].x = (uint16_t)g->n;
            gen(g, n->a, depth + 1);
            jmp = emit(g, OP_JMP, 0);
            g->prog[jmp].x = (uint16_t)split;
            g->prog[split].y = (uint16_t)g->n;
            break;
        }
        int copies = n->max < 0 ? n->min - 1 : n->min;
        for (int i = 0; i < copies && !g->full; i++)
            gen(g, n->a, depth + 1);
        if (n->max < 0) {
            uint32_t loop = g->n;
            gen(g, n->a, depth + 1);
            split = emit(g, OP_SPLIT, 0);
            g->prog[split].x = (uint16_t)loop;
            g->prog[split].y = (uint16_t)g->n;
            break;
        }
        /* x{2,4} = x x (x (x)?)? flattened: each optional copy may skip to the end. */
        int nopt = n->max - n->min;
        if (nopt > REGEX_MAX_STATES) {
            g->full = true;
            return;
        }
        uint32_t *splits = kith_xmalloc(((size_t)nopt + 1) * sizeof *splits);
        for (int i = 0; i < nopt && !g->full; i++) {
            splits[i] = emit(g, OP_SPLIT, 0);
            g->prog[splits[i]].x = (uint16_t)g->n;
            gen(g, n->a, depth + 1);
        }
        for (int i = 0; i < nopt && !g->full; i++)
            g->prog[splits[i]].y = (uint16_t)g->n;
        free(splits);
        break;
    }
    }
}

/* Parses and compiles pattern; stores the result in s's arena, or only checks when s is NULL. */
static int regex_build(kith_schema *s, const char *pattern, const char **why, schema_regex **out)
{
    rparser *r = kith_xcalloc(1, sizeof *r);
    rgen *g = kith_xcalloc(1, sizeof *g);
    int rc = KITH_EINVAL;
    r->p = pattern;
    r->s = s;
    int root = parse_alt(r, 0);
    if (!r->bad && *r->p) rbad(r, "unbalanced parentheses (a ')' without its '(')");
    if (r->bad) {
        *why = r->why;
        goto done;
    }
    g->nodes = r->nodes;
    gen(g, root, 0);
    emit(g, OP_MATCH, 0);
    if (g->full) {
        *why = "pattern is too complex: more than 2048 states once repetitions are expanded "
               "(prefer maxLength to counts such as .{0,2000})";
        goto done;
    }
    rc = 0;
    if (!s) goto done;
    schema_regex *re = schema_arena_alloc(s, sizeof *re);
    re->n = g->n;
    re->prog = schema_arena_alloc(s, g->n * sizeof *re->prog);
    memcpy(re->prog, g->prog, g->n * sizeof *re->prog);
    re->anchored = re->prog[0].op == OP_BOL;
    re->classes = schema_arena_alloc(s, (r->nclasses + 1) * sizeof *re->classes);
    if (r->nclasses) memcpy(re->classes, r->classes, r->nclasses * sizeof *re->classes);
    *out = re;
done:
    free(r->classes);
    free(r);
    free(g);
    return rc;
}

int schema_regex_check(const char *pattern, const char **why)
{
    return regex_build(NULL, pattern, why, NULL);
}

schema_regex *schema_regex_compile(kith_schema *s, const char *pattern)
{
    const char *why;
    schema_regex *re = NULL;
    return regex_build(s, pattern, &why, &re) == 0 ? re : NULL;
}

/* Matching ------------------------------------------------------------------------------------ */

static bool class_has(const struct rclass *k, uint32_t c)
{
    bool in = false;
    if (c < 128) {
        in = k->ascii[c / 32] >> (c % 32) & 1;
    } else {
        for (uint32_t i = 0; i < k->nranges && !in; i++)
            in = c >= k->ranges[i][0] && c <= k->ranges[i][1];
    }
    return in != k->negate;
}

typedef struct rrun {
    const schema_regex *re;
    size_t len;
    uint32_t gen;
    uint32_t mark[REGEX_MAX_STATES]; /* generation in which a state was last added */
    uint16_t stack[2 * REGEX_MAX_STATES + 2];
} rrun;

/* Adds the state pc and everything reachable from it without consuming input at position pos. */
static void add_state(rrun *run, uint16_t *list, uint32_t *n, uint16_t pc, size_t pos)
{
    uint32_t sp = 0;
    run->stack[sp++] = pc;
    while (sp) {
        pc = run->stack[--sp];
        if (run->mark[pc] == run->gen) continue;
        run->mark[pc] = run->gen;
        const struct inst *in = &run->re->prog[pc];
        switch (in->op) {
        case OP_JMP:
            run->stack[sp++] = in->x;
            break;
        case OP_SPLIT:
            run->stack[sp++] = in->y;
            run->stack[sp++] = in->x;
            break;
        case OP_BOL:
            if (pos == 0) run->stack[sp++] = (uint16_t)(pc + 1);
            break;
        case OP_EOL:
            if (pos == run->len) run->stack[sp++] = (uint16_t)(pc + 1);
            break;
        default:
            list[(*n)++] = pc;
            break;
        }
    }
}

bool schema_regex_match(const schema_regex *re, const char *s, size_t len)
{
    rrun run;
    uint16_t a[REGEX_MAX_STATES], b[REGEX_MAX_STATES], *cur = a, *next = b;
    uint32_t ncur = 0, nnext;
    run.re = re;
    run.len = len;
    run.gen = 1;
    memset(run.mark, 0, re->n * sizeof run.mark[0]);
    size_t pos = 0;
    for (;;) {
        if (pos == 0 || !re->anchored) add_state(&run, cur, &ncur, 0, pos);
        for (uint32_t i = 0; i < ncur; i++)
            if (re->prog[cur[i]].op == OP_MATCH) return true;
        if (pos >= len || (ncur == 0 && re->anchored)) return false;
        const char *p = s + pos;
        uint32_t c = utf8_next(&p);
        size_t next_pos = (size_t)(p - s);
        run.gen++;
        nnext = 0;
        for (uint32_t i = 0; i < ncur; i++) {
            const struct inst *in = &re->prog[cur[i]];
            bool step = (in->op == OP_CHAR && in->arg == c) || in->op == OP_ANY ||
                        (in->op == OP_CLASS && class_has(&re->classes[in->arg], c));
            if (step) add_state(&run, next, &nnext, (uint16_t)(cur[i] + 1), next_pos);
        }
        uint16_t *t = cur;
        cur = next;
        next = t;
        ncur = nnext;
        pos = next_pos;
    }
}
