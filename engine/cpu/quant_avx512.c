/* quant_avx512: the AVX-512 set of the 8-bit quantised path — quant_simd.h on 256-bit vectors
 * with VNNI (dpbusd: one instruction for the sums of 4 products). Without VNNI the AVX2 set
 * serves, as its results are the same integers. */
#include "engine/cpu/quant_kernels.h"

#if defined(__x86_64__)
#pragma GCC push_options
#pragma GCC target("avx512f,avx512bw,avx512vl,avx512vnni,avx2,fma,f16c")
#define QS(name) avx512q_##name
#define QS_VNNI 1
#include "engine/cpu/quant_simd.h"
#undef QS_VNNI
#undef QS
#pragma GCC pop_options

static const struct qk_set avx512_qset = {"avx512", avx512q_quantize, avx512q_unpack, avx512q_dot};
#endif

const struct qk_set *qk_avx512(void)
{
#if defined(__x86_64__)
    __builtin_cpu_init();
    if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
        __builtin_cpu_supports("avx512vl") && __builtin_cpu_supports("avx512vnni"))
        return &avx512_qset;
#endif
    return qk_avx2();
}
