/* dev_fast_mla: the attention side of the fast numerics on a GPU against the CPU emulation —
 * latent cache rows (k_kv_rows), the absorbed query (k_q_pack + the batched BF16 GEMM), split-KV
 * latent attention (tensor-core and SIMT kernels, decode and prefill, few and many work lists)
 * and the value projection, at V3's shape (128 heads, 512 + 64) and a fixture's (4 heads,
 * 160 + 16). Tolerances in dev_fast.c's header. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cuda/cu_blas.h"
#include "cuda/cu_dev.h"
#include "cuda/kfast.h"
#include "engine/cpu/fast_stages.h"
#include "engine/cpu/numerics.h"
#include "engine/model/rope.h"
#include "engine/plan/fastlayout.h"
#include "engine/plan/mlaplan.h"
#include "tests/cuda/dev_util.h"

static struct cu_blas blas;

static uint16_t *bf16_vec(size_t n, float a)
{
    uint16_t *v = malloc(n * 2);
    for (size_t i = 0; i < n; i++) v[i] = nm_to_bf16(dev_rnd(a));
    return v;
}

static float *bf16_floats(const uint16_t *b, size_t n)
{
    float *f = malloc(n * 4);
    for (size_t i = 0; i < n; i++) f[i] = nm_bf16_value(b[i]);
    return f;
}

static struct rope yarn(int dr)
{
    struct model_config c = {.qk_nope_head_dim = 128, .qk_rope_head_dim = dr, .rope_theta = 10000,
                             .rope_yarn = 1, .rope_factor = 40, .rope_orig_max_pos = 4096,
                             .rope_beta_fast = 32, .rope_beta_slow = 1, .rope_mscale = 1,
                             .rope_mscale_all_dim = 1};
    struct rope r;
    rope_init(&r, &c);
    return r;
}

static void test_kv_rows(int T, int dc, int dr)
{
    int W = dc + dr, np = dr / 2, n_rows = 4 * T;
    struct rope r = yarn(dr);
    float *kva = dev_rvec((size_t)T * W, 2.0f), *w = dev_rvec((size_t)dc, 1.0f);
    float *cs = malloc((size_t)T * np * 4), *sn = malloc((size_t)T * np * 4);
    int32_t *slot = malloc((size_t)T * 4);
    for (int t = 0; t < T; t++) rope_angles(&r, 37 * t + 5, cs + t * np, sn + t * np), slot[t] = (t * 7 + 3) % n_rows;
    float *dk = dev_alloc(kva, (size_t)T * W * 4), *dw = dev_alloc(w, (size_t)dc * 4);
    float *dcs = dev_alloc(cs, (size_t)T * np * 4), *dsn = dev_alloc(sn, (size_t)T * np * 4);
    int32_t *dslot = dev_alloc(slot, (size_t)T * 4);
    uint16_t *cache = dev_alloc(NULL, (size_t)n_rows * W * 2), *rows = dev_alloc(NULL, (size_t)T * W * 2);
    CU_CHECK(k_kv_rows(dk, W, T, dc, dr, dw, 1e-6f, dcs, dsn, dslot, cache, rows, 0));
    uint16_t *got = dev_host(cache, (size_t)n_rows * W * 2), *want = malloc((size_t)T * W * 2);
    struct weight wn = {.name = "n", .dtype = DT_F32, .rows = 1, .cols = dc, .data = w};
    fs_kv_rows(kva, T, &wn, dc, dr, 1e-6f, cs, sn, want);
    double err = 0;
    for (int t = 0; t < T; t++)
        for (int c = 0; c < W; c++) {
            float g = nm_bf16_value(got[(size_t)slot[t] * W + c]), v = nm_bf16_value(want[(size_t)t * W + c]);
            double tol = c < dc ? 0x1p-7 * fabsf(v) : 0, d = fabs((double)g - v);
            double q = d == 0 ? 0 : tol > 0 ? d / tol : INFINITY;
            if (q > err || isnan(g)) err = isnan(g) ? INFINITY : q;
        }
    char shape[64];
    snprintf(shape, sizeof shape, "%d tokens, %d + %d", T, dc, dr);
    dev_report("kv_rows", shape, err);
    free(kva), free(w), free(cs), free(sn), free(slot), free(got), free(want);
    cudaFree(dk), cudaFree(dw), cudaFree(dcs), cudaFree(dsn), cudaFree(dslot), cudaFree(cache), cudaFree(rows);
}

/* A random FP8 kv_b [H (dn + dv)][dc] with its grid; its W_UK / W_UV in BF16 on the device. */
static struct weight kv_b_of(int H, int dn, int dv, int dc, uint16_t **duk, uint16_t **duv)
{
    struct weight w = {.name = "kv_b", .dtype = DT_F8E4M3, .rows = (int64_t)H * (dn + dv), .cols = dc,
                       .block_rows = 128, .block_cols = 128};
    size_t n = (size_t)(w.rows * w.cols), ng = (size_t)((w.rows + 127) / 128 * ((dc + 127) / 128));
    uint8_t *codes = malloc(n);
    float *grid = malloc(ng * 4);
    for (size_t i = 0; i < n; i++) codes[i] = (uint8_t)(dev_rnd32() % 0x7e) | (uint8_t)(dev_rnd32() & 0x80);
    for (size_t i = 0; i < ng; i++) grid[i] = 1e-3f * (1.5f + dev_rnd(1.0f));
    w.data = codes, w.scale = grid;
    struct fl_mla m = {&w, H, dn, dv, dc};
    uint16_t *uk = malloc(fl_uk_bytes(&m)), *uv = malloc(fl_uv_bytes(&m));
    fl_fill_uk(&m, 0, fl_uk_bytes(&m), uk), fl_fill_uv(&m, 0, fl_uv_bytes(&m), uv);
    *duk = dev_alloc(uk, fl_uk_bytes(&m)), *duv = dev_alloc(uv, fl_uv_bytes(&m));
    free(uk), free(uv);
    return w;
}

static void test_qfull_vup(int T, int H, int dn, int dr, int dv, int dc)
{
    int qk = dn + dr, W = dc + dr, np = dr / 2;
    uint16_t *duk, *duv;
    struct weight kvb = kv_b_of(H, dn, dv, dc, &duk, &duv);
    struct fs_mla_w mw;
    fs_mla_weights(&kvb, H, dn, dv, &mw);
    struct rope r = yarn(dr);
    float *q = dev_rvec((size_t)T * H * qk, 2.0f), *cs = malloc((size_t)T * np * 4), *sn = malloc((size_t)T * np * 4);
    for (int t = 0; t < T; t++) rope_angles(&r, 11 * t + 1, cs + t * np, sn + t * np);
    float *dq = dev_alloc(q, (size_t)T * H * qk * 4), *dcs = dev_alloc(cs, (size_t)T * np * 4), *dsn = dev_alloc(sn, (size_t)T * np * 4);
    uint16_t *dnope = dev_alloc(NULL, (size_t)T * H * dn * 2), *dqf = dev_alloc(NULL, (size_t)T * H * W * 2);
    CU_CHECK(k_q_pack(dq, T, H, dn, dr, dc, dcs, dsn, dnope, dqf, 0));
    if (cu_blas_absorb(&blas, dnope, duk, T, H, dn, dc, dr, dqf, 0) != 0) dev_report("absorb", "cuBLAS refused", INFINITY);
    uint16_t *got = dev_host(dqf, (size_t)T * H * W * 2), *want = malloc((size_t)T * H * W * 2);
    float *A = malloc((size_t)T * H * dc * 4);
    struct tp *tp = tp_create(0);
    fs_qfull(tp, q, T, &mw, dr, cs, sn, want);
    fs_qlat_abs(q, T, &mw, dr, A);
    double err = 0;
    for (size_t i = 0; i < (size_t)T * H * W; i++) {
        float g = nm_bf16_value(got[i]), v = nm_bf16_value(want[i]);
        size_t th = i / W, c = i % W;
        double tol = c < (size_t)dc ? 0x1p-14 * A[th * dc + c] + 0x1p-7 * fabsf(v) : 0, d = fabs((double)g - v);
        double e = d == 0 ? 0 : tol > 0 ? d / tol : INFINITY;
        if (e > err || isnan(g)) err = isnan(g) ? INFINITY : e;
    }
    char shape[64];
    snprintf(shape, sizeof shape, "%d tok, H %d, %d->%d + %d", T, H, dn, dc, dr);
    dev_report("q_absorb", shape, err);
    /* the value projection of a random BF16 context */
    uint16_t *ctx = bf16_vec((size_t)T * H * dc, 1.0f), *dctx = dev_alloc(ctx, (size_t)T * H * dc * 2);
    float *dattn = dev_alloc(NULL, (size_t)T * H * dv * 4), *wa = malloc((size_t)T * H * dv * 4), *Aa = malloc((size_t)T * H * dv * 4);
    if (cu_blas_vup(&blas, dctx, duv, T, H, dc, dv, dattn, 0) != 0) dev_report("v_up", "cuBLAS refused", INFINITY);
    float *ga = dev_host(dattn, (size_t)T * H * dv * 4);
    fs_v_up(tp, ctx, T, &mw, wa), fs_v_up_abs(ctx, T, &mw, Aa);
    for (size_t i = 0; i < (size_t)T * H * dv; i++) Aa[i] *= 0x1p-14f;
    dev_report("v_up", shape, dev_worst(ga, wa, Aa, (size_t)T * H * dv));
    tp_destroy(tp), fs_mla_free(&mw);
    free(q), free(cs), free(sn), free(got), free(want), free(A), free(ctx), free(wa), free(Aa), free(ga);
    free((void *)kvb.data), free((void *)kvb.scale);
    cudaFree(duk), cudaFree(duv), cudaFree(dq), cudaFree(dcs), cudaFree(dsn), cudaFree(dnope), cudaFree(dqf);
    cudaFree(dctx), cudaFree(dattn);
}

/* Attention of T query rows of one or several sequences; ctx against fs_attend. */
static void test_mla(int n_seqs, const int *lens, int tokens_per_seq, int H, int dc, int dr, int n_ctas,
                     int generic)
{
    enum { BS = 64 };
    int W = dc + dr, T = n_seqs * tokens_per_seq, n_tab = 0;
    for (int s = 0; s < n_seqs; s++) n_tab += (lens[s] + BS - 1) / BS;
    int n_rows = n_tab * BS;
    uint16_t *cache = bf16_vec((size_t)n_rows * W, 1.0f), *qf = bf16_vec((size_t)T * H * W, 0.2f);
    int32_t *tables = malloc((size_t)n_tab * 4), *toff = malloc((size_t)T * 4), *ctxlen = malloc((size_t)T * 4);
    for (int i = 0; i < n_tab; i++) tables[i] = (i * 7919) % n_tab; /* blocks scattered */
    for (int s = 0, t = 0, off = 0; s < n_seqs; off += (lens[s] + BS - 1) / BS, s++)
        for (int i = 0; i < tokens_per_seq; i++, t++) toff[t] = off, ctxlen[t] = lens[s] - tokens_per_seq + 1 + i;
    struct mla_plan pl = {0};
    mla_build(&pl, ctxlen, T, BS, n_ctas, 1);
    int32_t *d_begin = dev_alloc(mla_arr(&pl, pl.cta_begin), (size_t)(n_ctas + 1) * 4);
    int32_t *d_part = dev_alloc(mla_arr(&pl, pl.part_begin), (size_t)(T + 1) * 4);
    int32_t *d_items = dev_alloc(mla_arr(&pl, pl.items), (size_t)pl.n_items * MLA_ITEM * 4);
    struct kmla p = {.qfull = dev_alloc(qf, (size_t)T * H * W * 2), .cache = dev_alloc(cache, (size_t)n_rows * W * 2),
                     .tables = dev_alloc(tables, (size_t)n_tab * 4), .table_off = dev_alloc(toff, (size_t)T * 4),
                     .cta_begin = d_begin, .items = d_items, .part_begin = d_part,
                     .part_o = dev_alloc(NULL, (size_t)pl.n_items * H * dc * 4),
                     .part_ml = dev_alloc(NULL, (size_t)pl.n_items * H * 2 * 4),
                     .ctx = dev_alloc(NULL, (size_t)T * H * dc * 2), .T = T, .H = H, .dc = dc, .dr = dr,
                     .block_size = BS, .n_ctas = n_ctas, .scale = 0.0721f};
    CU_CHECK(k_mla(&p, generic, 0));
    uint16_t *got = dev_host(p.ctx, (size_t)T * H * dc * 2), *want = malloc((size_t)dc * 2);
    float *bound = malloc((size_t)dc * 4);
    int longest = 1;
    for (int s = 0; s < n_seqs; s++) longest = lens[s] > longest ? lens[s] : longest;
    const uint16_t **rows = malloc((size_t)longest * sizeof *rows);
    double err = 0;
    for (int t = 0; t < T; t++) {
        for (int pos = 0; pos < ctxlen[t]; pos++)
            rows[pos] = cache + ((size_t)tables[toff[t] + pos / BS] * BS + pos % BS) * W;
        for (int h = 0; h < H; h++) {
            fs_attend(qf + ((size_t)t * H + h) * W, rows, ctxlen[t], dc, dr, p.scale, want, bound);
            for (int c = 0; c < dc; c++) {
                float g = nm_bf16_value(got[((size_t)t * H + h) * dc + c]), v = nm_bf16_value(want[c]);
                double tol = 0x1p-7 * bound[c] + 0x1p-7 * fabsf(v), d = fabs((double)g - v);
                double e = d == 0 ? 0 : d / tol;
                if (e > err || isnan(g)) err = isnan(g) ? INFINITY : e;
            }
        }
    }
    char shape[80];
    snprintf(shape, sizeof shape, "%s %dx%d ctx<=%d H%d %d+%d L%d", generic ? "simt" : "tc", n_seqs, tokens_per_seq,
             lens[0], H, dc, dr, n_ctas);
    dev_report("mla", shape, err);
    free(cache), free(qf), free(tables), free(toff), free(ctxlen), free(got), free(want), free(bound), free(rows);
    mla_free(&pl);
    cudaFree((void *)p.qfull), cudaFree((void *)p.cache), cudaFree((void *)p.tables), cudaFree((void *)p.table_off);
    cudaFree(d_begin), cudaFree(d_part), cudaFree(d_items), cudaFree(p.part_o), cudaFree(p.part_ml), cudaFree(p.ctx);
}

void dev_fast_mla(void)
{
    struct err e = {0};
    if (cu_blas_create(&blas, &e) != 0) {
        dev_report("cublas", e.msg, INFINITY);
        return;
    }
    test_kv_rows(7, 512, 64), test_kv_rows(33, 160, 16);
    test_qfull_vup(5, 128, 128, 64, 128, 512), test_qfull_vup(17, 4, 32, 16, 32, 160);
    const int dec[3] = {2500, 700, 1}, pre[1] = {100}, fix[2] = {150, 37};
    for (int generic = 0; generic < 2; generic++) {
        test_mla(3, dec, 1, 128, 512, 64, 264, generic); /* decode, many lists: splits */
        test_mla(3, dec, 1, 128, 512, 64, 2, generic);   /* decode, two lists */
        test_mla(1, pre, 70, 128, 512, 64, 264, generic);/* a prefill chunk behind 30 cached */
    }
    test_mla(2, fix, 5, 4, 160, 16, 7, 0); /* the fixture shape: SIMT (no tensor-core kernel for it) */
    cu_blas_destroy(&blas);
}
