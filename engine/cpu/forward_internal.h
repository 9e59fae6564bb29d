/* forward_internal: the state of a forward pass, shared by forward.c (the spine, MLA attention,
 * the MLP and MoE) and attn_gqa.c (dense GQA attention). Not for use outside engine/cpu/. */
#ifndef SEEKD_FORWARD_INTERNAL_H
#define SEEKD_FORWARD_INTERNAL_H

#include "engine/cpu/forward.h"
#include "engine/cpu/ops.h"
#include "engine/model/rope.h"

enum {
    FUSE_T = 256,  /* batches up to this many tokens run all experts in one loop */
    FUSE_ROWS = 128, /* output rows per task in those loops */
    HEAD_ROWS = 64   /* sharded lm_head: logits rows gathered at a time */
};

struct fwd {
    const struct model *m;
    const struct model_config *c;
    struct ops ops;      /* thread pool and SIMD kernels */
    struct tp *own_tp;   /* the pool, when fwd_create made it */
    int max_tokens;
    struct rope rope;    /* frequencies, YaRN factors, softmax scale */
    float *cos, *sin;    /* [T, dr/2] rotation of each token's position */
    int *pos;            /* [T] position of each token */
    int *seq_of;         /* [T] index of each token's sequence in the batch */
    int *unit;           /* [T] first token of each attention token group (MLA) */
    float *h;            /* [T, D] residual stream */
    float *xn;           /* [T, D] normed input of a block */
    float *out;          /* [T, D] block output */
    float *cq;           /* [T, q_lora] */
    float *q;            /* [T, H*(dn+dr)]; dense: [T, H*hd] */
    float *kva;          /* [T, dc+dr]; dense: [T, 2*Hkv*hd] the cache rows (keys, values) */
    float *kn, *vn;      /* dense: [T, Hkv*hd] new keys and values */
    float *bias;         /* dense: [max(H*hd, D)] one bias vector, widened */
    float *qlat;         /* [T, H, dc + dr] query folded through W_UK, then its rope part (MLA) */
    float *ctx;          /* [T, H, dc] attention-weighted latents */
    float *attn;         /* [T, H*dv]; dense: [T, H*hd] */
    float *ff_a, *ff_b;  /* [T, widest MLP] */
    float *xg, *yg;      /* [T, D] tokens gathered for one expert, and their output */
    /* decode-sized batches run every expert of a layer in two parallel loops (moe_fused) */
    float *fx, *fy;      /* [FUSE_T * k, D] tokens gathered per expert, outputs */
    float *fa, *fb;      /* [FUSE_T * (k + 1), widest expert] gate and up activations */
    int *fwho;           /* [FUSE_T * k] token of each gathered row */
    float *fwgt;         /* [FUSE_T * k] its routing weight */
    void *fq;            /* q8: the experts' inputs quantised once (moe_fused.c), fq_cap bytes */
    size_t fq_cap;
    float *router;       /* [T, E] */
    int *sel;            /* [T, k] chosen experts */
    float *selw;         /* [T, k] their weights */
    /* tensor parallelism (fwd_use_shard): this rank's part, NULL when it computes everything */
    struct shard *sh;
    float *xs;           /* [T, widest column copy] a sliced matmul's input */
    float *lg, *lgall;   /* [HEAD_ROWS, this rank's vocabulary], [HEAD_ROWS, V] gathered */
    size_t *vcount;      /* [ranks] bytes of each rank's part of a gather */
    /* expert parallelism (fwd_use_ep): this rank's experts and the exchange; NULL: none */
    struct fwd_ep *ep;
};

/* f->out[who[i]] += wgt[i] · y[i] for n rows of hidden_size (who NULL: row i; wgt NULL: weight
 * 1), on every thread when there are enough values. who's rows must be distinct (one expert's
 * tokens): each row's additions then come in the same order however the rows are split. */
void fwd_add_rows(struct fwd *f, const int *who, const float *wgt, const float *y, int n);

/* SwiGLU MLP over n rows of x: y = down(silu(gate x) * up x); n at most max_tokens. */
void fwd_mlp(struct fwd *f, const struct weight *gate, const struct weight *up,
             const struct weight *down, const float *x, int n, float *y);

/* Every routed expert of the T ≤ FUSE_T tokens (routing in f->sel, f->selw) and the shared
 * experts, in two parallel loops (moe_fused.c): f->out. */
void fwd_moe_fused(struct fwd *f, const struct layer *L, int T);

/* A MoE layer under expert parallelism, its routing (f->sel, f->selw) done: f->out for the T
 * tokens of this rank (forward_ep.c). */
int fwd_moe_ep(struct fwd *f, const struct layer *L, int T, struct err *e);
void fwd_ep_free(struct fwd *f);

/* Rows [0, n) of a cache block as floats, row stride kv->width: in place for an F32 cache, else
 * widened (with the kernel set's exact widening) into buf. */
const float *fwd_cache_block(const struct simd_kernels *k, const struct kv_cache *kv, int il,
                             int block, int n, float *buf);

/* o_proj of f->attn into f->out for layer il: whole, or (sharded) this rank's heads' columns,
 * a partial sum. */
void fwd_out_proj(struct fwd *f, const struct layer *L, int il, int T);

/* Dense GQA attention of the whole batch (attn_gqa.c): q/k/v projections, RoPE, the new keys
 * and values into the cache, softmax attention over each sequence's cached positions, W_o;
 * result in f->out. */
void gqa_attention(struct fwd *f, const struct layer *L, int il, struct kv_cache *kv,
                   const struct batch *b);

#endif
