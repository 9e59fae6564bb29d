/* api_metrics: GET /metrics — the engine's metrics in Prometheus text format, named like vLLM's
 * with the prefix "seekd:" (so dashboards built for vLLM work by changing the prefix). */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>

#include "engine/metrics.h"
#include "server/api.h"

struct text {
    char *s;
    size_t n, cap;
};

static void put(struct text *t, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void put(struct text *t, const char *fmt, ...)
{
    for (;;) {
        va_list ap;
        va_start(ap, fmt);
        int k = vsnprintf(t->s + t->n, t->cap - t->n, fmt, ap);
        va_end(ap);
        if ((size_t)k < t->cap - t->n) {
            t->n += (size_t)k;
            return;
        }
        t->cap = t->cap * 2 + (size_t)k;
        t->s = xrealloc(t->s, t->cap);
    }
}

static void gauge(struct text *t, const char *name, const char *help, double v)
{
    put(t, "# HELP seekd:%s %s\n# TYPE seekd:%s gauge\nseekd:%s %.17g\n", name, help, name, name, v);
}

static void counter(struct text *t, const char *name, const char *help, double v)
{
    put(t, "# HELP seekd:%s %s\n# TYPE seekd:%s counter\nseekd:%s_total %.17g\n", name, help, name,
        name, v);
}

static void histogram(struct text *t, const char *name, const struct metrics_hist_data *h)
{
    uint64_t cum = 0;
    put(t, "# HELP seekd:%s Histogram of %s.\n# TYPE seekd:%s histogram\n", name, name, name);
    for (int b = 0; b < METRICS_N_BUCKETS; b++) {
        cum += h->buckets[b];
        if (isinf(metrics_bounds[b])) put(t, "seekd:%s_bucket{le=\"+Inf\"} %llu\n", name, (unsigned long long)cum);
        else put(t, "seekd:%s_bucket{le=\"%g\"} %llu\n", name, metrics_bounds[b], (unsigned long long)cum);
    }
    put(t, "seekd:%s_sum %.17g\nseekd:%s_count %llu\n", name, h->sum, name, (unsigned long long)h->count);
}

/* Data parallelism: how many requests each rank was given (the sums above cover every rank). */
static void routed(struct text *t, struct engine *eng)
{
    int64_t counts[64];
    int n = engine_routed(eng, counts, 64);
    if (!n) return;
    put(t, "# HELP seekd:data_parallel_requests Requests routed to each data-parallel rank.\n"
           "# TYPE seekd:data_parallel_requests counter\n");
    for (int r = 0; r < n; r++)
        put(t, "seekd:data_parallel_requests_total{rank=\"%d\"} %lld\n", r, (long long)counts[r]);
}

int api_metrics(struct http_req *r)
{
    struct api *a = r->app;
    struct metrics m;
    if (!a->public_metrics && !http_authorized(r)) return http_reply_unauthorized(r);
    if (api_check_loaded(r) != 0) return 0; /* served while draining or stalled: when it matters */
    struct text t = {xmalloc(4096), 0, 4096};
    engine_metrics(a->eng, &m);
    gauge(&t, "num_requests_running", "Requests in the running batch.", m.n_running);
    gauge(&t, "num_requests_waiting", "Requests waiting to be scheduled.", m.n_waiting);
    gauge(&t, "kv_cache_usage_perc", "Fraction of KV cache blocks in use (0-1).", m.kv_cache_usage);
    gauge(&t, "kv_cache_blocks_used", "KV cache blocks held by sequences.", m.kv_blocks_used);
    gauge(&t, "kv_cache_blocks_total", "KV cache blocks in the pool.", m.kv_blocks_total);
    counter(&t, "prefix_cache_queries", "Prompt tokens looked up in the prefix cache.", (double)m.prefix_cache_queries);
    counter(&t, "prefix_cache_hits", "Prompt tokens found in the prefix cache.", (double)m.prefix_cache_hits);
    counter(&t, "num_preemptions", "Sequences preempted for lack of KV blocks.", (double)m.n_preemptions);
    counter(&t, "prompt_tokens", "Prompt tokens of finished requests.", (double)m.prompt_tokens);
    counter(&t, "generation_tokens", "Generated tokens.", (double)m.generation_tokens);
    counter(&t, "sampled_from_candidates", "Tokens sampled from a row's pre-filtered candidates.",
            (double)m.sampled_candidates);
    counter(&t, "sampled_from_whole_rows", "Tokens sampled from a whole logits row.", (double)m.sampled_whole);
    counter(&t, "engine_step_seconds", "Time spent in engine steps.", m.step_seconds);
    counter(&t, "grammar_masks", "Token masks computed for constrained outputs.", (double)m.grammar_masks);
    counter(&t, "grammar_mask_cpu_seconds", "CPU time spent computing those masks.",
            m.grammar_mask_cpu_seconds);
    counter(&t, "grammar_wait_seconds", "Time steps waited for masks after the forward pass.",
            m.grammar_wait_seconds);
    put(&t, "# HELP seekd:request_success Finished requests by finish reason.\n"
            "# TYPE seekd:request_success counter\n");
    for (int i = 0; i < MR_COUNT; i++)
        put(&t, "seekd:request_success_total{finished_reason=\"%s\"} %lld\n", metrics_reason_names[i],
            (long long)m.request_success[i]);
    for (int h = 0; h < MH_COUNT; h++) histogram(&t, metrics_hist_names[h], &m.hist[h]);
    routed(&t, a->eng);
    int rc = http_reply(r, 200, "text/plain; version=0.0.4; charset=utf-8", t.s, t.n);
    free(t.s);
    return rc;
}
