/* k_ops: the element-wise and per-row kernels of a step — embedding, RMSNorm, RoPE, the
 * latent-cache store, SwiGLU, residual add, vector widening. Each is a loop around a core of
 * cuda/core.h, so its arithmetic is the CPU's (tests/cuda/test_cores.c). */
#include "cuda/kcommon.cuh"

enum { ROW_THREADS = 256 };

__global__ void embed_kernel(struct cu_w w, const int32_t *tokens, float *h)
{
    int64_t t = blockIdx.x, r = tokens[t];
    for (int64_t c = threadIdx.x; c < w.cols; c += blockDim.x) h[t * w.cols + c] = cu_w_at(w, r, c);
}

extern "C" cudaError_t k_embed(const struct cu_w *embed, const int32_t *tokens, int n, float *h,
                               cudaStream_t s)
{
    if (n > 0) embed_kernel<<<n, ROW_THREADS, 0, s>>>(*embed, tokens, h);
    return cudaGetLastError();
}

/* One block per row: the sum of squares reduced in a fixed tree, then x · r · w per element in
 * cpu_rmsnorm's order. */
__global__ void rmsnorm_kernel(const float *x, int64_t ldx, const int32_t *rows, struct cu_w w,
                               int dim, float eps, float *out, int64_t ldo)
{
    __shared__ float red[32];
    int64_t i = blockIdx.x, r = rows ? rows[i] : i;
    const float *xr = x + r * ldx;
    float ss = 0.0f;
    for (int c = threadIdx.x; c < dim; c += blockDim.x) ss = fmaf(xr[c], xr[c], ss);
    float f = core_rms_factor(cu_block_sum(ss, red), dim, eps);
    for (int c = threadIdx.x; c < dim; c += blockDim.x)
        out[i * ldo + c] = xr[c] * f * cu_w_at(w, 0, c);
}

extern "C" cudaError_t k_rmsnorm(const float *x, int64_t ldx, const int32_t *rows,
                                 const struct cu_w *w, int n, int dim, float eps, float *out,
                                 int64_t ldo, cudaStream_t s)
{
    if (n > 0) rmsnorm_kernel<<<n, ROW_THREADS, 0, s>>>(x, ldx, rows, *w, dim, eps, out, ldo);
    return cudaGetLastError();
}

__global__ void rope_kernel(float *x, int n_heads, int64_t ldx, int stride, int off,
                            const float *cos, const float *sin, int n_pairs)
{
    int64_t t = blockIdx.x;
    for (int e = threadIdx.x; e < n_heads * n_pairs; e += blockDim.x) {
        int h = e / n_pairs, i = e % n_pairs;
        core_rope_pair(x + t * ldx + (int64_t)h * stride + off + 2 * i, cos[t * n_pairs + i],
                       sin[t * n_pairs + i]);
    }
}

extern "C" cudaError_t k_rope(float *x, int n, int n_heads, int64_t ldx, int stride, int off,
                              const float *cos, const float *sin, int n_pairs, cudaStream_t s)
{
    if (n > 0) rope_kernel<<<n, ROW_THREADS, 0, s>>>(x, n_heads, ldx, stride, off, cos, sin, n_pairs);
    return cudaGetLastError();
}

__global__ void kv_store_kernel(const float *kva, int width, const int32_t *slot, void *cache,
                                int cache_dtype)
{
    int64_t t = blockIdx.x, row = (int64_t)slot[t] * width;
    for (int c = threadIdx.x; c < width; c += blockDim.x) {
        float v = kva[t * width + c];
        if (cache_dtype == CORE_BF16) ((uint16_t *)cache)[row + c] = core_to_bf16(v);
        else ((float *)cache)[row + c] = v;
    }
}

extern "C" cudaError_t k_kv_store(const float *kva, int n, int width, const int32_t *slot,
                                  void *cache, int cache_dtype, cudaStream_t s)
{
    if (n > 0) kv_store_kernel<<<n, ROW_THREADS, 0, s>>>(kva, width, slot, cache, cache_dtype);
    return cudaGetLastError();
}

__global__ void silu_mul_kernel(float *a, const float *b, int64_t n)
{
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n;
         i += (int64_t)gridDim.x * blockDim.x)
        a[i] = core_silu_mul(a[i], b[i]);
}

extern "C" cudaError_t k_silu_mul(float *a, const float *b, int64_t n, cudaStream_t s)
{
    if (n > 0) silu_mul_kernel<<<cu_blocks(n, ROW_THREADS), ROW_THREADS, 0, s>>>(a, b, n);
    return cudaGetLastError();
}

__global__ void add_kernel(float *h, const float *x, int64_t n)
{
    for (int64_t i = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; i < n;
         i += (int64_t)gridDim.x * blockDim.x)
        h[i] = core_add(h[i], x[i]);
}

extern "C" cudaError_t k_add(float *h, const float *x, int64_t n, cudaStream_t s)
{
    if (n > 0) add_kernel<<<cu_blocks(n, ROW_THREADS), ROW_THREADS, 0, s>>>(h, x, n);
    return cudaGetLastError();
}

__global__ void widen_vec_kernel(struct cu_w w, float *out)
{
    for (int64_t c = (int64_t)blockIdx.x * blockDim.x + threadIdx.x; c < w.cols;
         c += (int64_t)gridDim.x * blockDim.x)
        out[c] = cu_w_at(w, 0, c);
}

extern "C" cudaError_t k_widen_vec(const struct cu_w *w, float *out, cudaStream_t s)
{
    widen_vec_kernel<<<cu_blocks(w->cols, ROW_THREADS), ROW_THREADS, 0, s>>>(*w, out);
    return cudaGetLastError();
}
