/* cpu_ops: the CPU kernels the forward pass is built from — the reference for every backend.
 *
 * Activations are float; weights are read in their stored dtype and widened on the fly
 * (FP8 multiplied by its block scale). Every kernel computes each output row with a fixed
 * order of operations that does not depend on how many rows are in the batch, so a token's
 * result never depends on its batch-mates. */
#ifndef SEEKD_CPU_OPS_H
#define SEEKD_CPU_OPS_H

#include <stdint.h>

#include "engine/model/model.h"

/* Widens row r of w into out [w->cols], scale applied. */
void cpu_weight_row(const struct weight *w, int64_t r, float *out);

/* y[t][o - r0] = sum_i W[o][i] * x[t][i] for rows o in [r0, r1), t < n.
 * x has row stride ldx, y has row stride ldy. */
void cpu_matmul_rows(const struct weight *w, int64_t r0, int64_t r1, const float *x, int64_t ldx,
                     int n, float *y, int64_t ldy);

/* y[n][rows] = x[n][cols] · Wᵀ, dense strides. */
void cpu_matmul(const struct weight *w, const float *x, int n, float *y);

/* out[t] = x[t] / sqrt(mean(x[t]²) + eps) * weight, for n rows of dim values (in place allowed). */
void cpu_rmsnorm(const float *x, const struct weight *weight, int n, int dim, int64_t ldx,
                 float eps, float *out, int64_t ldo);

/* a[i] = silu(a[i]) * b[i]. */
void cpu_silu_mul(float *a, const float *b, int64_t n);

float cpu_dot(const float *a, const float *b, int n);

/* y += s * x */
void cpu_axpy(float *y, float s, const float *x, int n);

#endif
