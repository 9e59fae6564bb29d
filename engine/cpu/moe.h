/* moe: expert routing for DeepSeekMoE — which experts a token visits and with what weight.
 *
 * V3 (noaux_tc): sigmoid affinities; e_score_correction_bias added for selection only;
 * group score = sum of the two best biased scores; experts outside the topk_group best groups
 * are excluded; the weights are the unbiased affinities, normalised
 * when norm_topk_prob, times routed_scaling_factor.
 * V2 (greedy / group_limited_greedy): softmax affinities, top-k (within the best groups by
 * max score), times routed_scaling_factor, no normalisation. All math in F32. */
#ifndef SEEKD_MOE_H
#define SEEKD_MOE_H

#include "engine/model/config.h"

/* logits: [n_routed_experts] router outputs; bias: [n_routed_experts] or NULL; scratch: 3*E floats.
 * Writes n_experts_per_tok expert ids (ascending) and their weights. Afterwards scratch holds the
 * affinities [E], the choice scores after group masking [E] and the group scores [n_group] (the
 * stage checker reads the routing's margins there). */
void moe_route(const struct model_config *c, const float *logits, const float *bias,
               float *scratch, int *idx, float *weights);

#endif
