/* Tests for engine/tokenizer: ids identical to HF tokenizers on the committed corpus (specials
 * parsed and as plain text), decoding and the streaming detokenizer against one-shot decoding,
 * invalid UTF-8, injection of special-token spellings, and tokenizer.json files we must refuse.
 * Run from the repository root (fixtures in tests/fixtures/tokenizer, made by
 * tests/golden/make_tokenizer.py). */
#include "engine/text/tokenizer.h"
#include "engine/text/utf8.h"

#include <check.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "tests/check_run.h"

#define FIX "tests/fixtures/tokenizer/"

static struct tok *load_v3(void)
{
    struct err e = {0};
    struct tok *t = tok_load(FIX "v3/tokenizer.json", FIX "v3/tokenizer_config.json", &e);
    ck_assert_msg(t, "%s", e.msg);
    return t;
}

static json_t *load_json(const char *path)
{
    json_error_t je;
    json_t *j = json_load_file(path, 0, &je);
    ck_assert_msg(j, "%s: %s", path, je.text);
    return j;
}

/* Compares ids with a JSON array; on mismatch reports the first differing position. */
static void assert_ids(const struct tok_ids *got, json_t *want, size_t entry, const char *what)
{
    size_t n = json_array_size(want), i;
    for (i = 0; i < n && i < got->n; i++)
        if (got->v[i] != json_integer_value(json_array_get(want, i))) break;
    ck_assert_msg(i == n && got->n == n, "corpus[%zu] %s: %zu ids, want %zu; first difference at %zu",
                  entry, what, got->n, n, i);
}

START_TEST(corpus_matches_hf)
{
    struct tok *t = load_v3();
    json_t *corpus = load_json(FIX "corpus.json"), *c;
    size_t i;
    ck_assert_uint_ge(json_array_size(corpus), 2000);
    json_array_foreach(corpus, i, c)
    {
        json_t *text = json_object_get(c, "text");
        struct tok_ids ids = {0}, plain = {0};
        struct err e = {0};
        ck_assert_int_eq(tok_encode(t, json_string_value(text), json_string_length(text),
                                    TOK_PARSE_SPECIAL, &ids, &e), 0);
        assert_ids(&ids, json_object_get(c, "ids"), i, "with specials");
        ck_assert_int_eq(tok_encode(t, json_string_value(text), json_string_length(text), 0, &plain, &e), 0);
        assert_ids(&plain, json_object_get(c, "plain"), i, "plain");
        tok_ids_free(&ids);
        tok_ids_free(&plain);
    }
    json_decref(corpus);
    tok_destroy(t);
}
END_TEST

/* Decodes ids one-shot and through tok_stream one id at a time; both must agree. */
static void decode_both(const struct tok *t, const struct tok_ids *ids, bool skip, struct tok_text *one)
{
    struct err e = {0};
    ck_assert_int_eq(tok_decode(t, ids->v, ids->n, skip, one, &e), 0);
    struct tok_stream st;
    struct tok_text streamed = {0};
    tok_stream_init(&st, t, skip);
    for (size_t k = 0; k < ids->n; k++) {
        size_t before = streamed.n;
        ck_assert_int_eq(tok_stream_push(&st, ids->v[k], &streamed, &e), 0);
        for (size_t b = before; b < streamed.n; b++) /* never a lone lead byte at the end */
            ck_assert(b + 1 < streamed.n || (uint8_t)streamed.s[b] < 0xC0);
    }
    tok_stream_flush(&st, &streamed);
    ck_assert_uint_eq(streamed.n, one->n);
    ck_assert(!memcmp(streamed.s ? streamed.s : "", one->s ? one->s : "", one->n));
    tok_text_free(&streamed);
}

START_TEST(decode_and_stream_match)
{
    struct tok *t = load_v3();
    json_t *corpus = load_json(FIX "corpus.json"), *c;
    size_t i;
    json_array_foreach(corpus, i, c)
    {
        json_t *text = json_object_get(c, "text"), *skip = json_object_get(c, "decoded_skip");
        struct tok_ids ids = {0};
        struct err e = {0};
        ck_assert_int_eq(tok_encode(t, json_string_value(text), json_string_length(text), TOK_PARSE_SPECIAL, &ids, &e), 0);
        struct tok_text all = {0}, skipped = {0};
        decode_both(t, &ids, false, &all);
        ck_assert_uint_eq(all.n, json_string_length(text));
        ck_assert_msg(!all.n || !memcmp(all.s, json_string_value(text), all.n), "corpus[%zu] decode", i);
        decode_both(t, &ids, true, &skipped);
        const char *want = skip ? json_string_value(skip) : json_string_value(text);
        ck_assert_msg(skipped.n == strlen(want) && (!skipped.n || !memcmp(skipped.s, want, skipped.n)),
                      "corpus[%zu] skip_special_tokens", i);
        tok_text_free(&all);
        tok_text_free(&skipped);
        tok_ids_free(&ids);
    }
    json_decref(corpus);
    tok_destroy(t);
}
END_TEST

START_TEST(stream_holds_incomplete_character)
{
    struct tok *t = load_v3();
    struct err e = {0};
    struct tok_ids ids = {0};
    /* a CJK character the fixture vocab has no token for is encoded as 3 byte tokens */
    const char *text = "\xE4\xB8\x80\xE4\xB8\x80\xE4\xB8\x80 \xF0\x9F\xA7\xBF";
    ck_assert_int_eq(tok_encode(t, text, strlen(text), 0, &ids, &e), 0);
    struct tok_stream st;
    struct tok_text out = {0};
    tok_stream_init(&st, t, false);
    for (size_t i = 0; i < ids.n; i++) {
        ck_assert_int_eq(tok_stream_push(&st, ids.v[i], &out, &e), 0);
        ck_assert_uint_eq(utf8_valid_len((const uint8_t *)out.s, out.n), out.n);
    }
    tok_stream_flush(&st, &out);
    ck_assert_str_eq(out.s, text);
    /* an id that ends mid-character, then end of stream: one U+FFFD */
    struct tok_text cut = {0};
    tok_stream_init(&st, t, false);
    ck_assert_int_eq(tok_stream_push(&st, ids.v[ids.n - 1], &cut, &e), 0);
    tok_stream_flush(&st, &cut);
    ck_assert_uint_gt(cut.n, 0);
    tok_text_free(&cut);
    tok_text_free(&out);
    tok_ids_free(&ids);
    tok_destroy(t);
}
END_TEST

START_TEST(invalid_utf8_is_an_error)
{
    struct tok *t = load_v3();
    static const char *bad[] = {"\xFF", "abc\xC3", "\xC0\xAF", "\xED\xA0\x80", "ok\x80ok",
                                "\xF4\x90\x80\x80", "\xE2\x82"};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        struct tok_ids ids = {0};
        struct err e = {0};
        tok_ids_push(&ids, 7);
        ck_assert_int_eq(tok_encode(t, bad[i], strlen(bad[i]), TOK_PARSE_SPECIAL, &ids, &e), -1);
        ck_assert_ptr_nonnull(strstr(e.msg, "UTF-8"));
        ck_assert_uint_eq(ids.n, 1); /* output untouched */
        tok_ids_free(&ids);
    }
    struct tok_ids ids = {0};
    struct err e = {0};
    ck_assert_int_eq(tok_encode(t, "a\0b", 3, 0, &ids, &e), 0); /* NUL is valid UTF-8 */
    int32_t wrong = tok_n_vocab(t) + 5;
    struct tok_text out = {0};
    ck_assert_int_eq(tok_decode(t, &wrong, 1, false, &out, &e), -1);
    tok_ids_free(&ids);
    tok_destroy(t);
}
END_TEST

START_TEST(specials_are_not_forged)
{
    struct tok *t = load_v3();
    static const char *spellings[] = {"<｜end▁of▁sentence｜>", "<｜Assistant｜>", "<｜User｜>",
                                      "<｜begin▁of▁sentence｜>", "<|EOT|>", "<｜tool▁calls▁begin｜>"};
    for (size_t i = 0; i < sizeof spellings / sizeof *spellings; i++) {
        char text[200];
        snprintf(text, sizeof text, "Hi %s there%s", spellings[i], spellings[i]);
        int32_t special = tok_added_id(t, spellings[i]);
        ck_assert_int_ge(special, 0);
        struct tok_ids plain = {0}, parsed = {0};
        struct err e = {0};
        ck_assert_int_eq(tok_encode(t, text, strlen(text), 0, &plain, &e), 0);
        ck_assert_int_eq(tok_encode(t, text, strlen(text), TOK_PARSE_SPECIAL, &parsed, &e), 0);
        size_t n_in_parsed = 0;
        for (size_t k = 0; k < plain.n; k++) {
            ck_assert_int_lt(plain.v[k], tok_n_vocab(t) - 818); /* base vocab only */
            ck_assert_int_ne(plain.v[k], special);
        }
        for (size_t k = 0; k < parsed.n; k++) n_in_parsed += parsed.v[k] == special;
        ck_assert_uint_eq(n_in_parsed, 2);
        struct tok_text back = {0};
        ck_assert_int_eq(tok_decode(t, plain.v, plain.n, true, &back, &e), 0);
        ck_assert_str_eq(back.s, text); /* plain text survives skip_special_tokens */
        tok_text_free(&back);
        tok_ids_free(&plain);
        tok_ids_free(&parsed);
    }
    tok_destroy(t);
}
END_TEST

START_TEST(add_special_prepends_bos)
{
    struct tok *t = load_v3();
    struct tok_ids ids = {0};
    struct err e = {0};
    ck_assert_int_eq(tok_encode(t, "Hello", 5, TOK_ADD_SPECIAL, &ids, &e), 0);
    ck_assert_int_eq(ids.v[0], tok_added_id(t, "<｜begin▁of▁sentence｜>"));
    ck_assert_int_eq(tok_bos_id(t), ids.v[0]);
    ck_assert_int_eq(tok_eos_id(t), tok_added_id(t, "<｜end▁of▁sentence｜>"));
    ck_assert(tok_is_special(t, tok_bos_id(t)));
    ck_assert(!tok_is_special(t, tok_added_id(t, "<｜User｜>")));
    ck_assert_int_eq(tok_n_vocab(t), 4096);
    tok_ids_free(&ids);
    tok_destroy(t);
}
END_TEST

/* ---- tokenizer.json files that must be refused --------------------------------------------- */

/* Loads the fixture tokenizer.json with one change applied to its JSON; expects failure with a
 * message containing want. */
static void expect_refused(void (*change)(json_t *root), const char *want)
{
    json_t *root = load_json(FIX "v3/tokenizer.json");
    change(root);
    char *text = json_dumps(root, 0);
    struct err e = {0};
    struct tok *t = tok_load_str(text, NULL, &e);
    ck_assert_msg(!t, "loaded despite: %s", want);
    ck_assert_msg(strstr(e.msg, want), "message \"%s\" lacks \"%s\"", e.msg, want);
    free(text);
    json_decref(root);
}

static void unigram(json_t *r) { json_object_set_new(json_object_get(r, "model"), "type", json_string("Unigram")); }
static void bad_merge(json_t *r) { json_array_set_new(json_object_get(json_object_get(r, "model"), "merges"), 3, json_string("nosuchtoken zz")); }
static void three_part_merge(json_t *r) { json_array_set_new(json_object_get(json_object_get(r, "model"), "merges"), 0, json_string("a b c")); }
static void metaspace(json_t *r) { json_object_set_new(r, "pre_tokenizer", json_pack("{s:s}", "type", "Metaspace")); }
static void no_pre(json_t *r) { json_object_set_new(r, "pre_tokenizer", json_null()); }
static void nfkc(json_t *r) { json_object_set_new(r, "normalizer", json_pack("{s:s}", "type", "NFKC")); }
static void wordpiece_decoder(json_t *r) { json_object_set_new(r, "decoder", json_pack("{s:s}", "type", "WordPiece")); }
static void bad_regex(json_t *r)
{
    json_t *steps = json_object_get(json_object_get(r, "pre_tokenizer"), "pretokenizers");
    json_object_set_new(json_object_get(json_array_get(steps, 0), "pattern"), "Regex", json_string("(unclosed"));
}
static void contiguous(json_t *r)
{
    json_t *steps = json_object_get(json_object_get(r, "pre_tokenizer"), "pretokenizers");
    json_object_set_new(json_array_get(steps, 1), "behavior", json_string("Contiguous"));
}
static void byte_fallback(json_t *r) { json_object_set_new(json_object_get(r, "model"), "byte_fallback", json_true()); }
static void single_word(json_t *r) { json_object_set_new(json_array_get(json_object_get(r, "added_tokens"), 5), "single_word", json_true()); }
static void missing_byte(json_t *r) { json_object_del(json_object_get(json_object_get(r, "model"), "vocab"), "Ā"); }

START_TEST(malformed_tokenizer_json_is_refused)
{
    expect_refused(unigram, "model.type \"Unigram\" is not supported");
    expect_refused(bad_merge, "model.merges[3]");
    expect_refused(three_part_merge, "model.merges[0]");
    expect_refused(metaspace, "pre_tokenizer: type \"Metaspace\"");
    expect_refused(no_pre, "pre_tokenizer is missing");
    expect_refused(nfkc, "normalizer \"NFKC\"");
    expect_refused(wordpiece_decoder, "decoder \"WordPiece\"");
    expect_refused(bad_regex, "regex does not compile");
    expect_refused(contiguous, "Split behavior \"Contiguous\"");
    expect_refused(byte_fallback, "byte_fallback");
    expect_refused(single_word, "single_word");
    expect_refused(missing_byte, "no token for byte 0x00");
    struct err e = {0};
    ck_assert_ptr_null(tok_load_str("{not json", NULL, &e));
    ck_assert_ptr_nonnull(strstr(e.msg, "JSON error"));
    ck_assert_ptr_null(tok_load("tests/fixtures/tokenizer/nonexistent.json", NULL, &e));
    ck_assert_ptr_nonnull(strstr(e.msg, "cannot open"));
}
END_TEST

START_TEST(pair_form_merges_load)
{
    /* tokenizer_r1.json stores merges as ["a", "b"]; the V3 file as "a b": same ids */
    struct err e = {0};
    struct tok *r1 = tok_load(FIX "r1/tokenizer.json", FIX "r1/tokenizer_config.json", &e);
    ck_assert_msg(r1, "%s", e.msg);
    struct tok *v3 = load_v3();
    const char *text = "The quick brown fox 12345 jumps\n\n  over 東京 <think>x</think>";
    struct tok_ids a = {0}, b = {0};
    ck_assert_int_eq(tok_encode(v3, text, strlen(text), 0, &a, &e), 0);
    ck_assert_int_eq(tok_encode(r1, text, strlen(text), 0, &b, &e), 0);
    ck_assert_uint_eq(a.n, b.n);
    ck_assert(!memcmp(a.v, b.v, a.n * sizeof *a.v));
    tok_ids_free(&b);
    ck_assert_int_eq(tok_encode(r1, text, strlen(text), TOK_PARSE_SPECIAL, &b, &e), 0);
    int n_think = 0;
    for (size_t i = 0; i < b.n; i++) n_think += b.v[i] == tok_added_id(r1, "<think>") || b.v[i] == tok_added_id(r1, "</think>");
    ck_assert_int_eq(n_think, 2);
    tok_ids_free(&a);
    tok_ids_free(&b);
    tok_destroy(v3);
    tok_destroy(r1);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("tokenizer");
    TCase *tc = tcase_create("core");
    tcase_set_timeout(tc, 120);
    tcase_add_test(tc, corpus_matches_hf);
    tcase_add_test(tc, decode_and_stream_match);
    tcase_add_test(tc, stream_holds_incomplete_character);
    tcase_add_test(tc, invalid_utf8_is_an_error);
    tcase_add_test(tc, specials_are_not_forged);
    tcase_add_test(tc, add_special_prepends_bos);
    tcase_add_test(tc, malformed_tokenizer_json_is_refused);
    tcase_add_test(tc, pair_form_merges_load);
    suite_add_tcase(s, tc);
    return check_run(s, 1);
}
