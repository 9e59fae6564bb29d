/* bench_matmul: the matmul kernels alone — weight-streaming speed (what bounds decode) and
 * multiply-add throughput over many tokens (what bounds prefill) against the FMA peak of the
 * same core measured in the same run.
 *
 * Decode: a BF16 (or FP8) weight of 256 MiB (well past the caches) times 1, 4 and 16 tokens with
 * the thread pool and the best kernel set; GB/s of weights read, then the same bytes as 1 MiB
 * matrices (a bench-model expert), one matmul each. Prefill: a 1024 x 1024 BF16 weight times
 * 16 to 1,024 tokens on one thread, GFLOP/s per CPU-second (a shared machine's other work does
 * not inflate CPU time) as a share of a register-only FMA loop's; with a BF16 matrix set
 * (SEEKD_MATRIX=avx512bf16|amx|amx-emulated), also through it.
 * Usage: bench_matmul [THREADS] [bf16|fp8] [FILE]: with FILE, the decode weight is its first
 * 256 MiB, mapped as seekd maps checkpoints (page-cache pages instead of anonymous memory). */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <time.h>
#include <unistd.h>

#include "engine/cpu/ops.h"

static double now_s(clockid_t id)
{
    struct timespec ts;
    clock_gettime(id, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* Random normal weights, never denormal (a denormal makes FMA take a slow path): BF16 or FP8
 * e4m3 bytes with a non-zero exponent, never NaN. */
static void fill_weights(uint8_t *d, size_t bytes, int fp8)
{
    uint64_t s = 0x9e3779b97f4a7c15ull;
    for (size_t i = 0; i < bytes; i += 2) {
        s ^= s << 13, s ^= s >> 7, s ^= s << 17;
        uint16_t h = (uint16_t)(0x3c00u | (s & 0x807fu));             /* BF16 in ±[2^-7, 2^-6) */
        if (fp8) h = (uint16_t)(((s & 0x8787u) | 0x2828u) & 0xfefeu); /* exponent 5..6, no NaN */
        memcpy(d + i, &h, i + 2 <= bytes ? 2 : 1);
    }
}

static void decode_figures(struct ops *o, const struct weight *w, const uint8_t *data, size_t bytes,
                           int fp8, float *x, float *y)
{
    int ns[] = {1, 4, 16};
    for (int k = 0; k < 3; k++) {
        double best = 1e9;
        for (int rep = 0; rep < 5; rep++) {
            double t0 = now_s(CLOCK_MONOTONIC);
            ops_matmul(o, w, x, ns[k], y);
            double t = now_s(CLOCK_MONOTONIC) - t0;
            if (t < best) best = t;
        }
        printf("%s %s, %d threads, %2d tokens: %.1f GB/s of weights\n", o->k->name,
               fp8 ? "fp8" : "bf16", tp_size(o->tp), ns[k], (double)bytes / best / 1e9);
    }
    /* The same bytes as 1 MiB matrices (a bench-model expert), one matmul each: what decode does.
     */
    for (int k = 0; k < 2; k++) {
        double best = 1e9;
        int64_t sub = (1 << 20) / (w->cols * (fp8 ? 1 : 2));
        for (int rep = 0; rep < 5; rep++) {
            double t0 = now_s(CLOCK_MONOTONIC);
            for (int64_t r = 0; r + sub <= w->rows; r += sub) {
                struct weight m = *w;
                m.rows = sub, m.data = data + (size_t)(r * w->cols) * (fp8 ? 1 : 2);
                ops_matmul(o, &m, x, ns[k], y);
            }
            double t = now_s(CLOCK_MONOTONIC) - t0;
            if (t < best) best = t;
        }
        printf("%s %s, %d threads, %2d tokens, 1 MiB matrices: %.1f GB/s of weights\n", o->k->name,
               fp8 ? "fp8" : "bf16", tp_size(o->tp), ns[k], (double)bytes / best / 1e9);
    }
}

/* CPU-seconds per call of f, best of five runs of at least 50 ms. */
static double per_call(void (*f)(void *), void *arg)
{
    double best = 1e9;
    for (int rep = 0; rep < 5; rep++) {
        int n = 0;
        double t0 = now_s(CLOCK_THREAD_CPUTIME_ID), t;
        do f(arg), n++;
        while ((t = now_s(CLOCK_THREAD_CPUTIME_ID) - t0) < 0.05);
        if (t / n < best) best = t / n;
    }
    return best;
}

/* The core's FMA peak: 12 independent chains of vfmadd on the set's widest vectors, in registers
 * (1 << 16 rounds). Returns the multiply-adds per round (lanes x chains). */
#if defined(__x86_64__)
#include <immintrin.h>
static float sink;
__attribute__((target("avx512f"))) static void fma_avx512(void *arg)
{
    __m512 a[12], m = _mm512_set1_ps(0.999f), c = _mm512_set1_ps(1e-3f);
    for (int j = 0; j < 12; j++) a[j] = _mm512_set1_ps((float)j);
    for (int i = 0; i < 1 << 16; i++) {
#pragma GCC unroll 12
        for (int j = 0; j < 12; j++) a[j] = _mm512_fmadd_ps(a[j], m, c);
        __asm__ volatile("" : "+v"(m));
    }
    for (int j = 1; j < 12; j++) a[0] = _mm512_add_ps(a[0], a[j]);
    sink += _mm512_reduce_add_ps(a[0]);
}

__attribute__((target("avx2,fma"))) static void fma_avx2(void *arg)
{
    __m256 a[12], m = _mm256_set1_ps(0.999f), c = _mm256_set1_ps(1e-3f);
    for (int j = 0; j < 12; j++) a[j] = _mm256_set1_ps((float)j);
    for (int i = 0; i < 1 << 16; i++) {
#pragma GCC unroll 12
        for (int j = 0; j < 12; j++) a[j] = _mm256_fmadd_ps(a[j], m, c);
        __asm__ volatile("" : "+v"(m));
    }
    for (int j = 1; j < 12; j++) a[0] = _mm256_add_ps(a[0], a[j]);
    sink += a[0][0];
}
#endif

struct mm_arg {
    struct ops *o;
    const struct weight *w;
    const float *x;
    int n;
    float *y;
};

static void one_matmul(void *arg)
{
    struct mm_arg *a = arg;
    ops_matmul_serial(a->o, 0, a->w, 0, a->w->rows, a->x, a->w->cols, a->n, a->y, a->w->rows);
}

static void prefill_figures(const struct simd_kernels *k)
{
    int64_t rows = 1024, cols = 1024;
    struct weight w = {.name = "w", .dtype = DT_BF16, .rows = rows, .cols = cols};
    uint8_t *d = malloc((size_t)(rows * cols) * 2);
    fill_weights(d, (size_t)(rows * cols) * 2, 0);
    w.data = d;
    float *x = malloc(1024 * (size_t)cols * sizeof *x),
          *y = malloc(1024 * (size_t)rows * sizeof *y);
    for (int64_t i = 0; i < 1024 * cols; i++) x[i] = 0.01f * (float)(i % 97) - 0.48f;
    int avx512 = strcmp(k->name, "avx512") == 0;
#if defined(__x86_64__)
    double peak = 2.0 * (1 << 16) * 12 * (avx512 ? 16 : 8) /
                  per_call(avx512 ? fma_avx512 : fma_avx2, NULL) / 1e9;
#else
    double peak = 0;
#endif
    printf("FMA peak of one core (%s, 12 chains in registers): %.1f GFLOP/s\n",
           avx512 ? "AVX-512" : "AVX2", peak);
    struct tp *tp = tp_create(1);
    const struct matrix_kernels *sets[2] = {NULL, matrix_best(NULL)};
    for (int s = 0; s < (sets[1] ? 2 : 1); s++)
        for (int n = 16; n <= 1024; n *= 4) {
            struct ops o = {.tp = tp, .k = k, .block_bytes = ops_block_bytes(), .mx = sets[s]};
            struct mm_arg a = {&o, &w, x, n, y};
            double g = 2.0 * (double)(rows * cols) * n / per_call(one_matmul, &a) / 1e9;
            printf("prefill %s%s%s, 1 thread, %4d tokens x 1024x1024 bf16: %.1f GFLOP/s per "
                   "CPU-second (%.0f%% of the FMA peak)\n",
                   k->name, sets[s] ? " + " : "", sets[s] ? sets[s]->name : "", n, g,
                   100 * g / peak);
        }
    tp_destroy(tp);
    free(d), free(x), free(y);
}

int main(int argc, char **argv)
{
    int threads = argc > 1 ? atoi(argv[1]) : 0, fp8 = argc > 2 && strcmp(argv[2], "fp8") == 0;
    int64_t cols = 1024, rows = (256ll << 20) / (cols * (fp8 ? 1 : 2));
    struct weight w = {.name = "w",
                       .dtype = fp8 ? DT_F8E4M3 : DT_BF16,
                       .rows = rows,
                       .cols = cols,
                       .block_rows = 128,
                       .block_cols = 128};
    size_t bytes = (size_t)(rows * cols) * (fp8 ? 1 : 2);
    uint8_t *d = malloc(bytes);
    fill_weights(d, bytes, fp8);
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
    struct ops o = {.tp = tp, .k = simd_best(), .block_bytes = ops_block_bytes()};
    float *x = calloc((size_t)(16 * cols), sizeof *x), *y = calloc((size_t)(16 * rows), sizeof *y);
    for (int64_t i = 0; i < 16 * cols; i++) x[i] = 0.001f * (float)(i % 97);
    decode_figures(&o, &w, data, bytes, fp8, x, y);
    tp_destroy(tp);
    free(d), free(s), free(x), free(y);
    prefill_figures(simd_best());
    return 0;
}
