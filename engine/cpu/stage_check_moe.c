/* stage_check_moe: the MoE block's stages — router logits, routing (forced to the dump's choice
 * where the CPU's margin is below 1e-6), every routed expert's gate | up, SwiGLU, quantisation
 * and down over the rows the dump routed to it, the shared experts, and the combine. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "engine/cpu/cpu_ops.h"
#include "engine/cpu/moe.h"
#include "engine/cpu/numerics.h"
#include "engine/cpu/stage_check_internal.h"

#define F32(a) ((const float *)(a)->data)

void sc_matmul_abs(const struct weight *w, const float *x, int n, float *A)
{
    float *row = sc_falloc(w->cols);
    for (int64_t o = 0; o < w->rows; o++) {
        cpu_weight_row(w, o, row);
        for (int t = 0; t < n; t++) {
            double s = 0;
            for (int64_t i = 0; i < w->cols; i++) s += fabs((double)row[i] * x[t * w->cols + i]);
            A[(int64_t)t * w->rows + o] = (float)s;
        }
    }
    free(row);
}

static int cmp_desc(const void *a, const void *b)
{
    float x = *(const float *)a, y = *(const float *)b;
    return (x < y) - (x > y);
}

/* The gap at the cut of the k best of v[0..n) (infinite when nothing is cut). */
static double cut_gap(const float *v, int n, int k)
{
    if (k >= n) return INFINITY;
    float *s = sc_falloc(n);
    memcpy(s, v, (size_t)n * sizeof *s);
    qsort(s, (size_t)n, sizeof *s, cmp_desc);
    double gap = (double)s[k - 1] - (double)s[k];
    free(s);
    return isnan(gap) ? INFINITY : gap;
}

/* The CPU's routing margin for one token: moe_route leaves the affinities, the (masked) choice
 * scores and the group scores in its scratch (engine/cpu/moe.h). */
static double route_margin(const struct model_config *c, const float *scratch)
{
    int E = c->n_routed_experts;
    double m = cut_gap(scratch + E, E, c->n_experts_per_tok);
    if (c->topk_method != TOPK_GREEDY) {
        double g = cut_gap(scratch + 2 * E, c->n_group, c->topk_group);
        if (g < m) m = g;
    }
    return m;
}

static void check_router(struct sc *x, const struct layer *L, const float *xn2, const float *router)
{
    int T = x->T, E = x->c->n_routed_experts;
    int64_t n = (int64_t)T * E;
    float *want = sc_falloc(n), *A = sc_falloc(n);
    cpu_matmul_rows(&L->router, 0, E, xn2, x->c->hidden_size, T, want, E);
    sc_matmul_abs(&L->router, xn2, T, A);
    sc_tol(A, A, SC_ROUTER, NULL, 0, n);
    sc_cmp_f32(x, "router", router, want, A, n, E);
    free(want), free(A);
}

/* The dump's choices against moe_route of the dump's router logits: the same experts, or a
 * margin below SC_MARGIN (then the dump's choice stands); weights within 4 ulp. */
static void check_routing(struct sc *x, const struct layer *L, const float *router,
                          const int32_t *sel, const float *selw)
{
    const struct model_config *c = x->c;
    int T = x->T, E = c->n_routed_experts, k = c->n_experts_per_tok, idx[64];
    float *scratch = sc_falloc(3 * (int64_t)E + c->n_group), *bias = NULL, w[64];
    float *tol = sc_falloc((int64_t)T * k), *want = sc_falloc((int64_t)T * k);
    if (L->router_bias.data) cpu_weight_row(&L->router_bias, 0, bias = sc_falloc(E));
    int64_t bad = -1;
    for (int t = 0; t < T; t++) {
        moe_route(c, router + (size_t)t * E, bias, scratch, idx, w);
        int same = 1;
        for (int j = 0; j < k; j++) same &= idx[j] == sel[t * k + j];
        for (int j = 0; j < k; j++) {
            want[t * k + j] = same ? w[j] : selw[t * k + j]; /* forced: the weights follow */
            tol[t * k + j] = (float)(SC_ULP4 * fabsf(want[t * k + j]));
        }
        if (same) continue;
        if (route_margin(c, scratch) < SC_MARGIN) x->r->n_forced++;
        else if (bad < 0) bad = (int64_t)t * k;
    }
    sc_verdict(x, "sel", bad < 0 ? 0.0 : INFINITY, bad, k);
    sc_cmp_f32(x, "selw", selw, want, tol, (int64_t)T * k, k);
    free(scratch), free(bias), free(tol), free(want);
}

/* Rows (token t, choice j at t·k + j) the dump routed to expert e, and their tokens. */
static int rows_of(const int32_t *sel, int Tk, int k, int e, int *rows, int *toks)
{
    int n = 0;
    for (int r = 0; r < Tk; r++)
        if (sel[r] == e) rows[n] = r, toks[n++] = r / k;
    return n;
}

/* want / A (rows of width ld, at column off) of w over the listed rows of a. */
static void expert_gemm(struct sc *x, const struct weight *w, const struct fs_act *a,
                        const int *src, const int *dst, int n, float *want, float *A, int64_t ld,
                        int64_t off)
{
    struct fs_act g;
    int64_t N = w->rows;
    fs_act_alloc(&g, a->fp8, n, a->k);
    fs_act_rows(a, src, n, &g);
    float *y = sc_falloc(n * N), *ya = sc_falloc(n * N);
    fs_linear(x->tp, w, &g, y, N);
    fs_linear_abs(x->tp, w, &g, ya, N);
    for (int i = 0; i < n; i++) {
        memcpy(want + dst[i] * ld + off, y + (int64_t)i * N, (size_t)N * sizeof *y);
        memcpy(A + dst[i] * ld + off, ya + (int64_t)i * N, (size_t)N * sizeof *ya);
    }
    fs_act_free(&g), free(y), free(ya);
}

/* A GEMM stage assembled from per-expert parts: tol from A, one verdict. */
static void gemm_verdict(struct sc *x, const char *stage, const float *got, const float *want,
                         float *A, int64_t n, int64_t cols)
{
    sc_tol(A, A, x->fp8 ? SC_FP8 : SC_BF16, NULL, 0, n);
    sc_cmp_f32(x, stage, got, want, A, n, cols);
}

static int routed(struct sc *x, const struct layer *L, const struct fs_act *x2, const int32_t *sel)
{
    const struct model_config *c = x->c;
    int T = x->T, k = c->n_experts_per_tok, F = c->moe_intermediate_size, D = c->hidden_size;
    int Tk = T * k, *rows = xcalloc((size_t)Tk, sizeof *rows), *toks = xcalloc((size_t)Tk, sizeof *toks);
    struct fs_act aq;
    const struct sd_array *egu = sc_get(x, "egu", SD_F32, Tk, 2 * F), *eact = sc_get(x, "eact", SD_F32, Tk, F);
    const struct sd_array *ey = sc_get(x, "ey", SD_F32, Tk, D);
    if (!egu || !eact || !ey || sc_get_act(x, "eactq", x->fp8, Tk, F, &aq) != 0)
        return free(rows), free(toks), -1;
    float *want = sc_falloc((int64_t)Tk * (2 * F > D ? 2 * F : D)), *A = sc_falloc((int64_t)Tk * (2 * F > D ? 2 * F : D));
    for (int e = 0; e < c->n_routed_experts; e++) {
        int n = rows_of(sel, Tk, k, e, rows, toks);
        expert_gemm(x, &L->exp_gate[e], x2, toks, rows, n, want, A, 2 * F, 0);
        expert_gemm(x, &L->exp_up[e], x2, toks, rows, n, want, A, 2 * F, F);
    }
    gemm_verdict(x, "egu", F32(egu), want, A, (int64_t)Tk * 2 * F, 2 * F);
    float *act = sc_falloc((int64_t)Tk * F), *tol = sc_falloc((int64_t)Tk * F);
    for (int r = 0; r < Tk; r++) {
        memcpy(act + (size_t)r * F, F32(egu) + (size_t)r * 2 * F, (size_t)F * sizeof *act);
        cpu_silu_mul(act + (size_t)r * F, F32(egu) + (size_t)r * 2 * F + F, F);
    }
    sc_tol(tol, act, SC_ULP4, NULL, 0, (int64_t)Tk * F);
    sc_cmp_f32(x, "eact", F32(eact), act, tol, (int64_t)Tk * F, F);
    sc_cmp_act(x, "eactq", &aq, F32(eact));
    for (int e = 0; e < c->n_routed_experts; e++) {
        int n = rows_of(sel, Tk, k, e, rows, toks);
        expert_gemm(x, &L->exp_down[e], &aq, rows, rows, n, want, A, D, 0);
    }
    gemm_verdict(x, "ey", F32(ey), want, A, (int64_t)Tk * D, D);
    free(rows), free(toks), free(want), free(A), free(act), free(tol);
    return 0;
}

static int shared(struct sc *x, const struct layer *L, const struct fs_act *x2)
{
    int T = x->T, D = x->c->hidden_size, S = (int)L->sh_gate.rows;
    struct fs_act aq;
    const struct sd_array *gu = sc_get(x, "sgu", SD_F32, T, 2 * S), *act = sc_get(x, "sact", SD_F32, T, S);
    const struct sd_array *y = sc_get(x, "sy", SD_F32, T, D);
    if (!gu || !act || !y || sc_get_act(x, "sactq", x->fp8, T, S, &aq) != 0) return -1;
    int *all = xcalloc((size_t)T, sizeof *all);
    for (int t = 0; t < T; t++) all[t] = t;
    float *want = sc_falloc((int64_t)T * 2 * S), *A = sc_falloc((int64_t)T * 2 * S);
    expert_gemm(x, &L->sh_gate, x2, all, all, T, want, A, 2 * S, 0);
    expert_gemm(x, &L->sh_up, x2, all, all, T, want, A, 2 * S, S);
    gemm_verdict(x, "sgu", F32(gu), want, A, (int64_t)T * 2 * S, 2 * S);
    float *a = sc_falloc((int64_t)T * S), *tol = sc_falloc((int64_t)T * S);
    for (int t = 0; t < T; t++) {
        memcpy(a + (size_t)t * S, F32(gu) + (size_t)t * 2 * S, (size_t)S * sizeof *a);
        cpu_silu_mul(a + (size_t)t * S, F32(gu) + (size_t)t * 2 * S + S, S);
    }
    sc_tol(tol, a, SC_ULP4, NULL, 0, (int64_t)T * S);
    sc_cmp_f32(x, "sact", F32(act), a, tol, (int64_t)T * S, S);
    sc_cmp_act(x, "sactq", &aq, F32(act));
    float *wy = sc_falloc((int64_t)T * D), *Ay = sc_falloc((int64_t)T * D);
    expert_gemm(x, &L->sh_down, &aq, all, all, T, wy, Ay, D, 0);
    gemm_verdict(x, "sy", F32(y), wy, Ay, (int64_t)T * D, D);
    free(all), free(want), free(A), free(a), free(tol), free(wy), free(Ay);
    return 0;
}

int sc_moe(struct sc *x, const struct layer *L, const float *xn2, const struct fs_act *x2,
           float *out_want)
{
    const struct model_config *c = x->c;
    int T = x->T, E = c->n_routed_experts, k = c->n_experts_per_tok, D = c->hidden_size;
    const struct sd_array *router = sc_get(x, "router", SD_F32, T, E);
    const struct sd_array *sel = sc_get(x, "sel", SD_I32, T, k), *selw = sc_get(x, "selw", SD_F32, T, k);
    if (!router || !sel || !selw) return -1;
    const int32_t *s = sel->data;
    for (int i = 0; i < T * k; i++)
        if (s[i] < 0 || s[i] >= E)
            return x->failed = 1, err_set(x->e, "step %d, layer %d: sel holds expert %d of %d",
                                          x->step, x->layer, s[i], E);
    check_router(x, L, xn2, F32(router));
    check_routing(x, L, F32(router), s, F32(selw));
    if (routed(x, L, x2, s) != 0) return -1;
    if (c->n_shared_experts && shared(x, L, x2) != 0) return -1;
    const float *ey = F32(sc_get(x, "ey", SD_F32, (int64_t)T * k, D));
    const float *sy = c->n_shared_experts ? F32(sc_get(x, "sy", SD_F32, T, D)) : NULL;
    memset(out_want, 0, (size_t)T * D * sizeof *out_want);
    for (int t = 0; t < T; t++) {
        for (int j = 0; j < k; j++)
            cpu_axpy(out_want + (size_t)t * D, F32(selw)[t * k + j], ey + ((size_t)t * k + j) * D, D);
        if (sy) cpu_axpy(out_want + (size_t)t * D, 1.0f, sy + (size_t)t * D, D);
    }
    return 0;
}
