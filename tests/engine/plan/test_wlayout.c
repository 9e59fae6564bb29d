/* Tests of engine/plan/wlayout: arena placement (aligned, in order, nothing overlapping), staging
 * fills that rebuild the arena exactly whatever the buffer size, the fit check's message, and
 * the step scratch layout of real and fixture shapes (every array present, disjoint, aligned). */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "engine/plan/wlayout.h"
#include "tests/check_run.h"

static uint64_t rng = 0x853c49e6748fea9bull;

static uint32_t next_u32(void)
{
    rng ^= rng << 13, rng ^= rng >> 7, rng ^= rng << 17;
    return (uint32_t)(rng >> 11);
}

START_TEST(placement)
{
    struct wl_plan p = {0};
    ck_assert_uint_eq(wl_add(&p, "abc", 3), 0);
    ck_assert_uint_eq(wl_add(&p, "x", 0), 3); /* nothing placed */
    ck_assert_uint_eq(wl_add(&p, "defg", 4), 256);
    ck_assert_uint_eq(wl_add(&p, NULL, 256), 512);
    ck_assert_uint_eq(wl_add(&p, "h", 1), 768);
    ck_assert_int_eq(p.n, 4);
    ck_assert_uint_eq(p.total, 769);
    wl_free(&p);
}
END_TEST

/* Random tensors staged through buffers of several sizes equal a direct copy; the count of
 * finished jobs never goes back and ends at all of them. */
START_TEST(staging_rebuilds_the_arena)
{
    enum { N = 200 };
    struct wl_plan p = {0};
    unsigned char *src[N];
    for (int i = 0; i < N; i++) {
        uint64_t n = 1 + next_u32() % 3000;
        src[i] = malloc(n);
        for (uint64_t j = 0; j < n; j++) src[i][j] = (unsigned char)next_u32();
        wl_add(&p, src[i], n);
    }
    unsigned char *want = calloc(1, p.total);
    for (int i = 0; i < p.n; i++) memcpy(want + p.jobs[i].off, p.jobs[i].src, p.jobs[i].bytes);
    const uint64_t sizes[] = {1, 255, 256, 4096, 65536, 1 << 20};
    for (size_t s = 0; s < sizeof sizes / sizeof sizes[0]; s++) {
        unsigned char *got = calloc(1, p.total), *buf = malloc(sizes[s]);
        int done = 0;
        for (uint64_t lo = 0; lo < p.total; lo += sizes[s]) {
            uint64_t n = p.total - lo < sizes[s] ? p.total - lo : sizes[s];
            memset(buf, 0, n); /* gaps are the buffer's old bytes; zero here to compare */
            int d = wl_fill(&p, lo, n, buf);
            ck_assert_int_ge(d, done);
            done = d;
            memcpy(got + lo, buf, n);
        }
        ck_assert_int_eq(done, p.n);
        ck_assert(memcmp(got, want, p.total) == 0);
        free(got);
        free(buf);
    }
    free(want);
    for (int i = 0; i < N; i++) free(src[i]);
    wl_free(&p);
}
END_TEST

/* Content a function computes: byte i of the job is (i * 7) mod 251, at any cut. */
static void sevens(const void *ctx, uint64_t at, uint64_t n, void *dst)
{
    (void)ctx;
    for (uint64_t i = at; i < at + n; i++) ((unsigned char *)dst)[i - at] = (unsigned char)(i * 7 % 251);
}

START_TEST(computed_jobs)
{
    struct wl_plan p = {0};
    wl_add(&p, "abc", 3);
    uint64_t off = wl_add_fn(&p, 5000, sevens, NULL);
    wl_add(&p, "z", 1);
    ck_assert_uint_eq(off, 256);
    unsigned char *got = calloc(1, p.total), buf[333];
    for (uint64_t lo = 0; lo < p.total; lo += sizeof buf) {
        uint64_t n = p.total - lo < sizeof buf ? p.total - lo : sizeof buf;
        wl_fill(&p, lo, n, buf);
        memcpy(got + lo, buf, n);
    }
    ck_assert(memcmp(got, "abc", 3) == 0);
    for (uint64_t i = 0; i < 5000; i++) ck_assert_int_eq(got[off + i], i * 7 % 251);
    ck_assert_int_eq(got[p.total - 1], 'z');
    free(got);
    wl_free(&p);
}
END_TEST

START_TEST(fit_check)
{
    struct err e = {0};
    uint64_t G = 1ull << 30;
    ck_assert_int_eq(wl_check_fit("device 0 (H)", 100 * G, 90 * G, G, 1 << 20, &e), 0);
    ck_assert_int_eq(wl_check_fit("device 0 (NVIDIA H200)", 139 * G, 674 * G, 2 * G, 4718592, &e), -1);
    ck_assert_msg(strstr(e.msg, "device 0 (NVIDIA H200): 139.00 GiB free") != NULL, "%s", e.msg);
    ck_assert_msg(strstr(e.msg, "weights need 674.00 GiB") != NULL, "%s", e.msg);
    ck_assert_msg(strstr(e.msg, "one KV block 4.50 MiB") != NULL, "%s", e.msg);
    ck_assert_msg(strstr(e.msg, "676.00 GiB in all") != NULL, "%s", e.msg);
    /* exactly full fits; one byte short does not */
    ck_assert_int_eq(wl_check_fit("d", 100, 60, 30, 10, &e), 0);
    ck_assert_int_eq(wl_check_fit("d", 99, 60, 30, 10, &e), -1);
}
END_TEST

/* Every array of the layout, with the bytes it must hold at least. */
static void check_scratch(const struct model_config *c, int T, int L)
{
    struct wl_scratch s;
    wl_scratch_plan(c, T, L, &s);
    size_t D = (size_t)c->hidden_size, H = (size_t)c->n_heads, k = (size_t)c->n_experts_per_tok;
    size_t E = (size_t)c->n_routed_experts, F = (size_t)c->moe_intermediate_size;
    size_t I = (size_t)c->intermediate_size > (size_t)c->n_shared_experts * F
                   ? (size_t)c->intermediate_size : (size_t)c->n_shared_experts * F;
    struct { size_t off, need; } a[] = {
        {s.h, T * D * 4}, {s.xn, T * D * 4}, {s.out, T * D * 4},
        {s.cq, (size_t)T * c->q_lora_rank * 4}, {s.q, T * H * (size_t)config_qk_head_dim(c) * 4},
        {s.kva, (size_t)T * config_kv_width(c) * 4}, {s.qlat, T * H * c->kv_lora_rank * 4},
        {s.ctx, T * H * c->kv_lora_rank * 4}, {s.attn, T * H * c->v_head_dim * 4},
        {s.ff_a, T * I * 4}, {s.ff_b, T * I * 4}, {s.ysh, T * D * 4}, {s.router, T * E * 4},
        {s.bias, E * 4}, {s.sel, T * k * 4}, {s.selw, T * k * 4},
        {s.route_tmp, T * (3 * E + c->n_group) * 4}, {s.route_taken, T * E},
        {s.xg, T * k * D * 4}, {s.yg, T * k * D * 4}, {s.ga, T * k * F * 4},
        {s.gb, T * k * F * 4}, {s.hl, L * D * 4}, {s.logits, (size_t)L * c->vocab_size * 4}};
    size_t n = sizeof a / sizeof a[0];
    for (size_t i = 0; i < n; i++) {
        ck_assert_uint_eq(a[i].off % WL_ALIGN, 0);
        size_t end = i + 1 < n ? a[i + 1].off : s.bytes;
        ck_assert_msg(end >= a[i].off + a[i].need, "array %zu: %zu bytes for %zu", i,
                      end - a[i].off, a[i].need);
    }
}

START_TEST(scratch_layouts)
{
    struct model_config v3 = {.vocab_size = 129280, .hidden_size = 7168, .n_heads = 128,
                              .q_lora_rank = 1536, .kv_lora_rank = 512, .qk_nope_head_dim = 128,
                              .qk_rope_head_dim = 64, .v_head_dim = 128, .intermediate_size = 18432,
                              .n_routed_experts = 256, .n_shared_experts = 1,
                              .moe_intermediate_size = 2048, .n_experts_per_tok = 8, .n_group = 8};
    check_scratch(&v3, 512, 256);
    check_scratch(&v3, 1, 1);
    struct model_config lite = {.vocab_size = 4096, .hidden_size = 64, .n_heads = 4,
                                .kv_lora_rank = 96, .qk_nope_head_dim = 32, .qk_rope_head_dim = 16,
                                .v_head_dim = 32, .intermediate_size = 112, .n_routed_experts = 16,
                                .n_shared_experts = 2, .moe_intermediate_size = 24,
                                .n_experts_per_tok = 6, .n_group = 1};
    check_scratch(&lite, 37, 37);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("wlayout");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, placement);
    tcase_add_test(tc, staging_rebuilds_the_arena);
    tcase_add_test(tc, computed_jobs);
    tcase_add_test(tc, fit_check);
    tcase_add_test(tc, scratch_layouts);
    suite_add_tcase(s, tc);
    return check_run(s, 0);
}
