/* dtype: the element types a checkpoint stores, and their conversion to float.
 *
 * Weights stay in their stored type; kernels widen them to float on the fly with these
 * helpers. FP8 is float8_e4m3fn (no infinities, NaN only for 0x7f/0xff). */
#ifndef SEEKD_DTYPE_H
#define SEEKD_DTYPE_H

#include <stddef.h>
#include <stdint.h>
#include <string.h>

enum dtype { DT_F32, DT_BF16, DT_F16, DT_F8E4M3, DT_COUNT };

/* Bytes per element. */
size_t dtype_size(enum dtype t);

/* The safetensors spelling ("F32", "BF16", "F16", "F8_E4M3"). */
const char *dtype_name(enum dtype t);

/* Parses a safetensors dtype string; returns -1 for one seekd does not load. */
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

/* Decodes one float8_e4m3fn byte. */
float fp8e4m3_to_f32(uint8_t b);

/* Widens n elements of type t starting at src to float. FP8 values are returned unscaled. */
void dtype_to_f32(enum dtype t, const void *src, float *dst, size_t n);

#endif
