/* quant_kernels: the matmul entry for quantised weights (exact or 8-bit activations), the
 * scratch layout, and the portable reference set of the 8-bit path: activation quantisation as
 * ggml's quantize_row_q8_0/q8_1/q8_K, per-type row unpacking, and the dots. The SIMD sets are
 * quant_simd.h compiled by quant_avx2.c and quant_avx512.c. */
#include "engine/cpu/quant_kernels.h"

#include <math.h>
#include <string.h>

#include "engine/err.h"
#include "engine/model/quant.h"

struct qk_type qk_type_of(enum dtype t)
{
    switch (t) {
    case DT_Q4_0: return (struct qk_type){0, 3, 0, 0};
    case DT_Q5_0: return (struct qk_type){0, 4, 0, 0};
    case DT_Q4_1: case DT_Q5_1: return (struct qk_type){0, -1, 1, 0};
    case DT_Q8_0: return (struct qk_type){0, -1, 0, 1};
    case DT_Q2_K: case DT_Q4_K: case DT_Q5_K: return (struct qk_type){1, -1, 1, 0};
    case DT_Q3_K: return (struct qk_type){1, 2, 0, 0};
    case DT_Q6_K: return (struct qk_type){1, 5, 0, 0};
    default: ERR_FATAL("qk_type_of: %s is not a block type", dtype_name(t));
    }
}

/* ---- exact path ------------------------------------------------------------------------------ */

void qk_widen_rows(const struct weight *w, int64_t r, int n, float *out, int64_t ld)
{
    size_t rb = dtype_row_bytes(w->dtype, w->cols);
    for (int i = 0; i < n; i++)
        quant_dequant(w->dtype, (const uint8_t *)w->data + (size_t)(r + i) * rb, out + i * ld,
                      (size_t)w->cols);
}

enum { WIDEN_BYTES = 96 * 1024 }; /* widened rows per block, as ops.c */

static void matmul_exact(const struct ops *o, int thread, const struct weight *w, int64_t r0,
                         int64_t r1, const float *x, int64_t ldx, int n, float *y, int64_t ldy)
{
    int64_t rb = WIDEN_BYTES / (w->cols * (int64_t)sizeof(float));
    rb = rb < 4 ? 4 : rb > 64 ? 64 : rb / 4 * 4;
    float *buf = tp_scratch(o->tp, thread, (size_t)rb * (size_t)w->cols * sizeof(float));
    for (int64_t r = r0; r < r1; r += rb) {
        int nr = r1 - r < rb ? (int)(r1 - r) : (int)rb;
        qk_widen_rows(w, r, nr, buf, w->cols);
        o->k->dot_tile(buf, w->cols, nr, x, ldx, n, (int)w->cols, y + (r - r0), ldy);
    }
}

/* ---- 8-bit path ------------------------------------------------------------------------------ */

static size_t up64(size_t n)
{
    return (n + 63) / 64 * 64;
}

/* Sizes of the pieces, in layout order: q, d, s, qs, bs (n tokens), then each row's u, d, m,
 * scp, sc, mn. */
static void sizes(int64_t k, int n, size_t sz[11])
{
    size_t K = (size_t)k, N = (size_t)n;
    size_t v[11] = {N * K, N * K / 32 * 4, N * K / 32 * 4, N * K / 32 * 4, N * K / 16 * 2,
                    K, K / 32 * 4, K / 32 * 4, K / 2 * 2, K / 16 * 2, K / 16 * 2};
    for (int i = 0; i < 11; i++) sz[i] = up64(v[i]);
}

size_t qk_scratch_bytes(int64_t k, int n, int n_rows)
{
    size_t sz[11], total = 0;
    sizes(k, n, sz);
    for (int i = 0; i < 11; i++) total += i < 5 ? sz[i] : (size_t)n_rows * sz[i];
    return total;
}

void qk_layout(void *buf, int64_t k, int n, struct qk_act *a, struct qk_row *rows, int n_rows)
{
    size_t sz[11];
    uint8_t *p[5], *at = buf;
    sizes(k, n, sz);
    for (int i = 0; i < 5; i++) p[i] = at, at += sz[i];
    *a = (struct qk_act){k, (int8_t *)p[0], (float *)p[1], (float *)p[2], (int32_t *)p[3], (int16_t *)p[4]};
    for (int r = 0; r < n_rows; r++) {
        uint8_t *q[6];
        for (int i = 0; i < 6; i++) q[i] = at, at += sz[5 + i];
        rows[r] = (struct qk_row){q[0], (float *)q[1], (float *)q[2], (int16_t *)q[3], (int16_t *)q[4], (int16_t *)q[5]};
    }
}

struct qk_act qk_act_at(const struct qk_act *a, int t)
{
    int64_t k = a->k;
    return (struct qk_act){k, a->q + t * k, a->d + t * k / 32, a->s + t * k / 32, a->qs + t * k / 32,
                           a->bs + t * k / 16};
}

void qk_act_copy(const struct qk_act *src, int ts, const struct qk_act *dst, int td)
{
    int64_t k = src->k;
    memcpy(dst->q + td * k, src->q + ts * k, (size_t)k);
    memcpy(dst->d + td * k / 32, src->d + ts * k / 32, (size_t)(k / 32) * sizeof *dst->d);
    memcpy(dst->s + td * k / 32, src->s + ts * k / 32, (size_t)(k / 32) * sizeof *dst->s);
    memcpy(dst->qs + td * k / 32, src->qs + ts * k / 32, (size_t)(k / 32) * sizeof *dst->qs);
    memcpy(dst->bs + td * k / 16, src->bs + ts * k / 16, (size_t)(k / 16) * sizeof *dst->bs);
}

enum {
    QK_ROWS = 8,    /* rows unpacked together, then dotted with each block of tokens */
    QK_TOKENS = 32, /* tokens per block: their quants (32 · k bytes) stay in cache for the rows */
};

/* What a thread's kept activations were quantised from: the loop (tp_loop), the input and its
 * shape, the format. Tasks of one loop often share an input (every row range of a matmul, every
 * chunk of an expert), which is then quantised once per thread and loop rather than per task. */
struct qk_key {
    uint64_t loop; /* 0: nothing kept */
    const float *x;
    int64_t ldx, k;
    int n, k_type;
};

/* Token activations of x for this call: the thread's kept ones when they match, else quantised
 * into the thread's keep buffer (after the key, one 64-byte line). */
static struct qk_act activations(const struct ops *o, int thread, const struct qk_set *s, enum dtype t,
                                 const float *x, int64_t ldx, int n, int64_t k)
{
    int fresh;
    uint8_t *buf = tp_keep(o->tp, thread, 64 + qk_scratch_bytes(k, n, 0), &fresh);
    struct qk_key *kept = (struct qk_key *)buf, want = {tp_loop(o->tp), x, ldx, k, n, qk_type_of(t).k_type};
    struct qk_act a;
    qk_layout(buf + 64, k, n, &a, NULL, 0);
    if (!fresh && want.loop && kept->loop == want.loop && kept->x == x && kept->ldx == ldx &&
        kept->k == k && kept->n == n && kept->k_type == want.k_type)
        return a;
    for (int i = 0; i < n; i++) s->quantize(x + i * ldx, t, &a, i);
    *kept = want;
    return a;
}

void qk_quantize_rows(const struct ops *o, enum dtype wt, const float *x, int64_t ldx, int t0,
                      int t1, struct qk_act *a)
{
    const struct qk_set *s = qk_set_for(o->k);
    for (int t = t0; t < t1; t++) s->quantize(x + t * ldx, wt, a, t);
}

int qk_same_act(enum dtype a, enum dtype b)
{
    return dtype_is_quant(a) && dtype_is_quant(b) && qk_type_of(a).k_type == qk_type_of(b).k_type;
}

/* QK_ROWS rows at a time, unpacks the rows once and dots them with the tokens QK_TOKENS at a
 * time (or, for a few tokens, dots straight from the blocks). Every (row, token) result is the
 * set's one order of operations whatever the blocking. */
void qk_matmul_act(const struct ops *o, int thread, const struct weight *w, int64_t r0, int64_t r1,
                   const struct qk_act *act, int n, float *y, int64_t ldy)
{
    const struct qk_set *s = qk_set_for(o->k);
    struct qk_act a = *act, unused;
    if (n <= (w->dtype == DT_Q4_K || w->dtype == DT_Q6_K ? s->packed_max_k : s->packed_max)) {
        s->dot_packed(w, r0, r1, &a, n, y, ldy);
        return;
    }
    if (s->tiles && n >= s->tiles_min && qk_type_of(w->dtype).k_type && r1 - r0 >= 16) {
        int64_t rt = r0 + (r1 - r0) / 16 * 16;
        s->tiles(o, thread, s, w, r0, rt, &a, n, y, ldy);
        y += rt - r0, r0 = rt;
    }
    struct qk_row rows[QK_ROWS];
    qk_layout(tp_scratch(o->tp, thread, qk_scratch_bytes(w->cols, 0, QK_ROWS)), w->cols, 0, &unused, rows, QK_ROWS);
    for (int64_t rb = r0; rb < r1; rb += QK_ROWS) {
        int nr = r1 - rb < QK_ROWS ? (int)(r1 - rb) : QK_ROWS;
        for (int i = 0; i < nr; i++) s->unpack(w, rb + i, &rows[i]);
        for (int t0 = 0; t0 < n; t0 += QK_TOKENS) {
            struct qk_act at = qk_act_at(&a, t0);
            int nt = n - t0 < QK_TOKENS ? n - t0 : QK_TOKENS;
            for (int i = 0; i < nr; i++) s->dot(w->dtype, &rows[i], &at, nt, y + t0 * ldy + (rb + i - r0), ldy);
        }
    }
}

/* Quantises the tokens (or finds them quantised by this thread in this loop), then dots them. */
static void matmul_q8(const struct ops *o, int thread, const struct weight *w, int64_t r0,
                      int64_t r1, const float *x, int64_t ldx, int n, float *y, int64_t ldy)
{
    struct qk_act a = activations(o, thread, qk_set_for(o->k), w->dtype, x, ldx, n, w->cols);
    qk_matmul_act(o, thread, w, r0, r1, &a, n, y, ldy);
}

void qk_matmul(const struct ops *o, int thread, const struct weight *w, int64_t r0, int64_t r1,
               const float *x, int64_t ldx, int n, float *y, int64_t ldy)
{
    if (o->q8) matmul_q8(o, thread, w, r0, r1, x, ldx, n, y, ldy);
    else matmul_exact(o, thread, w, r0, r1, x, ldx, n, y, ldy);
}

/* ---- the reference set: activations ---------------------------------------------------------- */

static float fp16_round(float f)
{
    return f16_to_f32(f32_to_f16(f));
}

/* Blocks of 32 (ggml's quantize_row_q8_0 / q8_1, its SIMD rounding: to nearest even). */
static void quantize32(const float *x, int64_t k, int8_t *q, float *d, float *s, int32_t *qs)
{
    for (int64_t b = 0; b < k / 32; b++, x += 32, q += 32) {
        float amax = 0.0f;
        for (int i = 0; i < 32; i++) amax = fmaxf(amax, fabsf(x[i]));
        float db = amax / 127.0f, id = amax != 0.0f ? 127.0f / amax : 0.0f;
        int sum = 0;
        for (int i = 0; i < 32; i++) sum += q[i] = (int8_t)nearbyintf(x[i] * id);
        d[b] = fp16_round(db), s[b] = fp16_round(db * (float)sum), qs[b] = sum;
    }
}

/* Super-blocks of 256 (ggml's quantize_row_q8_K_ref): the scale from the value of largest
 * magnitude, signed, so that it becomes -127. */
static void quantize256(const float *x, int64_t k, int8_t *q, float *d, int16_t *bs)
{
    for (int64_t b = 0; b < k / 256; b++, x += 256, q += 256) {
        float amax = 0.0f, max = 0.0f;
        for (int i = 0; i < 256; i++)
            if (fabsf(x[i]) > amax) amax = fabsf(x[i]), max = x[i];
        float is = amax != 0.0f ? -127.0f / max : 0.0f;
        for (int i = 0; i < 256; i++) {
            int v = (int)nearbyintf(is * x[i]);
            q[i] = (int8_t)(v > 127 ? 127 : v);
        }
        for (int g = 0; g < 16; g++) {
            int sum = 0;
            for (int i = 0; i < 16; i++) sum += q[16 * g + i];
            bs[16 * b + g] = (int16_t)sum;
        }
        d[b] = amax != 0.0f ? 1.0f / is : 0.0f;
    }
}

static void scalar_quantize(const float *x, enum dtype wt, struct qk_act *a, int t)
{
    int64_t k = a->k;
    if (qk_type_of(wt).k_type)
        quantize256(x, k, a->q + t * k, a->d + t * k / 32, a->bs + t * k / 16);
    else quantize32(x, k, a->q + t * k, a->d + t * k / 32, a->s + t * k / 32, a->qs + t * k / 32);
}

/* ---- the reference set: rows ----------------------------------------------------------------- */

static void unpack_legacy(enum dtype t, const uint8_t *p, uint8_t *u, float *d, float *m)
{
    *d = quant_f16(p);
    switch (t) {
    case DT_Q8_0:
        memcpy(u, p + 2, 32);
        break;
    case DT_Q4_0:
    case DT_Q4_1: {
        const uint8_t *qs = p + (t == DT_Q4_0 ? 2 : 4);
        for (int j = 0; j < 16; j++) u[j] = qs[j] & 15, u[j + 16] = qs[j] >> 4;
        break;
    }
    default: { /* Q5_0, Q5_1 */
        const uint8_t *qh = p + (t == DT_Q5_0 ? 2 : 4), *qs = qh + 4;
        uint32_t h = (uint32_t)qh[0] | (uint32_t)qh[1] << 8 | (uint32_t)qh[2] << 16 | (uint32_t)qh[3] << 24;
        for (int j = 0; j < 16; j++) {
            u[j] = (uint8_t)((qs[j] & 15) | ((h >> j) & 1) << 4);
            u[j + 16] = (uint8_t)((qs[j] >> 4) | ((h >> (j + 16)) & 1) << 4);
        }
        break;
    }
    }
    *m = t == DT_Q4_1 || t == DT_Q5_1 ? quant_f16(p + 2) : 0.0f;
}

/* The 2-bit codes of Q2_K and Q3_K: value 128h + 32s + l is bits 2s.. of qs[32h + l]. */
static void codes2(const uint8_t *qs, uint8_t *u)
{
    for (int i = 0; i < 256; i++) u[i] = (qs[32 * (i / 128) + i % 32] >> (2 * (i % 128 / 32))) & 3;
}

/* One K super-block into u, sc, mn (per 16; d and dmin apart). */
static void unpack_k(enum dtype t, const uint8_t *p, uint8_t *u, float *d, float *dmin,
                     int16_t *sc, int16_t *mn)
{
    switch (t) {
    case DT_Q2_K: {
        const struct blk_q2_k *b = (const void *)p;
        codes2(b->qs, u);
        for (int g = 0; g < 16; g++) sc[g] = b->scales[g] & 15, mn[g] = b->scales[g] >> 4;
        *d = quant_f16(b->d), *dmin = quant_f16(b->dmin);
        break;
    }
    case DT_Q3_K: {
        const struct blk_q3_k *b = (const void *)p;
        int8_t s[16];
        codes2(b->qs, u);
        for (int i = 0; i < 256; i++) u[i] |= (uint8_t)(((b->hmask[i % 32] >> (i / 32)) & 1) << 2);
        quant_q3k_scales(b->scales, s);
        for (int g = 0; g < 16; g++) sc[g] = s[g], mn[g] = 0;
        *d = quant_f16(b->d), *dmin = 0.0f;
        break;
    }
    case DT_Q4_K:
    case DT_Q5_K: {
        const uint8_t *scales = p + 4, *qh = t == DT_Q5_K ? p + 16 : NULL, *qs = t == DT_Q5_K ? p + 48 : p + 16;
        for (int j = 0; j < 8; j++) {
            uint8_t s, m;
            quant_k4_scale_min(scales, j, &s, &m);
            sc[2 * j] = sc[2 * j + 1] = s, mn[2 * j] = mn[2 * j + 1] = m;
            for (int l = 0; l < 32; l++)
                u[32 * j + l] = (uint8_t)(((qs[32 * (j / 2) + l] >> (4 * (j % 2))) & 15) |
                                          (qh ? ((qh[l] >> j) & 1) << 4 : 0));
        }
        *d = quant_f16(p), *dmin = quant_f16(p + 2);
        break;
    }
    default: { /* Q6_K */
        const struct blk_q6_k *b = (const void *)p;
        for (int i = 0; i < 256; i++) {
            int h = i / 128, r = i % 128;
            int lo = (b->ql[64 * h + r % 64] >> (4 * (r / 64))) & 15;
            int hi = (b->qh[32 * h + r % 32] >> (2 * (r / 32))) & 3;
            u[i] = (uint8_t)(lo | hi << 4);
        }
        for (int g = 0; g < 16; g++) sc[g] = b->scales[g], mn[g] = 0;
        *d = quant_f16(b->d), *dmin = 0.0f;
        break;
    }
    }
}

static void scalar_unpack(const struct weight *w, int64_t r, struct qk_row *row)
{
    enum dtype t = w->dtype;
    int blk = dtype_block(t);
    size_t bs = dtype_size(t);
    const uint8_t *p = (const uint8_t *)w->data + (size_t)r * dtype_row_bytes(t, w->cols);
    for (int64_t b = 0; b < w->cols / blk; b++, p += bs) {
        if (blk == 32) {
            unpack_legacy(t, p, row->u + 32 * b, &row->d[b], &row->m[b]);
            continue;
        }
        unpack_k(t, p, row->u + 256 * b, &row->d[b], &row->m[b], row->sc + 16 * b, row->mn + 16 * b);
        for (int i = 0; i < 128; i++) row->scp[128 * b + i] = row->sc[16 * b + i / 8];
    }
}

/* ---- the reference set: dots ----------------------------------------------------------------- */

/* Σ over a block of 32 of the codes (less the zero point) times the quants. */
static int block_dot(const uint8_t *u, const int8_t *q, int n, struct qk_type ty)
{
    int sum = 0;
    for (int i = 0; i < n; i++) {
        int w = ty.is_signed ? (int8_t)u[i] : ty.shift >= 0 ? u[i] - (1 << ty.shift) : u[i];
        sum += w * q[i];
    }
    return sum;
}

static float dot_legacy(struct qk_type ty, const struct qk_row *row, const struct qk_act *a, int t)
{
    int64_t k = a->k;
    float acc = 0.0f, summ = 0.0f;
    for (int64_t b = 0; b < k / 32; b++) {
        int isum = block_dot(row->u + 32 * b, a->q + t * k + 32 * b, 32, ty);
        acc += (float)isum * (row->d[b] * a->d[t * k / 32 + b]);
        if (ty.mins) summ += row->m[b] * a->s[t * k / 32 + b];
    }
    return acc + summ;
}

static float dot_k(struct qk_type ty, const struct qk_row *row, const struct qk_act *a, int t)
{
    int64_t k = a->k;
    float acc = 0.0f, accm = 0.0f;
    for (int64_t b = 0; b < k / 256; b++) {
        int isum = 0, msum = 0;
        for (int g = 0; g < 16; g++) {
            int64_t o = 256 * b + 16 * g;
            isum += row->sc[16 * b + g] * block_dot(row->u + o, a->q + t * k + o, 16, ty);
            msum += row->mn[16 * b + g] * a->bs[t * k / 16 + 16 * b + g];
        }
        float dx = a->d[t * k / 32 + b];
        acc += (float)isum * (row->d[b] * dx);
        if (ty.mins) accm += (float)msum * (row->m[b] * dx);
    }
    return acc - accm;
}

static void scalar_dot(enum dtype wt, const struct qk_row *row, const struct qk_act *a, int nt,
                       float *y, int64_t ldy)
{
    struct qk_type ty = qk_type_of(wt);
    for (int t = 0; t < nt; t++) y[t * ldy] = ty.k_type ? dot_k(ty, row, a, t) : dot_legacy(ty, row, a, t);
}

static const struct qk_set scalar_set = {
    "scalar", scalar_quantize, scalar_unpack, scalar_dot, NULL, 0, 0, NULL, 0};

const struct qk_set *qk_scalar(void)
{
    return &scalar_set;
}

const struct qk_set *qk_set_for(const struct simd_kernels *k)
{
    const struct qk_set *s = NULL;
    if (!strcmp(k->name, "avx512")) s = qk_avx512();
    else if (!strcmp(k->name, "avx2")) s = qk_avx2();
    return s ? s : &scalar_set;
}
