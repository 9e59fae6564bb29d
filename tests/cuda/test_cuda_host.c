/* Host-side tests of the CUDA backend, run by the CUDA build on a machine without a GPU: the
 * backend exists and says why it cannot run here in the runtime's own words, create() fails
 * cleanly with that reason, auto falls back to the CPU, the model and option checks refuse what
 * the kernels do not run, and the weight arena plan places every tensor of a real checkpoint
 * (FP8 scales included) as its descriptors say — whole, or a tensor-parallel rank's cut, whose
 * every element, read from the staged arena as the kernels index it, is the weight's own. */
#include <check.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "cuda/core.h"
#include "cuda/cu_dev.h"
#include "cuda/cu_model.h"
#include "engine/comm.h"
#include "tests/check_run.h"
#include "tests/engine/tiny_model.h"

static char *dir;
static struct model *m;

static void load(int fp8, int q_lora)
{
    struct err e = {0};
    dir = ck_tmpdir();
    tiny_model_write(dir, &(struct tiny_opts){.q_lora = q_lora, .fp8 = fp8}, 7);
    m = model_load(dir, &e);
    ck_assert_msg(m != NULL, "%s", e.msg);
}

static void unload(void)
{
    model_destroy(m);
    ck_rmdir(dir);
}

/* The runtime's own answer when it has no device to offer (NULL when there is one). */
static const char *runtime_refusal(void)
{
    int n = 0;
    cudaError_t rc = cudaGetDeviceCount(&n);
    if (rc != cudaSuccess) return cudaGetErrorString(rc);
    return n ? NULL : "no CUDA device";
}

START_TEST(no_gpu_reason)
{
    const struct backend_ops *ops = backend_cuda();
    ck_assert_ptr_nonnull(ops);
    ck_assert_str_eq(ops->name, "cuda");
    const char *why_rt = runtime_refusal();
    if (!why_rt) return; /* a machine with a GPU: nothing to refuse */
    char why[320];
    ck_assert_int_eq(ops->usable(why, sizeof why), 0);
    ck_assert_msg(strstr(why, why_rt) != NULL, "'%s' not in '%s'", why_rt, why);
    struct err e = {0};
    ck_assert_ptr_null(backend_select(BACKEND_CUDA, NULL, 0, &e));
    ck_assert_msg(strncmp(e.msg, "backend cuda: ", 14) == 0 && strstr(e.msg, why_rt), "%s", e.msg);
    char note[320];
    ck_assert_ptr_eq(backend_select(BACKEND_AUTO, note, sizeof note, &e), backend_cpu());
    ck_assert_msg(strstr(note, "running on the CPU: ") && strstr(note, why_rt), "%s", note);
}
END_TEST

static struct backend_opts opts(void)
{
    return (struct backend_opts){.numerics = NUMERICS_REF, .max_tokens = 8, .max_logits = 8,
                                 .block_size = 4, .kv_dtype = DT_F32, .kv_blocks = 4};
}

/* create() without a device: NULL, one message with the reason, nothing leaked (ASan). */
START_TEST(create_without_gpu)
{
    const char *why_rt = runtime_refusal();
    if (!why_rt) return;
    load(1, 1);
    struct err e = {0};
    struct backend_opts o = opts();
    ck_assert_ptr_null(backend_cuda()->create(m, &o, &e));
    ck_assert_msg(strncmp(e.msg, "backend cuda: ", 14) == 0 && strstr(e.msg, why_rt), "%s", e.msg);
    unload();
}
END_TEST

static void expect_refused(const struct backend_opts *o, const char *frag)
{
    struct err e = {0};
    ck_assert_int_eq(cu_check_opts(m, o, &e), -1);
    ck_assert_msg(strstr(e.msg, frag) != NULL, "'%s' not in: %s", frag, e.msg);
    ck_assert_ptr_null(backend_cuda()->create(m, o, &e));
    ck_assert_msg(strstr(e.msg, frag) != NULL, "'%s' not in: %s", frag, e.msg);
}

START_TEST(option_checks)
{
    load(0, 1);
    struct err e = {0};
    struct backend_opts o = opts();
    ck_assert_int_eq(cu_check_opts(m, &o, &e), 0);
    o.kv_dtype = DT_BF16;
    ck_assert_int_eq(cu_check_opts(m, &o, &e), 0);
    o = opts(), o.numerics = NUMERICS_BF16; /* no BF16-input kernels here: runs as ref */
    ck_assert_int_eq(cu_check_opts(m, &o, &e), 0);
    o.dump_dir = "dumps"; /* as ref, so no stage dumps either */
    expect_refused(&o, "numerics fast only");
    o = opts(), o.numerics = NUMERICS_FAST; /* fast: the latent cache is BF16 */
    expect_refused(&o, "bf16");
    o.kv_dtype = DT_BF16; /* this model's 2 heads × 12 are no whole 16-element rows */
    expect_refused(&o, "multiples of 16");
    o = opts(), o.dump_dir = "dumps"; /* stage dumps are a fast-numerics facility */
    expect_refused(&o, "numerics fast only");
    o = opts(), o.kv_dtype = DT_F16;
    expect_refused(&o, "f32 or bf16");
    int two[2] = {0, 1};
    o = opts(), o.devices = two, o.n_devices = 2;
    expect_refused(&o, "one GPU");
    o = opts();
    m->cfg.kv_lora_rank = 8000; /* beyond the attention kernel's shared memory */
    expect_refused(&o, "kv_lora_rank 8000");
    m->cfg.kv_lora_rank = TINY_DC;
    m->cfg.arch = (enum arch)99; /* an architecture other than DeepSeek's */
    expect_refused(&o, "DeepSeek V2/V3 models only");
    m->cfg.arch = ARCH_DEEPSEEK_V3;
    unload();
}
END_TEST

/* Layouts over several GPUs that are not run are refused before anything is opened (the
 * communicator is never called: the refusal comes first). */
START_TEST(parallel_refusals)
{
    load(1, 1);
    struct comm two = {.rank = 0, .size = 2};
    struct err e = {0};
    struct backend_opts o = opts();
    o.ep_comm = &two, o.tp_comm = &two;
    ck_assert_ptr_null(backend_cuda()->create(m, &o, &e));
    ck_assert_str_eq(e.msg, "backend cuda: tensor and expert parallelism together are not "
                            "implemented yet");
    o = opts(), o.tp_comm = &two, o.numerics = NUMERICS_FAST;
    ck_assert_ptr_null(backend_cuda()->create(m, &o, &e));
    ck_assert_str_eq(e.msg, "backend cuda: numerics fast runs on one GPU; tensor parallelism over "
                            "GPUs computes with numerics ref (or auto)");
    o = opts(), o.ep_comm = &two, o.numerics = NUMERICS_FAST;
    ck_assert_ptr_null(backend_cuda()->create(m, &o, &e));
    ck_assert_str_eq(e.msg, "backend cuda: numerics fast runs on one GPU; expert parallelism over "
                            "GPUs computes with numerics ref (or auto)");
    unload();
}
END_TEST

/* A model the CUDA backend does not run: auto's choice gives way to the CPU, saying why (so that
 * `make run`'s default model, a llama GGUF, serves on a GPU machine too). */
START_TEST(auto_gives_way)
{
    load(0, 1);
    char why[256], note[320];
    ck_assert_int_eq(backend_cuda()->supports(m, why, sizeof why), 1);
    ck_assert_ptr_eq(backend_for_model(backend_cuda(), m, note, sizeof note), backend_cuda());
    ck_assert_str_eq(note, "");
    m->cfg.arch = (enum arch)99;
    ck_assert_int_eq(backend_cuda()->supports(m, why, sizeof why), 0);
    ck_assert_ptr_eq(backend_for_model(backend_cuda(), m, note, sizeof note), backend_cpu());
    ck_assert_msg(strstr(note, "running on the CPU: the CUDA backend runs DeepSeek V2/V3 models"),
                  "%s", note);
    m->cfg.arch = ARCH_DEEPSEEK_V3;
    unload();
}
END_TEST

/* The descriptor's bytes are the weight's bytes at its arena offset; scales likewise. */
static void check_placed(const struct wl_plan *p, const struct weight *w, const struct cu_w *d)
{
    if (!w->data) {
        ck_assert_ptr_null(d->data);
        return;
    }
    uint64_t off = (uint64_t)(uintptr_t)d->data;
    ck_assert_uint_eq(off % WL_ALIGN, 0);
    ck_assert_int_eq(d->dtype, (int)w->dtype);
    ck_assert(d->rows == w->rows && d->cols == w->cols);
    int found = 0;
    for (int i = 0; i < p->n; i++)
        if (p->jobs[i].off == off && p->jobs[i].src == w->data) {
            found = 1;
            ck_assert_uint_eq(p->jobs[i].bytes, (uint64_t)(w->rows * w->cols) * dtype_size(w->dtype));
        }
    ck_assert(found);
    if (!w->scale) {
        ck_assert_ptr_null(d->scale);
        return;
    }
    ck_assert_int_eq(d->n_cb, (w->cols + 127) / 128);
    uint64_t soff = (uint64_t)(uintptr_t)d->scale;
    for (int i = 0; i < p->n; i++)
        if (p->jobs[i].off == soff) ck_assert_ptr_eq(p->jobs[i].src, w->scale);
}

static void check_model_plan(int fp8, int q_lora)
{
    load(fp8, q_lora);
    struct cu_model d;
    cu_model_plan(&d, m, NULL);
    check_placed(&d.plan, &m->embed, &d.embed);
    check_placed(&d.plan, &m->lm_head, &d.lm_head);
    for (int il = 0; il < m->cfg.n_layers; il++) {
        const struct layer *L = &m->layers[il];
        const struct cu_layer *D = &d.layers[il];
        ck_assert_int_eq(D->is_moe, L->is_moe);
        check_placed(&d.plan, &L->q_a, &D->q_a), check_placed(&d.plan, &L->q, &D->q);
        check_placed(&d.plan, &L->q_b, &D->q_b), check_placed(&d.plan, &L->kv_b, &D->kv_b);
        check_placed(&d.plan, &L->router_bias, &D->router_bias);
        for (int x = 0; L->is_moe && x < m->cfg.n_routed_experts; x++)
            check_placed(&d.plan, &L->exp_down[x], &D->exp_down[x]);
    }
    for (int i = 1; i < d.plan.n; i++)
        ck_assert_uint_ge(d.plan.jobs[i].off, d.plan.jobs[i - 1].off + d.plan.jobs[i - 1].bytes);
    ck_assert_uint_le(m->st.n_bytes, d.plan.total + (uint64_t)d.plan.n * WL_ALIGN);
    cu_model_free(&d);
    unload();
}

START_TEST(weight_plan)
{
    check_model_plan(1, 1);
    check_model_plan(0, 0);
}
END_TEST

/* Element (r, c) of w as a kernel reads it (cuda/kcommon.cuh's cu_w_at), with the descriptor's
 * offsets resolved in a host copy of the arena (base NULL: w's own host pointers). */
static float element(const char *base, const struct cu_w *d, int64_t r, int64_t c)
{
    const char *data = base ? base + (uintptr_t)d->data : d->data;
    const float *scale = !d->scale ? NULL : base ? (const float *)(base + (uintptr_t)d->scale) : d->scale;
    const char *row = data + (size_t)(r * d->cols) * dtype_size((enum dtype)d->dtype);
    float s = 1.0f;
    if (scale) s = scale[core_scale_at(r, c, d->row0, d->col0, d->block_rows, d->block_cols, d->n_cb)];
    return core_widen(d->dtype, row, c, s);
}

/* The descriptor of a whole host weight, as the kernels would see it in place. */
static struct cu_w host_desc(const struct weight *w)
{
    struct cu_w d = {.dtype = (int)w->dtype, .rows = w->rows, .cols = w->cols, .data = w->data,
                     .scale = w->scale, .block_rows = w->block_rows, .block_cols = w->block_cols};
    if (w->scale) d.n_cb = (w->cols + w->block_cols - 1) / w->block_cols;
    return d;
}

/* The staged arena of a plan: what the upload copies to the device. */
static char *stage(const struct wl_plan *p)
{
    char *buf = calloc(1, p->total ? p->total : 1);
    wl_fill(p, 0, p->total, buf);
    return buf;
}

/* Every element of cut k placed from w equals w's element at (r0 + r, c0 + c). */
static void check_cut(const struct weight *w, struct cu_cut k)
{
    struct cu_model d = {0};
    struct cu_w o;
    cu_place(&d, w, k, &o);
    char *arena = stage(&d.plan);
    struct cu_w full = host_desc(w);
    ck_assert(o.rows == k.r1 - k.r0 && o.cols == k.c1 - k.c0);
    for (int64_t r = 0; r < o.rows; r++)
        for (int64_t c = 0; c < o.cols; c++) {
            float want = element(NULL, &full, k.r0 + r, k.c0 + c), got = element(arena, &o, r, c);
            ck_assert_msg(memcmp(&want, &got, sizeof got) == 0, "cut [%lld,%lld)x[%lld,%lld) (%lld,%lld): %g != %g",
                          (long long)k.r0, (long long)k.r1, (long long)k.c0, (long long)k.c1,
                          (long long)r, (long long)c, got, want);
        }
    free(arena);
    cu_model_free(&d);
}

/* A weight of rows x cols in dtype t with random contents (FP8: 128 x 128 scale blocks, partial
 * ones at the edges), its buffers owned by the caller. */
static struct weight random_weight(enum dtype t, int64_t rows, int64_t cols, uint64_t seed)
{
    struct weight w = {.name = "w", .dtype = t, .rows = rows, .cols = cols};
    size_t n = (size_t)(rows * cols) * dtype_size(t);
    uint8_t *data = malloc(n);
    for (size_t i = 0; i < n; i++) {
        seed = seed * 6364136223846793005ull + 1442695040888963407ull;
        data[i] = (uint8_t)(seed >> 56);
        if (t == DT_F8E4M3 && (data[i] & 0x7f) == 0x7f) data[i] ^= 1; /* no NaN codes */
        if (t == DT_BF16 && i % 2 == 1) data[i] &= 0x3f; /* modest exponents */
    }
    w.data = data;
    if (t != DT_F8E4M3) return w;
    w.block_rows = w.block_cols = 128;
    int64_t ns = (rows + 127) / 128 * ((cols + 127) / 128);
    float *sc = malloc((size_t)ns * sizeof *sc);
    for (int64_t i = 0; i < ns; i++) sc[i] = 0.001f * (float)(i + 1);
    w.scale = sc;
    return w;
}

/* Row and column cuts of every rank for 1..4 ranks, and both at once: across scale-block edges
 * (FP8: 300 x 260 has blocks of 128 and partial ones), and in BF16. */
START_TEST(cuts_read_as_whole)
{
    const enum dtype types[] = {DT_F8E4M3, DT_BF16};
    for (int i = 0; i < 2; i++) {
        struct weight w = random_weight(types[i], 300, 260, 11 + (uint64_t)i);
        for (int n = 1; n <= 4; n++)
            for (int r = 0; r < n; r++) {
                int64_t a, b, c0, c1;
                comm_split(w.rows, n, r, &a, &b);
                comm_split(w.cols, n, r, &c0, &c1);
                check_cut(&w, (struct cu_cut){a, b, 0, w.cols});
                check_cut(&w, (struct cu_cut){0, w.rows, c0, c1});
                check_cut(&w, (struct cu_cut){a, b, c0, c1});
            }
        check_cut(&w, (struct cu_cut){129, 130, 255, 260}); /* one row, a partial block's end */
        free((void *)w.data);
        free((void *)w.scale);
    }
}
END_TEST

/* A descriptor of the sharded plan holds cut k of w: its shape and every element. */
static void check_sharded(const char *arena, const struct weight *w, const struct cu_w *d,
                          struct cu_cut k)
{
    if (!w->data || k.r1 <= k.r0 || k.c1 <= k.c0) {
        ck_assert(d->rows == 0 && d->cols == 0);
        return;
    }
    ck_assert(d->rows == k.r1 - k.r0 && d->cols == k.c1 - k.c0);
    struct cu_w full = host_desc(w);
    for (int64_t r = 0; r < d->rows; r++)
        for (int64_t c = 0; c < d->cols; c++) {
            float want = element(NULL, &full, k.r0 + r, k.c0 + c), got = element(arena, d, r, c);
            ck_assert_msg(memcmp(&want, &got, sizeof got) == 0, "%s (%lld,%lld)", w->name,
                          (long long)r, (long long)c);
        }
}

/* Each rank of a tensor-parallel layout (dense) holds its heads' rows of q_b and kv_b, their
 * columns of o, its experts whole and no other's, its share of the dense MLP's and the shared
 * experts' intermediate rows, its vocabulary rows of lm_head, the rest whole; of an expert-
 * parallel one, its experts, and every other weight whole. */
static void check_rank(int rank, int size, int dense)
{
    struct cu_shard s;
    struct err e = {0};
    ck_assert_int_eq(cu_shard_make(m, rank, size, dense, &s, &e), 0);
    struct cu_model d;
    cu_model_plan(&d, m, &s);
    char *arena = stage(&d.plan);
    const struct model_config *c = &m->cfg;
    int64_t lo = 0, hi = 0, H = c->n_heads, h0 = dense ? s.h0 : 0, h1 = dense ? s.h1 : H;
    ck_assert(s.h1 - s.h0 == (dense ? H / size : H));
    for (int il = 0; il < c->n_layers; il++) {
        const struct layer *L = &m->layers[il];
        const struct cu_layer *D = &d.layers[il];
        int64_t qr = L->q_b.rows / H, kr = L->kv_b.rows / H, oc = L->o.cols / H;
        check_sharded(arena, &L->q_b, &D->q_b, (struct cu_cut){h0 * qr, h1 * qr, 0, L->q_b.cols});
        check_sharded(arena, &L->kv_b, &D->kv_b, (struct cu_cut){h0 * kr, h1 * kr, 0, L->kv_b.cols});
        check_sharded(arena, &L->o, &D->o, (struct cu_cut){0, L->o.rows, h0 * oc, h1 * oc});
        check_sharded(arena, &L->kv_a, &D->kv_a, (struct cu_cut){0, L->kv_a.rows, 0, L->kv_a.cols});
        const struct weight *g = L->is_moe ? &L->sh_gate : &L->gate, *dn = L->is_moe ? &L->sh_down : &L->down;
        const struct cu_w *dg = L->is_moe ? &D->sh_gate : &D->gate, *dd = L->is_moe ? &D->sh_down : &D->down;
        if (g->data) {
            lo = 0, hi = g->rows;
            if (dense) comm_split(g->rows, size, rank, &lo, &hi);
            check_sharded(arena, g, dg, (struct cu_cut){lo, hi, 0, g->cols});
            check_sharded(arena, dn, dd, (struct cu_cut){0, dn->rows, lo, hi});
        }
        comm_split(c->n_routed_experts, size, rank, &lo, &hi);
        ck_assert(s.e0 == lo && s.e1 == hi);
        for (int x = 0; L->is_moe && x < c->n_routed_experts; x++) {
            int mine = x >= s.e0 && x < s.e1;
            const struct weight *w = &L->exp_down[x];
            check_sharded(arena, w, &D->exp_down[x], (struct cu_cut){0, mine ? w->rows : 0, 0, w->cols});
        }
    }
    lo = 0, hi = c->vocab_size;
    if (dense) comm_split(c->vocab_size, size, rank, &lo, &hi);
    check_sharded(arena, &m->lm_head, &d.lm_head, (struct cu_cut){lo, hi, 0, m->lm_head.cols});
    check_sharded(arena, &m->embed, &d.embed, (struct cu_cut){0, m->embed.rows, 0, m->embed.cols});
    free(arena);
    cu_model_free(&d);
}

START_TEST(shard_plan)
{
    for (int fp8 = 0; fp8 <= 1; fp8++) {
        load(fp8, fp8);
        for (int size = 1; size <= 3; size++)
            for (int r = 0; r < size; r++) {
                if (size < 3) check_rank(r, size, 1); /* 2 heads: 3 ranks do not divide them */
                check_rank(r, size, 0);
            }
        struct cu_shard s;
        struct err e = {0};
        ck_assert_int_eq(cu_shard_make(m, 0, 3, 1, &s, &e), -1);
        ck_assert_str_eq(e.msg, "the model's 2 attention heads do not divide by tensor_parallel_size 3");
        unload();
    }
}
END_TEST

int main(void)
{
    Suite *s = suite_create("cuda_host");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, no_gpu_reason);
    tcase_add_test(tc, create_without_gpu);
    tcase_add_test(tc, option_checks);
    tcase_add_test(tc, parallel_refusals);
    tcase_add_test(tc, auto_gives_way);
    tcase_add_test(tc, weight_plan);
    tcase_add_test(tc, cuts_read_as_whole);
    tcase_add_test(tc, shard_plan);
    suite_add_tcase(s, tc);
    return check_run(s, 0);
}
