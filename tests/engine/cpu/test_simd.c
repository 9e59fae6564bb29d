/* Tests of engine/simd and engine/ops against the scalar reference in cpu_ops: every kernel set
 * the CPU runs, every weight dtype, odd sizes and partial FP8 blocks, random (never zero) inputs.
 *
 * Tolerances: widening is exact (the same float as cpu_weight_row, bit for bit); a dot product
 * may differ from cpu_dot only by float reassociation, bounded by 1e-5 · Σ|w·x| (k ≤ 1,000);
 * axpy by one rounding, 1e-6 · (|y| + |s·x|). Within a kernel set, a tile's element equals the
 * set's own dot bit for bit, and ops_matmul gives the same bits for any thread count. */
#include <check.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "engine/cpu/cpu_ops.h"
#include "engine/cpu/ops.h"

static const char *set_names[] = {"scalar", "avx2", "avx512"};

static uint64_t rng = 0x9e3779b97f4a7c15ull;

static uint32_t next_u32(void)
{
    rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
    return (uint32_t)(rng >> 11);
}

/* Uniform in [-1, 1), never exactly 0. */
static float rnd(void)
{
    float v = (float)(next_u32() % 2000001u) / 1000000.0f - 1.0f;
    return v == 0.0f ? 0.375f : v;
}

/* A random weight of the given dtype with owned storage (FP8: 128x128 scales, F32). */
static struct weight make_weight(enum dtype t, int64_t rows, int64_t cols)
{
    struct weight w = {.name = "w", .dtype = t, .rows = rows, .cols = cols};
    size_t n = (size_t)(rows * cols);
    uint8_t *d = malloc(n * dtype_size(t));
    for (size_t i = 0; i < n; i++) {
        if (t == DT_F32) {
            float f = rnd();
            memcpy(d + 4 * i, &f, 4);
        } else if (t == DT_BF16) {
            uint16_t h = f32_to_bf16(rnd());
            memcpy(d + 2 * i, &h, 2);
        } else if (t == DT_F16) {
            uint16_t h = (uint16_t)next_u32();
            if (((h >> 10) & 0x1f) == 0x1f) h &= 0xbfff; /* no inf / NaN */
            memcpy(d + 2 * i, &h, 2);
        } else {
            uint8_t b = (uint8_t)next_u32();
            d[i] = (b & 0x7f) == 0x7f ? (uint8_t)(b ^ 0x01) : b; /* NaN codes are not weights */
        }
    }
    w.data = d;
    if (t == DT_F8E4M3) {
        w.block_rows = w.block_cols = 128;
        size_t ns = (size_t)((rows + 127) / 128 * ((cols + 127) / 128));
        float *s = malloc(ns * sizeof *s);
        for (size_t i = 0; i < ns; i++) s[i] = 1e-3f * (1.5f + rnd());
        w.scale = s;
    }
    return w;
}

static void free_weight(struct weight *w)
{
    free((void *)w->data);
    free((void *)w->scale);
}

static float *rand_vec(size_t n)
{
    float *v = malloc(n * sizeof *v);
    for (size_t i = 0; i < n; i++) v[i] = rnd();
    return v;
}

/* Every dtype widens to exactly the reference's floats, partial FP8 blocks included. */
START_TEST(widen_exact)
{
    const struct simd_kernels *k = simd_by_name(set_names[_i]);
    if (!k) return;
    enum dtype types[] = {DT_F32, DT_BF16, DT_F16, DT_F8E4M3};
    int64_t shapes[][2] = {{3, 7}, {130, 300}, {5, 128}, {2, 129}, {257, 33}};
    for (size_t ti = 0; ti < 4; ti++)
        for (size_t si = 0; si < 5; si++) {
            struct weight w = make_weight(types[ti], shapes[si][0], shapes[si][1]);
            float *ref = malloc((size_t)w.cols * sizeof *ref), *got = malloc((size_t)(w.rows * w.cols) * sizeof *got);
            k->widen_rows(&w, 0, (int)w.rows, got, w.cols);
            for (int64_t r = 0; r < w.rows; r++) {
                cpu_weight_row(&w, r, ref);
                ck_assert_msg(memcmp(ref, got + r * w.cols, (size_t)w.cols * sizeof *ref) == 0,
                              "%s %s [%lld,%lld] row %lld differs", k->name, dtype_name(types[ti]),
                              (long long)w.rows, (long long)w.cols, (long long)r);
            }
            free(ref);
            free(got);
            free_weight(&w);
        }
}
END_TEST

/* Tiles match cpu_dot within the stated bound, and the set's own dot bit for bit. */
START_TEST(dot_tile_close)
{
    const struct simd_kernels *k = simd_by_name(set_names[_i]);
    if (!k) return;
    int ks[] = {1, 7, 8, 15, 16, 17, 33, 300, 1000};
    for (size_t ki = 0; ki < sizeof ks / sizeof ks[0]; ki++)
        for (int nr = 1; nr <= 9; nr += 2)
            for (int nt = 1; nt <= 7; nt += 3) {
                int K = ks[ki], ldw = K + 3, ldx = K + 5, ldy = nr + 2;
                float *w = rand_vec((size_t)nr * ldw), *x = rand_vec((size_t)nt * ldx);
                float *y = rand_vec((size_t)nt * ldy);
                k->dot_tile(w, ldw, nr, x, ldx, nt, K, y, ldy);
                for (int t = 0; t < nt; t++)
                    for (int i = 0; i < nr; i++) {
                        float ref = cpu_dot(w + i * ldw, x + t * ldx, K), mag = 0, got = y[t * ldy + i];
                        for (int c = 0; c < K; c++) mag += fabsf(w[i * ldw + c] * x[t * ldx + c]);
                        ck_assert_msg(fabsf(got - ref) <= 1e-5f * mag, "%s k=%d: %g vs %g", k->name, K, got, ref);
                        float one = k->dot(w + i * ldw, x + t * ldx, K);
                        ck_assert_msg(memcmp(&one, &got, sizeof one) == 0, "%s tile != dot (k=%d nr=%d nt=%d)",
                                      k->name, K, nr, nt);
                    }
                free(w), free(x), free(y);
            }
}
END_TEST

START_TEST(axpy_close)
{
    const struct simd_kernels *k = simd_by_name(set_names[_i]);
    if (!k) return;
    for (int n = 1; n < 70; n += 3) {
        float *y = rand_vec((size_t)n), *x = rand_vec((size_t)n), *ref = malloc((size_t)n * sizeof *ref);
        float s = rnd();
        memcpy(ref, y, (size_t)n * sizeof *ref);
        cpu_axpy(ref, s, x, n);
        k->axpy(y, s, x, n);
        for (int i = 0; i < n; i++)
            ck_assert_msg(fabsf(y[i] - ref[i]) <= 1e-6f * (fabsf(ref[i]) + fabsf(s * x[i])), "%s n=%d", k->name, n);
        free(y), free(x), free(ref);
    }
}
END_TEST

/* axpy_rows is n axpy calls, bit for bit. */
START_TEST(axpy_rows_identical)
{
    const struct simd_kernels *k = simd_by_name(set_names[_i]);
    if (!k) return;
    int ks[] = {1, 9, 16, 33, 64, 100, 288};
    for (size_t ki = 0; ki < sizeof ks / sizeof ks[0]; ki++)
        for (int n = 1; n <= 13; n += 4) {
            int K = ks[ki], ld = K + 7;
            float *rows = rand_vec((size_t)n * ld), *p = rand_vec((size_t)n), *a = rand_vec((size_t)K);
            float *b = malloc((size_t)K * sizeof *b);
            memcpy(b, a, (size_t)K * sizeof *b);
            for (int j = 0; j < n; j++) k->axpy(a, p[j], rows + j * ld, K);
            k->axpy_rows(b, p, rows, ld, n, K);
            ck_assert_msg(memcmp(a, b, (size_t)K * sizeof *a) == 0, "%s k=%d n=%d", k->name, K, n);
            if (k->axpy_rows4) { /* four outputs at once: each as axpy_rows alone */
                float *y4 = rand_vec((size_t)4 * K), *p4 = rand_vec((size_t)4 * n), *r4 = malloc((size_t)4 * K * sizeof *r4);
                memcpy(r4, y4, (size_t)4 * K * sizeof *r4);
                for (int i = 0; i < 4; i++) k->axpy_rows(r4 + i * K, p4 + i * n, rows, ld, n, K);
                k->axpy_rows4(y4, K, p4, n, rows, ld, n, K);
                ck_assert_msg(memcmp(y4, r4, (size_t)4 * K * sizeof *r4) == 0, "%s rows4 k=%d n=%d", k->name, K, n);
                free(y4), free(p4), free(r4);
            }
            free(rows), free(p), free(a), free(b);
        }
}
END_TEST

/* ops_matmul_rows: close to cpu_matmul_rows, and the same bits with 1, 2 or 3 threads. */
START_TEST(matmul_threads)
{
    const struct simd_kernels *k = simd_by_name(set_names[_i]);
    if (!k) return;
    enum dtype types[] = {DT_F32, DT_BF16, DT_F16, DT_F8E4M3};
    for (size_t ti = 0; ti < 4; ti++) {
        struct weight w = make_weight(types[ti], 203, 259);
        int n = 5;
        float *x = rand_vec((size_t)n * 259), *ref = calloc((size_t)n * 200, sizeof(float));
        float *y[3];
        cpu_matmul_rows(&w, 3, 203, x, 259, n, ref, 200);
        for (int th = 1; th <= 3; th++) {
            struct tp *tp = tp_create(th);
            struct ops o = {.tp = tp, .k = k};
            y[th - 1] = calloc((size_t)n * 200, sizeof(float));
            ops_matmul_rows(&o, &w, 3, 203, x, 259, n, y[th - 1], 200);
            tp_destroy(tp);
        }
        ck_assert(memcmp(y[0], y[1], (size_t)n * 200 * sizeof(float)) == 0);
        ck_assert(memcmp(y[0], y[2], (size_t)n * 200 * sizeof(float)) == 0);
        float mx = 0, d = 0;
        for (int i = 0; i < n * 200; i++) mx = fmaxf(mx, fabsf(ref[i])), d = fmaxf(d, fabsf(ref[i] - y[0][i]));
        ck_assert_msg(mx > 0 && d <= 1e-5f * mx * 16, "%s %s: diff %g of %g", k->name,
                      dtype_name(types[ti]), d, mx);
        for (int th = 0; th < 3; th++) free(y[th]);
        free(x), free(ref);
        free_weight(&w);
    }
}
END_TEST

/* The in-register path gives the same bits as widen_rows + dot_tile, every dtype it takes. */
START_TEST(direct_bit_identical)
{
    const struct simd_kernels *k = simd_by_name(set_names[_i]);
    if (!k || !k->direct) return;
    enum dtype types[] = {DT_F32, DT_BF16, DT_F8E4M3};
    int64_t shapes[][2] = {{9, 7}, {13, 300}, {6, 128}, {5, 129}, {11, 1040}};
    for (size_t ti = 0; ti < 3; ti++)
        for (size_t si = 0; si < 5; si++)
            for (int nt = 1; nt <= 11; nt += (nt < 5 ? 1 : 3)) {
                struct weight w = make_weight(types[ti], shapes[si][0], shapes[si][1]);
                int64_t K = w.cols, R = w.rows;
                float *x = rand_vec((size_t)(nt * K)), *buf = malloc((size_t)(R * K) * sizeof *buf);
                float *a = calloc((size_t)(nt * R), sizeof *a), *b = calloc((size_t)(nt * R), sizeof *b);
                k->widen_rows(&w, 1, (int)R - 1, buf, K);
                k->dot_tile(buf, K, (int)R - 1, x, K, nt, (int)K, a, R);
                k->direct(&w, 1, (int)R - 1, x, K, nt, b, R);
                ck_assert_msg(memcmp(a, b, (size_t)(nt * R) * sizeof *a) == 0, "%s %s [%lld,%lld] nt=%d",
                              k->name, dtype_name(types[ti]), (long long)R, (long long)K, nt);
                free(x), free(buf), free(a), free(b);
                free_weight(&w);
            }
}
END_TEST

/* The pool runs every task exactly once, many times in a row. */
static void count_task(void *arg, int task, int thread)
{
    __atomic_fetch_add(&((int *)arg)[task], 1, __ATOMIC_RELAXED);
}

START_TEST(pool_runs_each_task_once)
{
    struct tp *tp = tp_create(3);
    ck_assert_int_eq(tp_size(tp), 3);
    int counts[97];
    for (int round = 0; round < 2000; round++) {
        int n = 1 + round % 97;
        memset(counts, 0, sizeof counts);
        tp_run(tp, n, count_task, counts);
        for (int i = 0; i < n; i++) ck_assert_int_eq(counts[i], 1);
    }
    tp_destroy(tp);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("simd");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 120);
    int n_sets = (int)(sizeof set_names / sizeof set_names[0]);
    tcase_add_loop_test(tc, widen_exact, 0, n_sets);
    tcase_add_loop_test(tc, dot_tile_close, 0, n_sets);
    tcase_add_loop_test(tc, axpy_close, 0, n_sets);
    tcase_add_loop_test(tc, matmul_threads, 0, n_sets);
    tcase_add_loop_test(tc, direct_bit_identical, 0, n_sets);
    tcase_add_loop_test(tc, axpy_rows_identical, 0, n_sets);
    tcase_add_test(tc, pool_runs_each_task_once);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
