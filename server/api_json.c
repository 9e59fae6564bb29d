/* api_json: request-body parsing and typed field access that answers 400 with an OpenAI error
 * naming the param, so handlers never see a value of the wrong type or range. */
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "server/api.h"

int api_bad(struct http_req *r, const char *param, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    http_reply_errorv(r, 400, "invalid_request_error", param, NULL, fmt, ap);
    va_end(ap);
    return -1;
}

json_t *api_parse_body(struct http_req *r)
{
    json_error_t je;
    if (r->n_body == 0) return api_bad(r, NULL, "the request body is empty; expected JSON"), NULL;
    json_t *root = json_loadb(r->body, r->n_body, JSON_REJECT_DUPLICATES, &je);
    if (!root && json_error_code(&je) == json_error_out_of_memory) {
        http_set_header(r, "Retry-After", "1");
        http_reply_error(r, 503, HTTP_ERR_UNAVAILABLE, NULL, "out_of_memory",
                         "no memory to parse the request now");
        return NULL;
    }
    if (!root)
        return api_bad(r, NULL, "invalid JSON at line %d column %d: %s", je.line, je.column, je.text), NULL;
    if (!json_is_object(root)) {
        json_decref(root);
        return api_bad(r, NULL, "the request body must be a JSON object"), NULL;
    }
    return root;
}

int api_get_bool(struct http_req *r, json_t *o, const char *key, int dflt, int *out)
{
    json_t *v = json_object_get(o, key);
    if (!v || json_is_null(v)) return *out = dflt, 0;
    if (!json_is_boolean(v)) return api_bad(r, key, "'%s' must be a boolean", key);
    *out = json_is_true(v);
    return 0;
}

int api_get_int(struct http_req *r, json_t *o, const char *key, long lo, long hi, long dflt,
                long *out)
{
    json_t *v = json_object_get(o, key);
    if (!v || json_is_null(v)) return *out = dflt, 0;
    if (!json_is_integer(v)) return api_bad(r, key, "'%s' must be an integer", key);
    json_int_t x = json_integer_value(v);
    if (x < lo || x > hi) return api_bad(r, key, "'%s' is %lld; it must be in [%ld, %ld]", key, (long long)x, lo, hi);
    *out = (long)x;
    return 0;
}

int api_get_num(struct http_req *r, json_t *o, const char *key, double lo, double hi,
                double dflt, double *out)
{
    json_t *v = json_object_get(o, key);
    if (!v || json_is_null(v)) return *out = dflt, 0;
    if (!json_is_number(v)) return api_bad(r, key, "'%s' must be a number", key);
    double x = json_number_value(v);
    if (!(x >= lo && x <= hi)) return api_bad(r, key, "'%s' is %g; it must be in [%g, %g]", key, x, lo, hi);
    *out = x;
    return 0;
}

int api_get_str(struct http_req *r, json_t *o, const char *key, const char *dflt,
                const char **out)
{
    json_t *v = json_object_get(o, key);
    if (!v || json_is_null(v)) return *out = dflt, 0;
    if (!json_is_string(v)) return api_bad(r, key, "'%s' must be a string", key);
    *out = json_string_value(v);
    return 0;
}

int api_reply_json(struct http_req *r, int status, json_t *doc)
{
    return http_reply_json(r, status, doc);
}

int api_check_loaded(struct http_req *r)
{
    struct api *a = r->app;
    if (__atomic_load_n(&a->ready, __ATOMIC_ACQUIRE)) return 0;
    http_set_header(r, "Retry-After", "5");
    http_reply_error(r, 503, HTTP_ERR_UNAVAILABLE, NULL, "model_loading", "the model is still loading");
    return -1;
}

int api_check_ready(struct http_req *r)
{
    struct api *a = r->app;
    if (__atomic_load_n(&a->draining, __ATOMIC_ACQUIRE)) {
        http_set_header(r, "Retry-After", "5");
        http_reply_error(r, 503, HTTP_ERR_UNAVAILABLE, NULL, "shutting_down", "the server is shutting down");
        return -1;
    }
    if (api_check_loaded(r) != 0) return -1;
    if (!engine_alive(a->eng, a->stall_s)) { /* queued work would only wait behind the hang */
        http_set_header(r, "Retry-After", "5");
        http_reply_error(r, 503, HTTP_ERR_UNAVAILABLE, NULL, "engine_stalled",
                         "the engine has made no progress for %g seconds", a->stall_s);
        return -1;
    }
    return 0;
}

int api_check_model(struct http_req *r, json_t *body)
{
    struct api *a = r->app;
    const char *model = NULL;
    if (api_get_str(r, body, "model", NULL, &model) != 0) return -1;
    if (!model) return 0; /* like vLLM: the served model when omitted */
    for (const char *const *n = a->names; *n; n++)
        if (strcmp(*n, model) == 0) return 0;
    http_reply_error(r, 404, HTTP_ERR_NOT_FOUND, "model", "model_not_found",
                     "The model '%s' does not exist; this server serves '%s'", model, a->names[0]);
    return -1;
}
