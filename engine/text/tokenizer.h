/* tokenizer: Hugging Face tokenizer.json (byte-level BPE) loading, encoding and decoding.
 *
 * Produces the same ids as HF `tokenizers` for the DeepSeek V3/R1 (and V2) tokenizers: added
 * tokens matched in the raw text (only when asked: user text never becomes control tokens by
 * default), a Sequence of Split regexes run with PCRE2 (UTF, UCP, JIT), the byte-level alphabet
 * and rank-ordered BPE merges.  Decoding follows the ByteLevel decoder, with invalid UTF-8 shown
 * as U+FFFD; tok_stream decodes one id at a time for streaming.  A loaded struct tok is
 * read-only, so any number of threads may encode and decode with it at once. */
#ifndef SEEKD_TOKENIZER_H
#define SEEKD_TOKENIZER_H

#include "engine/err.h"

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct tok;

/* A growable array of token ids; zero-initialise, append with tok_ids_push, free with
 * tok_ids_free. */
struct tok_ids {
    int32_t *v;
    size_t n, cap;
};

/* A growable, always NUL-terminated byte string (decoded text). */
struct tok_text {
    char *s;
    size_t n, cap;
};

enum tok_encode_flags {
    TOK_PARSE_SPECIAL = 1u << 0, /* match added tokens (<｜User｜>, ...) in the text, like HF */
    TOK_ADD_SPECIAL = 1u << 1,   /* prepend BOS / append EOS as tokenizer_config.json says */
};

/* A vocabulary as a GGUF file stores it (tokenizer.ggml.*); strings need not be NUL-terminated. */
struct tok_vocab {
    int32_t n;                        /* tokens */
    const char *const *text;          /* [n] token texts (the byte-level alphabet for vocabulary
                                       * tokens, plain UTF-8 for control / user-defined ones) */
    const size_t *len;                /* [n] their lengths */
    const int32_t *type;              /* [n] 1 normal, 2 unknown, 3 control, 4 user-defined,
                                       * 5 unused, 6 byte; NULL: all normal */
    int64_t n_merges;
    const char *const *merges;        /* [n_merges] "a b", in rank order */
    const size_t *merge_len;
    const char *model;                /* tokenizer.ggml.model: only "gpt2" (byte-level BPE) */
    const char *pre;                  /* tokenizer.ggml.pre: llama.cpp's pre-tokenizer name */
    int32_t bos, eos, eot;            /* special ids, -1 when absent */
    int add_bos, add_eos;             /* 0/1, or -1: the pre-tokenizer's default */
    const char *chat_template;        /* NULL when absent */
};

/* Rebuilds a tokenizer from a GGUF vocabulary; encodes as llama.cpp does for that pre-tokenizer
 * (deepseek-v3, deepseek-llm, deepseek-r1-qwen, qwen2, llama-bpe, smollm, gpt2, ...). NULL with a
 * message naming the key on anything it cannot honour. */
struct tok *tok_load_vocab(const struct tok_vocab *v, struct err *e);

/* Loads tokenizer.json and (optionally, NULL to skip) tokenizer_config.json.  NULL on error, with
 * a message naming the file and the part that cannot be honoured. */
struct tok *tok_load(const char *tokenizer_json, const char *config_json, struct err *e);
/* The same from in-memory JSON texts (config may be NULL). */
struct tok *tok_load_str(const char *tokenizer_json, const char *config_json, struct err *e);
void tok_destroy(struct tok *t);

/* Encodes len bytes of UTF-8 text, appending ids to out.  Returns 0, or -1 (invalid UTF-8) with
 * out unchanged. */
int tok_encode(const struct tok *t, const char *text, size_t len, unsigned flags,
               struct tok_ids *out, struct err *e);

/* Appends the text of ids to out (invalid UTF-8 becomes U+FFFD).  -1 on an unknown id. */
int tok_decode(const struct tok *t, const int32_t *ids, size_t n_ids, bool skip_special,
               struct tok_text *out, struct err *e);

/* Incremental detokenizer: push ids one at a time, get only complete UTF-8 back. */
struct tok_stream {
    const struct tok *tok;
    bool skip_special;
    uint8_t pending[4]; /* the start of a character whose remaining bytes have not arrived */
    size_t n_pending;
};
void tok_stream_init(struct tok_stream *s, const struct tok *t, bool skip_special);
/* Appends the newly completed text to out; -1 on an unknown id. */
int tok_stream_push(struct tok_stream *s, int32_t id, struct tok_text *out, struct err *e);
/* End of stream: a character left incomplete becomes U+FFFD. */
void tok_stream_flush(struct tok_stream *s, struct tok_text *out);

/* Lookups.  tok_added_id: the id of an added token by its exact text, or -1. */
int32_t tok_added_id(const struct tok *t, const char *content);
int32_t tok_n_vocab(const struct tok *t);    /* highest id + 1 */
int32_t tok_bos_id(const struct tok *t);     /* -1 when not configured */
int32_t tok_eos_id(const struct tok *t);     /* -1 when not configured */
int32_t tok_eot_id(const struct tok *t);     /* end of a turn (<|im_end|>, <|eot_id|>, ...), -1 */
bool tok_is_special(const struct tok *t, int32_t id);
/* The most bytes one id decodes to (its text is at most 3x that: U+FFFD for stray bytes). */
size_t tok_max_piece_bytes(const struct tok *t);
/* An added (control) token: matched atomically, never produced by BPE from plain text. */
bool tok_is_added(const struct tok *t, int32_t id);
/* The raw bytes id decodes to (an added token: its text), *len set; NULL for an id outside the
 * vocabulary or one that was never assigned.  Valid while t lives.  Constrained decoding walks
 * the vocabulary through this, whatever file the tokenizer came from. */
const uint8_t *tok_bytes(const struct tok *t, int32_t id, size_t *len);
/* The chat_template text from tokenizer_config.json, or NULL. */
const char *tok_chat_template(const struct tok *t);

void tok_ids_push(struct tok_ids *a, int32_t id);
void tok_ids_free(struct tok_ids *a);
void tok_text_free(struct tok_text *s);
/* Appends n bytes of s (NUL-terminated again). */
void tok_text_append(struct tok_text *t, const char *s, size_t n);

#endif
