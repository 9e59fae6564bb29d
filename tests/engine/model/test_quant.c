/* Tests of engine/model/quant: every quantised type dequantises to exactly the floats of the gguf
 * Python package (bit-exact with ggml's to_float), on random blocks from
 * tests/fixtures/gguf/quant_blocks.gguf (made by tests/golden/make_gguf.py); and the F32 → F16
 * rounding the 8-bit path uses for activation scales. */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/model/gguf.h"
#include "engine/model/quant.h"
#include "tests/check_run.h"

#define FIX "tests/fixtures/gguf/quant_blocks.gguf"

START_TEST(dequant_matches_gguf_package)
{
    static const char *const names[] = {"q8_0", "q4_0", "q4_1", "q5_0", "q5_1",
                                        "q2_k", "q3_k", "q4_k", "q5_k", "q6_k"};
    static const enum dtype types[] = {DT_Q8_0, DT_Q4_0, DT_Q4_1, DT_Q5_0, DT_Q5_1,
                                       DT_Q2_K, DT_Q3_K, DT_Q4_K, DT_Q5_K, DT_Q6_K};
    struct gguf_set g;
    struct err e = {0};
    ck_assert_msg(gguf_open(&g, FIX, &e) == 0, "%s", e.msg);
    for (size_t i = 0; i < sizeof names / sizeof names[0]; i++) {
        char ref_name[32];
        snprintf(ref_name, sizeof ref_name, "%s.f32", names[i]);
        const struct gguf_tensor *q = gguf_tensor(&g, names[i]), *ref = gguf_tensor(&g, ref_name);
        ck_assert_msg(q && ref, "%s missing from the fixture", names[i]);
        ck_assert_int_eq(q->dtype, types[i]);
        size_t n = (size_t)(q->ne[0] * q->ne[1]);
        float *got = malloc(n * sizeof *got);
        dtype_to_f32(q->dtype, q->data, got, n);
        ck_assert_msg(!memcmp(got, ref->data, n * sizeof *got), "%s differs from the gguf package",
                      names[i]);
        for (int64_t r = 0; r < q->ne[1]; r++) { /* row by row, as the kernels read them */
            quant_dequant(q->dtype, (const uint8_t *)q->data + r * dtype_row_bytes(q->dtype, q->ne[0]),
                          got, (size_t)q->ne[0]);
            ck_assert(!memcmp(got, (const float *)ref->data + r * q->ne[0], (size_t)q->ne[0] * sizeof *got));
        }
        free(got);
    }
    gguf_close(&g);
}
END_TEST

START_TEST(block_sizes)
{
    ck_assert_int_eq(dtype_block(DT_Q4_K), 256);
    ck_assert_int_eq(dtype_size(DT_Q4_K), 144);
    ck_assert_int_eq(dtype_row_bytes(DT_Q8_0, 64), 68);
    ck_assert_int_eq(dtype_row_bytes(DT_F32, 3), 12);
    ck_assert(dtype_is_quant(DT_Q6_K) && !dtype_is_quant(DT_BF16));
    enum dtype t;
    ck_assert_int_eq(dtype_parse("Q4_K", &t), -1); /* never a safetensors dtype */
}
END_TEST

/* RNE to F16 against the hardware-free definition: the nearest F16, ties to even. */
START_TEST(f32_to_f16_rounds_to_nearest_even)
{
    ck_assert_uint_eq(f32_to_f16(1.0f), 0x3c00);
    ck_assert_uint_eq(f32_to_f16(-2.0f), 0xc000);
    ck_assert_uint_eq(f32_to_f16(65504.0f), 0x7bff);
    ck_assert_uint_eq(f32_to_f16(65520.0f), 0x7c00); /* halfway to the next: infinity */
    ck_assert_uint_eq(f32_to_f16(1.0f + 0x1p-11f), 0x3c00); /* a tie: to even */
    ck_assert_uint_eq(f32_to_f16(1.0f + 3 * 0x1p-11f), 0x3c02);
    ck_assert_uint_eq(f32_to_f16(0x1p-24f), 0x0001);
    ck_assert_uint_eq(f32_to_f16(0x1p-25f), 0x0000); /* a tie at the bottom: to even, zero */
    ck_assert(isnan(f16_to_f32(f32_to_f16(NAN))));
    uint64_t s = 12345;
    for (int i = 0; i < 200000; i++) { /* round trip of every kind of value */
        s = s * 6364136223846793005ull + 1442695040888963407ull;
        uint16_t h = (uint16_t)(s >> 48);
        if (((h >> 10) & 31) == 31) continue;
        ck_assert_uint_eq(f32_to_f16(f16_to_f32(h)), h);
    }
}
END_TEST

int main(void)
{
    Suite *s = suite_create("quant");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, dequant_matches_gguf_package);
    tcase_add_test(tc, block_sizes);
    tcase_add_test(tc, f32_to_f16_rounds_to_nearest_even);
    suite_add_tcase(s, tc);
    return check_run(s, 1);
}
