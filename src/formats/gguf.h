/* gguf: memory-mapped reader of GGUF v2/v3 files (llama.cpp's format).
 *
 * Layout (little-endian): magic "GGUF", u32 version, u64 tensor count,
 * u64 metadata count, metadata key/values, tensor infos (name, n_dims,
 * dims innermost-first, type, offset), padding to general.alignment
 * (default 32), tensor data. Strings are u64 length + bytes (no NUL).
 *
 * Everything is validated against the file size at open (lengths, counts,
 * array sizes, tensor extents and alignment), so later lookups never read
 * outside the map. Scalar strings are copied NUL-terminated; arrays stay in
 * the map (string arrays get a {ptr,len} table, so a 150k-token vocabulary
 * costs one pass and no copies). */
#ifndef ALOE_FORMATS_GGUF_H
#define ALOE_FORMATS_GGUF_H

#include <stddef.h>
#include <stdint.h>

#include "base/err.h"
#include "base/fileio.h"
#include "formats/tensor.h"

/* Metadata value types as stored in the file. */
enum {
    GGUF_U8 = 0,
    GGUF_I8 = 1,
    GGUF_U16 = 2,
    GGUF_I16 = 3,
    GGUF_U32 = 4,
    GGUF_I32 = 5,
    GGUF_F32 = 6,
    GGUF_BOOL = 7,
    GGUF_STRING = 8,
    GGUF_ARRAY = 9,
    GGUF_U64 = 10,
    GGUF_I64 = 11,
    GGUF_F64 = 12,
    GGUF_NTYPES
};

#define GGUF_DEFAULT_ALIGNMENT 32

/* A string inside the map: not NUL-terminated. */
typedef struct GgufStr {
    const char *s;
    uint64_t len;
} GgufStr;

typedef struct GgufKV {
    char *key;      /* NUL-terminated copy */
    int type;       /* GGUF_* */
    int arr_type;   /* element type when type == GGUF_ARRAY */
    uint64_t n;     /* array length; 1 for scalars */
    /* scalars: integers and bools in i (signed types) / u (unsigned, bool);
     * floats in f; every integer scalar also sets f. */
    int64_t i;
    uint64_t u;
    double f;
    char *str;          /* GGUF_STRING scalar: NUL-terminated copy */
    uint64_t str_len;
    const void *arr;    /* numeric array: n elements in the map (unaligned) */
    GgufStr *strs;      /* string array: n entries pointing into the map */
} GgufKV;

typedef struct Gguf Gguf;

Gguf *gguf_open(const char *path, Err *e);
/* Parses a buffer that stays alive and unchanged while the Gguf is open
 * (used by the fuzzer and tests); name appears in messages. */
Gguf *gguf_open_mem(const void *data, size_t size, const char *name, Err *e);
void gguf_close(Gguf *g);

uint32_t gguf_version(const Gguf *g);
size_t gguf_alignment(const Gguf *g);
/* Offset of the tensor data section from the start of the file. */
size_t gguf_data_offset(const Gguf *g);
const char *gguf_path(const Gguf *g);
/* The file's map when [p, p + n) lies in it, else NULL (always for
 * gguf_open_mem): bytes there may be read with file_map_read and released
 * with file_map_release. */
const FileMap *gguf_map_holding(const Gguf *g, const void *p, size_t n);

int gguf_n_kv(const Gguf *g);
const GgufKV *gguf_kv(const Gguf *g, int i);
/* NULL if absent. */
const GgufKV *gguf_find_key(const Gguf *g, const char *key);
const char *gguf_type_name(int type);

/* Typed getters: 0 on success; -1 with an error naming the key when it is
 * missing (ERR_NOTFOUND) or has an incompatible type (ERR_PARSE). Integer
 * getters accept any integer type whose value fits; float getters accept
 * F32, F64 and integers. */
int gguf_get_u32(const Gguf *g, const char *key, uint32_t *out, Err *e);
int gguf_get_i32(const Gguf *g, const char *key, int32_t *out, Err *e);
int gguf_get_u64(const Gguf *g, const char *key, uint64_t *out, Err *e);
int gguf_get_f32(const Gguf *g, const char *key, float *out, Err *e);
int gguf_get_bool(const Gguf *g, const char *key, int *out, Err *e);
/* *out points to the Gguf's NUL-terminated copy (valid until gguf_close). */
int gguf_get_str(const Gguf *g, const char *key, const char **out, Err *e);
/* Array getters: the array must have the right element kind. */
int gguf_get_arr_str(const Gguf *g, const char *key, const GgufStr **items, uint64_t *n, Err *e);
/* Numeric arrays converted into a new xmalloc'd buffer (caller frees);
 * i32 accepts any integer element type whose values fit, f32 accepts F32,
 * F64 and integers. */
int gguf_get_arr_i32(const Gguf *g, const char *key, int32_t **out, uint64_t *n, Err *e);
int gguf_get_arr_f32(const Gguf *g, const char *key, float **out, uint64_t *n, Err *e);
/* Element i of a numeric array kv as a double / int64 (no bounds check
 * beyond i < kv->n, which the caller ensures). */
double gguf_arr_f64(const GgufKV *kv, uint64_t i);
int64_t gguf_arr_i64(const GgufKV *kv, uint64_t i);

int gguf_n_tensors(const Gguf *g);
const TensorView *gguf_tensor(const Gguf *g, int i);
/* NULL if absent. */
const TensorView *gguf_find_tensor(const Gguf *g, const char *name);
/* Missing tensor is an error naming it and the file. */
const TensorView *gguf_get_tensor(const Gguf *g, const char *name, Err *e);

/* llama.cpp's HF converter reorders the rows of Q and K projections of the
 * `llama` architecture (Llama, Mistral) within each head: HF row
 * h*hd + s*hd/2 + i is stored at row h*hd + 2*i + s (hd = rows/n_head).
 * gguf_unpermute_qk undoes that in place on `rows` rows of row_bytes bytes
 * (any dtype: whole rows move). For K use n_head = the number of KV heads.
 * gguf_permute_qk is the converter's direction (for writing GGUF).
 * Returns -1 if rows is not a multiple of 2*n_head. */
/* 1 when the file's Q/K rows are in llama.cpp's permuted order: GGUF
 * architecture "llama" (Llama, Mistral converted by llama.cpp). */
int gguf_qk_permuted(const Gguf *g);
int gguf_unpermute_qk(void *data, int64_t rows, size_t row_bytes, int n_head, Err *e);
int gguf_permute_qk(void *data, int64_t rows, size_t row_bytes, int n_head, Err *e);

#endif
