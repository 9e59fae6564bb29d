/* quant_kernels: the matmul entry for quantised weights (exact or 8-bit activations), and the
 * portable reference set of the 8-bit path: activation quantisation, per-type row unpacking
 * into (u, scl, mn), and the dot. The SIMD sets live in quant_avx2.c and quant_avx512.c. */
#include "engine/cpu/quant_kernels.h"

#include <math.h>
#include <string.h>

#include "engine/err.h"
#include "engine/model/quant.h"

/* ---- exact path ------------------------------------------------------------------------------ */

void qk_widen_rows(const struct weight *w, int64_t r, int n, float *out, int64_t ld)
{
    size_t rb = dtype_row_bytes(w->dtype, w->cols);
    for (int i = 0; i < n; i++)
        quant_dequant(w->dtype, (const uint8_t *)w->data + (size_t)(r + i) * rb, out + i * ld,
                      (size_t)w->cols);
}

enum { WIDEN_BYTES = 96 * 1024 }; /* widened rows per block, as ops.c */

static void matmul_exact(const struct ops *o, int thread, const struct weight *w, int64_t r0,
                         int64_t r1, const float *x, int64_t ldx, int n, float *y, int64_t ldy)
{
    int64_t rb = WIDEN_BYTES / (w->cols * (int64_t)sizeof(float));
    rb = rb < 4 ? 4 : rb > 64 ? 64 : rb / 4 * 4;
    float *buf = tp_scratch(o->tp, thread, (size_t)rb * (size_t)w->cols * sizeof(float));
    for (int64_t r = r0; r < r1; r += rb) {
        int nr = r1 - r < rb ? (int)(r1 - r) : (int)rb;
        qk_widen_rows(w, r, nr, buf, w->cols);
        o->k->dot_tile(buf, w->cols, nr, x, ldx, n, (int)w->cols, y + (r - r0), ldy);
    }
}

/* ---- 8-bit path ------------------------------------------------------------------------------ */

static size_t up64(size_t n)
{
    return (n + 63) / 64 * 64;
}

/* Quantises the tokens, then unpacks each row once and dots it with every token. */
static void matmul_q8(const struct ops *o, int thread, const struct weight *w, int64_t r0,
                      int64_t r1, const float *x, int64_t ldx, int n, float *y, int64_t ldy)
{
    const struct qk_set *s = qk_set_for(o->k);
    size_t k = (size_t)w->cols, nq = up64((size_t)n * k), nd = up64((size_t)n * k / 4 * 4);
    size_t nx = up64((size_t)n * k / 16 * 4), nu = up64(k), ns = up64(k / 4 * 4);
    uint8_t *buf = tp_scratch(o->tp, thread, nq + nd + nx + nu + ns + up64(k / 16 * 4));
    int8_t *q = (int8_t *)buf;
    float *dxl = (float *)(buf + nq), *xs = (float *)(buf + nq + nd);
    uint8_t *u = buf + nq + nd + nx;
    float *scl = (float *)(u + nu), *mn = (float *)(u + nu + ns);
    for (int t = 0; t < n; t++)
        s->quantize(x + t * ldx, (int64_t)k, q + t * k, dxl + t * k / 4, xs + t * k / 16);
    for (int64_t r = r0; r < r1; r++) {
        s->unpack(w, r, u, scl, mn);
        s->dot(u, scl, mn, (int64_t)k, q, dxl, xs, n, y + (r - r0), ldy);
    }
}

void qk_matmul(const struct ops *o, int thread, const struct weight *w, int64_t r0, int64_t r1,
               const float *x, int64_t ldx, int n, float *y, int64_t ldy)
{
    if (o->q8) matmul_q8(o, thread, w, r0, r1, x, ldx, n, y, ldy);
    else matmul_exact(o, thread, w, r0, r1, x, ldx, n, y, ldy);
}

/* ---- the reference set ----------------------------------------------------------------------- */

static void scalar_quantize(const float *x, int64_t k, int8_t *q, float *dxl, float *xs)
{
    for (int64_t b = 0; b < k; b += 32) {
        float amax = 0.0f;
        for (int i = 0; i < 32; i++) amax = fmaxf(amax, fabsf(x[b + i]));
        float d = amax / 127.0f, id = amax > 0.0f ? 127.0f / amax : 0.0f;
        int sum[2] = {0, 0};
        for (int i = 0; i < 32; i++) {
            q[b + i] = (int8_t)nearbyintf(x[b + i] * id);
            sum[i / 16] += q[b + i];
        }
        for (int i = 0; i < 8; i++) dxl[b / 4 + i] = d;
        xs[b / 16] = d * (float)sum[0], xs[b / 16 + 1] = d * (float)sum[1];
    }
}

/* Sets the 4 lane multipliers of a group of 16 codes and its offset. */
static void group16(float *scl, float *mn, int g, float s, float m)
{
    for (int i = 0; i < 4; i++) scl[4 * g + i] = s;
    mn[g] = m;
}

/* Legacy blocks: one scale and offset for 32 codes. */
static void unpack_legacy(enum dtype t, const uint8_t *p, uint8_t *u, float *scl, float *mn)
{
    float d = quant_f16(p), m;
    switch (t) {
    case DT_Q8_0:
        for (int j = 0; j < 32; j++) u[j] = (uint8_t)(p[2 + j] ^ 0x80);
        m = -128.0f * d;
        break;
    case DT_Q4_0:
    case DT_Q4_1: {
        const uint8_t *qs = p + (t == DT_Q4_0 ? 2 : 4);
        for (int j = 0; j < 16; j++) u[j] = qs[j] & 15, u[j + 16] = qs[j] >> 4;
        m = t == DT_Q4_0 ? -8.0f * d : quant_f16(p + 2);
        break;
    }
    default: { /* Q5_0, Q5_1 */
        const uint8_t *qh = p + (t == DT_Q5_0 ? 2 : 4), *qs = qh + 4;
        uint32_t h = (uint32_t)qh[0] | (uint32_t)qh[1] << 8 | (uint32_t)qh[2] << 16 | (uint32_t)qh[3] << 24;
        for (int j = 0; j < 16; j++) {
            u[j] = (uint8_t)((qs[j] & 15) | ((h >> j) & 1) << 4);
            u[j + 16] = (uint8_t)((qs[j] >> 4) | ((h >> (j + 16)) & 1) << 4);
        }
        m = t == DT_Q5_0 ? -16.0f * d : quant_f16(p + 2);
        break;
    }
    }
    group16(scl, mn, 0, d, m), group16(scl, mn, 1, d, m);
}

static void unpack_q2_k(const struct blk_q2_k *b, uint8_t *u, float *scl, float *mn)
{
    float d = quant_f16(b->d), dmin = quant_f16(b->dmin);
    for (int i = 0; i < 256; i++) u[i] = (b->qs[32 * (i / 128) + i % 32] >> (2 * (i % 128 / 32))) & 3;
    for (int g = 0; g < 16; g++)
        group16(scl, mn, g, d * (float)(b->scales[g] & 15), -(dmin * (float)(b->scales[g] >> 4)));
}

static void unpack_q3_k(const struct blk_q3_k *b, uint8_t *u, float *scl, float *mn)
{
    float d = quant_f16(b->d);
    int8_t sc[16];
    quant_q3k_scales(b->scales, sc);
    for (int i = 0; i < 256; i++) {
        int q = (b->qs[32 * (i / 128) + i % 32] >> (2 * (i % 128 / 32))) & 3;
        u[i] = (uint8_t)(q | ((b->hmask[i % 32] >> (i / 32)) & 1) << 2);
    }
    for (int g = 0; g < 16; g++) {
        float dl = d * (float)sc[g];
        group16(scl, mn, g, dl, -4.0f * dl);
    }
}

/* Q4_K and Q5_K (qh NULL for Q4_K). */
static void unpack_k45(const uint8_t *dd, const uint8_t *scales, const uint8_t *qh,
                       const uint8_t *qs, uint8_t *u, float *scl, float *mn)
{
    float d = quant_f16(dd), dmin = quant_f16(dd + 2);
    for (int j = 0; j < 8; j++) {
        uint8_t sc, m;
        quant_k4_scale_min(scales, j, &sc, &m);
        for (int l = 0; l < 32; l++) {
            int q = (qs[32 * (j / 2) + l] >> (4 * (j % 2))) & 15;
            u[32 * j + l] = (uint8_t)(q | (qh ? ((qh[l] >> j) & 1) << 4 : 0));
        }
        float dl = d * (float)sc, ml = -(dmin * (float)m);
        group16(scl, mn, 2 * j, dl, ml), group16(scl, mn, 2 * j + 1, dl, ml);
    }
}

static void unpack_q6_k(const struct blk_q6_k *b, uint8_t *u, float *scl, float *mn)
{
    float d = quant_f16(b->d);
    for (int i = 0; i < 256; i++) {
        int h = i / 128, r = i % 128;
        int lo = (b->ql[64 * h + r % 64] >> (4 * (r / 64))) & 15;
        int hi = (b->qh[32 * h + r % 32] >> (2 * (r / 32))) & 3;
        u[i] = (uint8_t)(lo | hi << 4);
    }
    for (int g = 0; g < 16; g++) {
        float dl = d * (float)b->scales[g];
        group16(scl, mn, g, dl, -32.0f * dl);
    }
}

static void scalar_unpack(const struct weight *w, int64_t r, uint8_t *u, float *scl, float *mn)
{
    enum dtype t = w->dtype;
    int blk = dtype_block(t);
    size_t bs = dtype_size(t);
    const uint8_t *p = (const uint8_t *)w->data + (size_t)r * dtype_row_bytes(t, w->cols);
    for (int64_t c = 0; c < w->cols; c += blk, p += bs, u += blk, scl += blk / 4, mn += blk / 16) {
        switch (t) {
        case DT_Q2_K: unpack_q2_k((const struct blk_q2_k *)p, u, scl, mn); break;
        case DT_Q3_K: unpack_q3_k((const struct blk_q3_k *)p, u, scl, mn); break;
        case DT_Q4_K: unpack_k45(p, p + 4, NULL, p + 16, u, scl, mn); break;
        case DT_Q5_K: unpack_k45(p, p + 4, p + 16, p + 48, u, scl, mn); break;
        case DT_Q6_K: unpack_q6_k((const struct blk_q6_k *)p, u, scl, mn); break;
        default: unpack_legacy(t, p, u, scl, mn); break;
        }
    }
}

static void scalar_dot(const uint8_t *u, const float *scl, const float *mn, int64_t k,
                       const int8_t *q, const float *dxl, const float *xs, int nt, float *y,
                       int64_t ldy)
{
    for (int t = 0; t < nt; t++) {
        const int8_t *qt = q + t * k;
        const float *dt = dxl + t * k / 4, *st = xs + t * k / 16;
        float acc = 0.0f;
        for (int64_t l = 0; l < k / 4; l++) {
            int p = 0;
            for (int i = 0; i < 4; i++) p += u[4 * l + i] * qt[4 * l + i];
            acc += (float)p * (scl[l] * dt[l]);
        }
        for (int64_t g = 0; g < k / 16; g++) acc += mn[g] * st[g];
        y[t * ldy] = acc;
    }
}

static const struct qk_set scalar_set = {"scalar", scalar_quantize, scalar_unpack, scalar_dot};

const struct qk_set *qk_scalar(void)
{
    return &scalar_set;
}

const struct qk_set *qk_set_for(const struct simd_kernels *k)
{
    const struct qk_set *s = NULL;
    if (!strcmp(k->name, "avx512")) s = qk_avx512();
    else if (!strcmp(k->name, "avx2")) s = qk_avx2();
    return s ? s : &scalar_set;
}
