/* toolcall: the two tool-call formats as small state machines over the output's bytes (and, for
 * DeepSeek, its marker token ids). */
#include "engine/text/toolcall.h"

#include <stdlib.h>
#include <string.h>

#include "engine/err.h"

enum {
    /* DeepSeek */
    DS_CONTENT,
    DS_CALLS,
    DS_TYPE,
    DS_NAME,
    DS_FENCE,
    DS_ARGS,
    DS_AFTER,
    /* Hermes */
    H_CONTENT,
    H_OPEN,
    H_OBJ,
    H_KEY,
    H_COLON,
    H_VALUE,
    H_NAME,
    H_ARGS,
    H_SKIP,
    H_CLOSE,
    H_BETWEEN,
    H_BAD,
};

#define NAME_MAX_BYTES 256
static const char FENCE_OPEN[] = "```json\n", FENCE_CLOSE[] = "\n```";
static const char H_BEGIN[] = "<tool_call>", H_END[] = "</tool_call>";

static void text_drop_front(struct tok_text *t, size_t k)
{
    memmove(t->s, t->s + k, t->n - k);
    t->n -= k;
    if (t->s) t->s[t->n] = 0;
}

void tc_init(struct tc_parser *p, enum tc_format fmt, const int32_t *marker)
{
    memset(p, 0, sizeof *p);
    p->fmt = fmt;
    for (int i = 0; i < TC_N_MARKERS; i++) p->marker[i] = marker ? marker[i] : -1;
    p->state = fmt == TC_HERMES ? H_CONTENT : DS_CONTENT;
}

void tc_free(struct tc_parser *p)
{
    tok_text_free(&p->held);
    tok_text_free(&p->name);
    tok_text_free(&p->early_args);
}

void tc_out_clear(struct tc_out *o)
{
    tok_text_free(&o->content);
    for (int i = 0; i < o->n_d; i++) free(o->d[i].name), free(o->d[i].args);
    free(o->d);
    memset(o, 0, sizeof *o);
}

/* ---- output -------------------------------------------------------------------------------- */

static struct tc_delta *delta_for(struct tc_out *o, int index)
{
    if (o->n_d && o->d[o->n_d - 1].index == index) return &o->d[o->n_d - 1];
    if (o->n_d == o->cap_d) {
        o->cap_d = o->cap_d ? 2 * o->cap_d : 4;
        o->d = xrealloc(o->d, (size_t)o->cap_d * sizeof *o->d);
    }
    o->d[o->n_d] = (struct tc_delta){.index = index};
    return &o->d[o->n_d++];
}

static void emit_start(struct tc_parser *p, struct tc_out *o)
{
    struct tc_delta *d = delta_for(o, p->n_calls++);
    d->name = xmalloc(p->name.n + 1);
    memcpy(d->name, p->name.s ? p->name.s : "", p->name.n);
    d->name[p->name.n] = 0;
    p->name.n = 0;
}

static void emit_args(struct tc_parser *p, struct tc_out *o, const char *s, size_t n)
{
    if (!n || !p->n_calls) return;
    struct tc_delta *d = delta_for(o, p->n_calls - 1);
    d->args = xrealloc(d->args, d->n_args + n + 1);
    memcpy(d->args + d->n_args, s, n);
    d->n_args += n;
    d->args[d->n_args] = 0;
}

/* Length of the longest suffix of s[0..n) that is a proper prefix of marker. */
static size_t partial_suffix(const char *s, size_t n, const char *marker)
{
    size_t m = strlen(marker);
    for (size_t k = m - 1 < n ? m - 1 : n; k > 0; k--)
        if (!memcmp(s + n - k, marker, k)) return k;
    return 0;
}

/* ---- DeepSeek ------------------------------------------------------------------------------- */

/* Arguments: everything but a tail that may be the closing fence. */
static void ds_args(struct tc_parser *p, struct tc_out *o)
{
    size_t keep = partial_suffix(p->held.s, p->held.n, FENCE_CLOSE);
    if (p->held.n >= 4 && !memcmp(p->held.s + p->held.n - 4, FENCE_CLOSE, 4)) keep = 4;
    emit_args(p, o, p->held.s, p->held.n - keep);
    text_drop_front(&p->held, p->held.n - keep);
}

static void ds_byte(struct tc_parser *p, char c, struct tc_out *o)
{
    switch (p->state) {
    case DS_CONTENT:
    case DS_AFTER:
        tok_text_append(&o->content, &c, 1);
        break;
    case DS_NAME:
        if (c == '\n') {
            emit_start(p, o);
            p->state = DS_FENCE;
            p->held.n = 0;
        } else if (p->name.n < NAME_MAX_BYTES) {
            tok_text_append(&p->name, &c, 1);
        }
        break;
    case DS_FENCE:
        if (c == FENCE_OPEN[p->held.n]) {
            tok_text_append(&p->held, &c, 1);
            if (p->held.n == sizeof FENCE_OPEN - 1) p->state = DS_ARGS, p->held.n = 0;
            break;
        }
        p->state = DS_ARGS; /* no fence after all: what was held is arguments */
        tok_text_append(&p->held, &c, 1);
        ds_args(p, o);
        break;
    case DS_ARGS:
        tok_text_append(&p->held, &c, 1);
        break;
    default:
        break; /* between calls, the call type: nothing to keep */
    }
}

/* Ends the call in progress at its closing marker. */
static void ds_end_call(struct tc_parser *p, struct tc_out *o)
{
    if (p->state == DS_NAME) emit_start(p, o);
    if (p->state == DS_ARGS || p->state == DS_FENCE) {
        size_t n = p->held.n;
        if (p->state == DS_ARGS && n >= 4 && !memcmp(p->held.s + n - 4, FENCE_CLOSE, 4)) n -= 4;
        if (p->state == DS_ARGS) emit_args(p, o, p->held.s, n);
    }
    p->held.n = 0;
}

static void ds_marker(struct tc_parser *p, int m, struct tc_out *o)
{
    int in_call =
        p->state == DS_TYPE || p->state == DS_NAME || p->state == DS_FENCE || p->state == DS_ARGS;
    switch (m) {
    case TC_CALLS_BEGIN:
        if (!in_call) p->state = DS_CALLS;
        break;
    case TC_CALL_BEGIN:
        if (!in_call) p->state = DS_TYPE;
        break;
    case TC_SEP:
        if (p->state == DS_TYPE) p->state = DS_NAME, p->name.n = 0;
        break;
    case TC_CALL_END:
        if (in_call) ds_end_call(p, o), p->state = DS_CALLS;
        break;
    case TC_CALLS_END:
        if (in_call) ds_end_call(p, o);
        p->state = DS_AFTER;
        break;
    }
}

/* ---- Hermes ---------------------------------------------------------------------------------- */

static bool is_ws(char c)
{
    return c == ' ' || c == '\n' || c == '\r' || c == '\t';
}

/* Content, watching for the opening marker; a possible marker prefix is held back. */
static void h_content(struct tc_parser *p, struct tc_out *o)
{
    char *at = p->held.n ? memmem(p->held.s, p->held.n, H_BEGIN, sizeof H_BEGIN - 1) : NULL;
    if (at) {
        size_t k = (size_t)(at - p->held.s);
        tok_text_append(&o->content, p->held.s, k);
        text_drop_front(&p->held, k + sizeof H_BEGIN - 1);
        p->state = H_OPEN;
        return;
    }
    size_t keep = partial_suffix(p->held.s, p->held.n, H_BEGIN);
    tok_text_append(&o->content, p->held.s, p->held.n - keep);
    text_drop_front(&p->held, p->held.n - keep);
}

/* One byte of a JSON value whose end we look for, by nesting and strings: 0 the value goes on,
 * 1 it ended with this byte, 2 it ended before this byte (a scalar followed by ',' or '}').
 * Whitespace between tokens at the top is reported by *keep = 0. */
static int value_byte(struct tc_parser *p, char c, int *keep)
{
    *keep = 1;
    if (p->in_str) {
        if (p->esc)
            p->esc = 0;
        else if (c == '\\')
            p->esc = 1;
        else if (c == '"' && (p->in_str = 0, p->depth == 0))
            return 1;
        return 0;
    }
    if (p->depth == 0 && (c == ',' || c == '}')) return 2;
    if (is_ws(c) && p->depth == 0) return *keep = 0, 0;
    if (c == '{' || c == '[')
        p->depth++;
    else if (c == '}' || c == ']')
        return --p->depth == 0;
    else if (c == '"')
        p->in_str = 1;
    return 0;
}

/* Arguments seen before the name wait in name_args until the call has started. */
static void h_args(struct tc_parser *p, struct tc_out *o, const char *s, size_t n)
{
    if (p->named)
        emit_args(p, o, s, n);
    else
        tok_text_append(&p->early_args, s, n);
}

/* One byte inside <tool_call>...</tool_call>; returns false when the byte must be looked at
 * again in the new state. */
static bool h_call_byte(struct tc_parser *p, char c, struct tc_out *o)
{
    int keep, end;
    switch (p->state) {
    case H_OPEN:
        if (c == '{')
            p->state = H_OBJ, p->named = 0;
        else if (!is_ws(c))
            p->state = H_BAD;
        return true;
    case H_OBJ:
        if (c == '"')
            p->state = H_KEY, p->name.n = 0;
        else if (c == '}')
            p->state = H_CLOSE, p->held.n = 0;
        else if (!is_ws(c) && c != ',')
            p->state = H_BAD;
        return true;
    case H_KEY:
        if (c == '"')
            p->state = H_COLON;
        else if (p->name.n < NAME_MAX_BYTES)
            tok_text_append(&p->name, &c, 1);
        return true;
    case H_COLON:
        if (c == ':') {
            p->key = p->name.n == 4 && !memcmp(p->name.s, "name", 4)        ? 1
                     : p->name.n == 9 && !memcmp(p->name.s, "arguments", 9) ? 2
                                                                            : 0;
            p->name.n = 0;
            p->state = H_VALUE;
        } else if (!is_ws(c)) {
            p->state = H_BAD;
        }
        return true;
    case H_VALUE:
        if (is_ws(c)) return true;
        p->depth = p->in_str = p->esc = 0;
        if (p->key == 1 && c == '"') return p->state = H_NAME, true;
        p->state = p->key == 2 ? H_ARGS : H_SKIP;
        return false;
    case H_NAME:
        if (p->esc)
            p->esc = 0, tok_text_append(&p->name, &c, 1);
        else if (c == '\\')
            p->esc = 1;
        else if (c == '"') {
            emit_start(p, o);
            p->named = 1;
            emit_args(p, o, p->early_args.s, p->early_args.n);
            p->early_args.n = 0;
            p->state = H_OBJ;
        } else if (p->name.n < NAME_MAX_BYTES)
            tok_text_append(&p->name, &c, 1);
        return true;
    case H_ARGS:
    case H_SKIP:
        end = value_byte(p, c, &keep);
        if (end != 2 && keep && p->state == H_ARGS) h_args(p, o, &c, 1);
        if (end) p->state = H_OBJ;
        return end != 2;
    default:
        return true;
    }
}

/* Between calls: whitespace, then either the next call or text after the calls. */
static void h_between(struct tc_parser *p, struct tc_out *o)
{
    size_t w = p->lead_ws, rest = p->held.n - w;
    if (rest >= sizeof H_BEGIN - 1 && !memcmp(p->held.s + w, H_BEGIN, sizeof H_BEGIN - 1)) {
        text_drop_front(&p->held, w + sizeof H_BEGIN - 1);
        p->state = H_OPEN;
    } else if (rest && memcmp(p->held.s + w, H_BEGIN, rest)) {
        p->state = H_CONTENT; /* not another call: it is all content */
        h_content(p, o);
    }
}

static void h_byte(struct tc_parser *p, char c, struct tc_out *o)
{
    if (p->state == H_CONTENT || p->state == H_BETWEEN) {
        if (p->state == H_BETWEEN && p->held.n == p->lead_ws && is_ws(c)) p->lead_ws++;
        tok_text_append(&p->held, &c, 1);
        if (p->state == H_CONTENT)
            h_content(p, o);
        else
            h_between(p, o);
        return;
    }
    if (p->state == H_CLOSE || p->state == H_BAD) {
        if (p->state == H_CLOSE && !p->held.n && is_ws(c)) return;
        tok_text_append(&p->held, &c, 1);
        if (p->held.n >= sizeof H_END - 1 &&
            !memcmp(p->held.s + p->held.n - (sizeof H_END - 1), H_END, sizeof H_END - 1))
            p->held.n = 0, p->lead_ws = 0, p->state = H_BETWEEN;
        else if (p->held.n > 64)
            text_drop_front(&p->held, p->held.n - 16);
        return;
    }
    while (!h_call_byte(p, c, o)) {
    }
}

/* ---- the parser ------------------------------------------------------------------------------ */

void tc_push(struct tc_parser *p, int32_t id, const char *text, size_t n, struct tc_out *out)
{
    if (p->fmt == TC_DEEPSEEK) {
        for (int m = 0; m < TC_N_MARKERS; m++)
            if (id >= 0 && id == p->marker[m]) return ds_marker(p, m, out);
        for (size_t i = 0; i < n; i++) ds_byte(p, text[i], out);
        if (p->state == DS_ARGS) ds_args(p, out);
        return;
    }
    if (p->fmt == TC_HERMES) {
        for (size_t i = 0; i < n; i++) h_byte(p, text[i], out);
        return;
    }
    tok_text_append(&out->content, text, n);
}

void tc_finish(struct tc_parser *p, struct tc_out *out)
{
    if (p->fmt == TC_DEEPSEEK) {
        if (p->state == DS_ARGS)
            emit_args(p, out, p->held.s, p->held.n);
        else if (p->state == DS_NAME && p->name.n)
            emit_start(p, out);
    } else if (p->fmt == TC_HERMES && p->state == H_CONTENT) {
        tok_text_append(&out->content, p->held.s, p->held.n);
    }
    p->held.n = 0;
}
