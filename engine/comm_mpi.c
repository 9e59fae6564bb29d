/* comm_mpi: MPI start-up and end, struct comm over MPI collectives, and the control plane's
 * non-blocking point-to-point messages. The only engine file that includes mpi.h.
 *
 * BF16 and F16 sums are MPI operations of our own (widen, add in float, round), created once at
 * start-up. Counts above MPI's int limit are split into pieces where the layout allows it
 * (all-reduce, broadcast) and refused with a message elsewhere. */
#include "engine/comm_mpi.h"

#include <limits.h>
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

struct pending_send {
    MPI_Request req;
    void *data;
};

struct comm_mpi {
    int rank, size;
    int local_rank;              /* among the ranks sharing this machine */
    char host[MPI_MAX_PROCESSOR_NAME + 1];
    MPI_Op sum_bf16, sum_f16;   /* our reductions for the 16-bit float types */
    MPI_Comm ctl;               /* the control plane's communicator */
    struct pending_send *sends; /* [n_sends] control messages on their way */
    int n_sends, cap_sends;
};

/* A communicator over MPI: struct comm first, so a struct comm * is one of these. */
struct mpi_comm {
    struct comm base;
    struct comm_mpi *w;
    MPI_Comm mc;
};

/* Pieces of this many elements at most: well inside MPI's int counts. */
#define PIECE ((size_t)1 << 30)

/* ---- errors --------------------------------------------------------------------------------- */

/* -1 with "what (rank r): MPI's message" unless rc is MPI_SUCCESS. */
static int mpi_check(int rc, const char *what, int rank, struct err *e)
{
    if (rc == MPI_SUCCESS) return 0;
    char text[MPI_MAX_ERROR_STRING];
    int len = 0;
    if (MPI_Error_string(rc, text, &len) != MPI_SUCCESS)
        snprintf(text, sizeof text, "error %d", rc);
    if (rank < 0) return err_set(e, "%s: %s", what, text);
    return err_set(e, "%s (rank %d): %s", what, rank, text);
}

static int count_ok(size_t n, const char *what, int rank, struct err *e)
{
    if (n <= INT_MAX) return 0;
    return err_set(e, "%s (rank %d): %zu bytes exceed MPI's count limit of %d", what, rank, n,
                   INT_MAX);
}

/* ---- reductions ----------------------------------------------------------------------------- */

static void sum_bf16(void *in, void *inout, int *len, MPI_Datatype *type)
{
    comm_sum_into(inout, in, (size_t)*len, DT_BF16);
}

static void sum_f16(void *in, void *inout, int *len, MPI_Datatype *type)
{
    comm_sum_into(inout, in, (size_t)*len, DT_F16);
}

/* The MPI element type and sum operation for t. */
static void reduction_of(const struct comm_mpi *w, enum dtype t, MPI_Datatype *type, MPI_Op *op)
{
    *type = t == DT_F32 ? MPI_FLOAT : MPI_UINT16_T;
    *op = t == DT_F32 ? MPI_SUM : t == DT_BF16 ? w->sum_bf16 : w->sum_f16;
}

/* ---- collectives ---------------------------------------------------------------------------- */

static struct mpi_comm *mc_of(struct comm *c)
{
    return (struct mpi_comm *)c;
}

static int mpi_allreduce(struct comm *c, void *buf, size_t n, enum dtype t, void *stream,
                         struct err *e)
{
    struct mpi_comm *m = mc_of(c);
    MPI_Datatype type;
    MPI_Op op;
    reduction_of(m->w, t, &type, &op);
    for (size_t off = 0; off < n; off += PIECE) {
        size_t k = n - off < PIECE ? n - off : PIECE;
        int rc =
            MPI_Allreduce(MPI_IN_PLACE, (char *)buf + off * dtype_size(t), (int)k, type, op, m->mc);
        if (mpi_check(rc, "all-reduce", c->rank, e) != 0) return -1;
    }
    return 0;
}

static int mpi_allgather(struct comm *c, const void *in, void *out, size_t bytes, void *stream,
                         struct err *e)
{
    if (count_ok(bytes, "all-gather", c->rank, e) != 0) return -1;
    int rc = MPI_Allgather(in, (int)bytes, MPI_BYTE, out, (int)bytes, MPI_BYTE, mc_of(c)->mc);
    return mpi_check(rc, "all-gather", c->rank, e);
}

/* int counts and displacements of per-rank byte sizes; -1 when one does not fit an int. */
static int int_layout(const struct comm *c, const size_t *bytes, int *counts, int *displs,
                      const char *what, struct err *e)
{
    size_t off = 0;
    for (int r = 0; r < c->size; r++) {
        if (count_ok(bytes[r], what, c->rank, e) != 0 || count_ok(off, what, c->rank, e) != 0)
            return -1;
        counts[r] = (int)bytes[r];
        displs[r] = (int)off;
        off += bytes[r];
    }
    return 0;
}

static int mpi_allgatherv(struct comm *c, const void *in, void *out, const size_t *bytes,
                          void *stream, struct err *e)
{
    int *counts = xmalloc(2 * (size_t)c->size * sizeof *counts), *displs = counts + c->size;
    int rc = int_layout(c, bytes, counts, displs, "all-gather", e);
    if (rc == 0) {
        rc = MPI_Allgatherv(in, counts[c->rank], MPI_BYTE, out, counts, displs, MPI_BYTE,
                            mc_of(c)->mc);
        rc = mpi_check(rc, "all-gather", c->rank, e);
    }
    free(counts);
    return rc;
}

static int mpi_reduce_scatter(struct comm *c, const void *in, void *out, size_t n, enum dtype t,
                              void *stream, struct err *e)
{
    struct mpi_comm *m = mc_of(c);
    MPI_Datatype type;
    MPI_Op op;
    if (count_ok(n, "reduce-scatter", c->rank, e) != 0) return -1;
    reduction_of(m->w, t, &type, &op);
    int rc = MPI_Reduce_scatter_block(in, out, (int)n, type, op, m->mc);
    return mpi_check(rc, "reduce-scatter", c->rank, e);
}

static int mpi_alltoall(struct comm *c, const void *in, void *out, size_t bytes, void *stream,
                        struct err *e)
{
    if (count_ok(bytes, "all-to-all", c->rank, e) != 0) return -1;
    int rc = MPI_Alltoall(in, (int)bytes, MPI_BYTE, out, (int)bytes, MPI_BYTE, mc_of(c)->mc);
    return mpi_check(rc, "all-to-all", c->rank, e);
}

static int mpi_alltoallv(struct comm *c, const void *in, const size_t *send, void *out,
                         const size_t *recv, void *stream, struct err *e)
{
    size_t n = (size_t)c->size;
    int *v = xmalloc(4 * n * sizeof *v);
    int rc = int_layout(c, send, v, v + n, "all-to-all", e);
    if (rc == 0) rc = int_layout(c, recv, v + 2 * n, v + 3 * n, "all-to-all", e);
    if (rc == 0) {
        rc = MPI_Alltoallv(in, v, v + n, MPI_BYTE, out, v + 2 * n, v + 3 * n, MPI_BYTE,
                           mc_of(c)->mc);
        rc = mpi_check(rc, "all-to-all", c->rank, e);
    }
    free(v);
    return rc;
}

static int mpi_exchange(struct comm *c, const int64_t *mine, int n, int64_t *all, struct err *e)
{
    int rc = MPI_Allgather(mine, n, MPI_INT64_T, all, n, MPI_INT64_T, mc_of(c)->mc);
    return mpi_check(rc, "exchange", c->rank, e);
}

static int mpi_broadcast(struct comm *c, void *buf, size_t bytes, int root, struct err *e)
{
    for (size_t off = 0; off < bytes; off += PIECE) {
        size_t k = bytes - off < PIECE ? bytes - off : PIECE;
        int rc = MPI_Bcast((char *)buf + off, (int)k, MPI_BYTE, root, mc_of(c)->mc);
        if (mpi_check(rc, "broadcast", c->rank, e) != 0) return -1;
    }
    return 0;
}

/* Waits for a nonblocking collective without holding a core: tests back to back for the first
 * millisecond (lockstep work follows at once while there is some), then naps of 0.2 ms, 2 ms
 * once idle for 0.1 s. */
static int wait_politely(MPI_Request *req)
{
    struct timespec t0, t, nap = {0, 0};
    int rc, done = 0;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    while (!(rc = MPI_Test(req, &done, MPI_STATUS_IGNORE)) && !done) {
        clock_gettime(CLOCK_MONOTONIC, &t);
        long waited = (t.tv_sec - t0.tv_sec) * 1000000000L + (t.tv_nsec - t0.tv_nsec);
        nap.tv_nsec = waited > 100000000L ? 2000000L : 200000L;
        if (waited > 1000000L) nanosleep(&nap, NULL);
    }
    return rc;
}

/* MPI_Ibcast waited for politely: a rank waiting for the next step's plan keeps no core busy, as
 * a blocking broadcast (which spins) would. */
static int mpi_broadcast_wait(struct comm *c, void *buf, size_t bytes, int root, struct err *e)
{
    for (size_t off = 0; off < bytes; off += PIECE) {
        size_t k = bytes - off < PIECE ? bytes - off : PIECE;
        MPI_Request req;
        int rc = MPI_Ibcast((char *)buf + off, (int)k, MPI_BYTE, root, mc_of(c)->mc, &req);
        if (rc == MPI_SUCCESS) rc = wait_politely(&req);
        if (mpi_check(rc, "broadcast", c->rank, e) != 0) return -1;
    }
    return 0;
}

static int mpi_exchange_wait(struct comm *c, const int64_t *mine, int n, int64_t *all, struct err *e)
{
    MPI_Request req;
    int rc = MPI_Iallgather(mine, n, MPI_INT64_T, all, n, MPI_INT64_T, mc_of(c)->mc, &req);
    if (rc == MPI_SUCCESS) rc = wait_politely(&req);
    return mpi_check(rc, "exchange", c->rank, e);
}

static int mpi_sync(struct comm *c, void *stream, struct err *e)
{
    return 0; /* host collectives are done when they return */
}

static void mpi_destroy(struct comm *c)
{
    struct mpi_comm *m = mc_of(c);
    MPI_Comm_free(&m->mc);
    free(m);
}

static const struct comm_ops mpi_ops = {
    .name = "mpi",
    .allreduce_sum = mpi_allreduce,
    .allgather = mpi_allgather,
    .allgatherv = mpi_allgatherv,
    .reduce_scatter_sum = mpi_reduce_scatter,
    .alltoall = mpi_alltoall,
    .alltoallv = mpi_alltoallv,
    .exchange = mpi_exchange,
    .exchange_wait = mpi_exchange_wait,
    .broadcast = mpi_broadcast,
    .broadcast_wait = mpi_broadcast_wait,
    .sync = mpi_sync,
    .destroy = mpi_destroy,
};

struct comm *comm_mpi_split(struct comm_mpi *w, int color, int key, struct err *e)
{
    MPI_Comm mc;
    int rc = MPI_Comm_split(MPI_COMM_WORLD, color, key, &mc);
    if (mpi_check(rc, "communicator split", w->rank, e) != 0) return NULL;
    MPI_Comm_set_errhandler(mc, MPI_ERRORS_RETURN);
    struct mpi_comm *m = xcalloc(1, sizeof *m);
    m->w = w;
    m->mc = mc;
    m->base.ops = &mpi_ops;
    MPI_Comm_rank(mc, &m->base.rank);
    MPI_Comm_size(mc, &m->base.size);
    return &m->base;
}

/* ---- start-up and end ----------------------------------------------------------------------- */

bool comm_mpi_launched(void)
{
    static const char *const vars[] = {"OMPI_COMM_WORLD_SIZE", "PMIX_RANK", "PMI_RANK"};
    for (size_t i = 0; i < sizeof vars / sizeof vars[0]; i++)
        if (getenv(vars[i])) return true;
    return false;
}

struct comm_mpi *comm_mpi_init(struct err *e)
{
    int provided = 0, argc = 0, len = 0;
    char **argv = NULL;
    if (mpi_check(MPI_Init_thread(&argc, &argv, MPI_THREAD_MULTIPLE, &provided), "MPI_Init", -1,
                  e) != 0)
        return NULL;
    if (provided < MPI_THREAD_MULTIPLE) {
        err_set(e, "the MPI library does not provide MPI_THREAD_MULTIPLE (got level %d)", provided);
        MPI_Finalize();
        return NULL;
    }
    struct comm_mpi *w = xcalloc(1, sizeof *w);
    MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_RETURN);
    MPI_Comm_rank(MPI_COMM_WORLD, &w->rank);
    MPI_Comm_size(MPI_COMM_WORLD, &w->size);
    MPI_Get_processor_name(w->host, &len);
    MPI_Comm node;
    MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, w->rank, MPI_INFO_NULL, &node);
    MPI_Comm_rank(node, &w->local_rank);
    MPI_Comm_free(&node);
    MPI_Op_create(sum_bf16, 1, &w->sum_bf16);
    MPI_Op_create(sum_f16, 1, &w->sum_f16);
    MPI_Comm_dup(MPI_COMM_WORLD, &w->ctl);
    MPI_Comm_set_errhandler(w->ctl, MPI_ERRORS_RETURN);
    return w;
}

int comm_mpi_rank(const struct comm_mpi *w)
{
    return w->rank;
}

int comm_mpi_size(const struct comm_mpi *w)
{
    return w->size;
}

int comm_mpi_local_rank(const struct comm_mpi *w)
{
    return w->local_rank;
}

const char *comm_mpi_host(const struct comm_mpi *w)
{
    return w->host;
}

void comm_mpi_finalize(struct comm_mpi *w)
{
    struct err e;
    if (!w) return;
    if (comm_mpi_flush(w, 10, &e) != 0) /* a peer that stopped receiving: take the messages back */
        for (int i = 0; i < w->n_sends; i++) {
            MPI_Cancel(&w->sends[i].req);
            MPI_Wait(&w->sends[i].req, MPI_STATUS_IGNORE);
            free(w->sends[i].data);
        }
    free(w->sends);
    MPI_Comm_free(&w->ctl);
    MPI_Op_free(&w->sum_bf16);
    MPI_Op_free(&w->sum_f16);
    MPI_Finalize();
    free(w);
}

void comm_mpi_abort(struct comm_mpi *w, int code)
{
    MPI_Abort(MPI_COMM_WORLD, code);
    abort(); /* MPI_Abort does not return; this is for the compiler */
}

/* ---- the control plane ---------------------------------------------------------------------- */

int comm_mpi_send(struct comm_mpi *w, int dst, int tag, void *data, size_t n, struct err *e)
{
    if (count_ok(n, "control message", w->rank, e) != 0) return free(data), -1;
    if (w->n_sends == w->cap_sends) {
        w->cap_sends = w->cap_sends ? 2 * w->cap_sends : 16;
        w->sends = xrealloc(w->sends, (size_t)w->cap_sends * sizeof *w->sends);
    }
    struct pending_send *s = &w->sends[w->n_sends];
    int rc = MPI_Isend(data, (int)n, MPI_BYTE, dst, tag, w->ctl, &s->req);
    if (mpi_check(rc, "control message", w->rank, e) != 0) return free(data), -1;
    s->data = data;
    w->n_sends++;
    return 0;
}

/* Frees the sends that have completed; -1 on an MPI error. */
static int reap_sends(struct comm_mpi *w, struct err *e)
{
    for (int i = 0; i < w->n_sends;) {
        int done = 0;
        int rc = MPI_Test(&w->sends[i].req, &done, MPI_STATUS_IGNORE);
        if (mpi_check(rc, "control message", w->rank, e) != 0) return -1;
        if (!done) {
            i++;
            continue;
        }
        free(w->sends[i].data);
        w->sends[i] = w->sends[--w->n_sends];
    }
    return 0;
}

int comm_mpi_poll(struct comm_mpi *w, struct comm_mpi_msg *m, struct err *e)
{
    int flag = 0, count = 0;
    MPI_Message msg;
    MPI_Status st;
    if (reap_sends(w, e) != 0) return -1;
    int rc = MPI_Improbe(MPI_ANY_SOURCE, MPI_ANY_TAG, w->ctl, &flag, &msg, &st);
    if (mpi_check(rc, "control receive", w->rank, e) != 0) return -1;
    if (!flag) return 0;
    MPI_Get_count(&st, MPI_BYTE, &count);
    *m = (struct comm_mpi_msg){.src = st.MPI_SOURCE, .tag = st.MPI_TAG, .n = (size_t)count};
    m->data = xmalloc(m->n ? m->n : 1);
    rc = MPI_Mrecv(m->data, count, MPI_BYTE, &msg, MPI_STATUS_IGNORE);
    if (mpi_check(rc, "control receive", w->rank, e) != 0) return free(m->data), -1;
    return 1;
}

int comm_mpi_flush(struct comm_mpi *w, double timeout_s, struct err *e)
{
    struct timespec t0, t, nap = {0, 1000 * 1000};
    clock_gettime(CLOCK_MONOTONIC, &t0);
    for (;;) {
        if (reap_sends(w, e) != 0) return -1;
        if (!w->n_sends) return 0;
        clock_gettime(CLOCK_MONOTONIC, &t);
        if ((double)(t.tv_sec - t0.tv_sec) + (double)(t.tv_nsec - t0.tv_nsec) * 1e-9 > timeout_s)
            return err_set(e, "rank %d: %d control message(s) not delivered within %gs", w->rank,
                           w->n_sends, timeout_s);
        nanosleep(&nap, NULL);
    }
}
