/* Tests of engine/cpu/matrix (the BF16 matrix sets of numerics bf16): every set this machine
 * runs — AVX-512-BF16 where the CPU has it, AMX where it has AMX and Linux grants the tiles, and
 * always the AMX driver over the emulated tile instructions — on random (never zero) inputs,
 * odd sizes and partial tiles.
 *
 * What is checked, and how closely:
 * - packing: a set's pack gives the bits of the scalar packers (matrix_pack_rows / _pairs);
 * - the emulated AMX driver gives, bit for bit, the sums of a plain loop that adds the same
 *   products in the architecture's TDPBF16PS order — so its tile layout, strides, padding and
 *   tails are right, and the AMX build of the same driver does the same arithmetic;
 * - nothing past a weight row's end is read (NaN there would show);
 * - every set against the exact sum of the same BF16-rounded products (double): within
 *   1e-5 · Σ|w·x| (F32 accumulation, k ≤ 1,000, as the F32 sets' tests), and against the F32
 *   reference cpu_dot within 2^-8 · Σ|w·x| (the activations' rounding, one part in 2^9 each);
 * - invariance: a token's sums are the same bits alone, in any batch and any row range, and
 *   ops_matmul gives the same bits with 1, 2 or 3 threads. */
#include <check.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "engine/cpu/cpu_ops.h"
#include "engine/cpu/matrix_internal.h"
#include "engine/cpu/ops.h"

static const char *set_names[] = {"avx512bf16", "amx", "amx-emulated"};

static uint64_t rng = 0x2545f4914f6cdd1dull;

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

static uint16_t *rand_bf16(size_t n)
{
    uint16_t *v = malloc(n * sizeof *v);
    for (size_t i = 0; i < n; i++) v[i] = f32_to_bf16(rnd());
    return v;
}

static float *rand_vec(size_t n)
{
    float *v = malloc(n * sizeof *v);
    for (size_t i = 0; i < n; i++) v[i] = rnd();
    return v;
}

/* Runs a set's pack and gemm: y[t * ldy + i] for nr rows of w (stride ldw), n tokens of x. */
static void run_gemm(const struct matrix_kernels *mx, const uint16_t *w, int64_t ldw, int nr,
                     const float *x, int64_t ldx, int n, int k, float *y, int64_t ldy)
{
    void *xp = aligned_alloc(64, (mx->packed_bytes(n, k) + 63) / 64 * 64 + 64);
    void *scratch = aligned_alloc(64, (mx->scratch_bytes(k) + 63) / 64 * 64 + 64);
    mx->pack(x, ldx, n, k, xp);
    mx->gemm(w, ldw, nr, xp, n, k, y, ldy, scratch);
    free(xp), free(scratch);
}

static const int ks[] = {1, 7, 31, 32, 33, 64, 100, 288, 1000};
static const int nrs[] = {1, 3, 16, 17, 33, 40};
static const int ns[] = {1, 2, 5, 16, 17, 35};

/* Every set's sums against the exact sums of the same rounded products, and the F32 reference. */
START_TEST(gemm_close)
{
    const struct matrix_kernels *mx = matrix_by_name(set_names[_i]);
    if (!mx) return;
    for (size_t ki = 0; ki < sizeof ks / sizeof ks[0]; ki++)
        for (size_t ri = 0; ri < sizeof nrs / sizeof nrs[0]; ri++) {
            int K = ks[ki], nr = nrs[ri], n = ns[(ki + ri) % 6], ldw = K + 3, ldx = K + 5,
                ldy = nr + 2;
            uint16_t *w = rand_bf16((size_t)nr * ldw);
            for (int i = 0; i < nr; i++) /* past a row's end: NaN, which must never be read */
                for (int c = K; c < ldw; c++) w[i * ldw + c] = 0x7fc0;
            float *x = rand_vec((size_t)n * ldx), *y = rand_vec((size_t)n * ldy),
                  *wf = malloc((size_t)K * sizeof *wf);
            run_gemm(mx, w, ldw, nr, x, ldx, n, K, y, ldy);
            for (int i = 0; i < nr; i++) {
                for (int c = 0; c < K; c++) wf[c] = bf16_to_f32(w[i * ldw + c]);
                for (int t = 0; t < n; t++) {
                    double exact = 0, mag = 0;
                    for (int c = 0; c < K; c++) {
                        double p = (double)wf[c] * bf16_to_f32(matrix_bf16(x[t * ldx + c]));
                        exact += p, mag += fabs(p);
                    }
                    float got = y[t * ldy + i], f32 = cpu_dot(wf, x + t * ldx, K);
                    ck_assert_msg(fabs(got - exact) <= 1e-5 * mag,
                                  "%s k=%d nr=%d n=%d [%d,%d]: %g vs %g", mx->name, K, nr, n, t, i,
                                  got, exact);
                    ck_assert_msg(fabs(got - f32) <= mag / 256, "%s k=%d: %g vs F32 %g", mx->name,
                                  K, got, f32);
                }
            }
            free(w), free(x), free(y), free(wf);
        }
}
END_TEST

/* The emulated AMX driver adds exactly the products a plain loop adds, in TDPBF16PS order:
 * columns in pairs, even then odd, one F32 rounding each, denormals flushed, over the columns
 * padded to whole 32-column tiles with zeros. */
static float flush(float f)
{
    return fabsf(f) < 1.17549435e-38f ? copysignf(0.0f, f) : f;
}

START_TEST(amx_emulated_exact)
{
    const struct matrix_kernels *mx = matrix_by_name("amx-emulated");
    ck_assert(mx != NULL);
    for (size_t ki = 0; ki < sizeof ks / sizeof ks[0]; ki++)
        for (size_t ri = 0; ri < sizeof nrs / sizeof nrs[0]; ri++) {
            int K = ks[ki], nr = nrs[ri], n = ns[(ki + 2 * ri) % 6], ldw = K + 1, ldx = K + 2,
                ldy = nr;
            uint16_t *w = rand_bf16((size_t)nr * ldw);
            float *x = rand_vec((size_t)n * ldx), *y = rand_vec((size_t)n * ldy);
            run_gemm(mx, w, ldw, nr, x, ldx, n, K, y, ldy);
            for (int i = 0; i < nr; i++)
                for (int t = 0; t < n; t++) {
                    float acc = 0;
                    for (int c = 0; c < matrix_kpad(K); c++) {
                        float a = c < K ? bf16_to_f32(w[i * ldw + c]) : 0;
                        float b = c < K ? bf16_to_f32(matrix_bf16(x[t * ldx + c])) : 0;
                        acc = flush(acc + flush(a * b));
                    }
                    ck_assert_msg(memcmp(&acc, &y[t * ldy + i], sizeof acc) == 0,
                                  "k=%d nr=%d n=%d [%d,%d]: %a vs %a", K, nr, n, t, i,
                                  y[t * ldy + i], acc);
                }
            free(w), free(x), free(y);
        }
}
END_TEST

/* A set's pack gives the scalar packer's bits, zeros, denormals and odd sizes included. */
START_TEST(pack_exact)
{
    const struct matrix_kernels *mx = matrix_by_name(set_names[_i]);
    if (!mx) return;
    for (int n = 1; n <= 37; n += 9)
        for (size_t ki = 0; ki < sizeof ks / sizeof ks[0]; ki++) {
            int K = ks[ki], ldx = K + 3;
            float *x = rand_vec((size_t)n * ldx);
            x[0] = 1e-40f, x[n * ldx - 1] = -0.0f; /* a denormal reads as zero */
            size_t bytes = mx->packed_bytes(n, K);
            void *a = calloc(1, bytes), *b = calloc(1, bytes);
            mx->pack(x, ldx, n, K, a);
            if (strcmp(mx->name, "avx512bf16") == 0)
                matrix_pack_rows(x, ldx, n, K, b);
            else
                matrix_pack_pairs(x, ldx, n, K, b);
            ck_assert_msg(memcmp(a, b, bytes) == 0, "%s n=%d k=%d", mx->name, n, K);
#if defined(__x86_64__)
            if (strcmp(mx->name, "amx-emulated") == 0 && matrix_by_name("avx512bf16")) {
                memset(a, 0xff, bytes); /* the AMX set's own (vector) pack, on a CPU without AMX */
                matrix_amx_pack_vector(x, ldx, n, K, a);
                ck_assert_msg(memcmp(a, b, bytes) == 0, "amx vector pack n=%d k=%d", n, K);
            }
#endif
            free(x), free(a), free(b);
        }
}
END_TEST

/* A token's sums are the same bits alone and in any batch — also when the batch spans several of
 * the gemm's blocks of tokens (k = 1,000: 64 tokens a block) — and a row's the same in any row
 * range. */
START_TEST(gemm_invariant)
{
    const struct matrix_kernels *mx = matrix_by_name(set_names[_i]);
    if (!mx) return;
    int shapes[][3] = {{300, 45, 37}, {1000, 40, 150}}; /* k, rows, tokens */
    for (int si = 0; si < 2; si++) {
        int K = shapes[si][0], nr = shapes[si][1], n = shapes[si][2];
        uint16_t *w = rand_bf16((size_t)nr * K);
        float *x = rand_vec((size_t)n * K), *all = calloc((size_t)n * nr, sizeof *all);
        float *one = calloc((size_t)nr, sizeof *one);
        run_gemm(mx, w, K, nr, x, K, n, K, all, nr);
        for (int t = 0; t < n; t += 5) {
            run_gemm(mx, w, K, nr, x + t * K, K, 1, K, one, nr);
            ck_assert_msg(memcmp(one, all + t * nr, (size_t)nr * sizeof *one) == 0,
                          "%s k=%d token %d", mx->name, K, t);
            run_gemm(mx, w + 7 * K, K, 19, x + t * K, K, 1, K, one, nr);
            ck_assert_msg(memcmp(one, all + t * nr + 7, 19 * sizeof *one) == 0,
                          "%s rows 7.. token %d", mx->name, t);
        }
        free(w), free(x), free(all), free(one);
    }
}
END_TEST

/* ops_matmul_rows with a matrix set: the same bits for 1, 2 and 3 threads (packing shared or
 * per task), the same bits as the set's gemm, and F32 weights untouched by it. */
START_TEST(ops_threads)
{
    const struct matrix_kernels *mx = matrix_by_name(set_names[_i]);
    if (!mx) return;
    int rows = 203, K = 259;
    for (int n = 3; n <= 80; n += 77) { /* packed in one piece, and in parallel pieces */
        struct weight w = {.name = "w", .dtype = DT_BF16, .rows = rows, .cols = K};
        uint16_t *d = rand_bf16((size_t)rows * K);
        w.data = d;
        float *x = rand_vec((size_t)n * K), *y[3], *ref = calloc((size_t)n * 200, sizeof(float));
        run_gemm(mx, d + 3 * K, K, 200, x, K, n, K, ref, 200);
        for (int th = 1; th <= 3; th++) {
            struct tp *tp = tp_create(th);
            struct ops o = {.tp = tp, .k = simd_best(), .mx = mx};
            y[th - 1] = calloc((size_t)n * 200, sizeof(float));
            ops_matmul_rows(&o, &w, 3, 203, x, K, n, y[th - 1], 200);
            ck_assert_msg(memcmp(y[th - 1], ref, (size_t)n * 200 * sizeof(float)) == 0,
                          "%s n=%d th=%d", mx->name, n, th);
            tp_destroy(tp);
        }
        for (int th = 0; th < 3; th++) free(y[th]);
        free(x), free(ref), free(d);
    }
}
END_TEST

/* SEEKD_MATRIX picks a set the CPU runs, or none; an unknown name changes nothing. */
START_TEST(choice)
{
    setenv("SEEKD_MATRIX", "none", 1);
    ck_assert(matrix_best(NULL) == NULL);
    setenv("SEEKD_MATRIX", "amx-emulated", 1);
    ck_assert(matrix_best(NULL) == matrix_by_name("amx-emulated"));
    unsetenv("SEEKD_MATRIX");
    double rate = -1;
    const struct matrix_kernels *best = matrix_best(&rate);
    ck_assert(best == NULL || best == matrix_by_name(best->name));
    ck_assert(rate >= 0);
    ck_assert(matrix_by_name("tpu") == NULL);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("matrix");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 300);
    int n_sets = (int)(sizeof set_names / sizeof set_names[0]);
    tcase_add_loop_test(tc, gemm_close, 0, n_sets);
    tcase_add_test(tc, amx_emulated_exact);
    tcase_add_loop_test(tc, pack_exact, 0, n_sets);
    tcase_add_loop_test(tc, gemm_invariant, 0, n_sets);
    tcase_add_loop_test(tc, ops_threads, 0, n_sets);
    tcase_add_test(tc, choice);
    suite_add_tcase(s, tc);
    SRunner *sr = srunner_create(s);
    srunner_run_all(sr, CK_NORMAL);
    int failed = srunner_ntests_failed(sr);
    srunner_free(sr);
    return failed ? 1 : 0;
}
