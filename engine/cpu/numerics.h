/* numerics: the arithmetic of `--numerics fast` (DeepSeek's FP8 recipe) written out on the CPU —
 * the reference every fast GPU kernel is checked against, and a way to see on any machine what
 * the GPU computes. docs/ARCHITECTURE.md ("The numerics contract of fast") lists every rounding
 * point; these are its pieces:
 *
 *   e4m3       float → float8_e4m3fn, round to nearest even, saturating to ±448 (the hardware's
 *              cvt.rn.satfinite), subnormals kept; and back, exactly
 *   bf16       round to nearest even
 *   1×128      per token and per group of 128 channels: s = max(amax, 1e-4) / 448 (one IEEE
 *              division), q = e4m3(x / s) (one IEEE division per value)
 *   FP8 GEMM   y = Σ_kb blk(kb) · (s_x[kb] · s_w[kb]) over 128-wide K blocks in ascending order,
 *              where blk is the block's exact dot product of codes rounded once to F32 (products
 *              of two e4m3 values are exact in F32 and 128 of them sum exactly in double), and
 *              every multiply and add of the promotion is rounded on its own
 *   BF16 GEMM  y = the dot product of BF16 operands summed in double and rounded once to F32
 *              (what an F32-accumulating tensor core approaches, up to its summation order)
 *
 * The scalar conversions live in engine/model/elem.h (inline, for the host and the device); the
 * rest is plain C. */
#ifndef SEEKD_NUMERICS_H
#define SEEKD_NUMERICS_H

#include <stdint.h>

#include "engine/model/elem.h"
#include "engine/model/model.h"

enum {
    NM_GROUP = 128 /* channels per activation scale; the weight scale block's edge */
};

#define NM_E4M3_MAX   448.0f
#define NM_AMAX_FLOOR 1e-4f /* a group's amax below this is taken as this (zero groups) */

/* The scale of a group whose largest magnitude is amax. */
static inline float nm_group_scale(float amax)
{
    return (amax > NM_AMAX_FLOOR ? amax : NM_AMAX_FLOOR) / NM_E4M3_MAX;
}

/* Groups of NM_GROUP channels in k (the last may be partial). */
static inline int nm_groups(int64_t k)
{
    return (int)((k + NM_GROUP - 1) / NM_GROUP);
}

/* 1×128 quantisation of n rows of k values (row stride ldx): q [n][k] codes, s [n][groups]. */
void nm_quant_1x128(const float *x, int64_t ldx, int n, int64_t k, uint8_t *q, float *s);

/* BF16 rounding of n rows of k values: out [n][k]. */
void nm_round_bf16(const float *x, int64_t ldx, int n, int64_t k, uint16_t *out);

/* The FP8 GEMM for weight rows [r0, r1): y[t][o - r0] (row stride ldy) from the codes q [n][k]
 * and scales s [n][groups] of n tokens, k = w->cols. w is FP8 with 128×128 blocks. */
void nm_matmul_fp8(const struct weight *w, int64_t r0, int64_t r1, const uint8_t *q,
                   const float *s, int n, float *y, int64_t ldy);

/* The BF16 GEMM for weight rows [r0, r1) over BF16 activations xb [n][w->cols]: weights are
 * widened exactly (BF16, or F32 / F16 as stored). */
void nm_matmul_bf16(const struct weight *w, int64_t r0, int64_t r1, const uint16_t *xb, int n,
                    float *y, int64_t ldy);

/* The dot product of n BF16-exact floats a·b summed in double, rounded once to F32. */
float nm_dot_exact(const float *a, const float *b, int n);

#endif
