/* lockstep: engines whose steps run together on several ranks.
 *
 * Tensor parallelism: rank 0's engine thread schedules each step and sends its plan
 * (engine/stepcast.h: the batch and the block copies) before running its part of the forward
 * pass; every other rank's engine thread follows: receive the plan, copy its blocks, run its
 * part, until a STOP plan. The forward's collectives (engine/cpu/shard.h) ride the same
 * communicator, so every rank meets them in the same order.
 *
 * Expert parallelism with data-parallel attention: every rank schedules its own requests, but
 * each MoE layer exchanges rows with every rank, so all run a step together: a round begins with
 * every rank saying whether it has work and whether it is stopping; when any has work, every rank
 * steps (one with nothing runs an empty step that serves the others' rows); when all are
 * stopping, all stop.
 *
 * A follower only ever waits in two places: for the next plan (idle, however long rank 0 has
 * no work) and inside a step (a collective: stalled when that lasts). lockstep_stalled_s tells
 * the two apart for the heartbeats that stop a job whose rank hangs. */
#ifndef SEEKD_LOCKSTEP_H
#define SEEKD_LOCKSTEP_H

#include <stdint.h>

#include "engine/backend.h"
#include "engine/comm.h"
#include "engine/err.h"

/* Every rank of c, once at start-up, also when it failed (ok 0): says whether its backend is up
 * and how many KV blocks it holds; *n_blocks becomes the smallest, which every rank's scheduler
 * and plans keep to (NULL: each keeps its own pool). -1 naming the first rank that failed (or
 * the transport error). */
int lockstep_agree(struct comm *c, int ok, int32_t *n_blocks, struct err *e);

/* One round of expert-parallel engines: *any_work when some rank has work (every rank then runs
 * one step), *all_stop when every rank is stopping. Waits for the others without holding a
 * core. */
int lockstep_round(struct comm *c, int has_work, int stopping, int *any_work, int *all_stop,
                   struct err *e);

/* Rank 0: the plan of a step (b may have no sequence when there are only copies). */
int lockstep_send(struct comm *c, const struct batch *b, int32_t block_size,
                  const struct kvb_copy *copies, int32_t n_copies, struct err *e);

/* Rank 0: the followers' loops end. */
int lockstep_stop(struct comm *c, struct err *e);

/* A follower's state; the loop runs on the rank's engine thread. */
struct lockstep {
    struct comm *c;
    const struct backend_ops *bops;
    struct backend *be;
    float *logits;          /* [max_logits, vocab]: this rank's copy of each step's logits */
    int64_t step_since_ns;  /* monotonic start of the step running now; 0 while waiting (atomic) */
    int failed;             /* the loop ended on an error (atomic) */
    struct err fault;       /* why, once failed */
};

/* Runs rank 0's steps until STOP (0) or an error (-1; failed set, fault says why). */
int lockstep_follow(struct lockstep *l);

/* Seconds the follower has been inside its current step (0 while it waits for a plan);
 * now_ns is CLOCK_MONOTONIC. */
double lockstep_stalled_s(const struct lockstep *l, int64_t now_ns);

#endif
