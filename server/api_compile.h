/* api_compile: grammars compiled off the HTTP thread.
 *
 * A schema seen for the first time can take milliseconds to compile (a hostile one, up to its
 * budget). The HTTP worker preparing a request whose grammar is not cached hands the compile to
 * this one thread and waits for it, so that however many requests arrive, one grammar compiles
 * at a time. At most `max_queued` compiles wait at once: past that a request is refused (503)
 * rather than queued without bound. */
#ifndef SEEKD_API_COMPILE_H
#define SEEKD_API_COMPILE_H

#include "engine/err.h"
#include "engine/grammar/grammar.h"

struct api_compiler;
struct compile_job;

/* fn makes the grammar from arg (NULL with a message); free_arg frees arg afterwards. Both run
 * on the compile thread. */
typedef struct gram *(*compile_fn)(void *arg, struct err *e);

struct api_compiler *api_compiler_create(int max_queued, struct err *e);
/* Finishes the job in progress, fails the queued ones, joins the thread. */
void api_compiler_destroy(struct api_compiler *c);

/* Queues a compile. NULL when the queue is full. */
struct compile_job *api_compile_start(struct api_compiler *c, compile_fn fn, void *arg,
                                      void (*free_arg)(void *arg));
/* Returns once the job has finished (compiled, failed, or failed by the thread's end). */
void api_compile_wait(struct compile_job *j);
/* The finished job's grammar (a reference for the caller), or NULL with its message. */
struct gram *api_compile_result(struct compile_job *j, struct err *e);
/* The request lets go of the job (taken, or the request dropped): it is freed once the
 * thread is done with it too. */
void api_compile_drop(struct compile_job *j);

#endif
