/* backend_cpu: the CPU backend behind the seam — the thread pool, the forward pass over the
 * mapped weights and a KV pool in host memory. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "engine/backend.h"
#include "engine/cpu/forward.h"
#include "engine/cpu/forward_fast.h"
#include "engine/cpu/kv_cache.h"
#include "engine/cpu/simd.h"
#include "engine/cpu/threadpool.h"

struct backend {
    const struct model *m;
    struct tp *tp;
    struct fwd *fwd;      /* numerics ref */
    struct ffw *ffw;      /* numerics fast: the emulation of the GPU's FP8 recipe */
    struct sd dump;       /* stage dumps, when dumping */
    int dumping;
    struct kv_cache *kv;
    struct batch_limits lim;
    struct backend_stats st;
    struct backend_rowcands rc; /* sample_prefilter: the last step's rows and their candidates */
};

static int cpu_usable(char *why, size_t n_why)
{
    if (why && n_why) why[0] = 0;
    return 1;
}

/* Host memory available now (the weights are mapped, so this is after them). */
static uint64_t host_avail(void)
{
    return (uint64_t)sysconf(_SC_AVPHYS_PAGES) * (uint64_t)sysconf(_SC_PAGESIZE);
}

/* Sizes the pool from the options and allocates it. */
static int make_kv(struct backend *b, const struct backend_opts *o, struct err *e)
{
    const struct model_config *c = &b->m->cfg;
    if (o->kv_dtype != DT_F32 && o->kv_dtype != DT_BF16)
        return err_set(e, "the CPU backend stores the KV cache as f32 or bf16");
    int width = config_kv_width(c);
    size_t per_block = kv_cache_block_bytes(c->n_layers, width, o->block_size, o->kv_dtype);
    uint64_t budget = o->kv_blocks > 0 ? (uint64_t)o->kv_blocks * per_block
                                       : backend_kv_budget(o->kv_memory, host_avail());
    int64_t n_blocks = kvb_blocks_in_budget(budget, o->block_size, c->n_layers, width,
                                            (int32_t)dtype_size(o->kv_dtype));
    if (n_blocks < 1)
        return err_set(e, "kv_cache_memory of %llu bytes holds no block (%zu bytes each)",
                       (unsigned long long)budget, per_block);
    if (n_blocks > INT32_MAX / 2) n_blocks = INT32_MAX / 2;
    b->kv = kv_cache_create(c->n_layers, width, o->block_size, (int)n_blocks, o->kv_dtype);
    if (!b->kv)
        return err_set(e, "cannot allocate %lld KV cache blocks (%llu bytes)", (long long)n_blocks,
                       (unsigned long long)budget);
    b->st.n_blocks = (int32_t)n_blocks;
    b->st.kv_bytes = (uint64_t)n_blocks * per_block;
    return 0;
}

static void cpu_destroy(struct backend *b)
{
    if (!b) return;
    fwd_destroy(b->fwd);
    ffw_destroy(b->ffw);
    tp_destroy(b->tp);
    kv_cache_destroy(b->kv);
    backend_rowcands_free(&b->rc);
    free(b);
}

/* The forward of the chosen numerics (auto resolved here), and the dump directory. Ref and the
 * 8-bit activations of GGUF quantised weights: fwd; DeepSeek's FP8 recipe: its emulation, ffw. */
static int make_forward(struct backend *b, const struct backend_opts *o, struct err *e)
{
    enum numerics nm = backend_numerics(backend_cpu(), b->m, o->numerics);
    int recipe = backend_fp8_recipe(b->m, nm);
    if (o->dump_dir && !recipe)
        return err_set(e, nm == NUMERICS_FAST ? "stage dumps are written under DeepSeek's FP8 "
                                                "recipe only, not for GGUF quantised weights"
                                              : "stage dumps are written under numerics fast only");
    if (o->dump_dir && sd_open(&b->dump, o->dump_dir, e) != 0) return -1;
    b->dumping = o->dump_dir != NULL;
    if (!recipe) {
        b->fwd = fwd_create(b->m, o->max_tokens, b->tp);
        fwd_set_q8(b->fwd, nm == NUMERICS_FAST);
        return 0;
    }
    if (o->kv_dtype != DT_BF16)
        return err_set(e, "numerics fast keeps the latent cache in bf16 (kv cache dtype f32 given)");
    b->ffw = ffw_create(b->m, o->max_tokens, o->max_logits, b->tp, e);
    return b->ffw ? 0 : -1;
}

static struct backend *cpu_create(const struct model *m, const struct backend_opts *o, struct err *e)
{
    struct backend *b = xcalloc(1, sizeof *b);
    b->m = m;
    b->tp = tp_create(o->threads);
    if (make_forward(b, o, e) != 0 || make_kv(b, o, e) != 0) {
        cpu_destroy(b);
        return NULL;
    }
    backend_limits(m, o, b->st.n_blocks, &b->lim);
    if (o->sample_prefilter) backend_rowcands_init(&b->rc, o->max_logits, m->cfg.vocab_size);
    b->st.weight_bytes = model_bytes(m); /* mapped in place, not copied */
    if (b->ffw)
        snprintf(b->st.device, sizeof b->st.device, "CPU, %d threads, emulating the fast numerics",
                 tp_size(b->tp));
    else
        snprintf(b->st.device, sizeof b->st.device, "CPU, %d threads, %s kernels%s", tp_size(b->tp),
                 simd_best()->name,
                 backend_numerics(backend_cpu(), m, o->numerics) == NUMERICS_FAST
                     ? ", 8-bit activations" : "");
    return b;
}

static void cpu_copy_blocks(struct backend *b, const struct kvb_copy *c, int n)
{
    for (int i = 0; i < n; i++) kv_cache_copy_block(b->kv, c[i].src, c[i].dst);
}

static double seconds(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

static int cpu_forward(struct backend *b, const struct batch *bt, float *logits, struct err *e)
{
    if (batch_check(bt, &b->lim, e) != 0) return -1;
    double t0 = seconds();
    int rc = b->ffw ? ffw_run(b->ffw, b->kv, bt, logits, b->dumping ? &b->dump : NULL, e)
                    : fwd_run(b->fwd, b->kv, bt, logits, e);
    b->st.steps++;
    b->st.t_forward += seconds() - t0;
    return rc;
}

/* The rows stay in host memory; the pre-filter runs here (its use is the sampling it saves). */
static int cpu_forward_cands(struct backend *b, const struct batch *bt, struct smp_cands *cands,
                             struct err *e)
{
    if (!b->rc.rows) return err_set(e, "the backend was not made for pre-filtered rows");
    if (cpu_forward(b, bt, b->rc.rows, e) != 0) return -1;
    int n = batch_n_logits(bt);
    backend_rowcands_fill(&b->rc, n, cands);
    b->st.cand_rows += (uint64_t)n;
    return 0;
}

static void cpu_fetch_row(struct backend *b, int row, float *out)
{
    memcpy(out, b->rc.rows + (size_t)row * (size_t)b->rc.V, (size_t)b->rc.V * sizeof *out);
    b->st.fetched_rows++;
}

static void cpu_stats(const struct backend *b, struct backend_stats *out)
{
    *out = b->st;
}

const struct backend_ops *backend_cpu(void)
{
    static const struct backend_ops ops = {
        .name = "cpu", .usable = cpu_usable, .create = cpu_create, .destroy = cpu_destroy,
        .copy_blocks = cpu_copy_blocks, .forward = cpu_forward, .stats = cpu_stats,
        .forward_cands = cpu_forward_cands, .fetch_row = cpu_fetch_row};
    return &ops;
}
