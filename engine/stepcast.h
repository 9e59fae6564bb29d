/* stepcast: a step's plan from the rank that schedules to every rank that must run the same
 * step — the batch (tokens, sequences, block tables) and the block copies to do before it, over
 * a host communicator (comm_broadcast). Tensor- and expert-parallel ranks run every step in
 * lockstep this way: rank 0's scheduler plans, the others follow; `seekd logits` under MPI uses
 * it today.
 *
 * Every rank of c calls it for every step, the root with the plan, the others to receive one.
 * A STOP plan ends the followers' loop. */
#ifndef SEEKD_STEPCAST_H
#define SEEKD_STEPCAST_H

#include "engine/batch.h"
#include "engine/comm.h"
#include "engine/err.h"
#include "engine/kv_blocks.h"
#include "engine/wire.h"

enum stepcast_kind { STEPCAST_STEP = 1, STEPCAST_STOP = 2 };

/* Root: sends the plan (b and the copies; NULL/0 for STOP) to every rank of c. */
int stepcast_send(struct comm *c, enum stepcast_kind kind, const struct batch *b,
                  int32_t block_size, const struct kvb_copy *copies, int32_t n_copies,
                  struct err *e);

/* The other ranks: the next plan into *out (free with wire_step_free). Returns its kind, or -1
 * with a message (a transport error, a malformed plan). */
int stepcast_recv(struct comm *c, int root, struct wire_step *out, struct err *e);

#endif
