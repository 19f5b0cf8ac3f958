#include "train/optim.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "base/mem.h"

AdamWConfig adamw_defaults(void) {
    AdamWConfig c = {.beta1 = 0.9, .beta2 = 0.999, .eps = 1e-8, .weight_decay = 0.0};
    return c;
}

int adamw_init(AdamW *o, const AdamWConfig *cfg, size_t n, Err *e) {
    memset(o, 0, sizeof *o);
    if (!(cfg->beta1 >= 0 && cfg->beta1 < 1) || !(cfg->beta2 >= 0 && cfg->beta2 < 1))
        return err_set(e, ERR_ARG, "AdamW: betas must be in [0, 1), got %g, %g", cfg->beta1,
                       cfg->beta2);
    if (!(cfg->eps > 0)) return err_set(e, ERR_ARG, "AdamW: eps must be > 0, got %g", cfg->eps);
    if (!(cfg->weight_decay >= 0))
        return err_set(e, ERR_ARG, "AdamW: weight decay must be >= 0, got %g", cfg->weight_decay);
    o->cfg = *cfg;
    o->n = n;
    o->m = xcalloc(n ? n : 1, sizeof(float));
    o->v = xcalloc(n ? n : 1, sizeof(float));
    return 0;
}

void adamw_free(AdamW *o) {
    free(o->m);
    free(o->v);
    memset(o, 0, sizeof *o);
}

/* One span. The float32 operation order follows torch's _single_tensor_adamw
 * so one step reproduces it to rounding. */
static void adamw_span(AdamW *o, float *p, const float *g, float *m, float *v, size_t n, double lr,
                       int decay, float step_size, float bc2_sqrt) {
    const float b2 = (float)o->cfg.beta2, eps = (float)o->cfg.eps;
    const float keep = decay ? (float)(1.0 - lr * o->cfg.weight_decay) : 1.0f;
    const float one_m_b1 = (float)(1.0 - o->cfg.beta1), one_m_b2 = (float)(1.0 - o->cfg.beta2);
    for (size_t i = 0; i < n; i++) {
        float pi = p[i] * keep;
        float gi = g[i];
        m[i] += (gi - m[i]) * one_m_b1;
        v[i] = v[i] * b2 + one_m_b2 * (gi * gi);
        float denom = sqrtf(v[i]) / bc2_sqrt + eps;
        p[i] = pi - step_size * (m[i] / denom);
    }
}

typedef struct AdamJob {
    AdamW *o;
    float *params;
    const float *grads;
    const ParamSpan *spans;
    int n_spans;
    double lr;
    float step_size, bc2_sqrt;
} AdamJob;

static void adamw_task(void *ctx, int ith, int nth) {
    const AdamJob *j = ctx;
    for (int s = 0; s < j->n_spans; s++) {
        long a, b;
        tp_split((long)j->spans[s].numel, ith, nth, &a, &b);
        size_t off = j->spans[s].offset + (size_t)a;
        adamw_span(j->o, j->params + off, j->grads + off, j->o->m + off, j->o->v + off, (size_t)(b - a), j->lr,
                   j->spans[s].decay, j->step_size, j->bc2_sqrt);
    }
}

void adamw_step_tp(AdamW *o, ThreadPool *tp, float *params, const float *grads, const ParamSpan *spans,
                   int n_spans, double lr) {
    o->step++;
    double bc1 = 1.0 - pow(o->cfg.beta1, (double)o->step);
    double bc2 = 1.0 - pow(o->cfg.beta2, (double)o->step);
    AdamJob j = {o, params, grads, spans, n_spans, lr, (float)(lr / bc1), (float)sqrt(bc2)};
    tp_run(tp, adamw_task, &j);
}

void adamw_step(AdamW *o, float *params, const float *grads, const ParamSpan *spans, int n_spans,
                double lr) {
    adamw_step_tp(o, NULL, params, grads, spans, n_spans, lr);
}

/* True when `name` has a dot-separated component equal to "norm" or ending
 * in "_norm" (model.norm.weight, self_attn.q_norm.weight). */
static int has_norm_component(const char *name) {
    const char *c = name;
    while (*c) {
        const char *end = strchr(c, '.');
        size_t len = end ? (size_t)(end - c) : strlen(c);
        if ((len == 4 && !strncmp(c, "norm", 4)) || (len >= 5 && !strncmp(c + len - 5, "_norm", 5)))
            return 1;
        if (!end) break;
        c = end + 1;
    }
    return 0;
}

int optim_hf_decays(const char *name) {
    static const char *forbidden[] = {"bias", "layernorm", "rmsnorm"};
    for (size_t i = 0; i < sizeof forbidden / sizeof *forbidden; i++)
        if (strstr(name, forbidden[i])) return 0;
    return !has_norm_component(name);
}

float grad_global_norm(const float *grads, size_t n) {
    double s = 0;
    for (size_t i = 0; i < n; i++) s += (double)grads[i] * grads[i];
    return (float)sqrt(s);
}

typedef struct NormJob {
    float *g;
    size_t n;
    double *partial; /* one per thread */
    float scale;     /* scale pass: multiply by this */
    int scaling;
} NormJob;

static void norm_task(void *ctx, int ith, int nth) {
    NormJob *j = ctx;
    long a, b;
    tp_split((long)j->n, ith, nth, &a, &b);
    if (j->scaling) {
        for (long i = a; i < b; i++) j->g[i] *= j->scale;
        return;
    }
    double s = 0;
    for (long i = a; i < b; i++) s += (double)j->g[i] * j->g[i];
    j->partial[ith] = s;
}

float grad_clip_global_norm_tp(ThreadPool *tp, float *grads, size_t n, float max_norm) {
    int nth = tp ? tp_size(tp) : 1;
    double *partial = xcalloc((size_t)nth, sizeof *partial);
    NormJob j = {grads, n, partial, 1.0f, 0};
    tp_run(tp, norm_task, &j);
    double s = 0;
    for (int i = 0; i < nth; i++) s += partial[i];
    free(partial);
    float norm = (float)sqrt(s);
    if (max_norm <= 0) return norm;
    float coef = max_norm / (norm + 1e-6f);
    if (coef < 1.0f) {
        j.scaling = 1, j.scale = coef;
        tp_run(tp, norm_task, &j);
    }
    return norm;
}

float grad_clip_global_norm(float *grads, size_t n, float max_norm) {
    return grad_clip_global_norm_tp(NULL, grads, n, max_norm);
}

typedef struct ZeroJob {
    float *g;
    size_t n;
} ZeroJob;

static void zero_task(void *ctx, int ith, int nth) {
    const ZeroJob *j = ctx;
    long a, b;
    tp_split((long)j->n, ith, nth, &a, &b);
    if (b > a) memset(j->g + a, 0, (size_t)(b - a) * sizeof *j->g);
}

void grad_zero_tp(ThreadPool *tp, float *grads, size_t n) {
    ZeroJob j = {grads, n};
    tp_run(tp, zero_task, &j);
}

static double warmup_factor(const LrSchedule *s, long step) {
    return (double)step / (double)(s->warmup_steps > 1 ? s->warmup_steps : 1);
}

double lr_at(const LrSchedule *s, long step) {
    if (step < s->warmup_steps) return s->lr * warmup_factor(s, step);
    if (s->kind == LR_CONSTANT) return s->lr;
    long span = s->total_steps - s->warmup_steps;
    double progress = (double)(step - s->warmup_steps) / (double)(span > 1 ? span : 1);
    double f;
    if (s->kind == LR_LINEAR)
        f = 1.0 - progress;
    else
        f = 0.5 * (1.0 + cos(M_PI * progress));
    if (f < 0) f = 0;
    return s->lr * f;
}

int lr_kind_parse(const char *name, LrKind *out, Err *e) {
    for (int k = LR_CONSTANT; k <= LR_COSINE; k++)
        if (!strcmp(name, lr_kind_name((LrKind)k))) {
            *out = (LrKind)k;
            return 0;
        }
    return err_set(e, ERR_ARG, "schedule: expected constant, linear or cosine, got \"%s\"", name);
}

const char *lr_kind_name(LrKind k) {
    switch (k) {
    case LR_CONSTANT: return "constant";
    case LR_LINEAR: return "linear";
    case LR_COSINE: return "cosine";
    }
    return "?";
}
