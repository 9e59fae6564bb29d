/* backend_cuda: the CUDA backend behind the seam — one Hopper GPU per rank, reference numerics
 * (bf16 runs as ref) or fast ones. create() checks the model and options, opens the device,
 * joins the tensor- or expert-parallel ranks' NCCL communicator when there are several, checks
 * that the weights (this rank's cut of them), the step scratch and one KV block fit, uploads
 * the weights, then sizes the paged latent cache from what is free. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cuda/comm_nccl.h"
#include "cuda/cu_backend.h"

/* Seconds a step may wait for its collectives before the job ends naming this rank (a served
 * job's engine_stall_timeout watchdog usually ends it first). */
static const double COLLECTIVE_TIMEOUT_S = 300;

static void cuda_destroy(struct backend *b)
{
    if (!b) return;
    if (b->stream) cudaSetDevice(b->dev.ordinal), cudaStreamSynchronize(b->stream);
    cf_free(b);
    if (b->kv) cudaFree(b->kv);
    if (b->scratch) cudaFree(b->scratch);
    if (b->d_sp) cudaFree(b->d_sp);
    if (b->d_mp) cudaFree(b->d_mp);
    if (b->stream) cudaStreamDestroy(b->stream);
    if (b->gathered) cudaFree(b->gathered);
    cu_ep_free(b->eps);
    comm_destroy(b->nccl);
    free(b->vcount);
    cu_model_free(&b->w);
    sp_free(&b->sp);
    mp_free(&b->mp);
    free(b->h_sel);
    backend_rowcands_free(&b->rc);
    free(b);
}

static void route_cfg(const struct model_config *c, struct core_route_cfg *r)
{
    *r = (struct core_route_cfg){.n_experts = c->n_routed_experts, .k = c->n_experts_per_tok,
                                 .n_group = c->n_group, .topk_group = c->topk_group,
                                 .sigmoid = c->scoring == SCORE_SIGMOID, .method = (int)c->topk_method,
                                 .normalise = c->norm_topk_prob && c->arch == ARCH_DEEPSEEK_V3,
                                 .factor = c->routed_scaling_factor};
}

/* Step scratch and the MoE plan's device copy, for max_tokens tokens. */
static int make_scratch(struct backend *b, struct err *e)
{
    const struct model_config *c = b->c;
    size_t moe_elems = (size_t)(2 * c->n_routed_experts + 1) +
                       2 * (size_t)b->o.max_tokens * (size_t)c->n_experts_per_tok;
    cudaError_t rc = cudaMalloc((void **)&b->scratch, b->at.bytes);
    if (rc == cudaSuccess) rc = cudaMalloc((void **)&b->d_mp, moe_elems * sizeof(int32_t));
    if (rc != cudaSuccess) return cu_err(e, rc, "cannot allocate the step scratch");
    b->h_sel = xcalloc((size_t)b->o.max_tokens * (size_t)(c->n_experts_per_tok + 1), sizeof *b->h_sel);
    b->st.workspace_bytes = b->at.bytes + moe_elems * sizeof(int32_t);
    return 0;
}

/* The paged latent cache: kv_blocks blocks, or kv_memory of what is free now; under the fast
 * numerics one more block per layer, the null block padded graph rows use. */
static int make_kv(struct backend *b, struct err *e)
{
    const struct model_config *c = b->c;
    size_t esize = b->o.kv_dtype == DT_BF16 ? 2 : 4, free_b = 0, total = 0, extra = b->fast ? 1 : 0;
    b->kv_dtype = b->o.kv_dtype == DT_BF16 ? CORE_BF16 : CORE_F32;
    b->kv_block_bytes = (size_t)b->o.block_size * (size_t)config_kv_width(c) * esize;
    size_t per_block = b->kv_block_bytes * (size_t)c->n_layers;
    cudaError_t rc = cudaMemGetInfo(&free_b, &total);
    if (rc != cudaSuccess) return cu_err(e, rc, "cannot read the device's free memory");
    uint64_t budget = b->o.kv_blocks > 0 ? (uint64_t)b->o.kv_blocks * per_block
                                         : backend_kv_budget(b->o.kv_memory, free_b);
    int64_t n = (int64_t)(budget / per_block) - (b->o.kv_blocks > 0 ? 0 : (int64_t)extra);
    if (n > INT32_MAX / 2) n = INT32_MAX / 2;
    if (n < 1)
        return err_set(e, "kv_cache_memory of %llu bytes holds no KV block (%zu bytes each, %zu "
                          "bytes free on the device)",
                       (unsigned long long)budget, per_block, free_b);
    b->kv_layer_blocks = n + (int64_t)extra;
    if ((rc = cudaMalloc(&b->kv, (size_t)b->kv_layer_blocks * per_block)) != cudaSuccess) {
        b->kv = NULL;
        char what[160];
        snprintf(what, sizeof what, "cannot allocate %lld KV blocks (%llu bytes; %zu free)",
                 (long long)n, (unsigned long long)((uint64_t)n * per_block), free_b);
        return cu_err(e, rc, what);
    }
    CU_CHECK(cudaMemset(b->kv, 0, (size_t)b->kv_layer_blocks * per_block));
    b->st.n_blocks = (int32_t)n;
    b->st.kv_bytes = (uint64_t)b->kv_layer_blocks * per_block;
    b->st.kv_dtype = b->o.kv_dtype;
    return 0;
}

/* Weights + scratch + one KV block must fit what the device has free. */
static int check_fit(struct backend *b, uint64_t weights, uint64_t scratch, struct err *e)
{
    size_t free_b = 0, total = 0;
    cudaError_t rc = cudaMemGetInfo(&free_b, &total);
    if (rc != cudaSuccess) return cu_err(e, rc, "cannot read the device's free memory");
    size_t esize = b->o.kv_dtype == DT_BF16 ? 2 : 4;
    uint64_t block = (uint64_t)b->o.block_size * (uint64_t)config_kv_width(b->c) * esize *
                     (uint64_t)b->c->n_layers;
    char dev[160];
    snprintf(dev, sizeof dev, "device %d (%s)", b->dev.ordinal, b->dev.name);
    return wl_check_fit(dev, free_b, weights, scratch, block * (b->fast ? 2 : 1), e);
}

/* The fast numerics: paths and plan, fit, weights, KV pool, step buffers, graphs. */
static int set_up_fast(struct backend *b, struct err *e)
{
    if (cf_setup(b, e) != 0) return -1;
    if (check_fit(b, cf_model_bytes(b), cf_bufs_bytes(b), e) != 0) return -1;
    if (cf_model_fill(b, e) != 0 || make_kv(b, e) != 0 || cf_setup_step(b, e) != 0) return -1;
    b->st.weight_bytes = cf_model_bytes(b);
    CU_CHECK(cudaDeviceSynchronize());
    return cf_setup_graphs(b, e);
}

static int set_up_ref(struct backend *b, struct err *e)
{
    const struct backend_opts *o = &b->o;
    cu_model_plan(&b->w, b->m, b->nccl ? &b->shard : NULL);
    wl_scratch_plan(b->c, o->max_tokens, o->max_logits, &b->at);
    if (check_fit(b, b->w.plan.total, b->at.bytes, e) != 0) return -1;
    if (cu_model_upload(&b->w, b->m, o->progress, e) != 0) return -1;
    if (make_scratch(b, e) != 0 || make_kv(b, e) != 0) return -1;
    b->st.weight_bytes = b->w.plan.total;
    return 0;
}

/* Several ranks: this rank's part of the model, the ranks' NCCL communicator (joined over the
 * host one: every rank calls this together), and the state of the logits gather (tensor
 * parallel) or of the experts' exchange (expert parallel). */
static int set_up_ranks(struct backend *b, struct comm *host, int dense, struct err *e)
{
    if (cu_shard_make(b->m, host->rank, host->size, dense, &b->shard, e) != 0) return -1;
    if (!(b->nccl = comm_nccl_create(host, b->dev.ordinal, COLLECTIVE_TIMEOUT_S, e))) return -1;
    if (!dense) {
        b->ep = b->nccl;
        b->eps = cu_ep_create(host->size, host->rank, b->c->n_routed_experts);
        return 0;
    }
    b->tp = b->nccl;
    b->vcount = xcalloc((size_t)host->size, sizeof *b->vcount);
    size_t bytes = (size_t)b->o.max_logits * (size_t)b->c->vocab_size * sizeof(float);
    cudaError_t rc = cudaMalloc((void **)&b->gathered, bytes);
    if (rc != cudaSuccess) return b->gathered = NULL, cu_err(e, rc, "cannot allocate the logits gather");
    return 0;
}

/* Every rank says whether its GPU opened, so that one rank's failure ends every rank's create
 * with a message rather than leaving the others waiting in NCCL's set-up. -1 on every rank when
 * any failed (this rank's own message kept when it is the one). */
static int agree_opened(struct comm *host, int ok, struct err *e)
{
    int64_t mine = ok, *all = xcalloc((size_t)host->size, sizeof *all);
    struct err xe;
    int rc = comm_exchange(host, &mine, 1, all, &xe);
    if (rc != 0 && ok) *e = xe;
    for (int r = 0; rc == 0 && ok && r < host->size; r++)
        if (!all[r]) rc = err_set(e, "rank %d could not open its GPU", r);
    free(all);
    return ok ? rc : -1;
}

static int set_up(struct backend *b, int ordinal, struct err *e)
{
    int tp = b->o.tp_comm && b->o.tp_comm->size > 1, ep = b->o.ep_comm && b->o.ep_comm->size > 1;
    struct comm *host = tp ? b->o.tp_comm : ep ? b->o.ep_comm : NULL;
    int opened = cu_open(ordinal, &b->dev, e) == 0;
    if (host && agree_opened(host, opened, e) != 0) return -1;
    if (!opened) return -1;
    if (host && set_up_ranks(b, host, tp, e) != 0) return -1;
    cudaError_t rc = cudaStreamCreateWithFlags(&b->stream, cudaStreamNonBlocking);
    if (rc != cudaSuccess) return cu_err(e, rc, "cannot create a stream");
    /* numerics bf16 runs as ref: this backend has no BF16-input kernels */
    if ((b->o.numerics == NUMERICS_FAST ? set_up_fast(b, e) : set_up_ref(b, e)) != 0) return -1;
    cu_describe(&b->dev, b->st.device, sizeof b->st.device);
    /* the cache's memset ran on the default stream, which the step stream does not wait for */
    CU_CHECK(cudaDeviceSynchronize());
    return 0;
}

/* What several GPU ranks run: tensor or expert parallelism, not both at once, under the
 * reference numerics (auto's choice there); -1 with a message for the rest. */
static int check_parallel(struct backend_opts *o, struct err *e)
{
    int tp = o->tp_comm && o->tp_comm->size > 1, ep = o->ep_comm && o->ep_comm->size > 1;
    if (tp && ep)
        return err_set(e, "tensor and expert parallelism together are not implemented yet");
    if ((tp || ep) && o->numerics == NUMERICS_FAST)
        return err_set(e, "numerics fast runs on one GPU; %s parallelism over GPUs computes with "
                          "numerics ref (or auto)", tp ? "tensor" : "expert");
    if ((tp || ep) && o->numerics == NUMERICS_AUTO) o->numerics = NUMERICS_REF;
    return 0;
}

static struct backend *cuda_create(const struct model *m, const struct backend_opts *o,
                                   struct err *e)
{
    struct backend_opts ro = *o;
    if (check_parallel(&ro, e) != 0) {
        err_prefix(e, "backend cuda");
        return NULL;
    }
    ro.numerics = backend_numerics(backend_cuda(), m, ro.numerics);
    o = &ro;
    if (cu_check_opts(m, o, e) != 0) {
        err_prefix(e, "backend cuda");
        return NULL;
    }
    struct backend *b = xcalloc(1, sizeof *b);
    b->m = m, b->c = &m->cfg, b->o = *o;
    b->o.devices = NULL; /* the caller's array need not outlive create */
    rope_init(&b->rope, b->c);
    route_cfg(b->c, &b->route);
    if (set_up(b, o->n_devices ? o->devices[0] : 0, e) != 0) {
        err_prefix(e, "backend cuda");
        cuda_destroy(b);
        return NULL;
    }
    backend_limits(m, o, b->st.n_blocks, &b->lim);
    if (o->sample_prefilter && !b->fast) backend_rowcands_init(&b->rc, o->max_logits, m->cfg.vocab_size);
    return b;
}

/* Every layer of each pair in one strided copy: a block's rows in all layers. */
static void cuda_copy_blocks(struct backend *b, const struct kvb_copy *c, int n)
{
    size_t pitch = (size_t)b->kv_layer_blocks * b->kv_block_bytes;
    CU_CHECK(cudaSetDevice(b->dev.ordinal)); /* the device is current per thread */
    for (int i = 0; i < n; i++)
        CU_CHECK(cudaMemcpy2DAsync((char *)b->kv + (size_t)c[i].dst * b->kv_block_bytes, pitch,
                                   (char *)b->kv + (size_t)c[i].src * b->kv_block_bytes, pitch,
                                   b->kv_block_bytes, (size_t)b->c->n_layers,
                                   cudaMemcpyDeviceToDevice, b->stream));
}

static double seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static int cuda_forward(struct backend *b, const struct batch *bt, float *logits, struct err *e)
{
    double t0 = seconds();
    CU_CHECK(cudaSetDevice(b->dev.ordinal)); /* the device is current per thread */
    if (b->ep && bt->n_seqs == 0) return cu_forward_idle(b, e); /* the others' rows only */
    int rc = b->fast ? cf_forward(b, bt, logits, NULL, e) : cu_forward(b, bt, logits, e);
    if (rc == 0) b->st.steps++, b->st.t_forward += seconds() - t0;
    return rc;
}

/* Fast numerics: the rows are pre-filtered on the device and stay there; ref: on the host. */
static int cuda_forward_cands(struct backend *b, const struct batch *bt, struct smp_cands *cands,
                              struct err *e)
{
    if (!b->o.sample_prefilter) return err_set(e, "the backend was not made for pre-filtered rows");
    double t0 = seconds();
    CU_CHECK(cudaSetDevice(b->dev.ordinal));
    if (b->ep && bt->n_seqs == 0) return cu_forward_idle(b, e);
    int rc = b->fast ? cf_forward(b, bt, NULL, cands, e) : cu_forward(b, bt, b->rc.rows, e);
    if (rc != 0) return rc;
    if (!b->fast) {
        backend_rowcands_fill(&b->rc, batch_n_logits(bt), cands);
        b->st.cand_rows += (uint64_t)batch_n_logits(bt);
    }
    b->st.steps++, b->st.t_forward += seconds() - t0;
    return 0;
}

static void cuda_fetch_row(struct backend *b, int row, float *out)
{
    if (b->fast) {
        CU_CHECK(cudaSetDevice(b->dev.ordinal));
        cf_fetch_row(b, row, out);
        return;
    }
    memcpy(out, b->rc.rows + (size_t)row * (size_t)b->rc.V, (size_t)b->rc.V * sizeof *out);
    b->st.fetched_rows++;
}

static void cuda_stats(const struct backend *b, struct backend_stats *out)
{
    *out = b->st;
}

static int cuda_usable(char *why, size_t n_why)
{
    return cu_usable(why, n_why);
}

const struct backend_ops *backend_cuda(void)
{
    static const struct backend_ops ops = {
        .name = "cuda", .usable = cuda_usable, .supports = cu_supports, .create = cuda_create,
        .destroy = cuda_destroy,
        .copy_blocks = cuda_copy_blocks, .forward = cuda_forward, .stats = cuda_stats,
        .forward_cands = cuda_forward_cands, .fetch_row = cuda_fetch_row};
    return &ops;
}
