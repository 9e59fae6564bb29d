/* stage_dump: the stages of a step written as .npy files — what a backend computed at every
 * rounding point of every layer — and read back. A backend given a dump directory
 * (backend_opts.dump_dir, `seekd logits --dump-stages DIR`) writes
 *
 *   DIR/step0000/tokens.npy pos.npy slot.npy table_off.npy tables.npy logit_rows.npy
 *                 block_size.npy (the step's plan, engine/plan/stepplan.h, int32)
 *   DIR/step0000/L00.<stage>.npy ...   every stage of layer 0, then 1, ...
 *   DIR/step0000/<stage>.npy            the final norm and the logits
 *
 * and the stage checker (engine/cpu/stage_check.h, `seekd check-stages`) recomputes each stage
 * on the CPU from the dumped input to it. Stage names and shapes are listed in
 * docs/ARCHITECTURE.md ("Stage checks"); BF16 values are stored as uint16 bits, FP8 codes as
 * uint8, scales [tokens][groups] as float32 whatever layout the device used. */
#ifndef SEEKD_STAGE_DUMP_H
#define SEEKD_STAGE_DUMP_H

#include <stdint.h>

#include "engine/err.h"
#include "engine/plan/stepplan.h"

enum sd_type { SD_F32, SD_BF16, SD_U8, SD_I32 };

enum { SD_MAX_DIMS = 4 };

struct sd {
    char dir[3072];
    int step;       /* the step being written (incremented by sd_step) */
    char path[4096]; /* DIR/stepNNNN */
};

/* Creates dir (and its parents) if needed; -1 with a message when it cannot be made. */
int sd_open(struct sd *d, const char *dir, struct err *e);

/* Starts the next step's directory and writes its plan arrays and the cache's block size. */
int sd_step(struct sd *d, const struct sp_plan *sp, int block_size, struct err *e);

/* Writes one stage of the current step: L<layer>.<name>.npy (layer < 0: <name>.npy). */
int sd_put(struct sd *d, int layer, const char *name, enum sd_type t, const void *data,
           int n_dims, const int64_t *shape, struct err *e);

/* A loaded array. */
struct sd_array {
    enum sd_type type;
    int n_dims;
    int64_t shape[SD_MAX_DIMS];
    int64_t n;  /* elements */
    void *data; /* owned */
};

/* Reads one .npy written by sd_put (or numpy with the same dtypes). -1 with a message naming
 * the file when it is missing or not such an array. */
int sd_load(const char *path, struct sd_array *a, struct err *e);

/* The stage file of step `step` in dir: DIR/stepNNNN/[L<layer>.]<name>.npy. */
void sd_stage_path(const char *dir, int step, int layer, const char *name, char *out, size_t n);

void sd_array_free(struct sd_array *a);

#endif
