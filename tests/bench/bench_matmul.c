/* bench_matmul: weight-streaming speed of the matmul kernels — what bounds decode.
 *
 * A BF16 (or FP8) weight of 256 MiB (well past the caches) is multiplied by 1, 4 and 16 tokens
 * with the thread pool and the best kernel set; prints GB/s of weights read.
 * Usage: bench_matmul [THREADS] [bf16|fp8] [FILE]: with FILE, the weight is its first 256 MiB,
 * mapped as seekd maps checkpoints (page-cache pages instead of anonymous memory). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "engine/cpu/ops.h"

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

int main(int argc, char **argv)
{
    int threads = argc > 1 ? atoi(argv[1]) : 0, fp8 = argc > 2 && strcmp(argv[2], "fp8") == 0;
    int64_t cols = 1024, rows = (256ll << 20) / (cols * (fp8 ? 1 : 2));
    struct weight w = {.name = "w", .dtype = fp8 ? DT_F8E4M3 : DT_BF16, .rows = rows, .cols = cols,
                       .block_rows = 128, .block_cols = 128};
    size_t bytes = (size_t)(rows * cols) * (fp8 ? 1 : 2);
    uint8_t *d = malloc(bytes);
    for (size_t i = 0; i < bytes; i++) d[i] = (uint8_t)(i * 2654435761u >> 24) & 0x3f;
    const uint8_t *data = d;
    if (argc > 3) {
        int fd = open(argv[3], O_RDONLY);
        void *map = fd < 0 ? MAP_FAILED : mmap(NULL, bytes, PROT_READ, MAP_PRIVATE, fd, 0);
        if (map == MAP_FAILED) return perror(argv[3]), 1;
        data = map;
        for (size_t i = 0; i < bytes; i += 4096) d[0] ^= data[i]; /* fault it in */
    }
    float *s = malloc((size_t)((rows + 127) / 128 * 8) * sizeof *s);
    for (int64_t i = 0; i < (rows + 127) / 128 * 8; i++) s[i] = 1e-3f;
    w.data = data, w.scale = fp8 ? s : NULL;
    struct tp *tp = tp_create(threads);
    struct ops o = {.tp = tp, .k = simd_best()};
    float *x = calloc((size_t)(16 * cols), sizeof *x), *y = calloc((size_t)(16 * rows), sizeof *y);
    for (int64_t i = 0; i < 16 * cols; i++) x[i] = 0.001f * (float)(i % 97);
    int ns[] = {1, 4, 16};
    for (int k = 0; k < 3; k++) {
        double best = 1e9;
        for (int rep = 0; rep < 5; rep++) {
            double t0 = now_s();
            ops_matmul(&o, &w, x, ns[k], y);
            double t = now_s() - t0;
            if (t < best) best = t;
        }
        printf("%s %s, %d threads, %2d tokens: %.1f GB/s of weights\n", o.k->name, fp8 ? "fp8" : "bf16",
               tp_size(tp), ns[k], (double)bytes / best / 1e9);
    }
    /* The same bytes as 1 MiB matrices (a bench-model expert), one matmul each: what decode does. */
    for (int k = 0; k < 2; k++) {
        double best = 1e9;
        int64_t sub = (1 << 20) / (cols * (fp8 ? 1 : 2));
        for (int rep = 0; rep < 5; rep++) {
            double t0 = now_s();
            for (int64_t r = 0; r + sub <= rows; r += sub) {
                struct weight m = w;
                m.rows = sub, m.data = data + (size_t)(r * cols) * (fp8 ? 1 : 2);
                ops_matmul(&o, &m, x, ns[k], y);
            }
            double t = now_s() - t0;
            if (t < best) best = t;
        }
        printf("%s %s, %d threads, %2d tokens, 1 MiB matrices: %.1f GB/s of weights\n", o.k->name,
               fp8 ? "fp8" : "bf16", tp_size(tp), ns[k], (double)bytes / best / 1e9);
    }
    tp_destroy(tp);
    free(d), free(s), free(x), free(y);
    return 0;
}
