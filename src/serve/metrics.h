/* metrics: the server's counters for GET /metrics, in Prometheus' text
 * format (version 0.0.4).
 *
 *   aloe_requests_total{status="200"}        answered requests by status
 *   aloe_prompt_tokens_total, aloe_completion_tokens_total,
 *   aloe_cached_prompt_tokens_total          (reused from the prefix cache)
 *   aloe_requests_running, aloe_requests_waiting   gauges: sequences decoding,
 *                                            and waiting for their first token
 *   aloe_time_to_first_token_seconds         histogram
 *   aloe_time_per_output_token_seconds       histogram (decode latency)
 *
 * Thread-safe: every update takes the one lock (a few per request). */
#ifndef ALOE_SERVE_METRICS_H
#define ALOE_SERVE_METRICS_H

#include <pthread.h>

#include "base/mem.h"

#define METRICS_BUCKETS 14
#define METRICS_STATUSES 8

typedef struct Histogram {
    long count[METRICS_BUCKETS + 1]; /* per bucket, the last one +Inf */
    long n;
    double sum;
} Histogram;

typedef struct Metrics {
    pthread_mutex_t mu;
    int status[METRICS_STATUSES];
    long status_count[METRICS_STATUSES];
    long prompt_tokens, completion_tokens, cached_tokens;
    long running, waiting;
    Histogram ttft, tpot;
} Metrics;

void metrics_init(Metrics *m);
void metrics_free(Metrics *m);
void metrics_request(Metrics *m, int status);
void metrics_tokens(Metrics *m, long prompt, long completion, long cached);
void metrics_ttft(Metrics *m, double seconds);
void metrics_tpot(Metrics *m, double seconds);
/* Moves one request between the gauges (running/waiting += d). */
void metrics_gauges(Metrics *m, long d_running, long d_waiting);
void metrics_render(Metrics *m, StrBuf *out);

#endif
