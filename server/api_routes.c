/* api_routes: the endpoint handlers and the route table. */
#include <stdlib.h>
#include <string.h>

#include "server/api.h"
#include "server/commands.h"
#include "server/webui.h"

/* ---- small endpoints ------------------------------------------------------------------------- */

static int h_health(struct http_req *r)
{
    struct api *a = r->app;
    const char *status = "ok";
    if (__atomic_load_n(&a->draining, __ATOMIC_ACQUIRE)) status = "draining";
    else if (!__atomic_load_n(&a->ready, __ATOMIC_ACQUIRE)) status = "loading";
    else if (!engine_alive(a->eng, a->stall_s)) status = "stalled";
    int ok = strcmp(status, "ok") == 0;
    return api_reply_json(r, ok ? 200 : 503, json_pack("{s:s}", "status", status));
}

static int h_version(struct http_req *r)
{
    return api_reply_json(r, 200, json_pack("{s:s}", "version", SEEKD_VERSION));
}

static json_t *model_card(const struct api *a, const char *name)
{
    return json_pack("{s:s, s:s, s:I, s:s, s:s, s:i}", "id", name, "object", "model", "created",
                     (json_int_t)a->created, "owned_by", "seekd", "root", a->names[0],
                     "max_model_len", a->max_model_len);
}

static int h_models(struct http_req *r)
{
    struct api *a = r->app;
    json_t *data = json_array();
    for (const char *const *n = a->names; *n; n++) json_array_append_new(data, model_card(a, *n));
    return api_reply_json(r, 200, json_pack("{s:s, s:o}", "object", "list", "data", data));
}

static int h_model(struct http_req *r)
{
    struct api *a = r->app;
    const char *id = r->path + strlen("/v1/models/");
    for (const char *const *n = a->names; *n; n++)
        if (strcmp(*n, id) == 0) return api_reply_json(r, 200, model_card(a, *n));
    return http_reply_error(r, 404, HTTP_ERR_NOT_FOUND, "model", "model_not_found",
                            "The model '%s' does not exist", id);
}

/* ---- prompts ----------------------------------------------------------------------------------- */

/* Encodes text; specials are parsed only when the client opted in. */
static int encode_text(struct http_req *r, const char *text, size_t len, int specials,
                       int add_special, struct tok_ids *out)
{
    struct api *a = r->app;
    struct err e = {0};
    unsigned flags = (specials ? TOK_PARSE_SPECIAL : 0) | (add_special ? TOK_ADD_SPECIAL : 0);
    if (tok_encode(a->tok, text, len, flags, out, &e) != 0) return api_bad(r, "prompt", "%s", e.msg);
    return 0;
}

/* Token ids given directly: every one must be in the vocabulary. */
static int read_ids(struct http_req *r, json_t *arr, const char *param, struct tok_ids *out)
{
    size_t i;
    json_t *v;
    json_array_foreach(arr, i, v) {
        if (!json_is_integer(v) || json_integer_value(v) < 0 || json_integer_value(v) >= tok_n_vocab(((struct api *)r->app)->tok))
            return api_bad(r, param, "'%s' must hold token ids in the vocabulary", param);
        tok_ids_push(out, (int32_t)json_integer_value(v));
    }
    return 0;
}

/* The text of ids (invalid UTF-8 as U+FFFD), malloc'd; *n its length (it may hold NULs). */
static char *decode_ids(const struct api *a, const struct tok_ids *ids, size_t *n)
{
    struct tok_text t = {0};
    tok_decode(a->tok, ids->v, ids->n, false, &t, NULL);
    char *s = xmalloc(t.n + 1);
    if (t.n) memcpy(s, t.s, t.n);
    s[t.n] = 0;
    *n = t.n;
    tok_text_free(&t);
    return s;
}

static char *copy_text(const char *s, size_t n)
{
    char *c = xmalloc(n + 1);
    memcpy(c, s, n);
    c[n] = 0;
    return c;
}

/* One element of "prompt": a string or a list of token ids. */
static int one_prompt(struct http_req *r, json_t *v, int specials, int add_special, int echo,
                      struct api_prompt *out)
{
    struct tok_ids ids = {0};
    int rc;
    if (json_is_string(v)) rc = encode_text(r, json_string_value(v), json_string_length(v), specials, add_special, &ids);
    else if (json_is_array(v)) rc = read_ids(r, v, "prompt", &ids);
    else rc = api_bad(r, "prompt", "'prompt' must be a string, a list of strings, or token ids");
    if (rc == 0 && ids.n == 0) rc = api_bad(r, "prompt", "the prompt is empty");
    if (rc != 0) {
        tok_ids_free(&ids);
        return -1;
    }
    out->ids = ids.v;
    out->n_ids = (int)ids.n;
    if (echo && json_is_string(v)) out->echo = copy_text(json_string_value(v), out->n_echo = json_string_length(v));
    else if (echo) out->echo = decode_ids(r->app, &ids, &out->n_echo);
    return 0;
}

static void free_prompts(struct api_prompt *p, int n)
{
    for (int i = 0; i < n; i++) free(p[i].ids), free(p[i].echo);
    free(p);
}

/* "prompt": a string, a list of strings, a list of ids, or a list of lists of ids. */
static int read_prompts(struct http_req *r, json_t *body, int echo, struct api_prompt **out,
                        int *n_out)
{
    json_t *v = json_object_get(body, "prompt");
    int specials, add;
    if (api_get_bool(r, body, "parse_special_tokens", 0, &specials) ||
        api_get_bool(r, body, "add_special_tokens", 1, &add))
        return -1;
    if (!v) return api_bad(r, "prompt", "'prompt' is required");
    int batch = json_is_array(v) && json_array_size(v) > 0 &&
                (json_is_string(json_array_get(v, 0)) || json_is_array(json_array_get(v, 0)));
    int n = batch ? (int)json_array_size(v) : 1;
    if (batch && n > 64) return api_bad(r, "prompt", "at most 64 prompts per request");
    struct api_prompt *p = xcalloc((size_t)n, sizeof *p);
    for (int i = 0; i < n; i++)
        if (one_prompt(r, batch ? json_array_get(v, (size_t)i) : v, specials, add, echo, &p[i]) != 0) {
            free_prompts(p, n);
            return -1;
        }
    *out = p;
    *n_out = n;
    return 0;
}

/* ---- tokenize / detokenize (vLLM's shapes) --------------------------------------------------- */

/* Worker: the whole request (a long text or a long list of ids is request-sized work). */
static void tokenize(struct http_req *r)
{
    struct api *a = r->app;
    struct tok_ids ids = {0};
    int add, specials;
    json_t *body = api_parse_body(r);
    if (!body) return;
    json_t *msgs = json_object_get(body, "messages");
    if (api_check_model(r, body) || api_get_bool(r, body, "add_special_tokens", 1, &add) ||
        api_get_bool(r, body, "parse_special_tokens", 0, &specials))
        goto done;
    if (msgs) {
        if (api_chat_prompt(r, body, NULL, 0, &ids, NULL) != 0) goto done;
    } else {
        json_t *p = json_object_get(body, "prompt");
        if (!json_is_string(p)) {
            api_bad(r, "prompt", "'prompt' (a string) or 'messages' is required");
            goto done;
        }
        if (encode_text(r, json_string_value(p), json_string_length(p), specials, add, &ids) != 0) goto done;
    }
    json_t *arr = json_array();
    for (size_t i = 0; i < ids.n; i++) json_array_append_new(arr, json_integer(ids.v[i]));
    api_reply_json(r, 200, json_pack("{s:i, s:i, s:o, s:n}", "count", (int)ids.n, "max_model_len",
                                     a->max_model_len, "tokens", arr, "token_strs"));
done:
    tok_ids_free(&ids);
    json_decref(body);
}

static void detokenize(struct http_req *r)
{
    struct tok_ids ids = {0};
    json_t *body = api_parse_body(r);
    if (!body) return;
    json_t *toks = json_object_get(body, "tokens");
    if (api_check_model(r, body) == 0) {
        if (!json_is_array(toks)) api_bad(r, "tokens", "'tokens' must be a list of token ids");
        else if (read_ids(r, toks, "tokens", &ids) == 0) {
            size_t n;
            char *text = decode_ids(r->app, &ids, &n);
            api_reply_json(r, 200, json_pack("{s:s%}", "prompt", text, n));
            free(text);
        }
    }
    tok_ids_free(&ids);
    json_decref(body);
}

static int h_tokenize(struct http_req *r)
{
    return api_check_ready(r) != 0 ? 0 : http_offload(r, tokenize, NULL);
}

static int h_detokenize(struct http_req *r)
{
    return api_check_ready(r) != 0 ? 0 : http_offload(r, detokenize, NULL);
}

/* ---- generation: prepared off the event loop, submitted on it ------------------------------ */

/* A generation request while a worker prepares it: parsed, checked, its grammar obtained and
 * its prompts tokenised. */
struct prep {
    json_t *body;
    struct api_params p;        /* points into body */
    struct api_prompt *prompts;
    int n_prompts;
    int chat;
};

static void prep_free(struct prep *pr)
{
    if (!pr) return;
    if (pr->prompts) free_prompts(pr->prompts, pr->n_prompts);
    api_params_release(&pr->p);
    json_decref(pr->body);
    free(pr);
}

static void prep_close(struct http_req *r, int client_gone)
{
    (void)client_gone;
    prep_free(r->user);
    r->user = NULL;
}

/* The chat prompt: messages (and tools) through the template, then the tokeniser. */
static int chat_prompts(struct http_req *r, struct prep *pr)
{
    struct tok_ids ids = {0};
    int reasoning = 0;
    if (api_chat_prompt(r, pr->body, pr->p.tools, pr->p.n_tools, &ids, &reasoning) != 0) {
        tok_ids_free(&ids);
        return -1;
    }
    pr->prompts = xcalloc(1, sizeof *pr->prompts);
    pr->prompts[0] = (struct api_prompt){.ids = ids.v, .n_ids = (int)ids.n};
    pr->n_prompts = 1;
    pr->p.gp.reasoning = reasoning;
    return 0;
}

/* Worker: body → parameters → grammar (waiting for the compile thread) → prompt ids. Replies
 * on a bad request. */
static void prep_generation(struct http_req *r)
{
    struct prep *pr = r->user;
    pr->body = api_parse_body(r);
    if (!pr->body || api_check_model(r, pr->body) != 0 ||
        api_read_params(r, pr->body, pr->chat, &pr->p) != 0 || api_params_wait(r, &pr->p) != 0)
        return;
    if (pr->chat) chat_prompts(r, pr);
    else read_prompts(r, pr->body, pr->p.echo, &pr->prompts, &pr->n_prompts);
}

/* Event loop: submits what the worker prepared. */
static int submit_generation(struct http_req *r)
{
    struct prep *pr = r->user;
    r->user = NULL;
    r->on_close = NULL;
    int rc = api_generate(r, &pr->p, pr->prompts, pr->n_prompts, pr->chat);
    pr->prompts = NULL; /* api_generate owns them */
    prep_free(pr);
    return rc < 0 && r->replied ? 0 : rc;
}

static int h_generate(struct http_req *r, int chat)
{
    if (api_check_ready(r) != 0) return 0;
    struct prep *pr = xcalloc(1, sizeof *pr);
    pr->chat = chat;
    r->user = pr;
    r->on_close = prep_close;
    return http_offload(r, prep_generation, submit_generation);
}

static int h_completions(struct http_req *r)
{
    return h_generate(r, 0);
}

static int h_chat(struct http_req *r)
{
    return h_generate(r, 1);
}

/* The chat page's routes come first, so that api_route_table can leave them out. Public: the
 * page itself holds no secret, and asks for the API key the endpoints need. */
#define N_WEBUI_ROUTES 2
static const struct http_route routes[] = {
    {"GET", "/", webui_serve, 1},
    {"HEAD", "/", webui_serve, 1},
    {"GET", "/health", h_health, 1},
    {"GET", "/version", h_version, 1},
    {"GET", "/metrics", api_metrics, 1}, /* checks the key itself unless public_metrics */
    {"GET", "/v1/models", h_models, 0},
    {"GET", "/v1/models/*", h_model, 0},
    {"POST", "/v1/completions", h_completions, 0},
    {"POST", "/v1/chat/completions", h_chat, 0},
    {"POST", "/tokenize", h_tokenize, 0},
    {"POST", "/detokenize", h_detokenize, 0},
};

const struct http_route *api_route_table(int webui, int *n)
{
    int skip = webui ? 0 : N_WEBUI_ROUTES;
    *n = (int)(sizeof routes / sizeof routes[0]) - skip;
    return routes + skip;
}
