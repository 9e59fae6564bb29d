/* quant_avx2: the AVX2 set of the 8-bit quantised path (quant_kernels.h). */
#include "engine/cpu/quant_kernels.h"

const struct qk_set *qk_avx2(void)
{
    return NULL;
}
