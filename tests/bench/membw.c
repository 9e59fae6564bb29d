/* membw: the machine's memory bandwidth, STREAM-style, with the thread count the engines use.
 *
 * Triad a[i] = b[i] + s * c[i] over three 128 MiB arrays of doubles (24 bytes per element, as
 * STREAM counts it, write-allocate traffic not counted), and a read-only pass (sum of an array:
 * 8 bytes per element — the access pattern of reading weights). Best of 8 passes each; prints
 * one JSON line. Usage: membw [THREADS] (default: online cores). */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

enum { N = 16 * 1024 * 1024, PASSES = 8 };

struct part {
    double *a, *b, *c;
    size_t lo, hi;
    int read_only;
    double sum;
};

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void *run_part(void *p)
{
    struct part *q = p;
    if (q->read_only) {
        double s0 = 0, s1 = 0, s2 = 0, s3 = 0;
        for (size_t i = q->lo; i + 4 <= q->hi; i += 4) s0 += q->b[i], s1 += q->b[i + 1], s2 += q->b[i + 2], s3 += q->b[i + 3];
        q->sum = s0 + s1 + s2 + s3;
    } else {
        for (size_t i = q->lo; i < q->hi; i++) q->a[i] = q->b[i] + 3.0 * q->c[i];
    }
    return NULL;
}

/* One pass over all threads; returns seconds. */
static double pass(struct part *parts, int n_threads, int read_only)
{
    pthread_t th[256];
    double t0 = now_s();
    for (int i = 0; i < n_threads; i++) {
        parts[i].read_only = read_only;
        pthread_create(&th[i], NULL, run_part, &parts[i]);
    }
    for (int i = 0; i < n_threads; i++) pthread_join(th[i], NULL);
    return now_s() - t0;
}

int main(int argc, char **argv)
{
    int n_threads = argc > 1 ? atoi(argv[1]) : (int)sysconf(_SC_NPROCESSORS_ONLN);
    if (n_threads < 1 || n_threads > 256) n_threads = 1;
    double *a = malloc(N * sizeof *a), *b = malloc(N * sizeof *b), *c = malloc(N * sizeof *c);
    if (!a || !b || !c) return 1;
    struct part parts[256];
    for (int i = 0; i < n_threads; i++) {
        parts[i] = (struct part){a, b, c, (size_t)N * i / n_threads, (size_t)N * (i + 1) / n_threads, 0, 0};
        for (size_t k = parts[i].lo; k < parts[i].hi; k++) a[k] = 1.0, b[k] = 2.0, c[k] = 0.5; /* first touch */
    }
    double best_triad = 1e9, best_read = 1e9;
    for (int p = 0; p < PASSES; p++) {
        double t = pass(parts, n_threads, 0);
        if (t < best_triad) best_triad = t;
        t = pass(parts, n_threads, 1);
        if (t < best_read) best_read = t;
    }
    printf("{\"threads\": %d, \"triad_gbps\": %.2f, \"read_gbps\": %.2f}\n", n_threads,
           3.0 * N * sizeof(double) / best_triad / 1e9, (double)N * sizeof(double) / best_read / 1e9);
    free(a), free(b), free(c);
    return 0;
}
