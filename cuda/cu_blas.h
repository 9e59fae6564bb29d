/* cu_blas: the library GEMMs of the fast numerics — cuBLASLt's block-scaled FP8 GEMM (128×128
 * weight scales, 1×128 activation scales, F32 accumulation promoted per block; never
 * FAST_ACCUM), BF16 GEMMs with F32 accumulation (lm_head, BF16 checkpoints), the per-head batched
 * BF16 GEMMs of the absorbed query and the value projection, and the F32 router GEMM — one
 * handle pair, one workspace, and the algorithm chosen once per shape (a CUDA graph replays what
 * was captured).
 *
 * Where cuBLASLt wants the scales of a block-scaled operand is settled on the device itself:
 * cu_blas_probe runs a GEMM with non-uniform scales in each candidate layout and keeps the one
 * whose results match the CPU emulation (engine/cpu/numerics.c) — or none, and the fast linears
 * then run on k_gemm8. */
#ifndef SEEKD_CU_BLAS_H
#define SEEKD_CU_BLAS_H

#include <stdint.h>

#include <cublasLt.h>
#include <cublas_v2.h>
#include <cuda_runtime_api.h>

#include "engine/err.h"

enum { CB_CACHE = 512 };

struct cb_algo {
    int kind;            /* 0 FP8, 1 BF16 */
    int64_t m, n, k;
    int ok;              /* 0: no algorithm for the shape */
    cublasLtMatmulAlgo_t algo;
};

struct cu_blas {
    cublasLtHandle_t lt;
    cublasHandle_t h;
    void *ws;                 /* device workspace */
    size_t ws_bytes;
    int fp8_ok;               /* the probe found the scale layouts (w_kn, x_tg) */
    int w_kn;                 /* weight grid: 0 [nb][ld] (the checkpoint's order), 1 [kb][ld] */
    int w_align;              /* its rows padded to a multiple of this many floats (1 or 4) */
    int x_tg;                 /* activation scales: 0 [kb][t_pad] (tokens fastest), 1 [t][kb] */
    char probe_note[160];     /* what the probe found, for logs and the device report */
    struct cb_algo cache[CB_CACHE];
    int n_cache;
};

int cu_blas_create(struct cu_blas *b, struct err *e);
void cu_blas_destroy(struct cu_blas *b);

/* The FP8 operand of a block-scaled GEMM. */
struct cb_fp8 {
    const uint8_t *w;         /* [n_pad][k_pad] */
    const float *ws;          /* grid in the probed order, row length ws_ld */
    int64_t ws_ld, n_pad, k_pad;
};

/* y [t_pad][n_pad] (row pitch ldy) = x · wᵀ: x codes [t_pad][k_pad], scales in the probed order
 * (x_tg 0: [kb][t_pad]). -1 when cuBLASLt offers no algorithm for the shape. */
int cu_blas_fp8(struct cu_blas *b, const struct cb_fp8 *w, const uint8_t *x, const float *xs,
                int64_t t_pad, float *y, int64_t ldy, cudaStream_t s);

/* Whether cuBLASLt has a block-scaled FP8 algorithm for the shape (the answer is cached). */
int cu_blas_fp8_supported(struct cu_blas *b, int64_t n_pad, int64_t k_pad, int64_t t_pad);

/* y [t][n] (ldy) = x [t][k] (BF16, row pitch ldx) · w [n][k]ᵀ (BF16), F32 out and accumulate. */
int cu_blas_bf16(struct cu_blas *b, const uint16_t *w, int64_t n, int64_t k, const uint16_t *x,
                 int64_t ldx, int64_t t, float *y, int64_t ldy, cudaStream_t s);

/* Per head h < H: q_lat[t][h] = q_nope[t][h] [dn] · W_UK[h] [dn][dc], BF16 out into qfull rows
 * (pitch H · (dc + dr), head stride dc + dr). */
int cu_blas_absorb(struct cu_blas *b, const uint16_t *q_nope, const uint16_t *w_uk, int T, int H,
                   int dn, int dc, int dr, uint16_t *qfull, cudaStream_t s);

/* Per head: attn[t][h] [dv] = ctx[t][h] [dc] · W_UV[h] [dv][dc]ᵀ, F32 out ([T][H · dv]). */
int cu_blas_vup(struct cu_blas *b, const uint16_t *ctx, const uint16_t *w_uv, int T, int H, int dc,
                int dv, float *attn, cudaStream_t s);

/* logits [t][E] = x [t][D] · W [E][D]ᵀ in F32 (no TF32). */
int cu_blas_router(struct cu_blas *b, const float *w, int E, int D, const float *x, int t,
                   float *logits, cudaStream_t s);

/* Finds the scale layouts (sets fp8_ok, w_kn, x_tg, probe_note); 0, or -1 on a CUDA failure. */
int cu_blas_probe(struct cu_blas *b, cudaStream_t s, struct err *e);

#endif
