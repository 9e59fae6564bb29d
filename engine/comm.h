/* comm: the communicator interface — the collectives that the ranks splitting one model run
 * together, and the small host exchanges that keep them in step. The model code calls these
 * functions and never NCCL or MPI directly; implementations:
 *
 *   self   one rank: every collective is a copy (comm.c)
 *   mpi    CPU ranks under mpirun: MPI collectives on host memory (comm_mpi.c)
 *   nccl   GPU ranks: NCCL on device memory, bootstrapped over a host communicator
 *          (cuda/comm_nccl.c, built with CUDA=1)
 *
 * Contract, for every implementation:
 * - Every rank calls every collective of a communicator in the same order, with the same sizes
 *   where the sizes must agree (n, bytes, dtype), from one thread at a time.
 * - Results are bit-identical on every rank (replicated state such as the residual stream after
 *   an all-reduce, which feeds the MoE router, must never diverge between ranks).
 * - Data-plane buffers live where the backend keeps its activations (host memory for CPU ranks,
 *   device memory for GPU ranks); stream is the backend's stream (NULL on the host). A GPU
 *   implementation only enqueues: comm_sync waits. The host functions (exchange, broadcast)
 *   always take host memory and return when done.
 * - A count of zero is valid everywhere (a rank with nothing to contribute still takes part).
 * - Failures (a peer gone, a transport error) return -1 with a message naming the operation and
 *   the rank; the caller treats that as fatal for the whole job.
 *
 * Reductions support F32, BF16 and F16 (BF16/F16 are summed in float and rounded once per
 * partial sum). Byte-moving collectives are type-free. */
#ifndef SEEKD_COMM_H
#define SEEKD_COMM_H

#include <stddef.h>
#include <stdint.h>

#include "engine/err.h"
#include "engine/model/dtype.h"

struct comm;

struct comm_ops {
    const char *name; /* "self", "mpi", "nccl" */
    /* buf [n] of t on every rank becomes the elementwise sum over ranks, in place. */
    int (*allreduce_sum)(struct comm *c, void *buf, size_t n, enum dtype t, void *stream,
                         struct err *e);
    /* in [bytes] from every rank → out [size * bytes], rank r's at r * bytes. */
    int (*allgather)(struct comm *c, const void *in, void *out, size_t bytes, void *stream,
                     struct err *e);
    /* in [bytes[rank]] → out [sum of bytes], rank r's at the sum of bytes[0..r-1]; bytes [size]
     * is the same array on every rank (a vocabulary split that does not divide evenly). */
    int (*allgatherv)(struct comm *c, const void *in, void *out, const size_t *bytes, void *stream,
                      struct err *e);
    /* in [size * n] of t: the sum over ranks of in[r * n .. (r+1) * n) lands in out [n] of
     * rank r. */
    int (*reduce_scatter_sum)(struct comm *c, const void *in, void *out, size_t n, enum dtype t,
                              void *stream, struct err *e);
    /* in [size * bytes]: block p goes to rank p; out [size * bytes]: block p came from rank p. */
    int (*alltoall)(struct comm *c, const void *in, void *out, size_t bytes, void *stream,
                    struct err *e);
    /* The same with a size per peer: send[p] bytes to rank p (blocks back to back in in),
     * recv[p] bytes from rank p (back to back in out). recv[p] on this rank must equal send[me]
     * on rank p: exchange the counts first (comm_exchange). */
    int (*alltoallv)(struct comm *c, const void *in, const size_t *send, void *out,
                     const size_t *recv, void *stream, struct err *e);
    /* Host: mine [n] from every rank → all [size * n], rank r's at r * n. Also the barrier
     * that starts a lockstep step (token counts, the padded bucket = their max). */
    int (*exchange)(struct comm *c, const int64_t *mine, int n, int64_t *all, struct err *e);
    /* The same where ranks may wait long for each other (lockstep ranks with no work): they
     * wait without keeping a core busy. Every rank of one exchange uses the same form. NULL:
     * exchange. */
    int (*exchange_wait)(struct comm *c, const int64_t *mine, int n, int64_t *all, struct err *e);
    /* Host: root's buf [bytes] is copied into buf on every rank (a step's plan). */
    int (*broadcast)(struct comm *c, void *buf, size_t bytes, int root, struct err *e);
    /* The same where the other ranks may wait long for root (the next step's plan, while it has
     * no work): they wait without keeping a core busy. Every rank of one broadcast uses the same
     * form. NULL: broadcast. */
    int (*broadcast_wait)(struct comm *c, void *buf, size_t bytes, int root, struct err *e);
    /* Waits until the collectives enqueued on stream are done (GPU); a no-op on the host. */
    int (*sync)(struct comm *c, void *stream, struct err *e);
    void (*destroy)(struct comm *c);
};

/* The part every implementation shares; an implementation's struct begins with it. */
struct comm {
    const struct comm_ops *ops;
    int rank; /* 0 .. size-1 */
    int size;
    uint64_t n_ops; /* collectives started (read by other threads: stall reports) */
};

/* A communicator of one rank. */
struct comm *comm_self(void);

void comm_destroy(struct comm *c);

/* The calls, through c->ops; each counts in n_ops, so a stall report can say which collective
 * a rank is waiting in. */
int comm_allreduce_sum(struct comm *c, void *buf, size_t n, enum dtype t, void *stream,
                       struct err *e);
int comm_allgather(struct comm *c, const void *in, void *out, size_t bytes, void *stream,
                   struct err *e);
int comm_allgatherv(struct comm *c, const void *in, void *out, const size_t *bytes, void *stream,
                    struct err *e);
int comm_reduce_scatter_sum(struct comm *c, const void *in, void *out, size_t n, enum dtype t,
                            void *stream, struct err *e);
int comm_alltoall(struct comm *c, const void *in, void *out, size_t bytes, void *stream,
                  struct err *e);
int comm_alltoallv(struct comm *c, const void *in, const size_t *send, void *out,
                   const size_t *recv, void *stream, struct err *e);
int comm_exchange(struct comm *c, const int64_t *mine, int n, int64_t *all, struct err *e);
int comm_exchange_wait(struct comm *c, const int64_t *mine, int n, int64_t *all, struct err *e);
int comm_broadcast(struct comm *c, void *buf, size_t bytes, int root, struct err *e);
int comm_broadcast_wait(struct comm *c, void *buf, size_t bytes, int root, struct err *e);
int comm_sync(struct comm *c, void *stream, struct err *e);

/* Collectives started so far (any thread). */
uint64_t comm_n_ops(const struct comm *c);

/* Whether reductions support t (F32, BF16, F16). */
int comm_reducible(enum dtype t);

/* inout[i] += in[i] for n elements of t (BF16/F16 widened, added in float, rounded to nearest
 * even): the host reduction every host implementation uses. */
void comm_sum_into(void *inout, const void *in, size_t n, enum dtype t);

/* [lo, hi) of n items for rank of size: the first n % size ranks take one more (how a tensor-
 * parallel job splits experts, intermediate rows and vocabularies). */
void comm_split(int64_t n, int size, int rank, int64_t *lo, int64_t *hi);

/* Sum of the first k entries of a size array (the offset of block k). */
size_t comm_offset(const size_t *sizes, int k);

#endif
