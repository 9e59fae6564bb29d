/* quant: ggml's quantisation blocks — their byte layouts and their exact dequantisation.
 *
 * A quantised row is a run of blocks; each block holds 32 (Q4_0 .. Q8_0) or 256 (the K types)
 * values as small integers with fp16 scales. The layouts are ggml's (ggml-common.h) as GGUF files
 * store them, little-endian and unaligned: every field is read byte-wise. Dequantisation gives
 * exactly the floats of ggml's reference `to_float` (and of the gguf Python package): the scale
 * products and the final multiply/subtract are separate float operations, never fused. */
#ifndef SEEKD_QUANT_H
#define SEEKD_QUANT_H

#include <stddef.h>
#include <stdint.h>

#include "engine/model/dtype.h"

#define QK32 32   /* values per block of the legacy types */
#define QK256 256 /* values per super-block of the K types */

/* x = d · (q − 8), q the nibbles: value j is the low nibble of qs[j], value j + 16 the high one */
struct blk_q4_0 {
    uint8_t d[2];
    uint8_t qs[16];
};
/* x = d · q + m, nibbles as Q4_0 */
struct blk_q4_1 {
    uint8_t d[2], m[2];
    uint8_t qs[16];
};
/* x = d · (q5 − 16); bit j of the little-endian u32 qh is the fifth bit of value j */
struct blk_q5_0 {
    uint8_t d[2];
    uint8_t qh[4];
    uint8_t qs[16];
};
/* x = d · q5 + m */
struct blk_q5_1 {
    uint8_t d[2], m[2];
    uint8_t qh[4];
    uint8_t qs[16];
};
/* x = d · q, q signed */
struct blk_q8_0 {
    uint8_t d[2];
    int8_t qs[32];
};
/* 16 groups of 16: x = d·(sc & 15)·q − dmin·(sc >> 4); value 128h + 32s + l is bits 2s..2s+1
 * of qs[32h + l] */
struct blk_q2_k {
    uint8_t scales[16];
    uint8_t qs[64];
    uint8_t d[2], dmin[2];
};
/* 16 groups of 16: x = d·(s − 32)·(q2 − (hbit ? 0 : 4)); s the 6-bit scales (quant_q3k_scales);
 * q2 as Q2_K; the high bit of value 32s + l is bit s of hmask[l] */
struct blk_q3_k {
    uint8_t hmask[32];
    uint8_t qs[64];
    uint8_t scales[12];
    uint8_t d[2];
};
/* 8 groups of 32: x = d·sc·q − dmin·m (quant_k4_scale_min); value 64g + 32s + l is nibble s of
 * qs[32g + l] */
struct blk_q4_k {
    uint8_t d[2], dmin[2];
    uint8_t scales[12];
    uint8_t qs[128];
};
/* as Q4_K with a fifth bit: bit j of qh[l] belongs to value 32j + l */
struct blk_q5_k {
    uint8_t d[2], dmin[2];
    uint8_t scales[12];
    uint8_t qh[32];
    uint8_t qs[128];
};
/* 16 groups of 16: x = d·scales[j]·(q6 − 32); low nibbles: value 128h + 64s + l is nibble s of
 * ql[64h + l]; high pairs: value 128h + 32s + l has bits 2s..2s+1 of qh[32h + l] */
struct blk_q6_k {
    uint8_t ql[128];
    uint8_t qh[64];
    int8_t scales[16];
    uint8_t d[2];
};

_Static_assert(sizeof(struct blk_q4_0) == 18 && sizeof(struct blk_q4_1) == 20, "legacy blocks");
_Static_assert(sizeof(struct blk_q5_0) == 22 && sizeof(struct blk_q5_1) == 24, "legacy blocks");
_Static_assert(sizeof(struct blk_q8_0) == 34, "Q8_0 block");
_Static_assert(sizeof(struct blk_q2_k) == 84 && sizeof(struct blk_q3_k) == 110, "K blocks");
_Static_assert(sizeof(struct blk_q4_k) == 144 && sizeof(struct blk_q5_k) == 176, "K blocks");
_Static_assert(sizeof(struct blk_q6_k) == 210, "Q6_K block");

/* An fp16 field as float. */
static inline float quant_f16(const uint8_t p[2])
{
    return f16_to_f32((uint16_t)(p[0] | p[1] << 8));
}

/* Scale and min of group j (0..7) of a Q4_K/Q5_K block: 6 bits each, packed in 12 bytes. */
static inline void quant_k4_scale_min(const uint8_t s[12], int j, uint8_t *sc, uint8_t *m)
{
    if (j < 4) {
        *sc = s[j] & 63, *m = s[j + 4] & 63;
    } else {
        *sc = (uint8_t)((s[j + 4] & 15) | ((s[j - 4] >> 6) << 4));
        *m = (uint8_t)((s[j + 4] >> 4) | ((s[j] >> 6) << 4));
    }
}

/* The 16 signed scales (s − 32) of a Q3_K block. */
void quant_q3k_scales(const uint8_t s[12], int8_t out[16]);

/* Dequantises n values (a multiple of the block size) of type t from src. */
void quant_dequant(enum dtype t, const void *src, float *dst, size_t n);

#endif
