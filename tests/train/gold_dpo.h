/* gold_dpo: the gold checks the decoder and per-architecture training
 * tests share: every gradient against expected.safetensors, and the whole
 * dpo section (log-probs, loss, gradients). The including test defines
 * GRAD_TOL, its derived gradient tolerance, first. */
#ifndef ALOE_TESTS_TRAIN_GOLD_DPO_H
#define ALOE_TESTS_TRAIN_GOLD_DPO_H

#ifndef GRAD_TOL
#error "define GRAD_TOL (the test's derived gradient tolerance) before including gold_dpo.h"
#endif

#include "train/gold_fixture.h"
#include "train/loss.h"

/* check_grads_tol within the float32 training tests' GRAD_TOL. */
static inline int check_grads(Fixture *f, const char *prefix, int lora, const char *arch, Err *e) {
    return check_grads_tol(f, prefix, lora, arch, GRAD_TOL, e);
}

/* The dpo section: policy = the model, reference = tiny-<arch>-ref beside
 * it. Checks the four log-probs of each pair (1e-5 relative), the mean
 * sigmoid loss (1e-5 relative), and the gradient of that loss for every
 * parameter (GRAD_TOL). */
static inline int gold_check_dpo(Fixture *f, const char *arch, Err *e) {
    TrainDecoder ref;
    char *ref_dir = xasprintf("%s-ref", f->dir);
    int rc = td_init(&ref, &f->m.cfg, e) || td_load(&ref, ref_dir, e) ? -1 : 0;
    free(ref_dir);
    json_t *dpo = json_object_get(f->root, "dpo"), *jp = json_object_get(dpo, "pairs");
    DpoConfig cfg = {DPO_SIGMOID, json_number_value(json_object_get(dpo, "beta")), 0, 0};
    int n = (int)json_array_size(jp);
    DpoPair *pairs = xcalloc((size_t)n, sizeof *pairs);
    const int V = f->m.cfg.vocab_size;
    for (int i = 0; i < n && !rc; i++) {
        json_t *p = json_array_get(jp, i);
        int np, T[2];
        int32_t *prompt = json_ids(json_object_get(p, "prompt_ids"), &np);
        int32_t *seq[2] = {json_ids(json_object_get(p, "chosen_ids"), &T[0]),
                           json_ids(json_object_get(p, "rejected_ids"), &T[1])};
        double lp[4];
        int cnt[4];
        for (int s = 0; s < 2 && !rc; s++) {
            float *logits = xmalloc((size_t)T[s] * V * sizeof(float));
            int32_t *labels = xmalloc((size_t)T[s] * sizeof *labels);
            rc = completion_logp(&f->m, f->tp, seq[s], T[s], np, logits, labels, &lp[s], &cnt[s], e) ||
                 completion_logp(&ref, f->tp, seq[s], T[s], np, logits, labels, &lp[2 + s], &cnt[2 + s], e);
            free(logits), free(labels);
        }
        static const char *keys[4] = {"policy_chosen_logp", "policy_rejected_logp", "ref_chosen_logp",
                                      "ref_rejected_logp"};
        for (int k = 0; k < 4 && !rc; k++) {
            double want = json_number_value(json_object_get(p, keys[k]));
            if (fabs(lp[k] - want) > 1e-5 * fabs(want))
                rc = err_set(e, ERR_INTERNAL, "%s pair %d %s: %.9g vs %.9g", arch, i, keys[k], lp[k], want);
        }
        pairs[i] = (DpoPair){lp[0], lp[1], lp[2], lp[3], cnt[0], cnt[1]};
        free(prompt), free(seq[0]), free(seq[1]);
    }
    DpoPairOut *outs = xcalloc((size_t)n, sizeof *outs);
    double *dc = xcalloc((size_t)n, sizeof *dc), *dr = xcalloc((size_t)n, sizeof *dr);
    DpoStats st;
    double loss = dpo_batch(&cfg, pairs, n, outs, &st, dc, dr);
    double want_loss = json_number_value(json_object_get(dpo, "mean_loss"));
    if (!rc && fabs(loss - want_loss) > 1e-5 * want_loss)
        rc = err_set(e, ERR_INTERNAL, "%s: mean DPO loss %.9g vs %.9g", arch, loss, want_loss);
    td_zero_grad(&f->m);
    for (int i = 0; i < n && !rc; i++) {
        json_t *p = json_array_get(jp, i);
        int np, T;
        int32_t *prompt = json_ids(json_object_get(p, "prompt_ids"), &np);
        for (int s = 0; s < 2 && !rc; s++) {
            int32_t *ids = json_ids(json_object_get(p, s ? "rejected_ids" : "chosen_ids"), &T);
            float *logits = xmalloc((size_t)T * V * sizeof(float));
            int32_t *labels = xmalloc((size_t)T * sizeof *labels);
            double lp;
            int cnt;
            rc = completion_logp(&f->m, f->tp, ids, T, np, logits, labels, &lp, &cnt, e);
            if (!rc) {
                seq_logprob_backward(logits, logits, labels, T, V, (float)(s ? dr[i] : dc[i]));
                td_backward(&f->m, f->tp, logits);
            }
            free(ids), free(logits), free(labels);
        }
        free(prompt);
    }
    if (!rc) rc = check_grads(f, "dpo.grad.", 0, arch, e);
    free(pairs), free(outs), free(dc), free(dr);
    td_free(&ref);
    return rc;
}

#endif
