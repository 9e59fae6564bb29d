/* Tests of engine/sampler: filters, penalties, bias, seeding, logprobs and NaN handling, checked
 * against hand-worked values and against a brute-force reference of the documented semantics. */
#include <check.h>
#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "engine/sampler.h"
#include "tests/check_run.h"

/* ---- helpers --------------------------------------------------------------------------------- */

/* Deterministic pseudo-random logits in [-scale, scale] (inputs are random, never zeros). */
static void rand_logits(float *l, int n, uint32_t seed, float scale)
{
    uint32_t x = seed * 2654435761u + 12345u;
    for (int i = 0; i < n; i++) {
        x = x * 1664525u + 1013904223u;
        l[i] = scale * ((float)(x >> 8) / (float)(1u << 24) * 2.0f - 1.0f);
    }
}

static struct smp_params seeded(uint64_t seed, float temperature)
{
    struct smp_params p = smp_params_default();
    p.seed = seed;
    p.has_seed = 1;
    p.temperature = temperature;
    return p;
}

static struct smp_state *mk(const struct smp_params *p, int n)
{
    struct err e = {0};
    ck_assert_int_eq(smp_params_check(p, n, &e), 0);
    struct smp_state *s = smp_state_create(p, n, NULL, 0, 7, &e);
    ck_assert_ptr_nonnull(s);
    return s;
}

static int sample1(struct smp_state *s, const struct smp_params *p, const float *l, int n)
{
    struct smp_result r;
    struct err e = {0};
    ck_assert_int_eq(smp_sample(s, p, l, n, &r, &e), 0);
    return r.token;
}

static int argmax_ref(const float *l, int n)
{
    int best = 0;
    for (int i = 1; i < n; i++)
        if (l[i] > l[best]) best = i;
    return best;
}

/* Reference for the documented filters, by full sort: want[i] = final probability of token i. */
struct ranked {
    float v;
    int id;
};

static int by_value_desc(const void *a, const void *b)
{
    const struct ranked *x = a, *y = b;
    if (x->v != y->v) return x->v > y->v ? -1 : 1;
    return (x->id > y->id) - (x->id < y->id);
}

static void ref_probs(const float *l, int n, const struct smp_params *p, double *want)
{
    struct ranked *r = malloc((size_t)n * sizeof *r);
    int *order = malloc((size_t)n * sizeof *order);
    double *w = calloc((size_t)n, sizeof *w);
    for (int i = 0; i < n; i++) r[i] = (struct ranked){l[i], i};
    qsort(r, (size_t)n, sizeof *r, by_value_desc);
    for (int i = 0; i < n; i++) order[i] = r[i].id;
    free(r);
    int k = (p->top_k > 0 && p->top_k < n) ? p->top_k : n;
    double z = 0.0;
    for (int i = 0; i < k; i++) {
        w[order[i]] = exp(((double)l[order[i]] - l[order[0]]) / p->temperature);
        z += w[order[i]];
    }
    double head = 0.0;
    int kept = 0;
    while (kept < k && (kept == 0 || head < p->top_p * z)) head += w[order[kept++]];
    double total = 0.0;
    for (int i = 0; i < n; i++) want[i] = 0.0;
    for (int i = 0; i < kept; i++)
        if (w[order[i]] >= p->min_p) total += (want[order[i]] = w[order[i]]);
    for (int i = 0; i < n; i++) want[i] /= total;
    free(order);
    free(w);
}

/* Draws n_draws tokens; every count within 5 binomial sigmas (+3 for rare tokens) of want, and
 * tokens with want 0 never drawn. */
static void check_freq(struct smp_state *s, const struct smp_params *p, const float *l, int n,
                       const double *want, int n_draws)
{
    int *hits = calloc((size_t)n, sizeof *hits);
    for (int d = 0; d < n_draws; d++) hits[sample1(s, p, l, n)]++;
    for (int i = 0; i < n; i++) {
        if (want[i] == 0.0) {
            ck_assert_msg(hits[i] == 0, "token %d filtered out but drawn %d times", i, hits[i]);
            continue;
        }
        double mu = n_draws * want[i], sd = sqrt(n_draws * want[i] * (1.0 - want[i]));
        ck_assert_msg(fabs(hits[i] - mu) <= 5.0 * sd + 3.0, "token %d: %d draws, expected %.1f", i,
                      hits[i], mu);
    }
    free(hits);
}

/* ---- greedy and its equivalents -------------------------------------------------------------- */

START_TEST(greedy_ties_go_to_lowest_id)
{
    struct smp_params p = seeded(1, 0.0f);
    float l[6] = {1.0f, 5.0f, 2.0f, 5.0f, -3.0f, 5.0f};
    struct smp_state *s = mk(&p, 6);
    ck_assert_int_eq(sample1(s, &p, l, 6), 1);
    float l2[3] = {NAN, 3.0f, 3.0f};
    struct smp_state *s2 = mk(&p, 3);
    ck_assert_int_eq(sample1(s2, &p, l2, 3), 1);
    smp_state_destroy(s);
    smp_state_destroy(s2);
}
END_TEST

/* Greedy steps consume no RNG: a seeded stream after greedy steps matches a fresh one. */
START_TEST(greedy_draws_nothing)
{
    enum { N = 64 };
    float l[N];
    rand_logits(l, N, 3, 2.0f);
    struct smp_params g = seeded(42, 0.0f), t = seeded(42, 1.0f);
    struct smp_state *a = mk(&t, N), *b = mk(&t, N);
    for (int i = 0; i < 5; i++) sample1(a, &g, l, N);
    for (int i = 0; i < 50; i++) ck_assert_int_eq(sample1(a, &t, l, N), sample1(b, &t, l, N));
    smp_state_destroy(a);
    smp_state_destroy(b);
}
END_TEST

START_TEST(top_k_one_is_greedy)
{
    enum { N = 1000 };
    float l[N];
    rand_logits(l, N, 5, 4.0f);
    struct smp_params p = seeded(9, 1.3f);
    p.top_k = 1;
    struct smp_state *s = mk(&p, N);
    int want = argmax_ref(l, N);
    for (int i = 0; i < 200; i++) ck_assert_int_eq(sample1(s, &p, l, N), want);
    l[700] = l[want]; /* a tie above the old argmax's id... */
    l[30] = l[want];  /* ...and one below: the lowest id wins, as in greedy */
    for (int i = 0; i < 200; i++) ck_assert_int_eq(sample1(s, &p, l, N), want < 30 ? want : 30);
    smp_state_destroy(s);
}
END_TEST

START_TEST(top_p_tiny_is_greedy)
{
    enum { N = 1000 };
    float l[N];
    rand_logits(l, N, 6, 4.0f);
    struct smp_params p = seeded(10, 1.0f);
    p.top_p = 1e-6f;
    struct smp_state *s = mk(&p, N);
    int want = argmax_ref(l, N);
    for (int i = 0; i < 200; i++) ck_assert_int_eq(sample1(s, &p, l, N), want);
    smp_state_destroy(s);
}
END_TEST

/* ---- filters --------------------------------------------------------------------------------- */

/* Ratios to the best 1, .51, .49, .9, .2: min_p .5 keeps exactly {0, 1, 3}; at temperature 2 the
 * ratios are square-rooted (.7 for token 2, .45 for token 4), so token 2 comes back. */
START_TEST(min_p_exact_cut)
{
    float l[5] = {0.0f, logf(0.51f), logf(0.49f), logf(0.9f), logf(0.2f)};
    struct smp_params p = seeded(11, 1.0f);
    p.min_p = 0.5f;
    struct smp_state *s = mk(&p, 5);
    double z = 1.0 + 0.51 + 0.9, want[5] = {1.0 / z, 0.51 / z, 0.0, 0.9 / z, 0.0};
    check_freq(s, &p, l, 5, want, 20000);
    p.temperature = 2.0f;
    double z2 = 1.0 + sqrt(0.51) + sqrt(0.49) + sqrt(0.9);
    double want2[5] = {1.0 / z2, sqrt(0.51) / z2, sqrt(0.49) / z2, sqrt(0.9) / z2, 0.0};
    check_freq(s, &p, l, 5, want2, 20000);
    smp_state_destroy(s);
}
END_TEST

/* Probabilities .3, .05, .5, .15 (ids 0..3). top_p .75 keeps {2, 0}; .85 adds 3; top_k 2 then
 * top_p .6 keeps only 2, because top-p sees the renormalised top-k mass (.625, .375). */
START_TEST(top_p_hand_worked)
{
    float l[4] = {logf(0.3f), logf(0.05f), logf(0.5f), logf(0.15f)};
    struct smp_params p = seeded(12, 1.0f);
    struct smp_state *s = mk(&p, 4);
    p.top_p = 0.75f;
    double w1[4] = {0.375, 0.0, 0.625, 0.0};
    check_freq(s, &p, l, 4, w1, 20000);
    p.top_p = 0.85f;
    double w2[4] = {0.3 / 0.95, 0.0, 0.5 / 0.95, 0.15 / 0.95};
    check_freq(s, &p, l, 4, w2, 20000);
    p.top_p = 0.6f;
    double w3[4] = {0.375, 0.0, 0.625, 0.0};
    check_freq(s, &p, l, 4, w3, 20000);
    p.top_k = 2;
    double w4[4] = {0.0, 0.0, 1.0, 0.0};
    check_freq(s, &p, l, 4, w4, 2000);
    smp_state_destroy(s);
}
END_TEST

START_TEST(top_k_ties_keep_lowest_ids)
{
    float l[5] = {1.0f, 3.0f, 3.0f, 3.0f, 0.0f};
    struct smp_params p = seeded(13, 1.0f);
    p.top_k = 2;
    struct smp_state *s = mk(&p, 5);
    double want[5] = {0.0, 0.5, 0.5, 0.0, 0.0};
    check_freq(s, &p, l, 5, want, 20000);
    p.top_k = 4; /* drops only the last token */
    double z = exp(1.0) + 3 * exp(3.0),
           want4[5] = {exp(1.0) / z, exp(3.0) / z, exp(3.0) / z, exp(3.0) / z, 0.0};
    check_freq(s, &p, l, 5, want4, 20000);
    smp_state_destroy(s);
}
END_TEST

START_TEST(temperature_matches_softmax)
{
    enum { N = 10 };
    float l[N];
    rand_logits(l, N, 14, 2.0f);
    const float temps[3] = {0.5f, 1.0f, 1.7f};
    for (int k = 0; k < 3; k++) {
        struct smp_params p = seeded(100 + k, temps[k]);
        struct smp_state *s = mk(&p, N);
        double want[N], z = 0.0;
        for (int i = 0; i < N; i++) z += (want[i] = exp(l[i] / temps[k]));
        for (int i = 0; i < N; i++) want[i] /= z;
        check_freq(s, &p, l, N, want, 20000);
        smp_state_destroy(s);
    }
}
END_TEST

/* Random rows and filter combinations against the brute-force reference. */
START_TEST(filters_match_reference)
{
    enum { N = 2000 };
    static float l[N];
    static double want[N];
    const struct {
        float t, top_p, min_p;
        int top_k;
    } cases[] = {{1.0f, 1.0f, 0.0f, 40},   {0.9f, 0.8f, 0.0f, 0}, {1.2f, 1.0f, 0.05f, 0},
                 {0.8f, 0.9f, 0.02f, 100}, {2.0f, 0.5f, 0.3f, 7}, {1.0f, 0.95f, 0.0f, 1500}};
    for (int c = 0; c < (int)(sizeof cases / sizeof cases[0]); c++) {
        rand_logits(l, N, 20 + c, 3.0f);
        struct smp_params p = seeded(200 + c, cases[c].t);
        p.top_p = cases[c].top_p;
        p.min_p = cases[c].min_p;
        p.top_k = cases[c].top_k;
        struct smp_state *s = mk(&p, N);
        ref_probs(l, N, &p, want);
        check_freq(s, &p, l, N, want, 20000);
        smp_state_destroy(s);
    }
}
END_TEST

/* A DeepSeek-sized vocabulary: heap-based top-k / top-p never emit a token outside the set. */
START_TEST(large_vocab_filters)
{
    enum { N = 129280 };
    float *l = malloc(N * sizeof *l);
    double *want = malloc(N * sizeof *want);
    rand_logits(l, N, 31, 8.0f);
    struct smp_params p = seeded(300, 1.0f);
    p.top_p = 0.9f;
    struct smp_state *s = mk(&p, N);
    for (int k = 0; k < 2; k++) {
        p.top_k = k ? 50 : 0;
        ref_probs(l, N, &p, want);
        for (int i = 0; i < 300; i++) {
            int t = sample1(s, &p, l, N);
            ck_assert_msg(want[t] > 0.0, "token %d is outside the top-k/top-p set", t);
        }
    }
    smp_state_destroy(s);
    free(l);
    free(want);
}
END_TEST

/* ---- bias and penalties ---------------------------------------------------------------------- */

/* Prompt {0, 1}; generated 2, 2, 3, 1. Each line is the documented formula worked by hand. */
START_TEST(penalties_arithmetic)
{
    struct smp_params p = seeded(1, 1.0f);
    p.repetition_penalty = 1.5f;
    p.frequency_penalty = 0.25f;
    p.presence_penalty = 0.5f;
    int32_t prompt[2] = {0, 1};
    struct err e = {0};
    struct smp_state *s = smp_state_create(&p, 6, prompt, 2, 0, &e);
    ck_assert_ptr_nonnull(s);
    smp_accept(s, 2);
    smp_accept(s, 2);
    smp_accept(s, 3);
    smp_accept(s, 1);
    float l[6] = {2.0f, -2.0f, 1.5f, -1.0f, 4.0f, 0.5f};
    smp_adjust(s, &p, l, 6);
    ck_assert_float_eq_tol(l[0], 2.0f / 1.5f, 1e-6f);                       /* prompt only */
    ck_assert_float_eq_tol(l[1], -2.0f * 1.5f - (1 * 0.25f + 0.5f), 1e-6f); /* both */
    ck_assert_float_eq_tol(l[2], 1.5f / 1.5f - (2 * 0.25f + 0.5f), 1e-6f);  /* twice */
    ck_assert_float_eq_tol(l[3], -1.0f * 1.5f - (1 * 0.25f + 0.5f), 1e-6f); /* once */
    ck_assert(l[4] == 4.0f && l[5] == 0.5f);                                /* unseen */
    /* bias comes first: it flips token 3 positive, so the penalty divides */
    struct smp_bias b[2] = {{3, 3.0f}, {0, 1.0f}};
    p.logit_bias = b;
    p.n_logit_bias = 2;
    float m[6] = {2.0f, -2.0f, 1.5f, -1.0f, 4.0f, 0.5f};
    smp_adjust(s, &p, m, 6);
    ck_assert_float_eq_tol(m[3], 2.0f / 1.5f - 0.75f, 1e-6f);
    ck_assert_float_eq_tol(m[0], 3.0f / 1.5f, 1e-6f);
    smp_state_destroy(s);
}
END_TEST

/* The penalty changes what greedy picks: 5 / 1.2 < 4.9. */
START_TEST(repetition_penalty_steers_sampling)
{
    struct smp_params p = seeded(1, 0.0f);
    p.repetition_penalty = 1.2f;
    int32_t prompt[1] = {0};
    struct err e = {0};
    struct smp_state *s = smp_state_create(&p, 2, prompt, 1, 0, &e);
    float l[2] = {5.0f, 4.9f};
    ck_assert_int_eq(sample1(s, &p, l, 2), 1);
    smp_state_destroy(s);
}
END_TEST

START_TEST(logit_bias_forces_and_bans)
{
    enum { N = 500 };
    float l[N];
    rand_logits(l, N, 40, 9.0f);
    struct smp_bias force = {77, 100.0f}, ban = {(int32_t)argmax_ref(l, N), -100.0f};
    struct smp_params p = seeded(400, 1.0f);
    p.logit_bias = &force;
    p.n_logit_bias = 1;
    struct smp_state *s = mk(&p, N);
    for (int i = 0; i < 2000; i++) ck_assert_int_eq(sample1(s, &p, l, N), 77);
    p.logit_bias = &ban;
    p.temperature = 0.0f;
    ck_assert_int_ne(sample1(s, &p, l, N), ban.token);
    p.temperature = 100.0f; /* addition alone would not ban here: -100 / 100 is only -1 */
    for (int i = 0; i < 20000; i++) ck_assert_int_ne(sample1(s, &p, l, N), ban.token);
    smp_state_destroy(s);
}
END_TEST

START_TEST(everything_banned_is_an_error)
{
    struct smp_bias b[3] = {{0, -100.0f}, {1, -100.0f}, {2, -100.0f}};
    struct smp_params p = seeded(1, 1.0f);
    p.logit_bias = b;
    p.n_logit_bias = 3;
    struct smp_state *s = mk(&p, 3);
    float l[3] = {1.0f, 2.0f, 3.0f};
    struct smp_result r;
    struct err e = {0};
    ck_assert_int_eq(smp_sample(s, &p, l, 3, &r, &e), -1);
    ck_assert_ptr_nonnull(strstr(e.msg, "banned"));
    smp_state_destroy(s);
}
END_TEST

/* ---- seeding and batch invariance ------------------------------------------------------------ */

static void run_seq(uint64_t seed, int has_seed, uint64_t entropy, const float *l, int n, int *out,
                    int n_out)
{
    struct smp_params p = seeded(seed, 1.0f);
    p.has_seed = has_seed;
    struct err e = {0};
    struct smp_state *s = smp_state_create(&p, n, NULL, 0, entropy, &e);
    for (int i = 0; i < n_out; i++) out[i] = sample1(s, &p, l, n);
    smp_state_destroy(s);
}

START_TEST(seeds_reproduce_and_differ)
{
    enum { N = 100, T = 64 };
    float l[N];
    rand_logits(l, N, 50, 1.0f);
    int a[T], b[T], c[T], d[T];
    run_seq(1234, 1, 1, l, N, a, T);
    run_seq(1234, 1, 2, l, N, b, T); /* a seed overrides entropy */
    run_seq(1235, 1, 1, l, N, c, T);
    run_seq(0, 0, 99, l, N, d, T);
    ck_assert_mem_eq(a, b, sizeof a);
    ck_assert(memcmp(a, c, sizeof a) != 0);
    ck_assert(memcmp(a, d, sizeof a) != 0);
    run_seq(0, 0, 99, l, N, b, T); /* unseeded: follows the caller's entropy */
    ck_assert_mem_eq(b, d, sizeof b);
}
END_TEST

/* Two requests sampled interleaved (as in one batch) give what each gives alone. */
START_TEST(batch_invariance)
{
    enum { N = 300, T = 100 };
    float la[N], lb[N];
    rand_logits(la, N, 60, 2.0f);
    rand_logits(lb, N, 61, 2.0f);
    struct smp_params pa = seeded(7, 0.8f), pb = seeded(8, 1.1f);
    pa.top_k = 40;
    pb.top_p = 0.9f;
    struct smp_state *a = mk(&pa, N), *b = mk(&pb, N), *a1 = mk(&pa, N), *b1 = mk(&pb, N);
    int ra[T], rb[T];
    for (int i = 0; i < T; i++) {
        ra[i] = sample1(a, &pa, la, N);
        rb[i] = sample1(b, &pb, lb, N);
    }
    for (int i = 0; i < T; i++) ck_assert_int_eq(sample1(a1, &pa, la, N), ra[i]);
    for (int i = 0; i < T; i++) ck_assert_int_eq(sample1(b1, &pb, lb, N), rb[i]);
    smp_state_destroy(a);
    smp_state_destroy(b);
    smp_state_destroy(a1);
    smp_state_destroy(b1);
}
END_TEST

/* ---- logprobs -------------------------------------------------------------------------------- */

/* Raw log-softmax, untouched by bias, penalties and temperature; alternatives sorted, ties by id.
 */
START_TEST(logprobs_are_raw_and_sorted)
{
    float l[7] = {0.5f, 2.0f, -1.0f, 2.0f, NAN, 1.0f, -3.0f};
    struct smp_bias b = {6, 50.0f};
    struct smp_params p = seeded(5, 0.5f);
    p.logit_bias = &b;
    p.n_logit_bias = 1;
    p.frequency_penalty = 1.0f;
    p.logprobs = 1;
    p.n_logprobs = 4;
    struct smp_state *s = mk(&p, 7);
    smp_accept(s, 1);
    double z = 0.0;
    for (int i = 0; i < 7; i++)
        if (!isnan(l[i])) z += exp(l[i]);
    double lse = log(z);
    struct smp_result r;
    struct err e = {0};
    ck_assert_int_eq(smp_sample(s, &p, l, 7, &r, &e), 0);
    ck_assert_int_eq(r.token, 6); /* the bias decided the token, not the logprobs */
    ck_assert_float_eq_tol(r.logprob, -3.0 - lse, 1e-5);
    ck_assert_int_eq(r.n_top, 4);
    const int ids[4] = {1, 3, 5, 0};
    for (int i = 0; i < 4; i++) {
        ck_assert_int_eq(r.top[i].token, ids[i]);
        ck_assert_float_eq_tol(r.top[i].logprob, l[ids[i]] - lse, 1e-5);
    }
    p.logprobs = 0;
    p.n_logprobs = 0;
    ck_assert_int_eq(smp_sample(s, &p, l, 7, &r, &e), 0);
    ck_assert_int_eq(r.n_top, 0);
    smp_state_destroy(s);
}
END_TEST

/* A row that is mostly NaN: alternatives list only the finite tokens. */
START_TEST(logprobs_skip_nan)
{
    float l[4] = {NAN, 1.0f, NAN, NAN};
    struct smp_params p = seeded(5, 1.0f);
    p.logprobs = 1;
    p.n_logprobs = 3;
    struct smp_state *s = mk(&p, 4);
    struct smp_result r;
    struct err e = {0};
    ck_assert_int_eq(smp_sample(s, &p, l, 4, &r, &e), 0);
    ck_assert_int_eq(r.token, 1);
    ck_assert_float_eq_tol(r.logprob, 0.0f, 1e-6f);
    ck_assert_int_eq(r.n_top, 1);
    ck_assert_int_eq(r.top[0].token, 1);
    smp_state_destroy(s);
}
END_TEST

/* ---- NaN and inf ----------------------------------------------------------------------------- */

START_TEST(nan_logits_never_sampled)
{
    enum { N = 100 };
    float l[N];
    rand_logits(l, N, 70, 1.0f);
    for (int i = 0; i < N; i += 3) l[i] = NAN;
    struct smp_params p = seeded(700, 1.5f);
    struct smp_state *s = mk(&p, N);
    for (int i = 0; i < 5000; i++) ck_assert_int_ne(sample1(s, &p, l, N) % 3, 0);
    l[50] = INFINITY;
    for (int i = 0; i < 100; i++) ck_assert_int_eq(sample1(s, &p, l, N), 50);
    smp_state_destroy(s);
}
END_TEST

/* Logits at the float limits: +inf counts as FLT_MAX, so it ties with token 0; nothing is NaN. */
START_TEST(extreme_logits_stay_finite)
{
    float l[4] = {FLT_MAX, -FLT_MAX, INFINITY, 0.0f};
    struct smp_params p = seeded(3, 0.001f);
    p.logprobs = 1;
    p.n_logprobs = 4;
    struct smp_state *s = mk(&p, 4);
    int hits[4] = {0};
    for (int i = 0; i < 2000; i++) {
        struct smp_result r;
        struct err e = {0};
        ck_assert_int_eq(smp_sample(s, &p, l, 4, &r, &e), 0);
        hits[r.token]++;
        ck_assert_float_eq_tol(r.logprob, -logf(2.0f), 1e-5f);
        ck_assert_int_eq(r.n_top, 4);
        ck_assert_int_eq(r.top[0].token, 0);
        ck_assert_int_eq(r.top[1].token, 2);
        ck_assert(isfinite(r.top[3].logprob));
    }
    ck_assert(hits[1] == 0 && hits[3] == 0 && hits[0] > 800 && hits[2] > 800);
    smp_state_destroy(s);
}
END_TEST

START_TEST(all_nan_is_an_error)
{
    float l[4] = {NAN, NAN, -INFINITY, NAN};
    for (int greedy = 0; greedy < 2; greedy++) {
        struct smp_params p = seeded(1, greedy ? 0.0f : 1.0f);
        struct smp_state *s = mk(&p, 4);
        struct smp_result r;
        struct err e = {0};
        ck_assert_int_eq(smp_sample(s, &p, l, 4, &r, &e), -1);
        ck_assert_ptr_nonnull(strstr(e.msg, "NaN"));
        smp_state_destroy(s);
    }
}
END_TEST

/* ---- parameter checks ------------------------------------------------------------------------ */

/* Applies one bad field to the defaults and expects a message naming it. */
static void expect_bad(struct smp_params p, const char *field)
{
    struct err e = {0};
    ck_assert_int_eq(smp_params_check(&p, 1000, &e), -1);
    ck_assert_msg(strstr(e.msg, field) != NULL, "message \"%s\" lacks \"%s\"", e.msg, field);
}

START_TEST(params_check_rejects)
{
    struct smp_params d = smp_params_default(), p;
    struct smp_bias bad_id = {1000, 1.0f}, neg_id = {-1, 1.0f}, big = {3, 101.0f}, nan_b = {3, NAN};
#define BAD(stmt, field) (p = d, stmt, expect_bad(p, field))
    BAD(p.temperature = -0.1f, "temperature");
    BAD(p.temperature = NAN, "temperature");
    BAD(p.temperature = 100.5f, "temperature");
    BAD(p.top_p = 0.0f, "top_p");
    BAD(p.top_p = 1.01f, "top_p");
    BAD(p.top_p = NAN, "top_p");
    BAD(p.top_k = -2, "top_k");
    BAD(p.min_p = -0.01f, "min_p");
    BAD(p.min_p = 1.5f, "min_p");
    BAD(p.presence_penalty = 2.5f, "presence_penalty");
    BAD(p.frequency_penalty = -2.01f, "frequency_penalty");
    BAD(p.repetition_penalty = 0.0f, "repetition_penalty");
    BAD(p.repetition_penalty = 2.5f, "repetition_penalty");
    BAD((p.logit_bias = &bad_id, p.n_logit_bias = 1), "outside the vocabulary");
    BAD((p.logit_bias = &neg_id, p.n_logit_bias = 1), "logit_bias");
    BAD((p.logit_bias = &big, p.n_logit_bias = 1), "between -100 and 100");
    BAD((p.logit_bias = &nan_b, p.n_logit_bias = 1), "logit_bias");
    BAD((p.logprobs = 1, p.n_logprobs = 21), "top_logprobs");
    BAD(p.n_logprobs = 2, "requires logprobs");
#undef BAD
}
END_TEST

START_TEST(params_check_accepts_bounds)
{
    struct smp_bias b[2] = {{0, -100.0f}, {999, 100.0f}};
    struct smp_params p = smp_params_default();
    struct err e = {0};
    ck_assert_int_eq(smp_params_check(&p, 1000, &e), 0);
    p = (struct smp_params){.temperature = 100.0f,
                            .top_p = 1.0f,
                            .top_k = -1,
                            .min_p = 1.0f,
                            .presence_penalty = -2.0f,
                            .frequency_penalty = 2.0f,
                            .repetition_penalty = 2.0f,
                            .logit_bias = b,
                            .n_logit_bias = 2,
                            .logprobs = 1,
                            .n_logprobs = 20};
    ck_assert_int_eq(smp_params_check(&p, 1000, &e), 0);
    p.temperature = 0.0f;
    p.top_k = 5000; /* beyond the vocabulary: off */
    ck_assert_int_eq(smp_params_check(&p, 1000, &e), 0);
}
END_TEST

START_TEST(state_rejects_bad_prompt)
{
    struct smp_params p = smp_params_default();
    int32_t prompt[3] = {1, 2, 10};
    struct err e = {0};
    ck_assert_ptr_null(smp_state_create(&p, 10, prompt, 3, 0, &e));
    ck_assert_ptr_nonnull(strstr(e.msg, "position 2"));
}
END_TEST

/* A grammar mask comes first: disallowed tokens are never drawn, whatever their logit, bias or
 * temperature; logprobs are those of the masked logits; a mask allowing nothing is an error. */
START_TEST(grammar_mask)
{
    enum { N = 130 };
    float l[N];
    uint64_t allow[3] = {0};
    for (int i = 0; i < N; i++) l[i] = (float)(i % 7);
    l[5] = 50.0f;                         /* the model's clear favourite, not allowed */
    allow[0] = 1ull << 3 | 1ull << 10;    /* tokens 3, 10 */
    allow[2] = 1ull << (129 - 128);       /* token 129 */
    struct smp_bias bias = {.token = 64, .bias = 100.0f};
    struct smp_params p = seeded(11, 100.0f);
    p.logit_bias = &bias, p.n_logit_bias = 1, p.logprobs = 1, p.n_logprobs = 5;
    struct smp_state *s = mk(&p, N);
    struct err e = {0};
    int seen[N] = {0};
    for (int k = 0; k < 400; k++) {
        struct smp_result r;
        ck_assert_int_eq(smp_sample_masked(s, &p, l, N, allow, &r, &e), 0);
        ck_assert_msg(r.token == 3 || r.token == 10 || r.token == 129, "drew %d", r.token);
        seen[r.token]++;
        ck_assert_int_le(r.n_top, 3);
        ck_assert(r.logprob > -10.0f && r.logprob <= 0.0f);
    }
    ck_assert(seen[3] && seen[10] && seen[129]);
    uint64_t none[3] = {0};
    struct smp_result r;
    ck_assert_int_eq(smp_sample_masked(s, &p, l, N, none, &r, &e), -1);
    ck_assert_ptr_nonnull(strstr(e.msg, "grammar"));
    smp_state_destroy(s);
}
END_TEST

int main(void)
{
    Suite *su = suite_create("sampler");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 60);
    tcase_add_test(tc, greedy_ties_go_to_lowest_id);
    tcase_add_test(tc, greedy_draws_nothing);
    tcase_add_test(tc, top_k_one_is_greedy);
    tcase_add_test(tc, top_p_tiny_is_greedy);
    tcase_add_test(tc, min_p_exact_cut);
    tcase_add_test(tc, top_p_hand_worked);
    tcase_add_test(tc, top_k_ties_keep_lowest_ids);
    tcase_add_test(tc, temperature_matches_softmax);
    tcase_add_test(tc, filters_match_reference);
    tcase_add_test(tc, large_vocab_filters);
    tcase_add_test(tc, penalties_arithmetic);
    tcase_add_test(tc, repetition_penalty_steers_sampling);
    tcase_add_test(tc, logit_bias_forces_and_bans);
    tcase_add_test(tc, everything_banned_is_an_error);
    tcase_add_test(tc, seeds_reproduce_and_differ);
    tcase_add_test(tc, batch_invariance);
    tcase_add_test(tc, logprobs_are_raw_and_sorted);
    tcase_add_test(tc, logprobs_skip_nan);
    tcase_add_test(tc, nan_logits_never_sampled);
    tcase_add_test(tc, extreme_logits_stay_finite);
    tcase_add_test(tc, all_nan_is_an_error);
    tcase_add_test(tc, params_check_rejects);
    tcase_add_test(tc, params_check_accepts_bounds);
    tcase_add_test(tc, state_rejects_bad_prompt);
    tcase_add_test(tc, grammar_mask);
    suite_add_tcase(su, tc);
    return check_run(su, 1);
}
