/* Tests of server/options: the table, value syntax (sizes, durations, lists), the YAML loader's
 * errors, the order of sources, the flags, --help, and config/seekd.yaml against the table.
 *
 * Test programs link only the engine library, so this one compiles the module in: including
 * options.c also lets it reach the table and the static parsers. Run from the repository root
 * (as `make unit` does): it reads config/seekd.yaml. */
#include <check.h>
#include <fcntl.h>
#include <unistd.h>

#include "server/options.c"
#include "server/options_cli.c"
#include "server/options_yaml.c"
#include "tests/check_run.h"

/* ---- helpers -------------------------------------------------------------------------------- */

#define ARGS(...)                                                                                  \
    (sizeof((const char *[]){"serve", __VA_ARGS__}) / sizeof(char *)), (char **)(const char *[])   \
    {                                                                                              \
        "serve", __VA_ARGS__                                                                       \
    }

/* Asserts that msg contains needle. */
#define ck_assert_has(msg, needle)                                                                 \
    ck_assert_msg(strstr((msg), (needle)) != NULL, "'%s' lacks '%s'", (msg), (needle))

/* Applies YAML text (named seekd.yaml in messages) on top of the defaults in o. */
static int load_text(struct seekd_options *o, const char *text, struct err *e)
{
    FILE *f = fmemopen((void *)text, strlen(text), "r");
    ck_assert_ptr_nonnull(f);
    int rc = load_stream(o, "seekd.yaml", f, e);
    fclose(f);
    return rc;
}

/* Loads text and asserts it fails with a message that contains both needles. */
static void expect_yaml_error(const char *text, const char *where, const char *what)
{
    struct seekd_options o;
    struct err e = {0};
    opt_defaults(&o);
    ck_assert_int_eq(load_text(&o, text, &e), -1);
    ck_assert_has(e.msg, where);
    ck_assert_has(e.msg, what);
    opt_free(&o);
}

/* Sets option key of o from text; returns set_value's result. */
static int set_one(struct seekd_options *o, const char *key, const char *text, struct err *e)
{
    const struct opt_def *d = opt_find_key(key);
    ck_assert_ptr_nonnull(d);
    return opt_set_value(o, d, text, e);
}

/* Writes text to a fresh temporary file; path receives its name. */
static void write_temp(const char *text, char *path, size_t n)
{
    const char *dir = getenv("TMPDIR");
    snprintf(path, n, "%s/seekd-options-XXXXXX", dir && *dir ? dir : "/tmp");
    int fd = mkstemp(path);
    ck_assert_int_ge(fd, 0);
    ck_assert_int_eq(write(fd, text, strlen(text)), (ssize_t)strlen(text));
    close(fd);
}

/* Runs opt_parse with stdout sent to /dev/null (for --help). */
static int parse_quietly(struct seekd_options *o, int argc, char **argv, struct err *e)
{
    fflush(stdout);
    int saved = dup(1), null = open("/dev/null", O_WRONLY);
    dup2(null, 1);
    int rc = opt_parse(o, argc, argv, e);
    fflush(stdout);
    dup2(saved, 1);
    close(null);
    close(saved);
    return rc;
}

static void assert_list(const struct opt_list *l, int n, const char *const *items)
{
    ck_assert_int_eq(l->n_items, n);
    for (int i = 0; i < n; i++) ck_assert_str_eq(l->items[i], items[i]);
}

/* ---- the table and the defaults ------------------------------------------------------------- */

START_TEST(defaults)
{
    struct seekd_options o;
    opt_defaults(&o);
    ck_assert_str_eq(o.host, "127.0.0.1");
    ck_assert_int_eq(o.port, 8000);
    ck_assert_str_eq(o.model, "");
    ck_assert_int_eq(o.api_keys.n_items, 0);
    ck_assert_uint_eq(o.max_body_size, 4u << 20);
    ck_assert_double_eq(o.idle_timeout, 60);
    ck_assert_double_eq(o.kv_cache_memory.fraction, 0.9);
    ck_assert_uint_eq(o.kv_cache_memory.bytes, 0);
    ck_assert_int_eq(o.kv_cache_dtype, OPT_KV_AUTO);
    ck_assert(o.enable_prefix_caching);
    ck_assert(o.webui);
    ck_assert_int_eq(o.log_level, OPT_LOG_INFO);
    ck_assert_int_eq(opt_validate(&o, NULL), 0);
    /* Defaults are written canonically: formatting a default gives its text back. */
    char buf[256];
    for (int i = 0; i < N_OPTS; i++)
        ck_assert_str_eq(opt_format_value(&o, opt_table[i].key, buf, sizeof buf), opt_table[i].def);
    opt_free(&o);
}
END_TEST

START_TEST(table_is_consistent)
{
    for (int i = 0; i < N_OPTS; i++) {
        const struct opt_def *d = &opt_table[i];
        ck_assert_int_eq(strspn(d->key, "abcdefghijklmnopqrstuvwxyz0123456789_"), strlen(d->key));
        ck_assert_int_eq(strncmp(d->flag, "--", 2), 0);
        ck_assert_msg(d->help && *d->help && d->group, "%s lacks help", d->key);
        ck_assert(d->min <= d->max);
        for (int j = 0; j < i; j++) {
            ck_assert_str_ne(d->key, opt_table[j].key);
            ck_assert_str_ne(d->flag, opt_table[j].flag);
            ck_assert(!d->short_flag || d->short_flag != opt_table[j].short_flag);
        }
        /* The flag is the key in kebab case, but for the conventional singular --api-key. */
        char kebab[64];
        snprintf(kebab, sizeof kebab, "--%s", d->key);
        for (char *p = kebab; *p; p++) *p = *p == '_' ? '-' : *p;
        if (strcmp(d->key, "api_keys") != 0) ck_assert_str_eq(d->flag, kebab);
    }
    ck_assert_str_eq(opt_find_key("api_keys")->flag, "--api-key");
}
END_TEST

/* ---- value syntax --------------------------------------------------------------------------- */

START_TEST(size_suffixes)
{
    struct err e;
    double b;
    static const struct {
        const char *text;
        double bytes;
    } ok[] = {{"64KB", 64e3},   {"4MB", 4e6},   {"2GiB", 2.0 * GiB}, {"4 MiB", 4 * MiB},
              {"1.5KiB", 1536}, {"1000", 1000}, {"12b", 12},         {"3kib", 3072},
              {"1TB", 1e12},    {"0.5GB", 5e8}};
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        ck_assert_int_eq(parse_size(ok[i].text, &b, &e), 0);
        ck_assert_double_eq(b, ok[i].bytes);
    }
    ck_assert_int_eq(parse_size("12XB", &b, &e), -1);
    ck_assert_has(e.msg, "unknown size unit 'XB'");
    ck_assert_has(e.msg, "GiB");
    ck_assert_int_eq(parse_size("-4MiB", &b, &e), -1);
    ck_assert_has(e.msg, "negative");
    static const char *const bad[] = {"", "MiB", "0x10", "1e3", "4MiBx", ".5", "5.", "4  MiB"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        ck_assert_msg(parse_size(bad[i], &b, &e) == -1, "'%s' accepted", bad[i]);

    struct seekd_options o;
    opt_defaults(&o);
    ck_assert_int_eq(set_one(&o, "max_body_size", "64KB", &e), 0);
    ck_assert_uint_eq(o.max_body_size, 64000);
    ck_assert_int_eq(set_one(&o, "max_body_size", "2GiB", &e), -1);
    ck_assert_str_eq(e.msg, "2GiB is out of range [1KiB, 1GiB]");
    opt_free(&o);
}
END_TEST

START_TEST(memory_size_or_fraction)
{
    struct seekd_options o;
    struct err e;
    opt_defaults(&o);
    ck_assert_int_eq(set_one(&o, "kv_cache_memory", "0.5", &e), 0);
    ck_assert_double_eq(o.kv_cache_memory.fraction, 0.5);
    ck_assert_int_eq(set_one(&o, "kv_cache_memory", "1", &e), 0);
    ck_assert_double_eq(o.kv_cache_memory.fraction, 1.0);
    ck_assert_int_eq(set_one(&o, "kv_cache_memory", "16GiB", &e), 0);
    ck_assert_uint_eq(o.kv_cache_memory.bytes, 16ull << 30);
    ck_assert_double_eq(o.kv_cache_memory.fraction, 0);
    ck_assert_int_eq(set_one(&o, "kv_cache_memory", "1073741824", &e), 0);
    ck_assert_uint_eq(o.kv_cache_memory.bytes, 1ull << 30);
    char buf[32];
    ck_assert_str_eq(opt_format_value(&o, "kv_cache_memory", buf, sizeof buf), "1GiB");
    ck_assert_int_eq(set_one(&o, "kv_cache_memory", "0", &e), -1);
    ck_assert_has(e.msg, "(0, 1]");
    ck_assert_int_eq(set_one(&o, "kv_cache_memory", "1.5", &e), -1);
    ck_assert_has(e.msg, "needs a unit");
    ck_assert_int_eq(set_one(&o, "kv_cache_memory", "12XB", &e), -1);
    ck_assert_int_eq(set_one(&o, "kv_cache_memory", "-0.5", &e), -1);
    ck_assert_int_eq(set_one(&o, "kv_cache_memory", "1KiB", &e), -1);
    ck_assert_has(e.msg, "out of range [1MiB, 64TiB]");
    /* Only kv_cache_memory takes a fraction. */
    ck_assert_int_eq(set_one(&o, "max_body_size", "0.9", &e), -1);
    opt_free(&o);
}
END_TEST

START_TEST(durations)
{
    struct seekd_options o;
    struct err e;
    static const struct {
        const char *text;
        double seconds;
    } ok[] = {{"250ms", 0.25}, {"30s", 30},  {"2m", 120}, {"1h", 3600},
              {"15", 15},      {"1.5m", 90}, {"0", 0}};
    opt_defaults(&o);
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        ck_assert_int_eq(set_one(&o, "idle_timeout", ok[i].text, &e), 0);
        ck_assert_double_eq(o.idle_timeout, ok[i].seconds);
    }
    char buf[32];
    o.idle_timeout = 0.25;
    ck_assert_str_eq(opt_format_value(&o, "idle_timeout", buf, sizeof buf), "250ms");
    o.idle_timeout = 90;
    ck_assert_str_eq(opt_format_value(&o, "idle_timeout", buf, sizeof buf), "90s");
    ck_assert_int_eq(set_one(&o, "idle_timeout", "5d", &e), -1);
    ck_assert_has(e.msg, "unknown duration unit 'd'");
    ck_assert_int_eq(set_one(&o, "idle_timeout", "-1s", &e), -1);
    ck_assert_has(e.msg, "negative");
    ck_assert_int_eq(set_one(&o, "idle_timeout", "25h", &e), -1);
    ck_assert_str_eq(e.msg, "25h is out of range [0s, 24h]");
    ck_assert_int_eq(set_one(&o, "shutdown_timeout", "s", &e), -1);
    opt_free(&o);
}
END_TEST

START_TEST(integers)
{
    struct seekd_options o;
    struct err e;
    opt_defaults(&o);
    ck_assert_int_eq(set_one(&o, "port", "65535", &e), 0);
    ck_assert_int_eq(o.port, 65535);
    ck_assert_int_eq(set_one(&o, "port", "70000", &e), -1);
    ck_assert_str_eq(e.msg, "70000 is out of range [1, 65535]");
    ck_assert_int_eq(set_one(&o, "port", "0", &e), -1);
    ck_assert_int_eq(set_one(&o, "port", "99999999999999999999", &e), -1);
    ck_assert_has(e.msg, "out of range");
    ck_assert_int_eq(set_one(&o, "max_num_seqs", "-99999999999999999999", &e), -1);
    ck_assert_has(e.msg, "out of range");
    ck_assert_int_eq(set_one(&o, "threads", "4294967297", &e), -1); /* would wrap to 1 as int */
    static const char *const bad[] = {"", "abc", "12abc", "1e3", " 5", "5.0", "0x10"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        ck_assert_msg(set_one(&o, "port", bad[i], &e) == -1, "'%s' accepted", bad[i]);
        ck_assert_has(e.msg, "not an integer");
    }
    ck_assert_int_eq(set_one(&o, "block_size", "128", &e), 0);
    ck_assert_int_eq(set_one(&o, "block_size", "48", &e), -1);
    ck_assert_has(e.msg, "power of two");
    ck_assert_int_eq(set_one(&o, "block_size", "2048", &e), -1);
    ck_assert_int_eq(set_one(&o, "block_size", "8", &e), -1);
    opt_free(&o);
}
END_TEST

START_TEST(bools_enums_hosts)
{
    struct seekd_options o;
    struct err e;
    static const char *const yes[] = {"true", "yes", "on", "1", "True"};
    static const char *const no[] = {"false", "no", "off", "0", "FALSE"};
    opt_defaults(&o);
    for (int i = 0; i < 5; i++) {
        ck_assert_int_eq(set_one(&o, "enable_prefix_caching", no[i], &e), 0);
        ck_assert(!o.enable_prefix_caching);
        ck_assert_int_eq(set_one(&o, "enable_prefix_caching", yes[i], &e), 0);
        ck_assert(o.enable_prefix_caching);
    }
    ck_assert_int_eq(set_one(&o, "enable_prefix_caching", "maybe", &e), -1);
    ck_assert_int_eq(set_one(&o, "log_format", "json", &e), 0);
    ck_assert_int_eq(o.log_format, OPT_LOG_JSON);
    ck_assert_int_eq(set_one(&o, "chat_template", "deepseek-r1", &e), 0);
    ck_assert_int_eq(o.chat_template, OPT_TEMPLATE_DEEPSEEK_R1);
    ck_assert_int_eq(set_one(&o, "log_level", "verbose", &e), -1);
    ck_assert_str_eq(e.msg, "'verbose' is not one of: debug, info, warn, error");
    ck_assert_int_eq(o.numerics, OPT_NUMERICS_AUTO); /* engine/backend.h: backend_numerics */
    static const char *const arith[] = {"auto", "ref", "bf16", "fast"};
    static const enum opt_numerics arith_v[] = {OPT_NUMERICS_AUTO, OPT_NUMERICS_REF,
                                                OPT_NUMERICS_BF16, OPT_NUMERICS_FAST};
    for (int i = 0; i < 4; i++) {
        ck_assert_int_eq(set_one(&o, "numerics", arith[i], &e), 0);
        ck_assert_int_eq(o.numerics, arith_v[i]);
    }
    ck_assert_int_eq(set_one(&o, "numerics", "fp8", &e), -1);
    ck_assert_str_eq(e.msg, "'fp8' is not one of: auto, ref, bf16, fast");
    static const char *const hosts[] = {"::1", "::", "0.0.0.0", "localhost", "fe80::1", "a-b.c"};
    for (size_t i = 0; i < sizeof hosts / sizeof hosts[0]; i++)
        ck_assert_msg(set_one(&o, "host", hosts[i], &e) == 0, "%s: %s", hosts[i], e.msg);
    static const char *const bad[] = {"", "[::1]", "::g", "1.2.3.4.5", "256.0.0.1", "a b"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        ck_assert_msg(set_one(&o, "host", bad[i], &e) == -1, "'%s' accepted", bad[i]);
    opt_free(&o);
}
END_TEST

START_TEST(format_size)
{
    char buf[32];
    ck_assert_str_eq(opt_format_size(4u << 20, buf, sizeof buf), "4MiB");
    ck_assert_str_eq(opt_format_size(64000, buf, sizeof buf), "64KB");
    ck_assert_str_eq(opt_format_size(1536, buf, sizeof buf), "1536B");
    ck_assert_str_eq(opt_format_size(0, buf, sizeof buf), "0B");
    ck_assert_str_eq(opt_format_size(3ull << 40, buf, sizeof buf), "3TiB");
}
END_TEST

/* ---- flags ---------------------------------------------------------------------------------- */

START_TEST(flag_forms)
{
    struct seekd_options o;
    struct err e = {0};
    int rc = opt_parse(&o,
                       ARGS("--port", "9000", "--host=::1", "-m", "/models/v3", "--max_num_seqs",
                            "8", "--no-enable-prefix-caching", "--kv-cache-memory=24GiB",
                            "--log-format", "json", "--no-webui"),
                       &e);
    ck_assert_msg(rc == 0, "%s", e.msg);
    ck_assert_int_eq(o.port, 9000);
    ck_assert_str_eq(o.host, "::1");
    ck_assert_str_eq(o.model, "/models/v3");
    ck_assert_int_eq(o.max_num_seqs, 8);
    ck_assert(!o.enable_prefix_caching);
    ck_assert_uint_eq(o.kv_cache_memory.bytes, 24ull << 30);
    ck_assert_int_eq(o.log_format, OPT_LOG_JSON);
    ck_assert(!o.webui);
    opt_free(&o);
    /* The last of a repeated scalar flag wins; --flag=false works for booleans. */
    rc = opt_parse(&o, ARGS("--port", "1", "--port", "2", "--enable-prefix-caching=false"), &e);
    ck_assert_int_eq(rc, 0);
    ck_assert_int_eq(o.port, 2);
    ck_assert(!o.enable_prefix_caching);
    opt_free(&o);
}
END_TEST

START_TEST(list_flags)
{
    struct seekd_options o;
    struct err e = {0};
    int rc = opt_parse(&o,
                       ARGS("--api-key", "a", "--served-model-name", "deepseek-v3, dsv3",
                            "--api-key", "b,c", "--cors-allowed-origins=*"),
                       &e);
    ck_assert_msg(rc == 0, "%s", e.msg);
    assert_list(&o.api_keys, 3, (const char *[]){"a", "b", "c"});
    assert_list(&o.served_model_name, 2, (const char *[]){"deepseek-v3", "dsv3"});
    assert_list(&o.cors_allowed_origins, 1, (const char *[]){"*"});
    opt_free(&o);
    ck_assert_int_eq(opt_parse(&o, ARGS("--api-key", "a,,b"), &e), -1);
    ck_assert_str_eq(e.msg, "--api-key: empty item in a comma-separated list");
    ck_assert_int_eq(opt_parse(&o, ARGS("--api-key", "secret,"), &e), -1);
    ck_assert_ptr_null(strstr(e.msg, "secret")); /* keys never appear in messages */
}
END_TEST

START_TEST(flag_errors)
{
    struct seekd_options o;
    struct err e = {0};
    ck_assert_int_eq(opt_parse(&o, ARGS("--prot", "80"), &e), -1);
    ck_assert_str_eq(e.msg, "unknown option '--prot' (did you mean --port?)");
    ck_assert_int_eq(opt_parse(&o, ARGS("--max-num-seq=4"), &e), -1);
    ck_assert_has(e.msg, "did you mean --max-num-seqs?");
    ck_assert_int_eq(opt_parse(&o, ARGS("--frobnicate"), &e), -1);
    ck_assert_str_eq(e.msg, "unknown option '--frobnicate'");
    ck_assert_int_eq(opt_parse(&o, ARGS("--port"), &e), -1);
    ck_assert_str_eq(e.msg, "option '--port' needs a value");
    ck_assert_int_eq(opt_parse(&o, ARGS("--port", "--host", "::1"), &e), -1);
    ck_assert_str_eq(e.msg, "option '--port' needs a value");
    ck_assert_int_eq(opt_parse(&o, ARGS("-m"), &e), -1);
    ck_assert_int_eq(opt_parse(&o, ARGS("-x"), &e), -1);
    ck_assert_str_eq(e.msg, "unknown option '-x'");
    ck_assert_int_eq(opt_parse(&o, ARGS("model-dir"), &e), -1);
    ck_assert_str_eq(e.msg, "unexpected argument 'model-dir'");
    ck_assert_int_eq(opt_parse(&o, ARGS("--no-port"), &e), -1);
    ck_assert_int_eq(opt_parse(&o, ARGS("--no-enable-prefix-caching=1"), &e), -1);
    ck_assert_int_eq(opt_parse(&o, ARGS("--port", "99999999999999999999"), &e), -1);
    ck_assert_str_eq(e.msg, "--port: 99999999999999999999 is out of range [1, 65535]");
    ck_assert_int_eq(opt_parse(&o, ARGS("--config", "a.yaml", "--config", "b.yaml"), &e), -1);
    ck_assert_has(e.msg, "more than once");
    ck_assert_int_eq(opt_parse(&o, ARGS("--config", "/nonexistent/seekd.yaml"), &e), -1);
    ck_assert_str_eq(e.msg, "cannot read config file '/nonexistent/seekd.yaml': No such file or "
                            "directory");
    ck_assert_int_eq(opt_parse(&o, ARGS("--config", "."), &e), -1);
    ck_assert_has(e.msg, "is a directory");
}
END_TEST

START_TEST(help)
{
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    opt_print_help(f);
    fclose(f);
    ck_assert_has(text, "--config FILE");
    ck_assert_has(text, "--help");
    for (int i = 0; i < N_OPTS; i++) {
        char key[80];
        ck_assert_has(text, opt_table[i].flag + 2);
        snprintf(key, sizeof key, "[%s: ", opt_table[i].key);
        ck_assert_has(text, key);
        ck_assert_has(text, opt_table[i].help);
    }
    ck_assert_has(text, "--port N");
    ck_assert_has(text, "[port: 8000; 1..65535]");
    ck_assert_has(text, "--[no-]enable-prefix-caching");
    ck_assert_has(text, "-m, --model PATH");
    ck_assert_has(text, "--log-level debug|info|warn|error");
    ck_assert_has(text, "[max_body_size: 4MiB; 1KiB..1GiB]");
    free(text);

    struct seekd_options o;
    struct err e = {0};
    ck_assert_int_eq(parse_quietly(&o, ARGS("--help"), &e), 1);
    ck_assert_int_eq(parse_quietly(&o, ARGS("--port", "x", "-h"), &e), 1); /* help wins */
    ck_assert_int_eq(parse_quietly(&o, ARGS("--bogus", "--help"), &e), 1);
}
END_TEST

/* ---- sources -------------------------------------------------------------------------------- */

START_TEST(flags_override_file)
{
    char path[256];
    write_temp("port: 9000\n"
               "api_keys: [f1, f2]\n"
               "block_size: 128\n"
               "served_model_name:\n"
               "  - deepseek-r1\n"
               "  - r1\n",
               path, sizeof path);
    struct seekd_options o;
    struct err e = {0};
    ck_assert_int_eq(opt_parse(&o, ARGS("--config", path, "--port", "9100"), &e), 0);
    ck_assert_int_eq(o.port, 9100);
    ck_assert_int_eq(o.block_size, 128);
    assert_list(&o.api_keys, 2, (const char *[]){"f1", "f2"});
    assert_list(&o.served_model_name, 2, (const char *[]){"deepseek-r1", "r1"});
    opt_free(&o);
    /* A list flag replaces the file's list; --config=FILE works anywhere on the line. */
    char conf[300];
    snprintf(conf, sizeof conf, "--config=%s", path);
    ck_assert_int_eq(opt_parse(&o, ARGS("--api-key", "x", conf), &e), 0);
    assert_list(&o.api_keys, 1, (const char *[]){"x"});
    ck_assert_int_eq(o.port, 9000);
    opt_free(&o);
    /* An empty value empties a list: here it turns off the file's CORS origins. */
    unlink(path);
    write_temp("cors_allowed_origins: ['*']\n", path, sizeof path);
    ck_assert_int_eq(opt_parse(&o, ARGS("--config", path), &e), 0);
    assert_list(&o.cors_allowed_origins, 1, (const char *[]){"*"});
    opt_free(&o);
    ck_assert_int_eq(opt_parse(&o, ARGS("--config", path, "--cors-allowed-origins", ""), &e), 0);
    ck_assert_int_eq(o.cors_allowed_origins.n_items, 0);
    opt_free(&o);
    unlink(path);
}
END_TEST

START_TEST(api_key_environment)
{
    char path[256];
    write_temp("api_keys: [file-key]\n", path, sizeof path);
    struct seekd_options o;
    struct err e = {0};
    setenv("SEEKD_API_KEY", "k1, k2", 1);
    ck_assert_int_eq(opt_parse(&o, ARGS("--port", "1"), &e), 0);
    assert_list(&o.api_keys, 2, (const char *[]){"k1", "k2"});
    opt_free(&o);
    ck_assert_int_eq(opt_parse(&o, ARGS("--config", path), &e), 0); /* env beats the file */
    assert_list(&o.api_keys, 2, (const char *[]){"k1", "k2"});
    opt_free(&o);
    ck_assert_int_eq(opt_parse(&o, ARGS("--config", path, "--api-key", "flag"), &e), 0);
    assert_list(&o.api_keys, 1, (const char *[]){"flag"}); /* flags beat both */
    opt_free(&o);
    setenv("SEEKD_API_KEY", "", 1); /* empty counts as unset */
    ck_assert_int_eq(opt_parse(&o, ARGS("--config", path), &e), 0);
    assert_list(&o.api_keys, 1, (const char *[]){"file-key"});
    opt_free(&o);
    setenv("SEEKD_API_KEY", "k1,,k2", 1);
    ck_assert_int_eq(opt_parse(&o, ARGS("--port", "1"), &e), -1);
    ck_assert_str_eq(e.msg, "SEEKD_API_KEY: empty item in a comma-separated list");
    unsetenv("SEEKD_API_KEY");
    ck_assert_int_eq(opt_parse(&o, ARGS("--config", path), &e), 0);
    assert_list(&o.api_keys, 1, (const char *[]){"file-key"});
    opt_free(&o);
    unlink(path);
}
END_TEST

START_TEST(cross_option_rules)
{
    struct seekd_options o;
    struct err e = {0};
    ck_assert_int_eq(opt_parse(&o, ARGS("--max-num-seqs", "4096"), &e), -1);
    ck_assert_has(e.msg, "max_num_batched_tokens (2048) must be at least max_num_seqs (4096)");
    ck_assert_int_eq(opt_parse(&o, ARGS("--max-header-size", "64KiB"), &e), -1);
    ck_assert_has(e.msg, "max_header_size (64KiB) must be less than connection_memory_limit");
    ck_assert_int_eq(
        opt_parse(&o, ARGS("--max-model-len", "4096", "--default-max-tokens", "4096"), &e), -1);
    ck_assert_int_eq(
        opt_parse(&o, ARGS("--max-model-len", "4096", "--default-max-tokens", "1024"), &e), 0);
    opt_free(&o);
}
END_TEST

/* ---- the YAML file -------------------------------------------------------------------------- */

START_TEST(yaml_values)
{
    struct seekd_options o;
    struct err e = {0};
    opt_defaults(&o);
    ck_assert_int_eq(load_text(&o,
                               "# comment\n"
                               "host: \"::1\"\n"
                               "port: '8080'\n"
                               "max_body_size: 8MB\n"
                               "idle_timeout: 1.5m\n"
                               "enable_prefix_caching: no\n"
                               "webui: off\n"
                               "cors_allowed_origins: ['*']\n"
                               "api_keys:\n"
                               "log_file: null\n",
                               &e),
                     0);
    ck_assert_str_eq(o.host, "::1");
    ck_assert_int_eq(o.port, 8080);
    ck_assert_uint_eq(o.max_body_size, 8000000);
    ck_assert_double_eq(o.idle_timeout, 90);
    ck_assert(!o.enable_prefix_caching);
    ck_assert(!o.webui);
    assert_list(&o.cors_allowed_origins, 1, (const char *[]){"*"});
    ck_assert_int_eq(o.api_keys.n_items, 0);
    ck_assert_str_eq(o.log_file, "");
    opt_free(&o);
    opt_defaults(&o);
    ck_assert_int_eq(load_text(&o, "", &e), 0); /* an empty file changes nothing */
    ck_assert_int_eq(load_text(&o, "# only comments\n", &e), 0);
    ck_assert_int_eq(o.port, 8000);
    opt_free(&o);
}
END_TEST

START_TEST(yaml_errors)
{
    struct seekd_options o;
    struct err e = {0};
    opt_defaults(&o);
    ck_assert_int_eq(load_text(&o, "host: ::1\n\n\nport: 70000\n", &e), -1);
    ck_assert_str_eq(e.msg, "seekd.yaml:4: key 'port': 70000 is out of range [1, 65535]");
    opt_free(&o);
    expect_yaml_error("- port\n- host\n", "seekd.yaml:1:", "expected a mapping");
    expect_yaml_error("just text\n", "seekd.yaml:1:", "expected a mapping");
    expect_yaml_error("port: 1\nhost: ::1\nport: 2\n", "seekd.yaml:3: key 'port'",
                      "set twice (first on line 1)");
    expect_yaml_error("host: ::1\nport: [1, 2]\n", "seekd.yaml:2: key 'port'", "got a list");
    expect_yaml_error("port:\n  a: 1\n", "seekd.yaml:2: key 'port'", "got a mapping");
    expect_yaml_error("api_keys: abc\n", "seekd.yaml:1: key 'api_keys'", "expected a list");
    expect_yaml_error("api_keys:\n  - a\n  - [b]\n", "seekd.yaml:3: key 'api_keys'",
                      "single values");
    expect_yaml_error("api_keys: [a, '']\n", "seekd.yaml:1: key 'api_keys'", "empty list item");
    expect_yaml_error("\nmax_body_size: 12XB\n", "seekd.yaml:2: key 'max_body_size'",
                      "unknown size unit 'XB'");
    expect_yaml_error("max_body_size: -1MiB\n", "seekd.yaml:1: key 'max_body_size'", "negative");
    expect_yaml_error("idle_timeout: 3 days\n", "seekd.yaml:1: key 'idle_timeout'", "unit");
    expect_yaml_error("kv_cache_dtype: fp8\n", "seekd.yaml:1: key 'kv_cache_dtype'",
                      "'fp8' is not one of: auto, bf16, f32, f16");
    expect_yaml_error("enable_prefix_caching: maybe\n", "key 'enable_prefix_caching'",
                      "not a boolean");
    expect_yaml_error("port:\n", "seekd.yaml:1: key 'port'", "has no value");
    expect_yaml_error("threads: 99999999999999999999\n", "seekd.yaml:1: key 'threads'",
                      "out of range");
    expect_yaml_error("prot: 8000\n", "seekd.yaml:1: unknown key 'prot'", "(did you mean 'port'?)");
    expect_yaml_error("port: 1\nmax-num-seqs: 3\n", "seekd.yaml:2: unknown key 'max-num-seqs'",
                      "did you mean 'max_num_seqs'?");
    expect_yaml_error("config: x.yaml\n", "seekd.yaml:1:", "unknown key 'config'");
    expect_yaml_error("port: 1\nhost: [::1\n", "seekd.yaml:", "YAML syntax error");
    expect_yaml_error("port: 1\n  host: x\n", "seekd.yaml:2:", "YAML syntax error");
    expect_yaml_error("port: 1\n---\nport: 2\n", "seekd.yaml:2:", "only one YAML document");
    expect_yaml_error("? [a, b]\n: 1\n", "seekd.yaml:1:", "keys must be option names");
    expect_yaml_error("host: \"a\\0b\"\n", "key 'host'", "NUL");
}
END_TEST

/* config/seekd.yaml loads to exactly the defaults and names every option, and nothing else. */
START_TEST(reference_file)
{
    struct seekd_options def, o;
    struct err e = {0};
    opt_defaults(&def);
    opt_defaults(&o);
    o.port = 1; /* so that the file must set it back */
    free(o.host);
    o.host = strdup("x");
    ck_assert_msg(opt_load_file(&o, "config/seekd.yaml", &e) == 0, "%s", e.msg);
    char a[256], b[256];
    for (int i = 0; i < N_OPTS; i++)
        ck_assert_str_eq(opt_format_value(&o, opt_table[i].key, a, sizeof a),
                         opt_format_value(&def, opt_table[i].key, b, sizeof b));

    FILE *f = fopen("config/seekd.yaml", "r");
    ck_assert_ptr_nonnull(f);
    char line[512], prev[512] = "";
    int n_keys = 0;
    while (fgets(line, sizeof line, f)) {
        size_t len = strspn(line, "abcdefghijklmnopqrstuvwxyz0123456789_");
        if (len && line[len] == ':') {
            line[len] = '\0';
            ck_assert_msg(opt_find_key(line), "config/seekd.yaml names unknown key %s", line);
            ck_assert_msg(prev[0] == '#', "key %s has no comment above it", line);
            n_keys++;
        }
        ck_assert_msg(line[0] == '#' || line[0] == '\n' || len, "unexpected line: %s", line);
        snprintf(prev, sizeof prev, "%s", line);
    }
    fclose(f);
    ck_assert_int_eq(n_keys, N_OPTS); /* each once: the loader rejects repeated keys */
    opt_free(&o);
    opt_free(&def);
}
END_TEST

START_TEST(serve_needs_a_model)
{
    struct seekd_options o;
    fflush(stderr);
    int saved = dup(2), null = open("/dev/null", O_WRONLY);
    dup2(null, 2);
    int no_model = cmd_serve_options(ARGS("--port", "9000"), &o);
    int bad = cmd_serve_options(ARGS("--port", "x"), &o);
    dup2(saved, 2);
    close(null);
    close(saved);
    ck_assert_int_eq(no_model, -1);
    ck_assert_int_eq(bad, -1);
    ck_assert_int_eq(cmd_serve_options(ARGS("-m", "dir"), &o), 0);
    ck_assert_str_eq(o.model, "dir");
    opt_free(&o);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("options");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, defaults);
    tcase_add_test(tc, table_is_consistent);
    tcase_add_test(tc, size_suffixes);
    tcase_add_test(tc, memory_size_or_fraction);
    tcase_add_test(tc, durations);
    tcase_add_test(tc, integers);
    tcase_add_test(tc, bools_enums_hosts);
    tcase_add_test(tc, format_size);
    tcase_add_test(tc, flag_forms);
    tcase_add_test(tc, list_flags);
    tcase_add_test(tc, flag_errors);
    tcase_add_test(tc, help);
    tcase_add_test(tc, flags_override_file);
    tcase_add_test(tc, api_key_environment);
    tcase_add_test(tc, cross_option_rules);
    tcase_add_test(tc, yaml_values);
    tcase_add_test(tc, yaml_errors);
    tcase_add_test(tc, reference_file);
    tcase_add_test(tc, serve_needs_a_model);
    suite_add_tcase(s, tc);
    return check_run(s, 1);
}
