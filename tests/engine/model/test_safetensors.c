/* Tests of engine/safetensors: valid files and shards load; every kind of broken file is
 * refused with a message naming the file and the tensor, without reading out of bounds. */
#include <check.h>
#include <string.h>

#include "engine/model/safetensors.h"
#include "tests/engine/ckpt_writer.h"
#include "tests/check_run.h"

static char *dir;

static void setup(void)
{
    dir = ck_tmpdir();
}

static void teardown(void)
{
    ck_rmdir(dir);
}

/* Opens dir/model.safetensors via st_open_dir; returns its result, message in e. */
static int open_single(struct err *e)
{
    struct st_set s;
    int rc = st_open_dir(&s, dir, e);
    st_close(&s);
    return rc;
}

/* Writes a one-file checkpoint with the given header and data, expects failure mentioning
 * every given fragment. */
static void expect_fail(const char *header, long hlen, const void *data, size_t n,
                        const char *frag1, const char *frag2)
{
    struct err e = {0};
    ck_raw(dir, "model.safetensors", header, hlen, data, n);
    ck_assert_int_eq(open_single(&e), -1);
    ck_assert_msg(strstr(e.msg, "model.safetensors"), "no file name in: %s", e.msg);
    ck_assert_msg(strstr(e.msg, frag1), "'%s' not in: %s", frag1, e.msg);
    if (frag2) ck_assert_msg(strstr(e.msg, frag2), "'%s' not in: %s", frag2, e.msg);
}

static const float four[4] = {1, 2, 3, 4};

START_TEST(valid_file)
{
    struct err e = {0};
    struct st_set s;
    ck_raw(dir, "model.safetensors",
           "{\"__metadata__\":{\"format\":\"pt\"},\"b\":{\"dtype\":\"F32\",\"shape\":[2],"
           "\"data_offsets\":[8,16]},\"a\":{\"dtype\":\"BF16\",\"shape\":[2,2],\"data_offsets\":[0,8]}}",
           -1, four, 16);
    ck_assert_int_eq(st_open_dir(&s, dir, &e), 0);
    ck_assert_int_eq(s.n_tensors, 2);
    struct st_tensor *b = st_find(&s, "b");
    ck_assert_ptr_nonnull(b);
    ck_assert_int_eq(b->dtype, DT_F32);
    float v;
    memcpy(&v, (const char *)b->data + 4, sizeof v);
    ck_assert_float_eq(v, 4.0f);
    struct st_tensor *a = st_find(&s, "a");
    ck_assert_int_eq(a->n_dims, 2);
    ck_assert_int_eq(a->shape[1], 2);
    ck_assert_ptr_null(st_find(&s, "c"));
    st_close(&s);
}
END_TEST

START_TEST(too_short)
{
    struct err e = {0};
    ck_write(dir, "model.safetensors", "abc", 3);
    ck_assert_int_eq(open_single(&e), -1);
    ck_assert_ptr_nonnull(strstr(e.msg, "too short"));
}
END_TEST

START_TEST(header_length_past_end)
{
    expect_fail("{}", 1000000, NULL, 0, "header length 1000000", "past the end");
}
END_TEST

START_TEST(header_length_absurd)
{
    expect_fail("{}", 0x7fffffffffffffffL, NULL, 0, "header length", "over the format's limit");
}
END_TEST

START_TEST(header_not_json)
{
    expect_fail("{\"a\": [1, 2", -1, NULL, 0, "not valid JSON", NULL);
}
END_TEST

START_TEST(header_not_object)
{
    expect_fail("[1, 2, 3]", -1, NULL, 0, "not a JSON object", NULL);
}
END_TEST

START_TEST(duplicate_key)
{
    expect_fail("{\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
                "\"a\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}",
                -1, four, 8, "not valid JSON", "duplicate");
}
END_TEST

START_TEST(truncated_data)
{
    expect_fail("{\"w\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]}}", -1, four, 12,
                "\"w\"", "past the end");
}
END_TEST

START_TEST(unknown_dtype)
{
    expect_fail("{\"w\":{\"dtype\":\"I64\",\"shape\":[2],\"data_offsets\":[0,16]}}", -1, four, 16,
                "\"w\"", "unsupported dtype \"I64\"");
}
END_TEST

START_TEST(size_mismatch)
{
    expect_fail("{\"w\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,16]}}", -1, four, 16,
                "\"w\"", "16 bytes of data for 3 elements");
}
END_TEST

START_TEST(negative_shape)
{
    expect_fail("{\"w\":{\"dtype\":\"F32\",\"shape\":[-4],\"data_offsets\":[0,16]}}", -1, four, 16,
                "\"w\"", "shape[0]");
}
END_TEST

START_TEST(huge_shape)
{
    expect_fail("{\"w\":{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296],\"data_offsets\":[0,16]}}",
                -1, four, 16, "\"w\"", "absurdly large");
}
END_TEST

START_TEST(reversed_offsets)
{
    expect_fail("{\"w\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[8,4]}}", -1, four, 16,
                "\"w\"", "reversed");
}
END_TEST

START_TEST(bad_offsets_form)
{
    expect_fail("{\"w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0]}}", -1, four, 16,
                "\"w\"", "data_offsets");
}
END_TEST

START_TEST(overlap)
{
    expect_fail("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
                "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[4,12]}}",
                -1, four, 16, "overlap", "\"b\"");
}
END_TEST

/* Headers need not be padded: unaligned data still loads and reads correctly. */
START_TEST(misaligned)
{
    struct err e = {0};
    struct st_set s;
    float v = 0;
    ck_raw(dir, "model.safetensors",
           "{\"w\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[1,13]}}", -1,
           four, 16);
    ck_assert_msg(st_open_dir(&s, dir, &e) == 0, "%s", e.msg);
    const struct st_tensor *t = st_find(&s, "w");
    memcpy(&v, (const char *)t->data + 4, sizeof v);
    float want;
    memcpy(&want, (const char *)four + 5, sizeof want);
    ck_assert_float_eq(v, want);
    st_close(&s);
}
END_TEST

START_TEST(missing_everything)
{
    struct err e = {0};
    ck_assert_int_eq(open_single(&e), -1);
    ck_assert_ptr_nonnull(strstr(e.msg, "no model.safetensors"));
}
END_TEST

static void write_shard(const char *name, const char *tensor)
{
    char h[256];
    snprintf(h, sizeof h, "{\"%s\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]}}", tensor);
    ck_raw(dir, name, h, -1, four, 16);
}

static void write_index(const char *map)
{
    char buf[1024];
    int n = snprintf(buf, sizeof buf, "{\"metadata\":{\"total_size\":32},\"weight_map\":{%s}}", map);
    ck_write(dir, "model.safetensors.index.json", buf, (size_t)n);
}

START_TEST(sharded_ok)
{
    struct err e = {0};
    struct st_set s;
    write_shard("model-00001-of-00002.safetensors", "x");
    write_shard("model-00002-of-00002.safetensors", "y");
    write_index("\"x\":\"model-00001-of-00002.safetensors\",\"y\":\"model-00002-of-00002.safetensors\"");
    ck_assert_msg(st_open_dir(&s, dir, &e) == 0, "%s", e.msg);
    ck_assert_int_eq(s.n_files, 2);
    ck_assert_ptr_nonnull(st_find(&s, "x"));
    ck_assert_ptr_nonnull(st_find(&s, "y"));
    st_close(&s);
}
END_TEST

static void count_read(void *arg, uint64_t done, uint64_t total)
{
    ((uint64_t *)arg)[0] = done, ((uint64_t *)arg)[1] = total;
}

/* Moving the files into huge-page memory keeps every tensor at its address with its bytes, the
 * mappings 2 MiB-aligned, and reports the bytes read. */
START_TEST(moved_to_huge_pages)
{
    struct err e = {0};
    struct st_set s;
    write_shard("model-00001-of-00002.safetensors", "x");
    write_shard("model-00002-of-00002.safetensors", "y");
    write_index("\"x\":\"model-00001-of-00002.safetensors\",\"y\":\"model-00002-of-00002.safetensors\"");
    ck_assert_msg(st_open_dir(&s, dir, &e) == 0, "%s", e.msg);
    const void *px = st_find(&s, "x")->data, *py = st_find(&s, "y")->data;
    unsigned char bx[16], by[16];
    memcpy(bx, px, 16), memcpy(by, py, 16);
    uint64_t seen[2] = {0, 0}, total = s.files[0].size + s.files[1].size;
    struct hm_report r = {count_read, seen};
    for (int i = 0; i < s.n_files; i++) ck_assert_int_eq((uintptr_t)s.files[i].map % (2u << 20), 0);
    ck_assert_msg(st_move_to_huge_pages(&s, &r, &e) == 0, "%s", e.msg);
    ck_assert_ptr_eq(st_find(&s, "x")->data, px);
    ck_assert_ptr_eq(st_find(&s, "y")->data, py);
    ck_assert(memcmp(px, bx, 16) == 0 && memcmp(py, by, 16) == 0);
    ck_assert(seen[0] == total && seen[1] == total);
    st_close(&s);
}
END_TEST

static void expect_index_fail(const char *frag1, const char *frag2)
{
    struct err e = {0};
    ck_assert_int_eq(open_single(&e), -1);
    ck_assert_msg(strstr(e.msg, frag1), "'%s' not in: %s", frag1, e.msg);
    if (frag2) ck_assert_msg(strstr(e.msg, frag2), "'%s' not in: %s", frag2, e.msg);
}

START_TEST(sharded_missing_file)
{
    write_shard("model-00001-of-00002.safetensors", "x");
    write_index("\"x\":\"model-00001-of-00002.safetensors\",\"y\":\"model-00002-of-00002.safetensors\"");
    expect_index_fail("model-00002-of-00002.safetensors", "cannot open");
}
END_TEST

START_TEST(sharded_wrong_file)
{
    write_shard("model-00001-of-00002.safetensors", "x");
    write_shard("model-00002-of-00002.safetensors", "y");
    write_index("\"x\":\"model-00002-of-00002.safetensors\",\"y\":\"model-00002-of-00002.safetensors\"");
    expect_index_fail("\"x\" is listed for model-00002-of-00002.safetensors", "not in it");
}
END_TEST

START_TEST(sharded_listed_but_absent)
{
    write_shard("model-00001-of-00002.safetensors", "x");
    write_index("\"x\":\"model-00001-of-00002.safetensors\",\"y\":\"model-00001-of-00002.safetensors\"");
    expect_index_fail("\"y\"", "not in it");
}
END_TEST

START_TEST(sharded_unlisted_tensor)
{
    ck_raw(dir, "model-00001-of-00001.safetensors",
           "{\"x\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
           "\"y\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8,16]}}", -1, four, 16);
    write_index("\"x\":\"model-00001-of-00001.safetensors\"");
    expect_index_fail("\"y\"", "not in the index");
}
END_TEST

START_TEST(sharded_duplicate_tensor)
{
    write_shard("model-00001-of-00002.safetensors", "x");
    write_shard("model-00002-of-00002.safetensors", "x");
    write_index("\"x\":\"model-00001-of-00002.safetensors\",\"z\":\"model-00002-of-00002.safetensors\"");
    expect_index_fail("\"x\"", "appears in both");
}
END_TEST

START_TEST(sharded_path_escape)
{
    write_index("\"x\":\"../etc/passwd\"");
    expect_index_fail("\"x\"", "bad file name");
}
END_TEST

START_TEST(sharded_bad_index)
{
    ck_write(dir, "model.safetensors.index.json", "{\"weight_map\": 3}", 17);
    expect_index_fail("weight_map", NULL);
}
END_TEST

int main(void)
{
    Suite *s = suite_create("safetensors");
    TCase *tc = tcase_create("core");
    tcase_add_checked_fixture(tc, setup, teardown);
    const TTest *tests[] = {valid_file, too_short, header_length_past_end, header_length_absurd,
                      header_not_json, header_not_object, duplicate_key, truncated_data,
                      unknown_dtype, size_mismatch, negative_shape, huge_shape, reversed_offsets,
                      bad_offsets_form, overlap, misaligned, missing_everything, sharded_ok,
                      sharded_missing_file, sharded_wrong_file, sharded_listed_but_absent, sharded_unlisted_tensor,
                      sharded_duplicate_tensor, sharded_path_escape, sharded_bad_index,
                      moved_to_huge_pages};
    for (size_t i = 0; i < sizeof tests / sizeof tests[0]; i++) tcase_add_test(tc, tests[i]);
    suite_add_tcase(s, tc);
    return check_run(s, 1);
}
