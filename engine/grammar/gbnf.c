/* gbnf: grammars in llama.cpp's GBNF notation.
 *
 *     root  ::= item ("," item)*          # comment
 *     item  ::= [a-z]+ | "\"" [^"]* "\"" | <[128806]>
 *
 * Rules `name ::= alternatives`; elements: "literals" (escapes \n \r \t \\ \" \[ \] \xHH
 * \uHHHH \UHHHHHHHH), [classes] with ranges and ^, '.', rule names, ( groups ), special tokens
 * <[id]>, postfix * + ? {m} {m,} {m,n} {,n}. A newline ends a rule outside parentheses unless
 * the next line starts with '|'. The rule named root is the start. Characters are Unicode code
 * points; literals are matched as their UTF-8 bytes. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/grammar/gram_internal.h"
#include "engine/text/utf8.h"

struct gp {
    struct gb *b;
    const char *s;
    size_t n, i;
    int depth;
    char **names; /* [n_names] rule names, index = builder rule id */
    uint8_t *defined;
    int32_t n_names, cap_names;
};

static int gp_fail(struct gp *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int gp_fail(struct gp *p, const char *fmt, ...)
{
    if (p->b->failed) return -1;
    int line = 1, col = 1;
    for (size_t k = 0; k < p->i && k < p->n; k++) {
        if (p->s[k] == '\n')
            line++, col = 1;
        else
            col++;
    }
    char msg[300];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    return gb_fail(p->b, "grammar: line %d column %d: %s", line, col, msg);
}

static bool more(const struct gp *p)
{
    return p->i < p->n && !p->b->failed;
}

static char peek(const struct gp *p)
{
    return p->i < p->n ? p->s[p->i] : 0;
}

/* Skips blanks and comments; newlines too when nl. */
static void space(struct gp *p, bool nl)
{
    while (p->i < p->n) {
        char c = p->s[p->i];
        if (c == ' ' || c == '\t' || (nl && (c == '\n' || c == '\r')))
            p->i++;
        else if (c == '#')
            while (p->i < p->n && p->s[p->i] != '\n') p->i++;
        else
            break;
    }
}

static bool name_char(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
           c == '_' || c == '.';
}

/* The builder rule for a name (made on first mention). */
static int32_t rule_of(struct gp *p, const char *name, size_t len)
{
    for (int32_t i = 0; i < p->n_names; i++)
        if (strlen(p->names[i]) == len && !memcmp(p->names[i], name, len)) return i;
    char *copy = strndup(name, len);
    if (!copy) ERR_FATAL("out of memory");
    int32_t r = gb_rule(p->b, copy);
    if (p->n_names == p->cap_names) {
        p->cap_names = p->cap_names ? 2 * p->cap_names : 32;
        p->names = xrealloc(p->names, (size_t)p->cap_names * sizeof *p->names);
        p->defined = xrealloc(p->defined, (size_t)p->cap_names);
    }
    p->names[p->n_names] = copy;
    p->defined[p->n_names++] = 0;
    if (r != p->n_names - 1 && !p->b->failed) ERR_FATAL("gbnf: rule numbering out of step");
    return r;
}

/* ---- characters ---------------------------------------------------------------------------- */

static int64_t hex(struct gp *p, int n)
{
    uint32_t v = 0;
    for (int k = 0; k < n; k++, p->i++) {
        char c = peek(p);
        int d = c >= '0' && c <= '9'                     ? c - '0'
                : (c | 0x20) >= 'a' && (c | 0x20) <= 'f' ? (c | 0x20) - 'a' + 10
                                                         : -1;
        if (d < 0) return gp_fail(p, "expected a hexadecimal digit");
        v = v * 16 + (uint32_t)d;
    }
    return v;
}

/* One character of a literal or class (escapes decoded); -1 after failing. */
static int64_t char_at(struct gp *p)
{
    if (!more(p)) return gp_fail(p, "unexpected end of grammar");
    if (peek(p) == '\\') {
        p->i++;
        char c = peek(p);
        p->i++;
        switch (c) {
        case 'n':
            return '\n';
        case 'r':
            return '\r';
        case 't':
            return '\t';
        case 'x':
            return hex(p, 2);
        case 'u':
            return hex(p, 4);
        case 'U':
            return hex(p, 8);
        case '\\':
        case '"':
        case '[':
        case ']':
        case '-':
        case '^':
            return c;
        default:
            p->i--;
            return gp_fail(p, "unknown escape '\\%c'", c);
        }
    }
    uint32_t cp;
    size_t k;
    if (utf8_scan((const uint8_t *)p->s + p->i, p->n - p->i, &k, &cp) != UTF8_CHAR)
        return gp_fail(p, "the grammar is not valid UTF-8");
    p->i += k;
    return cp;
}

static int utf8_put(uint32_t c, char *o)
{
    if (c < 0x80) return o[0] = (char)c, 1;
    if (c < 0x800) return o[0] = (char)(0xC0 | c >> 6), o[1] = (char)(0x80 | (c & 63)), 2;
    if (c < 0x10000) {
        o[0] = (char)(0xE0 | c >> 12), o[1] = (char)(0x80 | (c >> 6 & 63)),
        o[2] = (char)(0x80 | (c & 63));
        return 3;
    }
    o[0] = (char)(0xF0 | c >> 18), o[1] = (char)(0x80 | (c >> 12 & 63));
    o[2] = (char)(0x80 | (c >> 6 & 63)), o[3] = (char)(0x80 | (c & 63));
    return 4;
}

static struct gfrag literal(struct gp *p)
{
    size_t cap = 64, n = 0;
    char *buf = xmalloc(cap);
    p->i++; /* '"' */
    while (more(p) && peek(p) != '"') {
        int64_t c = char_at(p);
        if (c < 0 || c > 0x10FFFF) break;
        if (n + 4 > cap) buf = xrealloc(buf, cap *= 2);
        n += (size_t)utf8_put((uint32_t)c, buf + n);
    }
    if (peek(p) != '"') gp_fail(p, "a string literal is not closed");
    p->i++;
    struct gfrag f = gb_lit(p->b, buf, n);
    free(buf);
    return f;
}

static int cmp_cp(const void *a, const void *b)
{
    const struct gb_cprange *x = a, *y = b;
    return (x->lo > y->lo) - (x->lo < y->lo);
}

static struct gfrag char_class(struct gp *p)
{
    struct gb_cprange *r = NULL;
    int n = 0, cap = 0;
    p->i++; /* '[' */
    bool neg = peek(p) == '^';
    if (neg) p->i++;
    while (more(p) && peek(p) != ']') {
        int64_t lo = char_at(p), hi = lo;
        if (lo < 0) break;
        if (peek(p) == '-' && p->i + 1 < p->n && p->s[p->i + 1] != ']') {
            p->i++;
            hi = char_at(p);
            if (hi < lo) {
                gp_fail(p, "character range out of order");
                break;
            }
        }
        if (n == cap) r = xrealloc(r, (size_t)(cap = cap ? 2 * cap : 8) * sizeof *r);
        r[n++] = (struct gb_cprange){(uint32_t)lo, (uint32_t)hi};
    }
    if (peek(p) != ']') gp_fail(p, "a character class is not closed");
    p->i++;
    if (neg) { /* complement over all code points: sort, then sweep */
        qsort(r, (size_t)n, sizeof *r, cmp_cp);
        struct gb_cprange *c = xmalloc(((size_t)n + 2) * sizeof *c);
        int m = 0;
        uint32_t at = 0;
        for (int k = 0; k < n && at <= 0x10FFFF; k++) {
            if (r[k].lo > at) c[m++] = (struct gb_cprange){at, r[k].lo - 1};
            if (r[k].hi + 1 > at) at = r[k].hi + 1;
        }
        if (at <= 0x10FFFF) c[m++] = (struct gb_cprange){at, 0x10FFFF};
        free(r);
        r = c, n = m;
    }
    struct gfrag f = gb_chars(p->b, r, n, GB_RAW);
    free(r);
    return f;
}

/* ---- structure ----------------------------------------------------------------------------- */

static struct gfrag alternatives(struct gp *p, bool nested);

static struct gfrag token_ref(struct gp *p)
{
    p->i++; /* '<' */
    if (peek(p) != '[') return gp_fail(p, "only token ids <[N]> are supported"), gb_empty(p->b);
    p->i++;
    int64_t id = 0;
    int nd = 0;
    for (; peek(p) >= '0' && peek(p) <= '9' && nd < 10; p->i++, nd++)
        id = id * 10 + (peek(p) - '0');
    if (!nd || peek(p) != ']' || (p->i++, peek(p) != '>'))
        return gp_fail(p, "malformed token reference"), gb_empty(p->b);
    p->i++;
    if (id >= p->b->n_vocab)
        return gp_fail(p, "token id %lld is not in the vocabulary", (long long)id), gb_empty(p->b);
    return gb_token(p->b, (int32_t)id);
}

static struct gfrag element(struct gp *p)
{
    char c = peek(p);
    if (c == '"') return literal(p);
    if (c == '[') return char_class(p);
    if (c == '<') return token_ref(p);
    if (c == '.') {
        p->i++;
        struct gb_cprange all = {0, 0x10FFFF};
        return gb_chars(p->b, &all, 1, GB_RAW);
    }
    if (c == '(') {
        if (++p->depth > p->b->lim.max_depth)
            return gp_fail(p, "parentheses nested deeper than %d", p->b->lim.max_depth),
                   gb_empty(p->b);
        p->i++;
        space(p, true);
        struct gfrag f = alternatives(p, true);
        if (peek(p) != ')') gp_fail(p, "expected ')'");
        p->i++;
        p->depth--;
        return f;
    }
    size_t at = p->i;
    while (p->i < p->n && name_char(p->s[p->i])) p->i++;
    if (p->i == at) return gp_fail(p, "unexpected '%c'", c ? c : ' '), gb_empty(p->b);
    return gb_ref(p->b, rule_of(p, p->s + at, p->i - at));
}

static int64_t number(struct gp *p)
{
    int64_t v = 0;
    int nd = 0;
    for (; peek(p) >= '0' && peek(p) <= '9'; p->i++, nd++)
        if ((v = v * 10 + (peek(p) - '0')) > 1000000)
            return gp_fail(p, "repetition count too large");
    return nd ? v : -1;
}

static struct gfrag postfix(struct gp *p, struct gfrag f)
{
    char c = peek(p);
    if (c == '*') return p->i++, gb_star(p->b, f);
    if (c == '+') return p->i++, gb_plus(p->b, f);
    if (c == '?') return p->i++, gb_opt(p->b, f);
    if (c != '{') return f;
    p->i++;
    space(p, false);
    int64_t lo = number(p), hi;
    space(p, false);
    if (peek(p) == ',') {
        p->i++;
        space(p, false);
        hi = number(p);
    } else {
        hi = lo;
    }
    space(p, false);
    if (peek(p) != '}' || (lo < 0 && hi < 0)) return gp_fail(p, "malformed repetition"), f;
    p->i++;
    return gb_repeat(p->b, f, lo < 0 ? 0 : lo, hi);
}

static struct gfrag sequence(struct gp *p, bool nested)
{
    struct gfrag f = gb_empty(p->b);
    while (more(p)) {
        char c = peek(p);
        if (c == '|' || c == ')' || c == '\n' || c == '\r') break;
        struct gfrag e = postfix(p, element(p));
        f = gb_seq(p->b, f, e);
        space(p, nested);
        if (peek(p) == ':') return gp_fail(p, "expected a rule body, found '::='"), f;
    }
    return f;
}

static struct gfrag alternatives(struct gp *p, bool nested)
{
    struct gfrag f = sequence(p, nested);
    for (;;) {
        size_t at = p->i;
        space(p, true);
        if (peek(p) != '|' || p->b->failed) {
            p->i = nested ? p->i : at;
            return f;
        }
        p->i++;
        space(p, nested);
        f = gb_alt(p->b, f, sequence(p, nested));
    }
}

static void rule_def(struct gp *p)
{
    size_t at = p->i;
    while (p->i < p->n && name_char(p->s[p->i])) p->i++;
    if (p->i == at) {
        gp_fail(p, "expected a rule name");
        return;
    }
    int32_t r = rule_of(p, p->s + at, p->i - at);
    space(p, false);
    if (p->n - p->i < 3 || memcmp(p->s + p->i, "::=", 3)) {
        gp_fail(p, "expected '::=' after the rule name");
        return;
    }
    if (r >= 0 && r < p->n_names && p->defined[r]) {
        gp_fail(p, "rule '%s' is defined twice", p->names[r]);
        return;
    }
    p->i += 3;
    space(p, false);
    struct gfrag f = alternatives(p, false);
    if (r >= 0 && r < p->n_names) p->defined[r] = 1;
    gb_rule_define(p->b, r, f);
}

struct gram *gram_from_gbnf(const char *text, size_t n, int32_t n_vocab,
                            const struct gram_limits *lim, struct err *e)
{
    struct gb b;
    gb_init(&b, lim, n_vocab);
    struct gp p = {.b = &b, .s = text, .n = n};
    int32_t root = rule_of(&p, "root", 4);
    for (space(&p, true); more(&p); space(&p, true)) rule_def(&p);
    for (int32_t i = 0; i < p.n_names && !b.failed; i++)
        if (!p.defined[i]) gb_fail(&b, "grammar: rule '%s' is used but never defined", p.names[i]);
    for (int32_t i = 0; i < p.n_names; i++) free(p.names[i]);
    free(p.names);
    free(p.defined);
    return gram_compile(&b, root, e);
}
