/* simd: kernel sets (scalar, AVX2+FMA, AVX-512) and their run-time choice. x86 sets are built
 * with per-function target attributes, so the binary stays baseline x86-64 and runs anywhere. */
#include "engine/cpu/simd.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "engine/cpu/cpu_ops.h"
#include "engine/cpu/quant_kernels.h"

/* ---- scalar: the reference kernels of cpu_ops ------------------------------------------------ */

static void scalar_widen_rows(const struct weight *w, int64_t r, int n, float *out, int64_t ld)
{
    for (int i = 0; i < n; i++) cpu_weight_row(w, r + i, out + i * ld);
}

static void scalar_dot_tile(const float *w, int64_t ldw, int nr, const float *x, int64_t ldx,
                            int nt, int k, float *y, int64_t ldy)
{
    for (int t = 0; t < nt; t++)
        for (int i = 0; i < nr; i++) y[t * ldy + i] = cpu_dot(w + i * ldw, x + t * ldx, k);
}

static void scalar_axpy_rows(float *y, const float *p, const float *rows, int64_t ld, int n, int k)
{
    for (int j = 0; j < n; j++) cpu_axpy(y, p[j], rows + j * ld, k);
}

static const struct simd_kernels scalar_set = {"scalar", scalar_widen_rows, scalar_dot_tile,
                                               cpu_dot, cpu_axpy, scalar_axpy_rows, NULL, NULL};

/* FP8 block scale of row r, column block b. */
static float fp8_scale(const struct weight *w, int64_t r, int64_t b)
{
    int64_t n_cb = (w->cols + w->block_cols - 1) / w->block_cols;
    float s;
    memcpy(&s, (const char *)w->scale + (size_t)((r / w->block_rows) * n_cb + b) * sizeof s, sizeof s);
    return s;
}

/* e4m3 bits placed in an f32's exponent/mantissa: exact value times 2^-120 (NaN codes aside). */
static inline float fp8_scalar(uint8_t b, float s)
{
    uint32_t u = ((uint32_t)(b & 0x80) << 24) | ((uint32_t)(b & 0x7f) << 20);
    float f;
    memcpy(&f, &u, sizeof f);
    return (f * 0x1p120f) * s;
}

/* The vector sets are compiled with GCC's target pragmas; another compiler (clang, for the fuzz
 * targets) builds the scalar set only. */
#if defined(__x86_64__) && !defined(__clang__)
#define SIMD_X86 1
#else
#define SIMD_X86 0
#endif

#if SIMD_X86
#include <immintrin.h>

/* ---- AVX2 + FMA + F16C ----------------------------------------------------------------------- */
#pragma GCC push_options
#pragma GCC target("avx2,fma,f16c")

static inline float avx2_hsum(__m256 v)
{
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_shuffle_ps(s, s, 1));
    return _mm_cvtss_f32(s);
}

/* Lane mask of the first rem (1..7) lanes. */
static inline __m256i avx2_mask(int rem)
{
    static const int32_t m[16] = {-1, -1, -1, -1, -1, -1, -1, -1, 0, 0, 0, 0, 0, 0, 0, 0};
    return _mm256_loadu_si256((const __m256i *)(m + 8 - rem));
}

static inline __m256 avx2_fp8x8(const uint8_t *p, __m256 s)
{
    uint64_t b8;
    memcpy(&b8, p, 8);
    __m256i v = _mm256_cvtepu8_epi32(_mm_cvtsi64_si128((long long)b8));
    __m256i sign = _mm256_slli_epi32(_mm256_and_si256(v, _mm256_set1_epi32(0x80)), 24);
    __m256i mag = _mm256_slli_epi32(_mm256_and_si256(v, _mm256_set1_epi32(0x7f)), 20);
    __m256 f = _mm256_castsi256_ps(_mm256_or_si256(sign, mag));
    return _mm256_mul_ps(_mm256_mul_ps(f, _mm256_set1_ps(0x1p120f)), s);
}

static void avx2_widen_row(const struct weight *w, int64_t r, float *out)
{
    int64_t n = w->cols, c = 0;
    const uint8_t *p = (const uint8_t *)w->data + (size_t)(r * n) * dtype_size(w->dtype);
    if (w->dtype == DT_BF16) {
        for (; c + 8 <= n; c += 8) {
            __m256i v = _mm256_cvtepu16_epi32(_mm_loadu_si128((const __m128i *)(p + 2 * c)));
            _mm256_storeu_ps(out + c, _mm256_castsi256_ps(_mm256_slli_epi32(v, 16)));
        }
    } else if (w->dtype == DT_F16) {
        for (; c + 8 <= n; c += 8)
            _mm256_storeu_ps(out + c, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(p + 2 * c))));
    } else if (w->dtype == DT_F8E4M3) {
        for (int64_t b = 0; b * w->block_cols < n; b++) {
            float s = fp8_scale(w, r, b);
            int64_t end = (b + 1) * w->block_cols < n ? (b + 1) * w->block_cols : n;
            for (c = b * w->block_cols; c + 8 <= end; c += 8)
                _mm256_storeu_ps(out + c, avx2_fp8x8(p + c, _mm256_set1_ps(s)));
            for (; c < end; c++) out[c] = fp8_scalar(p[c], s);
        }
        return;
    }
    if (c < n) dtype_to_f32(w->dtype, p + (size_t)c * dtype_size(w->dtype), out + c, (size_t)(n - c));
}

static void avx2_widen_rows(const struct weight *w, int64_t r, int n, float *out, int64_t ld)
{
    if (dtype_is_quant(w->dtype)) { qk_widen_rows(w, r, n, out, ld); return; }
    for (int i = 0; i < n; i++) avx2_widen_row(w, r + i, out + i * ld);
}

static float avx2_dot(const float *a, const float *b, int k)
{
    __m256 acc = _mm256_setzero_ps();
    int c = 0;
    for (; c + 8 <= k; c += 8) acc = _mm256_fmadd_ps(_mm256_loadu_ps(a + c), _mm256_loadu_ps(b + c), acc);
    if (c < k) {
        __m256i m = avx2_mask(k - c);
        acc = _mm256_fmadd_ps(_mm256_maskload_ps(a + c, m), _mm256_maskload_ps(b + c, m), acc);
    }
    return avx2_hsum(acc);
}

/* Four weight rows against two tokens: 8 accumulators, the same per-pair order as avx2_dot. */
static void avx2_tile_4x2(const float *w, int64_t ldw, const float *x, int64_t ldx, int k,
                          float *y, int64_t ldy)
{
    const float *w0 = w, *w1 = w + ldw, *w2 = w + 2 * ldw, *w3 = w + 3 * ldw;
    const float *x0 = x, *x1 = x + ldx;
    __m256 a00 = _mm256_setzero_ps(), a10 = a00, a20 = a00, a30 = a00;
    __m256 a01 = a00, a11 = a00, a21 = a00, a31 = a00;
    int c = 0;
#define SEEKD_TILE_STEP(LOAD)                                                                      \
    do {                                                                                           \
        __m256 v0 = LOAD(x0), v1 = LOAD(x1), r;                                                    \
        r = LOAD(w0), a00 = _mm256_fmadd_ps(r, v0, a00), a01 = _mm256_fmadd_ps(r, v1, a01);        \
        r = LOAD(w1), a10 = _mm256_fmadd_ps(r, v0, a10), a11 = _mm256_fmadd_ps(r, v1, a11);        \
        r = LOAD(w2), a20 = _mm256_fmadd_ps(r, v0, a20), a21 = _mm256_fmadd_ps(r, v1, a21);        \
        r = LOAD(w3), a30 = _mm256_fmadd_ps(r, v0, a30), a31 = _mm256_fmadd_ps(r, v1, a31);        \
    } while (0)
#define SEEKD_LOAD_FULL(p) _mm256_loadu_ps((p) + c)
#define SEEKD_LOAD_MASK(p) _mm256_maskload_ps((p) + c, m)
    for (; c + 8 <= k; c += 8) SEEKD_TILE_STEP(SEEKD_LOAD_FULL);
    if (c < k) {
        __m256i m = avx2_mask(k - c);
        SEEKD_TILE_STEP(SEEKD_LOAD_MASK);
    }
#undef SEEKD_LOAD_FULL
#undef SEEKD_LOAD_MASK
    y[0] = avx2_hsum(a00), y[1] = avx2_hsum(a10), y[2] = avx2_hsum(a20), y[3] = avx2_hsum(a30);
    y[ldy] = avx2_hsum(a01), y[ldy + 1] = avx2_hsum(a11);
    y[ldy + 2] = avx2_hsum(a21), y[ldy + 3] = avx2_hsum(a31);
}

static void avx2_dot_tile(const float *w, int64_t ldw, int nr, const float *x, int64_t ldx,
                          int nt, int k, float *y, int64_t ldy)
{
    int t = 0;
    for (; t + 2 <= nt; t += 2) {
        int i = 0;
        for (; i + 4 <= nr; i += 4) avx2_tile_4x2(w + i * ldw, ldw, x + t * ldx, ldx, k, y + t * ldy + i, ldy);
        for (; i < nr; i++) {
            y[t * ldy + i] = avx2_dot(w + i * ldw, x + t * ldx, k);
            y[(t + 1) * ldy + i] = avx2_dot(w + i * ldw, x + (t + 1) * ldx, k);
        }
    }
    for (; t < nt; t++)
        for (int i = 0; i < nr; i++) y[t * ldy + i] = avx2_dot(w + i * ldw, x + t * ldx, k);
}

static void avx2_axpy(float *y, float s, const float *x, int n)
{
    __m256 vs = _mm256_set1_ps(s);
    int i = 0;
    for (; i + 8 <= n; i += 8)
        _mm256_storeu_ps(y + i, _mm256_fmadd_ps(vs, _mm256_loadu_ps(x + i), _mm256_loadu_ps(y + i)));
    for (; i < n; i++) y[i] = fmaf(s, x[i], y[i]);
}

/* The running sums stay in registers across rows, one 8-wide column chunk at a time. */
static void avx2_axpy_rows(float *y, const float *p, const float *rows, int64_t ld, int n, int k)
{
    int c = 0;
    for (; c + 8 <= k; c += 8) {
        __m256 acc = _mm256_loadu_ps(y + c);
        for (int j = 0; j < n; j++)
            acc = _mm256_fmadd_ps(_mm256_set1_ps(p[j]), _mm256_loadu_ps(rows + j * ld + c), acc);
        _mm256_storeu_ps(y + c, acc);
    }
    for (; c < k; c++)
        for (int j = 0; j < n; j++) y[c] = fmaf(p[j], rows[j * ld + c], y[c]);
}

#pragma GCC pop_options

static const struct simd_kernels avx2_set = {"avx2", avx2_widen_rows, avx2_dot_tile, avx2_dot,
                                             avx2_axpy, avx2_axpy_rows, NULL, NULL};

/* ---- AVX-512 (F, BW, VL) --------------------------------------------------------------------- */
#pragma GCC push_options
#pragma GCC target("avx512f,avx512bw,avx512vl,avx2,fma,f16c")

static inline __m512 avx512_fp8x16(const uint8_t *p, __m512 s)
{
    __m512i v = _mm512_cvtepu8_epi32(_mm_loadu_si128((const __m128i *)p));
    __m512i sign = _mm512_slli_epi32(_mm512_and_si512(v, _mm512_set1_epi32(0x80)), 24);
    __m512i mag = _mm512_slli_epi32(_mm512_and_si512(v, _mm512_set1_epi32(0x7f)), 20);
    __m512 f = _mm512_castsi512_ps(_mm512_or_si512(sign, mag));
    return _mm512_mul_ps(_mm512_mul_ps(f, _mm512_set1_ps(0x1p120f)), s);
}

static void avx512_widen_row(const struct weight *w, int64_t r, float *out)
{
    int64_t n = w->cols, c = 0;
    const uint8_t *p = (const uint8_t *)w->data + (size_t)(r * n) * dtype_size(w->dtype);
    if (w->dtype == DT_BF16) {
        for (; c + 16 <= n; c += 16) {
            __m512i v = _mm512_cvtepu16_epi32(_mm256_loadu_si256((const __m256i *)(p + 2 * c)));
            _mm512_storeu_ps(out + c, _mm512_castsi512_ps(_mm512_slli_epi32(v, 16)));
        }
    } else if (w->dtype == DT_F16) {
        for (; c + 16 <= n; c += 16)
            _mm512_storeu_ps(out + c, _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(p + 2 * c))));
    } else if (w->dtype == DT_F8E4M3) {
        for (int64_t b = 0; b * w->block_cols < n; b++) {
            float s = fp8_scale(w, r, b);
            int64_t end = (b + 1) * w->block_cols < n ? (b + 1) * w->block_cols : n;
            for (c = b * w->block_cols; c + 16 <= end; c += 16)
                _mm512_storeu_ps(out + c, avx512_fp8x16(p + c, _mm512_set1_ps(s)));
            for (; c < end; c++) out[c] = fp8_scalar(p[c], s);
        }
        return;
    }
    if (c < n) dtype_to_f32(w->dtype, p + (size_t)c * dtype_size(w->dtype), out + c, (size_t)(n - c));
}

static void avx512_widen_rows(const struct weight *w, int64_t r, int n, float *out, int64_t ld)
{
    if (dtype_is_quant(w->dtype)) { qk_widen_rows(w, r, n, out, ld); return; }
    for (int i = 0; i < n; i++) avx512_widen_row(w, r + i, out + i * ld);
}

/* Columns [c0, c1) of row r widened (scale applied) into out[0 .. c1 - c0), as the row widener
 * makes them. */
static void avx512_widen_part(const struct weight *w, int64_t r, int64_t c0, int64_t c1, float *out)
{
    const uint8_t *p = (const uint8_t *)w->data + (size_t)(r * w->cols) * dtype_size(w->dtype);
    if (w->dtype == DT_F8E4M3) {
        for (int64_t c = c0; c < c1; c++) out[c - c0] = fp8_scalar(p[c], fp8_scale(w, r, c / w->block_cols));
        return;
    }
    dtype_to_f32(w->dtype, p + (size_t)c0 * dtype_size(w->dtype), out, (size_t)(c1 - c0));
}

static float avx512_dot(const float *a, const float *b, int k)
{
    __m512 acc = _mm512_setzero_ps();
    int c = 0;
    for (; c + 16 <= k; c += 16) acc = _mm512_fmadd_ps(_mm512_loadu_ps(a + c), _mm512_loadu_ps(b + c), acc);
    if (c < k) {
        __mmask16 m = (__mmask16)((1u << (k - c)) - 1);
        acc = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m, a + c), _mm512_maskz_loadu_ps(m, b + c), acc);
    }
    return _mm512_reduce_add_ps(acc);
}

/* Four weight rows against four tokens: 16 accumulators, each in avx512_dot's order. */
static void avx512_tile_4x4(const float *w, int64_t ldw, const float *x, int64_t ldx, int k,
                            float *y, int64_t ldy)
{
    __m512 acc[4][4];
#pragma GCC unroll 4
    for (int i = 0; i < 4; i++)
#pragma GCC unroll 4
        for (int t = 0; t < 4; t++) acc[i][t] = _mm512_setzero_ps();
    int c = 0;
    __mmask16 m = 0xffff;
    for (; c < k; c += 16) {
        if (k - c < 16) m = (__mmask16)((1u << (k - c)) - 1);
        __m512 v[4];
#pragma GCC unroll 4
        for (int t = 0; t < 4; t++) v[t] = _mm512_maskz_loadu_ps(m, x + t * ldx + c);
#pragma GCC unroll 4
        for (int i = 0; i < 4; i++) {
            __m512 r = _mm512_maskz_loadu_ps(m, w + i * ldw + c);
#pragma GCC unroll 4
            for (int t = 0; t < 4; t++) acc[i][t] = _mm512_fmadd_ps(r, v[t], acc[i][t]);
        }
    }
#pragma GCC unroll 4
    for (int t = 0; t < 4; t++)
#pragma GCC unroll 4
        for (int i = 0; i < 4; i++) y[t * ldy + i] = _mm512_reduce_add_ps(acc[i][t]);
}

static void avx512_dot_tile(const float *w, int64_t ldw, int nr, const float *x, int64_t ldx,
                            int nt, int k, float *y, int64_t ldy)
{
    int t = 0;
    for (; t + 4 <= nt; t += 4) {
        int i = 0;
        for (; i + 4 <= nr; i += 4) avx512_tile_4x4(w + i * ldw, ldw, x + t * ldx, ldx, k, y + t * ldy + i, ldy);
        for (; i < nr; i++)
            for (int u = t; u < t + 4; u++) y[u * ldy + i] = avx512_dot(w + i * ldw, x + u * ldx, k);
    }
    for (; t < nt; t++)
        for (int i = 0; i < nr; i++) y[t * ldy + i] = avx512_dot(w + i * ldw, x + t * ldx, k);
}

/* 16 widened values at p (BF16, FP8 times sc, or F32). */
static inline __attribute__((always_inline)) __m512 avx512_load_w(enum dtype dt, const uint8_t *p, __m512 sc)
{
    if (dt == DT_BF16)
        return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(_mm256_loadu_si256((const __m256i *)p)), 16));
    if (dt == DT_F8E4M3) return avx512_fp8x16(p, sc);
    return _mm512_loadu_ps((const float *)p);
}

/* ROWS rows from r against NT tokens, widening in registers: the same values and the same FMA
 * order as widen_rows + dot_tile, so the results are bit-identical to them. NT and ROWS are
 * compile-time constants at every call, so the accumulators stay in registers. */
static inline __attribute__((always_inline)) void avx512_direct_block(const struct weight *w,
    enum dtype dt, int64_t r, const float *x, int64_t ldx, const int NT, const int ROWS, float *y,
    int64_t ldy)
{
    int64_t k = w->cols, full = dt == DT_F8E4M3 && w->block_cols % 16 ? 0 : k / 16 * 16;
    const int es = dt == DT_BF16 ? 2 : dt == DT_F8E4M3 ? 1 : 4;
    int64_t step = dt == DT_F8E4M3 ? w->block_cols : (full > 0 ? full : 1); /* one scale each */
    const uint8_t *rp[4];
    /* the next block of rows, four rows down: the weights are one stream, read 4 rows abreast */
    const int64_t ahead = 4 * k * es;
    __m512 acc[4][4], sc[4];
#pragma GCC unroll 4
    for (int a = 0; a < ROWS; a++) {
        rp[a] = (const uint8_t *)w->data + (size_t)((r + a) * k) * es;
#pragma GCC unroll 4
        for (int t = 0; t < NT; t++) acc[a][t] = _mm512_setzero_ps();
    }
    for (int64_t c0 = 0; c0 < full; c0 += step) {
        int64_t c1 = c0 + step < full ? c0 + step : full;
#pragma GCC unroll 4
        for (int a = 0; a < ROWS; a++)
            sc[a] = dt == DT_F8E4M3 ? _mm512_set1_ps(fp8_scale(w, r + a, c0 / w->block_cols)) : _mm512_setzero_ps();
        for (int64_t c = c0; c < c1; c += 16) {
            __m512 v[4];
#pragma GCC unroll 4
            for (int t = 0; t < NT; t++) v[t] = _mm512_loadu_ps(x + t * ldx + c);
#pragma GCC unroll 4
            for (int a = 0; a < ROWS; a++) {
                _mm_prefetch((const char *)(rp[a] + c * es) + ahead, _MM_HINT_T0);
                __m512 wv = avx512_load_w(dt, rp[a] + c * es, sc[a]);
#pragma GCC unroll 4
                for (int t = 0; t < NT; t++) acc[a][t] = _mm512_fmadd_ps(wv, v[t], acc[a][t]);
            }
        }
    }
    for (int64_t c = full; c < k; c += 16) { /* the tail, widened the scalar way */
        __mmask16 m = k - c >= 16 ? 0xffff : (__mmask16)((1u << (k - c)) - 1);
        float tmp[16];
#pragma GCC unroll 4
        for (int a = 0; a < ROWS; a++) {
            avx512_widen_part(w, r + a, c, c + 16 < k ? c + 16 : k, tmp);
            __m512 wv = _mm512_maskz_loadu_ps(m, tmp);
#pragma GCC unroll 4
            for (int t = 0; t < NT; t++)
                acc[a][t] = _mm512_fmadd_ps(wv, _mm512_maskz_loadu_ps(m, x + t * ldx + c), acc[a][t]);
        }
    }
#pragma GCC unroll 4
    for (int a = 0; a < ROWS; a++)
#pragma GCC unroll 4
        for (int t = 0; t < NT; t++) y[t * ldy + a] = _mm512_reduce_add_ps(acc[a][t]);
}

/* One block of ROWS rows against every token, four tokens at a time (the rows stay in L1). */
static inline __attribute__((always_inline)) void avx512_direct_rows(const struct weight *w,
    enum dtype dt, int64_t r, const int ROWS, const float *x, int64_t ldx, int nt, float *y, int64_t ldy)
{
    int t = 0;
    for (; t + 4 <= nt; t += 4) avx512_direct_block(w, dt, r, x + t * ldx, ldx, 4, ROWS, y + t * ldy, ldy);
    switch (nt - t) {
    case 1: avx512_direct_block(w, dt, r, x + t * ldx, ldx, 1, ROWS, y + t * ldy, ldy); break;
    case 2: avx512_direct_block(w, dt, r, x + t * ldx, ldx, 2, ROWS, y + t * ldy, ldy); break;
    case 3: avx512_direct_block(w, dt, r, x + t * ldx, ldx, 3, ROWS, y + t * ldy, ldy); break;
    default: break;
    }
}

static inline __attribute__((always_inline)) void avx512_direct_dt(const struct weight *w,
    enum dtype dt, int64_t r0, int nr, const float *x, int64_t ldx, int nt, float *y, int64_t ldy)
{
    int i = 0;
    for (; i + 4 <= nr; i += 4) avx512_direct_rows(w, dt, r0 + i, 4, x, ldx, nt, y + i, ldy);
    for (; i < nr; i++) avx512_direct_rows(w, dt, r0 + i, 1, x, ldx, nt, y + i, ldy);
}

static void avx512_direct(const struct weight *w, int64_t r0, int nr, const float *x, int64_t ldx,
                          int nt, float *y, int64_t ldy)
{
    if (w->dtype == DT_BF16) avx512_direct_dt(w, DT_BF16, r0, nr, x, ldx, nt, y, ldy);
    else if (w->dtype == DT_F8E4M3) avx512_direct_dt(w, DT_F8E4M3, r0, nr, x, ldx, nt, y, ldy);
    else if (w->dtype == DT_F32) avx512_direct_dt(w, DT_F32, r0, nr, x, ldx, nt, y, ldy);
}

static void avx512_axpy(float *y, float s, const float *x, int n)
{
    __m512 vs = _mm512_set1_ps(s);
    int i = 0;
    for (; i + 16 <= n; i += 16)
        _mm512_storeu_ps(y + i, _mm512_fmadd_ps(vs, _mm512_loadu_ps(x + i), _mm512_loadu_ps(y + i)));
    for (; i < n; i++) y[i] = fmaf(s, x[i], y[i]);
}

/* Four 16-wide column chunks of running sums in registers across all rows. */
static void avx512_axpy_rows(float *y, const float *p, const float *rows, int64_t ld, int n, int k)
{
    int c = 0;
    for (; c + 64 <= k; c += 64) {
        __m512 a0 = _mm512_loadu_ps(y + c), a1 = _mm512_loadu_ps(y + c + 16);
        __m512 a2 = _mm512_loadu_ps(y + c + 32), a3 = _mm512_loadu_ps(y + c + 48);
        for (int j = 0; j < n; j++) {
            const float *r = rows + j * ld + c;
            __m512 s = _mm512_set1_ps(p[j]);
            a0 = _mm512_fmadd_ps(s, _mm512_loadu_ps(r), a0), a1 = _mm512_fmadd_ps(s, _mm512_loadu_ps(r + 16), a1);
            a2 = _mm512_fmadd_ps(s, _mm512_loadu_ps(r + 32), a2), a3 = _mm512_fmadd_ps(s, _mm512_loadu_ps(r + 48), a3);
        }
        _mm512_storeu_ps(y + c, a0), _mm512_storeu_ps(y + c + 16, a1);
        _mm512_storeu_ps(y + c + 32, a2), _mm512_storeu_ps(y + c + 48, a3);
    }
    for (; c + 16 <= k; c += 16) {
        __m512 acc = _mm512_loadu_ps(y + c);
        for (int j = 0; j < n; j++)
            acc = _mm512_fmadd_ps(_mm512_set1_ps(p[j]), _mm512_loadu_ps(rows + j * ld + c), acc);
        _mm512_storeu_ps(y + c, acc);
    }
    for (; c < k; c++)
        for (int j = 0; j < n; j++) y[c] = fmaf(p[j], rows[j * ld + c], y[c]);
}

/* Four outputs over the same rows, 64 columns at a time: 16 running sums in registers, each row
 * chunk loaded once for the four. Columns past the last 16-multiple go the scalar way, as in
 * avx512_axpy_rows. */
static void avx512_axpy_rows4(float *y, int64_t ldy, const float *p, int64_t ldp, const float *rows,
                              int64_t ld, int n, int k)
{
    int c = 0;
    for (; c + 64 <= k; c += 64) {
        __m512 acc[4][4];
#pragma GCC unroll 4
        for (int i = 0; i < 4; i++)
#pragma GCC unroll 4
            for (int q = 0; q < 4; q++) acc[i][q] = _mm512_loadu_ps(y + i * ldy + c + 16 * q);
        for (int j = 0; j < n; j++) {
            const float *r = rows + j * ld + c;
            __m512 v[4];
#pragma GCC unroll 4
            for (int q = 0; q < 4; q++) v[q] = _mm512_loadu_ps(r + 16 * q);
#pragma GCC unroll 4
            for (int i = 0; i < 4; i++) {
                __m512 s = _mm512_set1_ps(p[i * ldp + j]);
#pragma GCC unroll 4
                for (int q = 0; q < 4; q++) acc[i][q] = _mm512_fmadd_ps(s, v[q], acc[i][q]);
            }
        }
#pragma GCC unroll 4
        for (int i = 0; i < 4; i++)
#pragma GCC unroll 4
            for (int q = 0; q < 4; q++) _mm512_storeu_ps(y + i * ldy + c + 16 * q, acc[i][q]);
    }
    if (c < k)
        for (int i = 0; i < 4; i++) avx512_axpy_rows(y + i * ldy + c, p + i * ldp, rows + c, ld, n, k - c);
}

#pragma GCC pop_options

static const struct simd_kernels avx512_set = {"avx512", avx512_widen_rows, avx512_dot_tile,
                                               avx512_dot, avx512_axpy, avx512_axpy_rows,
                                               avx512_axpy_rows4, avx512_direct};
#endif /* SIMD_X86 */

const struct simd_kernels *simd_by_name(const char *name)
{
    if (strcmp(name, "scalar") == 0) return &scalar_set;
#if SIMD_X86
    __builtin_cpu_init();
    int has_avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") &&
                   __builtin_cpu_supports("f16c");
    if (strcmp(name, "avx2") == 0) return has_avx2 ? &avx2_set : NULL;
    if (strcmp(name, "avx512") == 0)
        return has_avx2 && __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
                       __builtin_cpu_supports("avx512vl")
                   ? &avx512_set
                   : NULL;
#endif
    return NULL;
}

const struct simd_kernels *simd_best(void)
{
    const char *want = getenv("SEEKD_SIMD");
    if (want && simd_by_name(want)) return simd_by_name(want);
    const char *order[] = {"avx512", "avx2"};
    for (size_t i = 0; i < sizeof order / sizeof order[0]; i++)
        if (simd_by_name(order[i])) return simd_by_name(order[i]);
    return &scalar_set;
}
