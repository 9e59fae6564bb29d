/* vocab: the tokenizer that goes with a model — tokenizer.json (+ tokenizer_config.json) of a
 * Hugging Face directory, or the vocabulary inside a GGUF file (tokenizer.ggml.*). The bridge
 * between engine/model (which reads the GGUF) and engine/text (which knows no file format). */
#ifndef SEEKD_VOCAB_H
#define SEEKD_VOCAB_H

#include "engine/err.h"
#include "engine/model/model.h"
#include "engine/text/tokenizer.h"

/* tokenizer_dir (when non-empty) wins; else the model's own: its directory's tokenizer.json or
 * its GGUF vocabulary. NULL with a message naming the file and the key. */
struct tok *vocab_load(const struct model *m, const char *model_path, const char *tokenizer_dir,
                       struct err *e);

/* The tokenizer of a GGUF file's vocabulary; pre, when not NULL, replaces its
 * tokenizer.ggml.pre (a file converted with a wrong or missing name). */
struct tok *vocab_from_gguf(const struct gguf_set *g, const char *pre, struct err *e);

#endif
