/* seq: sequence creation, token bookkeeping, finish rules, and the list type for queues.
 *
 * Owns: each sequence's token and stop-id arrays. Its block table is the block manager's
 * business (kvb_free before seq_destroy). */
#include "engine/seq.h"

#include <stdlib.h>
#include <string.h>

static int32_t *dup_ids(const int32_t *ids, int32_t n, int32_t cap)
{
    int32_t *p = xcalloc((size_t)cap, sizeof *p);
    if (n > 0) memcpy(p, ids, (size_t)n * sizeof *p);
    return p;
}

struct seq *seq_create(int64_t id, uint64_t arrival, const int32_t *prompt, int32_t n_prompt,
                       int32_t max_tokens, const int32_t *stop_ids, int32_t n_stop_ids)
{
    struct seq *s = xcalloc(1, sizeof *s);
    s->id = id;
    s->arrival = arrival;
    s->tokens = dup_ids(prompt, n_prompt, n_prompt + max_tokens);
    s->n_tokens = s->n_prompt = n_prompt;
    s->max_tokens = max_tokens;
    s->stop_ids = dup_ids(stop_ids, n_stop_ids, n_stop_ids);
    s->n_stop_ids = n_stop_ids;
    s->status = SEQ_WAITING;
    return s;
}

struct seq *seq_clone(const struct seq *parent, int64_t id, int32_t last_token)
{
    struct seq *s = seq_create(id, parent->arrival, parent->tokens, parent->n_prompt,
                               parent->max_tokens, parent->stop_ids, parent->n_stop_ids);
    memcpy(s->tokens, parent->tokens, (size_t)parent->n_tokens * sizeof *s->tokens);
    s->n_tokens = parent->n_tokens;
    s->tokens[s->n_tokens - 1] = last_token;
    s->n_cached = parent->n_cached;
    s->admitted_once = parent->admitted_once;
    return s;
}

void seq_destroy(struct seq *s)
{
    if (!s) return;
    if (s->table.n_ids)
        ERR_FATAL("seq %lld destroyed holding %d blocks", (long long)s->id, s->table.n_ids);
    free(s->tokens);
    free(s->stop_ids);
    free(s);
}

int32_t seq_n_generated(const struct seq *s)
{
    return s->n_tokens - s->n_prompt;
}

void seq_append(struct seq *s, int32_t token)
{
    if (seq_n_generated(s) >= s->max_tokens)
        ERR_FATAL("seq %lld: token past max_tokens %d", (long long)s->id, s->max_tokens);
    s->tokens[s->n_tokens++] = token;
}

enum seq_finish seq_finish_reason(const struct seq *s, bool stop)
{
    if (stop) return SEQ_FINISH_STOP;
    if (seq_n_generated(s) > 0) {
        int32_t last = s->tokens[s->n_tokens - 1];
        for (int32_t i = 0; i < s->n_stop_ids; i++)
            if (s->stop_ids[i] == last) return SEQ_FINISH_STOP;
    }
    if (seq_n_generated(s) >= s->max_tokens) return SEQ_FINISH_LENGTH;
    return SEQ_FINISH_NONE;
}

/* ---- lists --------------------------------------------------------------------------------- */

void seq_list_destroy(struct seq_list *l)
{
    free(l->items);
    memset(l, 0, sizeof *l);
}

static void list_reserve(struct seq_list *l, int32_t n)
{
    if (n <= l->cap) return;
    int32_t cap = l->cap ? l->cap * 2 : 16;
    while (cap < n) cap *= 2;
    struct seq **items = xcalloc((size_t)cap, sizeof *items);
    if (l->n) memcpy(items, l->items, (size_t)l->n * sizeof *items);
    free(l->items);
    l->items = items;
    l->cap = cap;
}

void seq_list_push_back(struct seq_list *l, struct seq *s)
{
    list_reserve(l, l->n + 1);
    l->items[l->n++] = s;
}

void seq_list_push_front(struct seq_list *l, struct seq *s)
{
    list_reserve(l, l->n + 1);
    memmove(l->items + 1, l->items, (size_t)l->n * sizeof *l->items);
    l->items[0] = s;
    l->n++;
}

void seq_list_remove_at(struct seq_list *l, int32_t i)
{
    memmove(l->items + i, l->items + i + 1, (size_t)(l->n - i - 1) * sizeof *l->items);
    l->n--;
}

int32_t seq_list_find(const struct seq_list *l, int64_t id)
{
    for (int32_t i = 0; i < l->n; i++)
        if (l->items[i]->id == id) return i;
    return -1;
}
