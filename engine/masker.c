/* masker: one step's grammar masks on a thread of their own (see masker.h). */
#include "engine/masker.h"

#include <pthread.h>
#include <stdlib.h>
#include <time.h>

/* One mask to compute: a matcher's allowed tokens for the next step. */
struct mask_job {
    struct gm *m;
    const int32_t *stop; /* [n_stop] allowed when the document may end */
    int n_stop;
    uint64_t *mask; /* [words] */
    int rc;
    struct err e;
};

struct masker {
    pthread_t thread;
    pthread_mutex_t mu; /* guards busy, cpu_s, quit */
    pthread_cond_t cv;
    struct mask_job *jobs; /* [max_jobs] */
    int max_jobs;
    int n_jobs;
    int busy;     /* jobs handed over, not yet done */
    double cpu_s; /* CPU time of the last batch of jobs */
    int quit;
    const struct gv *gv;
};

static double thread_cpu_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void *masker_main(void *arg)
{
    struct masker *k = arg;
    pthread_mutex_lock(&k->mu);
    for (;;) {
        while (!k->busy && !k->quit) pthread_cond_wait(&k->cv, &k->mu);
        if (k->quit) break;
        int n = k->n_jobs;
        pthread_mutex_unlock(&k->mu);
        double t0 = thread_cpu_s();
        for (int j = 0; j < n; j++) {
            struct mask_job *job = &k->jobs[j];
            job->rc = gm_fill_mask(job->m, k->gv, job->mask, job->stop, job->n_stop, &job->e);
        }
        double cpu = thread_cpu_s() - t0;
        pthread_mutex_lock(&k->mu);
        k->cpu_s = cpu;
        k->busy = 0;
        pthread_cond_broadcast(&k->cv);
    }
    pthread_mutex_unlock(&k->mu);
    return NULL;
}

struct masker *masker_create(const struct gv *gv, int max_jobs, struct err *e)
{
    struct masker *k = xcalloc(1, sizeof *k);
    pthread_mutex_init(&k->mu, NULL);
    pthread_cond_init(&k->cv, NULL);
    k->jobs = xcalloc((size_t)max_jobs, sizeof *k->jobs);
    k->max_jobs = max_jobs;
    k->gv = gv;
    if (pthread_create(&k->thread, NULL, masker_main, k) == 0) return k;
    err_set(e, "cannot start the grammar mask thread");
    pthread_mutex_destroy(&k->mu);
    pthread_cond_destroy(&k->cv);
    free(k->jobs);
    free(k);
    return NULL;
}

void masker_destroy(struct masker *k)
{
    if (!k) return;
    pthread_mutex_lock(&k->mu);
    k->quit = 1;
    pthread_cond_broadcast(&k->cv);
    pthread_mutex_unlock(&k->mu);
    pthread_join(k->thread, NULL);
    pthread_mutex_destroy(&k->mu);
    pthread_cond_destroy(&k->cv);
    free(k->jobs);
    free(k);
}

void masker_clear(struct masker *k)
{
    k->n_jobs = 0;
}

int masker_add(struct masker *k, struct gm *m, const int32_t *stop, int n_stop, uint64_t *mask)
{
    if (k->n_jobs >= k->max_jobs) ERR_FATAL("more grammar masks in a step than sequences");
    k->jobs[k->n_jobs] = (struct mask_job){.m = m, .stop = stop, .n_stop = n_stop, .mask = mask};
    return k->n_jobs++;
}

int masker_run(struct masker *k)
{
    if (!k->n_jobs) return 0;
    pthread_mutex_lock(&k->mu);
    k->busy = 1;
    pthread_cond_broadcast(&k->cv);
    pthread_mutex_unlock(&k->mu);
    return k->n_jobs;
}

void masker_wait(struct masker *k, double *cpu_s)
{
    pthread_mutex_lock(&k->mu);
    while (k->busy) pthread_cond_wait(&k->cv, &k->mu);
    *cpu_s = k->cpu_s;
    pthread_mutex_unlock(&k->mu);
}

const uint64_t *masker_result(const struct masker *k, int j, struct err *e)
{
    const struct mask_job *job = &k->jobs[j];
    if (job->rc == 0) return job->mask;
    *e = job->e;
    return NULL;
}
