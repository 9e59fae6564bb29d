/* gen: request state, text output (stop strings, reasoning split) and the event queue. */
#include "engine/gen.h"

#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

struct gen_node {
    struct gen_event ev;
    struct gen_node *next;
};

static uint64_t entropy(void)
{
    uint64_t x = 0;
    if (getrandom(&x, sizeof x, 0) != sizeof x) x = (uint64_t)(uintptr_t)&x ^ 0x9e3779b97f4a7c15ull;
    return x;
}

/* Copies the caller's arrays so the request outlives the HTTP handler's buffers. */
static void copy_params(struct gen *g, const struct gen_params *p, int32_t eos, int32_t eot)
{
    g->p = *p;
    g->prompt = xmalloc((size_t)p->n_prompt * sizeof *g->prompt);
    memcpy(g->prompt, p->prompt, (size_t)p->n_prompt * sizeof *g->prompt);
    g->p.prompt = g->prompt;
    g->stop = xcalloc((size_t)p->n_stop + 1, sizeof *g->stop);
    for (int i = 0; i < p->n_stop; i++) g->stop[i] = strdup(p->stop[i]);
    g->p.stop = (const char *const *)g->stop;
    g->stop_ids = xmalloc(((size_t)p->n_stop_token_ids + 2) * sizeof *g->stop_ids);
    if (!p->ignore_eos && eos >= 0) g->stop_ids[g->n_stop_ids++] = eos;
    if (!p->ignore_eos && eot >= 0 && eot != eos) g->stop_ids[g->n_stop_ids++] = eot;
    for (int i = 0; i < p->n_stop_token_ids; i++) g->stop_ids[g->n_stop_ids++] = p->stop_token_ids[i];
    g->p.stop_token_ids = g->stop_ids;
    g->p.n_stop_token_ids = g->n_stop_ids;
    int nb = p->sampling.n_logit_bias;
    g->bias = xmalloc(((size_t)nb + 1) * sizeof *g->bias);
    if (nb) memcpy(g->bias, p->sampling.logit_bias, (size_t)nb * sizeof *g->bias);
    g->p.sampling.logit_bias = g->bias;
    if (p->grammar) gram_ref(p->grammar);
    if (p->grammar_trigger_text) g->trigger_text = strdup(p->grammar_trigger_text);
    g->p.grammar_trigger_text = g->trigger_text;
}

/* ---- the grammar ----------------------------------------------------------------------------- */

static int fail(struct gen_choice *ch, const char *msg)
{
    free(ch->error);
    ch->error = strdup(msg);
    return -1;
}

/* The grammar applies from the next token on. */
static int activate(struct gen *g, struct gen_choice *ch)
{
    struct err e = {0};
    ch->gm = gm_create(g->p.grammar, &e);
    if (!ch->gm) return fail(ch, e.msg);
    ch->gphase = GP_ACTIVE;
    return 0;
}

static bool has_trigger(const struct gen *g)
{
    return g->p.grammar_trigger >= 0 || g->trigger_text;
}

/* Watches for the trigger; the grammar starts right after it (the rest of this token's bytes, if
 * the trigger was a text ending inside it, are the grammar's first input). */
static int watch_trigger(struct gen *g, struct gen_choice *ch, int32_t t)
{
    if (g->p.grammar_trigger >= 0) return t == g->p.grammar_trigger ? activate(g, ch) : 0;
    size_t n, k = strlen(g->trigger_text);
    const uint8_t *s = tok_bytes(g->gv->tok, t, &n);
    if (!s || !n) return 0;
    struct tok_text *w = &ch->trig;
    tok_text_append(w, (const char *)s, n);
    char *at = memmem(w->s, w->n, g->trigger_text, k);
    if (!at) {
        size_t keep = w->n < k ? w->n : k - 1;
        memmove(w->s, w->s + w->n - keep, keep);
        w->n = keep;
        return 0;
    }
    size_t rest = w->n - (size_t)(at - w->s) - k;
    struct err e = {0};
    if (activate(g, ch) != 0) return -1;
    if (rest && gm_accept_bytes(ch->gm, (const uint8_t *)at + k, rest, &e) != 0) return fail(ch, e.msg);
    w->n = 0;
    return 0;
}

/* Advances choice ch's grammar by token t. -1 when the grammar refuses it. */
static int grammar_token(struct gen *g, struct gen_choice *ch, int32_t t)
{
    struct err e = {0};
    switch (ch->gphase) {
    case GP_REASONING:
        if (t != g->think_end) return 0;
        if (has_trigger(g)) return ch->gphase = GP_TRIGGER, 0;
        return activate(g, ch);
    case GP_TRIGGER: return watch_trigger(g, ch, t);
    case GP_ACTIVE:
        if (gen_is_stop_id(g, t)) return 0;
        return gm_accept_token(ch->gm, g->gv, t, &e) == 0 ? 0 : fail(ch, e.msg);
    default: return 0;
    }
}

struct gm *gen_matcher(const struct gen *g, int c)
{
    return g->ch[c].gphase == GP_ACTIVE ? g->ch[c].gm : NULL;
}

/* Sets up choice c's grammar phase and tool-call parser. */
static int choice_setup(struct gen *g, struct gen_choice *ch, struct err *e)
{
    tc_init(&ch->tc, g->p.tool_format, g->p.tool_markers);
    if (!g->p.grammar) return 0;
    if (!g->gv) return err_set(e, "a grammar needs the vocabulary");
    if (ch->in_reasoning) ch->gphase = GP_REASONING;
    else if (has_trigger(g)) ch->gphase = GP_TRIGGER;
    else if (activate(g, ch) != 0) return err_set(e, "%s", ch->error);
    return 0;
}

/* R1's template leaves the prompt inside "<think>\n": then the output starts as reasoning. */
static int starts_in_reasoning(const struct gen *g)
{
    if (!g->p.reasoning || g->think_start < 0) return 0;
    for (int i = g->p.n_prompt - 1; i >= 0 && i >= g->p.n_prompt - 2; i--)
        if (g->prompt[i] == g->think_start) return 1;
    return 0;
}

/* A request with its choices; with samplers and matchers unless it only relays another rank's
 * events. */
static struct gen *gen_new(const struct gen_params *p, const struct tok *tok, const struct gv *gv,
                           int32_t n_vocab, int32_t eos, bool samplers, struct err *e)
{
    struct gen *g = xcalloc(1, sizeof *g);
    pthread_mutex_init(&g->mu, NULL);
    g->refs = 2;
    g->gv = gv;
    copy_params(g, p, eos, tok_eot_id(tok)); /* the end of a turn ends generation too */
    g->think_start = tok_added_id(tok, "<think>");
    g->think_end = tok_added_id(tok, "</think>");
    g->ch = xcalloc((size_t)p->n, sizeof *g->ch);
    uint64_t ent = entropy();
    for (int c = 0; c < p->n; c++) {
        struct smp_params sp = g->p.sampling;
        sp.seed += (uint64_t)c;
        if (samplers)
            g->ch[c].smp = smp_state_create(&sp, n_vocab, g->prompt, p->n_prompt, ent + (uint64_t)c, e);
        if (samplers && !g->ch[c].smp) {
            g->refs = 1;
            gen_unref(g);
            return NULL;
        }
        tok_stream_init(&g->ch[c].ts, tok, p->skip_special_tokens);
        g->ch[c].in_reasoning = starts_in_reasoning(g);
        if (samplers && choice_setup(g, &g->ch[c], e) != 0) {
            g->refs = 1;
            gen_unref(g);
            return NULL;
        }
    }
    return g;
}

struct gen *gen_create(const struct gen_params *p, const struct tok *tok, const struct gv *gv,
                       int32_t n_vocab, int32_t eos, struct err *e)
{
    return gen_new(p, tok, gv, n_vocab, eos, true, e);
}

struct gen *gen_create_relay(const struct gen_params *p, const struct tok *tok, int32_t eos)
{
    return gen_new(p, tok, NULL, 0, eos, false, NULL);
}

static void free_event(struct gen_event *ev)
{
    free(ev->content);
    free(ev->reasoning);
    free(ev->error);
    for (int i = 0; i < ev->n_tools; i++) free(ev->tools[i].name), free(ev->tools[i].args);
    free(ev->tools);
}

void gen_event_clear(struct gen_event *ev)
{
    free_event(ev);
    memset(ev, 0, sizeof *ev);
}

int64_t gen_cost(const struct gen_params *p, int32_t n_vocab, size_t max_text)
{
    int64_t per_choice = (int64_t)(smp_state_bytes(n_vocab) + sizeof(struct gen_choice) + 256);
    /* a token is held either as a queued event (a stream whose client is slow) or by the server
       (a reply being collected, whose events are taken as they come): the larger counts */
    int64_t event = (int64_t)(sizeof(struct gen_node) + 32 + max_text);
    int64_t per_token = event > (int64_t)p->out_bytes_per_token ? event : (int64_t)p->out_bytes_per_token;
    int64_t tokens = p->max_tokens > 0 ? p->max_tokens : 0;
    return (int64_t)sizeof(struct gen) + (int64_t)p->n_prompt * 4 +
           (int64_t)p->n * (per_choice + tokens * per_token);
}

void gen_unref(struct gen *g)
{
    pthread_mutex_lock(&g->mu);
    int left = --g->refs;
    pthread_mutex_unlock(&g->mu);
    if (left) return;
    if (g->ledger) __atomic_sub_fetch(g->ledger, g->cost, __ATOMIC_ACQ_REL);
    for (struct gen_node *n = g->head, *next; n; n = next) {
        next = n->next;
        free_event(&n->ev);
        free(n);
    }
    for (int c = 0; g->ch && c < g->p.n; c++) {
        struct gen_choice *ch = &g->ch[c];
        smp_state_destroy(ch->smp);
        tok_text_free(&ch->hold);
        tok_text_free(&ch->piece);
        tok_text_free(&ch->trig);
        tc_free(&ch->tc);
        gm_destroy(ch->gm);
        free(ch->error);
    }
    gram_unref(g->p.grammar);
    free(g->trigger_text);
    for (int i = 0; i < g->p.n_stop; i++) free(g->stop[i]);
    free(g->stop);
    free(g->ch);
    free(g->prompt);
    free(g->stop_ids);
    free(g->bias);
    pthread_mutex_destroy(&g->mu);
    free(g);
}

static void push(struct gen *g, const struct gen_event *ev)
{
    struct gen_node *n = xcalloc(1, sizeof *n);
    n->ev = *ev;
    pthread_mutex_lock(&g->mu);
    if (g->tail) g->tail->next = n;
    else g->head = n;
    g->tail = n;
    pthread_mutex_unlock(&g->mu);
}

/* The last event of a request: its usage. */
static void queue_done(struct gen *g)
{
    struct gen_event done = {.kind = GEN_EV_DONE, .prompt_tokens = g->p.n_prompt,
                             .cached_tokens = g->cached_tokens};
    for (int i = 0; i < g->p.n; i++) done.completion_tokens += g->ch[i].n_generated;
    g->done_queued = 1;
    push(g, &done);
}

void gen_relay(struct gen *g, struct gen_event *ev)
{
    struct gen_choice *ch = ev->choice < g->p.n ? &g->ch[ev->choice] : NULL;
    if (g->done_queued || (ev->kind != GEN_EV_DONE && !ch)) {
        gen_event_clear(ev); /* after the request ended here (shutdown), or not one of its choices */
        return;
    }
    if (ev->kind == GEN_EV_TOKEN) ch->n_generated++;
    if (ev->kind == GEN_EV_FINISH && !ch->ended) {
        ch->ended = 1;
        ch->finish = ev->finish;
        g->n_ended++;
    }
    if (ev->kind == GEN_EV_DONE) {
        for (int c = 0; c < g->p.n; c++) g->ch[c].ended = 1;
        g->n_ended = g->p.n;
        g->done_queued = 1;
    }
    push(g, ev);
    *ev = (struct gen_event){0};
}

void gen_abort_relay(struct gen *g)
{
    for (int c = 0; c < g->p.n; c++) gen_end_choice(g, c, GEN_FINISH_ABORT, NULL);
    if (!g->done_queued) queue_done(g);
}

int gen_poll(struct gen *g, struct gen_event *ev)
{
    pthread_mutex_lock(&g->mu);
    struct gen_node *n = g->head;
    if (n) {
        g->head = n->next;
        if (!g->head) g->tail = NULL;
    }
    pthread_mutex_unlock(&g->mu);
    if (!n) return 0;
    *ev = n->ev;
    free(n);
    return 1;
}

void gen_notify(struct gen *g)
{
    pthread_mutex_lock(&g->mu);
    if (g->head && g->notify) g->notify(g->arg);
    pthread_mutex_unlock(&g->mu);
}

void gen_cancel(struct gen *g)
{
    __atomic_store_n(&g->cancel, 1, __ATOMIC_RELEASE);
}

void gen_release(struct gen *g)
{
    pthread_mutex_lock(&g->mu);
    g->notify = NULL;
    pthread_mutex_unlock(&g->mu);
    gen_unref(g);
}

/* ---- text output --------------------------------------------------------------------------- */

/* Length of the longest tail of s[0..n) that is the beginning of some stop string. */
static size_t stop_prefix_tail(const struct gen *g, const char *s, size_t n)
{
    size_t best = 0;
    for (int i = 0; i < g->p.n_stop; i++) {
        size_t ls = strlen(g->stop[i]);
        for (size_t k = ls - 1 < n ? ls - 1 : n; k > best; k--)
            if (memcmp(s + n - k, g->stop[i], k) == 0) {
                best = k;
                break;
            }
    }
    return best;
}

/* Earliest position of any stop string in s[0..n), or -1. */
static long find_stop(const struct gen *g, const char *s, size_t n)
{
    long best = -1;
    for (int i = 0; i < g->p.n_stop; i++) {
        const char *hit = memmem(s, n, g->stop[i], strlen(g->stop[i]));
        if (hit && (best < 0 || hit - s < best)) best = hit - s;
    }
    return best;
}

/* Appends text to the event's channel (content or reasoning). */
static void ev_add_text(struct gen_event *ev, int reasoning, const char *s, size_t n)
{
    char **dst = reasoning ? &ev->reasoning : &ev->content;
    size_t *len = reasoning ? &ev->reasoning_len : &ev->content_len;
    if (!n) return;
    *dst = xrealloc(*dst, *len + n + 1);
    memcpy(*dst + *len, s, n);
    *len += n;
    (*dst)[*len] = 0;
}

/* Moves the final part of the held text into the event; true when a stop string matched. */
static bool release_text(struct gen *g, struct gen_choice *ch, struct gen_event *ev)
{
    struct tok_text *h = &ch->hold;
    long at = h->n ? find_stop(g, h->s, h->n) : -1;
    if (at >= 0) {
        ev_add_text(ev, ch->in_reasoning, h->s, (size_t)at);
        h->n = 0;
        ch->stopped_by_string = 1;
        return true;
    }
    if (!h->n) return false;
    size_t keep = stop_prefix_tail(g, h->s, h->n);
    ev_add_text(ev, ch->in_reasoning, h->s, h->n - keep);
    memmove(h->s, h->s + h->n - keep, keep);
    h->n = keep;
    h->s[keep] = 0;
    return false;
}

bool gen_is_stop_id(const struct gen *g, int32_t t)
{
    for (int i = 0; i < g->n_stop_ids; i++)
        if (g->stop_ids[i] == t) return true;
    return false;
}

/* The current token's text (in ch->piece) goes to the tool-call parser, whose content (or the
 * text itself, without a parser or while reasoning) joins the held text. */
static void route_piece(struct gen_choice *ch, int32_t token, struct gen_event *ev, bool last)
{
    if (ch->in_reasoning || ch->tc.fmt == TC_NONE) {
        tok_text_append(&ch->hold, ch->piece.s, ch->piece.n);
        return;
    }
    struct tc_out o = {0};
    tc_push(&ch->tc, token, ch->piece.s, ch->piece.n, &o);
    if (last) tc_finish(&ch->tc, &o);
    tok_text_append(&ch->hold, o.content.s, o.content.n);
    ev->tools = o.d, ev->n_tools = o.n_d;
    o.d = NULL, o.n_d = 0;
    tc_out_clear(&o);
}

enum gen_take gen_take_token(struct gen *g, int c, const struct smp_result *r)
{
    struct gen_choice *ch = &g->ch[c];
    struct gen_event ev = {.kind = GEN_EV_TOKEN, .choice = c, .token = r->token};
    enum gen_take res = GEN_GO_ON;
    if (g->p.sampling.logprobs) ev.lp = *r;
    ch->n_generated++;
    if (grammar_token(g, ch, r->token) != 0) res = GEN_FAILED;
    if (g->p.reasoning && r->token == g->think_end && ch->in_reasoning) {
        ev_add_text(&ev, 1, ch->hold.s, ch->hold.n); /* stop strings apply per channel */
        ch->hold.n = 0;
        ch->in_reasoning = 0;
    } else if (g->p.reasoning && r->token == g->think_start && ch->n_generated == 1) {
        ch->in_reasoning = 1;
    } else if (!gen_is_stop_id(g, r->token)) {
        ch->piece.n = 0;
        tok_stream_push(&ch->ts, r->token, &ch->piece, NULL);
        route_piece(ch, r->token, &ev, false);
        if (release_text(g, ch, &ev) && res == GEN_GO_ON) res = GEN_STOPPED;
    }
    if (res == GEN_GO_ON && ch->gphase == GP_ACTIVE && gm_finished(ch->gm)) res = GEN_STOPPED;
    push(g, &ev);
    return res;
}

void gen_end_choice(struct gen *g, int c, enum gen_finish why, const char *error)
{
    struct gen_choice *ch = &g->ch[c];
    struct gen_event ev = {.kind = GEN_EV_FINISH, .choice = c, .finish = why};
    if (ch->ended) return;
    if (!ch->stopped_by_string) {
        ch->piece.n = 0;
        tok_stream_flush(&ch->ts, &ch->piece);
        route_piece(ch, -1, &ev, true);
        ev_add_text(&ev, ch->in_reasoning, ch->hold.s, ch->hold.n);
    }
    ch->hold.n = 0;
    ev.n_tool_calls = ch->tc.n_calls;
    if (error) ev.error = strdup(error);
    ch->ended = 1;
    ch->finish = why;
    g->n_ended++;
    push(g, &ev);
    if (gen_done(g)) queue_done(g);
}
