/* api_structured: what the output must look like — OpenAI's response_format (json_object,
 * json_schema), vLLM's structured_outputs (json, regex, choice, grammar, json_object) and its
 * older guided_json / guided_regex / guided_choice / guided_grammar spellings, and tools with
 * tool_choice (none, auto, required, a named function) and parallel_tool_calls — turned into a
 * grammar for the engine (compiled once per distinct request text, then taken from the cache).
 *
 *   no tools, or tool_choice none   the output follows the format, if one is given
 *   required / a named function     the output is tool calls, their arguments following each
 *                                   function's parameters schema
 *   auto                            free text until the model opens a tool call, which is then
 *                                   constrained (a lazy grammar); with a JSON format too, the
 *                                   output is either that JSON or tool calls */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/grammar/schema.h"
#include "server/api.h"
#include "server/api_schema.h"

#define MAX_TOOLS 128

enum fmt_kind { FMT_NONE, FMT_JSON_OBJECT, FMT_SCHEMA, FMT_REGEX, FMT_CHOICE, FMT_GBNF };

/* The output format asked for, before it is compiled. */
struct fmt {
    enum fmt_kind kind;
    json_t *schema;    /* FMT_SCHEMA (a reference held) */
    const char *text;  /* FMT_REGEX, FMT_GBNF */
    json_t *choices;   /* FMT_CHOICE: a list of strings */
    const char *param; /* the request field it came from */
    const char *where; /* prefix of messages about the schema */
    enum gram_ws ws;
    int no_additional; /* disable_additional_properties */
};

enum choice { TOOLS_NONE, TOOLS_AUTO, TOOLS_REQUIRED, TOOLS_NAMED };

struct tools_req {
    json_t *tools; /* the request's list, or NULL */
    enum choice choice;
    const char *named; /* TOOLS_NAMED */
    int parallel;
};

static void fmt_clear(struct fmt *f)
{
    json_decref(f->schema);
    f->schema = NULL;
}

/* ---- reading ------------------------------------------------------------------------------- */

/* A schema given as an object, or as a string holding one (vLLM accepts both). */
static int take_schema(struct http_req *r, json_t *v, const char *param, struct fmt *f)
{
    if (json_is_string(v)) {
        json_error_t je;
        json_t *s = json_loads(json_string_value(v), JSON_REJECT_DUPLICATES, &je);
        if (!s) return api_bad(r, param, "'%s' is not valid JSON: %s", param, je.text);
        f->schema = s;
    } else if (json_is_object(v) || json_is_boolean(v)) {
        f->schema = json_incref(v);
    } else {
        return api_bad(r, param, "'%s' must be a JSON Schema", param);
    }
    f->kind = FMT_SCHEMA;
    return 0;
}

static int set_kind(struct http_req *r, struct fmt *f, const char *param)
{
    if (f->kind != FMT_NONE)
        return api_bad(r, param, "'%s' cannot be combined with '%s': give one output format", param,
                       f->param);
    f->param = param;
    return 0;
}

static int read_response_format(struct http_req *r, json_t *body, struct fmt *f)
{
    json_t *rf = json_object_get(body, "response_format");
    if (!rf || json_is_null(rf)) return 0;
    const char *type = json_string_value(json_object_get(rf, "type"));
    if (!json_is_object(rf) || !type)
        return api_bad(r, "response_format", "'response_format' must be an object with a 'type'");
    if (!strcmp(type, "text")) return 0;
    if (set_kind(r, f, "response_format")) return -1;
    if (!strcmp(type, "json_object")) return f->kind = FMT_JSON_OBJECT, 0;
    if (strcmp(type, "json_schema"))
        return api_bad(r, "response_format",
                       "response_format type '%s' is not supported (text, "
                       "json_object, json_schema)",
                       type);
    json_t *js = json_object_get(rf, "json_schema");
    json_t *schema = json_object_get(js, "schema");
    if (!json_is_object(js) || !schema)
        return api_bad(r, "response_format",
                       "response_format json_schema needs "
                       "{\"json_schema\": {\"name\": ..., \"schema\": {...}}}");
    json_t *name = json_object_get(js, "name");
    if (name && !json_is_string(name))
        return api_bad(r, "response_format", "response_format.json_schema.name must be a string");
    f->where = "response_format.json_schema.schema";
    return take_schema(r, schema, "response_format", f);
}

/* structured_outputs (vLLM) or one guided_* field: each key names a kind. */
static int read_vllm(struct http_req *r, json_t *o, const char *param, const char *prefix,
                     struct fmt *f)
{
    static const struct {
        const char *key;
        enum fmt_kind kind;
    } keys[] = {{"json", FMT_SCHEMA},
                {"regex", FMT_REGEX},
                {"choice", FMT_CHOICE},
                {"grammar", FMT_GBNF},
                {"json_object", FMT_JSON_OBJECT}};
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; i++) {
        char key[64];
        snprintf(key, sizeof key, "%s%s", prefix, keys[i].key);
        json_t *v = json_object_get(o, key);
        if (!v || json_is_null(v) || (keys[i].kind == FMT_JSON_OBJECT && json_is_false(v)))
            continue;
        const char *p = param ? param : key;
        if (set_kind(r, f, p)) return -1;
        f->where = p;
        switch (keys[i].kind) {
        case FMT_SCHEMA:
            if (take_schema(r, v, p, f)) return -1;
            break;
        case FMT_REGEX:
        case FMT_GBNF:
            if (!json_is_string(v)) return api_bad(r, p, "'%s' must be a string", key);
            f->kind = keys[i].kind, f->text = json_string_value(v);
            break;
        case FMT_CHOICE:
            if (!json_is_array(v) || !json_array_size(v) || json_array_size(v) > 10000)
                return api_bad(r, p, "'%s' must be a list of 1 to 10000 strings", key);
            for (size_t k = 0; k < json_array_size(v); k++)
                if (!json_is_string(json_array_get(v, k)))
                    return api_bad(r, p, "'%s' must be a list of strings", key);
            f->kind = FMT_CHOICE, f->choices = v;
            break;
        default:
            if (!json_is_true(v)) return api_bad(r, p, "'%s' must be a boolean", key);
            f->kind = FMT_JSON_OBJECT;
        }
    }
    return 0;
}

static int read_structured_outputs(struct http_req *r, json_t *body, struct fmt *f)
{
    json_t *so = json_object_get(body, "structured_outputs");
    if (so && !json_is_null(so)) {
        if (!json_is_object(so))
            return api_bad(r, "structured_outputs", "'structured_outputs' must be an object");
        static const char *const refused[] = {"whitespace_pattern", "structural_tag"};
        for (size_t i = 0; i < 2; i++) {
            json_t *v = json_object_get(so, refused[i]);
            if (v && !json_is_null(v))
                return api_bad(r, "structured_outputs", "structured_outputs.%s is not supported",
                               refused[i]);
        }
        int no_ws = 0;
        if (api_get_bool(r, so, "disable_any_whitespace", 0, &no_ws) ||
            api_get_bool(r, so, "disable_additional_properties", 0, &f->no_additional) ||
            read_vllm(r, so, "structured_outputs", "", f))
            return -1;
        if (no_ws) f->ws = GRAM_WS_NONE;
    }
    const char *key;
    json_t *v;
    json_object_foreach(body, key, v)
    {
        if (strncmp(key, "guided_", 7) || json_is_null(v)) continue;
        if (!strcmp(key, "guided_decoding_backend")) continue; /* a hint: there is one backend */
        if (strcmp(key, "guided_json") && strcmp(key, "guided_regex") &&
            strcmp(key, "guided_choice") && strcmp(key, "guided_grammar") &&
            strcmp(key, "guided_json_object"))
            return api_bad(r, key, "'%s' is not supported", key);
    }
    return read_vllm(r, body, NULL, "guided_", f);
}

/* tools: [{"type": "function", "function": {"name", "description", "parameters"}}]. */
static int check_tool(struct http_req *r, json_t *t, size_t i, const char **names)
{
    char param[48];
    snprintf(param, sizeof param, "tools[%zu]", i);
    json_t *fn = json_object_get(t, "function");
    const char *type = json_string_value(json_object_get(t, "type"));
    const char *name = json_string_value(json_object_get(fn, "name"));
    if (!json_is_object(t) || (type && strcmp(type, "function")) || !json_is_object(fn) || !name)
        return api_bad(r, "tools",
                       "%s must be {\"type\": \"function\", \"function\": {\"name\": ...}}", param);
    size_t n = strlen(name);
    if (!n || n > 64 ||
        strspn(name, "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_-.") != n)
        return api_bad(r, "tools",
                       "%s.function.name must be 1 to 64 letters, digits, '_', '-' or '.'", param);
    for (size_t k = 0; k < i; k++)
        if (!strcmp(names[k], name)) return api_bad(r, "tools", "two tools are named '%s'", name);
    json_t *d = json_object_get(fn, "description"), *ps = json_object_get(fn, "parameters");
    if (d && !json_is_null(d) && !json_is_string(d))
        return api_bad(r, "tools", "%s.function.description must be a string", param);
    if (ps && !json_is_null(ps) && !json_is_object(ps))
        return api_bad(r, "tools", "%s.function.parameters must be a JSON Schema object", param);
    names[i] = name;
    return 0;
}

static int read_tool_choice(struct http_req *r, json_t *body, struct tools_req *t,
                            const char **names, size_t n)
{
    json_t *tc = json_object_get(body, "tool_choice");
    t->choice = t->tools ? TOOLS_AUTO : TOOLS_NONE;
    if (!tc || json_is_null(tc)) return 0;
    if (!t->tools)
        return api_bad(r, "tool_choice", "'tool_choice' is only allowed when 'tools' are given");
    const char *s = json_string_value(tc);
    if (s) {
        if (!strcmp(s, "none"))
            t->choice = TOOLS_NONE;
        else if (!strcmp(s, "auto"))
            t->choice = TOOLS_AUTO;
        else if (!strcmp(s, "required"))
            t->choice = TOOLS_REQUIRED;
        else
            return api_bad(r, "tool_choice",
                           "'tool_choice' must be none, auto, required or "
                           "{\"type\": \"function\", \"function\": {\"name\": ...}}");
        return 0;
    }
    const char *name = json_string_value(json_object_get(json_object_get(tc, "function"), "name"));
    if (!name)
        return api_bad(r, "tool_choice",
                       "'tool_choice' must name a function: "
                       "{\"type\": \"function\", \"function\": {\"name\": ...}}");
    for (size_t i = 0; i < n; i++)
        if (!strcmp(names[i], name)) return t->choice = TOOLS_NAMED, t->named = names[i], 0;
    return api_bad(r, "tool_choice", "tool_choice names '%s', which is not among the tools", name);
}

static int read_tools(struct http_req *r, json_t *body, int chat, struct tools_req *t)
{
    json_t *tools = json_object_get(body, "tools");
    if (tools && !json_is_null(tools)) {
        if (!chat) return api_bad(r, "tools", "'tools' is only supported on /v1/chat/completions");
        if (!json_is_array(tools) || json_array_size(tools) > MAX_TOOLS)
            return api_bad(r, "tools", "'tools' must be a list of at most %d functions", MAX_TOOLS);
        if (json_array_size(tools)) t->tools = tools;
    }
    const char *names[MAX_TOOLS];
    size_t n = t->tools ? json_array_size(t->tools) : 0;
    for (size_t i = 0; i < n; i++)
        if (check_tool(r, json_array_get(t->tools, i), i, names)) return -1;
    if (read_tool_choice(r, body, t, names, n)) return -1;
    return api_get_bool(r, body, "parallel_tool_calls", 1, &t->parallel);
}

/* ---- the prompt's view of the tools -------------------------------------------------------- */

static void prompt_tools(json_t *tools, struct api_params *p)
{
    size_t n = json_array_size(tools);
    p->tools = xcalloc(n + 1, sizeof *p->tools);
    p->tool_texts = xcalloc(n + 1, sizeof *p->tool_texts);
    for (size_t i = 0; i < n; i++) {
        json_t *fn = json_object_get(json_array_get(tools, i), "function");
        json_t *ps = json_object_get(fn, "parameters");
        p->tool_texts[i] = ps && !json_is_null(ps) ? json_dumps(ps, JSON_COMPACT) : strdup("{}");
        p->tools[i] =
            (struct chat_tool){.name = json_string_value(json_object_get(fn, "name")),
                               .description = json_string_value(json_object_get(fn, "description")),
                               .parameters = p->tool_texts[i]};
    }
    p->n_tools = (int)n;
}

/* ---- compiling ---------------------------------------------------------------------------------
 */

/* The cache key of a grammar: everything that shapes it, as text. */
struct key {
    char *s;
    size_t n;
    FILE *f;
};

static void key_open(struct key *k)
{
    k->s = NULL, k->n = 0;
    k->f = open_memstream(&k->s, &k->n);
    if (!k->f) ERR_FATAL("out of memory");
}

static void key_json(struct key *k, json_t *v)
{
    char *t = v ? json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;
    fprintf(k->f, "%zu:%s|", t ? strlen(t) : 0, t ? t : "");
    free(t);
}

static void key_close(struct key *k)
{
    fclose(k->f);
}

static void key_fmt(struct key *k, const struct fmt *f)
{
    fprintf(k->f, "fmt%d|ws%d|na%d|", f->kind, f->ws, f->no_additional);
    if (f->text) fprintf(k->f, "%zu:%s|", strlen(f->text), f->text);
    key_json(k, f->kind == FMT_SCHEMA ? f->schema : f->choices);
}

/* A schema converted into s; -1 with the message (prefixed with where) in e. */
static int convert(json_t *schema, int no_additional, const char *where, struct api_schema *s,
                   struct err *e)
{
    char msg[480];
    if (api_schema_convert(schema, no_additional, s, msg, sizeof msg) == 0) return 0;
    return err_set(e, "%s: %s", where, msg);
}

static struct gram *compile_fmt(struct api *a, struct fmt *f, struct err *e)
{
    struct api_schema s = {0};
    struct gram *g = NULL;
    const char *where = f->where ? f->where : f->param;
    switch (f->kind) {
    case FMT_JSON_OBJECT:
        g = gram_json_object(f->ws, NULL, e);
        break;
    case FMT_SCHEMA:
        if (convert(f->schema, f->no_additional, where, &s, e) == 0)
            g = gram_from_schema(&s.doc, f->ws, NULL, e);
        break;
    case FMT_REGEX:
        g = gram_from_regex(f->text, strlen(f->text), NULL, e);
        break;
    case FMT_GBNF:
        g = gram_from_gbnf(f->text, strlen(f->text), tok_n_vocab(a->tok), NULL, e);
        break;
    case FMT_CHOICE: {
        size_t n = json_array_size(f->choices);
        const char **c = xmalloc(n * sizeof *c);
        size_t *len = xmalloc(n * sizeof *len);
        for (size_t i = 0; i < n; i++) {
            json_t *v = json_array_get(f->choices, i);
            c[i] = json_string_value(v), len[i] = json_string_length(v);
        }
        g = gram_from_choices(c, len, (int)n, NULL, e);
        free(c);
        free(len);
        break;
    }
    default:
        break;
    }
    if (!g && f->kind != FMT_SCHEMA)
        err_prefix(e, "%s", where);
    else if (!g && !strstr(e->msg, where))
        err_prefix(e, "%s", where);
    api_schema_free(&s);
    return g;
}

/* The functions a call may name (all, or the named one) with their converted parameters. */
static int tool_docs(struct tools_req *t, struct api_schema *docs, struct gram_tool *fns, int *n,
                     struct err *e)
{
    *n = 0;
    for (size_t i = 0; i < json_array_size(t->tools); i++) {
        json_t *fn = json_object_get(json_array_get(t->tools, i), "function");
        const char *name = json_string_value(json_object_get(fn, "name"));
        if (t->choice == TOOLS_NAMED && strcmp(name, t->named)) continue;
        json_t *ps = json_object_get(fn, "parameters");
        char where[64];
        snprintf(where, sizeof where, "tools[%zu].function.parameters", i);
        if (convert(ps && !json_is_null(ps) ? ps : json_true(), 0, where, &docs[*n], e)) return -1;
        fns[*n] = (struct gram_tool){.name = name, .params = &docs[*n].doc};
        ++*n;
    }
    return 0;
}

static struct gram *compile_tools(struct api *a, struct tools_req *t, struct fmt *answer, bool lazy,
                                  struct gram_tools *gt, struct err *e)
{
    struct api_schema docs[MAX_TOOLS + 1], ans = {0};
    struct gram_tool fns[MAX_TOOLS];
    memset(docs, 0, sizeof docs);
    struct gram *g = NULL;
    int n = 0;
    if (tool_docs(t, docs, fns, &n, e) == 0 &&
        (answer->kind != FMT_SCHEMA ||
         convert(answer->schema, answer->no_additional, answer->where, &ans, e) == 0)) {
        gt->tools = fns, gt->n_tools = n, gt->parallel = t->parallel, gt->lazy = lazy;
        gt->ws = answer->ws;
        gt->answer = answer->kind == FMT_SCHEMA ? &ans.doc : NULL;
        gt->answer_object = answer->kind == FMT_JSON_OBJECT;
        g = gram_tools(gt, tok_n_vocab(a->tok), NULL, e);
        if (!g) err_prefix(e, "tools");
    }
    for (int i = 0; i <= n && i <= MAX_TOOLS; i++) api_schema_free(&docs[i]);
    api_schema_free(&ans);
    return g;
}

/* ---- compiling off the HTTP thread ------------------------------------------------------------
 */

/* Everything one compile needs, owned (deep copies), so the compile thread shares nothing with
 * the request, which may even be gone before it finishes. */
struct deferred {
    struct api *a;
    struct fmt f;
    struct tools_req t;
    struct gram_tools gt;
    bool lazy, tools;
    struct key k;
};

static struct gram *deferred_run(void *arg, struct err *e)
{
    struct deferred *d = arg;
    struct gram *g = d->tools ? compile_tools(d->a, &d->t, &d->f, d->lazy, &d->gt, e)
                              : compile_fmt(d->a, &d->f, e);
    if (g && d->a->grammars) gcache_put(d->a->grammars, d->k.s, d->k.n, g);
    return g;
}

static void deferred_free(void *arg)
{
    struct deferred *d = arg;
    json_decref(d->f.schema);
    json_decref(d->f.choices);
    json_decref(d->t.tools);
    free((char *)d->f.text);
    free((char *)d->t.named);
    free(d->k.s);
    free(d);
}

static struct deferred *defer(struct api *a, const struct fmt *f, const struct tools_req *t,
                              const struct gram_tools *gt, bool lazy, struct key *k)
{
    struct deferred *d = xcalloc(1, sizeof *d);
    d->a = a, d->f = *f, d->lazy = lazy, d->k = *k;
    d->f.schema = f->schema ? json_deep_copy(f->schema) : NULL;
    d->f.choices = f->choices ? json_deep_copy(f->choices) : NULL;
    d->f.text = f->text ? strdup(f->text) : NULL;
    if (t) {
        d->tools = true, d->t = *t, d->gt = *gt;
        d->t.tools = json_deep_copy(t->tools);
        d->t.named = t->named ? strdup(t->named) : NULL;
    }
    k->s = NULL;
    return d;
}

/* The grammar under key: from the cache, or compiled on the compile thread (the request waits:
 * p->compiling). 0, or -1 after replying (the queue is full). */
static int obtain(struct http_req *r, struct api_params *p, struct deferred *d, const char *param)
{
    struct api *a = r->app;
    struct gram *g = a->grammars ? gcache_get(a->grammars, d->k.s, d->k.n) : NULL;
    if (g || !a->compiler) { /* cached, or no thread to compile on (compile here) */
        struct err e = {0};
        if (!g) g = deferred_run(d, &e);
        deferred_free(d);
        if (!g) return api_bad(r, param, "%s", e.msg);
        p->gp.grammar = g;
        return 0;
    }
    p->compiling = api_compile_start(a->compiler, deferred_run, d, deferred_free);
    p->compiling_param = param;
    if (p->compiling) return 0;
    deferred_free(d);
    http_set_header(r, "Retry-After", "1");
    http_reply_error(r, 503, "server_error", NULL, "server_busy",
                     "too many output grammars are being compiled; retry shortly");
    return -1;
}

int api_params_wait(struct http_req *r, struct api_params *p)
{
    if (!p->compiling) return 0;
    api_compile_wait(p->compiling);
    struct err e = {0};
    struct gram *g = api_compile_result(p->compiling, &e);
    api_compile_drop(p->compiling);
    p->compiling = NULL;
    if (!g) return api_bad(r, p->compiling_param, "%s", e.msg);
    p->gp.grammar = g;
    return 0;
}

/* Tools in play: the grammar of the calls, the parser, the trigger of a lazy grammar. */
static int tools_grammar(struct http_req *r, struct tools_req *t, struct fmt *f,
                         struct api_params *p)
{
    struct api *a = r->app;
    struct gram_tools gt = {0};
    enum tc_format tf = chat_tool_format(a->chat, gt.marker);
    gt.format = tf == TC_HERMES ? GRAM_TOOLS_HERMES : GRAM_TOOLS_DEEPSEEK;
    bool lazy = t->choice == TOOLS_AUTO && f->kind == FMT_NONE;
    if (t->choice == TOOLS_AUTO && f->kind != FMT_NONE && f->kind != FMT_SCHEMA &&
        f->kind != FMT_JSON_OBJECT)
        return api_bad(r, f->param,
                       "with tools, the output format can only be JSON (json_object or "
                       "a JSON schema)");
    if (t->choice != TOOLS_AUTO) f->kind = FMT_NONE; /* the calls are the answer */
    struct key k;
    key_open(&k);
    fprintf(k.f, "tools|%d|%d|%s|%d|%d|", tf, t->choice, t->named ? t->named : "", t->parallel,
            lazy);
    key_fmt(&k, f);
    key_json(&k, t->tools);
    key_close(&k);
    p->gp.tool_format = tf;
    memcpy(p->gp.tool_markers, gt.marker, sizeof gt.marker);
    if (lazy && tf == TC_HERMES)
        p->gp.grammar_trigger_text = "<tool_call>";
    else if (lazy)
        p->gp.grammar_trigger = gt.marker[TC_CALLS_BEGIN];
    return obtain(r, p, defer(a, f, t, &gt, lazy, &k), "tools");
}

static int format_grammar(struct http_req *r, struct fmt *f, struct api_params *p)
{
    struct key k;
    key_open(&k);
    key_fmt(&k, f);
    key_close(&k);
    return obtain(r, p, defer(r->app, f, NULL, NULL, false, &k), f->param);
}

int api_read_structured(struct http_req *r, json_t *body, int chat, struct api_params *p)
{
    struct fmt f = {.ws = GRAM_WS_COMPACT};
    struct tools_req t = {0};
    int rc = -1;
    if (read_response_format(r, body, &f) || read_structured_outputs(r, body, &f) ||
        read_tools(r, body, chat, &t))
        goto out;
    if (t.tools) prompt_tools(t.tools, p);
    if (t.tools && t.choice != TOOLS_NONE)
        rc = tools_grammar(r, &t, &f, p);
    else
        rc = f.kind != FMT_NONE ? format_grammar(r, &f, p) : 0;
out:
    fmt_clear(&f);
    return rc;
}
