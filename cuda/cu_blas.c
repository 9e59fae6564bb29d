/* cu_blas: cuBLASLt / cuBLAS calls of the fast numerics, their algorithm cache, and the probe of
 * the block-scaled operands' scale layouts. */
#include "cuda/cu_blas.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cuda/cu_dev.h"
#include "engine/cpu/numerics.h"

enum { WORKSPACE = 32 << 20 };

#define LT(call)                                                                                   \
    do {                                                                                           \
        cublasStatus_t st_ = (call);                                                               \
        if (st_ != CUBLAS_STATUS_SUCCESS) ERR_FATAL("%s: cuBLAS status %d", #call, (int)st_);      \
    } while (0)

int cu_blas_create(struct cu_blas *b, struct err *e)
{
    *b = (struct cu_blas){0};
    if (cublasLtCreate(&b->lt) != CUBLAS_STATUS_SUCCESS || cublasCreate(&b->h) != CUBLAS_STATUS_SUCCESS)
        return err_set(e, "cannot create the cuBLAS handles");
    if (cublasSetMathMode(b->h, CUBLAS_DEFAULT_MATH) != CUBLAS_STATUS_SUCCESS) /* no TF32 */
        return err_set(e, "cannot set cuBLAS's math mode");
    cudaError_t rc = cudaMalloc(&b->ws, WORKSPACE);
    if (rc != cudaSuccess) return b->ws = NULL, cu_err(e, rc, "cannot allocate the cuBLASLt workspace");
    b->ws_bytes = WORKSPACE;
    return 0;
}

void cu_blas_destroy(struct cu_blas *b)
{
    if (b->ws) cudaFree(b->ws);
    if (b->lt) cublasLtDestroy(b->lt);
    if (b->h) cublasDestroy(b->h);
    *b = (struct cu_blas){0};
}

/* The cached algorithm of a shape, asking the heuristic the first time. */
static struct cb_algo *algo_for(struct cu_blas *b, int kind, int64_t m, int64_t n, int64_t k,
                                cublasLtMatmulDesc_t op, cublasLtMatrixLayout_t A,
                                cublasLtMatrixLayout_t B, cublasLtMatrixLayout_t D)
{
    for (int i = 0; i < b->n_cache; i++) {
        struct cb_algo *a = &b->cache[i];
        if (a->kind == kind && a->m == m && a->n == n && a->k == k) return a;
    }
    if (b->n_cache == CB_CACHE) ERR_FATAL("cu_blas: more than %d GEMM shapes", CB_CACHE);
    struct cb_algo *a = &b->cache[b->n_cache++];
    *a = (struct cb_algo){.kind = kind, .m = m, .n = n, .k = k};
    cublasLtMatmulPreference_t pref;
    cublasLtMatmulHeuristicResult_t res;
    int found = 0;
    LT(cublasLtMatmulPreferenceCreate(&pref));
    LT(cublasLtMatmulPreferenceSetAttribute(pref, CUBLASLT_MATMUL_PREF_MAX_WORKSPACE_BYTES, &b->ws_bytes,
                                            sizeof b->ws_bytes));
    if (cublasLtMatmulAlgoGetHeuristic(b->lt, op, A, B, D, D, pref, 1, &res, &found) == CUBLAS_STATUS_SUCCESS &&
        found > 0)
        a->algo = res.algo, a->ok = 1;
    cublasLtMatmulPreferenceDestroy(pref);
    return a;
}

static cublasLtMatrixLayout_t layout(cudaDataType_t t, int64_t rows, int64_t cols, int64_t ld)
{
    cublasLtMatrixLayout_t l;
    LT(cublasLtMatrixLayoutCreate(&l, t, (uint64_t)rows, (uint64_t)cols, ld));
    return l;
}

static void set(cublasLtMatmulDesc_t op, cublasLtMatmulDescAttributes_t attr, const void *v, size_t n)
{
    LT(cublasLtMatmulDescSetAttribute(op, attr, v, n));
}

/* D (m × n, column-major, ld ldd) = op(A) · B with the given descriptors; -1 without an algorithm. */
static int run(struct cu_blas *b, int kind, cublasLtMatmulDesc_t op, cudaDataType_t ab, int64_t m,
               int64_t n, int64_t k, const void *A, const void *B, void *D, int64_t ldd, cudaStream_t s)
{
    cublasLtMatrixLayout_t la = layout(ab, k, m, k), lb = layout(ab, k, n, k);
    cublasLtMatrixLayout_t ld = layout(CUDA_R_32F, m, n, ldd);
    struct cb_algo *a = algo_for(b, kind, m, n, k, op, la, lb, ld);
    float one = 1.0f, zero = 0.0f;
    int rc = -1;
    if (a->ok) {
        LT(cublasLtMatmul(b->lt, op, &one, A, la, B, lb, &zero, D, ld, D, ld, &a->algo, b->ws, b->ws_bytes, s));
        rc = 0;
    }
    cublasLtMatrixLayoutDestroy(la), cublasLtMatrixLayoutDestroy(lb), cublasLtMatrixLayoutDestroy(ld);
    return rc;
}

static cublasLtMatmulDesc_t tn_desc(void)
{
    cublasLtMatmulDesc_t op;
    cublasOperation_t t = CUBLAS_OP_T, n = CUBLAS_OP_N;
    LT(cublasLtMatmulDescCreate(&op, CUBLAS_COMPUTE_32F, CUDA_R_32F));
    set(op, CUBLASLT_MATMUL_DESC_TRANSA, &t, sizeof t);
    set(op, CUBLASLT_MATMUL_DESC_TRANSB, &n, sizeof n);
    return op;
}

int cu_blas_fp8(struct cu_blas *b, const struct cb_fp8 *w, const uint8_t *x, const float *xs,
                int64_t t_pad, float *y, int64_t ldy, cudaStream_t s)
{
    cublasLtMatmulDesc_t op = tn_desc();
    cublasLtMatmulMatrixScale_t ma = CUBLASLT_MATMUL_MATRIX_SCALE_BLK128x128_32F;
    cublasLtMatmulMatrixScale_t mb = CUBLASLT_MATMUL_MATRIX_SCALE_VEC128_32F;
    int8_t fast = 0; /* F32 promotion per block, never the fast accumulation */
    set(op, CUBLASLT_MATMUL_DESC_A_SCALE_MODE, &ma, sizeof ma);
    set(op, CUBLASLT_MATMUL_DESC_B_SCALE_MODE, &mb, sizeof mb);
    set(op, CUBLASLT_MATMUL_DESC_A_SCALE_POINTER, &w->ws, sizeof w->ws);
    set(op, CUBLASLT_MATMUL_DESC_B_SCALE_POINTER, &xs, sizeof xs);
    set(op, CUBLASLT_MATMUL_DESC_FAST_ACCUM, &fast, sizeof fast);
    int rc = run(b, 0, op, CUDA_R_8F_E4M3, w->n_pad, t_pad, w->k_pad, w->w, x, y, ldy, s);
    cublasLtMatmulDescDestroy(op);
    return rc;
}

int cu_blas_fp8_supported(struct cu_blas *b, int64_t n_pad, int64_t k_pad, int64_t t_pad)
{
    cublasLtMatmulDesc_t op = tn_desc();
    cublasLtMatmulMatrixScale_t ma = CUBLASLT_MATMUL_MATRIX_SCALE_BLK128x128_32F;
    cublasLtMatmulMatrixScale_t mb = CUBLASLT_MATMUL_MATRIX_SCALE_VEC128_32F;
    set(op, CUBLASLT_MATMUL_DESC_A_SCALE_MODE, &ma, sizeof ma);
    set(op, CUBLASLT_MATMUL_DESC_B_SCALE_MODE, &mb, sizeof mb);
    cublasLtMatrixLayout_t la = layout(CUDA_R_8F_E4M3, k_pad, n_pad, k_pad);
    cublasLtMatrixLayout_t lb = layout(CUDA_R_8F_E4M3, k_pad, t_pad, k_pad);
    cublasLtMatrixLayout_t ld = layout(CUDA_R_32F, n_pad, t_pad, n_pad);
    int ok = algo_for(b, 0, n_pad, t_pad, k_pad, op, la, lb, ld)->ok;
    cublasLtMatrixLayoutDestroy(la), cublasLtMatrixLayoutDestroy(lb), cublasLtMatrixLayoutDestroy(ld);
    cublasLtMatmulDescDestroy(op);
    return ok;
}

int cu_blas_bf16(struct cu_blas *b, const uint16_t *w, int64_t n, int64_t k, const uint16_t *x,
                 int64_t ldx, int64_t t, float *y, int64_t ldy, cudaStream_t s)
{
    float one = 1.0f, zero = 0.0f;
    LT(cublasSetStream(b->h, s));
    cublasStatus_t st = cublasGemmEx(b->h, CUBLAS_OP_T, CUBLAS_OP_N, (int)n, (int)t, (int)k, &one, w,
                                     CUDA_R_16BF, (int)k, x, CUDA_R_16BF, (int)ldx, &zero, y, CUDA_R_32F,
                                     (int)ldy, CUBLAS_COMPUTE_32F, CUBLAS_GEMM_DEFAULT);
    return st == CUBLAS_STATUS_SUCCESS ? 0 : -1;
}

int cu_blas_absorb(struct cu_blas *b, const uint16_t *q_nope, const uint16_t *w_uk, int T, int H,
                   int dn, int dc, int dr, uint16_t *qfull, cudaStream_t s)
{
    float one = 1.0f, zero = 0.0f;
    int W = dc + dr;
    LT(cublasSetStream(b->h, s));
    cublasStatus_t st = cublasGemmStridedBatchedEx(
        b->h, CUBLAS_OP_N, CUBLAS_OP_N, dc, T, dn, &one, w_uk, CUDA_R_16BF, dc, (long long)dn * dc,
        q_nope, CUDA_R_16BF, H * dn, dn, &zero, qfull, CUDA_R_16BF, H * W, W, H, CUBLAS_COMPUTE_32F,
        CUBLAS_GEMM_DEFAULT);
    return st == CUBLAS_STATUS_SUCCESS ? 0 : -1;
}

int cu_blas_vup(struct cu_blas *b, const uint16_t *ctx, const uint16_t *w_uv, int T, int H, int dc,
                int dv, float *attn, cudaStream_t s)
{
    float one = 1.0f, zero = 0.0f;
    LT(cublasSetStream(b->h, s));
    cublasStatus_t st = cublasGemmStridedBatchedEx(
        b->h, CUBLAS_OP_T, CUBLAS_OP_N, dv, T, dc, &one, w_uv, CUDA_R_16BF, dc, (long long)dv * dc, ctx,
        CUDA_R_16BF, H * dc, dc, &zero, attn, CUDA_R_32F, H * dv, dv, H, CUBLAS_COMPUTE_32F,
        CUBLAS_GEMM_DEFAULT);
    return st == CUBLAS_STATUS_SUCCESS ? 0 : -1;
}

int cu_blas_router(struct cu_blas *b, const float *w, int E, int D, const float *x, int t,
                   float *logits, cudaStream_t s)
{
    float one = 1.0f, zero = 0.0f;
    LT(cublasSetStream(b->h, s));
    cublasStatus_t st = cublasSgemm(b->h, CUBLAS_OP_T, CUBLAS_OP_N, E, t, D, &one, w, D, x, D, &zero,
                                    logits, E);
    return st == CUBLAS_STATUS_SUCCESS ? 0 : -1;
}
