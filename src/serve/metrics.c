#include "serve/metrics.h"

#include <string.h>

/* Seconds; from a token of a tiny model on a fast core (~1 ms) to a long
 * prompt's prefill on a large one (a minute). */
static const double BOUNDS[METRICS_BUCKETS] = {0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
                                                0.25,  0.5,    1,     2.5,  5,     10,  60};

void metrics_init(Metrics *m) {
    memset(m, 0, sizeof *m);
    pthread_mutex_init(&m->mu, NULL);
}

void metrics_free(Metrics *m) { pthread_mutex_destroy(&m->mu); }

void metrics_request(Metrics *m, int status) {
    pthread_mutex_lock(&m->mu);
    int i = 0;
    while (i < METRICS_STATUSES && m->status[i] && m->status[i] != status) i++;
    if (i == METRICS_STATUSES) i = METRICS_STATUSES - 1; /* more distinct statuses than slots: lumped */
    m->status[i] = m->status[i] ? m->status[i] : status;
    m->status_count[i]++;
    pthread_mutex_unlock(&m->mu);
}

void metrics_tokens(Metrics *m, long prompt, long completion, long cached) {
    pthread_mutex_lock(&m->mu);
    m->prompt_tokens += prompt;
    m->completion_tokens += completion;
    m->cached_tokens += cached;
    pthread_mutex_unlock(&m->mu);
}

static void observe(Histogram *h, double s) {
    int b = 0;
    while (b < METRICS_BUCKETS && s > BOUNDS[b]) b++;
    h->count[b]++;
    h->n++;
    h->sum += s;
}

void metrics_ttft(Metrics *m, double s) {
    pthread_mutex_lock(&m->mu);
    observe(&m->ttft, s);
    pthread_mutex_unlock(&m->mu);
}

void metrics_tpot(Metrics *m, double s) {
    pthread_mutex_lock(&m->mu);
    observe(&m->tpot, s);
    pthread_mutex_unlock(&m->mu);
}

void metrics_gauges(Metrics *m, long d_running, long d_waiting) {
    pthread_mutex_lock(&m->mu);
    m->running += d_running;
    m->waiting += d_waiting;
    pthread_mutex_unlock(&m->mu);
}

static void render_histogram(StrBuf *b, const char *name, const char *help, const Histogram *h) {
    sb_printf(b, "# HELP %s %s\n# TYPE %s histogram\n", name, help, name);
    long cum = 0;
    for (int i = 0; i < METRICS_BUCKETS; i++) {
        cum += h->count[i];
        sb_printf(b, "%s_bucket{le=\"%g\"} %ld\n", name, BOUNDS[i], cum);
    }
    sb_printf(b, "%s_bucket{le=\"+Inf\"} %ld\n%s_sum %.6f\n%s_count %ld\n", name, h->n, name, h->sum, name, h->n);
}

static void counter(StrBuf *b, const char *name, const char *type, const char *help, long v) {
    sb_printf(b, "# HELP %s %s\n# TYPE %s %s\n%s %ld\n", name, help, name, type, name, v);
}

void metrics_render(Metrics *m, StrBuf *b) {
    pthread_mutex_lock(&m->mu);
    sb_printf(b, "# HELP aloe_requests_total Requests answered, by HTTP status.\n# TYPE aloe_requests_total counter\n");
    for (int i = 0; i < METRICS_STATUSES && m->status[i]; i++)
        sb_printf(b, "aloe_requests_total{status=\"%d\"} %ld\n", m->status[i], m->status_count[i]);
    counter(b, "aloe_prompt_tokens_total", "counter", "Prompt tokens of answered requests.", m->prompt_tokens);
    counter(b, "aloe_completion_tokens_total", "counter", "Tokens generated.", m->completion_tokens);
    counter(b, "aloe_cached_prompt_tokens_total", "counter", "Prompt tokens reused from the prefix cache.",
            m->cached_tokens);
    counter(b, "aloe_requests_running", "gauge", "Sequences past their first token, not yet finished.", m->running);
    counter(b, "aloe_requests_waiting", "gauge", "Sequences admitted and waiting for their first token (queue depth and prefill).",
            m->waiting);
    render_histogram(b, "aloe_time_to_first_token_seconds", "Time from a request's arrival to its first token.",
                     &m->ttft);
    render_histogram(b, "aloe_time_per_output_token_seconds", "Time between consecutive tokens of a sequence.",
                     &m->tpot);
    pthread_mutex_unlock(&m->mu);
}
