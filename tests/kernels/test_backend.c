/* test_backend: the backend seam (kernels/backend.h) for inference. The
 * same model runs on the CPU backend and on backend_ref.c (plain loops in
 * double, its own memory: weights copied at bind, activations and caches
 * allocated by it, logits downloaded), through model/decoder.c unchanged:
 *  - the tiny OLMo, OLMo 2, Gemma 2, Gemma 3 and Phi-3 of
 *    tests/data/arch/models: the reference backend's logits against the
 *    gold's (it is a correct decoder on its own), the CPU backend's
 *    against the reference backend's, and greedy decoding with a KV cache
 *    on the reference backend gives the gold ids;
 *  - the shared GGUF fixtures (tiny Llama 3, Mistral, Qwen2 in F32 and
 *    Q8_0): CPU against reference;
 *  - the CPU backend's row ops split over a pool give the single-threaded
 *    values bit for bit (each row is one thread's).
 *
 * Tolerances (tests/model/logit_budget.h's model). The reference
 * accumulates in double but stores every activation in float32 (the
 * interface's buffers are float), so it is one more float32 evaluation of
 * the same equations, in other summation orders: the budgets of two
 * float32 evaluations apply, as test_arch_models derives them for aloe
 * against the gold -- arch_tol (gold_tol widened by the reductions an
 * architecture adds), and at least 3·e_g, e_g the gold's own float32 error
 * (its self_check), for Phi-3 whose LongRoPE-scaled scores amplify every
 * stage before the softmax. The same budget holds for reference vs gold
 * and for CPU vs reference. The decoder asks for inference's precision
 * (BPREC_INFER): with Q8_0 weights the CPU backend rounds each matmul
 * input to int8 blocks (the decode dots and the integer prefill GEMM),
 * which the reference, computing x as it is, does not: model_act_tol on
 * top (act_q8_tol where the CPU's path rounds; test_backend_prec.c checks
 * the contract itself). */
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "../model/logit_budget.h"
#include "backend_ref.c"
#include "base/mem.h"
#include "formats/safetensors.h"
#include "kernels/backend.h"
#include "model/decoder.h"
#include "test.h"

#define ARCH_DIR "tests/data/arch/models/"

/* test_arch_models' arch_tol: gold_tol with the reductions an
 * architecture adds (post-norms 2D, whole-width q/k norms q+kv or per-head
 * 2·hd, LayerNorm's mean 2D per layer). */
static double arch_tol(const ModelConfig *c, int T, double rho) {
    double D = c->hidden_size, hd = c->head_dim, q = (double)c->n_heads * hd, kv = (double)c->n_kv_heads * hd;
    double extra = 0;
    if (c->post_norm) extra += 2 * D;
    if (c->qk_norm) extra += c->qk_norm_full ? q + kv : 2 * hd;
    if (c->norm_type == NORM_LAYER_NOPARAM) extra += 2 * D;
    double base = gold_tol(c, T, rho), K_base = c->n_layers * (4 * D + hd + T + q + c->intermediate_size) + 2 * D;
    return base * sqrt((K_base + c->n_layers * extra) / K_base);
}

/* Logits [rows·T, V] of each row of ids (its own cache), or NULL on error. */
static float *forward_rows(Model *m, const int32_t *ids, int rows, int T, Err *e) {
    long V = m->cfg.vocab_size;
    float *out = xmalloc((size_t)rows * T * V * sizeof *out);
    for (int r = 0; r < rows; r++) {
        KvCache kv;
        int rc = kv_cache_init(&kv, m, T, e) || model_forward(m, &kv, ids + (long)r * T, T, 0, out + r * T * V, 1, e);
        kv_cache_free(&kv);
        if (rc) {
            free(out);
            return NULL;
        }
    }
    return out;
}

/* max |a − b| over the range of b. */
static double rel_to(const float *a, const float *b, long n, double *range) {
    double lo = b[0], hi = b[0], worst = 0;
    for (long i = 0; i < n; i++) {
        lo = fmin(lo, b[i]), hi = fmax(hi, b[i]);
        worst = fmax(worst, fabs((double)a[i] - b[i]));
    }
    if (range) *range = hi - lo;
    return worst / (hi - lo);
}

static int32_t *json_ids(json_t *a, int *n) {
    *n = (int)json_array_size(a);
    int32_t *ids = xmalloc((size_t)(*n + 1) * sizeof *ids);
    for (int i = 0; i < *n; i++) ids[i] = (int32_t)json_integer_value(json_array_get(a, (size_t)i));
    return ids;
}

/* Greedy decoding of n_new tokens after prompt, one token a step through
 * the KV cache; the ids into out. */
static int greedy(Model *m, const int32_t *prompt, int n, int n_new, int32_t *out, Err *e) {
    int V = m->cfg.vocab_size, rc;
    KvCache kv;
    float *lg = xmalloc((size_t)V * sizeof *lg);
    rc = kv_cache_init(&kv, m, n + n_new + 1, e) || model_forward(m, &kv, prompt, n, 0, lg, 0, e);
    for (int s = 0; s < n_new && !rc; s++) {
        int32_t best = 0;
        for (int v = 1; v < V; v++) best = lg[v] > lg[best] ? v : best;
        out[s] = best;
        rc = model_forward(m, &kv, &best, 1, n + s, lg, 0, e);
    }
    kv_cache_free(&kv);
    free(lg);
    return rc;
}

/* One architecture: reference vs gold, CPU vs reference, greedy ids. */
static void check_arch(const char *arch, Model *m, json_t *gold, const TensorView *gl) {
    Err e = {0};
    json_t *in = json_object_get(json_object_get(gold, "forward"), "input_ids");
    int rows = (int)json_array_size(in), T = (int)json_array_size(json_array_get(in, 0)), V = m->cfg.vocab_size;
    int32_t *ids = xmalloc((size_t)rows * T * sizeof *ids);
    for (int r = 0; r < rows; r++) {
        int n;
        int32_t *row = json_ids(json_array_get(in, (size_t)r), &n);
        memcpy(ids + (long)r * T, row, (size_t)T * sizeof *row);
        free(row);
    }
    long n = (long)rows * T * V;
    float *cpu = forward_rows(m, ids, rows, T, &e);
    Backend *ref = backend_ref_new(0);
    RefState *rs = ref_state(ref);
    model_set_backend(m, ref);
    float *got = cpu ? forward_rows(m, ids, rows, T, &e) : NULL;
    free(ids);
    if (!cpu || !got) free(cpu), free(got);
    CHECK_MSG(cpu && got, "tiny-%s: %s", arch, e.msg);
    /* the reference backend ran on its own memory */
    CHECK_MSG(rs->allocs > 0 && rs->downloads >= (size_t)rows && rs->n_owned > 0,
              "tiny-%s: the reference backend's memory paths were not taken (allocs %zu, downloads %zu)", arch,
              rs->allocs, rs->downloads);
    double range, e_g = json_number_value(
                      json_object_get(json_object_get(gold, "self_check"), "forward_f32_vs_f64_max_abs_diff"));
    double r_gold = rel_to(got, gl->data, n, &range);
    double tol = fmax(arch_tol(&m->cfg, T, logit_rho(gl->data, n)), 3 * e_g / range);
    double r_cpu = rel_to(cpu, got, n, NULL);
    free(cpu), free(got);
    printf("  tiny-%-7s ref vs gold %.2e, cpu vs ref %.2e (budget %.2e)\n", arch, r_gold, r_cpu, tol);
    CHECK_MSG(r_gold <= tol, "tiny-%s: reference backend %.3g of the range from the gold (budget %.3g)", arch, r_gold,
              tol);
    CHECK_MSG(r_cpu <= tol, "tiny-%s: CPU backend %.3g of the range from the reference (budget %.3g)", arch, r_cpu,
              tol);
    /* decode through the reference backend's KV caches */
    json_t *gr = json_object_get(gold, "greedy");
    int np, nn;
    int32_t *prompt = json_ids(json_object_get(gr, "prompt_ids"), &np);
    int32_t *want = json_ids(json_object_get(gr, "new_ids"), &nn);
    int32_t *ids_got = xmalloc((size_t)(nn + 1) * sizeof *ids_got);
    int rc = greedy(m, prompt, np, nn, ids_got, &e);
    int same = !rc && !memcmp(ids_got, want, (size_t)nn * sizeof *want);
    free(prompt), free(want), free(ids_got);
    CHECK_OK(rc, &e);
    CHECK_MSG(same, "tiny-%s: greedy ids on the reference backend differ from the gold", arch);
}

static void test_arch_gold(void) {
    static const char *const ARCHS[] = {"olmo", "olmo2", "gemma2", "gemma3", "phi3"};
    for (size_t a = 0; a < sizeof ARCHS / sizeof *ARCHS; a++) {
        Err e = {0};
        char *dir = xasprintf(ARCH_DIR "tiny-%s", ARCHS[a]), *jp = xasprintf("%s/expected.json", dir);
        char *sp = xasprintf("%s/expected.safetensors", dir);
        json_error_t je;
        json_t *gold = json_load_file(jp, 0, &je);
        SafeTensors *st = gold ? st_open(sp, &e) : NULL;
        const TensorView *gl = st ? st_get(st, "forward.logits", &e) : NULL;
        Model *m = gl ? model_load(dir, 2, &e) : NULL;
        int loaded = m != NULL;
        if (m) check_arch(ARCHS[a], m, gold, gl);
        model_free(m);
        if (st) st_close(st);
        if (gold) json_decref(gold);
        free(jp), free(sp);
        CHECK_MSG(loaded, "%s: %s%s", dir, gold ? "" : je.text, e.msg);
        free(dir);
    }
}

static void test_gguf_fixtures(void) {
    static const char *const MODELS[] = {"tiny-llama3", "tiny-mistral", "tiny-qwen2"};
    static const char *const TYPES[] = {"f32", "q8_0"};
    for (int i = 0; i < 3; i++)
        for (int t = 0; t < 2; t++) {
            char rel[128];
            snprintf(rel, sizeof rel, "fixtures/gguf/%s-%s.gguf", MODELS[i], TYPES[t]);
            NEED_SHARED(path, rel);
            Err e = {0};
            Model *m = model_load(path, 2, &e);
            CHECK_MSG(m != NULL, "%s: %s", path, e.msg);
            if (!m) {
                free(path);
                continue;
            }
            /* two sequences of 12 tokens spread over the vocabulary */
            enum { ROWS = 2, T = 12 };
            int32_t ids[ROWS * T];
            for (int k = 0; k < ROWS * T; k++) ids[k] = (int32_t)((k * 7919L + 3) % m->cfg.vocab_size);
            float *cpu = forward_rows(m, ids, ROWS, T, &e);
            model_set_backend(m, backend_ref_new(0));
            float *ref = cpu ? forward_rows(m, ids, ROWS, T, &e) : NULL;
            CHECK_MSG(cpu && ref, "%s: %s", path, e.msg);
            if (cpu && ref) {
                long n = (long)ROWS * T * m->cfg.vocab_size;
                double rho = logit_rho(ref, n), tol = gold_tol(&m->cfg, T, rho) + model_act_tol(m, T, rho);
                double r = rel_to(cpu, ref, n, NULL);
                printf("  %-24s cpu vs ref %.2e (budget %.2e)\n", rel + 14, r, tol);
                CHECK_MSG(r <= tol, "%s: CPU backend %.3g of the range from the reference (budget %.3g)", rel, r, tol);
            }
            free(cpu), free(ref), free(path);
            model_free(m);
        }
}

/* Row ops split over a pool: bit for bit the single-threaded values. */
static void test_cpu_rows_threaded(void) {
    enum { N = 256, DIM = 256, HEADS = 4, HD = 64 }; /* past both thresholds of the split */
    ThreadPool *tp = tp_create(2);
    Backend *one = backend_cpu_new(NULL), *two = backend_cpu_new(tp);
    float *x = xmalloc(N * DIM * sizeof *x), *w = xmalloc(DIM * sizeof *w), *y = xmalloc(N * DIM * sizeof *y);
    float *a = xmalloc(N * DIM * sizeof *a), *b = xmalloc(N * DIM * sizeof *b);
    for (int i = 0; i < N * DIM; i++) x[i] = sinf(0.37f * i) * 3, y[i] = cosf(0.11f * i);
    for (int i = 0; i < DIM; i++) w[i] = 0.5f + 0.01f * i;
    int bad = 0;
    for (int kind = 0; kind < 2; kind++) {
        one->norm(one, (BackendNorm)kind, a, x, w, kind ? 0 : 1.0f, N, DIM, 1e-6f);
        two->norm(two, (BackendNorm)kind, b, x, w, kind ? 0 : 1.0f, N, DIM, 1e-6f);
        bad += memcmp(a, b, N * DIM * sizeof *a) != 0;
    }
    one->act(one, BACT_SWIGLU, a, x, y, N * DIM), two->act(two, BACT_SWIGLU, b, x, y, N * DIM);
    bad += memcmp(a, b, N * DIM * sizeof *a) != 0;
    one->act(one, BACT_GEGLU_TANH, a, x, y, N * DIM), two->act(two, BACT_GEGLU_TANH, b, x, y, N * DIM);
    bad += memcmp(a, b, N * DIM * sizeof *a) != 0;
    memcpy(a, x, N * DIM * sizeof *a), memcpy(b, x, N * DIM * sizeof *b);
    one->add(one, a, y, N * DIM), two->add(two, b, y, N * DIM);
    one->map(one, BMAP_SOFTCAP, a, N * DIM, 2.5f), two->map(two, BMAP_SOFTCAP, b, N * DIM, 2.5f);
    bad += memcmp(a, b, N * DIM * sizeof *a) != 0;
    int pos[N];
    float inv[HD / 2];
    for (int i = 0; i < N; i++) pos[i] = 3 * i;
    for (int i = 0; i < HD / 2; i++) inv[i] = powf(10000.0f, -2.0f * i / HD);
    BackendRope r = {.n_heads = HEADS, .head_dim = HD, .rot = HD, .pos = pos, .inv_freq = inv, .mscale = 1};
    for (int rot = HD; rot >= HD / 2; rot -= HD / 2) { /* whole and partial rotary */
        r.rot = rot;
        memcpy(a, x, N * DIM * sizeof *a), memcpy(b, x, N * DIM * sizeof *b);
        one->rope(one, a, N, &r, 0), two->rope(two, b, N, &r, 0);
        bad += memcmp(a, b, N * DIM * sizeof *a) != 0;
    }
    CHECK_MSG(bad == 0, "%d row ops differ between one thread and two", bad);
    free(x), free(w), free(y), free(a), free(b);
    backend_free(one), backend_free(two);
    tp_free(tp);
}

int main(void) {
    RUN(test_cpu_rows_threaded);
    RUN(test_arch_gold);
    RUN(test_gguf_fixtures);
    return test_summary();
}
