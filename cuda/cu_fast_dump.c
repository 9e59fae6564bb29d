/* cu_fast_dump: the stages of a fast-numerics step copied back from the device and written in the
 * CPU emulation's format (engine/stage_dump.h; forward_fast.c names the stages): padded pitches
 * dropped, scales reordered to [rows][groups], expert rows from group order back to (token,
 * choice) order. Slow by design — synchronous copies — and only when asked. */
#include <stdlib.h>
#include <string.h>

#include "cuda/cu_backend.h"

static int64_t up16(int64_t v)
{
    return (v + 15) / 16 * 16;
}

/* rows × cols elements of size es from a device array of row pitch ld (elements). */
static void *fetch(struct backend *b, const void *dev, int64_t rows, int64_t cols, int64_t ld, size_t es)
{
    char *h = xmalloc((size_t)(rows * cols) * es + 1);
    CU_CHECK(cudaStreamSynchronize(b->stream));
    CU_CHECK(cudaMemcpy2D(h, (size_t)cols * es, dev, (size_t)ld * es, (size_t)cols * es, (size_t)rows,
                          cudaMemcpyDeviceToHost));
    return h;
}

static void put(struct backend *b, int layer, const char *name, enum sd_type t, const void *data,
                int64_t d0, int64_t d1, int64_t d2)
{
    struct err e = {0};
    int64_t shape[3] = {d0, d1, d2};
    if (sd_put(&b->fast->dump, layer, name, t, data, d2 ? 3 : 2, shape, &e) != 0)
        ERR_FATAL("stage dump: %s", e.msg);
}

static void put_dev(struct backend *b, int layer, const char *name, enum sd_type t, const void *dev,
                    int64_t rows, int64_t cols, int64_t ld, int64_t d2)
{
    size_t es = t == SD_F32 || t == SD_I32 ? 4 : t == SD_BF16 ? 2 : 1;
    void *h = fetch(b, dev, rows, cols * (d2 ? d2 : 1), ld * (d2 ? d2 : 1), es);
    put(b, layer, name, t, h, rows, cols, d2);
    free(h);
}

/* The scale of (row, group) in a host copy of a layout (kfast.h kq_scale_at's rule). */
static float scale_of(const struct kq_out *q, const float *s, const int32_t *offset, int64_t row,
                      int g, int groups)
{
    if (q->layout == KQ_TG) return s[row * groups + g];
    if (q->layout == KQ_GT) return s[(int64_t)g * q->ld_t + row];
    int lo = 0;
    while (lo + 1 < q->n_groups && offset[lo + 1] <= row) lo++;
    int64_t first = offset[lo], m = offset[lo + 1] - first;
    return s[first * groups + (int64_t)g * m + (row - first)];
}

/* A quantised activation's rows src_rows[i] (NULL: i) as NAME (codes) and NAME_s, or BF16. */
static void put_act(struct backend *b, int layer, const char *name, const struct kq_out *q,
                    int64_t n_rows_dev, const int32_t *src_rows, int64_t n)
{
    int groups = (int)((q->k + 127) / 128);
    if (!q->fp8) {
        uint16_t *all = fetch(b, q->b, n_rows_dev, q->k_pad, q->k_pad, 2), *o = xmalloc((size_t)(n * q->k) * 2);
        for (int64_t i = 0; i < n; i++) memcpy(o + i * q->k, all + (src_rows ? src_rows[i] : i) * q->k_pad, (size_t)q->k * 2);
        put(b, layer, name, SD_BF16, o, n, q->k, 0);
        free(all), free(o);
        return;
    }
    int64_t s_len = q->layout == KQ_GT ? (int64_t)groups * q->ld_t : n_rows_dev * groups;
    uint8_t *all = fetch(b, q->q, n_rows_dev, q->k_pad, q->k_pad, 1), *o = xmalloc((size_t)(n * q->k) + 1);
    float *s = fetch(b, q->s, 1, s_len, s_len, 4), *os = xmalloc((size_t)(n * groups) * 4 + 4);
    int32_t *off = NULL;
    if (q->layout == KQ_GROUPED) off = fetch(b, q->offset, 1, q->n_groups + 1, q->n_groups + 1, 4);
    for (int64_t i = 0; i < n; i++) {
        int64_t r = src_rows ? src_rows[i] : i;
        memcpy(o + i * q->k, all + r * q->k_pad, (size_t)q->k);
        for (int g = 0; g < groups; g++) os[i * groups + g] = scale_of(q, s, off, r, g, groups);
    }
    char sname[64];
    snprintf(sname, sizeof sname, "%s_s", name);
    put(b, layer, name, SD_U8, o, n, q->k, 0);
    put(b, layer, sname, SD_F32, os, n, groups, 0);
    free(all), free(o), free(s), free(os), free(off);
}

/* The layout of a dense activation as the step quantised it. */
static struct kq_out dense(const struct backend *b, const struct kq_out *q, int T)
{
    struct kq_out o = *q;
    if (o.fp8 && cf_x_gt(b)) o.layout = KQ_GT, o.ld_t = up16(T);
    return o;
}

int cf_dump_step(struct backend *b, struct err *e)
{
    return sd_step(&b->fast->dump, &b->sp, b->o.block_size, e);
}

void cf_dump_attention(struct backend *b, int il, int T)
{
    const struct model_config *m = b->c;
    struct cf_bufs *f = &b->fast->b;
    const struct cf_layer *L = &b->fast->w.layers[il];
    int D = m->hidden_size, H = m->n_heads, W = config_kv_width(m), QL = m->q_lora_rank, dc = m->kv_lora_rank;
    int qk = config_qk_head_dim(m), hdv = H * m->v_head_dim;
    put_dev(b, il, "h_in", SD_F32, f->h, T, D, D, 0), put_dev(b, il, "xn", SD_F32, f->xn, T, D, D, 0);
    struct kq_out xq = dense(b, &f->xq, T), cq = dense(b, &f->cq, T), aq = dense(b, &f->aq, T);
    put_act(b, il, "xq", &xq, T, NULL, T);
    const float *qa = f->qkva, *kva = f->qkva + (size_t)f->t_pad * (size_t)up16(QL + W);
    int64_t ld_qa = up16(QL), ld_kva = up16(W);
    if (L->qkv_stacked) qa = f->qkva, kva = f->qkva + QL, ld_qa = ld_kva = L->qa.n_pad;
    if (QL) {
        put_dev(b, il, "qa", SD_F32, qa, T, QL, ld_qa, 0), put_dev(b, il, "cqn", SD_F32, f->cqn, T, QL, QL, 0);
        put_act(b, il, "cq", &cq, T, NULL, T);
    }
    put_dev(b, il, "kva", SD_F32, kva, T, W, ld_kva, 0);
    put_dev(b, il, "q", SD_F32, f->q, T, H, H, qk); /* H · qk is a multiple of 16: no padding */
    put_dev(b, il, "kv", SD_BF16, f->kvrows, T, W, W, 0), put_dev(b, il, "qfull", SD_BF16, f->qfull, T, H, H, W);
    put_dev(b, il, "ctx", SD_BF16, f->ctx, T, H, H, dc), put_dev(b, il, "attn", SD_F32, f->attn, T, hdv, hdv, 0);
    put_act(b, il, "aq", &aq, T, NULL, T), put_dev(b, il, "o", SD_F32, f->o, T, D, D, 0);
}

/* Rows (token, choice) of group-ordered expert arrays. */
static int32_t *choice_rows(struct backend *b, int T, int sg, int k)
{
    int kk = k + sg;
    int32_t *tr = fetch(b, b->fast->b.tok_row, 1, (int64_t)T * kk, (int64_t)T * kk, 4);
    int32_t *rows = xmalloc((size_t)T * (size_t)(k + 1) * 4);
    for (int t = 0; t < T; t++) {
        for (int j = 0; j < k; j++) rows[t * k + j] = tr[t * kk + j];
        rows[T * k + t] = sg ? tr[t * kk + k] : t; /* the shared rows after the routed ones */
    }
    free(tr);
    return rows;
}

/* The rows of a device array [.][ld] listed in rows[0..n), cols values each. */
static float *gather_rows(struct backend *b, const float *dev, int64_t n_dev, int64_t ld, const int32_t *rows,
                          int64_t n, int64_t c0, int64_t cols)
{
    float *all = fetch(b, dev, n_dev, ld, ld, 4), *o = xmalloc((size_t)(n * cols) * 4 + 4);
    for (int64_t i = 0; i < n; i++) memcpy(o + i * cols, all + rows[i] * ld + c0, (size_t)cols * 4);
    free(all);
    return o;
}

static void put_rows(struct backend *b, int il, const char *name, const float *dev, int64_t n_dev, int64_t ld,
                     const int32_t *rows, int64_t n, int64_t c0, int64_t cols)
{
    float *o = gather_rows(b, dev, n_dev, ld, rows, n, c0, cols);
    put(b, il, name, SD_F32, o, n, cols, 0);
    free(o);
}

/* gate | up of rows into one [n][2F] array: gate at column 0, up at up_off of the device rows. */
static void put_gu(struct backend *b, int il, const char *name, const float *dev, int64_t n_dev, int64_t ld,
                   int64_t up_off, const int32_t *rows, int64_t n, int64_t F)
{
    float *g = gather_rows(b, dev, n_dev, ld, rows, n, 0, F), *u = gather_rows(b, dev, n_dev, ld, rows, n, up_off, F);
    float *o = xmalloc((size_t)(n * 2 * F) * 4 + 4);
    for (int64_t i = 0; i < n; i++)
        memcpy(o + i * 2 * F, g + i * F, (size_t)F * 4), memcpy(o + i * 2 * F + F, u + i * F, (size_t)F * 4);
    put(b, il, name, SD_F32, o, n, 2 * F, 0);
    free(g), free(u), free(o);
}

static void dump_moe(struct backend *b, const struct cf_layer *L, int il, int T)
{
    const struct model_config *m = b->c;
    struct cf_bufs *f = &b->fast->b;
    int k = m->n_experts_per_tok, E = m->n_routed_experts, F = m->moe_intermediate_size, D = m->hidden_size;
    int sg = b->fast->w.shared_group;
    int32_t *rows = choice_rows(b, T, sg, k);
    int64_t ld = L->gu_stacked ? L->eg[0].n_pad : 2 * L->eg[0].n_pad, up_off = L->gu_stacked ? F : L->eg[0].n_pad;
    int64_t R = f->r_max;
    put_dev(b, il, "router", SD_F32, f->router, T, E, E, 0);
    put_dev(b, il, "sel", SD_I32, f->sel, T, k, k, 0), put_dev(b, il, "selw", SD_F32, f->selw, T, k, k, 0);
    put_gu(b, il, "egu", f->egu, R, ld, up_off, rows, (int64_t)T * k, F);
    put_rows(b, il, "eact", f->eact, R, F, rows, (int64_t)T * k, 0, F);
    struct kq_out aq = f->eaq;
    aq.offset = f->offset, aq.n_groups = b->fast->w.G;
    if (aq.fp8 && b->fast->w.experts_cutlass) aq.layout = KQ_GROUPED;
    put_act(b, il, "eactq", &aq, R, rows, (int64_t)T * k);
    put_rows(b, il, "ey", f->ey, R, D, rows, (int64_t)T * k, 0, D);
    if (!m->n_shared_experts) {
        free(rows);
        return;
    }
    if (sg) {
        const int32_t *sr = rows + (size_t)T * k;
        put_gu(b, il, "sgu", f->egu, R, ld, up_off, sr, T, F), put_rows(b, il, "sact", f->eact, R, F, sr, T, 0, F);
        put_act(b, il, "sactq", &aq, R, sr, T), put_rows(b, il, "sy", f->ey, R, D, sr, T, 0, D);
    } else {
        int64_t S = L->gate.n, sld = 2 * L->gate.n_pad;
        struct kq_out saq = dense(b, &f->actq, T);
        saq.k = S, saq.k_pad = up16(S);
        put_gu(b, il, "sgu", f->gu, T, sld, L->gate.n_pad, rows + (size_t)T * k, T, S);
        put_dev(b, il, "sact", SD_F32, f->act, T, S, S, 0), put_act(b, il, "sactq", &saq, T, NULL, T);
        put_dev(b, il, "sy", SD_F32, f->o, T, D, D, 0);
    }
    free(rows);
}

static void dump_dense(struct backend *b, const struct cf_layer *L, int il, int T)
{
    struct cf_bufs *f = &b->fast->b;
    int64_t I = L->gu_stacked ? L->gate.n / 2 : L->gate.n, ld = L->gu_stacked ? L->gate.n_pad : 2 * L->gate.n_pad;
    int32_t *rows = xmalloc((size_t)T * 4);
    for (int t = 0; t < T; t++) rows[t] = t;
    put_gu(b, il, "gu", f->gu, T, ld, L->gu_stacked ? I : L->gate.n_pad, rows, T, I);
    put_dev(b, il, "act", SD_F32, f->act, T, I, I, 0);
    struct kq_out aq = dense(b, &f->actq, T);
    aq.k = I, aq.k_pad = up16(I);
    put_act(b, il, "actq", &aq, T, NULL, T);
    free(rows);
}

void cf_dump_ffn(struct backend *b, const struct cf_layer *L, int il, int T)
{
    struct cf_bufs *f = &b->fast->b;
    int D = b->c->hidden_size;
    put_dev(b, il, "h_mid", SD_F32, f->h, T, D, D, 0), put_dev(b, il, "xn2", SD_F32, f->xn2, T, D, D, 0);
    struct kq_out x2 = dense(b, &f->x2, T);
    put_act(b, il, "x2q", &x2, T, NULL, T);
    if (L->is_moe) dump_moe(b, L, il, T);
    else dump_dense(b, L, il, T);
    float *h = fetch(b, f->h, T, D, D, 4), *out = fetch(b, f->out, T, D, D, 4);
    put(b, il, "out", SD_F32, out, T, D, 0);
    for (size_t i = 0; i < (size_t)T * D; i++) h[i] = h[i] + out[i]; /* the next layer adds it so */
    put(b, il, "h_out", SD_F32, h, T, D, 0);
    free(h), free(out);
}

void cf_dump_head(struct backend *b, int n_logits)
{
    struct cf_bufs *f = &b->fast->b;
    const struct model_config *m = b->c;
    put_dev(b, -1, "fxn", SD_F32, f->fxn, n_logits, m->hidden_size, m->hidden_size, 0);
    put_act(b, -1, "fxb", &f->fxb, n_logits, NULL, n_logits);
    put_dev(b, -1, "logits", SD_F32, f->logits, n_logits, m->vocab_size, m->vocab_size, 0);
}
