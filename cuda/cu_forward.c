/* cu_forward: one step of the model on the device — the spine of engine/cpu/forward.c with every
 * operation a kernel launch on the backend's stream: embedding, per layer RMSNorm, absorbed MLA
 * over the paged cache, dense MLP or routed + shared experts, then the final norm and lm_head
 * for the rows that want logits, copied back to host memory. The host only plans indexing
 * (engine/plan/) and, once per MoE layer, turns the routing into token lists.
 *
 * Tensor-parallel (b->tp): the weights are this rank's cut (cu_model.h's struct cu_shard), so
 * attention runs its heads, the MLPs their intermediate rows and the MoE its own experts, each
 * leaving a partial block output that an NCCL all-reduce sums on every rank (bit-identical, so
 * every rank's router chooses alike); lm_head gives this rank's vocabulary rows, gathered from
 * every rank. Expert-parallel (b->ep): the routed experts run where they live
 * (cu_forward_ep.c). Waits on the stream go through comm_sync, which ends a step whose
 * collectives a dead or stalled peer holds up with a message instead of a hang. */
#include <string.h>

#include "cuda/cu_backend.h"

#define K(call) CU_CHECK(call)

/* Attention heads this rank computes. */
static int heads(const struct backend *b)
{
    return b->tp ? b->shard.h1 - b->shard.h0 : b->c->n_heads;
}

int cu_wait(struct backend *b, struct err *e)
{
    if (b->nccl) return comm_sync(b->nccl, b->stream, e);
    K(cudaStreamSynchronize(b->stream));
    return 0;
}

/* The ranks' partial block outputs [T, D] summed in place, on every rank. */
static int reduce(struct backend *b, float *out, int T, struct err *e)
{
    if (!b->tp) return 0;
    return comm_allreduce_sum(b->tp, out, (size_t)T * (size_t)b->c->hidden_size, DT_F32,
                              b->stream, e);
}

void cu_matmul(struct backend *b, const struct cu_w *w, const float *x, int n, float *y)
{
    struct cu_gemm g = {.w = *w, .r0 = 0, .n_out = w->rows, .x = x, .ldx = w->cols, .n = n, .y = y,
                        .ldy = w->rows, .n_batch = 1};
    K(k_gemm(&g, b->stream));
}

static void rmsnorm(struct backend *b, const float *x, int64_t ldx, const struct cu_w *w, int n,
                    int dim, float *out, int64_t ldo)
{
    K(k_rmsnorm(x, ldx, NULL, w, n, dim, b->c->rms_norm_eps, out, ldo, b->stream));
}

static const int32_t *plan_i32(const struct backend *b, size_t off)
{
    return (const int32_t *)(const void *)(b->d_sp + off);
}

static const float *plan_f32(const struct backend *b, size_t off)
{
    return (const float *)(const void *)(b->d_sp + off);
}

/* The step's per-token arrays to the device, in one copy. */
static void upload_plan(struct backend *b)
{
    if (b->sp.at.bytes > b->d_sp_cap) {
        if (b->d_sp) K(cudaFree(b->d_sp));
        b->d_sp_cap = b->sp.at.bytes * 2;
        K(cudaMalloc((void **)&b->d_sp, b->d_sp_cap));
    }
    K(cudaMemcpyAsync(b->d_sp, b->sp.buf, b->sp.at.bytes, cudaMemcpyHostToDevice, b->stream));
}

/* The query (through q_lora or not) with RoPE on each head's last dr channels, and the new
 * tokens' latents normed, rotated and stored in the cache. */
static void attn_inputs(struct backend *b, const struct cu_layer *L, int il, int T)
{
    const struct model_config *c = b->c;
    int H = heads(b), qk = config_qk_head_dim(c), dc = c->kv_lora_rank, w = config_kv_width(c);
    int np = b->rope.n_pairs;
    float *xn = cu_scr(b, b->at.xn), *q = cu_scr(b, b->at.q), *kva = cu_scr(b, b->at.kva);
    const float *cos = plan_f32(b, b->sp.at.cos), *sin = plan_f32(b, b->sp.at.sin);
    if (c->q_lora_rank) {
        float *cq = cu_scr(b, b->at.cq);
        cu_matmul(b, &L->q_a, xn, T, cq);
        rmsnorm(b, cq, c->q_lora_rank, &L->q_a_norm, T, c->q_lora_rank, cq, c->q_lora_rank);
        cu_matmul(b, &L->q_b, cq, T, q);
    } else {
        cu_matmul(b, &L->q, xn, T, q);
    }
    cu_matmul(b, &L->kv_a, xn, T, kva);
    K(k_rope(q, T, H, (int64_t)H * qk, qk, c->qk_nope_head_dim, cos, sin, np, b->stream));
    rmsnorm(b, kva, w, &L->kv_a_norm, T, dc, kva, w);
    K(k_rope(kva, T, 1, w, 0, dc, cos, sin, np, b->stream));
    char *layer = (char *)b->kv + (size_t)il * (size_t)b->kv_layer_blocks * b->kv_block_bytes;
    K(k_kv_store(kva, T, w, plan_i32(b, b->sp.at.slot), layer, b->kv_dtype, b->stream));
}

/* Multi-head latent attention of the step (this rank's heads); result, or its part, in out. */
static void attention(struct backend *b, const struct cu_layer *L, int il, int T)
{
    const struct model_config *c = b->c;
    int H = heads(b), qk = config_qk_head_dim(c), dc = c->kv_lora_rank, dn = c->qk_nope_head_dim;
    int dv = c->v_head_dim;
    attn_inputs(b, L, il, T);
    float *q = cu_scr(b, b->at.q), *qlat = cu_scr(b, b->at.qlat), *ctx = cu_scr(b, b->at.ctx);
    K(k_absorb(q, T, H, qk, dn, dv, &L->kv_b, qlat, b->stream));
    struct cu_attn a = {
        .qlat = qlat, .q = q, .cache = (char *)b->kv + (size_t)il * (size_t)b->kv_layer_blocks * b->kv_block_bytes,
        .cache_dtype = b->kv_dtype, .tables = plan_i32(b, b->sp.at.tables),
        .table_off = plan_i32(b, b->sp.at.table_off), .pos = plan_i32(b, b->sp.at.pos), .ctx = ctx,
        .n = T, .n_heads = H, .dc = dc, .dr = c->qk_rope_head_dim, .dn = dn, .qk = qk,
        .width = config_kv_width(c), .block_size = b->o.block_size, .scale = b->rope.softmax_scale};
    K(k_attn(&a, b->stream));
    /* attn[t][h] = W_UV_h ctx[t][h]: the value rows of kv_b, one batch entry per head */
    struct cu_gemm v = {.w = L->kv_b, .r0 = dn, .n_out = dv, .x = ctx, .ldx = (int64_t)H * dc,
                        .n = T, .y = cu_scr(b, b->at.attn), .ldy = (int64_t)H * dv, .n_batch = H,
                        .w_step = dn + dv, .x_step = dc, .y_step = dv};
    K(k_gemm(&v, b->stream));
    cu_matmul(b, &L->o, cu_scr(b, b->at.attn), T, cu_scr(b, b->at.out));
}

/* SwiGLU MLP over n rows of x into y, through ff_a / ff_b; zeros for a rank that holds none of
 * its intermediate rows. */
void cu_mlp(struct backend *b, const struct cu_w *gate, const struct cu_w *up,
                const struct cu_w *down, const float *x, int n, float *y)
{
    float *fa = cu_scr(b, b->at.ff_a), *fb = cu_scr(b, b->at.ff_b);
    if (!gate->rows) {
        K(cudaMemsetAsync(y, 0, (size_t)n * (size_t)b->c->hidden_size * sizeof *y, b->stream));
        return;
    }
    cu_matmul(b, gate, x, n, fa);
    cu_matmul(b, up, x, n, fb);
    K(k_silu_mul(fa, fb, (int64_t)n * gate->rows, b->stream));
    cu_matmul(b, down, fa, n, y);
}

/* Routing on the device; its choices come back to the host, which lists each expert's tokens. */
int cu_route(struct backend *b, const struct cu_layer *L, int T, struct err *e)
{
    const struct model_config *c = b->c;
    int k = c->n_experts_per_tok;
    float *logits = cu_scr(b, b->at.router), *bias = NULL;
    int32_t *sel = (int32_t *)(void *)(b->scratch + b->at.sel);
    cu_matmul(b, &L->router, cu_scr(b, b->at.xn), T, logits);
    if (L->router_bias.data) K(k_widen_vec(&L->router_bias, bias = cu_scr(b, b->at.bias), b->stream));
    K(k_route(&b->route, logits, bias, cu_scr(b, b->at.route_tmp), b->scratch + b->at.route_taken,
              sel, cu_scr(b, b->at.selw), T, b->stream));
    K(cudaMemcpyAsync(b->h_sel, sel, (size_t)T * k * sizeof *sel, cudaMemcpyDeviceToHost, b->stream));
    if (cu_wait(b, e) != 0) return -1;
    if (mp_build(&b->mp, b->h_sel, T, k, c->n_routed_experts) != 0)
        ERR_FATAL("the routing kernel chose an impossible expert list");
    K(cudaMemcpyAsync(b->d_mp, b->mp.buf, b->mp.n_elems * sizeof(int32_t), cudaMemcpyHostToDevice,
                      b->stream));
    return 0;
}

/* Each active expert (of this rank's) over its gathered rows: gate and up, SwiGLU over all
 * rows, then down; another rank's experts leave their rows of yg zero. */
static void experts(struct backend *b, const struct cu_layer *L)
{
    int D = b->c->hidden_size, F = b->c->moe_intermediate_size;
    const int32_t *offset = mp_arr(&b->mp, b->mp.offset), *active = mp_arr(&b->mp, b->mp.active);
    float *xg = cu_scr(b, b->at.xg), *yg = cu_scr(b, b->at.yg);
    float *ga = cu_scr(b, b->at.ga), *gb = cu_scr(b, b->at.gb);
    if (b->tp) K(cudaMemsetAsync(yg, 0, (size_t)b->mp.n_rows * (size_t)D * sizeof *yg, b->stream));
    for (int i = 0; i < b->mp.n_active; i++) {
        int x = active[i], r = offset[x], n = offset[x + 1] - r;
        if (!L->exp_gate[x].rows) continue;
        cu_matmul(b, &L->exp_gate[x], xg + (size_t)r * D, n, ga + (size_t)r * F);
        cu_matmul(b, &L->exp_up[x], xg + (size_t)r * D, n, gb + (size_t)r * F);
    }
    K(k_silu_mul(ga, gb, (int64_t)b->mp.n_rows * F, b->stream));
    for (int i = 0; i < b->mp.n_active; i++) {
        int x = active[i], r = offset[x], n = offset[x + 1] - r;
        if (!L->exp_down[x].rows) continue;
        cu_matmul(b, &L->exp_down[x], ga + (size_t)r * F, n, yg + (size_t)r * D);
    }
}

/* Σ_k w_k Expert_k(x) + Shared(x) into out, in the CPU's order of additions (this rank's part
 * of it when sharded). */
static int moe(struct backend *b, const struct cu_layer *L, int T, struct err *e)
{
    const struct model_config *c = b->c;
    int D = c->hidden_size, k = c->n_experts_per_tok;
    float *xn = cu_scr(b, b->at.xn), *ysh = NULL;
    if (cu_route(b, L, T, e) != 0) return -1;
    K(k_gather(xn, D, b->d_mp + b->mp.row_tok, b->mp.n_rows, cu_scr(b, b->at.xg), b->stream));
    if (b->ep && cu_ep_experts(b, L, e) != 0) return -1;
    if (!b->ep) experts(b, L);
    if (c->n_shared_experts) cu_mlp(b, &L->sh_gate, &L->sh_up, &L->sh_down, xn, T, ysh = cu_scr(b, b->at.ysh));
    K(k_combine(cu_scr(b, b->at.yg), b->d_mp + b->mp.tok_row, cu_scr(b, b->at.selw), k, ysh, T, D,
                cu_scr(b, b->at.out), b->stream));
    return 0;
}

/* Every rank's vocabulary rows of the n logits rows in out ([n][this rank's rows]), gathered
 * (rank blocks back to back) and copied into their columns of the caller's rows. */
static int gather_logits(struct backend *b, const float *out, int n, float *logits, struct err *e)
{
    const struct cu_shard *s = &b->shard;
    int64_t V = b->c->vocab_size, lo, hi;
    for (int r = 0; r < s->size; r++)
        comm_split(V, s->size, r, &lo, &hi), b->vcount[r] = (size_t)(n * (hi - lo)) * sizeof(float);
    if (comm_allgatherv(b->tp, out, b->gathered, b->vcount, b->stream, e) != 0) return -1;
    const float *blk = b->gathered;
    for (int r = 0; r < s->size; r++) {
        comm_split(V, s->size, r, &lo, &hi);
        size_t w = (size_t)(hi - lo) * sizeof(float);
        if (w) K(cudaMemcpy2DAsync(logits + lo, (size_t)V * sizeof(float), blk, w, w, (size_t)n,
                                   cudaMemcpyDeviceToHost, b->stream));
        blk += (size_t)n * (size_t)(hi - lo);
    }
    return 0;
}

/* Final norm and lm_head for the rows that want logits, copied to the caller's memory. */
static int head(struct backend *b, float *logits, struct err *e)
{
    int n = b->sp.n_logits, D = b->c->hidden_size;
    if (!n) return 0;
    float *hl = cu_scr(b, b->at.hl), *out = cu_scr(b, b->at.logits);
    K(k_rmsnorm(cu_scr(b, b->at.h), D, plan_i32(b, b->sp.at.logit_rows), &b->w.norm, n, D,
                b->c->rms_norm_eps, hl, D, b->stream));
    cu_matmul(b, &b->w.lm_head, hl, n, out);
    if (b->tp) return gather_logits(b, out, n, logits, e);
    K(cudaMemcpyAsync(logits, out, (size_t)n * (size_t)b->c->vocab_size * sizeof(float),
                      cudaMemcpyDeviceToHost, b->stream));
    return 0;
}

int cu_forward(struct backend *b, const struct batch *bt, float *logits, struct err *e)
{
    if (batch_check(bt, &b->lim, e) != 0) return -1;
    const struct model_config *c = b->c;
    int T = bt->n_tokens, D = c->hidden_size;
    float *h = cu_scr(b, b->at.h), *xn = cu_scr(b, b->at.xn), *out = cu_scr(b, b->at.out);
    sp_build(&b->sp, bt, b->o.block_size, &b->rope);
    upload_plan(b);
    K(k_embed(&b->w.embed, plan_i32(b, b->sp.at.tokens), T, h, b->stream));
    for (int il = 0; il < c->n_layers; il++) {
        const struct cu_layer *L = &b->w.layers[il];
        rmsnorm(b, h, D, &L->attn_norm, T, D, xn, D);
        attention(b, L, il, T);
        if (reduce(b, out, T, e) != 0) return -1;
        K(k_add(h, out, (int64_t)T * D, b->stream));
        rmsnorm(b, h, D, &L->ffn_norm, T, D, xn, D);
        if (L->is_moe && moe(b, L, T, e) != 0) return -1;
        if (!L->is_moe) cu_mlp(b, &L->gate, &L->up, &L->down, xn, T, out);
        if (reduce(b, out, T, e) != 0) return -1;
        K(k_add(h, out, (int64_t)T * D, b->stream));
    }
    if (head(b, logits, e) != 0) return -1;
    return cu_wait(b, e);
}
