/* Tests of engine/model/gguf: valid files and split sets open and read back; every kind of broken
 * file, built byte by byte, is refused with one message naming the file and the key or tensor;
 * a valid file cut at every offset of its first 64 KiB is refused without a wild read (the
 * ASan/UBSan run checks that). */
#include <check.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

#include "engine/model/gguf.h"
#include "tests/check_run.h"
#include "tests/engine/ckpt_writer.h"
#include "tests/engine/gguf_writer.h"

enum { T_F32 = 0, T_Q8_0 = 8, T_Q4_K = 12, T_IQ2_XXS = 16 };

static char *dir;
static char path[4200];

static void setup(void)
{
    dir = ck_tmpdir();
    snprintf(path, sizeof path, "%s/m.gguf", dir);
}

static void teardown(void)
{
    ck_rmdir(dir);
}

/* Metadata of every kind, then three tensors (the last of big F32 values) and their data. */
static void valid_file(struct gw *b, uint64_t big)
{
    gw_header(b, 3, 3, 6);
    gw_kv_str(b, "general.architecture", "llama");
    gw_kv_u32(b, "a.count", 7);
    gw_kv_f32(b, "a.eps", 1e-5f);
    gw_kv_bool(b, "a.flag", 1);
    gw_str(b, "a.words"), gw_u32(b, GW_ARR), gw_u32(b, GW_STR), gw_u64(b, 2), gw_str(b, "x"), gw_str(b, "yz");
    int32_t ids[3] = {1, -2, 3};
    gw_str(b, "a.ids"), gw_u32(b, GW_ARR), gw_u32(b, GW_I32), gw_u64(b, 3), gw_bytes(b, ids, sizeof ids);
    gw_tensor(b, "t.f32", 2, (uint64_t[]){4, 2}, T_F32, 0);
    gw_tensor(b, "t.q8", 2, (uint64_t[]){32, 2}, T_Q8_0, 32);
    gw_tensor(b, "t.big", 1, (uint64_t[]){big}, T_F32, 128);
    gw_pad(b, 32);
    for (int i = 0; i < 8; i++) gw_f32(b, (float)i);
    uint8_t q8[68] = {0};
    q8[0] = 0x00, q8[1] = 0x3c; /* d = 1.0 */
    q8[2] = 5;
    gw_bytes(b, q8, sizeof q8);
    gw_pad(b, 32);
    for (uint64_t i = 0; i < big; i++) gw_f32(b, 0.5f);
}

static int open_it(struct err *e)
{
    struct gguf_set g;
    int rc = gguf_open(&g, path, e);
    if (!rc) gguf_close(&g);
    return rc;
}

/* The file fails with the path and each fragment in its one message. */
static void expect_fail(const struct gw *b, const char *frag1, const char *frag2)
{
    struct err e = {0};
    gw_save(b, path);
    ck_assert_int_eq(open_it(&e), -1);
    ck_assert_msg(strstr(e.msg, path), "no file name in: %s", e.msg);
    ck_assert_msg(strstr(e.msg, frag1), "'%s' not in: %s", frag1, e.msg);
    if (frag2) ck_assert_msg(strstr(e.msg, frag2), "'%s' not in: %s", frag2, e.msg);
}

START_TEST(reads_valid_file)
{
    struct gw b = {0};
    valid_file(&b, 8);
    gw_save(&b, path);
    struct gguf_set g;
    struct err e = {0};
    ck_assert_msg(gguf_open(&g, path, &e) == 0, "%s", e.msg);
    ck_assert_int_eq(g.n_kv, 6);
    ck_assert_int_eq(g.n_tensors, 3);
    int64_t v = 0;
    double f = 0;
    int flag = 0;
    char *s = NULL;
    ck_assert_int_eq(gguf_int(&g, "a.count", 0, 10, 1, &v, &e), 0);
    ck_assert_int_eq(v, 7);
    ck_assert_int_eq(gguf_num(&g, "a.eps", 0, 1, 1, &f, &e), 0);
    ck_assert_double_eq_tol(f, 1e-5, 1e-12);
    ck_assert_int_eq(gguf_bool(&g, "a.flag", &flag, &e), 0);
    ck_assert_int_eq(flag, 1);
    ck_assert_int_eq(gguf_str(&g, "general.architecture", 1, &s, &e), 0);
    ck_assert_str_eq(s, "llama");
    free(s);
    const struct gguf_kv *words, *ids;
    ck_assert_int_eq(gguf_array(&g, "a.words", GGUF_STR, 2, 1, &words, &e), 0);
    ck_assert_int_eq(words->str_len[1], 2);
    ck_assert(!memcmp(words->strs[1], "yz", 2));
    ck_assert_int_eq(gguf_array(&g, "a.ids", GGUF_I32, 3, 1, &ids, &e), 0);
    ck_assert_int_eq(gguf_arr_int(ids, 1), -2);
    /* typed reads name the key on a mismatch */
    ck_assert_int_eq(gguf_int(&g, "a.count", 8, 10, 1, &v, &e), -1);
    ck_assert_ptr_nonnull(strstr(e.msg, "'a.count' is 7"));
    ck_assert_int_eq(gguf_int(&g, "a.eps", 0, 1, 1, &v, &e), -1);
    ck_assert_ptr_nonnull(strstr(e.msg, "'a.eps' is a f32"));
    ck_assert_int_eq(gguf_int(&g, "a.nothing", 0, 1, 1, &v, &e), -1);
    ck_assert_ptr_nonnull(strstr(e.msg, "missing key 'a.nothing'"));
    ck_assert_int_eq(gguf_array(&g, "a.ids", GGUF_I32, 4, 1, &ids, &e), -1);
    const struct gguf_tensor *t = gguf_tensor(&g, "t.q8");
    ck_assert_ptr_nonnull(t);
    ck_assert_int_eq(t->dtype, DT_Q8_0);
    ck_assert_int_eq(t->nbytes, 68);
    ck_assert_int_eq(((const int8_t *)t->data)[2], 5);
    t = gguf_tensor(&g, "t.f32");
    ck_assert_float_eq(((const float *)t->data)[7], 7.0f);
    ck_assert_ptr_null(gguf_tensor(&g, "t.none"));
    ck_assert_uint_eq(g.n_bytes, 32 + 68 + 32);
    gguf_close(&g);
    gw_free(&b);
}
END_TEST

START_TEST(alignment_key)
{
    struct gw b = {0};
    gw_header(&b, 2, 1, 1);
    gw_kv_u32(&b, "general.alignment", 64);
    gw_tensor(&b, "t", 1, (uint64_t[]){4}, T_F32, 0);
    gw_pad(&b, 64);
    for (int i = 0; i < 4; i++) gw_f32(&b, 1.0f);
    gw_save(&b, path);
    struct gguf_set g;
    struct err e = {0};
    ck_assert_msg(gguf_open(&g, path, &e) == 0, "%s", e.msg);
    ck_assert_uint_eq(((uintptr_t)g.tensors[0].data - (uintptr_t)g.files[0].map) % 64, 0);
    ck_assert_int_eq(g.files[0].version, 2);
    gguf_close(&g);
    gw_free(&b);
}
END_TEST

/* Header, then n_kv pairs written by fn, then no tensors. */
static void kv_file(struct gw *b, uint64_t n_kv, void (*fn)(struct gw *))
{
    gw_header(b, 3, 0, n_kv);
    fn(b);
    for (int i = 0; i < 8; i++) gw_u64(b, 0); /* room: the count check does not fire first */
}

static void kv_dup(struct gw *b) { gw_kv_u32(b, "k", 1), gw_kv_u32(b, "k", 2); }
static void kv_type(struct gw *b) { gw_str(b, "k"), gw_u32(b, 99), gw_u32(b, 0); }
static void kv_nested(struct gw *b) { gw_str(b, "k"), gw_u32(b, GW_ARR), gw_u32(b, GW_ARR), gw_u64(b, 1); }
static void kv_huge_array(struct gw *b) { gw_str(b, "k"), gw_u32(b, GW_ARR), gw_u32(b, GW_U32), gw_u64(b, 1ull << 61); }
static void kv_huge_strings(struct gw *b) { gw_str(b, "k"), gw_u32(b, GW_ARR), gw_u32(b, GW_STR), gw_u64(b, 1ull << 40); }
static void kv_long_key(struct gw *b) { gw_u64(b, 1ull << 40), gw_bytes(b, "k", 1); }
static void kv_empty_key(struct gw *b) { gw_u64(b, 0), gw_u32(b, GW_U32), gw_u32(b, 0); }
static void kv_nul_key(struct gw *b) { gw_u64(b, 2), gw_bytes(b, "k\0", 2), gw_u32(b, GW_U32), gw_u32(b, 0); }
static void kv_long_str(struct gw *b) { gw_str(b, "k"), gw_u32(b, GW_STR), gw_u64(b, 1ull << 50); }
static void kv_bool(struct gw *b) { uint8_t two = 2; gw_str(b, "k"), gw_u32(b, GW_BOOL), gw_bytes(b, &two, 1); }
static void kv_align0(struct gw *b) { gw_kv_u32(b, "general.alignment", 0); }
static void kv_align3(struct gw *b) { gw_kv_u32(b, "general.alignment", 48); }
static void kv_align_type(struct gw *b) { gw_kv_f32(b, "general.alignment", 32.0f); }
static void kv_cut_str(struct gw *b) { gw_str(b, "k"), gw_u32(b, GW_ARR), gw_u32(b, GW_STR), gw_u64(b, 2), gw_str(b, "a"), gw_u64(b, 100), gw_bytes(b, "ab", 2); }

START_TEST(broken_metadata)
{
    static const struct {
        uint64_t n;
        void (*fn)(struct gw *);
        const char *frag1, *frag2;
    } cases[] = {
        {2, kv_dup, "key 'k' appears twice", NULL},
        {1, kv_type, "key 'k'", "unknown value type 99"},
        {1, kv_nested, "key 'k'", "nested arrays"},
        {1, kv_huge_array, "key 'k'", "run past the end"},
        {1, kv_huge_strings, "key 'k'", "strings cannot fit"},
        {1, kv_long_key, "metadata key #0", "bytes long"},
        {1, kv_empty_key, "metadata key #0", "empty"},
        {1, kv_nul_key, "metadata key #0", "NUL"},
        {1, kv_long_str, "key 'k'", "bytes long"},
        {1, kv_bool, "key 'k'", "a bool is 2"},
        {1, kv_align0, "general.alignment", "is 0"},
        {1, kv_align3, "general.alignment", "is 48"},
        {1, kv_align_type, "general.alignment", "u32"},
        {1, kv_cut_str, "key 'k'", "truncated"},
        {1ull << 60, kv_dup, "metadata keys", NULL},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct gw b = {0};
        kv_file(&b, cases[i].n, cases[i].fn);
        expect_fail(&b, cases[i].frag1, cases[i].frag2);
        gw_free(&b);
    }
}
END_TEST

START_TEST(broken_header)
{
    struct gw b = {0};
    gw_bytes(&b, "GGML", 4), gw_u32(&b, 3), gw_u64(&b, 0), gw_u64(&b, 0);
    expect_fail(&b, "not a GGUF file", NULL);
    gw_free(&b);
    gw_header(&b, 1, 0, 0);
    expect_fail(&b, "version 1", NULL);
    gw_free(&b);
    gw_header(&b, 4, 0, 0);
    expect_fail(&b, "version 4", NULL);
    gw_free(&b);
    gw_header(&b, 0x03000000u, 0, 0);
    expect_fail(&b, "big-endian", NULL);
    gw_free(&b);
    gw_bytes(&b, "GGUF", 4);
    expect_fail(&b, "too short", NULL);
    gw_free(&b);
    gw_header(&b, 3, 1ull << 62, 0);
    expect_fail(&b, "tensors, more than the file can hold", NULL);
    gw_free(&b);
}
END_TEST

/* One tensor info (dims, type, offset) and `data` bytes after the padding. */
static void tensor_file(struct gw *b, const char *name, int n_dims, const uint64_t *ne, uint32_t type,
                        uint64_t off, size_t data)
{
    gw_header(b, 3, 1, 0);
    gw_tensor(b, name, n_dims, ne, type, off);
    gw_pad(b, 32);
    for (size_t i = 0; i < data; i++) gw_bytes(b, "\0", 1);
}

START_TEST(broken_tensors)
{
    static const struct {
        int n_dims;
        uint64_t ne[4];
        uint32_t type;
        uint64_t off;
        size_t data;
        const char *frag1, *frag2;
    } cases[] = {
        {0, {1}, T_F32, 0, 4, "tensor 'w'", "0 dimensions"},
        {5, {1, 1, 1, 1}, T_F32, 0, 4, "tensor 'w'", "5 dimensions"},
        {2, {4, 0}, T_F32, 0, 16, "tensor 'w'", "dimension 1 is 0"},
        {1, {1ull << 63}, T_F32, 0, 4, "tensor 'w'", "dimension 0 is -1"},
        {1, {4}, 99, 0, 16, "tensor 'w'", "unknown ggml type 99"},
        {1, {256}, T_IQ2_XXS, 0, 66, "tensor 'w'", "type IQ2_XXS is not supported"},
        {1, {100}, T_Q4_K, 0, 144, "tensor 'w'", "not whole Q4_K blocks of 256"},
        {4, {1ull << 20, 1ull << 20, 1ull << 20, 1ull << 20}, T_F32, 0, 4, "tensor 'w'", "overflows"},
        {2, {1ull << 31, 1ull << 31}, T_F32, 0, 4, "tensor 'w'", "byte size overflows"},
        {1, {4}, T_F32, 8, 32, "tensor 'w'", "not a multiple of the alignment 32"},
        {1, {64}, T_F32, 0, 100, "tensor 'w'", "run past the end"},
        {1, {4}, T_F32, 1ull << 62, 16, "tensor 'w'", "run past the end"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        struct gw b = {0};
        tensor_file(&b, "w", cases[i].n_dims, cases[i].ne, cases[i].type, cases[i].off, cases[i].data);
        expect_fail(&b, cases[i].frag1, cases[i].frag2);
        gw_free(&b);
    }
}
END_TEST

START_TEST(tensor_layout_errors)
{
    struct gw b = {0};
    gw_header(&b, 3, 2, 0); /* two tensors over the same bytes */
    gw_tensor(&b, "a", 1, (uint64_t[]){8}, T_F32, 0);
    gw_tensor(&b, "b", 1, (uint64_t[]){8}, T_F32, 0);
    gw_pad(&b, 32);
    for (int i = 0; i < 8; i++) gw_f32(&b, 0);
    expect_fail(&b, "tensors 'a' and 'b' overlap", NULL);
    gw_free(&b);
    gw_header(&b, 3, 2, 0); /* one name twice */
    gw_tensor(&b, "a", 1, (uint64_t[]){8}, T_F32, 0);
    gw_tensor(&b, "a", 1, (uint64_t[]){8}, T_F32, 32);
    gw_pad(&b, 32);
    for (int i = 0; i < 16; i++) gw_f32(&b, 0);
    expect_fail(&b, "tensor 'a' appears twice", NULL);
    gw_free(&b);
    gw_header(&b, 3, 1, 0); /* a name with a NUL inside */
    gw_u64(&b, 3), gw_bytes(&b, "a\0b", 3), gw_u32(&b, 1), gw_u64(&b, 4), gw_u32(&b, T_F32), gw_u64(&b, 0);
    gw_pad(&b, 32);
    for (int i = 0; i < 4; i++) gw_f32(&b, 0);
    expect_fail(&b, "tensor info #0", "NUL");
    gw_free(&b);
}
END_TEST

/* A valid file cut at every length below 64 KiB: refused every time, naming the file. */
START_TEST(truncated_everywhere)
{
    struct gw b = {0};
    valid_file(&b, 17000); /* 68 KiB: every cut below 64 KiB loses part of it */
    ck_assert(b.n > 65536);
    gw_save(&b, path);
    int fd = open(path, O_RDWR);
    ck_assert_int_ge(fd, 0);
    for (long n = 65535; n >= 0; n--) {
        struct err e = {0};
        ck_assert_int_eq(ftruncate(fd, n), 0);
        ck_assert_msg(open_it(&e) == -1, "a file cut at %ld bytes opened", n);
        ck_assert_msg(strstr(e.msg, path), "cut at %ld: %s", n, e.msg);
    }
    close(fd);
    gw_free(&b);
}
END_TEST

/* Shard i of a split set holding one tensor "t<i>". */
static void shard(int i, int count, int no, int total)
{
    struct gw b = {0};
    char name[64], file[4300];
    gw_header(&b, 3, 1, 3);
    gw_str(&b, "split.no"), gw_u32(&b, GW_U16), gw_bytes(&b, &(uint16_t){(uint16_t)no}, 2);
    gw_str(&b, "split.count"), gw_u32(&b, GW_U16), gw_bytes(&b, &(uint16_t){(uint16_t)count}, 2);
    gw_str(&b, "split.tensors.count"), gw_u32(&b, GW_I32), gw_bytes(&b, &(int32_t){total}, 4);
    snprintf(name, sizeof name, "t%d", i);
    gw_tensor(&b, name, 1, (uint64_t[]){4}, T_F32, 0);
    gw_pad(&b, 32);
    for (int k = 0; k < 4; k++) gw_f32(&b, (float)i);
    snprintf(file, sizeof file, "%s/m-%05d-of-%05d.gguf", dir, i + 1, count);
    gw_save(&b, file);
    gw_free(&b);
}

START_TEST(split_sets)
{
    char first[4300], second[4300];
    snprintf(first, sizeof first, "%s/m-00001-of-00003.gguf", dir);
    snprintf(second, sizeof second, "%s/m-00002-of-00003.gguf", dir);
    for (int i = 0; i < 3; i++) shard(i, 3, i, 3);
    struct gguf_set g;
    struct err e = {0};
    ck_assert_msg(gguf_open(&g, second, &e) == 0, "%s", e.msg); /* any shard names the set */
    ck_assert_int_eq(g.n_files, 3);
    ck_assert_int_eq(g.n_tensors, 3);
    ck_assert_float_eq(((const float *)gguf_tensor(&g, "t2")->data)[0], 2.0f);
    gguf_close(&g);
    shard(1, 3, 2, 3); /* shard 2 says it is shard 3 */
    ck_assert_int_eq(gguf_open(&g, first, &e), -1);
    ck_assert_msg(strstr(e.msg, "-00002-of-00003") && strstr(e.msg, "split.no 2"), "%s", e.msg);
    shard(1, 3, 1, 4); /* the total disagrees */
    ck_assert_int_eq(gguf_open(&g, first, &e), -1);
    ck_assert_msg(strstr(e.msg, "split.tensors.count is 4"), "%s", e.msg);
    snprintf(second, sizeof second, "%s/m-00003-of-00003.gguf", dir);
    unlink(second); /* a shard is missing */
    shard(1, 3, 1, 3);
    ck_assert_int_eq(gguf_open(&g, first, &e), -1);
    ck_assert_msg(strstr(e.msg, "m-00003-of-00003.gguf: cannot open"), "%s", e.msg);
}
END_TEST

static void count_read(void *arg, uint64_t done, uint64_t total)
{
    ((uint64_t *)arg)[0] = done, ((uint64_t *)arg)[1] = total;
}

/* Moving a split set into huge-page memory keeps every tensor and metadata value at its address
 * with its bytes (the quantised blocks as stored), the mappings 2 MiB-aligned, and reports the
 * bytes read of all the shards. */
START_TEST(moved_to_huge_pages)
{
    char first[4300];
    snprintf(first, sizeof first, "%s/m-00001-of-00003.gguf", dir);
    for (int i = 0; i < 3; i++) shard(i, 3, i, 3);
    struct gguf_set g;
    struct err e = {0};
    ck_assert_msg(gguf_open(&g, first, &e) == 0, "%s", e.msg);
    const void *p[3];
    float v[3];
    uint64_t seen[2] = {0, 0}, total = 0;
    for (int i = 0; i < 3; i++) {
        char name[8];
        snprintf(name, sizeof name, "t%d", i);
        p[i] = gguf_tensor(&g, name)->data, v[i] = ((const float *)p[i])[0];
        ck_assert_int_eq((uintptr_t)g.files[i].map % (2u << 20), 0);
        total += g.files[i].size;
    }
    const struct gguf_kv *kv = g.kv;
    const uint8_t *kv_data = kv->data;
    struct hm_report r = {count_read, seen};
    ck_assert_msg(gguf_move_to_huge_pages(&g, &r, &e) == 0, "%s", e.msg);
    for (int i = 0; i < 3; i++) {
        char name[8];
        snprintf(name, sizeof name, "t%d", i);
        ck_assert_ptr_eq(gguf_tensor(&g, name)->data, p[i]);
        ck_assert_float_eq(((const float *)p[i])[0], v[i]);
        ck_assert_float_eq(v[i], (float)i);
    }
    ck_assert_ptr_eq(g.kv->data, kv_data);
    ck_assert(seen[0] == total && seen[1] == total);
    gguf_close(&g);
}
END_TEST

START_TEST(type_names)
{
    ck_assert_str_eq(gguf_ggml_type_name(12), "Q4_K");
    ck_assert_str_eq(gguf_ggml_type_name(30), "BF16");
    ck_assert_ptr_null(gguf_ggml_type_name(4)); /* removed from ggml */
    ck_assert_ptr_null(gguf_ggml_type_name(1000));
    ck_assert(!gguf_is_gguf("/nonexistent"));
}
END_TEST

int main(void)
{
    Suite *s = suite_create("gguf");
    TCase *tc = tcase_create("core");
    tcase_add_checked_fixture(tc, setup, teardown);
    tcase_set_timeout(tc, 300);
    tcase_add_test(tc, reads_valid_file);
    tcase_add_test(tc, alignment_key);
    tcase_add_test(tc, broken_metadata);
    tcase_add_test(tc, broken_header);
    tcase_add_test(tc, broken_tensors);
    tcase_add_test(tc, tensor_layout_errors);
    tcase_add_test(tc, truncated_everywhere);
    tcase_add_test(tc, split_sets);
    tcase_add_test(tc, moved_to_huge_pages);
    tcase_add_test(tc, type_names);
    suite_add_tcase(s, tc);
    return check_run(s, 1);
}
