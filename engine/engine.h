/* engine: the serving engine — a thread that owns the model, the KV cache and the scheduler,
 * and turns submitted generation requests into streams of events.
 *
 * Threading: engine_submit, gen_poll, gen_cancel and gen_release may be called from any thread
 * (the HTTP thread). Everything else in the engine runs on its own thread, which loops:
 * drain submissions and cancellations → schedule a step → run the model → sample → emit events.
 * After queueing events for a request the engine calls the request's notify callback (from the
 * engine thread), which the server uses to resume the suspended connection. */
#ifndef SEEKD_ENGINE_H
#define SEEKD_ENGINE_H

#include <stddef.h>
#include <stdint.h>

#include "engine/backend.h"
#include "engine/err.h"
#include "engine/grammar/grammar.h"
#include "engine/model/model.h"
#include "engine/sampler.h"
#include "engine/text/tokenizer.h"
#include "engine/text/toolcall.h"

struct engine;
struct gen;
struct gv;

struct engine_opts {
    const char *model_dir;
    const char *tokenizer_dir;  /* NULL or "": model_dir */
    int max_num_seqs;           /* sequences per step */
    int max_num_batched_tokens; /* tokens per step (prefill chunks + decode tokens) */
    int prefill_chunk;          /* prefill tokens per step beside decodes; 0: the backend's */
    int max_model_len;          /* 0: max_position_embeddings of the model (clamped to the KV
                                   pool); more than either is an error */
    int allow_long_max_model_len; /* 1: max_model_len may exceed the model's context */
    int block_size;             /* KV cache tokens per block */
    double kv_cache_memory;     /* bytes (> 1) or a fraction of free memory (<= 1) */
    int kv_cache_dtype;         /* DT_F32, DT_BF16, DT_F16, or -1: auto (f16 for a GGUF model on
                                 * the CPU, as llama.cpp keeps it; bf16 otherwise) */
    int enable_prefix_caching;
    int max_queued_requests;    /* admission bound: choices waiting beyond it are refused */
    int64_t max_request_memory; /* bytes one request may hold at most (gen_cost); 0: no limit */
    int64_t request_memory_budget; /* bytes all admitted requests may hold; 0: no limit */
    int threads;                /* CPU worker threads; 0: all cores */
    int huge_pages;             /* CPU: weights in anonymous huge pages (hm_move) */
    const struct backend_ops *backend; /* backend_select's choice; NULL: the CPU */
    int backend_auto;           /* that choice was auto's: a backend that does not run the model
                                 * gives way to the CPU (engine_backend_note says why) */
    enum numerics numerics;     /* arithmetic of a step (engine/backend.h); AUTO: backend_numerics
                                 * decides once the model is loaded */
    int cuda_graphs;            /* CUDA, fast numerics: decode steps replayed from graphs */
    struct comm *tp_comm;       /* tensor parallelism: every rank's engine thread talks on it
                                 * (engine/lockstep.h); rank 0 schedules, the others follow and
                                 * take no requests. NULL or one rank: none */
    struct comm *ep_comm;       /* expert parallelism with data-parallel ranks: the engine
                                 * threads step together in rounds (engine/lockstep.h), each on
                                 * its own requests. NULL or one rank: none */
    int sample_prefilter;       /* sample from pre-filtered rows where provably the same
                                 * (engine/sampler_cand.h), when the backend offers it */
    const int *devices;         /* GPUs the backend drives; n_devices 0: device 0 */
    int n_devices;
    const char *chat_template;  /* "auto", "deepseek-v3", "deepseek-r1" */
    const struct load_progress *progress; /* model load reports; NULL: none */
};

enum gen_finish { GEN_FINISH_NONE, GEN_FINISH_STOP, GEN_FINISH_LENGTH, GEN_FINISH_ABORT,
                  GEN_FINISH_ERROR };

/* What the engine reports for a request. */
enum gen_event_kind {
    GEN_EV_TOKEN,   /* one sampled token of one choice, and whatever text became final */
    GEN_EV_FINISH,  /* one choice ended: finish set (text held back for stop strings flushed) */
    GEN_EV_DONE,    /* every choice ended: usage set; the last event of a request */
};

struct gen_event {
    enum gen_event_kind kind;
    int choice;                 /* 0..n-1 */
    char *content;              /* new answer text (complete UTF-8), NULL when none */
    size_t content_len;
    char *reasoning;            /* new reasoning text (before </think>), NULL when none */
    size_t reasoning_len;
    int32_t token;              /* GEN_EV_TOKEN */
    struct smp_result lp;       /* GEN_EV_TOKEN with logprobs: the token's and the top ones */
    struct tc_delta *tools;     /* [n_tools] tool-call pieces that became final (TOKEN, FINISH) */
    int n_tools;
    enum gen_finish finish;     /* GEN_EV_FINISH */
    int n_tool_calls;           /* GEN_EV_FINISH: calls this choice made */
    char *error;                /* GEN_FINISH_ERROR: message */
    int prompt_tokens, completion_tokens, cached_tokens; /* GEN_EV_DONE */
};

/* A request: prompt, sampling and stopping. The server fills it from the JSON; checked by
 * engine_submit, which refuses what cannot run. */
struct gen_params {
    const int32_t *prompt;      /* token ids, copied by engine_submit */
    int n_prompt;
    int n;                      /* choices, 1..GEN_MAX_CHOICES */
    int max_tokens;             /* -1: up to the context limit */
    int ignore_eos;
    struct smp_params sampling; /* seed: choice i uses seed + i */
    const char *const *stop;    /* stop strings, matched across token boundaries, not emitted */
    int n_stop;
    const int32_t *stop_token_ids;
    int n_stop_token_ids;
    int skip_special_tokens;
    int reasoning;              /* split text at </think> into reasoning and content */
    size_t out_bytes_per_token; /* what the server keeps per generated token (admission) */
    /* Constrained decoding: each choice's output must match the grammar (after the reasoning,
     * when the text is split). Lazy: it applies only once the trigger (a token id, or a text)
     * has been generated freely, and starts right after it. engine_submit takes a reference. */
    struct gram *grammar;
    int32_t grammar_trigger;    /* -1: none */
    const char *grammar_trigger_text; /* NULL: none; copied */
    /* Tool calls are parsed out of the text in this format (TC_NONE: the text is content). */
    enum tc_format tool_format;
    int32_t tool_markers[TC_N_MARKERS]; /* TC_DEEPSEEK marker ids */
};

#define GEN_MAX_CHOICES 128
#define GEN_MAX_STOP 16

/* Loads the model and starts the engine thread. */
struct engine *engine_create(const struct engine_opts *o, struct err *e);

/* Stops the thread (in-flight requests end with GEN_FINISH_ABORT) and frees everything. */
void engine_destroy(struct engine *eng);

/* The tokenizer of the served model (read-only; any thread may use it). */
const struct tok *engine_tokenizer(const struct engine *eng);
/* The backend's name and what it held once set up (weights, KV pool, device), for the log. */
const char *engine_backend(const struct engine *eng, struct backend_stats *at_start);
/* The model's own sampling defaults (engine/model/gencfg.h). */
struct gen_defaults;
const struct gen_defaults *engine_gen_defaults(const struct engine *eng);
/* Why the backend auto chose gave way to the CPU for this model; "" when it did not. */
const char *engine_backend_note(const struct engine *eng);
/* The arithmetic the steps run: the engine_opts' numerics with AUTO resolved. */
enum numerics engine_numerics(const struct engine *eng);
/* The longest context (prompt + completion) a request may use. */
int engine_max_model_len(const struct engine *eng);
/* The context limits, for the start-up log: a max_model_len below model_context was clamped
 * to the KV pool (when not set explicitly). */
struct engine_limits {
    int max_model_len;          /* tokens a request may use */
    int model_context;          /* max_position_embeddings of the model */
    int64_t kv_tokens;          /* token slots in the KV pool */
};
void engine_limits(const struct engine *eng, struct engine_limits *out);
struct metrics;
/* A consistent copy of the engine's counters and histograms (engine/metrics.h). */
void engine_metrics(struct engine *eng, struct metrics *out);
/* 1 when the engine loop made progress (stepped or idled) within max_stall_s seconds. */
int engine_alive(const struct engine *eng, double max_stall_s);
/* Seconds since the engine loop last made progress. */
double engine_idle_s(const struct engine *eng);

struct comm_mpi;
/* Data parallelism, on rank 0 of an MPI job whose other ranks serve with dp_rank_start: from
 * now on engine_submit sends each request to the rank with the least work (this engine or
 * another rank's), /metrics sums every rank, and engine_fault reports a rank that went away.
 * min_blocks: the smallest KV pool of any rank (what a request must fit); stride: requests go
 * to the ranks that are multiples of it (tensor-parallel groups of that many ranks; 1: every
 * rank). Call before serving. */
void engine_start_router(struct engine *eng, struct comm_mpi *w, double stall_s,
                         int32_t min_blocks, int stride);
/* Data parallelism: requests routed to each rank so far into out [max]; the number of ranks
 * (0 without data parallelism). */
int engine_routed(struct engine *eng, int64_t *out, int max);
/* 1 with the message when another rank failed (the whole job must stop); 0 otherwise. */
int engine_fault(struct engine *eng, char *msg, size_t n);

/* The vocabulary trie constrained decoding walks (read-only; any thread may use it). */
const struct gv *engine_vocab(const struct engine *eng);

/* The most memory p can hold (bytes), as admission counts it; and the per-request limit. */
int64_t engine_request_bytes(const struct engine *eng, const struct gen_params *p);
int64_t engine_max_request_memory(const struct engine *eng);

/* Queues a request. Fails with a message when it can never run (prompt + max_tokens over the
 * context, its n choices over the KV pool, over max_request_memory: e->msg says the numbers), or
 * with *busy set to 1 when it cannot run now (the queue holds max_queued_requests choices, the
 * admitted requests hold request_memory_budget, or memory ran out).
 * notify(arg) is called on the engine thread whenever events are ready. */
struct gen *engine_submit(struct engine *eng, const struct gen_params *p,
                          void (*notify)(void *arg), void *arg, int *busy, struct err *e);

/* Pops the next event into ev (the caller frees it with gen_event_clear). 1: got one, 0: none. */
int gen_poll(struct gen *g, struct gen_event *ev);
void gen_event_clear(struct gen_event *ev);

/* Asks the engine to stop the request (client gone); its blocks are freed at the next step. */
void gen_cancel(struct gen *g);

/* The caller is done with the handle (after GEN_EV_DONE or after gen_cancel). */
void gen_release(struct gen *g);

#endif
