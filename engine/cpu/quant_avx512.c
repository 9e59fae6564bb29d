/* quant_avx512: the AVX-512 set of the 8-bit quantised path (quant_kernels.h). */
#include "engine/cpu/quant_kernels.h"

const struct qk_set *qk_avx512(void)
{
    return NULL;
}
