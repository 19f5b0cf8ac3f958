/* loss: token cross-entropy, sequence log-probabilities and the DPO family,
 * each forward with its backward beside it (llm.c style).
 *
 * Labels and the next-token shift. Every function here takes logits [T, V]
 * (row t = the model's output at position t) and labels [T] where labels[t]
 * is the token that row t should predict, or LOSS_IGNORE. The shift is the
 * CALLER's: for input ids x[0..T) whose target tokens are marked, labels[t] =
 * x[t+1] when token t+1 is a target, else LOSS_IGNORE, and the last row is
 * always ignored; loss_shift_labels() does exactly that. (Hugging Face models
 * shift inside the loss; here the data is shifted once, outside.)
 *
 * Backward functions OVERWRITE dlogits (they are the first gradient of the
 * chain, nothing to accumulate into) and may be called with dlogits ==
 * logits, to save a T x V buffer for real vocabularies. */
#ifndef ALOE_TRAIN_LOSS_H
#define ALOE_TRAIN_LOSS_H

#include <stdint.h>

#include "base/err.h"
#include "kernels/backend.h"

#define LOSS_IGNORE BACKEND_LABEL_IGNORE

/* labels[t] = ids[t+1] if is_target[t+1] (is_target NULL: every token is a
 * target), else LOSS_IGNORE; labels[T-1] = LOSS_IGNORE. */
void loss_shift_labels(const int32_t *ids, const uint8_t *is_target, int T, int32_t *labels);

/* Sum over non-ignored rows of -log softmax(logits[t])[labels[t]] (each row's
 * log-sum-exp in double). *n_valid (may be NULL) gets the number of rows
 * counted. Labels must be in [0, V) or LOSS_IGNORE (checked by the caller:
 * see loss_check_labels). */
double token_nll_sum_forward(const float *logits, const int32_t *labels, int T, int V, int *n_valid);
/* d(scale * nll_sum)/dlogits: scale * (softmax - onehot) on counted rows,
 * 0 on ignored rows. */
void token_nll_sum_backward(float *dlogits, const float *logits, const int32_t *labels, int T, int V,
                            float scale);
/* Errors (naming the position) on a label outside [0, V) that is not ignored. */
int loss_check_labels(const int32_t *labels, int T, int V, Err *e);

/* Masked mean cross-entropy (the SFT loss). 0 when no row is counted. */
float xent_forward(const float *logits, const int32_t *labels, int T, int V, int *n_valid);
/* Gradient of dloss * mean; n_valid as returned by the forward. */
void xent_backward(float *dlogits, const float *logits, const int32_t *labels, int T, int V,
                   int n_valid, float dloss);

/* Sum of log-probabilities of the labelled tokens (DPO's per-sequence logp:
 * label only the completion). */
double seq_logprob_forward(const float *logits, const int32_t *labels, int T, int V, int *n_tokens);
/* Gradient of dlogp * logp: dlogp * (onehot - softmax) on labelled rows. */
void seq_logprob_backward(float *dlogits, const float *logits, const int32_t *labels, int T, int V,
                          float dlogp);

/* DPO, with TRL's definitions. With z = beta * ((pc - pr) - (rc - rr)) and
 * ls the label smoothing:
 *   sigmoid: -(1-ls) logsig(z) - ls logsig(-z)    (ls > 0: conservative DPO)
 *   robust:  (-(1-ls) logsig(z) + ls logsig(-z)) / (1 - 2 ls)
 *   hinge:   relu(1 - z)
 *   ipo:     (h - 1/(2 beta))^2, h = (pc - pr) - (rc - rr), where TRL first
 *            divides every log-prob by its completion's token count.
 * rewards = beta * (policy - ref) (for ipo, of the length-averaged logps). */
typedef enum { DPO_SIGMOID, DPO_ROBUST, DPO_IPO, DPO_HINGE } DpoLossKind;

typedef struct DpoConfig {
    DpoLossKind kind;
    double beta;            /* > 0; TRL default 0.1, the paper 0.9 */
    double label_smoothing; /* [0, 0.5); sigmoid and robust only */
    double nll_alpha;       /* > 0 adds alpha * (token-mean NLL of the chosen replies), TRL's rpo_alpha */
} DpoConfig;

int dpo_config_check(const DpoConfig *c, Err *e);
int dpo_kind_parse(const char *name, DpoLossKind *out, Err *e);
const char *dpo_kind_name(DpoLossKind k);

/* One preference pair: summed completion log-probs and completion lengths. */
typedef struct DpoPair {
    double policy_chosen, policy_rejected, ref_chosen, ref_rejected;
    int n_chosen, n_rejected; /* tokens summed (used by ipo and the NLL term) */
} DpoPair;

typedef struct DpoPairOut {
    double loss; /* this pair's preference loss (no NLL term) */
    double reward_chosen, reward_rejected;
} DpoPairOut;

/* Forward for one pair. */
void dpo_pair_forward(const DpoConfig *c, const DpoPair *p, DpoPairOut *out);
/* d(dloss * pair loss)/d(policy_chosen, policy_rejected). */
void dpo_pair_backward(const DpoConfig *c, const DpoPair *p, double dloss, double *d_chosen,
                       double *d_rejected);

/* Batch metrics with TRL's names (means over the pairs). */
typedef struct DpoStats {
    double loss;              /* mean pair loss + alpha * nll */
    double nll;               /* token-mean NLL of the chosen replies (always reported) */
    double rewards_chosen, rewards_rejected, rewards_margins, rewards_accuracies;
    double logps_chosen, logps_rejected;
} DpoStats;

/* Mean loss over n pairs (plus the NLL term), its metrics, and the gradient
 * of that loss w.r.t. each pair's policy log-probs (d_chosen[i],
 * d_rejected[i]; either may be NULL to skip gradients). Returns st->loss. */
double dpo_batch(const DpoConfig *c, const DpoPair *pairs, int n, DpoPairOut *outs, DpoStats *st,
                 double *d_chosen, double *d_rejected);

#endif
