/* k_synth: synthetic weights generated on the device (engine/model/synth_hash.h: the same hash
 * and the same float operations as the host, so the CPU regenerates exactly what the GPU holds),
 * straight into the fast layout — FP8 codes padded, scale grids in either order, W_UK / W_UV
 * dequantised to BF16, vectors widened to F32 — without a byte crossing PCIe. Also the exhaustive
 * check of the hardware e4m3 conversion against nm_e4m3. */
#include <cuda_fp8.h>

#include "cuda/kcommon.cuh"
#include "cuda/kfast.h"
#include "engine/model/synth_hash.h"

enum { THREADS = 256 };

__device__ __forceinline__ int synth_esize(int kind)
{
    return kind == SYNTH_FP8 ? 1 : kind == SYNTH_SCALE || kind == SYNTH_BIAS ? 4 : 2;
}

__global__ void synth_fill_kernel(struct ksynth t, void *dst, int64_t pitch, int64_t n)
{
    int es = synth_esize(t.kind);
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x) {
        int64_t r = i / pitch, c = i % pitch;
        uint32_t v = r < t.rows && c < t.cols ? synth_bits((enum synth_kind)t.kind, t.key, (uint64_t)(r * t.cols + c), t.gain) : 0u;
        if (es == 1) ((uint8_t *)dst)[i] = (uint8_t)v;
        else if (es == 2) ((uint16_t *)dst)[i] = (uint16_t)v;
        else ((uint32_t *)dst)[i] = v;
    }
}

extern "C" cudaError_t k_synth_fill(const struct ksynth *t, void *dst, int64_t pitch, int64_t dst_rows,
                                    cudaStream_t s)
{
    int64_t n = pitch * dst_rows;
    if (n > 0) synth_fill_kernel<<<cu_blocks(n, THREADS), THREADS, 0, s>>>(*t, dst, pitch, n);
    return cudaGetLastError();
}

__global__ void synth_scales_kernel(struct ksynth g, int order, int64_t row_off, float *dst, int64_t ld)
{
    int64_t n = g.rows * g.cols;
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x) {
        int64_t nb = i / g.cols, kb = i % g.cols;
        float v = __uint_as_float(synth_bits(SYNTH_SCALE, g.key, (uint64_t)i, g.gain));
        if (order == 0) dst[(row_off + nb) * ld + kb] = v;
        else dst[kb * ld + row_off + nb] = v;
    }
}

extern "C" cudaError_t k_synth_scales(const struct ksynth *grid, int order, int64_t row_off,
                                      float *dst, int64_t ld, cudaStream_t s)
{
    int64_t n = grid->rows * grid->cols;
    if (n > 0) synth_scales_kernel<<<cu_blocks(n, THREADS), THREADS, 0, s>>>(*grid, order, row_off, dst, ld);
    return cudaGetLastError();
}

/* Element (h, d, c) of W_UK (first 0, rows dn) or W_UV (first dn, rows dv): bf16(code × scale). */
__global__ void synth_absorb_kernel(struct ksynth codes, struct ksynth grid, int H, int dn, int dv,
                                    int first, int rows, uint16_t *dst)
{
    int64_t dc = codes.cols, n = (int64_t)H * rows * dc;
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x) {
        int64_t c = i % dc, hd = i / dc, h = hd / rows, d = hd % rows, row = h * (dn + dv) + first + d;
        uint8_t code = (uint8_t)synth_bits(SYNTH_FP8, codes.key, (uint64_t)(row * dc + c), 0.0f);
        float sc = __uint_as_float(synth_bits(SYNTH_SCALE, grid.key, (uint64_t)((row / 128) * grid.cols + c / 128), grid.gain));
        dst[i] = nm_to_bf16(core_fp8(code, sc));
    }
}

extern "C" cudaError_t k_synth_absorb(const struct ksynth *codes, const struct ksynth *grid, int H,
                                      int dn, int dv, int first, int rows, uint16_t *dst,
                                      cudaStream_t s)
{
    int64_t n = (int64_t)H * rows * codes->cols;
    if (n > 0) synth_absorb_kernel<<<cu_blocks(n, THREADS), THREADS, 0, s>>>(*codes, *grid, H, dn, dv, first, rows, dst);
    return cudaGetLastError();
}

__global__ void synth_f32_kernel(struct ksynth t, float *dst)
{
    int64_t n = t.rows * t.cols;
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n; i += (int64_t)gridDim.x * blockDim.x) {
        uint32_t v = synth_bits((enum synth_kind)t.kind, t.key, (uint64_t)i, t.gain);
        dst[i] = t.kind == SYNTH_BIAS ? __uint_as_float(v) : nm_bf16_value((uint16_t)v);
    }
}

extern "C" cudaError_t k_synth_f32(const struct ksynth *t, float *dst, cudaStream_t s)
{
    int64_t n = t->rows * t->cols;
    if (n > 0) synth_f32_kernel<<<cu_blocks(n, THREADS), THREADS, 0, s>>>(*t, dst);
    return cudaGetLastError();
}

/* Every float bit pattern of the range through the hardware conversion and nm_e4m3; NaN codes
 * (0x7f, 0xff) count as one. */
__global__ void e4m3_sweep_kernel(uint64_t first, uint64_t count, unsigned long long *bad)
{
    unsigned long long miss = 0;
    for (uint64_t i = (uint64_t)blockIdx.x * blockDim.x + threadIdx.x; i < count; i += (uint64_t)gridDim.x * blockDim.x) {
        float x = __uint_as_float((uint32_t)(first + i));
        uint8_t hw = (uint8_t)__nv_cvt_float_to_fp8(x, __NV_SATFINITE, __NV_E4M3), sw = nm_e4m3(x);
        miss += hw != sw && !((hw & 0x7f) == 0x7f && (sw & 0x7f) == 0x7f);
    }
    if (miss) atomicAdd(bad, miss);
}

extern "C" cudaError_t k_e4m3_sweep(uint64_t first, uint64_t count, unsigned long long *bad,
                                    cudaStream_t s)
{
    e4m3_sweep_kernel<<<132 * 16, THREADS, 0, s>>>(first, count, bad);
    return cudaGetLastError();
}
