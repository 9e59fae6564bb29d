/* gen: one generation request inside the engine — its copied parameters, the per-choice
 * sampling and detokenizing state, and the event queue the server drains.
 *
 * The engine thread creates it (engine_submit), feeds it tokens (gen_take_token) and endings
 * (gen_end_choice); the server polls events and releases it. Two references: the engine's,
 * dropped after GEN_EV_DONE, and the server's, dropped by gen_release. */
#ifndef SEEKD_GEN_H
#define SEEKD_GEN_H

#include <pthread.h>
#include <stdbool.h>

#include "engine/engine.h"

struct gen_node;

struct gen_choice {
    int64_t seq_id;
    struct smp_state *smp;
    struct tok_stream ts;
    struct tok_text hold;   /* decoded text not yet final: it may begin a stop string */
    int in_reasoning;
    int ended;
    enum gen_finish finish;
    int stopped_by_string;  /* the stop string and what followed it are dropped */
    int n_generated;
};

struct gen {
    pthread_mutex_t mu;
    int refs;
    uint64_t serial;
    struct gen_params p;    /* pointers below are owned copies */
    int32_t *prompt;
    char **stop;
    int32_t *stop_ids;      /* eos and the tokenizer's end-of-turn (unless ignore_eos) +
                             * stop_token_ids */
    int n_stop_ids;
    struct smp_bias *bias;
    int think_start, think_end; /* ids of <think> and </think>, or -1 */
    struct gen_choice *ch;  /* [p.n] */
    int n_ended;
    int cached_tokens;
    struct gen_node *head, *tail;
    void (*notify)(void *arg);
    void *arg;
    int cancel;             /* set by the server */
    int cancel_sent;        /* the engine has aborted the sequences */
    double t_arrival, t_scheduled, t_first_token, t_last_token; /* seconds, monotonic */
    struct gen *next;       /* the engine's list */
};

/* Copies the parameters; seeds each choice's sampler. NULL with a message on bad input. */
struct gen *gen_create(const struct gen_params *p, const struct tok *tok, int32_t n_vocab,
                       int32_t eos, struct err *e);

/* Records choice c's sampled token: text (stop strings, reasoning split), logprobs, event.
 * Returns true when a stop string ended the choice. */
bool gen_take_token(struct gen *g, int c, const struct smp_result *r);

/* Ends choice c (flushing held text unless a stop string ended it); after the last choice,
 * queues GEN_EV_DONE with the usage. */
void gen_end_choice(struct gen *g, int c, enum gen_finish why, const char *error);

/* Whether t ends the request (eos unless ignore_eos, or one of stop_token_ids). */
bool gen_is_stop_id(const struct gen *g, int32_t t);

/* Calls the server's notify callback if events are waiting. */
void gen_notify(struct gen *g);

/* Drops one reference; frees at zero. */
void gen_unref(struct gen *g);

/* Whether all choices ended. */
static inline bool gen_done(const struct gen *g)
{
    return g->n_ended == g->p.n;
}

#endif
