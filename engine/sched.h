/* sched: continuous batching — which sequences run in the next forward step, and how many tokens.
 *
 * The engine thread drives it, one step at a time:
 *     sched_add / sched_abort / sched_fork     between steps, as requests arrive or go
 *     sched_step(s, &out)                      -> out.batch, the backend runs it
 *     sched_update(s, sampled, stop)           the tokens the engine sampled
 *     sched_take_finished(...)                 what ended, and why
 * Policy (vLLM v1's): running sequences first, in admission order — each gets its decode token
 * or its next prefill chunk; then waiting sequences are admitted in FIFO order while the token
 * budget, the sequence limit and free blocks allow. A prefill longer than the remaining budget is
 * chunked, and in a step that also decodes, chunks are at most prefill_chunk tokens (the size at
 * which the backend's kernels reach their throughput): a long prompt then delays the others'
 * next tokens by a chunk, not by the whole budget. When a running sequence cannot get a block, the newest running sequence is preempted:
 * its blocks are freed and it goes back to the front of the queue to be recomputed later (no
 * admissions in a step that preempted). A request that could not fit the whole cache even alone
 * is refused by sched_add. */
#ifndef SEEKD_SCHED_H
#define SEEKD_SCHED_H

#include <stdbool.h>
#include <stdint.h>

#include "engine/batch.h"
#include "engine/err.h"
#include "engine/kv_blocks.h"
#include "engine/seq.h"

struct sched;

struct sched_config {
    int32_t n_blocks;               /* KV cache blocks (kvb_blocks_in_budget) */
    int32_t block_size;             /* tokens per block; 0 means KVB_DEFAULT_BLOCK_SIZE */
    int32_t max_num_batched_tokens; /* token budget of one step */
    int32_t max_num_seqs;           /* sequences running at once */
    bool no_prefix_caching;         /* turn automatic prefix caching off */
    int32_t prefill_chunk;          /* > 0: a prefill takes at most this many tokens in a step
                                     * that also decodes (decodes keep flowing); 0: no cap */
};

struct sched_req {
    int64_t id; /* unique among live requests */
    const int32_t *prompt;
    int32_t n_prompt;
    int32_t max_tokens;
    const int32_t *stop_ids; /* [n_stop_ids] eos and other stop token ids; copied */
    int32_t n_stop_ids;
};

/* One step's work. Everything points into the scheduler and stays valid until the next call of
 * sched_step, sched_update or sched_destroy. */
struct sched_out {
    struct batch batch;            /* empty (n_seqs 0) when there is nothing to run */
    const int64_t *seq_ids;        /* [batch.n_seqs] the sequence of each batch.seqs entry */
    const bool *sample;            /* [batch.n_seqs] true: sample a token from its logits */
    const struct kvb_copy *copies; /* [n_copies] block copies to do BEFORE the forward */
    int32_t n_copies;
};

struct sched_finished {
    int64_t id;
    enum seq_finish reason;
    int32_t n_prompt;
    int32_t n_generated;
    int32_t n_cached; /* prompt tokens served from the prefix cache */
};

/* Counters for /metrics (Prometheus names in docs/ARCHITECTURE.md). */
struct sched_stats {
    int32_t n_requests_running;
    int32_t n_requests_waiting;
    double kv_cache_usage;        /* used blocks / all blocks; cached idle blocks count free */
    int64_t prefix_cache_queries; /* tokens looked up at admissions */
    int64_t prefix_cache_hits;    /* of those, tokens found cached */
    int64_t n_preemptions;
};

/* Returns NULL with a message for a bad config. */
struct sched *sched_create(const struct sched_config *cfg, struct err *e);
void sched_destroy(struct sched *s);

/* Whether a request of this size could ever run with the whole cache to itself; -1 with a
 * message giving the numbers. Pure: safe from any thread (sched_add checks it too). */
int sched_check_fit(const struct sched_config *cfg, int32_t n_prompt, int32_t max_tokens,
                    struct err *e);
/* Queues a request; -1 with a message if it is malformed or could never fit the KV cache. */
int sched_add(struct sched *s, const struct sched_req *req, struct err *e);
/* Marks a request cancelled; the next sched_step frees it. False if the id is unknown. */
bool sched_abort(struct sched *s, int64_t id);
/* n > 1: after the update that sampled parent's token, starts sibling child_id whose last token
 * is first_token (its own sample from the same logits). It shares the parent's full blocks and
 * copies the partial one (in the next out.copies); without room it queues to be recomputed. */
int sched_fork(struct sched *s, int64_t parent_id, int64_t child_id, int32_t first_token,
               struct err *e);

/* Plans the next step into *out. Each sched_step that returns sequences needs a sched_update. */
void sched_step(struct sched *s, struct sched_out *out);
/* After the backend ran the step: sampled[i] is the token for batch seq i where out.sample[i]
 * (sampled may be NULL when no entry samples); stop (NULL or [n_seqs]) marks sequences the engine
 * ends on a stop string. Finished sequences release their blocks here. */
void sched_update(struct sched *s, const int32_t *sampled, const bool *stop);
/* Moves up to cap finished sequences into out; returns how many. */
int32_t sched_take_finished(struct sched *s, struct sched_finished *out, int32_t cap);

bool sched_has_work(const struct sched *s);
void sched_stats(const struct sched *s, struct sched_stats *st);
const struct kvb *sched_kv(const struct sched *s);
/* Checks the block manager and every sequence's bookkeeping; 0 or -1 with a message. */
int sched_check(const struct sched *s, struct err *e);

#endif
