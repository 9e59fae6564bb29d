/* epplan: who sends how many rows to whom in an expert-parallel MoE layer, and the grouping of
 * the received rows by expert. */
#include "engine/plan/epplan.h"

#include <stdlib.h>
#include <string.h>

#include "engine/comm.h"
#include "engine/err.h"

void ep_plan_init(struct ep_plan *p, int size, int rank, int n_experts)
{
    int64_t lo, hi;
    comm_split(n_experts, size, rank, &lo, &hi);
    *p = (struct ep_plan){.size = size, .rank = rank, .n_experts = n_experts, .e0 = (int)lo,
                          .e1 = (int)hi};
    p->send = xcalloc((size_t)size, sizeof *p->send);
    p->recv = xcalloc((size_t)size, sizeof *p->recv);
    p->goff = xcalloc((size_t)(hi - lo) + 1, sizeof *p->goff);
}

void ep_plan_free(struct ep_plan *p)
{
    free(p->send), free(p->recv), free(p->goff), free(p->perm), free(p->inv);
    *p = (struct ep_plan){0};
}

/* Rows each way, and the groups' offsets; returns the rows received. */
static int64_t counts(struct ep_plan *p, const int64_t *all)
{
    int N = p->size, E = p->n_experts, own = p->e1 - p->e0;
    const int64_t *mine = all + (size_t)p->rank * E;
    int64_t lo, hi, n = 0;
    for (int q = 0; q < N; q++) {
        comm_split(E, N, q, &lo, &hi);
        p->send[q] = p->recv[q] = 0;
        for (int64_t x = lo; x < hi; x++) p->send[q] += mine[x];
        for (int i = 0; i < own; i++) p->recv[q] += all[(size_t)q * E + p->e0 + i];
    }
    for (int i = 0; i < own; i++) {
        p->goff[i] = n;
        for (int q = 0; q < N; q++) n += all[(size_t)q * E + p->e0 + i];
    }
    p->goff[own] = n;
    return n;
}

void ep_plan_build(struct ep_plan *p, const int64_t *all)
{
    int N = p->size, E = p->n_experts, own = p->e1 - p->e0;
    int64_t n = counts(p, all), arrival = 0;
    if (n > p->cap) {
        free(p->perm), free(p->inv);
        p->cap = n * 2;
        p->perm = xcalloc((size_t)p->cap, sizeof *p->perm);
        p->inv = xcalloc((size_t)p->cap, sizeof *p->inv);
    }
    p->n_recv = n;
    int64_t *next = xcalloc((size_t)own + 1, sizeof *next);
    memcpy(next, p->goff, (size_t)own * sizeof *next);
    for (int q = 0; q < N; q++)
        for (int i = 0; i < own; i++)
            for (int64_t j = 0; j < all[(size_t)q * E + p->e0 + i]; j++, arrival++) {
                int64_t g = next[i]++;
                p->perm[g] = (int32_t)arrival, p->inv[arrival] = (int32_t)g;
            }
    free(next);
}
