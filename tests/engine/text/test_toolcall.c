/* Tests of engine/text/toolcall: calls in both formats found whatever the token boundaries are
 * (every split of the text is tried), names first and arguments in order, text that is not a
 * call kept as content, and random bytes never breaking the parser. */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "engine/text/toolcall.h"
#include "tests/check_run.h"

enum { M0 = 9000 }; /* fake marker ids: M0 + TC_* */
static const int32_t MARKERS[TC_N_MARKERS] = {M0, M0 + 1, M0 + 2, M0 + 3, M0 + 4};

/* Everything a run produced, accumulated. */
struct run {
    char content[4096];
    char name[4][64];
    char args[4][1024];
    int n_calls;
};

static void collect(struct run *r, struct tc_out *o)
{
    strncat(r->content, o->content.s ? o->content.s : "",
            sizeof r->content - strlen(r->content) - 1);
    for (int i = 0; i < o->n_d; i++) {
        struct tc_delta *d = &o->d[i];
        ck_assert_int_lt(d->index, 4);
        if (d->name) {
            ck_assert_int_eq(d->index, r->n_calls);
            strcpy(r->name[r->n_calls++], d->name);
        }
        ck_assert_msg(d->index < r->n_calls, "arguments before the call started");
        if (d->args) strncat(r->args[d->index], d->args, d->n_args);
    }
    tc_out_clear(o);
}

/* A token stream: text pieces, or marker ids (text NULL). */
struct piece {
    int32_t id;
    const char *text;
};

static void run_pieces(enum tc_format fmt, const struct piece *p, int n, struct run *r)
{
    struct tc_parser tp;
    struct tc_out o = {0};
    memset(r, 0, sizeof *r);
    tc_init(&tp, fmt, MARKERS);
    for (int i = 0; i < n; i++) {
        const char *t = p[i].text ? p[i].text : "<marker text>";
        tc_push(&tp, p[i].id, t, strlen(t), &o);
        collect(r, &o);
    }
    tc_finish(&tp, &o);
    collect(r, &o);
    tc_free(&tp);
}

/* Text fed in two tokens split at `at`. */
static void run_split(enum tc_format fmt, const char *text, size_t at, struct run *r)
{
    char a[2048], b[2048];
    memcpy(a, text, at), a[at] = 0;
    strcpy(b, text + at);
    struct piece p[] = {{1, a}, {2, b}};
    run_pieces(fmt, p, 2, r);
}

START_TEST(deepseek_calls)
{
    struct piece p[] = {{1, "Let me check."},
                        {M0 + TC_CALLS_BEGIN, NULL},
                        {M0 + TC_CALL_BEGIN, NULL},
                        {5, "function"},
                        {M0 + TC_SEP, NULL},
                        {6, "get_wea"},
                        {7, "ther\n``"},
                        {8, "`json\n{\"ci"},
                        {9, "ty\": \"Paris\"}\n`"},
                        {10, "``"},
                        {M0 + TC_CALL_END, NULL},
                        {11, "\n"},
                        {M0 + TC_CALL_BEGIN, NULL},
                        {5, "function"},
                        {M0 + TC_SEP, NULL},
                        {6, "now\n```json\n{}\n```"},
                        {M0 + TC_CALL_END, NULL},
                        {M0 + TC_CALLS_END, NULL}};
    struct run r;
    run_pieces(TC_DEEPSEEK, p, sizeof p / sizeof p[0], &r);
    ck_assert_str_eq(r.content, "Let me check.");
    ck_assert_int_eq(r.n_calls, 2);
    ck_assert_str_eq(r.name[0], "get_weather");
    ck_assert_str_eq(r.args[0], "{\"city\": \"Paris\"}");
    ck_assert_str_eq(r.name[1], "now");
    ck_assert_str_eq(r.args[1], "{}");
}
END_TEST

START_TEST(deepseek_every_split)
{
    const char *body = "lookup\n```json\n{\"q\": \"a`b\\n``\", \"n\": [1, 2]}\n```";
    for (size_t at = 0; at <= strlen(body); at++) {
        char a[256], b[256];
        memcpy(a, body, at), a[at] = 0;
        strcpy(b, body + at);
        struct piece p[] = {{M0 + TC_CALLS_BEGIN, NULL},
                            {M0 + TC_CALL_BEGIN, NULL},
                            {5, "function"},
                            {M0 + TC_SEP, NULL},
                            {6, a},
                            {7, b},
                            {M0 + TC_CALL_END, NULL},
                            {M0 + TC_CALLS_END, NULL}};
        struct run r;
        run_pieces(TC_DEEPSEEK, p, 8, &r);
        ck_assert_int_eq(r.n_calls, 1);
        ck_assert_str_eq(r.name[0], "lookup");
        ck_assert_msg(!strcmp(r.args[0], "{\"q\": \"a`b\\n``\", \"n\": [1, 2]}"), "split %zu: %s",
                      at, r.args[0]);
        ck_assert_str_eq(r.content, "");
    }
}
END_TEST

START_TEST(deepseek_plain_text_stays_content)
{
    struct piece p[] = {{1, "no tools here, just ```json\n{}\n``` text"}, {2, " and <tool_call>"}};
    struct run r;
    run_pieces(TC_DEEPSEEK, p, 2, &r);
    ck_assert_str_eq(r.content, "no tools here, just ```json\n{}\n``` text and <tool_call>");
    ck_assert_int_eq(r.n_calls, 0);
}
END_TEST

START_TEST(hermes_every_split)
{
    const char *text = "Sure.<tool_call>\n{\"name\": \"get_weather\", \"arguments\": {\"city\": "
                       "\"Par\\\"is\", \"days\": [1, {\"x\": \"}\"}]}}\n</tool_call>\n<tool_call>\n"
                       "{\"name\": \"now\", \"arguments\": {}}\n</tool_call>";
    for (size_t at = 0; at <= strlen(text); at++) {
        struct run r;
        run_split(TC_HERMES, text, at, &r);
        ck_assert_msg(!strcmp(r.content, "Sure."), "split %zu: content '%s'", at, r.content);
        ck_assert_int_eq(r.n_calls, 2);
        ck_assert_str_eq(r.name[0], "get_weather");
        ck_assert_msg(
            !strcmp(r.args[0], "{\"city\": \"Par\\\"is\", \"days\": [1, {\"x\": \"}\"}]}"),
            "split %zu: %s", at, r.args[0]);
        ck_assert_str_eq(r.name[1], "now");
        ck_assert_str_eq(r.args[1], "{}");
    }
}
END_TEST

START_TEST(hermes_arguments_first_and_scalars)
{
    struct run r;
    run_split(TC_HERMES,
              "<tool_call>{\"arguments\": {\"a\": 1}, \"name\": \"f\", \"id\": 7}</tool_call>", 20,
              &r);
    ck_assert_int_eq(r.n_calls, 1);
    ck_assert_str_eq(r.name[0], "f");
    ck_assert_str_eq(r.args[0], "{\"a\": 1}");
    run_split(TC_HERMES,
              "<tool_call>{\"name\": \"g\", \"arguments\": \"raw\"}</tool_call> then text", 5, &r);
    ck_assert_str_eq(r.args[0], "\"raw\"");
    ck_assert_str_eq(r.content, " then text");
    run_split(TC_HERMES, "a < b and <tool_ca", 3, &r);
    ck_assert_str_eq(r.content, "a < b and <tool_ca");
    ck_assert_int_eq(r.n_calls, 0);
}
END_TEST

START_TEST(random_bytes_are_harmless)
{
    unsigned seed = 5;
    static const char alphabet[] = "<tool_call>{}\"\\:, \n`json[]ab";
    for (int round = 0; round < 2000; round++) {
        char text[200];
        int n = (int)(rand_r(&seed) % 199);
        for (int i = 0; i < n; i++) text[i] = alphabet[rand_r(&seed) % (sizeof alphabet - 1)];
        text[n] = 0;
        for (int fmt = TC_DEEPSEEK; fmt <= TC_HERMES; fmt++) {
            struct tc_parser tp;
            struct tc_out o = {0};
            tc_init(&tp, (enum tc_format)fmt, MARKERS);
            for (int i = 0; i < n; i += 7) {
                int32_t id =
                    rand_r(&seed) % 4 == 0 ? M0 + (int32_t)(rand_r(&seed) % TC_N_MARKERS) : 1;
                tc_push(&tp, id, text + i, (size_t)(n - i < 7 ? n - i : 7), &o);
            }
            tc_finish(&tp, &o);
            ck_assert_int_le(o.content.n, (size_t)n);
            tc_out_clear(&o);
            tc_free(&tp);
        }
    }
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("toolcall");
    TCase *c = tcase_create("core");
    tcase_add_test(c, deepseek_calls);
    tcase_add_test(c, deepseek_every_split);
    tcase_add_test(c, deepseek_plain_text_stays_content);
    tcase_add_test(c, hermes_every_split);
    tcase_add_test(c, hermes_arguments_first_and_scalars);
    tcase_add_test(c, random_bytes_are_harmless);
    suite_add_tcase(s, c);
    return s;
}

int main(void)
{
    return check_run(suite(), 0);
}
