/* batch: the step contract's checks, shared by every backend. */
#include "engine/batch.h"

int batch_n_logits(const struct batch *b)
{
    int n = 0;
    for (int s = 0; s < b->n_seqs; s++)
        n += b->seqs[s].logits == BATCH_LOGITS_ALL ? b->seqs[s].n_tokens
             : b->seqs[s].logits == BATCH_LOGITS_LAST ? 1 : 0;
    return n;
}

/* The sequence's block table names a valid block for each of its positions. */
static int check_table(const struct batch_seq *q, int s, const struct batch_limits *lim,
                       struct err *e)
{
    int64_t n_blocks = ((int64_t)q->pos0 + q->n_tokens + lim->block_size - 1) / lim->block_size;
    for (int64_t i = 0; i < n_blocks; i++)
        if (q->block_table[i] < 0 || q->block_table[i] >= lim->n_blocks)
            return err_set(e, "sequence %d: block id %d out of range", s, q->block_table[i]);
    return 0;
}

int batch_check(const struct batch *b, const struct batch_limits *lim, struct err *e)
{
    if (b->n_tokens < 1 || b->n_tokens > lim->max_tokens)
        return err_set(e, "batch of %d tokens (limit %d)", b->n_tokens, lim->max_tokens);
    for (int t = 0; t < b->n_tokens; t++)
        if (b->tokens[t] < 0 || b->tokens[t] >= lim->vocab_size)
            return err_set(e, "token id %d is outside the vocabulary (0..%d)", b->tokens[t],
                           lim->vocab_size - 1);
    int next = 0;
    for (int s = 0; s < b->n_seqs; s++) {
        const struct batch_seq *q = &b->seqs[s];
        if (q->start != next || q->n_tokens < 1 || q->pos0 < 0 || q->start + q->n_tokens > b->n_tokens)
            return err_set(e, "sequence %d does not tile the batch", s);
        if (check_table(q, s, lim, e) != 0) return -1;
        next += q->n_tokens;
    }
    if (next != b->n_tokens) return err_set(e, "sequences cover %d of %d tokens", next, b->n_tokens);
    int rows = batch_n_logits(b);
    if (rows > lim->max_logits)
        return err_set(e, "batch asks for %d rows of logits (limit %d)", rows, lim->max_logits);
    return 0;
}
