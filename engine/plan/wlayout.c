/* wlayout: arena placement, staging fills, the fit check and the scratch layout. */
#include "engine/plan/wlayout.h"

#include <stdlib.h>
#include <string.h>

static uint64_t align_up(uint64_t v)
{
    return (v + WL_ALIGN - 1) / WL_ALIGN * WL_ALIGN;
}

static uint64_t add_job(struct wl_plan *p, struct wl_job j)
{
    if (!j.bytes) return p->total;
    if (p->n == p->cap) {
        p->cap = p->cap ? p->cap * 2 : 256;
        p->jobs = xrealloc(p->jobs, (size_t)p->cap * sizeof *p->jobs);
    }
    j.off = align_up(p->total);
    p->jobs[p->n++] = j;
    p->total = j.off + j.bytes;
    return j.off;
}

uint64_t wl_add(struct wl_plan *p, const void *src, uint64_t bytes)
{
    return add_job(p, (struct wl_job){.src = src, .bytes = bytes});
}

uint64_t wl_add_fn(struct wl_plan *p, uint64_t bytes, wl_fill_fn fn, const void *ctx)
{
    return add_job(p, (struct wl_job){.bytes = bytes, .fn = fn, .ctx = ctx});
}

/* The first job that ends after lo (jobs are in arena order). */
static int first_job(const struct wl_plan *p, uint64_t lo)
{
    int a = 0, b = p->n;
    while (a < b) {
        int m = (a + b) / 2;
        if (p->jobs[m].off + p->jobs[m].bytes <= lo) a = m + 1;
        else b = m;
    }
    return a;
}

int wl_fill(const struct wl_plan *p, uint64_t lo, uint64_t n, void *buf)
{
    uint64_t hi = lo + n;
    int i = first_job(p, lo);
    for (; i < p->n && p->jobs[i].off < hi; i++) {
        const struct wl_job *j = &p->jobs[i];
        uint64_t a = j->off > lo ? j->off : lo, end = j->off + j->bytes, b = end < hi ? end : hi;
        if (j->fn) j->fn(j->ctx, a - j->off, b - a, (char *)buf + (a - lo));
        else memcpy((char *)buf + (a - lo), (const char *)j->src + (a - j->off), (size_t)(b - a));
        if (end > hi) return i;
    }
    return i;
}

void wl_free(struct wl_plan *p)
{
    free(p->jobs);
    *p = (struct wl_plan){0};
}

static double gib(uint64_t b)
{
    return (double)b / (1024.0 * 1024.0 * 1024.0);
}

int wl_check_fit(const char *device, uint64_t free_bytes, uint64_t weight_bytes,
                 uint64_t scratch_bytes, uint64_t block_bytes, struct err *e)
{
    uint64_t need = weight_bytes + scratch_bytes + block_bytes;
    if (need <= free_bytes) return 0;
    return err_set(e,
                   "%s: %.2f GiB free, but the weights need %.2f GiB (%llu bytes), the step "
                   "scratch %.2f GiB and one KV block %.2f MiB: %.2f GiB in all",
                   device, gib(free_bytes), gib(weight_bytes), (unsigned long long)weight_bytes,
                   gib(scratch_bytes), (double)block_bytes / (1024.0 * 1024.0), gib(need));
}

static size_t take(size_t *at, size_t n_elems, size_t elem)
{
    size_t off = *at;
    *at += align_up((uint64_t)(n_elems * elem));
    return off;
}

void wl_scratch_plan(const struct model_config *c, int max_tokens, int max_logits,
                     struct wl_scratch *s)
{
    size_t T = (size_t)max_tokens, L = (size_t)max_logits, D = (size_t)c->hidden_size;
    size_t H = (size_t)c->n_heads, dc = (size_t)c->kv_lora_rank, E = (size_t)c->n_routed_experts;
    size_t k = (size_t)(c->n_experts_per_tok > 0 ? c->n_experts_per_tok : 0);
    size_t F = (size_t)c->moe_intermediate_size, f = 4, at = 0;
    size_t wide = (size_t)c->intermediate_size, shared = (size_t)c->n_shared_experts * F;
    if (shared > wide) wide = shared;
    size_t taken = E > (size_t)c->n_group ? E : (size_t)c->n_group;
    *s = (struct wl_scratch){0};
    s->h = take(&at, T * D, f), s->xn = take(&at, T * D, f), s->out = take(&at, T * D, f);
    s->cq = take(&at, T * (size_t)c->q_lora_rank, f);
    s->q = take(&at, T * H * (size_t)config_qk_head_dim(c), f);
    s->kva = take(&at, T * (size_t)config_kv_width(c), f);
    s->qlat = take(&at, T * H * dc, f), s->ctx = take(&at, T * H * dc, f);
    s->attn = take(&at, T * H * (size_t)c->v_head_dim, f);
    s->ff_a = take(&at, T * wide, f), s->ff_b = take(&at, T * wide, f);
    s->ysh = take(&at, E ? T * D : 0, f);
    s->router = take(&at, T * E, f), s->bias = take(&at, E, f);
    s->sel = take(&at, T * k, 4), s->selw = take(&at, T * k, f);
    s->route_tmp = take(&at, E ? T * (3 * E + (size_t)c->n_group) : 0, f);
    s->route_taken = take(&at, E ? T * taken : 0, 1);
    s->xg = take(&at, T * k * D, f), s->yg = take(&at, T * k * D, f);
    s->ga = take(&at, T * k * F, f), s->gb = take(&at, T * k * F, f);
    s->hl = take(&at, L * D, f);
    s->logits = take(&at, L * (size_t)c->vocab_size, f);
    s->bytes = at;
}
