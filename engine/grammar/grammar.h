/* grammar: constrained decoding — grammars compiled from JSON Schema, regular expressions, choice
 * lists, GBNF text and tool-call formats, and the matcher that turns one into a mask of allowed
 * tokens at every step.
 *
 * A struct gram is immutable once compiled (its lazily filled mask cache has its own lock), so
 * any number of requests share one; it is reference-counted. The engine never sees request
 * JSON: a JSON Schema arrives as the plain tree of engine/grammar/schema.h, filled by the
 * server. Every source compiles within struct gram_limits (states, edges, work, nesting), so a
 * hostile input costs bounded time and memory and fails with a message naming what was too big.
 *
 * The pieces (docs/ARCHITECTURE.md, "Constrained decoding"):
 *   build    the NFA builder every source writes into (build.h)
 *   compile  per-rule determinisation, pruning, left-recursion check, the runtime layout
 *   classes  states that accept the same tokens share one cached mask
 *   regex, numrange, schema, gbnf, sources   the sources
 *   vocab    the tokenizer's vocabulary as a byte trie
 *   match    the pushdown automaton of one sequence: its stack tops, advanced by bytes/tokens
 *   mask     allowed-token masks: per-class precomputation plus a check of the uncertain tokens
 *   cache    compiled grammars by key, shared between requests */
#ifndef SEEKD_GRAMMAR_H
#define SEEKD_GRAMMAR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "engine/err.h"

struct gram;
struct jss_doc;

/* Ceilings on what one grammar may cost to compile. */
struct gram_limits {
    int32_t max_states;     /* NFA states while building */
    int32_t max_edges;      /* NFA edges while building */
    int32_t max_dfa_states; /* states after determinisation, all rules together */
    int64_t max_work;       /* compile work units (about one per state-edge visit) */
    int32_t max_depth;      /* nesting of schemas, regex groups, GBNF parentheses */
    int32_t max_repeat;     /* one bound of a counted repetition, maxLength, maxItems */
    int32_t max_rules;
    int32_t class_depth; /* bytes of behaviour that states sharing a mask class agree on */
};
struct gram_limits gram_limits_default(void);

/* How JSON is laid out. The default, GRAM_WS_COMPACT, allows one optional space after ',' and
 * ':' and nowhere else, so whitespace never makes a document longer than twice its content. */
enum gram_ws { GRAM_WS_COMPACT, GRAM_WS_NONE };

/* lim may be NULL (defaults). n_vocab: token ids a grammar may name (special-token terminals).
 * Each returns NULL with a message on bad input or when a limit is passed. */
struct gram *gram_from_regex(const char *re, size_t n, const struct gram_limits *lim,
                             struct err *e);
struct gram *gram_from_choices(const char *const *s, const size_t *len, int n,
                               const struct gram_limits *lim, struct err *e);
struct gram *gram_from_gbnf(const char *text, size_t n, int32_t n_vocab,
                            const struct gram_limits *lim, struct err *e);
/* Any JSON object (response_format json_object). */
struct gram *gram_json_object(enum gram_ws ws, const struct gram_limits *lim, struct err *e);
/* A document valid against the schema. */
struct gram *gram_from_schema(const struct jss_doc *d, enum gram_ws ws,
                              const struct gram_limits *lim, struct err *e);

/* ---- tool calls ---- */
enum gram_tool_format {
    GRAM_TOOLS_DEEPSEEK, /* <｜tool▁calls▁begin｜><｜tool▁call▁begin｜>function<｜tool▁sep｜>NAME\n```json\n{...}\n```<｜tool▁call▁end｜>...<｜tool▁calls▁end｜>
                          */
    GRAM_TOOLS_HERMES,   /* <tool_call>\n{"name": NAME, "arguments": {...}}\n</tool_call> */
};
enum {
    GRAM_DS_CALLS_BEGIN,
    GRAM_DS_CALLS_END,
    GRAM_DS_CALL_BEGIN,
    GRAM_DS_CALL_END,
    GRAM_DS_SEP,
    GRAM_DS_N_MARKERS
};

struct gram_tool {
    const char *name;             /* NUL-terminated */
    const struct jss_doc *params; /* the function's parameters schema */
};

struct gram_tools {
    enum gram_tool_format format;
    const struct gram_tool *tools; /* [n_tools]: the functions a call may name */
    int n_tools;
    bool parallel; /* one call or more (false: exactly one) */
    bool lazy;     /* the grammar starts right after the opening marker (DeepSeek: the
                      calls-begin token; Hermes: the text "<tool_call>"), which the model chose */
    int32_t marker[GRAM_DS_N_MARKERS]; /* DeepSeek marker token ids */
    enum gram_ws ws;
    /* Not lazy: instead of calls, the output may be an answer — a document of this schema, or
     * (answer_object) any JSON object. */
    const struct jss_doc *answer;
    bool answer_object;
};
struct gram *gram_tools(const struct gram_tools *t, int32_t n_vocab, const struct gram_limits *lim,
                        struct err *e);

/* ---- life and facts ---- */
struct gram *gram_ref(struct gram *g);
void gram_unref(struct gram *g);
int32_t gram_n_states(const struct gram *g);
/* The length (bytes) of the longest output the grammar can produce; -1 when unbounded (it
 * loops or recurses). Used by tests; the scheduler bounds outputs with max_tokens anyway. */
int64_t gram_max_bytes(const struct gram *g);

#endif
