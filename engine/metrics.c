/* metrics: counters and fixed-bucket histograms behind one mutex. */
#include "engine/metrics.h"

#include <math.h>
#include <string.h>

const double metrics_bounds[METRICS_N_BUCKETS] = {0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1,
                                                  0.25,  0.5,   1.0,  2.5,  5.0,  10.0, 60.0, INFINITY};
const char *const metrics_hist_names[MH_COUNT] = {
    "time_to_first_token_seconds", "inter_token_latency_seconds", "e2e_request_latency_seconds",
    "request_queue_time_seconds"};
const char *const metrics_reason_names[MR_COUNT] = {"stop", "length", "abort", "error"};

void metrics_init(struct metrics *m)
{
    memset(m, 0, sizeof *m);
    pthread_mutex_init(&m->mu, NULL);
}

void metrics_destroy(struct metrics *m)
{
    pthread_mutex_destroy(&m->mu);
}

void metrics_observe(struct metrics *m, enum metrics_hist h, double seconds)
{
    int b = 0;
    while (b < METRICS_N_BUCKETS - 1 && seconds > metrics_bounds[b]) b++;
    pthread_mutex_lock(&m->mu);
    m->hist[h].buckets[b]++;
    m->hist[h].count++;
    m->hist[h].sum += seconds;
    pthread_mutex_unlock(&m->mu);
}

void metrics_snapshot(struct metrics *m, struct metrics *out)
{
    pthread_mutex_lock(&m->mu);
    memcpy(out, m, sizeof *out);
    pthread_mutex_unlock(&m->mu);
}

void metrics_add(struct metrics *sum, const struct metrics *x)
{
    int32_t total = sum->kv_blocks_total + x->kv_blocks_total;
    double used = sum->kv_cache_usage * sum->kv_blocks_total + x->kv_cache_usage * x->kv_blocks_total;
    sum->kv_cache_usage = total > 0 ? used / total : 0;
    sum->n_running += x->n_running;
    sum->n_waiting += x->n_waiting;
    sum->kv_blocks_used += x->kv_blocks_used;
    sum->kv_blocks_total = total;
    sum->prefix_cache_queries += x->prefix_cache_queries;
    sum->prefix_cache_hits += x->prefix_cache_hits;
    sum->n_preemptions += x->n_preemptions;
    sum->prompt_tokens += x->prompt_tokens;
    sum->generation_tokens += x->generation_tokens;
    sum->sampled_candidates += x->sampled_candidates;
    sum->sampled_whole += x->sampled_whole;
    sum->grammar_masks += x->grammar_masks;
    sum->grammar_mask_cpu_seconds += x->grammar_mask_cpu_seconds;
    sum->grammar_wait_seconds += x->grammar_wait_seconds;
    sum->step_seconds += x->step_seconds;
    for (int i = 0; i < MR_COUNT; i++) sum->request_success[i] += x->request_success[i];
    for (int h = 0; h < MH_COUNT; h++) {
        for (int b = 0; b < METRICS_N_BUCKETS; b++) sum->hist[h].buckets[b] += x->hist[h].buckets[b];
        sum->hist[h].count += x->hist[h].count;
        sum->hist[h].sum += x->hist[h].sum;
    }
}
