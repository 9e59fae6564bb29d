/* quant_avx512: the AVX-512 set of the 8-bit quantised path — quant_simd.h's activation
 * quantisation and row unpacking, with dots of its own on 512-bit vectors: dpbusd (VNNI) sums of
 * 4 byte products for the 32-value types, two blocks per vector, the eight block scales of a
 * group spread over lanes with one permute per vector; maddubs + dpwssd (the group scales applied
 * to pair sums and accumulated in one instruction) for the K types, whose float order (z_settle)
 * the 16-row tiles of quant_tile512.c share. The integers are the other sets' exactly. Without
 * VNNI the AVX2 set serves, as its results are the same integers. */
#include "engine/cpu/isa.h"
#include "engine/cpu/quant_kernels.h"

#if SIMD_X86
#pragma GCC push_options
#pragma GCC target("avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")
#define QS(name) avx512q_##name
#define QS_VNNI 1
#define QS_OWN_DOT 1
#include "engine/cpu/quant_simd.h"

static inline float z_hsum(__m512 v)
{
    return _mm512_reduce_add_ps(v);
}

/* 64 code bytes against 64 quants: sums of 4 products in 16 lanes; signed codes take |w| and
 * the quants' signs flipped where w < 0. */
static inline __m512i z_dot4(__m512i u, __m512i q, const int SGN)
{
    if (SGN) {
        __mmask64 neg = _mm512_movepi8_mask(u);
        q = _mm512_mask_sub_epi8(q, neg, _mm512_setzero_si512(), q);
        u = _mm512_abs_epi8(u);
    }
    return _mm512_dpbusd_epi32(_mm512_setzero_si512(), u, q);
}

/* One group of eight blocks from block b (fewer, under masks, at a row's end: FULL == 0) against
 * NT tokens from t0: codes u as four vectors of two blocks, scales dw, mins mw. Each vector's
 * lanes are scaled by their block's d_w·d_x (spread by a permute) and summed in acc; the zero
 * point as -2^SHIFT·Σq·d_w·d_x per block and the mins m·s accumulated apart in acc8. */
static inline __attribute__((always_inline)) void z_group32(const struct qk_act *a, int t0,
    const int NT, const int SHIFT, const int MINS, const int SGN, int64_t b, const int FULL,
    int nblk, const __m512i u[4], __m256 dw, __m256 mw, __m512 *acc, __m256 *acc8)
{
    int64_t k = a->k, nb = k / 32;
    __mmask8 lanes = FULL ? 0xff : (__mmask8)((1u << nblk) - 1);
    __mmask64 bytes[4]; /* the bytes of vector i that belong to real blocks */
#pragma GCC unroll 4
    for (int i = 0; i < 4; i++) bytes[i] = FULL || 2 * i + 1 < nblk ? ~0ull : 2 * i < nblk ? 0xffffffffull : 0;
#pragma GCC unroll 4
    for (int j = 0; j < NT; j++) {
        int64_t t = t0 + j;
        const int8_t *q = a->q + t * k + 32 * b;
        __m256 sc = _mm256_mul_ps(dw, _mm256_maskz_loadu_ps(lanes, a->d + t * nb + b));
        __m512 sc16 = _mm512_castps256_ps512(sc);
#pragma GCC unroll 4
        for (int i = 0; i < 4; i++) {
            if (!FULL && !bytes[i]) continue;
            __m512i spread = _mm512_set_epi32(2 * i + 1, 2 * i + 1, 2 * i + 1, 2 * i + 1, 2 * i + 1,
                                              2 * i + 1, 2 * i + 1, 2 * i + 1, 2 * i, 2 * i, 2 * i,
                                              2 * i, 2 * i, 2 * i, 2 * i, 2 * i);
            __m512i p = z_dot4(u[i], _mm512_maskz_loadu_epi8(bytes[i], q + 64 * i), SGN);
            acc[j] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(p), _mm512_permutexvar_ps(spread, sc16), acc[j]);
        }
        if (SHIFT >= 0) {
            __m256i qs = _mm256_slli_epi32(_mm256_maskz_loadu_epi32(lanes, a->qs + t * nb + b), SHIFT);
            acc8[j] = _mm256_fnmadd_ps(_mm256_cvtepi32_ps(qs), sc, acc8[j]);
        }
        if (MINS) acc8[j] = _mm256_fmadd_ps(mw, _mm256_maskz_loadu_ps(lanes, a->s + t * nb + b), acc8[j]);
    }
}

/* The codes, scales and mins of the group from block b: from the unpacked row (PACKED == 0:
 * src a qk_row) or decoded from the packed blocks (src the row's first block). */
static inline __attribute__((always_inline)) void z_load32(const void *src, const enum dtype T,
    const int PACKED, int64_t b, const int FULL, int nblk, __m512i u[4], __m256 *dw, __m256 *mw)
{
    if (PACKED) {
        __m256i v[8];
        avx512q_decode8(T, (const uint8_t *)src + b * avx512q_bsize32(T), FULL ? 8 : nblk, v, dw, mw);
#pragma GCC unroll 4
        for (int i = 0; i < 4; i++) u[i] = _mm512_inserti64x4(_mm512_castsi256_si512(v[2 * i]), v[2 * i + 1], 1);
        return;
    }
    const struct qk_row *row = src;
    __mmask8 lanes = FULL ? 0xff : (__mmask8)((1u << nblk) - 1);
    *dw = _mm256_maskz_loadu_ps(lanes, row->d + b);
    *mw = _mm256_maskz_loadu_ps(lanes, row->m + b);
#pragma GCC unroll 4
    for (int i = 0; i < 4; i++) {
        __mmask64 m = FULL || 2 * i + 1 < nblk ? ~0ull : 2 * i < nblk ? 0xffffffffull : 0;
        u[i] = _mm512_maskz_loadu_epi8(m, row->u + 32 * b + 64 * i);
    }
}

/* NT tokens from t0 against a row of a 32-value type: whole groups of eight blocks, then the
 * last group under masks. */
static inline __attribute__((always_inline)) void z_dot32_nt(const void *src, const enum dtype T,
    const int PACKED, const struct qk_act *a, int t0, const int NT, const int SHIFT,
    const int MINS, const int SGN, float *y, int64_t ldy)
{
    int64_t nb = a->k / 32, b = 0;
    __m512 acc[4];
    __m256 acc8[4], dw, mw;
    __m512i u[4];
#pragma GCC unroll 4
    for (int j = 0; j < NT; j++) acc[j] = _mm512_setzero_ps(), acc8[j] = _mm256_setzero_ps();
    for (; b + 8 <= nb; b += 8) {
        z_load32(src, T, PACKED, b, 1, 8, u, &dw, &mw);
        z_group32(a, t0, NT, SHIFT, MINS, SGN, b, 1, 8, u, dw, mw, acc, acc8);
    }
    if (b < nb) {
        z_load32(src, T, PACKED, b, 0, (int)(nb - b), u, &dw, &mw);
        z_group32(a, t0, NT, SHIFT, MINS, SGN, b, 0, (int)(nb - b), u, dw, mw, acc, acc8);
    }
#pragma GCC unroll 4
    for (int j = 0; j < NT; j++) y[j * ldy] = z_hsum(acc[j]) + avx512q_hsum(acc8[j]);
}

/* Pair scales for codes [64c, 64c + 64) of a K block from its 16 group scales (lane i: group
 * 4c + i/8), as unpack lays them out. */
static inline __m512i z_pair_scales(__m256i sc16, const int c)
{
    __m512i idx = _mm512_set_epi16(4 * c + 3, 4 * c + 3, 4 * c + 3, 4 * c + 3, 4 * c + 3, 4 * c + 3, 4 * c + 3,
                                   4 * c + 3, 4 * c + 2, 4 * c + 2, 4 * c + 2, 4 * c + 2, 4 * c + 2, 4 * c + 2,
                                   4 * c + 2, 4 * c + 2, 4 * c + 1, 4 * c + 1, 4 * c + 1, 4 * c + 1, 4 * c + 1,
                                   4 * c + 1, 4 * c + 1, 4 * c + 1, 4 * c, 4 * c, 4 * c, 4 * c, 4 * c, 4 * c, 4 * c,
                                   4 * c);
    return _mm512_permutexvar_epi16(idx, _mm512_castsi256_si512(sc16));
}

/* Whether the packed path decodes type T's codes 64 at a time straight into registers
 * (z_codes64) rather than into a buffer first (codes_k): the types of the Q4_K_M mixes. */
static inline int z_in_regs(const enum dtype T)
{
    return T == DT_Q4_K || T == DT_Q6_K;
}

/* Codes [64c, 64c + 64) of the Q4_K or Q6_K block at p, in the order unpack lays them out. Each
 * half of the vector takes its bits from the same 32 bytes broadcast to both halves, shifted by
 * a per-half count (64-bit shifts: bits that cross into a byte from its neighbour are masked
 * off). Q4_K: the low nibbles of qs[32c..], then the high ones. Q6_K: ql[64h..] (c = 2h + s)
 * shifted by 4s for the low four bits, qh[32h..] shifted so that bits 4s, 4s + 2 land at 4..5. */
static inline __attribute__((always_inline)) __m512i z_codes64(const enum dtype T, const uint8_t *p,
                                                               const int c)
{
    if (T == DT_Q4_K) {
        __m512i v = _mm512_broadcast_i64x4(_mm256_loadu_si256((const __m256i *)(p + 16 + 32 * c)));
        return _mm512_and_si512(_mm512_srlv_epi64(v, _mm512_setr_epi64(0, 0, 0, 0, 4, 4, 4, 4)),
                                _mm512_set1_epi8(15));
    }
    const int h = c / 2, s = c % 2;
    __m512i lo = _mm512_loadu_si512(p + 64 * h);
    if (s) lo = _mm512_srli_epi16(lo, 4);
    lo = _mm512_and_si512(lo, _mm512_set1_epi8(15));
    __m512i qh = _mm512_broadcast_i64x4(_mm256_loadu_si256((const __m256i *)(p + 128 + 32 * h)));
    __m512i hi = s ? _mm512_srlv_epi64(qh, _mm512_setr_epi64(0, 0, 0, 0, 2, 2, 2, 2))
                   : _mm512_sllv_epi64(qh, _mm512_setr_epi64(4, 4, 4, 4, 2, 2, 2, 2));
    return _mm512_ternarylogic_epi32(lo, hi, _mm512_set1_epi8(0x30), 0xf8); /* lo | (hi & 0x30) */
}

/* The K types' float order, shared by every path of this set and by the 16-row tiles
 * (quant_tile512.c), so that a (row, token) result is the same bits whichever computes it: per
 * super-block b the exact integers S_b (the group-scaled code products, the zero point taken
 * off) and M_b (the mins' products), then in b order acc = fma((float)S_b, d_w·d_x, acc) and
 * accm = fma((float)M_b, m_w·d_x, accm), and the result acc − accm.
 *
 * Up to four (row, token) pairs' sums of one super-block — isum[x] in 16 lanes, their mins in
 * the halves of mp[x / 2] (x even: low 8 lanes) — reduced whole and laid out as
 * [S0 S2 M0 M2 S1 S3 M1 M3]; one pair as [S0 ×4, M0 ×4]. */
static inline __attribute__((always_inline)) __m256i z_sums(const int X, const __m512i *isum,
                                                           const __m512i *mp)
{
    if (X == 1) {
        __m256i s = _mm256_add_epi32(_mm512_castsi512_si256(isum[0]), _mm512_extracti64x4_epi64(isum[0], 1));
        __m512i z = _mm512_inserti64x4(_mm512_castsi256_si512(s), _mm512_castsi512_si256(mp[0]), 1);
        z = _mm512_add_epi32(z, _mm512_shuffle_epi32(z, (_MM_PERM_ENUM)0x4e));
        z = _mm512_add_epi32(z, _mm512_shuffle_epi32(z, (_MM_PERM_ENUM)0xb1));
        z = _mm512_add_epi32(z, _mm512_shuffle_i64x2(z, z, 0xb1));
        return _mm512_castsi512_si256(_mm512_shuffle_i64x2(z, z, 0xf8));
    }
    __m512i zero = _mm512_setzero_si512(), s2 = X > 2 ? isum[2] : zero, s3 = X > 3 ? isum[3] : zero;
    __m512i a = _mm512_add_epi32(_mm512_shuffle_i64x2(isum[0], isum[1], 0x44),
                                 _mm512_shuffle_i64x2(isum[0], isum[1], 0xee));
    __m512i b = _mm512_add_epi32(_mm512_shuffle_i64x2(s2, s3, 0x44), _mm512_shuffle_i64x2(s2, s3, 0xee));
    __m512i c = mp[0], d = X > 2 ? mp[1] : zero;
    __m512i p = _mm512_add_epi32(_mm512_unpacklo_epi32(a, b), _mm512_unpackhi_epi32(a, b));
    __m512i q = _mm512_add_epi32(_mm512_unpacklo_epi32(c, d), _mm512_unpackhi_epi32(c, d));
    __m512i r = _mm512_add_epi32(_mm512_unpacklo_epi64(p, q), _mm512_unpackhi_epi64(p, q));
    r = _mm512_add_epi32(r, _mm512_shuffle_i64x2(r, r, 0xb1));
    return _mm512_castsi512_si256(_mm512_shuffle_i64x2(r, r, 0xf8));
}

/* One super-block's step of the float order for X pairs (z_sums), pw[x] = d_w·d_x and
 * pm[x] = m_w·d_x their scales: each lane of acc one pair's acc or accm. */
static inline __attribute__((always_inline)) void z_settle(const int X, const __m512i *isum,
    const __m512i *mp, const float *pw, const float *pm, __m256 *acc)
{
    __m256 p = X == 1 ? _mm256_setr_ps(pw[0], pw[0], pw[0], pw[0], pm[0], pm[0], pm[0], pm[0])
                      : _mm256_setr_ps(pw[0], X > 2 ? pw[2] : 0.0f, pm[0], X > 2 ? pm[2] : 0.0f, pw[1],
                                       X > 3 ? pw[3] : 0.0f, pm[1], X > 3 ? pm[3] : 0.0f);
    *acc = _mm256_fmadd_ps(_mm256_cvtepi32_ps(z_sums(X, isum, mp)), p, *acc);
}

/* Pair x's result, acc − accm, from z_settle's lanes. */
static inline float z_settled(const int X, __m256 acc, int x)
{
    float l[8];
    _mm256_storeu_ps(l, acc);
    int s = X == 1 ? 0 : x % 2 * 4 + x / 2;
    return l[s] - l[X == 1 ? 4 : s + 2];
}

/* The end of a K super-block b for NT tokens from t0 (z_dot256_nt): the zero point taken off
 * isum, the mins' sums of 16-groups (two tokens a vector, sums of 16 bs side by side), then
 * z_settle. sc16 << SHIFT times bs is the shifted product: no int16 or int32 overflows for the
 * scales and sums there are. */
static inline __attribute__((always_inline)) void z_epilogue(const struct qk_act *a, int t0,
    const int NT, const int SHIFT, const int MINS, int64_t b, __m256i sc16, __m256i mn16, float dw,
    float mw, __m512i *isum, __m256 *acc)
{
    int64_t k = a->k;
    __m512i sc2 = _mm512_broadcast_i64x4(SHIFT >= 0 ? _mm256_slli_epi16(sc16, SHIFT) : sc16);
    __m512i mn2 = _mm512_broadcast_i64x4(mn16), mp[2] = {_mm512_setzero_si512(), _mm512_setzero_si512()};
    float pw[4], pm[4];
#pragma GCC unroll 2
    for (int j = 0; j < NT; j += 2) {
        const int two = j + 1 < NT;
        int64_t t = t0 + j;
        __m512i bsv = _mm512_zextsi256_si512(_mm256_loadu_si256((const __m256i *)(a->bs + t * k / 16 + 16 * b)));
        if (two)
            bsv = _mm512_inserti64x4(bsv, _mm256_loadu_si256((const __m256i *)(a->bs + (t + 1) * k / 16 + 16 * b)), 1);
        if (SHIFT >= 0) {
            __m512i off = _mm512_madd_epi16(sc2, bsv);
            isum[j] = _mm512_sub_epi32(isum[j], _mm512_zextsi256_si512(_mm512_castsi512_si256(off)));
            if (two)
                isum[j + 1] = _mm512_sub_epi32(isum[j + 1], _mm512_zextsi256_si512(_mm512_extracti64x4_epi64(off, 1)));
        }
        if (MINS) mp[j / 2] = _mm512_madd_epi16(mn2, bsv);
    }
#pragma GCC unroll 4
    for (int j = 0; j < NT; j++) {
        float dx = a->d[(t0 + j) * k / 32 + b];
        pw[j] = dw * dx, pm[j] = MINS ? mw * dx : 0.0f;
    }
    z_settle(NT, isum, mp, pw, pm, acc);
}

/* NT tokens against a row of a K type, unpacked or packed (avx512q_load256, or for z_in_regs
 * types the scales alone and z_codes64): per super-block four vectors of 64 codes, the pair sums
 * (maddubs) times their group scales accumulated by dpwssd; the zero point and the mins through
 * the quants' sums of 16, as in quant_simd.h. */
static inline __attribute__((always_inline)) void z_dot256_nt(const void *src, const enum dtype T,
    const int PACKED, const struct qk_act *a, int t0, const int NT, const int SHIFT, const int MINS,
    float *y, int64_t ldy)
{
    int64_t k = a->k, nb = k / 256;
    __m256 acc = _mm256_setzero_ps();
    uint8_t codes[256] __attribute__((aligned(64)));
    const int16_t *scp = PACKED ? NULL : ((const struct qk_row *)src)->scp;
    for (int64_t b = 0; b < nb; b++) {
        __m512i isum[4];
        __m256i sc16, mn16;
        const uint8_t *u;
        float dw, mw;
        const uint8_t *p = PACKED ? (const uint8_t *)src + b * avx512q_bsize256(T) : NULL;
        if (PACKED && z_in_regs(T)) {
            avx512q_scales_k(T, p, &dw, &mw, &sc16, &mn16);
            u = NULL;
        } else {
            avx512q_load256(src, T, PACKED, b, codes, &u, &sc16, &mn16, &dw, &mw);
        }
#pragma GCC unroll 4
        for (int j = 0; j < NT; j++) isum[j] = _mm512_setzero_si512();
#pragma GCC unroll 4
        for (int c = 0; c < 4; c++) {
            __m512i uc, sc;
            if (PACKED && z_in_regs(T)) {
                uc = z_codes64(T, p, c);
                sc = z_pair_scales(sc16, c);
            } else if (PACKED) { /* two loads, each of one earlier store: they forward */
                uc = _mm512_inserti64x4(_mm512_castsi256_si512(_mm256_load_si256((const __m256i *)(u + 64 * c))),
                                        _mm256_load_si256((const __m256i *)(u + 64 * c + 32)), 1);
                sc = z_pair_scales(sc16, c);
            } else {
                uc = _mm512_loadu_si512(u + 64 * c);
                sc = _mm512_loadu_si512(scp + 128 * b + 32 * c);
            }
#pragma GCC unroll 4
            for (int j = 0; j < NT; j++) {
                __m512i q = _mm512_loadu_si512(a->q + (t0 + j) * k + 256 * b + 64 * c);
                isum[j] = _mm512_dpwssd_epi32(isum[j], _mm512_maddubs_epi16(uc, q), sc);
            }
        }
        z_epilogue(a, t0, NT, SHIFT, MINS, b, sc16, mn16, dw, mw, isum, &acc);
    }
#pragma GCC unroll 4
    for (int j = 0; j < NT; j++) y[j * ldy] = z_settled(NT, acc, j);
}

static void avx512q_dot(enum dtype wt, const struct qk_row *row, const struct qk_act *a, int nt,
                        float *y, int64_t ldy)
{
    for (int t = 0; t < nt; t += 4) {
        float *yt = y + t * ldy;
#define Q4_0(N) z_dot32_nt(row, DT_Q4_0, 0, a, t, N, 3, 0, 0, yt, ldy)
#define Q5_0(N) z_dot32_nt(row, DT_Q5_0, 0, a, t, N, 4, 0, 0, yt, ldy)
#define QMIN(N) z_dot32_nt(row, DT_Q4_1, 0, a, t, N, -1, 1, 0, yt, ldy)
#define Q8_0(N) z_dot32_nt(row, DT_Q8_0, 0, a, t, N, -1, 0, 1, yt, ldy)
#define KMIN(N) z_dot256_nt(row, DT_Q4_K, 0, a, t, N, -1, 1, yt, ldy)
#define Q3_K(N) z_dot256_nt(row, DT_Q3_K, 0, a, t, N, 2, 0, yt, ldy)
#define Q6_K(N) z_dot256_nt(row, DT_Q6_K, 0, a, t, N, 5, 0, yt, ldy)
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
static void z_packed_row(const struct weight *w, const uint8_t *p, const struct qk_act *a, int nt,
                         float *y, int64_t ldy)
{
    for (int t = 0; t < nt; t += 4) {
        float *yt = y + t * ldy;
#define P(T, SHIFT, MINS, SGN, N) z_dot32_nt(p, T, 1, a, t, N, SHIFT, MINS, SGN, yt, ldy)
#define Q4_0(N) P(DT_Q4_0, 3, 0, 0, N)
#define Q5_0(N) P(DT_Q5_0, 4, 0, 0, N)
#define Q4_1(N) P(DT_Q4_1, -1, 1, 0, N)
#define Q5_1(N) P(DT_Q5_1, -1, 1, 0, N)
#define Q8_0(N) P(DT_Q8_0, -1, 0, 1, N)
#define K(T, SHIFT, MINS, N) z_dot256_nt(p, T, 1, a, t, N, SHIFT, MINS, yt, ldy)
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
    Z_ROWS = 4,        /* rows dotted together with one token (half as many with two) */
    Z_AHEAD = 8 * 1024 /* bytes of weight prefetched ahead of the rows being dotted */
};

/* Prefetches the lines of [from, from + n) that lie before end (the weight's last byte + 1): a
 * single token's dot streams its weight once, faster than the hardware's prefetcher fetches it. */
static inline __attribute__((always_inline)) void z_prefetch(const char *from, size_t n,
                                                             const char *end)
{
#pragma GCC unroll 16
    for (size_t o = 0; o < n; o += 64)
        if (from + o < end) _mm_prefetch(from + o, _MM_HINT_T0);
}

/* NT tokens against R rows of a Q4_K or Q6_K weight (the first at p, the next ld bytes on;
 * R·NT ≤ 4) straight from their blocks: each (row, token)'s arithmetic is z_dot256_nt's,
 * operation for operation, the rows interleaved so that their chains overlap and they share the
 * tokens' loads. The weight's rows from ahead (up to end) are prefetched meanwhile, as much as
 * these rows. Row i's dot with token j goes to y[i + j·ldy]. */
static inline __attribute__((always_inline)) void
z_k_rows(const uint8_t *p, size_t ld, const enum dtype T, const int R, const int NT,
         const int SHIFT, const int MINS, const struct qk_act *a, float *y, int64_t ldy,
         const char *ahead, const char *end)
{
    int64_t k = a->k, nb = k / 256;
    const size_t bsz = avx512q_bsize256(T);
    __m256 acc = _mm256_setzero_ps();
    for (int64_t b = 0; b < nb; b++, p += bsz) {
        __m512i isum[4], mp[2] = {_mm512_setzero_si512(), _mm512_setzero_si512()};
        __m256i sc16[4], mn16[4];
        float dw[4], mw[4], pw[4], pm[4];
        z_prefetch(ahead + b * R * bsz, R * bsz, end);
#pragma GCC unroll 4
        for (int i = 0; i < R; i++)
            avx512q_scales_k(T, p + i * ld, &dw[i], &mw[i], &sc16[i], &mn16[i]);
#pragma GCC unroll 4
        for (int i = 0; i < R * NT; i++) isum[i] = _mm512_setzero_si512();
#pragma GCC unroll 4
        for (int c = 0; c < 4; c++) {
            __m512i q[4];
#pragma GCC unroll 4
            for (int j = 0; j < NT; j++) q[j] = _mm512_loadu_si512(a->q + j * k + 256 * b + 64 * c);
#pragma GCC unroll 4
            for (int i = 0; i < R; i++) {
                __m512i u = z_codes64(T, p + i * ld, c), sc = z_pair_scales(sc16[i], c);
#pragma GCC unroll 4
                for (int j = 0; j < NT; j++)
                    isum[i * NT + j] =
                        _mm512_dpwssd_epi32(isum[i * NT + j], _mm512_maddubs_epi16(u, q[j]), sc);
            }
        }
#pragma GCC unroll 4
        for (int j = 0; j < NT; j++) {
            __m256i bsv = _mm256_loadu_si256((const __m256i *)(a->bs + j * k / 16 + 16 * b));
            float dx = a->d[j * k / 32 + b];
#pragma GCC unroll 4
            for (int i = 0; i < R; i++) {
                int x = i * NT + j;
                if (SHIFT >= 0) {
                    __m256i off = _mm256_slli_epi32(_mm256_madd_epi16(sc16[i], bsv), SHIFT);
                    isum[x] = _mm512_sub_epi32(isum[x], _mm512_zextsi256_si512(off));
                }
                if (MINS) {
                    __m256i m = _mm256_madd_epi16(mn16[i], bsv);
                    mp[x / 2] = x % 2 ? _mm512_inserti64x4(mp[x / 2], m, 1) : _mm512_inserti64x4(mp[x / 2], m, 0);
                }
                pw[x] = dw[i] * dx, pm[x] = MINS ? mw[i] * dx : 0.0f;
            }
        }
        z_settle(R * NT, isum, mp, pw, pm, &acc);
    }
#pragma GCC unroll 4
    for (int x = 0; x < R * NT; x++) y[x / NT + x % NT * ldy] = z_settled(R * NT, acc, x);
}

/* NT tokens against R rows of a 32-value type T (the first at p, the next ld bytes on;
 * R·NT ≤ 4) straight from their blocks: each (row, token)'s operations are z_dot32_nt's, the
 * rows interleaved as in z_k_rows, the weight from ahead (up to end) prefetched as they go. */
static inline __attribute__((always_inline)) void
z_l_rows(const uint8_t *p, size_t ld, const enum dtype T, const int R, const int NT,
         const int SHIFT, const int MINS, const int SGN, const struct qk_act *a, float *y,
         int64_t ldy, const char *ahead, const char *end)
{
    int64_t nb = a->k / 32, b = 0;
    const size_t bs = avx512q_bsize32(T);
    __m512 acc[4];
    __m256 acc8[4];
#pragma GCC unroll 4
    for (int i = 0; i < R * NT; i++) acc[i] = _mm512_setzero_ps(), acc8[i] = _mm256_setzero_ps();
    for (; b + 8 <= nb; b += 8) {
        z_prefetch(ahead + b * R * bs, 8 * R * bs, end);
#pragma GCC unroll 4
        for (int i = 0; i < R; i++) {
            __m512i u[4];
            __m256 dw, mw;
            z_load32(p + i * ld, T, 1, b, 1, 8, u, &dw, &mw);
            z_group32(a, 0, NT, SHIFT, MINS, SGN, b, 1, 8, u, dw, mw, &acc[i * NT], &acc8[i * NT]);
        }
    }
    if (b < nb) {
        z_prefetch(ahead + b * R * bs, 8 * R * bs, end);
#pragma GCC unroll 4
        for (int i = 0; i < R; i++) {
            __m512i u[4];
            __m256 dw, mw;
            z_load32(p + i * ld, T, 1, b, 0, (int)(nb - b), u, &dw, &mw);
            z_group32(a, 0, NT, SHIFT, MINS, SGN, b, 0, (int)(nb - b), u, dw, mw, &acc[i * NT],
                      &acc8[i * NT]);
        }
    }
#pragma GCC unroll 4
    for (int x = 0; x < R * NT; x++)
        y[x / NT + x % NT * ldy] = z_hsum(acc[x]) + avx512q_hsum(acc8[x]);
}

/* The rows of [*r, r1) that fit whole groups of R, NT tokens at a time (z_k_rows, z_l_rows);
 * *r and *p advance past them. Constants T, R, NT: one specialised loop per call site. */
static inline __attribute__((always_inline)) void
z_rows(const struct qk_act *a, const enum dtype T, const int R, const int NT, int64_t *r,
       int64_t r1, const char **p, size_t rb, float *y, int64_t ldy, size_t ahead, const char *end)
{
    for (; *r + R <= r1; *r += R, *p += R * rb, y += R) {
        const uint8_t *u = (const uint8_t *)*p;
        switch (T) {
        case DT_Q4_K:
            z_k_rows(u, rb, T, R, NT, -1, 1, a, y, ldy, *p + ahead, end);
            break;
        case DT_Q6_K:
            z_k_rows(u, rb, T, R, NT, 5, 0, a, y, ldy, *p + ahead, end);
            break;
        case DT_Q4_0:
            z_l_rows(u, rb, T, R, NT, 3, 0, 0, a, y, ldy, *p + ahead, end);
            break;
        case DT_Q5_0:
            z_l_rows(u, rb, T, R, NT, 4, 0, 0, a, y, ldy, *p + ahead, end);
            break;
        case DT_Q8_0:
            z_l_rows(u, rb, T, R, NT, -1, 0, 1, a, y, ldy, *p + ahead, end);
            break;
        default:
            z_l_rows(u, rb, T, R, NT, -1, 1, 0, a, y, ldy, *p + ahead, end);
            break; /* Q4_1, Q5_1 */
        }
    }
}

/* Rows [r0, r1) dotted with nt tokens straight from their blocks: one token against Z_ROWS rows
 * at a time, two against half as many; more tokens (and the rows left over, and Q2_K, Q3_K,
 * Q5_K) a row at a time. The weight Z_AHEAD bytes on (whole groups of rows) is prefetched as
 * they go. */
static void avx512q_dot_packed(const struct weight *w, int64_t r0, int64_t r1,
                               const struct qk_act *a, int nt, float *y, int64_t ldy)
{
    size_t rb = dtype_row_bytes(w->dtype, w->cols), g = Z_ROWS * rb;
    const char *p = (const char *)w->data + (size_t)r0 * rb,
               *end = (const char *)w->data + (size_t)w->rows * rb;
    size_t ahead = (Z_AHEAD + g - 1) / g * g;
    int64_t r = r0;
#define ROWS(T)                                                                                    \
    case T:                                                                                        \
        if (nt == 1)                                                                               \
            z_rows(a, T, Z_ROWS, 1, &r, r1, &p, rb, y, ldy, ahead, end);                           \
        else if (nt == 2)                                                                          \
            z_rows(a, T, Z_ROWS / 2, 2, &r, r1, &p, rb, y, ldy, ahead, end);                       \
        break;
    switch (w->dtype) {
        ROWS(DT_Q4_K)
        ROWS(DT_Q6_K)
        ROWS(DT_Q4_0)
        ROWS(DT_Q5_0)
        ROWS(DT_Q4_1)
        ROWS(DT_Q5_1)
        ROWS(DT_Q8_0)
    default:
        break;
    }
#undef ROWS
    for (; r < r1; r++, p += rb) {
        z_prefetch(p + ahead, rb, end);
        z_packed_row(w, (const uint8_t *)p, a, nt, y + (r - r0), ldy);
    }
}

#undef QS_OWN_DOT
#undef QS_VNNI
#undef QS
#pragma GCC pop_options

static const struct qk_set avx512_qset = {
    "avx512", avx512q_quantize, avx512q_unpack, avx512q_dot, avx512q_dot_packed, 4, 8, qk_tiles512, 16};
#endif

const struct qk_set *qk_avx512(void)
{
#if SIMD_X86
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
        __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512vnni"))
        return &avx512_qset;
#endif
    return qk_avx2();
}
