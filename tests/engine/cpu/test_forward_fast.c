/* Tests of the fast-numerics emulation on tiny random checkpoints (FP8 and BF16, with and
 * without q_lora) and a synthetic model: prefill, chunks and decode give the same bits, as do 1
 * and 3 threads; logits stay near the reference numerics; a stage dump checks clean, a stage
 * changed by one BF16 ulp beyond its tolerance is named first, a missing file is an error; and
 * synthetic weights are the hash's values, the same on every load. */
#include <check.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "engine/backend.h"
#include "engine/cpu/stage_check.h"
#include "engine/model/synth.h"
#include "engine/stage_dump.h"
#include "tests/check_run.h"
#include "tests/engine/tiny_model.h"

enum { BS = 4, N_TOK = 11 };

static const int32_t toks[N_TOK] = {5, 17, 3, 60, 22, 9, 41, 9, 1, 33, 50};

static struct model *load_tiny(char **dir, int fp8, int q_lora)
{
    struct err e = {0};
    *dir = ck_tmpdir();
    tiny_model_write(*dir, &(struct tiny_opts){.q_lora = q_lora, .fp8 = fp8}, 7);
    struct model *m = model_load(*dir, &e);
    ck_assert_msg(m != NULL, "%s", e.msg);
    return m;
}

/* Logits of every position, the tokens fed `chunk` at a time; dump: stage dump dir or NULL. */
static float *run(const struct model *m, enum numerics nm, int chunk, int threads, const char *dump)
{
    struct err e = {0};
    int V = m->cfg.vocab_size;
    struct backend_opts o = {.numerics = nm, .max_tokens = N_TOK, .max_logits = N_TOK,
                             .block_size = BS, .kv_dtype = nm == NUMERICS_FAST ? DT_BF16 : DT_F32,
                             .kv_blocks = 4, .threads = threads, .dump_dir = dump};
    struct backend *b = backend_cpu()->create(m, &o, &e);
    ck_assert_msg(b != NULL, "%s", e.msg);
    float *logits = malloc((size_t)N_TOK * V * sizeof *logits);
    const int32_t table[4] = {2, 0, 3, 1}; /* out of order: logical and physical blocks differ */
    for (int p = 0; p < N_TOK; p += chunk) {
        int n = N_TOK - p < chunk ? N_TOK - p : chunk;
        struct batch_seq s = {0, n, p, table, BATCH_LOGITS_ALL};
        struct batch bt = {n, toks + p, 1, &s};
        ck_assert_msg(backend_cpu()->forward(b, &bt, logits + (size_t)p * V, &e) == 0, "%s", e.msg);
    }
    backend_cpu()->destroy(b);
    return logits;
}

static void modes_agree(int fp8, int q_lora)
{
    char *dir;
    struct model *m = load_tiny(&dir, fp8, q_lora);
    size_t n = (size_t)N_TOK * m->cfg.vocab_size * sizeof(float);
    float *all = run(m, NUMERICS_FAST, N_TOK, 1, NULL), *dec = run(m, NUMERICS_FAST, 1, 3, NULL);
    float *chunks = run(m, NUMERICS_FAST, 4, 2, NULL);
    ck_assert(memcmp(all, dec, n) == 0);
    ck_assert(memcmp(all, chunks, n) == 0);
    free(all), free(dec), free(chunks);
    model_destroy(m);
    ck_rmdir(dir);
}

START_TEST(prefill_chunks_decode_and_threads_agree)
{
    modes_agree(1, 1);
    modes_agree(0, 1);
    modes_agree(1, 0);
}
END_TEST

/* The typical position moves by a few per cent of the largest logit under FP8, much less under
 * BF16 (measured: 8.6e-3 and 4.2e-3); a broken rounding point moves it by O(1). */
static void near_ref(int fp8, double bound)
{
    char *dir;
    struct model *m = load_tiny(&dir, fp8, 1);
    int V = m->cfg.vocab_size;
    float *fast = run(m, NUMERICS_FAST, N_TOK, 2, NULL), *ref = run(m, NUMERICS_REF, N_TOK, 2, NULL);
    double mx = 0, per[N_TOK];
    for (size_t i = 0; i < (size_t)N_TOK * V; i++) mx = fmax(mx, fabs(ref[i]));
    for (int t = 0; t < N_TOK; t++) {
        per[t] = 0;
        for (int v = 0; v < V; v++) per[t] = fmax(per[t], fabs(fast[t * V + v] - ref[t * V + v]) / mx);
    }
    for (int i = 1; i < N_TOK; i++) /* sort for the median */
        for (int j = i; j > 0 && per[j - 1] > per[j]; j--) {
            double tmp = per[j];
            per[j] = per[j - 1], per[j - 1] = tmp;
        }
    fprintf(stderr, "fast vs ref, %s: median per-position error %.3g of max |logit|\n",
            fp8 ? "FP8" : "BF16", per[N_TOK / 2]);
    ck_assert_msg(per[N_TOK / 2] > 0 && per[N_TOK / 2] <= bound, "median %g", per[N_TOK / 2]);
    free(fast), free(ref);
    model_destroy(m);
    ck_rmdir(dir);
}

START_TEST(fast_stays_near_ref)
{
    near_ref(1, 0.1);
    near_ref(0, 0.01);
}
END_TEST

static struct sc_result check_dump(const struct model *m, const char *dump, int expect_rc,
                                   char *msg)
{
    struct err e = {0};
    struct sc_opts o = {.dump_dir = dump, .out = stderr};
    struct sc_result r;
    struct tp *tp = tp_create(2);
    int rc = sc_check(m, tp, &o, &r, &e);
    tp_destroy(tp);
    ck_assert_msg(rc == expect_rc, "sc_check %d: %s", rc, e.msg);
    if (msg) snprintf(msg, 512, "%s", e.msg);
    return r;
}

/* Adds `ulps` BF16 ulps to element i of a uint16 stage file. */
static void nudge(const char *dump, int step, int layer, const char *name, int64_t i, int ulps)
{
    char path[4200];
    struct err e = {0};
    struct sd_array a;
    sd_stage_path(dump, step, layer, name, path, sizeof path);
    ck_assert_msg(sd_load(path, &a, &e) == 0, "%s", e.msg);
    ((uint16_t *)a.data)[i] = (uint16_t)(((uint16_t *)a.data)[i] + ulps);
    struct sd d = {0};
    snprintf(d.path, sizeof d.path, "%s/step%04d", dump, step);
    ck_assert(sd_put(&d, layer, name, a.type, a.data, a.n_dims, a.shape, &e) == 0);
    sd_array_free(&a);
}

START_TEST(stage_dump_checks_clean_and_names_the_first_bad_stage)
{
    char *dir, *dump = ck_tmpdir(), msg[512], path[4200];
    struct model *m = load_tiny(&dir, 1, 1);
    free(run(m, NUMERICS_FAST, 4, 2, dump));
    struct sc_result r = check_dump(m, dump, 0, NULL);
    ck_assert_int_eq(r.n_steps, 3);
    ck_assert_int_eq(r.n_failed, 0);
    ck_assert_int_gt(r.n_stages, 3 * 2 * 30);
    ck_assert_str_eq(r.first, "");
    /* one context value doubled (its exponent + 1): far outside the attention's tolerance */
    nudge(dump, 1, 1, "ctx", 7, 0x80);
    r = check_dump(m, dump, 0, NULL);
    ck_assert_msg(strstr(r.first, "step 1, layer 1, ctx:") == r.first, "%s", r.first);
    sd_stage_path(dump, 2, 0, "qfull", path, sizeof path);
    ck_assert_int_eq(remove(path), 0);
    check_dump(m, dump, -1, msg);
    ck_assert_msg(strstr(msg, "L00.qfull.npy") != NULL, "%s", msg);
    model_destroy(m);
    ck_rmdir(dir), ck_rmdir(dump);
}
END_TEST

START_TEST(synthetic_weights_come_from_the_hash)
{
    struct err e = {0};
    const char *cfg = "tests/fixtures/synthetic/tiny-fp8.json";
    struct model *a = synth_load(cfg, 42, 1, 2, &e), *b = synth_load(cfg, 42, 1, 1, &e);
    struct model *z = synth_load(cfg, 42, 0, 1, &e), *c = synth_load(cfg, 43, 1, 1, &e);
    ck_assert_msg(a && b && z && c, "%s", e.msg);
    uint64_t seed = 0;
    ck_assert(synth_is(a, &seed) && seed == 42);
    ck_assert_int_eq(a->cfg.n_layers, 3);
    const struct weight *w = &a->layers[1].exp_down[3], *n = &a->layers[2].kv_a_norm;
    ck_assert_int_eq(w->dtype, DT_F8E4M3);
    uint64_t key = synth_key(42, w->name);
    for (int64_t i = 0; i < w->rows * w->cols; i += 7)
        ck_assert_uint_eq(((const uint8_t *)w->data)[i], synth_bits(SYNTH_FP8, key, (uint64_t)i, 0));
    char sname[256];
    snprintf(sname, sizeof sname, "%s_scale_inv", w->name);
    float s0;
    memcpy(&s0, w->scale, 4);
    ck_assert_uint_eq(nm_bits(s0), synth_bits(SYNTH_SCALE, synth_key(42, sname), 0, synth_gain(SYNTH_SCALE, w->cols)));
    uint16_t h;
    memcpy(&h, n->data, 2);
    ck_assert_uint_eq(h, synth_bits(SYNTH_NORM, synth_key(42, n->name), 0, 1.0f));
    ck_assert(memcmp(a->st.files[0].map, b->st.files[0].map, a->st.files[0].size) == 0);
    ck_assert(memcmp(a->st.files[0].map, c->st.files[0].map, a->st.files[0].size) != 0);
    for (size_t i = 0; i < z->st.files[0].size; i += 4096) ck_assert(((uint8_t *)z->st.files[0].map)[i] == 0);
    model_destroy(a), model_destroy(b), model_destroy(z), model_destroy(c);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("forward_fast");
    TCase *tc = tcase_create("fast");
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, prefill_chunks_decode_and_threads_agree);
    tcase_add_test(tc, fast_stays_near_ref);
    tcase_add_test(tc, stage_dump_checks_clean_and_names_the_first_bad_stage);
    tcase_add_test(tc, synthetic_weights_come_from_the_hash);
    suite_add_tcase(s, tc);
    return check_run(s, 0);
}
