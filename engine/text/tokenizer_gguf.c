/* tokenizer_gguf: a struct tok rebuilt from a GGUF vocabulary (tokenizer.ggml.*), encoding
 * exactly as llama.cpp does.
 *
 * The GGUF stores a byte-level BPE ("gpt2" model) as its token texts (the byte-level alphabet),
 * token types, "a b" merges in rank order and a pre-tokenizer *name*; llama.cpp maps each name
 * to a list of split regexes, each re-splitting the pieces of the one before (matches and the
 * text between them both kept). That is HF's Sequence of Split(Isolated) steps, which the
 * encoder already runs, so the names map to regex lists here (llama.cpp's, as facts). CONTROL
 * and USER_DEFINED tokens become added tokens (CONTROL ones special) and decode to their own
 * text; the others decode through the byte-level alphabet. */
#include "engine/text/tokenizer_internal.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { TYPE_NORMAL = 1, TYPE_UNKNOWN = 2, TYPE_CONTROL = 3, TYPE_USER = 4, TYPE_UNUSED = 5, TYPE_BYTE = 6 };

/* ---- pre-tokenizers -------------------------------------------------------------------------- */

/* Non-ASCII characters are written as PCRE2's \x{...}: a literal could be changed by Unicode
 * normalisation (U+1FD3 and U+0390, the Kelvin sign and K, look alike but are not the same). */

#define GPT2_SPLIT "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)"
#define CONTRACTIONS "(?:'[sS]|'[tT]|'[rR][eE]|'[vV][eE]|'[mM]|'[lL][lL]|'[dD])"

struct pre {
    const char *names[6]; /* llama.cpp's tokenizer.ggml.pre names */
    const char *regex[6];
    int ignore_merges;    /* a piece that is a whole vocabulary token is that token */
    int add_bos;          /* default of tokenizer.ggml.add_bos_token */
};

static const struct pre PRES[] = {
    {{"deepseek-v3"},
     {
      "\\p{N}{1,3}",
      "[\\x{4E00}-\\x{9FA5}\\x{3040}-\\x{309F}\\x{30A0}-\\x{30FF}]+",
      "[!\"#$%&'()*+,\\-./:;<=>?@\\[\\\\\\]^_`{|}~][A-Za-z]+|[^\r\n\\p{L}\\p{P}\\p{S}]?[\\p{L}"
      "\\p{M}]+| ?[\\p{P}\\p{S}]+[\r\n]*|\\s*[\r\n]+|\\s+(?!\\S)|\\s+"},
     0, 0},
    {{"deepseek-llm"},
     {
      "[\r\n]",
      "\\s?[A-Za-z\\x{B5}\\x{C0}-\\x{D6}\\x{D8}-\\x{F6}\\x{F8}-\\x{1BA}\\x{1BC}-\\x{1BF}"
      "\\x{1C4}-\\x{293}\\x{295}-\\x{2AF}\\x{370}-\\x{373}\\x{376}\\x{377}\\x{37B}-\\x{37D}"
      "\\x{37F}\\x{386}\\x{388}-\\x{38A}\\x{38C}\\x{38E}-\\x{3A1}\\x{3A3}-\\x{3F5}\\x{3F7}-"
      "\\x{481}\\x{48A}-\\x{52F}\\x{531}-\\x{556}\\x{10A0}-\\x{10C5}\\x{13A0}-\\x{13F5}"
      "\\x{13F8}-\\x{13FD}\\x{1C90}-\\x{1CBA}\\x{1CBD}-\\x{1CBF}\\x{1D00}-\\x{1D2B}\\x{1D6B}-"
      "\\x{1D77}\\x{1D79}-\\x{1D9A}\\x{1E00}-\\x{1F15}\\x{1F18}-\\x{1F1D}\\x{1F20}-\\x{1F45}"
      "\\x{1F48}-\\x{1F4D}\\x{1F50}-\\x{1F57}\\x{1F59}\\x{1F5B}\\x{1F5D}\\x{1F5F}-\\x{1F7D}"
      "\\x{1F80}-\\x{1FB4}\\x{1FB6}-\\x{1FBC}\\x{1FBE}\\x{1FC2}-\\x{1FC4}\\x{1FC6}-\\x{1FCC}"
      "\\x{1FD0}-\\x{1FD3}\\x{1FD6}-\\x{1FDB}\\x{1FE0}-\\x{1FEC}\\x{1FF2}-\\x{1FF4}\\x{1FF6}-"
      "\\x{1FFC}\\x{2102}\\x{2107}\\x{210A}-\\x{2113}\\x{2115}\\x{2119}-\\x{211D}\\x{2124}"
      "\\x{2126}\\x{2128}\\x{212A}-\\x{212D}\\x{212F}-\\x{2134}\\x{2139}\\x{213C}-\\x{213F}"
      "\\x{2145}-\\x{2149}\\x{214E}\\x{2183}\\x{2184}\\x{2C00}-\\x{2C7B}\\x{2C7E}-\\x{2CE4}"
      "\\x{2CEB}-\\x{2CEE}\\x{2CF2}\\x{2CF3}\\x{A640}-\\x{A66D}\\x{A680}-\\x{A69B}\\x{A722}-"
      "\\x{A76F}\\x{A771}-\\x{A787}\\x{A78B}-\\x{A78E}\\x{AB70}-\\x{ABBF}\\x{FB00}-\\x{FB06}"
      "\\x{FB13}-\\x{FB17}\\x{FF21}-\\x{FF3A}\\x{FF41}-\\x{FF5A}\\x{10400}-\\x{1044F}\\x{104B0}"
      "-\\x{104D3}\\x{104D8}-\\x{104FB}\\x{10C80}-\\x{10CB2}\\x{10CC0}-\\x{10CF2}\\x{118A0}-"
      "\\x{118DF}\\x{1E900}-\\x{1E943}]+",
      "\\s?[!-/:-~\\x{FF01}-\\x{FF0F}\\x{FF1A}-\\x{FF5E}\\x{2018}-\\x{201F}\\x{3000}-\\x{3002}]"
      "+",
      "\\s+$",
      "[\\x{4E00}-\\x{9FA5}\\x{800}-\\x{4E00}\\x{AC00}-\\x{D7FF}]+",
      "\\p{N}+"},
     0, 0},
    {{"deepseek-coder"},
     {
      "[\r\n]",
      "\\s?\\p{L}+",
      "\\s?\\p{P}+",
      "[\\x{4E00}-\\x{9FA5}\\x{800}-\\x{4E00}\\x{AC00}-\\x{D7FF}]+",
      "\\p{N}"},
     0, 0},
    {{"qwen2", "deepseek-r1-qwen", "stablelm2", "megrez"},
     {CONTRACTIONS "|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|\\s*[\\r\\n]+|"
                   "\\s+(?!\\S)|\\s+"},
     0, 0},
    {{"llama3", "llama-v3", "llama-bpe", "falcon3", "dbrx", "smaug-bpe"},
     {CONTRACTIONS "|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|"
                   "\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"},
     1, 1},
    {{"smollm", "starcoder", "refact", "command-r", "codeshell", "exaone"},
     {"\\p{N}", GPT2_SPLIT}, 0, 0},
    {{"gpt2", "gpt-2", "phi-2", "mpt", "olmo", "jina-es"}, {GPT2_SPLIT}, 0, 0},
    {{"default"},
     {"[\\p{P}\\$\\+<=>\\^~\\|]+", GPT2_SPLIT, "\\p{N}+", "[0-9][0-9][0-9]"}, 0, 0},
};

/* llama.cpp runs a regex without \p{..} through std::wregex on the text with every non-ASCII
 * whitespace character replaced by \x0B: such a character still matches \s, but no longer an
 * explicit class that lists it (DeepSeek-LLM's [\x{3000}-\x{3002}], [\x{800}-\x{4E00}]). Each
 * class with non-ASCII members gets a guard that refuses those characters, to the same effect. */
static char *wregex_guard(const char *re)
{
    static const char GUARD[] = "(?![\\x{85}\\x{A0}\\x{1680}\\x{2000}-\\x{200A}\\x{2028}\\x{2029}"
                                "\\x{202F}\\x{205F}\\x{3000}])";
    size_t n = strlen(re), k = 0, n_open = 0;
    for (size_t i = 0; i < n; i++) n_open += re[i] == '[';
    char *out = xmalloc(n + (n_open + 1) * (sizeof GUARD + 8));
    for (size_t i = 0; i < n;) {
        if (re[i] == '\\' && i + 1 < n) {
            out[k++] = re[i++], out[k++] = re[i++];
            continue;
        }
        if (re[i] != '[') {
            out[k++] = re[i++];
            continue;
        }
        size_t j = i + 1; /* the class: up to its unescaped ']' */
        while (j < n && re[j] != ']') j += re[j] == '\\' ? 2 : 1;
        int wide = re[i + 1] != '^' && memmem(re + i, j - i, "\\x{", 3) != NULL;
        if (wide) k += (size_t)sprintf(out + k, "(?:%s", GUARD);
        memcpy(out + k, re + i, j + 1 - i), k += j + 1 - i;
        if (wide) out[k++] = ')';
        i = j + 1;
    }
    out[k] = 0;
    return out;
}

static const struct pre *find_pre(const char *name)
{
    for (size_t i = 0; i < sizeof PRES / sizeof PRES[0]; i++)
        for (int j = 0; j < 6 && PRES[i].names[j]; j++)
            if (!strcmp(PRES[i].names[j], name)) return &PRES[i];
    return NULL;
}

/* ---- token texts ----------------------------------------------------------------------------- */

/* Open addressing over the token texts: text -> id. */
struct text_index {
    int32_t *slot;
    size_t cap;
    const struct tok_vocab *v;
};

static void index_build(struct text_index *x, const struct tok_vocab *v)
{
    x->v = v;
    x->cap = 16;
    while (x->cap < 2 * (size_t)v->n) x->cap *= 2;
    x->slot = xmalloc(x->cap * sizeof *x->slot);
    for (size_t i = 0; i < x->cap; i++) x->slot[i] = -1;
    for (int32_t id = 0; id < v->n; id++) {
        size_t h = (size_t)tok_hash_bytes((const uint8_t *)v->text[id], v->len[id]) & (x->cap - 1);
        while (x->slot[h] >= 0) h = (h + 1) & (x->cap - 1);
        x->slot[h] = id;
    }
}

/* The id of the token whose text is s (n bytes), or -1; the lowest id when texts repeat. */
static int32_t index_get(const struct text_index *x, const char *s, size_t n)
{
    int32_t best = -1;
    for (size_t h = (size_t)tok_hash_bytes((const uint8_t *)s, n) & (x->cap - 1); x->slot[h] >= 0;
         h = (h + 1) & (x->cap - 1)) {
        int32_t id = x->slot[h];
        if (x->v->len[id] == n && !memcmp(x->v->text[id], s, n) && (best < 0 || id < best)) best = id;
    }
    return best;
}

static int type_of(const struct tok_vocab *v, int32_t id)
{
    return v->type ? v->type[id] : TYPE_NORMAL;
}

static int is_added(int type)
{
    return type == TYPE_CONTROL || type == TYPE_USER || type == TYPE_UNKNOWN;
}

/* Each id's bytes: the byte-level decoding for vocabulary tokens, the raw text for added ones. */
static void build_pieces(struct tok *t, const struct tok_vocab *v)
{
    int16_t byte_of[324];
    tokb_byte_level_inverse(byte_of);
    size_t total = 0;
    for (int32_t id = 0; id < v->n; id++) total += v->len[id];
    t->piece_off = xcalloc((size_t)v->n + 1, sizeof *t->piece_off);
    t->pieces = xmalloc(total + 1);
    t->flags = xcalloc((size_t)v->n, 1);
    uint32_t off = 0;
    for (int32_t id = 0; id < v->n; id++) {
        t->piece_off[id] = off;
        if (is_added(type_of(v, id))) {
            memcpy(t->pieces + off, v->text[id], v->len[id]);
            off += (uint32_t)v->len[id];
        } else {
            off += (uint32_t)tokb_token_bytes(v->text[id], v->len[id], byte_of, t->pieces + off);
        }
        t->flags[id] = TOK_F_ASSIGNED;
    }
    t->piece_off[v->n] = off;
}

/* byte_id[b] for every byte; -1 for one the vocabulary lacks (SmolLM2 has no 0xc0, 0xc1, 0xf1,
 * ...): llama.cpp drops such a byte from the output when no merge covers it, and so does tok. */
static int find_byte_tokens(struct tok *t, const struct text_index *x, struct err *e)
{
    int16_t byte_of[324];
    tokb_byte_level_inverse(byte_of);
    int n_missing = 0;
    for (int cp = 0; cp < 324; cp++) {
        if (byte_of[cp] < 0) continue;
        char s[3] = {cp < 0x80 ? (char)cp : (char)(0xC0 | (cp >> 6)), (char)(0x80 | (cp & 0x3F)), 0};
        t->byte_id[byte_of[cp]] = index_get(x, s, cp < 0x80 ? 1 : 2);
        n_missing += t->byte_id[byte_of[cp]] < 0;
    }
    if (n_missing > 64)
        return err_set(e, "tokenizer.ggml.tokens lacks %d of the 256 byte tokens (not a byte-level BPE)",
                       n_missing);
    return 0;
}

/* Merge i, "a b": ranks in file order; both halves and their concatenation are tokens. */
static int load_merges(struct tok *t, const struct tok_vocab *v, const struct text_index *x,
                       struct err *e)
{
    tokb_merges_alloc(t, (size_t)v->n_merges);
    char *joined = NULL;
    size_t cap = 0;
    int rc = 0;
    for (int64_t i = 0; i < v->n_merges && !rc; i++) {
        const char *m = v->merges[i], *sp = memchr(m + (v->merge_len[i] > 0), ' ', v->merge_len[i] ? v->merge_len[i] - 1 : 0);
        if (!sp) {
            rc = err_set(e, "tokenizer.ggml.merges[%lld] is not \"a b\"", (long long)i);
            break;
        }
        size_t la = (size_t)(sp - m), lb = v->merge_len[i] - la - 1;
        if (la + lb > cap) joined = xrealloc(joined, cap = 2 * (la + lb));
        memcpy(joined, m, la);
        memcpy(joined + la, sp + 1, lb);
        int32_t a = index_get(x, m, la), b = index_get(x, sp + 1, lb), j = index_get(x, joined, la + lb);
        if (a < 0 || b < 0 || j < 0)
            rc = err_set(e, "tokenizer.ggml.merges[%lld]: \"%.*s\" is not in the vocabulary", (long long)i,
                         (int)(v->merge_len[i] < 120 ? v->merge_len[i] : 120), m);
        else tokb_merge_put(t, (uint64_t)a << 32 | (uint32_t)b, (uint64_t)i << 32 | (uint32_t)j);
    }
    free(joined);
    return rc;
}

/* CONTROL, USER_DEFINED and UNKNOWN tokens, matched whole when specials are parsed. */
static void load_added(struct tok *t, const struct tok_vocab *v)
{
    t->added = xcalloc((size_t)v->n + 1, sizeof *t->added);
    for (int32_t id = 0; id < v->n; id++) {
        int ty = type_of(v, id);
        if (!is_added(ty) || !v->len[id]) continue;
        struct tok_added *ad = &t->added[t->n_added];
        char *text = xmalloc(v->len[id] + 1);
        memcpy(text, v->text[id], v->len[id]);
        text[v->len[id]] = 0;
        *ad = (struct tok_added){text, v->len[id], id, ty != TYPE_USER, false, false, false};
        t->flags[id] |= TOK_F_ADDED | (ad->special ? TOK_F_SPECIAL : 0);
        tokb_trie_insert(&t->raw_trie, ad->text, ad->len, t->n_added);
        t->n_added++;
    }
}

/* The special ids and flags; defaults as llama.cpp's for the pre-tokenizer. */
static int load_specials(struct tok *t, const struct tok_vocab *v, const struct pre *p, struct err *e)
{
    t->bos_id = v->bos, t->eos_id = v->eos, t->eot_id = v->eot;
    t->add_bos = v->add_bos >= 0 ? v->add_bos : p->add_bos;
    t->add_eos = v->add_eos > 0;
    if ((t->add_bos && t->bos_id < 0) || (t->add_eos && t->eos_id < 0))
        return err_set(e, "tokenizer.ggml.add_bos_token/add_eos_token set without the token id");
    if (t->eot_id < 0) tokb_find_eot(t);
    if (v->chat_template) t->chat_template = strdup(v->chat_template);
    return 0;
}

static int build(struct tok *t, const struct tok_vocab *v, struct err *e)
{
    if (!v->model || strcmp(v->model, "gpt2"))
        return err_set(e, "tokenizer.ggml.model \"%s\" is not supported (only gpt2, byte-level BPE)",
                       v->model ? v->model : "");
    const struct pre *p = find_pre(v->pre && *v->pre ? v->pre : "default");
    if (!p)
        return err_set(e, "tokenizer.ggml.pre \"%s\" is not supported (deepseek-v3, deepseek-llm, "
                          "deepseek-r1-qwen, qwen2, llama-bpe, smollm, gpt2, ...)", v->pre);
    if (v->n < 256 || v->n > (1 << 24)) return err_set(e, "a vocabulary of %d tokens", v->n);
    t->n_vocab = v->n;
    t->ignore_merges = p->ignore_merges;
    struct text_index x;
    index_build(&x, v);
    build_pieces(t, v);
    int rc = find_byte_tokens(t, &x, e);
    if (!rc) rc = load_merges(t, v, &x, e);
    free(x.slot);
    if (rc) return rc;
    if (t->ignore_merges) { /* the vocabulary tokens by their bytes */
        t->word_cap = 16;
        while (t->word_cap < 2 * (size_t)v->n) t->word_cap *= 2;
        t->word_slot = xmalloc(t->word_cap * sizeof *t->word_slot);
        for (size_t i = 0; i < t->word_cap; i++) t->word_slot[i] = -1;
        for (int32_t id = 0; id < v->n; id++) {
            if (is_added(type_of(v, id))) continue;
            size_t len;
            const uint8_t *s = tok_piece(t, id, &len);
            size_t h = (size_t)tok_hash_bytes(s, len) & (t->word_cap - 1);
            while (t->word_slot[h] >= 0) h = (h + 1) & (t->word_cap - 1);
            t->word_slot[h] = id;
        }
    }
    load_added(t, v);
    for (int i = 0; i < 6 && p->regex[i] && !rc; i++) {
        char *re = strstr(p->regex[i], "\\p{") ? strdup(p->regex[i]) : wregex_guard(p->regex[i]);
        rc = tokb_add_split(t, re, false, TOK_SPLIT_ISOLATED, (size_t)i, e);
        free(re);
    }
    return rc ? rc : load_specials(t, v, p, e);
}

struct tok *tok_load_vocab(const struct tok_vocab *v, struct err *e)
{
    struct tok *t = xcalloc(1, sizeof *t);
    t->bos_id = t->eos_id = t->eot_id = -1;
    if (build(t, v, e) == 0) return t;
    tok_destroy(t);
    return NULL;
}
