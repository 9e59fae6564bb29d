/* Tests of the grammar core (build, compile, classes, match, mask) through the small sources
 * (regular expressions, choices): documents accepted and refused, and every mask along random
 * walks equal to the brute-force answer of trying each token of the fixture vocabulary. */
#include "tests/check_run.h"
#include "tests/engine/grammar/grammar_test.h"

static struct tok *tok;
static struct gv *voc;
static int32_t eos;

static void setup(void)
{
    tok = gt_tok();
    voc = gv_create(tok, 4100); /* wider than the tokenizer: padding ids must stay masked */
    eos = tok_eos_id(tok);
}

static void teardown(void)
{
    gv_destroy(voc);
    tok_destroy(tok);
}

static struct gram *regex(const char *re)
{
    struct err e = {0};
    struct gram *g = gram_from_regex(re, strlen(re), NULL, &e);
    ck_assert_msg(g != NULL, "%s: %s", re, e.msg);
    return g;
}

START_TEST(vocab_trie)
{
    ck_assert_int_gt(voc->n_nodes, 3000);
    int32_t seen = 0;
    for (int32_t i = 1; i < voc->n_nodes; i++) {
        ck_assert_int_gt(voc->end[i], i);
        seen += voc->tok_first[i + 1] - voc->tok_first[i];
    }
    ck_assert_int_eq(seen, voc->n_toks);
    ck_assert_int_eq(voc->special[eos], 1);
}
END_TEST

START_TEST(regex_documents)
{
    struct gram *g = regex("[0-9]{1,3}(\\.[0-9]+)?");
    ck_assert(gt_matches(g, "1"));
    ck_assert(gt_matches(g, "123.45"));
    ck_assert(!gt_matches(g, "1234"));
    ck_assert(!gt_matches(g, "1."));
    ck_assert(!gt_matches(g, ""));
    ck_assert_int_eq(gram_max_bytes(g), -1);
    gram_unref(g);
    g = regex("(ab|a)(c|bcd)");
    ck_assert(gt_matches(g, "abc"));
    ck_assert(gt_matches(g, "abcd"));
    ck_assert(!gt_matches(g, "ab"));
    ck_assert_int_eq(gram_max_bytes(g), 5);
    gram_unref(g);
    g = regex("caf\u00e9|\\u00e9t\\x65|[^a-z]");
    ck_assert(gt_matches(g, "caf\u00e9"));
    ck_assert(gt_matches(g, "\u00e9te"));
    ck_assert(gt_matches(g, "\u4e2d"));
    ck_assert(!gt_matches(g, "q"));
    gram_unref(g);
}
END_TEST

START_TEST(regex_refusals)
{
    static const char *bad[] = {"(?=a)b", "(a)\\1", "a\\bb", "\\p{L}", "a++",  "(a", "a)",
                                "[a",     "x{3,2}", "a**",   "a^b",    "(^a)", "\\", "[z-a]"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        struct err e = {0};
        struct gram *g = gram_from_regex(bad[i], strlen(bad[i]), NULL, &e);
        ck_assert_msg(g == NULL, "%s compiled", bad[i]);
        ck_assert_msg(strncmp(e.msg, "regex: ", 7) == 0, "%s: %s", bad[i], e.msg);
    }
}
END_TEST

START_TEST(regex_blowups_are_bounded)
{
    struct gram_limits lim = gram_limits_default();
    static const char *bad[] = {"(a{1000}){1000}", "(a|b)*a(a|b){30}", "x{99999}"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        struct err e = {0};
        struct gram *g = gram_from_regex(bad[i], strlen(bad[i]), &lim, &e);
        ck_assert_msg(g == NULL, "%s compiled", bad[i]);
        ck_assert_msg(e.msg[0], "no message for %s", bad[i]);
    }
    struct gram *g = regex("(a+)+$|(a|aa)*b|(.*a){8}"); /* backtracking killers are just automata */
    ck_assert(gt_matches(g, "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"));
    ck_assert(gt_matches(g, "aaaaaaaaaaaaaaaaaaab"));
    gram_unref(g);
}
END_TEST

START_TEST(choices)
{
    const char *c[] = {"yes", "no", "not sure", ""};
    size_t n[] = {3, 2, 8, 0};
    struct err e = {0};
    struct gram *g = gram_from_choices(c, n, 4, NULL, &e);
    ck_assert_msg(g != NULL, "%s", e.msg);
    ck_assert(gt_matches(g, "no"));
    ck_assert(gt_matches(g, "not sure"));
    ck_assert(gt_matches(g, ""));
    ck_assert(!gt_matches(g, "not"));
    ck_assert_int_eq(gram_max_bytes(g), 8);
    for (unsigned s = 0; s < 8; s++) ck_assert(gt_random_walk(g, voc, eos, 20, s));
    gram_unref(g);
}
END_TEST

START_TEST(masks_equal_brute_force)
{
    static const char *res[] = {"[a-z ]{0,40}\\.", "(0|[1-9][0-9]*)(\\.[0-9]{1,4})?",
                                "\"([^\"\\\\]|\\\\.)*\"", "(foo|bar|foobar)+ ?baz",
                                "[\u00e0-\u00ff\u4e00-\u4e2f]{2,6}"};
    for (size_t i = 0; i < sizeof res / sizeof res[0]; i++) {
        struct gram *g = regex(res[i]);
        for (unsigned s = 0; s < 3; s++) gt_random_walk(g, voc, eos, 30, 100 * (unsigned)i + s);
        gram_unref(g);
    }
}
END_TEST

/* Classes trusted only 2 bytes deep: most tokens are then checked against the real stack, the
 * path a 128k vocabulary takes for its long tokens. Masks must not change. */
START_TEST(shallow_classes_equal_brute_force)
{
    struct gram_limits lim = gram_limits_default();
    lim.class_depth = 2;
    static const char *res[] = {"[a-z ]{0,40}\\.", "(foo|bar|foobar){1,6} ?baz", "\"[^\"]{3,30}\""};
    for (size_t i = 0; i < sizeof res / sizeof res[0]; i++) {
        struct err e = {0};
        struct gram *g = gram_from_regex(res[i], strlen(res[i]), &lim, &e);
        ck_assert_msg(g != NULL, "%s", e.msg);
        for (unsigned s = 0; s < 3; s++) gt_random_walk(g, voc, eos, 30, 7 * (unsigned)i + s);
        gram_unref(g);
    }
}
END_TEST

START_TEST(matcher_refuses_and_keeps_state)
{
    struct gram *g = regex("ab(c|d)");
    struct err e = {0};
    struct gm *m = gm_create(g, &e);
    ck_assert_int_eq(gm_accept_bytes(m, (const uint8_t *)"ab", 2, &e), 0);
    ck_assert_int_eq(gm_accept_bytes(m, (const uint8_t *)"x", 1, &e), -1);
    ck_assert(e.msg[0]);
    ck_assert(!gm_can_end(m));
    ck_assert_int_eq(gm_accept_bytes(m, (const uint8_t *)"d", 1, &e), 0);
    ck_assert(gm_finished(m));
    ck_assert_int_eq(gm_accept_bytes(m, (const uint8_t *)"d", 1, &e), -1);
    gm_destroy(m);
    gram_unref(g);
}
END_TEST

static Suite *suite(void)
{
    Suite *s = suite_create("grammar_match");
    TCase *c = tcase_create("core");
    tcase_add_checked_fixture(c, setup, teardown);
    tcase_set_timeout(c, 120);
    tcase_add_test(c, vocab_trie);
    tcase_add_test(c, regex_documents);
    tcase_add_test(c, regex_refusals);
    tcase_add_test(c, regex_blowups_are_bounded);
    tcase_add_test(c, choices);
    tcase_add_test(c, masks_equal_brute_force);
    tcase_add_test(c, shallow_classes_equal_brute_force);
    tcase_add_test(c, matcher_refuses_and_keeps_state);
    suite_add_tcase(s, c);
    return s;
}

int main(void)
{
    return check_run(suite(), 0);
}
