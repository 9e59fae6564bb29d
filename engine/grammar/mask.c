/* mask: allowed-token masks.
 *
 * Per class (classes.c), once, lazily: every token of the vocabulary is walked through the
 * class's representative state over an unknown stack (one trie walk, dead prefixes pruned):
 *   accepted  — its bytes end inside the top's rule or exactly where the rule may end;
 *   uncertain — some path pops out of the rule with bytes left (what follows depends on the
 *               stack below), or the token is longer than the class is trusted for;
 *   rejected  — otherwise.
 * Per step: the OR of the accepted sets of the tops' classes, plus the uncertain tokens that
 * survive a walk against each real top (sorted, sharing prefixes, skipping dead prefixes), plus
 * the tops' special-token edges, plus the stop tokens when the document may end. */
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "engine/grammar/match_internal.h"

#define MASK_BUDGET  (50 * 1000 * 1000) /* expansion steps for one mask; past it: an error */
#define CLASS_BUDGET (400 * 1000 * 1000)

struct gclass {
    uint64_t *accept;  /* [words] */
    int32_t *unc;      /* [n_unc] uncertain token ids, in trie order */
    uint16_t *unc_lcp; /* [n_unc] bytes shared with the previous uncertain token */
    int32_t n_unc;
    bool ready;
};

struct gmask_cache {
    const struct gv *v; /* the vocabulary the classes were made for */
    int32_t n_cls;
    struct gclass *c;   /* [n_cls] */
    struct gm *scratch; /* walks of the classification */
};

void gmask_cache_free(struct gmask_cache *c)
{
    if (!c) return;
    for (int32_t i = 0; i < c->n_cls; i++) {
        free(c->c[i].accept);
        free(c->c[i].unc);
        free(c->c[i].unc_lcp);
    }
    free(c->c);
    gm_bare_destroy(c->scratch);
    free(c);
}

static void set_bit(uint64_t *m, int32_t t)
{
    m[t >> 6] |= 1ull << (t & 63);
}

static bool get_bit(const uint64_t *m, int32_t t)
{
    return m[t >> 6] >> (t & 63) & 1;
}

/* ---- classification ------------------------------------------------------------------------ */

struct tokvec {
    int32_t *v;
    int32_t n, cap;
};

static void tv_push_range(struct tokvec *u, const int32_t *t, int32_t n)
{
    if (n <= 0) return;
    if (u->n + n > u->cap) {
        u->cap = (u->n + n) * 2;
        u->v = xrealloc(u->v, (size_t)u->cap * sizeof *u->v);
    }
    memcpy(u->v + u->n, t, (size_t)n * sizeof *t);
    u->n += n;
}

/* popped[d]: some path popped out of the top's rule within the first d bytes. */
struct walk {
    struct gm *m;
    const struct gv *v;
    uint64_t *accept;
    struct tokvec unc;
    uint8_t *popped;
};

/* The tokens ending at node i, given the level reached there. */
static void classify_node(struct walk *w, int32_t i, const struct gm_level *at, int32_t d)
{
    const struct gv *v = w->v;
    bool ok = at->n > 0 || (at->flags & GM_POP_UNKNOWN);
    int32_t a = v->tok_first[i], b = v->tok_first[i + 1];
    if (ok)
        for (int32_t k = a; k < b; k++) set_bit(w->accept, v->toks[k]);
    else if (w->popped[d - 1])
        tv_push_range(&w->unc, v->toks + a, b - a);
}

/* One preorder pass over the trie from the representative state. */
static int walk_trie(struct walk *w, int32_t rep, int32_t limit, struct err *e)
{
    const struct gv *v = w->v;
    struct gm *m = w->m;
    struct gm_level *l0 = gm_walk_start(m, v->max_len, (struct gm_top){rep, GM_UNKNOWN});
    w->popped[0] = 0;
    for (int32_t i = 1; i < v->n_nodes;) {
        int32_t d = v->depth[i];
        struct gm_level *up = &m->lv[d - 1], *at = &m->lv[d];
        gm_rewind(m, up->fr_mark);
        if (gm_step(m, up, v->byte[i], at, e) != 0) return -1;
        if (m->budget < 0) return err_set(e, "the grammar is too expensive to match");
        w->popped[d] = w->popped[d - 1] || (at->flags & GM_POP_UNKNOWN);
        classify_node(w, i, at, d);
        bool alive = at->n > 0;
        if (alive && d < limit) {
            i++;
            continue;
        }
        if (!alive ? w->popped[d] : true) /* the subtree below: uncertain, or rejected */
            tv_push_range(&w->unc, v->toks + v->tok_first[i + 1],
                          v->tok_first[v->end[i]] - v->tok_first[i + 1]);
        i = v->end[i];
    }
    gm_rewind(m, l0->fr_mark);
    return 0;
}

static uint16_t shared_prefix(const struct gv *v, int32_t a, int32_t b)
{
    size_t na, nb, i = 0;
    const uint8_t *x = gv_bytes(v, a, &na), *y = gv_bytes(v, b, &nb);
    while (i < na && i < nb && x[i] == y[i]) i++;
    return (uint16_t)i;
}

static int classify(struct gmask_cache *mc, const struct gram *g, int32_t c, struct err *e)
{
    const struct gv *v = mc->v;
    struct gclass *k = &mc->c[c];
    struct walk w = {.m = mc->scratch, .v = v};
    w.accept = xcalloc((size_t)gv_words(v), sizeof *w.accept);
    w.popped = xcalloc((size_t)v->max_len + 2, 1);
    w.m->budget = CLASS_BUDGET;
    int rc = walk_trie(&w, g->cls_rep[c], g->cls_depth[c], e);
    free(w.popped);
    if (rc != 0) {
        free(w.accept);
        free(w.unc.v);
        return -1;
    }
    k->accept = w.accept;
    k->unc = w.unc.v;
    k->n_unc = w.unc.n;
    k->unc_lcp = xmalloc(((size_t)w.unc.n + 1) * sizeof *k->unc_lcp);
    for (int32_t i = 0; i < w.unc.n; i++)
        k->unc_lcp[i] = i ? shared_prefix(v, w.unc.v[i - 1], w.unc.v[i]) : 0;
    k->ready = true;
    return 0;
}

/* Class c of g, classified for v on first use. NULL with a message. */
static const struct gclass *class_get(struct gram *g, const struct gv *v, int32_t c, struct err *e)
{
    pthread_mutex_lock(&g->mu);
    if (g->cache && g->cache->v != v) {
        gmask_cache_free(g->cache);
        g->cache = NULL;
    }
    if (!g->cache) {
        g->cache = xcalloc(1, sizeof *g->cache);
        g->cache->v = v;
        g->cache->n_cls = g->n_cls;
        g->cache->c = xcalloc((size_t)g->n_cls + 1, sizeof *g->cache->c);
        g->cache->scratch = gm_bare(g);
    }
    const struct gclass *k = &g->cache->c[c];
    if (!k->ready && classify(g->cache, g, c, e) != 0) k = NULL;
    pthread_mutex_unlock(&g->mu);
    return k;
}

/* ---- the mask of one state ------------------------------------------------------------------ */

/* Walks the class's uncertain tokens from the real top; sets the bits of those that fit. */
static int check_uncertain(struct gm *m, const struct gv *v, const struct gclass *k,
                           struct gm_top top, uint64_t *mask, struct err *e)
{
    int32_t base = m->n_fr, valid = 0, dead_at = INT32_MAX;
    gm_walk_start(m, v->max_len, top);
    for (int32_t j = 0; j < k->n_unc; j++) {
        int32_t t = k->unc[j], l = k->unc_lcp[j];
        if (dead_at <= l) continue; /* shares a prefix the grammar refused */
        dead_at = INT32_MAX;
        if (valid > l) valid = l;
        if (get_bit(mask, t)) continue;
        size_t n;
        const uint8_t *s = gv_bytes(v, t, &n);
        bool dead = false;
        for (int32_t d = valid + 1; d <= (int32_t)n && !dead; d++) {
            struct gm_level *up = &m->lv[d - 1], *at = &m->lv[d];
            gm_rewind(m, up->fr_mark);
            if (gm_step(m, up, s[d - 1], at, e) != 0) return -1;
            valid = d;
            if (at->n == 0 && !(d == (int32_t)n && (at->flags & GM_CAN_END))) {
                dead = true;
                dead_at = d;
                valid = d - 1;
            }
        }
        if (m->budget < 0) return err_set(e, "the grammar is too expensive to match");
        if (!dead) set_bit(mask, t);
    }
    gm_rewind(m, base);
    return 0;
}

static void or_words(uint64_t *dst, const uint64_t *src, int32_t n)
{
    for (int32_t i = 0; i < n; i++) dst[i] |= src[i];
}

int gm_fill_mask(struct gm *m, const struct gv *v, uint64_t *mask, const int32_t *stop, int n_stop,
                 struct err *e)
{
    struct gram *g = m->g;
    int32_t words = gv_words(v), n_seen = 0;
    int32_t seen[64];
    memset(mask, 0, (size_t)words * sizeof *mask);
    m->budget = MASK_BUDGET;
    for (int32_t i = 0; i < m->cur.n; i++) {
        struct gm_top top = m->cur.t[i];
        int32_t c = g->cls[top.state];
        for (int32_t k = g->t_off[top.state]; k < g->t_off[top.state + 1]; k++)
            if (g->t[k].token < v->n_vocab) set_bit(mask, g->t[k].token);
        if (g->b_off[top.state + 1] == g->b_off[top.state]) continue;
        const struct gclass *k = class_get(g, v, c, e);
        if (!k) return -1;
        bool dup = false;
        for (int32_t j = 0; j < n_seen; j++) dup |= seen[j] == c;
        if (!dup) {
            or_words(mask, k->accept, words);
            if (n_seen < 64) seen[n_seen++] = c;
        }
        if (check_uncertain(m, v, k, top, mask, e) != 0) return -1;
    }
    if (gm_can_end(m))
        for (int i = 0; i < n_stop; i++)
            if (stop[i] >= 0 && stop[i] < v->n_vocab) set_bit(mask, stop[i]);
    return 0;
}
