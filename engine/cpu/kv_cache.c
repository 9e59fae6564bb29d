/* kv_cache: block storage of cache rows (MLA latents, or dense keys and values), in F32, BF16 or
 * F16. */
#include "engine/cpu/kv_cache.h"

#include <stdlib.h>
#include <string.h>

size_t kv_cache_block_bytes(int n_layers, int width, int block_size, enum dtype dtype)
{
    return (size_t)n_layers * (size_t)block_size * (size_t)width * dtype_size(dtype);
}

struct kv_cache *kv_cache_create(int n_layers, int width, int block_size, int n_blocks,
                                 enum dtype dtype)
{
    if (dtype != DT_F32 && dtype != DT_BF16 && dtype != DT_F16) return NULL;
    struct kv_cache *kv = calloc(1, sizeof *kv);
    if (!kv) return NULL;
    *kv = (struct kv_cache){.n_layers = n_layers, .width = width, .block_size = block_size,
                            .n_blocks = n_blocks, .dtype = dtype};
    kv->data = calloc((size_t)n_blocks, kv_cache_block_bytes(n_layers, width, block_size, dtype));
    if (!kv->data) {
        free(kv);
        return NULL;
    }
    return kv;
}

void kv_cache_destroy(struct kv_cache *kv)
{
    if (!kv) return;
    free(kv->data);
    free(kv);
}

static size_t row_index(const struct kv_cache *kv, int layer, int block, int slot)
{
    return (((size_t)layer * kv->n_blocks + block) * kv->block_size + slot) * kv->width;
}

void kv_cache_put(struct kv_cache *kv, int layer, int block, int slot, const float *row)
{
    size_t i = row_index(kv, layer, block, slot);
    if (kv->dtype == DT_F32) {
        memcpy((float *)kv->data + i, row, (size_t)kv->width * sizeof(float));
        return;
    }
    uint16_t *dst = (uint16_t *)kv->data + i;
    if (kv->dtype == DT_F16)
        for (int k = 0; k < kv->width; k++) dst[k] = f32_to_f16(row[k]);
    else
        for (int k = 0; k < kv->width; k++) dst[k] = f32_to_bf16(row[k]);
}

void kv_cache_get(const struct kv_cache *kv, int layer, int block, int slot, float *out)
{
    size_t i = row_index(kv, layer, block, slot);
    if (kv->dtype == DT_F32) memcpy(out, (const float *)kv->data + i, (size_t)kv->width * sizeof(float));
    else dtype_to_f32(kv->dtype, (const uint16_t *)kv->data + i, out, (size_t)kv->width);
}

const void *kv_cache_row(const struct kv_cache *kv, int layer, int block, int slot)
{
    return (const char *)kv->data + row_index(kv, layer, block, slot) * dtype_size(kv->dtype);
}

void kv_cache_copy_block(struct kv_cache *kv, int src, int dst)
{
    size_t row = (size_t)kv->width * dtype_size(kv->dtype);
    size_t block = row * (size_t)kv->block_size;
    for (int l = 0; l < kv->n_layers; l++) {
        char *base = (char *)kv->data + (size_t)l * kv->n_blocks * block;
        memcpy(base + (size_t)dst * block, base + (size_t)src * block, block);
    }
}
