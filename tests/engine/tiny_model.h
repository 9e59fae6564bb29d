/* tiny_model: writes a complete, random DeepSeek-V3-architecture checkpoint (config.json +
 * model.safetensors with the hub's tensor names) small enough to build in a test. */
#ifndef SEEKD_TEST_TINY_MODEL_H
#define SEEKD_TEST_TINY_MODEL_H

#include "tests/engine/ckpt_writer.h"

struct tiny_opts {
    int fp8;       /* projections in FP8 with 128x128 block scales */
    int mtp;       /* add an MTP layer's tensors after the decoder layers */
    int q_lora;    /* 0: plain q_proj (V2-Lite style attention) */
};

enum { TINY_D = 48, TINY_H = 2, TINY_DN = 8, TINY_DR = 4, TINY_DV = 8, TINY_DC = 16, TINY_QL = 24,
       TINY_I = 40, TINY_E = 8, TINY_F = 16, TINY_V = 64, TINY_LAYERS = 2 };

/* A projection: FP8 + scale_inv, or BF16. */
static inline void tiny_proj(struct ck_list *l, const struct tiny_opts *o, int64_t rows,
                             int64_t cols, uint64_t *seed, const char *name)
{
    if (!o->fp8) {
        ck_add(l, DT_BF16, rows, cols, 0.3f, 0.0f, seed, name);
        return;
    }
    char s[200];
    ck_add(l, DT_F8E4M3, rows, cols, 0, 0, seed, name);
    snprintf(s, sizeof s, "%s_scale_inv", name);
    ck_add(l, DT_F32, (rows + 127) / 128, (cols + 127) / 128, 0.0005f, 0.001f, seed, s);
}

static inline void tiny_layer(struct ck_list *l, const struct tiny_opts *o, int il, int moe,
                              uint64_t *seed)
{
    char n[200];
#define NAME(...) (snprintf(n, sizeof n, __VA_ARGS__), n)
    ck_add(l, DT_BF16, 0, TINY_D, 0.1f, 1.0f, seed, NAME("model.layers.%d.input_layernorm.weight", il));
    ck_add(l, DT_BF16, 0, TINY_D, 0.1f, 1.0f, seed, NAME("model.layers.%d.post_attention_layernorm.weight", il));
    if (o->q_lora) {
        tiny_proj(l, o, TINY_QL, TINY_D, seed, NAME("model.layers.%d.self_attn.q_a_proj.weight", il));
        ck_add(l, DT_BF16, 0, TINY_QL, 0.1f, 1.0f, seed, NAME("model.layers.%d.self_attn.q_a_layernorm.weight", il));
        tiny_proj(l, o, TINY_H * (TINY_DN + TINY_DR), TINY_QL, seed, NAME("model.layers.%d.self_attn.q_b_proj.weight", il));
    } else {
        tiny_proj(l, o, TINY_H * (TINY_DN + TINY_DR), TINY_D, seed, NAME("model.layers.%d.self_attn.q_proj.weight", il));
    }
    tiny_proj(l, o, TINY_DC + TINY_DR, TINY_D, seed, NAME("model.layers.%d.self_attn.kv_a_proj_with_mqa.weight", il));
    ck_add(l, DT_BF16, 0, TINY_DC, 0.1f, 1.0f, seed, NAME("model.layers.%d.self_attn.kv_a_layernorm.weight", il));
    tiny_proj(l, o, TINY_H * (TINY_DN + TINY_DV), TINY_DC, seed, NAME("model.layers.%d.self_attn.kv_b_proj.weight", il));
    tiny_proj(l, o, TINY_D, TINY_H * TINY_DV, seed, NAME("model.layers.%d.self_attn.o_proj.weight", il));
    if (!moe) {
        tiny_proj(l, o, TINY_I, TINY_D, seed, NAME("model.layers.%d.mlp.gate_proj.weight", il));
        tiny_proj(l, o, TINY_I, TINY_D, seed, NAME("model.layers.%d.mlp.up_proj.weight", il));
        tiny_proj(l, o, TINY_D, TINY_I, seed, NAME("model.layers.%d.mlp.down_proj.weight", il));
        return;
    }
    ck_add(l, DT_BF16, TINY_E, TINY_D, 0.3f, 0.0f, seed, NAME("model.layers.%d.mlp.gate.weight", il));
    ck_add(l, DT_F32, 0, TINY_E, 0.1f, 0.0f, seed, NAME("model.layers.%d.mlp.gate.e_score_correction_bias", il));
    for (int e = 0; e < TINY_E; e++) {
        tiny_proj(l, o, TINY_F, TINY_D, seed, NAME("model.layers.%d.mlp.experts.%d.gate_proj.weight", il, e));
        tiny_proj(l, o, TINY_F, TINY_D, seed, NAME("model.layers.%d.mlp.experts.%d.up_proj.weight", il, e));
        tiny_proj(l, o, TINY_D, TINY_F, seed, NAME("model.layers.%d.mlp.experts.%d.down_proj.weight", il, e));
    }
    tiny_proj(l, o, TINY_F, TINY_D, seed, NAME("model.layers.%d.mlp.shared_experts.gate_proj.weight", il));
    tiny_proj(l, o, TINY_F, TINY_D, seed, NAME("model.layers.%d.mlp.shared_experts.up_proj.weight", il));
    tiny_proj(l, o, TINY_D, TINY_F, seed, NAME("model.layers.%d.mlp.shared_experts.down_proj.weight", il));
#undef NAME
}

/* The hub-style config.json of the tiny model; extra is spliced in verbatim (may be ""). */
static inline void tiny_config(const char *dir, const struct tiny_opts *o, const char *extra)
{
    char buf[4096];
    int n = snprintf(buf, sizeof buf,
        "{\"architectures\":[\"DeepseekV3ForCausalLM\"],\"model_type\":\"deepseek_v3\","
        "\"vocab_size\":%d,\"hidden_size\":%d,\"num_hidden_layers\":%d,\"num_attention_heads\":%d,"
        "\"num_key_value_heads\":%d,\"q_lora_rank\":%s,\"kv_lora_rank\":%d,\"qk_nope_head_dim\":%d,"
        "\"qk_rope_head_dim\":%d,\"v_head_dim\":%d,\"intermediate_size\":%d,"
        "\"moe_intermediate_size\":%d,\"n_routed_experts\":%d,\"n_shared_experts\":1,"
        "\"num_experts_per_tok\":2,\"n_group\":4,\"topk_group\":2,\"topk_method\":\"noaux_tc\","
        "\"scoring_func\":\"sigmoid\",\"norm_topk_prob\":true,\"routed_scaling_factor\":2.5,"
        "\"first_k_dense_replace\":1,\"moe_layer_freq\":1,\"hidden_act\":\"silu\","
        "\"rms_norm_eps\":1e-6,\"rope_theta\":10000,\"max_position_embeddings\":512,"
        "\"rope_scaling\":{\"type\":\"yarn\",\"factor\":8,\"original_max_position_embeddings\":64,"
        "\"beta_fast\":32,\"beta_slow\":1,\"mscale\":1.0,\"mscale_all_dim\":1.0},"
        "\"num_nextn_predict_layers\":%d,\"bos_token_id\":0,\"eos_token_id\":1,"
        "\"tie_word_embeddings\":false%s%s}",
        TINY_V, TINY_D, TINY_LAYERS, TINY_H, TINY_H, o->q_lora ? "24" : "null", TINY_DC, TINY_DN,
        TINY_DR, TINY_DV, TINY_I, TINY_F, TINY_E, o->mtp ? 1 : 0,
        o->fp8 ? ",\"quantization_config\":{\"quant_method\":\"fp8\",\"fmt\":\"e4m3\","
                 "\"activation_scheme\":\"dynamic\",\"weight_block_size\":[128,128]}" : "",
        extra);
    ck_write(dir, "config.json", buf, (size_t)n);
}

/* Fills l with every tensor of the tiny model (and the MTP layer when asked). */
static inline void tiny_tensors(struct ck_list *l, const struct tiny_opts *o, uint64_t seed)
{
    ck_add(l, DT_BF16, TINY_V, TINY_D, 1.0f, 0.0f, &seed, "model.embed_tokens.weight");
    ck_add(l, DT_BF16, 0, TINY_D, 0.1f, 1.0f, &seed, "model.norm.weight");
    ck_add(l, DT_BF16, TINY_V, TINY_D, 0.5f, 0.0f, &seed, "lm_head.weight");
    for (int il = 0; il < TINY_LAYERS + (o->mtp ? 1 : 0); il++) tiny_layer(l, o, il, il >= 1, &seed);
    if (o->mtp) {
        char n[200];
        snprintf(n, sizeof n, "model.layers.%d.eh_proj.weight", TINY_LAYERS);
        ck_add(l, DT_BF16, TINY_D, 2 * TINY_D, 0.1f, 0.0f, &seed, n);
        snprintf(n, sizeof n, "model.layers.%d.enorm.weight", TINY_LAYERS);
        ck_add(l, DT_BF16, 0, TINY_D, 0.1f, 1.0f, &seed, n);
    }
}

/* Writes the whole checkpoint into dir. */
static inline void tiny_model_write(const char *dir, const struct tiny_opts *o, uint64_t seed)
{
    static struct ck_list l;
    tiny_tensors(&l, o, seed);
    tiny_config(dir, o, "");
    ck_file(dir, "model.safetensors", &l);
    ck_free(&l);
}

#endif
