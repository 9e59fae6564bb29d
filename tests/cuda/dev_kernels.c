/* dev_kernels: the CUDA kernels against engine/cpu's reference functions, on a GPU (run by
 * tests/cuda/device_check.sh; needs no Check library). Random inputs, never zeros; outputs
 * poisoned with NaN before each launch so an unwritten element fails. One line per case:
 * "kernel shape max_err tol PASS|FAIL". Then, with a model directory, the backend as a whole:
 * a step mixing a prefill chunk behind cached tokens with decode tokens, GPU against CPU
 * (≤ 1e-4 of max |logit|), and a copy-on-write fork that must decode bit for bit like its parent.
 * The fast numerics' kernels (tests/cuda/dev_fast*.c) against the CPU emulation, and per model
 * (a directory, or a synthetic config NAME.json) decode steps replayed from CUDA graphs against
 * the same steps padded and run eagerly (dev_fast_backend.c).
 *
 * usage: dev_kernels [MODEL_DIR|CONFIG.json...]   exit 0 all passed, 1 a failure, 2 no GPU
 *        dev_kernels --membw           the device-to-device copy bandwidth */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cuda/cu_dev.h"
#include "cuda/kernels.h"
#include "engine/cpu/cpu_ops.h"
#include "engine/cpu/moe.h"
#include "engine/model/rope.h"
#include "tests/cuda/dev_util.h"

static int n_fail;
static uint64_t rng = 0x9e3779b97f4a7c15ull;

static uint32_t next_u32(void)
{
    rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
    return (uint32_t)(rng >> 11);
}

static float rnd(float a)
{
    float v = ((float)(next_u32() % 2000001u) / 1000000.0f - 1.0f) * a;
    return v == 0.0f ? 0.375f * a : v;
}

static void report(const char *kernel, const char *shape, double err, double tol)
{
    int ok = err <= tol; /* NaN fails */
    printf("%-10s %-28s %10.3g %10.3g %s\n", kernel, shape, err, tol, ok ? "PASS" : "FAIL");
    n_fail += !ok;
}

static void *dev_copy(const void *src, size_t n)
{
    void *d;
    CU_CHECK(cudaMalloc(&d, n ? n : 1));
    if (n) CU_CHECK(cudaMemcpy(d, src, n, cudaMemcpyHostToDevice));
    return d;
}

static float *dev_poisoned(size_t n)
{
    float *d;
    CU_CHECK(cudaMalloc((void **)&d, n * sizeof *d));
    CU_CHECK(cudaMemset(d, 0xff, n * sizeof *d)); /* all-ones bits: NaN */
    return d;
}

static float *host_of(const float *d, size_t n)
{
    float *h = malloc(n * sizeof *h);
    CU_CHECK(cudaDeviceSynchronize());
    CU_CHECK(cudaMemcpy(h, d, n * sizeof *h, cudaMemcpyDeviceToHost));
    return h;
}

static float *rand_vec(size_t n, float a)
{
    float *v = malloc(n * sizeof *v);
    for (size_t i = 0; i < n; i++) v[i] = rnd(a);
    return v;
}

/* A random host weight (FP8 with a 128×128 grid) and its device descriptor. */
static struct weight make_weight(enum dtype t, int64_t rows, int64_t cols, struct cu_w *d)
{
    struct weight w = {.name = "w", .dtype = t, .rows = rows, .cols = cols};
    size_t n = (size_t)(rows * cols), es = dtype_size(t);
    uint8_t *p = malloc(n * es);
    for (size_t i = 0; i < n; i++) {
        float f = rnd(1.0f);
        uint16_t h = t == DT_BF16 ? f32_to_bf16(f) : (uint16_t)(next_u32() & 0x3bff);
        uint8_t b = (uint8_t)next_u32();
        if (t == DT_F32) memcpy(p + 4 * i, &f, 4);
        else if (t != DT_F8E4M3) memcpy(p + 2 * i, &h, 2);
        else p[i] = (b & 0x7f) == 0x7f ? (uint8_t)(b ^ 1) : b;
    }
    w.data = p;
    *d = (struct cu_w){.dtype = (int)t, .rows = rows, .cols = cols, .data = dev_copy(p, n * es)};
    if (t == DT_F8E4M3) {
        w.block_rows = w.block_cols = 128;
        d->block_rows = d->block_cols = 128, d->n_cb = (cols + 127) / 128;
        size_t ns = (size_t)((rows + 127) / 128 * d->n_cb);
        float *s = rand_vec(ns, 1e-3f);
        for (size_t i = 0; i < ns; i++) s[i] = fabsf(s[i]) + 1e-3f;
        w.scale = s;
        d->scale = dev_copy(s, ns * sizeof *s);
    }
    return w;
}

static void free_weight(struct weight *w, struct cu_w *d)
{
    free((void *)w->data), free((void *)w->scale);
    cudaFree((void *)d->data), cudaFree((void *)d->scale);
}

/* y = x · Wᵀ against cpu_matmul; tolerance 1e-5 of Σ|w·x| per output (F32 reassociation). */
static void test_gemm(enum dtype t, int64_t rows, int64_t cols, int n)
{
    struct cu_w dw;
    struct weight w = make_weight(t, rows, cols, &dw);
    float *x = rand_vec((size_t)n * cols, 1.0f), *want = malloc((size_t)n * rows * sizeof *want);
    float *row = malloc((size_t)cols * sizeof *row), *dx = dev_copy(x, (size_t)n * cols * 4);
    float *dy = dev_poisoned((size_t)n * rows);
    cpu_matmul(&w, x, n, want);
    struct cu_gemm g = {.w = dw, .n_out = rows, .x = dx, .ldx = cols, .n = n, .y = dy, .ldy = rows,
                        .n_batch = 1};
    CU_CHECK(k_gemm(&g, 0));
    float *got = host_of(dy, (size_t)n * rows);
    double worst = 0;
    for (int64_t o = 0; o < rows; o++) {
        cpu_weight_row(&w, o, row);
        for (int tk = 0; tk < n; tk++) {
            double a = 0;
            for (int64_t i = 0; i < cols; i++) a += fabs((double)row[i] * x[tk * cols + i]);
            double e = fabs((double)got[tk * rows + o] - want[tk * rows + o]) / (1e-5 * a + 1e-30);
            worst = isnan(got[tk * rows + o]) || e > worst ? (isnan(e) ? INFINITY : e) : worst;
        }
    }
    char shape[64];
    snprintf(shape, sizeof shape, "%s %ldx%ld n=%d", dtype_name(t), (long)rows, (long)cols, n);
    report("gemm", shape, worst, 1.0);
    free_weight(&w, &dw);
    free(x), free(want), free(row), free(got);
    cudaFree(dx), cudaFree(dy);
}

static void test_rmsnorm(int n, int dim)
{
    struct cu_w dw;
    struct weight w = make_weight(DT_BF16, 1, dim, &dw);
    float *x = rand_vec((size_t)n * dim, 3.0f), *want = malloc((size_t)n * dim * 4);
    float *dx = dev_copy(x, (size_t)n * dim * 4), *dy = dev_poisoned((size_t)n * dim);
    cpu_rmsnorm(x, &w, n, dim, dim, 1e-6f, want, dim);
    CU_CHECK(k_rmsnorm(dx, dim, NULL, &dw, n, dim, 1e-6f, dy, dim, 0));
    float *got = host_of(dy, (size_t)n * dim);
    double worst = 0;
    for (size_t i = 0; i < (size_t)n * dim; i++) {
        double e = fabs((double)got[i] - want[i]) / (1e-5 * fabs(want[i]) + 1e-7);
        if (!(e <= worst)) worst = e;
    }
    char shape[64];
    snprintf(shape, sizeof shape, "%d rows x %d", n, dim);
    report("rmsnorm", shape, worst, 1.0);
    free_weight(&w, &dw);
    free(x), free(want), free(got), cudaFree(dx), cudaFree(dy);
}

/* RoPE on q-shaped rows: bit-identical to rope_apply with the host's angles. */
static void test_rope(int n, int H, int dn, int dr)
{
    struct model_config c = {.qk_nope_head_dim = dn, .qk_rope_head_dim = dr, .rope_theta = 10000,
                             .rope_yarn = 1, .rope_factor = 40, .rope_orig_max_pos = 4096,
                             .rope_beta_fast = 32, .rope_beta_slow = 1, .rope_mscale = 1,
                             .rope_mscale_all_dim = 1};
    struct rope r;
    rope_init(&r, &c);
    int qk = dn + dr, np = dr / 2;
    float *q = rand_vec((size_t)n * H * qk, 2.0f), *cs = malloc((size_t)n * np * 4), *sn = malloc((size_t)n * np * 4);
    for (int t = 0; t < n; t++) rope_angles(&r, 17 * t + 3, cs + t * np, sn + t * np);
    float *dq = dev_copy(q, (size_t)n * H * qk * 4), *dc = dev_copy(cs, (size_t)n * np * 4);
    float *ds = dev_copy(sn, (size_t)n * np * 4);
    CU_CHECK(k_rope(dq, n, H, (int64_t)H * qk, qk, dn, dc, ds, np, 0));
    for (int t = 0; t < n; t++)
        for (int h = 0; h < H; h++) rope_apply(q + ((size_t)t * H + h) * qk + dn, np, cs + t * np, sn + t * np);
    float *got = host_of(dq, (size_t)n * H * qk);
    int diff = memcmp(got, q, (size_t)n * H * qk * 4) != 0;
    char shape[64];
    snprintf(shape, sizeof shape, "%d tok x %d heads, dr %d", n, H, dr);
    report("rope", shape, diff ? 1 : 0, 0);
    free(q), free(cs), free(sn), free(got), cudaFree(dq), cudaFree(dc), cudaFree(ds);
}

/* Attention over a paged cache (blocks out of order, F32 or BF16) against a double-precision
 * softmax of the CPU's scores; tolerance 2e-5 of the head's max |ctx| (F32 sums over up to
 * 1,000 rows). */
static void test_attn(int cache_bf16, int n_ctx, int H, int dc, int dr, int bs)
{
    int n_blocks = (n_ctx + bs - 1) / bs, W = dc + dr, T = 3, qk = 16 + dr;
    size_t rows = (size_t)n_blocks * bs;
    float *cache = rand_vec(rows * W, 1.0f), *qlat = rand_vec((size_t)T * H * dc, 0.3f);
    float *q = rand_vec((size_t)T * H * qk, 0.3f);
    uint16_t *c16 = malloc(rows * W * 2);
    for (size_t i = 0; i < rows * W; i++) c16[i] = f32_to_bf16(cache[i]), cache[i] = cache_bf16 ? bf16_to_f32(c16[i]) : cache[i];
    int32_t *table = malloc((size_t)n_blocks * 4), pos[3] = {0, n_ctx / 2, n_ctx - 1}, off[3] = {0, 0, 0};
    for (int i = 0; i < n_blocks; i++) table[i] = n_blocks - 1 - i;
    void *dcache = cache_bf16 ? dev_copy(c16, rows * W * 2) : dev_copy(cache, rows * W * 4);
    struct cu_attn a = {.qlat = dev_copy(qlat, (size_t)T * H * dc * 4), .q = dev_copy(q, (size_t)T * H * qk * 4),
                        .cache = dcache, .cache_dtype = cache_bf16 ? CORE_BF16 : CORE_F32,
                        .tables = dev_copy(table, (size_t)n_blocks * 4), .table_off = dev_copy(off, 12),
                        .pos = dev_copy(pos, 12), .ctx = dev_poisoned((size_t)T * H * dc), .n = T,
                        .n_heads = H, .dc = dc, .dr = dr, .dn = 16, .qk = qk, .width = W,
                        .block_size = bs, .scale = 0.0721f};
    CU_CHECK(k_attn(&a, 0));
    float *got = host_of(a.ctx, (size_t)T * H * dc);
    double worst = 0, *p = malloc((size_t)n_ctx * sizeof *p), *v = malloc((size_t)dc * sizeof *v);
    for (int t = 0; t < T; t++)
        for (int h = 0; h < H; h++) {
            const float *ql = qlat + ((size_t)t * H + h) * dc, *qr = q + ((size_t)t * H + h) * qk + 16;
            double mx = -INFINITY, sum = 0, big = 1e-3, err = 0;
            for (int j = 0; j <= pos[t]; j++) {
                const float *c = cache + ((size_t)table[j / bs] * bs + j % bs) * W;
                p[j] = a.scale * (cpu_dot(ql, c, dc) + cpu_dot(qr, c + dc, dr));
                mx = fmax(mx, p[j]);
            }
            for (int j = 0; j <= pos[t]; j++) sum += p[j] = exp(p[j] - mx);
            for (int i = 0; i < dc; i++) {
                v[i] = 0;
                for (int j = 0; j <= pos[t]; j++)
                    v[i] += p[j] / sum * cache[((size_t)table[j / bs] * bs + j % bs) * W + i];
                big = fmax(big, fabs(v[i]));
            }
            for (int i = 0; i < dc; i++) {
                double e = fabs(got[((size_t)t * H + h) * dc + i] - v[i]);
                if (!(e <= err)) err = e;
            }
            err /= 2e-5 * big; /* relative to the head's largest context value */
            if (!(err <= worst)) worst = err;
        }
    free(v);
    char shape[64];
    snprintf(shape, sizeof shape, "%s ctx %d H %d dc %d", cache_bf16 ? "bf16" : "f32", n_ctx, H, dc);
    report("attn", shape, worst, 1.0);
    free(cache), free(qlat), free(q), free(c16), free(table), free(got), free(p);
    cudaFree(dcache), cudaFree((void *)a.qlat), cudaFree((void *)a.q), cudaFree((void *)a.tables);
    cudaFree((void *)a.table_off), cudaFree((void *)a.pos), cudaFree(a.ctx);
}

/* Routing of random tokens: the same experts as moe_route, weights within 1e-6 relative. */
static void test_route(int E, int k, int n_group, int topk_group, int v3)
{
    struct model_config c = {.arch = v3 ? ARCH_DEEPSEEK_V3 : ARCH_DEEPSEEK_V2, .n_routed_experts = E,
                             .n_experts_per_tok = k, .n_group = n_group, .topk_group = topk_group,
                             .scoring = v3 ? SCORE_SIGMOID : SCORE_SOFTMAX,
                             .topk_method = v3 ? TOPK_NOAUX_TC : TOPK_GROUP_LIMITED_GREEDY,
                             .norm_topk_prob = 1, .routed_scaling_factor = 2.5f};
    struct core_route_cfg rc = {E, k, n_group, topk_group, v3, (int)c.topk_method, v3, 2.5f};
    enum { T = 257 };
    float *logits = rand_vec((size_t)T * E, 4.0f), *bias = rand_vec((size_t)E, 0.1f);
    float *dl = dev_copy(logits, (size_t)T * E * 4), *db = dev_copy(bias, (size_t)E * 4);
    float *dscr = dev_poisoned((size_t)T * (3 * E + n_group)), *dw = dev_poisoned((size_t)T * k);
    unsigned char *dtaken;
    int32_t *dsel;
    CU_CHECK(cudaMalloc((void **)&dtaken, (size_t)T * E));
    CU_CHECK(cudaMalloc((void **)&dsel, (size_t)T * k * 4));
    CU_CHECK(k_route(&rc, dl, v3 ? db : NULL, dscr, dtaken, dsel, dw, T, 0));
    float *w = host_of(dw, (size_t)T * k), scratch[3 * 256 + 16], ww[16];
    int32_t *sel = malloc((size_t)T * k * 4), idx[16];
    CU_CHECK(cudaMemcpy(sel, dsel, (size_t)T * k * 4, cudaMemcpyDeviceToHost));
    double worst = 0;
    for (int t = 0; t < T; t++) {
        moe_route(&c, logits + (size_t)t * E, v3 ? bias : NULL, scratch, idx, ww);
        for (int j = 0; j < k; j++) {
            double e = sel[t * k + j] != idx[j] ? INFINITY : fabs(w[t * k + j] - ww[j]) / (1e-6 * fabs(ww[j]) + 1e-12);
            if (!(e <= worst)) worst = e;
        }
    }
    char shape[64];
    snprintf(shape, sizeof shape, "%s E %d k %d groups %d/%d", v3 ? "v3" : "v2", E, k, topk_group, n_group);
    report("route", shape, worst, 1.0);
    free(logits), free(bias), free(w), free(sel);
    cudaFree(dl), cudaFree(db), cudaFree(dscr), cudaFree(dw), cudaFree(dtaken), cudaFree(dsel);
}

static void test_silu(int64_t n)
{
    float *a = rand_vec((size_t)n, 8.0f), *b = rand_vec((size_t)n, 2.0f);
    float *da = dev_copy(a, (size_t)n * 4), *db = dev_copy(b, (size_t)n * 4);
    CU_CHECK(k_silu_mul(da, db, n, 0));
    cpu_silu_mul(a, b, n);
    float *got = host_of(da, (size_t)n);
    double worst = 0;
    for (int64_t i = 0; i < n; i++) {
        double e = fabs((double)got[i] - a[i]) / (4.8e-7 * fabs(a[i]) + 1e-30);
        if (!(e <= worst)) worst = e;
    }
    report("silu_mul", "1e6 values", worst, 1.0);
    free(a), free(b), free(got), cudaFree(da), cudaFree(db);
}

int dev_backend(const char *model_dir); /* tests/cuda/dev_backend.c */

int main(int argc, char **argv)
{
    char why[320];
    if (!cu_usable(why, sizeof why)) {
        printf("no usable GPU: %s\n", why);
        return 2;
    }
    if (argc > 1 && strcmp(argv[1], "--membw") == 0) {
        double gbps = dev_copy_gbps();
        if (gbps > 0) printf("copy_bandwidth_GBps %.1f\n", gbps);
        else printf("copy_bandwidth_GBps unavailable (no 4 GiB free)\n");
        return 0;
    }
    printf("%-10s %-28s %10s %10s %s\n", "kernel", "shape", "max_err", "tol", "result");
    const enum dtype types[] = {DT_F32, DT_BF16, DT_F16, DT_F8E4M3};
    const int shapes[][3] = {{333, 300, 1}, {64, 160, 3}, {1000, 257, 8}, {129, 512, 17},
                             {96, 2048, 64}, {7168, 2048, 4}};
    for (int t = 0; t < 4; t++)
        for (size_t s = 0; s < sizeof shapes / sizeof shapes[0]; s++)
            test_gemm(types[t], shapes[s][0], shapes[s][1], shapes[s][2]);
    test_rmsnorm(5, 7168), test_rmsnorm(33, 160), test_rmsnorm(1, 96);
    test_rope(7, 128, 128, 64), test_rope(3, 4, 32, 16);
    test_attn(0, 300, 4, 96, 16, 64), test_attn(1, 300, 4, 96, 16, 64), test_attn(0, 1000, 16, 512, 64, 64);
    test_attn(0, 70, 2, 160, 16, 4);
    test_route(256, 8, 8, 4, 1), test_route(16, 4, 4, 2, 1), test_route(64, 6, 8, 3, 0);
    test_silu(1000000);
    n_fail += dev_fast();
    for (int i = 1; i < argc; i++) {
        size_t len = strlen(argv[i]);
        int synthetic = len > 5 && strcmp(argv[i] + len - 5, ".json") == 0;
        printf("backend    model %s\n", argv[i]);
        if (!synthetic) n_fail += dev_backend(argv[i]);
        n_fail += dev_fast_backend(argv[i]);
    }
    printf("dev_kernels: %s\n", n_fail ? "FAILED" : "all passed");
    return n_fail ? 1 : 0;
}
