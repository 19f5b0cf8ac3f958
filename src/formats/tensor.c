/* tensor: helpers over TensorView. */
#include "formats/tensor.h"

#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>

#include "base/mem.h"

int tensor_shape_numel(const int64_t *shape, int ndim, int64_t *numel) {
    /* The product of the non-zero dimensions must fit: then every partial
     * product, in any order, fits too, and a zero dimension cannot hide an
     * overflow that a caller multiplying in another order would hit. */
    int64_t n = 1;
    int zero = 0;
    for (int i = 0; i < ndim; i++) {
        if (shape[i] < 0) return -1;
        if (shape[i] == 0) zero = 1;
        else if (__builtin_mul_overflow(n, shape[i], &n)) return -1;
    }
    *numel = zero ? 0 : n;
    return 0;
}

/* Saturates instead of overflowing: a view the readers built always fits
 * (they check with tensor_shape_numel); a hand-built one must not be
 * undefined behaviour. */
static int64_t product(const int64_t *shape, int ndim) {
    int64_t n = 1;
    for (int i = 0; i < ndim; i++) {
        if (shape[i] <= 0) return shape[i] == 0 ? 0 : -1;
        if (__builtin_mul_overflow(n, shape[i], &n)) n = INT64_MAX;
    }
    return n;
}

int64_t tensor_numel(const TensorView *t) { return product(t->shape, t->ndim); }

int64_t tensor_cols(const TensorView *t) { return t->ndim ? t->shape[t->ndim - 1] : 1; }

int64_t tensor_rows(const TensorView *t) { return t->ndim > 1 ? product(t->shape, t->ndim - 1) : 1; }

size_t tensor_row_bytes(const TensorView *t) { return dtype_nbytes(t->dtype, tensor_cols(t)); }

char *tensor_shape_str(const TensorView *t, char *buf, size_t size) {
    size_t len = 0;
    if (size == 0) return buf;
    buf[0] = 0;
    len += (size_t)snprintf(buf, size, "[");
    for (int i = 0; i < t->ndim && len < size; i++)
        len += (size_t)snprintf(buf + len, size - len, "%s%lld", i ? ", " : "", (long long)t->shape[i]);
    if (len < size) snprintf(buf + len, size - len, "]");
    return buf;
}

int tensor_check_shape(const TensorView *t, int ndim, const int64_t *shape, Err *e) {
    int ok = t->ndim == ndim;
    for (int i = 0; ok && i < ndim; i++)
        if (shape[i] >= 0 && shape[i] != t->shape[i]) ok = 0;
    if (ok) return 0;
    char got[96], want[96];
    TensorView w = {.ndim = ndim};
    int any = 0;
    for (int i = 0; i < ndim && i < TENSOR_MAX_DIMS; i++) w.shape[i] = shape[i], any |= shape[i] < 0;
    return err_set(e, ERR_PARSE, "tensor %s: shape %s, expected %s%s", t->name, tensor_shape_str(t, got, sizeof got),
                   tensor_shape_str(&w, want, sizeof want), any ? " (-1 = any)" : "");
}

int tensor_to_f32(const TensorView *t, float *dst, Err *e) {
    int64_t n = tensor_numel(t);
    if (dtype_nbytes(t->dtype, n) != t->nbytes && !(n == 0 && t->nbytes == 0))
        return err_set(e, ERR_PARSE, "tensor %s: %zu bytes do not hold %lld elements of %s", t->name,
                       t->nbytes, (long long)n, dtype_name(t->dtype));
    if (dequantize_row(t->dtype, t->data, dst, n))
        return err_set(e, ERR_UNSUPPORTED, "tensor %s: cannot convert %s to f32", t->name,
                       dtype_name(t->dtype));
    return 0;
}

float *tensor_to_f32_alloc(const TensorView *t, Err *e) {
    int64_t n = tensor_numel(t);
    float *out = xmalloc((size_t)(n > 0 ? n : 1) * sizeof(float));
    if (tensor_to_f32(t, out, e)) {
        free(out);
        return NULL;
    }
    return out;
}
