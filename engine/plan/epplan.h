/* epplan: the exchange of one MoE layer under expert parallelism — how many gathered rows each
 * rank sends to each rank, how many it receives, and how it groups what it receives by expert.
 * Host-side plain C, from every rank's per-expert row counts, so that a GPU backend's all-to-all
 * and gathers only follow it and the indexing is tested on the CPU.
 *
 * Experts are split by comm_split (rank q holds a contiguous range), so a sender's gathered
 * rows, experts ascending (moeplan's order), form one block per destination, in rank order.
 * A receiver's rows arrive by sending rank, then expert, then the sender's order; grouped, they
 * are by expert, then sending rank, then the sender's order. */
#ifndef SEEKD_EPPLAN_H
#define SEEKD_EPPLAN_H

#include <stdint.h>

struct ep_plan {
    int size, rank, n_experts;
    int e0, e1;       /* this rank's experts */
    int64_t *send;    /* [size] rows this rank sends to each rank */
    int64_t *recv;    /* [size] rows it receives from each rank */
    int64_t *goff;    /* [e1 - e0 + 1] first grouped row of each of its experts; the last: n_recv */
    int32_t *perm;    /* [n_recv] grouped row → arrival row */
    int32_t *inv;     /* [n_recv] arrival row → grouped row (perm's inverse) */
    int64_t n_recv;
    int64_t cap;      /* rows perm and inv hold */
};

void ep_plan_init(struct ep_plan *p, int size, int rank, int n_experts);

/* The plan from all [size][n_experts]: row r of it is rank r's rows per expert. */
void ep_plan_build(struct ep_plan *p, const int64_t *all);

void ep_plan_free(struct ep_plan *p);

#endif
