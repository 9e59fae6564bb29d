/* fastlayout: how the fast numerics hold weights on a device, and the host transforms that build
 * them while staging the upload (engine/plan/wlayout.h's fill jobs) — plain C, tested on the CPU.
 *
 *   FP8 linear   codes [n_pad][k_pad] (zeros beyond n and k: k_pad a multiple of 16 for the
 *                GEMMs' 16-byte rows, n_pad of 16), and the 128×128 scale grid either as the
 *                checkpoint orders it (FL_NK: [nb][kb]) or transposed (FL_KN: [kb][nb] —
 *                CUTLASS's MN-major scales), rows compact or padded (cuBLASLt's block-scaled
 *                operand: the order and padding it wants are probed on the device). Two weights may be stacked into one array (q_a | kv_a, gate | up) when
 *                the first's rows are whole 128-row blocks, so one GEMM serves both.
 *   W_UK, W_UV   kv_b split per head and dequantised once to BF16: [H][dn][dc] and [H][dv][dc]
 *                (bf16(code × scale)), the operands of the batched absorption and value GEMMs
 *   F32          norm weights and the router, widened exactly
 * Padding changes no result: padded columns meet zero activations, padded rows are never read. */
#ifndef SEEKD_FASTLAYOUT_H
#define SEEKD_FASTLAYOUT_H

#include <stdint.h>

#include "engine/model/model.h"

enum fl_order { FL_NK, FL_KN };

/* The device array of FP8 weights: one source, or two stacked. */
struct fl_fp8 {
    int64_t n, k;          /* rows (both sources), columns */
    int64_t n_pad, k_pad;
    int64_t nb, kb;        /* 128-blocks along n and k */
    int64_t s_rows, s_ld;  /* the stored scale grid: s_rows rows of s_ld floats */
    enum fl_order order;
    int n_src;
    const struct weight *src[2];
    int64_t row0[2];       /* the device row of each source's first row */
};

/* Plans w alone (w2 NULL) or w above w2 (same columns; w->rows a multiple of 128); scale rows
 * padded to a multiple of ld_align floats (1: compact). -1 when they cannot stack. */
int fl_fp8_plan(struct fl_fp8 *l, const struct weight *w, const struct weight *w2,
                enum fl_order order, int ld_align);

/* Whether w above w2 can be one array. */
int fl_can_stack(const struct weight *w, const struct weight *w2);

uint64_t fl_code_bytes(const struct fl_fp8 *l);
uint64_t fl_scale_bytes(const struct fl_fp8 *l);

/* wl_fill_fn's: bytes [at, at + n) of the codes / the scale grid; ctx a struct fl_fp8. */
void fl_fill_codes(const void *ctx, uint64_t at, uint64_t n, void *dst);
void fl_fill_scales(const void *ctx, uint64_t at, uint64_t n, void *dst);

/* The absorption weights of one layer's kv_b. */
struct fl_mla {
    const struct weight *kv_b;
    int H, dn, dv, dc;
};

uint64_t fl_uk_bytes(const struct fl_mla *m);
uint64_t fl_uv_bytes(const struct fl_mla *m);
/* wl_fill_fn's of W_UK [H][dn][dc] and W_UV [H][dv][dc], BF16; ctx a struct fl_mla. */
void fl_fill_uk(const void *ctx, uint64_t at, uint64_t n, void *dst);
void fl_fill_uv(const void *ctx, uint64_t at, uint64_t n, void *dst);

/* wl_fill_fn of a weight widened to F32 (every element, scale applied); ctx a struct weight. */
void fl_fill_f32(const void *ctx, uint64_t at, uint64_t n, void *dst);

#endif
