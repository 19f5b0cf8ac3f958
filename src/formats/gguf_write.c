/* gguf_write: GGUF v3 writer. Each metadata value is kept serialised (type
 * tag + payload) so writing is a straight copy. */
#include "formats/gguf_write.h"

#include <stdlib.h>
#include <string.h>

#include "base/mem.h"
#include "formats/outfile.h"

typedef struct WKV {
    char *key;
    StrBuf val; /* u32 type, then the value as stored in the file */
} WKV;

struct GgufWriter {
    WKV *kv;
    int n_kv, cap_kv;
    TensorView *t;
    int n_t, cap_t;
};

static size_t scalar_size(int t) {
    switch (t) {
    case GGUF_U8: case GGUF_I8: case GGUF_BOOL: return 1;
    case GGUF_U16: case GGUF_I16: return 2;
    case GGUF_U32: case GGUF_I32: case GGUF_F32: return 4;
    case GGUF_U64: case GGUF_I64: case GGUF_F64: return 8;
    }
    return 0;
}

GgufWriter *gguf_writer_new(void) { return xcalloc(1, sizeof(GgufWriter)); }

void gguf_writer_free(GgufWriter *w) {
    if (!w) return;
    for (int i = 0; i < w->n_kv; i++) {
        free(w->kv[i].key);
        sb_free(&w->kv[i].val);
    }
    free(w->kv);
    free(w->t);
    free(w);
}

/* The value buffer for key, emptied (existing keys keep their position). */
static StrBuf *slot(GgufWriter *w, const char *key, int type) {
    StrBuf *b = NULL;
    for (int i = 0; i < w->n_kv && !b; i++)
        if (!strcmp(w->kv[i].key, key)) b = &w->kv[i].val;
    if (!b) {
        if (w->n_kv == w->cap_kv) {
            w->cap_kv = w->cap_kv ? 2 * w->cap_kv : 32;
            w->kv = xrealloc(w->kv, (size_t)w->cap_kv * sizeof(WKV));
        }
        WKV *kv = &w->kv[w->n_kv++];
        kv->key = xstrdup(key);
        sb_init(&kv->val);
        b = &kv->val;
    }
    sb_clear(b);
    uint32_t t = (uint32_t)type;
    sb_appendn(b, (const char *)&t, 4);
    return b;
}

static void put_u64(StrBuf *b, uint64_t v) { sb_appendn(b, (const char *)&v, 8); }

static void put_str(StrBuf *b, const char *s, uint64_t len) {
    put_u64(b, len);
    sb_appendn(b, s, (size_t)len);
}

void gguf_set_scalar(GgufWriter *w, const char *key, int type, const void *value) {
    StrBuf *b = slot(w, key, type);
    sb_appendn(b, value, scalar_size(type));
}

void gguf_set_u32(GgufWriter *w, const char *key, uint32_t v) { gguf_set_scalar(w, key, GGUF_U32, &v); }
void gguf_set_i32(GgufWriter *w, const char *key, int32_t v) { gguf_set_scalar(w, key, GGUF_I32, &v); }
void gguf_set_u64(GgufWriter *w, const char *key, uint64_t v) { gguf_set_scalar(w, key, GGUF_U64, &v); }
void gguf_set_f32(GgufWriter *w, const char *key, float v) { gguf_set_scalar(w, key, GGUF_F32, &v); }

void gguf_set_bool(GgufWriter *w, const char *key, int v) {
    uint8_t b = v != 0;
    gguf_set_scalar(w, key, GGUF_BOOL, &b);
}

void gguf_set_str(GgufWriter *w, const char *key, const char *s) {
    put_str(slot(w, key, GGUF_STRING), s, strlen(s));
}

void gguf_set_arr(GgufWriter *w, const char *key, int type, const void *data, uint64_t n) {
    StrBuf *b = slot(w, key, GGUF_ARRAY);
    uint32_t t = (uint32_t)type;
    sb_appendn(b, (const char *)&t, 4);
    put_u64(b, n);
    sb_appendn(b, data, (size_t)n * scalar_size(type));
}

static StrBuf *arr_str_head(GgufWriter *w, const char *key, uint64_t n) {
    StrBuf *b = slot(w, key, GGUF_ARRAY);
    uint32_t t = GGUF_STRING;
    sb_appendn(b, (const char *)&t, 4);
    put_u64(b, n);
    return b;
}

void gguf_set_arr_str(GgufWriter *w, const char *key, const char *const *items, uint64_t n) {
    StrBuf *b = arr_str_head(w, key, n);
    for (uint64_t i = 0; i < n; i++) put_str(b, items[i], strlen(items[i]));
}

void gguf_set_arr_strn(GgufWriter *w, const char *key, const GgufStr *items, uint64_t n) {
    StrBuf *b = arr_str_head(w, key, n);
    for (uint64_t i = 0; i < n; i++) put_str(b, items[i].s, items[i].len);
}

void gguf_set_kv(GgufWriter *w, const GgufKV *kv) {
    if (kv->type == GGUF_STRING) {
        put_str(slot(w, kv->key, GGUF_STRING), kv->str, kv->str_len);
    } else if (kv->type == GGUF_ARRAY) {
        if (kv->arr_type == GGUF_STRING) gguf_set_arr_strn(w, kv->key, kv->strs, kv->n);
        else gguf_set_arr(w, kv->key, kv->arr_type, kv->arr, kv->n);
    } else {
        /* re-encode from the decoded fields in the item's own type */
        union { uint8_t u8; int8_t i8; uint16_t u16; int16_t i16; uint32_t u32; int32_t i32;
                float f32; uint64_t u64; int64_t i64; double f64; } v;
        switch (kv->type) {
        case GGUF_U8: case GGUF_BOOL: v.u8 = (uint8_t)kv->u; break;
        case GGUF_I8: v.i8 = (int8_t)kv->i; break;
        case GGUF_U16: v.u16 = (uint16_t)kv->u; break;
        case GGUF_I16: v.i16 = (int16_t)kv->i; break;
        case GGUF_U32: v.u32 = (uint32_t)kv->u; break;
        case GGUF_I32: v.i32 = (int32_t)kv->i; break;
        case GGUF_U64: v.u64 = kv->u; break;
        case GGUF_I64: v.i64 = kv->i; break;
        case GGUF_F32: v.f32 = (float)kv->f; break;
        case GGUF_F64: v.f64 = kv->f; break;
        default: return;
        }
        gguf_set_scalar(w, kv->key, kv->type, &v);
    }
}

int gguf_writer_add_tensor(GgufWriter *w, const TensorView *t, Err *e) {
    if (!t->name || !t->name[0]) return err_set(e, ERR_ARG, "GGUF writer: a tensor has no name");
    if (!dtype_valid(t->dtype) || t->dtype >= DT_U8)
        return err_set(e, ERR_UNSUPPORTED, "GGUF writer: tensor %s: type %s cannot be stored in GGUF", t->name,
                       dtype_name(t->dtype));
    if (t->ndim < 1 || t->ndim > TENSOR_MAX_DIMS)
        return err_set(e, ERR_ARG, "GGUF writer: tensor %s: %d dimensions (expected 1..%d)", t->name, t->ndim,
                       TENSOR_MAX_DIMS);
    if (tensor_cols(t) % dtype_block_size(t->dtype) || dtype_nbytes(t->dtype, tensor_numel(t)) != t->nbytes)
        return err_set(e, ERR_ARG, "GGUF writer: tensor %s: %zu bytes do not hold its shape in whole %s blocks",
                       t->name, t->nbytes, dtype_name(t->dtype));
    for (int i = 0; i < w->n_t; i++)
        if (!strcmp(w->t[i].name, t->name)) return err_set(e, ERR_ARG, "GGUF writer: tensor %s added twice", t->name);
    if (w->n_t == w->cap_t) {
        w->cap_t = w->cap_t ? 2 * w->cap_t : 64;
        w->t = xrealloc(w->t, (size_t)w->cap_t * sizeof(TensorView));
    }
    w->t[w->n_t++] = *t;
    return 0;
}

static size_t align_up(size_t x, size_t a) { return (x + a - 1) / a * a; }

static size_t alignment_of(const GgufWriter *w) {
    for (int i = 0; i < w->n_kv; i++) {
        const StrBuf *b = &w->kv[i].val;
        if (strcmp(w->kv[i].key, "general.alignment") || b->len != 8) continue;
        uint32_t type, v;
        memcpy(&type, b->s, 4);
        memcpy(&v, b->s + 4, 4);
        if (type == GGUF_U32 && v && !(v & (v - 1))) return v;
    }
    return GGUF_DEFAULT_ALIGNMENT;
}

int gguf_writer_write(GgufWriter *w, const char *path, Err *e) {
    size_t align = alignment_of(w);
    StrBuf h;
    sb_init(&h);
    uint32_t version = 3;
    sb_appendn(&h, "GGUF", 4);
    sb_appendn(&h, (const char *)&version, 4);
    put_u64(&h, (uint64_t)w->n_t);
    put_u64(&h, (uint64_t)w->n_kv);
    for (int i = 0; i < w->n_kv; i++) {
        put_str(&h, w->kv[i].key, strlen(w->kv[i].key));
        sb_appendn(&h, w->kv[i].val.s, w->kv[i].val.len);
    }
    size_t off = 0;
    for (int i = 0; i < w->n_t; i++) {
        const TensorView *t = &w->t[i];
        put_str(&h, t->name, strlen(t->name));
        uint32_t nd = (uint32_t)t->ndim, type = (uint32_t)t->dtype;
        sb_appendn(&h, (const char *)&nd, 4);
        for (int d = t->ndim - 1; d >= 0; d--) put_u64(&h, (uint64_t)t->shape[d]);
        sb_appendn(&h, (const char *)&type, 4);
        put_u64(&h, off);
        off = align_up(off + t->nbytes, align);
    }
    OutFile o;
    int rc = outfile_open(&o, path, e);
    /* llama.cpp pads the header only when tensor data follows */
    if (!rc) rc = outfile_write(&o, h.s, h.len, e) || (w->n_t && outfile_pad(&o, align_up(h.len, align) - h.len, e));
    for (int i = 0; i < w->n_t && !rc; i++) {
        const TensorView *t = &w->t[i];
        rc = outfile_write(&o, t->data, t->nbytes, e) || outfile_pad(&o, align_up(t->nbytes, align) - t->nbytes, e);
    }
    if (!rc) rc = outfile_commit(&o, e);
    else if (o.path) outfile_abort(&o);
    sb_free(&h);
    return rc ? -1 : 0;
}
