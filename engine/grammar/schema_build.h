/* schema_build: JSON Schema trees and generic JSON compiled into builder rules; shared by
 * gram_from_schema, gram_json_object and the tool-call grammars (which embed one schema per
 * function). Not for use outside engine/grammar. */
#ifndef SEEKD_GRAMMAR_SCHEMA_BUILD_H
#define SEEKD_GRAMMAR_SCHEMA_BUILD_H

#include "engine/grammar/build.h"
#include "engine/grammar/schema.h"

struct jsc;

struct jsc *jsc_create(struct gb *b, enum gram_ws ws);
void jsc_destroy(struct jsc *c);
/* A rule matching a document of d (its $defs become rules of their own). */
int32_t jsc_doc_rule(struct jsc *c, const struct jss_doc *d, const char *name);
/* A rule matching any JSON object (built by jsc_finish). */
int32_t jsc_object_rule(struct jsc *c);
/* Builds the rules queued so far. */
void jsc_finish(struct jsc *c);
/* The separators: ',' and ':' each with the whitespace the layout allows after it. */
struct gfrag jsc_sep_item(struct jsc *c);
struct gfrag jsc_sep_key(struct jsc *c);

#endif
