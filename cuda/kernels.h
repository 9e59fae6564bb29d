/* kernels: the CUDA backend's device operations, as extern "C" launchers callable from C.
 *
 * Reference numerics: F32 activations, weights read in their stored dtype and widened in
 * registers exactly as the CPU widens them (cuda/core.h), F32 accumulation. Each launcher
 * enqueues on the given stream and returns cudaGetLastError() (cudaSuccess when the launch was
 * accepted). Device pointers everywhere; shapes as in engine/cpu/forward.c (D hidden, H heads,
 * dn/dr/dv head dims, dc latent rank, T tokens). */
#ifndef SEEKD_CUDA_KERNELS_H
#define SEEKD_CUDA_KERNELS_H

#include <stdint.h>

#include <cuda_runtime_api.h>

#include "cuda/core.h"

#ifdef __cplusplus
extern "C" {
#endif

/* A weight in device memory, [rows, cols] row-major in its stored dtype: a whole tensor, or a
 * tensor-parallel rank's rows and columns of one, whose scale grid starts at the block that
 * holds its first element (row0, col0: that element's place inside the block). */
struct cu_w {
    int dtype;                   /* enum core_dtype */
    int block_rows, block_cols;  /* FP8 scale block; 0 for other dtypes */
    int row0, col0;              /* FP8 slice: offset inside the first scale block; else 0 */
    int64_t rows, cols;
    int64_t n_cb;                /* columns of the scale grid: ceil((col0 + cols) / block_cols) */
    const void *data;
    const float *scale;          /* FP8: [ceil((row0 + rows)/block_rows)][n_cb]; else NULL */
};

/* y[b][t][o] = Σ_i W[r0 + b·w_step + o][i] · x[b][t][i] for o < n_out, t < n, b < n_batch, with
 * x[b] = x + b·x_step (row stride ldx) and y[b] = y + b·y_step (row stride ldy). Each output is
 * summed over i in ascending order. */
struct cu_gemm {
    struct cu_w w;
    int64_t r0, n_out;
    const float *x;
    int64_t ldx;
    int n;
    float *y;
    int64_t ldy;
    int n_batch;
    int64_t w_step, x_step, y_step;
};
cudaError_t k_gemm(const struct cu_gemm *p, cudaStream_t s);

/* h[t] = embed[tokens[t]] widened. */
cudaError_t k_embed(const struct cu_w *embed, const int32_t *tokens, int n, float *h,
                    cudaStream_t s);

/* out[i] = x[r] / rms(x[r]) · w for n rows of dim values, r = rows ? rows[i] : i (in place
 * allowed when rows is NULL). */
cudaError_t k_rmsnorm(const float *x, int64_t ldx, const int32_t *rows, const struct cu_w *w,
                      int n, int dim, float eps, float *out, int64_t ldo, cudaStream_t s);

/* x[t][h · stride + off .. + 2·n_pairs) rotated by token t's angles, for t < n, h < n_heads. */
cudaError_t k_rope(float *x, int n, int n_heads, int64_t ldx, int stride, int off,
                   const float *cos, const float *sin, int n_pairs, cudaStream_t s);

/* Stores row t of kva (width values) into cache row slot[t] of one layer (F32 or BF16). */
cudaError_t k_kv_store(const float *kva, int n, int width, const int32_t *slot, void *cache,
                       int cache_dtype, cudaStream_t s);

/* qlat[t][h][c] = Σ_d q[t][h][d] · kv_b[h · (dn + dv) + d][c], d < dn in order. */
cudaError_t k_absorb(const float *q, int n, int n_heads, int qk, int dn, int dv,
                     const struct cu_w *kv_b, float *qlat, cudaStream_t s);

/* Absorbed MLA over the paged cache of one layer. */
struct cu_attn {
    const float *qlat;        /* [T, H, dc] */
    const float *q;           /* [T, H, qk]: the rope part is at dn */
    const void *cache;        /* the layer's rows [n_blocks · block_size][width] */
    int cache_dtype;          /* CORE_F32 or CORE_BF16 */
    const int32_t *tables;    /* the step's block tables (engine/plan/stepplan.h) */
    const int32_t *table_off; /* [T] */
    const int32_t *pos;       /* [T] a token attends over positions 0..pos */
    float *ctx;               /* [T, H, dc] */
    int n, n_heads, dc, dr, dn, qk, width, block_size;
    float scale;              /* softmax scale (YaRN's mscale² included) */
};
cudaError_t k_attn(const struct cu_attn *p, cudaStream_t s);

/* a[i] = silu(a[i]) · b[i]. */
cudaError_t k_silu_mul(float *a, const float *b, int64_t n, cudaStream_t s);

/* h[i] += x[i]. */
cudaError_t k_add(float *h, const float *x, int64_t n, cudaStream_t s);

/* out[0 .. cols) = row 0 of w widened (a vector weight: norms, the router bias). */
cudaError_t k_widen_vec(const struct cu_w *w, float *out, cudaStream_t s);

/* Routing of n tokens: logits [n][E] → sel [n][k] (ascending ids), selw [n][k]. */
cudaError_t k_route(const struct core_route_cfg *c, const float *logits, const float *bias,
                    float *scratch, unsigned char *taken, int32_t *sel, float *selw, int n,
                    cudaStream_t s);

/* xg[r] = x[row_tok[r]] for r < n_rows (dim values per row). */
cudaError_t k_gather(const float *x, int dim, const int32_t *row_tok, int n_rows, float *xg,
                     cudaStream_t s);

/* out[t] = Σ_j selw[t][j] · yg[tok_row[t][j]] (j ascending), then + ysh[t] when ysh is given. */
cudaError_t k_combine(const float *yg, const int32_t *tok_row, const float *selw, int k,
                      const float *ysh, int n, int dim, float *out, cudaStream_t s);

#ifdef __cplusplus
}
#endif

#endif
