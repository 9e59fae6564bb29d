/* cu_dev: device discovery and the checks made before anything is allocated. */
#include "cuda/cu_dev.h"

#include <stdio.h>
#include <string.h>

#include <cublasLt.h>
#include <nccl.h>

#include "cuda/core.h"

/* Why the runtime could not start, in words an operator can act on, with its own answer. */
static void start_failure(cudaError_t rc, char *why, size_t n)
{
    const char *what = "the CUDA runtime cannot start";
    if (rc == cudaErrorInsufficientDriver)
        what = "the NVIDIA driver is missing or older than this build's CUDA runtime";
    else if (rc == cudaErrorNoDevice)
        what = "no CUDA device";
    snprintf(why, n, "%s (CUDA runtime %d.%d: %s: %s)", what, CUDART_VERSION / 1000,
             CUDART_VERSION % 1000 / 10, cudaGetErrorName(rc), cudaGetErrorString(rc));
}

static int cc_ok(int major, int minor)
{
    return major == CU_CC_MAJOR && minor == CU_CC_MINOR;
}

static void cc_failure(int ordinal, const struct cudaDeviceProp *p, char *why, size_t n)
{
    snprintf(why, n,
             "device %d (%s) has compute capability %d.%d; this build's kernels (sm_90a) run on "
             "compute capability 9.0 (Hopper: H100, H200, H800)",
             ordinal, p->name, p->major, p->minor);
}

int cu_usable(char *why, size_t n_why)
{
    char buf[320];
    int n = 0;
    cudaError_t rc = cudaGetDeviceCount(&n);
    if (rc != cudaSuccess) start_failure(rc, buf, sizeof buf);
    else if (n == 0) snprintf(buf, sizeof buf, "no CUDA device");
    for (int i = 0; rc == cudaSuccess && i < n; i++) {
        struct cudaDeviceProp p;
        if (cudaGetDeviceProperties(&p, i) != cudaSuccess) continue;
        if (cc_ok(p.major, p.minor)) {
            if (why && n_why) why[0] = 0;
            return 1;
        }
        if (i == 0) cc_failure(i, &p, buf, sizeof buf);
    }
    if (why && n_why) snprintf(why, n_why, "%s", buf);
    return 0;
}

int cu_open(int ordinal, struct cu_devinfo *d, struct err *e)
{
    char why[320];
    int n = 0;
    cudaError_t rc = cudaGetDeviceCount(&n);
    if (rc != cudaSuccess) return start_failure(rc, why, sizeof why), err_set(e, "%s", why);
    if (ordinal >= n)
        return err_set(e, "device %d does not exist (%d CUDA device%s here)", ordinal, n,
                       n == 1 ? "" : "s");
    struct cudaDeviceProp p;
    if ((rc = cudaGetDeviceProperties(&p, ordinal)) != cudaSuccess)
        return cu_err(e, rc, "cannot query the device");
    if (!cc_ok(p.major, p.minor)) return cc_failure(ordinal, &p, why, sizeof why), err_set(e, "%s", why);
    if ((rc = cudaSetDevice(ordinal)) != cudaSuccess) return cu_err(e, rc, "cannot use the device");
    *d = (struct cu_devinfo){.ordinal = ordinal, .cc_major = p.major, .cc_minor = p.minor,
                             .total_bytes = (uint64_t)p.totalGlobalMem};
    snprintf(d->name, sizeof d->name, "%s", p.name);
    cudaRuntimeGetVersion(&d->runtime_version);
    cudaDriverGetVersion(&d->driver_version);
    return 0;
}

void cu_describe(const struct cu_devinfo *d, char *out, size_t n)
{
    int nccl = 0;
    ncclGetVersion(&nccl);
    snprintf(out, n, "%s, compute %d.%d, %.1f GiB, driver %d.%d, cuBLASLt %zu, NCCL %d.%d.%d",
             d->name, d->cc_major, d->cc_minor, (double)d->total_bytes / (1 << 30),
             d->driver_version / 1000, d->driver_version % 1000 / 10, cublasLtGetVersion(),
             nccl / 10000, nccl / 100 % 100, nccl % 100);
}

int cu_err(struct err *e, cudaError_t rc, const char *what)
{
    return err_set(e, "%s: %s (%s)", what, cudaGetErrorName(rc), cudaGetErrorString(rc));
}

/* The core's dtype numbers are the engine's. */
_Static_assert((int)CORE_F32 == (int)DT_F32 && (int)CORE_BF16 == (int)DT_BF16 &&
                   (int)CORE_F16 == (int)DT_F16 && (int)CORE_F8E4M3 == (int)DT_F8E4M3,
               "core_dtype follows enum dtype");

enum { MAX_ATTN_SHARED = 48 * 1024 };

/* The shapes the fast kernels take: rows of whole 16-element steps where GEMM outputs land. */
static int check_fast(const struct model_config *c, const struct backend_opts *o, struct err *e)
{
    if (o->kv_dtype != DT_BF16)
        return err_set(e, "numerics fast keeps the latent cache in bf16 (kv cache dtype f32 given)");
    if (c->hidden_size % 16 || (c->n_heads * config_qk_head_dim(c)) % 16 || c->qk_rope_head_dim % 2)
        return err_set(e, "numerics fast needs hidden_size and heads × qk_head_dim in multiples of "
                          "16 (%d, %d); use --numerics ref",
                       c->hidden_size, c->n_heads * config_qk_head_dim(c));
    if (c->hidden_size > 49152 || c->moe_intermediate_size > 49152 || c->intermediate_size > 49152)
        return err_set(e, "numerics fast quantises rows of at most 49152 values in shared memory");
    return 0;
}

int cu_supports(const struct model *m, char *why, size_t n)
{
    const struct model_config *c = &m->cfg;
    const char *no = c->arch != ARCH_DEEPSEEK_V3 && c->arch != ARCH_DEEPSEEK_V2
                         ? "the CUDA backend runs DeepSeek V2/V3 models only"
                     : model_is_quantised(m)
                         ? "the CUDA backend does not run GGUF block-quantised weights (Q4_K, Q8_0, "
                           "...) yet"
                     : !m->layers[0].kv_b.data
                         ? "the CUDA backend reads kv_b whole, and this GGUF splits it into k_b and v_b"
                         : NULL;
    if (no) snprintf(why, n, "%s", no);
    return no == NULL;
}

int cu_check_opts(const struct model *m, const struct backend_opts *o, struct err *e)
{
    const struct model_config *c = &m->cfg;
    char why[256];
    if (!cu_supports(m, why, sizeof why)) return err_set(e, "%s; use --backend cpu for this model", why);
    if (o->kv_dtype != DT_F32 && o->kv_dtype != DT_BF16)
        return err_set(e, "the CUDA backend stores the KV cache as f32 or bf16");
    if (o->numerics == NUMERICS_FAST && check_fast(c, o, e) != 0) return -1;
    if (o->numerics != NUMERICS_FAST && o->dump_dir)
        return err_set(e, "stage dumps are written under numerics fast only");
    if (o->n_devices > 1)
        return err_set(e, "a rank drives one GPU, and %d are listed (gpus): give "
                          "--tensor-parallel-size or --data-parallel-size to run a rank per GPU",
                       o->n_devices);
    if (o->block_size < 1 || o->max_tokens < 1 || o->max_logits < 1)
        return err_set(e, "block size, token and logits limits must be positive");
    size_t shared = (size_t)(2 * c->kv_lora_rank + c->qk_rope_head_dim + 64) * sizeof(float);
    if (shared > MAX_ATTN_SHARED)
        return err_set(e, "kv_lora_rank %d is too large for the attention kernel (at most %d)",
                       c->kv_lora_rank, (MAX_ATTN_SHARED / 4 - 64 - c->qk_rope_head_dim) / 2);
    return 0;
}
