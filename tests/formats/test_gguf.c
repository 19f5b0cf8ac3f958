#include <stdint.h>
#include <stdlib.h>

#include "base/fileio.h"
#include "base/mem.h"
#include "base/rng.h"
#include "formats/gguf.h"
#include "formats/gguf_write.h"
#include "formats/hfdir.h"
#include "formats/safetensors.h"
#include "test.h"

/* A GGUF fixture, or NULL with the test ended: SKIPPED when the file is
 * absent, FAIL when it is there but does not open. */
static Gguf *open_fixture(const char *model, const char *type, Err *e) {
    char *rel = xasprintf("fixtures/gguf/tiny-%s-%s.gguf", model, type);
    char *p = test_need_shared(rel);
    free(rel);
    if (!p) return NULL;
    Gguf *g = gguf_open(p, e);
    if (!g) test_fail(__FILE__, __LINE__, "%s does not open: %s", p, e->msg);
    free(p);
    return g;
}

static void test_fixture_structure(void) {
    const char *models[] = {"llama3", "qwen2", "mistral"};
    const int n_tensors[] = {22, 26, 30};
    const char *types[] = {"f32", "f16", "bf16", "q8_0"};
    const int weight_type[] = {DT_F32, DT_F16, DT_BF16, DT_Q8_0};
    Err e;
    for (int m = 0; m < 3; m++)
        for (int t = 0; t < 4; t++) {
            Gguf *g = open_fixture(models[m], types[t], &e);
            if (!g) return; /* open_fixture said SKIPPED or FAIL */
            CHECK_EQ_INT(gguf_version(g), 3);
            CHECK_EQ_INT(gguf_alignment(g), 32);
            CHECK_EQ_INT(gguf_n_tensors(g), n_tensors[m]);
            const TensorView *q = gguf_get_tensor(g, "blk.0.attn_q.weight", &e);
            CHECK_MSG(q != NULL, "%s", e.msg);
            CHECK_EQ_INT(q->dtype, weight_type[t]);
            const TensorView *emb = gguf_find_tensor(g, "token_embd.weight");
            CHECK(emb != NULL);
            CHECK_EQ_INT(emb->ndim, 2);
            CHECK_EQ_INT(emb->shape[1], m == 2 ? 96 : 64); /* [vocab, hidden] like HF */
            const TensorView *norm = gguf_find_tensor(g, "output_norm.weight");
            CHECK(norm && norm->dtype == DT_F32 && norm->ndim == 1);
            for (int i = 0; i < gguf_n_tensors(g); i++) {
                const TensorView *x = gguf_tensor(g, i);
                CHECK_EQ_INT(((const char *)x->data - (const char *)gguf_tensor(g, 0)->data) % 32, 0);
            }
            CHECK((gguf_find_tensor(g, "output.weight") != NULL) == (m != 1)); /* qwen2 is tied */
            CHECK(gguf_find_tensor(g, "blk.9.attn_q.weight") == NULL);
            CHECK(gguf_get_tensor(g, "blk.9.attn_q.weight", &e) == NULL);
            CHECK_MSG(strstr(e.msg, "no tensor blk.9.attn_q.weight"), "%s", e.msg);
            gguf_close(g);
        }
}

static void test_metadata_getters(void) {
    Err e;
    Gguf *g = open_fixture("llama3", "q8_0", &e);
    if (!g) return; /* open_fixture said SKIPPED or FAIL */
    const char *s;
    uint32_t u;
    float f;
    CHECK_OK(gguf_get_str(g, "general.architecture", &s, &e), &e);
    CHECK_EQ_STR(s, "llama");
    CHECK_OK(gguf_get_u32(g, "llama.block_count", &u, &e), &e);
    CHECK_EQ_INT(u, 2);
    CHECK_OK(gguf_get_f32(g, "llama.rope.freq_base", &f, &e), &e);
    CHECK(f == 500000.0f);
    CHECK_OK(gguf_get_f32(g, "llama.block_count", &f, &e), &e); /* integers read as numbers */
    CHECK(f == 2.0f);
    int32_t i32;
    CHECK_OK(gguf_get_i32(g, "tokenizer.ggml.bos_token_id", &i32, &e), &e);
    CHECK_EQ_INT(i32, 1024);
    /* errors name the key and both types */
    CHECK(gguf_get_u32(g, "llama.missing", &u, &e) == -1);
    CHECK_EQ_INT(e.code, ERR_NOTFOUND);
    CHECK_MSG(strstr(e.msg, "missing metadata key llama.missing"), "%s", e.msg);
    CHECK(gguf_get_u32(g, "general.architecture", &u, &e) == -1);
    CHECK_MSG(strstr(e.msg, "metadata general.architecture has type string, expected an integer"), "%s", e.msg);
    CHECK(gguf_get_str(g, "llama.block_count", &s, &e) == -1);
    CHECK_MSG(strstr(e.msg, "has type u32, expected string"), "%s", e.msg);
    int b;
    CHECK(gguf_get_bool(g, "tokenizer.ggml.tokens", &b, &e) == -1);
    CHECK_MSG(strstr(e.msg, "tokenizer.ggml.tokens is an array of string, expected bool"), "%s", e.msg);
    /* tokenizer arrays */
    const GgufStr *tok;
    uint64_t n;
    CHECK_OK(gguf_get_arr_str(g, "tokenizer.ggml.tokens", &tok, &n, &e), &e);
    CHECK_EQ_INT(n, 1029);
    CHECK(tok[0].len == 1 && tok[0].s[0] == '!');
    CHECK(tok[1024].len == strlen("<|begin_of_text|>") && !memcmp(tok[1024].s, "<|begin_of_text|>", tok[1024].len));
    const GgufStr *merges;
    CHECK_OK(gguf_get_arr_str(g, "tokenizer.ggml.merges", &merges, &n, &e), &e);
    CHECK_EQ_INT(n, 768);
    CHECK(merges[0].len == 4 && !memcmp(merges[0].s, "\xc4\xa0 a", 4));
    int32_t *types;
    CHECK_OK(gguf_get_arr_i32(g, "tokenizer.ggml.token_type", &types, &n, &e), &e);
    CHECK_EQ_INT(n, 1029);
    CHECK_EQ_INT(types[0], 1);    /* normal */
    CHECK_EQ_INT(types[1024], 3); /* control */
    free(types);
    float *fl;
    CHECK(gguf_get_arr_f32(g, "tokenizer.ggml.tokens", &fl, &n, &e) == -1);
    CHECK_MSG(strstr(e.msg, "expected an array of numbers"), "%s", e.msg);
    CHECK(gguf_get_arr_str(g, "tokenizer.ggml.token_type", &tok, &n, &e) == -1);
    gguf_close(g);
}

static void test_vocab_only_files(void) {
    const char *files[] = {"bert-bge", "gpt-2", "llama-spm", "phi-3"};
    const uint64_t vocab[] = {30522, 50257, 32000, 32064};
    const char *model[] = {"bert", "gpt2", "llama", "llama"};
    for (int i = 0; i < 4; i++) {
        char *rel = xasprintf("tokenizer-data/llama.cpp-vocab/ggml-vocab-%s.gguf", files[i]);
        char *p = test_need_shared(rel);
        free(rel);
        if (!p) return;
        Err e;
        Gguf *g = gguf_open(p, &e);
        CHECK_MSG(g != NULL, "%s", e.msg);
        CHECK_EQ_INT(gguf_n_tensors(g), 0);
        const char *s;
        CHECK_OK(gguf_get_str(g, "tokenizer.ggml.model", &s, &e), &e);
        CHECK_EQ_STR(s, model[i]);
        const GgufStr *tok;
        uint64_t n;
        CHECK_OK(gguf_get_arr_str(g, "tokenizer.ggml.tokens", &tok, &n, &e), &e);
        CHECK_EQ_INT(n, vocab[i]);
        if (!strcmp(model[i], "llama")) {
            float *scores;
            uint64_t ns;
            CHECK_OK(gguf_get_arr_f32(g, "tokenizer.ggml.scores", &scores, &ns, &e), &e);
            CHECK_EQ_INT(ns, n);
            CHECK(isfinite(scores[n - 1]));
            free(scores);
            CHECK(tok[0].len == 5 && !memcmp(tok[0].s, "<unk>", 5));
        }
        if (i == 3) {
            CHECK_OK(gguf_get_str(g, "tokenizer.chat_template", &s, &e), &e);
            CHECK(strstr(s, "bos_token") != NULL);
        }
        gguf_close(g);
        free(p);
    }
}

/* Every tensor of the f16 / bf16 / q8_0 files dequantises to the f32
 * file's tensor within the type's rounding:
 *   f16:  |x| * 2^-11 (half an ulp), plus 2^-25 for subnormals
 *   bf16: |x| * 2^-8
 *   q8_0: per 32-block with amax = max |x|: amax/127 * (0.5 + 127 * 2^-11)
 *         (half a step, plus the scale's own f16 rounding times |q| <= 127) */
static void test_dequantised_match_f32(void) {
    const char *models[] = {"llama3", "qwen2", "mistral"};
    const char *types[] = {"f16", "bf16", "q8_0"};
    double worst[3] = {0, 0, 0};
    for (int m = 0; m < 3; m++) {
        Err e;
        Gguf *ref = open_fixture(models[m], "f32", &e);
        if (!ref) return; /* open_fixture said SKIPPED or FAIL */
        for (int t = 0; t < 3; t++) {
            Gguf *g = open_fixture(models[m], types[t], &e);
            if (!g) return;
            CHECK_EQ_INT(gguf_n_tensors(g), gguf_n_tensors(ref));
            for (int i = 0; i < gguf_n_tensors(ref); i++) {
                const TensorView *r = gguf_tensor(ref, i), *x = gguf_find_tensor(g, r->name);
                CHECK_MSG(x != NULL, "%s missing in %s", r->name, types[t]);
                CHECK_EQ_INT(x->ndim, r->ndim);
                for (int d = 0; d < r->ndim; d++) CHECK_EQ_INT(x->shape[d], r->shape[d]);
                int64_t n = tensor_numel(r);
                float *a = tensor_to_f32_alloc(r, &e), *b = tensor_to_f32_alloc(x, &e);
                CHECK_MSG(a && b, "%s", e.msg);
                for (int64_t k = 0; k < n; k++) {
                    double tol;
                    if (x->dtype == DT_F32) tol = 0;
                    else if (x->dtype == DT_F16) tol = fabs(a[k]) * 0x1p-11 + 0x1p-25;
                    else if (x->dtype == DT_BF16) tol = fabs(a[k]) * 0x1p-8;
                    else {
                        double amax = 0;
                        for (int64_t j = k / 32 * 32; j < k / 32 * 32 + 32; j++) amax = fmax(amax, fabs(a[j]));
                        tol = amax / 127 * (0.5 + 127 * 0x1p-11);
                    }
                    double err = fabs((double)a[k] - b[k]);
                    if (tol > 0 && err / tol > worst[t]) worst[t] = err / tol;
                    CHECK_MSG(err <= tol, "%s %s[%lld]: %g vs %g (tol %g)", types[t], r->name, (long long)k, b[k],
                              a[k], tol);
                }
                free(a);
                free(b);
            }
            gguf_close(g);
        }
        gguf_close(ref);
    }
    printf("  worst error / tolerance: f16 %.3f, bf16 %.3f, q8_0 %.3f\n", worst[0], worst[1], worst[2]);
    /* the tolerances are not vacuous: each type's error reaches a good part of its bound */
    CHECK(worst[0] > 0.3 && worst[1] > 0.3 && worst[2] > 0.3);
}

/* The f32 GGUF holds exactly the HF weights, except that llama.cpp permuted
 * the Q and K rows of the `llama` architecture; gguf_unpermute_qk restores
 * them bit for bit. */
static void check_same_as_hf(const char *model, int permuted, int n_head, int n_kv) {
    char *rel = xasprintf("fixtures/models/tiny-%s", model);
    char *dir = test_need_shared(rel);
    free(rel);
    if (!dir) return;
    Err e;
    SafeTensors *st = st_open(dir, &e);
    CHECK_MSG(st != NULL, "%s", e.msg);
    Gguf *g = open_fixture(model, "f32", &e);
    if (!g) return;
    CHECK_EQ_INT(gguf_qk_permuted(g), permuted);
    int matched = 0;
    for (int i = 0; i < gguf_n_tensors(g); i++) {
        const TensorView *t = gguf_tensor(g, i);
        char hf[128];
        if (hf_name_from_gguf(t->name, hf, sizeof hf)) continue;
        const TensorView *h = st_get(st, hf, &e);
        CHECK_MSG(h != NULL, "%s", e.msg);
        CHECK_EQ_INT(h->nbytes, t->nbytes);
        CHECK_EQ_INT(h->ndim, t->ndim);
        for (int d = 0; d < t->ndim; d++) CHECK_EQ_INT(h->shape[d], t->shape[d]);
        uint8_t *copy = xmalloc(t->nbytes);
        memcpy(copy, t->data, t->nbytes);
        int is_q = strstr(t->name, "attn_q.weight") != NULL, is_k = strstr(t->name, "attn_k.weight") != NULL;
        if (permuted && (is_q || is_k)) {
            CHECK_MSG(memcmp(copy, h->data, t->nbytes) != 0, "%s is not permuted", t->name);
            CHECK_OK(gguf_unpermute_qk(copy, t->shape[0], tensor_row_bytes(t), is_q ? n_head : n_kv, &e), &e);
        }
        CHECK_MSG(!memcmp(copy, h->data, t->nbytes), "%s differs from %s", t->name, hf);
        if (permuted && (is_q || is_k)) { /* and back */
            CHECK_OK(gguf_permute_qk(copy, t->shape[0], tensor_row_bytes(t), is_q ? n_head : n_kv, &e), &e);
            CHECK(!memcmp(copy, t->data, t->nbytes));
        }
        free(copy);
        matched++;
    }
    CHECK_EQ_INT(matched, st_count(st));
    gguf_close(g);
    st_close(st);
    free(dir);
}

static void test_llama3_f32_equals_hf_after_unpermute(void) { check_same_as_hf("llama3", 1, 4, 2); }
static void test_mistral_f32_equals_hf_after_unpermute(void) { check_same_as_hf("mistral", 1, 6, 2); }
static void test_qwen2_f32_equals_hf_unpermuted(void) { check_same_as_hf("qwen2", 0, 4, 2); }

/* Whole rows move, so the permutation works on quantised rows too. */
static void test_unpermute_q8_0_rows(void) {
    Err e;
    Gguf *g = open_fixture("llama3", "q8_0", &e);
    if (!g) return;
    NEED_SHARED(p, "fixtures/models/tiny-llama3/model.safetensors");
    SafeTensors *st = st_open(p, &e);
    CHECK_MSG(st != NULL, "%s", e.msg);
    const TensorView *q = gguf_find_tensor(g, "blk.1.attn_k.weight");
    const TensorView *h = st_find(st, "model.layers.1.self_attn.k_proj.weight");
    CHECK(q && h);
    uint8_t *rows = xmalloc(q->nbytes);
    memcpy(rows, q->data, q->nbytes);
    CHECK_OK(gguf_unpermute_qk(rows, q->shape[0], tensor_row_bytes(q), 2, &e), &e);
    TensorView v = *q;
    v.data = rows;
    float *a = tensor_to_f32_alloc(&v, &e);
    const float *ref = h->data;
    for (int64_t k = 0; k < tensor_numel(h); k++) CHECK_NEAR(a[k], ref[k], 0.01);
    CHECK(gguf_unpermute_qk(rows, 30, 8, 4, &e) == -1);
    CHECK_MSG(strstr(e.msg, "30 rows do not split into 4 heads"), "%s", e.msg);
    free(a);
    free(rows);
    st_close(st);
    gguf_close(g);
    free(p);
}

/* Truncations and random damage of a real file: an error or a consistent
 * result, never a crash (ASan runs this under `make SAN=1 test`). */
static void test_truncated_and_damaged(void) {
    NEED_SHARED(p, "fixtures/gguf/tiny-qwen2-q8_0.gguf");
    char *buf;
    size_t len;
    Err e;
    CHECK_OK(file_read_all(p, &buf, &len, &e), &e);
    Gguf *full = gguf_open_mem(buf, len, "full", &e);
    CHECK(full != NULL);
    size_t header = gguf_data_offset(full);
    gguf_close(full);
    int opened = 0;
    for (size_t cut = 0; cut < len; cut += cut < header ? 97 : 4099) {
        char *copy = xmalloc(cut ? cut : 1);
        memcpy(copy, buf, cut);
        Gguf *g = gguf_open_mem(copy, cut, "cut", &e);
        CHECK_MSG(g == NULL, "truncated at %zu of %zu but opened", cut, len);
        CHECK(strstr(e.msg, "cut: ") == e.msg);
        free(copy);
    }
    Rng r;
    rng_seed(&r, 3);
    for (int trial = 0; trial < 400; trial++) {
        char *copy = xmalloc(len);
        memcpy(copy, buf, len);
        for (int k = 0; k < 4; k++) {
            size_t at = rng_below(&r, header);
            copy[at] = (char)(rng_below(&r, 4) ? rng_u64(&r) : 0xff);
        }
        Gguf *g = gguf_open_mem(copy, len, "damaged", &e);
        if (g) {
            opened++;
            for (int i = 0; i < gguf_n_tensors(g); i++) {
                const TensorView *t = gguf_tensor(g, i);
                CHECK((const char *)t->data >= copy && (const char *)t->data + t->nbytes <= copy + len);
            }
            for (int i = 0; i < gguf_n_kv(g); i++) {
                const GgufKV *kv = gguf_kv(g, i);
                if (kv->type == GGUF_ARRAY && kv->arr_type == GGUF_STRING)
                    for (uint64_t j = 0; j < kv->n; j++)
                        CHECK(kv->strs[j].s >= copy && kv->strs[j].s + kv->strs[j].len <= copy + len);
            }
            gguf_close(g);
        }
        free(copy);
    }
    printf("  %d of 400 damaged copies still parsed\n", opened);
    /* specific corruptions */
    char *copy = xmalloc(len);
    memcpy(copy, buf, len);
    memcpy(copy, "GGUX", 4);
    CHECK(gguf_open_mem(copy, len, "m", &e) == NULL);
    CHECK_MSG(strstr(e.msg, "not a GGUF file"), "%s", e.msg);
    memcpy(copy, buf, len);
    copy[4] = 9;
    CHECK(gguf_open_mem(copy, len, "m", &e) == NULL);
    CHECK_MSG(strstr(e.msg, "GGUF version 9"), "%s", e.msg);
    memcpy(copy, buf, len);
    memset(copy + 8, 0xff, 8); /* tensor count */
    CHECK(gguf_open_mem(copy, len, "m", &e) == NULL);
    CHECK_MSG(strstr(e.msg, "tensor count"), "%s", e.msg);
    memcpy(copy, buf, len);
    memset(copy + 16, 0x7f, 8); /* kv count */
    CHECK(gguf_open_mem(copy, len, "m", &e) == NULL);
    CHECK_MSG(strstr(e.msg, "metadata count"), "%s", e.msg);
    free(copy);
    free(buf);
    free(p);
}

static void test_unpermute_small_known(void) {
    /* 2 heads of 4 rows, one int per row: GGUF order within a head is
     * HF rows 0,2,1,3 */
    int32_t rows[8] = {0, 2, 1, 3, 4, 6, 5, 7};
    Err e;
    CHECK_OK(gguf_unpermute_qk(rows, 8, 4, 2, &e), &e);
    for (int i = 0; i < 8; i++) CHECK_EQ_INT(rows[i], i);
    CHECK_OK(gguf_permute_qk(rows, 8, 4, 2, &e), &e);
    CHECK_EQ_INT(rows[1], 2);
    CHECK_EQ_INT(rows[6], 5);
}


/* Copying every metadata item and tensor of a llama.cpp-written file
 * through the writer reproduces that file byte for byte. */
static void test_writer_reproduces_fixture(void) {
    const char *files[] = {"fixtures/gguf/tiny-llama3-q8_0.gguf", "fixtures/gguf/tiny-qwen2-bf16.gguf",
                           "tokenizer-data/llama.cpp-vocab/ggml-vocab-phi-3.gguf"};
    for (int f = 0; f < 3; f++) {
        char *p = test_need_shared(files[f]);
        if (!p) return;
        Err e;
        Gguf *g = gguf_open(p, &e);
        CHECK_MSG(g != NULL, "%s", e.msg);
        GgufWriter *w = gguf_writer_new();
        for (int i = 0; i < gguf_n_kv(g); i++) gguf_set_kv(w, gguf_kv(g, i));
        for (int i = 0; i < gguf_n_tensors(g); i++) CHECK_OK(gguf_writer_add_tensor(w, gguf_tensor(g, i), &e), &e);
        char *dir = test_tmpdir(), *out = path_join(dir, "copy.gguf");
        CHECK_OK(gguf_writer_write(w, out, &e), &e);
        gguf_writer_free(w);
        char *a, *b;
        size_t la, lb;
        CHECK_OK(file_read_all(p, &a, &la, &e), &e);
        CHECK_OK(file_read_all(out, &b, &lb, &e), &e);
        CHECK_EQ_INT(lb, la);
        CHECK_MSG(!memcmp(a, b, la), "%s: copy differs from the original", files[f]);
        free(a);
        free(b);
        gguf_close(g);
        free(out);
        free(dir);
        free(p);
    }
}

static void test_writer_round_trip(void) {
    GgufWriter *w = gguf_writer_new();
    gguf_set_str(w, "general.architecture", "llama");
    gguf_set_u32(w, "general.alignment", 64);
    gguf_set_u32(w, "llama.block_count", 7);
    gguf_set_u32(w, "llama.block_count", 8); /* replaces */
    gguf_set_i32(w, "x.i32", -5);
    gguf_set_u64(w, "x.u64", (uint64_t)1 << 40);
    gguf_set_f32(w, "x.f32", 0.25f);
    gguf_set_bool(w, "x.bool", 1);
    double d = -1.5;
    gguf_set_scalar(w, "x.f64", GGUF_F64, &d);
    int16_t i16 = -300;
    gguf_set_scalar(w, "x.i16", GGUF_I16, &i16);
    const char *toks[] = {"a", "", "hello world"};
    gguf_set_arr_str(w, "tokenizer.ggml.tokens", toks, 3);
    float scores[3] = {0, -1, -2.5f};
    gguf_set_arr(w, "tokenizer.ggml.scores", GGUF_F32, scores, 3);
    int32_t types[3] = {1, 3, 1};
    gguf_set_arr(w, "tokenizer.ggml.token_type", GGUF_I32, types, 3);
    Rng r;
    rng_seed(&r, 1);
    float wf[4 * 64];
    for (int i = 0; i < 4 * 64; i++) wf[i] = rng_normal(&r);
    uint8_t q4[4 * 2 * 18], q8[4 * 2 * 34];
    quantize_row_q4_0(wf, q4, 4 * 64);
    quantize_row_q8_0(wf, q8, 4 * 64);
    float bias[3] = {1, 2, 3};
    TensorView t[3] = {
        {.name = "w.q4", .dtype = DT_Q4_0, .ndim = 2, .shape = {4, 64, 1, 1}, .data = q4, .nbytes = sizeof q4},
        {.name = "w.q8", .dtype = DT_Q8_0, .ndim = 2, .shape = {4, 64, 1, 1}, .data = q8, .nbytes = sizeof q8},
        {.name = "b", .dtype = DT_F32, .ndim = 1, .shape = {3, 1, 1, 1}, .data = bias, .nbytes = 12},
    };
    Err e;
    for (int i = 0; i < 3; i++) CHECK_OK(gguf_writer_add_tensor(w, &t[i], &e), &e);
    CHECK(gguf_writer_add_tensor(w, &t[2], &e) == -1);
    CHECK_MSG(strstr(e.msg, "tensor b added twice"), "%s", e.msg);
    TensorView bad = t[1];
    bad.shape[1] = 48; /* not whole Q8_0 blocks */
    bad.name = "bad";
    CHECK(gguf_writer_add_tensor(w, &bad, &e) == -1);
    char *dir = test_tmpdir(), *out = path_join(dir, "rt.gguf");
    CHECK_OK(gguf_writer_write(w, out, &e), &e);
    gguf_writer_free(w);
    Gguf *g = gguf_open(out, &e);
    CHECK_MSG(g != NULL, "%s", e.msg);
    CHECK_EQ_INT(gguf_alignment(g), 64);
    CHECK_EQ_INT(gguf_n_kv(g), 12);
    uint32_t u;
    CHECK_OK(gguf_get_u32(g, "llama.block_count", &u, &e), &e);
    CHECK_EQ_INT(u, 8);
    CHECK_EQ_STR(gguf_kv(g, 2)->key, "llama.block_count"); /* kept its place */
    int32_t i;
    CHECK_OK(gguf_get_i32(g, "x.i32", &i, &e), &e);
    CHECK_EQ_INT(i, -5);
    CHECK_OK(gguf_get_i32(g, "x.i16", &i, &e), &e);
    CHECK_EQ_INT(i, -300);
    uint64_t u64;
    CHECK_OK(gguf_get_u64(g, "x.u64", &u64, &e), &e);
    CHECK(u64 == (uint64_t)1 << 40);
    CHECK(gguf_get_u32(g, "x.u64", &u, &e) == -1);
    CHECK_MSG(strstr(e.msg, "out of range"), "%s", e.msg);
    CHECK(gguf_get_u32(g, "x.i32", &u, &e) == -1);
    float f;
    CHECK_OK(gguf_get_f32(g, "x.f32", &f, &e), &e);
    CHECK(f == 0.25f);
    CHECK_OK(gguf_get_f32(g, "x.f64", &f, &e), &e);
    CHECK(f == -1.5f);
    int b;
    CHECK_OK(gguf_get_bool(g, "x.bool", &b, &e), &e);
    CHECK(b == 1);
    const GgufStr *ts;
    uint64_t n;
    CHECK_OK(gguf_get_arr_str(g, "tokenizer.ggml.tokens", &ts, &n, &e), &e);
    CHECK(n == 3 && ts[1].len == 0 && ts[2].len == 11 && !memcmp(ts[2].s, "hello world", 11));
    float *sc;
    CHECK_OK(gguf_get_arr_f32(g, "tokenizer.ggml.scores", &sc, &n, &e), &e);
    CHECK(n == 3 && sc[2] == -2.5f);
    free(sc);
    for (int k = 0; k < 3; k++) {
        const TensorView *x = gguf_find_tensor(g, t[k].name);
        CHECK(x != NULL);
        CHECK_EQ_INT(x->dtype, t[k].dtype);
        CHECK_EQ_INT(x->ndim, t[k].ndim);
        CHECK_EQ_INT(x->shape[0], t[k].shape[0]);
        CHECK_EQ_INT(x->nbytes, t[k].nbytes);
        CHECK(!memcmp(x->data, t[k].data, x->nbytes));
        CHECK_EQ_INT(((const char *)x->data - (const char *)gguf_tensor(g, 0)->data) % 64, 0);
    }
    /* the q4_0 weights dequantise close to the originals */
    float back[4 * 64];
    CHECK_OK(tensor_to_f32(gguf_find_tensor(g, "w.q4"), back, &e), &e);
    double err = 0, ref = 0;
    for (int k = 0; k < 4 * 64; k++) {
        err += (back[k] - wf[k]) * (back[k] - wf[k]);
        ref += wf[k] * wf[k];
    }
    CHECK_MSG(sqrt(err / ref) < 0.15, "q4_0 relative rms error %g", sqrt(err / ref));
    gguf_close(g);
    free(out);
    free(dir);
}

/* Our f16 / bf16 / q8_0 conversions produce exactly the bytes llama.cpp's
 * converter wrote from the same f32 weights. */
static void test_quantizers_match_llama_cpp_bytes(void) {
    const char *models[] = {"llama3", "qwen2", "mistral"};
    const char *types[] = {"f16", "bf16", "q8_0"};
    for (int m = 0; m < 3; m++) {
        Err e;
        Gguf *ref = open_fixture(models[m], "f32", &e);
        if (!ref) return; /* open_fixture said SKIPPED or FAIL */
        for (int t = 0; t < 3; t++) {
            Gguf *g = open_fixture(models[m], types[t], &e);
            if (!g) return;
            for (int i = 0; i < gguf_n_tensors(g); i++) {
                const TensorView *x = gguf_tensor(g, i), *r = gguf_find_tensor(ref, x->name);
                CHECK(r && r->dtype == DT_F32);
                uint8_t *buf = xmalloc(x->nbytes);
                CHECK_EQ_INT(quantize_row(x->dtype, r->data, buf, tensor_numel(r)), 0);
                CHECK_MSG(!memcmp(buf, x->data, x->nbytes), "%s %s: bytes differ from llama.cpp's", types[t], x->name);
                free(buf);
            }
            gguf_close(g);
        }
        gguf_close(ref);
    }
}

int main(void) {
    RUN(test_fixture_structure);
    RUN(test_metadata_getters);
    RUN(test_vocab_only_files);
    RUN(test_dequantised_match_f32);
    RUN(test_llama3_f32_equals_hf_after_unpermute);
    RUN(test_mistral_f32_equals_hf_after_unpermute);
    RUN(test_qwen2_f32_equals_hf_unpermuted);
    RUN(test_unpermute_q8_0_rows);
    RUN(test_unpermute_small_known);
    RUN(test_quantizers_match_llama_cpp_bytes);
    RUN(test_truncated_and_damaged);
    RUN(test_writer_reproduces_fixture);
    RUN(test_writer_round_trip);
    return test_summary();
}
