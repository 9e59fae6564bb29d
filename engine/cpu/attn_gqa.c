/* attn_gqa: dense grouped-query attention (llama, qwen2) over the paged KV cache.
 *
 * A cache row holds, per token and layer, every KV head's rotated key [Hkv, hd] and then every
 * KV head's value [Hkv, hd]. Query head h reads KV head h / (H / Hkv). Each task is one token and
 * one KV head: its G = H / Hkv query heads score every cached position of the token's sequence
 * up to its own (dot tiles over the cache block's key columns), softmax, and sum the values in
 * position order — each head's result independent of the batch and the task split. */
#include <math.h>
#include <string.h>

#include "engine/cpu/cpu_ops.h"
#include "engine/cpu/forward_internal.h"
#include "engine/cpu/shard.h"

/* y[t][i] += bias[i] for n rows of width w (no bias: nothing). */
static void add_bias(struct fwd *f, const struct weight *bias, float *y, int n, int w)
{
    if (!bias->data) return;
    cpu_weight_row(bias, 0, f->bias);
    for (int t = 0; t < n; t++)
        for (int i = 0; i < w; i++) y[(size_t)t * w + i] += f->bias[i];
}

/* RoPE on the first dr channels of n_heads heads of token t, pairing as the model does. */
static void rope_heads(const struct fwd *f, float *x, int n_heads, int t)
{
    int hd = f->c->head_dim, np = f->rope.n_pairs;
    const float *cs = f->cos + (size_t)t * np, *sn = f->sin + (size_t)t * np;
    for (int h = 0; h < n_heads; h++) {
        if (f->c->rope_neox) rope_apply_neox(x + (size_t)h * hd, np, cs, sn);
        else rope_apply(x + (size_t)h * hd, np, cs, sn);
    }
}

/* q of this rank's heads [hb, he), k and v of every KV head (one parallel loop unless sharded:
 * each rank keeps the whole cache), biases, RoPE; keys and values into the cache. */
static void project(struct fwd *f, const struct layer *L, int il, struct kv_cache *kv,
                    const struct batch *b, int hb, int he)
{
    const struct model_config *c = f->c;
    int T = b->n_tokens, H = c->n_heads, Hkv = c->n_kv_heads, hd = c->head_dim;
    int KV = Hkv * hd;
    const struct weight *w[3] = {&L->k, &L->v, &L->q};
    float *y[3] = {f->kn, f->vn, f->q};
    ops_matmul_many(&f->ops, w, y, f->sh ? 2 : 3, f->xn, T);
    if (f->sh)
        ops_matmul_rows(&f->ops, &L->q, (int64_t)hb * hd, (int64_t)he * hd, f->xn, c->hidden_size,
                        T, f->q + (size_t)hb * hd, (int64_t)H * hd);
    add_bias(f, &L->q_bias, f->q, T, H * hd);
    add_bias(f, &L->k_bias, f->kn, T, KV);
    add_bias(f, &L->v_bias, f->vn, T, KV);
    for (int t = 0; t < T; t++) {
        rope_heads(f, f->q + ((size_t)t * H + hb) * hd, he - hb, t);
        rope_heads(f, f->kn + (size_t)t * KV, Hkv, t);
    }
    for (int s = 0; s < b->n_seqs; s++) {
        const struct batch_seq *q = &b->seqs[s];
        for (int i = 0; i < q->n_tokens; i++) {
            size_t t = (size_t)(q->start + i);
            float *row = f->kva + t * (size_t)(2 * KV);
            memcpy(row, f->kn + t * KV, (size_t)KV * sizeof(float));
            memcpy(row + KV, f->vn + t * KV, (size_t)KV * sizeof(float));
            int p = q->pos0 + i;
            kv_cache_put(kv, il, q->block_table[p / kv->block_size], p % kv->block_size, row);
        }
    }
}

struct gqa_job {
    struct fwd *f;
    const struct kv_cache *kv;
    const struct batch *b;
    int il;
    int hb, he; /* this rank's query heads */
    int g0, ng; /* the KV heads they read: [g0, g0 + ng) */
};

/* Softmax over each of G rows of n scores, in place. */
static void softmax_rows(float *scores, int G, int n, float scale)
{
    for (int h = 0; h < G; h++) {
        float *sc = scores + (size_t)h * n, mx = -INFINITY, sum = 0.0f;
        for (int p = 0; p < n; p++) mx = fmaxf(mx, sc[p] *= scale);
        for (int p = 0; p < n; p++) sum += sc[p] = expf(sc[p] - mx);
        for (int p = 0; p < n; p++) sc[p] /= sum;
    }
}

/* Token t = task / ng, KV head g = g0 + task % ng: its query heads (those of this rank, G of
 * them unsharded) over the cached positions. */
static void gqa_task(void *arg, int task, int thread)
{
    const struct gqa_job *j = arg;
    struct fwd *f = j->f;
    const struct model_config *c = f->c;
    const struct simd_kernels *k = f->ops.k;
    int H = c->n_heads, Hkv = c->n_kv_heads, hd = c->head_dim, Gk = H / Hkv;
    int t = task / j->ng, g = j->g0 + task % j->ng, n = f->pos[t] + 1, bs = j->kv->block_size;
    int W = j->kv->width, q0 = g * Gk > j->hb ? g * Gk : j->hb;
    int G = ((g + 1) * Gk < j->he ? (g + 1) * Gk : j->he) - q0;
    const int32_t *table = j->b->seqs[f->seq_of[t]].block_table;
    float *scores = tp_scratch(f->ops.tp, thread, ((size_t)G * n + (size_t)bs * W) * sizeof(float));
    float *buf = scores + (size_t)G * n;
    const float *qg = f->q + ((size_t)t * H + (size_t)q0) * hd;
    for (int p0 = 0; p0 < n; p0 += bs) {
        int m = n - p0 < bs ? n - p0 : bs;
        const float *rows = fwd_cache_block(k, j->kv, j->il, table[p0 / bs], m, buf);
        k->dot_tile(rows + (size_t)g * hd, W, m, qg, hd, G, hd, scores + p0, n);
    }
    softmax_rows(scores, G, n, f->rope.softmax_scale);
    float *out = f->attn + ((size_t)t * H + (size_t)q0) * hd;
    memset(out, 0, (size_t)G * hd * sizeof(float));
    for (int p0 = 0; p0 < n; p0 += bs) {
        int m = n - p0 < bs ? n - p0 : bs;
        const float *vals = fwd_cache_block(k, j->kv, j->il, table[p0 / bs], m, buf) + (size_t)(Hkv + g) * hd;
        int h = 0;
        for (; k->axpy_rows4 && h + 4 <= G; h += 4)
            k->axpy_rows4(out + (size_t)h * hd, hd, scores + (size_t)h * n + p0, n, vals, W, m, hd);
        for (; h < G; h++) k->axpy_rows(out + (size_t)h * hd, scores + (size_t)h * n + p0, vals, W, m, hd);
    }
}

void gqa_attention(struct fwd *f, const struct layer *L, int il, struct kv_cache *kv,
                   const struct batch *b)
{
    int T = b->n_tokens, G = f->c->n_heads / f->c->n_kv_heads;
    int hb = f->sh ? f->sh->h0 : 0, he = f->sh ? f->sh->h1 : f->c->n_heads;
    project(f, L, il, kv, b, hb, he);
    struct gqa_job j = {f, kv, b, il, hb, he, hb / G, (he + G - 1) / G - hb / G};
    tp_run(f->ops.tp, T * j.ng, gqa_task, &j);
    fwd_out_proj(f, L, il, T);
    if (!f->sh || f->sh->rank == 0) /* once in the ranks' sum */
        add_bias(f, &L->o_bias, f->out, T, f->c->hidden_size);
}
