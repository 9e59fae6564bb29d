/* fuzz_params: libFuzzer target, request JSON → validated parameters.
 *
 * The first byte picks the endpoint (completions, chat, tokenize, detokenize); the rest is the
 * request body. The body goes through exactly what a worker runs for that endpoint (the
 * server's own functions, server/api_routes.c included here for its static steps) on a request
 * with no connection, whose reply is recorded. Then the invariants: a reply is one JSON object —
 * an OpenAI error with its four fields and a 4xx/503 status, or a 200 — and a request that got no
 * reply holds parameters the engine accepts: n, max_tokens, stop strings, sampling values and
 * prompt ids all in range. Any crash, sanitizer report or broken invariant aborts.
 *
 * Run from the repository root (the tokenizer fixture is read relative to it). */
#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/text/utf8.h"
#include "server/api_routes.c"

static struct api fz_api;
static const char *fz_names[] = {"fuzz-model", NULL};

int LLVMFuzzerInitialize(int *argc, char ***argv);
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    struct err e = {0};
    (void)argc, (void)argv;
    struct tok *tok = tok_load("tests/fixtures/tokenizer/v3/tokenizer.json",
                               "tests/fixtures/tokenizer/v3/tokenizer_config.json", &e);
    struct chat *chat = tok ? chat_create(tok, "auto", &e) : NULL;
    if (!chat) {
        fprintf(stderr, "fuzz_params: %s (run from the repository root)\n", e.msg);
        exit(1);
    }
    fz_api = (struct api){.tok = tok, .chat = chat, .names = fz_names, .max_model_len = 512,
                          .ready = 1, .max_token_text = 3 * tok_max_piece_bytes(tok) + 4};
    return 0;
}

/* A request with no connection: replies are recorded, as on a worker. */
static struct http_req *local_request(const uint8_t *data, size_t size)
{
    struct http_req *r = xcalloc(1, sizeof *r);
    r->app = &fz_api;
    r->method = "POST";
    r->path = strdup("/fuzz");
    r->body = xmalloc(size + 1);
    memcpy(r->body, data, size);
    r->body[size] = 0;
    r->n_body = size;
    r->deferred = 1;
    return r;
}

static void free_request(struct http_req *r)
{
    for (int i = 0; i < r->n_hdrs; i++) free(r->hdr_name[i]), free(r->hdr_value[i]);
    free(r->pending.body);
    free(r->pending.content_type);
    free(r->path);
    free(r->body);
    free(r);
}

#define CHECK(cond)                                                                              \
    do {                                                                                         \
        if (!(cond)) ERR_FATAL("invariant broken: %s", #cond);                                  \
    } while (0)

/* A recorded reply: one JSON object, valid UTF-8; an error has the four OpenAI fields. */
static void check_reply(const struct http_req *r)
{
    int st = r->pending.status;
    CHECK(st == 200 || st == 400 || st == 404 || st == 503);
    CHECK(r->pending.body);
    CHECK(utf8_valid_len((const uint8_t *)r->pending.body, r->pending.len) == r->pending.len);
    json_error_t je;
    /* detokenized text may hold NUL characters, written \u0000 */
    json_t *doc = json_loadb(r->pending.body, r->pending.len, JSON_ALLOW_NUL, &je);
    CHECK(json_is_object(doc));
    if (st != 200) {
        json_t *err = json_object_get(doc, "error");
        CHECK(json_is_object(err) && json_object_size(err) == 4);
        CHECK(json_string_length(json_object_get(err, "message")) > 0);
        CHECK(json_is_string(json_object_get(err, "type")));
        CHECK(json_object_get(err, "param") && json_object_get(err, "code"));
    }
    json_decref(doc);
}

/* Parameters that got no 400 must be ones the engine takes. */
static void check_prep(const struct prep *pr)
{
    const struct gen_params *g = &pr->p.gp;
    struct err e;
    CHECK(g->n >= 1 && g->n <= GEN_MAX_CHOICES);
    CHECK(g->max_tokens == -1 || g->max_tokens >= 1);
    CHECK(g->n_stop >= 0 && g->n_stop <= GEN_MAX_STOP);
    for (int i = 0; i < g->n_stop; i++) CHECK(g->stop[i] && g->stop[i][0]);
    CHECK(smp_params_check(&g->sampling, tok_n_vocab(fz_api.tok), &e) == 0);
    CHECK(pr->n_prompts >= 1 && pr->n_prompts <= 64);
    for (int k = 0; k < pr->n_prompts; k++) {
        CHECK(pr->prompts[k].n_ids >= 1);
        for (int i = 0; i < pr->prompts[k].n_ids; i++)
            CHECK(pr->prompts[k].ids[i] >= 0 && pr->prompts[k].ids[i] < tok_n_vocab(fz_api.tok));
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size < 1 || size > (1u << 16)) return 0;
    struct http_req *r = local_request(data + 1, size - 1);
    int kind = data[0] % 4;
    if (kind < 2) {
        struct prep *pr = xcalloc(1, sizeof *pr);
        pr->chat = kind == 1;
        r->user = pr;
        prep_generation(r);
        if (r->pending.status) check_reply(r);
        else check_prep(r->user);
        prep_free(r->user);
    } else {
        if (kind == 2) tokenize(r);
        else detokenize(r);
        CHECK(r->pending.status);
        check_reply(r);
    }
    free_request(r);
    return 0;
}
