/* bench_http: the minimal HTTP/1.1 client under `seekd bench` — one POST per connection over a
 * plain TCP socket, the response de-chunked and split into server-sent events as bytes arrive.
 * Enough for OpenAI-compatible servers on loopback; no TLS, no redirects, no keep-alive. */
#ifndef SEEKD_BENCH_HTTP_H
#define SEEKD_BENCH_HTTP_H

#include <stddef.h>

struct bh_url {
    char host[256];
    char port[16];
    char prefix[256]; /* path before the endpoint, without a trailing slash ("" or "/v1") */
};

/* Parses http://host[:port][/prefix]. -1 when it is not such a URL. */
int bh_parse_url(const char *url, struct bh_url *u);

/* Called for each SSE "data:" payload ("[DONE]" excluded), or once with the whole body when the
 * response is not an event stream. data is NUL-terminated. */
typedef void (*bh_event_fn)(void *ctx, const char *data, size_t len);

/* POSTs a JSON body to prefix + path; returns the HTTP status, or -1 with a message in err when
 * the connection fails. Events arrive while the response streams. */
int bh_post(const struct bh_url *u, const char *path, const char *body, bh_event_fn on_event,
            void *ctx, char *err, size_t err_len);

/* GETs prefix + path; the body in a malloc'd string (*out), the status returned, -1 on error. */
int bh_get(const struct bh_url *u, const char *path, char **out, char *err, size_t err_len);

#endif
