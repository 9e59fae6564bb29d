/* Tests of engine/forward on tiny random checkpoints: prefill, chunked prefill and decode agree;
 * a sequence's logits do not depend on its batch-mates (malformed batches: tests/engine/test_backend.c);
 * the same under numerics bf16 with every BF16 matrix set the machine runs. */
#include <check.h>
#include <math.h>
#include <string.h>

#include "engine/cpu/forward.h"
#include "tests/engine/tiny_model.h"
#include "tests/check_run.h"

enum { BS = 4, N_TOK = 23 };

static char *dir;
static struct model *m;
static const struct matrix_kernels *mx_cur; /* numerics bf16's matrix set for the runs; NULL: F32 */

static void load(struct tiny_opts o)
{
    struct err e = {0};
    dir = ck_tmpdir();
    tiny_model_write(dir, &o, 11);
    m = model_load(dir, &e);
    ck_assert_msg(m != NULL, "%s", e.msg);
}

static void unload(void)
{
    model_destroy(m);
    ck_rmdir(dir);
}

static const int32_t prompt[N_TOK] = {0, 5, 17, 63, 2, 2, 9, 40, 33, 12, 7, 50, 1,
                                      3, 8, 61, 25, 44, 18, 6, 30, 11, 59};

/* Runs tokens through a fresh cache in steps of `chunk`; logits of every position. */
static void run_chunked_on(int chunk, enum dtype kv_dtype, struct tp *tp, float *logits)
{
    int n_blocks = (N_TOK + BS - 1) / BS;
    struct kv_cache *kv = kv_cache_create(m->cfg.n_layers, config_kv_width(&m->cfg), BS,
                                          n_blocks + 3, kv_dtype);
    int32_t table[16];
    for (int i = 0; i < n_blocks; i++) table[i] = n_blocks + 2 - i; /* scattered */
    struct fwd *f = fwd_create(m, chunk, tp);
    struct err e = {0};
    fwd_use_matrix(f, mx_cur);
    for (int p = 0; p < N_TOK; p += chunk) {
        int len = N_TOK - p < chunk ? N_TOK - p : chunk;
        struct batch_seq s = {0, len, p, table, BATCH_LOGITS_ALL};
        struct batch b = {len, prompt + p, 1, &s};
        ck_assert_msg(fwd_run(f, kv, &b, logits + (size_t)p * m->cfg.vocab_size, &e) == 0, "%s", e.msg);
    }
    fwd_destroy(f);
    kv_cache_destroy(kv);
}

static void run_chunked(int chunk, enum dtype kv_dtype, float *logits)
{
    run_chunked_on(chunk, kv_dtype, NULL, logits);
}

static float max_abs(const float *a, size_t n)
{
    float mx = 0;
    for (size_t i = 0; i < n; i++) mx = fmaxf(mx, fabsf(a[i]));
    return mx;
}

static float max_diff(const float *a, const float *b, size_t n)
{
    float mx = 0;
    for (size_t i = 0; i < n; i++) mx = fmaxf(mx, fabsf(a[i] - b[i]));
    return mx;
}

/* Prefill, chunks of 5 and decode give the same logits to F32 rounding. */
static void check_modes(void)
{
    size_t n = (size_t)N_TOK * m->cfg.vocab_size;
    float *full = malloc(n * sizeof *full), *other = malloc(n * sizeof *other);
    run_chunked(N_TOK, DT_F32, full);
    float scale = max_abs(full, n);
    ck_assert(scale > 0.1f && isfinite(scale));
    int chunks[] = {5, 1};
    for (int i = 0; i < 2; i++) {
        run_chunked(chunks[i], DT_F32, other);
        float d = max_diff(full, other, n);
        ck_assert_msg(d <= 1e-5f * scale, "chunk %d: max diff %g of %g", chunks[i], d, scale);
    }
    free(full);
    free(other);
}

START_TEST(modes_agree_bf16)
{
    load((struct tiny_opts){.q_lora = 1});
    check_modes();
    unload();
}
END_TEST

START_TEST(modes_agree_fp8)
{
    load((struct tiny_opts){.q_lora = 1, .fp8 = 1, .mtp = 1});
    check_modes();
    unload();
}
END_TEST

START_TEST(modes_agree_no_q_lora)
{
    load((struct tiny_opts){0});
    check_modes();
    unload();
}
END_TEST

/* A BF16 cache stays close to the F32 one (it rounds each stored latent once). */
START_TEST(bf16_cache_close)
{
    load((struct tiny_opts){.q_lora = 1});
    size_t n = (size_t)N_TOK * m->cfg.vocab_size;
    float *a = malloc(n * sizeof *a), *b = malloc(n * sizeof *b);
    run_chunked(N_TOK, DT_F32, a);
    run_chunked(N_TOK, DT_BF16, b);
    float d = max_diff(a, b, n), scale = max_abs(a, n);
    ck_assert_msg(d > 0 && d <= 2e-2f * scale, "bf16 cache diff %g of %g", d, scale);
    free(a);
    free(b);
    unload();
}
END_TEST

/* An F16 cache too: it rounds each stored value once, to 11 significant bits (closer than
 * BF16's 8), and every chunking reads the same rounded rows. */
START_TEST(f16_cache_close)
{
    load((struct tiny_opts){.q_lora = 1});
    size_t n = (size_t)N_TOK * m->cfg.vocab_size;
    float *a = malloc(n * sizeof *a), *b = malloc(n * sizeof *b), *c = malloc(n * sizeof *c);
    run_chunked(N_TOK, DT_F32, a);
    run_chunked(N_TOK, DT_F16, b);
    run_chunked(1, DT_F16, c);
    float d = max_diff(a, b, n), scale = max_abs(a, n);
    ck_assert_msg(d > 0 && d <= 4e-3f * scale, "f16 cache diff %g of %g", d, scale);
    ck_assert_msg(max_diff(b, c, n) == 0, "f16 cache: prefill and decode differ");
    free(a);
    free(b);
    free(c);
    unload();
}
END_TEST

/* Logits of every position of a long prompt (150 tokens, scattered blocks) run in chunks. */
static float *run_long(int chunk, struct tp *tp)
{
    enum { N = 150 };
    int n_blocks = (N + BS - 1) / BS, V = m->cfg.vocab_size;
    struct kv_cache *kv = kv_cache_create(m->cfg.n_layers, config_kv_width(&m->cfg), BS, n_blocks, DT_BF16);
    int32_t table[(N + BS - 1) / BS], tok[N];
    for (int i = 0; i < n_blocks; i++) table[i] = (i * 7) % n_blocks; /* 7 is prime to 38 */
    for (int i = 0; i < N; i++) tok[i] = (i * 29 + 3) % V;
    float *logits = malloc((size_t)N * V * sizeof *logits);
    struct fwd *f = fwd_create(m, chunk, tp);
    struct err e = {0};
    fwd_use_matrix(f, mx_cur);
    for (int p = 0; p < N; p += chunk) {
        int len = N - p < chunk ? N - p : chunk;
        struct batch_seq s = {0, len, p, table, BATCH_LOGITS_ALL};
        struct batch b = {len, tok + p, 1, &s};
        ck_assert_msg(fwd_run(f, kv, &b, logits + (size_t)p * V, &e) == 0, "%s", e.msg);
    }
    fwd_destroy(f);
    kv_cache_destroy(kv);
    return logits;
}

/* A long prompt gives the same bits in one step (attention in several loops) as in chunks small
 * enough for attention as one loop, or not, or token by token, with 1 or 3 threads: a token's
 * arithmetic never depends on the step it is in. */
static void check_long_chunks(void)
{
    size_t n = (size_t)150 * m->cfg.vocab_size;
    struct tp *tp = tp_create(3);
    float *one = run_long(150, NULL);
    int chunks[] = {50, 64, 65, 1};
    for (int i = 0; i < 4; i++) {
        float *other = run_long(chunks[i], i % 2 ? tp : NULL);
        ck_assert_msg(memcmp(one, other, n * sizeof *one) == 0, "chunks of %d differ", chunks[i]);
        free(other);
    }
    free(one);
    tp_destroy(tp);
}

START_TEST(long_prompt_chunks_bitwise)
{
    load((struct tiny_opts){.q_lora = 1, .fp8 = 1});
    check_long_chunks();
    unload();
    load((struct tiny_opts){0});
    check_long_chunks();
    unload();
}
END_TEST

/* Three sequences in one batch — one decoding, one mid-prefill chunk, one fresh prompt — give
 * bit-identical logits to each run alone with the same cache contents. */
static void check_batch_invariance(void)
{
    int V = m->cfg.vocab_size;
    struct kv_cache *kv = kv_cache_create(m->cfg.n_layers, config_kv_width(&m->cfg), BS, 32, DT_F32);
    struct tp *tp = tp_create(3);
    struct fwd *f = fwd_create(m, 32, tp);
    struct err e = {0};
    fwd_use_matrix(f, mx_cur);
    int32_t t0[] = {0, 1, 2, 3, 4, 5, 6, 7}, t1[] = {8, 9, 10, 11, 12, 13, 14, 15, 16, 17};
    int32_t t2[] = {20, 21, 22};
    int32_t bt0[] = {0, 1, 2}, bt1[] = {10, 11, 12}, bt2[] = {20};
    /* History: seq 0 has 7 tokens cached, seq 1 has 4. */
    struct batch_seq h[2] = {{0, 7, 0, bt0, BATCH_LOGITS_NONE}, {7, 4, 0, bt1, BATCH_LOGITS_NONE}};
    int32_t hist[11];
    memcpy(hist, t0, 7 * sizeof *hist);
    memcpy(hist + 7, t1, 4 * sizeof *hist);
    struct batch hb = {11, hist, 2, h};
    ck_assert_msg(fwd_run(f, kv, &hb, NULL, &e) == 0, "%s", e.msg);
    /* Together: decode t0[7] at 7, chunk t1[4..9] at 4, prompt t2 at 0. */
    int32_t toks[10] = {t0[7], t1[4], t1[5], t1[6], t1[7], t1[8], t1[9], t2[0], t2[1], t2[2]};
    struct batch_seq s[3] = {{0, 1, 7, bt0, BATCH_LOGITS_LAST}, {1, 6, 4, bt1, BATCH_LOGITS_ALL},
                             {7, 3, 0, bt2, BATCH_LOGITS_LAST}};
    struct batch b = {10, toks, 3, s};
    ck_assert_int_eq(batch_n_logits(&b), 8);
    float *together = malloc(8 * (size_t)V * sizeof(float)), *alone = malloc(8 * (size_t)V * sizeof(float));
    ck_assert_msg(fwd_run(f, kv, &b, together, &e) == 0, "%s", e.msg);
    int row = 0;
    for (int i = 0; i < 3; i++) {
        struct batch_seq one = s[i];
        one.start = 0;
        struct batch ob = {one.n_tokens, toks + s[i].start, 1, &one};
        ck_assert_msg(fwd_run(f, kv, &ob, alone, &e) == 0, "%s", e.msg);
        int rows = batch_n_logits(&ob);
        ck_assert_msg(memcmp(alone, together + (size_t)row * V, (size_t)rows * V * sizeof(float)) == 0,
                      "sequence %d differs alone", i);
        row += rows;
    }
    free(together);
    free(alone);
    fwd_destroy(f);
    tp_destroy(tp);
    kv_cache_destroy(kv);
}

START_TEST(batch_invariance)
{
    load((struct tiny_opts){.q_lora = 1, .fp8 = 1});
    check_batch_invariance();
    unload();
}
END_TEST

/* Logits are the same bits with 1, 2 and 3 worker threads, in prefill and decode. */
static void check_thread_invariance(void)
{
    size_t n = (size_t)N_TOK * m->cfg.vocab_size;
    int chunks[] = {N_TOK, 1};
    float *one = malloc(n * sizeof *one), *more = malloc(n * sizeof *more);
    for (int c = 0; c < 2; c++) {
        run_chunked_on(chunks[c], DT_BF16, NULL, one);
        for (int th = 2; th <= 3; th++) {
            struct tp *tp = tp_create(th);
            run_chunked_on(chunks[c], DT_BF16, tp, more);
            tp_destroy(tp);
            ck_assert_msg(memcmp(one, more, n * sizeof *one) == 0, "%d threads, chunk %d", th, chunks[c]);
        }
    }
    free(one);
    free(more);
}

START_TEST(thread_invariance)
{
    load((struct tiny_opts){.q_lora = 1, .fp8 = 1});
    check_thread_invariance();
    unload();
}
END_TEST

/* ---- numerics bf16: every matrix set this machine runs (the emulated AMX always) ----------- */

static const char *matrix_sets[] = {"avx512bf16", "amx", "amx-emulated"};

/* The BF16 matrix sets keep everything above: prefill, chunks and decode agree to F32 rounding,
 * batch and thread-count invariance hold bit for bit; and the logits stay close to the F32
 * arithmetic's (activations rounded to BF16 at every BF16 matmul: within 1e-2 of the largest
 * logit, the same argmax at 90% of the positions at least). */
START_TEST(matrix_sets_keep_invariants)
{
    mx_cur = matrix_by_name(matrix_sets[_i]);
    if (!mx_cur) return;
    load((struct tiny_opts){.q_lora = 1});
    check_modes();
    check_batch_invariance();
    check_thread_invariance();
    check_long_chunks();
    size_t n = (size_t)N_TOK * m->cfg.vocab_size;
    float *a = malloc(n * sizeof *a), *b = malloc(n * sizeof *b);
    run_chunked(N_TOK, DT_F32, b);
    const struct matrix_kernels *keep = mx_cur;
    mx_cur = NULL;
    run_chunked(N_TOK, DT_F32, a);
    mx_cur = keep;
    float d = max_diff(a, b, n), scale = max_abs(a, n);
    int same = 0, V = m->cfg.vocab_size;
    for (int t = 0; t < N_TOK; t++) {
        int ia = 0, ib = 0;
        for (int v = 1; v < V; v++) {
            if (a[t * V + v] > a[t * V + ia]) ia = v;
            if (b[t * V + v] > b[t * V + ib]) ib = v;
        }
        same += ia == ib;
    }
    ck_assert_msg(d > 0 && d <= 1e-2f * scale, "%s: diff %g of %g", mx_cur->name, d, scale);
    ck_assert_msg(same >= N_TOK * 9 / 10, "%s: argmax agrees at %d of %d", mx_cur->name, same, N_TOK);
    free(a);
    free(b);
    unload();
    mx_cur = NULL;
}
END_TEST

int main(void)
{
    Suite *s = suite_create("forward");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 120);
    const TTest *tests[] = {modes_agree_bf16, modes_agree_fp8, modes_agree_no_q_lora,
                            bf16_cache_close, f16_cache_close, batch_invariance, thread_invariance,
                            long_prompt_chunks_bitwise};
    for (size_t i = 0; i < sizeof tests / sizeof tests[0]; i++) tcase_add_test(tc, tests[i]);
    tcase_add_loop_test(tc, matrix_sets_keep_invariants, 0,
                        (int)(sizeof matrix_sets / sizeof matrix_sets[0]));
    suite_add_tcase(s, tc);
    return check_run(s, 1);
}
