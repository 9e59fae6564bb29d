/* Tests of engine/moe: routing decisions and weights worked out by hand. */
#include <check.h>
#include <math.h>

#include "engine/cpu/moe.h"
#include "tests/check_run.h"

static struct model_config v3(void)
{
    struct model_config c = {.arch = ARCH_DEEPSEEK_V3, .n_routed_experts = 8, .n_experts_per_tok = 2,
                             .n_group = 4, .topk_group = 2, .scoring = SCORE_SIGMOID,
                             .topk_method = TOPK_NOAUX_TC, .norm_topk_prob = 1,
                             .routed_scaling_factor = 2.5f};
    return c;
}

/* Equal affinities: the bias alone picks groups 1 and 3 (sum of top two), then experts 7 and 2;
 * the weights come from the unbiased scores, normalised, times 2.5. */
START_TEST(v3_bias_selects_only)
{
    struct model_config c = v3();
    float logits[8] = {0}, bias[8] = {0.1f, 0.0f, 0.3f, 0.2f, 0.0f, 0.0f, 0.05f, 0.4f};
    float scratch[32], w[2];
    int idx[2];
    moe_route(&c, logits, bias, scratch, idx, w);
    ck_assert_int_eq(idx[0], 2);
    ck_assert_int_eq(idx[1], 7);
    ck_assert_float_eq_tol(w[0], 1.25f, 1e-6f);
    ck_assert_float_eq_tol(w[1], 1.25f, 1e-6f);
}
END_TEST

/* Expert 0 has the best single score but its group loses on the sum of its top two. */
START_TEST(v3_group_limit)
{
    struct model_config c = v3();
    float logits[8] = {4.0f, -4.0f, 1.0f, 1.0f, 0.5f, 0.5f, -1.0f, -1.0f};
    float scratch[32], w[2];
    int idx[2];
    moe_route(&c, logits, NULL, scratch, idx, w);
    ck_assert_int_eq(idx[0], 2);
    ck_assert_int_eq(idx[1], 3);
    float s = 1.0f / (1.0f + expf(-1.0f));
    ck_assert_float_eq_tol(w[0], s / (2 * s) * 2.5f, 1e-6f);
}
END_TEST

/* V2: softmax over all experts, plain top-k, no normalisation, times the scale. */
START_TEST(v2_greedy_softmax)
{
    struct model_config c = {.arch = ARCH_DEEPSEEK_V2, .n_routed_experts = 4, .n_experts_per_tok = 2,
                             .n_group = 1, .topk_group = 1, .scoring = SCORE_SOFTMAX,
                             .topk_method = TOPK_GREEDY, .norm_topk_prob = 1,
                             .routed_scaling_factor = 2.0f};
    float logits[4] = {0.0f, 2.0f, 1.0f, 3.0f}, scratch[16], w[2];
    int idx[2];
    moe_route(&c, logits, NULL, scratch, idx, w);
    float z = expf(0) + expf(2) + expf(1) + expf(3);
    ck_assert_int_eq(idx[0], 1);
    ck_assert_int_eq(idx[1], 3);
    ck_assert_float_eq_tol(w[0], expf(2) / z * 2.0f, 1e-6f);
    ck_assert_float_eq_tol(w[1], expf(3) / z * 2.0f, 1e-6f);
}
END_TEST

/* V2 group-limited: group max decides; the best expert of a losing group is excluded. */
START_TEST(v2_group_limited)
{
    struct model_config c = {.arch = ARCH_DEEPSEEK_V2, .n_routed_experts = 6, .n_experts_per_tok = 2,
                             .n_group = 3, .topk_group = 1, .scoring = SCORE_SOFTMAX,
                             .topk_method = TOPK_GROUP_LIMITED_GREEDY, .routed_scaling_factor = 1.0f};
    float logits[6] = {1.0f, 0.9f, 3.0f, -5.0f, 0.0f, 0.0f}, scratch[32], w[2];
    int idx[2];
    moe_route(&c, logits, NULL, scratch, idx, w);
    ck_assert_int_eq(idx[0], 2);
    ck_assert_int_eq(idx[1], 3);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("moe");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, v3_bias_selects_only);
    tcase_add_test(tc, v3_group_limit);
    tcase_add_test(tc, v2_greedy_softmax);
    tcase_add_test(tc, v2_group_limited);
    suite_add_tcase(s, tc);
    return check_run(s, 1);
}
