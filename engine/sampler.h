/* sampler: turns one row of logits into the next token of one request.
 *
 * Owns the sampling parameters (a plain struct the server fills from the request and checks with
 * smp_params_check), the per-request state (RNG, token counts for penalties, scratch), and the
 * pipeline, in vLLM's order:
 *
 *   grammar mask (smp_sample_masked) -> logit_bias -> repetition, frequency, presence penalties
 *     -> greedy (temperature 0): argmax, ties to the lowest id; no RNG draw
 *     -> else: temperature -> top-k -> top-p -> min-p -> softmax
 *              -> one uniform draw -> inverse CDF over the survivors in ascending id order
 *
 * Semantics (where engines differ, what seekd does):
 * - logit_bias is added to the logit (OpenAI). A bias of exactly -100 bans the token outright
 *   (logit -inf): addition alone does not ban at high temperature. +100 is only added, which
 *   forces the token at ordinary temperatures.
 * - repetition_penalty (vLLM / CTRL): for every token seen in the prompt or the output,
 *   logit > 0 -> logit / r, else logit * r. frequency_penalty and presence_penalty (OpenAI) count
 *   generated tokens only: logit -= count * frequency + (count > 0) * presence.
 * - top_k keeps exactly k tokens; ties at the boundary go to the lower id, so top_k = 1 is greedy.
 * - top_p keeps the smallest set of most probable tokens (after top-k, renormalised) whose mass
 *   reaches top_p; ties again favour the lower id. The most probable token is always kept.
 * - min_p keeps tokens with p >= min_p * p_max, p taken after temperature.
 * - NaN logits count as -inf (never sampled), +inf as the largest float. If no token is left
 *   (every logit NaN or -inf, or every token banned), smp_sample fails with a message: that is a
 *   broken model output, not something to paper over with an arbitrary token.
 * - Logprobs are the log-softmax of the model's raw logits, before bias, penalties, temperature
 *   and filtering (vLLM's default "raw_logprobs"). Tokens whose raw logit is NaN or -inf are
 *   never listed as alternatives, so n_top can be below n_logprobs on degenerate rows.
 *
 * Reproducibility: a sampled token depends only on this request's logits, parameters and state,
 * never on batch-mates or the order requests are processed. Each non-greedy smp_sample consumes
 * exactly one draw from the request's own RNG (xoshiro256**, seeded through splitmix64), even when
 * one candidate is left; greedy consumes none. So a seeded request replays identically. For n > 1
 * choices the caller should give each choice its own seed (e.g. seed + index).
 * ignore_eos and stop conditions are the caller's business. */
#ifndef SEEKD_SAMPLER_H
#define SEEKD_SAMPLER_H

#include <stdint.h>

#include "engine/err.h"

#define SMP_MAX_LOGPROBS    20        /* OpenAI's limit on top_logprobs */
#define SMP_MAX_TEMPERATURE 100       /* vLLM has no upper bound; OpenAI stops at 2 */
#define SMP_BIAS_BAN        (-100.0f) /* a logit_bias of exactly this bans the token */

struct smp_bias {
    int32_t token;
    float bias; /* [-100, 100] */
};

/* Accepted ranges (smp_params_check): */
struct smp_params {
    float temperature;                 /* [0, 100]; 0 = greedy */
    float top_p;                       /* (0, 1]; 1 = off */
    int32_t top_k;                     /* -1 or 0 = off, else >= 1 (>= vocab is off too) */
    float min_p;                       /* [0, 1]; 0 = off */
    uint64_t seed;                     /* used when has_seed */
    int has_seed;                      /* 0: the RNG is seeded from the caller's entropy value */
    float presence_penalty;            /* [-2, 2]; 0 = off */
    float frequency_penalty;           /* [-2, 2]; 0 = off */
    float repetition_penalty;          /* (0, 2]; 1 = off */
    const struct smp_bias *logit_bias; /* [n_logit_bias], caller-owned; duplicates add */
    int32_t n_logit_bias;
    int logprobs;   /* report the chosen token's logprob */
    int n_logprobs; /* [0, 20] top alternatives to report; > 0 needs logprobs */
};

struct smp_logprob {
    int32_t token;
    float logprob;
};

struct smp_result {
    int32_t token;
    float logprob; /* raw log-softmax of token; set when params.logprobs */
    int n_top;     /* alternatives filled in top */
    struct smp_logprob top[SMP_MAX_LOGPROBS]; /* [n_top], logprob descending, ties by id */
};

struct smp_state;

/* OpenAI's defaults: temperature 1, every filter and penalty off, no seed, no logprobs. */
struct smp_params smp_params_default(void);

/* Checks every field against the ranges above; -1 with a message naming the request field. */
int smp_params_check(const struct smp_params *p, int32_t n_vocab, struct err *e);

/* Per-request state. The RNG is seeded from p->seed when p->has_seed, else from entropy (the
 * caller's random value). prompt: [n_prompt] ids that count as seen for repetition_penalty.
 * Memory: about 17 bytes per vocabulary entry (2.2 MB at 129k), half of it sampling scratch.
 * NULL with a message when a prompt id is outside the vocabulary. */
struct smp_state *smp_state_create(const struct smp_params *p, int32_t n_vocab,
                                   const int32_t *prompt, int32_t n_prompt, uint64_t entropy,
                                   struct err *e);
void smp_state_destroy(struct smp_state *s);
/* The memory one state takes for a vocabulary of n_vocab (admission counts it per choice). */
size_t smp_state_bytes(int32_t n_vocab);

/* Records a token the request emitted (for the penalties); call once per kept token. */
void smp_accept(struct smp_state *s, int32_t token);

/* Applies logit_bias and the penalties to logits [n_vocab] in place: step one of smp_sample,
 * exposed so the arithmetic can be checked and the processed logits inspected. */
void smp_adjust(const struct smp_state *s, const struct smp_params *p, float *logits,
                int32_t n_vocab);

/* Samples one token from logits [n_vocab] (left unchanged). p must have passed smp_params_check
 * and n_vocab must be the state's. 0 on success; -1 with a message when no token can be drawn. */
int smp_sample(struct smp_state *s, const struct smp_params *p, const float *logits,
               int32_t n_vocab, struct smp_result *out, struct err *e);

/* The same under a grammar: allow [ceil(n_vocab / 64)] has bit t set when token t may be drawn
 * (NULL: every token). Disallowed tokens are removed before anything else — bias, penalties,
 * temperature, filters — so they can never be drawn, and logprobs are those of the masked
 * logits (disallowed tokens have none). A mask that allows nothing fails with a message. */
int smp_sample_masked(struct smp_state *s, const struct smp_params *p, const float *logits,
                      int32_t n_vocab, const uint64_t *allow, struct smp_result *out,
                      struct err *e);

/* The state as engine/sampler_cand.c needs it: whether a token was seen (prompt or output), how
 * often it was generated, and the one uniform draw of a non-greedy sample (consumes it). */
int smp_seen(const struct smp_state *s, int32_t token);
uint32_t smp_count(const struct smp_state *s, int32_t token);
double smp_draw(struct smp_state *s);

#endif
