/* numerics: the arithmetic of `--numerics fast` (DeepSeek's FP8 recipe) written out on the CPU —
 * the reference every fast GPU kernel is checked against, and a way to see on any machine what
 * the GPU computes. docs/ARCHITECTURE.md ("The numerics contract of fast") lists every rounding
 * point; these are its pieces:
 *
 *   e4m3       float → float8_e4m3fn, round to nearest even, saturating to ±448 (the hardware's
 *              cvt.rn.satfinite), subnormals kept; and back, exactly
 *   bf16       round to nearest even
 *   1×128      per token and per group of 128 channels: s = max(amax, 1e-4) / 448 (one IEEE
 *              division), q = e4m3(x / s) (one IEEE division per value)
 *   FP8 GEMM   y = Σ_kb blk(kb) · (s_x[kb] · s_w[kb]) over 128-wide K blocks in ascending order,
 *              where blk is the block's exact dot product of codes rounded once to F32 (products
 *              of two e4m3 values are exact in F32 and 128 of them sum exactly in double), and
 *              every multiply and add of the promotion is rounded on its own
 *   BF16 GEMM  y = the dot product of BF16 operands summed in double and rounded once to F32
 *              (what an F32-accumulating tensor core approaches, up to its summation order)
 *
 * The scalar encoder and decoder are inline and NM_HD so that CUDA code can run the very same
 * function (__host__ __device__ under nvcc); the rest is plain C. */
#ifndef SEEKD_NUMERICS_H
#define SEEKD_NUMERICS_H

#include <stdint.h>
#include <string.h>

#include "engine/model/model.h"

#ifdef __CUDACC__
#define NM_HD __host__ __device__
#else
#define NM_HD
#endif

enum {
    NM_GROUP = 128 /* channels per activation scale; the weight scale block's edge */
};

#define NM_E4M3_MAX   448.0f
#define NM_AMAX_FLOOR 1e-4f /* a group's amax below this is taken as this (zero groups) */

NM_HD static inline uint32_t nm_bits(float f)
{
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    return u;
}

NM_HD static inline float nm_float(uint32_t u)
{
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

/* Rounds the integer m · 2^-sh to the nearest integer, ties to even (1 <= sh <= 31). */
NM_HD static inline uint32_t nm_round_shift(uint32_t m, int sh)
{
    uint32_t q = m >> sh, rest = m & ((1u << sh) - 1u), half = 1u << (sh - 1);
    return q + (rest > half || (rest == half && (q & 1u)));
}

/* float → float8_e4m3fn code: round to nearest even; |x| >= 448 and ±inf saturate to ±448;
 * NaN → 0x7f. */
NM_HD static inline uint8_t nm_e4m3(float x)
{
    uint32_t u = nm_bits(x), a = u & 0x7fffffffu, sign = (u >> 24) & 0x80u;
    if (a > 0x7f800000u) return 0x7f;
    if (a >= 0x43e00000u) return (uint8_t)(sign | 0x7eu); /* 448 and beyond */
    int e = (int)(a >> 23);                                 /* biased f32 exponent */
    if (e < 121) { /* below 2^-6: a multiple of 2^-9 (a subnormal code, or 2^-6 after rounding) */
        int sh = 141 - e; /* value · 2^9 = mant · 2^-sh */
        uint32_t mant = e ? (a & 0x7fffffu) | 0x800000u : 0u;
        return (uint8_t)(sign | (sh > 31 ? 0u : nm_round_shift(mant, sh)));
    }
    /* a carry out of the rounded mantissa moves into the exponent by itself */
    uint32_t code = ((uint32_t)(e - 120) << 3) + nm_round_shift(a & 0x7fffffu, 20);
    return (uint8_t)(sign | code);
}

/* float8_e4m3fn code → its exact value (NaN for 0x7f and 0xff). */
NM_HD static inline float nm_e4m3_value(uint8_t b)
{
    if ((b & 0x7fu) == 0x7fu) return nm_float(0x7fc00000u);
    uint32_t u = ((uint32_t)(b & 0x80u) << 24) | ((uint32_t)(b & 0x7fu) << 20);
    return nm_float(u) * 0x1p120f;
}

/* Round to nearest even BF16, NaN kept quiet: f32_to_bf16's bits. */
NM_HD static inline uint16_t nm_to_bf16(float f)
{
    uint32_t u = nm_bits(f);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x40u);
    u += 0x7fffu + ((u >> 16) & 1u);
    return (uint16_t)(u >> 16);
}

NM_HD static inline float nm_bf16_value(uint16_t h)
{
    return nm_float((uint32_t)h << 16);
}

/* x rounded to BF16, as a float. */
NM_HD static inline float nm_bf16(float x)
{
    return nm_bf16_value(nm_to_bf16(x));
}

/* The scale of a group whose largest magnitude is amax. */
static inline float nm_group_scale(float amax)
{
    return (amax > NM_AMAX_FLOOR ? amax : NM_AMAX_FLOOR) / NM_E4M3_MAX;
}

/* Groups of NM_GROUP channels in k (the last may be partial). */
static inline int nm_groups(int64_t k)
{
    return (int)((k + NM_GROUP - 1) / NM_GROUP);
}

/* 1×128 quantisation of n rows of k values (row stride ldx): q [n][k] codes, s [n][groups]. */
void nm_quant_1x128(const float *x, int64_t ldx, int n, int64_t k, uint8_t *q, float *s);

/* BF16 rounding of n rows of k values: out [n][k]. */
void nm_round_bf16(const float *x, int64_t ldx, int n, int64_t k, uint16_t *out);

/* The FP8 GEMM for weight rows [r0, r1): y[t][o - r0] (row stride ldy) from the codes q [n][k]
 * and scales s [n][groups] of n tokens, k = w->cols. w is FP8 with 128×128 blocks. */
void nm_matmul_fp8(const struct weight *w, int64_t r0, int64_t r1, const uint8_t *q,
                   const float *s, int n, float *y, int64_t ldy);

/* The BF16 GEMM for weight rows [r0, r1) over BF16 activations xb [n][w->cols]: weights are
 * widened exactly (BF16, or F32 / F16 as stored). */
void nm_matmul_bf16(const struct weight *w, int64_t r0, int64_t r1, const uint16_t *xb, int n,
                    float *y, int64_t ldy);

/* The dot product of n BF16-exact floats a·b summed in double, rounded once to F32. */
float nm_dot_exact(const float *a, const float *b, int n);

#endif
