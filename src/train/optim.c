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

void adamw_step(AdamW *o, float *params, const float *grads, const ParamSpan *spans, int n_spans,
                double lr) {
    o->step++;
    double bc1 = 1.0 - pow(o->cfg.beta1, (double)o->step);
    double bc2 = 1.0 - pow(o->cfg.beta2, (double)o->step);
    float step_size = (float)(lr / bc1);
    float bc2_sqrt = (float)sqrt(bc2);
    for (int s = 0; s < n_spans; s++) {
        size_t off = spans[s].offset;
        adamw_span(o, params + off, grads + off, o->m + off, o->v + off, spans[s].numel, lr,
                   spans[s].decay, step_size, bc2_sqrt);
    }
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

float grad_clip_global_norm(float *grads, size_t n, float max_norm) {
    float norm = grad_global_norm(grads, n);
    if (max_norm <= 0) return norm;
    float coef = max_norm / (norm + 1e-6f);
    if (coef < 1.0f)
        for (size_t i = 0; i < n; i++) grads[i] *= coef;
    return norm;
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
