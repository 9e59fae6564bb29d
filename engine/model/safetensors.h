/* safetensors: maps checkpoint files and validates their headers.
 *
 * A checkpoint is one model.safetensors or several shards listed by model.safetensors.index.json.
 * Files are mmapped read-only at 2 MiB-aligned addresses (huge pages advised); tensors point into
 * the mapping, in their stored dtype. Every header
 * field is checked (length, JSON, dtype, shape, offsets, overlap) before any tensor is handed
 * out, so a broken file gives a message and never an out-of-bounds read. */
#ifndef SEEKD_SAFETENSORS_H
#define SEEKD_SAFETENSORS_H

#include <stddef.h>
#include <stdint.h>

#include "engine/model/dtype.h"
#include "engine/model/hugemap.h"
#include "engine/err.h"

#define ST_MAX_DIMS 8

struct st_tensor {
    char *name;
    enum dtype dtype;
    int n_dims;
    int64_t shape[ST_MAX_DIMS];
    int64_t n_elems;
    const void *data; /* inside the file's mapping; not necessarily aligned */
    size_t nbytes;
    int file;         /* index into st_set.files */
    int used;         /* set by the model binder; unused tensors are reported */
};

struct st_file {
    char *path;
    void *map;
    size_t size;
};

struct st_set {
    int n_files;
    struct st_file *files;
    int n_tensors;
    struct st_tensor *tensors; /* sorted by name */
    uint64_t n_bytes;          /* sum of tensor data sizes */
};

/* Opens the checkpoint in dir: model.safetensors, or the shards named by the index file. */
int st_open_dir(struct st_set *s, const char *dir, struct err *e);

/* Adds one safetensors file to the set (tensor names must not repeat across files). */
int st_add_file(struct st_set *s, const char *path, struct err *e);

/* Sorts the tensor list and rejects duplicate names; called once after the last st_add_file. */
int st_finish(struct st_set *s, struct err *e);

/* The tensor of that name, or NULL. */
struct st_tensor *st_find(const struct st_set *s, const char *name);

/* Moves every file's bytes from the page cache into anonymous memory backed by huge pages where
 * the kernel gives them (transparent huge pages: madvise or always), at the same addresses
 * (hm_move: no more memory than the mapping, but read whole at once, private to this process). */
int st_move_to_huge_pages(struct st_set *s, const struct hm_report *r, struct err *e);

void st_close(struct st_set *s);

#endif
