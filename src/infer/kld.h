/* kld: a model's next-token distributions against a base model's on one
 * token sequence, scored on the positions llama.cpp's `llama-perplexity
 * --kl-divergence` scores, so the two tools' figures compare:
 *
 *   - the tokens are the text tokenised as llama-perplexity tokenises it
 *     (the tokenizer's special prefix added, special-token text read as
 *     text), cut into chunks of n_ctx tokens (a tail shorter than n_ctx is
 *     dropped);
 *   - each chunk is evaluated from an empty cache, its first token replaced
 *     by BOS when the tokenizer adds one;
 *   - the positions scored are the second half of each chunk: the logits at
 *     positions n_ctx/2 .. n_ctx-2, each predicting the token after it
 *     (n_ctx - 1 - n_ctx/2 per chunk), so every prediction has at least
 *     n_ctx/2 tokens of context. */
#ifndef ALOE_INFER_KLD_H
#define ALOE_INFER_KLD_H

#include <stddef.h>
#include <stdint.h>

#include "base/err.h"
#include "infer/kld_stats.h"
#include "model/decoder.h"
#include "tok/tok.h"

typedef struct KldOptions {
    int n_ctx;    /* tokens per chunk (>= 4) */
    int n_chunks; /* chunks to score (<= 0: every whole chunk) */
    int bos;      /* the id that replaces each chunk's first token, or -1 */
    int ubatch;   /* tokens per forward call (<= 0: a whole chunk at once) */
    /* Called after each chunk (may be NULL): chunk is 1-based. */
    void (*on_chunk)(void *ctx, int chunk, int n_chunks, const KldStats *s);
    void *on_chunk_ctx;
} KldOptions;

/* The token ids of text as llama-perplexity makes them with this
 * tokenizer, and the BOS id it would put at the start of each chunk (-1
 * when the tokenizer adds none). A tokenizer that appends a special token
 * (an EOS or [SEP]) is refused, as llama-perplexity refuses it. *ids is
 * malloc'd. */
int kld_tokenize(const Tokenizer *t, const char *text, size_t len, int32_t **ids, int *n, int *bos, Err *e);

/* How many chunks o scores on n_ids tokens; -1 with e set when there are
 * fewer than 2 * n_ctx tokens (llama-perplexity's minimum) or n_ctx < 4. */
int kld_n_chunks(long n_ids, const KldOptions *o, Err *e);

/* Adds every scored position of ids to s: base gives p, m gives q. The two
 * models must have the same vocabulary size (the error names both), and
 * every id must be inside it. */
int kld_eval(Model *base, Model *m, const int32_t *ids, long n_ids, const KldOptions *o, KldStats *s, Err *e);

#endif
