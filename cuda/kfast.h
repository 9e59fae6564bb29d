/* kfast: the fast-numerics kernels (DeepSeek's FP8 recipe), as extern "C" launchers callable
 * from C. Every one computes what engine/cpu/fast_stages.c computes, at the same rounding points
 * (docs/ARCHITECTURE.md, "The numerics contract of fast"); tests/cuda/dev_kernels.c checks each
 * against it. Device pointers; each launcher enqueues on the stream and returns
 * cudaGetLastError().
 *
 * Quantised activations ("qact"): FP8 codes [rows][k_pad] (zeros past k) with one F32 scale per
 * row and 128-channel group, or BF16 [rows][k_pad]. Where the scales go is a layout: */
#ifndef SEEKD_CUDA_KFAST_H
#define SEEKD_CUDA_KFAST_H

#include <stdint.h>

#include <cuda_runtime_api.h>

#include "cuda/kernels.h"

#ifdef __cplusplus
extern "C" {
#endif

enum kq_layout {
    KQ_TG,      /* [rows][groups] */
    KQ_GT,      /* [groups][ld_t]: rows fastest (cuBLASLt's and DeepGEMM's activation scales) */
    KQ_GROUPED  /* per MoE group g: [groups][rows_g] at row offset[g] · groups (CUTLASS's SFA) */
};

/* Where a quantised activation goes. */
struct kq_out {
    int fp8;                 /* 1: codes + scales; 0: BF16 */
    int64_t k, k_pad;        /* values per row; the row pitch of codes / BF16 */
    uint8_t *q;              /* FP8 [rows][k_pad] */
    float *s;                /* FP8 scales, by layout */
    uint16_t *b;             /* BF16 [rows][k_pad] */
    enum kq_layout layout;
    int64_t ld_t;            /* KQ_GT: rows between two groups' scales */
    const int32_t *offset;   /* [n_groups + 1] first row of each group: the scale layout of
                              * KQ_GROUPED, and (any layout) rows at or past offset[n_groups]
                              * are left alone by the row-wise MoE kernels */
    int n_groups;
};

/* Per row t (n rows, input row stride ldx): optionally h[t] += add[t] first (add NULL: none),
 * then xn = rmsnorm(h[t]) · w (w NULL: no norm, xn = h[t]); xn_out (optional, [n][k]) gets xn;
 * out gets it quantised. rows: the input row of output row i (NULL: i). */
struct kq_norm {
    float *h;                /* [.][ldx] F32, updated in place when add is given */
    const float *add;        /* [n][ldx] or NULL */
    int64_t ldx;
    const int32_t *rows;
    const float *w;          /* [k] F32 norm weight, or NULL */
    float eps;
    float *xn_out;           /* [n][k] or NULL */
    int n;
    struct kq_out out;
};
cudaError_t k_norm_quant(const struct kq_norm *p, cudaStream_t s);

/* act[r] = silu(gu[r][c]) · gu[r][up_off + c], c < F, rows of pitch ld, for rows whose
 * valid[r] >= 0 (valid NULL: all n rows),
 * act_out (optional) gets the F32 values, out the quantised ones; invalid rows get zero codes. */
cudaError_t k_silu_quant(const float *gu, int64_t ld, int64_t up_off, int n, int F,
                         const int32_t *valid, float *act_out, const struct kq_out *out,
                         cudaStream_t s);

/* The latent cache rows of n tokens (kva rows of pitch ldk): c = bf16(rmsnorm(kva[:dc]) · w),
 * k_rope = bf16(rope(kva[dc:])) into row slot[t] of the layer's BF16 cache, and into rows_out
 * [n][dc+dr] when given. */
cudaError_t k_kv_rows(const float *kva, int64_t ldk, int n, int dc, int dr, const float *w, float eps,
                      const float *cos, const float *sin, const int32_t *slot, uint16_t *cache,
                      uint16_t *rows_out, cudaStream_t s);

/* q [n][H][dn+dr] → q_nope BF16 [n][H][dn] (the absorption GEMM's input) and
 * qfull[t][h][dc .. dc+dr) = bf16(rope(q[t][h][dn:])) (qfull rows of dc + dr). */
cudaError_t k_q_pack(const float *q, int n, int H, int dn, int dr, int dc, const float *cos,
                     const float *sin, uint16_t *q_nope, uint16_t *qfull, cudaStream_t s);

/* Latent attention over the paged BF16 cache, split-KV by engine/plan/mlaplan's work lists. */
struct kmla {
    const uint16_t *qfull;     /* [T][H][dc + dr] */
    const uint16_t *cache;     /* the layer's rows [.][dc + dr] */
    const int32_t *tables;     /* step plan: block tables back to back */
    const int32_t *table_off;  /* [T] */
    const int32_t *cta_begin;  /* [n_ctas + 1] (mlaplan) */
    const int32_t *items;      /* [n_items][4] token, kv0, kv1, part */
    const int32_t *part_begin; /* [T + 1] */
    float *part_o;             /* [n_parts][H][dc] F32 partial outputs (unnormalised) */
    float *part_ml;            /* [n_parts][H][2] running max (scaled) and sum */
    uint16_t *ctx;             /* [T][H][dc] BF16 result */
    int T, H, dc, dr, block_size, n_ctas;
    float scale;               /* softmax scale */
};
/* The partial pass then the combine. Tensor cores (mma.sync BF16) when dc = 512 and dr = 64 and
 * H is a multiple of 16; a SIMT kernel with the same numerics otherwise (or generic != 0). */
cudaError_t k_mla(const struct kmla *p, int generic, cudaStream_t s);

/* The FP8 GEMM on CUDA cores (any shape; the reference and fallback of the tensor-core paths):
 * y[r][o] = Σ_kb blk · (sx[r][kb] · sw[o/128][kb]) over the first n_out outputs, F32 per block. */
struct kgemm8 {
    const uint8_t *w;          /* [n_pad][k_pad] codes */
    const float *ws;           /* scale grid, FL_NK: [nb][ws_ld], or (ws_kn) FL_KN: [kb][ws_ld] */
    int64_t ws_ld;
    int64_t n_out, k, k_pad;
    const uint8_t *x;          /* [rows][k_pad] activation codes */
    const float *xs;           /* activation scales: KQ_TG [rows][groups], or KQ_GT [groups][xs_ld_t] */
    int rows;
    float *y;
    int64_t ldy;
    int ws_kn;                 /* the grid is FL_KN */
    int64_t xs_ld_t;           /* > 0: the scales are KQ_GT with this pitch */
};
cudaError_t k_gemm8(const struct kgemm8 *p, cudaStream_t s);

/* The same over the groups of a grouped activation (KQ_TG scales): rows of group g use weight
 * g's array (w[g], ws[g]); rows of padding (row_tok < 0) are skipped. */
struct kgemm8g {
    const uint8_t *const *w;   /* [n_groups] device pointers */
    const float *const *ws;    /* [n_groups] FL_NK grids */
    int64_t ws_ld, n_out, k, k_pad;
    const int32_t *offset;     /* [n_groups + 1] */
    const int32_t *row_tok;    /* [rows] */
    int n_groups, rows;        /* rows: the buffer's (static) row count */
    const uint8_t *x;
    const float *xs;
    float *y;
    int64_t ldy;
};
cudaError_t k_gemm8_grouped(const struct kgemm8g *p, cudaStream_t s);

/* The MoE permutation (engine/plan/moeplan.h mp_grouped, exactly): sel [T][k] → count [G],
 * offset [G + 1] (aligned), row_tok [max_rows] (-1 padding), tok_row [T][k + shared]. */
cudaError_t k_moe_plan(const int32_t *sel, int T, int k, int E, int shared, int align,
                       int max_rows, int32_t *count, int32_t *offset, int32_t *row_tok,
                       int32_t *tok_row, cudaStream_t s);

/* Quantised rows gathered into group order: dst row r = src row row_tok[r] (zeros for padding),
 * codes and scales (or BF16) from src's layout into dst's. */
cudaError_t k_gather_q(const struct kq_out *src, const int32_t *row_tok, int rows,
                       const struct kq_out *dst, cudaStream_t s);

/* out[t] = Σ_j selw[t][j] · y[tok_row[t][j]] (j ascending), then + y[tok_row[t][k]] (shared as a
 * group) or + ysh[t] (shared apart; NULL: none), each product and sum rounded (cpu_axpy). */
cudaError_t k_combine_rows(const float *y, const int32_t *tok_row, const float *selw, int k,
                           int shared, const float *ysh, int T, int D, float *out, cudaStream_t s);

/* Per row: the 64 largest clean logits (value descending, id ascending), the largest outside,
 * the outside mass Σ exp(v - max) in double, the finite count (engine/sampler_cand.h). */
struct ksample {
    const float *logits;       /* [rows][V] */
    int rows, V;
    int32_t *ids;              /* [rows][64] */
    float *vals;               /* [rows][64] */
    float *out_max;            /* [rows] */
    double *out_mass;          /* [rows] */
    int32_t *n_finite;         /* [rows] */
};
cudaError_t k_sample_prep(const struct ksample *p, cudaStream_t s);

/* Synthetic weights (engine/model/synth_hash.h): element (r, c) of a [rows][cols] tensor is
 * synth_bits(kind, key, r · cols + c, gain). */
struct ksynth {
    int kind;                  /* enum synth_kind */
    uint64_t key;
    float gain;
    int64_t rows, cols;
};
/* Fills dst [rows][pitch] (element size by kind) with the tensor, zeros in the padding. */
cudaError_t k_synth_fill(const struct ksynth *t, void *dst, int64_t pitch, int64_t dst_rows,
                         cudaStream_t s);
/* The scale grid of a synthetic FP8 weight into a fastlayout grid (order 0 FL_NK, 1 FL_KN). */
cudaError_t k_synth_scales(const struct ksynth *grid, int order, int64_t row_off, float *dst,
                           int64_t ld, cudaStream_t s);
/* W_UK or W_UV ([H][rows][dc] BF16) of a synthetic kv_b (codes and grid given by their keys). */
cudaError_t k_synth_absorb(const struct ksynth *codes, const struct ksynth *grid, int H, int dn,
                           int dv, int first, int rows, uint16_t *dst, cudaStream_t s);
/* A synthetic BF16 / F32 vector or matrix widened to F32. */
cudaError_t k_synth_f32(const struct ksynth *t, float *dst, cudaStream_t s);

/* The e4m3 encoder on the device (cvt.rn.satfinite) against nm_e4m3 over 2^32 bit patterns
 * starting at `first` (count of them): mismatches counted into *bad (device int). */
cudaError_t k_e4m3_sweep(uint64_t first, uint64_t count, unsigned long long *bad,
                         cudaStream_t s);

#ifdef __cplusplus
}
#endif

#endif
