/* matrix_amx_body: the AMX BF16 gemm driver, written once over six tile operations that the
 * including file defines — TILE_CONFIG(cfg), TILE_ZERO(t), TILE_LOAD(t, p, stride),
 * TILE_DP(c, a, b), TILE_STORE(t, p, stride), TILE_RELEASE() — with AMX_FN(name) naming the
 * instance. matrix_amx.c includes it twice: over the AMX instructions, and over their emulation
 * in C, so that the driver that runs on AMX hardware is the one the tests run everywhere.
 *
 * Tiles: C0..C3 (tmm0-3) 16 rows x 16 F32 sums, A0, A1 (tmm4-5) 16 weight rows x 32 BF16
 * columns read in place from the mapping, B0, B1 (tmm6-7) 16 column pairs x 16 tokens as
 * matrix_pack_pairs lays them out. A block of 32 rows by 32 tokens runs four products per
 * 32-column chunk; each C element sums its chunks in column order, whatever block it is in.
 * Rows past the end of a weight and the columns past a row's last whole chunk are read from a
 * zero-padded copy in scratch, never from past the row (a stray NaN times zero is NaN). */

/* The tile shapes: every tile 16 rows of 64 bytes (palette 1). */
static void AMX_FN(config)(struct amx_tilecfg *cfg)
{
    memset(cfg, 0, sizeof *cfg);
    cfg->palette = 1;
    for (int i = 0; i < 8; i++) cfg->colsb[i] = 64, cfg->rows[i] = 16;
}

/* Sums of C tiles (16 rows x 16 tokens each) into y[t * ldy + i] for the rows and tokens that
 * exist. */
static void AMX_FN(store)(const float *c, int nr, int n, float *y, int64_t ldy)
{
    for (int t = 0; t < n && t < 16; t++)
        for (int i = 0; i < nr && i < 16; i++) y[t * ldy + i] = c[i * 16 + t];
}

/* One block: rows a (16 or 32, stride lda elements; a1 the second 16) against tokens [t, t + 16
 * or 32) of xp, every chunk; the last partial chunk of columns from tail (stride 64 bytes). */
static void AMX_FN(block)(struct amx_state *s, const uint16_t *a0, const uint16_t *a1, int64_t lda,
                          int two_a, const uint32_t *b0, int two_b, int k, const uint16_t *tail,
                          float *cbuf)
{
    int full = k / 32, chunks = matrix_kpad(k) / 32;
    TILE_ZERO(0);
    TILE_ZERO(1);
    TILE_ZERO(2);
    TILE_ZERO(3);
    for (int c = 0; c < chunks; c++) {
        const uint32_t *b = b0 + (size_t)c * 16 * 16, *bn = b + (size_t)chunks * 16 * 16;
        if (c < full) {
            TILE_LOAD(4, a0 + c * 32, lda * 2);
            if (two_a) TILE_LOAD(5, a1 + c * 32, lda * 2);
        } else {
            TILE_LOAD(4, tail, 64);
            if (two_a) TILE_LOAD(5, tail + 16 * 32, 64);
        }
        TILE_LOAD(6, b, 64);
        if (two_b) TILE_LOAD(7, bn, 64);
        TILE_DP(0, 4, 6);
        if (two_b) TILE_DP(1, 4, 7);
        if (two_a) TILE_DP(2, 5, 6);
        if (two_a && two_b) TILE_DP(3, 5, 7);
    }
    TILE_STORE(0, cbuf, 64);
    TILE_STORE(1, cbuf + 256, 64);
    TILE_STORE(2, cbuf + 512, 64);
    TILE_STORE(3, cbuf + 768, 64);
    (void)s;
}

/* See struct matrix_kernels.gemm. Tokens a block of about 128 KiB (packed) at a time, in L2, each
 * met by every block of 32 rows (the caller's rows, a block of them, stay in L2 too). */
static void AMX_FN(gemm)(const uint16_t *w, int64_t ldw, int nr, const void *xp, int n, int k,
                         float *y, int64_t ldy, void *scratch)
{
    struct amx_state st, *s = &st;
    int kp = matrix_kpad(k), full = k / 32, tb = (128 * 1024) / (kp * 2) / 32 * 32;
    float *cbuf = scratch;                      /* [4][16][16] */
    uint16_t *tail = (uint16_t *)(cbuf + 1024); /* [32][32] the last partial chunk */
    uint16_t *pad = tail + 32 * 32;             /* [32][kp] the last rows */
    if (tb < 32) tb = 32;
    AMX_FN(config)(&s->cfg);
    TILE_CONFIG(&s->cfg);
    for (int t0 = 0; t0 < n; t0 += tb) {
        int t1 = t0 + tb < n ? t0 + tb : n;
        for (int i = 0; i < nr; i += 32) {
            const uint16_t *a = w + i * ldw;
            int64_t lda = ldw;
            int rows = nr - i < 32 ? nr - i : 32;
            if (rows < 32) { /* padded copy: rows past the weight read as zeros */
                memset(pad, 0, (size_t)32 * kp * sizeof *pad);
                for (int r = 0; r < rows; r++)
                    memcpy(pad + r * kp, a + r * ldw, (size_t)k * sizeof *pad);
                a = pad, lda = kp;
            }
            memset(tail, 0, 32 * 32 * sizeof *tail);
            for (int r = 0; r < rows && full * 32 < k; r++)
                memcpy(tail + r * 32, a + r * lda + full * 32,
                       (size_t)(k - full * 32) * sizeof *tail);
            for (int t = t0; t < t1; t += 32) {
                const uint32_t *b = (const uint32_t *)xp + (size_t)(t / 16) * (kp / 2) * 16;
                AMX_FN(block)(s, a, a + 16 * lda, lda, rows > 16, b, t1 - t > 16, k, tail, cbuf);
                AMX_FN(store)(cbuf, rows, t1 - t, y + t * ldy + i, ldy);
                AMX_FN(store)(cbuf + 256, rows, t1 - t - 16, y + (t + 16) * ldy + i, ldy);
                AMX_FN(store)(cbuf + 512, rows - 16, t1 - t, y + t * ldy + i + 16, ldy);
                AMX_FN(store)(cbuf + 768, rows - 16, t1 - t - 16, y + (t + 16) * ldy + i + 16, ldy);
            }
        }
    }
    TILE_RELEASE();
}
