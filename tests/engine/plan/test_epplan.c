/* Tests of engine/plan/epplan: the exchange of an expert-parallel MoE layer simulated on the host
 * for 1 to 5 ranks and random routings — each rank's gathered rows (moeplan's order) cut into
 * blocks by the plan's send counts and delivered as an all-to-all would, grouped by the
 * receiver's perm: every group holds exactly the rows routed to that expert, by sending rank and
 * then the sender's order; the outputs, put back in arrival order by inv and returned by the
 * reverse all-to-all, land on the sender's row they were computed for. */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "engine/comm.h"
#include "engine/plan/epplan.h"
#include "engine/plan/moeplan.h"
#include "tests/check_run.h"

static uint64_t rng = 0x9e3779b97f4a7c15ull;

static uint32_t next_u32(void)
{
    rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
    return (uint32_t)(rng >> 11);
}

/* k distinct experts per token, ascending. */
static void random_routing(int32_t *sel, int T, int k, int E)
{
    for (int t = 0; t < T; t++)
        for (int n = 0; n < k;) {
            int32_t x = (int32_t)(next_u32() % (uint32_t)E), at = n;
            int dup = 0;
            for (int j = 0; j < n; j++) dup |= sel[t * k + j] == x;
            if (dup) continue;
            while (at > 0 && sel[t * k + at - 1] > x) sel[t * k + at] = sel[t * k + at - 1], at--;
            sel[t * k + at] = x, n++;
        }
}

/* A gathered row, as a tag: (rank, expert, token). */
struct tag {
    int rank, expert, token;
};

struct rank_state {
    int T;
    int32_t *sel;
    struct mp_plan mp;
    struct tag *rows;   /* [T * k] the gathered rows, moeplan's order */
    struct ep_plan ep;
};

static void check_exchange(int N, int E, int k, int max_T)
{
    struct rank_state *r = calloc((size_t)N, sizeof *r);
    int64_t *all = calloc((size_t)N * E, sizeof *all);
    for (int q = 0; q < N; q++) {
        struct rank_state *s = &r[q];
        s->T = (int)(next_u32() % (uint32_t)(max_T + 1)); /* 0: an idle rank */
        s->sel = calloc((size_t)s->T * k + 1, sizeof *s->sel);
        random_routing(s->sel, s->T, k, E);
        ck_assert_int_eq(mp_build(&s->mp, s->sel, s->T, k, E), 0);
        const int32_t *off = mp_arr(&s->mp, s->mp.offset), *row_tok = mp_arr(&s->mp, s->mp.row_tok);
        s->rows = calloc((size_t)s->T * k + 1, sizeof *s->rows);
        for (int x = 0; x < E; x++) {
            all[(size_t)q * E + x] = off[x + 1] - off[x];
            for (int i = off[x]; i < off[x + 1]; i++) s->rows[i] = (struct tag){q, x, row_tok[i]};
        }
        ep_plan_init(&s->ep, N, q, E);
    }
    for (int q = 0; q < N; q++) ep_plan_build(&r[q].ep, all);
    /* the all-to-all: block p of q's send goes to p, which stacks the blocks by sender */
    struct tag **arrived = calloc((size_t)N, sizeof *arrived);
    for (int p = 0; p < N; p++) {
        arrived[p] = calloc((size_t)r[p].ep.n_recv + 1, sizeof **arrived);
        int64_t at = 0;
        for (int q = 0; q < N; q++) {
            ck_assert_int_eq(r[q].ep.send[p], r[p].ep.recv[q]);
            int64_t from = 0;
            for (int x = 0; x < p; x++) from += r[q].ep.send[x];
            memcpy(arrived[p] + at, r[q].rows + from, (size_t)r[q].ep.send[p] * sizeof **arrived);
            at += r[q].ep.send[p];
        }
        ck_assert_int_eq(at, r[p].ep.n_recv);
    }
    for (int p = 0; p < N; p++) {
        const struct ep_plan *ep = &r[p].ep;
        int64_t lo, hi;
        comm_split(E, N, p, &lo, &hi);
        ck_assert(ep->e0 == lo && ep->e1 == hi);
        /* grouped: expert x's rows, every sender's in rank order, each sender's in order */
        int64_t g = 0;
        for (int x = ep->e0; x < ep->e1; x++) {
            ck_assert_int_eq(ep->goff[x - ep->e0], g);
            for (int q = 0; q < N; q++) {
                const int32_t *off = mp_arr(&r[q].mp, r[q].mp.offset);
                for (int i = off[x]; i < off[x + 1]; i++, g++) {
                    struct tag t = arrived[p][ep->perm[g]];
                    ck_assert(t.rank == q && t.expert == x && t.token == r[q].rows[i].token);
                    ck_assert_int_eq(ep->inv[ep->perm[g]], g);
                }
            }
        }
        ck_assert_int_eq(g, ep->n_recv);
        ck_assert_int_eq(ep->goff[ep->e1 - ep->e0], g);
    }
    /* outputs back: arrival order by inv, then the reverse all-to-all, onto the sent rows */
    for (int q = 0; q < N; q++) {
        int64_t at = 0;
        for (int p = 0; p < N; p++) {
            int64_t from = 0; /* where q's block starts among p's arrivals */
            for (int x = 0; x < q; x++) from += r[p].ep.recv[x];
            for (int64_t i = 0; i < r[q].ep.send[p]; i++, at++) {
                const struct ep_plan *ep = &r[p].ep;
                struct tag grouped_out = arrived[p][ep->perm[ep->inv[from + i]]];
                ck_assert(memcmp(&grouped_out, &r[q].rows[at], sizeof grouped_out) == 0);
            }
        }
        ck_assert_int_eq(at, r[q].T * k);
    }
    for (int q = 0; q < N; q++) {
        free(r[q].sel), free(r[q].rows), free(arrived[q]);
        mp_free(&r[q].mp);
        ep_plan_free(&r[q].ep);
    }
    free(arrived), free(all), free(r);
}

START_TEST(exchanges)
{
    for (int N = 1; N <= 5; N++)
        for (int trial = 0; trial < 40; trial++) {
            int E = 1 + (int)(next_u32() % 13), k = 1 + (int)(next_u32() % (uint32_t)(E < 4 ? E : 4));
            check_exchange(N, E, k, trial % 3 ? 9 : 40);
        }
}
END_TEST

/* Rebuilding with more rows grows the arrays; with fewer, keeps them. */
START_TEST(rebuild)
{
    struct ep_plan p;
    ep_plan_init(&p, 2, 1, 4);
    int64_t small[8] = {0, 0, 1, 1, 0, 0, 2, 0}, big[8] = {0, 0, 30, 9, 1, 2, 40, 7};
    ep_plan_build(&p, small);
    ck_assert_int_eq(p.n_recv, 4);
    ep_plan_build(&p, big);
    ck_assert_int_eq(p.n_recv, 86);
    ck_assert_int_eq(p.send[0], 1 + 2);
    ck_assert_int_eq(p.send[1], 40 + 7);
    ck_assert_int_eq(p.recv[0], 30 + 9);
    ck_assert_int_eq(p.recv[1], 40 + 7);
    ep_plan_build(&p, small);
    ck_assert_int_eq(p.n_recv, 4);
    ck_assert_int_ge(p.cap, 86);
    ep_plan_free(&p);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("epplan");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, exchanges);
    tcase_add_test(tc, rebuild);
    suite_add_tcase(s, tc);
    return check_run(s, 0);
}
