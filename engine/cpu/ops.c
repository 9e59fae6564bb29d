/* ops: threaded matmul over stored-dtype weights. A task owns a range of output rows; it widens
 * a block of rows at a time into its scratch (once per block, shared by every token) and runs
 * the kernel set's dot tiles over the tokens a block of them at a time, so that both the widened
 * rows and the tokens' activations stay in L2. */
#include "engine/cpu/ops.h"

#include <unistd.h>

#include "engine/cpu/quant_kernels.h"
#include "engine/err.h"

enum {
    DEFAULT_BLOCK = 192 * 1024, /* bytes per block when the cache size is unknown */
    TASKS_PER_THREAD = 4,       /* for balance when row ranges cost the same */
};

int64_t ops_block_bytes(void)
{
    long l2 = sysconf(_SC_LEVEL2_CACHE_SIZE);
    int64_t b = l2 > 0 ? l2 / 10 : DEFAULT_BLOCK;
    return b < 64 * 1024 ? 64 * 1024 : b > 256 * 1024 ? 256 * 1024 : b;
}

/* Rows widened at once: a multiple of 4 whose floats fill a block (4 to 64). */
static int rows_per_block(const struct ops *o, int64_t cols)
{
    int64_t rb = (o->block_bytes ? o->block_bytes : DEFAULT_BLOCK) / (int64_t)(cols * sizeof(float));
    rb = rb / 4 * 4;
    return rb < 4 ? 4 : rb > 64 ? 64 : (int)rb;
}

/* Tokens per pass over a block of rows: their activations stay in L2 while each group of four
 * rows, in L1, meets them all. */
static int tokens_per_block(const struct ops *o, int64_t cols)
{
    int64_t tb = (o->block_bytes ? o->block_bytes : DEFAULT_BLOCK) / (int64_t)(cols * sizeof(float));
    return tb < 4 ? 4 : (int)(tb / 4 * 4);
}

/* Rows a matrix-set gemm call takes: their BF16 stays in L2 while the tokens pass. */
static int mx_rows_per_call(const struct ops *o, int64_t cols)
{
    int64_t rb = (o->block_bytes ? o->block_bytes : DEFAULT_BLOCK) / (int64_t)(cols * 2);
    rb = rb / 32 * 32;
    return rb < 32 ? 32 : rb > 256 ? 256 : (int)rb;
}

static int takes_mx(const struct ops *o, const struct weight *w)
{
    return o->mx && w->dtype == DT_BF16;
}

/* Rows [r0, r1) of a BF16 weight against activations packed by the matrix set. */
static void mx_rows(const struct ops *o, const struct weight *w, int64_t r0, int64_t r1,
                    const void *xp, int n, float *y, int64_t ldy, void *scratch)
{
    int rb = mx_rows_per_call(o, w->cols), k = (int)w->cols;
    for (int64_t r = r0; r < r1; r += rb)
        o->mx->gemm((const uint16_t *)w->data + r * w->cols, w->cols, r1 - r < rb ? (int)(r1 - r) : rb,
                    xp, n, k, y + (r - r0), ldy, scratch);
}

static size_t align64(size_t n)
{
    return (n + 63) / 64 * 64;
}

void ops_matmul_serial(const struct ops *o, int thread, const struct weight *w, int64_t r0,
                       int64_t r1, const float *x, int64_t ldx, int n, float *y, int64_t ldy)
{
    if (dtype_is_quant(w->dtype)) { qk_matmul(o, thread, w, r0, r1, x, ldx, n, y, ldy); return; }
    if (takes_mx(o, w)) { /* pack here: one task's own matmul */
        size_t xb = align64(o->mx->packed_bytes(n, (int)w->cols));
        char *buf = tp_scratch(o->tp, thread, xb + o->mx->scratch_bytes((int)w->cols));
        o->mx->pack(x, ldx, n, (int)w->cols, buf);
        mx_rows(o, w, r0, r1, buf, n, y, ldy, buf + xb);
        return;
    }
    if (o->k->direct && n <= SIMD_DIRECT_MAX && w->dtype != DT_F16) {
        o->k->direct(w, r0, (int)(r1 - r0), x, ldx, n, y, ldy);
        return;
    }
    int rb = rows_per_block(o, w->cols), tb = tokens_per_block(o, w->cols);
    size_t all = (size_t)(r1 - r0) * (size_t)w->cols * sizeof(float);
    if (n > 2 * tb && all <= (size_t)(o->block_bytes ? o->block_bytes : DEFAULT_BLOCK) * 5) {
        /* many tokens, rows that fit half of L2 widened: widen them once, and let each block of
         * tokens meet them all — the tokens' activations then pass once, not once a row block */
        float *wb = tp_scratch(o->tp, thread, all);
        o->k->widen_rows(w, r0, (int)(r1 - r0), wb, w->cols);
        for (int t = 0; t < n; t += tb)
            for (int64_t r = r0; r < r1; r += rb)
                o->k->dot_tile(wb + (r - r0) * w->cols, w->cols, r1 - r < rb ? (int)(r1 - r) : rb,
                               x + t * ldx, ldx, n - t < tb ? n - t : tb, (int)w->cols,
                               y + t * ldy + (r - r0), ldy);
        return;
    }
    float *buf = tp_scratch(o->tp, thread, (size_t)rb * (size_t)w->cols * sizeof(float));
    for (int64_t r = r0; r < r1; r += rb) {
        int nr = r1 - r < rb ? (int)(r1 - r) : rb;
        o->k->widen_rows(w, r, nr, buf, w->cols);
        for (int t = 0; t < n; t += tb)
            o->k->dot_tile(buf, w->cols, nr, x + t * ldx, ldx, n - t < tb ? n - t : tb,
                           (int)w->cols, y + t * ldy + (r - r0), ldy);
    }
}

/* ---- activations packed once for a whole loop ------------------------------------------------ */

enum { PACK_TOKENS = 16, PACK_PARALLEL = 64 }; /* tokens per packing task; fewer: the caller */

struct pack_job {
    const struct matrix_kernels *mx;
    const float *x;
    int64_t ldx;
    int n, k;
    char *xp;
};

static void pack_task(void *arg, int task, int thread)
{
    const struct pack_job *j = arg;
    int t = task * PACK_TOKENS, m = j->n - t < PACK_TOKENS ? j->n - t : PACK_TOKENS;
    j->mx->pack(j->x + t * j->ldx, j->ldx, m, j->k, j->xp + j->mx->packed_bytes(t, j->k));
}

/* x rounded and laid out for o->mx in the pool's shared buffer (in parallel when long). */
static const void *pack_shared(const struct ops *o, const float *x, int64_t ldx, int n, int k)
{
    struct pack_job j = {o->mx, x, ldx, n, k, tp_shared_scratch(o->tp, o->mx->packed_bytes(n, k))};
    if (n < PACK_PARALLEL) o->mx->pack(x, ldx, n, k, j.xp);
    else tp_run(o->tp, (n + PACK_TOKENS - 1) / PACK_TOKENS, pack_task, &j);
    return j.xp;
}

/* ---- activations quantised once for a whole loop (8-bit path) -------------------------------- */

enum { QUANT_TOKENS = 8, QUANT_PARALLEL = 16 }; /* tokens per quantising task; fewer: the caller */

struct quant_job {
    const struct ops *o;
    enum dtype wt;
    const float *x;
    int64_t ldx;
    int n;
    struct qk_act a;
};

static void quant_task(void *arg, int task, int thread)
{
    struct quant_job *j = arg;
    int t0 = task * QUANT_TOKENS, t1 = t0 + QUANT_TOKENS < j->n ? t0 + QUANT_TOKENS : j->n;
    qk_quantize_rows(j->o, j->wt, j->x, j->ldx, t0, t1, &j->a);
}

void ops_quantize(const struct ops *o, enum dtype wt, const float *x, int64_t ldx, int n,
                  int64_t k, void *buf, struct qk_act *a)
{
    struct quant_job j = {o, wt, x, ldx, n, {0}};
    qk_layout(buf, k, n, &j.a, NULL, 0);
    if (n < QUANT_PARALLEL || tp_size(o->tp) < 2) qk_quantize_rows(o, wt, x, ldx, 0, n, &j.a);
    else tp_run(o->tp, (n + QUANT_TOKENS - 1) / QUANT_TOKENS, quant_task, &j);
    *a = j.a;
}

/* x quantised into the pool's shared buffer, so that every task of the next loop reads one copy
 * instead of each thread quantising its own. */
static struct qk_act quant_shared(const struct ops *o, enum dtype wt, const float *x, int64_t ldx,
                                  int n, int64_t k)
{
    struct qk_act a;
    ops_quantize(o, wt, x, ldx, n, k, tp_shared_scratch(o->tp, qk_scratch_bytes(k, n, 0)), &a);
    return a;
}

/* Whether a loop over these weights takes activations quantised once (quant_shared): the 8-bit
 * path, every weight quantised, all in one activation format. */
static int takes_q8(const struct ops *o, const struct weight *const *w, int n_w)
{
    if (!o->q8) return 0;
    for (int i = 0; i < n_w; i++)
        if (!qk_same_act(w[i]->dtype, w[0]->dtype)) return 0;
    return 1;
}

/* A loop task's share of rows: the matrix set's gemm on the shared packed activations, the
 * 8-bit dots on the shared quantised ones, or the F32 kernels. */
static void rows_task(const struct ops *o, int thread, const struct weight *w, int64_t a,
                      int64_t b, const float *x, int64_t ldx, const void *xp,
                      const struct qk_act *qa, int n, float *y, int64_t ldy)
{
    if (xp) mx_rows(o, w, a, b, xp, n, y, ldy, tp_scratch(o->tp, thread, o->mx->scratch_bytes((int)w->cols)));
    else if (qa) qk_matmul_act(o, thread, w, a, b, qa, n, y, ldy);
    else ops_matmul_serial(o, thread, w, a, b, x, ldx, n, y, ldy);
}

struct mm_job {
    const struct ops *o;
    const struct weight *w;
    int64_t r0, r1, chunk;
    const float *x;
    int64_t ldx, ldy;
    int n;
    float *y;
    const void *xp;         /* packed activations, or NULL */
    const struct qk_act *qa; /* quantised activations, or NULL */
};

static void mm_task(void *arg, int task, int thread)
{
    const struct mm_job *j = arg;
    int64_t a = j->r0 + (int64_t)task * j->chunk;
    int64_t b = a + j->chunk < j->r1 ? a + j->chunk : j->r1;
    rows_task(j->o, thread, j->w, a, b, j->x, j->ldx, j->xp, j->qa, j->n, j->y + (a - j->r0), j->ldy);
}

void ops_matmul_rows(const struct ops *o, const struct weight *w, int64_t r0, int64_t r1,
                     const float *x, int64_t ldx, int n, float *y, int64_t ldy)
{
    int64_t rows = r1 - r0, want = (int64_t)tp_size(o->tp) * TASKS_PER_THREAD;
    int64_t chunk = (rows + want - 1) / want;
    chunk = (chunk + 3) / 4 * 4;
    if (chunk < 16) chunk = 16;
    struct mm_job j = {o, w, r0, r1, chunk, x, ldx, ldy, n, y, NULL, NULL};
    struct qk_act qa;
    int n_tasks = (int)((rows + chunk - 1) / chunk);
    if (takes_mx(o, w)) j.xp = pack_shared(o, x, ldx, n, (int)w->cols);
    else if (n_tasks > 1 && takes_q8(o, &w, 1)) qa = quant_shared(o, w->dtype, x, ldx, n, w->cols), j.qa = &qa;
    tp_run(o->tp, n_tasks, mm_task, &j);
}

void ops_matmul(const struct ops *o, const struct weight *w, const float *x, int n, float *y)
{
    ops_matmul_rows(o, w, 0, w->rows, x, w->cols, n, y, w->rows);
}

enum { MANY_MAX = 4 };

struct many_job {
    const struct ops *o;
    const struct weight *const *w;
    float *const *y;
    int n_w, n;
    const float *x;
    int64_t chunk;
    int first[MANY_MAX + 1]; /* first task of each weight */
    const void *xp;          /* packed activations, when every weight takes the matrix set */
    const struct qk_act *qa; /* quantised activations, when every weight takes one format */
};

static void many_task(void *arg, int task, int thread)
{
    const struct many_job *j = arg;
    int i = 0;
    while (task >= j->first[i + 1]) i++;
    const struct weight *w = j->w[i];
    int64_t a = (int64_t)(task - j->first[i]) * j->chunk, b = a + j->chunk < w->rows ? a + j->chunk : w->rows;
    rows_task(j->o, thread, w, a, b, j->x, w->cols, j->xp, j->qa, j->n, j->y[i] + a, w->rows);
}

void ops_matmul_many(const struct ops *o, const struct weight *const *w, float *const *y, int n_w,
                     const float *x, int n)
{
    if (n_w > MANY_MAX) ERR_FATAL("ops_matmul_many: %d weights (at most %d)", n_w, MANY_MAX);
    int64_t rows = 0, want = (int64_t)tp_size(o->tp) * TASKS_PER_THREAD;
    for (int i = 0; i < n_w; i++) rows += w[i]->rows;
    int64_t chunk = ((rows + want - 1) / want + 3) / 4 * 4;
    struct many_job j = {o, w, y, n_w, n, x, chunk < 16 ? 16 : chunk, {0}, NULL, NULL};
    struct qk_act qa;
    int all_mx = 1;
    for (int i = 0; i < n_w; i++) all_mx &= takes_mx(o, w[i]);
    if (all_mx) j.xp = pack_shared(o, x, w[0]->cols, n, (int)w[0]->cols);
    else if (takes_q8(o, w, n_w)) qa = quant_shared(o, w[0]->dtype, x, w[0]->cols, n, w[0]->cols), j.qa = &qa;
    for (int i = 0; i < n_w; i++) j.first[i + 1] = j.first[i] + (int)((w[i]->rows + j.chunk - 1) / j.chunk);
    tp_run(o->tp, j.first[n_w], many_task, &j);
}
