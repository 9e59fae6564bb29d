/* Tests of cuda/core.h, the arithmetic the CUDA kernels run, against engine/cpu's reference
 * functions on the host: same inputs, the same bits. Widening of every BF16 / F16 / FP8 code
 * (FP8 times random block scales), BF16 rounding, weight rows as cpu_weight_row widens them,
 * RoPE pairs, SwiGLU, RMSNorm's factor, and routing (V3 noaux_tc, V2 greedy and group-limited)
 * against moe_route on random logits, ties included. */
#include <check.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "cuda/core.h"
#include "engine/cpu/cpu_ops.h"
#include "engine/cpu/moe.h"
#include "engine/model/rope.h"
#include "tests/check_run.h"

static uint64_t rng = 0xda942042e4dd58b5ull;

static uint32_t next_u32(void)
{
    rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
    return (uint32_t)(rng >> 11);
}

/* Uniform in [-a, a), never exactly 0. */
static float rnd(float a)
{
    float v = ((float)(next_u32() % 2000001u) / 1000000.0f - 1.0f) * a;
    return v == 0.0f ? 0.375f * a : v;
}

static int same_bits(float a, float b)
{
    return (isnan(a) && isnan(b)) || memcmp(&a, &b, sizeof a) == 0;
}

START_TEST(bf16_and_f16_every_code)
{
    for (uint32_t h = 0; h < 65536; h++) {
        ck_assert_msg(same_bits(core_bf16((uint16_t)h), bf16_to_f32((uint16_t)h)), "bf16 %04x", h);
        ck_assert_msg(same_bits(core_f16((uint16_t)h), f16_to_f32((uint16_t)h)), "f16 %04x", h);
    }
}
END_TEST

/* Every e4m3 code but the two NaNs (never weights), times scales of several magnitudes. */
START_TEST(fp8_every_code)
{
    const float scales[] = {1.0f, 0.0009765625f, 3.7e-4f, 12.5f, rnd(1e-3f)};
    for (size_t s = 0; s < sizeof scales / sizeof scales[0]; s++)
        for (int b = 0; b < 256; b++) {
            if ((b & 0x7f) == 0x7f) continue;
            float want = fp8e4m3_to_f32((uint8_t)b) * scales[s];
            ck_assert_msg(same_bits(core_fp8((uint8_t)b, scales[s]), want), "code %02x", b);
        }
}
END_TEST

START_TEST(bf16_rounding)
{
    const float special[] = {0.0f, -0.0f, INFINITY, -INFINITY, NAN, 1e-40f, 3.4e38f, 1.00390625f};
    for (size_t i = 0; i < sizeof special / sizeof special[0]; i++)
        ck_assert_uint_eq(core_to_bf16(special[i]), f32_to_bf16(special[i]));
    for (int i = 0; i < 200000; i++) {
        float f = core_bits_f32(next_u32() ^ (next_u32() << 11));
        ck_assert_uint_eq(core_to_bf16(f), f32_to_bf16(f));
    }
}
END_TEST

/* A random weight with owned storage; FP8 gets a 128×128 scale grid. */
static struct weight make_weight(enum dtype t, int64_t rows, int64_t cols)
{
    struct weight w = {.name = "w", .dtype = t, .rows = rows, .cols = cols};
    size_t n = (size_t)(rows * cols);
    uint8_t *d = malloc(n * dtype_size(t));
    for (size_t i = 0; i < n; i++) {
        if (t == DT_F32) {
            float f = rnd(1.0f);
            memcpy(d + 4 * i, &f, 4);
        } else if (t == DT_BF16 || t == DT_F16) {
            uint16_t h = t == DT_BF16 ? f32_to_bf16(rnd(1.0f)) : (uint16_t)(next_u32() & 0xbfff);
            memcpy(d + 2 * i, &h, 2);
        } else {
            uint8_t b = (uint8_t)next_u32();
            d[i] = (b & 0x7f) == 0x7f ? (uint8_t)(b ^ 1) : b;
        }
    }
    w.data = d;
    if (t == DT_F8E4M3) {
        w.block_rows = w.block_cols = 128;
        size_t ns = (size_t)((rows + 127) / 128 * ((cols + 127) / 128));
        float *s = malloc(ns * sizeof *s);
        for (size_t i = 0; i < ns; i++) s[i] = 1e-3f * (1.5f + rnd(1.0f));
        w.scale = s;
    }
    return w;
}

/* What a kernel reads for element (r, c): the scale lookup of cuda/kcommon.cuh's cu_w_at. */
static float kernel_element(const struct weight *w, int64_t r, int64_t c)
{
    const char *row = (const char *)w->data + (size_t)(r * w->cols) * dtype_size(w->dtype);
    float s = 1.0f;
    if (w->scale) {
        int64_t n_cb = (w->cols + w->block_cols - 1) / w->block_cols;
        s = ((const float *)w->scale)[core_scale_at(r, c, 0, 0, w->block_rows, w->block_cols, n_cb)];
    }
    return core_widen((int)w->dtype, row, c, s);
}

START_TEST(weight_rows_as_the_cpu_widens_them)
{
    const enum dtype types[] = {DT_F32, DT_BF16, DT_F16, DT_F8E4M3};
    for (size_t i = 0; i < 4; i++) {
        struct weight w = make_weight(types[i], 300, 333); /* partial scale blocks both ways */
        float row[333];
        for (int64_t r = 0; r < w.rows; r++) {
            cpu_weight_row(&w, r, row);
            for (int64_t c = 0; c < w.cols; c++)
                ck_assert_msg(same_bits(kernel_element(&w, r, c), row[c]), "%s (%ld, %ld)",
                              dtype_name(types[i]), (long)r, (long)c);
        }
        free((void *)w.data);
        free((void *)w.scale);
    }
}
END_TEST

START_TEST(rope_pairs)
{
    struct model_config c = {.qk_nope_head_dim = 128, .qk_rope_head_dim = 64, .rope_theta = 10000,
                             .rope_yarn = 1, .rope_factor = 40, .rope_orig_max_pos = 4096,
                             .rope_beta_fast = 32, .rope_beta_slow = 1, .rope_mscale = 1,
                             .rope_mscale_all_dim = 1};
    struct rope r;
    rope_init(&r, &c);
    float cs[32], sn[32], a[64], b[64];
    for (int pos = 0; pos < 5000; pos += 37) {
        rope_angles(&r, pos, cs, sn);
        for (int i = 0; i < 64; i++) a[i] = b[i] = rnd(3.0f);
        rope_apply(a, 32, cs, sn);
        for (int i = 0; i < 32; i++) core_rope_pair(b + 2 * i, cs[i], sn[i]);
        ck_assert(memcmp(a, b, sizeof a) == 0);
    }
}
END_TEST

START_TEST(swiglu_and_norm_factor)
{
    float a[1000], b[1000], g[1000];
    for (int i = 0; i < 1000; i++) a[i] = g[i] = rnd(8.0f), b[i] = rnd(2.0f);
    cpu_silu_mul(a, b, 1000);
    for (int i = 0; i < 1000; i++) ck_assert(same_bits(core_silu_mul(g[i], b[i]), a[i]));
    /* cpu_rmsnorm's output from the core factor: x · r · w */
    struct weight w = make_weight(DT_BF16, 1, 257);
    float x[257], out[257], wv[257];
    for (int i = 0; i < 257; i++) x[i] = rnd(4.0f);
    cpu_rmsnorm(x, &w, 1, 257, 257, 1e-6f, out, 257);
    cpu_weight_row(&w, 0, wv);
    float f = core_rms_factor(cpu_dot(x, x, 257), 257, 1e-6f);
    for (int i = 0; i < 257; i++) ck_assert(same_bits(x[i] * f * wv[i], out[i]));
    free((void *)w.data);
}
END_TEST

static struct core_route_cfg route_cfg(const struct model_config *c)
{
    return (struct core_route_cfg){.n_experts = c->n_routed_experts, .k = c->n_experts_per_tok,
                                   .n_group = c->n_group, .topk_group = c->topk_group,
                                   .sigmoid = c->scoring == SCORE_SIGMOID,
                                   .method = (int)c->topk_method,
                                   .normalise = c->norm_topk_prob && c->arch == ARCH_DEEPSEEK_V3,
                                   .factor = c->routed_scaling_factor};
}

/* Random logits (some tokens with tied values) through both; identical ids and weights. */
static void route_both(const struct model_config *c, int with_bias)
{
    int E = c->n_routed_experts, k = c->n_experts_per_tok;
    struct core_route_cfg rc = route_cfg(c);
    float logits[256], bias[256], s1[3 * 256 + 16], s2[3 * 256 + 16], w1[16], w2[16];
    int i1[16], i2[16];
    unsigned char taken[256];
    for (int t = 0; t < 500; t++) {
        for (int i = 0; i < E; i++) logits[i] = t % 5 == 0 ? (float)(next_u32() % 4) : rnd(4.0f);
        for (int i = 0; i < E; i++) bias[i] = rnd(0.1f);
        moe_route(c, logits, with_bias ? bias : NULL, s1, i1, w1);
        core_route(&rc, logits, with_bias ? bias : NULL, s2, taken, i2, w2);
        ck_assert(memcmp(i1, i2, (size_t)k * sizeof *i1) == 0);
        ck_assert(memcmp(w1, w2, (size_t)k * sizeof *w1) == 0);
    }
}

START_TEST(routing_v3)
{
    struct model_config c = {.arch = ARCH_DEEPSEEK_V3, .n_routed_experts = 256, .n_experts_per_tok = 8,
                             .n_group = 8, .topk_group = 4, .scoring = SCORE_SIGMOID,
                             .topk_method = TOPK_NOAUX_TC, .norm_topk_prob = 1,
                             .routed_scaling_factor = 2.5f};
    route_both(&c, 1);
    route_both(&c, 0);
    c.n_routed_experts = 16, c.n_experts_per_tok = 4, c.n_group = 4, c.topk_group = 2;
    route_both(&c, 1);
}
END_TEST

START_TEST(routing_v2)
{
    struct model_config c = {.arch = ARCH_DEEPSEEK_V2, .n_routed_experts = 64, .n_experts_per_tok = 6,
                             .n_group = 1, .topk_group = 1, .scoring = SCORE_SOFTMAX,
                             .topk_method = TOPK_GREEDY, .norm_topk_prob = 0,
                             .routed_scaling_factor = 1.0f};
    route_both(&c, 0);
    c.n_routed_experts = 160, c.n_group = 8, c.topk_group = 3;
    c.topk_method = TOPK_GROUP_LIMITED_GREEDY, c.routed_scaling_factor = 16.0f;
    route_both(&c, 0);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("cores");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, bf16_and_f16_every_code);
    tcase_add_test(tc, fp8_every_code);
    tcase_add_test(tc, bf16_rounding);
    tcase_add_test(tc, weight_rows_as_the_cpu_widens_them);
    tcase_add_test(tc, rope_pairs);
    tcase_add_test(tc, swiglu_and_norm_factor);
    tcase_add_test(tc, routing_v3);
    tcase_add_test(tc, routing_v2);
    suite_add_tcase(s, tc);
    return check_run(s, 0);
}
