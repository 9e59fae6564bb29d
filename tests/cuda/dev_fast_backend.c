/* dev_fast_backend: the fast numerics through the backend seam on a GPU — decode steps replayed
 * from CUDA graphs give exactly the bits of the same steps padded to the same bucket and run
 * eagerly (backend_opts.graphs = 2), on a checkpoint directory or a synthetic config (*.json,
 * weights generated on the device); rows pre-filtered on the device (forward_cands) are exactly
 * the host pre-filter of the same rows; and a copy-on-write fork decodes bit for bit like its
 * parent.
 * Part of tests/cuda/dev_kernels. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "engine/backend.h"
#include "engine/model/synth.h"
#include "tests/cuda/dev_util.h"

enum { BS = 16, N_BLOCKS = 64, SEED = 7 };

static struct backend *make(const struct model *m, int graphs)
{
    struct err e = {0};
    struct backend_opts o = {.numerics = NUMERICS_FAST, .max_tokens = 64, .max_logits = 16, .block_size = BS,
                             .kv_dtype = DT_BF16, .kv_blocks = N_BLOCKS, .graphs = graphs,
                             .sample_prefilter = graphs == 1};
    struct backend *b = backend_cuda()->create(m, &o, &e);
    if (!b) printf("fast_backend create (graphs %d) failed: %s\n", graphs, e.msg);
    return b;
}

static int step(struct backend *b, const struct batch *bt, float *logits)
{
    struct err e = {0};
    if (backend_cuda()->forward(b, bt, logits, &e) == 0) return 0;
    printf("fast_backend forward failed: %s\n", e.msg);
    return -1;
}

/* Three sequences prefilled, then decode steps of 3 rows (padded to 4) and 2 rows (a bucket). */
static const int32_t ta[1] = {0}, tb[1] = {1}, tc[2] = {2, 3};

static int steps(struct backend *b, float *out, int V)
{
    int32_t pre[33];
    for (int i = 0; i < 33; i++) pre[i] = 3 + 7 * i;
    struct batch_seq s1[3] = {{0, 10, 0, ta, BATCH_LOGITS_LAST}, {10, 3, 0, tb, BATCH_LOGITS_LAST},
                              {13, 20, 0, tc, BATCH_LOGITS_LAST}};
    static const int32_t d2[3] = {11, 12, 13}, d3[2] = {14, 15};
    struct batch_seq s2[3] = {{0, 1, 10, ta, BATCH_LOGITS_LAST}, {1, 1, 3, tb, BATCH_LOGITS_LAST},
                              {2, 1, 20, tc, BATCH_LOGITS_LAST}};
    struct batch_seq s3[2] = {{0, 1, 11, ta, BATCH_LOGITS_LAST}, {1, 1, 21, tc, BATCH_LOGITS_LAST}};
    struct batch b1 = {33, pre, 3, s1}, b2 = {3, d2, 3, s2}, b3 = {2, d3, 2, s3};
    return step(b, &b1, out) || step(b, &b2, out + (size_t)3 * V) || step(b, &b3, out + (size_t)6 * V) ? -1 : 0;
}

/* Position 12 of the first sequence through its own block and through a copy of it. */
static int fork_same(struct backend *b, int V, float *out)
{
    static const int32_t child[1] = {5}, tok[2] = {44, 44};
    struct kvb_copy cp = {.src = 0, .dst = 5};
    backend_cuda()->copy_blocks(b, &cp, 1);
    struct batch_seq s[2] = {{0, 1, 12, ta, BATCH_LOGITS_LAST}, {1, 1, 12, child, BATCH_LOGITS_LAST}};
    struct batch bt = {2, tok, 2, s};
    if (step(b, &bt, out) != 0) return 0;
    return memcmp(out, out + V, (size_t)V * sizeof *out) == 0;
}

/* BF16 experts read the group sizes back: such steps run eagerly (cf_setup_graphs). */
static int graphs_possible(const struct model *m)
{
    for (int il = 0; il < m->cfg.n_layers; il++)
        if (m->layers[il].is_moe) return m->layers[il].exp_gate[0].dtype == DT_F8E4M3;
    return 1;
}

/* One more decode step: whole rows on p, pre-filtered rows on g (k_sample_prep after a graph
 * replay) — the candidates exactly smp_prefilter's of p's rows (the mass within
 * SMP_CAND_MASS_ERR), and fetch_row the rows themselves. */
static double cands_err(struct backend *g, struct backend *p, int V, float *rows, float *got)
{
    static const int32_t d4[2] = {16, 17};
    struct batch_seq s4[2] = {{0, 1, 12, ta, BATCH_LOGITS_LAST}, {1, 1, 22, tc, BATCH_LOGITS_LAST}};
    struct batch b4 = {2, d4, 2, s4};
    struct smp_cands c[2];
    struct err e = {0};
    if (step(p, &b4, rows) != 0 || backend_cuda()->forward_cands(g, &b4, c, &e) != 0) return INFINITY;
    double worst = 0;
    for (int r = 0; r < 2; r++) {
        int32_t ids[SMP_CAND_K];
        float vals[SMP_CAND_K];
        struct smp_cands w;
        smp_prefilter(rows + (size_t)r * V, V, SMP_CAND_K, ids, vals, &w);
        backend_cuda()->fetch_row(g, r, got);
        int bad = c[r].n != w.n || memcmp(c[r].ids, ids, (size_t)w.n * 4) || memcmp(c[r].logits, vals, (size_t)w.n * 4) ||
                  c[r].out_max != w.out_max || c[r].n_finite != w.n_finite ||
                  memcmp(got, rows + (size_t)r * V, (size_t)V * 4);
        double m = w.out_mass == c[r].out_mass ? 0 : fabs(c[r].out_mass - w.out_mass) / (SMP_CAND_MASS_ERR * w.out_mass);
        worst = bad || isnan(m) ? INFINITY : fmax(worst, m);
    }
    return worst;
}

static struct model *load(const char *path, struct err *e)
{
    size_t n = strlen(path);
    if (n > 5 && strcmp(path + n - 5, ".json") == 0) return synth_load(path, SEED, 0, 0, e);
    return model_load(path, e);
}

int dev_fast_backend(const char *path)
{
    struct err e = {0};
    int before = dev_failures();
    struct model *m = load(path, &e);
    if (!m) {
        printf("fast_backend cannot load %s: %s\n", path, e.msg);
        dev_report("fast_backend", "load", INFINITY);
        return 1;
    }
    int V = m->cfg.vocab_size;
    float *g = malloc((size_t)8 * V * 4), *p = malloc((size_t)8 * V * 4);
    struct backend *bg = make(m, 1), *bp = bg ? make(m, 2) : NULL;
    if (bg && bp && steps(bg, g, V) == 0 && steps(bp, p, V) == 0) {
        struct backend_stats sg, sp;
        backend_cuda()->stats(bg, &sg), backend_cuda()->stats(bp, &sp);
        printf("fast_backend paths: %s\n", sg.paths);
        int same = memcmp(g + (size_t)3 * V, p + (size_t)3 * V, (size_t)5 * V * 4) == 0;
        dev_report("graph_replay", "2 decode steps == padded eager", same ? 0 : INFINITY);
        int want = graphs_possible(m) ? 2 : 0;
        dev_report("graph_count", want ? "graph steps 2, padded eager 0" : "BF16 experts: no graphs",
                   (int)sg.graph_steps == want && sp.graph_steps == 0 ? 0 : INFINITY);
        dev_report("sample_cands", "a step's rows pre-filtered", cands_err(bg, bp, V, p, g));
        dev_report("fast_fork", "copied block decodes like parent", fork_same(bp, V, p) ? 0 : INFINITY);
    } else {
        dev_report("fast_backend", "create or step", INFINITY);
    }
    if (bg) backend_cuda()->destroy(bg);
    if (bp) backend_cuda()->destroy(bp);
    free(g), free(p);
    model_destroy(m);
    return dev_failures() - before;
}
