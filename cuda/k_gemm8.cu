/* k_gemm8: the FP8 block-scaled GEMM on CUDA cores — the reference and the fallback of the
 * tensor-core paths (cuBLASLt for dense linears, CUTLASS for experts), any shape. Each output sums
 * a 128-wide K block of code products in F32 (the products are exact; only the block's sum
 * rounds), then promotes it: acc += blk · (s_x · s_w), multiply and add rounded apart
 * (engine/cpu/numerics.c nm_matmul_fp8, which sums the block exactly).
 *
 * One CTA: 64 outputs × 16 rows, a 128-wide K block at a time through shared memory; thread
 * (output, quarter) owns one output and four rows. The grouped form takes its rows in tiles of 16
 * that never straddle two groups (groups start at multiples of 16). */
#include "cuda/kcommon.cuh"
#include "cuda/kfast.h"

enum { TN = 64, TR = 16, TK = 128, THREADS = 256 };

struct g8_tile {
    const uint8_t *w;
    const float *ws;
    int64_t r0;      /* first row of the tile */
    int64_t n_rows;  /* rows of the operand (the tile stops there) */
};

/* Scale layouts: the weight grid FL_NK ([nb][ld]) or FL_KN ([kb][ld]); the activation scales
 * KQ_TG ([rows][groups]) or KQ_GT ([groups][xs_ld_t]). */
struct g8_scales {
    int64_t ws_ld;
    int ws_kn;
    int64_t xs_ld_t;
};

__device__ void gemm8_tile(const struct g8_tile &tl, const struct g8_scales &sc, int64_t n_out, int64_t K,
                           int64_t k_pad, const uint8_t *x, const float *xs, float *y, int64_t ldy)
{
    __shared__ float wt[TN][TK + 1], xt[TR][TK + 1];
    __shared__ float xsc[TR];
    int tid = threadIdx.x, o_l = tid % TN, rq = tid / TN;
    int64_t o0 = (int64_t)blockIdx.x * TN, o = o0 + o_l, G = (K + TK - 1) / TK;
    float acc[4] = {0.0f, 0.0f, 0.0f, 0.0f};
    for (int64_t g = 0; g < G; g++) {
        int64_t k0 = g * TK;
        for (int e = tid; e < TN * TK; e += THREADS) {
            int64_t rr = e / TK, kk = e % TK, oo = o0 + rr, k = k0 + kk;
            wt[rr][kk] = oo < n_out && k < K ? core_fp8(tl.w[oo * k_pad + k], 1.0f) : 0.0f;
        }
        for (int e = tid; e < TR * TK; e += THREADS) {
            int64_t rr = e / TK, kk = e % TK, r = tl.r0 + rr, k = k0 + kk;
            xt[rr][kk] = r < tl.n_rows && k < K ? core_fp8(x[r * k_pad + k], 1.0f) : 0.0f;
        }
        if (tid < TR) {
            int64_t r = tl.r0 + tid;
            xsc[tid] = r < tl.n_rows ? xs[sc.xs_ld_t ? g * sc.xs_ld_t + r : r * G + g] : 0.0f;
        }
        __syncthreads();
        float blk[4] = {0.0f, 0.0f, 0.0f, 0.0f};
        for (int kk = 0; kk < TK; kk++) {
            float w = wt[o_l][kk];
#pragma unroll
            for (int j = 0; j < 4; j++) blk[j] = fmaf(w, xt[rq * 4 + j][kk], blk[j]);
        }
        float sw = o < n_out ? tl.ws[sc.ws_kn ? g * sc.ws_ld + o / 128 : (o / 128) * sc.ws_ld + g] : 0.0f;
#pragma unroll
        for (int j = 0; j < 4; j++) acc[j] = __fadd_rn(acc[j], __fmul_rn(blk[j], __fmul_rn(xsc[rq * 4 + j], sw)));
        __syncthreads();
    }
#pragma unroll
    for (int j = 0; j < 4; j++) {
        int64_t r = tl.r0 + rq * 4 + j;
        if (o < n_out && r < tl.n_rows) y[r * ldy + o] = acc[j];
    }
}

__global__ void __launch_bounds__(THREADS) gemm8_kernel(struct kgemm8 p)
{
    struct g8_tile tl = {p.w, p.ws, (int64_t)blockIdx.y * TR, p.rows};
    struct g8_scales sc = {p.ws_ld, p.ws_kn, p.xs_ld_t};
    gemm8_tile(tl, sc, p.n_out, p.k, p.k_pad, p.x, p.xs, p.y, p.ldy);
}

extern "C" cudaError_t k_gemm8(const struct kgemm8 *p, cudaStream_t s)
{
    if (p->rows < 1 || p->n_out < 1) return cudaSuccess;
    dim3 grid((unsigned)((p->n_out + TN - 1) / TN), (unsigned)((p->rows + TR - 1) / TR));
    gemm8_kernel<<<grid, THREADS, 0, s>>>(*p);
    return cudaGetLastError();
}

__global__ void __launch_bounds__(THREADS) gemm8_grouped_kernel(struct kgemm8g p)
{
    int64_t r0 = (int64_t)blockIdx.y * TR;
    if (r0 >= p.offset[p.n_groups]) return; /* beyond the last group: nothing this step */
    int lo = 0, hi = p.n_groups - 1;
    while (lo < hi) { /* the group holding r0 */
        int mid = (lo + hi + 1) / 2;
        if (p.offset[mid] <= r0) lo = mid;
        else hi = mid - 1;
    }
    struct g8_tile tl = {p.w[lo], p.ws[lo], r0, p.offset[lo + 1]};
    struct g8_scales sc = {p.ws_ld, 0, 0};
    gemm8_tile(tl, sc, p.n_out, p.k, p.k_pad, p.x, p.xs, p.y, p.ldy);
}

extern "C" cudaError_t k_gemm8_grouped(const struct kgemm8g *p, cudaStream_t s)
{
    if (p->rows < 1 || p->n_out < 1) return cudaSuccess;
    dim3 grid((unsigned)((p->n_out + TN - 1) / TN), (unsigned)((p->rows + TR - 1) / TR));
    gemm8_grouped_kernel<<<grid, THREADS, 0, s>>>(*p);
    return cudaGetLastError();
}
