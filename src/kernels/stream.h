/* stream: how fast the machine reads a set of weight matrices from memory,
 * the bound on decoding speed. A decode step streams every weight once and
 * does little else, so its tokens/s can be put against the time this takes
 * (same threads, contiguous per-thread ranges and the same prefetch as
 * the decode path, no arithmetic but an OR of what is read): aloe speed
 * reports the ratio.
 * Measured in the same run as the decode because on a shared host the
 * bandwidth changes from minute to minute. */
#ifndef ALOE_KERNELS_STREAM_H
#define ALOE_KERNELS_STREAM_H

#include <stdint.h>

#include "kernels/matmul.h"

/* Two orders of reading the same bytes. STREAM_WHOLE: all the matrices'
 * bytes as one range, one contiguous part per thread (each thread one long
 * stream; the threads far apart). STREAM_PER_MATRIX: matrix after matrix,
 * each cut in one part per thread, as the decode reads them (no waiting
 * between matrices). Which is faster depends on the host and the minute
 * (on the development host WHOLE was faster in every high-bandwidth minute
 * tried), so aloe speed takes the faster of the two as the bound. */
typedef enum { STREAM_WHOLE, STREAM_PER_MATRIX } StreamOrder;

/* Seconds to read every byte of the n matrices once, in the given order,
 * on the pool's threads (tp may be NULL). *bits (may be NULL) gets the OR
 * of all the bytes read, as 64-bit words: what the tests check to see that
 * every byte was read. The caller repeats it and takes the median (aloe
 * speed does, between decode steps): on a shared host single passes vary. */
double stream_read_seconds(ThreadPool *tp, const QMat *const *mats, int n, StreamOrder order, uint64_t *bits);

#endif
