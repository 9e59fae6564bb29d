/* graphplan: decode buckets and padding to them. */
#include "engine/plan/graphplan.h"

#include <stdlib.h>

#include "engine/err.h"

enum { GP_LARGEST = 256 };

void gp_buckets(int max_bs, struct gp_buckets *b)
{
    static const int all[] = {1,  2,  4,  8,  16, 24,  32,  40,  48,  56,
                              64, 80, 96, 112, 128, 160, 192, 224, 256};
    int cap = max_bs < GP_LARGEST ? max_bs : GP_LARGEST;
    b->n = 0;
    for (size_t i = 0; i < sizeof all / sizeof all[0] && all[i] <= cap; i++) b->size[b->n++] = all[i];
    if (cap >= 1 && (b->n == 0 || b->size[b->n - 1] < cap)) b->size[b->n++] = cap;
}

int gp_bucket_for(const struct gp_buckets *b, const struct batch *bt)
{
    if (bt->n_seqs < 1 || bt->n_tokens != bt->n_seqs) return 0;
    for (int s = 0; s < bt->n_seqs; s++)
        if (bt->seqs[s].n_tokens != 1) return 0;
    for (int i = 0; i < b->n; i++)
        if (b->size[i] >= bt->n_seqs) return b->size[i];
    return 0;
}

void gp_pad(const struct batch *bt, int bucket, int32_t null_block, struct gp_padded *p)
{
    if (bucket < bt->n_seqs) ERR_FATAL("gp_pad: %d sequences into a bucket of %d", bt->n_seqs, bucket);
    if (bucket > p->cap) {
        free(p->seqs), free(p->tokens);
        p->seqs = xcalloc((size_t)bucket, sizeof *p->seqs);
        p->tokens = xcalloc((size_t)bucket, sizeof *p->tokens);
        p->cap = bucket;
    }
    p->null_table[0] = null_block;
    for (int s = 0; s < bucket; s++) {
        if (s < bt->n_seqs) {
            p->seqs[s] = bt->seqs[s];
            p->seqs[s].start = s;
            p->tokens[s] = bt->tokens[bt->seqs[s].start];
        } else {
            p->seqs[s] = (struct batch_seq){.start = s, .n_tokens = 1, .pos0 = 0,
                                            .block_table = p->null_table,
                                            .logits = BATCH_LOGITS_NONE};
            p->tokens[s] = 0;
        }
    }
    p->batch = (struct batch){.n_tokens = bucket, .tokens = p->tokens, .n_seqs = bucket, .seqs = p->seqs};
}

void gp_padded_free(struct gp_padded *p)
{
    free(p->seqs), free(p->tokens);
    *p = (struct gp_padded){0};
}
