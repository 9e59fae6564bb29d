/* Tests of engine/plan/mlaplan: on random contexts (decode batches, prefill rows, one long row,
 * more work lists than work), every position of every token is covered exactly once, items are
 * ordered by token then position with consecutive partial slots, every work list stays within
 * the payload bound, and the payload is near the average. */
#include <check.h>
#include <stdlib.h>

#include "engine/plan/mlaplan.h"
#include "tests/check_run.h"

static uint64_t rng = 0x5851f42d4c957f2dull;

static uint32_t next_u32(void)
{
    rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
    return (uint32_t)(rng >> 11);
}

static void check(const struct mla_plan *p, const int32_t *ctx, int T, int block, int fixed)
{
    const int32_t *begin = mla_arr(p, p->cta_begin), *items = mla_arr(p, p->items);
    const int32_t *part = mla_arr(p, p->part_begin);
    ck_assert_int_eq(begin[0], 0); ck_assert_int_eq(begin[p->n_ctas], p->n_items);
    int64_t total = 0;
    for (int t = 0; t < T; t++) total += (ctx[t] + block - 1) / block + fixed;
    ck_assert_int_le(p->payload, (total + p->n_ctas - 1) / p->n_ctas + fixed);
    int t = 0, next = 0;
    for (int i = 0; i < p->n_items; i++) {
        const int32_t *it = items + (size_t)i * MLA_ITEM;
        ck_assert_int_eq(it[3], i);
        if (it[0] != t) { /* the previous token was covered to its end */
            ck_assert_int_eq(next, ctx[t]);
            ck_assert_int_eq(it[0], t + 1);
            t = it[0], next = 0;
            ck_assert_int_eq(part[t], i);
        }
        ck_assert_int_eq(it[1], next);
        ck_assert_int_gt(it[2], it[1]);
        ck_assert(it[1] % block == 0);
        ck_assert(it[2] % block == 0 || it[2] == ctx[t]);
        next = it[2];
    }
    ck_assert_int_eq(t, T - 1); ck_assert_int_eq(next, ctx[T - 1]);
    ck_assert_int_eq(part[0], 0); ck_assert_int_eq(part[T], p->n_items);
    for (int c = 0; c < p->n_ctas; c++) {
        int64_t cost = 0;
        ck_assert_int_le(begin[c], begin[c + 1]);
        for (int i = begin[c]; i < begin[c + 1]; i++)
            cost += fixed + (items[i * MLA_ITEM + 2] - items[i * MLA_ITEM + 1] + block - 1) / block;
        ck_assert_msg(cost <= p->payload + 1, "list %d: cost %lld, payload %d", c, (long long)cost, p->payload);
    }
}

START_TEST(random_contexts)
{
    struct mla_plan p = {0};
    static int32_t ctx[512];
    for (int trial = 0; trial < 300; trial++) {
        int T = 1 + (int)(next_u32() % (trial % 3 == 0 ? 512 : 64)), block = trial % 5 ? 64 : 16;
        int n_ctas = 1 + (int)(next_u32() % 300), fixed = (int)(next_u32() % 4);
        int maxc = trial % 4 == 0 ? 20000 : 4096;
        for (int t = 0; t < T; t++) ctx[t] = 1 + (int)(next_u32() % (uint32_t)maxc);
        mla_build(&p, ctx, T, block, n_ctas, fixed);
        check(&p, ctx, T, block, fixed);
    }
    mla_free(&p);
}
END_TEST

START_TEST(one_long_row_splits_evenly)
{
    struct mla_plan p = {0};
    int32_t ctx[1] = {132 * 64 * 10};
    mla_build(&p, ctx, 1, 64, 132, 1);
    check(&p, ctx, 1, 64, 1);
    /* the payload (average + one item's fixed cost) fills 120 lists with 11 blocks each */
    ck_assert_int_eq(p.n_items, 120);
    const int32_t *items = mla_arr(&p, p.items);
    for (int i = 0; i < p.n_items; i++) ck_assert_int_eq(items[i * MLA_ITEM + 2] - items[i * MLA_ITEM + 1], 704);
    mla_free(&p);
}
END_TEST

START_TEST(more_lists_than_work)
{
    struct mla_plan p = {0};
    int32_t ctx[3] = {1, 64, 65};
    mla_build(&p, ctx, 3, 64, 100, 2);
    check(&p, ctx, 3, 64, 2);
    ck_assert_int_le(p.n_items, 4);
    mla_free(&p);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("mlaplan");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, random_contexts);
    tcase_add_test(tc, one_long_row_splits_evenly);
    tcase_add_test(tc, more_lists_than_work);
    suite_add_tcase(s, tc);
    return check_run(s, 0);
}
