/* api_params: the sampling and stopping fields shared by /v1/chat/completions and
 * /v1/completions, validated into struct gen_params (ranges as OpenAI documents them, vLLM's
 * extensions top_k, min_p, repetition_penalty, ignore_eos, stop_token_ids, skip_special_tokens). */
#include <stdlib.h>
#include <string.h>

#include "server/api.h"

static int read_stop(struct http_req *r, json_t *body, struct api_params *p)
{
    json_t *v = json_object_get(body, "stop");
    if (!v || json_is_null(v)) return 0;
    if (json_is_string(v)) {
        p->stop[p->gp.n_stop++] = json_string_value(v);
    } else if (json_is_array(v)) {
        if (json_array_size(v) > GEN_MAX_STOP) return api_bad(r, "stop", "at most %d stop sequences", GEN_MAX_STOP);
        size_t i;
        json_t *s;
        json_array_foreach(v, i, s) {
            if (!json_is_string(s)) return api_bad(r, "stop", "'stop' must be a string or a list of strings");
            p->stop[p->gp.n_stop++] = json_string_value(s);
        }
    } else {
        return api_bad(r, "stop", "'stop' must be a string or a list of strings");
    }
    for (int i = 0; i < p->gp.n_stop; i++)
        if (!p->stop[i][0]) return api_bad(r, "stop", "stop sequences must not be empty");
    p->gp.stop = p->stop;
    return 0;
}

static int read_bias(struct http_req *r, json_t *body, struct api_params *p)
{
    json_t *v = json_object_get(body, "logit_bias");
    if (!v || json_is_null(v)) return 0;
    if (!json_is_object(v)) return api_bad(r, "logit_bias", "'logit_bias' must be an object of token id → bias");
    if (json_object_size(v) > sizeof p->bias / sizeof p->bias[0])
        return api_bad(r, "logit_bias", "at most %zu logit_bias entries", sizeof p->bias / sizeof p->bias[0]);
    const char *key;
    json_t *b;
    int n = 0;
    long n_vocab = tok_n_vocab(((struct api *)r->app)->tok);
    json_object_foreach(v, key, b) {
        char *end;
        long id = strtol(key, &end, 10);
        if (!key[0] || *end || id < 0 || id >= n_vocab)
            return api_bad(r, "logit_bias", "logit_bias key '%s' is not a token id in the "
                                            "vocabulary (0..%ld)", key, n_vocab - 1);
        if (!json_is_number(b) || json_number_value(b) < -100 || json_number_value(b) > 100)
            return api_bad(r, "logit_bias", "logit_bias for token %ld must be a number in [-100, 100]", id);
        p->bias[n++] = (struct smp_bias){.token = (int32_t)id, .bias = (float)json_number_value(b)};
    }
    p->gp.sampling.logit_bias = p->bias;
    p->gp.sampling.n_logit_bias = n;
    return 0;
}

static int read_stop_ids(struct http_req *r, json_t *body, struct api_params *p)
{
    json_t *v = json_object_get(body, "stop_token_ids");
    int32_t n_vocab = tok_n_vocab(((struct api *)r->app)->tok);
    if (!v || json_is_null(v)) return 0;
    if (!json_is_array(v) || json_array_size(v) > sizeof p->stop_ids / sizeof p->stop_ids[0])
        return api_bad(r, "stop_token_ids", "'stop_token_ids' must be a list of at most 64 token ids");
    size_t i;
    json_t *t;
    json_array_foreach(v, i, t) {
        if (!json_is_integer(t) || json_integer_value(t) < 0 || json_integer_value(t) >= n_vocab)
            return api_bad(r, "stop_token_ids", "'stop_token_ids' must hold token ids in the "
                                                "vocabulary (0..%d)", (int)n_vocab - 1);
        p->stop_ids[p->gp.n_stop_token_ids++] = (int32_t)json_integer_value(t);
    }
    p->gp.stop_token_ids = p->stop_ids;
    return 0;
}

/* logprobs: a boolean plus top_logprobs in chat; an integer 0..20 (alternatives) in completions. */
static int read_logprobs(struct http_req *r, json_t *body, int chat, struct smp_params *s)
{
    long top = 0;
    if (chat) {
        int on;
        if (api_get_bool(r, body, "logprobs", 0, &on) || api_get_int(r, body, "top_logprobs", 0, 20, 0, &top))
            return -1;
        if (top > 0 && !on) return api_bad(r, "top_logprobs", "'top_logprobs' needs 'logprobs': true");
        s->logprobs = on;
    } else {
        json_t *v = json_object_get(body, "logprobs");
        if (v && json_is_boolean(v)) return api_bad(r, "logprobs", "'logprobs' must be an integer in [0, 20] here");
        if (api_get_int(r, body, "logprobs", 0, 20, -1, &top)) return -1;
        s->logprobs = top >= 0;
        if (top < 0) top = 0;
    }
    s->n_logprobs = (int)top;
    return 0;
}

static int read_max_tokens(struct http_req *r, json_t *body, int chat, struct gen_params *g)
{
    long mt, mct, dflt = ((struct api *)r->app)->default_max_tokens;
    if (!dflt) dflt = chat ? -1 : 16;
    if (api_get_int(r, body, "max_tokens", 1, 1L << 30, dflt, &mt) ||
        api_get_int(r, body, "max_completion_tokens", 1, 1L << 30, -1, &mct))
        return -1;
    g->max_tokens = (int)(mct > 0 ? mct : mt);
    return 0;
}

static int read_sampling(struct http_req *r, json_t *body, struct smp_params *s)
{
    const struct gen_defaults *g = &((struct api *)r->app)->sampling; /* the model's defaults */
    double t, tp, mp, pp, fp, rp;
    long k;
    json_t *seed = json_object_get(body, "seed");
    if (api_get_num(r, body, "temperature", 0, 2, g->has_temperature ? g->temperature : 1, &t) ||
        api_get_num(r, body, "top_p", 0, 1, g->has_top_p ? g->top_p : 1, &tp) ||
        api_get_int(r, body, "top_k", -1, 1L << 30, g->has_top_k ? g->top_k : -1, &k) ||
        api_get_num(r, body, "min_p", 0, 1, g->has_min_p ? g->min_p : 0, &mp) ||
        api_get_num(r, body, "presence_penalty", -2, 2, 0, &pp) ||
        api_get_num(r, body, "frequency_penalty", -2, 2, 0, &fp) ||
        api_get_num(r, body, "repetition_penalty", 1e-6, 2,
                    g->has_repetition_penalty ? g->repetition_penalty : 1, &rp))
        return -1;
    if (tp <= 0) return api_bad(r, "top_p", "'top_p' must be in (0, 1]");
    *s = smp_params_default();
    s->temperature = (float)t, s->top_p = (float)tp, s->top_k = (int32_t)k, s->min_p = (float)mp;
    s->presence_penalty = (float)pp, s->frequency_penalty = (float)fp, s->repetition_penalty = (float)rp;
    if (seed && !json_is_null(seed)) {
        if (!json_is_integer(seed)) return api_bad(r, "seed", "'seed' must be an integer");
        s->seed = (uint64_t)json_integer_value(seed);
        s->has_seed = 1;
    }
    return 0;
}

static int read_stream(struct http_req *r, json_t *body, struct api_params *p)
{
    if (api_get_bool(r, body, "stream", 0, &p->stream)) return -1;
    json_t *so = json_object_get(body, "stream_options");
    if (!so || json_is_null(so)) return 0;
    if (!json_is_object(so)) return api_bad(r, "stream_options", "'stream_options' must be an object");
    if (!p->stream) return api_bad(r, "stream_options", "'stream_options' is only allowed when 'stream' is true");
    return api_get_bool(r, so, "include_usage", 0, &p->include_usage);
}

/* ---- fields not supported yet ------------------------------------------------------------
 * Each of these would change what the request means. Ignoring one would silently answer a
 * different question, so a non-neutral value gets a 400 naming it. Support for one of them
 * (structured outputs: guided_*) replaces its refusal here. */
static int refuse_unsupported(struct http_req *r, json_t *body, long n)
{
    json_t *best_of = json_object_get(body, "best_of");
    if (best_of && !json_is_null(best_of) &&
        !(json_is_integer(best_of) && json_integer_value(best_of) == n))
        return api_bad(r, "best_of", "'best_of' other than n is not supported");
    json_t *tmpl = json_object_get(body, "chat_template");
    if (tmpl && !json_is_null(tmpl))
        return api_bad(r, "chat_template", "a request-supplied 'chat_template' is not supported; "
                                           "the server's template is set by its chat_template option");
    return 0; /* guided_* fields other than the supported ones: api_read_structured */
}

int api_read_params(struct http_req *r, json_t *body, int chat, struct api_params *p)
{
    long n;
    const char *user = NULL;
    memset(p, 0, sizeof *p);
    if (read_sampling(r, body, &p->gp.sampling) || read_logprobs(r, body, chat, &p->gp.sampling) ||
        read_max_tokens(r, body, chat, &p->gp) || read_stop(r, body, p) || read_bias(r, body, p) ||
        read_stop_ids(r, body, p) || read_stream(r, body, p) ||
        api_get_int(r, body, "n", 1, GEN_MAX_CHOICES, 1, &n) ||
        api_get_bool(r, body, "ignore_eos", 0, &p->gp.ignore_eos) ||
        api_get_bool(r, body, "skip_special_tokens", 1, &p->gp.skip_special_tokens) ||
        api_get_str(r, body, "user", NULL, &user) ||
        api_get_bool(r, body, "return_tokens_as_token_ids", 0, &p->tokens_as_ids) || (!chat && api_get_bool(r, body, "echo", 0, &p->echo)) ||
        refuse_unsupported(r, body, n))
        return -1;
    p->gp.n = (int)n;
    p->gp.grammar_trigger = -1;
    p->body = body;
    return api_read_structured(r, body, chat, p);
}

void api_params_release(struct api_params *p)
{
    api_compile_drop(p->compiling);
    p->compiling = NULL;
    gram_unref(p->gp.grammar);
    p->gp.grammar = NULL;
    for (int i = 0; i < p->n_tools; i++) free(p->tool_texts[i]);
    free(p->tool_texts);
    free(p->tools);
    p->tools = NULL, p->tool_texts = NULL, p->n_tools = 0;
}
