/* dev_backend: the CUDA backend through the seam on a real checkpoint, against the CPU backend —
 * part of tests/cuda/dev_kernels. Two steps: prefills (one wanting no logits), then a step that
 * mixes a decode token, a prefill chunk behind cached tokens (every row's logits) and a new
 * sequence; every row within 1e-4 of the CPU's max |logit| with the same argmax. Then a
 * copy-on-write fork: the copied tail block decodes bit for bit like the original. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/backend.h"

enum { BS = 4, N_BLOCKS = 16 };

static int run(const struct backend_ops *ops, struct backend *b, const struct batch *bt,
               float *logits)
{
    struct err e = {0};
    if (ops->forward(b, bt, logits, &e) == 0) return 0;
    printf("backend    %s forward failed: %s\n", ops->name, e.msg);
    return -1;
}

/* The two steps on one backend; logits of the second step into out (rows: 1 + 4 + 1). */
static int two_steps(const struct backend_ops *ops, struct backend *b, float *out, float *tmp)
{
    static const int32_t ta[3] = {5, 1, 7}, tb[2] = {3, 9}, tc[1] = {11};
    static const int32_t t1[13] = {3, 9, 27, 17, 51, 26, 14, 42, 8, 33, 2, 61, 40};
    static const int32_t t2[6] = {19, 7, 12, 29, 4, 55};
    struct batch_seq s1[2] = {{0, 10, 0, ta, BATCH_LOGITS_LAST}, {10, 3, 0, tb, BATCH_LOGITS_NONE}};
    struct batch b1 = {13, t1, 2, s1};
    struct batch_seq s2[3] = {{0, 1, 10, ta, BATCH_LOGITS_LAST}, {1, 4, 3, tb, BATCH_LOGITS_ALL},
                              {5, 1, 0, tc, BATCH_LOGITS_LAST}};
    struct batch b2 = {6, t2, 3, s2};
    return run(ops, b, &b1, tmp) || run(ops, b, &b2, out) ? -1 : 0;
}

static int argmax(const float *v, int n)
{
    int best = 0;
    for (int i = 1; i < n; i++)
        if (v[i] > v[best]) best = i;
    return best;
}

/* Decodes position 11 of the first sequence through its own tail block and through a copy. */
static int fork_check(const struct backend_ops *ops, struct backend *b, int V, float *out)
{
    static const int32_t parent[3] = {5, 1, 7}, child[3] = {5, 1, 12}, tok[2] = {44, 44};
    struct kvb_copy cp = {.src = 7, .dst = 12};
    ops->copy_blocks(b, &cp, 1);
    struct batch_seq s[2] = {{0, 1, 11, parent, BATCH_LOGITS_LAST}, {1, 1, 11, child, BATCH_LOGITS_LAST}};
    struct batch bt = {2, tok, 2, s};
    if (run(ops, b, &bt, out) != 0) return -1;
    return memcmp(out, out + V, (size_t)V * sizeof *out) == 0 ? 0 : 1;
}

static struct backend *make(const struct backend_ops *ops, const struct model *m)
{
    struct err e = {0};
    struct backend_opts o = {.numerics = NUMERICS_REF, .max_tokens = 16, .max_logits = 16,
                             .block_size = BS, .kv_dtype = DT_F32, .kv_blocks = N_BLOCKS, .threads = 0};
    struct backend *b = ops->create(m, &o, &e);
    if (!b) printf("backend    %s create failed: %s\n", ops->name, e.msg);
    return b;
}

int dev_backend(const char *model_dir)
{
    struct err e = {0};
    struct model *m = model_load(model_dir, &e);
    if (!m) return printf("backend    cannot load %s: %s\n", model_dir, e.msg), 1;
    int V = m->cfg.vocab_size, fails = 1;
    float *cpu = malloc((size_t)16 * V * 4), *gpu = malloc((size_t)16 * V * 4), *tmp = malloc((size_t)16 * V * 4);
    struct backend *bc = make(backend_cpu(), m), *bg = make(backend_cuda(), m);
    if (bc && bg && two_steps(backend_cpu(), bc, cpu, tmp) == 0 && two_steps(backend_cuda(), bg, gpu, tmp) == 0) {
        double mx = 0, err = 0;
        int same = 1;
        for (size_t i = 0; i < (size_t)6 * V; i++) mx = fmax(mx, fabs(cpu[i])), err = fmax(err, fabs(gpu[i] - cpu[i]));
        for (int r = 0; r < 6; r++) same &= argmax(cpu + (size_t)r * V, V) == argmax(gpu + (size_t)r * V, V);
        if (isnan(err)) err = INFINITY;
        printf("%-10s %-28s %10.3g %10.3g %s\n", "backend", "mixed step vs cpu", err / mx, 1e-4,
               err <= 1e-4 * mx && same ? "PASS" : "FAIL");
        int fk = fork_check(backend_cuda(), bg, V, gpu);
        printf("%-10s %-28s %10d %10d %s\n", "backend", "fork decodes like parent", fk, 0, fk ? "FAIL" : "PASS");
        fails = (err <= 1e-4 * mx && same ? 0 : 1) + (fk ? 1 : 0);
    }
    if (bc) backend_cpu()->destroy(bc);
    if (bg) backend_cuda()->destroy(bg);
    free(cpu), free(gpu), free(tmp);
    model_destroy(m);
    return fails;
}
