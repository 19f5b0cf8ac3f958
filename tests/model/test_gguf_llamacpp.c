/* GGUF files quantised by llama.cpp's own llama-quantize load in aloe and
 * compute what their weights say (README: "a GGUF file
 * (F32/F16/BF16/Q8_0/Q4_0/Q4_K/Q6_K)", Q4_K_M and Q6_K files used in
 * place). The files are in tests/data/gguf-llamacpp/ (README there: how
 * they were made, llama.cpp commit and commands):
 *   wide-q4_0.gguf, wide-q4_k_m.gguf, wide-q6_k.gguf: the 256-wide Qwen2
 *     model of wide_hf.h (1 layer, ffn 512; every matrix row a multiple of
 *     256), so llama.cpp writes real K-quants — Q4_K_M mixes Q4_K and Q6_K
 *     (attn_v, ffn_down, the tied embedding);
 *   tiny-qwen2-q4_0.gguf, tiny-llama3-q4_0.gguf: the shared 64-wide
 *     fixtures; llama.cpp keeps the embedding/output in Q8_0 there (its
 *     Q6_K needs 256-wide rows) — a file of mixed types, as users' are;
 *     tiny-llama3 also has llama.cpp's Q/K row permutation;
 *   (tiny-qwen2-q4_k_m.gguf, where llama.cpp falls back to Q5_0 and Q8_0
 *     for the narrow rows, and the other 32-block types: test_gguf_legacy.c,
 *     with the message for a type aloe does not read.)
 *
 * Checked for each loadable file: the tensor types are exactly what
 * llama.cpp wrote (read back here from the GGUF header, and the expected
 * mix from llama.cpp's rules); aloe's logits against the f32 model's,
 * within the weights' quantisation error (bounds below); and against an
 * f32 model holding the file's own weights as aloe dequantises them:
 * within the int8 prefill's activation rounding, and bit for bit with the
 * int8 prefill off (check_batched_own, logit_budget.h).
 *
 *   test_gguf_llamacpp --write-wide DIR   writes the wide model's Hugging
 *                                         Face directory (how the files
 *                                         were made). */
#include <stdlib.h>

#include "base/fileio.h"
#include "base/mem.h"
#include "cli/aloe_sh.h"
#include "formats/dtype.h"
#include "formats/gguf.h"
#include "formats/gguf_write.h"
#include "model/decoder.h"
#include "kernels/matmul.h"
#include "test.h"
#include "gguf_fixture.h"
#include "logit_budget.h"
#include "model_logits.h"
#include "wide_hf.h"

static const WideSpec WIDE = {.n_layers = 1, .ffn = 512, .seed = 7};

typedef struct {
    double rel;  /* max|a-b| / range(b) */
    double agree; /* share of positions with the same argmax */
    double rms;   /* rms(a-b) / rms(b - mean(b)): the error's share of the logits' spread */
} Diff;

static Diff diff(const float *a, const float *b, int n, int V) {
    Diff d = {0, 0, 0};
    double lo = b[0], hi = b[0], worst = 0, se = 0, sb = 0, sbb = 0;
    size_t all = (size_t)n * V;
    int same = 0;
    for (int p = 0; p < n; p++) {
        int ia = 0, ib = 0;
        for (int v = 0; v < V; v++) {
            double x = a[(size_t)p * V + v], y = b[(size_t)p * V + v];
            lo = fmin(lo, y), hi = fmax(hi, y), worst = fmax(worst, fabs(x - y));
            se += (x - y) * (x - y), sb += y, sbb += y * y;
            if (x > a[(size_t)p * V + ia]) ia = v;
            if (y > b[(size_t)p * V + ib]) ib = v;
        }
        same += ia == ib;
    }
    d.rel = worst / (hi - lo);
    d.agree = (double)same / n;
    double var = sbb / all - (sb / all) * (sb / all);
    d.rms = var > 0 ? sqrt(se / all / var) : INFINITY;
    return d;
}

/* Writes an f32 copy of the GGUF at path (same metadata) whose tensors hold
 * the values aloe's dequantize_row gives; returns its path (caller frees). */
static char *dequantised_copy(const char *path, const char *dir, Err *e) {
    Gguf *g = gguf_open(path, e);
    if (!g) return NULL;
    GgufWriter *w = gguf_writer_new();
    for (int i = 0; i < gguf_n_kv(g); i++) gguf_set_kv(w, gguf_kv(g, i));
    gguf_set_u32(w, "general.file_type", 0); /* ALL_F32 */
    int n = gguf_n_tensors(g), rc = 0;
    float **bufs = xcalloc((size_t)n, sizeof *bufs);
    for (int i = 0; i < n && !rc; i++) {
        TensorView t = *gguf_tensor(g, i);
        int64_t ne = tensor_numel(&t);
        bufs[i] = xmalloc((size_t)ne * sizeof(float));
        rc = tensor_to_f32(&t, bufs[i], e);
        t.dtype = DT_F32, t.data = bufs[i], t.nbytes = (size_t)ne * sizeof(float);
        if (!rc) rc = gguf_writer_add_tensor(w, &t, e);
    }
    char *out = path_join(dir, "dequantised.gguf");
    if (!rc) rc = gguf_writer_write(w, out, e);
    gguf_writer_free(w);
    for (int i = 0; i < n; i++) free(bufs[i]);
    free(bufs);
    gguf_close(g);
    if (rc) free(out), out = NULL;
    return out;
}

/* The type llama.cpp's llama-quantize (llama-quant.cpp,
 * llama_tensor_get_type) gives a tensor of these 1-layer or 2-layer
 * models: vectors stay F32; the output matrix, or the tied embedding when
 * there is none, is Q6_K whatever the file type, Q8_0 when its rows are not
 * a multiple of 256; for Q4_K_M, attn_v and ffn_down are Q6_K in the
 * layers use_more_bits picks (with fewer than 8 layers: all); a K-quant
 * whose rows are not multiples of 256 falls back (Q4_K -> Q5_0, Q6_K ->
 * Q8_0). The untied embedding keeps the file's type. */
static int llama_cpp_type(const TensorView *t, const char *ftype, int tied) {
    if (tensor_numel(t) == tensor_cols(t)) return DT_F32; /* a vector */
    int64_t cols = tensor_cols(t);
    int is_out = !strcmp(t->name, "output.weight") || (tied && !strcmp(t->name, "token_embd.weight"));
    int want;
    if (is_out) return cols % QK_K ? DT_Q8_0 : DT_Q6_K;
    if (!strcmp(ftype, "q4_0")) return DT_Q4_0;
    if (!strcmp(ftype, "q6_k")) want = DT_Q6_K;
    else want = strstr(t->name, "attn_v.") || strstr(t->name, "ffn_down.") ? DT_Q6_K : DT_Q4_K; /* q4_k_m */
    if (cols % QK_K) return want == DT_Q6_K ? DT_Q8_0 : -5; /* -5: Q5_0, not a type aloe reads */
    return want;
}

typedef struct {
    const char *file, *ftype;
    int wide, tied;
    const char *f32_ref;  /* the f32 model the file was made from (shared), or NULL: the wide HF model */
    const char *f32_gguf; /* its f32 GGUF, the weights llama.cpp quantised (NULL: the wide model's) */
    double readme_tol;    /* README's max|err| / range against f32 (0: none stated) */
} Case;

/* The bound against the f32 model, derived from the file's own rounding.
 * Each quantised matrix i carries a relative error e_i = |W_q - W| / |W|
 * (Frobenius; measured here from the two files: ~0.08 for 4-bit types,
 * ~0.02 for Q6_K). To first order a matrix's relative error goes into the
 * activations it produces, and independent errors add in variance, so the
 * logits' error relative to their spread is about E = sqrt(sum e_i^2)
 * (measured / E: 0.85-1.22 on these files). Bound: 1.6 E, a third above
 * the largest (the first-order estimate ignores the gains of attention's
 * softmax and the SiLU gate). A misread layout — scales, nibble order, the
 * `llama` Q/K permutation — is not rounding noise: reading tiny-mistral's
 * permuted Q/K with the plain RoPE layout measures 2.1 E. The README's
 * bounds for K-quant files ("within 0.25 / 0.08 of the f32 model's logit
 * range on a 256-wide random test model") are checked too. The exact
 * checks are those against the file's own weights. */
static const Case CASES[] = {
    {"wide-q4_0.gguf", "q4_0", 1, 1, NULL, NULL, 0},
    {"wide-q4_k_m.gguf", "q4_k_m", 1, 1, NULL, NULL, 0.25},
    {"wide-q6_k.gguf", "q6_k", 1, 1, NULL, NULL, 0.08},
    {"tiny-qwen2-q4_0.gguf", "q4_0", 0, 1, "fixtures/models/tiny-qwen2", "fixtures/gguf/tiny-qwen2-f32.gguf", 0},
    /* llama.cpp's converter writes Llama 3's rope_freqs without the config's
     * original_max_position_embeddings, so its file differs from the HF
     * model at long positions: compared with its own f32 file */
    {"tiny-llama3-q4_0.gguf", "q4_0", 0, 0, "fixtures/gguf/tiny-llama3-f32.gguf", "fixtures/gguf/tiny-llama3-f32.gguf", 0},
    /* `llama` architecture too (Q/K rows permuted by llama.cpp), no RoPE
     * scaling: compared with the HF model itself */
    {"tiny-mistral-q4_0.gguf", "q4_0", 0, 0, "fixtures/models/tiny-mistral", "fixtures/gguf/tiny-mistral-f32.gguf", 0},
};

/* E = sqrt(sum over the quantised matrices of (|W_q - W| / |W|)^2): W_q as
 * aloe dequantises the file at qpath, W from the f32 GGUF f32path or (NULL)
 * the wide model. -1 on error. */
static double weights_error(const char *qpath, const char *f32path, Err *e) {
    Gguf *q = gguf_open(qpath, e), *f = f32path ? gguf_open(f32path, e) : NULL;
    if (!q || (f32path && !f)) {
        if (q) gguf_close(q);
        return -1;
    }
    WideHF w = {0};
    if (!f32path) wide_hf_build(&w, &WIDE);
    double sum = 0;
    for (int i = 0; i < gguf_n_tensors(q) && sum >= 0; i++) {
        const TensorView *t = gguf_tensor(q, i);
        if (!dtype_is_quantized(t->dtype)) continue;
        int64_t n = tensor_numel(t);
        float *a = xmalloc((size_t)n * sizeof(float)), *b = NULL;
        if (tensor_to_f32(t, a, e)) sum = -1;
        if (f32path) {
            const TensorView *r = gguf_find_tensor(f, t->name);
            b = r && tensor_numel(r) == n ? tensor_to_f32_alloc(r, e) : NULL;
        } else {
            const WideTensorHF *r = wide_hf_find_gguf(&w, t->name);
            if (r && r->rows * (r->cols ? r->cols : 1) == n) b = xmalloc((size_t)n * sizeof(float)), memcpy(b, r->data, (size_t)n * sizeof(float));
        }
        if (!b && sum >= 0) sum = -1, err_set(e, ERR_NOTFOUND, "%s: no f32 weights for %s", qpath, t->name);
        double d2 = 0, w2 = 0;
        for (int64_t k = 0; b && sum >= 0 && k < n; k++) d2 += ((double)a[k] - b[k]) * ((double)a[k] - b[k]), w2 += (double)b[k] * b[k];
        if (sum >= 0) sum += d2 / w2;
        free(a), free(b);
    }
    if (!f32path) wide_hf_free(&w);
    gguf_close(q);
    if (f) gguf_close(f);
    return sum < 0 ? -1 : sqrt(sum);
}

static void check_case(const Case *c) {
    Err e;
    char *path = data_path(c->file);
    Gguf *g = gguf_open(path, &e);
    CHECK_OK(g == NULL, &e);
    /* the types llama.cpp wrote */
    int n_q = 0, kinds[32] = {0};
    for (int i = 0; i < gguf_n_tensors(g); i++) {
        const TensorView *t = gguf_tensor(g, i);
        int want = llama_cpp_type(t, c->ftype, c->tied);
        CHECK_MSG(t->dtype == want, "%s: %s is %s, llama.cpp's rules say %s", c->file, t->name,
                  dtype_name(t->dtype), want >= 0 ? dtype_name(want) : "q5_0");
        n_q += dtype_is_quantized(t->dtype);
        kinds[t->dtype & 31]++;
    }
    gguf_close(g);
    CHECK(n_q >= 7);
    /* the f32 reference and the inputs */
    char *tmp = test_tmpdir(), *ref_path = NULL;
    WideHF w = {0};
    if (c->wide) {
        wide_hf_build(&w, &WIDE);
        ref_path = path_join(tmp, "wide");
        int rc = wide_hf_write(&w, &WIDE, ref_path, &e);
        wide_hf_free(&w);
        if (rc == 1) SKIP("shared fixtures absent (ALOE_SHARED)");
        CHECK_OK(rc, &e);
    } else {
        ref_path = test_shared_path(c->f32_ref);
        if (!ref_path) SKIP("shared fixtures absent (ALOE_SHARED)");
    }
    int32_t ids[40];
    uint64_t s = 1234;
    for (int i = 0; i < 40; i++) ids[i] = (int32_t)(wide_mix(&s) % 1024);
    float *ref = NULL, *got = NULL, *own = NULL;
    int V = 0, V2 = 0, V3 = 0;
    CHECK_OK(logits_of(ref_path, ids, 40, &ref, &V, &e), &e);
    CHECK_OK(logits_of(path, ids, 40, &got, &V2, &e), &e);
    char *dq = dequantised_copy(path, tmp, &e);
    CHECK_MSG(dq, "%s", e.msg);
    CHECK_OK(logits_of(dq, ids, 40, &own, &V3, &e), &e);
    CHECK(V == V2 && V == V3);
    Diff vs_f32 = diff(got, ref, 40, V), vs_own = diff(got, own, 40, V);
    printf("  %-22s vs f32: %.3f of the range, rms %.3f of the spread, argmax %.0f%%; vs its own weights: %.2e, argmax %.0f%%\n", c->file,
           vs_f32.rel, vs_f32.rms, 100 * vs_f32.agree, vs_own.rel, 100 * vs_own.agree);
    double E = -1;
    if (c->wide) E = weights_error(path, NULL, &e);
    else {
        char *f32g = test_shared_path(c->f32_gguf);
        E = f32g ? weights_error(path, f32g, &e) : -1;
        free(f32g);
    }
    CHECK_MSG(E > 0, "%s: weights' error: %s", c->file, e.msg);
    printf("  %-22s weights' rounding E = %.3f: logits rms error %.2f E (bound 1.6 E)\n", c->file, E, vs_f32.rms / E);
    CHECK_MSG(vs_f32.rms <= 1.6 * E, "%s: the logits' rms error is %.3g of their spread, more than 1.6 x the weights' %.3g",
              c->file, vs_f32.rms, E);
    CHECK_MSG(!c->readme_tol || vs_f32.rel <= c->readme_tol, "%s: %.3g of the range from the f32 model (README: %.2g)",
              c->file, vs_f32.rel, c->readme_tol);
    /* the same weights: by default the batched pass rounds x to int8
     * blocks where the integer GEMM takes a type (Q8_0, Q4_0, Q4_K, Q6_K
     * at the AVX-512 levels): within two float32 evaluations and that
     * stage; with the int8 prefill off it multiplies the dequantised rows,
     * as the f32 file's are: bit-identical (logit_budget.h) */
    check_batched_own(path, ids, 40, got, own, V);
    /* decoding token by token: the file's blocks dotted in place with
     * Q8_0-rounded activations. README: "decoding (Q8_0 activations) is
     * within ~1.5% of the range" of the file's own weights' exact logits;
     * bound 2e-2 (test_decoder.c's). */
    float *step = NULL, *step_own = NULL;
    CHECK_OK(step_logits_of(path, ids, 12, &step, &e), &e);
    CHECK_OK(step_logits_of(dq, ids, 12, &step_own, &e), &e);
    Diff dec = diff(step, step_own, 12, V);
    printf("  %-22s decoding vs its own weights: %.2e of the range\n", c->file, dec.rel);
    CHECK_MSG(dec.rel <= 2e-2, "%s: decoding %.3g of the range from its own weights", c->file, dec.rel);
    free(step), free(step_own);
    free(ref), free(got), free(own), free(dq), free(ref_path), free(path);
    test_system("rm -rf '%s'", tmp);
    free(tmp);
}

static void test_llamacpp_files(void) {
    for (size_t i = 0; i < sizeof CASES / sizeof *CASES; i++) check_case(&CASES[i]);
}

/* The mixes: Q4_K_M really mixes Q4_K and Q6_K; the narrow Q4_0 file holds
 * Q4_0 and Q8_0. */
static void test_mixes(void) {
    Err e;
    char *p = data_path("wide-q4_k_m.gguf");
    Gguf *g = gguf_open(p, &e);
    free(p);
    CHECK_OK(g == NULL, &e);
    int n4 = 0, n6 = 0;
    for (int i = 0; i < gguf_n_tensors(g); i++) {
        int t = gguf_tensor(g, i)->dtype;
        n4 += t == DT_Q4_K, n6 += t == DT_Q6_K;
    }
    gguf_close(g);
    CHECK_MSG(n4 >= 4 && n6 >= 3, "wide-q4_k_m.gguf: %d Q4_K and %d Q6_K matrices", n4, n6);
    p = data_path("tiny-qwen2-q4_0.gguf");
    g = gguf_open(p, &e);
    free(p);
    CHECK_OK(g == NULL, &e);
    int n40 = 0, n80 = 0;
    for (int i = 0; i < gguf_n_tensors(g); i++) {
        int t = gguf_tensor(g, i)->dtype;
        n40 += t == DT_Q4_0, n80 += t == DT_Q8_0;
    }
    gguf_close(g);
    CHECK_MSG(n40 >= 6 && n80 == 1, "tiny-qwen2-q4_0.gguf: %d Q4_0 and %d Q8_0 matrices", n40, n80);
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
    RUN(test_mixes);
    return test_summary();
}
