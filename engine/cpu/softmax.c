/* softmax: scalar reference and AVX2 / AVX-512 row softmax (see softmax.h for the numerics). */
#include "engine/cpu/softmax.h"

#include <math.h>

void softmax_scalar(float *x, int n, float scale)
{
    float mx = -INFINITY, sum = 0.0f;
    for (int i = 0; i < n; i++) x[i] *= scale, mx = fmaxf(mx, x[i]);
    for (int i = 0; i < n; i++) sum += x[i] = expf(x[i] - mx);
    for (int i = 0; i < n; i++) x[i] /= sum;
}

#if SIMD_X86
#include <immintrin.h>

/* exp(x) = 2^k · e^r with k = round(x / ln 2) and r = x − k·ln 2 (in two parts, |r| ≤ ln 2 / 2),
 * e^r by its Taylor polynomial to r^7 (remainder below 2^-27). */
#define SEEKD_LN2_HI 0.693359375f
#define SEEKD_LN2_LO -2.12194440e-4f
#define SEEKD_EXP_POLY(FMA, SET1, r)                                                               \
    FMA(FMA(FMA(FMA(FMA(FMA(FMA(SET1(1.0f / 5040), r, SET1(1.0f / 720)), r, SET1(1.0f / 120)), r,  \
                        SET1(1.0f / 24)),                                                          \
                    r, SET1(1.0f / 6)),                                                            \
                r, SET1(0.5f)),                                                                    \
            r, SET1(1.0f)),                                                                        \
        r, SET1(1.0f))

#pragma GCC push_options
#pragma GCC target("avx2,fma")

static inline __m256 exp256(__m256 x)
{
    __m256 tiny = _mm256_cmp_ps(x, _mm256_set1_ps(-87.0f), _CMP_LT_OQ); /* 2^k would not fit */
    x = _mm256_max_ps(x, _mm256_set1_ps(-87.0f));
    __m256 k = _mm256_round_ps(_mm256_mul_ps(x, _mm256_set1_ps(1.44269504f)),
                               _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m256 r = _mm256_fnmadd_ps(k, _mm256_set1_ps(SEEKD_LN2_HI), x);
    r = _mm256_fnmadd_ps(k, _mm256_set1_ps(SEEKD_LN2_LO), r);
    __m256 p = SEEKD_EXP_POLY(_mm256_fmadd_ps, _mm256_set1_ps, r);
    __m256i e =
        _mm256_slli_epi32(_mm256_add_epi32(_mm256_cvtps_epi32(k), _mm256_set1_epi32(127)), 23);
    return _mm256_andnot_ps(tiny, _mm256_mul_ps(p, _mm256_castsi256_ps(e)));
}

static inline float hsum256(__m256 v)
{
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    return _mm_cvtss_f32(_mm_add_ss(s, _mm_movehdup_ps(s)));
}

void softmax_avx2(float *x, int n, float scale)
{
    __m256 vs = _mm256_set1_ps(scale), vm = _mm256_set1_ps(-INFINITY), acc = _mm256_setzero_ps();
    int i = 0;
    float mx = -INFINITY, sum;
    for (; i + 8 <= n; i += 8) {
        __m256 v = _mm256_mul_ps(_mm256_loadu_ps(x + i), vs);
        _mm256_storeu_ps(x + i, v);
        vm = _mm256_max_ps(vm, v);
    }
    for (int j = i; j < n; j++) x[j] *= scale, mx = fmaxf(mx, x[j]);
    for (int j = 0; j < 8; j++) mx = fmaxf(mx, vm[j]);
    __m256 m = _mm256_set1_ps(mx);
    for (i = 0; i + 8 <= n; i += 8) {
        __m256 e = exp256(_mm256_sub_ps(_mm256_loadu_ps(x + i), m));
        _mm256_storeu_ps(x + i, e);
        acc = _mm256_add_ps(acc, e);
    }
    sum = hsum256(acc);
    if (i < n) { /* the rest through the same exp, eight lanes at a time */
        float t[8] = {0};
        for (int j = i; j < n; j++) t[j - i] = x[j] - mx;
        __m256 e = exp256(_mm256_loadu_ps(t));
        _mm256_storeu_ps(t, e);
        for (int j = i; j < n; j++) sum += x[j] = t[j - i];
    }
    __m256 d = _mm256_set1_ps(sum);
    for (i = 0; i + 8 <= n; i += 8)
        _mm256_storeu_ps(x + i, _mm256_div_ps(_mm256_loadu_ps(x + i), d));
    for (; i < n; i++) x[i] /= sum;
}

#pragma GCC pop_options

#pragma GCC push_options
#pragma GCC target("avx512f,avx2,fma")

static inline __m512 exp512(__m512 x)
{
    x = _mm512_max_ps(x, _mm512_set1_ps(-104.0f)); /* e^-104 is below the smallest float */
    __m512 k = _mm512_roundscale_ps(_mm512_mul_ps(x, _mm512_set1_ps(1.44269504f)),
                                    _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m512 r = _mm512_fnmadd_ps(k, _mm512_set1_ps(SEEKD_LN2_HI), x);
    r = _mm512_fnmadd_ps(k, _mm512_set1_ps(SEEKD_LN2_LO), r);
    return _mm512_scalef_ps(SEEKD_EXP_POLY(_mm512_fmadd_ps, _mm512_set1_ps, r), k);
}

/* The lanes summed j + 8, j + 4, j + 2, j + 1, as the AVX-512 kernel set sums its dot products. */
static inline float hsum512(__m512 v)
{
    __m256 a = _mm256_add_ps(_mm512_castps512_ps256(v),
                             _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(v), 1)));
    return hsum256(a);
}

void softmax_avx512(float *x, int n, float scale)
{
    __m512 vs = _mm512_set1_ps(scale), vm = _mm512_set1_ps(-INFINITY), acc = _mm512_setzero_ps();
    for (int i = 0; i < n; i += 16) {
        __mmask16 k = n - i >= 16 ? 0xffff : (__mmask16)((1u << (n - i)) - 1);
        __m512 v = _mm512_mul_ps(_mm512_maskz_loadu_ps(k, x + i), vs);
        _mm512_mask_storeu_ps(x + i, k, v);
        vm = _mm512_mask_max_ps(vm, k, vm, v);
    }
    __m512 m = _mm512_set1_ps(_mm512_reduce_max_ps(vm));
    for (int i = 0; i < n; i += 16) {
        __mmask16 k = n - i >= 16 ? 0xffff : (__mmask16)((1u << (n - i)) - 1);
        __m512 e = exp512(_mm512_sub_ps(_mm512_maskz_loadu_ps(k, x + i), m));
        _mm512_mask_storeu_ps(x + i, k, e);
        acc = _mm512_add_ps(acc, _mm512_maskz_mov_ps(k, e));
    }
    __m512 d = _mm512_set1_ps(hsum512(acc));
    for (int i = 0; i < n; i += 16) {
        __mmask16 k = n - i >= 16 ? 0xffff : (__mmask16)((1u << (n - i)) - 1);
        _mm512_mask_storeu_ps(x + i, k, _mm512_div_ps(_mm512_maskz_loadu_ps(k, x + i), d));
    }
}

#pragma GCC pop_options
#endif
