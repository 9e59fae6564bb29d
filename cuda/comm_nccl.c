/* comm_nccl: NCCL collectives behind struct comm — one communicator per GPU rank, created from
 * a unique id that rank 0 broadcasts over the host communicator.
 *
 * Collectives are enqueued on the caller's stream and return at once; comm_sync waits, polling
 * the stream and NCCL's asynchronous error so that a peer that fails or never arrives ends in
 * ncclCommAbort and a message, never a hang. The variable-size collectives are grouped
 * point-to-point calls (ncclBroadcast per rank, ncclSend/ncclRecv per peer), which allow a rank
 * to contribute nothing. */
#include "cuda/comm_nccl.h"

#include <cuda_runtime.h>
#include <nccl.h>
#include <stdlib.h>
#include <time.h>

struct nccl_comm {
    struct comm base;
    struct comm *host; /* the caller's: the id at start, the host exchanges */
    ncclComm_t nc;
    int device;
    double timeout_s;
};

static struct nccl_comm *nc_of(struct comm *c)
{
    return (struct nccl_comm *)c;
}

/* -1 with "what (rank r): NCCL's message" unless rc is ncclSuccess. */
static int nccl_check(ncclResult_t rc, ncclComm_t nc, int rank, const char *what, struct err *e)
{
    if (rc == ncclSuccess) return 0;
    const char *last = ncclGetLastError(nc);
    return err_set(e, "%s (rank %d): %s%s%s", what, rank, ncclGetErrorString(rc),
                   last && *last ? ": " : "", last ? last : "");
}

/* The same for a call on x's communicator. */
static int x_check(ncclResult_t rc, struct nccl_comm *x, const char *what, struct err *e)
{
    return nccl_check(rc, x->nc, x->base.rank, what, e);
}

static int cuda_check(cudaError_t rc, int rank, const char *what, struct err *e)
{
    if (rc == cudaSuccess) return 0;
    return err_set(e, "%s (rank %d): %s", what, rank, cudaGetErrorString(rc));
}

static ncclDataType_t nccl_type(enum dtype t)
{
    return t == DT_F32 ? ncclFloat32 : t == DT_BF16 ? ncclBfloat16 : ncclFloat16;
}

/* ---- collectives ---------------------------------------------------------------------------- */

static int nc_allreduce(struct comm *c, void *buf, size_t n, enum dtype t, void *stream,
                        struct err *e)
{
    struct nccl_comm *x = nc_of(c);
    return x_check(ncclAllReduce(buf, buf, n, nccl_type(t), ncclSum, x->nc, stream), x,
                   "all-reduce", e);
}

static int nc_allgather(struct comm *c, const void *in, void *out, size_t bytes, void *stream,
                        struct err *e)
{
    struct nccl_comm *x = nc_of(c);
    return x_check(ncclAllGather(in, out, bytes, ncclUint8, x->nc, stream), x, "all-gather", e);
}

static int nc_allgatherv(struct comm *c, const void *in, void *out, const size_t *bytes,
                         void *stream, struct err *e)
{
    struct nccl_comm *x = nc_of(c);
    ncclResult_t rc = ncclGroupStart();
    for (int r = 0; r < c->size && rc == ncclSuccess; r++)
        if (bytes[r])
            rc = ncclBroadcast(in, (char *)out + comm_offset(bytes, r), bytes[r], ncclUint8, r,
                               x->nc, stream);
    ncclResult_t end = ncclGroupEnd();
    return x_check(rc != ncclSuccess ? rc : end, x, "all-gather", e);
}

static int nc_reduce_scatter(struct comm *c, const void *in, void *out, size_t n, enum dtype t,
                             void *stream, struct err *e)
{
    struct nccl_comm *x = nc_of(c);
    return x_check(ncclReduceScatter(in, out, n, nccl_type(t), ncclSum, x->nc, stream), x,
                   "reduce-scatter", e);
}

static int nc_alltoall(struct comm *c, const void *in, void *out, size_t bytes, void *stream,
                       struct err *e)
{
    struct nccl_comm *x = nc_of(c);
    return x_check(ncclAlltoAll(in, out, bytes, ncclUint8, x->nc, stream), x, "all-to-all", e);
}

static int nc_alltoallv(struct comm *c, const void *in, const size_t *send, void *out,
                        const size_t *recv, void *stream, struct err *e)
{
    struct nccl_comm *x = nc_of(c);
    ncclResult_t rc = ncclGroupStart();
    for (int p = 0; p < c->size && rc == ncclSuccess; p++) {
        if (send[p])
            rc = ncclSend((const char *)in + comm_offset(send, p), send[p], ncclUint8, p, x->nc,
                          stream);
        if (recv[p] && rc == ncclSuccess)
            rc = ncclRecv((char *)out + comm_offset(recv, p), recv[p], ncclUint8, p, x->nc, stream);
    }
    ncclResult_t end = ncclGroupEnd();
    return x_check(rc != ncclSuccess ? rc : end, x, "all-to-all", e);
}

static int nc_exchange(struct comm *c, const int64_t *mine, int n, int64_t *all, struct err *e)
{
    return comm_exchange(nc_of(c)->host, mine, n, all, e);
}

static int nc_exchange_wait(struct comm *c, const int64_t *mine, int n, int64_t *all, struct err *e)
{
    return comm_exchange_wait(nc_of(c)->host, mine, n, all, e);
}

static int nc_broadcast(struct comm *c, void *buf, size_t bytes, int root, struct err *e)
{
    return comm_broadcast(nc_of(c)->host, buf, bytes, root, e);
}

static int nc_broadcast_wait(struct comm *c, void *buf, size_t bytes, int root, struct err *e)
{
    return comm_broadcast_wait(nc_of(c)->host, buf, bytes, root, e);
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* Waits for the stream, watching NCCL's asynchronous error and the deadline. */
static int nc_sync(struct comm *c, void *stream, struct err *e)
{
    struct nccl_comm *x = nc_of(c);
    const struct timespec nap = {0, 20 * 1000};
    double deadline = now_s() + x->timeout_s;
    for (;;) {
        cudaError_t q = cudaStreamQuery(stream);
        if (q == cudaSuccess) return 0;
        if (q != cudaErrorNotReady) return cuda_check(q, c->rank, "collective", e);
        ncclResult_t async = ncclSuccess;
        if (x_check(ncclCommGetAsyncError(x->nc, &async), x, "collective", e) != 0 ||
            x_check(async, x, "collective", e) != 0) {
            ncclCommAbort(x->nc);
            x->nc = NULL;
            return -1;
        }
        if (now_s() > deadline) {
            ncclCommAbort(x->nc);
            x->nc = NULL;
            return err_set(e,
                           "rank %d: collectives did not complete within %gs (a peer stalled "
                           "or died)",
                           c->rank, x->timeout_s);
        }
        nanosleep(&nap, NULL);
    }
}

static void nc_destroy(struct comm *c)
{
    struct nccl_comm *x = nc_of(c);
    if (x->nc) ncclCommDestroy(x->nc);
    free(x);
}

static const struct comm_ops nccl_ops = {
    .name = "nccl",
    .allreduce_sum = nc_allreduce,
    .allgather = nc_allgather,
    .allgatherv = nc_allgatherv,
    .reduce_scatter_sum = nc_reduce_scatter,
    .alltoall = nc_alltoall,
    .alltoallv = nc_alltoallv,
    .exchange = nc_exchange,
    .exchange_wait = nc_exchange_wait,
    .broadcast = nc_broadcast,
    .broadcast_wait = nc_broadcast_wait,
    .sync = nc_sync,
    .destroy = nc_destroy,
};

struct comm *comm_nccl_create(struct comm *host, int device, double timeout_s, struct err *e)
{
    ncclUniqueId id = {{0}};
    int rank = host->rank, ok = cuda_check(cudaSetDevice(device), rank, "cudaSetDevice", e) == 0;
    if (ok && rank == 0) ok = nccl_check(ncclGetUniqueId(&id), NULL, 0, "ncclGetUniqueId", e) == 0;
    /* Every rank says first whether its device is ready, so that a failure on one rank ends
     * every rank's call with a message instead of leaving the others waiting for it. */
    int64_t mine = ok, *all = xcalloc((size_t)host->size, sizeof *all);
    struct err he;
    if (comm_exchange(host, &mine, 1, all, &he) != 0) ok = 0, *e = he;
    for (int r = 0; r < host->size && ok; r++)
        if (!all[r]) ok = 0, err_set(e, "rank %d could not join the NCCL communicator", r);
    free(all);
    if (ok && comm_broadcast(host, &id, sizeof id, 0, e) != 0) ok = 0;
    if (!ok) return NULL;
    struct nccl_comm *x = xcalloc(1, sizeof *x);
    *x = (struct nccl_comm){.base = {.ops = &nccl_ops, .rank = rank, .size = host->size},
                            .host = host,
                            .device = device,
                            .timeout_s = timeout_s};
    ncclResult_t rc = ncclCommInitRank(&x->nc, host->size, id, rank);
    if (nccl_check(rc, NULL, rank, "ncclCommInitRank", e) != 0) {
        free(x);
        return NULL;
    }
    return &x->base;
}
