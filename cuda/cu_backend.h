/* cu_backend: the CUDA backend's state, shared by its set-up (backend_cuda.c) and its step
 * (cu_forward.c): the device, the weights, the paged latent cache, the step scratch and the
 * host-side plans that say where every token's data goes. */
#ifndef SEEKD_CU_BACKEND_H
#define SEEKD_CU_BACKEND_H

#include <cuda_runtime_api.h>

#include "cuda/cu_dev.h"
#include "cuda/cu_fast.h"
#include "cuda/cu_model.h"
#include "engine/backend.h"
#include "engine/comm.h"
#include "engine/model/rope.h"
#include "engine/plan/moeplan.h"
#include "engine/plan/stepplan.h"
#include "engine/plan/wlayout.h"

struct backend {
    const struct model *m;
    const struct model_config *c;
    struct backend_opts o;
    struct cu_devinfo dev;
    cudaStream_t stream;            /* every step's copies and kernels, in order */
    struct cu_model w;              /* the weights in device memory */
    struct rope rope;               /* the host computes every token's cos/sin (stepplan) */
    struct core_route_cfg route;
    struct wl_scratch at;           /* offsets into scratch */
    unsigned char *scratch;         /* device, at.bytes */
    void *kv;                       /* device [n_layers][n_blocks][block_size][width] */
    int kv_dtype;                   /* CORE_F32 or CORE_BF16 */
    size_t kv_block_bytes;          /* one block of one layer */
    int64_t kv_layer_blocks;        /* blocks per layer: n_blocks, plus the null block (fast) */
    struct sp_plan sp;              /* this step's per-token arrays (host) */
    unsigned char *d_sp;            /* their device copy */
    size_t d_sp_cap;
    struct mp_plan mp;              /* this MoE layer's token lists (host) */
    int32_t *d_mp;                  /* their device copy, sized for max_tokens */
    int32_t *h_sel;                 /* [max_tokens * k] the routing, copied back to plan */
    struct batch_limits lim;
    struct backend_stats st;
    struct cu_fast *fast;           /* numerics fast: its weights, buffers and graphs; else NULL */
    struct backend_rowcands rc;     /* ref numerics with sample_prefilter: rows on the host */
    uint64_t synth_seed;            /* a synthetic model's seed (synthetic: weights made here) */
    int synthetic;
    struct comm *nccl;              /* several GPU ranks: their NCCL communicator (owned), joined
                                     * over the tensor- or expert-parallel host one; else NULL */
    struct comm *tp, *ep;           /* nccl when tensor / expert parallel, else NULL */
    struct cu_shard shard;          /* with nccl: this rank's part of the model */
    float *gathered;                /* with tp: device [max_logits, V], every rank's logits */
    size_t *vcount;                 /* with tp: [size] bytes of each rank's logits this step */
    struct cu_ep *eps;              /* with ep: the exchange's state (cu_forward_ep.c) */
};

/* One step (the backend's forward): batch_check, then the whole model on the device. */
int cu_forward(struct backend *b, const struct batch *bt, float *logits, struct err *e);

/* The step's parts that cu_forward_ep.c shares: y[n][w.rows] = x[n][w.cols] · wᵀ; a SwiGLU
 * MLP over n rows of x into y; the routing of T tokens into b->mp (its wait included); a wait
 * for the stream (through the communicator when there is one). */
void cu_matmul(struct backend *b, const struct cu_w *w, const float *x, int n, float *y);
void cu_mlp(struct backend *b, const struct cu_w *gate, const struct cu_w *up,
            const struct cu_w *down, const float *x, int n, float *y);
int cu_route(struct backend *b, const struct cu_layer *L, int T, struct err *e);
int cu_wait(struct backend *b, struct err *e);

/* Expert parallelism (cu_forward_ep.c): the exchange's state of rank of size, n_experts in all. */
struct cu_ep;
struct cu_ep *cu_ep_create(int size, int rank, int n_experts);
void cu_ep_free(struct cu_ep *p);

/* The routed experts of one MoE layer over every rank: b->mp's gathered rows (scratch xg) out
 * to their experts' ranks, the rows other ranks send through this rank's experts, the outputs
 * back into scratch yg in b->mp's row order. Every rank calls it for every MoE layer. */
int cu_ep_experts(struct backend *b, const struct cu_layer *L, struct err *e);

/* A step with no sequence on this rank: every MoE layer's exchange, serving the others' rows. */
int cu_forward_idle(struct backend *b, struct err *e);

/* A scratch array of the step by its offset. */
static inline float *cu_scr(const struct backend *b, size_t off)
{
    return (float *)(void *)(b->scratch + off);
}

#endif
