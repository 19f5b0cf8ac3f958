#include "kernels/klevel.h" /* first: built once per kernel level */
#include "kernels/attention.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "base/mem.h"
#include "formats/dtype.h"
#include "kernels/ops.h"
#include "kernels/quant.h"

typedef struct AttnJob {
    float *out;
    const float *q;
    int n;
    const AttnShape *s;
    const AttnCache *caches;
    const int *pos;
    float *scores; /* max_len floats per thread */
    int max_len;
    TpCounter items;
} AttnJob;

/* The first key position a query at pos sees. */
static int attn_first(const AttnShape *s, int pos) {
    return s->window > 0 && pos - s->window + 1 > 0 ? pos - s->window + 1 : 0;
}

static long attn_pos_stride(const AttnShape *s, const AttnCache *c) {
    return c->pos_stride ? c->pos_stride : (long)s->n_kv_heads * s->head_dim;
}
static long attn_head_stride(const AttnShape *s, const AttnCache *c) { return c->head_stride ? c->head_stride : s->head_dim; }

/* Element i of a cache row or plane of the given type. */
static float kv_at(const void *p, long i, int type) {
    return type == DT_F16 ? f16_to_f32(((const uint16_t *)p)[i]) : ((const float *)p)[i];
}

#if defined(__AVX2__) && defined(__FMA__)
#include <immintrin.h>

#define ALWAYS_INLINE inline __attribute__((always_inline))
/* the loops over a head's registers: unrolled, so that the query and the
 * accumulators stay in registers (gcc 12 kept them on the stack otherwise:
 * a store-to-load chain per position) */
#define UNROLL _Pragma("GCC unroll 16")

/* One vector of W floats: 512-bit with AVX-512 (twice the FMAs per
 * instruction, and 32 registers for a head of 128), else 256-bit. */
#ifdef __AVX512F__
#define W 16
typedef __m512 Vec;
#define v_load _mm512_loadu_ps
#define v_store _mm512_storeu_ps
#define v_set1 _mm512_set1_ps
#define v_mul _mm512_mul_ps
#define v_fmadd _mm512_fmadd_ps
/* lanes 0-7 plus lanes 8-15 */
static ALWAYS_INLINE __m256 v_fold(Vec a) {
    return _mm256_add_ps(_mm512_castps512_ps256(a), _mm256_castpd_ps(_mm512_extractf64x4_pd(_mm512_castps_pd(a), 1)));
}
#ifdef __F16C__ /* f16 caches in vectors (else they take the generic path) */
static ALWAYS_INLINE Vec v_load_half(const void *p) { return _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)p)); }
#endif
#else
#define W 8
typedef __m256 Vec;
#define v_load _mm256_loadu_ps
#define v_store _mm256_storeu_ps
#define v_set1 _mm256_set1_ps
#define v_mul _mm256_mul_ps
#define v_fmadd _mm256_fmadd_ps
static ALWAYS_INLINE __m256 v_fold(Vec a) { return a; }
#ifdef __F16C__
static ALWAYS_INLINE Vec v_load_half(const void *p) { return _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)p)); }
#endif
#endif

/* The sum of each of d[0..7]'s lanes, as one vector in that order: a
 * transpose by horizontal adds, for eight positions at once. */
static ALWAYS_INLINE __m256 sum8(const __m256 d[8]) {
    __m256 t0 = _mm256_hadd_ps(d[0], d[1]), t1 = _mm256_hadd_ps(d[2], d[3]);
    __m256 t2 = _mm256_hadd_ps(d[4], d[5]), t3 = _mm256_hadd_ps(d[6], d[7]);
    __m256 u0 = _mm256_hadd_ps(t0, t1), u1 = _mm256_hadd_ps(t2, t3);
    /* u0: lanes 0-3 the first 128 bits' sums of d[0..3], 4-7 the second's; u1 for d[4..7] */
    return _mm256_add_ps(_mm256_permute2f128_ps(u0, u1, 0x20), _mm256_permute2f128_ps(u0, u1, 0x31));
}

/* Positions p0..p1 of a cache whose rows are `row` elements apart, as f32
 * rows: the cache itself when it is f32 (*stride = row), else (F16, a
 * constant at each use) converted into buf, HD floats apart -- once per
 * block, then read from L1 by every head of the group. Position p0's row. */
static ALWAYS_INLINE const float *kv_block(int HD, int F16, const void *src, long row, int p0, int p1, float *buf,
                                           long *stride) {
    if (!F16) {
        *stride = row;
        return (const float *)src + (long)p0 * row;
    }
#ifndef __F16C__
    (void)p1; /* never reached: f16 caches take the generic path without F16C */
#else
    for (int p = p0; p < p1; p++) {
        const uint16_t *h = (const uint16_t *)src + (long)p * row;
        UNROLL
        for (int i = 0; i < HD / W; i++) v_store(buf + (long)(p - p0) * HD + W * i, v_load_half(h + W * i));
    }
#endif
    *stride = HD;
    return buf;
}

/* Heads of a group weighted together over the values: how many, for a
 * head of HD floats. One head alone is a chain of dependent FMAs per
 * accumulator (a position's FMA waits for the previous one's, ~4 cycles);
 * several heads sharing each value load give as many independent chains,
 * up to ~16 accumulator registers. */
#ifdef __AVX512F__
#define V_HEADS(HD) ((HD) == 64 ? 4 : 2)
#else
#define V_HEADS(HD) 1
#endif

/* out[g] += sum over the n positions of sc[g * sstride + p] * v[p] (rows
 * `stride` floats apart), for GB heads (GB, HD constants at each use:
 * accumulators in registers). */
static ALWAYS_INLINE void attn_v_heads(int HD, int GB, const float *v, long stride, int n, const float *sc,
                                       long sstride, float *out) {
    Vec acc[4][128 / W];
    UNROLL
    for (int g = 0; g < GB; g++) {
        UNROLL
        for (int i = 0; i < HD / W; i++) acc[g][i] = v_load(out + (long)g * HD + W * i);
    }
    for (int p = 0; p < n; p++) {
        Vec x[128 / W];
        UNROLL
        for (int i = 0; i < HD / W; i++) x[i] = v_load(v + (long)p * stride + W * i);
        UNROLL
        for (int g = 0; g < GB; g++) {
            Vec w = v_set1(sc[g * sstride + p]);
            UNROLL
            for (int i = 0; i < HD / W; i++) acc[g][i] = v_fmadd(w, x[i], acc[g][i]);
        }
    }
    UNROLL
    for (int g = 0; g < GB; g++) {
        UNROLL
        for (int i = 0; i < HD / W; i++) v_store(out + (long)g * HD + W * i, acc[g][i]);
    }
}

/* The G query heads that share one key/value head (G = n_heads /
 * n_kv_heads, consecutive in q and out), of HD values (a multiple of W,
 * a constant at each use, so that a head's query and output stay in
 * registers), over len cache rows `row` elements apart (f32, or f16 with
 * F16). Positions go in blocks of 16 KB of f32 keys (or values): a block
 * is read from the cache once and then from L1 by every head of the group,
 * where one head at a time read the whole cache G times (7 for
 * Qwen2.5-0.5B). The scores of head g go to scores + g * sstride. */
static ALWAYS_INLINE void attn_group_simd(int HD, int G, int F16, const float *q, const void *k, const void *v, long row,
                                          int len, float scale, float softcap, float *scores, long sstride,
                                          float *out) {
    enum { BLOCK_FLOATS = 4096 };
    const int block = BLOCK_FLOATS / HD;
    _Alignas(64) float buf[BLOCK_FLOATS]; /* the converted block of an f16 cache */
    for (int p0 = 0; p0 < len; p0 += block) {
        int p1 = p0 + block < len ? p0 + block : len;
        long ks;
        const float *kb = kv_block(HD, F16, k, row, p0, p1, buf, &ks);
        for (int g = 0; g < G; g++) {
            Vec qv[128 / W];
            UNROLL
            for (int i = 0; i < HD / W; i++) qv[i] = v_load(q + (long)g * HD + W * i);
            float *sc = scores + g * sstride + p0;
            int p = 0, n = p1 - p0;
            for (; p + 8 <= n; p += 8) { /* eight positions' sums reduced together */
                __m256 d[8];
                UNROLL
                for (int j = 0; j < 8; j++) {
                    const float *kp = kb + (long)(p + j) * ks;
                    Vec a = v_mul(qv[0], v_load(kp));
                    UNROLL
                    for (int i = 1; i < HD / W; i++) a = v_fmadd(qv[i], v_load(kp + W * i), a);
                    d[j] = v_fold(a);
                }
                _mm256_storeu_ps(sc + p, _mm256_mul_ps(sum8(d), _mm256_set1_ps(scale)));
            }
            for (; p < n; p++) {
                const float *kp = kb + (long)p * ks;
                Vec a = v_mul(qv[0], v_load(kp));
                UNROLL
                for (int i = 1; i < HD / W; i++) a = v_fmadd(qv[i], v_load(kp + W * i), a);
                __m256 f = v_fold(a);
                __m128 h = _mm_add_ps(_mm256_castps256_ps128(f), _mm256_extractf128_ps(f, 1));
                h = _mm_add_ps(h, _mm_movehl_ps(h, h));
                h = _mm_add_ss(h, _mm_movehdup_ps(h));
                sc[p] = _mm_cvtss_f32(h) * scale;
            }
        }
    }
    for (int g = 0; g < G; g++) {
        if (softcap > 0) softcap_forward(scores + g * sstride, len, softcap);
        softmax_forward(scores + g * sstride, len);
    }
    memset(out, 0, (size_t)G * HD * sizeof(float));
    for (int p0 = 0; p0 < len; p0 += block) {
        int p1 = p0 + block < len ? p0 + block : len;
        long vs;
        const float *vb = kv_block(HD, F16, v, row, p0, p1, buf, &vs);
        for (int g = 0; g < G; g += V_HEADS(HD)) {
            float *o = out + (long)g * HD;
            const float *sc = scores + g * sstride + p0;
            switch (G - g < V_HEADS(HD) ? G - g : V_HEADS(HD)) {
            case 1: attn_v_heads(HD, 1, vb, vs, p1 - p0, sc, sstride, o); break;
            case 2: attn_v_heads(HD, 2, vb, vs, p1 - p0, sc, sstride, o); break;
            case 3: attn_v_heads(HD, 3, vb, vs, p1 - p0, sc, sstride, o); break;
            default: attn_v_heads(HD, 4, vb, vs, p1 - p0, sc, sstride, o); break;
            }
        }
    }
}
#endif

/* Query token t's heads of key/value head kvh; scores: G rows of max_len. */
static void attn_group(const AttnJob *j, int t, int kvh, float *scores) {
    const AttnShape *s = j->s;
    int hd = s->head_dim, G = s->n_heads / s->n_kv_heads;
    const AttnCache *c = &j->caches[t];
    long row = attn_pos_stride(s, c);
    const float *q = j->q + ((long)t * s->n_heads + (long)kvh * G) * hd;
    int f16 = c->type == DT_F16, es = f16 ? 2 : 4; /* element bytes */
    int first = attn_first(s, j->pos[t]), len = j->pos[t] + 1 - first;
    long start = kvh * attn_head_stride(s, c) + (long)first * row; /* elements */
    const void *k = (const char *)c->k + start * es, *v = (const char *)c->v + start * es;
    float *out = j->out + ((long)t * s->n_heads + (long)kvh * G) * hd;
    float scale = s->scale > 0 ? s->scale : 1.0f / sqrtf((float)hd);
#if defined(__AVX2__) && defined(__FMA__)
    /* the usual head sizes; each a constant in its own copy */
    if (hd == 64 && !f16) {
        attn_group_simd(64, G, 0, q, k, v, row, len, scale, s->softcap, scores, j->max_len, out);
        return;
    }
    if (hd == 128 && !f16) {
        attn_group_simd(128, G, 0, q, k, v, row, len, scale, s->softcap, scores, j->max_len, out);
        return;
    }
#ifdef __F16C__
    if (hd == 64 && f16) {
        attn_group_simd(64, G, 1, q, k, v, row, len, scale, s->softcap, scores, j->max_len, out);
        return;
    }
    if (hd == 128 && f16) {
        attn_group_simd(128, G, 1, q, k, v, row, len, scale, s->softcap, scores, j->max_len, out);
        return;
    }
#endif
#endif
    for (int g = 0; g < G; g++) {
        const float *qg = q + (long)g * hd;
        float *og = out + (long)g * hd;
        if (!f16) {
            for (int p = 0; p < len; p++) scores[p] = dot_f32(qg, (const float *)k + (long)p * row, hd) * scale;
        } else {
            for (int p = 0; p < len; p++) {
                float d = 0;
                for (int i = 0; i < hd; i++) d += qg[i] * kv_at(k, (long)p * row + i, DT_F16);
                scores[p] = d * scale;
            }
        }
        if (s->softcap > 0) softcap_forward(scores, len, s->softcap);
        softmax_forward(scores, len);
        memset(og, 0, (size_t)hd * sizeof(float));
        for (int p = 0; p < len; p++) {
            if (!f16) {
                axpy_f32(og, scores[p], (const float *)v + (long)p * row, hd);
            } else {
                for (int i = 0; i < hd; i++) og[i] += scores[p] * kv_at(v, (long)p * row + i, DT_F16);
            }
        }
    }
}

/* Items are (token, key/value head) pairs, one at a time: each is G heads'
 * work over the token's whole context. */
static void attn_task(void *ctx, int ith, int nth) {
    AttnJob *j = ctx;
    const AttnShape *s = j->s;
    float *scores = j->scores + (long)ith * j->max_len * (s->n_heads / s->n_kv_heads);
    (void)nth;
    long items = (long)j->n * s->n_kv_heads, a, b;
    while (tp_next(&j->items, items, 1, &a, &b))
        for (long i = a; i < b; i++) attn_group(j, (int)(i / s->n_kv_heads), (int)(i % s->n_kv_heads), scores);
}

void attention_forward(ThreadPool *tp, float *out, const float *q, int n, const AttnShape *s, const AttnCache *caches,
                       const int *pos) {
    int max_len = 1;
    for (int t = 0; t < n; t++) max_len = pos[t] + 1 > max_len ? pos[t] + 1 : max_len;
    max_len = (max_len + 15) & ~15; /* keep each thread's scores on their own cache lines */
    AttnJob j = {out, q, n, s, caches, pos, NULL, max_len, {0}};
    size_t bytes = (size_t)max_len * (size_t)(s->n_heads / s->n_kv_heads) * sizeof(float) * (size_t)tp_size(tp);
    /* without a pool (tp NULL: the caller's thread) a buffer of its own */
    float *owned = tp ? NULL : xaligned_alloc(bytes);
    j.scores = tp ? tp_scratch(tp, bytes) : owned;
    tp_run_shared(tp, attn_task, &j);
    free(owned);
}

void attention_forward_ref(float *out, const float *q, int n, const AttnShape *s, const AttnCache *caches,
                           const int *pos) {
    int hd = s->head_dim, group = s->n_heads / s->n_kv_heads;
    for (int t = 0; t < n; t++) {
        long row = attn_pos_stride(s, &caches[t]), hs = attn_head_stride(s, &caches[t]);
        int len = pos[t] + 1;
        double *w = xmalloc((size_t)len * sizeof(double));
        for (int h = 0; h < s->n_heads; h++) {
            const float *qh = q + ((long)t * s->n_heads + h) * hd;
            const AttnCache *c = &caches[t];
            long base = (h / group) * hs;
            double max = -INFINITY, sum = 0;
            for (int p = 0; p < attn_first(s, pos[t]); p++) w[p] = -INFINITY;
            for (int p = attn_first(s, pos[t]); p < len; p++) {
                double d = 0;
                for (int i = 0; i < hd; i++) d += (double)qh[i] * kv_at(c->k, base + (long)p * row + i, c->type);
                w[p] = s->scale > 0 ? d * s->scale : d / sqrt((double)hd);
                if (s->softcap > 0) w[p] = s->softcap * tanh(w[p] / s->softcap);
                if (w[p] > max) max = w[p];
            }
            for (int p = 0; p < len; p++) sum += (w[p] = exp(w[p] - max)); /* exp(-inf) = 0 */
            for (int i = 0; i < hd; i++) {
                double o = 0;
                for (int p = 0; p < len; p++) o += w[p] / sum * kv_at(c->v, base + (long)p * row + i, c->type);
                out[((long)t * s->n_heads + h) * hd + i] = (float)o;
            }
        }
        free(w);
    }
}
