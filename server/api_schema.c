/* api_schema: a request's JSON Schema (jansson) → the engine's plain schema tree
 * (engine/grammar/schema.h), or a message naming the keyword that cannot be honoured.
 *
 * $ref may point anywhere inside the document ("#", "#/$defs/x", "#/definitions/x",
 * "#/properties/a/items", with ~0 ~1 escapes); each target becomes one definition, so recursive
 * schemas are fine. Annotations (title, description, default, examples, ...) are ignored, as are
 * keywords JSON Schema does not define. Keywords that constrain values in ways the grammar cannot
 * express (multipleOf, not, if/then/else, patternProperties, uniqueItems, ...) are refused. */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "server/api_schema.h"

#define MAX_NODES 20000
#define MAX_DEPTH 64

static const char *const REFUSED[] = {
    "multipleOf",
    "not",
    "if",
    "then",
    "else",
    "patternProperties",
    "propertyNames",
    "dependencies",
    "dependentRequired",
    "dependentSchemas",
    "contains",
    "minContains",
    "maxContains",
    "unevaluatedItems",
    "$dynamicRef",
    "$recursiveRef",
    "minProperties",
    "maxProperties",
};

struct conv {
    struct api_schema *out;
    json_t *root;
    json_t **def_json;    /* [n_defs] the JSON each definition came from */
    const char **def_ref; /* [n_defs] the $ref that named it first (for messages) */
    int n_defs, cap_defs;
    int n_nodes;
    int no_additional;
    char *msg;
    size_t msg_size;
};

static int fail(struct conv *c, const char *path, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static int fail(struct conv *c, const char *path, const char *fmt, ...)
{
    char m[400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(m, sizeof m, fmt, ap);
    va_end(ap);
    snprintf(c->msg, c->msg_size, "%s%s%s", path && *path ? path : "", path && *path ? ": " : "",
             m);
    return -1;
}

/* ---- the arena ---------------------------------------------------------------------------- */

static void *keep(struct api_schema *s, void *p)
{
    if (s->n_owned == s->cap_owned) {
        s->cap_owned = s->cap_owned ? 2 * s->cap_owned : 64;
        s->owned = xrealloc(s->owned, (size_t)s->cap_owned * sizeof *s->owned);
    }
    return s->owned[s->n_owned++] = p;
}

static void *alloc(struct api_schema *s, size_t n)
{
    return keep(s, xcalloc(1, n ? n : 1));
}

static char *kstrdup(struct api_schema *s, const char *t)
{
    char *d = strdup(t);
    if (!d) ERR_FATAL("out of memory");
    return keep(s, d);
}

static const char *sub_path(struct conv *c, const char *path, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static const char *sub_path(struct conv *c, const char *path, const char *fmt, ...)
{
    char tail[200], buf[600];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(tail, sizeof tail, fmt, ap);
    va_end(ap);
    snprintf(buf, sizeof buf, "%s%s%s", path, *path ? "." : "", tail);
    return kstrdup(c->out, buf);
}

void api_schema_free(struct api_schema *s)
{
    for (int i = 0; i < s->n_owned; i++) free(s->owned[i]);
    free(s->owned);
    memset(s, 0, sizeof *s);
}

/* ---- numbers ------------------------------------------------------------------------------ */

/* The shortest decimal that reads back as the same double (what the bound compares as). */
static char *number_text(struct api_schema *s, json_t *v)
{
    char buf[64];
    if (json_is_integer(v)) {
        snprintf(buf, sizeof buf, "%lld", (long long)json_integer_value(v));
    } else {
        double d = json_real_value(v);
        for (int prec = 1; prec <= 17; prec++) {
            snprintf(buf, sizeof buf, "%.*g", prec, d);
            if (strtod(buf, NULL) == d) break;
        }
    }
    return kstrdup(s, buf);
}

/* minimum/maximum and their exclusive forms (draft 6+: numbers; draft 4: booleans). */
static int read_bounds(struct conv *c, json_t *o, struct jss *n, const char *path)
{
    json_t *mn = json_object_get(o, "minimum"), *mx = json_object_get(o, "maximum");
    json_t *xmn = json_object_get(o, "exclusiveMinimum"),
           *xmx = json_object_get(o, "exclusiveMaximum");
    struct {
        json_t *v;
        const char *name;
    } all[] = {{mn, "minimum"}, {mx, "maximum"}};
    for (int i = 0; i < 2; i++)
        if (all[i].v && (!json_is_number(all[i].v) || !isfinite(json_number_value(all[i].v))))
            return fail(c, path, "'%s' must be a number", all[i].name);
    if (mn) n->minimum = number_text(c->out, mn);
    if (mx) n->maximum = number_text(c->out, mx);
    if (json_is_boolean(xmn))
        n->exclusive_minimum = json_is_true(xmn) && mn;
    else if (json_is_number(xmn)) {
        if (!mn || json_number_value(xmn) >= json_number_value(mn))
            n->minimum = number_text(c->out, xmn), n->exclusive_minimum = true;
    } else if (xmn)
        return fail(c, path, "'exclusiveMinimum' must be a number");
    if (json_is_boolean(xmx))
        n->exclusive_maximum = json_is_true(xmx) && mx;
    else if (json_is_number(xmx)) {
        if (!mx || json_number_value(xmx) <= json_number_value(mx))
            n->maximum = number_text(c->out, xmx), n->exclusive_maximum = true;
    } else if (xmx)
        return fail(c, path, "'exclusiveMaximum' must be a number");
    return 0;
}

/* A non-negative integer keyword (minLength, maxItems, ...), or dflt when absent. */
static int count_kw(struct conv *c, json_t *o, const char *key, int64_t dflt, int64_t *out,
                    const char *path)
{
    json_t *v = json_object_get(o, key);
    *out = dflt;
    if (!v) return 0;
    if (json_is_real(v) && json_real_value(v) == floor(json_real_value(v)) &&
        json_real_value(v) >= 0 && json_real_value(v) < 1e15)
        return *out = (int64_t)json_real_value(v), 0;
    if (!json_is_integer(v) || json_integer_value(v) < 0)
        return fail(c, path, "'%s' must be a non-negative integer", key);
    *out = json_integer_value(v);
    return 0;
}

/* ---- $ref ----------------------------------------------------------------------------------- */

/* Follows a JSON pointer ("#/a/b~1c") from the document root; NULL when it leads nowhere. */
static json_t *resolve(json_t *root, const char *ref)
{
    if (ref[0] != '#') return NULL;
    json_t *at = root;
    const char *p = ref + 1;
    while (*p == '/' && at) {
        char seg[256];
        size_t k = 0;
        for (p++; *p && *p != '/' && k + 1 < sizeof seg; p++) {
            if (p[0] == '~' && p[1] == '0')
                seg[k++] = '~', p++;
            else if (p[0] == '~' && p[1] == '1')
                seg[k++] = '/', p++;
            else
                seg[k++] = *p;
        }
        seg[k] = 0;
        if (json_is_object(at))
            at = json_object_get(at, seg);
        else if (json_is_array(at))
            at = json_array_get(at, (size_t)strtoul(seg, NULL, 10));
        else
            at = NULL;
    }
    return *p ? NULL : at;
}

/* The definition index of a $ref target (made on first use; converted afterwards). */
static int def_index(struct conv *c, json_t *target, const char *ref)
{
    for (int i = 0; i < c->n_defs; i++)
        if (c->def_json[i] == target) return i;
    if (c->n_defs == c->cap_defs) {
        c->cap_defs = c->cap_defs ? 2 * c->cap_defs : 8;
        c->def_json = xrealloc(c->def_json, (size_t)c->cap_defs * sizeof *c->def_json);
        c->def_ref = xrealloc(c->def_ref, (size_t)c->cap_defs * sizeof *c->def_ref);
    }
    c->def_json[c->n_defs] = target;
    c->def_ref[c->n_defs] = kstrdup(c->out, ref);
    return c->n_defs++;
}

/* ---- keywords -------------------------------------------------------------------------------- */

static int convert(struct conv *c, json_t *j, const char *path, int depth, struct jss **out);

static int read_type(struct conv *c, json_t *t, struct jss *n, const char *path)
{
    static const struct {
        const char *name;
        unsigned bit;
    } types[] = {{"null", JSS_NULL},     {"boolean", JSS_BOOLEAN}, {"integer", JSS_INTEGER},
                 {"number", JSS_NUMBER}, {"string", JSS_STRING},   {"array", JSS_ARRAY},
                 {"object", JSS_OBJECT}};
    if (!t) return 0;
    n->types = 0;
    size_t n_t = json_is_array(t) ? json_array_size(t) : 1;
    for (size_t i = 0; i < n_t; i++) {
        const char *name = json_string_value(json_is_array(t) ? json_array_get(t, i) : t);
        size_t k = 0;
        for (; name && k < sizeof types / sizeof types[0]; k++)
            if (!strcmp(name, types[k].name)) break;
        if (!name || k == sizeof types / sizeof types[0])
            return fail(c, path,
                        "'type' must be one of null, boolean, integer, number, string, "
                        "array, object (or a list of them)");
        n->types |= types[k].bit;
    }
    return 0;
}

static unsigned type_of(json_t *v)
{
    switch (json_typeof(v)) {
    case JSON_OBJECT:
        return JSS_OBJECT;
    case JSON_ARRAY:
        return JSS_ARRAY;
    case JSON_STRING:
        return JSS_STRING;
    case JSON_INTEGER:
        return JSS_INTEGER | JSS_NUMBER;
    case JSON_REAL:
        return json_real_value(v) == floor(json_real_value(v)) ? JSS_INTEGER | JSS_NUMBER
                                                               : JSS_NUMBER;
    case JSON_TRUE:
    case JSON_FALSE:
        return JSS_BOOLEAN;
    default:
        return JSS_NULL;
    }
}

/* const and enum: the values (of an allowed type) as compact JSON text. */
static int read_values(struct conv *c, json_t *o, struct jss *n, const char *path)
{
    json_t *k = json_object_get(o, "const"), *en = json_object_get(o, "enum");
    if (!k && !en) return 0;
    if (en && (!json_is_array(en) || json_array_size(en) == 0 || json_array_size(en) > 10000))
        return fail(c, path, "'enum' must be a list of 1 to 10000 values");
    size_t total = k ? 1 : json_array_size(en);
    const char **vals = alloc(c->out, total * sizeof *vals);
    int m = 0;
    for (size_t i = 0; i < total; i++) {
        json_t *v = k ? k : json_array_get(en, i);
        if (!(type_of(v) & n->types)) continue;
        char *text = json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY);
        if (!text) return fail(c, path, "a value of 'enum' cannot be written");
        vals[m++] = keep(c->out, text);
    }
    n->values = vals, n->n_values = m;
    return 0;
}

static int read_string_kw(struct conv *c, json_t *o, struct jss *n, const char *path)
{
    static const struct {
        const char *name;
        enum jss_format f;
    } formats[] = {{"date", JSS_FMT_DATE},
                   {"time", JSS_FMT_TIME},
                   {"date-time", JSS_FMT_DATE_TIME},
                   {"uuid", JSS_FMT_UUID},
                   {"email", JSS_FMT_EMAIL}};
    if (count_kw(c, o, "minLength", 0, &n->min_length, path) ||
        count_kw(c, o, "maxLength", -1, &n->max_length, path))
        return -1;
    json_t *p = json_object_get(o, "pattern"), *f = json_object_get(o, "format");
    if (p && !json_is_string(p)) return fail(c, path, "'pattern' must be a string");
    if (p) n->pattern = kstrdup(c->out, json_string_value(p));
    if (f && !json_is_string(f)) return fail(c, path, "'format' must be a string");
    for (size_t i = 0; f && i < sizeof formats / sizeof formats[0]; i++)
        if (!strcmp(json_string_value(f), formats[i].name)) n->format = formats[i].f;
    return 0; /* other formats are annotations */
}

static int read_array_kw(struct conv *c, json_t *o, struct jss *n, const char *path, int depth)
{
    json_t *items = json_object_get(o, "items"), *prefix = json_object_get(o, "prefixItems");
    json_t *more = json_object_get(o, "additionalItems"), *uniq = json_object_get(o, "uniqueItems");
    if (uniq && !json_is_false(uniq)) return fail(c, path, "'uniqueItems' is not supported");
    if (count_kw(c, o, "minItems", 0, &n->min_items, path) ||
        count_kw(c, o, "maxItems", -1, &n->max_items, path))
        return -1;
    if (json_is_array(items)) prefix = items, items = more; /* draft 4 tuples */
    if (prefix) {
        if (!json_is_array(prefix)) return fail(c, path, "'prefixItems' must be a list of schemas");
        n->n_prefix_items = (int)json_array_size(prefix);
        struct jss **p = alloc(c->out, (size_t)n->n_prefix_items * sizeof *p);
        for (int i = 0; i < n->n_prefix_items; i++)
            if (convert(c, json_array_get(prefix, (size_t)i),
                        sub_path(c, path, "prefixItems[%d]", i), depth + 1, &p[i]))
                return -1;
        n->prefix_items = p;
    }
    if (json_is_false(items))
        n->no_more_items = true;
    else if (items && !json_is_true(items))
        return convert(c, items, sub_path(c, path, "items"), depth + 1, &n->items);
    return 0;
}

/* required names missing from properties become properties of their own (any value). */
static int read_object_kw(struct conv *c, json_t *o, struct jss *n, const char *path, int depth)
{
    json_t *props = json_object_get(o, "properties"), *req = json_object_get(o, "required");
    json_t *add = json_object_get(o, "additionalProperties");
    if (props && !json_is_object(props)) return fail(c, path, "'properties' must be an object");
    if (req && !json_is_array(req)) return fail(c, path, "'required' must be a list of names");
    size_t cap = json_object_size(props) + json_array_size(req);
    struct jss_prop *p = alloc(c->out, cap * sizeof *p);
    const char *key;
    json_t *v;
    json_object_foreach(props, key, v)
    {
        struct jss_prop *q = &p[n->n_props++];
        q->name = key, q->name_len = strlen(key);
        if (convert(c, v, sub_path(c, path, "properties.%s", key), depth + 1, &q->schema))
            return -1;
    }
    for (size_t i = 0; i < json_array_size(req); i++) {
        const char *name = json_string_value(json_array_get(req, i));
        if (!name) return fail(c, path, "'required' must be a list of names");
        int k = 0;
        while (k < n->n_props && strcmp(p[k].name, name)) k++;
        if (k == n->n_props) {
            p[k].name = name, p[k].name_len = strlen(name);
            if (convert(c, json_true(), path, depth + 1, &p[k].schema)) return -1;
            n->n_props++;
        }
        p[k].required = true;
    }
    n->props = p;
    if (json_is_object(add))
        return convert(c, add, sub_path(c, path, "additionalProperties"), depth + 1,
                       &n->additional);
    /* {"type": "object"} alone: any object; with "properties" (even empty): just those */
    if (json_is_true(add) || (!add && !props && !req && !c->no_additional))
        return convert(c, json_true(), path, depth + 1, &n->additional);
    if (add && !json_is_false(add))
        return fail(c, path, "'additionalProperties' must be a boolean or a schema");
    return 0;
}

static int read_alternatives(struct conv *c, json_t *o, struct jss *n, const char *path, int depth)
{
    json_t *any = json_object_get(o, "anyOf"), *one = json_object_get(o, "oneOf");
    if (any && one) return fail(c, path, "anyOf together with oneOf is not supported");
    json_t *alts = any ? any : one;
    const char *kw = any ? "anyOf" : "oneOf";
    if (!json_is_array(alts) || json_array_size(alts) == 0)
        return fail(c, path, "'%s' must be a non-empty list of schemas", kw);
    n->n_any_of = (int)json_array_size(alts);
    struct jss **a = alloc(c->out, (size_t)n->n_any_of * sizeof *a);
    for (int i = 0; i < n->n_any_of; i++)
        if (convert(c, json_array_get(alts, (size_t)i), sub_path(c, path, "%s[%d]", kw, i),
                    depth + 1, &a[i]))
            return -1;
    n->any_of = a;
    return 0;
}

/* Keywords that would constrain the value beyond what anyOf/$ref alone say. */
static const char *const CONSTRAINTS[] = {"type",
                                          "enum",
                                          "const",
                                          "minLength",
                                          "maxLength",
                                          "pattern",
                                          "format",
                                          "minimum",
                                          "maximum",
                                          "exclusiveMinimum",
                                          "exclusiveMaximum",
                                          "items",
                                          "prefixItems",
                                          "minItems",
                                          "maxItems",
                                          "properties",
                                          "required",
                                          "additionalProperties"};

static const char *first_constraint(json_t *o)
{
    for (size_t i = 0; i < sizeof CONSTRAINTS / sizeof CONSTRAINTS[0]; i++)
        if (json_object_get(o, CONSTRAINTS[i])) return CONSTRAINTS[i];
    return NULL;
}

static int check_refused(struct conv *c, json_t *o, const char *path)
{
    for (size_t i = 0; i < sizeof REFUSED / sizeof REFUSED[0]; i++)
        if (json_object_get(o, REFUSED[i]))
            return fail(c, path, "the keyword '%s' is not supported", REFUSED[i]);
    json_t *ue = json_object_get(o, "unevaluatedProperties");
    if (ue && !json_is_false(ue))
        return fail(c, path, "the keyword 'unevaluatedProperties' is not supported");
    return 0;
}

/* allOf with one schema is that schema (pydantic writes such wrappers). */
static json_t *unwrap_all_of(struct conv *c, json_t *o, const char *path, int *rc)
{
    json_t *all = json_object_get(o, "allOf");
    *rc = 0;
    if (!all) return o;
    if (!json_is_array(all) || json_array_size(all) != 1 || first_constraint(o) ||
        json_object_get(o, "$ref") || json_object_get(o, "anyOf") || json_object_get(o, "oneOf")) {
        *rc = fail(c, path, "'allOf' is supported only with a single schema and nothing beside it");
        return NULL;
    }
    return json_array_get(all, 0);
}

static int convert_object(struct conv *c, json_t *o, const char *path, int depth, struct jss *n)
{
    int rc;
    if (check_refused(c, o, path)) return -1;
    json_t *inner = unwrap_all_of(c, o, path, &rc);
    if (rc) return -1;
    if (inner != o) return convert(c, inner, path, depth, &n);
    json_t *ref = json_object_get(o, "$ref");
    if (ref) {
        if (!json_is_string(ref)) return fail(c, path, "'$ref' must be a string");
        if (first_constraint(o) || json_object_get(o, "anyOf") || json_object_get(o, "oneOf"))
            return fail(c, path, "'$ref' with '%s' beside it is not supported",
                        first_constraint(o) ? first_constraint(o) : "anyOf");
        json_t *target = resolve(c->root, json_string_value(ref));
        if (!target)
            return fail(c, path,
                        "'$ref' %s does not point into this schema (only local "
                        "references are supported)",
                        json_string_value(ref));
        n->ref = def_index(c, target, json_string_value(ref));
        return 0;
    }
    if (json_object_get(o, "anyOf") || json_object_get(o, "oneOf")) {
        if (first_constraint(o))
            return fail(c, path, "anyOf/oneOf with '%s' beside it is not supported",
                        first_constraint(o));
        return read_alternatives(c, o, n, path, depth);
    }
    if (read_type(c, json_object_get(o, "type"), n, path) || read_values(c, o, n, path)) return -1;
    if (n->n_values >= 0) return 0;
    if (read_string_kw(c, o, n, path) || read_bounds(c, o, n, path)) return -1;
    if ((n->types & JSS_ARRAY) && read_array_kw(c, o, n, path, depth)) return -1;
    if ((n->types & JSS_OBJECT) && read_object_kw(c, o, n, path, depth)) return -1;
    return 0;
}

static int convert(struct conv *c, json_t *j, const char *path, int depth, struct jss **out)
{
    if (depth > MAX_DEPTH)
        return fail(c, path, "the schema is nested deeper than %d levels", MAX_DEPTH);
    if (++c->n_nodes > MAX_NODES)
        return fail(c, path, "the schema has more than %d subschemas", MAX_NODES);
    struct jss *n = *out ? *out : alloc(c->out, sizeof *n);
    *n = jss_default(path);
    *out = n;
    if (json_is_boolean(j)) {
        if (json_is_false(j)) n->types = 0;
        return 0;
    }
    if (!json_is_object(j)) return fail(c, path, "a schema must be an object or a boolean");
    return convert_object(c, j, path, depth, n);
}

int api_schema_convert(json_t *schema, int no_additional, struct api_schema *out, char *msg,
                       size_t msg_size)
{
    struct conv c = {.out = out,
                     .root = schema,
                     .no_additional = no_additional,
                     .msg = msg,
                     .msg_size = msg_size};
    memset(out, 0, sizeof *out);
    int rc = convert(&c, schema, "", 0, &out->doc.root);
    struct jss **defs = NULL;
    for (int i = 0; rc == 0 && i < c.n_defs; i++) { /* converting one may add more */
        defs = xrealloc(defs, (size_t)c.cap_defs * sizeof *defs);
        defs[i] = NULL;
        rc = convert(&c, c.def_json[i], c.def_ref[i], 0, &defs[i]);
    }
    if (defs) keep(out, defs);
    out->doc.defs = defs;
    out->doc.n_defs = c.n_defs;
    free(c.def_json);
    free(c.def_ref);
    return rc;
}
