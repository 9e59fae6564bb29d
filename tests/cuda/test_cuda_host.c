/* Host-side tests of the CUDA backend, run by the CUDA build on a machine without a GPU: the
 * backend exists and says why it cannot run here in the runtime's own words, create() fails
 * cleanly with that reason, auto falls back to the CPU, the model and option checks refuse what
 * the kernels do not run, and the weight arena plan places every tensor of a real checkpoint
 * (FP8 scales included) as its descriptors say. */
#include <check.h>
#include <stdint.h>
#include <string.h>

#include "cuda/cu_dev.h"
#include "cuda/cu_model.h"
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
    cu_model_plan(&d, m);
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

int main(void)
{
    Suite *s = suite_create("cuda_host");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, no_gpu_reason);
    tcase_add_test(tc, create_without_gpu);
    tcase_add_test(tc, option_checks);
    tcase_add_test(tc, auto_gives_way);
    tcase_add_test(tc, weight_plan);
    suite_add_tcase(s, tc);
    return check_run(s, 0);
}
