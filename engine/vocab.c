/* vocab: tokenizer.json from a directory, or tokenizer.ggml.* from a GGUF model. */
#include "engine/vocab.h"

#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

static struct tok *from_dir(const char *dir, struct err *e)
{
    char tj[4096], tc[4096];
    snprintf(tj, sizeof tj, "%s/tokenizer.json", dir);
    snprintf(tc, sizeof tc, "%s/tokenizer_config.json", dir);
    return tok_load(tj, access(tc, R_OK) == 0 ? tc : NULL, e);
}

/* A token id key: -1 when absent. */
static int id_key(const struct gguf_set *g, const char *key, int64_t n, int32_t *out, struct err *e)
{
    int64_t v = -1;
    if (gguf_int(g, key, 0, n - 1, 0, &v, e)) return -1;
    *out = (int32_t)v;
    return 0;
}

/* The arrays and keys of tokenizer.ggml.*, checked, in v (pointers into the mapping). */
static int read_vocab(const struct gguf_set *g, struct tok_vocab *v, int32_t **types,
                      char *strs[3], struct err *e)
{
    const struct gguf_kv *tokens, *merges, *ttype;
    int add_bos = -1, add_eos = -1;
    if (gguf_array(g, "tokenizer.ggml.tokens", GGUF_STR, 0, 1, &tokens, e) ||
        gguf_array(g, "tokenizer.ggml.merges", GGUF_STR, 0, 0, &merges, e) ||
        gguf_array(g, "tokenizer.ggml.token_type", GGUF_I32, tokens->n, 0, &ttype, e) ||
        gguf_str(g, "tokenizer.ggml.model", 1, &strs[0], e) ||
        gguf_str(g, "tokenizer.ggml.pre", 0, &strs[1], e) ||
        gguf_str(g, "tokenizer.chat_template", 0, &strs[2], e) ||
        gguf_bool(g, "tokenizer.ggml.add_bos_token", &add_bos, e) ||
        gguf_bool(g, "tokenizer.ggml.add_eos_token", &add_eos, e))
        return -1;
    if (tokens->n > (1 << 24)) return err_set(e, "tokenizer.ggml.tokens holds %llu tokens", (unsigned long long)tokens->n);
    int64_t n = (int64_t)tokens->n;
    *v = (struct tok_vocab){.n = (int32_t)n, .text = (const char *const *)tokens->strs,
                            .len = (const size_t *)tokens->str_len, .model = strs[0], .pre = strs[1],
                            .chat_template = strs[2], .add_bos = add_bos, .add_eos = add_eos};
    if (merges) {
        v->n_merges = (int64_t)merges->n;
        v->merges = (const char *const *)merges->strs;
        v->merge_len = (const size_t *)merges->str_len;
    }
    if (ttype) {
        *types = xmalloc((size_t)n * sizeof **types);
        for (int64_t i = 0; i < n; i++) (*types)[i] = (int32_t)gguf_arr_int(ttype, (uint64_t)i);
        v->type = *types;
    }
    return id_key(g, "tokenizer.ggml.bos_token_id", n, &v->bos, e) ||
                   id_key(g, "tokenizer.ggml.eos_token_id", n, &v->eos, e) ||
                   id_key(g, "tokenizer.ggml.eot_token_id", n, &v->eot, e)
               ? -1
               : 0;
}

struct tok *vocab_from_gguf(const struct gguf_set *g, const char *pre, struct err *e)
{
    _Static_assert(sizeof(size_t) == sizeof(uint64_t), "string lengths are read in place");
    struct tok_vocab v;
    int32_t *types = NULL;
    char *strs[3] = {NULL, NULL, NULL};
    struct tok *t = NULL;
    if (read_vocab(g, &v, &types, strs, e) == 0) {
        if (pre) v.pre = pre;
        t = tok_load_vocab(&v, e);
    }
    free(types);
    for (int i = 0; i < 3; i++) free(strs[i]);
    if (!t) err_prefix(e, "%s", g->files[0].path);
    return t;
}

struct tok *vocab_load(const struct model *m, const char *model_path, const char *tokenizer_dir,
                       struct err *e)
{
    if (tokenizer_dir && tokenizer_dir[0]) return from_dir(tokenizer_dir, e);
    if (m->gguf.n_files) return vocab_from_gguf(&m->gguf, NULL, e);
    return from_dir(model_path, e);
}
