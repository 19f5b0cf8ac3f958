/* simpool: the embeddings of a persona pool and the diversity test.
 *
 * A candidate joins the pool only if its cosine similarity to EVERY member
 * is at most the threshold, i.e. if its nearest neighbour is far enough.
 * Vectors are stored normalised, so a similarity is one dot product. */
#ifndef ALOE_ALOE_SIMPOOL_H
#define ALOE_ALOE_SIMPOOL_H

#include "base/err.h"

typedef struct SimPool {
    int dim;     /* 0 until the first vector */
    int n, cap;
    float *vecs; /* n * dim, unit length */
} SimPool;

void simpool_init(SimPool *p);
void simpool_free(SimPool *p);
/* Adds a copy of v (normalised). Errors if dim differs from the pool's. */
int simpool_add(SimPool *p, const float *v, int dim, Err *e);
/* Index of the member most similar to v and that similarity (cosine), or -1
 * (and *sim = -1) when the pool is empty. v need not be normalised. */
int simpool_nearest(const SimPool *p, const float *v, double *sim);
/* Cosine similarity; 0 if either vector is zero. */
double vec_cosine(const float *a, const float *b, int dim);

#endif
