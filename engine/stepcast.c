/* stepcast: a plan travels as two host broadcasts — its length with its kind (one the followers
 * may wait in for long, comm_broadcast_wait), then its bytes. */
#include "engine/stepcast.h"

#include <stdlib.h>

int stepcast_send(struct comm *c, enum stepcast_kind kind, const struct batch *b,
                  int32_t block_size, const struct kvb_copy *copies, int32_t n_copies,
                  struct err *e)
{
    struct wire w;
    wire_init(&w);
    if (kind == STEPCAST_STEP) wire_put_step(&w, b, block_size, copies, n_copies);
    int64_t head[2] = {kind, (int64_t)w.n};
    int rc = comm_broadcast_wait(c, head, sizeof head, c->rank, e);
    if (rc == 0 && w.n) rc = comm_broadcast(c, w.p, w.n, c->rank, e);
    wire_free(&w);
    return rc;
}

int stepcast_recv(struct comm *c, int root, struct wire_step *out, struct err *e)
{
    int64_t head[2] = {0, 0};
    *out = (struct wire_step){0};
    if (comm_broadcast_wait(c, head, sizeof head, root, e) != 0) return -1;
    if (head[0] == STEPCAST_STOP) return STEPCAST_STOP;
    if (head[0] != STEPCAST_STEP || head[1] <= 0 || head[1] > (int64_t)1 << 40)
        return err_set(e, "rank %d: malformed step plan from rank %d", c->rank, root);
    uint8_t *buf = xmalloc((size_t)head[1]);
    int rc = comm_broadcast(c, buf, (size_t)head[1], root, e);
    if (rc == 0) {
        struct wire_rd r = wire_reader(buf, (size_t)head[1]);
        rc = wire_get_step(&r, out, e);
        if (rc == 0 && !wire_rd_end(&r)) {
            wire_step_free(out);
            rc = err_set(e, "rank %d: malformed step plan from rank %d", c->rank, root);
        }
    }
    free(buf);
    return rc == 0 ? STEPCAST_STEP : -1;
}
