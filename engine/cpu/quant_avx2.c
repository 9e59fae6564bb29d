/* quant_avx2: the AVX2 set of the 8-bit quantised path — quant_simd.h with maddubs + madd. */
#include "engine/cpu/isa.h"
#include "engine/cpu/quant_kernels.h"

#if SIMD_X86
#pragma GCC push_options
#pragma GCC target("avx2,fma,f16c")
#define QS(name) avx2q_##name
#define QS_VNNI 0
#include "engine/cpu/quant_simd.h"
#undef QS_VNNI
#undef QS
#pragma GCC pop_options

static const struct qk_set avx2_qset = {
    "avx2", avx2q_quantize, avx2q_unpack, avx2q_dot, avx2q_dot_packed, 2, 4, NULL, 0};
#endif

const struct qk_set *qk_avx2(void)
{
#if SIMD_X86
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") && __builtin_cpu_supports("f16c"))
        return &avx2_qset;
#endif
    return NULL;
}
