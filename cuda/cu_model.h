/* cu_model: the checkpoint's weights in device memory — one arena holding every tensor exactly as
 * stored (FP8 with its block scales, BF16, F32), placed by engine/plan/wlayout.c and uploaded
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

struct cu_model {
    struct cu_w embed, norm, lm_head;
    struct cu_layer *layers;  /* [n_layers] */
    int n_layers, n_experts;
    struct wl_plan plan;      /* where each tensor goes in the arena */
    void *arena;              /* device memory, plan.total bytes */
};

/* Places every tensor of m (descriptors hold arena offsets until the upload). */
void cu_model_plan(struct cu_model *d, const struct model *m);

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
