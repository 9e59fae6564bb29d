/* synth: a synthetic model — a real config.json (tests/fixtures/synthetic/NAME.json, e.g.
 * DeepSeek-V3's own with fewer layers) whose weights are generated from a seed instead of read
 * from a checkpoint, so that real-shape benchmarks and checks need no 700 GB download.
 *
 * The tensors are the hub checkpoint's, with its names, shapes and dtypes (FP8 projections with
 * 128×128 scale grids when the config has a quantization_config, else BF16), bound by the same
 * binder as a real checkpoint. Values come from synth_hash.h; a GPU backend fills its own copy on
 * the device with the same function, so the CPU regenerates exactly what the GPU computed with. */
#ifndef SEEKD_SYNTH_H
#define SEEKD_SYNTH_H

#include <stdint.h>

#include "engine/model/model.h"
#include "engine/model/synth_hash.h"

/* Builds the model of config_path with weights from seed. fill: generate every weight in host
 * memory now (threads: 0 = one per core); 0 leaves the host copy unwritten — the memory is
 * reserved, not used — for a backend that fills its own (synth_is/synth_tensor). NULL with a
 * message when the config is invalid or the memory cannot be reserved. */
struct model *synth_load(const char *config_path, uint64_t seed, int fill, int threads,
                         struct err *e);

/* 1 when m was made by synth_load (its seed in *seed), else 0. */
int synth_is(const struct model *m, uint64_t *seed);

/* How the tensor called name, of dtype t, is generated (its gain: synth_gain with the columns of
 * the weight — for a scale grid, of the FP8 weight it scales). */
enum synth_kind synth_kind_of(const char *name, enum dtype t);

/* Writes elements [i0, i1) of a tensor's bits into dst (element size by kind). */
void synth_fill(enum synth_kind k, uint64_t key, float gain, uint64_t i0, uint64_t i1, void *dst);

#endif
