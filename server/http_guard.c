/* http_guard: what a request must satisfy before any handler runs.
 *
 * One unambiguous body framing (no Content-Length with Transfer-Encoding, one Content-Length
 * value, only the chunked coding, CRLF line ends) and a head within max_header_size: a request
 * failing these is answered and its connection closed, so nothing smuggled after it runs. A
 * Host that names this server (a web page reaching a loopback server through a rebound DNS name
 * gets 421), and JSON on POST (a browser's cross-site form post, which needs no preflight, gets
 * 415). A chunked body is cut with 413 as soon as it crosses max_body_size. */
#include <arpa/inet.h>
#include <ctype.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>
#include <unistd.h>

#include "server/http_internal.h"

/* ---- answers written straight to the socket ------------------------------------------------- */

void http_raw_reply(MHD_socket fd, const char *status, const char *extra, const char *code,
                      const char *msg, int how)
{
    char body[512], all[1024];
    int nb = snprintf(body, sizeof body,
                      "{\"error\":{\"message\":\"%s\",\"type\":\"%s\",\"param\":null,\"code\":\"%s\"}}",
                      msg, status[0] == '5' ? HTTP_ERR_UNAVAILABLE : HTTP_ERR_INVALID, code);
    int n = snprintf(all, sizeof all,
                     "HTTP/1.1 %s\r\nContent-Type: application/json\r\nContent-Length: %d\r\n%s"
                     "Connection: close\r\n\r\n%s", status, nb, extra, body);
    if (send(fd, all, (size_t)n, MSG_NOSIGNAL | MSG_DONTWAIT) < 0) { /* the peer is gone */ }
    shutdown(fd, how);
}

/* ---- the request head ----------------------------------------------------------------------- */

/* What the header lines say about framing, gathered in one pass. */
struct head_facts {
    int n_cl, cl_differ, n_te, n_host;
    const char *cl;            /* the first Content-Length value */
    size_t cl_len;
    const char *te;            /* the first Transfer-Encoding value */
    const char *line_end;      /* end of the previous line's text (bare-LF scan); NULL: off */
    int bare_lf;
};

/* libmicrohttpd 0.9.75 accepts a bare LF as a line end and offers no option against it. Its
 * parser leaves the head in one buffer, replacing each CRLF by two NULs and a bare LF by one,
 * and hands out pointers into it (header lines in order). So each header line starts exactly
 * two bytes after the previous line's text ends, and the head ends four bytes after the last.
 * Anything else (a bare LF, a folded line) fails the scan. Newer versions refuse bare LFs
 * themselves (MHD_OPTION_CLIENT_DISCIPLINE_LVL, set in http.c). */
#if MHD_VERSION <= 0x00097500
#define HTTP_SCAN_LINE_ENDS 1
#else
#define HTTP_SCAN_LINE_ENDS 0
#endif

static void check_line_start(struct head_facts *f, const char *line)
{
    if (!f->line_end) return;
    if ((uintptr_t)line != (uintptr_t)f->line_end + 2 || f->line_end[0] || f->line_end[1])
        f->bare_lf = 1;
}

static enum MHD_Result note_header(void *cls, enum MHD_ValueKind kind, const char *key,
                                   size_t key_size, const char *value, size_t value_size)
{
    struct head_facts *f = cls;
    (void)kind;
    check_line_start(f, key);
    if (f->line_end) f->line_end = value + value_size;
    if (key_size == 14 && strcasecmp(key, "Content-Length") == 0) {
        if (f->n_cl++ == 0) f->cl = value, f->cl_len = value_size;
        else if (value_size != f->cl_len || memcmp(value, f->cl, value_size) != 0) f->cl_differ = 1;
    } else if (key_size == 17 && strcasecmp(key, "Transfer-Encoding") == 0) {
        if (f->n_te++ == 0) f->te = value;
    } else if (key_size == 4 && strcasecmp(key, "Host") == 0) {
        f->n_host++;
    }
    return MHD_YES;
}

/* Replies to a request that must not run, closing the connection after it. */
static int refuse(struct http_req *r, int status, const char *code, const char *msg)
{
    http_set_header(r, "Connection", "close");
    http_reply_error(r, status, HTTP_ERR_INVALID, NULL, code, "%s", msg);
    return -1;
}

/* Gathers the header facts; with the scan on, checks the line ends of the whole head. */
static void read_head(struct http_req *r, const char *method, const char *version,
                      struct head_facts *f)
{
    const union MHD_ConnectionInfo *hs =
        MHD_get_connection_info(r->conn, MHD_CONNECTION_INFO_REQUEST_HEADER_SIZE);
    memset(f, 0, sizeof *f);
    const char *end = hs ? method + hs->header_size : NULL;
    int scan = HTTP_SCAN_LINE_ENDS && end && version >= method && version < end;
    if (scan) f->line_end = version + strlen(version);
    MHD_get_connection_values_n(r->conn, MHD_HEADER_KIND, note_header, f);
    if (scan && ((uintptr_t)f->line_end + 4 != (uintptr_t)end || f->line_end[0] ||
                 f->line_end[1] || f->line_end[2] || f->line_end[3]))
        f->bare_lf = 1;
}

static int framing_ok(struct http_req *r, const struct head_facts *f)
{
    if (f->bare_lf) return refuse(r, 400, "bad_line_ending", "request lines must end with CRLF");
    if (f->n_cl && f->n_te)
        return refuse(r, 400, "ambiguous_framing",
                      "a request must not carry both Content-Length and Transfer-Encoding");
    if (f->cl_differ) return refuse(r, 400, "ambiguous_framing", "conflicting Content-Length headers");
    if (f->n_te > 1 || (f->te && strcasecmp(f->te, "chunked") != 0)) {
        http_set_header(r, "Connection", "close");
        http_reply_error(r, 501, HTTP_ERR_INVALID, NULL, "unsupported_transfer_encoding",
                         "only Transfer-Encoding: chunked is supported");
        return -1;
    }
    if (f->n_host > 1) return refuse(r, 400, "duplicate_header", "more than one Host header");
    return 0;
}

/* ---- Host ----------------------------------------------------------------------------------- */

/* The host part of a Host value, lowercased, without port or trailing dot; NULL if malformed. */
static char *host_name(const char *h, char *buf, size_t cap)
{
    size_t n;
    if (h[0] == '[') {
        const char *close = strchr(h, ']');
        if (!close || (close[1] && (close[1] != ':' || !close[2]))) return NULL;
        h++;
        n = (size_t)(close - h);
    } else {
        const char *colon = strrchr(h, ':');
        n = colon ? (size_t)(colon - h) : strlen(h);
        if (colon && (!colon[1] || strspn(colon + 1, "0123456789") != strlen(colon + 1))) return NULL;
    }
    if (!n || n >= cap) return NULL;
    for (size_t i = 0; i < n; i++) buf[i] = (char)tolower((unsigned char)h[i]);
    if (buf[n - 1] == '.' && n > 1) n--;
    buf[n] = 0;
    return buf;
}

static int is_ip_literal(const char *name)
{
    unsigned char a[16];
    return inet_pton(AF_INET, name, a) == 1 || inet_pton(AF_INET6, name, a) == 1;
}

/* A pattern is a name, "*.suffix" (any subdomain of suffix) or "*" (anything). */
static int host_matches(const char *pattern, const char *name)
{
    if (strcmp(pattern, "*") == 0) return 1;
    if (strncmp(pattern, "*.", 2) == 0) {
        size_t np = strlen(pattern + 1), nn = strlen(name);
        return nn > np && strcasecmp(name + nn - np, pattern + 1) == 0;
    }
    return strcasecmp(pattern, name) == 0;
}

/* Allowed: no Host (HTTP/1.0), an IP literal (DNS rebinding needs a name, and a browser sends
 * a literal only to the address it names), localhost, the name the server listens on, and the
 * allowed_hosts patterns. */
static int host_allowed(const struct http_server *s, const char *host)
{
    char name[256];
    if (!host) return 1;
    if (!host_name(host, name, sizeof name)) return 0;
    if (is_ip_literal(name) || strcmp(name, "localhost") == 0) return 1;
    if (strcasecmp(name, s->cfg.host) == 0) return 1;
    for (char **p = s->hosts; p && *p; p++)
        if (host_matches(*p, name)) return 1;
    return 0;
}

int http_guard_head(struct http_req *r, const char *method, const char *version)
{
    struct http_server *s = r->srv;
    struct head_facts f;
    const union MHD_ConnectionInfo *hs =
        MHD_get_connection_info(r->conn, MHD_CONNECTION_INFO_REQUEST_HEADER_SIZE);
    if (hs && hs->header_size > s->cfg.max_header) {
        char msg[128];
        snprintf(msg, sizeof msg, "the request line and headers exceed %zu bytes", s->cfg.max_header);
        return refuse(r, 431, "headers_too_large", msg);
    }
    read_head(r, method, version, &f);
    if (framing_ok(r, &f) != 0) return -1;
    const char *host = http_header(r, "Host");
    if (!host_allowed(s, host)) {
        http_set_header(r, "Connection", "close");
        http_reply_error(r, 421, HTTP_ERR_INVALID, NULL, "host_not_allowed",
                         "Host '%s' is not a name of this server; list it in allowed_hosts", host);
        return -1;
    }
    return 0;
}

/* ---- bodies --------------------------------------------------------------------------------- */

int http_guard_json(struct http_req *r)
{
    if (strcmp(r->method, "POST") != 0) return 0;
    const char *ct = http_header(r, "Content-Type");
    size_t n = ct ? strcspn(ct, ";") : 0;
    while (n && isspace((unsigned char)ct[n - 1])) n--;
    if (ct && n == 16 && strncasecmp(ct, "application/json", 16) == 0) return 0;
    http_reply_error(r, 415, HTTP_ERR_INVALID, NULL, "unsupported_media_type",
                     "the request body must be JSON, sent with Content-Type: application/json");
    return -1;
}

void http_guard_cut_body(struct http_req *r)
{
    const union MHD_ConnectionInfo *ci = MHD_get_connection_info(r->conn, MHD_CONNECTION_INFO_CONNECTION_FD);
    if (ci) http_raw_reply(ci->connect_fd, "413 Content Too Large", "", "request_too_large",
                      "the request body exceeds the server's max_body_size", SHUT_WR);
}
