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
#include "engine/grammar/match.h"

struct gen_node;

/* Where a choice stands with its grammar. */
enum gen_grammar_phase {
    GP_OFF,       /* no grammar */
    GP_REASONING, /* free until </think> */
    GP_TRIGGER,   /* free until the trigger token or text */
    GP_ACTIVE,    /* every token masked by the matcher */
};

struct gen_choice {
    int64_t seq_id;
    struct smp_state *smp;
    struct tok_stream ts;
    struct tok_text hold;   /* decoded text not yet final: it may begin a stop string */
    struct tok_text piece;  /* scratch: the text of the current token */
    int in_reasoning;
    int ended;
    enum gen_finish finish;
    int stopped_by_string;  /* the stop string and what followed it are dropped */
    int n_generated;
    enum gen_grammar_phase gphase;
    struct gm *gm;          /* the matcher, once the grammar applies */
    struct tok_text trig;   /* raw bytes watched for the trigger text */
    struct tc_parser tc;    /* tool calls in the output (fmt TC_NONE: off) */
    char *error;            /* why the grammar ended the choice */
};

/* What a token did to its choice. */
enum gen_take { GEN_GO_ON = 0, GEN_STOPPED, GEN_FAILED };

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
    char *trigger_text;     /* copy of p.grammar_trigger_text */
    const struct gv *gv;    /* the vocabulary the grammar is matched against */
    int think_start, think_end; /* ids of <think> and </think>, or -1 */
    struct gen_choice *ch;  /* [p.n] */
    int n_ended;
    int done_queued;        /* GEN_EV_DONE is in the queue (or was taken) */
    int cached_tokens;
    struct gen_node *head, *tail;
    void (*notify)(void *arg);
    void *arg;
    int cancel;             /* set by the server */
    int cancel_sent;        /* the engine has aborted the sequences */
    double t_arrival, t_scheduled, t_first_token, t_last_token; /* seconds, monotonic */
    int64_t cost;           /* bytes admitted for this request (gen_cost) */
    int64_t *ledger;        /* the engine's admitted total; cost is given back when freed */
    struct gen *next;       /* the engine's list */
};

/* Copies the parameters (a reference to the grammar); seeds each choice's sampler and makes its
 * matcher. gv: the vocabulary trie (may be NULL without a grammar). NULL with a message on bad
 * input. */
struct gen *gen_create(const struct gen_params *p, const struct tok *tok, const struct gv *gv,
                       int32_t n_vocab, int32_t eos, struct err *e);

/* The most memory a request can hold, in bytes: per choice its sampler and text state, per
 * generated token a queued event (max_text: the longest token text) or what the server keeps of
 * it (p->out_bytes_per_token), whichever is larger. Admission counts it against the budgets. */
int64_t gen_cost(const struct gen_params *p, int32_t n_vocab, size_t max_text);

/* A request whose choices run on another rank (data parallelism): the same parameters and event
 * queue, no samplers; its events arrive through gen_relay. */
struct gen *gen_create_relay(const struct gen_params *p, const struct tok *tok, int32_t eos);

/* Queues an event another rank produced for this request and keeps the choice bookkeeping
 * (tokens counted, choices ended) so that a local abort ends only what is still open. Takes
 * the event's strings; events after the request is done are dropped. */
void gen_relay(struct gen *g, struct gen_event *ev);
/* Ends a relayed request here (the other rank is gone or the service stops): every open choice
 * ends with GEN_FINISH_ABORT, then GEN_EV_DONE unless it was queued already. */
void gen_abort_relay(struct gen *g);

/* Records choice c's sampled token: the grammar's state, text (tool calls, stop strings,
 * reasoning split), logprobs, event. GEN_STOPPED when a stop string or a complete grammar ends
 * the choice; GEN_FAILED when the grammar refused the token (ch[c].error says why). */
enum gen_take gen_take_token(struct gen *g, int c, const struct smp_result *r);

/* The matcher whose mask applies to choice c's next token, or NULL (unconstrained now). */
struct gm *gen_matcher(const struct gen *g, int c);

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
