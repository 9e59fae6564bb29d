/* cu_fast_setup: setting up the fast numerics on the device — which GEMM paths run (cuBLASLt's
 * block-scaled FP8 once the probe found its scale layouts and every dense shape has an
 * algorithm; CUTLASS's grouped kernel for experts whose gate | up stack; CUDA cores otherwise),
 * the weights, the step buffers, the plans' fixed device buffers, the decode graphs. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cuda/cu_backend.h"
#include "engine/cpu/forward_fast.h"
#include "engine/model/synth.h"

/* Every dense FP8 linear's shape has a cuBLASLt algorithm at the smallest and largest step. */
static int lt_covers(struct backend *b)
{
    const struct model *m = b->m;
    int64_t t_max = (b->o.max_tokens + 15) / 16 * 16;
    for (int il = 0; il < m->cfg.n_layers; il++) {
        const struct layer *L = &m->layers[il];
        const struct weight *ws[] = {&L->q_a, &L->kv_a, &L->q_b, &L->q, &L->o, &L->gate, &L->up, &L->down,
                                     &L->sh_gate, &L->sh_up, &L->sh_down};
        for (size_t i = 0; i < sizeof ws / sizeof ws[0]; i++) {
            struct fl_fp8 l;
            if (!ws[i]->data || ws[i]->dtype != DT_F8E4M3) continue;
            fl_fp8_plan(&l, ws[i], NULL, FL_NK, 1);
            if (!cu_blas_fp8_supported(&b->fast->blas, l.n_pad, l.k_pad, 16) ||
                !cu_blas_fp8_supported(&b->fast->blas, l.n_pad, l.k_pad, t_max))
                return 0;
        }
    }
    return 1;
}

/* The grouped expert GEMMs on CUTLASS when gate | up stack (whole 128-row blocks). */
static void try_cutlass(struct backend *b, char *why, size_t n_why)
{
    const struct model_config *c = b->c;
    const struct layer *L = NULL;
    for (int il = 0; il < c->n_layers && !L; il++)
        if (b->m->layers[il].is_moe) L = &b->m->layers[il];
    int G = c->n_routed_experts + (c->n_shared_experts == 1);
    snprintf(why, n_why, "no MoE layer");
    if (!L) return;
    if (!fl_can_stack(&L->exp_gate[0], &L->exp_up[0])) {
        snprintf(why, n_why, "expert width %d is not whole 128-row blocks", c->moe_intermediate_size);
        return;
    }
    b->fast->cut_gu = kcut_create(G, 2 * (int64_t)c->moe_intermediate_size, c->hidden_size, why, n_why);
    if (b->fast->cut_gu)
        b->fast->cut_dn = kcut_create(G, c->hidden_size, c->moe_intermediate_size, why, n_why);
    if (!b->fast->cut_dn) kcut_destroy(b->fast->cut_gu), b->fast->cut_gu = NULL;
}

/* Chooses the paths; the note says which for the stats line. */
static int choose_paths(struct backend *b, int fp8, struct err *e)
{
    struct cu_fast *F = b->fast;
    char why[160] = "";
    if (cu_blas_create(&F->blas, e) != 0 || cu_blas_probe(&F->blas, b->stream, e) != 0) return -1;
    F->use_lt = fp8 && F->blas.fp8_ok && lt_covers(b);
    F->dense_cut = fp8 && !F->use_lt;
    if (fp8) try_cutlass(b, why, sizeof why);
    snprintf(F->note, sizeof F->note, "dense FP8 GEMMs on %s; experts on %s%s%s; MLA on %s",
             !fp8 ? "cuBLAS (BF16 checkpoint)" : F->use_lt ? "cuBLASLt"
                                                : "CUTLASS where it takes the shape, else CUDA cores",
             F->cut_gu ? "CUTLASS grouped FP8" : fp8 ? "CUDA cores (k_gemm8_grouped)" : "cuBLAS BF16",
             F->cut_gu || !fp8 ? "" : ": ", F->cut_gu || !fp8 ? "" : why,
             b->c->kv_lora_rank == 512 && b->c->qk_rope_head_dim == 64 && b->c->n_heads % 16 == 0
                 ? "tensor cores" : "CUDA cores");
    return 0;
}

int cf_setup(struct backend *b, struct err *e)
{
    b->fast = xcalloc(1, sizeof *b->fast);
    b->synthetic = synth_is(b->m, &b->synth_seed);
    int fp8 = ffw_check_model(b->m, e);
    if (fp8 < 0) return -1;
    if (b->synthetic && !fp8)
        return err_set(e, "a synthetic model on the GPU needs an FP8 config (quantization_config)");
    if (choose_paths(b, fp8, e) != 0 || cf_model_create(b, e) != 0) return -1;
    return 0;
}

/* The dense FP8 linears of every layer. */
static int dense_lins(struct backend *b, struct cf_lin **out)
{
    int n = 0;
    for (int il = 0; il < b->fast->w.n_layers; il++) {
        struct cf_layer *L = &b->fast->w.layers[il];
        struct cf_lin *ls[] = {&L->qa, &L->kva, &L->qb, &L->o, &L->gate, &L->up, &L->down};
        for (size_t i = 0; i < sizeof ls / sizeof ls[0]; i++)
            if (ls[i]->fp8 && ls[i]->codes) {
                if (out) out[n] = ls[i];
                n++;
            }
    }
    return n;
}

/* A CUTLASS GEMM of one group per dense shape it takes (the others stay on k_gemm8), the
 * offsets {0, t_pad} of every step size, each linear's two one-pointer arrays. */
int cf_dense_cut_setup(struct backend *b, struct err *e)
{
    struct cu_fast *F = b->fast;
    if (!F->dense_cut) return 0;
    int n = dense_lins(b, NULL), n_pairs = F->b.t_pad / 16;
    struct cf_lin **lins = xcalloc((size_t)n + 1, sizeof *lins);
    dense_lins(b, lins);
    F->cuts = xcalloc((size_t)n + 1, sizeof *F->cuts), F->cut_nk = xcalloc((size_t)n + 1, sizeof *F->cut_nk);
    void **ptrs = xcalloc(2 * (size_t)n + 1, sizeof *ptrs);
    int32_t *toff = xcalloc(2 * (size_t)n_pairs, sizeof *toff);
    for (int j = 0; j < n_pairs; j++) toff[2 * j + 1] = 16 * (j + 1);
    cudaError_t rc = cudaMalloc(&F->d_dense_ptrs, (2 * (size_t)n + 1) * sizeof *ptrs);
    if (rc == cudaSuccess) rc = cudaMalloc((void **)&F->d_toff, 2 * (size_t)n_pairs * sizeof *toff);
    for (int i = 0; i < n && rc == cudaSuccess; i++) {
        struct cf_lin *l = lins[i];
        int s = 0;
        while (s < F->n_cuts && (F->cut_nk[s][0] != l->n_pad || F->cut_nk[s][1] != l->k_pad)) s++;
        if (s == F->n_cuts) { /* a new shape; CUTLASS reads rows of exactly k codes */
            char why[160];
            F->cut_nk[s][0] = l->n_pad, F->cut_nk[s][1] = l->k_pad, F->n_cuts++;
            F->cuts[s] = l->k_pad == l->k ? kcut_create(1, l->n_pad, l->k_pad, why, sizeof why) : NULL;
        }
        struct kcut *c = F->cuts[s];
        ptrs[2 * i] = (void *)l->codes, ptrs[2 * i + 1] = (void *)l->scales;
        void **d = (void **)F->d_dense_ptrs + 2 * i;
        l->cut = c, l->d_w = (const uint8_t *const *)d, l->d_s = (const float *const *)(d + 1);
    }
    if (rc == cudaSuccess) rc = cudaMemcpy(F->d_dense_ptrs, ptrs, 2 * (size_t)n * sizeof *ptrs, cudaMemcpyHostToDevice);
    if (rc == cudaSuccess) rc = cudaMemcpy(F->d_toff, toff, 2 * (size_t)n_pairs * sizeof *toff, cudaMemcpyHostToDevice);
    free(lins), free(ptrs), free(toff);
    return rc == cudaSuccess ? 0 : cu_err(e, rc, "cannot set up the dense CUTLASS GEMMs");
}

void cf_dense_cut_free(struct cu_fast *F)
{
    for (int s = 0; s < F->n_cuts; s++) kcut_destroy(F->cuts[s]);
    free(F->cuts), free(F->cut_nk);
    if (F->d_dense_ptrs) cudaFree(F->d_dense_ptrs);
    if (F->d_toff) cudaFree(F->d_toff);
    F->cuts = NULL, F->cut_nk = NULL, F->n_cuts = 0, F->d_dense_ptrs = NULL, F->d_toff = NULL;
}

/* After the weights: the step buffers, the plans' device buffers, the dump directory. */
int cf_setup_step(struct backend *b, struct err *e)
{
    struct cu_fast *F = b->fast;
    if (cf_bufs_create(b, e) != 0 || cf_dense_cut_setup(b, e) != 0) return -1;
    /* tables: a step's sequences (at most one per token, per logits row) × the most blocks one
     * sequence can hold */
    int64_t blocks = (b->c->max_position_embeddings + b->o.block_size - 1) / b->o.block_size + 1;
    int64_t seqs = F->b.t_pad < F->b.l_cap ? F->b.t_pad : F->b.l_cap;
    if (blocks > b->st.n_blocks + 1) blocks = b->st.n_blocks + 1;
    F->caps = (struct sp_caps){F->b.t_pad, F->b.t_pad > F->b.l_cap ? F->b.t_pad : F->b.l_cap,
                               (int32_t)(seqs * blocks)};
    struct batch none = {0, NULL, 0, NULL};
    sp_build_caps(&b->sp, &none, b->o.block_size, &b->rope, &F->caps);
    F->d_sp_cap = b->sp.at.bytes;
    cudaError_t rc = cudaMalloc((void **)&F->d_sp, F->d_sp_cap);
    if (rc != cudaSuccess) return F->d_sp = NULL, cu_err(e, rc, "cannot allocate the step plan");
    if (b->o.sample_prefilter) {
        size_t L = (size_t)F->b.l_cap;
        F->hc_ids = xcalloc(L * SMP_CAND_K, sizeof *F->hc_ids), F->hc_vals = xcalloc(L * SMP_CAND_K, sizeof *F->hc_vals);
        F->hc_max = xcalloc(L, sizeof *F->hc_max), F->hc_mass = xcalloc(L, sizeof *F->hc_mass);
        F->hc_nfin = xcalloc(L, sizeof *F->hc_nfin);
    }
    F->h_ctx = xcalloc((size_t)(2 * F->b.t_pad + 2 + F->b.n_ctas + 1 + F->b.parts_max * MLA_ITEM), sizeof *F->h_ctx);
    if (b->o.dump_dir && sd_open(&F->dump, b->o.dump_dir, e) != 0) return -1;
    F->dumping = b->o.dump_dir != NULL;
    b->st.workspace_bytes = F->b.bytes + F->d_sp_cap + (F->cut_gu ? kcut_bytes(F->cut_gu) + kcut_bytes(F->cut_dn) : 0);
    for (int s = 0; s < F->n_cuts; s++) b->st.workspace_bytes += F->cuts[s] ? kcut_bytes(F->cuts[s]) : 0;
    snprintf(b->st.paths, sizeof b->st.paths, "%s", F->note);
    return 0;
}

/* Decode graphs, unless asked not to, dumping, or a step must read the device back (BF16 MoE). */
int cf_setup_graphs(struct backend *b, struct err *e)
{
    int bf16_moe = !b->fast->w.fp8 && b->c->n_routed_experts;
    if (!b->o.graphs || b->fast->dumping || bf16_moe) return 0;
    return cf_graphs_capture(b, e);
}

void cf_free(struct backend *b)
{
    struct cu_fast *F = b->fast;
    if (!F) return;
    cf_graphs_free(b);
    cf_bufs_free(&F->b);
    cf_model_free(&F->w);
    kcut_destroy(F->cut_gu), kcut_destroy(F->cut_dn);
    cf_dense_cut_free(F);
    cu_blas_destroy(&F->blas);
    mla_free(&F->mla);
    if (F->d_sp) cudaFree(F->d_sp);
    free(F->h_ctx);
    free(F->hc_ids), free(F->hc_vals), free(F->hc_max), free(F->hc_mass), free(F->hc_nfin);
    free(F);
    b->fast = NULL;
}
