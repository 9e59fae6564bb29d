/* wlayout: device memory plans of a GPU backend, in plain C — where every weight goes in one
 * device arena, how the bytes travel through a staging buffer, whether weights, step scratch and
 * one KV block fit the device, and where each scratch array of a step lives.
 *
 * The reference numerics keep every tensor as the checkpoint stores it (FP8 with its block
 * scales, BF16, F32): the plan only places bytes. Offsets are 256-byte aligned. */
#ifndef SEEKD_WLAYOUT_H
#define SEEKD_WLAYOUT_H

#include <stddef.h>
#include <stdint.h>

#include "engine/err.h"
#include "engine/model/config.h"

enum { WL_ALIGN = 256 };

/* Writes bytes [at, at + n) of a job's content into dst (a transform computed while staging). */
typedef void (*wl_fill_fn)(const void *ctx, uint64_t at, uint64_t n, void *dst);

/* One copy from host memory (the mapping) to the arena, or content a function computes. */
struct wl_job {
    const void *src;      /* the bytes, or NULL when fn computes them */
    uint64_t off, bytes;  /* arena offset, length */
    wl_fill_fn fn;        /* with its context ctx (which must live until the upload ends) */
    const void *ctx;
};

struct wl_plan {
    struct wl_job *jobs;  /* [n], in arena order */
    int n, cap;
    uint64_t total;       /* arena bytes */
};

/* Places bytes of src at the next aligned offset, which it returns. bytes 0: nothing placed,
 * returns the current end. */
uint64_t wl_add(struct wl_plan *p, const void *src, uint64_t bytes);

/* Places bytes computed by fn(ctx, ...) at the next aligned offset, which it returns. */
uint64_t wl_add_fn(struct wl_plan *p, uint64_t bytes, wl_fill_fn fn, const void *ctx);

/* Copies into buf every byte of the arena range [lo, lo + n) that some job provides (gaps stay
 * as they were): one staging buffer's worth, uploaded with one copy. Returns the jobs finished
 * by the end of that range. */
int wl_fill(const struct wl_plan *p, uint64_t lo, uint64_t n, void *buf);

void wl_free(struct wl_plan *p);

/* Whether the weights, the step scratch and at least one KV block fit in free bytes; if not, -1
 * with a message that gives every number and names the device. */
int wl_check_fit(const char *device, uint64_t free_bytes, uint64_t weight_bytes,
                 uint64_t scratch_bytes, uint64_t block_bytes, struct err *e);

/* Byte offsets of a step's scratch arrays in one device allocation (F32 unless noted). T is the
 * step's token limit, L its logits-row limit. */
struct wl_scratch {
    size_t h, xn, out;        /* [T, D] residual stream, normed input, block output */
    size_t cq;                /* [T, q_lora] (q_lora models) */
    size_t q;                 /* [T, H * (dn + dr)] */
    size_t kva;               /* [T, dc + dr] */
    size_t qlat, ctx;         /* [T, H, dc] */
    size_t attn;              /* [T, H * dv] */
    size_t ff_a, ff_b;        /* [T, widest of I and S * F] dense MLP / shared experts */
    size_t ysh;               /* [T, D] shared experts' output */
    size_t router;            /* [T, E] router logits */
    size_t bias;              /* [E] e_score_correction_bias widened */
    size_t sel;               /* int32 [T, k] chosen experts */
    size_t selw;              /* [T, k] their weights */
    size_t route_tmp;         /* [T, 3 E + n_group] routing scratch */
    size_t route_taken;       /* bytes [T, max(E, n_group)] */
    size_t xg, yg;            /* [T * k, D] rows gathered per expert, their outputs */
    size_t ga, gb;            /* [T * k, F] expert gate and up activations */
    size_t hl;                /* [L, D] rows that want logits, normed */
    size_t logits;            /* [L, V] */
    size_t bytes;
};

void wl_scratch_plan(const struct model_config *c, int max_tokens, int max_logits,
                     struct wl_scratch *s);

#endif
