/* threadpool: persistent workers, a generation counter to start a loop, an atomic task counter,
 * and a check-in count so that no worker can still be inside a loop when the next one starts. */
#include "engine/threadpool.h"

#include <pthread.h>
#include <sched.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <unistd.h>

#include "engine/err.h"

enum { SPIN_ROUNDS = 1 << 16 };

struct tp_slot {
    void *buf; /* the thread's scratch */
    size_t cap;
    char pad[64 - sizeof(void *) - sizeof(size_t)];
};

struct tp {
    int n_threads;
    pthread_t *workers;       /* [n_threads - 1] */
    struct tp_slot *slots;    /* [n_threads] */
    pthread_mutex_t mu;
    pthread_cond_t cv;
    _Atomic unsigned gen;     /* bumped to start a loop (odd/even does not matter) */
    _Atomic int stop;
    /* the current loop, written before gen is bumped */
    tp_fn fn;
    void *arg;
    int n_tasks;
    _Atomic int next;         /* next task to hand out */
    _Atomic int n_checked_in; /* workers that finished the current loop */
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

/* Takes tasks until none is left. */
static void drain(struct tp *tp, int thread)
{
    for (;;) {
        int i = atomic_fetch_add_explicit(&tp->next, 1, memory_order_relaxed);
        if (i >= tp->n_tasks) return;
        tp->fn(tp->arg, i, thread);
    }
}

/* Waits for gen to move past seen: spins first, then sleeps on the condition variable. */
static unsigned wait_gen(struct tp *tp, unsigned seen)
{
    for (int i = 0; i < SPIN_ROUNDS; i++) {
        unsigned g = atomic_load_explicit(&tp->gen, memory_order_acquire);
        if (g != seen) return g;
        cpu_relax();
    }
    pthread_mutex_lock(&tp->mu);
    unsigned g;
    while ((g = atomic_load_explicit(&tp->gen, memory_order_acquire)) == seen)
        pthread_cond_wait(&tp->cv, &tp->mu);
    pthread_mutex_unlock(&tp->mu);
    return g;
}

static void *worker_main(void *p)
{
    struct tp_worker_arg a = *(struct tp_worker_arg *)p;
    free(p);
    unsigned seen = 0;
    for (;;) {
        seen = wait_gen(a.tp, seen);
        if (atomic_load(&a.tp->stop)) return NULL;
        drain(a.tp, a.thread);
        atomic_fetch_add_explicit(&a.tp->n_checked_in, 1, memory_order_release);
    }
}

struct tp *tp_create(int n_threads)
{
    if (n_threads <= 0) n_threads = (int)sysconf(_SC_NPROCESSORS_ONLN);
    if (n_threads <= 0) n_threads = 1;
    struct tp *tp = xcalloc(1, sizeof *tp);
    tp->n_threads = n_threads;
    tp->slots = xcalloc((size_t)n_threads, sizeof *tp->slots);
    tp->workers = xcalloc((size_t)n_threads, sizeof *tp->workers);
    pthread_mutex_init(&tp->mu, NULL);
    pthread_cond_init(&tp->cv, NULL);
    for (int i = 1; i < n_threads; i++) {
        struct tp_worker_arg *a = xmalloc(sizeof *a);
        *a = (struct tp_worker_arg){tp, i};
        if (pthread_create(&tp->workers[i - 1], NULL, worker_main, a) != 0)
            ERR_FATAL("cannot start worker thread %d", i);
    }
    return tp;
}

/* Publishes a new generation and wakes sleeping workers. */
static void bump(struct tp *tp)
{
    pthread_mutex_lock(&tp->mu);
    atomic_fetch_add_explicit(&tp->gen, 1, memory_order_release);
    pthread_cond_broadcast(&tp->cv);
    pthread_mutex_unlock(&tp->mu);
}

void tp_destroy(struct tp *tp)
{
    if (!tp) return;
    atomic_store(&tp->stop, 1);
    bump(tp);
    for (int i = 1; i < tp->n_threads; i++) pthread_join(tp->workers[i - 1], NULL);
    for (int i = 0; i < tp->n_threads; i++) free(tp->slots[i].buf);
    pthread_cond_destroy(&tp->cv);
    pthread_mutex_destroy(&tp->mu);
    free(tp->slots);
    free(tp->workers);
    free(tp);
}

int tp_size(const struct tp *tp)
{
    return tp ? tp->n_threads : 1;
}

void tp_run(struct tp *tp, int n_tasks, tp_fn fn, void *arg)
{
    if (n_tasks <= 0) return;
    if (!tp || tp->n_threads == 1 || n_tasks == 1) {
        for (int i = 0; i < n_tasks; i++) fn(arg, i, 0);
        return;
    }
    tp->fn = fn, tp->arg = arg, tp->n_tasks = n_tasks;
    atomic_store_explicit(&tp->next, 0, memory_order_relaxed);
    atomic_store_explicit(&tp->n_checked_in, 0, memory_order_relaxed);
    bump(tp);
    drain(tp, 0);
    int want = tp->n_threads - 1;
    for (unsigned spins = 0; atomic_load_explicit(&tp->n_checked_in, memory_order_acquire) < want; spins++) {
        cpu_relax();
        if (spins > SPIN_ROUNDS) sched_yield();
    }
}

void *tp_scratch(struct tp *tp, int thread, size_t bytes)
{
    if (!tp) ERR_FATAL("tp_scratch needs a pool");
    struct tp_slot *s = &tp->slots[thread];
    if (s->cap < bytes) {
        free(s->buf);
        size_t cap = (bytes + 63) / 64 * 64;
        if (posix_memalign(&s->buf, 64, cap) != 0) ERR_FATAL("out of memory (%zu bytes)", cap);
        s->cap = cap;
    }
    return s->buf;
}
