/* dtype: names, sizes and scalar conversions of checkpoint element types. */
#include "engine/model/dtype.h"

#include <math.h>

static const struct {
    const char *name;
    size_t size;
} dtype_info[DT_COUNT] = {
    [DT_F32] = {"F32", 4},
    [DT_BF16] = {"BF16", 2},
    [DT_F16] = {"F16", 2},
    [DT_F8E4M3] = {"F8_E4M3", 1},
};

size_t dtype_size(enum dtype t)
{
    return dtype_info[t].size;
}

const char *dtype_name(enum dtype t)
{
    return dtype_info[t].name;
}

int dtype_parse(const char *s, enum dtype *out)
{
    for (int t = 0; t < DT_COUNT; t++) {
        if (strcmp(s, dtype_info[t].name) == 0) {
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
    }
}
