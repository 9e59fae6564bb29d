/* options: the options of `seekd serve` — one table (in options.c) gives every option's YAML
 * key, command-line flag, type, default, range and help; from it come the defaults, the YAML
 * loader, the flag parser, validation and `seekd serve --help`. config/seekd.yaml documents
 * each option and must list exactly the table's keys with their defaults (a unit test checks).
 *
 * Sources, later ones winning: table defaults -> the YAML file named by --config ->
 * SEEKD_API_KEY -> command-line flags. A list option set by a later source replaces the list;
 * a list flag given several times (or with comma-separated values) accumulates. */
#ifndef SEEKD_OPTIONS_H
#define SEEKD_OPTIONS_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>

#include "engine/err.h"

/* A list of strings (YAML sequence; on the command line a repeated or comma-separated flag). */
struct opt_list {
    char **items; /* [n_items] + a NULL, each malloc'd; NULL when empty */
    int n_items;
};

/* A memory budget: either an absolute size or a share of the memory that is free once the
 * weights are loaded. Exactly one of the two is non-zero. */
struct opt_memory {
    uint64_t bytes;
    double fraction; /* (0, 1] */
};

enum opt_kv_dtype { OPT_KV_AUTO, OPT_KV_BF16, OPT_KV_F32, OPT_KV_F16 };
enum opt_backend { OPT_BACKEND_AUTO, OPT_BACKEND_CPU, OPT_BACKEND_CUDA };
enum opt_numerics { OPT_NUMERICS_AUTO, OPT_NUMERICS_REF, OPT_NUMERICS_BF16, OPT_NUMERICS_FAST };
enum opt_switch { OPT_SWITCH_AUTO, OPT_SWITCH_ON, OPT_SWITCH_OFF };
enum opt_chat_template {
    OPT_TEMPLATE_AUTO, OPT_TEMPLATE_DEEPSEEK_V3, OPT_TEMPLATE_DEEPSEEK_R1, OPT_TEMPLATE_CHATML,
    OPT_TEMPLATE_LLAMA3
};
enum opt_log_level { OPT_LOG_DEBUG, OPT_LOG_INFO, OPT_LOG_WARN, OPT_LOG_ERROR };
enum opt_log_format { OPT_LOG_TEXT, OPT_LOG_JSON };

/* Every option of `seekd serve`; field names are the YAML keys. Sizes are bytes, durations are
 * seconds (0 = no limit where the help says so). Strings and lists are owned: opt_free. */
struct seekd_options {
    /* server */
    char *host;                           /* IPv4/IPv6 literal or host name */
    int port;                             /* TCP port */
    bool reuse_port;                      /* SO_REUSEPORT: share the port with other processes */
    struct opt_list api_keys;             /* accepted bearer tokens; empty = no authentication */
    struct opt_list cors_allowed_origins; /* empty = CORS off; "*" = any origin */
    struct opt_list allowed_hosts;        /* Host names served besides IPs and localhost */
    bool public_metrics;                  /* /metrics without an API key */
    bool webui;                           /* the chat page at / */
    /* model */
    char *model;                       /* checkpoint directory; "" until set */
    char *tokenizer;                   /* tokenizer directory; "" = the model's */
    struct opt_list served_model_name; /* [0] is the id in responses, the rest aliases */
    enum opt_chat_template chat_template;
    int max_model_len;      /* tokens; 0 = from the model's config.json */
    bool allow_long_max_model_len; /* max_model_len may exceed the model's context */
    int default_max_tokens; /* tokens; 0 = the rest of the context */
    /* HTTP limits */
    int max_connections;
    int max_connections_per_ip;       /* 0 = no per-address limit */
    uint64_t max_body_size;           /* bytes */
    uint64_t max_header_size;         /* bytes */
    uint64_t connection_memory_limit; /* bytes */
    double idle_timeout;              /* seconds; 0 = never */
    double header_timeout;            /* seconds; 0 = never */
    double body_timeout;              /* seconds; 0 = never */
    double request_timeout;           /* seconds; 0 = never */
    int max_queued_requests;
    uint64_t max_request_memory;       /* bytes one request may hold; 0 = no limit */
    struct opt_memory request_memory_budget; /* all admitted requests; fraction: of RAM */
    double shutdown_timeout; /* seconds */
    /* engine */
    int max_num_seqs;
    int max_num_batched_tokens;
    int block_size; /* tokens per KV block, power of two */
    struct opt_memory kv_cache_memory;
    enum opt_kv_dtype kv_cache_dtype;
    bool enable_prefix_caching;
    int threads; /* 0 = one per core */
    int prefill_chunk; /* prefill tokens per step beside decodes; 0 = measured by the backend */
    bool huge_pages; /* CPU: weights copied into anonymous huge pages at start */
    enum opt_backend backend;   /* auto: CUDA when a usable GPU exists, else the CPU */
    char *gpus;                 /* CUDA device list, "0", "0-7"; "" = device 0 */
    enum opt_numerics numerics; /* auto: fast on CUDA; on the CPU fast for GGUF quantisation
                                 * blocks, else ref (engine/backend.h) */
    bool cuda_graphs;           /* replay decode steps from CUDA graphs (CUDA, fast numerics) */
    enum opt_switch sample_prefilter; /* auto: where the GPU pre-filters (CUDA, fast numerics) */
    double engine_stall_timeout; /* seconds without engine-loop progress: unhealthy */
    /* parallelism (vLLM's names); ranks = tensor_parallel_size * data_parallel_size */
    int tensor_parallel_size;
    int data_parallel_size;
    bool enable_expert_parallel;
    /* logging */
    enum opt_log_level log_level;
    enum opt_log_format log_format;
    char *log_file; /* "" = stderr */
};

/* Fills o with the table's defaults (o needs no prior state; release with opt_free). */
void opt_defaults(struct seekd_options *o);

/* Builds o from defaults, the --config file, SEEKD_API_KEY and the flags in argv[1..argc-1]
 * (argv[0] is the command name). Returns 0 when o is ready, 1 when --help was printed to
 * stdout, -1 with a message in e (o is then freed). */
int opt_parse(struct seekd_options *o, int argc, char **argv, struct err *e);

/* Applies the YAML file at path on top of o. -1 with "path:line: key 'k': ..." in e. */
int opt_load_file(struct seekd_options *o, const char *path, struct err *e);

/* Applies SEEKD_API_KEY (a comma-separated list of keys) when it is set and not empty. */
int opt_load_env(struct seekd_options *o, struct err *e);

/* Checks rules that involve more than one option; -1 with a message in e. */
int opt_validate(const struct seekd_options *o, struct err *e);

/* Prints the `seekd serve --help` text, generated from the table. */
void opt_print_help(FILE *f);

/* Releases the strings and lists of o. */
void opt_free(struct seekd_options *o);

/* Writes bytes in the largest binary unit that divides it exactly ("4MiB", "1000B"). */
const char *opt_format_size(uint64_t bytes, char *buf, size_t n);

/* Writes the current value of the option with the YAML key `key` in the syntax the file and
 * flags accept (lists comma-separated). NULL when there is no such key. */
const char *opt_format_value(const struct seekd_options *o, const char *key, char *buf, size_t n);

/* `seekd serve` argument handling: opt_parse, then the checks serving needs (a model).
 * Prints errors to stderr. Returns 0 when o is ready to serve, 1 after --help, -1 on error. */
int cmd_serve_options(int argc, char **argv, struct seekd_options *o);

#endif
