/* k_mla: latent attention of the fast numerics over the paged BF16 cache — the absorbed query
 * qfull [T][H][dc + dr] against cache rows (keys: all dc + dr values; values: the first dc),
 * split-KV by engine/plan/mlaplan's work lists, then a combine of the splits.
 *
 * Numerics (engine/cpu/fast_stages.c fs_attend): scores in F32 from BF16 operands, times the
 * softmax scale; an online softmax in F32 (the running maximum of each split; the emulation takes
 * the global one — the BF16 rounding of p differs by at most 2^-9 relative); p rounded to BF16
 * for P·V with F32 accumulation; the splits merged by their maxima and sums; ctx = BF16(O / l).
 *
 * Two partial kernels with that arithmetic: a tensor-core one (mma.sync m16n8k16 BF16) for the
 * real MLA shape (dc 512, dr 64: one CTA = one work list × 16 heads, four warps; a 64-position
 * chunk of rows in shared memory serves as keys and, its first 512 columns, as values), and a
 * SIMT one for any shape (one CTA = one work list × one head). */
#include "cuda/kcommon.cuh"
#include "cuda/kfast.h"
#include "engine/model/elem.h"

enum { CHUNK = 64, SIMT_THREADS = 128, TC_HEADS = 16, TC_WARPS = 4 };
enum { TC_DC = 512, TC_DR = 64, TC_W = 576, TC_PITCH = TC_W + 8, P_PITCH = CHUNK + 8 };

__device__ __forceinline__ float bf(uint16_t h)
{
    return nm_bf16_value(h);
}

/* The cache row of position pos of token t. */
__device__ __forceinline__ int64_t row_of(const struct kmla &p, int t, int pos)
{
    const int32_t *table = p.tables + p.table_off[t];
    return (int64_t)table[pos / p.block_size] * p.block_size + pos % p.block_size;
}

/* ---- SIMT ----------------------------------------------------------------------------------- */

/* One item, one head: the split's unnormalised output and its (max, sum). */
__device__ void simt_item(const struct kmla &p, const int32_t *it, int h, float *q, float *acc,
                          float *sc, int64_t *rows)
{
    __shared__ float run_max, run_sum, alpha;
    int W = p.dc + p.dr, t = it[0], warp = threadIdx.x >> 5, lane = threadIdx.x & 31;
    for (int c = threadIdx.x; c < W; c += blockDim.x) q[c] = bf(p.qfull[((int64_t)t * p.H + h) * W + c]);
    for (int c = threadIdx.x; c < p.dc; c += blockDim.x) acc[c] = 0.0f;
    if (threadIdx.x == 0) run_max = -INFINITY, run_sum = 0.0f;
    __syncthreads();
    for (int p0 = it[1]; p0 < it[2]; p0 += CHUNK) {
        int m = it[2] - p0 < CHUNK ? it[2] - p0 : CHUNK;
        for (int i = warp; i < m; i += blockDim.x >> 5) {
            int64_t row = row_of(p, t, p0 + i) * W;
            float d = 0.0f;
            for (int c = lane; c < W; c += 32) d = fmaf(q[c], bf(p.cache[row + c]), d);
            d = cu_warp_sum(d);
            if (lane == 0) sc[i] = p.scale * d, rows[i] = row;
        }
        __syncthreads();
        if (threadIdx.x < 32) {
            float mx = run_max;
            for (int i = lane; i < m; i += 32) mx = fmaxf(mx, sc[i]);
            mx = cu_warp_max(mx);
            for (int i = lane; i < m; i += 32) sc[i] = expf(sc[i] - mx);
            __syncwarp();
            if (lane == 0) {
                float a = expf(run_max - mx), sum = run_sum * a;
                for (int i = 0; i < m; i++) sum += sc[i];
                alpha = a, run_sum = sum, run_max = mx;
            }
        }
        __syncthreads();
        for (int c = threadIdx.x; c < p.dc; c += blockDim.x) {
            float v = acc[c] * alpha;
            for (int i = 0; i < m; i++) v = fmaf(nm_bf16(sc[i]), bf(p.cache[rows[i] + c]), v);
            acc[c] = v;
        }
        __syncthreads();
    }
    int64_t o = (int64_t)it[3] * p.H + h;
    for (int c = threadIdx.x; c < p.dc; c += blockDim.x) p.part_o[o * p.dc + c] = acc[c];
    if (threadIdx.x == 0) p.part_ml[2 * o] = run_max, p.part_ml[2 * o + 1] = run_sum;
    __syncthreads();
}

__global__ void __launch_bounds__(SIMT_THREADS) mla_simt_kernel(struct kmla p)
{
    extern __shared__ float sm[];
    __shared__ int64_t rows[CHUNK];
    float *q = sm, *acc = q + p.dc + p.dr, *sc = acc + p.dc;
    int list = blockIdx.x, h = blockIdx.y;
    for (int i = p.cta_begin[list]; i < p.cta_begin[list + 1]; i++) simt_item(p, p.items + 4 * i, h, q, acc, sc, rows);
}

/* ---- tensor cores --------------------------------------------------------------------------- */

__device__ __forceinline__ void mma_bf16(float *d, const uint32_t *a, const uint32_t *b)
{
    asm volatile("mma.sync.aligned.m16n8k16.row.col.f32.bf16.bf16.f32 {%0,%1,%2,%3}, "
                 "{%4,%5,%6,%7}, {%8,%9}, {%0,%1,%2,%3};\n"
                 : "+f"(d[0]), "+f"(d[1]), "+f"(d[2]), "+f"(d[3])
                 : "r"(a[0]), "r"(a[1]), "r"(a[2]), "r"(a[3]), "r"(b[0]), "r"(b[1]));
}

/* Two consecutive BF16 in shared memory as one register. */
__device__ __forceinline__ uint32_t ld2(const uint16_t *p)
{
    return *(const uint32_t *)p;
}

/* The B fragment of rows [k0, k0 + 16) × columns [n0, n0 + 8) of a row-major BF16 tile. */
__device__ __forceinline__ void ldb_trans(uint32_t *b, const uint16_t *tile, int pitch, int k0, int n0)
{
    int lane = threadIdx.x & 31;
    const uint16_t *addr = tile + (int64_t)(k0 + (lane & 15)) * pitch + n0;
    uint32_t sa = (uint32_t)__cvta_generic_to_shared(addr);
    asm volatile("ldmatrix.sync.aligned.m8n8.x2.trans.shared.b16 {%0,%1}, [%2];\n"
                 : "=r"(b[0]), "=r"(b[1])
                 : "r"(sa));
}

struct tc_smem {
    uint16_t q[TC_HEADS * TC_PITCH];      /* the 16 heads' queries */
    uint16_t kv[CHUNK * TC_PITCH];        /* 64 cache rows */
    uint16_t pb[TC_HEADS * P_PITCH];      /* BF16 probabilities */
    float red[TC_WARPS][TC_HEADS];        /* per-warp row maxima / sums */
    float m[TC_HEADS], l[TC_HEADS], alpha[TC_HEADS];
};

/* Rows [p0, p0 + m) of the item's token into kv (zeros past m), 16 bytes per thread-step. */
__device__ void tc_load_chunk(const struct kmla &p, int t, int p0, int m, struct tc_smem *s)
{
    for (int e = threadIdx.x; e < CHUNK * (TC_W / 8); e += blockDim.x) {
        int i = e / (TC_W / 8), c = e % (TC_W / 8);
        uint4 v = make_uint4(0, 0, 0, 0);
        if (i < m) v = *(const uint4 *)(p.cache + row_of(p, t, p0 + i) * TC_W + c * 8);
        *(uint4 *)(s->kv + i * TC_PITCH + c * 8) = v;
    }
}

/* S = Q · Kᵀ for this warp's 16 positions (two n-tiles), times the scale; masked past m. */
__device__ void tc_scores(const struct tc_smem *s, int m, float scale, float sacc[2][4])
{
    int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, g = lane >> 2, q = lane & 3;
    for (int j = 0; j < 2; j++)
        for (int i = 0; i < 4; i++) sacc[j][i] = 0.0f;
    for (int k0 = 0; k0 < TC_W; k0 += 16) {
        uint32_t a[4] = {ld2(s->q + g * TC_PITCH + k0 + 2 * q), ld2(s->q + (g + 8) * TC_PITCH + k0 + 2 * q),
                         ld2(s->q + g * TC_PITCH + k0 + 8 + 2 * q), ld2(s->q + (g + 8) * TC_PITCH + k0 + 8 + 2 * q)};
        for (int j = 0; j < 2; j++) {
            int n = warp * 16 + j * 8 + g;
            uint32_t b[2] = {ld2(s->kv + n * TC_PITCH + k0 + 2 * q), ld2(s->kv + n * TC_PITCH + k0 + 8 + 2 * q)};
            mma_bf16(sacc[j], a, b);
        }
    }
    for (int j = 0; j < 2; j++)
        for (int i = 0; i < 4; i++) {
            int pos = warp * 16 + j * 8 + 2 * q + (i & 1);
            sacc[j][i] = pos < m ? scale * sacc[j][i] : -INFINITY;
        }
}

/* Online softmax over the chunk: new row maxima, weights (BF16 into pb), sums, rescale factors. */
__device__ void tc_softmax(struct tc_smem *s, float sacc[2][4])
{
    int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, g = lane >> 2, q = lane & 3;
    for (int half = 0; half < 2; half++) { /* rows g and g + 8 */
        float mx = fmaxf(fmaxf(sacc[0][2 * half], sacc[0][2 * half + 1]), fmaxf(sacc[1][2 * half], sacc[1][2 * half + 1]));
        mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 1));
        mx = fmaxf(mx, __shfl_xor_sync(0xffffffffu, mx, 2));
        if (q == 0) s->red[warp][g + 8 * half] = mx;
    }
    __syncthreads();
    if (threadIdx.x < TC_HEADS) {
        int r = threadIdx.x;
        float mx = s->m[r];
        for (int w = 0; w < TC_WARPS; w++) mx = fmaxf(mx, s->red[w][r]);
        s->alpha[r] = expf(s->m[r] - mx), s->m[r] = mx;
    }
    __syncthreads();
    for (int half = 0; half < 2; half++) {
        int r = g + 8 * half;
        float sum = 0.0f;
        for (int j = 0; j < 2; j++)
            for (int i = 0; i < 2; i++) {
                float e = expf(sacc[j][2 * half + i] - s->m[r]);
                sum += e;
                s->pb[r * P_PITCH + warp * 16 + j * 8 + 2 * q + i] = nm_to_bf16(e);
            }
        sum += __shfl_xor_sync(0xffffffffu, sum, 1);
        sum += __shfl_xor_sync(0xffffffffu, sum, 2);
        __syncthreads(); /* red is reused */
        if (q == 0) s->red[warp][r] = sum;
    }
    __syncthreads();
    if (threadIdx.x < TC_HEADS) {
        int r = threadIdx.x;
        float sum = 0.0f;
        for (int w = 0; w < TC_WARPS; w++) sum += s->red[w][r];
        s->l[r] = s->l[r] * s->alpha[r] + sum;
    }
    __syncthreads();
}

/* O = O · alpha + P · V for this warp's 128 latent columns (16 n-tiles of 8). */
__device__ void tc_pv(const struct tc_smem *s, float oacc[16][4])
{
    int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, g = lane >> 2, q = lane & 3;
    float a0 = s->alpha[g], a1 = s->alpha[g + 8];
    for (int j = 0; j < 16; j++) oacc[j][0] *= a0, oacc[j][1] *= a0, oacc[j][2] *= a1, oacc[j][3] *= a1;
    for (int k0 = 0; k0 < CHUNK; k0 += 16) {
        uint32_t a[4] = {ld2(s->pb + g * P_PITCH + k0 + 2 * q), ld2(s->pb + (g + 8) * P_PITCH + k0 + 2 * q),
                         ld2(s->pb + g * P_PITCH + k0 + 8 + 2 * q), ld2(s->pb + (g + 8) * P_PITCH + k0 + 8 + 2 * q)};
        for (int j = 0; j < 16; j++) {
            uint32_t b[2];
            ldb_trans(b, s->kv, TC_PITCH, k0, warp * 128 + j * 8);
            mma_bf16(oacc[j], a, b);
        }
    }
}

__device__ void tc_item(const struct kmla &p, const int32_t *it, int h0, struct tc_smem *s)
{
    int lane = threadIdx.x & 31, warp = threadIdx.x >> 5, g = lane >> 2, q = lane & 3, t = it[0];
    float oacc[16][4], sacc[2][4];
    for (int e = threadIdx.x; e < TC_HEADS * (TC_W / 8); e += blockDim.x) {
        int r = e / (TC_W / 8), c = e % (TC_W / 8);
        *(uint4 *)(s->q + r * TC_PITCH + c * 8) = *(const uint4 *)(p.qfull + ((int64_t)t * p.H + h0 + r) * TC_W + c * 8);
    }
    if (threadIdx.x < TC_HEADS) s->m[threadIdx.x] = -INFINITY, s->l[threadIdx.x] = 0.0f;
    for (int j = 0; j < 16; j++) oacc[j][0] = oacc[j][1] = oacc[j][2] = oacc[j][3] = 0.0f;
    for (int p0 = it[1]; p0 < it[2]; p0 += CHUNK) {
        int m = it[2] - p0 < CHUNK ? it[2] - p0 : CHUNK;
        __syncthreads();
        tc_load_chunk(p, t, p0, m, s);
        __syncthreads();
        tc_scores(s, m, p.scale, sacc);
        tc_softmax(s, sacc);
        tc_pv(s, oacc);
    }
    int64_t o0 = ((int64_t)it[3] * p.H + h0) * TC_DC;
    for (int j = 0; j < 16; j++) {
        int c = warp * 128 + j * 8 + 2 * q;
        p.part_o[o0 + (int64_t)g * TC_DC + c] = oacc[j][0], p.part_o[o0 + (int64_t)g * TC_DC + c + 1] = oacc[j][1];
        p.part_o[o0 + (int64_t)(g + 8) * TC_DC + c] = oacc[j][2], p.part_o[o0 + (int64_t)(g + 8) * TC_DC + c + 1] = oacc[j][3];
    }
    if (threadIdx.x < TC_HEADS) {
        int64_t o = (int64_t)it[3] * p.H + h0 + threadIdx.x;
        p.part_ml[2 * o] = s->m[threadIdx.x], p.part_ml[2 * o + 1] = s->l[threadIdx.x];
    }
}

__global__ void __launch_bounds__(TC_WARPS * 32) mla_tc_kernel(struct kmla p)
{
    extern __shared__ __align__(16) unsigned char tc_raw[];
    struct tc_smem *s = (struct tc_smem *)tc_raw;
    int list = blockIdx.x, h0 = blockIdx.y * TC_HEADS;
    for (int i = p.cta_begin[list]; i < p.cta_begin[list + 1]; i++) tc_item(p, p.items + 4 * i, h0, s);
}

/* ---- combine -------------------------------------------------------------------------------- */

/* One (token, head): the splits merged by their maxima; ctx = BF16(O / l). */
__global__ void __launch_bounds__(SIMT_THREADS) mla_combine_kernel(struct kmla p)
{
    int t = blockIdx.x, h = blockIdx.y, b = p.part_begin[t], e = p.part_begin[t + 1];
    float mx = -INFINITY, l = 0.0f;
    for (int s = b; s < e; s++) mx = fmaxf(mx, p.part_ml[2 * ((int64_t)s * p.H + h)]);
    for (int s = b; s < e; s++) {
        int64_t o = (int64_t)s * p.H + h;
        l += p.part_ml[2 * o + 1] * expf(p.part_ml[2 * o] - mx);
    }
    for (int c = threadIdx.x; c < p.dc; c += blockDim.x) {
        float v = 0.0f;
        for (int s = b; s < e; s++) {
            int64_t o = (int64_t)s * p.H + h;
            v = fmaf(p.part_o[o * p.dc + c], expf(p.part_ml[2 * o] - mx), v);
        }
        p.ctx[((int64_t)t * p.H + h) * p.dc + c] = nm_to_bf16(v / l);
    }
}

extern "C" cudaError_t k_mla(const struct kmla *p, int generic, cudaStream_t s)
{
    if (p->T < 1) return cudaSuccess;
    int tc = !generic && p->dc == TC_DC && p->dr == TC_DR && p->H % TC_HEADS == 0;
    if (tc) {
        size_t bytes = sizeof(struct tc_smem); /* ~96 KiB: two CTAs per SM */
        cudaError_t rc = cudaFuncSetAttribute(mla_tc_kernel, cudaFuncAttributeMaxDynamicSharedMemorySize, (int)bytes);
        if (rc != cudaSuccess) return rc;
        mla_tc_kernel<<<dim3((unsigned)p->n_ctas, (unsigned)(p->H / TC_HEADS)), TC_WARPS * 32, bytes, s>>>(*p);
    } else {
        size_t bytes = (size_t)(2 * p->dc + p->dr + CHUNK) * sizeof(float);
        mla_simt_kernel<<<dim3((unsigned)p->n_ctas, (unsigned)p->H), SIMT_THREADS, bytes, s>>>(*p);
    }
    mla_combine_kernel<<<dim3((unsigned)p->T, (unsigned)p->H), SIMT_THREADS, 0, s>>>(*p);
    return cudaGetLastError();
}
