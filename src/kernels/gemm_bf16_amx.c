/* gemm_bf16_amx: the prefill's product on BF16 weights with AMX-BF16 tiles
 * (Sapphire Rapids and later): y = x·Wᵀ for a block of W's rows and every
 * row of x, x already rounded to bf16 (gemm_bf16.c rounds it and shares
 * the row blocks among the threads; kernel_amx and the CPU's AMX-BF16 say
 * whether this runs).
 *
 * TDPBF16PS adds to a tile C of 16 x 16 floats the product of A, 16 rows
 * of 32 bf16 (x: 16 tokens, loaded where they lie), and B, 16 lines of 16
 * pairs (W: a line holds the pair of values 2l, 2l+1 of each of 16 rows,
 * packed once per call by a 16 x 16 transpose of 32-bit pairs). Unlike
 * the integer tiles (gemm_q_amx.c) nothing is scaled per block: C sums the
 * whole row in the tile, so the vector unit only packs W. Four C tiles
 * (2 blocks of 16 tokens x 2 blocks of 16 rows) share each A and B load.
 *
 * The sum's order differs from the AVX512-BF16 dots' (the tile unit adds
 * each pair's two products, then the pairs in order) and the tile unit
 * flushes subnormal inputs and results to zero: the results agree with
 * them within the f32 sum's error bound, not bit for bit
 * (tests/kernels/test_gemm_bf16.c). */
#include "kernels/klevel.h" /* first: built once per kernel level */

#include <stdalign.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "base/mem.h"
#include "kernels/gemm_bf16.h"

#if defined(__AVX512F__) && defined(__AVX512BW__)
#include <immintrin.h>

#include "kernels/amx_tiles.h"

#define AMX_FN __attribute__((target("amx-tile,amx-bf16")))
/* Tiles 0-3: C; 4, 5: A (16 tokens x 32 bf16); 6, 7: B (16 lines). */
AMX_FN static void config(void) {
    alignas(64) TileCfg c;
    memset(&c, 0, sizeof c);
    c.palette = 1;
    for (int i = 0; i < 8; i++) c.rows[i] = 16, c.colsb[i] = 64;
    /* gcc 12's ldtilecfg builtin does not say that it reads c: without the
     * barrier the stores above are dropped as dead once config is inlined */
    MEM_BARRIER();
    _tile_loadconfig(&c);
}

/* C tile c (16 tokens x 16 rows) into y (ldy floats a token), only the
 * nt x nr that are real. */
#define STORE_C(c, y, ldy, nt, nr)                                                                                     \
    do {                                                                                                               \
        if ((nt) == 16 && (nr) == 16) {                                                                                \
            _tile_stored(c, y, (long)(ldy) * 4);                                                                       \
        } else {                                                                                                       \
            _tile_stored(c, buf, 64);                                                                                  \
            MEM_BARRIER();                                                                                             \
            for (int m = 0; m < (nt); m++) memcpy((y) + (size_t)m * (ldy), buf[m], (size_t)(nr) * 4);                 \
        }                                                                                                              \
    } while (0)

AMX_FN void gemm_bf16_amx_rows(const uint16_t *w, int nrows, int cols, const uint16_t *xb, int n, float *y, int ldy) {
    const int kc = cols / 32, nblk = (nrows + 15) / 16, nblk2 = (nblk + 1) & ~1;
    /* per block of 16 rows and chunk of 32 values: 16 lines of 64 bytes */
    char *pk = xaligned_alloc((size_t)nblk2 * (size_t)kc * 1024);
    for (int bk = 0; bk < nblk2; bk++) {
        for (int k = 0; k < kc; k++) {
            __m512i v[16];
            for (int i = 0; i < 16; i++) {
                int r = 16 * bk + i;
                v[i] = r < nrows ? _mm512_loadu_si512(w + (size_t)r * cols + 32 * k) : _mm512_setzero_si512();
            }
            transpose16(v);
            for (int l = 0; l < 16; l++) _mm512_store_si512(pk + ((size_t)bk * kc + k) * 1024 + 64 * l, v[l]);
        }
    }
    MEM_BARRIER();
    config();
    alignas(64) float buf[16][16];
    const long xs = (long)cols * 2; /* bytes from one token to the next */
    for (int t = 0; t < n; t += 32) { /* xb has whole blocks of 32 tokens (gemm_bf16.c pads it with zeros) */
        const char *x0 = (const char *)(xb + (size_t)t * cols), *x1 = x0 + 16 * xs;
        int nt0 = n - t < 16 ? n - t : 16, nt1 = n - t - 16 < 0 ? 0 : n - t - 16 < 16 ? n - t - 16 : 16;
        for (int bk = 0; bk < nblk2; bk += 2) {
            const char *b0 = pk + (size_t)bk * kc * 1024, *b1 = b0 + (size_t)kc * 1024;
            _tile_zero(0);
            _tile_zero(1);
            _tile_zero(2);
            _tile_zero(3);
            for (int k = 0; k < kc; k++) {
                _tile_loadd(4, x0 + 64 * k, xs);
                _tile_loadd(6, b0 + 1024 * (size_t)k, 64);
                _tile_dpbf16ps(0, 4, 6);
                _tile_loadd(7, b1 + 1024 * (size_t)k, 64);
                _tile_dpbf16ps(1, 4, 7);
                _tile_loadd(5, x1 + 64 * k, xs);
                _tile_dpbf16ps(2, 5, 6);
                _tile_dpbf16ps(3, 5, 7);
            }
            int r0 = 16 * bk, nr0 = nrows - r0 < 16 ? nrows - r0 : 16, nr1 = nrows - r0 - 16;
            nr1 = nr1 < 0 ? 0 : nr1 > 16 ? 16 : nr1;
            float *y0 = y + (size_t)t * ldy + r0, *y1 = y0 + (size_t)16 * ldy;
            STORE_C(0, y0, ldy, nt0, nr0);
            if (nr1) STORE_C(1, y0 + 16, ldy, nt0, nr1);
            if (nt1) STORE_C(2, y1, ldy, nt1, nr0);
            if (nt1 && nr1) STORE_C(3, y1 + 16, ldy, nt1, nr1);
            MEM_BARRIER();
        }
    }
    _tile_release();
    free(pk);
}

/* ---- the general GEMM's register tile on AMX (gemm_bf16_level.c) ----
 * op(A) packed row-major (lda values a row, k rounded up to 32 and
 * zero-padded), op(B) in gemm_bf16_level.c's panels of 32 columns with k
 * in pairs (a pair's 32 columns are 128 bytes: columns 0-15 one B tile
 * line, 16-31 the next 64 bytes), so both load as they lie: A 16 rows x
 * 32 values at stride lda, B 16 pairs at stride 128 bytes. A 32 x 32 tile
 * of C is four C tiles, each A and B load serving two TDPBF16PS. */
AMX_FN void gemm_bf16_amx_begin(void) { config(); }
AMX_FN void gemm_bf16_amx_end(void) { _tile_release(); }

AMX_FN void gemm_bf16_amx_tile32(const uint16_t *a, long lda, const uint16_t *panel, long np, float *t) {
    const long as = lda * 2; /* bytes from one row of A to the next */
    const char *a0 = (const char *)a, *a1 = a0 + 16 * as, *b = (const char *)panel;
    _tile_zero(0);
    _tile_zero(1);
    _tile_zero(2);
    _tile_zero(3);
    for (long p = 0; p < np; p += 16) { /* 16 pairs: 32 values of k */
        _tile_loadd(4, a0 + 4 * p, as);
        _tile_loadd(6, b + 128 * p, 128);
        _tile_dpbf16ps(0, 4, 6);
        _tile_loadd(7, b + 128 * p + 64, 128);
        _tile_dpbf16ps(1, 4, 7);
        _tile_loadd(5, a1 + 4 * p, as);
        _tile_dpbf16ps(2, 5, 6);
        _tile_dpbf16ps(3, 5, 7);
    }
    _tile_stored(0, t, 128);
    _tile_stored(1, t + 16, 128);
    _tile_stored(2, t + 16 * 32, 128);
    _tile_stored(3, t + 16 * 32 + 16, 128);
    MEM_BARRIER();
}
#else
void gemm_bf16_amx_rows(const uint16_t *w, int nrows, int cols, const uint16_t *xb, int n, float *y, int ldy) {
    (void)w, (void)nrows, (void)cols, (void)xb, (void)n, (void)y, (void)ldy;
}
#endif
