/* batch: what one forward step computes — the contract between the scheduler and a backend.
 *
 * A step holds several sequences; each contributes a contiguous run of tokens: a prefill chunk
 * (many tokens) or a decode token (one). A sequence's tokens sit at positions
 * pos0 .. pos0+n_tokens-1; positions 0..pos0-1 are already in the KV cache. The step writes the
 * new tokens' latents into the cache slots named by the block table, then attends over
 * positions 0..pos0+n_tokens-1. */
#ifndef SEEKD_BATCH_H
#define SEEKD_BATCH_H

#include <stdint.h>

#include "engine/err.h"

enum batch_logits {
    BATCH_LOGITS_NONE = 0, /* a prefill chunk that is not the prompt's last */
    BATCH_LOGITS_LAST = 1, /* the usual case: logits of the sequence's last token */
    BATCH_LOGITS_ALL = 2,  /* every token (seekd logits, prompt logprobs) */
};

struct batch_seq {
    int32_t start;              /* index of the sequence's first token in batch.tokens */
    int32_t n_tokens;           /* >= 1 */
    int32_t pos0;               /* tokens of this sequence already in the KV cache */
    const int32_t *block_table; /* [ceil((pos0 + n_tokens) / block_size)] block ids */
    enum batch_logits logits;
};

struct batch {
    int32_t n_tokens;
    const int32_t *tokens; /* [n_tokens] token ids, sequences back to back */
    int32_t n_seqs;
    const struct batch_seq *seqs; /* [n_seqs], in token order */
};

/* Rows of logits the batch asks for (sum over its sequences). */
int batch_n_logits(const struct batch *b);

/* The limits a backend was built for; batch_check refuses anything outside them. */
struct batch_limits {
    int32_t vocab_size;  /* token ids must be below this */
    int32_t n_blocks;    /* block ids must be below this */
    int32_t block_size;  /* tokens per KV block */
    int32_t max_tokens;  /* tokens per step */
    int32_t max_logits;  /* rows of logits per step */
};

/* Checks everything a batch could get wrong before a backend touches memory: token ids, the
 * tiling of sequences, block ids for every position, the step's size. -1 with a message. */
int batch_check(const struct batch *b, const struct batch_limits *lim, struct err *e);

#endif
