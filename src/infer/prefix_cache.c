#include "infer/prefix_cache.h"

#include <stdlib.h>
#include <string.h>

#include "base/mem.h"

typedef struct Entry {
    int32_t *ids;
    int n;
    KvCache kv;
    unsigned long used; /* the clock when last put or reused */
} Entry;

struct PrefixCache {
    size_t max_bytes, bytes;
    Entry *e;
    int n, cap;
    unsigned long clock;
    PrefixCacheStats stats;
};

PrefixCache *prefix_cache_new(size_t max_bytes) {
    PrefixCache *pc = xcalloc(1, sizeof *pc);
    pc->max_bytes = max_bytes;
    return pc;
}

static size_t entry_bytes(const Entry *x) { return (size_t)x->kv.len * kv_cache_position_bytes(&x->kv); }

static void drop(PrefixCache *pc, int i) {
    pc->bytes -= entry_bytes(&pc->e[i]);
    free(pc->e[i].ids);
    kv_cache_free(&pc->e[i].kv);
    pc->e[i] = pc->e[--pc->n];
}

void prefix_cache_free(PrefixCache *pc) {
    if (!pc) return;
    while (pc->n) drop(pc, pc->n - 1);
    free(pc->e);
    free(pc);
}

static int common_prefix(const int32_t *a, int na, const int32_t *b, int nb) {
    int i = 0;
    while (i < na && i < nb && a[i] == b[i]) i++;
    return i;
}

int prefix_cache_reuse(PrefixCache *pc, const int32_t *ids, int n, KvCache *dst) {
    pc->stats.lookups++;
    int best = -1, len = 0;
    for (int i = 0; i < pc->n; i++) {
        if (!kv_cache_compatible(&pc->e[i].kv, dst)) continue;
        int c = common_prefix(pc->e[i].ids, pc->e[i].n, ids, n);
        if (c > len) best = i, len = c;
    }
    if (len > n - 1) len = n - 1;
    if (len > dst->max_seq) len = dst->max_seq;
    Err e;
    if (best < 0 || len <= 0 || kv_cache_copy_prefix(dst, &pc->e[best].kv, len, &e)) return 0;
    pc->e[best].used = ++pc->clock;
    pc->stats.hits++;
    pc->stats.tokens_reused += len;
    return len;
}

void prefix_cache_put(PrefixCache *pc, const int32_t *ids, int n, KvCache *kv) {
    KvCache mine = *kv;
    memset(kv, 0, sizeof *kv);
    if (n > mine.len) n = mine.len; /* only positions that were written */
    /* What the entry keeps resident: every position written, a reply's
     * too (the cache is a fresh mapping, its untouched pages never
     * resident; copying the prompt's part out instead costs a page fault
     * per 4 KB, ~12 us each on a virtual machine, on the decoding thread). */
    size_t bytes = (size_t)mine.len * kv_cache_position_bytes(&mine);
    if (n <= 0 || bytes > pc->max_bytes) { /* nothing to keep; what is held stays */
        kv_cache_free(&mine);
        return;
    }
    for (int i = 0; i < pc->n; i++) {
        int c = common_prefix(pc->e[i].ids, pc->e[i].n, ids, n);
        if (c == n && kv_cache_compatible(&pc->e[i].kv, &mine)) { /* an entry already holds all of these */
            pc->e[i].used = ++pc->clock;
            kv_cache_free(&mine);
            return;
        }
        if (c == pc->e[i].n) drop(pc, i--); /* these extend that entry */
    }
    while (pc->n && pc->bytes + bytes > pc->max_bytes) { /* least recently used first */
        int lru = 0;
        for (int i = 1; i < pc->n; i++)
            if (pc->e[i].used < pc->e[lru].used) lru = i;
        drop(pc, lru);
    }
    if (pc->n == pc->cap) pc->e = xrealloc(pc->e, (size_t)(pc->cap = pc->cap ? 2 * pc->cap : 8) * sizeof *pc->e);
    Entry *x = &pc->e[pc->n++];
    x->ids = xmalloc((size_t)n * sizeof *ids);
    memcpy(x->ids, ids, (size_t)n * sizeof *ids);
    x->n = n;
    x->kv = mine;
    x->used = ++pc->clock;
    pc->bytes += bytes;
}

PrefixCacheStats prefix_cache_stats(const PrefixCache *pc) {
    PrefixCacheStats s = pc->stats;
    s.entries = pc->n;
    s.bytes = pc->bytes;
    return s;
}
