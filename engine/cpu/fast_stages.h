/* fast_stages: the stages of a step under the fast numerics, each a function of its inputs only —
 * quantising an activation, a linear layer, the latent cache rows, the absorbed query, latent
 * attention over cache rows, the value up-projection. The emulated forward (forward_fast.c)
 * chains them; the stage checker (stage_check.c) calls each one on a GPU's own input to it, so
 * both run exactly this arithmetic (engine/cpu/numerics.h states it).
 *
 * Quantised activations: FP8 codes with 1×128 scales where the consuming weight is FP8, BF16
 * otherwise (BF16 checkpoints run BF16 GEMMs). BF16 values are passed as uint16_t bits. */
#ifndef SEEKD_FAST_STAGES_H
#define SEEKD_FAST_STAGES_H

#include <stdint.h>

#include "engine/cpu/threadpool.h"
#include "engine/model/model.h"

/* A quantised activation matrix of n rows of k values. */
struct fs_act {
    int fp8;         /* 1: codes + scales; 0: BF16 */
    int n;           /* rows held */
    int64_t k;       /* values per row */
    uint8_t *q;      /* FP8: [n][k] e4m3 codes */
    float *s;        /* FP8: [n][ceil(k/128)] scales */
    uint16_t *b;     /* BF16: [n][k] */
};

/* Whether a linear layer with this weight takes FP8 activations (its weight is FP8). */
int fs_takes_fp8(const struct weight *w);

void fs_act_alloc(struct fs_act *a, int fp8, int n_max, int64_t k);
void fs_act_free(struct fs_act *a);

/* Quantises n rows of x (row stride ldx) into a, in a's format; a->n = n. */
void fs_quant(const float *x, int64_t ldx, int n, struct fs_act *a);

/* dst (allocated for at least n rows of src's format and width) = the rows of src listed in
 * rows[0..n). */
void fs_act_rows(const struct fs_act *src, const int *rows, int n, struct fs_act *dst);

/* y[t][o] = the fast GEMM of a's rows with w (FP8 activations for FP8 weights, BF16 else),
 * every output row of w, spread over the pool by rows. */
void fs_linear(struct tp *tp, const struct weight *w, const struct fs_act *a, float *y,
               int64_t ldy);

/* Σ over the same products of their absolute values (codes without sign, BF16 without sign):
 * the scale of a GEMM's rounding error, for tolerances. */
void fs_linear_abs(struct tp *tp, const struct weight *w, const struct fs_act *a, float *y,
                   int64_t ldy);

/* A layer's kv_b split for absorption, dequantised once to BF16 (values held as floats). */
struct fs_mla_w {
    int H, dn, dv, dc;
    float *uk; /* [H][dc][dn] W_UK transposed: row c of head h holds kv_b[h(dn+dv) + d][c], d < dn */
    float *uv; /* [H][dv][dc] W_UV: kv_b rows h(dn+dv) + dn + v */
};

void fs_mla_weights(const struct weight *kv_b, int H, int dn, int dv, struct fs_mla_w *out);
void fs_mla_free(struct fs_mla_w *w);

/* The cache rows of n new tokens from kva [n][dc+dr]: c = BF16(rmsnorm(kva[:dc]) · norm),
 * k_rope = BF16(rope(kva[dc:])), rows [n][dc+dr]. cos, sin: [n][dr/2] of each token's position. */
void fs_kv_rows(const float *kva, int n, const struct weight *norm, int dc, int dr, float eps,
                const float *cos, const float *sin, uint16_t *rows);

/* The absorbed query of n tokens from q [n][H][dn+dr]: qfull [n][H][dc+dr] with
 * q_lat = BF16(BF16(q_nope) · W_UK) and q_rope = BF16(rope(q[dn:])). */
void fs_qfull(struct tp *tp, const float *q, int n, const struct fs_mla_w *w, int dr,
              const float *cos, const float *sin, uint16_t *qfull);

/* One (token, head): softmax over the scores of n_ctx cache rows, probabilities to BF16 for
 * the weighted sum, ctx [dc] = BF16(Σ_j BF16(p_j) c_j / Σ_j p_j). bound (optional, [dc]):
 * Σ_j (p_j / Σ p) |c_j|, the scale of the kernel's rounding error. */
void fs_attend(const uint16_t *qf, const uint16_t *const *rows, int n_ctx, int dc, int dr,
               float scale, uint16_t *ctx, float *bound);

/* attn [n][H · dv] = ctx [n][H][dc] · W_UVᵀ per head (BF16 operands, rounded once to F32). */
void fs_v_up(struct tp *tp, const uint16_t *ctx, int n, const struct fs_mla_w *w, float *attn);

/* The same sums over absolute values (tolerance scales of fs_qfull's q_lat and fs_v_up). */
void fs_qlat_abs(const float *q, int n, const struct fs_mla_w *w, int dr, float *out);
void fs_v_up_abs(const uint16_t *ctx, int n, const struct fs_mla_w *w, float *out);

#endif
