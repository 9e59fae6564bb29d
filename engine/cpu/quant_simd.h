/* quant_simd: the 8-bit quantised path's kernels (quant_kernels.h) written once over 256-bit
 * vectors, compiled by quant_avx2.c (AVX2: maddubs + madd) and quant_avx512.c (AVX-512 VL with
 * VNNI: dpbusd). The including file defines QS(name) (a prefix for every function), QS_VNNI
 * (0/1) and puts the code under its target pragma; with QS_OWN_DOT it defines QS(dot) itself.
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

/* Lane mask of the first n (0..8) 32-bit lanes. */
static inline __m256i QS(first_lanes)(int n)
{
    return _mm256_cmpgt_epi32(_mm256_set1_epi32(n), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
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

/* The 32 codes of one block of a 32-value type T at p. */
static inline __attribute__((always_inline)) __m256i QS(codes32)(const enum dtype T, const uint8_t *p)
{
    switch (T) {
    case DT_Q8_0: return _mm256_loadu_si256((const __m256i *)(p + 2));
    case DT_Q4_0: return QS(nibbles)(p + 2);
    case DT_Q4_1: return QS(nibbles)(p + 4);
    case DT_Q5_0: return _mm256_or_si256(QS(nibbles)(p + 6), QS(bits5)(p + 2));
    default: return _mm256_or_si256(QS(nibbles)(p + 8), QS(bits5)(p + 4));
    }
}

/* Bytes per block of a 32-value type. */
static inline size_t QS(bsize32)(const enum dtype T)
{
    return T == DT_Q8_0 ? 34 : T == DT_Q4_0 ? 18 : T == DT_Q4_1 ? 20 : T == DT_Q5_0 ? 22 : 24;
}

/* One row of a 32-value type T (a constant at each call: the switch folds). Weights stream from
 * memory once per token batch, so the row four ahead is prefetched as this one is decoded. */
static inline __attribute__((always_inline)) void QS(unpack32_t)(const enum dtype T,
    const uint8_t *p, int64_t nb, size_t row_bytes, struct qk_row *row)
{
    const size_t bs = QS(bsize32)(T);
    for (int64_t b = 0; b < nb; b++, p += bs) {
        _mm_prefetch((const char *)p + 4 * row_bytes, _MM_HINT_T0);
        row->d[b] = QS(f16)(p);
        row->m[b] = T == DT_Q4_1 || T == DT_Q5_1 ? QS(f16)(p + 2) : 0.0f;
        _mm256_storeu_si256((__m256i *)(row->u + 32 * b), QS(codes32)(T, p));
    }
}

/* Eight blocks of a packed row from p straight into registers (the first nblk; the rest zero):
 * the codes, and the scales and mins as unpack would store them (the first four bytes of each
 * block gathered at once: d, then m for the types with mins). */
static inline __attribute__((always_inline)) void QS(decode8)(const enum dtype T, const uint8_t *p,
    int nblk, __m256i v[8], __m256 *dw, __m256 *mw)
{
    const int bs = (int)QS(bsize32)(T);
    __m256i lanes = QS(first_lanes)(nblk);
    __m256i idx = _mm256_setr_epi32(0, bs, 2 * bs, 3 * bs, 4 * bs, 5 * bs, 6 * bs, 7 * bs);
    __m256i dm = _mm256_mask_i32gather_epi32(_mm256_setzero_si256(), (const int *)p, idx, lanes, 1);
    __m256i lo = _mm256_and_si256(dm, _mm256_set1_epi32(0xffff)), hi = _mm256_srli_epi32(dm, 16);
    __m256i h = _mm256_permute4x64_epi64(_mm256_packus_epi32(lo, hi), 0xd8); /* d0..7, m0..7 */
    *dw = _mm256_cvtph_ps(_mm256_castsi256_si128(h));
    *mw = T == DT_Q4_1 || T == DT_Q5_1 ? _mm256_cvtph_ps(_mm256_extracti128_si256(h, 1)) : _mm256_setzero_ps();
#pragma GCC unroll 8
    for (int i = 0; i < 8; i++) v[i] = i < nblk ? QS(codes32)(T, p + i * bs) : _mm256_setzero_si256();
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

/* The 256 codes of one K block into u (inlined: a constant t folds its branches). */
static inline __attribute__((always_inline)) void QS(codes_k)(enum dtype t, const uint8_t *p, uint8_t *u)
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

/* The 6-bit scales and mins of Q4_K / Q5_K (quant_k4_scale_min's) for all eight sub-blocks at
 * once: bytes 0..7 the scales, 8..15 the mins. From the 12 bytes at s as words u0 u1 u2 (read
 * as 16: the block goes on), in vector lanes: [u0 & m6, (u2 & m4) | (u0 >> 6 & m2) << 4,
 * u1 & m6, (u2 >> 4 & m4) | (u1 >> 6 & m2) << 4]. */
static inline __m128i QS(k4_scales)(const uint8_t *s)
{
    __m128i v = _mm_loadu_si128((const __m128i *)s);
    __m128i l = _mm_shuffle_epi32(v, 0x50), h = _mm_shuffle_epi32(v, 0xaa); /* u0 u0 u1 u1, u2 x4 */
    __m128i lo = _mm_and_si128(l, _mm_set1_epi8(0x3f));
    __m128i top = _mm_slli_epi32(
        _mm_and_si128(_mm_srlv_epi32(l, _mm_setr_epi32(0, 6, 0, 6)), _mm_set1_epi8(3)), 4);
    __m128i hi = _mm_or_si128(
        _mm_and_si128(_mm_srlv_epi32(h, _mm_setr_epi32(0, 0, 0, 4)), _mm_set1_epi8(15)), top);
    return _mm_blend_epi32(lo, hi, 0xa);
}

/* Group scales and mins of one K block as 16 int16 each (the reference's values), built in
 * registers: a scalar build read back as a vector would stall on store forwarding. */
static inline __attribute__((always_inline)) void QS(scales_k)(enum dtype t, const uint8_t *p, float *d, float *dmin, __m256i *sc,
                                __m256i *mn)
{
    switch (t) {
    case DT_Q2_K: {
        __m128i v = _mm_loadu_si128((const __m128i *)p), m = _mm_set1_epi8(15);
        *sc = _mm256_cvtepu8_epi16(_mm_and_si128(v, m));
        *mn = _mm256_cvtepu8_epi16(_mm_and_si128(_mm_srli_epi16(v, 4), m));
        *d = QS(f16)(p + 80), *dmin = QS(f16)(p + 82);
        break;
    }
    case DT_Q3_K: {
        int8_t s8[16];
        quant_q3k_scales(p + 96, s8);
        *sc = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)s8));
        *mn = _mm256_setzero_si256();
        *d = QS(f16)(p + 108), *dmin = 0.0f;
        break;
    }
    case DT_Q4_K:
    case DT_Q5_K: { /* each sub-block of 32 is two groups of 16 */
        __m128i v = QS(k4_scales)(p + 4);
        *sc = _mm256_cvtepu8_epi16(_mm_unpacklo_epi8(v, v));
        *mn = _mm256_cvtepu8_epi16(_mm_unpackhi_epi8(v, v));
        *d = QS(f16)(p), *dmin = QS(f16)(p + 2);
        break;
    }
    default: /* Q6_K */
        *sc = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)(p + 192)));
        *mn = _mm256_setzero_si256();
        *d = QS(f16)(p + 208), *dmin = 0.0f;
        break;
    }
}

/* Each pair of codes' group scale for codes [32i, 32i + 32) of a K block, from its 16 group
 * scales: group 2i's scale 8 times, then group 2i+1's. */
static inline __m256i QS(pair_scale)(__m256i sc, const int i)
{
    __m256i half = _mm256_broadcastsi128_si256(i < 4 ? _mm256_castsi256_si128(sc) : _mm256_extracti128_si256(sc, 1));
    char lo = (char)(4 * (i % 4)), hi = (char)(4 * (i % 4) + 2); /* bytes of words 2i, 2i+1 */
    return _mm256_shuffle_epi8(half, _mm256_setr_epi8(lo, lo + 1, lo, lo + 1, lo, lo + 1, lo, lo + 1, lo, lo + 1, lo,
                                                      lo + 1, lo, lo + 1, lo, lo + 1, hi, hi + 1, hi, hi + 1, hi, hi + 1,
                                                      hi, hi + 1, hi, hi + 1, hi, hi + 1, hi, hi + 1, hi, hi + 1));
}

static inline void QS(pair_scales)(__m256i sc, int16_t *scp)
{
#pragma GCC unroll 8
    for (int i = 0; i < 8; i++) _mm256_storeu_si256((__m256i *)(scp + 16 * i), QS(pair_scale)(sc, i));
}

/* Bytes per block of a K type. */
static inline size_t QS(bsize256)(const enum dtype T)
{
    return T == DT_Q2_K ? 84 : T == DT_Q3_K ? 110 : T == DT_Q4_K ? 144 : T == DT_Q5_K ? 176 : 210;
}

/* Super-block b of a K-type row: its codes (*u), group scales and mins, d and dmin — read from
 * the unpacked row (PACKED == 0: src a qk_row), or decoded from the packed row (src its first
 * block), the codes into the 256 bytes at codes and the rest into registers. */
static inline __attribute__((always_inline)) void QS(load256)(const void *src, const enum dtype T,
    const int PACKED, int64_t b, uint8_t *codes, const uint8_t **u, __m256i *sc16, __m256i *mn16,
    float *d, float *m)
{
    if (PACKED) {
        const uint8_t *p = (const uint8_t *)src + b * QS(bsize256)(T);
        QS(codes_k)(T, p, codes);
        QS(scales_k)(T, p, d, m, sc16, mn16);
        *u = codes;
        return;
    }
    const struct qk_row *row = src;
    *u = row->u + 256 * b;
    *sc16 = _mm256_loadu_si256((const __m256i *)(row->sc + 16 * b));
    *mn16 = _mm256_loadu_si256((const __m256i *)(row->mn + 16 * b));
    *d = row->d[b], *m = row->m[b];
}

static void QS(unpack)(const struct weight *w, int64_t r, struct qk_row *row)
{
    enum dtype t = w->dtype;
    size_t rb = dtype_row_bytes(t, w->cols), bsz = dtype_size(t);
    const uint8_t *p = (const uint8_t *)w->data + (size_t)r * rb;
    if (dtype_block(t) == 32) {
        QS(unpack_legacy)(t, p, w->cols / 32, row);
        return;
    }
    for (int64_t b = 0; b < w->cols / 256; b++, p += bsz) {
        __m256i sc, mn;
        for (size_t o = 0; o < bsz; o += 64) _mm_prefetch((const char *)p + 4 * rb + o, _MM_HINT_T0);
        QS(codes_k)(t, p, row->u + 256 * b);
        QS(scales_k)(t, p, &row->d[b], &row->m[b], &sc, &mn);
        _mm256_storeu_si256((__m256i *)(row->sc + 16 * b), sc);
        _mm256_storeu_si256((__m256i *)(row->mn + 16 * b), mn);
        QS(pair_scales)(sc, row->scp + 128 * b);
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

/* One group of eight blocks from block b (codes u[8], scales dw, mins mw; those past nblk unread)
 * against NT tokens from t0. SHIFT: the zero point 2^SHIFT (-1: none); MINS: + m·s per block;
 * SGN: signed codes. The integer dots of the eight blocks are reduced to one vector of block
 * totals, then scaled by the 8 products d_w·d_x at once. Constants at every call, so the branches
 * fold and the accumulators stay in registers. */
static inline __attribute__((always_inline)) void QS(group32)(const struct qk_act *a, int t0,
    const int NT, const int SHIFT, const int MINS, const int SGN, int64_t b, int nblk,
    const __m256i *u, __m256 dw, __m256 mw, __m256 *acc, __m256 *accm)
{
    int64_t k = a->k, nb = k / 32;
    __m256i lanes = QS(first_lanes)(nblk);
#pragma GCC unroll 4
    for (int j = 0; j < NT; j++) {
        int64_t t = t0 + j;
        const int8_t *q = a->q + t * k + 32 * b;
        __m256i p[8];
#pragma GCC unroll 8
        for (int i = 0; i < 8; i++) {
            if (i >= nblk) {
                p[i] = _mm256_setzero_si256();
                continue;
            }
            __m256i qv = _mm256_loadu_si256((const __m256i *)(q + 32 * i)), ui = _mm256_loadu_si256(u + i);
            p[i] = SGN ? QS(dot4s)(ui, qv) : QS(dot4)(ui, qv);
        }
        __m256i r = QS(reduce8)(p);
        if (SHIFT >= 0)
            r = _mm256_sub_epi32(r, _mm256_slli_epi32(_mm256_maskload_epi32(a->qs + t * nb + b, lanes), SHIFT));
        acc[j] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(r), _mm256_mul_ps(dw, _mm256_maskload_ps(a->d + t * nb + b, lanes)), acc[j]);
        if (MINS) accm[j] = _mm256_fmadd_ps(mw, _mm256_maskload_ps(a->s + t * nb + b, lanes), accm[j]);
    }
}

/* NT tokens from t0 against one row of a 32-value type, from its unpacked form (PACKED == 0:
 * src is a qk_row) or straight from the packed blocks (src: the row's first block); the same
 * arithmetic either way. */
static inline __attribute__((always_inline)) void QS(dot32_nt)(const void *src, const enum dtype T,
    const int PACKED, const struct qk_act *a, int t0, const int NT, const int SHIFT,
    const int MINS, const int SGN, float *y, int64_t ldy)
{
    int64_t nb = a->k / 32;
    __m256 acc[4], accm[4];
#pragma GCC unroll 4
    for (int j = 0; j < NT; j++) acc[j] = accm[j] = _mm256_setzero_ps();
    for (int64_t b = 0; b < nb; b += 8) {
        int nblk = nb - b < 8 ? (int)(nb - b) : 8;
        __m256i dec[8];
        const __m256i *u = dec; /* the codes: decoded here, or read where unpack put them */
        __m256 dw, mw;
        if (PACKED) {
            QS(decode8)(T, (const uint8_t *)src + b * QS(bsize32)(T), nblk, dec, &dw, &mw);
        } else {
            const struct qk_row *row = src;
            __m256i lanes = QS(first_lanes)(nblk);
            dw = _mm256_maskload_ps(row->d + b, lanes), mw = MINS ? _mm256_maskload_ps(row->m + b, lanes) : dw;
            u = (const __m256i *)(row->u + 32 * b);
        }
        QS(group32)(a, t0, NT, SHIFT, MINS, SGN, b, nblk, u, dw, mw, acc, accm);
    }
#pragma GCC unroll 4
    for (int j = 0; j < NT; j++) y[j * ldy] = QS(hsum)(_mm256_add_ps(acc[j], accm[j]));
}

/* Whether the packed path decodes type T's codes 32 at a time straight into registers
 * (QS(codes32k)) rather than into a buffer first (codes_k): the types of the Q4_K_M mixes. */
static inline int QS(in_regs)(const enum dtype T)
{
    return T == DT_Q4_K || T == DT_Q6_K;
}

/* Codes [32c, 32c + 32) of the Q4_K or Q6_K block at p, as codes_k lays them out. */
static inline __attribute__((always_inline)) __m256i QS(codes32k)(const enum dtype T,
                                                                  const uint8_t *p, const int c)
{
    if (T == DT_Q4_K)
        return QS(field)(_mm256_loadu_si256((const __m256i *)(p + 16 + 32 * (c / 2))), 4 * (c % 2),
                         15);
    const int h = c / 4, s = c % 4; /* Q6_K */
    __m256i lo = QS(field)(_mm256_loadu_si256((const __m256i *)(p + 64 * h + 32 * (s % 2))),
                           4 * (s / 2), 15);
    __m256i hi = QS(field)(_mm256_loadu_si256((const __m256i *)(p + 128 + 32 * h)), 2 * s, 3);
    return _mm256_or_si256(lo, _mm256_slli_epi16(hi, 4));
}

/* NT tokens against one row of a K type, unpacked or packed (QS(load256), or for QS(in_regs)
 * types the scales alone and QS(codes32k)): per super-block, the group scales are applied to the
 * pair sums (madd), the zero point and the mins through the quants' sums of 16. */
static inline __attribute__((always_inline)) void QS(dot256_nt)(const void *src, const enum dtype T,
    const int PACKED, const struct qk_act *a, int t0, const int NT, const int SHIFT, const int MINS,
    float *y, int64_t ldy)
{
    int64_t k = a->k, nb = k / 256;
    __m256 acc[4], accm[4];
    uint8_t codes[256] __attribute__((aligned(32)));
    const int16_t *scp = PACKED ? NULL : ((const struct qk_row *)src)->scp;
#pragma GCC unroll 4
    for (int j = 0; j < NT; j++) acc[j] = accm[j] = _mm256_setzero_ps();
    for (int64_t b = 0; b < nb; b++) {
        __m256i isum[4], sc16, mn16;
        const uint8_t *u;
        float dw, mw;
        const uint8_t *p = PACKED ? (const uint8_t *)src + b * QS(bsize256)(T) : NULL;
        if (PACKED && QS(in_regs)(T))
            QS(scales_k)(T, p, &dw, &mw, &sc16, &mn16), u = NULL;
        else
            QS(load256)(src, T, PACKED, b, codes, &u, &sc16, &mn16, &dw, &mw);
#pragma GCC unroll 4
        for (int j = 0; j < NT; j++) isum[j] = _mm256_setzero_si256();
#pragma GCC unroll 8
        for (int c = 0; c < 8; c++) {
            __m256i uc = PACKED && QS(in_regs)(T)
                             ? QS(codes32k)(T, p, c)
                             : _mm256_loadu_si256((const __m256i *)(u + 32 * c));
            __m256i sc = PACKED ? QS(pair_scale)(sc16, c) : _mm256_loadu_si256((const __m256i *)(scp + 128 * b + 16 * c));
#pragma GCC unroll 4
            for (int j = 0; j < NT; j++) {
                __m256i q = _mm256_loadu_si256((const __m256i *)(a->q + (t0 + j) * k + 256 * b + 32 * c));
                isum[j] = _mm256_add_epi32(isum[j], _mm256_madd_epi16(_mm256_maddubs_epi16(uc, q), sc));
            }
        }
#pragma GCC unroll 4
        for (int j = 0; j < NT; j++) {
            int64_t t = t0 + j;
            __m256i bsv = _mm256_loadu_si256((const __m256i *)(a->bs + t * k / 16 + 16 * b));
            if (SHIFT >= 0) isum[j] = _mm256_sub_epi32(isum[j], _mm256_slli_epi32(_mm256_madd_epi16(sc16, bsv), SHIFT));
            float dx = a->d[t * k / 32 + b];
            acc[j] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(isum[j]), _mm256_set1_ps(dw * dx), acc[j]);
            if (MINS)
                accm[j] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(_mm256_madd_epi16(mn16, bsv)), _mm256_set1_ps(mw * dx), accm[j]);
        }
    }
#pragma GCC unroll 4
    for (int j = 0; j < NT; j++) y[j * ldy] = QS(hsum)(acc[j]) - (MINS ? QS(hsum)(accm[j]) : 0.0f);
}

#ifndef QS_OWN_DOT /* the including file may bring wider dots of its own */

static void QS(dot)(enum dtype wt, const struct qk_row *row, const struct qk_act *a, int nt,
                    float *y, int64_t ldy)
{
    for (int t = 0; t < nt; t += 4) {
        float *yt = y + t * ldy;
#define Q4_0(N) QS(dot32_nt)(row, DT_Q4_0, 0, a, t, N, 3, 0, 0, yt, ldy)
#define Q5_0(N) QS(dot32_nt)(row, DT_Q5_0, 0, a, t, N, 4, 0, 0, yt, ldy)
#define QMIN(N) QS(dot32_nt)(row, DT_Q4_1, 0, a, t, N, -1, 1, 0, yt, ldy)
#define Q8_0(N) QS(dot32_nt)(row, DT_Q8_0, 0, a, t, N, -1, 0, 1, yt, ldy)
#define KMIN(N) QS(dot256_nt)(row, DT_Q4_K, 0, a, t, N, -1, 1, yt, ldy)
#define Q3_K(N) QS(dot256_nt)(row, DT_Q3_K, 0, a, t, N, 2, 0, yt, ldy)
#define Q6_K(N) QS(dot256_nt)(row, DT_Q6_K, 0, a, t, N, 5, 0, yt, ldy)
        switch (wt) {
        case DT_Q4_0: QK_NT(nt - t, Q4_0) break;
        case DT_Q5_0: QK_NT(nt - t, Q5_0) break;
        case DT_Q4_1: case DT_Q5_1: QK_NT(nt - t, QMIN) break;
        case DT_Q8_0: QK_NT(nt - t, Q8_0) break;
        case DT_Q3_K: QK_NT(nt - t, Q3_K) break;
        case DT_Q6_K: QK_NT(nt - t, Q6_K) break;
        default: QK_NT(nt - t, KMIN) break; /* Q2_K, Q4_K, Q5_K */
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

/* The row at p dotted with nt tokens straight from its blocks. */
static void QS(packed_row)(const struct weight *w, const uint8_t *p, const struct qk_act *a, int nt,
                           float *y, int64_t ldy)
{
    for (int t = 0; t < nt; t += 4) {
        float *yt = y + t * ldy;
#define P(T, SHIFT, MINS, SGN, N) QS(dot32_nt)(p, T, 1, a, t, N, SHIFT, MINS, SGN, yt, ldy)
#define Q4_0(N) P(DT_Q4_0, 3, 0, 0, N)
#define Q5_0(N) P(DT_Q5_0, 4, 0, 0, N)
#define Q4_1(N) P(DT_Q4_1, -1, 1, 0, N)
#define Q5_1(N) P(DT_Q5_1, -1, 1, 0, N)
#define Q8_0(N) P(DT_Q8_0, -1, 0, 1, N)
#define K(T, SHIFT, MINS, N) QS(dot256_nt)(p, T, 1, a, t, N, SHIFT, MINS, yt, ldy)
#define Q2_K(N) K(DT_Q2_K, -1, 1, N)
#define Q3_K(N) K(DT_Q3_K, 2, 0, N)
#define Q4_K(N) K(DT_Q4_K, -1, 1, N)
#define Q5_K(N) K(DT_Q5_K, -1, 1, N)
#define Q6_K(N) K(DT_Q6_K, 5, 0, N)
        switch (w->dtype) {
        case DT_Q4_0: QK_NT(nt - t, Q4_0) break;
        case DT_Q5_0: QK_NT(nt - t, Q5_0) break;
        case DT_Q4_1: QK_NT(nt - t, Q4_1) break;
        case DT_Q5_1: QK_NT(nt - t, Q5_1) break;
        case DT_Q8_0: QK_NT(nt - t, Q8_0) break;
        case DT_Q2_K: QK_NT(nt - t, Q2_K) break;
        case DT_Q3_K: QK_NT(nt - t, Q3_K) break;
        case DT_Q4_K: QK_NT(nt - t, Q4_K) break;
        case DT_Q5_K: QK_NT(nt - t, Q5_K) break;
        default: QK_NT(nt - t, Q6_K) break;
        }
#undef K
#undef Q2_K
#undef Q3_K
#undef Q4_K
#undef Q5_K
#undef Q6_K
#undef P
#undef Q4_0
#undef Q5_0
#undef Q4_1
#undef Q5_1
#undef Q8_0
    }
}

enum {
    QS(AHEAD) = 8 * 1024, /* bytes of weight prefetched ahead of the rows being dotted */
    QS(ROWS) = 2          /* Q4_K / Q6_K rows dotted together with one token */
};

/* Prefetches the lines of [from, from + n) before end (n a constant: an unrolled loop). */
static inline __attribute__((always_inline)) void QS(prefetch)(const char *from, const size_t n,
                                                               const char *end)
{
#pragma GCC unroll 16
    for (size_t o = 0; o < n; o += 64)
        if (from + o < end) _mm_prefetch(from + o, _MM_HINT_T0);
}

/* One token against R rows of a Q4_K or Q6_K weight (the first at p, the next ld bytes on)
 * straight from their blocks: each row's operations are QS(dot256_nt)'s for one token, the rows
 * interleaved so that their chains overlap and they share the token's loads; the weight from
 * ahead (up to end) prefetched as they go. */
static inline __attribute__((always_inline)) void
QS(k1_rows)(const uint8_t *p, size_t ld, const enum dtype T, const int R, const int SHIFT,
            const int MINS, const struct qk_act *a, float *y, const char *ahead, const char *end)
{
    int64_t nb = a->k / 256;
    const size_t bsz = QS(bsize256)(T);
    __m256 acc[2], accm[2];
#pragma GCC unroll 2
    for (int i = 0; i < R; i++) acc[i] = accm[i] = _mm256_setzero_ps();
    for (int64_t b = 0; b < nb; b++, p += bsz) {
        __m256i isum[2], sc16[2], mn16[2];
        float dw[2], mw[2];
        QS(prefetch)(ahead + b * R * bsz, R * bsz, end);
#pragma GCC unroll 2
        for (int i = 0; i < R; i++) {
            QS(scales_k)(T, p + i * ld, &dw[i], &mw[i], &sc16[i], &mn16[i]);
            isum[i] = _mm256_setzero_si256();
        }
#pragma GCC unroll 8
        for (int c = 0; c < 8; c++) {
            __m256i q = _mm256_loadu_si256((const __m256i *)(a->q + 256 * b + 32 * c));
#pragma GCC unroll 2
            for (int i = 0; i < R; i++)
                isum[i] = _mm256_add_epi32(
                    isum[i],
                    _mm256_madd_epi16(_mm256_maddubs_epi16(QS(codes32k)(T, p + i * ld, c), q),
                                      QS(pair_scale)(sc16[i], c)));
        }
        __m256i bsv = _mm256_loadu_si256((const __m256i *)(a->bs + 16 * b));
        float dx = a->d[b];
#pragma GCC unroll 2
        for (int i = 0; i < R; i++) {
            if (SHIFT >= 0)
                isum[i] = _mm256_sub_epi32(
                    isum[i], _mm256_slli_epi32(_mm256_madd_epi16(sc16[i], bsv), SHIFT));
            acc[i] =
                _mm256_fmadd_ps(_mm256_cvtepi32_ps(isum[i]), _mm256_set1_ps(dw[i] * dx), acc[i]);
            if (MINS)
                accm[i] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(_mm256_madd_epi16(mn16[i], bsv)),
                                          _mm256_set1_ps(mw[i] * dx), accm[i]);
        }
    }
#pragma GCC unroll 2
    for (int i = 0; i < R; i++) y[i] = QS(hsum)(acc[i]) - (MINS ? QS(hsum)(accm[i]) : 0.0f);
}

/* Rows [r0, r1) dotted with nt tokens straight from their blocks: one token against Q4_K or
 * Q6_K rows QS(ROWS) at a time, anything else (and the rows left over) a row at a time. The
 * weight QS(AHEAD) bytes on (whole groups of rows, up to its end) is prefetched as they go: the
 * hardware's prefetcher alone does not keep up with a weight streamed once. */
static void QS(dot_packed)(const struct weight *w, int64_t r0, int64_t r1, const struct qk_act *a,
                           int nt, float *y, int64_t ldy)
{
    size_t rb = dtype_row_bytes(w->dtype, w->cols), g = QS(ROWS) * rb,
           ahead = (QS(AHEAD) + g - 1) / g * g;
    const char *p = (const char *)w->data + (size_t)r0 * rb,
               *end = (const char *)w->data + (size_t)w->rows * rb;
    int64_t r = r0;
#define K1(T, SHIFT, MINS)                                                                         \
    for (; r + QS(ROWS) <= r1; r += QS(ROWS), p += g)                                              \
        QS(k1_rows)                                                                                \
        ((const uint8_t *)p, rb, T, QS(ROWS), SHIFT, MINS, a, y + (r - r0), p + ahead, end);
    if (nt == 1 && w->dtype == DT_Q4_K)
        K1(DT_Q4_K, -1, 1)
    else if (nt == 1 && w->dtype == DT_Q6_K)
        K1(DT_Q6_K, 5, 0)
#undef K1
    for (; r < r1; r++, p += rb) {
        for (size_t o = 0; o < rb; o += 64)
            if (p + ahead + o < end) _mm_prefetch(p + ahead + o, _MM_HINT_T0);
        QS(packed_row)(w, (const uint8_t *)p, a, nt, y + (r - r0), ldy);
    }
}

#endif /* QS_OWN_DOT */
