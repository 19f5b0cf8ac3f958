/* Training OLMo, OLMo 2, Gemma 2, Gemma 3 (text) and Phi-3 against the gold
 * data of tests/data/arch/models (README there: the equations, the
 * generator, which implementation made the numbers): logits, the SFT loss
 * and every parameter's gradient, DPO log-probs, loss and gradients against
 * the -ref model, LoRA logits and adapter gradients with the -lora adapter
 * (Phi-3's fused qkv_proj / gate_up_proj), one AdamW step from the
 * gradients this trainer computes, packed = separate sequences (sliding
 * windows and LongRoPE inside a pack), and checkpoints (full and adapter)
 * that load back in training and in inference.
 *
 * Tolerances: those of tests/train/test_decoder_train.c (LOGIT_TOL 2e-6
 * of the logits' range, GRAD_TOL 1e-5 of each gradient tensor's largest
 * element, losses and log-probs 1e-5 relative), whose derivation holds
 * for any model whose logits pass through ΣK <= 2472 reduction terms.
 * Here, per layer: pre-norms 2·32, q/k/v 32, q/k norm <= 64 (OLMo 2's
 * whole projection), scores <= 16 (head_dim), softmax and P·V <= 160 each
 * (the longest DPO sequence), o_proj <= 64, post-norms 2·32, gate/up 32,
 * down 64: <= 720; Gemma 3's 3 layers, final norm 32 and head 32: <= 2224.
 * Soft-capping (tanh, derivative <= 1) and the embedding scale (one
 * multiplication) add no reduction and do not amplify relative errors. */
#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "base/fileio.h"
#include "base/mem.h"
#include "formats/safetensors.h"
#include "model/decoder.h"
#include "test.h"
#include "train/checkpoint.h"
#include "train/decoder_train.h"
#include "train/loss.h"
#include "train/optim.h"
#include "train/trainer.h"

#define GRAD_TOL 1e-5
#define LOGIT_TOL 2e-6

#include "train/gold_dpo.h"

static const char *const ARCHS[] = {"olmo", "olmo2", "gemma2", "gemma3", "phi3"};
#define N_ARCHS (int)(sizeof ARCHS / sizeof *ARCHS)

static int fixture_open(Fixture *f, const char *arch, Err *e) {
    return fixture_open_dir(f, xasprintf("tests/data/arch/models/tiny-%s", arch), e);
}


/* forward.input_ids -> the logits named `key` */
static int check_logits(Fixture *f, const char *key, const char *arch, Err *e) {
    json_t *rows = json_object_get(json_object_get(f->root, "forward"), "input_ids");
    const TensorView *lv = st_get(f->want, key, e);
    float *want = lv ? tensor_to_f32_alloc(lv, e) : NULL;
    if (!want) return -1;
    const int V = f->m.cfg.vocab_size;
    int rc = 0;
    size_t off = 0;
    for (size_t r = 0; !rc && r < json_array_size(rows); r++) {
        int T;
        int32_t *ids = json_ids(json_array_get(rows, r), &T);
        float *logits = xmalloc((size_t)T * V * sizeof(float));
        rc = td_forward(&f->m, f->tp, ids, T, logits, e);
        double err = rc ? 0 : range_err(logits, want + off, (long)T * V);
        off += (size_t)T * V;
        printf("  %s %s row %zu: within %.2e of the range\n", arch, key, r, err);
        if (!rc && err > LOGIT_TOL) rc = err_set(e, ERR_INTERNAL, "%s %s row %zu: off by %.3g of the range", arch, key, r, err);
        free(ids), free(logits);
    }
    free(want);
    return rc;
}

/* The SFT section's loss (into *loss) and gradients in the model. */
static int sft_grads(Fixture *f, float *loss, Err *e) {
    int T;
    int32_t *ids, *labels = sft_labels(f->root, &ids, &T);
    const int V = f->m.cfg.vocab_size;
    float *logits = xmalloc((size_t)T * V * sizeof(float));
    int rc = td_forward(&f->m, f->tp, ids, T, logits, e);
    if (!rc) {
        int n = 0;
        *loss = xent_forward(logits, labels, T, V, &n);
        xent_backward(logits, logits, labels, T, V, n, 1.0f);
        td_zero_grad(&f->m);
        td_backward(&f->m, f->tp, logits);
    }
    free(ids), free(labels), free(logits);
    return rc;
}

static void check_forward_sft(const char *arch) {
    Fixture f;
    Err e;
    CHECK_MSG(fixture_open(&f, arch, &e) == 0, "%s", e.msg);
    CHECK_MSG(check_logits(&f, "forward.logits", arch, &e) == 0, "%s", e.msg);
    float loss = 0;
    CHECK_MSG(sft_grads(&f, &loss, &e) == 0, "%s", e.msg);
    double want = json_number_value(json_object_get(json_object_get(f.root, "sft"), "loss"));
    printf("  %s sft loss %.9g vs %.9g\n", arch, loss, want);
    CHECK_NEAR(loss, want, 1e-5 * want);
    CHECK_MSG(check_grads(&f, "sft.grad.", 0, arch, &e) == 0, "%s", e.msg);
    fixture_free(&f);
}


/* The dpo section (gold_check_dpo). */
static void check_dpo(const char *arch) {
    Fixture f;
    Err e;
    CHECK_MSG(fixture_open(&f, arch, &e) == 0, "%s", e.msg);
    int rc = gold_check_dpo(&f, arch, &e);
    fixture_free(&f);
    CHECK_MSG(rc == 0, "%s", e.msg);
}

/* The -lora adapter: its logits and the SFT loss's adapter gradients. */
static void check_lora(const char *arch) {
    Fixture f;
    Err e;
    CHECK_MSG(fixture_open(&f, arch, &e) == 0, "%s", e.msg);
    char *lora_dir = xasprintf("%s-lora", f.dir);
    CHECK_OK(td_lora_load(&f.m, lora_dir, &e), &e);
    free(lora_dir);
    CHECK_MSG(check_logits(&f, "lora.forward.logits", arch, &e) == 0, "%s", e.msg);
    float loss = 0;
    CHECK_MSG(sft_grads(&f, &loss, &e) == 0, "%s", e.msg);
    double want = json_number_value(json_object_get(json_object_get(f.root, "lora"), "loss"));
    CHECK_NEAR(loss, want, 1e-5 * want);
    CHECK_MSG(check_grads(&f, "lora.grad.", 1, arch, &e) == 0, "%s", e.msg);
    CHECK(f.m.grads == NULL); /* the base is frozen */
    fixture_free(&f);
}

/* One AdamW step (the fixture's settings, decay on every tensor) from the
 * SFT gradients this trainer computes, clipped to global norm 1, against
 * adamw1.<param>. Bound per element: Adam's first step is lr·f(c·g), f(x)
 * = x/(|x| + eps); our g differs from the gold by dg <= GRAD_TOL·max|g| of
 * its tensor (checked above) and the clip factors c by the norms' relative
 * difference eps_n. Where |c·g| > 2·c·dg, |f(c·g) - f(c·g')| <=
 * eps·c·dg/(|c·g| - c·dg)² + eps_n/4 (f's derivative, and its c·∂/∂c <=
 * 1/4); elsewhere a sign may flip: 2. Plus each side's rounding, as
 * tests/train/test_optim.c's check_fixture_adamw: 2(2u|p| + 9u·lr). */
static void check_adamw(const char *arch) {
    Fixture f;
    Err e;
    CHECK_MSG(fixture_open(&f, arch, &e) == 0, "%s", e.msg);
    float loss;
    CHECK_MSG(sft_grads(&f, &loss, &e) == 0, "%s", e.msg);
    json_t *adamw = json_object_get(f.root, "adamw"), *betas = json_object_get(adamw, "betas");
    AdamWConfig cfg = {json_number_value(json_array_get(betas, 0)), json_number_value(json_array_get(betas, 1)),
                       json_number_value(json_object_get(adamw, "eps")),
                       json_number_value(json_object_get(adamw, "weight_decay"))};
    const double lr = json_number_value(json_object_get(adamw, "lr"));
    const float max_norm = (float)json_number_value(json_object_get(adamw, "clip_grad_norm"));
    const double want_norm =
        json_number_value(json_object_get(json_object_get(f.root, "sft"), "grad_norm_before_clip"));
    float norm = grad_clip_global_norm(f.m.grads, f.m.n_params, max_norm);
    /* the norm of gradients each within GRAD_TOL of their tensor's max:
     * at most GRAD_TOL relative (every element's error <= GRAD_TOL·|g|max) */
    const double u = 0x1p-24, eps_n = GRAD_TOL + 1e-6;
    printf("  %s: grad norm %.9g vs %.9g\n", arch, norm, want_norm);
    CHECK_NEAR(norm, want_norm, eps_n * want_norm);
    const double c = want_norm > max_norm ? max_norm / want_norm : 1.0;
    ParamSpan *spans = xcalloc((size_t)f.m.n_tensors, sizeof *spans);
    for (int i = 0; i < f.m.n_tensors; i++) spans[i] = (ParamSpan){f.m.tensors[i].offset, f.m.tensors[i].numel, 1};
    AdamW o;
    CHECK_OK(adamw_init(&o, &cfg, f.m.n_params, &e), &e);
    adamw_step(&o, f.m.params, f.m.grads, spans, f.m.n_tensors, lr);
    double worst = 0;
    const char *worst_name = "";
    for (int i = 0; i < f.m.n_tensors; i++) {
        const TdTensor *t = &f.m.tensors[i];
        char name[128], gname[128];
        snprintf(name, sizeof name, "adamw1.%s", t->name);
        snprintf(gname, sizeof gname, "sft.grad.%s", t->name);
        const TensorView *w = st_get(f.want, name, &e), *gw = st_get(f.want, gname, &e);
        CHECK_MSG(w && gw, "%s", e.msg);
        float *wv = tensor_to_f32_alloc(w, &e), *gv = tensor_to_f32_alloc(gw, &e);
        double gmax = 0;
        for (size_t j = 0; j < t->numel; j++) gmax = fmax(gmax, fabs(gv[j]));
        const double dg = c * GRAD_TOL * gmax;
        for (size_t j = 0; j < t->numel; j++) {
            const double got = f.m.params[t->offset + j], exp = wv[j], cg = c * fabs(gv[j]);
            const double df = cg > 2 * dg ? cfg.eps * dg / ((cg - dg) * (cg - dg)) + eps_n / 4 : 2;
            const double bound = lr * df + 2 * (2 * u * fabs(exp) + 9 * u * lr);
            const double r = fabs(got - exp) / bound;
            if (r > worst) worst = r, worst_name = t->name;
        }
        free(wv), free(gv);
    }
    printf("  %s: worst parameter after AdamW %.3g of its bound (%s)\n", arch, worst, worst_name);
    CHECK_MSG(worst <= 1, "%s: a parameter is %.3g times its bound, in %s", arch, worst, worst_name);
    adamw_free(&o);
    free(spans);
    fixture_free(&f);
}

/* The two forward rows packed into one call give the logits and summed
 * gradients of two calls: windows and RoPE positions restart per sequence. */
static void check_packed(const char *arch) {
    Fixture f;
    Err e;
    CHECK_MSG(fixture_open(&f, arch, &e) == 0, "%s", e.msg);
    PackedRows pr;
    packed_rows(&f, &pr);
    int32_t *a = pr.a, *b = pr.b, *ids = pr.ids;
    int *seg = pr.seg, T0 = pr.T0, T1 = pr.T1;
    const int V = f.m.cfg.vocab_size, T = pr.T;
    float *sep = xmalloc((size_t)T * V * sizeof(float)), *packed = xmalloc((size_t)T * V * sizeof(float));
    float *g_sep = xmalloc(f.m.n_params * sizeof(float)), *r = xmalloc((size_t)T * V * sizeof(float));
    for (long i = 0; i < (long)T * V; i++) r[i] = (float)((i * 7919) % 13) / 13.0f - 0.5f;
    td_zero_grad(&f.m);
    int rc = td_forward(&f.m, f.tp, a, T0, sep, &e);
    if (!rc) td_backward(&f.m, f.tp, r);
    if (!rc) rc = td_forward(&f.m, f.tp, b, T1, sep + (size_t)T0 * V, &e);
    if (!rc) td_backward(&f.m, f.tp, r + (size_t)T0 * V);
    memcpy(g_sep, f.m.grads, f.m.n_params * sizeof(float));
    td_zero_grad(&f.m);
    if (!rc) rc = td_forward_packed(&f.m, f.tp, ids, seg, T, packed, &e);
    if (!rc) td_backward(&f.m, f.tp, r);
    double el = rc ? 0 : range_err(packed, sep, (long)T * V);
    double eg = rc ? 0 : scaled_err(f.m.grads, g_sep, (long)f.m.n_params);
    printf("  %s packed vs separate: logits %.2e of the range, gradients %.2e of the max\n", arch, el, eg);
    CHECK_MSG(rc == 0, "%s", e.msg);
    CHECK_MSG(el <= LOGIT_TOL && eg <= GRAD_TOL, "%s: packed vs separate: logits %.3g, gradients %.3g", arch, el, eg);
    free(a), free(b), free(sep), free(g_sep), free(r), free(ids), free(seg), free(packed);
    fixture_free(&f);
}

/* Largest |inference - training| logit over the first forward row,
 * relative to the range; -1 on an error. */
static double inference_gap(TrainDecoder *td, ThreadPool *tp, const char *path, json_t *root, Err *e) {
    Model *m = model_load(path, 1, e);
    if (!m) return -1;
    int T;
    int32_t *ids = json_ids(json_array_get(json_object_get(json_object_get(root, "forward"), "input_ids"), 0), &T);
    const int V = td->cfg.vocab_size;
    float *li = xmalloc((size_t)T * V * sizeof(float)), *lt = xmalloc((size_t)T * V * sizeof(float));
    KvCache kv;
    double gap = -1;
    if (!kv_cache_init(&kv, m, T, e)) {
        if (!model_forward(m, &kv, ids, T, 0, li, 1, e) && !td_forward(td, tp, ids, T, lt, e))
            gap = range_err(li, lt, (long)T * V);
        kv_cache_free(&kv);
    }
    free(ids), free(li), free(lt);
    model_free(m);
    return gap;
}

/* A trained model of each architecture saved as a checkpoint (after one
 * SGD-like nudge so it is not the fixture's weights) loads back in
 * training bit for bit (f32) and in inference to training's logits, from
 * its safetensors and from the GGUF written beside them; an
 * adapter saved loads back to the same adapter, under the model's module
 * names (Phi-3: qkv_proj, gate_up_proj). Inference vs training: f32, the
 * forward passes differ in summation order only: LOGIT_TOL·10 (the
 * inference forward's own dot products and attention order; the logits of
 * both are checked against the gold at LOGIT_TOL each, so 2·LOGIT_TOL
 * would hold too; 2e-5 leaves room for the KV-cache path). */
static void check_checkpoint(const char *arch) {
    Fixture f;
    Err e;
    CHECK_MSG(fixture_open(&f, arch, &e) == 0, "%s", e.msg);
    for (size_t i = 0; i < f.m.n_params; i++) f.m.params[i] += 1e-3f * (float)((i * 2654435761u) % 17) / 17.0f;
    char *tmp = test_tmpdir(), *out = path_join(tmp, "full"), *ad = path_join(tmp, "adapter");
    CkptSaveOpts so = {DT_F32, 0, "f32"}; /* and DIR/model.gguf, as --gguf f32 */
    CHECK_OK(ckpt_save_model_opts(&f.m, f.dir, out, &so, &e), &e);
    TrainDecoder back;
    ModelConfig cfg;
    CHECK_OK(hf_config_load(out, &cfg, &e) || td_init(&back, &cfg, &e) || td_load(&back, out, &e), &e);
    CHECK(back.n_params == f.m.n_params && !memcmp(back.params, f.m.params, f.m.n_params * sizeof(float)));
    td_free(&back);
    double gap = inference_gap(&f.m, f.tp, out, f.root, &e);
    printf("  %s checkpoint: inference off training by %.2e of the range\n", arch, gap);
    CHECK_MSG(gap >= 0, "%s", e.msg);
    CHECK_MSG(gap <= 2e-5, "%s: inference of the saved checkpoint off training by %.3g of the range", arch, gap);
    /* its GGUF: the same weights (Gemma's norms stored as w + 1, one more
     * rounding of a weight, u relative): the same bound */
    char *gp = path_join(out, "model.gguf");
    double ggap = inference_gap(&f.m, f.tp, gp, f.root, &e);
    free(gp);
    printf("  %s checkpoint GGUF: inference off training by %.2e of the range\n", arch, ggap);
    CHECK_MSG(ggap >= 0, "%s", e.msg);
    CHECK_MSG(ggap <= 2e-5, "%s: inference of the saved GGUF off training by %.3g of the range", arch, ggap);
    /* the adapter */
    char *lora_dir = xasprintf("%s-lora", f.dir);
    CHECK_OK(td_lora_load(&f.m, lora_dir, &e), &e);
    CHECK_OK(ckpt_save_adapter(&f.m, f.dir, ad, DT_F32, &e), &e);
    LoraConfig lc, want;
    CHECK_OK(lora_config_load(ad, &lc, &e) || lora_config_load(lora_dir, &want, &e), &e);
    CHECK_EQ_INT((int)lc.targets, (int)want.targets);
    /* the module names as peft wrote them */
    char *acp = path_join(ad, "adapter_config.json"), *wcp = path_join(lora_dir, "adapter_config.json");
    json_t *ja = json_load_file(acp, 0, NULL), *jw = json_load_file(wcp, 0, NULL);
    CHECK(ja && jw && json_equal(json_object_get(ja, "target_modules"), json_object_get(jw, "target_modules")));
    json_decref(ja), json_decref(jw);
    free(acp), free(wcp);
    CHECK_OK(hf_config_load(f.dir, &cfg, &e) || td_init(&back, &cfg, &e) || td_load(&back, f.dir, &e) ||
                 td_lora_load(&back, ad, &e),
             &e);
    CHECK(back.n_lora_params == f.m.n_lora_params &&
          !memcmp(back.lora_params, f.m.lora_params, f.m.n_lora_params * sizeof(float)));
    td_free(&back);
    free(lora_dir), free(out), free(ad), free(tmp);
    fixture_free(&f);
}

static void test_forward_sft(void) {
    for (int i = 0; i < N_ARCHS; i++) check_forward_sft(ARCHS[i]);
}
static void test_dpo(void) {
    for (int i = 0; i < N_ARCHS; i++) check_dpo(ARCHS[i]);
}
static void test_lora(void) {
    for (int i = 0; i < N_ARCHS; i++) check_lora(ARCHS[i]);
}
static void test_adamw(void) {
    for (int i = 0; i < N_ARCHS; i++) check_adamw(ARCHS[i]);
}
static void test_packed(void) {
    for (int i = 0; i < N_ARCHS; i++) check_packed(ARCHS[i]);
}
static void check_dpo_trainer(const char *arch);
static void check_dpo_lora_trainer(const char *arch);
static void test_dpo_trainer(void) {
    for (int i = 0; i < N_ARCHS; i++) check_dpo_trainer(ARCHS[i]);
}
static void test_dpo_lora_trainer(void) {
    check_dpo_lora_trainer("gemma2");
    check_dpo_lora_trainer("phi3");
}
static void test_checkpoint(void) {
    for (int i = 0; i < N_ARCHS; i++) check_checkpoint(ARCHS[i]);
}

/* The dpo section's pairs as the trainer takes them. */
static DpoTokens *dpo_tokens(json_t *root, int *n) {
    json_t *jp = json_object_get(json_object_get(root, "dpo"), "pairs");
    *n = (int)json_array_size(jp);
    DpoTokens *pairs = xcalloc((size_t)*n, sizeof *pairs);
    for (int i = 0; i < *n; i++) {
        json_t *p = json_array_get(jp, i);
        int np;
        free(json_ids(json_object_get(p, "prompt_ids"), &np));
        pairs[i].n_prompt = np;
        pairs[i].chosen = json_ids(json_object_get(p, "chosen_ids"), &pairs[i].n_chosen);
        pairs[i].rejected = json_ids(json_object_get(p, "rejected_ids"), &pairs[i].n_rejected);
    }
    return pairs;
}

static void dpo_tokens_free(DpoTokens *pairs, int n) {
    for (int i = 0; i < n; i++) free((void *)pairs[i].chosen), free((void *)pairs[i].rejected);
    free(pairs);
}

static TrainerConfig dpo_trainer_config(json_t *root) {
    TrainerConfig cfg;
    memset(&cfg, 0, sizeof cfg);
    cfg.schedule = (LrSchedule){LR_CONSTANT, 1e-3, 0, 0};
    cfg.adamw = adamw_defaults();
    cfg.dpo = (DpoConfig){DPO_SIGMOID, json_number_value(json_object_get(json_object_get(root, "dpo"), "beta")), 0, 0};
    return cfg;
}

/* DPO as `aloe train dpo` runs it: each pair packed into one forward
 * (chosen and rejected: two sequences, windows and positions restarting;
 * LongRoPE decided by the longer), the head 128 rows at a time (the
 * soft-capped head's saved blocks), reference log-probs from the -ref
 * model: the loss and every gradient against the gold. */
static void check_dpo_trainer(const char *arch) {
    Fixture f;
    Err e;
    CHECK_MSG(fixture_open(&f, arch, &e) == 0, "%s", e.msg);
    TrainDecoder ref;
    char *ref_dir = xasprintf("%s-ref", f.dir);
    CHECK_OK(td_init(&ref, &f.m.cfg, &e) || td_load(&ref, ref_dir, &e), &e);
    free(ref_dir);
    int n;
    DpoTokens *pairs = dpo_tokens(f.root, &n);
    double *ref_lp = xcalloc((size_t)2 * n, sizeof *ref_lp);
    CHECK_OK(trainer_ref_logps(&ref, f.tp, pairs, n, ref_lp, &e), &e);
    TrainerConfig cfg = dpo_trainer_config(f.root);
    Trainer t;
    StepStats st;
    CHECK_OK(trainer_init(&t, &f.m, f.tp, &cfg, &e), &e);
    CHECK_OK(trainer_dpo_accumulate(&t, pairs, n, ref_lp, &st, &e), &e);
    double want = json_number_value(json_object_get(json_object_get(f.root, "dpo"), "mean_loss"));
    CHECK_NEAR(st.loss, want, 1e-5 * want);
    CHECK_MSG(check_grads(&f, "dpo.grad.", 0, arch, &e) == 0, "%s (trainer)", e.msg);
    trainer_free(&t);
    dpo_tokens_free(pairs, n);
    free(ref_lp);
    td_free(&ref);
    fixture_free(&f);
}

/* One side of a pair (s: 0 chosen, 1 rejected) through completion_logp:
 * its length, its logits and labels (allocated here) and log-prob. */
static int side_logp(Fixture *f, const DpoTokens *p, int s, int *T, float **logits, int32_t **labels, double *lp,
                     int *cnt, Err *e) {
    *T = s ? p->n_rejected : p->n_chosen;
    *logits = xmalloc((size_t)*T * f->m.cfg.vocab_size * sizeof(float));
    *labels = xmalloc((size_t)*T * sizeof **labels);
    return completion_logp(&f->m, f->tp, s ? p->rejected : p->chosen, *T, p->n_prompt, *logits, *labels, lp, cnt, e);
}

/* DPO under LoRA through the trainer, whose head does not train: each
 * row's gradient passes the head (and Gemma 2's soft-cap) before its
 * pair's factor is known and is scaled after (td_scale_head_grad). Against
 * the plain path: each sequence alone, td_forward/td_backward with the
 * factor applied first. The same float32 model both ways, different
 * summation orders: GRAD_TOL of each adapter tensor's max. */
static void check_dpo_lora_trainer(const char *arch) {
    Fixture f;
    Err e;
    CHECK_MSG(fixture_open(&f, arch, &e) == 0, "%s", e.msg);
    char *lora_dir = xasprintf("%s-lora", f.dir);
    CHECK_OK(td_lora_load(&f.m, lora_dir, &e), &e);
    free(lora_dir);
    int n;
    DpoTokens *pairs = dpo_tokens(f.root, &n);
    /* the reference: the base (adapters off = the reference of a LoRA run;
     * here simply fixed numbers both paths share) */
    double *ref_lp = xcalloc((size_t)2 * n, sizeof *ref_lp);
    for (int i = 0; i < 2 * n; i++) ref_lp[i] = -250.0 - 3.0 * i;
    TrainerConfig cfg = dpo_trainer_config(f.root);
    Trainer t;
    StepStats st;
    CHECK_OK(trainer_init(&t, &f.m, f.tp, &cfg, &e), &e);
    CHECK_OK(trainer_dpo_accumulate(&t, pairs, n, ref_lp, &st, &e), &e);
    float *g_trainer = xmalloc(f.m.n_lora_params * sizeof(float));
    memcpy(g_trainer, f.m.lora_grads, f.m.n_lora_params * sizeof(float));
    trainer_free(&t);
    /* the plain path */
    const int V = f.m.cfg.vocab_size;
    DpoPair *dp = xcalloc((size_t)n, sizeof *dp);
    for (int i = 0; i < n; i++)
        for (int s = 0; s < 2; s++) {
            int T, cnt;
            float *logits;
            int32_t *labels;
            double lp;
            CHECK_OK(side_logp(&f, &pairs[i], s, &T, &logits, &labels, &lp, &cnt, &e), &e);
            if (s) dp[i].policy_rejected = lp, dp[i].n_rejected = cnt;
            else dp[i].policy_chosen = lp, dp[i].n_chosen = cnt;
            free(logits), free(labels);
        }
    for (int i = 0; i < n; i++) dp[i].ref_chosen = ref_lp[2 * i], dp[i].ref_rejected = ref_lp[2 * i + 1];
    DpoPairOut *outs = xcalloc((size_t)n, sizeof *outs);
    double *dc = xcalloc((size_t)n, sizeof *dc), *dr = xcalloc((size_t)n, sizeof *dr);
    DpoStats ds;
    double loss = dpo_batch(&cfg.dpo, dp, n, outs, &ds, dc, dr);
    CHECK_NEAR(st.loss, loss, 1e-5 * loss);
    td_zero_grad(&f.m);
    for (int i = 0; i < n; i++)
        for (int s = 0; s < 2; s++) {
            int T, cnt;
            float *logits;
            int32_t *labels;
            double lp;
            CHECK_OK(side_logp(&f, &pairs[i], s, &T, &logits, &labels, &lp, &cnt, &e), &e);
            seq_logprob_backward(logits, logits, labels, T, V, (float)(s ? dr[i] : dc[i]));
            td_backward(&f.m, f.tp, logits);
            free(logits), free(labels);
        }
    double worst = 0;
    for (int i = 0; i < f.m.n_lora_tensors; i++) {
        const TdTensor *tt = &f.m.lora_tensors[i];
        worst = fmax(worst, scaled_err(g_trainer + tt->offset, f.m.lora_grads + tt->offset, (long)tt->numel));
    }
    printf("  %s LoRA DPO: trainer vs plain path %.2e of the max\n", arch, worst);
    CHECK_MSG(worst <= GRAD_TOL, "%s: LoRA DPO gradients through the trainer off by %.3g", arch, worst);
    free(g_trainer), free(dp), free(outs), free(dc), free(dr), free(ref_lp);
    dpo_tokens_free(pairs, n);
    fixture_free(&f);
}

/* A soft-capped head's backward for a block other than the last forward's
 * recomputes that block's capped logits: the gradients of one block
 * [0, T) and of two blocks [0, k), [k, T) given without their forwards
 * agree (GRAD_TOL: the same operations, blocked differently). */
static void test_softcap_head_blocks(void) {
    Fixture f;
    Err e;
    CHECK_MSG(fixture_open(&f, "gemma2", &e) == 0, "%s", e.msg);
    CHECK(f.m.cfg.final_softcap > 0);
    json_t *rows = json_object_get(json_object_get(f.root, "forward"), "input_ids");
    int T;
    int32_t *ids = json_ids(json_array_get(rows, 0), &T);
    const int V = f.m.cfg.vocab_size, k = T / 3;
    float *logits = xmalloc((size_t)T * V * sizeof(float)), *r = xmalloc((size_t)T * V * sizeof(float));
    for (long i = 0; i < (long)T * V; i++) r[i] = (float)((i * 7919) % 13) / 13.0f - 0.5f;
    float *g1 = xmalloc(f.m.n_params * sizeof(float));
    td_zero_grad(&f.m);
    CHECK_OK(td_forward_hidden(&f.m, f.tp, ids, NULL, T, &e), &e);
    td_head_forward(&f.m, f.tp, 0, T, logits);
    td_head_backward(&f.m, f.tp, 0, T, r);
    td_backward_hidden(&f.m, f.tp);
    memcpy(g1, f.m.grads, f.m.n_params * sizeof(float));
    td_zero_grad(&f.m);
    CHECK_OK(td_forward_hidden(&f.m, f.tp, ids, NULL, T, &e), &e);
    td_head_backward(&f.m, f.tp, 0, k, r);
    td_head_backward(&f.m, f.tp, k, T, r + (size_t)k * V);
    td_backward_hidden(&f.m, f.tp);
    double err = scaled_err(f.m.grads, g1, (long)f.m.n_params);
    printf("  gemma2 head in blocks without their forwards: %.2e of the max\n", err);
    CHECK(err <= GRAD_TOL);
    free(ids), free(logits), free(r), free(g1);
    fixture_free(&f);
}

/* LoRA dropout on Phi-3's fused modules: peft drops the module's input
 * once, so q, k and v (gate and up) see the same mask; the backward must
 * remake those masks. The adapter gradient of L = Σ r·logits against
 * central differences of the float32 forward under the same masks (one
 * dropout pass) for elements of layer 1's qkv_proj and gate_up_proj A,
 * which all the parts share. h = 1e-2; truncation h²/6·|L'''| with
 * |L'''| <~ 10·|L'| (unit-scale inputs, one layer and the head after) is
 * <= 1.7e-4 of the gradient; rounding: L sums T·V = 10270 logits with
 * |r| <= 0.5, each rounded at u·|logit| (|logit| <~ 4), independent, so
 * 6 standard deviations of the difference are u·4·0.5·sqrt(10270)·6/(2h)
 * = 3.6e-3 absolute. Tolerance 2e-3 of the largest checked gradient plus
 * 1e-2. A mask that differed
 * between forward and backward (or between the parts) changes the
 * gradient by O(its size). */
static void test_fused_lora_dropout(void) {
    Fixture f;
    Err e;
    CHECK_MSG(fixture_open(&f, "phi3", &e) == 0, "%s", e.msg);
    char *lora_dir = xasprintf("%s-lora", f.dir);
    CHECK_OK(td_lora_load(&f.m, lora_dir, &e), &e);
    free(lora_dir);
    f.m.lora.dropout = 0.3; /* before the first forward, which sizes the dropout buffer */
    int32_t ids[10] = {1025, 82, 287, 435, 76, 198, 56, 900, 13, 1026};
    const int T = 10, V = f.m.cfg.vocab_size;
    float *logits = xmalloc((size_t)T * V * sizeof(float)), *r = xmalloc((size_t)T * V * sizeof(float));
    for (long i = 0; i < (long)T * V; i++) r[i] = (float)((i * 7919) % 13) / 13.0f - 0.5f;
    td_lora_dropout_on(&f.m, 7, 3);
    td_zero_grad(&f.m);
    CHECK_OK(td_forward(&f.m, f.tp, ids, T, logits, &e), &e);
    td_backward(&f.m, f.tp, r);
    /* one mask per fused module: the parts' saved x·Aᵀ (lora_u: per layer
     * and target, T_cap × r each) are the same numbers */
    for (int l = 0; l < f.m.cfg.n_layers; l++) {
        const size_t span = (size_t)f.m.T_cap * f.m.lora.r;
        const float *u = f.m.lora_u + (size_t)l * LORA_N_TARGETS * span;
        CHECK(!memcmp(u + LORA_K * span, u + LORA_Q * span, (size_t)T * f.m.lora.r * sizeof(float)));
        CHECK(!memcmp(u + LORA_V * span, u + LORA_Q * span, (size_t)T * f.m.lora.r * sizeof(float)));
        CHECK(!memcmp(u + LORA_UP * span, u + LORA_GATE * span, (size_t)T * f.m.lora.r * sizeof(float)));
    }
    const char *names[2] = {"base_model.model.model.layers.1.self_attn.qkv_proj.lora_A.weight",
                            "base_model.model.model.layers.1.mlp.gate_up_proj.lora_A.weight"};
    double num[2][12], ana[2][12], gmax = 0;
    for (int k = 0; k < 2; k++) {
        const TdTensor *t = td_lora_find(&f.m, names[k]);
        CHECK_MSG(t, "no adapter tensor %s", names[k]);
        for (int j = 0; j < 12; j++) {
            float *a = f.m.lora_params + t->offset + (size_t)j * 11 % t->numel;
            const float keep = *a, h = 1e-2f;
            double l[2];
            for (int sgn = 0; sgn < 2; sgn++) {
                *a = keep + (sgn ? -h : h);
                CHECK_OK(td_forward(&f.m, f.tp, ids, T, logits, &e), &e);
                l[sgn] = 0;
                for (long i = 0; i < (long)T * V; i++) l[sgn] += (double)r[i] * logits[i];
            }
            *a = keep;
            num[k][j] = (l[0] - l[1]) / (2 * h);
            ana[k][j] = f.m.lora_grads[t->offset + (size_t)j * 11 % t->numel];
            gmax = fmax(gmax, fabs(ana[k][j]));
        }
    }
    td_lora_dropout_off(&f.m);
    double worst = 0;
    for (int k = 0; k < 2; k++)
        for (int j = 0; j < 12; j++) worst = fmax(worst, fabs(num[k][j] - ana[k][j]));
    printf("  phi3 fused LoRA with dropout: analytic vs numeric %.2e (max |grad| %.3g)\n", worst, gmax);
    CHECK(gmax > 1e-3);
    CHECK_MSG(worst <= 2e-3 * gmax + 1e-2, "fused LoRA dropout gradient off by %.3g (max %.3g)", worst, gmax);
    free(logits), free(r);
    fixture_free(&f);
}

/* A frozen base (LoRA keeps it in its stored dtype, here float32 in the
 * frozen copy) addresses the fused tensors' row slices there: logits and
 * adapter gradients are those of the float32 block, bit for bit (the same
 * kernels on the same numbers). */
static void test_fused_frozen_base(void) {
    Err e;
    const char *dir = "tests/data/arch/models/tiny-phi3", *lora_dir = "tests/data/arch/models/tiny-phi3-lora";
    ModelConfig cfg;
    TrainDecoder a, b;
    CHECK_OK(hf_config_load(dir, &cfg, &e) || td_init(&a, &cfg, &e) || td_load(&a, dir, &e) ||
                 td_lora_load(&a, lora_dir, &e),
             &e);
    CHECK_OK(td_init(&b, &cfg, &e) || td_freeze_base(&b, DT_F32, &e) || td_load(&b, dir, &e) ||
                 td_lora_load(&b, lora_dir, &e),
             &e);
    int32_t ids[10] = {1025, 82, 287, 435, 76, 198, 56, 900, 13, 1026};
    const int T = 10, V = cfg.vocab_size;
    float *la = xmalloc((size_t)T * V * sizeof(float)), *lb = xmalloc((size_t)T * V * sizeof(float));
    ThreadPool *tp = tp_create(2);
    td_zero_grad(&a), td_zero_grad(&b);
    CHECK_OK(td_forward(&a, tp, ids, T, la, &e) || td_forward(&b, tp, ids, T, lb, &e), &e);
    CHECK(!memcmp(la, lb, (size_t)T * V * sizeof(float)));
    for (long i = 0; i < (long)T * V; i++) la[i] = (float)((i * 7919) % 13) / 13.0f - 0.5f;
    td_backward(&a, tp, la);
    td_backward(&b, tp, la);
    CHECK(a.n_lora_params == b.n_lora_params && !memcmp(a.lora_grads, b.lora_grads, a.n_lora_params * sizeof(float)));
    tp_free(tp);
    free(la), free(lb);
    td_free(&a), td_free(&b);
}

/* aloe merge on each architecture: the merged weights compute what base +
 * adapter computed (W + s·B·A rounded once per weight, then two float32
 * evaluations: LOGIT_TOL of the range, as test_lora's merge check); for
 * Phi-3 each part's rows of B meet the shared A in its rows of the fused
 * tensor. */
static void test_merge(void) {
    for (int i = 0; i < N_ARCHS; i++) {
        Fixture f;
        Err e;
        CHECK_MSG(fixture_open(&f, ARCHS[i], &e) == 0, "%s", e.msg);
        char *lora_dir = xasprintf("%s-lora", f.dir);
        CHECK_OK(td_lora_load(&f.m, lora_dir, &e), &e);
        free(lora_dir);
        int32_t ids[10] = {1025, 82, 287, 435, 76, 198, 56, 900, 13, 1026};
        const int T = 10, V = f.m.cfg.vocab_size;
        float *la = xmalloc((size_t)T * V * sizeof(float)), *lb = xmalloc((size_t)T * V * sizeof(float));
        CHECK_OK(td_forward(&f.m, f.tp, ids, T, la, &e), &e);
        td_lora_merge(&f.m);
        CHECK(!f.m.lora_on);
        CHECK_OK(td_forward(&f.m, f.tp, ids, T, lb, &e), &e);
        double err = range_err(lb, la, (long)T * V);
        printf("  %s merged vs adapter: %.2e of the range\n", ARCHS[i], err);
        CHECK_MSG(err <= LOGIT_TOL, "%s: merged logits off by %.3g of the range", ARCHS[i], err);
        free(la), free(lb);
        fixture_free(&f);
    }
}

/* As a user runs it: aloe train sft (2 steps, a high learning rate) of a
 * tiny model of arch, then aloe logits of the saved checkpoint, which must
 * be what training computes for the saved weights (td_load of the same
 * directory; inference vs training as in check_checkpoint: 2e-5 of the
 * range) and differ from the base's (training moved it). */
static const char *TREES =
    "{\"profile\": \"P\", \"personality\": \"Q\", \"conversations\": ["
    "{\"user\": \"Hi! I just finished my anthropology exam.\", \"assistant\": {\"preferred\": \"Congrats! How did it "
    "go?\", \"rejected\": \"OK.\"}, \"chosen\": \"preferred\"}]}\n";

static void check_cli_sft(const char *arch, const char *extra) {
    char *tmp = test_tmpdir(), *aloe = test_build_path("aloe"), *data = path_join(tmp, "trees.jsonl");
    char *model = xasprintf("tests/data/arch/models/tiny-%s", arch);
    Err e;
    CHECK_OK(file_write_atomic(data, TREES, strlen(TREES), &e), &e);
    int rc = test_system("%s train sft --model %s --data %s --out %s/run --steps 2 --lr 1e-2 --threads 1 --quiet %s "
                         "2>>%s/log", aloe, model, data, tmp, extra, tmp);
    CHECK_MSG(rc == 0, "aloe train sft of %s failed (see %s/log)", arch, tmp);
    static const char *IDS = "1025,82,287,435,76,198,56,900,13,1026";
    rc = test_system("%s logits --model %s/run --ids %s --out %s/run.safetensors -t 1 2>>%s/log", aloe, tmp, IDS, tmp,
                     tmp) ||
         test_system("%s logits --model %s --ids %s --out %s/base.safetensors -t 1 2>>%s/log", aloe, model, IDS, tmp,
                     tmp);
    CHECK_MSG(rc == 0, "aloe logits of the trained %s failed (see %s/log)", arch, tmp);
    /* training's logits of the saved directory */
    char *run = path_join(tmp, "run"), *lp = path_join(tmp, "run.safetensors"), *bp = path_join(tmp, "base.safetensors");
    ModelConfig cfg;
    TrainDecoder td;
    CHECK_OK(hf_config_load(run, &cfg, &e) || td_init(&td, &cfg, &e) || td_load(&td, run, &e), &e);
    int32_t ids[10] = {1025, 82, 287, 435, 76, 198, 56, 900, 13, 1026};
    const int V = td.cfg.vocab_size;
    float *lt = xmalloc(10 * (size_t)V * sizeof(float));
    ThreadPool *tp = tp_create(1);
    CHECK_OK(td_forward(&td, tp, ids, 10, lt, &e), &e);
    SafeTensors *a = st_open(lp, &e), *b = a ? st_open(bp, &e) : NULL;
    CHECK_MSG(a && b, "%s", e.msg);
    const TensorView *x = st_find(a, "logits"), *y = st_find(b, "logits");
    CHECK(x && y && x->nbytes == 10 * (size_t)V * 4 && y->nbytes == x->nbytes);
    double gap = range_err(x->data, lt, 10L * V), moved = range_err(y->data, lt, 10L * V);
    printf("  %s: aloe logits of the trained checkpoint %.2e of the range off training; moved %.2e from the base\n",
           arch, gap, moved);
    CHECK_MSG(gap <= 2e-5, "%s: aloe logits off training by %.3g of the range", arch, gap);
    CHECK_MSG(moved > 1e-3, "%s: training did not change the model (%.3g)", arch, moved);
    st_close(a), st_close(b);
    tp_free(tp);
    td_free(&td);
    free(lt), free(run), free(lp), free(bp), free(tmp), free(aloe), free(data), free(model);
}

static void test_cli_sft_phi3(void) { check_cli_sft("phi3", ""); }
static void test_cli_sft_gemma2(void) { check_cli_sft("gemma2", ""); }

/* Phi-3's fused modules are adapted whole: a target list with q but not
 * k, v is an error naming the module. */
static void test_fused_targets_whole(void) {
    Fixture f;
    Err e;
    CHECK_MSG(fixture_open(&f, "phi3", &e) == 0, "%s", e.msg);
    LoraConfig c = {4, 8, 0, 1u << LORA_Q | 1u << LORA_O, 0};
    CHECK(td_lora_attach(&f.m, &c, &e) == -1);
    CHECK(strstr(e.msg, "qkv_proj") != NULL);
    unsigned t;
    CHECK_OK(lora_targets_parse("qkv_proj,gate_up_proj", &t, &e), &e);
    CHECK_EQ_INT((int)t, (int)(1u << LORA_Q | 1u << LORA_K | 1u << LORA_V | 1u << LORA_GATE | 1u << LORA_UP));
    fixture_free(&f);
}

int main(void) {
    RUN(test_forward_sft);
    RUN(test_dpo);
    RUN(test_lora);
    RUN(test_adamw);
    RUN(test_packed);
    RUN(test_dpo_trainer);
    RUN(test_dpo_lora_trainer);
    RUN(test_softcap_head_blocks);
    RUN(test_fused_lora_dropout);
    RUN(test_fused_frozen_base);
    RUN(test_merge);
    RUN(test_checkpoint);
    RUN(test_fused_targets_whole);
    RUN(test_cli_sft_phi3);
    RUN(test_cli_sft_gemma2);
    return test_summary();
}
