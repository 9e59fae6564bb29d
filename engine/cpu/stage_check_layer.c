/* stage_check_layer: every stage of one layer recomputed from the dumped input to it, in the
 * order the forward runs them (engine/cpu/forward_fast.c names the stages). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "engine/cpu/cpu_ops.h"
#include "engine/cpu/moe.h"
#include "engine/cpu/numerics.h"
#include "engine/cpu/stage_check_internal.h"

#define F32(a) ((const float *)(a)->data)

/* A GEMM stage: fs_linear(w, a) against got (rows of a->n, row stride ldg). */
static void check_linear(struct sc *x, const char *stage, const struct weight *w,
                         const struct fs_act *a, const float *got, int64_t ldg)
{
    int64_t N = w->rows, n = (int64_t)a->n * N;
    float *y = sc_falloc(n), *A = sc_falloc(n), *g = sc_falloc(n);
    fs_linear(x->tp, w, a, y, N);
    fs_linear_abs(x->tp, w, a, A, N);
    for (int t = 0; t < a->n; t++) memcpy(g + t * N, got + t * ldg, (size_t)N * sizeof *g);
    sc_tol(A, A, a->fp8 ? SC_FP8 : SC_BF16, NULL, 0, n);
    sc_cmp_f32(x, stage, g, y, A, n, N);
    free(y), free(A), free(g);
}

static void check_norm(struct sc *x, const char *stage, const float *in, const struct weight *w,
                       int rows, int dim, const float *got)
{
    int64_t n = (int64_t)rows * dim;
    float *want = sc_falloc(n), *tol = sc_falloc(n);
    cpu_rmsnorm(in, w, rows, dim, dim, x->c->rms_norm_eps, want, dim);
    sc_tol(tol, want, SC_NORM, NULL, 0, n);
    sc_cmp_f32(x, stage, got, want, tol, n, dim);
    free(want), free(tol);
}

/* SwiGLU of rows of gate | up (width 2F) against got [rows, F]: within 4 ulp. */
static void check_swiglu(struct sc *x, const char *stage, const float *gu, int64_t rows, int F,
                         const float *got)
{
    int64_t n = rows * F;
    float *want = sc_falloc(n), *tol = sc_falloc(n);
    for (int64_t r = 0; r < rows; r++) {
        memcpy(want + r * F, gu + r * 2 * F, (size_t)F * sizeof *want);
        cpu_silu_mul(want + r * F, gu + r * 2 * F + F, F);
    }
    sc_tol(tol, want, SC_ULP4, NULL, 0, n);
    sc_cmp_f32(x, stage, got, want, tol, n, F);
    free(want), free(tol);
}

/* got = a + b, exactly (F32 adds). */
static void check_sum(struct sc *x, const char *stage, const float *a, const float *b,
                      const float *got, int64_t n, int64_t cols)
{
    float *want = sc_falloc(n);
    for (int64_t i = 0; i < n; i++) want[i] = a[i] + b[i];
    sc_cmp_f32(x, stage, got, want, NULL, n, cols);
    free(want);
}

static float *bf16_floats(const uint16_t *b, int64_t n)
{
    float *f = sc_falloc(n);
    for (int64_t i = 0; i < n; i++) f[i] = nm_bf16_value(b[i]);
    return f;
}

/* ---- attention ------------------------------------------------------------------------------ */

/* The residual stream entering the layer: the embedding rows (layer 0) or the previous h_out. */
static void check_link(struct sc *x, const float *h_in)
{
    int D = x->c->hidden_size;
    if (x->layer > 0) {
        sc_cmp_f32(x, "h_in", h_in, x->prev_h, NULL, (int64_t)x->T * D, D);
        return;
    }
    float *want = sc_falloc((int64_t)x->T * D);
    for (int t = 0; t < x->T; t++) cpu_weight_row(&x->m->embed, sc_plan(x, SC_TOKENS)[t], want + (size_t)t * D);
    sc_cmp_f32(x, "h_in", h_in, want, NULL, (int64_t)x->T * D, D);
    free(want);
}

static void shadow_put(struct sc *x, const uint16_t *rows)
{
    struct sc_shadow *s = &x->shadow[x->layer];
    int W = config_kv_width(x->c);
    for (int t = 0; t < x->T; t++) {
        int64_t slot = sc_plan(x, SC_SLOT)[t];
        if (slot >= s->n) {
            int64_t n = slot + 1 > 2 * s->n ? slot + 1 : 2 * s->n;
            s->rows = xrealloc(s->rows, (size_t)n * W * sizeof *s->rows);
            s->have = xrealloc(s->have, (size_t)n);
            memset(s->have + s->n, 0, (size_t)(n - s->n));
            s->n = n;
        }
        memcpy(s->rows + slot * W, rows + (size_t)t * W, (size_t)W * sizeof *rows);
        s->have[slot] = 1;
    }
}

/* The latent rows: norm part within one BF16 ulp, RoPE part exact; then into the shadow. */
static void check_kv(struct sc *x, const struct layer *L, const float *kva, const uint16_t *kv)
{
    const struct model_config *c = x->c;
    int W = config_kv_width(c), dc = c->kv_lora_rank;
    int64_t n = (int64_t)x->T * W;
    uint16_t *want = xcalloc((size_t)n, sizeof *want);
    fs_kv_rows(kva, x->T, &L->kv_a_norm, dc, c->qk_rope_head_dim, c->rms_norm_eps, x->cos, x->sin, want);
    float *g = bf16_floats(kv, n), *w = bf16_floats(want, n), *tol = sc_falloc(n);
    for (int64_t i = 0; i < n; i++) tol[i] = i % W < dc ? (float)(SC_BF16ULP * fabsf(w[i])) : 0.0f;
    sc_cmp_f32(x, "kv", g, w, tol, n, W);
    shadow_put(x, kv);
    free(want), free(g), free(w), free(tol);
}

/* The absorbed query: q_lat within 2^-14 A + one BF16 ulp, q_rope exact. */
static void check_qfull(struct sc *x, int il, const float *q, const uint16_t *qfull)
{
    const struct model_config *c = x->c;
    const struct fs_mla_w *mw = sc_mla(x, il);
    int H = c->n_heads, W = config_kv_width(c), dc = c->kv_lora_rank, dr = c->qk_rope_head_dim;
    int64_t n = (int64_t)x->T * H * W;
    uint16_t *want = xcalloc((size_t)n, sizeof *want);
    float *A = sc_falloc((int64_t)x->T * H * dc), *tol = sc_falloc(n);
    fs_qfull(x->tp, q, x->T, mw, dr, x->cos, x->sin, want);
    fs_qlat_abs(q, x->T, mw, dr, A);
    float *g = bf16_floats(qfull, n), *w = bf16_floats(want, n);
    for (int64_t i = 0; i < n; i++) {
        int64_t th = i / W, col = i % W;
        tol[i] = col < dc ? (float)(SC_BF16 * A[th * dc + col] + SC_BF16ULP * fabsf(w[i])) : 0.0f;
    }
    sc_cmp_f32(x, "qfull", g, w, tol, n, W);
    free(want), free(A), free(tol), free(g), free(w);
}

/* The latent rows token t attends over (NULL when one was never dumped). */
static const uint16_t **context(struct sc *x, int t, int *n)
{
    const struct sc_shadow *s = &x->shadow[x->layer];
    int W = config_kv_width(x->c), bs = sc_plan(x, SC_BLOCK)[0];
    const int32_t *table = sc_plan(x, SC_TABLES) + sc_plan(x, SC_TABLE_OFF)[t];
    *n = sc_plan(x, SC_POS)[t] + 1;
    const uint16_t **rows = xcalloc((size_t)*n, sizeof *rows);
    for (int p = 0; p < *n; p++) {
        int64_t slot = (int64_t)table[p / bs] * bs + p % bs;
        if (slot >= s->n || !s->have[slot]) {
            err_set(x->e, "step %d, layer %d: the latent row of position %d (slot %lld) is in no "
                          "dumped step; dumps must start with the sequence",
                    x->step, x->layer, p, (long long)slot);
            free(rows);
            return NULL;
        }
        rows[p] = s->rows + slot * W;
    }
    return rows;
}

static int check_ctx(struct sc *x, const uint16_t *qfull, const uint16_t *ctx)
{
    const struct model_config *c = x->c;
    int H = c->n_heads, W = config_kv_width(c), dc = c->kv_lora_rank;
    int64_t n = (int64_t)x->T * H * dc;
    uint16_t *want = xcalloc((size_t)n, sizeof *want);
    float *bound = sc_falloc(n), *tol = sc_falloc(n);
    for (int t = 0; t < x->T; t++) {
        int len;
        const uint16_t **rows = context(x, t, &len);
        if (!rows) return free(want), free(bound), free(tol), x->failed = 1, -1;
        for (int h = 0; h < H; h++) {
            size_t th = (size_t)t * H + h;
            fs_attend(qfull + th * W, rows, len, dc, c->qk_rope_head_dim, x->rope.softmax_scale,
                      want + th * dc, bound + th * dc);
        }
        free(rows);
    }
    float *g = bf16_floats(ctx, n), *w = bf16_floats(want, n);
    for (int64_t i = 0; i < n; i++) tol[i] = (float)(SC_MLA * bound[i] + SC_MLA * fabsf(w[i]));
    sc_cmp_f32(x, "ctx", g, w, tol, n, dc);
    free(want), free(bound), free(tol), free(g), free(w);
    return 0;
}

static void check_v_up(struct sc *x, int il, const uint16_t *ctx, const float *attn)
{
    const struct fs_mla_w *mw = sc_mla(x, il);
    int64_t cols = (int64_t)mw->H * mw->dv, n = x->T * cols;
    float *want = sc_falloc(n), *A = sc_falloc(n);
    fs_v_up(x->tp, ctx, x->T, mw, want);
    fs_v_up_abs(ctx, x->T, mw, A);
    sc_tol(A, A, SC_BF16, NULL, 0, n);
    sc_cmp_f32(x, "attn", attn, want, A, n, cols);
    free(want), free(A);
}

/* q_a | kv_a from xq, the q_a norm and its quantisation, q_b (or q from xq). */
static int check_query(struct sc *x, const struct layer *L, const struct fs_act *xq)
{
    const struct model_config *c = x->c;
    int T = x->T, QL = c->q_lora_rank, W = config_kv_width(c);
    int64_t QW = (int64_t)c->n_heads * config_qk_head_dim(c);
    const struct sd_array *kva = sc_get(x, "kva", SD_F32, T, W), *q = sc_get(x, "q", SD_F32, T, QW);
    if (!kva || !q) return -1;
    check_linear(x, "kva", &L->kv_a, xq, F32(kva), W);
    if (!QL) {
        check_linear(x, "q", &L->q, xq, F32(q), QW);
        return 0;
    }
    struct fs_act cq;
    const struct sd_array *qa = sc_get(x, "qa", SD_F32, T, QL), *cqn = sc_get(x, "cqn", SD_F32, T, QL);
    if (!qa || !cqn || sc_get_act(x, "cq", x->fp8, T, QL, &cq) != 0) return -1;
    check_linear(x, "qa", &L->q_a, xq, F32(qa), QL);
    check_norm(x, "cqn", F32(qa), &L->q_a_norm, T, QL, F32(cqn));
    sc_cmp_act(x, "cq", &cq, F32(cqn));
    check_linear(x, "q", &L->q_b, &cq, F32(q), QW);
    return 0;
}

static int attention(struct sc *x, const struct layer *L)
{
    const struct model_config *c = x->c;
    int T = x->T, D = c->hidden_size, H = c->n_heads, W = config_kv_width(c);
    int64_t AV = (int64_t)H * c->v_head_dim;
    struct fs_act xq, aq;
    const struct sd_array *h_in = sc_get(x, "h_in", SD_F32, T, D), *xn = sc_get(x, "xn", SD_F32, T, D);
    if (!h_in || !xn || sc_get_act(x, "xq", x->fp8, T, D, &xq) != 0) return -1;
    check_link(x, F32(h_in));
    check_norm(x, "xn", F32(h_in), &L->attn_norm, T, D, F32(xn));
    sc_cmp_act(x, "xq", &xq, F32(xn));
    if (check_query(x, L, &xq) != 0) return -1;
    const struct sd_array *kv = sc_get(x, "kv", SD_BF16, T, W);
    const struct sd_array *qf = sc_get(x, "qfull", SD_BF16, (int64_t)T * H, W);
    const struct sd_array *ctx = sc_get(x, "ctx", SD_BF16, (int64_t)T * H, c->kv_lora_rank);
    const struct sd_array *attn = sc_get(x, "attn", SD_F32, T, AV);
    const struct sd_array *o = sc_get(x, "o", SD_F32, T, D), *hm = sc_get(x, "h_mid", SD_F32, T, D);
    if (!kv || !qf || !ctx || !attn || !o || !hm || sc_get_act(x, "aq", x->fp8, T, AV, &aq) != 0) return -1;
    check_kv(x, L, F32(sc_get(x, "kva", SD_F32, T, W)), kv->data);
    check_qfull(x, x->layer, F32(sc_get(x, "q", SD_F32, T, (int64_t)H * config_qk_head_dim(c))), qf->data);
    if (check_ctx(x, qf->data, ctx->data) != 0) return -1;
    check_v_up(x, x->layer, ctx->data, F32(attn));
    sc_cmp_act(x, "aq", &aq, F32(attn));
    check_linear(x, "o", &L->o, &aq, F32(o), D);
    check_sum(x, "h_mid", F32(h_in), F32(o), F32(hm), (int64_t)T * D, D);
    return 0;
}

/* ---- MLP and MoE ---------------------------------------------------------------------------- */

static int dense(struct sc *x, const struct layer *L, const struct fs_act *x2, float *out_want)
{
    int T = x->T, I = x->c->intermediate_size, D = x->c->hidden_size;
    struct fs_act actq;
    const struct sd_array *gu = sc_get(x, "gu", SD_F32, T, 2 * I), *act = sc_get(x, "act", SD_F32, T, I);
    const struct sd_array *out = sc_get(x, "out", SD_F32, T, D);
    if (!gu || !act || !out || sc_get_act(x, "actq", x->fp8, T, I, &actq) != 0) return -1;
    check_linear(x, "gate", &L->gate, x2, F32(gu), 2 * I);
    check_linear(x, "up", &L->up, x2, F32(gu) + I, 2 * I);
    check_swiglu(x, "act", F32(gu), T, I, F32(act));
    sc_cmp_act(x, "actq", &actq, F32(act));
    check_linear(x, "out", &L->down, &actq, F32(out), D);
    memcpy(out_want, F32(out), (size_t)T * D * sizeof *out_want); /* out is the GEMM's output */
    return 0;
}

int sc_layer(struct sc *x, const struct layer *L)
{
    int T = x->T, D = x->c->hidden_size;
    struct fs_act x2;
    if (attention(x, L) != 0) return -1;
    const struct sd_array *hm = sc_get(x, "h_mid", SD_F32, T, D), *xn2 = sc_get(x, "xn2", SD_F32, T, D);
    const struct sd_array *out = sc_get(x, "out", SD_F32, T, D), *ho = sc_get(x, "h_out", SD_F32, T, D);
    if (!hm || !xn2 || !out || !ho || sc_get_act(x, "x2q", x->fp8, T, D, &x2) != 0) return -1;
    check_norm(x, "xn2", F32(hm), &L->ffn_norm, T, D, F32(xn2));
    sc_cmp_act(x, "x2q", &x2, F32(xn2));
    float *out_want = sc_falloc((int64_t)T * D);
    int rc = L->is_moe ? sc_moe(x, L, F32(xn2), &x2, out_want) : dense(x, L, &x2, out_want);
    if (rc == 0 && L->is_moe) sc_cmp_f32(x, "out", F32(out), out_want, NULL, (int64_t)T * D, D);
    if (rc == 0) check_sum(x, "h_out", F32(hm), F32(out), F32(ho), (int64_t)T * D, D);
    free(out_want);
    free(x->prev_h);
    x->prev_h = sc_falloc((int64_t)T * D);
    memcpy(x->prev_h, F32(ho), (size_t)T * D * sizeof *x->prev_h);
    return rc;
}
