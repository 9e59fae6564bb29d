/* cu_model: the checkpoint's weights in device memory — one arena holding every tensor (or a
 * tensor-parallel rank's rows and columns of each) exactly as stored (FP8 with its block
 * scales, BF16, F32), placed by engine/plan/wlayout.c and uploaded
 * from the mapping through two pinned staging buffers, and the device descriptors (struct cu_w)
 * of every weight, laid out like engine/model/model.h's struct layer. */
#ifndef SEEKD_CU_MODEL_H
#define SEEKD_CU_MODEL_H

#include "cuda/kernels.h"
#include "engine/model/model.h"
#include "engine/plan/wlayout.h"

struct cu_layer {
    struct cu_w attn_norm, q_a, q_a_norm, q_b, q, kv_a, kv_a_norm, kv_b, o, ffn_norm;
    int is_moe;
    struct cu_w gate, up, down;            /* dense MLP */
    struct cu_w router, router_bias;       /* [E, D], [E] */
    struct cu_w *exp_gate, *exp_up, *exp_down; /* [E] each (host array of descriptors) */
    struct cu_w sh_gate, sh_up, sh_down;   /* shared experts */
};

/* A rank's part of the model. Tensor-parallel (dense): heads H/N each (they must divide), routed
 * experts and the vocabulary rows of lm_head by comm_split, the dense MLP's and the shared
 * experts' intermediate rows likewise (gate and up by rows, down by the same columns); norms,
 * q_a, kv_a, the router and the embedding whole on every rank. Expert-parallel (not dense):
 * the routed experts split, everything else whole. */
struct cu_shard {
    int rank, size;
    int dense;        /* 1: tensor parallel; 0: expert parallel (experts only) */
    int h0, h1;       /* heads */
    int e0, e1;       /* routed experts */
    int64_t v0, v1;   /* rows of lm_head */
};

/* Rank rank of size's part of m into s (dense: tensor parallel; else expert parallel); -1 naming
 * both numbers when tensor parallelism's heads do not divide. */
int cu_shard_make(const struct model *m, int rank, int size, int dense, struct cu_shard *s,
                  struct err *e);

/* Rows [r0, r1) and columns [c0, c1) of a weight: what of it one rank holds. */
struct cu_cut {
    int64_t r0, r1, c0, c1;
};

struct slab;

struct cu_model {
    struct cu_w embed, norm, lm_head;
    struct cu_layer *layers;  /* [n_layers] */
    int n_layers, n_experts;
    const struct cu_shard *shard; /* the plan's cut; NULL: every weight whole */
    struct wl_plan plan;      /* where each tensor goes in the arena */
    struct slab *slabs;       /* the plan's strided copies (column cuts), until freed */
    void *arena;              /* device memory, plan.total bytes */
};

/* Places every tensor of m, or rank s's cut of each (s NULL: whole; kept, not owned).
 * Descriptors hold arena offsets until the upload; an expert of another rank stays empty. */
void cu_model_plan(struct cu_model *d, const struct model *m, const struct cu_shard *s);

/* Places cut k of w into d's plan and describes it in o (all zero when w is absent or the cut
 * empty): the rows and columns, and for FP8 the blocks of the scale grid that hold them. */
void cu_place(struct cu_model *d, const struct weight *w, struct cu_cut k, struct cu_w *o);

/* Allocates the arena and copies the weights into it; progress reports "uploading" stages.
 * -1 with a message naming the bytes on failure. */
int cu_model_upload(struct cu_model *d, const struct model *m, const struct load_progress *pr,
                    struct err *e);

void cu_model_free(struct cu_model *d);

/* Uploads an arena plan through two pinned staging buffers (fill jobs computed on the host as
 * they stage); progress reports "uploading". -1 with a message when the staging cannot be set up. */
int cu_stage_upload(const struct wl_plan *plan, void *arena, const struct load_progress *pr,
                    struct err *e);

#endif
