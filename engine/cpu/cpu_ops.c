/* cpu_ops: portable scalar kernels; the numerical reference for faster backends. */
#include "engine/cpu/cpu_ops.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "engine/err.h"

void cpu_weight_row(const struct weight *w, int64_t r, float *out)
{
    const char *row = (const char *)w->data + (size_t)r * dtype_row_bytes(w->dtype, w->cols);
    dtype_to_f32(w->dtype, row, out, (size_t)w->cols);
    if (!w->scale) return;
    int64_t n_cb = (w->cols + w->block_cols - 1) / w->block_cols;
    const char *srow = (const char *)w->scale + (size_t)((r / w->block_rows) * n_cb) * sizeof(float);
    for (int64_t b = 0; b < n_cb; b++) {
        float s;
        memcpy(&s, srow + (size_t)b * sizeof s, sizeof s);
        int64_t end = (b + 1) * w->block_cols < w->cols ? (b + 1) * w->block_cols : w->cols;
        for (int64_t c = b * w->block_cols; c < end; c++) out[c] *= s;
    }
}

float cpu_dot(const float *a, const float *b, int n)
{
    float s = 0.0f;
    for (int i = 0; i < n; i++) s += a[i] * b[i];
    return s;
}

void cpu_axpy(float *y, float s, const float *x, int n)
{
    for (int i = 0; i < n; i++) y[i] += s * x[i];
}

void cpu_matmul_rows(const struct weight *w, int64_t r0, int64_t r1, const float *x, int64_t ldx,
                     int n, float *y, int64_t ldy)
{
    float *row = xmalloc((size_t)w->cols * sizeof *row);
    for (int64_t o = r0; o < r1; o++) {
        cpu_weight_row(w, o, row);
        for (int t = 0; t < n; t++) y[t * ldy + (o - r0)] = cpu_dot(row, x + t * ldx, (int)w->cols);
    }
    free(row);
}

void cpu_matmul(const struct weight *w, const float *x, int n, float *y)
{
    cpu_matmul_rows(w, 0, w->rows, x, w->cols, n, y, w->rows);
}

void cpu_rmsnorm(const float *x, const struct weight *weight, int n, int dim, int64_t ldx,
                 float eps, float *out, int64_t ldo)
{
    float *wv = xmalloc((size_t)dim * sizeof *wv);
    cpu_weight_row(weight, 0, wv);
    for (int t = 0; t < n; t++) {
        const float *xr = x + t * ldx;
        float *o = out + t * ldo;
        float ss = cpu_dot(xr, xr, dim);
        float r = 1.0f / sqrtf(ss / (float)dim + eps);
        for (int i = 0; i < dim; i++) o[i] = xr[i] * r * wv[i];
    }
    free(wv);
}

void cpu_silu_mul(float *a, const float *b, int64_t n)
{
    for (int64_t i = 0; i < n; i++) a[i] = a[i] / (1.0f + expf(-a[i])) * b[i];
}
