/* http_guard: what a request must satisfy before any handler runs: a Host that names this
 * server (a web page reaching a loopback server through a rebound DNS name gets 421), and JSON
 * on POST (a browser's cross-site form post, which needs no preflight, gets 415). */
#include <arpa/inet.h>
#include <ctype.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/socket.h>

#include "server/http_internal.h"

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
    (void)method, (void)version;
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
