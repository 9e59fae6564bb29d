/* http_internal: the server state shared by http.c (the daemon, dispatch, replies) and
 * http_guard.c (what a request and a connection must satisfy). Nothing outside server/http*.c
 * includes this. */
#ifndef SEEKD_HTTP_INTERNAL_H
#define SEEKD_HTTP_INTERNAL_H

#include <microhttpd.h>
#include <pthread.h>
#include <stdint.h>

#include "server/http.h"

/* One TCP connection from accept to close: MHD's socket context for it. */
struct http_conn {
    MHD_socket fd;
    enum { CONN_HEAD, CONN_BODY, CONN_BUSY } phase;
    double deadline;           /* monotonic seconds the head or body must be in by; 0: none */
    double t_phase;            /* when it entered its phase (monotonic seconds) */
    int idle;                  /* kept alive after a response: no byte of a next request yet */
    uint64_t rx_mark;          /* bytes the socket had received when the last response ended */
    int expired;               /* the sweeper answered 408 and shut the socket */
    struct http_conn *prev, *next;
};

struct http_server {
    struct MHD_Daemon *d;
    struct http_config cfg;
    const struct http_route *routes;
    int n_routes;
    void *app;
    pthread_mutex_t mu;        /* guards the list of live requests */
    struct http_req *live;
    pthread_mutex_t keys_mu;   /* guards keys (replaced on SIGHUP) */
    char **keys;               /* owned copy of the API keys, NULL-terminated */
    char **hosts;              /* owned copy of cfg.allowed_hosts, NULL-terminated */
    pthread_mutex_t conn_mu;   /* guards conns and n_conns; held while a socket is shut */
    struct http_conn *conns;
    unsigned n_conns;          /* open connections, refused ones included until closed */
    struct http_pool *pool;    /* workers for http_offload */
    pthread_t sweeper;
    int stopping;
};

/* ---- http_work.c --------------------------------------------------------------------------- */

struct http_pool *http_pool_create(void);
void http_pool_destroy(struct http_pool *p);

/* ---- http.c -------------------------------------------------------------------------------- */

/* Sends the reply a worker recorded (event-loop thread). */
int http_send_pending(struct http_req *r);

/* Writes a whole response (a fixed error text, never request bytes) to fd, then shuts the
 * socket in direction how. Only where libmicrohttpd has queued nothing on the connection (at
 * accept, or while a head or body is still arriving) and cannot queue a reply itself. */
void http_raw_reply(MHD_socket fd, const char *status, const char *extra, const char *code,
                    const char *msg, int how);

/* ---- http_conns.c ------------------------------------------------------------------------ */

/* MHD_OPTION_NOTIFY_CONNECTION: tracks connections, refuses those over max_connections with a
 * 503 at once (instead of leaving them in the kernel's backlog). */
void http_conn_event(void *cls, struct MHD_Connection *c, void **socket_context,
                     enum MHD_ConnectionNotificationCode code);
/* Deadline bookkeeping at each step of a request on connection c. body_done returns -1 when the
 * sweeper already ended the connection (its 408 is on the wire: nothing more may be sent). */
void http_conn_body_started(struct http_server *s, struct MHD_Connection *c);
int http_conn_body_done(struct http_server *s, struct MHD_Connection *c);
void http_conn_request_done(struct http_server *s, struct MHD_Connection *c);
/* Called by the sweeper: ends connections past their head or body deadline with 408. */
void http_conn_sweep(struct http_server *s, double now);

/* ---- http_guard.c ------------------------------------------------------------------------ */

/* The request's head is in: checks its framing, size and Host. 0: go on; -1: replied (400,
 * 421, 431, 501) with Connection: close, so nothing after it on the connection runs. */
int http_guard_head(struct http_req *r, const char *method, const char *version);
/* POSTs must carry a JSON body (415 otherwise): a browser's cross-site form cannot. */
int http_guard_json(struct http_req *r);
/* A chunked body crossed max_body: answers 413 on the socket now; the rest is discarded. */
void http_guard_cut_body(struct http_req *r);

#endif
