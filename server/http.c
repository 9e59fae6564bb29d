/* http: libmicrohttpd daemon, dispatch, limits, auth, CORS and the suspend/resume plumbing. */
#include "server/http.h"

#include <arpa/inet.h>
#include <errno.h>
#include <microhttpd.h>
#include <netinet/in.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <jansson.h>

#include "engine/text/utf8.h"
#include "server/http_internal.h"

/* ---- replies ---------------------------------------------------------------------------- */

static void add_common_headers(struct http_req *r, struct MHD_Response *resp)
{
    if (r->origin) {
        MHD_add_response_header(resp, "Access-Control-Allow-Origin", r->origin);
        if (strcmp(r->origin, "*") != 0) MHD_add_response_header(resp, "Vary", "Origin");
    }
    for (int i = 0; i < r->n_hdrs; i++) MHD_add_response_header(resp, r->hdr_name[i], r->hdr_value[i]);
}

void http_set_header(struct http_req *r, const char *name, const char *value)
{
    if (r->n_hdrs == (int)(sizeof r->hdr_name / sizeof r->hdr_name[0])) return;
    r->hdr_name[r->n_hdrs] = strdup(name);
    r->hdr_value[r->n_hdrs++] = strdup(value);
}

static int queue(struct http_req *r, int status, struct MHD_Response *resp)
{
    if (!resp) return -1; /* out of memory: the connection closes, the server goes on */
    add_common_headers(r, resp);
    enum MHD_Result ok = MHD_queue_response(r->conn, (unsigned)status, resp);
    MHD_destroy_response(resp);
    r->replied = 1;
    return ok == MHD_YES ? 0 : -1;
}

/* A worker's reply is kept until the event loop can send it. */
static int record_reply(struct http_req *r, int status, const char *content_type,
                        const char *body, size_t len)
{
    free(r->pending.body);
    free(r->pending.content_type);
    r->pending.body = malloc(len + 1);
    r->pending.content_type = content_type ? strdup(content_type) : NULL;
    if (!r->pending.body) { /* sent as a fixed 503 instead */
        r->pending.status = 503;
        r->pending.len = 0;
        return 0;
    }
    memcpy(r->pending.body, body, len);
    r->pending.status = status;
    r->pending.len = len;
    return 0;
}

int http_send_pending(struct http_req *r)
{
    static const char no_memory[] = "{\"error\":{\"message\":\"no memory for the reply\",\"type\":"
                                    "\"service_unavailable_error\",\"param\":null,\"code\":"
                                    "\"out_of_memory\"}}";
    if (!r->pending.body)
        return http_reply(r, 503, "application/json", no_memory, sizeof no_memory - 1);
    struct MHD_Response *resp = MHD_create_response_from_buffer(r->pending.len, r->pending.body,
                                                                MHD_RESPMEM_MUST_FREE);
    if (resp) r->pending.body = NULL; /* libmicrohttpd frees it */
    if (resp && r->pending.content_type)
        MHD_add_response_header(resp, "Content-Type", r->pending.content_type);
    return queue(r, r->pending.status, resp);
}

int http_reply(struct http_req *r, int status, const char *content_type, const char *body,
               size_t len)
{
    if (r->deferred) return record_reply(r, status, content_type, body, len);
    struct MHD_Response *resp =
        MHD_create_response_from_buffer(len, (void *)body, MHD_RESPMEM_MUST_COPY);
    if (resp && content_type) MHD_add_response_header(resp, "Content-Type", content_type);
    return queue(r, status, resp);
}

/* Valid UTF-8 for a JSON string from any bytes: invalid subparts become U+FFFD, and a text that
 * vsnprintf cut short loses its last, incomplete character instead of gaining a U+FFFD. */
char *http_safe_text(const char *s, size_t n, int cut)
{
    char *out = NULL;
    size_t n_out = 0, cap = 0;
    utf8_lossy_append(&out, &n_out, &cap, (const uint8_t *)s, n, !cut);
    return out;
}

/* The body used when even an error document cannot be built (it never comes from a request). */
static const char fallback_error[] =
    "{\"error\":{\"message\":\"internal error while building the reply\",\"type\":\"server_error\","
    "\"param\":null,\"code\":null}}";

int http_reply_json(struct http_req *r, int status, json_t *doc)
{
    char *text = doc ? json_dumps(doc, JSON_COMPACT) : NULL;
    json_decref(doc);
    if (!text) return http_reply(r, 500, "application/json", fallback_error, sizeof fallback_error - 1);
    int rc = http_reply(r, status, "application/json", text, strlen(text));
    free(text);
    return rc;
}

int http_reply_errorv(struct http_req *r, int status, const char *type, const char *param,
                      const char *code, const char *fmt, va_list ap)
{
    char buf[1024];
    int n = vsnprintf(buf, sizeof buf, fmt, ap);
    int cut = n >= (int)sizeof buf;
    char *msg = http_safe_text(buf, cut ? sizeof buf - 1 : (size_t)(n > 0 ? n : 0), cut);
    char *par = param ? http_safe_text(param, strlen(param), 0) : NULL;
    json_t *err = json_object();
    json_object_set_new(err, "message", json_string(msg));
    json_object_set_new(err, "type", json_string(type));
    json_object_set_new(err, "param", par ? json_string(par) : json_null());
    json_object_set_new(err, "code", code ? json_string(code) : json_null());
    free(msg);
    free(par);
    json_t *root = json_object();
    json_object_set_new(root, "error", err);
    return http_reply_json(r, status, root);
}

int http_reply_error(struct http_req *r, int status, const char *type, const char *param,
                     const char *code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int rc = http_reply_errorv(r, status, type, param, code, fmt, ap);
    va_end(ap);
    return rc;
}

static ssize_t stream_reader(void *cls, uint64_t pos, char *buf, size_t max)
{
    struct http_req *r = cls;
    (void)pos;
    if (r->peer_gone) return MHD_CONTENT_READER_END_WITH_ERROR;
    return r->on_read(r, buf, max);
}

int http_stream(struct http_req *r, int status, const char *content_type)
{
    if (r->deferred) ERR_FATAL("http_stream called from offloaded work");
    struct MHD_Response *resp =
        MHD_create_response_from_callback(MHD_SIZE_UNKNOWN, 16384, stream_reader, r, NULL);
    if (resp) MHD_add_response_header(resp, "Content-Type", content_type);
    if (resp) MHD_add_response_header(resp, "Cache-Control", "no-cache");
    return queue(r, status, resp);
}

/* ---- suspend / wake ----------------------------------------------------------------------- */

int http_suspend(struct http_req *r)
{
    if (r->deferred) ERR_FATAL("http_suspend called from offloaded work");
    pthread_mutex_lock(&r->mu);
    int news = r->wake_pending || r->peer_gone;
    r->wake_pending = 0;
    if (!news) {
        r->suspended = 1;
        MHD_suspend_connection(r->conn);
    }
    pthread_mutex_unlock(&r->mu);
    return !news;
}

void http_wake(struct http_req *r)
{
    pthread_mutex_lock(&r->mu);
    if (r->suspended) {
        r->suspended = 0;
        MHD_resume_connection(r->conn);
    } else {
        r->wake_pending = 1;
    }
    pthread_mutex_unlock(&r->mu);
}

/* ---- request context ---------------------------------------------------------------------- */

double http_now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}

const char *http_header(struct http_req *r, const char *name)
{
    return MHD_lookup_connection_value(r->conn, MHD_HEADER_KIND, name);
}

const char *http_query(struct http_req *r, const char *name)
{
    return MHD_lookup_connection_value(r->conn, MHD_GET_ARGUMENT_KIND, name);
}

static struct http_req *req_create(struct http_server *s, struct MHD_Connection *c,
                                   const char *url, const char *method)
{
    struct http_req *r = xcalloc(1, sizeof *r);
    r->srv = s;
    r->app = s->app;
    r->conn = c;
    r->method = method;
    r->path = strdup(url);
    r->cap_body = 1024;
    r->body = xmalloc(r->cap_body);
    r->body[0] = 0;
    pthread_mutex_init(&r->mu, NULL);
    pthread_mutex_lock(&s->mu);
    r->next = s->live;
    if (s->live) s->live->prev = r;
    s->live = r;
    pthread_mutex_unlock(&s->mu);
    return r;
}

static void req_destroy(struct http_req *r)
{
    struct http_server *s = r->srv;
    pthread_mutex_lock(&s->mu);
    if (r->prev) r->prev->next = r->next;
    else s->live = r->next;
    if (r->next) r->next->prev = r->prev;
    pthread_mutex_unlock(&s->mu);
    for (int i = 0; i < r->n_hdrs; i++) free(r->hdr_name[i]), free(r->hdr_value[i]);
    pthread_mutex_destroy(&r->mu);
    free(r->pending.body);
    free(r->pending.content_type);
    free(r->origin);
    free(r->path);
    free(r->body);
    free(r);
}

/* Makes room for need bytes of body; on allocation failure marks the request (a request's
 * memory, not the process's: it gets 503). */
static int grow_body(struct http_req *r, size_t need)
{
    size_t cap = r->cap_body;
    while (cap < need) cap = cap * 2 < r->srv->cfg.max_body + 1 ? cap * 2 : r->srv->cfg.max_body + 1;
    char *grown = realloc(r->body, cap);
    if (!grown) {
        r->no_memory = 1;
        return -1;
    }
    r->body = grown;
    r->cap_body = cap;
    return 0;
}

/* Appends upload data up to the body limit. A declared body over it was refused with the head;
 * a chunked one that crosses it is answered 413 at once, and what follows is read and dropped
 * for a moment (so the client sees the answer rather than a reset), then the connection closes.
 * Returns 0 to go on, -1 to close now. */
static int take_body(struct http_req *r, const char *data, size_t n)
{
    if (r->too_large) {
        r->n_dropped += n;
        return http_now() - r->t_cut < 2 && r->n_dropped < (16u << 20) ? 0 : -1;
    }
    if (r->no_memory) return 0; /* the rest is read and dropped; dispatch answers 503 */
    if (r->n_body + n > r->srv->cfg.max_body) {
        r->too_large = 1;
        r->t_cut = http_now();
        http_guard_cut_body(r);
        return 0;
    }
    if (r->n_body + n + 1 > r->cap_body && grow_body(r, r->n_body + n + 1) != 0) return 0;
    memcpy(r->body + r->n_body, data, n);
    r->n_body += n;
    r->body[r->n_body] = 0;
    return 0;
}

/* ---- policy: CORS, API keys, routing --------------------------------------------------------- */

/* The origin to echo back when the request's Origin is allowed, else NULL. */
static char *cors_origin(const struct http_config *cfg, const char *origin)
{
    if (!origin || !cfg->cors_origins) return NULL;
    for (const char *const *o = cfg->cors_origins; *o; o++) {
        if (strcmp(*o, "*") == 0) return strdup("*");
        if (strcmp(*o, origin) == 0) return strdup(origin);
    }
    return NULL;
}

/* Compares in time that depends only on the lengths, never on where the bytes differ. */
static int same_secret(const char *a, const char *b)
{
    size_t na = strlen(a), nb = strlen(b);
    unsigned char diff = (unsigned char)(na != nb);
    for (size_t i = 0; i < na; i++) diff |= (unsigned char)(a[i] ^ b[i % (nb ? nb : 1)]);
    return diff == 0;
}

int http_authorized(struct http_req *r)
{
    struct http_server *s = r->srv;
    const char *h = http_header(r, "Authorization");
    pthread_mutex_lock(&s->keys_mu);
    int ok = !s->keys[0];
    if (!ok && h && strncasecmp(h, "Bearer ", 7) == 0)
        for (char **k = s->keys; *k; k++) ok |= same_secret(h + 7, *k);
    pthread_mutex_unlock(&s->keys_mu);
    return ok;
}

int http_reply_unauthorized(struct http_req *r)
{
    http_set_header(r, "WWW-Authenticate", "Bearer");
    return http_reply_error(r, 401, HTTP_ERR_AUTH, NULL, "invalid_api_key",
                            "missing or invalid API key (send Authorization: Bearer KEY)");
}

struct header_counter {
    const char *name;
    int n;
};

static enum MHD_Result count_header(void *cls, enum MHD_ValueKind kind, const char *key,
                                    const char *value)
{
    struct header_counter *c = cls;
    (void)kind, (void)value;
    if (strcasecmp(key, c->name) == 0) c->n++;
    return MHD_YES;
}

/* How many times the request carries header name (MHD's lookup only finds the first). */
static int header_count(struct http_req *r, const char *name)
{
    struct header_counter c = {name, 0};
    MHD_get_connection_values(r->conn, MHD_HEADER_KIND, count_header, &c);
    return c.n;
}

static char **copy_keys(const char *const *keys)
{
    int n = 0;
    while (keys && keys[n]) n++;
    char **out = xcalloc((size_t)n + 1, sizeof *out);
    for (int i = 0; i < n; i++) out[i] = strdup(keys[i]);
    return out;
}

static void free_keys(char **keys)
{
    for (char **k = keys; k && *k; k++) free(*k);
    free(keys);
}

void http_set_api_keys(struct http_server *s, const char *const *keys)
{
    char **fresh = copy_keys(keys);
    pthread_mutex_lock(&s->keys_mu);
    char **old = s->keys;
    s->keys = fresh;
    pthread_mutex_unlock(&s->keys_mu);
    free_keys(old);
}

static int path_matches(const char *pattern, const char *path)
{
    size_t n = strlen(pattern);
    if (n && pattern[n - 1] == '*') return strncmp(pattern, path, n - 1) == 0 && path[n - 1];
    return strcmp(pattern, path) == 0;
}

/* Answers a CORS preflight: which methods the path takes, and the headers clients send. */
static int preflight(struct http_req *r, const char *allow)
{
    struct MHD_Response *resp = MHD_create_response_from_buffer(0, (void *)"", MHD_RESPMEM_PERSISTENT);
    MHD_add_response_header(resp, "Access-Control-Allow-Methods", allow);
    MHD_add_response_header(resp, "Access-Control-Allow-Headers", "Authorization, Content-Type");
    MHD_add_response_header(resp, "Access-Control-Max-Age", "600");
    return queue(r, 204, resp);
}

/* Picks the route; replies 404/405/401/preflight itself. */
static int dispatch(struct http_req *r)
{
    struct http_server *s = r->srv;
    const struct http_route *hit = NULL;
    char allow[128] = "";
    for (int i = 0; i < s->n_routes; i++) {
        if (!path_matches(s->routes[i].path, r->path)) continue;
        if (!strstr(allow, s->routes[i].method))
            snprintf(allow + strlen(allow), sizeof allow - strlen(allow), "%s%s", allow[0] ? ", " : "", s->routes[i].method);
        if (strcmp(s->routes[i].method, r->method) == 0) hit = &s->routes[i];
    }
    if (!allow[0]) return http_reply_error(r, 404, HTTP_ERR_NOT_FOUND, NULL, "not_found", "no route for %s %s", r->method, r->path);
    if (strcmp(r->method, "OPTIONS") == 0) return preflight(r, allow);
    if (!hit) {
        http_set_header(r, "Allow", allow);
        return http_reply_error(r, 405, HTTP_ERR_INVALID, NULL, "method_not_allowed", "%s is not allowed on %s (allowed: %s)", r->method, r->path, allow);
    }
    if (header_count(r, "Authorization") > 1)
        return http_reply_error(r, 400, HTTP_ERR_INVALID, NULL, "duplicate_header", "more than one Authorization header");
    if (!hit->public && !http_authorized(r)) return http_reply_unauthorized(r);
    if (http_guard_json(r) != 0) return 0;
    if (r->no_memory) {
        http_set_header(r, "Retry-After", "1");
        return http_reply_error(r, 503, HTTP_ERR_UNAVAILABLE, NULL, "out_of_memory",
                                "no memory for the request body now");
    }
    return hit->fn(r);
}

/* A Content-Length over the limit gets 413 before the body is read (and instead of 100
 * Continue); one within it gets its buffer now, or 503 if that memory is not there. */
static int body_declared_too_large(struct http_req *r)
{
    const char *cl = http_header(r, "Content-Length");
    unsigned long long n = cl ? strtoull(cl, NULL, 10) : 0;
    if (n > r->srv->cfg.max_body) {
        http_set_header(r, "Connection", "close");
        http_reply_error(r, 413, HTTP_ERR_INVALID, NULL, "request_too_large",
                         "request body exceeds the limit of %zu bytes", r->srv->cfg.max_body);
        return 1;
    }
    if (n + 1 > r->cap_body && grow_body(r, (size_t)n + 1) != 0) {
        http_set_header(r, "Connection", "close");
        http_set_header(r, "Retry-After", "1");
        http_reply_error(r, 503, HTTP_ERR_UNAVAILABLE, NULL, "out_of_memory",
                         "no memory for a request body of %llu bytes now", n);
        return 1;
    }
    return 0;
}

/* libmicrohttpd's access handler: first call creates the context, middle calls carry the body,
 * the last call dispatches; after a resume it hands over to r->on_resume. */
static enum MHD_Result on_access(void *cls, struct MHD_Connection *c, const char *url,
                                 const char *method, const char *version, const char *data,
                                 size_t *data_size, void **ctx)
{
    struct http_server *s = cls;
    struct http_req *r = *ctx;
    if (!r) {
        *ctx = r = req_create(s, c, url, method);
        http_conn_body_started(s, c);
        char *q = strchr(r->path, '?');
        if (q) *q = 0;
        r->origin = cors_origin(&s->cfg, http_header(r, "Origin"));
        if (http_guard_head(r, method, version) != 0 || body_declared_too_large(r))
            r->started = 1; /* answered with the head: the body is never read */
        return MHD_YES;
    }
    if (*data_size) {
        int rc = take_body(r, data, *data_size);
        *data_size = 0;
        return rc == 0 ? MHD_YES : MHD_NO;
    }
    if (r->too_large) return MHD_NO; /* a cut body: its 413 is already on the wire */
    if (r->peer_gone) return MHD_NO;
    if (r->replied) return MHD_YES;
    if (r->started) {
        if (r->on_resume && r->on_resume(r) != 0) return MHD_NO;
        return MHD_YES;
    }
    r->started = 1;
    if (http_conn_body_done(s, c) != 0) return MHD_NO; /* its deadline passed: 408 sent */
    return dispatch(r) == 0 ? MHD_YES : MHD_NO;
}

static void on_completed(void *cls, struct MHD_Connection *c, void **ctx,
                         enum MHD_RequestTerminationCode why)
{
    struct http_req *r = *ctx;
    http_conn_request_done(cls, c);
    if (!r) return;
    if (r->on_close) r->on_close(r, why != MHD_REQUEST_TERMINATED_COMPLETED_OK);
    req_destroy(r);
    *ctx = NULL;
}

/* ---- the sweeper: notices clients that hung up while their connection is parked ------------ */

static int peer_closed(struct MHD_Connection *c)
{
    const union MHD_ConnectionInfo *ci = MHD_get_connection_info(c, MHD_CONNECTION_INFO_CONNECTION_FD);
    if (!ci) return 0;
    char b;
    ssize_t n = recv(ci->connect_fd, &b, 1, MSG_PEEK | MSG_DONTWAIT);
    return n == 0 || (n < 0 && errno != EAGAIN && errno != EWOULDBLOCK && errno != EINTR);
}

static void *sweeper(void *arg)
{
    struct http_server *s = arg;
    while (!__atomic_load_n(&s->stopping, __ATOMIC_ACQUIRE)) {
        usleep(50 * 1000);
        pthread_mutex_lock(&s->mu);
        for (struct http_req *r = s->live; r; r = r->next) {
            pthread_mutex_lock(&r->mu);
            if (r->deadline > 0 && !r->timed_out && http_now() > r->deadline) {
                r->timed_out = 1;
                r->wake_pending = 1;
            }
            if (r->suspended && !r->peer_gone && peer_closed(r->conn)) r->peer_gone = 1;
            if (r->suspended && !r->in_worker && (r->peer_gone || r->wake_pending)) {
                r->suspended = 0;
                r->wake_pending = 0;
                MHD_resume_connection(r->conn);
            }
            pthread_mutex_unlock(&r->mu);
        }
        pthread_mutex_unlock(&s->mu);
        http_conn_sweep(s, http_now());
    }
    return NULL;
}

/* ---- start / stop --------------------------------------------------------------------------- */

static int make_addr(const char *host, int port, struct sockaddr_storage *ss, int *v6, struct err *e)
{
    memset(ss, 0, sizeof *ss);
    struct sockaddr_in *a4 = (struct sockaddr_in *)ss;
    struct sockaddr_in6 *a6 = (struct sockaddr_in6 *)ss;
    if (inet_pton(AF_INET, host, &a4->sin_addr) == 1) {
        a4->sin_family = AF_INET;
        a4->sin_port = htons((uint16_t)port);
        *v6 = 0;
        return 0;
    }
    if (inet_pton(AF_INET6, host, &a6->sin6_addr) == 1) {
        a6->sin6_family = AF_INET6;
        a6->sin6_port = htons((uint16_t)port);
        *v6 = 1;
        return 0;
    }
    if (strcmp(host, "localhost") == 0) return make_addr("127.0.0.1", port, ss, v6, e);
    return err_set(e, "host \"%s\" is not an IPv4 or IPv6 address", host);
}

struct http_server *http_start(const struct http_config *cfg, const struct http_route *routes,
                               int n_routes, void *app, struct err *e)
{
    struct sockaddr_storage ss;
    int v6 = 0;
    if (make_addr(cfg->host, cfg->port, &ss, &v6, e) != 0) return NULL;
    struct http_server *s = xcalloc(1, sizeof *s);
    *s = (struct http_server){.cfg = *cfg, .routes = routes, .n_routes = n_routes, .app = app};
    pthread_mutex_init(&s->mu, NULL);
    pthread_mutex_init(&s->keys_mu, NULL);
    pthread_mutex_init(&s->conn_mu, NULL);
    s->keys = copy_keys(cfg->api_keys);
    s->hosts = copy_keys(cfg->allowed_hosts);
    s->cfg.api_keys = s->cfg.allowed_hosts = NULL; /* the caller's arrays may go: copies */
    unsigned flags = MHD_USE_EPOLL_INTERNAL_THREAD | MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ERROR_LOG |
                     MHD_USE_ITC | (v6 ? MHD_USE_IPv6 : 0);
    s->d = MHD_start_daemon(flags, (uint16_t)cfg->port, NULL, NULL, on_access, s,
                            MHD_OPTION_SOCK_ADDR, (struct sockaddr *)&ss,
                            /* over max_connections http_conns.c answers 503 at once; the
                               library's own limit, which leaves clients in the backlog, is
                               kept out of reach */
                            MHD_OPTION_CONNECTION_LIMIT, cfg->max_connections * 2 + 16,
                            MHD_OPTION_PER_IP_CONNECTION_LIMIT, cfg->max_connections_per_ip,
                            MHD_OPTION_NOTIFY_CONNECTION, http_conn_event, s,
                            MHD_OPTION_CONNECTION_MEMORY_LIMIT, cfg->connection_memory,
                            MHD_OPTION_CONNECTION_TIMEOUT, cfg->idle_timeout_s,
                            MHD_OPTION_NOTIFY_COMPLETED, on_completed, s,
                            /* SO_REUSEPORT only when asked: else a second server on the same
                               port would start and silently take half the connections */
                            MHD_OPTION_LISTENING_ADDRESS_REUSE, cfg->reuse_port ? 1u : 0u,
#if MHD_VERSION >= 0x00097707
                            MHD_OPTION_CLIENT_DISCIPLINE_LVL, 1, /* no bare LF, Host required */
#else
                            MHD_OPTION_STRICT_FOR_CLIENT, 1, /* HTTP/1.1 needs Host */
#endif
                            MHD_OPTION_END);
    if (!s->d) {
        pthread_mutex_destroy(&s->mu);
        pthread_mutex_destroy(&s->keys_mu);
        pthread_mutex_destroy(&s->conn_mu);
        free_keys(s->keys);
        free_keys(s->hosts);
        free(s);
        err_set(e, "cannot listen on %s port %d: %s", cfg->host, cfg->port, strerror(errno));
        return NULL;
    }
    s->pool = http_pool_create();
    pthread_create(&s->sweeper, NULL, sweeper, s);
    return s;
}

int http_add_connection(struct http_server *s, int fd, const struct sockaddr *addr,
                        socklen_t addr_len)
{
    return MHD_add_connection(s->d, fd, addr, addr_len) == MHD_YES ? 0 : -1;
}

int http_n_live(struct http_server *s)
{
    int n = 0;
    pthread_mutex_lock(&s->mu);
    for (struct http_req *r = s->live; r; r = r->next) n++;
    pthread_mutex_unlock(&s->mu);
    return n;
}

void http_wake_all(struct http_server *s)
{
    pthread_mutex_lock(&s->mu);
    for (struct http_req *r = s->live; r; r = r->next) http_wake(r);
    pthread_mutex_unlock(&s->mu);
}

int http_port(const struct http_server *s)
{
    const union MHD_DaemonInfo *di = MHD_get_daemon_info(s->d, MHD_DAEMON_INFO_BIND_PORT);
    return di ? di->port : -1;
}

void http_quiesce(struct http_server *s)
{
    MHD_socket fd = MHD_quiesce_daemon(s->d);
    if (fd != MHD_INVALID_SOCKET) close(fd);
}

void http_stop(struct http_server *s)
{
    if (!s) return;
    __atomic_store_n(&s->stopping, 1, __ATOMIC_RELEASE);
    pthread_join(s->sweeper, NULL);
    http_pool_destroy(s->pool); /* no worker may hold a request when the daemon frees them */
    MHD_stop_daemon(s->d);
    pthread_mutex_destroy(&s->mu);
    pthread_mutex_destroy(&s->keys_mu);
    pthread_mutex_destroy(&s->conn_mu);
    free_keys(s->keys);
    free_keys(s->hosts);
    free(s);
}
