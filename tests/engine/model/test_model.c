/* Tests of engine/model and engine/config: complete checkpoints load; each way a checkpoint can
 * be wrong gives one message naming the file and the tensor or key. */
#include <check.h>
#include <string.h>

#include "engine/model/model.h"
#include "tests/engine/tiny_model.h"
#include "tests/check_run.h"

static char *dir;
static struct ck_list l;

static void setup(void)
{
    dir = ck_tmpdir();
}

static void teardown(void)
{
    ck_free(&l);
    ck_rmdir(dir);
}

static void expect_load_fail(const char *frag1, const char *frag2)
{
    struct err e = {0};
    struct model *m = model_load(dir, &e);
    ck_assert_msg(m == NULL, "loaded a broken checkpoint");
    ck_assert_msg(strstr(e.msg, frag1), "'%s' not in: %s", frag1, e.msg);
    if (frag2) ck_assert_msg(strstr(e.msg, frag2), "'%s' not in: %s", frag2, e.msg);
}

static struct model *load_ok(void)
{
    struct err e = {0};
    struct model *m = model_load(dir, &e);
    ck_assert_msg(m != NULL, "%s", e.msg);
    return m;
}

START_TEST(loads_bf16)
{
    struct tiny_opts o = {.q_lora = 1};
    tiny_model_write(dir, &o, 1);
    struct model *m = load_ok();
    ck_assert_int_eq(m->cfg.arch, ARCH_DEEPSEEK_V3);
    ck_assert_int_eq(m->cfg.n_layers, TINY_LAYERS);
    ck_assert_int_eq(m->layers[0].is_moe, 0);
    ck_assert_int_eq(m->layers[1].is_moe, 1);
    ck_assert_int_eq(m->layers[1].exp_down[TINY_E - 1].rows, TINY_D);
    ck_assert_int_eq(m->layers[1].router_bias.dtype, DT_F32);
    ck_assert(m->cfg.rope_yarn);
    ck_assert_int_eq(m->cfg.rope_orig_max_pos, 64);
    model_destroy(m);
}
END_TEST

START_TEST(loads_fp8_with_mtp)
{
    struct tiny_opts o = {.q_lora = 1, .fp8 = 1, .mtp = 1};
    tiny_model_write(dir, &o, 2);
    struct model *m = load_ok();
    ck_assert_int_eq(m->layers[0].q_b.dtype, DT_F8E4M3);
    ck_assert_ptr_nonnull(m->layers[0].q_b.scale);
    ck_assert_int_eq(m->layers[0].q_b.block_rows, 128);
    ck_assert_int_eq(m->cfg.n_nextn_layers, 1);
    model_destroy(m);
}
END_TEST

START_TEST(loads_without_q_lora)
{
    struct tiny_opts o = {0};
    tiny_model_write(dir, &o, 3);
    struct model *m = load_ok();
    ck_assert_int_eq(m->cfg.q_lora_rank, 0);
    ck_assert_int_eq(m->layers[1].q.rows, TINY_H * (TINY_DN + TINY_DR));
    model_destroy(m);
}
END_TEST

/* Writes the tiny model after letting `edit` change the tensor list. */
static void write_edited(const struct tiny_opts *o, void (*edit)(struct ck_list *))
{
    tiny_tensors(&l, o, 7);
    edit(&l);
    tiny_config(dir, o, "");
    ck_file(dir, "model.safetensors", &l);
}

static void drop_expert(struct ck_list *x)
{
    ck_drop(x, "model.layers.1.mlp.experts.5.up_proj.weight");
}

START_TEST(missing_tensor)
{
    struct tiny_opts o = {.q_lora = 1};
    write_edited(&o, drop_expert);
    expect_load_fail("\"model.layers.1.mlp.experts.5.up_proj.weight\"", "missing");
}
END_TEST

static void add_extra(struct ck_list *x)
{
    uint64_t seed = 1;
    ck_add(x, DT_BF16, 0, 4, 1, 0, &seed, "model.layers.0.self_attn.rotary_emb.inv_freq");
}

START_TEST(extra_tensor)
{
    struct tiny_opts o = {.q_lora = 1};
    write_edited(&o, add_extra);
    expect_load_fail("unexpected tensor \"model.layers.0.self_attn.rotary_emb.inv_freq\"",
                     "model.safetensors");
}
END_TEST

static void add_layer_past_mtp(struct ck_list *x)
{
    uint64_t seed = 1;
    ck_add(x, DT_BF16, 0, 4, 1, 0, &seed, "model.layers.2.enorm.weight");
}

/* Without num_nextn_predict_layers, a layer after the last is not MTP but an extra tensor. */
START_TEST(extra_layer_without_mtp)
{
    struct tiny_opts o = {.q_lora = 1};
    write_edited(&o, add_layer_past_mtp);
    expect_load_fail("unexpected tensor \"model.layers.2.enorm.weight\"", NULL);
}
END_TEST

static void reshape_kv_b(struct ck_list *x)
{
    for (int i = 0; i < x->n; i++)
        if (strcmp(x->t[i].name, "model.layers.0.self_attn.kv_b_proj.weight") == 0) {
            int64_t r = x->t[i].shape[0];
            x->t[i].shape[0] = x->t[i].shape[1];
            x->t[i].shape[1] = r;
        }
}

START_TEST(wrong_shape)
{
    struct tiny_opts o = {.q_lora = 1};
    write_edited(&o, reshape_kv_b);
    expect_load_fail("\"model.layers.0.self_attn.kv_b_proj.weight\": shape [16, 32]",
                     "expected [32, 16]");
}
END_TEST

static void drop_scale(struct ck_list *x)
{
    ck_drop(x, "model.layers.1.self_attn.o_proj.weight_scale_inv");
}

START_TEST(fp8_without_scale)
{
    struct tiny_opts o = {.q_lora = 1, .fp8 = 1};
    write_edited(&o, drop_scale);
    expect_load_fail("\"model.layers.1.self_attn.o_proj.weight\" is FP8",
                     "\"model.layers.1.self_attn.o_proj.weight_scale_inv\" is missing");
}
END_TEST

static void bad_scale_shape(struct ck_list *x)
{
    uint64_t seed = 1;
    ck_drop(x, "model.layers.0.mlp.down_proj.weight_scale_inv");
    ck_add(x, DT_F32, 2, 1, 1, 0, &seed, "model.layers.0.mlp.down_proj.weight_scale_inv");
}

START_TEST(fp8_scale_wrong_shape)
{
    struct tiny_opts o = {.q_lora = 1, .fp8 = 1};
    write_edited(&o, bad_scale_shape);
    expect_load_fail("\"model.layers.0.mlp.down_proj.weight_scale_inv\": shape [2, 1]",
                     "expected [1, 1]");
}
END_TEST

static void fp8_norm(struct ck_list *x)
{
    uint64_t seed = 1;
    ck_drop(x, "model.norm.weight");
    ck_add(x, DT_F8E4M3, 0, TINY_D, 0, 0, &seed, "model.norm.weight");
}

START_TEST(fp8_where_not_allowed)
{
    struct tiny_opts o = {.q_lora = 1};
    write_edited(&o, fp8_norm);
    expect_load_fail("\"model.norm.weight\"", "FP8 is not supported");
}
END_TEST

/* A config.json edit: replaces the first occurrence of `from` with `to`. */
static void expect_config_fail(const char *from, const char *to, const char *frag)
{
    struct tiny_opts o = {.q_lora = 1};
    tiny_model_write(dir, &o, 4);
    char path[4200], buf[8192];
    snprintf(path, sizeof path, "%s/config.json", dir);
    FILE *f = fopen(path, "r");
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = 0;
    char *at = strstr(buf, from), out[8192];
    ck_assert_ptr_nonnull(at);
    snprintf(out, sizeof out, "%.*s%s%s", (int)(at - buf), buf, to, at + strlen(from));
    ck_write(dir, "config.json", out, strlen(out));
    expect_load_fail("config.json", frag);
}

START_TEST(config_errors)
{
    expect_config_fail("\"hidden_size\":48", "\"hidden_size\":-5", "\"hidden_size\" is -5");
    expect_config_fail("\"hidden_size\":48", "\"hidden_size\":1e9", "\"hidden_size\" must be an integer");
    expect_config_fail("\"deepseek_v3\"", "\"mistral\"", "model_type \"mistral\" is not supported");
    expect_config_fail("\"num_hidden_layers\":2,", "", "missing \"num_hidden_layers\"");
    expect_config_fail("\"n_group\":4", "\"n_group\":3", "n_group 3");
    expect_config_fail("\"num_experts_per_tok\":2", "\"num_experts_per_tok\":9", "exceeds n_routed_experts");
    expect_config_fail("\"silu\"", "\"gelu\"", "hidden_act \"gelu\"");
    expect_config_fail("\"type\":\"yarn\"", "\"type\":\"dynamic\"", "\"dynamic\" is not supported");
    expect_config_fail("\"factor\":8", "\"factor\":\"big\"", "\"factor\" must be a number");
    expect_config_fail("\"qk_rope_head_dim\":4", "\"qk_rope_head_dim\":5", "must be even");
    expect_config_fail("\"vocab_size\":64", "\"vocab_size\":64,\"vocab_size\":65", "duplicate");
    expect_config_fail("{", "[", "");
    expect_config_fail("\"rms_norm_eps\":1e-6", "\"rms_norm_eps\":-1", "\"rms_norm_eps\" is -1");
    expect_config_fail("\"eos_token_id\":1", "\"eos_token_id\":99", "outside the vocabulary");
}
END_TEST

struct seen {
    int n_calls, n_binding, monotonic;
    struct load_status first, last;
};

static void record(void *arg, const struct load_status *st)
{
    struct seen *s = arg;
    if (s->n_calls++ == 0) s->first = *st;
    else if (st->n_tensors < s->last.n_tensors || st->n_bytes < s->last.n_bytes) s->monotonic = 0;
    s->n_binding += strcmp(st->stage, "binding") == 0;
    s->last = *st;
}

/* Progress: "mapping" with the totals, one "binding" per layer, then "done". */
START_TEST(progress_reports)
{
    struct tiny_opts o = {.q_lora = 1, .fp8 = 1, .mtp = 1};
    tiny_model_write(dir, &o, 2);
    struct seen s = {.monotonic = 1};
    struct load_progress p = {.fn = record, .arg = &s};
    struct err e = {0};
    struct model *m = model_load_progress(dir, &p, &e);
    ck_assert_msg(m != NULL, "%s", e.msg);
    ck_assert_str_eq(s.first.stage, "mapping");
    ck_assert_int_eq(s.first.n_tensors, 0);
    ck_assert_int_eq(s.first.n_tensors_total, m->st.n_tensors);
    ck_assert_uint_eq(s.first.n_bytes_total, m->st.n_bytes);
    ck_assert_int_eq(s.n_binding, m->cfg.n_layers);
    ck_assert_str_eq(s.last.stage, "done");
    ck_assert(s.monotonic);
    int used = 0;
    for (int i = 0; i < m->st.n_tensors; i++) used += m->st.tensors[i].used;
    ck_assert_int_eq(s.last.n_tensors, used); /* MTP tensors are counted in the total only */
    ck_assert_int_lt(s.last.n_tensors, s.last.n_tensors_total);
    ck_assert_uint_le(s.last.n_bytes, s.last.n_bytes_total);
    model_destroy(m);
}
END_TEST

START_TEST(config_missing)
{
    expect_load_fail("config.json", "No such file");
}
END_TEST

int main(void)
{
    Suite *s = suite_create("model");
    TCase *tc = tcase_create("core");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 60);
    const TTest *tests[] = {loads_bf16, loads_fp8_with_mtp, loads_without_q_lora, missing_tensor,
                            extra_tensor, extra_layer_without_mtp, wrong_shape, fp8_without_scale,
                            fp8_scale_wrong_shape, fp8_where_not_allowed, config_errors,
                            config_missing, progress_reports};
    for (size_t i = 0; i < sizeof tests / sizeof tests[0]; i++) tcase_add_test(tc, tests[i]);
    suite_add_tcase(s, tc);
    return check_run(s, 1);
}
