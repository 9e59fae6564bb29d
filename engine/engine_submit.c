/* engine_submit: admission — a request checked against the model and the server's limits,
 * priced (gen_cost) against the memory budget, and handed to this engine's thread or, with data
 * parallelism, to the rank the router picks. */
#include <string.h>

#include "engine/dp.h"
#include "engine/engine_internal.h"
#include "engine/gen.h"
#include "engine/wire.h"

int64_t engine_request_bytes(const struct engine *eng, const struct gen_params *params)
{
    struct gen_params p = *params;
    if (p.max_tokens < 0) p.max_tokens = eng->max_model_len - p.n_prompt;
    return gen_cost(&p, eng->m->cfg.vocab_size, eng->max_text);
}

int64_t engine_max_request_memory(const struct engine *eng)
{
    return eng->max_request_bytes;
}

/* A request must be able to run whole: its n choices side by side in the KV pool (else they
 * would only evict one another), and within max_request_memory. */
static int check_admissible(const struct engine *eng, const struct gen_params *p, struct err *e)
{
    int64_t kv_tokens = (int64_t)eng->scfg.n_blocks * eng->scfg.block_size;
    int64_t need = (int64_t)p->n_prompt + (int64_t)p->n * p->max_tokens;
    if (p->n > 1 && need > kv_tokens)
        return err_set(e, "n=%d choices of up to %d tokens after a %d-token prompt need %lld tokens "
                          "of KV cache, which holds %lld: lower n or max_tokens", p->n,
                       p->max_tokens, p->n_prompt, (long long)need, (long long)kv_tokens);
    int64_t bytes = engine_request_bytes(eng, p);
    if (eng->max_request_bytes && bytes > eng->max_request_bytes)
        return err_set(e, "this request could hold %lld MiB (n=%d, max_tokens=%d%s), over the "
                          "server's max_request_memory of %lld MiB: lower n, max_tokens or "
                          "top_logprobs", (long long)(bytes >> 20), p->n, p->max_tokens,
                       p->sampling.logprobs ? ", with logprobs" : "",
                       (long long)(eng->max_request_bytes >> 20));
    return 0;
}

/* Reserves bytes of the memory budget; 0 when it fit. */
static int reserve_bytes(struct engine *eng, int64_t bytes)
{
    int64_t cur = __atomic_load_n(&eng->admitted_bytes, __ATOMIC_ACQUIRE);
    do {
        if (eng->budget_bytes && cur + bytes > eng->budget_bytes) return -1;
    } while (!__atomic_compare_exchange_n(&eng->admitted_bytes, &cur, cur + bytes, true,
                                          __ATOMIC_ACQ_REL, __ATOMIC_ACQUIRE));
    return 0;
}

/* The checks that give a request its 400 before anything is queued. */
static int check_request(const struct engine *eng, struct gen_params *p, struct err *e)
{
    int limit = eng->max_model_len;
    if (p->n_prompt < 1) return err_set(e, "the prompt is empty");
    if (p->n < 1 || p->n > GEN_MAX_CHOICES) return err_set(e, "n must be between 1 and %d", GEN_MAX_CHOICES);
    if (p->n_stop > GEN_MAX_STOP) return err_set(e, "at most %d stop strings", GEN_MAX_STOP);
    for (int i = 0; i < p->n_stop; i++)
        if (!p->stop[i][0]) return err_set(e, "stop strings must not be empty");
    if (p->n_prompt >= limit)
        return err_set(e, "This model's maximum context length is %d tokens. However, your prompt "
                          "has %d tokens, leaving no room for a completion.", limit, p->n_prompt);
    if (p->max_tokens < 0) p->max_tokens = limit - p->n_prompt;
    if (p->max_tokens < 1) return err_set(e, "max_tokens must be at least 1");
    if ((int64_t)p->n_prompt + p->max_tokens > limit)
        return err_set(e, "This model's maximum context length is %d tokens. However, you requested "
                          "%lld tokens (%d in the prompt, %d for the completion). Please reduce the "
                          "prompt or max_tokens.", limit, (long long)p->n_prompt + p->max_tokens,
                       p->n_prompt, p->max_tokens);
    for (int i = 0; i < p->n_prompt; i++)
        if (p->prompt[i] < 0 || p->prompt[i] >= eng->m->cfg.vocab_size)
            return err_set(e, "token id %d is outside the vocabulary (0..%d)", p->prompt[i], eng->m->cfg.vocab_size - 1);
    if (sched_check_fit(&eng->scfg, p->n_prompt, p->max_tokens, e) != 0) return -1;
    if (check_admissible(eng, p, e) != 0) return -1;
    return smp_params_check(&p->sampling, eng->m->cfg.vocab_size, e);
}

/* Which rank runs a request: 0 is this engine; -1 when every queue it may go to is full.
 * Constrained requests and those whose tool calls are parsed stay on this rank: their compiled
 * grammar and parser state do not travel on the wire. */
static int pick_rank(struct engine *eng, const struct gen_params *p, int *queued)
{
    pthread_mutex_lock(&eng->mu);
    *queued = eng->n_incoming + __atomic_load_n(&eng->n_waiting, __ATOMIC_ACQUIRE);
    pthread_mutex_unlock(&eng->mu);
    bool local_only = p->grammar || p->tool_format != TC_NONE;
    if (!eng->dp || local_only) {
        if (*queued + p->n > eng->max_queued) return -1;
        if (eng->dp) dp_route_local(eng->dp);
        return 0;
    }
    int live = __atomic_load_n(&eng->n_live_seqs, __ATOMIC_RELAXED);
    return dp_route(eng->dp, live, *queued, p->n, eng->max_queued);
}

/* Hands a request to another rank's engine; the relay takes its events (data parallelism). */
static struct gen *submit_remote(struct engine *eng, int rank, const struct gen_params *p,
                                 void (*notify)(void *arg), void *arg)
{
    struct gen *g = gen_create_relay(p, eng->tok, eng->eos);
    g->notify = notify;
    g->arg = arg;
    g->t_arrival = now_s();
    pthread_mutex_lock(&eng->mu);
    g->serial = ++eng->next_serial;
    pthread_mutex_unlock(&eng->mu);
    struct wire w;
    size_t n;
    wire_init(&w);
    wire_put_i64(&w, (int64_t)g->serial);
    wire_put_params(&w, p);
    uint8_t *msg = wire_take(&w, &n);
    dp_send(eng->dp, rank, g, msg, n);
    return g;
}

struct gen *engine_submit(struct engine *eng, const struct gen_params *params,
                          void (*notify)(void *arg), void *arg, int *busy, struct err *e)
{
    struct gen_params p = *params;
    int queued;
    *busy = 0;
    if (check_request(eng, &p, e) != 0) return NULL;
    int rank = pick_rank(eng, &p, &queued);
    if (rank < 0) {
        *busy = 1; /* n counts as n: a request of n choices queues n sequences */
        err_set(e, "the server is at capacity (%d sequences waiting, this request adds %d); "
                   "retry shortly", queued, p.n);
        return NULL;
    }
    int64_t bytes = engine_request_bytes(eng, &p);
    if (reserve_bytes(eng, bytes) != 0) {
        *busy = 1;
        err_set(e, "the requests running hold the server's request_memory_budget; retry shortly");
        return NULL;
    }
    if (rank > 0) { /* its reply is held here too: the same reservation */
        struct gen *remote = submit_remote(eng, rank, &p, notify, arg);
        remote->cost = bytes;
        remote->ledger = &eng->admitted_bytes;
        return remote;
    }
    struct gen *g = gen_create(&p, eng->tok, eng->gv, eng->m->cfg.vocab_size, eng->eos, e);
    if (!g) { /* out of memory (503: this request fails, the server goes on), or a grammar that
                 cannot start (400) */
        __atomic_sub_fetch(&eng->admitted_bytes, bytes, __ATOMIC_ACQ_REL);
        *busy = e->busy;
        return NULL;
    }
    g->cost = bytes;
    g->ledger = &eng->admitted_bytes;
    g->notify = notify;
    g->arg = arg;
    g->t_arrival = now_s();
    __atomic_add_fetch(&eng->n_live_seqs, p.n, __ATOMIC_RELAXED);
    pthread_mutex_lock(&eng->mu);
    g->serial = ++eng->next_serial;
    g->next = eng->incoming;
    eng->incoming = g;
    eng->n_incoming += p.n;
    pthread_cond_signal(&eng->cv);
    pthread_mutex_unlock(&eng->mu);
    return g;
}
