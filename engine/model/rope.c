/* rope: RoPE/YaRN frequencies, scales and the per-position angles. */
#include "engine/model/rope.h"

#include <math.h>

#include "engine/err.h"

static double yarn_mscale(double scale, double m)
{
    return scale <= 1.0 ? 1.0 : 0.1 * m * log(scale) + 1.0;
}

/* Blends each frequency between interpolated and original by YaRN's linear ramp. */
static void yarn_blend(struct rope *r, const struct model_config *c)
{
    int dim = c->qk_rope_head_dim;
    double factor = c->rope_factor, L0 = c->rope_orig_max_pos;
    double lo = floor(dim * log(L0 / (c->rope_beta_fast * 2 * M_PI)) / (2 * log(c->rope_theta)));
    double hi = ceil(dim * log(L0 / (c->rope_beta_slow * 2 * M_PI)) / (2 * log(c->rope_theta)));
    lo = fmax(lo, 0.0), hi = fmin(hi, dim - 1);
    if (lo == hi) hi += 0.001;
    for (int i = 0; i < r->n_pairs; i++) {
        float ramp = fminf(fmaxf((float)((i - lo) / (hi - lo)), 0.0f), 1.0f);
        float extra = 1.0f - ramp;
        float interp = r->inv_freq[i] / (float)factor;
        r->inv_freq[i] = interp * (1.0f - extra) + r->inv_freq[i] * extra;
    }
}

/* Llama 3's frequency-dependent scaling: long wavelengths divided by the factor, short ones kept,
 * a smooth blend between (transformers' _compute_llama3_parameters). */
static void llama3_scale(struct rope *r, const struct model_config *c)
{
    double L0 = c->rope_orig_max_pos, lo = c->rope_low_freq, hi = c->rope_high_freq, f = c->rope_factor;
    for (int i = 0; i < r->n_pairs; i++) {
        double inv = r->inv_freq[i], wavelen = 2 * M_PI / inv;
        if (wavelen > L0 / lo) inv /= f;
        else if (wavelen >= L0 / hi) {
            double smooth = (L0 / wavelen - lo) / (hi - lo);
            inv = (1 - smooth) * inv / f + smooth * inv;
        }
        r->inv_freq[i] = (float)inv;
    }
}

void rope_init(struct rope *r, const struct model_config *c)
{
    int dim = c->qk_rope_head_dim;
    float base = (float)c->rope_theta;
    if (dim / 2 > ROPE_MAX_PAIRS) ERR_FATAL("qk_rope_head_dim %d passed the config check", dim);
    *r = (struct rope){.n_pairs = dim / 2, .mag = 1.0f};
    r->softmax_scale = 1.0f / sqrtf((float)config_qk_head_dim(c));
    for (int i = 0; i < r->n_pairs; i++) r->inv_freq[i] = 1.0f / powf(base, (float)(2 * i) / (float)dim);
    if (!config_is_mla(c)) r->softmax_scale = 1.0f / sqrtf((float)c->head_dim);
    if (c->rope_linear)
        for (int i = 0; i < r->n_pairs; i++) r->inv_freq[i] /= (float)c->rope_factor;
    if (c->rope_llama3) llama3_scale(r, c);
    if (!c->rope_yarn) return;
    double factor = c->rope_factor;
    yarn_blend(r, c);
    if (c->rope_mscale && c->rope_mscale_all_dim)
        r->mag = (float)(yarn_mscale(factor, c->rope_mscale) / yarn_mscale(factor, c->rope_mscale_all_dim));
    else
        r->mag = (float)yarn_mscale(factor, 1.0);
    if (c->rope_mscale_all_dim) {
        float m = (float)yarn_mscale(factor, c->rope_mscale_all_dim);
        r->softmax_scale *= m * m;
    }
}

void rope_angles(const struct rope *r, int pos, float *cos_out, float *sin_out)
{
    for (int i = 0; i < r->n_pairs; i++) {
        float theta = (float)pos * r->inv_freq[i];
        cos_out[i] = cosf(theta) * r->mag;
        sin_out[i] = sinf(theta) * r->mag;
    }
}

void rope_freq_factors(struct rope *r, const float *factors)
{
    for (int i = 0; i < r->n_pairs; i++) r->inv_freq[i] /= factors[i];
}

void rope_apply(float *x, int n_pairs, const float *cos_v, const float *sin_v)
{
    for (int i = 0; i < n_pairs; i++) {
        float a = x[2 * i], b = x[2 * i + 1], c = cos_v[i], s = sin_v[i];
        x[2 * i] = a * c - b * s;
        x[2 * i + 1] = a * s + b * c;
    }
}

void rope_apply_neox(float *x, int n_pairs, const float *cos_v, const float *sin_v)
{
    for (int i = 0; i < n_pairs; i++) {
        float a = x[i], b = x[i + n_pairs], c = cos_v[i], s = sin_v[i];
        x[i] = a * c - b * s;
        x[i + n_pairs] = a * s + b * c;
    }
}
