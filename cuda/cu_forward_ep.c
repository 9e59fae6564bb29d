/* cu_forward_ep: expert parallelism over GPUs — data-parallel ranks, each running attention and
 * the dense layers on its own batch and holding ⌈E/N⌉ or ⌊E/N⌋ of the routed experts.
 *
 * In each MoE layer the gathered rows (moeplan's order: experts ascending, so the rows for each
 * rank's experts form one block, blocks in rank order) go to their experts' ranks by an NCCL
 * all-to-all, pass through that rank's experts and come back, by the reverse all-to-all, in the
 * order they were sent — where the gathered outputs of one GPU would be, so the combine adds
 * them exactly as one GPU does. Who receives how many rows of which expert from whom is known
 * beforehand from every rank's per-expert counts, exchanged over the host communicator
 * (engine/plan/epplan.h plans the rest); the receiver groups its rows by expert (one gather),
 * runs each expert over its group and puts the outputs back in arrival order (a second
 * gather). A rank with no tokens still takes part in every layer's exchange (cu_forward_idle),
 * serving the others' rows. */
#include <stdlib.h>

#include "cuda/cu_backend.h"
#include "engine/plan/epplan.h"

#define K(call) CU_CHECK(call)

struct cu_ep {
    struct ep_plan plan; /* this layer's exchange (engine/plan/epplan.h) */
    int64_t *cnt;   /* [E] rows this rank sends to each expert */
    int64_t *all;   /* [N, E] every rank's cnt */
    size_t *sb, *rb; /* [N] bytes sent to / received from each rank */
    unsigned char *dev; /* device: rows [cap, D] (received, then grouped outputs), grouped
                         * inputs [cap, D] (then outputs in arrival order), ga, gb [cap, F],
                         * perm and inv [cap] each */
    int64_t cap;    /* rows dev holds */
};

struct cu_ep *cu_ep_create(int size, int rank, int n_experts)
{
    struct cu_ep *p = xcalloc(1, sizeof *p);
    ep_plan_init(&p->plan, size, rank, n_experts);
    p->cnt = xcalloc((size_t)n_experts, sizeof *p->cnt);
    p->all = xcalloc((size_t)size * (size_t)n_experts, sizeof *p->all);
    p->sb = xcalloc((size_t)size, sizeof *p->sb), p->rb = xcalloc((size_t)size, sizeof *p->rb);
    return p;
}

void cu_ep_free(struct cu_ep *p)
{
    if (!p) return;
    if (p->dev) cudaFree(p->dev);
    ep_plan_free(&p->plan);
    free(p->cnt), free(p->all), free(p->sb), free(p->rb);
    free(p);
}

/* Room for rows received rows (grown, never shrunk; cudaFree waits for the device). */
static int reserve(struct backend *b, struct cu_ep *p, int64_t rows, struct err *e)
{
    if (rows <= p->cap) return 0;
    int64_t cap = rows * 2, D = b->c->hidden_size, F = b->c->moe_intermediate_size;
    size_t bytes = (size_t)cap * ((size_t)(2 * D + 2 * F) * sizeof(float) + 2 * sizeof(int32_t));
    if (p->dev) K(cudaFree(p->dev));
    p->dev = NULL, p->cap = 0;
    cudaError_t rc = cudaMalloc((void **)&p->dev, bytes);
    if (rc != cudaSuccess) {
        p->dev = NULL;
        return cu_err(e, rc, "cannot allocate the rows other ranks send to this rank's experts");
    }
    p->cap = cap;
    return 0;
}

/* This rank's experts over the grouped rows gx → ga, gb → the outputs into y (grouped order). */
static void run_experts(struct backend *b, const struct cu_layer *L, const struct ep_plan *p,
                        const float *gx, float *ga, float *gb, float *y)
{
    int64_t D = b->c->hidden_size, F = b->c->moe_intermediate_size;
    for (int i = 0; i < p->e1 - p->e0; i++) {
        int64_t r = p->goff[i], m = p->goff[i + 1] - r;
        if (!m) continue;
        cu_matmul(b, &L->exp_gate[p->e0 + i], gx + r * D, (int)m, ga + r * F);
        cu_matmul(b, &L->exp_up[p->e0 + i], gx + r * D, (int)m, gb + r * F);
    }
    K(k_silu_mul(ga, gb, p->n_recv * F, b->stream));
    for (int i = 0; i < p->e1 - p->e0; i++) {
        int64_t r = p->goff[i], m = p->goff[i + 1] - r;
        if (m) cu_matmul(b, &L->exp_down[p->e0 + i], ga + r * F, (int)m, y + r * D);
    }
}

/* Every rank's counts exchanged, the plan built, its byte counts; the device buffers sized. */
static int plan(struct backend *b, struct cu_ep *p, struct err *e)
{
    int E = b->c->n_routed_experts;
    size_t row = (size_t)b->c->hidden_size * sizeof(float);
    const int32_t *off = mp_arr(&b->mp, b->mp.offset);
    for (int x = 0; x < E; x++) p->cnt[x] = off[x + 1] - off[x];
    if (comm_exchange(b->ep, p->cnt, E, p->all, e) != 0) return -1;
    ep_plan_build(&p->plan, p->all);
    for (int q = 0; q < p->plan.size; q++)
        p->sb[q] = (size_t)p->plan.send[q] * row, p->rb[q] = (size_t)p->plan.recv[q] * row;
    return reserve(b, p, p->plan.n_recv, e);
}

int cu_ep_experts(struct backend *b, const struct cu_layer *L, struct err *e)
{
    struct cu_ep *p = b->eps;
    int64_t D = b->c->hidden_size, F = b->c->moe_intermediate_size;
    if (plan(b, p, e) != 0) return -1;
    int64_t n = p->plan.n_recv;
    float *rows = (float *)(void *)p->dev, *gx = rows + p->cap * D, *ga = gx + p->cap * D;
    float *gb = ga + p->cap * F;
    int32_t *perm = (int32_t *)(void *)(gb + p->cap * F), *inv = perm + p->cap;
    if (comm_alltoallv(b->ep, cu_scr(b, b->at.xg), p->sb, rows, p->rb, b->stream, e) != 0) return -1;
    if (n) {
        K(cudaMemcpyAsync(perm, p->plan.perm, (size_t)n * sizeof *perm, cudaMemcpyHostToDevice, b->stream));
        K(cudaMemcpyAsync(inv, p->plan.inv, (size_t)n * sizeof *inv, cudaMemcpyHostToDevice, b->stream));
        K(k_gather(rows, (int)D, perm, (int)n, gx, b->stream));
        run_experts(b, L, &p->plan, gx, ga, gb, rows);
        K(k_gather(rows, (int)D, inv, (int)n, gx, b->stream));
    }
    /* back the other way: what came from rank q returns to it */
    return comm_alltoallv(b->ep, gx, p->rb, cu_scr(b, b->at.yg), p->sb, b->stream, e);
}

int cu_forward_idle(struct backend *b, struct err *e)
{
    for (int il = 0; il < b->c->n_layers; il++) {
        if (!b->w.layers[il].is_moe) continue;
        if (mp_build(&b->mp, b->h_sel, 0, b->c->n_experts_per_tok, b->c->n_routed_experts) != 0)
            ERR_FATAL("an empty routing was refused");
        if (cu_ep_experts(b, &b->w.layers[il], e) != 0) return -1;
    }
    return cu_wait(b, e);
}
