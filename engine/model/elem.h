/* elem: element conversions every backend must compute bit for bit alike — float8_e4m3fn encode
 * (round to nearest even, saturating: the hardware's cvt.rn.satfinite) and decode, BF16
 * rounding — as inline functions that compile for the host and, under nvcc, for the device
 * (NM_HD = __host__ __device__). engine/cpu/numerics.h builds the fast numerics from them; CUDA
 * kernels and the synthetic-weight hash (synth_hash.h) call the very same functions. */
#ifndef SEEKD_ELEM_H
#define SEEKD_ELEM_H

#include <stdint.h>
#include <string.h>

#ifdef __CUDACC__
#define NM_HD __host__ __device__
#else
#define NM_HD
#endif

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

#endif
