/* dev_util: shared helpers of the device tests. */
#include "tests/cuda/dev_util.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cuda/cu_dev.h"
#include "engine/cpu/numerics.h"
#include "engine/model/model.h"

static int failures;
static uint64_t state = 0x6a09e667f3bcc908ull;

uint32_t dev_rnd32(void)
{
    state ^= state << 13, state ^= state >> 7, state ^= state << 17;
    return (uint32_t)(state >> 11);
}

float dev_rnd(float a)
{
    float v = ((float)(dev_rnd32() % 2000001u) / 1000000.0f - 1.0f) * a;
    return v == 0.0f ? 0.375f * a : v;
}

float *dev_rvec(size_t n, float a)
{
    float *v = malloc((n ? n : 1) * sizeof *v);
    for (size_t i = 0; i < n; i++) v[i] = dev_rnd(a);
    return v;
}

void *dev_alloc(const void *src, size_t n)
{
    void *d;
    CU_CHECK(cudaMalloc(&d, n ? n : 1));
    if (src && n) CU_CHECK(cudaMemcpy(d, src, n, cudaMemcpyHostToDevice));
    else CU_CHECK(cudaMemset(d, 0xff, n ? n : 1));
    return d;
}

void *dev_host(const void *d, size_t n)
{
    void *h = malloc(n ? n : 1);
    CU_CHECK(cudaDeviceSynchronize());
    if (n) CU_CHECK(cudaMemcpy(h, d, n, cudaMemcpyDeviceToHost));
    return h;
}

double dev_worst(const float *got, const float *want, const float *tol, size_t n)
{
    double w = 0;
    for (size_t i = 0; i < n; i++) {
        double d = fabs((double)got[i] - want[i]), t = tol ? tol[i] : 0;
        double q = d == 0 ? 0 : t > 0 ? d / t : INFINITY;
        if (isnan(got[i]) || isnan(want[i])) q = INFINITY;
        if (q > w) w = q;
    }
    return w;
}

/* The reference of outputs [o0, o1): want and 2^-9 of the same sum over absolute values. */
static void fp8_window(struct dev_fp8_ref *r, int i, const struct weight *w, const uint8_t *q, const float *s)
{
    int64_t o0 = r->win[i][0], n = r->win[i][1] - o0, k = w->cols, T = r->T;
    r->want[i] = malloc((size_t)(T * n) * 4 + 4), r->A[i] = malloc((size_t)(T * n) * 4 + 4);
    uint8_t *wa = malloc((size_t)(w->rows * k)), *qa = malloc((size_t)(T * k) + 1);
    nm_matmul_fp8(w, o0, o0 + n, q, s, (int)T, r->want[i], n);
    for (int64_t j = 0; j < w->rows * k; j++) wa[j] = ((const uint8_t *)w->data)[j] & 0x7f;
    for (int64_t j = 0; j < T * k; j++) qa[j] = q[j] & 0x7f;
    struct weight wabs = *w;
    wabs.data = wa;
    nm_matmul_fp8(&wabs, o0, o0 + n, qa, s, (int)T, r->A[i], n);
    for (int64_t j = 0; j < T * n; j++) r->A[i][j] *= 0x1p-9f;
    free(wa), free(qa);
}

void dev_fp8_ref_make(struct dev_fp8_ref *r, const struct weight *w, const uint8_t *q, const float *s, int T)
{
    int64_t n = w->rows, a1 = n < 256 ? n : 256, b0 = n - 128 > a1 ? n - 128 : a1;
    *r = (struct dev_fp8_ref){.T = T, .n_win = b0 < n ? 2 : 1, .win = {{0, a1}, {b0, n}}};
    for (int i = 0; i < r->n_win; i++) fp8_window(r, i, w, q, s);
}

double dev_fp8_ref_err(const struct dev_fp8_ref *r, const float *y, int64_t ldy)
{
    double e = 0;
    for (int i = 0; i < r->n_win; i++) {
        int64_t o0 = r->win[i][0], n = r->win[i][1] - o0;
        float *got = malloc((size_t)(r->T * n) * 4 + 4);
        for (int t = 0; t < r->T; t++) memcpy(got + t * n, y + t * ldy + o0, (size_t)n * 4);
        e = fmax(e, dev_worst(got, r->want[i], r->A[i], (size_t)(r->T * n)));
        free(got);
    }
    return e;
}

void dev_fp8_ref_free(struct dev_fp8_ref *r)
{
    for (int i = 0; i < r->n_win; i++) free(r->want[i]), free(r->A[i]);
}

double dev_fp8_err(const struct weight *w, const uint8_t *q, const float *s, int T, const float *y,
                   int64_t ldy)
{
    struct dev_fp8_ref r;
    dev_fp8_ref_make(&r, w, q, s, T);
    double e = dev_fp8_ref_err(&r, y, ldy);
    dev_fp8_ref_free(&r);
    return e;
}

void dev_report(const char *kernel, const char *shape, double err_over_tol)
{
    int ok = err_over_tol <= 1.0;
    printf("%-12s %-34s %10.3g %s\n", kernel, shape, err_over_tol, ok ? "PASS" : "FAIL");
    fflush(stdout);
    failures += !ok;
}

int dev_failures(void)
{
    return failures;
}

double dev_copy_gbps(void)
{
    size_t n = (size_t)1 << 31;
    void *a = NULL, *b = NULL;
    cudaEvent_t t0, t1;
    if (cudaMalloc(&a, n) != cudaSuccess || cudaMalloc(&b, n) != cudaSuccess) {
        if (a) cudaFree(a);
        cudaGetLastError();
        return 0;
    }
    CU_CHECK(cudaEventCreate(&t0));
    CU_CHECK(cudaEventCreate(&t1));
    CU_CHECK(cudaMemcpy(b, a, n, cudaMemcpyDeviceToDevice)); /* warm */
    CU_CHECK(cudaEventRecord(t0, 0));
    for (int i = 0; i < 5; i++) CU_CHECK(cudaMemcpy(b, a, n, cudaMemcpyDeviceToDevice));
    CU_CHECK(cudaEventRecord(t1, 0));
    CU_CHECK(cudaEventSynchronize(t1));
    float ms = 0;
    CU_CHECK(cudaEventElapsedTime(&ms, t0, t1));
    cudaEventDestroy(t0), cudaEventDestroy(t1);
    cudaFree(a), cudaFree(b);
    return 5.0 * 2.0 * (double)n / (ms * 1e-3) / 1e9;
}
