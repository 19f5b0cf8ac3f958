/* GGUF files that llama.cpp's llama-quantize wrote with Q4_1, Q5_0, Q5_1
 * and IQ4_NL tensors load in aloe and compute what their weights say. The
 * files (tests/data/gguf-llamacpp/, README there: commands, llama.cpp
 * commit) are the shared 64-wide tiny-qwen2 fixture quantised
 *   --pure Q4_1 / Q5_0 / Q5_1 / IQ4_NL: every matrix of that type;
 *   Q4_K_M, Q5_K_M, Q3_K_M (llama.cpp's default rules): its K-quants need
 *     rows of 256, so it falls back to Q5_0 (for Q4_K), Q5_1 (Q5_K),
 *     IQ4_NL (Q2_K/Q3_K) and Q8_0 (Q6_K) — the types users' files of
 *     Qwen2.5-0.5B (rows of 896) hold; Q3_K_M mixes four of them.
 * Checked for each: the tensor types llama.cpp wrote; the weights aloe
 * reads equal formats' scalar dequantisation of the raw blocks (read from
 * the file's bytes, not through the loader's mapping); where llama-quantize
 * used its reference rounding (the pure files), aloe's quantiser gives the
 * same blocks from the same f32 weights; aloe's logits against the f32
 * model within the weights' quantisation error, and against the file's
 * own dequantised weights within the int8 prefill's rounding where it takes
 * a type, exactly without it (batched pass), or within the Q8_0
 * activation rounding (token by token: the quantised dots in place).
 * And a file with a type aloe still does not read fails with a clear
 * error. */
#include <stdlib.h>
#include <string.h>

#include "base/fileio.h"
#include "base/mem.h"
#include "cli/aloe_sh.h"
#include "formats/dtype.h"
#include "formats/gguf.h"
#include "model/decoder.h"
#include "kernels/matmul.h"
#include "test.h"
#include "gguf_fixture.h"
#include "logit_budget.h"
#include "model_logits.h"

typedef struct {
    const char *file;
    int pure;       /* the --pure type, or -1 for a preset's mix */
    int counts[32]; /* matrices of each type (index: DType & 31) in a mix */
} Case;

static const Case CASES[] = {
    {"tiny-qwen2-q4_1.gguf", DT_Q4_1, {0}},
    {"tiny-qwen2-q5_0.gguf", DT_Q5_0, {0}},
    {"tiny-qwen2-q5_1.gguf", DT_Q5_1, {0}},
    {"tiny-qwen2-iq4_nl.gguf", DT_IQ4_NL, {0}},
    /* Q4_K -> Q5_0 (12); Q6_K -> Q8_0 (3: blk.1's attn_v and ffn_down,
     * which llama.cpp's use_more_bits picks, and the tied embedding, the
     * output's Q6_K) */
    {"tiny-qwen2-q4_k_m.gguf", -1, {[DT_Q5_0] = 12, [DT_Q8_0] = 3}},
    {"tiny-qwen2-q5_k_m.gguf", -1, {[DT_Q5_1] = 12, [DT_Q8_0] = 3}},
    /* Q3_K -> IQ4_NL (8), attn_v's Q5_K -> Q5_1 (2), Q4_K -> Q5_0 (4:
     * attn_output and ffn_down), the tied embedding's Q6_K -> Q8_0 */
    {"tiny-qwen2-q3_k_m.gguf", -1, {[DT_IQ4_NL] = 8, [DT_Q5_0] = 4, [DT_Q5_1] = 2, [DT_Q8_0] = 1}},
};

/* The types, the raw blocks, and llama.cpp's rounding against aloe's.
 * Sets *E = sqrt(sum over quantised matrices of (|W_q - W| / |W|)^2)
 * (W_q dequantised, W the f32 file's). */
static void check_weights(const Case *c, const char *path, const char *f32path, double *E) {
    Err e;
    char *bytes = NULL;
    size_t len = 0;
    CHECK_OK(file_read_all(path, &bytes, &len, &e), &e);
    Gguf *q = gguf_open_mem(bytes, len, path, &e), *f = gguf_open(f32path, &e);
    CHECK_MSG(q && f, "%s", e.msg);
    Gguf *mapped = gguf_open(path, &e); /* what the loader reads: the mapping */
    CHECK_OK(mapped == NULL, &e);
    int counts[32] = {0}, n_quant = 0;
    long blocks = 0, same_blocks = 0;
    double sum = 0;
    for (int i = 0; i < gguf_n_tensors(q); i++) {
        const TensorView *t = gguf_tensor(q, i), *r = gguf_find_tensor(f, t->name);
        int64_t n = tensor_numel(t), cols = tensor_cols(t);
        CHECK_MSG(r && tensor_numel(r) == n && r->dtype == DT_F32, "%s: %s not in the f32 file", c->file, t->name);
        if (!r || tensor_numel(r) != n) continue;
        if (t->ndim == 1) { /* vectors stay F32 */
            CHECK_MSG(t->dtype == DT_F32, "%s: vector %s is %s", c->file, t->name, dtype_name(t->dtype));
            continue;
        }
        counts[t->dtype & 31]++;
        if (c->pure >= 0) CHECK_MSG(t->dtype == c->pure, "%s: %s is %s", c->file, t->name, dtype_name(t->dtype));
        if (!dtype_is_quantized(t->dtype)) continue;
        n_quant++;
        /* aloe's scalar dequantisation of the raw blocks, and the loader's
         * view of the same tensor (tensor_to_f32 on the mapping) */
        float *a = xmalloc((size_t)n * 4), *b = xmalloc((size_t)n * 4);
        size_t rb = dtype_nbytes(t->dtype, cols);
        for (int64_t row = 0; row < n / cols; row++)
            CHECK(dequantize_row(t->dtype, (const char *)t->data + row * rb, a + row * cols, cols) == 0);
        CHECK_OK(tensor_to_f32(gguf_find_tensor(mapped, t->name), b, &e), &e);
        CHECK_MSG(!memcmp(a, b, (size_t)n * 4), "%s: %s: the loader's values differ from the raw blocks'", c->file, t->name);
        double d2 = 0, w2 = 0;
        const float *w = r->data;
        for (int64_t k = 0; k < n; k++) d2 += ((double)a[k] - w[k]) * ((double)a[k] - w[k]), w2 += (double)w[k] * w[k];
        sum += d2 / w2;
        /* aloe's quantiser on llama.cpp's input, block by block */
        if (c->pure >= 0) {
            char *mine = xmalloc(rb);
            size_t bb = dtype_block_bytes(t->dtype);
            for (int64_t row = 0; row < n / cols; row++) {
                quantize_row(t->dtype, w + row * cols, mine, cols);
                for (size_t k = 0; k < rb / bb; k++)
                    same_blocks += !memcmp(mine + k * bb, (const char *)t->data + row * rb + k * bb, bb), blocks++;
            }
            free(mine);
        }
        free(a), free(b);
    }
    if (c->pure >= 0) {
        CHECK_MSG(n_quant == 15, "%s: %d quantised matrices", c->file, n_quant);
        /* llama-quantize without an importance matrix runs ggml's reference
         * rounding (IQ4_NL: the same scale search): the same blocks */
        printf("  %-24s aloe's quantiser: %ld of %ld blocks identical to llama.cpp's\n", c->file, same_blocks, blocks);
        CHECK_MSG(same_blocks == blocks, "%s: %ld of %ld blocks differ from llama.cpp's", c->file, blocks - same_blocks,
                  blocks);
    } else {
        for (int k = 0; k < 32; k++)
            CHECK_MSG(counts[k] == c->counts[k], "%s: %d %s matrices, llama.cpp wrote %d", c->file, counts[k],
                      dtype_name(k), c->counts[k]);
    }
    gguf_close(q), gguf_close(f), gguf_close(mapped);
    free(bytes);
    *E = sqrt(sum);
}

/* The bound against the f32 model is test_gguf_llamacpp.c's, derived
 * there: each matrix's relative rounding error e_i carries into the
 * activations it produces, independent errors add in variance, so the
 * logits' rms error relative to their spread is about E = sqrt(sum e_i^2);
 * bound 1.6 E (the first-order estimate ignores softmax and SiLU gains;
 * measured 0.85-1.22 E on the Q4_0/K-quant files). */
static void check_case(const Case *c) {
    Err e;
    char *path = data_path(c->file), *ref = test_shared_path("fixtures/models/tiny-qwen2"),
         *f32 = test_shared_path("fixtures/gguf/tiny-qwen2-f32.gguf");
    if (!ref || !f32) {
        free(path), free(ref), free(f32);
        SKIP("shared fixtures absent (ALOE_SHARED)");
    }
    double E = -1;
    check_weights(c, path, f32, &E);
    int32_t ids[40];
    for (int i = 0; i < 40; i++) ids[i] = (int32_t)((i * 7919 + 13) % 1024);
    float *lf = NULL, *lq = NULL, *lown = NULL, *step = NULL, *step_own = NULL;
    int V = 0, V2 = 0;
    CHECK_OK(logits_of(ref, ids, 40, &lf, &V, &e), &e);
    CHECK_OK(logits_of(path, ids, 40, &lq, &V2, &e), &e);
    char *own = gguf_f32_copy(path, &e);
    CHECK_MSG(own, "%s", e.msg);
    CHECK_OK(logits_of(own, ids, 40, &lown, NULL, &e), &e);
    CHECK(V == V2);
    double rel, rms, orel, orms;
    logit_diff(lq, lf, (size_t)40 * V, &rel, &rms);
    logit_diff(lq, lown, (size_t)40 * V, &orel, &orms);
    printf("  %-24s vs f32: rms %.3f of the spread = %.2f E (E = %.3f, bound 1.6 E); vs its own weights %.1e\n", c->file,
           rms, rms / E, E, orel);
    CHECK_MSG(E > 0 && rms <= 1.6 * E, "%s: logits' rms error %.3g, weights' E %.3g", c->file, rms, E);
    /* the batched pass: these types keep dequantise + sgemm (the integer
     * GEMM has no tile kernel for them) except the Q8_0 fallbacks of the
     * mixes; within the budget by default and bit for bit the f32 copy's
     * with the int8 prefill off (logit_budget.h) */
    check_batched_own(path, ids, 40, lq, lown, V);
    /* token by token, the blocks dotted in place with Q8_0-rounded
     * activations: within test_gguf_llamacpp.c's 2e-2 of the range (the
     * README's "within ~1.5% of the range" of the weights' exact logits) */
    CHECK_OK(step_logits_of(path, ids, 12, &step, &e), &e);
    CHECK_OK(step_logits_of(own, ids, 12, &step_own, &e), &e);
    logit_diff(step, step_own, (size_t)12 * V, &orel, &orms);
    printf("  %-24s decoding vs its own weights: %.2e of the range\n", c->file, orel);
    CHECK_MSG(orel <= 2e-2, "%s: decoding %.3g of the range from its own weights", c->file, orel);
    test_system("rm -f '%s'", own);
    free(lf), free(lq), free(lown), free(step), free(step_own), free(own), free(path), free(ref), free(f32);
}

static void test_llamacpp_legacy_files(void) {
    for (size_t i = 0; i < sizeof CASES / sizeof *CASES; i++) check_case(&CASES[i]);
}

/* `aloe complete` runs on a mixed file (what a user does first). */
static void test_cli_runs(void) {
    char *p = data_path("tiny-qwen2-q3_k_m.gguf"), *args = xasprintf("complete --model %s --prompt-ids 1,2,3 --max-tokens 3", p),
         *out = NULL;
    int rc = aloe_sh_run(NULL, args, &out);
    CHECK_MSG(rc == 0, "aloe complete: exit %d: %s", rc, out);
    free(p), free(args), free(out);
}

/* A type aloe does not read (IQ3_S, ggml type 21) keeps the clear error:
 * a copy of the Q5_0 file whose blk.0.attn_k.weight is marked IQ3_S (its
 * type field patched: the tensor info is name, n_dims (u32), 2 dims (u64),
 * type (u32)). Opening fails naming the file, the tensor and the type; the
 * CLI exits 1 with it. */
static void test_unsupported_type_message(void) {
    Err e;
    char *p = data_path("tiny-qwen2-q5_0.gguf"), *bytes = NULL;
    size_t len = 0;
    CHECK_OK(file_read_all(p, &bytes, &len, &e), &e);
    const char *name = "blk.0.attn_k.weight";
    char *at = memmem(bytes, len, name, strlen(name));
    CHECK(at != NULL);
    if (!at) return;
    uint32_t type, iq3_s = 21;
    char *field = at + strlen(name) + 4 + 2 * 8;
    memcpy(&type, field, 4);
    CHECK_EQ_INT((int)type, DT_Q5_0);
    memcpy(field, &iq3_s, 4);
    char *dir = test_tmpdir(), *q = path_join(dir, "iq3_s.gguf");
    CHECK_OK(file_write_atomic(q, bytes, len, &e), &e);
    Gguf *g = gguf_open(q, &e);
    CHECK(g == NULL);
    if (g) gguf_close(g);
    printf("  message: %s\n", e.msg);
    CHECK_MSG(strstr(e.msg, "iq3_s.gguf") && strstr(e.msg, "blk.0.attn_k.weight") && strstr(e.msg, "type IQ3_S (21) is not supported") &&
                  strstr(e.msg, "aloe reads"),
              "message does not name the file, the tensor and the type: %s", e.msg);
    CHECK_EQ_INT(e.code, ERR_UNSUPPORTED);
    char *args = xasprintf("complete --model %s --prompt-ids 1,2,3 --max-tokens 1", q), *out = NULL;
    int rc = aloe_sh_run(NULL, args, &out);
    CHECK_MSG(rc == 1 && strstr(out, "blk.0.attn_k.weight") && strstr(out, "IQ3_S"), "aloe complete: exit %d: %s", rc, out);
    test_system("rm -rf '%s'", dir);
    free(args), free(out), free(q), free(dir), free(bytes), free(p);
}

int main(void) {
    RUN(test_llamacpp_legacy_files);
    RUN(test_cli_runs);
    RUN(test_unsupported_type_message);
    return test_summary();
}
