/* api_gen: one generation job — submits each prompt to the engine, drains the engine's events
 * and answers the OpenAI way: one JSON body, or an SSE stream of chunks ending in [DONE].
 * Choice i of prompt k has index k * n + i, as OpenAI numbers batched prompts. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "server/api.h"
#include "server/commands.h"

struct tool_call {
    char id[32];                /* call_<hex> */
    char *name;
    char *args;                 /* non-streamed: the whole arguments text */
    size_t n_args;
};

struct job_choice {
    char *content, *reasoning;  /* non-streamed replies accumulate here */
    size_t n_content, n_reasoning;
    json_t *lp;                 /* logprob entries, in the endpoint's format */
    size_t text_offset;         /* completions logprobs: where the next token's text starts */
    enum gen_finish finish;
    char *error;
    struct tool_call *calls;    /* [n_calls] */
    int n_calls;
};

struct job {
    struct api *api;
    struct http_req *r;
    int chat, stream, include_usage, reasoning, tokens_as_ids;
    struct smp_params sampling; /* what was asked, for logprobs */
    int n, n_prompts, n_live;
    struct gen **gens;          /* [n_prompts]; NULL once its DONE arrived */
    struct api_prompt *prompts;
    struct job_choice *ch;      /* [n_prompts * n] */
    int prompt_tokens, completion_tokens, cached_tokens;
    char id[48], *model;
    time_t created;
    char *out;                  /* stream bytes not yet handed to the connection */
    size_t n_out, out_pos, cap_out;
    int ended;                  /* [DONE] (or the final error) is in out */
    int status;                 /* HTTP status, for the access line */
    double t_start, t_first;    /* monotonic seconds: submitted, first token (0: none yet) */
};

static void job_notify(void *arg)
{
    http_wake(arg);
}

static void job_free(struct job *j)
{
    for (int i = 0; i < j->n_prompts; i++) {
        if (j->gens[i]) gen_cancel(j->gens[i]), gen_release(j->gens[i]);
        free(j->prompts[i].ids);
        free(j->prompts[i].echo);
    }
    for (int i = 0; i < j->n_prompts * j->n; i++) {
        free(j->ch[i].content);
        free(j->ch[i].reasoning);
        free(j->ch[i].error);
        json_decref(j->ch[i].lp);
        for (int k = 0; k < j->ch[i].n_calls; k++) free(j->ch[i].calls[k].name), free(j->ch[i].calls[k].args);
        free(j->ch[i].calls);
    }
    free(j->gens);
    free(j->prompts);
    free(j->ch);
    free(j->model);
    free(j->out);
    free(j);
}

static void append(char **s, size_t *n, const char *add, size_t len)
{
    if (!len) return;
    *s = xrealloc(*s, *n + len + 1);
    memcpy(*s + *n, add, len);
    *n += len;
    (*s)[*n] = 0;
}

static const char *finish_name(enum gen_finish f)
{
    switch (f) {
    case GEN_FINISH_STOP: return "stop";
    case GEN_FINISH_LENGTH: return "length";
    case GEN_FINISH_ABORT: return "abort";
    default: return "error";
    }
}

/* A choice that made tool calls and stopped on its own finished with "tool_calls". */
static const char *choice_finish(const struct job_choice *ch)
{
    return ch->n_calls && ch->finish == GEN_FINISH_STOP ? "tool_calls" : finish_name(ch->finish);
}

/* ---- tool calls ------------------------------------------------------------------------------ */

/* The call a delta belongs to; a delta carrying a name starts a new one. NULL when the index is
 * not one this choice started (a parser fault: ignored). */
static struct tool_call *call_of(struct job_choice *ch, const struct tc_delta *d)
{
    if (d->name && d->index == ch->n_calls) {
        ch->calls = xrealloc(ch->calls, (size_t)(ch->n_calls + 1) * sizeof *ch->calls);
        struct tool_call *c = &ch->calls[ch->n_calls++];
        memset(c, 0, sizeof *c);
        uint64_t rnd[2] = {0};
        if (getrandom(rnd, sizeof rnd, 0) != sizeof rnd) rnd[0] = (uint64_t)(uintptr_t)c;
        snprintf(c->id, sizeof c->id, "call_%016llx%08llx", (unsigned long long)rnd[0],
                 (unsigned long long)(rnd[1] & 0xffffffffu));
        c->name = strdup(d->name);
        return c;
    }
    return d->index >= 0 && d->index < ch->n_calls ? &ch->calls[d->index] : NULL;
}

/* Streamed: OpenAI's pieces — id, type and name first (arguments ""), then argument
 * fragments. */
static json_t *tool_deltas(struct job_choice *ch, const struct gen_event *ev)
{
    json_t *arr = json_array();
    for (int i = 0; i < ev->n_tools; i++) {
        const struct tc_delta *d = &ev->tools[i];
        struct tool_call *c = call_of(ch, d);
        if (!c) continue;
        if (d->name)
            json_array_append_new(arr, json_pack("{s:i, s:s, s:s, s:{s:s, s:s}}", "index", d->index,
                                                 "id", c->id, "type", "function", "function",
                                                 "name", c->name, "arguments", ""));
        if (d->args)
            json_array_append_new(arr, json_pack("{s:i, s:{s:s%}}", "index", d->index, "function",
                                                 "arguments", d->args, d->n_args));
    }
    return arr;
}

/* Non-streamed: arguments accumulate per call. */
static void collect_tools(struct job_choice *ch, const struct gen_event *ev)
{
    for (int i = 0; i < ev->n_tools; i++) {
        struct tool_call *c = call_of(ch, &ev->tools[i]);
        if (c) append(&c->args, &c->n_args, ev->tools[i].args, ev->tools[i].n_args);
    }
}

static json_t *tool_calls_json(const struct job_choice *ch)
{
    json_t *arr = json_array();
    for (int k = 0; k < ch->n_calls; k++) {
        const struct tool_call *c = &ch->calls[k];
        json_array_append_new(arr, json_pack("{s:s, s:s, s:{s:s, s:s%}}", "id", c->id, "type",
                                             "function", "function", "name", c->name, "arguments",
                                             c->args ? c->args : "", c->n_args));
    }
    return arr;
}

/* ---- logprobs -------------------------------------------------------------------------------- */

static json_t *token_text(const struct job *j, int32_t id)
{
    if (j->tokens_as_ids) return json_sprintf("token_id:%d", id);
    struct tok_text t = {0};
    tok_decode(j->api->tok, &id, 1, false, &t, NULL);
    json_t *s = json_stringn(t.s ? t.s : "", t.n);
    tok_text_free(&t);
    return s;
}

static json_t *bytes_of(json_t *s)
{
    json_t *a = json_array();
    const unsigned char *p = (const unsigned char *)json_string_value(s);
    for (size_t i = 0; i < json_string_length(s); i++) json_array_append_new(a, json_integer(p[i]));
    return a;
}

static double finite_lp(float lp)
{
    return isfinite(lp) ? lp : -9999.0;
}

/* Chat format: {"token", "logprob", "bytes", "top_logprobs": [...]}. */
static json_t *chat_lp_entry(const struct job *j, const struct smp_result *r)
{
    json_t *tok = token_text(j, r->token), *top = json_array();
    for (int k = 0; k < r->n_top && k < j->sampling.n_logprobs; k++) {
        json_t *t = token_text(j, r->top[k].token);
        json_array_append_new(top, json_pack("{s:O, s:f, s:o}", "token", t, "logprob",
                                             finite_lp(r->top[k].logprob), "bytes", bytes_of(t)));
        json_decref(t);
    }
    json_t *e = json_pack("{s:O, s:f, s:o, s:o}", "token", tok, "logprob", finite_lp(r->logprob),
                          "bytes", bytes_of(tok), "top_logprobs", top);
    json_decref(tok);
    return e;
}

/* Completions (legacy) format, one token: appended to the four parallel arrays of lp. */
static void completion_lp_add(const struct job *j, json_t *lp, const struct smp_result *r,
                              size_t *offset)
{
    json_t *tok = token_text(j, r->token), *top = json_object();
    for (int k = 0; k < r->n_top && k < j->sampling.n_logprobs; k++) {
        json_t *t = token_text(j, r->top[k].token);
        json_object_set_new(top, json_string_value(t), json_real(finite_lp(r->top[k].logprob)));
        json_decref(t);
    }
    json_array_append_new(json_object_get(lp, "text_offset"), json_integer((json_int_t)*offset));
    *offset += json_string_length(tok);
    json_array_append_new(json_object_get(lp, "tokens"), tok);
    json_array_append_new(json_object_get(lp, "token_logprobs"), json_real(finite_lp(r->logprob)));
    json_array_append_new(json_object_get(lp, "top_logprobs"), top);
}

static json_t *new_lp(int chat)
{
    if (chat) return json_pack("{s:[]}", "content");
    return json_pack("{s:[], s:[], s:[], s:[]}", "tokens", "token_logprobs", "top_logprobs", "text_offset");
}

/* Adds one token's logprobs to lp (created on first use). */
static void lp_add(struct job *j, json_t **lp, const struct smp_result *r, size_t *offset)
{
    if (!j->sampling.logprobs) return;
    if (!*lp) *lp = new_lp(j->chat);
    if (j->chat) json_array_append_new(json_object_get(*lp, "content"), chat_lp_entry(j, r));
    else completion_lp_add(j, *lp, r, offset);
}

/* ---- streaming ------------------------------------------------------------------------------- */

static void out_add(struct job *j, const char *s, size_t n)
{
    if (j->n_out + n + 1 > j->cap_out) {
        j->cap_out = (j->n_out + n + 1) * 2;
        j->out = xrealloc(j->out, j->cap_out);
    }
    memcpy(j->out + j->n_out, s, n);
    j->n_out += n;
}

/* Writes "data: <json>\n\n" and frees the document; a document jansson could not build (NULL)
 * becomes an error event rather than a crash. */
static void sse(struct job *j, json_t *doc)
{
    static const char broken[] = "{\"error\":{\"message\":\"internal error while building the "
                                 "event\",\"type\":\"server_error\",\"param\":null,\"code\":null}}";
    char *text = doc ? json_dumps(doc, JSON_COMPACT) : NULL;
    json_decref(doc);
    out_add(j, "data: ", 6);
    if (text) out_add(j, text, strlen(text));
    else out_add(j, broken, sizeof broken - 1);
    out_add(j, "\n\n", 2);
    free(text);
}

/* The envelope shared by every chunk of the stream; choice may be NULL (usage chunk). */
static json_t *chunk(struct job *j, json_t *choice)
{
    json_t *c = json_pack("{s:s, s:s, s:I, s:s, s:s, s:o}", "id", j->id, "object",
                          j->chat ? "chat.completion.chunk" : "text_completion", "created",
                          (json_int_t)j->created, "model", j->model, "system_fingerprint",
                          "seekd-" SEEKD_VERSION, "choices", json_array());
    if (choice) json_array_append_new(json_object_get(c, "choices"), choice);
    if (j->include_usage) json_object_set_new(c, "usage", json_null());
    return c;
}

/* One choice's piece of a chunk: a chat delta or a completion text. */
static json_t *piece(struct job *j, int index, const struct gen_event *ev, json_t *lp,
                     const char *finish)
{
    json_t *tools = ev->n_tools && j->chat ? tool_deltas(&j->ch[index], ev) : NULL;
    json_t *c = json_pack("{s:i, s:o, s:o}", "index", index, "logprobs", lp ? lp : json_null(),
                          "finish_reason", finish ? json_string(finish) : json_null());
    if (!j->chat) {
        json_object_set_new(c, "text", json_stringn(ev->content ? ev->content : "", ev->content_len));
        return c;
    }
    json_t *delta = json_object();
    if (ev->content) json_object_set_new(delta, "content", json_stringn(ev->content, ev->content_len));
    if (ev->reasoning)
        json_object_set_new(delta, "reasoning_content", json_stringn(ev->reasoning, ev->reasoning_len));
    if (tools && json_array_size(tools)) json_object_set(delta, "tool_calls", tools);
    json_decref(tools);
    json_object_set_new(c, "delta", delta);
    return c;
}

static void stream_event(struct job *j, int index, const struct gen_event *ev)
{
    struct job_choice *ch = &j->ch[index];
    int has_text = ev->content_len || ev->reasoning_len || ev->n_tools;
    if (ev->kind == GEN_EV_TOKEN) {
        json_t *lp = NULL;
        lp_add(j, &lp, &ev->lp, &ch->text_offset);
        if (has_text || lp) sse(j, chunk(j, piece(j, index, ev, lp, NULL)));
        return;
    }
    ch->finish = ev->finish;
    if (has_text) sse(j, chunk(j, piece(j, index, ev, NULL, NULL)));
    if (ev->finish == GEN_FINISH_ERROR) {
        json_t *err = json_pack("{s:{s:s, s:s, s:n, s:n}}", "error", "message",
                                ev->error ? ev->error : "generation failed", "type", "server_error",
                                "param", "code");
        sse(j, err);
    }
    struct gen_event none = {0};
    sse(j, chunk(j, piece(j, index, &none, NULL, choice_finish(ch))));
}

/* Role chunks first, as OpenAI sends them: one per choice, delta {role, content ""}. */
static void stream_begin(struct job *j)
{
    if (!j->chat) return;
    for (int i = 0; i < j->n_prompts * j->n; i++) {
        json_t *c = json_pack("{s:i, s:{s:s, s:s}, s:n, s:n}", "index", i, "delta", "role",
                              "assistant", "content", "", "logprobs", "finish_reason");
        sse(j, chunk(j, c));
    }
}

static json_t *usage(const struct job *j)
{
    return json_pack("{s:i, s:i, s:i, s:{s:i}}", "prompt_tokens", j->prompt_tokens,
                     "completion_tokens", j->completion_tokens, "total_tokens",
                     j->prompt_tokens + j->completion_tokens, "prompt_tokens_details",
                     "cached_tokens", j->cached_tokens);
}

static void stream_end(struct job *j)
{
    if (j->include_usage) {
        json_t *c = chunk(j, NULL);
        json_object_set_new(c, "usage", usage(j));
        sse(j, c);
    }
    out_add(j, "data: [DONE]\n\n", 14);
    j->ended = 1;
}

/* ---- event handling ---------------------------------------------------------------------------- */

static void collect_event(struct job *j, int index, const struct gen_event *ev)
{
    struct job_choice *ch = &j->ch[index];
    append(&ch->content, &ch->n_content, ev->content, ev->content_len);
    append(&ch->reasoning, &ch->n_reasoning, ev->reasoning, ev->reasoning_len);
    collect_tools(ch, ev);
    if (ev->kind == GEN_EV_TOKEN) lp_add(j, &ch->lp, &ev->lp, &ch->text_offset);
    if (ev->kind == GEN_EV_FINISH) {
        ch->finish = ev->finish;
        if (ev->error) ch->error = strdup(ev->error);
    }
}

/* Takes every waiting event of every prompt; true when all prompts are done. */
static bool drain(struct job *j)
{
    struct gen_event ev;
    for (int k = 0; k < j->n_prompts; k++) {
        while (j->gens[k] && gen_poll(j->gens[k], &ev)) {
            int index = k * j->n + ev.choice;
            if (ev.kind == GEN_EV_TOKEN && !j->t_first) j->t_first = http_now();
            if (ev.kind == GEN_EV_DONE) {
                j->prompt_tokens += ev.prompt_tokens;
                j->completion_tokens += ev.completion_tokens;
                j->cached_tokens += ev.cached_tokens;
                gen_release(j->gens[k]);
                j->gens[k] = NULL;
                j->n_live--;
            } else if (j->stream) {
                stream_event(j, index, &ev);
            } else {
                collect_event(j, index, &ev);
            }
            gen_event_clear(&ev);
        }
    }
    return j->n_live == 0;
}

/* ---- the complete (non-streamed) reply ----------------------------------------------------- */

static json_t *choice_json(struct job *j, int index)
{
    struct job_choice *ch = &j->ch[index];
    json_t *c = json_pack("{s:i, s:o, s:s}", "index", index, "logprobs",
                          ch->lp ? json_incref(ch->lp) : json_null(), "finish_reason",
                          choice_finish(ch));
    if (!j->chat) {
        const char *echo = j->prompts[index / j->n].echo;
        char *text = NULL;
        size_t n = 0;
        if (echo) append(&text, &n, echo, strlen(echo));
        append(&text, &n, ch->content, ch->n_content);
        json_object_set_new(c, "text", json_stringn(text ? text : "", n));
        free(text);
        return c;
    }
    json_t *msg = json_pack("{s:s, s:s%}", "role", "assistant", "content",
                            ch->content ? ch->content : "", ch->n_content);
    if (ch->n_calls) { /* OpenAI: content is null when the reply is only calls */
        if (!ch->n_content) json_object_set_new(msg, "content", json_null());
        json_object_set_new(msg, "tool_calls", tool_calls_json(ch));
    }
    if (j->reasoning)
        json_object_set_new(msg, "reasoning_content",
                            ch->reasoning ? json_stringn(ch->reasoning, ch->n_reasoning) : json_null());
    json_object_set_new(c, "message", msg);
    return c;
}

static int reply_complete(struct job *j)
{
    j->status = 200;
    for (int i = 0; i < j->n_prompts * j->n; i++)
        if (j->ch[i].finish == GEN_FINISH_ERROR)
            return j->status = 500, http_reply_error(j->r, 500, "server_error", NULL, NULL, "%s",
                                    j->ch[i].error ? j->ch[i].error : "generation failed");
    json_t *doc = json_pack("{s:s, s:s, s:I, s:s, s:s, s:[], s:o}", "id", j->id, "object",
                            j->chat ? "chat.completion" : "text_completion", "created",
                            (json_int_t)j->created, "model", j->model, "system_fingerprint",
                            "seekd-" SEEKD_VERSION, "choices", "usage", usage(j));
    for (int i = 0; i < j->n_prompts * j->n; i++)
        json_array_append_new(json_object_get(doc, "choices"), choice_json(j, i));
    return api_reply_json(j->r, 200, doc);
}

/* ---- connection callbacks -------------------------------------------------------------------- */

static void cancel_all(struct job *j)
{
    for (int k = 0; k < j->n_prompts; k++)
        if (j->gens[k]) gen_cancel(j->gens[k]);
}

static int aborting(const struct job *j)
{
    return __atomic_load_n(&j->api->aborting, __ATOMIC_ACQUIRE);
}

static int timeout_reply(struct job *j)
{
    cancel_all(j);
    if (aborting(j)) {
        j->status = 503;
        return http_reply_error(j->r, 503, "server_error", NULL, "shutting_down",
                                "the server is shutting down");
    }
    j->status = 408;
    return http_reply_error(j->r, 408, "timeout_error", NULL, "request_timeout",
                            "the request did not finish within %g seconds", j->api->request_timeout_s);
}

/* Non-streamed: woken by the engine; reply when everything is done, else park again. */
static int job_resume(struct http_req *r)
{
    struct job *j = r->user;
    for (;;) {
        if (r->timed_out || aborting(j)) return timeout_reply(j);
        if (drain(j)) return reply_complete(j);
        if (http_suspend(r)) return 0;
    }
}

/* Cancels the engine work and queues an error event. */
static void stream_error(struct job *j, const char *msg, const char *type, const char *code)
{
    cancel_all(j);
    for (int i = 0; i < j->n_prompts * j->n; i++)
        if (!j->ch[i].finish) j->ch[i].finish = GEN_FINISH_ABORT;
    sse(j, json_pack("{s:{s:s, s:s, s:n, s:s}}", "error", "message", msg, "type", type, "param",
                     "code", code));
}

/* Streamed: hands out buffered SSE bytes; parks when none are ready. */
static ssize_t job_read(struct http_req *r, char *buf, size_t max)
{
    struct job *j = r->user;
    for (;;) {
        if (j->out_pos < j->n_out) {
            size_t n = j->n_out - j->out_pos < max ? j->n_out - j->out_pos : max;
            memcpy(buf, j->out + j->out_pos, n);
            j->out_pos += n;
            if (j->out_pos == j->n_out) j->out_pos = j->n_out = 0;
            return (ssize_t)n;
        }
        if (j->ended) return -1; /* MHD_CONTENT_READER_END_OF_STREAM */
        if (aborting(j)) { /* shutdown: the error is the last event, no [DONE] */
            stream_error(j, "the server is shutting down", "server_error", "shutting_down");
            j->ended = 1;
            continue;
        }
        if (r->timed_out) {
            stream_error(j, "request timed out", "timeout_error", "request_timeout");
            stream_end(j);
            continue;
        }
        if (drain(j)) {
            stream_end(j);
            continue;
        }
        if (j->n_out == 0 && http_suspend(r)) return 0;
    }
}

/* The access line: ids, counts and times only, never request text. */
static void log_job(const struct job *j, int client_gone)
{
    enum gen_finish f = j->ch[0].finish;
    double now = http_now();
    struct log_access a = {
        .id = j->id, .path = j->r->path, .status = j->status,
        .prompt_tokens = j->prompt_tokens, .completion_tokens = j->completion_tokens,
        .ttft_s = j->t_first ? j->t_first - j->t_start : -1, .duration_s = now - j->t_start,
        .finish = f ? finish_name(f) : client_gone ? "abort" : NULL,
    };
    log_access(j->api->log, &a);
}

static void job_close(struct http_req *r, int client_gone)
{
    log_job(r->user, client_gone);
    job_free(r->user);
    r->user = NULL;
}

/* ---- submission -------------------------------------------------------------------------------- */

static struct job *job_create(struct http_req *r, const struct api_params *p,
                              struct api_prompt *prompts, int n_prompts, int chat)
{
    struct job *j = xcalloc(1, sizeof *j);
    struct api *a = r->app;
    uint64_t rnd = 0;
    if (getrandom(&rnd, sizeof rnd, 0) != sizeof rnd) rnd = (uint64_t)(uintptr_t)j;
    *j = (struct job){.api = a, .r = r, .chat = chat, .stream = p->stream,
                      .include_usage = p->include_usage, .reasoning = p->gp.reasoning,
                      .tokens_as_ids = p->tokens_as_ids,
                      .sampling = p->gp.sampling, .n = p->gp.n, .n_prompts = n_prompts,
                      .prompts = prompts, .created = time(NULL), .t_start = http_now()};
    snprintf(j->id, sizeof j->id, "%s-%016llx", chat ? "chatcmpl" : "cmpl", (unsigned long long)rnd);
    const char *model = json_string_value(json_object_get(p->body, "model"));
    j->model = strdup(model ? model : a->names[0]);
    j->gens = xcalloc((size_t)n_prompts, sizeof *j->gens);
    j->ch = xcalloc((size_t)n_prompts * (size_t)p->gp.n, sizeof *j->ch);
    return j;
}

/* Submits every prompt; on refusal cancels what was submitted and replies 400 or 503. */
static int submit_all(struct job *j, struct api_params *p)
{
    struct err e = {{0}};
    for (int k = 0; k < j->n_prompts; k++) {
        int busy = 0;
        p->gp.prompt = j->prompts[k].ids;
        p->gp.n_prompt = j->prompts[k].n_ids;
        j->gens[k] = engine_submit(j->api->eng, &p->gp, job_notify, j->r, &busy, &e);
        if (j->gens[k]) {
            j->n_live++;
            continue;
        }
        j->status = busy ? 503 : 400;
        if (busy) {
            http_set_header(j->r, "Retry-After", "1");
            return http_reply_error(j->r, 503, "server_error", NULL, "server_busy", "%s", e.msg);
        }
        return api_bad(j->r, NULL, "%s", e.msg);
    }
    return 1;
}

int api_generate(struct http_req *r, struct api_params *p, struct api_prompt *prompts,
                 int n_prompts, int chat)
{
    struct job *j = job_create(r, p, prompts, n_prompts, chat);
    r->user = j;
    r->on_close = job_close;
    int rc = submit_all(j, p);
    if (rc <= 0) return rc;
    if (j->api->request_timeout_s > 0) r->deadline = http_now() + j->api->request_timeout_s;
    if (j->stream) {
        j->status = 200;
        r->on_read = job_read;
        stream_begin(j);
        if (p->echo && prompts[0].echo)
            for (int i = 0; i < n_prompts * j->n; i++) {
                struct gen_event ev = {.content = prompts[i / j->n].echo,
                                       .content_len = strlen(prompts[i / j->n].echo)};
                sse(j, chunk(j, piece(j, i, &ev, NULL, NULL)));
            }
        return http_stream(r, 200, "text/event-stream");
    }
    r->on_resume = job_resume;
    return job_resume(r);
}
