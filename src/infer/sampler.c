#include "infer/sampler.h"

#include <math.h>
#include <stdlib.h>

#include "base/mem.h"

void sampler_params_default(SamplerParams *p) {
    *p = (SamplerParams){.temperature = 0, .top_k = 0, .top_p = 1, .min_p = 0, .repetition_penalty = 1, .seed = 0};
}

int sampler_params_check(const SamplerParams *p, Err *e) {
    if (!(p->temperature >= 0)) return err_set(e, ERR_ARG, "temperature must be >= 0, got %g", p->temperature);
    if (p->top_k < 0) return err_set(e, ERR_ARG, "top_k must be >= 0, got %d", p->top_k);
    if (!(p->top_p > 0 && p->top_p <= 1)) return err_set(e, ERR_ARG, "top_p must be in (0, 1], got %g", p->top_p);
    if (!(p->min_p >= 0 && p->min_p < 1)) return err_set(e, ERR_ARG, "min_p must be in [0, 1), got %g", p->min_p);
    if (!(p->repetition_penalty > 0))
        return err_set(e, ERR_ARG, "repetition_penalty must be > 0, got %g", p->repetition_penalty);
    return 0;
}

typedef struct Cand {
    float v; /* logit / temperature */
    int i;
} Cand;

void sampler_init(Sampler *s, const SamplerParams *p, int vocab) {
    s->p = *p;
    s->vocab = vocab;
    rng_seed(&s->rng, p->seed);
    s->cand = xmalloc((size_t)vocab * sizeof(Cand));
    s->prob = xmalloc((size_t)vocab * sizeof *s->prob);
}

void sampler_free(Sampler *s) {
    free(s->cand);
    free(s->prob);
    s->cand = NULL;
    s->prob = NULL;
}

static void apply_repetition_penalty(float *logits, int vocab, const int32_t *hist, int n, float penalty) {
    if (penalty == 1.0f) return;
    /* a token seen twice is penalised once, as in transformers (gather/scatter) */
    for (int i = 0; i < n; i++) {
        int32_t t = hist[i];
        if (t < 0 || t >= vocab) continue;
        int seen = 0;
        for (int j = 0; j < i && !seen; j++) seen = hist[j] == t;
        if (seen) continue;
        logits[t] = logits[t] < 0 ? logits[t] * penalty : logits[t] / penalty;
    }
}

static int argmax(const float *x, int n) {
    int best = 0;
    for (int i = 1; i < n; i++)
        if (x[i] > x[best]) best = i;
    return best;
}


static int cand_desc(const void *a, const void *b) {
    const Cand *x = a, *y = b;
    if (x->v != y->v) return x->v < y->v ? 1 : -1;
    return x->i - y->i;
}

int32_t sampler_sample(Sampler *s, float *logits, const int32_t *history, int n_history) {
    int V = s->vocab;
    apply_repetition_penalty(logits, V, history, n_history, s->p.repetition_penalty);
    if (s->p.temperature == 0) return argmax(logits, V);
    /* Candidates sorted by logit, highest first. Tokens more than 30 below
     * the best (probability ratio < 1e-13) are left out before sorting: with
     * a 150k vocabulary their total mass is < 2e-8, and sorting them all
     * would cost more than the forward pass of a small model. */
    Cand *c = s->cand;
    float best = logits[argmax(logits, V)] / s->p.temperature;
    int n = 0;
    for (int i = 0; i < V; i++) {
        float v = logits[i] / s->p.temperature;
        if (v >= best - 30) c[n++] = (Cand){v, i};
    }
    qsort(c, (size_t)n, sizeof *c, cand_desc);
    if (s->p.top_k > 0 && s->p.top_k < n) n = s->p.top_k;
    /* softmax over the kept candidates */
    double sum = 0;
    for (int i = 0; i < n; i++) sum += (s->prob[i] = expf(c[i].v - c[0].v));
    for (int i = 0; i < n; i++) s->prob[i] = (float)(s->prob[i] / sum);
    if (s->p.top_p < 1) {
        double cum = 0;
        int keep = 0;
        while (keep < n) {
            cum += s->prob[keep++];
            if (cum >= s->p.top_p) break;
        }
        n = keep;
    }
    if (s->p.min_p > 0) {
        int keep = 1;
        while (keep < n && s->prob[keep] >= s->p.min_p * s->prob[0]) keep++;
        n = keep;
    }
    double total = 0;
    for (int i = 0; i < n; i++) total += s->prob[i];
    double r = rng_uniform(&s->rng) * total, acc = 0;
    int pick = c[n - 1].i;
    for (int i = 0; i < n; i++) {
        acc += s->prob[i];
        if (r < acc) {
            pick = c[i].i;
            break;
        }
    }
    return pick;
}
