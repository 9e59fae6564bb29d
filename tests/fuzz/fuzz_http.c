/* fuzz_http: libFuzzer target, raw bytes → the HTTP front end.
 *
 * The real server (libmicrohttpd event loop, head checks, routing, keys, workers, the API
 * handlers, a real engine on the tiny test checkpoint with a 32-token context) is started once;
 * each input is written into one end of a loopback TCP pair whose other end the server was
 * handed (http_add_connection: TCP, not a socketpair, so that the connection deadlines, which
 * read TCP_INFO, apply as in production), the write side is then shut, and everything the
 * server answers is read until it closes or falls silent for 50 ms. Invariants: a JSON body
 * the server sends with a Content-Length parses and is valid UTF-8, and every 64 inputs the
 * server still answers /health within 30 s (no deadlock, no wedged event loop). A crash or
 * sanitizer report in any of its threads aborts too.
 *
 * Run from the repository root (the fixtures are read relative to it). */
#include <arpa/inet.h>
#include <errno.h>
#include <jansson.h>
#include <netinet/in.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "engine/text/utf8.h"
#include "server/api.h"

static struct api fz_api;
static struct http_server *fz_http;
static int fz_listen = -1;      /* loopback listener making the TCP pairs */
static struct sockaddr_in fz_addr;
static const char *fz_names[] = {"fuzz-model", NULL};
static const char *fz_keys[] = {"fuzz-key", NULL};

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void start_engine(void)
{
    struct err e = {0};
    struct engine_opts eo = {.model_dir = "tests/fixtures/models/v3-bf16-sharded",
                             .tokenizer_dir = "tests/fixtures/tokenizer/v3", .max_num_seqs = 8,
                             .max_num_batched_tokens = 64, .max_model_len = 32, .block_size = 16,
                             .kv_cache_memory = 4 << 20, .enable_prefix_caching = 1,
                             .max_queued_requests = 64, .threads = 1,
                             .max_request_memory = 64 << 20, .request_memory_budget = 256 << 20};
    struct engine *eng = engine_create(&eo, &e);
    struct chat *chat = eng ? chat_create(engine_tokenizer(eng), "auto", &e) : NULL;
    if (!chat) {
        fprintf(stderr, "fuzz_http: %s (run from the repository root)\n", e.msg);
        exit(1);
    }
    const struct tok *tok = engine_tokenizer(eng);
    fz_api = (struct api){.eng = eng, .tok = tok, .chat = chat, .names = fz_names,
                          .created = time(NULL), .max_model_len = engine_max_model_len(eng),
                          .stall_s = 60, .max_token_text = 3 * tok_max_piece_bytes(tok) + 4,
                          .ready = 1};
}

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    struct err e = {0};
    (void)argc, (void)argv;
    start_engine();
    struct http_config hc = {.host = "127.0.0.1", .port = 0, .max_body = 1 << 16,
                             .max_header = 8 << 10, .connection_memory = 32 << 10,
                             .max_connections = 64, .idle_timeout_s = 5, .header_timeout_s = 1,
                             .body_timeout_s = 1, .api_keys = NULL};
    static const char *const origins[] = {"https://app.example", NULL};
    hc.cors_origins = origins;
    int n_routes;
    const struct http_route *routes = api_route_table(1, &n_routes);
    fz_http = http_start(&hc, routes, n_routes, &fz_api, &e);
    if (!fz_http) {
        fprintf(stderr, "fuzz_http: %s\n", e.msg);
        exit(1);
    }
    socklen_t len = sizeof fz_addr;
    fz_addr = (struct sockaddr_in){.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    fz_listen = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (bind(fz_listen, (struct sockaddr *)&fz_addr, sizeof fz_addr) != 0 || listen(fz_listen, 16) != 0 ||
        getsockname(fz_listen, (struct sockaddr *)&fz_addr, &len) != 0) {
        perror("fuzz_http: loopback listener");
        exit(1);
    }
    return 0;
}

/* A connected loopback TCP pair: *client for the input, *server for the server. */
static int tcp_pair(int *client, int *server, struct sockaddr_in *peer)
{
    socklen_t len = sizeof *peer;
    *client = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    if (*client < 0) return -1;
    if (connect(*client, (struct sockaddr *)&fz_addr, sizeof fz_addr) != 0 ||
        (*server = accept4(fz_listen, (struct sockaddr *)peer, &len, SOCK_CLOEXEC)) < 0) {
        close(*client);
        return -1;
    }
    return 0;
}

#define CHECK(cond)                                                                              \
    do {                                                                                         \
        if (!(cond)) ERR_FATAL("invariant broken: %s", #cond);                                  \
    } while (0)

/* Sends the input while reading what the server answers (it may answer a pipelined request
 * before the rest is read), then reads until the server closes or is silent for quiet_ms.
 * Returns the bytes of the answer's first window. */
static size_t exchange(int fd, const uint8_t *data, size_t size, char *buf, size_t cap,
                       int quiet_ms)
{
    size_t off = 0, n = 0;
    int wr_open = 1;
    for (;;) {
        if (wr_open && off == size) shutdown(fd, SHUT_WR), wr_open = 0;
        struct pollfd p = {.fd = fd, .events = POLLIN | (wr_open ? POLLOUT : 0)};
        if (poll(&p, 1, wr_open ? 30000 : quiet_ms) <= 0) break;
        if (p.revents & POLLOUT) {
            ssize_t w = send(fd, data + off, size - off, MSG_NOSIGNAL | MSG_DONTWAIT);
            if (w > 0) off += (size_t)w;
            else if (w < 0 && errno != EAGAIN && errno != EINTR) off = size; /* server closed */
        }
        if (!(p.revents & (POLLIN | POLLHUP | POLLERR))) continue;
        ssize_t got = recv(fd, buf + n, cap - n - 1, MSG_DONTWAIT);
        if (got == 0 || (got < 0 && errno != EAGAIN && errno != EINTR)) break;
        if (got > 0 && (n += (size_t)got) + 1 >= cap) n = cap / 2; /* keep the first half */
    }
    buf[n] = 0;
    return n;
}

/* The server still serves: /health on a fresh connection within 30 s. */
static void check_alive(void)
{
    static const char req[] = "GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n";
    char out[4096];
    int client, server;
    struct sockaddr_in peer;
    CHECK(tcp_pair(&client, &server, &peer) == 0);
    CHECK(http_add_connection(fz_http, server, (struct sockaddr *)&peer, sizeof peer) == 0);
    size_t n = exchange(client, (const uint8_t *)req, sizeof req - 1, out, sizeof out, 30000);
    close(client);
    CHECK(n > 12 && strncmp(out, "HTTP/1.1 200", 12) == 0);
}

/* The first response: a status line; a JSON body with a Content-Length must parse. */
static void check_response(const char *out, size_t n)
{
    if (n == 0) return; /* closed without a word: allowed (e.g. over a limit) */
    if (strncmp(out, "HTTP/1.1 ", 9) != 0 && strncmp(out, "HTTP/1.0 ", 9) != 0) return;
    const char *end = strstr(out, "\r\n\r\n");
    if (!end) return;
    const char *cl = strcasestr(out, "\r\nContent-Length: ");
    const char *ct = strcasestr(out, "\r\nContent-Type: application/json");
    if (!cl || !ct || cl > end || ct > end) return;
    size_t len = strtoul(cl + 18, NULL, 10);
    const char *body = end + 4;
    if ((size_t)(out + n - body) < len) return;
    CHECK(utf8_valid_len((const uint8_t *)body, len) == len);
    json_error_t je;
    json_t *doc = json_loadb(body, len, JSON_ALLOW_NUL, &je); /* text may hold \u0000 */
    CHECK(doc != NULL);
    json_decref(doc);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static char out[1 << 20];
    int client, server;
    struct sockaddr_in peer;
    if (size > (1u << 17)) return 0;
    /* inputs whose first byte is odd run with API keys on */
    http_set_api_keys(fz_http, size && (data[0] & 1) ? fz_keys : (const char *const[]){NULL});
    if (tcp_pair(&client, &server, &peer) != 0) return 0;
    if (http_add_connection(fz_http, server, (struct sockaddr *)&peer, sizeof peer) != 0) {
        close(client);
        return 0;
    }
    check_response(out, exchange(client, data, size, out, sizeof out, 50));
    close(client);
    static unsigned n_inputs;
    if (++n_inputs % 64 == 0) check_alive();
    return 0;
}
