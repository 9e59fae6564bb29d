/* quant_tile512: the AVX-512 set's dots of K-type weights with many tokens, 16 rows at a time.
 *
 * quant_avx512.c dots one row with up to four tokens: the row's codes fill a vector, so every
 * super-block ends with each (row, token)'s 16 lanes reduced, converted and scaled — as much work
 * as the products. Here a tile puts 16 rows side by side instead, lane i for row i: each vector
 * holds four codes of each row, dpbusd multiplies them by four of one token's quants (broadcast),
 * and a super-block's integers S_b and M_b come out one per lane, so the end of a super-block
 * costs a few operations for 16 rows. The arithmetic is quant_avx512.c's float order (see
 * z_settle there) with the same integers, so each (row, token) result is the same bits as the
 * one-row paths': batch invariance holds whichever path a batch takes.
 *
 * A tile is built from 16 rows unpacked by the set (codes, and the scales and mins of each
 * 16-group), transposed 16 × 16 32-bit units at a time: the codes four to a unit, the scales and
 * the mins two to a unit (int16 pairs, which dpwssd multiplies by pairs of the tokens' sums of
 * 16). Up to four tiles (as many as fit in 512 KiB) are built, then every block of tokens runs
 * against them while both stay in cache. */
#include "engine/cpu/isa.h"
#include "engine/cpu/quant_kernels.h"
#include "engine/cpu/threadpool.h"

#if SIMD_X86
#include <immintrin.h>

#pragma GCC push_options
#pragma GCC target("avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")

enum {
    T_LANES = 16,                 /* rows per tile */
    T_TILES = 4,                  /* tiles built together, at most */
    T_TILES_BYTES = 512 * 1024,   /* ... and as many as fit here (at least one): they stay in L2 */
    T_TOKENS = 32                 /* tokens run against the built tiles at a time */
};

/* 16 rows interleaved: element [unit][i] belongs to row i. */
struct tile {
    uint32_t *u;  /* [k/4][16] codes 4c .. 4c + 3 */
    uint32_t *sc; /* [k/32][16] the scales of 16-groups 2h, 2h + 1 (int16 each) */
    uint32_t *mn; /* [k/32][16] the mins likewise */
    float *d, *m; /* [k/256][16] each super-block's d and dmin */
};

static size_t t_up64(size_t n)
{
    return (n + 63) & ~(size_t)63;
}

static size_t tile_bytes(int64_t k)
{
    return t_up64((size_t)k * 16) + 2 * t_up64((size_t)k * 2) + 2 * t_up64((size_t)k / 4);
}

static struct tile tile_at(uint8_t *p, int64_t k)
{
    struct tile t;
    t.u = (uint32_t *)p, p += t_up64((size_t)k * 16);
    t.sc = (uint32_t *)p, p += t_up64((size_t)k * 2);
    t.mn = (uint32_t *)p, p += t_up64((size_t)k * 2);
    t.d = (float *)p, p += t_up64((size_t)k / 4);
    t.m = (float *)p;
    return t;
}

/* Transposes 16 vectors of 16 32-bit units in place: r[c] becomes unit c of every vector. */
static inline void t_transpose(__m512i r[16])
{
    __m512i t[16], u[16];
    for (int i = 0; i < 8; i++) {
        t[2 * i] = _mm512_unpacklo_epi32(r[2 * i], r[2 * i + 1]);
        t[2 * i + 1] = _mm512_unpackhi_epi32(r[2 * i], r[2 * i + 1]);
    }
    for (int i = 0; i < 4; i++) { /* per 128-bit lane L: unit 4L + m of rows 4i .. 4i + 3 */
        u[4 * i] = _mm512_unpacklo_epi64(t[4 * i], t[4 * i + 2]);
        u[4 * i + 1] = _mm512_unpackhi_epi64(t[4 * i], t[4 * i + 2]);
        u[4 * i + 2] = _mm512_unpacklo_epi64(t[4 * i + 1], t[4 * i + 3]);
        u[4 * i + 3] = _mm512_unpackhi_epi64(t[4 * i + 1], t[4 * i + 3]);
    }
    for (int m = 0; m < 4; m++) {
        __m512i a01 = _mm512_shuffle_i64x2(u[m], u[4 + m], 0x44), a23 = _mm512_shuffle_i64x2(u[m], u[4 + m], 0xee);
        __m512i b01 = _mm512_shuffle_i64x2(u[8 + m], u[12 + m], 0x44), b23 = _mm512_shuffle_i64x2(u[8 + m], u[12 + m], 0xee);
        r[m] = _mm512_shuffle_i64x2(a01, b01, 0x88);
        r[4 + m] = _mm512_shuffle_i64x2(a01, b01, 0xdd);
        r[8 + m] = _mm512_shuffle_i64x2(a23, b23, 0x88);
        r[12 + m] = _mm512_shuffle_i64x2(a23, b23, 0xdd);
    }
}

/* dst[c][i] = src[i][c] for units c < n of 16 rows. */
static void t_interleave(const uint32_t *const src[16], int64_t n, uint32_t *dst)
{
    for (int64_t c0 = 0; c0 < n; c0 += 16) {
        int w = n - c0 < 16 ? (int)(n - c0) : 16;
        __mmask16 m = (__mmask16)((1u << w) - 1);
        __m512i r[16];
        for (int i = 0; i < 16; i++) r[i] = _mm512_maskz_loadu_epi32(m, src[i] + c0);
        t_transpose(r);
        for (int c = 0; c < w; c++) _mm512_storeu_si512(dst + (c0 + c) * 16, r[c]);
    }
}

/* Rows [r, r + 16) of w unpacked by the set (into rows) and interleaved into t. */
static void tile_build(const struct qk_set *s, const struct weight *w, int64_t r,
                       struct qk_row *rows, struct tile *t)
{
    int64_t k = w->cols, nb = k / 256;
    const uint32_t *u[16], *sc[16], *mn[16];
    for (int i = 0; i < 16; i++) {
        s->unpack(w, r + i, &rows[i]);
        u[i] = (const uint32_t *)rows[i].u, sc[i] = (const uint32_t *)rows[i].sc;
        mn[i] = (const uint32_t *)rows[i].mn;
    }
    t_interleave(u, k / 4, t->u);
    t_interleave(sc, k / 32, t->sc);
    t_interleave(mn, k / 32, t->mn);
    for (int64_t b = 0; b < nb; b++)
        for (int i = 0; i < 16; i++) t->d[16 * b + i] = rows[i].d[b], t->m[16 * b + i] = rows[i].m[b];
}

/* Super-block b's group-scaled code products for NT tokens (quants q[j]) into S: codes four to
 * a lane times the token's four quants (dpbusd), each group of G summed, then times its lanes'
 * scales (the low or high half of a scale pair). */
static inline __attribute__((always_inline)) void t_codes(const struct tile *tl, const int32_t *const *q,
                                                          int64_t b, const int NT, const int G, __m512i *S)
{
#pragma GCC unroll 4
    for (int j = 0; j < NT; j++) S[j] = _mm512_setzero_si512();
#pragma GCC unroll 8
    for (int h = 0; h < 8; h++) { /* codes [32h, 32h + 32): 16-groups 2h and 2h + 1 */
        __m512i pr = _mm512_loadu_si512(tl->sc + 16 * (8 * b + h));
        for (int g = 0; g < 32 / G; g++) {
            __m512i gs[4];
#pragma GCC unroll 4
            for (int j = 0; j < NT; j++) gs[j] = _mm512_setzero_si512();
#pragma GCC unroll 8
            for (int i = 0; i < G / 4; i++) {
                int64_t c = 64 * b + 8 * h + G / 4 * g + i;
                __m512i u = _mm512_loadu_si512(tl->u + 16 * c);
#pragma GCC unroll 4
                for (int j = 0; j < NT; j++) gs[j] = _mm512_dpbusd_epi32(gs[j], u, _mm512_set1_epi32(q[j][c]));
            }
            __m512i sc = g == 0 ? _mm512_srai_epi32(_mm512_slli_epi32(pr, 16), 16) : _mm512_srai_epi32(pr, 16);
#pragma GCC unroll 4
            for (int j = 0; j < NT; j++) S[j] = _mm512_add_epi32(S[j], _mm512_mullo_epi32(gs[j], sc));
        }
    }
}

/* Σ_g p_g·bs_g over super-block b's 16-groups for NT tokens (their sums of 16, bs[j]) into X,
 * p the tile's scale or min pairs: one dpwssd per pair of groups. */
static inline __attribute__((always_inline)) void t_pairs(const uint32_t *pairs, const int32_t *const *bs,
                                                          int64_t b, const int NT, __m512i *X)
{
#pragma GCC unroll 4
    for (int j = 0; j < NT; j++) X[j] = _mm512_setzero_si512();
#pragma GCC unroll 8
    for (int h = 0; h < 8; h++) {
        __m512i pr = _mm512_loadu_si512(pairs + 16 * (8 * b + h));
#pragma GCC unroll 4
        for (int j = 0; j < NT; j++) X[j] = _mm512_dpwssd_epi32(X[j], pr, _mm512_set1_epi32(bs[j][8 * b + h]));
    }
}

/* NT tokens from t0 against a tile of type SHIFT/MINS (G: codes per scale, 32 for Q4_K and
 * Q5_K whose 16-groups share theirs in pairs): per super-block S_b (t_codes, less the zero
 * point 2^SHIFT·Σsc·bs) and M_b (t_pairs of the mins), settled in quant_avx512.c's float order;
 * token j's 16 results to y + j·ldy. */
static inline __attribute__((always_inline)) void t_dot(const struct tile *tl, const struct qk_act *a,
    int t0, const int NT, const int SHIFT, const int MINS, const int G, float *y, int64_t ldy)
{
    int64_t k = a->k, nb = k / 256;
    const int32_t *q[4], *bs[4];
    __m512 acc[4], accm[4];
#pragma GCC unroll 4
    for (int j = 0; j < NT; j++) {
        q[j] = (const int32_t *)(a->q + (t0 + j) * k), bs[j] = (const int32_t *)(a->bs + (t0 + j) * k / 16);
        acc[j] = accm[j] = _mm512_setzero_ps();
    }
    for (int64_t b = 0; b < nb; b++) {
        __m512i S[4], X[4];
        t_codes(tl, q, b, NT, G, S);
        if (SHIFT >= 0) {
            t_pairs(tl->sc, bs, b, NT, X);
#pragma GCC unroll 4
            for (int j = 0; j < NT; j++) S[j] = _mm512_sub_epi32(S[j], _mm512_slli_epi32(X[j], SHIFT));
        }
        if (MINS) t_pairs(tl->mn, bs, b, NT, X);
        __m512 dw = _mm512_loadu_ps(tl->d + 16 * b), mw = _mm512_loadu_ps(tl->m + 16 * b);
#pragma GCC unroll 4
        for (int j = 0; j < NT; j++) {
            __m512 dx = _mm512_set1_ps(a->d[(t0 + j) * k / 32 + b]);
            acc[j] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(S[j]), _mm512_mul_ps(dw, dx), acc[j]);
            if (MINS) accm[j] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(X[j]), _mm512_mul_ps(mw, dx), accm[j]);
        }
    }
#pragma GCC unroll 4
    for (int j = 0; j < NT; j++) _mm512_storeu_ps(y + j * ldy, _mm512_sub_ps(acc[j], accm[j]));
}

/* Tokens [t0, t1) against one tile of type T. */
static void t_run(enum dtype T, const struct tile *tl, const struct qk_act *a, int t0, int t1,
                  float *y, int64_t ldy)
{
    for (int t = t0; t < t1; t += 4) {
        float *yt = y + t * ldy;
#define MIN32(N) t_dot(tl, a, t, N, -1, 1, 32, yt, ldy)
#define Q2_K(N) t_dot(tl, a, t, N, -1, 1, 16, yt, ldy)
#define Q3_K(N) t_dot(tl, a, t, N, 2, 0, 16, yt, ldy)
#define Q6_K(N) t_dot(tl, a, t, N, 5, 0, 16, yt, ldy)
        switch (T) {
        case DT_Q2_K: QK_NT(t1 - t, Q2_K) break;
        case DT_Q3_K: QK_NT(t1 - t, Q3_K) break;
        case DT_Q6_K: QK_NT(t1 - t, Q6_K) break;
        default: QK_NT(t1 - t, MIN32) break; /* Q4_K, Q5_K */
        }
#undef MIN32
#undef Q2_K
#undef Q3_K
#undef Q6_K
    }
}

void qk_tiles512(const struct ops *o, int thread, const struct qk_set *s, const struct weight *w,
                 int64_t r0, int64_t r1, const struct qk_act *a, int n, float *y, int64_t ldy)
{
    int64_t k = w->cols;
    size_t rows_bytes = t_up64(qk_scratch_bytes(k, 0, T_LANES)), tb = tile_bytes(k);
    int n_tiles = tb * T_TILES <= T_TILES_BYTES ? T_TILES : tb * 2 > T_TILES_BYTES ? 1 : (int)(T_TILES_BYTES / tb);
    uint8_t *buf = tp_scratch(o->tp, thread, rows_bytes + (size_t)n_tiles * tb);
    struct qk_row rows[T_LANES];
    struct qk_act unused;
    struct tile tiles[T_TILES];
    qk_layout(buf, k, 0, &unused, rows, T_LANES);
    for (int i = 0; i < n_tiles; i++) tiles[i] = tile_at(buf + rows_bytes + i * tb, k);
    for (int64_t rb = r0; rb < r1; rb += n_tiles * T_LANES) {
        int nt = (int)((r1 - rb) / T_LANES) < n_tiles ? (int)((r1 - rb) / T_LANES) : n_tiles;
        for (int i = 0; i < nt; i++) tile_build(s, w, rb + i * T_LANES, rows, &tiles[i]);
        for (int t0 = 0; t0 < n; t0 += T_TOKENS) {
            int t1 = n - t0 < T_TOKENS ? n : t0 + T_TOKENS;
            for (int i = 0; i < nt; i++)
                t_run(w->dtype, &tiles[i], a, t0, t1, y + (rb + i * T_LANES - r0), ldy);
        }
    }
}

#pragma GCC pop_options
#endif
