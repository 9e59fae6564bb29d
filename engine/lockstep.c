/* lockstep: the start-up agreement of tensor-parallel ranks, rank 0's plans, the followers' loop. */
#include "engine/lockstep.h"

#include <stdlib.h>
#include <time.h>

#include "engine/stepcast.h"

static int64_t mono_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

int lockstep_agree(struct comm *c, int ok, int32_t *n_blocks, struct err *e)
{
    int64_t mine[2] = {ok, ok && n_blocks ? *n_blocks : 0};
    int64_t *all = xcalloc(2 * (size_t)c->size, sizeof *all);
    struct err ce = {0};
    int rc = comm_exchange(c, mine, 2, all, &ce);
    if (rc != 0) *e = ce;
    else if (!ok) rc = -1; /* this rank's own message stays */
    for (int r = 0; r < c->size && rc == 0; r++) {
        if (!all[2 * r])
            rc = err_set(e, "tensor-parallel rank %d failed to start (its log says why)", r);
        else if (n_blocks && all[2 * r + 1] < *n_blocks)
            *n_blocks = (int32_t)all[2 * r + 1];
    }
    free(all);
    return rc;
}

int lockstep_round(struct comm *c, int has_work, int stopping, int *any_work, int *all_stop,
                   struct err *e)
{
    int64_t mine[2] = {has_work, stopping}, *all = xcalloc(2 * (size_t)c->size, sizeof *all);
    int rc = comm_exchange_wait(c, mine, 2, all, e);
    *any_work = 0, *all_stop = 1;
    for (int r = 0; r < c->size && rc == 0; r++) {
        *any_work |= all[2 * r] != 0;
        *all_stop &= all[2 * r + 1] != 0;
    }
    free(all);
    return rc;
}

int lockstep_send(struct comm *c, const struct batch *b, int32_t block_size,
                  const struct kvb_copy *copies, int32_t n_copies, struct err *e)
{
    return stepcast_send(c, STEPCAST_STEP, b, block_size, copies, n_copies, e);
}

int lockstep_stop(struct comm *c, struct err *e)
{
    return stepcast_send(c, STEPCAST_STOP, NULL, 0, NULL, 0, e);
}

/* One plan: its copies, then (when it has sequences) this rank's part of the step. */
static int run_plan(struct lockstep *l, const struct wire_step *plan, struct err *e)
{
    __atomic_store_n(&l->step_since_ns, mono_ns(), __ATOMIC_RELEASE);
    if (plan->n_copies) l->bops->copy_blocks(l->be, plan->copies, plan->n_copies);
    int rc = plan->batch.n_seqs ? l->bops->forward(l->be, &plan->batch, l->logits, e) : 0;
    __atomic_store_n(&l->step_since_ns, 0, __ATOMIC_RELEASE);
    return rc;
}

int lockstep_follow(struct lockstep *l)
{
    struct wire_step plan;
    int kind, rc = 0;
    while (rc == 0 && (kind = stepcast_recv(l->c, 0, &plan, &l->fault)) == STEPCAST_STEP) {
        rc = run_plan(l, &plan, &l->fault);
        wire_step_free(&plan);
    }
    if (rc == 0 && kind == STEPCAST_STOP) return 0;
    __atomic_store_n(&l->failed, 1, __ATOMIC_RELEASE);
    return -1;
}

double lockstep_stalled_s(const struct lockstep *l, int64_t now_ns)
{
    int64_t since = __atomic_load_n(&l->step_since_ns, __ATOMIC_ACQUIRE);
    return since ? (double)(now_ns - since) * 1e-9 : 0.0;
}
