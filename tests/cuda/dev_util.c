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

/* Outputs [o0, o1) of y against the reference, within 2^-9 of the absolute terms. */
static double fp8_window(const struct weight *w, int64_t o0, int64_t o1, const uint8_t *q, const float *s,
                         int T, const float *y, int64_t ldy)
{
    int64_t n = o1 - o0, k = w->cols;
    float *want = malloc((size_t)(T * n) * 4 + 4), *A = malloc((size_t)(T * n) * 4 + 4), *got = malloc((size_t)(T * n) * 4 + 4);
    uint8_t *wa = malloc((size_t)(w->rows * k)), *qa = malloc((size_t)(T * k) + 1);
    nm_matmul_fp8(w, o0, o1, q, s, T, want, n);
    for (int64_t i = 0; i < w->rows * k; i++) wa[i] = ((const uint8_t *)w->data)[i] & 0x7f;
    for (int64_t i = 0; i < T * k; i++) qa[i] = q[i] & 0x7f;
    struct weight wabs = *w;
    wabs.data = wa;
    nm_matmul_fp8(&wabs, o0, o1, qa, s, T, A, n);
    for (int64_t i = 0; i < T * n; i++) A[i] *= 0x1p-9f;
    for (int t = 0; t < T; t++) memcpy(got + t * n, y + t * ldy + o0, (size_t)n * 4);
    double e = dev_worst(got, want, A, (size_t)(T * n));
    free(want), free(A), free(got), free(wa), free(qa);
    return e;
}

double dev_fp8_err(const struct weight *w, const uint8_t *q, const float *s, int T, const float *y,
                   int64_t ldy)
{
    int64_t n = w->rows, a1 = n < 256 ? n : 256, b0 = n - 128 > a1 ? n - 128 : a1;
    double e = fp8_window(w, 0, a1, q, s, T, y, ldy);
    if (b0 < n) e = fmax(e, fp8_window(w, b0, n, q, s, T, y, ldy));
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
