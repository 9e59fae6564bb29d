/* seq: one request's sequence as the scheduler sees it, and the ordered lists that hold them.
 *
 * A sequence's tokens are its prompt followed by what it has generated; the first n_computed of
 * them have latents in the KV cache (its block table). Waiting sequences hold no blocks. */
#ifndef SEEKD_SEQ_H
#define SEEKD_SEQ_H

#include <stdbool.h>
#include <stdint.h>

#include "engine/kv_blocks.h"

enum seq_status {
    SEQ_WAITING,
    SEQ_RUNNING,
    SEQ_FINISHED,
};

enum seq_finish {
    SEQ_FINISH_NONE = 0,
    SEQ_FINISH_STOP,   /* a stop token id (eos) or a stop the engine detected */
    SEQ_FINISH_LENGTH, /* max_tokens generated */
    SEQ_FINISH_ABORT,  /* cancelled by the client */
};

struct seq {
    int64_t id;
    uint64_t arrival; /* order of arrival, for FIFO admission */
    int32_t *tokens;  /* [n_prompt + max_tokens] prompt, then generated tokens */
    int32_t n_tokens;
    int32_t n_prompt;
    int32_t max_tokens;
    int32_t n_computed; /* tokens whose latents are in the KV cache */
    int32_t n_cached;   /* prompt tokens found in the prefix cache at first admission */
    bool admitted_once; /* n_cached is set */
    int32_t *stop_ids;  /* [n_stop_ids] token ids that end generation (eos among them) */
    int32_t n_stop_ids;
    enum seq_status status;
    enum seq_finish finish;
    bool abort_requested;
    struct kvb_table table;
};

/* Copies prompt and stop ids; the sequence starts WAITING. */
struct seq *seq_create(int64_t id, uint64_t arrival, const int32_t *prompt, int32_t n_prompt,
                       int32_t max_tokens, const int32_t *stop_ids, int32_t n_stop_ids);
/* A sibling for n > 1: parent's tokens with the last one replaced by last_token. */
struct seq *seq_clone(const struct seq *parent, int64_t id, int32_t last_token);
/* Frees the sequence; its table must already be empty (kvb_free). */
void seq_destroy(struct seq *s);

int32_t seq_n_generated(const struct seq *s);
/* Appends a sampled token. */
void seq_append(struct seq *s, int32_t token);
/* Why the sequence ends after its last token (stop: the engine saw a stop string), or NONE. */
enum seq_finish seq_finish_reason(const struct seq *s, bool stop);

/* An ordered list of sequences (the waiting queue, the running list). */
struct seq_list {
    struct seq **items; /* [n] */
    int32_t n;
    int32_t cap;
};

void seq_list_destroy(struct seq_list *l);
void seq_list_push_back(struct seq_list *l, struct seq *s);
void seq_list_push_front(struct seq_list *l, struct seq *s);
void seq_list_remove_at(struct seq_list *l, int32_t i);
/* Index of the sequence with this id, or -1. */
int32_t seq_list_find(const struct seq_list *l, int64_t id);

#endif
