/* dp: data parallelism across the ranks of an MPI job. Every rank runs a whole engine of its own
 * (scheduler, KV pool, backend, engine thread) and its own requests; rank 0 also runs the HTTP
 * server and the tokenizer, and routes each request to the rank with the least work.
 *
 * Two halves, one protocol over the control plane (comm_mpi_send / comm_mpi_poll, values as
 * struct wire):
 *
 *   rank 0: the router (dp_*), a thread of its own. engine_submit asks it which rank takes a
 *           request; for another rank it keeps a relay (gen_create_relay) whose events arrive
 *           from that rank, so the HTTP side polls, cancels and releases it like any request.
 *   rank r: the rank's loop (dp_rank_*, dp_rank.c), a thread of its own, which takes rank 0's
 *           requests into its engine and sends their events back.
 *
 *   DP_REQ     0 → r   id, gen_params
 *   DP_CANCEL  0 → r   id                       (the client went away)
 *   DP_EVENTS  r → 0   count, then (id, gen_event) for each
 *   DP_BEAT    0 ↔ r   every DP_BEAT_S: r → 0 also says whether its engine makes progress
 *                      and sends its metrics (for /metrics)
 *   DP_FAULT   r → 0   why rank r cannot go on
 *   DP_STOP    0 → r   stop serving (rank 0 drained, or failed)
 *
 * Failure: a rank that sends nothing for the silence limit (min(engine_stall_timeout,
 * DP_MAX_SILENCE_S)), whose engine stalls, or that reports a fault makes the whole job stop: the
 * half that notices records a message naming the rank, and the server logs it and aborts every
 * rank (comm_mpi_abort). A rank that dies outright is noticed by mpirun first, which ends the
 * job and names the rank itself. */
#ifndef SEEKD_DP_H
#define SEEKD_DP_H

#include <stddef.h>
#include <stdint.h>

#include "engine/comm_mpi.h"
#include "engine/engine.h"
#include "engine/metrics.h"

enum dp_tag { DP_REQ = 1, DP_CANCEL, DP_EVENTS, DP_BEAT, DP_FAULT, DP_STOP };

#define DP_BEAT_S        0.1  /* seconds between heartbeats */
#define DP_MAX_SILENCE_S 10.0 /* a rank silent this long is taken for dead or hung */

struct dp;
struct gen;

/* The silence limit for an engine_stall_timeout. */
double dp_silence_s(double stall_s);

/* ---- rank 0: the router --------------------------------------------------------------------- */

/* Starts the router over ranks 1..size-1 of w, of which the multiples of stride take requests
 * (the first rank of each tensor-parallel group; the others follow it, and send heartbeats). */
struct dp *dp_create(struct comm_mpi *w, double stall_s, int stride);
/* Tells every rank to stop, ends the requests still out with GEN_FINISH_ABORT, joins. */
void dp_destroy(struct dp *d);

/* The rank for a request of n_seqs sequences: the least loaded (live sequences; ties to the
 * lowest rank) among those whose queue is below max_queued. local_seqs and local_queued are
 * rank 0's own counts. -1 when every queue is full. A remote pick is counted at once: dp_send
 * must follow. */
int dp_route(struct dp *d, int local_seqs, int local_queued, int n_seqs, int max_queued);
/* Counts a request that rank 0 runs without a choice of rank (dp_routed). */
void dp_route_local(struct dp *d);
/* Hands a relay to the router, which sends msg (the encoded DP_REQ, taken) to rank. */
void dp_send(struct dp *d, int rank, struct gen *g, uint8_t *msg, size_t n);

/* Requests routed to each rank so far into out [max]; returns how many ranks were filled. */
int dp_routed(struct dp *d, int64_t *out, int max);

/* Adds the other ranks' latest metrics into sum. */
void dp_metrics_add(struct dp *d, struct metrics *sum);

/* 1 with the message when a rank failed (silent, stalled, faulted, an MPI error); else 0. */
int dp_fault(struct dp *d, char *msg, size_t n);

/* ---- ranks 1..: the rank's loop (dp_rank.c) ------------------------------------------------- */

struct dp_rank;

/* Starts serving rank 0's requests on eng. */
struct dp_rank *dp_rank_start(struct engine *eng, struct comm_mpi *w, double stall_s);
/* 0 while serving, 1 once rank 0 said stop, -1 with the message on a fault (rank 0 silent,
 * this engine stalled, an MPI error). */
int dp_rank_state(struct dp_rank *r, char *msg, size_t n);
/* Joins the loop; requests still running are cancelled. */
void dp_rank_destroy(struct dp_rank *r);

#endif
