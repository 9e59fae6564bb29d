/* Tests of engine/sampler_cand: the pre-filter's host reference against a full sort (NaN, ±inf,
 * ties), and smp_sample_candidates against smp_sample on random rows and parameters — whenever
 * it claims a row, the same token, the same logprob bits, the same alternatives and the same RNG
 * state afterwards; when it declines, nothing drawn — and that it claims the common cases. */
#include <check.h>
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/sampler_cand.h"
#include "tests/check_run.h"

static uint64_t rng = 0x9e3779b97f4a7c15ull;

static uint32_t next_u32(void)
{
    rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
    return (uint32_t)(rng >> 11);
}

static double unif(void)
{
    return (double)next_u32() / 2097152.0 / 1024.0; /* [0, 1) */
}

static float gauss(void)
{
    double u = unif() + 1e-12, v = unif();
    return (float)(sqrt(-2.0 * log(u)) * cos(6.283185307179586 * v));
}

/* Rows like a model's: a gaussian floor, a few tokens far above it; kind 1 flat, kind 2 with
 * exact ties and a NaN, kind 3 with a huge spread, kind 4 a confident position (the spikes 14 to
 * 20 above the floor's mean: the floor carries little of the mass, as at most LLM positions). */
static void make_row(float *row, int V, int kind)
{
    float lift = kind == 4 ? 6.0f : 0.0f;
    float spread = kind == 1 ? 0.5f : kind == 3 ? 8.0f : 2.0f;
    for (int t = 0; t < V; t++) row[t] = spread * gauss();
    int spikes = kind == 1 ? 0 : 1 + (int)(next_u32() % 6);
    for (int i = 0; i < spikes; i++) row[next_u32() % (uint32_t)V] = lift + 8.0f + 6.0f * (float)unif();
    if (kind == 2) {
        for (int i = 0; i < 40; i++) row[next_u32() % (uint32_t)V] = 3.0f; /* ties at the edge */
        row[next_u32() % (uint32_t)V] = NAN;
        row[next_u32() % (uint32_t)V] = -INFINITY;
    }
}

static float clean(float x)
{
    return isnan(x) ? -INFINITY : x == INFINITY ? FLT_MAX : x;
}

START_TEST(prefilter_is_the_top_k)
{
    enum { V = 3000, K = SMP_CAND_K };
    float row[V], lg[K];
    int32_t ids[K];
    struct smp_cands c;
    for (int trial = 0; trial < 30; trial++) {
        make_row(row, V, trial % 4);
        if (trial == 5) row[17] = INFINITY;
        smp_prefilter(row, V, K, ids, lg, &c);
        ck_assert_int_eq(c.n, K);
        unsigned char in[V] = {0};
        int n_fin = 0;
        for (int i = 0; i < K; i++) {
            in[ids[i]] = 1;
            ck_assert(lg[i] == clean(row[ids[i]]));
            if (i) ck_assert(lg[i - 1] > lg[i] || (lg[i - 1] == lg[i] && ids[i - 1] < ids[i]));
        }
        float out_max = -INFINITY;
        long double mass = 0;
        for (int t = 0; t < V; t++) {
            float v = clean(row[t]);
            n_fin += v > -INFINITY;
            if (in[t]) continue;
            /* nothing outside beats the last candidate in (value, id) order */
            ck_assert(v < lg[K - 1] || (v == lg[K - 1] && t > ids[K - 1]));
            out_max = fmaxf(out_max, v);
            if (v > -INFINITY) mass += (long double)expf((float)((double)v - lg[0]));
        }
        ck_assert_int_eq(c.n_finite, n_fin);
        ck_assert(c.out_max == out_max);
        ck_assert(fabsl((long double)c.out_mass - mass) <= 1e-12L * mass + 1e-300L);
    }
}
END_TEST

/* A random request: temperature, filters, penalties, bias (bans, candidates, outside), logprobs. */
static struct smp_params random_params(struct smp_bias *bias, const int32_t *cand_ids, int V)
{
    static const float temps[] = {0.0f, 0.0f, 0.3f, 0.7f, 1.0f, 1.0f, 1.5f};
    static const int32_t ks[] = {0, 0, 0, 1, 5, 40, 64, 100};
    static const float ps[] = {1.0f, 1.0f, 0.9f, 0.5f, 0.99f};
    static const float mins[] = {0.0f, 0.0f, 0.0f, 0.05f, 0.3f};
    struct smp_params p = smp_params_default();
    p.seed = next_u32(), p.has_seed = 1;
    p.temperature = temps[next_u32() % 7], p.top_k = ks[next_u32() % 8];
    p.top_p = ps[next_u32() % 5], p.min_p = mins[next_u32() % 5];
    if (next_u32() % 3 == 0) {
        p.repetition_penalty = next_u32() % 4 ? 1.3f : 0.8f;
        p.frequency_penalty = next_u32() % 4 ? 0.5f : -0.5f;
        p.presence_penalty = 0.25f;
    }
    p.n_logit_bias = (int32_t)(next_u32() % 4);
    for (int i = 0; i < p.n_logit_bias; i++) {
        int inside = next_u32() % 2;
        bias[i].token = inside ? cand_ids[next_u32() % SMP_CAND_K] : (int32_t)(next_u32() % (uint32_t)V);
        bias[i].bias = next_u32() % 3 == 0 ? -100.0f : (float)(unif() * 10.0 - 5.0);
    }
    p.logit_bias = bias;
    p.logprobs = next_u32() % 2;
    p.n_logprobs = p.logprobs ? (int)(next_u32() % 6) : 0;
    return p;
}

static struct smp_state *state(const struct smp_params *p, int V, const int32_t *hist, int n_hist)
{
    struct err e = {0};
    ck_assert_msg(smp_params_check(p, V, &e) == 0, "%s", e.msg);
    struct smp_state *s = smp_state_create(p, V, hist, 3, 1, &e);
    for (int i = 3; i < n_hist; i++) smp_accept(s, hist[i]);
    return s;
}

static int same_result(const struct smp_result *a, const struct smp_result *b)
{
    if (a->token != b->token || memcmp(&a->logprob, &b->logprob, 4) != 0 || a->n_top != b->n_top)
        return 0;
    for (int i = 0; i < a->n_top; i++)
        if (a->top[i].token != b->top[i].token || memcmp(&a->top[i].logprob, &b->top[i].logprob, 4))
            return 0;
    return 1;
}

/* Claims per case (greedy, top-k, top-p, min-p, plain) and how many there were. */
struct tally {
    int tried[5], claimed[5];
};

static int case_of(const struct smp_params *p)
{
    if (p->temperature == 0.0f) return 0;
    if (p->top_k > 0) return 1;
    if (p->top_p < 1.0f) return 2;
    return p->min_p > 0.0f ? 3 : 4;
}

static void one(const float *row, int V, struct tally *t)
{
    float lg[SMP_CAND_K];
    int32_t ids[SMP_CAND_K], hist[12];
    struct smp_bias bias[4];
    struct smp_cands c;
    smp_prefilter(row, V, SMP_CAND_K, ids, lg, &c);
    struct smp_params p = random_params(bias, ids, V);
    for (int i = 0; i < 12; i++) hist[i] = i % 3 ? ids[next_u32() % SMP_CAND_K] : (int32_t)(next_u32() % (uint32_t)V);
    struct smp_state *full = state(&p, V, hist, 12), *cand = state(&p, V, hist, 12);
    struct smp_result rf, rc;
    struct err e = {0};
    int claimed = smp_sample_candidates(cand, &p, &c, &rc);
    int ok = smp_sample(full, &p, row, V, &rf, &e) == 0;
    t->tried[case_of(&p)]++;
    if (claimed) {
        t->claimed[case_of(&p)]++;
        ck_assert_msg(ok && same_result(&rf, &rc), "claimed but differs: token %d vs %d, logprob %a vs %a",
                      rf.token, rc.token, (double)rf.logprob, (double)rc.logprob);
    }
    /* the RNG streams are in step either way: the next full-row samples agree */
    struct smp_params q = p;
    q.temperature = 1.0f, q.logprobs = 0, q.n_logprobs = 0;
    if (ok) ck_assert_int_eq(smp_sample(full, &q, row, V, &rf, &e), 0);
    if (!claimed) ck_assert_int_eq(smp_sample(cand, &p, row, V, &rc, &e), 0);
    if (ok) ck_assert_int_eq(smp_sample(cand, &q, row, V, &rc, &e), 0);
    if (ok) ck_assert_int_eq(rf.token, rc.token);
    smp_state_destroy(full), smp_state_destroy(cand);
}

START_TEST(claims_agree_with_the_full_row)
{
    enum { V = 4096 };
    static float row[V];
    struct tally t = {{0}, {0}};
    for (int trial = 0; trial < 4000; trial++) {
        make_row(row, V, trial % 5);
        one(row, V, &t);
    }
    const char *names[5] = {"greedy", "top-k", "top-p", "min-p", "plain"};
    for (int i = 0; i < 5; i++)
        fprintf(stderr, "%-6s claimed %4d of %4d\n", names[i], t.claimed[i], t.tried[i]);
    for (int i = 0; i < 4; i++) ck_assert_int_gt(t.claimed[i], 0);
}
END_TEST

/* The common serving cases on model-like rows (one spike family, no penalties, raising nothing):
 * greedy, top_k <= K and top_p 0.9 at temperature <= 1 are claimed nearly always; logprobs
 * (greedy) often, not always: their last bit depends on the flat tail's mass. */
START_TEST(common_cases_are_claimed)
{
    enum { V = 129280 };
    static float row[V];
    float lg[SMP_CAND_K];
    int32_t ids[SMP_CAND_K];
    struct smp_cands c;
    struct smp_result r;
    int claimed[4] = {0, 0, 0, 0}, n = 60;
    for (int trial = 0; trial < n; trial++) {
        make_row(row, V, 4);
        smp_prefilter(row, V, SMP_CAND_K, ids, lg, &c);
        for (int mode = 0; mode < 4; mode++) {
            struct smp_params p = smp_params_default();
            p.has_seed = 1, p.seed = (uint64_t)trial;
            if (mode == 0) p.temperature = 0.0f;
            if (mode == 3) p.temperature = 0.0f, p.logprobs = 1, p.n_logprobs = 5;
            if (mode == 1) p.temperature = 0.8f, p.top_k = 50;
            if (mode == 2) p.temperature = 0.7f, p.top_p = 0.9f;
            struct err e = {0};
            struct smp_state *s = smp_state_create(&p, V, NULL, 0, 1, &e);
            claimed[mode] += smp_sample_candidates(s, &p, &c, &r);
            smp_state_destroy(s);
        }
    }
    fprintf(stderr, "129k rows: greedy %d, top-k 50 %d, top-p 0.9 %d, greedy + logprobs %d of %d\n",
            claimed[0], claimed[1], claimed[2], claimed[3], n);
    ck_assert_int_eq(claimed[0], n);
    ck_assert_int_eq(claimed[1], n);
    ck_assert_int_ge(claimed[2], n * 9 / 10);
    ck_assert_int_gt(claimed[3], 0);
}
END_TEST

/* A small row whose candidates are the K largest of 100 distinct logits. */
static void small_row(float *row, int V, float *lg, int32_t *ids, struct smp_cands *c)
{
    for (int t = 0; t < V; t++) row[t] = (float)((t * 37) % V) * 0.05f;
    smp_prefilter(row, V, SMP_CAND_K, ids, lg, c);
}

static int claims(const struct smp_params *p, const struct smp_cands *c, const int32_t *hist, int n)
{
    struct err e = {0};
    struct smp_result r;
    struct smp_state *s = smp_state_create(p, c->n_vocab, hist, n, 1, &e);
    int rc = smp_sample_candidates(s, p, c, &r);
    smp_state_destroy(s);
    return rc;
}

/* Each condition the proofs rest on, broken once on purpose: the candidates decline. */
START_TEST(declines_what_it_cannot_prove)
{
    enum { V = 100 };
    float row[V], lg[SMP_CAND_K];
    int32_t ids[SMP_CAND_K];
    struct smp_cands c;
    small_row(row, V, lg, ids, &c);
    struct smp_params p = smp_params_default();
    p.has_seed = 1, p.temperature = 0.0f;
    ck_assert_int_eq(claims(&p, &c, NULL, 0), 1);
    struct smp_bias up = {.bias = 5.0f};
    int outside = -1;
    for (int t = 0; t < V && outside < 0; t++) {
        int in = 0;
        for (int i = 0; i < SMP_CAND_K; i++) in |= ids[i] == t;
        if (!in) outside = t;
    }
    up.token = outside, p.logit_bias = &up, p.n_logit_bias = 1;
    ck_assert_int_eq(claims(&p, &c, NULL, 0), 0); /* a raised outside token */
    up.token = ids[40];
    ck_assert_int_eq(claims(&p, &c, NULL, 0), 1); /* a raised candidate is fine */
    p.n_logit_bias = 0, p.repetition_penalty = 0.9f;
    ck_assert_int_eq(claims(&p, &c, ids, 3), 0);  /* a penalty that raises */
    /* top_k = K with the last candidates pushed below the outside maximum by a penalty */
    p.repetition_penalty = 2.0f, p.temperature = 1.0f;
    p.top_k = SMP_CAND_K;
    ck_assert_int_eq(claims(&p, &c, NULL, 0), 1);
    ck_assert_int_eq(claims(&p, &c, ids + SMP_CAND_K - 4, 4), 0);
    p.repetition_penalty = 1.0f, p.top_k = 0, p.min_p = 0.03f; /* the outside can pass min_p */
    ck_assert_int_eq(claims(&p, &c, NULL, 0), 0);
    p.temperature = 0.05f;                                   /* ... and not at a low temperature */
    ck_assert_int_eq(claims(&p, &c, NULL, 0), 1);
    p.min_p = 0.0f, p.top_p = 0.999f, p.temperature = 1.0f; /* the cut needs the outside */
    ck_assert_int_eq(claims(&p, &c, NULL, 0), 0);
    p.top_p = 1.0f; /* no filter, outside weights not zero */
    ck_assert_int_eq(claims(&p, &c, NULL, 0), 0);
    p.temperature = 0.0f;
    c.out_max = lg[0]; /* an outside token tying the maximum (a lower id would win the tie) */
    ck_assert_int_eq(claims(&p, &c, NULL, 0), 0);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("sampler_cand");
    TCase *tc = tcase_create("cand");
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, prefilter_is_the_top_k);
    tcase_add_test(tc, claims_agree_with_the_full_row);
    tcase_add_test(tc, common_cases_are_claimed);
    tcase_add_test(tc, declines_what_it_cannot_prove);
    suite_add_tcase(s, tc);
    return check_run(s, 0);
}
