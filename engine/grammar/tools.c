/* tools: grammars of tool calls in the model's own format, each call's arguments constrained by
 * its function's parameters schema.
 *
 * DeepSeek V3/R1 (markers are special tokens):
 *   <｜tool▁calls▁begin｜> CALL ("\n" CALL)* <｜tool▁calls▁end｜>
 *   CALL = <｜tool▁call▁begin｜> "function" <｜tool▁sep｜> NAME "\n```json\n" ARGS "\n```"
 * <｜tool▁call▁end｜> Hermes / Qwen (markers are text):
 *   "<tool_call>\n" OBJ "\n</tool_call>" ("\n<tool_call>\n" OBJ "\n</tool_call>")*
 *   OBJ  = {"name": "NAME", "arguments": ARGS}
 * With parallel false there is exactly one call. Lazy grammars start right after the opening
 * marker (DeepSeek: the calls-begin token; Hermes: the text "<tool_call>"), which the model chose
 * to write while unconstrained. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/grammar/gram_internal.h"
#include "engine/grammar/schema_build.h"

/* One alternative per function: what follows its name's position up to the end of its args. */
static struct gfrag ds_bodies(struct gb *b, struct jsc *c, const int32_t *args,
                              const struct gram_tools *t)
{
    struct gfrag f = {0};
    for (int i = 0; i < t->n_tools && !b->failed; i++) {
        struct gfrag g = gb_lit(b, t->tools[i].name, strlen(t->tools[i].name));
        g = gb_seq(b, g, gb_lit(b, "\n```json\n", 9));
        g = gb_seq(b, g, gb_ref(b, args[i]));
        g = gb_seq(b, g, gb_lit(b, "\n```", 4));
        f = i ? gb_alt(b, f, g) : g;
    }
    (void)c;
    return f;
}

static struct gfrag ds_call(struct gb *b, struct jsc *c, const int32_t *args,
                            const struct gram_tools *t)
{
    struct gfrag f = gb_token(b, t->marker[GRAM_DS_CALL_BEGIN]);
    f = gb_seq(b, f, gb_lit(b, "function", 8));
    f = gb_seq(b, f, gb_token(b, t->marker[GRAM_DS_SEP]));
    f = gb_seq(b, f, ds_bodies(b, c, args, t));
    return gb_seq(b, f, gb_token(b, t->marker[GRAM_DS_CALL_END]));
}

static struct gfrag hermes_obj(struct gb *b, struct jsc *c, const int32_t *args,
                               const struct gram_tools *t)
{
    struct gfrag f = {0};
    for (int i = 0; i < t->n_tools && !b->failed; i++) {
        struct gfrag g = gb_lit(b, "{\"name\"", 7);
        g = gb_seq(b, g, jsc_sep_key(c));
        g = gb_seq(b, g, gb_json_string_lit(b, t->tools[i].name, strlen(t->tools[i].name)));
        g = gb_seq(b, g, jsc_sep_item(c));
        g = gb_seq(b, g, gb_lit(b, "\"arguments\"", 11));
        g = gb_seq(b, g, jsc_sep_key(c));
        g = gb_seq(b, g, gb_ref(b, args[i]));
        g = gb_seq(b, g, gb_lit(b, "}", 1));
        f = i ? gb_alt(b, f, g) : g;
    }
    return f;
}

/* A rule for one call (the body between separators). */
static int32_t call_rule(struct gb *b, struct jsc *c, const int32_t *args,
                         const struct gram_tools *t)
{
    int32_t r = gb_rule(b, "tool call");
    struct gfrag f;
    if (t->format == GRAM_TOOLS_DEEPSEEK) {
        f = ds_call(b, c, args, t);
    } else {
        f = gb_lit(b, "\n", 1);
        f = gb_seq(b, f, hermes_obj(b, c, args, t));
        f = gb_seq(b, f, gb_lit(b, "\n</tool_call>", 13));
    }
    gb_rule_define(b, r, f);
    return r;
}

static struct gfrag calls(struct gb *b, int32_t call, const struct gram_tools *t)
{
    bool ds = t->format == GRAM_TOOLS_DEEPSEEK;
    struct gfrag f = gb_ref(b, call);
    if (t->parallel) {
        struct gfrag more = ds ? gb_lit(b, "\n", 1) : gb_lit(b, "\n<tool_call>", 12);
        more = gb_seq(b, more, gb_ref(b, call));
        f = gb_seq(b, f, gb_star(b, more));
    }
    if (ds) f = gb_seq(b, f, gb_token(b, t->marker[GRAM_DS_CALLS_END]));
    return f;
}

struct gram *gram_tools(const struct gram_tools *t, int32_t n_vocab, const struct gram_limits *lim,
                        struct err *e)
{
    struct gb b;
    gb_init(&b, lim, n_vocab);
    struct jsc *c = jsc_create(&b, t->ws);
    int32_t *args = xcalloc((size_t)t->n_tools + 1, sizeof *args);
    if (t->n_tools < 1) gb_fail(&b, "tools: no function to call");
    for (int i = 0; i < t->n_tools && !b.failed; i++) {
        char name[160];
        snprintf(name, sizeof name, "arguments of %s", t->tools[i].name);
        args[i] = jsc_doc_rule(c, t->tools[i].params, name);
    }
    int32_t call = call_rule(&b, c, args, t);
    int32_t answer = -1;
    if (!t->lazy && t->answer)
        answer = jsc_doc_rule(c, t->answer, "answer");
    else if (!t->lazy && t->answer_object)
        answer = jsc_object_rule(c);
    jsc_finish(c);
    int32_t root = gb_rule(&b, "root");
    struct gfrag f;
    if (t->lazy) {
        f = calls(&b, call, t);
    } else if (t->format == GRAM_TOOLS_DEEPSEEK) {
        f = gb_token(&b, t->marker[GRAM_DS_CALLS_BEGIN]);
        f = gb_seq(&b, f, calls(&b, call, t));
    } else {
        f = gb_lit(&b, "<tool_call>", 11);
        f = gb_seq(&b, f, calls(&b, call, t));
    }
    if (answer >= 0) f = gb_alt(&b, f, gb_ref(&b, answer));
    gb_rule_define(&b, root, f);
    jsc_destroy(c);
    free(args);
    return gram_compile(&b, root, e);
}
