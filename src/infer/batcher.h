/* batcher: one model shared by many threads, with their requests decoded
 * together.
 *
 * The pipeline runs -j N conversations at once, each asking for a reply
 * from its own thread. A Batcher owns a decoding thread: requests join the
 * running batch at the next step (continuous batching) and each step is one
 * forward pass over a token of every active request, so N conversations
 * cost about one weight stream per token rather than N. */
#ifndef ALOE_INFER_BATCHER_H
#define ALOE_INFER_BATCHER_H

#include <stdint.h>

#include "base/err.h"
#include "infer/generate.h"
#include "model/decoder.h"

typedef struct Batcher Batcher;

/* Starts the decoding thread; at most max_batch requests are decoded
 * together (more wait their turn). The model must outlive the batcher and
 * must not be used by anyone else meanwhile. NULL with e set on failure. */
Batcher *batcher_start(Model *m, int max_batch, Err *e);
/* Finishes the requests already submitted, then stops the thread. */
void batcher_stop(Batcher *b);

/* Decodes one request and blocks until it is done. Thread-safe. The
 * params' on_token callback runs on the batcher's thread (with seq = 0).
 * On success *out (malloc'd, caller frees) holds the new ids. */
int batcher_generate(Batcher *b, const int32_t *prompt, int n_prompt, const GenParams *p, int32_t **out,
                     int *n_out, GenFinish *finish, Err *e);

#endif
