/* matrix: the BF16 matrix kernels that run matmuls under `numerics: bf16` — Intel AMX tiles and
 * AVX-512-BF16 dot products — beside the F32 kernel sets of simd.h, and their run-time choice.
 *
 * Numerics: each activation is rounded once to BF16 (nearest even; a denormal becomes zero, as
 * the instructions read it), each weight is BF16 as stored, products are exact and every sum is
 * F32. AVX-512-BF16 (vdpbf16ps) adds the products of column pairs into 16 lanes over the columns
 * in order and then sums the lanes by the AVX-512 F32 set's fixed tree; AMX (tdpbf16ps)
 * accumulates each output over 32-column tiles in order (the hardware's order within a tile).
 * Either way an output's sum does not depend on the batch, on the tile it falls in or on the
 * thread: results are batch- and thread-count-invariant for a given set. Sets differ from each
 * other, and from the F32 reference, by these roundings and by float reassociation.
 *
 * Weights are consumed in place from the mapping, never repacked: AMX reads the BF16 rows
 * directly as its A tiles (16 rows by 32 columns); the activations are what gets laid out for
 * the kernel (rounded, and for AMX interleaved by column pairs into B tiles), once per matmul.
 *
 * The AMX set is also built over an emulation of the tile instructions in plain C
 * (matrix_by_name("amx-emulated")): the same driver, tile layout and packing run on any CPU, so
 * tests check them against the AVX-512-BF16 set and a scalar reference. */
#ifndef SEEKD_MATRIX_H
#define SEEKD_MATRIX_H

#include <stddef.h>
#include <stdint.h>

struct matrix_kernels {
    const char *name; /* "amx", "avx512bf16", "amx-emulated" */
    /* Bytes of packed activations for n tokens of k columns. */
    size_t (*packed_bytes)(int n, int k);
    /* x[t][c] (t < n, c < k, row stride ldx) rounded to BF16 into xp, laid out for gemm. */
    void (*pack)(const float *x, int64_t ldx, int n, int k, void *xp);
    /* Bytes of scratch gemm needs for rows of k columns. */
    size_t (*scratch_bytes)(int k);
    /* y[t * ldy + i] = Σ_c w[i * ldw + c] · x[t][c] for i < nr, t < n, c < k: w BF16 rows (of
     * the mapping, read in place), xp as pack made it. */
    void (*gemm)(const uint16_t *w, int64_t ldw, int nr, const void *xp, int n, int k, float *y,
                 int64_t ldy, void *scratch);
};

/* The set `numerics: bf16` runs here: SEEKD_MATRIX=amx|avx512bf16|none (environment) if the CPU
 * runs it; else AMX when the CPU has it and Linux grants the tile state; else AVX-512-BF16 when
 * the CPU has it and its dot products outrun F32 FMA here (measured once: rate_out, if not NULL,
 * receives BF16 over F32 multiply-adds per second, 0 when not measured); else NULL — the F32
 * kernels, which are then the faster arithmetic. */
const struct matrix_kernels *matrix_best(double *rate_out);

/* The set of that name, or NULL when unknown or this CPU (and kernel) cannot run it. */
const struct matrix_kernels *matrix_by_name(const char *name);

/* BF16 of f as the matrix instructions read it: nearest even, denormals to signed zero, NaN
 * quiet. */
uint16_t matrix_bf16(float f);

#endif
