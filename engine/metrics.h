/* metrics: the engine's counters and latency histograms, in the shape of vLLM's Prometheus
 * metrics (the server formats them for GET /metrics). Updated on the engine thread; read as a
 * consistent snapshot from any thread. */
#ifndef SEEKD_METRICS_H
#define SEEKD_METRICS_H

#include <pthread.h>
#include <stdint.h>

#define METRICS_N_BUCKETS 16

enum metrics_hist {
    MH_TTFT,      /* time_to_first_token_seconds */
    MH_ITL,       /* inter_token_latency_seconds */
    MH_E2E,       /* e2e_request_latency_seconds */
    MH_QUEUE,     /* request_queue_time_seconds */
    MH_COUNT
};

enum metrics_reason { MR_STOP, MR_LENGTH, MR_ABORT, MR_ERROR, MR_COUNT };

struct metrics_hist_data {
    uint64_t buckets[METRICS_N_BUCKETS]; /* cumulative counts are built when formatting */
    uint64_t count;
    double sum;
};

struct metrics {
    pthread_mutex_t mu;
    /* gauges */
    int32_t n_running, n_waiting;
    double kv_cache_usage;          /* 0..1 */
    int32_t kv_blocks_used, kv_blocks_total;
    /* counters */
    int64_t prefix_cache_queries, prefix_cache_hits, n_preemptions;
    int64_t prompt_tokens, generation_tokens;
    int64_t sampled_candidates, sampled_whole; /* tokens sampled from pre-filtered / whole rows */
    int64_t request_success[MR_COUNT];
    int64_t grammar_masks;           /* token masks computed for constrained sequences */
    double grammar_mask_cpu_seconds; /* CPU time the mask thread spent on them */
    double grammar_wait_seconds;     /* time steps waited for masks after the forward */
    double step_seconds;             /* time spent in engine steps (schedule to update) */
    struct metrics_hist_data hist[MH_COUNT];
};

/* Upper bounds (seconds) of the histogram buckets; the last is +Inf. */
extern const double metrics_bounds[METRICS_N_BUCKETS];
extern const char *const metrics_hist_names[MH_COUNT];
extern const char *const metrics_reason_names[MR_COUNT];

void metrics_init(struct metrics *m);
void metrics_destroy(struct metrics *m);
/* Records one observation (caller holds no lock). */
void metrics_observe(struct metrics *m, enum metrics_hist h, double seconds);
/* Copies everything under the lock (the copy's mutex is not initialised). */
void metrics_snapshot(struct metrics *m, struct metrics *out);
/* Adds another engine's snapshot x into sum (data parallelism: /metrics sums the ranks). Gauges
 * and counters add; kv_cache_usage becomes the share of all the ranks' blocks in use. */
void metrics_add(struct metrics *sum, const struct metrics *x);

#endif
