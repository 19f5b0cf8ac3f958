/* test_arch_models: the tiny OLMo, OLMo 2, Gemma 2, Gemma 3 and Phi-3
 * models of tests/data/arch/models (README there: each architecture's
 * equations as the gold generator implements them) run by the engine from
 * their Hugging Face directory and from the GGUF `aloe convert` writes of
 * them: forward logits against the gold logits within a derived budget,
 * and the gold greedy ids with a KV cache. The GGUF is checked to be laid
 * out as llama.cpp's converter lays it out (general.architecture, metadata
 * keys, tensor names, Gemma's norms stored + 1, Phi-3's fused attn_qkv and
 * ffn_up, LongRoPE factor tensors).
 *
 * Tolerance. Two float32 evaluations of the same equations (aloe's and
 * PyTorch's) differ by rounding only. logit_budget.h's gold_tol counts the
 * reductions a logit passes through per layer (norm, q/k/v, scores,
 * values, o, norm, gate/up, down) and the final norm and head, each adding
 * u·sqrt(K/6) relative error in quadrature, times LAMBDA = 6 and the
 * logits' rms over their range. The architectures here add reductions of
 * their own, counted the same way: the post-norms (Gemma, OLMo 2: two more
 * reductions of D per layer), the whole-width q/k norm (OLMo 2: q·hd + kv·hd)
 * or per-head q/k norm (Gemma 3: 2·hd), the LayerNorm's mean (OLMo: one more
 * D per norm). The elementwise steps (tanh soft-caps, gelu, clamp, the
 * embedding scale, LongRoPE's scaled cos/sin) add one rounding u each, far
 * below one reduction's u·sqrt(K/6); their derivatives are at most 1
 * (tanh caps, clamp) or O(1), so they do not amplify the errors before
 * them. The extra reductions are added as stages to K.
 *
 * That model counts a relative error as passing through every stage
 * unchanged; the softmax does not keep it relative: a score s with
 * relative error r moves the attention weights by |s|·r, so large scores
 * amplify every stage before them. Phi-3's LongRoPE scales q and k by its
 * attention factor (scores x1.33 here), which shows: the gold's own float32
 * forward is 7.3e-7 of the range from float64, beyond the two-evaluation
 * budget above. So the budget is also at least 3·e_g, with e_g the gold's
 * float32-vs-float64 error its generator measured (self_check,
 * forward_f32_vs_f64_max_abs_diff): |aloe - gold| <= |aloe - f64| +
 * |gold - f64|, and aloe's float32 evaluation of the same equations (other
 * summation orders) is allowed twice the gold's. For the other four the
 * two bounds agree within 15%. */
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/fileio.h"
#include "base/mem.h"
#include "formats/gguf.h"
#include "formats/safetensors.h"
#include "logit_budget.h"
#include "model_logits.h"
#include "model/convert.h"
#include "model/decoder.h"
#include "kernels/matmul.h"
#include "test.h"

#define DIR "tests/data/arch/models/"

typedef struct Gold {
    json_t *json;
    SafeTensors *st;
    int n_rows, len, vocab;
    int32_t *ids; /* [n_rows, len] */
    const float *logits;
    int32_t *prompt, new_ids[64];
    int n_prompt, n_new;
} Gold;

static int32_t *ids_of(json_t *a, int *n) {
    *n = (int)json_array_size(a);
    int32_t *ids = xmalloc((size_t)(*n + 1) * sizeof *ids);
    for (int i = 0; i < *n; i++) ids[i] = (int32_t)json_integer_value(json_array_get(a, (size_t)i));
    return ids;
}

static int gold_load(const char *name, Gold *g, Err *e) {
    memset(g, 0, sizeof *g);
    char *p = xasprintf(DIR "%s/expected.json", name);
    json_error_t je;
    g->json = json_load_file(p, 0, &je);
    free(p);
    if (!g->json) return err_set(e, ERR_PARSE, "%s: %s", name, je.text);
    json_t *in = json_object_get(json_object_get(g->json, "forward"), "input_ids");
    g->n_rows = (int)json_array_size(in);
    g->len = (int)json_array_size(json_array_get(in, 0));
    g->ids = xmalloc((size_t)g->n_rows * g->len * sizeof *g->ids);
    for (int r = 0; r < g->n_rows; r++) {
        int n;
        int32_t *row = ids_of(json_array_get(in, (size_t)r), &n);
        memcpy(g->ids + (size_t)r * g->len, row, (size_t)g->len * sizeof *row);
        free(row);
    }
    json_t *gr = json_object_get(g->json, "greedy");
    g->prompt = ids_of(json_object_get(gr, "prompt_ids"), &g->n_prompt);
    int32_t *nw = ids_of(json_object_get(gr, "new_ids"), &g->n_new);
    memcpy(g->new_ids, nw, (size_t)g->n_new * sizeof *nw);
    free(nw);
    p = xasprintf(DIR "%s/expected.safetensors", name);
    g->st = st_open(p, e);
    free(p);
    if (!g->st) return -1;
    const TensorView *t = st_get(g->st, "forward.logits", e);
    if (!t) return -1;
    g->logits = t->data;
    g->vocab = (int)t->shape[2];
    return 0;
}

static void gold_free(Gold *g) {
    free(g->ids), free(g->prompt);
    if (g->st) st_close(g->st);
    if (g->json) json_decref(g->json);
}

/* gold_tol with the reductions the architecture adds (see the top). */
static double arch_tol(const ModelConfig *c, int T, double rho) {
    double D = c->hidden_size, hd = c->head_dim, q = (double)c->n_heads * hd, kv = (double)c->n_kv_heads * hd;
    double extra = 0;
    if (c->post_norm) extra += 2 * D;
    if (c->qk_norm) extra += c->qk_norm_full ? q + kv : 2 * hd;
    if (c->norm_type == NORM_LAYER_NOPARAM) extra += 2 * D;
    double base = gold_tol(c, T, rho), K_base = c->n_layers * (4 * D + hd + T + q + c->intermediate_size) + 2 * D;
    return base * sqrt((K_base + c->n_layers * extra) / K_base);
}

/* Forward of each gold row with its own cache; max |err| / range of the
 * gold logits, and argmax changes where the gold's top-2 margin exceeds
 * twice the budget. */
static void check_forward(Model *m, const Gold *g, const char *label) {
    int V = g->vocab, T = g->len;
    long n = (long)g->n_rows * T * V;
    float *got = xmalloc((size_t)n * sizeof(float));
    Err e = {0};
    int rc = 0;
    for (int r = 0; r < g->n_rows && !rc; r++) {
        KvCache kv;
        rc = kv_cache_init(&kv, m, T, &e) || model_forward(m, &kv, g->ids + (long)r * T, T, 0, got + (long)r * T * V, 1, &e);
        kv_cache_free(&kv);
    }
    CHECK_MSG(!rc, "%s: %s", label, e.msg);
    double lo = g->logits[0], hi = lo, worst = 0;
    for (long i = 0; i < n; i++) {
        lo = fmin(lo, g->logits[i]), hi = fmax(hi, g->logits[i]);
        worst = fmax(worst, fabs((double)got[i] - g->logits[i]));
    }
    double e_g = json_number_value(
        json_object_get(json_object_get(g->json, "self_check"), "forward_f32_vs_f64_max_abs_diff"));
    double rel = worst / (hi - lo),
           tol = fmax(arch_tol(&m->cfg, T, logit_rho(g->logits, n)), 3 * e_g / (hi - lo));
    int flips = 0;
    for (long t = 0; t < (long)g->n_rows * T; t++) {
        const float *a = got + t * V, *b = g->logits + t * V;
        int ia = 0, ib = 0;
        for (int v = 1; v < V; v++) ia = a[v] > a[ia] ? v : ia, ib = b[v] > b[ib] ? v : ib;
        float second = -INFINITY;
        for (int v = 0; v < V; v++)
            if (v != ib && b[v] > second) second = b[v];
        flips += ia != ib && b[ib] - second > 2 * tol * (hi - lo);
    }
    printf("  %-28s max|err|/range %.2e (budget %.2e)\n", label, rel, tol);
    CHECK_MSG(rel <= tol, "%s: logits %.3g of the range from the gold (budget %.3g)", label, rel, tol);
    CHECK_MSG(flips == 0, "%s: %d argmax changes beyond the budget", label, flips);
    free(got);
}

/* Greedy decoding with a KV cache: prefill the prompt, then one token at a
 * time; the gold ids (its margins are >= 0.012, README). */
static void check_greedy(Model *m, const Gold *g, const char *label) {
    int V = m->cfg.vocab_size, n = g->n_prompt, ok = 1;
    KvCache kv;
    Err e = {0};
    float *lg = xmalloc((size_t)V * sizeof(float));
    int rc = kv_cache_init(&kv, m, n + g->n_new + 1, &e) || model_forward(m, &kv, g->prompt, n, 0, lg, 0, &e);
    for (int s = 0; s < g->n_new && !rc; s++) {
        int32_t best = 0;
        for (int v = 1; v < V; v++) best = lg[v] > lg[best] ? v : best;
        if (best != g->new_ids[s]) {
            printf("    %s: step %d: id %d, gold %d\n", label, s, best, g->new_ids[s]);
            ok = 0;
            break;
        }
        rc = model_forward(m, &kv, &best, 1, n + s, lg, 0, &e);
    }
    CHECK_MSG(!rc, "%s: %s", label, e.msg);
    CHECK_MSG(ok, "%s: greedy ids differ from the gold", label);
    kv_cache_free(&kv);
    free(lg);
}

static const char *ARCHS[] = {"olmo", "olmo2", "gemma2", "gemma3", "phi3"};

static void test_hf_dirs(void) {
    for (size_t i = 0; i < sizeof ARCHS / sizeof *ARCHS; i++) {
        char name[64], label[96];
        snprintf(name, sizeof name, "tiny-%s", ARCHS[i]);
        Gold g;
        Err e = {0};
        CHECK_OK(gold_load(name, &g, &e), &e);
        char *dir = xasprintf(DIR "%s", name);
        Model *m = model_load(dir, 2, &e);
        CHECK_MSG(m != NULL, "%s: %s", dir, e.msg);
        if (m) {
            snprintf(label, sizeof label, "%s (HF)", name);
            check_forward(m, &g, label);
            check_greedy(m, &g, label);
            model_free(m);
        }
        free(dir);
        gold_free(&g);
    }
}

/* Tensor name of the HF file as F32 values (caller frees), or NULL. */
static float *hf_f32(const char *dir, const char *name, int64_t *n) {
    Err e = {0};
    SafeTensors *st = st_open(dir, &e);
    const TensorView *t = st ? st_find(st, name) : NULL;
    float *f = t ? tensor_to_f32_alloc(t, &e) : NULL;
    if (t) *n = tensor_numel(t);
    if (st) st_close(st);
    return f;
}

static float key_f32(const Gguf *g, const char *key) {
    float v = -1;
    Err e = {0};
    return gguf_get_f32(g, key, &v, &e) ? -1 : v;
}

/* The layout llama.cpp's converter gives each architecture (its
 * llama-arch.cpp names, convert_hf_to_gguf.py's transforms). */
static void check_layout(const char *arch, const char *dir, const Gguf *g) {
    Err e = {0};
    const char *a = NULL;
    CHECK_OK(gguf_get_str(g, "general.architecture", &a, &e), &e);
    CHECK_MSG(a && !strcmp(a, arch), "%s: general.architecture %s", arch, a ? a : "?");
    char key[96];
    if (!strcmp(arch, "phi3")) {
        /* fused q|k|v (4·8 + 2·2·8 rows) and gate|up as ffn_up (2·64 rows), no ffn_gate */
        const TensorView *qkv = gguf_find_tensor(g, "blk.0.attn_qkv.weight"), *up = gguf_find_tensor(g, "blk.1.ffn_up.weight");
        CHECK(qkv && qkv->shape[0] == 64 && qkv->shape[1] == 32);
        CHECK(up && up->shape[0] == 128 && up->shape[1] == 32);
        CHECK(!gguf_find_tensor(g, "blk.0.ffn_gate.weight") && !gguf_find_tensor(g, "blk.0.attn_q.weight"));
        const TensorView *lf = gguf_find_tensor(g, "rope_factors_long.weight");
        CHECK(lf && lf->shape[0] == 4 && ((const float *)lf->data)[3] == 40.0f);
        CHECK(gguf_find_tensor(g, "rope_factors_short.weight") != NULL);
        CHECK(fabsf(key_f32(g, "phi3.rope.scaling.attn_factor") - 1.1547005f) < 1e-6f);
    }
    if (!strcmp(arch, "gemma2") || !strcmp(arch, "gemma3")) {
        /* norms stored as w + 1; tied: no output.weight */
        static const char *pairs[][2] = {{"model.layers.0.input_layernorm.weight", "blk.0.attn_norm.weight"},
                                         {"model.layers.1.post_attention_layernorm.weight", "blk.1.post_attention_norm.weight"},
                                         {"model.layers.0.pre_feedforward_layernorm.weight", "blk.0.ffn_norm.weight"},
                                         {"model.layers.0.post_feedforward_layernorm.weight", "blk.0.post_ffw_norm.weight"},
                                         {"model.norm.weight", "output_norm.weight"},
                                         {"model.layers.0.self_attn.q_norm.weight", "blk.0.attn_q_norm.weight"}};
        for (size_t i = 0; i < sizeof pairs / sizeof *pairs; i++) {
            int64_t n = 0;
            float *w = hf_f32(dir, pairs[i][0], &n);
            if (!w) { /* Gemma 2 has no q_norm */
                CHECK(!strcmp(arch, "gemma2") && i == 5);
                continue;
            }
            const TensorView *t = gguf_find_tensor(g, pairs[i][1]);
            int same = t && tensor_numel(t) == n;
            for (int64_t j = 0; same && j < n; j++) same = ((const float *)t->data)[j] == w[j] + 1.0f;
            CHECK_MSG(same, "%s: %s is not %s + 1", arch, pairs[i][1], pairs[i][0]);
            free(w);
        }
        CHECK(!gguf_find_tensor(g, "output.weight"));
        snprintf(key, sizeof key, "%s.attention.sliding_window", arch);
        uint32_t sw = 0;
        CHECK(!gguf_get_u32(g, key, &sw, &e) && sw == 16);
    }
    if (!strcmp(arch, "gemma2")) {
        CHECK(key_f32(g, "gemma2.attn_logit_softcapping") == 2.0f);
        CHECK(key_f32(g, "gemma2.final_logit_softcapping") == 8.0f);
    }
    if (!strcmp(arch, "gemma3")) CHECK(key_f32(g, "gemma3.rope.freq_base_swa") == 10000.0f);
    if (!strcmp(arch, "olmo")) {
        /* no norm tensors; Q/K rows permuted as Llama's (rope type NORM):
         * GGUF row 2i of a head is HF row i, row 2i+1 HF row head_dim/2 + i */
        CHECK(!gguf_find_tensor(g, "blk.0.attn_norm.weight") && !gguf_find_tensor(g, "output_norm.weight"));
        CHECK(key_f32(g, "olmo.attention.clamp_kqv") == 1.5f);
        CHECK(key_f32(g, "olmo.attention.layer_norm_epsilon") == 1e-5f);
        int64_t n = 0;
        float *q = hf_f32(dir, "model.layers.0.self_attn.q_proj.weight", &n);
        const TensorView *t = gguf_find_tensor(g, "blk.0.attn_q.weight");
        CHECK(q && t && !memcmp((const float *)t->data + 32, q + 4 * 32, 32 * sizeof(float)));
        free(q);
    }
    if (!strcmp(arch, "olmo2")) {
        const TensorView *qn = gguf_find_tensor(g, "blk.0.attn_q_norm.weight");
        CHECK(qn && qn->shape[0] == 32); /* the whole projection */
        CHECK(gguf_find_tensor(g, "blk.0.post_attention_norm.weight") && gguf_find_tensor(g, "blk.0.post_ffw_norm.weight"));
        CHECK(!gguf_find_tensor(g, "blk.0.attn_norm.weight"));
    }
}

/* HF -> GGUF by aloe convert (f32: the same values, so the gold budget
 * holds), laid out as llama.cpp's converter does, loaded back. */
static void test_gguf(void) {
    char *tmp = test_tmpdir();
    for (size_t i = 0; i < sizeof ARCHS / sizeof *ARCHS; i++) {
        char name[64], label[96];
        snprintf(name, sizeof name, "tiny-%s", ARCHS[i]);
        Gold g;
        Err e = {0};
        CHECK_OK(gold_load(name, &g, &e), &e);
        char *dir = xasprintf(DIR "%s", name), *out = xasprintf("%s/%s.gguf", tmp, name);
        CHECK_OK(convert_hf_to_gguf(dir, out, DT_F32, &e), &e);
        Gguf *gg = gguf_open(out, &e);
        CHECK_MSG(gg != NULL, "%s: %s", out, e.msg);
        if (gg) check_layout(ARCHS[i], dir, gg), gguf_close(gg);
        Model *m = model_load(out, 2, &e);
        CHECK_MSG(m != NULL, "%s: %s", out, e.msg);
        if (m) {
            ModelConfig hf;
            char diff[256];
            CHECK_OK(hf_config_load(dir, &hf, &e), &e);
            CHECK_MSG(!model_config_diff(&hf, &m->cfg, diff, sizeof diff), "%s: GGUF config differs: %s", name, diff);
            snprintf(label, sizeof label, "%s (GGUF f32)", name);
            check_forward(m, &g, label);
            check_greedy(m, &g, label);
            model_free(m);
        }
        free(dir), free(out);
        gold_free(&g);
    }
    free(tmp);
}

/* Logits [rows, T, V] of every gold row through m (caller frees). */
static float *forward_rows(Model *m, const Gold *g, Err *e) {
    int V = g->vocab, T = g->len, rc = 0;
    float *out = xmalloc((size_t)g->n_rows * T * V * sizeof(float));
    for (int r = 0; r < g->n_rows && !rc; r++) {
        KvCache kv;
        rc = kv_cache_init(&kv, m, T, e) || model_forward(m, &kv, g->ids + (long)r * T, T, 0, out + (long)r * T * V, 1, e);
        kv_cache_free(&kv);
    }
    if (rc) free(out);
    return rc ? NULL : out;
}

/* How much the architecture amplifies an error entering before its
 * softmax, beyond the rounding model (see the top): the factor by which
 * the gold's own float32 error, 3·e_g (one evaluation's measured error,
 * allowed twice again for aloe's), exceeds arch_tol; 1 where it does not.
 * 4.1 for Phi-3, whose LongRoPE attention factor scales the scores (a
 * score s with relative error r moves the weights by |s|·r); 1.1 for OLMo,
 * 1 for the others. Any error entering where the float32 roundings do -- the
 * matmuls' inputs -- passes the same softmax, so a budget for one is
 * widened by it. */
static double arch_amp(const Gold *g, const ModelConfig *c) {
    long n = (long)g->n_rows * g->len * g->vocab;
    double lo = g->logits[0], hi = lo;
    for (long i = 0; i < n; i++) lo = fmin(lo, g->logits[i]), hi = fmax(hi, g->logits[i]);
    double e_g = json_number_value(
        json_object_get(json_object_get(g->json, "self_check"), "forward_f32_vs_f64_max_abs_diff"));
    return fmax(1, 3 * e_g / (hi - lo) / arch_tol(c, g->len, logit_rho(g->logits, n)));
}

/* Q8_0 files llama.cpp's llama-quantize made from aloe's f32 GGUF of each
 * (tests/data/arch/gguf-llamacpp/README.md): llama.cpp accepted the layout,
 * and aloe computes what the quantised weights say: its logits against
 * those of an F32 copy of the same file (the exact values the Q8_0 blocks
 * stand for, gguf_f32_copy). Budget: the float32 one (arch_tol) plus the
 * rounding of each matmul's input where the batched pass takes it
 * (model_act_tol: int8 blocks in the integer prefill GEMM), both times
 * arch_amp: the activations' rounding is an error entering before the
 * softmax like the float32 ones (Phi-3: 5.8e-2 of the range, token by
 * token and batched alike, against 1.8e-2 unamplified and 7.4e-2 with
 * its 4.1; the other files 0.9-1.6e-2 against 2.0-2.9e-2). */
static void test_llamacpp_quantized(void) {
    static const char *files[] = {"olmo", "olmo2", "gemma2", "phi3"};
    for (size_t i = 0; i < sizeof files / sizeof *files; i++) {
        char name[64];
        snprintf(name, sizeof name, "tiny-%s", files[i]);
        Gold g;
        Err e = {0};
        CHECK_OK(gold_load(name, &g, &e), &e);
        char *path = xasprintf("tests/data/arch/gguf-llamacpp/%s-q8_0.gguf", name), *copy = gguf_f32_copy(path, &e);
        CHECK_MSG(copy != NULL, "%s: %s", path, e.msg);
        Model *q = model_load(path, 2, &e), *f = copy ? model_load(copy, 2, &e) : NULL;
        CHECK_MSG(q && f, "%s: %s", path, e.msg);
        float *lq = q ? forward_rows(q, &g, &e) : NULL, *lf = f ? forward_rows(f, &g, &e) : NULL;
        CHECK_MSG(lq && lf, "%s: %s", path, e.msg);
        if (lq && lf) {
            CHECK_EQ_INT(q->w.layers[0].wo.type, DT_Q8_0);
            long n = (long)g.n_rows * g.len * g.vocab;
            double rho = logit_rho(lf, n), rel = rel_err(lq, lf, (size_t)n);
            double amp = arch_amp(&g, &q->cfg), act = model_act_tol(q, g.len, rho);
            double tol = amp * (arch_tol(&q->cfg, g.len, rho) + act);
            printf("  %-28s vs its weights in f32: max|err|/range %.2e (budget %.2e: activations %s %.2e, x%.2f)\n",
                   name, rel, tol, dtype_name(model_act_type(q, g.len)), act, amp);
            CHECK_MSG(rel <= tol, "%s q8_0: %.3g of the range from its f32 copy (budget %.3g)", name, rel, tol);
        }
        free(lq), free(lf);
        model_free(q), model_free(f);
        free(path), free(copy);
        gold_free(&g);
    }
}

/* LongRoPE per sequence: Phi-3's short gold row (40 tokens, short
 * factors) and its greedy prompt (104 tokens, past the original 64: long
 * factors) in one batched call; each sequence gets its own factors, so the
 * short row still matches the gold forward, and the long prompt's last
 * logits are those of its own call (within the float32 budget: the
 * batch's matmuls may group rows otherwise). Fails when the longest
 * position of the call decides for all. */
static void test_longrope_per_sequence(void) {
    Gold g;
    Err e = {0};
    CHECK_OK(gold_load("tiny-phi3", &g, &e), &e);
    Model *m = model_load(DIR "tiny-phi3", 2, &e);
    CHECK_MSG(m != NULL, "%s", e.msg);
    if (!m) return gold_free(&g);
    int T = g.len, P = g.n_prompt, V = g.vocab, n = T + P;
    KvCache a, b;
    CHECK_OK(kv_cache_init(&a, m, T, &e) || kv_cache_init(&b, m, P, &e), &e);
    KvCache **caches = xmalloc((size_t)n * sizeof *caches);
    int32_t *ids = xmalloc((size_t)n * sizeof *ids);
    int *pos = xmalloc((size_t)n * sizeof *pos), *rows = xmalloc((size_t)(T + 1) * sizeof *rows);
    for (int t = 0; t < T; t++) caches[t] = &a, ids[t] = g.ids[t], pos[t] = t, rows[t] = t;
    for (int t = 0; t < P; t++) caches[T + t] = &b, ids[T + t] = g.prompt[t], pos[T + t] = t;
    rows[T] = n - 1;
    float *lg = xmalloc((size_t)(T + 1) * V * sizeof(float)), *alone = xmalloc((size_t)V * sizeof(float));
    CHECK_OK(model_forward_batch(m, caches, ids, pos, n, rows, T + 1, lg, &e), &e);
    double worst = 0, lo = g.logits[0], hi = lo;
    for (long i = 0; i < (long)T * V; i++) {
        worst = fmax(worst, fabs((double)lg[i] - g.logits[i]));
        lo = fmin(lo, g.logits[i]), hi = fmax(hi, g.logits[i]);
    }
    double e_g = json_number_value(
        json_object_get(json_object_get(g.json, "self_check"), "forward_f32_vs_f64_max_abs_diff"));
    double tol = fmax(arch_tol(&m->cfg, T, logit_rho(g.logits, (long)T * V)), 3 * e_g / (hi - lo));
    CHECK_MSG(worst / (hi - lo) <= tol, "short row batched with a long one: %.3g of the range (budget %.3g)",
              worst / (hi - lo), tol);
    KvCache c;
    CHECK_OK(kv_cache_init(&c, m, P, &e) || model_forward(m, &c, g.prompt, P, 0, alone, 0, &e), &e);
    /* the batch's matmuls may block rows differently: rounding only */
    double d = rel_err(lg + (long)T * V, alone, (size_t)V);
    CHECK_MSG(d <= tol, "the long prompt's logits moved by %.3g of their range in the batch (budget %.3g)", d, tol);
    kv_cache_free(&a), kv_cache_free(&b), kv_cache_free(&c);
    free(caches), free(ids), free(pos), free(rows), free(lg), free(alone);
    model_free(m);
    gold_free(&g);
}

/* A config whose heads do not match the fused tensor's rows: the error
 * names the tensor, both shapes and every field of the fused rows. */
static void test_fused_shape_error(void) {
    char *tmp = test_tmpdir(), *text = NULL, *cfg = xasprintf("%s/config.json", tmp);
    char *src = xasprintf(DIR "tiny-phi3/model.safetensors"), *dst = xasprintf("%s/model.safetensors", tmp);
    size_t len;
    Err e = {0};
    CHECK_OK(file_read_all(DIR "tiny-phi3/config.json", &text, &len, &e), &e);
    char *kv = text ? strstr(text, "\"num_key_value_heads\": 2") : NULL;
    CHECK(kv != NULL);
    if (kv) kv[strlen("\"num_key_value_heads\": ")] = '4';
    CHECK_OK(file_write_atomic(cfg, text, len, &e) || file_link_atomic(src, dst, &e), &e);
    Model *m = model_load(tmp, 1, &e);
    CHECK(m == NULL);
    CHECK_MSG(strstr(e.msg, "tensor model.layers.0.self_attn.qkv_proj.weight: shape [64, 32], expected [96, 32] = "
                            "[num_attention_heads * head_dim + num_key_value_heads * head_dim + num_key_value_heads * "
                            "head_dim, hidden_size] from"),
              "%s", e.msg);
    model_free(m);
    free(text), free(cfg), free(src), free(dst), free(tmp);
}

int main(void) {
    RUN(test_hf_dirs);
    RUN(test_gguf);
    RUN(test_llamacpp_quantized);
    RUN(test_longrope_per_sequence);
    RUN(test_fused_shape_error);
    return test_summary();
}
