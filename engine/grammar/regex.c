/* regex: a recursive-descent parser to a small syntax tree, then emission into the builder.
 * The tree exists so that anchors can be checked (only at the edges of top-level alternatives)
 * before anything is built. */
#include "engine/grammar/regex.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/text/utf8.h"

enum rk { RK_SET, RK_CAT, RK_ALT, RK_REP, RK_BOL, RK_EOL };

struct rnode {
    enum rk kind;
    struct rnode **kid; /* CAT, ALT: [n_kid]; REP: [1] */
    int n_kid, cap_kid;
    int64_t min, max;       /* REP; max -1 unbounded */
    struct gb_cprange *set; /* SET: [n_set] */
    int n_set, cap_set;
};

struct rxp {
    const char *s;
    size_t n, i;
    int depth, max_depth;
    bool failed;
    char msg[256];
};

static int fail(struct rxp *p, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int fail(struct rxp *p, const char *fmt, ...)
{
    if (p->failed) return -1;
    va_list ap;
    va_start(ap, fmt);
    int k = vsnprintf(p->msg, sizeof p->msg, fmt, ap);
    va_end(ap);
    if (k >= 0 && (size_t)k < sizeof p->msg)
        snprintf(p->msg + k, sizeof p->msg - (size_t)k, " (at offset %zu)", p->i);
    p->failed = true;
    return -1;
}

/* ---- the tree ------------------------------------------------------------------------------ */

static struct rnode *node(enum rk kind)
{
    struct rnode *r = xcalloc(1, sizeof *r);
    r->kind = kind;
    return r;
}

static void node_free(struct rnode *r)
{
    if (!r) return;
    for (int i = 0; i < r->n_kid; i++) node_free(r->kid[i]);
    free(r->kid);
    free(r->set);
    free(r);
}

static void add_kid(struct rnode *r, struct rnode *k)
{
    if (r->n_kid == r->cap_kid) {
        r->cap_kid = r->cap_kid ? 2 * r->cap_kid : 4;
        r->kid = xrealloc(r->kid, (size_t)r->cap_kid * sizeof *r->kid);
    }
    r->kid[r->n_kid++] = k;
}

static void add_range(struct rnode *r, uint32_t lo, uint32_t hi)
{
    if (r->n_set == r->cap_set) {
        r->cap_set = r->cap_set ? 2 * r->cap_set : 4;
        r->set = xrealloc(r->set, (size_t)r->cap_set * sizeof *r->set);
    }
    r->set[r->n_set++] = (struct gb_cprange){lo, hi};
}

/* ---- character sets ------------------------------------------------------------------------ */

#define CP_LAST 0x10FFFFu

static int cmp_cp(const void *a, const void *b)
{
    const struct gb_cprange *x = a, *y = b;
    return (x->lo > y->lo) - (x->lo < y->lo);
}

/* Sorts and merges r's ranges. */
static void set_normalize(struct rnode *r)
{
    qsort(r->set, (size_t)r->n_set, sizeof *r->set, cmp_cp);
    int m = 0;
    for (int i = 0; i < r->n_set; i++) {
        if (m && r->set[i].lo <= r->set[m - 1].hi + 1) {
            if (r->set[i].hi > r->set[m - 1].hi) r->set[m - 1].hi = r->set[i].hi;
        } else {
            r->set[m++] = r->set[i];
        }
    }
    r->n_set = m;
}

static void set_complement(struct rnode *r)
{
    set_normalize(r);
    struct gb_cprange *old = r->set;
    int n = r->n_set;
    r->set = NULL, r->n_set = r->cap_set = 0;
    uint32_t at = 0;
    for (int i = 0; i < n; i++) {
        if (old[i].lo > at) add_range(r, at, old[i].lo - 1);
        at = old[i].hi + 1;
    }
    if (at <= CP_LAST) add_range(r, at, CP_LAST);
    free(old);
}

static void set_ascii_only(struct rnode *r)
{
    int m = 0;
    for (int i = 0; i < r->n_set; i++) {
        if (r->set[i].lo > 0x7F) continue;
        r->set[m] = r->set[i];
        if (r->set[m].hi > 0x7F) r->set[m].hi = 0x7F;
        m++;
    }
    r->n_set = m;
}

/* \d \w \s into r (negated: their ASCII complements); 0, or -1 when c is not a shorthand. */
static int shorthand(struct rnode *r, char c)
{
    struct rnode tmp = {0};
    switch (c | 0x20) {
    case 'd':
        add_range(&tmp, '0', '9');
        break;
    case 'w':
        add_range(&tmp, '0', '9'), add_range(&tmp, 'A', 'Z'), add_range(&tmp, '_', '_');
        add_range(&tmp, 'a', 'z');
        break;
    case 's':
        add_range(&tmp, '\t', '\r'), add_range(&tmp, ' ', ' ');
        break;
    default:
        return -1;
    }
    if (c >= 'A' && c <= 'Z') { /* negated: ASCII only; Python counts \x1c-\x1f as space */
        if ((c | 0x20) == 's') add_range(&tmp, 0x1C, 0x1F);
        set_complement(&tmp);
        set_ascii_only(&tmp);
    }
    for (int i = 0; i < tmp.n_set; i++) add_range(r, tmp.set[i].lo, tmp.set[i].hi);
    free(tmp.set);
    return 0;
}

/* ---- lexing -------------------------------------------------------------------------------- */

static bool at_end(const struct rxp *p)
{
    return p->i >= p->n;
}

/* The next code point of the pattern (UTF-8), advancing; -1 on invalid UTF-8. */
static int64_t next_cp(struct rxp *p)
{
    uint32_t cp;
    size_t k;
    if (utf8_scan((const uint8_t *)p->s + p->i, p->n - p->i, &k, &cp) != UTF8_CHAR)
        return fail(p, "the pattern is not valid UTF-8");
    p->i += k;
    return cp;
}

static int hex_digits(struct rxp *p, int n, uint32_t *out)
{
    uint32_t v = 0;
    for (int k = 0; k < n; k++, p->i++) {
        if (at_end(p)) return fail(p, "a hexadecimal escape is cut short");
        char c = p->s[p->i];
        int d = c >= '0' && c <= '9'                     ? c - '0'
                : (c | 0x20) >= 'a' && (c | 0x20) <= 'f' ? (c | 0x20) - 'a' + 10
                                                         : -1;
        if (d < 0) return fail(p, "'%c' is not a hexadecimal digit", c);
        v = v * 16 + (uint32_t)d;
    }
    *out = v;
    return 0;
}

/* An escape after '\' that stands for one character; -1 after failing. in_class: \b is a
 * backspace there. */
static int64_t escape_char(struct rxp *p, bool in_class)
{
    if (at_end(p)) return fail(p, "the pattern ends with a lone backslash");
    char c = p->s[p->i++];
    uint32_t v = 0;
    switch (c) {
    case 'n':
        return '\n';
    case 't':
        return '\t';
    case 'r':
        return '\r';
    case 'f':
        return '\f';
    case 'v':
        return '\v';
    case '0':
        return 0;
    case 'x':
        return hex_digits(p, 2, &v) ? -1 : (int64_t)v;
    case 'u':
        return hex_digits(p, 4, &v) ? -1 : (int64_t)v;
    case 'b':
        if (in_class) return '\b';
        return fail(p, "word boundaries (\\b) are not supported");
    case 'B':
        return fail(p, "word boundaries (\\B) are not supported");
    case 'p':
    case 'P':
        return fail(p, "Unicode property classes (\\%c) are not supported", c);
    case 'k':
        return fail(p, "backreferences (\\k) are not supported");
    case 'c':
        return fail(p, "control escapes (\\c) are not supported");
    default:
        break;
    }
    if (c >= '1' && c <= '9') return fail(p, "backreferences (\\%c) are not supported", c);
    if ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')) return fail(p, "unknown escape \\%c", c);
    p->i--;
    return next_cp(p);
}

/* ---- parsing ------------------------------------------------------------------------------- */

static struct rnode *parse_alt(struct rxp *p);

/* One member of a class: a character, or a shorthand added straight into r (*is_set). */
static int64_t class_atom(struct rxp *p, struct rnode *r, bool *is_set, bool *has_short)
{
    *is_set = false;
    if (p->s[p->i] != '\\') return next_cp(p);
    p->i++;
    if (!at_end(p) && shorthand(r, p->s[p->i]) == 0) {
        *has_short = true;
        *is_set = true;
        p->i++;
        return 0;
    }
    return escape_char(p, true);
}

static struct rnode *parse_class(struct rxp *p)
{
    struct rnode *r = node(RK_SET);
    bool neg = !at_end(p) && p->s[p->i] == '^', has_short = false;
    if (neg) p->i++;
    for (bool first = true; !p->failed; first = false) {
        if (at_end(p)) return fail(p, "a character class is not closed"), r;
        if (p->s[p->i] == ']' && !first) break;
        bool is_set;
        int64_t lo = class_atom(p, r, &is_set, &has_short);
        if (lo < 0 || is_set) continue;
        if (p->i + 1 < p->n && p->s[p->i] == '-' && p->s[p->i + 1] != ']') {
            p->i++;
            int64_t hi = class_atom(p, r, &is_set, &has_short);
            if (hi < 0) continue;
            if (is_set) return fail(p, "a range cannot end with a class shorthand"), r;
            if (hi < lo) return fail(p, "range out of order in a character class"), r;
            add_range(r, (uint32_t)lo, (uint32_t)hi);
        } else {
            add_range(r, (uint32_t)lo, (uint32_t)lo);
        }
    }
    p->i++; /* ']' */
    if (neg) {
        set_complement(r);
        if (has_short) set_ascii_only(r);
    }
    return r;
}

static struct rnode *parse_group(struct rxp *p)
{
    if (++p->depth > p->max_depth)
        return fail(p, "groups nested deeper than %d", p->max_depth), NULL;
    if (p->i + 1 < p->n && p->s[p->i] == '?') {
        char c = p->s[p->i + 1];
        if (c == ':')
            p->i += 2;
        else if (c == '=' || c == '!')
            return fail(p, "lookahead is not supported"), NULL;
        else if (c == '<' && p->i + 2 < p->n && (p->s[p->i + 2] == '=' || p->s[p->i + 2] == '!'))
            return fail(p, "lookbehind is not supported"), NULL;
        else if (c == '<' || c == 'P') { /* named group: (?<name>...) or (?P<name>...) */
            const char *gt = memchr(p->s + p->i, '>', p->n - p->i);
            if (!gt || (c == 'P' && p->s[p->i + 2] != '<'))
                return fail(p, "malformed group name"), NULL;
            p->i = (size_t)(gt - p->s) + 1;
        } else
            return fail(p, "group flags (?%c are not supported", c), NULL;
    }
    struct rnode *r = parse_alt(p);
    if (at_end(p) || p->s[p->i] != ')') return fail(p, "a group is not closed"), r;
    p->i++;
    p->depth--;
    return r;
}

static struct rnode *parse_atom(struct rxp *p)
{
    char c = p->s[p->i];
    struct rnode *r;
    p->i++;
    switch (c) {
    case '(':
        return parse_group(p);
    case '[':
        return parse_class(p);
    case '^':
        return node(RK_BOL);
    case '$':
        return node(RK_EOL);
    case '.':
        r = node(RK_SET);
        add_range(r, '\n', '\n'), add_range(r, '\r', '\r'), add_range(r, 0x2028, 0x2029);
        set_complement(r);
        return r;
    case '*':
    case '+':
    case '?':
        fail(p, "nothing to repeat before '%c'", c);
        return NULL;
    case ')':
        fail(p, "unbalanced ')'");
        return NULL;
    default:
        break;
    }
    r = node(RK_SET);
    int64_t cp;
    if (c == '\\') {
        if (!at_end(p) && shorthand(r, p->s[p->i]) == 0) return p->i++, r;
        cp = escape_char(p, false);
    } else {
        p->i--;
        cp = next_cp(p);
    }
    if (cp >= 0) add_range(r, (uint32_t)cp, (uint32_t)cp);
    return r;
}

/* {n}, {n,}, {n,m} at p->i; false (nothing consumed) when it is not one (a literal '{'). */
static bool parse_braces(struct rxp *p, int64_t *min, int64_t *max)
{
    size_t i = p->i + 1;
    int64_t a = 0, b;
    int nd = 0;
    for (; i < p->n && p->s[i] >= '0' && p->s[i] <= '9' && nd < 9; i++, nd++)
        a = a * 10 + (p->s[i] - '0');
    if (!nd) return false;
    b = a;
    if (i < p->n && p->s[i] == ',') {
        i++;
        b = -1;
        int nd2 = 0;
        for (int64_t v = 0; i < p->n && p->s[i] >= '0' && p->s[i] <= '9' && nd2 < 9; i++, nd2++)
            b = v = v * 10 + (p->s[i] - '0');
    }
    if (i >= p->n || p->s[i] != '}') return false;
    p->i = i + 1;
    *min = a, *max = b;
    return true;
}

/* A quantifier after an atom, if any: the atom wrapped in RK_REP. */
static struct rnode *parse_quant(struct rxp *p, struct rnode *atom)
{
    if (at_end(p)) return atom;
    char c = p->s[p->i];
    int64_t min, max;
    if (c == '*')
        min = 0, max = -1, p->i++;
    else if (c == '+')
        min = 1, max = -1, p->i++;
    else if (c == '?')
        min = 0, max = 1, p->i++;
    else if (c == '{' && parse_braces(p, &min, &max)) {
        if (max >= 0 && max < min)
            return fail(p, "quantifier {%lld,%lld} out of order", (long long)min, (long long)max),
                   atom;
    } else
        return atom;
    if (atom->kind == RK_BOL || atom->kind == RK_EOL)
        return fail(p, "an anchor cannot be repeated"), atom;
    if (!at_end(p) && p->s[p->i] == '?')
        p->i++; /* lazy: the same language */
    else if (!at_end(p) && p->s[p->i] == '+')
        return fail(p, "possessive quantifiers are not supported"), atom;
    if (!at_end(p) && strchr("*+?", p->s[p->i])) return fail(p, "multiple repeat"), atom;
    struct rnode *r = node(RK_REP);
    r->min = min, r->max = max;
    add_kid(r, atom);
    return r;
}

static struct rnode *parse_cat(struct rxp *p)
{
    struct rnode *r = node(RK_CAT);
    while (!at_end(p) && !p->failed && p->s[p->i] != '|' && p->s[p->i] != ')') {
        struct rnode *a = parse_atom(p);
        if (!a) break;
        add_kid(r, parse_quant(p, a));
    }
    return r;
}

static struct rnode *parse_alt(struct rxp *p)
{
    struct rnode *r = node(RK_ALT);
    add_kid(r, parse_cat(p));
    while (!at_end(p) && !p->failed && p->s[p->i] == '|') {
        p->i++;
        add_kid(r, parse_cat(p));
    }
    return r;
}

/* ---- emission ------------------------------------------------------------------------------ */

static bool has_anchor(const struct rnode *r)
{
    if (r->kind == RK_BOL || r->kind == RK_EOL) return true;
    for (int i = 0; i < r->n_kid; i++)
        if (has_anchor(r->kid[i])) return true;
    return false;
}

static struct gfrag emit(struct gb *b, const struct rnode *r, enum gb_text mode)
{
    if (r->kind == RK_SET) return gb_chars(b, r->set, r->n_set, mode);
    if (r->kind == RK_REP) return gb_repeat(b, emit(b, r->kid[0], mode), r->min, r->max);
    if (r->n_kid == 0) return gb_empty(b);
    struct gfrag f = emit(b, r->kid[0], mode);
    for (int i = 1; i < r->n_kid && !b->failed; i++) {
        struct gfrag g = emit(b, r->kid[i], mode);
        f = r->kind == RK_CAT ? gb_seq(b, f, g) : gb_alt(b, f, g);
    }
    return f;
}

static struct gfrag any_text(struct gb *b, enum gb_text mode)
{
    struct gb_cprange all = {0, CP_LAST};
    return gb_star(b, gb_chars(b, &all, 1, mode));
}

/* One top-level alternative: anchors stripped from its edges, the rest may not hold any. */
static struct gfrag emit_branch(struct gb *b, struct rnode *cat, enum gb_text mode, bool search,
                                struct rxp *p)
{
    int lo = 0, hi = cat->n_kid;
    bool bol = false, eol = false;
    while (lo < hi && cat->kid[lo]->kind == RK_BOL) lo++, bol = true;
    while (hi > lo && cat->kid[hi - 1]->kind == RK_EOL) hi--, eol = true;
    for (int i = lo; i < hi; i++)
        if (has_anchor(cat->kid[i]))
            return fail(p, "anchors (^, $) are supported only at the start and end of the pattern"),
                   gb_empty(b);
    struct gb_mark m = gb_mark(b);
    struct gfrag f = search && !bol ? any_text(b, mode) : gb_empty(b);
    for (int i = lo; i < hi && !b->failed; i++) f = gb_seq(b, f, emit(b, cat->kid[i], mode));
    if (search && !eol) f = gb_seq(b, f, any_text(b, mode));
    f.s0 = m.s, f.e0 = m.e;
    return f;
}

struct gfrag rx_build(struct gb *b, const char *re, size_t n, enum gb_text mode, bool search,
                      const char *where)
{
    struct rxp p = {.s = re, .n = n, .max_depth = b->lim.max_depth};
    if (b->failed) return gb_empty(b);
    struct rnode *root = n ? parse_alt(&p) : node(RK_ALT);
    if (!p.failed && !at_end(&p)) fail(&p, "unbalanced ')'");
    if (!root->n_kid) add_kid(root, node(RK_CAT));
    struct gb_mark m = gb_mark(b);
    struct gfrag f = {0};
    for (int i = 0; i < root->n_kid && !p.failed && !b->failed; i++) {
        struct gfrag g = emit_branch(b, root->kid[i], mode, search, &p);
        f = i ? gb_alt(b, f, g) : g;
    }
    if (p.failed)
        gb_fail(b, "%s: %s", where, p.msg);
    else if (b->failed)
        err_prefix(&b->e, "%s", where);
    node_free(root);
    if (b->failed) return gb_empty(b);
    f.s0 = m.s, f.e0 = m.e;
    return f;
}
