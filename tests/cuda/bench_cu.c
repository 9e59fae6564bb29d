/* bench_cu: the fast numerics' speed on a GPU (run by tests/cuda/device_check.sh, step bench). One
 * line per measurement, "what key=value ...", for the report's tables (docs/PERFORMANCE.md):
 *
 *   gemm    the dense FP8 linears of DeepSeek-V3 at every shape × T in 1 .. 4096, on cuBLASLt's
 *           block-scaled GEMM (when the probe found its layouts) and on CUTLASS's kernel with one
 *           group: µs, TFLOPS and % of the dense FP8 peak, weight TB/s; weights rotated over more
 *           than twice the L2 so it is not measured
 *   mla     split-KV latent attention, H = 128, 512 + 64, B sequences × context L: µs, TB/s of the
 *           cache read and % of the measured copy bandwidth, TFLOPS
 *   moe     one MoE layer's expert side at V3's shape (256 + 1 shared experts of 2048 × 7168,
 *           8 per token, random routing): permutation, gather, grouped gate | up, SwiGLU +
 *           quantise, grouped down, combine; µs, TB/s over the touched experts' bytes, TFLOPS
 *   decode  the backend end to end on a synthetic config (tests/fixtures/synthetic/v3-L8.json,
 *           weights generated on the device): a 4,096-token prefill, then decode steps at
 *           B = 1 .. 256 sequences of context 1,024 (graphs), without and with the logits rows
 *           copied to the host, against the step's bytes at the measured copy bandwidth
 *
 * usage: bench_cu [gemm] [mla] [moe] [decode CONFIG.json]   (no argument: gemm mla moe) */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cuda/cu_blas.h"
#include "cuda/cu_dev.h"
#include "cuda/cutlass_fp8.h"
#include "cuda/kfast.h"
#include "engine/backend.h"
#include "engine/model/synth.h"
#include "engine/plan/fastlayout.h"
#include "engine/plan/mlaplan.h"
#include "engine/plan/moeplan.h"
#include "tests/cuda/dev_util.h"

#define PEAK_FP8_TFLOPS 1979.0 /* H100/H200 SXM dense FP8 */

static double copy_gbps;

static int64_t up16(int64_t v)
{
    return (v + 15) / 16 * 16;
}

static void fill(int kind, uint64_t key, void *dst, int64_t rows, int64_t pitch)
{
    struct ksynth t = {kind, key, kind == SYNTH_SCALE ? 1e-3f : synth_gain((enum synth_kind)kind, pitch), rows, pitch};
    CU_CHECK(k_synth_fill(&t, dst, pitch, rows, 0));
}

static void *dmalloc(size_t n)
{
    void *p;
    CU_CHECK(cudaMalloc(&p, n ? n : 1));
    return p;
}

/* Milliseconds per call of fn over iters calls after warm ones (events on the null stream). */
typedef void (*bench_fn)(void *ctx, int i);
static double time_ms(bench_fn fn, void *ctx, int warm, int iters)
{
    cudaEvent_t a, b;
    CU_CHECK(cudaEventCreate(&a));
    CU_CHECK(cudaEventCreate(&b));
    for (int i = 0; i < warm; i++) fn(ctx, i);
    CU_CHECK(cudaEventRecord(a, 0));
    for (int i = 0; i < iters; i++) fn(ctx, i);
    CU_CHECK(cudaEventRecord(b, 0));
    CU_CHECK(cudaEventSynchronize(b));
    float ms = 0;
    CU_CHECK(cudaEventElapsedTime(&ms, a, b));
    cudaEventDestroy(a), cudaEventDestroy(b);
    return ms / iters;
}

/* ---- dense FP8 GEMMs ------------------------------------------------------------------------ */

enum { GP_LT, GP_CUT, GP_SIMT };
static const char *const gemm_path[] = {"cublaslt", "cutlass1", "k_gemm8"};

struct gemm_ctx {
    struct cu_blas *blas;
    struct fl_fp8 l;
    int copies;
    uint8_t **w;
    float **ws;
    void **d_ptrs;    /* CUTLASS: per copy a device array {codes, grid} */
    struct kcut *cut;
    int32_t *d_off;   /* {0, tp} */
    uint8_t *x;
    float *xs;
    float *y;
    int64_t T, tp;
    int path;
};

static void gemm_once(void *p, int i)
{
    struct gemm_ctx *g = p;
    int c = i % g->copies;
    if (g->path == GP_LT) {
        struct cb_fp8 op = {g->w[c], g->ws[c], g->l.s_ld, g->l.n_pad, g->l.k_pad};
        if (cu_blas_fp8(g->blas, &op, g->x, g->xs, g->tp, g->y, g->l.n_pad, 0) != 0) ERR_FATAL("cuBLASLt FP8 GEMM failed");
    } else if (g->path == GP_CUT) {
        void **d = (void **)g->d_ptrs[c];
        CU_CHECK(kcut_run(g->cut, g->d_off, g->x, g->xs, (const uint8_t *const *)d, (const float *const *)(d + 1), g->y,
                          g->l.n_pad, 0));
    } else {
        struct kgemm8 k = {g->w[c], g->ws[c], g->l.s_ld, g->l.n, g->l.k, g->l.k_pad, g->x, g->xs, (int)g->T, g->y,
                           g->l.n_pad, 1, g->tp};
        CU_CHECK(k_gemm8(&k, 0));
    }
}

static void bench_gemm_path(struct cu_blas *blas, int path);

static void bench_gemm(struct cu_blas *blas)
{
    printf("gemm_probe %s\n", blas->probe_note);
    if (blas->fp8_ok) bench_gemm_path(blas, GP_LT);
    bench_gemm_path(blas, GP_CUT);
}

/* Every dense V3 shape on one path (k_gemm8 where CUTLASS does not take a shape). */
static void bench_gemm_path(struct cu_blas *blas, int path)
{
    static const struct { const char *name; int64_t n, k; } shapes[] = {
        {"q_a+kv_a", 2112, 7168}, {"q_b", 24576, 1536}, {"o", 7168, 16384}, {"mlp_gate+up", 36864, 7168},
        {"mlp_down", 7168, 18432}, {"shared_gate+up", 4096, 7168}, {"shared_down", 7168, 2048}};
    static const int toks[] = {1, 16, 64, 128, 512, 1024, 2048, 4096};
    int l2 = 0;
    cudaDeviceGetAttribute(&l2, cudaDevAttrL2CacheSize, 0);
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        struct weight w = {.name = "w", .dtype = DT_F8E4M3, .rows = shapes[s].n, .cols = shapes[s].k, .block_rows = 128, .block_cols = 128};
        struct gemm_ctx g = {.blas = blas, .path = path};
        char why[160] = "";
        fl_fp8_plan(&g.l, &w, NULL, path != GP_LT || blas->w_kn ? FL_KN : FL_NK, path == GP_LT ? blas->w_align : 1);
        if (path == GP_CUT && !(g.cut = kcut_create(1, g.l.n_pad, g.l.k_pad, why, sizeof why))) {
            printf("gemm shape=%s CUTLASS does not take it (%s): k_gemm8\n", shapes[s].name, why);
            g.path = GP_SIMT;
        }
        size_t wb = fl_code_bytes(&g.l);
        g.copies = (int)((2 * (size_t)l2 + wb - 1) / wb) + 1;
        g.w = calloc((size_t)g.copies, sizeof *g.w), g.ws = calloc((size_t)g.copies, sizeof *g.ws);
        g.d_ptrs = calloc((size_t)g.copies, sizeof *g.d_ptrs);
        for (int c = 0; c < g.copies; c++) {
            g.w[c] = dmalloc(wb), g.ws[c] = dmalloc(fl_scale_bytes(&g.l));
            fill(SYNTH_FP8, 11 + c, g.w[c], g.l.n_pad, g.l.k_pad);
            fill(SYNTH_SCALE, 13 + c, g.ws[c], g.l.s_rows, g.l.s_ld);
            const void *pair[2] = {g.w[c], g.ws[c]};
            g.d_ptrs[c] = dev_alloc(pair, sizeof pair);
        }
        g.d_off = dmalloc(2 * sizeof(int32_t));
        int64_t kb = g.l.kb, tmax = 4096;
        g.x = dmalloc((size_t)(tmax * g.l.k_pad)), g.xs = dmalloc((size_t)(tmax * kb) * 4), g.y = dmalloc((size_t)(tmax * g.l.n_pad) * 4);
        fill(SYNTH_FP8, 17, g.x, tmax, g.l.k_pad), fill(SYNTH_SCALE, 19, g.xs, tmax, kb);
        for (size_t t = 0; t < sizeof toks / sizeof toks[0]; t++) {
            g.T = toks[t], g.tp = up16(g.T);
            int32_t off[2] = {0, (int32_t)g.tp};
            CU_CHECK(cudaMemcpy(g.d_off, off, sizeof off, cudaMemcpyHostToDevice));
            if (g.path == GP_SIMT && g.T > 128) break; /* CUDA cores: the small steps only */
            if (g.path == GP_LT && !cu_blas_fp8_supported(blas, g.l.n_pad, g.l.k_pad, g.tp)) {
                printf("gemm shape=%s n=%lld k=%lld T=%lld unsupported\n", shapes[s].name, (long long)shapes[s].n,
                       (long long)shapes[s].k, (long long)g.T);
                continue;
            }
            double ms = time_ms(gemm_once, &g, 3, 20), flops = 2.0 * shapes[s].n * shapes[s].k * g.T;
            printf("gemm path=%s shape=%s n=%lld k=%lld T=%lld us=%.1f TFLOPS=%.1f pct_peak=%.1f weight_TBps=%.2f\n",
                   gemm_path[g.path], shapes[s].name, (long long)shapes[s].n, (long long)shapes[s].k, (long long)g.T, ms * 1e3,
                   flops / (ms * 1e-3) / 1e12, 100 * flops / (ms * 1e-3) / 1e12 / PEAK_FP8_TFLOPS,
                   (double)wb / (ms * 1e-3) / 1e12);
            fflush(stdout);
        }
        for (int c = 0; c < g.copies; c++) cudaFree(g.w[c]), cudaFree(g.ws[c]), cudaFree(g.d_ptrs[c]);
        free(g.w), free(g.ws), free(g.d_ptrs);
        cudaFree(g.d_off);
        kcut_destroy(g.cut);
        cudaFree(g.x), cudaFree(g.xs), cudaFree(g.y);
    }
}

/* ---- MLA decode ----------------------------------------------------------------------------- */

static void mla_once(void *p, int i)
{
    (void)i;
    CU_CHECK(k_mla(p, 0, 0));
}

static void bench_mla(int B, int L, int n_ctas)
{
    enum { H = 128, DC = 512, DR = 64, W = DC + DR, BS = 64 };
    int per = (L + BS - 1) / BS, n_tab = B * per;
    int32_t *tables = malloc((size_t)n_tab * 4), *toff = malloc((size_t)B * 4), *ctx = malloc((size_t)B * 4);
    for (int i = 0; i < n_tab; i++) tables[i] = (int32_t)(((int64_t)i * 7919) % n_tab);
    for (int s = 0; s < B; s++) toff[s] = s * per, ctx[s] = L;
    struct mla_plan pl = {0};
    mla_build(&pl, ctx, B, BS, n_ctas, 1);
    struct kmla p = {.T = B, .H = H, .dc = DC, .dr = DR, .block_size = BS, .n_ctas = n_ctas, .scale = 0.0721f};
    uint16_t *cache = dmalloc((size_t)n_tab * BS * W * 2), *qf = dmalloc((size_t)B * H * W * 2);
    fill(SYNTH_MATRIX, 23, cache, (int64_t)n_tab * BS, W), fill(SYNTH_MATRIX, 29, qf, (int64_t)B * H, W);
    p.cache = cache, p.qfull = qf;
    p.tables = dev_alloc(tables, (size_t)n_tab * 4), p.table_off = dev_alloc(toff, (size_t)B * 4);
    p.cta_begin = dev_alloc(mla_arr(&pl, pl.cta_begin), (size_t)(n_ctas + 1) * 4);
    p.part_begin = dev_alloc(mla_arr(&pl, pl.part_begin), (size_t)(B + 1) * 4);
    p.items = dev_alloc(mla_arr(&pl, pl.items), (size_t)pl.n_items * MLA_ITEM * 4);
    p.part_o = dmalloc((size_t)pl.n_items * H * DC * 4), p.part_ml = dmalloc((size_t)pl.n_items * H * 2 * 4);
    p.ctx = dmalloc((size_t)B * H * DC * 2);
    double ms = time_ms(mla_once, &p, 3, 20), bytes = (double)B * L * W * 2, flops = 2.0 * B * H * L * (W + DC);
    printf("mla B=%d L=%d us=%.1f TBps=%.2f pct_copy=%.1f TFLOPS=%.1f\n", B, L, ms * 1e3, bytes / (ms * 1e-3) / 1e12,
           copy_gbps > 0 ? 100 * bytes / (ms * 1e-3) / 1e9 / copy_gbps : 0.0, flops / (ms * 1e-3) / 1e12);
    fflush(stdout);
    mla_free(&pl);
    free(tables), free(toff), free(ctx);
    cudaFree(cache), cudaFree(qf), cudaFree((void *)p.tables), cudaFree((void *)p.table_off);
    cudaFree((void *)p.cta_begin), cudaFree((void *)p.part_begin), cudaFree((void *)p.items);
    cudaFree(p.part_o), cudaFree(p.part_ml), cudaFree(p.ctx);
}

/* ---- the MoE layer's expert side ------------------------------------------------------------ */

enum { ME = 256, MK = 8, MF = 2048, MD = 7168, MG = ME + 1, TMAX = 4096 };

struct moe_ctx {
    struct kcut *gu, *dn;
    uint8_t **d_gu_w, **d_dn_w;  /* device arrays of MG pointers */
    float **d_gu_s, **d_dn_s;
    int32_t *sel, *count, *offset, *row_tok, *tok_row;
    float *selw, *egu, *eact, *ey, *out;
    struct kq_out x, xg, aq;
    int T, r_max;
};

static void moe_once(void *p, int i)
{
    struct moe_ctx *m = p;
    (void)i;
    CU_CHECK(k_moe_plan(m->sel, m->T, MK, ME, 1, 16, m->r_max, m->count, m->offset, m->row_tok, m->tok_row, 0));
    CU_CHECK(k_gather_q(&m->x, m->row_tok, m->r_max, &m->xg, 0));
    CU_CHECK(kcut_run(m->gu, m->offset, m->xg.q, m->xg.s, (const uint8_t *const *)m->d_gu_w,
                      (const float *const *)m->d_gu_s, m->egu, 2 * MF, 0));
    CU_CHECK(k_silu_quant(m->egu, 2 * MF, MF, m->r_max, MF, m->row_tok, m->eact, &m->aq, 0));
    CU_CHECK(kcut_run(m->dn, m->offset, m->aq.q, m->aq.s, (const uint8_t *const *)m->d_dn_w,
                      (const float *const *)m->d_dn_s, m->ey, MD, 0));
    CU_CHECK(k_combine_rows(m->ey, m->tok_row, m->selw, MK, 1, NULL, m->T, MD, m->out, 0));
}

static int32_t *random_routing(int T)
{
    int32_t *sel = malloc((size_t)T * MK * 4);
    for (int t = 0; t < T; t++) {
        int32_t *s = sel + (size_t)t * MK;
        for (int j = 0; j < MK; j++) {
            int dup;
            do {
                s[j] = (int32_t)(dev_rnd32() % ME), dup = 0;
                for (int i = 0; i < j; i++) dup |= s[i] == s[j];
            } while (dup);
        }
        for (int j = 1; j < MK; j++)
            for (int i = j; i > 0 && s[i] < s[i - 1]; i--) {
                int32_t x = s[i];
                s[i] = s[i - 1], s[i - 1] = x;
            }
    }
    return sel;
}

static void bench_moe(void)
{
    char why[160] = "";
    struct moe_ctx m = {0};
    m.gu = kcut_create(MG, 2 * MF, MD, why, sizeof why);
    m.dn = m.gu ? kcut_create(MG, MD, MF, why, sizeof why) : NULL;
    if (!m.dn) {
        printf("moe unavailable: CUTLASS: %s\n", why);
        kcut_destroy(m.gu);
        return;
    }
    uint8_t *hw[2][MG];
    float *hs[2][MG];
    for (int g = 0; g < MG; g++) { /* gate | up [4096][7168], FL_KN grid [56][32]; down [7168][2048], [16][56] */
        hw[0][g] = dmalloc((size_t)2 * MF * MD), hs[0][g] = dmalloc((size_t)(MD / 128) * (2 * MF / 128) * 4);
        hw[1][g] = dmalloc((size_t)MD * MF), hs[1][g] = dmalloc((size_t)(MF / 128) * (MD / 128) * 4);
        fill(SYNTH_FP8, 100 + g, hw[0][g], 2 * MF, MD), fill(SYNTH_SCALE, 400 + g, hs[0][g], MD / 128, 2 * MF / 128);
        fill(SYNTH_FP8, 700 + g, hw[1][g], MD, MF), fill(SYNTH_SCALE, 1000 + g, hs[1][g], MF / 128, MD / 128);
    }
    m.d_gu_w = dev_alloc(hw[0], sizeof hw[0]), m.d_gu_s = dev_alloc(hs[0], sizeof hs[0]);
    m.d_dn_w = dev_alloc(hw[1], sizeof hw[1]), m.d_dn_s = dev_alloc(hs[1], sizeof hs[1]);
    int rmax = mp_grouped_max_rows(TMAX, MK, ME, 1, 16);
    m.sel = dmalloc((size_t)TMAX * MK * 4), m.selw = dmalloc((size_t)TMAX * MK * 4);
    fill(SYNTH_BIAS, 31, m.selw, TMAX, MK);
    m.count = dmalloc(MG * 4), m.offset = dmalloc((MG + 1) * 4), m.row_tok = dmalloc((size_t)rmax * 4);
    m.tok_row = dmalloc((size_t)TMAX * (MK + 1) * 4);
    m.egu = dmalloc((size_t)rmax * 2 * MF * 4), m.eact = dmalloc((size_t)rmax * MF * 4);
    m.ey = dmalloc((size_t)rmax * MD * 4), m.out = dmalloc((size_t)TMAX * MD * 4);
    m.x = (struct kq_out){.fp8 = 1, .k = MD, .k_pad = MD, .layout = KQ_TG, .q = dmalloc((size_t)TMAX * MD),
                          .s = dmalloc((size_t)TMAX * (MD / 128) * 4)};
    fill(SYNTH_FP8, 37, m.x.q, TMAX, MD), fill(SYNTH_SCALE, 41, m.x.s, TMAX, MD / 128);
    m.xg = (struct kq_out){.fp8 = 1, .k = MD, .k_pad = MD, .layout = KQ_GROUPED, .q = dmalloc((size_t)rmax * MD),
                           .s = dmalloc((size_t)rmax * (MD / 128) * 4), .offset = m.offset, .n_groups = MG};
    m.aq = (struct kq_out){.fp8 = 1, .k = MF, .k_pad = MF, .layout = KQ_GROUPED, .q = dmalloc((size_t)rmax * MF),
                           .s = dmalloc((size_t)rmax * (MF / 128) * 4), .offset = m.offset, .n_groups = MG};
    static const int toks[] = {1, 8, 64, 256, 1024, 4096};
    double expert_bytes = 3.0 * MF * MD;
    for (size_t i = 0; i < sizeof toks / sizeof toks[0]; i++) {
        m.T = toks[i], m.r_max = mp_grouped_max_rows(m.T, MK, ME, 1, 16);
        int32_t *sel = random_routing(m.T);
        int touched = 0;
        char used[ME] = {0};
        for (int j = 0; j < m.T * MK; j++) touched += !used[sel[j]], used[sel[j]] = 1;
        CU_CHECK(cudaMemcpy(m.sel, sel, (size_t)m.T * MK * 4, cudaMemcpyHostToDevice));
        double ms = time_ms(moe_once, &m, 3, 10), bytes = (touched + 1) * expert_bytes;
        double flops = 2.0 * m.T * (MK + 1) * expert_bytes;
        printf("moe T=%d experts=%d us=%.1f TBps=%.2f pct_copy=%.1f TFLOPS=%.1f\n", m.T, touched + 1, ms * 1e3,
               bytes / (ms * 1e-3) / 1e12, copy_gbps > 0 ? 100 * bytes / (ms * 1e-3) / 1e9 / copy_gbps : 0.0,
               flops / (ms * 1e-3) / 1e12);
        fflush(stdout);
        free(sel);
    }
    for (int g = 0; g < MG; g++) cudaFree(hw[0][g]), cudaFree(hs[0][g]), cudaFree(hw[1][g]), cudaFree(hs[1][g]);
    void *bufs[] = {m.d_gu_w, m.d_gu_s, m.d_dn_w, m.d_dn_s, m.sel, m.selw, m.count, m.offset, m.row_tok, m.tok_row,
                    m.egu, m.eact, m.ey, m.out, m.x.q, m.x.s, m.xg.q, m.xg.s, m.aq.q, m.aq.s};
    for (size_t i = 0; i < sizeof bufs / sizeof bufs[0]; i++) cudaFree(bufs[i]);
    kcut_destroy(m.gu), kcut_destroy(m.dn);
}

/* ---- end to end on a synthetic model -------------------------------------------------------- */

enum { DBS = 64, DL = 1024, DMAXB = 256, DPER = DL / DBS + 5, PREFILL = 4096 }; /* 320 positions to decode into */

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return (double)t.tv_sec + 1e-9 * (double)t.tv_nsec;
}

/* Bytes one decode step of B sequences at context L reads: every weight but the routed experts,
 * the experts touched under uniform routing, and the latent cache. */
static double step_bytes(const struct model_config *c, uint64_t weight_bytes, int B, int L)
{
    int moe_layers = c->n_routed_experts ? c->n_layers - c->first_k_dense_replace : 0;
    double expert = 3.0 * c->moe_intermediate_size * c->hidden_size * (1.0 + 4.0 / (128.0 * 128.0));
    double routed = (double)moe_layers * c->n_routed_experts * expert;
    double touched = c->n_routed_experts * (1.0 - pow(1.0 - (double)c->n_experts_per_tok / c->n_routed_experts, B));
    double embed = (double)c->vocab_size * c->hidden_size * 2; /* rows read: B of them, negligible */
    return (double)weight_bytes - routed - embed + moe_layers * touched * expert +
           (double)B * L * config_kv_width(c) * 2.0 * c->n_layers;
}

static int fwd(struct backend *b, const struct batch *bt, float *logits)
{
    struct err e = {0};
    if (backend_cuda()->forward(b, bt, logits, &e) == 0) return 0;
    printf("decode forward failed: %s\n", e.msg);
    return -1;
}

/* B decode steps × n, every sequence one token at its next position; logits: 0 none, 1 the rows
 * whole to the host, 2 pre-filtered on the device (forward_cands). */
static double decode_ms(struct backend *b, int B, int32_t *pos, int32_t *tables, int n, int logits, float *out)
{
    static struct smp_cands cands[DMAXB];
    struct batch_seq *s = calloc((size_t)B, sizeof *s);
    int32_t *tok = calloc((size_t)B, 4);
    double t0 = 0;
    for (int it = -2; it < n; it++) {
        if (it == 0) t0 = now();
        for (int i = 0; i < B; i++) {
            s[i] = (struct batch_seq){i, 1, pos[i]++, tables + (size_t)i * DPER, logits ? BATCH_LOGITS_LAST : BATCH_LOGITS_NONE};
            tok[i] = (int32_t)((pos[i] * 2654435761u) % 4096u);
        }
        struct batch bt = {B, tok, B, s};
        struct err e = {0};
        if (logits == 2 ? backend_cuda()->forward_cands(b, &bt, cands, &e) != 0 && printf("decode: %s\n", e.msg)
                        : fwd(b, &bt, out) != 0)
            break;
    }
    double ms = (now() - t0) * 1e3 / n;
    free(s), free(tok);
    return ms;
}

static void bench_decode(const char *config)
{
    struct err e = {0};
    struct model *m = synth_load(config, 1, 0, 0, &e);
    if (!m) {
        printf("decode unavailable: %s\n", e.msg);
        return;
    }
    int32_t n_blocks = DMAXB * DPER + PREFILL / DBS + 1;
    struct backend_opts o = {.numerics = NUMERICS_FAST, .max_tokens = PREFILL, .max_logits = DMAXB,
                             .block_size = DBS, .kv_dtype = DT_BF16, .kv_blocks = n_blocks, .graphs = 1,
                             .sample_prefilter = 1};
    double t0 = now();
    struct backend *b = backend_cuda()->create(m, &o, &e);
    if (!b) {
        printf("decode unavailable: %s\n", e.msg);
        model_destroy(m);
        return;
    }
    struct backend_stats st;
    backend_cuda()->stats(b, &st);
    printf("decode_setup s=%.1f weight_GB=%.1f paths=\"%s\"\n", now() - t0, st.weight_bytes / 1e9, st.paths);
    int V = m->cfg.vocab_size;
    float *out = malloc((size_t)DMAXB * V * 4);
    int32_t *tables = malloc((size_t)DMAXB * DPER * 4), *pos = calloc(DMAXB, 4), *tok = malloc(PREFILL * 4);
    int32_t ptab[PREFILL / DBS];
    for (int i = 0; i < DMAXB * DPER; i++) tables[i] = i;
    for (int i = 0; i < PREFILL / DBS; i++) ptab[i] = DMAXB * DPER + i;
    for (int i = 0; i < PREFILL; i++) tok[i] = (int32_t)((i * 2654435761u) % 4096u);
    /* the 4,096-token prefill: one warm step, one timed */
    struct batch_seq ps = {0, PREFILL, 0, ptab, BATCH_LOGITS_LAST};
    struct batch pb = {PREFILL, tok, 1, &ps};
    if (fwd(b, &pb, out) == 0) {
        t0 = now();
        if (fwd(b, &pb, out) == 0) printf("prefill T=%d ms=%.1f tok_s=%.0f\n", PREFILL, (now() - t0) * 1e3, PREFILL / (now() - t0));
    }
    /* sequence 0's context, then copied to every other sequence's blocks */
    struct batch_seq s0 = {0, DL, 0, tables, BATCH_LOGITS_NONE};
    struct batch b0 = {DL, tok, 1, &s0};
    if (fwd(b, &b0, out) == 0) {
        struct kvb_copy *cp = malloc((size_t)DMAXB * DPER * sizeof *cp);
        int n = 0;
        for (int s = 1; s < DMAXB; s++)
            for (int i = 0; i < DL / DBS; i++) cp[n++] = (struct kvb_copy){i, s * DPER + i};
        backend_cuda()->copy_blocks(b, cp, n);
        free(cp);
        for (int s = 0; s < DMAXB; s++) pos[s] = DL;
        static const int bs[] = {1, 8, 32, 64, 128, 256};
        for (size_t i = 0; i < sizeof bs / sizeof bs[0]; i++) {
            uint64_t g0 = (backend_cuda()->stats(b, &st), st.graph_steps);
            double dev = decode_ms(b, bs[i], pos, tables, 10, 0, out), host = decode_ms(b, bs[i], pos, tables, 10, 1, out);
            double cand = decode_ms(b, bs[i], pos, tables, 10, 2, out);
            backend_cuda()->stats(b, &st);
            double roof = copy_gbps > 0 ? step_bytes(&m->cfg, st.weight_bytes, bs[i], DL) / (copy_gbps * 1e9) * 1e3 : 0;
            printf("decode B=%d L=%d ms=%.3f tok_s=%.0f ms_with_logits=%.3f ms_with_cands=%.3f roofline_ms=%.3f "
                   "x_roofline=%.2f graphs=%llu\n",
                   bs[i], DL, dev, bs[i] / (dev * 1e-3), host, cand, roof, roof > 0 ? dev / roof : 0.0,
                   (unsigned long long)(st.graph_steps - g0));
            fflush(stdout);
        }
    }
    free(out), free(tables), free(pos), free(tok);
    backend_cuda()->destroy(b);
    model_destroy(m);
}

int main(int argc, char **argv)
{
    char why[320];
    if (!cu_usable(why, sizeof why)) {
        printf("no usable GPU: %s\n", why);
        return 2;
    }
    int all = argc < 2, sms = 0;
    cudaDeviceGetAttribute(&sms, cudaDevAttrMultiProcessorCount, 0);
    copy_gbps = dev_copy_gbps();
    printf("copy_bandwidth_GBps %.1f sms=%d\n", copy_gbps, sms);
    for (int i = 1; i < argc || all; i++) {
        const char *w = all ? NULL : argv[i];
        if (all || strcmp(w, "gemm") == 0) {
            struct cu_blas blas;
            struct err e = {0};
            if (cu_blas_create(&blas, &e) != 0 || cu_blas_probe(&blas, 0, &e) != 0) {
                printf("gemm unavailable: %s\n", e.msg);
            } else {
                bench_gemm(&blas);
                cu_blas_destroy(&blas);
            }
        }
        if (all || strcmp(w, "mla") == 0) {
            static const int B[] = {1, 32, 64, 128, 256}, L[] = {1024, 4096};
            for (size_t l = 0; l < 2; l++)
                for (size_t j = 0; j < sizeof B / sizeof B[0]; j++) bench_mla(B[j], L[l], 2 * 132);
        }
        if (all || strcmp(w, "moe") == 0) bench_moe();
        if (!all && strcmp(w, "decode") == 0 && i + 1 < argc) bench_decode(argv[++i]);
        if (all) break;
    }
    return 0;
}
