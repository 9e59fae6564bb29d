/* Tests of engine/plan/stepplan: the per-token arrays of a mixed step (a prefill chunk behind a
 * cached prefix, decode tokens, a chunk that wants no logits) against the CPU forward's own
 * indexing — cache rows as kv_cache_put addresses them, angles from rope_angles, logits rows in
 * batch order — and the packed buffer's alignment and growth. */
#include <check.h>
#include <stddef.h>
#include <string.h>

#include "engine/cpu/kv_cache.h"
#include "engine/plan/stepplan.h"
#include "tests/check_run.h"

enum { BS = 4 };

static struct rope test_rope(void)
{
    struct model_config c = {.qk_nope_head_dim = 8, .qk_rope_head_dim = 6, .rope_theta = 10000};
    struct rope r;
    rope_init(&r, &c);
    return r;
}

/* Three sequences: 5 new tokens after 6 cached (logits ALL), one decode token at position 9
 * (LAST), a 3-token chunk from 0 (NONE). Tables name blocks out of order. */
static const int32_t tokens[9] = {11, 12, 13, 14, 15, 21, 31, 32, 33};
static const int32_t table_a[3] = {7, 2, 5}, table_b[3] = {0, 3, 8}, table_c[1] = {6};
static const struct batch_seq seqs[3] = {{0, 5, 6, table_a, BATCH_LOGITS_ALL},
                                         {5, 1, 9, table_b, BATCH_LOGITS_LAST},
                                         {6, 3, 0, table_c, BATCH_LOGITS_NONE}};
static const struct batch mixed = {9, tokens, 3, seqs};

/* The row kv_cache_put would write token p of a sequence to, within one layer. */
static int32_t cache_row(const int32_t *table, int p)
{
    static float rows[16 * BS];
    struct kv_cache kv = {.n_layers = 1, .width = 1, .block_size = BS, .n_blocks = 16,
                          .dtype = DT_F32, .data = rows};
    return (int32_t)((const float *)kv_cache_row(&kv, 0, table[p / BS], p % BS) - rows);
}

START_TEST(mixed_step)
{
    struct rope r = test_rope();
    struct sp_plan p = {0};
    sp_build(&p, &mixed, BS, &r);
    ck_assert_int_eq(p.n_tokens, 9);
    ck_assert_int_eq(p.n_table, 3 + 3 + 1);
    ck_assert_int_eq(p.max_ctx, 11); /* the first sequence's last token sits at position 10 */
    const int32_t *pos = sp_i32(&p, p.at.pos), *slot = sp_i32(&p, p.at.slot);
    const int32_t *off = sp_i32(&p, p.at.table_off), *tables = sp_i32(&p, p.at.tables);
    for (int s = 0; s < 3; s++)
        for (int i = 0; i < seqs[s].n_tokens; i++) {
            int t = seqs[s].start + i, ps = seqs[s].pos0 + i;
            ck_assert_int_eq(sp_i32(&p, p.at.tokens)[t], tokens[t]);
            ck_assert_int_eq(pos[t], ps);
            ck_assert_int_eq(slot[t], cache_row(seqs[s].block_table, ps));
            /* the token's table, read through its offset, is its sequence's */
            ck_assert_int_eq(tables[off[t] + ps / BS], seqs[s].block_table[ps / BS]);
            float c[3], sn[3];
            rope_angles(&r, ps, c, sn);
            ck_assert(memcmp(sp_f32(&p, p.at.cos) + t * 3, c, sizeof c) == 0);
            ck_assert(memcmp(sp_f32(&p, p.at.sin) + t * 3, sn, sizeof sn) == 0);
        }
    ck_assert_int_eq(p.n_logits, batch_n_logits(&mixed));
    const int32_t want[6] = {0, 1, 2, 3, 4, 5};
    ck_assert(memcmp(sp_i32(&p, p.at.logit_rows), want, sizeof want) == 0);
    size_t offs[] = {p.at.tokens, p.at.pos, p.at.slot, p.at.table_off, p.at.logit_rows,
                     p.at.cos, p.at.sin, p.at.tables};
    for (size_t i = 0; i < sizeof offs / sizeof offs[0]; i++) {
        ck_assert_uint_eq(offs[i] % 256, 0);
        if (i) ck_assert_uint_gt(offs[i], offs[i - 1]);
    }
    ck_assert_uint_le(p.at.bytes, p.cap);
    ck_assert_uint_eq(p.at.used, p.at.tables + (size_t)p.n_table * 4);
    /* laid out for capacities: the same offsets for another batch, the tables still last */
    struct sp_caps caps = {64, 64, 1000};
    sp_build_caps(&p, &mixed, BS, &r, &caps);
    struct sp_layout first = p.at;
    struct batch one = {1, mixed.tokens, 1, mixed.seqs};
    sp_build_caps(&p, &one, BS, &r, &caps);
    ck_assert(memcmp(&first, &p.at, offsetof(struct sp_layout, used)) == 0);
    ck_assert_uint_lt(p.at.used, first.used);
    ck_assert_uint_eq(p.at.bytes, p.at.tables + 4096); /* 4000 bytes of tables, aligned */
    sp_free(&p);
}
END_TEST

/* A decode step of many sequences after a small one: the buffer grows, the arrays follow. */
START_TEST(grows)
{
    struct rope r = test_rope();
    struct sp_plan p = {0};
    int32_t one = 3;
    struct batch_seq s1 = {0, 1, 0, &one, BATCH_LOGITS_LAST};
    struct batch b1 = {1, &one, 1, &s1};
    sp_build(&p, &b1, BS, &r);
    ck_assert_int_eq(sp_i32(&p, p.at.slot)[0], 3 * BS);
    enum { N = 300 };
    static int32_t toks[N], table[N][40];
    static struct batch_seq ss[N];
    for (int i = 0; i < N; i++) {
        toks[i] = i;
        for (int j = 0; j < 40; j++) table[i][j] = (i * 40 + j) % 1000;
        ss[i] = (struct batch_seq){i, 1, 150 + i % 7, table[i], BATCH_LOGITS_LAST};
    }
    struct batch bn = {N, toks, N, ss};
    sp_build(&p, &bn, BS, &r);
    ck_assert_int_eq(p.n_logits, N);
    for (int i = 0; i < N; i++) {
        int ps = 150 + i % 7;
        ck_assert_int_eq(sp_i32(&p, p.at.slot)[i], table[i][ps / BS] * BS + ps % BS);
        ck_assert_int_eq(sp_i32(&p, p.at.logit_rows)[i], i);
    }
    ck_assert_int_eq(p.max_ctx, 157);
    sp_free(&p);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("stepplan");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, mixed_step);
    tcase_add_test(tc, grows);
    suite_add_tcase(s, tc);
    return check_run(s, 0);
}
