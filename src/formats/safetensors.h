/* safetensors: memory-mapped reader and atomic writer of Hugging Face's
 * safetensors files, single or sharded.
 *
 * File layout: u64 little-endian header length N, N bytes of JSON
 *   {"name": {"dtype": "F32", "shape": [..], "data_offsets": [begin, end]},
 *    "__metadata__": {"key": "string value", ...}}
 * then the data, offsets relative to the end of the header. Every offset is
 * checked against the file size and the dtype*shape size at open, so a
 * corrupt file gets an error naming the tensor, never a bad read later.
 *
 * A sharded checkpoint (model.safetensors.index.json, whose "weight_map"
 * maps tensor names to shard files) opens as one SafeTensors: st_find looks
 * a name up across all shards. */
#ifndef ALOE_FORMATS_SAFETENSORS_H
#define ALOE_FORMATS_SAFETENSORS_H

#include <stddef.h>

#include "base/err.h"
#include "base/fileio.h"
#include "formats/tensor.h"

typedef struct SafeTensors SafeTensors;

/* Opens path, which may be
 *   - a .safetensors file,
 *   - a model.safetensors.index.json (sharded; shards are next to it), or
 *   - a directory holding model.safetensors or model.safetensors.index.json.
 * Tensors with more than TENSOR_MAX_DIMS dimensions or an unknown dtype are
 * an error. Returns NULL with e set on failure. */
SafeTensors *st_open(const char *path, Err *e);
/* Parses a single-file image in memory that stays alive and unchanged while
 * the SafeTensors is open (fuzzing, tests); name appears in messages. */
SafeTensors *st_open_mem(const void *data, size_t size, const char *name, Err *e);
void st_close(SafeTensors *st);

/* The tensor called name, or NULL. */
const TensorView *st_find(const SafeTensors *st, const char *name);
/* Like st_find, but a missing tensor is an error naming it and the file. */
const TensorView *st_get(const SafeTensors *st, const char *name, Err *e);
int st_count(const SafeTensors *st);
/* The i-th tensor (0 <= i < st_count), ordered by name. */
const TensorView *st_tensor(const SafeTensors *st, int i);
/* A "__metadata__" value (of the first shard for sharded checkpoints) or
 * NULL. Non-string metadata values are an error at open. */
const char *st_metadata(const SafeTensors *st, const char *key);
/* The path st_open was given. */
const char *st_path(const SafeTensors *st);
/* The file (shard) holding t, for messages; st_path when t is not one of
 * st's mapped tensors. */
const char *st_file_of(const SafeTensors *st, const TensorView *t);
/* The shard's map [p, p + n) lies in, else NULL (always for
 * st_open_mem): as gguf_map_holding. */
const FileMap *st_map_holding(const SafeTensors *st, const void *p, size_t n);

/* Writes tensors (data copied as-is; dtype must have a safetensors name:
 * F32, F16, BF16, F64, I8..I64, U8, BOOL) with optional string metadata
 * (alternating key, value, ..., NULL; may be NULL) to path atomically:
 * a temporary file in the same directory, fsync, rename. Names must be
 * unique. Tensors are written in the order given. */
int st_write(const char *path, const TensorView *tensors, int n, const char *const *metadata,
             Err *e);

/* Writes a model.safetensors.index.json for shards already written:
 * names[i] lives in shard file shard_of[i] (a base name), total_size is the
 * sum of tensor bytes (stored under "metadata"). Atomic. */
int st_write_index(const char *path, const char *const *names, const char *const *shard_of, int n,
                   size_t total_size, Err *e);

/* Writes a checkpoint's weights into directory dir the way transformers
 * does: one model.safetensors when they total at most max_shard_bytes
 * (0 = no limit), else model-0000i-of-0000N.safetensors shards (tensors in
 * the order given, a new shard when the next tensor would overflow) plus
 * model.safetensors.index.json. Each file is replaced atomically, and a
 * save over an earlier one never leaves a mix: an old index is removed
 * before shards of the same names are rewritten, the new index is written
 * last, and then files of the other layout and shards the new save does not
 * list are removed, so st_open(dir) sees exactly the new weights. */
int st_write_model(const char *dir, const TensorView *tensors, int n, const char *const *metadata,
                   size_t max_shard_bytes, Err *e);

#endif
