/* amx_tiles: what the AMX tile kernels share (gemm_q_amx.c, gemm_bf16_amx.c):
 * the tile configuration's layout, the compiler barrier their tile loads
 * and stores need, and the 16 x 16 transpose of 32-bit values that packs
 * 16 weight rows into the B tile's layout. Included by kernel level
 * sources only, inside their AVX-512 sections. */
#ifndef ALOE_KERNELS_AMX_TILES_H
#define ALOE_KERNELS_AMX_TILES_H

#include <immintrin.h>
#include <stdint.h>

/* gcc writes the tile loads and stores as asm statements that do not say
 * they touch memory: a barrier between them and the C code that writes
 * what they load or reads what they store */
#define MEM_BARRIER() __asm__ volatile("" ::: "memory")

/* The palette-1 tile configuration (64 bytes, as LDTILECFG reads it). */
typedef struct TileCfg {
    uint8_t palette, start_row, reserved[14];
    uint16_t colsb[16];
    uint8_t rows[16];
} TileCfg;

/* r[i] = 32-bit element i of each of the 16 rows (a 16 x 16 transpose):
 * B's layout, where a line holds 4 bytes (or a bf16 pair) of each of 16
 * columns. */
static inline void transpose16(__m512i r[16]) {
    __m512i t[16], o[16];
    for (int i = 0; i < 16; i += 2) { /* per 128-bit lane: elements 0, 1 and 2, 3 of rows i, i + 1 interleaved */
        t[i] = _mm512_unpacklo_epi32(r[i], r[i + 1]);
        t[i + 1] = _mm512_unpackhi_epi32(r[i], r[i + 1]);
    }
    for (int i = 0; i < 16; i += 4) { /* r[i + e], lane L: element 4L + e of rows i..i+3 */
        r[i] = _mm512_unpacklo_epi64(t[i], t[i + 2]);
        r[i + 1] = _mm512_unpackhi_epi64(t[i], t[i + 2]);
        r[i + 2] = _mm512_unpacklo_epi64(t[i + 1], t[i + 3]);
        r[i + 3] = _mm512_unpackhi_epi64(t[i + 1], t[i + 3]);
    }
    for (int e = 0; e < 4; e++) { /* element 4L + e: lane L of r[e], r[4 + e], r[8 + e], r[12 + e] */
        __m512i a = _mm512_shuffle_i32x4(r[e], r[4 + e], 0x88), b = _mm512_shuffle_i32x4(r[e], r[4 + e], 0xDD);
        __m512i c = _mm512_shuffle_i32x4(r[8 + e], r[12 + e], 0x88), d = _mm512_shuffle_i32x4(r[8 + e], r[12 + e], 0xDD);
        o[e] = _mm512_shuffle_i32x4(a, c, 0x88);
        o[8 + e] = _mm512_shuffle_i32x4(a, c, 0xDD);
        o[4 + e] = _mm512_shuffle_i32x4(b, d, 0x88);
        o[12 + e] = _mm512_shuffle_i32x4(b, d, 0xDD);
    }
    for (int i = 0; i < 16; i++) r[i] = o[i];
}

#endif
