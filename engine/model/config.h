/* config: the model's hyper-parameters, read from a Hugging Face config.json (or, through
 * gguf_config, from a GGUF file's metadata).
 *
 * Covers model_type deepseek_v3 (V3, R1) and deepseek_v2 (V2, V2-Lite) — multi-head latent
 * attention and DeepSeekMoE — and the dense GQA decoders llama and qwen2 (the R1-Distill
 * families, SmolLM2). Every value is checked against sane bounds so that a broken file is
 * refused before anything is sized from it. */
#ifndef SEEKD_CONFIG_H
#define SEEKD_CONFIG_H

#include "engine/err.h"

enum arch { ARCH_DEEPSEEK_V2, ARCH_DEEPSEEK_V3, ARCH_LLAMA, ARCH_QWEN2 };
enum score_fn { SCORE_SOFTMAX, SCORE_SIGMOID };
enum topk_method { TOPK_GREEDY, TOPK_GROUP_LIMITED_GREEDY, TOPK_NOAUX_TC };

struct model_config {
    enum arch arch;
    int vocab_size;
    int hidden_size;
    int n_layers;          /* decoder layers run by the forward pass (MTP excluded) */
    int n_nextn_layers;    /* MTP layers stored after them (num_nextn_predict_layers) */
    int n_heads;
    int n_kv_heads;        /* dense attention: key/value heads (GQA); MLA: 0 */
    int head_dim;          /* dense attention: size of each q, k and v head; MLA: 0 */
    int qkv_bias;          /* dense attention: q, k and v projections have biases (qwen2) */
    int o_bias;            /* dense attention: the output projection has a bias */
    int tie_embeddings;    /* the lm_head is the embedding matrix */
    int q_lora_rank;       /* 0: plain q_proj (V2-Lite) */
    int kv_lora_rank;
    int qk_nope_head_dim;  /* dense: head_dim - qk_rope_head_dim */
    int qk_rope_head_dim;  /* dense: the rotated channels of each head */
    int v_head_dim;
    int intermediate_size; /* dense MLP */

    int n_routed_experts;  /* 0: every layer dense */
    int n_shared_experts;
    int moe_intermediate_size;
    int n_experts_per_tok;
    int n_group, topk_group;
    int first_k_dense_replace, moe_layer_freq;
    enum score_fn scoring;
    enum topk_method topk_method;
    int norm_topk_prob;
    float routed_scaling_factor;

    float rms_norm_eps;
    int max_position_embeddings;
    double rope_theta;
    int rope_neox;                /* rotate pairs (i, i + d/2) (HF rotate_half, GGUF qwen2) instead
                                   * of adjacent pairs (2i, 2i+1) */
    int rope_yarn;                /* rope_scaling type yarn */
    int rope_linear;              /* rope_scaling type linear: positions divided by the factor */
    int rope_llama3;              /* rope_scaling type llama3 (low/high frequency factors) */
    double rope_low_freq, rope_high_freq; /* llama3's low_freq_factor, high_freq_factor */
    double rope_factor;
    int rope_orig_max_pos;        /* original_max_position_embeddings */
    double rope_beta_fast, rope_beta_slow;
    double rope_mscale, rope_mscale_all_dim; /* 0 when absent */

    int fp8_block_rows, fp8_block_cols;  /* quantization_config.weight_block_size; 0: none */
    int bos_token_id, eos_token_id;
};

/* Reads and validates dir/config.json. */
int config_load(struct model_config *c, const char *path, struct err *e);

/* A model file's JSON (at most max bytes, duplicate keys refused); NULL with a message naming
 * the file and line. */
struct json_t;
struct json_t *config_json(const char *path, size_t max, struct err *e);

/* Cross-field checks shared by config.json and GGUF metadata (head dims, experts, ids). */
int config_check(const struct model_config *c, struct err *e);

/* Multi-head latent attention (DeepSeek) rather than dense GQA attention. */
static inline int config_is_mla(const struct model_config *c)
{
    return c->arch == ARCH_DEEPSEEK_V2 || c->arch == ARCH_DEEPSEEK_V3;
}

/* Whether decoder layer il uses the MoE block (else the dense MLP). */
int config_layer_is_moe(const struct model_config *c, int il);

static inline int config_qk_head_dim(const struct model_config *c)
{
    return c->qk_nope_head_dim + c->qk_rope_head_dim;
}

/* Values cached per token per layer. MLA: the normed latent and the rotated rope key. Dense:
 * every KV head's rotated key, then every KV head's value. */
static inline int config_kv_width(const struct model_config *c)
{
    if (!config_is_mla(c)) return 2 * c->n_kv_heads * c->head_dim;
    return c->kv_lora_rank + c->qk_rope_head_dim;
}

#endif
