/* dp: the router of rank 0 — which rank takes a request, the relays of requests running on other
 * ranks, heartbeats, and noticing a rank that has gone (see dp.h for the protocol).
 *
 * Threads: dp_route, dp_send, dp_metrics_add and dp_fault are called from any
 * thread (the HTTP thread, the main thread); everything else runs on the router's thread, the
 * only one that touches the control plane on rank 0. d->mu guards what both sides see. */
#include "engine/dp.h"

#include <pthread.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "engine/gen.h"
#include "engine/wire.h"

/* A request running on another rank, as rank 0 holds it. */
struct relay {
    struct gen *g;
    int rank;
    uint8_t *msg; /* the encoded DP_REQ until sent */
    size_t n_msg;
    int started; /* an event has arrived: no longer queued */
    struct relay *next;
};

/* What rank 0 knows of one other rank. */
struct peer {
    double last_heard;      /* monotonic seconds */
    int64_t n_routed;       /* requests routed to it, ever (rank 0's own included) */
    int n_seqs;             /* sequences of live relays routed there */
    int n_queued;           /* relays with no event yet */
    struct metrics metrics; /* its latest snapshot (mutex unused) */
};

struct dp {
    struct comm_mpi *w;
    int size;
    int stride;             /* requests go to ranks 0, stride, 2 * stride, ... (the tensor-
                             * parallel groups' first ranks; 1: every rank) */
    double silence_s;
    pthread_t thread;
    pthread_mutex_t mu;     /* guards incoming, peers, fault, stop */
    struct relay *incoming; /* handed over by dp_send, not sent yet */
    struct relay *live;     /* sent; the router thread's own list */
    struct peer *peers;     /* [size]; [0] is rank 0 itself: only n_routed */
    char fault[512];        /* the first failure, "" while none */
    int stop;
    double next_beat;
};

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

double dp_silence_s(double stall_s)
{
    return stall_s < DP_MAX_SILENCE_S ? stall_s : DP_MAX_SILENCE_S;
}

/* Records the first failure (later ones follow from it). */
static void set_fault(struct dp *d, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void set_fault(struct dp *d, const char *fmt, ...)
{
    va_list ap;
    pthread_mutex_lock(&d->mu);
    if (!d->fault[0]) {
        va_start(ap, fmt);
        vsnprintf(d->fault, sizeof d->fault, fmt, ap);
        va_end(ap);
    }
    pthread_mutex_unlock(&d->mu);
}

/* ---- routing (any thread) ------------------------------------------------------------------- */

int dp_route(struct dp *d, int local_seqs, int local_queued, int n_seqs, int max_queued)
{
    int best = -1, best_load = 0;
    pthread_mutex_lock(&d->mu);
    for (int r = 0; r < d->size; r += d->stride) {
        int load = r ? d->peers[r].n_seqs : local_seqs;
        int queued = r ? d->peers[r].n_queued : local_queued;
        if (queued >= max_queued || (best >= 0 && load >= best_load)) continue;
        best = r;
        best_load = load;
    }
    if (best >= 0) d->peers[best].n_routed++;
    if (best > 0) {
        d->peers[best].n_seqs += n_seqs;
        d->peers[best].n_queued++;
    }
    pthread_mutex_unlock(&d->mu);
    return best;
}

void dp_route_local(struct dp *d)
{
    pthread_mutex_lock(&d->mu);
    d->peers[0].n_routed++;
    pthread_mutex_unlock(&d->mu);
}

void dp_send(struct dp *d, int rank, struct gen *g, uint8_t *msg, size_t n)
{
    struct relay *rl = xcalloc(1, sizeof *rl);
    *rl = (struct relay){.g = g, .rank = rank, .msg = msg, .n_msg = n};
    pthread_mutex_lock(&d->mu);
    rl->next = d->incoming;
    d->incoming = rl;
    pthread_mutex_unlock(&d->mu);
}

void dp_metrics_add(struct dp *d, struct metrics *sum)
{
    pthread_mutex_lock(&d->mu);
    for (int r = 1; r < d->size; r++) metrics_add(sum, &d->peers[r].metrics);
    pthread_mutex_unlock(&d->mu);
}

int dp_routed(struct dp *d, int64_t *out, int max)
{
    pthread_mutex_lock(&d->mu);
    for (int r = 0; r < d->size && r < max; r++) out[r] = d->peers[r].n_routed;
    pthread_mutex_unlock(&d->mu);
    return d->size < max ? d->size : max;
}

int dp_fault(struct dp *d, char *msg, size_t n)
{
    pthread_mutex_lock(&d->mu);
    int failed = d->fault[0] != 0;
    if (failed) snprintf(msg, n, "%s", d->fault);
    pthread_mutex_unlock(&d->mu);
    return failed;
}

/* ---- the router thread ---------------------------------------------------------------------- */

static void send_or_fault(struct dp *d, int dst, int tag, struct wire *w)
{
    struct err e = {0};
    size_t n;
    uint8_t *p = wire_take(w, &n);
    if (comm_mpi_send(d->w, dst, tag, p, n, &e) != 0) set_fault(d, "%s", e.msg);
}

/* Sends the requests handed over since the last pass, oldest first. */
static int send_requests(struct dp *d)
{
    pthread_mutex_lock(&d->mu);
    struct relay *in = d->incoming;
    d->incoming = NULL;
    pthread_mutex_unlock(&d->mu);
    int n = 0;
    struct relay *rev = NULL;
    for (struct relay *next; in; in = next) {
        next = in->next;
        in->next = rev;
        rev = in;
    }
    for (struct relay *next; rev; rev = next, n++) {
        struct err e = {0};
        next = rev->next;
        if (comm_mpi_send(d->w, rev->rank, DP_REQ, rev->msg, rev->n_msg, &e) != 0)
            set_fault(d, "%s", e.msg);
        rev->msg = NULL;
        rev->next = d->live;
        d->live = rev;
    }
    return n;
}

/* Forwards the cancellations of clients that went away. */
static void send_cancels(struct dp *d)
{
    for (struct relay *rl = d->live; rl; rl = rl->next) {
        struct gen *g = rl->g;
        if (!__atomic_load_n(&g->cancel, __ATOMIC_ACQUIRE) || g->cancel_sent) continue;
        g->cancel_sent = 1;
        struct wire w;
        wire_init(&w);
        wire_put_i64(&w, (int64_t)g->serial);
        send_or_fault(d, rl->rank, DP_CANCEL, &w);
    }
}

/* Drops a relay that has ended: the router's reference, and its share of the rank's load. */
static void retire(struct dp *d, struct relay **pp)
{
    struct relay *rl = *pp;
    *pp = rl->next;
    pthread_mutex_lock(&d->mu);
    d->peers[rl->rank].n_seqs -= rl->g->p.n;
    if (!rl->started) d->peers[rl->rank].n_queued--;
    pthread_mutex_unlock(&d->mu);
    gen_notify(rl->g);
    gen_unref(rl->g);
    free(rl->msg);
    free(rl);
}

static struct relay **find_relay(struct dp *d, int rank, uint64_t id)
{
    for (struct relay **pp = &d->live; *pp; pp = &(*pp)->next)
        if ((*pp)->rank == rank && (*pp)->g->serial == id) return pp;
    return NULL;
}

/* One event of a relay; retires it after its last. */
static void relay_event(struct dp *d, struct relay **pp, struct gen_event *ev)
{
    struct relay *rl = *pp;
    int last = ev->kind == GEN_EV_DONE;
    if (!rl->started) {
        rl->started = 1;
        pthread_mutex_lock(&d->mu);
        d->peers[rl->rank].n_queued--;
        pthread_mutex_unlock(&d->mu);
    }
    gen_relay(rl->g, ev);
    if (last)
        retire(d, pp);
    else
        gen_notify(rl->g);
}

static void take_events(struct dp *d, int src, struct wire_rd *r)
{
    struct err e = {0};
    int32_t n = wire_get_count(r, INT32_MAX, 8);
    for (int32_t i = 0; i < n; i++) {
        uint64_t id = (uint64_t)wire_get_i64(r);
        struct gen_event ev;
        if (wire_get_event(r, &ev, &e) != 0)
            return set_fault(d, "rank %d sent a malformed message: %s", src, e.msg);
        struct relay **pp = find_relay(d, src, id);
        if (pp)
            relay_event(d, pp, &ev);
        else
            gen_event_clear(&ev); /* a request this rank already ended */
    }
}

static void take_beat(struct dp *d, int src, struct wire_rd *r)
{
    struct err e = {0};
    struct metrics m;
    int32_t alive = wire_get_i32(r);
    double idle_s = wire_get_f64(r);
    if (wire_get_metrics(r, &m, &e) != 0)
        return set_fault(d, "rank %d sent a malformed heartbeat: %s", src, e.msg);
    pthread_mutex_lock(&d->mu);
    d->peers[src].metrics = m;
    pthread_mutex_unlock(&d->mu);
    if (!alive) set_fault(d, "rank %d: its engine has made no progress for %.1fs", src, idle_s);
}

static void take_message(struct dp *d, struct comm_mpi_msg *m)
{
    struct wire_rd r = wire_reader(m->data, m->n);
    size_t len;
    if (m->src <= 0 || m->src >= d->size) return;
    d->peers[m->src].last_heard = now_s();
    if (m->tag == DP_EVENTS) take_events(d, m->src, &r);
    if (m->tag == DP_BEAT) take_beat(d, m->src, &r);
    if (m->tag == DP_FAULT) {
        char *why = wire_get_str(&r, &len);
        set_fault(d, "rank %d: %s", m->src, why ? why : "(no reason given)");
        free(why);
    }
}

/* Heartbeats out, silence in. */
static void beat(struct dp *d, double now)
{
    if (now < d->next_beat) return;
    d->next_beat = now + DP_BEAT_S;
    for (int r = 1; r < d->size; r++) {
        struct wire w;
        wire_init(&w);
        wire_put_i32(&w, 1);
        send_or_fault(d, r, DP_BEAT, &w);
        if (now - d->peers[r].last_heard > d->silence_s)
            set_fault(d, "rank %d has sent nothing for %.1fs: stopped, hung or unreachable", r,
                      now - d->peers[r].last_heard);
    }
}

/* One pass: requests out, cancellations out, messages in, heartbeats. True if anything moved. */
static bool pass(struct dp *d)
{
    struct err e = {0};
    struct comm_mpi_msg m;
    bool moved = send_requests(d) > 0;
    send_cancels(d);
    for (int rc; (rc = comm_mpi_poll(d->w, &m, &e)) != 0; moved = true) {
        if (rc < 0) {
            set_fault(d, "%s", e.msg);
            break;
        }
        take_message(d, &m);
        free(m.data);
    }
    beat(d, now_s());
    return moved;
}

/* Ends what is still out: every rank is told to stop, every relay ends with an abort. */
static void shut_down(struct dp *d)
{
    struct err e = {0};
    send_requests(d); /* so that none is left behind unaborted */
    for (int r = 1; r < d->size; r++) {
        struct wire w;
        wire_init(&w);
        send_or_fault(d, r, DP_STOP, &w);
    }
    while (d->live) {
        gen_abort_relay(d->live->g);
        retire(d, &d->live);
    }
    if (comm_mpi_flush(d->w, 10, &e) != 0) set_fault(d, "%s", e.msg);
}

static void *router_main(void *arg)
{
    struct dp *d = arg;
    const struct timespec nap = {0, 500 * 1000};
    for (;;) {
        pthread_mutex_lock(&d->mu);
        int stop = d->stop;
        pthread_mutex_unlock(&d->mu);
        if (stop) break;
        if (!pass(d)) nanosleep(&nap, NULL);
    }
    shut_down(d);
    return NULL;
}

struct dp *dp_create(struct comm_mpi *w, double stall_s, int stride)
{
    struct dp *d = xcalloc(1, sizeof *d);
    d->w = w;
    d->size = comm_mpi_size(w);
    d->stride = stride > 0 ? stride : 1;
    d->silence_s = dp_silence_s(stall_s);
    d->peers = xcalloc((size_t)d->size, sizeof *d->peers);
    double now = now_s();
    for (int r = 0; r < d->size; r++) d->peers[r].last_heard = now;
    pthread_mutex_init(&d->mu, NULL);
    if (pthread_create(&d->thread, NULL, router_main, d) != 0)
        ERR_FATAL("cannot start the data-parallel router thread");
    return d;
}

void dp_destroy(struct dp *d)
{
    if (!d) return;
    pthread_mutex_lock(&d->mu);
    d->stop = 1;
    pthread_mutex_unlock(&d->mu);
    pthread_join(d->thread, NULL);
    pthread_mutex_destroy(&d->mu);
    free(d->peers);
    free(d);
}
