/* gencfg: a model's own sampling defaults — what a request that names no temperature, top_p,
 * top_k, min_p or repetition_penalty samples with (vLLM's `--generation-config auto`, llama.cpp
 * server's sampler defaults).
 *
 * From a Hugging Face directory: generation_config.json, when present. From a GGUF file: its
 * general.sampling.* keys, and where it has none, llama.cpp's defaults for every GGUF model
 * (temperature 0.8, top_k 40, top_p 0.95, min_p 0.05), which is what the file's users get from
 * llama-server. Values outside a request's own ranges are refused naming the file and key. */
#ifndef SEEKD_GENCFG_H
#define SEEKD_GENCFG_H

#include <stdint.h>

#include "engine/err.h"
#include "engine/model/gguf.h"

struct gen_defaults {
    int has_temperature, has_top_p, has_top_k, has_min_p, has_repetition_penalty;
    float temperature;        /* [0, 2] */
    float top_p;              /* (0, 1] */
    int32_t top_k;            /* -1, or >= 1 */
    float min_p;              /* [0, 1] */
    float repetition_penalty; /* (0, 2] */
    char source[96];          /* where they came from, for the log; "" when there are none */
};

/* The defaults of a GGUF model (g, its opened files) or of a checkpoint directory (g NULL:
 * dir/generation_config.json). 0 with none set when the checkpoint says nothing; -1 with a
 * message naming the file and key for a malformed value. */
int gencfg_load(struct gen_defaults *d, const struct gguf_set *g, const char *dir, struct err *e);

/* "temperature 0.8, top_k 40, top_p 0.95, min_p 0.05" into buf (what is set, in that order). */
void gencfg_describe(const struct gen_defaults *d, char *buf, size_t n);

#endif
