/* cu_model: planning, uploading and describing the device copy of the weights — all of them, or
 * a tensor-parallel rank's cut of each. */
#include "cuda/cu_model.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cuda_runtime_api.h>

#include "cuda/cu_dev.h"
#include "engine/comm.h"

enum { STAGE_BYTES = 64 << 20 }; /* each of the two pinned staging buffers */

/* Called with each (host weight, this rank's cut of it, device descriptor) of the model. */
typedef void (*weight_fn)(void *ctx, const struct weight *w, struct cu_cut cut, struct cu_w *d);

static struct cu_cut whole(const struct weight *w)
{
    return (struct cu_cut){0, w->rows, 0, w->cols};
}

/* Rows [n·lo/parts, n·hi/parts) of w: a range of heads (rows are head-major). */
static struct cu_cut rows_of(const struct weight *w, int64_t lo, int64_t hi, int64_t parts)
{
    int64_t per = w->rows / parts;
    return (struct cu_cut){lo * per, hi * per, 0, w->cols};
}

static struct cu_cut cols_of(const struct weight *w, int64_t lo, int64_t hi, int64_t parts)
{
    int64_t per = w->cols / parts;
    return (struct cu_cut){0, w->rows, lo * per, hi * per};
}

/* An MLP's cut: this rank's intermediate rows of gate and up, the same columns of down. */
static void mlp_cuts(const struct weight *g, const struct weight *dw, const struct cu_shard *s,
                     struct cu_cut *gu, struct cu_cut *dn)
{
    int64_t lo, hi;
    comm_split(g->rows, s->size, s->rank, &lo, &hi);
    *gu = (struct cu_cut){lo, hi, 0, g->cols};
    *dn = (struct cu_cut){0, dw->rows, lo, hi};
}

static void each_attn(const struct model *m, const struct layer *L, struct cu_layer *d,
                      const struct cu_shard *s, weight_fn fn, void *ctx)
{
    int64_t H = m->cfg.n_heads, h0 = s ? s->h0 : 0, h1 = s ? s->h1 : H;
    fn(ctx, &L->attn_norm, whole(&L->attn_norm), &d->attn_norm);
    fn(ctx, &L->q_a, whole(&L->q_a), &d->q_a), fn(ctx, &L->q_a_norm, whole(&L->q_a_norm), &d->q_a_norm);
    fn(ctx, &L->q_b, rows_of(&L->q_b, h0, h1, H), &d->q_b), fn(ctx, &L->q, rows_of(&L->q, h0, h1, H), &d->q);
    fn(ctx, &L->kv_a, whole(&L->kv_a), &d->kv_a), fn(ctx, &L->kv_a_norm, whole(&L->kv_a_norm), &d->kv_a_norm);
    fn(ctx, &L->kv_b, rows_of(&L->kv_b, h0, h1, H), &d->kv_b);
    fn(ctx, &L->o, cols_of(&L->o, h0, h1, H), &d->o);
}

/* A SwiGLU MLP (the dense one or the shared experts): whole, or a tensor-parallel rank's
 * intermediate rows. */
static void each_mlp(const struct weight *g, const struct weight *u, const struct weight *dw,
                     struct cu_w *dg, struct cu_w *du, struct cu_w *dd, const struct cu_shard *s,
                     weight_fn fn, void *ctx)
{
    struct cu_cut gu = whole(g), dn = whole(dw);
    if (s && s->dense && g->data) mlp_cuts(g, dw, s, &gu, &dn);
    fn(ctx, g, gu, dg), fn(ctx, u, gu, du), fn(ctx, dw, dn, dd);
}

static void each_in_layer(const struct model *m, int il, struct cu_layer *d, const struct cu_shard *s,
                          weight_fn fn, void *ctx)
{
    const struct layer *L = &m->layers[il];
    each_attn(m, L, d, s, fn, ctx);
    fn(ctx, &L->ffn_norm, whole(&L->ffn_norm), &d->ffn_norm);
    each_mlp(&L->gate, &L->up, &L->down, &d->gate, &d->up, &d->down, s, fn, ctx);
    fn(ctx, &L->router, whole(&L->router), &d->router);
    fn(ctx, &L->router_bias, whole(&L->router_bias), &d->router_bias);
    for (int x = s ? s->e0 : 0; L->is_moe && x < (s ? s->e1 : m->cfg.n_routed_experts); x++)
        fn(ctx, &L->exp_gate[x], whole(&L->exp_gate[x]), &d->exp_gate[x]),
            fn(ctx, &L->exp_up[x], whole(&L->exp_up[x]), &d->exp_up[x]),
            fn(ctx, &L->exp_down[x], whole(&L->exp_down[x]), &d->exp_down[x]);
    each_mlp(&L->sh_gate, &L->sh_up, &L->sh_down, &d->sh_gate, &d->sh_up, &d->sh_down, s, fn, ctx);
}

static void each_weight(const struct model *m, struct cu_model *d, const struct cu_shard *s,
                        weight_fn fn, void *ctx)
{
    fn(ctx, &m->embed, whole(&m->embed), &d->embed);
    for (int il = 0; il < m->cfg.n_layers; il++) each_in_layer(m, il, &d->layers[il], s, fn, ctx);
    struct cu_cut head = whole(&m->lm_head);
    if (s) head.r0 = s->v0, head.r1 = s->v1;
    fn(ctx, &m->norm, whole(&m->norm), &d->norm), fn(ctx, &m->lm_head, head, &d->lm_head);
}

/* Rows of a 2-D byte array, a range of bytes of each, back to back: a fill job's content. */
struct slab {
    const char *src; /* the first row's first byte */
    uint64_t pitch, row_bytes;
    struct slab *next;
};

static void slab_fill(const void *ctx, uint64_t at, uint64_t n, void *dst)
{
    const struct slab *s = ctx;
    char *out = dst;
    while (n) {
        uint64_t r = at / s->row_bytes, o = at % s->row_bytes;
        uint64_t k = s->row_bytes - o < n ? s->row_bytes - o : n;
        memcpy(out, s->src + r * s->pitch + o, k);
        out += k, at += k, n -= k;
    }
}

/* Places n_rows rows of row_bytes bytes, pitch apart from src: one copy when they are
 * contiguous, else a fill job (whose context the model keeps until it is freed). */
static uint64_t place_rows(struct cu_model *d, const char *src, uint64_t pitch, uint64_t n_rows,
                           uint64_t row_bytes)
{
    if (row_bytes == pitch || n_rows == 1) return wl_add(&d->plan, src, n_rows * row_bytes);
    struct slab *s = xcalloc(1, sizeof *s);
    *s = (struct slab){.src = src, .pitch = pitch, .row_bytes = row_bytes, .next = d->slabs};
    d->slabs = s;
    return wl_add_fn(&d->plan, n_rows * row_bytes, slab_fill, s);
}

/* The FP8 scale grid's blocks that hold the cut. */
static void place_scales(struct cu_model *d, const struct weight *w, struct cu_cut k, struct cu_w *o)
{
    int64_t br = w->block_rows, bc = w->block_cols, full = (w->cols + bc - 1) / bc;
    int64_t b0 = k.r0 / br, b1 = (k.r1 - 1) / br + 1, g0 = k.c0 / bc, g1 = (k.c1 - 1) / bc + 1;
    o->block_rows = (int)br, o->block_cols = (int)bc;
    o->row0 = (int)(k.r0 % br), o->col0 = (int)(k.c0 % bc), o->n_cb = g1 - g0;
    const char *src = (const char *)w->scale + (uint64_t)(b0 * full + g0) * sizeof(float);
    o->scale = (const float *)(uintptr_t)place_rows(d, src, (uint64_t)full * sizeof(float),
                                                     (uint64_t)(b1 - b0),
                                                     (uint64_t)(g1 - g0) * sizeof(float));
}

void cu_place(struct cu_model *d, const struct weight *w, struct cu_cut k, struct cu_w *o)
{
    *o = (struct cu_w){0};
    if (!w->data || k.r1 <= k.r0 || k.c1 <= k.c0) return;
    uint64_t es = dtype_size(w->dtype), pitch = (uint64_t)w->cols * es;
    *o = (struct cu_w){.dtype = (int)w->dtype, .rows = k.r1 - k.r0, .cols = k.c1 - k.c0};
    const char *src = (const char *)w->data + (uint64_t)k.r0 * pitch + (uint64_t)k.c0 * es;
    o->data = (const void *)(uintptr_t)place_rows(d, src, pitch, (uint64_t)o->rows,
                                                   (uint64_t)o->cols * es);
    if (w->scale) place_scales(d, w, k, o);
}

static void place(void *ctx, const struct weight *w, struct cu_cut cut, struct cu_w *d)
{
    cu_place(ctx, w, cut, d);
}

int cu_shard_make(const struct model *m, int rank, int size, int dense, struct cu_shard *s,
                  struct err *e)
{
    const struct model_config *c = &m->cfg;
    if (dense && c->n_heads % size != 0)
        return err_set(e, "the model's %d attention heads do not divide by tensor_parallel_size %d",
                       c->n_heads, size);
    int64_t lo, hi;
    *s = (struct cu_shard){.rank = rank, .size = size, .dense = dense, .h1 = c->n_heads, .v1 = c->vocab_size};
    comm_split(c->n_routed_experts, size, rank, &lo, &hi);
    s->e0 = (int)lo, s->e1 = (int)hi;
    if (!dense) return 0;
    s->h0 = c->n_heads / size * rank, s->h1 = s->h0 + c->n_heads / size;
    comm_split(c->vocab_size, size, rank, &s->v0, &s->v1);
    return 0;
}

void cu_model_plan(struct cu_model *d, const struct model *m, const struct cu_shard *s)
{
    const struct model_config *c = &m->cfg;
    *d = (struct cu_model){.n_layers = c->n_layers, .n_experts = c->n_routed_experts};
    d->layers = xcalloc((size_t)c->n_layers, sizeof *d->layers);
    for (int il = 0; il < c->n_layers; il++) {
        struct cu_layer *L = &d->layers[il];
        L->is_moe = m->layers[il].is_moe;
        if (!L->is_moe) continue;
        L->exp_gate = xcalloc((size_t)c->n_routed_experts, sizeof *L->exp_gate);
        L->exp_up = xcalloc((size_t)c->n_routed_experts, sizeof *L->exp_up);
        L->exp_down = xcalloc((size_t)c->n_routed_experts, sizeof *L->exp_down);
    }
    d->shard = s;
    each_weight(m, d, s, place, d);
}

/* Offsets become device addresses once the arena exists. */
static void relocate(void *ctx, const struct weight *w, struct cu_cut cut, struct cu_w *d)
{
    char *base = ctx;
    (void)cut;
    if (!w->data || !d->rows || !d->cols) return; /* absent, or no part of it on this rank */
    d->data = base + (uintptr_t)d->data;
    if (w->scale) d->scale = (const float *)(base + (uintptr_t)d->scale);
}

struct stage {
    void *buf[2];          /* pinned host memory */
    cudaEvent_t done[2];   /* the copy out of buf[i] finished */
    cudaStream_t stream;
    uint64_t size;
};

static void stage_free(struct stage *s)
{
    for (int i = 0; i < 2; i++) {
        if (s->buf[i]) cudaFreeHost(s->buf[i]);
        if (s->done[i]) cudaEventDestroy(s->done[i]);
    }
    if (s->stream) cudaStreamDestroy(s->stream);
}

static int stage_init(struct stage *s, uint64_t total, struct err *e)
{
    cudaError_t rc;
    *s = (struct stage){.size = total < STAGE_BYTES ? total : STAGE_BYTES};
    if ((rc = cudaStreamCreateWithFlags(&s->stream, cudaStreamNonBlocking)) != cudaSuccess)
        return cu_err(e, rc, "cannot create the upload stream");
    for (int i = 0; i < 2; i++) {
        if ((rc = cudaHostAlloc(&s->buf[i], s->size, cudaHostAllocDefault)) != cudaSuccess)
            return cu_err(e, rc, "cannot allocate pinned staging memory");
        if ((rc = cudaEventCreateWithFlags(&s->done[i], cudaEventDisableTiming)) != cudaSuccess)
            return cu_err(e, rc, "cannot create an upload event");
    }
    return 0;
}

static void report(const struct load_progress *pr, const char *stage, int64_t jobs, int64_t n_jobs,
                   uint64_t bytes, uint64_t total)
{
    if (!pr || !pr->fn) return;
    struct load_status st = {.stage = stage, .n_tensors = jobs, .n_tensors_total = n_jobs,
                             .n_bytes = bytes, .n_bytes_total = total};
    pr->fn(pr->arg, &st);
}

/* The arena, a staging buffer's worth at a time: memcpy out of the mapping (where the page cache
 * faults in) while the other buffer's copy to the device runs. */
int cu_stage_upload(const struct wl_plan *plan, void *arena, const struct load_progress *pr,
                    struct err *e)
{
    struct stage s;
    int rc = stage_init(&s, plan->total, e);
    for (uint64_t lo = 0, i = 0; rc == 0 && lo < plan->total; lo += s.size, i++) {
        uint64_t n = plan->total - lo < s.size ? plan->total - lo : s.size;
        CU_CHECK(cudaEventSynchronize(s.done[i % 2]));
        int jobs = wl_fill(plan, lo, n, s.buf[i % 2]);
        CU_CHECK(cudaMemcpyAsync((char *)arena + lo, s.buf[i % 2], n, cudaMemcpyHostToDevice, s.stream));
        CU_CHECK(cudaEventRecord(s.done[i % 2], s.stream));
        report(pr, "uploading", jobs, plan->n, lo + n, plan->total);
    }
    if (rc == 0) CU_CHECK(cudaStreamSynchronize(s.stream));
    stage_free(&s);
    return rc;
}

int cu_model_upload(struct cu_model *d, const struct model *m, const struct load_progress *pr,
                    struct err *e)
{
    cudaError_t rc = cudaMalloc(&d->arena, d->plan.total ? d->plan.total : 1);
    if (rc != cudaSuccess) {
        d->arena = NULL;
        char what[96];
        snprintf(what, sizeof what, "cannot allocate %llu bytes of device memory for the weights",
                 (unsigned long long)d->plan.total);
        return cu_err(e, rc, what);
    }
    if (cu_stage_upload(&d->plan, d->arena, pr, e) != 0) return -1;
    each_weight(m, d, d->shard, relocate, d->arena);
    report(pr, "uploaded", d->plan.n, d->plan.n, d->plan.total, d->plan.total);
    return 0;
}

void cu_model_free(struct cu_model *d)
{
    if (d->arena) cudaFree(d->arena);
    for (int il = 0; d->layers && il < d->n_layers; il++) {
        free(d->layers[il].exp_gate);
        free(d->layers[il].exp_up);
        free(d->layers[il].exp_down);
    }
    free(d->layers);
    for (struct slab *s = d->slabs, *next; s; s = next) next = s->next, free(s);
    wl_free(&d->plan);
    *d = (struct cu_model){0};
}
