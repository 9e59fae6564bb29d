/* sampler_cand: the pre-filter's host reference, and smp_sample's pipeline replayed on the
 * candidates with the proofs that it equals the full row's (sampler_cand.h). Every step mirrors
 * engine/sampler.c's order of operations: the same adjustments, the same candidate order
 * (value descending, id ascending), the same double sums in the same order, the same draw. */
#include "engine/sampler_cand.h"

#include <float.h>
#include <math.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

/* A new sampling parameter must be decided here before it is used: either the candidates can
 * prove its effect (then handle it below) or a row with it set goes to the full row. */
_Static_assert(sizeof(struct smp_params) == 64 && offsetof(struct smp_params, n_logprobs) == 56,
               "struct smp_params changed: teach smp_sample_candidates the new field, or make it "
               "fall back to the full row when the field is set");

struct cand {
    int32_t id;
    float raw; /* clean raw logit */
    float v;   /* adjusted, clean */
    float w;   /* weight, once computed */
};

static float clean(float x)
{
    if (isnan(x)) return -INFINITY;
    return x == INFINITY ? FLT_MAX : x;
}

static float exp_neg(double x)
{
    return x < -200.0 ? 0.0f : expf((float)x);
}

/* ---- the pre-filter's reference ------------------------------------------------------------- */

/* The (value, id) order: a before b. */
static int ahead(float va, int32_t a, float vb, int32_t b)
{
    return va > vb || (va == vb && a < b);
}

void smp_prefilter(const float *row, int32_t n_vocab, int k, int32_t *ids, float *logits,
                   struct smp_cands *c)
{
    int n = k < n_vocab ? k : n_vocab;
    *c = (struct smp_cands){.n_vocab = n_vocab, .n = n, .ids = ids, .logits = logits,
                            .out_max = -INFINITY};
    int held = 0;
    for (int32_t t = 0; t < n_vocab; t++) { /* insertion into the sorted top n */
        float v = clean(row[t]);
        c->n_finite += v > -INFINITY;
        if (held == n && !ahead(v, t, logits[n - 1], ids[n - 1])) continue;
        int i = held < n ? held++ : n - 1;
        for (; i > 0 && ahead(v, t, logits[i - 1], ids[i - 1]); i--)
            ids[i] = ids[i - 1], logits[i] = logits[i - 1];
        ids[i] = t, logits[i] = v;
    }
    float m = logits[0];
    unsigned char *in = xcalloc((size_t)(n_vocab > 0 ? n_vocab : 0) + 1, 1);
    for (int i = 0; i < n; i++) in[ids[i]] = 1;
    for (int32_t t = 0; t < n_vocab; t++) {
        float v = clean(row[t]);
        if (in[t] || v == -INFINITY) continue;
        c->out_max = fmaxf(c->out_max, v);
        c->out_mass += exp_neg((double)v - (double)m);
    }
    free(in);
}

/* ---- what the candidates can speak for ------------------------------------------------------ */

static int is_candidate(const struct smp_cands *c, int32_t id)
{
    for (int i = 0; i < c->n; i++)
        if (c->ids[i] == id) return 1;
    return 0;
}

/* Adjustments that only lower tokens outside the candidates. */
static int lowering_only(const struct smp_params *p, const struct smp_cands *c)
{
    if (p->repetition_penalty < 1.0f || p->frequency_penalty < 0.0f || p->presence_penalty < 0.0f)
        return 0;
    for (int32_t i = 0; i < p->n_logit_bias; i++)
        if (p->logit_bias[i].bias > 0.0f && !is_candidate(c, p->logit_bias[i].token)) return 0;
    return 1;
}

/* smp_adjust's arithmetic for one token: bias entries in order, then the penalties. */
static float adjusted(const struct smp_state *s, const struct smp_params *p, int32_t id, float raw)
{
    float l = raw;
    for (int32_t i = 0; i < p->n_logit_bias; i++) {
        const struct smp_bias *b = &p->logit_bias[i];
        if (b->token == id) l = b->bias <= SMP_BIAS_BAN ? -INFINITY : l + b->bias;
    }
    int penalise = p->repetition_penalty != 1.0f || p->frequency_penalty != 0.0f ||
                   p->presence_penalty != 0.0f;
    if (!penalise || !smp_seen(s, id)) return clean(l);
    float r = p->repetition_penalty;
    if (r != 1.0f) l = l > 0.0f ? l / r : l * r;
    uint32_t n = smp_count(s, id);
    if (n > 0) l -= (float)n * p->frequency_penalty + p->presence_penalty;
    return clean(l);
}

static int by_value(const void *a, const void *b)
{
    const struct cand *x = a, *y = b;
    return ahead(x->v, x->id, y->v, y->id) ? -1 : ahead(y->v, y->id, x->v, x->id);
}

static int by_weight(const void *a, const void *b)
{
    const struct cand *x = a, *y = b;
    return ahead(x->w, x->id, y->w, y->id) ? -1 : ahead(y->w, y->id, x->w, x->id);
}

static int by_id(const void *a, const void *b)
{
    const struct cand *x = a, *y = b;
    return (x->id > y->id) - (x->id < y->id);
}

/* ---- the bounds ----------------------------------------------------------------------------- */

/* Relative rounding slack of a double sum over the vocabulary. */
static double sum_slack(const struct smp_cands *c)
{
    return (double)c->n_vocab * 0x1p-52 + 1e-15;
}

/* An upper bound on Σ over outside tokens of exp_neg((v' - M) / T) after adjustments (v' <= v),
 * M the adjusted maximum, m0 = logits[0] the raw one. Per term exp((v - M) / T) =
 * exp(v - m0) · exp((v - m0)(1/T - 1)) · exp((m0 - M) / T); for T <= 1 the middle factor is at
 * most its value at the outside maximum; for T > 1, Σ x^(1/T) <= n^(1 - 1/T) (Σ x)^(1/T). */
static double outside_weight_bound(const struct smp_cands *c, float M, float T)
{
    if (c->out_max == -INFINITY) return 0.0;
    double n_out = (double)(c->n_vocab - c->n), m0 = c->logits[0], inv = 1.0 / T;
    double mass = c->out_mass * (1.0 + SMP_CAND_MASS_ERR), shift = exp((m0 - M) * inv), by_mass;
    if (T <= 1.0f) by_mass = mass * exp(((double)c->out_max - m0) * (inv - 1.0)) * shift;
    else by_mass = pow(n_out, 1.0 - inv) * pow(mass, inv) * shift;
    double by_max = n_out * exp(((double)c->out_max - M) * inv);
    /* each term is expf((float)x): within (1 + 2^-22) of exp and x within |x| 2^-24 <= 200 · 2^-24 */
    return (by_mass < by_max ? by_mass : by_max) * (1.0 + 2e-5);
}

/* The top-p cut on candidates sorted by weight: its length, or 0 when the bound on the total
 * mass cannot fix it inside the candidates. */
static int top_p_cut(const struct cand *a, int n, const struct smp_cands *c, float M, float T,
                     float top_p, float w_out)
{
    double zc = 0.0, slack = sum_slack(c);
    for (int i = 0; i < n; i++) zc += a[i].w;
    double lo = (double)top_p * (zc * (1.0 - slack));
    double hi = (double)top_p * ((zc + outside_weight_bound(c, M, T)) * (1.0 + slack));
    double head = 0.0;
    for (int k = 0; k < n; k++) {
        if (!(a[k].w > w_out)) return 0; /* an outside token could pop before this one */
        int below_lo = k == 0 || head < lo;
        head += a[k].w;
        if (head >= hi) return below_lo ? k + 1 : 0;
        if (!(head < lo)) return 0; /* the cut depends on where in the bound the mass lies */
    }
    return 0;
}

/* ---- the pipeline --------------------------------------------------------------------------- */

/* temperature > 0: the survivors of top-k / top-p / min-p among a[0..nf) (the finite
 * candidates, sorted by value), left ascending by id in a; their count, or 0 when not provable. */
static int survivors(const struct smp_params *p, const struct smp_cands *c, struct cand *a, int nf)
{
    float M = a[0].v, T = p->temperature;
    float w_out = c->out_max == -INFINITY ? 0.0f : exp_neg(((double)c->out_max - (double)M) / T);
    int k = p->top_k, n = nf, n_lo = c->n_finite - p->n_logit_bias; /* bans remove at most this */
    /* top-k runs when k < the row's finite count after adjustments (exactly nf when nothing
     * outside is finite) */
    int top_k = k > 0 && (c->out_max == -INFINITY ? k < nf : k < n_lo);
    if (k > 0 && !top_k && c->out_max > -INFINITY && k < c->n_finite) return 0; /* unknown */
    if (top_k && (k > nf || !(a[k - 1].v > c->out_max))) return 0; /* the k best, all inside */
    if (top_k) n = k;
    for (int i = 0; i < n; i++) a[i].w = exp_neg(((double)a[i].v - (double)M) / (double)T);
    if (p->top_p < 1.0f && top_k) { /* top_p_cut over the k best, value order */
        double z = 0.0, head = 0.0;
        for (int i = 0; i < n; i++) z += a[i].w;
        int cut = 0;
        while (cut < n && (cut == 0 || head < (double)p->top_p * z)) head += a[cut++].w;
        n = cut;
    } else if (p->top_p < 1.0f) { /* top_p_heap: weight order, the total mass only bounded */
        qsort(a, (size_t)n, sizeof *a, by_weight);
        if ((n = top_p_cut(a, n, c, M, T, p->top_p, w_out)) == 0) return 0;
    } else if (!top_k && p->min_p > 0.0f && !(w_out < p->min_p)) {
        return 0; /* an outside token could pass min_p */
    } else if (!top_k && p->min_p <= 0.0f && w_out != 0.0f) {
        return 0; /* no filter at all: every outside weight must be exactly 0 */
    }
    int m = 0;
    for (int i = 0; i < n; i++)
        if (p->min_p <= 0.0f || a[i].w >= p->min_p) a[m++] = a[i];
    qsort(a, (size_t)m, sizeof *a, by_id);
    return m;
}

/* draw(): the first survivor (ascending id) whose cumulative weight passes u · total. */
static int32_t draw(const struct cand *a, int n, double u)
{
    double total = 0.0, cum = 0.0;
    for (int i = 0; i < n; i++) total += a[i].w;
    double target = u * total;
    int32_t last = a[0].id;
    for (int i = 0; i < n; i++) {
        if (a[i].w <= 0.0f) continue;
        cum += a[i].w;
        last = a[i].id;
        if (cum > target) return a[i].id;
    }
    return last;
}

/* ---- logprobs ------------------------------------------------------------------------------- */

struct lp_bound {
    double m, log_lo, log_hi; /* the raw maximum, log Σ exp bounds */
};

static struct lp_bound lp_bound(const struct smp_cands *c)
{
    double m = c->logits[0], zc = 0.0, slack = sum_slack(c);
    for (int i = 0; i < c->n; i++) /* the very terms the full row adds */
        if (c->logits[i] > -INFINITY) zc += exp_neg((double)c->logits[i] - m);
    double lo = (zc + c->out_mass * (1.0 - SMP_CAND_MASS_ERR)) * (1.0 - slack);
    double hi = (zc + c->out_mass * (1.0 + SMP_CAND_MASS_ERR)) * (1.0 + slack);
    return (struct lp_bound){m, nextafter(log(lo), -INFINITY), nextafter(log(hi), INFINITY)};
}

static float to_logprob(double x)
{
    return x < -FLT_MAX ? -FLT_MAX : (float)x;
}

/* The float logprob of raw logit v, when the bound fixes it; else 1 (no logprob is positive). */
static float logprob_of(struct lp_bound b, float v)
{
    float a = to_logprob(((double)v - b.m) - b.log_hi), z = to_logprob(((double)v - b.m) - b.log_lo);
    return a == z ? a : 1.0f;
}

/* The chosen token's logprob and the top alternatives; 0 when the bound cannot fix them. */
static int fill_logprobs(const struct smp_params *p, const struct smp_cands *c, int32_t token,
                         struct smp_result *out)
{
    struct lp_bound b = lp_bound(c);
    for (int i = 0; i < c->n; i++)
        if (c->ids[i] == token && (out->logprob = logprob_of(b, c->logits[i])) > 0.0f) return 0;
    int cap = p->n_logprobs < SMP_MAX_LOGPROBS ? p->n_logprobs : SMP_MAX_LOGPROBS, n = 0;
    for (int i = 0; i < c->n && n < cap && c->logits[i] > -INFINITY; i++) {
        if (!(c->logits[i] > c->out_max)) return 0; /* an outside token could tie or lead */
        out->top[n] = (struct smp_logprob){.token = c->ids[i], .logprob = logprob_of(b, c->logits[i])};
        if (out->top[n++].logprob > 0.0f) return 0;
    }
    if (n < cap && c->out_max > -INFINITY) return 0;
    out->n_top = n;
    return 1;
}

int smp_sample_candidates(struct smp_state *s, const struct smp_params *p,
                          const struct smp_cands *c, struct smp_result *out)
{
    struct cand a[SMP_CAND_K];
    if (c->n < 1 || c->n > SMP_CAND_K || !lowering_only(p, c)) return 0;
    int nf = 0;
    for (int i = 0; i < c->n; i++) {
        a[i] = (struct cand){.id = c->ids[i], .raw = c->logits[i]};
        a[i].v = adjusted(s, p, a[i].id, a[i].raw);
        nf += a[i].v > -INFINITY;
    }
    qsort(a, (size_t)c->n, sizeof *a, by_value);
    if (nf == 0 || !(a[0].v > c->out_max)) return 0; /* the maximum must be a candidate */
    struct smp_result r = {0};
    int n = p->temperature == 0.0f ? 1 : survivors(p, c, a, nf);
    if (n == 0) return 0;
    if (p->logprobs) /* decided for every survivor before the draw, which cannot be undone */
        for (int i = 0; i < n; i++)
            if (!fill_logprobs(p, c, a[i].id, &r)) return 0;
    r.token = p->temperature == 0.0f ? a[0].id : draw(a, n, smp_draw(s));
    if (p->logprobs) fill_logprobs(p, c, r.token, &r);
    *out = r;
    return 1;
}
