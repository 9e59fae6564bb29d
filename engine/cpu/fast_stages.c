/* fast_stages: quantisation, linear layers and latent attention of the fast numerics. */
#include "engine/cpu/fast_stages.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "engine/cpu/cpu_ops.h"
#include "engine/cpu/numerics.h"
#include "engine/err.h"
#include "engine/model/rope.h"

enum { ROWS_PER_TASK = 32 };

#define SMALL_WORK (1 << 21) /* multiply-adds below which a loop runs on the calling thread */

/* The pool for a loop of `work` multiply-adds: none (inline) when it is too small to share. */
static struct tp *pool_for(struct tp *tp, double work)
{
    return work < SMALL_WORK ? NULL : tp;
}

int fs_takes_fp8(const struct weight *w)
{
    return w->dtype == DT_F8E4M3;
}

void fs_act_alloc(struct fs_act *a, int fp8, int n_max, int64_t k)
{
    size_t n = (size_t)(n_max > 0 ? n_max : 1) * (size_t)k;
    *a = (struct fs_act){.fp8 = fp8, .k = k};
    if (fp8) {
        a->q = xmalloc(n);
        a->s = xmalloc((size_t)(n_max > 0 ? n_max : 1) * (size_t)nm_groups(k) * sizeof *a->s);
    } else {
        a->b = xmalloc(n * sizeof *a->b);
    }
}

void fs_act_free(struct fs_act *a)
{
    free(a->q), free(a->s), free(a->b);
    *a = (struct fs_act){0};
}

void fs_quant(const float *x, int64_t ldx, int n, struct fs_act *a)
{
    a->n = n;
    if (a->fp8) nm_quant_1x128(x, ldx, n, a->k, a->q, a->s);
    else nm_round_bf16(x, ldx, n, a->k, a->b);
}

void fs_act_rows(const struct fs_act *src, const int *rows, int n, struct fs_act *dst)
{
    int64_t k = src->k;
    int G = nm_groups(k);
    dst->n = n;
    for (int i = 0; i < n; i++) {
        if (src->fp8) {
            memcpy(dst->q + (size_t)i * k, src->q + (size_t)rows[i] * k, (size_t)k);
            memcpy(dst->s + (size_t)i * G, src->s + (size_t)rows[i] * G, (size_t)G * sizeof(float));
        } else {
            memcpy(dst->b + (size_t)i * k, src->b + (size_t)rows[i] * k, (size_t)k * 2);
        }
    }
}

struct linear_job {
    const struct weight *w;
    const struct fs_act *a;
    float *y;
    int64_t ldy;
};

static void linear_task(void *arg, int task, int thread)
{
    const struct linear_job *j = arg;
    int64_t r0 = (int64_t)task * ROWS_PER_TASK;
    int64_t r1 = r0 + ROWS_PER_TASK < j->w->rows ? r0 + ROWS_PER_TASK : j->w->rows;
    if (j->a->fp8) nm_matmul_fp8(j->w, r0, r1, j->a->q, j->a->s, j->a->n, j->y + r0, j->ldy);
    else nm_matmul_bf16(j->w, r0, r1, j->a->b, j->a->n, j->y + r0, j->ldy);
}

void fs_linear(struct tp *tp, const struct weight *w, const struct fs_act *a, float *y,
               int64_t ldy)
{
    if (a->fp8 != fs_takes_fp8(w) || a->k != w->cols)
        ERR_FATAL("fs_linear: %s [%lld x %lld] fed %s activations of %lld values", w->name,
                  (long long)w->rows, (long long)w->cols, a->fp8 ? "FP8" : "BF16", (long long)a->k);
    if (a->n < 1) return;
    struct linear_job j = {w, a, y, ldy};
    tp_run(pool_for(tp, (double)w->rows * a->n * (double)a->k),
           (int)((w->rows + ROWS_PER_TASK - 1) / ROWS_PER_TASK), linear_task, &j);
}

/* A copy of w with every element's sign cleared (FP8 codes, BF16/F16/F32 bits). */
static void *abs_copy(const struct weight *w)
{
    size_t es = dtype_size(w->dtype), n = (size_t)(w->rows * w->cols);
    uint8_t *d = xmalloc(n * es);
    memcpy(d, w->data, n * es);
    for (size_t i = 0; i < n; i++) d[i * es + es - 1] &= 0x7f; /* little-endian: sign in the last byte */
    return d;
}

void fs_linear_abs(struct tp *tp, const struct weight *w, const struct fs_act *a, float *y,
                   int64_t ldy)
{
    struct weight wa = *w;
    struct fs_act aa = *a;
    size_t n = (size_t)a->n * (size_t)a->k;
    wa.data = abs_copy(w);
    if (a->fp8) {
        aa.q = xmalloc(n ? n : 1);
        for (size_t i = 0; i < n; i++) aa.q[i] = a->q[i] & 0x7f;
    } else {
        aa.b = xmalloc((n ? n : 1) * sizeof *aa.b);
        for (size_t i = 0; i < n; i++) aa.b[i] = a->b[i] & 0x7fff;
    }
    fs_linear(tp, &wa, &aa, y, ldy);
    free((void *)wa.data), free(aa.q), free(aa.b);
}

/* ---- latent attention ------------------------------------------------------------------- */

void fs_mla_weights(const struct weight *kv_b, int H, int dn, int dv, struct fs_mla_w *out)
{
    int dc = (int)kv_b->cols;
    float *row = xmalloc((size_t)dc * sizeof *row);
    *out = (struct fs_mla_w){.H = H, .dn = dn, .dv = dv, .dc = dc};
    out->uk = xmalloc((size_t)H * dc * dn * sizeof *out->uk);
    out->uv = xmalloc((size_t)H * dv * dc * sizeof *out->uv);
    for (int h = 0; h < H; h++) {
        for (int d = 0; d < dn + dv; d++) {
            cpu_weight_row(kv_b, (int64_t)h * (dn + dv) + d, row); /* FP8 × scale in F32 */
            for (int c = 0; c < dc; c++) {
                float v = nm_bf16(row[c]);
                if (d < dn) out->uk[((size_t)h * dc + c) * dn + d] = v;
                else out->uv[((size_t)h * dv + (d - dn)) * dc + c] = v;
            }
        }
    }
    free(row);
}

void fs_mla_free(struct fs_mla_w *w)
{
    free(w->uk), free(w->uv);
    *w = (struct fs_mla_w){0};
}

void fs_kv_rows(const float *kva, int n, const struct weight *norm, int dc, int dr, float eps,
                const float *cos, const float *sin, uint16_t *rows)
{
    int W = dc + dr, np = dr / 2;
    float *c = xmalloc((size_t)dc * sizeof *c), *kr = xmalloc((size_t)(dr ? dr : 1) * sizeof *kr);
    for (int t = 0; t < n; t++) {
        cpu_rmsnorm(kva + (size_t)t * W, norm, 1, dc, dc, eps, c, dc);
        memcpy(kr, kva + (size_t)t * W + dc, (size_t)dr * sizeof *kr);
        rope_apply(kr, np, cos + (size_t)t * np, sin + (size_t)t * np);
        for (int i = 0; i < dc; i++) rows[(size_t)t * W + i] = nm_to_bf16(c[i]);
        for (int i = 0; i < dr; i++) rows[(size_t)t * W + dc + i] = nm_to_bf16(kr[i]);
    }
    free(c), free(kr);
}

struct head_job {
    struct tp *tp;
    const float *q;
    const struct fs_mla_w *w;
    int dr;
    const float *cos, *sin;
    uint16_t *qfull;
    const uint16_t *ctx;
    float *attn;
};

/* Token t, head h (task t·H + h) of the absorbed query. */
static void qfull_task(void *arg, int task, int thread)
{
    const struct head_job *j = arg;
    const struct fs_mla_w *w = j->w;
    int H = w->H, t = task / H, h = task % H, qk = w->dn + j->dr, np = j->dr / 2, W = w->dc + j->dr;
    const float *qh = j->q + ((size_t)t * H + h) * qk;
    float *nope = tp_scratch(j->tp, thread, (size_t)qk * sizeof(float)), *rope = nope + w->dn;
    uint16_t *out = j->qfull + ((size_t)t * H + h) * W;
    for (int d = 0; d < w->dn; d++) nope[d] = nm_bf16(qh[d]);
    for (int c = 0; c < w->dc; c++)
        out[c] = nm_to_bf16(nm_dot_exact(w->uk + ((size_t)h * w->dc + c) * w->dn, nope, w->dn));
    memcpy(rope, qh + w->dn, (size_t)j->dr * sizeof *rope);
    rope_apply(rope, np, j->cos + (size_t)t * np, j->sin + (size_t)t * np);
    for (int i = 0; i < j->dr; i++) out[w->dc + i] = nm_to_bf16(rope[i]);
}

void fs_qfull(struct tp *tp, const float *q, int n, const struct fs_mla_w *w, int dr,
              const float *cos, const float *sin, uint16_t *qfull)
{
    struct head_job j = {.tp = tp, .q = q, .w = w, .dr = dr, .cos = cos, .sin = sin, .qfull = qfull};
    tp_run(pool_for(tp, (double)n * w->H * w->dc * w->dn), n * w->H, qfull_task, &j);
}

void fs_qlat_abs(const float *q, int n, const struct fs_mla_w *w, int dr, float *out)
{
    int H = w->H, qk = w->dn + dr;
    float *nope = xmalloc((size_t)w->dn * sizeof *nope), *uk = xmalloc((size_t)w->dn * sizeof *uk);
    for (int t = 0; t < n; t++)
        for (int h = 0; h < H; h++) {
            for (int d = 0; d < w->dn; d++) nope[d] = fabsf(nm_bf16(q[((size_t)t * H + h) * qk + d]));
            for (int c = 0; c < w->dc; c++) {
                const float *u = w->uk + ((size_t)h * w->dc + c) * w->dn;
                for (int d = 0; d < w->dn; d++) uk[d] = fabsf(u[d]);
                out[((size_t)t * H + h) * w->dc + c] = nm_dot_exact(uk, nope, w->dn);
            }
        }
    free(nope), free(uk);
}

void fs_attend(const uint16_t *qf, const uint16_t *const *rows, int n_ctx, int dc, int dr,
               float scale, uint16_t *ctx, float *bound)
{
    int W = dc + dr;
    float *qv = xmalloc((size_t)W * sizeof *qv), *rv = xmalloc((size_t)W * sizeof *rv);
    float *p = xmalloc((size_t)n_ctx * sizeof *p), mx = -INFINITY, l = 0.0f;
    double *acc = xcalloc((size_t)dc, sizeof *acc), *abs_acc = xcalloc((size_t)dc, sizeof *abs_acc);
    for (int c = 0; c < W; c++) qv[c] = nm_bf16_value(qf[c]);
    for (int j = 0; j < n_ctx; j++) {
        for (int c = 0; c < W; c++) rv[c] = nm_bf16_value(rows[j][c]);
        float s = nm_dot_exact(qv, rv, W);
        p[j] = scale * s;
        mx = fmaxf(mx, p[j]);
    }
    for (int j = 0; j < n_ctx; j++) {
        p[j] = expf(p[j] - mx);
        l += p[j];
    }
    for (int j = 0; j < n_ctx; j++) {
        double pb = nm_bf16(p[j]);
        for (int c = 0; c < dc; c++) {
            double v = nm_bf16_value(rows[j][c]);
            acc[c] += pb * v, abs_acc[c] += (double)p[j] * fabs(v);
        }
    }
    for (int c = 0; c < dc; c++) {
        ctx[c] = nm_to_bf16((float)acc[c] / l);
        if (bound) bound[c] = (float)(abs_acc[c] / l);
    }
    free(qv), free(rv), free(p), free(acc), free(abs_acc);
}

/* Token t, head h: attn[t][h][v] = Σ_c ctx[c] · W_UV[h][v][c]. */
static void v_up_task(void *arg, int task, int thread)
{
    const struct head_job *j = arg;
    const struct fs_mla_w *w = j->w;
    int H = w->H, t = task / H, h = task % H;
    float *c = tp_scratch(j->tp, thread, (size_t)w->dc * sizeof(float));
    for (int i = 0; i < w->dc; i++) c[i] = nm_bf16_value(j->ctx[((size_t)t * H + h) * w->dc + i]);
    for (int v = 0; v < w->dv; v++)
        j->attn[((size_t)t * H + h) * w->dv + v] = nm_dot_exact(w->uv + ((size_t)h * w->dv + v) * w->dc, c, w->dc);
}

void fs_v_up(struct tp *tp, const uint16_t *ctx, int n, const struct fs_mla_w *w, float *attn)
{
    struct head_job j = {.tp = tp, .w = w, .ctx = ctx, .attn = attn};
    tp_run(pool_for(tp, (double)n * w->H * w->dc * w->dv), n * w->H, v_up_task, &j);
}

void fs_v_up_abs(const uint16_t *ctx, int n, const struct fs_mla_w *w, float *out)
{
    float *c = xmalloc((size_t)w->dc * sizeof *c), *u = xmalloc((size_t)w->dc * sizeof *u);
    for (int t = 0; t < n; t++)
        for (int h = 0; h < w->H; h++) {
            for (int i = 0; i < w->dc; i++) c[i] = fabsf(nm_bf16_value(ctx[((size_t)t * w->H + h) * w->dc + i]));
            for (int v = 0; v < w->dv; v++) {
                for (int i = 0; i < w->dc; i++) u[i] = fabsf(w->uv[((size_t)h * w->dv + v) * w->dc + i]);
                out[((size_t)t * w->H + h) * w->dv + v] = nm_dot_exact(u, c, w->dc);
            }
        }
    free(c), free(u);
}
