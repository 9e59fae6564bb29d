/* model: a loaded checkpoint — config, the mmapped files, and every weight bound by name.
 *
 * Two formats: a Hugging Face directory (config.json + safetensors, tensors named as in
 * transformers) or a GGUF file (metadata + tensors named as in llama.cpp; gguf_model.c).
 * Weights point into the mapping in their stored dtype (F32, BF16, F16, FP8 e4m3 with block
 * scales, or ggml's quantisation blocks); nothing is converted at load time. Loading checks that
 * every expected tensor is present with the right shape and dtype, and that no tensor is left
 * over. */
#ifndef SEEKD_MODEL_H
#define SEEKD_MODEL_H

#include <stdint.h>

#include "engine/model/config.h"
#include "engine/model/dtype.h"
#include "engine/err.h"
#include "engine/model/gguf.h"
#include "engine/model/safetensors.h"

/* A 2-D weight [rows, cols], row-major, in its stored dtype. Vectors have rows == 1. A row of a
 * block type is cols / dtype_block blocks (cols is always a whole number of blocks). */
struct weight {
    const char *name;
    enum dtype dtype;
    int64_t rows, cols;
    const void *data;
    const void *scale;    /* FP8 only: F32 [ceil(rows/block_rows), ceil(cols/block_cols)]
                             multipliers, possibly unaligned */
    int block_rows, block_cols;
};

struct layer {
    struct weight attn_norm;  /* [D] */
    /* MLA (DeepSeek) */
    struct weight q_a;        /* [q_lora, D]            (q_lora models) */
    struct weight q_a_norm;   /* [q_lora] */
    struct weight q_b;        /* [H*(dn+dr), q_lora] */
    struct weight q;          /* [H*(dn+dr), D]          (no q_lora); dense: [H*hd, D] */
    struct weight kv_a;       /* [dc+dr, D] latent first, then the rope key */
    struct weight kv_a_norm;  /* [dc] */
    struct weight kv_b;       /* [H*(dn+dv), dc] head-major: k_nope then v per head, or: */
    struct weight k_b;        /* [H*dc, dn] per head W_UKᵀ   (GGUF split layout; data NULL if */
    struct weight v_b;        /* [H*dv, dc] per head W_UV     kv_b is used) */
    /* dense GQA (llama, qwen2): hd head size, Hkv key/value heads */
    struct weight k, v;       /* [Hkv*hd, D] each */
    struct weight q_bias;     /* [H*hd]   data NULL when the model has none */
    struct weight k_bias, v_bias; /* [Hkv*hd] */
    struct weight o_bias;     /* [D] */
    struct weight o;          /* [D, H*dv]; dense: [D, H*hd] */
    struct weight ffn_norm;   /* [D] */
    int is_moe;
    struct weight gate, up, down;    /* dense MLP: [I, D], [I, D], [D, I] */
    struct weight router;            /* [E, D] */
    struct weight router_bias;       /* [E] e_score_correction_bias (V3), F32 */
    struct weight *exp_gate, *exp_up, *exp_down; /* [E] each: [F, D], [F, D], [D, F] */
    struct weight sh_gate, sh_up, sh_down;       /* shared experts: [S*F, D] .. [D, S*F] */
};

struct model {
    struct model_config cfg;
    struct st_set st;      /* a Hugging Face checkpoint's files (empty for GGUF) */
    struct gguf_set gguf;  /* a GGUF model's files (empty for safetensors) */
    struct weight embed;   /* [V, D] */
    struct weight norm;    /* [D] */
    struct weight lm_head; /* [V, D] (the embedding itself when tied) */
    struct weight rope_freqs; /* [dr/2] F32 frequency divisors (GGUF Llama 3); data NULL if none */
    struct layer *layers;  /* [n_layers] */
};

/* Where a load stands, for progress reports. Tensors are mapped, never copied, so "bytes" are
 * the bytes of the tensors bound so far: a 671B checkpoint binds in seconds. */
struct load_status {
    const char *stage;          /* "mapping" (shards opened), "binding", "done" */
    int64_t n_tensors, n_tensors_total;
    uint64_t n_bytes, n_bytes_total;
};

/* A progress callback, called on the loading thread; fn NULL: no reports. */
struct load_progress {
    void (*fn)(void *arg, const struct load_status *s);
    void *arg;
};

/* Loads path: a directory (config.json + safetensors) or a GGUF file (or any shard of a split
 * one). Returns NULL with a message naming file and tensor. */
struct model *model_load(const char *path, struct err *e);
/* The same, reporting progress to p (may be NULL) after the mapping and after each layer. */
struct model *model_load_progress(const char *path, const struct load_progress *p, struct err *e);

/* Binds a tensor set already opened (or built in memory, engine/model/synth.h) for config c; the
 * model takes the set over (st is left empty), also on failure. */
struct model *model_bind(const struct model_config *c, struct st_set *st,
                         const struct load_progress *p, struct err *e);

void model_destroy(struct model *m);

/* Bytes of all tensor data the model maps. */
uint64_t model_bytes(const struct model *m);

/* Whether the model has weights in one of ggml's quantised block types. */
int model_is_quantised(const struct model *m);


#endif
