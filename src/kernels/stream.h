/* stream: how fast the machine reads a set of weight matrices from memory,
 * the bound on decoding speed. A decode step streams every weight once and
 * does little else, so its tokens/s can be put against the time this takes
 * (same threads, same split into contiguous per-thread ranges as the
 * decode path, no arithmetic but an OR of what is read): aloe speed reports
 * the ratio. Measured in the same run as the decode because on a shared
 * host the bandwidth changes from minute to minute. */
#ifndef ALOE_KERNELS_STREAM_H
#define ALOE_KERNELS_STREAM_H

#include <stdint.h>

#include "kernels/matmul.h"

/* Seconds to read every byte of the n matrices once, on the pool's
 * threads (tp may be NULL). *bits (may be NULL) gets the OR of all the
 * bytes read, as 64-bit words: what the tests check to see that every byte
 * was read. The caller repeats it and takes the median (aloe speed does,
 * between decode steps): on a shared host single passes vary. */
double stream_read_seconds(ThreadPool *tp, const QMat *const *mats, int n, uint64_t *bits);

#endif
