/* quant_kernels: matmuls over weights in ggml's quantisation blocks (engine/model/quant.h), in
 * two arithmetics:
 *
 *  - exact (ops.q8 == 0, `--numerics ref`): rows are dequantised to the exact floats of ggml's
 *    reference and multiplied in F32 with the kernel set's dot tiles, like BF16 or FP8 weights.
 *  - 8-bit activations (ops.q8: `--numerics fast`, the default for quantised models): each
 *    token's activations are quantised the way llama.cpp's CPU backend quantises them — for the
 *    32-value types (Q4_0 .. Q8_0) to int8 blocks of 32 with an fp16 scale d (and, for Q4_1 and
 *    Q5_1, s = d·Σq in fp16), for the K types to int8 super-blocks of 256 with an f32 scale and
 *    the sums of each 16 — and every dot product is exact integer arithmetic per block, scaled
 *    in float: Σ_b d_w·d_x·Σ(w_q·x_q) (+ m_w·s_x), with the K types' 6-bit group scales and mins
 *    applied to the integer sums. The integers agree with llama.cpp's exactly; only the order of
 *    the float sums differs.
 *
 * In the 8-bit path a weight row is first unpacked once into codes u (one byte per value) plus its
 * scales, then dotted with every token of the batch, so a batch reads and unpacks each weight
 * once; for a few tokens the kernels skip the unpacked copy and dot straight from the blocks
 * (dot_packed), with the same results, and for many tokens the AVX-512 set dots K-type rows 16 at
 * a time, side by side (tiles, quant_tile512.c), again with the same results. Each (row, token)
 * result is computed whole, in one fixed order, by one thread: results do not depend on the
 * batch, the tile or the thread count. */
#ifndef SEEKD_QUANT_KERNELS_H
#define SEEKD_QUANT_KERNELS_H

#include <stdint.h>

#include "engine/cpu/ops.h"

/* Rows [r, r + n) of a quantised weight dequantised exactly into out[i * ld .. + cols). */
void qk_widen_rows(const struct weight *w, int64_t r, int n, float *out, int64_t ld);

/* ops_matmul_serial for a quantised weight: y[t * ldy + i - r0] for rows [r0, r1), n tokens. */
void qk_matmul(const struct ops *o, int thread, const struct weight *w, int64_t r0, int64_t r1,
               const float *x, int64_t ldx, int n, float *y, int64_t ldy);

/* Quantised activations of some tokens, all of row length k. Token t's values are at
 * q + t·k, d + t·k/32, s + t·k/32, qs + t·k/32, bs + t·k/16. */
struct qk_act {
    int64_t k;
    int8_t *q;   /* the quants */
    float *d;    /* 32-value types: each block's scale (an fp16 value); K types: each
                  * super-block's f32 scale (the first k/256 entries) */
    float *s;    /* 32-value types: each block's fp16(d · Σq) */
    int32_t *qs; /* 32-value types: each block's Σq */
    int16_t *bs; /* K types: the sum of each 16 consecutive quants */
};

/* Tokens [t0, t1) of x (row stride ldx) quantised into a, in the format weights of type wt
 * need: what qk_matmul would quantise them to, bit for bit. */
void qk_quantize_rows(const struct ops *o, enum dtype wt, const float *x, int64_t ldx, int t0,
                      int t1, struct qk_act *a);

/* Whether weights of types a and b (both quantised) take their activations in one format. */
int qk_same_act(enum dtype a, enum dtype b);

/* qk_matmul on activations already quantised (qk_quantize_rows, for w's type): the same
 * results, for callers that quantise an input once for every task of a loop. */
void qk_matmul_act(const struct ops *o, int thread, const struct weight *w, int64_t r0, int64_t r1,
                   const struct qk_act *a, int n, float *y, int64_t ldy);

/* One weight row unpacked: w = d·sc·(u − off) − m·mn per value, u one byte each. */
struct qk_row {
    uint8_t *u;    /* [k] codes, unsigned (Q8_0: its signed bytes) */
    float *d;      /* 32-value types: [k/32] block scales; K types: [k/256] */
    float *m;      /* Q4_1, Q5_1: [k/32] block mins (added, x = d·u + m); K types: [k/256] dmin */
    int16_t *scp;  /* K types: [k/2] the group scale of each pair of codes */
    int16_t *sc;   /* K types: [k/16] the scale of each group of 16 */
    int16_t *mn;   /* K types with mins: [k/16] the min of each group of 16 */
};

/* One kernel set of the 8-bit path (exposed for the tests). */
struct qk_set {
    const char *name;
    /* Token t of a, from k floats, in the activation format weights of type wt need. */
    void (*quantize)(const float *x, enum dtype wt, struct qk_act *a, int t);
    void (*unpack)(const struct weight *w, int64_t r, struct qk_row *row);
    /* y[t · ldy] = the row's dot with token t, t < nt. */
    void (*dot)(enum dtype wt, const struct qk_row *row, const struct qk_act *a, int nt,
                float *y, int64_t ldy);
    /* y[t · ldy + r − r0]: the same results as unpack + dot for each row r of [r0, r1),
     * decoding the blocks as it goes rather than into an unpacked row first: faster for a few
     * tokens (NULL: none). */
    void (*dot_packed)(const struct weight *w, int64_t r0, int64_t r1, const struct qk_act *a,
                       int nt, float *y, int64_t ldy);
    int packed_max;   /* batches of up to this many tokens take dot_packed */
    int packed_max_k; /* the same for Q4_K and Q6_K, whose codes the sets decode in registers:
                       * dotting them packed beats unpacking the row for more tokens */
    /* Rows [r0, r1) (a multiple of 16 of them) of a K-type weight dotted with n tokens by tiles
     * of 16 rows side by side: the same bits as unpack + dot (NULL: none). */
    void (*tiles)(const struct ops *o, int thread, const struct qk_set *s, const struct weight *w,
                  int64_t r0, int64_t r1, const struct qk_act *a, int n, float *y, int64_t ldy);
    int tiles_min; /* batches of at least this many tokens take tiles */
};

/* For the kernel sets: CALL(N) with N the constant 1, 2, 3 or 4 (LEFT ≥ 4) tokens, so that
 * each count gets a kernel specialised for it. */
#define QK_NT(LEFT, CALL)                                                                          \
    switch (LEFT) {                                                                                \
    case 1: CALL(1); break;                                                                        \
    case 2: CALL(2); break;                                                                        \
    case 3: CALL(3); break;                                                                        \
    default: CALL(4); break;                                                                       \
    }

/* The AVX-512 set's tiles (quant_tile512.c). */
void qk_tiles512(const struct ops *o, int thread, const struct qk_set *s, const struct weight *w,
                 int64_t r0, int64_t r1, const struct qk_act *a, int n, float *y, int64_t ldy);

/* The 8-bit set that goes with a SIMD kernel set (by name: scalar, avx2, avx512). */
const struct qk_set *qk_set_for(const struct simd_kernels *k);

/* The portable reference set, and the SIMD ones (NULL when the CPU lacks them; qk_avx512 needs
 * AVX-512 VNNI, and falls back to the AVX2 set without it). */
const struct qk_set *qk_scalar(void);
const struct qk_set *qk_avx2(void);
const struct qk_set *qk_avx512(void);

/* What the kernels need to know of a weight type: a 256-value K type, its zero point as a
 * shift (u − 2^shift; -1: none), whether it has mins, whether its codes are signed (Q8_0). */
struct qk_type {
    int k_type, shift, mins, is_signed;
};
struct qk_type qk_type_of(enum dtype t);

/* Scratch bytes for qk_act of n tokens and n_rows qk_rows of length k, and their layout. */
size_t qk_scratch_bytes(int64_t k, int n, int n_rows);
void qk_layout(void *buf, int64_t k, int n, struct qk_act *a, struct qk_row *rows, int n_rows);

/* The activations from token t on (a view into a). */
struct qk_act qk_act_at(const struct qk_act *a, int t);

/* Token ts of src copied whole into token td of dst (the same k): gathering quantised rows is
 * quantising the gathered rows, as each token's quantisation depends on its row alone. */
void qk_act_copy(const struct qk_act *src, int ts, const struct qk_act *dst, int td);

#endif
