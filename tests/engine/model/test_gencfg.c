/* Tests of gencfg: the sampling defaults of a checkpoint directory (generation_config.json) and of
 * a GGUF file (general.sampling keys, else llama.cpp's defaults), and the errors that name the
 * file and key of a bad value. */
#include <check.h>
#include <string.h>

#include "engine/model/gencfg.h"
#include "tests/check_run.h"
#include "tests/engine/ckpt_writer.h"
#include "tests/engine/gguf_writer.h"

static char *dir;

static void setup(void)
{
    dir = ck_tmpdir();
}

static void teardown(void)
{
    ck_rmdir(dir);
}

static void write_json(const char *text)
{
    ck_write(dir, "generation_config.json", text, strlen(text));
}

START_TEST(directory)
{
    struct gen_defaults d;
    struct err e = {0};
    ck_assert_int_eq(gencfg_load(&d, NULL, dir, &e), 0); /* no file: nothing said */
    ck_assert(!d.has_temperature && !d.has_top_p && !d.has_top_k && !d.source[0]);
    write_json("{\"do_sample\": true, \"temperature\": 0.3, \"top_p\": 0.9, \"top_k\": 0,"
               " \"bos_token_id\": 0}");
    ck_assert_msg(gencfg_load(&d, NULL, dir, &e) == 0, "%s", e.msg);
    ck_assert(d.has_temperature && d.has_top_p && d.has_top_k && !d.has_min_p);
    ck_assert_float_eq(d.temperature, 0.3f);
    ck_assert_float_eq(d.top_p, 0.9f);
    ck_assert_int_eq(d.top_k, -1); /* transformers' 0: off */
    ck_assert_str_eq(d.source, "generation_config.json");
    char what[160];
    gencfg_describe(&d, what, sizeof what);
    ck_assert_str_eq(what, "temperature 0.3, top_k -1, top_p 0.9");
}
END_TEST

static void expect_error(const char *json, const char *frag)
{
    struct gen_defaults d;
    struct err e = {0};
    write_json(json);
    ck_assert_int_eq(gencfg_load(&d, NULL, dir, &e), -1);
    ck_assert_msg(strstr(e.msg, "generation_config.json") && strstr(e.msg, frag), "%s", e.msg);
}

START_TEST(directory_errors)
{
    expect_error("{\"temperature\": \"hot\"}", "'temperature' must be a number");
    expect_error("{\"top_p\": 1.5}", "'top_p' is 1.5, outside");
    expect_error("{\"temperature\": 0.2, \"temperature\": 0.4}", "duplicate");
    expect_error("[1, 2]", "not a JSON object");
}
END_TEST

/* A GGUF file of metadata only: the given general.sampling keys. */
static int open_gguf(struct gguf_set *g, float temp, int top_k, struct err *e)
{
    char path[4200];
    struct gw b = {0};
    snprintf(path, sizeof path, "%s/m.gguf", dir);
    gw_header(&b, 3, 0, 1 + (temp >= 0) + (top_k >= 0));
    gw_kv_str(&b, "general.architecture", "llama");
    if (temp >= 0) gw_kv_f32(&b, "general.sampling.temp", temp);
    if (top_k >= 0) gw_kv_u32(&b, "general.sampling.top_k", (uint32_t)top_k);
    gw_pad(&b, 32); /* where the (empty) tensor data begins */
    gw_save(&b, path);
    gw_free(&b);
    return gguf_open(g, path, e);
}

START_TEST(gguf_keys)
{
    struct gguf_set g;
    struct gen_defaults d;
    struct err e = {0};
    ck_assert_msg(open_gguf(&g, 0.6f, 20, &e) == 0, "%s", e.msg);
    ck_assert_msg(gencfg_load(&d, &g, NULL, &e) == 0, "%s", e.msg);
    ck_assert(d.has_temperature && d.has_top_k && !d.has_top_p && !d.has_min_p);
    ck_assert_float_eq_tol(d.temperature, 0.6f, 1e-6f);
    ck_assert_int_eq(d.top_k, 20);
    ck_assert_str_eq(d.source, "the GGUF's general.sampling keys");
    gguf_close(&g);
    ck_assert_msg(open_gguf(&g, -1, -1, &e) == 0, "%s", e.msg); /* none: llama.cpp's */
    ck_assert_msg(gencfg_load(&d, &g, NULL, &e) == 0, "%s", e.msg);
    ck_assert(d.has_temperature && d.has_top_k && d.has_top_p && d.has_min_p);
    ck_assert_float_eq(d.temperature, 0.8f);
    ck_assert_int_eq(d.top_k, 40);
    ck_assert_float_eq(d.top_p, 0.95f);
    ck_assert_float_eq(d.min_p, 0.05f);
    ck_assert_str_eq(d.source, "llama.cpp's defaults for GGUF files");
    gguf_close(&g);
    ck_assert_msg(open_gguf(&g, 5.0f, -1, &e) == 0, "%s", e.msg);
    ck_assert_int_eq(gencfg_load(&d, &g, NULL, &e), -1);
    ck_assert_msg(strstr(e.msg, "general.sampling.temp"), "%s", e.msg);
    gguf_close(&g);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("gencfg");
    TCase *tc = tcase_create("core");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_add_test(tc, directory);
    tcase_add_test(tc, directory_errors);
    tcase_add_test(tc, gguf_keys);
    suite_add_tcase(s, tc);
    return check_run(s, 1);
}
