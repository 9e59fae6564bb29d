/* cu_probe: which scale layouts cuBLASLt's block-scaled FP8 GEMM reads, settled on the device: a
 * 256 × 384 × 32 GEMM with non-uniform scales (so a transposed or mis-strided grid cannot pass)
 * in every candidate layout — weight grid in the checkpoint's order or transposed, rows compact
 * or padded to 4 floats, activation scales tokens-fastest or groups-fastest — against the CPU
 * emulation (nm_matmul_fp8), within the FP8 GEMM tolerance 2^-9 · Σ|terms|. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cuda/cu_blas.h"
#include "cuda/cu_dev.h"
#include "engine/cpu/numerics.h"

enum { PN = 256, PK = 384, PT = 32, PNB = 2, PKB = 3 };

struct probe {
    uint8_t w[PN * PK], x[PT * PK];
    float wg[PNB * PKB], xs[PT * PKB];  /* [nb][kb], [t][kb] */
    float ref[PT * PN], tol[PT * PN];
    uint8_t *dw, *dx;
    float *dwg, *dxs, *dy;
};

static uint32_t next(uint64_t *s)
{
    *s ^= *s << 13, *s ^= *s >> 7, *s ^= *s << 17;
    return (uint32_t)(*s >> 11);
}

/* Random codes of every magnitude (finite), scales 0.5 ... 2 times 1e-2, and the reference. */
static void make(struct probe *p)
{
    uint64_t r = 0x243f6a8885a308d3ull;
    for (int i = 0; i < PN * PK; i++) p->w[i] = (uint8_t)(next(&r) % 0x7e) | (uint8_t)(next(&r) & 0x80);
    for (int i = 0; i < PT * PK; i++) p->x[i] = (uint8_t)(next(&r) % 0x7e) | (uint8_t)(next(&r) & 0x80);
    for (int i = 0; i < PNB * PKB; i++) p->wg[i] = 0.01f * (0.5f + (float)(next(&r) % 1000) / 666.0f);
    for (int i = 0; i < PT * PKB; i++) p->xs[i] = 0.01f * (0.5f + (float)(next(&r) % 1000) / 666.0f);
    struct weight w = {.name = "probe", .dtype = DT_F8E4M3, .rows = PN, .cols = PK, .data = p->w,
                       .scale = p->wg, .block_rows = 128, .block_cols = 128};
    nm_matmul_fp8(&w, 0, PN, p->x, p->xs, PT, p->ref, PN);
    uint8_t wa[PN * PK], xa[PT * PK];
    for (int i = 0; i < PN * PK; i++) wa[i] = p->w[i] & 0x7f;
    for (int i = 0; i < PT * PK; i++) xa[i] = p->x[i] & 0x7f;
    w.data = wa;
    nm_matmul_fp8(&w, 0, PN, xa, p->xs, PT, p->tol, PN);
    for (int i = 0; i < PT * PN; i++) p->tol[i] *= 0x1p-9f;
}

/* One candidate: 1 when the GEMM matches, 0 when it does not, -1 without an algorithm. */
static int try_layout(struct cu_blas *b, struct probe *p, int w_kn, int align, int x_tg, cudaStream_t s)
{
    int ld = w_kn ? (PNB + align - 1) / align * align : (PKB + align - 1) / align * align;
    float wg[8 * 8] = {0}, xs[PT * PKB], y[PT * PN];
    for (int nb = 0; nb < PNB; nb++)
        for (int kb = 0; kb < PKB; kb++) wg[w_kn ? kb * ld + nb : nb * ld + kb] = p->wg[nb * PKB + kb];
    for (int t = 0; t < PT; t++)
        for (int kb = 0; kb < PKB; kb++) xs[x_tg ? t * PKB + kb : kb * PT + t] = p->xs[t * PKB + kb];
    CU_CHECK(cudaMemcpyAsync(p->dwg, wg, sizeof wg, cudaMemcpyHostToDevice, s));
    CU_CHECK(cudaMemcpyAsync(p->dxs, xs, sizeof xs, cudaMemcpyHostToDevice, s));
    CU_CHECK(cudaMemsetAsync(p->dy, 0xff, sizeof y, s));
    struct cb_fp8 w = {.w = p->dw, .ws = p->dwg, .ws_ld = ld, .n_pad = PN, .k_pad = PK};
    if (cu_blas_fp8(b, &w, p->dx, p->dxs, PT, p->dy, PN, s) != 0) return -1;
    CU_CHECK(cudaMemcpyAsync(y, p->dy, sizeof y, cudaMemcpyDeviceToHost, s));
    CU_CHECK(cudaStreamSynchronize(s));
    for (int i = 0; i < PT * PN; i++)
        if (!(fabsf(y[i] - p->ref[i]) <= p->tol[i])) return 0;
    return 1;
}

int cu_blas_probe(struct cu_blas *b, cudaStream_t s, struct err *e)
{
    struct probe *p = calloc(1, sizeof *p);
    make(p);
    cudaError_t rc = cudaMalloc((void **)&p->dw, sizeof p->w);
    if (rc == cudaSuccess) rc = cudaMalloc((void **)&p->dx, sizeof p->x);
    if (rc == cudaSuccess) rc = cudaMalloc((void **)&p->dwg, 64 * sizeof(float));
    if (rc == cudaSuccess) rc = cudaMalloc((void **)&p->dxs, sizeof p->xs);
    if (rc == cudaSuccess) rc = cudaMalloc((void **)&p->dy, sizeof p->ref);
    if (rc != cudaSuccess) return free(p), cu_err(e, rc, "cannot allocate the GEMM probe");
    CU_CHECK(cudaMemcpy(p->dw, p->w, sizeof p->w, cudaMemcpyHostToDevice));
    CU_CHECK(cudaMemcpy(p->dx, p->x, sizeof p->x, cudaMemcpyHostToDevice));
    int no_algo = 0;
    b->fp8_ok = 0;
    for (int c = 0; c < 8 && !b->fp8_ok; c++) {
        int w_kn = c & 1, align = c & 2 ? 4 : 1, x_tg = c >> 2;
        int r = try_layout(b, p, w_kn, align, x_tg, s);
        no_algo += r < 0;
        if (r == 1) b->fp8_ok = 1, b->w_kn = w_kn, b->w_align = align, b->x_tg = x_tg;
    }
    if (b->fp8_ok)
        snprintf(b->probe_note, sizeof b->probe_note, "cuBLASLt block-scaled FP8: weight scales %s, rows "
                 "padded to %d, activation scales %s", b->w_kn ? "[kb][nb]" : "[nb][kb]", b->w_align,
                 b->x_tg ? "[t][kb]" : "[kb][t]");
    else
        snprintf(b->probe_note, sizeof b->probe_note, "cuBLASLt block-scaled FP8 %s: the fast linears "
                 "run on CUDA cores (k_gemm8)", no_algo == 8 ? "has no algorithm here" : "matched no scale layout");
    cudaFree(p->dw), cudaFree(p->dx), cudaFree(p->dwg), cudaFree(p->dxs), cudaFree(p->dy);
    free(p);
    return 0;
}
