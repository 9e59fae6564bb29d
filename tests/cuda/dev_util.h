/* dev_util: helpers of the device test programs (tests/cuda/dev_*.c): random data, device
 * buffers poisoned before a kernel writes them, copies back, error over tolerance, and the one
 * result line per case ("kernel shape err/tol PASS|FAIL"). */
#ifndef SEEKD_TEST_DEV_UTIL_H
#define SEEKD_TEST_DEV_UTIL_H

#include <stddef.h>
#include <stdint.h>

uint32_t dev_rnd32(void);
/* Uniform in [-a, a), never exactly 0. */
float dev_rnd(float a);
float *dev_rvec(size_t n, float a);

/* A device copy of src (n bytes), or n bytes of 0xff (NaN as floats) when src is NULL. */
void *dev_alloc(const void *src, size_t n);
/* n bytes of a device buffer, after the device finished (malloc'd). */
void *dev_host(const void *d, size_t n);

/* The largest |got - want| / tol (tol NULL or 0: must be equal; NaN: infinite). */
double dev_worst(const float *got, const float *want, const float *tol, size_t n);

struct weight;
/* The worst error of y [T][ldy] = q · wᵀ (activation codes q [T][w->cols], scales s [T][groups])
 * against nm_matmul_fp8 over 2^-9 Σ|terms|: the tensor cores' narrower accumulator inside a
 * 128-K block (about 14 bits of mantissa before the F32 promotion). Outputs checked: the first 256
 * and the last 128 (the host reference is the cost at V3 widths). */
double dev_fp8_err(const struct weight *w, const uint8_t *q, const float *s, int T, const float *y,
                   int64_t ldy);

/* The same reference made once for several results of one GEMM. */
struct dev_fp8_ref {
    int T, n_win;
    int64_t win[2][2];       /* output columns [from, to) */
    float *want[2], *A[2];
};
void dev_fp8_ref_make(struct dev_fp8_ref *r, const struct weight *w, const uint8_t *q, const float *s, int T);
double dev_fp8_ref_err(const struct dev_fp8_ref *r, const float *y, int64_t ldy);
void dev_fp8_ref_free(struct dev_fp8_ref *r);

/* Prints the case's line; err/tol above 1 (or NaN) counts as a failure. */
void dev_report(const char *kernel, const char *shape, double err_over_tol);
int dev_failures(void);

/* A device-to-device copy of 4 GiB (2 GiB each way, five times), timed with events: read plus
 * written bytes per second / 1e9, the bandwidth ceiling later figures are compared with; 0 when
 * the memory is not free. */
double dev_copy_gbps(void);

/* The device test groups (dev_fast*.c). */
int dev_fast(void);
void dev_fast_mla(void);
void dev_fast_gemm(void);
void dev_fast_moe(void);
int dev_fast_backend(const char *model_dir);

#endif
