/* Tests of server/log: text and JSON lines (levels, escaping, one line each), access lines,
 * level filtering, and reopen after the file was moved away (logrotate).
 * Compiles the module in, as test_options does (test programs link only the engine library). */
#include <check.h>
#include <jansson.h>
#include <stdio.h>
#include <sys/stat.h>

#include "server/log.c"
#include "tests/check_run.h"

static const double T = 1767323045.6785; /* 2026-01-02T03:04:05.678Z (ms are truncated) */

static char *read_all(const char *path)
{
    FILE *f = fopen(path, "r");
    if (!f) return strdup("");
    static char buf[8192];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    buf[n] = 0;
    fclose(f);
    return strdup(buf);
}

START_TEST(text_line)
{
    char buf[256];
    size_t n = log_format_msg(LOG_TEXT, LOGL_WARN, T, "disk \"full\"", buf, sizeof buf);
    ck_assert_str_eq(buf, "2026-01-02T03:04:05.678Z warn  disk \"full\"\n");
    ck_assert_uint_eq(n, strlen(buf));
}
END_TEST

START_TEST(json_line_escapes)
{
    char buf[256];
    size_t n = log_format_msg(LOG_JSON, LOGL_ERROR, T, "a \"q\"\nnext", buf, sizeof buf);
    ck_assert_int_eq(buf[n - 1], '\n');
    ck_assert_ptr_null(memchr(buf, '\n', n - 1)); /* one line, the newline escaped */
    json_t *o = json_loadb(buf, n, 0, NULL);
    ck_assert_ptr_nonnull(o);
    ck_assert_str_eq(json_string_value(json_object_get(o, "level")), "error");
    ck_assert_str_eq(json_string_value(json_object_get(o, "msg")), "a \"q\"\nnext");
    ck_assert_str_eq(json_string_value(json_object_get(o, "ts")), "2026-01-02T03:04:05.678Z");
    json_decref(o);
}
END_TEST

START_TEST(access_lines)
{
    struct log_access a = {.id = "chatcmpl-1",
                           .path = "/v1/chat/completions",
                           .status = 200,
                           .prompt_tokens = 7,
                           .completion_tokens = 3,
                           .ttft_s = 0.0125,
                           .duration_s = 0.5,
                           .finish = "length"};
    char buf[512];
    log_format_access(LOG_TEXT, T, &a, buf, sizeof buf);
    ck_assert_ptr_nonnull(strstr(buf, "access id=chatcmpl-1 path=/v1/chat/completions status=200 "
                                      "prompt_tokens=7 completion_tokens=3 ttft_ms=12.5 "
                                      "duration_ms=500.0 finish_reason=length\n"));
    size_t n = log_format_access(LOG_JSON, T, &a, buf, sizeof buf);
    json_t *o = json_loadb(buf, n, 0, NULL);
    ck_assert_ptr_nonnull(o);
    ck_assert_int_eq(json_integer_value(json_object_get(o, "completion_tokens")), 3);
    ck_assert_double_eq_tol(json_real_value(json_object_get(o, "ttft_ms")), 12.5, 1e-9);
    json_decref(o);
    a.ttft_s = -1; /* no token ever came */
    n = log_format_access(LOG_JSON, T, &a, buf, sizeof buf);
    o = json_loadb(buf, n, 0, NULL);
    ck_assert(json_is_null(json_object_get(o, "ttft_ms")));
    json_decref(o);
}
END_TEST

START_TEST(levels_and_reopen)
{
    char dir[] = "/tmp/seekd-log-XXXXXX", path[256], moved[256];
    ck_assert_ptr_nonnull(mkdtemp(dir));
    snprintf(path, sizeof path, "%s/seekd.log", dir);
    snprintf(moved, sizeof moved, "%s/seekd.log.1", dir);
    struct err e = {0};
    struct log *l = log_create(path, LOG_TEXT, LOGL_INFO, &e);
    ck_assert_ptr_nonnull(l);
    log_msg(l, LOGL_DEBUG, "hidden");
    log_msg(l, LOGL_INFO, "first");
    ck_assert_int_eq(rename(path, moved), 0);
    log_msg(l, LOGL_INFO, "second"); /* still the old file until reopened */
    ck_assert_int_eq(log_reopen(l, &e), 0);
    log_msg(l, LOGL_ERROR, "third");
    log_destroy(l);
    char *old = read_all(moved), *now = read_all(path);
    ck_assert_ptr_null(strstr(old, "hidden"));
    ck_assert_ptr_nonnull(strstr(old, "first"));
    ck_assert_ptr_nonnull(strstr(old, "second"));
    ck_assert_ptr_null(strstr(now, "second"));
    ck_assert_ptr_nonnull(strstr(now, "error third"));
    free(old), free(now);
    unlink(path), unlink(moved), rmdir(dir);
}
END_TEST

START_TEST(unwritable_file)
{
    struct err e = {0};
    ck_assert_ptr_null(log_create("/nonexistent-dir/seekd.log", LOG_TEXT, LOGL_INFO, &e));
    ck_assert_ptr_nonnull(strstr(e.msg, "/nonexistent-dir/seekd.log"));
}
END_TEST

int main(void)
{
    Suite *s = suite_create("log");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, text_line);
    tcase_add_test(tc, json_line_escapes);
    tcase_add_test(tc, access_lines);
    tcase_add_test(tc, levels_and_reopen);
    tcase_add_test(tc, unwritable_file);
    suite_add_tcase(s, tc);
    return check_run(s, 1);
}
