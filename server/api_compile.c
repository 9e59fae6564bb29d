/* api_compile: one thread, a FIFO of jobs, each job shared by the thread and its request. */
#include "server/api_compile.h"

#include <pthread.h>
#include <stdlib.h>

struct compile_job {
    struct api_compiler *c; /* outlives its jobs: destroyed after the last connection closed */
    compile_fn fn;
    void *arg;
    void (*free_arg)(void *arg);
    int refs;           /* the queue/thread and the request */
    int done;
    struct gram *g;
    struct err e;
    struct compile_job *next;
};

struct api_compiler {
    pthread_t thread;
    pthread_mutex_t mu; /* guards the queue, every job's refs and done, and quit */
    pthread_cond_t cv;  /* work for the thread */
    pthread_cond_t done_cv; /* a job finished (its waiter looks at its own) */
    struct compile_job *head, *tail;
    int n_queued, max_queued;
    int quit;
};

static void unref(struct compile_job *j)
{
    if (--j->refs) return;
    gram_unref(j->g);
    free(j);
}

/* Runs one job without the lock, then publishes it and wakes its waiter. */
static void run(struct api_compiler *c, struct compile_job *j)
{
    pthread_mutex_unlock(&c->mu);
    struct err e = {0};
    struct gram *g = j->fn(j->arg, &e);
    if (j->free_arg) j->free_arg(j->arg);
    pthread_mutex_lock(&c->mu);
    j->g = g, j->e = e, j->done = 1;
    pthread_cond_broadcast(&c->done_cv);
    unref(j);
}

static void *compiler_main(void *arg)
{
    struct api_compiler *c = arg;
    pthread_mutex_lock(&c->mu);
    while (!c->quit) {
        struct compile_job *j = c->head;
        if (!j) {
            pthread_cond_wait(&c->cv, &c->mu);
            continue;
        }
        c->head = j->next;
        if (!c->head) c->tail = NULL;
        c->n_queued--;
        run(c, j);
    }
    pthread_mutex_unlock(&c->mu);
    return NULL;
}

struct api_compiler *api_compiler_create(int max_queued, struct err *e)
{
    struct api_compiler *c = xcalloc(1, sizeof *c);
    pthread_mutex_init(&c->mu, NULL);
    pthread_cond_init(&c->cv, NULL);
    pthread_cond_init(&c->done_cv, NULL);
    c->max_queued = max_queued;
    if (pthread_create(&c->thread, NULL, compiler_main, c) != 0) {
        err_set(e, "cannot start the grammar compile thread");
        pthread_mutex_destroy(&c->mu);
        pthread_cond_destroy(&c->cv);
        pthread_cond_destroy(&c->done_cv);
        free(c);
        return NULL;
    }
    return c;
}

void api_compiler_destroy(struct api_compiler *c)
{
    if (!c) return;
    pthread_mutex_lock(&c->mu);
    c->quit = 1;
    pthread_cond_signal(&c->cv);
    pthread_mutex_unlock(&c->mu);
    pthread_join(c->thread, NULL);
    for (struct compile_job *j = c->head, *next; j; j = next) { /* never started */
        next = j->next;
        if (j->free_arg) j->free_arg(j->arg);
        err_set(&j->e, "the server is shutting down");
        j->done = 1;
        unref(j);
    }
    pthread_mutex_destroy(&c->mu);
    pthread_cond_destroy(&c->cv);
    pthread_cond_destroy(&c->done_cv);
    free(c);
}

struct compile_job *api_compile_start(struct api_compiler *c, compile_fn fn, void *arg,
                                      void (*free_arg)(void *arg))
{
    pthread_mutex_lock(&c->mu);
    if (c->n_queued >= c->max_queued || c->quit) {
        pthread_mutex_unlock(&c->mu);
        return NULL;
    }
    struct compile_job *j = xcalloc(1, sizeof *j);
    *j =
        (struct compile_job){.c = c, .fn = fn, .arg = arg, .free_arg = free_arg, .refs = 2};
    if (c->tail)
        c->tail->next = j;
    else
        c->head = j;
    c->tail = j;
    c->n_queued++;
    pthread_cond_signal(&c->cv);
    pthread_mutex_unlock(&c->mu);
    return j;
}

void api_compile_wait(struct compile_job *j)
{
    pthread_mutex_lock(&j->c->mu);
    while (!j->done) pthread_cond_wait(&j->c->done_cv, &j->c->mu);
    pthread_mutex_unlock(&j->c->mu);
}

struct gram *api_compile_result(struct compile_job *j, struct err *e)
{
    pthread_mutex_lock(&j->c->mu);
    struct gram *g = j->g ? gram_ref(j->g) : NULL;
    if (!g) *e = j->e;
    pthread_mutex_unlock(&j->c->mu);
    return g;
}

void api_compile_drop(struct compile_job *j)
{
    if (!j) return;
    struct api_compiler *c = j->c;
    pthread_mutex_lock(&c->mu);
    unref(j);
    pthread_mutex_unlock(&c->mu);
}
