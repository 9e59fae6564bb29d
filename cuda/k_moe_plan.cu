/* k_moe_plan: the MoE token permutation on the device — engine/plan/moeplan.c's mp_grouped_build
 * exactly, without the host (so decode steps can run inside CUDA graphs): group x < E holds the
 * rows of the tokens routed to expert x in token order, group E (with shared experts) every
 * token; groups start at multiples of align; padding rows hold -1.
 *
 * Deterministic without atomics on the result: one warp per group scans the (token, choice)
 * pairs in order; a ballot gives each match its rank among the warp's 32, a running count the
 * rest. Three launches: counts, the aligned offsets (one thread), placement. */
#include "cuda/kcommon.cuh"
#include "cuda/kfast.h"

enum { WARPS = 8 };

__global__ void __launch_bounds__(WARPS * 32) count_kernel(const int32_t *sel, int n, int E,
                                                           int shared, int T, int32_t *count)
{
    int lane = threadIdx.x & 31, g = blockIdx.x * WARPS + (threadIdx.x >> 5);
    if (g > E || (g == E && !shared)) return;
    int c = 0;
    for (int base = 0; base < n; base += 32) {
        int i = base + lane;
        c += __popc(__ballot_sync(0xffffffffu, i < n && sel[i] == g));
    }
    if (lane == 0) count[g] = g == E ? T : c;
}

__global__ void offsets_kernel(const int32_t *count, int G, int align, int32_t *offset)
{
    int32_t at = 0;
    offset[0] = 0;
    for (int g = 0; g < G; g++) {
        at = (at + count[g] + align - 1) / align * align;
        offset[g + 1] = at;
    }
}

__global__ void __launch_bounds__(WARPS * 32) place_kernel(const int32_t *sel, int T, int k, int E,
                                                           int shared, const int32_t *offset,
                                                           int32_t *row_tok, int32_t *tok_row)
{
    int lane = threadIdx.x & 31, g = blockIdx.x * WARPS + (threadIdx.x >> 5), kk = k + shared;
    if (g > E || (g == E && !shared)) return;
    if (g == E) { /* the shared experts: every token, in order */
        for (int t = lane; t < T; t += 32) row_tok[offset[E] + t] = t, tok_row[t * kk + k] = offset[E] + t;
        return;
    }
    int n = T * k, run = 0;
    for (int base = 0; base < n; base += 32) {
        int i = base + lane, hit = i < n && sel[i] == g;
        unsigned m = __ballot_sync(0xffffffffu, hit);
        if (hit) {
            int r = offset[g] + run + __popc(m & ((1u << lane) - 1u));
            row_tok[r] = i / k;
            tok_row[(i / k) * kk + i % k] = r;
        }
        run += __popc(m);
    }
}

extern "C" cudaError_t k_moe_plan(const int32_t *sel, int T, int k, int E, int shared, int align,
                                  int max_rows, int32_t *count, int32_t *offset, int32_t *row_tok,
                                  int32_t *tok_row, cudaStream_t s)
{
    int G = E + (shared ? 1 : 0);
    unsigned blocks = (unsigned)((G + WARPS - 1) / WARPS);
    cudaError_t rc = cudaMemsetAsync(row_tok, 0xff, (size_t)max_rows * sizeof(int32_t), s);
    if (rc != cudaSuccess) return rc;
    count_kernel<<<blocks, WARPS * 32, 0, s>>>(sel, T * k, E, shared, T, count);
    offsets_kernel<<<1, 1, 0, s>>>(count, G, align, offset);
    place_kernel<<<blocks, WARPS * 32, 0, s>>>(sel, T, k, E, shared, offset, row_tok, tok_row);
    return cudaGetLastError();
}
