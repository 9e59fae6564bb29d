/* moe_fused: a decode-sized batch's MoE block (at most FUSE_T tokens) in two parallel loops
 * instead of three per expert: every routed expert with tokens, then the shared experts, gate
 * and up in one loop, down in the next. Each output row is the same matmul as in the
 * per-expert path, and outputs are combined in the same order.
 *
 * Under the 8-bit path (ops.q8) every expert's input is quantised once, before its loop, rather
 * than by each thread that takes one of its tasks: the batch's normed tokens once, then gathered
 * per expert as quantised rows (the same bits: a token's quantisation depends on its row alone);
 * the down projections' inputs once each, in the parallel loop that applies SwiGLU to them. */
#include <stdlib.h>
#include <string.h>

#include "engine/cpu/cpu_ops.h"
#include "engine/cpu/forward_internal.h"
#include "engine/cpu/quant_kernels.h"
#include "engine/cpu/shard.h"

/* One expert's share of the step: its weights, its rows of gathered input and output. */
struct moe_slot {
    const struct weight *gate, *up, *down;
    const float *x;      /* [n, D] */
    int n, off;          /* tokens, first row in fa/fb/fy */
    int task0[3];        /* first task of this slot in each loop: gate/up, SwiGLU, down */
    struct qk_act qa[2]; /* q8: x quantised for gate/up, silu(gate)·up for down (q NULL: none) */
};

struct moe_job {
    struct fwd *f;
    struct moe_slot *slot;
    int n_slots, phase; /* 0: gate/up, 1: SwiGLU (and quantise), 2: down */
};

enum { ACT_TOKENS = 4 }; /* rows of one slot per SwiGLU task */

/* The slot whose tasks of the current loop include task. */
static const struct moe_slot *slot_of(const struct moe_job *j, int task)
{
    int s = 0;
    while (s + 1 < j->n_slots && j->slot[s + 1].task0[j->phase] <= task) s++;
    return &j->slot[s];
}

/* One slot's rows [r0, r1) of w against its input: quantised once (qa), or as they are. */
static void slot_rows(struct fwd *f, int thread, const struct weight *w, const struct qk_act *qa,
                      int64_t r0, int64_t r1, const float *x, int64_t ldx, int n, float *y,
                      int64_t ldy)
{
    if (qa->q) qk_matmul_act(&f->ops, thread, w, r0, r1, qa, n, y, ldy);
    else ops_matmul_serial(&f->ops, thread, w, r0, r1, x, ldx, n, y, ldy);
}

/* A task: FUSE_ROWS output rows of one slot's gate or up (phase 0) or down (phase 2), or
 * SwiGLU of ACT_TOKENS of its rows, then their quantisation for down (phase 1). */
static void moe_task(void *arg, int task, int thread)
{
    const struct moe_job *j = arg;
    struct fwd *f = j->f;
    const struct moe_slot *q = slot_of(j, task);
    int D = f->c->hidden_size;
    int64_t F = q->gate->rows, i = task - q->task0[j->phase];
    if (j->phase == 0) {
        int64_t chunks = (F + FUSE_ROWS - 1) / FUSE_ROWS, r0 = (i % chunks) * FUSE_ROWS;
        int64_t r1 = r0 + FUSE_ROWS < F ? r0 + FUSE_ROWS : F;
        float *y = (i < chunks ? f->fa : f->fb) + (size_t)q->off * F + r0;
        slot_rows(f, thread, i < chunks ? q->gate : q->up, &q->qa[0], r0, r1, q->x, D, q->n, y, F);
    } else if (j->phase == 1) {
        int t0 = (int)i * ACT_TOKENS, t1 = t0 + ACT_TOKENS < q->n ? t0 + ACT_TOKENS : q->n;
        float *a = f->fa + (size_t)(q->off + t0) * F;
        cpu_silu_mul(a, f->fb + (size_t)(q->off + t0) * F, (int64_t)(t1 - t0) * F);
        struct qk_act qa = q->qa[1];
        qk_quantize_rows(&f->ops, q->down->dtype, f->fa + (size_t)q->off * F, F, t0, t1, &qa);
    } else {
        int64_t r0 = i * FUSE_ROWS, r1 = r0 + FUSE_ROWS < D ? r0 + FUSE_ROWS : D;
        slot_rows(f, thread, q->down, &q->qa[1], r0, r1, f->fa + (size_t)q->off * F, F, q->n,
                  f->fy + (size_t)q->off * D + r0, D);
    }
}

/* Numbers the tasks of the three loops, slot after slot, into n_tasks[3]. */
static void moe_plan(struct moe_slot *slot, int n_slots, int D, int n_tasks[3])
{
    n_tasks[0] = n_tasks[1] = n_tasks[2] = 0;
    for (int s = 0; s < n_slots; s++) {
        for (int p = 0; p < 3; p++) slot[s].task0[p] = n_tasks[p];
        n_tasks[0] += 2 * (int)((slot[s].gate->rows + FUSE_ROWS - 1) / FUSE_ROWS);
        n_tasks[1] += (slot[s].n + ACT_TOKENS - 1) / ACT_TOKENS;
        n_tasks[2] += (D + FUSE_ROWS - 1) / FUSE_ROWS;
    }
}

/* Whether the slots' weights of a loop (gate and up; down) are quantised in one activation
 * format, under q8: their inputs can then be quantised once. */
static int one_format(const struct fwd *f, const struct moe_slot *slot, int n_slots, int down)
{
    enum dtype t = down ? slot[0].down->dtype : slot[0].gate->dtype;
    if (!f->ops.q8) return 0;
    for (int s = 0; s < n_slots; s++)
        if (down ? !qk_same_act(slot[s].down->dtype, t)
                 : !qk_same_act(slot[s].gate->dtype, t) || !qk_same_act(slot[s].up->dtype, t))
            return 0;
    return 1;
}

/* f->fq grown to at least bytes. */
static char *fq_buffer(struct fwd *f, size_t bytes)
{
    if (bytes > f->fq_cap) {
        free(f->fq);
        f->fq = xmalloc(bytes);
        f->fq_cap = bytes;
    }
    return f->fq;
}

/* Gate/up inputs quantised once: the T tokens of xn, then each routed slot's rows gathered
 * from them (one token: a view of its row, shared with every other expert that has it). The
 * down inputs' buffers laid out after them, for phase 1 to fill. */
static void quantize_inputs(struct fwd *f, struct moe_slot *slot, int n_slots, int n_routed,
                            int n, int T, int down)
{
    int64_t D = f->c->hidden_size;
    size_t b0 = qk_scratch_bytes(D, T, 0), b1 = qk_scratch_bytes(D, n, 0), b2 = 0;
    for (int s = 0; down && s < n_slots; s++) b2 += qk_scratch_bytes(slot[s].gate->rows, slot[s].n, 0);
    char *buf = fq_buffer(f, b0 + b1 + b2), *at = buf + b0 + b1;
    struct qk_act xq, g;
    ops_quantize(&f->ops, slot[0].gate->dtype, f->xn, D, T, D, buf, &xq);
    qk_layout(buf + b0, D, n, &g, NULL, 0);
    for (int s = 0; s < n_slots; s++) {
        struct moe_slot *q = &slot[s];
        if (s >= n_routed) q->qa[0] = xq;
        else if (q->n == 1) q->qa[0] = qk_act_at(&xq, f->fwho[q->off]);
        else {
            for (int i = q->off; i < q->off + q->n; i++) qk_act_copy(&xq, f->fwho[i], &g, i);
            q->qa[0] = qk_act_at(&g, q->off);
        }
        if (!down) continue;
        qk_layout(at, q->gate->rows, q->n, &q->qa[1], NULL, 0);
        at += qk_scratch_bytes(q->gate->rows, q->n, 0);
    }
}

/* The float inputs of the slots that take them: each routed slot's tokens gathered into fx
 * (one token: its row of xn itself), the shared slot's xn. */
static void gather_floats(struct fwd *f, struct moe_slot *slot, int n_slots, int n_routed)
{
    size_t D = (size_t)f->c->hidden_size;
    for (int s = 0; s < n_slots; s++) {
        struct moe_slot *q = &slot[s];
        if (s >= n_routed) q->x = f->xn;
        else if (q->n == 1) q->x = f->xn + (size_t)f->fwho[q->off] * D;
        else {
            for (int i = q->off; i < q->off + q->n; i++)
                memcpy(f->fx + (size_t)i * D, f->xn + (size_t)f->fwho[i] * D, D * sizeof(float));
            q->x = f->fx + (size_t)q->off * D;
        }
    }
}

/* The slots of the step: every routed expert of this rank with tokens (their rows numbered in
 * f->fwho, f->fwgt), then the shared experts; *n_rows the routed rows. */
static int make_slots(struct fwd *f, const struct layer *L, int T, struct moe_slot *slot, int *n_rows)
{
    const struct model_config *c = f->c;
    int E = c->n_routed_experts, k = c->n_experts_per_tok, n = 0, n_slots = 0;
    int e0 = f->sh ? f->sh->e0 : 0, e1 = f->sh ? f->sh->e1 : E;
    for (int x = e0; x < e1; x++) {
        int first = n;
        for (int t = 0; t < T; t++)
            for (int j = 0; j < k; j++)
                if (f->sel[t * k + j] == x) f->fwho[n] = t, f->fwgt[n++] = f->selw[t * k + j];
        if (n > first)
            slot[n_slots++] = (struct moe_slot){&L->exp_gate[x], &L->exp_up[x], &L->exp_down[x],
                                                NULL, n - first, first, {0}, {{0}}};
    }
    if (c->n_shared_experts && !f->sh)
        slot[n_slots++] = (struct moe_slot){&L->sh_gate, &L->sh_up, &L->sh_down, NULL, T, n, {0}, {{0}}};
    *n_rows = n;
    return n_slots;
}

void fwd_moe_fused(struct fwd *f, const struct layer *L, int T)
{
    int D = f->c->hidden_size, n, n_tasks[3];
    struct moe_slot *slot = xcalloc((size_t)f->c->n_routed_experts + 1, sizeof *slot);
    int n_slots = make_slots(f, L, T, slot, &n);
    int n_routed = n_slots - (f->c->n_shared_experts && !f->sh);
    int q_up = n_slots > 0 && one_format(f, slot, n_slots, 0);
    int q_down = q_up && one_format(f, slot, n_slots, 1);
    if (q_up) quantize_inputs(f, slot, n_slots, n_routed, n, T, q_down);
    else gather_floats(f, slot, n_slots, n_routed);
    moe_plan(slot, n_slots, D, n_tasks);
    struct moe_job j = {f, slot, n_slots, 0};
    tp_run(f->ops.tp, n_tasks[0], moe_task, &j);
    if (q_down) {
        j.phase = 1;
        tp_run(f->ops.tp, n_tasks[1], moe_task, &j);
    } else {
        for (int s = 0; s < n_slots; s++) {
            size_t F = (size_t)slot[s].gate->rows, o = (size_t)slot[s].off * F;
            cpu_silu_mul(f->fa + o, f->fb + o, (int64_t)slot[s].n * (int64_t)F);
        }
    }
    j.phase = 2;
    tp_run(f->ops.tp, n_tasks[2], moe_task, &j);
    memset(f->out, 0, (size_t)T * D * sizeof(float));
    for (int i = 0; i < n; i++) cpu_axpy(f->out + (size_t)f->fwho[i] * D, f->fwgt[i], f->fy + (size_t)i * D, D);
    if (n_slots > n_routed) fwd_add_rows(f, NULL, NULL, f->fy + (size_t)n * D, T);
    free(slot);
}
