/* serve: `seekd serve` — options, the HTTP server, the engine, and the signal-driven life cycle.
 *
 * Order: listen first (so /health answers 503 while the model loads), load the model, then
 * serve until SIGTERM/SIGINT. The first signal drains: no new connections, /health 503, in-flight
 * requests finish within shutdown_timeout. A second signal ends at once. */
#include <errno.h>
#include <libgen.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "server/api.h"
#include "server/commands.h"
#include "server/options.h"

static void fill_http_config(const struct seekd_options *o, struct http_config *h)
{
    *h = (struct http_config){
        .host = o->host,
        .port = o->port,
        .max_body = o->max_body_size,
        .connection_memory = o->connection_memory_limit > o->max_header_size
                                 ? o->connection_memory_limit : o->max_header_size,
        .max_connections = (unsigned)o->max_connections,
        .idle_timeout_s = (unsigned)o->idle_timeout,
        .api_keys = (const char *const *)o->api_keys.items,
        .cors_origins = (const char *const *)o->cors_allowed_origins.items,
    };
}

static void fill_engine_opts(const struct seekd_options *o, struct engine_opts *eo)
{
    *eo = (struct engine_opts){
        .model_dir = o->model,
        .tokenizer_dir = o->tokenizer,
        .max_num_seqs = o->max_num_seqs,
        .max_num_batched_tokens = o->max_num_batched_tokens,
        .max_model_len = o->max_model_len,
        .block_size = o->block_size,
        .kv_cache_memory = o->kv_cache_memory.bytes ? (double)o->kv_cache_memory.bytes
                                                    : o->kv_cache_memory.fraction,
        .kv_cache_bf16 = o->kv_cache_dtype == OPT_KV_BF16,
        .enable_prefix_caching = o->enable_prefix_caching,
        .max_queued_requests = o->max_queued_requests,
        .threads = o->threads,
    };
}

/* The served names: --served-model-name, else the model directory's base name. */
static char **model_names(const struct seekd_options *o)
{
    int n = o->served_model_name.n_items;
    char **names = xcalloc((size_t)(n ? n : 1) + 1, sizeof *names);
    for (int i = 0; i < n; i++) names[i] = o->served_model_name.items[i];
    if (!n) {
        char *dup = strdup(o->model);
        size_t len = strlen(dup);
        while (len > 1 && dup[len - 1] == '/') dup[--len] = 0;
        names[0] = strdup(basename(dup));
        free(dup);
    }
    return names;
}

static const char *template_option(enum opt_chat_template t)
{
    return t == OPT_TEMPLATE_DEEPSEEK_V3 ? "deepseek-v3" : t == OPT_TEMPLATE_DEEPSEEK_R1 ? "deepseek-r1" : "auto";
}

/* Waits for SIGINT/SIGTERM; returns the signal, or 0 after timeout_s (< 0: forever). */
static int wait_signal(const sigset_t *set, double timeout_s)
{
    for (;;) {
        int sig;
        if (timeout_s < 0) {
            if (sigwait(set, &sig) == 0) return sig;
            continue;
        }
        struct timespec ts = {(time_t)timeout_s, (long)((timeout_s - (time_t)timeout_s) * 1e9)};
        sig = sigtimedwait(set, NULL, &ts);
        if (sig > 0) return sig;
        if (errno == EAGAIN) return 0;
    }
}

/* Drain: refuse new work, let running requests finish, within the shutdown timeout. */
static void drain(struct api *a, struct http_server *h, const sigset_t *set, double timeout_s)
{
    __atomic_store_n(&a->draining, 1, __ATOMIC_RELEASE);
    http_quiesce(h);
    fprintf(stderr, "seekd: draining (up to %gs; a second signal stops at once)\n", timeout_s);
    double end = http_now() + timeout_s;
    while (http_now() < end && http_n_live(h) > 0)
        if (wait_signal(set, 0.05) > 0) {
            fprintf(stderr, "seekd: second signal: stopping now\n");
            return;
        }
}

static int serve(struct seekd_options *o, const sigset_t *set)
{
    struct err e = {{0}};
    struct http_config hc;
    struct engine_opts eo;
    char **names = model_names(o);
    struct chat *chat = NULL;
    struct api a = {.names = (const char *const *)names, .created = time(NULL), .stall_s = 60,
                    .request_timeout_s = o->request_timeout,
                    .default_max_tokens = o->default_max_tokens};
    fill_http_config(o, &hc);
    fill_engine_opts(o, &eo);
    struct http_server *h = http_start(&hc, api_routes, api_n_routes, &a, &e);
    int rc = 1;
    if (!h) goto out;
    fprintf(stderr, "seekd: listening on %s port %d; loading %s\n", o->host, http_port(h), o->model);
    a.eng = engine_create(&eo, &e);
    if (!a.eng) goto out;
    a.tok = engine_tokenizer(a.eng);
    a.chat = chat = chat_create(a.tok, template_option(o->chat_template), &e);
    if (!chat) goto out;
    a.max_model_len = engine_max_model_len(a.eng);
    __atomic_store_n(&a.ready, 1, __ATOMIC_RELEASE);
    fprintf(stderr, "seekd: ready: serving '%s' on %s port %d\n", names[0], o->host, http_port(h));
    wait_signal(set, -1);
    drain(&a, h, set, o->shutdown_timeout);
    rc = 0;
out:
    if (rc) fprintf(stderr, "seekd: %s\n", e.msg);
    http_stop(h);
    chat_destroy(chat);
    engine_destroy(a.eng);
    if (!o->served_model_name.n_items) free(names[0]);
    free(names);
    return rc;
}

int cmd_serve(int argc, char **argv)
{
    struct seekd_options o;
    int rc = cmd_serve_options(argc, argv, &o);
    if (rc != 0) return rc > 0 ? 0 : 2;
    sigset_t set;
    sigemptyset(&set);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGTERM);
    pthread_sigmask(SIG_BLOCK, &set, NULL); /* every thread started after this inherits it */
    signal(SIGPIPE, SIG_IGN);
    rc = serve(&o, &set);
    opt_free(&o);
    return rc;
}
