/* softmax: the row softmax of attention, x[i] ← exp(s·x[i] − max) / Σ, one per kernel set.
 *
 * The scalar version is the reference (expf, a sum in order). The vector versions compute exp
 * with a Cody–Waite reduction and a degree-7 polynomial (within 2 ulp of expf; results below
 * about 1e-38 may flush to zero) and sum in vector lanes with a fixed final tree, so a row's
 * result depends only on the row — never on where it sits in a batch. */
#ifndef SEEKD_SOFTMAX_H
#define SEEKD_SOFTMAX_H

#include "engine/cpu/isa.h"

/* x[0..n) ← softmax(scale · x), n ≥ 1. */
void softmax_scalar(float *x, int n, float scale);
#if SIMD_X86
void softmax_avx2(float *x, int n, float scale);   /* needs AVX2 + FMA */
void softmax_avx512(float *x, int n, float scale); /* needs AVX-512F */
#endif

#endif
