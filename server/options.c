/* options: the option table of `seekd serve` and what is generated from it — defaults, value
 * parsing (sizes, durations, enums, lists), the SEEKD_API_KEY variable and cross-option
 * checks. The YAML file is read by options_yaml.c, the command line by options_cli.c. */
#include "server/options.h"
#include "server/options_internal.h"

#include <arpa/inet.h>
#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <math.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>

#include "engine/backend.h"

/* ---- the table ------------------------------------------------------------------------------ */

static const char *const kv_dtypes[] = {"auto", "bf16", "f32", "f16", NULL};
static const char *const templates[] = {"auto", "deepseek-v3", "deepseek-r1", "chatml", "llama3", NULL};
static const char *const log_levels[] = {"debug", "info", "warn", "error", NULL};
static const char *const log_formats[] = {"text", "json", NULL};
static const char *const backends[] = {"auto", "cpu", "cuda", NULL};
static const char *const numerics_modes[] = {"auto", "ref", "bf16", "fast", NULL};
static const char *const switches[] = {"auto", "on", "off", NULL};
static const char *const gen_configs[] = {"auto", "none", NULL};

/* Enum fields are written through an int. */
_Static_assert(sizeof(enum opt_kv_dtype) == sizeof(int), "enum size");
_Static_assert(sizeof(enum opt_log_level) == sizeof(int), "enum size");
_Static_assert(sizeof(enum opt_backend) == sizeof(int), "enum size");
_Static_assert(sizeof(enum opt_numerics) == sizeof(int), "enum size");
_Static_assert(sizeof(enum opt_switch) == sizeof(int), "enum size");
_Static_assert(sizeof(enum opt_gen_config) == sizeof(int), "enum size");

/* Offset of field f, and a compile error unless its C type is ctype. */
#define FIELD(f, ctype)                                                                            \
    .key = #f, .offset = offsetof(struct seekd_options, f) +                                       \
                         0 * sizeof(_Generic(((struct seekd_options *)0)->f, ctype : 1))
#define STR(f)            FIELD(f, char *), .type = T_STRING
#define INT(f)            FIELD(f, int), .type = T_INT
#define BOOL(f)           FIELD(f, bool), .type = T_BOOL
#define SIZE(f)           FIELD(f, uint64_t), .type = T_SIZE
#define MEMORY(f)         FIELD(f, struct opt_memory), .type = T_MEMORY
#define DURATION(f)       FIELD(f, double), .type = T_DURATION
#define LIST(f)           FIELD(f, struct opt_list), .type = T_LIST
#define ENUM(f, ctype, c) FIELD(f, ctype), .type = T_ENUM, .choices = c
#define KiB               1024.0
#define MiB               (1024.0 * KiB)
#define GiB               (1024.0 * MiB)
#define TiB               (1024.0 * GiB)

static int check_host(const void *field, struct err *e);
static int check_power_of_two(const void *field, struct err *e);
static int check_gpus(const void *field, struct err *e);

static const struct opt_def opt_table[] = {
    /* server */
    {STR(host), .flag = "--host", .def = "127.0.0.1", .check = check_host, .group = "Server",
     .metavar = "ADDR", .help = "address to listen on: IPv4 or IPv6 literal, or host name"},
    {INT(port), .flag = "--port", .def = "8000", .min = 1, .max = 65535, .group = "Server",
     .metavar = "N", .help = "TCP port to listen on"},
    {BOOL(reuse_port), .flag = "--reuse-port", .def = "false", .group = "Server",
     .help = "share the port with other processes (SO_REUSEPORT)"},
    {LIST(api_keys), .flag = "--api-key", .def = "", .group = "Server", .metavar = "KEY",
     .help = "accepted bearer tokens (also SEEKD_API_KEY); none = no authentication"},
    {LIST(cors_allowed_origins), .flag = "--cors-allowed-origins", .def = "", .group = "Server",
     .metavar = "ORIGIN", .help = "origins browsers may call from (\"*\" = any); none = CORS off"},
    {LIST(allowed_hosts), .flag = "--allowed-hosts", .def = "", .group = "Server",
     .metavar = "NAME", .help = "Host names served besides IP literals and localhost (*.x, *)"},
    {BOOL(public_metrics), .flag = "--public-metrics", .def = "false", .group = "Server",
     .help = "serve /metrics without an API key when keys are set"},
    {BOOL(webui), .flag = "--webui", .def = "true", .group = "Server",
     .help = "serve the chat page at /; --no-webui: / answers 404"},
    /* model */
    {STR(model), .flag = "--model", .short_flag = 'm', .def = "", .group = "Model",
     .metavar = "PATH",
     .help = "checkpoint directory (config.json, *.safetensors) or GGUF file; required"},
    {STR(tokenizer), .flag = "--tokenizer", .def = "", .group = "Model", .metavar = "DIR",
     .help = "directory of tokenizer.json and tokenizer_config.json; empty = the model's own"},
    {LIST(served_model_name), .flag = "--served-model-name", .def = "", .group = "Model",
     .metavar = "NAME", .help = "model id in the API, then aliases; none = the directory's name"},
    {ENUM(chat_template, enum opt_chat_template, templates), .flag = "--chat-template",
     .def = "auto", .group = "Model", .help = "prompt format; auto = from tokenizer_config.json"},
    {INT(max_model_len), .flag = "--max-model-len", .def = "0", .min = 0, .max = 1 << 20,
     .group = "Model", .metavar = "TOKENS",
     .help = "context length, prompt + output; 0 = from config.json"},
    {BOOL(allow_long_max_model_len), .flag = "--allow-long-max-model-len", .def = "false",
     .group = "Model", .help = "let max_model_len exceed the model's trained context"},
    {INT(default_max_tokens), .flag = "--default-max-tokens", .def = "0", .min = 0, .max = 1 << 20,
     .group = "Model", .metavar = "TOKENS",
     .help = "output limit when a request sets none; 0 = rest of the context"},
    {ENUM(generation_config, enum opt_gen_config, gen_configs), .flag = "--generation-config",
     .def = "auto", .group = "Model",
     .help = "sampling defaults of requests that set none: auto = the model's "
             "(generation_config.json; a GGUF's keys, else llama.cpp's), none = OpenAI's"}, 
    /* HTTP and admission */
    {INT(max_connections), .flag = "--max-connections", .def = "1024", .min = 1, .max = 1000000,
     .group = "HTTP", .metavar = "N", .help = "open connections at most; more get 503 at once"},
    {INT(max_connections_per_ip), .flag = "--max-connections-per-ip", .def = "256", .min = 0,
     .max = 1000000, .group = "HTTP", .metavar = "N",
     .help = "open connections from one address; more are closed at once; 0 = no limit"},
    {SIZE(max_body_size), .flag = "--max-body-size", .def = "4MiB", .min = KiB, .max = GiB,
     .group = "HTTP", .help = "largest request body; larger gets 413"},
    {SIZE(max_header_size), .flag = "--max-header-size", .def = "16KiB", .min = KiB, .max = MiB,
     .group = "HTTP", .help = "largest request line + headers; larger gets 431"},
    {SIZE(connection_memory_limit), .flag = "--connection-memory-limit", .def = "64KiB",
     .min = 4 * KiB, .max = 16 * MiB, .group = "HTTP",
     .help = "buffer memory per connection (holds the headers)"},
    {DURATION(idle_timeout), .flag = "--idle-timeout", .def = "1m", .min = 0, .max = 86400,
     .group = "HTTP", .help = "close a connection idle this long; 0 = never"},
    {DURATION(header_timeout), .flag = "--header-timeout", .def = "30s", .min = 0, .max = 3600,
     .group = "HTTP", .help = "deadline for a request's line and headers (408); 0 = none"},
    {DURATION(body_timeout), .flag = "--body-timeout", .def = "1m", .min = 0, .max = 86400,
     .group = "HTTP", .help = "deadline for a request's body after its headers (408); 0 = none"},
    {DURATION(request_timeout), .flag = "--request-timeout", .def = "0s", .min = 0,
     .max = 7 * 86400, .group = "HTTP", .help = "cancel a request running this long; 0 = never"},
    {INT(max_queued_requests), .flag = "--max-queued-requests", .def = "256", .min = 0,
     .max = 1000000, .group = "HTTP", .metavar = "N",
     .help = "sequences waiting for a slot (a request counts n); more get 503"},
    {SIZE(max_request_memory), .flag = "--max-request-memory", .def = "1GiB", .min = 0,
     .max = 64 * TiB, .group = "HTTP",
     .help = "memory one request may hold (n, max_tokens, logprobs); more gets 400"},
    {MEMORY(request_memory_budget), .flag = "--request-memory-budget", .def = "0.25", .min = MiB,
     .max = 64 * TiB, .group = "HTTP", .metavar = "SIZE|FRACTION",
     .help = "memory all admitted requests may hold, or share of RAM; more get 503"},
    {DURATION(shutdown_timeout), .flag = "--shutdown-timeout", .def = "30s", .min = 0, .max = 3600,
     .group = "HTTP", .help = "on SIGTERM, wait this long for running requests"},
    /* engine */
    {INT(max_num_seqs), .flag = "--max-num-seqs", .def = "256", .min = 1, .max = 65536,
     .group = "Engine", .metavar = "N", .help = "sequences in one batch at most"},
    {INT(max_num_batched_tokens), .flag = "--max-num-batched-tokens", .def = "2048", .min = 1,
     .max = 1 << 20, .group = "Engine", .metavar = "TOKENS",
     .help = "tokens in one forward step (prefill chunks + decodes)"},
    {INT(block_size), .flag = "--block-size", .def = "64", .min = 16, .max = 1024,
     .check = check_power_of_two, .group = "Engine", .metavar = "TOKENS",
     .help = "tokens per KV cache block, a power of two"},
    {MEMORY(kv_cache_memory), .flag = "--kv-cache-memory", .def = "0.9", .min = MiB,
     .max = 64 * TiB, .group = "Engine", .metavar = "SIZE|FRACTION",
     .help = "KV cache size, or share of the memory free after loading the weights"},
    {ENUM(kv_cache_dtype, enum opt_kv_dtype, kv_dtypes), .flag = "--kv-cache-dtype", .def = "auto",
     .group = "Engine",
     .help = "KV cache element type; auto: f16 for a GGUF model on the CPU, else bf16"},
    {BOOL(enable_prefix_caching), .flag = "--enable-prefix-caching", .def = "true",
     .group = "Engine", .help = "reuse the KV blocks of shared prompt prefixes"},
    {INT(prefill_chunk), .flag = "--prefill-chunk", .def = "0", .min = 0, .max = 1 << 20,
     .group = "Engine", .metavar = "TOKENS",
     .help = "prefill tokens per step while others decode; 0 = where the kernels reach speed"},
    {INT(threads), .flag = "--threads", .def = "0", .min = 0, .max = 4096, .group = "Engine",
     .metavar = "N", .help = "CPU worker threads; 0 = one per core"},
    {BOOL(huge_pages), .flag = "--huge-pages", .def = "true", .group = "Engine",
     .help = "CPU: hold the weights in huge pages (a private copy; the page cache is let go)"},
    {ENUM(backend, enum opt_backend, backends), .flag = "--backend", .def = "auto",
     .group = "Engine", .help = "what runs the model; auto = CUDA when a usable GPU exists, else CPU"},
    {STR(gpus), .flag = "--gpus", .def = "", .check = check_gpus, .group = "Engine",
     .metavar = "LIST", .help = "CUDA devices to use, e.g. 0 or 0-7; empty = device 0"},
    {ENUM(numerics, enum opt_numerics, numerics_modes), .flag = "--numerics", .def = "auto",
     .group = "Engine",
     .help = "step arithmetic: ref = F32 reference, bf16 = BF16 matmul inputs where faster (CPU), "
             "fast = DeepSeek's FP8 recipe (CPU, GGUF quantisation blocks: 8-bit activations); "
             "auto = fast on CUDA, on the CPU fast for GGUF quantisation blocks, else ref"},
    {BOOL(cuda_graphs), .flag = "--cuda-graphs", .def = "true", .group = "Engine",
     .help = "replay decode steps from CUDA graphs (CUDA, fast numerics)"},
    {ENUM(sample_prefilter, enum opt_switch, switches), .flag = "--sample-prefilter", .def = "auto",
     .group = "Engine",
     .help = "sample from each row's 64 best logits where provably the same as the whole row; auto = on CUDA with fast numerics"},
    {DURATION(engine_stall_timeout), .flag = "--engine-stall-timeout", .def = "1m", .min = 0.1,
     .max = 86400, .group = "Engine",
     .help = "no engine progress this long: /health 503, systemd watchdog pings stop"},
    /* parallelism */
    {INT(tensor_parallel_size), .flag = "--tensor-parallel-size", .def = "1", .min = 1,
     .max = 1024, .group = "Parallelism", .metavar = "N",
     .help = "ranks that split each layer (heads, MLP, experts; CPU ranks under mpirun)"},
    {INT(data_parallel_size), .flag = "--data-parallel-size", .def = "1", .min = 1, .max = 1024,
     .group = "Parallelism", .metavar = "N",
     .help = "ranks that each run the whole model on their own requests (under mpirun)"},
    {BOOL(enable_expert_parallel), .flag = "--enable-expert-parallel", .def = "false",
     .group = "Parallelism", .help = "split the routed experts across the data-parallel ranks "
                                     "(rows exchanged by all-to-all)"},
    /* logging */
    {ENUM(log_level, enum opt_log_level, log_levels), .flag = "--log-level", .def = "info",
     .group = "Logging", .help = "least severe message written"},
    {ENUM(log_format, enum opt_log_format, log_formats), .flag = "--log-format", .def = "text",
     .group = "Logging", .help = "text lines, or one JSON object per line"},
    {STR(log_file), .flag = "--log-file", .def = "", .group = "Logging", .metavar = "FILE",
     .help = "append the log to FILE; empty = stderr"},
};
#define N_OPTS ((int)(sizeof opt_table / sizeof opt_table[0]))

size_t opt_n_defs(void)
{
    return (size_t)N_OPTS;
}

size_t opt_index(const struct opt_def *d)
{
    return (size_t)(d - opt_table);
}

const struct opt_def *opt_def_at(size_t i)
{
    return &opt_table[i];
}

void *opt_field_of(struct seekd_options *o, const struct opt_def *d)
{
    return (char *)o + d->offset;
}

static const void *cfield_of(const struct seekd_options *o, const struct opt_def *d)
{
    return (const char *)o + d->offset;
}

const struct opt_def *opt_find_key(const char *key)
{
    for (int i = 0; i < N_OPTS; i++)
        if (strcmp(opt_table[i].key, key) == 0) return &opt_table[i];
    return NULL;
}

/* The option whose long flag is "--name", or whose short flag is name[0] when short. */
const struct opt_def *opt_find_flag(const char *name, bool short_form)
{
    for (int i = 0; i < N_OPTS; i++) {
        const struct opt_def *d = &opt_table[i];
        if (short_form ? d->short_flag == name[0] && !name[1] : strcmp(d->flag + 2, name) == 0)
            return d;
    }
    return NULL;
}

/* ---- checks --------------------------------------------------------------------------------- */

static int check_host(const void *field, struct err *e)
{
    const char *h = *(char *const *)field;
    unsigned char addr[16];
    if (!*h) return err_set(e, "must not be empty (0.0.0.0 or :: listens on all addresses)");
    if (h[0] == '[') return err_set(e, "'%s': write IPv6 addresses without brackets, e.g. ::1", h);
    if (strchr(h, ':'))
        return inet_pton(AF_INET6, h, addr) == 1 ? 0 : err_set(e, "'%s' is not an IPv6 address", h);
    if (strspn(h, "0123456789.") == strlen(h))
        return inet_pton(AF_INET, h, addr) == 1 ? 0 : err_set(e, "'%s' is not an IPv4 address", h);
    for (const char *p = h; *p; p++)
        if (!isalnum((unsigned char)*p) && *p != '-' && *p != '.')
            return err_set(e, "'%s' is not a host name", h);
    return 0;
}

static int check_power_of_two(const void *field, struct err *e)
{
    int v = *(const int *)field;
    return v > 0 && (v & (v - 1)) == 0 ? 0 : err_set(e, "%d is not a power of two", v);
}

static int check_gpus(const void *field, struct err *e)
{
    int devices[BACKEND_MAX_DEVICES];
    return backend_parse_devices(*(char *const *)field, devices, BACKEND_MAX_DEVICES, e) < 0 ? -1 : 0;
}

/* ---- formatting ----------------------------------------------------------------------------- */

static const struct {
    const char *name;
    double bytes;
} size_units[] = {{"TiB", TiB}, {"TB", 1e12}, {"GiB", GiB}, {"GB", 1e9}, {"MiB", MiB},
                  {"MB", 1e6},  {"KiB", KiB}, {"KB", 1e3},  {"B", 1}};
#define N_SIZE_UNITS ((int)(sizeof size_units / sizeof size_units[0]))

const char *opt_format_size(uint64_t bytes, char *buf, size_t n)
{
    for (int i = 0; i < N_SIZE_UNITS; i++) {
        uint64_t unit = (uint64_t)size_units[i].bytes;
        if (bytes % unit == 0 && (bytes > 0 || unit == 1)) {
            snprintf(buf, n, "%llu%s", (unsigned long long)(bytes / unit), size_units[i].name);
            return buf;
        }
    }
    return buf; /* not reached: every count is a multiple of 1B */
}

/* Writes seconds in the largest of h, m, s, ms that keeps it a whole number where possible. */
static const char *format_duration(double s, char *buf, size_t n)
{
    if (s == 0)
        snprintf(buf, n, "0s");
    else if (fmod(s, 3600) == 0)
        snprintf(buf, n, "%.0fh", s / 3600);
    else if (fmod(s, 60) == 0)
        snprintf(buf, n, "%.0fm", s / 60);
    else if (fmod(s, 1) == 0)
        snprintf(buf, n, "%.0fs", s);
    else
        snprintf(buf, n, "%.15gms", s * 1000);
    return buf;
}

/* Writes a bound of d's range in d's units. */
const char *opt_format_bound(const struct opt_def *d, double v, char *buf, size_t n)
{
    if (d->type == T_SIZE || d->type == T_MEMORY) return opt_format_size((uint64_t)v, buf, n);
    if (d->type == T_DURATION) return format_duration(v, buf, n);
    snprintf(buf, n, "%.0f", v);
    return buf;
}

static void format_list(const struct opt_list *l, char *buf, size_t n)
{
    size_t used = 0;
    buf[0] = '\0';
    for (int i = 0; i < l->n_items && used < n; i++)
        used += (size_t)snprintf(buf + used, n - used, "%s%s", i ? "," : "", l->items[i]);
}

const char *opt_format_value(const struct seekd_options *o, const char *key, char *buf, size_t n)
{
    const struct opt_def *d = opt_find_key(key);
    if (!d) return NULL;
    const void *p = cfield_of(o, d);
    const struct opt_memory *m = p;
    switch (d->type) {
    case T_STRING:
        snprintf(buf, n, "%s", *(char *const *)p);
        break;
    case T_INT:
        snprintf(buf, n, "%d", *(const int *)p);
        break;
    case T_BOOL:
        snprintf(buf, n, "%s", *(const bool *)p ? "true" : "false");
        break;
    case T_SIZE:
        opt_format_size(*(const uint64_t *)p, buf, n);
        break;
    case T_MEMORY:
        if (m->bytes)
            opt_format_size(m->bytes, buf, n);
        else
            snprintf(buf, n, "%.15g", m->fraction);
        break;
    case T_DURATION:
        format_duration(*(const double *)p, buf, n);
        break;
    case T_ENUM:
        snprintf(buf, n, "%s", d->choices[*(const int *)p]);
        break;
    case T_LIST:
        format_list(p, buf, n);
        break;
    }
    return buf;
}

/* ---- parsing values ------------------------------------------------------------------------- */

static int check_range(const struct opt_def *d, double v, const char *text, struct err *e)
{
    char lo[32], hi[32];
    if (v >= d->min && v <= d->max) return 0;
    return err_set(e, "%s is out of range [%s, %s]", text, opt_format_bound(d, d->min, lo, sizeof lo),
                   opt_format_bound(d, d->max, hi, sizeof hi));
}

/* Reads an unsigned decimal number (digits, optionally '.' and more digits) at the start of s
 * into *v; returns the rest of s, or NULL when s does not start with such a number. */
static const char *scan_number(const char *s, double *v)
{
    const char *p = s;
    while (isdigit((unsigned char)*p)) p++;
    if (p == s) return NULL;
    if (*p == '.') {
        if (!isdigit((unsigned char)p[1])) return NULL;
        p++;
        while (isdigit((unsigned char)*p)) p++;
    }
    char num[64];
    if ((size_t)(p - s) >= sizeof num) return NULL;
    memcpy(num, s, (size_t)(p - s));
    num[p - s] = '\0';
    *v = strtod(num, NULL);
    return p;
}

static int parse_int(const struct opt_def *d, const char *s, int *out, struct err *e)
{
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    if (end == s || *end || isspace((unsigned char)*s))
        return err_set(e, "'%s' is not an integer", s);
    /* On overflow strtoll saturates, which the range check then reports. */
    if (check_range(d, (double)v, s, e)) return -1;
    *out = (int)v;
    return 0;
}

/* Parses "64KB", "4 MiB", "1.5GiB", "1000" (bytes) into *bytes. */
static int parse_size(const char *s, double *bytes, struct err *e)
{
    double v;
    if (*s == '-') return err_set(e, "'%s': a size cannot be negative", s);
    const char *unit = scan_number(s, &v);
    if (!unit) return err_set(e, "'%s' is not a size (e.g. 512KiB, 4MB, 2GiB)", s);
    if (*unit == ' ') unit++;
    for (int i = 0; i < N_SIZE_UNITS; i++) {
        /* A bare number is bytes; fractions of a byte are rounded away. */
        if (!*unit || strcasecmp(unit, size_units[i].name) == 0) {
            *bytes = round(v * (*unit ? size_units[i].bytes : 1));
            return 0;
        }
    }
    return err_set(e, "'%s': unknown size unit '%s' (use B, KB, KiB, MB, MiB, GB, GiB, TB, TiB)", s,
                   unit);
}

static int set_size(const struct opt_def *d, const char *s, uint64_t *out, struct err *e)
{
    double bytes = 0;
    if (parse_size(s, &bytes, e) || check_range(d, bytes, s, e)) return -1;
    *out = (uint64_t)bytes;
    return 0;
}

/* A bare number up to 1 is a fraction; anything else is a size. */
static int set_memory(const struct opt_def *d, const char *s, struct opt_memory *out, struct err *e)
{
    double v;
    const char *rest = scan_number(s, &v);
    if (rest && !*rest && v <= 1) {
        if (v <= 0) return err_set(e, "'%s': a fraction must be in (0, 1]", s);
        *out = (struct opt_memory){.fraction = v};
        return 0;
    }
    if (rest && !*rest && v != floor(v))
        return err_set(e, "'%s': a fraction must be in (0, 1]; a size needs a unit", s);
    *out = (struct opt_memory){0};
    return set_size(d, s, &out->bytes, e);
}

/* Parses "250ms", "30s", "5m", "1h" or a bare number of seconds. */
static int set_duration(const struct opt_def *d, const char *s, double *out, struct err *e)
{
    static const struct {
        const char *name;
        double seconds;
    } units[] = {{"", 1}, {"ms", 0.001}, {"s", 1}, {"m", 60}, {"h", 3600}};
    double v;
    if (*s == '-') return err_set(e, "'%s': a duration cannot be negative", s);
    const char *unit = scan_number(s, &v);
    if (!unit) return err_set(e, "'%s' is not a duration (e.g. 250ms, 30s, 5m, 1h)", s);
    for (size_t i = 0; i < sizeof units / sizeof units[0]; i++) {
        if (strcmp(unit, units[i].name) == 0) {
            if (check_range(d, v * units[i].seconds, s, e)) return -1;
            *out = v * units[i].seconds;
            return 0;
        }
    }
    return err_set(e, "'%s': unknown duration unit '%s' (use ms, s, m, h)", s, unit);
}

static int set_bool(const char *s, bool *out, struct err *e)
{
    static const char *const yes[] = {"true", "yes", "on", "1"};
    static const char *const no[] = {"false", "no", "off", "0"};
    for (int i = 0; i < 4; i++) {
        if (strcasecmp(s, yes[i]) == 0 || strcasecmp(s, no[i]) == 0) {
            *out = strcasecmp(s, yes[i]) == 0;
            return 0;
        }
    }
    return err_set(e, "'%s' is not a boolean (true or false)", s);
}

static int set_enum(const struct opt_def *d, const char *s, int *out, struct err *e)
{
    char allowed[256] = "";
    for (int i = 0; d->choices[i]; i++) {
        if (strcasecmp(s, d->choices[i]) == 0) {
            *out = i;
            return 0;
        }
        strncat(allowed, i ? ", " : "", sizeof allowed - strlen(allowed) - 1);
        strncat(allowed, d->choices[i], sizeof allowed - strlen(allowed) - 1);
    }
    return err_set(e, "'%s' is not one of: %s", s, allowed);
}

void opt_list_clear(struct opt_list *l)
{
    for (int i = 0; i < l->n_items; i++) free(l->items[i]);
    free(l->items);
    *l = (struct opt_list){0};
}

/* A malloc'd copy of the first len bytes of s. */
static char *dup_text(const char *s, size_t len)
{
    char *c = xmalloc(len + 1);
    memcpy(c, s, len);
    c[len] = '\0';
    return c;
}

void opt_list_append(struct opt_list *l, const char *s, size_t len)
{
    l->items = xrealloc(l->items, (size_t)(l->n_items + 2) * sizeof *l->items);
    l->items[l->n_items++] = dup_text(s, len);
    l->items[l->n_items] = NULL; /* callers pass items on as a NULL-terminated array */
}

/* Appends the items of a comma-separated list; spaces around items are dropped. Items are
 * not quoted in messages: they may be API keys. */
static int list_append_csv(struct opt_list *l, const char *s, struct err *e)
{
    if (!*s) return 0;
    for (;;) {
        const char *end = strchr(s, ',');
        size_t len = end ? (size_t)(end - s) : strlen(s);
        for (; len && isspace((unsigned char)*s); len--) s++;
        while (len && isspace((unsigned char)s[len - 1])) len--;
        if (!len) return err_set(e, "empty item in a comma-separated list");
        opt_list_append(l, s, len);
        if (!end) return 0;
        s = end + 1;
    }
}

/* Sets option d of o from text as a flag, the environment or a YAML scalar writes it; list
 * options get the comma-separated items appended. */
int opt_set_value(struct seekd_options *o, const struct opt_def *d, const char *s, struct err *e)
{
    void *p = opt_field_of(o, d);
    int rc = 0;
    switch (d->type) {
    case T_STRING:
        free(*(char **)p);
        *(char **)p = dup_text(s, strlen(s));
        break;
    case T_INT:
        rc = parse_int(d, s, p, e);
        break;
    case T_BOOL:
        rc = set_bool(s, p, e);
        break;
    case T_SIZE:
        rc = set_size(d, s, p, e);
        break;
    case T_MEMORY:
        rc = set_memory(d, s, p, e);
        break;
    case T_DURATION:
        rc = set_duration(d, s, p, e);
        break;
    case T_ENUM:
        rc = set_enum(d, s, p, e);
        break;
    case T_LIST:
        rc = list_append_csv(p, s, e);
        break;
    }
    return rc == 0 && d->check ? d->check(p, e) : rc;
}

/* ---- defaults, freeing, cross-option rules -------------------------------------------------- */

void opt_defaults(struct seekd_options *o)
{
    struct err e;
    memset(o, 0, sizeof *o);
    for (int i = 0; i < N_OPTS; i++)
        if (opt_set_value(o, &opt_table[i], opt_table[i].def, &e) != 0)
            ERR_FATAL("default of option %s: %s", opt_table[i].key, e.msg);
}

void opt_free(struct seekd_options *o)
{
    for (int i = 0; i < N_OPTS; i++) {
        void *p = opt_field_of(o, &opt_table[i]);
        if (opt_table[i].type == T_STRING) free(*(char **)p);
        if (opt_table[i].type == T_LIST) opt_list_clear(p);
    }
    memset(o, 0, sizeof *o);
}

int opt_validate(const struct seekd_options *o, struct err *e)
{
    char a[32], b[32];
    if (o->max_header_size >= o->connection_memory_limit)
        return err_set(e,
                       "max_header_size (%s) must be less than connection_memory_limit (%s), "
                       "which holds the headers",
                       opt_format_size(o->max_header_size, a, sizeof a),
                       opt_format_size(o->connection_memory_limit, b, sizeof b));
    if (o->max_num_batched_tokens < o->max_num_seqs)
        return err_set(e,
                       "max_num_batched_tokens (%d) must be at least max_num_seqs (%d): each "
                       "running sequence needs a token in every step",
                       o->max_num_batched_tokens, o->max_num_seqs);
    if (o->max_model_len && o->default_max_tokens >= o->max_model_len)
        return err_set(e, "default_max_tokens (%d) must be less than max_model_len (%d)",
                       o->default_max_tokens, o->max_model_len);
    return 0;
}

/* ---- suggestions for misspelt names --------------------------------------------------------- */

/* Edit distance counting an adjacent swap as one edit; '-' and '_' are the same letter. */
static int edit_distance(const char *a, const char *b)
{
    enum { M = 64 };
    int la = (int)strlen(a), lb = (int)strlen(b), d[M + 1][M + 1];
    if (la > M || lb > M) return INT_MAX;
    for (int i = 0; i <= la; i++) d[i][0] = i;
    for (int j = 0; j <= lb; j++) d[0][j] = j;
    for (int i = 1; i <= la; i++) {
        for (int j = 1; j <= lb; j++) {
            char x = a[i - 1] == '-' ? '_' : a[i - 1], y = b[j - 1] == '-' ? '_' : b[j - 1];
            int best = d[i - 1][j - 1] + (x != y);
            if (d[i - 1][j] + 1 < best) best = d[i - 1][j] + 1;
            if (d[i][j - 1] + 1 < best) best = d[i][j - 1] + 1;
            if (i > 1 && j > 1 && a[i - 1] == b[j - 2] && a[i - 2] == b[j - 1] &&
                d[i - 2][j - 2] + 1 < best)
                best = d[i - 2][j - 2] + 1;
            d[i][j] = best;
        }
    }
    return d[la][lb];
}

/* The closest YAML key (or long flag without "--") to name, or NULL when none is close. */
const char *opt_suggest(const char *name, bool flags)
{
    const char *best = NULL;
    int best_d = strlen(name) <= 4 ? 1 : 2;
    for (int i = 0; i < N_OPTS; i++) {
        const char *cand = flags ? opt_table[i].flag + 2 : opt_table[i].key;
        int dist = edit_distance(name, cand);
        if (dist <= best_d) {
            best = cand;
            best_d = dist - 1; /* a later candidate must be closer */
        }
    }
    return best;
}

/* ---- environment and flags ------------------------------------------------------------------ */

int opt_load_env(struct seekd_options *o, struct err *e)
{
    const char *v = getenv("SEEKD_API_KEY");
    if (!v || !*v) return 0;
    opt_list_clear(&o->api_keys);
    return list_append_csv(&o->api_keys, v, e) ? err_prefix(e, "SEEKD_API_KEY") : 0;
}
