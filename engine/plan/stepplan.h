/* stepplan: what a device needs to know about one step, computed on the host in plain C — every
 * token's position, RoPE angles and cache slot, the sequences' block tables back to back, and
 * the rows that want logits — packed into one buffer so that a GPU backend uploads a step with a
 * single copy. Indexing lives here, tested on the CPU; kernels only follow the arrays.
 *
 * A cache slot is a row index within one layer of the paged cache:
 * block_table[pos / block_size] * block_size + pos % block_size, the same rows the CPU's
 * kv_cache uses, so a block id means the same thing on every backend. */
#ifndef SEEKD_STEPPLAN_H
#define SEEKD_STEPPLAN_H

#include <stddef.h>
#include <stdint.h>

#include "engine/batch.h"
#include "engine/model/rope.h"

/* Byte offsets of each array inside the packed buffer (each 256-byte aligned; the block tables
 * last, so that a buffer laid out for capacities is uploaded up to the tables it uses). */
struct sp_layout {
    size_t tokens;     /* int32 [T] token ids */
    size_t pos;        /* int32 [T] position of each token in its sequence */
    size_t slot;       /* int32 [T] cache row (within a layer) the token's latent goes to */
    size_t table_off;  /* int32 [T] where its sequence's block table starts in tables */
    size_t logit_rows; /* int32 [n_logits] token index of each logits row, batch order */
    size_t cos, sin;   /* float [T][n_pairs] rope_angles of each token's position */
    size_t tables;     /* int32 [n_table] every sequence's block table, in batch order */
    size_t bytes;      /* the whole buffer */
    size_t used;       /* bytes up to the end of the tables this step uses */
};

/* Fixed capacities for the layout (a CUDA graph's arrays must not move between steps). */
struct sp_caps {
    int32_t tokens, logits, table;
};

struct sp_plan {
    int32_t n_tokens, n_seqs, n_logits;
    int32_t n_table;   /* entries in tables */
    int32_t max_ctx;   /* the longest context a token attends over (pos + 1) */
    int n_pairs;       /* RoPE pairs per token */
    struct sp_layout at;
    unsigned char *buf; /* [at.bytes] the packed arrays (owned, grown as needed) */
    size_t cap;         /* bytes allocated in buf */
};

/* Fills the plan for a batch that passed batch_check with this block size. */
void sp_build(struct sp_plan *p, const struct batch *b, int block_size, const struct rope *r);

/* The same, laid out for the capacities (>= the batch's needs), so the offsets are the same
 * for every batch within them. */
void sp_build_caps(struct sp_plan *p, const struct batch *b, int block_size, const struct rope *r,
                   const struct sp_caps *caps);

/* The plan's arrays, typed (pointers into buf, valid until the next sp_build). */
static inline int32_t *sp_i32(const struct sp_plan *p, size_t off)
{
    return (int32_t *)(void *)(p->buf + off);
}
static inline float *sp_f32(const struct sp_plan *p, size_t off)
{
    return (float *)(void *)(p->buf + off);
}

void sp_free(struct sp_plan *p);

#endif
