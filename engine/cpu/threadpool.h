/* threadpool: a persistent pool of worker threads that run one parallel loop at a time.
 *
 * tp_run(pool, n_tasks, fn, arg) calls fn(arg, task, thread) once for every task in
 * [0, n_tasks); the calling thread takes part as thread 0. Tasks are handed out in order from an
 * atomic counter, so which thread runs a task varies — kernels make each task's result depend
 * only on the task, never on the thread, which keeps results independent of the thread count.
 * Workers spin briefly between loops (decode issues hundreds of small loops per token), then
 * sleep. One caller at a time: a pool belongs to one engine thread. */
#ifndef SEEKD_THREADPOOL_H
#define SEEKD_THREADPOOL_H

#include <stddef.h>
#include <stdint.h>

struct tp;

typedef void (*tp_fn)(void *arg, int task, int thread);

/* n_threads counts the caller; 0 = one per online core. Never fails (aborts on exhaustion). */
struct tp *tp_create(int n_threads);
void tp_destroy(struct tp *tp);

/* Threads including the caller; 1 for a NULL pool. */
int tp_size(const struct tp *tp);

/* Runs fn over n_tasks tasks and returns when all are done. A NULL pool runs them inline. */
void tp_run(struct tp *tp, int n_tasks, tp_fn fn, void *arg);

/* A per-thread scratch buffer of at least `bytes`, 64-byte aligned, kept between calls. Only
 * the thread `thread` may use its buffer, and only inside a task. */
void *tp_scratch(struct tp *tp, int thread, size_t bytes);

/* A buffer of at least `bytes`, 64-byte aligned, that the caller fills between loops and the
 * tasks of the next loop read (activations prepared once for all of them). Kept between calls;
 * only the caller may ask for it, never inside a task. */
void *tp_shared_scratch(struct tp *tp, size_t bytes);

/* The number of the loop now running, distinct for every loop of the pool's life; 0 outside a
 * loop and for a NULL pool. What a loop's tasks only read stays the same for the whole loop, so
 * a kernel may key what it derives from such input on this number (with the input's address). */
uint64_t tp_loop(const struct tp *tp);

/* A second per-thread buffer like tp_scratch, for what a kernel keeps from one of its calls to
 * the next (tp_scratch is any code's within a task). *fresh is 1 when the buffer was just
 * (re)allocated: its contents are then undefined. */
void *tp_keep(struct tp *tp, int thread, size_t bytes, int *fresh);

#endif
