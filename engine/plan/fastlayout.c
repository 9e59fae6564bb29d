/* fastlayout: device layouts of the fast numerics and their staging transforms. Every fill
 * function computes any byte range of its array, element by element, so a staging buffer may
 * cut an array anywhere. */
#include "engine/plan/fastlayout.h"

#include <stdlib.h>
#include <string.h>

#include "engine/err.h"
#include "engine/model/elem.h"

static int64_t up(int64_t v, int64_t a)
{
    return (v + a - 1) / a * a;
}

int fl_can_stack(const struct weight *w, const struct weight *w2)
{
    return w->cols == w2->cols && w->rows % 128 == 0 && w->dtype == DT_F8E4M3 &&
           w2->dtype == DT_F8E4M3 && w->block_rows == 128 && w2->block_rows == 128;
}

int fl_fp8_plan(struct fl_fp8 *l, const struct weight *w, const struct weight *w2,
                enum fl_order order, int ld_align)
{
    if (w2 && !fl_can_stack(w, w2)) return -1;
    *l = (struct fl_fp8){.n = w->rows + (w2 ? w2->rows : 0), .k = w->cols, .order = order,
                         .n_src = w2 ? 2 : 1, .src = {w, w2}, .row0 = {0, w->rows}};
    l->n_pad = up(l->n, 16), l->k_pad = up(l->k, 16);
    l->nb = (l->n + 127) / 128, l->kb = (l->k + 127) / 128;
    l->s_rows = order == FL_NK ? l->nb : l->kb;
    l->s_ld = up(order == FL_NK ? l->kb : l->nb, ld_align > 0 ? ld_align : 1);
    return 0;
}

uint64_t fl_code_bytes(const struct fl_fp8 *l)
{
    return (uint64_t)(l->n_pad * l->k_pad);
}

uint64_t fl_scale_bytes(const struct fl_fp8 *l)
{
    return (uint64_t)(l->s_rows * l->s_ld) * sizeof(float);
}

/* The source holding device row r, and r's row in it (NULL for a padding row). */
static const struct weight *source(const struct fl_fp8 *l, int64_t r, int64_t *row)
{
    for (int i = 0; i < l->n_src; i++)
        if (r >= l->row0[i] && r < l->row0[i] + l->src[i]->rows) {
            *row = r - l->row0[i];
            return l->src[i];
        }
    return NULL;
}

void fl_fill_codes(const void *ctx, uint64_t at, uint64_t n, void *dst)
{
    const struct fl_fp8 *l = ctx;
    uint8_t *d = dst;
    for (uint64_t i = at, end = at + n; i < end;) { /* a row's piece at a time */
        int64_t r = (int64_t)(i / (uint64_t)l->k_pad), c = (int64_t)(i % (uint64_t)l->k_pad), row;
        uint64_t run = (uint64_t)(l->k_pad - c) < end - i ? (uint64_t)(l->k_pad - c) : end - i;
        const struct weight *w = source(l, r, &row);
        uint64_t real = w && c < l->k ? ((uint64_t)(l->k - c) < run ? (uint64_t)(l->k - c) : run) : 0;
        if (real) memcpy(d + (i - at), (const uint8_t *)w->data + row * w->cols + c, (size_t)real);
        memset(d + (i - at) + real, 0, (size_t)(run - real));
        i += run;
    }
}

/* The checkpoint's scale of device block (nb, kb), 0 past the grid. */
static float scale_at(const struct fl_fp8 *l, int64_t nb, int64_t kb)
{
    int64_t row;
    const struct weight *w = nb < l->nb && kb < l->kb ? source(l, nb * 128, &row) : NULL;
    if (!w) return 0.0f;
    float s;
    int64_t w_kb = (w->cols + w->block_cols - 1) / w->block_cols;
    memcpy(&s, (const char *)w->scale + (size_t)((row / 128) * w_kb + kb) * sizeof s, sizeof s);
    return s;
}

void fl_fill_scales(const void *ctx, uint64_t at, uint64_t n, void *dst)
{
    const struct fl_fp8 *l = ctx;
    for (uint64_t b = at; b < at + n; b++) {
        uint64_t e = b / 4;
        int64_t r = (int64_t)(e / (uint64_t)l->s_ld), c = (int64_t)(e % (uint64_t)l->s_ld);
        float s = l->order == FL_NK ? scale_at(l, r, c) : scale_at(l, c, r);
        uint8_t bytes[4];
        memcpy(bytes, &s, 4);
        ((uint8_t *)dst)[b - at] = bytes[b % 4];
    }
}

uint64_t fl_uk_bytes(const struct fl_mla *m)
{
    return (uint64_t)m->H * (uint64_t)m->dn * (uint64_t)m->dc * 2;
}

uint64_t fl_uv_bytes(const struct fl_mla *m)
{
    return (uint64_t)m->H * (uint64_t)m->dv * (uint64_t)m->dc * 2;
}

/* kv_b[row][c] widened (FP8 times its block scale, in F32), rounded to BF16. */
static uint16_t kvb_bf16(const struct weight *w, int64_t row, int64_t c)
{
    float v;
    const char *p = (const char *)w->data;
    if (w->dtype == DT_F8E4M3) {
        float s;
        int64_t n_cb = (w->cols + w->block_cols - 1) / w->block_cols;
        memcpy(&s, (const char *)w->scale + (size_t)((row / w->block_rows) * n_cb + c / w->block_cols) * 4, 4);
        v = fp8e4m3_to_f32((uint8_t)p[row * w->cols + c]) * s;
    } else {
        dtype_to_f32(w->dtype, p + (size_t)(row * w->cols + c) * dtype_size(w->dtype), &v, 1);
    }
    return nm_to_bf16(v);
}

/* Bytes of [H][rows][dc] BF16 whose head h, row d is kv_b row h(dn + dv) + first + d. */
static void fill_heads(const struct fl_mla *m, int rows, int first, uint64_t at, uint64_t n, void *dst)
{
    for (uint64_t e = at / 2; e * 2 < at + n; e++) {
        int64_t c = (int64_t)(e % (uint64_t)m->dc), hd = (int64_t)(e / (uint64_t)m->dc);
        int64_t h = hd / rows, d = hd % rows;
        uint16_t v = kvb_bf16(m->kv_b, h * (m->dn + m->dv) + first + d, c);
        for (uint64_t b = 2 * e; b < 2 * e + 2; b++)
            if (b >= at && b < at + n) ((uint8_t *)dst)[b - at] = (uint8_t)(b % 2 ? v >> 8 : v & 0xff);
    }
}

void fl_fill_uk(const void *ctx, uint64_t at, uint64_t n, void *dst)
{
    const struct fl_mla *m = ctx;
    fill_heads(m, m->dn, 0, at, n, dst);
}

void fl_fill_uv(const void *ctx, uint64_t at, uint64_t n, void *dst)
{
    const struct fl_mla *m = ctx;
    fill_heads(m, m->dv, m->dn, at, n, dst);
}

void fl_fill_f32(const void *ctx, uint64_t at, uint64_t n, void *dst)
{
    const struct weight *w = ctx;
    for (uint64_t b = at; b < at + n; b++) {
        int64_t e = (int64_t)(b / 4), r = e / w->cols, c = e % w->cols;
        float v;
        dtype_to_f32(w->dtype, (const char *)w->data + (size_t)(r * w->cols + c) * dtype_size(w->dtype), &v, 1);
        if (w->scale) {
            float s;
            int64_t n_cb = (w->cols + w->block_cols - 1) / w->block_cols;
            memcpy(&s, (const char *)w->scale + (size_t)((r / w->block_rows) * n_cb + c / w->block_cols) * 4, 4);
            v *= s;
        }
        uint8_t bytes[4];
        memcpy(bytes, &v, 4);
        ((uint8_t *)dst)[b - at] = bytes[b % 4];
    }
}
