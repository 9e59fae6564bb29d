/* Tests of engine/plan/fastlayout: FP8 arrays padded with zeros and stacked, scale grids in both
 * orders with padded rows, fills correct for any byte range a staging buffer cuts out, the BF16
 * absorption weights equal to the CPU emulation's (fast_stages), F32 widening — on odd shapes. */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "engine/cpu/fast_stages.h"
#include "engine/plan/fastlayout.h"
#include "engine/plan/wlayout.h"
#include "tests/check_run.h"

static uint64_t rng = 0x7a3fe1b2c4d5e6f7ull;

static uint32_t next_u32(void)
{
    rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
    return (uint32_t)(rng >> 11);
}

static struct weight fp8(int64_t rows, int64_t cols)
{
    struct weight w = {.name = "w", .dtype = DT_F8E4M3, .rows = rows, .cols = cols,
                       .block_rows = 128, .block_cols = 128};
    uint8_t *d = malloc((size_t)(rows * cols));
    for (int64_t i = 0; i < rows * cols; i++) d[i] = (uint8_t)(next_u32() % 0x7e);
    int64_t ns = (rows + 127) / 128 * ((cols + 127) / 128);
    float *s = malloc((size_t)ns * sizeof *s);
    for (int64_t i = 0; i < ns; i++) s[i] = 0.001f * (float)(1 + next_u32() % 1000);
    w.data = d, w.scale = s;
    return w;
}

/* The whole array through fills of random lengths, as staging buffers cut it. */
static void *fill_all(wl_fill_fn fn, const void *ctx, uint64_t bytes)
{
    uint8_t *out = malloc(bytes ? bytes : 1);
    memset(out, 0xa5, bytes);
    for (uint64_t at = 0; at < bytes;) {
        uint64_t n = 1 + next_u32() % 777;
        if (n > bytes - at) n = bytes - at;
        fn(ctx, at, n, out + at);
        at += n;
    }
    return out;
}

static float scale(const struct weight *w, int64_t rb, int64_t cb)
{
    return ((const float *)w->scale)[rb * ((w->cols + 127) / 128) + cb];
}

START_TEST(fp8_padded_stacked_both_orders)
{
    struct weight a = fp8(256, 232), b = fp8(176, 232), c = fp8(96, 232);
    struct fl_fp8 l;
    ck_assert_int_eq(fl_fp8_plan(&l, &c, &b, FL_NK, 4), -1); /* 96 rows: not whole blocks */
    for (int v = 0; v < 4; v++) {
        int order = v % 2, align = v < 2 ? 4 : 1;
        ck_assert_int_eq(fl_fp8_plan(&l, &a, &b, (enum fl_order)order, align), 0);
        ck_assert_int_eq(l.n, 432); ck_assert_int_eq(l.n_pad, 432); ck_assert_int_eq(l.k_pad, 240);
        ck_assert_int_eq(l.nb, 4); ck_assert_int_eq(l.kb, 2);
        uint8_t *codes = fill_all(fl_fill_codes, &l, fl_code_bytes(&l));
        float *sc = fill_all(fl_fill_scales, &l, fl_scale_bytes(&l));
        for (int64_t r = 0; r < l.n_pad; r++)
            for (int64_t k = 0; k < l.k_pad; k++) {
                const struct weight *w = r < 256 ? &a : &b;
                int64_t rr = r < 256 ? r : r - 256;
                uint8_t want = k < 232 && r < l.n ? ((const uint8_t *)w->data)[rr * 232 + k] : 0;
                ck_assert_int_eq(codes[r * l.k_pad + k], want);
            }
        for (int64_t nb = 0; nb < 4; nb++)
            for (int64_t kb = 0; kb < 2; kb++) {
                float want = nb < 2 ? scale(&a, nb, kb) : scale(&b, nb - 2, kb);
                float got = order == FL_NK ? sc[nb * l.s_ld + kb] : sc[kb * l.s_ld + nb];
                ck_assert(got == want);
            }
        ck_assert_int_eq(l.s_ld, align == 4 ? 4 : order == FL_NK ? 2 : 4);
        free(codes), free(sc);
    }
    free((void *)a.data), free((void *)a.scale), free((void *)b.data), free((void *)b.scale);
    free((void *)c.data), free((void *)c.scale);
}
END_TEST

/* W_UK and W_UV from an FP8 kv_b: the emulation's dequantised BF16 values, head by head. */
START_TEST(absorption_weights_match_the_emulation)
{
    enum { H = 3, DN = 32, DV = 24, DC = 160 };
    struct weight kvb = fp8(H * (DN + DV), DC);
    struct fl_mla m = {&kvb, H, DN, DV, DC};
    struct fs_mla_w ref;
    fs_mla_weights(&kvb, H, DN, DV, &ref);
    uint16_t *uk = fill_all(fl_fill_uk, &m, fl_uk_bytes(&m)), *uv = fill_all(fl_fill_uv, &m, fl_uv_bytes(&m));
    for (int h = 0; h < H; h++)
        for (int c = 0; c < DC; c++) {
            for (int d = 0; d < DN; d++)
                ck_assert(bf16_to_f32(uk[(h * DN + d) * DC + c]) == ref.uk[((size_t)h * DC + c) * DN + d]);
            for (int v = 0; v < DV; v++)
                ck_assert(bf16_to_f32(uv[(h * DV + v) * DC + c]) == ref.uv[((size_t)h * DV + v) * DC + c]);
        }
    fs_mla_free(&ref);
    free(uk), free(uv), free((void *)kvb.data), free((void *)kvb.scale);
}
END_TEST

START_TEST(widened_f32)
{
    uint16_t v[37];
    for (int i = 0; i < 37; i++) v[i] = f32_to_bf16(0.1f * (float)i - 1.3f);
    struct weight w = {.name = "n", .dtype = DT_BF16, .rows = 1, .cols = 37, .data = v};
    float *f = fill_all(fl_fill_f32, &w, 37 * 4);
    for (int i = 0; i < 37; i++) ck_assert(f[i] == bf16_to_f32(v[i]));
    free(f);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("fastlayout");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, fp8_padded_stacked_both_orders);
    tcase_add_test(tc, absorption_weights_match_the_emulation);
    tcase_add_test(tc, widened_f32);
    suite_add_tcase(s, tc);
    return check_run(s, 0);
}
