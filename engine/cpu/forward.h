/* forward: one step of the model over a batch of sequences, reading and writing the paged KV
 * cache (engine/batch.h describes the batch). CPU implementation, F32 accumulation.
 *
 * DeepSeek attention always runs in the absorbed MLA form: the cache holds only latents, and
 * each token attends over them with W_UK folded into its query and W_UV applied after the
 * weighted sum. Dense models (llama, qwen2) cache each KV head's rotated key and value. Either
 * way prefill chunks and decode tokens run the same arithmetic, so prefilling in one go, in
 * chunks, or token by token gives the same logits. */
#ifndef SEEKD_FORWARD_H
#define SEEKD_FORWARD_H

#include "engine/batch.h"
#include "engine/err.h"
#include "engine/cpu/kv_cache.h"
#include "engine/cpu/matrix.h"
#include "engine/model/model.h"
#include "engine/cpu/threadpool.h"

struct fwd;

/* Scratch for batches of up to max_tokens tokens. Parallel loops run on tp (the caller's, kept
 * until fwd_destroy); NULL makes a private single-thread pool. */
struct fwd *fwd_create(const struct model *m, int max_tokens, struct tp *tp);
void fwd_destroy(struct fwd *f);

/* Runs the matmuls of BF16 weights with the matrix set mx (numerics bf16: engine/cpu/matrix.h);
 * NULL, as created: everything in F32. */
void fwd_use_matrix(struct fwd *f, const struct matrix_kernels *mx);

struct shard;
struct comm;

/* Runs this rank's part of every step (engine/cpu/shard.h: its heads, experts, intermediate and
 * vocabulary rows, with an all-reduce after attention and after the MLP or MoE, and the logits
 * gathered), on every rank of sh's communicator in step; sh is kept, not owned. */
void fwd_use_shard(struct fwd *f, struct shard *sh);

/* Expert parallelism with data-parallel attention (forward_ep.c): this rank holds its share of
 * the routed experts, and every MoE layer exchanges rows with the other ranks of c, which run
 * their own batches (or fwd_run_idle) in step; c is kept, not owned. */
void fwd_use_ep(struct fwd *f, struct comm *c);

/* Expert parallelism: this rank has no tokens this step but serves the others' rows in every
 * MoE layer. */
int fwd_run_idle(struct fwd *f, struct err *e);

/* The prefill chunk for steps that also decode: the smallest of 64, 128, ... up to max_tokens
 * at which the model's expert matmuls (over the tokens such a step routes to one expert) run at
 * 90% of their best throughput here — measured now, on the calling thread's CPU time, in a few
 * milliseconds. Needs the forward idle (it uses the pool's first scratch). */
int fwd_prefill_chunk(struct fwd *f, int max_tokens);

/* on: quantised weights meet 8-bit activations (integer dot products, llama.cpp's scheme); off
 * (the default): they are dequantised exactly and multiplied in F32. */
void fwd_set_q8(struct fwd *f, int on);

/* Runs the batch; logits receives batch_n_logits(b) rows of vocab_size floats, in batch order.
 * The caller has checked the batch against this forward's max_tokens and the cache (batch_check);
 * fails (message in e) only when the cache was made for another model. */
int fwd_run(struct fwd *f, struct kv_cache *kv, const struct batch *b, float *logits,
            struct err *e);

#endif
