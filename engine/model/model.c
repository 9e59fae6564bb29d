/* model: opens a checkpoint (a Hugging Face directory or a GGUF file) and binds safetensors
 * tensors to the layer structs by their Hugging Face names (GGUF: gguf_model.c). */
#include "engine/model/model.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "engine/model/model_internal.h"

void model_report(struct binder *b, const char *stage)
{
    if (!b->progress || !b->progress->fn) return;
    b->status.stage = stage;
    b->progress->fn(b->progress->arg, &b->status);
}

/* Counts a newly bound tensor for the progress reports. */
static void count(struct binder *b, const struct st_tensor *t)
{
    b->status.n_tensors++;
    b->status.n_bytes += t->nbytes;
}

static int64_t ceil_div(int64_t a, int64_t b)
{
    return (a + b - 1) / b;
}

/* Checks the FP8 companion "<name>_scale_inv" and points w->scale at it. */
static int bind_scale(struct binder *b, struct weight *w, const char *name)
{
    const struct model_config *c = &b->m->cfg;
    char sname[256];
    snprintf(sname, sizeof sname, "%s_scale_inv", name);
    struct st_tensor *s = st_find(&b->m->st, sname);
    w->block_rows = c->fp8_block_rows ? c->fp8_block_rows : 128;
    w->block_cols = c->fp8_block_cols ? c->fp8_block_cols : 128;
    int64_t r = ceil_div(w->rows, w->block_rows), k = ceil_div(w->cols, w->block_cols);
    if (!s) return err_set(b->e, "tensor \"%s\" is FP8 but \"%s\" is missing", name, sname);
    if (s->dtype != DT_F32) return err_set(b->e, "tensor \"%s\": dtype %s, expected F32", sname, dtype_name(s->dtype));
    int64_t sr = s->n_dims == 2 ? s->shape[0] : -1, sc = s->n_dims == 2 ? s->shape[1] : -1;
    if (sr != r || sc != k)
        return err_set(b->e, "tensor \"%s\": shape [%lld, %lld], expected [%lld, %lld]", sname,
                       (long long)sr, (long long)sc, (long long)r, (long long)k);
    s->used = 1;
    count(b, s);
    w->scale = s->data;
    return 0;
}

/* Binds one tensor by name; rows == 0 means a vector of cols elements. fp8_ok: matrices only. */
static void bind(struct binder *b, struct weight *w, int64_t rows, int64_t cols, int fp8_ok,
                 const char *fmt, ...) __attribute__((format(printf, 6, 7)));

static void bind(struct binder *b, struct weight *w, int64_t rows, int64_t cols, int fp8_ok,
                 const char *fmt, ...)
{
    if (b->failed) return;
    char name[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(name, sizeof name, fmt, ap);
    va_end(ap);
    struct st_tensor *t = st_find(&b->m->st, name);
    int is_vec = rows == 0;
    if (!t) {
        b->failed = err_set(b->e, "tensor \"%s\" is missing", name);
        return;
    }
    int ok = is_vec ? t->n_dims == 1 && t->shape[0] == cols
                    : t->n_dims == 2 && t->shape[0] == rows && t->shape[1] == cols;
    if (!ok) {
        char got[128] = "";
        for (int i = 0; i < t->n_dims; i++)
            snprintf(got + strlen(got), sizeof got - strlen(got), "%s%lld", i ? ", " : "",
                     (long long)t->shape[i]);
        if (is_vec) b->failed = err_set(b->e, "tensor \"%s\": shape [%s], expected [%lld]", name, got, (long long)cols);
        else b->failed = err_set(b->e, "tensor \"%s\": shape [%s], expected [%lld, %lld]", name, got, (long long)rows, (long long)cols);
        return;
    }
    if (t->dtype == DT_F8E4M3 && !fp8_ok) {
        b->failed = err_set(b->e, "tensor \"%s\": FP8 is not supported for this tensor", name);
        return;
    }
    t->used = 1;
    count(b, t);
    *w = (struct weight){.name = t->name, .dtype = t->dtype, .rows = is_vec ? 1 : rows,
                         .cols = cols, .data = t->data};
    if (t->dtype == DT_F8E4M3 && bind_scale(b, w, name) != 0) b->failed = -1;
}

static void bind_attention(struct binder *b, struct layer *L, int il)
{
    const struct model_config *c = &b->m->cfg;
    int64_t D = c->hidden_size, H = c->n_heads, dc = c->kv_lora_rank;
    int64_t qk = config_qk_head_dim(c), dv = c->v_head_dim;
    const char *p = "model.layers";
    if (c->q_lora_rank) {
        bind(b, &L->q_a, c->q_lora_rank, D, 1, "%s.%d.self_attn.q_a_proj.weight", p, il);
        bind(b, &L->q_a_norm, 0, c->q_lora_rank, 0, "%s.%d.self_attn.q_a_layernorm.weight", p, il);
        bind(b, &L->q_b, H * qk, c->q_lora_rank, 1, "%s.%d.self_attn.q_b_proj.weight", p, il);
    } else {
        bind(b, &L->q, H * qk, D, 1, "%s.%d.self_attn.q_proj.weight", p, il);
    }
    bind(b, &L->kv_a, dc + c->qk_rope_head_dim, D, 1, "%s.%d.self_attn.kv_a_proj_with_mqa.weight", p, il);
    bind(b, &L->kv_a_norm, 0, dc, 0, "%s.%d.self_attn.kv_a_layernorm.weight", p, il);
    bind(b, &L->kv_b, H * (c->qk_nope_head_dim + dv), dc, 1, "%s.%d.self_attn.kv_b_proj.weight", p, il);
    bind(b, &L->o, D, H * dv, 1, "%s.%d.self_attn.o_proj.weight", p, il);
}

static void bind_moe(struct binder *b, struct layer *L, int il)
{
    const struct model_config *c = &b->m->cfg;
    int64_t D = c->hidden_size, F = c->moe_intermediate_size, E = c->n_routed_experts;
    const char *p = "model.layers";
    bind(b, &L->router, E, D, 0, "%s.%d.mlp.gate.weight", p, il);
    if (c->topk_method == TOPK_NOAUX_TC)
        bind(b, &L->router_bias, 0, E, 0, "%s.%d.mlp.gate.e_score_correction_bias", p, il);
    L->exp_gate = xcalloc((size_t)E, sizeof *L->exp_gate);
    L->exp_up = xcalloc((size_t)E, sizeof *L->exp_up);
    L->exp_down = xcalloc((size_t)E, sizeof *L->exp_down);
    for (int x = 0; x < E; x++) {
        bind(b, &L->exp_gate[x], F, D, 1, "%s.%d.mlp.experts.%d.gate_proj.weight", p, il, x);
        bind(b, &L->exp_up[x], F, D, 1, "%s.%d.mlp.experts.%d.up_proj.weight", p, il, x);
        bind(b, &L->exp_down[x], D, F, 1, "%s.%d.mlp.experts.%d.down_proj.weight", p, il, x);
    }
    if (c->n_shared_experts) {
        int64_t S = F * c->n_shared_experts;
        bind(b, &L->sh_gate, S, D, 1, "%s.%d.mlp.shared_experts.gate_proj.weight", p, il);
        bind(b, &L->sh_up, S, D, 1, "%s.%d.mlp.shared_experts.up_proj.weight", p, il);
        bind(b, &L->sh_down, D, S, 1, "%s.%d.mlp.shared_experts.down_proj.weight", p, il);
    }
}

/* llama / qwen2: q, k, v, o projections, biases where the config says. */
static void bind_dense_attention(struct binder *b, struct layer *L, int il)
{
    const struct model_config *c = &b->m->cfg;
    int64_t D = c->hidden_size, Q = (int64_t)c->n_heads * c->head_dim;
    int64_t KV = (int64_t)c->n_kv_heads * c->head_dim;
    const char *p = "model.layers";
    bind(b, &L->q, Q, D, 1, "%s.%d.self_attn.q_proj.weight", p, il);
    bind(b, &L->k, KV, D, 1, "%s.%d.self_attn.k_proj.weight", p, il);
    bind(b, &L->v, KV, D, 1, "%s.%d.self_attn.v_proj.weight", p, il);
    bind(b, &L->o, D, Q, 1, "%s.%d.self_attn.o_proj.weight", p, il);
    if (c->qkv_bias) {
        bind(b, &L->q_bias, 0, Q, 0, "%s.%d.self_attn.q_proj.bias", p, il);
        bind(b, &L->k_bias, 0, KV, 0, "%s.%d.self_attn.k_proj.bias", p, il);
        bind(b, &L->v_bias, 0, KV, 0, "%s.%d.self_attn.v_proj.bias", p, il);
    }
    if (c->o_bias) bind(b, &L->o_bias, 0, D, 0, "%s.%d.self_attn.o_proj.bias", p, il);
}

static void bind_layer(struct binder *b, struct layer *L, int il)
{
    const struct model_config *c = &b->m->cfg;
    int64_t D = c->hidden_size, I = c->intermediate_size;
    bind(b, &L->attn_norm, 0, D, 0, "model.layers.%d.input_layernorm.weight", il);
    bind(b, &L->ffn_norm, 0, D, 0, "model.layers.%d.post_attention_layernorm.weight", il);
    if (config_is_mla(c)) bind_attention(b, L, il);
    else bind_dense_attention(b, L, il);
    L->is_moe = config_layer_is_moe(c, il);
    if (L->is_moe) {
        bind_moe(b, L, il);
        return;
    }
    bind(b, &L->gate, I, D, 1, "model.layers.%d.mlp.gate_proj.weight", il);
    bind(b, &L->up, I, D, 1, "model.layers.%d.mlp.up_proj.weight", il);
    bind(b, &L->down, D, I, 1, "model.layers.%d.mlp.down_proj.weight", il);
}

/* Tensors of the multi-token-prediction layers (model.layers.N.. after the last decoder layer)
 * are present in real checkpoints and not used by the forward pass. */
static int is_mtp_tensor(const struct model_config *c, const char *name)
{
    int il;
    if (sscanf(name, "model.layers.%d.", &il) != 1) return 0;
    return il >= c->n_layers && il < c->n_layers + c->n_nextn_layers;
}

static int check_leftovers(struct binder *b)
{
    const struct st_set *s = &b->m->st;
    for (int i = 0; i < s->n_tensors; i++) {
        const struct st_tensor *t = &s->tensors[i];
        if (!t->used && !is_mtp_tensor(&b->m->cfg, t->name))
            return err_set(b->e, "%s: unexpected tensor \"%s\"", s->files[t->file].path, t->name);
    }
    return 0;
}

/* Names the file the failing tensor lives in, when there is one. */
static int bind_all(struct binder *b)
{
    const struct model_config *c = &b->m->cfg;
    int64_t V = c->vocab_size, D = c->hidden_size;
    bind(b, &b->m->embed, V, D, 0, "model.embed_tokens.weight");
    bind(b, &b->m->norm, 0, D, 0, "model.norm.weight");
    struct st_tensor *head = st_find(&b->m->st, "lm_head.weight");
    if (c->tie_embeddings) {
        b->m->lm_head = b->m->embed; /* a stored copy, if any, is the same matrix */
        if (head) head->used = 1;
    } else {
        bind(b, &b->m->lm_head, V, D, 0, "lm_head.weight");
    }
    b->m->layers = xcalloc((size_t)c->n_layers, sizeof *b->m->layers);
    for (int il = 0; il < c->n_layers && !b->failed; il++) {
        bind_layer(b, &b->m->layers[il], il);
        model_report(b, "binding");
    }
    if (b->failed) return -1;
    return check_leftovers(b);
}

struct model *model_load(const char *path, struct err *e)
{
    return model_load_progress(path, NULL, e);
}

/* config.json + safetensors in dir. */
static struct model *load_hf(const char *dir, const struct load_progress *p, struct err *e)
{
    struct model_config c;
    struct st_set st = {0};
    char path[4096];
    snprintf(path, sizeof path, "%s/config.json", dir);
    if (config_load(&c, path, e) != 0 || st_open_dir(&st, dir, e) != 0) {
        st_close(&st);
        return NULL;
    }
    struct model *m = model_bind(&c, &st, p, e);
    if (!m) err_prefix(e, "%s", dir);
    return m;
}

/* A GGUF file (or a split set): metadata, then tensors by llama.cpp's names. */
static struct model *load_gguf(const char *path, const struct load_progress *p, struct err *e)
{
    struct model *m = xcalloc(1, sizeof *m);
    struct binder b = {.m = m, .e = e, .progress = p};
    if (gguf_open(&m->gguf, path, e) != 0) goto fail;
    if (gguf_config_read(&m->cfg, &m->gguf, e) != 0) goto fail_prefixed;
    b.status.n_tensors_total = m->gguf.n_tensors;
    b.status.n_bytes_total = m->gguf.n_bytes;
    model_report(&b, "mapping");
    if (gguf_model_bind(&b) != 0) goto fail_prefixed;
    model_report(&b, "done");
    return m;
fail_prefixed:
    err_prefix(e, "%s", path);
fail:
    model_destroy(m);
    return NULL;
}

struct model *model_load_progress(const char *path, const struct load_progress *p, struct err *e)
{
    struct stat st;
    if (stat(path, &st) == 0 && S_ISDIR(st.st_mode)) return load_hf(path, p, e);
    if (gguf_is_gguf(path)) return load_gguf(path, p, e);
    if (stat(path, &st) != 0) err_set(e, "%s: no such file or directory", path);
    else err_set(e, "%s: neither a checkpoint directory (config.json + safetensors) nor a GGUF file", path);
    return NULL;
}

struct model *model_bind(const struct model_config *c, struct st_set *st,
                         const struct load_progress *p, struct err *e)
{
    struct model *m = xcalloc(1, sizeof *m);
    m->cfg = *c, m->st = *st;
    *st = (struct st_set){0};
    struct binder b = {.m = m, .e = e, .progress = p};
    b.status.n_tensors_total = m->st.n_tensors;
    b.status.n_bytes_total = m->st.n_bytes;
    model_report(&b, "mapping");
    if (bind_all(&b) != 0) {
        model_destroy(m);
        return NULL;
    }
    model_report(&b, "done");
    return m;
}

uint64_t model_bytes(const struct model *m)
{
    return m->st.n_bytes + m->gguf.n_bytes;
}

int model_is_quantised(const struct model *m)
{
    for (int i = 0; i < m->gguf.n_tensors; i++)
        if (dtype_is_quant(m->gguf.tensors[i].dtype)) return 1;
    return 0;
}

void model_destroy(struct model *m)
{
    if (!m) return;
    for (int il = 0; m->layers && il < m->cfg.n_layers; il++) {
        free(m->layers[il].exp_gate);
        free(m->layers[il].exp_up);
        free(m->layers[il].exp_down);
    }
    free(m->layers);
    st_close(&m->st);
    gguf_close(&m->gguf);
    free(m);
}
