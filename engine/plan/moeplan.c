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
