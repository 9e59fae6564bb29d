/* cmd_bench: `seekd bench` — a serving load generator for any OpenAI-compatible server, in the
 * manner of vLLM's benchmark_serving and with its flag names. Requests go to /v1/completions,
 * streamed, with ignore_eos so every request produces exactly its output length; a fixed number
 * of concurrent streams, optionally a Poisson arrival rate. Reports TTFT, TPOT, ITL and
 * end-to-end latency (mean, median, p99) and request / token throughput, as a table on stdout
 * and as JSON (--result-file); a progress bar on stderr. */
#include <getopt.h>
#include <jansson.h>
#include <math.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "engine/text/tokenizer.h"
#include "engine/vocab.h"
#include "server/bench_http.h"
#include "server/commands.h"

struct bench_opts {
    const char *base_url, *endpoint, *model, *tokenizer, *dataset, *result_file, *label;
    int num_prompts, max_concurrency, input_len, output_len, progress;
    double request_rate; /* requests/s; INFINITY = all at once */
    unsigned long long seed;
};

/* One request's prompt and what was measured. */
struct bench_req {
    char *prompt;
    int prompt_tokens;  /* from the server's usage when given, else the client's count */
    double start, ttft, e2e; /* seconds; start relative to the run's start */
    double last;        /* time of the latest chunk (absolute) */
    double *itl;        /* gaps between chunks */
    int n_itl, cap_itl, n_chunks, out_tokens, ok;
    int got_first;      /* a choice arrived (its text may be empty: a partial character) */
    char error[256];
};

struct bench {
    struct bench_opts o;
    struct bh_url url;
    struct bench_req *reqs;
    double *arrival;    /* [num_prompts] seconds after t0 */
    double t0;
    _Atomic int next, n_done;
    pthread_mutex_t mu; /* the progress bar */
};

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec * 1e-9;
}

static unsigned long long rng_next(unsigned long long *s)
{
    *s ^= *s << 13, *s ^= *s >> 7, *s ^= *s << 17;
    return *s;
}

static double rng_unit(unsigned long long *s)
{
    return ((double)(rng_next(s) >> 11) + 0.5) / 9007199254740992.0;
}

/* ---- prompts ----------------------------------------------------------------------------------- */

/* Whether a token's text contains a NUL byte (a C string, and the JSON built from it, would end
 * there). */
static int has_nul(const struct tok *t, int32_t id)
{
    struct tok_text s = {0};
    struct err e = {0};
    tok_decode(t, &id, 1, true, &s, &e);
    int nul = s.n > 0 && memchr(s.s, 0, s.n) != NULL;
    tok_text_free(&s);
    return nul;
}

/* Random text of about n tokens: random non-special ids, decoded, re-encoded, cut to n, decoded. */
static char *random_prompt(const struct tok *t, int n, unsigned long long *seed, int *n_tok)
{
    struct tok_ids ids = {0}, again = {0};
    struct tok_text text = {0}, cut = {0};
    struct err e = {0};
    int V = tok_n_vocab(t);
    do { /* re-encoding merges some neighbours: add ids until the text has n tokens */
        int target = (int)ids.n + n + 8 - (int)again.n;
        while ((int)ids.n < target) {
            int32_t id = (int32_t)(rng_next(seed) % (unsigned long long)V);
            if (!tok_is_special(t, id) && !has_nul(t, id)) tok_ids_push(&ids, id);
        }
        text.n = 0, again.n = 0;
        tok_decode(t, ids.v, ids.n, true, &text, &e);
        tok_encode(t, text.s, text.n, 0, &again, &e);
    } while ((int)again.n < n);
    tok_decode(t, again.v, again.n < (size_t)n ? again.n : (size_t)n, true, &cut, &e);
    *n_tok = again.n < (size_t)n ? (int)again.n : n;
    char *s = strndup(cut.s ? cut.s : "", cut.n);
    tok_ids_free(&ids), tok_ids_free(&again), tok_text_free(&text), tok_text_free(&cut);
    return s;
}

/* The tokenizer of --tokenizer: a directory's tokenizer.json, or a GGUF file's vocabulary. */
static struct tok *bench_tokenizer(const char *path, struct err *e)
{
    char tj[4096], tc[4096];
    if (gguf_is_gguf(path)) {
        struct gguf_set g;
        if (gguf_open(&g, path, e) != 0) return NULL;
        struct tok *t = vocab_from_gguf(&g, NULL, e);
        gguf_close(&g);
        return t;
    }
    snprintf(tj, sizeof tj, "%s/tokenizer.json", path);
    snprintf(tc, sizeof tc, "%s/tokenizer_config.json", path);
    return tok_load(tj, access(tc, R_OK) == 0 ? tc : NULL, e);
}

static int load_random(struct bench *b)
{
    struct err e = {0};
    struct tok *t = bench_tokenizer(b->o.tokenizer, &e);
    if (!t) {
        fprintf(stderr, "seekd bench: %s\n", e.msg);
        return -1;
    }
    unsigned long long seed = b->o.seed * 2654435761ull + 1;
    for (int i = 0; i < b->o.num_prompts; i++)
        b->reqs[i].prompt = random_prompt(t, b->o.input_len, &seed, &b->reqs[i].prompt_tokens);
    tok_destroy(t);
    return 0;
}

/* A prompt file: a JSON array of strings, or one prompt per line; used round-robin. */
static int load_dataset(struct bench *b)
{
    json_error_t je;
    json_t *arr = json_load_file(b->o.dataset, 0, &je);
    char **lines = NULL;
    size_t n = 0;
    if (json_is_array(arr)) {
        lines = calloc(json_array_size(arr) + 1, sizeof *lines);
        for (size_t i = 0; i < json_array_size(arr); i++)
            if (json_is_string(json_array_get(arr, i))) lines[n++] = strdup(json_string_value(json_array_get(arr, i)));
    } else {
        FILE *f = fopen(b->o.dataset, "r");
        char *line = NULL;
        size_t cap = 0;
        ssize_t len;
        while (f && (len = getline(&line, &cap, f)) > 0) {
            while (len > 0 && (line[len - 1] == '\n' || line[len - 1] == '\r')) line[--len] = 0;
            if (!len) continue;
            lines = realloc(lines, (n + 1) * sizeof *lines);
            lines[n++] = strdup(line);
        }
        free(line);
        if (f) fclose(f);
    }
    json_decref(arr);
    if (n == 0) {
        fprintf(stderr, "seekd bench: no prompts in %s\n", b->o.dataset);
        free(lines);
        return -1;
    }
    for (int i = 0; i < b->o.num_prompts; i++) b->reqs[i].prompt = strdup(lines[(size_t)i % n]);
    for (size_t i = 0; i < n; i++) free(lines[i]);
    free(lines);
    return 0;
}

/* ---- requests ---------------------------------------------------------------------------------- */

static void on_event(void *ctx, const char *data, size_t len)
{
    struct bench_req *r = ctx;
    double t = now_s();
    json_error_t je;
    json_t *j = json_loadb(data, len, 0, &je);
    if (!j) {
        snprintf(r->error, sizeof r->error, "bad response: %.200s", data);
        return;
    }
    json_t *err = json_object_get(j, "error"), *usage = json_object_get(j, "usage");
    if (err) {
        json_t *m = json_object_get(err, "message");
        snprintf(r->error, sizeof r->error, "%s", json_is_string(m) ? json_string_value(m) : "error");
    }
    if (json_is_object(usage)) {
        json_t *ct = json_object_get(usage, "completion_tokens"), *pt = json_object_get(usage, "prompt_tokens");
        if (json_is_integer(ct)) r->out_tokens = (int)json_integer_value(ct);
        if (json_is_integer(pt)) r->prompt_tokens = (int)json_integer_value(pt);
    }
    json_t *ch = json_array_get(json_object_get(j, "choices"), 0);
    json_t *text = json_object_get(ch, "text");
    if (!text) text = json_object_get(json_object_get(ch, "delta"), "content");
    if (!json_is_string(text)) goto done;
    if (!r->got_first) r->ttft = t - r->start, r->got_first = 1, r->last = t; /* even empty text */
    if (json_string_length(text) > 0) {
        if (r->n_chunks > 0) {
            if (r->n_itl == r->cap_itl) r->itl = realloc(r->itl, (size_t)(r->cap_itl = r->cap_itl ? 2 * r->cap_itl : 64) * sizeof *r->itl);
            r->itl[r->n_itl++] = t - r->last;
        }
        r->n_chunks++;
        r->last = t;
    }
done:
    json_decref(j);
}

static char *request_body(const struct bench *b, const struct bench_req *r, int max_tokens)
{
    json_t *j = json_pack("{s:s, s:s, s:i, s:f, s:b, s:{s:b}, s:b}", "model", b->o.model, "prompt",
                          r->prompt, "max_tokens", max_tokens, "temperature", 0.0, "stream", 1,
                          "stream_options", "include_usage", 1, "ignore_eos", 1);
    char *s = json_dumps(j, JSON_COMPACT);
    json_decref(j);
    return s;
}

/* Sends one request and fills its measurements. */
static void run_one(struct bench *b, struct bench_req *r, int max_tokens)
{
    char *body = request_body(b, r, max_tokens), err[256];
    r->start = now_s();
    int st = bh_post(&b->url, b->o.endpoint, body, on_event, r, err, sizeof err);
    double end = now_s();
    free(body);
    r->e2e = end - r->start;
    if (st < 0) snprintf(r->error, sizeof r->error, "%s", err);
    else if (st != 200 && !r->error[0]) snprintf(r->error, sizeof r->error, "HTTP %d", st);
    if (!r->out_tokens) r->out_tokens = r->n_chunks;
    r->ok = !r->error[0] && r->got_first;
    r->start -= b->t0;
}

static void progress(struct bench *b)
{
    if (!b->o.progress) return;
    int done = atomic_load(&b->n_done), n = b->o.num_prompts, w = 40, fill = done * w / n;
    pthread_mutex_lock(&b->mu);
    fprintf(stderr, "\r%s [", b->o.label ? b->o.label : "bench");
    for (int i = 0; i < w; i++) fputc(i < fill ? '#' : '.', stderr);
    fprintf(stderr, "] %d/%d  %.1fs%s", done, n, now_s() - b->t0, done == n ? "\n" : "");
    pthread_mutex_unlock(&b->mu);
}

static void *worker(void *arg)
{
    struct bench *b = arg;
    int i;
    while ((i = atomic_fetch_add(&b->next, 1)) < b->o.num_prompts) {
        double wait = b->t0 + b->arrival[i] - now_s();
        if (wait > 0) {
            struct timespec ts = {(time_t)wait, (long)((wait - floor(wait)) * 1e9)};
            nanosleep(&ts, NULL);
        }
        run_one(b, &b->reqs[i], b->o.output_len);
        atomic_fetch_add(&b->n_done, 1);
        progress(b);
    }
    return NULL;
}

/* ---- results ----------------------------------------------------------------------------------- */

struct stat3 {
    double mean, median, p99;
};

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* Percentile with linear interpolation (numpy's default); v is sorted in place. */
static double percentile(double *v, int n, double q)
{
    if (n == 0) return 0;
    double pos = q / 100.0 * (n - 1);
    int lo = (int)pos;
    return lo + 1 < n ? v[lo] + (v[lo + 1] - v[lo]) * (pos - lo) : v[lo];
}

/* mean, median, p99 of n values, in milliseconds. */
static struct stat3 stats_ms(double *v, int n)
{
    struct stat3 s = {0};
    if (!n) return s;
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    for (int i = 0; i < n; i++) s.mean += v[i];
    s.mean = s.mean / n * 1e3, s.median = percentile(v, n, 50) * 1e3, s.p99 = percentile(v, n, 99) * 1e3;
    return s;
}

static void put_stat(json_t *j, const char *name, struct stat3 s)
{
    char k[64];
    snprintf(k, sizeof k, "mean_%s_ms", name), json_object_set_new(j, k, json_real(s.mean));
    snprintf(k, sizeof k, "median_%s_ms", name), json_object_set_new(j, k, json_real(s.median));
    snprintf(k, sizeof k, "p99_%s_ms", name), json_object_set_new(j, k, json_real(s.p99));
}

/* Computes the summary, prints vLLM's table and returns the JSON record. */
static json_t *summarise(struct bench *b, double duration)
{
    int n = b->o.num_prompts, ok = 0, n_itl = 0;
    long long in = 0, out = 0;
    for (int i = 0; i < n; i++) n_itl += b->reqs[i].n_itl;
    double *ttft = calloc((size_t)n + 1, sizeof *ttft), *tpot = calloc((size_t)n + 1, sizeof *tpot);
    double *e2e = calloc((size_t)n + 1, sizeof *e2e), *itl = calloc((size_t)n_itl + 1, sizeof *itl);
    int n_tpot = 0;
    n_itl = 0;
    for (int i = 0; i < n; i++) {
        struct bench_req *r = &b->reqs[i];
        if (!r->ok) continue;
        in += r->prompt_tokens, out += r->out_tokens;
        ttft[ok] = r->ttft, e2e[ok++] = r->e2e;
        if (r->out_tokens > 1) tpot[n_tpot++] = (r->e2e - r->ttft) / (r->out_tokens - 1);
        memcpy(itl + n_itl, r->itl, (size_t)r->n_itl * sizeof *itl), n_itl += r->n_itl;
    }
    struct stat3 st[4] = {stats_ms(ttft, ok), stats_ms(tpot, n_tpot), stats_ms(itl, n_itl), stats_ms(e2e, ok)};
    const char *names[4] = {"ttft", "tpot", "itl", "e2el"};
    const char *titles[4] = {"Time to First Token", "Time per Output Token (excl. 1st token)",
                             "Inter-token Latency", "End-to-end Latency"};
    const char *abbr[4] = {"TTFT", "TPOT", "ITL", "E2EL"};
    json_t *j = json_pack("{s:s, s:i, s:i, s:f, s:i, s:I, s:I, s:f, s:f, s:f, s:i, s:i}", "label",
                          b->o.label ? b->o.label : "", "completed", ok, "failed", n - ok, "duration",
                          duration, "num_prompts", n, "total_input_tokens", in,
                          "total_output_tokens", out, "request_throughput", ok / duration,
                          "output_throughput", out / duration, "total_token_throughput",
                          (in + out) / duration, "max_concurrency", b->o.max_concurrency,
                          "random_output_len", b->o.output_len);
    json_object_set_new(j, "request_rate", isinf(b->o.request_rate) ? json_string("inf") : json_real(b->o.request_rate));
    printf("============ Serving Benchmark Result ============\n");
    printf("%-40s %-10d\n%-40s %-10d\n", "Successful requests:", ok, "Failed requests:", n - ok);
    printf("%-40s %-10d\n%-40s %-10.2f\n", "Maximum request concurrency:", b->o.max_concurrency,
           "Benchmark duration (s):", duration);
    printf("%-40s %-10lld\n%-40s %-10lld\n", "Total input tokens:", in, "Total generated tokens:", out);
    printf("%-40s %-10.2f\n%-40s %-10.2f\n%-40s %-10.2f\n", "Request throughput (req/s):", ok / duration,
           "Output token throughput (tok/s):", out / duration, "Total Token throughput (tok/s):",
           (in + out) / duration);
    for (int k = 0; k < 4; k++) {
        char l[64];
        printf("%.*s%s%.*s\n", (int)(50 - strlen(titles[k])) / 2, "--------------------------------------------------",
               titles[k], (int)(51 - strlen(titles[k])) / 2, "--------------------------------------------------");
        snprintf(l, sizeof l, "Mean %s (ms):", abbr[k]), printf("%-40s %-10.2f\n", l, st[k].mean);
        snprintf(l, sizeof l, "Median %s (ms):", abbr[k]), printf("%-40s %-10.2f\n", l, st[k].median);
        snprintf(l, sizeof l, "P99 %s (ms):", abbr[k]), printf("%-40s %-10.2f\n", l, st[k].p99);
        put_stat(j, names[k], st[k]);
    }
    printf("==================================================\n");
    for (int i = 0; i < n; i++)
        if (!b->reqs[i].ok) {
            printf("first failure: %s\n", b->reqs[i].error[0] ? b->reqs[i].error : "no choices");
            break;
        }
    free(ttft), free(tpot), free(e2e), free(itl);
    return j;
}

/* ---- command line ------------------------------------------------------------------------------ */

static void bench_usage(FILE *f)
{
    fprintf(f,
            "usage: seekd bench [--base-url URL] [--num-prompts N] [--max-concurrency N]\n"
            "                   [--request-rate R] [--random-input-len N] [--random-output-len N]\n"
            "                   [--tokenizer PATH | --dataset-path FILE] [--model NAME]\n"
            "                   [--result-file FILE] [--label TEXT] [--seed N] [--disable-tqdm]\n"
            "\n"
            "Load-tests an OpenAI-compatible server (POST /v1/completions, streamed, ignore_eos).\n"
            "  --base-url URL          server (default http://127.0.0.1:8000)\n"
            "  --endpoint PATH         default /v1/completions\n"
            "  --num-prompts N         requests in all (default 100)\n"
            "  --max-concurrency N     requests in flight at most (default: all)\n"
            "  --request-rate R        Poisson arrivals, R per second (default inf: all at once)\n"
            "  --random-input-len N    prompt tokens of the random prompts (default 1024)\n"
            "  --random-output-len N   tokens generated per request (default 128)\n"
            "  --tokenizer PATH        tokenizer.json's directory, or a GGUF file: makes the random prompts\n"
            "  --dataset-path FILE     prompts instead: a JSON array of strings, or one per line\n"
            "  --model NAME            model field of the requests (default: GET /v1/models)\n"
            "  --result-file FILE      also write the results as JSON\n"
            "  --label TEXT            a name for this run in the JSON and the progress bar\n"
            "  --seed N                random prompts and arrivals (default 0); change it between\n"
            "                          runs against one server, or its prefix cache answers\n");
}

static int parse_bench_opts(int argc, char **argv, struct bench_opts *o)
{
    enum { O_URL = 256, O_EP, O_NP, O_MC, O_RR, O_IL, O_OL, O_TOK, O_DS, O_MODEL, O_RF, O_LABEL, O_SEED, O_NOBAR };
    static const struct option longs[] = {
        {"base-url", 1, 0, O_URL}, {"endpoint", 1, 0, O_EP}, {"num-prompts", 1, 0, O_NP},
        {"max-concurrency", 1, 0, O_MC}, {"request-rate", 1, 0, O_RR},
        {"random-input-len", 1, 0, O_IL}, {"random-output-len", 1, 0, O_OL},
        {"tokenizer", 1, 0, O_TOK}, {"dataset-path", 1, 0, O_DS}, {"model", 1, 0, O_MODEL},
        {"result-file", 1, 0, O_RF}, {"label", 1, 0, O_LABEL}, {"seed", 1, 0, O_SEED},
        {"disable-tqdm", 0, 0, O_NOBAR}, {"help", 0, 0, 'h'}, {0, 0, 0, 0}};
    *o = (struct bench_opts){.base_url = "http://127.0.0.1:8000", .endpoint = "/v1/completions",
                             .num_prompts = 100, .input_len = 1024, .output_len = 128,
                             .progress = 1, .request_rate = INFINITY};
    int ch;
    while ((ch = getopt_long(argc, argv, "", longs, NULL)) != -1) {
        switch (ch) {
        case O_URL: o->base_url = optarg; break;
        case O_EP: o->endpoint = optarg; break;
        case O_NP: o->num_prompts = atoi(optarg); break;
        case O_MC: o->max_concurrency = atoi(optarg); break;
        case O_RR: o->request_rate = strcmp(optarg, "inf") == 0 ? INFINITY : atof(optarg); break;
        case O_IL: o->input_len = atoi(optarg); break;
        case O_OL: o->output_len = atoi(optarg); break;
        case O_TOK: o->tokenizer = optarg; break;
        case O_DS: o->dataset = optarg; break;
        case O_MODEL: o->model = optarg; break;
        case O_RF: o->result_file = optarg; break;
        case O_LABEL: o->label = optarg; break;
        case O_SEED: o->seed = strtoull(optarg, NULL, 10); break;
        case O_NOBAR: o->progress = 0; break;
        case 'h': bench_usage(stdout); exit(0);
        default: return -1;
        }
    }
    if (o->max_concurrency <= 0 || o->max_concurrency > o->num_prompts) o->max_concurrency = o->num_prompts;
    return optind == argc && o->num_prompts > 0 && o->input_len > 0 && o->output_len > 0 &&
                   o->request_rate > 0 && (o->tokenizer || o->dataset)
               ? 0
               : -1;
}

/* The first model the server lists, or "default". */
static char *discover_model(const struct bh_url *u)
{
    char *body = NULL, err[256], *name = NULL;
    if (bh_get(u, "/v1/models", &body, err, sizeof err) == 200) {
        json_error_t je;
        json_t *j = json_loads(body, 0, &je);
        json_t *id = json_object_get(json_array_get(json_object_get(j, "data"), 0), "id");
        if (json_is_string(id)) name = strdup(json_string_value(id));
        json_decref(j);
    }
    free(body);
    return name ? name : strdup("default");
}

/* Arrival times: all at 0, or cumulative exponential gaps for a Poisson process. */
static void plan_arrivals(struct bench *b)
{
    unsigned long long s = b->o.seed + 0x9e3779b97f4a7c15ull;
    double t = 0;
    for (int i = 0; i < b->o.num_prompts; i++) {
        b->arrival[i] = t;
        if (!isinf(b->o.request_rate)) t += -log(rng_unit(&s)) / b->o.request_rate;
    }
}

static int run_bench(struct bench *b)
{
    /* Its own prompt: reusing a measured one would leave it in the server's prefix cache. */
    struct bench_req probe = {.prompt = "Is the server up?"};
    b->t0 = now_s();
    run_one(b, &probe, 4); /* fails fast when the server is not there, and warms it up */
    free(probe.itl);
    if (!probe.ok) {
        fprintf(stderr, "seekd bench: test request failed: %s\n", probe.error[0] ? probe.error : "no choices");
        return -1;
    }
    plan_arrivals(b);
    pthread_t *th = calloc((size_t)b->o.max_concurrency, sizeof *th);
    b->t0 = now_s();
    for (int i = 0; i < b->o.max_concurrency; i++) pthread_create(&th[i], NULL, worker, b);
    for (int i = 0; i < b->o.max_concurrency; i++) pthread_join(th[i], NULL);
    double duration = now_s() - b->t0;
    free(th);
    json_t *j = summarise(b, duration);
    int rc = 0;
    if (b->o.result_file && json_dump_file(j, b->o.result_file, JSON_INDENT(2)) != 0) {
        fprintf(stderr, "seekd bench: cannot write %s\n", b->o.result_file);
        rc = -1;
    }
    json_decref(j);
    return rc;
}

int cmd_bench(int argc, char **argv)
{
    struct bench b = {0};
    if (parse_bench_opts(argc, argv, &b.o) != 0 || bh_parse_url(b.o.base_url, &b.url) != 0) {
        bench_usage(stderr);
        return 2;
    }
    pthread_mutex_init(&b.mu, NULL);
    b.reqs = calloc((size_t)b.o.num_prompts, sizeof *b.reqs);
    b.arrival = calloc((size_t)b.o.num_prompts, sizeof *b.arrival);
    char *model = b.o.model ? strdup(b.o.model) : discover_model(&b.url);
    b.o.model = model;
    int rc = (b.o.dataset ? load_dataset(&b) : load_random(&b)) == 0 && run_bench(&b) == 0 ? 0 : 1;
    for (int i = 0; i < b.o.num_prompts; i++) free(b.reqs[i].prompt), free(b.reqs[i].itl);
    free(b.reqs);
    free(b.arrival);
    free(model);
    pthread_mutex_destroy(&b.mu);
    return rc;
}
