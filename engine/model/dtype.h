/* dtype: the element types a checkpoint stores, and their conversion to float.
 *
 * Weights stay in their stored type; kernels widen them to float on the fly with these
 * helpers. FP8 is float8_e4m3fn (no infinities, NaN only for 0x7f/0xff). The Q* types are
 * ggml's quantisation blocks as GGUF files store them (engine/model/quant.h): a row of n values
 * is n / dtype_block(t) blocks of dtype_size(t) bytes each. */
#ifndef SEEKD_DTYPE_H
#define SEEKD_DTYPE_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

enum dtype {
    DT_F32, DT_BF16, DT_F16, DT_F8E4M3,                            /* one value each */
    DT_Q8_0, DT_Q4_0, DT_Q4_1, DT_Q5_0, DT_Q5_1,                   /* blocks of 32 values */
    DT_Q2_K, DT_Q3_K, DT_Q4_K, DT_Q5_K, DT_Q6_K,                   /* blocks of 256 values */
    DT_COUNT
};

/* Bytes per element; for the block types, bytes per block. */
size_t dtype_size(enum dtype t);

/* Values per block: 1 for the element types, 32 or 256 for the Q* types. */
int dtype_block(enum dtype t);

/* Whether t is one of ggml's quantisation block types. */
static inline int dtype_is_quant(enum dtype t)
{
    return t >= DT_Q8_0 && t < DT_COUNT;
}

/* Bytes of n values (n a multiple of dtype_block(t)). */
static inline size_t dtype_row_bytes(enum dtype t, int64_t n)
{
    return (size_t)(n / dtype_block(t)) * dtype_size(t);
}

/* The safetensors spelling ("F32", "BF16", "F16", "F8_E4M3"), or ggml's ("Q4_K", ...). */
const char *dtype_name(enum dtype t);

/* Parses a safetensors dtype string; returns -1 for one seekd does not load (the Q* types
 * are never safetensors dtypes). */
int dtype_parse(const char *s, enum dtype *out);

static inline float bf16_to_f32(uint16_t h)
{
    uint32_t u = (uint32_t)h << 16;
    float f;
    memcpy(&f, &u, sizeof f);
    return f;
}

/* Round to nearest even, NaN kept quiet. */
static inline uint16_t f32_to_bf16(float f)
{
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x40);
    u += 0x7fffu + ((u >> 16) & 1u);
    return (uint16_t)(u >> 16);
}

float f16_to_f32(uint16_t h);

/* Round to nearest even, as the F16C instruction does (overflow to infinity, NaN kept). */
uint16_t f32_to_f16(float f);

/* Decodes one float8_e4m3fn byte. */
float fp8e4m3_to_f32(uint8_t b);

/* Widens n elements of type t starting at src to float. FP8 values are returned unscaled.
 * Block types: src is the start of a block and n a multiple of dtype_block(t); the values are
 * exactly the dequantised floats of ggml's reference (quant.h). */
void dtype_to_f32(enum dtype t, const void *src, float *dst, size_t n);

#endif
