/* threadpool: persistent workers that take tasks of the current loop from one 64-bit atomic,
 * (generation << 32 | next task). A claim is a compare-and-swap that names the generation, so a
 * worker late from an earlier loop can never take a task of a newer one; the caller waits only
 * for the tasks to be done, never for a worker to wake up — an oversubscribed machine (two cores
 * shared with the HTTP thread and a load generator) costs nothing but the tasks themselves. */
#include "engine/cpu/threadpool.h"

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdlib.h>
#include <unistd.h>

#include "engine/err.h"

enum { SPIN_ROUNDS = 1 << 12 }; /* pauses before sleeping: tens of microseconds */

struct tp_slot {
    void *buf; /* the thread's scratch */
    size_t cap;
    void *keep; /* tp_keep's buffer */
    size_t keep_cap;
    char pad[64 - 2 * sizeof(void *) - 2 * sizeof(size_t)];
};

/* One loop's description; two alternate so that a late reader of the last one is harmless.
 * The fields are atomics: a worker late from loop g may read slot g % 2 while loop g + 2 is
 * writing it. What it reads then is never used — its claim names generation g and fails — but
 * the read must not be a data race. */
struct tp_job {
    _Atomic(tp_fn) fn;
    _Atomic(void *) arg;
    _Atomic int n_tasks;
};

struct tp {
    int n_threads;
    pthread_t *workers;     /* [n_threads - 1] */
    struct tp_slot *slots;  /* [n_threads + 1]: one per thread, then the shared buffer */
    pthread_mutex_t mu;
    pthread_cond_t cv;      /* workers wait here for a new loop */
    pthread_cond_t done_cv; /* the caller waits here for the last task of a loop */
    struct tp_job jobs[2];  /* jobs[gen % 2] is loop gen */
    _Atomic uint64_t claim; /* gen << 32 | next task */
    _Atomic int n_done;     /* tasks of the current loop finished */
    _Atomic int stop;
    _Atomic uint64_t loop; /* the running loop's number (tp_loop), 0 between loops */
    uint64_t n_loops;      /* loops started (the caller's alone) */
};

struct tp_worker_arg {
    struct tp *tp;
    int thread;
};

static inline void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
}

/* Runs tasks of loop gen until it has none left or a newer loop started. */
static void drain(struct tp *tp, uint32_t gen, int thread)
{
    struct tp_job *j = &tp->jobs[gen % 2];
    uint64_t c = atomic_load_explicit(&tp->claim, memory_order_acquire);
    for (;;) {
        if ((uint32_t)(c >> 32) != gen) return;
        int i = (int)(uint32_t)c;
        tp_fn fn = atomic_load_explicit(&j->fn, memory_order_relaxed);
        void *arg = atomic_load_explicit(&j->arg, memory_order_relaxed);
        int n_tasks = atomic_load_explicit(&j->n_tasks, memory_order_relaxed);
        if (i >= n_tasks) return;
        if (!atomic_compare_exchange_weak_explicit(&tp->claim, &c, c + 1, memory_order_acq_rel,
                                                   memory_order_acquire))
            continue;
        fn(arg, i, thread);
        if (atomic_fetch_add_explicit(&tp->n_done, 1, memory_order_acq_rel) + 1 == n_tasks) {
            pthread_mutex_lock(&tp->mu); /* the caller may be asleep: a preempted task took long */
            pthread_cond_broadcast(&tp->done_cv);
            pthread_mutex_unlock(&tp->mu);
        }
        c = atomic_load_explicit(&tp->claim, memory_order_acquire);
    }
}

static uint32_t current_gen(struct tp *tp)
{
    return (uint32_t)(atomic_load_explicit(&tp->claim, memory_order_acquire) >> 32);
}

/* Waits for a loop newer than seen: spins first, then sleeps on the condition variable. */
static uint32_t wait_gen(struct tp *tp, uint32_t seen)
{
    for (int i = 0; i < SPIN_ROUNDS; i++) {
        uint32_t g = current_gen(tp);
        if (g != seen || atomic_load_explicit(&tp->stop, memory_order_relaxed)) return g;
        cpu_relax();
    }
    pthread_mutex_lock(&tp->mu);
    uint32_t g;
    while ((g = current_gen(tp)) == seen && !atomic_load(&tp->stop)) pthread_cond_wait(&tp->cv, &tp->mu);
    pthread_mutex_unlock(&tp->mu);
    return g;
}

static void *worker_main(void *p)
{
    struct tp_worker_arg a = *(struct tp_worker_arg *)p;
    free(p);
    uint32_t seen = 0;
    for (;;) {
        seen = wait_gen(a.tp, seen);
        if (atomic_load(&a.tp->stop)) return NULL;
        drain(a.tp, seen, a.thread);
    }
}

struct tp *tp_create(int n_threads)
{
    if (n_threads <= 0) n_threads = (int)sysconf(_SC_NPROCESSORS_ONLN);
    if (n_threads <= 0) n_threads = 1;
    struct tp *tp = xcalloc(1, sizeof *tp);
    tp->n_threads = n_threads;
    tp->slots = xcalloc((size_t)n_threads + 1, sizeof *tp->slots);
    tp->workers = xcalloc((size_t)n_threads, sizeof *tp->workers);
    pthread_mutex_init(&tp->mu, NULL);
    pthread_cond_init(&tp->cv, NULL);
    pthread_cond_init(&tp->done_cv, NULL);
    for (int i = 1; i < n_threads; i++) {
        struct tp_worker_arg *a = xmalloc(sizeof *a);
        *a = (struct tp_worker_arg){tp, i};
        if (pthread_create(&tp->workers[i - 1], NULL, worker_main, a) != 0)
            ERR_FATAL("cannot start worker thread %d", i);
    }
    return tp;
}

void tp_destroy(struct tp *tp)
{
    if (!tp) return;
    pthread_mutex_lock(&tp->mu);
    atomic_store(&tp->stop, 1);
    pthread_cond_broadcast(&tp->cv);
    pthread_mutex_unlock(&tp->mu);
    for (int i = 1; i < tp->n_threads; i++) pthread_join(tp->workers[i - 1], NULL);
    for (int i = 0; i <= tp->n_threads; i++) free(tp->slots[i].buf), free(tp->slots[i].keep);
    pthread_cond_destroy(&tp->cv);
    pthread_cond_destroy(&tp->done_cv);
    pthread_mutex_destroy(&tp->mu);
    free(tp->slots);
    free(tp->workers);
    free(tp);
}

int tp_size(const struct tp *tp)
{
    return tp ? tp->n_threads : 1;
}

static void run_loop(struct tp *tp, int n_tasks, tp_fn fn, void *arg);

void tp_run(struct tp *tp, int n_tasks, tp_fn fn, void *arg)
{
    if (n_tasks <= 0) return;
    if (!tp) {
        for (int i = 0; i < n_tasks; i++) fn(arg, i, 0);
        return;
    }
    /* Stored before the loop's claim is published (release), read by tasks after theirs. */
    atomic_store_explicit(&tp->loop, ++tp->n_loops, memory_order_relaxed);
    if (tp->n_threads == 1 || n_tasks == 1)
        for (int i = 0; i < n_tasks; i++) fn(arg, i, 0);
    else run_loop(tp, n_tasks, fn, arg);
    atomic_store_explicit(&tp->loop, 0, memory_order_relaxed);
}

uint64_t tp_loop(const struct tp *tp)
{
    return tp ? atomic_load_explicit(&tp->loop, memory_order_relaxed) : 0;
}

/* The loop on the workers: publish, take part, wait for the last task. */
static void run_loop(struct tp *tp, int n_tasks, tp_fn fn, void *arg)
{
    uint32_t gen = current_gen(tp) + 1;
    struct tp_job *j = &tp->jobs[gen % 2];
    atomic_store_explicit(&j->fn, fn, memory_order_relaxed);
    atomic_store_explicit(&j->arg, arg, memory_order_relaxed);
    atomic_store_explicit(&j->n_tasks, n_tasks, memory_order_relaxed);
    atomic_store_explicit(&tp->n_done, 0, memory_order_relaxed);
    pthread_mutex_lock(&tp->mu);
    atomic_store_explicit(&tp->claim, (uint64_t)gen << 32, memory_order_release);
    pthread_cond_broadcast(&tp->cv);
    pthread_mutex_unlock(&tp->mu);
    drain(tp, gen, 0);
    for (int spins = 0; spins < SPIN_ROUNDS; spins++) {
        if (atomic_load_explicit(&tp->n_done, memory_order_acquire) >= n_tasks) return;
        cpu_relax();
    }
    /* A worker holding a task was preempted (the machine is shared): sleep, freeing the core. */
    pthread_mutex_lock(&tp->mu);
    while (atomic_load_explicit(&tp->n_done, memory_order_acquire) < n_tasks) pthread_cond_wait(&tp->done_cv, &tp->mu);
    pthread_mutex_unlock(&tp->mu);
}

/* *buf of at least bytes (64-byte aligned), grown when smaller; 1 when it was (re)allocated. */
static int grow(void **buf, size_t *cap, size_t bytes)
{
    if (*cap >= bytes) return 0;
    free(*buf);
    size_t c = (bytes + 63) / 64 * 64;
    if (posix_memalign(buf, 64, c) != 0) ERR_FATAL("out of memory (%zu bytes)", c);
    *cap = c;
    return 1;
}

void *tp_scratch(struct tp *tp, int thread, size_t bytes)
{
    if (!tp) ERR_FATAL("tp_scratch needs a pool");
    struct tp_slot *s = &tp->slots[thread];
    grow(&s->buf, &s->cap, bytes);
    return s->buf;
}

void *tp_shared_scratch(struct tp *tp, size_t bytes)
{
    if (!tp) ERR_FATAL("tp_shared_scratch needs a pool");
    struct tp_slot *s = &tp->slots[tp->n_threads];
    grow(&s->buf, &s->cap, bytes);
    return s->buf;
}

void *tp_keep(struct tp *tp, int thread, size_t bytes, int *fresh)
{
    if (!tp) ERR_FATAL("tp_keep needs a pool");
    struct tp_slot *s = &tp->slots[thread];
    *fresh = grow(&s->keep, &s->keep_cap, bytes);
    return s->keep;
}
