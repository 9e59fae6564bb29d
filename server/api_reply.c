/* api_reply: logprob entries in the two OpenAI formats, and the complete (non-streamed) reply.
 *
 * A complete reply is never built whole: its choices are kept as text plus compact logprobs
 * (8 bytes per token and alternative) and written piece by piece as the client reads, each
 * choice freed once written. So a reply is held about once, not as text + JSON tree + dump +
 * copy, and a client that stops reading holds only what it has not been sent (until the idle
 * timeout closes it). Token texts that are not UTF-8 on their own are written as OpenAI writes
 * them, "bytes:\xe6\x98", with their real bytes in "bytes". */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/text/utf8.h"
#include "server/api_job.h"
#include "server/commands.h"

#define PIECE (64u << 10) /* reply bytes prepared per step */

enum stage { W_HEAD, W_OPEN, W_ECHO, W_TEXT, W_REASONING, W_LP, W_CLOSE, W_TAIL, W_DONE };

struct reply_writer {
    enum stage stage;
    int choice;                 /* the choice being written */
    size_t pos;                 /* bytes of the current text, or tokens of the current array */
    int array;                  /* completions logprobs: which of the four arrays */
    size_t offset;              /* completions logprobs: text_offset so far */
    char *tail;                 /* the envelope after "choices": [...] */
};

size_t reply_bytes_per_token(const struct api *a, const struct api_params *p)
{
    if (p->stream) return 0; /* written as it comes, STREAM_AHEAD at most */
    size_t lp = p->gp.sampling.logprobs ? sizeof(struct smp_logprob) * (1 + (size_t)p->gp.sampling.n_logprobs) : 0;
    return (a->max_token_text + lp) * 3 / 2; /* buffers grow by half: 1.5x what they hold */
}

/* ---- one token ----------------------------------------------------------------------------- */

/* The token's text for logprobs, and its bytes. */
static json_t *token_text(const struct job *j, int32_t id, json_t **bytes)
{
    size_t n;
    const uint8_t *b = tok_bytes(j->api->tok, id, &n);
    if (!b) b = (const uint8_t *)""; /* an id never assigned: an empty text */
    if (bytes) {
        *bytes = json_array();
        for (size_t i = 0; i < n; i++) json_array_append_new(*bytes, json_integer(b[i]));
    }
    if (j->tokens_as_ids) return json_sprintf("token_id:%d", id);
    if (utf8_valid_len(b, n) == n) return json_stringn((const char *)b, n);
    char esc[8 + 4 * 64];
    size_t k = (size_t)snprintf(esc, sizeof esc, "bytes:");
    for (size_t i = 0; i < n && k + 4 < sizeof esc; i++) k += (size_t)snprintf(esc + k, 5, "\\x%02x", b[i]);
    return json_stringn(esc, k);
}

static double finite_lp(float lp)
{
    return isfinite(lp) ? lp : -9999.0;
}

/* Chat format: {"token", "logprob", "bytes", "top_logprobs": [{"token", "logprob", "bytes"}]}. */
static json_t *chat_entry(const struct job *j, const struct smp_logprob *e, int n_top)
{
    json_t *bytes, *tok = token_text(j, e[0].token, &bytes), *top = json_array();
    for (int k = 1; k <= n_top && e[k].token >= 0; k++) {
        json_t *tb, *t = token_text(j, e[k].token, &tb);
        json_array_append_new(top, json_pack("{s:o, s:f, s:o}", "token", t, "logprob",
                                             finite_lp(e[k].logprob), "bytes", tb));
    }
    return json_pack("{s:o, s:f, s:o, s:o}", "token", tok, "logprob", finite_lp(e[0].logprob),
                     "bytes", bytes, "top_logprobs", top);
}

/* Completions format, one token's alternatives: {"text": logprob, ...}. */
static json_t *completion_top(const struct job *j, const struct smp_logprob *e, int n_top)
{
    json_t *top = json_object();
    for (int k = 1; k <= n_top && e[k].token >= 0; k++) {
        json_t *t = token_text(j, e[k].token, NULL);
        if (t) json_object_setn_new(top, json_string_value(t), json_string_length(t),
                                    json_real(finite_lp(e[k].logprob)));
        json_decref(t);
    }
    return top;
}

/* The compact form of r: the sampled token, then the alternatives asked for (-1: none). */
static void compact(const struct job *j, const struct smp_result *r, struct smp_logprob *e)
{
    e[0] = (struct smp_logprob){r->token, r->logprob};
    for (int k = 0; k < j->sampling.n_logprobs; k++)
        e[1 + k] = k < r->n_top ? r->top[k] : (struct smp_logprob){-1, 0};
}

json_t *reply_lp_piece(struct job *j, const struct smp_result *r, size_t *text_offset)
{
    struct smp_logprob e[1 + SMP_MAX_LOGPROBS];
    compact(j, r, e);
    if (j->chat) return json_pack("{s:[o]}", "content", chat_entry(j, e, j->sampling.n_logprobs));
    json_t *tok = token_text(j, r->token, NULL);
    size_t at = *text_offset;
    *text_offset += json_string_length(tok);
    return json_pack("{s:[o], s:[f], s:[o], s:[I]}", "tokens", tok, "token_logprobs",
                     finite_lp(r->logprob), "top_logprobs",
                     completion_top(j, e, j->sampling.n_logprobs), "text_offset", (json_int_t)at);
}

void reply_lp_keep(struct job *j, struct job_choice *ch, const struct smp_result *r)
{
    size_t stride = 1 + (size_t)j->sampling.n_logprobs;
    if (j->oom) return;
    if (ch->n_lp + stride > ch->cap_lp) {
        size_t cap = ch->cap_lp ? ch->cap_lp + ch->cap_lp / 2 + stride : 64 * stride;
        struct smp_logprob *grown = realloc(ch->lp, cap * sizeof *grown);
        if (!grown) {
            j->oom = 1;
            return;
        }
        ch->lp = grown;
        ch->cap_lp = cap;
    }
    compact(j, r, ch->lp + ch->n_lp);
    ch->n_lp += stride;
}

/* ---- writing the complete reply ---------------------------------------------------------- */

/* Appends a document's JSON text and frees it (NULL: the request is out of memory). */
static void put_json(struct job *j, json_t *doc)
{
    char *text = doc ? json_dumps(doc, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;
    json_decref(doc);
    if (!text) j->oom = 1;
    else job_append(j, &j->out, text, strlen(text));
    free(text);
}

static void put(struct job *j, const char *s)
{
    job_append(j, &j->out, s, strlen(s));
}

/* Appends the escaped inside of a JSON string for up to PIECE bytes of text from *pos, cut on a
 * character boundary. 1 when the text is all written. */
static int put_text_piece(struct job *j, const char *s, size_t n, size_t *pos)
{
    size_t end = *pos + PIECE < n ? *pos + PIECE : n;
    while (end < n && end > *pos && ((unsigned char)s[end] & 0xC0) == 0x80) end--;
    char *text = NULL;
    json_t *str = json_stringn(s + *pos, end - *pos);
    if (str) text = json_dumps(str, JSON_ENCODE_ANY);
    json_decref(str);
    if (!text) return j->oom = 1, 1;
    job_append(j, &j->out, text + 1, strlen(text) - 2); /* without the quotes */
    free(text);
    *pos = end;
    return end == n;
}

/* The envelope: everything but the choices; the text before them is written now. */
static void write_head(struct job *j, struct reply_writer *w)
{
    json_t *env = json_pack("{s:s, s:s, s:I, s:s, s:s, s:[], s:o}", "id", j->id, "object",
                            j->chat ? "chat.completion" : "text_completion", "created",
                            (json_int_t)j->created, "model", j->model, "system_fingerprint",
                            "seekd-" SEEKD_VERSION, "choices", "usage", job_usage(j));
    char *text = env ? json_dumps(env, JSON_COMPACT) : NULL;
    json_decref(env);
    /* the last occurrence is the key: in escaped string values a quote follows a backslash */
    char *cut = NULL;
    for (char *p = text; p && (p = strstr(p, "\"choices\":[]")); p++) cut = p;
    if (!cut) {
        free(text);
        j->oom = 1;
        return;
    }
    size_t head = (size_t)(cut - text) + strlen("\"choices\":[");
    job_append(j, &j->out, text, head);
    w->tail = strdup(cut + strlen("\"choices\":["));
    free(text);
    w->stage = W_OPEN;
}

/* Chat: the message's tool calls (whole: their arguments are bounded by max_tokens), then
 * the end of the message; the logprobs come next. */
static void end_message(struct job *j, struct reply_writer *w)
{
    struct job_choice *ch = &j->ch[w->choice];
    if (ch->n_calls) {
        put(j, ",\"tool_calls\":");
        put_json(j, job_tool_calls_json(ch));
    }
    put(j, "},\"logprobs\":");
    w->stage = W_LP;
    w->pos = 0;
}

/* After the answer: the reasoning text (chat with a reasoning template), then logprobs. */
static void after_content(struct job *j, struct reply_writer *w)
{
    struct job_choice *ch = &j->ch[w->choice];
    w->pos = 0;
    if (j->chat && j->reasoning && ch->reasoning.s) {
        put(j, ",\"reasoning_content\":\"");
        w->stage = W_REASONING;
        return;
    }
    if (j->chat && j->reasoning) put(j, ",\"reasoning_content\":null");
    if (j->chat) return end_message(j, w);
    put(j, ",\"logprobs\":");
    w->stage = W_LP;
}

static void end_text(struct job *j, struct reply_writer *w)
{
    put(j, "\"");
    after_content(j, w);
}

static void write_open(struct job *j, struct reply_writer *w)
{
    char s[64];
    snprintf(s, sizeof s, "%s{\"index\":%d,", w->choice ? "," : "", w->choice);
    put(j, s);
    w->pos = 0;
    const struct job_choice *ch = &j->ch[w->choice];
    if (j->chat && ch->n_calls && !ch->content.n) { /* OpenAI: null when the reply is only calls */
        put(j, "\"message\":{\"role\":\"assistant\",\"content\":null");
        after_content(j, w);
        return;
    }
    put(j, j->chat ? "\"message\":{\"role\":\"assistant\",\"content\":\"" : "\"text\":\"");
    w->stage = j->chat ? W_TEXT : W_ECHO;
}

/* Completions: the echoed prompt, then the answer; chat: the answer, then the reasoning. */
static void write_text(struct job *j, struct reply_writer *w)
{
    struct job_choice *ch = &j->ch[w->choice];
    const struct api_prompt *pr = &j->prompts[w->choice / j->n];
    if (w->stage == W_ECHO) {
        if (!pr->echo || put_text_piece(j, pr->echo, pr->n_echo, &w->pos)) w->stage = W_TEXT, w->pos = 0;
    } else if (w->stage == W_TEXT) {
        if (put_text_piece(j, ch->content.s ? ch->content.s : "", ch->content.n, &w->pos)) end_text(j, w);
    } else if (put_text_piece(j, ch->reasoning.s, ch->reasoning.n, &w->pos)) {
        put(j, "\"");
        end_message(j, w);
    }
}

static const char *const completion_arrays[] = {"tokens", "token_logprobs", "top_logprobs",
                                                "text_offset"};

/* One element of completions array a for the token whose entries start at e. */
static json_t *completion_element(struct job *j, struct reply_writer *w, const struct smp_logprob *e)
{
    if (w->array == 1) return json_real(finite_lp(e[0].logprob));
    if (w->array == 2) return completion_top(j, e, j->sampling.n_logprobs);
    json_t *tok = token_text(j, e[0].token, NULL);
    if (w->array == 0) return tok;
    size_t at = w->offset;
    w->offset += json_string_length(tok);
    json_decref(tok);
    return json_integer((json_int_t)at);
}

/* Logprobs: null, or the entries PIECE bytes at a time. */
static void write_lp(struct job *j, struct reply_writer *w)
{
    struct job_choice *ch = &j->ch[w->choice];
    size_t stride = 1 + (size_t)j->sampling.n_logprobs, n_tok = ch->n_lp / stride;
    if (!j->sampling.logprobs) {
        put(j, "null");
        w->stage = W_CLOSE;
        return;
    }
    if (w->pos == 0 && w->array == 0) put(j, j->chat ? "{\"content\":[" : "{");
    if (w->pos == 0 && !j->chat) put(j, w->array ? ",\"" : "\""), put(j, completion_arrays[w->array]), put(j, "\":[");
    size_t start = j->out.n;
    for (; w->pos < n_tok && j->out.n - start < PIECE && !j->oom; w->pos++) {
        const struct smp_logprob *e = ch->lp + w->pos * stride;
        if (w->pos) put(j, ",");
        put_json(j, j->chat ? chat_entry(j, e, j->sampling.n_logprobs) : completion_element(j, w, e));
    }
    if (w->pos < n_tok) return;
    put(j, "]");
    w->pos = 0;
    if (!j->chat && ++w->array < 4) return;
    put(j, "}");
    w->stage = W_CLOSE;
}

/* Closes the choice and frees what it held. */
static void write_close(struct job *j, struct reply_writer *w)
{
    struct job_choice *ch = &j->ch[w->choice];
    put(j, ",\"finish_reason\":\"");
    put(j, job_choice_finish(ch));
    put(j, "\"}");
    enum gen_finish finish = ch->finish; /* the access line still reports it */
    free(ch->content.s), free(ch->reasoning.s), free(ch->lp);
    job_free_calls(ch);
    memset(ch, 0, sizeof *ch);
    ch->finish = finish;
    *w = (struct reply_writer){.stage = ++w->choice < j->n_prompts * j->n ? W_OPEN : W_TAIL,
                               .choice = w->choice, .tail = w->tail};
}

/* Prepares the next piece of the reply in j->out. */
static void write_step(struct job *j, struct reply_writer *w)
{
    switch (w->stage) {
    case W_HEAD: write_head(j, w); break;
    case W_OPEN: write_open(j, w); break;
    case W_ECHO: case W_TEXT: case W_REASONING: write_text(j, w); break;
    case W_LP: write_lp(j, w); break;
    case W_CLOSE: write_close(j, w); break;
    case W_TAIL: /* "],\"usage\":...}" */
        put(j, w->tail);
        w->stage = W_DONE;
        j->ended = 1;
        break;
    case W_DONE: break;
    }
}

static ssize_t reply_read(struct http_req *r, char *buf, size_t max)
{
    struct job *j = r->user;
    while (j->out_pos == j->out.n && !j->ended && !j->oom) write_step(j, j->writer);
    if (j->oom) return HTTP_READ_ERROR; /* the status is sent: all that is left is to break off */
    if (j->out_pos < j->out.n) return (ssize_t)job_hand_out(j, buf, max);
    return HTTP_READ_END;
}

int reply_complete(struct job *j)
{
    j->status = 200;
    for (int i = 0; i < j->n_prompts * j->n; i++)
        if (j->ch[i].finish == GEN_FINISH_ERROR)
            return j->status = 500, http_reply_error(j->r, 500, HTTP_ERR_SERVER, NULL, NULL, "%s",
                                    j->ch[i].error ? j->ch[i].error : "generation failed");
    j->writer = xcalloc(1, sizeof *j->writer);
    j->out.n = j->out_pos = 0;
    j->r->on_read = reply_read;
    return http_stream(j->r, 200, "application/json");
}

void reply_free(struct job *j)
{
    if (j->writer) free(j->writer->tail);
    free(j->writer);
}
