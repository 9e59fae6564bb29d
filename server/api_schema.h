/* api_schema: JSON Schema from a request → the engine's schema tree (engine/grammar/schema.h).
 * Only server/ sees request JSON; the engine receives the converted tree. */
#ifndef SEEKD_API_SCHEMA_H
#define SEEKD_API_SCHEMA_H

#include <jansson.h>

#include "engine/err.h"
#include "engine/grammar/schema.h"

/* A converted schema and everything its tree points to. */
struct api_schema {
    struct jss_doc doc;
    void **owned; /* [n_owned] allocations freed with it */
    int n_owned, cap_owned;
};

/* Converts schema (no_additional: objects never get properties they do not name, even where
 * additionalProperties is absent); 0, or -1 with msg naming the place and keyword ("properties.a:
 * the keyword 'not' is not supported"). The tree borrows strings from schema: keep it alive as long
 * as the tree. Free with api_schema_free either way. */
int api_schema_convert(json_t *schema, int no_additional, struct api_schema *out, char *msg,
                       size_t msg_size);
void api_schema_free(struct api_schema *s);

#endif
