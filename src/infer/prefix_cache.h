/* prefix_cache: the keys and values of recent prompts, so that a prompt
 * that begins like one seen before is prefilled from where they part.
 *
 * A multi-turn conversation sends its whole history every turn, and every
 * request of a pipeline role begins with the same role prompt (450-700+
 * tokens): without reuse each turn prefills all of it again. When a
 * sequence finishes, its cache moves here with the prompt's ids; a new
 * sequence copies the longest matching prefix of its prompt from the entry
 * that has it, and prefills only the rest.
 *
 * Only prompt positions are kept: a reply's keys and values came from the
 * decode path (for quantised weights, activations rounded to 8 bits), so the
 * next turn prefills them again, as it would without the cache. The reused
 * positions are the ones a fresh prefill computes, up to float rounding
 * (BLAS sums a GEMM's rows in an order that depends on how many there are).
 *
 * Entries are evicted least recently used first, to stay within a byte
 * budget counted over the positions they hold. Not thread-safe: the batcher
 * thread owns it. */
#ifndef ALOE_INFER_PREFIX_CACHE_H
#define ALOE_INFER_PREFIX_CACHE_H

#include <stddef.h>
#include <stdint.h>

#include "model/decoder.h"

typedef struct PrefixCache PrefixCache;

/* max_bytes: the most keys and values held, counted over the positions
 * each entry's cache has written (0: the cache keeps nothing). */
PrefixCache *prefix_cache_new(size_t max_bytes);
void prefix_cache_free(PrefixCache *pc);

/* Copies into dst (empty, made for the same model, at least n positions)
 * the longest prefix of ids[0..n) that an entry holds, at most n - 1
 * positions (the last prompt token is always fed, for its logits). Returns
 * how many positions were copied (0: none matched). */
int prefix_cache_reuse(PrefixCache *pc, const int32_t *ids, int n, KvCache *dst);

/* Takes kv (its first n positions are the keys and values of ids[0..n);
 * only positions below kv->len count): the cache owns it afterwards and
 * *kv is left empty. An entry whose ids are a prefix of these is replaced;
 * if these are a prefix of an entry's, that entry is kept and kv freed, as
 * it is when kv alone exceeds the budget (what is held then stays). */
void prefix_cache_put(PrefixCache *pc, const int32_t *ids, int n, KvCache *kv);

typedef struct PrefixCacheStats {
    long lookups, hits;
    long tokens_reused; /* positions copied instead of prefilled */
    int entries;
    size_t bytes;
} PrefixCacheStats;

PrefixCacheStats prefix_cache_stats(const PrefixCache *pc);

#endif
