/* build: the grammar builder every source compiles into — rules made of NFA fragments over bytes.
 *
 * A grammar is a set of rules; each rule is an automaton whose edges consume one byte range,
 * one special token, or a whole sub-rule (a reference, which makes the grammar context-free).
 * Sources (JSON Schema, regular expressions, GBNF, choice lists, tool-call formats) build their
 * rules out of Thompson-style fragments:
 *
 *     struct gb_mark m = gb_mark(b);      remember where this fragment starts
 *     ... build the children, in order ...
 *     return gb_close(b, m, in, out);     the fragment spans everything built since the mark
 *
 * Every fragment owns the contiguous range of states and edges made while it was built, so it
 * can be cloned (counted repetition) by copying that range. Children must therefore be built one
 * after the other, never interleaved.
 *
 * Limits. Everything a request can make grow (states, edges, work) is counted against
 * struct gram_limits; the first excess marks the builder failed with a message, later calls
 * become no-ops returning dummy fragments, and gram_compile reports the message. So callers need
 * not check each call. */
#ifndef SEEKD_GRAMMAR_BUILD_H
#define SEEKD_GRAMMAR_BUILD_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "engine/err.h"
#include "engine/grammar/grammar.h"

enum gb_kind { GB_EPS, GB_BYTES, GB_RULE, GB_TOKEN };
#define GB_CHAR_START 1 /* edge flag: the first byte of a character (string lengths count it) */

struct gb_edge {
    int32_t from, to;
    int32_t arg;    /* GB_RULE: rule id; GB_TOKEN: token id */
    uint8_t kind;   /* enum gb_kind */
    uint8_t lo, hi; /* GB_BYTES: byte range, inclusive */
    uint8_t flags;  /* GB_CHAR_START */
};

/* A piece of automaton with one entry and one exit; it owns states [s0, s1) and edges [e0, e1). */
struct gfrag {
    int32_t in, out;
    int32_t s0, s1, e0, e1;
};

struct gb_mark {
    int32_t s, e;
};

struct gb {
    struct gb_edge *edges; /* [n_edges] */
    int32_t n_edges, cap_edges;
    int32_t n_states;
    int32_t *rule_start;  /* [n_rules] entry state, -1 until defined */
    int32_t *rule_accept; /* [n_rules] exit state */
    char **rule_name;     /* [n_rules] for messages */
    int32_t n_rules, cap_rules;
    int32_t n_vocab; /* token ids must be below this (0: no token edges allowed) */
    struct gram_limits lim;
    int64_t work; /* units of compile work spent (checked against lim.max_work) */
    bool failed;
    struct err e; /* the first failure */
};

/* Text encodings a character can be emitted in. */
enum gb_text {
    GB_RAW,  /* plain UTF-8 */
    GB_JSON, /* inside a JSON string: '"', '\' and controls escaped, one spelling per character */
};

void gb_init(struct gb *b, const struct gram_limits *lim, int32_t n_vocab);
void gb_free(struct gb *b);
/* Marks the builder failed (first message wins); returns -1. */
int gb_fail(struct gb *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Counts n units of work; fails the builder when the budget is spent. false once failed. */
bool gb_spend(struct gb *b, int64_t n);

/* ---- rules ---- */
int32_t gb_rule(struct gb *b, const char *name);
void gb_rule_define(struct gb *b, int32_t rule, struct gfrag f);

/* ---- raw states and edges ---- */
int32_t gb_state(struct gb *b);
void gb_eps(struct gb *b, int32_t from, int32_t to);
void gb_bytes(struct gb *b, int32_t from, uint8_t lo, uint8_t hi, int32_t to, uint8_t flags);

/* ---- fragments ---- */
struct gb_mark gb_mark(const struct gb *b);
struct gfrag gb_close(const struct gb *b, struct gb_mark m, int32_t in, int32_t out);
struct gfrag gb_empty(struct gb *b);
struct gfrag gb_range(struct gb *b, uint8_t lo, uint8_t hi);
/* A literal byte string; the first byte of each UTF-8 character is flagged. */
struct gfrag gb_lit(struct gb *b, const char *s, size_t n);
struct gfrag gb_ref(struct gb *b, int32_t rule);
struct gfrag gb_token(struct gb *b, int32_t token);
/* a then c; c must have been built right after a. */
struct gfrag gb_seq(struct gb *b, struct gfrag a, struct gfrag c);
/* a or c; c must have been built right after a. */
struct gfrag gb_alt(struct gb *b, struct gfrag a, struct gfrag c);
struct gfrag gb_opt(struct gb *b, struct gfrag f);
struct gfrag gb_star(struct gb *b, struct gfrag f);
struct gfrag gb_plus(struct gb *b, struct gfrag f);
/* f repeated min..max times (max -1: unbounded); f must be the last fragment built. */
struct gfrag gb_repeat(struct gb *b, struct gfrag f, int64_t min, int64_t max);
/* A copy of f (states and edges), appended. */
struct gfrag gb_clone(struct gb *b, struct gfrag f);
/* f restricted to paths whose count of GB_CHAR_START edges lies in min..max (max -1: none). */
struct gfrag gb_count_chars(struct gb *b, struct gfrag f, int64_t min, int64_t max);

/* ---- characters ---- */
struct gb_cprange {
    uint32_t lo, hi; /* Unicode code points, inclusive */
};
/* One character from the union of ranges (surrogates never match), in the given encoding. */
struct gfrag gb_chars(struct gb *b, const struct gb_cprange *r, int n, enum gb_text mode);
/* A JSON string literal (quotes included) for the raw bytes s: the one spelling gb_chars uses. */
struct gfrag gb_json_string_lit(struct gb *b, const char *s, size_t n);

#endif
