/* chat: DeepSeek-V3 (original hub template) and DeepSeek-R1 (hub template of Feb 2025, also the
 * R1-Distill models'), ChatML and Llama 3 rendered to token ids. No template text is ever run:
 * the model's template only chooses among these renderers (and, for ChatML, may supply the
 * default system prompt). Tools and past calls take DeepSeek's marker tokens in the DeepSeek
 * templates and the Hermes text form (<tools>, <tool_call>) in ChatML and Llama 3.
 *
 * Rendering keeps a pending text buffer: template literals and message content are appended to
 * it, and each marker (an added token such as <｜User｜>) first flushes the buffer through the
 * tokenizer as plain text, then appends its id.  HF tokenises the whole rendered string at once,
 * but added tokens split it before pre-tokenisation, so the text between two markers is encoded
 * on its own in both cases: the ids agree, except that content spelling a marker stays text. */
#include "engine/text/chat.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum marker {
    M_BOS, M_EOS, M_USER, M_ASSISTANT, M_CALLS_BEGIN, M_CALLS_END, M_CALL_BEGIN, M_CALL_END,
    M_SEP, M_OUTPUTS_BEGIN, M_OUTPUTS_END, M_OUTPUT_BEGIN, M_OUTPUT_END, M_THINK,
    M_IM_START, M_IM_END,                                   /* ChatML */
    M_BEGIN_TEXT, M_HEADER_START, M_HEADER_END, M_EOT_ID,   /* Llama 3 */
    N_MARKERS
};

static const char *const MARKER_TEXT[N_MARKERS] = {
    "<｜begin▁of▁sentence｜>", "<｜end▁of▁sentence｜>", "<｜User｜>", "<｜Assistant｜>",
    "<｜tool▁calls▁begin｜>", "<｜tool▁calls▁end｜>", "<｜tool▁call▁begin｜>", "<｜tool▁call▁end｜>",
    "<｜tool▁sep｜>", "<｜tool▁outputs▁begin｜>", "<｜tool▁outputs▁end｜>", "<｜tool▁output▁begin｜>",
    "<｜tool▁output▁end｜>", "<think>", "<|im_start|>", "<|im_end|>", "<|begin_of_text|>",
    "<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>",
};

static const char *const TEMPLATE_NAMES[] = {"deepseek-v3", "deepseek-r1", "chatml", "llama3"};

/* chat_template_hash of tests/fixtures/tokenizer/template_{v3,r1}.jinja (the official texts). */
#define HASH_V3 0xf7dbff683e84df2aull
#define HASH_R1 0x7800a64ae3c4b9b5ull

struct chat {
    const struct tok *tok;
    enum chat_template kind;
    int32_t marker[N_MARKERS]; /* ids; -1 when the tokenizer lacks it (then it is plain text) */
    char *default_system;      /* ChatML: the template's system prompt when none is given */
};

uint64_t chat_template_hash(const char *s)
{
    uint64_t h = 0xcbf29ce484222325ull;
    for (; *s; s++) {
        if (*s == ' ' || *s == '\t' || *s == '\n' || *s == '\r') continue;
        if (s[0] == '\\' && s[1] == 'n') {
            s++;
            continue;
        }
        h = (h ^ (uint8_t)*s) * 0x100000001b3ull;
    }
    return h;
}

/* The template family a template text belongs to, by the markers it writes (as llama.cpp
 * recognises them); -1 when none. */
static int family(const char *text)
{
    if (strstr(text, "<|im_start|>")) return CHAT_CHATML;
    if (strstr(text, "<|start_header_id|>") && strstr(text, "<|end_header_id|>")) return CHAT_LLAMA3;
    if (strstr(text, "<｜Assistant｜>") && strstr(text, "<｜User｜>"))
        return strstr(text, "</think>") ? CHAT_DEEPSEEK_R1 : CHAT_DEEPSEEK_V3;
    return -1;
}

static int pick(const struct tok *t, const char *option, enum chat_template *kind, struct err *e)
{
    if (option && strcmp(option, "auto")) {
        for (int k = 0; k < (int)(sizeof TEMPLATE_NAMES / sizeof TEMPLATE_NAMES[0]); k++)
            if (!strcmp(option, TEMPLATE_NAMES[k])) {
                *kind = (enum chat_template)k;
                return 0;
            }
        return err_set(e, "chat_template \"%s\" is unknown: use deepseek-v3, deepseek-r1, chatml, "
                          "llama3 or auto", option);
    }
    const char *text = tok_chat_template(t);
    if (!text)
        return err_set(e, "the model has no chat template (tokenizer_config.json or the GGUF's "
                          "tokenizer.chat_template): set the option chat_template to deepseek-v3, "
                          "deepseek-r1, chatml or llama3");
    uint64_t h = chat_template_hash(text);
    int f = h == HASH_V3 ? CHAT_DEEPSEEK_V3 : h == HASH_R1 ? CHAT_DEEPSEEK_R1 : family(text);
    if (f < 0)
        return err_set(e, "the model's chat template is not one seekd knows (hash %016llx): set the "
                          "option chat_template to deepseek-v3, deepseek-r1, chatml or llama3",
                       (unsigned long long)h);
    *kind = (enum chat_template)f;
    return 0;
}

/* ChatML templates that add a system message when the conversation has none write it as a
 * literal: '<|im_start|>system' newline TEXT '<|im_end|>'. TEXT is taken only when it holds no
 * template syntax (quotes, braces), so a message the template builds from variables is not. */
static char *default_system(const char *text)
{
    static const char head[] = "<|im_start|>system";
    if (!strstr(text, "'system'") && !strstr(text, "\"system\"")) return NULL;
    for (const char *p = strstr(text, head); p; p = strstr(p + 1, head)) {
        const char *s = p + sizeof head - 1;
        if (*s == '\n') s++;
        else if (s[0] == '\\' && s[1] == 'n') s += 2;
        else continue;
        const char *end = strstr(s, "<|im_end|>");
        if (!end || end == s) continue;
        size_t n = (size_t)(end - s);
        if (memchr(s, '\'', n) || memchr(s, '"', n) || memchr(s, '{', n) || memchr(s, '}', n) ||
            memchr(s, '\\', n))
            continue;
        return strndup(s, n);
    }
    return NULL;
}

struct chat *chat_create(const struct tok *t, const char *option, struct err *e)
{
    enum chat_template kind = CHAT_DEEPSEEK_V3;
    if (pick(t, option, &kind, e)) return NULL;
    struct chat *c = xcalloc(1, sizeof *c);
    c->tok = t, c->kind = kind;
    for (int m = 0; m < N_MARKERS; m++) c->marker[m] = tok_added_id(t, MARKER_TEXT[m]);
    if (kind == CHAT_CHATML && tok_chat_template(t)) c->default_system = default_system(tok_chat_template(t));
    return c;
}

void chat_destroy(struct chat *c)
{
    if (c) free(c->default_system);
    free(c);
}

int32_t chat_end_of_turn(const struct chat *c)
{
    return c->marker[c->kind == CHAT_CHATML ? M_IM_END : c->kind == CHAT_LLAMA3 ? M_EOT_ID : M_EOS];
}
enum chat_template chat_kind(const struct chat *c) { return c->kind; }

/* ---- rendering ------------------------------------------------------------------------------ */

struct render {
    const struct chat *c;
    struct tok_ids *out;
    char *buf; /* pending plain text */
    size_t n, cap;
    int rc;
    struct err *e;
    bool is_first, is_tool, is_output_first; /* the templates' namespace flags */
};

static void text(struct render *r, const char *s, size_t n)
{
    if (!n) return;
    if (r->n + n > r->cap) {
        r->cap = (r->n + n) * 2;
        r->buf = realloc(r->buf, r->cap);
        if (!r->buf) ERR_FATAL("out of memory");
    }
    memcpy(r->buf + r->n, s, n);
    r->n += n;
}

static void cstr(struct render *r, const char *s) { text(r, s, strlen(s)); }

static void flush(struct render *r)
{
    if (r->n && !r->rc) r->rc = tok_encode(r->c->tok, r->buf, r->n, 0, r->out, r->e);
    r->n = 0;
}

static void marker(struct render *r, enum marker m)
{
    if (r->c->marker[m] < 0) {
        cstr(r, MARKER_TEXT[m]);
        return;
    }
    flush(r);
    tok_ids_push(r->out, r->c->marker[m]);
}

/* TYPE<｜tool▁sep｜>NAME\n```json\nARGS\n```<｜tool▁call▁end｜>, after <｜tool▁call▁begin｜>. */
static void call_body(struct render *r, const struct chat_tool_call *call)
{
    cstr(r, call->type);
    marker(r, M_SEP);
    cstr(r, call->name);
    cstr(r, "\n```json\n");
    cstr(r, call->arguments);
    cstr(r, "\n```");
    marker(r, M_CALL_END);
}

/* V3: an assistant message with null content is a tool-call turn.  The first call of the whole
 * conversation opens the block; only later calls close it (the official template's quirk). */
static void v3_calls(struct render *r, const struct chat_msg *m)
{
    r->is_tool = false;
    for (int i = 0; i < m->n_calls; i++) {
        if (!r->is_first) {
            marker(r, M_ASSISTANT), marker(r, M_CALLS_BEGIN), marker(r, M_CALL_BEGIN);
            call_body(r, &m->calls[i]);
            r->is_first = true;
        } else {
            cstr(r, "\n"), marker(r, M_CALL_BEGIN);
            call_body(r, &m->calls[i]);
            marker(r, M_CALLS_END), marker(r, M_EOS);
        }
    }
}

/* R1: tool_calls present; content may precede the calls; the block is closed once. */
static void r1_calls(struct render *r, const struct chat_msg *m)
{
    r->is_tool = false;
    for (int i = 0; i < m->n_calls; i++) {
        if (!r->is_first) {
            marker(r, M_ASSISTANT);
            if (m->content) text(r, m->content, m->content_len);
            marker(r, M_CALLS_BEGIN), marker(r, M_CALL_BEGIN);
            r->is_first = true;
        } else {
            cstr(r, "\n"), marker(r, M_CALL_BEGIN);
        }
        call_body(r, &m->calls[i]);
    }
    marker(r, M_CALLS_END), marker(r, M_EOS);
}

/* R1 drops everything up to the last </think> of a historical reply. */
static void after_think(const struct chat_msg *m, const char **s, size_t *n)
{
    *s = m->content, *n = m->content_len;
    static const char tag[] = "</think>";
    for (size_t i = m->content_len; i >= sizeof tag - 1; i--)
        if (!memcmp(m->content + i - (sizeof tag - 1), tag, sizeof tag - 1)) {
            *s = m->content + i, *n = m->content_len - i;
            return;
        }
}

static void reply(struct render *r, const struct chat_msg *m)
{
    if (r->is_tool) {
        marker(r, M_OUTPUTS_END);
        text(r, m->content, m->content_len);
        marker(r, M_EOS);
        r->is_tool = false;
        return;
    }
    const char *s = m->content;
    size_t n = m->content_len;
    if (r->c->kind == CHAT_DEEPSEEK_R1) after_think(m, &s, &n);
    marker(r, M_ASSISTANT);
    text(r, s, n);
    marker(r, M_EOS);
}

static void tool_output(struct render *r, const struct chat_msg *m)
{
    r->is_tool = true;
    if (r->is_output_first) {
        marker(r, M_OUTPUTS_BEGIN);
        r->is_output_first = false;
    } else if (r->c->kind == CHAT_DEEPSEEK_V3) {
        cstr(r, "\n");
    }
    marker(r, M_OUTPUT_BEGIN);
    text(r, m->content, m->content_len);
    marker(r, M_OUTPUT_END);
}

static void message(struct render *r, const struct chat_msg *m)
{
    bool v3 = r->c->kind == CHAT_DEEPSEEK_V3;
    if (m->role == CHAT_USER) {
        r->is_tool = false;
        marker(r, M_USER);
        text(r, m->content, m->content_len);
    } else if (m->role == CHAT_ASSISTANT && v3 && !m->content) {
        v3_calls(r, m);
    } else if (m->role == CHAT_ASSISTANT && !v3 && m->n_calls) {
        r1_calls(r, m);
    } else if (m->role == CHAT_ASSISTANT) {
        reply(r, m);
    } else if (m->role == CHAT_TOOL) {
        tool_output(r, m);
    }
}

/* ---- ChatML and Llama 3: a header per message, no tool calls ------------------------------------ */

static const char *const ROLE_NAME[] = {"system", "user", "assistant", "tool"};

/* "   x  " → "x" (Jinja's trim, which the Llama 3 template applies to content). */
static void trimmed(const char **s, size_t *n)
{
    while (*n && (**s == ' ' || **s == '\t' || **s == '\n' || **s == '\r')) (*s)++, (*n)--;
    while (*n && ((*s)[*n - 1] == ' ' || (*s)[*n - 1] == '\t' || (*s)[*n - 1] == '\n' || (*s)[*n - 1] == '\r')) (*n)--;
}

/* The role's header: <|im_start|>ROLE\n or <|start_header_id|>ROLE<|end_header_id|>\n\n. */
static void turn_open(struct render *r, const char *role)
{
    if (r->c->kind == CHAT_CHATML) {
        marker(r, M_IM_START), cstr(r, role), cstr(r, "\n");
        return;
    }
    marker(r, M_HEADER_START), cstr(r, role), marker(r, M_HEADER_END), cstr(r, "\n\n");
}

/* The turn's end: <|im_end|>\n or <|eot_id|>. */
static void turn_close(struct render *r)
{
    if (r->c->kind == CHAT_CHATML) marker(r, M_IM_END), cstr(r, "\n");
    else marker(r, M_EOT_ID);
}

/* A turn's content: as given for ChatML, trimmed for Llama 3. */
static void turn_text(struct render *r, const char *s, size_t n)
{
    if (r->c->kind == CHAT_LLAMA3) trimmed(&s, &n);
    text(r, s, n);
}

/* s as a JSON string literal: quotes, backslashes and control characters escaped. */
static void json_string(struct render *r, const char *s)
{
    cstr(r, "\"");
    for (; *s; s++) {
        unsigned char ch = (unsigned char)*s;
        char esc[8];
        if (ch == '"' || ch == '\\') esc[0] = '\\', esc[1] = (char)ch, esc[2] = 0;
        else if (ch == '\n') strcpy(esc, "\\n");
        else if (ch < 0x20) snprintf(esc, sizeof esc, "\\u%04x", ch);
        else esc[0] = (char)ch, esc[1] = 0;
        cstr(r, esc);
    }
    cstr(r, "\"");
}

/* The tools in the Hermes form both families' fine-tunes know: each function's schema as JSON
 * inside <tools>, and the <tool_call> form a call takes (what the tool-call parser reads). */
static void hermes_tools(struct render *r, const struct chat_tool *t, int n)
{
    cstr(r, "# Tools\n\nYou may call one or more of these functions. Their signatures, one JSON "
            "object per line, are inside <tools></tools>:\n<tools>");
    for (int i = 0; i < n; i++) {
        cstr(r, "\n{\"type\": \"function\", \"function\": {\"name\": \""), cstr(r, t[i].name);
        cstr(r, "\"");
        if (t[i].description && t[i].description[0]) {
            cstr(r, ", \"description\": ");
            json_string(r, t[i].description);
        }
        cstr(r, ", \"parameters\": "), cstr(r, t[i].parameters ? t[i].parameters : "{}"), cstr(r, "}}");
    }
    cstr(r, "\n</tools>\n\nTo call a function, write a JSON object with its name and arguments "
            "inside <tool_call></tool_call>, one per call:\n<tool_call>\n{\"name\": NAME, "
            "\"arguments\": ARGUMENTS}\n</tool_call>");
}

/* An assistant message's calls, after its content, in the Hermes form. */
static void hermes_calls(struct render *r, const struct chat_msg *m)
{
    for (int k = 0; k < m->n_calls; k++) {
        if (k || m->content_len) cstr(r, "\n");
        cstr(r, "<tool_call>\n{\"name\": \""), cstr(r, m->calls[k].name);
        cstr(r, "\", \"arguments\": "), cstr(r, m->calls[k].arguments), cstr(r, "}\n</tool_call>");
    }
}

/* The system turn: the first system message (or ChatML's default prompt), then the tools. */
static int system_turn(struct render *r, const struct chat_msg *msgs, int n_msgs,
                       const struct chat_tool *tools, int n_tools)
{
    const struct chat *c = r->c;
    bool given = n_msgs && msgs[0].role == CHAT_SYSTEM;
    const char *s = given ? msgs[0].content : c->kind == CHAT_CHATML ? c->default_system : NULL;
    size_t n = given ? msgs[0].content_len : s ? strlen(s) : 0;
    if (!s && !n_tools) return 0;
    turn_open(r, "system");
    if (s) turn_text(r, s, n);
    if (n_tools) {
        if (s && n) cstr(r, "\n\n");
        hermes_tools(r, tools, n_tools);
    }
    turn_close(r);
    return given;
}

static void render_headers(struct render *r, const struct chat_msg *msgs, int n_msgs,
                           const struct chat_tool *tools, int n_tools, bool gen)
{
    if (r->c->kind == CHAT_LLAMA3) marker(r, M_BEGIN_TEXT);
    for (int i = system_turn(r, msgs, n_msgs, tools, n_tools); i < n_msgs; i++) {
        const struct chat_msg *m = &msgs[i];
        bool ipython = r->c->kind == CHAT_LLAMA3 && m->role == CHAT_TOOL;
        turn_open(r, ipython ? "ipython" : ROLE_NAME[m->role]);
        if (m->content) turn_text(r, m->content, m->content_len);
        hermes_calls(r, m);
        turn_close(r);
    }
    if (gen) turn_open(r, "assistant");
}

/* Content the templates would fail on (null where they concatenate it) is refused. */
static int check(const struct chat *c, const struct chat_msg *msgs, int n_msgs, struct err *e)
{
    for (int i = 0; i < n_msgs; i++) {
        const struct chat_msg *m = &msgs[i];
        bool may_be_null = m->role == CHAT_ASSISTANT && (c->kind == CHAT_DEEPSEEK_V3 || m->n_calls);
        if (!m->content && !may_be_null) return err_set(e, "messages[%d]: content is required", i);
        if (m->role < CHAT_SYSTEM || m->role > CHAT_TOOL) return err_set(e, "messages[%d]: unknown role", i);
        if (m->n_calls && m->role != CHAT_ASSISTANT)
            return err_set(e, "messages[%d]: only assistant messages carry tool calls", i);
        for (int k = 0; k < m->n_calls; k++)
            if (!m->calls[k].type || !m->calls[k].name || !m->calls[k].arguments)
                return err_set(e, "messages[%d].tool_calls[%d]: type, name and arguments are required", i, k);
    }
    return 0;
}

/* The tools, after the system messages: how to call them (the markers as tokens, exactly the
 * form the model writes and the tool-call parser reads), then each function. */
static void tools_section(struct render *r, const struct chat_tool *t, int n)
{
    cstr(r, "## Tools\n\nTo call functions, reply with the calls alone, in this form (one line per "
            "call):\n");
    marker(r, M_CALLS_BEGIN), marker(r, M_CALL_BEGIN);
    cstr(r, "function");
    marker(r, M_SEP);
    cstr(r, "NAME\n```json\nARGUMENTS\n```");
    marker(r, M_CALL_END), marker(r, M_CALLS_END);
    cstr(r, "\nOtherwise answer normally.");
    for (int i = 0; i < n; i++) {
        cstr(r, "\n\n### "), cstr(r, t[i].name);
        if (t[i].description && t[i].description[0]) cstr(r, "\n"), cstr(r, t[i].description);
        cstr(r, "\nParameters: "), cstr(r, t[i].parameters ? t[i].parameters : "{}");
    }
}

enum tc_format chat_tool_format(const struct chat *c, int32_t *marker)
{
    if (c->kind == CHAT_CHATML || c->kind == CHAT_LLAMA3) { /* text tags, no marker tokens */
        for (int i = 0; marker && i < TC_N_MARKERS; i++) marker[i] = -1;
        return TC_HERMES;
    }
    static const enum marker order[TC_N_MARKERS] = {M_CALLS_BEGIN, M_CALLS_END, M_CALL_BEGIN,
                                                    M_CALL_END, M_SEP};
    for (int i = 0; marker && i < TC_N_MARKERS; i++) marker[i] = c->marker[order[i]];
    return TC_DEEPSEEK;
}

int chat_render(const struct chat *c, const struct chat_msg *msgs, int n_msgs,
                const struct chat_tool *tools, int n_tools, bool add_generation_prompt,
                struct tok_ids *out, struct err *e)
{
    if (check(c, msgs, n_msgs, e)) return -1;
    size_t n0 = out->n;
    struct render r = {.c = c, .out = out, .e = e, .is_output_first = true};
    if (c->kind == CHAT_CHATML || c->kind == CHAT_LLAMA3) {
        render_headers(&r, msgs, n_msgs, tools, n_tools, add_generation_prompt);
        flush(&r);
        free(r.buf);
        if (r.rc) out->n = n0;
        return r.rc;
    }
    marker(&r, M_BOS);
    bool first_system = true;
    for (int i = 0; i < n_msgs; i++) {
        if (msgs[i].role != CHAT_SYSTEM) continue;
        if (!first_system) cstr(&r, "\n\n");
        text(&r, msgs[i].content, msgs[i].content_len);
        first_system = false;
    }
    if (n_tools > 0) {
        if (!first_system) cstr(&r, "\n\n");
        tools_section(&r, tools, n_tools);
    }
    for (int i = 0; i < n_msgs; i++) message(&r, &msgs[i]);
    if (r.is_tool) marker(&r, M_OUTPUTS_END);
    if (add_generation_prompt && !r.is_tool) {
        marker(&r, M_ASSISTANT);
        if (c->kind == CHAT_DEEPSEEK_R1) marker(&r, M_THINK), cstr(&r, "\n");
    }
    flush(&r);
    free(r.buf);
    if (r.rc) out->n = n0;
    return r.rc;
}
