/* options_cli: `seekd serve`'s command line — the flag parser (long and short flags, --no-
 * booleans, --config, values given inline or as the next argument), the order in which the
 * sources apply (defaults, the file, SEEKD_API_KEY, flags), and the --help text, all driven by
 * options.c's table. */
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "server/options.h"
#include "server/options_internal.h"

enum flag_kind { FLAG_OPTION, FLAG_HELP, FLAG_CONFIG };

/* One flag of the command line with its value. */
struct flag {
    enum flag_kind kind;
    const struct opt_def *def; /* FLAG_OPTION */
    const char *value;
};

/* Finds the option of long flag a ("--name", "--name=value", "--no-name" for a boolean), with
 * underscores counting as dashes; sets fl->kind and fl->def, and *negated for "--no-". */
static int find_long_flag(const char *a, size_t len, struct flag *fl, bool *negated, struct err *e)
{
    char name[64];
    if (len >= sizeof name) return err_set(e, "unknown option '%s'", a);
    for (size_t j = 0; j < len; j++) name[j] = a[2 + j] == '_' ? '-' : a[2 + j];
    name[len] = '\0';
    fl->kind = strcmp(name, "help") == 0     ? FLAG_HELP
               : strcmp(name, "config") == 0 ? FLAG_CONFIG
                                             : FLAG_OPTION;
    fl->def = opt_find_flag(name, false);
    *negated = false;
    if (!fl->def && strncmp(name, "no-", 3) == 0) {
        fl->def = opt_find_flag(name + 3, false);
        *negated = fl->def && fl->def->type == T_BOOL;
        if (!*negated) fl->def = NULL;
    }
    if (fl->kind != FLAG_OPTION || fl->def) return 0;
    const char *hint = opt_suggest(name, true);
    return err_set(e, "unknown option '%.*s'%s%s%s", (int)(len + 2), a,
                   hint ? " (did you mean --" : "", hint ? hint : "", hint ? "?)" : "");
}

/* Reads the long flag a into fl, taking its value from argv[*i] when it needs one and has no
 * "=value". A value starting with "--" is taken for a forgotten value. */
static int read_long_flag(const char *a, int argc, char **argv, int *i, struct flag *fl,
                          struct err *e)
{
    const char *eq = strchr(a, '=');
    size_t len = eq ? (size_t)(eq - a - 2) : strlen(a + 2);
    bool negated = false;
    if (find_long_flag(a, len, fl, &negated, e) != 0) return -1;
    if (fl->kind == FLAG_HELP) return 0;
    if (eq && negated) return err_set(e, "option '%.*s' takes no value", (int)(len + 2), a);
    if (eq)
        fl->value = eq + 1;
    else if (fl->kind == FLAG_OPTION && fl->def->type == T_BOOL)
        fl->value = negated ? "false" : "true";
    else if (*i < argc && strncmp(argv[*i], "--", 2) != 0)
        fl->value = argv[(*i)++];
    else
        return err_set(e, "option '%s' needs a value", a);
    return 0;
}

/* Reads the flag at argv[*i] (and its value), advancing *i. */
static int read_flag(int argc, char **argv, int *i, struct flag *fl, struct err *e)
{
    const char *a = argv[(*i)++];
    *fl = (struct flag){FLAG_OPTION, NULL, NULL};
    if (strcmp(a, "-h") == 0) {
        fl->kind = FLAG_HELP;
        return 0;
    }
    if (a[0] == '-' && a[1] == '-' && a[2]) return read_long_flag(a, argc, argv, i, fl, e);
    if (a[0] != '-' || !a[1]) return err_set(e, "unexpected argument '%s'", a);
    fl->def = opt_find_flag(a + 1, true);
    if (!fl->def) return err_set(e, "unknown option '%s'", a);
    if (*i >= argc) return err_set(e, "option '%s' needs a value", a);
    fl->value = argv[(*i)++];
    return 0;
}

/* Reads all flags of argv[1..] into fls. 1 when --help is among them (which wins over any
 * error), -1 on the first error, else 0 with *config set when --config was given. */
static int read_flags(int argc, char **argv, struct flag *fls, int *n_fls, const char **config,
                      struct err *e)
{
    int rc = 0;
    *n_fls = 0;
    for (int i = 1; i < argc;) {
        struct flag *fl = &fls[*n_fls];
        struct err fe;
        if (read_flag(argc, argv, &i, fl, &fe) != 0) {
            if (rc == 0) *e = fe;
            rc = -1;
            continue;
        }
        if (fl->kind == FLAG_HELP) return 1;
        if (fl->kind == FLAG_CONFIG && *config && rc == 0)
            rc = err_set(e, "--config is given more than once");
        if (fl->kind == FLAG_CONFIG)
            *config = fl->value;
        else
            (*n_fls)++;
    }
    return rc;
}

/* Applies the option flags in order; the first flag of a list option replaces the list. */
static int apply_flags(struct seekd_options *o, const struct flag *fls, int n_fls, struct err *e)
{
    bool *touched = xcalloc(opt_n_defs(), sizeof *touched);
    int rc = 0;
    for (int i = 0; i < n_fls && rc == 0; i++) {
        const struct opt_def *d = fls[i].def;
        if (d->type == T_LIST && !touched[opt_index(d)]) opt_list_clear(opt_field_of(o, d));
        touched[opt_index(d)] = true;
        if (opt_set_value(o, d, fls[i].value, e) != 0) rc = err_prefix(e, "%s", d->flag);
    }
    free(touched);
    return rc;
}

int opt_parse(struct seekd_options *o, int argc, char **argv, struct err *e)
{
    const char *config = NULL;
    int n_fls;
    struct flag *fls = xcalloc((size_t)(argc > 0 ? argc : 1), sizeof *fls);
    memset(o, 0, sizeof *o);
    int rc = read_flags(argc, argv, fls, &n_fls, &config, e);
    if (rc > 0) opt_print_help(stdout);
    if (rc == 0) {
        opt_defaults(o);
        if ((config && opt_load_file(o, config, e) != 0) || opt_load_env(o, e) != 0 ||
            apply_flags(o, fls, n_fls, e) != 0 || opt_validate(o, e) != 0) {
            opt_free(o);
            rc = -1;
        }
    }
    free(fls);
    return rc;
}

/* ---- help ----------------------------------------------------------------------------------- */

/* Writes what follows d's flag in the help: "N", "SIZE", "text|json", "KEY,...". */
static const char *metavar_of(const struct opt_def *d, char *buf, size_t n)
{
    static const char *const by_type[] = {
        [T_STRING] = "STR", [T_INT] = "N",       [T_BOOL] = "",
        [T_SIZE] = "SIZE",  [T_MEMORY] = "SIZE", [T_DURATION] = "DURATION",
        [T_LIST] = "ITEM"};
    size_t used = 0;
    buf[0] = '\0';
    if (d->metavar || d->type != T_ENUM)
        used = (size_t)snprintf(buf, n, "%s", d->metavar ? d->metavar : by_type[d->type]);
    for (int i = 0; d->type == T_ENUM && d->choices[i] && used < n; i++)
        used += (size_t)snprintf(buf + used, n - used, "%s%s", i ? "|" : "", d->choices[i]);
    if (d->type == T_LIST && used < n) snprintf(buf + used, n - used, ",...");
    return buf;
}

/* Writes "[key: default; range]" for d. */
static const char *facts_of(const struct opt_def *d, char *buf, size_t n)
{
    char lo[32], hi[32];
    int used = snprintf(buf, n, "[%s: %s", d->key, *d->def ? d->def : "none");
    if (d->type == T_INT || d->type == T_SIZE || d->type == T_DURATION)
        used += snprintf(buf + used, n - (size_t)used, "; %s..%s",
                         opt_format_bound(d, d->min, lo, sizeof lo),
                         opt_format_bound(d, d->max, hi, sizeof hi));
    if (d->type == T_MEMORY)
        used += snprintf(buf + used, n - (size_t)used, "; a fraction in (0, 1] or %s..%s",
                         opt_format_bound(d, d->min, lo, sizeof lo),
                         opt_format_bound(d, d->max, hi, sizeof hi));
    snprintf(buf + used, n - (size_t)used, "%s]", d->type == T_LIST ? "; repeatable" : "");
    return buf;
}

/* Prints the flag on one line, then the help and the facts, indented, on one or two. */
static void print_option_help(FILE *f, const struct opt_def *d)
{
    char mv[64], facts[128], shrt[8] = "    ";
    if (d->short_flag) snprintf(shrt, sizeof shrt, "-%c, ", d->short_flag);
    if (d->type == T_BOOL)
        fprintf(f, "  %s--[no-]%s\n", shrt, d->flag + 2);
    else
        fprintf(f, "  %s%s %s\n", shrt, d->flag, metavar_of(d, mv, sizeof mv));
    facts_of(d, facts, sizeof facts);
    if (8 + strlen(d->help) + 2 + strlen(facts) <= 100)
        fprintf(f, "%8s%s  %s\n", "", d->help, facts);
    else
        fprintf(f, "%8s%s\n%8s%s\n", "", d->help, "", facts);
}

void opt_print_help(FILE *f)
{
    fprintf(f,
            "usage: seekd serve [--config FILE] [OPTIONS]\n\n"
            "Serves the model over an OpenAI-compatible HTTP API. Every option is also a key of\n"
            "the YAML file given by --config (shown in brackets with its default and range;\n"
            "config/seekd.yaml documents them all). Later sources win: defaults, the file,\n"
            "SEEKD_API_KEY, flags. Sizes take B, KB, KiB, MB, MiB, GB, GiB, TB, TiB; durations\n"
            "take ms, s, m, h (a bare number is seconds).\n\n"
            "      --config FILE\n        read options from a YAML file\n"
            "  -h, --help\n        print this help and exit\n");
    const char *group = NULL;
    for (size_t i = 0; i < opt_n_defs(); i++) {
        const struct opt_def *d = opt_def_at(i);
        if (!group || strcmp(group, d->group) != 0) fprintf(f, "\n%s:\n", group = d->group);
        print_option_help(f, d);
    }
}

/* ---- the serve command ---------------------------------------------------------------------- */

int cmd_serve_options(int argc, char **argv, struct seekd_options *o)
{
    struct err e = {0};
    int rc = opt_parse(o, argc, argv, &e);
    if (rc < 0) {
        fprintf(stderr, "seekd serve: %s\nRun 'seekd serve --help' for the options.\n", e.msg);
        return -1;
    }
    if (rc == 0 && !*o->model) {
        fprintf(stderr, "seekd serve: no model: pass --model DIR or set 'model' in the config "
                        "file\n");
        opt_free(o);
        return -1;
    }
    return rc;
}
