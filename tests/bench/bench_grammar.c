/* bench_grammar: what constrained decoding costs seekd on a real vocabulary — compiling each
 * schema, and computing one token mask per decoding step, measured by replaying the tokens of a
 * valid document (cold: the grammar just compiled, its classes classified as they are first met;
 * warm: the same grammar again, as the next request with that schema sees it), plus applying a
 * mask in the sampler. One JSON line per case on stdout; tests/bench/grammar.sh runs it beside
 * llguidance and llama.cpp on the same token sequences.
 *
 *     bench_grammar TOKENIZER_DIR CASES.jsonl
 *
 * CASES.jsonl: {"name": ..., "schema": {...}, "ids": [...]} per line. */
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "engine/grammar/match.h"
#include "engine/grammar/schema.h"
#include "engine/sampler.h"
#include "server/api_schema.c"

/* CPU time of this thread: on a machine shared with other work, wall time measures the others. */
static double now_us(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_THREAD_CPUTIME_ID, &ts);
    return (double)ts.tv_sec * 1e6 + (double)ts.tv_nsec * 1e-3;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

struct pass {
    double mean, p50, p99, max;
    int rejected_at; /* -1: every token of the document was allowed */
};

/* One replay: a mask per step (timed), the document's token checked against it, then taken. */
static struct pass replay(struct gram *g, const struct gv *v, const int32_t *ids, int n,
                          int32_t eos, uint64_t *mask)
{
    struct err e = {0};
    struct pass p = {.rejected_at = -1};
    struct gm *m = gm_create(g, &e);
    double *t = calloc((size_t)n + 1, sizeof *t);
    for (int i = 0; i <= n && m; i++) {
        double t0 = now_us();
        if (gm_fill_mask(m, v, mask, &eos, 1, &e) != 0) {
            fprintf(stderr, "mask: %s\n", e.msg);
            exit(1);
        }
        t[i] = now_us() - t0;
        int32_t want = i < n ? ids[i] : eos;
        if (!(mask[want >> 6] >> (want & 63) & 1)) {
            p.rejected_at = i;
            break;
        }
        if (i < n && gm_accept_token(m, v, want, &e) != 0) {
            p.rejected_at = i;
            break;
        }
    }
    int k = p.rejected_at >= 0 ? p.rejected_at : n + 1;
    double sum = 0;
    for (int i = 0; i < k; i++) sum += t[i];
    qsort(t, (size_t)k, sizeof *t, cmp_double);
    if (k) p.mean = sum / k, p.p50 = t[k / 2], p.p99 = t[(k * 99) / 100], p.max = t[k - 1];
    free(t);
    gm_destroy(m);
    return p;
}

/* The sampler's cost of a mask: masked minus plain sampling of the same logits, in µs. */
static double mask_apply_us(const struct gv *v, const uint64_t *mask)
{
    int32_t n = v->n_vocab;
    float *l = malloc((size_t)n * sizeof *l);
    for (int32_t i = 0; i < n; i++) l[i] = (float)((i * 2654435761u) % 1000) * 0.01f;
    struct smp_params p = smp_params_default();
    struct err e = {0};
    struct smp_state *s = smp_state_create(&p, n, NULL, 0, 1, &e);
    struct smp_result r;
    double plain = 1e30, masked = 1e30;
    for (int k = 0; k < 20; k++) {
        double t0 = now_us();
        smp_sample(s, &p, l, n, &r, &e);
        double t1 = now_us();
        smp_sample_masked(s, &p, l, n, mask, &r, &e);
        double t2 = now_us();
        plain = fmin(plain, t1 - t0), masked = fmin(masked, t2 - t1);
    }
    smp_state_destroy(s);
    free(l);
    return masked - plain;
}

static void run_case(json_t *c, const struct gv *v, int32_t eos, uint64_t *mask)
{
    const char *name = json_string_value(json_object_get(c, "name"));
    json_t *arr = json_object_get(c, "ids");
    int n = (int)json_array_size(arr);
    int32_t *ids = malloc(((size_t)n + 1) * sizeof *ids);
    for (int i = 0; i < n; i++)
        ids[i] = (int32_t)json_integer_value(json_array_get(arr, (size_t)i));
    struct api_schema s;
    char msg[512];
    struct err e = {0};
    double t0 = now_us();
    struct gram *g = NULL;
    if (api_schema_convert(json_object_get(c, "schema"), 0, &s, msg, sizeof msg) == 0)
        g = gram_from_schema(&s.doc, GRAM_WS_COMPACT, NULL, &e);
    else
        snprintf(e.msg, sizeof e.msg, "%s", msg);
    double compile_ms = (now_us() - t0) / 1000;
    api_schema_free(&s);
    if (!g) {
        printf("{\"engine\": \"seekd\", \"case\": \"%s\", \"error\": \"%s\"}\n", name, e.msg);
        free(ids);
        return;
    }
    struct pass cold = replay(g, v, ids, n, eos, mask);
    struct pass warm = replay(g, v, ids, n, eos, mask);
    printf("{\"engine\": \"seekd\", \"case\": \"%s\", \"tokens\": %d, \"compile_ms\": %.3f, "
           "\"states\": %d, \"cold_mean_us\": %.2f, \"cold_max_us\": %.1f, \"mean_us\": %.2f, "
           "\"p50_us\": %.2f, \"p99_us\": %.2f, \"max_us\": %.1f, \"rejected_at\": %d, "
           "\"sampler_mask_us\": %.1f}\n",
           name, n, compile_ms, gram_n_states(g), cold.mean, cold.max, warm.mean, warm.p50,
           warm.p99, warm.max, cold.rejected_at, mask_apply_us(v, mask));
    fflush(stdout);
    gram_unref(g);
    free(ids);
}

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: %s TOKENIZER_DIR CASES.jsonl\n", argv[0]);
        return 2;
    }
    char tj[1024], tc[1024];
    snprintf(tj, sizeof tj, "%s/tokenizer.json", argv[1]);
    snprintf(tc, sizeof tc, "%s/tokenizer_config.json", argv[1]);
    struct err e = {0};
    struct tok *t = tok_load(tj, tc, &e);
    if (!t) return fprintf(stderr, "%s\n", e.msg), 1;
    double t0 = now_us();
    struct gv *v = gv_create(t, tok_n_vocab(t));
    fprintf(stderr, "vocabulary: %d ids, trie of %d nodes built in %.1f ms\n", tok_n_vocab(t),
            v->n_nodes, (now_us() - t0) / 1000);
    uint64_t *mask = calloc((size_t)gv_words(v), sizeof *mask);
    FILE *f = fopen(argv[2], "r");
    if (!f) return perror(argv[2]), 1;
    char *line = NULL;
    size_t cap = 0;
    while (getline(&line, &cap, f) > 0) {
        json_error_t je;
        json_t *c = json_loads(line, 0, &je);
        if (!c) return fprintf(stderr, "%s: %s\n", argv[2], je.text), 1;
        run_case(c, v, tok_eos_id(t), mask);
        json_decref(c);
    }
    free(line);
    fclose(f);
    free(mask);
    gv_destroy(v);
    tok_destroy(t);
    return 0;
}
