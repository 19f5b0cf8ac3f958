#include "aloe/simpool.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "base/mem.h"

void simpool_init(SimPool *p) { memset(p, 0, sizeof *p); }

void simpool_free(SimPool *p) {
    free(p->vecs);
    memset(p, 0, sizeof *p);
}

static double norm(const float *v, int dim) {
    double s = 0;
    for (int i = 0; i < dim; i++) s += (double)v[i] * v[i];
    return sqrt(s);
}

double vec_cosine(const float *a, const float *b, int dim) {
    double na = norm(a, dim), nb = norm(b, dim), dot = 0;
    if (na == 0 || nb == 0) return 0;
    for (int i = 0; i < dim; i++) dot += (double)a[i] * b[i];
    return dot / (na * nb);
}

int simpool_add(SimPool *p, const float *v, int dim, Err *e) {
    if (dim <= 0) return err_set(e, ERR_PARSE, "embedding has no dimensions");
    if (p->dim && dim != p->dim)
        return err_set(e, ERR_PARSE, "embedding has %d dimensions, the pool's have %d (a different embedder?)", dim,
                       p->dim);
    p->dim = dim;
    if (p->n == p->cap) {
        p->cap = p->cap ? p->cap * 2 : 64;
        p->vecs = xrealloc(p->vecs, sizeof(float) * (size_t)p->cap * (size_t)dim);
    }
    double n = norm(v, dim);
    float *dst = p->vecs + (size_t)p->n * (size_t)dim;
    for (int i = 0; i < dim; i++) dst[i] = n > 0 ? (float)(v[i] / n) : 0.0f;
    p->n++;
    return 0;
}

int simpool_nearest(const SimPool *p, const float *v, double *sim) {
    int best = -1;
    double best_sim = -1, nv = norm(v, p->dim);
    for (int j = 0; j < p->n; j++) {
        const float *m = p->vecs + (size_t)j * (size_t)p->dim;
        double dot = 0;
        for (int i = 0; i < p->dim; i++) dot += (double)v[i] * m[i];
        double s = nv > 0 ? dot / nv : 0;
        if (best < 0 || s > best_sim) {
            best = j;
            best_sim = s;
        }
    }
    *sim = best_sim;
    return best;
}
