/* forward_ep: expert parallelism for data-parallel ranks — each rank runs attention and the dense
 * layers on its own tokens and holds ⌈E/N⌉ or ⌊E/N⌋ of the routed experts; in each MoE layer
 * the routed rows travel to their experts' ranks (all-to-all), come back as expert outputs (the
 * reverse all-to-all) and are combined where they came from. A rank with no tokens still takes
 * part in every exchange (fwd_run_idle), serving the others' rows.
 *
 * A row carries its expert id (as a float, exact below 2^24) and the normed input; outputs come
 * back in the order sent. Each expert computes its rows as one rank would (every output row is
 * one dot product per element, whatever else is in the batch), and each token sums its experts'
 * outputs in ascending expert id and then the shared experts, as moe() does: the result is the
 * single rank's, bit for bit. */
#include <stdlib.h>
#include <string.h>

#include "engine/comm.h"
#include "engine/cpu/cpu_ops.h"
#include "engine/cpu/forward_internal.h"

struct fwd_ep {
    struct comm *c;
    int rank, size;
    int e0, e1;   /* this rank's experts */
    int q, r;     /* E = q * size + r: the first r ranks hold q + 1 */
};

void fwd_use_ep(struct fwd *f, struct comm *c)
{
    int E = f->c->n_routed_experts;
    struct fwd_ep *p = xcalloc(1, sizeof *p);
    *p = (struct fwd_ep){.c = c, .rank = c->rank, .size = c->size, .q = E / c->size,
                         .r = E % c->size};
    p->e0 = p->rank * p->q + (p->rank < p->r ? p->rank : p->r);
    p->e1 = p->e0 + p->q + (p->rank < p->r ? 1 : 0);
    f->ep = p;
}

void fwd_ep_free(struct fwd *f)
{
    free(f->ep);
    f->ep = NULL;
}

/* The rank holding expert x. */
static int owner(const struct fwd_ep *p, int x)
{
    int big = p->r * (p->q + 1);
    return x < big ? x / (p->q + 1) : p->r + (x - big) / p->q;
}

/* One MoE layer's exchange: the buffers and counts of both directions. */
struct ep_xchg {
    int64_t *cnt;   /* [N] rows this rank sends to each rank */
    int64_t *all;   /* [N, N] every rank's cnt */
    size_t *sb, *rb; /* [N] bytes sent to / received from each rank */
    int *slot;      /* [T*k] each routed pair's row in the send order */
    float *send;    /* [T*k, D+1] expert id, then the normed row */
    float *recv;    /* [n_recv, D+1] */
    float *out;     /* [n_recv, D] expert outputs, the rows' order */
    float *back;    /* [T*k, D] outputs of this rank's rows, in the send order */
    int64_t n_recv;
};

static void xchg_free(struct ep_xchg *x)
{
    free(x->cnt), free(x->all), free(x->sb), free(x->rb), free(x->slot);
    free(x->send), free(x->recv), free(x->out), free(x->back);
}

/* Counts, the send order, the packed rows; every rank's counts. */
static int pack(struct fwd *f, int T, struct ep_xchg *x, struct err *e)
{
    const struct fwd_ep *p = f->ep;
    int N = p->size, n = T * f->c->n_experts_per_tok;
    size_t D = (size_t)f->c->hidden_size, k = (size_t)f->c->n_experts_per_tok;
    x->cnt = xcalloc((size_t)N, sizeof *x->cnt), x->all = xcalloc((size_t)N * N, sizeof *x->all);
    x->sb = xcalloc((size_t)N, sizeof *x->sb), x->rb = xcalloc((size_t)N, sizeof *x->rb);
    x->slot = xcalloc((size_t)n + 1, sizeof *x->slot);
    x->send = xmalloc(((size_t)n * (D + 1) + 1) * sizeof *x->send);
    for (int i = 0; i < n; i++) x->cnt[owner(p, f->sel[i])]++;
    if (comm_exchange(p->c, x->cnt, N, x->all, e) != 0) return -1;
    int64_t *next = xcalloc((size_t)N, sizeof *next);
    for (int q = 1; q < N; q++) next[q] = next[q - 1] + x->cnt[q - 1];
    for (int i = 0; i < n; i++) {
        float *row = x->send + (size_t)(x->slot[i] = (int)next[owner(p, f->sel[i])]++) * (D + 1);
        row[0] = (float)f->sel[i];
        memcpy(row + 1, f->xn + (size_t)i / k * D, D * sizeof *row);
    }
    free(next);
    for (int q = 0; q < N; q++) {
        x->sb[q] = (size_t)x->cnt[q] * (D + 1) * sizeof(float);
        x->rb[q] = (size_t)x->all[(size_t)q * N + p->rank] * (D + 1) * sizeof(float);
        x->n_recv += x->all[(size_t)q * N + p->rank];
    }
    return 0;
}

/* The received rows through this rank's experts, each expert's rows in arrival order, at most
 * max_tokens at a time. */
static void run_experts(struct fwd *f, const struct layer *L, struct ep_xchg *x)
{
    size_t D = (size_t)f->c->hidden_size;
    int *rows = xmalloc(((size_t)x->n_recv + 1) * sizeof *rows);
    for (int ex = f->ep->e0; ex < f->ep->e1; ex++) {
        int n = 0;
        for (int64_t i = 0; i < x->n_recv; i++)
            if ((int)x->recv[(size_t)i * (D + 1)] == ex) rows[n++] = (int)i;
        for (int s = 0; s < n; s += f->max_tokens) {
            int m = n - s < f->max_tokens ? n - s : f->max_tokens;
            for (int j = 0; j < m; j++)
                memcpy(f->xg + (size_t)j * D, x->recv + (size_t)rows[s + j] * (D + 1) + 1, D * sizeof(float));
            fwd_mlp(f, &L->exp_gate[ex], &L->exp_up[ex], &L->exp_down[ex], f->xg, m, f->yg);
            for (int j = 0; j < m; j++)
                memcpy(x->out + (size_t)rows[s + j] * D, f->yg + (size_t)j * D, D * sizeof(float));
        }
    }
    free(rows);
}

/* out[t] = Σ over t's experts in ascending id of weight · output, then the shared experts. */
static void combine(struct fwd *f, const struct layer *L, int T, const struct ep_xchg *x)
{
    int k = f->c->n_experts_per_tok;
    size_t D = (size_t)f->c->hidden_size;
    memset(f->out, 0, (size_t)T * D * sizeof *f->out);
    for (int t = 0; t < T; t++) {
        int order[64], n = k < 64 ? k : 64;
        for (int j = 0; j < n; j++) { /* insertion sort of t's pairs by expert id */
            int i = j;
            for (; i > 0 && f->sel[t * k + order[i - 1]] > f->sel[t * k + j]; i--) order[i] = order[i - 1];
            order[i] = j;
        }
        for (int j = 0; j < n; j++)
            cpu_axpy(f->out + (size_t)t * D, f->selw[t * k + order[j]],
                     x->back + (size_t)x->slot[t * k + order[j]] * D, (int)D);
    }
    if (!f->c->n_shared_experts || !T) return;
    fwd_mlp(f, &L->sh_gate, &L->sh_up, &L->sh_down, f->xn, T, f->yg);
    for (int t = 0; t < T; t++) cpu_axpy(f->out + (size_t)t * D, 1.0f, f->yg + (size_t)t * D, (int)D);
}

int fwd_moe_ep(struct fwd *f, const struct layer *L, int T, struct err *e)
{
    struct ep_xchg x = {0};
    size_t D = (size_t)f->c->hidden_size, n = (size_t)T * (size_t)f->c->n_experts_per_tok;
    int N = f->ep->size, rc = pack(f, T, &x, e);
    if (rc == 0) {
        x.recv = xmalloc(((size_t)x.n_recv * (D + 1) + 1) * sizeof *x.recv);
        rc = comm_alltoallv(f->ep->c, x.send, x.sb, x.recv, x.rb, NULL, e);
    }
    if (rc == 0) {
        x.out = xmalloc(((size_t)x.n_recv * D + 1) * sizeof *x.out);
        x.back = xmalloc((n * D + 1) * sizeof *x.back);
        run_experts(f, L, &x);
        for (int q = 0; q < N; q++) { /* the reverse direction: outputs only */
            x.sb[q] = (size_t)x.cnt[q] * D * sizeof(float);
            x.rb[q] = (size_t)x.all[(size_t)q * N + f->ep->rank] * D * sizeof(float);
        }
        rc = comm_alltoallv(f->ep->c, x.out, x.rb, x.back, x.sb, NULL, e);
    }
    if (rc == 0) combine(f, L, T, &x);
    xchg_free(&x);
    return rc;
}

int fwd_run_idle(struct fwd *f, struct err *e)
{
    for (int il = 0; il < f->c->n_layers; il++)
        if (f->m->layers[il].is_moe && fwd_moe_ep(f, &f->m->layers[il], 0, e) != 0) return -1;
    return 0;
}
