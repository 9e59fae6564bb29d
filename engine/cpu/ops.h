/* ops: the fast CPU backend's operations — cpu_ops' matmul split over a thread pool and run
 * with the SIMD kernel set — plus the per-thread helpers forward.c's own parallel loops use.
 *
 * Work is split by output rows only: every output element is one dot product computed whole by
 * one thread in the kernel set's fixed order, so results are the same for any thread count and
 * any batch (batch invariance, tested in tests/engine/test_forward.c). With a matrix set (mx),
 * matmuls of BF16 weights round the activations to BF16 once (engine/cpu/matrix.h) — for all
 * tasks of a loop at once — and run the set's gemm; other dtypes keep the F32 kernels. Under q8,
 * a loop's quantised weights likewise meet activations quantised once for all its tasks. */
#ifndef SEEKD_OPS_H
#define SEEKD_OPS_H

#include <stdint.h>

#include "engine/model/model.h"
#include "engine/cpu/matrix.h"
#include "engine/cpu/simd.h"
#include "engine/cpu/threadpool.h"

struct ops {
    struct tp *tp;                   /* never NULL */
    const struct simd_kernels *k;    /* never NULL */
    int64_t block_bytes;             /* widened rows, and activations, per cache block; 0: 192 KiB */
    const struct matrix_kernels *mx; /* BF16 weights' matmuls (numerics bf16); NULL: all F32 */
    int q8;                          /* GGUF quantised weights meet activations quantised to 8
                                      * bits (integer dot products, numerics fast); 0: exact
                                      * widening */
};

/* A block size for this machine's L2 (a tenth of it, 64 to 256 KiB): two blocks stay in L2. */
int64_t ops_block_bytes(void);

/* y[t][o - r0] = Σ_i W[o][i] · x[t][i] for o in [r0, r1), t < n; rows split across the pool. */
void ops_matmul_rows(const struct ops *o, const struct weight *w, int64_t r0, int64_t r1,
                     const float *x, int64_t ldx, int n, float *y, int64_t ldy);

/* y[n][rows] = x[n][cols] · Wᵀ, dense strides, threaded. */
void ops_matmul(const struct ops *o, const struct weight *w, const float *x, int n, float *y);

/* y[i] = x · W[i]ᵀ for n_w weights of the same input width, in one parallel loop (one
 * synchronisation instead of n_w); each output exactly as ops_matmul computes it. */
void ops_matmul_many(const struct ops *o, const struct weight *const *w, float *const *y, int n_w,
                     const float *x, int n);

/* ops_matmul_rows run entirely by the calling thread (inside a task); thread names its scratch. */
void ops_matmul_serial(const struct ops *o, int thread, const struct weight *w, int64_t r0,
                       int64_t r1, const float *x, int64_t ldx, int n, float *y, int64_t ldy);

/* n tokens of x (k values each, row stride ldx) quantised for weights of type wt (q8) into buf
 * (qk_scratch_bytes(k, n, 0) bytes) as *a (quant_kernels.h), in parallel over the pool when
 * they are many; called between loops, never inside a task. */
struct qk_act;
void ops_quantize(const struct ops *o, enum dtype wt, const float *x, int64_t ldx, int n,
                  int64_t k, void *buf, struct qk_act *a);

#endif
