/* dp_rank: the loop of a data-parallel rank other than 0 — rank 0's requests into this rank's
 * engine, their events back, heartbeats both ways, and noticing that rank 0 has gone (see dp.h
 * for the protocol). It plays the part the HTTP server plays on rank 0: it submits, polls,
 * cancels and releases requests through the public engine API only.
 *
 * Threads: the loop runs on a thread of its own, the only one that touches the control plane
 * on this rank; dp_rank_state may be called from any thread. */
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "engine/dp.h"
#include "engine/wire.h"

/* A request of rank 0's running here. */
struct job {
    uint64_t id; /* rank 0's id for it */
    struct gen *g;
    struct job *next;
};

struct dp_rank {
    struct engine *eng;
    struct comm_mpi *w;
    double stall_s, silence_s;
    pthread_t thread;
    pthread_mutex_t mu; /* guards state, msg, quit */
    int state;          /* 0 serving, 1 stopped by rank 0, -1 fault */
    char msg[512];
    int quit;                     /* dp_rank_destroy asked the loop to end */
    struct job *jobs;             /* the loop's own list */
    double last_heard, next_beat; /* monotonic seconds */
};

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static void set_state(struct dp_rank *r, int state, const char *msg)
{
    pthread_mutex_lock(&r->mu);
    if (!r->state) {
        r->state = state;
        snprintf(r->msg, sizeof r->msg, "%s", msg ? msg : "");
    }
    pthread_mutex_unlock(&r->mu);
}

/* Takes a failure: rank 0 hears why (if it still listens), the server logs it and aborts. */
static void fail(struct dp_rank *r, const char *msg)
{
    struct err e = {0};
    struct wire w;
    wire_init(&w);
    wire_put_str(&w, msg, strlen(msg));
    size_t n;
    uint8_t *p = wire_take(&w, &n);
    comm_mpi_send(r->w, 0, DP_FAULT, p, n, &e);
    set_state(r, -1, msg);
}

static void send_to_0(struct dp_rank *r, int tag, struct wire *w)
{
    struct err e = {0};
    size_t n;
    uint8_t *p = wire_take(w, &n);
    if (comm_mpi_send(r->w, 0, tag, p, n, &e) != 0) set_state(r, -1, e.msg);
}

/* ---- requests in ---------------------------------------------------------------------------- */

/* A request the engine refused: its error and the end, as rank 0's relay expects them. */
static void refuse(struct dp_rank *r, uint64_t id, const struct gen_params *p, const char *why)
{
    struct wire w;
    wire_init(&w);
    wire_put_i32(&w, p->n + 1);
    for (int c = 0; c < p->n; c++) {
        struct gen_event ev = {
            .kind = GEN_EV_FINISH, .choice = c, .finish = GEN_FINISH_ERROR, .error = (char *)why};
        wire_put_i64(&w, (int64_t)id);
        wire_put_event(&w, &ev);
    }
    struct gen_event done = {.kind = GEN_EV_DONE, .prompt_tokens = p->n_prompt};
    wire_put_i64(&w, (int64_t)id);
    wire_put_event(&w, &done);
    send_to_0(r, DP_EVENTS, &w);
}

static void take_request(struct dp_rank *r, struct wire_rd *rd)
{
    struct err e = {0};
    struct wire_params wp;
    uint64_t id = (uint64_t)wire_get_i64(rd);
    if (wire_get_params(rd, &wp, &e) != 0 || !wire_rd_end(rd))
        return fail(r, "rank 0 sent a malformed request");
    int busy = 0;
    struct gen *g = engine_submit(r->eng, &wp.p, NULL, NULL, &busy, &e);
    if (!g) {
        refuse(r, id, &wp.p, e.msg);
    } else {
        struct job *j = xcalloc(1, sizeof *j);
        *j = (struct job){.id = id, .g = g, .next = r->jobs};
        r->jobs = j;
    }
    wire_params_free(&wp);
}

static void take_cancel(struct dp_rank *r, struct wire_rd *rd)
{
    uint64_t id = (uint64_t)wire_get_i64(rd);
    for (struct job *j = r->jobs; j; j = j->next)
        if (j->id == id) gen_cancel(j->g);
}

static void take_message(struct dp_rank *r, struct comm_mpi_msg *m)
{
    struct wire_rd rd = wire_reader(m->data, m->n);
    if (m->src != 0) return;
    r->last_heard = now_s();
    if (m->tag == DP_REQ) take_request(r, &rd);
    if (m->tag == DP_CANCEL) take_cancel(r, &rd);
    if (m->tag == DP_STOP) set_state(r, 1, NULL);
}

/* ---- events out ----------------------------------------------------------------------------- */

/* Every event the engine has queued, in one message; finished jobs are released. */
static bool send_events(struct dp_rank *r)
{
    struct wire body;
    int32_t n = 0;
    wire_init(&body);
    for (struct job **pp = &r->jobs; *pp;) {
        struct job *j = *pp;
        struct gen_event ev;
        int done = 0;
        while (!done && gen_poll(j->g, &ev)) {
            wire_put_i64(&body, (int64_t)j->id);
            wire_put_event(&body, &ev);
            done = ev.kind == GEN_EV_DONE;
            gen_event_clear(&ev);
            n++;
        }
        if (!done) {
            pp = &j->next;
            continue;
        }
        *pp = j->next;
        gen_release(j->g);
        free(j);
        r->next_beat = 0; /* the metrics rank 0 sums should include this request at once */
    }
    if (n) {
        struct wire w;
        wire_init(&w);
        wire_put_i32(&w, n);
        wire_put_bytes(&w, body.p, body.n);
        send_to_0(r, DP_EVENTS, &w);
    }
    wire_free(&body);
    return n > 0;
}

/* Heartbeat to rank 0 with this engine's health and metrics; checks on rank 0 and the engine. */
static void beat(struct dp_rank *r, double now)
{
    if (now < r->next_beat) return;
    r->next_beat = now + DP_BEAT_S;
    struct metrics m;
    char why[256];
    int alive = engine_alive(r->eng, r->stall_s);
    engine_metrics(r->eng, &m);
    struct wire w;
    wire_init(&w);
    wire_put_i32(&w, alive);
    wire_put_f64(&w, engine_idle_s(r->eng));
    wire_put_metrics(&w, &m);
    send_to_0(r, DP_BEAT, &w);
    if (!alive) {
        snprintf(why, sizeof why, "its engine has made no progress for %.1fs",
                 engine_idle_s(r->eng));
        fail(r, why);
    } else if (now - r->last_heard > r->silence_s) {
        snprintf(why, sizeof why, "rank 0 has sent nothing for %.1fs: stopped, hung or unreachable",
                 now - r->last_heard);
        set_state(r, -1, why);
    }
}

/* One pass: messages in, events out, heartbeat. True if anything moved. */
static bool pass(struct dp_rank *r)
{
    struct err e = {0};
    struct comm_mpi_msg m;
    bool moved = false;
    for (int rc; (rc = comm_mpi_poll(r->w, &m, &e)) != 0; moved = true) {
        if (rc < 0) {
            set_state(r, -1, e.msg);
            break;
        }
        take_message(r, &m);
        free(m.data);
    }
    moved |= send_events(r);
    beat(r, now_s());
    return moved;
}

static void *rank_main(void *arg)
{
    struct dp_rank *r = arg;
    struct err e = {0};
    const struct timespec nap = {0, 500 * 1000};
    for (;;) {
        pthread_mutex_lock(&r->mu);
        int go = !r->quit && r->state >= 0;
        pthread_mutex_unlock(&r->mu);
        if (!go) break;
        if (!pass(r)) nanosleep(&nap, NULL);
    }
    for (struct job *j = r->jobs, *next; j; j = next) {
        next = j->next;
        gen_cancel(j->g);
        gen_release(j->g);
        free(j);
    }
    r->jobs = NULL;
    comm_mpi_flush(r->w, 5, &e);
    return NULL;
}

struct dp_rank *dp_rank_start(struct engine *eng, struct comm_mpi *w, double stall_s)
{
    struct dp_rank *r = xcalloc(1, sizeof *r);
    r->eng = eng;
    r->w = w;
    r->stall_s = stall_s;
    r->silence_s = dp_silence_s(stall_s);
    r->last_heard = now_s();
    pthread_mutex_init(&r->mu, NULL);
    if (pthread_create(&r->thread, NULL, rank_main, r) != 0)
        ERR_FATAL("cannot start the data-parallel rank thread");
    return r;
}

int dp_rank_state(struct dp_rank *r, char *msg, size_t n)
{
    pthread_mutex_lock(&r->mu);
    int state = r->state;
    if (msg && n) snprintf(msg, n, "%s", r->msg);
    pthread_mutex_unlock(&r->mu);
    return state;
}

void dp_rank_destroy(struct dp_rank *r)
{
    if (!r) return;
    pthread_mutex_lock(&r->mu);
    r->quit = 1;
    pthread_mutex_unlock(&r->mu);
    pthread_join(r->thread, NULL);
    pthread_mutex_destroy(&r->mu);
    free(r);
}
