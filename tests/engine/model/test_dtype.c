/* Tests of engine/dtype: element conversions, FP8 e4m3fn decoding over all 256 codes. */
#include <check.h>
#include <math.h>

#include "engine/model/dtype.h"
#include "tests/check_run.h"

START_TEST(fp8_known_values)
{
    ck_assert_float_eq(fp8e4m3_to_f32(0x00), 0.0f);
    ck_assert(signbit(fp8e4m3_to_f32(0x80)));
    ck_assert_float_eq(fp8e4m3_to_f32(0x7e), 448.0f);  /* largest finite */
    ck_assert_float_eq(fp8e4m3_to_f32(0xfe), -448.0f);
    ck_assert_float_eq(fp8e4m3_to_f32(0x01), 0.001953125f); /* smallest subnormal 2^-9 */
    ck_assert_float_eq(fp8e4m3_to_f32(0x08), 0.015625f);    /* smallest normal 2^-6 */
    ck_assert_float_eq(fp8e4m3_to_f32(0x38), 1.0f);
    ck_assert_float_eq(fp8e4m3_to_f32(0x3c), 1.5f);
    ck_assert(isnan(fp8e4m3_to_f32(0x7f)));
    ck_assert(isnan(fp8e4m3_to_f32(0xff)));
}
END_TEST

/* Every code other than the two NaNs is finite and the codes are monotonic in magnitude. */
START_TEST(fp8_all_codes)
{
    float prev = -1.0f;
    for (int b = 0; b < 0x7f; b++) {
        float v = fp8e4m3_to_f32((uint8_t)b);
        ck_assert(isfinite(v));
        ck_assert(v > prev || (b == 0 && v == 0.0f));
        ck_assert_float_eq(fp8e4m3_to_f32((uint8_t)(b | 0x80)), -v);
        prev = v;
    }
}
END_TEST

START_TEST(bf16_round_trip)
{
    ck_assert_float_eq(bf16_to_f32(f32_to_bf16(1.0f)), 1.0f);
    ck_assert_float_eq(bf16_to_f32(f32_to_bf16(-2.5f)), -2.5f);
    /* 1 + 2^-8 is halfway between two bf16 values: ties to even (1.0). */
    ck_assert_float_eq(bf16_to_f32(f32_to_bf16(1.00390625f)), 1.0f);
    ck_assert_float_eq(bf16_to_f32(f32_to_bf16(1.01171875f)), 1.015625f);
    ck_assert(isnan(bf16_to_f32(f32_to_bf16(NAN))));
}
END_TEST

START_TEST(f16_values)
{
    ck_assert_float_eq(f16_to_f32(0x3c00), 1.0f);
    ck_assert_float_eq(f16_to_f32(0xc000), -2.0f);
    ck_assert_float_eq(f16_to_f32(0x7bff), 65504.0f);
    ck_assert_float_eq(f16_to_f32(0x0001), 5.9604644775390625e-8f);
    ck_assert(isinf(f16_to_f32(0x7c00)));
}
END_TEST

START_TEST(names_parse)
{
    enum dtype t;
    ck_assert_int_eq(dtype_parse("F8_E4M3", &t), 0);
    ck_assert_int_eq(t, DT_F8E4M3);
    ck_assert_int_eq(dtype_parse("BF16", &t), 0);
    ck_assert_int_eq(t, DT_BF16);
    ck_assert_int_eq(dtype_parse("I64", &t), -1);
    ck_assert_int_eq(dtype_parse("", &t), -1);
    ck_assert_uint_eq(dtype_size(DT_F32), 4);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("dtype");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, fp8_known_values);
    tcase_add_test(tc, fp8_all_codes);
    tcase_add_test(tc, bf16_round_trip);
    tcase_add_test(tc, f16_values);
    tcase_add_test(tc, names_parse);
    suite_add_tcase(s, tc);
    return check_run(s, 1);
}
