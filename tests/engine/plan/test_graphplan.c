/* Tests of engine/plan/graphplan: the decode buckets for several batch limits, which steps replay
 * a graph (decode-only, within the largest bucket) and which run eagerly, and padding a step to
 * its bucket (real rows unchanged, padding rows at position 0 of the null block, no logits). */
#include <check.h>

#include "engine/plan/graphplan.h"
#include "engine/plan/stepplan.h"
#include "tests/check_run.h"

START_TEST(buckets)
{
    struct gp_buckets b;
    gp_buckets(256, &b);
    ck_assert_int_eq(b.n, 19);
    ck_assert_int_eq(b.size[0], 1); ck_assert_int_eq(b.size[5], 24); ck_assert_int_eq(b.size[18], 256);
    for (int i = 1; i < b.n; i++) ck_assert_int_gt(b.size[i], b.size[i - 1]);
    gp_buckets(100, &b); /* the cap is a bucket of its own */
    ck_assert_int_eq(b.size[b.n - 1], 100); ck_assert_int_eq(b.size[b.n - 2], 96);
    gp_buckets(1, &b);
    ck_assert_int_eq(b.n, 1); ck_assert_int_eq(b.size[0], 1);
    gp_buckets(1000, &b); /* beyond 256: eager */
    ck_assert_int_eq(b.size[b.n - 1], 256);
}
END_TEST

START_TEST(which_steps_replay)
{
    struct gp_buckets b;
    gp_buckets(64, &b);
    int32_t toks[80] = {0}, table[1] = {0};
    struct batch_seq seqs[80];
    for (int s = 0; s < 80; s++) seqs[s] = (struct batch_seq){s, 1, 5 + s, table, BATCH_LOGITS_LAST};
    struct batch bt = {3, toks, 3, seqs};
    ck_assert_int_eq(gp_bucket_for(&b, &bt), 4);
    bt.n_tokens = bt.n_seqs = 17;
    ck_assert_int_eq(gp_bucket_for(&b, &bt), 24);
    bt.n_tokens = bt.n_seqs = 64;
    ck_assert_int_eq(gp_bucket_for(&b, &bt), 64);
    bt.n_tokens = bt.n_seqs = 65;
    ck_assert_int_eq(gp_bucket_for(&b, &bt), 0); /* too many: eager */
    seqs[1].n_tokens = 2, bt.n_seqs = 3, bt.n_tokens = 4;
    for (int s = 2; s < 3; s++) seqs[s].start = s + 1;
    ck_assert_int_eq(gp_bucket_for(&b, &bt), 0); /* a prefill chunk: eager */
}
END_TEST

START_TEST(padding)
{
    int32_t t1[2] = {7, 8}, t2[1] = {3}, toks[2] = {11, 12};
    struct batch_seq seqs[2] = {{0, 1, 70, t1, BATCH_LOGITS_LAST}, {1, 1, 2, t2, BATCH_LOGITS_LAST}};
    struct batch bt = {2, toks, 2, seqs};
    struct gp_padded p = {0};
    gp_pad(&bt, 8, 99, &p);
    ck_assert_int_eq(p.batch.n_tokens, 8); ck_assert_int_eq(p.batch.n_seqs, 8);
    ck_assert_int_eq(p.tokens[0], 11); ck_assert_int_eq(p.tokens[1], 12);
    ck_assert_int_eq(p.seqs[1].pos0, 2); ck_assert_ptr_eq(p.seqs[1].block_table, t2);
    for (int s = 2; s < 8; s++) {
        ck_assert_int_eq(p.tokens[s], 0); ck_assert_int_eq(p.seqs[s].pos0, 0);
        ck_assert_int_eq(p.seqs[s].block_table[0], 99);
        ck_assert_int_eq(p.seqs[s].logits, BATCH_LOGITS_NONE);
    }
    ck_assert_int_eq(batch_n_logits(&p.batch), 2); /* only the real rows want logits */
    struct rope r = {.n_pairs = 1, .inv_freq = {1.0f}, .mag = 1.0f};
    struct sp_plan sp = {0};
    sp_build(&sp, &p.batch, 64, &r);
    ck_assert_int_eq(sp_i32(&sp, sp.at.slot)[0], 8 * 64 + 6);
    for (int s = 2; s < 8; s++) ck_assert_int_eq(sp_i32(&sp, sp.at.slot)[s], 99 * 64);
    sp_free(&sp);
    gp_padded_free(&p);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("graphplan");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, buckets);
    tcase_add_test(tc, which_steps_replay);
    tcase_add_test(tc, padding);
    suite_add_tcase(s, tc);
    return check_run(s, 0);
}
