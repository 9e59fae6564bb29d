/* dev_fast_gemm: the dense FP8 GEMMs of the fast numerics on a GPU against the CPU emulation
 * (nm_matmul_fp8, within 2^-9 Σ|terms|) at every dense V3 shape and odd ones, on every path a
 * linear can take: cuBLASLt's block-scaled GEMM (after the scale-layout probe), CUTLASS's kernel
 * with one group, and k_gemm8 in both grid orders and both activation-scale layouts. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cuda/cu_blas.h"
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

static struct cu_blas blas;

static uint8_t *codes(size_t n)
{
    uint8_t *c = malloc(n ? n : 1);
    for (size_t i = 0; i < n; i++) c[i] = (uint8_t)(dev_rnd32() % 0x7e) | (uint8_t)(dev_rnd32() & 0x80);
    return c;
}

/* A random FP8 weight [n][k] with a non-uniform 128×128 grid (host). */
static struct weight fp8w(int64_t n, int64_t k)
{
    struct weight w = {.name = "w", .dtype = DT_F8E4M3, .rows = n, .cols = k, .block_rows = 128, .block_cols = 128};
    size_t ng = (size_t)((n + 127) / 128 * ((k + 127) / 128));
    float *g = malloc(ng * 4);
    for (size_t i = 0; i < ng; i++) g[i] = 1e-3f * (1.5f + dev_rnd(1.0f));
    w.data = codes((size_t)(n * k)), w.scale = g;
    return w;
}

/* The device copy of w in the layout plan l. */
static void upload(const struct fl_fp8 *l, uint8_t **dw, float **dg)
{
    uint8_t *c = malloc(fl_code_bytes(l));
    float *g = malloc(fl_scale_bytes(l));
    fl_fill_codes(l, 0, fl_code_bytes(l), c), fl_fill_scales(l, 0, fl_scale_bytes(l), g);
    *dw = dev_alloc(c, fl_code_bytes(l)), *dg = dev_alloc(g, fl_scale_bytes(l));
    free(c), free(g);
}

/* T activation rows quantised on the host (codes, scales [t][g]) and padded for the device. */
struct acts {
    int T;
    int64_t k, kp, tp;
    uint8_t *q;   /* [T][k] */
    float *s;     /* [T][G] */
};

static struct acts make_acts(int T, int64_t k)
{
    struct acts a = {T, k, (k + 15) / 16 * 16, (T + 15) / 16 * 16, NULL, NULL};
    float *x = dev_rvec((size_t)T * k, 3.0f);
    a.q = malloc((size_t)T * k), a.s = malloc((size_t)T * ((k + 127) / 128) * 4);
    nm_quant_1x128(x, k, T, k, a.q, a.s);
    free(x);
    return a;
}

/* The activations on the device: codes [tp][kp], scales [t][g] (tg) or [g][tp]. */
static void acts_dev(const struct acts *a, int tg, uint8_t **dq, float **ds)
{
    int G = (int)((a->k + 127) / 128);
    uint8_t *q = calloc((size_t)(a->tp * a->kp), 1);
    float *s = calloc((size_t)(a->tp * G), 4);
    for (int t = 0; t < a->T; t++) {
        memcpy(q + t * a->kp, a->q + (size_t)t * a->k, (size_t)a->k);
        for (int g = 0; g < G; g++) s[tg ? t * G + g : g * a->tp + t] = a->s[t * G + g];
    }
    *dq = dev_alloc(q, (size_t)(a->tp * a->kp)), *ds = dev_alloc(s, (size_t)(a->tp * G) * 4);
    free(q), free(s);
}

/* The dense paths: 0 k_gemm8 (FL_NK grid, TG scales), 1 k_gemm8 (FL_KN, GT: the fallback beside
 * CUTLASS), 2 cuBLASLt (the probed layouts), 3 CUTLASS with one group (FL_KN, GT). */
static const char *const path_name[4] = {"gemm_simt", "gemm_simt_kn", "gemm_lt", "gemm_cut1"};

/* One path: 0 ran and y holds [tp][ldy], 1 the path is not available here. */
static int run_path(int path, const struct fl_fp8 *l, const struct acts *a, const uint8_t *dw,
                    const float *dg, const uint8_t *dq, const float *ds, float *dy, const char *shape)
{
    if (path == 2) {
        struct cb_fp8 op = {dw, dg, l->s_ld, l->n_pad, l->k_pad};
        if (cu_blas_fp8(&blas, &op, dq, ds, a->tp, dy, l->n_pad, 0) != 0) return dev_report(path_name[2], shape, INFINITY), 1;
        return 0;
    }
    if (path == 3) {
        char why[160];
        struct kcut *c = l->k_pad == l->k ? kcut_create(1, l->n_pad, l->k_pad, why, sizeof why) : NULL;
        if (!c) return printf("gemm_cut1    %s: CUTLASS does not take it\n", shape), 1;
        int32_t off[2] = {0, (int32_t)a->tp}, *d_off = dev_alloc(off, sizeof off);
        const void *pw[1] = {dw}, *pg[1] = {dg};
        void *d_pw = dev_alloc(pw, sizeof pw), *d_pg = dev_alloc(pg, sizeof pg);
        CU_CHECK(kcut_run(c, d_off, dq, ds, d_pw, d_pg, dy, l->n_pad, 0));
        CU_CHECK(cudaDeviceSynchronize());
        cudaFree(d_off), cudaFree(d_pw), cudaFree(d_pg);
        kcut_destroy(c);
        return 0;
    }
    struct kgemm8 g = {dw, dg, l->s_ld, l->n, l->k, l->k_pad, dq, ds, a->T, dy, l->n_pad, path == 1, path == 1 ? a->tp : 0};
    CU_CHECK(k_gemm8(&g, 0));
    return 0;
}

static void test_dense(int64_t n, int64_t k, int T)
{
    struct weight w = fp8w(n, k);
    struct acts a = make_acts(T, k);
    char shape[64];
    snprintf(shape, sizeof shape, "%lldx%lld T=%d", (long long)n, (long long)k, T);
    struct dev_fp8_ref ref;
    dev_fp8_ref_make(&ref, &w, a.q, a.s, a.T);
    for (int path = 0; path < 4; path++) {
        if (path == 2 && !blas.fp8_ok) continue;
        struct fl_fp8 l;
        int kn = path == 2 ? blas.w_kn : path != 0;
        fl_fp8_plan(&l, &w, NULL, kn ? FL_KN : FL_NK, path == 2 ? blas.w_align : 1);
        uint8_t *dw, *dq;
        float *dg, *ds, *dy = dev_alloc(NULL, (size_t)(a.tp * l.n_pad) * 4);
        upload(&l, &dw, &dg);
        acts_dev(&a, path == 2 ? blas.x_tg : path == 0, &dq, &ds);
        if (run_path(path, &l, &a, dw, dg, dq, ds, dy, shape) == 0) {
            float *y = dev_host(dy, (size_t)(a.tp * l.n_pad) * 4);
            dev_report(path_name[path], shape, dev_fp8_ref_err(&ref, y, l.n_pad));
            free(y);
        }
        cudaFree(dw), cudaFree(dg), cudaFree(dq), cudaFree(ds), cudaFree(dy);
    }
    dev_fp8_ref_free(&ref);
    free((void *)w.data), free((void *)w.scale), free(a.q), free(a.s);
}

void dev_fast_gemm(void)
{
    struct err e = {0};
    if (cu_blas_create(&blas, &e) != 0 || cu_blas_probe(&blas, 0, &e) != 0) {
        dev_report("cublas", e.msg, INFINITY);
        return;
    }
    printf("probe: %s\n", blas.probe_note);
    dev_report("lt_probe", blas.fp8_ok ? "a layout matched" : "no layout matched", blas.fp8_ok ? 0 : INFINITY);
    const int64_t v3[][2] = {{2112, 7168}, {24576, 1536}, {7168, 16384}, {36864, 7168}, {7168, 18432},
                             {4096, 7168}, {7168, 2048}};
    const int toks[] = {1, 3, 17, 64, 300};
    for (size_t s = 0; s < sizeof v3 / sizeof v3[0]; s++)
        for (size_t t = 0; t < sizeof toks / sizeof toks[0]; t += s % 2 ? 2 : 1)
            if (toks[t] < 300 || v3[s][1] <= 8192) /* the host reference is the cost (~1 GMAC/s) */
                test_dense(v3[s][0], v3[s][1], toks[t]);
    const int64_t odd[][2] = {{176, 160}, {192, 96}, {232, 160}, {160, 232}, {64, 160}};
    for (size_t s = 0; s < sizeof odd / sizeof odd[0]; s++) test_dense(odd[s][0], odd[s][1], 5);
    cu_blas_destroy(&blas);
}
