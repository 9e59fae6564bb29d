/* cu_model: planning, uploading and describing the device copy of the weights. */
#include "cuda/cu_model.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cuda_runtime_api.h>

#include "cuda/cu_dev.h"

enum { STAGE_BYTES = 64 << 20 }; /* each of the two pinned staging buffers */

/* Called with each (host weight, device descriptor) pair of the model. */
typedef void (*weight_fn)(void *ctx, const struct weight *w, struct cu_w *d);

static void each_in_layer(const struct model *m, int il, struct cu_layer *d, weight_fn fn, void *ctx)
{
    const struct layer *L = &m->layers[il];
    fn(ctx, &L->attn_norm, &d->attn_norm), fn(ctx, &L->q_a, &d->q_a);
    fn(ctx, &L->q_a_norm, &d->q_a_norm), fn(ctx, &L->q_b, &d->q_b), fn(ctx, &L->q, &d->q);
    fn(ctx, &L->kv_a, &d->kv_a), fn(ctx, &L->kv_a_norm, &d->kv_a_norm);
    fn(ctx, &L->kv_b, &d->kv_b), fn(ctx, &L->o, &d->o), fn(ctx, &L->ffn_norm, &d->ffn_norm);
    fn(ctx, &L->gate, &d->gate), fn(ctx, &L->up, &d->up), fn(ctx, &L->down, &d->down);
    fn(ctx, &L->router, &d->router), fn(ctx, &L->router_bias, &d->router_bias);
    for (int x = 0; L->is_moe && x < m->cfg.n_routed_experts; x++)
        fn(ctx, &L->exp_gate[x], &d->exp_gate[x]), fn(ctx, &L->exp_up[x], &d->exp_up[x]),
            fn(ctx, &L->exp_down[x], &d->exp_down[x]);
    fn(ctx, &L->sh_gate, &d->sh_gate), fn(ctx, &L->sh_up, &d->sh_up), fn(ctx, &L->sh_down, &d->sh_down);
}

static void each_weight(const struct model *m, struct cu_model *d, weight_fn fn, void *ctx)
{
    fn(ctx, &m->embed, &d->embed);
    for (int il = 0; il < m->cfg.n_layers; il++) each_in_layer(m, il, &d->layers[il], fn, ctx);
    fn(ctx, &m->norm, &d->norm), fn(ctx, &m->lm_head, &d->lm_head);
}

static uint64_t scale_bytes(const struct weight *w)
{
    if (!w->scale) return 0;
    uint64_t rb = (uint64_t)((w->rows + w->block_rows - 1) / w->block_rows);
    return rb * (uint64_t)((w->cols + w->block_cols - 1) / w->block_cols) * sizeof(float);
}

/* A descriptor whose data and scale are arena offsets (weights the model lacks stay empty). */
static void place(void *ctx, const struct weight *w, struct cu_w *d)
{
    struct wl_plan *p = ctx;
    *d = (struct cu_w){0};
    if (!w->data) return;
    *d = (struct cu_w){.dtype = (int)w->dtype, .rows = w->rows, .cols = w->cols};
    d->data = (const void *)(uintptr_t)wl_add(p, w->data, (uint64_t)(w->rows * w->cols) * dtype_size(w->dtype));
    if (!w->scale) return;
    d->block_rows = w->block_rows, d->block_cols = w->block_cols;
    d->n_cb = (w->cols + w->block_cols - 1) / w->block_cols;
    d->scale = (const float *)(uintptr_t)wl_add(p, w->scale, scale_bytes(w));
}

void cu_model_plan(struct cu_model *d, const struct model *m)
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
    each_weight(m, d, place, &d->plan);
}

/* Offsets become device addresses once the arena exists. */
static void relocate(void *ctx, const struct weight *w, struct cu_w *d)
{
    char *base = ctx;
    if (!w->data) return;
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
    each_weight(m, d, relocate, d->arena);
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
    wl_free(&d->plan);
    *d = (struct cu_model){0};
}
