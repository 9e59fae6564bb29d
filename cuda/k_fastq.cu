/* k_fastq: the per-row kernels of the fast numerics — residual add + RMSNorm + 1×128
 * quantisation in one pass, SwiGLU + quantisation, the BF16 latent cache rows, the query's BF16
 * split for absorption, the gather of quantised rows into expert order, and the expert combine.
 * Each rounds exactly where engine/cpu/fast_stages.c does: IEEE divisions for the scales and the
 * values (__fdiv_rn: this file is never built with fast math), the hardware's saturating e4m3
 * conversion (equal to nm_e4m3: tested over every float), RNE BF16. */
#include <cuda_fp8.h>

#include "cuda/kcommon.cuh"
#include "cuda/kfast.h"
#include "engine/model/elem.h"

enum { ROW_THREADS = 256, GROUP = 128 };

#define AMAX_FLOOR 1e-4f
#define E4M3_MAX 448.0f

__device__ __forceinline__ float kq_scale(float amax)
{
    return __fdiv_rn(fmaxf(amax, AMAX_FLOOR), E4M3_MAX);
}

__device__ __forceinline__ uint8_t kq_code(float x, float s)
{
    return (uint8_t)__nv_cvt_float_to_fp8(__fdiv_rn(x, s), __NV_SATFINITE, __NV_E4M3);
}

/* Where the scale of (row, group) goes. */
__device__ __forceinline__ int64_t kq_scale_at(const struct kq_out &o, int64_t row, int g,
                                               int groups)
{
    if (o.layout == KQ_TG) return row * groups + g;
    if (o.layout == KQ_GT) return (int64_t)g * o.ld_t + row;
    int lo = 0, hi = o.n_groups - 1; /* the group holding row: offset[lo] <= row < offset[lo + 1] */
    while (lo < hi) {
        int mid = (lo + hi + 1) / 2;
        if (o.offset[mid] <= row) lo = mid;
        else hi = mid - 1;
    }
    int64_t first = o.offset[lo], m = o.offset[lo + 1] - first;
    return first * groups + (int64_t)g * m + (row - first);
}

/* Quantises one row held in shared memory x [k] into row `row` of o: a warp per 128-channel
 * group, four channels per lane. */
__device__ void quant_row(const float *x, int64_t row, const struct kq_out &o)
{
    int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, n_warps = blockDim.x >> 5;
    int groups = (int)((o.k + GROUP - 1) / GROUP);
    if (!o.fp8) {
        for (int64_t c = threadIdx.x; c < o.k_pad; c += blockDim.x)
            o.b[row * o.k_pad + c] = c < o.k ? nm_to_bf16(x[c]) : 0;
        return;
    }
    for (int g = warp; g < groups; g += n_warps) {
        int64_t c0 = (int64_t)g * GROUP + lane * 4;
        float v[4], amax = 0.0f;
#pragma unroll
        for (int i = 0; i < 4; i++) {
            v[i] = c0 + i < o.k ? x[c0 + i] : 0.0f;
            amax = fmaxf(amax, fabsf(v[i]));
        }
        amax = cu_warp_max(amax);
        float sc = kq_scale(amax);
        if (lane == 0) o.s[kq_scale_at(o, row, g, groups)] = sc;
#pragma unroll
        for (int i = 0; i < 4; i++)
            if (c0 + i < o.k_pad) o.q[row * o.k_pad + c0 + i] = c0 + i < o.k ? kq_code(v[i], sc) : 0;
    }
}

__global__ void __launch_bounds__(ROW_THREADS) norm_quant_kernel(struct kq_norm p)
{
    extern __shared__ float xs[];
    __shared__ float red[32];
    int64_t i = blockIdx.x, r = p.rows ? p.rows[i] : i, k = p.out.k;
    float *h = p.h + r * p.ldx;
    const float *a = p.add ? p.add + r * p.ldx : NULL;
    float ss = 0.0f;
    for (int64_t c = threadIdx.x; c < k; c += blockDim.x) {
        float v = h[c];
        if (a) h[c] = v = core_add(v, a[c]);
        xs[c] = v;
        ss = fmaf(v, v, ss);
    }
    if (p.w) {
        float f = core_rms_factor(cu_block_sum(ss, red), (int)k, p.eps);
        for (int64_t c = threadIdx.x; c < k; c += blockDim.x) xs[c] = xs[c] * f * p.w[c];
    }
    __syncthreads();
    if (p.xn_out)
        for (int64_t c = threadIdx.x; c < k; c += blockDim.x) p.xn_out[i * k + c] = xs[c];
    quant_row(xs, i, p.out);
}

/* Rows longer than 12,288 values need more than the default 48 KiB of shared memory. */
template <typename F> static cudaError_t allow_smem(F *kernel, size_t bytes)
{
    if (bytes <= 48 * 1024) return cudaSuccess;
    return cudaFuncSetAttribute(kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)bytes);
}

extern "C" cudaError_t k_norm_quant(const struct kq_norm *p, cudaStream_t s)
{
    size_t bytes = (size_t)p->out.k * sizeof(float);
    cudaError_t rc = allow_smem(norm_quant_kernel, bytes);
    if (rc != cudaSuccess) return rc;
    if (p->n > 0) norm_quant_kernel<<<p->n, ROW_THREADS, bytes, s>>>(*p);
    return cudaGetLastError();
}

__global__ void __launch_bounds__(ROW_THREADS) silu_quant_kernel(const float *gu, int64_t ld,
                                                                  int64_t up_off, int F,
                                                                  const int32_t *valid,
                                                                  float *act_out, struct kq_out o)
{
    extern __shared__ float xs[];
    int64_t r = blockIdx.x;
    if (o.offset && r >= o.offset[o.n_groups]) return; /* past this step's rows */
    int ok = !valid || valid[r] >= 0;
    for (int c = threadIdx.x; c < F; c += blockDim.x) {
        xs[c] = ok ? core_silu_mul(gu[r * ld + c], gu[r * ld + up_off + c]) : 0.0f;
        if (act_out) act_out[r * F + c] = xs[c];
    }
    __syncthreads();
    quant_row(xs, r, o);
}

extern "C" cudaError_t k_silu_quant(const float *gu, int64_t ld, int64_t up_off, int n, int F,
                                    const int32_t *valid, float *act_out, const struct kq_out *out,
                                    cudaStream_t s)
{
    size_t bytes = (size_t)F * sizeof(float);
    cudaError_t rc = allow_smem(silu_quant_kernel, bytes);
    if (rc != cudaSuccess) return rc;
    if (n > 0) silu_quant_kernel<<<n, ROW_THREADS, bytes, s>>>(gu, ld, up_off, F, valid, act_out, *out);
    return cudaGetLastError();
}

/* One token: the latent normed and rounded, the rope key rotated and rounded. */
__global__ void __launch_bounds__(ROW_THREADS) kv_rows_kernel(const float *kva, int64_t ldk, int dc, int dr,
                                                               const float *w, float eps,
                                                               const float *cos, const float *sin,
                                                               const int32_t *slot, uint16_t *cache,
                                                               uint16_t *rows_out)
{
    __shared__ float red[32];
    int64_t t = blockIdx.x, W = dc + dr, np = dr / 2;
    const float *x = kva + t * ldk;
    float ss = 0.0f;
    for (int c = threadIdx.x; c < dc; c += blockDim.x) ss = fmaf(x[c], x[c], ss);
    float f = core_rms_factor(cu_block_sum(ss, red), dc, eps);
    uint16_t *dst = cache + (int64_t)slot[t] * W, *out = rows_out ? rows_out + t * W : NULL;
    for (int c = threadIdx.x; c < dc; c += blockDim.x) {
        uint16_t v = nm_to_bf16(x[c] * f * w[c]);
        dst[c] = v;
        if (out) out[c] = v;
    }
    for (int i = threadIdx.x; i < np; i += blockDim.x) {
        float pr[2] = {x[dc + 2 * i], x[dc + 2 * i + 1]};
        core_rope_pair(pr, cos[t * np + i], sin[t * np + i]);
        for (int j = 0; j < 2; j++) {
            uint16_t v = nm_to_bf16(pr[j]);
            dst[dc + 2 * i + j] = v;
            if (out) out[dc + 2 * i + j] = v;
        }
    }
}

extern "C" cudaError_t k_kv_rows(const float *kva, int64_t ldk, int n, int dc, int dr, const float *w,
                                 float eps, const float *cos, const float *sin, const int32_t *slot,
                                 uint16_t *cache, uint16_t *rows_out, cudaStream_t s)
{
    if (n > 0)
        kv_rows_kernel<<<n, ROW_THREADS, 0, s>>>(kva, ldk, dc, dr, w, eps, cos, sin, slot, cache, rows_out);
    return cudaGetLastError();
}

/* One token, every head: the no-position part to BF16, the rotated part into qfull. */
__global__ void __launch_bounds__(ROW_THREADS) q_pack_kernel(const float *q, int H, int dn, int dr,
                                                              int dc, const float *cos,
                                                              const float *sin, uint16_t *q_nope,
                                                              uint16_t *qfull)
{
    int64_t t = blockIdx.x, qk = dn + dr, np = dr / 2, W = dc + dr;
    for (int64_t e = threadIdx.x; e < (int64_t)H * dn; e += blockDim.x) {
        int64_t h = e / dn, d = e % dn;
        q_nope[(t * H + h) * dn + d] = nm_to_bf16(q[(t * H + h) * qk + d]);
    }
    for (int64_t e = threadIdx.x; e < (int64_t)H * np; e += blockDim.x) {
        int64_t h = e / np, i = e % np;
        const float *x = q + (t * H + h) * qk + dn + 2 * i;
        float pr[2] = {x[0], x[1]};
        core_rope_pair(pr, cos[t * np + i], sin[t * np + i]);
        qfull[(t * H + h) * W + dc + 2 * i] = nm_to_bf16(pr[0]);
        qfull[(t * H + h) * W + dc + 2 * i + 1] = nm_to_bf16(pr[1]);
    }
}

extern "C" cudaError_t k_q_pack(const float *q, int n, int H, int dn, int dr, int dc,
                                const float *cos, const float *sin, uint16_t *q_nope,
                                uint16_t *qfull, cudaStream_t s)
{
    if (n > 0) q_pack_kernel<<<n, ROW_THREADS, 0, s>>>(q, H, dn, dr, dc, cos, sin, q_nope, qfull);
    return cudaGetLastError();
}

/* One destination row: its token's codes and scales (or BF16), or zeros for padding. */
__global__ void __launch_bounds__(ROW_THREADS) gather_q_kernel(struct kq_out src,
                                                                const int32_t *row_tok,
                                                                struct kq_out o)
{
    int64_t r = blockIdx.x;
    if (o.offset && r >= o.offset[o.n_groups]) return; /* past this step's rows */
    int64_t t = row_tok[r];
    int groups = (int)((o.k + GROUP - 1) / GROUP);
    if (!o.fp8) {
        for (int64_t c = threadIdx.x; c < o.k_pad; c += blockDim.x)
            o.b[r * o.k_pad + c] = t >= 0 ? src.b[t * src.k_pad + c] : 0;
        return;
    }
    for (int64_t c = threadIdx.x; c < o.k_pad; c += blockDim.x)
        o.q[r * o.k_pad + c] = t >= 0 ? src.q[t * src.k_pad + c] : 0;
    for (int g = threadIdx.x; g < groups; g += blockDim.x)
        o.s[kq_scale_at(o, r, g, groups)] = t >= 0 ? src.s[kq_scale_at(src, t, g, groups)] : 0.0f;
}

extern "C" cudaError_t k_gather_q(const struct kq_out *src, const int32_t *row_tok, int rows,
                                  const struct kq_out *dst, cudaStream_t s)
{
    if (rows > 0) gather_q_kernel<<<rows, ROW_THREADS, 0, s>>>(*src, row_tok, *dst);
    return cudaGetLastError();
}

/* Two roundings per term, never fused: cpu_axpy's out += w · y, experts ascending, then shared. */
__global__ void __launch_bounds__(ROW_THREADS) combine_rows_kernel(const float *y,
                                                                    const int32_t *tok_row,
                                                                    const float *selw, int k,
                                                                    int shared, const float *ysh,
                                                                    int D, float *out)
{
    int64_t t = blockIdx.x, kk = k + shared;
    for (int c = threadIdx.x; c < D; c += blockDim.x) {
        float v = 0.0f;
        for (int j = 0; j < k; j++)
            v = core_add(v, core_mul(selw[t * k + j], y[(int64_t)tok_row[t * kk + j] * D + c]));
        if (shared) v = core_add(v, core_mul(1.0f, y[(int64_t)tok_row[t * kk + k] * D + c]));
        if (ysh) v = core_add(v, core_mul(1.0f, ysh[t * D + c]));
        out[t * D + c] = v;
    }
}

extern "C" cudaError_t k_combine_rows(const float *y, const int32_t *tok_row, const float *selw,
                                      int k, int shared, const float *ysh, int T, int D, float *out,
                                      cudaStream_t s)
{
    if (T > 0) combine_rows_kernel<<<T, ROW_THREADS, 0, s>>>(y, tok_row, selw, k, shared, ysh, D, out);
    return cudaGetLastError();
}
