/* http_internal: the server state shared by http.c (the daemon, dispatch, replies) and
 * http_guard.c (what a request and a connection must satisfy). Nothing outside server/http*.c
 * includes this. */
#ifndef SEEKD_HTTP_INTERNAL_H
#define SEEKD_HTTP_INTERNAL_H

#include <microhttpd.h>
#include <pthread.h>

#include "server/http.h"

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
    pthread_t sweeper;
    int stopping;
};

/* ---- http_guard.c ------------------------------------------------------------------------ */

/* The request's head is in: checks its framing, size and Host. 0: go on; -1: replied (400,
 * 421, 431, 501) with Connection: close, so nothing after it on the connection runs. */
int http_guard_head(struct http_req *r, const char *method, const char *version);
/* POSTs must carry a JSON body (415 otherwise): a browser's cross-site form cannot. */
int http_guard_json(struct http_req *r);
/* A chunked body crossed max_body: answers 413 on the socket now; the rest is discarded. */
void http_guard_cut_body(struct http_req *r);

#endif
