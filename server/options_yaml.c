/* options_yaml: the YAML configuration file (libyaml), applied through the option table; the
 * only file that includes yaml.h. Errors name the file, the line and the key. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <yaml.h>

#include "server/options_internal.h"

static bool is_null_scalar(const yaml_node_t *v)
{
    const char *s = (const char *)v->data.scalar.value;
    return v->data.scalar.style == YAML_PLAIN_SCALAR_STYLE &&
           (!*s || strcmp(s, "~") == 0 || strcmp(s, "null") == 0);
}

/* Sets a list option from a YAML value: a sequence of scalars, or null for an empty list. */
static int set_list_node(struct seekd_options *o, const struct opt_def *d, yaml_document_t *doc,
                         const yaml_node_t *v, unsigned long *line, struct err *e)
{
    struct opt_list *l = opt_field_of(o, d);
    opt_list_clear(l);
    if (v->type == YAML_SCALAR_NODE && is_null_scalar(v)) return 0;
    if (v->type != YAML_SEQUENCE_NODE)
        return err_set(e, "expected a list such as [a, b], got %s",
                       v->type == YAML_SCALAR_NODE ? "a single value" : "a mapping");
    for (yaml_node_item_t *it = v->data.sequence.items.start; it < v->data.sequence.items.top;
         it++) {
        const yaml_node_t *item = yaml_document_get_node(doc, *it);
        *line = item->start_mark.line + 1;
        if (item->type != YAML_SCALAR_NODE) return err_set(e, "list items must be single values");
        if (!item->data.scalar.length) return err_set(e, "empty list item");
        opt_list_append(l, (const char *)item->data.scalar.value, item->data.scalar.length);
    }
    return d->check ? d->check(l, e) : 0;
}

/* Sets option d from the YAML value v; *line is moved to the offending item on error. */
static int set_node(struct seekd_options *o, const struct opt_def *d, yaml_document_t *doc,
                    const yaml_node_t *v, unsigned long *line, struct err *e)
{
    if (d->type == T_LIST) return set_list_node(o, d, doc, v, line, e);
    if (v->type != YAML_SCALAR_NODE)
        return err_set(e, "expected a single value, got %s",
                       v->type == YAML_SEQUENCE_NODE ? "a list" : "a mapping");
    if (is_null_scalar(v)) {
        if (d->type != T_STRING) return err_set(e, "has no value");
        return opt_set_value(o, d, "", e);
    }
    if (strlen((const char *)v->data.scalar.value) != v->data.scalar.length)
        return err_set(e, "value contains a NUL character");
    return opt_set_value(o, d, (const char *)v->data.scalar.value, e);
}

/* Applies one "key: value" pair; seen_line[i] is where option i was set before (0 = not yet). */
static int apply_pair(struct seekd_options *o, const char *name, yaml_document_t *doc,
                      const yaml_node_pair_t *pair, unsigned long *seen_line, struct err *e)
{
    const yaml_node_t *k = yaml_document_get_node(doc, pair->key);
    const yaml_node_t *v = yaml_document_get_node(doc, pair->value);
    unsigned long line = k->start_mark.line + 1;
    if (k->type != YAML_SCALAR_NODE)
        return err_set(e, "%s:%lu: keys must be option names", name, line);
    const char *key = (const char *)k->data.scalar.value;
    const struct opt_def *d = opt_find_key(key);
    if (!d) {
        const char *hint = opt_suggest(key, false);
        return err_set(e, "%s:%lu: unknown key '%s'%s%s%s", name, line, key,
                       hint ? " (did you mean '" : "", hint ? hint : "", hint ? "'?)" : "");
    }
    unsigned long *seen = &seen_line[opt_index(d)];
    if (*seen)
        return err_set(e, "%s:%lu: key '%s' is set twice (first on line %lu)", name, line, key,
                       *seen);
    *seen = line;
    if (v->type != YAML_SCALAR_NODE) line = v->start_mark.line + 1; /* a list starts below */
    if (set_node(o, d, doc, v, &line, e) != 0)
        return err_prefix(e, "%s:%lu: key '%s'", name, line, key);
    return 0;
}

static int apply_document(struct seekd_options *o, const char *name, yaml_document_t *doc,
                          struct err *e)
{
    const yaml_node_t *root = yaml_document_get_root_node(doc);
    if (!root) return 0; /* an empty file sets nothing */
    if (root->type != YAML_MAPPING_NODE)
        return err_set(e, "%s:%lu: expected a mapping of 'key: value' lines, got %s", name,
                       (unsigned long)root->start_mark.line + 1,
                       root->type == YAML_SCALAR_NODE ? "a single value" : "a list");
    unsigned long *seen_line = xcalloc(opt_n_defs(), sizeof *seen_line); /* line of each key */
    int rc = 0;
    for (yaml_node_pair_t *p = root->data.mapping.pairs.start;
         rc == 0 && p < root->data.mapping.pairs.top; p++)
        rc = apply_pair(o, name, doc, p, seen_line, e);
    free(seen_line);
    return rc;
}

static int syntax_error(const yaml_parser_t *parser, const char *name, struct err *e)
{
    return err_set(e, "%s:%lu: YAML syntax error: %s%s%s", name,
                   (unsigned long)parser->problem_mark.line + 1,
                   parser->problem ? parser->problem : "unreadable input",
                   parser->context ? ", " : "", parser->context ? parser->context : "");
}

/* Loads the first document of the stream and applies it. */
static int load_document(yaml_parser_t *parser, struct seekd_options *o, const char *name,
                         struct err *e)
{
    yaml_document_t doc;
    if (!yaml_parser_load(parser, &doc)) return syntax_error(parser, name, e);
    int rc = apply_document(o, name, &doc, e);
    yaml_document_delete(&doc);
    return rc;
}

/* Fails when the stream holds a second document (or a syntax error after the first). */
static int expect_end(yaml_parser_t *parser, const char *name, struct err *e)
{
    yaml_document_t doc;
    if (!yaml_parser_load(parser, &doc)) return syntax_error(parser, name, e);
    bool more = yaml_document_get_root_node(&doc) != NULL;
    unsigned long line = (unsigned long)doc.start_mark.line + 1;
    yaml_document_delete(&doc);
    return more ? err_set(e, "%s:%lu: only one YAML document is allowed", name, line) : 0;
}

/* Applies the YAML stream in f (called name in messages) on top of o. */
static int load_stream(struct seekd_options *o, const char *name, FILE *f, struct err *e)
{
    yaml_parser_t parser;
    if (!yaml_parser_initialize(&parser)) ERR_FATAL("out of memory");
    yaml_parser_set_input_file(&parser, f);
    int rc = load_document(&parser, o, name, e);
    if (rc == 0) rc = expect_end(&parser, name, e);
    yaml_parser_delete(&parser);
    return rc;
}

int opt_load_file(struct seekd_options *o, const char *path, struct err *e)
{
    struct stat st;
    FILE *f = fopen(path, "rb");
    if (!f) return err_set(e, "cannot read config file '%s': %s", path, strerror(errno));
    if (fstat(fileno(f), &st) == 0 && S_ISDIR(st.st_mode)) {
        fclose(f);
        return err_set(e, "cannot read config file '%s': it is a directory", path);
    }
    int rc = load_stream(o, path, f, e);
    fclose(f);
    return rc;
}

