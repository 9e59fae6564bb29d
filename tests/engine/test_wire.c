/* Tests of wire: requests, events, metrics and step plans survive the trip through bytes
 * unchanged, several values follow each other in one message, and every truncation of a message
 * is reported as malformed without reading past its end (ASan watches). Also metrics_add. */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "engine/wire.h"
#include "tests/check_run.h"

static const int32_t prompt[] = {5, 0, 129279, 17};
static const char *const stops[] = {"</s>", "\n\n", "\xe2\x82\xac"};
static const int32_t stop_ids[] = {2, 9};
static const struct smp_bias bias[] = {{7, -100.0f}, {8, 2.5f}};

static struct gen_params sample_params(void)
{
    struct gen_params p = {.prompt = prompt,
                           .n_prompt = 4,
                           .n = 3,
                           .max_tokens = 99,
                           .ignore_eos = 1,
                           .sampling = smp_params_default(),
                           .stop = stops,
                           .n_stop = 3,
                           .stop_token_ids = stop_ids,
                           .n_stop_token_ids = 2,
                           .skip_special_tokens = 1,
                           .reasoning = 1};
    p.sampling.temperature = 0.7f;
    p.sampling.top_p = 0.9f;
    p.sampling.top_k = 40;
    p.sampling.min_p = 0.05f;
    p.sampling.seed = 0xfedcba9876543210ull;
    p.sampling.has_seed = 1;
    p.sampling.presence_penalty = -0.5f;
    p.sampling.frequency_penalty = 1.25f;
    p.sampling.repetition_penalty = 1.1f;
    p.sampling.logit_bias = bias;
    p.sampling.n_logit_bias = 2;
    p.sampling.logprobs = 1;
    p.sampling.n_logprobs = 5;
    return p;
}

static void expect_same_params(const struct gen_params *a, const struct gen_params *b)
{
    ck_assert_int_eq(a->n_prompt, b->n_prompt);
    ck_assert(memcmp(a->prompt, b->prompt, (size_t)a->n_prompt * sizeof *a->prompt) == 0);
    ck_assert_int_eq(a->n, b->n);
    ck_assert_int_eq(a->max_tokens, b->max_tokens);
    ck_assert_int_eq(a->ignore_eos, b->ignore_eos);
    ck_assert_int_eq(a->n_stop, b->n_stop);
    for (int i = 0; i < a->n_stop; i++) ck_assert_str_eq(a->stop[i], b->stop[i]);
    ck_assert_int_eq(a->n_stop_token_ids, b->n_stop_token_ids);
    ck_assert(memcmp(a->stop_token_ids, b->stop_token_ids, 2 * sizeof(int32_t)) == 0);
    ck_assert_int_eq(a->skip_special_tokens, b->skip_special_tokens);
    ck_assert_int_eq(a->reasoning, b->reasoning);
    const struct smp_params *x = &a->sampling, *y = &b->sampling;
    ck_assert(x->temperature == y->temperature && x->top_p == y->top_p && x->top_k == y->top_k);
    ck_assert(x->min_p == y->min_p && x->seed == y->seed && x->has_seed == y->has_seed);
    ck_assert(x->presence_penalty == y->presence_penalty);
    ck_assert(x->frequency_penalty == y->frequency_penalty);
    ck_assert(x->repetition_penalty == y->repetition_penalty);
    ck_assert(x->logprobs == y->logprobs && x->n_logprobs == y->n_logprobs);
    ck_assert_int_eq(x->n_logit_bias, y->n_logit_bias);
    for (int i = 0; i < x->n_logit_bias; i++)
        ck_assert(x->logit_bias[i].token == y->logit_bias[i].token &&
                  x->logit_bias[i].bias == y->logit_bias[i].bias);
}

START_TEST(params_round_trip)
{
    struct err e = {0};
    struct gen_params p = sample_params();
    struct wire w;
    wire_init(&w);
    wire_put_i64(&w, 42);
    wire_put_params(&w, &p);
    struct wire_rd r = wire_reader(w.p, w.n);
    ck_assert_int_eq(wire_get_i64(&r), 42);
    struct wire_params got;
    ck_assert_msg(wire_get_params(&r, &got, &e) == 0, "%s", e.msg);
    ck_assert(wire_rd_end(&r));
    expect_same_params(&p, &got.p);
    wire_params_free(&got);
    wire_free(&w);
}
END_TEST

static struct gen_event sample_event(void)
{
    struct gen_event ev = {.kind = GEN_EV_FINISH,
                           .choice = 2,
                           .content = "h\xc3\xa9llo",
                           .content_len = 6,
                           .token = 1234,
                           .finish = GEN_FINISH_ERROR,
                           .error = "broken row",
                           .prompt_tokens = 11,
                           .completion_tokens = 5,
                           .cached_tokens = 3};
    ev.lp = (struct smp_result){
        .token = 1234, .logprob = -0.25f, .n_top = 2, .top = {{1234, -0.25f}, {99, -1.5f}}};
    return ev;
}

START_TEST(event_round_trip)
{
    struct err e = {0};
    struct gen_event ev = sample_event(), got;
    struct wire w;
    wire_init(&w);
    wire_put_event(&w, &ev);
    struct wire_rd r = wire_reader(w.p, w.n);
    ck_assert_msg(wire_get_event(&r, &got, &e) == 0, "%s", e.msg);
    ck_assert(wire_rd_end(&r));
    ck_assert(got.kind == ev.kind && got.choice == 2 && got.token == 1234);
    ck_assert_uint_eq(got.content_len, 6);
    ck_assert(memcmp(got.content, ev.content, 6) == 0);
    ck_assert_ptr_null(got.reasoning); /* absent stays absent, not "" */
    ck_assert_str_eq(got.error, "broken row");
    ck_assert(got.finish == GEN_FINISH_ERROR);
    ck_assert(got.lp.n_top == 2 && got.lp.top[1].token == 99 && got.lp.top[1].logprob == -1.5f);
    ck_assert(got.prompt_tokens == 11 && got.completion_tokens == 5 && got.cached_tokens == 3);
    gen_event_clear(&got);
    wire_free(&w);
}
END_TEST

static struct metrics sample_metrics(int k)
{
    struct metrics m;
    memset(&m, 0, sizeof m);
    m.n_running = 2 * k;
    m.n_waiting = k;
    m.kv_blocks_used = 10 * k;
    m.kv_blocks_total = 100 * k;
    m.kv_cache_usage = 0.1;
    m.prefix_cache_queries = 1000 * k;
    m.prefix_cache_hits = 7 * k;
    m.generation_tokens = 55 * k;
    m.sampled_candidates = 50 * k;
    m.sampled_whole = 5 * k;
    m.step_seconds = 1.5 * k;
    m.request_success[MR_LENGTH] = k;
    m.hist[MH_ITL].buckets[3] = (uint64_t)k;
    m.hist[MH_ITL].count = (uint64_t)k;
    m.hist[MH_ITL].sum = 0.5 * k;
    return m;
}

START_TEST(metrics_round_trip_and_sum)
{
    struct err e = {0};
    struct metrics a = sample_metrics(1), b = sample_metrics(3), got;
    struct wire w;
    wire_init(&w);
    wire_put_metrics(&w, &b);
    struct wire_rd r = wire_reader(w.p, w.n);
    ck_assert_msg(wire_get_metrics(&r, &got, &e) == 0, "%s", e.msg);
    ck_assert(wire_rd_end(&r));
    ck_assert(memcmp(&got.hist, &b.hist, sizeof b.hist) == 0);
    ck_assert(got.kv_blocks_total == 300 && got.prefix_cache_hits == 21);
    ck_assert(got.sampled_candidates == 150 && got.sampled_whole == 15);
    metrics_add(&a, &got);
    ck_assert_int_eq(a.n_running, 8);
    ck_assert_int_eq(a.kv_blocks_used, 40);
    ck_assert_int_eq(a.kv_blocks_total, 400);
    ck_assert(a.kv_cache_usage > 0.0999 && a.kv_cache_usage < 0.1001);
    ck_assert_int_eq(a.request_success[MR_LENGTH], 4);
    ck_assert_int_eq(a.sampled_candidates, 200);
    ck_assert_uint_eq(a.hist[MH_ITL].buckets[3], 4);
    ck_assert(a.hist[MH_ITL].sum == 2.0);
    ck_assert(a.step_seconds == 6.0);
    wire_free(&w);
}
END_TEST

/* Two sequences: a 3-token prefill chunk after 62 cached tokens (two blocks of 64), and one decode
 * token. */
static const int32_t step_tokens[] = {3, 4, 5, 6};
static const int32_t table_a[] = {7, 2};
static const int32_t table_b[] = {9};
static const struct batch_seq step_seqs[] = {
    {.start = 0, .n_tokens = 3, .pos0 = 62, .block_table = table_a, .logits = BATCH_LOGITS_LAST},
    {.start = 3, .n_tokens = 1, .pos0 = 5, .block_table = table_b, .logits = BATCH_LOGITS_ALL}};
static const struct batch step_batch = {
    .n_tokens = 4, .tokens = step_tokens, .n_seqs = 2, .seqs = step_seqs};
static const struct kvb_copy step_copies[] = {{1, 4}, {6, 0}};

START_TEST(step_round_trip)
{
    struct err e = {0};
    struct wire w;
    wire_init(&w);
    wire_put_step(&w, &step_batch, 64, step_copies, 2);
    struct wire_rd r = wire_reader(w.p, w.n);
    struct wire_step s;
    ck_assert_msg(wire_get_step(&r, &s, &e) == 0, "%s", e.msg);
    ck_assert(wire_rd_end(&r));
    ck_assert_int_eq(s.batch.n_tokens, 4);
    ck_assert(memcmp(s.batch.tokens, step_tokens, sizeof step_tokens) == 0);
    ck_assert_int_eq(s.batch.n_seqs, 2);
    for (int i = 0; i < 2; i++) {
        const struct batch_seq *x = &s.batch.seqs[i], *y = &step_seqs[i];
        ck_assert(x->start == y->start && x->n_tokens == y->n_tokens && x->pos0 == y->pos0);
        ck_assert(x->logits == y->logits);
    }
    ck_assert(s.batch.seqs[0].block_table[0] == 7 && s.batch.seqs[0].block_table[1] == 2);
    ck_assert(s.batch.seqs[1].block_table[0] == 9);
    ck_assert_int_eq(s.n_copies, 2);
    ck_assert(s.copies[1].src == 6 && s.copies[1].dst == 0);
    wire_step_free(&s);
    wire_free(&w);
}
END_TEST

/* Every proper prefix of a message is malformed, and decoding it reads nothing beyond it (the
 * prefix is copied to a buffer of exactly its size, so ASan sees any overrun). */
START_TEST(truncations_are_refused)
{
    struct err e = {0};
    struct gen_params p = sample_params();
    struct gen_event ev = sample_event();
    struct metrics m = sample_metrics(2);
    for (int kind = 0; kind < 4; kind++) {
        struct wire w;
        wire_init(&w);
        if (kind == 0) wire_put_params(&w, &p);
        if (kind == 1) wire_put_event(&w, &ev);
        if (kind == 2) wire_put_metrics(&w, &m);
        if (kind == 3) wire_put_step(&w, &step_batch, 64, step_copies, 2);
        for (size_t n = 0; n < w.n; n++) {
            uint8_t *cut = xmalloc(n ? n : 1);
            memcpy(cut, w.p, n);
            struct wire_rd r = wire_reader(cut, n);
            struct wire_params wp;
            struct gen_event ge;
            struct metrics gm;
            struct wire_step ws;
            int rc = kind == 0   ? wire_get_params(&r, &wp, &e)
                     : kind == 1 ? wire_get_event(&r, &ge, &e)
                     : kind == 2 ? wire_get_metrics(&r, &gm, &e)
                                 : wire_get_step(&r, &ws, &e);
            if (rc != -1) ck_abort_msg("kind %d: a %zu-byte prefix of %zu decoded", kind, n, w.n);
            free(cut);
        }
        wire_free(&w);
    }
}
END_TEST

/* Counts that claim more elements than the message holds are refused before any allocation. */
START_TEST(huge_counts_are_refused)
{
    struct err e = {0};
    struct wire w;
    wire_init(&w);
    wire_put_i32(&w, INT32_MAX); /* n_prompt */
    struct wire_rd r = wire_reader(w.p, w.n);
    struct wire_params wp;
    ck_assert_int_eq(wire_get_params(&r, &wp, &e), -1);
    ck_assert_msg(strstr(e.msg, "malformed request"), "%s", e.msg);
    wire_free(&w);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("wire");
    TCase *tc = tcase_create("wire");
    tcase_add_test(tc, params_round_trip);
    tcase_add_test(tc, event_round_trip);
    tcase_add_test(tc, metrics_round_trip_and_sum);
    tcase_add_test(tc, step_round_trip);
    tcase_add_test(tc, truncations_are_refused);
    tcase_add_test(tc, huge_counts_are_refused);
    suite_add_tcase(s, tc);
    return check_run(s, 0);
}
