/* tokenizer_internal: the layout of struct tok, shared by tokenizer.c (encode/decode) and
 * tokenizer_load.c (tokenizer.json reading).  Not for use outside the tokenizer. */
#ifndef SEEKD_TOKENIZER_INTERNAL_H
#define SEEKD_TOKENIZER_INTERNAL_H

#define PCRE2_CODE_UNIT_WIDTH 8
#include "engine/text/tokenizer.h"

#include <pcre2.h>

enum {
    TOK_F_ASSIGNED = 1, /* the id exists */
    TOK_F_ADDED = 2,    /* an added token (matched atomically when specials are parsed) */
    TOK_F_SPECIAL = 4,  /* flagged special: dropped by skip_special_tokens */
};

#define TOK_MAX_SPLITS 8

/* A byte trie of added-token texts (first-child / next-sibling lists; node 0 is the root). */
struct tok_trie_node {
    int32_t child, sibling;
    int32_t added; /* index into tok.added of the token ending here, or -1 */
    uint8_t byte;
};
struct tok_trie {
    struct tok_trie_node *nodes;
    int32_t n_nodes, cap;
    bool first[256]; /* bytes some token starts with: positions to try */
};

struct tok_added {
    char *text;
    size_t len;
    int32_t id;
    bool special, lstrip, rstrip, normalized;
};

enum tok_split_behavior { TOK_SPLIT_ISOLATED, TOK_SPLIT_REMOVED };

struct tok_split {
    pcre2_code *re;
    enum tok_split_behavior behavior;
};

struct tok {
    int32_t n_vocab;    /* highest id + 1 */
    uint32_t *piece_off; /* [n_vocab + 1] offsets into pieces */
    uint8_t *pieces;     /* the bytes each id decodes to, back to back */
    uint8_t *flags;      /* [n_vocab] TOK_F_* */
    int32_t byte_id[256]; /* the token of each single byte */

    /* BPE merges: open addressing, key (left id << 32 | right id), value (rank << 32 | new id) */
    uint64_t *merge_key, *merge_val;
    size_t merge_cap; /* power of two */
    bool ignore_merges;
    int32_t *word_slot; /* [word_cap] model-vocab ids hashed by their bytes (ignore_merges) */
    size_t word_cap;

    struct tok_added *added;
    int32_t n_added;
    struct tok_trie raw_trie, norm_trie; /* non-normalized / normalized added tokens */

    struct tok_split splits[TOK_MAX_SPLITS];
    int n_splits;

    int32_t bos_id, eos_id;
    int32_t eot_id;     /* end of a turn (<|im_end|>, <|eot_id|>, ...): generation stops; -1 */
    bool add_bos, add_eos;
    char *chat_template;
};

#define TOK_MERGE_EMPTY UINT64_MAX

/* ---- builders shared by the two loaders (tokenizer_load.c: tokenizer.json; tokenizer_gguf.c:
 * a GGUF vocabulary) ---- */

/* The GPT-2 byte -> code point table, inverted: byte_of[cp] for cp < 324, or -1. */
void tokb_byte_level_inverse(int16_t byte_of[324]);
/* Bytes the n-byte token string s decodes to: the byte-level mapping when every character is in
 * the alphabet, else the string's own UTF-8 (what the HF ByteLevel decoder does). */
size_t tokb_token_bytes(const char *s, size_t n, const int16_t byte_of[324], uint8_t *out);
/* The merge table, sized for n merges; then one entry per merge. */
void tokb_merges_alloc(struct tok *t, size_t n);
void tokb_merge_put(struct tok *t, uint64_t key, uint64_t val);
void tokb_trie_insert(struct tok_trie *tr, const char *s, size_t n, int32_t added);
/* Appends a Split step (a regex in Oniguruma syntax, rewritten for PCRE2, or a literal). */
int tokb_add_split(struct tok *t, const char *pattern, bool literal,
                   enum tok_split_behavior behavior, size_t step, struct err *e);
/* Sets eot_id from the added tokens' texts when no file said (llama.cpp's list). */
void tokb_find_eot(struct tok *t);

static inline size_t tok_hash64(uint64_t k, size_t cap)
{
    return (size_t)((k * 0x9E3779B97F4A7C15ull) >> 17) & (cap - 1);
}

/* FNV-1a over bytes: the word table's hash. */
static inline uint64_t tok_hash_bytes(const uint8_t *s, size_t n)
{
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < n; i++) h = (h ^ s[i]) * 0x100000001b3ull;
    return h;
}

static inline const uint8_t *tok_piece(const struct tok *t, int32_t id, size_t *len)
{
    *len = t->piece_off[id + 1] - t->piece_off[id];
    return t->pieces + t->piece_off[id];
}

#endif
