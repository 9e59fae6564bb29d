/* matrix: which BF16 matrix kernel set runs here, Linux's permission for AMX tile state, the
 * scalar rounding and packing the sets and their tests share. */
#include "engine/cpu/matrix_internal.h"

#include <stdlib.h>
#include <string.h>

#include "engine/model/dtype.h"

#if SIMD_X86
#include <sys/syscall.h>
#include <unistd.h>
#endif

enum {
    ARCH_GET_XCOMP_PERM_ = 0x1022, /* arch_prctl codes (asm/prctl.h, Linux 5.16) */
    ARCH_REQ_XCOMP_PERM_ = 0x1023,
    XFEATURE_XTILEDATA_ = 18, /* the AMX tile data state component */
};

/* BF16 dot products must do at least this much more work per second than F32 FMA to be chosen. */
#define BF16_MIN_GAIN 1.25

#if SIMD_X86
double matrix_avx512bf16_rate(void); /* matrix_avx512.c */
#endif

uint16_t matrix_bf16(float f)
{
    uint32_t u;
    memcpy(&u, &f, sizeof u);
    if ((u & 0x7f800000u) == 0) return (uint16_t)((u >> 16) & 0x8000u); /* zero, denormal */
    return f32_to_bf16(f);
}

void matrix_pack_rows(const float *x, int64_t ldx, int n, int k, uint16_t *xp)
{
    int kp = matrix_kpad(k);
    for (int t = 0; t < n; t++)
        for (int c = 0; c < kp; c++)
            xp[(size_t)t * kp + c] = c < k ? matrix_bf16(x[t * ldx + c]) : 0;
}

size_t matrix_pairs_bytes(int n, int k)
{
    return (size_t)((n + 15) / 16) * (size_t)(matrix_kpad(k) / 2) * 16 * sizeof(uint32_t);
}

void matrix_pack_pairs(const float *x, int64_t ldx, int n, int k, uint32_t *xp)
{
    int np = matrix_kpad(k) / 2;
    for (int b = 0; b < (n + 15) / 16; b++)
        for (int p = 0; p < np; p++)
            for (int j = 0; j < 16; j++) {
                int t = b * 16 + j, c = 2 * p;
                uint32_t lo = t < n && c < k ? matrix_bf16(x[t * ldx + c]) : 0;
                uint32_t hi = t < n && c + 1 < k ? matrix_bf16(x[t * ldx + c + 1]) : 0;
                xp[((size_t)b * np + p) * 16 + j] = lo | hi << 16;
            }
}

int matrix_cpu_avx512bf16(void)
{
#if SIMD_X86
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
           __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512bf16");
#else
    return 0;
#endif
}

int matrix_amx_permitted(void)
{
#if SIMD_X86
    __builtin_cpu_init();
    if (!matrix_cpu_avx512bf16() || !__builtin_cpu_supports("amx-tile") ||
        !__builtin_cpu_supports("amx-bf16"))
        return 0;
    unsigned long granted = 0;
    if (syscall(SYS_arch_prctl, ARCH_REQ_XCOMP_PERM_, XFEATURE_XTILEDATA_) != 0) return 0;
    if (syscall(SYS_arch_prctl, ARCH_GET_XCOMP_PERM_, &granted) != 0) return 0;
    return (int)((granted >> XFEATURE_XTILEDATA_) & 1);
#else
    return 0;
#endif
}

const struct matrix_kernels *matrix_by_name(const char *name)
{
    if (strcmp(name, "amx-emulated") == 0) return &matrix_amx_emulated_set;
#if SIMD_X86
    if (strcmp(name, "avx512bf16") == 0)
        return matrix_cpu_avx512bf16() ? &matrix_avx512bf16_set : NULL;
    if (strcmp(name, "amx") == 0) return matrix_amx_permitted() ? &matrix_amx_set : NULL;
#endif
    return NULL;
}

const struct matrix_kernels *matrix_best(double *rate_out)
{
    const char *want = getenv("SEEKD_MATRIX");
    if (rate_out) *rate_out = 0;
    if (want && strcmp(want, "none") == 0) return NULL;
    if (want && matrix_by_name(want)) return matrix_by_name(want);
#if SIMD_X86
    if (matrix_amx_permitted()) return &matrix_amx_set;
    if (matrix_cpu_avx512bf16()) {
        double rate = matrix_avx512bf16_rate();
        if (rate_out) *rate_out = rate;
        if (rate >= BF16_MIN_GAIN) return &matrix_avx512bf16_set;
    }
#endif
    return NULL;
}
