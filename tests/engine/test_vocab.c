/* Tests of engine/vocab with engine/text: the tokenizer rebuilt from a GGUF vocabulary gives
 * llama.cpp's token ids under every pre-tokenizer name seekd maps, and the chat templates render
 * the ids llama.cpp gives the jinja2-rendered official templates (tests/fixtures/gguf/tokens.json,
 * made by tests/golden/make_gguf.py with llama-cpp-python 0.3.36). Texts spelling a
 * user-defined token (DeepSeek's <｜User｜>, ...) are compared only with control tokens
 * parsed: llama.cpp also splits those out of plain text, seekd by design never does. */
#include <check.h>
#include <jansson.h>
#include <string.h>

#include "engine/text/chat.h"
#include "engine/vocab.h"
#include "tests/check_run.h"

#define FIX "tests/fixtures/gguf/"

static json_t *golden;
static struct gguf_set g;

static void setup(void)
{
    json_error_t je;
    struct err e = {0};
    golden = json_load_file(FIX "tokens.json", 0, &je);
    ck_assert_msg(golden, "%s", je.text);
    ck_assert_msg(gguf_open(&g, FIX "llama-legacy.gguf", &e) == 0, "%s", e.msg);
}

static void teardown(void)
{
    json_decref(golden);
    gguf_close(&g);
}

/* ids equal the JSON array want; reports the text on a mismatch. */
static void expect_ids(const struct tok_ids *ids, json_t *want, const char *what, const char *text)
{
    size_t n = json_array_size(want), k = 0;
    while (k < n && k < ids->n && ids->v[k] == json_integer_value(json_array_get(want, k))) k++;
    ck_assert_msg(k == n && k == ids->n, "%s: \"%.80s\": differs at token %zu (%zu vs %zu tokens)", what,
                  text, k, ids->n, n);
}

START_TEST(pre_tokenizers_match_llama_cpp)
{
    const char *pre;
    json_t *cases;
    int n_pre = 0;
    json_object_foreach(json_object_get(golden, "pre"), pre, cases)
    {
        struct err e = {0};
        struct tok *t = vocab_from_gguf(&g, pre, &e);
        ck_assert_msg(t, "%s: %s", pre, e.msg);
        size_t i;
        json_t *c;
        json_array_foreach(cases, i, c)
        {
            const char *text = json_string_value(json_object_get(c, "text"));
            struct tok_ids ids = {0};
            ck_assert_int_eq(tok_encode(t, text, strlen(text), TOK_PARSE_SPECIAL, &ids, &e), 0);
            expect_ids(&ids, json_object_get(c, "special"), pre, text);
            json_t *plain = json_object_get(c, "plain");
            if (!plain) plain = json_object_get(c, "special");
            if (!strstr(text, "<｜")) {
                ids.n = 0;
                ck_assert_int_eq(tok_encode(t, text, strlen(text), 0, &ids, &e), 0);
                expect_ids(&ids, plain, pre, text);
            }
            tok_ids_free(&ids);
        }
        tok_destroy(t);
        n_pre++;
    }
    ck_assert_int_ge(n_pre, 7);
}
END_TEST

static enum chat_role role_of(const char *s)
{
    return !strcmp(s, "system") ? CHAT_SYSTEM : !strcmp(s, "user") ? CHAT_USER
           : !strcmp(s, "assistant") ? CHAT_ASSISTANT : CHAT_TOOL;
}

START_TEST(chat_templates_match)
{
    struct err e = {0};
    struct tok *t = vocab_from_gguf(&g, NULL, &e);
    ck_assert_msg(t, "%s", e.msg);
    struct chat *chatml = chat_create(t, NULL, &e); /* recognised from the file's template */
    ck_assert_msg(chatml, "%s", e.msg);
    ck_assert_int_eq(chat_kind(chatml), CHAT_CHATML);
    struct chat *llama3 = chat_create(t, "llama3", &e);
    ck_assert_ptr_nonnull(llama3);
    ck_assert_int_eq(chat_end_of_turn(chatml), 3401);
    ck_assert_int_eq(chat_end_of_turn(llama3), 3405);
    size_t i;
    json_t *c;
    json_array_foreach(json_object_get(golden, "chat"), i, c)
    {
        json_t *msgs = json_object_get(c, "messages");
        struct chat_msg m[8];
        size_t n = json_array_size(msgs);
        for (size_t k = 0; k < n; k++) {
            json_t *j = json_array_get(msgs, k);
            const char *content = json_string_value(json_object_get(j, "content"));
            m[k] = (struct chat_msg){role_of(json_string_value(json_object_get(j, "role"))), content,
                                     strlen(content), NULL, 0};
        }
        const char *name = json_string_value(json_object_get(c, "template"));
        struct tok_ids ids = {0};
        ck_assert_int_eq(chat_render(!strcmp(name, "chatml") ? chatml : llama3, m, (int)n, NULL, 0,
                                     json_is_true(json_object_get(c, "generation")), &ids, &e), 0);
        expect_ids(&ids, json_object_get(c, "ids"), name, json_string_value(json_object_get(c, "text")));
        tok_ids_free(&ids);
    }
    /* Tools and calls in the Hermes form, which the tool-call parser reads back. */
    struct chat_msg call[2] = {{CHAT_USER, "hi", 2, NULL, 0},
                               {CHAT_ASSISTANT, NULL, 0, &(struct chat_tool_call){"function", "f", "{\"a\": 1}"}, 1}};
    struct chat_tool tool = {"f", "says \"hi\"\n", "{\"type\": \"object\"}"};
    for (int k = 0; k < 2; k++) {
        struct chat *ch = k ? llama3 : chatml;
        struct tok_ids ids = {0};
        struct tok_text txt = {0};
        ck_assert_int_eq(chat_tool_format(ch, NULL), TC_HERMES);
        ck_assert_msg(!chat_render(ch, call, 2, &tool, 1, false, &ids, &e), "%s", e.msg);
        ck_assert_int_eq(tok_decode(t, ids.v, ids.n, false, &txt, &e), 0);
        ck_assert_ptr_nonnull(strstr(txt.s, "\"function\": {\"name\": \"f\", \"description\": \"says \\\"hi\\\"\\n\", "
                                            "\"parameters\": {\"type\": \"object\"}}}\n</tools>"));
        ck_assert_ptr_nonnull(strstr(txt.s, "<tool_call>\n{\"name\": \"f\", \"arguments\": {\"a\": 1}}\n</tool_call>"));
        tok_ids_free(&ids);
        tok_text_free(&txt);
    }
    chat_destroy(chatml);
    chat_destroy(llama3);
    tok_destroy(t);
}
END_TEST

/* What a GGUF's tokenizer keys say: ids, flags, end of turn, refusals naming the key. */
START_TEST(vocabulary_keys)
{
    struct err e = {0};
    struct tok *t = vocab_from_gguf(&g, NULL, &e);
    ck_assert_int_eq(tok_n_vocab(t), 4096);
    ck_assert_int_eq(tok_bos_id(t), 3400);
    ck_assert_int_eq(tok_eos_id(t), 3401);
    ck_assert_int_eq(tok_eot_id(t), 3401);
    ck_assert(tok_is_special(t, 3400));
    ck_assert(!tok_is_special(t, 4084)); /* <｜User｜> is user-defined */
    ck_assert_ptr_nonnull(strstr(tok_chat_template(t), "<|im_start|>"));
    tok_destroy(t);
    ck_assert_ptr_null(vocab_from_gguf(&g, "no-such-pre", &e));
    ck_assert_msg(strstr(e.msg, "tokenizer.ggml.pre \"no-such-pre\" is not supported") && strstr(e.msg, "llama-legacy.gguf"),
                  "%s", e.msg);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("vocab");
    TCase *tc = tcase_create("core");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, pre_tokenizers_match_llama_cpp);
    tcase_add_test(tc, chat_templates_match);
    tcase_add_test(tc, vocabulary_keys);
    suite_add_tcase(s, tc);
    return check_run(s, 1);
}
