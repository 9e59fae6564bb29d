/* comm_nccl: struct comm (engine/comm.h) over NCCL, for ranks that each drive one GPU. The
 * unique id that joins the ranks travels over a host communicator (MPI across processes, or
 * comm_self for a single rank); the host exchanges of the interface go through it too.
 * Built only with CUDA=1. */
#ifndef SEEKD_COMM_NCCL_H
#define SEEKD_COMM_NCCL_H

#include "engine/comm.h"
#include "engine/err.h"

/* Joins every rank of host into one NCCL communicator on this rank's GPU (device). host stays
 * the caller's and must outlive the result. comm_sync waits for the collectives of a stream at
 * most timeout_s seconds; past that (a stalled or failed peer) the communicator is aborted and
 * comm_sync fails naming this rank. Collective over host. NULL with a message. */
struct comm *comm_nccl_create(struct comm *host, int device, double timeout_s, struct err *e);

#endif
