/* k_sample: the sampling pre-filter on the device (engine/sampler_cand.h; smp_prefilter is its
 * host reference) — per row of logits the 64 largest clean logits (value descending, id
 * ascending), the largest logit outside them, the outside mass (each term as the sampler computes
 * it, expf((float)((double)v - max)), added in double) and the finite count, so that only these
 * cross to the host.
 *
 * One CTA per row: a 4-pass radix select over order-preserving keys finds the 64th key; ties at
 * it are taken in id order (each thread owns a contiguous run of ids and a scan orders the runs);
 * the candidates are sorted by one thread; fixed-order tree reductions keep it deterministic. */
#include <cfloat>

#include "cuda/kcommon.cuh"
#include "cuda/kfast.h"

enum { SP_THREADS = 1024, SP_K = 64 };

__device__ __forceinline__ float sp_clean(float x)
{
    if (isnan(x)) return -INFINITY;
    if (x == INFINITY) return FLT_MAX;
    return x == 0.0f ? 0.0f : x; /* -0 and +0 compare equal: one key */
}

/* A key whose unsigned order is the float order. */
__device__ __forceinline__ uint32_t sp_key(float v)
{
    uint32_t u = __float_as_uint(v);
    return (u & 0x80000000u) ? ~u : (u | 0x80000000u);
}

struct sp_smem {
    unsigned hist[256];
    uint32_t thr;          /* the 64th largest key */
    int need_eq;           /* keys equal to thr to take, the lowest ids first */
    int tie_base[SP_THREADS];
    int n_cand;
    int32_t cid[SP_K];
    float cval[SP_K];
    double dred[SP_THREADS];
    float fred[SP_THREADS];
    int ired[SP_THREADS];
};

/* The k-th largest key of the row, by digits of 8 bits from the top. */
__device__ void sp_select(const float *row, int V, int k, struct sp_smem *s)
{
    uint32_t prefix = 0, mask = 0;
    int remaining = k;
    for (int shift = 24; shift >= 0; shift -= 8) {
        for (int i = threadIdx.x; i < 256; i += blockDim.x) s->hist[i] = 0;
        __syncthreads();
        for (int i = threadIdx.x; i < V; i += blockDim.x) {
            uint32_t key = sp_key(sp_clean(row[i]));
            if ((key & mask) == prefix) atomicAdd(&s->hist[(key >> shift) & 255u], 1u);
        }
        __syncthreads();
        if (threadIdx.x == 0) {
            int cum = 0, d = 255;
            for (; d > 0 && cum + (int)s->hist[d] < remaining; d--) cum += (int)s->hist[d];
            s->need_eq = remaining - cum;
            s->thr = prefix | ((uint32_t)d << shift);
        }
        __syncthreads();
        remaining = s->need_eq, prefix = s->thr, mask |= 0xffu << shift;
    }
}

/* Whether element i (key) is a candidate: above the threshold, or one of the first ties. */
__device__ __forceinline__ int sp_inside(uint32_t key, uint32_t thr, int tie_rank, int need_eq)
{
    return key > thr || (key == thr && tie_rank < need_eq);
}

/* Candidates into the shared list, then sorted (value descending, id ascending). */
__device__ void sp_collect(const float *row, int V, int chunk, struct sp_smem *s)
{
    int lo = threadIdx.x * chunk, hi = lo + chunk < V ? lo + chunk : V, ties = 0;
    for (int i = lo; i < hi; i++) ties += sp_key(sp_clean(row[i])) == s->thr;
    s->tie_base[threadIdx.x] = ties;
    if (threadIdx.x == 0) s->n_cand = 0;
    __syncthreads();
    if (threadIdx.x == 0)
        for (int i = 0, at = 0; i < (int)blockDim.x; i++) {
            int n = s->tie_base[i];
            s->tie_base[i] = at, at += n;
        }
    __syncthreads();
    for (int i = lo, r = s->tie_base[threadIdx.x]; i < hi; i++) {
        float v = sp_clean(row[i]);
        uint32_t key = sp_key(v);
        if (sp_inside(key, s->thr, r, s->need_eq)) {
            int slot = atomicAdd(&s->n_cand, 1);
            s->cid[slot] = i, s->cval[slot] = v;
        }
        r += key == s->thr;
    }
    __syncthreads();
    if (threadIdx.x == 0)
        for (int i = 1; i < s->n_cand; i++)
            for (int j = i; j > 0 && (s->cval[j] > s->cval[j - 1] || (s->cval[j] == s->cval[j - 1] && s->cid[j] < s->cid[j - 1])); j--) {
                float tv = s->cval[j];
                int32_t ti = s->cid[j];
                s->cval[j] = s->cval[j - 1], s->cid[j] = s->cid[j - 1];
                s->cval[j - 1] = tv, s->cid[j - 1] = ti;
            }
    __syncthreads();
}

__global__ void __launch_bounds__(SP_THREADS) sample_prep_kernel(struct ksample p)
{
    extern __shared__ __align__(16) unsigned char sp_raw[];
    struct sp_smem *s = (struct sp_smem *)sp_raw;
    int64_t r = blockIdx.x;
    const float *row = p.logits + r * p.V;
    int k = p.V < SP_K ? p.V : SP_K, chunk = (p.V + (int)blockDim.x - 1) / (int)blockDim.x;
    sp_select(row, p.V, k, s);
    sp_collect(row, p.V, chunk, s);
    double m = s->cval[0], mass = 0.0;
    float out_max = -INFINITY;
    int lo = threadIdx.x * chunk, hi = lo + chunk < p.V ? lo + chunk : p.V, fin = 0;
    for (int i = lo, rank = s->tie_base[threadIdx.x]; i < hi; i++) {
        float v = sp_clean(row[i]);
        uint32_t key = sp_key(v);
        fin += v > -INFINITY;
        if (!sp_inside(key, s->thr, rank, s->need_eq) && v > -INFINITY) {
            out_max = fmaxf(out_max, v);
            double x = (double)v - m;
            mass += x < -200.0 ? 0.0 : (double)expf((float)x);
        }
        rank += key == s->thr;
    }
    s->dred[threadIdx.x] = mass, s->fred[threadIdx.x] = out_max, s->ired[threadIdx.x] = fin;
    __syncthreads();
    for (int w = blockDim.x / 2; w > 0; w /= 2) { /* a fixed tree: the same sums every run */
        if ((int)threadIdx.x < w) {
            s->dred[threadIdx.x] += s->dred[threadIdx.x + w];
            s->fred[threadIdx.x] = fmaxf(s->fred[threadIdx.x], s->fred[threadIdx.x + w]);
            s->ired[threadIdx.x] += s->ired[threadIdx.x + w];
        }
        __syncthreads();
    }
    if (threadIdx.x < k) p.ids[r * SP_K + threadIdx.x] = s->cid[threadIdx.x], p.vals[r * SP_K + threadIdx.x] = s->cval[threadIdx.x];
    if (threadIdx.x == 0) p.out_max[r] = s->fred[0], p.out_mass[r] = s->dred[0], p.n_finite[r] = s->ired[0];
}

extern "C" cudaError_t k_sample_prep(const struct ksample *p, cudaStream_t s)
{
    if (p->rows < 1) return cudaSuccess;
    size_t bytes = sizeof(struct sp_smem);
    cudaError_t rc = cudaFuncSetAttribute(sample_prep_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)bytes);
    if (rc != cudaSuccess) return rc;
    sample_prep_kernel<<<p->rows, SP_THREADS, bytes, s>>>(*p);
    return cudaGetLastError();
}
