/* tokenizer: encoding (added tokens, Split pre-tokenizer, byte-level BPE) and decoding (one-shot
 * and streaming) over a loaded struct tok.  Loading lives in tokenizer_load.c.
 *
 * Encoding mirrors HF tokenizers step by step:
 *   1. (TOK_PARSE_SPECIAL only) added tokens: leftmost-longest matches of the non-normalized
 *      tokens, then of the normalized ones in the text between; lstrip/rstrip absorb whitespace.
 *   2. every Split step re-splits each piece (a regex run on that piece alone);
 *   3. each final piece's bytes go through BPE: repeatedly merge the adjacent pair with the lowest
 *      merge rank, leftmost first (a binary heap of candidate pairs, stale ones skipped). */
#include "engine/text/tokenizer_internal.h"

#include "engine/text/utf8.h"

#include <stdlib.h>
#include <string.h>

/* ---- growable arrays ------------------------------------------------------------------------ */

void tok_ids_push(struct tok_ids *a, int32_t id)
{
    if (a->n == a->cap) {
        a->cap = a->cap ? 2 * a->cap : 64;
        a->v = realloc(a->v, a->cap * sizeof *a->v);
        if (!a->v) ERR_FATAL("out of memory (%zu ids)", a->cap);
    }
    a->v[a->n++] = id;
}

void tok_ids_free(struct tok_ids *a)
{
    free(a->v);
    *a = (struct tok_ids){0};
}

void tok_text_free(struct tok_text *s)
{
    free(s->s);
    *s = (struct tok_text){0};
}

void tok_text_append(struct tok_text *t, const char *s, size_t n)
{
    if (!n) return;
    if (t->n + n + 1 > t->cap) {
        t->cap = (t->n + n + 1) * 2;
        t->s = xrealloc(t->s, t->cap);
    }
    memcpy(t->s + t->n, s, n);
    t->n += n;
    t->s[t->n] = 0;
}

/* ---- lookups -------------------------------------------------------------------------------- */

int32_t tok_added_id(const struct tok *t, const char *content)
{
    for (int32_t i = 0; i < t->n_added; i++)
        if (!strcmp(t->added[i].text, content)) return t->added[i].id;
    return -1;
}

int32_t tok_n_vocab(const struct tok *t) { return t->n_vocab; }
int32_t tok_bos_id(const struct tok *t) { return t->bos_id; }
int32_t tok_eos_id(const struct tok *t) { return t->eos_id; }
int32_t tok_eot_id(const struct tok *t) { return t->eot_id; }
const char *tok_chat_template(const struct tok *t) { return t->chat_template; }

size_t tok_max_piece_bytes(const struct tok *t)
{
    size_t best = 0;
    for (int32_t id = 0; id < t->n_vocab; id++) {
        size_t n = t->piece_off[id + 1] - t->piece_off[id];
        if (n > best) best = n;
    }
    return best;
}

bool tok_is_special(const struct tok *t, int32_t id)
{
    return id >= 0 && id < t->n_vocab && (t->flags[id] & TOK_F_SPECIAL);
}

bool tok_is_added(const struct tok *t, int32_t id)
{
    return id >= 0 && id < t->n_vocab && (t->flags[id] & TOK_F_ADDED);
}

const uint8_t *tok_bytes(const struct tok *t, int32_t id, size_t *len)
{
    *len = 0;
    if (id < 0 || id >= t->n_vocab || !(t->flags[id] & TOK_F_ASSIGNED)) return NULL;
    return tok_piece(t, id, len);
}

static bool merge_get(const struct tok *t, int32_t a, int32_t b, uint64_t *val)
{
    uint64_t key = (uint64_t)a << 32 | (uint32_t)b;
    for (size_t h = tok_hash64(key, t->merge_cap);; h = (h + 1) & (t->merge_cap - 1)) {
        if (t->merge_key[h] == key) {
            *val = t->merge_val[h];
            return true;
        }
        if (t->merge_key[h] == TOK_MERGE_EMPTY) return false;
    }
}

/* The model-vocab token whose bytes are exactly s, or -1 (ignore_merges tokenizers only). */
static int32_t word_id(const struct tok *t, const uint8_t *s, size_t n)
{
    for (size_t h = (size_t)tok_hash_bytes(s, n) & (t->word_cap - 1); t->word_slot[h] >= 0;
         h = (h + 1) & (t->word_cap - 1)) {
        size_t len;
        const uint8_t *p = tok_piece(t, t->word_slot[h], &len);
        if (len == n && !memcmp(p, s, n)) return t->word_slot[h];
    }
    return -1;
}

/* ---- BPE ------------------------------------------------------------------------------------ */

struct sym {
    int32_t id, prev, next, len; /* len 0: merged into its left neighbour */
};

struct cand {
    uint32_t rank;
    int32_t pos, new_id; /* the pair (pos, syms[pos].next) would become new_id */
};

/* One encode call's scratch space. */
struct enc {
    const struct tok *t;
    struct tok_ids *out;
    pcre2_match_data *md;
    struct sym *syms;
    struct cand *heap;
    size_t cap, n_heap;
};

static bool cand_less(struct cand a, struct cand b)
{
    return a.rank != b.rank ? a.rank < b.rank : a.pos < b.pos;
}

static void heap_push(struct enc *x, struct cand c)
{
    size_t i = x->n_heap++;
    while (i && cand_less(c, x->heap[(i - 1) / 2])) {
        x->heap[i] = x->heap[(i - 1) / 2];
        i = (i - 1) / 2;
    }
    x->heap[i] = c;
}

static struct cand heap_pop(struct enc *x)
{
    struct cand top = x->heap[0], last = x->heap[--x->n_heap];
    size_t i = 0, n = x->n_heap;
    for (;;) {
        size_t c = 2 * i + 1;
        if (c >= n) break;
        if (c + 1 < n && cand_less(x->heap[c + 1], x->heap[c])) c++;
        if (!cand_less(x->heap[c], last)) break;
        x->heap[i] = x->heap[c];
        i = c;
    }
    if (n) x->heap[i] = last;
    return top;
}

/* Queues the pair starting at symbol pos if the merges know it. */
static void push_pair(struct enc *x, int32_t pos)
{
    int32_t nx = x->syms[pos].next;
    uint64_t v;
    if (nx >= 0 && x->syms[pos].id >= 0 && x->syms[nx].id >= 0 && /* a byte without a token */
        merge_get(x->t, x->syms[pos].id, x->syms[nx].id, &v))
        heap_push(x, (struct cand){(uint32_t)(v >> 32), pos, (int32_t)(uint32_t)v});
}

static void reserve(struct enc *x, size_t n)
{
    if (n <= x->cap) return;
    x->cap = n < 64 ? 64 : n;
    free(x->syms);
    free(x->heap);
    x->syms = xmalloc(x->cap * sizeof *x->syms);
    x->heap = xmalloc(3 * x->cap * sizeof *x->heap);
}

/* Merges one piece's bytes and appends the resulting ids. */
static void bpe(struct enc *x, const uint8_t *s, size_t n)
{
    const struct tok *t = x->t;
    int32_t whole = t->ignore_merges ? word_id(t, s, n) : -1;
    if (n == 1 || whole >= 0) {
        if (whole >= 0 || t->byte_id[s[0]] >= 0) tok_ids_push(x->out, whole >= 0 ? whole : t->byte_id[s[0]]);
        return;
    }
    reserve(x, n);
    x->n_heap = 0;
    for (size_t i = 0; i < n; i++)
        x->syms[i] = (struct sym){t->byte_id[s[i]], (int32_t)i - 1, i + 1 < n ? (int32_t)i + 1 : -1, 1};
    for (size_t i = 0; i + 1 < n; i++) push_pair(x, (int32_t)i);
    while (x->n_heap) {
        struct cand c = heap_pop(x);
        struct sym *a = &x->syms[c.pos];
        uint64_t v;
        if (!a->len || a->next < 0) continue;
        struct sym *b = &x->syms[a->next];
        if (!merge_get(t, a->id, b->id, &v) || (int32_t)(uint32_t)v != c.new_id) continue;
        a->id = c.new_id, a->len += b->len, b->len = 0, a->next = b->next;
        if (a->next >= 0) x->syms[a->next].prev = c.pos;
        if (a->prev >= 0) push_pair(x, a->prev);
        push_pair(x, c.pos);
    }
    for (int32_t i = 0; i >= 0; i = x->syms[i].next)
        if (x->syms[i].id >= 0) tok_ids_push(x->out, x->syms[i].id); /* GGUF vocabularies may lack bytes */
}

/* ---- pre-tokenizer -------------------------------------------------------------------------- */

static size_t char_len(uint8_t lead)
{
    return lead < 0x80 ? 1 : lead < 0xE0 ? 2 : lead < 0xF0 ? 3 : 4;
}

/* Runs Split step k over one piece, handing each resulting piece to step k + 1 (or to BPE). */
static int pre_tokenize(struct enc *x, int k, const uint8_t *s, size_t n, struct err *e)
{
    if (!n) return 0;
    if (k == x->t->n_splits) {
        bpe(x, s, n);
        return 0;
    }
    const struct tok_split *sp = &x->t->splits[k];
    size_t pos = 0, last = 0;
    while (pos < n) {
        int rc = pcre2_match(sp->re, s, n, pos, PCRE2_NO_UTF_CHECK, x->md, NULL);
        if (rc == PCRE2_ERROR_NOMATCH) break;
        if (rc < 0) return err_set(e, "pre-tokenizer regex %d failed (PCRE2 error %d)", k, rc);
        PCRE2_SIZE *ov = pcre2_get_ovector_pointer(x->md);
        size_t ms = ov[0], me = ov[1]; /* copied: the recursion below reuses x->md */
        if (me == ms) { /* an empty match splits nothing */
            pos = me + char_len(s[me < n ? me : n - 1]);
            continue;
        }
        if (pre_tokenize(x, k + 1, s + last, ms - last, e)) return -1;
        if (sp->behavior == TOK_SPLIT_ISOLATED && pre_tokenize(x, k + 1, s + ms, me - ms, e))
            return -1;
        last = pos = me;
    }
    return pre_tokenize(x, k + 1, s + last, n - last, e);
}

/* ---- added tokens --------------------------------------------------------------------------- */

/* Rust's char::is_whitespace (Unicode White_Space), used by lstrip/rstrip. */
static bool is_white_space(uint32_t c)
{
    return (c >= 0x09 && c <= 0x0D) || c == 0x20 || c == 0x85 || c == 0xA0 || c == 0x1680 ||
           (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 || c == 0x202F ||
           c == 0x205F || c == 0x3000;
}

/* Length of the whitespace run starting at s (forward) or ending at s + n (backward). */
static size_t white_run(const uint8_t *s, size_t n, bool backward)
{
    size_t done = 0, len;
    uint32_t cp;
    while (done < n) {
        size_t at = backward ? n - done - 1 : done;
        if (backward)
            while (at > 0 && (s[at] & 0xC0) == 0x80) at--;
        utf8_scan(s + at, n - at, &len, &cp);
        if (!is_white_space(cp)) break;
        done = backward ? n - at : done + len;
    }
    return done;
}

/* The longest added token starting at s, as an index into t->added, or -1. */
static int32_t trie_match(const struct tok_trie *tr, const uint8_t *s, size_t n)
{
    int32_t at = 0, best = -1;
    for (size_t i = 0; i < n; i++) {
        int32_t c = tr->nodes[at].child;
        while (c >= 0 && tr->nodes[c].byte != s[i]) c = tr->nodes[c].sibling;
        if (c < 0) break;
        at = c;
        if (tr->nodes[at].added >= 0) best = tr->nodes[at].added;
    }
    return best;
}

/* Splits on the added tokens of stage 0 (non-normalized) then stage 1 (normalized); the text
 * between them goes to the pre-tokenizer. */
static int split_added(struct enc *x, int stage, const uint8_t *s, size_t n, struct err *e)
{
    const struct tok_trie *tr = stage == 0 ? &x->t->raw_trie : &x->t->norm_trie;
    size_t last = 0;
    for (size_t i = 0; tr->nodes && i < n; i++) {
        int32_t a = tr->first[s[i]] ? trie_match(tr, s + i, n - i) : -1;
        if (a < 0) continue;
        const struct tok_added *ad = &x->t->added[a];
        size_t start = i, stop = i + ad->len;
        if (ad->lstrip) start -= white_run(s + last, i - last, true);
        if (ad->rstrip) stop += white_run(s + stop, n - stop, false);
        if (stage == 0 ? split_added(x, 1, s + last, start - last, e)
                       : pre_tokenize(x, 0, s + last, start - last, e))
            return -1;
        tok_ids_push(x->out, ad->id);
        last = stop;
        i = stop - 1;
    }
    return stage == 0 ? split_added(x, 1, s + last, n - last, e) : pre_tokenize(x, 0, s + last, n - last, e);
}

int tok_encode(const struct tok *t, const char *text, size_t len, unsigned flags,
               struct tok_ids *out, struct err *e)
{
    const uint8_t *s = (const uint8_t *)text;
    size_t bad = utf8_valid_len(s, len), n0 = out->n;
    if (bad != len) return err_set(e, "input is not valid UTF-8 (at byte %zu)", bad);
    if ((flags & TOK_ADD_SPECIAL) && t->add_bos) tok_ids_push(out, t->bos_id);
    struct enc x = {.t = t, .out = out, .md = pcre2_match_data_create(1, NULL)};
    if (!x.md) ERR_FATAL("out of memory");
    int rc = (flags & TOK_PARSE_SPECIAL) ? split_added(&x, 0, s, len, e) : pre_tokenize(&x, 0, s, len, e);
    pcre2_match_data_free(x.md);
    free(x.syms);
    free(x.heap);
    if (rc) {
        out->n = n0;
        return -1;
    }
    if ((flags & TOK_ADD_SPECIAL) && t->add_eos) tok_ids_push(out, t->eos_id);
    return 0;
}

/* ---- decoding ------------------------------------------------------------------------------- */

static int check_id(const struct tok *t, int32_t id, struct err *e)
{
    if (id >= 0 && id < t->n_vocab && (t->flags[id] & TOK_F_ASSIGNED)) return 0;
    return err_set(e, "token id %d is not in the vocabulary", (int)id);
}

int tok_decode(const struct tok *t, const int32_t *ids, size_t n_ids, bool skip_special,
               struct tok_text *out, struct err *e)
{
    size_t total = 0, len;
    for (size_t i = 0; i < n_ids; i++) {
        if (check_id(t, ids[i], e)) return -1;
        total += t->piece_off[ids[i] + 1] - t->piece_off[ids[i]];
    }
    uint8_t *bytes = xmalloc(total + 1);
    size_t k = 0;
    for (size_t i = 0; i < n_ids; i++) {
        if (skip_special && (t->flags[ids[i]] & TOK_F_SPECIAL)) continue;
        const uint8_t *p = tok_piece(t, ids[i], &len);
        memcpy(bytes + k, p, len);
        k += len;
    }
    utf8_lossy_append(&out->s, &out->n, &out->cap, bytes, k, 1);
    free(bytes);
    return 0;
}

void tok_stream_init(struct tok_stream *s, const struct tok *t, bool skip_special)
{
    *s = (struct tok_stream){.tok = t, .skip_special = skip_special};
}

int tok_stream_push(struct tok_stream *s, int32_t id, struct tok_text *out, struct err *e)
{
    const struct tok *t = s->tok;
    if (check_id(t, id, e)) return -1;
    if (s->skip_special && (t->flags[id] & TOK_F_SPECIAL)) return 0;
    size_t len;
    const uint8_t *p = tok_piece(t, id, &len);
    uint8_t small[64], *buf = s->n_pending + len <= sizeof small ? small : xmalloc(s->n_pending + len);
    memcpy(buf, s->pending, s->n_pending);
    memcpy(buf + s->n_pending, p, len);
    size_t n = s->n_pending + len;
    size_t keep = utf8_lossy_append(&out->s, &out->n, &out->cap, buf, n, 0);
    memcpy(s->pending, buf + n - keep, keep);
    s->n_pending = keep;
    if (buf != small) free(buf);
    return 0;
}

void tok_stream_flush(struct tok_stream *s, struct tok_text *out)
{
    utf8_lossy_append(&out->s, &out->n, &out->cap, s->pending, s->n_pending, 1);
    s->n_pending = 0;
}
