/* mlaplan: the split-KV work lists of the latent-attention kernel, planned on the host in plain C
 * (FlashMLA's "tile scheduler metadata" idea). The kernel runs a fixed grid of n_ctas work lists
 * (× head groups), which a CUDA graph can capture once; each step only uploads new lists.
 *
 * Every query token t attends over positions 0 .. ctx[t] - 1, a whole number of cache blocks plus
 * a partial last one. The (token, block) sequence, tokens in order, is cut into n_ctas contiguous
 * runs of nearly equal cost, a cost being the blocks read plus a fixed cost per item (its setup
 * and its partial output). A run that crosses a token boundary holds several items; a token cut
 * across runs has several partial outputs ("splits"), merged afterwards by the combine kernel:
 * lse = log Σ_s e^{lse_s}, O = Σ_s e^{lse_s − lse} O_s. Items are ordered by token, then by
 * position, and a token's partial slots are consecutive in that order. */
#ifndef SEEKD_MLAPLAN_H
#define SEEKD_MLAPLAN_H

#include <stddef.h>
#include <stdint.h>

enum { MLA_ITEM = 4 }; /* int32 fields per item: token, kv0, kv1, part */

struct mla_plan {
    int32_t n_ctas, n_tokens;
    int32_t n_items;      /* = the partial outputs */
    int32_t payload;      /* the most cost one work list may hold (balance bound) */
    int32_t *buf;         /* packed, for one upload */
    size_t cap;           /* elements allocated */
    size_t cta_begin;     /* [n_ctas + 1] first item of each work list */
    size_t items;         /* [n_items][MLA_ITEM] token, kv0, kv1 (positions [kv0, kv1)), part */
    size_t part_begin;    /* [n_tokens + 1] first partial slot of each token */
    size_t n_elems;       /* int32 elements used */
};

/* Plans n_tokens query tokens with contexts ctx[t] >= 1, cache blocks of `block` positions, over
 * n_ctas >= 1 work lists; fixed: the cost of one item in blocks (>= 0). */
void mla_build(struct mla_plan *p, const int32_t *ctx, int n_tokens, int block, int n_ctas,
               int fixed);

static inline const int32_t *mla_arr(const struct mla_plan *p, size_t off)
{
    return p->buf + off;
}

void mla_free(struct mla_plan *p);

#endif
