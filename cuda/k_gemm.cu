/* k_gemm: the reference-numerics matmul over stored-dtype weights — a generic SIMT kernel that
 * widens weights in registers (cuda/core.h, exactly the CPU's values) and accumulates every
 * output over the inner dimension in ascending order, in F32 with FMA.
 *
 * Two shapes of work: up to GEMV_MAX tokens one warp owns an output row and streams it once for
 * every token (decode); beyond, 64-row × 16-token tiles through shared memory. */
#include "cuda/kcommon.cuh"

enum { GEMV_MAX = 8, GEMV_WARPS = 8, TM = 64, TN = 16, TK = 32, TILE_THREADS = 256 };

/* One warp per output row; lanes split the inner dimension, a fixed shuffle tree joins them. */
template <int NT>
__global__ void __launch_bounds__(GEMV_WARPS * 32) gemv_kernel(struct cu_gemm p)
{
    int lane = threadIdx.x & 31;
    int64_t o = (int64_t)blockIdx.x * GEMV_WARPS + (threadIdx.x >> 5), b = blockIdx.y;
    if (o >= p.n_out) return;
    int64_t r = p.r0 + b * p.w_step + o, K = p.w.cols;
    const float *x = p.x + b * p.x_step;
    float acc[NT];
#pragma unroll
    for (int t = 0; t < NT; t++) acc[t] = 0.0f;
    for (int64_t i = lane; i < K; i += 32) {
        float w = cu_w_at(p.w, r, i);
#pragma unroll
        for (int t = 0; t < NT; t++) acc[t] = fmaf(w, x[t * p.ldx + i], acc[t]);
    }
    float *y = p.y + b * p.y_step + o;
#pragma unroll
    for (int t = 0; t < NT; t++) {
        float v = cu_warp_sum(acc[t]);
        if (lane == 0) y[t * p.ldy] = v;
    }
}

/* A 64-row × 16-token tile: thread (row, quarter) owns one row and four tokens. (One block per
 * multiprocessor as the bound: with more, ptxas caps the registers at 40 and spills.) */
__global__ void __launch_bounds__(TILE_THREADS, 1) tile_kernel(struct cu_gemm p)
{
    __shared__ float ws[TM][TK + 1], xs[TN][TK + 1];
    int tid = threadIdx.x, row = tid % TM, tq = tid / TM;
    int64_t o0 = (int64_t)blockIdx.x * TM, t0 = (int64_t)blockIdx.y * TN, b = blockIdx.z;
    int64_t K = p.w.cols, rbase = p.r0 + b * p.w_step;
    const float *x = p.x + b * p.x_step;
    float acc[4] = {0.0f, 0.0f, 0.0f, 0.0f};
    for (int64_t k0 = 0; k0 < K; k0 += TK) {
        for (int e = tid; e < TM * TK; e += TILE_THREADS) {
            int rr = e / TK, kk = e % TK;
            int64_t o = o0 + rr, k = k0 + kk;
            ws[rr][kk] = o < p.n_out && k < K ? cu_w_at(p.w, rbase + o, k) : 0.0f;
        }
        for (int e = tid; e < TN * TK; e += TILE_THREADS) {
            int tt = e / TK, kk = e % TK;
            int64_t t = t0 + tt, k = k0 + kk;
            xs[tt][kk] = t < p.n && k < K ? x[t * p.ldx + k] : 0.0f;
        }
        __syncthreads();
#pragma unroll 8
        for (int kk = 0; kk < TK; kk++) {
            float w = ws[row][kk];
#pragma unroll
            for (int j = 0; j < 4; j++) acc[j] = fmaf(w, xs[tq * 4 + j][kk], acc[j]);
        }
        __syncthreads();
    }
    float *y = p.y + b * p.y_step;
#pragma unroll
    for (int j = 0; j < 4; j++) {
        int64_t o = o0 + row, t = t0 + tq * 4 + j;
        if (o < p.n_out && t < p.n) y[t * p.ldy + o] = acc[j];
    }
}

template <int NT>
static void launch_gemv(const struct cu_gemm *p, cudaStream_t s)
{
    dim3 grid((unsigned)((p->n_out + GEMV_WARPS - 1) / GEMV_WARPS), (unsigned)p->n_batch);
    gemv_kernel<NT><<<grid, GEMV_WARPS * 32, 0, s>>>(*p);
}

extern "C" cudaError_t k_gemm(const struct cu_gemm *p, cudaStream_t s)
{
    if (p->n < 1 || p->n_out < 1 || p->n_batch < 1) return cudaSuccess;
    switch (p->n) {
    case 1: launch_gemv<1>(p, s); break;
    case 2: launch_gemv<2>(p, s); break;
    case 3: launch_gemv<3>(p, s); break;
    case 4: launch_gemv<4>(p, s); break;
    case 5: launch_gemv<5>(p, s); break;
    case 6: launch_gemv<6>(p, s); break;
    case 7: launch_gemv<7>(p, s); break;
    case 8: launch_gemv<8>(p, s); break;
    default: {
        dim3 grid((unsigned)((p->n_out + TM - 1) / TM), (unsigned)((p->n + TN - 1) / TN),
                  (unsigned)p->n_batch);
        tile_kernel<<<grid, TILE_THREADS, 0, s>>>(*p);
    }
    }
    return cudaGetLastError();
}
