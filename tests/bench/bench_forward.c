/* bench_forward: speed of the CPU forward pass on a real checkpoint — prefill of one long prompt,
 * or decode steps of many streams — per second of wall time and per CPU-second.
 *
 * CPU time (the process's user + system seconds) is what a shared machine's other work does not
 * inflate by preemption; it still grows when that work competes for caches and memory.
 *
 *   bench_forward MODEL_DIR prefill [TOKENS=1024] [CHUNK=TOKENS] [THREADS=1] [REPEATS=3] [NUMERICS]
 *   bench_forward MODEL_DIR decode  [STREAMS=16]  [CONTEXT=128]  [THREADS=1] [STEPS=16]  [NUMERICS]
 *
 * prefill: one sequence of TOKENS random ids in chunks of CHUNK, REPEATS times; the best run.
 * decode: STREAMS sequences with CONTEXT tokens each already cached, then STEPS steps of one token
 * per stream. NUMERICS: ref (default), bf16 (the matrix set matrix_best() picks; SEEKD_MATRIX
 * chooses another) or fast (a GGUF file's quantised weights with 8-bit activations, the server's
 * default for them). The cache is BF16, as the server's. BENCH_HUGE=1 (environment) first moves
 * the weights into huge pages, as `seekd serve` does by default. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "engine/cpu/forward.h"
#include "engine/cpu/simd.h"

enum { BS = 64 };

static double clock_s(clockid_t id)
{
    struct timespec ts;
    clock_gettime(id, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

struct run {
    const struct model *m;
    struct fwd *f;
    struct kv_cache *kv;
    int32_t *tok;   /* random ids */
    int32_t *table; /* [streams][blocks per stream] */
    int per_seq;    /* blocks per sequence */
};

static int step(struct run *r, const struct batch *b, float *logits)
{
    struct err e = {0};
    if (fwd_run(r->f, r->kv, b, logits, &e) == 0) return 0;
    fprintf(stderr, "bench_forward: %s\n", e.msg);
    return -1;
}

/* Sequence s's prompt positions [p, p + n) as one chunk. */
static int chunk(struct run *r, int s, int p, int n, float *logits)
{
    struct batch_seq q = {0, n, p, r->table + (size_t)s * r->per_seq, BATCH_LOGITS_LAST};
    struct batch b = {n, r->tok + p, 1, &q};
    return step(r, &b, logits);
}

static int prefill(struct run *r, int n, int ch, float *logits)
{
    for (int p = 0; p < n; p += ch)
        if (chunk(r, 0, p, n - p < ch ? n - p : ch, logits) != 0) return -1;
    return 0;
}

/* steps of one token for each of the streams, at positions ctx, ctx + 1, ... */
static int decode(struct run *r, int streams, int ctx, int steps, float *logits)
{
    struct batch_seq *q = calloc((size_t)streams, sizeof *q);
    for (int i = 0; i < steps; i++) {
        for (int s = 0; s < streams; s++)
            q[s] = (struct batch_seq){s, 1, ctx + i, r->table + (size_t)s * r->per_seq,
                                      BATCH_LOGITS_LAST};
        struct batch b = {streams, r->tok + i, streams, q};
        if (step(r, &b, logits) != 0) return free(q), -1;
    }
    free(q);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc < 3) {
        fprintf(stderr, "usage: bench_forward MODEL_DIR prefill|decode [A] [B] [THREADS] [REPEATS] "
                        "[ref|bf16|fast]\n");
        return 2;
    }
    int dec = strcmp(argv[2], "decode") == 0;
    int a = dec ? 16 : 1024, bb = dec ? 128 : 0, threads = 1, reps = dec ? 16 : 3;
    if (argc > 3) a = atoi(argv[3]);
    bb = argc > 4 ? atoi(argv[4]) : bb ? bb : a;
    if (argc > 5) threads = atoi(argv[5]);
    if (argc > 6) reps = atoi(argv[6]);
    int bf16 = argc > 7 && strcmp(argv[7], "bf16") == 0,
        fast = argc > 7 && strcmp(argv[7], "fast") == 0;
    struct err e = {0};
    struct model *m = model_load(argv[1], &e);
    if (!m) return fprintf(stderr, "bench_forward: %s\n", e.msg), 1;
    if (getenv("BENCH_HUGE") && (m->gguf.n_tensors ? gguf_move_to_huge_pages(&m->gguf, NULL, &e)
                                                   : st_move_to_huge_pages(&m->st, NULL, &e)) != 0)
        return fprintf(stderr, "bench_forward: %s\n", e.msg), 1;
    int streams = dec ? a : 1, len = dec ? bb + reps : a;
    if (a < 1 || bb < 1 || len > m->cfg.max_position_embeddings)
        return fprintf(stderr, "bad sizes\n"), 2;
    struct run r = {.m = m, .per_seq = (len + BS - 1) / BS};
    r.tok = malloc((size_t)len * sizeof *r.tok);
    uint64_t s = 88172645463325252ull;
    for (int i = 0; i < len; i++) {
        s ^= s << 13, s ^= s >> 7, s ^= s << 17;
        r.tok[i] = (int32_t)(s % (uint64_t)m->cfg.vocab_size);
    }
    r.table = malloc((size_t)streams * r.per_seq * sizeof *r.table);
    for (int i = 0; i < streams * r.per_seq; i++) r.table[i] = i;
    r.kv = kv_cache_create(m->cfg.n_layers, config_kv_width(&m->cfg), BS, streams * r.per_seq,
                           DT_BF16);
    struct tp *tp = tp_create(threads);
    r.f = fwd_create(m, dec ? (streams > bb ? streams : bb) : bb, tp);
    const struct matrix_kernels *mx = bf16 ? matrix_best(NULL) : NULL;
    fwd_use_matrix(r.f, mx);
    fwd_set_q8(r.f, fast);
    float *logits = malloc((size_t)streams * m->cfg.vocab_size * sizeof *logits);
    double w0, c0, best_w = 1e30, best_c = 1e30;
    int rc = 0;
    for (int i = 0; i < streams && dec && rc == 0; i++) rc = chunk(&r, i, 0, bb, logits);
    for (int i = 0; i < (dec ? 1 : reps) && rc == 0; i++) {
        w0 = clock_s(CLOCK_MONOTONIC), c0 = clock_s(CLOCK_PROCESS_CPUTIME_ID);
        rc = dec ? decode(&r, streams, bb, reps, logits) : prefill(&r, a, bb, logits);
        double w = clock_s(CLOCK_MONOTONIC) - w0, c = clock_s(CLOCK_PROCESS_CPUTIME_ID) - c0;
        best_w = w < best_w ? w : best_w, best_c = c < best_c ? c : best_c;
    }
    double tokens = dec ? (double)streams * reps : a;
    if (rc == 0)
        printf("%s %d %s, %d threads, %s kernels%s%s: %.1f tok/s wall, %.1f tok/s per CPU-second "
               "(%.2f CPU-ms per token)\n",
               dec ? "decode" : "prefill", dec ? streams : a, dec ? "streams" : "tokens",
               tp_size(tp), simd_best()->name, mx ? " + " : "", mx ? mx->name : "", tokens / best_w,
               tokens / best_c, 1e3 * best_c / tokens);
    free(logits), free(r.tok), free(r.table);
    fwd_destroy(r.f);
    tp_destroy(tp);
    kv_cache_destroy(r.kv);
    model_destroy(m);
    return rc ? 1 : 0;
}
