/* quant_kernels: matmuls over weights in ggml's quantisation blocks (engine/model/quant.h), in
 * two arithmetics:
 *
 *  - exact (ops.q8 == 0, `--numerics ref`): rows are dequantised to the exact floats of ggml's
 *    reference and multiplied in F32 with the kernel set's dot tiles, like BF16 or FP8 weights.
 *  - 8-bit activations (ops.q8, the default): as llama.cpp does, each token's activations are
 *    quantised to int8 in blocks of 32 (one float scale per block), and each weight row is
 *    unpacked once into unsigned codes u with a float multiplier per 4 codes (scl, the block or
 *    group scale) and an offset per 16 codes (mn: the min, or the zero point times the scale),
 *    so that a weight is w = scl·u + mn. A row's dot with a token is then
 *        Σ_lanes P · scl · dx  +  Σ_groups mn · xs
 *    with P the integer dot of 4 codes with 4 int8 activations, dx the activation scale and xs
 *    the sum of the dequantised activations of the group of 16. The integer dots run on
 *    AVX-512 VNNI / AVX-512 BW / AVX2 (maddubs) and are exact; only the float sums differ
 *    between kernel sets, by reassociation.
 *
 * Each (row, token) result is computed whole, in one fixed order, by one thread: results do not
 * depend on the batch, the tile or the thread count (batch invariance holds as for F32). */
#ifndef SEEKD_QUANT_KERNELS_H
#define SEEKD_QUANT_KERNELS_H

#include <stdint.h>

#include "engine/cpu/ops.h"

/* Rows [r, r + n) of a quantised weight dequantised exactly into out[i * ld .. + cols). */
void qk_widen_rows(const struct weight *w, int64_t r, int n, float *out, int64_t ld);

/* ops_matmul_serial for a quantised weight: y[t * ldy + i - r0] for rows [r0, r1), n tokens. */
void qk_matmul(const struct ops *o, int thread, const struct weight *w, int64_t r0, int64_t r1,
               const float *x, int64_t ldx, int n, float *y, int64_t ldy);

/* One kernel set's pieces of the 8-bit path (exposed for the tests). k is a row length (a
 * multiple of 32); a token's activations are q [k] int8, dxl [k / 4] (its block's scale for each
 * 4 values) and xs [k / 16]; a row is u [k], scl [k / 4], mn [k / 16]. */
struct qk_set {
    const char *name;
    void (*quantize)(const float *x, int64_t k, int8_t *q, float *dxl, float *xs);
    /* Row r of w unpacked into u, scl, mn. */
    void (*unpack)(const struct weight *w, int64_t r, uint8_t *u, float *scl, float *mn);
    /* y[t * ldy] = the dot of the row with token t, for nt tokens whose activations are stored
     * at stride k (q), k / 4 (dxl) and k / 16 (xs). */
    void (*dot)(const uint8_t *u, const float *scl, const float *mn, int64_t k, const int8_t *q,
                const float *dxl, const float *xs, int nt, float *y, int64_t ldy);
};

/* The 8-bit set that goes with a SIMD kernel set (by name: scalar, avx2, avx512). */
const struct qk_set *qk_set_for(const struct simd_kernels *k);

/* The portable reference set, and the SIMD ones (NULL when the CPU lacks them). */
const struct qk_set *qk_scalar(void);
const struct qk_set *qk_avx2(void);
const struct qk_set *qk_avx512(void);

#endif
