/* toolcall: tool calls parsed out of a model's output as it streams, in the model's own format.
 *
 *   DeepSeek V3/R1
 * <｜tool▁calls▁begin｜><｜tool▁call▁begin｜>TYPE<｜tool▁sep｜>NAME\n```json\nARGS\n```
 *                   <｜tool▁call▁end｜>[\n<｜tool▁call▁begin｜>...]<｜tool▁calls▁end｜>
 *                   (markers recognised by token id, so they work whether or not the tokenizer
 *                   flags them special and whether or not their text is kept)
 *   Hermes / Qwen   <tool_call>\n{"name": "NAME", "arguments": {...}}\n</tool_call> (text)
 *
 * Fed one token at a time (its id and the text it decoded to), the parser splits the output into
 * plain content and tool-call pieces: a call's start (index and name) as soon as the name is
 * complete, then its arguments text in fragments as they arrive. Text that turns out not to be a
 * call stays content. Each byte is looked at a bounded number of times and only a marker's length
 * is ever held back, so parsing is linear and its memory bounded by the output. */
#ifndef SEEKD_TOOLCALL_H
#define SEEKD_TOOLCALL_H

#include <stddef.h>
#include <stdint.h>

#include "engine/text/tokenizer.h"

enum tc_format { TC_NONE, TC_DEEPSEEK, TC_HERMES };
enum { TC_CALLS_BEGIN, TC_CALLS_END, TC_CALL_BEGIN, TC_CALL_END, TC_SEP, TC_N_MARKERS };

/* One piece of a call: its start (name set) and/or some of its arguments. */
struct tc_delta {
    int index;  /* 0-based, per choice */
    char *name; /* NUL-terminated when the call starts here, else NULL */
    char *args; /* arguments text (JSON) arriving now, NULL when none */
    size_t n_args;
};

/* What one push produced. Zero-initialise; tc_out_clear frees. */
struct tc_out {
    struct tok_text content;
    struct tc_delta *d; /* [n_d] */
    int n_d, cap_d;
};

struct tc_parser {
    enum tc_format fmt;
    int32_t marker[TC_N_MARKERS]; /* DeepSeek marker ids */
    int state;
    int n_calls;          /* calls started */
    struct tok_text held; /* bytes that may still turn out to be a marker or a fence */
    struct tok_text name; /* the name being read */
    int depth;            /* Hermes: JSON nesting inside the arguments value */
    int in_str, esc;      /* Hermes: inside a JSON string, after a backslash */
    int key;        /* Hermes: the key whose value comes next (0 other, 1 name, 2 arguments) */
    int named;      /* Hermes: the current call's name has been read */
    size_t lead_ws; /* Hermes: whitespace held after a call, before what comes next */
    struct tok_text early_args; /* Hermes: arguments written before the name */
};

/* marker: [TC_N_MARKERS] ids for TC_DEEPSEEK (may be NULL otherwise). */
void tc_init(struct tc_parser *p, enum tc_format fmt, const int32_t *marker);
void tc_free(struct tc_parser *p);
/* Feeds one token. */
void tc_push(struct tc_parser *p, int32_t id, const char *text, size_t n, struct tc_out *out);
/* The output ended: whatever is held goes where it belongs. */
void tc_finish(struct tc_parser *p, struct tc_out *out);
void tc_out_clear(struct tc_out *o);

#endif
