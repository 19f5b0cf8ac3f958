/* test_partial_rotary: partial_rotary_factor < 1 (Phi-4-mini's 0.75) in
 * inference (HF and GGUF) and training, on tests/data/arch/phi3-partial:
 * tiny-phi3's weights with partial_rotary_factor 0.5, so RoPE turns the
 * first 4 of each head's 8 dims (rotate_half over those 4, inv_freq over
 * them: 1 / (ext[i] · theta^(2i/4)), LongRoPE factor lists of 2) and the
 * other 4 pass through.
 *
 * Reference: scripts/make_phi3_partial.py, a float64 PyTorch forward
 * written from tests/data/arch/README.md's Phi-3 rules with transformers'
 * partial rule (rotary_ndims = int(head_dim · factor), q[..., :rot] turned,
 * q[..., rot:] kept), into expected.safetensors: the logits of 24 tokens
 * (short factors) and d S / d param for S = Σ logits ⊙ R, R[t][v] =
 * sin(0.37 t + 0.11 v) as float32 (training's td_backward with dlogits = R
 * gives exactly that gradient). Turning the whole head instead moves the
 * logits by 9.7 (the script prints it), so the tolerances below separate
 * the rules by four orders of magnitude.
 *
 * Tolerances: logits 1e-4 absolute (float32 vs float64 on logits of
 * magnitude ~10; tests/data/arch/README.md measures 1.3e-5 for this model
 * at full rotary); gradients 1e-3 of the largest |gradient| of the tensor
 * (float32 accumulation over 24·1027 logit terms, README: float32 grads
 * agree with float64 to 1e-3 relative). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "base/fileio.h"
#include "base/mem.h"
#include "formats/gguf.h"
#include "formats/gguf_write.h"
#include "formats/hfdir.h"
#include "formats/safetensors.h"
#include "kernels/threads.h"
#include "model/convert.h"
#include "model/decoder.h"
#include "test.h"
#include "train/decoder_train.h"

#define DIR "tests/data/arch/phi3-partial"
enum { T = 24 };

static float *expected(const char *name, size_t *n) {
    Err e = {0};
    SafeTensors *st = st_open(DIR "/expected.safetensors", &e);
    const TensorView *t = st ? st_get(st, name, &e) : NULL;
    float *f = t ? tensor_to_f32_alloc(t, &e) : NULL;
    if (!f) test_fail(__FILE__, __LINE__, "%s: %s", name, e.msg);
    *n = 1;
    for (int i = 0; t && i < t->ndim; i++) *n *= (size_t)t->shape[i];
    if (st) st_close(st);
    return f;
}

static double max_abs(const float *a, const float *b, size_t n) {
    double w = 0;
    for (size_t i = 0; i < n; i++) w = fmax(w, fabs((double)a[i] - b[i]));
    return w;
}

static void ids_of(int32_t *ids) {
    for (int t = 0; t < T; t++) ids[t] = (int32_t)((37 * t + 11) % 1000);
}

static void test_config(void) {
    ModelConfig c;
    Err e = {0};
    CHECK_OK(hf_config_load(DIR, &c, &e), &e);
    CHECK_EQ_INT(c.rope.rot_dim, 4);
    CHECK_EQ_INT(rope_dims(&c), 4);
    CHECK_EQ_INT(c.rope.n_factors, 2);
    /* a Llama-family GGUF permutes Q/K rows over the whole head: refused */
    c.arch = ARCH_LLAMA;
    GgufWriter *w = gguf_writer_new();
    CHECK(gguf_set_model_config(w, &c, &e) == -1);
    gguf_writer_free(w);
    CHECK_MSG(strstr(e.msg, "partial_rotary_factor < 1 (4 of 8 dims turned): no GGUF conversion"), "%s", e.msg);
}

/* logits of a model file (HF dir or GGUF) against the reference */
static void check_inference(const char *path, const float *want) {
    Err e = {0};
    Model *m = model_load(path, 2, &e);
    CHECK_MSG(m != NULL, "%s: %s", path, e.msg);
    if (!m) return;
    CHECK_EQ_INT(rope_dims(&m->cfg), 4);
    int V = m->cfg.vocab_size;
    int32_t ids[T];
    ids_of(ids);
    float *got = xmalloc((size_t)T * V * sizeof(float));
    KvCache kv;
    CHECK_OK(kv_cache_init(&kv, m, T, &e) || model_forward(m, &kv, ids, T, 0, got, 1, &e), &e);
    double d = max_abs(got, want, (size_t)T * V);
    CHECK_MSG(d <= 1e-4, "%s: logits vs the float64 reference: max |d| %.3g", path, d);
    kv_cache_free(&kv);
    free(got);
    model_free(m);
}

static void test_inference(void) {
    size_t n = 0;
    float *want = expected("logits", &n);
    if (!want) return;
    CHECK_EQ_INT((long)n, (long)T * 1027);
    check_inference(DIR, want);
    /* GGUF: rope.dimension_count is llama.cpp's n_rot, read back */
    Err e = {0};
    char *dir = test_tmpdir(), *gg = path_join(dir, "p.gguf");
    CHECK_OK(convert_hf_to_gguf(DIR, gg, DT_F32, &e), &e);
    Gguf *g = gguf_open(gg, &e);
    CHECK_OK(!g, &e);
    uint32_t rot = 0;
    if (g) CHECK(!gguf_get_u32(g, "phi3.rope.dimension_count", &rot, &e) && rot == 4);
    if (g) gguf_close(g);
    check_inference(gg, want);
    free(gg), free(dir), free(want);
}

static void test_training(void) {
    Err e = {0};
    ModelConfig cfg;
    TrainDecoder m;
    memset(&m, 0, sizeof m);
    CHECK_OK(hf_config_load(DIR, &cfg, &e) || td_init(&m, &cfg, &e) || td_load(&m, DIR, &e), &e);
    int V = cfg.vocab_size;
    int32_t ids[T];
    ids_of(ids);
    ThreadPool *tp = tp_create(2);
    float *logits = xmalloc((size_t)T * V * sizeof(float));
    CHECK_OK(td_forward(&m, tp, ids, T, logits, &e), &e);
    size_t n = 0;
    float *want = expected("logits", &n);
    if (want) {
        double d = max_abs(logits, want, (size_t)T * V);
        CHECK_MSG(d <= 1e-4, "training forward vs the float64 reference: max |d| %.3g", d);
    }
    for (int t = 0; t < T; t++)
        for (int v = 0; v < V; v++) logits[(size_t)t * V + v] = (float)sin(0.37 * t + 0.11 * v);
    td_zero_grad(&m);
    td_backward(&m, tp, logits);
    const char *names[] = {"model.layers.0.self_attn.qkv_proj.weight", "model.layers.1.self_attn.qkv_proj.weight",
                           "model.layers.0.input_layernorm.weight"};
    for (int i = 0; i < 3; i++) {
        char key[128];
        snprintf(key, sizeof key, "grad.%s", names[i]);
        float *g = expected(key, &n);
        const TdTensor *td = td_find(&m, names[i]);
        CHECK_MSG(td && g && td->numel == n, "%s", names[i]);
        if (td && g && td->numel == n) {
            double big = 0;
            for (size_t k = 0; k < n; k++) big = fmax(big, fabs(g[k]));
            double d = max_abs(m.grads + td->offset, g, n);
            CHECK_MSG(d <= 1e-3 * big, "%s: gradient vs the float64 reference: max |d| %.3g of max %.3g", names[i], d,
                      big);
        }
        free(g);
    }
    free(want), free(logits);
    tp_free(tp);
    td_free(&m);
}

int main(void) {
    RUN(test_config);
    RUN(test_inference);
    RUN(test_training);
    return test_summary();
}
