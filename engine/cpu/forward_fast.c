/* forward_fast: the spine of a step under the fast numerics — embedding, per layer the absorbed
 * MLA and the dense MLP or MoE block, final norm and lm_head — each stage into its own buffer,
 * dumped after the layer when asked. Shapes use D hidden, H heads, dn/dr/dv head dims, dc the
 * latent rank, W = dc + dr the cache row, T the step's tokens, k experts per token. */
#include "engine/cpu/forward_fast.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/cpu/cpu_ops.h"
#include "engine/cpu/fast_stages.h"
#include "engine/cpu/moe.h"
#include "engine/cpu/numerics.h"
#include "engine/model/rope.h"
#include "engine/plan/stepplan.h"

struct ffw {
    const struct model *m;
    const struct model_config *c;
    struct tp *tp;
    int max_tokens, max_logits;
    int fp8;                 /* the checkpoint's linear layers are FP8 (else BF16 GEMMs) */
    struct rope rope;
    struct sp_plan sp;       /* the step: tokens, positions, cache slots, RoPE angles */
    struct fs_mla_w *mla;    /* [n_layers] W_UK, W_UV in BF16 */
    float *bias;             /* [n_layers][E] router correction bias, widened */
    /* one layer's stages */
    float *h_in, *h;         /* [T, D] residual stream before the layer, and now */
    float *xn, *xn2;         /* [T, D] normed inputs of attention and of the MLP / MoE */
    float *qa, *cqn;         /* [T, q_lora] q_a output and its norm */
    float *kva;              /* [T, W] */
    float *q;                /* [T, H, dn + dr] */
    uint16_t *kv;            /* [T, W] BF16 cache rows written */
    uint16_t *qfull;         /* [T, H, W] BF16 absorbed query */
    uint16_t *ctx;           /* [T, H, dc] BF16 attention output */
    float *attn;             /* [T, H * dv] */
    float *o;                /* [T, D] o_proj output */
    struct fs_act xq, cq, aq, x2; /* quantised xn, cqn, attn, xn2 */
    float *gu, *act;         /* dense: [T, 2I] gate | up, [T, I] silu(gate) · up */
    struct fs_act actq;
    float *router, *selw;    /* [T, E], [T, k] */
    int32_t *sel;            /* [T, k] experts, ascending */
    float *egu, *eact, *ey;  /* routed rows (token t, choice j) at t·k + j: [Tk, 2F], [Tk, F], [Tk, D] */
    struct fs_act eactq;
    float *sgu, *sact, *sy;  /* shared experts: [T, 2S], [T, S], [T, D] */
    struct fs_act sactq;
    float *out;              /* [T, D] MLP / MoE output */
    float *fxn;              /* [L, D] final norm of the logits rows */
    struct fs_act fxb;       /* its BF16 rounding */
};

static float *falloc(size_t n)
{
    return xcalloc(n ? n : 1, sizeof(float));
}

/* A linear layer in the checkpoint's format (FP8 with 128×128 blocks, or not). */
static int check_format(const struct weight *v, int fp8, struct err *e)
{
    if (!v->data) return 0;
    if (fs_takes_fp8(v) != fp8)
        return err_set(e, "numerics fast: %s is %s, but the model's first projection is %s; mixed "
                          "formats are not supported (use --numerics ref)",
                       v->name, dtype_name(v->dtype), fp8 ? "FP8" : "not FP8");
    if (fp8 && (v->block_rows != NM_GROUP || v->block_cols != NM_GROUP))
        return err_set(e, "numerics fast: %s has %dx%d FP8 blocks; the fast numerics need 128x128 "
                          "(use --numerics ref)",
                       v->name, v->block_rows, v->block_cols);
    return 0;
}

/* Every linear layer of the checkpoint in one format: -1 otherwise. */
static int check_formats(const struct model *m, int fp8, struct err *e)
{
    const struct model_config *c = &m->cfg;
    for (int il = 0; il < c->n_layers; il++) {
        const struct layer *L = &m->layers[il];
        const struct weight *w[] = {&L->q_a, &L->q_b, &L->q, &L->kv_a, &L->o, &L->gate, &L->up,
                                    &L->down, &L->sh_gate, &L->sh_up, &L->sh_down};
        for (size_t i = 0; i < sizeof w / sizeof w[0]; i++)
            if (check_format(w[i], fp8, e) != 0) return -1;
        for (int x = 0; L->is_moe && x < c->n_routed_experts; x++)
            if (check_format(&L->exp_gate[x], fp8, e) || check_format(&L->exp_up[x], fp8, e) ||
                check_format(&L->exp_down[x], fp8, e))
                return -1;
    }
    return 0;
}

static void alloc_stages(struct ffw *f)
{
    const struct model_config *c = f->c;
    size_t T = (size_t)f->max_tokens, D = (size_t)c->hidden_size, H = (size_t)c->n_heads;
    size_t W = (size_t)config_kv_width(c), dc = (size_t)c->kv_lora_rank, QL = (size_t)c->q_lora_rank;
    size_t I = (size_t)c->intermediate_size, F = (size_t)c->moe_intermediate_size;
    size_t S = F * (size_t)c->n_shared_experts, K = (size_t)c->n_experts_per_tok;
    size_t Tk = T * K, E = (size_t)c->n_routed_experts;
    f->h_in = falloc(T * D), f->h = falloc(T * D), f->xn = falloc(T * D), f->xn2 = falloc(T * D);
    f->qa = falloc(T * QL), f->cqn = falloc(T * QL), f->kva = falloc(T * W);
    f->q = falloc(T * H * (size_t)config_qk_head_dim(c)), f->o = falloc(T * D), f->out = falloc(T * D);
    f->kv = xcalloc(T * W, 2), f->qfull = xcalloc(T * H * W, 2), f->ctx = xcalloc(T * H * dc, 2);
    f->attn = falloc(T * H * (size_t)c->v_head_dim);
    fs_act_alloc(&f->xq, f->fp8, f->max_tokens, (int64_t)D);
    fs_act_alloc(&f->x2, f->fp8, f->max_tokens, (int64_t)D);
    fs_act_alloc(&f->cq, f->fp8, f->max_tokens, (int64_t)(QL ? QL : 1));
    fs_act_alloc(&f->aq, f->fp8, f->max_tokens, (int64_t)(H * (size_t)c->v_head_dim));
    f->gu = falloc(T * 2 * I), f->act = falloc(T * I);
    fs_act_alloc(&f->actq, f->fp8, f->max_tokens, (int64_t)(I ? I : 1));
    f->router = falloc(T * E), f->selw = falloc(Tk), f->sel = xcalloc(Tk ? Tk : 1, sizeof *f->sel);
    f->egu = falloc(Tk * 2 * F), f->eact = falloc(Tk * F), f->ey = falloc(Tk * D);
    fs_act_alloc(&f->eactq, f->fp8, (int)Tk, (int64_t)(F ? F : 1));
    f->sgu = falloc(T * 2 * S), f->sact = falloc(T * S), f->sy = falloc(T * D);
    fs_act_alloc(&f->sactq, f->fp8, f->max_tokens, (int64_t)(S ? S : 1));
    f->fxn = falloc((size_t)f->max_logits * D);
    fs_act_alloc(&f->fxb, 0, f->max_logits, (int64_t)D);
}

int ffw_check_model(const struct model *m, struct err *e)
{
    const struct layer *L0 = &m->layers[0];
    if (!config_is_mla(&m->cfg))
        return err_set(e, "numerics fast: DeepSeek's FP8 recipe is defined for DeepSeek (MLA) "
                          "models; this one has dense attention, and runs fast only with weights "
                          "in GGUF quantisation blocks (use --numerics ref)");
    if (!L0->kv_b.data)
        return err_set(e, "numerics fast: DeepSeek's FP8 recipe reads kv_b whole, and this GGUF "
                          "splits it into k_b and v_b (use --numerics ref)");
    int fp8 = fs_takes_fp8(m->cfg.q_lora_rank ? &L0->q_a : &L0->q);
    return check_formats(m, fp8, e) != 0 ? -1 : fp8;
}

struct ffw *ffw_create(const struct model *m, int max_tokens, int max_logits, struct tp *tp,
                       struct err *e)
{
    const struct model_config *c = &m->cfg;
    int fp8 = ffw_check_model(m, e);
    if (fp8 < 0) return NULL;
    struct ffw *f = xcalloc(1, sizeof *f);
    *f = (struct ffw){.m = m, .c = c, .tp = tp, .max_tokens = max_tokens,
                      .max_logits = max_logits, .fp8 = fp8};
    rope_init(&f->rope, c);
    int E = c->n_routed_experts;
    f->mla = xcalloc((size_t)c->n_layers, sizeof *f->mla);
    f->bias = falloc((size_t)c->n_layers * (size_t)E);
    for (int il = 0; il < c->n_layers; il++) {
        const struct layer *L = &m->layers[il];
        fs_mla_weights(&L->kv_b, c->n_heads, c->qk_nope_head_dim, c->v_head_dim, &f->mla[il]);
        if (L->router_bias.data) cpu_weight_row(&L->router_bias, 0, f->bias + (size_t)il * E);
    }
    alloc_stages(f);
    return f;
}

void ffw_destroy(struct ffw *f)
{
    if (!f) return;
    for (int il = 0; il < f->c->n_layers; il++) fs_mla_free(&f->mla[il]);
    float *fb[] = {f->bias, f->h_in, f->h, f->xn, f->xn2, f->qa, f->cqn, f->kva, f->q, f->attn,
                   f->o, f->gu, f->act, f->router, f->selw, f->egu, f->eact, f->ey, f->sgu,
                   f->sact, f->sy, f->out, f->fxn};
    for (size_t i = 0; i < sizeof fb / sizeof fb[0]; i++) free(fb[i]);
    struct fs_act *acts[] = {&f->xq, &f->cq, &f->aq, &f->x2, &f->actq, &f->eactq, &f->sactq, &f->fxb};
    for (size_t i = 0; i < sizeof acts / sizeof acts[0]; i++) fs_act_free(acts[i]);
    free(f->mla), free(f->kv), free(f->qfull), free(f->ctx), free(f->sel);
    sp_free(&f->sp);
    free(f);
}

/* ---- dumps ---------------------------------------------------------------------------------- */

/* The layer's dump context: -1 with the message when a file cannot be written. */
struct dumper {
    struct sd *sd;
    int layer;
    struct err *e;
    int failed;
};

static void put(struct dumper *d, const char *name, enum sd_type t, const void *data, int64_t d0,
                int64_t d1, int64_t d2)
{
    if (!d->sd || d->failed) return;
    int64_t shape[3] = {d0, d1, d2};
    d->failed = sd_put(d->sd, d->layer, name, t, data, d2 ? 3 : 2, shape, d->e) != 0;
}

/* A quantised activation: codes as NAME and scales as NAME_s, or BF16 as NAME. */
static void put_act(struct dumper *d, const char *name, const struct fs_act *a)
{
    char s[64];
    if (!a->fp8) {
        put(d, name, SD_BF16, a->b, a->n, a->k, 0);
        return;
    }
    put(d, name, SD_U8, a->q, a->n, a->k, 0);
    snprintf(s, sizeof s, "%s_s", name);
    put(d, s, SD_F32, a->s, a->n, nm_groups(a->k), 0);
}

/* ---- attention ------------------------------------------------------------------------------ */

struct attend_job {
    struct ffw *f;
    const struct kv_cache *kv;
    int il;
};

/* Token t, head h (task t·H + h): attention over the sequence's cached rows 0..pos[t]. */
static void attend_task(void *arg, int task, int thread)
{
    const struct attend_job *j = arg;
    struct ffw *f = j->f;
    const struct model_config *c = f->c;
    int H = c->n_heads, t = task / H, h = task % H, W = config_kv_width(c), bs = j->kv->block_size;
    int n = sp_i32(&f->sp, f->sp.at.pos)[t] + 1;
    const int32_t *table = sp_i32(&f->sp, f->sp.at.tables) + sp_i32(&f->sp, f->sp.at.table_off)[t];
    const uint16_t **rows = tp_scratch(f->tp, thread, (size_t)n * sizeof *rows);
    for (int p = 0; p < n; p++) rows[p] = kv_cache_row(j->kv, j->il, table[p / bs], p % bs);
    fs_attend(f->qfull + ((size_t)t * H + h) * W, rows, n, c->kv_lora_rank, c->qk_rope_head_dim,
              f->rope.softmax_scale, f->ctx + ((size_t)t * H + h) * c->kv_lora_rank, NULL);
}

/* Latent rows of the new tokens, into the cache at their slots. */
static void store_rows(struct ffw *f, struct kv_cache *kv, int il, int T)
{
    int W = config_kv_width(f->c), bs = kv->block_size;
    float *row = xmalloc((size_t)W * sizeof *row);
    for (int t = 0; t < T; t++) {
        int32_t slot = sp_i32(&f->sp, f->sp.at.slot)[t];
        for (int i = 0; i < W; i++) row[i] = nm_bf16_value(f->kv[(size_t)t * W + i]);
        kv_cache_put(kv, il, slot / bs, slot % bs, row); /* BF16 values: stored exactly */
    }
    free(row);
}

/* The query and the new latents: q_a | kv_a from the quantised normed input, q_b. */
static void projections(struct ffw *f, const struct layer *L, int T)
{
    const struct model_config *c = f->c;
    int D = c->hidden_size, QL = c->q_lora_rank, W = config_kv_width(c);
    int qw = c->n_heads * config_qk_head_dim(c);
    cpu_rmsnorm(f->h, &L->attn_norm, T, D, D, c->rms_norm_eps, f->xn, D);
    fs_quant(f->xn, D, T, &f->xq);
    fs_linear(f->tp, &L->kv_a, &f->xq, f->kva, W);
    if (!QL) {
        fs_linear(f->tp, &L->q, &f->xq, f->q, qw);
        return;
    }
    fs_linear(f->tp, &L->q_a, &f->xq, f->qa, QL);
    cpu_rmsnorm(f->qa, &L->q_a_norm, T, QL, QL, c->rms_norm_eps, f->cqn, QL);
    fs_quant(f->cqn, QL, T, &f->cq);
    fs_linear(f->tp, &L->q_b, &f->cq, f->q, qw);
}

static void attention(struct ffw *f, const struct layer *L, int il, struct kv_cache *kv, int T,
                      struct dumper *d)
{
    const struct model_config *c = f->c;
    int D = c->hidden_size, H = c->n_heads, W = config_kv_width(c), QL = c->q_lora_rank;
    int dc = c->kv_lora_rank, dr = c->qk_rope_head_dim, qk = config_qk_head_dim(c), dv = c->v_head_dim;
    const float *cos = sp_f32(&f->sp, f->sp.at.cos), *sin = sp_f32(&f->sp, f->sp.at.sin);
    memcpy(f->h_in, f->h, (size_t)T * D * sizeof(float));
    projections(f, L, T);
    fs_kv_rows(f->kva, T, &L->kv_a_norm, dc, dr, c->rms_norm_eps, cos, sin, f->kv);
    store_rows(f, kv, il, T);
    fs_qfull(f->tp, f->q, T, &f->mla[il], dr, cos, sin, f->qfull);
    struct attend_job j = {f, kv, il};
    double work = (double)T * H * W * (f->sp.max_ctx + 1);
    tp_run(work < (1 << 21) ? NULL : f->tp, T * H, attend_task, &j); /* small: on this thread */
    fs_v_up(f->tp, f->ctx, T, &f->mla[il], f->attn);
    fs_quant(f->attn, (int64_t)H * dv, T, &f->aq);
    fs_linear(f->tp, &L->o, &f->aq, f->o, D);
    for (size_t i = 0; i < (size_t)T * D; i++) f->h[i] = f->h_in[i] + f->o[i];
    put(d, "h_in", SD_F32, f->h_in, T, D, 0), put(d, "xn", SD_F32, f->xn, T, D, 0);
    put_act(d, "xq", &f->xq);
    if (QL) {
        put(d, "qa", SD_F32, f->qa, T, QL, 0), put(d, "cqn", SD_F32, f->cqn, T, QL, 0);
        put_act(d, "cq", &f->cq);
    }
    put(d, "kva", SD_F32, f->kva, T, W, 0), put(d, "q", SD_F32, f->q, T, H, qk);
    put(d, "kv", SD_BF16, f->kv, T, W, 0), put(d, "qfull", SD_BF16, f->qfull, T, H, W);
    put(d, "ctx", SD_BF16, f->ctx, T, H, dc), put(d, "attn", SD_F32, f->attn, T, (int64_t)H * dv, 0);
    put_act(d, "aq", &f->aq);
    put(d, "o", SD_F32, f->o, T, D, 0), put(d, "h_mid", SD_F32, f->h, T, D, 0);
}

/* ---- MLP and MoE ---------------------------------------------------------------------------- */

/* act[r] = silu(gu[r][:F]) · gu[r][F:] for n rows. */
static void swiglu(const float *gu, int n, int F, float *act)
{
    for (int r = 0; r < n; r++) {
        memcpy(act + (size_t)r * F, gu + (size_t)r * 2 * F, (size_t)F * sizeof(float));
        cpu_silu_mul(act + (size_t)r * F, gu + (size_t)r * 2 * F + F, F);
    }
}

/* gate | up of n rows of a into gu [n][2F], SwiGLU, quantised into aq, down into y [n][D]. */
static void mlp(struct ffw *f, const struct weight *gate, const struct weight *up,
                const struct weight *down, const struct fs_act *a, float *gu, float *act,
                struct fs_act *aq, float *y)
{
    int F = (int)gate->rows, D = f->c->hidden_size;
    fs_linear(f->tp, gate, a, gu, 2 * F);
    fs_linear(f->tp, up, a, gu + F, 2 * F);
    swiglu(gu, a->n, F, act);
    fs_quant(act, F, a->n, aq);
    fs_linear(f->tp, down, aq, y, D);
}

/* Expert x over its rows (token t, choice j at t·k + j), gate | up into egu. */
static void expert_gate_up(struct ffw *f, const struct layer *L, int x, const int *rows,
                           const int *toks, int n, struct fs_act *tmp, float *buf)
{
    int F = f->c->moe_intermediate_size;
    fs_act_rows(&f->x2, toks, n, tmp);
    fs_linear(f->tp, &L->exp_gate[x], tmp, buf, 2 * F);
    fs_linear(f->tp, &L->exp_up[x], tmp, buf + F, 2 * F);
    for (int i = 0; i < n; i++)
        memcpy(f->egu + (size_t)rows[i] * 2 * F, buf + (size_t)i * 2 * F, (size_t)2 * F * sizeof(float));
}

static void expert_down(struct ffw *f, const struct layer *L, int x, const int *rows, int n,
                        struct fs_act *tmp, float *buf)
{
    int D = f->c->hidden_size;
    fs_act_rows(&f->eactq, rows, n, tmp);
    fs_linear(f->tp, &L->exp_down[x], tmp, buf, D);
    for (int i = 0; i < n; i++)
        memcpy(f->ey + (size_t)rows[i] * D, buf + (size_t)i * D, (size_t)D * sizeof(float));
}

/* Lists expert x's rows (ascending) and their tokens; returns how many. */
static int rows_of(const struct ffw *f, int x, int T, int *rows, int *toks)
{
    int k = f->c->n_experts_per_tok, n = 0;
    for (int r = 0; r < T * k; r++)
        if (f->sel[r] == x) rows[n] = r, toks[n++] = r / k;
    return n;
}

static void routed_experts(struct ffw *f, const struct layer *L, int T)
{
    const struct model_config *c = f->c;
    int E = c->n_routed_experts, k = c->n_experts_per_tok, F = c->moe_intermediate_size;
    int D = c->hidden_size, Tk = T * k, *rows = xcalloc((size_t)Tk, sizeof *rows);
    int *toks = xcalloc((size_t)Tk, sizeof *toks);
    struct fs_act tx, ta;
    fs_act_alloc(&tx, f->fp8, Tk, D), fs_act_alloc(&ta, f->fp8, Tk, F);
    float *buf = falloc((size_t)Tk * (size_t)(2 * F > D ? 2 * F : D));
    for (int x = 0; x < E; x++) {
        int n = rows_of(f, x, T, rows, toks);
        if (n) expert_gate_up(f, L, x, rows, toks, n, &tx, buf);
    }
    swiglu(f->egu, Tk, F, f->eact);
    fs_quant(f->eact, F, Tk, &f->eactq);
    for (int x = 0; x < E; x++) {
        int n = rows_of(f, x, T, rows, toks);
        if (n) expert_down(f, L, x, rows, n, &ta, buf);
    }
    fs_act_free(&tx), fs_act_free(&ta);
    free(rows), free(toks), free(buf);
}

/* Router (F32), routing, routed and shared experts, the combine: Σ_j w_j y_j in ascending
 * expert order, then + shared, each multiply and add rounded (cpu_axpy). */
static void moe(struct ffw *f, const struct layer *L, int il, int T)
{
    const struct model_config *c = f->c;
    int E = c->n_routed_experts, k = c->n_experts_per_tok, D = c->hidden_size;
    float *scratch = falloc((size_t)E * 3 + (size_t)c->n_group);
    cpu_matmul_rows(&L->router, 0, E, f->xn2, D, T, f->router, E);
    for (int t = 0; t < T; t++)
        moe_route(c, f->router + (size_t)t * E, L->router_bias.data ? f->bias + (size_t)il * E : NULL,
                  scratch, (int *)f->sel + t * k, f->selw + t * k);
    free(scratch);
    routed_experts(f, L, T);
    if (c->n_shared_experts)
        mlp(f, &L->sh_gate, &L->sh_up, &L->sh_down, &f->x2, f->sgu, f->sact, &f->sactq, f->sy);
    memset(f->out, 0, (size_t)T * D * sizeof(float));
    for (int t = 0; t < T; t++) {
        for (int j = 0; j < k; j++)
            cpu_axpy(f->out + (size_t)t * D, f->selw[t * k + j], f->ey + ((size_t)t * k + j) * D, D);
        if (c->n_shared_experts) cpu_axpy(f->out + (size_t)t * D, 1.0f, f->sy + (size_t)t * D, D);
    }
}

static void dump_ffn(struct ffw *f, const struct layer *L, int T, struct dumper *d)
{
    const struct model_config *c = f->c;
    int D = c->hidden_size, I = c->intermediate_size, F = c->moe_intermediate_size;
    int k = c->n_experts_per_tok, S = F * c->n_shared_experts, Tk = T * k;
    put(d, "xn2", SD_F32, f->xn2, T, D, 0), put_act(d, "x2q", &f->x2);
    if (!L->is_moe) {
        put(d, "gu", SD_F32, f->gu, T, 2 * I, 0), put(d, "act", SD_F32, f->act, T, I, 0);
        put_act(d, "actq", &f->actq);
    } else {
        put(d, "router", SD_F32, f->router, T, c->n_routed_experts, 0);
        put(d, "sel", SD_I32, f->sel, T, k, 0), put(d, "selw", SD_F32, f->selw, T, k, 0);
        put(d, "egu", SD_F32, f->egu, Tk, 2 * F, 0), put(d, "eact", SD_F32, f->eact, Tk, F, 0);
        put_act(d, "eactq", &f->eactq), put(d, "ey", SD_F32, f->ey, Tk, D, 0);
        if (S) {
            put(d, "sgu", SD_F32, f->sgu, T, 2 * S, 0), put(d, "sact", SD_F32, f->sact, T, S, 0);
            put_act(d, "sactq", &f->sactq), put(d, "sy", SD_F32, f->sy, T, D, 0);
        }
    }
    put(d, "out", SD_F32, f->out, T, D, 0), put(d, "h_out", SD_F32, f->h, T, D, 0);
}

static void ffn(struct ffw *f, const struct layer *L, int il, int T, struct dumper *d)
{
    const struct model_config *c = f->c;
    int D = c->hidden_size;
    cpu_rmsnorm(f->h, &L->ffn_norm, T, D, D, c->rms_norm_eps, f->xn2, D);
    fs_quant(f->xn2, D, T, &f->x2);
    if (L->is_moe) moe(f, L, il, T);
    else mlp(f, &L->gate, &L->up, &L->down, &f->x2, f->gu, f->act, &f->actq, f->out);
    for (size_t i = 0; i < (size_t)T * D; i++) f->h[i] += f->out[i];
    dump_ffn(f, L, T, d);
}

/* ---- the step ------------------------------------------------------------------------------- */

/* Final norm of the logits rows, BF16, lm_head. */
static void head(struct ffw *f, float *logits, struct dumper *d)
{
    const struct model_config *c = f->c;
    int n = f->sp.n_logits, D = c->hidden_size;
    const int32_t *rows = sp_i32(&f->sp, f->sp.at.logit_rows);
    for (int i = 0; i < n; i++)
        cpu_rmsnorm(f->h + (size_t)rows[i] * D, &f->m->norm, 1, D, D, c->rms_norm_eps,
                    f->fxn + (size_t)i * D, D);
    fs_quant(f->fxn, D, n, &f->fxb);
    fs_linear(f->tp, &f->m->lm_head, &f->fxb, logits, c->vocab_size);
    d->layer = -1;
    put(d, "fxn", SD_F32, f->fxn, n, D, 0), put_act(d, "fxb", &f->fxb);
    put(d, "logits", SD_F32, logits, n, c->vocab_size, 0);
}

int ffw_run(struct ffw *f, struct kv_cache *kv, const struct batch *b, float *logits,
            struct sd *dump, struct err *e)
{
    const struct model_config *c = f->c;
    int T = b->n_tokens, D = c->hidden_size;
    if (kv->dtype != DT_BF16 || kv->width != config_kv_width(c) || kv->n_layers != c->n_layers)
        return err_set(e, "numerics fast needs a BF16 latent cache made for this model");
    sp_build(&f->sp, b, kv->block_size, &f->rope);
    if (dump && sd_step(dump, &f->sp, kv->block_size, e) != 0) return -1;
    struct dumper d = {.sd = dump, .e = e};
    for (int t = 0; t < T; t++) cpu_weight_row(&f->m->embed, b->tokens[t], f->h + (size_t)t * D);
    for (int il = 0; il < c->n_layers && !d.failed; il++) {
        const struct layer *L = &f->m->layers[il];
        d.layer = il;
        attention(f, L, il, kv, T, &d);
        ffn(f, L, il, T, &d);
    }
    if (f->sp.n_logits && !d.failed) head(f, logits, &d);
    return d.failed ? -1 : 0;
}
