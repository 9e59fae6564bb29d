/* bench_prefill: prefill speed of the CPU forward pass on a real checkpoint, and where it goes.
 *
 * Loads a model directory, then prefills one prompt of N tokens (random ids, one sequence, a BF16
 * cache like the server's) in chunks of C tokens, R times, and prints the best run: tokens per
 * second of wall time and of CPU time (the process's user + system seconds, which preemption by
 * other work on a shared machine does not inflate), and the CPU time per token.
 * Usage: bench_prefill MODEL_DIR [TOKENS=1024] [CHUNK=TOKENS] [THREADS=1] [REPEATS=3] */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

#include "engine/cpu/forward.h"
#include "engine/cpu/simd.h"

static double clock_s(clockid_t id)
{
    struct timespec ts;
    clock_gettime(id, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* One prefill of n tokens in chunks; wall and CPU seconds. */
static int prefill(struct fwd *f, const struct model *m, const int32_t *tok, int n, int chunk,
                   double *wall, double *cpu)
{
    int bs = 64, n_blocks = (n + bs - 1) / bs;
    struct kv_cache *kv = kv_cache_create(m->cfg.n_layers, config_kv_width(&m->cfg), bs, n_blocks,
                                          DT_BF16);
    int32_t *table = malloc((size_t)n_blocks * sizeof *table);
    float *logits = malloc((size_t)m->cfg.vocab_size * sizeof *logits);
    for (int i = 0; i < n_blocks; i++) table[i] = i;
    struct err e = {{0}};
    double w0 = clock_s(CLOCK_MONOTONIC), c0 = clock_s(CLOCK_PROCESS_CPUTIME_ID);
    int rc = 0;
    for (int p = 0; p < n && rc == 0; p += chunk) {
        int len = n - p < chunk ? n - p : chunk;
        struct batch_seq s = {0, len, p, table, BATCH_LOGITS_LAST};
        struct batch b = {len, tok + p, 1, &s};
        rc = fwd_run(f, kv, &b, logits, &e);
    }
    *wall = clock_s(CLOCK_MONOTONIC) - w0, *cpu = clock_s(CLOCK_PROCESS_CPUTIME_ID) - c0;
    if (rc != 0) fprintf(stderr, "bench_prefill: %s\n", e.msg);
    free(table), free(logits);
    kv_cache_destroy(kv);
    return rc;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: bench_prefill MODEL_DIR [TOKENS] [CHUNK] [THREADS] [REPEATS]\n");
        return 2;
    }
    int n = argc > 2 ? atoi(argv[2]) : 1024, chunk = argc > 3 ? atoi(argv[3]) : n;
    int threads = argc > 4 ? atoi(argv[4]) : 1, reps = argc > 5 ? atoi(argv[5]) : 3;
    struct err e = {{0}};
    struct model *m = model_load(argv[1], &e);
    if (!m) return fprintf(stderr, "bench_prefill: %s\n", e.msg), 1;
    if (n < 1 || chunk < 1 || n > m->cfg.max_position_embeddings) return fprintf(stderr, "bad sizes\n"), 2;
    int32_t *tok = malloc((size_t)n * sizeof *tok);
    uint64_t s = 88172645463325252ull;
    for (int i = 0; i < n; i++) s ^= s << 13, s ^= s >> 7, s ^= s << 17, tok[i] = (int32_t)(s % (uint64_t)m->cfg.vocab_size);
    struct tp *tp = tp_create(threads);
    struct fwd *f = fwd_create(m, chunk, tp);
    double best_w = 1e30, best_c = 1e30, w, c;
    for (int r = 0; r < reps; r++) {
        if (prefill(f, m, tok, n, chunk, &w, &c) != 0) return 1;
        if (w < best_w) best_w = w;
        if (c < best_c) best_c = c;
    }
    printf("prefill %d tokens, chunks of %d, %d threads, %s kernels: %.1f tok/s wall, "
           "%.1f tok/s per CPU-second (%.2f CPU-ms per token)\n",
           n, chunk, tp_size(tp), simd_best()->name, n / best_w, n / best_c, 1e3 * best_c / n);
    fwd_destroy(f);
    tp_destroy(tp);
    model_destroy(m);
    free(tok);
    return 0;
}
