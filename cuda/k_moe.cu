/* k_moe: the MoE layer's own kernels — routing (one thread per token running engine/cpu/moe.c's
 * algorithm from cuda/core.h), gathering each expert's tokens, and combining the experts'
 * outputs per token in the CPU's order. The expert matmuls are k_gemm over the gathered rows. */
#include "cuda/kcommon.cuh"

enum { ROUTE_THREADS = 64, ROW_THREADS = 256 };

__global__ void route_kernel(struct core_route_cfg c, const float *logits, const float *bias,
                             float *scratch, unsigned char *taken, int32_t *sel, float *selw, int n)
{
    int64_t t = (int64_t)blockIdx.x * blockDim.x + threadIdx.x;
    if (t >= n) return;
    int64_t E = c.n_experts, ng = c.n_group, nt = E > ng ? E : ng;
    core_route(&c, logits + t * E, bias, scratch + t * (3 * E + ng), taken + t * nt, sel + t * c.k,
               selw + t * c.k);
}

extern "C" cudaError_t k_route(const struct core_route_cfg *c, const float *logits,
                               const float *bias, float *scratch, unsigned char *taken,
                               int32_t *sel, float *selw, int n, cudaStream_t s)
{
    if (n > 0)
        route_kernel<<<(n + ROUTE_THREADS - 1) / ROUTE_THREADS, ROUTE_THREADS, 0, s>>>(
            *c, logits, bias, scratch, taken, sel, selw, n);
    return cudaGetLastError();
}

__global__ void gather_kernel(const float *x, int dim, const int32_t *row_tok, float *xg)
{
    int64_t r = blockIdx.x, t = row_tok[r];
    for (int c = threadIdx.x; c < dim; c += blockDim.x) xg[r * dim + c] = x[t * dim + c];
}

extern "C" cudaError_t k_gather(const float *x, int dim, const int32_t *row_tok, int n_rows,
                                float *xg, cudaStream_t s)
{
    if (n_rows > 0) gather_kernel<<<n_rows, ROW_THREADS, 0, s>>>(x, dim, row_tok, xg);
    return cudaGetLastError();
}

/* Two roundings per term, never fused: cpu_axpy's out += w · y, term by term. */
__global__ void combine_kernel(const float *yg, const int32_t *tok_row, const float *selw, int k,
                               const float *ysh, int dim, float *out)
{
    int64_t t = blockIdx.x;
    for (int c = threadIdx.x; c < dim; c += blockDim.x) {
        float v = 0.0f;
        for (int j = 0; j < k; j++)
            v = core_add(v, core_mul(selw[t * k + j], yg[(int64_t)tok_row[t * k + j] * dim + c]));
        if (ysh) v = core_add(v, core_mul(1.0f, ysh[t * dim + c]));
        out[t * dim + c] = v;
    }
}

extern "C" cudaError_t k_combine(const float *yg, const int32_t *tok_row, const float *selw, int k,
                                 const float *ysh, int n, int dim, float *out, cudaStream_t s)
{
    if (n > 0) combine_kernel<<<n, ROW_THREADS, 0, s>>>(yg, tok_row, selw, k, ysh, dim, out);
    return cudaGetLastError();
}
