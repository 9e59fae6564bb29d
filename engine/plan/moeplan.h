/* moeplan: the token lists of one MoE layer, from the experts each token was routed to — which
 * rows of the gathered activations belong to which expert, and where each (token, choice) went.
 * Host-side plain C so the indexing is tested on the CPU; a GPU backend uploads the arrays and
 * its gather, expert and combine kernels only follow them.
 *
 * Order is the CPU forward's: experts ascending, each expert's tokens ascending. A token's
 * choices are sorted by expert id (moe_route sorts them), so summing a token's expert outputs in
 * choice order adds them in the same order as the CPU does. */
#ifndef SEEKD_MOEPLAN_H
#define SEEKD_MOEPLAN_H

#include <stddef.h>
#include <stdint.h>

struct mp_plan {
    int32_t n_tokens, k, n_experts;
    int32_t n_rows;    /* gathered rows: n_tokens * k */
    int32_t n_active;  /* experts with at least one token */
    /* packed int32 arrays, one buffer (offsets in elements) for a single upload */
    int32_t *buf;
    size_t cap;        /* elements allocated in buf */
    size_t offset;     /* [n_experts + 1] first gathered row of each expert; the last = n_rows */
    size_t row_tok;    /* [n_rows] the token a gathered row copies */
    size_t tok_row;    /* [n_tokens * k] gathered row of (token t, choice j) at t * k + j */
    size_t active;     /* [n_active] the experts with tokens, ascending */
    size_t n_elems;    /* int32 elements used in buf */
};

/* sel: [n_tokens][k] expert ids, each token's ids distinct. -1 (plan untouched) when an id is
 * outside 0..n_experts-1 or repeats within a token: the routing produced something impossible. */
int mp_build(struct mp_plan *p, const int32_t *sel, int n_tokens, int k, int n_experts);

static inline const int32_t *mp_arr(const struct mp_plan *p, size_t off)
{
    return p->buf + off;
}

void mp_free(struct mp_plan *p);

/* The grouped GEMM's permutation of one MoE layer (the reference the device's counting sort
 * reproduces exactly): group x < E holds the rows of the tokens routed to expert x, tokens
 * ascending; with shared experts (shared = 1) group E holds every token once, in order. Each
 * group starts at a multiple of align rows; rows between groups are padding (token -1). */
struct mp_grouped {
    int32_t n_tokens, k, n_groups, align;
    int32_t n_rows;     /* rows up to the last group's end (padding included) */
    int32_t *buf;
    size_t cap;         /* elements allocated */
    size_t count;       /* [n_groups] rows of each group */
    size_t offset;      /* [n_groups + 1] first row of each group (aligned); offset[n_groups] = n_rows */
    size_t row_tok;     /* [n_rows] token of each row, -1 for padding */
    size_t tok_row;     /* [n_tokens][k + shared] row of (token, choice), then of its shared row */
    size_t n_elems;
};

/* The most rows any routing of n_tokens can need (static device buffers are sized by it). */
int32_t mp_grouped_max_rows(int n_tokens, int k, int n_experts, int shared, int align);

/* -1 (plan untouched) on an impossible routing, as mp_build. */
int mp_grouped_build(struct mp_grouped *g, const int32_t *sel, int n_tokens, int k,
                     int n_experts, int shared, int align);

void mp_grouped_free(struct mp_grouped *g);

#endif
