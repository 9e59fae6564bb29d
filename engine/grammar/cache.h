/* cache: compiled grammars by key, shared between requests.
 *
 * A grammar's masks are filled lazily as requests walk it, so a schema used again starts with
 * its masks ready. Keys are whatever identifies a grammar exactly (the server uses the kind, the
 * options and the schema's text). Least recently used grammars are dropped past `capacity`; a
 * dropped grammar lives on while requests still hold it. Thread-safe. */
#ifndef SEEKD_GRAMMAR_CACHE_H
#define SEEKD_GRAMMAR_CACHE_H

#include <stddef.h>

#include "engine/grammar/grammar.h"

struct gcache;

struct gcache *gcache_create(int capacity);
void gcache_destroy(struct gcache *c);
/* A reference to the grammar stored under key, or NULL. */
struct gram *gcache_get(struct gcache *c, const char *key, size_t n);
/* Stores g under key (the cache takes its own reference). */
void gcache_put(struct gcache *c, const char *key, size_t n, struct gram *g);

#endif
