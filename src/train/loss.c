#include "train/loss.h"

#include <math.h>
#include <string.h>

void loss_shift_labels(const int32_t *ids, const uint8_t *is_target, int T, int32_t *labels) {
    for (int t = 0; t + 1 < T; t++)
        labels[t] = (!is_target || is_target[t + 1]) ? ids[t + 1] : LOSS_IGNORE;
    if (T > 0) labels[T - 1] = LOSS_IGNORE;
}

int loss_check_labels(const int32_t *labels, int T, int V, Err *e) {
    for (int t = 0; t < T; t++)
        if (labels[t] != LOSS_IGNORE && (labels[t] < 0 || labels[t] >= V))
            return err_set(e, ERR_ARG, "label at position %d is %d: expected a token id in [0, %d) or %d",
                           t, labels[t], V, LOSS_IGNORE);
    return 0;
}

/* max and sum(exp(x - max)) of one row: log-sum-exp = max + log(sum). */
static void row_max_sumexp(const float *x, int V, float *max, double *sum) {
    float m = x[0];
    for (int v = 1; v < V; v++)
        if (x[v] > m) m = x[v];
    double s = 0;
    for (int v = 0; v < V; v++) s += expf(x[v] - m);
    *max = m;
    *sum = s;
}

double token_nll_sum_forward(const float *logits, const int32_t *labels, int T, int V, int *n_valid) {
    double total = 0;
    int n = 0;
    for (int t = 0; t < T; t++) {
        if (labels[t] == LOSS_IGNORE) continue;
        const float *x = logits + (size_t)t * V;
        float m;
        double s;
        row_max_sumexp(x, V, &m, &s);
        total += (double)m + log(s) - (double)x[labels[t]];
        n++;
    }
    if (n_valid) *n_valid = n;
    return total;
}

void token_nll_sum_backward(float *dlogits, const float *logits, const int32_t *labels, int T, int V,
                            float scale) {
    for (int t = 0; t < T; t++) {
        const float *x = logits + (size_t)t * V;
        float *d = dlogits + (size_t)t * V;
        if (labels[t] == LOSS_IGNORE) {
            memset(d, 0, (size_t)V * sizeof *d);
            continue;
        }
        float m;
        double s;
        row_max_sumexp(x, V, &m, &s);
        float inv = (float)(1.0 / s);
        for (int v = 0; v < V; v++) d[v] = scale * (expf(x[v] - m) * inv);
        d[labels[t]] -= scale;
    }
}

float xent_forward(const float *logits, const int32_t *labels, int T, int V, int *n_valid) {
    int n;
    double s = token_nll_sum_forward(logits, labels, T, V, &n);
    if (n_valid) *n_valid = n;
    return n ? (float)(s / n) : 0.0f;
}

void xent_backward(float *dlogits, const float *logits, const int32_t *labels, int T, int V,
                   int n_valid, float dloss) {
    token_nll_sum_backward(dlogits, logits, labels, T, V, n_valid ? dloss / (float)n_valid : 0.0f);
}

double seq_logprob_forward(const float *logits, const int32_t *labels, int T, int V, int *n_tokens) {
    return -token_nll_sum_forward(logits, labels, T, V, n_tokens);
}

void seq_logprob_backward(float *dlogits, const float *logits, const int32_t *labels, int T, int V,
                          float dlogp) {
    token_nll_sum_backward(dlogits, logits, labels, T, V, -dlogp);
}

/* ---- DPO ---- */

static double log_sigmoid(double x) { return x >= 0 ? -log1p(exp(-x)) : x - log1p(exp(x)); }
static double sigmoid(double x) { return x >= 0 ? 1 / (1 + exp(-x)) : exp(x) / (1 + exp(x)); }

int dpo_config_check(const DpoConfig *c, Err *e) {
    if (!(c->beta > 0)) return err_set(e, ERR_ARG, "DPO beta must be > 0, got %g", c->beta);
    if (!(c->label_smoothing >= 0 && c->label_smoothing < 0.5))
        return err_set(e, ERR_ARG, "DPO label smoothing must be in [0, 0.5), got %g",
                       c->label_smoothing);
    if (c->label_smoothing > 0 && (c->kind == DPO_IPO || c->kind == DPO_HINGE))
        return err_set(e, ERR_ARG, "DPO label smoothing applies to the sigmoid and robust losses, not %s",
                       dpo_kind_name(c->kind));
    if (!(c->nll_alpha >= 0)) return err_set(e, ERR_ARG, "DPO NLL weight must be >= 0, got %g", c->nll_alpha);
    return 0;
}

int dpo_kind_parse(const char *name, DpoLossKind *out, Err *e) {
    for (int k = DPO_SIGMOID; k <= DPO_HINGE; k++)
        if (!strcmp(name, dpo_kind_name((DpoLossKind)k))) {
            *out = (DpoLossKind)k;
            return 0;
        }
    return err_set(e, ERR_ARG, "DPO loss: expected sigmoid, robust, ipo or hinge, got \"%s\"", name);
}

const char *dpo_kind_name(DpoLossKind k) {
    switch (k) {
    case DPO_SIGMOID: return "sigmoid";
    case DPO_ROBUST: return "robust";
    case DPO_IPO: return "ipo";
    case DPO_HINGE: return "hinge";
    }
    return "?";
}

/* ipo works on length-averaged log-probs (TRL divides in its forward). */
static double len_scale(const DpoConfig *c, int n) { return c->kind == DPO_IPO ? 1.0 / (n > 0 ? n : 1) : 1.0; }

/* h = (pc - pr) - (rc - rr), on the (possibly averaged) log-probs. */
static double dpo_margin(const DpoConfig *c, const DpoPair *p) {
    double sc = len_scale(c, p->n_chosen), sr = len_scale(c, p->n_rejected);
    return (p->policy_chosen * sc - p->policy_rejected * sr) - (p->ref_chosen * sc - p->ref_rejected * sr);
}

void dpo_pair_forward(const DpoConfig *c, const DpoPair *p, DpoPairOut *out) {
    double h = dpo_margin(c, p), z = c->beta * h, ls = c->label_smoothing;
    switch (c->kind) {
    case DPO_SIGMOID: out->loss = -(1 - ls) * log_sigmoid(z) - ls * log_sigmoid(-z); break;
    case DPO_ROBUST: out->loss = (-(1 - ls) * log_sigmoid(z) + ls * log_sigmoid(-z)) / (1 - 2 * ls); break;
    case DPO_HINGE: out->loss = z < 1 ? 1 - z : 0; break;
    case DPO_IPO: out->loss = (h - 1 / (2 * c->beta)) * (h - 1 / (2 * c->beta)); break;
    }
    double sc = len_scale(c, p->n_chosen), sr = len_scale(c, p->n_rejected);
    out->reward_chosen = c->beta * (p->policy_chosen - p->ref_chosen) * sc;
    out->reward_rejected = c->beta * (p->policy_rejected - p->ref_rejected) * sr;
}

void dpo_pair_backward(const DpoConfig *c, const DpoPair *p, double dloss, double *d_chosen,
                       double *d_rejected) {
    double h = dpo_margin(c, p), z = c->beta * h, ls = c->label_smoothing;
    double dh = 0; /* d loss / d h */
    switch (c->kind) {
    case DPO_SIGMOID: dh = c->beta * (-(1 - ls) * sigmoid(-z) + ls * sigmoid(z)); break;
    case DPO_ROBUST: dh = c->beta * (-(1 - ls) * sigmoid(-z) - ls * sigmoid(z)) / (1 - 2 * ls); break;
    case DPO_HINGE: dh = z < 1 ? -c->beta : 0; break;
    case DPO_IPO: dh = 2 * (h - 1 / (2 * c->beta)); break;
    }
    *d_chosen = dloss * dh * len_scale(c, p->n_chosen);
    *d_rejected = -dloss * dh * len_scale(c, p->n_rejected);
}

double dpo_batch(const DpoConfig *c, const DpoPair *pairs, int n, DpoPairOut *outs, DpoStats *st,
                 double *d_chosen, double *d_rejected) {
    memset(st, 0, sizeof *st);
    if (n <= 0) return 0;
    long chosen_tokens = 0;
    double chosen_logp_sum = 0;
    for (int i = 0; i < n; i++) {
        dpo_pair_forward(c, &pairs[i], &outs[i]);
        st->loss += outs[i].loss / n;
        st->rewards_chosen += outs[i].reward_chosen / n;
        st->rewards_rejected += outs[i].reward_rejected / n;
        st->rewards_accuracies += (outs[i].reward_chosen > outs[i].reward_rejected) / (double)n;
        st->logps_chosen += pairs[i].policy_chosen / n;
        st->logps_rejected += pairs[i].policy_rejected / n;
        chosen_tokens += pairs[i].n_chosen;
        chosen_logp_sum += pairs[i].policy_chosen;
    }
    st->rewards_margins = st->rewards_chosen - st->rewards_rejected;
    /* The NLL term is a token mean over the whole batch, as TRL's rpo_alpha. */
    st->nll = chosen_tokens ? -chosen_logp_sum / chosen_tokens : 0;
    st->loss += c->nll_alpha * st->nll;
    if (d_chosen && d_rejected)
        for (int i = 0; i < n; i++) {
            dpo_pair_backward(c, &pairs[i], 1.0 / n, &d_chosen[i], &d_rejected[i]);
            if (c->nll_alpha > 0 && chosen_tokens) d_chosen[i] -= c->nll_alpha / chosen_tokens;
        }
    return st->loss;
}
