/* moeplan: a counting sort of (token, choice) pairs by expert, stable in token order. */
#include "engine/plan/moeplan.h"

#include <stdlib.h>
#include <string.h>

#include "engine/err.h"

static int valid(const int32_t *sel, int n_tokens, int k, int n_experts)
{
    for (int t = 0; t < n_tokens; t++)
        for (int j = 0; j < k; j++) {
            int32_t x = sel[t * k + j];
            if (x < 0 || x >= n_experts) return 0;
            for (int i = 0; i < j; i++)
                if (sel[t * k + i] == x) return 0;
        }
    return 1;
}

static void reserve(struct mp_plan *p, int n_tokens, int k, int n_experts)
{
    size_t rows = (size_t)n_tokens * (size_t)k, E = (size_t)n_experts;
    p->offset = 0;
    p->row_tok = E + 1;
    p->tok_row = p->row_tok + rows;
    p->active = p->tok_row + rows;
    p->n_elems = p->active + E;
    if (p->n_elems > p->cap) {
        free(p->buf);
        p->cap = p->n_elems * 2;
        p->buf = xcalloc(p->cap, sizeof *p->buf);
    }
}

int mp_build(struct mp_plan *p, const int32_t *sel, int n_tokens, int k, int n_experts)
{
    if (!valid(sel, n_tokens, k, n_experts)) return -1;
    reserve(p, n_tokens, k, n_experts);
    p->n_tokens = n_tokens, p->k = k, p->n_experts = n_experts, p->n_rows = n_tokens * k;
    int32_t *offset = p->buf + p->offset, *row_tok = p->buf + p->row_tok;
    int32_t *tok_row = p->buf + p->tok_row, *active = p->buf + p->active;
    memset(offset, 0, (size_t)(n_experts + 1) * sizeof *offset);
    for (int i = 0; i < n_tokens * k; i++) offset[sel[i] + 1]++;
    p->n_active = 0;
    for (int x = 0; x < n_experts; x++) {
        if (offset[x + 1]) active[p->n_active++] = x;
        offset[x + 1] += offset[x];
    }
    /* fill[x]: rows of expert x placed so far; t runs ascending, so each expert's rows are in
     * token order */
    int32_t *fill = xcalloc((size_t)n_experts, sizeof *fill);
    for (int t = 0; t < n_tokens; t++)
        for (int j = 0; j < k; j++) {
            int32_t x = sel[t * k + j], r = offset[x] + fill[x]++;
            row_tok[r] = t;
            tok_row[t * k + j] = r;
        }
    free(fill);
    return 0;
}

void mp_free(struct mp_plan *p)
{
    free(p->buf);
    *p = (struct mp_plan){0};
}

/* ---- the grouped GEMM's permutation ------------------------------------------------------- */

int32_t mp_grouped_max_rows(int n_tokens, int k, int n_experts, int shared, int align)
{
    int64_t groups = n_experts + (shared ? 1 : 0);
    return (int32_t)((int64_t)n_tokens * (k + (shared ? 1 : 0)) + groups * (align - 1));
}

static int32_t align_up(int32_t v, int32_t a)
{
    return (v + a - 1) / a * a;
}

int mp_grouped_build(struct mp_grouped *g, const int32_t *sel, int n_tokens, int k,
                     int n_experts, int shared, int align)
{
    if (!valid(sel, n_tokens, k, n_experts) || align < 1) return -1;
    int G = n_experts + (shared ? 1 : 0), kk = k + (shared ? 1 : 0);
    int32_t max_rows = mp_grouped_max_rows(n_tokens, k, n_experts, shared, align);
    g->count = 0, g->offset = (size_t)G, g->row_tok = g->offset + (size_t)G + 1;
    g->tok_row = g->row_tok + (size_t)max_rows, g->n_elems = g->tok_row + (size_t)n_tokens * kk;
    if (g->n_elems > g->cap) {
        free(g->buf);
        g->cap = g->n_elems * 2;
        g->buf = xcalloc(g->cap, sizeof *g->buf);
    }
    *g = (struct mp_grouped){.n_tokens = n_tokens, .k = k, .n_groups = G, .align = align,
                             .buf = g->buf, .cap = g->cap, .count = g->count, .offset = g->offset,
                             .row_tok = g->row_tok, .tok_row = g->tok_row, .n_elems = g->n_elems};
    int32_t *count = g->buf + g->count, *offset = g->buf + g->offset, *row_tok = g->buf + g->row_tok;
    int32_t *tok_row = g->buf + g->tok_row;
    memset(count, 0, (size_t)G * sizeof *count);
    for (int i = 0; i < n_tokens * k; i++) count[sel[i]]++;
    if (shared) count[n_experts] = n_tokens;
    offset[0] = 0;
    for (int x = 0; x < G; x++) offset[x + 1] = align_up(offset[x] + count[x], align);
    g->n_rows = offset[G];
    for (int32_t r = 0; r < g->n_rows; r++) row_tok[r] = -1;
    int32_t *fill = xcalloc((size_t)G, sizeof *fill);
    for (int t = 0; t < n_tokens; t++)
        for (int j = 0; j < kk; j++) {
            int32_t x = j < k ? sel[t * k + j] : n_experts, r = offset[x] + fill[x]++;
            row_tok[r] = t;
            tok_row[t * kk + j] = r;
        }
    free(fill);
    return 0;
}

void mp_grouped_free(struct mp_grouped *g)
{
    free(g->buf);
    *g = (struct mp_grouped){0};
}
