/* api_chat: the "messages" of a chat request → struct chat_msg (engine/text/chat.h) → prompt ids.
 *
 * Accepted: roles system, developer (as system), user, assistant, tool; content as a string or a
 * list of text parts; assistant tool_calls; reasoning_content in history (dropped by the R1
 * template, as DeepSeek's own does). Message text is always encoded as plain text: a user who
 * types a control-token spelling gets that text, never the control token. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/text/chat.h"
#include "server/api.h"

struct msgs {
    struct chat_msg *m;
    char **texts;               /* joined content parts and call lists, freed with the messages */
    int n, n_texts;
};

static void msgs_free(struct msgs *s)
{
    for (int i = 0; i < s->n_texts; i++) free(s->texts[i]);
    free(s->texts);
    free(s->m);
}

/* content: a string, null, or a list of {"type": "text", "text": ...} parts (joined). */
static int read_content(struct http_req *r, json_t *v, int i, struct msgs *s, const char **out,
                        size_t *len)
{
    char param[64];
    snprintf(param, sizeof param, "messages[%d].content", i);
    if (!v || json_is_null(v)) return *out = NULL, *len = 0, 0;
    if (json_is_string(v)) return *out = json_string_value(v), *len = json_string_length(v), 0;
    if (!json_is_array(v)) return api_bad(r, param, "'%s' must be a string or a list of text parts", param);
    char *text = NULL;
    size_t n = 0, k;
    json_t *part;
    json_array_foreach(v, k, part) {
        const char *type = json_string_value(json_object_get(part, "type"));
        json_t *t = json_object_get(part, "text");
        if (!type || strcmp(type, "text") != 0 || !json_is_string(t)) {
            free(text);
            return api_bad(r, param, "'%s' parts must be {\"type\": \"text\", \"text\": ...}; "
                                     "this model takes text only", param);
        }
        text = xrealloc(text, n + json_string_length(t) + 1);
        memcpy(text + n, json_string_value(t), json_string_length(t));
        n += json_string_length(t);
        text[n] = 0;
    }
    s->texts[s->n_texts++] = text;
    return *out = text ? text : "", *len = n, 0;
}

static int read_role(struct http_req *r, json_t *msg, int i, enum chat_role *role)
{
    static const struct { const char *name; enum chat_role role; } roles[] = {
        {"system", CHAT_SYSTEM}, {"developer", CHAT_SYSTEM}, {"user", CHAT_USER},
        {"assistant", CHAT_ASSISTANT}, {"tool", CHAT_TOOL}};
    char param[64];
    snprintf(param, sizeof param, "messages[%d].role", i);
    const char *name = json_string_value(json_object_get(msg, "role"));
    if (!name) return api_bad(r, param, "'%s' is required and must be a string", param);
    for (size_t k = 0; k < sizeof roles / sizeof roles[0]; k++)
        if (strcmp(name, roles[k].name) == 0) return *role = roles[k].role, 0;
    return api_bad(r, param, "unknown role '%s' (system, developer, user, assistant, tool)", name);
}

/* tool_calls of an assistant message: [{"type": "function", "function": {name, arguments}}]. */
static int read_calls(struct http_req *r, json_t *msg, int i, struct msgs *s, struct chat_msg *m)
{
    json_t *tc = json_object_get(msg, "tool_calls");
    char param[64];
    snprintf(param, sizeof param, "messages[%d].tool_calls", i);
    if (!tc || json_is_null(tc)) return 0;
    if (!json_is_array(tc) || json_array_size(tc) == 0 || m->role != CHAT_ASSISTANT)
        return api_bad(r, param, "'%s' must be a non-empty list, on assistant messages", param);
    size_t k;
    json_t *c;
    struct chat_tool_call *calls = xcalloc(json_array_size(tc), sizeof *calls);
    json_array_foreach(tc, k, c) {
        json_t *fn = json_object_get(c, "function");
        const char *type = json_string_value(json_object_get(c, "type"));
        const char *name = json_string_value(json_object_get(fn, "name"));
        const char *args = json_string_value(json_object_get(fn, "arguments"));
        if (!name || !args) {
            free(calls);
            return api_bad(r, param, "each tool call needs function.name and function.arguments "
                                     "(a JSON string)");
        }
        calls[k] = (struct chat_tool_call){.type = type ? type : "function", .name = name, .arguments = args};
    }
    s->texts[s->n_texts++] = (char *)calls; /* freed with the texts */
    m->calls = calls;
    m->n_calls = (int)json_array_size(tc);
    return 0;
}

static int read_messages(struct http_req *r, json_t *body, struct msgs *s)
{
    json_t *arr = json_object_get(body, "messages");
    if (!json_is_array(arr) || json_array_size(arr) == 0)
        return api_bad(r, "messages", "'messages' must be a non-empty list");
    if (json_array_size(arr) > 4096) return api_bad(r, "messages", "at most 4096 messages");
    s->n = (int)json_array_size(arr);
    s->m = xcalloc((size_t)s->n, sizeof *s->m);
    s->texts = xcalloc((size_t)s->n * 2, sizeof *s->texts);
    for (int i = 0; i < s->n; i++) {
        json_t *msg = json_array_get(arr, (size_t)i);
        struct chat_msg *m = &s->m[i];
        if (!json_is_object(msg)) return api_bad(r, "messages", "messages[%d] must be an object", i);
        if (read_role(r, msg, i, &m->role) ||
            read_content(r, json_object_get(msg, "content"), i, s, &m->content, &m->content_len) ||
            read_calls(r, msg, i, s, m))
            return -1;
        if (!m->content && !(m->role == CHAT_ASSISTANT && m->n_calls))
            return api_bad(r, "messages", "messages[%d] has no content", i);
    }
    return 0;
}

int api_chat_prompt(struct http_req *r, json_t *body, const struct chat_tool *tools, int n_tools,
                    struct tok_ids *ids, int *reasoning)
{
    struct api *a = r->app;
    struct msgs s = {0};
    struct err e = {0};
    int add_gen, rc = -1;
    if (api_get_bool(r, body, "add_generation_prompt", 1, &add_gen) == 0 && read_messages(r, body, &s) == 0) {
        if (chat_render(a->chat, s.m, s.n, tools, n_tools, add_gen, ids, &e) != 0)
            api_bad(r, "messages", "%s", e.msg);
        else rc = 0;
    }
    if (reasoning) *reasoning = chat_kind(a->chat) == CHAT_DEEPSEEK_R1;
    msgs_free(&s);
    return rc;
}
