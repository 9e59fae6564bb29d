/* api: the OpenAI-compatible endpoints — request JSON in, engine requests, JSON or SSE out.
 *
 * Everything that reads request JSON lives in server/api_*.c: api_json (typed field access that
 * answers 400 with the offending param), api_params (sampling fields → struct gen_params),
 * api_gen (a generation job: submit, drain events, stream or reply), api_routes (the handlers
 * and the route table). */
#ifndef SEEKD_API_H
#define SEEKD_API_H

#include <jansson.h>
#include <time.h>

#include "engine/text/chat.h"
#include "engine/engine.h"
#include "engine/grammar/cache.h"
#include "engine/model/gencfg.h"
#include "server/api_compile.h"
#include "server/http.h"
#include "server/log.h"

/* Shared by every handler; read-only after start-up except eng, ready, draining and aborting
 * (atomics, set by serve.c). */
struct api {
    struct engine *eng;         /* NULL until the model is loaded */
    const struct tok *tok;
    struct log *log;            /* access lines and errors */
    int ready;                  /* 1 once loaded and warmed up */
    int draining;               /* 1 after SIGTERM: refuse new work */
    int aborting;               /* 1 after a second signal: end every stream with an error now */
    const char *const *names;   /* served model names; names[0] is the reported id */
    const struct chat *chat;    /* the chat template */
    struct gcache *grammars;    /* compiled grammars of recent requests, by schema text */
    struct api_compiler *compiler; /* compiles grammars off the event loop (NULL: inline) */
    time_t created;
    int max_model_len;
    double request_timeout_s;   /* 0: none */
    int default_max_tokens;     /* when a request sets none; 0: chat the rest, completions 16 */
    struct gen_defaults sampling; /* what a request that sets none samples with (has_*: set);
                                   * all unset: OpenAI's defaults */
    double stall_s;             /* /health turns 503 when the engine loop stalls this long */
    size_t max_token_text;      /* the longest text one token can decode to, bytes */
    int public_metrics;         /* 1: /metrics needs no API key */
};

/* The routes to serve: every endpoint, and the chat page at / when webui is set. */
const struct http_route *api_route_table(int webui, int *n);

/* ---- api_json: typed access to request fields; on a bad value they reply 400 and return -1 -- */

json_t *api_parse_body(struct http_req *r);   /* NULL after replying 400 */
int api_bad(struct http_req *r, const char *param, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
int api_get_bool(struct http_req *r, json_t *o, const char *key, int dflt, int *out);
int api_get_int(struct http_req *r, json_t *o, const char *key, long lo, long hi, long dflt,
                long *out);
int api_get_num(struct http_req *r, json_t *o, const char *key, double lo, double hi,
                double dflt, double *out);
/* A string or null (dflt); the pointer stays valid while o lives. */
int api_get_str(struct http_req *r, json_t *o, const char *key, const char *dflt,
                const char **out);
/* Replies with a JSON document and frees it. */
int api_reply_json(struct http_req *r, int status, json_t *doc);
/* The model field: one of the served names, else 404 model_not_found. */
int api_check_model(struct http_req *r, json_t *body);
/* 503 while loading, draining, or while the engine loop is stalled. */
int api_check_ready(struct http_req *r);
/* 503 while loading only. */
int api_check_loaded(struct http_req *r);

/* ---- api_params: the sampling fields shared by chat and completions ----------------------- */

struct api_params {
    struct gen_params gp;       /* gp.grammar: a reference p owns (api_params_release) */
    struct smp_bias bias[300];
    const char *stop[GEN_MAX_STOP];
    int32_t stop_ids[64];
    int stream, include_usage, echo;
    int tokens_as_ids;          /* logprobs name tokens "token_id:N" (vLLM's flag) */
    json_t *body;               /* the request (for the model name) */
    struct chat_tool *tools;    /* [n_tools] chat: the functions, for the prompt */
    int n_tools;
    char **tool_texts;          /* [n_tools] the parameters' JSON text behind tools */
    struct compile_job *compiling; /* the grammar being compiled (api_params_wait), or NULL */
    const char *compiling_param;   /* the param its errors name */
};

/* Fills p from the body (chat: max_completion_tokens too). -1 after replying 400.
 * p keeps pointers into body: body must outlive p. Release p with api_params_release. */
int api_read_params(struct http_req *r, json_t *body, int chat, struct api_params *p);
void api_params_release(struct api_params *p);

/* ---- api_structured: response_format, structured_outputs, guided_*, tools -------------------- */

/* Reads the output constraints into p->gp (grammar, trigger, tool format) and, for chat, the
 * tools into p->tools. -1 after replying (400 naming the param; 503 when too many grammars are
 * compiling). A grammar not compiled before is queued for the compile thread: p->compiling is
 * then set, and api_params_wait waits for it (on an HTTP worker, never the event loop). */
int api_read_structured(struct http_req *r, json_t *body, int chat, struct api_params *p);
/* Waits for the grammar being compiled, if any. 0: p->gp.grammar is ready; -1: it failed to
 * compile (400 replied). */
int api_params_wait(struct http_req *r, struct api_params *p);

/* ---- api_chat: messages → prompt ids through the chat template ------------------------------ */

/* Reads messages (+ add_generation_prompt) and renders the template, with the tools (may be
 * none), into ids. *reasoning (may be NULL) is set when the template opened a reasoning block.
 * -1 after replying 400. */
int api_chat_prompt(struct http_req *r, json_t *body, const struct chat_tool *tools, int n_tools,
                    struct tok_ids *ids, int *reasoning);

/* GET /metrics (api_metrics.c). */
int api_metrics(struct http_req *r);

/* ---- api_gen: one generation job over one or more prompts -------------------------------- */

struct api_prompt {
    int32_t *ids;
    int n_ids;
    char *echo;                 /* completions echo: the prompt text */
    size_t n_echo;              /* its bytes (it may hold NULs) */
};

/* Submits every prompt and answers: an SSE stream or, when all is done, one JSON body.
 * Takes ownership of prompts. */
int api_generate(struct http_req *r, struct api_params *p, struct api_prompt *prompts,
                 int n_prompts, int chat);

#endif
