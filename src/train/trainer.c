#include "train/trainer.h"

#include <jansson.h>
#include <stdlib.h>
#include <string.h>

/* The token cross-entropy of a block of logits, forward and backward, on
 * the policy's backend (kernels/backend.h's nll_sum). */
static double nll_fwd(TrainDecoder *m, ThreadPool *tp, const float *logits, const int32_t *labels, int T, int V) {
    Backend *be = td_backend(m, tp);
    return be->nll_sum(be, logits, labels, T, V, NULL);
}
static void nll_bwd(TrainDecoder *m, ThreadPool *tp, float *dlogits, const float *logits, const int32_t *labels,
                    int T, int V, float scale) {
    Backend *be = td_backend(m, tp);
    be->nll_sum_backward(be, dlogits, logits, labels, T, V, scale);
}

int trainer_init(Trainer *t, TrainDecoder *policy, ThreadPool *tp, const TrainerConfig *cfg, Err *e) {
    memset(t, 0, sizeof *t);
    if (cfg->schedule.lr < 0) return err_set(e, ERR_ARG, "learning rate must be >= 0, got %g", cfg->schedule.lr);
    if (dpo_config_check(&cfg->dpo, e)) return -1;
    if (policy->frozen && !policy->lora_on)
        return err_set(e, ERR_ARG, "training: the base is frozen in %s (td_freeze_base): attach LoRA adapters, or load "
                       "it unfrozen for full fine-tuning", dtype_name(policy->frozen_dtype));
    t->cfg = *cfg;
    t->policy = policy;
    t->tp = tp;
    const TdTensor *tensors = policy->lora_on ? policy->lora_tensors : policy->tensors;
    t->n_spans = policy->lora_on ? policy->n_lora_tensors : policy->n_tensors;
    t->params = policy->lora_on ? policy->lora_params : policy->params;
    t->grads = policy->lora_on ? policy->lora_grads : policy->grads;
    t->n = policy->lora_on ? policy->n_lora_params : policy->n_params;
    t->spans = xcalloc((size_t)t->n_spans, sizeof *t->spans);
    for (int i = 0; i < t->n_spans; i++)
        t->spans[i] = (ParamSpan){tensors[i].offset, tensors[i].numel,
                                  cfg->decay == TRAIN_DECAY_ALL || optim_hf_decays(tensors[i].name)};
    if (adamw_init(&t->opt, &cfg->adamw, t->n, e)) {
        free(t->spans);
        return -1;
    }
    return 0;
}

void trainer_free(Trainer *t) {
    adamw_free(&t->opt);
    free(t->spans);
    free(t->logits);
    memset(t, 0, sizeof *t);
}

/* LoRA dropout (when configured) for the forward of example i of this
 * step: a function of (seed, step, i), so a resumed run draws the same masks. */
static void dropout_for(Trainer *t, int i) {
    td_lora_dropout_on(t->policy, t->cfg.seed, ((uint64_t)t->step << 32) + (uint64_t)i);
}

static float *logits_for(Trainer *t, int T) {
    size_t need = (size_t)T * t->policy->cfg.vocab_size;
    if (need > t->logits_cap) {
        free(t->logits);
        t->logits = xaligned_alloc(need * sizeof(float));
        t->logits_cap = need;
    }
    return t->logits;
}

/* ---- SFT ---- */

/* Rows of logits a step holds at once (× vocab floats: 78 MB for Qwen2.5's
 * 151936) instead of the whole sequence's. */
enum { HEAD_ROWS = 128 };

int trainer_sft_accumulate(Trainer *t, const SftTokens *ex, int n, StepStats *st, Err *e) {
    memset(st, 0, sizeof *st);
    const int V = t->policy->cfg.vocab_size;
    int32_t **labels = xcalloc((size_t)(n ? n : 1), sizeof *labels);
    long total = 0;
    int rc = 0;
    for (int i = 0; i < n; i++) {
        labels[i] = xmalloc((size_t)(ex[i].n ? ex[i].n : 1) * sizeof **labels);
        loss_shift_labels(ex[i].ids, ex[i].is_target, ex[i].n, labels[i]);
        for (int k = 0; k < ex[i].n; k++) total += labels[i][k] != LOSS_IGNORE;
    }
    if (total == 0) rc = err_set(e, ERR_ARG, "SFT batch of %d examples has no target tokens", n);
    /* Normalised by the target tokens of the whole step, like the HF Trainer
     * with gradient accumulation, so each token weighs the same. */
    for (int i = 0; i < n && !rc; i++) {
        const int T = ex[i].n;
        float *logits = logits_for(t, T < HEAD_ROWS ? T : HEAD_ROWS);
        dropout_for(t, i);
        if (td_forward_hidden(t->policy, t->tp, ex[i].ids, NULL, T, e)) {
            rc = err_wrap(e, "SFT example %d", i);
            break;
        }
        /* The head and the loss a block of rows at a time: logits, loss,
         * their gradient in place, then the head's backward for the block. */
        for (int t0 = 0; t0 < T; t0 += HEAD_ROWS) {
            const int t1 = t0 + HEAD_ROWS < T ? t0 + HEAD_ROWS : T;
            td_head_forward(t->policy, t->tp, t0, t1, logits);
            st->loss += nll_fwd(t->policy, t->tp, logits, labels[i] + t0, t1 - t0, V) / (double)total;
            nll_bwd(t->policy, t->tp, logits, logits, labels[i] + t0, t1 - t0, V, (float)(1.0 / total));
            td_head_backward(t->policy, t->tp, t0, t1, logits);
        }
        td_backward_hidden(t->policy, t->tp);
        st->tokens += T;
    }
    td_lora_dropout_off(t->policy);
    st->n_targets = total;
    for (int i = 0; i < n; i++) free(labels[i]);
    free(labels);
    return rc;
}

/* ---- DPO ---- */

/* Chosen and rejected packed as two sequences: ids, segment starts and
 * labels over the completions. Checks the shared prompt. */
static int pack_pair(const DpoTokens *p, int i, int32_t *ids, int *seg, int32_t *labels, Err *e) {
    if (p->n_prompt < 1 || p->n_prompt >= p->n_chosen || p->n_prompt >= p->n_rejected)
        return err_set(e, ERR_ARG, "DPO pair %d: prompt of %d tokens must be non-empty and shorter than chosen (%d) "
                       "and rejected (%d)", i, p->n_prompt, p->n_chosen, p->n_rejected);
    if (memcmp(p->chosen, p->rejected, (size_t)p->n_prompt * sizeof *p->chosen))
        return err_set(e, ERR_ARG, "DPO pair %d: chosen and rejected do not start with the same %d prompt tokens", i,
                       p->n_prompt);
    const int Tc = p->n_chosen, Tr = p->n_rejected;
    memcpy(ids, p->chosen, (size_t)Tc * sizeof *ids);
    memcpy(ids + Tc, p->rejected, (size_t)Tr * sizeof *ids);
    int lens[2] = {Tc, Tr};
    td_pack_segments(lens, 2, seg);
    uint8_t *target = xmalloc((size_t)(Tc + Tr));
    for (int k = 0; k < Tc + Tr; k++) target[k] = (k < Tc ? k : k - Tc) >= p->n_prompt;
    loss_shift_labels(ids, target, Tc, labels);
    loss_shift_labels(ids + Tc, target + Tc, Tr, labels + Tc);
    free(target);
    return 0;
}

/* The rows [t0, t1) of a block split at Tc into the chosen part [t0, c1)
 * and the rejected part [c1, t1). */
static int chosen_end(int t0, int t1, int Tc) { return t1 < Tc ? t1 : t0 > Tc ? t0 : Tc; }

/* Forward of one packed pair through m; completion log-probs (of the
 * labels) into lp[2]. The head runs HEAD_ROWS rows at a time into logits
 * (HEAD_ROWS × vocab floats), so the pair's logits never exist whole: the
 * loss needs only each row's log-softmax at its label. With head_grad set
 * (a head that does not train), each block's gradient of -log p also goes
 * through the head's backward at once, unscaled: pair_backward scales it
 * once the loss's factors are known. */
static int pair_forward(TrainDecoder *m, ThreadPool *tp, const DpoTokens *p, int i, float *logits, int32_t *ids,
                        int *seg, int32_t *labels, int head_grad, double lp[2], Err *e) {
    const int V = m->cfg.vocab_size, Tc = p->n_chosen, T = p->n_chosen + p->n_rejected;
    if (pack_pair(p, i, ids, seg, labels, e) || td_forward_hidden(m, tp, ids, seg, T, e)) return -1;
    lp[0] = lp[1] = 0;
    for (int t0 = 0; t0 < T; t0 += HEAD_ROWS) {
        const int t1 = t0 + HEAD_ROWS < T ? t0 + HEAD_ROWS : T, c1 = chosen_end(t0, t1, Tc);
        td_head_forward(m, tp, t0, t1, logits);
        if (c1 > t0) lp[0] -= nll_fwd(m, tp, logits, labels + t0, c1 - t0, V);
        if (t1 > c1)
            lp[1] -= nll_fwd(m, tp, logits + (size_t)(c1 - t0) * V, labels + c1, t1 - c1, V);
        if (head_grad) {
            nll_bwd(m, tp, logits, logits, labels + t0, t1 - t0, V, 1.0f);
            td_head_backward(m, tp, t0, t1, logits);
        }
    }
    return 0;
}

/* The backward of a pair after pair_forward, given d loss / d lp. A head
 * that does not train already has each row's gradient of -log p: scale it
 * (lp = -nll, so the factor is -d loss / d lp). A head that trains needs
 * the factors inside its weight gradient: it runs again a block at a time
 * (recomputing the logits), each row's gradient scaled by its sequence's
 * factor. Then the rest of the model. */
static void pair_backward(TrainDecoder *m, ThreadPool *tp, const DpoTokens *p, const int32_t *labels, float *logits,
                          double d_chosen, double d_rejected) {
    const int V = m->cfg.vocab_size, Tc = p->n_chosen, T = p->n_chosen + p->n_rejected;
    if (!td_head_trains(m)) {
        td_scale_head_grad(m, 0, Tc, (float)-d_chosen);
        td_scale_head_grad(m, Tc, T, (float)-d_rejected);
        td_backward_hidden(m, tp);
        return;
    }
    for (int t0 = 0; t0 < T; t0 += HEAD_ROWS) {
        const int t1 = t0 + HEAD_ROWS < T ? t0 + HEAD_ROWS : T, c1 = chosen_end(t0, t1, Tc);
        td_head_forward(m, tp, t0, t1, logits);
        /* lp = -nll, so d loss / d nll = -d loss / d lp */
        if (c1 > t0) nll_bwd(m, tp, logits, logits, labels + t0, c1 - t0, V, (float)-d_chosen);
        if (t1 > c1) {
            float *lr = logits + (size_t)(c1 - t0) * V;
            nll_bwd(m, tp, lr, lr, labels + c1, t1 - c1, V, (float)-d_rejected);
        }
        td_head_backward(m, tp, t0, t1, logits);
    }
    td_backward_hidden(m, tp);
}

static int max_pair_len(const DpoTokens *pairs, int n) {
    int mx = 1;
    for (int i = 0; i < n; i++)
        if (pairs[i].n_chosen + pairs[i].n_rejected > mx) mx = pairs[i].n_chosen + pairs[i].n_rejected;
    return mx;
}

int trainer_ref_logps(TrainDecoder *m, ThreadPool *tp, const DpoTokens *pairs, int n, double *out, Err *e) {
    int T = max_pair_len(pairs, n);
    int32_t *ids = xmalloc((size_t)T * sizeof *ids), *labels = xmalloc((size_t)T * sizeof *labels);
    int *seg = xmalloc((size_t)T * sizeof *seg);
    float *logits = xaligned_alloc((size_t)(T < HEAD_ROWS ? T : HEAD_ROWS) * m->cfg.vocab_size * sizeof(float));
    int rc = 0;
    for (int i = 0; i < n && !rc; i++)
        rc = pair_forward(m, tp, &pairs[i], i, logits, ids, seg, labels, 0, out + 2 * i, e);
    free(ids), free(labels), free(seg), free(logits);
    return rc;
}

int trainer_dpo_accumulate(Trainer *t, const DpoTokens *pairs, int n, const double *ref_logps, StepStats *st,
                           Err *e) {
    memset(st, 0, sizeof *st);
    st->is_dpo = 1;
    if (n <= 0) return err_set(e, ERR_ARG, "DPO batch is empty");
    const int T = max_pair_len(pairs, n);
    long chosen_tokens = 0;
    for (int i = 0; i < n; i++) chosen_tokens += pairs[i].n_chosen - pairs[i].n_prompt;
    int32_t *ids = xmalloc((size_t)T * sizeof *ids), *labels = xmalloc((size_t)T * sizeof *labels);
    int *seg = xmalloc((size_t)T * sizeof *seg);
    DpoPair *dp = xcalloc((size_t)n, sizeof *dp);
    int rc = 0;
    /* A pair's loss depends only on its own log-probs (the batch mean scales
     * it by 1/n; the NLL term by 1/chosen_tokens, both known up front), so
     * each pair's backward runs right after its forward. */
    for (int i = 0; i < n && !rc; i++) {
        const DpoTokens *p = &pairs[i];
        const int Tc = p->n_chosen, Tr = p->n_rejected;
        float *logits = logits_for(t, Tc + Tr < HEAD_ROWS ? Tc + Tr : HEAD_ROWS);
        double lp[2];
        dropout_for(t, i);
        if (pair_forward(t->policy, t->tp, p, i, logits, ids, seg, labels, !td_head_trains(t->policy), lp, e)) {
            rc = -1;
            break;
        }
        dp[i] = (DpoPair){lp[0], lp[1], ref_logps[2 * i], ref_logps[2 * i + 1], Tc - p->n_prompt, Tr - p->n_prompt};
        double dc, dr;
        dpo_pair_backward(&t->cfg.dpo, &dp[i], 1.0 / n, &dc, &dr);
        if (t->cfg.dpo.nll_alpha > 0) dc -= t->cfg.dpo.nll_alpha / (double)chosen_tokens;
        pair_backward(t->policy, t->tp, p, labels, logits, dc, dr);
        st->tokens += Tc + Tr;
    }
    td_lora_dropout_off(t->policy);
    if (!rc) {
        DpoPairOut *outs = xcalloc((size_t)n, sizeof *outs);
        st->loss = dpo_batch(&t->cfg.dpo, dp, n, outs, &st->dpo, NULL, NULL);
        free(outs);
    }
    free(ids), free(labels), free(seg), free(dp);
    return rc;
}

/* ---- the update ---- */

void trainer_apply(Trainer *t, StepStats *st) {
    st->grad_norm = grad_clip_global_norm_tp(t->tp, t->grads, t->n, t->cfg.max_grad_norm);
    st->learning_rate = lr_at(&t->cfg.schedule, t->step);
    adamw_step_tp(&t->opt, t->tp, t->params, t->grads, t->spans, t->n_spans, st->learning_rate);
    t->step++;
    /* Only the trainable block has gradients (a frozen base stays zero). */
    grad_zero_tp(t->tp, t->grads, t->n);
}

void trainer_metrics_line(const StepStats *st, long step, double epoch, double tokens_per_second, StrBuf *out) {
    json_t *o = json_object();
    json_object_set_new(o, "step", json_integer(step));
    json_object_set_new(o, "epoch", json_real(epoch));
    json_object_set_new(o, "loss", json_real(st->loss));
    json_object_set_new(o, "learning_rate", json_real(st->learning_rate));
    json_object_set_new(o, "grad_norm", json_real(st->grad_norm));
    if (st->is_dpo) {
        const DpoStats *d = &st->dpo;
        json_object_set_new(o, "rewards/chosen", json_real(d->rewards_chosen));
        json_object_set_new(o, "rewards/rejected", json_real(d->rewards_rejected));
        json_object_set_new(o, "rewards/margins", json_real(d->rewards_margins));
        json_object_set_new(o, "rewards/accuracies", json_real(d->rewards_accuracies));
        json_object_set_new(o, "logps/chosen", json_real(d->logps_chosen));
        json_object_set_new(o, "logps/rejected", json_real(d->logps_rejected));
    }
    json_object_set_new(o, "num_tokens", json_integer(st->tokens));
    if (tokens_per_second > 0) json_object_set_new(o, "tokens_per_second", json_real(tokens_per_second));
    char *s = json_dumps(o, JSON_COMPACT | JSON_PRESERVE_ORDER | JSON_REAL_PRECISION(8));
    sb_append(out, s);
    free(s);
    json_decref(o);
}
