/* test_backend_train: the backend seam (kernels/backend.h) for training.
 * train/decoder_train.c and the loss run one SFT step -- forward, token
 * cross-entropy, backward -- on the CPU backend and on backend_ref.c
 * (plain loops in double; host-resident, as the trainer requires), on the
 * tiny OLMo, OLMo 2, Gemma 2, Gemma 3 and Phi-3 of tests/data/arch/models:
 *  - full fine-tuning: the reference backend's loss and every parameter's
 *    gradient against the gold (sft.grad.*), and the CPU backend's against
 *    the reference backend's;
 *  - LoRA (the -lora adapters, Phi-3's fused modules): the adapter
 *    gradients against the gold (lora.grad.*) and CPU against reference;
 *    then with dropout on (p = 0.25, the same counter-based masks on both)
 *    CPU against reference;
 *  - a non-host-resident backend is refused by td_set_backend.
 *
 * Tolerances: tests/train/test_decoder_train.c's (derivation there):
 * GRAD_TOL 1e-5 of each gradient tensor's largest element and losses 1e-5
 * relative budget two float32 evaluations of these models' forward and
 * backward. Here the reference backend is held to GRAD_TOL against the gold,
 * and tests/train/test_arch_train.c holds the CPU backend to GRAD_TOL against
 * the same gold, so CPU against reference is bounded by 2·GRAD_TOL (the
 * triangle inequality; CPU_REF_TOL). Not GRAD_TOL itself: the reference sums
 * in double but the gold does not, and Phi-3's LongRoPE amplifies the CPU's
 * rounding to 1.04e-5 with OpenBLAS's Haswell kernels (9.1e-6 with this
 * CPU's own). A wrong gradient is off by far more than either. */
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "backend_ref.c"
#include "base/mem.h"
#include "test.h"
#include "train/decoder_train.h"
#include "train/loss.h"

#define GRAD_TOL 1e-5
#define CPU_REF_TOL (2 * GRAD_TOL)
#define LOGIT_TOL 2e-6

#include "train/gold_dpo.h"

static const char *const ARCHS[] = {"olmo", "olmo2", "gemma2", "gemma3", "phi3"};

static int open_arch(Fixture *f, const char *arch, Err *e) {
    return fixture_open_dir(f, xasprintf("tests/data/arch/models/tiny-%s", arch), e);
}

/* One SFT step on the fixture's sft example through the model's backend:
 * the mean token NLL (the trainer's loss: the backend's nll_sum over the
 * target rows, its backward scaled by 1/n) into *loss, the gradients
 * accumulated from zero. */
static int sft_step(Fixture *f, double *loss, Err *e) {
    int T;
    int32_t *ids, *labels = sft_labels(f->root, &ids, &T);
    const int V = f->m.cfg.vocab_size;
    float *logits = xmalloc((size_t)T * V * sizeof(float));
    int rc = td_forward(&f->m, f->tp, ids, T, logits, e);
    if (!rc) {
        Backend *be = td_backend(&f->m, f->tp);
        int n = 0;
        *loss = be->nll_sum(be, logits, labels, T, V, &n) / n;
        be->nll_sum_backward(be, logits, logits, labels, T, V, 1.0f / (float)n);
        td_zero_grad(&f->m);
        td_backward(&f->m, f->tp, logits);
    }
    free(ids), free(labels), free(logits);
    return rc;
}

/* Worst gradient error, of each tensor's largest |element|, of got against want. */
static double worst_grad(const Fixture *f, int lora, const float *got, const float *want, const char **name) {
    double worst = 0;
    int n = lora ? f->m.n_lora_tensors : f->m.n_tensors;
    for (int i = 0; i < n; i++) {
        const TdTensor *t = lora ? &f->m.lora_tensors[i] : &f->m.tensors[i];
        double err = scaled_err(got + t->offset, want + t->offset, (long)t->numel);
        if (err > worst) worst = err, *name = t->name;
    }
    return worst;
}

/* CPU then reference backend on the same step; lora: the adapter's
 * gradients; gold_prefix: the gold's gradients to check the reference's
 * against (NULL: none, e.g. with dropout). */
static void check_step(Fixture *f, const char *arch, int lora, const char *gold_prefix, const char *gold_loss_key) {
    Err e = {0};
    double loss_cpu = 0, loss_ref = 0;
    CHECK_OK(sft_step(f, &loss_cpu, &e), &e);
    size_t n = lora ? f->m.n_lora_params : f->m.n_params;
    float *g_cpu = xmalloc(n * sizeof *g_cpu);
    memcpy(g_cpu, lora ? f->m.lora_grads : f->m.grads, n * sizeof *g_cpu);
    CHECK_OK(td_set_backend(&f->m, backend_ref_new(1), &e), &e);
    CHECK_OK(sft_step(f, &loss_ref, &e), &e);
    const float *g_ref = lora ? f->m.lora_grads : f->m.grads;
    const char *worst_name = "";
    double worst = worst_grad(f, lora, g_cpu, g_ref, &worst_name);
    printf("  %-7s %-5s loss cpu %.9g ref %.9g; cpu vs ref worst gradient %.2e of its tensor's max (%s)\n", arch,
           lora ? "lora" : "full", loss_cpu, loss_ref, worst, worst_name);
    if (gold_prefix) {
        double want = json_number_value(json_object_get(json_object_get(f->root, gold_loss_key), "loss"));
        CHECK_NEAR(loss_ref, want, 1e-5 * want);
        CHECK_MSG(check_grads(f, gold_prefix, lora, arch, &e) == 0, "reference backend: %s", e.msg);
    }
    CHECK_NEAR(loss_cpu, loss_ref, 1e-5 * fabs(loss_ref));
    CHECK_MSG(worst <= CPU_REF_TOL, "%s: CPU gradient %.3g of the tensor's max from the reference's in %s", arch, worst,
              worst_name);
    free(g_cpu);
}

static void test_full(void) {
    for (size_t i = 0; i < sizeof ARCHS / sizeof *ARCHS; i++) {
        Fixture f;
        Err e = {0};
        CHECK_MSG(open_arch(&f, ARCHS[i], &e) == 0, "%s", e.msg);
        check_step(&f, ARCHS[i], 0, "sft.grad.", "sft");
        fixture_free(&f);
    }
}

static void test_lora(void) {
    for (int drop = 0; drop < 2; drop++)
        for (size_t i = 0; i < sizeof ARCHS / sizeof *ARCHS; i++) {
            Fixture f;
            Err e = {0};
            CHECK_MSG(open_arch(&f, ARCHS[i], &e) == 0, "%s", e.msg);
            char *lora_dir = xasprintf("%s-lora", f.dir);
            CHECK_OK(td_lora_load(&f.m, lora_dir, &e), &e);
            free(lora_dir);
            if (drop) { /* before the first forward: its scratch is sized then */
                f.m.lora.dropout = 0.25;
                td_lora_dropout_on(&f.m, 1234, 7);
            }
            check_step(&f, ARCHS[i], 1, drop ? NULL : "lora.grad.", "lora");
            fixture_free(&f);
        }
}

static void test_refuses_device_memory(void) {
    Fixture f;
    Err e = {0};
    CHECK_MSG(open_arch(&f, "olmo", &e) == 0, "%s", e.msg);
    CHECK(td_set_backend(&f.m, backend_ref_new(0), &e) == -1);
    CHECK_MSG(strstr(e.msg, "not host memory") != NULL, "unexpected message: %s", e.msg);
    CHECK(backend_is_cpu(f.m.be)); /* still the CPU backend */
    fixture_free(&f);
}

int main(void) {
    RUN(test_full);
    RUN(test_lora);
    RUN(test_refuses_device_memory);
    return test_summary();
}
