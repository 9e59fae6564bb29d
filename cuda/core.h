/* core: the per-element arithmetic of the CUDA kernels, written once for the device and the host.
 *
 * Under nvcc these are __host__ __device__ functions the kernels call; under gcc they are plain
 * static inline C that tests/cuda/test_cores.c checks against engine/cpu's reference functions
 * (widening, BF16 rounding, RoPE, SwiGLU, RMSNorm's scale, routing). No CUDA header is included:
 * the kernels are thin loops around these, so what they compute is tested without a GPU.
 *
 * Every formula follows the CPU reference's order of operations. Where nvcc could contract
 * a*b + c into one FMA and so change the bits of something the CPU computes exactly (RoPE), the
 * device code uses the round-to-nearest intrinsics that forbid it. */
#ifndef SEEKD_CUDA_CORE_H
#define SEEKD_CUDA_CORE_H

#include <math.h>
#include <stdint.h>
#include <string.h>

#ifdef __CUDACC__
#define SEEKD_HD __host__ __device__
#else
#define SEEKD_HD
#endif

/* Weight element types, numbered as engine/model/dtype.h's enum dtype (checked in cuda/). */
enum core_dtype { CORE_F32 = 0, CORE_BF16 = 1, CORE_F16 = 2, CORE_F8E4M3 = 3 };

SEEKD_HD static inline float core_bits_f32(uint32_t u)
{
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

SEEKD_HD static inline uint32_t core_f32_bits(float f)
{
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return u;
}

SEEKD_HD static inline float core_bf16(uint16_t h)
{
    return core_bits_f32((uint32_t)h << 16);
}

/* IEEE half to float, exactly (subnormals, infinities and NaN included). */
SEEKD_HD static inline float core_f16(uint16_t h)
{
    uint32_t sign = (uint32_t)(h & 0x8000u) << 16, e = (h >> 10) & 31u, m = h & 1023u;
    if (e == 31) return core_bits_f32(sign | 0x7f800000u | (m << 13));
    if (e) return core_bits_f32(sign | ((e + 112u) << 23) | (m << 13));
    float v = (float)m * 0x1p-24f; /* subnormal: exact, m < 2^10 */
    return sign ? -v : v;
}

/* e4m3 times its block scale, as the CPU's vector widening does: the code's bits placed in an
 * f32's exponent and mantissa make the exact value times 2^-120. */
SEEKD_HD static inline float core_fp8(uint8_t b, float scale)
{
    uint32_t u = ((uint32_t)(b & 0x80u) << 24) | ((uint32_t)(b & 0x7fu) << 20);
    return (core_bits_f32(u) * 0x1p120f) * scale;
}

/* Round to nearest even, NaN kept quiet: engine/model/dtype.h's f32_to_bf16. */
SEEKD_HD static inline uint16_t core_to_bf16(float f)
{
    uint32_t u = core_f32_bits(f);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x40u);
    u += 0x7fffu + ((u >> 16) & 1u);
    return (uint16_t)(u >> 16);
}

/* Element i of a row of dtype dt at p; FP8 multiplied by scale (other types ignore it). */
SEEKD_HD static inline float core_widen(int dt, const void *p, int64_t i, float scale)
{
    if (dt == CORE_BF16) return core_bf16(((const uint16_t *)p)[i]);
    if (dt == CORE_F8E4M3) return core_fp8(((const uint8_t *)p)[i], scale);
    if (dt == CORE_F16) return core_f16(((const uint16_t *)p)[i]);
    return ((const float *)p)[i];
}

/* The FP8 scale-grid entry of element (r, c) of a weight or of a slice of one whose first
 * element sits at (row0, col0) inside its first block; n_cb: the grid's columns. A weight's
 * indices fit 32 bits, so the divisions are the fast 32-bit ones (a 64-bit division is a called
 * routine whose stack frame the device build refuses). */
SEEKD_HD static inline int64_t core_scale_at(int64_t r, int64_t c, int row0, int col0,
                                             int block_rows, int block_cols, int64_t n_cb)
{
    return (int64_t)(((int)r + row0) / block_rows) * n_cb + ((int)c + col0) / block_cols;
}

SEEKD_HD static inline float core_mul(float a, float b)
{
#ifdef __CUDA_ARCH__
    return __fmul_rn(a, b);
#else
    return a * b;
#endif
}

SEEKD_HD static inline float core_add(float a, float b)
{
#ifdef __CUDA_ARCH__
    return __fadd_rn(a, b);
#else
    return a + b;
#endif
}

SEEKD_HD static inline float core_sub(float a, float b)
{
#ifdef __CUDA_ARCH__
    return __fsub_rn(a, b);
#else
    return a - b;
#endif
}

/* Rotates the pair (x[0], x[1]) by an angle of cos c, sin s: rope_apply, bit for bit. */
SEEKD_HD static inline void core_rope_pair(float *x, float c, float s)
{
    float a = x[0], b = x[1];
    x[0] = core_sub(core_mul(a, c), core_mul(b, s));
    x[1] = core_add(core_mul(a, s), core_mul(b, c));
}

/* silu(a) * b, as cpu_silu_mul. */
SEEKD_HD static inline float core_silu_mul(float a, float b)
{
    return a / (1.0f + expf(-a)) * b;
}

/* RMSNorm's factor from the sum of squares of dim values. */
SEEKD_HD static inline float core_rms_factor(float sum_sq, int dim, float eps)
{
    return 1.0f / sqrtf(sum_sq / (float)dim + eps);
}

/* ---- routing: engine/cpu/moe.c's moe_route, one token at a time --------------------------- */

struct core_route_cfg {
    int n_experts, k, n_group, topk_group;
    int sigmoid;       /* scoring: 1 sigmoid (V3), 0 softmax (V2) */
    int method;        /* 0 greedy, 1 group-limited greedy, 2 noaux_tc (enum topk_method) */
    int normalise;     /* V3 with norm_topk_prob */
    float factor;      /* routed_scaling_factor */
};

/* Index of the largest value among v[0..n) not yet taken; ties to the lower index. */
SEEKD_HD static inline int core_argmax_free(const float *v, const unsigned char *taken, int n)
{
    int best = -1;
    for (int i = 0; i < n; i++)
        if (!taken[i] && (best < 0 || v[i] > v[best])) best = i;
    return best;
}

SEEKD_HD static inline void core_top_k(const float *v, int n, int k, unsigned char *taken, int *idx)
{
    for (int i = 0; i < n; i++) taken[i] = 0;
    for (int j = 0; j < k; j++) {
        idx[j] = core_argmax_free(v, taken, n);
        taken[idx[j]] = 1;
    }
}

SEEKD_HD static inline float core_group_score(const float *v, int size, int sum_top2)
{
    float a = -INFINITY, b = -INFINITY;
    for (int i = 0; i < size; i++) {
        if (v[i] > a) {
            b = a;
            a = v[i];
        } else if (v[i] > b) {
            b = v[i];
        }
    }
    return sum_top2 && size > 1 ? a + b : a;
}

/* Experts outside the topk_group best groups lose their choice score (-inf V3, 0 V2). keep:
 * topk_group ints of scratch. */
SEEKD_HD static inline void core_mask_groups(const struct core_route_cfg *c, float *choice,
                                             float *gscore, unsigned char *taken, int *keep)
{
    int size = c->n_experts / c->n_group, v3 = c->method == 2;
    for (int g = 0; g < c->n_group; g++) gscore[g] = core_group_score(choice + g * size, size, v3);
    core_top_k(gscore, c->n_group, c->topk_group, taken, keep);
    for (int g = 0; g < c->n_group; g++) taken[g] = 0;
    for (int j = 0; j < c->topk_group; j++) taken[keep[j]] = 1;
    for (int g = 0; g < c->n_group; g++)
        if (!taken[g])
            for (int i = 0; i < size; i++) choice[g * size + i] = v3 ? -INFINITY : 0.0f;
}

SEEKD_HD static inline void core_affinities(const struct core_route_cfg *c, const float *logits,
                                            float *s)
{
    int E = c->n_experts;
    if (c->sigmoid) {
        for (int i = 0; i < E; i++) s[i] = 1.0f / (1.0f + expf(-logits[i]));
        return;
    }
    float mx = -INFINITY, sum = 0.0f;
    for (int i = 0; i < E; i++) mx = fmaxf(mx, logits[i]);
    for (int i = 0; i < E; i++) sum += s[i] = expf(logits[i] - mx);
    for (int i = 0; i < E; i++) s[i] /= sum;
}

SEEKD_HD static inline void core_sort_pairs(int *idx, float *w, int k)
{
    for (int i = 1; i < k; i++)
        for (int j = i; j > 0 && idx[j - 1] > idx[j]; j--) {
            int ti = idx[j];
            float tw = w[j];
            idx[j] = idx[j - 1], w[j] = w[j - 1];
            idx[j - 1] = ti, w[j - 1] = tw;
        }
}

/* One token's experts (ascending) and weights. scratch: 3 E + n_group floats; taken: max(E,
 * n_group) bytes; bias: E floats or NULL. The top-k lists live in the tail of scratch. */
SEEKD_HD static inline void core_route(const struct core_route_cfg *c, const float *logits,
                                       const float *bias, float *scratch, unsigned char *taken,
                                       int *idx, float *weights)
{
    int E = c->n_experts, k = c->k;
    float *s = scratch, *choice = scratch + E, *gscore = scratch + 2 * E;
    int *keep = (int *)(void *)(scratch + 2 * E + c->n_group);
    core_affinities(c, logits, s);
    for (int i = 0; i < E; i++) choice[i] = s[i] + (bias && c->method == 2 ? bias[i] : 0.0f);
    if (c->method != 0) core_mask_groups(c, choice, gscore, taken, keep);
    core_top_k(choice, E, k, taken, idx);
    float sum = 0.0f;
    for (int j = 0; j < k; j++) sum += weights[j] = s[idx[j]];
    for (int j = 0; j < k; j++) {
        if (c->normalise) weights[j] /= sum + 1e-20f;
        weights[j] *= c->factor;
    }
    core_sort_pairs(idx, weights, k);
}

#endif
