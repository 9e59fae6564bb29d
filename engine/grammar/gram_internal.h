/* gram_internal: the layout of a compiled grammar, shared by compile, classes, match and mask.
 * Not for use outside engine/grammar.
 *
 * States are numbered globally; each belongs to one rule. Every rule's automaton is
 * deterministic per symbol (a byte, a rule reference, a token), so one byte from one state has
 * at most one byte edge to follow. Edges are stored by kind in CSR form, byte edges sorted by
 * their (disjoint) ranges. */
#ifndef SEEKD_GRAMMAR_INTERNAL_H
#define SEEKD_GRAMMAR_INTERNAL_H

#include <pthread.h>

#include "engine/grammar/build.h"
#include "engine/grammar/grammar.h"

struct gram_bedge {
    uint8_t lo, hi; /* inclusive byte range */
    int32_t to;
};
struct gram_redge {
    int32_t rule, to; /* push rule; return to `to` when it completes */
};
struct gram_tedge {
    int32_t token, to; /* a special token (a control token, never spelled in bytes) */
};

struct gmask_cache;

struct gram {
    int refs;
    int32_t n_states, n_rules, root;
    int32_t *rule_start;            /* [n_rules] */
    char **rule_name;               /* [n_rules] */
    uint8_t *accept;                /* [n_states] the state's rule may end here */
    int32_t *b_off, *r_off, *t_off; /* [n_states + 1] edge ranges per state */
    struct gram_bedge *b;
    struct gram_redge *r;
    struct gram_tedge *t;
    int64_t max_bytes; /* longest output in bytes, -1 unbounded */

    /* classes (classes.c): consuming states whose tokens are classified alike */
    int32_t *cls; /* [n_states] class of a consuming state, -1 otherwise */
    int32_t n_cls;
    int32_t *cls_rep;   /* [n_cls] a member */
    int32_t *cls_depth; /* [n_cls] how deep one classification walk may trust the class */

    pthread_mutex_t mu;        /* guards cache */
    struct gmask_cache *cache; /* per-class token sets (mask.c), filled lazily */
};

/* Whether state s consumes input (has byte or token edges): a possible stack top. */
static inline int gram_consuming(const struct gram *g, int32_t s)
{
    return g->b_off[s + 1] > g->b_off[s] || g->t_off[s + 1] > g->t_off[s];
}

/* The target of s's byte edge for c, or -1. */
static inline int32_t gram_step(const struct gram *g, int32_t s, uint8_t c)
{
    for (int32_t i = g->b_off[s], n = g->b_off[s + 1]; i < n; i++) {
        if (c < g->b[i].lo) return -1;
        if (c <= g->b[i].hi) return g->b[i].to;
    }
    return -1;
}

/* Builds the runtime grammar from the builder (which it frees) with root as its start rule.
 * NULL with the builder's failure, or a message naming the rule at fault. */
struct gram *gram_compile(struct gb *b, int32_t root, struct err *e);

/* Computes cls, cls_rep, cls_depth (classes.c): consuming states whose next `depth` bytes of
 * behaviour agree share a class (and one classification of the vocabulary); tokens longer than
 * a class is trusted for are checked against the real stack. The default depth, 32 bytes
 * (gram_limits.class_depth), leaves about 1 in 500 tokens of a 128k vocabulary that long. */
void gram_classes(struct gram *g, int32_t depth, int64_t work);

/* Frees the mask cache (mask.c). */
void gmask_cache_free(struct gmask_cache *c);

#endif
