/* dtype: names, sizes and scalar conversions of checkpoint element types. */
#include "engine/model/dtype.h"

#include <math.h>

#include "engine/model/quant.h"

static const struct {
    const char *name;
    size_t size; /* bytes per element, or per block */
    int block;   /* values per block */
} dtype_info[DT_COUNT] = {
    [DT_F32] = {"F32", 4, 1},
    [DT_BF16] = {"BF16", 2, 1},
    [DT_F16] = {"F16", 2, 1},
    [DT_F8E4M3] = {"F8_E4M3", 1, 1},
    [DT_Q8_0] = {"Q8_0", sizeof(struct blk_q8_0), QK32},
    [DT_Q4_0] = {"Q4_0", sizeof(struct blk_q4_0), QK32},
    [DT_Q4_1] = {"Q4_1", sizeof(struct blk_q4_1), QK32},
    [DT_Q5_0] = {"Q5_0", sizeof(struct blk_q5_0), QK32},
    [DT_Q5_1] = {"Q5_1", sizeof(struct blk_q5_1), QK32},
    [DT_Q2_K] = {"Q2_K", sizeof(struct blk_q2_k), QK256},
    [DT_Q3_K] = {"Q3_K", sizeof(struct blk_q3_k), QK256},
    [DT_Q4_K] = {"Q4_K", sizeof(struct blk_q4_k), QK256},
    [DT_Q5_K] = {"Q5_K", sizeof(struct blk_q5_k), QK256},
    [DT_Q6_K] = {"Q6_K", sizeof(struct blk_q6_k), QK256},
};

size_t dtype_size(enum dtype t)
{
    return dtype_info[t].size;
}

int dtype_block(enum dtype t)
{
    return dtype_info[t].block;
}

const char *dtype_name(enum dtype t)
{
    return dtype_info[t].name;
}

int dtype_parse(const char *s, enum dtype *out)
{
    for (int t = 0; t < DT_COUNT; t++) {
        if (!dtype_is_quant((enum dtype)t) && strcmp(s, dtype_info[t].name) == 0) {
            *out = (enum dtype)t;
            return 0;
        }
    }
    return -1;
}

float f16_to_f32(uint16_t h)
{
    int s = h >> 15, e = (h >> 10) & 31, m = h & 1023;
    float v;
    if (e == 0) v = ldexpf((float)m, -24);
    else if (e == 31) v = m ? NAN : INFINITY;
    else v = ldexpf((float)(m | 1024), e - 25);
    return s ? -v : v;
}

uint16_t f32_to_f16(float f)
{
    uint32_t x, ax;
    memcpy(&x, &f, sizeof x);
    uint16_t sign = (uint16_t)((x >> 16) & 0x8000);
    ax = x & 0x7fffffffu;
    if (ax > 0x7f800000u) return sign | 0x7e00;         /* NaN */
    if (ax >= 0x477ff000u) return sign | 0x7c00;        /* 65520 and up round to infinity */
    if (ax < 0x38800000u) {                             /* below 2^-14: a subnormal (or 0) */
        float v;
        memcpy(&v, &ax, sizeof v);
        return sign | (uint16_t)nearbyintf(v * 16777216.0f); /* units of 2^-24, ties to even */
    }
    return sign | (uint16_t)((ax + 0xfffu + ((ax >> 13) & 1u) - 0x38000000u) >> 13);
}

float fp8e4m3_to_f32(uint8_t b)
{
    int s = b >> 7, e = (b >> 3) & 15, m = b & 7;
    float v;
    if (e == 15 && m == 7) return NAN;
    if (e == 0) v = ldexpf((float)m, -9); /* 2^-6 * m/8 */
    else v = ldexpf((float)(8 + m), e - 10); /* 2^(e-7) * (1 + m/8) */
    return s ? -v : v;
}

void dtype_to_f32(enum dtype t, const void *src, float *dst, size_t n)
{
    const uint8_t *p = src;
    switch (t) {
    case DT_F32:
        memcpy(dst, src, n * sizeof(float));
        break;
    case DT_BF16:
        for (size_t i = 0; i < n; i++) {
            uint16_t h;
            memcpy(&h, p + 2 * i, 2);
            dst[i] = bf16_to_f32(h);
        }
        break;
    case DT_F16:
        for (size_t i = 0; i < n; i++) {
            uint16_t h;
            memcpy(&h, p + 2 * i, 2);
            dst[i] = f16_to_f32(h);
        }
        break;
    case DT_F8E4M3:
        for (size_t i = 0; i < n; i++) dst[i] = fp8e4m3_to_f32(p[i]);
        break;
    case DT_COUNT:
        break;
    default:
        quant_dequant(t, src, dst, n);
        break;
    }
}
