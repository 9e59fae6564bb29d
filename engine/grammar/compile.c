/* compile: builder NFA → the runtime grammar.
 *
 *   1. each rule's NFA is determinised (subset construction over bytes, rule references and
 *      tokens; epsilon closures; bounded by max_dfa_states and the work budget);
 *   2. states that can never complete their rule, and references to rules that can never
 *      complete, are dropped; a root that matches nothing is an error;
 *   3. left recursion (a rule reaching itself before consuming anything, possibly through rules
 *      that can be empty) is an error naming the rule: the matcher would push forever;
 *   4. the longest output is measured, the layout built, the classes computed. */
#include <stdlib.h>
#include <string.h>

#include "engine/grammar/gram_internal.h"
#include "engine/grammar/match.h"

/* ---- NFA adjacency ------------------------------------------------------------------------- */

struct nfa {
    int32_t n;
    int32_t *off;             /* [n + 1] */
    const struct gb_edge **e; /* edges by source */
    uint32_t *stamp;          /* [n] closure marks */
    uint32_t gen;
};

static void nfa_init(struct nfa *a, const struct gb *b)
{
    a->n = b->n_states;
    a->off = xcalloc((size_t)a->n + 1, sizeof *a->off);
    a->e = xmalloc(((size_t)b->n_edges + 1) * sizeof *a->e);
    for (int32_t i = 0; i < b->n_edges; i++) a->off[b->edges[i].from + 1]++;
    for (int32_t s = 0; s < a->n; s++) a->off[s + 1] += a->off[s];
    int32_t *at = xmalloc(((size_t)a->n + 1) * sizeof *at);
    memcpy(at, a->off, ((size_t)a->n + 1) * sizeof *at);
    for (int32_t i = 0; i < b->n_edges; i++) a->e[at[b->edges[i].from]++] = &b->edges[i];
    free(at);
    a->stamp = xcalloc((size_t)a->n + 1, sizeof *a->stamp);
    a->gen = 0;
}

static void nfa_free(struct nfa *a)
{
    free(a->off);
    free(a->e);
    free(a->stamp);
}

/* ---- growable int arrays -------------------------------------------------------------------- */

struct ivec {
    int32_t *v;
    int32_t n, cap;
};

static void iv_push(struct ivec *v, int32_t x)
{
    if (v->n == v->cap) {
        v->cap = v->cap ? 2 * v->cap : 16;
        v->v = xrealloc(v->v, (size_t)v->cap * sizeof *v->v);
    }
    v->v[v->n++] = x;
}

static int cmp_i32(const void *a, const void *b)
{
    int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
    return (x > y) - (x < y);
}

/* Epsilon closure of the states in set (in place, sorted, unique). */
static void closure(struct gb *b, struct nfa *a, struct ivec *set)
{
    a->gen++;
    for (int32_t i = 0; i < set->n; i++) a->stamp[set->v[i]] = a->gen;
    for (int32_t i = 0; i < set->n; i++) {
        int32_t s = set->v[i];
        gb_spend(b, a->off[s + 1] - a->off[s] + 1);
        for (int32_t k = a->off[s]; k < a->off[s + 1]; k++) {
            const struct gb_edge *e = a->e[k];
            if (e->kind != GB_EPS || a->stamp[e->to] == a->gen) continue;
            a->stamp[e->to] = a->gen;
            iv_push(set, e->to);
        }
    }
    if (set->n > 16) {
        qsort(set->v, (size_t)set->n, sizeof *set->v, cmp_i32);
        return;
    }
    for (int32_t i = 1; i < set->n; i++) /* most closures are tiny */
        for (int32_t j = i; j > 0 && set->v[j - 1] > set->v[j]; j--) {
            int32_t t = set->v[j];
            set->v[j] = set->v[j - 1], set->v[j - 1] = t;
        }
}

/* ---- the DFA under construction ---------------------------------------------------------------
 */

struct dedge {
    int32_t from, to, arg; /* arg: rule or token id */
    uint8_t kind, lo, hi;
};

struct dfa {
    int32_t n_states;
    struct ivec set_off; /* [n_states + 1] into sets */
    struct ivec sets;    /* the NFA subsets, back to back */
    uint8_t *accept;     /* [cap] */
    int32_t *rule;       /* [cap] owning rule */
    int32_t cap;
    struct dedge *e;
    int32_t n_e, cap_e;
    int32_t *hash; /* open addressing over subset ids, -1 empty */
    size_t hash_cap;
};

static uint64_t set_hash(const int32_t *v, int32_t n)
{
    uint64_t h = 0xcbf29ce484222325ull;
    for (int32_t i = 0; i < n; i++) h = (h ^ (uint32_t)v[i]) * 0x100000001b3ull;
    return h ^ (uint64_t)n;
}

static bool set_eq(const struct dfa *d, int32_t id, const int32_t *v, int32_t n)
{
    int32_t o = d->set_off.v[id], m = d->set_off.v[id + 1] - o;
    return m == n && !memcmp(d->sets.v + o, v, (size_t)n * sizeof *v);
}

static void rehash(struct dfa *d)
{
    d->hash_cap = d->hash_cap ? 2 * d->hash_cap : 1024;
    free(d->hash);
    d->hash = xmalloc(d->hash_cap * sizeof *d->hash);
    memset(d->hash, 0xff, d->hash_cap * sizeof *d->hash);
    for (int32_t id = 0; id < d->n_states; id++) {
        int32_t o = d->set_off.v[id];
        size_t h = set_hash(d->sets.v + o, d->set_off.v[id + 1] - o) & (d->hash_cap - 1);
        while (d->hash[h] >= 0) h = (h + 1) & (d->hash_cap - 1);
        d->hash[h] = id;
    }
}

/* The DFA state of subset set (sorted), created when new: *fresh set. -1 past the limit. */
static int32_t dfa_state(struct gb *b, struct dfa *d, const struct ivec *set, int32_t rule,
                         int32_t accept_state, bool *fresh)
{
    *fresh = false;
    if ((size_t)(d->n_states + 1) * 2 > d->hash_cap) rehash(d);
    size_t h = set_hash(set->v, set->n) & (d->hash_cap - 1);
    for (; d->hash[h] >= 0; h = (h + 1) & (d->hash_cap - 1))
        if (set_eq(d, d->hash[h], set->v, set->n)) return d->hash[h];
    if (d->n_states >= b->lim.max_dfa_states) {
        gb_fail(b, "the grammar needs more than %d states after determinisation",
                b->lim.max_dfa_states);
        return -1;
    }
    if (d->n_states == d->cap) {
        d->cap = d->cap ? 2 * d->cap : 256;
        d->accept = xrealloc(d->accept, (size_t)d->cap);
        d->rule = xrealloc(d->rule, (size_t)d->cap * sizeof *d->rule);
    }
    int32_t id = d->n_states++;
    if (!d->set_off.n) iv_push(&d->set_off, 0);
    for (int32_t i = 0; i < set->n; i++) iv_push(&d->sets, set->v[i]);
    iv_push(&d->set_off, d->sets.n);
    d->accept[id] = 0;
    for (int32_t i = 0; i < set->n; i++) d->accept[id] |= set->v[i] == accept_state;
    d->rule[id] = rule;
    d->hash[h] = id;
    *fresh = true;
    return id;
}

static void dfa_edge(struct dfa *d, struct dedge e)
{
    if (d->n_e == d->cap_e) {
        d->cap_e = d->cap_e ? 2 * d->cap_e : 1024;
        d->e = xrealloc(d->e, (size_t)d->cap_e * sizeof *d->e);
    }
    d->e[d->n_e++] = e;
}

static void dfa_free(struct dfa *d)
{
    free(d->set_off.v);
    free(d->sets.v);
    free(d->accept);
    free(d->rule);
    free(d->e);
    free(d->hash);
}

/* ---- subset construction ------------------------------------------------------------------- */

struct det {
    struct gb *b;
    struct nfa *a;
    struct dfa *d;
    struct ivec todo; /* DFA states whose edges are not made yet */
    struct ivec out;  /* scratch: non-epsilon NFA edges of the current subset (indices) */
    struct ivec tgt;  /* scratch: a target subset */
    int32_t rule, accept_state;
    int32_t *memo; /* [NFA states] DFA state of the closure of that one state, this rule */
    uint32_t *memo_gen, gen;
};

/* The DFA state reached by the NFA states in d->tgt (closed here). */
static int32_t target(struct det *x)
{
    bool fresh;
    int32_t one = x->tgt.n == 1 ? x->tgt.v[0] : -1; /* most edges lead to a single state */
    if (one >= 0 && x->memo_gen[one] == x->gen) return x->memo[one];
    closure(x->b, x->a, &x->tgt);
    int32_t id = dfa_state(x->b, x->d, &x->tgt, x->rule, x->accept_state, &fresh);
    if (fresh) iv_push(&x->todo, id);
    if (one >= 0) x->memo[one] = id, x->memo_gen[one] = x->gen;
    return id;
}

static const struct gb_edge *out_edge(const struct det *x, int32_t i)
{
    return x->a->e[x->out.v[i]];
}

static int cmp_u16(const void *a, const void *b)
{
    return (int)*(const uint16_t *)a - (int)*(const uint16_t *)b;
}

/* Byte edges: the elementary intervals between every range boundary (sorted, unique), merged
 * when adjacent intervals lead to the same state. */
static void det_bytes(struct det *x, int32_t from)
{
    uint16_t cut[512];
    int n_cut = 0;
    for (int32_t i = 0; i < x->out.n && n_cut < 510; i++) {
        const struct gb_edge *e = out_edge(x, i);
        if (e->kind != GB_BYTES) continue;
        cut[n_cut++] = e->lo, cut[n_cut++] = (uint16_t)(e->hi + 1);
    }
    if (!n_cut) return;
    if (n_cut >= 510) { /* many edges: every byte value may start an interval */
        n_cut = 0;
        for (int c = 0; c <= 256; c++) cut[n_cut++] = (uint16_t)c;
    }
    qsort(cut, (size_t)n_cut, sizeof *cut, cmp_u16);
    int m = 0;
    for (int i = 0; i < n_cut; i++)
        if (!m || cut[i] != cut[m - 1]) cut[m++] = cut[i];
    int32_t prev_to = -1, prev_lo = 0, prev_hi = -1;
    for (int k = 0; k + 1 < m && !x->b->failed; k++) {
        int lo = cut[k], hi = cut[k + 1] - 1;
        x->tgt.n = 0;
        gb_spend(x->b, x->out.n);
        for (int32_t i = 0; i < x->out.n; i++) {
            const struct gb_edge *e = out_edge(x, i);
            if (e->kind == GB_BYTES && e->lo <= lo && e->hi >= hi) iv_push(&x->tgt, e->to);
        }
        int32_t to = x->tgt.n ? target(x) : -1;
        if (to != prev_to || prev_hi + 1 != lo) {
            if (prev_to >= 0)
                dfa_edge(x->d, (struct dedge){.from = from,
                                              .to = prev_to,
                                              .kind = GB_BYTES,
                                              .lo = (uint8_t)prev_lo,
                                              .hi = (uint8_t)prev_hi});
            prev_to = to, prev_lo = lo;
        }
        prev_hi = hi;
    }
    if (prev_to >= 0)
        dfa_edge(x->d, (struct dedge){.from = from,
                                      .to = prev_to,
                                      .kind = GB_BYTES,
                                      .lo = (uint8_t)prev_lo,
                                      .hi = (uint8_t)prev_hi});
}

static int cmp_kind_arg(const void *p, const void *q)
{
    const struct gb_edge *a = *(const struct gb_edge *const *)p,
                         *b = *(const struct gb_edge *const *)q;
    if (a->kind != b->kind) return a->kind - b->kind;
    return (a->arg > b->arg) - (a->arg < b->arg);
}

/* Rule and token edges: one DFA edge per (kind, id). */
static void det_symbols(struct det *x, int32_t from)
{
    const struct gb_edge **es = xmalloc(((size_t)x->out.n + 1) * sizeof *es);
    int32_t n = 0;
    for (int32_t i = 0; i < x->out.n; i++)
        if (out_edge(x, i)->kind == GB_RULE || out_edge(x, i)->kind == GB_TOKEN)
            es[n++] = out_edge(x, i);
    qsort(es, (size_t)n, sizeof *es, cmp_kind_arg);
    for (int32_t i = 0; i < n && !x->b->failed;) {
        int32_t j = i;
        x->tgt.n = 0;
        while (j < n && es[j]->kind == es[i]->kind && es[j]->arg == es[i]->arg)
            iv_push(&x->tgt, es[j++]->to);
        int32_t to = target(x);
        if (to >= 0)
            dfa_edge(x->d, (struct dedge){
                               .from = from, .to = to, .kind = es[i]->kind, .arg = es[i]->arg});
        i = j;
    }
    free(es);
}

/* Returns the DFA state of the rule's start. */
static int32_t determinise_rule(struct det *x, int32_t rule)
{
    x->rule = rule;
    x->accept_state = x->b->rule_accept[rule];
    x->gen++;
    x->tgt.n = 0;
    iv_push(&x->tgt, x->b->rule_start[rule]);
    x->todo.n = 0;
    int32_t start = target(x);
    while (x->todo.n && !x->b->failed) {
        int32_t id = x->todo.v[--x->todo.n];
        x->out.n = 0;
        for (int32_t k = x->d->set_off.v[id]; k < x->d->set_off.v[id + 1]; k++) {
            int32_t s = x->d->sets.v[k];
            for (int32_t i = x->a->off[s]; i < x->a->off[s + 1]; i++)
                if (x->a->e[i]->kind != GB_EPS) iv_push(&x->out, i);
        }
        det_bytes(x, id);
        det_symbols(x, id);
    }
    return start;
}

/* ---- pruning, checks, layout --------------------------------------------------------------- */

/* live[s]: s can complete its rule (through bytes, tokens and productive rules). A worklist
 * over reverse edges: a state turns live once some edge leads to a live state (for a rule edge,
 * also the referenced rule's start must be live). */
struct rev {
    int32_t *off, *e;   /* edges by target state: e[off[t] .. off[t+1]) */
    int32_t *roff, *re; /* rule edges by the rule they reference */
};

static void rev_build(const struct dfa *d, int32_t n_rules, struct rev *r)
{
    int32_t n = d->n_states;
    r->off = xcalloc((size_t)n + 2, sizeof *r->off);
    r->roff = xcalloc((size_t)n_rules + 2, sizeof *r->roff);
    r->e = xmalloc(((size_t)d->n_e + 1) * sizeof *r->e);
    r->re = xmalloc(((size_t)d->n_e + 1) * sizeof *r->re);
    for (int32_t i = 0; i < d->n_e; i++) {
        r->off[d->e[i].to + 1]++;
        if (d->e[i].kind == GB_RULE) r->roff[d->e[i].arg + 1]++;
    }
    for (int32_t t = 0; t < n; t++) r->off[t + 1] += r->off[t];
    for (int32_t k = 0; k < n_rules; k++) r->roff[k + 1] += r->roff[k];
    int32_t *at = xmalloc(((size_t)n + 1) * sizeof *at),
            *rat = xmalloc(((size_t)n_rules + 1) * sizeof *rat);
    memcpy(at, r->off, (size_t)n * sizeof *at);
    memcpy(rat, r->roff, (size_t)n_rules * sizeof *rat);
    for (int32_t i = 0; i < d->n_e; i++) {
        r->e[at[d->e[i].to]++] = i;
        if (d->e[i].kind == GB_RULE) r->re[rat[d->e[i].arg]++] = i;
    }
    free(at);
    free(rat);
}

static uint8_t *live_states(struct gb *b, const struct dfa *d, const int32_t *start)
{
    struct rev r;
    rev_build(d, b->n_rules, &r);
    uint8_t *live = xcalloc((size_t)d->n_states + 1, 1);
    uint8_t *rule_live = xcalloc((size_t)b->n_rules + 1, 1);
    struct ivec st = {0};
    for (int32_t s = 0; s < d->n_states; s++)
        if (d->accept[s]) live[s] = 1, iv_push(&st, s);
    gb_spend(b, (int64_t)d->n_states + d->n_e);
    while (st.n) {
        int32_t t = st.v[--st.n];
        for (int32_t k = r.off[t]; k < r.off[t + 1]; k++) { /* edges into t */
            const struct dedge *e = &d->e[r.e[k]];
            if (live[e->from] || (e->kind == GB_RULE && !live[start[e->arg]])) continue;
            live[e->from] = 1, iv_push(&st, e->from);
        }
        int32_t rule = d->rule[t];
        if (start[rule] != t || rule_live[rule]) continue;
        rule_live[rule] = 1; /* t is its rule's start: edges referencing the rule may now pass */
        for (int32_t k = r.roff[rule]; k < r.roff[rule + 1]; k++) {
            const struct dedge *e = &d->e[r.re[k]];
            if (live[e->from] || !live[e->to]) continue;
            live[e->from] = 1, iv_push(&st, e->from);
        }
    }
    free(st.v);
    free(rule_live);
    free(r.off), free(r.e), free(r.roff), free(r.re);
    return live;
}

/* Marks what the root reaches (rule starts included) and numbers it densely into map. */
static int32_t reach(const struct dfa *d, const int32_t *start, int32_t root, const uint8_t *live,
                     const int32_t *eoff, int32_t *map)
{
    for (int32_t s = 0; s < d->n_states; s++) map[s] = -1;
    struct ivec st = {0};
    iv_push(&st, start[root]);
    map[start[root]] = 0;
    int32_t n = 1;
    while (st.n) {
        int32_t s = st.v[--st.n];
        for (int32_t i = eoff[s]; i < eoff[s + 1]; i++) {
            const struct dedge *e = &d->e[i];
            if (!live[e->to] || (e->kind == GB_RULE && !live[start[e->arg]])) continue;
            int32_t next[2] = {e->to, e->kind == GB_RULE ? start[e->arg] : -1};
            for (int k = 0; k < 2; k++)
                if (next[k] >= 0 && map[next[k]] < 0) map[next[k]] = n++, iv_push(&st, next[k]);
        }
    }
    free(st.v);
    return n;
}

static int cmp_dedge(const void *p, const void *q)
{
    const struct dedge *a = p, *b = q;
    if (a->from != b->from) return (a->from > b->from) - (a->from < b->from);
    if (a->kind != b->kind) return a->kind - b->kind;
    if (a->kind == GB_BYTES) return a->lo - b->lo;
    return (a->arg > b->arg) - (a->arg < b->arg);
}

/* Fills g's state arrays from the surviving DFA states and edges (renumbered through map). */
static void layout(struct gram *g, const struct dfa *d, const int32_t *start, const uint8_t *live,
                   const int32_t *map, int32_t n)
{
    g->n_states = n;
    g->accept = xcalloc((size_t)n, 1);
    g->b_off = xcalloc((size_t)n + 1, sizeof *g->b_off);
    g->r_off = xcalloc((size_t)n + 1, sizeof *g->r_off);
    g->t_off = xcalloc((size_t)n + 1, sizeof *g->t_off);
    struct dedge *es = xmalloc(((size_t)d->n_e + 1) * sizeof *es);
    int32_t m = 0;
    for (int32_t i = 0; i < d->n_e; i++) {
        struct dedge e = d->e[i];
        if (map[e.from] < 0 || !live[e.to] || (e.kind == GB_RULE && !live[start[e.arg]])) continue;
        e.from = map[e.from], e.to = map[e.to];
        es[m++] = e;
    }
    qsort(es, (size_t)m, sizeof *es, cmp_dedge);
    for (int32_t s = 0; s < d->n_states; s++)
        if (map[s] >= 0) g->accept[map[s]] = d->accept[s];
    int32_t nb = 0, nr = 0, nt = 0;
    for (int32_t i = 0; i < m; i++)
        nb += es[i].kind == GB_BYTES, nr += es[i].kind == GB_RULE, nt += es[i].kind == GB_TOKEN;
    g->b = xmalloc(((size_t)nb + 1) * sizeof *g->b);
    g->r = xmalloc(((size_t)nr + 1) * sizeof *g->r);
    g->t = xmalloc(((size_t)nt + 1) * sizeof *g->t);
    nb = nr = nt = 0;
    for (int32_t i = 0, s = 0; s < n; s++) {
        g->b_off[s] = nb, g->r_off[s] = nr, g->t_off[s] = nt;
        for (; i < m && es[i].from == s; i++) {
            if (es[i].kind == GB_BYTES)
                g->b[nb++] = (struct gram_bedge){.lo = es[i].lo, .hi = es[i].hi, .to = es[i].to};
            else if (es[i].kind == GB_RULE)
                g->r[nr++] = (struct gram_redge){.rule = es[i].arg, .to = es[i].to};
            else
                g->t[nt++] = (struct gram_tedge){.token = es[i].arg, .to = es[i].to};
        }
    }
    g->b_off[n] = nb, g->r_off[n] = nr, g->t_off[n] = nt;
    free(es);
}

/* ---- left recursion -------------------------------------------------------------------------- */

/* Visits the states of a rule reachable from its start without consuming anything: through
 * references to rules that can be empty. Calls fn(state) on each; stops early when it returns
 * true (and returns true). */
static bool walk_empty(const struct gram *g, const uint8_t *nullable, int32_t start,
                       uint32_t *stamp, uint32_t gen, struct ivec *st,
                       bool (*fn)(const struct gram *g, int32_t s, void *arg), void *arg)
{
    st->n = 0;
    iv_push(st, start);
    stamp[start] = gen;
    while (st->n) {
        int32_t s = st->v[--st->n];
        if (fn(g, s, arg)) return true;
        for (int32_t i = g->r_off[s]; i < g->r_off[s + 1]; i++) {
            int32_t to = g->r[i].to;
            if (!nullable[g->r[i].rule] || stamp[to] == gen) continue;
            stamp[to] = gen;
            iv_push(st, to);
        }
    }
    return false;
}

static bool is_accept(const struct gram *g, int32_t s, void *arg)
{
    (void)arg;
    return g->accept[s];
}

/* Collects the rules referenced from s into the ivec arg. */
static bool add_refs(const struct gram *g, int32_t s, void *arg)
{
    for (int32_t i = g->r_off[s]; i < g->r_off[s + 1]; i++) iv_push(arg, g->r[i].rule);
    return false;
}

static uint8_t *nullable_rules(struct gb *b, const struct gram *g, uint32_t *stamp, uint32_t *gen,
                               struct ivec *st)
{
    uint8_t *nullable = xcalloc((size_t)g->n_rules + 1, 1);
    for (bool changed = true; changed && !b->failed;) {
        changed = false;
        for (int32_t r = 0; r < g->n_rules; r++) {
            if (nullable[r] || g->rule_start[r] < 0) continue;
            gb_spend(b, 16);
            if (walk_empty(g, nullable, g->rule_start[r], stamp, ++*gen, st, is_accept, NULL))
                nullable[r] = 1, changed = true;
        }
    }
    return nullable;
}

/* Depth-first search for a cycle in the left-corner graph; the rule on it, or -1. */
static int32_t left_cycle(const struct ivec *lc, int32_t n_rules)
{
    uint8_t *color = xcalloc((size_t)n_rules + 1, 1); /* 0 new, 1 on the path, 2 done */
    int32_t *pos = xcalloc((size_t)n_rules + 1, sizeof *pos);
    struct ivec st = {0};
    int32_t found = -1;
    for (int32_t r0 = 0; r0 < n_rules && found < 0; r0++) {
        if (color[r0]) continue;
        iv_push(&st, r0);
        color[r0] = 1;
        while (st.n && found < 0) {
            int32_t r = st.v[st.n - 1];
            if (pos[r] == lc[r].n) {
                color[r] = 2;
                st.n--;
                continue;
            }
            int32_t nx = lc[r].v[pos[r]++];
            if (color[nx] == 1)
                found = nx;
            else if (!color[nx])
                color[nx] = 1, iv_push(&st, nx);
        }
        st.n = 0;
    }
    free(st.v);
    free(color);
    free(pos);
    return found;
}

static void check_left_recursion(struct gb *b, const struct gram *g)
{
    uint32_t *stamp = xcalloc((size_t)g->n_states + 1, sizeof *stamp), gen = 0;
    struct ivec st = {0};
    uint8_t *nullable = nullable_rules(b, g, stamp, &gen, &st);
    struct ivec *lc = xcalloc((size_t)g->n_rules + 1, sizeof *lc);
    for (int32_t r = 0; r < g->n_rules && !b->failed; r++)
        if (g->rule_start[r] >= 0) {
            gb_spend(b, 16);
            walk_empty(g, nullable, g->rule_start[r], stamp, ++gen, &st, add_refs, &lc[r]);
        }
    int32_t bad = b->failed ? -1 : left_cycle(lc, g->n_rules);
    if (bad >= 0)
        gb_fail(b, "rule '%s' is left-recursive: it can reach itself before consuming anything",
                g->rule_name[bad]);
    for (int32_t r = 0; r < g->n_rules; r++) free(lc[r].v);
    free(lc);
    free(nullable);
    free(st.v);
    free(stamp);
}

/* ---- the longest output -------------------------------------------------------------------- */

/* len[s]: longest byte path from s to the end of its rule; -1 when a cycle makes it unbounded.
 * Iterative depth-first postorder over states, rule starts counted as dependencies. */
static int64_t longest(const struct gram *g)
{
    int32_t n = g->n_states;
    int64_t *len = xmalloc((size_t)n * sizeof *len);
    uint8_t *color = xcalloc((size_t)n, 1);
    struct ivec st = {0};
    bool cyclic = false;
    int32_t root = g->rule_start[g->root];
    iv_push(&st, root);
    while (st.n && !cyclic) {
        int32_t s = st.v[st.n - 1];
        if (color[s] == 0) {
            color[s] = 1;
            for (int32_t i = g->b_off[s]; i < g->b_off[s + 1]; i++) iv_push(&st, g->b[i].to);
            for (int32_t i = g->t_off[s]; i < g->t_off[s + 1]; i++) iv_push(&st, g->t[i].to);
            for (int32_t i = g->r_off[s]; i < g->r_off[s + 1]; i++)
                iv_push(&st, g->r[i].to), iv_push(&st, g->rule_start[g->r[i].rule]);
            continue;
        }
        st.n--;
        if (color[s] == 2) continue;
        int64_t best = g->accept[s] ? 0 : INT64_MIN;
        for (int32_t i = g->b_off[s]; i < g->b_off[s + 1]; i++) {
            int32_t to = g->b[i].to;
            if (color[to] != 2)
                cyclic = true;
            else if (len[to] + 1 > best)
                best = len[to] + 1;
        }
        for (int32_t i = g->t_off[s]; i < g->t_off[s + 1]; i++) {
            int32_t to = g->t[i].to;
            if (color[to] != 2)
                cyclic = true;
            else if (len[to] > best)
                best = len[to];
        }
        for (int32_t i = g->r_off[s]; i < g->r_off[s + 1]; i++) {
            int32_t to = g->r[i].to, rs = g->rule_start[g->r[i].rule];
            if (color[to] != 2 || color[rs] != 2)
                cyclic = true;
            else if (len[to] + len[rs] > best)
                best = len[to] + len[rs];
        }
        len[s] = best;
        color[s] = 2;
    }
    int64_t out = cyclic ? -1 : len[root];
    free(st.v);
    free(color);
    free(len);
    return out;
}

/* ---- the whole compile ---------------------------------------------------------------------- */

static void check_rules_defined(struct gb *b, int32_t root)
{
    if (root < 0 || root >= b->n_rules || b->rule_start[root] < 0) {
        gb_fail(b, "the grammar has no root rule");
        return;
    }
    for (int32_t i = 0; i < b->n_edges && !b->failed; i++)
        if (b->edges[i].kind == GB_RULE && b->rule_start[b->edges[i].arg] < 0)
            gb_fail(b, "rule '%s' is used but never defined", b->rule_name[b->edges[i].arg]);
}

/* Determinises every defined rule into d; start[r] gets each rule's DFA start (-1: undefined). */
static void determinise(struct gb *b, struct dfa *d, int32_t *start)
{
    struct nfa a;
    nfa_init(&a, b);
    struct det x = {.b = b, .a = &a, .d = d};
    x.memo = xmalloc(((size_t)b->n_states + 1) * sizeof *x.memo);
    x.memo_gen = xcalloc((size_t)b->n_states + 1, sizeof *x.memo_gen);
    for (int32_t r = 0; r < b->n_rules; r++) {
        start[r] = -1;
        if (b->rule_start[r] >= 0 && !b->failed) start[r] = determinise_rule(&x, r);
    }
    free(x.memo);
    free(x.memo_gen);
    free(x.todo.v);
    free(x.out.v);
    free(x.tgt.v);
    nfa_free(&a);
}

static struct gram *gram_alloc(const struct gb *b, int32_t root)
{
    struct gram *g = xcalloc(1, sizeof *g);
    g->refs = 1;
    g->root = root;
    g->n_rules = b->n_rules;
    g->rule_start = xmalloc(((size_t)b->n_rules + 1) * sizeof *g->rule_start);
    g->rule_name = xcalloc((size_t)b->n_rules + 1, sizeof *g->rule_name);
    for (int32_t r = 0; r < b->n_rules; r++) {
        g->rule_name[r] = strdup(b->rule_name[r]);
        if (!g->rule_name[r]) ERR_FATAL("out of memory");
    }
    pthread_mutex_init(&g->mu, NULL);
    return g;
}

struct gram *gram_compile(struct gb *b, int32_t root, struct err *e)
{
    struct gram *g = NULL;
    struct dfa d = {0};
    int32_t *start = xcalloc((size_t)b->n_rules + 1, sizeof *start);
    check_rules_defined(b, root);
    if (!b->failed) determinise(b, &d, start);
    uint8_t *live = b->failed ? NULL : live_states(b, &d, start);
    if (live && !b->failed && !live[start[root]])
        gb_fail(b, "the grammar matches nothing: rule '%s' can never be completed",
                b->rule_name[root]);
    if (!b->failed) {
        int32_t *eoff = xcalloc((size_t)d.n_states + 1, sizeof *eoff), *map;
        qsort(d.e, (size_t)d.n_e, sizeof *d.e, cmp_dedge);
        for (int32_t i = 0; i < d.n_e; i++) eoff[d.e[i].from + 1]++;
        for (int32_t s = 0; s < d.n_states; s++) eoff[s + 1] += eoff[s];
        map = xmalloc(((size_t)d.n_states + 1) * sizeof *map);
        int32_t n = reach(&d, start, root, live, eoff, map);
        g = gram_alloc(b, root);
        layout(g, &d, start, live, map, n);
        for (int32_t r = 0; r < b->n_rules; r++)
            g->rule_start[r] = start[r] >= 0 && live[start[r]] ? map[start[r]] : -1;
        free(eoff);
        free(map);
        check_left_recursion(b, g);
    }
    if (g && !b->failed) {
        g->max_bytes = longest(g);
        gram_classes(g, b->lim.class_depth > 0 ? b->lim.class_depth : 32,
                     b->lim.max_work - b->work);
        struct gm *m = gm_create(g, &b->e); /* a start too ambiguous to run is refused now */
        if (!m) b->failed = true;
        gm_destroy(m);
    }
    if (b->failed) {
        if (e) *e = b->e;
        gram_unref(g);
        g = NULL;
    }
    free(live);
    free(start);
    dfa_free(&d);
    gb_free(b);
    return g;
}

/* ---- life ---------------------------------------------------------------------------------- */

struct gram *gram_ref(struct gram *g)
{
    __atomic_add_fetch(&g->refs, 1, __ATOMIC_RELAXED);
    return g;
}

void gram_unref(struct gram *g)
{
    if (!g || __atomic_sub_fetch(&g->refs, 1, __ATOMIC_ACQ_REL) > 0) return;
    for (int32_t r = 0; r < g->n_rules; r++) free(g->rule_name[r]);
    free(g->rule_name);
    free(g->rule_start);
    free(g->accept);
    free(g->b_off), free(g->r_off), free(g->t_off);
    free(g->b), free(g->r), free(g->t);
    free(g->cls), free(g->cls_rep), free(g->cls_depth);
    gmask_cache_free(g->cache);
    pthread_mutex_destroy(&g->mu);
    free(g);
}

int32_t gram_n_states(const struct gram *g)
{
    return g->n_states;
}

int64_t gram_max_bytes(const struct gram *g)
{
    return g->max_bytes;
}
