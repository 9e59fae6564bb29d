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

int main(void)
{
    Suite *s = suite_create("moeplan");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, random_routings);
    tcase_add_test(tc, all_to_one);
    tcase_add_test(tc, impossible_routings);
    suite_add_tcase(s, tc);
    return check_run(s, 0);
}
