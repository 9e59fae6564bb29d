/* wire: writing and reading engine values as bytes (see wire.h). */
#include "engine/wire.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>

/* ---- bytes ---------------------------------------------------------------------------------- */

void wire_init(struct wire *w)
{
    *w = (struct wire){0};
}

void wire_free(struct wire *w)
{
    free(w->p);
    wire_init(w);
}

uint8_t *wire_take(struct wire *w, size_t *n)
{
    uint8_t *p = w->p ? w->p : xmalloc(1);
    *n = w->n;
    wire_init(w);
    return p;
}

void wire_put_bytes(struct wire *w, const void *p, size_t n)
{
    if (w->n + n > w->cap) {
        w->cap = (w->n + n) * 2 + 64;
        w->p = xrealloc(w->p, w->cap);
    }
    if (n) memcpy(w->p + w->n, p, n);
    w->n += n;
}

void wire_put_u8(struct wire *w, uint8_t v)
{
    wire_put_bytes(w, &v, sizeof v);
}

void wire_put_i32(struct wire *w, int32_t v)
{
    wire_put_bytes(w, &v, sizeof v);
}

void wire_put_i64(struct wire *w, int64_t v)
{
    wire_put_bytes(w, &v, sizeof v);
}

void wire_put_f64(struct wire *w, double v)
{
    wire_put_bytes(w, &v, sizeof v);
}

void wire_put_str(struct wire *w, const char *s, size_t n)
{
    wire_put_u8(w, s != NULL);
    if (!s) return;
    wire_put_i64(w, (int64_t)n);
    wire_put_bytes(w, s, n);
}

struct wire_rd wire_reader(const void *p, size_t n)
{
    return (struct wire_rd){.p = p, .n = n};
}

bool wire_rd_end(const struct wire_rd *r)
{
    return !r->bad && r->at == r->n;
}

const void *wire_get_bytes(struct wire_rd *r, size_t n)
{
    if (r->bad || n > r->n - r->at) {
        r->bad = true;
        return NULL;
    }
    const void *p = r->p + r->at;
    r->at += n;
    return p;
}

/* Copies n bytes into out, or zeros once the message is exhausted. */
static void get(struct wire_rd *r, void *out, size_t n)
{
    const void *p = wire_get_bytes(r, n);
    if (p)
        memcpy(out, p, n);
    else
        memset(out, 0, n);
}

uint8_t wire_get_u8(struct wire_rd *r)
{
    uint8_t v;
    get(r, &v, sizeof v);
    return v;
}

int32_t wire_get_i32(struct wire_rd *r)
{
    int32_t v;
    get(r, &v, sizeof v);
    return v;
}

int64_t wire_get_i64(struct wire_rd *r)
{
    int64_t v;
    get(r, &v, sizeof v);
    return v;
}

double wire_get_f64(struct wire_rd *r)
{
    double v;
    get(r, &v, sizeof v);
    return v;
}

char *wire_get_str(struct wire_rd *r, size_t *n)
{
    *n = 0;
    if (!wire_get_u8(r)) return NULL;
    int64_t len = wire_get_i64(r);
    const void *p = len >= 0 ? wire_get_bytes(r, (size_t)len) : NULL;
    if (!p) {
        r->bad = true;
        return NULL;
    }
    char *s = xmalloc((size_t)len + 1);
    memcpy(s, p, (size_t)len);
    s[len] = 0;
    *n = (size_t)len;
    return s;
}

int32_t wire_get_count(struct wire_rd *r, int32_t max, size_t elem_size)
{
    int32_t n = wire_get_i32(r);
    if (n < 0 || n > max || (elem_size && (size_t)n > (r->n - r->at) / elem_size)) {
        r->bad = true;
        return 0;
    }
    return n;
}

/* Reads n int32 values into a fresh array (never NULL). */
static int32_t *get_i32s(struct wire_rd *r, int32_t n)
{
    int32_t *v = xmalloc(((size_t)n + 1) * sizeof *v);
    get(r, v, (size_t)n * sizeof *v);
    return v;
}

static int malformed(struct wire_rd *r, const char *what, struct err *e)
{
    if (!r->bad) return 0;
    return err_set(e, "malformed %s message (%zu of %zu bytes read)", what, r->at, r->n);
}

/* ---- requests ------------------------------------------------------------------------------- */

static void put_sampling(struct wire *w, const struct smp_params *s)
{
    wire_put_f64(w, s->temperature);
    wire_put_f64(w, s->top_p);
    wire_put_i32(w, s->top_k);
    wire_put_f64(w, s->min_p);
    wire_put_i64(w, (int64_t)s->seed);
    wire_put_i32(w, s->has_seed);
    wire_put_f64(w, s->presence_penalty);
    wire_put_f64(w, s->frequency_penalty);
    wire_put_f64(w, s->repetition_penalty);
    wire_put_i32(w, s->logprobs);
    wire_put_i32(w, s->n_logprobs);
    wire_put_i32(w, s->n_logit_bias);
    for (int i = 0; i < s->n_logit_bias; i++) {
        wire_put_i32(w, s->logit_bias[i].token);
        wire_put_f64(w, s->logit_bias[i].bias);
    }
}

static void get_sampling(struct wire_rd *r, struct wire_params *wp)
{
    struct smp_params *s = &wp->p.sampling;
    s->temperature = (float)wire_get_f64(r);
    s->top_p = (float)wire_get_f64(r);
    s->top_k = wire_get_i32(r);
    s->min_p = (float)wire_get_f64(r);
    s->seed = (uint64_t)wire_get_i64(r);
    s->has_seed = wire_get_i32(r);
    s->presence_penalty = (float)wire_get_f64(r);
    s->frequency_penalty = (float)wire_get_f64(r);
    s->repetition_penalty = (float)wire_get_f64(r);
    s->logprobs = wire_get_i32(r);
    s->n_logprobs = wire_get_i32(r);
    s->n_logit_bias = wire_get_count(r, INT32_MAX, 12);
    wp->bias = xmalloc(((size_t)s->n_logit_bias + 1) * sizeof *wp->bias);
    for (int i = 0; i < s->n_logit_bias; i++) {
        wp->bias[i].token = wire_get_i32(r);
        wp->bias[i].bias = (float)wire_get_f64(r);
    }
    s->logit_bias = wp->bias;
}

void wire_put_params(struct wire *w, const struct gen_params *p)
{
    wire_put_i32(w, p->n_prompt);
    wire_put_bytes(w, p->prompt, (size_t)p->n_prompt * sizeof *p->prompt);
    wire_put_i32(w, p->n);
    wire_put_i32(w, p->max_tokens);
    wire_put_i32(w, p->ignore_eos);
    put_sampling(w, &p->sampling);
    wire_put_i32(w, p->n_stop);
    for (int i = 0; i < p->n_stop; i++) wire_put_str(w, p->stop[i], strlen(p->stop[i]));
    wire_put_i32(w, p->n_stop_token_ids);
    wire_put_bytes(w, p->stop_token_ids, (size_t)p->n_stop_token_ids * sizeof(int32_t));
    wire_put_i32(w, p->skip_special_tokens);
    wire_put_i32(w, p->reasoning);
}

int wire_get_params(struct wire_rd *r, struct wire_params *out, struct err *e)
{
    size_t len;
    *out = (struct wire_params){0};
    struct gen_params *p = &out->p;
    p->n_prompt = wire_get_count(r, INT32_MAX, sizeof(int32_t));
    p->prompt = out->prompt = get_i32s(r, p->n_prompt);
    p->n = wire_get_i32(r);
    p->max_tokens = wire_get_i32(r);
    p->ignore_eos = wire_get_i32(r);
    get_sampling(r, out);
    p->n_stop = wire_get_count(r, GEN_MAX_STOP, 1);
    out->stop = xcalloc((size_t)p->n_stop + 1, sizeof *out->stop);
    for (int i = 0; i < p->n_stop; i++) out->stop[i] = wire_get_str(r, &len);
    for (int i = 0; i < p->n_stop; i++)
        if (!out->stop[i]) r->bad = true;
    p->stop = (const char *const *)out->stop;
    p->n_stop_token_ids = wire_get_count(r, INT32_MAX, sizeof(int32_t));
    p->stop_token_ids = out->stop_token_ids = get_i32s(r, p->n_stop_token_ids);
    p->skip_special_tokens = wire_get_i32(r);
    p->reasoning = wire_get_i32(r);
    if (malformed(r, "request", e) == 0) return 0;
    wire_params_free(out);
    return -1;
}

void wire_params_free(struct wire_params *wp)
{
    for (int i = 0; wp->stop && i < wp->p.n_stop; i++) free(wp->stop[i]);
    free(wp->stop);
    free(wp->prompt);
    free(wp->stop_token_ids);
    free(wp->bias);
    *wp = (struct wire_params){0};
}

/* ---- events and metrics --------------------------------------------------------------------- */

static void put_result(struct wire *w, const struct smp_result *lp)
{
    wire_put_i32(w, lp->token);
    wire_put_f64(w, lp->logprob);
    wire_put_i32(w, lp->n_top);
    for (int k = 0; k < lp->n_top; k++) {
        wire_put_i32(w, lp->top[k].token);
        wire_put_f64(w, lp->top[k].logprob);
    }
}

static void get_result(struct wire_rd *r, struct smp_result *lp)
{
    lp->token = wire_get_i32(r);
    lp->logprob = (float)wire_get_f64(r);
    lp->n_top = wire_get_count(r, SMP_MAX_LOGPROBS, 12);
    for (int k = 0; k < lp->n_top; k++) {
        lp->top[k].token = wire_get_i32(r);
        lp->top[k].logprob = (float)wire_get_f64(r);
    }
}

void wire_put_event(struct wire *w, const struct gen_event *ev)
{
    wire_put_i32(w, ev->kind);
    wire_put_i32(w, ev->choice);
    wire_put_str(w, ev->content, ev->content_len);
    wire_put_str(w, ev->reasoning, ev->reasoning_len);
    wire_put_i32(w, ev->token);
    put_result(w, &ev->lp);
    wire_put_i32(w, ev->finish);
    wire_put_str(w, ev->error, ev->error ? strlen(ev->error) : 0);
    wire_put_i32(w, ev->prompt_tokens);
    wire_put_i32(w, ev->completion_tokens);
    wire_put_i32(w, ev->cached_tokens);
}

int wire_get_event(struct wire_rd *r, struct gen_event *ev, struct err *e)
{
    size_t len;
    *ev = (struct gen_event){0};
    int32_t kind = wire_get_i32(r);
    ev->kind = (enum gen_event_kind)kind;
    ev->choice = wire_get_i32(r);
    ev->content = wire_get_str(r, &ev->content_len);
    ev->reasoning = wire_get_str(r, &ev->reasoning_len);
    ev->token = wire_get_i32(r);
    get_result(r, &ev->lp);
    int32_t finish = wire_get_i32(r);
    ev->finish = (enum gen_finish)finish;
    ev->error = wire_get_str(r, &len);
    ev->prompt_tokens = wire_get_i32(r);
    ev->completion_tokens = wire_get_i32(r);
    ev->cached_tokens = wire_get_i32(r);
    if (kind < GEN_EV_TOKEN || kind > GEN_EV_DONE || finish < GEN_FINISH_NONE ||
        finish > GEN_FINISH_ERROR || ev->choice < 0 || ev->choice >= GEN_MAX_CHOICES)
        r->bad = true;
    if (!r->bad) return 0;
    gen_event_clear(ev);
    return err_set(e, "malformed event (%zu of %zu bytes read)", r->at, r->n);
}

static void put_hist(struct wire *w, const struct metrics_hist_data *h)
{
    wire_put_bytes(w, h->buckets, sizeof h->buckets);
    wire_put_i64(w, (int64_t)h->count);
    wire_put_f64(w, h->sum);
}

void wire_put_metrics(struct wire *w, const struct metrics *m)
{
    wire_put_i32(w, m->n_running);
    wire_put_i32(w, m->n_waiting);
    wire_put_f64(w, m->kv_cache_usage);
    wire_put_i32(w, m->kv_blocks_used);
    wire_put_i32(w, m->kv_blocks_total);
    wire_put_i64(w, m->prefix_cache_queries);
    wire_put_i64(w, m->prefix_cache_hits);
    wire_put_i64(w, m->n_preemptions);
    wire_put_i64(w, m->prompt_tokens);
    wire_put_i64(w, m->generation_tokens);
    wire_put_i64(w, m->sampled_candidates);
    wire_put_i64(w, m->sampled_whole);
    wire_put_i64(w, m->grammar_masks);
    wire_put_f64(w, m->grammar_mask_cpu_seconds);
    wire_put_f64(w, m->grammar_wait_seconds);
    wire_put_f64(w, m->step_seconds);
    wire_put_bytes(w, m->request_success, sizeof m->request_success);
    for (int h = 0; h < MH_COUNT; h++) put_hist(w, &m->hist[h]);
}

int wire_get_metrics(struct wire_rd *r, struct metrics *m, struct err *e)
{
    memset(m, 0, sizeof *m);
    m->n_running = wire_get_i32(r);
    m->n_waiting = wire_get_i32(r);
    m->kv_cache_usage = wire_get_f64(r);
    m->kv_blocks_used = wire_get_i32(r);
    m->kv_blocks_total = wire_get_i32(r);
    m->prefix_cache_queries = wire_get_i64(r);
    m->prefix_cache_hits = wire_get_i64(r);
    m->n_preemptions = wire_get_i64(r);
    m->prompt_tokens = wire_get_i64(r);
    m->generation_tokens = wire_get_i64(r);
    m->sampled_candidates = wire_get_i64(r);
    m->sampled_whole = wire_get_i64(r);
    m->grammar_masks = wire_get_i64(r);
    m->grammar_mask_cpu_seconds = wire_get_f64(r);
    m->grammar_wait_seconds = wire_get_f64(r);
    m->step_seconds = wire_get_f64(r);
    get(r, m->request_success, sizeof m->request_success);
    for (int h = 0; h < MH_COUNT; h++) {
        get(r, m->hist[h].buckets, sizeof m->hist[h].buckets);
        m->hist[h].count = (uint64_t)wire_get_i64(r);
        m->hist[h].sum = wire_get_f64(r);
    }
    return r->bad ? err_set(e, "malformed metrics (%zu bytes)", r->n) : 0;
}

/* ---- a step's plan -------------------------------------------------------------------------- */

static int32_t table_len(const struct batch_seq *s, int32_t block_size)
{
    return (s->pos0 + s->n_tokens + block_size - 1) / block_size;
}

void wire_put_step(struct wire *w, const struct batch *b, int32_t block_size,
                   const struct kvb_copy *copies, int32_t n_copies)
{
    wire_put_i32(w, b->n_tokens);
    wire_put_bytes(w, b->tokens, (size_t)b->n_tokens * sizeof *b->tokens);
    wire_put_i32(w, b->n_seqs);
    for (int i = 0; i < b->n_seqs; i++) {
        const struct batch_seq *s = &b->seqs[i];
        int32_t nt = table_len(s, block_size);
        wire_put_i32(w, s->start);
        wire_put_i32(w, s->n_tokens);
        wire_put_i32(w, s->pos0);
        wire_put_i32(w, s->logits);
        wire_put_i32(w, nt);
        wire_put_bytes(w, s->block_table, (size_t)nt * sizeof *s->block_table);
    }
    wire_put_i32(w, n_copies);
    wire_put_bytes(w, copies, (size_t)n_copies * sizeof *copies);
}

/* Reads the sequences; their tables go back to back into *tables (grown as needed). */
static void get_seqs(struct wire_rd *r, struct wire_step *s)
{
    size_t n_tables = 0;
    int32_t *offsets = xmalloc(((size_t)s->batch.n_seqs + 1) * sizeof *offsets);
    for (int i = 0; i < s->batch.n_seqs; i++) {
        struct batch_seq *q = &s->seqs[i];
        q->start = wire_get_i32(r);
        q->n_tokens = wire_get_i32(r);
        q->pos0 = wire_get_i32(r);
        q->logits = (enum batch_logits)wire_get_i32(r);
        int32_t nt = wire_get_count(r, INT32_MAX, sizeof(int32_t));
        s->tables = xrealloc(s->tables, (n_tables + (size_t)nt + 1) * sizeof *s->tables);
        get(r, s->tables + n_tables, (size_t)nt * sizeof *s->tables);
        offsets[i] = (int32_t)n_tables;
        n_tables += (size_t)nt;
    }
    for (int i = 0; i < s->batch.n_seqs; i++) s->seqs[i].block_table = s->tables + offsets[i];
    free(offsets);
}

int wire_get_step(struct wire_rd *r, struct wire_step *out, struct err *e)
{
    *out = (struct wire_step){0};
    out->batch.n_tokens = wire_get_count(r, INT32_MAX, sizeof(int32_t));
    out->tokens = get_i32s(r, out->batch.n_tokens);
    out->batch.tokens = out->tokens;
    out->batch.n_seqs = wire_get_count(r, INT32_MAX, 5 * sizeof(int32_t));
    out->seqs = xcalloc((size_t)out->batch.n_seqs + 1, sizeof *out->seqs);
    out->tables = xmalloc(sizeof *out->tables);
    get_seqs(r, out);
    out->batch.seqs = out->seqs;
    out->n_copies = wire_get_count(r, INT32_MAX, sizeof(struct kvb_copy));
    out->copies = xmalloc(((size_t)out->n_copies + 1) * sizeof *out->copies);
    get(r, out->copies, (size_t)out->n_copies * sizeof *out->copies);
    if (malformed(r, "step", e) == 0) return 0;
    wire_step_free(out);
    return -1;
}

void wire_step_free(struct wire_step *s)
{
    free(s->tokens);
    free(s->seqs);
    free(s->tables);
    free(s->copies);
    *s = (struct wire_step){0};
}
