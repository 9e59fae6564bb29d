/* Tests of engine/cpu/numerics: the e4m3 encoder (every code back and forth, every tie between
 * neighbouring codes, saturation, subnormals, and random floats against a brute-force nearest
 * code), BF16 rounding, the 1×128 quantiser (zero groups, partial last group, the group's
 * largest value landing on ±448), and the FP8 and BF16 GEMMs against the same formulas evaluated
 * independently (integer block sums, long double). */
#include <check.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "engine/cpu/numerics.h"
#include "tests/check_run.h"

static uint64_t rng = 0x853c49e6748fea9bull;

static uint32_t next_u32(void)
{
    rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
    return (uint32_t)(rng >> 11);
}

static float rnd(float a)
{
    float v = ((float)(next_u32() % 2000001u) / 1000000.0f - 1.0f) * a;
    return v == 0.0f ? 0.375f * a : v;
}

static int finite_code(int b)
{
    return (b & 0x7f) != 0x7f;
}

START_TEST(decode_matches_the_dtype_table)
{
    for (int b = 0; b < 256; b++) {
        float want = fp8e4m3_to_f32((uint8_t)b), got = nm_e4m3_value((uint8_t)b);
        if (!finite_code(b)) ck_assert(isnan(got));
        else ck_assert_msg(memcmp(&want, &got, 4) == 0, "code %02x: %g vs %g", b, got, want);
    }
    ck_assert_float_eq(nm_e4m3_value(0x7e), 448.0f);
    ck_assert_float_eq(nm_e4m3_value(0x01), 0x1p-9f);
    ck_assert_float_eq(nm_e4m3_value(0x08), 0x1p-6f);
}
END_TEST

START_TEST(every_code_round_trips)
{
    for (int b = 0; b < 256; b++)
        if (finite_code(b)) ck_assert_int_eq(nm_e4m3(nm_e4m3_value((uint8_t)b)), b);
    ck_assert_int_eq(nm_e4m3(-0.0f), 0x80);
}
END_TEST

/* Between codes b and b+1 (same sign, both finite): the midpoint goes to the even code, and
 * anything off the midpoint to the nearer one. */
START_TEST(ties_to_even_between_every_pair)
{
    for (int sign = 0; sign < 2; sign++)
        for (int b = 0; b < 0x7e; b++) {
            int lo = b | sign << 7, hi = (b + 1) | sign << 7;
            float a = nm_e4m3_value((uint8_t)lo), c = nm_e4m3_value((uint8_t)hi);
            float mid = (a + c) * 0.5f; /* exact: the codes have 4 significant bits */
            int even = (b & 1) == 0 ? lo : hi;
            ck_assert_msg(nm_e4m3(mid) == even, "midpoint of %02x/%02x", lo, hi);
            ck_assert_int_eq(nm_e4m3(nextafterf(mid, a)), lo);
            ck_assert_int_eq(nm_e4m3(nextafterf(mid, c)), hi);
        }
}
END_TEST

START_TEST(saturation_and_nan)
{
    const float big[] = {448.0f, 448.5f, 463.9f, 464.0f, 465.0f, 1e6f, 3.4e38f, INFINITY};
    for (size_t i = 0; i < sizeof big / sizeof big[0]; i++) {
        ck_assert_int_eq(nm_e4m3(big[i]), 0x7e);
        ck_assert_int_eq(nm_e4m3(-big[i]), 0xfe);
    }
    ck_assert_int_eq(nm_e4m3(NAN), 0x7f);
    ck_assert_int_eq(nm_e4m3(nextafterf(448.0f, 0.0f)), 0x7e); /* rounds up to 448 */
    ck_assert_int_eq(nm_e4m3(431.0f), 0x7d);                    /* 416 + 15 < 432: down */
}
END_TEST

START_TEST(subnormals)
{
    ck_assert_int_eq(nm_e4m3(0x1p-9f), 0x01);
    ck_assert_int_eq(nm_e4m3(0x1p-10f), 0x00);           /* half the smallest: tie to 0 */
    ck_assert_int_eq(nm_e4m3(-0x1p-10f), 0x80);
    ck_assert_int_eq(nm_e4m3(nextafterf(0x1p-10f, 1.0f)), 0x01);
    ck_assert_int_eq(nm_e4m3(3 * 0x1p-10f), 0x02);       /* 1.5 · 2^-9: tie to 2 */
    ck_assert_int_eq(nm_e4m3(7.5f * 0x1p-9f), 0x08);     /* tie between 7 · 2^-9 and 2^-6 */
    ck_assert_int_eq(nm_e4m3(1e-30f), 0x00);
    ck_assert_int_eq(nm_e4m3(1e-40f), 0x00);             /* an f32 subnormal */
    ck_assert_int_eq(nm_e4m3(-1e-40f), 0x80);
}
END_TEST

/* The nearest finite code by search; ties to the even code; beyond 448 saturates. */
static int nearest_code(float x)
{
    double ax = fabs((double)x);
    int best = 0;
    double bd = INFINITY;
    for (int b = 0; b <= 0x7e; b++) {
        double d = fabs(ax - (double)nm_e4m3_value((uint8_t)b));
        if (d < bd || (d == bd && (b & 1) == 0)) bd = d, best = b;
    }
    return best | (signbit(x) ? 0x80 : 0);
}

START_TEST(random_floats_against_search)
{
    for (int i = 0; i < 200000; i++) {
        /* exponents around the whole e4m3 range and beyond, random mantissas */
        uint32_t e = 100 + next_u32() % 40, u = (next_u32() & 0x807fffffu) | e << 23;
        float x = nm_float(u);
        ck_assert_msg(nm_e4m3(x) == nearest_code(x), "%a: %02x vs %02x", (double)x, nm_e4m3(x),
                      nearest_code(x));
    }
}
END_TEST

START_TEST(bf16_rounding)
{
    for (int i = 0; i < 200000; i++) {
        float f = nm_float(next_u32() ^ (next_u32() << 9));
        ck_assert_uint_eq(nm_to_bf16(f), f32_to_bf16(f));
    }
    ck_assert_float_eq(nm_bf16(1.00390625f), 1.0f);       /* tie to even */
    ck_assert_float_eq(nm_bf16(1.01171875f), 1.015625f);  /* tie to even, upwards */
}
END_TEST

START_TEST(quantiser_groups)
{
    enum { K = 300 }; /* groups of 128, 128 and 44 */
    float x[2 * K], s[2 * 3];
    uint8_t q[2 * K];
    for (int i = 0; i < 2 * K; i++) x[i] = rnd(5.0f);
    for (int i = 128; i < 256; i++) x[i] = 0.0f; /* token 0's middle group is all zero */
    x[K + 7] = 12.0f, x[K + 8] = -12.0f;         /* token 1's first group peaks at ±12 */
    nm_quant_1x128(x, K, 2, K, q, s);
    ck_assert_float_eq(s[1], NM_AMAX_FLOOR / NM_E4M3_MAX);
    for (int i = 128; i < 256; i++) ck_assert_int_eq(q[i], 0);
    ck_assert_float_eq(s[3], 12.0f / 448.0f);
    ck_assert_int_eq(q[K + 7], 0x7e);
    ck_assert_int_eq(q[K + 8], 0xfe);
    for (int t = 0; t < 2; t++)
        for (int g = 0; g < 3; g++) {
            int c0 = g * 128, c1 = c0 + 128 < K ? c0 + 128 : K;
            float amax = 0;
            for (int c = c0; c < c1; c++) amax = fmaxf(amax, fabsf(x[t * K + c]));
            ck_assert_float_eq(s[t * 3 + g], nm_group_scale(amax));
            for (int c = c0; c < c1; c++) {
                int i = t * K + c;
                ck_assert_int_eq(q[i], nm_e4m3(x[i] / s[t * 3 + g]));
                /* dequantised within half an e4m3 step (1/16 relative) or a subnormal step */
                double back = (double)nm_e4m3_value(q[i]) * s[t * 3 + g];
                ck_assert(fabs(back - x[i]) <= fabs(x[i]) / 16 + s[t * 3 + g] * 0x1p-10);
            }
        }
}
END_TEST

/* An FP8 weight [rows, cols] with codes of every magnitude and non-uniform block scales. */
static struct weight fp8_weight(int64_t rows, int64_t cols)
{
    struct weight w = {.name = "w", .dtype = DT_F8E4M3, .rows = rows, .cols = cols,
                       .block_rows = 128, .block_cols = 128};
    uint8_t *d = malloc((size_t)(rows * cols));
    for (int64_t i = 0; i < rows * cols; i++) {
        uint8_t b = (uint8_t)next_u32();
        d[i] = finite_code(b) ? b : (uint8_t)(b ^ 1);
    }
    size_t ns = (size_t)(nm_groups(rows) * nm_groups(cols));
    float *s = malloc(ns * sizeof *s);
    for (size_t i = 0; i < ns; i++) s[i] = 1e-3f * (1.5f + rnd(1.0f));
    w.data = d, w.scale = s;
    return w;
}

/* A block's dot product as an exact integer count of 2^-18: e4m3 values are multiples of 2^-9. */
static float integer_block(const uint8_t *a, const uint8_t *b, int n)
{
    int64_t sum = 0;
    for (int i = 0; i < n; i++) {
        int64_t x = (int64_t)ldexp(nm_e4m3_value(a[i]), 9), y = (int64_t)ldexp(nm_e4m3_value(b[i]), 9);
        sum += x * y;
    }
    return (float)ldexp((double)sum, -18); /* |sum| < 2^43: exact in double, rounded once */
}

START_TEST(fp8_gemm_is_the_formula)
{
    const int shapes[][3] = {{5, 300, 3}, {130, 160, 2}, {64, 2048, 4}, {3, 7, 1}};
    for (size_t si = 0; si < sizeof shapes / sizeof shapes[0]; si++) {
        int64_t rows = shapes[si][0], K = shapes[si][1];
        int n = shapes[si][2], G = nm_groups(K);
        struct weight w = fp8_weight(rows, K);
        float *x = malloc((size_t)(n * K) * 4), *sx = malloc((size_t)(n * G) * 4);
        float *y = malloc((size_t)(n * rows) * 4);
        uint8_t *q = malloc((size_t)(n * K));
        for (int64_t i = 0; i < n * K; i++) x[i] = rnd(3.0f);
        nm_quant_1x128(x, K, n, K, q, sx);
        nm_matmul_fp8(&w, 0, rows, q, sx, n, y, rows);
        const uint8_t *wc = w.data;
        const float *ws = w.scale;
        for (int64_t o = 0; o < rows; o++)
            for (int t = 0; t < n; t++) {
                float acc = 0.0f;
                for (int g = 0; g < G; g++) {
                    int64_t c0 = g * 128, len = K - c0 < 128 ? K - c0 : 128;
                    float blk = integer_block(wc + o * K + c0, q + t * K + c0, (int)len);
                    float scale = sx[t * G + g] * ws[(o / 128) * G + g];
                    float term = blk * scale;
                    acc = acc + term;
                }
                ck_assert_msg(memcmp(&acc, &y[t * rows + o], 4) == 0, "row %ld token %d",
                              (long)o, t);
            }
        free((void *)w.data), free((void *)w.scale), free(x), free(sx), free(y), free(q);
    }
}
END_TEST

START_TEST(bf16_gemm_rounds_once)
{
    enum { R = 37, K = 1000, N = 3 };
    struct weight w = {.name = "w", .dtype = DT_BF16, .rows = R, .cols = K};
    uint16_t *wd = malloc(R * K * 2), xb[N * K];
    for (int i = 0; i < R * K; i++) wd[i] = f32_to_bf16(rnd(1.0f));
    for (int i = 0; i < N * K; i++) xb[i] = f32_to_bf16(rnd(2.0f));
    w.data = wd;
    float y[N * R];
    nm_matmul_bf16(&w, 0, R, xb, N, y, R);
    for (int o = 0; o < R; o++)
        for (int t = 0; t < N; t++) {
            long double s = 0, a = 0;
            for (int c = 0; c < K; c++) {
                long double p = (long double)bf16_to_f32(wd[o * K + c]) * bf16_to_f32(xb[t * K + c]);
                s += p, a += fabsl(p);
            }
            /* double summation: within K · 2^-53 of Σ|p| before the one F32 rounding */
            long double err = fabsl((long double)y[t * R + o] - s);
            ck_assert(err <= fabsl(s) * 0x1p-24L + a * K * 0x1p-52L);
        }
    free(wd);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("numerics");
    TCase *tc = tcase_create("numerics");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, decode_matches_the_dtype_table);
    tcase_add_test(tc, every_code_round_trips);
    tcase_add_test(tc, ties_to_even_between_every_pair);
    tcase_add_test(tc, saturation_and_nan);
    tcase_add_test(tc, subnormals);
    tcase_add_test(tc, random_floats_against_search);
    tcase_add_test(tc, bf16_rounding);
    tcase_add_test(tc, quantiser_groups);
    tcase_add_test(tc, fp8_gemm_is_the_formula);
    tcase_add_test(tc, bf16_gemm_rounds_once);
    suite_add_tcase(s, tc);
    return check_run(s, 0);
}
