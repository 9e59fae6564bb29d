/* kv_cache: the paged store of MLA latents.
 *
 * Per token per layer the cache holds one row of kv_lora_rank + qk_rope_head_dim values: the
 * normed latent c and the rotated rope key, shared by all heads. Rows live in fixed-size blocks;
 * a sequence's block table maps position p to block table[p / block_size], slot p % block_size.
 * Which blocks a sequence owns is the block manager's business; this module only stores. */
#ifndef SEEKD_KV_CACHE_H
#define SEEKD_KV_CACHE_H

#include <stddef.h>
#include <stdint.h>

#include "engine/model/dtype.h"

struct kv_cache {
    int n_layers;
    int width;      /* values per row: kv_lora_rank + qk_rope_head_dim */
    int block_size; /* tokens per block */
    int n_blocks;
    enum dtype dtype; /* DT_F32 or DT_BF16 */
    void *data;       /* [n_layers][n_blocks][block_size][width] */
};

/* Allocates the pool; returns NULL when the memory cannot be had. dtype: DT_F32 or DT_BF16. */
struct kv_cache *kv_cache_create(int n_layers, int width, int block_size, int n_blocks,
                                 enum dtype dtype);
void kv_cache_destroy(struct kv_cache *kv);

/* Bytes one block takes across all layers (for sizing the pool from a memory budget). */
size_t kv_cache_block_bytes(int n_layers, int width, int block_size, enum dtype dtype);

/* Stores one row (width floats) for (layer, block, slot), converting to the cache dtype. */
void kv_cache_put(struct kv_cache *kv, int layer, int block, int slot, const float *row);

/* Reads one row into out (width floats). */
void kv_cache_get(const struct kv_cache *kv, int layer, int block, int slot, float *out);

/* The stored row for (layer, block, slot), in the cache dtype. */
const void *kv_cache_row(const struct kv_cache *kv, int layer, int block, int slot);

/* Copies a whole block (all layers) — copy-on-write when samples of one prompt diverge. */
void kv_cache_copy_block(struct kv_cache *kv, int src, int dst);

#endif
