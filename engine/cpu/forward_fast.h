/* forward_fast: one step of the model under the fast numerics (DeepSeek's FP8 recipe) on the
 * CPU — the emulation of what the CUDA backend computes with `--numerics fast`, rounding point
 * for rounding point (docs/ARCHITECTURE.md, "The numerics contract of fast"). It is the
 * reference the GPU is checked against, not a fast path: every GEMM sums exactly in double.
 *
 * Every stage of a layer stays in its own buffer until the layer ends, so that a step can be
 * written out stage by stage (engine/stage_dump.h) for the stage checker. The KV cache holds
 * BF16 latent rows. */
#ifndef SEEKD_FORWARD_FAST_H
#define SEEKD_FORWARD_FAST_H

#include "engine/batch.h"
#include "engine/cpu/kv_cache.h"
#include "engine/cpu/threadpool.h"
#include "engine/err.h"
#include "engine/model/model.h"
#include "engine/stage_dump.h"

struct ffw;

/* Scratch for steps of up to max_tokens tokens and max_logits logits rows. NULL with a message
 * when the model is outside what the fast numerics define (FP8 blocks other than 128×128, an FP8
 * and a BF16 weight sharing one input). */
struct ffw *ffw_create(const struct model *m, int max_tokens, int max_logits, struct tp *tp,
                       struct err *e);
void ffw_destroy(struct ffw *f);

/* Whether m is inside what the fast numerics define: 1 its linear layers are FP8 (128×128
 * blocks), 0 they are BF16 (or F16 / F32); -1 with a message for mixed formats or other blocks,
 * a model without latent attention, or a GGUF whose kv_b is split into k_b and v_b. */
int ffw_check_model(const struct model *m, struct err *e);

/* One step (a batch that passed batch_check; a BF16 cache made for this model). logits:
 * batch_n_logits(b) rows. dump: write every stage there (NULL: no dump); -1 with a message
 * when a dump file cannot be written. */
int ffw_run(struct ffw *f, struct kv_cache *kv, const struct batch *b, float *logits,
            struct sd *dump, struct err *e);

#endif
