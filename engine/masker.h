/* masker: the thread that computes one engine step's grammar masks while the backend runs the
 * forward pass. The engine thread adds a job per constrained sequence, starts them, runs the
 * forward, then waits; the jobs' matchers are not touched by anyone else in between. */
#ifndef SEEKD_MASKER_H
#define SEEKD_MASKER_H

#include <stdint.h>

#include "engine/err.h"
#include "engine/grammar/match.h"
#include "engine/grammar/vocab.h"

struct masker;

/* Starts the thread; up to max_jobs jobs per step, masks over gv's vocabulary. */
struct masker *masker_create(const struct gv *gv, int max_jobs, struct err *e);
void masker_destroy(struct masker *k);

/* Forgets the previous step's jobs. */
void masker_clear(struct masker *k);
/* Adds a job: m's allowed next tokens into mask [gv_words words]; the stop ids [n_stop] are
 * allowed when the document may end. Returns the job's index. */
int masker_add(struct masker *k, struct gm *m, const int32_t *stop, int n_stop, uint64_t *mask);
/* Hands the jobs added since masker_clear to the thread; returns how many there are. */
int masker_run(struct masker *k);
/* Waits until they are done; *cpu_s: the CPU time the thread spent on them. */
void masker_wait(struct masker *k, double *cpu_s);
/* Job j's mask, or NULL with the matcher's message in e when it failed. */
const uint64_t *masker_result(const struct masker *k, int j, struct err *e);

#endif
