/* synth: the tensor list of a synthetic checkpoint, one anonymous mapping holding it, and its
 * fill from the hash on a few threads. */
#include "engine/model/synth.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#define SYNTH_PATH "synthetic seed "

enum { ALIGN = 256, CHUNK = 1 << 22 };

/* The tensor list being built: names, shapes, dtypes and offsets into the mapping. */
struct list {
    struct st_tensor *t;
    int n, cap;
    uint64_t bytes;
    int fp8;   /* projections in FP8 with 128×128 scale grids */
};

static void add(struct list *l, enum dtype dt, int64_t rows, int64_t cols, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

static void add(struct list *l, enum dtype dt, int64_t rows, int64_t cols, const char *fmt, ...)
{
    char name[256];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(name, sizeof name, fmt, ap);
    va_end(ap);
    if (l->n == l->cap) l->t = xrealloc(l->t, (size_t)(l->cap = l->cap ? 2 * l->cap : 256) * sizeof *l->t);
    struct st_tensor *t = &l->t[l->n++];
    int64_t n = rows ? rows * cols : cols;
    *t = (struct st_tensor){.dtype = dt, .n_dims = rows ? 2 : 1, .n_elems = n,
                            .nbytes = (size_t)n * dtype_size(dt)};
    t->name = xmalloc(strlen(name) + 1);
    memcpy(t->name, name, strlen(name) + 1);
    t->shape[0] = rows ? rows : cols, t->shape[1] = cols;
    uint64_t off = (l->bytes + ALIGN - 1) / ALIGN * ALIGN;
    t->data = (const void *)(uintptr_t)off; /* an offset until the mapping exists */
    l->bytes = off + t->nbytes;
}

/* A projection: FP8 with its scale grid, or BF16. */
static void proj(struct list *l, int64_t rows, int64_t cols, const char *name)
{
    if (!l->fp8) {
        add(l, DT_BF16, rows, cols, "%s", name);
        return;
    }
    add(l, DT_F8E4M3, rows, cols, "%s", name);
    add(l, DT_F32, (rows + 127) / 128, (cols + 127) / 128, "%s_scale_inv", name);
}

static void attention(struct list *l, const struct model_config *c, int il)
{
    int64_t D = c->hidden_size, H = c->n_heads, qk = config_qk_head_dim(c), dc = c->kv_lora_rank;
    char p[64], n[128];
    snprintf(p, sizeof p, "model.layers.%d", il);
    add(l, DT_BF16, 0, D, "%s.input_layernorm.weight", p);
    add(l, DT_BF16, 0, D, "%s.post_attention_layernorm.weight", p);
    if (c->q_lora_rank) {
        proj(l, c->q_lora_rank, D, (snprintf(n, sizeof n, "%s.self_attn.q_a_proj.weight", p), n));
        add(l, DT_BF16, 0, c->q_lora_rank, "%s.self_attn.q_a_layernorm.weight", p);
        proj(l, H * qk, c->q_lora_rank, (snprintf(n, sizeof n, "%s.self_attn.q_b_proj.weight", p), n));
    } else {
        proj(l, H * qk, D, (snprintf(n, sizeof n, "%s.self_attn.q_proj.weight", p), n));
    }
    proj(l, dc + c->qk_rope_head_dim, D, (snprintf(n, sizeof n, "%s.self_attn.kv_a_proj_with_mqa.weight", p), n));
    add(l, DT_BF16, 0, dc, "%s.self_attn.kv_a_layernorm.weight", p);
    proj(l, H * (c->qk_nope_head_dim + c->v_head_dim), dc,
         (snprintf(n, sizeof n, "%s.self_attn.kv_b_proj.weight", p), n));
    proj(l, D, H * c->v_head_dim, (snprintf(n, sizeof n, "%s.self_attn.o_proj.weight", p), n));
}

/* gate, up, down of an MLP of width F under prefix p. */
static void mlp(struct list *l, int64_t D, int64_t F, const char *p)
{
    char n[160];
    proj(l, F, D, (snprintf(n, sizeof n, "%s.gate_proj.weight", p), n));
    proj(l, F, D, (snprintf(n, sizeof n, "%s.up_proj.weight", p), n));
    proj(l, D, F, (snprintf(n, sizeof n, "%s.down_proj.weight", p), n));
}

static void ffn(struct list *l, const struct model_config *c, int il)
{
    int64_t D = c->hidden_size, F = c->moe_intermediate_size;
    char p[128];
    if (!config_layer_is_moe(c, il)) {
        snprintf(p, sizeof p, "model.layers.%d.mlp", il);
        mlp(l, D, c->intermediate_size, p);
        return;
    }
    add(l, DT_BF16, c->n_routed_experts, D, "model.layers.%d.mlp.gate.weight", il);
    if (c->topk_method == TOPK_NOAUX_TC)
        add(l, DT_F32, 0, c->n_routed_experts, "model.layers.%d.mlp.gate.e_score_correction_bias", il);
    for (int x = 0; x < c->n_routed_experts; x++) {
        snprintf(p, sizeof p, "model.layers.%d.mlp.experts.%d", il, x);
        mlp(l, D, F, p);
    }
    if (!c->n_shared_experts) return;
    snprintf(p, sizeof p, "model.layers.%d.mlp.shared_experts", il);
    mlp(l, D, F * c->n_shared_experts, p);
}

enum synth_kind synth_kind_of(const char *name, enum dtype t)
{
    size_t n = strlen(name);
    if (t == DT_F8E4M3) return SYNTH_FP8;
    if (n > 10 && strcmp(name + n - 10, "_scale_inv") == 0) return SYNTH_SCALE;
    if (strstr(name, "embed_tokens")) return SYNTH_EMBED;
    if (strstr(name, "e_score_correction_bias")) return SYNTH_BIAS;
    if (strstr(name, "norm.weight")) return SYNTH_NORM;
    return SYNTH_MATRIX;
}

void synth_fill(enum synth_kind k, uint64_t key, float gain, uint64_t i0, uint64_t i1, void *dst)
{
    for (uint64_t i = i0; i < i1; i++) {
        uint32_t v = synth_bits(k, key, i, gain);
        if (k == SYNTH_FP8) ((uint8_t *)dst)[i - i0] = (uint8_t)v;
        else if (k == SYNTH_SCALE || k == SYNTH_BIAS) memcpy((char *)dst + 4 * (i - i0), &v, 4);
        else {
            uint16_t h = (uint16_t)v;
            memcpy((char *)dst + 2 * (i - i0), &h, 2);
        }
    }
}

/* ---- filling on threads --------------------------------------------------------------------- */

struct fill_job {
    const struct st_set *st;
    uint64_t seed;
    int64_t *first;          /* [n_tensors + 1] first chunk of each tensor */
    atomic_llong next;       /* the next chunk to take */
};

/* The columns that set a tensor's gain: its own, or for a scale grid its weight's. */
static int64_t gain_cols(const struct st_set *st, const struct st_tensor *t)
{
    char name[256];
    size_t n = strlen(t->name);
    if (n <= 10 || n - 10 >= sizeof name || strcmp(t->name + n - 10, "_scale_inv") != 0)
        return t->shape[t->n_dims - 1];
    memcpy(name, t->name, n - 10), name[n - 10] = 0;
    const struct st_tensor *w = st_find(st, name);
    return w ? w->shape[1] : t->shape[1] * 128;
}

static void *fill_worker(void *arg)
{
    struct fill_job *j = arg;
    const struct st_set *st = j->st;
    for (;;) {
        int64_t c = atomic_fetch_add(&j->next, 1);
        if (c >= j->first[st->n_tensors]) return NULL;
        int ti = 0;
        while (j->first[ti + 1] <= c) ti++;
        const struct st_tensor *t = &st->tensors[ti];
        enum synth_kind k = synth_kind_of(t->name, t->dtype);
        uint64_t i0 = (uint64_t)(c - j->first[ti]) * CHUNK;
        uint64_t i1 = i0 + CHUNK < (uint64_t)t->n_elems ? i0 + CHUNK : (uint64_t)t->n_elems;
        size_t es = dtype_size(t->dtype);
        synth_fill(k, synth_key(j->seed, t->name), synth_gain(k, gain_cols(st, t)), i0, i1,
                   (char *)(uintptr_t)t->data + i0 * es);
    }
}

static void fill_all(const struct st_set *st, uint64_t seed, int threads)
{
    struct fill_job j = {.st = st, .seed = seed};
    j.first = xcalloc((size_t)st->n_tensors + 1, sizeof *j.first);
    for (int i = 0; i < st->n_tensors; i++)
        j.first[i + 1] = j.first[i] + (st->tensors[i].n_elems + CHUNK - 1) / CHUNK;
    atomic_init(&j.next, 0);
    if (threads <= 0) threads = (int)sysconf(_SC_NPROCESSORS_ONLN);
    if (threads > 64) threads = 64;
    pthread_t tid[64];
    int n = 0;
    for (; n < threads - 1; n++)
        if (pthread_create(&tid[n], NULL, fill_worker, &j) != 0) break;
    fill_worker(&j);
    for (int i = 0; i < n; i++) pthread_join(tid[i], NULL);
    free(j.first);
}

/* ---- the model ------------------------------------------------------------------------------ */

/* The tensor list in a fresh anonymous mapping (reserved, not yet touched). */
static int make_set(const struct model_config *c, uint64_t seed, struct st_set *st, struct err *e)
{
    struct list l = {.fp8 = c->fp8_block_rows > 0};
    if (l.fp8 && (c->fp8_block_rows != 128 || c->fp8_block_cols != 128))
        return err_set(e, "synthetic models use 128x128 FP8 blocks (the config says %dx%d)",
                       c->fp8_block_rows, c->fp8_block_cols);
    add(&l, DT_BF16, c->vocab_size, c->hidden_size, "model.embed_tokens.weight");
    add(&l, DT_BF16, 0, c->hidden_size, "model.norm.weight");
    add(&l, DT_BF16, c->vocab_size, c->hidden_size, "lm_head.weight");
    for (int il = 0; il < c->n_layers; il++) attention(&l, c, il), ffn(&l, c, il);
    void *map = mmap(NULL, l.bytes ? l.bytes : 1, PROT_READ | PROT_WRITE,
                     MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
    if (map == MAP_FAILED) {
        for (int i = 0; i < l.n; i++) free(l.t[i].name);
        free(l.t);
        return err_set(e, "cannot reserve %.2f GiB for the synthetic weights",
                       (double)l.bytes / (1 << 30));
    }
    *st = (struct st_set){.n_files = 1, .n_tensors = l.n, .tensors = l.t};
    st->files = xcalloc(1, sizeof *st->files);
    st->files[0].path = xmalloc(64);
    snprintf(st->files[0].path, 64, SYNTH_PATH "%llu", (unsigned long long)seed);
    st->files[0].map = map, st->files[0].size = l.bytes ? l.bytes : 1;
    for (int i = 0; i < l.n; i++) {
        st->tensors[i].data = (char *)map + (uintptr_t)st->tensors[i].data;
        st->n_bytes += st->tensors[i].nbytes;
    }
    return st_finish(st, e);
}

struct model *synth_load(const char *config_path, uint64_t seed, int fill, int threads,
                         struct err *e)
{
    struct model_config c;
    struct st_set st = {0};
    if (config_load(&c, config_path, e) != 0) return NULL;
    if (make_set(&c, seed, &st, e) != 0) {
        st_close(&st);
        return NULL;
    }
    if (fill) fill_all(&st, seed, threads);
    struct model *m = model_bind(&c, &st, NULL, e);
    if (!m) err_prefix(e, "%s", config_path);
    return m;
}

int synth_is(const struct model *m, uint64_t *seed)
{
    unsigned long long s;
    if (m->st.n_files != 1 || strncmp(m->st.files[0].path, SYNTH_PATH, strlen(SYNTH_PATH)) != 0)
        return 0;
    if (sscanf(m->st.files[0].path + strlen(SYNTH_PATH), "%llu", &s) != 1) return 0;
    if (seed) *seed = s;
    return 1;
}
