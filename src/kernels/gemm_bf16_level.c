/* gemm_bf16_level: the bf16 GEMM of gemm_bf16.h -- packing, the register
 * tiles and the blocked, threaded driver -- built once per kernel level
 * (klevel.h). gemm_bf16.c chooses whether the BF16 dot path may run.
 *
 * Layout. op(A) is packed once per call, row-major, k rounded up to even
 * and zero-padded, rows rounded up to MR with zero rows: bf16 values for
 * the dot path, the same values widened to f32 for the portable path (so
 * its inner loop broadcasts a float straight from memory). op(B) is packed
 * per block of KC values of k and NC columns into panels of NR columns
 * with k in pairs: pair p of column j is (op(B)[2p][j], op(B)[2p+1][j]),
 * one 32-bit lane -- the operand layout of vdpbf16ps, which multiplies a
 * lane's two bf16 values by the two of the broadcast A pair and adds both
 * products into the f32 lane. The portable path reads the same panels and
 * widens each half to f32 (a shift, a mask). */
#include "kernels/klevel.h" /* first: built once per kernel level */
#include "kernels/gemm_bf16.h"

#include <stdlib.h>
#include <string.h>

#include "base/cpu_features.h"
#include "base/mem.h"
#include "kernels/quant_internal.h"

#if defined(__AVX2__) || defined(__AVX512F__)
#include <immintrin.h>
#endif

/* f32 lanes per vector of this build, and the register tile: MR rows of A
 * by NR = 2 vectors of columns of B. MR·2 accumulators: 16 of the 32 ZMM
 * registers, 8 of the 16 YMM or XMM ones, which leaves room for B's two
 * vectors (four, widened) and A's broadcast. */
#if defined(__AVX512F__)
#define VL 16
#define MR 8
#elif defined(__AVX2__)
#define VL 8
#define MR 4
#else
#define VL 4
#define MR 4
#endif
#define NR (2 * VL)
/* The AMX tile's rows (gemm_bf16_amx_tile32: 32 x 32, two A tiles by the
 * two B tiles of one 32-column panel). MC is a multiple of it. */
#define AMX_MR 32
/* Its block of k: each 32 x 32 tile's store and update of C (~4 KB each
 * way) is paid once per block, a quarter as often as with KC; the
 * thread's B block, NC_MAX x AMX_KC bf16 = 512 KB, still fits L2. */
#define AMX_KC 1024
/* Values of k per block: one packed panel of B, KC/2 pairs × NR columns ×
 * 4 bytes (16 KB at NR = 32), stays in L1 while the MC rows of A's block
 * (MC × KC bf16: 128 KB) pass over it from L2. Even: k is packed in pairs. */
#define KC 256
#define MC 256
/* Columns of C per task at most (a multiple of every NR): the thread's
 * packed B block, NC_MAX × KC bf16 = 128 KB, fits L2. */
#define NC_MAX 256

#define UNROLL _Pragma("GCC unroll 8")

typedef float vf __attribute__((vector_size(VL * 4), may_alias));
typedef uint32_t vu __attribute__((vector_size(VL * 4), may_alias));

/* f32 -> bf16, nearest even, a NaN kept a (quiet) NaN: f32_to_bf16's rule
 * (formats/dtype.c), bit for bit, so the tests' reference rounds alike. */
static inline uint16_t bf16_rne(uint32_t u) {
    if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x40);
    return (uint16_t)((u + 0x7fffu + ((u >> 16) & 1u)) >> 16);
}

static inline float bf16_f32(uint16_t h) {
    uint32_t u = (uint32_t)h << 16;
    float f;
    memcpy(&f, &u, 4);
    return f;
}

/* n values of one memory row of X (its row `line`, from element `at`) as
 * bf16: copied, or rounded from f32 (vectorised: packing A is O(m·k) and
 * must stay small next to the O(m·n·k) product). */
static void line_bf16(const GemmMat *x, long line, long at, long n, uint16_t *out) {
    if (x->bf16) {
        memcpy(out, (const uint16_t *)x->p + line * x->ld + at, (size_t)n * 2);
        return;
    }
    const float *s = (const float *)x->p + line * x->ld + at;
    long i = 0;
#if defined(__AVX512F__)
    const __m512i half = _mm512_set1_epi32(0x7fff), one = _mm512_set1_epi32(1), abs = _mm512_set1_epi32(0x7fffffff),
                  inf = _mm512_set1_epi32(0x7f800000), quiet = _mm512_set1_epi32(0x40);
    for (; i + 16 <= n; i += 16) {
        __m512i u = _mm512_loadu_si512(s + i), hi = _mm512_srli_epi32(u, 16);
        __m512i r = _mm512_srli_epi32(_mm512_add_epi32(u, _mm512_add_epi32(half, _mm512_and_si512(hi, one))), 16);
        __mmask16 nan = _mm512_cmpgt_epu32_mask(_mm512_and_si512(u, abs), inf);
        r = _mm512_mask_mov_epi32(r, nan, _mm512_or_si512(hi, quiet));
        _mm256_storeu_si256((__m256i *)(out + i), _mm512_cvtepi32_epi16(r));
    }
#elif defined(__AVX2__)
    const __m256i half = _mm256_set1_epi32(0x7fff), one = _mm256_set1_epi32(1), abs = _mm256_set1_epi32(0x7fffffff),
                  inf = _mm256_set1_epi32(0x7f800000), quiet = _mm256_set1_epi32(0x40);
    for (; i + 8 <= n; i += 8) {
        __m256i u = _mm256_loadu_si256((const __m256i *)(s + i)), hi = _mm256_srli_epi32(u, 16);
        __m256i r = _mm256_srli_epi32(_mm256_add_epi32(u, _mm256_add_epi32(half, _mm256_and_si256(hi, one))), 16);
        /* |u| as a signed int is non-negative, so the signed compare is right */
        __m256i nan = _mm256_cmpgt_epi32(_mm256_and_si256(u, abs), inf);
        r = _mm256_blendv_epi8(r, _mm256_or_si256(hi, quiet), nan);
        /* 8 × 32 -> 8 × 16 bits: packus works per 128-bit half (values fit,
         * no saturation), then the two halves' low quadwords side by side */
        __m256i pk = _mm256_permute4x64_epi64(_mm256_packus_epi32(r, r), 0x08);
        _mm_storeu_si128((__m128i *)(out + i), _mm256_castsi256_si128(pk));
    }
#endif
    for (; i < n; i++) {
        uint32_t u;
        memcpy(&u, s + i, 4);
        out[i] = bf16_rne(u);
    }
}

typedef struct Job {
    int m, n, k, dot, amx; /* amx: the dot path's tile on AMX (AMX_MR rows, k padded to 32) */
    float alpha, beta;
    GemmMat a, b;
    float *c;
    long ldc;
    long mp, ka2;  /* packed A: mp rows (m rounded up to MR, or AMX_MR) of ka2 values (k rounded up to even, or 32) */
    uint16_t *a16; /* dot path */
    float *af;     /* portable path */
    int nc;        /* columns of C per task (a multiple of NR) */
    uint16_t *bbuf; /* NC_MAX × kcap per thread */
    int kcap;       /* values of k per block: KC, or AMX_KC */
    TpCounter rows, cols;
} Job;

/* Rows [i0, i1) of packed A. */
static void pack_a(Job *j, long i0, long i1) {
    const long m = j->m, k = j->k, ka2 = j->ka2;
    uint16_t tmp[NC_MAX];
    for (long i = i0; i < i1; i++) { /* padding: rows past m, the value past an odd k */
        if (i >= m) {
            if (j->dot) memset(j->a16 + i * ka2, 0, (size_t)ka2 * 2);
            else memset(j->af + i * ka2, 0, (size_t)ka2 * 4);
        } else if (ka2 != k) {
            for (long x = k; x < ka2; x++)
                if (j->dot) j->a16[i * ka2 + x] = 0;
                else j->af[i * ka2 + x] = 0;
        }
    }
    if (i1 > m) i1 = m;
    if (i0 >= i1) return;
    if (!j->a.trans) { /* a row of op(A) is a memory row */
        for (long i = i0; i < i1; i++) {
            if (j->dot) {
                line_bf16(&j->a, i, 0, k, j->a16 + i * ka2);
                continue;
            }
            for (long at = 0; at < k; at += NC_MAX) {
                long len = k - at < NC_MAX ? k - at : NC_MAX;
                line_bf16(&j->a, i, at, len, tmp);
                for (long x = 0; x < len; x++) j->af[i * ka2 + at + x] = bf16_f32(tmp[x]);
            }
        }
    } else { /* op(A) = Aᵀ: a column of op(A) is a memory row; i1 - i0 <= 128 <= NC_MAX */
        for (long kk = 0; kk < k; kk++) {
            line_bf16(&j->a, kk, i0, i1 - i0, tmp);
            for (long i = i0; i < i1; i++) {
                if (j->dot) j->a16[i * ka2 + kk] = tmp[i - i0];
                else j->af[i * ka2 + kk] = bf16_f32(tmp[i - i0]);
            }
        }
    }
}

/* Columns [j0, j0 + nb) and k values [kb, kb + kc) of op(B) into panels of
 * NR columns, kcap·NR values apart (kc <= kcap <= AMX_KC); zero past n
 * and past k. */
static void pack_b(const GemmMat *b, long j0, int nb, long kb, int kc, long kcap, uint16_t *dst) {
    uint16_t t0[AMX_KC > NC_MAX ? AMX_KC : NC_MAX], t1[NC_MAX];
    for (int jp = 0; jp < nb; jp += NR)
        if (nb - jp < NR || (kc & 1)) memset(dst + (long)(jp / NR) * kcap * NR, 0, (size_t)(kc + 1) / 2 * NR * 2 * 2);
    if (b->trans) { /* op(B) = Bᵀ, B[n][k] (weights): a column of op(B) is a memory row */
        for (int jp = 0; jp < nb; jp += NR) {
            uint16_t *d = dst + (long)(jp / NR) * kcap * NR;
            int nr = nb - jp < NR ? nb - jp : NR;
            for (int jj = 0; jj < nr; jj++) {
                const uint16_t *src = t0;
                if (b->bf16)
                    src = (const uint16_t *)b->p + (j0 + jp + jj) * b->ld + kb;
                else
                    line_bf16(b, j0 + jp + jj, kb, kc, t0);
                for (int p = 0; p < kc / 2; p++) memcpy(d + ((long)p * NR + jj) * 2, src + 2 * p, 4);
                if (kc & 1) d[((long)(kc / 2) * NR + jj) * 2] = src[kc - 1];
            }
        }
        return;
    }
    /* B[k][n]: a row of op(B) is a memory row, read whole (nb values: a
     * sequential stream, where a panel's NR values per row would be a
     * short strided read the prefetchers miss), two rows at a time, the
     * pair's halves */
    for (int kk = 0; kk < kc; kk += 2) {
        line_bf16(b, kb + kk, j0, nb, t0);
        if (kk + 1 < kc)
            line_bf16(b, kb + kk + 1, j0, nb, t1);
        else
            memset(t1, 0, (size_t)nb * 2);
        for (int jp = 0; jp < nb; jp += NR) {
            uint16_t *dk = dst + (long)(jp / NR) * kcap * NR + (long)(kk / 2) * NR * 2;
            int nr = nb - jp < NR ? nb - jp : NR, jj = 0;
#if defined(__AVX512F__)
            for (; jj + 16 <= nr; jj += 16) {
                __m512i lo = _mm512_cvtepu16_epi32(_mm256_loadu_si256((const __m256i *)(t0 + jp + jj)));
                __m512i hi = _mm512_cvtepu16_epi32(_mm256_loadu_si256((const __m256i *)(t1 + jp + jj)));
                _mm512_storeu_si512(dk + jj * 2, _mm512_or_si512(lo, _mm512_slli_epi32(hi, 16)));
            }
#endif
            for (; jj < nr; jj++) dk[jj * 2] = t0[jp + jj], dk[jj * 2 + 1] = t1[jp + jj];
        }
    }
}

/* The portable tile: t[MR][NR] = op(A) rows (f32, lda apart) · a panel of
 * np pairs, widened from bf16 to f32 and multiplied with FMA (the products
 * of two bf16 values are exact in f32, so fused or not is the same). */
static void tile_fma(const float *a, long lda, const uint16_t *b, long np, float *t) {
    vf c[MR][2];
    memset(c, 0, sizeof c);
    for (long p = 0; p < np; p++) {
        const vu *bp = (const vu *)(b + p * 2 * NR);
        vu b0 = bp[0], b1 = bp[1];
        vf e0 = (vf)(b0 << 16), o0 = (vf)(b0 & 0xffff0000u), e1 = (vf)(b1 << 16), o1 = (vf)(b1 & 0xffff0000u);
        UNROLL
        for (int i = 0; i < MR; i++) {
            float ae = a[i * lda + 2 * p], ao = a[i * lda + 2 * p + 1];
            c[i][0] += ae * e0;
            c[i][1] += ae * e1;
            c[i][0] += ao * o0;
            c[i][1] += ao * o1;
        }
    }
    for (int i = 0; i < MR; i++) memcpy(t + i * NR, c[i], sizeof c[i]);
}

#if defined(__AVX512F__)
/* The dot tile (8 × 32): per pair of k, two loads of B and eight
 * broadcasts of A feed sixteen vdpbf16ps, each 16 lanes × 2 products.
 * Compiled for AVX512-BF16 by attribute, not by the level's flags: the
 * feature is independent of VBMI (Cooper Lake has it without VBMI, Ice
 * Lake VBMI without it), so it is checked at run time (gemm_bf16.c). */
#define DOT_ROW(i)                                                                                                   \
    do {                                                                                                             \
        uint32_t ai;                                                                                                 \
        memcpy(&ai, a + (i) * lda + 2 * p, 4);                                                                       \
        __m512bh av = (__m512bh)_mm512_set1_epi32((int)ai);                                                          \
        c##i##0 = _mm512_dpbf16_ps(c##i##0, av, b0);                                                                 \
        c##i##1 = _mm512_dpbf16_ps(c##i##1, av, b1);                                                                 \
    } while (0)
#define DOT_ZERO(i) __m512 c##i##0 = _mm512_setzero_ps(), c##i##1 = _mm512_setzero_ps()
#define DOT_STORE(i) _mm512_storeu_ps(t + (i) * NR, c##i##0), _mm512_storeu_ps(t + (i) * NR + 16, c##i##1)

__attribute__((target("avx512bf16"))) static void tile_dot(const uint16_t *a, long lda, const uint16_t *b, long np,
                                                          float *t) {
    DOT_ZERO(0);
    DOT_ZERO(1);
    DOT_ZERO(2);
    DOT_ZERO(3);
    DOT_ZERO(4);
    DOT_ZERO(5);
    DOT_ZERO(6);
    DOT_ZERO(7);
    for (long p = 0; p < np; p++) {
        __m512bh b0 = (__m512bh)_mm512_load_si512(b + p * 2 * NR), b1 = (__m512bh)_mm512_load_si512(b + p * 2 * NR + 32);
        DOT_ROW(0);
        DOT_ROW(1);
        DOT_ROW(2);
        DOT_ROW(3);
        DOT_ROW(4);
        DOT_ROW(5);
        DOT_ROW(6);
        DOT_ROW(7);
    }
    DOT_STORE(0);
    DOT_STORE(1);
    DOT_STORE(2);
    DOT_STORE(3);
    DOT_STORE(4);
    DOT_STORE(5);
    DOT_STORE(6);
    DOT_STORE(7);
}
#endif

/* One row of a tile into C: the first block of k sets C = alpha·t +
 * beta·C (C not read when beta is 0), the others add alpha·t. */
static inline void row_update(float *c, const float *t, int nv, float alpha, float beta, int first) {
    if (!first)
        for (int x = 0; x < nv; x++) c[x] += alpha * t[x];
    else if (beta == 0)
        for (int x = 0; x < nv; x++) c[x] = alpha * t[x];
    else
        for (int x = 0; x < nv; x++) c[x] = alpha * t[x] + beta * c[x];
}

static void tile_update(float *c, long ldc, const float *t, int mv, int nv, float alpha, float beta, int first) {
    for (int i = 0; i < mv; i++) {
        if (nv == NR) /* a constant bound: vectorised */
            row_update(c + i * ldc, t + i * NR, NR, alpha, beta, first);
        else
            row_update(c + i * ldc, t + i * NR, nv, alpha, beta, first);
    }
}

static void pack_a_task(void *ctx, int ith, int nth) {
    (void)ith, (void)nth;
    Job *j = ctx;
    long i0, i1;
    /* Aᵀ: each task reads a 512-byte piece of every row of A (a longer
     * stream for the prefetchers) and writes its rows' lines (8 KB, in L1) */
    const long chunk = j->a.trans ? 128 : 8 * MR;
    while (tp_next(&j->rows, j->mp, chunk, &i0, &i1)) pack_a(j, i0, i1);
}

static void gemm_task(void *ctx, int ith, int nth) {
    (void)nth;
    Job *j = ctx;
    const long kcap = j->kcap;
    uint16_t *bb = j->bbuf + (size_t)ith * NC_MAX * kcap;
    _Alignas(64) float t[AMX_MR * NR];
    const int mr = j->amx ? AMX_MR : MR;
    long j0, j1;
#if defined(__AVX512F__)
    if (j->amx) gemm_bf16_amx_begin();
#endif
    while (tp_next(&j->cols, j->n, j->nc, &j0, &j1)) {
        int nb = (int)(j1 - j0);
        for (long kb = 0; kb < j->k; kb += kcap) {
            int kc = j->k - kb < kcap ? (int)(j->k - kb) : (int)kcap;
            long np = (kc + 1) / 2;
            pack_b(&j->b, j0, nb, kb, kc, kcap, bb);
            if (j->amx && np % 16) { /* the tiles take 16 pairs at a time: zeros after k (A has them too) */
                long np16 = (np + 15) / 16 * 16;
                for (int jp = 0; jp < nb; jp += NR)
                    memset(bb + (long)(jp / NR) * kcap * NR + np * 2 * NR, 0, (size_t)(np16 - np) * 2 * NR * 2);
                np = np16;
            }
            for (long ic = 0; ic < j->m; ic += MC) {
                long iend = ic + MC < j->m ? ic + MC : j->m;
                for (int jp = 0; jp < nb; jp += NR) {
                    const uint16_t *panel = bb + (long)(jp / NR) * kcap * NR;
                    int nv = nb - jp < NR ? nb - jp : NR;
                    for (long ir = ic; ir < iend; ir += mr) {
                        int mv = j->m - ir < mr ? (int)(j->m - ir) : mr;
                        float *ct = j->c + ir * j->ldc + j0 + jp;
                        /* C's tile is wanted after the tile's products: fetched
                         * meanwhile (a large C, dW's, is out of cache, and rows
                         * ldc apart are not a pattern the prefetchers follow) */
                        for (int i = 0; i < mv; i++)
                            for (int x = 0; x < nv; x += 16) __builtin_prefetch(ct + i * j->ldc + x, 1);
#if defined(__AVX512F__)
                        if (j->amx)
                            gemm_bf16_amx_tile32(j->a16 + ir * j->ka2 + kb, j->ka2, panel, np, t);
                        else if (j->dot)
                            tile_dot(j->a16 + ir * j->ka2 + kb, j->ka2, panel, np, t);
                        else
#endif
                            tile_fma(j->af + ir * j->ka2 + kb, j->ka2, panel, np, t);
                        tile_update(ct, j->ldc, t, mv, nv, j->alpha, j->beta, kb == 0);
                    }
                }
            }
        }
    }
#if defined(__AVX512F__)
    if (j->amx) gemm_bf16_amx_end();
#endif
}

void gemm_bf16_level(ThreadPool *tp, int m, int n, int k, float alpha, GemmMat a, GemmMat b, float beta, float *c,
                     long ldc, int dot) {
    if (m <= 0 || n <= 0) return;
    if (k <= 0 || alpha == 0) { /* C = beta·C, as sgemm: A and B unread */
        for (long i = 0; i < m; i++)
            for (long x = 0; x < n; x++) c[i * ldc + x] = beta == 0 ? 0.0f : beta * c[i * ldc + x];
        return;
    }
    Job j = {.m = m, .n = n, .k = k, .alpha = alpha, .beta = beta, .a = a, .b = b, .c = c, .ldc = ldc};
#if defined(__AVX512F__)
    j.dot = dot && (cpu_features()->bits & CPU_AVX512BF16);
    j.amx = j.dot && dot == 2; /* gemm_bf16_amx_gemm checked the CPU */
#else
    (void)dot;
#endif
    const int mr = j.amx ? AMX_MR : MR;
    j.mp = (m + mr - 1) / mr * mr;
    j.ka2 = j.amx ? (k + 31) & ~31L : (k + 1) & ~1L;
    /* columns per task: whole panels, at most NC_MAX, and a multiple of
     * the threads' count of tasks so that they finish together */
    const int nth = tp_size(tp), panels = (n + NR - 1) / NR, max_panels = NC_MAX / NR;
    int tasks = nth * ((panels + nth * max_panels - 1) / (nth * max_panels));
    j.nc = (panels + tasks - 1) / tasks * NR;
    size_t abytes = (size_t)j.mp * (size_t)j.ka2 * (j.dot ? 2 : 4);
    abytes = (abytes + 63) & ~(size_t)63;
    j.kcap = j.amx ? AMX_KC : KC;
    char *mem = xaligned_alloc(abytes + (size_t)nth * NC_MAX * (size_t)j.kcap * 2);
    if (j.dot)
        j.a16 = (uint16_t *)mem;
    else
        j.af = (float *)mem;
    j.bbuf = (uint16_t *)(mem + abytes);
    tp_run_shared(tp, pack_a_task, &j);
    tp_run_shared(tp, gemm_task, &j);
    free(mem);
}

/* ---- decode: bf16 rows against one activation rounded to bf16 ---- */

void gemm_bf16_round(const float *x, uint16_t *out, long n) {
    GemmMat g = {x, 0, 0, n};
    line_bf16(&g, 0, 0, n, out);
}

#if defined(__AVX512F__)
/* One row against x, both bf16: vdpbf16ps takes 32 values of each per
 * instruction (the f32 dot of quant.c widens 16 weights per FMA, two
 * instructions more), four accumulators for its latency; the last n % 32
 * values come in by masked loads (zeros past the end add nothing). */
__attribute__((target("avx512bf16"))) static ALWAYS_INLINE float row_dot_bf16_pf(int pf, const uint16_t *w, const uint16_t *x, long n) {
    __m512 a0 = _mm512_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
    long i = 0;
    for (; i + 128 <= n; i += 128) {
        /* the weights first (LOADS_FIRST, quant_internal.h) */
        __m512i w0 = _mm512_loadu_si512(w + i), w1 = _mm512_loadu_si512(w + i + 32);
        __m512i w2 = _mm512_loadu_si512(w + i + 64), w3 = _mm512_loadu_si512(w + i + 96);
        LOADS_FIRST(w0, w1, w2, w3);
        prefetch_ahead_l2(pf, w + i, 4); /* 256 bytes a step */
        a0 = _mm512_dpbf16_ps(a0, (__m512bh)w0, (__m512bh)_mm512_loadu_si512(x + i));
        a1 = _mm512_dpbf16_ps(a1, (__m512bh)w1, (__m512bh)_mm512_loadu_si512(x + i + 32));
        a2 = _mm512_dpbf16_ps(a2, (__m512bh)w2, (__m512bh)_mm512_loadu_si512(x + i + 64));
        a3 = _mm512_dpbf16_ps(a3, (__m512bh)w3, (__m512bh)_mm512_loadu_si512(x + i + 96));
    }
    for (; i < n; i += 32) {
        __mmask32 m = n - i >= 32 ? (__mmask32)~0u : (__mmask32)((1u << (n - i)) - 1);
        a0 = _mm512_dpbf16_ps(a0, (__m512bh)_mm512_maskz_loadu_epi16(m, w + i), (__m512bh)_mm512_maskz_loadu_epi16(m, x + i));
    }
    return _mm512_reduce_add_ps(_mm512_add_ps(_mm512_add_ps(a0, a1), _mm512_add_ps(a2, a3)));
}
__attribute__((target("avx512bf16"))) static float row_dot_bf16(const uint16_t *w, const uint16_t *x, long n) {
    float r = 0;
    WITH_PREFETCH_MODE(r = row_dot_bf16_pf(pf, w, x, n));
    return r;
}
#endif

/* The same products widened to f32 (exact) and summed by FMA: the path
 * without the BF16 dot instructions. */
static float row_fma_bf16(const uint16_t *w, const uint16_t *x, long n) {
    float s[4] = {0, 0, 0, 0};
    long i = 0;
    for (; i + 4 <= n; i += 4)
        for (int l = 0; l < 4; l++) s[l] += bf16_f32(w[i + l]) * bf16_f32(x[i + l]);
    for (; i < n; i++) s[0] += bf16_f32(w[i]) * bf16_f32(x[i]);
    return (s[0] + s[1]) + (s[2] + s[3]);
}

void gemm_bf16_rows(const uint16_t *rows, size_t rb, int nrows, const uint16_t *x, long n, float *out, int dot) {
#if defined(__AVX512F__)
    if (dot && (cpu_features()->bits & CPU_AVX512BF16)) {
        for (int r = 0; r < nrows; r++) out[r] = row_dot_bf16((const uint16_t *)((const char *)rows + r * rb), x, n);
        return;
    }
#else
    (void)dot;
#endif
    for (int r = 0; r < nrows; r++) out[r] = row_fma_bf16((const uint16_t *)((const char *)rows + r * rb), x, n);
}

/* ---- prefill on BF16 weights: W's rows as the broadcast operand ----
 * y[n][rows] = x·Wᵀ as the general GEMM computes it with A = x and B = Wᵀ
 * would pack all of W (every call, as B) -- a third of the time of a
 * 128-token prefill (perf, Llama-3.2-1B BF16), and at 8B W is hundreds of
 * MB read and written once more per matmul. Here the roles swap: x, small,
 * is packed once per call into B's panel layout (NR tokens, k in pairs);
 * W's rows, already bf16 with k in pairs in memory, are tile_dot's A as
 * they are (lda = cols), MR rows at a time; the tile comes out transposed
 * into y. Each element of y is the same sum in the same order as
 * gemm_bf16_level's (one f32 lane over a KC block's pairs, then the blocks
 * added into y in order), so the two agree bit for bit. Rows are handed
 * out XWT_ROWS at a time; for each block of k, the row block's tiles pass
 * over the packed x of that block (NR·KC bf16 a panel) while it is in L2. */
#if defined(__AVX512F__)
#define XWT_ROWS 64

typedef struct XwtJob {
    float *y;
    const uint16_t *w;
    GemmMat xt; /* op(B) = xᵀ: x[n][cols] f32, transposed */
    int n, rows, cols, kblocks, panels;
    uint16_t *xp;  /* packed x: panel (kb, p) at (kb·panels + p)·KC·NR */
    uint16_t *pad; /* per thread: MR rows of cols, for a last partial tile */
    float *acc;    /* per thread: a row block's tiles for every panel */
    TpCounter pack, next;
} XwtJob;

static void xwt_pack_task(void *ctx, int ith, int nth) {
    (void)ith, (void)nth;
    XwtJob *j = ctx;
    long u0, u1;
    while (tp_next(&j->pack, (long)j->kblocks * j->panels, 1, &u0, &u1)) {
        long kb = u0 / j->panels, p = u0 % j->panels;
        int nb = j->n - (int)p * NR < NR ? j->n - (int)p * NR : NR;
        int kc = j->cols - (int)kb * KC < KC ? j->cols - (int)kb * KC : KC;
        pack_b(&j->xt, p * NR, nb, kb * KC, kc, KC, j->xp + u0 * KC * NR);
    }
}

static void xwt_task(void *ctx, int ith, int nth) {
    (void)nth;
    XwtJob *j = ctx;
    float t[MR * NR];
    /* the row block's tiles, summed over the blocks of k in place (tile
     * by tile, contiguous), written into y (transposed) once at the end */
    float *acc = j->acc + (long)ith * (XWT_ROWS / MR) * j->panels * MR * NR;
    long r0, r1;
    while (tp_next(&j->next, j->rows, XWT_ROWS, &r0, &r1)) {
        /* rows past the last whole tile (only in W's last block), zero-padded to one */
        long whole = r0 + (r1 - r0) / MR * MR;
        uint16_t *pad = j->pad + (long)ith * MR * j->cols;
        if (whole < r1) {
            memset(pad, 0, (size_t)MR * (size_t)j->cols * 2);
            memcpy(pad, j->w + whole * j->cols, (size_t)(r1 - whole) * (size_t)j->cols * 2);
        }
        for (int kb = 0; kb < j->kblocks; kb++) {
            int kc = j->cols - kb * KC < KC ? j->cols - kb * KC : KC;
            for (long ir = r0; ir < r1; ir += MR) {
                const uint16_t *a = ir < whole ? j->w + ir * j->cols : pad;
                for (int p = 0; p < j->panels; p++) {
                    float *at = acc + ((ir - r0) / MR * j->panels + p) * MR * NR;
                    const uint16_t *xp = j->xp + ((long)kb * j->panels + p) * KC * NR;
                    if (kb == 0) { /* y = 1·t, then y += 1·t per block: gemm_bf16_level's sums */
                        tile_dot(a + (long)kb * KC, j->cols, xp, (kc + 1) / 2, at);
                        continue;
                    }
                    tile_dot(a + (long)kb * KC, j->cols, xp, (kc + 1) / 2, t);
                    for (int q = 0; q < MR * NR; q++) at[q] += t[q];
                }
            }
        }
        for (long ir = r0; ir < r1; ir += MR) {
            int mv = r1 - ir < MR ? (int)(r1 - ir) : MR;
            for (int p = 0; p < j->panels; p++) {
                const float *at = acc + ((ir - r0) / MR * j->panels + p) * MR * NR;
                int nv = j->n - p * NR < NR ? j->n - p * NR : NR;
                for (int c = 0; c < nv; c++) {
                    float *yr = j->y + (long)(p * NR + c) * j->rows + ir;
                    for (int i = 0; i < mv; i++) yr[i] = at[i * NR + c];
                }
            }
        }
    }
}
#endif

void gemm_bf16_xwt_level(ThreadPool *tp, float *y, const float *x, int n, const uint16_t *w, int rows, int cols,
                         int dot) {
#if defined(__AVX512F__)
    /* k in whole pairs within each row of W (every model's widths are even) */
    if (dot && (cpu_features()->bits & CPU_AVX512BF16) && !(cols & 1) && n > 0 && rows > 0) {
        XwtJob j = {.y = y, .w = w, .xt = {x, 0, 1, cols}, .n = n, .rows = rows, .cols = cols};
        j.kblocks = (cols + KC - 1) / KC;
        j.panels = (n + NR - 1) / NR;
        size_t xbytes = (size_t)j.kblocks * (size_t)j.panels * KC * NR * 2, nth = (size_t)tp_size(tp);
        size_t abytes = nth * (XWT_ROWS / MR) * (size_t)j.panels * MR * NR * 4;
        char *mem = xaligned_alloc(xbytes + abytes + nth * MR * (size_t)cols * 2);
        j.xp = (uint16_t *)mem;
        j.acc = (float *)(mem + xbytes);
        j.pad = (uint16_t *)(mem + xbytes + abytes);
        tp_run_shared(tp, xwt_pack_task, &j);
        tp_run_shared(tp, xwt_task, &j);
        free(mem);
        return;
    }
#endif
    gemm_bf16_level(tp, n, rows, cols, 1.0f, (GemmMat){x, 0, 0, cols}, (GemmMat){w, 1, 1, cols}, 0.0f, y, rows, dot);
}
