/* stage_dump: .npy writing and reading for the stage dumps. */
#include "engine/stage_dump.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

static const struct {
    const char *descr;
    size_t size;
} types[] = {[SD_F32] = {"<f4", 4}, [SD_BF16] = {"<u2", 2}, [SD_U8] = {"|u1", 1}, [SD_I32] = {"<i4", 4}};

/* mkdir -p */
static int make_dirs(const char *dir, struct err *e)
{
    char p[4096];
    snprintf(p, sizeof p, "%s", dir);
    for (char *s = p + 1; *s; s++) {
        if (*s != '/') continue;
        *s = 0;
        if (mkdir(p, 0755) != 0 && errno != EEXIST) return err_set(e, "cannot create %s: %s", p, strerror(errno));
        *s = '/';
    }
    if (mkdir(p, 0755) != 0 && errno != EEXIST) return err_set(e, "cannot create %s: %s", p, strerror(errno));
    return 0;
}

int sd_open(struct sd *d, const char *dir, struct err *e)
{
    *d = (struct sd){.step = -1};
    if (strlen(dir) >= sizeof d->dir - 16) return err_set(e, "dump directory name too long: %s", dir);
    snprintf(d->dir, sizeof d->dir, "%s", dir);
    return make_dirs(dir, e);
}

static int write_npy(const char *path, enum sd_type t, const void *data, int n_dims,
                     const int64_t *shape, struct err *e)
{
    char dims[160] = "", hdr[256];
    size_t count = 1;
    for (int i = 0; i < n_dims; i++) {
        snprintf(dims + strlen(dims), sizeof dims - strlen(dims), "%lld,%s", (long long)shape[i],
                 i + 1 < n_dims ? " " : "");
        count *= (size_t)shape[i];
    }
    int n = snprintf(hdr, sizeof hdr, "{'descr': '%s', 'fortran_order': False, 'shape': (%s), }",
                     types[t].descr, dims);
    int hlen = (10 + n + 1 + 63) / 64 * 64 - 10;
    FILE *f = fopen(path, "wb");
    if (!f) return err_set(e, "cannot write %s: %s", path, strerror(errno));
    unsigned char len[2] = {(unsigned char)(hlen & 0xff), (unsigned char)(hlen >> 8)};
    fwrite("\x93NUMPY\x01\x00", 1, 8, f);
    fwrite(len, 1, 2, f);
    fprintf(f, "%s%*s\n", hdr, hlen - n - 1, "");
    int ok = count == 0 || fwrite(data, types[t].size, count, f) == count;
    if (fclose(f) != 0 || !ok) return err_set(e, "cannot write %s: %s", path, strerror(errno));
    return 0;
}

static int put_i32(struct sd *d, const char *name, const struct sp_plan *sp, size_t off, int64_t n,
                   struct err *e)
{
    return sd_put(d, -1, name, SD_I32, sp_i32(sp, off), 1, &n, e);
}

int sd_step(struct sd *d, const struct sp_plan *sp, int block_size, struct err *e)
{
    int64_t one = 1;
    d->step++;
    snprintf(d->path, sizeof d->path, "%s/step%04d", d->dir, d->step);
    if (make_dirs(d->path, e) != 0) return -1;
    int64_t T = sp->n_tokens;
    if (put_i32(d, "tokens", sp, sp->at.tokens, T, e) || put_i32(d, "pos", sp, sp->at.pos, T, e) ||
        put_i32(d, "slot", sp, sp->at.slot, T, e) ||
        put_i32(d, "table_off", sp, sp->at.table_off, T, e) ||
        put_i32(d, "tables", sp, sp->at.tables, sp->n_table, e))
        return -1;
    if (sd_put(d, -1, "block_size", SD_I32, &block_size, 1, &one, e) != 0) return -1;
    return put_i32(d, "logit_rows", sp, sp->at.logit_rows, sp->n_logits, e);
}

void sd_stage_path(const char *dir, int step, int layer, const char *name, char *out, size_t n)
{
    if (layer >= 0) snprintf(out, n, "%s/step%04d/L%02d.%s.npy", dir, step, layer, name);
    else snprintf(out, n, "%s/step%04d/%s.npy", dir, step, name);
}

int sd_put(struct sd *d, int layer, const char *name, enum sd_type t, const void *data,
           int n_dims, const int64_t *shape, struct err *e)
{
    char path[4200];
    if (layer >= 0) snprintf(path, sizeof path, "%s/L%02d.%s.npy", d->path, layer, name);
    else snprintf(path, sizeof path, "%s/%s.npy", d->path, name);
    return write_npy(path, t, data, n_dims, shape, e);
}

/* ---- reading -------------------------------------------------------------------------------- */

static int parse_header(const char *h, struct sd_array *a)
{
    const char *dp = strstr(h, "'descr': '"), *sp = strstr(h, "'shape': (");
    if (!dp || !sp || strstr(h, "'fortran_order': True")) return -1;
    dp += 10;
    int found = 0;
    for (int t = 0; t < 4; t++)
        if (strncmp(dp, types[t].descr, 3) == 0) a->type = (enum sd_type)t, found = 1;
    if (!found) return -1;
    sp += 10;
    a->n_dims = 0, a->n = 1;
    while (*sp && *sp != ')') {
        char *end;
        long long v = strtoll(sp, &end, 10);
        if (end == sp || v < 0 || a->n_dims == SD_MAX_DIMS) return -1;
        a->shape[a->n_dims++] = v, a->n *= v;
        sp = end;
        while (*sp == ',' || *sp == ' ') sp++;
    }
    return *sp == ')' ? 0 : -1;
}

int sd_load(const char *path, struct sd_array *a, struct err *e)
{
    *a = (struct sd_array){0};
    FILE *f = fopen(path, "rb");
    if (!f) return err_set(e, "cannot read %s: %s", path, strerror(errno));
    unsigned char pre[10];
    char hdr[1024];
    int rc = -1;
    if (fread(pre, 1, 10, f) == 10 && memcmp(pre, "\x93NUMPY\x01\x00", 8) == 0) {
        size_t hlen = (size_t)pre[8] | (size_t)pre[9] << 8;
        if (hlen < sizeof hdr && fread(hdr, 1, hlen, f) == hlen) {
            hdr[hlen] = 0;
            rc = parse_header(hdr, a);
        }
    }
    if (rc == 0) {
        size_t bytes = (size_t)a->n * types[a->type].size;
        a->data = xmalloc(bytes ? bytes : 1);
        if (bytes && fread(a->data, 1, bytes, f) != bytes) rc = -1;
    }
    fclose(f);
    if (rc != 0) {
        sd_array_free(a);
        return err_set(e, "%s: not a float32/int32/uint16/uint8 .npy array", path);
    }
    return 0;
}

void sd_array_free(struct sd_array *a)
{
    free(a->data);
    *a = (struct sd_array){0};
}
