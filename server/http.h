/* http: the HTTP layer on libmicrohttpd — one event-loop thread (epoll), routing, body limits,
 * API keys, CORS, JSON replies and streamed (chunked) replies fed without blocking.
 *
 * A handler either replies at once, or starts asynchronous work and suspends its connection:
 *  - a streamed reply: http_stream() installs r->on_read, which returns bytes, or 0 after
 *    http_suspend() when nothing is ready yet;
 *  - a delayed reply: the handler calls http_suspend(); when woken, r->on_resume runs on the
 *    event-loop thread and replies or suspends again.
 * Any thread (the engine's) calls http_wake() when there is news. r->on_close runs once when the
 * connection ends, normally or not (client gone): it must stop anything that could still wake r. */
#ifndef SEEKD_HTTP_H
#define SEEKD_HTTP_H

#include <pthread.h>
#include <stdarg.h>
#include <stddef.h>
#include <sys/socket.h>
#include <sys/types.h>

#include <jansson.h>

#include "engine/err.h"

struct http_server;
struct http_req;

struct http_config {
    const char *host;          /* "127.0.0.1", "::1", "0.0.0.0", "::" */
    int port;                  /* 0: any free port (see http_port) */
    size_t max_body;           /* bytes; larger bodies get 413 */
    size_t max_header;         /* request line + headers, bytes: larger get 431 */
    size_t connection_memory;  /* per-connection buffer (holds the head and body pieces) */
    unsigned max_connections;  /* more get 503 at once */
    unsigned max_connections_per_ip; /* more from one address are closed at once; 0: no limit */
    unsigned idle_timeout_s;   /* an idle connection is closed after this */
    double header_timeout_s;   /* a request head must be in this long after it began; 0: none */
    double body_timeout_s;     /* its body this long after the head; 0: none */
    const char *const *api_keys; /* NULL-terminated, copied; empty: no authentication */
    const char *const *cors_origins; /* NULL-terminated; "*" allows any; empty: CORS off */
    int reuse_port;            /* 1: SO_REUSEPORT (several processes share the port) */
    const char *const *allowed_hosts; /* NULL-terminated Host names besides IP literals,
                                         localhost and host; "*.x" any subdomain, "*" any */
};

typedef int (*http_handler)(struct http_req *r);

struct http_route {
    const char *method;
    const char *path;  /* exact, or a prefix when it ends in '*' */
    http_handler fn;
    int public;        /* 1: no API key needed (/health) */
};

struct http_req {
    struct http_server *srv;
    void *app;                 /* the application context given to http_start */
    const char *method;
    char *path;                /* without the query string */
    char *body;                /* NUL-terminated */
    size_t n_body;
    /* set by handlers for asynchronous replies */
    int (*on_resume)(struct http_req *r);
    ssize_t (*on_read)(struct http_req *r, char *buf, size_t max);
    void (*on_close)(struct http_req *r, int client_gone);
    void *user;
    /* private to http.c */
    struct MHD_Connection *conn;
    pthread_mutex_t mu;
    int suspended, wake_pending, replied, too_large, started, peer_gone;
    int no_memory;             /* the body could not be stored: the request gets 503 */
    double t_cut;              /* when a chunked body crossed the limit (monotonic s) */
    size_t n_dropped;          /* bytes read and dropped since */
    double deadline;           /* monotonic seconds; 0: none. Past it the sweeper sets timed_out */
    int timed_out;             /* and wakes the connection */
    size_t cap_body;
    char *origin;              /* allowed CORS origin to echo, or NULL */
    char *hdr_name[8], *hdr_value[8];
    int n_hdrs;
    /* off the event loop (http_offload) */
    void (*work)(struct http_req *r);
    int (*then)(struct http_req *r);
    int in_worker;             /* a worker holds the request: nothing else touches it */
    int deferred;              /* replies are recorded in pending, sent after the work */
    struct {
        int status;            /* 0: none */
        char *content_type, *body;
        size_t len;
    } pending;
    struct http_req *prev, *next; /* the server's list of live requests */
};

/* Starts listening; the event loop runs on its own thread. */
struct http_server *http_start(const struct http_config *cfg, const struct http_route *routes,
                               int n_routes, void *app, struct err *e);
/* Stops accepting new connections; existing ones continue (drain). */
void http_quiesce(struct http_server *s);
void http_stop(struct http_server *s);
int http_port(const struct http_server *s);
/* Serves a connection accepted elsewhere (a socket handed over, the fuzz target's socketpair);
 * the server owns fd from then on. -1 when refused (fd closed). */
int http_add_connection(struct http_server *s, int fd, const struct sockaddr *addr,
                        socklen_t addr_len);
/* Requests in flight (a kept-alive idle connection is not one). */
int http_n_live(struct http_server *s);
/* Wakes every parked connection (a shutdown that must end streams now). */
void http_wake_all(struct http_server *s);
/* 1 when the request carries an accepted API key, or when no keys are configured. */
int http_authorized(struct http_req *r);
/* 401 authentication_error with WWW-Authenticate: Bearer. */
int http_reply_unauthorized(struct http_req *r);
/* Replaces the accepted API keys (copied; NULL-terminated; empty: no authentication). */
void http_set_api_keys(struct http_server *s, const char *const *keys);

/* Replies with a complete body (copied). Returns 0 for the handler to return. */
int http_reply(struct http_req *r, int status, const char *content_type, const char *body,
               size_t len);
/* Replies with a JSON document and frees it; a NULL document (a value jansson refused) becomes a
 * 500 with a fixed body, never a crash. */
int http_reply_json(struct http_req *r, int status, json_t *doc);
/* Any bytes as valid UTF-8 (malloc'd): invalid subparts become U+FFFD; cut = 1 for a text
 * truncated by its buffer, whose incomplete last character is dropped. */
char *http_safe_text(const char *s, size_t n, int cut);
/* OpenAI's error types, by status: 400/405/413/415 invalid_request_error, 401
 * authentication_error, 404 not_found_error, 5xx server_error, 503 service_unavailable_error. */
#define HTTP_ERR_INVALID "invalid_request_error"
#define HTTP_ERR_AUTH "authentication_error"
#define HTTP_ERR_NOT_FOUND "not_found_error"
#define HTTP_ERR_SERVER "server_error"
#define HTTP_ERR_UNAVAILABLE "service_unavailable_error"

/* Replies with an OpenAI error object {"error": {message, type, param, code}}. */
int http_reply_error(struct http_req *r, int status, const char *type, const char *param,
                     const char *code, const char *fmt, ...) __attribute__((format(printf, 6, 7)));
int http_reply_errorv(struct http_req *r, int status, const char *type, const char *param,
                      const char *code, const char *fmt, va_list ap)
    __attribute__((format(printf, 6, 0)));
/* Adds a header to the next reply made by this request (e.g. Retry-After). */
void http_set_header(struct http_req *r, const char *name, const char *value);
/* What r->on_read returns besides a byte count: the reply is complete, or broken off. */
#define HTTP_READ_END (-1)
#define HTTP_READ_ERROR (-2)
/* Runs work(r) on a worker thread with the connection parked: for request-sized work (parsing,
 * tokenising, rendering a template), which would stall the event loop. A reply made there is
 * sent when it returns; else then(r), when not NULL, runs next on the event loop. A handler
 * returns what this returns. */
int http_offload(struct http_req *r, void (*work)(struct http_req *r),
                 int (*then)(struct http_req *r));
/* Starts a chunked reply whose bytes come from r->on_read. */
int http_stream(struct http_req *r, int status, const char *content_type);
/* Parks the connection until http_wake (call from the handler, on_resume or on_read only).
 * Returns 0 without parking when a wake arrived since the caller last looked: look again. */
int http_suspend(struct http_req *r);
/* Wakes a parked connection, from any thread. */
void http_wake(struct http_req *r);
/* Monotonic clock in seconds (for deadlines). */
double http_now(void);
/* A request header, or NULL. */
const char *http_header(struct http_req *r, const char *name);
/* A query-string argument, or NULL. */
const char *http_query(struct http_req *r, const char *name);

#endif
