/* gencfg: sampling defaults from generation_config.json or a GGUF's general.sampling keys. */
#include "engine/model/gencfg.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "engine/model/config.h"

/* One numeric key of generation_config.json into *out when present; -1 naming it when it is
 * not a number in [lo, hi]. */
static int json_num(json_t *root, const char *key, double lo, double hi, int *has, double *out,
                    struct err *e)
{
    json_t *v = json_object_get(root, key);
    if (!v || json_is_null(v)) return 0;
    if (!json_is_number(v)) return err_set(e, "'%s' must be a number", key);
    double x = json_number_value(v);
    if (!(x >= lo && x <= hi)) return err_set(e, "'%s' is %g, outside [%g, %g]", key, x, lo, hi);
    *out = x, *has = 1;
    return 0;
}

static int from_json(struct gen_defaults *d, json_t *root, struct err *e)
{
    double t = 0, tp = 0, k = 0, mp = 0, rp = 0;
    if (!json_is_object(root)) return err_set(e, "not a JSON object");
    if (json_num(root, "temperature", 0, 2, &d->has_temperature, &t, e) ||
        json_num(root, "top_p", 1e-9, 1, &d->has_top_p, &tp, e) ||
        json_num(root, "top_k", -1, 1 << 30, &d->has_top_k, &k, e) ||
        json_num(root, "min_p", 0, 1, &d->has_min_p, &mp, e) ||
        json_num(root, "repetition_penalty", 1e-6, 2, &d->has_repetition_penalty, &rp, e))
        return -1;
    d->temperature = (float)t, d->top_p = (float)tp, d->top_k = (int32_t)k;
    d->min_p = (float)mp, d->repetition_penalty = (float)rp;
    if (d->has_top_k && d->top_k == 0) d->top_k = -1; /* transformers: 0 is off */
    return 0;
}

static int from_dir(struct gen_defaults *d, const char *dir, struct err *e)
{
    char path[4096];
    struct stat st;
    snprintf(path, sizeof path, "%s/generation_config.json", dir);
    if (stat(path, &st) != 0) return 0;
    json_t *root = config_json(path, 1u << 20, e);
    if (!root) return -1;
    int rc = from_json(d, root, e);
    json_decref(root);
    if (rc) return err_prefix(e, "%s", path);
    snprintf(d->source, sizeof d->source, "generation_config.json");
    return 0;
}

/* One general.sampling key: a number in [lo, hi] into *out when present. */
static int gguf_key(const struct gguf_set *g, const char *key, double lo, double hi, int *has,
                    double *out, struct err *e)
{
    double x = -1e300;
    if (gguf_num(g, key, lo, hi, 0, &x, e) != 0) return -1;
    if (x != -1e300) *out = x, *has = 1;
    return 0;
}

static int from_gguf(struct gen_defaults *d, const struct gguf_set *m, struct err *e)
{
    double t = 0, tp = 0, k = 0, mp = 0;
    if (gguf_key(m, "general.sampling.temp", 0, 2, &d->has_temperature, &t, e) ||
        gguf_key(m, "general.sampling.top_p", 1e-9, 1, &d->has_top_p, &tp, e) ||
        gguf_key(m, "general.sampling.top_k", -1, 1 << 30, &d->has_top_k, &k, e) ||
        gguf_key(m, "general.sampling.min_p", 0, 1, &d->has_min_p, &mp, e))
        return -1;
    if (d->has_temperature || d->has_top_p || d->has_top_k || d->has_min_p) {
        d->temperature = (float)t, d->top_p = (float)tp, d->top_k = k ? (int32_t)k : -1;
        d->min_p = (float)mp;
        snprintf(d->source, sizeof d->source, "the GGUF's general.sampling keys");
        return 0;
    }
    *d = (struct gen_defaults){.has_temperature = 1, .has_top_p = 1, .has_top_k = 1, .has_min_p = 1,
                               .temperature = 0.8f, .top_p = 0.95f, .top_k = 40, .min_p = 0.05f};
    snprintf(d->source, sizeof d->source, "llama.cpp's defaults for GGUF files");
    return 0;
}

int gencfg_load(struct gen_defaults *d, const struct gguf_set *g, const char *dir, struct err *e)
{
    *d = (struct gen_defaults){0};
    return g ? from_gguf(d, g, e) : from_dir(d, dir, e);
}

void gencfg_describe(const struct gen_defaults *d, char *buf, size_t n)
{
    size_t k = 0;
    buf[0] = 0;
#define PUT(has, ...)                                                              \
    if ((has) && k < n) k += (size_t)snprintf(buf + k, n - k, __VA_ARGS__)
    PUT(d->has_temperature, "%stemperature %g", k ? ", " : "", d->temperature);
    PUT(d->has_top_k, "%stop_k %d", k ? ", " : "", (int)d->top_k);
    PUT(d->has_top_p, "%stop_p %g", k ? ", " : "", d->top_p);
    PUT(d->has_min_p, "%smin_p %g", k ? ", " : "", d->min_p);
    PUT(d->has_repetition_penalty, "%srepetition_penalty %g", k ? ", " : "", d->repetition_penalty);
#undef PUT
}
