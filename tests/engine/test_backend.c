/* Tests of the backend seam with the CPU backend on a tiny random checkpoint: KV pool sizing,
 * refused options and batches, copy-on-write of blocks, and logits equal to the forward pass run
 * directly, pre-filtered rows (forward_cands, fetch_row). Also batch_n_logits / batch_check, and
 * backend_select without a GPU. */
#include <check.h>
#include <string.h>

#include "engine/backend.h"
#include "engine/cpu/forward.h"
#include "engine/cpu/kv_cache.h"
#include "tests/check_run.h"
#include "tests/engine/tiny_model.h"

enum { BS = 4 };

static char *dir;
static struct model *m;

static void load(void)
{
    struct err e = {0};
    dir = ck_tmpdir();
    tiny_model_write(dir, &(struct tiny_opts){.q_lora = 1, .fp8 = 1}, 5);
    m = model_load(dir, &e);
    ck_assert_msg(m != NULL, "%s", e.msg);
}

static void unload(void)
{
    model_destroy(m);
    ck_rmdir(dir);
}

static struct backend_opts opts(int64_t kv_blocks)
{
    return (struct backend_opts){.numerics = NUMERICS_REF, .max_tokens = 8, .max_logits = 8,
                                 .block_size = BS, .kv_dtype = DT_F32, .kv_blocks = kv_blocks,
                                 .threads = 2};
}

static struct backend *make(const struct backend_opts *o)
{
    struct err e = {0};
    struct backend *b = backend_cpu()->create(m, o, &e);
    ck_assert_msg(b != NULL, "%s", e.msg);
    return b;
}

static void expect_create_error(const struct backend_opts *o, const char *frag)
{
    struct err e = {0};
    ck_assert_ptr_null(backend_cpu()->create(m, o, &e));
    ck_assert_msg(strstr(e.msg, frag), "'%s' not in: %s", frag, e.msg);
}

START_TEST(pool_sizing)
{
    load();
    struct backend_stats st;
    struct backend_opts o = opts(5);
    struct backend *b = make(&o);
    backend_cpu()->stats(b, &st);
    ck_assert_int_eq(st.n_blocks, 5);
    size_t per = kv_cache_block_bytes(m->cfg.n_layers, config_kv_width(&m->cfg), BS, DT_F32);
    ck_assert_uint_eq(st.kv_bytes, 5 * per);
    ck_assert_uint_eq(st.weight_bytes, m->st.n_bytes);
    ck_assert(strstr(st.device, "CPU") != NULL);
    backend_cpu()->destroy(b);
    o = opts(0);
    o.kv_memory = (double)(3 * per + per / 2); /* bytes: three whole blocks */
    b = make(&o);
    backend_cpu()->stats(b, &st);
    ck_assert_int_eq(st.n_blocks, 3);
    backend_cpu()->destroy(b);
    o.kv_memory = (double)(per - 1);
    expect_create_error(&o, "holds no block");
    o = opts(2);
    o.numerics = NUMERICS_FAST;
    expect_create_error(&o, "bf16");
    o = opts(2);
    o.dump_dir = "unused";
    expect_create_error(&o, "numerics fast only");
    o = opts(2);
    o.kv_dtype = DT_F16; /* half the bytes of F32 */
    b = make(&o);
    backend_cpu()->stats(b, &st);
    ck_assert_uint_eq(st.kv_bytes, 2 * per / 2);
    ck_assert_int_eq(st.kv_dtype, DT_F16);
    backend_cpu()->destroy(b);
    o.kv_dtype = DT_F8E4M3;
    expect_create_error(&o, "f32, bf16 or f16");
    unload();
}
END_TEST

static void expect_batch_error(struct backend *b, struct batch *bt, const char *frag)
{
    struct err e = {0};
    float logits[TINY_V * 8];
    ck_assert_int_eq(backend_cpu()->forward(b, bt, logits, &e), -1);
    ck_assert_msg(strstr(e.msg, frag), "'%s' not in: %s", frag, e.msg);
}

START_TEST(bad_batches)
{
    load();
    struct backend_opts o = opts(2);
    o.max_tokens = 4, o.max_logits = 2;
    struct backend *b = make(&o);
    int32_t toks[5] = {1, 2, 3, 64, 5}, bt[2] = {0, 1}, bad_bt[2] = {0, 7};
    struct batch_seq s = {0, 4, 0, bt, BATCH_LOGITS_LAST};
    struct batch ba = {4, toks, 1, &s};
    expect_batch_error(b, &ba, "token id 64");
    toks[3] = 4;
    s.block_table = bad_bt;
    s.pos0 = 4;
    expect_batch_error(b, &ba, "block id 7");
    s.block_table = bt, s.pos0 = 0;
    s.n_tokens = 3;
    expect_batch_error(b, &ba, "cover 3 of 4");
    ba.n_tokens = 5, s.n_tokens = 5;
    expect_batch_error(b, &ba, "batch of 5 tokens (limit 4)");
    ba.n_tokens = 3, s.n_tokens = 3, s.logits = BATCH_LOGITS_ALL;
    expect_batch_error(b, &ba, "3 rows of logits (limit 2)");
    int32_t neg[2] = {0, -1};
    s.block_table = neg, s.pos0 = 4, s.logits = BATCH_LOGITS_LAST;
    expect_batch_error(b, &ba, "block id -1");
    backend_cpu()->destroy(b);
    unload();
}
END_TEST

/* Runs one sequence's tokens [p0, p0 + n) with the given block table; its last logits row. */
static void step(struct backend *b, const int32_t *toks, int p0, int n, const int32_t *table,
                 float *logits)
{
    struct err e = {0};
    struct batch_seq s = {0, n, p0, table, BATCH_LOGITS_LAST};
    struct batch bt = {n, toks + p0, 1, &s};
    ck_assert_msg(backend_cpu()->forward(b, &bt, logits, &e) == 0, "%s", e.msg);
}

/* A forked tail block copied with copy_blocks decodes exactly as the original block does. */
START_TEST(copy_blocks_forks)
{
    load();
    struct backend_opts o = opts(6);
    struct backend *b = make(&o);
    int32_t toks[8] = {3, 9, 27, 17, 51, 26, 14, 42};
    int32_t parent[2] = {0, 1}, child[2] = {0, 4};
    struct kvb_copy cp = {.src = 1, .dst = 4};
    float a[TINY_V], c[TINY_V];
    step(b, toks, 0, 6, parent, a);         /* 6 tokens: block 0 full, block 1 half */
    backend_cpu()->copy_blocks(b, &cp, 1);
    step(b, toks, 6, 1, parent, a);
    step(b, toks, 6, 1, child, c);
    ck_assert(memcmp(a, c, sizeof a) == 0);
    backend_cpu()->destroy(b);
    unload();
}
END_TEST

/* The seam adds nothing: the backend's logits are the forward pass's, bit for bit. */
START_TEST(same_as_forward)
{
    load();
    struct backend_opts o = opts(4);
    o.threads = 1;
    struct backend *b = make(&o);
    int32_t toks[7] = {1, 4, 9, 16, 25, 36, 49}, table[2] = {3, 1};
    float via[TINY_V], direct[TINY_V];
    step(b, toks, 0, 7, table, via);
    struct kv_cache *kv = kv_cache_create(m->cfg.n_layers, config_kv_width(&m->cfg), BS, 4, DT_F32);
    struct fwd *f = fwd_create(m, 8, NULL);
    struct batch_seq s = {0, 7, 0, table, BATCH_LOGITS_LAST};
    struct batch bt = {7, toks, 1, &s};
    struct err e = {0};
    ck_assert_msg(fwd_run(f, kv, &bt, direct, &e) == 0, "%s", e.msg);
    ck_assert(memcmp(via, direct, sizeof via) == 0);
    fwd_destroy(f);
    kv_cache_destroy(kv);
    backend_cpu()->destroy(b);
    unload();
}
END_TEST

/* forward_cands: the same step as forward, each row pre-filtered exactly as smp_prefilter does;
 * fetch_row gives the rows forward gives; the counts in the stats. */
START_TEST(prefiltered_rows)
{
    load();
    struct backend_opts o = opts(8);
    o.threads = 1;
    struct backend *b = make(&o);
    o.sample_prefilter = 1;
    struct backend *c = make(&o);
    int32_t toks[3] = {2, 7, 11}, t0[1] = {0}, t1[1] = {2};
    struct batch_seq s[2] = {{0, 2, 0, t0, BATCH_LOGITS_ALL}, {2, 1, 0, t1, BATCH_LOGITS_LAST}};
    struct batch bt = {3, toks, 2, s};
    float rows[3][TINY_V], got[TINY_V];
    struct smp_cands cands[3];
    struct err e = {0};
    ck_assert_msg(backend_cpu()->forward(b, &bt, rows[0], &e) == 0, "%s", e.msg);
    ck_assert_msg(backend_cpu()->forward_cands(c, &bt, cands, &e) == 0, "%s", e.msg);
    for (int r = 0; r < 3; r++) {
        int32_t ids[SMP_CAND_K];
        float vals[SMP_CAND_K];
        struct smp_cands want;
        smp_prefilter(rows[r], TINY_V, SMP_CAND_K, ids, vals, &want);
        ck_assert_int_eq(cands[r].n, want.n);
        ck_assert(memcmp(cands[r].ids, ids, sizeof ids) == 0 && memcmp(cands[r].logits, vals, sizeof vals) == 0);
        ck_assert(cands[r].out_max == want.out_max && cands[r].out_mass == want.out_mass);
        backend_cpu()->fetch_row(c, r, got);
        ck_assert(memcmp(got, rows[r], sizeof got) == 0);
    }
    struct backend_stats st;
    backend_cpu()->stats(c, &st);
    ck_assert(st.cand_rows == 3 && st.fetched_rows == 3);
    ck_assert_int_eq(backend_cpu()->forward_cands(b, &bt, cands, &e), -1); /* not made for it */
    backend_cpu()->destroy(b);
    backend_cpu()->destroy(c);
    unload();
}
END_TEST

START_TEST(n_logits)
{
    int32_t t[6] = {0};
    struct batch_seq s[3] = {{0, 3, 0, t, BATCH_LOGITS_ALL}, {3, 2, 5, t, BATCH_LOGITS_NONE},
                             {5, 1, 9, t, BATCH_LOGITS_LAST}};
    struct batch b = {6, t, 3, s};
    ck_assert_int_eq(batch_n_logits(&b), 4);
}
END_TEST

/* Without a GPU (or without CUDA in the build) auto runs on the CPU and says why; cuda fails. */
START_TEST(select_without_gpu)
{
    char note[256];
    struct err e = {0};
    ck_assert_ptr_eq(backend_select(BACKEND_CPU, note, sizeof note, &e), backend_cpu());
    ck_assert_str_eq(note, "");
    ck_assert_ptr_eq(backend_select(BACKEND_AUTO, note, sizeof note, &e), backend_cpu());
    ck_assert_msg(strstr(note, "running on the CPU: ") == note, "%s", note);
    ck_assert_ptr_null(backend_select(BACKEND_CUDA, note, sizeof note, &e));
    ck_assert_msg(strstr(e.msg, "backend cuda: ") == e.msg, "%s", e.msg);
}
END_TEST

START_TEST(device_lists)
{
    int d[BACKEND_MAX_DEVICES];
    struct err e = {0};
    ck_assert_int_eq(backend_parse_devices("", d, 8, &e), 0);
    ck_assert_int_eq(backend_parse_devices("3", d, 8, &e), 1);
    ck_assert_int_eq(d[0], 3);
    ck_assert_int_eq(backend_parse_devices("0,2,5-7", d, 8, &e), 5);
    ck_assert(d[0] == 0 && d[1] == 2 && d[2] == 5 && d[3] == 6 && d[4] == 7);
    const char *bad[][2] = {{"a", "expected device numbers"}, {"1,,2", "expected"},
                            {"0-", "expected"}, {"3-1", "runs backwards"}, {"1,1", "listed twice"},
                            {"0-3,2", "listed twice"}, {"2048", "0..1023"}, {"-1", "expected"},
                            {"0-8", "more than 8"}, {"1 ", "expected"}};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        ck_assert_msg(backend_parse_devices(bad[i][0], d, 8, &e) == -1, "%s", bad[i][0]);
        ck_assert_msg(strstr(e.msg, bad[i][1]), "%s: %s", bad[i][0], e.msg);
    }
}
END_TEST

int main(void)
{
    Suite *s = suite_create("backend");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 60);
    const TTest *tests[] = {pool_sizing, bad_batches, copy_blocks_forks, same_as_forward, prefiltered_rows,
                            n_logits, select_without_gpu, device_lists};
    for (size_t i = 0; i < sizeof tests / sizeof tests[0]; i++) tcase_add_test(tc, tests[i]);
    suite_add_tcase(s, tc);
    return check_run(s, 1);
}
