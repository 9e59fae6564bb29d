/* comm_mpi: this process as one rank of an MPI job (Open MPI, launched by mpirun, Slurm or the
 * Kubernetes MPI operator) — start-up, communicators whose collectives run over MPI (struct
 * comm), the control plane's host messages between ranks, and the end of the job.
 *
 * Threads: MPI runs with MPI_THREAD_MULTIPLE. Each communicator made here belongs to one thread
 * at a time (its collectives are ordered by that thread on every rank); the control plane has a
 * communicator of its own and belongs to one thread per process (the data-parallel router or a
 * rank's serving loop), so control messages flow while a step's collectives run.
 *
 * Errors: the communicators return errors (MPI_ERRORS_RETURN) instead of MPI's default abort,
 * so every failure becomes a message naming the operation and this rank; the caller logs it and
 * ends the job with comm_mpi_abort. */
#ifndef SEEKD_COMM_MPI_H
#define SEEKD_COMM_MPI_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "engine/comm.h"
#include "engine/err.h"

struct comm_mpi;

/* Whether this process was started as an MPI rank (Open MPI's or PMIx's environment). Reads
 * the environment only: a plain launch never calls into MPI. */
bool comm_mpi_launched(void);

/* MPI_Init_thread with MPI_THREAD_MULTIPLE. NULL with a message when MPI cannot start or lacks
 * thread support. Call once, from the main thread, before any other call here. */
struct comm_mpi *comm_mpi_init(struct err *e);

int comm_mpi_rank(const struct comm_mpi *w);
int comm_mpi_size(const struct comm_mpi *w);
/* This rank's index among the ranks on its machine (0 .. ranks there - 1): which GPU it takes. */
int comm_mpi_local_rank(const struct comm_mpi *w);
/* The host this rank runs on (MPI_Get_processor_name), for log lines. */
const char *comm_mpi_host(const struct comm_mpi *w);

/* A communicator of the ranks that pass the same color, ordered by key (MPI_Comm_split): the
 * whole world (color 0, key = rank), or a tensor-parallel group. Collective over the world.
 * Destroy it (comm_destroy) before comm_mpi_finalize. */
struct comm *comm_mpi_split(struct comm_mpi *w, int color, int key, struct err *e);

/* ---- the control plane: tagged host messages between ranks ----------------------------------- */

struct comm_mpi_msg {
    int src;       /* sender's rank */
    int tag;       /* the caller's message kind, 0..32767 */
    uint8_t *data; /* [n], malloc'd: the receiver frees it */
    size_t n;
};

/* Queues data [n] (malloc'd; taken, freed once sent) to rank dst. Never waits for the receiver,
 * so two ranks sending to each other cannot deadlock. */
int comm_mpi_send(struct comm_mpi *w, int dst, int tag, void *data, size_t n, struct err *e);

/* Completes finished sends, then takes the next message that has arrived from any rank:
 * 1 with *m filled, 0 when none is waiting, -1 with a message on an MPI error. */
int comm_mpi_poll(struct comm_mpi *w, struct comm_mpi_msg *m, struct err *e);

/* Waits up to timeout_s for every queued send to complete; -1 with a message otherwise. */
int comm_mpi_flush(struct comm_mpi *w, double timeout_s, struct err *e);

/* ---- the end -------------------------------------------------------------------------------- */

/* MPI_Finalize (every rank calls it; it waits for the others) and frees w. */
void comm_mpi_finalize(struct comm_mpi *w);

/* Ends the whole job now: every rank is killed and mpirun exits with code. Log why first. */
void comm_mpi_abort(struct comm_mpi *w, int code) __attribute__((noreturn));

#endif
