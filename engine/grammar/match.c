/* match: the pushdown automaton of one sequence — interned frames, expansion of reached states
 * into stack tops (pushing referenced rules, popping finished ones), stepping by bytes and tokens,
 * compaction of frames no top uses any more. */
#include "engine/grammar/match_internal.h"

#include <stdlib.h>
#include <string.h>

/* ---- interned frames ----------------------------------------------------------------------- */

static uint32_t frame_hash(int32_t state, int32_t parent)
{
    uint64_t k = (uint64_t)(uint32_t)state << 32 | (uint32_t)parent;
    k *= 0x9e3779b97f4a7c15ull;
    return (uint32_t)(k >> 32);
}

static void rebucket(struct gm *m, uint32_t n_bucket)
{
    free(m->bucket);
    m->n_bucket = n_bucket;
    m->bucket = xmalloc(n_bucket * sizeof *m->bucket);
    memset(m->bucket, 0xff, n_bucket * sizeof *m->bucket);
    for (int32_t i = 0; i < m->n_fr; i++) { /* ascending: every chain stays newest first */
        uint32_t h = frame_hash(m->fr[i].state, m->fr[i].parent) & (n_bucket - 1);
        m->fr_next[i] = m->bucket[h];
        m->bucket[h] = i;
    }
}

/* The frame (state, parent), made when new; -1 past GM_MAX_FRAMES. */
static int32_t intern(struct gm *m, int32_t state, int32_t parent)
{
    uint32_t h = frame_hash(state, parent) & (m->n_bucket - 1);
    for (int32_t i = m->bucket[h]; i >= 0; i = m->fr_next[i])
        if (m->fr[i].state == state && m->fr[i].parent == parent) return i;
    if (m->n_fr >= GM_MAX_FRAMES) return -1;
    if (m->n_fr == m->cap_fr) {
        m->cap_fr = m->cap_fr ? 2 * m->cap_fr : 256;
        m->fr = xrealloc(m->fr, (size_t)m->cap_fr * sizeof *m->fr);
        m->fr_next = xrealloc(m->fr_next, (size_t)m->cap_fr * sizeof *m->fr_next);
    }
    int32_t i = m->n_fr++;
    m->fr[i] = (struct gm_top){state, parent};
    m->fr_next[i] = m->bucket[h];
    m->bucket[h] = i;
    if ((uint32_t)m->n_fr > m->n_bucket) rebucket(m, m->n_bucket * 2);
    return i;
}

void gm_rewind(struct gm *m, int32_t mark)
{
    while (m->n_fr > mark) {
        int32_t i = --m->n_fr;
        uint32_t h = frame_hash(m->fr[i].state, m->fr[i].parent) & (m->n_bucket - 1);
        if (m->bucket[h] != i) ERR_FATAL("matcher frames rewound out of order");
        m->bucket[h] = m->fr_next[i];
    }
}

/* ---- levels -------------------------------------------------------------------------------- */

static void level_push(struct gm_level *l, struct gm_top t)
{
    if (l->n == l->cap) {
        l->cap = l->cap ? 2 * l->cap : 8;
        l->t = xrealloc(l->t, (size_t)l->cap * sizeof *l->t);
    }
    l->t[l->n++] = t;
}

void gm_level_copy(struct gm_level *dst, const struct gm_level *src)
{
    dst->n = 0;
    for (int32_t i = 0; i < src->n; i++) level_push(dst, src->t[i]);
    dst->flags = src->flags;
    dst->fr_mark = src->fr_mark;
}

struct gm_level *gm_level_at(struct gm *m, int32_t d)
{
    if (d >= m->n_lv) {
        int32_t n = d + 16;
        m->lv = xrealloc(m->lv, (size_t)n * sizeof *m->lv);
        memset(m->lv + m->n_lv, 0, (size_t)(n - m->n_lv) * sizeof *m->lv);
        m->n_lv = n;
    }
    return &m->lv[d];
}

struct gm_level *gm_walk_start(struct gm *m, int32_t max_depth, struct gm_top top)
{
    gm_level_at(m, max_depth + 1);
    struct gm_level *l0 = &m->lv[0];
    l0->n = 0;
    level_push(l0, top);
    l0->flags = 0;
    l0->fr_mark = m->n_fr;
    return l0;
}

/* ---- expansion ----------------------------------------------------------------------------- */

/* A visited set of (state, parent) pairs, cleared by bumping the generation; grows by
 * doubling (re-inserting this generation's entries). */
static void vis_insert(struct gm *m, uint64_t k)
{
    uint32_t h = frame_hash((int32_t)(k >> 32), (int32_t)(uint32_t)k) & (m->n_vis - 1);
    while (m->vis_gen[h] == m->gen) h = (h + 1) & (m->n_vis - 1);
    m->vis_gen[h] = m->gen;
    m->vis_key[h] = k;
}

static void vis_grow(struct gm *m)
{
    uint64_t *keys = m->vis_key;
    uint32_t *gens = m->vis_gen, n = m->n_vis;
    m->n_vis *= 2;
    m->vis_key = xmalloc(m->n_vis * sizeof *m->vis_key);
    m->vis_gen = xcalloc(m->n_vis, sizeof *m->vis_gen);
    for (uint32_t i = 0; i < n; i++)
        if (gens[i] == m->gen) vis_insert(m, keys[i]);
    free(keys);
    free(gens);
}

static bool visit(struct gm *m, struct gm_top t)
{
    uint64_t k = (uint64_t)(uint32_t)t.state << 32 | (uint32_t)t.parent;
    uint32_t h = frame_hash(t.state, t.parent) & (m->n_vis - 1);
    for (; m->vis_gen[h] == m->gen; h = (h + 1) & (m->n_vis - 1))
        if (m->vis_key[h] == k) return false;
    m->vis_gen[h] = m->gen;
    m->vis_key[h] = k;
    return true;
}

static void work_push(struct gm *m, int32_t *n, struct gm_top t)
{
    if (*n == m->cap_work) {
        m->cap_work *= 2;
        m->work = xrealloc(m->work, (size_t)m->cap_work * sizeof *m->work);
    }
    m->work[(*n)++] = t;
}

/* Handles one reached (state, parent): keeps it as a top if it consumes, pushes the rules it
 * references, pops when its rule may end. Returns -1 past a bound. */
static int expand_one(struct gm *m, struct gm_top t, int32_t *n_work, struct gm_level *out)
{
    const struct gram *g = m->g;
    if (gram_consuming(g, t.state)) {
        if (out->n >= GM_MAX_TOPS) return -1;
        level_push(out, t);
    }
    for (int32_t i = g->r_off[t.state]; i < g->r_off[t.state + 1]; i++) {
        int32_t q = intern(m, g->r[i].to, t.parent);
        if (q < 0) return -1;
        work_push(m, n_work, (struct gm_top){g->rule_start[g->r[i].rule], q});
    }
    if (!g->accept[t.state]) return 0;
    if (t.parent == GM_ROOT)
        out->flags |= GM_CAN_END;
    else if (t.parent == GM_UNKNOWN)
        out->flags |= GM_POP_UNKNOWN;
    else
        work_push(m, n_work, m->fr[t.parent]);
    return 0;
}

int gm_expand(struct gm *m, const struct gm_top *seeds, int32_t n, struct gm_level *out,
              struct err *e)
{
    out->n = 0;
    out->flags = 0;
    if (++m->gen == 0) { /* wrapped: clear the stamps */
        memset(m->vis_gen, 0, m->n_vis * sizeof *m->vis_gen);
        m->gen = 1;
    }
    int32_t n_work = 0;
    for (int32_t i = n - 1; i >= 0; i--) work_push(m, &n_work, seeds[i]);
    int32_t n_seen = 0;
    while (n_work) {
        struct gm_top t = m->work[--n_work];
        if (!visit(m, t)) continue;
        if (++n_seen * 2 >= (int32_t)m->n_vis) vis_grow(m);
        if (n_seen > 4 * GM_MAX_TOPS || expand_one(m, t, &n_work, out) != 0)
            return err_set(e,
                           "the grammar is too ambiguous here: more than %d parses alive at "
                           "once",
                           GM_MAX_TOPS);
        m->budget--;
    }
    out->fr_mark = m->n_fr;
    return 0;
}

int gm_step(struct gm *m, const struct gm_level *in, uint8_t c, struct gm_level *out, struct err *e)
{
    int32_t n = 0;
    struct gm_top seeds[64], *s = seeds;
    if (in->n > 64) s = xmalloc((size_t)in->n * sizeof *s);
    for (int32_t i = 0; i < in->n; i++) {
        int32_t to = gram_step(m->g, in->t[i].state, c);
        if (to >= 0) s[n++] = (struct gm_top){to, in->t[i].parent};
    }
    m->budget -= in->n;
    const struct gram *g = m->g;
    int32_t to = n == 1 ? s[0].state : -1;
    if (to >= 0 && g->r_off[to] == g->r_off[to + 1] && !g->accept[to] && gram_consuming(g, to)) {
        out->n = 0; /* the common case (inside a string, a number): nothing to push or pop */
        level_push(out, s[0]);
        out->flags = 0;
        out->fr_mark = m->n_fr;
        return 0;
    }
    int rc =
        n ? gm_expand(m, s, n, out, e) : (out->n = 0, out->flags = 0, out->fr_mark = m->n_fr, 0);
    if (s != seeds) free(s);
    return rc;
}

/* ---- life ---------------------------------------------------------------------------------- */

static void init_scratch(struct gm *m)
{
    m->n_bucket = 256;
    m->bucket = xmalloc(m->n_bucket * sizeof *m->bucket);
    memset(m->bucket, 0xff, m->n_bucket * sizeof *m->bucket);
    m->cap_work = 64;
    m->work = xmalloc((size_t)m->cap_work * sizeof *m->work);
    m->n_vis = 64;
    m->vis_key = xmalloc(m->n_vis * sizeof *m->vis_key);
    m->vis_gen = xcalloc(m->n_vis, sizeof *m->vis_gen);
}

struct gm *gm_create(struct gram *g, struct err *e)
{
    struct gm *m = xcalloc(1, sizeof *m);
    m->g = gram_ref(g);
    init_scratch(m);
    struct gm_top start = {g->rule_start[g->root], GM_ROOT};
    m->budget = INT64_MAX;
    if (gm_expand(m, &start, 1, &m->cur, e) != 0) {
        gm_destroy(m);
        return NULL;
    }
    m->live_fr = m->n_fr;
    return m;
}

struct gm *gm_clone(const struct gm *src)
{
    struct gm *m = xcalloc(1, sizeof *m);
    m->g = gram_ref(src->g);
    init_scratch(m);
    m->cap_fr = src->n_fr > 16 ? src->n_fr : 16;
    m->fr = xmalloc((size_t)m->cap_fr * sizeof *m->fr);
    m->fr_next = xmalloc((size_t)m->cap_fr * sizeof *m->fr_next);
    if (src->n_fr) memcpy(m->fr, src->fr, (size_t)src->n_fr * sizeof *m->fr);
    m->n_fr = src->n_fr;
    uint32_t nb = 256;
    while (nb < (uint32_t)m->n_fr) nb *= 2;
    rebucket(m, nb);
    m->live_fr = src->live_fr;
    gm_level_copy(&m->cur, &src->cur);
    return m;
}

struct gm *gm_bare(struct gram *g)
{
    struct gm *m = xcalloc(1, sizeof *m);
    m->g = g;
    init_scratch(m);
    return m;
}

void gm_bare_destroy(struct gm *m)
{
    if (!m) return;
    m->g = NULL;
    gm_destroy(m);
}

void gm_destroy(struct gm *m)
{
    if (!m) return;
    if (m->g) gram_unref(m->g);
    free(m->fr);
    free(m->fr_next);
    free(m->bucket);
    free(m->cur.t);
    free(m->work);
    free(m->vis_key);
    free(m->vis_gen);
    for (int32_t i = 0; i < m->n_lv; i++) free(m->lv[i].t);
    free(m->lv);
    free(m);
}

/* ---- committing input ---------------------------------------------------------------------- */

/* Keeps only the frames the current tops use, renumbered in order (parents stay below their
 * children), when garbage has piled up. */
static void compact(struct gm *m)
{
    if (m->n_fr < 2 * m->live_fr + 4096) return;
    int32_t *map = xmalloc((size_t)m->n_fr * sizeof *map);
    memset(map, 0xff, (size_t)m->n_fr * sizeof *map);
    for (int32_t i = 0; i < m->cur.n; i++)
        for (int32_t p = m->cur.t[i].parent; p >= 0 && map[p] < 0; p = m->fr[p].parent) map[p] = 0;
    int32_t n = 0;
    for (int32_t i = 0; i < m->n_fr; i++) {
        if (map[i] < 0) continue;
        map[i] = n;
        struct gm_top f = m->fr[i];
        if (f.parent >= 0) f.parent = map[f.parent];
        m->fr[n++] = f;
    }
    for (int32_t i = 0; i < m->cur.n; i++)
        if (m->cur.t[i].parent >= 0) m->cur.t[i].parent = map[m->cur.t[i].parent];
    m->n_fr = n;
    m->live_fr = n;
    uint32_t nb = 256;
    while (nb < (uint32_t)n) nb *= 2;
    rebucket(m, nb);
    free(map);
}

/* Walks bytes from the committed state through alternating levels; the last level, or NULL
 * (frames rewound) when the grammar refuses them. */
static struct gm_level *walk_bytes(struct gm *m, const uint8_t *s, size_t n, struct err *e)
{
    int32_t mark = m->n_fr;
    struct gm_level *at = &m->cur;
    m->budget = INT64_MAX;
    for (size_t i = 0; i < n; i++) {
        struct gm_level *next = gm_level_at(m, (int32_t)(i % 2));
        bool last = i + 1 == n;
        if (at->n == 0) {
            err_set(e, "the grammar does not allow more output here");
        } else if (gm_step(m, at, s[i], next, e) == 0) {
            if (next->n || (last && (next->flags & GM_CAN_END))) {
                at = next;
                continue;
            }
            err_set(e, "the grammar does not allow this output");
        }
        gm_rewind(m, mark);
        return NULL;
    }
    return at;
}

int gm_accept_bytes(struct gm *m, const uint8_t *s, size_t n, struct err *e)
{
    if (n == 0) return 0;
    struct gm_level *at = walk_bytes(m, s, n, e);
    if (!at) return -1;
    gm_level_copy(&m->cur, at);
    compact(m);
    return 0;
}

int gm_accept_token(struct gm *m, const struct gv *v, int32_t token, struct err *e)
{
    if (token < 0 || token >= v->n_vocab)
        return err_set(e, "token %d is outside the vocabulary", token);
    if (!v->special[token]) {
        size_t n;
        const uint8_t *s = gv_bytes(v, token, &n);
        if (!s || !n) return err_set(e, "token %d has no text the grammar can take", token);
        return gm_accept_bytes(m, s, n, e);
    }
    const struct gram *g = m->g;
    struct gm_top seeds[64];
    int32_t n = 0;
    for (int32_t i = 0; i < m->cur.n && n < 64; i++)
        for (int32_t k = g->t_off[m->cur.t[i].state]; k < g->t_off[m->cur.t[i].state + 1]; k++)
            if (g->t[k].token == token)
                seeds[n++] = (struct gm_top){g->t[k].to, m->cur.t[i].parent};
    if (!n) return err_set(e, "the grammar does not allow token %d here", token);
    struct gm_level *next = gm_level_at(m, 0);
    m->budget = INT64_MAX;
    if (gm_expand(m, seeds, n, next, e) != 0) return -1;
    gm_level_copy(&m->cur, next);
    compact(m);
    return 0;
}

bool gm_can_end(const struct gm *m)
{
    return m->cur.flags & GM_CAN_END;
}

bool gm_finished(const struct gm *m)
{
    return gm_can_end(m) && m->cur.n == 0;
}
