/* backend: choosing a backend, and the sizing rules every backend shares. */
#include "engine/backend.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifndef SEEKD_CUDA
const struct backend_ops *backend_cuda(void)
{
    return NULL;
}
#endif

const struct backend_ops *backend_select(enum backend_kind kind, char *note, size_t n_note,
                                         struct err *e)
{
    char why[256] = "";
    const struct backend_ops *cuda = backend_cuda();
    if (note && n_note) note[0] = 0;
    if (kind == BACKEND_CPU) return backend_cpu();
    if (!cuda) snprintf(why, sizeof why, "seekd was built without CUDA (make CUDA=1)");
    else if (cuda->usable(why, sizeof why)) return cuda;
    if (kind == BACKEND_CUDA) return err_set(e, "backend cuda: %s", why), NULL;
    if (note && n_note) snprintf(note, n_note, "running on the CPU: %s", why);
    return backend_cpu();
}

void backend_rowcands_init(struct backend_rowcands *r, int cap, int V)
{
    *r = (struct backend_rowcands){.cap = cap, .V = V};
    r->rows = xmalloc((size_t)cap * (size_t)V * sizeof *r->rows);
    r->ids = xmalloc((size_t)cap * SMP_CAND_K * sizeof *r->ids);
    r->vals = xmalloc((size_t)cap * SMP_CAND_K * sizeof *r->vals);
}

void backend_rowcands_fill(struct backend_rowcands *r, int n, struct smp_cands *cands)
{
    for (int i = 0; i < n; i++)
        smp_prefilter(r->rows + (size_t)i * r->V, r->V, SMP_CAND_K, r->ids + (size_t)i * SMP_CAND_K,
                      r->vals + (size_t)i * SMP_CAND_K, &cands[i]);
}

void backend_rowcands_free(struct backend_rowcands *r)
{
    free(r->rows), free(r->ids), free(r->vals);
    *r = (struct backend_rowcands){0};
}

/* One ordinal at *s, advancing *s past it. */
static int device_number(const char **s, const char *all, struct err *e)
{
    char *end;
    errno = 0;
    long v = **s >= '0' && **s <= '9' ? strtol(*s, &end, 10) : -1;
    if (v < 0 || errno || v > 1023)
        return err_set(e, "'%s': expected device numbers 0..1023 like 0,1 or 0-7", all);
    *s = end;
    return (int)v;
}

const struct backend_ops *backend_for_model(const struct backend_ops *chosen, const struct model *m,
                                            char *note, size_t n_note)
{
    char why[256] = "";
    note[0] = 0;
    if (!chosen->supports || chosen->supports(m, why, sizeof why)) return chosen;
    snprintf(note, n_note, "running on the CPU: %s", why);
    return backend_cpu();
}

int backend_parse_devices(const char *s, int *out, int max, struct err *e)
{
    const char *p = s;
    int n = 0;
    while (*p) {
        int lo = device_number(&p, s, e), hi = lo;
        if (lo < 0) return -1;
        if (*p == '-') {
            p++;
            if ((hi = device_number(&p, s, e)) < 0) return -1;
            if (hi < lo) return err_set(e, "'%s': range %d-%d runs backwards", s, lo, hi);
        }
        if (*p && *p != ',') return err_set(e, "'%s': expected device numbers like 0,1 or 0-7", s);
        if (*p) p++;
        for (int d = lo; d <= hi; d++) {
            for (int i = 0; i < n; i++)
                if (out[i] == d) return err_set(e, "'%s': device %d is listed twice", s, d);
            if (n == max) return err_set(e, "'%s': more than %d devices", s, max);
            out[n++] = d;
        }
    }
    return n;
}

uint64_t backend_kv_budget(double kv_memory, uint64_t avail_bytes)
{
    if (kv_memory > 1.0) return (uint64_t)kv_memory;
    return (uint64_t)((double)avail_bytes * kv_memory);
}

enum numerics backend_numerics(const struct backend_ops *ops, const struct model *m,
                               enum numerics want)
{
    if (want != NUMERICS_AUTO) return want;
    if (ops != backend_cpu()) return NUMERICS_FAST;
    /* bf16 only when asked: its kernel set is chosen by a timing probe, which may choose
       differently in two processes (two ranks, two servers) on the same machine */
    return model_is_quantised(m) ? NUMERICS_FAST : NUMERICS_REF;
}

int backend_fp8_recipe(const struct model *m, enum numerics n)
{
    return n == NUMERICS_FAST && !model_is_quantised(m);
}

void backend_limits(const struct model *m, const struct backend_opts *o, int32_t n_blocks,
                    struct batch_limits *lim)
{
    *lim = (struct batch_limits){.vocab_size = m->cfg.vocab_size, .n_blocks = n_blocks,
                                 .block_size = o->block_size, .max_tokens = o->max_tokens,
                                 .max_logits = o->max_logits};
}
