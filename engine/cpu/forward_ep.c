/* forward_ep: expert parallelism for data-parallel ranks — each rank runs attention and the dense
 * layers on its own tokens and holds ⌈E/N⌉ or ⌊E/N⌋ of the routed experts; in each MoE layer
 * the routed rows travel to their experts' ranks (all-to-all), come back as expert outputs (the
 * reverse all-to-all) and are combined where they came from. A rank with no tokens still takes
 * part in every exchange (fwd_run_idle), serving the others' rows.
 *
 * The rows go in moeplan's order (experts ascending: one block per destination rank, in rank
 * order); who receives what from whom comes from every rank's per-expert counts, exchanged
 * first, and engine/plan/epplan.c (the plan the CUDA backend's exchange follows too) groups
 * the received rows by expert and puts the outputs back in arrival order; they return in the
 * order sent. Each expert computes its rows as one rank would (every output row is one dot
 * product per element, whatever else is in the batch), and each token sums its experts'
 * outputs in ascending expert id and then the shared experts, as moe() does: the result is the
 * single rank's, bit for bit. */
#include <stdlib.h>
#include <string.h>

#include "engine/comm.h"
#include "engine/cpu/cpu_ops.h"
#include "engine/cpu/forward_internal.h"
#include "engine/plan/epplan.h"
#include "engine/plan/moeplan.h"

struct fwd_ep {
    struct comm *c;
    struct mp_plan mp;    /* this layer's rows by expert (the order they are sent in) */
    struct ep_plan plan;  /* this layer's exchange */
    int64_t *cnt, *all;   /* [E] this rank's rows per expert; [N, E] every rank's */
    size_t *sb, *rb;      /* [N] bytes sent to / received from each rank */
};

void fwd_use_ep(struct fwd *f, struct comm *c)
{
    int E = f->c->n_routed_experts;
    struct fwd_ep *p = xcalloc(1, sizeof *p);
    p->c = c;
    ep_plan_init(&p->plan, c->size, c->rank, E);
    p->cnt = xcalloc((size_t)E, sizeof *p->cnt);
    p->all = xcalloc((size_t)c->size * (size_t)E, sizeof *p->all);
    p->sb = xcalloc((size_t)c->size, sizeof *p->sb), p->rb = xcalloc((size_t)c->size, sizeof *p->rb);
    f->ep = p;
}

void fwd_ep_free(struct fwd *f)
{
    struct fwd_ep *p = f->ep;
    if (!p) return;
    mp_free(&p->mp);
    ep_plan_free(&p->plan);
    free(p->cnt), free(p->all), free(p->sb), free(p->rb);
    free(p);
    f->ep = NULL;
}

/* The rows to send (each routed pair's normed input, by expert), every rank's counts, the
 * exchange's plan and byte counts. */
static int plan(struct fwd *f, int T, float **send, struct err *e)
{
    struct fwd_ep *p = f->ep;
    int E = f->c->n_routed_experts, k = f->c->n_experts_per_tok;
    size_t D = (size_t)f->c->hidden_size;
    if (mp_build(&p->mp, f->sel, T, k, E) != 0) ERR_FATAL("the routing chose an impossible expert list");
    const int32_t *off = mp_arr(&p->mp, p->mp.offset), *row_tok = mp_arr(&p->mp, p->mp.row_tok);
    *send = xmalloc(((size_t)p->mp.n_rows * D + 1) * sizeof **send);
    for (int r = 0; r < p->mp.n_rows; r++)
        memcpy(*send + (size_t)r * D, f->xn + (size_t)row_tok[r] * D, D * sizeof **send);
    for (int x = 0; x < E; x++) p->cnt[x] = off[x + 1] - off[x];
    if (comm_exchange(p->c, p->cnt, E, p->all, e) != 0) return -1;
    ep_plan_build(&p->plan, p->all);
    for (int q = 0; q < p->plan.size; q++)
        p->sb[q] = (size_t)p->plan.send[q] * D * sizeof(float),
        p->rb[q] = (size_t)p->plan.recv[q] * D * sizeof(float);
    return 0;
}

/* The received rows (arrival order) through this rank's experts: grouped by expert, each group
 * at most max_tokens rows at a time, the outputs back in arrival order, in place. */
static void run_experts(struct fwd *f, const struct layer *L, float *rows)
{
    const struct ep_plan *p = &f->ep->plan;
    size_t D = (size_t)f->c->hidden_size, n = (size_t)p->n_recv;
    float *gx = xmalloc((n * D + 1) * sizeof *gx), *gy = xmalloc((n * D + 1) * sizeof *gy);
    for (size_t g = 0; g < n; g++) memcpy(gx + g * D, rows + (size_t)p->perm[g] * D, D * sizeof *gx);
    for (int i = 0; i < p->e1 - p->e0; i++) {
        const struct weight *gate = &L->exp_gate[p->e0 + i], *up = &L->exp_up[p->e0 + i];
        for (int64_t r = p->goff[i]; r < p->goff[i + 1]; r += f->max_tokens) {
            int m = (int)(p->goff[i + 1] - r < f->max_tokens ? p->goff[i + 1] - r : f->max_tokens);
            fwd_mlp(f, gate, up, &L->exp_down[p->e0 + i], gx + (size_t)r * D, m, gy + (size_t)r * D);
        }
    }
    for (size_t a = 0; a < n; a++) memcpy(rows + a * D, gy + (size_t)p->inv[a] * D, D * sizeof *gy);
    free(gx), free(gy);
}

/* out[t] = Σ over t's choices (experts ascending: moe_route sorts them) of weight · output,
 * then the shared experts: moe()'s order of additions. back: the outputs, moeplan's rows. */
static void combine(struct fwd *f, const struct layer *L, int T, const float *back)
{
    int k = f->c->n_experts_per_tok;
    size_t D = (size_t)f->c->hidden_size;
    const int32_t *tok_row = mp_arr(&f->ep->mp, f->ep->mp.tok_row);
    memset(f->out, 0, (size_t)T * D * sizeof *f->out);
    for (int t = 0; t < T; t++)
        for (int j = 0; j < k; j++)
            cpu_axpy(f->out + (size_t)t * D, f->selw[t * k + j],
                     back + (size_t)tok_row[t * k + j] * D, (int)D);
    if (!f->c->n_shared_experts || !T) return;
    fwd_mlp(f, &L->sh_gate, &L->sh_up, &L->sh_down, f->xn, T, f->yg);
    fwd_add_rows(f, NULL, NULL, f->yg, T);
}

int fwd_moe_ep(struct fwd *f, const struct layer *L, int T, struct err *e)
{
    struct fwd_ep *p = f->ep;
    size_t D = (size_t)f->c->hidden_size;
    float *send = NULL, *rows = NULL, *back = NULL;
    int rc = plan(f, T, &send, e);
    if (rc == 0) {
        rows = xmalloc(((size_t)p->plan.n_recv * D + 1) * sizeof *rows);
        rc = comm_alltoallv(p->c, send, p->sb, rows, p->rb, NULL, e);
    }
    if (rc == 0) {
        run_experts(f, L, rows);
        back = xmalloc(((size_t)p->mp.n_rows * D + 1) * sizeof *back);
        /* the reverse direction: what came from rank q returns to it */
        rc = comm_alltoallv(p->c, rows, p->rb, back, p->sb, NULL, e);
    }
    if (rc == 0) combine(f, L, T, back);
    free(send), free(rows), free(back);
    return rc;
}

int fwd_run_idle(struct fwd *f, struct err *e)
{
    for (int il = 0; il < f->c->n_layers; il++)
        if (f->m->layers[il].is_moe && fwd_moe_ep(f, &f->m->layers[il], 0, e) != 0) return -1;
    return 0;
}
