/* stage_check: the walk over a dump's steps and layers, loading, comparing and the verdicts; the
 * final norm and the logits. The stages of a layer are in stage_check_layer.c. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "engine/cpu/cpu_ops.h"
#include "engine/cpu/numerics.h"
#include "engine/cpu/stage_check_internal.h"

float *sc_falloc(int64_t n)
{
    return xcalloc((size_t)(n > 0 ? n : 1), sizeof(float));
}

static const char *type_name(enum sd_type t)
{
    return t == SD_F32 ? "float32" : t == SD_BF16 ? "uint16 (bf16)" : t == SD_U8 ? "uint8" : "int32";
}

const struct sd_array *sc_get(struct sc *x, const char *name, enum sd_type t, int64_t rows,
                              int64_t cols)
{
    char path[4200];
    for (int i = 0; i < x->n_stash; i++)
        if (strcmp(x->stash[i].name, name) == 0) return &x->stash[i].a;
    if (x->n_stash == SC_STASH) ERR_FATAL("stage_check: more than %d stages in a layer", SC_STASH);
    sd_stage_path(x->o->dump_dir, x->step, x->layer, name, path, sizeof path);
    struct sd_array *a = &x->stash[x->n_stash].a;
    if (sd_load(path, a, x->e) != 0) return x->failed = 1, NULL;
    snprintf(x->stash[x->n_stash++].name, sizeof x->stash[0].name, "%s", name);
    if (a->type != t || a->n != rows * cols) {
        err_set(x->e, "%s: %lld %s values, expected %lld x %lld %s", path, (long long)a->n,
                type_name(a->type), (long long)rows, (long long)cols, type_name(t));
        return x->failed = 1, NULL;
    }
    return a;
}

int sc_get_act(struct sc *x, const char *name, int fp8, int64_t rows, int64_t k,
               struct fs_act *view)
{
    char sname[48];
    *view = (struct fs_act){.fp8 = fp8, .n = (int)rows, .k = k};
    if (!fp8) {
        const struct sd_array *b = sc_get(x, name, SD_BF16, rows, k);
        if (!b) return -1;
        view->b = b->data;
        return 0;
    }
    snprintf(sname, sizeof sname, "%s_s", name);
    const struct sd_array *q = sc_get(x, name, SD_U8, rows, k);
    const struct sd_array *s = q ? sc_get(x, sname, SD_F32, rows, nm_groups(k)) : NULL;
    if (!s) return -1;
    view->q = q->data, view->s = s->data;
    return 0;
}

static void free_stash(struct sc *x)
{
    for (int i = 0; i < x->n_stash; i++) sd_array_free(&x->stash[i].a);
    x->n_stash = 0;
}

/* A stage's verdict: its worst err/tol and where. */
void sc_verdict(struct sc *x, const char *stage, double worst, int64_t at, int64_t cols)
{
    char where[64] = "", layer[16] = "final";
    int bad = !(worst <= 1.0);
    if (at >= 0 && cols > 0) snprintf(where, sizeof where, " at [%lld, %lld]", (long long)(at / cols), (long long)(at % cols));
    if (x->layer >= 0) snprintf(layer, sizeof layer, "layer %d", x->layer);
    x->r->n_stages++;
    if (bad) {
        x->r->n_failed++;
        if (!x->r->first[0])
            snprintf(x->r->first, sizeof x->r->first, "step %d, %s, %s: err/tol %.3g%s", x->step,
                     layer, stage, worst, where);
    }
    if (bad || x->o->verbose)
        fprintf(x->o->out, "step %d %-8s %-10s err/tol %-10.3g %s%s\n", x->step, layer, stage,
                worst, bad ? "FAIL" : "ok", where);
}

void sc_cmp_f32(struct sc *x, const char *stage, const float *got, const float *want,
                const float *tol, int64_t n, int64_t cols)
{
    double worst = 0;
    int64_t at = -1;
    for (int64_t i = 0; i < n; i++) {
        double d = fabs((double)got[i] - (double)want[i]), t = tol ? tol[i] : 0.0;
        double q = d == 0 ? 0 : t > 0 ? d / t : INFINITY;
        if (isnan(got[i]) != isnan(want[i]) || (isnan(q) && !isnan(want[i]))) q = INFINITY;
        if (isnan(got[i]) && isnan(want[i])) q = 0;
        if (q > worst) worst = q, at = i;
    }
    sc_verdict(x, stage, worst, at, cols);
}

void sc_cmp_bits(struct sc *x, const char *stage, const void *got, const void *want, int64_t n,
                 size_t elem, int64_t cols)
{
    int64_t at = -1;
    for (int64_t i = 0; i < n && at < 0; i++)
        if (memcmp((const char *)got + i * elem, (const char *)want + i * elem, elem) != 0) at = i;
    sc_verdict(x, stage, at < 0 ? 0 : INFINITY, at, cols);
}

void sc_cmp_act(struct sc *x, const char *stage, const struct fs_act *got, const float *want_x)
{
    struct fs_act want;
    char s[48];
    fs_act_alloc(&want, got->fp8, got->n, got->k);
    fs_quant(want_x, got->k, got->n, &want);
    if (got->fp8) {
        sc_cmp_bits(x, stage, got->q, want.q, (int64_t)got->n * got->k, 1, got->k);
        snprintf(s, sizeof s, "%s_s", stage);
        sc_cmp_bits(x, s, got->s, want.s, (int64_t)got->n * nm_groups(got->k), 4, nm_groups(got->k));
    } else {
        sc_cmp_bits(x, stage, got->b, want.b, (int64_t)got->n * got->k, 2, got->k);
    }
    fs_act_free(&want);
}

void sc_tol(float *tol, const float *ref, double rel, const float *y, double ulp_rel, int64_t n)
{
    for (int64_t i = 0; i < n; i++)
        tol[i] = (float)(rel * fabs((double)ref[i]) + (y ? ulp_rel * fabs((double)y[i]) : 0.0));
}

const struct fs_mla_w *sc_mla(struct sc *x, int layer)
{
    const struct model_config *c = x->c;
    if (!x->mla[layer].uk)
        fs_mla_weights(&x->m->layers[layer].kv_b, c->n_heads, c->qk_nope_head_dim, c->v_head_dim,
                       &x->mla[layer]);
    return &x->mla[layer];
}

/* ---- steps ---------------------------------------------------------------------------------- */

static int step_exists(const struct sc *x, int step)
{
    char path[4200];
    struct stat st;
    sd_stage_path(x->o->dump_dir, step, -1, "tokens", path, sizeof path);
    return stat(path, &st) == 0;
}

static void free_plan(struct sc *x)
{
    for (int i = 0; i < SC_N_PLAN; i++) sd_array_free(&x->plan[i]);
    free(x->cos), free(x->sin), free(x->prev_h);
    x->cos = x->sin = x->prev_h = NULL;
}

/* The step's plan arrays and every token's RoPE angles. */
static int load_plan(struct sc *x)
{
    static const char *names[SC_N_PLAN] = {"tokens", "pos", "slot", "table_off", "tables",
                                           "logit_rows", "block_size"};
    char path[4200];
    for (int i = 0; i < SC_N_PLAN; i++) {
        sd_stage_path(x->o->dump_dir, x->step, -1, names[i], path, sizeof path);
        if (sd_load(path, &x->plan[i], x->e) != 0) return -1;
        if (x->plan[i].type != SD_I32) return err_set(x->e, "%s: expected int32 values", path);
    }
    if (x->plan[SC_BLOCK].n != 1 || sc_plan(x, SC_BLOCK)[0] < 1)
        return err_set(x->e, "%s: block_size.npy holds no block size", x->o->dump_dir);
    x->T = (int)x->plan[SC_TOKENS].n;
    int np = x->rope.n_pairs;
    x->cos = sc_falloc((int64_t)x->T * np), x->sin = sc_falloc((int64_t)x->T * np);
    for (int t = 0; t < x->T; t++)
        rope_angles(&x->rope, sc_plan(x, SC_POS)[t], x->cos + (size_t)t * np, x->sin + (size_t)t * np);
    return 0;
}

/* The final norm of the logits rows, its BF16 rounding, and the logits (a spread of columns). */
static int check_head(struct sc *x)
{
    const struct model_config *c = x->c;
    int D = c->hidden_size, V = c->vocab_size, n = (int)x->plan[SC_LOGIT_ROWS].n;
    const int32_t *rows = sc_plan(x, SC_LOGIT_ROWS);
    struct fs_act fxb;
    const struct sd_array *fxn = sc_get(x, "fxn", SD_F32, n, D), *lg = sc_get(x, "logits", SD_F32, n, V);
    if (!fxn || !lg || sc_get_act(x, "fxb", 0, n, D, &fxb) != 0) return -1;
    float *want = sc_falloc((int64_t)n * D), *tol = sc_falloc((int64_t)n * D);
    for (int i = 0; i < n; i++)
        cpu_rmsnorm(x->prev_h + (size_t)rows[i] * D, &x->m->norm, 1, D, D, c->rms_norm_eps,
                    want + (size_t)i * D, D);
    sc_tol(tol, want, SC_NORM, NULL, 0, (int64_t)n * D);
    sc_cmp_f32(x, "fxn", fxn->data, want, tol, (int64_t)n * D, D);
    sc_cmp_act(x, "fxb", &fxb, fxn->data);
    int step = x->o->max_vocab_cols > 0 && V > x->o->max_vocab_cols ? V / x->o->max_vocab_cols : 1;
    int nc = (V + step - 1) / step;
    float *got = sc_falloc((int64_t)n * nc), *y = sc_falloc((int64_t)n * nc), *a = sc_falloc((int64_t)n * nc);
    for (int j = 0; j < nc; j++) {
        struct fs_act one = fxb;
        for (int i = 0; i < n; i++) got[(size_t)i * nc + j] = ((const float *)lg->data)[(size_t)i * V + (size_t)j * step];
        struct weight w = x->m->lm_head;
        w.data = (const char *)w.data + (size_t)j * step * D * dtype_size(w.dtype), w.rows = 1;
        fs_linear(x->tp, &w, &one, y + j, nc);
        fs_linear_abs(x->tp, &w, &one, a + j, nc);
    }
    sc_tol(a, a, SC_BF16, NULL, 0, (int64_t)n * nc);
    sc_cmp_f32(x, "logits", got, y, a, (int64_t)n * nc, nc);
    free(want), free(tol), free(got), free(y), free(a);
    return 0;
}

static int check_step(struct sc *x)
{
    if (load_plan(x) != 0) return -1;
    int rc = 0;
    for (x->layer = 0; x->layer < x->c->n_layers && rc == 0; x->layer++) {
        rc = sc_layer(x, &x->m->layers[x->layer]);
        free_stash(x);
    }
    x->layer = -1;
    if (rc == 0 && x->plan[SC_LOGIT_ROWS].n > 0) rc = check_head(x);
    free_stash(x);
    free_plan(x);
    return rc;
}

int sc_check(const struct model *m, struct tp *tp, const struct sc_opts *o, struct sc_result *r,
             struct err *e)
{
    const struct model_config *c = &m->cfg;
    const struct layer *L0 = &m->layers[0];
    struct sc x = {.m = m, .c = c, .tp = tp, .o = o, .r = r, .e = e, .layer = -1,
                   .fp8 = fs_takes_fp8(c->q_lora_rank ? &L0->q_a : &L0->q)};
    *r = (struct sc_result){0};
    rope_init(&x.rope, c);
    x.shadow = xcalloc((size_t)c->n_layers, sizeof *x.shadow);
    x.mla = xcalloc((size_t)c->n_layers, sizeof *x.mla);
    int rc = step_exists(&x, 0) ? 0 : err_set(e, "%s: no step0000 stage dump", o->dump_dir);
    for (x.step = 0; rc == 0 && step_exists(&x, x.step); x.step++, r->n_steps++) rc = check_step(&x);
    for (int il = 0; il < c->n_layers; il++) {
        free(x.shadow[il].rows), free(x.shadow[il].have);
        fs_mla_free(&x.mla[il]);
    }
    free(x.shadow), free(x.mla);
    free_plan(&x);
    return rc;
}
