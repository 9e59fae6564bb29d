/* vocab: the byte trie of the vocabulary — tokens sorted by their bytes, nodes in preorder. */
#include "engine/grammar/vocab.h"

#include <stdlib.h>
#include <string.h>

#include "engine/err.h"

struct entry {
    const uint8_t *s;
    size_t n;
    int32_t id;
};

static int cmp_entry(const void *a, const void *b)
{
    const struct entry *x = a, *y = b;
    size_t n = x->n < y->n ? x->n : y->n;
    int c = memcmp(x->s, y->s, n);
    if (c) return c;
    if (x->n != y->n) return x->n < y->n ? -1 : 1;
    return (x->id > y->id) - (x->id < y->id);
}

static size_t lcp(const struct entry *a, const struct entry *b)
{
    size_t i = 0;
    while (i < a->n && i < b->n && a->s[i] == b->s[i]) i++;
    return i;
}

/* Appends nodes for e's bytes below depth `from` (the part not shared with the previous token),
 * closing the subtrees left behind; open[d] is the open node at depth d. */
static void add_path(struct gv *v, const struct entry *e, size_t from, int32_t *open,
                     size_t *n_open)
{
    while (*n_open > from + 1) v->end[open[--*n_open]] = v->n_nodes;
    for (size_t d = from; d < e->n; d++) {
        int32_t i = v->n_nodes++;
        v->byte[i] = e->s[d];
        v->depth[i] = (uint16_t)(d + 1);
        v->tok_first[i] = v->n_toks;
        open[(*n_open)++] = i;
    }
}

static void build(struct gv *v, struct entry *es, int32_t n, size_t total)
{
    size_t cap = total + 2;
    v->byte = xcalloc(cap, 1);
    v->depth = xcalloc(cap, sizeof *v->depth);
    v->end = xcalloc(cap, sizeof *v->end);
    v->tok_first = xcalloc(cap + 1, sizeof *v->tok_first);
    v->toks = xmalloc(((size_t)n + 1) * sizeof *v->toks);
    int32_t *open = xmalloc((size_t)(v->max_len + 2) * sizeof *open);
    size_t n_open = 1;
    open[0] = 0;
    v->n_nodes = 1;
    for (int32_t i = 0; i < n; i++) {
        size_t shared = i ? lcp(&es[i - 1], &es[i]) : 0;
        if (i && shared == es[i].n && shared == es[i - 1].n) { /* same bytes as the previous */
            v->toks[v->n_toks++] = es[i].id;
            continue;
        }
        add_path(v, &es[i], shared, open, &n_open);
        v->toks[v->n_toks++] = es[i].id;
    }
    while (n_open > 0) v->end[open[--n_open]] = v->n_nodes;
    v->tok_first[v->n_nodes] = v->n_toks;
    free(open);
}

struct gv *gv_create(const struct tok *t, int32_t n_vocab)
{
    int32_t nt = tok_n_vocab(t);
    if (nt > n_vocab) nt = n_vocab;
    struct entry *es = xmalloc(((size_t)nt + 1) * sizeof *es);
    struct gv *v = xcalloc(1, sizeof *v);
    v->tok = t;
    v->n_vocab = n_vocab;
    v->special = xcalloc((size_t)n_vocab + 1, 1);
    int32_t n = 0;
    size_t total = 0;
    for (int32_t id = 0; id < nt; id++) {
        size_t len;
        const uint8_t *s = tok_bytes(t, id, &len);
        if (s && tok_is_added(t, id)) v->special[id] = 1;
        if (!s || !len || tok_is_added(t, id) || len > 65535) continue;
        es[n++] = (struct entry){.s = s, .n = len, .id = id};
        total += len;
        if ((int32_t)len > v->max_len) v->max_len = (int32_t)len;
    }
    qsort(es, (size_t)n, sizeof *es, cmp_entry);
    build(v, es, n, total);
    free(es);
    return v;
}

void gv_destroy(struct gv *v)
{
    if (!v) return;
    free(v->byte);
    free(v->depth);
    free(v->end);
    free(v->tok_first);
    free(v->toks);
    free(v->special);
    free(v);
}

const uint8_t *gv_bytes(const struct gv *v, int32_t id, size_t *len)
{
    *len = 0;
    if (id < 0 || id >= v->n_vocab || v->special[id]) return NULL;
    return tok_bytes(v->tok, id, len);
}
