/* cu_fast_moe: one MoE block of the fast numerics on the device — the F32 router GEMM and routing,
 * the token permutation computed on the device (k_moe_plan: the host never learns the routing),
 * the quantised rows gathered into expert groups, the grouped FP8 GEMMs (CUTLASS on tensor cores,
 * or k_gemm8_grouped), SwiGLU + quantisation, and the combine in the CPU's order. The shared
 * experts run as one more group when they are one expert wide (V3), else as a dense MLP.
 *
 * BF16 checkpoints run their experts one cuBLAS GEMM each after reading the group sizes back: such
 * steps cannot be captured (graphs are off for them). */
#include <stdlib.h>

#include "cuda/cu_backend.h"

#define K(call) CU_CHECK(call)

static int64_t up16(int64_t v)
{
    return (v + 15) / 16 * 16;
}

/* The layout the expert GEMMs read their activations in. */
static struct kq_out grouped(const struct backend *b, const struct kq_out *q)
{
    struct kq_out o = *q;
    o.offset = b->fast->b.offset, o.n_groups = b->fast->w.G;
    if (o.fp8 && b->fast->w.experts_cutlass) o.layout = KQ_GROUPED;
    return o;
}

/* y (row pitch ldy) of group-wise FP8 GEMMs: CUTLASS when set up, else on CUDA cores. */
static void grouped_gemm(struct backend *b, struct kcut *cut, const uint8_t *const *w,
                         const float *const *ws, const struct cf_lin *shape, const struct kq_out *x,
                         float *y, int64_t ldy)
{
    struct cf_bufs *f = &b->fast->b;
    if (cut) {
        K(kcut_run(cut, f->offset, x->q, x->s, w, ws, y, ldy, b->stream));
        return;
    }
    struct kgemm8g g = {.w = w, .ws = ws, .ws_ld = shape->s_ld, .n_out = shape->n, .k = shape->k,
                        .k_pad = shape->k_pad, .offset = f->offset, .row_tok = f->row_tok,
                        .n_groups = b->fast->w.G, .rows = f->r_max, .x = x->q, .xs = x->s, .y = y, .ldy = ldy};
    K(k_gemm8_grouped(&g, b->stream));
}

/* BF16 experts: one GEMM per non-empty group, the group sizes read back first. */
static void bf16_groups(struct backend *b, const struct cf_lin *ws, const struct kq_out *x, float *y,
                        int64_t ldy)
{
    struct cf_bufs *f = &b->fast->b;
    int G = b->fast->w.G;
    int32_t *off = xcalloc((size_t)G + 1, sizeof *off);
    K(cudaMemcpyAsync(off, f->offset, ((size_t)G + 1) * sizeof *off, cudaMemcpyDeviceToHost, b->stream));
    K(cudaStreamSynchronize(b->stream));
    for (int g = 0; g < G; g++) {
        int n = off[g + 1] - off[g];
        if (n && cu_blas_bf16(&b->fast->blas, ws[g].bf16, ws[g].n, ws[g].k, x->b + (size_t)off[g] * x->k_pad,
                              x->k_pad, n, y + (size_t)off[g] * ldy, ldy, b->stream) != 0)
            ERR_FATAL("cuBLAS expert GEMM failed");
    }
    free(off);
}

/* gate | up of every routed row into egu (pitch ld: gate at 0, up at up_off). */
static void gate_up(struct backend *b, const struct cf_layer *L, const struct kq_out *xg, int64_t ld,
                    int64_t up_off)
{
    struct cf_bufs *f = &b->fast->b;
    if (!b->fast->w.fp8) {
        bf16_groups(b, L->eg, xg, f->egu, ld);
        bf16_groups(b, L->eu, xg, f->egu + up_off, ld);
        return;
    }
    grouped_gemm(b, b->fast->cut_gu, L->d_gu_w, L->d_gu_s, &L->eg[0], xg, f->egu, ld);
    if (!L->gu_stacked) grouped_gemm(b, NULL, L->d_up_w, L->d_up_s, &L->eu[0], xg, f->egu + up_off, ld);
}

/* The shared experts apart from the groups (wider than one expert): a dense MLP into o. */
static void shared_dense(struct backend *b, const struct cf_layer *L, int T)
{
    struct cf_bufs *f = &b->fast->b;
    int64_t S = L->gate.n, ld = 2 * L->gate.n_pad;
    struct kq_out x2 = cf_dense_in(b, &f->x2, up16(T));
    cf_linear(b, &L->gate, &x2, T, f->gu, ld);
    cf_linear(b, &L->up, &x2, T, f->gu + L->gate.n_pad, ld);
    struct kq_out aq = f->actq;
    aq.k = S, aq.k_pad = up16(S);
    aq = cf_dense_in(b, &aq, up16(T));
    K(k_silu_quant(f->gu, ld, L->gate.n_pad, T, (int)S, NULL, f->act, &aq, b->stream));
    cf_linear(b, &L->down, &aq, T, f->o, b->c->hidden_size);
}

void cf_moe(struct backend *b, const struct cf_layer *L, int il, int T, int dump)
{
    const struct model_config *m = b->c;
    struct cf_bufs *f = &b->fast->b;
    int E = m->n_routed_experts, k = m->n_experts_per_tok, D = m->hidden_size, F = m->moe_intermediate_size;
    int sg = b->fast->w.shared_group;
    if (cu_blas_router(&b->fast->blas, L->router, E, D, f->xn2, T, f->router, b->stream) != 0)
        ERR_FATAL("cuBLAS router GEMM failed");
    K(k_route(&b->route, f->router, L->bias, f->route_tmp, f->route_taken, f->sel, f->selw, T, b->stream));
    K(k_moe_plan(f->sel, T, k, E, sg, 16, f->r_max, f->count, f->offset, f->row_tok, f->tok_row, b->stream));
    struct kq_out src = f->x2, xg = grouped(b, &f->xg), aq = grouped(b, &f->eaq);
    if (src.fp8 && cf_x_gt(b)) src.layout = KQ_GT, src.ld_t = up16(T);
    K(k_gather_q(&src, f->row_tok, f->r_max, &xg, b->stream));
    int64_t ld = L->gu_stacked ? L->eg[0].n_pad : 2 * L->eg[0].n_pad, up_off = L->gu_stacked ? F : L->eg[0].n_pad;
    gate_up(b, L, &xg, ld, up_off);
    K(k_silu_quant(f->egu, ld, up_off, f->r_max, F, f->row_tok, f->eact, &aq, b->stream));
    if (b->fast->w.fp8) grouped_gemm(b, b->fast->cut_dn, L->d_dn_w, L->d_dn_s, &L->ed[0], &aq, f->ey, D);
    else bf16_groups(b, L->ed, &aq, f->ey, D);
    if (!sg && m->n_shared_experts) shared_dense(b, L, T);
    K(k_combine_rows(f->ey, f->tok_row, f->selw, k, sg, !sg && m->n_shared_experts ? f->o : NULL, T, D,
                     f->out, b->stream));
    (void)il, (void)dump;
}
