/* batcher: one model shared by many threads, with their requests decoded
 * together (continuous batching).
 *
 * The pipeline runs -j N conversations at once, each asking for a reply
 * from its own thread. A Batcher owns a decoding thread and the model:
 * between steps it admits waiting requests (first come, first served, up
 * to max_active at once) and drops finished ones, and each step is
 * gen_step over the active sequences (generate.h): new prompts prefilled
 * alone in chunks, then one forward pass over a token of every decoding
 * sequence, so N conversations cost about one weight stream per token
 * rather than N, and each gets the tokens it would get alone. Each request
 * brings its own GenParams: sampling and seed, token limit, stop ids, stop
 * strings and a text stream. */
#ifndef ALOE_INFER_BATCHER_H
#define ALOE_INFER_BATCHER_H

#include "base/err.h"
#include "infer/generate.h"
#include "infer/prefix_cache.h"
#include "model/decoder.h"

typedef struct Batcher Batcher;

/* Starts the decoding thread; at most max_active sequences are decoded
 * together (more wait their turn). With prefix_cache_bytes > 0 finished
 * prompts' keys and values are kept up to that many bytes, and a new
 * prompt that begins like one of them is prefilled from where they part
 * (infer/prefix_cache.h); 0 prefills every prompt whole. The model must
 * outlive the batcher and must not be used by anyone else meanwhile. NULL
 * with e set on failure. */
Batcher *batcher_start(Model *m, int max_active, size_t prefix_cache_bytes, Err *e);
/* Finishes the requests already submitted, then stops the thread and frees
 * the batcher. NULL is ignored. */
void batcher_stop(Batcher *b);

/* Decodes s (set up by gen_seq_init) with whatever else is running and
 * blocks until it has finished. Thread-safe. Its on_token and on_text
 * callbacks run on the batcher's thread (on_token with seq = 0): keep them
 * short. Afterwards s holds the new ids, the reply text and why it ended
 * (its cache already released); call gen_seq_free on it either way. */
int batcher_run(Batcher *b, GenSeq *s, Err *e);

/* The most sequences one decode pass has covered so far. */
int batcher_peak_active(Batcher *b);
/* The prefix cache's counters so far (zeros without one). Thread-safe. */
PrefixCacheStats batcher_prefix_stats(Batcher *b);

#endif
