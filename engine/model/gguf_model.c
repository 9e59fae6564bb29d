/* gguf_model: binds a GGUF model's tensors to the layer structs by llama.cpp's names.
 *
 * ggml shapes are written innermost first: a matrix of `rows` outputs over `cols` inputs is
 * ne = [cols, rows], exactly the row-major [rows, cols] a struct weight describes. deepseek2
 * comes in both of llama.cpp's layouts: the legacy attn_kv_b (HF's kv_b_proj) or the split
 * attn_k_b [dn, dc, H] (each head's W_UKᵀ) and attn_v_b [dc, dv, H] (each head's W_UV). Routed
 * experts are stacked 3-D tensors [cols, rows, E]: expert x is the x-th contiguous slab, bound
 * in place; a fused ffn_gate_up_exps holds each expert's gate rows, then its up rows. */
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/model/model_internal.h"

/* "[a, b, c]" of a tensor's ggml shape, for messages. */
static void shape_text(const struct gguf_tensor *t, char *buf, size_t n)
{
    buf[0] = 0;
    for (int i = 0; i < t->n_dims; i++)
        snprintf(buf + strlen(buf), n - strlen(buf), "%s%lld", i ? ", " : "", (long long)t->ne[i]);
}

/* The tensor named by fmt if present with ggml shape ne[0..n_dims); NULL (and b->failed set)
 * when misshapen, or when absent and required. */
static struct gguf_tensor *find(struct binder *b, int required, int n_dims, const int64_t *ne,
                                const char *fmt, va_list ap)
{
    char name[256];
    vsnprintf(name, sizeof name, fmt, ap);
    if (b->failed) return NULL;
    struct gguf_tensor *t = gguf_tensor(&b->m->gguf, name);
    if (!t) {
        if (required) b->failed = err_set(b->e, "tensor '%s' is missing", name);
        return NULL;
    }
    int ok = t->n_dims == n_dims;
    for (int i = 0; ok && i < n_dims; i++) ok = t->ne[i] == ne[i];
    if (!ok) {
        char got[96], want[96] = "";
        shape_text(t, got, sizeof got);
        for (int i = 0; i < n_dims; i++)
            snprintf(want + strlen(want), sizeof want - strlen(want), "%s%lld", i ? ", " : "",
                     (long long)ne[i]);
        b->failed = err_set(b->e, "tensor '%s': shape [%s], expected [%s]", name, got, want);
        return NULL;
    }
    t->used = 1;
    b->status.n_tensors++;
    b->status.n_bytes += t->nbytes;
    return t;
}

static struct weight weight_of(const struct gguf_tensor *t, int64_t rows, int64_t cols)
{
    return (struct weight){.name = t->name, .dtype = t->dtype, .rows = rows, .cols = cols, .data = t->data};
}

/* A [rows, cols] matrix (rows 0: a vector of cols); returns whether it was there. */
static int bind_opt(struct binder *b, int required, struct weight *w, int64_t rows, int64_t cols,
                    const char *fmt, ...) __attribute__((format(printf, 6, 7)));
static int bind_opt(struct binder *b, int required, struct weight *w, int64_t rows, int64_t cols,
                    const char *fmt, ...)
{
    int64_t ne[2] = {cols, rows};
    va_list ap;
    va_start(ap, fmt);
    struct gguf_tensor *t = find(b, required, rows ? 2 : 1, ne, fmt, ap);
    va_end(ap);
    if (t) *w = weight_of(t, rows ? rows : 1, cols);
    return t != NULL;
}
#define bind(b, w, rows, cols, ...) bind_opt(b, 1, w, rows, cols, __VA_ARGS__)

/* A 3-D [cols, rows, n] tensor as n consecutive [rows, cols] matrices (w[0..n)), or as one
 * [n * rows, cols] matrix when w_all is given. */
static int bind_3d(struct binder *b, int required, struct weight *w, struct weight *w_all,
                   int64_t n, int64_t rows, int64_t cols, const char *fmt, ...)
    __attribute__((format(printf, 8, 9)));
static int bind_3d(struct binder *b, int required, struct weight *w, struct weight *w_all,
                   int64_t n, int64_t rows, int64_t cols, const char *fmt, ...)
{
    int64_t ne[3] = {cols, rows, n};
    va_list ap;
    va_start(ap, fmt);
    struct gguf_tensor *t = find(b, required, 3, ne, fmt, ap);
    va_end(ap);
    if (!t) return 0;
    if (w_all) *w_all = weight_of(t, n * rows, cols);
    for (int64_t x = 0; w && x < n; x++) {
        w[x] = weight_of(t, rows, cols);
        w[x].data = (const uint8_t *)t->data + (size_t)x * (size_t)rows * dtype_row_bytes(t->dtype, cols);
    }
    return 1;
}

/* Routed experts (stacked), router, its bias, shared experts. */
static void bind_moe(struct binder *b, struct layer *L, int il)
{
    const struct model_config *c = &b->m->cfg;
    int64_t D = c->hidden_size, F = c->moe_intermediate_size, E = c->n_routed_experts;
    int64_t S = F * c->n_shared_experts;
    bind(b, &L->router, E, D, "blk.%d.ffn_gate_inp.weight", il);
    bind_opt(b, 0, &L->router_bias, 0, E, "blk.%d.exp_probs_b.bias", il);
    L->exp_gate = xcalloc((size_t)E, sizeof *L->exp_gate);
    L->exp_up = xcalloc((size_t)E, sizeof *L->exp_up);
    L->exp_down = xcalloc((size_t)E, sizeof *L->exp_down);
    struct weight *gate_up = xcalloc((size_t)E, sizeof *gate_up);
    if (bind_3d(b, 0, gate_up, NULL, E, 2 * F, D, "blk.%d.ffn_gate_up_exps.weight", il)) {
        for (int64_t x = 0; x < E; x++) {
            L->exp_gate[x] = L->exp_up[x] = gate_up[x];
            L->exp_gate[x].rows = L->exp_up[x].rows = F;
            L->exp_up[x].data = (const uint8_t *)gate_up[x].data + (size_t)F * dtype_row_bytes(gate_up[x].dtype, D);
        }
    } else {
        bind_3d(b, 1, L->exp_gate, NULL, E, F, D, "blk.%d.ffn_gate_exps.weight", il);
        bind_3d(b, 1, L->exp_up, NULL, E, F, D, "blk.%d.ffn_up_exps.weight", il);
    }
    free(gate_up);
    bind_3d(b, 1, L->exp_down, NULL, E, D, F, "blk.%d.ffn_down_exps.weight", il);
    if (!S) return;
    bind(b, &L->sh_gate, S, D, "blk.%d.ffn_gate_shexp.weight", il);
    bind(b, &L->sh_up, S, D, "blk.%d.ffn_up_shexp.weight", il);
    bind(b, &L->sh_down, D, S, "blk.%d.ffn_down_shexp.weight", il);
}

/* Multi-head latent attention, either layout. */
static void bind_mla(struct binder *b, struct layer *L, int il)
{
    const struct model_config *c = &b->m->cfg;
    int64_t D = c->hidden_size, H = c->n_heads, dc = c->kv_lora_rank, dn = c->qk_nope_head_dim;
    int64_t qk = config_qk_head_dim(c), dv = c->v_head_dim;
    if (c->q_lora_rank) {
        bind(b, &L->q_a, c->q_lora_rank, D, "blk.%d.attn_q_a.weight", il);
        bind(b, &L->q_a_norm, 0, c->q_lora_rank, "blk.%d.attn_q_a_norm.weight", il);
        bind(b, &L->q_b, H * qk, c->q_lora_rank, "blk.%d.attn_q_b.weight", il);
    } else {
        bind(b, &L->q, H * qk, D, "blk.%d.attn_q.weight", il);
    }
    bind(b, &L->kv_a, dc + c->qk_rope_head_dim, D, "blk.%d.attn_kv_a_mqa.weight", il);
    bind(b, &L->kv_a_norm, 0, dc, "blk.%d.attn_kv_a_norm.weight", il);
    if (!bind_opt(b, 0, &L->kv_b, H * (dn + dv), dc, "blk.%d.attn_kv_b.weight", il)) {
        bind_3d(b, 1, NULL, &L->k_b, H, dc, dn, "blk.%d.attn_k_b.weight", il);
        bind_3d(b, 1, NULL, &L->v_b, H, dv, dc, "blk.%d.attn_v_b.weight", il);
    }
    bind(b, &L->o, D, H * dv, "blk.%d.attn_output.weight", il);
}

/* Dense GQA attention; biases are required by qwen2 and taken when present otherwise. */
static void bind_gqa(struct binder *b, struct layer *L, int il)
{
    const struct model_config *c = &b->m->cfg;
    int64_t D = c->hidden_size, Q = (int64_t)c->n_heads * c->head_dim;
    int64_t KV = (int64_t)c->n_kv_heads * c->head_dim;
    int need = c->qkv_bias;
    bind(b, &L->q, Q, D, "blk.%d.attn_q.weight", il);
    bind(b, &L->k, KV, D, "blk.%d.attn_k.weight", il);
    bind(b, &L->v, KV, D, "blk.%d.attn_v.weight", il);
    bind(b, &L->o, D, Q, "blk.%d.attn_output.weight", il);
    bind_opt(b, need, &L->q_bias, 0, Q, "blk.%d.attn_q.bias", il);
    bind_opt(b, need, &L->k_bias, 0, KV, "blk.%d.attn_k.bias", il);
    bind_opt(b, need, &L->v_bias, 0, KV, "blk.%d.attn_v.bias", il);
    bind_opt(b, 0, &L->o_bias, 0, D, "blk.%d.attn_output.bias", il);
}

static void bind_layer(struct binder *b, struct layer *L, int il)
{
    const struct model_config *c = &b->m->cfg;
    int64_t D = c->hidden_size, I = c->intermediate_size;
    bind(b, &L->attn_norm, 0, D, "blk.%d.attn_norm.weight", il);
    bind(b, &L->ffn_norm, 0, D, "blk.%d.ffn_norm.weight", il);
    if (config_is_mla(c)) bind_mla(b, L, il);
    else bind_gqa(b, L, il);
    L->is_moe = config_layer_is_moe(c, il);
    if (L->is_moe) {
        bind_moe(b, L, il);
        return;
    }
    bind(b, &L->gate, I, D, "blk.%d.ffn_gate.weight", il);
    bind(b, &L->up, I, D, "blk.%d.ffn_up.weight", il);
    bind(b, &L->down, D, I, "blk.%d.ffn_down.weight", il);
}

/* Tensors of the MTP layers stored after the decoder layers, which the forward pass skips. */
static int is_mtp(const struct model_config *c, const char *name)
{
    int il;
    if (sscanf(name, "blk.%d.", &il) != 1) return 0;
    return il >= c->n_layers && il < c->n_layers + c->n_nextn_layers;
}

static int check_leftovers(struct binder *b)
{
    const struct gguf_set *g = &b->m->gguf;
    for (int i = 0; i < g->n_tensors; i++)
        if (!g->tensors[i].used && !is_mtp(&b->m->cfg, g->tensors[i].name))
            return err_set(b->e, "%s: unexpected tensor '%s'", g->files[g->tensors[i].file].path,
                           g->tensors[i].name);
    return 0;
}

int gguf_model_bind(struct binder *b)
{
    struct model *m = b->m;
    struct model_config *c = &m->cfg;
    int64_t V = c->vocab_size, D = c->hidden_size;
    bind(b, &m->embed, V, D, "token_embd.weight");
    bind(b, &m->norm, 0, D, "output_norm.weight");
    c->tie_embeddings = !bind_opt(b, 0, &m->lm_head, V, D, "output.weight");
    if (c->tie_embeddings) m->lm_head = m->embed;
    if (bind_opt(b, 0, &m->rope_freqs, 0, c->qk_rope_head_dim / 2, "rope_freqs.weight") &&
        m->rope_freqs.dtype != DT_F32)
        b->failed = err_set(b->e, "tensor 'rope_freqs.weight' must be F32");
    m->layers = xcalloc((size_t)c->n_layers, sizeof *m->layers);
    for (int il = 0; il < c->n_layers && !b->failed; il++) {
        bind_layer(b, &m->layers[il], il);
        model_report(b, "binding");
    }
    if (b->failed) return -1;
    return check_leftovers(b);
}
