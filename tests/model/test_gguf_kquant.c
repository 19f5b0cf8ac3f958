/* Q2_K, Q3_K, Q5_K and IQ4_XS models load and compute what their weights
 * say: files that llama.cpp's llama-quantize wrote (tests/data/
 * gguf-llamacpp/README.md: `--pure` Q2_K, Q3_K, Q5_K, IQ4_XS and the
 * default Q3_K_M and Q5_K_M mixes of the 256-wide Qwen2 model of
 * wide_hf.h with ffn 256), and models quantised by aloe's own quantisers
 * (formats/dtype_kquant.c). Checked for each:
 *  - the tensor types are what llama.cpp's rules give;
 *  - each quantised matrix is within its type's rounding of the f32
 *    weights (a misread layout is not: bounds below);
 *  - the logits against the f32 model's within the weights' rounding
 *    (test_gguf_llamacpp.c's bound, 1.6 E, derived there);
 *  - the batched logits against those of an f32 model holding the file's
 *    own dequantised weights: within the activations' int8 rounding where
 *    the integer prefill takes a type, and equal with it off
 *    (check_batched_own); decoding (Q8_0 activations, the quantised dots)
 *    within 2e-2 of their range (test_decoder.c's bound).
 *
 *   test_gguf_kquant --write-wide DIR   the HF directory the files were
 *                                       made from */
#include <stdlib.h>

#include "base/fileio.h"
#include "base/mem.h"
#include "cli/aloe_sh.h"
#include "formats/dtype.h"
#include "formats/gguf.h"
#include "formats/gguf_write.h"
#include "kernels/cpu.h"
#include "kernels/dispatch.h"
#include "kernels/quant.h"
#include "model/decoder.h"
#include "kernels/matmul.h"
#include "test.h"
#include "gguf_fixture.h"
#include "logit_budget.h"
#include "model_logits.h"
#include "wide_hf.h"

static const WideSpec WIDE = {.n_layers = 1, .ffn = 256, .seed = 7};
/* ffn 512: the FFN's down projection has rows of a whole 512-value group,
 * which the loader regroups when Q4_0 (kernel_weight_type) */
static const WideSpec WIDE512 = {.n_layers = 1, .ffn = 512, .seed = 7};

/* The relative rms error a type's rounding gives weights of this model
 * (each a sum of four uniforms: bell-shaped, |x| < 2 sigma * sqrt(3)),
 * from its step over sqrt(12) (the uniform-rounding model), the step from
 * a sub-block's spread; a misread layout (wrong scale, bit or nibble)
 * gives errors of the order of the weights themselves, >= 0.5:
 *   Q2_K: 4 levels over the range of 16 (~3.4 sigma): step 1.13 sigma, 0.33
 *   Q3_K: 8 levels, largest of 16 (~1.75 sigma) -> 4: 0.44 sigma, 0.13
 *   Q4_K: 16 over the range of 32 (~3.9 sigma): 0.26 sigma, 0.075
 *   Q5_K: 32 levels: 0.126 sigma, 0.036
 *   Q6_K: 64 levels, largest of 16 -> 32: 0.055 sigma, 0.016
 *   IQ4_XS: 16 levels, the largest of 32 (~2 sigma) -> 127, mean gap
 *           240/15/127: 0.25 sigma, 0.073
 * The bound: 1.5 times these (the code rounding of the sub-block scales,
 * and the estimates' spreads, add at most a half). */
static double type_rel_error(int t) {
    switch (t) {
    case DT_Q2_K: return 0.33;
    case DT_Q3_K: return 0.13;
    case DT_Q4_K: return 0.075;
    case DT_Q5_K: return 0.036;
    case DT_Q6_K: return 0.016;
    case DT_IQ4_XS: return 0.073;
    case DT_Q8_0: return 0.0048; /* 255 levels, the largest of 32 (~2.1 sigma) -> 127: 0.0165 sigma */
    case DT_Q4_0: return 0.075; /* 16 levels, the largest of 32 (~2.1 sigma) -> -8: 0.26 sigma */
    case DT_Q5_0: return 0.038; /* 32 levels, the largest of 32 -> -16: 0.13 sigma */
    case DT_Q5_1: return 0.036; /* 32 levels over the range of 32: 0.126 sigma */
    case DT_Q4_1: return 0.075; /* 16 levels over the range of 32 (~3.9 sigma): 0.26 sigma */
    case DT_IQ4_NL: return 0.073; /* IQ4_XS's grid, a scale per 32 */
    default: return 0;
    }
}

/* E = sqrt(sum over quantised matrices of (|W_q - W| / |W|)^2), each
 * matrix's own error checked against type_rel_error; *n_kq counts the
 * matrices of this file in the four types, *n_mat (if not NULL) the
 * quantised ones. -1 on error. */
static double weights_error_n(const WideSpec *sp, const char *qpath, int *n_kq, int *n_mat, Err *e) {
    Gguf *q = gguf_open(qpath, e);
    if (!q) return -1;
    WideHF w;
    wide_hf_build(&w, sp);
    double sum = 0;
    *n_kq = 0;
    for (int i = 0; i < gguf_n_tensors(q) && sum >= 0; i++) {
        const TensorView *t = gguf_tensor(q, i);
        if (!dtype_is_quantized(t->dtype)) continue;
        int64_t n = tensor_numel(t);
        const WideTensorHF *r = wide_hf_find_gguf(&w, t->name);
        float *a = xmalloc((size_t)n * sizeof(float));
        if (tensor_to_f32(t, a, e) || !r || r->rows * r->cols != n) {
            if (r) err_set(e, ERR_NOTFOUND, "%s: %s: no matching f32 weights", qpath, t->name);
            sum = -1;
        }
        double d2 = 0, w2 = 0;
        for (int64_t k = 0; sum >= 0 && k < n; k++) d2 += ((double)a[k] - r->data[k]) * ((double)a[k] - r->data[k]), w2 += (double)r->data[k] * r->data[k];
        if (sum >= 0) {
            double rel = sqrt(d2 / w2), want = type_rel_error(t->dtype);
            if (!(want > 0 && rel <= 1.5 * want))
                test_fail(__FILE__, __LINE__, "%s: %s (%s): relative error %.3f, its type's %.3f", qpath, t->name,
                          dtype_name(t->dtype), rel, want);
            *n_kq += t->dtype == DT_Q2_K || t->dtype == DT_Q3_K || t->dtype == DT_Q5_K || t->dtype == DT_IQ4_XS;
            if (n_mat) ++*n_mat;
            sum += d2 / w2;
        }
        /* the kernels' row conversion equals formats' scalar one, bit for bit */
        if (sum >= 0 && kernel_type_ok(t->dtype)) {
            float *b = xmalloc((size_t)n * sizeof(float));
            int64_t cols = tensor_cols(t);
            size_t rb = dtype_nbytes(t->dtype, cols);
            for (int64_t row = 0; row < n / cols; row++)
                kernel_dequantize_row(t->dtype, (const char *)t->data + row * rb, b + row * cols, cols);
            if (memcmp(a, b, (size_t)n * sizeof(float)))
                test_fail(__FILE__, __LINE__, "%s: %s: kernel_dequantize_row differs", qpath, t->name);
            free(b);
        }
        free(a);
    }
    wide_hf_free(&w);
    gguf_close(q);
    return sum < 0 ? -1 : sqrt(sum);
}

static double weights_error(const WideSpec *sp, const char *qpath, int *n_kq, Err *e) {
    return weights_error_n(sp, qpath, n_kq, NULL, e);
}

/* An f32 copy of the GGUF at path whose tensors hold the values aloe's
 * dequantisation gives (path of it in dir; caller frees). */
static char *requantised_copy(const char *path, const char *dir, const char *name, int to, Err *e) {
    Gguf *g = gguf_open(path, e);
    if (!g) return NULL;
    GgufWriter *w = gguf_writer_new();
    for (int i = 0; i < gguf_n_kv(g); i++) gguf_set_kv(w, gguf_kv(g, i));
    gguf_set_u32(w, "general.file_type", 0);
    int n = gguf_n_tensors(g), rc = 0;
    void **bufs = xcalloc((size_t)n, sizeof *bufs);
    for (int i = 0; i < n && !rc; i++) {
        TensorView t = *gguf_tensor(g, i);
        int64_t ne = tensor_numel(&t);
        float *f = xmalloc((size_t)ne * sizeof(float));
        rc = tensor_to_f32(&t, f, e);
        /* to >= 0: the matrices (not vectors) quantised to `to` by aloe */
        if (to >= 0 && ne != tensor_cols(&t)) {
            size_t nb = dtype_nbytes(to, ne);
            bufs[i] = xmalloc(nb);
            quantize_row(to, f, bufs[i], ne);
            free(f);
            t.dtype = to, t.data = bufs[i], t.nbytes = nb;
        } else {
            bufs[i] = f;
            t.dtype = DT_F32, t.data = f, t.nbytes = (size_t)ne * sizeof(float);
        }
        if (!rc) rc = gguf_writer_add_tensor(w, &t, e);
    }
    char *out = path_join(dir, name);
    if (!rc) rc = gguf_writer_write(w, out, e);
    gguf_writer_free(w);
    for (int i = 0; i < n; i++) free(bufs[i]);
    free(bufs);
    gguf_close(g);
    if (rc) free(out), out = NULL;
    return out;
}

typedef struct {
    const char *file;
    int pure;        /* the type of every matrix, or -1: a mix */
    int min_kq;      /* at least this many matrices of the four types */
} Case;

/* --pure: every matrix, the tied embedding too, in the type; the mixes
 * (llama.cpp's rules for a 1-layer model): Q3_K_M has attn_q/k and
 * ffn_gate/up Q3_K, attn_v Q5_K, attn_output and ffn_down Q4_K, the tied
 * embedding Q6_K; Q5_K_M has Q5_K but for attn_v and ffn_down (Q6_K) and
 * the embedding (Q6_K). */
static const Case CASES[] = {
    {"wide256-q2_k.gguf", DT_Q2_K, 8},   {"wide256-q3_k.gguf", DT_Q3_K, 8},       {"wide256-q5_k.gguf", DT_Q5_K, 8},
    {"wide256-iq4_xs.gguf", DT_IQ4_XS, 8}, {"wide256-q3_k_m.gguf", -1, 5}, {"wide256-q5_k_m.gguf", -1, 5},
};

static int32_t IDS[40];

static void check_file(const WideSpec *sp, const char *path, const char *ref_path, const char *tmp, const float *ref,
                       int V) {
    Err e;
    float *got = NULL, *own = NULL, *step = NULL, *step_own = NULL;
    int V2 = 0;
    CHECK_OK(logits_of(path, IDS, 40, &got, &V2, &e), &e);
    char *dq = requantised_copy(path, tmp, "dequantised.gguf", -1, &e);
    CHECK_MSG(dq, "%s", e.msg);
    CHECK_OK(logits_of(dq, IDS, 40, &own, NULL, &e), &e);
    CHECK(V == V2);
    double rms, rel, rms_own, rel_own;
    logit_diff(got, ref, (size_t)40 * V, &rel, &rms);
    logit_diff(got, own, (size_t)40 * V, &rel_own, &rms_own);
    int n_kq = 0, n_mat = 0;
    double Ew = weights_error_n(sp, path, &n_kq, &n_mat, &e);
    CHECK_MSG(Ew > 0, "%s: %s", path, e.msg);
    /* Each quantised matrix also meets its input rounded to Q8_0 (the
     * kernels' activation): an error of Q8_0's size per matrix along the
     * same chain, negligible next to 4-bit weights' (0.0048 against
     * 0.075) but as large as Q8_0 weights' own; added in quadrature. */
    double Ea = type_rel_error(DT_Q8_0) * sqrt((double)n_mat), E = sqrt(Ew * Ew + Ea * Ea);
    printf("  %-26s E %.3f: logits rms %.3f of the spread (%.2f E, bound 1.6 E); own weights %.1e\n", strrchr(path, '/') + 1, E,
           rms, rms / E, rel_own);
    CHECK_MSG(rms <= 1.6 * E, "%s: logits' rms error %.3g, above 1.6 x the weights' and activations' %.3g", path, rms, E);
    /* the default batched pass (int8 x where the integer GEMM takes the
     * type: the mixes' Q4_K/Q6_K) within its budget, and with that off
     * bit for bit the dequantised weights' (logit_budget.h) */
    check_batched_own(path, IDS, 40, got, own, V);
    CHECK_OK(step_logits_of(path, IDS, 12, &step, &e), &e);
    CHECK_OK(step_logits_of(dq, IDS, 12, &step_own, &e), &e);
    logit_diff(step, step_own, (size_t)12 * V, &rel, &rms);
    printf("  %-26s decoding vs its own weights: %.2e of the range\n", strrchr(path, '/') + 1, rel);
    CHECK_MSG(rel <= 2e-2, "%s: decoding %.3g of the range from its own weights", path, rel);
    (void)ref_path;
    free(got), free(own), free(step), free(step_own), free(dq);
}

/* The wide HF model and its f32 logits; 1 if the shared fixtures are absent. */
static int reference(const WideSpec *sp, char **tmp, char **ref_path, float **ref, int *V, Err *e) {
    *tmp = test_tmpdir();
    WideHF w;
    wide_hf_build(&w, sp);
    *ref_path = path_join(*tmp, "wide");
    int rc = wide_hf_write(&w, sp, *ref_path, e);
    wide_hf_free(&w);
    if (rc) return rc;
    uint64_t s = 1234;
    for (int i = 0; i < 40; i++) IDS[i] = (int32_t)(wide_mix(&s) % 1024);
    return logits_of(*ref_path, IDS, 40, ref, V, e);
}

static void test_llamacpp_files(void) {
    Err e;
    char *tmp, *ref_path;
    float *ref = NULL;
    int V = 0, rc = reference(&WIDE, &tmp, &ref_path, &ref, &V, &e);
    if (rc == 1) SKIP("shared fixtures absent (ALOE_SHARED)");
    CHECK_OK(rc, &e);
    for (size_t c = 0; c < sizeof CASES / sizeof *CASES; c++) {
        char *path = data_path(CASES[c].file);
        Gguf *g = gguf_open(path, &e);
        CHECK_OK(g == NULL, &e);
        int n_kq = 0;
        for (int i = 0; i < gguf_n_tensors(g); i++) {
            const TensorView *t = gguf_tensor(g, i);
            int vec = tensor_numel(t) == tensor_cols(t);
            if (CASES[c].pure >= 0)
                CHECK_MSG(t->dtype == (vec ? DT_F32 : CASES[c].pure), "%s: %s is %s", CASES[c].file, t->name, dtype_name(t->dtype));
            n_kq += t->dtype == DT_Q2_K || t->dtype == DT_Q3_K || t->dtype == DT_Q5_K || t->dtype == DT_IQ4_XS;
        }
        gguf_close(g);
        CHECK_MSG(n_kq >= CASES[c].min_kq, "%s: %d matrices of the new types", CASES[c].file, n_kq);
        check_file(&WIDE, path, ref_path, tmp, ref, V);
        free(path);
    }
    free(ref), free(ref_path);
    test_system("rm -rf '%s'", tmp);
    free(tmp);
}

/* The HF model at ref_path as an f32 GGUF in tmp, made by `aloe convert`
 * (path of it; caller frees). */
static char *f32_gguf(const char *tmp, const char *ref_path) {
    char *f32 = path_join(tmp, "wide-f32.gguf");
    char *args = xasprintf("convert --model %s --out %s --type f32", ref_path, f32), *out = NULL;
    if (aloe_sh_run(NULL, args, &out) != 0) test_fail(__FILE__, __LINE__, "aloe convert: %s", out);
    free(args), free(out);
    return f32;
}

/* A test's own files: the wide HF model of a spec, its f32 logits and its
 * f32 GGUF, in a fresh temporary directory (reference, f32_gguf). */
typedef struct Own {
    char *tmp, *ref_path, *f32;
    float *ref;
    int V;
} Own;

/* 0 with o filled; 1 if the shared fixtures are absent (the caller skips);
 * -1 after a failure it has reported. */
static int own_open(const WideSpec *sp, Own *o) {
    Err e;
    *o = (Own){0};
    int rc = reference(sp, &o->tmp, &o->ref_path, &o->ref, &o->V, &e);
    if (rc == 1) return 1;
    if (rc) {
        test_fail(__FILE__, __LINE__, "the reference model: %s", e.msg);
        return -1;
    }
    o->f32 = f32_gguf(o->tmp, o->ref_path);
    return 0;
}

static void own_close(Own *o) {
    free(o->f32), free(o->ref), free(o->ref_path);
    test_system("rm -rf '%s'", o->tmp);
    free(o->tmp);
}

/* Models quantised by aloe's own quantisers (every matrix, the tied
 * embedding too, like --pure) from the same f32 weights: they load and
 * give the same guarantees; and the quantisers' error is comparable with
 * llama.cpp's on the same weights: E at most 1.25 times that of the
 * llama.cpp file of the type (ggml weights its fits by x^2 where aloe's
 * are plain least squares, so neither is the other's optimum; 1.25 allows
 * that difference, not a broken fit, which is several times off). */
static void test_own_quantiser(void) {
    Err e;
    Own o;
    int rc = own_open(&WIDE, &o);
    if (rc == 1) SKIP("shared fixtures absent (ALOE_SHARED)");
    if (rc) return;
    for (int c = 0; c < 4; c++) {
        int t = CASES[c].pure;
        char *name = xasprintf("own-%s.gguf", dtype_name(t));
        char *path = requantised_copy(o.f32, o.tmp, name, t, &e);
        CHECK_MSG(path, "%s", e.msg);
        check_file(&WIDE, path, o.ref_path, o.tmp, o.ref, o.V);
        int n1 = 0, n2 = 0;
        char *ll = data_path(CASES[c].file);
        double mine = weights_error(&WIDE, path, &n1, &e), theirs = weights_error(&WIDE, ll, &n2, &e);
        printf("  %-7s aloe's quantiser E %.4f, llama.cpp's %.4f\n", dtype_name(t), mine, theirs);
        CHECK_MSG(n1 >= 8 && mine > 0 && mine <= 1.25 * theirs, "%s: E %.4f vs llama.cpp's %.4f", dtype_name(t), mine, theirs);
        free(ll), free(path), free(name);
    }
    own_close(&o);
}

/* A Q4_0 file whose FFN down projection has rows of whole 512-value
 * groups: where SIMD kernels run (avx2 and up), the loader regroups that matrix
 * (DT_Q4_0_T16 where the AVX-512 dots run, DT_Q4_0_G16 where the AVX2
 * ones do); the 256-wide ones (whole quads, not whole groups of 16)
 * in groups of 4 where the AVX2 dots run (DT_Q4_0_G4), else as stored;
 * the model still reports Q4_0; and it computes what the file says
 * (check_file: the prefill through the integer GEMM's packing of groups,
 * decoding through the grouped dots). The same for a Q8_0 file, whose
 * 512-wide matrix the AVX-512 levels take as DT_Q8_0_T16. */
static void test_q4_0_regrouped_model(void) {
    Err e;
    Own o;
    int rc = own_open(&WIDE512, &o);
    if (rc == 1) SKIP("shared fixtures absent (ALOE_SHARED)");
    if (rc) return;
    char *path = requantised_copy(o.f32, o.tmp, "own-q4_0.gguf", DT_Q4_0, &e);
    CHECK_MSG(path, "%s", e.msg);
    Model *m = model_load(path, 1, &e);
    CHECK_OK(m == NULL, &e);
    CHECK_EQ_INT(m->weight_type, DT_Q4_0);
    CHECK_EQ_INT(m->w.layers[0].w_down.type,
                 kernel_level() >= KL_AVX512 ? DT_Q4_0_T16 : kernel_level() >= KL_AVX2 ? DT_Q4_0_G16 : DT_Q4_0);
    /* the AVX2 dots run at the avx2 level (the avx512 ones read quads as stored) */
    int quads = kernel_level() == KL_AVX2 ? DT_Q4_0_G4 : DT_Q4_0;
    CHECK_EQ_INT(m->w.layers[0].w_up.type, quads);
    CHECK_EQ_INT(m->w.embed.type, quads);
    model_free(m);
    check_file(&WIDE512, path, o.ref_path, o.tmp, o.ref, o.V);
    free(path);
    path = requantised_copy(o.f32, o.tmp, "own-q8_0.gguf", DT_Q8_0, &e);
    CHECK_MSG(path, "%s", e.msg);
    m = model_load(path, 1, &e);
    CHECK_OK(m == NULL, &e);
    CHECK_EQ_INT(m->weight_type, DT_Q8_0);
    CHECK_EQ_INT(m->w.layers[0].w_down.type, kernel_level() >= KL_AVX512 ? DT_Q8_0_T16 : DT_Q8_0);
    CHECK_EQ_INT(m->w.layers[0].w_up.type, DT_Q8_0);
    model_free(m);
    check_file(&WIDE512, path, o.ref_path, o.tmp, o.ref, o.V);
    free(path);
    own_close(&o);
}

/* Q5_0, Q5_1, IQ4_NL and Q4_1 files (the first three the K-quants'
 * fallbacks for rows not of whole 256s, as qwen2.5-0.5b's 896): the
 * 256-wide model's matrices are whole groups of 128 values, which the
 * loader regroups in fours where the AVX2 dots run (DT_Q5_0_G4, ...,
 * dtype_legacy_g4_of), else keeps as stored; the model still
 * reports the file's type, and computes what the file says (check_file:
 * the prefill through the group micro-kernel's packing of the regrouped
 * blocks, decoding through the regrouped dots). */
static void test_legacy_regrouped_model(void) {
    Err e;
    Own o;
    int rc = own_open(&WIDE, &o);
    if (rc == 1) SKIP("shared fixtures absent (ALOE_SHARED)");
    if (rc) return;
    static const int types[4] = {DT_Q5_0, DT_Q5_1, DT_IQ4_NL, DT_Q4_1};
    for (int k = 0; k < 4; k++) {
        int t = types[k], g4 = dtype_legacy_g4_of(t);
        char *name = xasprintf("own-%s.gguf", dtype_name(t));
        char *path = requantised_copy(o.f32, o.tmp, name, t, &e);
        CHECK_MSG(path, "%s", e.msg);
        Model *m = model_load(path, 1, &e);
        CHECK_OK(m == NULL, &e);
        CHECK_EQ_INT(m->weight_type, t);
        int want = kernel_level() == KL_AVX2 ? g4 : t;
        CHECK_EQ_INT(m->w.layers[0].w_up.type, want);
        CHECK_EQ_INT(m->w.layers[0].w_down.type, want);
        CHECK_EQ_INT(m->w.embed.type, want);
        model_free(m);
        check_file(&WIDE, path, o.ref_path, o.tmp, o.ref, o.V);
        free(path), free(name);
    }
    own_close(&o);
}

int main(int argc, char **argv) {
    if (argc == 3 && !strcmp(argv[1], "--write-wide")) {
        WideHF w;
        Err e;
        wide_hf_build(&w, &WIDE);
        int rc = wide_hf_write(&w, &WIDE, argv[2], &e);
        wide_hf_free(&w);
        if (rc) fprintf(stderr, "%s\n", rc == 1 ? "shared fixtures absent" : e.msg);
        return rc ? 1 : 0;
    }
    RUN(test_llamacpp_files);
    RUN(test_own_quantiser);
    RUN(test_q4_0_regrouped_model);
    RUN(test_legacy_regrouped_model);
    return test_summary();
}
