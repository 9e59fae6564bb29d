/* stage_check_internal: the checker's state and helpers, shared by stage_check.c (the walk over
 * steps, loading, comparing, verdicts) and stage_check_layer.c (each stage recomputed). */
#ifndef SEEKD_STAGE_CHECK_INTERNAL_H
#define SEEKD_STAGE_CHECK_INTERNAL_H

#include "engine/cpu/fast_stages.h"
#include "engine/cpu/stage_check.h"
#include "engine/model/rope.h"
#include "engine/stage_dump.h"

#define SC_NORM    1e-5          /* relative, norms */
#define SC_FP8     0x1p-9        /* of A, FP8 GEMMs */
#define SC_BF16    0x1p-14       /* of A, BF16 GEMMs */
#define SC_BF16ULP 0x1p-7        /* of |y|: one BF16 ulp at most */
#define SC_MLA     0x1p-7        /* of Σ p_j |c_j|, and of |ctx| */
#define SC_ROUTER  1e-5          /* of A, the F32 router GEMM */
#define SC_ULP4    (4 * 0x1p-23) /* relative, SwiGLU (the device's expf) */
#define SC_MARGIN  1e-6          /* routing choices closer than this may differ */

enum { SC_STASH = 48 };

/* The latent rows written so far in one layer, by cache slot. */
struct sc_shadow {
    uint16_t *rows; /* [n][width] */
    uint8_t *have;  /* [n] */
    int64_t n;
};

struct sc {
    const struct model *m;
    const struct model_config *c;
    struct tp *tp;
    const struct sc_opts *o;
    struct sc_result *r;
    struct err *e;
    int fp8;                    /* the checkpoint's linear layers are FP8 */
    struct rope rope;
    int step, layer, T;         /* where the walk is; T tokens in the step */
    struct sd_array plan[7];    /* tokens, pos, slot, table_off, tables, logit_rows, block_size */
    float *cos, *sin;           /* [T][dr/2] */
    struct sc_shadow *shadow;   /* [n_layers] */
    struct fs_mla_w *mla;       /* [n_layers], built when first needed */
    float *prev_h;              /* [T, D] h_out of the previous layer (dumped) */
    struct {
        char name[40];
        struct sd_array a;
    } stash[SC_STASH];          /* this layer's loaded stages */
    int n_stash;
    int failed;                 /* a file was missing or malformed (message in e) */
};

enum { SC_TOKENS, SC_POS, SC_SLOT, SC_TABLE_OFF, SC_TABLES, SC_LOGIT_ROWS, SC_BLOCK, SC_N_PLAN };

static inline const int32_t *sc_plan(const struct sc *x, int which)
{
    return (const int32_t *)x->plan[which].data;
}

/* A dumped stage of the current layer, checked to hold rows × cols values of type t. NULL (and
 * x->failed, the message in x->e) when it is missing or malformed. */
const struct sd_array *sc_get(struct sc *x, const char *name, enum sd_type t, int64_t rows,
                              int64_t cols);

/* A dumped quantised activation (fp8: NAME codes + NAME_s scales; else NAME in BF16), a view. */
int sc_get_act(struct sc *x, const char *name, int fp8, int64_t rows, int64_t k,
               struct fs_act *view);

/* Records a stage's verdict: its worst err/tol (> 1 fails) at element `at` of rows of cols. */
void sc_verdict(struct sc *x, const char *stage, double worst, int64_t at, int64_t cols);

/* Verdicts: got against want over n values of rows of `cols`; tol NULL: bit-exact. */
void sc_cmp_f32(struct sc *x, const char *stage, const float *got, const float *want,
                const float *tol, int64_t n, int64_t cols);
void sc_cmp_bits(struct sc *x, const char *stage, const void *got, const void *want, int64_t n,
                 size_t elem, int64_t cols);
/* A quantised activation against quantising want_x (its dumped F32 input): bit-exact. */
void sc_cmp_act(struct sc *x, const char *stage, const struct fs_act *got, const float *want_x);

/* tol[i] = rel · |ref[i]| (plus ulp_rel · |y[i]| when y is given). */
void sc_tol(float *tol, const float *ref, double rel, const float *y, double ulp_rel, int64_t n);

float *sc_falloc(int64_t n);

/* The layer's BF16 W_UK / W_UV. */
const struct fs_mla_w *sc_mla(struct sc *x, int layer);

/* Every stage of one layer (stage_check_layer.c); -1 on a missing or malformed file. */
int sc_layer(struct sc *x, const struct layer *L);

/* The MoE block's stages (stage_check_moe.c); out_want: the combine of the dumped expert
 * outputs, [T, D]. */
int sc_moe(struct sc *x, const struct layer *L, const float *xn2, const struct fs_act *x2,
           float *out_want);

/* Tolerance scale of an F32 GEMM over stored weights: A[t][o] = Σ |x[t][i] · w[o][i]|. */
void sc_matmul_abs(const struct weight *w, const float *x, int n, float *A);

#endif
