/* gguf: parsing and validation of GGUF files and split sets.
 *
 * Layout (little-endian): "GGUF", u32 version, u64 n_tensors, u64 n_kv; n_kv × (string key,
 * u32 type, value); n_tensors × (string name, u32 n_dims, u64 ne[n_dims], u32 ggml type,
 * u64 offset); padding to general.alignment (default 32); the data, each tensor at its offset.
 * A string is a u64 length and that many bytes; an array is a u32 element type, a u64 count and
 * the elements. Every read goes through `need`, which checks the bytes exist first. */
#include "engine/model/gguf.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

enum {
    MAX_KEY = 1024,           /* bytes in a key */
    MAX_NAME = 255,           /* bytes in a tensor name */
    MAX_ALIGNMENT = 1 << 20,  /* general.alignment */
    MAX_SHARDS = 4096,
    MIN_KV_BYTES = 8 + 1 + 4 + 1,               /* key length, a 1-byte key, type, a u8 */
    MIN_TENSOR_BYTES = 8 + 1 + 4 + 8 + 4 + 8,   /* name length, name, n_dims, ne[0], type, offset */
};

/* ggml's type ids: names for messages, and the dtype seekd computes with (DT_COUNT: none). */
static const struct {
    const char *name;
    enum dtype dtype;
} ggml_types[] = {
    [0] = {"F32", DT_F32},       [1] = {"F16", DT_F16},       [2] = {"Q4_0", DT_Q4_0},
    [3] = {"Q4_1", DT_Q4_1},     [6] = {"Q5_0", DT_Q5_0},     [7] = {"Q5_1", DT_Q5_1},
    [8] = {"Q8_0", DT_Q8_0},     [9] = {"Q8_1", DT_COUNT},    [10] = {"Q2_K", DT_Q2_K},
    [11] = {"Q3_K", DT_Q3_K},    [12] = {"Q4_K", DT_Q4_K},    [13] = {"Q5_K", DT_Q5_K},
    [14] = {"Q6_K", DT_Q6_K},    [15] = {"Q8_K", DT_COUNT},   [16] = {"IQ2_XXS", DT_COUNT},
    [17] = {"IQ2_XS", DT_COUNT}, [18] = {"IQ3_XXS", DT_COUNT}, [19] = {"IQ1_S", DT_COUNT},
    [20] = {"IQ4_NL", DT_COUNT}, [21] = {"IQ3_S", DT_COUNT},  [22] = {"IQ2_S", DT_COUNT},
    [23] = {"IQ4_XS", DT_COUNT}, [24] = {"I8", DT_COUNT},     [25] = {"I16", DT_COUNT},
    [26] = {"I32", DT_COUNT},    [27] = {"I64", DT_COUNT},    [28] = {"F64", DT_COUNT},
    [29] = {"IQ1_M", DT_COUNT},  [30] = {"BF16", DT_BF16},    [34] = {"TQ1_0", DT_COUNT},
    [35] = {"TQ2_0", DT_COUNT},  [39] = {"MXFP4", DT_COUNT},  [40] = {"NVFP4", DT_COUNT},
    [41] = {"Q1_0", DT_COUNT},   [42] = {"Q2_0", DT_COUNT},
};
#define N_GGML_TYPES (sizeof ggml_types / sizeof ggml_types[0])

static const char *const kv_type_names[GGUF_N_TYPES] = {
    "u8", "i8", "u16", "i16", "u32", "i32", "f32", "bool", "string", "array", "u64", "i64", "f64"};
static const uint8_t kv_type_size[GGUF_N_TYPES] = {1, 1, 2, 2, 4, 4, 4, 1, 0, 0, 8, 8, 8};

const char *gguf_ggml_type_name(uint32_t id)
{
    return id < N_GGML_TYPES ? ggml_types[id].name : NULL;
}

/* ---- the cursor ------------------------------------------------------------------------------ */

struct rd {
    const uint8_t *p;
    uint64_t size, off;
    const char *path;
    char what[320]; /* what is being read, for messages: "key 'x'", "tensor 'y'" */
    struct err *e;
};

/* n more bytes exist at the cursor; else the truncation message. */
static int need(struct rd *r, uint64_t n, const char *part)
{
    if (n <= r->size - r->off) return 0;
    return err_set(r->e, "%s: %s: %s at byte %llu needs %llu bytes, only %llu remain (truncated file?)",
                   r->path, r->what, part, (unsigned long long)r->off, (unsigned long long)n,
                   (unsigned long long)(r->size - r->off));
}

static int rd_bytes(struct rd *r, void *out, uint64_t n, const char *part)
{
    if (need(r, n, part)) return -1;
    memcpy(out, r->p + r->off, (size_t)n);
    r->off += n;
    return 0;
}

static int rd_u32(struct rd *r, uint32_t *v, const char *part)
{
    return rd_bytes(r, v, 4, part);
}

static int rd_u64(struct rd *r, uint64_t *v, const char *part)
{
    return rd_bytes(r, v, 8, part);
}

/* A string of at most max bytes, left in place. */
static int rd_str(struct rd *r, const uint8_t **s, uint64_t *len, uint64_t max, const char *part)
{
    if (rd_u64(r, len, part)) return -1;
    if (*len > max)
        return err_set(r->e, "%s: %s: %s is %llu bytes long (at most %llu)", r->path, r->what, part,
                       (unsigned long long)*len, (unsigned long long)max);
    if (need(r, *len, part)) return -1;
    *s = r->p + r->off;
    r->off += *len;
    return 0;
}

/* A key or name: 1..max bytes, no NUL inside; returned as a fresh C string. */
static char *rd_name(struct rd *r, uint64_t max, const char *part)
{
    const uint8_t *s;
    uint64_t n;
    if (rd_str(r, &s, &n, max, part)) return NULL;
    if (n == 0 || memchr(s, 0, (size_t)n)) {
        err_set(r->e, "%s: %s: %s is empty or holds a NUL byte", r->path, r->what, part);
        return NULL;
    }
    char *out = xmalloc((size_t)n + 1);
    memcpy(out, s, (size_t)n);
    out[n] = 0;
    return out;
}

/* ---- metadata -------------------------------------------------------------------------------- */

static void kv_free(struct gguf_kv *kv, int n)
{
    for (int i = 0; kv && i < n; i++) {
        free(kv[i].key);
        free(kv[i].strs);
        free(kv[i].str_len);
    }
    free(kv);
}

/* An array of n strings: every length checked, pointers kept. */
static int read_str_array(struct rd *r, struct gguf_kv *kv)
{
    if (kv->n > (r->size - r->off) / 8)
        return err_set(r->e, "%s: %s: %llu strings cannot fit in the %llu bytes left", r->path,
                       r->what, (unsigned long long)kv->n, (unsigned long long)(r->size - r->off));
    kv->strs = xcalloc(kv->n ? (size_t)kv->n : 1, sizeof *kv->strs);
    kv->str_len = xcalloc(kv->n ? (size_t)kv->n : 1, sizeof *kv->str_len);
    for (uint64_t i = 0; i < kv->n; i++)
        if (rd_str(r, &kv->strs[i], &kv->str_len[i], r->size, "an array string")) return -1;
    return 0;
}

static int read_array(struct rd *r, struct gguf_kv *kv)
{
    uint32_t t;
    if (rd_u32(r, &t, "the array's element type") || rd_u64(r, &kv->n, "the array's length"))
        return -1;
    if (t >= GGUF_N_TYPES)
        return err_set(r->e, "%s: %s: unknown array element type %u", r->path, r->what, t);
    if (t == GGUF_ARR) return err_set(r->e, "%s: %s: nested arrays are not supported", r->path, r->what);
    kv->arr_type = (enum gguf_type)t;
    kv->data = r->p + r->off;
    if (t == GGUF_STR) return read_str_array(r, kv);
    if (kv->n > (r->size - r->off) / kv_type_size[t])
        return err_set(r->e, "%s: %s: %llu elements of %s run past the end of the file", r->path,
                       r->what, (unsigned long long)kv->n, kv_type_names[t]);
    for (uint64_t i = 0; t == GGUF_BOOL && i < kv->n; i++)
        if (kv->data[i] > 1) return err_set(r->e, "%s: %s: a bool is %u", r->path, r->what, kv->data[i]);
    r->off += kv->n * kv_type_size[t];
    return 0;
}

static int read_value(struct rd *r, struct gguf_kv *kv)
{
    uint32_t t;
    if (rd_u32(r, &t, "the value type")) return -1;
    if (t >= GGUF_N_TYPES) return err_set(r->e, "%s: %s: unknown value type %u", r->path, r->what, t);
    kv->type = (enum gguf_type)t;
    if (t == GGUF_ARR) return read_array(r, kv);
    if (t == GGUF_STR) return rd_str(r, &kv->data, &kv->n, r->size, "the string");
    if (need(r, kv_type_size[t], "the value")) return -1;
    kv->data = r->p + r->off;
    kv->n = 1;
    r->off += kv_type_size[t];
    if (t == GGUF_BOOL && kv->data[0] > 1)
        return err_set(r->e, "%s: %s: a bool is %u", r->path, r->what, kv->data[0]);
    return 0;
}

static int cmp_kv(const void *a, const void *b)
{
    return strcmp(((const struct gguf_kv *)a)->key, ((const struct gguf_kv *)b)->key);
}

/* Reads n_kv pairs into *out (sorted by key); duplicates are refused. */
static int read_kvs(struct rd *r, uint64_t n_kv, struct gguf_kv **out, struct err *e)
{
    if (n_kv > (r->size - r->off) / MIN_KV_BYTES)
        return err_set(e, "%s: the header claims %llu metadata keys, more than the file can hold",
                       r->path, (unsigned long long)n_kv);
    struct gguf_kv *kv = *out = xcalloc(n_kv ? (size_t)n_kv : 1, sizeof *kv);
    for (uint64_t i = 0; i < n_kv; i++) {
        snprintf(r->what, sizeof r->what, "metadata key #%llu", (unsigned long long)i);
        if (!(kv[i].key = rd_name(r, MAX_KEY, "the key"))) return -1;
        snprintf(r->what, sizeof r->what, "key '%s'", kv[i].key);
        if (read_value(r, &kv[i])) return -1;
    }
    qsort(kv, (size_t)n_kv, sizeof *kv, cmp_kv);
    for (uint64_t i = 1; i < n_kv; i++)
        if (!strcmp(kv[i].key, kv[i - 1].key))
            return err_set(e, "%s: key '%s' appears twice", r->path, kv[i].key);
    return 0;
}

static const struct gguf_kv *find_in(const struct gguf_kv *kv, int n, const char *key)
{
    int lo = 0, hi = n - 1;
    while (lo <= hi) {
        int mid = (lo + hi) / 2, c = strcmp(kv[mid].key, key);
        if (!c) return &kv[mid];
        if (c < 0) lo = mid + 1;
        else hi = mid - 1;
    }
    return NULL;
}

/* general.alignment: a u32 power of two up to MAX_ALIGNMENT (default 32). */
static int read_alignment(const struct gguf_kv *kv, int n, struct gguf_file *f, struct err *e)
{
    const struct gguf_kv *a = find_in(kv, n, "general.alignment");
    f->alignment = 32;
    if (!a) return 0;
    uint32_t v;
    if (a->type != GGUF_U32) return err_set(e, "%s: key 'general.alignment' must be a u32", f->path);
    memcpy(&v, a->data, 4);
    if (v == 0 || (v & (v - 1)) || v > MAX_ALIGNMENT)
        return err_set(e, "%s: key 'general.alignment' is %u (a power of two up to %d)", f->path, v,
                       MAX_ALIGNMENT);
    f->alignment = v;
    return 0;
}

/* ---- tensor infos ---------------------------------------------------------------------------- */

/* Shape and type of one tensor: dims, element count and byte size without overflow. */
static int check_shape(struct rd *r, struct gguf_tensor *t, uint32_t type)
{
    int64_t n = 1;
    for (int d = 0; d < t->n_dims; d++) {
        if (t->ne[d] < 1)
            return err_set(r->e, "%s: %s: dimension %d is %lld", r->path, r->what, d, (long long)t->ne[d]);
        if (__builtin_mul_overflow(n, t->ne[d], &n))
            return err_set(r->e, "%s: %s: the element count overflows", r->path, r->what);
    }
    const char *tn = gguf_ggml_type_name(type);
    if (!tn) return err_set(r->e, "%s: %s: unknown ggml type %u", r->path, r->what, type);
    if (ggml_types[type].dtype == DT_COUNT)
        return err_set(r->e, "%s: %s: type %s is not supported (seekd computes with F32, F16, BF16, "
                             "Q8_0, Q4_0, Q4_1, Q5_0, Q5_1, Q2_K, Q3_K, Q4_K, Q5_K, Q6_K)",
                       r->path, r->what, tn);
    t->dtype = ggml_types[type].dtype;
    int blk = dtype_block(t->dtype);
    if (t->ne[0] % blk)
        return err_set(r->e, "%s: %s: rows of %lld values are not whole %s blocks of %d", r->path,
                       r->what, (long long)t->ne[0], tn, blk);
    uint64_t bytes = dtype_row_bytes(t->dtype, t->ne[0]);
    for (int d = 1; d < t->n_dims; d++)
        if (__builtin_mul_overflow(bytes, (uint64_t)t->ne[d], &bytes))
            return err_set(r->e, "%s: %s: the byte size overflows", r->path, r->what);
    t->nbytes = bytes;
    return 0;
}

/* One tensor info; the offset (relative to the data section) is returned in *off. */
static int read_tensor(struct rd *r, struct gguf_tensor *t, uint64_t *off)
{
    uint32_t n_dims, type;
    if (!(t->name = rd_name(r, MAX_NAME, "the name"))) return -1;
    snprintf(r->what, sizeof r->what, "tensor '%s'", t->name);
    if (rd_u32(r, &n_dims, "the dimension count")) return -1;
    if (n_dims < 1 || n_dims > GGUF_MAX_DIMS)
        return err_set(r->e, "%s: %s: %u dimensions (1 to %d)", r->path, r->what, n_dims, GGUF_MAX_DIMS);
    t->n_dims = (int)n_dims;
    for (int d = 0; d < GGUF_MAX_DIMS; d++) t->ne[d] = 1;
    for (int d = 0; d < t->n_dims; d++) {
        uint64_t v;
        if (rd_u64(r, &v, "a dimension")) return -1;
        t->ne[d] = v > INT64_MAX ? -1 : (int64_t)v;
    }
    if (rd_u32(r, &type, "the type") || rd_u64(r, off, "the offset")) return -1;
    return check_shape(r, t, type);
}

/* Offsets inside the data section, aligned, in bounds. */
static int place_tensor(struct rd *r, struct gguf_tensor *t, uint64_t off, uint64_t data_off,
                        uint32_t align)
{
    uint64_t avail = r->size - data_off;
    if (off % align)
        return err_set(r->e, "%s: tensor '%s': offset %llu is not a multiple of the alignment %u",
                       r->path, t->name, (unsigned long long)off, align);
    if (off > avail || t->nbytes > avail - off)
        return err_set(r->e, "%s: tensor '%s': %llu bytes at offset %llu run past the end of the "
                             "file (%llu bytes of data; truncated file?)",
                       r->path, t->name, (unsigned long long)t->nbytes, (unsigned long long)off,
                       (unsigned long long)avail);
    t->data = r->p + data_off + off;
    return 0;
}

static int cmp_by_data(const void *a, const void *b)
{
    const struct gguf_tensor *x = a, *y = b;
    return x->data < y->data ? -1 : x->data > y->data;
}

/* Tensors of one file (t[0..n), sorted in place by address) do not overlap. */
static int check_overlap(struct gguf_tensor *t, int n, const char *path, struct err *e)
{
    qsort(t, (size_t)n, sizeof *t, cmp_by_data);
    for (int i = 1; i < n; i++)
        if ((const uint8_t *)t[i].data < (const uint8_t *)t[i - 1].data + t[i - 1].nbytes)
            return err_set(e, "%s: tensors '%s' and '%s' overlap", path, t[i - 1].name, t[i].name);
    return 0;
}

/* Appends the tensor infos of file fi to g->tensors and places them in the data section. */
static int read_tensors(struct rd *r, struct gguf_set *g, int fi, uint64_t n_t, struct err *e)
{
    if (n_t > (r->size - r->off) / MIN_TENSOR_BYTES || n_t > (uint64_t)(INT32_MAX / 2 - g->n_tensors))
        return err_set(e, "%s: the header claims %llu tensors, more than the file can hold", r->path,
                       (unsigned long long)n_t);
    int first = g->n_tensors;
    g->tensors = xrealloc(g->tensors, ((size_t)first + (size_t)n_t + 1) * sizeof *g->tensors);
    memset(g->tensors + first, 0, ((size_t)n_t + 1) * sizeof *g->tensors);
    uint64_t *offs = xcalloc((size_t)n_t + 1, sizeof *offs);
    int rc = 0;
    for (uint64_t i = 0; i < n_t && !rc; i++) {
        snprintf(r->what, sizeof r->what, "tensor info #%llu", (unsigned long long)i);
        g->tensors[first + (int)i].file = fi;
        g->n_tensors++;
        rc = read_tensor(r, &g->tensors[first + (int)i], &offs[i]);
    }
    struct gguf_file *f = &g->files[fi];
    uint64_t data_off = (r->off + f->alignment - 1) / f->alignment * f->alignment;
    if (!rc && (data_off < r->off || data_off > r->size))
        rc = err_set(e, "%s: the tensor data would start at byte %llu, past the end of the file "
                        "(truncated file?)", r->path, (unsigned long long)data_off);
    for (uint64_t i = 0; i < n_t && !rc; i++)
        rc = place_tensor(r, &g->tensors[first + (int)i], offs[i], data_off, f->alignment);
    free(offs);
    return rc ? rc : check_overlap(g->tensors + first, (int)n_t, r->path, e);
}

/* ---- files ----------------------------------------------------------------------------------- */

static int map_file(struct gguf_file *f, const char *path, struct err *e)
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return err_set(e, "%s: cannot open: %s", path, strerror(errno));
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        return err_set(e, "%s: not a regular file", path);
    }
    f->size = (size_t)st.st_size;
    if (f->size < 24) {
        close(fd);
        return err_set(e, "%s: %zu bytes is too short for a GGUF header (24 bytes)", path, f->size);
    }
    f->map = hm_map(fd, f->size);
    close(fd);
    if (f->map == MAP_FAILED) {
        f->map = NULL;
        return err_set(e, "%s: mmap failed: %s", path, strerror(errno));
    }
    return 0;
}

/* Magic and version. */
static int read_preamble(struct rd *r, struct gguf_file *f)
{
    if (memcmp(r->p, "GGUF", 4))
        return err_set(r->e, "%s: not a GGUF file (the first bytes are not \"GGUF\")", r->path);
    memcpy(&f->version, r->p + 4, 4);
    r->off = 8;
    if (f->version == 1) return err_set(r->e, "%s: GGUF version 1 is not supported (2 or 3)", r->path);
    if (f->version != 2 && f->version != 3) {
        if ((f->version & 0xffff) == 0)
            return err_set(r->e, "%s: a big-endian GGUF file is not supported", r->path);
        return err_set(r->e, "%s: GGUF version %u is not supported (2 or 3)", r->path, f->version);
    }
    return 0;
}

/* Maps and parses file fi: its metadata into *kv / *n_kv, its tensors appended to g. */
static int parse_file(struct gguf_set *g, int fi, struct gguf_kv **kv, int *n_kv, struct err *e)
{
    struct gguf_file *f = &g->files[fi];
    struct rd r = {.path = f->path, .e = e};
    snprintf(r.what, sizeof r.what, "the header");
    *kv = NULL, *n_kv = 0;
    if (map_file(f, f->path, e)) return -1;
    r.p = f->map, r.size = f->size;
    uint64_t n_t, n_k;
    if (read_preamble(&r, f) || rd_u64(&r, &n_t, "the tensor count") ||
        rd_u64(&r, &n_k, "the metadata count"))
        return -1;
    int rc = read_kvs(&r, n_k, kv, e);
    *n_kv = *kv ? (int)n_k : 0; /* read_kvs allocates only a count the file can hold */
    if (rc) return -1;
    return read_alignment(*kv, *n_kv, f, e) || read_tensors(&r, g, fi, n_t, e) ? -1 : 0;
}

int gguf_is_gguf(const char *path)
{
    char magic[4];
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return 0;
    int ok = read(fd, magic, 4) == 4 && !memcmp(magic, "GGUF", 4);
    close(fd);
    return ok;
}

int gguf_move_to_huge_pages(struct gguf_set *g, const struct hm_report *r, struct err *e)
{
    uint64_t total = 0, done = 0;
    for (int i = 0; i < g->n_files; i++) total += g->files[i].size;
    for (int i = 0; i < g->n_files; i++)
        if (g->files[i].map && hm_move(g->files[i].path, g->files[i].map, g->files[i].size, r, &done, total, e) != 0)
            return -1;
    return 0;
}

void gguf_close(struct gguf_set *g)
{
    for (int i = 0; g->files && i < g->n_files; i++) {
        if (g->files[i].map) munmap(g->files[i].map, g->files[i].size);
        free(g->files[i].path);
    }
    free(g->files);
    kv_free(g->kv, g->n_kv);
    for (int i = 0; g->tensors && i < g->n_tensors; i++) free(g->tensors[i].name);
    free(g->tensors);
    memset(g, 0, sizeof *g);
}

/* ---- split sets ------------------------------------------------------------------------------ */

/* A split.* key of file kv as an integer in [lo, hi], or dflt when absent. */
static int split_key(const struct gguf_kv *kv, int n, const char *key, int64_t lo, int64_t hi,
                     int64_t dflt, int64_t *out, const char *path, struct err *e)
{
    struct gguf_set tmp = {.n_kv = n, .kv = (struct gguf_kv *)kv};
    *out = dflt;
    if (gguf_int(&tmp, key, lo, hi, 0, out, e)) return err_prefix(e, "%s", path);
    return 0;
}

/* "NAME-00002-of-00005.gguf" → prefix length of NAME, shard 2, count 5; -1 if not that form. */
static int split_name(const char *path, size_t *prefix, int *no, int *count)
{
    static const char form[] = "-#####-of-#####.gguf";
    size_t n = strlen(path), fl = sizeof form - 1;
    if (n < fl) return -1;
    const char *s = path + n - fl;
    for (size_t i = 0; i < fl; i++)
        if (form[i] == '#' ? s[i] < '0' || s[i] > '9' : s[i] != form[i]) return -1;
    *no = atoi(s + 1), *count = atoi(s + 10), *prefix = n - fl;
    return *no >= 1 && *no <= *count ? 0 : -1;
}

/* The path of shard no (1-based) of count, next to the shard at path (prefix bytes of name). */
static char *shard_path(const char *path, size_t prefix, int no, int count)
{
    char *p = xmalloc(prefix + 32);
    memcpy(p, path, prefix);
    snprintf(p + prefix, 32, "-%05d-of-%05d.gguf", no, count);
    return p;
}

/* Opens shards 2..count of a split model whose first file is parsed; checks their split.* keys
 * (the shard's number, the count, the total of tensors: the first shard's, total). */
static int open_shards(struct gguf_set *g, int64_t count, int64_t total, struct err *e)
{
    size_t prefix;
    int no, cnt;
    if (split_name(g->files[0].path, &prefix, &no, &cnt) || cnt != count)
        return err_set(e, "%s: split.count is %lld but the name is not NAME-%05d-of-%05lld.gguf",
                       g->files[0].path, (long long)count, 1, (long long)count);
    g->files = xrealloc(g->files, (size_t)count * sizeof *g->files);
    memset(g->files + 1, 0, (size_t)(count - 1) * sizeof *g->files);
    for (int i = 1; i < count; i++) {
        char *p = g->files[i].path = shard_path(g->files[0].path, prefix, i + 1, (int)count);
        g->n_files = i + 1;
        struct gguf_kv *kv;
        int n_kv;
        int64_t sno, scount, stotal;
        int rc = parse_file(g, i, &kv, &n_kv, e);
        if (!rc) rc = split_key(kv, n_kv, "split.no", 0, MAX_SHARDS, -1, &sno, p, e);
        if (!rc) rc = split_key(kv, n_kv, "split.count", 0, MAX_SHARDS, -1, &scount, p, e);
        if (!rc) rc = split_key(kv, n_kv, "split.tensors.count", 0, INT32_MAX, total, &stotal, p, e);
        if (!rc && (sno != i || scount != count))
            rc = err_set(e, "%s: split.no %lld / split.count %lld, expected %d / %lld", p,
                         (long long)sno, (long long)scount, i, (long long)count);
        if (!rc && stotal != total)
            rc = err_set(e, "%s: split.tensors.count is %lld, the first shard says %lld", p,
                         (long long)stotal, (long long)total);
        kv_free(kv, n_kv);
        if (rc) return -1;
    }
    return 0;
}

static int cmp_tensor_name(const void *a, const void *b)
{
    return strcmp(((const struct gguf_tensor *)a)->name, ((const struct gguf_tensor *)b)->name);
}

/* Sorts the tensors by name, refuses repeats, totals the bytes. */
static int finish(struct gguf_set *g, struct err *e)
{
    qsort(g->tensors, (size_t)g->n_tensors, sizeof *g->tensors, cmp_tensor_name);
    for (int i = 0; i < g->n_tensors; i++) {
        if (i && !strcmp(g->tensors[i].name, g->tensors[i - 1].name))
            return err_set(e, "%s: tensor '%s' appears twice", g->files[g->tensors[i].file].path,
                           g->tensors[i].name);
        g->n_bytes += g->tensors[i].nbytes;
    }
    return 0;
}

int gguf_open(struct gguf_set *g, const char *path, struct err *e)
{
    memset(g, 0, sizeof *g);
    g->files = xcalloc(1, sizeof *g->files);
    g->n_files = 1;
    size_t prefix;
    int sno, scount;
    /* any shard of a split model names the set: start from the first */
    if (!split_name(path, &prefix, &sno, &scount)) g->files[0].path = shard_path(path, prefix, 1, scount);
    else g->files[0].path = strdup(path);
    path = g->files[0].path;
    int rc = parse_file(g, 0, &g->kv, &g->n_kv, e);
    int64_t count = 1, no = 0, total = -1;
    if (!rc) rc = split_key(g->kv, g->n_kv, "split.count", 0, MAX_SHARDS, 1, &count, path, e);
    if (!rc) rc = split_key(g->kv, g->n_kv, "split.no", 0, MAX_SHARDS, 0, &no, path, e);
    if (!rc) rc = split_key(g->kv, g->n_kv, "split.tensors.count", 0, INT32_MAX, -1, &total, path, e);
    if (!rc && no != 0)
        rc = err_set(e, "%s: split.no is %lld in the first shard", path, (long long)no);
    if (!rc && count > 1) rc = open_shards(g, count, total, e);
    if (!rc && total >= 0 && total != g->n_tensors)
        rc = err_set(e, "%s: split.tensors.count is %lld but the shards hold %d tensors", path,
                     (long long)total, g->n_tensors);
    if (!rc) rc = finish(g, e);
    if (rc) gguf_close(g);
    return rc;
}

/* ---- typed reads ----------------------------------------------------------------------------- */

const struct gguf_kv *gguf_find(const struct gguf_set *g, const char *key)
{
    return find_in(g->kv, g->n_kv, key);
}

struct gguf_tensor *gguf_tensor(const struct gguf_set *g, const char *name)
{
    int lo = 0, hi = g->n_tensors - 1;
    while (lo <= hi) {
        int mid = (lo + hi) / 2, c = strcmp(g->tensors[mid].name, name);
        if (!c) return &g->tensors[mid];
        if (c < 0) lo = mid + 1;
        else hi = mid - 1;
    }
    return NULL;
}

static int is_int_type(enum gguf_type t)
{
    return t <= GGUF_I32 || t == GGUF_U64 || t == GGUF_I64;
}

/* Element i of data, an array of integer or float type t, widened. */
static int64_t int_at(enum gguf_type t, const uint8_t *p, uint64_t i)
{
    union { uint8_t u8; int8_t i8; uint16_t u16; int16_t i16; uint32_t u32; int32_t i32; uint64_t u64; int64_t i64; } v;
    memcpy(&v, p + i * kv_type_size[t], kv_type_size[t]);
    switch (t) {
    case GGUF_U8: case GGUF_BOOL: return v.u8;
    case GGUF_I8: return v.i8;
    case GGUF_U16: return v.u16;
    case GGUF_I16: return v.i16;
    case GGUF_U32: return v.u32;
    case GGUF_I32: return v.i32;
    case GGUF_U64: return v.u64 > INT64_MAX ? INT64_MAX : (int64_t)v.u64;
    default: return v.i64;
    }
}

static double num_at(enum gguf_type t, const uint8_t *p, uint64_t i)
{
    if (t == GGUF_F32) {
        float f;
        memcpy(&f, p + i * 4, 4);
        return f;
    }
    if (t == GGUF_F64) {
        double d;
        memcpy(&d, p + i * 8, 8);
        return d;
    }
    return (double)int_at(t, p, i);
}

int64_t gguf_arr_int(const struct gguf_kv *kv, uint64_t i)
{
    return int_at(kv->arr_type, kv->data, i);
}

double gguf_arr_num(const struct gguf_kv *kv, uint64_t i)
{
    return num_at(kv->arr_type, kv->data, i);
}

/* The key, or NULL: "missing" when required. */
static const struct gguf_kv *lookup(const struct gguf_set *g, const char *key, int required,
                                    struct err *e)
{
    const struct gguf_kv *kv = gguf_find(g, key);
    if (!kv && required) err_set(e, "missing key '%s'", key);
    return kv;
}

int gguf_int(const struct gguf_set *g, const char *key, int64_t lo, int64_t hi, int required,
             int64_t *out, struct err *e)
{
    const struct gguf_kv *kv = lookup(g, key, required, e);
    if (!kv) return required ? -1 : 0;
    if (!is_int_type(kv->type)) return err_set(e, "key '%s' is a %s, not an integer", key, kv_type_names[kv->type]);
    int64_t v = int_at(kv->type, kv->data, 0);
    if (v < lo || v > hi)
        return err_set(e, "key '%s' is %lld, outside [%lld, %lld]", key, (long long)v, (long long)lo, (long long)hi);
    *out = v;
    return 0;
}

int gguf_num(const struct gguf_set *g, const char *key, double lo, double hi, int required,
             double *out, struct err *e)
{
    const struct gguf_kv *kv = lookup(g, key, required, e);
    if (!kv) return required ? -1 : 0;
    if (!is_int_type(kv->type) && kv->type != GGUF_F32 && kv->type != GGUF_F64)
        return err_set(e, "key '%s' is a %s, not a number", key, kv_type_names[kv->type]);
    double v = num_at(kv->type, kv->data, 0);
    if (!(v >= lo && v <= hi)) return err_set(e, "key '%s' is %g, outside [%g, %g]", key, v, lo, hi);
    *out = v;
    return 0;
}

int gguf_bool(const struct gguf_set *g, const char *key, int *out, struct err *e)
{
    const struct gguf_kv *kv = gguf_find(g, key);
    if (!kv) return 0;
    if (kv->type != GGUF_BOOL) return err_set(e, "key '%s' is a %s, not a bool", key, kv_type_names[kv->type]);
    *out = kv->data[0];
    return 0;
}

int gguf_str(const struct gguf_set *g, const char *key, int required, char **out, struct err *e)
{
    const struct gguf_kv *kv = lookup(g, key, required, e);
    *out = NULL;
    if (!kv) return required ? -1 : 0;
    if (kv->type != GGUF_STR) return err_set(e, "key '%s' is a %s, not a string", key, kv_type_names[kv->type]);
    *out = xmalloc((size_t)kv->n + 1);
    memcpy(*out, kv->data, (size_t)kv->n);
    (*out)[kv->n] = 0;
    return 0;
}

int gguf_array(const struct gguf_set *g, const char *key, enum gguf_type t, uint64_t n,
               int required, const struct gguf_kv **out, struct err *e)
{
    const struct gguf_kv *kv = *out = lookup(g, key, required, e);
    if (!kv) return required ? -1 : 0;
    int ok = kv->type == GGUF_ARR &&
             (kv->arr_type == t || ((t == GGUF_I32 || t == GGUF_U32) && is_int_type(kv->arr_type)) ||
              (t == GGUF_F32 && kv->arr_type == GGUF_F64));
    *out = NULL;
    if (!ok) return err_set(e, "key '%s' is not an array of %s", key, kv_type_names[t]);
    if (n && kv->n != n)
        return err_set(e, "key '%s' has %llu elements, expected %llu", key,
                       (unsigned long long)kv->n, (unsigned long long)n);
    *out = kv;
    return 0;
}
