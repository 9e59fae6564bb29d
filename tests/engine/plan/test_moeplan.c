/* Tests of engine/plan/moeplan: token lists per expert from random routings (every (token,
 * choice) placed once, experts ascending, tokens ascending within an expert — the order the CPU
 * forward visits them), the inverse map, the active list, and refusal of impossible routings. */
#include <check.h>
#include <string.h>

#include "engine/plan/moeplan.h"
#include "tests/check_run.h"

static uint64_t rng = 0x2545f4914f6cdd1dull;

static uint32_t next_u32(void)
{
    rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
    return (uint32_t)(rng >> 11);
}

/* k distinct experts per token, ascending (as moe_route returns them). */
static void random_routing(int32_t *sel, int T, int k, int E)
{
    for (int t = 0; t < T; t++) {
        int n = 0;
        while (n < k) {
            int32_t x = (int32_t)(next_u32() % (uint32_t)E), dup = 0;
            for (int j = 0; j < n; j++) dup |= sel[t * k + j] == x;
            if (!dup) sel[t * k + n++] = x;
        }
        for (int i = 1; i < k; i++)
            for (int j = i; j > 0 && sel[t * k + j - 1] > sel[t * k + j]; j--) {
                int32_t v = sel[t * k + j];
                sel[t * k + j] = sel[t * k + j - 1], sel[t * k + j - 1] = v;
            }
    }
}

/* The plan against the CPU forward's loops: for x ascending, t ascending, j: rows in order. */
static void check_plan(const struct mp_plan *p, const int32_t *sel, int T, int k, int E)
{
    const int32_t *offset = mp_arr(p, p->offset), *row_tok = mp_arr(p, p->row_tok);
    const int32_t *tok_row = mp_arr(p, p->tok_row), *active = mp_arr(p, p->active);
    int r = 0, n_active = 0;
    for (int x = 0; x < E; x++) {
        ck_assert_int_eq(offset[x], r);
        int first = r;
        for (int t = 0; t < T; t++)
            for (int j = 0; j < k; j++)
                if (sel[t * k + j] == x) {
                    ck_assert_int_eq(row_tok[r], t);
                    ck_assert_int_eq(tok_row[t * k + j], r);
                    r++;
                }
        if (r > first) ck_assert_int_eq(active[n_active++], x);
    }
    ck_assert_int_eq(offset[E], T * k);
    ck_assert_int_eq(p->n_rows, T * k);
    ck_assert_int_eq(p->n_active, n_active);
}

START_TEST(random_routings)
{
    struct mp_plan p = {0};
    const int shapes[][3] = {{1, 8, 256}, {7, 4, 16}, {300, 8, 256}, {33, 6, 64}, {5, 2, 2}};
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        int T = shapes[s][0], k = shapes[s][1], E = shapes[s][2];
        static int32_t sel[300 * 8];
        random_routing(sel, T, k, E);
        ck_assert_int_eq(mp_build(&p, sel, T, k, E), 0);
        check_plan(&p, sel, T, k, E);
    }
    mp_free(&p);
}
END_TEST

/* Every token to the same experts: one segment per expert with all tokens; the others empty. */
START_TEST(all_to_one)
{
    struct mp_plan p = {0};
    int32_t sel[10 * 2];
    for (int t = 0; t < 10; t++) sel[2 * t] = 3, sel[2 * t + 1] = 9;
    ck_assert_int_eq(mp_build(&p, sel, 10, 2, 16), 0);
    check_plan(&p, sel, 10, 2, 16);
    ck_assert_int_eq(p.n_active, 2);
    mp_free(&p);
}
END_TEST

START_TEST(impossible_routings)
{
    struct mp_plan p = {0};
    int32_t out_of_range[2] = {1, 16}, negative[2] = {-1, 2}, repeated[2] = {4, 4};
    ck_assert_int_eq(mp_build(&p, out_of_range, 1, 2, 16), -1);
    ck_assert_int_eq(mp_build(&p, negative, 1, 2, 16), -1);
    ck_assert_int_eq(mp_build(&p, repeated, 1, 2, 16), -1);
    mp_free(&p);
}
END_TEST

/* The grouped permutation: groups aligned, each group's rows its tokens ascending (the shared
 * group every token), padding rows -1, tok_row pointing back, and the row bound respected. */
static void check_grouped(const struct mp_grouped *g, const int32_t *sel, int T, int k, int E,
                          int shared, int align)
{
    const int32_t *count = g->buf + g->count, *offset = g->buf + g->offset;
    const int32_t *row_tok = g->buf + g->row_tok, *tok_row = g->buf + g->tok_row;
    int kk = k + shared, G = E + shared;
    ck_assert_int_eq(g->n_groups, G);
    ck_assert_int_le(g->n_rows, mp_grouped_max_rows(T, k, E, shared, align));
    ck_assert_int_eq(offset[0], 0);
    for (int x = 0; x < G; x++) {
        ck_assert_int_eq(offset[x] % align, 0);
        ck_assert_int_ge(offset[x + 1] - offset[x], count[x]);
        ck_assert_int_lt(offset[x + 1] - offset[x] - count[x], align);
        int r = offset[x];
        for (int t = 0; t < T; t++)
            for (int j = 0; j < kk; j++) {
                int grp = j < k ? sel[t * k + j] : E;
                if (grp != x) continue;
                ck_assert_int_eq(row_tok[r], t);
                ck_assert_int_eq(tok_row[t * kk + j], r);
                r++;
            }
        ck_assert_int_eq(r - offset[x], count[x]);
        for (; r < offset[x + 1]; r++) ck_assert_int_eq(row_tok[r], -1);
    }
    ck_assert_int_eq(offset[G], g->n_rows);
}

START_TEST(grouped_permutation)
{
    struct mp_grouped g = {0};
    const int shapes[][5] = {{1, 8, 256, 1, 8}, {7, 4, 16, 1, 16}, {300, 8, 256, 1, 8},
                             {33, 6, 64, 0, 1}, {5, 2, 2, 1, 128}, {256, 8, 256, 0, 64}};
    static int32_t sel[300 * 8];
    for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++) {
        int T = shapes[s][0], k = shapes[s][1], E = shapes[s][2], sh = shapes[s][3], al = shapes[s][4];
        random_routing(sel, T, k, E);
        ck_assert_int_eq(mp_grouped_build(&g, sel, T, k, E, sh, al), 0);
        check_grouped(&g, sel, T, k, E, sh, al);
    }
    int32_t bad[2] = {3, 3};
    ck_assert_int_eq(mp_grouped_build(&g, bad, 1, 2, 8, 1, 8), -1);
    mp_grouped_free(&g);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("moeplan");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, random_routings);
    tcase_add_test(tc, all_to_one);
    tcase_add_test(tc, impossible_routings);
    tcase_add_test(tc, grouped_permutation);
    suite_add_tcase(s, tc);
    return check_run(s, 0);
}
