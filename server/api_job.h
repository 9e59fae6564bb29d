/* api_job: one generation job, shared by api_gen.c (submission, engine events, the SSE stream,
 * the connection's life) and api_reply.c (logprob entries and the complete reply, which is
 * written as the client reads it). Private to those two files. */
#ifndef SEEKD_API_JOB_H
#define SEEKD_API_JOB_H

#include "server/api.h"

/* A growable byte buffer whose growth may fail (a request's memory, never the process's). */
struct job_buf {
    char *s;
    size_t n, cap;
};

struct tool_call {
    char id[32];                /* call_<hex> */
    char *name;
    struct job_buf args;        /* non-streamed: the whole arguments text */
};

struct job_choice {
    struct job_buf content, reasoning; /* non-streamed replies accumulate here */
    struct smp_logprob *lp;     /* non-streamed logprobs, compact: per token the sampled one,
                                   then n_logprobs alternatives (token -1: none) */
    size_t n_lp, cap_lp;        /* entries */
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
    struct gen **gens;          /* [n_prompts]; released when the job ends */
    int *done;                  /* [n_prompts] its GEN_EV_DONE arrived */
    struct api_prompt *prompts;
    struct job_choice *ch;      /* [n_prompts * n] */
    int prompt_tokens, completion_tokens, cached_tokens;
    char id[48], *model;
    time_t created;
    struct job_buf out;         /* reply bytes not yet handed to the connection */
    size_t out_pos;
    int ended;                  /* the last bytes of the reply are in out */
    int oom;                    /* an allocation for this request failed: it ends with 503 */
    int status;                 /* HTTP status, for the access line */
    double t_start, t_first;    /* monotonic seconds: submitted, first token (0: none yet) */
    size_t *text_offset;        /* [n_prompts * n] streamed completions logprobs: where each
                                   choice's next token text starts */
    struct reply_writer *writer; /* the complete reply being written (api_reply.c) */
};

/* Appends n bytes; on allocation failure sets j->oom and drops them. */
void job_append(struct job *j, struct job_buf *b, const char *s, size_t n);
/* Copies up to max prepared bytes of j->out to buf; how many. */
size_t job_hand_out(struct job *j, char *buf, size_t max);
const char *job_finish_name(enum gen_finish f);
/* The finish_reason of a choice: "tool_calls" when it made calls and stopped on its own. */
const char *job_choice_finish(const struct job_choice *ch);
/* The calls of a complete reply, as message.tool_calls. */
json_t *job_tool_calls_json(const struct job_choice *ch);
void job_free_calls(struct job_choice *ch);
json_t *job_usage(const struct job *j);

/* ---- api_reply.c ------------------------------------------------------------------------- */

/* Bytes the reply keeps per generated token until it is written (admission counts them). */
size_t reply_bytes_per_token(const struct api *a, const struct api_params *p);
/* One token's logprobs as a streamed chunk carries them (NULL when logprobs are off). */
json_t *reply_lp_piece(struct job *j, const struct smp_result *r, size_t *text_offset);
/* Keeps one token's logprobs for the complete reply. */
void reply_lp_keep(struct job *j, struct job_choice *ch, const struct smp_result *r);
/* Starts the complete (non-streamed) reply: status 200, written as the client reads. */
int reply_complete(struct job *j);
void reply_free(struct job *j);

#endif
