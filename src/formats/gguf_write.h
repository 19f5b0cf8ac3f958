/* gguf_write: builds a GGUF v3 file (metadata + tensors) for llama.cpp and
 * Ollama, written atomically.
 *
 * Metadata keys keep insertion order; setting a key again replaces its
 * value in place. Tensors are referenced, not copied: their data must stay
 * valid until gguf_writer_write returns. Tensor shapes are given the
 * TensorView way (outermost first) and written innermost-first as GGUF
 * wants. Alignment is general.alignment when set (a power of two), else 32. */
#ifndef ALOE_FORMATS_GGUF_WRITE_H
#define ALOE_FORMATS_GGUF_WRITE_H

#include <stddef.h>
#include <stdint.h>

#include "base/err.h"
#include "formats/gguf.h"
#include "formats/tensor.h"

typedef struct GgufWriter GgufWriter;

GgufWriter *gguf_writer_new(void);
void gguf_writer_free(GgufWriter *w);

/* A scalar of any numeric GGUF type (GGUF_U8 .. GGUF_F64, GGUF_BOOL);
 * value points to one element of that type. */
void gguf_set_scalar(GgufWriter *w, const char *key, int type, const void *value);
void gguf_set_u32(GgufWriter *w, const char *key, uint32_t v);
void gguf_set_i32(GgufWriter *w, const char *key, int32_t v);
void gguf_set_u64(GgufWriter *w, const char *key, uint64_t v);
void gguf_set_f32(GgufWriter *w, const char *key, float v);
void gguf_set_bool(GgufWriter *w, const char *key, int v);
void gguf_set_str(GgufWriter *w, const char *key, const char *s);
/* Numeric array of n elements of `type`, packed little-endian at data. */
void gguf_set_arr(GgufWriter *w, const char *key, int type, const void *data, uint64_t n);
void gguf_set_arr_str(GgufWriter *w, const char *key, const char *const *items, uint64_t n);
void gguf_set_arr_strn(GgufWriter *w, const char *key, const GgufStr *items, uint64_t n);
/* Copies one metadata item read from another file. */
void gguf_set_kv(GgufWriter *w, const GgufKV *kv);

/* Adds a tensor of any GGUF dtype (F32/F16/BF16/Q8_0/Q4_0/Q4_K/Q6_K/...);
 * its rows must be whole blocks and nbytes must match its shape. */
int gguf_writer_add_tensor(GgufWriter *w, const TensorView *t, Err *e);
int gguf_writer_write(GgufWriter *w, const char *path, Err *e);

#endif
