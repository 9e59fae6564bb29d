/* forward: the spine of the model — embedding, decoder layers (MLA or dense GQA attention, then
 * a dense MLP or MoE), final norm and lm_head — over one batch; and MLA attention. Shapes use D
 * hidden, H heads, dn/dr/dv head dims, dc the latent rank, T the tokens in the batch. */
#include "engine/cpu/forward.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "engine/cpu/cpu_ops.h"
#include "engine/cpu/forward_internal.h"
#include "engine/cpu/moe.h"
#include "engine/model/rope.h"

static float *alloc_f(size_t n)
{
    return xcalloc(n, sizeof(float));
}

struct fwd *fwd_create(const struct model *m, int max_tokens, struct tp *tp)
{
    const struct model_config *c = &m->cfg;
    struct fwd *f = xcalloc(1, sizeof *f);
    size_t T = (size_t)max_tokens, D = (size_t)c->hidden_size, H = (size_t)c->n_heads;
    size_t dc = (size_t)c->kv_lora_rank, qk = (size_t)config_qk_head_dim(c);
    size_t wide = (size_t)c->intermediate_size;
    size_t moe_w = (size_t)c->moe_intermediate_size * (size_t)(c->n_shared_experts ? c->n_shared_experts : 1);
    if (moe_w > wide) wide = moe_w;
    *f = (struct fwd){.m = m, .c = c, .max_tokens = max_tokens};
    f->own_tp = tp ? NULL : tp_create(1);
    f->ops = (struct ops){.tp = tp ? tp : f->own_tp, .k = simd_best()};
    f->cos = alloc_f(T * (size_t)c->qk_rope_head_dim / 2), f->sin = alloc_f(T * (size_t)c->qk_rope_head_dim / 2);
    f->pos = xcalloc(T, sizeof *f->pos);
    f->seq_of = xcalloc(T, sizeof *f->seq_of);
    f->h = alloc_f(T * D), f->xn = alloc_f(T * D), f->out = alloc_f(T * D);
    f->cq = alloc_f(T * (size_t)(c->q_lora_rank ? c->q_lora_rank : 1));
    f->q = alloc_f(T * H * qk);
    f->kva = alloc_f(T * (size_t)config_kv_width(c));
    size_t kvh = (size_t)c->n_kv_heads * (size_t)c->head_dim;
    f->kn = alloc_f(T * kvh), f->vn = alloc_f(T * kvh);
    f->bias = alloc_f(H * (size_t)(c->head_dim > 0 ? c->head_dim : 1) + D);
    f->qlat = alloc_f(T * H * dc), f->ctx = alloc_f(T * H * dc);
    f->attn = alloc_f(T * H * (size_t)c->v_head_dim);
    f->ff_a = alloc_f(T * wide), f->ff_b = alloc_f(T * wide);
    f->xg = alloc_f(T * D), f->yg = alloc_f(T * D);
    size_t fk = (size_t)FUSE_T * (size_t)(c->n_experts_per_tok + 1);
    f->fx = alloc_f(fk * D), f->fy = alloc_f(fk * D), f->fa = alloc_f(fk * moe_w), f->fb = alloc_f(fk * moe_w);
    f->fwho = xcalloc(fk, sizeof *f->fwho), f->fwgt = alloc_f(fk);
    f->router = alloc_f(T * (size_t)(c->n_routed_experts + 1) * 3);
    f->sel = xcalloc(T * (size_t)(c->n_experts_per_tok + 1), sizeof *f->sel);
    f->selw = alloc_f(T * (size_t)(c->n_experts_per_tok + 1));
    rope_init(&f->rope, c);
    if (m->rope_freqs.data) {
        float *fac = alloc_f((size_t)f->rope.n_pairs);
        cpu_weight_row(&m->rope_freqs, 0, fac);
        rope_freq_factors(&f->rope, fac);
        free(fac);
    }
    return f;
}

void fwd_set_q8(struct fwd *f, int on)
{
    f->ops.q8 = on;
}

void fwd_destroy(struct fwd *f)
{
    if (!f) return;
    float *bufs[] = {f->cos, f->sin, f->h, f->xn, f->out, f->cq, f->q, f->kva, f->qlat, f->ctx,
                     f->attn, f->ff_a, f->ff_b, f->xg, f->yg, f->router, f->selw,
                     f->fx, f->fy, f->fa, f->fb, f->fwgt, f->kn, f->vn, f->bias};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++) free(bufs[i]);
    free(f->pos);
    free(f->seq_of);
    free(f->fwho);
    free(f->sel);
    tp_destroy(f->own_tp);
    free(f);
}

/* The cache was made for this model. */
static int check_cache(const struct fwd *f, const struct kv_cache *kv, struct err *e)
{
    if (kv->n_layers != f->c->n_layers || kv->width != config_kv_width(f->c))
        return err_set(e, "KV cache of %d layers x %d values does not fit the model", kv->n_layers,
                       kv->width);
    return 0;
}

static void embed(struct fwd *f, const struct batch *b)
{
    int D = f->c->hidden_size;
    for (int t = 0; t < b->n_tokens; t++) cpu_weight_row(&f->m->embed, b->tokens[t], f->h + (size_t)t * D);
    for (int s = 0; s < b->n_seqs; s++)
        for (int i = 0; i < b->seqs[s].n_tokens; i++)
            f->pos[b->seqs[s].start + i] = b->seqs[s].pos0 + i, f->seq_of[b->seqs[s].start + i] = s;
    int np = f->rope.n_pairs;
    for (int t = 0; t < b->n_tokens; t++)
        rope_angles(&f->rope, f->pos[t], f->cos + (size_t)t * np, f->sin + (size_t)t * np);
}

/* Query projection (and kv_a, in the same loop), then RoPE on each head's last dr channels. */
static void attn_query(struct fwd *f, const struct layer *L, int T)
{
    const struct model_config *c = f->c;
    int H = c->n_heads, qk = config_qk_head_dim(c), dn = c->qk_nope_head_dim;
    const struct weight *w[2] = {c->q_lora_rank ? &L->q_a : &L->q, &L->kv_a};
    float *y[2] = {c->q_lora_rank ? f->cq : f->q, f->kva};
    ops_matmul_many(&f->ops, w, y, 2, f->xn, T); /* the query's first matmul and kv_a at once */
    if (c->q_lora_rank) {
        cpu_rmsnorm(f->cq, &L->q_a_norm, T, c->q_lora_rank, c->q_lora_rank, c->rms_norm_eps,
                    f->cq, c->q_lora_rank);
        ops_matmul(&f->ops, &L->q_b, f->cq, T, f->q);
    }
    int np = f->rope.n_pairs;
    for (int t = 0; t < T; t++)
        for (int h = 0; h < H; h++)
            rope_apply(f->q + ((size_t)t * H + h) * qk + dn, np, f->cos + (size_t)t * np,
                       f->sin + (size_t)t * np);
}

/* Latent and rope key of each new token (f->kva, from attn_query), normed and rotated, stored in
 * the cache. */
static void attn_write_kv(struct fwd *f, const struct layer *L, int il, struct kv_cache *kv,
                          const struct batch *b)
{
    const struct model_config *c = f->c;
    int dc = c->kv_lora_rank, w = config_kv_width(c), T = b->n_tokens;
    cpu_rmsnorm(f->kva, &L->kv_a_norm, T, dc, w, c->rms_norm_eps, f->kva, w);
    for (int s = 0; s < b->n_seqs; s++) {
        const struct batch_seq *q = &b->seqs[s];
        for (int i = 0; i < q->n_tokens; i++) {
            size_t t = (size_t)(q->start + i), np = (size_t)f->rope.n_pairs;
            float *row = f->kva + t * w;
            int p = q->pos0 + i;
            rope_apply(row + dc, f->rope.n_pairs, f->cos + t * np, f->sin + t * np);
            kv_cache_put(kv, il, q->block_table[p / kv->block_size], p % kv->block_size, row);
        }
    }
}

struct attn_job {
    struct fwd *f;
    const struct layer *L;
    const struct kv_cache *kv;
    int il, T, group; /* heads per task in the attention loop */
    const struct batch *b;
    int whole;        /* each task also absorbs its query and applies W_UV (small batches) */
};

enum { WHOLE_ATTN_T = 8 }; /* batches up to this size run attention as one loop */

/* qlat[t][h] from head h's widened W_UK [dn, dc]. */
static void absorb_one(struct fwd *f, const float *w_uk, int t, int h)
{
    const struct model_config *c = f->c;
    int H = c->n_heads, dn = c->qk_nope_head_dim, dc = c->kv_lora_rank, qk = config_qk_head_dim(c);
    float *y = f->qlat + ((size_t)t * H + h) * dc;
    memset(y, 0, (size_t)dc * sizeof(float));
    f->ops.k->axpy_rows(y, f->q + ((size_t)t * H + h) * qk, w_uk, dc, dn, dc);
}

/* qlat[t][h] = W_UK_hᵀ q_nope[t][h] for head h and tokens [t0, t0 + n). From kv_b: the head's
 * W_UK widened, accumulated over d in order (axpy_rows: n axpys, bit for bit). From the split
 * layout's k_b (W_UK_hᵀ itself, [dc, dn]): a matmul. */
static void absorb_head(struct fwd *f, const struct layer *L, int thread, int t0, int n, int h)
{
    const struct model_config *c = f->c;
    int H = c->n_heads, dn = c->qk_nope_head_dim, dc = c->kv_lora_rank, qk = config_qk_head_dim(c);
    if (L->k_b.data) {
        ops_matmul_serial(&f->ops, thread, &L->k_b, (int64_t)h * dc, (int64_t)(h + 1) * dc,
                          f->q + ((size_t)t0 * H + h) * qk, (int64_t)H * qk, n,
                          f->qlat + ((size_t)t0 * H + h) * dc, (int64_t)H * dc);
        return;
    }
    float *w_uk = tp_scratch(f->ops.tp, thread, (size_t)dn * dc * sizeof(float)); /* [dn, dc] */
    f->ops.k->widen_rows(&L->kv_b, (int64_t)h * (dn + c->v_head_dim), dn, w_uk, dc);
    for (int t = t0; t < t0 + n; t++) absorb_one(f, w_uk, t, h);
}

/* The absorbed query of one head (a task), every token. */
static void absorb_task(void *arg, int h, int thread)
{
    const struct attn_job *j = arg;
    absorb_head(j->f, j->L, thread, 0, j->T, h);
}

/* attn[t][h] = W_UV_h ctx[t][h] for tokens [t, t + n): rows of kv_b, or of the split v_b. */
static void value_rows(struct fwd *f, const struct layer *L, int thread, int t, int n, int h)
{
    const struct model_config *c = f->c;
    int H = c->n_heads, dc = c->kv_lora_rank, dv = c->v_head_dim, stride = c->qk_nope_head_dim + dv;
    const struct weight *w = L->v_b.data ? &L->v_b : &L->kv_b;
    int64_t r0 = L->v_b.data ? (int64_t)h * dv : (int64_t)h * stride + c->qk_nope_head_dim;
    ops_matmul_serial(&f->ops, thread, w, r0, r0 + dv, f->ctx + ((size_t)t * H + h) * dc,
                      (int64_t)H * dc, n, f->attn + ((size_t)t * H + h) * dv, (int64_t)H * dv);
}

static void value_one(struct fwd *f, const struct layer *L, int thread, int t, int h)
{
    value_rows(f, L, thread, t, 1, h);
}

const float *fwd_cache_block(const struct simd_kernels *k, const struct kv_cache *kv, int il,
                             int block, int n, float *buf)
{
    if (kv->dtype == DT_F32) return (const float *)kv_cache_row(kv, il, block, 0);
    struct weight rows = {.name = "kv", .dtype = kv->dtype, .rows = n, .cols = kv->width,
                          .data = kv_cache_row(kv, il, block, 0)};
    k->widen_rows(&rows, 0, n, buf, kv->width);
    return buf;
}

/* Softmax attention of token t over positions 0..pos[t] of its sequence, for heads [h0, h1) — a
 * task of the attention loop — a cache block at a time. Each score is the set's dot of the
 * latent part plus its dot of the rope part (dot_tile elements equal dot bit for bit), and the
 * context sums run over positions in order, so no head's result depends on h0, h1 or the batch. */
static void attn_task(void *arg, int task, int thread)
{
    const struct attn_job *j = arg;
    struct fwd *f = j->f;
    const struct model_config *c = f->c;
    const struct simd_kernels *k = f->ops.k;
    const struct kv_cache *kv = j->kv;
    int H = c->n_heads, dc = c->kv_lora_rank, dn = c->qk_nope_head_dim, dr = c->qk_rope_head_dim;
    int qk = config_qk_head_dim(c), bs = kv->block_size, W = kv->width;
    int n_groups = (H + j->group - 1) / j->group, t = task / n_groups, h0 = task % n_groups * j->group;
    int h1 = h0 + j->group < H ? h0 + j->group : H, G = h1 - h0, n = f->pos[t] + 1;
    const int32_t *table = j->b->seqs[f->seq_of[t]].block_table;
    for (int h = h0; h < h1 && j->whole; h++) absorb_head(f, j->L, thread, t, 1, h);
    size_t need = (size_t)G * n + (size_t)G * bs + (size_t)bs * W; /* after absorb: it may reuse it */
    float *scores = tp_scratch(f->ops.tp, thread, need * sizeof(float));
    float *rope = scores + (size_t)G * n, *buf = rope + (size_t)G * bs;
    const float *ql = f->qlat + ((size_t)t * H + h0) * dc, *qr = f->q + ((size_t)t * H + h0) * qk + dn;
    for (int p0 = 0; p0 < n; p0 += bs) {
        int m = n - p0 < bs ? n - p0 : bs;
        const float *rows = fwd_cache_block(k, kv, j->il, table[p0 / bs], m, buf);
        k->dot_tile(rows, W, m, ql, dc, G, dc, scores + p0, n);
        k->dot_tile(rows + dc, W, m, qr, qk, G, dr, rope, bs);
        for (int h = 0; h < G; h++)
            for (int i = 0; i < m; i++)
                scores[(size_t)h * n + p0 + i] = f->rope.softmax_scale * (scores[(size_t)h * n + p0 + i] + rope[(size_t)h * bs + i]);
    }
    for (int h = 0; h < G; h++) {
        float *sc = scores + (size_t)h * n, mx = -INFINITY, sum = 0.0f;
        for (int p = 0; p < n; p++) mx = fmaxf(mx, sc[p]);
        for (int p = 0; p < n; p++) sum += sc[p] = expf(sc[p] - mx);
        for (int p = 0; p < n; p++) sc[p] /= sum;
    }
    float *ctx = f->ctx + ((size_t)t * H + h0) * dc;
    memset(ctx, 0, (size_t)G * dc * sizeof(float));
    for (int p0 = 0; p0 < n; p0 += bs) {
        int m = n - p0 < bs ? n - p0 : bs;
        const float *rows = fwd_cache_block(k, kv, j->il, table[p0 / bs], m, buf);
        int h = 0;
        for (; k->axpy_rows4 && h + 4 <= G; h += 4)
            k->axpy_rows4(ctx + (size_t)h * dc, dc, scores + (size_t)h * n + p0, n, rows, W, m, dc);
        for (; h < G; h++) k->axpy_rows(ctx + (size_t)h * dc, scores + (size_t)h * n + p0, rows, W, m, dc);
    }
    for (int h = h0; h < h1 && j->whole; h++) /* scratch is dead: value may reuse it */
        value_one(f, j->L, thread, t, h);
}

/* attn[t][h] = W_UV_h ctx[t][h] for one head h (a task), every token. */
static void value_task(void *arg, int h, int thread)
{
    const struct attn_job *j = arg;
    value_rows(j->f, j->L, thread, 0, j->T, h);
}

/* Multi-head latent attention of the whole batch; result in f->out. Parallel over heads, and
 * over (token, group of heads) for the softmax part. */
static void attention(struct fwd *f, const struct layer *L, int il, struct kv_cache *kv,
                      const struct batch *b)
{
    int T = b->n_tokens, H = f->c->n_heads, threads = tp_size(f->ops.tp);
    attn_query(f, L, T);
    attn_write_kv(f, L, il, kv, b);
    /* tasks per token: few, since each task re-reads (and for a BF16 cache widens) the context */
    int split = T >= 2 * threads ? 1 : (2 * threads + T - 1) / T;
    int group = (H + split - 1) / split;
    struct attn_job j = {f, L, kv, il, T, group, b, T <= WHOLE_ATTN_T};
    if (!j.whole) tp_run(f->ops.tp, H, absorb_task, &j);
    tp_run(f->ops.tp, T * ((H + group - 1) / group), attn_task, &j);
    if (!j.whole) tp_run(f->ops.tp, H, value_task, &j);
    ops_matmul(&f->ops, &L->o, f->attn, T, f->out);
}

/* SwiGLU MLP over n rows of x: y = down(silu(gate x) * up x). */
static void mlp(struct fwd *f, const struct weight *gate, const struct weight *up,
                const struct weight *down, const float *x, int n, float *y)
{
    const struct weight *w[2] = {gate, up};
    float *act[2] = {f->ff_a, f->ff_b};
    ops_matmul_many(&f->ops, w, act, 2, x, n);
    cpu_silu_mul(f->ff_a, f->ff_b, (int64_t)n * gate->rows);
    ops_matmul(&f->ops, down, f->ff_a, n, y);
}

/* One expert's share of a fused MoE step: its weights, its rows of gathered input and output. */
struct moe_slot {
    const struct weight *gate, *up, *down;
    const float *x; /* [n, D] */
    int n, off;     /* tokens, first row in fa/fb/fy */
    int task0[2];   /* first task of this slot in phase 1 (gate/up) and phase 2 (down) */
};

struct moe_job {
    struct fwd *f;
    struct moe_slot *slot;
    int n_slots, phase;
};

/* A task: FUSE_ROWS output rows of one slot's gate or up (phase 1) or down (phase 2). */
static void moe_task(void *arg, int task, int thread)
{
    const struct moe_job *j = arg;
    struct fwd *f = j->f;
    int s = 0, D = f->c->hidden_size;
    while (s + 1 < j->n_slots && j->slot[s + 1].task0[j->phase] <= task) s++;
    const struct moe_slot *q = &j->slot[s];
    int64_t F = q->gate->rows, i = task - q->task0[j->phase];
    if (j->phase == 0) {
        int64_t chunks = (F + FUSE_ROWS - 1) / FUSE_ROWS, r0 = (i % chunks) * FUSE_ROWS;
        int64_t r1 = r0 + FUSE_ROWS < F ? r0 + FUSE_ROWS : F;
        float *y = (i < chunks ? f->fa : f->fb) + (size_t)q->off * F + r0;
        ops_matmul_serial(&f->ops, thread, i < chunks ? q->gate : q->up, r0, r1, q->x, D, q->n, y, F);
    } else {
        int64_t r0 = i * FUSE_ROWS, r1 = r0 + FUSE_ROWS < D ? r0 + FUSE_ROWS : D;
        ops_matmul_serial(&f->ops, thread, q->down, r0, r1, f->fa + (size_t)q->off * F, F, q->n,
                          f->fy + (size_t)q->off * D + r0, D);
    }
}

/* Numbers the tasks of both phases, slot after slot. */
static int moe_plan(struct moe_slot *slot, int n_slots, int D, int *n_tasks2)
{
    int t1 = 0, t2 = 0;
    for (int s = 0; s < n_slots; s++) {
        slot[s].task0[0] = t1, slot[s].task0[1] = t2;
        t1 += 2 * (int)((slot[s].gate->rows + FUSE_ROWS - 1) / FUSE_ROWS);
        t2 += (D + FUSE_ROWS - 1) / FUSE_ROWS;
    }
    *n_tasks2 = t2;
    return t1;
}

/* Every routed expert with tokens, then the shared experts, in two parallel loops (gate/up, then
 * down) instead of three per expert — what a decode step needs. Each output row is the same
 * matmul as in the per-expert path, and outputs are combined in the same order. */
static void moe_fused(struct fwd *f, const struct layer *L, int T)
{
    const struct model_config *c = f->c;
    int D = c->hidden_size, E = c->n_routed_experts, k = c->n_experts_per_tok, n = 0, n_slots = 0;
    struct moe_slot *slot = xcalloc((size_t)E + 1, sizeof *slot);
    for (int x = 0; x < E; x++) {
        int first = n;
        for (int t = 0; t < T; t++)
            for (int j = 0; j < k; j++)
                if (f->sel[t * k + j] == x) {
                    memcpy(f->fx + (size_t)n * D, f->xn + (size_t)t * D, (size_t)D * sizeof(float));
                    f->fwho[n] = t, f->fwgt[n++] = f->selw[t * k + j];
                }
        if (n > first)
            slot[n_slots++] = (struct moe_slot){&L->exp_gate[x], &L->exp_up[x], &L->exp_down[x],
                                                f->fx + (size_t)first * D, n - first, first, {0, 0}};
    }
    int n_routed = n_slots;
    if (c->n_shared_experts)
        slot[n_slots++] = (struct moe_slot){&L->sh_gate, &L->sh_up, &L->sh_down, f->xn, T, n, {0, 0}};
    int n2, n1 = moe_plan(slot, n_slots, D, &n2);
    struct moe_job j = {f, slot, n_slots, 0};
    tp_run(f->ops.tp, n1, moe_task, &j);
    for (int s = 0; s < n_slots; s++) {
        size_t F = (size_t)slot[s].gate->rows, o = (size_t)slot[s].off * F;
        cpu_silu_mul(f->fa + o, f->fb + o, (int64_t)slot[s].n * (int64_t)F);
    }
    j.phase = 1;
    tp_run(f->ops.tp, n2, moe_task, &j);
    memset(f->out, 0, (size_t)T * D * sizeof(float));
    for (int i = 0; i < n; i++) cpu_axpy(f->out + (size_t)f->fwho[i] * D, f->fwgt[i], f->fy + (size_t)i * D, D);
    if (n_slots > n_routed)
        for (int t = 0; t < T; t++) cpu_axpy(f->out + (size_t)t * D, 1.0f, f->fy + (size_t)(n + t) * D, D);
    free(slot);
}

/* Routed experts visited in ascending id, each over the tokens routed to it; then shared. */
static void moe(struct fwd *f, const struct layer *L, int T)
{
    const struct model_config *c = f->c;
    int D = c->hidden_size, E = c->n_routed_experts, k = c->n_experts_per_tok;
    float *bias = NULL;
    if (L->router_bias.data) {
        bias = f->router + (size_t)T * E;
        cpu_weight_row(&L->router_bias, 0, bias);
    }
    ops_matmul(&f->ops, &L->router, f->xn, T, f->router);
    float *scratch = alloc_f((size_t)E * 3 + (size_t)c->n_group);
    for (int t = 0; t < T; t++)
        moe_route(c, f->router + (size_t)t * E, bias, scratch, f->sel + t * k, f->selw + t * k);
    free(scratch);
    if (T <= FUSE_T) {
        moe_fused(f, L, T);
        return;
    }
    memset(f->out, 0, (size_t)T * D * sizeof(float));
    int *who = xcalloc((size_t)T, sizeof *who);
    float *wgt = alloc_f((size_t)T);
    for (int x = 0; x < E; x++) {
        int n = 0;
        for (int t = 0; t < T; t++)
            for (int j = 0; j < k; j++)
                if (f->sel[t * k + j] == x) {
                    memcpy(f->xg + (size_t)n * D, f->xn + (size_t)t * D, (size_t)D * sizeof(float));
                    who[n] = t, wgt[n++] = f->selw[t * k + j];
                }
        if (!n) continue;
        mlp(f, &L->exp_gate[x], &L->exp_up[x], &L->exp_down[x], f->xg, n, f->yg);
        for (int i = 0; i < n; i++) cpu_axpy(f->out + (size_t)who[i] * D, wgt[i], f->yg + (size_t)i * D, D);
    }
    free(who);
    free(wgt);
    if (!c->n_shared_experts) return;
    mlp(f, &L->sh_gate, &L->sh_up, &L->sh_down, f->xn, T, f->yg);
    for (int t = 0; t < T; t++) cpu_axpy(f->out + (size_t)t * D, 1.0f, f->yg + (size_t)t * D, D);
}

static void add_residual(struct fwd *f, int T)
{
    size_t n = (size_t)T * f->c->hidden_size;
    for (size_t i = 0; i < n; i++) f->h[i] += f->out[i];
}

/* Final norm and lm_head for the rows the batch asks logits of. */
static void head(struct fwd *f, const struct batch *b, float *logits)
{
    const struct model_config *c = f->c;
    int D = c->hidden_size, n = 0;
    for (int s = 0; s < b->n_seqs; s++) {
        const struct batch_seq *q = &b->seqs[s];
        int first = q->logits == BATCH_LOGITS_ALL ? q->start : q->start + q->n_tokens - 1;
        if (q->logits == BATCH_LOGITS_NONE) continue;
        for (int t = first; t < q->start + q->n_tokens; t++)
            memcpy(f->xg + (size_t)n++ * D, f->h + (size_t)t * D, (size_t)D * sizeof(float));
    }
    if (!n) return;
    cpu_rmsnorm(f->xg, &f->m->norm, n, D, D, c->rms_norm_eps, f->xg, D);
    ops_matmul(&f->ops, &f->m->lm_head, f->xg, n, logits);
}

int fwd_run(struct fwd *f, struct kv_cache *kv, const struct batch *b, float *logits,
            struct err *e)
{
    const struct model_config *c = f->c;
    if (check_cache(f, kv, e) != 0) return -1;
    int T = b->n_tokens, D = c->hidden_size;
    embed(f, b);
    for (int il = 0; il < c->n_layers; il++) {
        const struct layer *L = &f->m->layers[il];
        cpu_rmsnorm(f->h, &L->attn_norm, T, D, D, c->rms_norm_eps, f->xn, D);
        if (config_is_mla(c)) attention(f, L, il, kv, b);
        else gqa_attention(f, L, il, kv, b);
        add_residual(f, T);
        cpu_rmsnorm(f->h, &L->ffn_norm, T, D, D, c->rms_norm_eps, f->xn, D);
        if (L->is_moe) moe(f, L, T);
        else mlp(f, &L->gate, &L->up, &L->down, f->xn, T, f->out);
        add_residual(f, T);
    }
    head(f, b, logits);
    return 0;
}
