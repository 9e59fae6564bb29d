/* shard: the split of a model over the ranks of a tensor-parallel job, and the column copies. */
#include "engine/cpu/shard.h"

#include <stdlib.h>
#include <string.h>

/* Columns per block of w's format: what a column copy must start and end on. */
static int64_t col_granule(const struct weight *w)
{
    if (w->dtype == DT_F8E4M3 && w->scale && w->block_cols > 0) return w->block_cols;
    return dtype_block(w->dtype);
}

/* 64-byte aligned, as the mapping's tensors are at least 32. */
static void *alloc_aligned(size_t n)
{
    return aligned_alloc(64, (n + 63) / 64 * 64);
}

/* The FP8 scale grid of columns [a, b) of w (a on a block boundary) into s->w.scale. */
static int copy_scales(const struct weight *w, int64_t a, int64_t b, struct shard_cols *s)
{
    int64_t br = w->block_rows, bc = w->block_cols;
    int64_t nbr = (w->rows + br - 1) / br, nbc = (w->cols + bc - 1) / bc;
    int64_t first = a / bc, n = (b - a + bc - 1) / bc;
    float *sc = alloc_aligned((size_t)(nbr * n) * sizeof *sc);
    if (!sc) return -1;
    for (int64_t i = 0; i < nbr; i++)
        memcpy(sc + i * n, (const float *)w->scale + i * nbc + first, (size_t)n * sizeof *sc);
    s->w.scale = sc;
    return 0;
}

/* Columns [c0, c1) of w, widened to whole blocks, copied row by row in w's dtype. */
static int copy_cols(const struct weight *w, int64_t c0, int64_t c1, struct shard_cols *s,
                     struct err *e)
{
    int64_t g = col_granule(w), b = (c1 + g - 1) / g * g;
    *s = (struct shard_cols){.w = *w, .a = c0 / g * g, .c0 = c0, .c1 = c1};
    s->w.data = s->w.scale = NULL;
    if (c1 <= c0) {
        s->w.cols = 0, s->a = c0;
        return 0;
    }
    if (b > w->cols) b = w->cols;
    s->w.cols = b - s->a;
    size_t row = dtype_row_bytes(w->dtype, w->cols), len = dtype_row_bytes(w->dtype, s->w.cols);
    size_t off = dtype_row_bytes(w->dtype, s->a);
    uint8_t *d = alloc_aligned(len * (size_t)w->rows);
    if (!d) return err_set(e, "cannot allocate this rank's columns of %s (%zu bytes)", w->name,
                           len * (size_t)w->rows);
    for (int64_t r = 0; r < w->rows; r++)
        memcpy(d + (size_t)r * len, (const uint8_t *)w->data + (size_t)r * row + off, len);
    s->w.data = d;
    if (w->dtype == DT_F8E4M3 && w->scale && copy_scales(w, s->a, b, s) != 0)
        return err_set(e, "cannot allocate this rank's scales of %s", w->name);
    return 0;
}

/* The layer's o_proj columns (this rank's heads) and its MLP's down columns. */
static int shard_layer_make(const struct model *m, const struct layer *L, const struct shard *s,
                            struct shard_layer *sl, struct err *e)
{
    int64_t per_head = L->o.cols / m->cfg.n_heads;
    if (copy_cols(&L->o, s->h0 * per_head, s->h1 * per_head, &sl->o, e) != 0) return -1;
    const struct weight *down = !L->is_moe ? &L->down : L->sh_down.data ? &L->sh_down : NULL;
    if (!down) return 0;
    comm_split(down->cols, s->size, s->rank, &sl->i0, &sl->i1);
    return copy_cols(down, sl->i0, sl->i1, &sl->down, e);
}

struct shard *shard_create(const struct model *m, struct comm *c, struct err *e)
{
    const struct model_config *cf = &m->cfg;
    if (cf->n_heads % c->size != 0) {
        err_set(e, "the model's %d attention heads do not divide by tensor_parallel_size %d",
                cf->n_heads, c->size);
        return NULL;
    }
    struct shard *s = xcalloc(1, sizeof *s);
    int64_t lo, hi;
    *s = (struct shard){.comm = c, .rank = c->rank, .size = c->size};
    s->h0 = cf->n_heads / c->size * c->rank, s->h1 = s->h0 + cf->n_heads / c->size;
    comm_split(cf->n_routed_experts, c->size, c->rank, &lo, &hi);
    s->e0 = (int)lo, s->e1 = (int)hi;
    comm_split(cf->vocab_size, c->size, c->rank, &s->v0, &s->v1);
    s->vbytes = xcalloc((size_t)c->size, sizeof *s->vbytes);
    for (int r = 0; r < c->size; r++) {
        comm_split(cf->vocab_size, c->size, r, &lo, &hi);
        s->vbytes[r] = (size_t)(hi - lo) * sizeof(float);
    }
    s->layers = xcalloc((size_t)cf->n_layers, sizeof *s->layers);
    s->n_layers = cf->n_layers;
    for (int il = 0; il < cf->n_layers; il++)
        if (shard_layer_make(m, &m->layers[il], s, &s->layers[il], e) != 0) {
            shard_destroy(s);
            return NULL;
        }
    return s;
}

static void cols_free(struct shard_cols *s)
{
    free((void *)s->w.data);
    free((void *)s->w.scale);
}

void shard_destroy(struct shard *s)
{
    if (!s) return;
    for (int il = 0; s->layers && il < s->n_layers; il++) {
        cols_free(&s->layers[il].o);
        cols_free(&s->layers[il].down);
    }
    free(s->layers);
    free(s->vbytes);
    free(s);
}

void shard_input(const struct shard_cols *s, const float *x, int64_t ldx, int n, float *out)
{
    int64_t w = s->w.cols;
    for (int t = 0; t < n; t++) {
        float *o = out + (size_t)t * w;
        memset(o, 0, (size_t)w * sizeof *o);
        memcpy(o + (s->c0 - s->a), x + (size_t)t * ldx + s->c0, (size_t)(s->c1 - s->c0) * sizeof *o);
    }
}

void shard_mask(const struct shard_cols *s, float *x, int n)
{
    int64_t w = s->w.cols, lo = s->c0 - s->a, hi = s->c1 - s->a;
    for (int t = 0; t < n; t++) {
        float *row = x + (size_t)t * w;
        memset(row, 0, (size_t)lo * sizeof *row);
        memset(row + hi, 0, (size_t)(w - hi) * sizeof *row);
    }
}

static uint64_t cols_bytes(const struct shard_cols *s)
{
    return s->w.data ? dtype_row_bytes(s->w.dtype, s->w.cols) * (uint64_t)s->w.rows : 0;
}

uint64_t shard_bytes(const struct shard *s)
{
    uint64_t n = 0;
    for (int il = 0; il < s->n_layers; il++)
        n += cols_bytes(&s->layers[il].o) + cols_bytes(&s->layers[il].down);
    return n;
}
