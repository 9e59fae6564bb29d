/* vocab: the tokenizer's vocabulary as a byte trie, for walking every token at once.
 *
 * Built from the public tokenizer API only (tok_bytes, tok_is_added), so any tokenizer seekd
 * loads works. Added (control) tokens are left out of the trie: a grammar reaches them only
 * through explicit token terminals. Nodes are stored in preorder, so a subtree is a contiguous
 * range and the tokens ending in it are a contiguous range of toks. Ids at or above the
 * tokenizer's size (padding rows of the model's vocabulary) are never allowed. */
#ifndef SEEKD_GRAMMAR_VOCAB_H
#define SEEKD_GRAMMAR_VOCAB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "engine/text/tokenizer.h"

struct gv {
    const struct tok *tok;
    int32_t n_vocab;    /* mask width in tokens: the model's vocabulary */
    int32_t n_nodes;    /* node 0 is the root (depth 0, no byte) */
    uint8_t *byte;      /* [n_nodes] the byte leading into the node */
    uint16_t *depth;    /* [n_nodes] */
    int32_t *end;       /* [n_nodes] first node after the subtree */
    int32_t *tok_first; /* [n_nodes + 1] toks[tok_first[i] .. tok_first[i+1]) end at node i */
    int32_t *toks;      /* [n_toks] token ids in trie order */
    int32_t n_toks;
    int32_t max_len;  /* longest token in bytes */
    uint8_t *special; /* [n_vocab] 1: an added token, reachable only by token edges */
};

/* NULL when the vocabulary is empty. n_vocab: the model's (>= the tokenizer's). */
struct gv *gv_create(const struct tok *t, int32_t n_vocab);
void gv_destroy(struct gv *v);

static inline int32_t gv_words(const struct gv *v)
{
    return (v->n_vocab + 63) / 64;
}

/* The bytes of token id (NULL for a special or unknown one). */
const uint8_t *gv_bytes(const struct gv *v, int32_t id, size_t *len);

#endif
