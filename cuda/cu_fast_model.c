/* cu_fast_model: the weights of the fast numerics on the device — planned tensor by tensor in the
 * fast layout (engine/plan/fastlayout.h), then uploaded through the staging buffers with the
 * layout's transforms computed on the host, or, for a synthetic model, generated in place by the
 * device with the host's own hash (cuda/k_synth.cu). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cuda/cu_backend.h"
#include "engine/cpu/forward_fast.h"
#include "engine/model/synth.h"

/* ---- planning ------------------------------------------------------------------------------- */

/* A job placed in the arena; *field gets its device address once the arena exists. */
static void add_job(struct cf_model *w, struct cf_job j, const void **field)
{
    if (w->n_jobs == w->cap_jobs)
        w->jobs = xrealloc(w->jobs, (size_t)(w->cap_jobs = w->cap_jobs ? 2 * w->cap_jobs : 1024) * sizeof *w->jobs);
    switch (j.make) {
    case CF_RAW: j.off = wl_add(&w->plan, j.w->data, j.bytes); break;
    case CF_CODES: j.off = wl_add_fn(&w->plan, j.bytes, fl_fill_codes, j.l); break;
    case CF_SCALES: j.off = wl_add_fn(&w->plan, j.bytes, fl_fill_scales, j.l); break;
    case CF_UK: j.off = wl_add_fn(&w->plan, j.bytes, fl_fill_uk, j.m); break;
    case CF_UV: j.off = wl_add_fn(&w->plan, j.bytes, fl_fill_uv, j.m); break;
    case CF_F32: j.off = wl_add_fn(&w->plan, j.bytes, fl_fill_f32, j.w); break;
    }
    w->jobs[w->n_jobs++] = j;
    *field = (const void *)(uintptr_t)(j.off + 1); /* an offset (+1: 0 means absent) until relocated */
}

static void f32_job(struct cf_model *w, const struct weight *v, const float **field)
{
    *field = NULL;
    if (v->data)
        add_job(w, (struct cf_job){.make = CF_F32, .bytes = (uint64_t)(v->rows * v->cols) * 4, .w = v},
                (const void **)field);
}

/* A linear layer: FP8 in the given order (w2: stacked below w), or BF16 as stored. */
static void lin_job(struct cf_model *w, struct cf_lin *lin, const struct weight *v,
                    const struct weight *v2, enum fl_order order, int align)
{
    *lin = (struct cf_lin){0};
    if (!v->data) return;
    if (v->dtype != DT_F8E4M3) {
        *lin = (struct cf_lin){.n = v->rows, .k = v->cols, .n_pad = v->rows, .k_pad = v->cols};
        add_job(w, (struct cf_job){.make = CF_RAW, .bytes = (uint64_t)(v->rows * v->cols) * dtype_size(v->dtype),
                                   .w = v}, (const void **)&lin->bf16);
        return;
    }
    struct fl_fp8 *l = &w->layouts[w->n_layouts++];
    if (fl_fp8_plan(l, v, v2, order, align) != 0) ERR_FATAL("cu_fast: %s cannot stack", v->name);
    *lin = (struct cf_lin){.fp8 = 1, .n = l->n, .k = l->k, .n_pad = l->n_pad, .k_pad = l->k_pad, .s_ld = l->s_ld};
    add_job(w, (struct cf_job){.make = CF_CODES, .bytes = fl_code_bytes(l), .l = l}, (const void **)&lin->codes);
    add_job(w, (struct cf_job){.make = CF_SCALES, .bytes = fl_scale_bytes(l), .l = l}, (const void **)&lin->scales);
}

static void plan_attention(struct backend *b, struct cf_layer *d, const struct layer *L,
                           enum fl_order order, int align)
{
    struct cf_model *w = &b->fast->w;
    const struct model_config *c = b->c;
    f32_job(w, &L->attn_norm, &d->attn_norm), f32_job(w, &L->q_a_norm, &d->q_a_norm);
    f32_job(w, &L->kv_a_norm, &d->kv_a_norm), f32_job(w, &L->ffn_norm, &d->ffn_norm);
    d->qkv_stacked = c->q_lora_rank && w->fp8 && fl_can_stack(&L->q_a, &L->kv_a);
    if (d->qkv_stacked) {
        lin_job(w, &d->qa, &L->q_a, &L->kv_a, order, align);
    } else {
        lin_job(w, &d->qa, &L->q_a, NULL, order, align);
        lin_job(w, &d->kva, &L->kv_a, NULL, order, align);
    }
    lin_job(w, &d->qb, c->q_lora_rank ? &L->q_b : &L->q, NULL, order, align);
    struct fl_mla *m = &w->mlas[w->n_mlas++];
    *m = (struct fl_mla){&L->kv_b, c->n_heads, c->qk_nope_head_dim, c->v_head_dim, c->kv_lora_rank};
    add_job(w, (struct cf_job){.make = CF_UK, .bytes = fl_uk_bytes(m), .m = m}, (const void **)&d->w_uk);
    add_job(w, (struct cf_job){.make = CF_UV, .bytes = fl_uv_bytes(m), .m = m}, (const void **)&d->w_uv);
    lin_job(w, &d->o, &L->o, NULL, order, align);
}

/* Expert group g's weights: routed expert g, or (g == E) the shared experts. */
static void plan_group(struct backend *b, struct cf_layer *d, const struct layer *L, int g)
{
    struct cf_model *w = &b->fast->w;
    int E = b->c->n_routed_experts;
    const struct weight *gate = g < E ? &L->exp_gate[g] : &L->sh_gate, *up = g < E ? &L->exp_up[g] : &L->sh_up;
    const struct weight *down = g < E ? &L->exp_down[g] : &L->sh_down;
    enum fl_order order = w->experts_cutlass ? FL_KN : FL_NK;
    if (d->gu_stacked) lin_job(w, &d->eg[g], gate, up, order, 1);
    else lin_job(w, &d->eg[g], gate, NULL, order, 1), lin_job(w, &d->eu[g], up, NULL, order, 1);
    lin_job(w, &d->ed[g], down, NULL, order, 1);
}

static void plan_ffn(struct backend *b, struct cf_layer *d, const struct layer *L, enum fl_order order,
                     int align)
{
    struct cf_model *w = &b->fast->w;
    d->is_moe = L->is_moe;
    if (!L->is_moe) {
        d->gu_stacked = w->fp8 && fl_can_stack(&L->gate, &L->up);
        lin_job(w, &d->gate, &L->gate, d->gu_stacked ? &L->up : NULL, order, align);
        if (!d->gu_stacked) lin_job(w, &d->up, &L->up, NULL, order, align);
        lin_job(w, &d->down, &L->down, NULL, order, align);
        return;
    }
    f32_job(w, &L->router, &d->router), f32_job(w, &L->router_bias, &d->bias);
    d->gu_stacked = w->fp8 && fl_can_stack(&L->exp_gate[0], &L->exp_up[0]);
    d->eg = xcalloc((size_t)w->G, sizeof *d->eg), d->eu = xcalloc((size_t)w->G, sizeof *d->eu);
    d->ed = xcalloc((size_t)w->G, sizeof *d->ed);
    for (int g = 0; g < w->G; g++) plan_group(b, d, L, g);
    if (!w->shared_group && b->c->n_shared_experts) { /* shared experts as dense linears */
        d->gate = (struct cf_lin){0};
        lin_job(w, &d->gate, &L->sh_gate, NULL, order, align);
        lin_job(w, &d->up, &L->sh_up, NULL, order, align);
        lin_job(w, &d->down, &L->sh_down, NULL, order, align);
    }
}

static void plan_model(struct backend *b)
{
    struct cf_model *w = &b->fast->w;
    const struct model_config *c = b->c;
    const struct model *m = b->m;
    const struct cu_fast *F = b->fast;
    enum fl_order order = (F->use_lt ? F->blas.w_kn : F->dense_cut) ? FL_KN : FL_NK;
    int align = F->use_lt ? F->blas.w_align : 1;
    b->fast->dense_kn = order == FL_KN;
    int per_layer = 6 + 3 * (w->G + 1);
    w->layouts = xcalloc((size_t)c->n_layers * (size_t)per_layer, sizeof *w->layouts);
    w->mlas = xcalloc((size_t)c->n_layers, sizeof *w->mlas);
    w->layers = xcalloc((size_t)c->n_layers, sizeof *w->layers);
    w->n_layers = c->n_layers;
    w->embed = (struct cu_w){.dtype = (int)m->embed.dtype, .rows = m->embed.rows, .cols = m->embed.cols};
    add_job(w, (struct cf_job){.make = CF_RAW, .bytes = (uint64_t)(m->embed.rows * m->embed.cols) * dtype_size(m->embed.dtype),
                               .w = &m->embed}, &w->embed.data);
    f32_job(w, &m->norm, &w->norm);
    lin_job(w, &w->lm_head, &m->lm_head, NULL, order, align);
    for (int il = 0; il < c->n_layers; il++) {
        plan_attention(b, &w->layers[il], &m->layers[il], order, align);
        plan_ffn(b, &w->layers[il], &m->layers[il], order, align);
    }
}

/* ---- filling -------------------------------------------------------------------------------- */

static struct ksynth synth_of(uint64_t seed, const char *name, enum synth_kind k, int64_t rows,
                              int64_t cols, int64_t gain_cols)
{
    return (struct ksynth){.kind = (int)k, .key = synth_key(seed, name), .gain = synth_gain(k, gain_cols),
                           .rows = rows, .cols = cols};
}

static struct ksynth synth_weight(uint64_t seed, const struct weight *v)
{
    return synth_of(seed, v->name, synth_kind_of(v->name, v->dtype), v->rows, v->cols, v->cols);
}

static struct ksynth synth_grid(uint64_t seed, const struct weight *v)
{
    char name[320];
    snprintf(name, sizeof name, "%s_scale_inv", v->name);
    return synth_of(seed, name, SYNTH_SCALE, (v->rows + 127) / 128, (v->cols + 127) / 128, v->cols);
}

/* One job generated on the device. */
static void synth_job(uint64_t seed, const struct cf_job *j, char *base, cudaStream_t s)
{
    void *dst = base + j->off;
    if (j->make == CF_RAW) {
        struct ksynth t = synth_weight(seed, j->w);
        CU_CHECK(k_synth_fill(&t, dst, t.cols, t.rows, s));
    } else if (j->make == CF_F32) {
        struct ksynth t = synth_weight(seed, j->w);
        CU_CHECK(k_synth_f32(&t, (float *)dst, s));
    } else if (j->make == CF_CODES) {
        for (int i = 0; i < j->l->n_src; i++) {
            struct ksynth t = synth_weight(seed, j->l->src[i]);
            CU_CHECK(k_synth_fill(&t, (char *)dst + j->l->row0[i] * j->l->k_pad, j->l->k_pad, t.rows, s));
        }
    } else if (j->make == CF_SCALES) {
        for (int i = 0; i < j->l->n_src; i++) {
            struct ksynth g = synth_grid(seed, j->l->src[i]);
            CU_CHECK(k_synth_scales(&g, j->l->order == FL_KN, j->l->row0[i] / 128, (float *)dst, j->l->s_ld, s));
        }
    } else {
        const struct fl_mla *m = j->m;
        struct ksynth codes = synth_weight(seed, m->kv_b), grid = synth_grid(seed, m->kv_b);
        int uk = j->make == CF_UK;
        CU_CHECK(k_synth_absorb(&codes, &grid, m->H, m->dn, m->dv, uk ? 0 : m->dn, uk ? m->dn : m->dv,
                                (uint16_t *)dst, s));
    }
}

static int fill(struct backend *b, struct err *e)
{
    struct cf_model *w = &b->fast->w;
    CU_CHECK(cudaMemsetAsync(w->arena, 0, w->plan.total, b->stream)); /* padding stays zero */
    if (!b->synthetic) {
        CU_CHECK(cudaStreamSynchronize(b->stream));
        return cu_stage_upload(&w->plan, w->arena, b->o.progress, e);
    }
    for (int i = 0; i < w->n_jobs; i++) synth_job(b->synth_seed, &w->jobs[i], w->arena, b->stream);
    CU_CHECK(cudaStreamSynchronize(b->stream));
    return 0;
}

/* Offsets become device addresses: every descriptor field a job named. */
static void relocate_lin(struct cf_lin *l, char *base)
{
    if (l->codes) l->codes = (const uint8_t *)(base + (uintptr_t)l->codes - 1);
    if (l->scales) l->scales = (const float *)(base + (uintptr_t)l->scales - 1);
    if (l->bf16) l->bf16 = (const uint16_t *)(base + (uintptr_t)l->bf16 - 1);
}

static const void *reloc(const void *p, char *base)
{
    return p ? base + (uintptr_t)p - 1 : NULL;
}

static void relocate_layer(struct cf_layer *d, char *base, int G)
{
    d->attn_norm = reloc(d->attn_norm, base), d->q_a_norm = reloc(d->q_a_norm, base);
    d->kv_a_norm = reloc(d->kv_a_norm, base), d->ffn_norm = reloc(d->ffn_norm, base);
    d->router = reloc(d->router, base), d->bias = reloc(d->bias, base);
    d->w_uk = reloc(d->w_uk, base), d->w_uv = reloc(d->w_uv, base);
    struct cf_lin *lins[] = {&d->qa, &d->kva, &d->qb, &d->o, &d->gate, &d->up, &d->down};
    for (size_t i = 0; i < sizeof lins / sizeof lins[0]; i++) relocate_lin(lins[i], base);
    for (int g = 0; d->is_moe && g < G; g++)
        relocate_lin(&d->eg[g], base), relocate_lin(&d->eu[g], base), relocate_lin(&d->ed[g], base);
}

/* The device arrays of expert pointers the grouped GEMMs read. */
static int pointer_arrays(struct backend *b, struct err *e)
{
    struct cf_model *w = &b->fast->w;
    int G = w->G, n_moe = 0;
    for (int il = 0; il < w->n_layers; il++) n_moe += w->layers[il].is_moe;
    if (!n_moe) return 0;
    size_t per = (size_t)G * sizeof(void *);
    cudaError_t rc = cudaMalloc((void **)&w->ptr_arrays, per * 6 * (size_t)n_moe);
    if (rc != cudaSuccess) return w->ptr_arrays = NULL, cu_err(e, rc, "cannot allocate the expert pointer arrays");
    const void **host = xcalloc((size_t)G * 6, sizeof *host);
    char *at = (char *)w->ptr_arrays;
    for (int il = 0; il < w->n_layers; il++) {
        struct cf_layer *d = &w->layers[il];
        if (!d->is_moe) continue;
        for (int g = 0; g < G; g++) {
            host[g] = d->eg[g].codes, host[G + g] = d->eg[g].scales, host[2 * G + g] = d->eu[g].codes;
            host[3 * G + g] = d->eu[g].scales, host[4 * G + g] = d->ed[g].codes, host[5 * G + g] = d->ed[g].scales;
        }
        CU_CHECK(cudaMemcpy(at, host, per * 6, cudaMemcpyHostToDevice));
        d->d_gu_w = (const uint8_t **)(void *)at, d->d_gu_s = (const float **)(void *)(at + per);
        d->d_up_w = (const uint8_t **)(void *)(at + 2 * per), d->d_up_s = (const float **)(void *)(at + 3 * per);
        d->d_dn_w = (const uint8_t **)(void *)(at + 4 * per), d->d_dn_s = (const float **)(void *)(at + 5 * per);
        at += per * 6;
    }
    free(host);
    return 0;
}

uint64_t cf_model_bytes(const struct backend *b)
{
    return b->fast->w.plan.total;
}

int cf_model_create(struct backend *b, struct err *e)
{
    struct cf_model *w = &b->fast->w;
    const struct model_config *c = b->c;
    w->fp8 = ffw_check_model(b->m, e);
    if (w->fp8 < 0) return -1;
    w->shared_group = c->n_shared_experts == 1;
    w->G = c->n_routed_experts + (w->shared_group ? 1 : 0);
    w->experts_cutlass = b->fast->cut_gu != NULL;
    plan_model(b);
    return 0;
}

/* After the fit check: the arena, its contents, the addresses. */
int cf_model_fill(struct backend *b, struct err *e)
{
    struct cf_model *w = &b->fast->w;
    cudaError_t rc = cudaMalloc(&w->arena, w->plan.total ? w->plan.total : 1);
    if (rc != cudaSuccess) {
        w->arena = NULL;
        return cu_err(e, rc, "cannot allocate the device memory for the weights");
    }
    if (fill(b, e) != 0) return -1;
    char *base = w->arena;
    w->embed.data = reloc(w->embed.data, base), w->norm = reloc(w->norm, base);
    relocate_lin(&w->lm_head, base);
    for (int il = 0; il < w->n_layers; il++) relocate_layer(&w->layers[il], base, w->G);
    return pointer_arrays(b, e);
}

void cf_model_free(struct cf_model *w)
{
    if (w->arena) cudaFree(w->arena);
    if (w->ptr_arrays) cudaFree(w->ptr_arrays);
    for (int il = 0; w->layers && il < w->n_layers; il++)
        free(w->layers[il].eg), free(w->layers[il].eu), free(w->layers[il].ed);
    free(w->layers), free(w->jobs), free(w->layouts), free(w->mlas);
    wl_free(&w->plan);
    *w = (struct cf_model){0};
}
