/* matrix_amx: the AMX BF16 matrix set, and the same driver over an emulation of the tile
 * instructions (the "amx-emulated" set) that tests run on any CPU.
 *
 * The emulation follows the architecture's definition of TDPBF16PS: for each output row m,
 * column pair k of A in order, and output column n, C[m][n] += A[m][2k] · B[k][2n], then
 * += A[m][2k+1] · B[k][2n+1], each an F32 add (the BF16 products are exact), round to nearest
 * even, denormal inputs and results flushed to zero. The hardware may order the products of
 * one 32-column chunk otherwise; results then differ from the emulation by float
 * reassociation, as the tests' tolerance against the AVX-512-BF16 set allows. This set has not
 * run on AMX hardware yet: the CPUs it was built on expose no AMX. */
#include "engine/cpu/matrix_internal.h"

#include <string.h>

/* The 64-byte tile configuration LDTILECFG reads. */
struct amx_tilecfg {
    uint8_t palette, start_row, reserved[14];
    uint16_t colsb[16]; /* bytes per row of tile i */
    uint8_t rows[16];
};

/* The driver's state: the configuration, and the tile registers when emulated. */
struct amx_state {
    struct amx_tilecfg cfg;
    uint8_t tile[8][16][64];
};

static size_t pairs_bytes(int n, int k)
{
    return matrix_pairs_bytes(n, k);
}

static size_t amx_scratch_bytes(int k)
{
    return 1024 * sizeof(float) + (32 * 32 + 32 * (size_t)matrix_kpad(k)) * sizeof(uint16_t);
}

/* ---- the emulation ------------------------------------------------------------------------- */

static float emu_flush(float f)
{
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    if ((u & 0x7f800000u) == 0) u &= 0x80000000u;
    memcpy(&f, &u, sizeof f);
    return f;
}

static float emu_bf16(const uint8_t *p)
{
    uint32_t u = (uint32_t)(p[0] | p[1] << 8) << 16;
    float f;
    memcpy(&f, &u, sizeof f);
    return emu_flush(f);
}

static void emu_tileload(struct amx_state *s, int t, const void *p, int64_t stride)
{
    for (int r = 0; r < s->cfg.rows[t]; r++)
        memcpy(s->tile[t][r], (const uint8_t *)p + r * stride, s->cfg.colsb[t]);
}

static void emu_tilestore(struct amx_state *s, int t, void *p, int64_t stride)
{
    for (int r = 0; r < s->cfg.rows[t]; r++)
        memcpy((uint8_t *)p + r * stride, s->tile[t][r], s->cfg.colsb[t]);
}

static void emu_tiledp(struct amx_state *s, int c, int a, int b)
{
    for (int m = 0; m < s->cfg.rows[c]; m++)
        for (int k = 0; k < s->cfg.colsb[a] / 4; k++)
            for (int n = 0; n < s->cfg.colsb[c] / 4; n++) {
                float acc;
                memcpy(&acc, s->tile[c][m] + 4 * n, sizeof acc);
                for (int e = 0; e < 2; e++) {
                    float prod = emu_bf16(s->tile[a][m] + 4 * k + 2 * e) *
                                 emu_bf16(s->tile[b][k] + 4 * n + 2 * e);
                    acc = emu_flush(acc + emu_flush(prod));
                }
                memcpy(s->tile[c][m] + 4 * n, &acc, sizeof acc);
            }
}

#define AMX_FN(name)         emu_##name
#define TILE_CONFIG(cfg)     (void)(cfg)
#define TILE_ZERO(t)         memset(s->tile[t], 0, sizeof s->tile[t])
#define TILE_LOAD(t, p, st)  emu_tileload(s, t, p, st)
#define TILE_DP(c, a, b)     emu_tiledp(s, c, a, b)
#define TILE_STORE(t, p, st) emu_tilestore(s, t, p, st)
#define TILE_RELEASE()       (void)0
#include "engine/cpu/matrix_amx_body.h"
#undef AMX_FN
#undef TILE_CONFIG
#undef TILE_ZERO
#undef TILE_LOAD
#undef TILE_DP
#undef TILE_STORE
#undef TILE_RELEASE

static void emu_pack(const float *x, int64_t ldx, int n, int k, void *xp)
{
    matrix_pack_pairs(x, ldx, n, k, xp);
}

const struct matrix_kernels matrix_amx_emulated_set = {"amx-emulated", pairs_bytes, emu_pack,
                                                       amx_scratch_bytes, emu_gemm};

/* ---- AMX ----------------------------------------------------------------------------------- */
#if SIMD_X86
#include <immintrin.h>

#pragma GCC push_options
#pragma GCC target("amx-tile,amx-bf16,avx512f,avx512bw,avx512vl,avx512bf16")

#define AMX_FN(name)         amx_##name
#define TILE_CONFIG(cfg)     _tile_loadconfig(cfg)
#define TILE_ZERO(t)         _tile_zero(t)
#define TILE_LOAD(t, p, st)  _tile_loadd(t, p, st)
#define TILE_DP(c, a, b)     _tile_dpbf16ps(c, a, b)
#define TILE_STORE(t, p, st) _tile_stored(t, p, st)
#define TILE_RELEASE()       _tile_release()
#include "engine/cpu/matrix_amx_body.h"

/* r[j] (token j's 16 column pairs) transposed: col[p] holds pair p of the 16 tokens. */
static inline void transpose16(const __m512i *r, __m512i *col)
{
    __m512i t[16], u[16];
    for (int g = 0; g < 4; g++) { /* rows 4g..4g+3: pairs q, q + 4, q + 8, q + 12 in u[4g + q] */
        const __m512i *q = r + 4 * g;
        t[4 * g] = _mm512_unpacklo_epi32(q[0], q[1]);
        t[4 * g + 1] = _mm512_unpackhi_epi32(q[0], q[1]);
        t[4 * g + 2] = _mm512_unpacklo_epi32(q[2], q[3]);
        t[4 * g + 3] = _mm512_unpackhi_epi32(q[2], q[3]);
        u[4 * g] = _mm512_unpacklo_epi64(t[4 * g], t[4 * g + 2]);
        u[4 * g + 1] = _mm512_unpackhi_epi64(t[4 * g], t[4 * g + 2]);
        u[4 * g + 2] = _mm512_unpacklo_epi64(t[4 * g + 1], t[4 * g + 3]);
        u[4 * g + 3] = _mm512_unpackhi_epi64(t[4 * g + 1], t[4 * g + 3]);
    }
    for (int q = 0; q < 4; q++) { /* then 128-bit lanes: across the row groups */
        __m512i v0 = _mm512_shuffle_i32x4(u[q], u[4 + q], 0x88);
        __m512i v1 = _mm512_shuffle_i32x4(u[q], u[4 + q], 0xdd);
        __m512i v2 = _mm512_shuffle_i32x4(u[8 + q], u[12 + q], 0x88);
        __m512i v3 = _mm512_shuffle_i32x4(u[8 + q], u[12 + q], 0xdd);
        col[q] = _mm512_shuffle_i32x4(v0, v2, 0x88);
        col[q + 8] = _mm512_shuffle_i32x4(v0, v2, 0xdd);
        col[q + 4] = _mm512_shuffle_i32x4(v1, v3, 0x88);
        col[q + 12] = _mm512_shuffle_i32x4(v1, v3, 0xdd);
    }
}

/* matrix_pack_pairs, 16 tokens by 32 columns at a time: round (the instruction rounds as
 * matrix_bf16 does), then transpose pairs. */
static void amx_pack(const float *x, int64_t ldx, int n, int k, void *xp)
{
    int np = matrix_kpad(k) / 2;
    for (int b = 0; b < (n + 15) / 16; b++)
        for (int c = 0; c < np * 2; c += 32) {
            __mmask16 lo = k - c >= 16 ? 0xffff : (__mmask16)((1u << (k - c)) - 1);
            __mmask16 hi = k - c >= 32  ? 0xffff
                           : k - c > 16 ? (__mmask16)((1u << (k - c - 16)) - 1)
                                        : 0;
            __m512i r[16], col[16];
            for (int j = 0; j < 16; j++) {
                int live = b * 16 + j < n;
                const float *row = live ? x + (b * 16 + j) * ldx + c : x;
                __m512 a = _mm512_maskz_loadu_ps(live ? lo : 0, row);
                __m512 h = _mm512_maskz_loadu_ps(live ? hi : 0, row + 16);
                r[j] = (__m512i)_mm512_cvtne2ps_pbh(h, a);
            }
            transpose16(r, col);
            uint32_t *out = (uint32_t *)xp + ((size_t)b * np + c / 2) * 16;
            for (int p = 0; p < 16; p++) _mm512_storeu_si512(out + p * 16, col[p]);
        }
}

#pragma GCC pop_options

const struct matrix_kernels matrix_amx_set = {"amx", pairs_bytes, amx_pack, amx_scratch_bytes,
                                              amx_gemm};

/* The emulated set packs with the same code where the CPU can run it, so tests check it. */
void matrix_amx_pack_vector(const float *x, int64_t ldx, int n, int k, void *xp)
{
    amx_pack(x, ldx, n, k, xp);
}
#endif
