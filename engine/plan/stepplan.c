/* stepplan: a batch turned into flat per-token arrays for a device. */
#include "engine/plan/stepplan.h"

#include <stdlib.h>
#include <string.h>

#include "engine/err.h"

enum { ALIGN = 256 };

static size_t take(size_t *at, size_t bytes)
{
    size_t off = *at;
    *at += (bytes + ALIGN - 1) / ALIGN * ALIGN;
    return off;
}

/* Blocks a sequence's table has for its positions after this step. */
static int32_t table_len(const struct batch_seq *q, int block_size)
{
    return (int32_t)(((int64_t)q->pos0 + q->n_tokens + block_size - 1) / block_size);
}

static void lay_out(struct sp_plan *p, const struct sp_caps *caps)
{
    size_t T = (size_t)caps->tokens, at = 0, np = (size_t)p->n_pairs;
    p->at.tokens = take(&at, T * 4);
    p->at.pos = take(&at, T * 4);
    p->at.slot = take(&at, T * 4);
    p->at.table_off = take(&at, T * 4);
    p->at.logit_rows = take(&at, (size_t)caps->logits * 4);
    p->at.cos = take(&at, T * np * 4);
    p->at.sin = take(&at, T * np * 4);
    p->at.tables = take(&at, (size_t)caps->table * 4);
    p->at.bytes = at;
    p->at.used = p->at.tables + (size_t)p->n_table * 4;
    if (at > p->cap) {
        free(p->buf);
        p->cap = at * 2;
        p->buf = xcalloc(1, p->cap);
    }
}

/* Tokens, positions, slots and angles of sequence s, whose table starts at table entry t0. */
static void fill_seq(struct sp_plan *p, const struct batch *b, int s, int32_t t0, int block_size,
                     const struct rope *r)
{
    const struct batch_seq *q = &b->seqs[s];
    size_t np = (size_t)p->n_pairs;
    for (int i = 0; i < q->n_tokens; i++) {
        int t = q->start + i, pos = q->pos0 + i;
        sp_i32(p, p->at.tokens)[t] = b->tokens[t];
        sp_i32(p, p->at.pos)[t] = pos;
        sp_i32(p, p->at.slot)[t] = q->block_table[pos / block_size] * block_size + pos % block_size;
        sp_i32(p, p->at.table_off)[t] = t0;
        rope_angles(r, pos, sp_f32(p, p->at.cos) + (size_t)t * np, sp_f32(p, p->at.sin) + (size_t)t * np);
        if (pos + 1 > p->max_ctx) p->max_ctx = pos + 1;
    }
}

/* The rows of logits, in batch order: every token (ALL), the last one (LAST) or none. */
static void fill_logit_rows(struct sp_plan *p, const struct batch *b)
{
    int32_t *rows = sp_i32(p, p->at.logit_rows), n = 0;
    for (int s = 0; s < b->n_seqs; s++) {
        const struct batch_seq *q = &b->seqs[s];
        if (q->logits == BATCH_LOGITS_NONE) continue;
        int first = q->logits == BATCH_LOGITS_ALL ? q->start : q->start + q->n_tokens - 1;
        for (int t = first; t < q->start + q->n_tokens; t++) rows[n++] = t;
    }
    p->n_logits = n;
}

static int32_t n_table_of(const struct batch *b, int block_size)
{
    int32_t n = 0;
    for (int s = 0; s < b->n_seqs; s++) n += table_len(&b->seqs[s], block_size);
    return n;
}

void sp_build(struct sp_plan *p, const struct batch *b, int block_size, const struct rope *r)
{
    struct sp_caps caps = {b->n_tokens, batch_n_logits(b), n_table_of(b, block_size)};
    sp_build_caps(p, b, block_size, r, &caps);
}

void sp_build_caps(struct sp_plan *p, const struct batch *b, int block_size, const struct rope *r,
                   const struct sp_caps *caps)
{
    p->n_tokens = b->n_tokens, p->n_seqs = b->n_seqs, p->n_pairs = r->n_pairs, p->max_ctx = 0;
    p->n_table = n_table_of(b, block_size);
    if (b->n_tokens > caps->tokens || batch_n_logits(b) > caps->logits || p->n_table > caps->table)
        ERR_FATAL("sp_build_caps: a batch beyond the plan's capacities");
    lay_out(p, caps);
    memset(p->buf, 0, p->at.used);
    int32_t t0 = 0;
    for (int s = 0; s < b->n_seqs; s++) {
        int32_t n = table_len(&b->seqs[s], block_size);
        memcpy(sp_i32(p, p->at.tables) + t0, b->seqs[s].block_table, (size_t)n * sizeof(int32_t));
        fill_seq(p, b, s, t0, block_size, r);
        t0 += n;
    }
    fill_logit_rows(p, b);
}

void sp_free(struct sp_plan *p)
{
    free(p->buf);
    *p = (struct sp_plan){0};
}
