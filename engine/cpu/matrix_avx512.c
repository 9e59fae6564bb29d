/* matrix_avx512: the AVX-512-BF16 matrix set — vdpbf16ps dot products of BF16 weight rows, read
 * in place, with activations rounded to BF16 rows — and the probe that says whether this CPU's
 * BF16 dot products outrun its F32 FMA (Zen 4 and 5 run vdpbf16ps at twice the F32 rate; some
 * Intel cores at half of it). */
#include "engine/cpu/matrix_internal.h"

#if SIMD_X86
#include <immintrin.h>
#include <time.h>

#pragma GCC push_options
#pragma GCC target("avx512f,avx512bw,avx512vl,avx512dq,avx512bf16,avx2,fma")

/* The AVX-512 F32 set's sums (simd.c: avx512_sum16), the same tree: lane t * 4 + i of the result
 * sums the lanes of a[i * 4 + t] pairing j with j + 8, then j + 4, j + 2, j + 1. */
static inline __attribute__((always_inline)) __m512 sum16(const __m512 *a)
{
    __m512 b[8], c[4], d[2];
#pragma GCC unroll 8
    for (int i = 0; i < 8; i++)
        b[i] = _mm512_add_ps(_mm512_shuffle_f32x4(a[2 * i], a[2 * i + 1], 0x44),
                             _mm512_shuffle_f32x4(a[2 * i], a[2 * i + 1], 0xee));
#pragma GCC unroll 4
    for (int i = 0; i < 4; i++)
        c[i] = _mm512_add_ps(_mm512_shuffle_f32x4(b[2 * i], b[2 * i + 1], 0x88),
                             _mm512_shuffle_f32x4(b[2 * i], b[2 * i + 1], 0xdd));
#pragma GCC unroll 2
    for (int i = 0; i < 2; i++) {
        __m512d x = _mm512_castps_pd(c[2 * i]), y = _mm512_castps_pd(c[2 * i + 1]);
        d[i] = _mm512_add_ps(_mm512_castpd_ps(_mm512_unpacklo_pd(x, y)),
                             _mm512_castpd_ps(_mm512_unpackhi_pd(x, y)));
    }
    return _mm512_add_ps(_mm512_shuffle_ps(d[0], d[1], 0x88), _mm512_shuffle_ps(d[0], d[1], 0xdd));
}

/* R weight rows against N packed tokens (R, N <= 4, constants at every call): one accumulator
 * per pair, whole 32-column chunks, then the masked rest of the row (the packed tokens are
 * zero there), all 16 summed at once. */
static inline __attribute__((always_inline)) void tile(const uint16_t *w, int64_t ldw, const int R,
                                                       const uint16_t *x, int64_t ldx, const int N,
                                                       int k, float *y, int64_t ldy)
{
    __m512 acc[16];
    __m512bh wv[4];
#pragma GCC unroll 16
    for (int q = 0; q < 16; q++) acc[q] = _mm512_setzero_ps();
    int c = 0;
    for (; c + 32 <= k; c += 32) {
#pragma GCC unroll 4
        for (int i = 0; i < R; i++) {
            _mm_prefetch((const char *)(w + (4 + i) * ldw + c), _MM_HINT_T0); /* the next rows */
            wv[i] = (__m512bh)_mm512_loadu_si512(w + i * ldw + c);
        }
#pragma GCC unroll 4
        for (int t = 0; t < N; t++) {
            __m512bh xv = (__m512bh)_mm512_loadu_si512(x + t * ldx + c);
#pragma GCC unroll 4
            for (int i = 0; i < R; i++)
                acc[i * 4 + t] = _mm512_dpbf16_ps(acc[i * 4 + t], wv[i], xv);
        }
    }
    if (c < k) {
        __mmask32 m = (__mmask32)((1ull << (k - c)) - 1);
#pragma GCC unroll 4
        for (int i = 0; i < R; i++) wv[i] = (__m512bh)_mm512_maskz_loadu_epi16(m, w + i * ldw + c);
#pragma GCC unroll 4
        for (int t = 0; t < N; t++) {
            __m512bh xv = (__m512bh)_mm512_loadu_si512(x + t * ldx + c);
#pragma GCC unroll 4
            for (int i = 0; i < R; i++)
                acc[i * 4 + t] = _mm512_dpbf16_ps(acc[i * 4 + t], wv[i], xv);
        }
    }
    float s[16];
    _mm512_storeu_ps(s, sum16(acc));
#pragma GCC unroll 4
    for (int t = 0; t < N; t++)
#pragma GCC unroll 4
        for (int i = 0; i < R; i++) y[t * ldy + i] = s[t * 4 + i];
}

#define SEEKD_TILE_FN(R, N)                                                                        \
    static void tile_##R##x##N(const uint16_t *w, int64_t ldw, const uint16_t *x, int64_t ldx,     \
                               int k, float *y, int64_t ldy)                                       \
    {                                                                                              \
        tile(w, ldw, R, x, ldx, N, k, y, ldy);                                                     \
    }
#define SEEKD_TILE_ROW(R)                                                                          \
    SEEKD_TILE_FN(R, 1) SEEKD_TILE_FN(R, 2) SEEKD_TILE_FN(R, 3) SEEKD_TILE_FN(R, 4)
SEEKD_TILE_ROW(1)
SEEKD_TILE_ROW(2)
SEEKD_TILE_ROW(3)
SEEKD_TILE_ROW(4)
#undef SEEKD_TILE_ROW
#undef SEEKD_TILE_FN

typedef void (*tile_fn)(const uint16_t *, int64_t, const uint16_t *, int64_t, int, float *,
                        int64_t);

enum { TOKEN_BLOCK_BYTES = 128 * 1024 }; /* packed tokens per block: they stay in L2 */

/* A block of tokens at a time (in L2), each met by four rows at a time (in L1), four tokens at a
 * time: the caller's rows (a block of them, in L2) are read once per block of tokens. */
static void gemm(const uint16_t *w, int64_t ldw, int nr, const void *xp, int n, int k, float *y,
                 int64_t ldy, void *scratch)
{
    static const tile_fn fn[4][4] = {{tile_1x1, tile_1x2, tile_1x3, tile_1x4},
                                     {tile_2x1, tile_2x2, tile_2x3, tile_2x4},
                                     {tile_3x1, tile_3x2, tile_3x3, tile_3x4},
                                     {tile_4x1, tile_4x2, tile_4x3, tile_4x4}};
    const uint16_t *x = xp;
    int kp = matrix_kpad(k), tb = TOKEN_BLOCK_BYTES / (kp * 2) / 4 * 4;
    if (tb < 4) tb = 4;
    for (int t0 = 0; t0 < n; t0 += tb) {
        int t1 = t0 + tb < n ? t0 + tb : n;
        for (int i = 0; i < nr; i += 4) {
            int r = nr - i < 4 ? nr - i : 4;
            for (int t = t0; t < t1; t += 4)
                fn[r - 1][(t1 - t < 4 ? t1 - t : 4) - 1](w + i * ldw, ldw, x + (size_t)t * kp, kp,
                                                         k, y + t * ldy + i, ldy);
        }
    }
}

/* matrix_pack_rows with the rounding instruction: the same bits (nearest even; the instruction
 * flushes denormals to zero, as matrix_bf16 does). */
static void pack(const float *x, int64_t ldx, int n, int k, void *xp)
{
    uint16_t *out = xp;
    int kp = matrix_kpad(k);
    for (int t = 0; t < n; t++)
        for (int c = 0; c < kp; c += 32) {
            __mmask16 lo = k - c >= 16 ? 0xffff : k - c > 0 ? (__mmask16)((1u << (k - c)) - 1) : 0;
            __mmask16 hi = k - c >= 32  ? 0xffff
                           : k - c > 16 ? (__mmask16)((1u << (k - c - 16)) - 1)
                                        : 0;
            __m512 a = _mm512_maskz_loadu_ps(lo, x + t * ldx + c);
            __m512 b = _mm512_maskz_loadu_ps(hi, x + t * ldx + c + 16);
            _mm512_storeu_si512(out + (size_t)t * kp + c, (__m512i)_mm512_cvtne2ps_pbh(b, a));
        }
}

static size_t rows_bytes(int n, int k)
{
    return (size_t)n * (size_t)matrix_kpad(k) * sizeof(uint16_t);
}

static size_t no_scratch(int k)
{
    return 0;
}

const struct matrix_kernels matrix_avx512bf16_set = {"avx512bf16", rows_bytes, pack, no_scratch,
                                                     gemm};

/* Seconds of this thread's CPU time: a shared machine's other work does not count. */
static double cpu_seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

/* Seconds for n rounds of 12 independent vdpbf16ps (bf16 != 0) or vfmadd231ps. */
static __attribute__((noinline)) double probe(long n, int bf16)
{
    __m512 a[12];
    __m512 x = _mm512_set1_ps(0.5f), y = _mm512_set1_ps(0.25f);
    __m512bh p = (__m512bh)_mm512_set1_epi32(0x3f003f00),
             q = (__m512bh)_mm512_set1_epi32(0x3e803e80);
    for (int j = 0; j < 12; j++) a[j] = _mm512_set1_ps((float)j);
    double t0 = cpu_seconds();
    for (long i = 0; i < n; i++) {
#pragma GCC unroll 12
        for (int j = 0; j < 12; j++)
            a[j] = bf16 ? _mm512_dpbf16_ps(a[j], p, q) : _mm512_fmadd_ps(x, y, a[j]);
        __asm__ volatile("" : "+v"(x), "+v"(p)); /* keeps the loop */
    }
    double t = cpu_seconds() - t0;
    __m512 s = a[0];
    for (int j = 1; j < 12; j++) s = _mm512_add_ps(s, a[j]);
    __asm__ volatile("" : : "v"(s));
    return t;
}

double matrix_avx512bf16_rate(void)
{
    double best_bf16 = 1e9, best_f32 = 1e9;
    for (int r = 0; r < 5; r++) { /* best of five, ~0.1 ms each */
        double a = probe(8192, 1), b = probe(8192, 0);
        best_bf16 = a < best_bf16 ? a : best_bf16;
        best_f32 = b < best_f32 ? b : best_f32;
    }
    return best_bf16 > 0 ? (32.0 / best_bf16) / (16.0 / best_f32) : 0; /* multiply-adds per s */
}

#pragma GCC pop_options
#endif
