/* ops: threaded matmul over stored-dtype weights. A task owns a range of output rows; it widens
 * a few rows at a time into its scratch (once per row block, shared by every token) and runs the
 * kernel set's dot tiles over all tokens. */
#include "engine/cpu/ops.h"

#include "engine/cpu/quant_kernels.h"
#include "engine/err.h"

enum {
    BLOCK_BYTES = 96 * 1024, /* widened rows per block: about half of L2 would do; stay small */
    TASKS_PER_THREAD = 4,    /* for balance when row ranges cost the same */
};

/* Rows widened at once: a multiple of 4 whose floats fit BLOCK_BYTES (at least 4). */
static int rows_per_block(int64_t cols)
{
    int64_t rb = BLOCK_BYTES / (int64_t)(cols * sizeof(float));
    rb = rb / 4 * 4;
    return rb < 4 ? 4 : rb > 64 ? 64 : (int)rb;
}

void ops_matmul_serial(const struct ops *o, int thread, const struct weight *w, int64_t r0,
                       int64_t r1, const float *x, int64_t ldx, int n, float *y, int64_t ldy)
{
    if (dtype_is_quant(w->dtype)) { qk_matmul(o, thread, w, r0, r1, x, ldx, n, y, ldy); return; }
    if (o->k->direct && n <= SIMD_DIRECT_MAX && w->dtype != DT_F16) {
        o->k->direct(w, r0, (int)(r1 - r0), x, ldx, n, y, ldy);
        return;
    }
    int rb = rows_per_block(w->cols);
    float *buf = tp_scratch(o->tp, thread, (size_t)rb * (size_t)w->cols * sizeof(float));
    for (int64_t r = r0; r < r1; r += rb) {
        int nr = r1 - r < rb ? (int)(r1 - r) : rb;
        o->k->widen_rows(w, r, nr, buf, w->cols);
        o->k->dot_tile(buf, w->cols, nr, x, ldx, n, (int)w->cols, y + (r - r0), ldy);
    }
}

struct mm_job {
    const struct ops *o;
    const struct weight *w;
    int64_t r0, r1, chunk;
    const float *x;
    int64_t ldx, ldy;
    int n;
    float *y;
};

static void mm_task(void *arg, int task, int thread)
{
    const struct mm_job *j = arg;
    int64_t a = j->r0 + (int64_t)task * j->chunk;
    int64_t b = a + j->chunk < j->r1 ? a + j->chunk : j->r1;
    ops_matmul_serial(j->o, thread, j->w, a, b, j->x, j->ldx, j->n, j->y + (a - j->r0), j->ldy);
}

void ops_matmul_rows(const struct ops *o, const struct weight *w, int64_t r0, int64_t r1,
                     const float *x, int64_t ldx, int n, float *y, int64_t ldy)
{
    int64_t rows = r1 - r0, want = (int64_t)tp_size(o->tp) * TASKS_PER_THREAD;
    int64_t chunk = (rows + want - 1) / want;
    chunk = (chunk + 3) / 4 * 4;
    if (chunk < 16) chunk = 16;
    struct mm_job j = {o, w, r0, r1, chunk, x, ldx, ldy, n, y};
    tp_run(o->tp, (int)((rows + chunk - 1) / chunk), mm_task, &j);
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
};

static void many_task(void *arg, int task, int thread)
{
    const struct many_job *j = arg;
    int i = 0;
    while (task >= j->first[i + 1]) i++;
    const struct weight *w = j->w[i];
    int64_t a = (int64_t)(task - j->first[i]) * j->chunk, b = a + j->chunk < w->rows ? a + j->chunk : w->rows;
    ops_matmul_serial(j->o, thread, w, a, b, j->x, w->cols, j->n, j->y[i] + a, w->rows);
}

void ops_matmul_many(const struct ops *o, const struct weight *const *w, float *const *y, int n_w,
                     const float *x, int n)
{
    if (n_w > MANY_MAX) ERR_FATAL("ops_matmul_many: %d weights (at most %d)", n_w, MANY_MAX);
    int64_t rows = 0, want = (int64_t)tp_size(o->tp) * TASKS_PER_THREAD;
    for (int i = 0; i < n_w; i++) rows += w[i]->rows;
    int64_t chunk = ((rows + want - 1) / want + 3) / 4 * 4;
    struct many_job j = {o, w, y, n_w, n, x, chunk < 16 ? 16 : chunk, {0}};
    for (int i = 0; i < n_w; i++) j.first[i + 1] = j.first[i] + (int)((w[i]->rows + j.chunk - 1) / j.chunk);
    tp_run(o->tp, j.first[n_w], many_task, &j);
}
