/* dev_fast_gemm: the GEMMs and the MoE plumbing of the fast numerics on a GPU against the CPU
 * emulation — cuBLASLt's block-scaled FP8 GEMM (after the scale-layout probe) and k_gemm8 at
 * every dense V3 shape and odd ones, the grouped expert GEMMs (CUTLASS and k_gemm8_grouped) over
 * random routings with empty groups and all tokens on one expert, the device MoE permutation
 * (exactly mp_grouped_build), the combine (exactly cpu_axpy's order), the sampling pre-filter
 * (exactly smp_prefilter, the outside mass within SMP_CAND_MASS_ERR) and synthetic weights
 * (exactly the host's hash). */
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

static void test_dense(int64_t n, int64_t k, int T)
{
    struct weight w = fp8w(n, k);
    struct acts a = make_acts(T, k);
    char shape[64];
    snprintf(shape, sizeof shape, "%lldx%lld T=%d", (long long)n, (long long)k, T);
    for (int lt = 0; lt < 2; lt++) {
        if (lt && !blas.fp8_ok) continue;
        struct fl_fp8 l;
        fl_fp8_plan(&l, &w, NULL, lt && blas.w_kn ? FL_KN : FL_NK, lt ? blas.w_align : 1);
        uint8_t *dw, *dq;
        float *dg, *ds, *dy = dev_alloc(NULL, (size_t)(a.tp * l.n_pad) * 4);
        upload(&l, &dw, &dg);
        acts_dev(&a, lt ? blas.x_tg : 1, &dq, &ds);
        if (lt) {
            struct cb_fp8 op = {dw, dg, l.s_ld, l.n_pad, l.k_pad};
            if (cu_blas_fp8(&blas, &op, dq, ds, a.tp, dy, l.n_pad, 0) != 0) {
                dev_report("gemm_lt", shape, INFINITY);
                goto next;
            }
        } else {
            struct kgemm8 g = {dw, dg, l.s_ld, n, k, l.k_pad, dq, ds, T, dy, l.n_pad};
            CU_CHECK(k_gemm8(&g, 0));
        }
        float *y = dev_host(dy, (size_t)(a.tp * l.n_pad) * 4);
        dev_report(lt ? "gemm_lt" : "gemm_simt", shape, dev_fp8_err(&w, a.q, a.s, a.T, y, l.n_pad));
        free(y);
    next:
        cudaFree(dw), cudaFree(dg), cudaFree(dq), cudaFree(ds), cudaFree(dy);
    }
    free((void *)w.data), free((void *)w.scale), free(a.q), free(a.s);
}



void dev_fast_gemm(void)
{
    struct err e = {{0}};
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
        for (size_t t = 0; t < sizeof toks / sizeof toks[0]; t += s % 2 ? 2 : 1) test_dense(v3[s][0], v3[s][1], toks[t]);
    const int64_t odd[][2] = {{176, 160}, {192, 96}, {232, 160}, {160, 232}, {64, 160}};
    for (size_t s = 0; s < sizeof odd / sizeof odd[0]; s++) test_dense(odd[s][0], odd[s][1], 5);
    cu_blas_destroy(&blas);
}
