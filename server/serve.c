/* serve: `seekd serve` — options, the log, the HTTP server, the engine, and the daemon's life
 * (docs/ARCHITECTURE.md, "Daemon life").
 *
 * Order: listen first (so /health answers 503 while the model loads), load the model, run one
 * warm-up step, then READY=1 and serve. The main thread only waits for signals: SIGHUP reopens
 * the log and reloads the API keys; between signals it sends the systemd watchdog ping while the
 * engine loop is alive. SIGTERM/SIGINT drain: no new connections, /health 503, in-flight requests
 * finish within shutdown_timeout. A second signal (or the timeout) ends every stream with an
 * error event and exits at once.
 *
 * Under MPI (data parallelism) every rank loads its own engine; rank 0 does all of the above and
 * routes requests, the other ranks serve rank 0's requests (dp_rank) until it tells them to
 * stop. All ranks meet once after loading (who started, how big each KV pool is); afterwards any
 * rank that fails or stalls ends the whole job with a log line naming it. */
#include <errno.h>
#include <libgen.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

#include <unistd.h>

#include "engine/dp.h"
#include "server/api.h"
#include "server/commands.h"
#include "server/launch.h"
#include "server/log.h"
#include "server/notify.h"
#include "server/options.h"
#include "server/progress.h"

static void fill_http_config(const struct seekd_options *o, struct http_config *h)
{
    *h = (struct http_config){
        .host = o->host,
        .port = o->port,
        .reuse_port = o->reuse_port,
        .max_body = o->max_body_size,
        .max_header = o->max_header_size,
        .connection_memory = o->connection_memory_limit > o->max_header_size
                                 ? o->connection_memory_limit : o->max_header_size,
        .max_connections = (unsigned)o->max_connections,
        .max_connections_per_ip = (unsigned)o->max_connections_per_ip,
        .header_timeout_s = o->header_timeout,
        .body_timeout_s = o->body_timeout,
        .idle_timeout_s = (unsigned)o->idle_timeout,
        .api_keys = (const char *const *)o->api_keys.items,
        .cors_origins = (const char *const *)o->cors_allowed_origins.items,
        .allowed_hosts = (const char *const *)o->allowed_hosts.items,
    };
}

/* A size, or a fraction of the machine's physical memory. */
static int64_t memory_budget(const struct opt_memory *m)
{
    if (m->bytes) return (int64_t)m->bytes;
    double ram = (double)sysconf(_SC_PHYS_PAGES) * (double)sysconf(_SC_PAGESIZE);
    return (int64_t)(ram * m->fraction);
}

static void fill_engine_opts(const struct seekd_options *o, struct engine_opts *eo,
                             const struct load_progress *progress)
{
    *eo = (struct engine_opts){
        .progress = progress,
        .model_dir = o->model,
        .tokenizer_dir = o->tokenizer,
        .max_num_seqs = o->max_num_seqs,
        .max_num_batched_tokens = o->max_num_batched_tokens,
        .prefill_chunk = o->prefill_chunk,
        .max_model_len = o->max_model_len,
        .allow_long_max_model_len = o->allow_long_max_model_len,
        .block_size = o->block_size,
        .kv_cache_memory = o->kv_cache_memory.bytes ? (double)o->kv_cache_memory.bytes
                                                    : o->kv_cache_memory.fraction,
        .kv_cache_dtype = o->kv_cache_dtype == OPT_KV_BF16  ? DT_BF16
                          : o->kv_cache_dtype == OPT_KV_F32 ? DT_F32
                          : o->kv_cache_dtype == OPT_KV_F16 ? DT_F16
                                                            : -1,
        .enable_prefix_caching = o->enable_prefix_caching,
        .max_queued_requests = o->max_queued_requests,
        .max_request_memory = (int64_t)o->max_request_memory,
        .request_memory_budget = memory_budget(&o->request_memory_budget),
        .threads = o->threads,
        .huge_pages = o->huge_pages,
        .numerics = o->numerics == OPT_NUMERICS_FAST   ? NUMERICS_FAST
                    : o->numerics == OPT_NUMERICS_BF16 ? NUMERICS_BF16
                    : o->numerics == OPT_NUMERICS_REF  ? NUMERICS_REF
                                                       : NUMERICS_AUTO, /* pick_backend, engine */
        .cuda_graphs = o->cuda_graphs,
    };
}

static enum backend_kind backend_kind_of(enum opt_backend b)
{
    return b == OPT_BACKEND_CPU ? BACKEND_CPU : b == OPT_BACKEND_CUDA ? BACKEND_CUDA : BACKEND_AUTO;
}

/* The served names: --served-model-name, else the model directory's or file's base name (a
 * GGUF's without ".gguf"). */
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
        size_t bl = strlen(names[0]);
        if (bl > 5 && !strcmp(names[0] + bl - 5, ".gguf")) names[0][bl - 5] = 0;
        free(dup);
    }
    return names;
}

static const char *template_option(enum opt_chat_template t)
{
    static const char *const names[] = {"auto", "deepseek-v3", "deepseek-r1", "chatml", "llama3"};
    return names[t];
}

/* Everything `seekd serve` holds while it runs. */
struct daemon {
    struct seekd_options o;
    int argc;                   /* the arguments, to re-read the config file on SIGHUP */
    char **argv;
    sigset_t signals;           /* SIGINT, SIGTERM, SIGHUP: blocked, taken by sigtimedwait */
    struct log *log;
    struct notify nt;
    struct api a;
    struct http_server *h;
    struct launch ln;           /* alone, or one rank of an MPI job */
    struct comm *cm;            /* every rank (MPI only): the start-up exchange */
    struct comm *tpc;           /* tensor parallelism: the engine threads' communicator; NULL */
    struct comm *epc;           /* expert parallelism: the engine threads' communicator; NULL */
    int self_exit;              /* the exit code of ranks this process started (launch_self) */
    struct dp_rank *dpr;        /* ranks 1..: the loop serving rank 0's requests */
};

/* The backend and its devices, and numerics auto on CUDA (fast; on the CPU the engine decides
 * once the model is loaded: backend_numerics); logs why auto fell back to the CPU. */
static int pick_backend(struct daemon *d, struct engine_opts *eo, int *devices, struct err *e)
{
    char note[320];
    eo->backend = backend_select(backend_kind_of(d->o.backend), note, sizeof note, e);
    if (!eo->backend) return -1;
    if (note[0]) log_msg(d->log, LOGL_INFO, "%s", note);
    int cuda = strcmp(eo->backend->name, "cuda") == 0;
    eo->backend_auto = d->o.backend == OPT_BACKEND_AUTO; /* numerics auto: resolved by the engine */
    eo->sample_prefilter = d->o.sample_prefilter == OPT_SWITCH_ON ||
                           (d->o.sample_prefilter == OPT_SWITCH_AUTO && cuda && eo->numerics != NUMERICS_REF);
    eo->devices = devices;
    eo->n_devices = backend_parse_devices(d->o.gpus, devices, BACKEND_MAX_DEVICES, e);
    if (eo->n_devices < 0) return -1;
    eo->n_devices = launch_devices(&d->ln, devices, eo->n_devices);
    return 0;
}

/* One line saying what runs the model, in which arithmetic (nm: auto resolved), and what it
 * holds. */
static void log_backend(struct daemon *d, enum numerics nm)
{
    struct backend_stats st;
    const char *name = engine_backend(d->a.eng, &st);
    const char *arith = nm == NUMERICS_FAST   ? "fast"
                        : nm == NUMERICS_REF  ? "ref"
                        : strcmp(name, "cuda") == 0 ? "bf16 (run as ref: no BF16 kernels here)"
                                                     : "bf16";
    log_msg(d->log, LOGL_INFO, "backend %s (%s), numerics %s: weights %.2f GiB, KV pool %d blocks "
            "of %s (%.2f GiB), prefill chunks of %d tokens beside decodes", name, st.device, arith,
            (double)st.weight_bytes / (1 << 30), st.n_blocks, dtype_name(st.kv_dtype),
            (double)st.kv_bytes / (1 << 30),
            d->o.prefill_chunk > 0 ? d->o.prefill_chunk : st.prefill_chunk);
}

/* Waits up to timeout_s for one of d->signals; returns it, or 0 on timeout. */
static int wait_signal(struct daemon *d, double timeout_s)
{
    struct timespec ts = {(time_t)timeout_s, (long)((timeout_s - (time_t)timeout_s) * 1e9)};
    for (;;) {
        int sig = sigtimedwait(&d->signals, NULL, &ts);
        if (sig > 0) return sig;
        if (errno == EAGAIN) return 0;
    }
}

/* How often the main thread wakes: half the watchdog interval, at most a second. */
static double tick_s(const struct daemon *d)
{
    double wd = (double)d->nt.watchdog_usec * 1e-6 / 2;
    return wd > 0 && wd < 1 ? wd : 1;
}

/* WATCHDOG=1 only while the engine loop makes progress: a hung engine gets restarted. */
static void watchdog(struct daemon *d)
{
    if (d->nt.watchdog_usec && d->a.eng && engine_alive(d->a.eng, d->a.stall_s))
        notify_send(&d->nt, "WATCHDOG=1");
}

/* SIGHUP: reopen the log file (logrotate) and reload the API keys from the config file. */
static void reload(struct daemon *d)
{
    struct err e = {0};
    notify_send(&d->nt, "RELOADING=1");
    if (log_reopen(d->log, &e) != 0) log_msg(d->log, LOGL_ERROR, "SIGHUP: %s", e.msg);
    struct seekd_options fresh;
    if (opt_parse(&fresh, d->argc, d->argv, &e) != 0) {
        log_msg(d->log, LOGL_ERROR, "SIGHUP: keeping the old API keys: %s", e.msg);
    } else {
        http_set_api_keys(d->h, (const char *const *)fresh.api_keys.items);
        log_msg(d->log, LOGL_INFO, "SIGHUP: log reopened, %d API key(s) loaded",
                fresh.api_keys.n_items);
        opt_free(&fresh);
    }
    notify_send(&d->nt, "READY=1");
}

/* Runs one tiny generation (one prompt token, one new token) so that the first request does not
 * pay for first-touch page faults and lazy set-up. */
static int warm_up(struct daemon *d, struct err *e)
{
    int32_t prompt[1] = {tok_bos_id(d->a.tok) >= 0 ? tok_bos_id(d->a.tok) : 0};
    struct gen_params p = {.prompt = prompt, .n_prompt = 1, .n = 1, .max_tokens = 1,
                           .ignore_eos = 1, .sampling = smp_params_default()};
    p.sampling.temperature = 0;
    int busy = 0;
    struct gen *g = engine_submit(d->a.eng, &p, NULL, NULL, &busy, e);
    if (!g) return err_prefix(e, "warm-up");
    struct gen_event ev;
    int done = 0;
    while (!done) {
        while (!done && gen_poll(g, &ev)) {
            done = ev.kind == GEN_EV_DONE;
            gen_event_clear(&ev);
        }
        if (!done) usleep(1000);
    }
    gen_release(g);
    return 0;
}

/* Tells the person at the terminal where to point a browser (a wildcard address is reached
 * locally through loopback). */
static void log_page_url(struct daemon *d)
{
    const char *h = d->o.host;
    if (!d->o.webui) return;
    if (strcmp(h, "0.0.0.0") == 0) h = "127.0.0.1";
    else if (strcmp(h, "::") == 0) h = "::1";
    int v6 = strchr(h, ':') != NULL;
    log_msg(d->log, LOGL_INFO, "chat page: http://%s%s%s:%d/", v6 ? "[" : "", h, v6 ? "]" : "",
            http_port(d->h));
}

static void check_ranks(struct daemon *d);

/* Serves until SIGTERM/SIGINT; handles SIGHUP, the watchdog and (under MPI) the ranks meanwhile. */
static int run(struct daemon *d)
{
    for (;;) {
        int sig = wait_signal(d, tick_s(d));
        if (sig == SIGHUP) reload(d);
        else if (sig) return sig;
        check_ranks(d);
        watchdog(d);
    }
}

/* Ends every stream with an error event now, and gives the bytes a moment to leave. */
static void abort_streams(struct daemon *d)
{
    __atomic_store_n(&d->a.aborting, 1, __ATOMIC_RELEASE);
    http_wake_all(d->h);
    double end = http_now() + 0.5;
    while (http_now() < end && http_n_live(d->h) > 0) usleep(10 * 1000);
}

/* Drain: refuse new work, let running requests finish, within the shutdown timeout. */
static void drain(struct daemon *d, int sig)
{
    double timeout_s = d->o.shutdown_timeout;
    __atomic_store_n(&d->a.draining, 1, __ATOMIC_RELEASE);
    http_quiesce(d->h);
    notify_send(&d->nt, "STOPPING=1\nSTATUS=Draining %d request(s)", http_n_live(d->h));
    log_msg(d->log, LOGL_INFO, "%s: draining %d request(s), up to %gs (a second signal stops now)",
            strsignal(sig), http_n_live(d->h), timeout_s);
    double end = http_now() + timeout_s;
    while (http_n_live(d->h) > 0) {
        if (http_now() >= end) {
            log_msg(d->log, LOGL_WARN, "shutdown_timeout: ending %d request(s)", http_n_live(d->h));
            return abort_streams(d);
        }
        int again = wait_signal(d, 0.05);
        if (again == SIGHUP) reload(d);
        else if (again) {
            log_msg(d->log, LOGL_WARN, "second signal: ending %d request(s) now", http_n_live(d->h));
            return abort_streams(d);
        }
        check_ranks(d);
        watchdog(d);
    }
    log_msg(d->log, LOGL_INFO, "drained");
}

/* The sampling defaults of requests that set none: the model's (generation_config auto), said. */
static void log_sampling(struct daemon *d)
{
    const struct gen_defaults *g = engine_gen_defaults(d->a.eng);
    char what[160];
    gencfg_describe(g, what, sizeof what);
    if (d->o.generation_config == OPT_GENCFG_NONE || !what[0]) {
        log_msg(d->log, LOGL_INFO, "sampling defaults: OpenAI's (temperature 1, top_p 1)%s",
                what[0] ? "; the model's are not used (generation_config none)" : "");
        return;
    }
    d->a.sampling = *g;
    log_msg(d->log, LOGL_INFO, "sampling defaults from %s: %s (a request's own values win; "
            "--generation-config none for OpenAI's)", g->source, what);
}

/* Loads the engine and warms it up; -1 with a message. */
static int load_engine(struct daemon *d, struct err *e)
{
    struct engine_opts eo;
    struct progress pr;
    progress_init(&pr, d->log, &d->nt, isatty(2) && !*d->o.log_file && d->ln.size == 1);
    fill_engine_opts(&d->o, &eo, &pr.cb);
    eo.tp_comm = d->tpc, eo.ep_comm = d->epc;
    int devices[BACKEND_MAX_DEVICES];
    if (pick_backend(d, &eo, devices, e) != 0) return -1;
    notify_send(&d->nt, "STATUS=Loading model %s", d->o.model);
    d->a.eng = engine_create(&eo, e);
    if (!d->a.eng) return -1;
    if (engine_backend_note(d->a.eng)[0]) log_msg(d->log, LOGL_INFO, "%s", engine_backend_note(d->a.eng));
    log_backend(d, engine_numerics(d->a.eng));
    d->a.tok = engine_tokenizer(d->a.eng);
    d->a.max_token_text = 3 * tok_max_piece_bytes(d->a.tok) + 4;
    d->a.max_model_len = engine_max_model_len(d->a.eng);
    log_sampling(d);
    struct engine_limits lim;
    engine_limits(d->a.eng, &lim);
    if (!d->o.max_model_len && lim.max_model_len < lim.model_context)
        log_msg(d->log, LOGL_WARN, "max_model_len clamped to %d tokens, all the KV cache holds "
                "(the model's context is %d): raise kv_cache_memory for the full context",
                lim.max_model_len, lim.model_context);
    if (d->tpc && d->tpc->rank > 0) return 0; /* a follower runs its group's warm-up step */
    notify_send(&d->nt, "STATUS=Warming up");
    double t0 = http_now();
    if (warm_up(d, e) != 0) return -1;
    log_msg(d->log, LOGL_INFO, "warm-up step: %.3fs", http_now() - t0);
    return 0;
}

/* Each connection holds a file descriptor. Raises the soft limit as far as the hard one allows;
 * warns when max_connections still does not fit (accept would fail for everyone instead). */
static void check_fd_limit(struct daemon *d)
{
    struct rlimit rl;
    rlim_t need = (rlim_t)d->o.max_connections + 64; /* the log, epoll, pipes, model files */
    if (getrlimit(RLIMIT_NOFILE, &rl) != 0) return;
    if (rl.rlim_cur < need && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = need < rl.rlim_max ? need : rl.rlim_max;
        if (setrlimit(RLIMIT_NOFILE, &rl) != 0) getrlimit(RLIMIT_NOFILE, &rl);
    }
    if (rl.rlim_cur < need)
        log_msg(d->log, LOGL_WARN, "max_connections (%d) needs more file descriptors than the "
                "limit of %llu allows; raise it (ulimit -n, LimitNOFILE=) or lower max_connections",
                d->o.max_connections, (unsigned long long)rl.rlim_cur);
}

/* Settings that open the server wider than an operator may mean to. */
static void warn_exposure(struct daemon *d)
{
    for (int i = 0; i < d->o.cors_allowed_origins.n_items; i++)
        if (strcmp(d->o.cors_allowed_origins.items[i], "*") == 0 && !d->o.api_keys.n_items)
            log_msg(d->log, LOGL_WARN, "CORS allows any origin and no API key is set: any web "
                                       "page a user opens can use this server");
}

/* Loads the engine and the chat template, warms up; -1 with a message. */
static int load(struct daemon *d, struct chat **chat, struct err *e)
{
    if (load_engine(d, e) != 0) return -1;
    d->a.chat = *chat = chat_create(d->a.tok, template_option(d->o.chat_template), e);
    return *chat ? 0 : -1;
}

/* ---- ranks ------------------------------------------------------------------------------------ */

/* Logs why and ends every rank of the job (non-zero exit). */
static void stop_job(struct daemon *d, const char *why)
{
    log_msg(d->log, LOGL_ERROR, "%s; stopping every rank", why);
    notify_send(&d->nt, "STATUS=Failed: %s", why);
    comm_mpi_abort(d->ln.w, 1);
}

/* The failed ranks of an exchange of {ok, n_blocks} pairs, as "1, 3". */
static void failed_ranks(const int64_t *all, int size, char *out, size_t n)
{
    size_t used = 0;
    out[0] = 0;
    for (int r = 0; r < size && used < n; r++)
        if (!all[2 * r])
            used += (size_t)snprintf(out + used, n - used, "%s%d", used ? ", " : "", r);
}

/* Every rank says whether it started and how many KV blocks it holds; then rank 0 routes
 * requests and the other ranks serve them. -1 with a message when any rank failed (this one:
 * its own message stays). */
static int join_ranks(struct daemon *d, int ok, struct err *e)
{
    struct backend_stats st = {0};
    if (!d->ln.w) return ok ? 0 : -1;
    if (ok) engine_backend(d->a.eng, &st);
    int64_t mine[2] = {ok, st.n_blocks}, *all = xcalloc(2 * (size_t)d->ln.size, sizeof *all);
    struct err ce = {0};
    int rc = comm_exchange(d->cm, mine, 2, all, &ce);
    if (rc != 0) stop_job(d, ce.msg);
    char failed[256];
    int64_t min_blocks = st.n_blocks;
    for (int r = 0; r < d->ln.size; r++)
        if (all[2 * r + 1] < min_blocks) min_blocks = all[2 * r + 1];
    failed_ranks(all, d->ln.size, failed, sizeof failed);
    free(all);
    if (!ok) return -1;
    if (failed[0]) return err_set(e, "rank(s) %s failed to start (their log says why)", failed);
    if (d->ln.size == 1) return 0; /* mpirun -np 1: nothing to route */
    if (d->ln.rank == 0)
        engine_start_router(d->a.eng, d->ln.w, d->o.engine_stall_timeout, (int32_t)min_blocks,
                            d->o.tensor_parallel_size);
    else
        d->dpr = dp_rank_start(d->a.eng, d->ln.w, d->o.engine_stall_timeout);
    return 0;
}

/* Rank 0 under MPI: a rank that failed or stalled (this one included) ends the job. */
static void check_ranks(struct daemon *d)
{
    char why[512];
    if (!d->ln.w || !d->a.eng) return;
    if (engine_fault(d->a.eng, why, sizeof why)) stop_job(d, why);
    if (!engine_alive(d->a.eng, d->o.engine_stall_timeout)) {
        snprintf(why, sizeof why, "rank 0: its engine has made no progress for %.1fs",
                 engine_idle_s(d->a.eng));
        stop_job(d, why);
    }
}

/* Ranks 1..: serves until rank 0 says stop; signals other than SIGHUP are left to rank 0. */
static int follow(struct daemon *d)
{
    int told = 0;
    for (;;) {
        char why[512];
        struct err e = {0};
        int sig = wait_signal(d, 0.1);
        if (sig == SIGHUP && log_reopen(d->log, &e) != 0)
            log_msg(d->log, LOGL_ERROR, "SIGHUP: %s", e.msg); /* API keys are rank 0's */
        else if (sig && sig != SIGHUP && !told++)
            log_msg(d->log, LOGL_INFO, "%s: rank 0 decides when every rank stops", strsignal(sig));
        int state = dp_rank_state(d->dpr, why, sizeof why);
        if (state > 0) return 0;
        if (state < 0) stop_job(d, why);
    }
}

/* The life of a rank other than 0: load, join, serve rank 0's requests, stop when told. */
static int serve_rank(struct daemon *d)
{
    struct err e = {0};
    char prefix[32];
    snprintf(prefix, sizeof prefix, "rank %d: ", d->ln.rank);
    log_set_prefix(d->log, prefix);
    log_msg(d->log, LOGL_INFO, "one of %d ranks, on %s (pid %d); loading %s", d->ln.size,
            comm_mpi_host(d->ln.w), (int)getpid(), d->o.model);
    int ok = load_engine(d, &e) == 0, rc = 1;
    if (!ok) log_msg(d->log, LOGL_ERROR, "%s", e.msg);
    if (join_ranks(d, ok, &e) != 0) {
        if (ok) log_msg(d->log, LOGL_ERROR, "%s", e.msg);
    } else {
        if (d->tpc && d->tpc->rank > 0)
            log_msg(d->log, LOGL_INFO, "ready (pid %d): running its part of rank %d's steps",
                    (int)getpid(), d->ln.rank - d->tpc->rank);
        else
            log_msg(d->log, LOGL_INFO, "ready (pid %d): serving rank 0's requests", (int)getpid());
        rc = follow(d);
    }
    dp_rank_destroy(d->dpr);
    engine_destroy(d->a.eng);
    log_msg(d->log, LOGL_INFO, "exit %d", rc);
    return rc;
}

static int serve(struct daemon *d)
{
    struct err e = {0};
    struct http_config hc;
    char **names = model_names(&d->o);
    struct chat *chat = NULL;
    d->a = (struct api){.names = (const char *const *)names, .created = time(NULL),
                        .stall_s = d->o.engine_stall_timeout, .log = d->log,
                        .request_timeout_s = d->o.request_timeout,
                        .default_max_tokens = d->o.default_max_tokens,
                        .public_metrics = d->o.public_metrics,
                        .grammars = gcache_create(64)};
    d->a.compiler = api_compiler_create(64, &e);
    fill_http_config(&d->o, &hc);
    warn_exposure(d);
    check_fd_limit(d);
    int n_routes;
    const struct http_route *routes = api_route_table(d->o.webui, &n_routes);
    d->h = http_start(&hc, routes, n_routes, &d->a, &e);
    int rc = 1, ok = d->h != NULL && d->a.compiler != NULL;
    if (ok)
        log_msg(d->log, LOGL_INFO, "seekd %s listening on %s port %d; loading %s", SEEKD_VERSION,
                d->o.host, http_port(d->h), d->o.model);
    if (ok && d->ln.w && d->tpc)
        log_msg(d->log, LOGL_INFO, "tensor parallelism, %d group(s) of %d ranks: rank 0 of %d on %s "
                "(pid %d) serves HTTP and routes requests to the groups, whose first rank schedules "
                "the steps each rank runs its part of", d->o.data_parallel_size,
                d->o.tensor_parallel_size, d->ln.size, comm_mpi_host(d->ln.w), (int)getpid());
    else if (ok && d->ln.w)
        log_msg(d->log, LOGL_INFO, "data parallelism: rank 0 of %d on %s (pid %d) serves HTTP and "
                "routes requests to %d engines", d->ln.size, comm_mpi_host(d->ln.w), (int)getpid(),
                d->ln.size);
    ok = ok && load(d, &chat, &e) == 0;
    if (join_ranks(d, ok, &e) != 0) goto out; /* every rank learns whether all started */
    __atomic_store_n(&d->a.ready, 1, __ATOMIC_RELEASE);
    notify_send(&d->nt, "READY=1\nSTATUS=Serving '%s' on %s port %d", names[0], d->o.host,
                http_port(d->h));
    log_msg(d->log, LOGL_INFO, "ready: serving '%s' on %s port %d", names[0], d->o.host,
            http_port(d->h));
    log_page_url(d);
    drain(d, run(d));
    rc = 0;
out:
    if (rc) {
        log_msg(d->log, LOGL_ERROR, "%s", e.msg);
        notify_send(&d->nt, "STATUS=Failed: %s", e.msg);
    }
    http_stop(d->h);
    chat_destroy(chat);
    engine_destroy(d->a.eng);
    api_compiler_destroy(d->a.compiler); /* after http_stop: no connection waits on it any more */
    gcache_destroy(d->a.grammars);
    log_msg(d->log, LOGL_INFO, "exit %d", rc);
    if (!d->o.served_model_name.n_items) free(names[0]);
    free(names);
    return rc;
}

/* The log; -1 with a message on stderr. */
static int open_log(struct daemon *d)
{
    struct err e = {0};
    d->log = log_create(d->o.log_file, d->o.log_format == OPT_LOG_JSON ? LOG_JSON : LOG_TEXT,
                        (enum log_level)d->o.log_level, &e);
    if (d->log) return 0;
    fprintf(stderr, "seekd serve: %s\n", e.msg);
    return -1;
}

/* The log and the systemd notification socket (rank 0 only: it is the service's voice). */
static int open_outputs(struct daemon *d)
{
    struct err e = {0};
    if (open_log(d) != 0) return -1;
    if (notify_open(&d->nt, &e) == 0) return 0;
    fprintf(stderr, "seekd serve: %s\n", e.msg);
    return -1;
}

/* MPI when launched by it (or the ranks started under mpirun from here: 1 once they ended), and
 * the communicators of the start-up exchange and the engine threads. */
static int start_launch(struct daemon *d)
{
    struct err e = {0};
    struct launch_layout lay = {.tensor_parallel_size = d->o.tensor_parallel_size,
                                .data_parallel_size = d->o.data_parallel_size,
                                .enable_expert_parallel = d->o.enable_expert_parallel};
    int self = launch_self(&lay, d->argc, d->argv, &d->self_exit, &e);
    if (self > 0) return 1; /* the ranks ran under mpirun, started here */
    if (self < 0 || launch_start(&d->ln, &lay, &e) != 0) {
        if (d->ln.rank == 0) fprintf(stderr, "seekd serve: %s\n", e.msg);
        launch_finish(&d->ln);
        return -1;
    }
    if (!d->ln.w) return 0;
    d->cm = comm_mpi_split(d->ln.w, 0, d->ln.rank, &e);
    int tp = lay.tensor_parallel_size > 1, ep = !tp && lay.enable_expert_parallel;
    struct comm **own = tp ? &d->tpc : ep ? &d->epc : NULL; /* the engine threads' own */
    if (d->cm && own) /* tensor-parallel: one per group of tensor_parallel_size ranks */
        *own = comm_mpi_split(d->ln.w, tp ? d->ln.rank / lay.tensor_parallel_size : 0, d->ln.rank, &e);
    if (d->cm && (!own || *own)) return 0;
    fprintf(stderr, "seekd serve: rank %d: %s\n", d->ln.rank, e.msg);
    comm_destroy(d->cm);
    d->cm = NULL;
    launch_finish(&d->ln);
    return -1;
}

int cmd_serve(int argc, char **argv)
{
    struct daemon d = {.argc = argc, .argv = argv, .nt = {.fd = -1}};
    int rc = cmd_serve_options(argc, argv, &d.o);
    if (rc != 0) return rc > 0 ? 0 : 2;
    sigemptyset(&d.signals);
    sigaddset(&d.signals, SIGINT);
    sigaddset(&d.signals, SIGTERM);
    sigaddset(&d.signals, SIGHUP);
    pthread_sigmask(SIG_BLOCK, &d.signals, NULL); /* every thread started after this inherits it */
    signal(SIGPIPE, SIG_IGN);
    if ((rc = start_launch(&d)) != 0) {
        opt_free(&d.o);
        return rc > 0 ? d.self_exit : 2;
    }
    if (d.ln.rank == 0) rc = open_outputs(&d) == 0 ? serve(&d) : 1;
    else rc = open_log(&d) == 0 ? serve_rank(&d) : 1;
    notify_close(&d.nt);
    log_destroy(d.log);
    opt_free(&d.o);
    comm_destroy(d.tpc);
    comm_destroy(d.epc);
    comm_destroy(d.cm);
    launch_finish(&d.ln);
    return rc;
}
