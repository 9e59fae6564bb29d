/* rope: the rotary position embedding of a model, YaRN included, as numbers every backend shares.
 *
 * The CPU computes each token's cos/sin from these frequencies; a GPU backend uploads the very
 * same floats (rope_angles on the host), so rotation is bit-identical across backends. */
#ifndef SEEKD_ROPE_H
#define SEEKD_ROPE_H

#include "engine/model/config.h"

#define ROPE_MAX_PAIRS 2048 /* qk_rope_head_dim / 2 at most (config.c bounds the head dim) */

struct rope {
    int n_pairs;                     /* qk_rope_head_dim / 2 */
    float inv_freq[ROPE_MAX_PAIRS];  /* [n_pairs] YaRN-blended frequencies */
    float mag;                       /* YaRN attention factor on cos/sin (1 for DeepSeek) */
    float softmax_scale;             /* qk_head_dim^-0.5 (dense: head_dim^-0.5), times
                                        mscale(factor, all_dim)² */
};

/* Frequencies and scales, following transformers (default, linear, llama3, YaRN). */
void rope_init(struct rope *r, const struct model_config *c);

/* Divides each frequency by its factor ([n_pairs]: a GGUF's rope_freqs tensor, which is how
 * llama.cpp stores Llama 3's scaling). */
void rope_freq_factors(struct rope *r, const float *factors);

/* cos and sin of every pair's angle at position pos, times mag: [n_pairs] each. */
void rope_angles(const struct rope *r, int pos, float *cos_out, float *sin_out);

/* Rotates adjacent pairs (x[2i], x[2i+1]) by the angles from rope_angles. */
void rope_apply(float *x, int n_pairs, const float *cos_v, const float *sin_v);

/* Rotates the pairs (x[i], x[i + n_pairs]) — the NeoX / rotate_half pairing. */
void rope_apply_neox(float *x, int n_pairs, const float *cos_v, const float *sin_v);

#endif
