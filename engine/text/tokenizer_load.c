/* tokenizer_load: turns tokenizer.json and tokenizer_config.json into a struct tok.
 *
 * Accepts exactly what encode/decode can honour: a BPE model over the byte-level alphabet, an
 * empty normalizer, a pre-tokenizer made of Split regexes (Isolated/Removed) ending in ByteLevel,
 * and the ByteLevel decoder.  Anything else fails with a message naming the part.  This is the
 * one engine file that reads JSON (a model file, not a request). */
#include "engine/text/tokenizer_internal.h"

#include "engine/file.h"
#include "engine/text/utf8.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The GPT-2 pattern ByteLevel(use_regex=true) splits with before mapping bytes. */
static const char GPT2_REGEX[] =
    "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+";

/* ---- byte-level alphabet -------------------------------------------------------------------- */

/* The GPT-2 byte -> code point table, inverted: byte_of[cp] for cp < 324, or -1. */
void tokb_byte_level_inverse(int16_t byte_of[324])
{
    for (int i = 0; i < 324; i++) byte_of[i] = -1;
    int extra = 0;
    for (int b = 0; b < 256; b++) {
        bool visible = (b >= 33 && b <= 126) || (b >= 161 && b <= 172) || (b >= 174);
        byte_of[visible ? b : 256 + extra++] = (int16_t)b;
    }
}

size_t tokb_token_bytes(const char *s, size_t n, const int16_t byte_of[324], uint8_t *out)
{
    size_t i = 0, k = 0, len;
    uint32_t cp;
    while (i < n) {
        if (utf8_scan((const uint8_t *)s + i, n - i, &len, &cp) != UTF8_CHAR || cp >= 324 ||
            byte_of[cp] < 0) {
            memcpy(out, s, n);
            return n;
        }
        out[k++] = (uint8_t)byte_of[cp];
        i += len;
    }
    return k;
}

/* ---- small JSON helpers --------------------------------------------------------------------- */

static bool json_flag(json_t *o, const char *key)
{
    return json_is_true(json_object_get(o, key));
}

/* A string field, or "" when absent or null. */
static const char *json_str(json_t *o, const char *key)
{
    const char *s = json_string_value(json_object_get(o, key));
    return s ? s : "";
}

static int expect_null_or_empty(json_t *model, const char *key, struct err *e)
{
    json_t *v = json_object_get(model, key);
    if (!v || json_is_null(v) || (json_is_string(v) && !*json_string_value(v))) return 0;
    return err_set(e, "model.%s is set; only null is supported", key);
}

/* ---- vocabulary and pieces ------------------------------------------------------------------ */

/* The highest id in vocab and added tokens; -1 if any id is missing or negative. */
static int32_t max_id(json_t *vocab, json_t *added)
{
    int32_t m = -1;
    const char *key;
    json_t *v;
    json_object_foreach(vocab, key, v)
    {
        if (!json_is_integer(v) || json_integer_value(v) < 0 || json_integer_value(v) >= (1 << 24))
            return -1;
        if (json_integer_value(v) > m) m = (int32_t)json_integer_value(v);
    }
    size_t i;
    json_array_foreach(added, i, v)
    {
        json_t *id = json_object_get(v, "id");
        if (!json_is_integer(id) || json_integer_value(id) < 0 || json_integer_value(id) >= (1 << 24))
            return -1;
        if (json_integer_value(id) > m) m = (int32_t)json_integer_value(id);
    }
    return m;
}

/* Fills piece_off/pieces/flags from the model vocab and the added tokens. */
static int build_pieces(struct tok *t, json_t *vocab, json_t *added, struct err *e)
{
    int16_t byte_of[324];
    tokb_byte_level_inverse(byte_of);
    const char **text = xcalloc((size_t)t->n_vocab, sizeof *text);
    const char *key;
    json_t *v;
    size_t i, total = 0;
    json_object_foreach(vocab, key, v)
    {
        text[json_integer_value(v)] = key;
    }
    json_array_foreach(added, i, v) text[json_integer_value(json_object_get(v, "id"))] =
        json_str(v, "content");
    for (int32_t id = 0; id < t->n_vocab; id++) total += text[id] ? strlen(text[id]) : 0;
    t->piece_off = xcalloc((size_t)t->n_vocab + 1, sizeof *t->piece_off);
    t->pieces = xmalloc(total + 1);
    t->flags = xcalloc((size_t)t->n_vocab, 1);
    uint32_t off = 0;
    for (int32_t id = 0; id < t->n_vocab; id++) {
        t->piece_off[id] = off;
        if (!text[id]) continue;
        off += (uint32_t)tokb_token_bytes(text[id], strlen(text[id]), byte_of, t->pieces + off);
        t->flags[id] = TOK_F_ASSIGNED;
    }
    t->piece_off[t->n_vocab] = off;
    free(text);
    return 0;
}

/* byte_id[b]: the token of the single byte b; a byte-level BPE must have all 256. */
static int find_byte_tokens(struct tok *t, json_t *vocab, struct err *e)
{
    int16_t byte_of[324];
    tokb_byte_level_inverse(byte_of);
    for (int cp = 0; cp < 324; cp++) {
        if (byte_of[cp] < 0) continue;
        char s[4];
        s[0] = cp < 0x80 ? (char)cp : (char)(0xC0 | (cp >> 6));
        s[1] = cp < 0x80 ? 0 : (char)(0x80 | (cp & 0x3F));
        s[2] = 0;
        json_t *id = json_object_get(vocab, s);
        if (!json_is_integer(id))
            return err_set(e, "model.vocab has no token for byte 0x%02x (not a byte-level BPE)",
                           byte_of[cp]);
        t->byte_id[byte_of[cp]] = (int32_t)json_integer_value(id);
    }
    return 0;
}

/* The word table (bytes -> model-vocab id), needed only with ignore_merges. */
static void build_word_table(struct tok *t, json_t *vocab)
{
    t->word_cap = 16;
    while (t->word_cap < 2 * json_object_size(vocab)) t->word_cap *= 2;
    t->word_slot = xmalloc(t->word_cap * sizeof *t->word_slot);
    for (size_t i = 0; i < t->word_cap; i++) t->word_slot[i] = -1;
    const char *key;
    json_t *v;
    json_object_foreach(vocab, key, v)
    {
        size_t len;
        int32_t id = (int32_t)json_integer_value(v);
        const uint8_t *p = tok_piece(t, id, &len);
        size_t h = (size_t)tok_hash_bytes(p, len) & (t->word_cap - 1);
        while (t->word_slot[h] >= 0) h = (h + 1) & (t->word_cap - 1);
        t->word_slot[h] = id;
    }
}

/* ---- merges --------------------------------------------------------------------------------- */

void tokb_merges_alloc(struct tok *t, size_t n)
{
    t->merge_cap = 16;
    while (t->merge_cap < 2 * n + 2) t->merge_cap *= 2;
    t->merge_key = xmalloc(t->merge_cap * sizeof *t->merge_key);
    t->merge_val = xmalloc(t->merge_cap * sizeof *t->merge_val);
    memset(t->merge_key, 0xFF, t->merge_cap * sizeof *t->merge_key);
}

void tokb_merge_put(struct tok *t, uint64_t key, uint64_t val)
{
    size_t h = tok_hash64(key, t->merge_cap);
    while (t->merge_key[h] != TOK_MERGE_EMPTY && t->merge_key[h] != key)
        h = (h + 1) & (t->merge_cap - 1);
    t->merge_key[h] = key, t->merge_val[h] = val;
}

/* Grows a scratch buffer to hold n bytes. */
static char *fit(char **buf, size_t *cap, size_t n)
{
    if (n > *cap) {
        *cap = n * 2;
        free(*buf);
        *buf = xmalloc(*cap);
    }
    return *buf;
}

/* One merge entry as its two token strings: "a b" or ["a", "b"]. */
static int merge_pair(json_t *m, size_t i, char **buf, size_t *cap, const char **a,
                      const char **b, struct err *e)
{
    if (json_is_array(m) && json_array_size(m) == 2 && json_is_string(json_array_get(m, 0)) &&
        json_is_string(json_array_get(m, 1))) {
        *a = json_string_value(json_array_get(m, 0)), *b = json_string_value(json_array_get(m, 1));
        return 0;
    }
    const char *s = json_string_value(m);
    const char *sp = s ? strchr(s, ' ') : NULL;
    if (!sp || strchr(sp + 1, ' '))
        return err_set(e, "model.merges[%zu] is neither \"a b\" nor [\"a\", \"b\"]", i);
    char *p = fit(buf, cap, strlen(s) + 1);
    memcpy(p, s, strlen(s) + 1);
    p[sp - s] = 0;
    *a = p, *b = p + (sp - s) + 1;
    return 0;
}

static int load_merges(struct tok *t, json_t *vocab, json_t *merges, struct err *e)
{
    if (!json_is_array(merges)) return err_set(e, "model.merges is missing or not an array");
    size_t n = json_array_size(merges), i;
    tokb_merges_alloc(t, n);
    char *buf = NULL, *joined = NULL;
    size_t buf_cap = 0, joined_cap = 0;
    json_t *m;
    int rc = 0;
    json_array_foreach(merges, i, m)
    {
        const char *a = NULL, *b = NULL;
        if ((rc = merge_pair(m, i, &buf, &buf_cap, &a, &b, e))) break;
        size_t la = strlen(a), lb = strlen(b);
        char *j = fit(&joined, &joined_cap, la + lb + 1);
        memcpy(j, a, la);
        memcpy(j + la, b, lb + 1);
        json_t *ia = json_object_get(vocab, a), *ib = json_object_get(vocab, b);
        json_t *ij = json_object_get(vocab, j);
        if (!ia || !ib || !ij) {
            rc = err_set(e, "model.merges[%zu]: \"%.60s\" + \"%.60s\" is not in the vocab", i, a, b);
            break;
        }
        uint64_t key = (uint64_t)json_integer_value(ia) << 32 | (uint32_t)json_integer_value(ib);
        tokb_merge_put(t, key, (uint64_t)i << 32 | (uint32_t)json_integer_value(ij));
    }
    free(buf);
    free(joined);
    return rc;
}

static int load_model(struct tok *t, json_t *model, json_t *added, struct err *e)
{
    if (!json_is_object(model)) return err_set(e, "model is missing");
    if (strcmp(json_str(model, "type"), "BPE"))
        return err_set(e, "model.type \"%s\" is not supported (only BPE)", json_str(model, "type"));
    if (json_flag(model, "byte_fallback")) return err_set(e, "model.byte_fallback is not supported");
    if (expect_null_or_empty(model, "dropout", e) ||
        expect_null_or_empty(model, "continuing_subword_prefix", e) ||
        expect_null_or_empty(model, "end_of_word_suffix", e))
        return -1;
    json_t *vocab = json_object_get(model, "vocab");
    if (!json_is_object(vocab)) return err_set(e, "model.vocab is missing or not an object");
    int32_t top = max_id(vocab, added);
    if (top < 0) return err_set(e, "model.vocab or added_tokens: an id is missing or out of range");
    t->n_vocab = top + 1;
    t->ignore_merges = json_flag(model, "ignore_merges");
    if (build_pieces(t, vocab, added, e) || find_byte_tokens(t, vocab, e)) return -1;
    if (t->ignore_merges) build_word_table(t, vocab);
    return load_merges(t, vocab, json_object_get(model, "merges"), e);
}

/* ---- added tokens --------------------------------------------------------------------------- */

void tokb_trie_insert(struct tok_trie *tr, const char *s, size_t n, int32_t added)
{
    if (!tr->nodes) {
        tr->cap = 64;
        tr->nodes = xmalloc((size_t)tr->cap * sizeof *tr->nodes);
        tr->nodes[0] = (struct tok_trie_node){-1, -1, -1, 0};
        tr->n_nodes = 1;
    }
    tr->first[(uint8_t)s[0]] = true;
    int32_t at = 0;
    for (size_t i = 0; i < n; i++) {
        int32_t c = tr->nodes[at].child;
        while (c >= 0 && tr->nodes[c].byte != (uint8_t)s[i]) c = tr->nodes[c].sibling;
        if (c < 0) {
            if (tr->n_nodes == tr->cap) {
                tr->cap *= 2;
                tr->nodes = realloc(tr->nodes, (size_t)tr->cap * sizeof *tr->nodes);
                if (!tr->nodes) ERR_FATAL("out of memory");
            }
            c = tr->n_nodes++;
            tr->nodes[c] = (struct tok_trie_node){-1, tr->nodes[at].child, -1, (uint8_t)s[i]};
            tr->nodes[at].child = c;
        }
        at = c;
    }
    tr->nodes[at].added = added;
}

static int load_added(struct tok *t, json_t *added, struct err *e)
{
    size_t i;
    json_t *a;
    t->added = xcalloc(json_array_size(added), sizeof *t->added);
    json_array_foreach(added, i, a)
    {
        const char *content = json_str(a, "content");
        if (!*content) return err_set(e, "added_tokens[%zu] has no content", i);
        if (json_flag(a, "single_word"))
            return err_set(e, "added_tokens[%zu] (%s): single_word is not supported", i, content);
        if (utf8_valid_len((const uint8_t *)content, strlen(content)) != strlen(content))
            return err_set(e, "added_tokens[%zu]: content is not UTF-8", i);
        struct tok_added *ad = &t->added[t->n_added];
        *ad = (struct tok_added){strdup(content), strlen(content),
                                 (int32_t)json_integer_value(json_object_get(a, "id")),
                                 json_flag(a, "special"), json_flag(a, "lstrip"),
                                 json_flag(a, "rstrip"), json_flag(a, "normalized")};
        t->flags[ad->id] |= TOK_F_ADDED | (ad->special ? TOK_F_SPECIAL : 0);
        tokb_trie_insert(ad->normalized ? &t->norm_trie : &t->raw_trie, ad->text, ad->len, t->n_added);
        t->n_added++;
    }
    return 0;
}

/* ---- normalizer, pre-tokenizer, decoder ----------------------------------------------------- */

static int load_normalizer(json_t *n, struct err *e)
{
    if (!n || json_is_null(n)) return 0;
    json_t *list = json_object_get(n, "normalizers");
    if (!strcmp(json_str(n, "type"), "Sequence") && json_is_array(list) && !json_array_size(list))
        return 0;
    return err_set(e, "normalizer \"%s\" is not supported (only none or an empty Sequence)",
                   json_str(n, "type"));
}

/* Rewrites an Oniguruma (Ruby syntax) pattern for PCRE2 where the two differ: \s and \S
 * (Oniguruma: Unicode White_Space; PCRE2 adds U+180E) and \h / \H (Oniguruma: hex digit). */
static char *onig_to_pcre2(const char *p)
{
    static const char *SPACE = "\\t-\\r\\x{85}\\p{Z}", *HEX = "0-9a-fA-F";
    size_t n = strlen(p), k = 0;
    char *out = xmalloc(n * 16 + 1);
    bool in_class = false;
    for (size_t i = 0; i < n; i++) {
        char c = p[i];
        if (c == '\\' && i + 1 < n) {
            char d = p[++i];
            const char *set = (d == 's' || d == 'S') ? SPACE : (d == 'h' || d == 'H') ? HEX : NULL;
            if (set && in_class && (d == 's' || d == 'h')) k += (size_t)sprintf(out + k, "%s", set);
            else if (set && !in_class)
                k += (size_t)sprintf(out + k, "[%s%s]", (d == 'S' || d == 'H') ? "^" : "", set);
            else out[k++] = c, out[k++] = d;
            continue;
        }
        if (c == '[' && !in_class) {
            in_class = true;
            out[k++] = c;
            if (p[i + 1] == '^') out[k++] = p[++i];
            if (p[i + 1] == ']') out[k++] = p[++i];
            continue;
        }
        if (c == ']' && in_class) in_class = false;
        out[k++] = c;
    }
    out[k] = 0;
    return out;
}

int tokb_add_split(struct tok *t, const char *pattern, bool literal,
                   enum tok_split_behavior behavior, size_t step, struct err *e)
{
    if (t->n_splits == TOK_MAX_SPLITS)
        return err_set(e, "pre_tokenizer: more than %d Split steps", TOK_MAX_SPLITS);
    char *rewritten = literal ? strdup(pattern) : onig_to_pcre2(pattern);
    pcre2_compile_context *cc = pcre2_compile_context_create(NULL);
    pcre2_set_newline(cc, PCRE2_NEWLINE_LF);
    int code;
    PCRE2_SIZE at;
    uint32_t opts = PCRE2_UTF | PCRE2_UCP | (literal ? PCRE2_LITERAL : PCRE2_MULTILINE);
    pcre2_code *re = pcre2_compile((PCRE2_SPTR)rewritten, PCRE2_ZERO_TERMINATED, opts, &code, &at, cc);
    pcre2_compile_context_free(cc);
    free(rewritten);
    if (!re) {
        char msg[200];
        pcre2_get_error_message(code, (PCRE2_UCHAR *)msg, sizeof msg);
        return err_set(e, "pre_tokenizer step %zu: regex does not compile: %s", step, msg);
    }
    pcre2_jit_compile(re, PCRE2_JIT_COMPLETE); /* when JIT is unavailable the interpreter runs */
    t->splits[t->n_splits++] = (struct tok_split){re, behavior};
    return 0;
}

static int load_split(struct tok *t, json_t *s, size_t step, struct err *e)
{
    const char *behavior = json_str(s, "behavior");
    enum tok_split_behavior b;
    if (!strcmp(behavior, "Isolated")) b = TOK_SPLIT_ISOLATED;
    else if (!strcmp(behavior, "Removed")) b = TOK_SPLIT_REMOVED;
    else return err_set(e, "pre_tokenizer step %zu: Split behavior \"%s\" is not supported", step, behavior);
    if (json_flag(s, "invert")) return err_set(e, "pre_tokenizer step %zu: Split invert is not supported", step);
    json_t *pat = json_object_get(s, "pattern");
    const char *re = json_string_value(json_object_get(pat, "Regex"));
    const char *str = json_string_value(json_object_get(pat, "String"));
    if (!re && !str) return err_set(e, "pre_tokenizer step %zu: Split has no pattern", step);
    return tokb_add_split(t, re ? re : str, !re, b, step, e);
}

/* One pre-tokenizer step; *byte_level is set once ByteLevel (which must come last) is seen. */
static int load_step(struct tok *t, json_t *s, size_t step, bool *byte_level, struct err *e)
{
    const char *type = json_str(s, "type");
    if (*byte_level) return err_set(e, "pre_tokenizer: step %zu (%s) after ByteLevel is not supported", step, type);
    if (!strcmp(type, "Split")) return load_split(t, s, step, e);
    if (strcmp(type, "ByteLevel"))
        return err_set(e, "pre_tokenizer: type \"%s\" is not supported (only Split and ByteLevel)", type);
    if (json_flag(s, "add_prefix_space")) return err_set(e, "pre_tokenizer: ByteLevel add_prefix_space is not supported");
    *byte_level = true;
    json_t *use_regex = json_object_get(s, "use_regex");
    if (!use_regex || json_is_true(use_regex)) return tokb_add_split(t, GPT2_REGEX, false, TOK_SPLIT_ISOLATED, step, e);
    return 0;
}

static int load_pre_tokenizer(struct tok *t, json_t *p, struct err *e)
{
    if (!json_is_object(p)) return err_set(e, "pre_tokenizer is missing (a byte-level BPE needs ByteLevel)");
    bool byte_level = false;
    json_t *steps = json_object_get(p, "pretokenizers");
    if (strcmp(json_str(p, "type"), "Sequence")) {
        if (load_step(t, p, 0, &byte_level, e)) return -1;
    } else {
        size_t i;
        json_t *s;
        json_array_foreach(steps, i, s) if (load_step(t, s, i, &byte_level, e)) return -1;
    }
    if (!byte_level) return err_set(e, "pre_tokenizer has no ByteLevel step (needed by the byte-level BPE)");
    return 0;
}

static int load_decoder(json_t *d, struct err *e)
{
    if (json_is_object(d) && !strcmp(json_str(d, "type"), "ByteLevel")) return 0;
    return err_set(e, "decoder \"%s\" is not supported (only ByteLevel)", d ? json_str(d, "type") : "null");
}

/* ---- tokenizer_config.json ------------------------------------------------------------------ */

/* bos_token / eos_token: a string or {"content": ...}. */
static int32_t config_token(const struct tok *t, json_t *v)
{
    const char *s = json_is_object(v) ? json_str(v, "content") : json_string_value(v);
    return s ? tok_added_id(t, s) : -1;
}

static int load_config(struct tok *t, json_t *c, struct err *e)
{
    if (!json_is_object(c)) return err_set(e, "not a JSON object");
    t->add_bos = json_flag(c, "add_bos_token");
    t->add_eos = json_flag(c, "add_eos_token");
    t->bos_id = config_token(t, json_object_get(c, "bos_token"));
    t->eos_id = config_token(t, json_object_get(c, "eos_token"));
    if ((t->add_bos && t->bos_id < 0) || (t->add_eos && t->eos_id < 0))
        return err_set(e, "add_bos_token/add_eos_token set but the token is not an added token");
    json_t *tpl = json_object_get(c, "chat_template");
    if (json_is_array(tpl)) { /* [{"name": ..., "template": ...}]: the "default" one */
        size_t i;
        json_t *x, *found = NULL;
        json_array_foreach(tpl, i, x) if (!strcmp(json_str(x, "name"), "default")) found = x;
        tpl = found ? json_object_get(found, "template") : NULL;
    }
    if (json_is_string(tpl)) t->chat_template = strdup(json_string_value(tpl));
    return 0;
}

/* ---- entry points --------------------------------------------------------------------------- */

static int load_tokenizer(struct tok *t, json_t *root, struct err *e)
{
    if (!json_is_object(root)) return err_set(e, "not a JSON object");
    json_t *added = json_object_get(root, "added_tokens");
    if (added && !json_is_array(added)) return err_set(e, "added_tokens is not an array");
    if (!added) added = json_array();
    else json_incref(added);
    int rc = load_normalizer(json_object_get(root, "normalizer"), e);
    if (!rc) rc = load_model(t, json_object_get(root, "model"), added, e);
    if (!rc) rc = load_added(t, added, e);
    if (!rc) rc = load_pre_tokenizer(t, json_object_get(root, "pre_tokenizer"), e);
    if (!rc) rc = load_decoder(json_object_get(root, "decoder"), e);
    json_decref(added);
    return rc;
}

static json_t *parse(const char *text, const char *what, struct err *e)
{
    json_error_t je;
    json_t *j = json_loads(text, 0, &je);
    if (!j) err_set(e, "%s: JSON error at line %d: %s", what, je.line, je.text);
    return j;
}

/* Builds a tok from the two JSON texts; tname/cname name them in messages. */
static struct tok *load_texts(const char *tj, const char *cj, const char *tname,
                              const char *cname, struct err *e)
{
    struct tok *t = xcalloc(1, sizeof *t);
    t->bos_id = t->eos_id = t->eot_id = -1;
    json_t *root = parse(tj, tname, e);
    if (!root) goto fail;
    int rc = load_tokenizer(t, root, e);
    json_decref(root);
    if (rc) {
        err_prefix(e, "%s", tname);
        goto fail;
    }
    if (!cj) {
        tokb_find_eot(t);
        return t;
    }
    json_t *cfg = parse(cj, cname, e);
    if (!cfg) goto fail;
    rc = load_config(t, cfg, e);
    json_decref(cfg);
    if (!rc) {
        tokb_find_eot(t);
        return t;
    }
    err_prefix(e, "%s", cname);
fail:
    tok_destroy(t);
    return NULL;
}

void tokb_find_eot(struct tok *t)
{
    static const char *const names[] = {"<|eot_id|>", "<|im_end|>", "<|end|>", "<|endoftext|>",
                                        "<|end_of_text|>", "<｜end▁of▁sentence｜>"};
    size_t n = sizeof names / sizeof names[0];
    for (size_t i = 0; t->eot_id < 0 && t->eos_id >= 0 && i < n; i++) /* eos itself, if it is one */
        if (tok_added_id(t, names[i]) == t->eos_id) t->eot_id = t->eos_id;
    for (size_t i = 0; t->eot_id < 0 && i < n; i++) t->eot_id = tok_added_id(t, names[i]);
}

struct tok *tok_load_str(const char *tokenizer_json, const char *config_json, struct err *e)
{
    return load_texts(tokenizer_json, config_json, "tokenizer.json", "tokenizer_config.json", e);
}

/* A tokenizer file: regular, at most 1 GiB (DeepSeek V3's tokenizer.json is under 8 MiB). */
static char *read_file(const char *path, struct err *e)
{
    return file_read(path, 1u << 30, NULL, e);
}

struct tok *tok_load(const char *tokenizer_json, const char *config_json, struct err *e)
{
    char *tj = read_file(tokenizer_json, e), *cj = NULL;
    if (!tj) return NULL;
    if (config_json && !(cj = read_file(config_json, e))) {
        free(tj);
        return NULL;
    }
    struct tok *t = load_texts(tj, cj, tokenizer_json, config_json, e);
    free(tj);
    free(cj);
    return t;
}

void tok_destroy(struct tok *t)
{
    if (!t) return;
    for (int i = 0; i < t->n_splits; i++) pcre2_code_free(t->splits[i].re);
    for (int32_t i = 0; i < t->n_added; i++) free(t->added[i].text);
    free(t->added);
    free(t->raw_trie.nodes);
    free(t->norm_trie.nodes);
    free(t->piece_off);
    free(t->pieces);
    free(t->flags);
    free(t->merge_key);
    free(t->merge_val);
    free(t->word_slot);
    free(t->chat_template);
    free(t);
}
