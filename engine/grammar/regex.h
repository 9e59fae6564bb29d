/* regex: regular expressions (the JSON Schema `pattern` dialect: ECMA-262, read so that what is
 * generated also matches under Python's re) compiled into builder fragments.
 *
 * Supported: literals (UTF-8), '.', classes [...] with ranges and negation, \d \w \s and their
 * negations, escapes (\n \t \r \f \v \0 \xHH \uHHHH and escaped punctuation), groups (...),
 * (?:...), named groups, alternation, greedy and lazy quantifiers * + ? {n} {n,} {n,m}, and ^ $
 * at the start and end of top-level alternatives. Refused with a message naming the construct:
 * lookaround, backreferences, \b \B, Unicode property classes, possessive quantifiers, anchors
 * anywhere else. Negated shorthands and negated classes holding a shorthand generate ASCII only
 * (\D is then a non-digit under both ECMA and Python's Unicode \d); '.' never generates a line
 * terminator. Regexes become automata, so no pattern can backtrack catastrophically; their size
 * is bounded by the builder's limits. */
#ifndef SEEKD_GRAMMAR_REGEX_H
#define SEEKD_GRAMMAR_REGEX_H

#include "engine/grammar/build.h"

/* The fragment matching re (n bytes). search: JSON Schema semantics (the pattern may match
 * anywhere unless anchored); otherwise the whole text must match. Characters are emitted in
 * mode (GB_JSON inside a JSON string). On error the builder fails with "where: message". */
struct gfrag rx_build(struct gb *b, const char *re, size_t n, enum gb_text mode, bool search,
                      const char *where);

#endif
