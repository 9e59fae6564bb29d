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
#include "engine/cpu/matrix.h"
#include "engine/cpu/shard.h"
#include "engine/cpu/simd.h"
#include "engine/cpu/threadpool.h"

struct backend {
    const struct model *m;
    struct tp *tp;
    struct fwd *fwd;      /* numerics ref and bf16, and fast of GGUF quantisation blocks */
    struct ffw *ffw;      /* numerics fast of a checkpoint: the emulation of the GPU's FP8 recipe */
    struct shard *sh;     /* tensor parallelism: this rank's part of the model; NULL: all of it */
    int ep;               /* expert parallelism: its experts only, rows exchanged per MoE layer */
    int ep_rank, ep_size;
    struct sd dump;       /* stage dumps, when dumping */
    int dumping;
    struct kv_cache *kv;
    struct batch_limits lim;
    struct backend_stats st;
    int huge;             /* the weights were moved into huge pages */
    char huge_failed[64]; /* why not, when asked */
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
    if (o->kv_dtype != DT_F32 && o->kv_dtype != DT_BF16 && o->kv_dtype != DT_F16)
        return err_set(e, "the CPU backend stores the KV cache as f32, bf16 or f16");
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
    b->st.kv_dtype = o->kv_dtype;
    return 0;
}

/* Names the kernels in the stats: "CPU, 2 threads, avx512 kernels, amx for BF16 weights". mx:
 * the matrix set of numerics bf16 (NULL: none); rate: matrix_best's measure. */
static void describe(struct backend *b, enum numerics nm, const struct matrix_kernels *mx, double rate)
{
    int n = b->ffw ? snprintf(b->st.device, sizeof b->st.device,
                              "CPU, %d threads, emulating the fast numerics", tp_size(b->tp))
                   : snprintf(b->st.device, sizeof b->st.device, "CPU, %d threads, %s kernels%s",
                              tp_size(b->tp), simd_best()->name,
                              nm == NUMERICS_FAST ? ", 8-bit activations" : "");
    if (mx)
        n += snprintf(b->st.device + n, sizeof b->st.device - (size_t)n, ", %s for BF16 weights", mx->name);
    else if (nm == NUMERICS_BF16 && rate > 0)
        n += snprintf(b->st.device + n, sizeof b->st.device - (size_t)n,
                      " (AVX-512-BF16 dots %.2fx F32 FMA here: F32 kept)", rate);
    if (n < (int)sizeof b->st.device && (b->huge || b->huge_failed[0]))
        n += snprintf(b->st.device + n, sizeof b->st.device - (size_t)n, b->huge ? ", weights in huge-page memory"
                      : ", weights mapped (huge pages: %s)", b->huge_failed);
    if (n < (int)sizeof b->st.device && b->sh)
        snprintf(b->st.device + n, sizeof b->st.device - (size_t)n, ", tensor-parallel rank %d of %d",
                 b->sh->rank, b->sh->size);
    else if (n < (int)sizeof b->st.device && b->ep)
        snprintf(b->st.device + n, sizeof b->st.device - (size_t)n, ", expert-parallel rank %d of %d",
                 b->ep_rank, b->ep_size);
}

struct read_report {
    const struct load_progress *p;
    const struct model *m;
    double last; /* seconds() of the last report */
};

static double seconds(void);

/* Progress of the read, at most once a second (a small model reports nothing). */
static void read_report(void *arg, uint64_t done, uint64_t total)
{
    struct read_report *r = arg;
    int n = r->m->gguf.n_tensors ? r->m->gguf.n_tensors : r->m->st.n_tensors;
    struct load_status s = {"reading the weights into huge pages", n, n, done, total};
    if (!r->p || !r->p->fn || seconds() - r->last < 1.0) return;
    r->last = seconds();
    r->p->fn(r->p->arg, &s);
}

/* The weights moved into anonymous huge pages, where the kernel gives them: the bytes stay at
 * their addresses (the model's pointers hold), only the pages behind them change. */
static int huge_pages(struct backend *b, const struct load_progress *p, struct err *e)
{
    struct read_report r = {p, b->m, seconds()};
    struct hm_report rep = {read_report, &r};
    int rc = b->m->gguf.n_tensors ? gguf_move_to_huge_pages((struct gguf_set *)&b->m->gguf, &rep, e)
                                  : st_move_to_huge_pages((struct st_set *)&b->m->st, &rep, e);
    if (rc != 0) return -1;
    b->huge = 1;
    return 0;
}

static void cpu_destroy(struct backend *b)
{
    if (!b) return;
    fwd_destroy(b->fwd);
    ffw_destroy(b->ffw);
    shard_destroy(b->sh);
    tp_destroy(b->tp);
    kv_cache_destroy(b->kv);
    backend_rowcands_free(&b->rc);
    free(b);
}

/* Whether numerics fast here is the exact emulation of DeepSeek's FP8 recipe (1: forward_fast,
 * which refuses what the recipe does not cover) or forward.c (0: ref, bf16, and the 8-bit path of
 * GGUF quantised weights); -1 (message in e) for stage dumps the forward does not write. */
static int emulates_fp8(const struct model *m, const struct backend_opts *o, struct err *e)
{
    int recipe = backend_fp8_recipe(m, o->numerics);
    if (o->dump_dir && !recipe)
        return err_set(e, o->numerics == NUMERICS_FAST ? "stage dumps are written under DeepSeek's "
                                                         "FP8 recipe only, not for GGUF quantised weights"
                                                       : "stage dumps are written under numerics fast only");
    return recipe;
}

/* The forward of the chosen numerics (mx: numerics bf16's matrix set, NULL: F32), its prefill
 * chunk, and the dump directory. */
static int make_forward(struct backend *b, const struct backend_opts *o,
                        const struct matrix_kernels *mx, struct err *e)
{
    int emulate = emulates_fp8(b->m, o, e);
    if (emulate < 0) return -1;
    if (o->dump_dir && sd_open(&b->dump, o->dump_dir, e) != 0) return -1;
    b->dumping = o->dump_dir != NULL;
    int sharded = o->tp_comm && o->tp_comm->size > 1;
    b->ep = o->ep_comm && o->ep_comm->size > 1;
    if (b->ep) b->ep_rank = o->ep_comm->rank, b->ep_size = o->ep_comm->size;
    if ((sharded || b->ep) && emulate)
        return err_set(e, "%s parallelism on CPU ranks runs numerics ref, bf16, or fast for GGUF "
                          "quantised weights; the emulation of the FP8 recipe runs on one rank",
                       sharded ? "tensor" : "expert");
    if (sharded && b->ep)
        return err_set(e, "tensor and expert parallelism over two communicators at once");
    if (!emulate) {
        b->fwd = fwd_create(b->m, o->max_tokens, b->tp);
        fwd_use_matrix(b->fwd, mx);
        fwd_set_q8(b->fwd, o->numerics == NUMERICS_FAST);
        if (sharded && !(b->sh = shard_create(b->m, o->tp_comm, e))) return -1;
        if (sharded) fwd_use_shard(b->fwd, b->sh);
        if (b->ep) fwd_use_ep(b->fwd, o->ep_comm);
        b->st.prefill_chunk = fwd_prefill_chunk(b->fwd, o->max_tokens);
        return 0;
    }
    if (o->kv_dtype != DT_BF16)
        return err_set(e, "numerics fast keeps the latent cache in bf16 (kv cache dtype f32 given)");
    b->ffw = ffw_create(b->m, o->max_tokens, o->max_logits, b->tp, e);
    return b->ffw ? 0 : -1;
}

static struct backend *cpu_create(const struct model *m, const struct backend_opts *opts, struct err *e)
{
    struct backend_opts ro = *opts; /* numerics auto resolved */
    ro.numerics = backend_numerics(backend_cpu(), m, opts->numerics);
    const struct backend_opts *o = &ro;
    struct backend *b = xcalloc(1, sizeof *b);
    b->m = m;
    struct err he = {0};
    if (o->huge_pages && huge_pages(b, o->progress, &he) != 0) /* the mapping still serves */
        snprintf(b->huge_failed, sizeof b->huge_failed, "%s", he.msg);
    double rate = 0; /* the matrix set first: AMX's permission is asked before threads start */
    const struct matrix_kernels *mx = o->numerics == NUMERICS_BF16 ? matrix_best(&rate) : NULL;
    b->tp = tp_create(o->threads);
    if (make_forward(b, o, mx, e) != 0 || make_kv(b, o, e) != 0) {
        cpu_destroy(b);
        return NULL;
    }
    backend_limits(m, o, b->st.n_blocks, &b->lim);
    if (o->sample_prefilter) backend_rowcands_init(&b->rc, o->max_logits, m->cfg.vocab_size);
    /* mapped in place, or moved into huge pages: one copy; and a rank's column copies */
    b->st.weight_bytes = model_bytes(m) + (b->sh ? shard_bytes(b->sh) : 0);
    describe(b, o->numerics, mx, rate);
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
    if (b->ep && bt->n_seqs == 0) return fwd_run_idle(b->fwd, e); /* the others' rows only */
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
