/* ckpt_writer: builds safetensors files and whole tiny checkpoints byte by byte, for tests.
 * Header-only (static functions) so each test program can include it. */
#ifndef SEEKD_TEST_CKPT_WRITER_H
#define SEEKD_TEST_CKPT_WRITER_H

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "engine/model/dtype.h"

/* A scratch directory under $TMPDIR (or /tmp), removed by ck_rmdir. */
static inline char *ck_tmpdir(void)
{
    const char *base = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
    char *path = malloc(4096);
    snprintf(path, 4096, "%s/seekd-test-XXXXXX", base);
    if (!mkdtemp(path)) abort();
    return path;
}

static inline void ck_rmdir(char *dir)
{
    char cmd[4200];
    snprintf(cmd, sizeof cmd, "rm -rf '%s'", dir);
    if (system(cmd) != 0) abort();
    free(dir);
}

static inline void ck_write(const char *dir, const char *name, const void *data, size_t n)
{
    char path[4200];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    FILE *f = fopen(path, "wb");
    if (!f) abort();
    if (n && fwrite(data, 1, n, f) != n) abort();
    fclose(f);
}

/* A raw safetensors file: the 8-byte length (may lie: hlen_override >= 0), header, data. */
static inline void ck_raw(const char *dir, const char *name, const char *header, long hlen_override,
                          const void *data, size_t n_data)
{
    size_t hlen = strlen(header), total = 8 + hlen + n_data;
    unsigned char *buf = calloc(1, total);
    uint64_t len = hlen_override >= 0 ? (uint64_t)hlen_override : hlen;
    for (int i = 0; i < 8; i++) buf[i] = (unsigned char)(len >> (8 * i));
    memcpy(buf + 8, header, hlen);
    if (n_data) memcpy(buf + 8 + hlen, data, n_data);
    ck_write(dir, name, buf, total);
    free(buf);
}

/* A tensor to be written by ck_file. */
struct ck_tensor {
    char name[160];
    enum dtype dtype;
    int n_dims;
    int64_t shape[2];
    void *data;
    size_t nbytes;
};

struct ck_list {
    int n;
    struct ck_tensor t[4096];
};

/* Deterministic pseudo-random floats in [-a, a). */
static inline float ck_rand(uint64_t *s, float a)
{
    *s = *s * 6364136223846793005ull + 1442695040888963407ull;
    return ((float)(*s >> 40) / (float)(1ull << 24) * 2.0f - 1.0f) * a;
}

/* Adds a tensor filled with random values of magnitude a (norm weights: around 1). */
static inline void ck_add(struct ck_list *l, enum dtype dt, int64_t rows, int64_t cols, float a,
                          float center, uint64_t *seed, const char *name)
{
    struct ck_tensor *t = &l->t[l->n++];
    snprintf(t->name, sizeof t->name, "%s", name);
    t->dtype = dt;
    t->n_dims = rows ? 2 : 1;
    t->shape[0] = rows ? rows : cols;
    t->shape[1] = cols;
    size_t n = (size_t)(rows ? rows : 1) * (size_t)cols;
    t->nbytes = n * dtype_size(dt);
    t->data = malloc(t->nbytes ? t->nbytes : 1);
    for (size_t i = 0; i < n; i++) {
        float v = center + ck_rand(seed, a);
        if (dt == DT_F32) ((float *)t->data)[i] = v;
        else if (dt == DT_BF16) ((uint16_t *)t->data)[i] = f32_to_bf16(v);
        else if (dt == DT_F8E4M3) ((uint8_t *)t->data)[i] = (uint8_t)(*seed >> 33) & 0x77; /* finite */
        else abort();
    }
}

/* Writes the tensors of l into dir/name as one safetensors file (8-byte aligned data). */
static inline void ck_file(const char *dir, const char *name, const struct ck_list *l)
{
    size_t cap = 1 << 20, len = 0, off = 0;
    char *h = malloc(cap);
    len += (size_t)snprintf(h + len, cap - len, "{\"__metadata__\":{\"format\":\"pt\"}");
    for (int i = 0; i < l->n; i++) {
        const struct ck_tensor *t = &l->t[i];
        len += (size_t)snprintf(h + len, cap - len, ",\"%s\":{\"dtype\":\"%s\",\"shape\":[%lld",
                                t->name, dtype_name(t->dtype), (long long)t->shape[0]);
        if (t->n_dims == 2) len += (size_t)snprintf(h + len, cap - len, ",%lld", (long long)t->shape[1]);
        len += (size_t)snprintf(h + len, cap - len, "],\"data_offsets\":[%zu,%zu]}", off, off + t->nbytes);
        off += (t->nbytes + 7) / 8 * 8;
    }
    len += (size_t)snprintf(h + len, cap - len, "}");
    while (len % 8) h[len++] = ' ';
    h[len] = 0;
    unsigned char *data = calloc(1, off ? off : 1);
    off = 0;
    for (int i = 0; i < l->n; i++) {
        memcpy(data + off, l->t[i].data, l->t[i].nbytes);
        off += (l->t[i].nbytes + 7) / 8 * 8;
    }
    ck_raw(dir, name, h, -1, data, off);
    free(data);
    free(h);
}

static inline void ck_free(struct ck_list *l)
{
    for (int i = 0; i < l->n; i++) free(l->t[i].data);
    l->n = 0;
}

/* Removes the tensor of that name from the list (to make a checkpoint incomplete). */
static inline void ck_drop(struct ck_list *l, const char *name)
{
    for (int i = 0; i < l->n; i++)
        if (strcmp(l->t[i].name, name) == 0) {
            free(l->t[i].data);
            l->t[i] = l->t[--l->n];
            return;
        }
    abort();
}

#endif
