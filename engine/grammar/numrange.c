/* numrange: JSON numbers within bounds, as an automaton built by exploring a product.
 *
 * Generated numbers are plain decimals — '-'? ('0' | [1-9][0-9]*) ('.' [0-9]+)? — with at most
 * NUM_DIGITS digits in all and no exponent, so any two of them are distinct doubles (DBL_DIG is
 * 15): comparing them exactly as decimals against a bound written as its shortest round-trip
 * decimal agrees with comparing them as parsed doubles, inclusive or exclusive. "-0" is never
 * generated: a negative number has a magnitude above zero.
 *
 * A non-negative magnitude y is read digit by digit by three automata at once: the syntax
 * (leading zeros, digit budget) and one comparator per bound, which tracks how y compares with
 * the bound's decimal so far (integer part by length then digits, fraction digit by digit,
 * missing digits read as zeros). The reachable product states become builder states; those that
 * cannot reach an accepting end are pruned by gram_compile. */
#include <stdlib.h>
#include <string.h>

#include "engine/grammar/numrange.h"

#define NUM_DIGITS 15

enum { LT, EQ, GT };

/* A non-negative bound: its integer digits (no leading zeros; "0" for zero) and fraction digits
 * (no trailing zeros). */
struct bound {
    bool on, excl, neg;
    char ip[420], fp[820];
    int ni, nf;
};

/* Parses decimal text ("-12.5e3", "0.1", "3") into b; false when it is not a number. Exponents
 * beyond ±300 saturate (the magnitude is then far outside what is generated). */
static bool parse_bound(const char *s, bool excl, struct bound *b)
{
    memset(b, 0, sizeof *b);
    b->on = true, b->excl = excl;
    if (*s == '-') b->neg = true, s++;
    char dig[400];
    int nd = 0, point = -1;
    for (; (*s >= '0' && *s <= '9') || *s == '.'; s++) {
        if (*s == '.') {
            if (point >= 0) return false;
            point = nd;
        } else if (nd < 400) {
            dig[nd++] = *s;
        } else if (point < 0) {
            return false; /* an integer part of more than 400 digits */
        }
    }
    if (!nd) return false;
    if (point < 0) point = nd;
    long ex = 0;
    if (*s == 'e' || *s == 'E') ex = strtol(s + 1, (char **)&s, 10);
    if (*s) return false;
    if (ex > 400) ex = 400;
    if (ex < -400) ex = -400;
    point += (int)ex; /* digits before `point` are the integer part */
    if (point > 400) point = 400;
    if (point < -400) point = -400;
    for (int i = 0; i < point; i++) {
        char c = i < nd && i >= 0 ? dig[i] : '0';
        if (b->ni == 0 && c == '0') continue;
        b->ip[b->ni++] = c;
    }
    if (!b->ni) b->ip[b->ni++] = '0';
    for (int i = point; i < nd; i++) b->fp[b->nf++] = i < 0 ? '0' : dig[i];
    while (b->nf && b->fp[b->nf - 1] == '0') b->nf--;
    return true;
}

static bool is_zero(const struct bound *b)
{
    return b->ni == 1 && b->ip[0] == '0' && b->nf == 0;
}

/* ---- the three automata -------------------------------------------------------------------- */

/* Syntax: 0 start; 1 "0"; 2 integer digits; 3 just after '.'; 4 fraction digits. Packed with
 * the digit count. */
struct syn {
    uint8_t kind, digits;
};

/* Comparator: phase 0 integer part (pos digits read, rel so far), 1 fraction (pos, rel),
 * 2 decided (rel). */
struct cmp {
    uint8_t phase, rel;
    uint16_t pos;
};

static int digit_rel(char d, char b)
{
    return d < b ? LT : d > b ? GT : EQ;
}

/* The relation of the integer part read so far, were it to end now. */
static int int_rel(const struct bound *b, struct cmp c)
{
    if (c.pos < b->ni) return LT;
    if (c.pos > b->ni) return GT;
    return c.rel;
}

static struct cmp cmp_step(const struct bound *b, struct cmp c, char ch)
{
    if (!b->on || c.phase == 2) return c;
    if (ch == '.') {
        int r = int_rel(b, c);
        return r == EQ ? (struct cmp){1, EQ, 0} : (struct cmp){2, (uint8_t)r, 0};
    }
    if (c.phase == 0) {
        if (c.pos < b->ni && c.rel == EQ) c.rel = (uint8_t)digit_rel(ch, b->ip[c.pos]);
        if (c.pos <= b->ni) c.pos++;
        return c;
    }
    char bd = c.pos < b->nf ? b->fp[c.pos] : '0';
    int r = digit_rel(ch, bd);
    if (r != EQ) return (struct cmp){2, (uint8_t)r, 0};
    if (c.pos < b->nf) c.pos++;
    return c;
}

/* The relation of the whole number read so far with the bound. */
static int cmp_final(const struct bound *b, struct cmp c)
{
    if (c.phase == 0) { /* no fraction read: the bound's fraction (if any) makes it larger */
        int r = int_rel(b, c);
        return r == EQ && b->nf ? LT : r;
    }
    if (c.phase == 2) return c.rel;
    return c.pos < b->nf ? LT : EQ;
}

static bool syn_step(struct syn *s, char ch, bool integer)
{
    if (ch == '.') {
        if (integer || (s->kind != 1 && s->kind != 2)) return false;
        s->kind = 3;
        return true;
    }
    if (s->digits >= NUM_DIGITS || s->kind == 1) return false;
    if (s->kind == 0)
        s->kind = ch == '0' ? 1 : 2;
    else if (s->kind == 3)
        s->kind = 4;
    s->digits++;
    return true;
}

/* ---- the product ----------------------------------------------------------------------------- */

struct pstate {
    struct syn s;
    struct cmp lo, hi;
};

struct product {
    struct gb *b;
    const struct bound *lo, *hi;
    bool integer;
    struct pstate *st; /* explored states; builder state of st[i] is base + i */
    int32_t n, cap;
    int32_t base;
    bool any_accept;
};

static int32_t find_or_add(struct product *p, struct pstate s, bool *fresh)
{
    *fresh = false;
    for (int32_t i = 0; i < p->n; i++) /* small: a few hundred states at most */
        if (!memcmp(&p->st[i], &s, sizeof s)) return i;
    if (p->n == p->cap) {
        p->cap = p->cap ? 2 * p->cap : 64;
        p->st = xrealloc(p->st, (size_t)p->cap * sizeof *p->st);
    }
    p->st[p->n] = s;
    *fresh = true;
    return p->n++;
}

static bool accepting(const struct product *p, struct pstate s)
{
    if (s.s.kind != 1 && s.s.kind != 2 && s.s.kind != 4) return false;
    if (p->lo->on) {
        int r = cmp_final(p->lo, s.lo);
        if (!(r == GT || (r == EQ && !p->lo->excl))) return false;
    }
    if (p->hi->on) {
        int r = cmp_final(p->hi, s.hi);
        if (!(r == LT || (r == EQ && !p->hi->excl))) return false;
    }
    return true;
}

/* Explores from the start; edges are recorded as (from, symbol, to) triples. */
static void explore(struct product *p, int32_t **edges, int32_t *n_edges)
{
    static const char symbols[] = "0123456789.";
    bool fresh;
    struct pstate start;
    memset(&start, 0, sizeof start);
    start.lo.rel = start.hi.rel = EQ; /* nothing read: equal so far */
    find_or_add(p, start, &fresh);
    int32_t cap = 0;
    for (int32_t i = 0; i < p->n && !p->b->failed; i++) {
        gb_spend(p->b, 11);
        for (int k = 0; k < 11; k++) {
            struct pstate s = p->st[i];
            if (!syn_step(&s.s, symbols[k], p->integer)) continue;
            s.lo = cmp_step(p->lo, s.lo, symbols[k]);
            s.hi = cmp_step(p->hi, s.hi, symbols[k]);
            int32_t j = find_or_add(p, s, &fresh);
            if (*n_edges + 3 > cap)
                *edges = xrealloc(*edges, (size_t)(cap = 2 * cap + 48) * sizeof **edges);
            (*edges)[(*n_edges)++] = i;
            (*edges)[(*n_edges)++] = k;
            (*edges)[(*n_edges)++] = j;
        }
    }
}

/* The magnitude automaton between lo and hi (either may be off) as a fragment. */
static struct gfrag magnitude(struct gb *b, const struct bound *lo, const struct bound *hi,
                              bool integer, bool *empty)
{
    struct product p = {.b = b, .lo = lo, .hi = hi, .integer = integer};
    int32_t *edges = NULL, n_edges = 0;
    explore(&p, &edges, &n_edges);
    struct gb_mark m = gb_mark(b);
    p.base = b->n_states;
    for (int32_t i = 0; i < p.n; i++) gb_state(b);
    int32_t out = gb_state(b);
    for (int32_t i = 0; i < n_edges; i += 3) {
        uint8_t c = (uint8_t) "0123456789."[edges[i + 1]];
        gb_bytes(b, p.base + edges[i], c, c, p.base + edges[i + 2], GB_CHAR_START);
    }
    *empty = true;
    for (int32_t i = 0; i < p.n; i++)
        if (accepting(&p, p.st[i])) gb_eps(b, p.base + i, out), *empty = false;
    free(edges);
    free(p.st);
    return gb_close(b, m, p.base, out);
}

/* ---- signs --------------------------------------------------------------------------------- */

static const struct bound NONE = {0};

struct gfrag gb_number(struct gb *b, bool integer, const char *min, bool excl_min, const char *max,
                       bool excl_max, const char *where)
{
    struct bound lo = NONE, hi = NONE;
    if ((min && !parse_bound(min, excl_min, &lo)) || (max && !parse_bound(max, excl_max, &hi)))
        return gb_fail(b, "%s: a bound is not a number", where), gb_empty(b);
    bool lo_pos = lo.on && !lo.neg && !is_zero(&lo), lo_zero = lo.on && is_zero(&lo);
    bool hi_neg = hi.on && hi.neg && !is_zero(&hi), hi_zero = hi.on && is_zero(&hi);
    /* x >= 0: lower bound only when it is above zero (or zero, exclusive) */
    bool nonneg = !hi_neg && !(hi_zero && hi.excl);
    /* x < 0: only when the lower bound allows it; |x| <= |lo|, |x| >= |hi| when hi < 0 */
    bool negative = !(lo.on && (lo_pos || lo_zero));
    struct gb_mark m = gb_mark(b);
    int32_t in = gb_state(b), out = gb_state(b);
    bool empty_pos = true, empty_neg = true;
    if (nonneg) {
        struct bound l = lo.on && (lo_pos || lo_zero) ? lo : NONE, h = hi.on && !hi.neg ? hi : NONE;
        if (hi_zero) h = hi;
        struct gfrag f = magnitude(b, &l, &h, integer, &empty_pos);
        gb_eps(b, in, f.in), gb_eps(b, f.out, out);
    }
    if (negative) {
        struct bound l = hi_neg ? hi : NONE, h = lo.on ? lo : NONE;
        if (!hi_neg) l = (struct bound){.on = true, .excl = true, .ip = "0", .ni = 1};
        l.neg = h.neg = false;
        struct gfrag minus = gb_lit(b, "-", 1);
        struct gfrag f = magnitude(b, &l, &h, integer, &empty_neg);
        gb_eps(b, in, minus.in), gb_eps(b, minus.out, f.in), gb_eps(b, f.out, out);
    }
    if (empty_pos && empty_neg)
        gb_fail(b, "%s: no %s with at most %d digits lies within minimum/maximum", where,
                integer ? "integer" : "number", NUM_DIGITS);
    return gb_close(b, m, in, out);
}
