/* dev_comm_nccl: the NCCL communicator on real GPUs, one rank per GPU under mpirun — every
 * collective of engine/comm.h on device buffers against a host reference, for F32/BF16/F16,
 * odd sizes and ranks that contribute nothing; bit-identical all-reduce results on every rank.
 * A plain program (the GPU machine has no Check): prints one line per check and exits non-zero
 * on the first failure. Run by tests/cuda/nccl_check.sh. */
#include <cuda_runtime.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cuda/comm_nccl.h"
#include "engine/comm_mpi.h"

static struct comm *nc; /* the NCCL communicator under test */
static cudaStream_t stream;

#define CHECK(cond, ...)                                                                           \
    do {                                                                                           \
        if (!(cond)) {                                                                             \
            fprintf(stderr, "rank %d: FAILED %s:%d: ", nc ? nc->rank : -1, __FILE__, __LINE__);    \
            fprintf(stderr, __VA_ARGS__);                                                          \
            fprintf(stderr, "\n");                                                                 \
            exit(1);                                                                               \
        }                                                                                          \
    } while (0)

static uint64_t mix(uint64_t x)
{
    x += 0x9e3779b97f4a7c15ull;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

static float value(int rank, size_t i)
{
    return (float)((double)(mix(((uint64_t)rank << 40) ^ i) >> 11) / (double)(1ull << 53) * 2 - 1);
}

static void fill(void *h, enum dtype t, int rank, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        float v = value(rank, i);
        if (t == DT_F32) ((float *)h)[i] = v;
        if (t == DT_BF16) ((uint16_t *)h)[i] = f32_to_bf16(v);
        if (t == DT_F16) ((_Float16 *)h)[i] = (_Float16)v;
    }
}

static double widen(const void *h, enum dtype t, size_t i)
{
    if (t == DT_F32) return ((const float *)h)[i];
    if (t == DT_BF16) return bf16_to_f32(((const uint16_t *)h)[i]);
    return (double)((const _Float16 *)h)[i];
}

static void *to_device(const void *h, size_t bytes)
{
    void *d = NULL;
    CHECK(cudaMalloc(&d, bytes ? bytes : 1) == cudaSuccess, "cudaMalloc %zu", bytes);
    if (bytes) CHECK(cudaMemcpy(d, h, bytes, cudaMemcpyHostToDevice) == cudaSuccess, "copy in");
    return d;
}

static void to_host(void *h, const void *d, size_t bytes)
{
    if (bytes) CHECK(cudaMemcpy(h, d, bytes, cudaMemcpyDeviceToHost) == cudaSuccess, "copy out");
}

static void sync_ok(void)
{
    struct err e = {0};
    CHECK(comm_sync(nc, stream, &e) == 0, "%s", e.msg);
}

static void allreduce(enum dtype t, size_t n)
{
    struct err e = {0};
    size_t sz = dtype_size(t);
    void *h = malloc(n * sz + 1);
    fill(h, t, nc->rank, n);
    void *d = to_device(h, n * sz);
    CHECK(comm_allreduce_sum(nc, d, n, t, stream, &e) == 0, "%s", e.msg);
    sync_ok();
    to_host(h, d, n * sz);
    double eps = t == DT_F32 ? 0x1p-23 : t == DT_BF16 ? 0x1p-8 : 0x1p-11;
    for (size_t i = 0; i < n; i++) {
        double exact = 0, mag = 0;
        for (int r = 0; r < nc->size; r++) {
            float v = value(r, i);
            double x = t == DT_F32    ? v
                       : t == DT_BF16 ? bf16_to_f32(f32_to_bf16(v))
                                      : (double)(_Float16)v;
            exact += x;
            mag += fabs(x);
        }
        CHECK(fabs(widen(h, t, i) - exact) <= (nc->size + 1) * eps * mag + 1e-30,
              "all-reduce %s [%zu]: %g vs %g", dtype_name(t), i, widen(h, t, i), exact);
    }
    uint64_t hash = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < n * sz; i++) hash = (hash ^ ((uint8_t *)h)[i]) * 0x100000001b3ull;
    int64_t mine = (int64_t)hash, *all = calloc((size_t)nc->size, sizeof *all);
    CHECK(comm_exchange(nc, &mine, 1, all, &e) == 0, "%s", e.msg);
    for (int r = 0; r < nc->size; r++) CHECK(all[r] == all[0], "rank %d's sum differs", r);
    printf("rank %d: all-reduce %s n=%zu ok\n", nc->rank, dtype_name(t), n);
    free(all);
    free(h);
    cudaFree(d);
}

static uint8_t byte_of(int src, int dst, size_t i)
{
    return (uint8_t)mix(((uint64_t)src << 48) ^ ((uint64_t)dst << 32) ^ i);
}

/* Rank r contributes (r * 7 + 3) % 11 bytes, rank 1 none. */
static void allgatherv(void)
{
    struct err e = {0};
    size_t *bytes = calloc((size_t)nc->size, sizeof *bytes);
    for (int r = 0; r < nc->size; r++) bytes[r] = r == 1 ? 0 : (size_t)(r * 7 + 3) % 11 + 4096;
    size_t total = comm_offset(bytes, nc->size), mine = bytes[nc->rank];
    uint8_t *h = malloc(total + mine + 1);
    for (size_t i = 0; i < mine; i++) h[i] = byte_of(nc->rank, 1, i);
    void *din = to_device(h, mine), *dout = to_device(h, total);
    CHECK(comm_allgatherv(nc, din, dout, bytes, stream, &e) == 0, "%s", e.msg);
    sync_ok();
    to_host(h, dout, total);
    for (int r = 0; r < nc->size; r++)
        for (size_t i = 0; i < bytes[r]; i++)
            CHECK(h[comm_offset(bytes, r) + i] == byte_of(r, 1, i), "all-gather from %d at %zu", r,
                  i);
    printf("rank %d: all-gather (sizes per rank, one empty) ok\n", nc->rank);
    free(bytes);
    free(h);
    cudaFree(din);
    cudaFree(dout);
}

static size_t a2a_bytes(int src, int dst)
{
    return (size_t)(src * 3 + dst * 5) % 7 * 37;
}

static void alltoallv(void)
{
    struct err e = {0};
    size_t n = (size_t)nc->size, *send = calloc(2 * n, sizeof *send), *recv = send + n;
    for (int p = 0; p < nc->size; p++) {
        send[p] = a2a_bytes(nc->rank, p);
        recv[p] = a2a_bytes(p, nc->rank);
    }
    size_t ns = comm_offset(send, nc->size), nr = comm_offset(recv, nc->size);
    uint8_t *h = malloc(ns + nr + 1);
    for (int p = 0; p < nc->size; p++)
        for (size_t i = 0; i < send[p]; i++) h[comm_offset(send, p) + i] = byte_of(nc->rank, p, i);
    void *din = to_device(h, ns), *dout = to_device(h, nr);
    CHECK(comm_alltoallv(nc, din, send, dout, recv, stream, &e) == 0, "%s", e.msg);
    sync_ok();
    to_host(h, dout, nr);
    for (int p = 0; p < nc->size; p++)
        for (size_t i = 0; i < recv[p]; i++)
            CHECK(h[comm_offset(recv, p) + i] == byte_of(p, nc->rank, i), "all-to-all from %d", p);
    printf("rank %d: all-to-all (sizes per peer, some empty) ok\n", nc->rank);
    free(send);
    free(h);
    cudaFree(din);
    cudaFree(dout);
}

static void reduce_scatter(void)
{
    struct err e = {0};
    size_t n = 1001, all = n * (size_t)nc->size;
    float *h = malloc(all * sizeof *h);
    fill(h, DT_F32, nc->rank, all);
    void *din = to_device(h, all * sizeof *h), *dout = to_device(h, n * sizeof *h);
    CHECK(comm_reduce_scatter_sum(nc, din, dout, n, DT_F32, stream, &e) == 0, "%s", e.msg);
    sync_ok();
    to_host(h, dout, n * sizeof *h);
    for (size_t i = 0; i < n; i++) {
        double exact = 0;
        for (int r = 0; r < nc->size; r++) exact += value(r, (size_t)nc->rank * n + i);
        CHECK(fabs(h[i] - exact) <= 1e-5, "reduce-scatter [%zu]: %g vs %g", i, h[i], exact);
    }
    printf("rank %d: reduce-scatter ok\n", nc->rank);
    free(h);
    cudaFree(din);
    cudaFree(dout);
}

int main(void)
{
    struct err e = {0};
    struct comm_mpi *w = comm_mpi_launched() ? comm_mpi_init(&e) : NULL;
    CHECK(!comm_mpi_launched() || w, "%s", e.msg);
    struct comm *host = w ? comm_mpi_split(w, 0, comm_mpi_rank(w), &e) : comm_self();
    CHECK(host, "%s", e.msg);
    int n_dev = 0;
    CHECK(cudaGetDeviceCount(&n_dev) == cudaSuccess && n_dev > 0, "no CUDA device");
    const char *local = getenv("OMPI_COMM_WORLD_LOCAL_RANK");
    int device = (local ? atoi(local) : 0) % n_dev;
    nc = comm_nccl_create(host, device, 60, &e);
    CHECK(nc, "%s", e.msg);
    CHECK(cudaStreamCreate(&stream) == cudaSuccess, "cudaStreamCreate");
    static const enum dtype types[] = {DT_F32, DT_BF16, DT_F16};
    static const size_t counts[] = {0, 1, 7, 65537};
    for (int t = 0; t < 3; t++)
        for (int k = 0; k < 4; k++) allreduce(types[t], counts[k]);
    allgatherv();
    alltoallv();
    reduce_scatter();
    comm_destroy(nc);
    cudaStreamDestroy(stream);
    comm_destroy(host);
    comm_mpi_finalize(w);
    printf("dev_comm_nccl: every check passed\n");
    return 0;
}
