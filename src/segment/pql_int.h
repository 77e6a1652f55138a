/* Internals of the PQL module shared by lexer, parser, checker, compiler, evaluator and explain. */
#ifndef KITH_SEGMENT_PQL_INT_H
#define KITH_SEGMENT_PQL_INT_H

#include <regex.h>

#include "kith/pql.h"

#define PQL_MAX_TEXT (64 * 1024)
#define PQL_MAX_NEST 64
/* Operators in a row (a + b + ... , a and b and ...) nest the tree one level per operand, and the
 * checker and compiler recurse on it: an expression holds at most this many binary operators. */
#define PQL_MAX_CHAIN 4096
#define PQL_MAX_SLOTS 128

/* ---- arena (AST, program tables) ---- */
typedef struct pql_arena_chunk {
    struct pql_arena_chunk *next;
    size_t used, cap;
    char data[];
} pql_arena_chunk;
typedef struct pql_arena {
    pql_arena_chunk *head;
} pql_arena;
void *pql_arena_alloc(pql_arena *a, size_t n);
char *pql_arena_strndup(pql_arena *a, const char *s, size_t n);
void pql_arena_free(pql_arena *a);

/* ---- lexer ---- */
enum pql_tok {
    T_EOF,
    T_IDENT,
    T_STRING, /* value unescaped into the arena */
    T_INT,
    T_DOUBLE,
    T_DOLLAR, /* $N */
    T_LP,
    T_RP,
    T_LB,
    T_RB,
    T_COMMA,
    T_DOT,
    T_COLON,
    T_EQ,
    T_NE,
    T_LT,
    T_LE,
    T_GT,
    T_GE,
    T_PLUS,
    T_MINUS,
    T_STAR,
    T_SLASH,
    T_PERCENT,
    T_BANG,
    T_CARET,
    T_ARROW,
    T_ERROR
};
typedef struct pql_token {
    enum pql_tok kind;
    int line, col;
    const char *s; /* T_IDENT: into the text; T_STRING: unescaped (arena) */
    size_t len;
    int64_t i;
    double d;
} pql_token;
typedef struct pql_lexer {
    const char *text, *p, *end;
    int line;
    const char *line_start;
    pql_arena *arena;
    pql_error *err;
} pql_lexer;
void pql_lex_init(pql_lexer *lx, const char *text, size_t len, pql_arena *a, pql_error *err);
int pql_lex_next(pql_lexer *lx, pql_token *t); /* 0 or KITH_EINVAL (err set) */
const char *pql_tok_name(enum pql_tok k);

/* ---- values (16 bytes) ---- */
enum pql_vt {
    V_MISSING = 0,
    V_BOOL,
    V_INT,
    V_DBL,
    V_STR,  /* s, len: borrowed */
    V_TIME, /* i: epoch ms */
    V_OBJ,  /* j: borrowed JSON object */
    V_ARR,  /* j: borrowed JSON array (elements converted when read) */
    V_SEQ   /* seq, len: array of pql_val (constant pool or scratch) */
};
typedef struct pql_val {
    uint8_t t;
    uint8_t pad[3];
    uint32_t len;
    union {
        int64_t i;
        double d;
        const char *s;
        const json_t *j;
        const struct pql_val *seq;
    };
} pql_val;

/* ---- AST ---- */
enum pql_node_kind {
    N_LIT,      /* val */
    N_LIST,     /* kids */
    N_NAME,     /* name, up (number of ^) */
    N_PARAM,    /* $1 / lambda parameter */
    N_FIELD,    /* a.name */
    N_CALL,     /* name(args) */
    N_METHOD,   /* a.name(args) */
    N_FILTER,   /* a[b] */
    N_BIN,      /* op, a, b */
    N_NOT,      /* a */
    N_NEG,      /* a */
    N_OCCURS,   /* a = x, occ */
    N_TIMEWORD, /* word */
    N_LET,      /* name, a = value, b = body */
    N_QUANT,    /* quant, binds */
    N_AGGOVER,  /* name = agg fn, a = expr, binds[0] */
    N_CHAIN     /* a = source, name = ts field, steps */
};
enum pql_binop {
    B_AND,
    B_OR,
    B_EQ,
    B_NE,
    B_LT,
    B_LE,
    B_GT,
    B_GE,
    B_IN,
    B_NOTIN,
    B_LIKE,
    B_ADD,
    B_SUB,
    B_MUL,
    B_DIV,
    B_MOD
};
enum pql_timeword { W_NOW, W_TODAY, W_YESTERDAY, W_TOMORROW };
enum pql_unit {
    U_MS,
    U_SEC,
    U_MIN,
    U_HOUR,
    U_DAY,
    U_WEEK,
    U_MONTH,
    U_YEAR,
    U_DECADE,
    U_CENTURY,
    U_MILLENNIUM
};
enum pql_occ_kind {
    O_PLAIN,  /* before|after T */
    O_REL,    /* cmp n unit before|after|from T */
    O_ON,     /* [on] T (a day) */
    O_PERIOD, /* this|last|next unit */
    O_BETWEEN /* between T1 and T2 */
};
enum pql_dir { D_BEFORE, D_AFTER, D_FROM };

struct pql_node;
typedef struct pql_occ {
    uint8_t kind, cmp /* B_EQ..B_GE */, unit, dir;
    bool exact;    /* O_PLAIN from a comparison with now/today: cmp against the instant itself */
    int32_t shift; /* O_PERIOD: -1 last, 0 this, +1 next */
    int64_t n;
    struct pql_node *ref1, *ref2;
    const char *step_ref; /* CHAIN WHEN relative to an earlier step label */
} pql_occ;

/* Checker's type of a node. */
enum pql_ty { TY_ANY, TY_NULL, TY_BOOL, TY_INT, TY_DBL, TY_STR, TY_TIME, TY_OBJ, TY_MAP, TY_ARR };
typedef struct pql_type {
    uint8_t t;
    uint8_t et;        /* TY_ARR: element type */
    uint8_t origin;    /* 0 computed, 1 a profile field, 2 an event field */
    const json_t *sch; /* TY_OBJ/TY_MAP: the field definition; TY_ARR: the items definition */
} pql_type;

typedef struct pql_bind {
    const char *var;
    struct pql_node *src, *where;
    int slot;
} pql_bind;
typedef struct pql_chain_step {
    const char *label;
    struct pql_node *what;
    pql_occ *when; /* NULL: any time */
    int step_ref;  /* index of the earlier step WHEN refers to, or -1 */
} pql_chain_step;

typedef struct pql_node {
    uint8_t kind, op;
    int line, col;
    const char *name;
    int up;
    struct pql_node *a, *b, *c;
    struct pql_node **kids;
    int nkids;
    pql_val val;
    pql_occ *occ;
    pql_bind *binds;
    int nbinds;
    int quant; /* N_QUANT: 0 exists, 1 forall, 2 select */
    pql_chain_step *steps;
    int nsteps;
    /* set by the checker */
    pql_type ty;
    int slot; /* scope slot bound by this node (filter, let, aggregate method), or resolved */
    int ref;  /* N_NAME: 0 field of implicit scope slot, 1 variable slot, 2 events, 3 profile */
    bool count_all;   /* N_QUANT select followed by .count() */
    const char *path; /* dotted field path for dependency info */
} pql_node;

typedef struct pql_parse_out {
    pql_node *root;
    const char *lambda_param; /* "(P) => ..." */
} pql_parse_out;
int pql_parse(const char *text, size_t len, pql_arena *a, pql_parse_out *out, pql_error *err);

/* ---- program ---- */
enum pql_op {
#define X(name, operands, doc) OP_##name,
#include "opcodes.def"
#undef X
    OP__COUNT
};
typedef struct pql_step {
    uint8_t op;
    uint8_t a8;
    uint16_t s; /* slot */
    int32_t a;  /* constant, table index, jump target or block */
    int32_t b;
} pql_step;

enum pql_strfn {
    SF_EQUALS,
    SF_NOTEQUALTO,
    SF_CONTAINS,
    SF_DOESNOTCONTAIN,
    SF_STARTSWITH,
    SF_DOESNOTSTARTWITH,
    SF_ENDSWITH,
    SF_DOESNOTENDWITH
};
enum pql_aggfn { AG_SUM, AG_AVG, AG_MIN, AG_MAX };
enum pql_setfn { ST_INCLUDES, ST_INTERSECTS, ST_SUBSETOF, ST_SUPERSETOF, ST_INTERSECTION };
enum pql_part { P_YEAR, P_MONTH, P_DAY };

/* A compiled occurs window; refs with kind REF_STACK are popped from the stack (ref2 on top). */
enum pql_ref {
    REF_NONE,
    REF_NOW,
    REF_TODAY,
    REF_YESTERDAY,
    REF_TOMORROW,
    REF_CONST,
    REF_STACK,
    REF_DAYCONST
};
typedef struct pql_occ_prog {
    uint8_t kind, cmp, unit, dir;
    bool exact;
    int32_t shift;
    int64_t n;
    uint8_t ref1, ref2;
    int64_t c1, c2; /* REF_CONST values */
    bool linear;    /* bounds are now + constant: closed-form next change */
} pql_occ_prog;

typedef struct pql_quant_prog {
    int quant, count_all;
    int nbinds;
    struct {
        int slot, src, where; /* src, where: blocks (where -1: none) */
    } b[8];
} pql_quant_prog;

typedef struct pql_chain_prog {
    int src_ts_field; /* constant index of the timestamp field name */
    int nsteps;
    int slot;
    struct {
        int what;     /* block */
        int occ;      /* occurs index or -1 */
        int step_ref; /* -1 or earlier step */
    } st[16];
} pql_chain_prog;

/* An incremental aggregate site (kith/pqlinc.h): blocks run on one event. */
#define PQL_INC_MAX_CONJ 16
enum pql_inc_kind { IK_COUNT, IK_SUM, IK_AVG, IK_MIN, IK_MAX, IK_DISTINCT };
typedef struct pql_inc_site {
    uint64_t sig;
    uint8_t kind;  /* enum pql_inc_kind */
    bool proj;     /* contributions: the elements vblk yields from [event] (slot); else vblk's
                      value on the event (vslot), or the event itself when vblk < 0 */
    int slot;      /* the filter's element slot */
    int vslot;
    int vblk;
    int nstatic;
    int statics[PQL_INC_MAX_CONJ]; /* blocks (truth) */
    int nx;
    int xblk[2], xocc[2];          /* time conjuncts: timestamp block, window */
} pql_inc_site;

/* The canonical form of a FILTER step's block that reads nothing but its element, constants and the
 * evaluation instant (compile.c): two programs' filters with equal keys keep the same elements of
 * the same collection at the same now, so pql_memo shares the result. FILTER's b = index + 1. */
typedef struct pql_fkey {
    uint64_t hash;
    const uint8_t *key; /* program arena */
    uint32_t len;
} pql_fkey;

struct pql_program {
    pql_arena arena;
    pql_fkey *fkeys;
    int nfkeys;
    pql_step *code;
    int ncode, capcode;
    pql_val *consts;
    int nconsts, capconsts;
    pql_occ_prog *occs;
    int noccs;
    pql_quant_prog *quants;
    int nquants;
    pql_chain_prog *chains;
    int nchains;
    regex_t *regexes;
    int nregexes;
    int nslots;
    int max_stack;
    char *text;
    pql_deps deps;
    pql_inc_site *sites;
    int nsites;
    bool inc_only; /* every xEvent read is inside a site */
};

/* check.c */
typedef struct pql_checked {
    int nslots;
    /* dependency info, arena strings */
    const char **fields;
    int nfields, capfields;
    const char **efields;
    int nefields, capefields;
    const char **etypes;
    int netypes, capetypes;
    const char **segs;
    int nsegs, capsegs;
    bool reads_events, uses_now, unbounded;
    int64_t lookback;
    int mode;
    const char *reason;
} pql_checked;
int pql_check(pql_parse_out *po, const pql_env *env, pql_arena *a, pql_checked *ck, pql_error *err);
/* compile.c */
int pql_codegen(pql_program *p, pql_parse_out *po, pql_error *err);

/* time.c: calendar arithmetic in UTC */
int64_t pql_time_floor(int64_t t, int unit);
int64_t pql_time_add(int64_t t, int unit, int64_t n);
void pql_time_civil(int64_t t, int *y, int *m, int *d);
int64_t pql_time_from_civil(int y, int m, int d);
int pql_unit_parse(const char *s, size_t n);
extern const char *const pql_unit_names[];

/* text.c: UTF-8, folding, like */
uint32_t pql_fold(uint32_t c);
int pql_str_cmp(const char *a, size_t an, const char *b, size_t bn, bool cs);
bool pql_str_fn(int fn, const char *a, size_t an, const char *b, size_t bn, bool cs);
bool pql_like(const char *s, size_t sn, const char *p, size_t pn);

/* The names of steps, for explain. */
extern const char *const pql_op_names[];

#endif
