/* `aloe convert --type q4_k` and `--type q6_k` on a model whose rows are
 * wide enough for K-quants (README, aloe convert): the file really holds
 * Q4_K / Q6_K matrices where the rows are multiples of 256, Q8_0 where they
 * are not (the ffn_down rows here are 320 wide), F32 vectors; each block
 * decodes (by the format, decoded here independently of aloe) to values
 * within the error the format allows; and the model's logits stay within
 * the README's bounds of the f32 model's.
 *
 * The error bounds, per value x stored as y, in steps of its sub-block's grid:
 *   Q4_K: a super-block of 256 values is 8 sub-blocks of 32; sub-block j
 *     has the grid y = d*sc_j*q - dmin*m_j, q = 0..15 (d, dmin f16; sc_j,
 *     m_j 6-bit). ggml's quantiser (aloe's follows it) picks the grid, then
 *     rounds every value to its nearest point with the stored scale and
 *     min: exact property checked, so a value inside the grid's span is
 *     within half a step. A value outside the span is clamped to its end;
 *     the span is a weighted least-squares fit to the sub-block (it may
 *     give up an extreme value to place the bulk better) whose scale and
 *     min are then rounded to 6 bits of the super-block's largest. Bound:
 *     1.5 steps (half a step of rounding, at most one step outside the
 *     span). Seen here: 1.39 (q4_k), 1.02 (q6_k). A wrong scale, min or
 *     bit layout misplaces values by many steps.
 *   Q6_K: 16 sub-blocks of 16, grid y = d*sc_j*q, q = -32..31, sc_j int8:
 *     the same nearest-point rule and bound.
 *   Q8_0: blocks of 32, grid d*q, q = -127..127, d = max|x|/127 stored in
 *     f16. The values are rounded with the unrounded d (as llama.cpp does),
 *     so the stored grid is off by at most 127 times d's f16 rounding
 *     (2^-11 relative): bound 0.5 + 127 * 2^-11 = 0.562 steps.
 * And every decoded value equals aloe's own dequantize_row exactly. */
#include <stdlib.h>

#include "base/fileio.h"
#include "base/mem.h"
#include "formats/dtype.h"
#include "formats/gguf.h"
#include "model/decoder.h"
#include "test.h"
#include "model_logits.h"
#include "wide_hf.h"

#define KQ_BOUND_STEPS 1.5
#define Q8_0_BOUND_STEPS (0.5 + 127.0 / 2048)
/* Q5_0 (ggml's rule): d = m / -16 with m the value of largest magnitude,
 * so m itself is q = 0 and a value of the other sign up to |m| would need
 * q - 16 = +16, one past the largest code 15: the clamp costs up to one
 * step there (half a step elsewhere), plus the f16 rounding of d (2^-11
 * relative) times the largest |q - 16|, 16. */
#define Q5_0_BOUND_STEPS (1.0 + 16.0 / 2048)

/* ---- independent block decoders: grid step and values ---- */

static void q4k_scale_min(int j, const uint8_t *q, int *sc, int *m) {
    if (j < 4) {
        *sc = q[j] & 63, *m = q[j + 4] & 63;
    } else {
        *sc = (q[j + 4] & 0xF) | ((q[j - 4] >> 6) << 4);
        *m = (q[j + 4] >> 4) | ((q[j] >> 6) << 4);
    }
}

/* Decodes one Q4_K super-block into y[256]; step[j], lo[j] of each of its 8
 * sub-blocks. */
static void q4k_decode(const BlockQ4_K *b, float *y, float *step, float *lo) {
    float d = f16_to_f32(b->d), dmin = f16_to_f32(b->dmin);
    const uint8_t *q = b->qs;
    for (int j = 0; j < 8; j += 2) {
        int sc1, m1, sc2, m2;
        q4k_scale_min(j, b->scales, &sc1, &m1);
        q4k_scale_min(j + 1, b->scales, &sc2, &m2);
        step[j] = d * sc1, lo[j] = -dmin * m1;
        step[j + 1] = d * sc2, lo[j + 1] = -dmin * m2;
        for (int l = 0; l < 32; l++) y[j * 32 + l] = step[j] * (q[l] & 0xF) + lo[j];
        for (int l = 0; l < 32; l++) y[(j + 1) * 32 + l] = step[j + 1] * (q[l] >> 4) + lo[j + 1];
        q += 32;
    }
}

/* Decodes one Q6_K super-block into y[256]; step[j] of its 16 sub-blocks. */
static void q6k_decode(const BlockQ6_K *b, float *y, float *step) {
    float d = f16_to_f32(b->d);
    const uint8_t *ql = b->ql, *qh = b->qh;
    const int8_t *sc = b->scales;
    for (int j = 0; j < 16; j++) step[j] = d * sc[j];
    for (int n = 0; n < 256; n += 128) {
        for (int l = 0; l < 32; l++) {
            int is = l / 16;
            int q1 = (int)((ql[l] & 0xF) | (((qh[l] >> 0) & 3) << 4)) - 32;
            int q2 = (int)((ql[l + 32] & 0xF) | (((qh[l] >> 2) & 3) << 4)) - 32;
            int q3 = (int)((ql[l] >> 4) | (((qh[l] >> 4) & 3) << 4)) - 32;
            int q4 = (int)((ql[l + 32] >> 4) | (((qh[l] >> 6) & 3) << 4)) - 32;
            y[n + l] = d * sc[n / 16 + is] * q1;
            y[n + l + 32] = d * sc[n / 16 + is + 2] * q2;
            y[n + l + 64] = d * sc[n / 16 + is + 4] * q3;
            y[n + l + 96] = d * sc[n / 16 + is + 6] * q4;
        }
        ql += 64, qh += 32;
    }
}

typedef struct {
    double worst_steps; /* max |x - y| / step of its sub-block */
    long not_nearest;   /* values inside the span not at their nearest point */
    long n;
} Fit;

/* x, y: one sub-block of n values on the grid lo + step*q, q in [qmin, qmax]. */
static void fit_sub(const float *x, const float *y, int n, float step, float lo, int qmin, int qmax, Fit *f) {
    double a = fabs((double)step);
    double span_lo = lo + (double)step * (step >= 0 ? qmin : qmax), span_hi = lo + (double)step * (step >= 0 ? qmax : qmin);
    for (int i = 0; i < n; i++, f->n++) {
        double err = fabs((double)x[i] - y[i]);
        /* float rounding of the decoder's product and of the search */
        double eps = 1e-6 * (fabs((double)x[i]) + fabs(lo) + a * 32) + 1e-9;
        if (a == 0) {
            f->worst_steps = fmax(f->worst_steps, err > eps ? INFINITY : 0);
            continue;
        }
        f->worst_steps = fmax(f->worst_steps, err / a);
        if (x[i] >= span_lo && x[i] <= span_hi && err > a / 2 + eps) f->not_nearest++;
    }
}

/* Checks every block of tensor t (Q4_K, Q6_K or Q8_0) against the source
 * values x; fills f. */
static void fit_tensor(const TensorView *t, const float *x, Fit *f, float *decoded) {
    memset(f, 0, sizeof *f);
    int64_t rows = tensor_rows(t), cols = tensor_cols(t);
    const char *p = t->data;
    float y[256], step[16], lo[16];
    for (int64_t r = 0; r < rows; r++) {
        const float *xr = x + r * cols;
        for (int64_t c = 0; c < cols;) {
            if (t->dtype == DT_Q4_K) {
                q4k_decode((const BlockQ4_K *)p, y, step, lo);
                for (int j = 0; j < 8; j++) fit_sub(xr + c + 32 * j, y + 32 * j, 32, step[j], lo[j], 0, 15, f);
                memcpy(decoded + r * cols + c, y, 256 * sizeof(float));
                p += sizeof(BlockQ4_K), c += 256;
            } else if (t->dtype == DT_Q6_K) {
                q6k_decode((const BlockQ6_K *)p, y, step);
                for (int j = 0; j < 16; j++) fit_sub(xr + c + 16 * j, y + 16 * j, 16, step[j], 0, -32, 31, f);
                memcpy(decoded + r * cols + c, y, 256 * sizeof(float));
                p += sizeof(BlockQ6_K), c += 256;
            } else if (t->dtype == DT_Q5_0) { /* Q4_K's fallback: x = d*(q - 16), q of 5 bits */
                const BlockQ5_0 *b = (const BlockQ5_0 *)p;
                float d = f16_to_f32(b->d);
                uint32_t qh;
                memcpy(&qh, b->qh, 4);
                for (int l = 0; l < 16; l++) {
                    y[l] = d * (float)((int)((b->qs[l] & 15) | ((qh >> l) & 1) << 4) - 16);
                    y[l + 16] = d * (float)((int)((b->qs[l] >> 4) | ((qh >> (l + 16)) & 1) << 4) - 16);
                }
                fit_sub(xr + c, y, 32, d, 0, -16, 15, f);
                memcpy(decoded + r * cols + c, y, 32 * sizeof(float));
                p += sizeof(BlockQ5_0), c += 32;
            } else { /* Q8_0 */
                const BlockQ8_0 *b = (const BlockQ8_0 *)p;
                float d = f16_to_f32(b->d);
                for (int l = 0; l < 32; l++) y[l] = d * b->qs[l];
                fit_sub(xr + c, y, 32, d, 0, -127, 127, f);
                memcpy(decoded + r * cols + c, y, 32 * sizeof(float));
                p += sizeof(BlockQ8_0), c += 32;
            }
        }
    }
}

/* The random wide model both tests convert: its HF directory in a fresh
 * temporary folder, n (at most 48) token ids drawn from seed, and the f32
 * logits. */
typedef struct {
    WideHF w;
    char *tmp, *hf, *bin;
    int32_t ids[48];
    float *ref;
} WideRun;

/* 1 when the shared fixtures are absent (nothing left to free), -1 on an
 * error (in *e), else 0. */
static int wide_run_init(WideRun *x, WideSpec sp, int n, uint64_t seed, Err *e) {
    *x = (WideRun){0};
    wide_hf_build(&x->w, &sp);
    x->tmp = test_tmpdir(), x->hf = path_join(x->tmp, "wide");
    int rc = wide_hf_write(&x->w, &sp, x->hf, e);
    if (rc == 1) {
        wide_hf_free(&x->w);
        test_system("rm -rf '%s'", x->tmp);
        free(x->hf), free(x->tmp);
        return 1;
    }
    for (int i = 0; i < n; i++) x->ids[i] = (int32_t)(wide_mix(&seed) % WIDE_VOCAB);
    x->bin = test_build_path("aloe");
    return rc ? -1 : logits_of(x->hf, x->ids, n, &x->ref, NULL, e);
}

static void wide_run_free(WideRun *x) {
    free(x->bin), free(x->ref), free(x->hf);
    test_system("rm -rf '%s'", x->tmp);
    free(x->tmp);
    wide_hf_free(&x->w);
}

static void test_convert_kquants(void) {
    /* 2 layers; ffn 320: gate/up rows are 256 wide (K-quant), down rows 320
     * (not a multiple of 256: Q5_0 for Q4_K, Q8_0 for Q6_K, as llama.cpp falls back) */
    WideRun x;
    Err e;
    int wrc = wide_run_init(&x, (WideSpec){.n_layers = 2, .ffn = 320, .seed = 11}, 48, 99, &e);
    if (wrc == 1) SKIP("shared fixtures absent (ALOE_SHARED)");
    CHECK_OK(wrc, &e);
    static const char *const names[] = {"q4_k", "q6_k"};
    static const int types[] = {DT_Q4_K, DT_Q6_K};
    /* README: "Q4_K / Q6_K files: within 0.25 / 0.08 of the f32 model's
     * logit range on a 256-wide random test model" */
    static const double tol_logits[] = {0.25, 0.08};
    for (int k = 0; k < 2; k++) {
        char *out = xasprintf("%s/wide-%s.gguf", x.tmp, names[k]);
        int rc = test_system("%s convert --model %s --out %s --type %s >/dev/null 2>&1", x.bin, x.hf, out, names[k]);
        CHECK_MSG(rc == 0, "aloe convert --type %s: exit %d", names[k], rc);
        Gguf *g = gguf_open(out, &e);
        CHECK_OK(g == NULL, &e);
        CHECK_EQ_INT(gguf_n_tensors(g), x.w.n);
        int n_kq = 0, n_q8 = 0;
        double worst = 0;
        for (int i = 0; i < gguf_n_tensors(g); i++) {
            const TensorView *t = gguf_tensor(g, i);
            const WideTensorHF *src = wide_hf_find_gguf(&x.w, t->name);
            CHECK_MSG(src, "unexpected tensor %s", t->name);
            /* rows not a multiple of 256 fall back as llama.cpp's do: Q4_K -> Q5_0, Q6_K -> Q8_0 */
            int want = src->ndim == 1 ? DT_F32 : src->cols % 256 == 0 ? types[k] : types[k] == DT_Q4_K ? DT_Q5_0 : DT_Q8_0;
            CHECK_MSG(t->dtype == want, "%s %s: type %s, expected %s", names[k], t->name, dtype_name(t->dtype),
                      dtype_name(want));
            if (want == DT_F32) {
                CHECK(!memcmp(t->data, src->data, (size_t)src->rows * sizeof(float)));
                continue;
            }
            CHECK_EQ_INT(tensor_rows(t), src->rows);
            CHECK_EQ_INT(tensor_cols(t), src->cols);
            n_kq += want == types[k], n_q8 += want != types[k]; /* the fallback type */
            Fit f;
            size_t nv = (size_t)(src->rows * src->cols);
            float *decoded = xmalloc(nv * sizeof(float)), *mine = xmalloc(nv * sizeof(float));
            fit_tensor(t, src->data, &f, decoded);
            /* aloe's own decoder gives the format's values */
            int same = dequantize_row(t->dtype, t->data, mine, (int64_t)nv) == 0 &&
                       !memcmp(mine, decoded, nv * sizeof(float));
            free(mine), free(decoded);
            CHECK_MSG(same, "%s %s: dequantize_row differs from the format's decoding", names[k], t->name);
            /* Q8_0 and Q5_0 round with the unrounded scale (as llama.cpp): not checked */
            CHECK_MSG(want == DT_Q8_0 || want == DT_Q5_0 || f.not_nearest == 0, "%s %s: %ld of %ld values not at their nearest grid point", names[k],
                      t->name, f.not_nearest, f.n);
            double bound = want == DT_Q8_0 ? Q8_0_BOUND_STEPS : want == DT_Q5_0 ? Q5_0_BOUND_STEPS : KQ_BOUND_STEPS;
            CHECK_MSG(f.worst_steps <= bound, "%s %s: an error of %.3f steps (bound %.3f)", names[k], t->name,
                      f.worst_steps, bound);
            if (want == types[k]) worst = fmax(worst, f.worst_steps);
        }
        gguf_close(g);
        CHECK_EQ_INT(n_kq, 1 + 2 * 6); /* embedding + q,k,v,o,gate,up per layer */
        CHECK_EQ_INT(n_q8, 2);          /* ffn_down, 320 wide: Q5_0 (q4_k) or Q8_0 (q6_k) */
        float *got = NULL;
        CHECK_OK(logits_of(out, x.ids, 48, &got, NULL, &e), &e);
        double err = rel_err(got, x.ref, (size_t)48 * WIDE_VOCAB);
        printf("  %s: worst value error %.2f steps; logits max|err|/range %.3f\n", names[k], worst, err);
        free(got);
        CHECK_MSG(err <= tol_logits[k], "%s: logits %.3g of the range from the f32 model's (bound %.2g)", names[k],
                  err, tol_logits[k]);
        free(out);
    }
    wide_run_free(&x);
}

/* Every other type aloe convert writes: each matrix gets the type asked for
 * or, where its rows are not whole blocks, llama.cpp's fallback
 * (dtype_row_fallback), and the file computes. The quantisers' accuracy is
 * tested per format (test_dtype_legacy, test_dtype_kquant) and against
 * llama.cpp's files (test_gguf_legacy, test_gguf_kquant); this checks the
 * conversion path only: a tensor written in the wrong place, order or type
 * gives logits off by the order of their range, so 0.5 of the range
 * separates the two (measured here: Q2_K, the coarsest format, 0.35; the
 * 4- and 5-bit types 0.05-0.15). */
static void test_convert_other_types(void) {
    WideRun x;
    Err e;
    int wrc = wide_run_init(&x, (WideSpec){.n_layers = 1, .ffn = 320, .seed = 5}, 16, 7, &e);
    if (wrc == 1) SKIP("shared fixtures absent (ALOE_SHARED)");
    CHECK_OK(wrc, &e);
    const int types[] = {DT_Q4_1, DT_Q5_0, DT_Q5_1, DT_IQ4_NL, DT_Q2_K, DT_Q3_K, DT_Q5_K, DT_IQ4_XS};
    for (size_t k = 0; k < sizeof types / sizeof *types; k++) {
        char *out = xasprintf("%s/x-%s.gguf", x.tmp, dtype_name(types[k]));
        int rc = test_system("%s convert --model %s --out %s --type %s >/dev/null 2>&1", x.bin, x.hf, out,
                             dtype_name(types[k]));
        CHECK_MSG(rc == 0, "aloe convert --type %s: exit %d", dtype_name(types[k]), rc);
        Gguf *g = gguf_open(out, &e);
        CHECK_OK(g == NULL, &e);
        for (int i = 0; g && i < gguf_n_tensors(g); i++) {
            const TensorView *t = gguf_tensor(g, i);
            int want = t->ndim == 1 ? DT_F32 : dtype_row_fallback(types[k], tensor_cols(t));
            CHECK_MSG(t->dtype == want, "%s %s: type %s, expected %s", dtype_name(types[k]), t->name,
                      dtype_name(t->dtype), dtype_name(want));
        }
        if (g) gguf_close(g);
        float *got = NULL;
        CHECK_OK(logits_of(out, x.ids, 16, &got, NULL, &e), &e);
        double err = got ? rel_err(got, x.ref, (size_t)16 * WIDE_VOCAB) : 1;
        printf("  %s: logits max|err|/range %.3f\n", dtype_name(types[k]), err);
        CHECK_MSG(err <= 0.5, "%s: logits %.3g of the range from the f32 model's", dtype_name(types[k]), err);
        free(got), free(out);
    }
    wide_run_free(&x);
}

int main(void) {
    RUN(test_convert_kquants);
    RUN(test_convert_other_types);
    return test_summary();
}
