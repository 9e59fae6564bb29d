/* Tests of engine/sched with a fake model over a fake paged KV cache.
 *
 * The fake model writes each batch token into its cache slot (through the block table) and
 * samples next = f(tokens read back from the cache for positions 0..last). A wrong block table,
 * a bad prefix-cache hit, a missed copy-on-write or a stale block therefore changes the tokens,
 * and every finished request is checked against f applied to its own tokens alone. */
#include <check.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/sched.h"
#include "tests/check_run.h"

#define VOCAB      1000
#define STOP_TOKEN 7
#define MAX_REQS   2048
#define MAX_LEN    4200 /* longest prompt + max_tokens of any test */

/* ---- the fake model ------------------------------------------------------------------------ */

static int32_t model_next(const int32_t *tokens, int32_t n)
{
    return (int32_t)(kvb_hash_fnv((uint64_t)n, tokens, n) % VOCAB);
}

/* What the harness knows about each request, by id. */
struct req_log {
    bool used;
    int32_t *tokens; /* [n_prompt + max_tokens] prompt (or forked prefix), then each sample */
    int32_t n_tokens;
    int32_t n_given; /* tokens not produced by the model */
    int32_t max_tokens;
    int32_t n_prompt;
    bool finished;
    struct sched_finished fin;
};

struct harness {
    struct sched *s;
    struct sched_config cfg;
    int32_t *slots;       /* [n_blocks, block_size] token id in each cache slot */
    struct req_log *reqs; /* [MAX_REQS] */
    int32_t scratch[MAX_LEN];
    int64_t n_steps;
    int32_t n_finished;
};

static struct harness *harness_create(int32_t n_blocks, int32_t block_size, int32_t budget,
                                      int32_t max_seqs)
{
    struct harness *h = calloc(1, sizeof *h);
    h->cfg = (struct sched_config){n_blocks, block_size, budget, max_seqs, false, 0};
    struct err e = {0};
    h->s = sched_create(&h->cfg, &e);
    ck_assert_msg(h->s != NULL, "%s", e.msg);
    h->slots = calloc((size_t)n_blocks * (size_t)block_size, sizeof *h->slots);
    h->reqs = calloc(MAX_REQS, sizeof *h->reqs);
    return h;
}

/* Destroys the harness after checking the cache holds nothing any more. */
static void harness_destroy(struct harness *h)
{
    struct kvb_stats st;
    kvb_stats(sched_kv(h->s), &st);
    ck_assert_int_eq(st.n_used, 0);
    ck_assert_int_eq(st.n_free + st.n_cached, st.n_blocks);
    struct err e = {0};
    ck_assert_msg(sched_check(h->s, &e) == 0, "%s", e.msg);
    sched_destroy(h->s);
    free(h->slots);
    for (int32_t i = 0; i < MAX_REQS; i++) free(h->reqs[i].tokens);
    free(h->reqs);
    free(h);
}

/* Starts the log of request id with its first n tokens (all given, not sampled). */
static struct req_log *log_start(struct harness *h, int64_t id, const int32_t *tokens, int32_t n,
                                 int32_t n_prompt, int32_t max_tokens)
{
    struct req_log *l = &h->reqs[id];
    ck_assert(!l->used);
    *l = (struct req_log){
        .used = true, .n_tokens = n, .n_given = n, .n_prompt = n_prompt, .max_tokens = max_tokens};
    l->tokens = calloc((size_t)(n_prompt + max_tokens), sizeof *l->tokens);
    memcpy(l->tokens, tokens, (size_t)n * sizeof *tokens);
    return l;
}

static int add_req(struct harness *h, int64_t id, const int32_t *prompt, int32_t n_prompt,
                   int32_t max_tokens, struct err *e)
{
    const int32_t stop_ids[1] = {STOP_TOKEN};
    struct sched_req r = {id, prompt, n_prompt, max_tokens, stop_ids, 1};
    int rc = sched_add(h->s, &r, e);
    if (rc == 0) log_start(h, id, prompt, n_prompt, n_prompt, max_tokens);
    return rc;
}

/* Checks what a step promises: limits, contiguity, logits, block ids in range. */
static void check_batch(const struct harness *h, const struct sched_out *o)
{
    const struct batch *b = &o->batch;
    ck_assert_int_le(b->n_seqs, h->cfg.max_num_seqs);
    ck_assert_int_le(b->n_tokens, h->cfg.max_num_batched_tokens);
    int32_t at = 0;
    for (int32_t k = 0; k < b->n_seqs; k++) {
        const struct batch_seq *q = &b->seqs[k];
        const struct req_log *l = &h->reqs[o->seq_ids[k]];
        ck_assert_int_eq(q->start, at);
        ck_assert_int_ge(q->n_tokens, 1);
        ck_assert_int_le(q->pos0 + q->n_tokens, l->n_tokens);
        ck_assert_int_eq(o->sample[k], q->pos0 + q->n_tokens == l->n_tokens);
        ck_assert_int_eq(q->logits, o->sample[k] ? BATCH_LOGITS_LAST : BATCH_LOGITS_NONE);
        ck_assert_mem_eq(b->tokens + q->start, l->tokens + q->pos0, (size_t)q->n_tokens * 4);
        for (int32_t j = 0; j < k; j++) ck_assert(o->seq_ids[j] != o->seq_ids[k]);
        for (int32_t i = 0; i < kvb_blocks_for(sched_kv(h->s), q->pos0 + q->n_tokens); i++)
            ck_assert(q->block_table[i] >= 0 && q->block_table[i] < h->cfg.n_blocks);
        at += q->n_tokens;
    }
    ck_assert_int_eq(at, b->n_tokens);
}

static int32_t *slot(struct harness *h, const int32_t *table, int32_t pos)
{
    int32_t bs = h->cfg.block_size;
    return &h->slots[(size_t)table[pos / bs] * (size_t)bs + (size_t)(pos % bs)];
}

/* The fake forward: copies, cache writes, then a sample from what the cache holds. */
static void run_model(struct harness *h, const struct sched_out *o, int32_t *sampled)
{
    int32_t bs = h->cfg.block_size;
    for (int32_t c = 0; c < o->n_copies; c++)
        memcpy(h->slots + (size_t)o->copies[c].dst * bs, h->slots + (size_t)o->copies[c].src * bs,
               (size_t)bs * sizeof *h->slots);
    const struct batch *b = &o->batch;
    for (int32_t k = 0; k < b->n_seqs; k++) {
        const struct batch_seq *q = &b->seqs[k];
        for (int32_t i = 0; i < q->n_tokens; i++)
            *slot(h, q->block_table, q->pos0 + i) = b->tokens[q->start + i];
    }
    for (int32_t k = 0; k < b->n_seqs; k++) {
        const struct batch_seq *q = &b->seqs[k];
        if (q->logits != BATCH_LOGITS_LAST) continue;
        int32_t n = q->pos0 + q->n_tokens;
        for (int32_t p = 0; p < n; p++) h->scratch[p] = *slot(h, q->block_table, p);
        sampled[k] = model_next(h->scratch, n);
    }
}

static void collect_finished(struct harness *h)
{
    struct sched_finished fin[16];
    int32_t n;
    while ((n = sched_take_finished(h->s, fin, 16)) > 0)
        for (int32_t i = 0; i < n; i++) {
            struct req_log *l = &h->reqs[fin[i].id];
            ck_assert(l->used && !l->finished);
            l->finished = true;
            l->fin = fin[i];
            h->n_finished++;
        }
}

/* One engine step: schedule, check, run, update, collect. Returns the step's output. */
static struct sched_out step(struct harness *h)
{
    struct sched_out o;
    int32_t sampled[512];
    sched_step(h->s, &o);
    check_batch(h, &o);
    run_model(h, &o, sampled);
    for (int32_t k = 0; k < o.batch.n_seqs; k++) {
        if (!o.sample[k]) continue;
        struct req_log *l = &h->reqs[o.seq_ids[k]];
        l->tokens[l->n_tokens++] = sampled[k];
    }
    if (o.batch.n_seqs > 0) sched_update(h->s, sampled, NULL);
    collect_finished(h);
    struct err e = {0};
    ck_assert_msg(sched_check(h->s, &e) == 0, "step %lld: %s", (long long)h->n_steps, e.msg);
    h->n_steps++;
    return o;
}

static void run_until_idle(struct harness *h, int64_t max_steps)
{
    for (int64_t i = 0; sched_has_work(h->s); i++) {
        ck_assert_int_lt(i, max_steps);
        step(h);
    }
}

/* A finished, not aborted request: every model token is f of what came before, and it ended
 * for the reason it says. */
static void check_transcript(const struct req_log *l)
{
    ck_assert(l->finished);
    for (int32_t j = l->n_given; j < l->n_tokens; j++) {
        ck_assert_int_eq(l->tokens[j], model_next(l->tokens, j));
        if (j < l->n_tokens - 1) ck_assert_int_ne(l->tokens[j], STOP_TOKEN);
    }
    int32_t n_generated = l->n_tokens - l->n_prompt;
    ck_assert_int_eq(l->fin.n_generated, n_generated);
    if (l->fin.reason == SEQ_FINISH_LENGTH)
        ck_assert_int_eq(n_generated, l->max_tokens);
    else
        ck_assert_int_eq(l->fin.reason, SEQ_FINISH_STOP);
}

static void fill_prompt(int32_t *p, int32_t n, uint32_t seed)
{
    for (int32_t i = 0; i < n; i++) {
        seed = seed * 1664525u + 1013904223u;
        p[i] = 10 + (int32_t)((seed >> 8) % (VOCAB - 10)); /* never the stop token */
    }
}

/* Forks child id from parent with alternative last token alt, as the engine does for n > 1, and
 * logs it. Returns the result of sched_fork. */
static int fork_child(struct harness *h, int64_t parent, int64_t id, int32_t alt)
{
    struct req_log *pl = &h->reqs[parent];
    struct err e = {0};
    int rc = sched_fork(h->s, parent, id, alt, &e);
    if (rc == 0) {
        struct req_log *l =
            log_start(h, id, pl->tokens, pl->n_tokens, pl->n_prompt, pl->max_tokens);
        l->tokens[l->n_tokens - 1] = alt;
    }
    return rc;
}

/* ---- tests --------------------------------------------------------------------------------- */

START_TEST(test_single_request)
{
    struct harness *h = harness_create(64, 4, 64, 4);
    int32_t p[10];
    fill_prompt(p, 10, 1);
    ck_assert_int_eq(add_req(h, 0, p, 10, 5, NULL), 0);
    run_until_idle(h, 100);
    check_transcript(&h->reqs[0]);
    ck_assert_int_eq(h->reqs[0].fin.reason, SEQ_FINISH_LENGTH);
    ck_assert_int_eq(h->n_steps, 5);
    harness_destroy(h);
}
END_TEST

START_TEST(test_stop_token_and_stop_flag)
{
    struct harness *h = harness_create(64, 4, 64, 4);
    int32_t p[10];
    fill_prompt(p, 10, 2);
    /* make the third generated token a stop token: use it as the request's stop id */
    int32_t ref[16];
    memcpy(ref, p, sizeof p);
    for (int32_t j = 10; j < 13; j++) ref[j] = model_next(ref, j);
    const int32_t stop_ids[1] = {ref[12]};
    int stop_is_earlier = ref[10] == ref[12] || ref[11] == ref[12];
    struct sched_req r = {0, p, 10, 50, stop_ids, 1};
    ck_assert_int_eq(sched_add(h->s, &r, NULL), 0);
    log_start(h, 0, p, 10, 10, 50);
    run_until_idle(h, 100);
    ck_assert_int_eq(h->reqs[0].fin.reason, SEQ_FINISH_STOP);
    if (!stop_is_earlier) ck_assert_int_eq(h->reqs[0].fin.n_generated, 3);
    /* the engine's own stop (a stop string) */
    ck_assert_int_eq(add_req(h, 1, p, 10, 50, NULL), 0);
    struct sched_out o;
    int32_t sampled[4];
    bool stop[4] = {true};
    sched_step(h->s, &o);
    run_model(h, &o, sampled);
    sched_update(h->s, sampled, stop);
    struct sched_finished fin;
    ck_assert_int_eq(sched_take_finished(h->s, &fin, 1), 1);
    ck_assert_int_eq(fin.reason, SEQ_FINISH_STOP);
    ck_assert_int_eq(fin.n_generated, 1);
    harness_destroy(h);
}
END_TEST

/* A 4000-token prompt with a 512-token budget takes 8 steps; a decoding request gets a token in
 * every one of them, and so does a sibling forked in behind the long prompt. */
START_TEST(test_chunked_prefill)
{
    struct harness *h = harness_create(1024, 16, 512, 8);
    static int32_t longp[4000];
    int32_t shortp[10];
    fill_prompt(longp, 4000, 3);
    fill_prompt(shortp, 10, 4);
    ck_assert_int_eq(add_req(h, 0, shortp, 10, 100, NULL), 0);
    step(h); /* prefill of the short one */
    ck_assert_int_eq(add_req(h, 1, longp, 4000, 5, NULL), 0);
    int32_t n_prefill_steps = 0, n_long_done = 0;
    while (h->reqs[1].n_tokens == 4000) {
        struct sched_out o = step(h);
        bool forked = n_prefill_steps > 0; /* running order now: short, long, sibling */
        ck_assert_int_eq(o.batch.n_seqs, forked ? 3 : 2);
        ck_assert_int_eq(o.seq_ids[0], 0);
        ck_assert_int_eq(o.batch.seqs[0].n_tokens, 1); /* the decode */
        ck_assert(o.sample[0]);
        ck_assert_int_eq(o.seq_ids[1], 1);
        ck_assert_int_eq(o.batch.seqs[1].pos0, n_long_done);
        ck_assert_int_le(o.batch.seqs[1].n_tokens, 511);
        if (forked) {
            ck_assert_int_eq(o.seq_ids[2], 2);
            ck_assert_int_eq(o.batch.seqs[2].n_tokens, 1);
        } else {
            ck_assert_int_eq(fork_child(h, 0, 2, 11), 0);
        }
        n_long_done += o.batch.seqs[1].n_tokens;
        n_prefill_steps++;
        ck_assert_int_le(n_prefill_steps, 8);
    }
    ck_assert_int_eq(n_prefill_steps, 8);
    ck_assert_int_eq(n_long_done, 4000);
    run_until_idle(h, 200);
    for (int64_t id = 0; id < 3; id++) check_transcript(&h->reqs[id]);
    harness_destroy(h);
}
END_TEST

/* With a prefill chunk of 200: a 1,000-token prompt next to a decoding request takes 200 tokens
 * a step (the decode gets its token each step); alone, it takes the whole budget. */
START_TEST(test_prefill_chunk_cap)
{
    struct harness *h = harness_create(1024, 16, 512, 8);
    sched_destroy(h->s);
    h->cfg.prefill_chunk = 200;
    struct err e = {0};
    h->s = sched_create(&h->cfg, &e);
    static int32_t longp[1000];
    int32_t shortp[10];
    fill_prompt(longp, 1000, 5);
    fill_prompt(shortp, 10, 6);
    ck_assert_int_eq(add_req(h, 0, longp, 1000, 30, NULL), 0);
    struct sched_out o = step(h); /* alone: the budget */
    ck_assert_int_eq(o.batch.seqs[0].n_tokens, 512);
    ck_assert_int_eq(add_req(h, 1, shortp, 10, 30, NULL), 0);
    step(h); /* the long one's rest (nothing decodes yet), the short one's prompt */
    ck_assert_int_eq(add_req(h, 2, longp + 1, 999, 3, NULL), 0);
    for (int i = 0; i < 5; i++) {
        o = step(h);
        ck_assert_int_eq(o.batch.n_seqs, 3);
        ck_assert_int_eq(o.seq_ids[2], 2);
        ck_assert_int_eq(o.batch.seqs[2].n_tokens, i < 4 ? 200 : 199);
        ck_assert_int_eq(o.batch.seqs[1].n_tokens, 1); /* the short one decodes each step */
    }
    run_until_idle(h, 200);
    for (int64_t id = 0; id < 3; id++) check_transcript(&h->reqs[id]);
    harness_destroy(h);
}
END_TEST

/* Sixteen requests in a cache a quarter of their demand: preemption happens, and every request
 * still finishes with exactly the tokens it gets alone. */
START_TEST(test_preemption_recompute)
{
    const int32_t bs = 16, n_reqs = 16;
    int32_t demand = 0, biggest = 0;
    static int32_t prompts[16][160];
    int32_t n_prompt[16], max_tokens[16];
    for (int32_t i = 0; i < n_reqs; i++) {
        n_prompt[i] = 40 + 7 * i;
        max_tokens[i] = 60 + 3 * i;
        int32_t need = (n_prompt[i] + max_tokens[i] + bs - 1) / bs;
        demand += need;
        biggest = need > biggest ? need : biggest;
    }
    int32_t n_blocks = demand / 4;
    ck_assert_int_ge(n_blocks, biggest);
    struct harness *h = harness_create(n_blocks, bs, 256, 16);
    for (int32_t i = 0; i < n_reqs; i++) {
        fill_prompt(prompts[i], n_prompt[i], 100 + (uint32_t)i);
        ck_assert_int_eq(add_req(h, i, prompts[i], n_prompt[i], max_tokens[i], NULL), 0);
    }
    run_until_idle(h, 10000);
    struct sched_stats st;
    sched_stats(h->s, &st);
    ck_assert_int_gt(st.n_preemptions, 0);
    for (int32_t i = 0; i < n_reqs; i++) check_transcript(&h->reqs[i]);
    harness_destroy(h);
}
END_TEST

START_TEST(test_abort)
{
    struct harness *h = harness_create(64, 4, 32, 2);
    int32_t p[20];
    fill_prompt(p, 20, 5);
    for (int64_t id = 0; id < 3; id++) ck_assert_int_eq(add_req(h, id, p, 20, 30, NULL), 0);
    step(h);
    step(h);
    struct sched_stats st;
    sched_stats(h->s, &st);
    ck_assert_int_eq(st.n_requests_running, 2);
    ck_assert_int_eq(st.n_requests_waiting, 1);
    ck_assert(sched_abort(h->s, 1)); /* running */
    ck_assert(sched_abort(h->s, 2)); /* waiting */
    ck_assert(!sched_abort(h->s, 99));
    struct sched_out o = step(h);
    for (int32_t k = 0; k < o.batch.n_seqs; k++) ck_assert_int_eq(o.seq_ids[k], 0);
    ck_assert(h->reqs[1].finished && h->reqs[2].finished);
    ck_assert_int_eq(h->reqs[1].fin.reason, SEQ_FINISH_ABORT);
    ck_assert_int_eq(h->reqs[2].fin.reason, SEQ_FINISH_ABORT);
    ck_assert(!sched_abort(h->s, 1)); /* gone */
    sched_stats(h->s, &st);
    ck_assert_int_eq(st.n_requests_running + st.n_requests_waiting, 1);
    ck_assert(sched_abort(h->s, 0));
    step(h);
    ck_assert(!sched_has_work(h->s));
    harness_destroy(h);
}
END_TEST

START_TEST(test_admission_refused)
{
    struct harness *h = harness_create(4, 16, 64, 4);
    int32_t p[64];
    fill_prompt(p, 64, 6);
    struct err e = {0};
    /* 60 + 10 tokens need 69 cached positions: 5 blocks of 16 > 4 */
    ck_assert_int_eq(add_req(h, 0, p, 60, 10, &e), -1);
    ck_assert_msg(strstr(e.msg, "5 KV cache blocks") && strstr(e.msg, "60 prompt") &&
                      strstr(e.msg, "10 max_tokens") && strstr(e.msg, "4 blocks"),
                  "%s", e.msg);
    ck_assert_int_eq(add_req(h, 0, p, 60, 5, &e), 0); /* 64 positions: exactly fits */
    ck_assert_int_eq(add_req(h, 0, p, 4, 5, &e), -1); /* id in use */
    ck_assert_ptr_nonnull(strstr(e.msg, "already in use"));
    ck_assert_int_eq(add_req(h, 1, p, 0, 5, &e), -1);
    ck_assert_int_eq(add_req(h, 2, p, 4, 0, &e), -1);
    ck_assert_int_eq(sched_add(h->s, &(struct sched_req){3, p, 4, 5, NULL, 2}, &e), -1);
    run_until_idle(h, 100);
    check_transcript(&h->reqs[0]);
    struct sched_config bad = {0, 16, 64, 4, false, 0};
    ck_assert_ptr_null(sched_create(&bad, &e));
    ck_assert_ptr_nonnull(strstr(e.msg, "n_blocks"));
    harness_destroy(h);
}
END_TEST

START_TEST(test_limits_respected)
{
    struct harness *h = harness_create(256, 8, 40, 3);
    static int32_t p[10][50];
    for (int64_t id = 0; id < 10; id++) {
        fill_prompt(p[id], 50, 7 + (uint32_t)id);
        ck_assert_int_eq(add_req(h, id, p[id], 30 + (int32_t)id * 2, 12, NULL), 0);
    }
    for (int64_t i = 0; sched_has_work(h->s); i++) {
        ck_assert_int_lt(i, 1000);
        struct sched_out o = step(h); /* check_batch asserts both limits */
        struct sched_stats st;
        sched_stats(h->s, &st);
        ck_assert_int_le(st.n_requests_running, 3);
        ck_assert_int_le(o.batch.n_seqs, 3);
    }
    for (int64_t id = 0; id < 10; id++) check_transcript(&h->reqs[id]);
    harness_destroy(h);
}
END_TEST

START_TEST(test_prefix_cache_reuse)
{
    struct harness *h = harness_create(64, 16, 256, 4);
    int32_t a[80], b[80];
    fill_prompt(a, 80, 8);
    memcpy(b, a, 64 * sizeof *a); /* a 64-token shared "system prompt" */
    fill_prompt(b + 64, 16, 9);
    ck_assert_int_eq(add_req(h, 0, a, 80, 4, NULL), 0);
    run_until_idle(h, 100);
    ck_assert_int_eq(h->reqs[0].fin.n_cached, 0);
    ck_assert_int_eq(add_req(h, 1, b, 80, 4, NULL), 0);
    run_until_idle(h, 100);
    ck_assert_int_eq(h->reqs[1].fin.n_cached, 64);
    ck_assert_int_eq(add_req(h, 2, a, 64, 4, NULL), 0); /* all 4 blocks cached: reuses 3 */
    run_until_idle(h, 100);
    ck_assert_int_eq(h->reqs[2].fin.n_cached, 48);
    for (int64_t id = 0; id < 3; id++) check_transcript(&h->reqs[id]);
    struct sched_stats st;
    sched_stats(h->s, &st);
    ck_assert_int_eq(st.prefix_cache_queries, 80 + 80 + 64);
    ck_assert_int_eq(st.prefix_cache_hits, 64 + 48);
    ck_assert(st.kv_cache_usage == 0.0);
    harness_destroy(h);
}
END_TEST

START_TEST(test_fork_shares_prompt)
{
    struct harness *h = harness_create(64, 16, 256, 4);
    int32_t p[40];
    fill_prompt(p, 40, 10);
    ck_assert_int_eq(add_req(h, 0, p, 40, 20, NULL), 0);
    step(h); /* prefill and first sample */
    struct err e = {0};
    ck_assert_int_eq(sched_fork(h->s, 5, 6, 11, &e), -1); /* unknown parent */
    ck_assert_int_eq(fork_child(h, 0, 1, 11), 0);
    ck_assert_int_eq(fork_child(h, 0, 2, 12), 0);
    ck_assert_int_eq(sched_fork(h->s, 0, 1, 11, &e), -1); /* id in use */
    struct kvb_stats st;
    kvb_stats(sched_kv(h->s), &st);
    ck_assert_int_eq(st.n_used, 3 + 2); /* 3 blocks shared as 2 full + a copied partial each */
    struct sched_out o = step(h);
    ck_assert_int_eq(o.n_copies, 2);
    ck_assert_int_eq(o.batch.n_seqs, 3);
    ck_assert_int_eq(o.copies[0].src, o.batch.seqs[0].block_table[2]);
    ck_assert_int_eq(o.copies[0].dst, o.batch.seqs[1].block_table[2]);
    ck_assert_int_eq(o.batch.seqs[1].block_table[0], o.batch.seqs[0].block_table[0]);
    ck_assert_int_eq(fork_child(h, 0, 9, 13), 0);
    ck_assert(sched_abort(h->s, 9)); /* its pending copy is dropped with it */
    o = step(h);
    ck_assert_int_eq(o.n_copies, 0);
    run_until_idle(h, 200);
    for (int64_t id = 0; id < 3; id++) check_transcript(&h->reqs[id]);
    ck_assert_int_eq(h->reqs[9].fin.reason, SEQ_FINISH_ABORT);
    harness_destroy(h);
}
END_TEST

/* ---- the soak test ------------------------------------------------------------------------- */

static uint32_t rnd(uint64_t *state, uint32_t n)
{
    *state = *state * 6364136223846793005ull + 1442695040888963407ull;
    return (uint32_t)(*state >> 33) % n;
}

/* A random request: one of a few shared prefixes (or none), then a random tail. */
static void soak_add(struct harness *h, uint64_t *rng, int64_t id, const int32_t *prefixes)
{
    int32_t p[400];
    int32_t n_prefix = (int32_t)rnd(rng, 4) * 40, n_tail = 1 + (int32_t)rnd(rng, 120);
    if (n_prefix) memcpy(p, prefixes + rnd(rng, 3) * 200, (size_t)n_prefix * sizeof *p);
    fill_prompt(p + n_prefix, n_tail, (uint32_t)rnd(rng, 1u << 30));
    int32_t max_tokens = 1 + (int32_t)rnd(rng, 80);
    struct err e = {0};
    ck_assert_msg(add_req(h, id, p, n_prefix + n_tail, max_tokens, &e) == 0, "%s", e.msg);
}

/* Picks a live request at random, or -1. */
static int64_t soak_pick_live(const struct harness *h, uint64_t *rng, int64_t n_ids)
{
    for (int tries = 0; tries < 8 && n_ids > 0; tries++) {
        int64_t id = (int64_t)rnd(rng, (uint32_t)n_ids);
        if (h->reqs[id].used && !h->reqs[id].finished) return id;
    }
    return -1;
}

START_TEST(test_soak)
{
    struct harness *h = harness_create(96, 16, 192, 12);
    uint64_t rng = 12345;
    static int32_t prefixes[3 * 200];
    fill_prompt(prefixes, 600, 77);
    int64_t n_ids = 0;
    bool aborted[MAX_REQS] = {false};
    int32_t n_forks = 0;
    for (int64_t t = 0; t < 4000; t++) {
        if (n_ids < MAX_REQS && t < 3500 && rnd(&rng, 100) < 35)
            soak_add(h, &rng, n_ids++, prefixes);
        int64_t victim = rnd(&rng, 100) < 3 ? soak_pick_live(h, &rng, n_ids) : -1;
        if (victim >= 0 && sched_abort(h->s, victim)) aborted[victim] = true;
        step(h);
        int64_t parent = rnd(&rng, 100) < 8 ? soak_pick_live(h, &rng, n_ids) : -1;
        int32_t alt = 10 + (int32_t)rnd(&rng, VOCAB - 10);
        if (parent >= 0 && n_ids < MAX_REQS && fork_child(h, parent, n_ids, alt) == 0) {
            n_ids++;
            n_forks++;
        }
    }
    run_until_idle(h, 100000);
    struct sched_stats st;
    sched_stats(h->s, &st);
    ck_assert_int_gt(st.n_preemptions, 0);
    ck_assert_int_gt(st.prefix_cache_hits, 0);
    int32_t n_checked = 0;
    for (int64_t id = 0; id < n_ids; id++) {
        ck_assert(h->reqs[id].finished);
        if (aborted[id]) continue;
        check_transcript(&h->reqs[id]);
        n_checked++;
    }
    ck_assert_int_gt(n_checked, 500);
    ck_assert_int_gt(n_forks, 20);
    harness_destroy(h);
}
END_TEST

int main(void)
{
    Suite *su = suite_create("sched");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, test_single_request);
    tcase_add_test(tc, test_stop_token_and_stop_flag);
    tcase_add_test(tc, test_chunked_prefill);
    tcase_add_test(tc, test_prefill_chunk_cap);
    tcase_add_test(tc, test_preemption_recompute);
    tcase_add_test(tc, test_abort);
    tcase_add_test(tc, test_admission_refused);
    tcase_add_test(tc, test_limits_respected);
    tcase_add_test(tc, test_prefix_cache_reuse);
    tcase_add_test(tc, test_fork_shares_prompt);
    tcase_add_test(tc, test_soak);
    suite_add_tcase(su, tc);
    return check_run(su, 0);
}
