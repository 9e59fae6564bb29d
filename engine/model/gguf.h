/* gguf: maps GGUF files (v2, v3; split into -0000N-of-0000M.gguf shards) and validates them.
 *
 * A GGUF file is a header (magic, version, counts), key/value metadata, tensor infos, padding to
 * the alignment, then the tensor data. Every count, length, offset, alignment and tensor size is
 * checked against the file with overflow-safe arithmetic before anything is allocated or read:
 * a broken file gives one message naming the file and the key or tensor, never a wild read.
 * Tensors point into the read-only mapping (2 MiB-aligned; gguf_move_to_huge_pages moves it into
 * huge pages), in their stored type; only types seekd computes with (dtype.h) are accepted. Metadata values are read in place through the accessors below. */
#ifndef SEEKD_GGUF_H
#define SEEKD_GGUF_H

#include <stddef.h>
#include <stdint.h>

#include "engine/err.h"
#include "engine/model/dtype.h"
#include "engine/model/hugemap.h"

enum gguf_type {
    GGUF_U8, GGUF_I8, GGUF_U16, GGUF_I16, GGUF_U32, GGUF_I32, GGUF_F32, GGUF_BOOL, GGUF_STR,
    GGUF_ARR, GGUF_U64, GGUF_I64, GGUF_F64, GGUF_N_TYPES
};

#define GGUF_MAX_DIMS 4

struct gguf_kv {
    char *key;
    enum gguf_type type;
    enum gguf_type arr_type;  /* GGUF_ARR: the element type (never GGUF_ARR) */
    uint64_t n;               /* GGUF_ARR: elements; GGUF_STR: bytes */
    const uint8_t *data;      /* the value in the mapping (an array: its first element) */
    const uint8_t **strs;     /* array of strings: [n] each string's bytes, lengths in str_len */
    uint64_t *str_len;        /* [n] */
};

struct gguf_tensor {
    char *name;
    int n_dims;
    int64_t ne[GGUF_MAX_DIMS]; /* ggml order: ne[0] is the row length; unused dims are 1 */
    enum dtype dtype;
    const void *data;          /* in its file's mapping, aligned to the file's alignment */
    uint64_t nbytes;
    int file;                  /* index into gguf_set.files */
    int used;                  /* set by the model binder; unused tensors are reported */
};

struct gguf_file {
    char *path;
    void *map;
    size_t size;
    uint32_t version;
    uint32_t alignment;
};

struct gguf_set {
    int n_files;
    struct gguf_file *files;
    int n_kv;
    struct gguf_kv *kv;           /* the first shard's metadata, sorted by key */
    int n_tensors;
    struct gguf_tensor *tensors;  /* every shard's tensors, sorted by name */
    uint64_t n_bytes;             /* sum of tensor data sizes */
};

/* Opens path: one GGUF file, or any shard of a split model (all shards are opened). */
int gguf_open(struct gguf_set *g, const char *path, struct err *e);
void gguf_close(struct gguf_set *g);

/* Moves every file's bytes into anonymous memory backed by huge pages where the kernel gives
 * them, at the same addresses (hm_move): the quantised blocks as stored, every tensor and
 * metadata pointer unchanged, no more memory than the mapping. */
int gguf_move_to_huge_pages(struct gguf_set *g, const struct hm_report *r, struct err *e);

/* Whether path looks like a GGUF file (its first four bytes are "GGUF"). */
int gguf_is_gguf(const char *path);

const struct gguf_kv *gguf_find(const struct gguf_set *g, const char *key);
struct gguf_tensor *gguf_tensor(const struct gguf_set *g, const char *name);

/* Typed reads of a key. An absent key leaves *out untouched and returns 0 unless required
 * (then -1, "missing key"); a key of the wrong type or outside [lo, hi] is -1 with a message
 * naming it. gguf_int accepts every integer type; gguf_num integers and floats. */
int gguf_int(const struct gguf_set *g, const char *key, int64_t lo, int64_t hi, int required,
             int64_t *out, struct err *e);
int gguf_num(const struct gguf_set *g, const char *key, double lo, double hi, int required,
             double *out, struct err *e);
int gguf_bool(const struct gguf_set *g, const char *key, int *out, struct err *e);
/* A string value (not NUL-terminated inside the mapping: a fresh copy, or NULL when absent). */
int gguf_str(const struct gguf_set *g, const char *key, int required, char **out, struct err *e);

/* An array key of element type t (integers: any integer type when t is GGUF_I32 or GGUF_U32;
 * floats: f32 or f64 when t is GGUF_F32), with exactly n elements when n > 0, in *out (NULL
 * when absent and not required). -1 with a message naming the key otherwise. */
int gguf_array(const struct gguf_set *g, const char *key, enum gguf_type t, uint64_t n,
               int required, const struct gguf_kv **out, struct err *e);

/* Element i of an integer or float array, as int64 / double. */
int64_t gguf_arr_int(const struct gguf_kv *kv, uint64_t i);
double gguf_arr_num(const struct gguf_kv *kv, uint64_t i);

/* ggml's name of a type id ("Q4_K", "IQ2_XXS", ...), or NULL for an unknown id. */
const char *gguf_ggml_type_name(uint32_t id);

#endif
