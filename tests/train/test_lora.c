/* LoRA: config parsing, the adapter's backward by finite differences, and
 * the fixtures' peft adapters: logits, SFT loss and every adapter gradient
 * against PyTorch/peft, base frozen. Tolerances as in test_decoder_train.c. */
#include <jansson.h>
#include <math.h>
#include <stdlib.h>

#include "base/fileio.h"
#include "base/mem.h"
#include "base/rng.h"
#include "formats/safetensors.h"
#include "train/checkpoint.h"
#include "test.h"
#include "train/gold_fixture.h"
#include "train/decoder_train.h"
#include "train/lora.h"
#include "train/loss.h"
#include "kernels/backend_cpu_lora.h"
#include "train/trainer.h"

static char *write_config(const char *json) {
    char *dir = test_tmpdir();
    char *p = path_join(dir, "adapter_config.json");
    Err e;
    file_write_atomic(p, json, strlen(json), &e);
    free(p);
    return dir;
}

static void test_targets_parse(void) {
    unsigned t;
    Err e;
    CHECK_OK(lora_targets_parse("q,v", &t, &e), &e);
    CHECK(t == ((1u << LORA_Q) | (1u << LORA_V)));
    CHECK_OK(lora_targets_parse("gate_proj,down", &t, &e), &e);
    CHECK(t == ((1u << LORA_GATE) | (1u << LORA_DOWN)));
    CHECK_OK(lora_targets_parse("all", &t, &e), &e);
    CHECK(t == 0x7f);
    CHECK(lora_targets_parse("q,lm_head", &t, &e) == -1);
    CHECK_MSG(strstr(e.msg, "unknown module \"lm_head\"") != NULL, "%s", e.msg);
}

static void test_config_load(void) {
    char *dir = write_config("{\"peft_type\": \"LORA\", \"r\": 8, \"lora_alpha\": 16, \"lora_dropout\": 0.05,"
                             " \"target_modules\": [\"q_proj\", \"v_proj\"], \"bias\": \"none\", \"use_rslora\": true,"
                             " \"rank_pattern\": {}, \"modules_to_save\": null}");
    LoraConfig c;
    Err e;
    CHECK_OK(lora_config_load(dir, &c, &e), &e);
    CHECK_EQ_INT(c.r, 8);
    CHECK_NEAR(c.alpha, 16, 0);
    CHECK_NEAR(c.dropout, 0.05, 1e-12);
    CHECK(c.targets == ((1u << LORA_Q) | (1u << LORA_V)));
    CHECK_NEAR(lora_scale(&c), 16 / sqrt(8.0), 1e-6);
    CHECK_OK(lora_config_check(&c, &e), &e);
    c.dropout = 1;
    CHECK(lora_config_check(&c, &e) == -1 && strstr(e.msg, "dropout must be in [0, 1), got 1"));
    c.dropout = -0.1;
    CHECK(lora_config_check(&c, &e) == -1 && strstr(e.msg, "dropout"));
    free(dir);
    const char *bad[][2] = {
        {"{\"r\": 4, \"lora_alpha\": 8, \"target_modules\": [\"q_proj\"], \"use_dora\": true}", "use_dora is true"},
        {"{\"r\": 0, \"lora_alpha\": 8, \"target_modules\": [\"q_proj\"]}", "r: expected a positive integer"},
        {"{\"r\": 4, \"lora_alpha\": 8, \"target_modules\": \".*proj\"}", "regular expression"},
        {"{\"r\": 4, \"lora_alpha\": 8, \"target_modules\": [\"embed_tokens\"]}", "target_modules[0]: \"embed_tokens\""},
        {"{\"r\": 4, \"lora_alpha\": 8, \"target_modules\": [\"q_proj\"], \"bias\": \"all\"}", "bias: only"},
        {"{\"r\": 4, \"lora_alpha\": 8, \"target_modules\": [\"q_proj\"], \"rank_pattern\": {\"q\": 2}}", "rank_pattern is set"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        dir = write_config(bad[i][0]);
        int rc = lora_config_load(dir, &c, &e);
        free(dir);
        CHECK_MSG(rc == -1 && strstr(e.msg, bad[i][1]), "case %zu: %s", i, rc ? e.msg : "no error");
    }
}

/* L = Σ r·y for y = x·Wᵀ-free adapter part: scale·(x·Aᵀ)·Bᵀ. */
enum { T = 5, IN = 6, OUT = 7, R = 3 };

typedef struct Ctx {
    float x[T * IN], A[R * IN], B[OUT * R], r[T * OUT], y[T * OUT], u[T * R], xd[T * IN];
    const LoraDropout *drop; /* NULL: the plain single-threaded kernel */
    ThreadPool *tp;
} Ctx;

static double loss(Ctx *c) {
    memset(c->y, 0, sizeof c->y);
    if (c->drop) par_lora_forward(c->tp, c->y, c->u, c->x, c->A, c->B, T, IN, OUT, R, 1.5f, c->drop, c->xd);
    else lora_forward(c->y, c->u, c->x, c->A, c->B, T, IN, OUT, R, 1.5f);
    double s = 0;
    for (int i = 0; i < T * OUT; i++) s += (double)c->r[i] * c->y[i];
    return s;
}

static int fd_ok(Ctx *c, float *x, const float *g, int n, const char *what) {
    double gmax = 0;
    for (int i = 0; i < n; i++) gmax = fmax(gmax, fabs(g[i]));
    for (int i = 0; i < n; i++) {
        float keep = x[i];
        x[i] = keep + 1e-2f;
        double fp = loss(c);
        x[i] = keep - 1e-2f;
        double fm = loss(c);
        x[i] = keep;
        double num = (fp - fm) / 2e-2;
        /* the budget of tests/train/test_backward.c (truncation, the
         * touched outputs' rounding at 6 sigma, the float step) */
        if (fabs(num - g[i]) > 2e-3 * gmax + 1e-6) {
            test_fail(__FILE__, __LINE__, "%s[%d]: %.7g vs numeric %.7g", what, i, g[i], num);
            return 0;
        }
    }
    return 1;
}

static void test_adapter_backward_matches_finite_differences(void) {
    Ctx c = {0};
    Rng rng;
    rng_seed(&rng, 3);
    for (int i = 0; i < T * IN; i++) c.x[i] = rng_normal(&rng);
    for (int i = 0; i < R * IN; i++) c.A[i] = rng_normal(&rng);
    for (int i = 0; i < OUT * R; i++) c.B[i] = rng_normal(&rng);
    for (int i = 0; i < T * OUT; i++) c.r[i] = rng_normal(&rng);
    loss(&c);
    float dx[T * IN] = {0}, dA[R * IN] = {0}, dB[OUT * R] = {0}, du[T * R];
    lora_backward(dx, dA, dB, du, c.r, c.x, c.u, c.A, c.B, T, IN, OUT, R, 1.5f);
    CHECK(fd_ok(&c, c.x, dx, T * IN, "dx"));
    CHECK(fd_ok(&c, c.A, dA, R * IN, "dA"));
    CHECK(fd_ok(&c, c.B, dB, OUT * R, "dB"));
}

/* ---- dropout ---- */

/* Logits of two float32 evaluations of the same model (aloe vs peft, one
 * thread vs two, merged vs adapter, a frozen f16/bf16 base vs float32
 * holding the same values): LOGIT_TOL of the reference's range, the
 * budget derived in test_decoder_train.c (the adapter adds reductions of
 * r <= 16 terms: below the budget's ΣK/6 resolution). */
#define LOGIT_TOL 2e-6

/* The masks: the fraction dropped is p, kept values are scaled by 1/(1-p),
 * a mask is the same however its rows are split (threads), and another
 * seed, pass, layer or module draws an independent one. */
static void test_dropout_masks(void) {
    enum { ROWS = 1024, W = 1023 }; /* odd width: rows start mid-pair */
    const long n = (long)ROWS * W;
    float *x = xmalloc((size_t)n * sizeof *x), *a = xmalloc((size_t)n * sizeof *a);
    float *b = xmalloc((size_t)n * sizeof *b), *g = xcalloc((size_t)n, sizeof *g);
    for (long i = 0; i < n; i++) x[i] = 1.0f + (float)(i % 7);
    LoraDropout d, o;
    lora_dropout_init(&d, 0.1, 42, 7, 3, LORA_V);
    lora_dropout_rows(&d, a, x, 0, ROWS, W);
    long dropped = 0, bad = 0;
    for (long i = 0; i < n; i++) {
        dropped += a[i] == 0;
        bad += a[i] != 0 && a[i] != x[i] * (float)(1 / 0.9);
    }
    double frac = (double)dropped / n; /* sd 3e-4 */
    CHECK_MSG(fabs(frac - 0.1) < 2e-3, "dropped %.5f, want 0.1", frac);
    CHECK_EQ_INT(bad, 0);
    lora_dropout_rows(&d, b, x, 0, 333, W);
    lora_dropout_rows(&d, b + 333L * W, x + 333L * W, 333, ROWS, W);
    CHECK(memcmp(a, b, (size_t)n * sizeof *a) == 0);
    /* The backward passes the gradient of exactly the kept elements. */
    lora_dropout_backward_rows(&d, g, x, 0, ROWS, W);
    CHECK(memcmp(a, g, (size_t)n * sizeof *a) == 0);
    const uint64_t other[4][4] = {{43, 7, 3, LORA_V}, {42, 8, 3, LORA_V}, {42, 7, 4, LORA_V}, {42, 7, 3, LORA_Q}};
    for (int k = 0; k < 4; k++) {
        lora_dropout_init(&o, 0.1, other[k][0], other[k][1], (int)other[k][2], (int)other[k][3]);
        lora_dropout_rows(&o, b, x, 0, ROWS, W);
        long both = 0;
        for (long i = 0; i < n; i++) both += a[i] == 0 && b[i] == 0;
        /* independent masks drop the same element with probability p² */
        CHECK_MSG(fabs((double)both / n - 0.01) < 1e-3, "case %d: %.5f dropped by both", k, (double)both / n);
    }
    lora_dropout_init(&o, 0, 42, 7, 3, LORA_V);
    lora_dropout_rows(&o, b, x, 0, ROWS, W);
    CHECK(memcmp(x, b, (size_t)n * sizeof *x) == 0);
    free(x), free(a), free(b), free(g);
}

/* With a fixed mask the adapter is a function of x, A and B like any other:
 * its gradients (split over 3 threads) match finite differences through the
 * same mask, and dropped inputs get no gradient from it. */
static void test_dropout_backward_matches_finite_differences(void) {
    Ctx c = {0};
    Rng rng;
    rng_seed(&rng, 5);
    for (int i = 0; i < T * IN; i++) c.x[i] = rng_normal(&rng);
    for (int i = 0; i < R * IN; i++) c.A[i] = rng_normal(&rng);
    for (int i = 0; i < OUT * R; i++) c.B[i] = rng_normal(&rng);
    for (int i = 0; i < T * OUT; i++) c.r[i] = rng_normal(&rng);
    LoraDropout d;
    lora_dropout_init(&d, 0.4, 1, 2, 0, LORA_UP);
    c.drop = &d;
    c.tp = tp_create(3);
    loss(&c);
    /* The forward is the plain adapter on the dropped-out input. */
    Ctx m = c;
    m.drop = NULL;
    lora_dropout_rows(&d, m.x, c.x, 0, T, IN);
    loss(&m);
    double ydiff = 0;
    for (int i = 0; i < T * OUT; i++) ydiff = fmax(ydiff, fabs(m.y[i] - c.y[i]));
    /* the threaded path and the manual one are float32 evaluations of
     * the same IN- and R-term sums of unit-scale values: at most
     * u·(IN + R)·(sum of |terms| <~ 20) ~ 3e-5 apart in the worst case,
     * ~1e-6 at 6 sigma: 1e-5 */
    CHECK_MSG(ydiff < 1e-5, "forward differs from the manual one by %.3g", ydiff);
    float dx[T * IN] = {0}, dA[R * IN] = {0}, dB[OUT * R] = {0}, du[T * R];
    par_lora_backward(c.tp, dx, dA, dB, du, c.r, c.x, c.u, c.A, c.B, T, IN, OUT, R, 1.5f, &d, c.xd);
    int n_dropped = 0, leak = 0;
    for (int i = 0; i < T * IN; i++)
        if (m.x[i] == 0) n_dropped++, leak += dx[i] != 0;
    CHECK(n_dropped > 0 && n_dropped < T * IN);
    CHECK_EQ_INT(leak, 0);
    CHECK(fd_ok(&c, c.x, dx, T * IN, "dx"));
    CHECK(fd_ok(&c, c.A, dA, R * IN, "dA"));
    CHECK(fd_ok(&c, c.B, dB, OUT * R, "dB"));
    tp_free(c.tp);
}

/* A tiny random Llama with adapters on all seven modules, B random too (so
 * every adapter gets a gradient). */
static void tiny_lora_model(TrainDecoder *m, double dropout) {
    ModelConfig c = {0};
    c.arch = ARCH_LLAMA;
    c.hidden_size = 32, c.intermediate_size = 48, c.n_layers = 2, c.n_heads = 4, c.n_kv_heads = 2;
    c.head_dim = 8, c.vocab_size = 40, c.max_pos = 64, c.norm_eps = 1e-6f;
    c.rope.type = ROPE_DEFAULT, c.rope.theta = 10000, c.rope.factor = 1;
    Err e;
    if (td_init(m, &c, &e)) abort();
    td_init_random(m, 11, 0.2f);
    LoraConfig lc = {4, 8, dropout, 0x7f, 0};
    if (td_lora_attach(m, &lc, &e)) abort();
    td_lora_init(m, 12);
    Rng r;
    rng_seed(&r, 13);
    for (int i = 0; i < m->n_lora_tensors; i++)
        if (strstr(m->lora_tensors[i].name, "lora_B"))
            for (size_t k = 0; k < m->lora_tensors[i].numel; k++)
                m->lora_params[m->lora_tensors[i].offset + k] = 0.3f * rng_normal(&r);
}

enum { DT = 11 };
static const int32_t DIDS[DT] = {1, 5, 9, 20, 7, 3, 33, 2, 39, 0, 14};

static double model_loss(TrainDecoder *m, ThreadPool *tp, float *logits, int backward) {
    int32_t labels[DT];
    uint8_t target[DT];
    for (int t = 0; t < DT; t++) target[t] = t >= 3;
    loss_shift_labels(DIDS, target, DT, labels);
    Err e;
    if (td_forward(m, tp, DIDS, DT, logits, &e)) return NAN;
    int n;
    double l = xent_forward(logits, labels, DT, m->cfg.vocab_size, &n);
    if (backward) {
        xent_backward(logits, logits, labels, DT, m->cfg.vocab_size, n, 1.0f);
        td_zero_grad(m);
        td_backward(m, tp, logits);
    }
    return l;
}

/* In a model: dropout only between td_lora_dropout_on and _off, the same
 * pass gives the same logits (any thread count), another pass others, and
 * every adapter gradient matches finite differences under the same masks. */
static void test_dropout_in_model(void) {
    TrainDecoder m;
    tiny_lora_model(&m, 0.3);
    ThreadPool *tp = tp_create(2);
    const int V = m.cfg.vocab_size;
    float *l0 = xmalloc(DT * V * sizeof(float)), *l1 = xmalloc(DT * V * sizeof(float));
    float *l2 = xmalloc(DT * V * sizeof(float));
    model_loss(&m, tp, l0, 0);
    td_lora_dropout_on(&m, 9, 100);
    model_loss(&m, tp, l1, 0);
    model_loss(&m, NULL, l2, 0);
    CHECK(memcmp(l0, l1, DT * V * sizeof(float)) != 0);
    CHECK_MSG(range_err(l2, l1, DT * V) <= LOGIT_TOL, "1 vs 2 threads: %.3g", range_err(l2, l1, DT * V));
    td_lora_dropout_on(&m, 9, 101);
    model_loss(&m, tp, l2, 0);
    CHECK(memcmp(l2, l1, DT * V * sizeof(float)) != 0);
    td_lora_dropout_off(&m);
    model_loss(&m, tp, l2, 0);
    CHECK(memcmp(l2, l0, DT * V * sizeof(float)) == 0);
    /* Gradients under pass 100 against central differences of the loss. */
    td_lora_dropout_on(&m, 9, 100);
    model_loss(&m, tp, l1, 1);
    float *g = xmalloc(m.n_lora_params * sizeof *g);
    memcpy(g, m.lora_grads, m.n_lora_params * sizeof *g);
    double gmax = 0, worst = 0;
    for (size_t i = 0; i < m.n_lora_params; i++) gmax = fmax(gmax, fabs(g[i]));
    Rng r;
    rng_seed(&r, 4);
    for (int k = 0; k < 60; k++) {
        size_t i = (size_t)rng_below(&r, m.n_lora_params);
        float keep = m.lora_params[i];
        m.lora_params[i] = keep + 1e-2f;
        double fp = model_loss(&m, tp, l1, 0);
        m.lora_params[i] = keep - 1e-2f;
        double fm = model_loss(&m, tp, l1, 0);
        m.lora_params[i] = keep;
        worst = fmax(worst, fabs((fp - fm) / 2e-2 - g[i]) / gmax);
    }
    /* central differences of the whole model's mean loss (a float32
     * forward): test_backward.c's budget, with the loss's rounding over
     * the whole forward (the f32 gold budget, ~1e-6 of the logits' range,
     * through a loss of slope <= 2 per logit, over 2h = 0.02: ~1e-4 of
     * these unit-scale gradients) on top: 5e-3 of gmax */
    CHECK_MSG(gmax > 0 && worst < 5e-3, "adapter gradients vs finite differences: %.3g of max", worst);
    free(l0), free(l1), free(l2), free(g);
    td_free(&m);
    tp_free(tp);
}

/* Three SFT steps with dropout 0.3: the trainer's seed decides the masks,
 * so the same seed trains the same adapters bit for bit, another seed (or
 * no dropout) others. */
static void train_three_steps(double dropout, uint64_t seed, float *out) {
    TrainDecoder m;
    tiny_lora_model(&m, dropout);
    TrainerConfig cfg = {0};
    cfg.schedule = (LrSchedule){LR_CONSTANT, 1e-2, 0, 3};
    cfg.adamw = adamw_defaults();
    cfg.dpo = (DpoConfig){DPO_SIGMOID, 0.1, 0, 0};
    cfg.seed = seed;
    Trainer t;
    Err e;
    ThreadPool *tp = tp_create(2);
    uint8_t target[DT];
    for (int k = 0; k < DT; k++) target[k] = k >= 3;
    SftTokens ex[2] = {{DIDS, target, DT}, {DIDS + 2, target, DT - 2}};
    int rc = trainer_init(&t, &m, tp, &cfg, &e);
    for (int s = 0; s < 3 && !rc; s++) {
        StepStats st;
        rc = trainer_sft_accumulate(&t, ex, 2, &st, &e);
        if (!rc) trainer_apply(&t, &st);
    }
    CHECK_MSG(!rc, "%s", e.msg);
    CHECK(!m.drop_on); /* off again after the step */
    memcpy(out, m.lora_params, m.n_lora_params * sizeof *out);
    trainer_free(&t);
    td_free(&m);
    tp_free(tp);
}

static void test_dropout_seeds(void) {
    TrainDecoder m;
    tiny_lora_model(&m, 0);
    size_t n = m.n_lora_params;
    td_free(&m);
    float *a = xmalloc(n * sizeof *a), *b = xmalloc(n * sizeof *b), *c = xmalloc(n * sizeof *c);
    float *d = xmalloc(n * sizeof *d);
    train_three_steps(0.3, 1, a);
    train_three_steps(0.3, 1, b);
    train_three_steps(0.3, 2, c);
    train_three_steps(0, 1, d);
    CHECK(memcmp(a, b, n * sizeof *a) == 0);
    CHECK(memcmp(a, c, n * sizeof *a) != 0);
    CHECK(memcmp(a, d, n * sizeof *a) != 0);
    /* p = 0: no masks at all, whatever the seed */
    train_three_steps(0, 2, c);
    CHECK(memcmp(c, d, n * sizeof *c) == 0);
    free(a), free(b), free(c), free(d);
}

/* ---- a frozen base in its stored dtype ---- */

/* A tiny tied Qwen2 (biases; a vocabulary whose head is several wtile
 * blocks) with LoRA on all modules and B random; frozen in dtype, or
 * float32 with the matrices rounded to dtype's values. */
static void frozen_pair_model(TrainDecoder *m, int frozen_dtype, int round_dtype) {
    ModelConfig c = {0};
    c.arch = ARCH_QWEN2;
    c.hidden_size = 32, c.intermediate_size = 48, c.n_layers = 2, c.n_heads = 4, c.n_kv_heads = 2;
    c.head_dim = 8, c.vocab_size = 200, c.max_pos = 64, c.norm_eps = 1e-6f;
    c.tie_word_embeddings = 1, c.attention_bias = 1;
    c.rope.type = ROPE_DEFAULT, c.rope.theta = 10000, c.rope.factor = 1;
    Err e;
    if (td_init(m, &c, &e) || (frozen_dtype >= 0 && td_freeze_base(m, frozen_dtype, &e))) abort();
    td_init_random(m, 21, 0.2f);
    for (int i = 0; round_dtype >= 0 && i < m->n_tensors; i++) {
        const TdTensor *t = &m->tensors[i];
        if (t->ndim != 2) continue;
        uint16_t *h = xmalloc(t->numel * sizeof *h);
        quantize_row(round_dtype, m->params + t->offset, h, (int64_t)t->numel);
        dequantize_row(round_dtype, h, m->params + t->offset, (int64_t)t->numel);
        free(h);
    }
    /* biases are zero from td_init_random: give them values */
    for (int i = 0; i < m->n_tensors; i++)
        if (strstr(m->tensors[i].name, "bias"))
            for (size_t k = 0; k < m->tensors[i].numel; k++) m->params[m->tensors[i].offset + k] = 0.01f * (float)(k % 5);
    LoraConfig lc = {4, 8, 0, 0x7f, 0};
    if (td_lora_attach(m, &lc, &e)) abort();
    td_lora_init(m, 22);
    for (size_t k = 0; k < m->n_lora_params; k++)
        if (m->lora_params[k] == 0) m->lora_params[k] = 0.05f * (float)((k % 7) - 3);
}

/* Logits and adapter gradients of the frozen model against the float32
 * one, for a short sequence (the row-dot path) and a longer one (GEMMs). */
static void check_frozen(int dtype) {
    TrainDecoder a, b;
    frozen_pair_model(&a, -1, dtype);
    frozen_pair_model(&b, dtype, -1);
    CHECK(b.frozen && !b.grads && b.frozen_dtype == dtype);
    ThreadPool *tp = tp_create(2);
    const int V = a.cfg.vocab_size;
    int32_t ids[40];
    uint8_t target[40];
    int32_t labels[40];
    for (int t = 0; t < 40; t++) ids[t] = (int32_t)((t * 37 + 5) % V), target[t] = t >= 4;
    float *la = xmalloc(40 * V * sizeof(float)), *lb = xmalloc(40 * V * sizeof(float));
    Err e;
    const int lens[2] = {6, 40};
    for (int k = 0; k < 2; k++) {
        int T = lens[k], n;
        loss_shift_labels(ids, target, T, labels);
        TrainDecoder *ms[2] = {&a, &b};
        float *ls[2] = {la, lb};
        for (int j = 0; j < 2; j++) {
            CHECK_OK(td_forward(ms[j], tp, ids, T, ls[j], &e), &e);
            xent_forward(ls[j], labels, T, V, &n);
            td_zero_grad(ms[j]);
        }
        double lerr = range_err(lb, la, (long)T * V);
        for (int j = 0; j < 2; j++) {
            xent_backward(ls[j], ls[j], labels, T, V, n, 1.0f);
            td_backward(ms[j], tp, ls[j]);
        }
        double gerr = scaled_err(b.lora_grads, a.lora_grads, (long)a.n_lora_params);
        CHECK_MSG(lerr <= LOGIT_TOL, "%s T=%d: logits off by %.3g of the range", dtype_name(dtype), T, lerr);
        CHECK_MSG(gerr <= 1e-5, "%s T=%d: adapter gradients off by %.3g of max", dtype_name(dtype), T, gerr);
    }
    /* Merging converts the frozen base back: the same merged model. */
    td_lora_merge(&a);
    td_lora_merge(&b);
    CHECK(!b.frozen && b.grads);
    CHECK_OK(td_forward(&a, tp, ids, 40, la, &e), &e);
    CHECK_OK(td_forward(&b, tp, ids, 40, lb, &e), &e);
    CHECK(memcmp(a.params, b.params, a.n_params * sizeof(float)) == 0);
    free(la), free(lb);
    td_free(&a), td_free(&b);
    tp_free(tp);
}

static void test_frozen_bf16_base(void) { check_frozen(DT_BF16); }
static void test_frozen_f16_base(void) { check_frozen(DT_F16); }

/* Nothing of a frozen base trains: the trainer wants adapters; its
 * forward wants a thread pool. */
static void test_frozen_base_needs_lora(void) {
    TrainDecoder m;
    ModelConfig c = {0};
    c.arch = ARCH_LLAMA;
    c.hidden_size = 16, c.intermediate_size = 32, c.n_layers = 1, c.n_heads = 2, c.n_kv_heads = 1;
    c.head_dim = 8, c.vocab_size = 20, c.max_pos = 32, c.norm_eps = 1e-6f;
    c.rope.type = ROPE_DEFAULT, c.rope.theta = 10000, c.rope.factor = 1;
    Err e;
    CHECK_OK(td_init(&m, &c, &e), &e);
    CHECK(td_freeze_base(&m, DT_Q8_0, &e) == -1 && strstr(e.msg, "expected f32, bf16 or f16"));
    CHECK_OK(td_freeze_base(&m, DT_BF16, &e), &e);
    int32_t ids[16] = {0};
    float logits[16 * 20];
    CHECK(td_forward(&m, NULL, ids, 16, logits, &e) == -1 && strstr(e.msg, "needs a thread pool"));
    TrainerConfig cfg = {0};
    cfg.adamw = adamw_defaults();
    cfg.dpo = (DpoConfig){DPO_SIGMOID, 0.1, 0, 0};
    Trainer t;
    CHECK(trainer_init(&t, &m, NULL, &cfg, &e) == -1);
    CHECK_MSG(strstr(e.msg, "frozen in bf16"), "%s", e.msg);
    /* nor is it saved as a full model (its matrices are not in params) */
    CHECK(ckpt_save_model(&m, NULL, "/nonexistent-out", DT_F32, &e) == -1);
    CHECK_MSG(strstr(e.msg, "frozen"), "%s", e.msg);
    td_free(&m);
}

static void test_fresh_adapter_starts_at_the_base_model(void) {
    /* B = 0: the adapted model's logits equal the base model's. */
    char *dir = test_shared_path("fixtures/models/tiny-qwen2");
    if (!dir) SKIP("fixtures not found (set ALOE_SHARED)");
    ModelConfig cfg;
    TrainDecoder m;
    Err e;
    int rc = hf_config_load(dir, &cfg, &e) || td_init(&m, &cfg, &e) || td_load(&m, dir, &e);
    free(dir);
    CHECK_MSG(!rc, "%s", e.msg);
    int32_t ids[6] = {1, 5, 9, 200, 7, 3};
    const int V = cfg.vocab_size;
    float *base = xmalloc(6 * V * sizeof(float)), *ad = xmalloc(6 * V * sizeof(float));
    CHECK_OK(td_forward(&m, NULL, ids, 6, base, &e), &e);
    LoraConfig lc = {4, 8, 0, 0x7f, 0};
    CHECK_OK(td_lora_attach(&m, &lc, &e), &e);
    td_lora_init(&m, 42);
    CHECK_OK(td_forward(&m, NULL, ids, 6, ad, &e), &e);
    CHECK(memcmp(base, ad, 6 * V * sizeof(float)) == 0);
    CHECK(m.lora_params[0] != 0); /* A was initialised */
    CHECK(td_lora_attach(&m, &lc, &e) == -1);
    free(base);
    free(ad);
    td_free(&m);
}

/* ---- the fixtures ---- */

/* "...lora_A.weight" -> "lora.grad....lora_A.default.weight" (PyTorch's name). */
static void grad_name(const char *file_name, char *out, size_t n) {
    size_t len = strlen(file_name) - strlen("weight");
    snprintf(out, n, "lora.grad.%.*sdefault.weight", (int)len, file_name);
}

static int check_arch(const char *arch, TrainDecoder *m, ThreadPool *tp, json_t *root, SafeTensors *want, Err *e) {
    const int V = m->cfg.vocab_size;
    /* Logits of the forward batch. */
    json_t *rows = json_object_get(json_object_get(root, "forward"), "input_ids");
    const TensorView *lv = st_get(want, "lora.forward.logits", e);
    float *wl = lv ? tensor_to_f32_alloc(lv, e) : NULL;
    if (!wl) return -1;
    int rc = 0;
    for (size_t r = 0; r < json_array_size(rows) && !rc; r++) {
        int T;
        int32_t *ids = json_ids(json_array_get(rows, r), &T);
        float *logits = xmalloc((size_t)T * V * sizeof(float));
        rc = td_forward(m, tp, ids, T, logits, e);
        double err = rc ? 0 : range_err(logits, wl + r * (size_t)T * V, (long)T * V);
        if (err > LOGIT_TOL)
            rc = err_set(e, ERR_INTERNAL, "%s row %zu: LoRA logits off by %.3g of the range", arch, r, err);
        free(ids);
        free(logits);
    }
    free(wl);
    if (rc) return -1;
    /* SFT loss and adapter gradients. */
    int T;
    int32_t *ids, *labels = sft_labels(root, &ids, &T);
    float *logits = xmalloc((size_t)T * V * sizeof(float));
    rc = td_forward(m, tp, ids, T, logits, e);
    if (!rc) {
        int n;
        float loss = xent_forward(logits, labels, T, V, &n);
        double want_loss = json_number_value(json_object_get(json_object_get(root, "lora"), "loss"));
        if (fabs(loss - want_loss) > 1e-5 * want_loss)
            rc = err_set(e, ERR_INTERNAL, "%s: LoRA SFT loss %.9g vs %.9g", arch, loss, want_loss);
        xent_backward(logits, logits, labels, T, V, n, 1.0f);
        td_zero_grad(m);
        td_backward(m, tp, logits);
    }
    double worst = 0;
    const char *worst_name = "";
    for (int i = 0; i < m->n_lora_tensors && !rc; i++) {
        const TdTensor *t = &m->lora_tensors[i];
        char name[200];
        grad_name(t->name, name, sizeof name);
        const TensorView *v = st_get(want, name, e);
        float *w = v ? tensor_to_f32_alloc(v, e) : NULL;
        if (!w) rc = -1;
        else if ((size_t)tensor_numel(v) != t->numel) rc = err_set(e, ERR_INTERNAL, "%s: size differs", name);
        else {
            double err = scaled_err(m->lora_grads + t->offset, w, (long)t->numel);
            if (err > worst) worst = err, worst_name = t->name;
        }
        free(w);
    }
    if (!rc && worst > 1e-5)
        rc = err_set(e, ERR_INTERNAL, "%s: worst adapter gradient error %.3g of max in %s", arch, worst, worst_name);
    if (!rc && m->grads) rc = err_set(e, ERR_INTERNAL, "%s: the frozen base still has a gradient block", arch);
    free(ids);
    free(labels);
    free(logits);
    return rc;
}

static void check_fixture(const char *arch) {
    char rel[128];
    snprintf(rel, sizeof rel, "fixtures/models/tiny-%s", arch);
    char *dir = test_shared_path(rel);
    if (!dir) SKIP("fixtures not found (set ALOE_SHARED)");
    char *lora_dir = xasprintf("%s-lora", dir), *jp = path_join(dir, "expected.json");
    char *sp = path_join(dir, "expected.safetensors");
    Err e;
    ModelConfig cfg;
    TrainDecoder m;
    memset(&m, 0, sizeof m);
    json_error_t je;
    json_t *root = json_load_file(jp, 0, &je);
    SafeTensors *want = st_open(sp, &e);
    int rc = !want || hf_config_load(dir, &cfg, &e) || td_init(&m, &cfg, &e) || td_load(&m, dir, &e) ||
             td_lora_load(&m, lora_dir, &e);
    if (!rc && !root) rc = err_set(&e, ERR_PARSE, "expected.json: %s", je.text);
    if (!rc) {
        ThreadPool *tp = tp_create(2);
        rc = check_arch(arch, &m, tp, root, want, &e);
        tp_free(tp);
    }
    if (root) json_decref(root);
    if (want) st_close(want);
    td_free(&m);
    free(dir);
    free(lora_dir);
    free(jp);
    free(sp);
    CHECK_MSG(!rc, "%s", e.msg);
}

/* Merged weights compute what base + adapter computed: W + s·BA rounded
 * once per weight (u relative: a stored-weight stage far below the
 * budget) and the two float32 evaluations: LOGIT_TOL of the range. */
static void test_merge_keeps_logits(void) {
    char *dir = test_shared_path("fixtures/models/tiny-llama3");
    if (!dir) SKIP("fixtures not found (set ALOE_SHARED)");
    char *lora = xasprintf("%s-lora", dir);
    ModelConfig cfg;
    TrainDecoder m;
    memset(&m, 0, sizeof m);
    Err e;
    int rc = hf_config_load(dir, &cfg, &e) || td_init(&m, &cfg, &e) || td_load(&m, dir, &e) || td_lora_load(&m, lora, &e);
    free(dir), free(lora);
    CHECK_MSG(!rc, "%s", e.msg);
    int32_t ids[9] = {1, 5, 9, 200, 7, 3, 88, 1000, 4};
    const int V = cfg.vocab_size;
    float *a = xmalloc(9 * V * sizeof(float)), *b = xmalloc(9 * V * sizeof(float));
    rc = td_forward(&m, NULL, ids, 9, a, &e);
    td_lora_merge(&m);
    if (!rc) rc = td_forward(&m, NULL, ids, 9, b, &e);
    double err = rc ? 0 : range_err(b, a, 9L * V);
    int off = !m.lora_on && !m.la && m.grads && m.g.layers[0].wq.data == m.grads + td_find(&m, "model.layers.0.self_attn.q_proj.weight")->offset;
    free(a), free(b);
    td_free(&m);
    CHECK_MSG(!rc, "%s", e.msg);
    CHECK_MSG(err <= LOGIT_TOL, "merged logits off by %.3g of the range", err);
    CHECK(off);
}

static void test_fixture_llama3(void) { check_fixture("llama3"); }
static void test_fixture_qwen2(void) { check_fixture("qwen2"); }
static void test_fixture_mistral(void) { check_fixture("mistral"); }
static void test_fixture_qwen3(void) { check_fixture("qwen3"); }

int main(void) {
    RUN(test_targets_parse);
    RUN(test_config_load);
    RUN(test_adapter_backward_matches_finite_differences);
    RUN(test_dropout_masks);
    RUN(test_dropout_backward_matches_finite_differences);
    RUN(test_dropout_in_model);
    RUN(test_dropout_seeds);
    RUN(test_frozen_bf16_base);
    RUN(test_frozen_f16_base);
    RUN(test_frozen_base_needs_lora);
    RUN(test_fresh_adapter_starts_at_the_base_model);
    RUN(test_merge_keeps_logits);
    RUN(test_fixture_llama3);
    RUN(test_fixture_qwen2);
    RUN(test_fixture_mistral);
    RUN(test_fixture_qwen3);
    return test_summary();
}
