/* cutlass_fp8: the grouped FP8 GEMM of the experts on Hopper tensor cores (CUTLASS 4.2's
 * pointer-array, warp-specialised cooperative kernel with FP8 blockwise scaling: QGMMA, TMA),
 * behind a C interface (cuda/k_cutlass_fp8.cu holds the one instantiation).
 *
 * For each group g: Y_g [m_g][n] = X_g [m_g][k] · W_gᵀ with 1×128 activation scales and 128×128
 * weight scales, F32 accumulation promoted per 128-K block, F32 out. The rows of group g are
 * rows offset[g] .. offset[g+1] of X and Y; the offsets live on the device (engine/plan's
 * mp_grouped, computed by k_moe_plan), so one launch serves any routing and can sit inside a CUDA
 * graph. Layouts: X codes [rows][k] (k a multiple of 16), X scales per group
 * [k/128][m_g] at offset[g] · ceil(k/128) (kfast.h KQ_GROUPED), W_g codes [n][k], W_g scales
 * [ceil(k/128)][ceil(n/128)] (fastlayout FL_KN, unpadded), Y [rows][n]. */
#ifndef SEEKD_CUTLASS_FP8_H
#define SEEKD_CUTLASS_FP8_H

#include <stddef.h>
#include <stdint.h>

#include <cuda_runtime_api.h>

#ifdef __cplusplus
extern "C" {
#endif

struct kcut; /* one set-up grouped GEMM: its shape, argument arrays, workspace, parameters */

/* Sets up groups of [.][k] × [n][k]ᵀ on the current device. NULL with the reason in why when
 * CUTLASS cannot take the shape or the device (the caller falls back to k_gemm8_grouped). */
struct kcut *kcut_create(int n_groups, int64_t n, int64_t k, char *why, size_t n_why);
void kcut_destroy(struct kcut *c);

/* Device bytes the set-up holds (argument arrays and workspace). */
size_t kcut_bytes(const struct kcut *c);

/* One grouped GEMM. offset: device [n_groups + 1]; w, ws: device arrays of n_groups pointers;
 * ldy: Y's row pitch (>= n, a multiple of 4). With one group and offset {0, m} it is a dense
 * linear: the fast path's tensor-core GEMM where cuBLASLt's block-scaled one is not used. */
cudaError_t kcut_run(struct kcut *c, const int32_t *offset, const uint8_t *x, const float *xs,
                     const uint8_t *const *w, const float *const *ws, float *y, int64_t ldy,
                     cudaStream_t s);

#ifdef __cplusplus
}
#endif

#endif
