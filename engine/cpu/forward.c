/* forward: the spine of the model — embedding, decoder layers (MLA or dense GQA attention, then
 * a dense MLP or MoE), final norm and lm_head — over one batch; and MLA attention. Shapes use D
 * hidden, H heads, dn/dr/dv head dims, dc the latent rank, T the tokens in the batch. */
#include "engine/cpu/forward.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "engine/cpu/cpu_ops.h"
#include "engine/cpu/forward_internal.h"
#include "engine/cpu/moe.h"
#include "engine/cpu/shard.h"
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
    f->ops = (struct ops){.tp = tp ? tp : f->own_tp, .k = simd_best(), .block_bytes = ops_block_bytes()};
    f->cos = alloc_f(T * (size_t)c->qk_rope_head_dim / 2), f->sin = alloc_f(T * (size_t)c->qk_rope_head_dim / 2);
    f->pos = xcalloc(T, sizeof *f->pos);
    f->seq_of = xcalloc(T, sizeof *f->seq_of);
    f->unit = xcalloc(T, sizeof *f->unit);
    f->h = alloc_f(T * D), f->xn = alloc_f(T * D), f->out = alloc_f(T * D);
    f->cq = alloc_f(T * (size_t)(c->q_lora_rank ? c->q_lora_rank : 1));
    f->q = alloc_f(T * H * qk);
    f->kva = alloc_f(T * (size_t)config_kv_width(c));
    size_t kvh = (size_t)c->n_kv_heads * (size_t)c->head_dim;
    f->kn = alloc_f(T * kvh), f->vn = alloc_f(T * kvh);
    f->bias = alloc_f(H * (size_t)(c->head_dim > 0 ? c->head_dim : 1) + D);
    size_t qlat_w = config_is_mla(c) ? (size_t)config_kv_width(c) : 0; /* dense: unused */
    f->qlat = alloc_f(T * H * qlat_w), f->ctx = alloc_f(T * H * dc);
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
    free(f->xs), free(f->lg), free(f->lgall), free(f->vcount), free(f->fq);
    fwd_ep_free(f);
    free(f->pos);
    free(f->seq_of);
    free(f->unit);
    free(f->fwho);
    free(f->sel);
    tp_destroy(f->own_tp);
    free(f);
}

void fwd_use_matrix(struct fwd *f, const struct matrix_kernels *mx)
{
    f->ops.mx = mx;
}

void fwd_use_shard(struct fwd *f, struct shard *sh)
{
    size_t T = (size_t)f->max_tokens, widest = 0, V = (size_t)f->c->vocab_size;
    for (int il = 0; il < sh->n_layers; il++) {
        size_t o = (size_t)sh->layers[il].o.w.cols, d = (size_t)sh->layers[il].down.w.cols;
        widest = o > widest ? o : widest;
        widest = d > widest ? d : widest;
    }
    f->sh = sh;
    f->xs = alloc_f(T * (widest ? widest : 1));
    f->lg = alloc_f((size_t)HEAD_ROWS * (size_t)(sh->v1 - sh->v0 ? sh->v1 - sh->v0 : 1));
    f->lgall = alloc_f((size_t)HEAD_ROWS * V);
    f->vcount = xcalloc((size_t)sh->size, sizeof *f->vcount);
}

/* CPU-seconds of the calling thread. */
static double thread_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* Multiply-adds per CPU-second of w over n tokens (x: n rows of w->cols, y: n rows of w->rows),
 * best of three runs of at least a millisecond. */
static double matmul_rate(struct fwd *f, const struct weight *w, const float *x, int n, float *y)
{
    double best = 0;
    for (int r = 0; r < 3; r++) {
        int reps = 0;
        double t0 = thread_seconds(), t;
        do ops_matmul_serial(&f->ops, 0, w, 0, w->rows, x, w->cols, n, y, w->rows), reps++;
        while ((t = thread_seconds() - t0) < 1e-3);
        double rate = (double)reps * (double)n * (double)(w->rows * w->cols) / t;
        best = rate > best ? rate : best;
    }
    return best;
}

int fwd_prefill_chunk(struct fwd *f, int max_tokens)
{
    const struct model_config *c = f->c;
    const struct layer *L = &f->m->layers[c->n_layers - 1];
    const struct weight *w = L->is_moe ? &L->exp_gate[0] : &L->gate;
    double share = L->is_moe ? (double)c->n_experts_per_tok / c->n_routed_experts : 1.0;
    int n_max = (int)(max_tokens * share) > 1 ? (int)(max_tokens * share) : 1, best_at = max_tokens;
    float *x = alloc_f((size_t)n_max * (size_t)w->cols), *y = alloc_f((size_t)n_max * (size_t)w->rows);
    for (size_t i = 0; i < (size_t)n_max * (size_t)w->cols; i++) x[i] = (float)(i % 61) / 61.0f - 0.5f;
    double rate[16], best = 0;
    int chunk[16], n = 0;
    for (int ch = 64; n < 16; ch *= 2) {
        chunk[n] = ch < max_tokens ? ch : max_tokens;
        int tokens = (int)(chunk[n] * share) > 1 ? (int)(chunk[n] * share) : 1;
        rate[n] = matmul_rate(f, w, x, tokens, y);
        best = rate[n] > best ? rate[n] : best;
        if (chunk[n++] == max_tokens) break;
    }
    for (int i = n - 1; i >= 0; i--)
        if (rate[i] >= 0.9 * best) best_at = chunk[i];
    free(x), free(y);
    return best_at;
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

/* The query's first matmul (all of q without q_lora) and kv_a, in one loop; cq normed. */
static void attn_project(struct fwd *f, const struct layer *L, int T)
{
    const struct model_config *c = f->c;
    const struct weight *w[2] = {c->q_lora_rank ? &L->q_a : &L->q, &L->kv_a};
    float *y[2] = {c->q_lora_rank ? f->cq : f->q, f->kva};
    ops_matmul_many(&f->ops, w, y, 2, f->xn, T);
    if (c->q_lora_rank)
        cpu_rmsnorm(f->cq, &L->q_a_norm, T, c->q_lora_rank, c->q_lora_rank, c->rms_norm_eps,
                    f->cq, c->q_lora_rank);
}

/* RoPE on the last dr channels of heads [h0, h1) of every token, copied behind each head's
 * absorbed query (qlat). */
static void query_rope(struct fwd *f, int h0, int h1, int T)
{
    const struct model_config *c = f->c;
    int H = c->n_heads, qk = config_qk_head_dim(c), dn = c->qk_nope_head_dim;
    int np = f->rope.n_pairs, dc = c->kv_lora_rank, W = config_kv_width(c);
    for (int t = 0; t < T; t++)
        for (int h = h0; h < h1; h++) {
            float *qr = f->q + ((size_t)t * H + h) * qk + dn;
            rope_apply(qr, np, f->cos + (size_t)t * np, f->sin + (size_t)t * np);
            memcpy(f->qlat + ((size_t)t * H + h) * W + dc, qr, (size_t)(W - dc) * sizeof(float));
        }
}

/* q = W_qb cq for heads [h0, h1) of every token, by the calling task (the same sums as
 * ops_matmul's), then RoPE. */
static void query_heads(struct fwd *f, const struct layer *L, int thread, int h0, int h1, int T)
{
    const struct model_config *c = f->c;
    int qk = config_qk_head_dim(c);
    if (c->q_lora_rank)
        ops_matmul_serial(&f->ops, thread, &L->q_b, (int64_t)h0 * qk, (int64_t)h1 * qk, f->cq,
                          c->q_lora_rank, T, f->q + (size_t)h0 * qk, (int64_t)c->n_heads * qk);
    query_rope(f, h0, h1, T);
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
    const struct batch *b;
    int il, T;
    int group;   /* heads per task */
    int n_heads; /* head groups: tasks per token group */
    int n_units; /* token groups: runs of up to TOKEN_GROUP tokens of one sequence (f->unit) */
    int hb, he;  /* the heads this rank computes: [hb, he) */
};

enum {
    WHOLE_ATTN_T = 64, /* batches up to this size run attention as one loop over head groups */
    ATTN_ROWS = 256,   /* query rows (tokens x heads) per task: they share each widened block */
    TOKEN_GROUP = 16,  /* tokens of one sequence per task at most */
    SPLIT_MIN = 1 << 15, /* element-wise work of at least this many values runs on every thread */
};

/* qlat[t][h][0..dc) from head h's widened W_UK [dn, dc], four tokens at a time where it can. */
static void absorb(struct fwd *f, const float *w_uk, int t0, int t1, int h)
{
    const struct model_config *c = f->c;
    int H = c->n_heads, dn = c->qk_nope_head_dim, dc = c->kv_lora_rank, qk = config_qk_head_dim(c);
    int W = config_kv_width(c), t = t0;
    const struct simd_kernels *k = f->ops.k;
    for (int u = t0; u < t1; u++) memset(f->qlat + ((size_t)u * H + h) * W, 0, (size_t)dc * sizeof(float));
    for (; k->axpy_rows4 && t + 4 <= t1; t += 4)
        k->axpy_rows4(f->qlat + ((size_t)t * H + h) * W, (int64_t)H * W, f->q + ((size_t)t * H + h) * qk,
                      (int64_t)H * qk, w_uk, dc, dn, dc);
    for (; t < t1; t++)
        k->axpy_rows(f->qlat + ((size_t)t * H + h) * W, f->q + ((size_t)t * H + h) * qk, w_uk, dc, dn, dc);
}

/* qlat[t][h] = W_UK_hᵀ q_nope[t][h] for head h, every token: the query seen through the key
 * up-projection. From kv_b: the head's W_UK widened, accumulated over d in order (axpy_rows = n
 * axpys, bit for bit). From the split layout's k_b (W_UK_hᵀ itself, [dc, dn]): a matmul. */
static void absorb_head(struct fwd *f, const struct layer *L, int thread, int T, int h)
{
    const struct model_config *c = f->c;
    int H = c->n_heads, dn = c->qk_nope_head_dim, dc = c->kv_lora_rank, qk = config_qk_head_dim(c);
    int W = config_kv_width(c);
    if (L->k_b.data) {
        ops_matmul_serial(&f->ops, thread, &L->k_b, (int64_t)h * dc, (int64_t)(h + 1) * dc,
                          f->q + (size_t)h * qk, (int64_t)H * qk, T, f->qlat + (size_t)h * W,
                          (int64_t)H * W);
        return;
    }
    float *w_uk = tp_scratch(f->ops.tp, thread, (size_t)dn * dc * sizeof(float)); /* [dn, dc] */
    f->ops.k->widen_rows(&L->kv_b, (int64_t)h * (dn + c->v_head_dim), dn, w_uk, dc);
    absorb(f, w_uk, 0, T, h);
}

/* The absorbed query of one head (a task), every token. */
static void absorb_task(void *arg, int task, int thread)
{
    const struct attn_job *j = arg;
    absorb_head(j->f, j->L, thread, j->T, j->hb + task);
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

const float *fwd_cache_block(const struct simd_kernels *k, const struct kv_cache *kv, int il,
                             int block, int n, float *buf)
{
    if (kv->dtype == DT_F32) return (const float *)kv_cache_row(kv, il, block, 0);
    struct weight rows = {.name = "kv", .dtype = kv->dtype, .rows = n, .cols = kv->width,
                          .data = kv_cache_row(kv, il, block, 0)};
    k->widen_rows(&rows, 0, n, buf, kv->width);
    return buf;
}

/* What one attention task covers: tokens [t0, t1) of one sequence, heads [h0, h0 + G), and the
 * scratch of its scores. */
struct attn_part {
    int t0, t1, h0, G;
    int n_max;          /* positions the last token sees */
    const int32_t *table;
    float *scores;      /* [t1 - t0][G][n_max] */
    float *buf;         /* [block_size][kv width]: a widened cache block */
};

/* Scores of every (token, head) of the part against the cache, a block at a time: each block is
 * widened once for all of them; a token meets only the positions it sees. Each score is the
 * set's dot of the query [latent | rope] with the cached row [latent | rope key]. */
static void attn_scores(struct fwd *f, const struct attn_job *j, const struct attn_part *a)
{
    const struct simd_kernels *k = f->ops.k;
    int H = f->c->n_heads, W = j->kv->width, bs = j->kv->block_size;
    for (int p0 = 0; p0 < a->n_max; p0 += bs) {
        int m = a->n_max - p0 < bs ? a->n_max - p0 : bs;
        const float *rows = fwd_cache_block(k, j->kv, j->il, a->table[p0 / bs], m, a->buf);
        for (int t = a->t0; t < a->t1; t++) {
            int mt = f->pos[t] + 1 - p0 < m ? f->pos[t] + 1 - p0 : m;
            float *sc = a->scores + (size_t)(t - a->t0) * a->G * a->n_max + p0;
            if (mt > 0)
                k->dot_tile(rows, W, mt, f->qlat + ((size_t)t * H + a->h0) * W, W, a->G, W, sc, a->n_max);
        }
    }
}

/* ctx[t][h] = Σ_p prob[t][h][p] · latent[p] over the positions each token sees, in order. */
static void attn_context(struct fwd *f, const struct attn_job *j, const struct attn_part *a)
{
    const struct simd_kernels *k = f->ops.k;
    int H = f->c->n_heads, dc = f->c->kv_lora_rank, W = j->kv->width, bs = j->kv->block_size;
    for (int t = a->t0; t < a->t1; t++)
        memset(f->ctx + ((size_t)t * H + a->h0) * dc, 0, (size_t)a->G * dc * sizeof(float));
    for (int p0 = 0; p0 < a->n_max; p0 += bs) {
        int m = a->n_max - p0 < bs ? a->n_max - p0 : bs;
        const float *rows = fwd_cache_block(k, j->kv, j->il, a->table[p0 / bs], m, a->buf);
        for (int t = a->t0; t < a->t1; t++) {
            int mt = f->pos[t] + 1 - p0 < m ? f->pos[t] + 1 - p0 : m, h = 0;
            const float *pr = a->scores + (size_t)(t - a->t0) * a->G * a->n_max + p0;
            float *ctx = f->ctx + ((size_t)t * H + a->h0) * dc;
            if (mt <= 0) continue;
            for (; k->axpy_rows4 && h + 4 <= a->G; h += 4)
                k->axpy_rows4(ctx + (size_t)h * dc, dc, pr + (size_t)h * a->n_max, a->n_max, rows, W, mt, dc);
            for (; h < a->G; h++) k->axpy_rows(ctx + (size_t)h * dc, pr + (size_t)h * a->n_max, rows, W, mt, dc);
        }
    }
}

/* The task's tokens and heads: token groups are taken longest first (the last of a long
 * prompt see the most positions), so that the loop ends with short tasks. */
static struct attn_part attn_plan(struct fwd *f, const struct attn_job *j, int task)
{
    int unit = j->n_units - 1 - task / j->n_heads, t0 = f->unit[unit];
    const struct batch_seq *s = &j->b->seqs[f->seq_of[t0]];
    int end = s->start + s->n_tokens, t1 = t0 + TOKEN_GROUP < end ? t0 + TOKEN_GROUP : end;
    struct attn_part a = {.t0 = t0, .h0 = j->hb + task % j->n_heads * j->group, .table = s->block_table};
    if (t1 - t0 > ATTN_ROWS / j->group) t1 = t0 + (ATTN_ROWS / j->group > 0 ? ATTN_ROWS / j->group : 1);
    a.t1 = t1;
    a.G = a.h0 + j->group < j->he ? j->group : j->he - a.h0;
    a.n_max = f->pos[t1 - 1] + 1;
    return a;
}

/* Softmax attention of the part's tokens over their sequence's cached positions, for its heads.
 * The order of every operation on one (token, head) is the same whatever else shares the part,
 * so no result depends on the grouping or the batch. */
static void attn_part_run(struct fwd *f, const struct attn_job *j, struct attn_part *a, int thread)
{
    int W = j->kv->width;
    size_t n_sc = (size_t)(a->t1 - a->t0) * a->G * a->n_max;
    a->scores = tp_scratch(f->ops.tp, thread, (n_sc + (size_t)j->kv->block_size * W) * sizeof(float));
    a->buf = a->scores + n_sc;
    attn_scores(f, j, a);
    for (int t = a->t0; t < a->t1; t++)
        for (int h = 0; h < a->G; h++)
            f->ops.k->softmax(a->scores + ((size_t)(t - a->t0) * a->G + h) * a->n_max, f->pos[t] + 1,
                              f->rope.softmax_scale);
    attn_context(f, j, a);
}

/* A task of the attention loop: a group of tokens and a group of heads. */
static void attn_task(void *arg, int task, int thread)
{
    const struct attn_job *j = arg;
    struct attn_part a = attn_plan(j->f, j, task);
    attn_part_run(j->f, j, &a, thread);
}

/* All of attention for a group of heads, every token — its query (W_qb and RoPE), the absorbed
 * query, softmax attention a token group at a time, W_UV — the one loop of a small batch. */
static void whole_task(void *arg, int task, int thread)
{
    const struct attn_job *j = arg;
    struct fwd *f = j->f;
    int h0 = j->hb + task * j->group, h1 = h0 + j->group < j->he ? h0 + j->group : j->he;
    query_heads(f, j->L, thread, h0, h1, j->T);
    for (int h = h0; h < h1; h++) absorb_head(f, j->L, thread, j->T, h);
    for (int u = 0; u < j->n_units; u++) {
        struct attn_part a = attn_plan(f, j, u * j->n_heads + task);
        attn_part_run(f, j, &a, thread);
    }
    for (int h = h0; h < h1; h++) value_rows(f, j->L, thread, 0, j->T, h);
}

/* attn[t][h] = W_UV_h ctx[t][h] for one head h (a task), every token. */
static void value_task(void *arg, int task, int thread)
{
    const struct attn_job *j = arg;
    value_rows(j->f, j->L, thread, 0, j->T, j->hb + task);
}

/* Splits each sequence's tokens into groups (f->unit: first token of each); returns how many. */
static int token_groups(struct fwd *f, const struct batch *b, int group)
{
    int n = 0, per = ATTN_ROWS / group < 1 ? 1 : ATTN_ROWS / group;
    if (per > TOKEN_GROUP) per = TOKEN_GROUP;
    for (int s = 0; s < b->n_seqs; s++)
        for (int i = 0; i < b->seqs[s].n_tokens; i += per) f->unit[n++] = b->seqs[s].start + i;
    return n;
}

void fwd_out_proj(struct fwd *f, const struct layer *L, int il, int T)
{
    if (!f->sh) {
        ops_matmul(&f->ops, &L->o, f->attn, T, f->out);
        return;
    }
    const struct shard_cols *o = &f->sh->layers[il].o;
    shard_input(o, f->attn, L->o.cols, T, f->xs);
    ops_matmul(&f->ops, &o->w, f->xs, T, f->out);
}

/* W_qb for heads [hb, he) of every token (all of them unless sharded). */
static void query_up(struct fwd *f, const struct layer *L, int hb, int he, int T)
{
    const struct model_config *c = f->c;
    int64_t qk = config_qk_head_dim(c);
    if (!c->q_lora_rank) return;
    if (!f->sh) ops_matmul(&f->ops, &L->q_b, f->cq, T, f->q);
    else ops_matmul_rows(&f->ops, &L->q_b, hb * qk, he * qk, f->cq, c->q_lora_rank, T,
                         f->q + hb * qk, (int64_t)c->n_heads * qk);
}

/* Multi-head latent attention of the whole batch, for this rank's heads; result (whole, or this
 * rank's partial sum) in f->out. A small batch runs it as one loop over groups of heads; a
 * larger one as W_qb, then loops over heads (the absorbed query), over (group of tokens, group
 * of heads) for the softmax part, and over heads (W_UV). */
static void attention(struct fwd *f, const struct layer *L, int il, struct kv_cache *kv,
                      const struct batch *b)
{
    int T = b->n_tokens, threads = tp_size(f->ops.tp);
    int hb = f->sh ? f->sh->h0 : 0, he = f->sh ? f->sh->h1 : f->c->n_heads, H = he - hb;
    attn_project(f, L, T);
    attn_write_kv(f, L, il, kv, b);
    struct attn_job j = {.f = f, .L = L, .kv = kv, .b = b, .il = il, .T = T, .group = H,
                         .n_heads = 1, .hb = hb, .he = he};
    /* a small batch of few sequences: one loop, four head groups per thread for balance (every
     * group re-reads, and widens, each sequence's cache: with many sequences the loops below,
     * which read each once, cost less) */
    if (T <= WHOLE_ATTN_T && b->n_seqs < 2 * threads) {
        int n = 4 * threads < H ? 4 * threads : H;
        j.group = (H + n - 1) / n;
        j.n_units = token_groups(f, b, j.group);
        j.n_heads = (H + j.group - 1) / j.group;
        tp_run(f->ops.tp, j.n_heads, whole_task, &j);
        fwd_out_proj(f, L, il, T);
        return;
    }
    query_up(f, L, hb, he, T);
    query_rope(f, hb, he, T);
    j.n_units = token_groups(f, b, H);
    /* few token groups: split the heads too, so that every thread has work (each task re-reads,
     * and for a BF16 cache widens, the context it attends) */
    if (j.n_units < 2 * threads) {
        int split = (2 * threads + j.n_units - 1) / j.n_units;
        j.group = (H + split - 1) / split;
        j.n_units = token_groups(f, b, j.group);
    }
    j.n_heads = (H + j.group - 1) / j.group;
    tp_run(f->ops.tp, H, absorb_task, &j);
    tp_run(f->ops.tp, j.n_units * j.n_heads, attn_task, &j);
    tp_run(f->ops.tp, H, value_task, &j);
    fwd_out_proj(f, L, il, T);
}

/* a = silu(a) · b over n values, in equal parts on every thread when there are enough (each
 * value on its own: the same bits however it is split). */
struct silu_job {
    float *a;
    const float *b;
    int64_t n, per;
};

static void silu_task(void *arg, int task, int thread)
{
    const struct silu_job *j = arg;
    int64_t lo = (int64_t)task * j->per, hi = lo + j->per < j->n ? lo + j->per : j->n;
    if (lo < hi) cpu_silu_mul(j->a + lo, j->b + lo, hi - lo);
}

static void silu_mul(struct fwd *f, float *a, const float *b, int64_t n)
{
    int threads = tp_size(f->ops.tp);
    if (threads < 2 || n < SPLIT_MIN) {
        cpu_silu_mul(a, b, n);
        return;
    }
    struct silu_job j = {a, b, n, (n + threads - 1) / threads};
    tp_run(f->ops.tp, threads, silu_task, &j);
}

/* SwiGLU MLP over n rows of x: y = down(silu(gate x) * up x). */
void fwd_mlp(struct fwd *f, const struct weight *gate, const struct weight *up,
                const struct weight *down, const float *x, int n, float *y)
{
    const struct weight *w[2] = {gate, up};
    float *act[2] = {f->ff_a, f->ff_b};
    ops_matmul_many(&f->ops, w, act, 2, x, n);
    silu_mul(f, f->ff_a, f->ff_b, (int64_t)n * gate->rows);
    ops_matmul(&f->ops, down, f->ff_a, n, y);
}

/* This rank's part of a SwiGLU MLP: rows [a, a + w) of gate and up (its own intermediate rows,
 * widened to down's column blocks), the others zeroed, down by those columns: a partial sum of
 * y (zero when the rank has none). */
static void mlp_part(struct fwd *f, const struct weight *gate, const struct weight *up,
                     const struct shard_cols *down, const float *x, int n, float *y)
{
    int64_t a = down->a, w = down->w.cols, D = f->c->hidden_size;
    if (!down->w.data) {
        memset(y, 0, (size_t)n * (size_t)D * sizeof *y);
        return;
    }
    ops_matmul_rows(&f->ops, gate, a, a + w, x, D, n, f->ff_a, w);
    ops_matmul_rows(&f->ops, up, a, a + w, x, D, n, f->ff_b, w);
    silu_mul(f, f->ff_a, f->ff_b, (int64_t)n * w);
    shard_mask(down, f->ff_a, n);
    ops_matmul(&f->ops, &down->w, f->ff_a, n, y);
}

/* The dense MLP of layer il: whole, or this rank's partial sum. */
static void dense_mlp(struct fwd *f, const struct layer *L, int il, int T)
{
    if (f->sh) mlp_part(f, &L->gate, &L->up, &f->sh->layers[il].down, f->xn, T, f->out);
    else fwd_mlp(f, &L->gate, &L->up, &L->down, f->xn, T, f->out);
}

/* fwd_add_rows' work, in equal parts on every thread when there are enough values. */
struct rows_job {
    float *out;
    const int *who;
    const float *wgt, *y;
    int n, per, D;
};

static void rows_task(void *arg, int task, int thread)
{
    const struct rows_job *j = arg;
    int lo = task * j->per, hi = lo + j->per < j->n ? lo + j->per : j->n;
    for (int i = lo; i < hi; i++)
        cpu_axpy(j->out + (size_t)(j->who ? j->who[i] : i) * j->D, j->wgt ? j->wgt[i] : 1.0f,
                 j->y + (size_t)i * j->D, j->D);
}

void fwd_add_rows(struct fwd *f, const int *who, const float *wgt, const float *y, int n)
{
    int threads = tp_size(f->ops.tp), D = f->c->hidden_size;
    struct rows_job j = {f->out, who, wgt, y, n, n, D};
    if (threads < 2 || (int64_t)n * D < SPLIT_MIN) {
        rows_task(&j, 0, 0);
        return;
    }
    j.per = (n + threads - 1) / threads;
    tp_run(f->ops.tp, threads, rows_task, &j);
}

/* out += the shared experts of layer il over every token, when the rank shards them (else they
 * ran with the routed ones). */
static void shared_part(struct fwd *f, const struct layer *L, int il, int T)
{
    if (!f->sh || !f->c->n_shared_experts) return;
    mlp_part(f, &L->sh_gate, &L->sh_up, &f->sh->layers[il].down, f->xn, T, f->yg);
    fwd_add_rows(f, NULL, NULL, f->yg, T);
}

/* Routed experts visited in ascending id, each over the tokens routed to it; then shared. Sharded:
 * this rank's experts and its part of the shared ones, a partial sum. Expert-parallel: the rows
 * go to their experts' ranks and back (forward_ep.c). */
static int moe(struct fwd *f, const struct layer *L, int il, int T, struct err *e)
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
    if (f->ep) return fwd_moe_ep(f, L, T, e);
    if (T <= FUSE_T) {
        fwd_moe_fused(f, L, T);
        shared_part(f, L, il, T);
        return 0;
    }
    memset(f->out, 0, (size_t)T * D * sizeof(float));
    int *who = xcalloc((size_t)T, sizeof *who);
    float *wgt = alloc_f((size_t)T);
    for (int x = f->sh ? f->sh->e0 : 0; x < (f->sh ? f->sh->e1 : E); x++) {
        int n = 0;
        for (int t = 0; t < T; t++)
            for (int j = 0; j < k; j++)
                if (f->sel[t * k + j] == x) {
                    memcpy(f->xg + (size_t)n * D, f->xn + (size_t)t * D, (size_t)D * sizeof(float));
                    who[n] = t, wgt[n++] = f->selw[t * k + j];
                }
        if (!n) continue;
        fwd_mlp(f, &L->exp_gate[x], &L->exp_up[x], &L->exp_down[x], f->xg, n, f->yg);
        fwd_add_rows(f, who, wgt, f->yg, n);
    }
    free(who);
    free(wgt);
    if (f->sh) {
        shared_part(f, L, il, T);
        return 0;
    }
    if (!c->n_shared_experts) return 0;
    fwd_mlp(f, &L->sh_gate, &L->sh_up, &L->sh_down, f->xn, T, f->yg);
    fwd_add_rows(f, NULL, NULL, f->yg, T);
    return 0;
}

/* Sharded: every rank's partial block output summed into f->out on every rank (bit-identical
 * everywhere, so the next router chooses the same experts on every rank). */
static int reduce(struct fwd *f, int T, struct err *e)
{
    if (!f->sh) return 0;
    return comm_allreduce_sum(f->sh->comm, f->out, (size_t)T * (size_t)f->c->hidden_size, DT_F32,
                              NULL, e);
}

static void add_residual(struct fwd *f, int T)
{
    size_t n = (size_t)T * f->c->hidden_size;
    for (size_t i = 0; i < n; i++) f->h[i] += f->out[i];
}

/* Rows [r0, r0 + n) of the logits, sharded: this rank's vocabulary rows of lm_head, every rank's
 * gathered (rank blocks back to back) and put in place. */
static int head_part(struct fwd *f, int r0, int n, float *logits, struct err *e)
{
    const struct shard *s = f->sh;
    int64_t D = f->c->hidden_size, V = f->c->vocab_size, mine = s->v1 - s->v0, lo, hi;
    ops_matmul_rows(&f->ops, &f->m->lm_head, s->v0, s->v1, f->xg + r0 * D, D, n, f->lg, mine);
    for (int r = 0; r < s->size; r++) f->vcount[r] = s->vbytes[r] * (size_t)n;
    if (comm_allgatherv(s->comm, f->lg, f->lgall, f->vcount, NULL, e) != 0) return -1;
    const float *blk = f->lgall;
    for (int r = 0; r < s->size; r++) {
        comm_split(V, s->size, r, &lo, &hi);
        for (int t = 0; t < n; t++)
            memcpy(logits + (size_t)(r0 + t) * V + lo, blk + (size_t)t * (hi - lo),
                   (size_t)(hi - lo) * sizeof *logits);
        blk += (size_t)n * (hi - lo);
    }
    return 0;
}

/* Final norm and lm_head for the rows the batch asks logits of. */
static int head(struct fwd *f, const struct batch *b, float *logits, struct err *e)
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
    if (!n) return 0;
    cpu_rmsnorm(f->xg, &f->m->norm, n, D, D, c->rms_norm_eps, f->xg, D);
    if (!f->sh) {
        ops_matmul(&f->ops, &f->m->lm_head, f->xg, n, logits);
        return 0;
    }
    for (int r0 = 0; r0 < n; r0 += HEAD_ROWS)
        if (head_part(f, r0, n - r0 < HEAD_ROWS ? n - r0 : HEAD_ROWS, logits, e) != 0) return -1;
    return 0;
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
        if (reduce(f, T, e) != 0) return -1;
        add_residual(f, T);
        cpu_rmsnorm(f->h, &L->ffn_norm, T, D, D, c->rms_norm_eps, f->xn, D);
        if (L->is_moe && moe(f, L, il, T, e) != 0) return -1;
        if (!L->is_moe) dense_mlp(f, L, il, T);
        if (reduce(f, T, e) != 0) return -1;
        add_residual(f, T);
    }
    return head(f, b, logits, e);
}
