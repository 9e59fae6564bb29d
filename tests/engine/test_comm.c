/* Tests of the communicators: every collective of engine/comm.h against a reference computed
 * locally, for every reducible dtype, odd sizes, zero-element contributions, and bit-identical
 * results on every rank; the control plane's messages (every rank to every other, large ones in
 * both directions at once).
 *
 * Run plainly, the program checks the one-rank communicator, then starts itself under
 * `mpirun -np 2`, `-np 3` and `-np 4` (real MPI on this machine) and checks every collective
 * over MPI there. */
#include <check.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "engine/comm.h"
#include "engine/comm_mpi.h"
#include "tests/check_run.h"

static struct comm *cm;        /* the communicator under test */
static struct comm_mpi *world; /* NULL: the one-rank communicator */

/* ---- inputs: every rank can compute every rank's input ------------------------------------ */

static uint64_t mix(uint64_t x)
{
    x += 0x9e3779b97f4a7c15ull;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

/* A value in [-1, 1) that depends on (rank, i, salt) only. */
static float value(int rank, size_t i, int salt)
{
    uint64_t h = mix(((uint64_t)rank << 40) ^ ((uint64_t)salt << 56) ^ i);
    return (float)((double)(h >> 11) / (double)(1ull << 53) * 2.0 - 1.0);
}

static void fill(void *buf, enum dtype t, int rank, size_t n, int salt)
{
    for (size_t i = 0; i < n; i++) {
        float v = value(rank, i, salt);
        if (t == DT_F32) ((float *)buf)[i] = v;
        if (t == DT_BF16) ((uint16_t *)buf)[i] = f32_to_bf16(v);
        if (t == DT_F16) ((_Float16 *)buf)[i] = (_Float16)v;
    }
}

static double widen(const void *buf, enum dtype t, size_t i)
{
    if (t == DT_F32) return ((const float *)buf)[i];
    if (t == DT_BF16) return bf16_to_f32(((const uint16_t *)buf)[i]);
    return (double)((const _Float16 *)buf)[i];
}

/* Relative precision of a reduction's partial sums in t. */
static double eps_of(enum dtype t)
{
    return t == DT_F32 ? 0x1p-23 : t == DT_BF16 ? 0x1p-8 : 0x1p-11;
}

static uint8_t byte_of(int src, int dst, size_t i)
{
    return (uint8_t)(mix(((uint64_t)src << 48) ^ ((uint64_t)dst << 32) ^ i) & 0xff);
}

/* ---- helpers -------------------------------------------------------------------------------- */

/* Index of the first byte where got and want differ, or -1 (one assertion per buffer: Check
 * records every passing assertion, which costs a system call). */
static long first_diff(const uint8_t *got, const uint8_t *want, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (got[i] != want[i]) return (long)i;
    return -1;
}

/* Asserts that n bytes of got equal byte_of(src, dst, i) for i < n. */
static void expect_bytes(const uint8_t *got, int src, int dst, size_t n)
{
    uint8_t *want = xmalloc(n + 1);
    for (size_t i = 0; i < n; i++) want[i] = byte_of(src, dst, i);
    long at = first_diff(got, want, n);
    free(want);
    ck_assert_msg(at < 0, "bytes from rank %d to rank %d differ at %ld", src, dst, at);
}

static uint64_t fnv(const void *p, size_t n)
{
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < n; i++) h = (h ^ ((const uint8_t *)p)[i]) * 0x100000001b3ull;
    return h;
}

/* Every rank holds the same n bytes at p (through the exchange). */
static void assert_same_on_every_rank(const void *p, size_t n)
{
    struct err e = {0};
    int64_t mine = (int64_t)fnv(p, n), *all = xmalloc((size_t)cm->size * sizeof *all);
    ck_assert_msg(comm_exchange(cm, &mine, 1, all, &e) == 0, "%s", e.msg);
    for (int r = 0; r < cm->size; r++)
        ck_assert_msg(all[r] == all[0], "rank %d's result differs from rank 0's", r);
    free(all);
}

/* Checks sum[i] against the exact sum of every rank's input i (salt, offset block). */
static void check_sum(const void *sum, enum dtype t, size_t n, int salt, size_t first)
{
    for (size_t i = 0; i < n; i++) {
        double exact = 0, mag = 0;
        for (int r = 0; r < cm->size; r++) {
            float v = value(r, first + i, salt);
            double x = t == DT_F32    ? v
                       : t == DT_BF16 ? bf16_to_f32(f32_to_bf16(v))
                                      : (double)(_Float16)v;
            exact += x;
            mag += fabs(x);
        }
        double got = widen(sum, t, i), tol = (cm->size + 1) * eps_of(t) * mag + 1e-30;
        if (fabs(got - exact) > tol)
            ck_abort_msg("%s element %zu: %g, expected %g (tolerance %g)", dtype_name(t), i, got,
                         exact, tol);
    }
}

static const enum dtype types[] = {DT_F32, DT_BF16, DT_F16};
static const size_t counts[] = {0, 1, 7, 1000, 65537};

/* ---- collectives ---------------------------------------------------------------------------- */

START_TEST(allreduce)
{
    enum dtype t = types[_i];
    struct err e = {0};
    for (size_t k = 0; k < sizeof counts / sizeof counts[0]; k++) {
        size_t n = counts[k];
        void *buf = xmalloc(n * dtype_size(t) + 1);
        fill(buf, t, cm->rank, n, 1);
        ck_assert_msg(comm_allreduce_sum(cm, buf, n, t, NULL, &e) == 0, "%s", e.msg);
        check_sum(buf, t, n, 1, 0);
        assert_same_on_every_rank(buf, n * dtype_size(t));
        free(buf);
    }
}
END_TEST

START_TEST(reduce_scatter)
{
    enum dtype t = types[_i];
    struct err e = {0};
    for (size_t k = 0; k < 4; k++) {
        size_t n = counts[k], sz = dtype_size(t);
        void *in = xmalloc((size_t)cm->size * n * sz + 1), *out = xmalloc(n * sz + 1);
        fill(in, t, cm->rank, (size_t)cm->size * n, 2);
        ck_assert_msg(comm_reduce_scatter_sum(cm, in, out, n, t, NULL, &e) == 0, "%s", e.msg);
        check_sum(out, t, n, 2, (size_t)cm->rank * n);
        free(in);
        free(out);
    }
}
END_TEST

START_TEST(refuses_fp8_sums)
{
    struct err e = {0};
    uint8_t buf[4] = {0};
    uint64_t before = comm_n_ops(cm);
    ck_assert_int_eq(comm_allreduce_sum(cm, buf, 4, DT_F8E4M3, NULL, &e), -1);
    ck_assert_msg(strstr(e.msg, "F8_E4M3"), "%s", e.msg);
    ck_assert_int_eq(comm_reduce_scatter_sum(cm, buf, buf, 1, DT_F8E4M3, NULL, &e), -1);
    ck_assert_uint_eq(comm_n_ops(cm), before); /* refused before any rank waits */
}
END_TEST

START_TEST(allgather)
{
    struct err e = {0};
    static const size_t sizes[] = {0, 1, 13, 4099};
    for (size_t k = 0; k < 4; k++) {
        size_t b = sizes[k];
        uint8_t *in = xmalloc(b + 1), *out = xmalloc((size_t)cm->size * b + 1);
        for (size_t i = 0; i < b; i++) in[i] = byte_of(cm->rank, 0, i);
        ck_assert_msg(comm_allgather(cm, in, out, b, NULL, &e) == 0, "%s", e.msg);
        for (int r = 0; r < cm->size; r++) expect_bytes(out + (size_t)r * b, r, 0, b);
        free(in);
        free(out);
    }
}
END_TEST

/* Rank r contributes (r * 7 + 3) % 11 bytes, and rank 1 none at all. */
static size_t gv_bytes(int r)
{
    return r == 1 ? 0 : (size_t)(r * 7 + 3) % 11 + 1000 * (size_t)(r == 0);
}

START_TEST(allgatherv)
{
    struct err e = {0};
    size_t *bytes = xmalloc((size_t)cm->size * sizeof *bytes);
    for (int r = 0; r < cm->size; r++) bytes[r] = gv_bytes(r);
    size_t total = comm_offset(bytes, cm->size), mine = bytes[cm->rank];
    uint8_t *in = xmalloc(mine + 1), *out = xmalloc(total + 1);
    for (size_t i = 0; i < mine; i++) in[i] = byte_of(cm->rank, 1, i);
    ck_assert_msg(comm_allgatherv(cm, in, out, bytes, NULL, &e) == 0, "%s", e.msg);
    for (int r = 0; r < cm->size; r++) expect_bytes(out + comm_offset(bytes, r), r, 1, bytes[r]);
    free(in);
    free(out);
    free(bytes);
}
END_TEST

START_TEST(alltoall)
{
    struct err e = {0};
    static const size_t sizes[] = {0, 5, 1000};
    for (size_t k = 0; k < 3; k++) {
        size_t b = sizes[k], n = (size_t)cm->size * b;
        uint8_t *in = xmalloc(n + 1), *out = xmalloc(n + 1);
        for (int p = 0; p < cm->size; p++)
            for (size_t i = 0; i < b; i++) in[(size_t)p * b + i] = byte_of(cm->rank, p, i);
        ck_assert_msg(comm_alltoall(cm, in, out, b, NULL, &e) == 0, "%s", e.msg);
        for (int p = 0; p < cm->size; p++) expect_bytes(out + (size_t)p * b, p, cm->rank, b);
        free(in);
        free(out);
    }
}
END_TEST

/* Bytes rank src sends to rank dst: zero for some pairs (src == dst among them when odd). */
static size_t a2a_bytes(int src, int dst)
{
    return (size_t)(src * 3 + dst * 5) % 7 * 37;
}

START_TEST(alltoallv)
{
    struct err e = {0};
    size_t n = (size_t)cm->size, *send = xmalloc(2 * n * sizeof *send), *recv = send + n;
    for (int p = 0; p < cm->size; p++) {
        send[p] = a2a_bytes(cm->rank, p);
        recv[p] = a2a_bytes(p, cm->rank);
    }
    uint8_t *in = xmalloc(comm_offset(send, cm->size) + 1),
            *out = xmalloc(comm_offset(recv, cm->size) + 1);
    for (int p = 0; p < cm->size; p++)
        for (size_t i = 0; i < send[p]; i++) in[comm_offset(send, p) + i] = byte_of(cm->rank, p, i);
    ck_assert_msg(comm_alltoallv(cm, in, send, out, recv, NULL, &e) == 0, "%s", e.msg);
    for (int p = 0; p < cm->size; p++)
        expect_bytes(out + comm_offset(recv, p), p, cm->rank, recv[p]);
    free(in);
    free(out);
    free(send);
}
END_TEST

START_TEST(exchange)
{
    struct err e = {0};
    int64_t mine[3] = {cm->rank, (int64_t)cm->rank << 40, -cm->rank - 1};
    int64_t *all = xmalloc(3 * (size_t)cm->size * sizeof *all);
    ck_assert_msg(comm_exchange(cm, mine, 3, all, &e) == 0, "%s", e.msg);
    for (int r = 0; r < cm->size; r++) {
        ck_assert_int_eq(all[3 * r], r);
        ck_assert_int_eq(all[3 * r + 1], (int64_t)r << 40);
        ck_assert_int_eq(all[3 * r + 2], -r - 1);
    }
    free(all);
}
END_TEST

START_TEST(broadcast)
{
    struct err e = {0};
    int root = cm->size - 1;
    uint8_t buf[1000];
    for (size_t i = 0; i < sizeof buf; i++) buf[i] = byte_of(cm->rank, 2, i);
    ck_assert_msg(comm_broadcast(cm, buf, sizeof buf, root, &e) == 0, "%s", e.msg);
    expect_bytes(buf, root, 2, sizeof buf);
    ck_assert_msg(comm_broadcast(cm, buf, 0, 0, &e) == 0, "%s", e.msg);
    ck_assert_int_eq(comm_broadcast(cm, buf, 1, cm->size, &e), -1);
    ck_assert_msg(strstr(e.msg, "not a rank"), "%s", e.msg);
    ck_assert_msg(comm_sync(cm, NULL, &e) == 0, "%s", e.msg);
}
END_TEST

/* The waiting form: the root arrives 20 ms after the others, which poll and nap meanwhile. */
START_TEST(broadcast_wait)
{
    struct err e = {0};
    uint8_t buf[1000];
    for (int root = 0; root < cm->size; root++) {
        for (size_t i = 0; i < sizeof buf; i++) buf[i] = byte_of(cm->rank, 3, i);
        if (cm->rank == root) usleep(20 * 1000);
        ck_assert_msg(comm_broadcast_wait(cm, buf, sizeof buf, root, &e) == 0, "%s", e.msg);
        expect_bytes(buf, root, 3, sizeof buf);
    }
    ck_assert_int_eq(comm_broadcast_wait(cm, buf, 1, -1, &e), -1);
    ck_assert_msg(strstr(e.msg, "not a rank"), "%s", e.msg);
}
END_TEST

/* ---- the control plane (MPI only) ----------------------------------------------------------- */

/* Every rank sends every other rank one small and one 3 MB message, all at once (rendezvous-size
 * sends in both directions must not deadlock), then receives what it is owed. */
START_TEST(control_messages)
{
    struct err e = {0};
    const size_t big = 3u << 20;
    int me = comm_mpi_rank(world), n = comm_mpi_size(world), got = 0;
    for (int p = 0; p < n; p++) {
        if (p == me) continue;
        uint8_t *small = xmalloc(8), *large = xmalloc(big);
        for (size_t i = 0; i < 8; i++) small[i] = byte_of(me, p, i);
        for (size_t i = 0; i < big; i++) large[i] = byte_of(me, p, i);
        ck_assert_msg(comm_mpi_send(world, p, 7, small, 8, &e) == 0, "%s", e.msg);
        ck_assert_msg(comm_mpi_send(world, p, 9, large, big, &e) == 0, "%s", e.msg);
    }
    while (got < 2 * (n - 1)) {
        struct comm_mpi_msg m;
        int rc = comm_mpi_poll(world, &m, &e);
        ck_assert_msg(rc >= 0, "%s", e.msg);
        if (!rc) continue;
        ck_assert(m.tag == 7 || m.tag == 9);
        ck_assert_uint_eq(m.n, m.tag == 7 ? 8 : big);
        expect_bytes(m.data, m.src, me, m.n);
        free(m.data);
        got++;
    }
    ck_assert_msg(comm_mpi_flush(world, 30, &e) == 0, "%s", e.msg);
}
END_TEST

/* ---- running -------------------------------------------------------------------------------- */

static Suite *suite(void)
{
    Suite *s = suite_create(world ? "comm (MPI)" : "comm (one rank)");
    TCase *tc = tcase_create("collectives");
    tcase_set_timeout(tc, 120);
    tcase_add_loop_test(tc, allreduce, 0, 3);
    tcase_add_loop_test(tc, reduce_scatter, 0, 3);
    tcase_add_test(tc, refuses_fp8_sums);
    tcase_add_test(tc, allgather);
    tcase_add_test(tc, allgatherv);
    tcase_add_test(tc, alltoall);
    tcase_add_test(tc, alltoallv);
    tcase_add_test(tc, exchange);
    tcase_add_test(tc, broadcast);
    tcase_add_test(tc, broadcast_wait);
    if (world) tcase_add_test(tc, control_messages);
    suite_add_tcase(s, tc);
    return s;
}

/* This program again under `mpirun -np n`; its exit status. */
static int run_ranks(const char *self, int n)
{
    char np[16];
    snprintf(np, sizeof np, "%d", n);
    setenv("OMPI_ALLOW_RUN_AS_ROOT", "1", 0); /* CI runs as root */
    setenv("OMPI_ALLOW_RUN_AS_ROOT_CONFIRM", "1", 0);
#ifdef __SANITIZE_ADDRESS__
    /* Leaks inside Open MPI are suppressed by module (tests/lsan-mpi.supp), which needs whole
     * stacks: the libraries have no frame pointers. */
    char asan[512];
    snprintf(asan, sizeof asan, "%s:fast_unwind_on_malloc=0",
             getenv("ASAN_OPTIONS") ? getenv("ASAN_OPTIONS") : "");
    setenv("ASAN_OPTIONS", asan, 1);
#endif
    pid_t pid = fork();
    if (pid == 0) {
        execlp("mpirun", "mpirun", "--oversubscribe", "--timeout", "300", "-np", np, self,
               (char *)NULL);
        perror("mpirun");
        _exit(127);
    }
    int status = 0;
    waitpid(pid, &status, 0);
    int ok = WIFEXITED(status) && WEXITSTATUS(status) == 0;
    printf("test_comm: mpirun -np %d: %s\n", n, ok ? "passed" : "FAILED");
    return ok ? 0 : 1;
}

int main(int argc, char **argv)
{
    struct err e = {0};
    if (!comm_mpi_launched()) {
        cm = comm_self();
        int failed = check_run(suite(), 0);
        comm_destroy(cm);
        for (int n = 2; n <= 4; n++) failed |= run_ranks(argv[0], n);
        return failed;
    }
    world = comm_mpi_init(&e);
    if (!world) return fprintf(stderr, "%s\n", e.msg), 1;
    cm = comm_mpi_split(world, 0, comm_mpi_rank(world), &e);
    if (!cm) return fprintf(stderr, "%s\n", e.msg), 1;
    int failed = check_run(suite(), 0);
    comm_destroy(cm);
    comm_mpi_finalize(world);
    return failed;
}
