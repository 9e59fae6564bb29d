/* graphplan: which decode steps a GPU backend replays as captured CUDA graphs, and how a step is
 * padded to its graph's size — host-side plain C, tested on the CPU.
 *
 * A graph is captured per batch-size bucket (1, 2, 4, 8, 16, 24, ..., 64, 80, 96, 112, 128, 160,
 * 192, 224, 256, capped by the largest batch the backend serves; that cap is a bucket too). A step
 * runs a graph when every sequence decodes one token and there are at most as many sequences as
 * the largest bucket; it takes the smallest bucket that holds it. Rows past the step's own are
 * padding: token 0 at position 0, their latent written to and read from the reserved null block
 * (the pool's block n_blocks, never given to a sequence), no logits. Every kernel treats rows
 * independently, so padding never changes a real row. */
#ifndef SEEKD_GRAPHPLAN_H
#define SEEKD_GRAPHPLAN_H

#include <stdint.h>

#include "engine/batch.h"

enum { GP_MAX_BUCKETS = 32 };

struct gp_buckets {
    int n;
    int size[GP_MAX_BUCKETS]; /* ascending */
};

/* The buckets up to max_bs (>= 1; at most 256 are planned, beyond that steps run eagerly). */
void gp_buckets(int max_bs, struct gp_buckets *b);

/* The bucket a step replays, or 0 when it runs eagerly (a prefill chunk in it, or too many
 * sequences). */
int gp_bucket_for(const struct gp_buckets *b, const struct batch *bt);

/* A decode step padded to a bucket: its own batch plus padding rows. */
struct gp_padded {
    struct batch batch;
    struct batch_seq *seqs;  /* [bucket] */
    int32_t *tokens;         /* [bucket] */
    int32_t null_table[1];   /* the padding rows' block table: the null block */
    int cap;
};

/* Pads bt (a step gp_bucket_for accepted) to `bucket` rows; null_block: the reserved block id.
 * The result's arrays belong to p (grown as needed) and point into bt's block tables. */
void gp_pad(const struct batch *bt, int bucket, int32_t null_block, struct gp_padded *p);

void gp_padded_free(struct gp_padded *p);

#endif
