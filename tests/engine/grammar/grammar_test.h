/* grammar_test: helpers shared by the grammar tests — the fixture vocabulary, matching a text
 * through a fresh matcher, and the brute-force oracle every mask is checked against. */
#ifndef SEEKD_TEST_GRAMMAR_H
#define SEEKD_TEST_GRAMMAR_H

#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "engine/grammar/grammar.h"
#include "engine/grammar/match.h"
#include "engine/grammar/vocab.h"
#include "engine/text/tokenizer.h"

#define GT_FIX "tests/fixtures/tokenizer/v3/"

static inline struct tok *gt_tok(void)
{
    struct err e = {0};
    struct tok *t = tok_load(GT_FIX "tokenizer.json", GT_FIX "tokenizer_config.json", &e);
    ck_assert_msg(t != NULL, "%s", e.msg);
    return t;
}

/* Whether the whole text is a complete document of g. */
static inline int gt_matches(struct gram *g, const char *s)
{
    struct err e = {0};
    struct gm *m = gm_create(g, &e);
    ck_assert_msg(m != NULL, "%s", e.msg);
    int ok = gm_accept_bytes(m, (const uint8_t *)s, strlen(s), &e) == 0 && gm_can_end(m);
    gm_destroy(m);
    return ok;
}

/* Checks gm_fill_mask against trying every token on a copy of the matcher. Returns the number
 * of allowed tokens. */
static inline int gt_check_mask(struct gm *m, const struct gv *v, int32_t eos)
{
    struct err e = {0};
    int32_t words = gv_words(v);
    uint64_t *mask = calloc((size_t)words, sizeof *mask);
    ck_assert_msg(gm_fill_mask(m, v, mask, &eos, 1, &e) == 0, "%s", e.msg);
    int n = 0;
    for (int32_t t = 0; t < v->n_vocab; t++) {
        int bit = (int)(mask[t >> 6] >> (t & 63) & 1);
        int want;
        if (t == eos) {
            want = gm_can_end(m);
        } else {
            struct gm *c = gm_clone(m);
            want = gm_accept_token(c, v, t, &e) == 0;
            gm_destroy(c);
        }
        ck_assert_msg(bit == want, "token %d: mask says %d, trying it says %d", t, bit, want);
        n += bit;
    }
    free(mask);
    return n;
}

/* Walks up to steps tokens: each a random allowed one (seeded), every mask checked. Returns
 * 1 when the document completed. */
static inline int gt_random_walk(struct gram *g, const struct gv *v, int32_t eos, int steps,
                                 unsigned seed)
{
    struct err e = {0};
    struct gm *m = gm_create(g, &e);
    ck_assert_msg(m != NULL, "%s", e.msg);
    int32_t words = gv_words(v);
    uint64_t *mask = calloc((size_t)words, sizeof *mask);
    int done = 0;
    for (int i = 0; i < steps && !done; i++) {
        int n = gt_check_mask(m, v, eos);
        ck_assert_msg(n > 0, "no token allowed at step %d", i);
        ck_assert_int_eq(gm_fill_mask(m, v, mask, &eos, 1, &e), 0);
        int pick = (int)(rand_r(&seed) % (unsigned)n);
        for (int32_t t = 0; t < v->n_vocab; t++) {
            if (!(mask[t >> 6] >> (t & 63) & 1) || pick--) continue;
            if (t == eos)
                done = 1;
            else
                ck_assert_msg(gm_accept_token(m, v, t, &e) == 0, "%s", e.msg);
            break;
        }
        if (gm_finished(m)) done = 1;
    }
    free(mask);
    gm_destroy(m);
    return done;
}

#endif
