/* cu_graph: a fast-numerics step from the host's side — its plan (engine/plan/stepplan with fixed
 * capacities, and the MLA work lists) uploaded into buffers that never move, then the step run
 * eagerly or, for decode steps, replayed from the CUDA graph captured for its batch-size bucket
 * (engine/plan/graphplan: padded rows at position 0 of the null block, no logits). Capture and
 * replay run the same kernels with the same GEMM algorithms on the same buffers, so a replay gives
 * the bits of the same padded step run eagerly. */
#include <stdlib.h>
#include <string.h>

#include "cuda/cu_backend.h"

#define K(call) CU_CHECK(call)

enum { MLA_FIXED_COST = 1 }; /* an item's setup and partial output, in blocks */

/* The step plan of bt with the backend's fixed capacities, on the device. */
static void upload_plan(struct backend *b, const struct batch *bt)
{
    struct cu_fast *F = b->fast;
    sp_build_caps(&b->sp, bt, b->o.block_size, &b->rope, &F->caps);
    K(cudaMemcpyAsync(F->d_sp, b->sp.buf, b->sp.at.used, cudaMemcpyHostToDevice, b->stream));
}

/* The MLA work lists of the step, packed into the fixed layout the kernels read. */
static void upload_mla(struct backend *b, int T)
{
    struct cu_fast *F = b->fast;
    struct cf_bufs *f = &F->b;
    const int32_t *pos = sp_i32(&b->sp, b->sp.at.pos);
    for (int t = 0; t < T; t++) F->h_ctx[t] = pos[t] + 1;
    mla_build(&F->mla, F->h_ctx, T, b->o.block_size, f->n_ctas, MLA_FIXED_COST);
    size_t nb = (size_t)f->n_ctas + 1, np = (size_t)f->t_pad + 1, ni = (size_t)F->mla.n_items * MLA_ITEM;
    int32_t *pack = F->h_ctx + f->t_pad; /* staging after the contexts */
    memcpy(pack, mla_arr(&F->mla, F->mla.cta_begin), nb * 4);
    memcpy(pack + nb, mla_arr(&F->mla, F->mla.part_begin), ((size_t)T + 1) * 4);
    memcpy(pack + nb + np, mla_arr(&F->mla, F->mla.items), ni * 4);
    K(cudaMemcpyAsync(f->mla, pack, (nb + np + ni) * 4, cudaMemcpyHostToDevice, b->stream));
}

/* The whole step on the stream (the plans already uploaded). */
static void step_body(struct backend *b, int T, int n_logits, int dump)
{
    K(k_embed(&b->fast->w.embed, (const int32_t *)(const void *)(b->fast->d_sp + b->sp.at.tokens), T,
              b->fast->b.h, b->stream));
    cf_run_layers(b, T, dump);
    cf_run_head(b, n_logits, dump);
}

/* The step's n logits rows to the host whole, or their pre-filter (k_sample_prep) as cands. */
static void step_out(struct backend *b, int n, float *logits, struct smp_cands *cands)
{
    struct cu_fast *F = b->fast;
    struct cf_bufs *f = &F->b;
    int V = b->c->vocab_size;
    if (n && logits)
        K(cudaMemcpyAsync(logits, f->logits, (size_t)n * (size_t)V * sizeof(float), cudaMemcpyDeviceToHost, b->stream));
    if (n && cands) {
        struct ksample p = {f->logits, n, V, f->sp_ids, f->sp_vals, f->sp_max, f->sp_mass, f->sp_nfin};
        K(k_sample_prep(&p, b->stream));
        size_t nk = (size_t)n * SMP_CAND_K;
        K(cudaMemcpyAsync(F->hc_ids, f->sp_ids, nk * 4, cudaMemcpyDeviceToHost, b->stream));
        K(cudaMemcpyAsync(F->hc_vals, f->sp_vals, nk * 4, cudaMemcpyDeviceToHost, b->stream));
        K(cudaMemcpyAsync(F->hc_max, f->sp_max, (size_t)n * 4, cudaMemcpyDeviceToHost, b->stream));
        K(cudaMemcpyAsync(F->hc_mass, f->sp_mass, (size_t)n * 8, cudaMemcpyDeviceToHost, b->stream));
        K(cudaMemcpyAsync(F->hc_nfin, f->sp_nfin, (size_t)n * 4, cudaMemcpyDeviceToHost, b->stream));
    }
    K(cudaStreamSynchronize(b->stream));
    for (int i = 0; cands && i < n; i++)
        cands[i] = (struct smp_cands){.n_vocab = V, .n = V < SMP_CAND_K ? V : SMP_CAND_K,
                                      .ids = F->hc_ids + (size_t)i * SMP_CAND_K,
                                      .logits = F->hc_vals + (size_t)i * SMP_CAND_K, .out_max = F->hc_max[i],
                                      .out_mass = F->hc_mass[i], .n_finite = F->hc_nfin[i]};
    if (cands) b->st.cand_rows += (uint64_t)n;
}

int cf_forward(struct backend *b, const struct batch *bt, float *logits, struct smp_cands *cands,
               struct err *e)
{
    if (batch_check(bt, &b->lim, e) != 0) return -1;
    int T = bt->n_tokens, n = batch_n_logits(bt);
    if (!b->fast->dumping && cf_graph_step(b, bt)) return step_out(b, n, logits, cands), 0;
    upload_plan(b, bt);
    upload_mla(b, T);
    if (b->fast->dumping && cf_dump_step(b, e) != 0) return -1;
    step_body(b, T, n, b->fast->dumping);
    step_out(b, n, logits, cands);
    b->st.eager_steps++;
    return 0;
}

void cf_fetch_row(struct backend *b, int row, float *out)
{
    size_t V = (size_t)b->c->vocab_size;
    K(cudaMemcpy(out, b->fast->b.logits + (size_t)row * V, V * sizeof(float), cudaMemcpyDeviceToHost));
    b->st.fetched_rows++;
}

/* ---- graphs --------------------------------------------------------------------------------- */

/* A decode step of n rows, all padding (the capture's stand-in). */
static void padding_batch(struct backend *b, int n, struct batch *out)
{
    struct batch empty = {0, NULL, 0, NULL};
    gp_pad(&empty, n, b->st.n_blocks, &b->fast->pad);
    *out = b->fast->pad.batch;
}

int cf_graphs_capture(struct backend *b, struct err *e)
{
    struct cu_fast *F = b->fast;
    gp_buckets(b->o.max_logits < F->b.t_cap ? b->o.max_logits : F->b.t_cap, &F->buckets);
    F->padded = 1;
    if (b->o.graphs == 2) return 0; /* padded steps, run eagerly */
    F->graphs = xcalloc((size_t)F->buckets.n, sizeof *F->graphs);
    for (int i = F->buckets.n - 1; i >= 0; i--) { /* largest first */
        int n = F->buckets.size[i];
        struct batch bt;
        padding_batch(b, n, &bt);
        upload_plan(b, &bt);
        upload_mla(b, n);
        step_body(b, n, n, 0); /* warm: every GEMM shape's algorithm chosen outside the capture */
        cudaGraph_t g;
        cudaError_t rc = cudaStreamBeginCapture(b->stream, cudaStreamCaptureModeThreadLocal);
        if (rc == cudaSuccess) {
            step_body(b, n, n, 0);
            rc = cudaStreamEndCapture(b->stream, &g);
        }
        if (rc == cudaSuccess) rc = cudaGraphInstantiate(&F->graphs[i], g, 0), cudaGraphDestroy(g);
        if (rc != cudaSuccess) return cu_err(e, rc, "cannot capture the decode graphs");
    }
    K(cudaStreamSynchronize(b->stream));
    return 0;
}

void cf_graphs_free(struct backend *b)
{
    struct cu_fast *F = b->fast;
    for (int i = 0; F->graphs && i < F->buckets.n; i++)
        if (F->graphs[i]) cudaGraphExecDestroy(F->graphs[i]);
    free(F->graphs);
    F->graphs = NULL;
    F->padded = 0;
    gp_padded_free(&F->pad);
}

int cf_graph_step(struct backend *b, const struct batch *bt)
{
    struct cu_fast *F = b->fast;
    int bucket = F->padded ? gp_bucket_for(&F->buckets, bt) : 0, i = 0;
    if (!bucket) return 0;
    while (F->buckets.size[i] != bucket) i++;
    gp_pad(bt, bucket, b->st.n_blocks, &F->pad);
    upload_plan(b, &F->pad.batch);
    upload_mla(b, bucket);
    if (F->graphs) K(cudaGraphLaunch(F->graphs[i], b->stream));
    else step_body(b, bucket, bucket, 0); /* the real rows' logits come first, in order */
    if (F->graphs) b->st.graph_steps++;
    else b->st.eager_steps++;
    return 1;
}
