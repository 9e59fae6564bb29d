/* cu_dev: the CUDA backend's contact with the runtime — whether a usable GPU is here (and if not,
 * why, in the runtime's own words), opening the chosen device, checked calls, and the checks of
 * a model and options this backend can run, before any device memory is touched. */
#ifndef SEEKD_CU_DEV_H
#define SEEKD_CU_DEV_H

#include <stddef.h>
#include <stdint.h>

#include <cuda_runtime_api.h>

#include "engine/backend.h"
#include "engine/err.h"

/* A CUDA call that cannot fail on valid input: a failure is an impossible state (a lost device,
 * a kernel fault), reported with file:line, the call and the runtime's error. */
#define CU_CHECK(call)                                                                             \
    do {                                                                                           \
        cudaError_t rc_ = (call);                                                                  \
        if (rc_ != cudaSuccess)                                                                    \
            ERR_FATAL("%s: %s (%s)", #call, cudaGetErrorName(rc_), cudaGetErrorString(rc_));       \
    } while (0)

/* The compute capability the kernels are built for (sm_90a: Hopper only). */
enum { CU_CC_MAJOR = 9, CU_CC_MINOR = 0 };

struct cu_devinfo {
    int ordinal;
    char name[96];
    int cc_major, cc_minor;
    uint64_t total_bytes;
    int runtime_version, driver_version; /* 13000 = 13.0 */
};

/* 1 when some device can run the kernels; else 0 with the reason in why: the runtime's answer
 * when it cannot start (no driver, a driver too old), no device, or no device of compute
 * capability 9.0. */
int cu_usable(char *why, size_t n_why);

/* Makes device `ordinal` current and describes it; -1 with the reason when it cannot run the
 * kernels. */
int cu_open(int ordinal, struct cu_devinfo *d, struct err *e);

/* "NVIDIA H200, compute 9.0, 139.8 GiB, driver 13.0, cuBLASLt 130100, NCCL 2.28.9" */
void cu_describe(const struct cu_devinfo *d, char *out, size_t n);

/* What this backend runs: DeepSeek V2/V3 checkpoints, the reference numerics (numerics bf16 runs
 * as ref: no BF16 kernels here) and the fast ones (their own limits), an F32 or BF16 cache, one
 * device, shapes its kernels take. -1 with a message naming the option or value. */
int cu_check_opts(const struct model *m, const struct backend_opts *o, struct err *e);

/* Whether the CUDA backend runs models like m (architecture, weight formats, layout); else 0 with
 * the reason in why. */
int cu_supports(const struct model *m, char *why, size_t n);

/* err_set with a runtime error's name and text: "what: cudaErrorMemoryAllocation (out of
 * memory)". Returns -1. */
int cu_err(struct err *e, cudaError_t rc, const char *what);

#endif
