/* dev_fast_moe: the MoE plumbing and the sampling pre-filter of the fast numerics on a GPU — the
 * grouped expert GEMMs (CUTLASS and k_gemm8_grouped) against nm_matmul_fp8 per group over random
 * routings, all tokens on one expert and empty groups; the device permutation against
 * mp_grouped_build, the combine against cpu_axpy's order, the pre-filter against smp_prefilter,
 * the synthetic-weight fills against the host's hash. Tolerances: GEMMs as dev_fast_gemm.c says
 * (2^-9 Σ|terms|); everything else exact, but the pre-filter's outside mass (SMP_CAND_MASS_ERR
 * relative, the bound smp_sample_candidates assumes). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cuda/cu_dev.h"
#include "cuda/cutlass_fp8.h"
#include "cuda/kfast.h"
#include "engine/cpu/cpu_ops.h"
#include "engine/cpu/numerics.h"
#include "engine/model/synth.h"
#include "engine/plan/fastlayout.h"
#include "engine/plan/moeplan.h"
#include "engine/sampler_cand.h"
#include "tests/cuda/dev_util.h"

static const int32_t *gat(const struct mp_grouped *g, size_t off)
{
    return g->buf + off;
}

/* Token t's k distinct experts, ascending: random, or (one = 1) expert 0 then random others. */
static int32_t *routing(int T, int k, int E, int one)
{
    int32_t *sel = malloc((size_t)T * k * sizeof *sel);
    for (int t = 0; t < T; t++) {
        int32_t *s = sel + (size_t)t * k;
        for (int j = 0; j < k; j++) {
            int32_t e;
            int dup;
            do {
                e = one && j == 0 ? 0 : (int32_t)(dev_rnd32() % (uint32_t)E);
                dup = 0;
                for (int i = 0; i < j; i++) dup |= s[i] == e;
            } while (dup);
            s[j] = e;
        }
        for (int j = 1; j < k; j++)
            for (int i = j; i > 0 && s[i] < s[i - 1]; i--) {
                int32_t x = s[i];
                s[i] = s[i - 1], s[i - 1] = x;
            }
    }
    return sel;
}

static uint8_t *rcodes(size_t n)
{
    uint8_t *c = malloc(n ? n : 1);
    for (size_t i = 0; i < n; i++) c[i] = (uint8_t)(dev_rnd32() % 0x7e) | (uint8_t)(dev_rnd32() & 0x80);
    return c;
}

static struct weight rweight(int64_t n, int64_t k)
{
    struct weight w = {.name = "e", .dtype = DT_F8E4M3, .rows = n, .cols = k, .block_rows = 128, .block_cols = 128};
    size_t ng = (size_t)((n + 127) / 128 * ((k + 127) / 128));
    float *g = malloc(ng * 4);
    for (size_t i = 0; i < ng; i++) g[i] = 1e-3f * (1.5f + dev_rnd(1.0f));
    w.data = rcodes((size_t)(n * k)), w.scale = g;
    return w;
}

/* Device arrays of the E weights in layout order, and the pointer arrays. */
struct experts {
    int E;
    struct weight *w;
    struct fl_fp8 l;
    uint8_t **dw;
    float **dg;
    uint8_t **d_wp;   /* device array of dw */
    float **d_gp;
};

static void experts_make(struct experts *x, int E, int64_t n, int64_t k, enum fl_order order)
{
    x->E = E, x->w = calloc((size_t)E, sizeof *x->w);
    x->dw = calloc((size_t)E, sizeof *x->dw), x->dg = calloc((size_t)E, sizeof *x->dg);
    for (int e = 0; e < E; e++) {
        x->w[e] = rweight(n, k);
        fl_fp8_plan(&x->l, &x->w[e], NULL, order, 1);
        uint8_t *c = malloc(fl_code_bytes(&x->l));
        float *g = malloc(fl_scale_bytes(&x->l));
        fl_fill_codes(&x->l, 0, fl_code_bytes(&x->l), c), fl_fill_scales(&x->l, 0, fl_scale_bytes(&x->l), g);
        x->dw[e] = dev_alloc(c, fl_code_bytes(&x->l)), x->dg[e] = dev_alloc(g, fl_scale_bytes(&x->l));
        free(c), free(g);
    }
    x->d_wp = dev_alloc(x->dw, (size_t)E * sizeof *x->dw), x->d_gp = dev_alloc(x->dg, (size_t)E * sizeof *x->dg);
}

static void experts_free(struct experts *x)
{
    for (int e = 0; e < x->E; e++) {
        free((void *)x->w[e].data), free((void *)x->w[e].scale);
        cudaFree(x->dw[e]), cudaFree(x->dg[e]);
    }
    cudaFree(x->d_wp), cudaFree(x->d_gp);
    free(x->w), free(x->dw), free(x->dg);
}

/* The worst error over the real rows of y [rows][ldy] against each group's expert. */
static double grouped_err(const struct experts *x, const struct mp_grouped *g, const uint8_t *hq,
                          const float *hs, int64_t k, const float *y, int64_t ldy)
{
    const int32_t *off = gat(g, g->offset), *cnt = gat(g, g->count);
    int64_t G = (k + 127) / 128;
    double worst = 0;
    for (int e = 0; e < x->E; e++)
        if (cnt[e])
            worst = fmax(worst, dev_fp8_err(&x->w[e], hq + (size_t)off[e] * k, hs + (size_t)off[e] * G, cnt[e],
                                            y + (size_t)off[e] * ldy, ldy));
    return worst;
}

/* Grouped GEMMs of T tokens × k choices over E experts of [n][kk]. */
static void test_grouped(int E, int64_t n, int64_t kk, int T, int k, int one)
{
    int32_t *sel = routing(T, k, E, one);
    struct mp_grouped g = {0};
    if (mp_grouped_build(&g, sel, T, k, E, 0, 16) != 0) {
        dev_report("grouped", "mp_grouped_build failed", INFINITY);
        free(sel);
        return;
    }
    int R = g.n_rows, G = (int)((kk + 127) / 128);
    const int32_t *off = gat(&g, g.offset), *row_tok = gat(&g, g.row_tok);
    int64_t kp = (kk + 15) / 16 * 16;
    /* the tokens' quantised rows, gathered on the host (padding rows zero) */
    float *xs = dev_rvec((size_t)T * kk, 3.0f);
    uint8_t *tq = malloc((size_t)T * kk), *hq = calloc((size_t)R * kk + 1, 1), *dq_h = calloc((size_t)R * kp + 1, 1);
    float *ts = malloc((size_t)T * G * 4), *hs = calloc((size_t)R * G + 1, 4), *hs_g = calloc((size_t)R * G + 1, 4);
    nm_quant_1x128(xs, kk, T, kk, tq, ts);
    for (int r = 0; r < R; r++) {
        if (row_tok[r] < 0) continue;
        memcpy(hq + (size_t)r * kk, tq + (size_t)row_tok[r] * kk, (size_t)kk);
        memcpy(dq_h + (size_t)r * kp, tq + (size_t)row_tok[r] * kk, (size_t)kk);
        memcpy(hs + (size_t)r * G, ts + (size_t)row_tok[r] * G, (size_t)G * 4);
    }
    for (int e = 0; e < E; e++) /* KQ_GROUPED: group e's scales [G][m_e] at off[e] · G */
        for (int r = off[e]; r < off[e + 1]; r++)
            for (int b = 0; b < G; b++) hs_g[(size_t)off[e] * G + (size_t)b * (off[e + 1] - off[e]) + (r - off[e])] = hs[(size_t)r * G + b];
    int32_t *d_off = dev_alloc(off, ((size_t)E + 1) * 4), *d_rt = dev_alloc(row_tok, (size_t)R * 4);
    char shape[80];
    snprintf(shape, sizeof shape, "%dx[%lldx%lld] T=%d k=%d%s", E, (long long)n, (long long)kk, T, k, one ? " one" : "");
    for (int path = 0; path < 2; path++) {
        struct experts x;
        char why[160] = "";
        struct kcut *cut = NULL;
        if (path == 1) {
            if (kk % 128 || n % 128) continue;
            cut = kcut_create(E, n, kk, why, sizeof why);
            if (!cut) {
                printf("grouped_cut  %s: %s\n", shape, why);
                dev_report("grouped_cut", "kcut_create", INFINITY);
                continue;
            }
        }
        experts_make(&x, E, n, kk, path ? FL_KN : FL_NK);
        int64_t ldy = path ? n : x.l.n_pad;
        uint8_t *dq = dev_alloc(path ? hq : dq_h, path ? (size_t)R * kk : (size_t)R * kp);
        float *ds = dev_alloc(path ? hs_g : hs, (size_t)R * G * 4), *dy = dev_alloc(NULL, (size_t)R * ldy * 4);
        if (path) {
            CU_CHECK(kcut_run(cut, d_off, dq, ds, (const uint8_t *const *)x.d_wp, (const float *const *)x.d_gp, dy, ldy, 0));
        } else {
            struct kgemm8g p = {.w = (const uint8_t *const *)x.d_wp, .ws = (const float *const *)x.d_gp,
                                .ws_ld = x.l.s_ld, .n_out = n, .k = kk, .k_pad = kp, .offset = d_off,
                                .row_tok = d_rt, .n_groups = E, .rows = R, .x = dq, .xs = ds, .y = dy, .ldy = ldy};
            CU_CHECK(k_gemm8_grouped(&p, 0));
        }
        float *y = dev_host(dy, (size_t)R * ldy * 4);
        dev_report(path ? "grouped_cut" : "grouped_simt", shape, grouped_err(&x, &g, hq, hs, kk, y, ldy));
        free(y);
        cudaFree(dq), cudaFree(ds), cudaFree(dy);
        experts_free(&x);
        kcut_destroy(cut);
    }
    cudaFree(d_off), cudaFree(d_rt);
    free(sel), free(xs), free(tq), free(hq), free(dq_h), free(ts), free(hs), free(hs_g);
    mp_grouped_free(&g);
}

/* k_moe_plan against mp_grouped_build, every array exactly; then the combine over that plan. */
static void test_plan_combine(int T, int k, int E, int shared, int D)
{
    int32_t *sel = routing(T, k, E, 0);
    struct mp_grouped g = {0};
    mp_grouped_build(&g, sel, T, k, E, shared, 16);
    int G = E + shared, maxr = mp_grouped_max_rows(T, k, E, shared, 16), kk = k + shared;
    int32_t *d_sel = dev_alloc(sel, (size_t)T * k * 4), *d_cnt = dev_alloc(NULL, (size_t)G * 4);
    int32_t *d_off = dev_alloc(NULL, ((size_t)G + 1) * 4), *d_rt = dev_alloc(NULL, (size_t)maxr * 4);
    int32_t *d_tr = dev_alloc(NULL, (size_t)T * kk * 4);
    CU_CHECK(k_moe_plan(d_sel, T, k, E, shared, 16, maxr, d_cnt, d_off, d_rt, d_tr, 0));
    int32_t *cnt = dev_host(d_cnt, (size_t)G * 4), *off = dev_host(d_off, ((size_t)G + 1) * 4);
    int32_t *rt = dev_host(d_rt, (size_t)maxr * 4), *tr = dev_host(d_tr, (size_t)T * kk * 4);
    int bad = memcmp(cnt, gat(&g, g.count), (size_t)G * 4) || memcmp(off, gat(&g, g.offset), ((size_t)G + 1) * 4) ||
              memcmp(tr, gat(&g, g.tok_row), (size_t)T * kk * 4);
    for (int r = 0; r < maxr; r++) bad |= rt[r] != (r < g.n_rows ? gat(&g, g.row_tok)[r] : -1);
    char shape[64];
    snprintf(shape, sizeof shape, "T=%d k=%d E=%d%s", T, k, E, shared ? " +shared" : "");
    dev_report("moe_plan", shape, bad ? INFINITY : 0);

    /* the combine over the host plan's rows */
    float *y = dev_rvec((size_t)maxr * D, 2.0f), *selw = dev_rvec((size_t)T * k, 1.0f), *ysh = dev_rvec((size_t)T * D, 1.0f);
    float *want = calloc((size_t)T * D, 4);
    const int32_t *htr = gat(&g, g.tok_row);
    for (int t = 0; t < T; t++) {
        float *o = want + (size_t)t * D;
        for (int j = 0; j < k; j++) cpu_axpy(o, selw[t * k + j], y + (size_t)htr[t * kk + j] * D, D);
        if (shared) cpu_axpy(o, 1.0f, y + (size_t)htr[t * kk + k] * D, D);
        else cpu_axpy(o, 1.0f, ysh + (size_t)t * D, D);
    }
    float *dy = dev_alloc(y, (size_t)maxr * D * 4), *dw = dev_alloc(selw, (size_t)T * k * 4);
    float *dsh = dev_alloc(ysh, (size_t)T * D * 4), *dout = dev_alloc(NULL, (size_t)T * D * 4);
    int32_t *dtr = dev_alloc(htr, (size_t)T * kk * 4);
    CU_CHECK(k_combine_rows(dy, dtr, dw, k, shared, shared ? NULL : dsh, T, D, dout, 0));
    float *got = dev_host(dout, (size_t)T * D * 4);
    snprintf(shape, sizeof shape, "T=%d k=%d D=%d%s", T, k, D, shared ? " shared group" : " shared apart");
    dev_report("combine", shape, dev_worst(got, want, NULL, (size_t)T * D));
    free(sel), free(cnt), free(off), free(rt), free(tr), free(y), free(selw), free(ysh), free(want), free(got);
    cudaFree(d_sel), cudaFree(d_cnt), cudaFree(d_off), cudaFree(d_rt), cudaFree(d_tr);
    cudaFree(dy), cudaFree(dw), cudaFree(dsh), cudaFree(dout), cudaFree(dtr);
    mp_grouped_free(&g);
}

/* The pre-filter: rows of random logits with ties, NaN, ±inf and flat tails. */
static void test_sample_prep(int rows, int V)
{
    float *l = malloc((size_t)rows * V * 4);
    for (int r = 0; r < rows; r++)
        for (int i = 0; i < V; i++) {
            float v = r % 3 == 1 ? (float)(dev_rnd32() % 7) : dev_rnd(12.0f); /* row 1 mod 3: heavy ties */
            uint32_t u = dev_rnd32() % 1000;
            l[(size_t)r * V + i] = u == 0 ? NAN : u == 1 ? -INFINITY : u == 2 && r % 4 == 2 ? INFINITY : v;
        }
    struct ksample p = {.rows = rows, .V = V};
    p.logits = dev_alloc(l, (size_t)rows * V * 4);
    p.ids = dev_alloc(NULL, (size_t)rows * SMP_CAND_K * 4), p.vals = dev_alloc(NULL, (size_t)rows * SMP_CAND_K * 4);
    p.out_max = dev_alloc(NULL, (size_t)rows * 4), p.out_mass = dev_alloc(NULL, (size_t)rows * 8);
    p.n_finite = dev_alloc(NULL, (size_t)rows * 4);
    CU_CHECK(k_sample_prep(&p, 0));
    int32_t *ids = dev_host(p.ids, (size_t)rows * SMP_CAND_K * 4), *fin = dev_host(p.n_finite, (size_t)rows * 4);
    float *vals = dev_host(p.vals, (size_t)rows * SMP_CAND_K * 4), *omax = dev_host(p.out_max, (size_t)rows * 4);
    double *mass = dev_host(p.out_mass, (size_t)rows * 8), worst = 0;
    int32_t hid[SMP_CAND_K];
    float hv[SMP_CAND_K];
    for (int r = 0; r < rows; r++) {
        struct smp_cands c;
        smp_prefilter(l + (size_t)r * V, V, SMP_CAND_K, hid, hv, &c);
        int bad = fin[r] != c.n_finite || memcmp(&omax[r], &c.out_max, 4);
        for (int i = 0; i < c.n; i++) bad |= ids[r * SMP_CAND_K + i] != hid[i] || memcmp(&vals[r * SMP_CAND_K + i], &hv[i], 4);
        double e = c.out_mass == mass[r] ? 0 : fabs(mass[r] - c.out_mass) / (SMP_CAND_MASS_ERR * c.out_mass);
        if (bad || isnan(e)) e = INFINITY;
        worst = e > worst ? e : worst;
    }
    char shape[64];
    snprintf(shape, sizeof shape, "%d rows x %d", rows, V);
    dev_report("sample_prep", shape, worst);
    free(l), free(ids), free(fin), free(vals), free(omax), free(mass);
    cudaFree((void *)p.logits), cudaFree(p.ids), cudaFree(p.vals), cudaFree(p.out_max), cudaFree(p.out_mass), cudaFree(p.n_finite);
}

/* Synthetic tensors on the device, bit for bit the host's. */
static void test_synth(enum synth_kind kind, int64_t rows, int64_t cols, int64_t pitch)
{
    int es = kind == SYNTH_FP8 ? 1 : kind == SYNTH_SCALE || kind == SYNTH_BIAS ? 4 : 2;
    struct ksynth t = {kind, 0x1234567887654321ull ^ (uint64_t)kind, synth_gain(kind, cols), rows, cols};
    void *d = dev_alloc(NULL, (size_t)(rows * pitch * es));
    CU_CHECK(k_synth_fill(&t, d, pitch, rows, 0));
    unsigned char *got = dev_host(d, (size_t)(rows * pitch * es)), *want = calloc((size_t)(rows * pitch), (size_t)es);
    for (int64_t r = 0; r < rows; r++)
        synth_fill(kind, t.key, t.gain, (uint64_t)(r * cols), (uint64_t)((r + 1) * cols), want + (size_t)(r * pitch * es));
    char shape[64];
    snprintf(shape, sizeof shape, "kind %d %lldx%lld", (int)kind, (long long)rows, (long long)cols);
    dev_report("synth_fill", shape, memcmp(got, want, (size_t)(rows * pitch * es)) ? INFINITY : 0);
    free(got), free(want);
    cudaFree(d);
}

void dev_fast_moe(void)
{
    /* V3's expert shapes with fewer experts (the host reference is the cost) */
    test_grouped(16, 4096, 7168, 16, 4, 0);    /* gate | up */
    test_grouped(32, 7168, 2048, 24, 8, 0);    /* down */
    test_grouped(16, 256, 256, 40, 4, 1);      /* every token on expert 0, most groups empty */
    test_grouped(8, 232, 160, 13, 2, 0);       /* odd fixture shapes: CUDA cores only */
    test_plan_combine(1, 8, 256, 1, 7168);
    test_plan_combine(300, 8, 256, 1, 7168);
    test_plan_combine(37, 6, 64, 0, 2048);
    test_plan_combine(5, 2, 8, 0, 160);
    test_sample_prep(7, 129280);
    test_sample_prep(5, 1000);
    test_sample_prep(3, 37);
    test_synth(SYNTH_FP8, 300, 7168, 7168), test_synth(SYNTH_FP8, 33, 232, 240);
    test_synth(SYNTH_SCALE, 56, 16, 16), test_synth(SYNTH_MATRIX, 129, 160, 160);
    test_synth(SYNTH_EMBED, 17, 7168, 7168), test_synth(SYNTH_NORM, 1, 7168, 7168), test_synth(SYNTH_BIAS, 1, 256, 256);
}
