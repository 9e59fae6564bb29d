/* dev_fast: the fast-numerics kernels against the CPU emulation (engine/cpu/numerics.c,
 * fast_stages.c, moeplan.c, sampler_cand.c, synth.c), on a GPU — part of tests/cuda/dev_kernels.
 * Random inputs (never zeros), outputs poisoned with NaN (0xff bytes) before each launch, real
 * DeepSeek-V3 shapes and odd fixture shapes. One line per case: "kernel shape err/tol PASS|FAIL";
 * the tolerance of each comparison is written beside it:
 *
 *   e4m3 conversion, quantisers, RoPE parts, plans, combine, pre-filter ids  exact
 *   norms 1e-5 |y| (sum order); SwiGLU 4 ulp (the device's expf)
 *   FP8 GEMMs 2^-9 Σ|terms| (the tensor cores keep ~14 bits inside a 128-K block: start loose,
 *   tighten to 4x the worst measured); BF16 GEMMs 2^-14 Σ|terms| + one BF16 ulp when rounded
 *   MLA 2^-7 Σ_j p_j |c_j| + 2^-7 |ctx| (p to BF16 relative to a running vs the global maximum) */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cuda/cu_blas.h"
#include "cuda/cu_dev.h"
#include "cuda/cutlass_fp8.h"
#include "cuda/kfast.h"
#include "engine/cpu/cpu_ops.h"
#include "engine/cpu/fast_stages.h"
#include "engine/cpu/numerics.h"
#include "engine/model/rope.h"
#include "engine/model/synth.h"
#include "engine/plan/mlaplan.h"
#include "engine/plan/moeplan.h"
#include "engine/sampler_cand.h"

#include "tests/cuda/dev_util.h"

/* ---- conversions and quantisation ----------------------------------------------------------- */

static void test_e4m3_all(void)
{
    unsigned long long *bad = dev_alloc(NULL, 8), miss = 0;
    CU_CHECK(cudaMemset(bad, 0, 8));
    for (uint64_t first = 0; first < (1ull << 32); first += 1ull << 30)
        CU_CHECK(k_e4m3_sweep(first, 1ull << 30, bad, 0));
    CU_CHECK(cudaMemcpy(&miss, bad, 8, cudaMemcpyDeviceToHost));
    dev_report("e4m3", "all 2^32 floats vs nm_e4m3", miss ? INFINITY : 0);
    cudaFree(bad);
}

/* norm (+ add) + quantise: xn within 1e-5; codes and scales exactly the CPU quantiser's of the
 * kernel's own xn, in each layout. */
static void test_norm_quant(int T, int K, int fp8, enum kq_layout lay, int with_add)
{
    int64_t kp = (K + 15) / 16 * 16, G = (K + 127) / 128, tp = (T + 15) / 16 * 16;
    float *h = dev_rvec((size_t)T * K, 3.0f), *a = dev_rvec((size_t)T * K, 1.0f), *w = dev_rvec((size_t)K, 1.0f);
    float *dh = dev_alloc(h, (size_t)T * K * 4), *da = dev_alloc(a, (size_t)T * K * 4), *dw = dev_alloc(w, (size_t)K * 4);
    float *dxn = dev_alloc(NULL, (size_t)T * K * 4);
    struct kq_out o = {.fp8 = fp8, .k = K, .k_pad = kp, .layout = lay, .ld_t = tp};
    o.q = dev_alloc(NULL, (size_t)(tp * kp)), o.s = dev_alloc(NULL, (size_t)(tp * G) * 4), o.b = dev_alloc(NULL, (size_t)(tp * kp) * 2);
    struct kq_norm p = {.h = dh, .add = with_add ? da : NULL, .ldx = K, .w = dw, .eps = 1e-6f, .xn_out = dxn, .n = T, .out = o};
    CU_CHECK(k_norm_quant(&p, 0));
    float *xn = dev_host(dxn, (size_t)T * K * 4), *want = malloc((size_t)T * K * 4), *tol = malloc((size_t)T * K * 4);
    struct weight wn = {.name = "n", .dtype = DT_F32, .rows = 1, .cols = K, .data = w};
    for (size_t i = 0; with_add && i < (size_t)T * K; i++) h[i] = h[i] + a[i];
    cpu_rmsnorm(h, &wn, T, K, K, 1e-6f, want, K);
    for (size_t i = 0; i < (size_t)T * K; i++) tol[i] = 1e-5f * fabsf(want[i]);
    double err = dev_worst(xn, want, tol, (size_t)T * K);
    uint8_t *q = dev_host(o.q, (size_t)(tp * kp)), *wq = malloc((size_t)T * K);
    float *s = dev_host(o.s, (size_t)(tp * G) * 4), *ws = malloc((size_t)T * G * 4);
    uint16_t *b = dev_host(o.b, (size_t)(tp * kp) * 2), *wb = malloc((size_t)T * K * 2);
    nm_quant_1x128(xn, K, T, K, wq, ws);
    nm_round_bf16(xn, K, T, K, wb);
    for (int t = 0; t < T; t++) {
        for (int c = 0; c < K; c++)
            if (fp8 ? q[t * kp + c] != wq[t * K + c] : b[t * kp + c] != wb[t * K + c]) err = INFINITY;
        for (int g = 0; fp8 && g < G; g++)
            if (s[lay == KQ_TG ? t * G + g : g * tp + t] != ws[t * G + g]) err = INFINITY;
    }
    char shape[64];
    snprintf(shape, sizeof shape, "%s%s %dx%d %s", fp8 ? "fp8" : "bf16", with_add ? "+add" : "", T, K,
             lay == KQ_TG ? "TG" : "GT");
    dev_report("norm_quant", shape, err);
    free(h), free(a), free(w), free(xn), free(want), free(tol), free(q), free(wq), free(s), free(ws), free(b), free(wb);
    cudaFree(dh), cudaFree(da), cudaFree(dw), cudaFree(dxn), cudaFree(o.q), cudaFree(o.s), cudaFree(o.b);
}

static void test_silu_quant(int R, int F)
{
    int64_t fp = (F + 15) / 16 * 16, G = (F + 127) / 128;
    float *gu = dev_rvec((size_t)R * 2 * F, 6.0f), *dgu = dev_alloc(gu, (size_t)R * 2 * F * 4), *dact = dev_alloc(NULL, (size_t)R * F * 4);
    struct kq_out o = {.fp8 = 1, .k = F, .k_pad = fp, .layout = KQ_TG};
    o.q = dev_alloc(NULL, (size_t)(R * fp)), o.s = dev_alloc(NULL, (size_t)(R * G) * 4);
    CU_CHECK(k_silu_quant(dgu, 2 * F, F, R, F, NULL, dact, &o, 0));
    float *act = dev_host(dact, (size_t)R * F * 4), *want = malloc((size_t)R * F * 4), *tol = malloc((size_t)R * F * 4);
    for (int r = 0; r < R; r++) {
        memcpy(want + (size_t)r * F, gu + (size_t)r * 2 * F, (size_t)F * 4);
        cpu_silu_mul(want + (size_t)r * F, gu + (size_t)r * 2 * F + F, F);
    }
    for (size_t i = 0; i < (size_t)R * F; i++) tol[i] = 4 * 0x1p-23f * fabsf(want[i]);
    double err = dev_worst(act, want, tol, (size_t)R * F);
    uint8_t *q = dev_host(o.q, (size_t)(R * fp)), *wq = malloc((size_t)R * F);
    float *s = dev_host(o.s, (size_t)(R * G) * 4), *ws = malloc((size_t)R * G * 4);
    nm_quant_1x128(act, F, R, F, wq, ws);
    for (int r = 0; r < R; r++) {
        for (int c = 0; c < F; c++) err = q[r * fp + c] != wq[r * F + c] ? INFINITY : err;
        for (int g = 0; g < G; g++) err = s[r * G + g] != ws[r * G + g] ? INFINITY : err;
    }
    char shape[64];
    snprintf(shape, sizeof shape, "%d rows x %d", R, F);
    dev_report("silu_quant", shape, err);
    free(gu), free(act), free(want), free(tol), free(q), free(wq), free(s), free(ws);
    cudaFree(dgu), cudaFree(dact), cudaFree(o.q), cudaFree(o.s);
}

int dev_fast(void)
{
    int before = dev_failures();
    test_e4m3_all();
    const int nq[][2] = {{1, 7168}, {3, 7168}, {17, 1536}, {300, 7168}, {5, 160}, {33, 232}, {2, 16384}};
    for (size_t i = 0; i < sizeof nq / sizeof nq[0]; i++) {
        test_norm_quant(nq[i][0], nq[i][1], 1, KQ_TG, i % 2);
        test_norm_quant(nq[i][0], nq[i][1], 1, KQ_GT, 0);
        test_norm_quant(nq[i][0], nq[i][1], 0, KQ_TG, 0);
    }
    test_silu_quant(37, 2048), test_silu_quant(5, 18432), test_silu_quant(9, 32);
    dev_fast_mla();
    dev_fast_gemm();
    dev_fast_moe();
    return dev_failures() - before;
}
