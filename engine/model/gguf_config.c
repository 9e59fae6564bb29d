/* gguf_config: a GGUF file's metadata → struct model_config, for the architectures seekd runs:
 * deepseek2 (DeepSeek V2, V2-Lite, V3, R1 as llama.cpp converts them), llama and qwen2.
 *
 * Keys are "<arch>.<name>" (llama.cpp's LLM_KV names). Every integer has bounds, every enum a
 * list; the result goes through config_check like a config.json. The RoPE pairing follows
 * llama.cpp's rope type per architecture: llama and deepseek2 rotate adjacent pairs (the
 * converter permuted llama's q/k rows for it), qwen2 rotates halves (NeoX). */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/model/model_internal.h"

struct gkey {
    const char *name; /* after "<arch>." */
    size_t offset;
    int lo, hi;
    int required;
};

#define G(name, field, lo, hi, req) {name, offsetof(struct model_config, field), lo, hi, req}
static const struct gkey common_keys[] = {
    G("block_count", n_layers, 1, 1024, 1),
    G("embedding_length", hidden_size, 1, 1 << 16, 1),
    G("feed_forward_length", intermediate_size, 1, 1 << 20, 1),
    G("attention.head_count", n_heads, 1, 1024, 1),
    G("attention.head_count_kv", n_kv_heads, 1, 1024, 0),
    G("context_length", max_position_embeddings, 1, 1 << 24, 0),
    G("rope.dimension_count", qk_rope_head_dim, 2, 4096, 0),
    {NULL, 0, 0, 0, 0},
};
static const struct gkey mla_keys[] = {
    G("attention.q_lora_rank", q_lora_rank, 0, 1 << 16, 0),
    G("attention.kv_lora_rank", kv_lora_rank, 1, 1 << 16, 1),
    G("leading_dense_block_count", first_k_dense_replace, 0, 1024, 0),
    G("expert_count", n_routed_experts, 1, 1 << 14, 1),
    G("expert_used_count", n_experts_per_tok, 1, 1 << 10, 1),
    G("expert_shared_count", n_shared_experts, 0, 64, 0),
    G("expert_feed_forward_length", moe_intermediate_size, 1, 1 << 20, 1),
    G("expert_group_count", n_group, 1, 1 << 10, 0),
    G("expert_group_used_count", topk_group, 1, 1 << 10, 0),
    G("nextn_predict_layers", n_nextn_layers, 0, 16, 0),
    {NULL, 0, 0, 0, 0},
};
#undef G

/* Reads a table of "<arch>.<name>" integer keys into c (absent optional keys keep c's value). */
static int read_keys(struct model_config *c, const struct gguf_set *g, const char *arch,
                     const struct gkey *keys, struct err *e)
{
    for (const struct gkey *k = keys; k->name; k++) {
        char key[128];
        snprintf(key, sizeof key, "%s.%s", arch, k->name);
        int *dst = (int *)((char *)c + k->offset);
        int64_t v = *dst;
        if (gguf_int(g, key, k->lo, k->hi, k->required, &v, e)) return -1;
        *dst = (int)v;
    }
    return 0;
}

static int read_num(const struct gguf_set *g, const char *arch, const char *name, double lo,
                    double hi, double *out, struct err *e)
{
    char key[128];
    snprintf(key, sizeof key, "%s.%s", arch, name);
    return gguf_num(g, key, lo, hi, 0, out, e);
}

/* rope.freq_base and rope.scaling.* (none, linear, yarn). */
static int read_rope(struct model_config *c, const struct gguf_set *g, const char *arch,
                     struct err *e)
{
    char key[128], *type = NULL;
    double orig = c->max_position_embeddings, log_mul = 0.0;
    c->rope_theta = 10000.0, c->rope_factor = 1.0, c->rope_beta_fast = 32.0, c->rope_beta_slow = 1.0;
    snprintf(key, sizeof key, "%s.rope.scaling.type", arch);
    if (read_num(g, arch, "rope.freq_base", 1.0, 1e12, &c->rope_theta, e) ||
        read_num(g, arch, "rope.scaling.factor", 0.0, 1e6, &c->rope_factor, e) ||
        gguf_str(g, key, 0, &type, e))
        return -1;
    int rc = 0;
    if (!type || !strcmp(type, "none")) c->rope_factor = 1.0;
    else if (!strcmp(type, "linear")) c->rope_linear = c->rope_factor != 1.0;
    else if (!strcmp(type, "yarn")) c->rope_yarn = 1;
    else rc = err_set(e, "key '%s' is \"%s\" (none, linear or yarn)", key, type);
    free(type);
    if (rc || !c->rope_yarn) return rc;
    if (c->rope_factor < 1.0) return err_set(e, "%s.rope.scaling.factor %g is below 1", arch, c->rope_factor);
    if (read_num(g, arch, "rope.scaling.original_context_length", 1, 1 << 24, &orig, e) ||
        read_num(g, arch, "rope.scaling.yarn_log_multiplier", 0.0, 100.0, &log_mul, e) ||
        read_num(g, arch, "rope.scaling.yarn_beta_fast", 0.0, 1e6, &c->rope_beta_fast, e) ||
        read_num(g, arch, "rope.scaling.yarn_beta_slow", 0.0, 1e6, &c->rope_beta_slow, e))
        return -1;
    c->rope_orig_max_pos = (int)orig;
    /* the converter stores 0.1 · mscale_all_dim; DeepSeek's configs have mscale = mscale_all_dim */
    c->rope_mscale = c->rope_mscale_all_dim = log_mul / 0.1;
    return 0;
}

/* deepseek2: MLA head sizes from either layout, MoE routing from the expert keys. */
static int read_mla(struct model_config *c, const struct gguf_set *g, struct err *e)
{
    const char *a = "deepseek2";
    int64_t k_mla = 0, v_mla = 0, k = 0, v = 0, gating = 1;
    double scale = 1.0;
    int norm = 0;
    c->n_group = c->topk_group = 1;
    if (read_keys(c, g, a, mla_keys, e) ||
        gguf_int(g, "deepseek2.attention.key_length_mla", 1, 8192, 0, &k_mla, e) ||
        gguf_int(g, "deepseek2.attention.value_length_mla", 1, 8192, 0, &v_mla, e) ||
        gguf_int(g, "deepseek2.attention.key_length", 1, 8192, !k_mla, &k, e) ||
        gguf_int(g, "deepseek2.attention.value_length", 1, 8192, !v_mla, &v, e) ||
        gguf_int(g, "deepseek2.expert_gating_func", 1, 2, 0, &gating, e) ||
        read_num(g, a, "expert_weights_scale", 0.0, 1e4, &scale, e) ||
        gguf_bool(g, "deepseek2.expert_weights_norm", &norm, e))
        return -1;
    if (!c->qk_rope_head_dim) return err_set(e, "missing key 'deepseek2.rope.dimension_count'");
    int qk = (int)(k_mla ? k_mla : k); /* the MLA layout stores the absorbed sizes in key_length */
    c->v_head_dim = (int)(v_mla ? v_mla : v);
    c->qk_nope_head_dim = qk - c->qk_rope_head_dim;
    if (c->qk_nope_head_dim < 1)
        return err_set(e, "deepseek2: key length %d leaves no room beside %d rotary dims", qk,
                       c->qk_rope_head_dim);
    c->n_layers -= c->n_nextn_layers; /* block_count counts the MTP layers stored after them */
    if (c->n_layers < 1) return err_set(e, "deepseek2.nextn_predict_layers leaves no decoder layer");
    c->moe_layer_freq = 1;
    c->routed_scaling_factor = (float)scale;
    c->norm_topk_prob = norm;
    c->scoring = gating == 2 ? SCORE_SIGMOID : SCORE_SOFTMAX;
    c->arch = gating == 2 ? ARCH_DEEPSEEK_V3 : ARCH_DEEPSEEK_V2;
    c->topk_method = gating == 2 ? TOPK_NOAUX_TC : c->n_group > 1 ? TOPK_GROUP_LIMITED_GREEDY : TOPK_GREEDY;
    c->n_kv_heads = c->head_dim = 0;
    return 0;
}

/* llama, qwen2: head size from key_length (or D / H), rotary dims default to the whole head. */
static int read_dense(struct model_config *c, const struct gguf_set *g, const char *arch,
                      struct err *e)
{
    char key[128];
    int64_t hd = c->hidden_size % c->n_heads ? 0 : c->hidden_size / c->n_heads, vd = 0;
    snprintf(key, sizeof key, "%s.attention.key_length", arch);
    if (gguf_int(g, key, 1, 4096, !hd, &hd, e)) return -1;
    snprintf(key, sizeof key, "%s.attention.value_length", arch);
    vd = hd;
    if (gguf_int(g, key, 1, 4096, 0, &vd, e)) return -1;
    if (vd != hd) return err_set(e, "%s: value heads of %lld differ from key heads of %lld", arch,
                                 (long long)vd, (long long)hd);
    c->head_dim = c->v_head_dim = (int)hd;
    if (!c->n_kv_heads) c->n_kv_heads = c->n_heads;
    if (!c->qk_rope_head_dim) c->qk_rope_head_dim = c->head_dim;
    c->qk_nope_head_dim = c->head_dim - c->qk_rope_head_dim;
    c->rope_neox = c->arch == ARCH_QWEN2;
    c->qkv_bias = c->arch == ARCH_QWEN2;
    c->n_group = c->topk_group = c->moe_layer_freq = 1;
    return 0;
}

/* Vocabulary size and special ids from the tokenizer keys (vocab_size when present). */
static int read_vocab(struct model_config *c, const struct gguf_set *g, const char *arch,
                      struct err *e)
{
    char key[128];
    const struct gguf_kv *tokens;
    int64_t n = 0, bos = 0, eos = 0;
    if (gguf_array(g, "tokenizer.ggml.tokens", GGUF_STR, 0, 0, &tokens, e)) return -1;
    if (tokens) n = (int64_t)tokens->n;
    snprintf(key, sizeof key, "%s.vocab_size", arch);
    if (gguf_int(g, key, 1, 1 << 22, !tokens, &n, e)) return -1;
    if (n < 1 || n > 1 << 22) return err_set(e, "a vocabulary of %lld tokens", (long long)n);
    c->vocab_size = (int)n;
    if (gguf_int(g, "tokenizer.ggml.bos_token_id", 0, n - 1, 0, &bos, e) ||
        gguf_int(g, "tokenizer.ggml.eos_token_id", 0, n - 1, 0, &eos, e))
        return -1;
    c->bos_token_id = (int)bos, c->eos_token_id = (int)eos;
    return 0;
}

int gguf_config_read(struct model_config *c, const struct gguf_set *g, struct err *e)
{
    memset(c, 0, sizeof *c);
    char *arch = NULL;
    double eps = 1e-6;
    if (gguf_str(g, "general.architecture", 1, &arch, e)) return -1;
    int rc = 0;
    if (!strcmp(arch, "deepseek2")) c->arch = ARCH_DEEPSEEK_V3; /* V2 or V3: read_mla decides */
    else if (!strcmp(arch, "llama")) c->arch = ARCH_LLAMA;
    else if (!strcmp(arch, "qwen2")) c->arch = ARCH_QWEN2;
    else rc = err_set(e, "general.architecture \"%s\" is not supported (deepseek2, llama, qwen2)", arch);
    c->max_position_embeddings = 4096;
    if (!rc) rc = read_keys(c, g, arch, common_keys, e);
    if (!rc) rc = read_num(g, arch, "attention.layer_norm_rms_epsilon", 0.0, 1.0, &eps, e);
    if (!rc) rc = config_is_mla(c) ? read_mla(c, g, e) : read_dense(c, g, arch, e);
    if (!rc) rc = read_rope(c, g, arch, e);
    if (!rc) rc = read_vocab(c, g, arch, e);
    free(arch);
    if (rc) return -1;
    c->rms_norm_eps = (float)eps;
    return config_check(c, e);
}
