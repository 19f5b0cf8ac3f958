/* tensor: a read-only view of one named tensor, shared by the safetensors
 * and GGUF readers so a model loader treats both sources alike.
 *
 * shape is row-major with the outermost dimension first, as PyTorch and
 * safetensors write it: a linear layer's weight is [out_features,
 * in_features] and each of its rows is contiguous. (GGUF stores dimensions
 * innermost-first; its reader reverses them into this order.) Unused shape
 * entries are 1. data points into the file's memory map and may be only
 * byte-aligned for GGUF metadata-heavy files — but GGUF tensor data is
 * aligned to general.alignment (32 by default) and safetensors data to its
 * 8-byte header padding plus the tensor's offset. */
#ifndef ALOE_FORMATS_TENSOR_H
#define ALOE_FORMATS_TENSOR_H

#include <stddef.h>
#include <stdint.h>

#include "base/err.h"
#include "formats/dtype.h"

#define TENSOR_MAX_DIMS 4

typedef struct TensorView {
    const char *name;
    int dtype; /* DType */
    int ndim;
    int64_t shape[TENSOR_MAX_DIMS];
    const void *data;
    size_t nbytes;
} TensorView;

/* Elements of t: the product of its dims (saturating at INT64_MAX; -1 when
 * a dim is negative, which no reader produces). */
int64_t tensor_numel(const TensorView *t);
/* Checks a shape read from a file: 0 with *numel set, or -1 when a dim is
 * negative or the product of the non-zero dims exceeds INT64_MAX. */
int tensor_shape_numel(const int64_t *shape, int ndim, int64_t *numel);
/* Rows = product of all dims but the last; cols = the last dim. */
int64_t tensor_rows(const TensorView *t);
int64_t tensor_cols(const TensorView *t);
/* Bytes of one row (cols elements of t->dtype). */
size_t tensor_row_bytes(const TensorView *t);
/* "[1029, 64]" into buf; returns buf. */
char *tensor_shape_str(const TensorView *t, char *buf, size_t size);
/* Checks dtype-independent shape: ndim and each dim (-1 = any). Error names
 * the tensor and both shapes. */
int tensor_check_shape(const TensorView *t, int ndim, const int64_t *shape, Err *e);
/* Converts the whole tensor to f32 into dst (tensor_numel floats). */
int tensor_to_f32(const TensorView *t, float *dst, Err *e);
/* The same into a new xmalloc'd buffer (caller frees); NULL on error. */
float *tensor_to_f32_alloc(const TensorView *t, Err *e);

#endif
