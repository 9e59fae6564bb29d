/* cu_fast_step: one step of the fast numerics on the device — the spine of
 * engine/cpu/forward_fast.c with every stage a kernel or a library GEMM on the backend's stream:
 * norm + quantise (the residual add fused in), the FP8 linears, the latent rows and the absorbed
 * query, split-KV latent attention, the value projection, dense MLP or MoE, final norm, lm_head.
 * Nothing waits for the host inside a step (the MoE plan is computed on the device), so a decode
 * step can be captured into a CUDA graph (cu_graph.c). */
#include <stdlib.h>
#include <string.h>

#include "cuda/cu_backend.h"

#define K(call) CU_CHECK(call)

static int64_t up16(int64_t v)
{
    return (v + 15) / 16 * 16;
}

/* ---- buffers -------------------------------------------------------------------------------- */

struct carve {
    char *base;
    size_t at;
};

static void *take(struct carve *c, size_t bytes)
{
    void *p = c->base ? c->base + c->at : NULL;
    c->at += (bytes + 255) / 256 * 256;
    return p;
}

/* A quantised activation buffer of rows × k (FP8 codes + scales, or BF16). */
static void qbuf(struct carve *c, struct kq_out *q, int fp8, int64_t rows, int64_t k)
{
    int64_t kp = up16(k), groups = (k + 127) / 128;
    *q = (struct kq_out){.fp8 = fp8, .k = k, .k_pad = kp, .layout = KQ_TG};
    if (fp8) {
        q->q = take(c, (size_t)(rows * kp));
        q->s = take(c, (size_t)(rows * groups) * sizeof(float));
    } else {
        q->b = take(c, (size_t)(rows * kp) * 2);
    }
}

static void carve_all(struct backend *b, struct carve *c)
{
    const struct model_config *m = b->c;
    struct cf_bufs *f = &b->fast->b;
    int fp8 = b->fast->w.fp8;
    size_t T = (size_t)f->t_pad, D = (size_t)up16(m->hidden_size), H = (size_t)m->n_heads;
    size_t W = (size_t)config_kv_width(m), dc = (size_t)m->kv_lora_rank, QL = (size_t)m->q_lora_rank;
    size_t E = (size_t)m->n_routed_experts, k = (size_t)m->n_experts_per_tok, F = (size_t)up16(m->moe_intermediate_size);
    size_t I = (size_t)up16(m->intermediate_size), S = (size_t)up16(m->moe_intermediate_size * m->n_shared_experts);
    size_t wide = I > S ? I : S, R = (size_t)f->r_max, L = (size_t)f->l_cap, P = (size_t)f->parts_max;
    size_t hdv = (size_t)up16((int64_t)H * m->v_head_dim), qw = (size_t)up16((int64_t)H * config_qk_head_dim(m));
    f->h = take(c, T * D * 4), f->o = take(c, T * D * 4), f->xn = take(c, T * D * 4), f->xn2 = take(c, T * D * 4);
    f->out = take(c, T * D * 4);
    f->qkva = take(c, T * (size_t)(up16((int64_t)(QL + W)) + up16((int64_t)QL) + up16((int64_t)W)) * 4);
    f->cqn = take(c, T * (QL ? QL : 1) * 4), f->q = take(c, T * qw * 4), f->attn = take(c, T * hdv * 4);
    f->q_nope = take(c, T * H * (size_t)m->qk_nope_head_dim * 2), f->qfull = take(c, T * H * W * 2);
    f->ctx = take(c, T * H * dc * 2), f->kvrows = take(c, T * W * 2);
    f->part_o = take(c, P * H * dc * 4), f->part_ml = take(c, P * H * 2 * 4);
    f->mla = take(c, ((size_t)f->n_ctas + 1 + T + 1 + P * MLA_ITEM) * 4);
    f->gu = take(c, T * 2 * wide * 4), f->act = take(c, T * wide * 4);
    f->router = take(c, T * (E ? E : 1) * 4), f->selw = take(c, T * (k ? k : 1) * 4);
    f->sel = take(c, T * (k ? k : 1) * 4), f->route_tmp = take(c, T * (3 * E + (size_t)m->n_group + 1) * 4);
    f->route_taken = take(c, T * (E > (size_t)m->n_group ? E : (size_t)m->n_group + 1));
    f->count = take(c, (E + 2) * 4), f->offset = take(c, (E + 3) * 4), f->row_tok = take(c, (R + 1) * 4);
    f->tok_row = take(c, T * (k + 1) * 4);
    f->egu = take(c, (R + 1) * 2 * F * 4), f->eact = take(c, (R + 1) * F * 4), f->ey = take(c, (R + 1) * D * 4);
    f->fxn = take(c, L * D * 4), f->logits = take(c, L * (size_t)m->vocab_size * 4);
    f->sp_ids = take(c, L * 64 * 4), f->sp_vals = take(c, L * 64 * 4), f->sp_max = take(c, L * 4);
    f->sp_mass = take(c, L * 8), f->sp_nfin = take(c, L * 4);
    qbuf(c, &f->xq, fp8, (int64_t)T, m->hidden_size), qbuf(c, &f->x2, fp8, (int64_t)T, m->hidden_size);
    qbuf(c, &f->cq, fp8, (int64_t)T, QL ? (int64_t)QL : 1);
    qbuf(c, &f->aq, fp8, (int64_t)T, (int64_t)H * m->v_head_dim);
    qbuf(c, &f->actq, fp8, (int64_t)T, (int64_t)wide);
    qbuf(c, &f->xg, fp8, (int64_t)R + 1, m->hidden_size);
    qbuf(c, &f->eaq, fp8, (int64_t)R + 1, m->moe_intermediate_size);
    qbuf(c, &f->fxb, 0, (int64_t)L, m->hidden_size);
}

/* The sizes every buffer is made for. */
static void sizes(struct backend *b)
{
    struct cf_bufs *f = &b->fast->b;
    const struct model_config *m = b->c;
    f->t_cap = b->o.max_tokens, f->t_pad = (int)up16(b->o.max_tokens), f->l_cap = b->o.max_logits;
    f->n_ctas = 2 * 132; /* two work lists per SM of an H100/H200: the MLA grid a graph captures */
    f->parts_max = f->t_pad + f->n_ctas;
    f->r_max = m->n_routed_experts ? mp_grouped_max_rows(f->t_pad, m->n_experts_per_tok, m->n_routed_experts,
                                                         b->fast->w.shared_group, 16) : 0;
}

size_t cf_bufs_bytes(struct backend *b)
{
    struct carve c = {0};
    sizes(b);
    carve_all(b, &c);
    return c.at;
}

int cf_bufs_create(struct backend *b, struct err *e)
{
    struct cf_bufs *f = &b->fast->b;
    struct carve c = {0};
    sizes(b);
    carve_all(b, &c);
    cudaError_t rc = cudaMalloc(&f->base, c.at);
    if (rc != cudaSuccess) return f->base = NULL, cu_err(e, rc, "cannot allocate the step buffers");
    CU_CHECK(cudaMemset(f->base, 0, c.at));
    f->bytes = c.at;
    c = (struct carve){.base = f->base};
    carve_all(b, &c);
    return 0;
}

void cf_bufs_free(struct cf_bufs *f)
{
    if (f->base) cudaFree(f->base);
    *f = (struct cf_bufs){0};
}

/* ---- linear layers -------------------------------------------------------------------------- */

int cf_x_gt(const struct backend *b)
{
    return b->fast->use_lt ? !b->fast->blas.x_tg : b->fast->dense_cut;
}

struct kq_out cf_dense_in(const struct backend *b, const struct kq_out *q, int64_t t_pad)
{
    struct kq_out o = *q;
    if (o.fp8 && cf_x_gt(b)) o.layout = KQ_GT, o.ld_t = t_pad;
    return o;
}

void cf_linear(struct backend *b, const struct cf_lin *w, const struct kq_out *x, int T, float *y,
               int64_t ldy)
{
    if (!w->fp8) {
        if (cu_blas_bf16(&b->fast->blas, w->bf16, w->n, w->k, x->b, x->k_pad, T, y, ldy, b->stream) != 0)
            ERR_FATAL("cuBLAS BF16 GEMM %lld x %lld failed", (long long)w->n, (long long)w->k);
        return;
    }
    int64_t t_pad = up16(T);
    if (b->fast->use_lt) {
        struct cb_fp8 op = {.w = w->codes, .ws = w->scales, .ws_ld = w->s_ld, .n_pad = w->n_pad, .k_pad = w->k_pad};
        if (cu_blas_fp8(&b->fast->blas, &op, x->q, x->s, t_pad, y, ldy, b->stream) != 0)
            ERR_FATAL("cuBLASLt has no block-scaled FP8 algorithm for %lld x %lld at %lld tokens (checked at start)",
                      (long long)w->n_pad, (long long)w->k_pad, (long long)t_pad);
        return;
    }
    if (w->cut) { /* one group of t_pad rows */
        K(kcut_run(w->cut, b->fast->d_toff + 2 * (t_pad / 16 - 1), x->q, x->s, w->d_w, w->d_s, y, ldy,
                   b->stream));
        return;
    }
    struct kgemm8 g = {.w = w->codes, .ws = w->scales, .ws_ld = w->s_ld, .n_out = w->n, .k = w->k,
                       .k_pad = w->k_pad, .x = x->q, .xs = x->s, .rows = T, .y = y, .ldy = ldy,
                       .ws_kn = b->fast->dense_kn, .xs_ld_t = x->layout == KQ_GT ? x->ld_t : 0};
    K(k_gemm8(&g, b->stream));
}

/* ---- the layers ----------------------------------------------------------------------------- */

static const int32_t *plan_i32(const struct backend *b, size_t off)
{
    return (const int32_t *)(const void *)(b->fast->d_sp + off);
}

static const float *plan_f32(const struct backend *b, size_t off)
{
    return (const float *)(const void *)(b->fast->d_sp + off);
}

/* norm (w, or none) + quantise of T rows of x (pitch ldx), add fused in when given. */
static void norm_quant(struct backend *b, float *x, int64_t ldx, const float *add, const float *w,
                       int T, float *xn_out, const struct kq_out *out)
{
    struct kq_norm p = {.h = x, .add = add, .ldx = ldx, .w = w, .eps = b->c->rms_norm_eps,
                        .xn_out = xn_out, .n = T, .out = cf_dense_in(b, out, up16(T))};
    K(k_norm_quant(&p, b->stream));
}

/* The query and the latent rows: q_a | kv_a, the q_a norm and q_b, the cache rows. */
static void query(struct backend *b, const struct cf_layer *L, int il, int T, float **q)
{
    const struct model_config *m = b->c;
    struct cf_bufs *f = &b->fast->b;
    int QL = m->q_lora_rank, W = config_kv_width(m);
    int64_t qw = up16((int64_t)m->n_heads * config_qk_head_dim(m)), ld_qa = up16(QL), ld_kva = up16(W);
    float *qa = f->qkva, *kva = f->qkva + (size_t)f->t_pad * (size_t)up16(QL + W);
    struct kq_out xq = cf_dense_in(b, &f->xq, up16(T));
    if (L->qkv_stacked) {
        cf_linear(b, &L->qa, &xq, T, f->qkva, L->qa.n_pad);
        qa = f->qkva, kva = f->qkva + QL, ld_qa = ld_kva = L->qa.n_pad;
    } else {
        if (QL) cf_linear(b, &L->qa, &xq, T, qa, ld_qa);
        cf_linear(b, &L->kva, &xq, T, kva, ld_kva);
    }
    if (QL) {
        norm_quant(b, qa, ld_qa, NULL, L->q_a_norm, T, f->cqn, &f->cq);
        struct kq_out cq = cf_dense_in(b, &f->cq, up16(T));
        cf_linear(b, &L->qb, &cq, T, f->q, qw);
    } else {
        cf_linear(b, &L->qb, &xq, T, f->q, qw);
    }
    char *cache = (char *)b->kv + (size_t)il * (size_t)b->kv_layer_blocks * b->kv_block_bytes;
    K(k_kv_rows(kva, ld_kva, T, m->kv_lora_rank, m->qk_rope_head_dim, L->kv_a_norm, m->rms_norm_eps,
                plan_f32(b, b->sp.at.cos), plan_f32(b, b->sp.at.sin), plan_i32(b, b->sp.at.slot),
                (uint16_t *)(void *)cache, f->kvrows, b->stream));
    *q = f->q;
}

static void attention(struct backend *b, const struct cf_layer *L, int il, int T)
{
    const struct model_config *m = b->c;
    struct cf_bufs *f = &b->fast->b;
    int H = m->n_heads, dn = m->qk_nope_head_dim, dr = m->qk_rope_head_dim, dc = m->kv_lora_rank;
    float *q;
    query(b, L, il, T, &q);
    K(k_q_pack(q, T, H, dn, dr, dc, plan_f32(b, b->sp.at.cos), plan_f32(b, b->sp.at.sin), f->q_nope, f->qfull, b->stream));
    if (cu_blas_absorb(&b->fast->blas, f->q_nope, L->w_uk, T, H, dn, dc, dr, f->qfull, b->stream) != 0)
        ERR_FATAL("cuBLAS absorption GEMM failed");
    const int32_t *mla = f->mla;
    struct kmla p = {.qfull = f->qfull,
                     .cache = (const uint16_t *)(const void *)((char *)b->kv + (size_t)il * (size_t)b->kv_layer_blocks * b->kv_block_bytes),
                     .tables = plan_i32(b, b->sp.at.tables), .table_off = plan_i32(b, b->sp.at.table_off),
                     .cta_begin = mla, .part_begin = mla + f->n_ctas + 1, .items = mla + f->n_ctas + 1 + f->t_pad + 1,
                     .part_o = f->part_o, .part_ml = f->part_ml, .ctx = f->ctx, .T = T, .H = H, .dc = dc,
                     .dr = dr, .block_size = b->o.block_size, .n_ctas = f->n_ctas, .scale = b->rope.softmax_scale};
    K(k_mla(&p, 0, b->stream));
    if (cu_blas_vup(&b->fast->blas, f->ctx, L->w_uv, T, H, dc, m->v_head_dim, f->attn, b->stream) != 0)
        ERR_FATAL("cuBLAS value GEMM failed");
    norm_quant(b, f->attn, (int64_t)H * m->v_head_dim, NULL, NULL, T, NULL, &f->aq);
    struct kq_out aq = cf_dense_in(b, &f->aq, up16(T));
    cf_linear(b, &L->o, &aq, T, f->o, m->hidden_size);
}

/* A SwiGLU MLP (gate | up stacked or not) over x into out. */
static void mlp(struct backend *b, const struct cf_lin *gate, const struct cf_lin *up,
                const struct cf_lin *down, int stacked, int T, float *out)
{
    struct cf_bufs *f = &b->fast->b;
    int64_t F = stacked ? gate->n / 2 : gate->n, half = stacked ? F : gate->n_pad;
    int64_t ld = stacked ? gate->n_pad : 2 * gate->n_pad;
    struct kq_out x2 = cf_dense_in(b, &f->x2, up16(T));
    cf_linear(b, gate, &x2, T, f->gu, ld);
    if (!stacked) cf_linear(b, up, &x2, T, f->gu + half, ld);
    struct kq_out aq = cf_dense_in(b, &f->actq, up16(T));
    aq.k = F, aq.k_pad = up16(F);
    K(k_silu_quant(f->gu, ld, half, T, (int)F, NULL, f->act, &aq, b->stream));
    cf_linear(b, down, &aq, T, out, b->c->hidden_size);
}

void cf_run_layers(struct backend *b, int T, int dump)
{
    const struct model_config *m = b->c;
    struct cf_bufs *f = &b->fast->b;
    int64_t D = m->hidden_size; /* a multiple of 16 (cu_check_opts) */
    for (int il = 0; il < m->n_layers; il++) {
        const struct cf_layer *L = &b->fast->w.layers[il];
        norm_quant(b, f->h, D, il ? f->out : NULL, L->attn_norm, T, f->xn, &f->xq);
        attention(b, L, il, T);
        if (dump) cf_dump_attention(b, il, T); /* h is still the layer's input here */
        norm_quant(b, f->h, D, f->o, L->ffn_norm, T, f->xn2, &f->x2);
        if (L->is_moe) cf_moe(b, L, il, T, dump);
        else mlp(b, &L->gate, &L->up, &L->down, L->gu_stacked, T, f->out);
        if (dump) cf_dump_ffn(b, L, il, T);
    }
}

void cf_run_head(struct backend *b, int n_logits, int dump)
{
    const struct model_config *m = b->c;
    struct cf_bufs *f = &b->fast->b;
    if (!n_logits) return;
    struct kq_norm p = {.h = f->h, .add = f->out, .ldx = m->hidden_size,
                        .rows = plan_i32(b, b->sp.at.logit_rows), .w = b->fast->w.norm,
                        .eps = m->rms_norm_eps, .xn_out = f->fxn, .n = n_logits, .out = f->fxb};
    K(k_norm_quant(&p, b->stream));
    const struct cf_lin *lm = &b->fast->w.lm_head;
    if (cu_blas_bf16(&b->fast->blas, lm->bf16, lm->n, lm->k, f->fxb.b, f->fxb.k_pad, n_logits, f->logits,
                     m->vocab_size, b->stream) != 0)
        ERR_FATAL("cuBLAS lm_head GEMM failed");
    if (dump) cf_dump_head(b, n_logits);
}
