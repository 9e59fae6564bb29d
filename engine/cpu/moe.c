/* moe: expert selection (routing) in F32, following the reference implementations exactly. */
#include "engine/cpu/moe.h"

#include <math.h>

/* Index of the largest value among v[0..n) not yet taken; ties go to the lower index. */
static int argmax_free(const float *v, const unsigned char *taken, int n)
{
    int best = -1;
    for (int i = 0; i < n; i++)
        if (!taken[i] && (best < 0 || v[i] > v[best])) best = i;
    return best;
}

/* Picks the k best of v[0..n) into idx (selection order). taken: n bytes of scratch. */
static void top_k(const float *v, int n, int k, unsigned char *taken, int *idx)
{
    for (int i = 0; i < n; i++) taken[i] = 0;
    for (int j = 0; j < k; j++) {
        idx[j] = argmax_free(v, taken, n);
        taken[idx[j]] = 1;
    }
}

/* Group score: V3 sums the two largest values of the group, V2 takes the largest. */
static float group_score(const float *v, int size, int sum_top2)
{
    float a = -INFINITY, b = -INFINITY;
    for (int i = 0; i < size; i++) {
        if (v[i] > a) {
            b = a;
            a = v[i];
        } else if (v[i] > b) {
            b = v[i];
        }
    }
    return sum_top2 && size > 1 ? a + b : a;
}

/* Masks the choice scores of experts outside the topk_group best groups: -inf for V3 (as
 * DeepSeek's and current transformers' code do), 0 for V2's group-limited greedy. */
static void mask_groups(const struct model_config *c, float *choice, float *gscore,
                        unsigned char *taken)
{
    int size = c->n_routed_experts / c->n_group;
    int keep[1024];
    for (int g = 0; g < c->n_group; g++)
        gscore[g] = group_score(choice + g * size, size, c->topk_method == TOPK_NOAUX_TC);
    top_k(gscore, c->n_group, c->topk_group, taken, keep);
    for (int g = 0; g < c->n_group; g++) taken[g] = 0;
    for (int j = 0; j < c->topk_group; j++) taken[keep[j]] = 1;
    for (int g = 0; g < c->n_group; g++)
        if (!taken[g])
            for (int i = 0; i < size; i++)
                choice[g * size + i] = c->topk_method == TOPK_NOAUX_TC ? -INFINITY : 0.0f;
}

static void affinities(const struct model_config *c, const float *logits, float *s)
{
    int E = c->n_routed_experts;
    if (c->scoring == SCORE_SIGMOID) {
        for (int i = 0; i < E; i++) s[i] = 1.0f / (1.0f + expf(-logits[i]));
        return;
    }
    float mx = -INFINITY, sum = 0.0f;
    for (int i = 0; i < E; i++) mx = fmaxf(mx, logits[i]);
    for (int i = 0; i < E; i++) sum += s[i] = expf(logits[i] - mx);
    for (int i = 0; i < E; i++) s[i] /= sum;
}

static void sort_pairs(int *idx, float *w, int k)
{
    for (int i = 1; i < k; i++)
        for (int j = i; j > 0 && idx[j - 1] > idx[j]; j--) {
            int ti = idx[j];
            float tw = w[j];
            idx[j] = idx[j - 1], w[j] = w[j - 1];
            idx[j - 1] = ti, w[j - 1] = tw;
        }
}

void moe_route(const struct model_config *c, const float *logits, const float *bias,
               float *scratch, int *idx, float *weights)
{
    int E = c->n_routed_experts, k = c->n_experts_per_tok;
    float *s = scratch, *choice = scratch + E, *gscore = scratch + 2 * E;
    unsigned char taken[16384];
    affinities(c, logits, s);
    for (int i = 0; i < E; i++) choice[i] = s[i] + (bias && c->topk_method == TOPK_NOAUX_TC ? bias[i] : 0.0f);
    if (c->topk_method != TOPK_GREEDY) mask_groups(c, choice, gscore, taken);
    top_k(choice, E, k, taken, idx);
    float sum = 0.0f;
    for (int j = 0; j < k; j++) sum += weights[j] = s[idx[j]];
    int normalise = c->norm_topk_prob && c->arch == ARCH_DEEPSEEK_V3;
    for (int j = 0; j < k; j++) {
        if (normalise) weights[j] /= sum + 1e-20f;
        weights[j] *= c->routed_scaling_factor;
    }
    sort_pairs(idx, weights, k);
}
