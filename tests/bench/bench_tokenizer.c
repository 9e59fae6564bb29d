/* bench_tokenizer: seekd encode throughput on the committed corpus, single thread.
 * usage: bench_tokenizer FIXTURE_DIR [SECONDS]   (prints MB/s; `make bench` runs it) */
#include "engine/text/tokenizer.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec * 1e-9;
}

int main(int argc, char **argv)
{
    if (argc < 2) {
        fprintf(stderr, "usage: %s FIXTURE_DIR [SECONDS]\n", argv[0]);
        return 2;
    }
    double seconds = argc > 2 ? atof(argv[2]) : 3.0;
    char tj[1024], cj[1024], cp[1024];
    snprintf(tj, sizeof tj, "%s/v3/tokenizer.json", argv[1]);
    snprintf(cj, sizeof cj, "%s/v3/tokenizer_config.json", argv[1]);
    snprintf(cp, sizeof cp, "%s/corpus.json", argv[1]);
    struct err e = {0};
    double t0 = now();
    struct tok *t = tok_load(tj, cj, &e);
    if (!t) {
        fprintf(stderr, "%s\n", e.msg);
        return 1;
    }
    double load_s = now() - t0;
    json_error_t je;
    json_t *corpus = json_load_file(cp, 0, &je), *c;
    if (!corpus) {
        fprintf(stderr, "%s: %s\n", cp, je.text);
        return 1;
    }
    size_t i, bytes = 0, n_ids = 0, rounds = 0;
    struct tok_ids ids = {0};
    t0 = now();
    while (now() - t0 < seconds) {
        json_array_foreach(corpus, i, c)
        {
            json_t *text = json_object_get(c, "text");
            ids.n = 0;
            if (tok_encode(t, json_string_value(text), json_string_length(text), TOK_PARSE_SPECIAL, &ids, &e)) {
                fprintf(stderr, "%s\n", e.msg);
                return 1;
            }
            bytes += json_string_length(text);
            n_ids += ids.n;
        }
        rounds++;
    }
    double dt = now() - t0;
    printf("seekd      encode: %7.2f MB/s  (%zu rounds of %zu strings, %.1f MB, %.2f Mtok/s; load %.0f ms)\n",
           bytes / dt / 1e6, rounds, json_array_size(corpus), bytes / 1e6, n_ids / dt / 1e6, load_s * 1e3);
    tok_ids_free(&ids);
    json_decref(corpus);
    tok_destroy(t);
    return 0;
}
