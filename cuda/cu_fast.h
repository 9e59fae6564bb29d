/* cu_fast: the CUDA backend's fast numerics (DeepSeek's FP8 recipe; docs/ARCHITECTURE.md, "The
 * numerics contract of fast") — the weights in the fast layout (engine/plan/fastlayout.h), the
 * step's buffers, and the step itself: eager, or replayed from a CUDA graph for decode steps. The
 * CPU's engine/cpu/forward_fast.c computes the same at every rounding point; a step can dump its
 * stages for `seekd check-stages`. */
#ifndef SEEKD_CU_FAST_H
#define SEEKD_CU_FAST_H

#include <cuda_runtime_api.h>

#include "cuda/cu_blas.h"
#include "cuda/cutlass_fp8.h"
#include "cuda/kernels.h"
#include "cuda/kfast.h"
#include "engine/model/model.h"
#include "engine/plan/fastlayout.h"
#include "engine/plan/graphplan.h"
#include "engine/plan/mlaplan.h"
#include "engine/plan/stepplan.h"
#include "engine/plan/wlayout.h"
#include "engine/stage_dump.h"

/* A linear layer on the device. */
struct cf_lin {
    int fp8;                 /* FP8 codes + grid, else BF16 */
    int64_t n, k;            /* the checkpoint's rows and columns (both sources when stacked) */
    int64_t n_pad, k_pad;    /* the device array */
    const uint8_t *codes;    /* FP8 [n_pad][k_pad] */
    const float *scales;     /* FP8 grid, s_ld floats a row, in the layer's planned order */
    int64_t s_ld;
    const uint16_t *bf16;    /* BF16 [n][k] */
    /* dense FP8 on CUTLASS (cu_fast.dense_cut): the set-up GEMM of this shape (NULL: k_gemm8),
     * and device arrays holding the one codes pointer and the one grid pointer */
    struct kcut *cut;
    const uint8_t *const *d_w;
    const float *const *d_s;
};

struct cf_layer {
    const float *attn_norm, *q_a_norm, *kv_a_norm, *ffn_norm; /* F32 */
    int qkv_stacked;         /* q_a | kv_a in one array (qa holds both) */
    struct cf_lin qa, kva, qb;  /* qb: q_b, or q without q_lora (then qa is unused) */
    const uint16_t *w_uk, *w_uv; /* [H][dn][dc], [H][dv][dc] BF16 */
    struct cf_lin o;
    int is_moe;
    int gu_stacked;          /* gate | up in one array (dense, and experts) */
    struct cf_lin gate, up, down;     /* dense MLP (up unused when stacked) */
    const float *router, *bias;       /* [E][D], [E] F32 */
    struct cf_lin *eg, *eu, *ed;      /* [G] host descriptors: gate (| up), up, down per group */
    /* device arrays of G pointers for the grouped GEMMs (G = E + 1 with shared experts) */
    const uint8_t **d_gu_w, **d_up_w, **d_dn_w;
    const float **d_gu_s, **d_up_s, **d_dn_s;
};

/* One planned device tensor and how it is made (from the mapping, or generated on the device). */
enum cf_make { CF_RAW, CF_CODES, CF_SCALES, CF_UK, CF_UV, CF_F32 };

struct cf_job {
    enum cf_make make;
    uint64_t off, bytes;     /* in the arena */
    const struct weight *w;  /* CF_RAW, CF_F32 */
    const struct fl_fp8 *l;  /* CF_CODES, CF_SCALES */
    const struct fl_mla *m;  /* CF_UK, CF_UV */
};

struct cf_model {
    struct cu_w embed;       /* as stored */
    const float *norm;       /* F32 */
    struct cf_lin lm_head;   /* BF16 */
    struct cf_layer *layers;
    int n_layers, G;         /* expert groups (routed + one for the shared experts) */
    int fp8;                 /* the checkpoint's linears are FP8 */
    int experts_cutlass;     /* expert grids in CUTLASS's order; else k_gemm8_grouped's */
    int shared_group;        /* the shared experts run as group E of the grouped GEMMs */
    struct wl_plan plan;
    struct cf_job *jobs;
    int n_jobs, cap_jobs;
    struct fl_fp8 *layouts;  /* the fill contexts (kept until the upload ends) */
    struct fl_mla *mlas;
    int n_layouts, n_mlas;
    void *arena;
    void **ptr_arrays;       /* device memory of the expert pointer arrays */
};

/* The step's device buffers (one allocation), sized for max_tokens and max_logits. */
struct cf_bufs {
    float *h, *o, *xn, *qkva, *cqn, *q, *attn, *xn2, *gu, *act, *out, *router, *selw;
    float *part_o, *part_ml, *fxn, *logits, *route_tmp, *egu, *eact, *ey;
    int32_t *sel, *count, *offset, *row_tok, *tok_row, *mla;
    unsigned char *route_taken;
    uint16_t *q_nope, *qfull, *ctx, *kvrows;
    struct kq_out xq, cq, aq, x2, actq, xg, eaq, fxb; /* quantised activations */
    int32_t *sp_ids, *sp_nfin;
    float *sp_vals, *sp_max;
    double *sp_mass;
    void *base;
    size_t bytes;
    int t_cap, t_pad, l_cap, r_max, parts_max, n_ctas;
};

struct cu_fast {
    struct cf_model w;
    struct cf_bufs b;
    struct cu_blas blas;
    struct kcut *cut_gu, *cut_dn;   /* the grouped GEMMs (NULL: k_gemm8_grouped) */
    int use_lt;                     /* dense FP8 linears on cuBLASLt */
    int dense_cut;                  /* else on CUTLASS's kernel with one group where it takes
                                     * the shape, k_gemm8 where not (grids FL_KN either way) */
    int dense_kn;                   /* the dense grids are FL_KN (else FL_NK) */
    struct kcut **cuts;             /* [n_cuts] one per dense shape (dense_cut; NULL: refused) */
    int64_t (*cut_nk)[2];           /* [n_cuts] their shapes */
    int n_cuts;
    int32_t *d_toff;                /* pairs {0, 16 j}: the one group's offsets for t_pad = 16 j */
    void *d_dense_ptrs;             /* the dense linears' pointer arrays */
    struct mla_plan mla;            /* host work lists of the step */
    int32_t *h_ctx;                 /* [t_cap] contexts for mla_build */
    struct gp_buckets buckets;
    cudaGraphExec_t *graphs;        /* [buckets.n], NULL until captured (or graphs = 2) */
    int padded;                     /* decode steps go through the buckets */
    struct gp_padded pad;
    unsigned char *d_sp;            /* the step plan on the device (fixed capacity) */
    size_t d_sp_cap;
    struct sp_caps caps;            /* the step plan's fixed capacities */
    struct sd dump;
    int dumping;
    char note[256];                 /* what runs where (GEMM paths, the probe), for the stats line */
    /* sample_prefilter: the candidates of the last step on the host */
    int32_t *hc_ids, *hc_nfin;      /* [l_cap][SMP_CAND_K], [l_cap] */
    float *hc_vals, *hc_max;
    double *hc_mass;
};

struct backend;

/* Set-up in the backend's order: paths and the weights' plan (cf_setup), the fit check, the
 * weights (cf_model_fill), the KV pool, then the step's buffers (cf_setup_step) and the decode
 * graphs (cf_setup_graphs). cf_free undoes any prefix of it. */
int cf_setup(struct backend *b, struct err *e);
int cf_setup_step(struct backend *b, struct err *e);
int cf_setup_graphs(struct backend *b, struct err *e);
void cf_free(struct backend *b);
/* Device bytes of the step buffers (known before they are allocated). */
size_t cf_bufs_bytes(struct backend *b);

/* Plans, allocates and fills the fast weights (uploaded, or generated for a synthetic model). */
int cf_model_create(struct backend *b, struct err *e);
/* After the fit check: allocates the arena and uploads or generates the weights. */
int cf_model_fill(struct backend *b, struct err *e);
void cf_model_free(struct cf_model *w);
/* Device bytes the fast weights take (after cf_model_plan). */
uint64_t cf_model_bytes(const struct backend *b);

int cf_bufs_create(struct backend *b, struct err *e);
void cf_bufs_free(struct cf_bufs *bf);

/* One step under the fast numerics (the backend's forward when numerics is fast): the logits
 * rows into logits, or (logits NULL) each row pre-filtered on the device into cands, the rows
 * left in the step buffers for cf_fetch_row. */
int cf_forward(struct backend *b, const struct batch *bt, float *logits, struct smp_cands *cands,
               struct err *e);
void cf_fetch_row(struct backend *b, int row, float *out);

/* The layers and the head of a step whose plan is on the device (cu_fast_step.c), for eager runs
 * and for graph capture alike; T tokens (the bucket when padded), n_logits rows of logits. */
void cf_run_layers(struct backend *b, int T, int dump);
void cf_run_head(struct backend *b, int n_logits, int dump);

/* The MoE block of one layer (cu_fast_moe.c): xn2 / x2 of the step in, b->b.out out. */
void cf_moe(struct backend *b, const struct cf_layer *L, int il, int T, int dump);

/* Whether the dense GEMMs read activation scales as KQ_GT (tokens fastest, pitch t_pad). */
int cf_x_gt(const struct backend *b);

/* q as the dense GEMMs read it in a step of t_pad rows (its scales' layout set). */
struct kq_out cf_dense_in(const struct backend *b, const struct kq_out *q, int64_t t_pad);

/* The dense linears on CUTLASS (dense_cut): a GEMM per shape, the pointer arrays. */
int cf_dense_cut_setup(struct backend *b, struct err *e);
void cf_dense_cut_free(struct cu_fast *F);

/* y = a linear layer of the quantised activation x (T rows), into y with row pitch ldy. */
void cf_linear(struct backend *b, const struct cf_lin *w, const struct kq_out *x, int T, float *y,
               int64_t ldy);

/* Graph capture of the decode buckets, and a step through them (cu_graph.c). */
int cf_graphs_capture(struct backend *b, struct err *e);
void cf_graphs_free(struct backend *b);
/* 1 when the step ran through its bucket (a graph, or padded eagerly with graphs = 2): its
 * logits rows are in the step buffers, in order; 0 when it must run eagerly. */
int cf_graph_step(struct backend *b, const struct batch *bt);

/* Dumps of the step's stages (cu_fast_dump.c). */
int cf_dump_step(struct backend *b, struct err *e);
void cf_dump_attention(struct backend *b, int il, int T);
void cf_dump_ffn(struct backend *b, const struct cf_layer *L, int il, int T);
void cf_dump_head(struct backend *b, int n_logits);

#endif
