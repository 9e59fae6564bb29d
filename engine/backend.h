/* backend: the seam between the engine and what runs the model — the CPU (engine/cpu/) or a GPU
 * (cuda/). It is cut at the whole step: a struct batch in, float32 logit rows out in host memory.
 * The scheduler, block manager, prefix cache, tokenizer and sampler stay on the host and are the
 * same for every backend; block ids mean the same thing everywhere, so a backend only has to
 * store a block's latents where the scheduler says.
 *
 * A backend owns the weights as it needs them (the CPU reads the mapping in place; a GPU uploads
 * them), the paged latent KV cache and the scratch of a step. Only the engine thread calls it. */
#ifndef SEEKD_BACKEND_H
#define SEEKD_BACKEND_H

#include <stddef.h>
#include <stdint.h>

#include "engine/batch.h"
#include "engine/err.h"
#include "engine/kv_blocks.h"
#include "engine/model/dtype.h"
#include "engine/model/model.h"
#include "engine/sampler_cand.h"

struct backend;
struct comm;

enum backend_kind { BACKEND_AUTO, BACKEND_CPU, BACKEND_CUDA };

/* What arithmetic a step runs (docs/ARCHITECTURE.md, "The numerics contract"). REF: F32
 * activations, weights widened exactly (GGUF quantisation blocks dequantised as ggml does), the
 * reference every kernel is checked against. BF16: matmuls of BF16 weights take activations
 * rounded to BF16 with F32 sums, where the backend has faster kernels for that (CPU: AMX,
 * AVX-512-BF16 — engine/cpu/matrix.h); everything else as REF, and a backend without such
 * kernels (CUDA) runs all of it as REF. FAST: the backend's fastest arithmetic for the model's
 * weights. For checkpoints, DeepSeek's FP8 recipe ("The numerics contract of fast"); the CPU
 * emulates it exactly (engine/cpu/forward_fast.h), the reference the GPU's fast kernels are
 * checked against. For a GGUF file with quantisation blocks (CPU only): those weights meet
 * activations quantised to 8 bits per block of 32, with integer dot products, as llama.cpp
 * computes (engine/cpu/quant_kernels.h); every other weight as REF. AUTO, resolved by
 * backend_numerics once backend and model are known: FAST on CUDA; on the CPU, FAST for a GGUF
 * file with quantisation blocks, else REF (BF16 only when asked: its kernel set is picked per
 * process by a timing probe). */
enum numerics { NUMERICS_REF, NUMERICS_BF16, NUMERICS_FAST, NUMERICS_AUTO };

struct backend_opts {
    enum numerics numerics;
    int max_tokens;           /* tokens in the largest step (max_num_batched_tokens) */
    int max_logits;           /* rows of logits the largest step asks for */
    int block_size;           /* KV cache tokens per block */
    enum dtype kv_dtype;      /* DT_F32, DT_BF16, or DT_F16 (CPU) */
    double kv_memory;         /* bytes (> 1) or a fraction (<= 1) of the memory free after the
                               * weights; ignored when kv_blocks > 0 */
    int64_t kv_blocks;        /* > 0: exactly this many blocks */
    int threads;              /* CPU worker threads; 0: one per core */
    int huge_pages;           /* CPU: move the weights into anonymous huge pages at create */
    const int *devices;       /* CUDA device ordinals; n_devices 0: device 0 */
    int n_devices;
    const struct load_progress *progress; /* weight upload reports; NULL: none */
    const char *dump_dir;     /* debug: write every stage of every step there (stage_dump.h);
                               * NULL: none */
    int sample_prefilter;     /* forward_cands will be called (its buffers are made) */
    int graphs;               /* CUDA, numerics fast: 1 replays decode steps from CUDA graphs;
                               * 2 (a test's reference) pads them to the same buckets and runs
                               * them eagerly; 0 neither */
    struct comm *tp_comm;     /* tensor parallelism: the ranks that split every layer, which run
                               * every step together (this rank computes its part); NULL or one
                               * rank: the whole model here. Kept, not owned. */
    struct comm *ep_comm;     /* expert parallelism with data-parallel attention: the ranks that
                               * share the routed experts, each running its own batches in step
                               * (forward with no sequence: serve the others' rows only). NULL:
                               * every expert here. Kept, not owned. */
};

struct backend_stats {
    uint64_t weight_bytes;    /* weights the backend holds (CPU: mapped, not copied) */
    uint64_t kv_bytes;        /* the KV pool */
    enum dtype kv_dtype;      /* its element type */
    uint64_t workspace_bytes; /* per-step scratch */
    int32_t n_blocks;         /* KV blocks the scheduler may use */
    uint64_t steps;           /* forward calls */
    uint64_t graph_steps;     /* of them, replayed from a captured CUDA graph */
    uint64_t eager_steps;     /* of them, launched kernel by kernel (fast numerics on CUDA) */
    double t_forward;         /* seconds spent in forward, cumulative */
    int32_t prefill_chunk;    /* tokens per prefill chunk in steps that also decode, as the
                               * backend measured its kernels; 0: no preference */
    char device[128];         /* what runs the steps, for logs: "CPU, 2 threads, avx512" */
    char paths[256];          /* which kernels and libraries a step runs on ("" when one kind) */
    uint64_t cand_rows;       /* logits rows handed out pre-filtered (forward_cands) */
    uint64_t fetched_rows;    /* of them, fetched whole afterwards (fetch_row) */
};

struct backend_ops {
    const char *name; /* "cpu", "cuda" */
    /* 1 when this backend can run here; else 0 with the reason in why ("no CUDA device", ...). */
    int (*usable)(char *why, size_t n_why);
    /* 1 when it runs models like m (architecture, weight formats, layout); else 0 with the reason
     * in why, so that a backend chosen by auto can give way to the CPU. NULL: every model. */
    int (*supports)(const struct model *m, char *why, size_t n_why);
    /* Takes what the model needs (binds or uploads weights), sizes and allocates the KV pool
     * and the step scratch. NULL with a message naming the device, tensor or limit. */
    struct backend *(*create)(const struct model *m, const struct backend_opts *o, struct err *e);
    void (*destroy)(struct backend *b);
    /* Copies whole blocks (every layer), c[i].src → c[i].dst: the scheduler's copy-on-write. */
    void (*copy_blocks)(struct backend *b, const struct kvb_copy *c, int n);
    /* One step. logits: batch_n_logits(bt) rows of vocab floats, host memory, batch order.
     * -1 with a message on a batch outside the contract (batch_check). */
    int (*forward)(struct backend *b, const struct batch *bt, float *logits, struct err *e);
    void (*stats)(const struct backend *b, struct backend_stats *out);
    /* The step as forward, but each logits row comes back pre-filtered (engine/sampler_cand.h:
     * its 64 best logits, the best outside, the outside mass) instead of whole — a GPU reduces
     * the rows where they are. The rows stay with the backend until its next step; fetch_row
     * copies row i whole for the sampler when the candidates cannot speak for it. The arrays
     * cands[i] points into belong to the backend until then too. Needs sample_prefilter. */
    int (*forward_cands)(struct backend *b, const struct batch *bt, struct smp_cands *cands,
                         struct err *e);
    void (*fetch_row)(struct backend *b, int row, float *out);
};

/* forward_cands for a backend whose logits rows are in host memory: rows [cap][V], the
 * candidates' arrays, the pre-filter (smp_prefilter) of each row. */
struct backend_rowcands {
    int cap, V;
    float *rows;
    int32_t *ids;            /* [cap][SMP_CAND_K] */
    float *vals;
};
void backend_rowcands_init(struct backend_rowcands *r, int cap, int V);
/* cands[i] for rows 0..n-1 of r->rows. */
void backend_rowcands_fill(struct backend_rowcands *r, int n, struct smp_cands *cands);
void backend_rowcands_free(struct backend_rowcands *r);

const struct backend_ops *backend_cpu(void);
/* NULL when seekd was built without CUDA. */
const struct backend_ops *backend_cuda(void);

/* The backend for a kind. AUTO: CUDA when it is usable, else the CPU with the reason in note
 * (empty when nothing was skipped). CUDA that cannot run here: NULL with the reason in e. */
const struct backend_ops *backend_select(enum backend_kind kind, char *note, size_t n_note,
                                         struct err *e);

#define BACKEND_MAX_DEVICES 64

/* Once the model is loaded, a backend that auto chose but that does not run it gives way to the
 * CPU, with the reason in note ("" when it runs it). */
const struct backend_ops *backend_for_model(const struct backend_ops *chosen, const struct model *m,
                                            char *note, size_t n_note);

/* Parses a device list ("0", "0-7", "0,2,5-6"; "" = none) into out[max]: ordinals 0..1023, no
 * repeats. Returns how many, or -1 with a message naming the fault. */
int backend_parse_devices(const char *s, int *out, int max, struct err *e);

/* The KV pool's byte budget: kv_memory as bytes, or as a fraction of avail_bytes. */
uint64_t backend_kv_budget(double kv_memory, uint64_t avail_bytes);

/* The arithmetic a request for `want` means with this backend and model: AUTO becomes FAST on
 * CUDA; on the CPU, FAST for a model with GGUF quantisation blocks, else REF. The others stay
 * as asked. */
enum numerics backend_numerics(const struct backend_ops *ops, const struct model *m,
                               enum numerics want);

/* Whether numerics n (resolved) on m is DeepSeek's FP8 recipe: FAST for a model without GGUF
 * quantised weights. Its latent cache is BF16, and only it writes stage dumps. */
int backend_fp8_recipe(const struct model *m, enum numerics n);

/* Fills a batch_limits from a model and the sizes a backend was made with. */
void backend_limits(const struct model *m, const struct backend_opts *o, int32_t n_blocks,
                    struct batch_limits *lim);

#endif
