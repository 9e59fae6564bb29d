/* kcommon: device helpers every kernel file shares — weight element access, warp and block sums,
 * launch sizes. Included by the kernel files (cuda/k_*.cu) only. */
#ifndef SEEKD_CUDA_KCOMMON_CUH
#define SEEKD_CUDA_KCOMMON_CUH

#include "cuda/kernels.h"

__device__ __forceinline__ int64_t cu_esize(int dtype)
{
    return dtype == CORE_F32 ? 4 : dtype == CORE_F8E4M3 ? 1 : 2;
}

/* Element (r, c) of w widened, FP8 block scale applied: cpu_weight_row's value. */
__device__ __forceinline__ float cu_w_at(const struct cu_w &w, int64_t r, int64_t c)
{
    const char *row = (const char *)w.data + r * w.cols * cu_esize(w.dtype);
    float s = 1.0f;
    if (w.scale) s = w.scale[core_scale_at(r, c, w.row0, w.col0, w.block_rows, w.block_cols, w.n_cb)];
    return core_widen(w.dtype, row, c, s);
}

/* Sum over the 32 lanes of a warp, in a fixed tree order (every lane gets the result). */
__device__ __forceinline__ float cu_warp_sum(float v)
{
    for (int o = 16; o > 0; o >>= 1) v += __shfl_xor_sync(0xffffffffu, v, o);
    return v;
}

__device__ __forceinline__ float cu_warp_max(float v)
{
    for (int o = 16; o > 0; o >>= 1) v = fmaxf(v, __shfl_xor_sync(0xffffffffu, v, o));
    return v;
}

/* Sum over a block of up to 1024 threads (a multiple of 32); every thread gets the result.
 * red: 32 floats of shared memory. */
__device__ __forceinline__ float cu_block_sum(float v, float *red)
{
    int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, n_warps = blockDim.x >> 5;
    v = cu_warp_sum(v);
    __syncthreads(); /* red may still be read from a previous call */
    if (lane == 0) red[warp] = v;
    __syncthreads();
    v = lane < n_warps ? red[lane] : 0.0f;
    return cu_warp_sum(v);
}

/* Blocks for n elements at `per` per block, capped for grid-stride loops. */
static inline unsigned cu_blocks(int64_t n, int per)
{
    int64_t b = (n + per - 1) / per;
    return (unsigned)(b < 1 ? 1 : b > 65535 * 16 ? 65535 * 16 : b);
}

#endif
