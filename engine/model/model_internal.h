/* model_internal: what the two checkpoint formats' loaders share inside engine/model/ — the
 * binding state and the GGUF entry points (gguf_config.c, gguf_model.c). Not for use outside. */
#ifndef SEEKD_MODEL_INTERNAL_H
#define SEEKD_MODEL_INTERNAL_H

#include "engine/model/model.h"

struct binder {
    struct model *m;
    struct err *e;
    int failed;                           /* a bind failed: the message is in e */
    const struct load_progress *progress; /* may be NULL */
    struct load_status status;
};

/* Reports where the load stands (stage "mapping", "binding", "done"). */
void model_report(struct binder *b, const char *stage);

/* GGUF metadata (general.architecture and its keys) → struct model_config, checked. */
int gguf_config_read(struct model_config *c, const struct gguf_set *g, struct err *e);

/* Binds every tensor of m->gguf by its llama.cpp name; refuses missing, misshapen and left-over
 * tensors, naming them. */
int gguf_model_bind(struct binder *b);

#endif
