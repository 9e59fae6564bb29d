/* gguf_writer: builds GGUF files byte by byte for tests — valid ones field by field, and broken
 * ones by writing any value at any place. Header-only (static functions). */
#ifndef SEEKD_TEST_GGUF_WRITER_H
#define SEEKD_TEST_GGUF_WRITER_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* A growable byte buffer. */
struct gw {
    uint8_t *p;
    size_t n, cap;
};

static inline void gw_bytes(struct gw *b, const void *s, size_t n)
{
    if (b->n + n > b->cap) {
        b->cap = (b->n + n) * 2 + 64;
        b->p = realloc(b->p, b->cap);
        if (!b->p) abort();
    }
    if (n) memcpy(b->p + b->n, s, n);
    b->n += n;
}

static inline void gw_u32(struct gw *b, uint32_t v) { gw_bytes(b, &v, 4); }
static inline void gw_u64(struct gw *b, uint64_t v) { gw_bytes(b, &v, 8); }
static inline void gw_f32(struct gw *b, float v) { gw_bytes(b, &v, 4); }

static inline void gw_str(struct gw *b, const char *s)
{
    gw_u64(b, strlen(s));
    gw_bytes(b, s, strlen(s));
}

/* "GGUF", version, tensor count, key count. */
static inline void gw_header(struct gw *b, uint32_t version, uint64_t n_tensors, uint64_t n_kv)
{
    gw_bytes(b, "GGUF", 4);
    gw_u32(b, version);
    gw_u64(b, n_tensors);
    gw_u64(b, n_kv);
}

enum { GW_U8, GW_I8, GW_U16, GW_I16, GW_U32, GW_I32, GW_F32, GW_BOOL, GW_STR, GW_ARR, GW_U64, GW_I64, GW_F64 };

static inline void gw_kv_u32(struct gw *b, const char *key, uint32_t v)
{
    gw_str(b, key), gw_u32(b, GW_U32), gw_u32(b, v);
}

static inline void gw_kv_f32(struct gw *b, const char *key, float v)
{
    gw_str(b, key), gw_u32(b, GW_F32), gw_f32(b, v);
}

static inline void gw_kv_str(struct gw *b, const char *key, const char *v)
{
    gw_str(b, key), gw_u32(b, GW_STR), gw_str(b, v);
}

static inline void gw_kv_bool(struct gw *b, const char *key, int v)
{
    uint8_t x = (uint8_t)v;
    gw_str(b, key), gw_u32(b, GW_BOOL), gw_bytes(b, &x, 1);
}

/* A tensor info: name, dims (ggml order), ggml type id, offset into the data section. */
static inline void gw_tensor(struct gw *b, const char *name, int n_dims, const uint64_t *ne,
                             uint32_t type, uint64_t offset)
{
    gw_str(b, name);
    gw_u32(b, (uint32_t)n_dims);
    for (int i = 0; i < n_dims; i++) gw_u64(b, ne[i]);
    gw_u32(b, type);
    gw_u64(b, offset);
}

/* Zero bytes up to a multiple of align. */
static inline void gw_pad(struct gw *b, size_t align)
{
    static const uint8_t zero[256];
    while (b->n % align) gw_bytes(b, zero, align - b->n % align < 256 ? align - b->n % align : 256);
}

static inline void gw_save(const struct gw *b, const char *path)
{
    FILE *f = fopen(path, "wb");
    if (!f) abort();
    if (b->n && fwrite(b->p, 1, b->n, f) != b->n) abort();
    fclose(f);
}

static inline void gw_free(struct gw *b)
{
    free(b->p);
    *b = (struct gw){0};
}

#endif
