/* quant_simd: the 8-bit quantised path's kernels (quant_kernels.h) written once over 256-bit
 * vectors, compiled by quant_avx2.c (AVX2: maddubs + madd) and quant_avx512.c (AVX-512 VL with
 * VNNI: dpbusd). The including file defines QS(name) (a prefix for every function), QS_VNNI
 * (0/1) and puts the code under its target pragma.
 *
 * Integer arithmetic is the reference set's, lane for lane: a lane holds the sum of 4 adjacent
 * code×quant products (maddubs + madd, or dpbusd, give the same exact int32), so the results
 * differ from quant_kernels.c's only by the order of the float sums. */

#include <immintrin.h>
#include <math.h>
#include <string.h>

#include "engine/cpu/quant_kernels.h"
#include "engine/model/quant.h"

/* ---- helpers --------------------------------------------------------------------------------- */

static inline float QS(hsum)(__m256 v)
{
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    s = _mm_add_ss(s, _mm_shuffle_ps(s, s, 1));
    return _mm_cvtss_f32(s);
}

static inline int QS(hsum_i)(__m256i v)
{
    __m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
    s = _mm_add_epi32(s, _mm_unpackhi_epi64(s, s));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 1));
    return _mm_cvtsi128_si32(s);
}

/* Sums of 4 adjacent products of unsigned codes u and signed quants q, as 8 int32 lanes. */
static inline __m256i QS(dot4)(__m256i u, __m256i q)
{
#if QS_VNNI
    return _mm256_dpbusd_epi32(_mm256_setzero_si256(), u, q);
#else
    return _mm256_madd_epi16(_mm256_maddubs_epi16(u, q), _mm256_set1_epi16(1));
#endif
}

/* The same for signed codes (Q8_0): |w| times q with w's sign. */
static inline __m256i QS(dot4s)(__m256i w, __m256i q)
{
    return QS(dot4)(_mm256_sign_epi8(w, w), _mm256_sign_epi8(q, w));
}

static inline float QS(f16)(const uint8_t *p)
{
    uint16_t h;
    memcpy(&h, p, 2);
    return _cvtsh_ss(h);
}

static inline float QS(round16)(float f)
{
    return _cvtsh_ss(_cvtss_sh(f, _MM_FROUND_TO_NEAREST_INT));
}

/* ---- activations ----------------------------------------------------------------------------- */

/* 32 floats to int8 in order (packs interleave 128-bit halves: a final permute restores it). */
static inline __m256i QS(pack32)(__m256 v0, __m256 v1, __m256 v2, __m256 v3, __m256i *sum)
{
    __m256i i0 = _mm256_cvtps_epi32(v0), i1 = _mm256_cvtps_epi32(v1);
    __m256i i2 = _mm256_cvtps_epi32(v2), i3 = _mm256_cvtps_epi32(v3);
    *sum = _mm256_add_epi32(_mm256_add_epi32(i0, i1), _mm256_add_epi32(i2, i3));
    __m256i p = _mm256_packs_epi16(_mm256_packs_epi32(i0, i1), _mm256_packs_epi32(i2, i3));
    return _mm256_permutevar8x32_epi32(p, _mm256_setr_epi32(0, 4, 1, 5, 2, 6, 3, 7));
}

static void QS(quantize32)(const float *x, int64_t k, int8_t *q, float *d, float *s, int32_t *qs)
{
    const __m256 sign = _mm256_set1_ps(-0.0f);
    for (int64_t b = 0; b < k / 32; b++, x += 32) {
        __m256 v0 = _mm256_loadu_ps(x), v1 = _mm256_loadu_ps(x + 8);
        __m256 v2 = _mm256_loadu_ps(x + 16), v3 = _mm256_loadu_ps(x + 24);
        __m256 m = _mm256_max_ps(_mm256_max_ps(_mm256_andnot_ps(sign, v0), _mm256_andnot_ps(sign, v1)),
                                 _mm256_max_ps(_mm256_andnot_ps(sign, v2), _mm256_andnot_ps(sign, v3)));
        __m128 m4 = _mm_max_ps(_mm256_extractf128_ps(m, 1), _mm256_castps256_ps128(m));
        m4 = _mm_max_ps(m4, _mm_movehl_ps(m4, m4));
        m4 = _mm_max_ss(m4, _mm_movehdup_ps(m4));
        float amax = _mm_cvtss_f32(m4), db = amax / 127.0f;
        __m256 id = _mm256_set1_ps(amax != 0.0f ? 127.0f / amax : 0.0f);
        __m256i sum;
        __m256i qv = QS(pack32)(_mm256_round_ps(_mm256_mul_ps(v0, id), _MM_FROUND_TO_NEAREST_INT),
                                _mm256_round_ps(_mm256_mul_ps(v1, id), _MM_FROUND_TO_NEAREST_INT),
                                _mm256_round_ps(_mm256_mul_ps(v2, id), _MM_FROUND_TO_NEAREST_INT),
                                _mm256_round_ps(_mm256_mul_ps(v3, id), _MM_FROUND_TO_NEAREST_INT), &sum);
        _mm256_storeu_si256((__m256i *)(q + 32 * b), qv);
        qs[b] = QS(hsum_i)(sum);
        d[b] = QS(round16)(db), s[b] = QS(round16)(db * (float)qs[b]);
    }
}

/* ggml's Q8_K: the scale from the first value of largest magnitude, so that it becomes -127. */
static void QS(quantize256)(const float *x, int64_t k, int8_t *q, float *d, int16_t *bs)
{
    const __m256 sign = _mm256_set1_ps(-0.0f);
    for (int64_t b = 0; b < k / 256; b++, x += 256) {
        __m256 m = _mm256_setzero_ps();
        for (int i = 0; i < 256; i += 8) m = _mm256_max_ps(m, _mm256_andnot_ps(sign, _mm256_loadu_ps(x + i)));
        float amax, max = 0.0f;
        __m128 m4 = _mm_max_ps(_mm256_extractf128_ps(m, 1), _mm256_castps256_ps128(m));
        m4 = _mm_max_ps(m4, _mm_movehl_ps(m4, m4));
        amax = _mm_cvtss_f32(_mm_max_ss(m4, _mm_movehdup_ps(m4)));
        for (int i = 0; i < 256; i++)
            if (fabsf(x[i]) == amax) {
                max = x[i];
                break;
            }
        float is = amax != 0.0f ? -127.0f / max : 0.0f;
        __m256 iv = _mm256_set1_ps(is);
        for (int i = 0; i < 256; i += 32) {
            __m256i sum;
            __m256i qv = QS(pack32)(_mm256_round_ps(_mm256_mul_ps(_mm256_loadu_ps(x + i), iv), _MM_FROUND_TO_NEAREST_INT),
                                    _mm256_round_ps(_mm256_mul_ps(_mm256_loadu_ps(x + i + 8), iv), _MM_FROUND_TO_NEAREST_INT),
                                    _mm256_round_ps(_mm256_mul_ps(_mm256_loadu_ps(x + i + 16), iv), _MM_FROUND_TO_NEAREST_INT),
                                    _mm256_round_ps(_mm256_mul_ps(_mm256_loadu_ps(x + i + 24), iv), _MM_FROUND_TO_NEAREST_INT),
                                    &sum);
            _mm256_storeu_si256((__m256i *)(q + 256 * b + i), qv);
            __m256i p = _mm256_maddubs_epi16(_mm256_set1_epi8(1), qv); /* pair sums, int16 */
            __m256i s8 = _mm256_madd_epi16(p, _mm256_set1_epi16(1));   /* sums of 4, int32 */
            /* sums of 16: lanes (0..3) and (4..7) of s8 */
            __m256i h = _mm256_hadd_epi32(s8, s8); /* per 128-bit half: s01 s23 s01 s23 */
            h = _mm256_hadd_epi32(h, h);
            bs[16 * b + i / 16] = (int16_t)_mm256_extract_epi32(h, 0);
            bs[16 * b + i / 16 + 1] = (int16_t)_mm256_extract_epi32(h, 4);
        }
        d[b] = amax != 0.0f ? 1.0f / is : 0.0f;
    }
}

static void QS(quantize)(const float *x, enum dtype wt, struct qk_act *a, int t)
{
    int64_t k = a->k;
    if (qk_type_of(wt).k_type) QS(quantize256)(x, k, a->q + t * k, a->d + t * k / 32, a->bs + t * k / 16);
    else QS(quantize32)(x, k, a->q + t * k, a->d + t * k / 32, a->s + t * k / 32, a->qs + t * k / 32);
}

/* ---- rows ------------------------------------------------------------------------------------ */

/* 16 bytes of nibbles → 32 codes: the low nibbles, then the high ones. */
static inline __m256i QS(nibbles)(const uint8_t *p)
{
    __m128i v = _mm_loadu_si128((const __m128i *)p), m = _mm_set1_epi8(15);
    return _mm256_set_m128i(_mm_and_si128(_mm_srli_epi16(v, 4), m), _mm_and_si128(v, m));
}

/* Bit i of the 32 bits at p as 0x10 in byte i (the fifth bit of Q5_0 / Q5_1 codes). */
static inline __m256i QS(bits5)(const uint8_t *p)
{
    uint32_t h;
    memcpy(&h, p, 4);
    __m256i v = _mm256_shuffle_epi8(_mm256_set1_epi32((int)h),
                                    _mm256_setr_epi8(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2,
                                                     2, 2, 2, 2, 2, 2, 3, 3, 3, 3, 3, 3, 3, 3));
    __m256i bit = _mm256_set1_epi64x(0x8040201008040201ll);
    return _mm256_and_si256(_mm256_cmpeq_epi8(_mm256_and_si256(v, bit), bit), _mm256_set1_epi8(16));
}

/* One row of a 32-value type T (a constant at each call: the switch folds). Weights stream from
 * memory once per token batch, so the row four ahead is prefetched as this one is decoded. */
static inline __attribute__((always_inline)) void QS(unpack32_t)(const enum dtype T,
    const uint8_t *p, int64_t nb, size_t row_bytes, struct qk_row *row)
{
    const size_t bs = T == DT_Q8_0 ? 34 : T == DT_Q4_0 ? 18 : T == DT_Q4_1 ? 20 : T == DT_Q5_0 ? 22 : 24;
    uint8_t *u = row->u;
    float *d = row->d, *m = row->m;
    for (int64_t b = 0; b < nb; b++, p += bs) {
        __m256i v;
        _mm_prefetch((const char *)p + 4 * row_bytes, _MM_HINT_T0);
        d[b] = QS(f16)(p);
        m[b] = T == DT_Q4_1 || T == DT_Q5_1 ? QS(f16)(p + 2) : 0.0f;
        switch (T) {
        case DT_Q8_0: v = _mm256_loadu_si256((const __m256i *)(p + 2)); break;
        case DT_Q4_0: v = QS(nibbles)(p + 2); break;
        case DT_Q4_1: v = QS(nibbles)(p + 4); break;
        case DT_Q5_0: v = _mm256_or_si256(QS(nibbles)(p + 6), QS(bits5)(p + 2)); break;
        default: v = _mm256_or_si256(QS(nibbles)(p + 8), QS(bits5)(p + 4)); break;
        }
        _mm256_storeu_si256((__m256i *)(u + 32 * b), v);
    }
}

static void QS(unpack_legacy)(enum dtype t, const uint8_t *p, int64_t nb, struct qk_row *row)
{
    size_t rb = (size_t)nb * dtype_size(t);
    switch (t) {
    case DT_Q8_0: QS(unpack32_t)(DT_Q8_0, p, nb, rb, row); break;
    case DT_Q4_0: QS(unpack32_t)(DT_Q4_0, p, nb, rb, row); break;
    case DT_Q4_1: QS(unpack32_t)(DT_Q4_1, p, nb, rb, row); break;
    case DT_Q5_0: QS(unpack32_t)(DT_Q5_0, p, nb, rb, row); break;
    default: QS(unpack32_t)(DT_Q5_1, p, nb, rb, row); break;
    }
}

/* bits [s, s + n) of every byte of v, as values (n ≤ 4; shifting 16-bit lanes is safe under
 * the byte mask). */
static inline __m256i QS(field)(__m256i v, int s, int mask)
{
    return _mm256_and_si256(_mm256_srli_epi16(v, s), _mm256_set1_epi8((char)mask));
}

/* The 256 codes of one K block into u. */
static void QS(codes_k)(enum dtype t, const uint8_t *p, uint8_t *u)
{
    __m256i *o = (__m256i *)u;
    if (t == DT_Q2_K || t == DT_Q3_K) {
        const uint8_t *qs = p + (t == DT_Q2_K ? 16 : 32);
        for (int h = 0; h < 2; h++) {
            __m256i v = _mm256_loadu_si256((const __m256i *)(qs + 32 * h));
            for (int s = 0; s < 4; s++) _mm256_storeu_si256(o + 4 * h + s, QS(field)(v, 2 * s, 3));
        }
        if (t == DT_Q2_K) return;
        __m256i hm = _mm256_loadu_si256((const __m256i *)p);
        for (int s = 0; s < 8; s++)
            _mm256_storeu_si256(o + s, _mm256_or_si256(_mm256_loadu_si256(o + s),
                                                       _mm256_slli_epi16(QS(field)(hm, s, 1), 2)));
    } else if (t == DT_Q4_K || t == DT_Q5_K) {
        const uint8_t *qs = p + (t == DT_Q4_K ? 16 : 48);
        __m256i qh = _mm256_loadu_si256((const __m256i *)(p + 16));
        for (int g = 0; g < 4; g++) {
            __m256i v = _mm256_loadu_si256((const __m256i *)(qs + 32 * g));
            __m256i lo = QS(field)(v, 0, 15), hi = QS(field)(v, 4, 15);
            if (t == DT_Q5_K) {
                lo = _mm256_or_si256(lo, _mm256_slli_epi16(QS(field)(qh, 2 * g, 1), 4));
                hi = _mm256_or_si256(hi, _mm256_slli_epi16(QS(field)(qh, 2 * g + 1, 1), 4));
            }
            _mm256_storeu_si256(o + 2 * g, lo), _mm256_storeu_si256(o + 2 * g + 1, hi);
        }
    } else { /* Q6_K */
        for (int h = 0; h < 2; h++) {
            __m256i l0 = _mm256_loadu_si256((const __m256i *)(p + 64 * h));
            __m256i l1 = _mm256_loadu_si256((const __m256i *)(p + 64 * h + 32));
            __m256i qh = _mm256_loadu_si256((const __m256i *)(p + 128 + 32 * h));
            __m256i lo[4] = {QS(field)(l0, 0, 15), QS(field)(l1, 0, 15), QS(field)(l0, 4, 15), QS(field)(l1, 4, 15)};
            for (int s = 0; s < 4; s++)
                _mm256_storeu_si256(o + 4 * h + s, _mm256_or_si256(lo[s], _mm256_slli_epi16(QS(field)(qh, 2 * s, 3), 4)));
        }
    }
}

/* Group scales and mins of one K block (the reference's, scalar: 16 of each). */
static void QS(scales_k)(enum dtype t, const uint8_t *p, float *d, float *dmin, int16_t *sc, int16_t *mn)
{
    switch (t) {
    case DT_Q2_K:
        for (int g = 0; g < 16; g++) sc[g] = p[g] & 15, mn[g] = p[g] >> 4;
        *d = QS(f16)(p + 80), *dmin = QS(f16)(p + 82);
        break;
    case DT_Q3_K: {
        int8_t s[16];
        quant_q3k_scales(p + 96, s);
        for (int g = 0; g < 16; g++) sc[g] = s[g], mn[g] = 0;
        *d = QS(f16)(p + 108), *dmin = 0.0f;
        break;
    }
    case DT_Q4_K:
    case DT_Q5_K:
        for (int j = 0; j < 8; j++) {
            uint8_t s, m;
            quant_k4_scale_min(p + 4, j, &s, &m);
            sc[2 * j] = sc[2 * j + 1] = s, mn[2 * j] = mn[2 * j + 1] = m;
        }
        *d = QS(f16)(p), *dmin = QS(f16)(p + 2);
        break;
    default: /* Q6_K */
        for (int g = 0; g < 16; g++) sc[g] = (int8_t)p[192 + g], mn[g] = 0;
        *d = QS(f16)(p + 208), *dmin = 0.0f;
        break;
    }
}

static void QS(unpack)(const struct weight *w, int64_t r, struct qk_row *row)
{
    enum dtype t = w->dtype;
    const uint8_t *p = (const uint8_t *)w->data + (size_t)r * dtype_row_bytes(t, w->cols);
    if (dtype_block(t) == 32) {
        QS(unpack_legacy)(t, p, w->cols / 32, row);
        return;
    }
    size_t rb = dtype_row_bytes(t, w->cols);
    for (int64_t b = 0; b < w->cols / 256; b++, p += dtype_size(t)) {
        int16_t *sc = row->sc + 16 * b;
        for (size_t o = 0; o < dtype_size(t); o += 64) _mm_prefetch((const char *)p + 4 * rb + o, _MM_HINT_T0);
        QS(codes_k)(t, p, row->u + 256 * b);
        QS(scales_k)(t, p, &row->d[b], &row->m[b], sc, row->mn + 16 * b);
        for (int g = 0; g < 16; g++) /* each pair of codes gets its group's scale */
            _mm_storeu_si128((__m128i *)(row->scp + 128 * b + 8 * g), _mm_set1_epi16(sc[g]));
    }
}

/* ---- dots ------------------------------------------------------------------------------------ */

/* The 8 lane totals of v[0..8) as one vector: [Σv0, Σv1, ..., Σv7]. */
static inline __m256i QS(reduce8)(const __m256i v[8])
{
    __m256i a = _mm256_hadd_epi32(_mm256_hadd_epi32(v[0], v[1]), _mm256_hadd_epi32(v[2], v[3]));
    __m256i b = _mm256_hadd_epi32(_mm256_hadd_epi32(v[4], v[5]), _mm256_hadd_epi32(v[6], v[7]));
    return _mm256_add_epi32(_mm256_permute2x128_si256(a, b, 0x20), _mm256_permute2x128_si256(a, b, 0x31));
}

/* NT tokens from t0 against one row of a 32-value type. SHIFT: the zero point 2^SHIFT (-1:
 * none); MINS: + m·s per block; SGN: signed codes. Eight blocks at a time: their integer dots
 * are reduced to one vector of 8 block totals, then scaled by the 8 products d_w·d_x at once;
 * the blocks past the last group of 8 go one by one. Constants at every call, so the branches
 * fold and the accumulators stay in registers. */
static inline __attribute__((always_inline)) void QS(dot32_nt)(const struct qk_row *row,
    const struct qk_act *a, int t0, const int NT, const int SHIFT, const int MINS, const int SGN,
    float *y, int64_t ldy)
{
    int64_t k = a->k, nb = k / 32, b = 0;
    __m256 acc[4], accm[4];
    float tail[4] = {0, 0, 0, 0};
#pragma GCC unroll 4
    for (int j = 0; j < NT; j++) acc[j] = accm[j] = _mm256_setzero_ps();
    for (; b + 8 <= nb; b += 8) {
        __m256 dw = _mm256_loadu_ps(row->d + b), mw = MINS ? _mm256_loadu_ps(row->m + b) : dw;
#pragma GCC unroll 4
        for (int j = 0; j < NT; j++) {
            int64_t t = t0 + j;
            const int8_t *q = a->q + t * k + 32 * b;
            __m256i p[8];
#pragma GCC unroll 8
            for (int i = 0; i < 8; i++) {
                __m256i u = _mm256_loadu_si256((const __m256i *)(row->u + 32 * (b + i)));
                __m256i qv = _mm256_loadu_si256((const __m256i *)(q + 32 * i));
                p[i] = SGN ? QS(dot4s)(u, qv) : QS(dot4)(u, qv);
            }
            __m256i r = QS(reduce8)(p);
            if (SHIFT >= 0)
                r = _mm256_sub_epi32(r, _mm256_slli_epi32(_mm256_loadu_si256((const __m256i *)(a->qs + t * nb + b)), SHIFT));
            acc[j] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(r), _mm256_mul_ps(dw, _mm256_loadu_ps(a->d + t * nb + b)), acc[j]);
            if (MINS) accm[j] = _mm256_fmadd_ps(mw, _mm256_loadu_ps(a->s + t * nb + b), accm[j]);
        }
    }
    for (; b < nb; b++) {
        __m256i u = _mm256_loadu_si256((const __m256i *)(row->u + 32 * b));
#pragma GCC unroll 4
        for (int j = 0; j < NT; j++) {
            int64_t t = t0 + j;
            __m256i qv = _mm256_loadu_si256((const __m256i *)(a->q + t * k + 32 * b));
            int isum = QS(hsum_i)(SGN ? QS(dot4s)(u, qv) : QS(dot4)(u, qv));
            if (SHIFT >= 0) isum -= a->qs[t * nb + b] << SHIFT;
            tail[j] += (float)isum * (row->d[b] * a->d[t * nb + b]);
            if (MINS) tail[j] += row->m[b] * a->s[t * nb + b];
        }
    }
#pragma GCC unroll 4
    for (int j = 0; j < NT; j++) y[j * ldy] = QS(hsum)(_mm256_add_ps(acc[j], accm[j])) + tail[j];
}

/* NT tokens against one row of a K type: per super-block, the group scales are applied to the
 * pair sums (madd), the zero point and the mins through the quants' sums of 16. */
static inline __attribute__((always_inline)) void QS(dot256_nt)(const struct qk_row *row,
    const struct qk_act *a, int t0, const int NT, const int SHIFT, const int MINS, float *y,
    int64_t ldy)
{
    int64_t k = a->k, nb = k / 256;
    __m256 acc[4], accm[4];
#pragma GCC unroll 4
    for (int j = 0; j < NT; j++) acc[j] = accm[j] = _mm256_setzero_ps();
    for (int64_t b = 0; b < nb; b++) {
        __m256i isum[4];
#pragma GCC unroll 4
        for (int j = 0; j < NT; j++) isum[j] = _mm256_setzero_si256();
        for (int c = 0; c < 8; c++) {
            __m256i u = _mm256_loadu_si256((const __m256i *)(row->u + 256 * b + 32 * c));
            __m256i sc = _mm256_loadu_si256((const __m256i *)(row->scp + 128 * b + 16 * c));
#pragma GCC unroll 4
            for (int j = 0; j < NT; j++) {
                __m256i q = _mm256_loadu_si256((const __m256i *)(a->q + (t0 + j) * k + 256 * b + 32 * c));
                isum[j] = _mm256_add_epi32(isum[j], _mm256_madd_epi16(_mm256_maddubs_epi16(u, q), sc));
            }
        }
        __m256i sc16 = _mm256_loadu_si256((const __m256i *)(row->sc + 16 * b));
        __m256i mn16 = _mm256_loadu_si256((const __m256i *)(row->mn + 16 * b));
#pragma GCC unroll 4
        for (int j = 0; j < NT; j++) {
            int64_t t = t0 + j;
            __m256i bsv = _mm256_loadu_si256((const __m256i *)(a->bs + t * k / 16 + 16 * b));
            if (SHIFT >= 0) isum[j] = _mm256_sub_epi32(isum[j], _mm256_slli_epi32(_mm256_madd_epi16(sc16, bsv), SHIFT));
            float dx = a->d[t * k / 32 + b];
            acc[j] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(isum[j]), _mm256_set1_ps(row->d[b] * dx), acc[j]);
            if (MINS)
                accm[j] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(_mm256_madd_epi16(mn16, bsv)), _mm256_set1_ps(row->m[b] * dx), accm[j]);
        }
    }
#pragma GCC unroll 4
    for (int j = 0; j < NT; j++) y[j * ldy] = QS(hsum)(acc[j]) - (MINS ? QS(hsum)(accm[j]) : 0.0f);
}

/* Dispatches a run of up to 4 tokens to the kernel specialised for the type. */
#define QS_NT(CALL)                                                                                \
    switch (nt - t) {                                                                              \
    case 1: CALL(1); break;                                                                        \
    case 2: CALL(2); break;                                                                        \
    case 3: CALL(3); break;                                                                        \
    default: CALL(4); break;                                                                       \
    }

static void QS(dot)(enum dtype wt, const struct qk_row *row, const struct qk_act *a, int nt,
                    float *y, int64_t ldy)
{
    for (int t = 0; t < nt; t += 4) {
        float *yt = y + t * ldy;
#define Q4_0(N) QS(dot32_nt)(row, a, t, N, 3, 0, 0, yt, ldy)
#define Q5_0(N) QS(dot32_nt)(row, a, t, N, 4, 0, 0, yt, ldy)
#define QMIN(N) QS(dot32_nt)(row, a, t, N, -1, 1, 0, yt, ldy)
#define Q8_0(N) QS(dot32_nt)(row, a, t, N, -1, 0, 1, yt, ldy)
#define KMIN(N) QS(dot256_nt)(row, a, t, N, -1, 1, yt, ldy)
#define Q3_K(N) QS(dot256_nt)(row, a, t, N, 2, 0, yt, ldy)
#define Q6_K(N) QS(dot256_nt)(row, a, t, N, 5, 0, yt, ldy)
        switch (wt) {
        case DT_Q4_0: QS_NT(Q4_0) break;
        case DT_Q5_0: QS_NT(Q5_0) break;
        case DT_Q4_1: case DT_Q5_1: QS_NT(QMIN) break;
        case DT_Q8_0: QS_NT(Q8_0) break;
        case DT_Q3_K: QS_NT(Q3_K) break;
        case DT_Q6_K: QS_NT(Q6_K) break;
        default: QS_NT(KMIN) break; /* Q2_K, Q4_K, Q5_K */
        }
#undef Q4_0
#undef Q5_0
#undef QMIN
#undef Q8_0
#undef KMIN
#undef Q3_K
#undef Q6_K
    }
}

#undef QS_NT
