/* quant: exact dequantisation of ggml's blocks, one function per type (the reference every
 * quantised kernel is checked against). */
#include "engine/model/quant.h"

#include "engine/err.h"

void quant_q3k_scales(const uint8_t s[12], int8_t out[16])
{
    for (int i = 0; i < 16; i++) {
        int lo = i < 8 ? s[i] & 15 : s[i - 8] >> 4;
        int hi = (s[8 + i % 4] >> (2 * (i / 4))) & 3;
        out[i] = (int8_t)((lo | hi << 4) - 32);
    }
}

static void dq_q4_0(const struct blk_q4_0 *b, float *y)
{
    float d = quant_f16(b->d);
    for (int j = 0; j < 16; j++) {
        y[j] = d * (float)((b->qs[j] & 15) - 8);
        y[j + 16] = d * (float)((b->qs[j] >> 4) - 8);
    }
}

static void dq_q4_1(const struct blk_q4_1 *b, float *y)
{
    float d = quant_f16(b->d), m = quant_f16(b->m);
    for (int j = 0; j < 16; j++) {
        y[j] = d * (float)(b->qs[j] & 15) + m;
        y[j + 16] = d * (float)(b->qs[j] >> 4) + m;
    }
}

static uint32_t le32(const uint8_t p[4])
{
    return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

static void dq_q5_0(const struct blk_q5_0 *b, float *y)
{
    float d = quant_f16(b->d);
    uint32_t qh = le32(b->qh);
    for (int j = 0; j < 16; j++) {
        int lo = (b->qs[j] & 15) | (int)((qh >> j) & 1) << 4;
        int hi = (b->qs[j] >> 4) | (int)((qh >> (j + 16)) & 1) << 4;
        y[j] = d * (float)(lo - 16);
        y[j + 16] = d * (float)(hi - 16);
    }
}

static void dq_q5_1(const struct blk_q5_1 *b, float *y)
{
    float d = quant_f16(b->d), m = quant_f16(b->m);
    uint32_t qh = le32(b->qh);
    for (int j = 0; j < 16; j++) {
        int lo = (b->qs[j] & 15) | (int)((qh >> j) & 1) << 4;
        int hi = (b->qs[j] >> 4) | (int)((qh >> (j + 16)) & 1) << 4;
        y[j] = d * (float)lo + m;
        y[j + 16] = d * (float)hi + m;
    }
}

static void dq_q8_0(const struct blk_q8_0 *b, float *y)
{
    float d = quant_f16(b->d);
    for (int j = 0; j < 32; j++) y[j] = (float)b->qs[j] * d;
}

static void dq_q2_k(const struct blk_q2_k *b, float *y)
{
    float d = quant_f16(b->d), dmin = quant_f16(b->dmin);
    for (int i = 0; i < 256; i++) {
        int h = i / 128, s = i % 128 / 32, l = i % 32, g = i / 16;
        float dl = d * (float)(b->scales[g] & 15), ml = dmin * (float)(b->scales[g] >> 4);
        int q = (b->qs[32 * h + l] >> (2 * s)) & 3;
        y[i] = dl * (float)q - ml;
    }
}

static void dq_q3_k(const struct blk_q3_k *b, float *y)
{
    float d = quant_f16(b->d);
    int8_t sc[16];
    quant_q3k_scales(b->scales, sc);
    for (int i = 0; i < 256; i++) {
        int h = i / 128, s = i % 128 / 32, l = i % 32;
        int q = (b->qs[32 * h + l] >> (2 * s)) & 3;
        int hbit = (b->hmask[l] >> (i / 32)) & 1;
        float dl = d * (float)sc[i / 16];
        y[i] = dl * (float)(q - (hbit ? 0 : 4));
    }
}

static void dq_q4_k(const struct blk_q4_k *b, float *y)
{
    float d = quant_f16(b->d), dmin = quant_f16(b->dmin);
    for (int j = 0; j < 8; j++) {
        uint8_t sc, m;
        quant_k4_scale_min(b->scales, j, &sc, &m);
        float dl = d * (float)sc, ml = dmin * (float)m;
        for (int l = 0; l < 32; l++) {
            int q = (b->qs[32 * (j / 2) + l] >> (4 * (j % 2))) & 15;
            y[32 * j + l] = dl * (float)q - ml;
        }
    }
}

static void dq_q5_k(const struct blk_q5_k *b, float *y)
{
    float d = quant_f16(b->d), dmin = quant_f16(b->dmin);
    for (int j = 0; j < 8; j++) {
        uint8_t sc, m;
        quant_k4_scale_min(b->scales, j, &sc, &m);
        float dl = d * (float)sc, ml = dmin * (float)m;
        for (int l = 0; l < 32; l++) {
            int q = ((b->qs[32 * (j / 2) + l] >> (4 * (j % 2))) & 15) | ((b->qh[l] >> j) & 1) << 4;
            y[32 * j + l] = dl * (float)q - ml;
        }
    }
}

static void dq_q6_k(const struct blk_q6_k *b, float *y)
{
    float d = quant_f16(b->d);
    for (int i = 0; i < 256; i++) {
        int h = i / 128, r = i % 128;
        int lo = (b->ql[64 * h + r % 64] >> (4 * (r / 64))) & 15;
        int hi = (b->qh[32 * h + r % 32] >> (2 * (r / 32))) & 3;
        float dl = d * (float)b->scales[i / 16];
        y[i] = dl * (float)((lo | hi << 4) - 32);
    }
}

void quant_dequant(enum dtype t, const void *src, float *dst, size_t n)
{
    const uint8_t *p = src;
    size_t bs = dtype_size(t), nb = n / (size_t)dtype_block(t);
    for (size_t i = 0; i < nb; i++, p += bs, dst += dtype_block(t)) {
        switch (t) {
        case DT_Q4_0: dq_q4_0((const struct blk_q4_0 *)p, dst); break;
        case DT_Q4_1: dq_q4_1((const struct blk_q4_1 *)p, dst); break;
        case DT_Q5_0: dq_q5_0((const struct blk_q5_0 *)p, dst); break;
        case DT_Q5_1: dq_q5_1((const struct blk_q5_1 *)p, dst); break;
        case DT_Q8_0: dq_q8_0((const struct blk_q8_0 *)p, dst); break;
        case DT_Q2_K: dq_q2_k((const struct blk_q2_k *)p, dst); break;
        case DT_Q3_K: dq_q3_k((const struct blk_q3_k *)p, dst); break;
        case DT_Q4_K: dq_q4_k((const struct blk_q4_k *)p, dst); break;
        case DT_Q5_K: dq_q5_k((const struct blk_q5_k *)p, dst); break;
        case DT_Q6_K: dq_q6_k((const struct blk_q6_k *)p, dst); break;
        default: ERR_FATAL("quant_dequant: %s is not a block type", dtype_name(t));
        }
    }
}
