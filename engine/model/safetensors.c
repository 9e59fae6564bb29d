/* safetensors: mmap + header validation for .safetensors files and sharded checkpoints.
 *
 * Format: 8-byte little-endian header length N, N bytes of JSON
 * {"name": {"dtype": "BF16", "shape": [..], "data_offsets": [begin, end]}, "__metadata__": {..}},
 * then the data; offsets are relative to the first byte after the header. */
#include "engine/model/safetensors.h"

#include "engine/file.h"
#include "engine/model/hugemap.h"

#include <errno.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

/* The format's own bound (the reference implementation refuses larger headers). */
#define ST_MAX_HEADER 100000000u

/* Maps a whole regular file read-only (a FIFO or device is refused, never waited on). */
static int map_file(struct st_file *f, const char *path, struct err *e)
{
    int fd = file_open_regular(path, e);
    if (fd < 0) return -1;
    struct stat st;
    if (fstat(fd, &st) != 0) {
        close(fd);
        return err_set(e, "%s: cannot stat: %s", path, strerror(errno));
    }
    f->size = (size_t)st.st_size;
    f->map = NULL;
    if (f->size > 0) {
        f->map = hm_map(fd, f->size);
        if (f->map == MAP_FAILED) {
            f->map = NULL;
            close(fd);
            return err_set(e, "%s: mmap failed: %s", path, strerror(errno));
        }
    }
    close(fd);
    f->path = strdup(path);
    return 0;
}

static int parse_shape(struct st_tensor *t, json_t *shape, struct err *e)
{
    if (!json_is_array(shape) || json_array_size(shape) > ST_MAX_DIMS)
        return err_set(e, "shape must be an array of at most %d integers", ST_MAX_DIMS);
    t->n_dims = (int)json_array_size(shape);
    t->n_elems = 1;
    for (int i = 0; i < t->n_dims; i++) {
        json_t *d = json_array_get(shape, (size_t)i);
        if (!json_is_integer(d) || json_integer_value(d) < 0)
            return err_set(e, "shape[%d] is not a non-negative integer", i);
        t->shape[i] = json_integer_value(d);
        if (t->shape[i] > 0 && t->n_elems > INT64_MAX / 16 / t->shape[i])
            return err_set(e, "shape is absurdly large");
        t->n_elems *= t->shape[i];
    }
    return 0;
}

/* Validates one header entry and points the tensor at its data. */
static int parse_entry(struct st_tensor *t, json_t *v, const uint8_t *data, size_t data_len,
                       struct err *e)
{
    if (!json_is_object(v)) return err_set(e, "entry is not an object");
    const char *dt = json_string_value(json_object_get(v, "dtype"));
    if (!dt) return err_set(e, "missing dtype");
    if (dtype_parse(dt, &t->dtype) != 0) return err_set(e, "unsupported dtype \"%s\"", dt);
    if (parse_shape(t, json_object_get(v, "shape"), e) != 0) return -1;
    json_t *off = json_object_get(v, "data_offsets");
    json_t *b = json_array_get(off, 0), *en = json_array_get(off, 1);
    if (!json_is_array(off) || json_array_size(off) != 2 || !json_is_integer(b) ||
        !json_is_integer(en))
        return err_set(e, "data_offsets must be [begin, end]");
    json_int_t begin = json_integer_value(b), end = json_integer_value(en);
    if (begin < 0 || end < begin) return err_set(e, "data_offsets [%lld, %lld] are reversed",
                                                 (long long)begin, (long long)end);
    if ((uint64_t)end > data_len)
        return err_set(e, "data_offsets [%lld, %lld] run past the end of the file "
                          "(%zu bytes of data; truncated file?)",
                       (long long)begin, (long long)end, data_len);
    t->nbytes = (size_t)(end - begin);
    if ((uint64_t)t->n_elems * dtype_size(t->dtype) != t->nbytes)
        return err_set(e, "%lld bytes of data for %lld elements of %s",
                       (long long)t->nbytes, (long long)t->n_elems, dt);
    t->data = data + begin; /* may be unaligned: readers load elements with memcpy */
    return 0;
}

static int cmp_by_data(const void *a, const void *b)
{
    const struct st_tensor *x = a, *y = b;
    return x->data < y->data ? -1 : x->data > y->data;
}

/* Rejects tensors whose byte ranges overlap (sorts the file's slice by offset). */
static int check_overlap(struct st_tensor *t, int n, const char *path, struct err *e)
{
    qsort(t, (size_t)n, sizeof *t, cmp_by_data);
    for (int i = 1; i < n; i++) {
        const uint8_t *prev_end = (const uint8_t *)t[i - 1].data + t[i - 1].nbytes;
        if ((const uint8_t *)t[i].data < prev_end)
            return err_set(e, "%s: tensors \"%s\" and \"%s\" overlap", path, t[i - 1].name,
                           t[i].name);
    }
    return 0;
}

/* Reads the header length and JSON; returns the parsed object or NULL. */
static json_t *read_header(const struct st_file *f, size_t *hlen, struct err *e)
{
    uint64_t n = 0;
    if (f->size < 8) return err_set(e, "%s: file too short for a header", f->path), NULL;
    for (int i = 7; i >= 0; i--) n = n << 8 | ((const uint8_t *)f->map)[i];
    if (n > ST_MAX_HEADER)
        return err_set(e, "%s: header length %llu is over the format's limit of %u bytes",
                       f->path, (unsigned long long)n, ST_MAX_HEADER), NULL;
    if (n > f->size - 8)
        return err_set(e, "%s: header length %llu runs past the end of the file (%zu bytes)",
                       f->path, (unsigned long long)n, f->size), NULL;
    json_error_t je;
    json_t *root = json_loadb((const char *)f->map + 8, (size_t)n, JSON_REJECT_DUPLICATES, &je);
    if (!root) return err_set(e, "%s: header is not valid JSON: %s", f->path, je.text), NULL;
    if (!json_is_object(root)) {
        json_decref(root);
        return err_set(e, "%s: header is not a JSON object", f->path), NULL;
    }
    *hlen = (size_t)n;
    return root;
}

int st_add_file(struct st_set *s, const char *path, struct err *e)
{
    struct st_file f = {0};
    if (map_file(&f, path, e) != 0) return -1;
    s->files = xrealloc(s->files, (size_t)(s->n_files + 1) * sizeof *s->files);
    s->files[s->n_files++] = f;
    size_t hlen;
    json_t *root = read_header(&f, &hlen, e);
    if (!root) return -1;
    const uint8_t *data = (const uint8_t *)f.map + 8 + hlen;
    size_t data_len = f.size - 8 - hlen;
    size_t n_new = json_object_size(root);
    s->tensors = xrealloc(s->tensors, (s->n_tensors + n_new) * sizeof *s->tensors);
    int first = s->n_tensors, rc = 0;
    const char *key;
    json_t *v;
    json_object_foreach(root, key, v) {
        if (strcmp(key, "__metadata__") == 0) continue;
        struct st_tensor *t = &s->tensors[s->n_tensors];
        memset(t, 0, sizeof *t);
        t->file = s->n_files - 1;
        if (parse_entry(t, v, data, data_len, e) != 0) {
            rc = err_prefix(e, "%s: tensor \"%s\"", path, key);
            break;
        }
        t->name = strdup(key);
        s->n_bytes += t->nbytes;
        s->n_tensors++;
    }
    json_decref(root);
    if (rc == 0) rc = check_overlap(s->tensors + first, s->n_tensors - first, path, e);
    return rc;
}

static int cmp_by_name(const void *a, const void *b)
{
    return strcmp(((const struct st_tensor *)a)->name, ((const struct st_tensor *)b)->name);
}

int st_finish(struct st_set *s, struct err *e)
{
    qsort(s->tensors, (size_t)s->n_tensors, sizeof *s->tensors, cmp_by_name);
    for (int i = 1; i < s->n_tensors; i++)
        if (strcmp(s->tensors[i - 1].name, s->tensors[i].name) == 0)
            return err_set(e, "tensor \"%s\" appears in both %s and %s", s->tensors[i].name,
                           s->files[s->tensors[i - 1].file].path,
                           s->files[s->tensors[i].file].path);
    return 0;
}

struct st_tensor *st_find(const struct st_set *s, const char *name)
{
    struct st_tensor key = {.name = (char *)name};
    return bsearch(&key, s->tensors, (size_t)s->n_tensors, sizeof key, cmp_by_name);
}

/* A shard name from the index must be a plain file name inside the checkpoint directory. */
static int shard_name_ok(const char *name)
{
    return name[0] && !strchr(name, '/') && strcmp(name, ".") && strcmp(name, "..");
}

/* Opens every shard the index names, then checks the index and the files agree. */
static int open_index(struct st_set *s, const char *dir, const char *index, struct err *e)
{
    json_error_t je;
    size_t len;
    char *text = file_read(index, ST_MAX_HEADER, &len, e);
    if (!text) return -1;
    json_t *root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &je);
    free(text);
    if (!root) return err_set(e, "%s: not valid JSON: %s (line %d)", index, je.text, je.line);
    json_t *map = json_object_get(root, "weight_map");
    int rc = 0;
    if (!json_is_object(map)) rc = err_set(e, "%s: no \"weight_map\" object", index);
    json_t *seen = json_object();
    const char *name;
    json_t *v;
    json_object_foreach(map, name, v) {
        if (rc) break;
        const char *file = json_string_value(v);
        if (!file || !shard_name_ok(file)) {
            rc = err_set(e, "%s: tensor \"%s\" maps to a bad file name", index, name);
            break;
        }
        if (json_object_get(seen, file)) continue;
        json_object_set_new(seen, file, json_true());
        char path[4096];
        snprintf(path, sizeof path, "%s/%s", dir, file);
        rc = st_add_file(s, path, e);
    }
    json_decref(seen);
    if (rc == 0) rc = st_finish(s, e);
    json_object_foreach(map, name, v) {
        if (rc) break;
        const struct st_tensor *t = st_find(s, name);
        const char *file = json_string_value(v);
        const char *base = t ? strrchr(s->files[t->file].path, '/') + 1 : NULL;
        if (!t || strcmp(base, file) != 0)
            rc = err_set(e, "%s: tensor \"%s\" is listed for %s but is not in it", index, name,
                         file);
    }
    for (int i = 0; rc == 0 && i < s->n_tensors; i++)
        if (!json_object_get(map, s->tensors[i].name))
            rc = err_set(e, "%s: tensor \"%s\" is not in the index", s->files[s->tensors[i].file].path,
                         s->tensors[i].name);
    json_decref(root);
    return rc;
}

int st_open_dir(struct st_set *s, const char *dir, struct err *e)
{
    char path[4096];
    memset(s, 0, sizeof *s);
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    if (access(path, F_OK) == 0) {
        if (st_add_file(s, path, e) != 0) return -1;
        return st_finish(s, e);
    }
    snprintf(path, sizeof path, "%s/model.safetensors.index.json", dir);
    if (access(path, F_OK) == 0) return open_index(s, dir, path, e);
    return err_set(e, "%s: no model.safetensors or model.safetensors.index.json", dir);
}

int st_move_to_huge_pages(struct st_set *s, const struct hm_report *r, struct err *e)
{
    uint64_t total = 0, done = 0;
    for (int i = 0; i < s->n_files; i++) total += s->files[i].size;
    for (int i = 0; i < s->n_files; i++)
        if (s->files[i].map && hm_move(s->files[i].path, s->files[i].map, s->files[i].size, r, &done, total, e) != 0)
            return -1;
    return 0;
}

void st_close(struct st_set *s)
{
    for (int i = 0; i < s->n_tensors; i++) free(s->tensors[i].name);
    for (int i = 0; i < s->n_files; i++) {
        if (s->files[i].map) munmap(s->files[i].map, s->files[i].size);
        free(s->files[i].path);
    }
    free(s->tensors);
    free(s->files);
    memset(s, 0, sizeof *s);
}
