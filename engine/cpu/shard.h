/* shard: one rank's part of a tensor-parallel forward pass on the CPU — which heads, routed
 * experts, intermediate rows and vocabulary rows it computes, and its private copies of the
 * weights it reads by input columns (o_proj, and the down projection of the dense MLP and of the
 * shared experts), whose partial outputs the ranks sum with an all-reduce.
 *
 * Splits: heads H/N each (the forward refuses heads that do not divide); routed experts, the
 * intermediate width and the vocabulary ⌈n/N⌉ or ⌊n/N⌋ each, in rank order. Rows are read in
 * place from the mapping (a row range of a weight needs no copy, whatever its dtype). A column
 * slice is copied in the weight's own dtype, widened outwards to whole blocks of its format
 * (32 or 256 values for ggml's blocks, the 128-column scale blocks of FP8): a block that
 * straddles two ranks' columns is copied by both, and each rank feeds zeros to the columns
 * that are not its own, so every product is summed once over the ranks. */
#ifndef SEEKD_SHARD_H
#define SEEKD_SHARD_H

#include <stdint.h>

#include "engine/comm.h"
#include "engine/err.h"
#include "engine/model/model.h"

/* Columns [a, a + w.cols) of a weight, copied; this rank's own columns are [c0, c1). */
struct shard_cols {
    struct weight w; /* the copy (data and scale owned); data NULL when the rank has no column */
    int64_t a, c0, c1;
};

struct shard_layer {
    struct shard_cols o;    /* o_proj: this rank's heads' columns */
    struct shard_cols down; /* the dense MLP's down, or the shared experts' */
    int64_t i0, i1;         /* this rank's rows of gate and up (= down's own columns) */
};

struct shard {
    struct comm *comm;         /* not owned */
    int rank, size;
    int h0, h1;                /* heads */
    int e0, e1;                /* routed experts */
    int64_t v0, v1;            /* rows of lm_head */
    size_t *vbytes;            /* [size] bytes of one logits row of each rank's vocabulary part */
    struct shard_layer *layers; /* [n_layers] */
    int n_layers;
};

/* This rank's part of m over c (c->size > 1). NULL with a message when the heads do not divide
 * by the rank count (naming both numbers) or a copy cannot be allocated. */
struct shard *shard_create(const struct model *m, struct comm *c, struct err *e);
void shard_destroy(struct shard *s);

/* out [n][s->w.cols] = the rows of x [n][ldx] (x[t][0] is column 0 of the unsliced weight) at
 * the copy's columns, zero outside [c0, c1). */
void shard_input(const struct shard_cols *s, const float *x, int64_t ldx, int n, float *out);

/* The same for x that holds only the copy's columns already (x[t][0] is column a): zeroes, in
 * place, the columns outside [c0, c1). */
void shard_mask(const struct shard_cols *s, float *x, int n);

/* Bytes of the copies this rank made. */
uint64_t shard_bytes(const struct shard *s);

#endif
