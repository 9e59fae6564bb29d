/* wire: engine values as bytes for the control plane between ranks — a request's parameters
 * (struct gen_params), its events (struct gen_event), a metrics snapshot, and a step's plan (a
 * struct batch with its block copies).
 *
 * The ranks of one job run the same binary on the same architecture, so numbers travel in host
 * byte order. A reader checks every length against what is left of the message and reports a
 * malformed message instead of reading past it; several values may follow each other in one
 * message (wire_rd_end checks that nothing is left over). Pure code: no MPI, no threads. */
#ifndef SEEKD_WIRE_H
#define SEEKD_WIRE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "engine/batch.h"
#include "engine/engine.h"
#include "engine/err.h"
#include "engine/kv_blocks.h"
#include "engine/metrics.h"

/* A message being written; grows as needed. */
struct wire {
    uint8_t *p; /* [n] written, [cap] allocated */
    size_t n, cap;
};

/* A message being read. bad is set by the first read past the end (every later read returns
 * zeros), so a decoder checks it once at the end. */
struct wire_rd {
    const uint8_t *p; /* [n] */
    size_t n, at;
    bool bad;
};

void wire_init(struct wire *w);
void wire_free(struct wire *w);
/* Hands the bytes over (malloc'd, *n of them) and leaves w empty. */
uint8_t *wire_take(struct wire *w, size_t *n);

void wire_put_u8(struct wire *w, uint8_t v);
void wire_put_i32(struct wire *w, int32_t v);
void wire_put_i64(struct wire *w, int64_t v);
void wire_put_f64(struct wire *w, double v);
void wire_put_bytes(struct wire *w, const void *p, size_t n);
/* A string that may be absent (NULL): a presence byte, a length, the bytes. */
void wire_put_str(struct wire *w, const char *s, size_t n);

struct wire_rd wire_reader(const void *p, size_t n);
/* Whether the whole message was read, exactly. */
bool wire_rd_end(const struct wire_rd *r);
uint8_t wire_get_u8(struct wire_rd *r);
int32_t wire_get_i32(struct wire_rd *r);
int64_t wire_get_i64(struct wire_rd *r);
double wire_get_f64(struct wire_rd *r);
/* n bytes in place (NULL when fewer are left). */
const void *wire_get_bytes(struct wire_rd *r, size_t n);
/* A malloc'd, NUL-terminated copy, or NULL when absent; *n its length. */
char *wire_get_str(struct wire_rd *r, size_t *n);
/* A count that must be in [0, max] and, at elem_size bytes per element, fit in what is left. */
int32_t wire_get_count(struct wire_rd *r, int32_t max, size_t elem_size);

/* ---- requests ------------------------------------------------------------------------------- */

void wire_put_params(struct wire *w, const struct gen_params *p);

/* Decoded parameters: p points into the arrays below, which the struct owns. */
struct wire_params {
    struct gen_params p;
    int32_t *prompt;
    char **stop;
    int32_t *stop_token_ids;
    struct smp_bias *bias;
};

/* -1 with a message on a malformed message (out is then empty). */
int wire_get_params(struct wire_rd *r, struct wire_params *out, struct err *e);
void wire_params_free(struct wire_params *wp);

/* ---- events and metrics --------------------------------------------------------------------- */

void wire_put_event(struct wire *w, const struct gen_event *ev);
/* The event with malloc'd strings (gen_event_clear frees them); -1 on a malformed message. */
int wire_get_event(struct wire_rd *r, struct gen_event *ev, struct err *e);

/* Every counter, gauge and histogram (not the mutex). */
void wire_put_metrics(struct wire *w, const struct metrics *m);
int wire_get_metrics(struct wire_rd *r, struct metrics *m, struct err *e);

/* ---- a step's plan -------------------------------------------------------------------------- */

/* The batch (tokens, sequences, each block table) and the copies to do before it. block_size
 * gives each sequence's table length. */
void wire_put_step(struct wire *w, const struct batch *b, int32_t block_size,
                   const struct kvb_copy *copies, int32_t n_copies);

/* A decoded plan: batch points into the arrays below, which the struct owns. */
struct wire_step {
    struct batch batch;
    int32_t *tokens;
    struct batch_seq *seqs;
    int32_t *tables; /* every sequence's table, back to back */
    struct kvb_copy *copies;
    int32_t n_copies;
};

int wire_get_step(struct wire_rd *r, struct wire_step *out, struct err *e);
void wire_step_free(struct wire_step *s);

#endif
