/* schema: JSON Schema trees → builder rules.
 *
 * Every node is inlined into its parent's rule, so each rule is one determinised automaton and
 * alternatives (anyOf, type unions) share prefixes instead of running as parallel parses. Rules
 * of their own are made for $defs (reached through $ref, possibly recursively), for array items
 * that repeat, and for the generic JSON value. A rule's body is built in one go; rules met while
 * building one are queued and built afterwards (fragments never interleave). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/grammar/gram_internal.h"
#include "engine/grammar/numrange.h"
#include "engine/grammar/regex.h"
#include "engine/grammar/schema_build.h"

struct pending {
    const struct jss *s; /* NULL: the generic value */
    const struct jss_doc *d;
    int32_t rule;
    int depth; /* nesting where the rule was met: depth limits hold across rules */
    bool object_only;
};

struct item_rule {
    const struct jss *s;
    int32_t rule;
};

struct jsc {
    struct gb *b;
    enum gram_ws ws;
    int32_t value_rule, object_rule;
    const struct jss_doc *d; /* the document being compiled */
    int32_t *def_rule;       /* [d->n_defs] */
    struct item_rule *items;
    int32_t n_items, cap_items;
    struct pending *todo;
    int32_t n_todo, cap_todo;
    int depth;
};

/* Regular expressions of the supported formats, as Python's jsonschema checks them: calendar
 * dates (leap years included; year 0000 is not a date), RFC 3339 times with an offset, UUIDs,
 * and bounded e-mail addresses (the checker only wants an '@'). */
#define LEAP "([0-9][0-9](0[48]|[2468][048]|[13579][26])|(0[48]|[2468][048]|[13579][26])00)"
#define YEAR "([1-9][0-9]{3}|0[1-9][0-9]{2}|00[1-9][0-9]|000[1-9])"
#define DATE                                                                                       \
    "(" YEAR "-((0[13578]|1[02])-(0[1-9]|[12][0-9]|3[01])|(0[469]|11)-(0[1-9]|[12][0-9]|30)"       \
    "|02-(0[1-9]|1[0-9]|2[0-8]))|" LEAP "-02-29)"
#define TIME                                                                                       \
    "([01][0-9]|2[0-3]):[0-5][0-9]:[0-5][0-9](\\.[0-9]{1,6})?(Z|[+-]([01][0-9]|2[0-3]):[0-5][0-9]" \
    ")"
static const char *const FORMAT_RE[] = {
    [JSS_FMT_DATE] = DATE,
    [JSS_FMT_TIME] = TIME,
    [JSS_FMT_DATE_TIME] = DATE "T" TIME,
    [JSS_FMT_UUID] = "[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}",
    [JSS_FMT_EMAIL] =
        "[A-Za-z0-9._%+-]{1,32}@[A-Za-z0-9-]{1,32}(\\.[A-Za-z0-9-]{1,32}){0,2}\\.[A-Za-z]{2,8}",
};
static const char *const FORMAT_NAME[] = {[JSS_FMT_DATE] = "date",
                                          [JSS_FMT_TIME] = "time",
                                          [JSS_FMT_DATE_TIME] = "date-time",
                                          [JSS_FMT_UUID] = "uuid",
                                          [JSS_FMT_EMAIL] = "email"};

struct jss jss_default(const char *path)
{
    return (struct jss){.path = path,
                        .ref = -1,
                        .types = JSS_ANY,
                        .n_values = -1,
                        .max_length = -1,
                        .max_items = -1};
}

/* ---- rules made on demand -------------------------------------------------------------------- */

static int32_t queue_rule(struct jsc *c, const struct jss *s, const char *name, bool object_only)
{
    int32_t r = gb_rule(c->b, name);
    if (c->n_todo == c->cap_todo) {
        c->cap_todo = c->cap_todo ? 2 * c->cap_todo : 16;
        c->todo = xrealloc(c->todo, (size_t)c->cap_todo * sizeof *c->todo);
    }
    c->todo[c->n_todo++] = (struct pending){
        .s = s, .d = c->d, .rule = r, .depth = c->depth, .object_only = object_only};
    return r;
}

static int32_t value_rule(struct jsc *c)
{
    if (c->value_rule < 0) c->value_rule = queue_rule(c, NULL, "json value", false);
    return c->value_rule;
}

int32_t jsc_object_rule(struct jsc *c)
{
    if (c->object_rule < 0) c->object_rule = queue_rule(c, NULL, "json object", true);
    return c->object_rule;
}

static int32_t def_rule(struct jsc *c, int ref)
{
    if (ref >= c->d->n_defs) {
        gb_fail(c->b, "$ref %d is outside the definitions", ref);
        return 0;
    }
    if (c->def_rule[ref] < 0) {
        const struct jss *s = c->d->defs[ref];
        c->def_rule[ref] = queue_rule(c, s, s->path ? s->path : "$defs", false);
    }
    return c->def_rule[ref];
}

static int32_t item_rule(struct jsc *c, const struct jss *s)
{
    for (int32_t i = 0; i < c->n_items; i++)
        if (c->items[i].s == s) return c->items[i].rule;
    if (c->n_items == c->cap_items) {
        c->cap_items = c->cap_items ? 2 * c->cap_items : 8;
        c->items = xrealloc(c->items, (size_t)c->cap_items * sizeof *c->items);
    }
    int32_t r = queue_rule(c, s, s->path ? s->path : "items", false);
    c->items[c->n_items++] = (struct item_rule){s, r};
    return r;
}

/* ---- small pieces ---------------------------------------------------------------------------- */

static struct gfrag sep(struct jsc *c, const char *s)
{
    struct gfrag f = gb_lit(c->b, s, 1);
    if (c->ws == GRAM_WS_COMPACT) f = gb_seq(c->b, f, gb_opt(c->b, gb_lit(c->b, " ", 1)));
    return f;
}

struct gfrag jsc_sep_item(struct jsc *c)
{
    return sep(c, ",");
}

struct gfrag jsc_sep_key(struct jsc *c)
{
    return sep(c, ":");
}

static struct gfrag any_char(struct gb *b)
{
    struct gb_cprange all = {0, 0x10FFFF};
    return gb_chars(b, &all, 1, GB_JSON);
}

static struct gfrag quoted(struct gb *b, struct gfrag content_builder(struct gb *, const void *),
                           const void *arg)
{
    struct gfrag f = gb_lit(b, "\"", 1);
    f = gb_seq(b, f, content_builder(b, arg));
    return gb_seq(b, f, gb_lit(b, "\"", 1));
}

static struct gfrag any_content(struct gb *b, const void *arg)
{
    (void)arg;
    return gb_star(b, any_char(b));
}

/* ---- values ---------------------------------------------------------------------------------- */

static struct gfrag value(struct jsc *c, const struct jss *s);

static const char *where(const struct jss *s)
{
    return s->path && s->path[0] ? s->path : "schema";
}

struct string_args {
    struct jsc *c;
    const struct jss *s;
};

static struct gfrag string_content(struct gb *b, const void *arg)
{
    const struct string_args *a = arg;
    const struct jss *s = a->s;
    char at[300];
    bool bounded = s->min_length > 0 || s->max_length >= 0;
    if (s->pattern) {
        snprintf(at, sizeof at, "%s.pattern", where(s));
        struct gfrag f = rx_build(b, s->pattern, strlen(s->pattern), GB_JSON, true, at);
        return bounded ? gb_count_chars(b, f, s->min_length, s->max_length) : f;
    }
    if (s->format != JSS_FMT_NONE) {
        snprintf(at, sizeof at, "%s.format", where(s));
        const char *re = FORMAT_RE[s->format];
        struct gfrag f = rx_build(b, re, strlen(re), GB_JSON, false, at);
        return bounded ? gb_count_chars(b, f, s->min_length, s->max_length) : f;
    }
    return gb_repeat(b, any_char(b), s->min_length, s->max_length);
}

/* A count keyword past the repetition limit, named. */
static bool too_many(struct jsc *c, const struct jss *s, const char *kw, int64_t v)
{
    if (v <= c->b->lim.max_repeat) return false;
    gb_fail(c->b, "%s: %s above %d is not supported", where(s), kw, c->b->lim.max_repeat);
    return true;
}

static struct gfrag string_value(struct jsc *c, const struct jss *s)
{
    if (too_many(c, s, "minLength", s->min_length) || too_many(c, s, "maxLength", s->max_length))
        return gb_empty(c->b);
    if (s->max_length >= 0 && s->max_length < s->min_length)
        return gb_fail(c->b, "%s: minLength is above maxLength", where(s)), gb_empty(c->b);
    if (s->pattern && s->format != JSS_FMT_NONE)
        return gb_fail(c->b, "%s: pattern together with format %s is not supported", where(s),
                       FORMAT_NAME[s->format]),
               gb_empty(c->b);
    struct string_args a = {c, s};
    return quoted(c->b, string_content, &a);
}

/* Content of a key that is none of the declared property names: a trie over their code
 * points; leaving it by any other character makes the key free, and a key may end anywhere but
 * at the end of a declared name. */
struct knode {
    int32_t state, child, sibling;
    uint32_t cp;
    bool ends;
};

static int32_t knode_child(struct gb *b, struct knode **t, int32_t *n, int32_t *cap, int32_t at,
                           uint32_t cp)
{
    for (int32_t j = (*t)[at].child; j >= 0; j = (*t)[j].sibling)
        if ((*t)[j].cp == cp) return j;
    if (*n == *cap) *t = xrealloc(*t, (size_t)(*cap *= 2) * sizeof **t);
    int32_t j = (*n)++;
    (*t)[j] =
        (struct knode){.state = gb_state(b), .child = -1, .sibling = (*t)[at].child, .cp = cp};
    (*t)[at].child = j;
    return j;
}

static uint32_t next_cp(const uint8_t *p, size_t len, size_t *k)
{
    uint32_t cp = p[(*k)++];
    if (cp < 0x80) return cp;
    int extra = cp >= 0xF0 ? 3 : cp >= 0xE0 ? 2 : 1;
    cp &= 0x3Fu >> extra;
    for (int e = 0; e < extra && *k < len; e++) cp = cp << 6 | (p[(*k)++] & 0x3F);
    return cp;
}

static int cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return (x > y) - (x < y);
}

/* Edges out of trie node i: each child's character, and every other character to free_. */
static void knode_edges(struct gb *b, const struct knode *t, int32_t i, int32_t free_, int32_t out)
{
    int32_t n_kids = 0;
    for (int32_t j = t[i].child; j >= 0; j = t[j].sibling) n_kids++;
    uint32_t *kids = xmalloc(((size_t)n_kids + 1) * sizeof *kids);
    struct gb_cprange *other = xmalloc(((size_t)n_kids + 1) * sizeof *other);
    n_kids = 0;
    for (int32_t j = t[i].child; j >= 0; j = t[j].sibling) {
        kids[n_kids++] = t[j].cp;
        struct gb_cprange one = {t[j].cp, t[j].cp};
        struct gfrag e = gb_chars(b, &one, 1, GB_JSON);
        gb_eps(b, t[i].state, e.in), gb_eps(b, e.out, t[j].state);
    }
    qsort(kids, (size_t)n_kids, sizeof *kids, cmp_u32);
    int32_t n_other = 0;
    uint32_t lo = 0;
    for (int32_t k = 0; k < n_kids; k++) {
        if (kids[k] > lo) other[n_other++] = (struct gb_cprange){lo, kids[k] - 1};
        lo = kids[k] + 1;
    }
    if (lo <= 0x10FFFF) other[n_other++] = (struct gb_cprange){lo, 0x10FFFF};
    struct gfrag e = gb_chars(b, other, n_other, GB_JSON);
    gb_eps(b, t[i].state, e.in), gb_eps(b, e.out, free_);
    if (!t[i].ends) gb_eps(b, t[i].state, out);
    free(kids);
    free(other);
}

static struct gfrag other_key(struct gb *b, const struct jss *s)
{
    struct gb_mark m = gb_mark(b);
    int32_t root = gb_state(b), out = gb_state(b), free_ = gb_state(b);
    struct gfrag tail = gb_star(b, any_char(b));
    gb_eps(b, free_, tail.in), gb_eps(b, tail.out, out);
    int32_t cap = 16, n = 1;
    struct knode *t = xmalloc((size_t)cap * sizeof *t);
    t[0] = (struct knode){.state = root, .child = -1, .sibling = -1};
    for (int i = 0; i < s->n_props && gb_spend(b, (int64_t)s->props[i].name_len + 1); i++) {
        const uint8_t *p = (const uint8_t *)s->props[i].name;
        size_t len = s->props[i].name_len, k = 0;
        int32_t at = 0;
        while (k < len) at = knode_child(b, &t, &n, &cap, at, next_cp(p, len, &k));
        t[at].ends = true;
    }
    for (int32_t i = 0; i < n && !b->failed; i++) knode_edges(b, t, i, free_, out);
    free(t);
    return gb_close(b, m, root, out);
}

static struct gfrag other_key_quoted(struct gb *b, const void *arg)
{
    return other_key(b, arg);
}

/* One property: KEY sep VALUE, entered from `from` states. */
static struct gfrag member(struct jsc *c, struct gfrag key, const struct jss *v)
{
    struct gfrag f = gb_seq(c->b, key, jsc_sep_key(c));
    return gb_seq(c->b, f, value(c, v));
}

/* Properties in order. A: nothing written yet, B: something written (the next needs a comma);
 * each property is reached from A directly or from B through a separator, and may be skipped
 * unless required. Other properties, when allowed, loop at the end. */
static struct gfrag object_value(struct jsc *c, const struct jss *s)
{
    struct gb *b = c->b;
    struct gb_mark m = gb_mark(b);
    struct gfrag open = gb_lit(b, "{", 1);
    int32_t A = gb_state(b), B = gb_state(b);
    gb_eps(b, open.out, A);
    for (int i = 0; i <= s->n_props && !b->failed; i++) {
        bool extra = i == s->n_props;
        if (extra && !s->additional) break;
        int32_t K = gb_state(b), A2 = extra ? A : gb_state(b), B2 = extra ? B : gb_state(b);
        struct gfrag comma = jsc_sep_item(c);
        gb_eps(b, A, K), gb_eps(b, B, comma.in), gb_eps(b, comma.out, K);
        struct gfrag key = extra ? quoted(b, other_key_quoted, s)
                                 : gb_json_string_lit(b, s->props[i].name, s->props[i].name_len);
        struct gfrag mem = member(c, key, extra ? s->additional : s->props[i].schema);
        gb_eps(b, K, mem.in), gb_eps(b, mem.out, B2);
        if (!extra && !s->props[i].required) gb_eps(b, A, A2), gb_eps(b, B, B2);
        A = A2, B = B2;
    }
    struct gfrag close = gb_lit(b, "}", 1);
    gb_eps(b, A, close.in), gb_eps(b, B, close.in);
    return gb_close(b, m, open.in, close.out);
}

/* Element i of an array: a prefix item inline, the rest through the items rule. */
static struct gfrag element(struct jsc *c, const struct jss *s, int64_t i)
{
    if (i < s->n_prefix_items) return value(c, s->prefix_items[i]);
    return gb_ref(c->b, s->items ? item_rule(c, s->items) : value_rule(c));
}

/* A separator, then element i. (Fragments are built one statement at a time: C leaves the order
 * in which a call's arguments are evaluated open, and fragments must be built in order.) */
static struct gfrag after_sep(struct jsc *c, const struct jss *s, int64_t i)
{
    struct gfrag f = jsc_sep_item(c);
    return gb_seq(c->b, f, element(c, s, i));
}

static struct gfrag boolean(struct gb *b)
{
    struct gfrag f = gb_lit(b, "true", 4);
    return gb_alt(b, f, gb_lit(b, "false", 5));
}

static struct gfrag array_value(struct jsc *c, const struct jss *s)
{
    struct gb *b = c->b;
    int64_t lo = s->min_items, hi = s->max_items, k = s->n_prefix_items;
    if (too_many(c, s, "minItems", lo) || too_many(c, s, "maxItems", hi)) return gb_empty(b);
    if (s->no_more_items && (hi < 0 || hi > k)) hi = k;
    if (hi >= 0 && lo > hi)
        return gb_fail(b, "%s: no array length satisfies minItems, maxItems and items", where(s)),
               gb_empty(b);
    int64_t n_pos = hi >= 0 ? hi : (k > lo ? k : lo) > 1 ? (k > lo ? k : lo) : 1;
    if (n_pos > b->lim.max_repeat) /* prefixItems alone */
        return gb_fail(b, "%s: more than %d prefixItems are not supported", where(s),
                       b->lim.max_repeat),
               gb_empty(b);
    struct gb_mark m = gb_mark(b);
    struct gfrag open = gb_lit(b, "[", 1);
    int32_t at = open.out, close_in = gb_state(b);
    for (int64_t i = 0; i < n_pos && !b->failed; i++) {
        if (i >= lo) gb_eps(b, at, close_in);
        struct gfrag e = i ? after_sep(c, s, i) : element(c, s, i);
        gb_eps(b, at, e.in);
        at = e.out;
    }
    if (hi < 0 && !b->failed) { /* more items, each after a separator */
        struct gfrag e = after_sep(c, s, n_pos);
        gb_eps(b, at, e.in), gb_eps(b, e.out, at);
    }
    gb_eps(b, at, close_in);
    struct gfrag close = gb_lit(b, "]", 1);
    gb_eps(b, close_in, close.in);
    return gb_close(b, m, open.in, close.out);
}

static bool is_unconstrained(const struct jss *s)
{
    return s->types == JSS_ANY && s->min_length == 0 && s->max_length < 0 && !s->pattern &&
           s->format == JSS_FMT_NONE && !s->minimum && !s->maximum && !s->n_prefix_items &&
           !s->items && !s->no_more_items && s->min_items == 0 && s->max_items < 0 && !s->n_props &&
           !s->additional;
}

static struct gfrag typed_value(struct jsc *c, const struct jss *s)
{
    struct gb *b = c->b;
    if (!s->types) return gb_fail(b, "%s: no value satisfies this schema", where(s)), gb_empty(b);
    if (is_unconstrained(s)) return gb_ref(b, value_rule(c));
    struct gb_mark m = gb_mark(b);
    int32_t in = gb_state(b), out = gb_state(b);
    for (unsigned t = 1; t < JSS_ANY && !b->failed; t <<= 1) {
        if (!(s->types & t) || (t == JSS_INTEGER && (s->types & JSS_NUMBER))) continue;
        struct gfrag f;
        switch (t) {
        case JSS_NULL:
            f = gb_lit(b, "null", 4);
            break;
        case JSS_BOOLEAN:
            f = boolean(b);
            break;
        case JSS_INTEGER:
        case JSS_NUMBER:
            f = gb_number(b, t == JSS_INTEGER, s->minimum, s->exclusive_minimum, s->maximum,
                          s->exclusive_maximum, where(s));
            break;
        case JSS_STRING:
            f = string_value(c, s);
            break;
        case JSS_ARRAY:
            f = array_value(c, s);
            break;
        default:
            f = object_value(c, s);
            break;
        }
        gb_eps(b, in, f.in), gb_eps(b, f.out, out);
    }
    return gb_close(b, m, in, out);
}

static struct gfrag value(struct jsc *c, const struct jss *s)
{
    struct gb *b = c->b;
    if (++c->depth > b->lim.max_depth) {
        c->depth--;
        return gb_fail(b, "%s: the schema is nested deeper than %d levels", where(s),
                       b->lim.max_depth),
               gb_empty(b);
    }
    struct gfrag f;
    if (s->ref >= 0) {
        f = gb_ref(b, def_rule(c, s->ref));
    } else if (s->n_any_of > 0) {
        f = value(c, s->any_of[0]);
        for (int i = 1; i < s->n_any_of && !b->failed; i++)
            f = gb_alt(b, f, value(c, s->any_of[i]));
    } else if (s->n_values >= 0) {
        if (!s->n_values) gb_fail(b, "%s: enum has no value of an allowed type", where(s));
        f = gb_empty(b);
        for (int i = 0; i < s->n_values && !b->failed; i++) {
            struct gfrag v = gb_lit(b, s->values[i], strlen(s->values[i]));
            f = i ? gb_alt(b, f, v) : v;
        }
    } else {
        f = typed_value(c, s);
    }
    c->depth--;
    return f;
}

/* ---- generic JSON ---------------------------------------------------------------------------- */

static struct gfrag generic_object(struct jsc *c)
{
    struct gb *b = c->b;
    struct gb_mark m = gb_mark(b);
    struct gfrag open = gb_lit(b, "{", 1);
    int32_t A = gb_state(b), B = gb_state(b), K = gb_state(b);
    gb_eps(b, open.out, A);
    struct gfrag comma = jsc_sep_item(c);
    gb_eps(b, A, K), gb_eps(b, B, comma.in), gb_eps(b, comma.out, K);
    struct gfrag key = quoted(b, any_content, NULL);
    struct gfrag f = gb_seq(b, key, jsc_sep_key(c));
    f = gb_seq(b, f, gb_ref(b, value_rule(c)));
    gb_eps(b, K, f.in), gb_eps(b, f.out, B);
    struct gfrag close = gb_lit(b, "}", 1);
    gb_eps(b, A, close.in), gb_eps(b, B, close.in);
    return gb_close(b, m, open.in, close.out);
}

static struct gfrag generic_array(struct jsc *c)
{
    struct gb *b = c->b;
    struct gfrag open = gb_lit(b, "[", 1);
    struct gfrag first = gb_ref(b, value_rule(c));
    struct gfrag more = jsc_sep_item(c);
    more = gb_star(b, gb_seq(b, more, gb_ref(b, value_rule(c))));
    struct gfrag f = gb_seq(b, open, gb_opt(b, gb_seq(b, first, more)));
    return gb_seq(b, f, gb_lit(b, "]", 1));
}

static struct gfrag generic_value(struct jsc *c)
{
    struct gb *b = c->b;
    struct gfrag f = generic_object(c);
    f = gb_alt(b, f, generic_array(c));
    f = gb_alt(b, f, quoted(b, any_content, NULL));
    f = gb_alt(b, f, gb_number(b, false, NULL, false, NULL, false, "number"));
    f = gb_alt(b, f, gb_lit(b, "true", 4));
    f = gb_alt(b, f, gb_lit(b, "false", 5));
    return gb_alt(b, f, gb_lit(b, "null", 4));
}

/* ---- documents ------------------------------------------------------------------------------- */

struct jsc *jsc_create(struct gb *b, enum gram_ws ws)
{
    struct jsc *c = xcalloc(1, sizeof *c);
    c->b = b;
    c->ws = ws;
    c->value_rule = c->object_rule = -1;
    return c;
}

void jsc_destroy(struct jsc *c)
{
    if (!c) return;
    free(c->def_rule);
    free(c->items);
    free(c->todo);
    free(c);
}

/* Whether s is one of d's definitions (their depth starts afresh: a recursive schema reaches
 * them again and again). */
static bool is_def(const struct jss_doc *d, const struct jss *s)
{
    for (int i = 0; i < d->n_defs; i++)
        if (d->defs[i] == s) return true;
    return false;
}

/* Builds every queued rule (building one may queue more). */
static void drain(struct jsc *c)
{
    for (int32_t i = 0; i < c->n_todo && !c->b->failed; i++) {
        struct pending p = c->todo[i];
        struct gfrag f;
        if (p.s) {
            const struct jss_doc *saved = c->d;
            c->d = p.d; /* a def or item rule belongs to the document it came from */
            c->depth = p.s->ref >= 0 || !p.d || !is_def(p.d, p.s) ? p.depth : 0;
            f = value(c, p.s);
            c->d = saved;
            c->depth = 0;
        } else {
            f = p.object_only ? generic_object(c) : generic_value(c);
        }
        gb_rule_define(c->b, p.rule, f);
    }
    c->n_todo = 0;
}

void jsc_finish(struct jsc *c)
{
    drain(c);
}

int32_t jsc_doc_rule(struct jsc *c, const struct jss_doc *d, const char *name)
{
    c->d = d;
    free(c->def_rule);
    c->def_rule = xmalloc(((size_t)d->n_defs + 1) * sizeof *c->def_rule);
    for (int i = 0; i < d->n_defs; i++) c->def_rule[i] = -1;
    int32_t r = gb_rule(c->b, name);
    gb_rule_define(c->b, r, value(c, d->root));
    drain(c);
    return r;
}

struct gram *gram_from_schema(const struct jss_doc *d, enum gram_ws ws,
                              const struct gram_limits *lim, struct err *e)
{
    struct gb b;
    gb_init(&b, lim, 0);
    struct jsc *c = jsc_create(&b, ws);
    int32_t root = jsc_doc_rule(c, d, "root");
    jsc_destroy(c);
    return gram_compile(&b, root, e);
}

struct gram *gram_json_object(enum gram_ws ws, const struct gram_limits *lim, struct err *e)
{
    struct gb b;
    gb_init(&b, lim, 0);
    struct jsc *c = jsc_create(&b, ws);
    int32_t root = jsc_object_rule(c);
    drain(c);
    jsc_destroy(c);
    return gram_compile(&b, root, e);
}
