/* http_conns: each TCP connection from accept to close, and the limits on them.
 *
 * Over max_connections a new connection gets 503 at once (libmicrohttpd would stop accepting
 * and leave it in the kernel's backlog, where a legitimate client waits behind the flood). The
 * request head must be in within header_timeout of the connection opening, or of the first byte
 * after a kept-alive response (an idle kept-alive connection is left to the idle timeout); the
 * body within body_timeout of the head. These are deadlines: an idle timer, which every dripped
 * byte resets, lets a slow client hold a connection forever. A connection past its deadline gets
 * 408 and is shut; libmicrohttpd then closes it. A connection waiting for a head whose client
 * has shut its sending side is closed too: no head can come, and libmicrohttpd 0.9.75 would
 * only notice at its idle timeout. The per-address limit is libmicrohttpd's own
 * (MHD_OPTION_PER_IP_CONNECTION_LIMIT). */
#include <linux/tcp.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

#include "server/http_internal.h"

static struct http_conn *conn_of(struct MHD_Connection *c)
{
    const union MHD_ConnectionInfo *ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    return ci ? ci->socket_context : NULL;
}

static uint64_t bytes_received(MHD_socket fd)
{
    struct tcp_info ti;
    socklen_t len = sizeof ti;
    memset(&ti, 0, sizeof ti);
    if (getsockopt(fd, IPPROTO_TCP, TCP_INFO, &ti, &len) != 0) return 0;
    return ti.tcpi_bytes_received;
}

static double deadline_after(double timeout_s)
{
    return timeout_s > 0 ? http_now() + timeout_s : 0;
}

static void conn_started(struct http_server *s, struct MHD_Connection *c, void **ctx)
{
    const union MHD_ConnectionInfo *ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
    struct http_conn *k = xcalloc(1, sizeof *k);
    k->fd = ci ? ci->connect_fd : MHD_INVALID_SOCKET;
    k->deadline = deadline_after(s->cfg.header_timeout_s);
    k->t_phase = http_now();
    *ctx = k;
    pthread_mutex_lock(&s->conn_mu);
    k->next = s->conns;
    if (s->conns) s->conns->prev = k;
    s->conns = k;
    unsigned n = ++s->n_conns;
    if (n > s->cfg.max_connections && k->fd != MHD_INVALID_SOCKET) {
        k->deadline = 0;
        http_raw_reply(k->fd, "503 Service Unavailable", "Retry-After: 1\r\n", "too_many_connections",
                  "the server has too many open connections; retry shortly", SHUT_RDWR);
    }
    pthread_mutex_unlock(&s->conn_mu);
}

static void conn_closed(struct http_server *s, struct http_conn *k)
{
    pthread_mutex_lock(&s->conn_mu);
    if (k->prev) k->prev->next = k->next;
    else s->conns = k->next;
    if (k->next) k->next->prev = k->prev;
    s->n_conns--;
    pthread_mutex_unlock(&s->conn_mu); /* after this the socket may close: the sweeper is done */
    free(k);
}

void http_conn_event(void *cls, struct MHD_Connection *c, void **socket_context,
                           enum MHD_ConnectionNotificationCode code)
{
    if (code == MHD_CONNECTION_NOTIFY_STARTED) conn_started(cls, c, socket_context);
    else if (*socket_context) conn_closed(cls, *socket_context);
    if (code == MHD_CONNECTION_NOTIFY_CLOSED) *socket_context = NULL;
}

/* Moves connection c to phase p with a deadline timeout_s away (0: none). -1: it expired. */
static int conn_phase(struct http_server *s, struct MHD_Connection *c, int phase, double timeout_s)
{
    struct http_conn *k = conn_of(c);
    if (!k) return 0;
    pthread_mutex_lock(&s->conn_mu);
    int expired = k->expired;
    k->phase = phase;
    k->t_phase = http_now();
    k->idle = 0;
    k->deadline = deadline_after(timeout_s);
    if (phase == CONN_HEAD) { /* kept alive: the clock starts with the next request's first byte */
        k->idle = 1;
        k->deadline = 0;
        k->rx_mark = bytes_received(k->fd);
    }
    pthread_mutex_unlock(&s->conn_mu);
    return expired ? -1 : 0;
}

void http_conn_body_started(struct http_server *s, struct MHD_Connection *c)
{
    conn_phase(s, c, CONN_BODY, s->cfg.body_timeout_s);
}

int http_conn_body_done(struct http_server *s, struct MHD_Connection *c)
{
    return conn_phase(s, c, CONN_BUSY, 0);
}

void http_conn_request_done(struct http_server *s, struct MHD_Connection *c)
{
    conn_phase(s, c, CONN_HEAD, 0);
}

/* The client shut its sending side (and everything it sent has been read). */
static int peer_done_sending(MHD_socket fd)
{
    char b;
    return recv(fd, &b, 1, MSG_PEEK | MSG_DONTWAIT) == 0;
}

void http_conn_sweep(struct http_server *s, double now)
{
    pthread_mutex_lock(&s->conn_mu);
    for (struct http_conn *k = s->conns; k; k = k->next) {
        /* a second in: whatever complete request arrived has been taken up by then */
        if (k->phase == CONN_HEAD && !k->expired && now - k->t_phase >= 1.0 &&
            peer_done_sending(k->fd)) {
            k->expired = 1;
            shutdown(k->fd, SHUT_RDWR);
            continue;
        }
        if (k->idle && s->cfg.header_timeout_s > 0 && bytes_received(k->fd) != k->rx_mark) {
            k->idle = 0; /* a next request began: its head has header_timeout */
            k->deadline = now + s->cfg.header_timeout_s;
        }
        if (!k->deadline || now < k->deadline || k->expired) continue;
        k->expired = 1;
        http_raw_reply(k->fd, "408 Request Timeout", "", "request_timeout",
                  k->phase == CONN_HEAD ? "the request head did not arrive in time"
                                        : "the request body did not arrive in time",
                  SHUT_RDWR);
    }
    pthread_mutex_unlock(&s->conn_mu);
}
