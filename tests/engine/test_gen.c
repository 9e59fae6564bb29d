/* Tests of engine/gen: the text a request emits — stop strings matched across token boundaries
 * and never emitted, text held back only while it could still begin a stop string, R1's
 * reasoning split at </think>, the final flush, and the usage of the DONE event; relays of
 * requests that run on another rank. */
#include <check.h>
#include <string.h>

#include "engine/gen.h"
#include "engine/grammar/schema.h"
#include "engine/grammar/vocab.h"
#include "tests/check_run.h"

#define FIX "tests/fixtures/tokenizer/"

static struct tok *tok;

static void setup(void)
{
    struct err e = {0};
    tok = tok_load(FIX "r1/tokenizer.json", FIX "r1/tokenizer_config.json", &e);
    ck_assert_msg(tok != NULL, "%s", e.msg);
}

static void teardown(void)
{
    tok_destroy(tok);
}

/* A request over prompt ids with the given stop strings; reasoning as asked. */
static struct gen *make(const char *const *stop, int n_stop, int reasoning, const int32_t *prompt,
                        int n_prompt)
{
    struct err e = {0};
    struct gen_params p = {.prompt = prompt, .n_prompt = n_prompt, .n = 1, .max_tokens = 64,
                           .sampling = smp_params_default(), .stop = stop, .n_stop = n_stop,
                           .skip_special_tokens = 1, .reasoning = reasoning};
    struct gen *g = gen_create(&p, tok, NULL, tok_n_vocab(tok), tok_eos_id(tok), &e);
    ck_assert_msg(g != NULL, "%s", e.msg);
    return g;
}

/* Feeds the ids of text, one token at a time; returns how many were taken before a stop. */
static int feed_text(struct gen *g, const char *text)
{
    struct tok_ids ids = {0};
    ck_assert_int_eq(tok_encode(tok, text, strlen(text), 0, &ids, NULL), 0);
    int n = 0;
    for (size_t i = 0; i < ids.n; i++) {
        struct smp_result r = {.token = ids.v[i]};
        n++;
        if (gen_take_token(g, 0, &r)) break;
    }
    tok_ids_free(&ids);
    return n;
}

static void feed_id(struct gen *g, int32_t id)
{
    struct smp_result r = {.token = id};
    gen_take_token(g, 0, &r);
}

/* Collects all events: content and reasoning text, the finish reason, DONE's usage. */
struct seen {
    char content[4096], reasoning[4096];
    enum gen_finish finish;
    int done, completion_tokens, n_text_events_before_finish;
};

static void drain(struct gen *g, struct seen *s)
{
    struct gen_event ev;
    while (gen_poll(g, &ev)) {
        if (ev.content) strncat(s->content, ev.content, sizeof s->content - strlen(s->content) - 1);
        if (ev.reasoning) strncat(s->reasoning, ev.reasoning, sizeof s->reasoning - strlen(s->reasoning) - 1);
        if (ev.kind == GEN_EV_FINISH) s->finish = ev.finish;
        if (ev.kind == GEN_EV_DONE) s->done = 1, s->completion_tokens = ev.completion_tokens;
        gen_event_clear(&ev);
    }
}

static void finish(struct gen *g, enum gen_finish why, struct seen *s)
{
    gen_end_choice(g, 0, why, NULL);
    drain(g, s);
    gen_unref(g); /* the engine's reference */
    gen_release(g); /* the server's */
}

static const int32_t prompt[] = {1, 2, 3};

START_TEST(stop_string_across_tokens_not_emitted)
{
    const char *stop[] = {"lazy dog"};
    struct gen *g = make(stop, 1, 0, prompt, 3);
    const char *text = "The quick brown fox jumps over the lazy dog and runs away";
    struct tok_ids all = {0};
    tok_encode(tok, text, strlen(text), 0, &all, NULL);
    int n = feed_text(g, text);
    struct seen s = {0};
    drain(g, &s);
    ck_assert_str_eq(s.content, "The quick brown fox jumps over the ");
    ck_assert_int_lt(n, (int)all.n - 3); /* stopped before "and runs away" */
    tok_ids_free(&all);
    finish(g, GEN_FINISH_STOP, &s);
    ck_assert_str_eq(s.content, "The quick brown fox jumps over the ");
    ck_assert(s.done);
    ck_assert_int_eq(s.completion_tokens, n);
}
END_TEST

/* A tail that may begin a stop string waits; once it cannot, it is released. */
START_TEST(holdback_released_when_no_match)
{
    const char *stop[] = {"STOP!"};
    struct gen *g = make(stop, 1, 0, prompt, 3);
    struct seen s = {0};
    feed_text(g, "go ST");
    drain(g, &s);
    ck_assert_str_eq(s.content, "go ");
    feed_text(g, "ay here");
    drain(g, &s);
    ck_assert_str_eq(s.content, "go STay here");
    finish(g, GEN_FINISH_LENGTH, &s);
    ck_assert_str_eq(s.content, "go STay here");
}
END_TEST

/* Held text is flushed when the choice ends for another reason. */
START_TEST(flush_on_length)
{
    const char *stop[] = {"ABCDEF"};
    struct gen *g = make(stop, 1, 0, prompt, 3);
    struct seen s = {0};
    feed_text(g, "xyz ABC");
    finish(g, GEN_FINISH_LENGTH, &s);
    ck_assert_str_eq(s.content, "xyz ABC");
    ck_assert_int_eq(s.finish, GEN_FINISH_LENGTH);
}
END_TEST

/* The earliest of several stop strings wins. */
START_TEST(earliest_stop_wins)
{
    const char *stop[] = {"world", "lo w"};
    struct gen *g = make(stop, 2, 0, prompt, 3);
    struct seen s = {0};
    feed_text(g, "hello world");
    finish(g, GEN_FINISH_STOP, &s);
    ck_assert_str_eq(s.content, "hel");
}
END_TEST

/* R1: the prompt ends inside <think>\n; text up to </think> is reasoning, the rest content. */
START_TEST(reasoning_split)
{
    int32_t think = tok_added_id(tok, "<think>"), end = tok_added_id(tok, "</think>");
    ck_assert_int_ge(think, 0);
    int32_t p[] = {5, 6, think, 201};
    struct gen *g = make(NULL, 0, 1, p, 4);
    struct seen s = {0};
    feed_text(g, "Let me think.");
    feed_id(g, end);
    feed_text(g, "\n\nThe answer is 4.");
    finish(g, GEN_FINISH_STOP, &s);
    ck_assert_str_eq(s.reasoning, "Let me think.");
    ck_assert_str_eq(s.content, "\n\nThe answer is 4.");
}
END_TEST

/* Without an opened <think>, everything is content (and </think> is plain text then). */
START_TEST(no_reasoning_without_think)
{
    struct gen *g = make(NULL, 0, 1, prompt, 3);
    struct seen s = {0};
    feed_text(g, "plain answer");
    finish(g, GEN_FINISH_STOP, &s);
    ck_assert_str_eq(s.reasoning, "");
    ck_assert_str_eq(s.content, "plain answer");
}
END_TEST

/* The eos token ends the text without adding any. */
START_TEST(eos_adds_no_text)
{
    struct gen *g = make(NULL, 0, 0, prompt, 3);
    struct seen s = {0};
    feed_text(g, "ok");
    feed_id(g, tok_eos_id(tok));
    finish(g, GEN_FINISH_STOP, &s);
    ck_assert_str_eq(s.content, "ok");
}
END_TEST

/* ---- grammars and tool calls ---- */

/* A lazy Hermes tool grammar: free text until "<tool_call>", then one call to f({}). */
static struct gen *make_tools(struct gv **v)
{
    static struct jss params;
    params = jss_default("params");
    params.types = JSS_OBJECT;
    static struct jss_doc doc = {.root = &params};
    static const struct gram_tool fn = {"f", &doc};
    struct gram_tools t = {.format = GRAM_TOOLS_HERMES, .tools = &fn, .n_tools = 1, .lazy = true};
    struct err e = {0};
    *v = gv_create(tok, tok_n_vocab(tok));
    struct gram *gr = gram_tools(&t, tok_n_vocab(tok), NULL, &e);
    ck_assert_msg(gr != NULL, "%s", e.msg);
    struct gen_params p = {.prompt = prompt, .n_prompt = 3, .n = 1, .max_tokens = 64,
                           .sampling = smp_params_default(), .skip_special_tokens = 1,
                           .grammar = gr, .grammar_trigger = -1,
                           .grammar_trigger_text = "<tool_call>", .tool_format = TC_HERMES};
    struct gen *g = gen_create(&p, tok, *v, tok_n_vocab(tok), tok_eos_id(tok), &e);
    gram_unref(gr); /* the request holds its own reference */
    ck_assert_msg(g != NULL, "%s", e.msg);
    return g;
}

/* The trigger text starts the grammar (mid-token is fine); the call is parsed into tool deltas;
 * the complete document stops the choice; text before the call stays content. */
START_TEST(lazy_tool_grammar_and_parser)
{
    struct gv *v;
    struct gen *g = make_tools(&v);
    struct tok_ids ids = {0};
    const char *text = "Sure.<tool_call>\n{\"name\": \"f\", \"arguments\": {}}\n</tool_call>";
    tok_encode(tok, text, strlen(text), 0, &ids, NULL);
    enum gen_take last = GEN_GO_ON;
    int constrained = 0;
    for (size_t i = 0; i < ids.n && last == GEN_GO_ON; i++) {
        struct smp_result r = {.token = ids.v[i]};
        constrained += gen_matcher(g, 0) != NULL;
        last = gen_take_token(g, 0, &r);
    }
    ck_assert_int_eq(last, GEN_STOPPED); /* the grammar is complete */
    ck_assert_int_gt(constrained, 3);
    char name[64] = "", args[256] = "", content[256] = "";
    int calls = 0;
    gen_end_choice(g, 0, GEN_FINISH_STOP, NULL);
    struct gen_event ev;
    while (gen_poll(g, &ev)) {
        if (ev.content) strncat(content, ev.content, sizeof content - strlen(content) - 1);
        for (int k = 0; k < ev.n_tools; k++) {
            if (ev.tools[k].name) strcpy(name, ev.tools[k].name), calls++;
            if (ev.tools[k].args) strncat(args, ev.tools[k].args, ev.tools[k].n_args);
        }
        if (ev.kind == GEN_EV_FINISH) ck_assert_int_eq(ev.n_tool_calls, 1);
        gen_event_clear(&ev);
    }
    ck_assert_str_eq(content, "Sure.");
    ck_assert_int_eq(calls, 1);
    ck_assert_str_eq(name, "f");
    ck_assert_str_eq(args, "{}");
    tok_ids_free(&ids);
    gen_unref(g);
    gen_release(g);
    gv_destroy(v);
}
END_TEST

/* A token the active grammar refuses fails the choice with the matcher's message. */
START_TEST(grammar_refusal_fails_the_choice)
{
    struct gv *v;
    struct gen *g = make_tools(&v);
    struct tok_ids ids = {0};
    const char *text = "<tool_call>\n[";
    tok_encode(tok, text, strlen(text), 0, &ids, NULL);
    enum gen_take last = GEN_GO_ON;
    for (size_t i = 0; i < ids.n && last == GEN_GO_ON; i++) {
        struct smp_result r = {.token = ids.v[i]};
        last = gen_take_token(g, 0, &r);
    }
    ck_assert_int_eq(last, GEN_FAILED);
    ck_assert_ptr_nonnull(g->ch[0].error);
    tok_ids_free(&ids);
    struct seen s = {0};
    finish(g, GEN_FINISH_ERROR, &s);
    gv_destroy(v);
}
END_TEST

/* ---- relays (data parallelism: the choices run on another rank) ---------------------------- */

static struct gen *make_relay(int n)
{
    struct gen_params p = {.prompt = prompt, .n_prompt = 3, .n = n, .max_tokens = 64,
                           .sampling = smp_params_default()};
    return gen_create_relay(&p, tok, tok_eos_id(tok));
}

static void relay(struct gen *g, enum gen_event_kind kind, int choice, const char *text)
{
    struct gen_event ev = {.kind = kind, .choice = choice, .finish = GEN_FINISH_STOP,
                           .completion_tokens = 7};
    if (text) ev.content = strdup(text), ev.content_len = strlen(text);
    gen_relay(g, &ev);
}

/* Events from the other rank come out unchanged and in order; after DONE nothing more does. */
START_TEST(relay_passes_events_through)
{
    struct gen *g = make_relay(1);
    struct gen_event ev;
    relay(g, GEN_EV_TOKEN, 0, "Hi");
    relay(g, GEN_EV_FINISH, 0, NULL);
    relay(g, GEN_EV_DONE, 0, NULL);
    relay(g, GEN_EV_TOKEN, 0, "late"); /* dropped */
    ck_assert(gen_poll(g, &ev) && ev.kind == GEN_EV_TOKEN && strcmp(ev.content, "Hi") == 0);
    gen_event_clear(&ev);
    ck_assert(gen_poll(g, &ev) && ev.kind == GEN_EV_FINISH && ev.finish == GEN_FINISH_STOP);
    gen_event_clear(&ev);
    ck_assert(gen_poll(g, &ev) && ev.kind == GEN_EV_DONE && ev.completion_tokens == 7);
    gen_event_clear(&ev);
    ck_assert(!gen_poll(g, &ev));
    gen_abort_relay(g); /* after DONE: adds nothing */
    ck_assert(!gen_poll(g, &ev));
    gen_unref(g);
    gen_release(g);
}
END_TEST

/* A relay ended here (the rank went away): only the open choices end, then one DONE counting the
 * tokens that did arrive. */
START_TEST(relay_abort_ends_open_choices)
{
    struct gen *g = make_relay(2);
    struct gen_event ev;
    relay(g, GEN_EV_TOKEN, 0, "a");
    relay(g, GEN_EV_TOKEN, 1, "b");
    relay(g, GEN_EV_FINISH, 1, NULL);
    gen_abort_relay(g);
    int finishes = 0, dones = 0, aborted0 = 0, completion = -1;
    while (gen_poll(g, &ev)) {
        if (ev.kind == GEN_EV_FINISH) finishes++;
        if (ev.kind == GEN_EV_FINISH && ev.choice == 0) aborted0 = ev.finish == GEN_FINISH_ABORT;
        if (ev.kind == GEN_EV_DONE) dones++, completion = ev.completion_tokens;
        gen_event_clear(&ev);
    }
    ck_assert_int_eq(finishes, 2);
    ck_assert(aborted0);
    ck_assert_int_eq(dones, 1);
    ck_assert_int_eq(completion, 2);
    gen_unref(g);
    gen_release(g);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("gen");
    TCase *tc = tcase_create("core");
    tcase_add_checked_fixture(tc, setup, teardown);
    const TTest *tests[] = {stop_string_across_tokens_not_emitted, holdback_released_when_no_match,
                            flush_on_length, earliest_stop_wins, reasoning_split,
                            no_reasoning_without_think, eos_adds_no_text,
                            lazy_tool_grammar_and_parser, grammar_refusal_fails_the_choice,
                            relay_passes_events_through, relay_abort_ends_open_choices};
    for (size_t i = 0; i < sizeof tests / sizeof tests[0]; i++) tcase_add_test(tc, tests[i]);
    suite_add_tcase(s, tc);
    return check_run(s, 1);
}
