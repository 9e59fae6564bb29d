/* simd: the vector kernels under the fast CPU backend — AVX-512, AVX2+FMA and a portable set
 * that is the scalar reference itself — chosen once at run time from what the CPU supports.
 *
 * Weights are widened from their stored dtype (F32, BF16, F16, FP8 e4m3 times its block scale)
 * to float with exactly the reference's values; dot products then run in float with FMA. Every
 * dot product of a kernel set uses one fixed order of operations — one vector accumulator over
 * the columns in order, a masked last chunk, a fixed horizontal sum — whatever tile it is
 * computed in, so results do not depend on batch size, tiling or thread count.
 * The override SEEKD_SIMD=scalar|avx2|avx512 (environment) is for tests and benchmarks. */
#ifndef SEEKD_SIMD_H
#define SEEKD_SIMD_H

#include <stdint.h>

#include "engine/model/model.h"

struct simd_kernels {
    const char *name; /* "avx512", "avx2" or "scalar" */
    /* Widens rows [r, r + n) of w into out[i * ld .. + cols), block scales applied. */
    void (*widen_rows)(const struct weight *w, int64_t r, int n, float *out, int64_t ld);
    /* y[t * ldy + i] = Σ_c w[i * ldw + c] · x[t * ldx + c] for i < nr, t < nt, c < k. */
    void (*dot_tile)(const float *w, int64_t ldw, int nr, const float *x, int64_t ldx, int nt,
                     int k, float *y, int64_t ldy);
    /* The same dot product as one element of dot_tile (bit-identical). */
    float (*dot)(const float *a, const float *b, int k);
    /* y[i] += s · x[i] (fused multiply-add where the set has it). */
    void (*axpy)(float *y, float s, const float *x, int n);
    /* y[c] += Σ_j p[j] · rows[j * ld + c] for c < k, j < n in order: bit-identical to n calls
     * of axpy (y, p[j], rows + j * ld, k). */
    void (*axpy_rows)(float *y, const float *p, const float *rows, int64_t ld, int n, int k);
    /* Optional (NULL: four axpy_rows calls): axpy_rows for four outputs y + i * ldy with weights
     * p + i * ldp over the same rows, each row loaded once — bit-identical to axpy_rows. */
    void (*axpy_rows4)(float *y, int64_t ldy, const float *p, int64_t ldp, const float *rows,
                       int64_t ld, int n, int k);
    /* Optional (NULL): y[t * ldy + i] for rows [r0, r0 + nr) of w and nt tokens, widening in
     * registers — bit-identical to widen_rows followed by dot_tile. Used up to SIMD_DIRECT_MAX
     * tokens (decode batches); beyond, widening once per row block and tiling is cheaper. */
    void (*direct)(const struct weight *w, int64_t r0, int nr, const float *x, int64_t ldx,
                   int nt, float *y, int64_t ldy);
    /* x[0..n) ← softmax(scale · x) (engine/cpu/softmax.h). */
    void (*softmax)(float *x, int n, float scale);
};

enum { SIMD_DIRECT_MAX = 32 };

/* The fastest set this CPU runs (or the one SEEKD_SIMD names, if the CPU runs it). */
const struct simd_kernels *simd_best(void);

/* The set of that name, or NULL when unknown or the CPU lacks its instructions. */
const struct simd_kernels *simd_by_name(const char *name);

#endif
