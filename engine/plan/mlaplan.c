/* mlaplan: cutting the (token, block) sequence into balanced work lists. */
#include "engine/plan/mlaplan.h"

#include <stdlib.h>

#include "engine/err.h"

static void reserve(struct mla_plan *p, int n_tokens, int n_ctas, int64_t max_items)
{
    p->cta_begin = 0;
    p->part_begin = (size_t)n_ctas + 1;
    p->items = p->part_begin + (size_t)n_tokens + 1;
    size_t need = p->items + (size_t)max_items * MLA_ITEM;
    if (need > p->cap) {
        free(p->buf);
        p->cap = need * 2;
        p->buf = xcalloc(p->cap, sizeof *p->buf);
    }
}

/* Appends an item; cta: its work list. */
static void emit(struct mla_plan *p, int32_t *cta_of, int32_t t, int32_t kv0, int32_t kv1, int cta)
{
    int32_t *it = p->buf + p->items + (size_t)p->n_items * MLA_ITEM;
    it[0] = t, it[1] = kv0, it[2] = kv1, it[3] = p->n_items;
    cta_of[p->n_items++] = cta;
}

void mla_build(struct mla_plan *p, const int32_t *ctx, int n_tokens, int block, int n_ctas,
               int fixed)
{
    int64_t total = 0, max_items = n_ctas;
    for (int t = 0; t < n_tokens; t++) {
        int64_t nb = (ctx[t] + block - 1) / block;
        total += nb + fixed, max_items += 1;
    }
    reserve(p, n_tokens, n_ctas, max_items);
    p->n_ctas = n_ctas, p->n_tokens = n_tokens, p->n_items = 0;
    p->payload = (int32_t)((total + n_ctas - 1) / n_ctas + fixed);
    int32_t *cta_of = xcalloc((size_t)max_items, sizeof *cta_of), *part = p->buf + p->part_begin;
    int cta = 0;
    int64_t used = 0;
    for (int t = 0; t < n_tokens; t++) {
        int32_t nb = (ctx[t] + block - 1) / block, b = 0;
        part[t] = p->n_items;
        while (b < nb) {
            int64_t room = p->payload - used - fixed;
            if (room <= 0 && used > 0 && cta < n_ctas - 1) { /* this list is full */
                cta++, used = 0;
                continue;
            }
            int32_t take = cta == n_ctas - 1 ? nb - b : (int32_t)(room < 1 ? 1 : room < nb - b ? room : nb - b);
            int32_t kv1 = (b + take) * block < ctx[t] ? (b + take) * block : ctx[t];
            emit(p, cta_of, t, b * block, kv1, cta);
            used += fixed + take, b += take;
        }
    }
    part[n_tokens] = p->n_items;
    int32_t *begin = p->buf + p->cta_begin;
    for (int c = 0, i = 0; c <= n_ctas; c++) {
        while (i < p->n_items && cta_of[i] < c) i++;
        begin[c] = i;
    }
    p->n_elems = p->items + (size_t)p->n_items * MLA_ITEM;
    free(cta_of);
}

void mla_free(struct mla_plan *p)
{
    free(p->buf);
    *p = (struct mla_plan){0};
}
