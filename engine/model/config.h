/* config: the model's hyper-parameters, read from a Hugging Face config.json.
 *
 * Covers model_type deepseek_v3 (V3, R1) and deepseek_v2 (V2, V2-Lite). Every value is checked
 * against sane bounds so that a broken file is refused before anything is sized from it. */
#ifndef SEEKD_CONFIG_H
#define SEEKD_CONFIG_H

#include "engine/err.h"

enum arch { ARCH_DEEPSEEK_V2, ARCH_DEEPSEEK_V3 };
enum score_fn { SCORE_SOFTMAX, SCORE_SIGMOID };
enum topk_method { TOPK_GREEDY, TOPK_GROUP_LIMITED_GREEDY, TOPK_NOAUX_TC };

struct model_config {
    enum arch arch;
    int vocab_size;
    int hidden_size;
    int n_layers;          /* decoder layers run by the forward pass (MTP excluded) */
    int n_nextn_layers;    /* MTP layers stored after them (num_nextn_predict_layers) */
    int n_heads;
    int q_lora_rank;       /* 0: plain q_proj (V2-Lite) */
    int kv_lora_rank;
    int qk_nope_head_dim;
    int qk_rope_head_dim;
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
    int rope_yarn;                /* rope_scaling type yarn */
    double rope_factor;
    int rope_orig_max_pos;        /* original_max_position_embeddings */
    double rope_beta_fast, rope_beta_slow;
    double rope_mscale, rope_mscale_all_dim; /* 0 when absent */

    int fp8_block_rows, fp8_block_cols;  /* quantization_config.weight_block_size; 0: none */
    int bos_token_id, eos_token_id;
};

/* Reads and validates dir/config.json. */
int config_load(struct model_config *c, const char *path, struct err *e);

/* Whether decoder layer il uses the MoE block (else the dense MLP). */
int config_layer_is_moe(const struct model_config *c, int il);

static inline int config_qk_head_dim(const struct model_config *c)
{
    return c->qk_nope_head_dim + c->qk_rope_head_dim;
}

/* Values cached per token per layer: the normed latent and the rotated rope key. */
static inline int config_kv_width(const struct model_config *c)
{
    return c->kv_lora_rank + c->qk_rope_head_dim;
}

#endif
