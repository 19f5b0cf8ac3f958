/* GGUF export: the converter's files against the ones llama.cpp's own
 * converter made from the same fixture models (every tensor byte-identical,
 * every metadata key llama.cpp writes equal), then loaded by the engine:
 * logits equal to the HF directory's within the tolerances of
 * test_decoder.c and the tokenizer giving identical ids. */
#include <jansson.h>
#include <math.h>
#include <stdlib.h>

#include "base/fileio.h"
#include "base/mem.h"
#include "base/rng.h"
#include "formats/safetensors.h"
#include "formats/gguf.h"
#include "formats/gguf_write.h"
#include "model/convert.h"
#include "model/decoder.h"
#include "kernels/matmul.h"
#include "test.h"
#include "model_logits.h"
#include "logit_budget.h"
#include "tok/spm_tokenizer_json.h"
#include "tok/tok.h"

static const char *const MODELS[] = {"tiny-llama3", "tiny-qwen2", "tiny-mistral", "tiny-qwen3"};
static const char *const TYPES[] = {"f32", "f16", "bf16", "q8_0", "q4_0", "q6_k"};

/* Keys llama.cpp writes that we deliberately do not reproduce:
 *  - general.name: llama.cpp makes a display name from the directory name
 *    ("Tiny Llama3"); we store the directory name as it is;
 *  - general.size_label: llama.cpp's rounded parameter count ("230K"),
 *    informational only.
 * Everything else must be present with the same type and value. The one
 * tensor that differs on purpose is rope_freqs.weight: llama.cpp's converter
 * missed original_max_position_embeddings in the transformers-5
 * rope_parameters and used its default 8192, so its tensor does not match
 * the model (see test_hfdir.c); ours follows config.json. */
static int skipped_key(const char *key) {
    return !strcmp(key, "general.name") || !strcmp(key, "general.size_label");
}

static int kv_equal(const GgufKV *a, const GgufKV *b) {
    if (a->type != b->type || a->n != b->n) return 0;
    if (a->type == GGUF_STRING) return a->str_len == b->str_len && !memcmp(a->str, b->str, a->str_len);
    if (a->type != GGUF_ARRAY) return a->u == b->u && a->i == b->i && (a->f == b->f || (isnan(a->f) && isnan(b->f)));
    if (a->arr_type != b->arr_type) return 0;
    for (uint64_t i = 0; i < a->n; i++) {
        if (a->arr_type == GGUF_STRING) {
            if (a->strs[i].len != b->strs[i].len || memcmp(a->strs[i].s, b->strs[i].s, a->strs[i].len)) return 0;
        } else if (gguf_arr_f64(a, i) != gguf_arr_f64(b, i) || gguf_arr_i64(a, i) != gguf_arr_i64(b, i)) {
            return 0;
        }
    }
    return 1;
}

static char *fixture_dir(const char *model) {
    char *rel = xasprintf("fixtures/models/%s", model), *dir = test_shared_path(rel);
    free(rel);
    return dir;
}

static void test_same_as_llama_cpp(void) {
    for (int m = 0; m < 3; m++) {
        char *dir = fixture_dir(MODELS[m]);
        if (!dir) SKIP("shared fixtures not found (set ALOE_SHARED)");
        char *tmp = test_tmpdir();
        for (int t = 0; t < 4; t++) {
            char *rel = xasprintf("fixtures/gguf/%s-%s.gguf", MODELS[m], TYPES[t]);
            char *ref_path = test_shared_path(rel), *out = xasprintf("%s/%s.gguf", tmp, TYPES[t]);
            free(rel);
            CHECK_MSG(ref_path, "fixture GGUF %s-%s missing", MODELS[m], TYPES[t]);
            int type;
            Err e;
            CHECK_OK(convert_type_parse(TYPES[t], &type, &e), &e);
            CHECK_OK(convert_hf_to_gguf(dir, out, type, &e), &e);
            Gguf *ref = gguf_open(ref_path, &e), *got = ref ? gguf_open(out, &e) : NULL;
            CHECK_MSG(ref && got, "%s", e.msg);
            for (int i = 0; i < gguf_n_kv(ref); i++) {
                const GgufKV *a = gguf_kv(ref, i), *b = gguf_find_key(got, a->key);
                if (skipped_key(a->key)) continue;
                CHECK_MSG(b, "%s %s: key %s missing", MODELS[m], TYPES[t], a->key);
                CHECK_MSG(kv_equal(a, b), "%s %s: key %s differs", MODELS[m], TYPES[t], a->key);
            }
            CHECK_EQ_INT(gguf_n_tensors(got), gguf_n_tensors(ref));
            for (int i = 0; i < gguf_n_tensors(ref); i++) {
                const TensorView *a = gguf_tensor(ref, i), *b = gguf_find_tensor(got, a->name);
                CHECK_MSG(b, "%s %s: tensor %s missing", MODELS[m], TYPES[t], a->name);
                CHECK_MSG(a->dtype == b->dtype && a->ndim == b->ndim && !memcmp(a->shape, b->shape, sizeof a->shape),
                          "%s %s: tensor %s: type %s, expected %s", MODELS[m], TYPES[t], a->name, dtype_name(b->dtype),
                          dtype_name(a->dtype));
                if (!strcmp(a->name, "rope_freqs.weight")) continue; /* see above */
                CHECK_MSG(a->nbytes == b->nbytes && !memcmp(a->data, b->data, a->nbytes), "%s %s: tensor %s differs",
                          MODELS[m], TYPES[t], a->name);
            }
            gguf_close(ref);
            gguf_close(got);
            free(ref_path);
            free(out);
        }
        free(tmp);
        free(dir);
    }
}

/* The fixture's second forward input (what test_decoder.c's bounds were
 * measured on). */
static int fixture_ids(const char *dir, int32_t *ids, int max) {
    char *p = path_join(dir, "expected.json");
    json_t *j = json_load_file(p, 0, NULL);
    free(p);
    json_t *row = json_array_get(json_object_get(json_object_get(j, "forward"), "input_ids"), 1);
    int n = 0;
    for (size_t i = 0; i < json_array_size(row) && n < max; i++) {
        int id = (int)json_integer_value(json_array_get(row, i));
        if (id != 0) ids[n++] = id; /* 0 = padding */
    }
    json_decref(j);
    return n;
}

/* The engine on each converted file, two ways:
 *  - against the same file's weights dequantised into an F32 file: the
 *    batched pass computes with exactly those weights, so this is two
 *    float32 evaluations: the f32 gold budget (logit_budget.h), plus the
 *    rounding of every matmul input where the pass takes it (int8 blocks
 *    for the quantised types in the integer GEMM, bf16 for the BF16 prefill:
 *    model_act_tol at the running kernel level). A wrong layout, scale or
 *    block order fails it;
 *  - against the HF directory's logits: the weights' rounding, budgeted
 *    by weight_tol for the file's matrix type, and the same activation
 *    stage (q4_0: step max/8 of a block
 *    of 32; "q6_k" on these 64-96-wide fixtures is the q8_0 fallback,
 *    checked to be that below, real Q6_K in test_q6_k_wide).
 * The rows (only the second, without its padding id 0) are fewer than
 * test_decoder.c's, so its budgets hold a fortiori. */
static void test_engine_logits(void) {
    static const int dts[] = {DT_F32, DT_F16, DT_BF16, DT_Q8_0, DT_Q4_0, DT_Q8_0};
    for (int m = 0; m < 4; m++) {
        char *dir = fixture_dir(MODELS[m]);
        if (!dir) SKIP("shared fixtures not found (set ALOE_SHARED)");
        int32_t ids[64];
        int n = fixture_ids(dir, ids, 64);
        CHECK_MSG(n > 4, "%s: no forward.input_ids in expected.json", MODELS[m]);
        char *tmp = test_tmpdir();
        float *ref;
        Err e;
        CHECK_OK(logits_of(dir, ids, n, &ref, NULL, &e), &e);
        ModelConfig c;
        CHECK_OK(hf_config_load(dir, &c, &e), &e);
        double rho = logit_rho(ref, (long)n * c.vocab_size);
        for (int t = 0; t < 6; t++) {
            char *out = xasprintf("%s/%s.gguf", tmp, TYPES[t]), *copy = NULL;
            int type;
            float *got = NULL, *own = NULL;
            int rc = convert_type_parse(TYPES[t], &type, &e) || convert_hf_to_gguf(dir, out, type, &e) ||
                     logits_of(out, ids, n, &got, NULL, &e) || !(copy = gguf_f32_copy(out, &e)) ||
                     logits_of(copy, ids, n, &own, NULL, &e);
            double err = rc ? 1 : rel_err(got, ref, (size_t)n * c.vocab_size);
            double err_own = rc ? 1 : rel_err(got, own, (size_t)n * c.vocab_size);
            double rho_own = rc ? 0 : logit_rho(own, (long)n * c.vocab_size);
            double act_own = rc ? 0 : file_act_tol(out, n, rho_own, &e), act = rc ? 0 : file_act_tol(out, n, rho, &e);
            rc = rc || act < 0;
            double tol_own = rc ? 0 : gold_tol(&c, n, rho_own) + act_own, tol = rc ? 0 : weight_tol(dts[t], &c, n, rho) + act;
            free(got), free(own), free(out), free(copy);
            CHECK_OK(rc, &e);
            printf("  %-13s %-5s max|err|/range %.2e (budget %.2e); vs its own weights %.2e (budget %.2e)\n",
                   MODELS[m], TYPES[t], err, tol, err_own, tol_own);
            CHECK_MSG(err <= tol, "%s %s: max error %.3g of the range > %.3g", MODELS[m], TYPES[t], err, tol);
            CHECK_MSG(err_own <= tol_own, "%s %s: max error %.3g of the range vs its own weights > %.3g", MODELS[m],
                      TYPES[t], err_own, tol_own);
        }
        /* q6_k on rows narrower than 256: every matrix is the q8_0 file's,
         * byte for byte (llama.cpp's quantiser falls back the same way) */
        char *q6 = xasprintf("%s/%s.gguf", tmp, "q6_k"), *q8 = xasprintf("%s/%s.gguf", tmp, "q8_0");
        Gguf *a = gguf_open(q6, &e), *b = a ? gguf_open(q8, &e) : NULL; /* written above */
        CHECK_MSG(a && b, "%s", e.msg);
        for (int i = 0; i < gguf_n_tensors(a); i++) {
            const TensorView *x = gguf_tensor(a, i), *y = gguf_find_tensor(b, x->name);
            CHECK_MSG(y && x->dtype != DT_Q6_K && x->dtype == y->dtype && x->nbytes == y->nbytes &&
                          !memcmp(x->data, y->data, x->nbytes),
                      "%s q6_k: tensor %s (%s) is not the q8_0 fallback", MODELS[m], x->name, dtype_name(x->dtype));
        }
        gguf_close(a), gguf_close(b);
        free(q6), free(q8), free(ref), free(tmp), free(dir);
    }
}

/* Real Q6_K output: tiny-qwen2's layout widened so that every matrix row
 * is 256 wide (hidden 256, ffn 512, kv 128: each dimension of the fixture
 * scaled), seeded random weights, written as an HF directory and converted
 * with q6_k. Every 2-D tensor whose rows are multiples of 256 must be
 * Q6_K with the quantiser's bytes; the engine on it must match the
 * dequantised file (f32 gold budget) and the f32 directory (Q6_K budget). */
static int64_t widen(int64_t d) { return d == 64 ? 256 : d == 160 ? 512 : d == 32 ? 128 : d; }

static void test_q6_k_wide(void) {
    char *src = fixture_dir("tiny-qwen2");
    if (!src) SKIP("shared fixtures not found (set ALOE_SHARED)");
    Err e;
    char *tmp = test_tmpdir(), *hf = xasprintf("%s/wide", tmp), *cfg_in = path_join(src, "config.json");
    CHECK_OK(file_mkdirs(hf, &e), &e);
    json_t *cfg = json_load_file(cfg_in, 0, NULL);
    CHECK_MSG(cfg, "%s", cfg_in);
    json_object_set_new(cfg, "hidden_size", json_integer(256));
    json_object_set_new(cfg, "intermediate_size", json_integer(512));
    char *cfg_out = path_join(hf, "config.json");
    CHECK(json_dump_file(cfg, cfg_out, 0) == 0);
    json_decref(cfg);
    static const char *const keep[] = {"tokenizer.json", "tokenizer_config.json", "generation_config.json",
                                       "chat_template.jinja"};
    for (size_t i = 0; i < sizeof keep / sizeof *keep; i++) {
        char *from = path_join(src, keep[i]), *to = path_join(hf, keep[i]), *text = NULL;
        size_t len;
        if (!file_read_all(from, &text, &len, &e)) CHECK_OK(file_write_atomic(to, text, len, &e), &e);
        free(from), free(to), free(text);
    }
    SafeTensors *st = st_open(src, &e);
    CHECK_MSG(st, "%s", e.msg);
    int n = st_count(st);
    TensorView *tv = xcalloc((size_t)n, sizeof *tv);
    Rng r;
    rng_seed(&r, 23);
    for (int i = 0; i < n; i++) {
        tv[i] = *st_tensor(st, i);
        int64_t k = 1;
        for (int d = 0; d < tv[i].ndim; d++) k *= (tv[i].shape[d] = widen(tv[i].shape[d]));
        float *w = xmalloc((size_t)k * sizeof(float));
        int norm = strstr(tv[i].name, "norm") != NULL;
        for (int64_t j = 0; j < k; j++) w[j] = norm ? 1 + 0.1f * (float)rng_normal(&r) : 0.05f * (float)rng_normal(&r);
        tv[i].dtype = DT_F32, tv[i].data = w, tv[i].nbytes = (size_t)k * sizeof(float);
    }
    char *st_out = path_join(hf, "model.safetensors"), *gg = xasprintf("%s/wide-q6_k.gguf", tmp), *copy = NULL;
    int rc = st_write(st_out, tv, n, NULL, &e) || convert_hf_to_gguf(hf, gg, DT_Q6_K, &e);
    CHECK_OK(rc, &e);
    /* the matrices: Q6_K, the quantiser's bytes of the f32 rows */
    Gguf *g = gguf_open(gg, &e);
    CHECK_MSG(g, "%s", e.msg);
    int n_q6 = 0;
    for (int i = 0; i < n; i++) {
        if (tv[i].ndim != 2) continue;
        const TensorView *x = NULL;
        for (int k = 0; k < gguf_n_tensors(g) && !x; k++) {
            const TensorView *y = gguf_tensor(g, k);
            if (y->ndim == 2 && y->shape[0] * y->shape[1] == tv[i].shape[0] * tv[i].shape[1] &&
                y->dtype == DT_Q6_K && tv[i].shape[1] % 256 == 0) {
                /* the same values quantised here: the bytes must agree */
                size_t nb = dtype_nbytes(DT_Q6_K, tensor_numel(&tv[i]));
                void *q = xmalloc(nb);
                quantize_row(DT_Q6_K, tv[i].data, q, tensor_numel(&tv[i]));
                if (nb == y->nbytes && !memcmp(q, y->data, nb)) x = y;
                free(q);
            }
        }
        /* q and k rows are permuted by the converter (llama.cpp's Q/K
         * order) only for llama: qwen2 keeps them, so every matrix is found */
        CHECK_MSG(x, "wide q6_k: %s is not the Q6_K of its rows", tv[i].name);
        n_q6++;
    }
    gguf_close(g);
    int32_t ids[40];
    for (int i = 0; i < 40; i++) ids[i] = 1 + (int32_t)rng_below(&r, 1000);
    float *ref = NULL, *got = NULL, *own = NULL;
    rc = logits_of(hf, ids, 40, &ref, NULL, &e) || logits_of(gg, ids, 40, &got, NULL, &e) ||
         !(copy = gguf_f32_copy(gg, &e)) || logits_of(copy, ids, 40, &own, NULL, &e);
    CHECK_OK(rc, &e);
    ModelConfig c;
    CHECK_OK(hf_config_load(hf, &c, &e), &e);
    long nl = 40L * c.vocab_size;
    double rho = logit_rho(ref, nl), rho_own = logit_rho(own, nl);
    /* + the activation stage (int8 blocks where the integer GEMM takes Q6_K) in both */
    double act = file_act_tol(gg, 40, rho, &e), act_own = file_act_tol(gg, 40, rho_own, &e);
    CHECK_MSG(act >= 0 && act_own >= 0, "%s", e.msg);
    double tol = weight_tol(DT_Q6_K, &c, 40, rho) + act, tol_own = gold_tol(&c, 40, rho_own) + act_own;
    double err = rel_err(got, ref, (size_t)nl), err_own = rel_err(got, own, (size_t)nl);
    printf("  wide tiny-qwen2 q6_k: %d Q6_K matrices; max|err|/range %.2e (budget %.2e); vs its own weights %.2e "
           "(budget %.2e)\n", n_q6, err, tol, err_own, tol_own);
    CHECK_MSG(err <= tol, "wide q6_k: %.3g of the range > %.3g", err, tol);
    CHECK_MSG(err_own <= tol_own, "wide q6_k vs its own weights: %.3g of the range > %.3g", err_own, tol_own);
    for (int i = 0; i < n; i++) free((void *)tv[i].data);
    free(tv), free(ref), free(got), free(own), free(copy), free(st_out), free(gg), free(cfg_out), free(cfg_in), free(hf);
    free(tmp), free(src);
    st_close(st);
}

static const char *const TEXTS[] = {
    "Hello world! I just finished my anthropology exam.",
    "<|im_start|>user\nHi there<|im_end|>\n<|im_start|>assistant\n",
    "<|begin_of_text|><|start_header_id|>user<|end_header_id|>\n\nWhat's up?<|eot_id|>",
    "Numbers 1234567 and   spaces\t\ttabs\n\n\nnewlines",
    "Ünïcödé — 東京 🌸 can't won't I'LL",
    "",
};

/* The HF tokenizer and its GGUF conversion give the same ids (with the
 * specials) for every text of TEXTS. */
static void same_ids(const Tokenizer *hf, const Tokenizer *gguf, const char *name) {
    Err e;
    for (size_t k = 0; k < sizeof TEXTS / sizeof *TEXTS; k++) {
        int32_t *x, *y;
        int nx, ny;
        CHECK_OK(tok_encode(hf, TEXTS[k], 1, 1, &x, &nx, &e), &e);
        CHECK_OK(tok_encode(gguf, TEXTS[k], 1, 1, &y, &ny, &e), &e);
        int same = nx == ny && !memcmp(x, y, (size_t)nx * sizeof *x);
        free(x), free(y);
        CHECK_MSG(same, "%s: text %zu: %d ids from tokenizer.json, %d from the GGUF", name, k, nx, ny);
    }
}

static void test_tokenizer_ids(void) {
    for (int m = 0; m < 4; m++) {
        char *dir = fixture_dir(MODELS[m]);
        if (!dir) SKIP("shared fixtures not found (set ALOE_SHARED)");
        char *tmp = test_tmpdir(), *out = path_join(tmp, "m.gguf");
        Err e;
        CHECK_OK(convert_hf_to_gguf(dir, out, DT_F16, &e), &e);
        Tokenizer *a = tok_load(dir, &e), *b = a ? tok_load(out, &e) : NULL;
        CHECK_MSG(a && b, "%s", e.msg);
        CHECK_EQ_INT(tok_vocab_size(b), tok_vocab_size(a));
        for (size_t i = 0; i < sizeof TEXTS / sizeof *TEXTS; i++)
            for (int special = 0; special < 2; special++) {
                int32_t *x, *y;
                int nx, ny;
                CHECK_OK(tok_encode(a, TEXTS[i], special, special, &x, &nx, &e), &e);
                CHECK_OK(tok_encode(b, TEXTS[i], special, special, &y, &ny, &e), &e);
                int same = nx == ny && !memcmp(x, y, (size_t)nx * sizeof *x);
                free(x), free(y);
                CHECK_MSG(same, "%s: text %zu (special %d): %d ids from the HF tokenizer, %d from the GGUF", MODELS[m],
                          i, special, nx, ny);
            }
        tok_free(a);
        tok_free(b);
        /* the chat template travels with the file */
        Gguf *g = gguf_open(out, &e);
        CHECK(g != NULL);
        const GgufKV *tpl = gguf_find_key(g, "tokenizer.chat_template");
        char *want = NULL;
        CHECK_OK(hf_chat_template_load(dir, NULL, &want, &e), &e);
        CHECK_MSG(tpl && want && !strcmp(tpl->str, want), "%s: chat template not copied", MODELS[m]);
        free(want);
        gguf_close(g);
        free(out);
        free(tmp);
        free(dir);
    }
}

/* Real tokenizers (Llama 3's 128k BPE, Qwen3's 151k) as GGUF metadata: the
 * pre-tokenizer is named as llama.cpp names it, and the GGUF tokenizer
 * reproduces llama.cpp's own test vectors (tokenizer-data/llama.cpp-vocab,
 * no specials) and the tokenizer.json's ids with specials. */
static int check_vectors(const Tokenizer *t, const char *name, int *n_cases) {
    char rel[160];
    snprintf(rel, sizeof rel, "tokenizer-data/llama.cpp-vocab/ggml-vocab-%s.gguf.inp", name);
    char *inp = test_shared_path(rel);
    snprintf(rel, sizeof rel, "tokenizer-data/llama.cpp-vocab/ggml-vocab-%s.gguf.out", name);
    char *outp = test_shared_path(rel), *in = NULL, *out = NULL;
    size_t n;
    Err e;
    int fails = !inp || !outp || file_read_all(inp, &in, &n, &e) || file_read_all(outp, &out, &n, &e);
    static const char SEP[] = "\n__ggml_vocab_test__\n";
    for (char *p = in, *line = out, *next, *eol; !fails && (next = strstr(p, SEP)) && (eol = strchr(line, '\n'));
         p = next + strlen(SEP), line = eol + 1) {
        *next = 0, *eol = 0;
        int32_t *ids;
        int k;
        if (tok_encode(t, p, 0, 0, &ids, &k, &e)) return 1;
        StrBuf got;
        sb_init(&got);
        for (int i = 0; i < k; i++) sb_printf(&got, " %d", ids[i]);
        if (strcmp(got.s ? got.s : "", line)) {
            printf("  %s \"%s\": got \"%s\", want \"%s\"\n", name, p, got.s, line);
            fails++;
        }
        (*n_cases)++;
        sb_free(&got);
        free(ids);
    }
    free(inp), free(outp), free(in), free(out);
    return fails;
}

static void test_real_tokenizers(void) {
    const char *dirs[] = {"tokenizer-data/llama3", "tokenizer-data/qwen3"}, *names[] = {"llama-bpe", "qwen2"};
    for (int i = 0; i < 2; i++) {
        char *dir = test_shared_path(dirs[i]);
        if (!dir) SKIP("shared tokenizer-data not found (set ALOE_SHARED)");
        char *tmp = test_tmpdir(), *out = path_join(tmp, "vocab.gguf");
        Err e;
        Tokenizer *hf = tok_load(dir, &e);
        CHECK_MSG(hf, "%s", e.msg);
        GgufWriter *w = gguf_writer_new();
        int rc = convert_set_tokenizer(w, dir, tok_vocab_size(hf), &e) || gguf_writer_write(w, out, &e);
        gguf_writer_free(w);
        CHECK_OK(rc, &e);
        Gguf *g = gguf_open(out, &e);
        CHECK_MSG(g, "%s", e.msg);
        const GgufKV *pre = gguf_find_key(g, "tokenizer.ggml.pre");
        CHECK_MSG(pre && !strcmp(pre->str, names[i]), "%s: pre-tokenizer %s", dirs[i], pre ? pre->str : "(none)");
        gguf_close(g);
        Tokenizer *gt = tok_load(out, &e);
        CHECK_MSG(gt, "%s", e.msg);
        int n = 0, fails = check_vectors(gt, names[i], &n);
        printf("  %s as GGUF: llama.cpp vectors %d/%d pass\n", dirs[i], n - fails, n);
        CHECK_EQ_INT(fails, 0);
        CHECK(n >= 40);
        same_ids(hf, gt, dirs[i]);
        tok_free(hf);
        tok_free(gt);
        free(out), free(tmp), free(dir);
    }
}

/* SentencePiece-style tokenizer.json (Llama 2 / Mistral 7B layout): none is
 * in the shared data, so one is made from llama.cpp's llama-spm vocabulary
 * the way transformers' converter does (a merge for every token that splits
 * into two tokens, ordered by the merged token's score, then ids; "▁"
 * prepended and spaces replaced by normalisers; <s> added by the
 * post-processor). Its GGUF must have llama-spm's tokens and types, and
 * reproduce llama.cpp's test vectors. */
/* spm_tokenizer_json plus the post-processor that adds <s>. */
static json_t *spm_tokenizer_json_bos(const Tokenizer *g) {
    json_t *root = spm_tokenizer_json(g, 0);
    json_object_set_new(root, "post_processor",
                        json_pack("{s:s,s:[{s:{s:s,s:i}},{s:{s:s,s:i}}],s:{s:{s:s,s:[i],s:[s]}}}", "type",
                                  "TemplateProcessing", "single", "SpecialToken", "id", "<s>", "type_id", 0, "Sequence",
                                  "id", "A", "type_id", 0, "special_tokens", "<s>", "id", "<s>", "ids", 1, "tokens",
                                  "<s>"));
    return root;
}

static void test_spm_tokenizer(void) {
    char *ref_path = test_shared_path("tokenizer-data/llama.cpp-vocab/ggml-vocab-llama-spm.gguf");
    if (!ref_path) SKIP("shared tokenizer-data not found (set ALOE_SHARED)");
    Err e;
    Tokenizer *g = tok_load_gguf(ref_path, &e);
    CHECK_MSG(g, "%s", e.msg);
    char *tmp = test_tmpdir(), *tj = path_join(tmp, "tokenizer.json"), *out = path_join(tmp, "vocab.gguf");
    json_t *root = spm_tokenizer_json_bos(g);
    CHECK(json_dump_file(root, tj, 0) == 0);
    json_decref(root);
    const char *cfg = "{\"bos_token\": \"<s>\", \"eos_token\": \"</s>\", \"unk_token\": \"<unk>\"}";
    char *tc = path_join(tmp, "tokenizer_config.json");
    CHECK_OK(file_write_atomic(tc, cfg, strlen(cfg), &e), &e);
    GgufWriter *w = gguf_writer_new();
    int rc = convert_set_tokenizer(w, tmp, tok_vocab_size(g), &e) || gguf_writer_write(w, out, &e);
    gguf_writer_free(w);
    CHECK_OK(rc, &e);
    Gguf *ref = gguf_open(ref_path, &e), *got = ref ? gguf_open(out, &e) : NULL;
    CHECK_MSG(ref && got, "%s", e.msg);
    const char *keys[] = {"tokenizer.ggml.model", "tokenizer.ggml.pre", "tokenizer.ggml.tokens",
                          "tokenizer.ggml.token_type", "tokenizer.ggml.bos_token_id", "tokenizer.ggml.eos_token_id",
                          "tokenizer.ggml.unknown_token_id", "tokenizer.ggml.add_bos_token", "tokenizer.ggml.add_eos_token"};
    for (size_t k = 0; k < sizeof keys / sizeof *keys; k++) {
        const GgufKV *a = gguf_find_key(ref, keys[k]), *b = gguf_find_key(got, keys[k]);
        CHECK_MSG(a && b && kv_equal(a, b), "llama-spm: key %s differs", keys[k]);
    }
    gguf_close(ref);
    gguf_close(got);
    Tokenizer *t = tok_load(out, &e), *hf = t ? tok_load(tmp, &e) : NULL;
    CHECK_MSG(t && hf, "%s", e.msg);
    int n = 0, fails = check_vectors(t, "llama-spm", &n);
    printf("  llama-spm via tokenizer.json as GGUF: llama.cpp vectors %d/%d pass\n", n - fails, n);
    CHECK_EQ_INT(fails, 0);
    CHECK(n >= 40);
    same_ids(hf, t, "llama-spm");
    tok_free(t), tok_free(hf), tok_free(g);
    free(ref_path), free(tmp), free(tj), free(out), free(tc);
}

static void test_bad_input(void) {
    Err e;
    int type;
    char *tmp = test_tmpdir(), *out = path_join(tmp, "x.gguf");
    CHECK(convert_type_parse("iq3_s", &type, &e) == -1);
    CHECK_MSG(strstr(e.msg, "\"iq3_s\": expected f32, f16, bf16, q8_0, q4_0, q4_1, q5_0, q5_1, iq4_nl, q2_k, q3_k, q4_k, q5_k, q6_k or iq4_xs"), "%s", e.msg);
    /* upper case is llama-quantize's preset F16, not the pure type */
    CHECK(convert_type_parse("F16", &type, &e) == 0 && type != DT_F16);
    char *missing = path_join(tmp, "nope");
    CHECK(convert_hf_to_gguf(missing, out, DT_F16, &e) == -1);
    CHECK_MSG(strstr(e.msg, "nope: not a Hugging Face model directory"), "%s", e.msg);
    CHECK(convert_hf_to_gguf(tmp, out, DT_F16, &e) == -1);
    CHECK_MSG(strstr(e.msg, "not a Hugging Face model directory: no config.json"), "%s", e.msg);
    free(missing);
    char *bert = test_shared_path("fixtures/models/tiny-bert-st"), *dir = fixture_dir("tiny-qwen2");
    if (!bert || !dir) {
        free(tmp), free(out), free(bert), free(dir);
        SKIP("shared fixtures not found (set ALOE_SHARED)");
    }
    CHECK(convert_hf_to_gguf(bert, out, DT_F16, &e) == -1);
    CHECK_MSG(strstr(e.msg, "BertModel: GGUF export handles the decoder models"), "%s", e.msg);
    char *bad_out = path_join(tmp, "no/such/dir/x.gguf");
    CHECK(convert_hf_to_gguf(dir, bad_out, DT_F16, &e) == -1);
    CHECK_MSG(strstr(e.msg, "no/such/dir/x.gguf"), "%s", e.msg);
    CHECK(!file_exists(out));
    /* a tokenizer model GGUF export does not handle is refused with its reason */
    char *spm = path_join(tmp, "wp");
    Err e2;
    CHECK_OK(file_mkdirs(spm, &e2), &e2);
    char *cfg_src = path_join(dir, "config.json"), *cfg_dst = path_join(spm, "config.json"), *text;
    size_t len;
    CHECK_OK(file_read_all(cfg_src, &text, &len, &e2), &e2);
    CHECK_OK(file_write_atomic(cfg_dst, text, len, &e2), &e2);
    free(text);
    char *st_src = path_join(dir, "model.safetensors"), *st_dst = path_join(spm, "model.safetensors");
    CHECK_OK(file_read_all(st_src, &text, &len, &e2), &e2);
    CHECK_OK(file_write_atomic(st_dst, text, len, &e2), &e2);
    free(text);
    const char *tj = "{\"model\": {\"type\": \"WordPiece\", \"vocab\": {\"a\": 0}}}";
    char *tj_path = path_join(spm, "tokenizer.json");
    CHECK_OK(file_write_atomic(tj_path, tj, strlen(tj), &e2), &e2);
    CHECK(convert_hf_to_gguf(spm, out, DT_F16, &e) == -1);
    CHECK_MSG(strstr(e.msg, "wp/tokenizer.json: model type \"WordPiece\": GGUF export handles BPE tokenizers only"),
              "%s", e.msg);
    free(cfg_src), free(cfg_dst), free(st_src), free(st_dst), free(tj_path), free(spm);
    free(bad_out), free(bert), free(dir), free(out), free(tmp);
}

int main(void) {
    RUN(test_same_as_llama_cpp);
    RUN(test_engine_logits);
    RUN(test_q6_k_wide);
    RUN(test_tokenizer_ids);
    RUN(test_real_tokenizers);
    RUN(test_spm_tokenizer);
    RUN(test_bad_input);
    return test_summary();
}
