/* stage_check: the teacher-forced stage checker. Given a stage dump (engine/stage_dump.h) of a
 * fast-numerics run — by the CUDA backend, or by the CPU's own emulation — and the model, it
 * recomputes every stage of every layer of every step on the CPU from the dumped input to that
 * stage (never from its own earlier results, so errors cannot compound) with the emulation's
 * functions (engine/cpu/fast_stages.h), and compares within each stage's tolerance:
 *
 *   norms                       |Δ| ≤ 1e-5 |y|                 (sum order)
 *   quantisation, RoPE, adds    exact                           (same inputs, same rounding)
 *   FP8 GEMMs                   |Δ| ≤ 2^-9 A                    (A: the same sum over |terms|;
 *                                                                the tensor cores keep ~14 bits
 *                                                                inside a 128-K block)
 *   BF16 GEMMs                  |Δ| ≤ 2^-14 A (+ one BF16 ulp, 2^-7 |y|, when rounded to BF16)
 *   latent attention            |Δ| ≤ 2^-7 Σ_j p_j |c_j| + 2^-7 |ctx|
 *   router logits               |Δ| ≤ 1e-5 A;  routing equal unless the CPU's margin between the
 *                                                k-th and (k+1)-th choice (or group) < 1e-6
 *   SwiGLU                      |Δ| ≤ 4 ulp
 *
 * and reports the first stage out of tolerance with the worst element's position. The latent
 * rows a token attends over come from the dumped cache rows of this and earlier steps (a shadow
 * cache by slot), so a dump must start at the sequence's first step (seekd logits does). */
#ifndef SEEKD_STAGE_CHECK_H
#define SEEKD_STAGE_CHECK_H

#include <stdio.h>

#include "engine/cpu/threadpool.h"
#include "engine/err.h"
#include "engine/model/model.h"

struct sc_opts {
    const char *dump_dir;
    int max_vocab_cols; /* logits columns recomputed per row (evenly spread); 0: all */
    int verbose;        /* a line for every stage, not only the failing ones */
    FILE *out;          /* the report */
};

struct sc_result {
    int n_steps, n_stages;   /* checked */
    int n_failed;            /* stages out of tolerance */
    int n_forced;            /* tokens whose routing was taken from the dump (margin < 1e-6) */
    char first[320];         /* the first stage out of tolerance, "" when none */
};

/* 0 when the dump was read (whatever the verdicts); -1 with a message when a file is missing
 * or does not fit the model. */
int sc_check(const struct model *m, struct tp *tp, const struct sc_opts *o, struct sc_result *r,
             struct err *e);

#endif
