/* matrix_internal: what the files of the matrix module share — the sets, the packing of
 * activations, the CPU checks. Not for use outside engine/cpu/matrix*.c and their tests. */
#ifndef SEEKD_MATRIX_INTERNAL_H
#define SEEKD_MATRIX_INTERNAL_H

#include "engine/cpu/isa.h"
#include "engine/cpu/matrix.h"

/* Columns padded to whole 32-column chunks (one vdpbf16ps operand, one AMX tile row). */
static inline int matrix_kpad(int k)
{
    return (k + 31) / 32 * 32;
}

#if SIMD_X86
extern const struct matrix_kernels matrix_avx512bf16_set;
extern const struct matrix_kernels matrix_amx_set;
#endif
extern const struct matrix_kernels matrix_amx_emulated_set;

/* 1 when the CPU has AVX-512 F/BW/VL and BF16 (and the OS saves the ZMM state). */
int matrix_cpu_avx512bf16(void);

/* 1 when the CPU has AMX-TILE and AMX-BF16 and Linux lets this process use the tile data
 * (arch_prctl ARCH_REQ_XCOMP_PERM, asked once per call; granted permission lasts). */
int matrix_amx_permitted(void);

/* Row-major BF16 rows of kpad columns (zeros past k): the AVX-512-BF16 layout. */
void matrix_pack_rows(const float *x, int64_t ldx, int n, int k, uint16_t *xp);

/* AMX B tiles: blocks of 16 tokens, each kpad / 2 rows of 16 column pairs (token t's columns
 * 2p and 2p + 1 in dword t of row p); tokens past n and columns past k zero. */
void matrix_pack_pairs(const float *x, int64_t ldx, int n, int k, uint32_t *xp);
size_t matrix_pairs_bytes(int n, int k);

#if SIMD_X86
/* The AMX set's pack (AVX-512-BF16 rounding and transposes), for tests on CPUs without AMX. */
void matrix_amx_pack_vector(const float *x, int64_t ldx, int n, int k, void *xp);
#endif

#endif
