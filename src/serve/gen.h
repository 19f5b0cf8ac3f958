/* gen: one chat or completions request's generation, through the model's
 * batcher.
 *
 * The request's n choices are n sequences, each submitted from its own
 * thread, so they decode together with every other client's. What the
 * engine's sampler does not do itself is done on the logits before it
 * (GenParams.on_logits): logit_bias, presence and frequency penalties
 * (OpenAI's: subtracted per occurrence / once per token seen in the
 * output), and reading logprobs (log-softmax of the logits those leave,
 * before temperature, as OpenAI reports them).
 *
 * A sequence ends early when its client is gone (its socket hung up, or
 * the stream's reader saw so) or the server is shutting down past its
 * drain time: on_token asks the engine to stop, so the batch slot is freed
 * within a token.
 *
 * Streaming: the choices' text arrives as server-sent events in one
 * buffer, read by the connection's thread (serve_gen_read). */
#ifndef ALOE_SERVE_GEN_H
#define ALOE_SERVE_GEN_H

#include <jansson.h>
#include <pthread.h>
#include <stdatomic.h>

#include "base/err.h"
#include "base/mem.h"
#include "infer/generate.h"
#include "llm/oai_wire.h"
#include "serve/metrics.h"
#include "serve/models.h"

typedef struct ServeLimits {
    int max_prompt_tokens; /* <= 0: the model's context */
    int max_tokens;        /* a request's max_tokens at most; also its default */
    int max_queue;         /* sequences waiting beyond the batch before 503 */
    int max_active;        /* the batch (-j) */
} ServeLimits;

typedef struct ServeChoice ServeChoice;

typedef struct ServeGen {
    ServeModel *sm;
    const OaiRequest *req;
    Metrics *metrics;
    const atomic_int *stopping; /* the server's: past the drain time, stop */
    atomic_int cancel;          /* the client is gone */
    int watch_fd;               /* a socket whose hang-up cancels (-1: none) */
    int32_t *prompt;
    int n_prompt;
    char *echo_text;            /* completions with echo: the prompt's text */
    const char **stops;         /* the request's and the template's, NULL-terminated */
    int n;
    ServeChoice *ch;
    double t0;                  /* arrival (monotonic seconds) */
    char id[48];
    long created;
    int admitted;               /* counted in sm->seqs */
    int launched, joining, joined; /* under mu */
    /* streaming: SSE bytes not yet read, under mu */
    int stream;
    pthread_mutex_t mu;
    pthread_cond_t cv;
    StrBuf out;
    size_t out_pos;
    int running;                /* choices not yet finished */
    int done;                   /* the last event ([DONE]) is in out */
    int failed;                 /* some choice failed (Err in it) */
    /* results */
    long completion_tokens, cached_tokens;
} ServeGen;

/* Sets up g for req on model sm (a decoder): renders and tokenises the
 * prompt, checks it and the request against the model and limits. -1 with
 * *status (400, 413 or 503) and *param (the field, or NULL) set, and e
 * saying why. */
int serve_gen_prepare(ServeGen *g, ServeModel *sm, const OaiRequest *req, const ServeLimits *lim, Metrics *metrics,
                      const atomic_int *stopping, int *status, const char **param, Err *e);
/* Starts the choices' threads. */
void serve_gen_launch(ServeGen *g);
/* Waits for every choice to end (idempotent, thread-safe). */
void serve_gen_wait(ServeGen *g);
/* After serve_gen_wait: the response (non-streaming), or NULL with e set
 * when a choice failed. */
json_t *serve_gen_response(ServeGen *g, Err *e);
/* Streaming: copies up to max SSE bytes into buf, waiting for some; 0 at
 * the end of the stream. fd: the client's socket, checked while waiting
 * (a hang-up cancels and returns -1). */
long serve_gen_read(ServeGen *g, char *buf, size_t max, int fd);
void serve_gen_free(ServeGen *g);

double serve_now(void);

#endif
