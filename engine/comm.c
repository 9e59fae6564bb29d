/* comm: the calls every implementation goes through, the host reduction arithmetic, and the
 * one-rank communicator (every collective a copy). */
#include "engine/comm.h"

#include <stdlib.h>
#include <string.h>

/* ---- the calls ------------------------------------------------------------------------------ */

static void count(struct comm *c)
{
    __atomic_add_fetch(&c->n_ops, 1, __ATOMIC_RELAXED);
}

uint64_t comm_n_ops(const struct comm *c)
{
    return __atomic_load_n(&c->n_ops, __ATOMIC_RELAXED);
}

static int check_reducible(const char *op, enum dtype t, struct err *e)
{
    if (comm_reducible(t)) return 0;
    return err_set(e, "%s: cannot sum %s elements (F32, BF16, F16 only)", op, dtype_name(t));
}

int comm_allreduce_sum(struct comm *c, void *buf, size_t n, enum dtype t, void *stream,
                       struct err *e)
{
    if (check_reducible("all-reduce", t, e) != 0) return -1;
    count(c);
    return c->ops->allreduce_sum(c, buf, n, t, stream, e);
}

int comm_allgather(struct comm *c, const void *in, void *out, size_t bytes, void *stream,
                   struct err *e)
{
    count(c);
    return c->ops->allgather(c, in, out, bytes, stream, e);
}

int comm_allgatherv(struct comm *c, const void *in, void *out, const size_t *bytes, void *stream,
                    struct err *e)
{
    count(c);
    return c->ops->allgatherv(c, in, out, bytes, stream, e);
}

int comm_reduce_scatter_sum(struct comm *c, const void *in, void *out, size_t n, enum dtype t,
                            void *stream, struct err *e)
{
    if (check_reducible("reduce-scatter", t, e) != 0) return -1;
    count(c);
    return c->ops->reduce_scatter_sum(c, in, out, n, t, stream, e);
}

int comm_alltoall(struct comm *c, const void *in, void *out, size_t bytes, void *stream,
                  struct err *e)
{
    count(c);
    return c->ops->alltoall(c, in, out, bytes, stream, e);
}

int comm_alltoallv(struct comm *c, const void *in, const size_t *send, void *out,
                   const size_t *recv, void *stream, struct err *e)
{
    count(c);
    return c->ops->alltoallv(c, in, send, out, recv, stream, e);
}

int comm_exchange(struct comm *c, const int64_t *mine, int n, int64_t *all, struct err *e)
{
    count(c);
    return c->ops->exchange(c, mine, n, all, e);
}

int comm_exchange_wait(struct comm *c, const int64_t *mine, int n, int64_t *all, struct err *e)
{
    count(c);
    return (c->ops->exchange_wait ? c->ops->exchange_wait : c->ops->exchange)(c, mine, n, all, e);
}

int comm_broadcast(struct comm *c, void *buf, size_t bytes, int root, struct err *e)
{
    if (root < 0 || root >= c->size)
        return err_set(e, "broadcast: root %d is not a rank (size %d)", root, c->size);
    count(c);
    return c->ops->broadcast(c, buf, bytes, root, e);
}

int comm_broadcast_wait(struct comm *c, void *buf, size_t bytes, int root, struct err *e)
{
    if (root < 0 || root >= c->size)
        return err_set(e, "broadcast: root %d is not a rank (size %d)", root, c->size);
    count(c);
    return (c->ops->broadcast_wait ? c->ops->broadcast_wait : c->ops->broadcast)(c, buf, bytes, root, e);
}

int comm_sync(struct comm *c, void *stream, struct err *e)
{
    return c->ops->sync(c, stream, e);
}

void comm_destroy(struct comm *c)
{
    if (c) c->ops->destroy(c);
}

/* ---- host arithmetic ------------------------------------------------------------------------ */

int comm_reducible(enum dtype t)
{
    return t == DT_F32 || t == DT_BF16 || t == DT_F16;
}

void comm_sum_into(void *inout, const void *in, size_t n, enum dtype t)
{
    if (t == DT_F32) {
        float *a = inout;
        const float *b = in;
        for (size_t i = 0; i < n; i++) a[i] += b[i];
    } else if (t == DT_BF16) {
        uint16_t *a = inout;
        const uint16_t *b = in;
        for (size_t i = 0; i < n; i++) a[i] = f32_to_bf16(bf16_to_f32(a[i]) + bf16_to_f32(b[i]));
    } else if (t == DT_F16) {
        _Float16 *a = inout;
        const _Float16 *b = in;
        for (size_t i = 0; i < n; i++) a[i] = (_Float16)((float)a[i] + (float)b[i]);
    } else {
        ERR_FATAL("comm_sum_into: %s is not reducible", dtype_name(t));
    }
}

void comm_split(int64_t n, int size, int rank, int64_t *lo, int64_t *hi)
{
    int64_t q = n / size, r = n % size;
    *lo = (int64_t)rank * q + (rank < r ? rank : r);
    *hi = *lo + q + (rank < r ? 1 : 0);
}

size_t comm_offset(const size_t *sizes, int k)
{
    size_t off = 0;
    for (int i = 0; i < k; i++) off += sizes[i];
    return off;
}

/* ---- one rank ---------------------------------------------------------------------------------
 */

static void copy(void *out, const void *in, size_t bytes)
{
    if (bytes && out != in) memmove(out, in, bytes);
}

static int self_allreduce(struct comm *c, void *buf, size_t n, enum dtype t, void *stream,
                          struct err *e)
{
    return 0;
}

static int self_allgather(struct comm *c, const void *in, void *out, size_t bytes, void *stream,
                          struct err *e)
{
    copy(out, in, bytes);
    return 0;
}

static int self_allgatherv(struct comm *c, const void *in, void *out, const size_t *bytes,
                           void *stream, struct err *e)
{
    copy(out, in, bytes[0]);
    return 0;
}

static int self_reduce_scatter(struct comm *c, const void *in, void *out, size_t n, enum dtype t,
                               void *stream, struct err *e)
{
    copy(out, in, n * dtype_size(t));
    return 0;
}

static int self_alltoallv(struct comm *c, const void *in, const size_t *send, void *out,
                          const size_t *recv, void *stream, struct err *e)
{
    if (send[0] != recv[0])
        return err_set(e, "all-to-all: sending %zu bytes to itself but receiving %zu", send[0],
                       recv[0]);
    copy(out, in, send[0]);
    return 0;
}

static int self_exchange(struct comm *c, const int64_t *mine, int n, int64_t *all, struct err *e)
{
    copy(all, mine, (size_t)n * sizeof *mine);
    return 0;
}

static int self_broadcast(struct comm *c, void *buf, size_t bytes, int root, struct err *e)
{
    return 0;
}

static int self_sync(struct comm *c, void *stream, struct err *e)
{
    return 0;
}

static void self_destroy(struct comm *c)
{
    free(c);
}

static const struct comm_ops self_ops = {
    .name = "self",
    .allreduce_sum = self_allreduce,
    .allgather = self_allgather,
    .allgatherv = self_allgatherv,
    .reduce_scatter_sum = self_reduce_scatter,
    .alltoall = self_allgather, /* one block, to itself */
    .alltoallv = self_alltoallv,
    .exchange = self_exchange,
    .broadcast = self_broadcast,
    .sync = self_sync,
    .destroy = self_destroy,
};

struct comm *comm_self(void)
{
    struct comm *c = xcalloc(1, sizeof *c);
    *c = (struct comm){.ops = &self_ops, .rank = 0, .size = 1};
    return c;
}
