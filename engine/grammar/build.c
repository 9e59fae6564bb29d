/* build: the NFA builder — states, edges, rules, Thompson fragments, counted repetition by
 * cloning, the character-count product, and code point ranges encoded as UTF-8 byte paths. */
#include "engine/grammar/build.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct gram_limits gram_limits_default(void)
{
    return (struct gram_limits){.max_states = 400000,
                                .max_edges = 1000000,
                                .max_dfa_states = 100000,
                                .max_work = 12000000,
                                .max_depth = 64,
                                .max_repeat = 10000,
                                .max_rules = 20000,
                                .class_depth = 32};
}

void gb_init(struct gb *b, const struct gram_limits *lim, int32_t n_vocab)
{
    memset(b, 0, sizeof *b);
    b->lim = lim ? *lim : gram_limits_default();
    b->n_vocab = n_vocab;
}

void gb_free(struct gb *b)
{
    for (int32_t i = 0; i < b->n_rules; i++) free(b->rule_name[i]);
    free(b->rule_name);
    free(b->rule_start);
    free(b->rule_accept);
    free(b->edges);
    memset(b, 0, sizeof *b);
}

int gb_fail(struct gb *b, const char *fmt, ...)
{
    if (b->failed) return -1;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(b->e.msg, sizeof b->e.msg, fmt, ap);
    va_end(ap);
    b->failed = true;
    return -1;
}

bool gb_spend(struct gb *b, int64_t n)
{
    if (b->failed) return false;
    b->work += n;
    if (b->work <= b->lim.max_work) return true;
    gb_fail(b, "the grammar is too complex to compile (more than %lld units of work)",
            (long long)b->lim.max_work);
    return false;
}

/* ---- rules --------------------------------------------------------------------------------- */

int32_t gb_rule(struct gb *b, const char *name)
{
    if (b->n_rules >= b->lim.max_rules) {
        gb_fail(b, "the grammar has more than %d rules", b->lim.max_rules);
        return b->n_rules ? 0 : -1;
    }
    if (b->n_rules == b->cap_rules) {
        b->cap_rules = b->cap_rules ? 2 * b->cap_rules : 16;
        b->rule_start = xrealloc(b->rule_start, (size_t)b->cap_rules * sizeof *b->rule_start);
        b->rule_accept = xrealloc(b->rule_accept, (size_t)b->cap_rules * sizeof *b->rule_accept);
        b->rule_name = xrealloc(b->rule_name, (size_t)b->cap_rules * sizeof *b->rule_name);
    }
    int32_t r = b->n_rules++;
    b->rule_start[r] = b->rule_accept[r] = -1;
    b->rule_name[r] = strdup(name ? name : "");
    if (!b->rule_name[r]) ERR_FATAL("out of memory");
    return r;
}

void gb_rule_define(struct gb *b, int32_t rule, struct gfrag f)
{
    if (b->failed || rule < 0) return;
    b->rule_start[rule] = f.in;
    b->rule_accept[rule] = f.out;
}

/* ---- states and edges ---------------------------------------------------------------------- */

int32_t gb_state(struct gb *b)
{
    if (b->failed) return 0;
    if (b->n_states >= b->lim.max_states) {
        gb_fail(b, "the grammar needs more than %d automaton states", b->lim.max_states);
        return 0;
    }
    return b->n_states++;
}

static void add_edge(struct gb *b, struct gb_edge e)
{
    if (b->failed) return;
    if (b->n_edges >= b->lim.max_edges) {
        gb_fail(b, "the grammar needs more than %d automaton edges", b->lim.max_edges);
        return;
    }
    if (b->n_edges == b->cap_edges) {
        b->cap_edges = b->cap_edges ? 2 * b->cap_edges : 256;
        b->edges = xrealloc(b->edges, (size_t)b->cap_edges * sizeof *b->edges);
    }
    b->edges[b->n_edges++] = e;
}

void gb_eps(struct gb *b, int32_t from, int32_t to)
{
    add_edge(b, (struct gb_edge){.from = from, .to = to, .kind = GB_EPS});
}

void gb_bytes(struct gb *b, int32_t from, uint8_t lo, uint8_t hi, int32_t to, uint8_t flags)
{
    add_edge(b, (struct gb_edge){
                    .from = from, .to = to, .kind = GB_BYTES, .lo = lo, .hi = hi, .flags = flags});
}

/* ---- fragments ----------------------------------------------------------------------------- */

struct gb_mark gb_mark(const struct gb *b)
{
    return (struct gb_mark){.s = b->n_states, .e = b->n_edges};
}

struct gfrag gb_close(const struct gb *b, struct gb_mark m, int32_t in, int32_t out)
{
    return (struct gfrag){
        .in = in, .out = out, .s0 = m.s, .s1 = b->n_states, .e0 = m.e, .e1 = b->n_edges};
}

struct gfrag gb_empty(struct gb *b)
{
    struct gb_mark m = gb_mark(b);
    int32_t s = gb_state(b);
    return gb_close(b, m, s, s);
}

struct gfrag gb_range(struct gb *b, uint8_t lo, uint8_t hi)
{
    struct gb_mark m = gb_mark(b);
    int32_t in = gb_state(b), out = gb_state(b);
    gb_bytes(b, in, lo, hi, out, lo < 0x80 || lo >= 0xC0 ? GB_CHAR_START : 0);
    return gb_close(b, m, in, out);
}

struct gfrag gb_lit(struct gb *b, const char *s, size_t n)
{
    struct gb_mark m = gb_mark(b);
    int32_t in = gb_state(b), at = in;
    for (size_t i = 0; i < n && !b->failed; i++) {
        uint8_t c = (uint8_t)s[i];
        int32_t next = gb_state(b);
        gb_bytes(b, at, c, c, next, (c & 0xC0) != 0x80 ? GB_CHAR_START : 0);
        at = next;
    }
    return gb_close(b, m, in, at);
}

struct gfrag gb_ref(struct gb *b, int32_t rule)
{
    struct gb_mark m = gb_mark(b);
    int32_t in = gb_state(b), out = gb_state(b);
    add_edge(b, (struct gb_edge){.from = in, .to = out, .kind = GB_RULE, .arg = rule});
    return gb_close(b, m, in, out);
}

struct gfrag gb_token(struct gb *b, int32_t token)
{
    struct gb_mark m = gb_mark(b);
    if (token < 0 || token >= b->n_vocab) gb_fail(b, "token id %d is not in the vocabulary", token);
    int32_t in = gb_state(b), out = gb_state(b);
    add_edge(b, (struct gb_edge){.from = in, .to = out, .kind = GB_TOKEN, .arg = token});
    return gb_close(b, m, in, out);
}

struct gfrag gb_seq(struct gb *b, struct gfrag a, struct gfrag c)
{
    gb_eps(b, a.out, c.in);
    return (struct gfrag){
        .in = a.in, .out = c.out, .s0 = a.s0, .s1 = b->n_states, .e0 = a.e0, .e1 = b->n_edges};
}

struct gfrag gb_alt(struct gb *b, struct gfrag a, struct gfrag c)
{
    int32_t in = gb_state(b), out = gb_state(b);
    gb_eps(b, in, a.in);
    gb_eps(b, in, c.in);
    gb_eps(b, a.out, out);
    gb_eps(b, c.out, out);
    return (struct gfrag){
        .in = in, .out = out, .s0 = a.s0, .s1 = b->n_states, .e0 = a.e0, .e1 = b->n_edges};
}

/* Wraps f with a new entry and exit; skip: entry → exit, loop: f's exit → f's entry. */
static struct gfrag wrap(struct gb *b, struct gfrag f, bool skip, bool loop)
{
    int32_t in = gb_state(b), out = gb_state(b);
    gb_eps(b, in, f.in);
    gb_eps(b, f.out, out);
    if (skip) gb_eps(b, in, out);
    if (loop) gb_eps(b, f.out, f.in);
    return (struct gfrag){
        .in = in, .out = out, .s0 = f.s0, .s1 = b->n_states, .e0 = f.e0, .e1 = b->n_edges};
}

struct gfrag gb_opt(struct gb *b, struct gfrag f)
{
    return wrap(b, f, true, false);
}

struct gfrag gb_star(struct gb *b, struct gfrag f)
{
    return wrap(b, f, true, true);
}

struct gfrag gb_plus(struct gb *b, struct gfrag f)
{
    return wrap(b, f, false, true);
}

struct gfrag gb_clone(struct gb *b, struct gfrag f)
{
    struct gb_mark m = gb_mark(b);
    int32_t n_s = f.s1 - f.s0, off = b->n_states - f.s0;
    if (!gb_spend(b, (int64_t)n_s + (f.e1 - f.e0))) return f;
    for (int32_t i = 0; i < n_s; i++) gb_state(b);
    for (int32_t i = f.e0; i < f.e1 && !b->failed; i++) {
        struct gb_edge e = b->edges[i];
        if (e.from < f.s0 || e.from >= f.s1 || e.to < f.s0 || e.to >= f.s1)
            ERR_FATAL("fragment edge %d leaves its fragment", (int)i);
        e.from += off;
        e.to += off;
        add_edge(b, e);
    }
    return gb_close(b, m, f.in + off, f.out + off);
}

struct gfrag gb_repeat(struct gb *b, struct gfrag f, int64_t min, int64_t max)
{
    if (min < 0 || (max >= 0 && max < min))
        return gb_fail(b, "bad repetition {%lld,%lld}", (long long)min, (long long)max), f;
    if (min > b->lim.max_repeat || max > b->lim.max_repeat)
        return gb_fail(b, "a repetition count above %d is not supported", b->lim.max_repeat), f;
    int64_t copies = max < 0 ? (min > 0 ? min : 1) : max;
    int64_t size = (int64_t)(f.s1 - f.s0) + (f.e1 - f.e0);
    if (copies * (size + 3) > (int64_t)b->lim.max_states)
        return gb_fail(b, "a repetition makes the grammar larger than %d states",
                       b->lim.max_states),
               f;
    if (max == 0) { /* zero copies: f's states stay unreachable */
        int32_t s = gb_state(b);
        return (struct gfrag){
            .in = s, .out = s, .s0 = f.s0, .s1 = b->n_states, .e0 = f.e0, .e1 = b->n_edges};
    }
    struct gfrag all = f, part = f;
    int32_t out = -1;
    /* part 1..min required; then optional copies (each may end the repetition), or a loop */
    for (int64_t i = 1; i < copies && !b->failed; i++) {
        struct gfrag c = gb_clone(b, part);
        gb_eps(b, part.out, c.in);
        part = c;
        all.out = c.out;
    }
    if (max < 0) {
        if (min == 0) return gb_star(b, f); /* copies == 1 here */
        gb_eps(b, part.out, part.in);       /* the last required copy loops */
        return (struct gfrag){.in = all.in,
                              .out = part.out,
                              .s0 = f.s0,
                              .s1 = b->n_states,
                              .e0 = f.e0,
                              .e1 = b->n_edges};
    }
    out = gb_state(b);
    gb_eps(b, all.out, out);
    /* copy k (1-based) starts at the exit of copy k-1: an exit after copy k-1 is allowed from
     * min on. Walk the copies again through their entry states. */
    int32_t n_s = f.s1 - f.s0, entry = f.in;
    for (int64_t k = 0; k < copies && !b->failed; k++) {
        if (k >= min && k > 0) gb_eps(b, entry, out);
        entry += n_s;
    }
    struct gfrag r = {
        .in = f.in, .out = out, .s0 = f.s0, .s1 = b->n_states, .e0 = f.e0, .e1 = b->n_edges};
    if (min == 0) r = gb_opt(b, r);
    return r;
}

struct gfrag gb_count_chars(struct gb *b, struct gfrag f, int64_t min, int64_t max)
{
    int64_t cap = max >= 0 ? max : min;
    int32_t n_s = f.s1 - f.s0;
    if (min > b->lim.max_repeat || max > b->lim.max_repeat)
        return gb_fail(b, "a length above %d is not supported", b->lim.max_repeat), f;
    if ((int64_t)n_s * (cap + 1) > (int64_t)b->lim.max_states ||
        (int64_t)(f.e1 - f.e0) * (cap + 1) > (int64_t)b->lim.max_edges)
        return gb_fail(b,
                       "a length bound on this pattern makes the grammar larger than %d "
                       "states",
                       b->lim.max_states),
               f;
    if (!gb_spend(b, ((int64_t)n_s + (f.e1 - f.e0)) * (cap + 1))) return f;
    struct gb_mark m = gb_mark(b);
    int32_t base = b->n_states, w = (int32_t)cap + 1;
    for (int64_t i = 0; i < (int64_t)n_s * w; i++) gb_state(b);
    for (int32_t c = 0; c < w && !b->failed; c++)
        for (int32_t i = f.e0; i < f.e1 && !b->failed; i++) {
            struct gb_edge e = b->edges[i];
            int32_t c2 = c;
            if (e.kind == GB_BYTES && (e.flags & GB_CHAR_START)) {
                if (c < cap)
                    c2 = c + 1;
                else if (max >= 0)
                    continue; /* one character too many */
            }
            e.from = base + (e.from - f.s0) * w + c;
            e.to = base + (e.to - f.s0) * w + c2;
            add_edge(b, e);
        }
    int32_t out = gb_state(b);
    for (int64_t c = min; c <= cap; c++) gb_eps(b, base + (f.out - f.s0) * w + (int32_t)c, out);
    return gb_close(b, m, base + (f.in - f.s0) * w, out);
}

/* ---- characters ---------------------------------------------------------------------------- */

#define CP_MAX 0x10FFFFu

static int cmp_range(const void *a, const void *c)
{
    const struct gb_cprange *x = a, *y = c;
    return (x->lo > y->lo) - (x->lo < y->lo);
}

/* Sorted, merged, clipped to Unicode scalar values (surrogates removed); returns the count.
 * out needs room for n + 1 ranges. */
static int normalize(const struct gb_cprange *r, int n, struct gb_cprange *out)
{
    int k = 0;
    for (int i = 0; i < n; i++) {
        if (r[i].lo > r[i].hi || r[i].lo > CP_MAX) continue;
        out[k++] = (struct gb_cprange){r[i].lo, r[i].hi > CP_MAX ? CP_MAX : r[i].hi};
    }
    qsort(out, (size_t)k, sizeof *out, cmp_range);
    int m = 0;
    for (int i = 0; i < k; i++) {
        if (m && out[i].lo <= out[m - 1].hi + 1) {
            if (out[i].hi > out[m - 1].hi) out[m - 1].hi = out[i].hi;
        } else {
            out[m++] = out[i];
        }
    }
    for (int i = 0; i < m; i++) /* cut out D800..DFFF: at most one range straddles it */
        if (out[i].lo <= 0xDFFF && out[i].hi >= 0xD800) {
            struct gb_cprange r0 = out[i];
            if (r0.lo < 0xD800 && r0.hi > 0xDFFF) {
                memmove(out + i + 2, out + i + 1, (size_t)(m - i - 1) * sizeof *out);
                out[i] = (struct gb_cprange){r0.lo, 0xD7FF};
                out[i + 1] = (struct gb_cprange){0xE000, r0.hi};
                m++;
                break;
            }
            if (r0.lo >= 0xD800 && r0.hi <= 0xDFFF) {
                memmove(out + i, out + i + 1, (size_t)(m - i - 1) * sizeof *out);
                m--, i--;
                continue;
            }
            if (r0.lo < 0xD800)
                out[i].hi = 0xD7FF;
            else
                out[i].lo = 0xE000;
        }
    return m;
}

static int utf8_encode(uint32_t c, uint8_t *o)
{
    if (c < 0x80) return o[0] = (uint8_t)c, 1;
    if (c < 0x800) return o[0] = (uint8_t)(0xC0 | c >> 6), o[1] = (uint8_t)(0x80 | (c & 63)), 2;
    if (c < 0x10000) {
        o[0] = (uint8_t)(0xE0 | c >> 12), o[1] = (uint8_t)(0x80 | (c >> 6 & 63));
        o[2] = (uint8_t)(0x80 | (c & 63));
        return 3;
    }
    o[0] = (uint8_t)(0xF0 | c >> 18), o[1] = (uint8_t)(0x80 | (c >> 12 & 63));
    o[2] = (uint8_t)(0x80 | (c >> 6 & 63)), o[3] = (uint8_t)(0x80 | (c & 63));
    return 4;
}

/* A path in → ... → out through the byte ranges [lo[i], hi[i]], the first byte flagged. */
static void byte_path(struct gb *b, int32_t in, int32_t out, const uint8_t *lo, const uint8_t *hi,
                      int n)
{
    int32_t at = in;
    for (int i = 0; i < n; i++) {
        int32_t next = i == n - 1 ? out : gb_state(b);
        gb_bytes(b, at, lo[i], hi[i], next, i == 0 ? GB_CHAR_START : 0);
        at = next;
    }
}

/* Emits [lo, hi] (same encoded length, no surrogates) as byte-range paths. */
static void utf8_paths(struct gb *b, int32_t in, int32_t out, uint32_t lo, uint32_t hi)
{
    static const uint32_t last_of_len[3] = {0x7F, 0x7FF, 0xFFFF};
    if (lo > hi || b->failed) return;
    for (int i = 0; i < 3; i++)
        if (lo <= last_of_len[i] && hi > last_of_len[i]) {
            utf8_paths(b, in, out, lo, last_of_len[i]);
            utf8_paths(b, in, out, last_of_len[i] + 1, hi);
            return;
        }
    uint8_t a[4], z[4];
    int n = utf8_encode(lo, a);
    for (int i = 1; i < n; i++) {
        uint32_t m = (1u << (6 * i)) - 1;
        if ((lo & ~m) == (hi & ~m)) continue;
        if (lo & m) {
            utf8_paths(b, in, out, lo, lo | m);
            utf8_paths(b, in, out, (lo | m) + 1, hi);
            return;
        }
        if ((hi & m) != m) {
            utf8_paths(b, in, out, lo, (hi & ~m) - 1);
            utf8_paths(b, in, out, hi & ~m, hi);
            return;
        }
    }
    utf8_encode(hi, z);
    byte_path(b, in, out, a, z, n);
}

/* The JSON spelling of a character that must be escaped ('"', '\\', controls). */
static int json_escape(uint32_t c, char *o)
{
    static const char hex[] = "0123456789abcdef";
    switch (c) {
    case '"':
        return memcpy(o, "\\\"", 2), 2;
    case '\\':
        return memcpy(o, "\\\\", 2), 2;
    case '\b':
        return memcpy(o, "\\b", 2), 2;
    case '\f':
        return memcpy(o, "\\f", 2), 2;
    case '\n':
        return memcpy(o, "\\n", 2), 2;
    case '\r':
        return memcpy(o, "\\r", 2), 2;
    case '\t':
        return memcpy(o, "\\t", 2), 2;
    default:
        memcpy(o, "\\u00", 4);
        o[4] = hex[c >> 4], o[5] = hex[c & 15];
        return 6;
    }
}

static bool needs_escape(uint32_t c)
{
    return c < 0x20 || c == '"' || c == '\\';
}

/* An escape sequence as a path in → out; only its first byte starts the character. */
static void escape_path(struct gb *b, int32_t in, int32_t out, uint32_t c)
{
    char s[8];
    uint8_t lo[8];
    int n = json_escape(c, s);
    memcpy(lo, s, (size_t)n);
    byte_path(b, in, out, lo, lo, n);
}

struct gfrag gb_chars(struct gb *b, const struct gb_cprange *r, int n, enum gb_text mode)
{
    struct gb_mark m = gb_mark(b);
    int32_t in = gb_state(b), out = gb_state(b);
    struct gb_cprange *norm = xmalloc(((size_t)n + 2) * sizeof *norm);
    int k = normalize(r, n, norm);
    if (gb_spend(b, k + 1))
        for (int i = 0; i < k && !b->failed; i++) {
            uint32_t lo = norm[i].lo, hi = norm[i].hi;
            if (mode == GB_JSON) /* escaped characters one by one, the rest as plain UTF-8 */
                for (; lo <= hi && lo < 0x80 && needs_escape(lo); lo++) escape_path(b, in, out, lo);
            while (mode == GB_JSON && lo <= hi && lo < 0x80) {
                uint32_t end = lo;
                while (end < hi && end + 1 < 0x80 && !needs_escape(end + 1)) end++;
                utf8_paths(b, in, out, lo, end);
                lo = end + 1;
                for (; lo <= hi && lo < 0x80 && needs_escape(lo); lo++) escape_path(b, in, out, lo);
            }
            if (lo <= hi) utf8_paths(b, in, out, lo, hi);
        }
    free(norm);
    return gb_close(b, m, in, out);
}

struct gfrag gb_json_string_lit(struct gb *b, const char *s, size_t n)
{
    char *t = xmalloc(6 * n + 3);
    size_t k = 0;
    t[k++] = '"';
    for (size_t i = 0; i < n; i++) {
        uint8_t c = (uint8_t)s[i];
        if (needs_escape(c))
            k += (size_t)json_escape(c, t + k);
        else
            t[k++] = (char)c;
    }
    t[k++] = '"';
    struct gfrag f = gb_lit(b, t, k);
    free(t);
    return f;
}
