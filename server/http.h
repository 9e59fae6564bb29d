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
#include <sys/types.h>

#include <jansson.h>

#include "engine/err.h"

struct http_server;
struct http_req;

struct http_config {
    const char *host;          /* "127.0.0.1", "::1", "0.0.0.0", "::" */
    int port;                  /* 0: any free port (see http_port) */
    size_t max_body;           /* bytes; larger bodies get 413 */
    size_t connection_memory;  /* per-connection buffer (headers must fit): larger get 431 */
    unsigned max_connections;
    unsigned idle_timeout_s;   /* an idle connection is closed after this */
    const char *const *api_keys; /* NULL-terminated, copied; empty: no authentication */
    const char *const *cors_origins; /* NULL-terminated; "*" allows any; empty: CORS off */
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
    double deadline;           /* monotonic seconds; 0: none. Past it the sweeper sets timed_out */
    int timed_out;             /* and wakes the connection */
    size_t cap_body;
    char *origin;              /* allowed CORS origin to echo, or NULL */
    char *hdr_name[8], *hdr_value[8];
    int n_hdrs;
    struct http_req *prev, *next; /* the server's list of live requests */
};

/* Starts listening; the event loop runs on its own thread. */
struct http_server *http_start(const struct http_config *cfg, const struct http_route *routes,
                               int n_routes, void *app, struct err *e);
/* Stops accepting new connections; existing ones continue (drain). */
void http_quiesce(struct http_server *s);
void http_stop(struct http_server *s);
int http_port(const struct http_server *s);
/* Requests in flight (a kept-alive idle connection is not one). */
int http_n_live(struct http_server *s);
/* Wakes every parked connection (a shutdown that must end streams now). */
void http_wake_all(struct http_server *s);
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
/* Replies with an OpenAI error object {"error": {message, type, param, code}}. */
int http_reply_error(struct http_req *r, int status, const char *type, const char *param,
                     const char *code, const char *fmt, ...) __attribute__((format(printf, 6, 7)));
int http_reply_errorv(struct http_req *r, int status, const char *type, const char *param,
                      const char *code, const char *fmt, va_list ap)
    __attribute__((format(printf, 6, 0)));
/* Adds a header to the next reply made by this request (e.g. Retry-After). */
void http_set_header(struct http_req *r, const char *name, const char *value);
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
