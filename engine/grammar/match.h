/* match: the matcher of one sequence — where it stands in its grammar, advanced by each token it
 * emits, and the mask of the tokens that may come next.
 *
 * The state is a set of stack tops (the grammar is context-free, so several parses may be alive
 * at once). A top is a state that consumes input plus the stack below it; stacks are interned
 * frames shared between tops (identical stacks are one frame, so ambiguity cannot multiply
 * them). A token is accepted when its bytes (or, for a special token, the token itself) can be
 * consumed by some top.
 *
 * Masks: gm_fill_mask sets one bit per allowed token id. Each top's state belongs to a class
 * whose tokens were classified once (mask.c): accepted whatever lies below the top, rejected, or
 * uncertain; only the uncertain ones are walked against the real stack. Stop tokens (EOS,
 * stop_token_ids) are allowed exactly when the document is complete.
 *
 * Cost bounds: a state with more than GM_MAX_TOPS tops, or a matcher that accumulates more than
 * GM_MAX_FRAMES frames, fails with a message (the request ends with an error; others go on). */
#ifndef SEEKD_GRAMMAR_MATCH_H
#define SEEKD_GRAMMAR_MATCH_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "engine/err.h"
#include "engine/grammar/grammar.h"
#include "engine/grammar/vocab.h"

#define GM_MAX_TOPS   4096
#define GM_MAX_FRAMES (8 << 20)

struct gm;

/* A matcher at the start of g (takes a reference); NULL with a message when the start alone
 * passes a bound. */
struct gm *gm_create(struct gram *g, struct err *e);
void gm_destroy(struct gm *m);
/* An independent copy in the same state (a sibling of an n > 1 request). */
struct gm *gm_clone(const struct gm *m);

/* Consumes bytes; 0, or -1 (state unchanged) when the grammar cannot take them. */
int gm_accept_bytes(struct gm *m, const uint8_t *s, size_t n, struct err *e);
/* Consumes a token: a special token through the grammar's token edges, any other through its
 * bytes. 0, or -1 (state unchanged) with a message. */
int gm_accept_token(struct gm *m, const struct gv *v, int32_t token, struct err *e);

/* The document may end here (stop tokens are allowed). */
bool gm_can_end(const struct gm *m);
/* The document is complete and nothing may follow: the sequence should stop now. */
bool gm_finished(const struct gm *m);

/* mask: [gv_words(v)] words; bit t set when token t may come next. stop: [n_stop] ids allowed
 * when the document may end. 0, or -1 with a message (a cost bound was hit). */
int gm_fill_mask(struct gm *m, const struct gv *v, uint64_t *mask, const int32_t *stop, int n_stop,
                 struct err *e);

#endif
