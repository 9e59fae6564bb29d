/* config: config.json → struct model_config, with bounds on every value. DeepSeek (MLA + MoE)
 * and the dense llama / qwen2 decoders have their own key tables; the cross-field checks are
 * shared with the GGUF reader (config_check). */
#include "engine/model/config.h"

#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "engine/file.h"

struct int_key {
    const char *key;
    size_t offset;
    int lo, hi;
    int required;
    int dflt;
};

#define K(name, field, lo, hi, req, dflt) {name, offsetof(struct model_config, field), lo, hi, req, dflt}
static const struct int_key mla_keys[] = {
    K("vocab_size", vocab_size, 1, 1 << 22, 1, 0),
    K("hidden_size", hidden_size, 1, 1 << 16, 1, 0),
    K("num_hidden_layers", n_layers, 1, 1024, 1, 0),
    K("num_nextn_predict_layers", n_nextn_layers, 0, 16, 0, 0),
    K("num_attention_heads", n_heads, 1, 1024, 1, 0),
    K("q_lora_rank", q_lora_rank, 0, 1 << 16, 0, 0),
    K("kv_lora_rank", kv_lora_rank, 1, 1 << 16, 1, 0),
    K("qk_nope_head_dim", qk_nope_head_dim, 1, 4096, 1, 0),
    K("qk_rope_head_dim", qk_rope_head_dim, 2, 4096, 1, 0),
    K("v_head_dim", v_head_dim, 1, 4096, 1, 0),
    K("intermediate_size", intermediate_size, 1, 1 << 20, 1, 0),
    K("n_routed_experts", n_routed_experts, 0, 1 << 14, 0, 0),
    K("n_shared_experts", n_shared_experts, 0, 64, 0, 0),
    K("moe_intermediate_size", moe_intermediate_size, 0, 1 << 20, 0, 0),
    K("num_experts_per_tok", n_experts_per_tok, 0, 1 << 10, 0, 0),
    K("n_group", n_group, 1, 1 << 10, 0, 1),
    K("topk_group", topk_group, 1, 1 << 10, 0, 1),
    K("first_k_dense_replace", first_k_dense_replace, 0, 1024, 0, 0),
    K("moe_layer_freq", moe_layer_freq, 1, 1024, 0, 1),
    K("max_position_embeddings", max_position_embeddings, 1, 1 << 24, 0, 4096),
    K("bos_token_id", bos_token_id, 0, 1 << 22, 0, 0),
    K("eos_token_id", eos_token_id, 0, 1 << 22, 0, 1),
    {NULL, 0, 0, 0, 0, 0},
};
static const struct int_key dense_keys[] = {
    K("vocab_size", vocab_size, 1, 1 << 22, 1, 0),
    K("hidden_size", hidden_size, 1, 1 << 16, 1, 0),
    K("num_hidden_layers", n_layers, 1, 1024, 1, 0),
    K("num_attention_heads", n_heads, 1, 1024, 1, 0),
    K("num_key_value_heads", n_kv_heads, 0, 1024, 0, 0),
    K("head_dim", head_dim, 0, 4096, 0, 0),
    K("intermediate_size", intermediate_size, 1, 1 << 20, 1, 0),
    K("max_position_embeddings", max_position_embeddings, 1, 1 << 24, 0, 4096),
    K("bos_token_id", bos_token_id, 0, 1 << 22, 0, 0),
    K("eos_token_id", eos_token_id, 0, 1 << 22, 0, 1),
    {NULL, 0, 0, 0, 0, 0},
};
#undef K

/* Reads the integer keys of a table; JSON null means "absent" (q_lora_rank: null). A list of
 * ids (Llama 3.1's eos_token_id) gives its first. */
static int read_ints(struct model_config *c, const struct int_key *keys, json_t *root, struct err *e)
{
    for (const struct int_key *k = keys; k->key; k++) {
        int *dst = (int *)((char *)c + k->offset);
        json_t *v = json_object_get(root, k->key);
        if (json_is_array(v) && json_array_size(v) && strstr(k->key, "token_id")) v = json_array_get(v, 0);
        if (!v || json_is_null(v)) {
            if (k->required) return err_set(e, "missing \"%s\"", k->key);
            *dst = k->dflt;
            continue;
        }
        if (!json_is_integer(v)) return err_set(e, "\"%s\" must be an integer", k->key);
        json_int_t x = json_integer_value(v);
        if (x < k->lo || x > k->hi)
            return err_set(e, "\"%s\" is %lld, outside [%d, %d]", k->key, (long long)x, k->lo,
                           k->hi);
        *dst = (int)x;
    }
    return 0;
}

/* A number key (integer or real) with a default and bounds. */
static int read_num(json_t *obj, const char *key, double dflt, double lo, double hi, double *out,
                    struct err *e)
{
    json_t *v = json_object_get(obj, key);
    if (!v || json_is_null(v)) {
        *out = dflt;
        return 0;
    }
    if (!json_is_number(v)) return err_set(e, "\"%s\" must be a number", key);
    *out = json_number_value(v);
    if (!(*out >= lo && *out <= hi)) return err_set(e, "\"%s\" is %g, outside [%g, %g]", key, *out, lo, hi);
    return 0;
}

static int read_enum(json_t *root, const char *key, const char *const *names, int n, int dflt,
                     int *out, struct err *e)
{
    json_t *v = json_object_get(root, key);
    if (!v || json_is_null(v)) {
        *out = dflt;
        return 0;
    }
    const char *s = json_string_value(v);
    for (int i = 0; s && i < n; i++)
        if (strcmp(s, names[i]) == 0) {
            *out = i;
            return 0;
        }
    return err_set(e, "\"%s\" has an unsupported value", key);
}

/* rope_scaling (transformers 4.x) or rope_parameters (5.x): plain RoPE or YaRN. */
static int read_rope(struct model_config *c, json_t *root, struct err *e)
{
    json_t *rs = json_object_get(root, "rope_scaling");
    json_t *rp = json_object_get(root, "rope_parameters");
    if (read_num(root, "rope_theta", 10000.0, 1.0, 1e12, &c->rope_theta, e)) return -1;
    if (json_is_object(rp)) {
        if (read_num(rp, "rope_theta", c->rope_theta, 1.0, 1e12, &c->rope_theta, e)) return -1;
        if (!json_is_object(rs)) rs = rp;
    }
    if (!rs || json_is_null(rs)) return 0;
    if (!json_is_object(rs)) return err_set(e, "\"rope_scaling\" must be an object or null");
    const char *type = json_string_value(json_object_get(rs, "type"));
    if (!type) type = json_string_value(json_object_get(rs, "rope_type"));
    if (!type || strcmp(type, "default") == 0) return 0;
    double orig;
    if (!strcmp(type, "linear")) {
        c->rope_linear = 1;
        return read_num(rs, "factor", 1.0, 1.0, 1e6, &c->rope_factor, e) ? err_prefix(e, "rope_scaling") : 0;
    }
    if (!strcmp(type, "llama3")) {
        c->rope_llama3 = 1;
        if (read_num(rs, "factor", 1.0, 1.0, 1e6, &c->rope_factor, e) ||
            read_num(rs, "low_freq_factor", 1.0, 1e-6, 1e6, &c->rope_low_freq, e) ||
            read_num(rs, "high_freq_factor", 4.0, 1e-6, 1e6, &c->rope_high_freq, e) ||
            read_num(rs, "original_max_position_embeddings", 8192, 1, 1 << 24, &orig, e))
            return err_prefix(e, "rope_scaling");
        if (c->rope_high_freq <= c->rope_low_freq)
            return err_set(e, "rope_scaling: high_freq_factor must exceed low_freq_factor");
        c->rope_orig_max_pos = (int)orig;
        return 0;
    }
    if (strcmp(type, "yarn") != 0)
        return err_set(e, "rope scaling type \"%s\" is not supported (yarn, linear, llama3)", type);
    c->rope_yarn = 1;
    if (read_num(rs, "factor", 1.0, 1.0, 1e6, &c->rope_factor, e) ||
        read_num(rs, "original_max_position_embeddings", c->max_position_embeddings, 1, 1 << 24,
                 &orig, e) ||
        read_num(rs, "beta_fast", 32.0, 0.0, 1e6, &c->rope_beta_fast, e) ||
        read_num(rs, "beta_slow", 1.0, 0.0, 1e6, &c->rope_beta_slow, e) ||
        read_num(rs, "mscale", 0.0, 0.0, 100.0, &c->rope_mscale, e) ||
        read_num(rs, "mscale_all_dim", 0.0, 0.0, 100.0, &c->rope_mscale_all_dim, e))
        return err_prefix(e, "rope_scaling");
    c->rope_orig_max_pos = (int)orig;
    return 0;
}

static int read_quant(struct model_config *c, json_t *root, struct err *e)
{
    json_t *q = json_object_get(root, "quantization_config");
    if (!q || json_is_null(q)) return 0;
    const char *method = json_string_value(json_object_get(q, "quant_method"));
    if (!method || strcmp(method, "fp8") != 0)
        return err_set(e, "quantization_config.quant_method must be \"fp8\"");
    const char *fmt = json_string_value(json_object_get(q, "fmt"));
    if (fmt && strcmp(fmt, "e4m3") != 0)
        return err_set(e, "quantization_config.fmt \"%s\" is not supported (only e4m3)", fmt);
    json_t *bs = json_object_get(q, "weight_block_size");
    json_t *r = json_array_get(bs, 0), *cc = json_array_get(bs, 1);
    if (json_array_size(bs) != 2 || !json_is_integer(r) || !json_is_integer(cc) ||
        json_integer_value(r) < 1 || json_integer_value(r) > 65536 ||
        json_integer_value(cc) < 1 || json_integer_value(cc) > 65536)
        return err_set(e, "quantization_config.weight_block_size must be [rows, cols]");
    c->fp8_block_rows = (int)json_integer_value(r);
    c->fp8_block_cols = (int)json_integer_value(cc);
    return 0;
}

static int read_moe(struct model_config *c, json_t *root, struct err *e)
{
    static const char *const scorings[] = {"softmax", "sigmoid"};
    static const char *const methods[] = {"greedy", "group_limited_greedy", "noaux_tc"};
    int v3 = c->arch == ARCH_DEEPSEEK_V3, s, m;
    double f;
    if (read_enum(root, "scoring_func", scorings, 2, v3 ? SCORE_SIGMOID : SCORE_SOFTMAX, &s, e) ||
        read_enum(root, "topk_method", methods, 3, v3 ? TOPK_NOAUX_TC : TOPK_GREEDY, &m, e) ||
        read_num(root, "routed_scaling_factor", 1.0, 0.0, 1e4, &f, e))
        return -1;
    c->scoring = (enum score_fn)s;
    c->topk_method = (enum topk_method)m;
    c->routed_scaling_factor = (float)f;
    json_t *n = json_object_get(root, "norm_topk_prob");
    c->norm_topk_prob = json_is_true(n);
    return 0;
}

/* The routed experts, their groups and the top-k agree with each other. */
static int check_moe(const struct model_config *c, struct err *e)
{
    if (!c->n_routed_experts) return 0;
    if (!c->moe_intermediate_size || !c->n_experts_per_tok)
        return err_set(e, "MoE needs moe_intermediate_size and num_experts_per_tok");
    if (c->n_experts_per_tok > c->n_routed_experts)
        return err_set(e, "num_experts_per_tok %d exceeds n_routed_experts %d",
                       c->n_experts_per_tok, c->n_routed_experts);
    if (c->n_routed_experts % c->n_group || c->topk_group > c->n_group)
        return err_set(e, "n_group %d / topk_group %d do not divide %d experts", c->n_group,
                       c->topk_group, c->n_routed_experts);
    if (c->topk_group * (c->n_routed_experts / c->n_group) < c->n_experts_per_tok)
        return err_set(e, "topk_group %d groups hold fewer than num_experts_per_tok experts",
                       c->topk_group);
    return 0;
}

int config_check(const struct model_config *c, struct err *e)
{
    if (c->qk_rope_head_dim % 2 || c->qk_rope_head_dim < 2)
        return err_set(e, "the rotary dimension %d must be even and at least 2", c->qk_rope_head_dim);
    if (c->first_k_dense_replace > c->n_layers)
        return err_set(e, "first_k_dense_replace %d exceeds num_hidden_layers %d",
                       c->first_k_dense_replace, c->n_layers);
    if (c->bos_token_id >= c->vocab_size || c->eos_token_id >= c->vocab_size)
        return err_set(e, "bos/eos token id outside the vocabulary");
    if (config_is_mla(c)) return check_moe(c, e);
    if (c->n_kv_heads < 1 || c->n_heads % c->n_kv_heads)
        return err_set(e, "%d attention heads are not a multiple of %d key/value heads", c->n_heads,
                       c->n_kv_heads);
    if (c->qk_rope_head_dim > c->head_dim)
        return err_set(e, "the rotary dimension %d exceeds the head size %d", c->qk_rope_head_dim,
                       c->head_dim);
    return 0;
}

/* llama / qwen2: GQA attention, SwiGLU MLP, RoPE on whole heads (rotate_half pairing). */
static int parse_dense(struct model_config *c, json_t *root, struct err *e)
{
    if (read_ints(c, dense_keys, root, e)) return -1;
    if (!c->n_kv_heads) c->n_kv_heads = c->n_heads;
    if (!c->head_dim) {
        if (c->hidden_size % c->n_heads)
            return err_set(e, "hidden_size %d is not a multiple of %d heads", c->hidden_size, c->n_heads);
        c->head_dim = c->hidden_size / c->n_heads;
    }
    double partial;
    if (read_num(root, "partial_rotary_factor", 1.0, 0.0, 1.0, &partial, e)) return -1;
    if (partial != 1.0) return err_set(e, "partial_rotary_factor %g is not supported", partial);
    if (json_is_true(json_object_get(root, "mlp_bias"))) return err_set(e, "mlp_bias true is not supported");
    if (json_is_true(json_object_get(root, "use_sliding_window")))
        return err_set(e, "use_sliding_window true is not supported");
    int bias = json_is_true(json_object_get(root, "attention_bias"));
    c->qkv_bias = c->arch == ARCH_QWEN2 || bias;
    c->o_bias = bias;
    c->qk_rope_head_dim = c->head_dim;
    c->v_head_dim = c->head_dim;
    c->rope_neox = 1;
    c->tie_embeddings = json_is_true(json_object_get(root, "tie_word_embeddings"));
    c->n_group = c->topk_group = c->moe_layer_freq = 1;
    return 0;
}

static int parse_mla(struct model_config *c, json_t *root, struct err *e)
{
    if (read_ints(c, mla_keys, root, e) || read_quant(c, root, e) || read_moe(c, root, e)) return -1;
    if (json_is_true(json_object_get(root, "tie_word_embeddings")))
        return err_set(e, "tie_word_embeddings true is not supported");
    return 0;
}

static int parse(struct model_config *c, json_t *root, struct err *e)
{
    if (!json_is_object(root)) return err_set(e, "not a JSON object");
    const char *type = json_string_value(json_object_get(root, "model_type"));
    if (!type) return err_set(e, "missing \"model_type\"");
    if (strcmp(type, "deepseek_v3") == 0) c->arch = ARCH_DEEPSEEK_V3;
    else if (strcmp(type, "deepseek_v2") == 0) c->arch = ARCH_DEEPSEEK_V2;
    else if (strcmp(type, "llama") == 0) c->arch = ARCH_LLAMA;
    else if (strcmp(type, "qwen2") == 0) c->arch = ARCH_QWEN2;
    else
        return err_set(e, "model_type \"%s\" is not supported (deepseek_v3, deepseek_v2, llama, qwen2)",
                       type);
    double eps;
    if ((config_is_mla(c) ? parse_mla(c, root, e) : parse_dense(c, root, e)) ||
        read_num(root, "rms_norm_eps", 1e-6, 0.0, 1.0, &eps, e) || read_rope(c, root, e))
        return -1;
    c->rms_norm_eps = (float)eps;
    const char *act = json_string_value(json_object_get(root, "hidden_act"));
    if (act && strcmp(act, "silu") != 0) return err_set(e, "hidden_act \"%s\" is not supported", act);
    return config_check(c, e);
}

json_t *config_json(const char *path, size_t max, struct err *e)
{
    json_error_t je;
    size_t len;
    char *text = file_read(path, max, &len, e);
    if (!text) return NULL;
    json_t *root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &je);
    free(text);
    if (!root) err_set(e, "%s: %s (line %d)", path, je.text, je.line);
    return root;
}

int config_load(struct model_config *c, const char *path, struct err *e)
{
    memset(c, 0, sizeof *c);
    json_t *root = config_json(path, 16u << 20, e);
    if (!root) return -1;
    int rc = parse(c, root, e);
    json_decref(root);
    return rc ? err_prefix(e, "%s", path) : 0;
}

int config_layer_is_moe(const struct model_config *c, int il)
{
    return c->n_routed_experts > 0 && il >= c->first_k_dense_replace &&
           il % c->moe_layer_freq == 0;
}
