/* classes: consuming states that classify every token alike share one cached mask.
 *
 * A token is classified from a stack top by walking its bytes through the top's rule (and the
 * rules that walk pushes), without knowing what lies below the top; so the classification
 * depends only on the top's behaviour over as many bytes as the token has. Moore-style partition
 * refinement makes that precise: B_0 puts every state in one class; B_k(s) is the class of
 * (accept(s), its byte edges with the B_{k-1} classes of their targets, its rule edges exactly).
 * Two tops whose byte edges lead to equal B_{D-1} classes behave alike for D bytes: they share a
 * class, and a classification walk trusts it D bytes deep, leaving longer tokens to be checked
 * against the real stack. A class with a single member is exact at any depth (the walk is from
 * that very state), as is every class when refinement stopped changing before D. In practice
 * classes with several members are the positions of bounded repetitions (maxLength, maxItems),
 * which is what lets the thousands of positions of a long string share a handful of masks. */
#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "engine/grammar/gram_internal.h"

/* A map from keys (int32 vectors) to dense ids, rebuilt every round. */
struct keymap {
    int32_t *pool; /* keys back to back */
    int64_t n_pool, cap_pool;
    int64_t *off; /* [n + 1] */
    int32_t n, cap;
    int32_t *slot; /* open addressing, -1 empty */
    size_t n_slot;
};

static void km_reset(struct keymap *m, int32_t expect)
{
    m->n = 0;
    m->n_pool = 0;
    size_t want = 16;
    while (want < (size_t)expect * 2 + 16) want *= 2;
    if (want != m->n_slot) {
        free(m->slot);
        m->slot = xmalloc(want * sizeof *m->slot);
        m->n_slot = want;
    }
    memset(m->slot, 0xff, m->n_slot * sizeof *m->slot);
    if (!m->off) m->off = xmalloc(sizeof *m->off);
    m->off[0] = 0;
}

static void km_free(struct keymap *m)
{
    free(m->pool);
    free(m->off);
    free(m->slot);
}

static uint64_t key_hash(const int32_t *k, int32_t n)
{
    uint64_t h = 0x9e3779b97f4a7c15ull ^ (uint64_t)n;
    for (int32_t i = 0; i < n; i++) h = (h ^ (uint32_t)k[i]) * 0x100000001b3ull;
    return h;
}

/* Doubles the slot table, re-inserting every key. */
static void km_grow(struct keymap *m)
{
    free(m->slot);
    m->n_slot *= 2;
    m->slot = xmalloc(m->n_slot * sizeof *m->slot);
    memset(m->slot, 0xff, m->n_slot * sizeof *m->slot);
    for (int32_t id = 0; id < m->n; id++) {
        int64_t o = m->off[id];
        size_t h = key_hash(m->pool + o, (int32_t)(m->off[id + 1] - o)) & (m->n_slot - 1);
        while (m->slot[h] >= 0) h = (h + 1) & (m->n_slot - 1);
        m->slot[h] = id;
    }
}

/* The id of key k[0..n), created when new. */
static int32_t km_id(struct keymap *m, const int32_t *k, int32_t n)
{
    if ((size_t)(m->n + 1) * 2 > m->n_slot) km_grow(m);
    size_t h = key_hash(k, n) & (m->n_slot - 1);
    for (; m->slot[h] >= 0; h = (h + 1) & (m->n_slot - 1)) {
        int32_t id = m->slot[h];
        int64_t o = m->off[id];
        if (m->off[id + 1] - o == n && (!n || !memcmp(m->pool + o, k, (size_t)n * sizeof *k)))
            return id;
    }
    if (m->n_pool + n > m->cap_pool) {
        m->cap_pool = (m->n_pool + n) * 2 + 64;
        m->pool = xrealloc(m->pool, (size_t)m->cap_pool * sizeof *m->pool);
    }
    if (m->n + 2 > m->cap) {
        m->cap = (m->n + 2) * 2;
        m->off = xrealloc(m->off, (size_t)m->cap * sizeof *m->off);
    }
    if (n) memcpy(m->pool + m->n_pool, k, (size_t)n * sizeof *k);
    m->n_pool += n;
    int32_t id = m->n++;
    m->off[id + 1] = m->n_pool;
    m->slot[h] = id;
    return id;
}

struct refine {
    const struct gram *g;
    int32_t *cur, *next; /* [n_states] B_{k-1}, B_k */
    int32_t n_cur;       /* classes in cur */
    int32_t *key;        /* scratch */
    int32_t cap_key;
    struct keymap km;  /* the state classes of a round */
    struct keymap top; /* the top classes */
};

static int32_t *key_room(struct refine *r, int32_t n)
{
    if (n > r->cap_key) {
        r->cap_key = n * 2;
        r->key = xrealloc(r->key, (size_t)r->cap_key * sizeof *r->key);
    }
    return r->key;
}

/* Byte edges of s as (lo, hi, class of target) triples into k; returns the length. */
static int32_t byte_key(const struct refine *r, int32_t s, int32_t *k)
{
    const struct gram *g = r->g;
    int32_t n = 0;
    for (int32_t i = g->b_off[s]; i < g->b_off[s + 1]; i++) {
        k[n++] = g->b[i].lo;
        k[n++] = g->b[i].hi;
        k[n++] = r->cur[g->b[i].to];
    }
    return n;
}

/* One round: next = B_k from cur = B_{k-1}. Returns the number of classes. */
static int32_t round_states(struct refine *r)
{
    const struct gram *g = r->g;
    km_reset(&r->km, g->n_states);
    for (int32_t s = 0; s < g->n_states; s++) {
        int32_t nb = g->b_off[s + 1] - g->b_off[s], nr = g->r_off[s + 1] - g->r_off[s];
        int32_t *k = key_room(r, 3 * nb + 2 * nr + 2), n = 0;
        k[n++] = g->accept[s];
        n += byte_key(r, s, k + n);
        for (int32_t i = g->r_off[s]; i < g->r_off[s + 1]; i++) {
            k[n++] = -1 - g->r[i].rule; /* negative: cannot collide with a byte triple */
            k[n++] = g->r[i].to;
        }
        r->next[s] = km_id(&r->km, k, n);
    }
    int32_t *t = r->cur;
    r->cur = r->next;
    r->next = t;
    return r->n_cur = r->km.n;
}

/* The class of every consuming top at the current depth (its byte edges over cur), into out. */
static void top_classes(struct refine *r, int32_t *out)
{
    const struct gram *g = r->g;
    km_reset(&r->top, g->n_states);
    for (int32_t s = 0; s < g->n_states; s++) {
        if (!gram_consuming(g, s)) {
            out[s] = -1;
            continue;
        }
        int32_t *k = key_room(r, 3 * (g->b_off[s + 1] - g->b_off[s]) + 1);
        out[s] = km_id(&r->top, k, byte_key(r, s, k));
    }
}

void gram_classes(struct gram *g, int32_t depth, int64_t work)
{
    struct refine r = {.g = g};
    int32_t n = g->n_states;
    r.cur = xcalloc((size_t)n + 1, sizeof *r.cur);
    r.next = xcalloc((size_t)n + 1, sizeof *r.next);
    r.n_cur = 1;
    int64_t per_round = (int64_t)n + g->b_off[n] + g->r_off[n];
    bool stable = false;
    for (int32_t k = 1; k < depth && !stable; k++) {
        int32_t before = r.n_cur;
        if ((work -= per_round) < 0) break; /* out of budget: classes are merely coarser */
        stable = round_states(&r) == before;
    }
    g->cls = xmalloc(((size_t)n + 1) * sizeof *g->cls);
    top_classes(&r, g->cls);
    g->n_cls = r.top.n;
    g->cls_rep = xmalloc(((size_t)g->n_cls + 1) * sizeof *g->cls_rep);
    g->cls_depth = xmalloc(((size_t)g->n_cls + 1) * sizeof *g->cls_depth);
    int32_t *members = xcalloc((size_t)g->n_cls + 1, sizeof *members);
    for (int32_t s = 0; s < n; s++)
        if (g->cls[s] >= 0) g->cls_rep[g->cls[s]] = s, members[g->cls[s]]++;
    /* A class of one state is exact at any depth; so is every class once refinement stopped
     * changing (equal behaviour ever after). Others are trusted `depth` bytes deep. */
    for (int32_t c = 0; c < g->n_cls; c++)
        g->cls_depth[c] = members[c] == 1 || stable ? INT32_MAX : depth;
    free(members);
    free(r.cur);
    free(r.next);
    free(r.key);
    km_free(&r.km);
    km_free(&r.top);
}
