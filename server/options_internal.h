/* options_internal: what options.c shares with options_yaml.c and options_cli.c — the row type
 * of the option table and the table-driven lookups and setters. Not for other modules: they use
 * server/options.h. */
#ifndef SEEKD_OPTIONS_INTERNAL_H
#define SEEKD_OPTIONS_INTERNAL_H

#include <stdbool.h>
#include <stddef.h>

#include "server/options.h"

enum opt_type { T_STRING, T_INT, T_BOOL, T_SIZE, T_MEMORY, T_DURATION, T_ENUM, T_LIST };

struct opt_def {
    const char *key; /* YAML key = field name of struct seekd_options */
    enum opt_type type;
    size_t offset;              /* of the field in struct seekd_options */
    const char *flag;           /* "--kebab-case" */
    char short_flag;            /* 0 = none */
    const char *def;            /* default, written as the file and the flags write it */
    double min, max;            /* numeric types; bytes for sizes, seconds for durations */
    const char *const *choices; /* T_ENUM: allowed values, NULL-terminated */
    int (*check)(const void *field, struct err *e); /* extra validation, or NULL */
    const char *group;
    const char *metavar;
    const char *help;
};

/* Rows in the table, and the position of row d in it. */
size_t opt_n_defs(void);
size_t opt_index(const struct opt_def *d);
/* Row i of the table. */
const struct opt_def *opt_def_at(size_t i);
/* The row of a YAML key, or NULL. */
const struct opt_def *opt_find_key(const char *key);
/* The row of a flag name without its dashes (a long one, or with short_form a letter), or NULL. */
const struct opt_def *opt_find_flag(const char *name, bool short_form);
/* A numeric bound of row d as the file writes it ("64KiB", "30s", "8"). */
const char *opt_format_bound(const struct opt_def *d, double v, char *buf, size_t n);
/* The field of o that row d describes. */
void *opt_field_of(struct seekd_options *o, const struct opt_def *d);
/* Parses s as row d's type and stores it; -1 with a message. */
int opt_set_value(struct seekd_options *o, const struct opt_def *d, const char *s, struct err *e);
/* A key (or, with flags, a flag) close to a misspelt name, or NULL. */
const char *opt_suggest(const char *name, bool flags);
void opt_list_clear(struct opt_list *l);
void opt_list_append(struct opt_list *l, const char *s, size_t len);

#endif
