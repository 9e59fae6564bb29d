/* Tests of engine/kv_blocks: accounting, prefix reuse, collisions, LRU eviction, fork. Every test
 * ends with every block free or cached and the invariant check passing. */
#include <check.h>
#include <stdlib.h>

#include "engine/kv_blocks.h"
#include "tests/check_run.h"

/* Asserts the invariants with these tables as the only block holders. */
static void assert_ok(const struct kvb *kv, const struct kvb_table *const *tables, int32_t n)
{
    struct err e = {0};
    int rc = kvb_check(kv, tables, n, &e);
    ck_assert_msg(rc == 0, "kvb_check: %s", e.msg);
}

/* Asserts nothing is in use any more. */
static void assert_all_released(const struct kvb *kv)
{
    struct kvb_stats st;
    kvb_stats(kv, &st);
    ck_assert_int_eq(st.n_used, 0);
    ck_assert_int_eq(st.n_free + st.n_cached, st.n_blocks);
    assert_ok(kv, NULL, 0);
}

static uint64_t hash_constant(uint64_t parent, const int32_t *tokens, int32_t n_tokens)
{
    return 42; /* every block collides */
}

/* Allocates a table for tokens covering all of them, runs "the step" and commits it. */
static int32_t alloc_commit(struct kvb *kv, struct kvb_table *t, const int32_t *tokens, int32_t n)
{
    int32_t n_cached = kvb_allocate(kv, t, tokens, n, n);
    ck_assert_int_ge(n_cached, 0);
    kvb_commit(kv, t, tokens, n);
    return n_cached;
}

START_TEST(test_accounting)
{
    struct kvb *kv = kvb_create(8, 4);
    struct kvb_table a = {0}, b = {0};
    const int32_t toks[10] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10};
    ck_assert_int_eq(kvb_blocks_for(kv, 10), 3);
    ck_assert_int_eq(kvb_allocate(kv, &a, toks, 10, 10), 0);
    ck_assert_int_eq(a.n_ids, 3);
    ck_assert_int_eq(kvb_n_available(kv), 5);
    ck_assert(kvb_can_grow(kv, &a, 12));
    ck_assert_int_eq(kvb_grow(kv, &a, 13), 0);
    ck_assert_int_eq(a.n_ids, 4);
    ck_assert_int_eq(kvb_allocate(kv, &b, toks, 1, 16), 0);
    ck_assert_int_eq(kvb_n_available(kv), 0);
    ck_assert(!kvb_can_grow(kv, &b, 17));
    ck_assert_int_eq(kvb_grow(kv, &b, 17), -1); /* no change on failure */
    ck_assert_int_eq(b.n_ids, 4);
    const struct kvb_table *both[] = {&a, &b};
    assert_ok(kv, both, 2);
    kvb_free(kv, &a);
    kvb_free(kv, &b);
    ck_assert_int_eq(a.n_ids, 0);
    assert_all_released(kv);
    kvb_destroy(kv);
}
END_TEST

START_TEST(test_allocate_refused_when_short)
{
    struct kvb *kv = kvb_create(2, 4);
    struct kvb_table a = {0};
    const int32_t toks[12] = {0};
    ck_assert(!kvb_can_allocate(kv, kvb_lookup(kv, toks, 12), 12));
    ck_assert_int_eq(kvb_allocate(kv, &a, toks, 12, 12), -1);
    ck_assert_int_eq(a.n_ids, 0);
    assert_all_released(kv);
    kvb_destroy(kv);
}
END_TEST

/* With caching off nothing is found or kept: freed blocks go straight back to the free list. */
START_TEST(test_caching_off)
{
    struct kvb *kv = kvb_create(8, 4);
    kvb_set_caching(kv, false);
    struct kvb_table a = {0}, b = {0};
    const int32_t p[9] = {1, 2, 3, 4, 5, 6, 7, 8, 9};
    ck_assert_int_eq(alloc_commit(kv, &a, p, 9), 0);
    ck_assert_int_eq(a.n_hashed, 0);
    ck_assert_int_eq(kvb_lookup(kv, p, 9).n_blocks, 0);
    ck_assert_int_eq(kvb_allocate(kv, &b, p, 9, 9), 0);
    ck_assert_int_ne(b.ids[0], a.ids[0]);
    kvb_free(kv, &a);
    kvb_free(kv, &b);
    struct kvb_stats st;
    kvb_stats(kv, &st);
    ck_assert_int_eq(st.n_free, 8);
    ck_assert_int_eq(st.n_cached, 0);
    kvb_destroy(kv);
}
END_TEST

START_TEST(test_prefix_reuse)
{
    struct kvb *kv = kvb_create(16, 4);
    struct kvb_table a = {0}, b = {0}, c = {0}, d = {0};
    const int32_t p[13] = {1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13};
    ck_assert_int_eq(alloc_commit(kv, &a, p, 12), 0);
    ck_assert_int_eq(a.n_hashed, 3);
    /* live sharing: the same 12 tokens reuse 2 blocks, never all 3 (the last token is computed) */
    ck_assert_int_eq(kvb_lookup(kv, p, 12).n_blocks, 2);
    ck_assert_int_eq(kvb_lookup(kv, p, 12).n_idle, 0);
    ck_assert_int_eq(kvb_allocate(kv, &b, p, 12, 12), 8);
    ck_assert_int_eq(b.ids[0], a.ids[0]);
    ck_assert_int_eq(b.ids[1], a.ids[1]);
    ck_assert_int_ne(b.ids[2], a.ids[2]);
    const struct kvb_table *ab[] = {&a, &b};
    assert_ok(kv, ab, 2);
    kvb_free(kv, &a);
    kvb_free(kv, &b);
    /* from the cache after both left: 13 tokens take all 3 full blocks */
    struct kvb_hit hit = kvb_lookup(kv, p, 13);
    ck_assert_int_eq(hit.n_blocks, 3);
    ck_assert_int_eq(hit.n_idle, 3);
    ck_assert_int_eq(kvb_allocate(kv, &c, p, 13, 13), 12);
    /* a different second block stops the match after the first */
    const int32_t q[9] = {1, 2, 3, 4, 5, 6, 7, 99, 1};
    ck_assert_int_eq(kvb_allocate(kv, &d, q, 9, 9), 4);
    const struct kvb_table *cd[] = {&c, &d};
    assert_ok(kv, cd, 2);
    kvb_free(kv, &c);
    kvb_free(kv, &d);
    assert_all_released(kv);
    kvb_destroy(kv);
}
END_TEST

START_TEST(test_commit_dedups_twins)
{
    struct kvb *kv = kvb_create(8, 4);
    struct kvb_table a = {0}, b = {0};
    const int32_t p[9] = {1, 2, 3, 4, 5, 6, 7, 8, 9};
    /* both allocated before either committed: two copies of the same content */
    ck_assert_int_eq(kvb_allocate(kv, &a, p, 9, 9), 0);
    ck_assert_int_eq(kvb_allocate(kv, &b, p, 9, 9), 0);
    kvb_commit(kv, &a, p, 9);
    kvb_commit(kv, &b, p, 9);
    const struct kvb_table *ab[] = {&a, &b};
    assert_ok(kv, ab, 2);
    kvb_free(kv, &a);
    kvb_free(kv, &b);
    struct kvb_stats st;
    kvb_stats(kv, &st);
    ck_assert_int_eq(st.n_cached, 2); /* one copy of each full block kept */
    ck_assert_int_eq(kvb_lookup(kv, p, 9).n_blocks, 2);
    assert_all_released(kv);
    kvb_destroy(kv);
}
END_TEST

START_TEST(test_collisions_checked)
{
    struct kvb *kv = kvb_create(16, 2);
    kvb_set_hash(kv, hash_constant);
    struct kvb_table a = {0}, b = {0}, c = {0};
    const int32_t p[5] = {1, 2, 3, 4, 0};
    const int32_t q[5] = {5, 6, 3, 4, 0}; /* same second block, different parent */
    const int32_t r[5] = {1, 2, 7, 8, 0};
    alloc_commit(kv, &a, p, 4);
    alloc_commit(kv, &b, q, 4);
    alloc_commit(kv, &c, r, 4);
    kvb_free(kv, &a);
    kvb_free(kv, &b);
    kvb_free(kv, &c);
    ck_assert_int_eq(kvb_lookup(kv, p, 5).n_blocks, 2);
    ck_assert_int_eq(kvb_lookup(kv, q, 5).n_blocks, 2);
    ck_assert_int_eq(kvb_lookup(kv, r, 5).n_blocks, 2);
    const int32_t s[5] = {5, 6, 7, 8, 0}; /* every block seen, never in this order */
    ck_assert_int_eq(kvb_lookup(kv, s, 5).n_blocks, 1);
    const int32_t t[5] = {2, 1, 3, 4, 0};
    ck_assert_int_eq(kvb_lookup(kv, t, 5).n_blocks, 0);
    struct kvb_table x = {0};
    ck_assert_int_eq(kvb_allocate(kv, &x, q, 5, 5), 4);
    kvb_free(kv, &x);
    assert_all_released(kv);
    kvb_destroy(kv);
}
END_TEST

/* A parent block evicted and reused for other content must not revive its old children, even
 * when every hash collides. */
START_TEST(test_reused_parent_does_not_match_children)
{
    struct kvb *kv = kvb_create(6, 2);
    kvb_set_hash(kv, hash_constant);
    struct kvb_table t0 = {0}, t1 = {0}, t4 = {0}, t5 = {0};
    const int32_t a[3] = {1, 2, 0}, x[5] = {1, 2, 3, 4, 5}, y[5] = {8, 8, 3, 4, 5};
    const int32_t filler[4] = {50, 51, 52, 53};
    ck_assert_int_eq(kvb_allocate(kv, &t0, a, 3, 3), 0); /* blocks 0, 1 */
    ck_assert_int_eq(kvb_allocate(kv, &t1, x, 5, 5), 0); /* blocks 2, 3, 4 */
    kvb_commit(kv, &t0, a, 2);                           /* block 0 holds [1 2] */
    kvb_commit(kv, &t1, x, 4); /* [1 2] is block 0's twin, [3 4] registered under it */
    ck_assert_int_eq(t1.parent_id, t1.ids[1]);
    kvb_free(kv, &t0);                                        /* 0 cached, 1 free */
    ck_assert_int_eq(kvb_allocate(kv, &t5, filler, 4, 4), 0); /* takes the free blocks */
    ck_assert_int_eq(kvb_allocate(kv, &t4, y, 2, 2), 0);      /* evicts block 0 */
    ck_assert_int_eq(t4.ids[0], 0);
    kvb_commit(kv, &t4, y, 2); /* block 0 now holds [8 8] */
    ck_assert_int_eq(kvb_lookup(kv, y, 5).n_blocks, 1);
    const struct kvb_table *all[] = {&t1, &t4, &t5};
    assert_ok(kv, all, 3);
    kvb_free(kv, &t1);
    kvb_free(kv, &t4);
    kvb_free(kv, &t5);
    ck_assert_int_eq(kvb_lookup(kv, y, 5).n_blocks, 1);
    assert_all_released(kv);
    kvb_destroy(kv);
}
END_TEST

START_TEST(test_lru_eviction_order)
{
    struct kvb *kv = kvb_create(6, 2);
    struct kvb_table a = {0}, b = {0}, t = {0}, f = {0}, g = {0};
    const int32_t p[5] = {1, 2, 3, 4, 0}, q[5] = {5, 6, 7, 8, 0}, z[2] = {9, 9};
    alloc_commit(kv, &a, p, 4); /* blocks 0 1 */
    alloc_commit(kv, &b, q, 4); /* blocks 2 3 */
    kvb_free(kv, &a);           /* tails leave first, so LRU: 1 0 3 2 */
    kvb_free(kv, &b);
    ck_assert_int_eq(kvb_allocate(kv, &t, p, 3, 2), 2); /* touching block 0 ... */
    kvb_free(kv, &t);                                   /* ... makes it newest: 1 3 2 0 */
    ck_assert_int_eq(kvb_allocate(kv, &f, z, 2, 8), 0); /* 2 free blocks, then evicts 1, 3 */
    ck_assert_int_eq(f.ids[0], 4);
    ck_assert_int_eq(f.ids[1], 5);
    ck_assert_int_eq(f.ids[2], 1);
    ck_assert_int_eq(f.ids[3], 3);
    ck_assert_int_eq(kvb_lookup(kv, p, 5).n_blocks, 1);
    ck_assert_int_eq(kvb_lookup(kv, q, 5).n_blocks, 1);
    ck_assert_int_eq(kvb_allocate(kv, &g, z, 2, 2), 0); /* evicts 2, the older head */
    ck_assert_int_eq(g.ids[0], 2);
    ck_assert_int_eq(kvb_lookup(kv, p, 5).n_blocks, 1);
    ck_assert_int_eq(kvb_lookup(kv, q, 5).n_blocks, 0);
    const struct kvb_table *all[] = {&f, &g};
    assert_ok(kv, all, 2);
    kvb_free(kv, &f);
    kvb_free(kv, &g);
    assert_all_released(kv);
    kvb_destroy(kv);
}
END_TEST

START_TEST(test_fork_copy_on_write)
{
    struct kvb *kv = kvb_create(5, 4);
    struct kvb_table a = {0}, b = {0}, c = {0}, d = {0};
    int32_t p[10];
    for (int i = 0; i < 10; i++) p[i] = 100 + i;
    alloc_commit(kv, &a, p, 10); /* 2 full blocks and a partial one */
    struct kvb_copy cp = {-1, -1};
    ck_assert_int_eq(kvb_fork(kv, &a, 10, &b, &cp), 1);
    ck_assert_int_eq(b.n_ids, 3);
    ck_assert_int_eq(b.ids[0], a.ids[0]);
    ck_assert_int_eq(b.ids[1], a.ids[1]);
    ck_assert_int_eq(cp.src, a.ids[2]);
    ck_assert_int_eq(cp.dst, b.ids[2]);
    ck_assert_int_ne(cp.dst, cp.src);
    ck_assert_int_eq(b.n_hashed, 2);
    ck_assert_int_eq(kvb_fork(kv, &a, 8, &c, &cp), 0); /* block-aligned: nothing to copy */
    ck_assert_int_eq(c.n_ids, 2);
    const struct kvb_table *abc[] = {&a, &b, &c};
    assert_ok(kv, abc, 3);
    ck_assert_int_eq(kvb_grow(kv, &c, 12), 0);           /* the last free block */
    ck_assert_int_eq(kvb_fork(kv, &a, 10, &d, &cp), -1); /* none left for the copy */
    ck_assert_int_eq(d.n_ids, 0);
    kvb_free(kv, &a);
    const struct kvb_table *bc[] = {&b, &c};
    assert_ok(kv, bc, 2);
    kvb_free(kv, &b);
    kvb_free(kv, &c);
    assert_all_released(kv);
    kvb_destroy(kv);
}
END_TEST

START_TEST(test_blocks_in_budget)
{
    /* 61 layers of 576-element bf16 latents, 64 tokens a block: 4.5 MB per block */
    int64_t per_block = 64LL * 61 * 576 * 2;
    ck_assert_int_eq(kvb_blocks_in_budget(10 * per_block + 5, 64, 61, 576, 2), 10);
    ck_assert_int_eq(kvb_blocks_in_budget(per_block - 1, 64, 61, 576, 2), 0);
    ck_assert_int_eq(kvb_blocks_in_budget(1000, 64, 0, 576, 2), 0);
}
END_TEST

int main(void)
{
    Suite *su = suite_create("kv_blocks");
    TCase *tc = tcase_create("core");
    tcase_add_test(tc, test_accounting);
    tcase_add_test(tc, test_allocate_refused_when_short);
    tcase_add_test(tc, test_prefix_reuse);
    tcase_add_test(tc, test_caching_off);
    tcase_add_test(tc, test_commit_dedups_twins);
    tcase_add_test(tc, test_collisions_checked);
    tcase_add_test(tc, test_reused_parent_does_not_match_children);
    tcase_add_test(tc, test_lru_eviction_order);
    tcase_add_test(tc, test_fork_copy_on_write);
    tcase_add_test(tc, test_blocks_in_budget);
    suite_add_tcase(su, tc);
    return check_run(su, 0);
}
