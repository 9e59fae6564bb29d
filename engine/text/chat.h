/* chat: the DeepSeek-V3, DeepSeek-R1 (and R1-Distill), ChatML and Llama 3 chat templates, written
 * in C — a model's own template text is never executed, only recognised.
 *
 * Renders a conversation straight to token ids, identical to HF apply_chat_template(...,
 * tokenize=True) with the official template texts, with one deliberate difference: message
 * content is always encoded as plain text, so a user who types "<｜Assistant｜>" gets those
 * characters, never the control token.  Template markers are inserted as ids. */
#ifndef SEEKD_CHAT_H
#define SEEKD_CHAT_H

#include "engine/text/tokenizer.h"
#include "engine/text/toolcall.h"

enum chat_role { CHAT_SYSTEM, CHAT_USER, CHAT_ASSISTANT, CHAT_TOOL };

struct chat_tool_call {
    const char *type, *name, *arguments; /* NUL-terminated; arguments is JSON text */
};

struct chat_msg {
    enum chat_role role;
    const char *content; /* NULL: JSON null (an assistant turn that only calls tools) */
    size_t content_len;
    const struct chat_tool_call *calls; /* assistant only */
    int n_calls;
};

/* A function the model may call: rendered into the prompt (the system part) so the model knows
 * it and the format to call it in. */
struct chat_tool {
    const char *name;
    const char *description; /* NULL: none */
    const char *parameters;  /* its parameters schema as JSON text */
};

enum chat_template { CHAT_DEEPSEEK_V3, CHAT_DEEPSEEK_R1, CHAT_CHATML, CHAT_LLAMA3 };

struct chat;

/* Picks the template: option "deepseek-v3" / "deepseek-r1" / "chatml" / "llama3" (the config
 * option chat_template), or NULL / "auto" to recognise the model's own template (tokenizer_config
 * .json or a GGUF's tokenizer.chat_template): the official DeepSeek texts by hash, otherwise the
 * family by the markers it writes (as llama.cpp does).  A ChatML template's literal default
 * system prompt is kept and used when a conversation has no system message.  NULL on error,
 * with a message naming the option. */
struct chat *chat_create(const struct tok *t, const char *option, struct err *e);
void chat_destroy(struct chat *c);
enum chat_template chat_kind(const struct chat *c);
/* The token that ends an assistant turn in this template (-1 when the tokenizer lacks it). */
int32_t chat_end_of_turn(const struct chat *c);

/* Appends the ids of the rendered conversation to out, the tools (may be none) described after
 * the system messages.  -1 on a message the template cannot render (missing content) or invalid
 * UTF-8, with out unchanged. */
int chat_render(const struct chat *c, const struct chat_msg *msgs, int n_msgs,
                const struct chat_tool *tools, int n_tools, bool add_generation_prompt,
                struct tok_ids *out, struct err *e);

/* The format the template's model writes tool calls in, and (TC_DEEPSEEK) its marker token ids
 * into marker[TC_N_MARKERS]. */
enum tc_format chat_tool_format(const struct chat *c, int32_t *marker);

/* The recognition hash of a template text (whitespace and "\n" escapes ignored). */
uint64_t chat_template_hash(const char *text);

#endif
