/* http_work: request-sized work off the event-loop thread.
 *
 * Parsing a 4 MiB body, tokenising it, rendering a chat template or detokenising a long list of
 * ids takes seconds; on the event loop it would stop every stream and /health for as long. A
 * handler hands such work to http_offload: the connection is parked, a worker of a small pool
 * runs the work, and the event loop then sends what the work replied or runs the handler's next
 * step. While a worker holds a request, only that worker touches it: replies are recorded
 * (r->pending), and the sweeper notes a vanished client without resuming the connection. */
#include <stdlib.h>
#include <string.h>

#include "server/http_internal.h"

#define HTTP_WORKERS 2

struct work_item {
    struct http_req *r;
    struct work_item *next;
};

struct http_pool {
    pthread_mutex_t mu;
    pthread_cond_t cv;
    struct work_item *head, *tail;
    int stop;
    pthread_t threads[HTTP_WORKERS];
    int n_threads;
};

/* Runs on the event loop when the worker is done: the recorded reply, or the next step. */
static int after_work(struct http_req *r)
{
    r->on_resume = NULL;
    if (r->pending.status) return http_send_pending(r);
    if (r->then) return r->then(r);
    return http_reply_error(r, 500, HTTP_ERR_SERVER, NULL, NULL, "the request was not answered");
}

/* Runs the work, then hands the request back to the loop. Resuming is the last touch: once
 * the loop takes the connection up it may answer, finish and free the request at once. */
static void run_item(struct http_req *r)
{
    r->work(r);
    struct MHD_Connection *c = r->conn;
    pthread_mutex_lock(&r->mu);
    r->in_worker = 0;
    r->deferred = 0;
    r->suspended = 0; /* so that nothing else resumes it */
    pthread_mutex_unlock(&r->mu);
    MHD_resume_connection(c);
}

static void *worker(void *arg)
{
    struct http_pool *p = arg;
    pthread_mutex_lock(&p->mu);
    for (;;) {
        while (!p->head && !p->stop) pthread_cond_wait(&p->cv, &p->mu);
        if (p->stop) break;
        struct work_item *it = p->head;
        p->head = it->next;
        if (!p->head) p->tail = NULL;
        pthread_mutex_unlock(&p->mu);
        run_item(it->r);
        free(it);
        pthread_mutex_lock(&p->mu);
    }
    pthread_mutex_unlock(&p->mu);
    return NULL;
}

struct http_pool *http_pool_create(void)
{
    struct http_pool *p = xcalloc(1, sizeof *p);
    pthread_mutex_init(&p->mu, NULL);
    pthread_cond_init(&p->cv, NULL);
    for (int i = 0; i < HTTP_WORKERS; i++)
        if (pthread_create(&p->threads[p->n_threads], NULL, worker, p) == 0) p->n_threads++;
    if (!p->n_threads) ERR_FATAL("cannot start an HTTP worker thread");
    return p;
}

/* Stops the workers after the work they are doing; work not yet started is dropped (its
 * connections are closed with the server). */
void http_pool_destroy(struct http_pool *p)
{
    if (!p) return;
    pthread_mutex_lock(&p->mu);
    p->stop = 1;
    pthread_cond_broadcast(&p->cv);
    pthread_mutex_unlock(&p->mu);
    for (int i = 0; i < p->n_threads; i++) pthread_join(p->threads[i], NULL);
    for (struct work_item *it = p->head, *next; it; it = next) {
        next = it->next;
        free(it);
    }
    pthread_cond_destroy(&p->cv);
    pthread_mutex_destroy(&p->mu);
    free(p);
}

int http_offload(struct http_req *r, void (*work)(struct http_req *r),
                 int (*then)(struct http_req *r))
{
    struct http_pool *p = r->srv->pool;
    struct work_item *it = xcalloc(1, sizeof *it);
    it->r = r;
    r->work = work;
    r->then = then;
    r->on_resume = after_work;
    pthread_mutex_lock(&r->mu);
    r->in_worker = 1;
    r->deferred = 1;
    r->suspended = 1;
    MHD_suspend_connection(r->conn);
    pthread_mutex_unlock(&r->mu);
    pthread_mutex_lock(&p->mu);
    if (p->tail) p->tail->next = it;
    else p->head = it;
    p->tail = it;
    pthread_cond_signal(&p->cv);
    pthread_mutex_unlock(&p->mu);
    return 0;
}
