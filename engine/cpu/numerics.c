/* numerics: the 1×128 quantiser and the FP8 and BF16 GEMMs of the fast numerics, on the CPU. */
#include "engine/cpu/numerics.h"

#include <math.h>
#include <stdlib.h>

#include "engine/cpu/cpu_ops.h"
#include "engine/err.h"

void nm_quant_1x128(const float *x, int64_t ldx, int n, int64_t k, uint8_t *q, float *s)
{
    int G = nm_groups(k);
    for (int t = 0; t < n; t++) {
        const float *xr = x + t * ldx;
        for (int g = 0; g < G; g++) {
            int64_t c0 = (int64_t)g * NM_GROUP, c1 = c0 + NM_GROUP < k ? c0 + NM_GROUP : k;
            float amax = 0.0f;
            for (int64_t c = c0; c < c1; c++) amax = fmaxf(amax, fabsf(xr[c]));
            float sc = nm_group_scale(amax);
            s[(size_t)t * G + g] = sc;
            for (int64_t c = c0; c < c1; c++) q[(size_t)t * k + c] = nm_e4m3(xr[c] / sc);
        }
    }
}

void nm_round_bf16(const float *x, int64_t ldx, int n, int64_t k, uint16_t *out)
{
    for (int t = 0; t < n; t++)
        for (int64_t c = 0; c < k; c++) out[(size_t)t * k + c] = nm_to_bf16(x[t * ldx + c]);
}

float nm_dot_exact(const float *a, const float *b, int n)
{
    double s0 = 0, s1 = 0, s2 = 0, s3 = 0; /* products exact in double; four fixed lanes */
    int i = 0;
    for (; i + 4 <= n; i += 4) {
        s0 += (double)a[i] * b[i], s1 += (double)a[i + 1] * b[i + 1];
        s2 += (double)a[i + 2] * b[i + 2], s3 += (double)a[i + 3] * b[i + 3];
    }
    for (; i < n; i++) s0 += (double)a[i] * b[i];
    return (float)((s0 + s1) + (s2 + s3));
}

static float load_f32(const void *p, size_t i)
{
    float v;
    memcpy(&v, (const char *)p + i * sizeof v, sizeof v);
    return v;
}

/* The promotion of one output: blocks in ascending order, each multiply and add rounded. */
static float promote(const float *wv, const float *ws, const float *xv, const float *xs, int64_t k,
                     int G)
{
    float acc = 0.0f;
    for (int g = 0; g < G; g++) {
        int64_t c0 = (int64_t)g * NM_GROUP, len = k - c0 < NM_GROUP ? k - c0 : NM_GROUP;
        float blk = nm_dot_exact(wv + c0, xv + c0, (int)len); /* exact: see numerics.h */
        float scale = xs[g] * ws[g];
        float term = blk * scale;
        acc = acc + term;
    }
    return acc;
}

void nm_matmul_fp8(const struct weight *w, int64_t r0, int64_t r1, const uint8_t *q,
                   const float *s, int n, float *y, int64_t ldy)
{
    int64_t k = w->cols;
    int G = nm_groups(k);
    if (w->dtype != DT_F8E4M3 || w->block_cols != NM_GROUP || w->block_rows != NM_GROUP)
        ERR_FATAL("nm_matmul_fp8: %s is not FP8 with 128x128 blocks", w->name);
    float table[256], *xv = xmalloc((size_t)n * (size_t)k * sizeof *xv);
    float *wv = xmalloc((size_t)k * sizeof *wv), *ws = xmalloc((size_t)G * sizeof *ws);
    for (int b = 0; b < 256; b++) table[b] = nm_e4m3_value((uint8_t)b);
    for (size_t i = 0; i < (size_t)n * (size_t)k; i++) xv[i] = table[q[i]];
    const uint8_t *codes = w->data;
    for (int64_t o = r0; o < r1; o++) {
        for (int64_t c = 0; c < k; c++) wv[c] = table[codes[o * k + c]];
        for (int g = 0; g < G; g++) ws[g] = load_f32(w->scale, (size_t)((o / NM_GROUP) * G + g));
        for (int t = 0; t < n; t++)
            y[t * ldy + (o - r0)] = promote(wv, ws, xv + (size_t)t * k, s + (size_t)t * G, k, G);
    }
    free(xv), free(wv), free(ws);
}

void nm_matmul_bf16(const struct weight *w, int64_t r0, int64_t r1, const uint16_t *xb, int n,
                    float *y, int64_t ldy)
{
    int64_t k = w->cols;
    float *xv = xmalloc((size_t)n * (size_t)k * sizeof *xv), *wv = xmalloc((size_t)k * sizeof *wv);
    for (size_t i = 0; i < (size_t)n * (size_t)k; i++) xv[i] = nm_bf16_value(xb[i]);
    for (int64_t o = r0; o < r1; o++) {
        cpu_weight_row(w, o, wv);
        for (int t = 0; t < n; t++) y[t * ldy + (o - r0)] = nm_dot_exact(wv, xv + (size_t)t * k, (int)k);
    }
    free(xv), free(wv);
}
