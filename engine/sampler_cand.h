/* sampler_cand: sampling from a pre-filtered row instead of the whole vocabulary.
 *
 * A GPU reduces each row of logits on the device to a few numbers (the sample_prep kernel;
 * smp_prefilter is its host reference): the K largest logits with their ids, the largest logit
 * outside them, the outside mass Σ exp(v - max) and the count of finite logits. Only those cross
 * to the host. smp_sample_candidates then runs smp_sample's pipeline (engine/sampler.h) on the
 * candidates — but only when it can prove that the full row would give the same token, the same
 * logprobs and the same RNG draw; otherwise it returns 0 having changed nothing, and the caller
 * samples the full row. What it proves, and how:
 *
 *   adjustments     logit_bias > 0 only on candidates, repetition_penalty >= 1, frequency and
 *                   presence penalties >= 0: no token outside can rise above the outside maximum
 *   greedy          the best adjusted candidate beats the outside maximum strictly
 *   top_k <= K      the k-th best adjusted candidate beats the outside maximum strictly
 *   top_p           the top-p cut falls inside the candidates for every total mass the bounds
 *                   allow (the outside mass bounds the outside weights at any temperature), and
 *                   each token it keeps outweighs every outside token
 *   min_p           no outside token can reach min_p of the best
 *   no filter       every outside weight underflows to exactly 0
 *   logprobs        the float logprob is the same at both ends of the bound on log Σ exp, and
 *                   the top alternatives all beat the outside maximum (a row whose outside mass
 *                   is large, a flat tail, often cannot fix the last bit: then the full row)
 *
 * Anything the candidates cannot speak for — a parameter smp_params does not have yet (a grammar
 * mask: see the static assertion in sampler_cand.c), NaN rows without a finite candidate —
 * returns 0. The equivalence is tested against smp_sample on random rows and parameters. */
#ifndef SEEKD_SAMPLER_CAND_H
#define SEEKD_SAMPLER_CAND_H

#include <stdint.h>

#include "engine/sampler.h"

#define SMP_CAND_K 64 /* candidates per row a device keeps */

/* Relative error the outside mass may carry. The device computes each term as smp_sample does,
 * expf((float)((double)v - max)) (0 below -200), and adds them in double; its expf is within 2
 * ulp of exp and the host's within 1, so a term differs from the host's by at most 3 ulp. */
#define SMP_CAND_MASS_ERR 4e-7

/* A pre-filtered row. Logits are "clean": NaN as -inf, +inf as FLT_MAX (smp_sample's view). */
struct smp_cands {
    int32_t n_vocab;
    int32_t n;             /* candidates: min(K, n_vocab) */
    const int32_t *ids;    /* [n] the n largest clean logits' ids: value descending, id ascending */
    const float *logits;   /* [n] their clean logits */
    float out_max;         /* the largest clean logit outside the candidates; -inf when none */
    double out_mass;       /* Σ over the outside of expf((float)(v - logits[0])) as the sampler
                            * computes each term (0 when logits[0] is -inf) */
    int32_t n_finite;      /* finite clean logits in the whole row */
};

/* The host reference of the device pre-filter: row [n_vocab] → c, with ids and logits in the
 * caller's arrays of k entries (k >= 1). */
void smp_prefilter(const float *row, int32_t n_vocab, int k, int32_t *ids, float *logits,
                   struct smp_cands *c);

/* 1: sampled from the candidates, out exactly as smp_sample(s, p, full row) would have filled it,
 * with the same one RNG draw. 0: not provable here — nothing was changed or drawn; call smp_sample
 * on the full row. p must have passed smp_params_check. */
int smp_sample_candidates(struct smp_state *s, const struct smp_params *p,
                          const struct smp_cands *c, struct smp_result *out);

#endif
