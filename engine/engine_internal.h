/* engine_internal: the engine's state, shared by engine.c (the engine thread and the life cycle)
 * and engine_submit.c (admission: requests checked, priced and handed to this engine or another
 * rank). Not for use outside those two files. */
#ifndef SEEKD_ENGINE_INTERNAL_H
#define SEEKD_ENGINE_INTERNAL_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#include "engine/engine.h"
#include "engine/metrics.h"
#include "engine/sched.h"

struct dp;
struct gv;
struct masker;
struct lockstep;
struct smp_cands;

struct engine {
    struct model *m;
    struct tok *tok;
    const struct backend_ops *bops;
    struct backend *be;         /* runs the model: weights, KV pool, step scratch */
    struct backend_stats be_start; /* the backend's stats once set up */
    enum numerics numerics;     /* the step arithmetic, AUTO resolved (backend_numerics) */
    struct sched *sched;
    struct sched_config scfg;
    int max_model_len;
    int max_queued;             /* choices waiting, at most */
    int64_t max_request_bytes;  /* per request (gen_cost); 0: no limit */
    int64_t budget_bytes;       /* all admitted requests together; 0: no limit */
    int64_t admitted_bytes;     /* what admitted requests may hold now (atomic; gen_unref gives back) */
    size_t max_text;            /* the longest text one token decodes to, bytes */
    int32_t eos;
    float *logits;              /* [max_num_seqs, vocab] */
    struct smp_cands *cands;    /* [max_num_seqs] the step's pre-filtered rows, or NULL: whole rows */
    int32_t *sampled;           /* [max_num_seqs] */
    bool *stopped;              /* [max_num_seqs] */
    struct gv *gv;              /* the vocabulary as a byte trie, for grammars */
    struct masker *masker;      /* computes a step's masks during the forward pass */
    uint64_t *masks;            /* [max_num_seqs, words] one step's grammar masks */
    int *job_of;                /* [max_num_seqs] mask job of each batch entry, -1: none */
    uint64_t *fork_mask;        /* [words] a sibling's first mask (n > 1) */
    pthread_t thread;
    int thread_started;
    pthread_mutex_t mu;         /* guards incoming, n_incoming, stop */
    pthread_cond_t cv;
    struct gen *incoming;       /* submitted, not yet handed to the scheduler */
    int n_incoming;
    int n_waiting;              /* scheduler's waiting count, for admission control */
    int stop;
    struct gen *live;           /* handed to the scheduler, not yet done */
    uint64_t next_serial;
    int64_t heartbeat_ns;       /* monotonic time of the last loop iteration */
    struct metrics metrics;
    int n_live_seqs;            /* sequences of submitted requests not yet ended (atomic) */
    struct dp *dp;              /* data parallelism, rank 0: routes to other ranks; else NULL */
    struct comm *tp;            /* tensor parallelism: the engine threads' communicator; NULL */
    struct comm *ep;            /* expert parallelism: the engine threads' communicator; NULL */
    int agreed;                 /* lockstep_agree done on tp or ep (every rank calls it once) */
    struct lockstep *follower;  /* tensor-parallel ranks 1..: rank 0's steps run here; NULL */
    char backend_note[320];     /* why auto's backend gave way to the CPU; "" */
};

static inline int64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static inline double now_s(void)
{
    return (double)now_ns() * 1e-9;
}

#endif
