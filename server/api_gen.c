/* api_gen: one generation job — submits each prompt to the engine, drains the engine's events
 * and answers the OpenAI way: an SSE stream of chunks ending in [DONE], or one JSON body
 * (api_reply.c). Choice i of prompt k has index k * n + i, as OpenAI numbers batched prompts.
 *
 * Memory: the engine admits a request only within its budgets (engine_submit), counting what
 * this file keeps per token (reply_bytes_per_token). A stream never converts more than
 * STREAM_AHEAD bytes of events ahead of the client: the rest wait, compact, in the engine's
 * queue. Every request-sized allocation here may fail; that ends the request (503), never the
 * process. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "server/api_job.h"
#include "server/commands.h"

#define STREAM_AHEAD (256u << 10) /* SSE bytes prepared ahead of the client, at most */

static void job_notify(void *arg)
{
    http_wake(arg);
}

void job_append(struct job *j, struct job_buf *b, const char *s, size_t n)
{
    if (!n || j->oom) return;
    if (b->n + n + 1 > b->cap) {
        size_t cap = b->cap ? b->cap : 256;
        while (cap < b->n + n + 1) cap += cap / 2;
        char *grown = realloc(b->s, cap);
        if (!grown) {
            j->oom = 1;
            return;
        }
        b->s = grown;
        b->cap = cap;
    }
    memcpy(b->s + b->n, s, n);
    b->n += n;
    b->s[b->n] = 0;
}

void job_free_calls(struct job_choice *ch)
{
    for (int k = 0; k < ch->n_calls; k++) free(ch->calls[k].name), free(ch->calls[k].args.s);
    free(ch->calls);
    ch->calls = NULL;
    ch->n_calls = 0;
}

static void job_free(struct job *j)
{
    for (int i = 0; i < j->n_prompts; i++) {
        if (j->gens[i] && !j->done[i]) gen_cancel(j->gens[i]);
        if (j->gens[i]) gen_release(j->gens[i]); /* gives the admitted memory back */
        free(j->prompts[i].ids);
        free(j->prompts[i].echo);
    }
    for (int i = 0; i < j->n_prompts * j->n; i++) {
        free(j->ch[i].content.s);
        free(j->ch[i].reasoning.s);
        free(j->ch[i].error);
        free(j->ch[i].lp);
        job_free_calls(&j->ch[i]);
    }
    reply_free(j);
    free(j->gens);
    free(j->done);
    free(j->prompts);
    free(j->ch);
    free(j->text_offset);
    free(j->model);
    free(j->out.s);
    free(j);
}

const char *job_finish_name(enum gen_finish f)
{
    switch (f) {
    case GEN_FINISH_STOP: return "stop";
    case GEN_FINISH_LENGTH: return "length";
    case GEN_FINISH_ABORT: return "abort";
    default: return "error";
    }
}

/* A choice that made tool calls and stopped on its own finished with "tool_calls". */
const char *job_choice_finish(const struct job_choice *ch)
{
    return ch->n_calls && ch->finish == GEN_FINISH_STOP ? "tool_calls" : job_finish_name(ch->finish);
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
static void collect_tools(struct job *j, struct job_choice *ch, const struct gen_event *ev)
{
    for (int i = 0; i < ev->n_tools; i++) {
        struct tool_call *c = call_of(ch, &ev->tools[i]);
        if (c) job_append(j, &c->args, ev->tools[i].args, ev->tools[i].n_args);
    }
}

json_t *job_tool_calls_json(const struct job_choice *ch)
{
    json_t *arr = json_array();
    for (int k = 0; k < ch->n_calls; k++) {
        const struct tool_call *c = &ch->calls[k];
        json_array_append_new(arr, json_pack("{s:s, s:s, s:{s:s, s:s%}}", "id", c->id, "type",
                                             "function", "function", "name", c->name, "arguments",
                                             c->args.s ? c->args.s : "", c->args.n));
    }
    return arr;
}

/* ---- streaming ------------------------------------------------------------------------------- */

/* Writes "data: <json>\n\n" and frees the document; a document jansson could not build (NULL)
 * becomes an error event rather than a crash. */
static void sse(struct job *j, json_t *doc)
{
    static const char broken[] = "{\"error\":{\"message\":\"internal error while building the "
                                 "event\",\"type\":\"server_error\",\"param\":null,\"code\":null}}";
    char *text = doc ? json_dumps(doc, JSON_COMPACT) : NULL;
    json_decref(doc);
    job_append(j, &j->out, "data: ", 6);
    if (text) job_append(j, &j->out, text, strlen(text));
    else job_append(j, &j->out, broken, sizeof broken - 1);
    job_append(j, &j->out, "\n\n", 2);
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
    int has_text = ev->content_len || ev->reasoning_len || ev->n_tools;
    if (ev->kind == GEN_EV_TOKEN) {
        json_t *lp = j->sampling.logprobs ? reply_lp_piece(j, &ev->lp, &j->text_offset[index]) : NULL;
        if (has_text || lp) sse(j, chunk(j, piece(j, index, ev, lp, NULL)));
        return;
    }
    j->ch[index].finish = ev->finish;
    if (has_text) sse(j, chunk(j, piece(j, index, ev, NULL, NULL)));
    if (ev->finish == GEN_FINISH_ERROR) {
        json_t *err = json_pack("{s:{s:s, s:s, s:n, s:n}}", "error", "message",
                                ev->error ? ev->error : "generation failed", "type", HTTP_ERR_SERVER,
                                "param", "code");
        sse(j, err);
    }
    struct gen_event none = {0};
    sse(j, chunk(j, piece(j, index, &none, NULL, job_choice_finish(&j->ch[index]))));
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

json_t *job_usage(const struct job *j)
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
        json_object_set_new(c, "usage", job_usage(j));
        sse(j, c);
    }
    job_append(j, &j->out, "data: [DONE]\n\n", 14);
    j->ended = 1;
}

/* ---- event handling ---------------------------------------------------------------------------- */

static void collect_event(struct job *j, int index, const struct gen_event *ev)
{
    struct job_choice *ch = &j->ch[index];
    job_append(j, &ch->content, ev->content, ev->content_len);
    job_append(j, &ch->reasoning, ev->reasoning, ev->reasoning_len);
    if (ev->kind == GEN_EV_TOKEN && j->sampling.logprobs) reply_lp_keep(j, ch, &ev->lp);
    collect_tools(j, ch, ev);
    if (ev->kind == GEN_EV_FINISH) {
        ch->finish = ev->finish;
        if (ev->error) ch->error = strdup(ev->error);
    }
}

static void take_event(struct job *j, int k, const struct gen_event *ev)
{
    int index = k * j->n + ev->choice;
    if (ev->kind == GEN_EV_TOKEN && !j->t_first) j->t_first = http_now();
    if (ev->kind == GEN_EV_DONE) {
        j->prompt_tokens += ev->prompt_tokens;
        j->completion_tokens += ev->completion_tokens;
        j->cached_tokens += ev->cached_tokens;
        j->done[k] = 1;
        j->n_live--;
    } else if (j->stream) {
        stream_event(j, index, ev);
    } else {
        collect_event(j, index, ev);
    }
}

/* Takes the waiting events of every prompt (a stream: until STREAM_AHEAD bytes are ready); true
 * when all prompts are done. */
static bool drain(struct job *j)
{
    struct gen_event ev;
    for (int k = 0; k < j->n_prompts; k++)
        while (!j->done[k] && !(j->stream && j->out.n >= STREAM_AHEAD) && gen_poll(j->gens[k], &ev)) {
            take_event(j, k, &ev);
            gen_event_clear(&ev);
        }
    return j->n_live == 0;
}

/* ---- connection callbacks -------------------------------------------------------------------- */

static void cancel_all(struct job *j)
{
    for (int k = 0; k < j->n_prompts; k++)
        if (!j->done[k]) gen_cancel(j->gens[k]);
}

static int aborting(const struct job *j)
{
    return __atomic_load_n(&j->api->aborting, __ATOMIC_ACQUIRE);
}

static int out_of_memory(struct job *j)
{
    cancel_all(j);
    j->status = 503;
    http_set_header(j->r, "Retry-After", "1");
    return http_reply_error(j->r, 503, HTTP_ERR_UNAVAILABLE, NULL, "out_of_memory",
                            "the server ran out of memory for this request");
}

static int timeout_reply(struct job *j)
{
    cancel_all(j);
    if (aborting(j)) {
        j->status = 503;
        return http_reply_error(j->r, 503, HTTP_ERR_UNAVAILABLE, NULL, "shutting_down",
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
        bool done = drain(j);
        if (j->oom) return out_of_memory(j);
        if (done) return reply_complete(j);
        if (http_suspend(r)) return 0;
    }
}

/* Cancels the engine work and queues an error event. */
static void stream_error(struct job *j, const char *msg, const char *type, const char *code)
{
    cancel_all(j);
    for (int i = 0; i < j->n_prompts * j->n; i++)
        if (!j->ch[i].finish) j->ch[i].finish = GEN_FINISH_ABORT;
    j->oom = 0; /* the error event itself is small: let it through */
    j->out.n = j->out_pos = 0;
    sse(j, json_pack("{s:{s:s, s:s, s:n, s:s}}", "error", "message", msg, "type", type, "param",
                     "code", code));
}

/* Hands out prepared bytes; 0 when none are left. */
size_t job_hand_out(struct job *j, char *buf, size_t max)
{
    size_t n = j->out.n - j->out_pos < max ? j->out.n - j->out_pos : max;
    memcpy(buf, j->out.s + j->out_pos, n);
    j->out_pos += n;
    if (j->out_pos == j->out.n) j->out_pos = j->out.n = 0;
    return n;
}

/* Streamed: hands out buffered SSE bytes; parks when none are ready. */
static ssize_t job_read(struct http_req *r, char *buf, size_t max)
{
    struct job *j = r->user;
    for (;;) {
        if (j->out_pos < j->out.n) return (ssize_t)job_hand_out(j, buf, max);
        if (j->ended) return HTTP_READ_END;
        if (aborting(j)) { /* shutdown: the error is the last event, no [DONE] */
            stream_error(j, "the server is shutting down", HTTP_ERR_UNAVAILABLE, "shutting_down");
            j->ended = 1;
            continue;
        }
        if (r->timed_out) {
            stream_error(j, "request timed out", "timeout_error", "request_timeout");
            stream_end(j);
            continue;
        }
        bool done = drain(j);
        if (j->oom) {
            stream_error(j, "the server ran out of memory for this request", HTTP_ERR_UNAVAILABLE,
                         "out_of_memory");
            j->ended = 1;
            continue;
        }
        if (done && j->out.n == 0) stream_end(j);
        if (j->out.n == 0 && !done && http_suspend(r)) return 0;
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
        .finish = f ? job_finish_name(f) : client_gone ? "abort" : NULL,
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
    j->done = xcalloc((size_t)n_prompts, sizeof *j->done);
    j->ch = xcalloc((size_t)n_prompts * (size_t)p->gp.n, sizeof *j->ch);
    j->text_offset = xcalloc((size_t)n_prompts * (size_t)p->gp.n, sizeof *j->text_offset);
    return j;
}

/* The whole request within max_request_memory: every prompt's share together. */
static int check_request_memory(struct job *j, struct api_params *p)
{
    struct engine *eng = j->api->eng;
    int64_t total = 0, limit = engine_max_request_memory(eng);
    struct gen_params gp = p->gp;
    for (int k = 0; k < j->n_prompts; k++) { /* a prompt over the context: the engine says so */
        int room = j->api->max_model_len - j->prompts[k].n_ids;
        gp.prompt = j->prompts[k].ids;
        gp.n_prompt = j->prompts[k].n_ids;
        gp.max_tokens = p->gp.max_tokens < 0 || p->gp.max_tokens > room ? room : p->gp.max_tokens;
        total += gp.max_tokens > 0 ? engine_request_bytes(eng, &gp) : 0;
    }
    if (!limit || total <= limit) return 0;
    const char *param = p->gp.sampling.n_logprobs ? (j->chat ? "top_logprobs" : "logprobs")
                        : p->gp.n > 1 ? "n" : "max_tokens";
    char mt[64];
    if (p->gp.max_tokens < 0) snprintf(mt, sizeof mt, "max_tokens unset: the rest of the context");
    else snprintf(mt, sizeof mt, "max_tokens=%d", p->gp.max_tokens);
    j->status = 400;
    http_reply_error(j->r, 400, HTTP_ERR_INVALID, param, "request_too_large",
                     "this request could hold %lld MiB (%d prompt%s, n=%d, %s%s), over the "
                     "server's max_request_memory of %lld MiB: lower n, max_tokens or "
                     "top_logprobs", (long long)(total >> 20), j->n_prompts,
                     j->n_prompts > 1 ? "s" : "", p->gp.n, mt,
                     p->gp.sampling.logprobs ? ", with logprobs" : "", (long long)(limit >> 20));
    return -1;
}

/* Submits every prompt; on refusal replies 400 or 503 (what was submitted is cancelled when the
 * job is freed). */
static int submit_all(struct job *j, struct api_params *p)
{
    struct err e = {0};
    if (check_request_memory(j, p) != 0) return 0;
    for (int k = 0; k < j->n_prompts; k++) {
        int busy = 0;
        p->gp.prompt = j->prompts[k].ids;
        p->gp.n_prompt = j->prompts[k].n_ids;
        j->gens[k] = engine_submit(j->api->eng, &p->gp, job_notify, j->r, &busy, &e);
        if (j->gens[k]) {
            j->n_live++;
            continue;
        }
        j->done[k] = 1;
        j->status = busy ? 503 : 400;
        if (busy) {
            http_set_header(j->r, "Retry-After", "1");
            return http_reply_error(j->r, 503, HTTP_ERR_UNAVAILABLE, NULL, "server_busy", "%s", e.msg);
        }
        return http_reply_error(j->r, 400, HTTP_ERR_INVALID, NULL, NULL, "%s", e.msg);
    }
    return 1;
}

int api_generate(struct http_req *r, struct api_params *p, struct api_prompt *prompts,
                 int n_prompts, int chat)
{
    struct job *j = job_create(r, p, prompts, n_prompts, chat);
    r->user = j;
    r->on_close = job_close;
    p->gp.out_bytes_per_token = reply_bytes_per_token(j->api, p);
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
                                       .content_len = prompts[i / j->n].n_echo};
                sse(j, chunk(j, piece(j, i, &ev, NULL, NULL)));
            }
        return http_stream(r, 200, "text/event-stream");
    }
    r->on_resume = job_resume;
    return job_resume(r);
}
