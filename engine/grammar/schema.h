/* schema: a JSON Schema as plain C structs — what the server fills from a request, and what
 * gram_from_schema compiles. The engine never parses request JSON; the server converts a schema
 * into this tree, refusing (400, naming the keyword) what the tree cannot express.
 *
 * Meaning of a node (the server sets the defaults noted):
 *   ref >= 0           the node is defs[ref]; nothing else applies
 *   n_any_of > 0       the value matches one of any_of (anyOf, and oneOf read as anyOf)
 *   n_values >= 0      const/enum: the value is one of these JSON texts, written exactly
 *   otherwise          a value of one of `types`, each type constrained by its fields below
 * Strings count Unicode code points, as JSON Schema does. Numbers: bounds are decimal texts
 * (the server writes doubles as their shortest round-trip decimal). Objects: properties are
 * generated in the order given, required ones always; other properties only when `additional`
 * is set (the server leaves it NULL when additionalProperties is false, or absent beside
 * "properties", so generation never invents keys; {"type": "object"} alone is any object). */
#ifndef SEEKD_GRAMMAR_SCHEMA_H
#define SEEKD_GRAMMAR_SCHEMA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

enum jss_type {
    JSS_NULL = 1 << 0,
    JSS_BOOLEAN = 1 << 1,
    JSS_INTEGER = 1 << 2,
    JSS_NUMBER = 1 << 3,
    JSS_STRING = 1 << 4,
    JSS_ARRAY = 1 << 5,
    JSS_OBJECT = 1 << 6,
    JSS_ANY = (1 << 7) - 1,
};

enum jss_format {
    JSS_FMT_NONE,
    JSS_FMT_DATE,
    JSS_FMT_TIME,
    JSS_FMT_DATE_TIME,
    JSS_FMT_UUID,
    JSS_FMT_EMAIL
};

struct jss;

struct jss_prop {
    const char *name; /* raw UTF-8 (may hold NUL: name_len counts) */
    size_t name_len;
    struct jss *schema;
    bool required;
};

struct jss {
    const char *path; /* where the node sits in the request, for messages ("properties.a") */
    int ref;          /* >= 0: defs[ref]; default -1 */
    unsigned types;   /* enum jss_type bits; 0: no value is valid (the schema false) */
    const char *const *values; /* [n_values] const/enum as JSON text */
    int n_values;              /* -1: none (default) */
    struct jss *const *any_of; /* [n_any_of] */
    int n_any_of;
    /* strings */
    int64_t min_length, max_length; /* default 0, -1 (none) */
    const char *pattern;            /* NULL: none */
    enum jss_format format;
    /* integers and numbers */
    const char *minimum, *maximum; /* decimal text, NULL: none */
    bool exclusive_minimum, exclusive_maximum;
    /* arrays */
    struct jss *const *prefix_items; /* [n_prefix_items] */
    int n_prefix_items;
    struct jss *items;            /* the rest; NULL: any value */
    bool no_more_items;           /* items: false — nothing after the prefix */
    int64_t min_items, max_items; /* default 0, -1 (none) */
    /* objects */
    const struct jss_prop *props; /* [n_props] */
    int n_props;
    struct jss *additional; /* schema of other properties; NULL: none are generated */
};

struct jss_doc {
    struct jss *root;
    struct jss *const *defs; /* [n_defs] targets of $ref */
    int n_defs;
};

/* A node with every field at its default (matches any value). */
struct jss jss_default(const char *path);

#endif
