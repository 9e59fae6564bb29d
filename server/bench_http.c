/* bench_http: socket, request, and a byte-at-a-time state machine for the response: status line
 * and headers, then chunked or plain body, then SSE lines. */
#include "server/bench_http.h"

#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <unistd.h>

int bh_parse_url(const char *url, struct bh_url *u)
{
    memset(u, 0, sizeof *u);
    if (strncmp(url, "http://", 7) != 0) return -1;
    const char *h = url + 7, *slash = strchr(h, '/'), *end = slash ? slash : h + strlen(h);
    const char *colon = memchr(h, ':', (size_t)(end - h));
    size_t hl = (size_t)((colon ? colon : end) - h);
    if (hl == 0 || hl >= sizeof u->host) return -1;
    memcpy(u->host, h, hl);
    snprintf(u->port, sizeof u->port, "%.*s", colon ? (int)(end - colon - 1) : 2, colon ? colon + 1 : "80");
    if (slash) snprintf(u->prefix, sizeof u->prefix, "%s", slash);
    size_t pl = strlen(u->prefix);
    while (pl > 0 && u->prefix[pl - 1] == '/') u->prefix[--pl] = 0;
    return 0;
}

static int dial(const struct bh_url *u, char *err, size_t err_len)
{
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *res;
    int rc = getaddrinfo(u->host, u->port, &hints, &res);
    if (rc != 0) {
        snprintf(err, err_len, "%s:%s: %s", u->host, u->port, gai_strerror(rc));
        return -1;
    }
    int fd = -1;
    for (struct addrinfo *a = res; a && fd < 0; a = a->ai_next) {
        fd = socket(a->ai_family, a->ai_socktype, a->ai_protocol);
        if (fd >= 0 && connect(fd, a->ai_addr, a->ai_addrlen) != 0) close(fd), fd = -1;
    }
    freeaddrinfo(res);
    if (fd < 0) snprintf(err, err_len, "cannot connect to %s:%s", u->host, u->port);
    int one = 1;
    if (fd >= 0) setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    return fd;
}

static int send_all(int fd, const char *p, size_t n)
{
    while (n) {
        ssize_t w = send(fd, p, n, MSG_NOSIGNAL);
        if (w <= 0) return -1;
        p += w, n -= (size_t)w;
    }
    return 0;
}

/* The response parser's state. */
struct resp {
    int status, chunked, sse, in_headers;
    long long left;   /* bytes left in this chunk (chunked) or body (content-length), -1 unknown */
    int chunk_state;  /* 0 size line, 1 data, 2 CRLF after data */
    char *line;       /* current header / chunk-size / SSE line */
    size_t n_line, cap_line;
    char *body;       /* the whole body, when not an event stream */
    size_t n_body, cap_body;
    bh_event_fn on_event;
    void *ctx;
};

static void push(char **buf, size_t *n, size_t *cap, char c)
{
    if (*n + 2 > *cap) {
        *cap = *cap ? *cap * 2 : 256;
        *buf = realloc(*buf, *cap);
    }
    (*buf)[(*n)++] = c;
    (*buf)[*n] = 0;
}

static void header_line(struct resp *r)
{
    char *l = r->line;
    if (r->status == 0) {
        sscanf(l, "HTTP/%*s %d", &r->status);
    } else if (strncasecmp(l, "transfer-encoding:", 18) == 0 && strstr(l + 18, "chunked")) {
        r->chunked = 1;
    } else if (strncasecmp(l, "content-length:", 15) == 0) {
        r->left = atoll(l + 15);
    } else if (strncasecmp(l, "content-type:", 13) == 0 && strstr(l + 13, "text/event-stream")) {
        r->sse = 1;
    }
}

/* One byte of the (de-chunked) body. */
static void body_byte(struct resp *r, char c)
{
    if (!r->sse) {
        push(&r->body, &r->n_body, &r->cap_body, c);
        return;
    }
    if (c != '\n') {
        if (c != '\r') push(&r->line, &r->n_line, &r->cap_line, c);
        return;
    }
    if (r->n_line > 5 && strncmp(r->line, "data:", 5) == 0) {
        const char *d = r->line + 5 + (r->line[5] == ' ');
        if (strcmp(d, "[DONE]") != 0) r->on_event(r->ctx, d, strlen(d));
    }
    r->n_line = 0;
}

/* One byte of the response; returns 1 when the body is complete. */
static int resp_byte(struct resp *r, char c)
{
    if (r->in_headers) {
        if (c == '\r') return 0;
        if (c != '\n') {
            push(&r->line, &r->n_line, &r->cap_line, c);
            return 0;
        }
        if (r->n_line == 0) {
            r->in_headers = 0;
            return !r->chunked && r->left == 0;
        }
        header_line(r);
        r->n_line = 0;
        return 0;
    }
    if (!r->chunked) {
        body_byte(r, c);
        return r->left > 0 && --r->left == 0;
    }
    if (r->chunk_state == 1) {
        body_byte(r, c);
        if (--r->left == 0) r->chunk_state = 2;
        return 0;
    }
    if (c == '\r') return 0;
    if (c != '\n') {
        if (r->chunk_state == 0) push(&r->line, &r->n_line, &r->cap_line, c);
        return 0;
    }
    if (r->chunk_state == 2) {
        r->chunk_state = 0;
        return 0;
    }
    r->left = strtoll(r->line, NULL, 16);
    r->n_line = 0;
    if (r->left == 0) return 1;
    r->chunk_state = 1;
    return 0;
}

/* Sends the request and runs the response through the parser until it ends. */
static int exchange(const struct bh_url *u, const char *req, size_t req_len, struct resp *r,
                    char *err, size_t err_len)
{
    int fd = dial(u, err, err_len);
    if (fd < 0) return -1;
    if (send_all(fd, req, req_len) != 0) {
        close(fd);
        snprintf(err, err_len, "cannot send the request");
        return -1;
    }
    char buf[16384];
    int done = 0;
    while (!done) {
        ssize_t n = recv(fd, buf, sizeof buf, 0);
        if (n <= 0) break;
        for (ssize_t i = 0; i < n && !done; i++) done = resp_byte(r, buf[i]);
    }
    close(fd);
    if (r->sse && r->line && r->n_line) body_byte(r, '\n');
    if (r->status == 0) {
        snprintf(err, err_len, "no HTTP response from %s:%s", u->host, u->port);
        return -1;
    }
    return r->status;
}

int bh_post(const struct bh_url *u, const char *path, const char *body, bh_event_fn on_event,
            void *ctx, char *err, size_t err_len)
{
    size_t n = strlen(body) + 512;
    char *req = malloc(n);
    int len = snprintf(req, n,
                       "POST %s%s HTTP/1.1\r\nHost: %s:%s\r\nContent-Type: application/json\r\n"
                       "Accept: text/event-stream\r\nConnection: close\r\nContent-Length: %zu\r\n\r\n%s",
                       u->prefix, path, u->host, u->port, strlen(body), body);
    struct resp r = {.in_headers = 1, .left = -1, .on_event = on_event, .ctx = ctx};
    int st = exchange(u, req, (size_t)len, &r, err, err_len);
    if (st >= 0 && !r.sse) on_event(ctx, r.body ? r.body : "", r.n_body);
    free(req);
    free(r.line);
    free(r.body);
    return st;
}

int bh_get(const struct bh_url *u, const char *path, char **out, char *err, size_t err_len)
{
    char req[1024];
    int len = snprintf(req, sizeof req, "GET %s%s HTTP/1.1\r\nHost: %s:%s\r\nConnection: close\r\n\r\n",
                       u->prefix, path, u->host, u->port);
    struct resp r = {.in_headers = 1, .left = -1};
    int st = exchange(u, req, (size_t)len, &r, err, err_len);
    free(r.line);
    *out = r.body ? r.body : calloc(1, 1);
    return st;
}
