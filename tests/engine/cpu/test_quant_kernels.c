/* Tests of engine/cpu/quant_kernels (and quant_simd.h through the AVX2 / AVX-512 sets): on random
 * blocks of every quantised type and random (never zero) activations,
 *  - every SIMD set quantises activations and unpacks rows to exactly the scalar set's bytes and
 *    floats, and its dots differ from the scalar set's only by float reassociation
 *    (≤ 1e-5 of Σ|terms|);
 *  - the 8-bit dot equals the exact dot of the dequantised weights with the dequantised
 *    activations, up to the fp16 rounding of s (Q4_1, Q5_1) and float sums;
 *  - it is within the activation quantisation error (half a step per value) of the F32 dot;
 *  - the exact path widens to quant_dequant's floats;
 *  - matmuls give the same bits for a token alone or in any batch, with any thread count. */
#include <check.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "engine/cpu/quant_kernels.h"
#include "engine/model/quant.h"
#include "tests/check_run.h"

static const enum dtype TYPES[] = {DT_Q8_0, DT_Q4_0, DT_Q4_1, DT_Q5_0, DT_Q5_1,
                                   DT_Q2_K, DT_Q3_K, DT_Q4_K, DT_Q5_K, DT_Q6_K};
#define N_TYPES (sizeof TYPES / sizeof TYPES[0])

static uint64_t rng = 0x2545F4914F6CDD1Dull;

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

/* Byte offsets of a block's fp16 scale fields (d, and dmin or m), -1 when absent. */
static void scale_fields(enum dtype t, int *a, int *b)
{
    *b = -1;
    switch (t) {
    case DT_Q2_K: *a = 80, *b = 82; break;
    case DT_Q3_K: *a = 108; break;
    case DT_Q6_K: *a = 208; break;
    case DT_Q4_K: case DT_Q5_K: case DT_Q4_1: case DT_Q5_1: *a = 0, *b = 2; break;
    default: *a = 0; break;
    }
}

/* A random [rows, cols] weight of type t: random bytes, finite scales of about 0.01. */
static struct weight make_weight(enum dtype t, int64_t rows, int64_t cols)
{
    size_t rb = dtype_row_bytes(t, cols), bs = dtype_size(t);
    uint8_t *d = malloc((size_t)rows * rb);
    for (size_t i = 0; i < (size_t)rows * rb; i++) d[i] = (uint8_t)next_u32();
    int fa, fb;
    scale_fields(t, &fa, &fb);
    for (size_t b = 0; b < (size_t)rows * rb / bs; b++) {
        uint16_t h = f32_to_f16(0.01f * rnd());
        memcpy(d + b * bs + fa, &h, 2);
        if (fb >= 0) h = f32_to_f16(0.01f * rnd()), memcpy(d + b * bs + fb, &h, 2);
    }
    return (struct weight){.name = "w", .dtype = t, .rows = rows, .cols = cols, .data = d};
}

static float *make_x(int n, int64_t k)
{
    float *x = malloc((size_t)n * (size_t)k * sizeof *x);
    for (int64_t i = 0; i < n * k; i++) x[i] = rnd() * (i % 7 == 0 ? 4.0f : 1.0f);
    return x;
}

static const struct qk_set *sets[3];
static int n_sets;

static void find_sets(void)
{
    n_sets = 0;
    sets[n_sets++] = qk_scalar();
    if (qk_avx2()) sets[n_sets++] = qk_avx2();
    if (qk_avx512() && qk_avx512() != qk_avx2()) sets[n_sets++] = qk_avx512();
}

/* Scratch for n tokens of length k, laid out. */
static void *alloc_layout(int64_t k, int n, struct qk_act *a, struct qk_row *r)
{
    void *buf = aligned_alloc(64, qk_scratch_bytes(k, n, 1));
    qk_layout(buf, k, n, a, r, 1);
    return buf;
}

/* The dequantised activations of token t. */
static void act_floats(enum dtype wt, const struct qk_act *a, int t, float *out)
{
    int64_t k = a->k;
    int blk = qk_type_of(wt).k_type ? 256 : 32;
    for (int64_t i = 0; i < k; i++) out[i] = a->d[t * k / 32 + i / blk] * (float)a->q[t * k + i];
}

START_TEST(sets_agree_with_scalar)
{
    find_sets();
    const int64_t ks[] = {256, 512, 768};
    for (size_t ti = 0; ti < N_TYPES; ti++) {
        for (size_t ki = 0; ki < sizeof ks / sizeof ks[0]; ki++) {
            int64_t k = ks[ki];
            enum dtype t = TYPES[ti];
            struct weight w = make_weight(t, 3, k);
            float *x = make_x(5, k);
            struct qk_act a0, a1;
            struct qk_row r0, r1;
            void *b0 = alloc_layout(k, 5, &a0, &r0), *b1 = alloc_layout(k, 5, &a1, &r1);
            for (int tk = 0; tk < 5; tk++) qk_scalar()->quantize(x + tk * k, t, &a0, tk);
            for (int s = 1; s < n_sets; s++) {
                for (int tk = 0; tk < 5; tk++) sets[s]->quantize(x + tk * k, t, &a1, tk);
                ck_assert_msg(!memcmp(a0.q, a1.q, 5 * (size_t)k), "%s %s: quants", sets[s]->name, dtype_name(t));
                int per = qk_type_of(t).k_type ? (int)(k / 256) : (int)(k / 32); /* scales per token */
                for (int tk = 0; tk < 5; tk++)
                    ck_assert(!memcmp(a0.d + tk * k / 32, a1.d + tk * k / 32, (size_t)per * sizeof(float)));
                if (!qk_type_of(t).k_type) {
                    ck_assert(!memcmp(a0.s, a1.s, 5 * (size_t)k / 32 * sizeof(float)));
                    ck_assert(!memcmp(a0.qs, a1.qs, 5 * (size_t)k / 32 * sizeof(int32_t)));
                } else {
                    ck_assert_msg(!memcmp(a0.bs, a1.bs, 5 * (size_t)k / 16 * sizeof(int16_t)), "%s bsums", sets[s]->name);
                }
                for (int64_t row = 0; row < 3; row++) {
                    float y0[5], y1[5];
                    qk_scalar()->unpack(&w, row, &r0);
                    sets[s]->unpack(&w, row, &r1);
                    ck_assert_msg(!memcmp(r0.u, r1.u, (size_t)k), "%s %s row %lld: codes", sets[s]->name,
                                  dtype_name(t), (long long)row);
                    int nb = qk_type_of(t).k_type ? (int)(k / 256) : (int)(k / 32);
                    ck_assert(!memcmp(r0.d, r1.d, (size_t)nb * sizeof(float)));
                    ck_assert(!memcmp(r0.m, r1.m, (size_t)nb * sizeof(float)));
                    if (qk_type_of(t).k_type) {
                        ck_assert(!memcmp(r0.sc, r1.sc, (size_t)k / 16 * 2) && !memcmp(r0.mn, r1.mn, (size_t)k / 16 * 2));
                        ck_assert(!memcmp(r0.scp, r1.scp, (size_t)k / 2 * 2));
                    }
                    qk_scalar()->dot(t, &r0, &a0, 5, y0, 1);
                    sets[s]->dot(t, &r1, &a0, 5, y1, 1);
                    float *wf = malloc((size_t)k * sizeof *wf), *xf = malloc((size_t)k * sizeof *xf);
                    quant_dequant(t, (const uint8_t *)w.data + row * dtype_row_bytes(t, k), wf, (size_t)k);
                    for (int tk = 0; tk < 5; tk++) {
                        act_floats(t, &a0, tk, xf);
                        double mag = 0.0;
                        for (int64_t i = 0; i < k; i++) mag += fabs((double)wf[i] * xf[i]);
                        ck_assert_msg(fabs(y0[tk] - y1[tk]) <= 1e-5 * mag + 1e-30, "%s %s: %g vs %g",
                                      sets[s]->name, dtype_name(t), y0[tk], y1[tk]);
                    }
                    free(wf);
                    free(xf);
                }
            }
            free(b0), free(b1), free(x), free((void *)w.data);
        }
    }
}
END_TEST

/* The 8-bit dot against double sums: exact in its own terms, close to the F32 dot. */
START_TEST(dot_semantics)
{
    const struct qk_set *s = qk_set_for(simd_best());
    for (size_t ti = 0; ti < N_TYPES; ti++) {
        enum dtype t = TYPES[ti];
        int64_t k = 512;
        struct weight w = make_weight(t, 4, k);
        float *x = make_x(3, k), *wf = malloc((size_t)k * sizeof *wf), *xf = malloc((size_t)k * sizeof *xf);
        struct qk_act a;
        struct qk_row r;
        void *buf = alloc_layout(k, 3, &a, &r);
        for (int tk = 0; tk < 3; tk++) s->quantize(x + tk * k, t, &a, tk);
        for (int64_t row = 0; row < 4; row++) {
            float y[3];
            s->unpack(&w, row, &r);
            s->dot(t, &r, &a, 3, y, 1);
            quant_dequant(t, (const uint8_t *)w.data + row * dtype_row_bytes(t, k), wf, (size_t)k);
            for (int tk = 0; tk < 3; tk++) {
                act_floats(t, &a, tk, xf);
                double exact = 0, f32 = 0, mag = 0, step = 0;
                for (int64_t i = 0; i < k; i++) {
                    exact += (double)wf[i] * xf[i], f32 += (double)wf[i] * x[tk * k + i];
                    mag += fabs((double)wf[i] * xf[i]);
                    step += fabs((double)wf[i] * a.d[tk * k / 32 + i / (qk_type_of(t).k_type ? 256 : 32)]);
                }
                /* s = fp16(d·Σq) moves the min term by up to 2^-11 of it */
                double slack = qk_type_of(t).mins && !qk_type_of(t).k_type ? 1e-3 * mag : 0.0;
                ck_assert_msg(fabs(y[tk] - exact) <= 1e-5 * mag + slack + 1e-30, "%s: %g vs exact %g",
                              dtype_name(t), y[tk], exact);
                ck_assert_msg(fabs(y[tk] - f32) <= 0.51 * step * 1.01 + 1e-5 * mag + slack,
                              "%s: %g vs f32 %g (step %g)", dtype_name(t), y[tk], f32, step);
            }
        }
        free(buf), free(x), free(wf), free(xf), free((void *)w.data);
    }
}
END_TEST

START_TEST(exact_path_widens_exactly)
{
    for (size_t ti = 0; ti < N_TYPES; ti++) {
        struct weight w = make_weight(TYPES[ti], 3, 512);
        float got[3 * 512], want[512];
        qk_widen_rows(&w, 0, 3, got, 512);
        for (int r = 0; r < 3; r++) {
            quant_dequant(w.dtype, (const uint8_t *)w.data + r * dtype_row_bytes(w.dtype, 512), want, 512);
            ck_assert(!memcmp(got + r * 512, want, sizeof want));
        }
        free((void *)w.data);
    }
}
END_TEST

/* dot_packed gives the bits of unpack + dot, for every type and length (for the 32-value types
 * whole groups of eight blocks and a last partial one), 1..8 tokens, and row ranges of every
 * start and length up to 9 (the kernels take some rows in groups; the rest one at a time). */
enum { PK_ROWS = 9 };

START_TEST(packed_equals_unpacked)
{
    find_sets();
    const int64_t ks[] = {32, 96, 256, 576}, kks[] = {256, 512, 768, 1280}; /* 32-value, K types */
    for (int s = 1; s < n_sets; s++) {
        if (!sets[s]->dot_packed) continue;
        for (size_t ti = 0; ti < N_TYPES; ti++) {
            enum dtype t = TYPES[ti];
            for (size_t ki = 0; ki < sizeof ks / sizeof ks[0]; ki++) {
                int64_t k = qk_type_of(t).k_type ? kks[ki] : ks[ki];
                struct weight w = make_weight(t, PK_ROWS, k);
                float *x = make_x(8, k), y0[8 * PK_ROWS], y1[8 * PK_ROWS];
                struct qk_act a;
                struct qk_row r;
                void *buf = alloc_layout(k, 8, &a, &r);
                for (int tk = 0; tk < 8; tk++) sets[s]->quantize(x + tk * k, t, &a, tk);
                for (int nt = 1; nt <= 8; nt++) {
                    for (int64_t row = 0; row < PK_ROWS; row++) {
                        sets[s]->unpack(&w, row, &r);
                        sets[s]->dot(t, &r, &a, nt, y0 + row, PK_ROWS);
                    }
                    for (int64_t r0 = 0; r0 < PK_ROWS; r0++)
                        for (int64_t r1 = r0 + 1; r1 <= PK_ROWS; r1++) {
                            sets[s]->dot_packed(&w, r0, r1, &a, nt, y1, PK_ROWS);
                            for (int tk = 0; tk < nt; tk++)
                                ck_assert_msg(!memcmp(y0 + tk * PK_ROWS + r0, y1 + tk * PK_ROWS,
                                                      (size_t)(r1 - r0) * sizeof(float)),
                                              "%s %s k=%lld nt=%d rows %lld..%lld token %d",
                                              sets[s]->name, dtype_name(t), (long long)k, nt,
                                              (long long)r0, (long long)r1, tk);
                        }
                }
                free(buf), free(x), free((void *)w.data);
            }
        }
    }
}
END_TEST

/* A row's dot with each token is the same bits alone (one token: each sum reduced by itself) as
 * with 2..8 tokens at once (the sets reduce up to four sums side by side), for every type and
 * length: with packed_equals_unpacked, every path gives the one-token bits. */
START_TEST(grouped_dots_equal_single)
{
    find_sets();
    const int64_t ks[] = {32, 96, 256, 576}, kks[] = {256, 512, 768, 1280};
    for (int s = 1; s < n_sets; s++)
        for (size_t ti = 0; ti < N_TYPES; ti++) {
            enum dtype t = TYPES[ti];
            for (size_t ki = 0; ki < sizeof ks / sizeof ks[0]; ki++) {
                int64_t k = qk_type_of(t).k_type ? kks[ki] : ks[ki];
                struct weight w = make_weight(t, 1, k);
                float *x = make_x(8, k), alone[8], y[8];
                struct qk_act a;
                struct qk_row r;
                void *buf = alloc_layout(k, 8, &a, &r);
                for (int tk = 0; tk < 8; tk++) sets[s]->quantize(x + tk * k, t, &a, tk);
                sets[s]->unpack(&w, 0, &r);
                for (int tk = 0; tk < 8; tk++) {
                    struct qk_act at = qk_act_at(&a, tk);
                    sets[s]->dot(t, &r, &at, 1, alone + tk, 1);
                }
                for (int nt = 2; nt <= 8; nt++) {
                    sets[s]->dot(t, &r, &a, nt, y, 1);
                    for (int tk = 0; tk < nt; tk++)
                        ck_assert_msg(!memcmp(&alone[tk], &y[tk], sizeof(float)),
                                      "%s %s k=%lld nt=%d token %d: %.9g alone, %.9g", sets[s]->name,
                                      dtype_name(t), (long long)k, nt, tk, alone[tk], y[tk]);
                }
                free(buf), free(x), free((void *)w.data);
            }
        }
}
END_TEST

/* A set's 16-row tiles give each (row, token) the bits of its one-row dot of that token alone,
 * for every K type, lengths whose scale units fill one 16 × 16 transpose, part of one and
 * several (and long enough rows that four, three and one tile are built at a time), and token
 * counts that end in every remainder of four. */
START_TEST(tiles_equal_single)
{
    find_sets();
    const int64_t ks[] = {256, 768, 1280, 4352, 7168, 13056};
    for (int s = 1; s < n_sets; s++) {
        if (!sets[s]->tiles) continue;
        struct tp *tp = tp_create(1);
        struct ops o = {.tp = tp, .k = simd_best(), .q8 = 1};
        for (size_t ti = 0; ti < N_TYPES; ti++) {
            enum dtype t = TYPES[ti];
            if (!qk_type_of(t).k_type) continue;
            for (size_t ki = 0; ki < sizeof ks / sizeof ks[0]; ki++) {
                int64_t k = ks[ki];
                const int rows = 80, n = 39;
                struct weight w = make_weight(t, rows, k);
                float *x = make_x(n, k), *y = malloc(sizeof(float) * rows * n), alone;
                struct qk_act a;
                struct qk_row r;
                void *buf = alloc_layout(k, n, &a, &r);
                for (int tk = 0; tk < n; tk++) sets[s]->quantize(x + tk * k, t, &a, tk);
                sets[s]->tiles(&o, 0, sets[s], &w, 0, rows, &a, n, y, rows);
                for (int i = 0; i < rows; i++) {
                    sets[s]->unpack(&w, i, &r);
                    for (int tk = 0; tk < n; tk++) {
                        struct qk_act at = qk_act_at(&a, tk);
                        sets[s]->dot(t, &r, &at, 1, &alone, 1);
                        ck_assert_msg(!memcmp(&alone, &y[tk * rows + i], sizeof(float)),
                                      "%s %s k=%lld row %d token %d: %.9g alone, %.9g tiled", sets[s]->name,
                                      dtype_name(t), (long long)k, i, tk, alone, y[tk * rows + i]);
                    }
                }
                free(buf), free(x), free(y), free((void *)w.data);
            }
        }
        tp_destroy(tp);
    }
}
END_TEST

/* Token t's outputs are the same bits alone, in batches of 3..5, 9 and 41 (packed and unpacked
 * dots for every type in some set, and 16-row tiles for the K types in the AVX-512 set), with 1..3 threads, in both arithmetics, for every set. */
START_TEST(batch_and_thread_invariance)
{
    const char *names[] = {"scalar", "avx2", "avx512"};
    for (size_t ti = 0; ti < N_TYPES; ti++) {
        int64_t cols = qk_type_of(TYPES[ti]).k_type ? 512 : 576; /* 576: a partial group of blocks */
        struct weight w = make_weight(TYPES[ti], 70, cols);
        float *x = make_x(41, cols), alone[70], y[41 * 70];
        for (int ni = 0; ni < 3; ni++) {
            const struct simd_kernels *k = simd_by_name(names[ni]);
            if (!k) continue;
            for (int q8 = 0; q8 < 2; q8++) {
                struct tp *tp1 = tp_create(1);
                struct ops o1 = {.tp = tp1, .k = k, .q8 = q8};
                ops_matmul(&o1, &w, x + 2 * cols, 1, alone); /* token 2 alone */
                tp_destroy(tp1);
                for (int th = 1; th <= 3; th++)
                    for (int n = 3; n <= 41; n += n < 5 ? 1 : n < 9 ? 4 : 32) {
                        struct tp *tp = tp_create(th);
                        struct ops o = {.tp = tp, .k = k, .q8 = q8};
                        ops_matmul(&o, &w, x, n, y);
                        tp_destroy(tp);
                        ck_assert_msg(!memcmp(alone, y + 2 * 70, sizeof alone), "%s %s q8=%d %d threads, %d tokens",
                                      names[ni], dtype_name(w.dtype), q8, th, n);
                    }
            }
        }
        free(x), free((void *)w.data);
    }
}
END_TEST

/* The activations a thread keeps between the tasks of one loop are never used by a later loop:
 * the same input buffer with new values gives the new values' results, in a pool of 1 and of 2
 * threads, as a fresh pool computes them. */
START_TEST(kept_activations_end_with_their_loop)
{
    struct weight w = make_weight(DT_Q4_K, 64, 512);
    float *x = make_x(2, 512), want[2 * 64], got[2 * 64];
    for (int th = 1; th <= 2; th++) {
        struct tp *tp = tp_create(th);
        struct ops o = {.tp = tp, .k = simd_best(), .q8 = 1};
        ops_matmul(&o, &w, x, 2, got);
        for (int i = 0; i < 2 * 512; i++) x[i] = -0.5f * x[i] + 0.25f;
        ops_matmul(&o, &w, x, 2, got);
        struct tp *fresh = tp_create(1);
        struct ops of = {.tp = fresh, .k = simd_best(), .q8 = 1};
        ops_matmul(&of, &w, x, 2, want);
        tp_destroy(fresh);
        ck_assert_msg(!memcmp(want, got, sizeof want), "%d threads: stale activations", th);
        tp_destroy(tp);
    }
    free(x), free((void *)w.data);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("quant_kernels");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, sets_agree_with_scalar);
    tcase_add_test(tc, dot_semantics);
    tcase_add_test(tc, exact_path_widens_exactly);
    tcase_add_test(tc, packed_equals_unpacked);
    tcase_add_test(tc, grouped_dots_equal_single);
    tcase_add_test(tc, tiles_equal_single);
    tcase_add_test(tc, batch_and_thread_invariance);
    tcase_add_test(tc, kept_activations_end_with_their_loop);
    suite_add_tcase(s, tc);
    return check_run(s, 1);
}
