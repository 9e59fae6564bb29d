/* sampler: parameter checks, per-request RNG and penalty counts, and the sampling pipeline.
 *
 * Candidates live in the state's scratch: val [n_vocab] holds each token's processed logit (later
 * its unnormalised probability), ids holds the surviving token ids. top-k and top-p pop the best
 * candidates with binary heaps over ids (top-k: a min-heap of the k best; top-p: a max-heap
 * popped until the mass is reached, after dropping tokens too small to matter), so a step costs
 * O(V) plus a log factor on the survivors, never a full sort of the vocabulary. */
#include "engine/sampler.h"

#include <float.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

struct smp_state {
    int32_t n_vocab;
    uint64_t rng[4];   /* xoshiro256** state */
    uint32_t *counts;  /* [n_vocab] times each token was generated */
    uint8_t *seen;     /* [n_vocab] 1 if in the prompt or generated */
    int32_t *seen_ids; /* [n_seen] distinct tokens with seen set, in first-seen order */
    int32_t n_seen;
    float *val;   /* [n_vocab] scratch: processed logits, then weights */
    int32_t *ids; /* [n_vocab] scratch: candidate ids */
    float *masked; /* [n_vocab] the logits under a grammar mask (allocated on first use) */
};

/* ---- RNG: splitmix64 to seed, xoshiro256** to draw ------------------------------------------ */

static uint64_t splitmix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}

static uint64_t rotl(uint64_t x, int k)
{
    return (x << k) | (x >> (64 - k));
}

static uint64_t rng_next(uint64_t s[4])
{
    uint64_t out = rotl(s[1] * 5, 7) * 9, t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = rotl(s[3], 45);
    return out;
}

/* Uniform in [0, 1) with 53 random bits. */
static double rng_uniform(uint64_t s[4])
{
    return (double)(rng_next(s) >> 11) * 0x1.0p-53;
}

/* ---- parameters ------------------------------------------------------------------------------ */

struct smp_params smp_params_default(void)
{
    return (struct smp_params){
        .temperature = 1.0f, .top_p = 1.0f, .top_k = 0, .min_p = 0.0f, .repetition_penalty = 1.0f};
}

/* 1 when x is a number in [lo, hi] (NaN fails every comparison). */
static int in_range(float x, float lo, float hi)
{
    return x >= lo && x <= hi;
}

static int check_logit_bias(const struct smp_params *p, int32_t n_vocab, struct err *e)
{
    if (p->n_logit_bias < 0 || (p->n_logit_bias > 0 && !p->logit_bias))
        return err_set(e, "logit_bias: malformed list (%d entries)", (int)p->n_logit_bias);
    for (int32_t i = 0; i < p->n_logit_bias; i++) {
        const struct smp_bias *b = &p->logit_bias[i];
        if (b->token < 0 || b->token >= n_vocab)
            return err_set(e, "logit_bias: token id %d is outside the vocabulary (0..%d)",
                           (int)b->token, (int)n_vocab - 1);
        if (!in_range(b->bias, -100.0f, 100.0f))
            return err_set(e, "logit_bias: bias for token %d must be between -100 and 100, got %g",
                           (int)b->token, (double)b->bias);
    }
    return 0;
}

static int check_logprobs(const struct smp_params *p, struct err *e)
{
    if (p->n_logprobs < 0 || p->n_logprobs > SMP_MAX_LOGPROBS)
        return err_set(e, "top_logprobs must be between 0 and %d, got %d", SMP_MAX_LOGPROBS,
                       p->n_logprobs);
    if (p->n_logprobs > 0 && !p->logprobs)
        return err_set(e, "top_logprobs requires logprobs to be true");
    return 0;
}

int smp_params_check(const struct smp_params *p, int32_t n_vocab, struct err *e)
{
    if (n_vocab <= 0) return err_set(e, "sampler: vocabulary size %d", (int)n_vocab);
    if (!in_range(p->temperature, 0.0f, SMP_MAX_TEMPERATURE))
        return err_set(e, "temperature must be between 0 and %d, got %g", SMP_MAX_TEMPERATURE,
                       (double)p->temperature);
    if (!(p->top_p > 0.0f && p->top_p <= 1.0f))
        return err_set(e, "top_p must be greater than 0 and at most 1, got %g", (double)p->top_p);
    if (p->top_k < -1)
        return err_set(e, "top_k must be -1 or 0 (disabled) or at least 1, got %d", (int)p->top_k);
    if (!in_range(p->min_p, 0.0f, 1.0f))
        return err_set(e, "min_p must be between 0 and 1, got %g", (double)p->min_p);
    if (!in_range(p->presence_penalty, -2.0f, 2.0f))
        return err_set(e, "presence_penalty must be between -2 and 2, got %g",
                       (double)p->presence_penalty);
    if (!in_range(p->frequency_penalty, -2.0f, 2.0f))
        return err_set(e, "frequency_penalty must be between -2 and 2, got %g",
                       (double)p->frequency_penalty);
    if (!(p->repetition_penalty > 0.0f && p->repetition_penalty <= 2.0f))
        return err_set(e, "repetition_penalty must be greater than 0 and at most 2, got %g",
                       (double)p->repetition_penalty);
    if (check_logit_bias(p, n_vocab, e)) return -1;
    return check_logprobs(p, e);
}

/* ---- state ----------------------------------------------------------------------------------- */

static void mark_seen(struct smp_state *s, int32_t token)
{
    if (s->seen[token]) return;
    s->seen[token] = 1;
    s->seen_ids[s->n_seen++] = token;
}

struct smp_state *smp_state_create(const struct smp_params *p, int32_t n_vocab,
                                   const int32_t *prompt, int32_t n_prompt, uint64_t entropy,
                                   struct err *e)
{
    if (n_vocab <= 0) {
        err_set(e, "sampler: vocabulary size %d", (int)n_vocab);
        return NULL;
    }
    for (int32_t i = 0; i < n_prompt; i++) {
        if (prompt[i] >= 0 && prompt[i] < n_vocab) continue;
        err_set(e, "prompt token %d at position %d is outside the vocabulary (0..%d)",
                (int)prompt[i], (int)i, (int)n_vocab - 1);
        return NULL;
    }
    struct smp_state *s = calloc(1, sizeof *s);
    if (!s) return err_busy(e, "out of memory for the sampler state"), NULL;
    s->n_vocab = n_vocab;
    s->counts = calloc((size_t)n_vocab, sizeof *s->counts);
    s->seen = calloc((size_t)n_vocab, sizeof *s->seen);
    s->seen_ids = malloc((size_t)n_vocab * sizeof *s->seen_ids);
    s->val = malloc((size_t)n_vocab * sizeof *s->val);
    s->ids = malloc((size_t)n_vocab * sizeof *s->ids);
    if (!s->counts || !s->seen || !s->seen_ids || !s->val || !s->ids) { /* a request's, not ours */
        smp_state_destroy(s);
        return err_busy(e, "out of memory for the sampler state (%d-token vocabulary)", n_vocab), NULL;
    }
    uint64_t x = p->has_seed ? p->seed : entropy;
    for (int i = 0; i < 4; i++) s->rng[i] = splitmix64(&x);
    for (int32_t i = 0; i < n_prompt; i++) mark_seen(s, prompt[i]);
    return s;
}

size_t smp_state_bytes(int32_t n_vocab)
{
    struct smp_state *s = NULL;
    return sizeof *s + (size_t)n_vocab * (sizeof *s->counts + sizeof *s->seen + sizeof *s->seen_ids +
                                          sizeof *s->val + sizeof *s->ids);
}

void smp_state_destroy(struct smp_state *s)
{
    if (!s) return;
    free(s->counts);
    free(s->seen);
    free(s->seen_ids);
    free(s->val);
    free(s->ids);
    free(s->masked);
    free(s);
}

void smp_accept(struct smp_state *s, int32_t token)
{
    if (token < 0 || token >= s->n_vocab)
        ERR_FATAL("smp_accept: token %d outside vocabulary %d", (int)token, (int)s->n_vocab);
    if (s->counts[token] < UINT32_MAX) s->counts[token]++;
    mark_seen(s, token);
}

/* ---- bias and penalties ---------------------------------------------------------------------- */

static void apply_bias(const struct smp_params *p, float *logits)
{
    for (int32_t i = 0; i < p->n_logit_bias; i++) {
        const struct smp_bias *b = &p->logit_bias[i];
        logits[b->token] = b->bias <= SMP_BIAS_BAN ? -INFINITY : logits[b->token] + b->bias;
    }
}

/* vLLM order: repetition (prompt + output), then frequency and presence (output only). */
static void apply_penalties(const struct smp_state *s, const struct smp_params *p, float *logits)
{
    float r = p->repetition_penalty;
    for (int32_t i = 0; i < s->n_seen; i++) {
        int32_t t = s->seen_ids[i];
        float l = logits[t];
        if (r != 1.0f) l = l > 0.0f ? l / r : l * r;
        uint32_t c = s->counts[t];
        if (c > 0) l -= (float)c * p->frequency_penalty + p->presence_penalty;
        logits[t] = l;
    }
}

void smp_adjust(const struct smp_state *s, const struct smp_params *p, float *logits,
                int32_t n_vocab)
{
    if (n_vocab != s->n_vocab)
        ERR_FATAL("smp_adjust: %d logits for a vocabulary of %d", (int)n_vocab, (int)s->n_vocab);
    apply_bias(p, logits);
    int penalise = p->repetition_penalty != 1.0f || p->frequency_penalty != 0.0f ||
                   p->presence_penalty != 0.0f;
    if (penalise) apply_penalties(s, p, logits);
}

/* ---- candidate selection --------------------------------------------------------------------- */

/* NaN -> -inf, +inf -> FLT_MAX: every later comparison and subtraction stays well defined. */
static float clean(float x)
{
    if (isnan(x)) return -INFINITY;
    return x == INFINITY ? FLT_MAX : x;
}

/* Keeps the finite tokens in ids (ascending) and returns their count; *max_at gets the argmax
 * (lowest id on ties), or -1 when there is none. */
static int32_t collect_finite(struct smp_state *s, int32_t *max_at)
{
    int32_t n = 0, best = -1;
    float best_v = -INFINITY;
    for (int32_t t = 0; t < s->n_vocab; t++) {
        float v = clean(s->val[t]);
        s->val[t] = v;
        if (v == -INFINITY) continue;
        s->ids[n++] = t;
        if (v > best_v || best < 0) best_v = v, best = t;
    }
    *max_at = best;
    return n;
}

/* The candidate order: larger value first, lower id on ties (a strict total order). */
static int before(const float *val, int32_t a, int32_t b)
{
    return val[a] > val[b] || (val[a] == val[b] && a < b);
}

/* Heap over ids h[0..n): the root is the best (max heap) or the worst (min heap) by before(). */
static int above(const float *val, int32_t a, int32_t b, int min_heap)
{
    return min_heap ? before(val, b, a) : before(val, a, b);
}

static void sift_down(int32_t *h, int32_t n, int32_t i, const float *val, int min_heap)
{
    for (;;) {
        int32_t l = 2 * i + 1, r = l + 1, top = i;
        if (l < n && above(val, h[l], h[top], min_heap)) top = l;
        if (r < n && above(val, h[r], h[top], min_heap)) top = r;
        if (top == i) return;
        int32_t tmp = h[i];
        h[i] = h[top];
        h[top] = tmp;
        i = top;
    }
}

static void heapify(int32_t *h, int32_t n, const float *val, int min_heap)
{
    for (int32_t i = n / 2 - 1; i >= 0; i--) sift_down(h, n, i, val, min_heap);
}

/* Moves the root of heap h[0..n) to h[n-1] and restores the heap on h[0..n-1). */
static void heap_pop(int32_t *h, int32_t n, const float *val, int min_heap)
{
    int32_t tmp = h[0];
    h[0] = h[n - 1];
    h[n - 1] = tmp;
    sift_down(h, n - 1, 0, val, min_heap);
}

static int cmp_id(const void *a, const void *b)
{
    int32_t x = *(const int32_t *)a, y = *(const int32_t *)b;
    return (x > y) - (x < y);
}

/* Leaves the k best of ids[0..n) in ids[0..k), best first: a min-heap of the k best so far,
 * so most tokens cost one comparison with its root; O(n + k log k) on typical rows. */
static void take_best(int32_t *ids, int32_t n, int32_t k, const float *val)
{
    heapify(ids, k, val, 1);
    for (int32_t i = k; i < n; i++) {
        if (!before(val, ids[i], ids[0])) continue;
        ids[0] = ids[i];
        sift_down(ids, k, 0, val, 1);
    }
    for (int32_t j = 0; j < k; j++) heap_pop(ids, k - j, val, 1);
}

/* exp(x) for x <= 0 as a float; clamped first, since x may lie beyond float range. */
static float exp_neg(double x)
{
    return x < -200.0 ? 0.0f : expf((float)x);
}

/* val[t] = exp((val[t] - max) / T) for the candidates: weights with the best at 1. */
static void to_weights(float *val, const int32_t *ids, int32_t n, float max, float temperature)
{
    for (int32_t i = 0; i < n; i++) {
        int32_t t = ids[i];
        val[t] = exp_neg(((double)val[t] - (double)max) / (double)temperature);
    }
}

static double total_weight(const float *val, const int32_t *ids, int32_t n)
{
    double z = 0.0;
    for (int32_t i = 0; i < n; i++) z += val[ids[i]];
    return z;
}

/* Length of the shortest prefix of the descending ids[0..n) whose mass reaches top_p of z. */
static int32_t top_p_cut(const float *val, const int32_t *ids, int32_t n, double z, float top_p)
{
    double head = 0.0, goal = (double)top_p * z;
    int32_t k = 0;
    while (k < n && (k == 0 || head < goal)) head += val[ids[k++]];
    return k;
}

/* Drops tokens top-p is sure to drop: those of probability <= (1 - top_p) / (2 n) carry at most
 * half the mass top-p removes, and every token below them is smaller still. */
static int32_t top_p_prefilter(const float *val, int32_t *ids, int32_t n, double z, float top_p)
{
    double cut = 0.5 * (1.0 - (double)top_p) * z / (double)n;
    int32_t k = 0;
    for (int32_t i = 0; i < n; i++)
        if (val[ids[i]] > cut) ids[k++] = ids[i];
    return k;
}

static void reverse(int32_t *a, int32_t n)
{
    for (int32_t i = 0, j = n - 1; i < j; i++, j--) {
        int32_t tmp = a[i];
        a[i] = a[j];
        a[j] = tmp;
    }
}

/* top_p without top_k: pop from a max-heap until the mass reaches top_p; ids[0..k) descending. */
static int32_t top_p_heap(float *val, int32_t *ids, int32_t n, float top_p)
{
    double z = total_weight(val, ids, n), head = 0.0, goal = (double)top_p * z;
    n = top_p_prefilter(val, ids, n, z, top_p);
    heapify(ids, n, val, 0);
    int32_t k = 0;
    while (k < n && (k == 0 || head < goal)) {
        heap_pop(ids, n - k, val, 0);
        head += val[ids[n - 1 - k]];
        k++;
    }
    reverse(ids + (n - k), k); /* the popped sit in ids[n-k..n), best last */
    memmove(ids, ids + (n - k), (size_t)k * sizeof *ids);
    return k;
}

/* Keeps candidates whose weight (probability relative to the best) is at least min_p. */
static int32_t min_p_filter(const float *val, int32_t *ids, int32_t n, float min_p)
{
    int32_t k = 0;
    for (int32_t i = 0; i < n; i++)
        if (val[ids[i]] >= min_p) ids[k++] = ids[i];
    return k;
}

/* temperature, top-k, top-p, min-p over the n finite candidates; returns the survivors, left in
 * ids in ascending id order with their weights in val. */
static int32_t filter(struct smp_state *s, const struct smp_params *p, int32_t n, float max)
{
    float *val = s->val;
    int32_t *ids = s->ids, k = p->top_k;
    int sorted_desc = 0;
    if (k > 0 && k < n) {
        take_best(ids, n, k, val);
        n = k;
        sorted_desc = 1;
    }
    to_weights(val, ids, n, max, p->temperature);
    if (p->top_p < 1.0f) {
        if (sorted_desc)
            n = top_p_cut(val, ids, n, total_weight(val, ids, n), p->top_p);
        else
            n = top_p_heap(val, ids, n, p->top_p);
        sorted_desc = 1;
    }
    if (p->min_p > 0.0f) n = min_p_filter(val, ids, n, p->min_p);
    if (sorted_desc) qsort(ids, (size_t)n, sizeof *ids, cmp_id);
    return n;
}

/* Inverse CDF: the first candidate (ascending id) whose cumulative weight passes u * total. */
static int32_t draw(const float *val, const int32_t *ids, int32_t n, double u)
{
    double target = u * total_weight(val, ids, n), cum = 0.0;
    int32_t last = ids[0];
    for (int32_t i = 0; i < n; i++) {
        float w = val[ids[i]];
        if (w <= 0.0f) continue;
        cum += w;
        last = ids[i];
        if (cum > target) return ids[i];
    }
    return last; /* rounding left target at the very top */
}

/* ---- logprobs -------------------------------------------------------------------------------- */

/* Log-softmax normaliser of the raw logits, NaN treated as -inf: logprob(v) = v - max - log_z,
 * subtracted in that order so logits near the float limits keep their precision. Only called
 * after a token was drawn, so some logit is finite. */
struct log_norm {
    double max, log_z;
};

static struct log_norm log_norm(const float *logits, int32_t n)
{
    float m = -INFINITY;
    for (int32_t t = 0; t < n; t++)
        if (logits[t] > m) m = clean(logits[t]); /* NaN compares false */
    double z = 0.0;
    for (int32_t t = 0; t < n; t++)
        if (logits[t] > -INFINITY) z += exp_neg((double)clean(logits[t]) - (double)m);
    return (struct log_norm){.max = m, .log_z = log(z)};
}

/* Inserts token t with logit v into the descending list top[0..*n) of at most cap entries. */
static void keep_top(struct smp_logprob *top, int *n, int cap, int32_t t, float v)
{
    if (*n == cap && !(v > top[cap - 1].logprob)) return; /* ascending t: equal loses */
    int i = *n < cap ? (*n)++ : cap - 1;
    while (i > 0 && v > top[i - 1].logprob) {
        top[i] = top[i - 1];
        i--;
    }
    top[i] = (struct smp_logprob){.token = t, .logprob = v};
}

/* A logit's log-probability as a float (clamped: the difference can pass -FLT_MAX). */
static float to_logprob(struct log_norm ln, float v)
{
    double x = ((double)v - ln.max) - ln.log_z;
    return x < -FLT_MAX ? -FLT_MAX : (float)x;
}

static void fill_logprobs(const struct smp_params *p, const float *logits, int32_t n_vocab,
                          struct smp_result *out)
{
    struct log_norm ln = log_norm(logits, n_vocab);
    out->logprob = to_logprob(ln, clean(logits[out->token]));
    int cap = p->n_logprobs < SMP_MAX_LOGPROBS ? p->n_logprobs : SMP_MAX_LOGPROBS;
    if (cap <= 0) return;
    for (int32_t t = 0; t < n_vocab; t++) {
        float v = clean(logits[t]);
        if (v > -INFINITY) keep_top(out->top, &out->n_top, cap, t, v);
    }
    for (int i = 0; i < out->n_top; i++) out->top[i].logprob = to_logprob(ln, out->top[i].logprob);
}

/* ---- the pipeline ---------------------------------------------------------------------------- */

/* dst = src with every token outside allow at -inf. */
static void apply_mask(float *dst, const float *src, int32_t n, const uint64_t *allow)
{
    for (int32_t w = 0; w * 64 < n; w++) {
        int32_t lo = w * 64, hi = lo + 64 < n ? lo + 64 : n;
        uint64_t bits = allow[w];
        if (bits == ~0ull) {
            memcpy(dst + lo, src + lo, (size_t)(hi - lo) * sizeof *dst);
            continue;
        }
        for (int32_t t = lo; t < hi; t++) dst[t] = (bits >> (t - lo) & 1) ? src[t] : -INFINITY;
    }
}

int smp_sample_masked(struct smp_state *s, const struct smp_params *p, const float *logits,
                      int32_t n_vocab, const uint64_t *allow, struct smp_result *out,
                      struct err *e)
{
    if (n_vocab != s->n_vocab)
        ERR_FATAL("smp_sample: %d logits for a vocabulary of %d", (int)n_vocab, (int)s->n_vocab);
    memset(out, 0, sizeof *out);
    if (allow) {
        if (!s->masked) s->masked = xmalloc((size_t)n_vocab * sizeof *s->masked);
        apply_mask(s->masked, logits, n_vocab, allow);
        logits = s->masked;
    }
    memcpy(s->val, logits, (size_t)n_vocab * sizeof *logits);
    smp_adjust(s, p, s->val, n_vocab);
    int32_t max_at, n = collect_finite(s, &max_at);
    if (n == 0)
        return err_set(e, allow ? "sampler: the grammar allows no token the model can produce here"
                                : "sampler: no token can be sampled (every logit is NaN or -inf, or "
                                  "banned by logit_bias)");
    if (p->temperature == 0.0f) {
        out->token = max_at;
    } else {
        n = filter(s, p, n, s->val[max_at]);
        out->token = draw(s->val, s->ids, n, rng_uniform(s->rng));
    }
    if (p->logprobs) fill_logprobs(p, logits, n_vocab, out);
    return 0;
}

int smp_sample(struct smp_state *s, const struct smp_params *p, const float *logits,
               int32_t n_vocab, struct smp_result *out, struct err *e)
{
    return smp_sample_masked(s, p, logits, n_vocab, NULL, out, e);
}

/* ---- for the candidate sampler (engine/sampler_cand.c) --------------------------------------- */

int smp_seen(const struct smp_state *s, int32_t token)
{
    return s->seen[token];
}

uint32_t smp_count(const struct smp_state *s, int32_t token)
{
    return s->counts[token];
}

double smp_draw(struct smp_state *s)
{
    return rng_uniform(s->rng);
}
