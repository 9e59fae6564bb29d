/* bench_qmatmul: speed of the quantised matmuls (engine/cpu/quant_kernels) in both arithmetics.
 *
 * For a few weight types and shapes (SmolLM2's and the Q4_K_M bench model's), one matmul with 1,
 * 16, 128 and 512 tokens on the thread pool, each kernel set the CPU runs; prints billions of
 * multiply-adds per second (the best of 5). Decode is the 1-token line, prefill the 512 one.
 * With 1 thread the time is the process's CPU time, so a machine busy with other work disturbs
 * the figures less. These weights fit in L2; the "streamed" lines then time one token against
 * the same shapes as decode meets them, from memory: 256 MiB of copies, each used once a pass
 * (GMAC/s, and the weight bytes read per second). Usage: bench_qmatmul [THREADS] */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "engine/cpu/ops.h"
#include "engine/model/quant.h"

static int cpu_clock; /* 1 thread: CPU time rather than wall time */

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(cpu_clock ? CLOCK_PROCESS_CPUTIME_ID : CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* Random blocks with small finite scales (every fp16 field of a block set to 0.01). */
static void *random_weight(enum dtype t, int64_t rows, int64_t cols)
{
    size_t n = (size_t)rows * dtype_row_bytes(t, cols), bs = dtype_size(t);
    uint8_t *d = malloc(n);
    for (size_t i = 0; i < n; i++) d[i] = (uint8_t)(i * 2654435761u >> 24);
    uint16_t h = f32_to_f16(0.01f);
    int off[2] = {0, 2};
    if (t == DT_Q2_K) off[0] = 80, off[1] = 82;
    if (t == DT_Q3_K) off[0] = off[1] = 108;
    if (t == DT_Q6_K) off[0] = off[1] = 208;
    for (size_t b = 0; b < n / bs; b++)
        for (int k = 0; k < 2; k++) memcpy(d + b * bs + off[k], &h, 2);
    return d;
}

enum { STREAM_BYTES = 256 << 20 };

/* One token against each of many copies of a [rows, cols] weight of type t in turn (STREAM_BYTES
 * in all, more than the caches hold), 8-bit path, each set: the best of 3 passes. */
static void streamed(struct tp *tp, enum dtype t, int64_t rows, int64_t cols, const float *x,
                     float *y)
{
    size_t one = (size_t)rows * dtype_row_bytes(t, cols), n = STREAM_BYTES / one;
    uint8_t *all = random_weight(t, rows * (int64_t)n, cols);
    const char *sets[] = {"avx2", "avx512"};
    for (int s = 0; s < 2; s++) {
        struct ops o = {.tp = tp, .k = simd_by_name(sets[s]), .q8 = 1};
        if (!o.k) continue;
        double best = 1e9;
        for (int rep = 0; rep < 3; rep++) {
            double t0 = now_s();
            for (size_t i = 0; i < n; i++) {
                struct weight w = {
                    .name = "w", .dtype = t, .rows = rows, .cols = cols, .data = all + i * one};
                ops_matmul(&o, &w, x, 1, y);
            }
            double dt = now_s() - t0;
            best = dt < best ? dt : best;
        }
        printf("%-4s %5lldx%-5lld %-6s 8-bit streamed, 1 tok %6.1f GMAC/s %5.1f GB/s\n",
               dtype_name(t), (long long)rows, (long long)cols, sets[s],
               (double)(rows * cols) * (double)n / best / 1e9, (double)(one * n) / best / 1e9);
    }
    free(all);
}

int main(int argc, char **argv)
{
    static const struct {
        enum dtype t;
        int64_t rows, cols;
    } cases[] = {{DT_Q4_1, 1536, 576}, {DT_Q8_0, 1536, 576}, {DT_Q4_K, 2048, 1024}, {DT_Q6_K, 1024, 2048}};
    const char *sets[] = {"avx2", "avx512"};
    int threads = argc > 1 ? atoi(argv[1]) : 1, ns[] = {1, 16, 128, 512};
    struct tp *tp = tp_create(threads);
    cpu_clock = tp_size(tp) == 1;
    float *x = malloc(512 * 2048 * sizeof *x), *y = malloc(512 * 2048 * sizeof *y);
    for (int i = 0; i < 512 * 2048; i++) x[i] = (float)((i * 37) % 101) / 50.0f - 1.0f;
    for (size_t c = 0; c < sizeof cases / sizeof cases[0]; c++) {
        struct weight w = {.name = "w", .dtype = cases[c].t, .rows = cases[c].rows, .cols = cases[c].cols,
                           .data = random_weight(cases[c].t, cases[c].rows, cases[c].cols)};
        for (int s = 0; s < 2; s++)
            for (int q8 = 1; q8 >= 0; q8--) {
                struct ops o = {.tp = tp, .k = simd_by_name(sets[s]), .q8 = q8};
                if (!o.k) continue;
                printf("%-4s %5lldx%-5lld %-6s %-5s", dtype_name(w.dtype), (long long)w.rows,
                       (long long)w.cols, sets[s], q8 ? "8-bit" : "exact");
                for (int k = 0; k < 4; k++) {
                    double best = 1e9;
                    for (int rep = 0; rep < 5; rep++) {
                        double t0 = now_s();
                        ops_matmul(&o, &w, x, ns[k], y);
                        double t = now_s() - t0;
                        best = t < best ? t : best;
                    }
                    printf("  %3d tok %6.1f", ns[k], (double)w.rows * (double)w.cols * ns[k] / best / 1e9);
                }
                printf("  GMAC/s\n");
            }
        free((void *)w.data);
    }
    for (size_t c = 2; c < sizeof cases / sizeof cases[0]; c++)
        streamed(tp, cases[c].t, cases[c].rows, cases[c].cols, x, y);
    tp_destroy(tp);
    free(x), free(y);
    return 0;
}
