/* synth_hash: the element values of a synthetic model, as functions of (seed, tensor name,
 * element index) — written once for the host (engine/model/synth.c) and the device fill kernel
 * (cuda/k_synth.cu), which include this header, so both produce the same bits.
 *
 * A tensor's key is splitmix64's finaliser of seed ^ FNV-1a(name); element i draws
 * mix(key + (i + 1) · golden) and keeps its top 24 bits as a uniform u in [-1, 1) (exact in
 * F32). Values, with C the tensor's columns:
 *   FP8 weight      e4m3(u · 448) (the codes of a uniform spread over the whole e4m3 range)
 *   its scale grid  sqrt(3 / C) / 448 · (1 + u / 4)   (unit gain, block to block ±25 %)
 *   BF16 matrix     bf16(u · sqrt(3 / C))             (unit gain)
 *   embedding       bf16(u · sqrt(3))                 (unit variance)
 *   norm weight     bf16(1 + u / 8)
 *   router bias     u / 100
 * Every float operation is one IEEE multiply or add (no contraction: see SYNTH_MUL/ADD). */
#ifndef SEEKD_SYNTH_HASH_H
#define SEEKD_SYNTH_HASH_H

#include <math.h>
#include <stdint.h>

#include "engine/model/elem.h"

#ifdef __CUDA_ARCH__
#define SYNTH_MUL(a, b) __fmul_rn(a, b)
#define SYNTH_ADD(a, b) __fadd_rn(a, b)
#else
#define SYNTH_MUL(a, b) ((a) * (b))
#define SYNTH_ADD(a, b) ((a) + (b))
#endif

enum synth_kind {
    SYNTH_FP8,       /* FP8 codes */
    SYNTH_SCALE,     /* F32 scale grid of an FP8 weight */
    SYNTH_MATRIX,    /* BF16 matrix */
    SYNTH_EMBED,     /* BF16 embedding rows */
    SYNTH_NORM,      /* BF16 norm weight */
    SYNTH_BIAS       /* F32 router correction bias */
};

NM_HD static inline uint64_t synth_mix(uint64_t z)
{
    z ^= z >> 30;
    z *= 0xbf58476d1ce4e5b9ull;
    z ^= z >> 27;
    z *= 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* A tensor's key from the model's seed and the tensor's name. */
static inline uint64_t synth_key(uint64_t seed, const char *name)
{
    uint64_t h = 0xcbf29ce484222325ull;
    for (const unsigned char *p = (const unsigned char *)name; *p; p++) h = (h ^ *p) * 0x100000001b3ull;
    return synth_mix(seed ^ h);
}

/* Element i's uniform draw in [-1, 1): a multiple of 2^-23. */
NM_HD static inline float synth_uniform(uint64_t key, uint64_t i)
{
    uint64_t h = synth_mix(key + (i + 1) * 0x9e3779b97f4a7c15ull);
    return SYNTH_ADD((float)(h >> 40) * 0x1p-23f, -1.0f);
}

/* The gain constants of a tensor with C columns (computed on the host, passed to the device). */
static inline float synth_gain(enum synth_kind k, int64_t cols)
{
    if (k == SYNTH_EMBED) return 1.7320508f; /* sqrt(3) */
    if (k == SYNTH_SCALE) return (float)(sqrt(3.0 / (double)cols) / 448.0);
    if (k == SYNTH_MATRIX) return (float)sqrt(3.0 / (double)cols);
    return 1.0f;
}

/* Element i of a tensor of kind k as its stored bits: an FP8 code, BF16 bits, or F32 bits. */
NM_HD static inline uint32_t synth_bits(enum synth_kind k, uint64_t key, uint64_t i, float gain)
{
    float u = synth_uniform(key, i);
    switch (k) {
    case SYNTH_FP8: return nm_e4m3(SYNTH_MUL(u, 448.0f));
    case SYNTH_SCALE: return nm_bits(SYNTH_MUL(gain, SYNTH_ADD(1.0f, SYNTH_MUL(u, 0.25f))));
    case SYNTH_NORM: return nm_to_bf16(SYNTH_ADD(1.0f, SYNTH_MUL(u, 0.125f)));
    case SYNTH_BIAS: return nm_bits(SYNTH_MUL(u, 0.01f));
    default: return nm_to_bf16(SYNTH_MUL(u, gain));
    }
}

#endif
