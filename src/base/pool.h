/* pool: run n independent jobs on up to `threads` threads.
 *
 * Jobs are handed out in index order from an atomic counter, so the first
 * jobs start first; each job must be independent of the others. Blocking
 * work (HTTP requests) is fine: use as many threads as you want requests in
 * flight. */
#ifndef ALOE_BASE_POOL_H
#define ALOE_BASE_POOL_H

#include <stdatomic.h>

typedef void (*PoolJob)(void *ctx, long index, int thread);

/* Runs job(ctx, i, thread) for i in [0, n). If stop is non-NULL and becomes
 * non-zero, no further jobs are started (running ones finish). */
void pool_run(int threads, long n, PoolJob job, void *ctx, atomic_int *stop);

/* Number of online CPUs (at least 1). */
int pool_cpu_count(void);

#endif
