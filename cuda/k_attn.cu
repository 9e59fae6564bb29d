/* k_attn: multi-head latent attention in the absorbed form, F32, over the paged latent cache —
 * the query folded through W_UK, then softmax attention of each (token, head) over its
 * sequence's cached rows up to its own position, the same arithmetic for prefill chunks and
 * decode tokens. W_UV runs afterwards as a batched k_gemm. */
#include "cuda/kcommon.cuh"

enum { ABSORB_THREADS = 128, ATTN_THREADS = 128, CHUNK = 64 };

/* qlat[t][h][c] accumulated over d in order with FMA: the CPU's axpy_rows, element for element. */
__global__ void absorb_kernel(const float *q, int n_heads, int qk, int dn, int dv, struct cu_w kv_b,
                              float *qlat)
{
    int64_t th = blockIdx.x, h = (int)blockIdx.x % n_heads;
    const float *qh = q + th * qk;
    int64_t dc = kv_b.cols, r0 = h * (dn + dv);
    for (int64_t c = threadIdx.x; c < dc; c += blockDim.x) {
        float acc = 0.0f;
        for (int d = 0; d < dn; d++) acc = fmaf(qh[d], cu_w_at(kv_b, r0 + d, c), acc);
        qlat[th * dc + c] = acc;
    }
}

extern "C" cudaError_t k_absorb(const float *q, int n, int n_heads, int qk, int dn, int dv,
                                const struct cu_w *kv_b, float *qlat, cudaStream_t s)
{
    if (n > 0) absorb_kernel<<<n * n_heads, ABSORB_THREADS, 0, s>>>(q, n_heads, qk, dn, dv, *kv_b, qlat);
    return cudaGetLastError();
}

__device__ __forceinline__ float cache_at(const void *cache, int dtype, int64_t i)
{
    return dtype == CORE_BF16 ? core_bf16(((const uint16_t *)cache)[i]) : ((const float *)cache)[i];
}

/* Dot of the query (latent then rope part, in shared memory) with one cache row, by one warp:
 * the latent dot plus the rope dot, times the scale — the CPU's score. */
__device__ float row_score(const struct cu_attn &p, const float *ql, const float *qr, int64_t row)
{
    int lane = threadIdx.x & 31;
    float dl = 0.0f, dr = 0.0f;
    for (int c = lane; c < p.dc; c += 32) dl = fmaf(ql[c], cache_at(p.cache, p.cache_dtype, row + c), dl);
    for (int c = lane; c < p.dr; c += 32)
        dr = fmaf(qr[c], cache_at(p.cache, p.cache_dtype, row + p.dc + c), dr);
    return p.scale * (cu_warp_sum(dl) + cu_warp_sum(dr));
}

/* Scores of positions p0 .. p0 + m into sc (one warp per position), their rows' offsets into
 * rowoff. */
__device__ void chunk_scores(const struct cu_attn &p, int64_t t, int p0, int m, const float *ql,
                             const float *qr, float *sc, int64_t *rowoff)
{
    int warp = threadIdx.x >> 5, n_warps = blockDim.x >> 5;
    const int32_t *table = p.tables + p.table_off[t];
    for (int i = warp; i < m; i += n_warps) {
        int pos = p0 + i;
        int64_t row = ((int64_t)table[pos / p.block_size] * p.block_size + pos % p.block_size) * p.width;
        float v = row_score(p, ql, qr, row);
        if ((threadIdx.x & 31) == 0) sc[i] = v, rowoff[i] = row;
    }
}

/* One block per (token, head): scores a chunk of positions at a time, with the running maximum
 * and sum of an online softmax; the context sum of the latents stays in shared memory. */
__global__ void __launch_bounds__(ATTN_THREADS) attn_kernel(struct cu_attn p)
{
    extern __shared__ float sm[];
    float *ql = sm, *qr = ql + p.dc, *acc = qr + p.dr, *sc = acc + p.dc;
    __shared__ int64_t rowoff[CHUNK];
    __shared__ float run_max, run_sum, alpha;
    int64_t th = blockIdx.x, t = (int)blockIdx.x / p.n_heads;
    int n = p.pos[t] + 1;
    for (int c = threadIdx.x; c < p.dc; c += blockDim.x) ql[c] = p.qlat[th * p.dc + c], acc[c] = 0.0f;
    for (int c = threadIdx.x; c < p.dr; c += blockDim.x) qr[c] = p.q[th * p.qk + p.dn + c];
    if (threadIdx.x == 0) run_max = -INFINITY, run_sum = 0.0f;
    __syncthreads();
    for (int p0 = 0; p0 < n; p0 += CHUNK) {
        int m = n - p0 < CHUNK ? n - p0 : CHUNK;
        chunk_scores(p, t, p0, m, ql, qr, sc, rowoff);
        __syncthreads();
        if (threadIdx.x < 32) { /* the first warp: new maximum, weights, running sum */
            float mx = run_max;
            for (int i = threadIdx.x; i < m; i += 32) mx = fmaxf(mx, sc[i]);
            mx = cu_warp_max(mx);
            for (int i = threadIdx.x; i < m; i += 32) sc[i] = expf(sc[i] - mx);
            __syncwarp();
            if (threadIdx.x == 0) {
                float a = expf(run_max - mx), sum = run_sum * a;
                for (int i = 0; i < m; i++) sum += sc[i];
                alpha = a, run_sum = sum, run_max = mx;
            }
        }
        __syncthreads();
        for (int c = threadIdx.x; c < p.dc; c += blockDim.x) {
            float v = acc[c] * alpha;
            for (int i = 0; i < m; i++) v = fmaf(sc[i], cache_at(p.cache, p.cache_dtype, rowoff[i] + c), v);
            acc[c] = v;
        }
        __syncthreads();
    }
    for (int c = threadIdx.x; c < p.dc; c += blockDim.x) p.ctx[th * p.dc + c] = acc[c] / run_sum;
}

extern "C" cudaError_t k_attn(const struct cu_attn *p, cudaStream_t s)
{
    if (p->n < 1) return cudaSuccess;
    size_t shared = (size_t)(2 * p->dc + p->dr + CHUNK) * sizeof(float);
    attn_kernel<<<(unsigned)(p->n * p->n_heads), ATTN_THREADS, shared, s>>>(*p);
    return cudaGetLastError();
}
