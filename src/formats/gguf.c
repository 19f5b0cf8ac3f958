/* gguf: GGUF reader. Parsing walks a bounds-checked cursor over the map;
 * every read checks the bytes remain, so truncated or hostile files end in
 * an error naming the file, the item and the offset. */
#include "formats/gguf.h"

#include <limits.h>
#include <stdlib.h>
#include <string.h>

#include "base/fileio.h"
#include "base/mem.h"

struct Gguf {
    char *path;
    FileMap map; /* empty when opened from memory */
    const uint8_t *base;
    size_t size;
    uint32_t version;
    size_t alignment, data_offset;
    int n_kv, n_tensors;
    GgufKV *kv;
    TensorView *tensors;
    char **tensor_names;
    int *by_name; /* tensor indexes sorted by name, for bsearch */
    int *kv_by_key;
};

typedef struct Cur {
    const uint8_t *p;
    size_t pos, size;
    const char *file;
    Err *e;
} Cur;

static int need(Cur *c, uint64_t n, const char *what) {
    if (n > c->size - c->pos)
        return err_set(c->e, ERR_PARSE, "%s: truncated at offset %zu reading %s (need %llu bytes, %zu left)",
                       c->file, c->pos, what, (unsigned long long)n, c->size - c->pos);
    return 0;
}

static int rd_bytes(Cur *c, void *out, size_t n, const char *what) {
    if (need(c, n, what)) return -1;
    memcpy(out, c->p + c->pos, n);
    c->pos += n;
    return 0;
}

/* ggml's names for its tensor types, for errors about the ones aloe does not
 * read (the numbers are the GGUF format's, ggml_type). */
static const char *ggml_type_name(uint32_t type) {
    static const char *const names[] = {
        [0] = "F32",      [1] = "F16",      [2] = "Q4_0",    [3] = "Q4_1",     [6] = "Q5_0",     [7] = "Q5_1",
        [8] = "Q8_0",     [9] = "Q8_1",     [10] = "Q2_K",   [11] = "Q3_K",    [12] = "Q4_K",    [13] = "Q5_K",
        [14] = "Q6_K",    [15] = "Q8_K",    [16] = "IQ2_XXS", [17] = "IQ2_XS", [18] = "IQ3_XXS", [19] = "IQ1_S",
        [20] = "IQ4_NL",  [21] = "IQ3_S",   [22] = "IQ2_S",  [23] = "IQ4_XS",  [24] = "I8",      [25] = "I16",
        [26] = "I32",     [27] = "I64",     [28] = "F64",    [29] = "IQ1_M",   [30] = "BF16",    [34] = "TQ1_0",
        [35] = "TQ2_0",
    };
    return type < sizeof names / sizeof *names && names[type] ? names[type] : "unknown";
}

static int rd_u32(Cur *c, uint32_t *v, const char *what) { return rd_bytes(c, v, 4, what); }
static int rd_u64(Cur *c, uint64_t *v, const char *what) { return rd_bytes(c, v, 8, what); }

static int rd_str(Cur *c, GgufStr *s, const char *what) {
    uint64_t len;
    if (rd_u64(c, &len, what) || need(c, len, what)) return -1;
    s->s = (const char *)c->p + c->pos;
    s->len = len;
    c->pos += len;
    return 0;
}

static size_t scalar_size(int t) {
    switch (t) {
    case GGUF_U8: case GGUF_I8: case GGUF_BOOL: return 1;
    case GGUF_U16: case GGUF_I16: return 2;
    case GGUF_U32: case GGUF_I32: case GGUF_F32: return 4;
    case GGUF_U64: case GGUF_I64: case GGUF_F64: return 8;
    }
    return 0;
}

const char *gguf_type_name(int t) {
    static const char *names[] = {"u8", "i8", "u16", "i16", "u32", "i32", "f32",
                                  "bool", "string", "array", "u64", "i64", "f64"};
    return t >= 0 && t < GGUF_NTYPES ? names[t] : "?";
}

static int is_int_type(int t) { return t != GGUF_F32 && t != GGUF_F64 && scalar_size(t) > 0; }
static int is_signed_type(int t) {
    return t == GGUF_I8 || t == GGUF_I16 || t == GGUF_I32 || t == GGUF_I64;
}

/* Reads one numeric scalar of type t at p into the kv's i/u/f fields. */
static void decode_scalar(int t, const uint8_t *p, int64_t *i, uint64_t *u, double *f) {
    union { uint8_t u8; int8_t i8; uint16_t u16; int16_t i16; uint32_t u32; int32_t i32;
            float f32; uint64_t u64; int64_t i64; double f64; } v;
    memcpy(&v, p, scalar_size(t));
    switch (t) {
    case GGUF_U8: case GGUF_BOOL: *u = v.u8; break;
    case GGUF_I8: *i = v.i8; break;
    case GGUF_U16: *u = v.u16; break;
    case GGUF_I16: *i = v.i16; break;
    case GGUF_U32: *u = v.u32; break;
    case GGUF_I32: *i = v.i32; break;
    case GGUF_U64: *u = v.u64; break;
    case GGUF_I64: *i = v.i64; break;
    case GGUF_F32: *f = v.f32; return;
    case GGUF_F64: *f = v.f64; return;
    }
    if (is_signed_type(t)) {
        *u = *i >= 0 ? (uint64_t)*i : 0;
        *f = (double)*i;
    } else {
        *i = *u <= INT64_MAX ? (int64_t)*u : INT64_MAX;
        *f = (double)*u;
    }
}

static int parse_value(Cur *c, GgufKV *kv) {
    if (kv->type == GGUF_STRING) {
        GgufStr s;
        if (rd_str(c, &s, kv->key)) return -1;
        kv->str = xstrndup(s.s, s.len);
        kv->str_len = s.len;
        return 0;
    }
    if (kv->type == GGUF_ARRAY) {
        uint32_t at;
        if (rd_u32(c, &at, kv->key) || rd_u64(c, &kv->n, kv->key)) return -1;
        kv->arr_type = (int)at;
        if (at == GGUF_STRING) {
            /* each string needs at least its 8-byte length */
            if (need(c, kv->n > SIZE_MAX / 8 ? UINT64_MAX : kv->n * 8, kv->key)) return -1;
            kv->strs = xmalloc((size_t)(kv->n ? kv->n : 1) * sizeof(GgufStr));
            for (uint64_t i = 0; i < kv->n; i++)
                if (rd_str(c, &kv->strs[i], kv->key)) return -1;
            return 0;
        }
        size_t es = scalar_size((int)at);
        if (!es)
            return err_set(c->e, ERR_PARSE, "%s: key %s: unsupported array element type %u (nested arrays are not allowed)",
                           c->file, kv->key, at);
        if (kv->n > SIZE_MAX / es || need(c, kv->n * es, kv->key)) {
            if (kv->n > SIZE_MAX / es) err_set(c->e, ERR_PARSE, "%s: key %s: array length %llu too large", c->file, kv->key, (unsigned long long)kv->n);
            return -1;
        }
        kv->arr = c->p + c->pos;
        c->pos += kv->n * es;
        return 0;
    }
    size_t sz = scalar_size(kv->type);
    if (!sz) return err_set(c->e, ERR_PARSE, "%s: key %s: unknown value type %d", c->file, kv->key, kv->type);
    if (need(c, sz, kv->key)) return -1;
    decode_scalar(kv->type, c->p + c->pos, &kv->i, &kv->u, &kv->f);
    c->pos += sz;
    kv->n = 1;
    return 0;
}

/* Index arrays sorted by a small merge sort that takes a context (C11's
 * qsort has none, and a file-static context would be shared state). */
typedef int (*CmpFn)(const void *ctx, int a, int b);

static void msort(int *a, int *tmp, int n, CmpFn cmp, const void *ctx) {
    if (n < 2) return;
    int h = n / 2;
    msort(a, tmp, h, cmp, ctx);
    msort(a + h, tmp, n - h, cmp, ctx);
    int i = 0, j = h, k = 0;
    while (i < h && j < n) tmp[k++] = cmp(ctx, a[i], a[j]) <= 0 ? a[i++] : a[j++];
    while (i < h) tmp[k++] = a[i++];
    while (j < n) tmp[k++] = a[j++];
    memcpy(a, tmp, (size_t)n * sizeof(int));
}

static int cmp_tensor(const void *ctx, int a, int b) {
    const Gguf *g = ctx;
    return strcmp(g->tensors[a].name, g->tensors[b].name);
}

static int cmp_kv(const void *ctx, int a, int b) {
    const Gguf *g = ctx;
    return strcmp(g->kv[a].key, g->kv[b].key);
}

static int *sorted_index(const Gguf *g, int n, CmpFn cmp) {
    int *idx = xmalloc((size_t)(n ? n : 1) * sizeof(int)), *tmp = xmalloc((size_t)(n ? n : 1) * sizeof(int));
    for (int i = 0; i < n; i++) idx[i] = i;
    msort(idx, tmp, n, cmp, g);
    free(tmp);
    return idx;
}

static int parse_kvs(Gguf *g, Cur *c, uint64_t n) {
    /* each kv is at least 8 (key len) + 4 (type) bytes */
    if (n > (c->size - c->pos) / 12)
        return err_set(c->e, ERR_PARSE, "%s: metadata count %llu does not fit in the file", c->file,
                       (unsigned long long)n);
    g->kv = xcalloc((size_t)(n ? n : 1), sizeof(GgufKV));
    for (uint64_t k = 0; k < n; k++) {
        GgufKV *kv = &g->kv[k];
        GgufStr key;
        uint32_t type;
        if (rd_str(c, &key, "a metadata key")) return -1;
        kv->key = xstrndup(key.s, key.len);
        g->n_kv = (int)k + 1;
        if (strlen(kv->key) != key.len)
            return err_set(c->e, ERR_PARSE, "%s: metadata key %llu contains a NUL byte", c->file, (unsigned long long)k);
        if (rd_u32(c, &type, kv->key)) return -1;
        kv->type = (int)type;
        if (parse_value(c, kv)) return -1;
    }
    g->kv_by_key = sorted_index(g, g->n_kv, cmp_kv);
    for (int k = 1; k < g->n_kv; k++)
        if (!strcmp(g->kv[g->kv_by_key[k - 1]].key, g->kv[g->kv_by_key[k]].key))
            return err_set(c->e, ERR_PARSE, "%s: duplicate metadata key %s", c->file, g->kv[g->kv_by_key[k]].key);
    return 0;
}

static int parse_tensor_info(Gguf *g, Cur *c, int k, uint64_t *offset) {
    TensorView *t = &g->tensors[k];
    GgufStr name;
    uint32_t nd, type;
    if (rd_str(c, &name, "a tensor name")) return -1;
    g->tensor_names[k] = xstrndup(name.s, name.len);
    t->name = g->tensor_names[k];
    if (rd_u32(c, &nd, t->name)) return -1;
    if (nd < 1 || nd > TENSOR_MAX_DIMS)
        return err_set(c->e, ERR_PARSE, "%s: tensor %s: %u dimensions (expected 1..%d)", c->file, t->name, nd,
                       TENSOR_MAX_DIMS);
    t->ndim = (int)nd;
    for (int i = 0; i < TENSOR_MAX_DIMS; i++) t->shape[i] = 1;
    for (uint32_t i = 0; i < nd; i++) {
        uint64_t d;
        if (rd_u64(c, &d, t->name)) return -1;
        if (d > INT64_MAX)
            return err_set(c->e, ERR_PARSE, "%s: tensor \"%s\": dimension %u = %llu is larger than INT64_MAX", c->file,
                           t->name, i, (unsigned long long)d);
        t->shape[nd - 1 - i] = (int64_t)d; /* GGUF lists the innermost dimension first */
    }
    int64_t numel;
    if (tensor_shape_numel(t->shape, t->ndim, &numel)) {
        char shape[160];
        return err_set(c->e, ERR_PARSE,
                       "%s: tensor \"%s\": shape %s has more than INT64_MAX elements (its non-zero dimensions "
                       "must multiply to a size that fits)",
                       c->file, t->name, tensor_shape_str(t, shape, sizeof shape));
    }
    if (rd_u32(c, &type, t->name) || rd_u64(c, offset, t->name)) return -1;
    t->dtype = (int)type;
    if (!dtype_valid(t->dtype) || t->dtype >= DT_U8)
        return err_set(c->e, ERR_UNSUPPORTED,
                       "%s: tensor %s: type %s (%u) is not supported (aloe reads F32, F16, BF16, Q8_0, Q4_0, Q4_1, "
                       "Q5_0, Q5_1, IQ4_NL, Q2_K, Q3_K, Q4_K, Q5_K, Q6_K and IQ4_XS)", c->file, t->name, ggml_type_name(type), type);
    if (t->shape[nd - 1] % dtype_block_size(t->dtype))
        return err_set(c->e, ERR_PARSE, "%s: tensor %s: row of %lld elements is not a whole number of %s blocks",
                       c->file, t->name, (long long)t->shape[nd - 1], dtype_name(t->dtype));
    t->nbytes = dtype_nbytes(t->dtype, numel);
    if (numel && !t->nbytes)
        return err_set(c->e, ERR_PARSE, "%s: tensor %s: size overflows", c->file, t->name);
    return 0;
}

typedef struct Extent {
    uint64_t begin, end;
    int idx;
} Extent;

static int cmp_extent(const void *a, const void *b) {
    const Extent *x = a, *y = b;
    return x->begin < y->begin ? -1 : x->begin > y->begin ? 1 : x->idx - y->idx;
}

/* Two tensors sharing bytes would alias: writing one (a LoRA merge, a
 * conversion in place) would change the other, and no converter writes
 * such a file. Empty tensors occupy nothing and may sit anywhere. */
static int check_overlaps(const Gguf *g, Cur *c, const uint64_t *offsets, uint64_t n) {
    Extent *x = xmalloc((size_t)(n ? n : 1) * sizeof *x);
    int m = 0, rc = 0;
    for (uint64_t k = 0; k < n; k++)
        if (g->tensors[k].nbytes) x[m++] = (Extent){offsets[k], offsets[k] + g->tensors[k].nbytes, (int)k};
    qsort(x, (size_t)m, sizeof *x, cmp_extent);
    for (int k = 1; k < m && !rc; k++)
        if (x[k].begin < x[k - 1].end)
            rc = err_set(c->e, ERR_PARSE,
                         "%s: tensor %s: data [%llu, %llu) overlaps tensor %s [%llu, %llu) (tensors must not share bytes)",
                         c->file, g->tensors[x[k].idx].name, (unsigned long long)x[k].begin,
                         (unsigned long long)x[k].end, g->tensors[x[k - 1].idx].name,
                         (unsigned long long)x[k - 1].begin, (unsigned long long)x[k - 1].end);
    free(x);
    return rc;
}

static int parse_tensors(Gguf *g, Cur *c, uint64_t n) {
    /* each info is at least 8 + 4 + 8 + 4 + 8 bytes */
    if (n > (c->size - c->pos) / 32)
        return err_set(c->e, ERR_PARSE, "%s: tensor count %llu does not fit in the file", c->file,
                       (unsigned long long)n);
    g->tensors = xcalloc((size_t)(n ? n : 1), sizeof(TensorView));
    g->tensor_names = xcalloc((size_t)(n ? n : 1), sizeof(char *));
    uint64_t *offsets = xmalloc((size_t)(n ? n : 1) * sizeof(uint64_t));
    int rc = 0;
    for (uint64_t k = 0; k < n && !rc; k++) {
        g->n_tensors = (int)k + 1;
        rc = parse_tensor_info(g, c, (int)k, &offsets[k]);
    }
    if (!rc) {
        size_t a = g->alignment;
        g->data_offset = (c->pos + a - 1) / a * a;
        if (g->data_offset > c->size && n > 0)
            rc = err_set(c->e, ERR_PARSE, "%s: tensor data section starts at %zu, past the end of the file (%zu bytes)",
                         c->file, g->data_offset, c->size);
    }
    for (uint64_t k = 0; k < n && !rc; k++) {
        TensorView *t = &g->tensors[k];
        size_t avail = c->size > g->data_offset ? c->size - g->data_offset : 0;
        if (offsets[k] % g->alignment)
            rc = err_set(c->e, ERR_PARSE, "%s: tensor %s: data offset %llu is not a multiple of the alignment %zu",
                         c->file, t->name, (unsigned long long)offsets[k], g->alignment);
        else if (offsets[k] > avail || t->nbytes > avail - offsets[k])
            rc = err_set(c->e, ERR_PARSE,
                         "%s: tensor %s: data [%llu, +%zu) runs past the end of the file (%zu bytes of data)",
                         c->file, t->name, (unsigned long long)offsets[k], t->nbytes, avail);
        else
            t->data = g->base + g->data_offset + offsets[k];
    }
    if (!rc) rc = check_overlaps(g, c, offsets, n);
    free(offsets);
    if (rc) return -1;
    g->by_name = sorted_index(g, g->n_tensors, cmp_tensor);
    for (int k = 1; k < g->n_tensors; k++)
        if (!strcmp(g->tensors[g->by_name[k - 1]].name, g->tensors[g->by_name[k]].name))
            return err_set(c->e, ERR_PARSE, "%s: duplicate tensor %s", c->file, g->tensors[g->by_name[k]].name);
    return 0;
}

static int parse(Gguf *g, Err *e) {
    Cur c = {.p = g->base, .pos = 0, .size = g->size, .file = g->path, .e = e};
    char magic[4];
    if (rd_bytes(&c, magic, 4, "magic")) return -1;
    if (memcmp(magic, "GGUF", 4))
        return err_set(e, ERR_PARSE, "%s: not a GGUF file (magic %02x %02x %02x %02x, expected \"GGUF\")", g->path,
                       (uint8_t)magic[0], (uint8_t)magic[1], (uint8_t)magic[2], (uint8_t)magic[3]);
    uint64_t n_tensors, n_kv;
    if (rd_u32(&c, &g->version, "version")) return -1;
    if (g->version < 2 || g->version > 3)
        return err_set(e, ERR_UNSUPPORTED, "%s: GGUF version %u (expected 2 or 3)", g->path, g->version);
    if (rd_u64(&c, &n_tensors, "tensor count") || rd_u64(&c, &n_kv, "metadata count")) return -1;
    if (parse_kvs(g, &c, n_kv)) return -1;
    g->alignment = GGUF_DEFAULT_ALIGNMENT;
    const GgufKV *al = gguf_find_key(g, "general.alignment");
    if (al) {
        if (!is_int_type(al->type) || al->u == 0 || al->u > (1u << 20) || (al->u & (al->u - 1)))
            return err_set(e, ERR_PARSE, "%s: general.alignment must be a power of two integer, got %s %llu", g->path,
                           gguf_type_name(al->type), (unsigned long long)al->u);
        g->alignment = (size_t)al->u;
    }
    return parse_tensors(g, &c, n_tensors);
}

static Gguf *open_common(Gguf *g, Err *e) {
    if (parse(g, e)) {
        gguf_close(g);
        return NULL;
    }
    return g;
}

Gguf *gguf_open_mem(const void *data, size_t size, const char *name, Err *e) {
    Gguf *g = xcalloc(1, sizeof *g);
    g->path = xstrdup(name ? name : "(memory)");
    g->base = data;
    g->size = size;
    return open_common(g, e);
}

Gguf *gguf_open(const char *path, Err *e) {
    Gguf *g = xcalloc(1, sizeof *g);
    g->path = xstrdup(path);
    if (file_map(path, &g->map, e)) {
        free(g->path);
        free(g);
        return NULL;
    }
    g->base = g->map.data;
    g->size = g->map.size;
    return open_common(g, e);
}

void gguf_close(Gguf *g) {
    if (!g) return;
    for (int k = 0; k < g->n_kv; k++) {
        free(g->kv[k].key);
        free(g->kv[k].str);
        free(g->kv[k].strs);
    }
    free(g->kv);
    free(g->kv_by_key);
    for (int k = 0; k < g->n_tensors; k++) free(g->tensor_names[k]);
    free(g->tensor_names);
    free(g->tensors);
    free(g->by_name);
    if (g->map.data) file_unmap(&g->map);
    free(g->path);
    free(g);
}

uint32_t gguf_version(const Gguf *g) { return g->version; }
size_t gguf_alignment(const Gguf *g) { return g->alignment; }
size_t gguf_data_offset(const Gguf *g) { return g->data_offset; }
const char *gguf_path(const Gguf *g) { return g->path; }
const FileMap *gguf_map_holding(const Gguf *g, const void *p, size_t n) {
    return file_map_holds(&g->map, p, n) ? &g->map : NULL;
}
int gguf_n_kv(const Gguf *g) { return g->n_kv; }
const GgufKV *gguf_kv(const Gguf *g, int i) { return i >= 0 && i < g->n_kv ? &g->kv[i] : NULL; }
int gguf_n_tensors(const Gguf *g) { return g->n_tensors; }
const TensorView *gguf_tensor(const Gguf *g, int i) {
    return i >= 0 && i < g->n_tensors ? &g->tensors[i] : NULL;
}

const GgufKV *gguf_find_key(const Gguf *g, const char *key) {
    if (!g->kv_by_key) { /* during parsing: linear */
        for (int k = 0; k < g->n_kv; k++)
            if (!strcmp(g->kv[k].key, key)) return &g->kv[k];
        return NULL;
    }
    int lo = 0, hi = g->n_kv - 1;
    while (lo <= hi) {
        int mid = (lo + hi) / 2, c = strcmp(g->kv[g->kv_by_key[mid]].key, key);
        if (!c) return &g->kv[g->kv_by_key[mid]];
        if (c < 0) lo = mid + 1;
        else hi = mid - 1;
    }
    return NULL;
}

const TensorView *gguf_find_tensor(const Gguf *g, const char *name) {
    int lo = 0, hi = g->n_tensors - 1;
    if (!g->by_name) return NULL;
    while (lo <= hi) {
        int mid = (lo + hi) / 2, c = strcmp(g->tensors[g->by_name[mid]].name, name);
        if (!c) return &g->tensors[g->by_name[mid]];
        if (c < 0) lo = mid + 1;
        else hi = mid - 1;
    }
    return NULL;
}

const TensorView *gguf_get_tensor(const Gguf *g, const char *name, Err *e) {
    const TensorView *t = gguf_find_tensor(g, name);
    if (!t) err_set(e, ERR_NOTFOUND, "%s: no tensor %s", g->path, name);
    return t;
}

/* ---- typed getters ---- */

static const GgufKV *want(const Gguf *g, const char *key, Err *e) {
    const GgufKV *kv = gguf_find_key(g, key);
    if (!kv) err_set(e, ERR_NOTFOUND, "%s: missing metadata key %s", g->path, key);
    return kv;
}

static int wrong_type(const Gguf *g, const GgufKV *kv, const char *expected, Err *e) {
    if (kv->type == GGUF_ARRAY)
        return err_set(e, ERR_PARSE, "%s: metadata %s is an array of %s, expected %s", g->path, kv->key,
                       gguf_type_name(kv->arr_type), expected);
    return err_set(e, ERR_PARSE, "%s: metadata %s has type %s, expected %s", g->path, kv->key,
                   gguf_type_name(kv->type), expected);
}

static int get_int(const Gguf *g, const char *key, int64_t lo, uint64_t hi, int64_t *out, Err *e) {
    const GgufKV *kv = want(g, key, e);
    if (!kv) return -1;
    if (!is_int_type(kv->type) || kv->type == GGUF_BOOL) return wrong_type(g, kv, "an integer", e);
    int neg = is_signed_type(kv->type) && kv->i < 0;
    if ((neg && kv->i < lo) || (!neg && kv->u > hi))
        return err_set(e, ERR_PARSE, "%s: metadata %s = %lld is out of range", g->path, key,
                       neg ? (long long)kv->i : (long long)kv->u);
    *out = neg ? kv->i : (int64_t)kv->u;
    return 0;
}

int gguf_get_u32(const Gguf *g, const char *key, uint32_t *out, Err *e) {
    int64_t v;
    if (get_int(g, key, 0, UINT32_MAX, &v, e)) return -1;
    *out = (uint32_t)v;
    return 0;
}

int gguf_get_i32(const Gguf *g, const char *key, int32_t *out, Err *e) {
    int64_t v;
    if (get_int(g, key, INT32_MIN, INT32_MAX, &v, e)) return -1;
    *out = (int32_t)v;
    return 0;
}

int gguf_get_u64(const Gguf *g, const char *key, uint64_t *out, Err *e) {
    const GgufKV *kv = want(g, key, e);
    if (!kv) return -1;
    if (!is_int_type(kv->type) || kv->type == GGUF_BOOL) return wrong_type(g, kv, "an integer", e);
    if (is_signed_type(kv->type) && kv->i < 0)
        return err_set(e, ERR_PARSE, "%s: metadata %s = %lld is negative", g->path, key, (long long)kv->i);
    *out = kv->u;
    return 0;
}

int gguf_get_f32(const Gguf *g, const char *key, float *out, Err *e) {
    const GgufKV *kv = want(g, key, e);
    if (!kv) return -1;
    if (kv->type == GGUF_ARRAY || kv->type == GGUF_STRING || kv->type == GGUF_BOOL || !scalar_size(kv->type))
        return wrong_type(g, kv, "a number", e);
    *out = (float)kv->f;
    return 0;
}

int gguf_get_bool(const Gguf *g, const char *key, int *out, Err *e) {
    const GgufKV *kv = want(g, key, e);
    if (!kv) return -1;
    if (kv->type != GGUF_BOOL) return wrong_type(g, kv, "bool", e);
    *out = kv->u != 0;
    return 0;
}

int gguf_get_str(const Gguf *g, const char *key, const char **out, Err *e) {
    const GgufKV *kv = want(g, key, e);
    if (!kv) return -1;
    if (kv->type != GGUF_STRING) return wrong_type(g, kv, "string", e);
    /* the copy is NUL-terminated: a NUL inside would silently cut it short */
    size_t len = strlen(kv->str);
    if (len != kv->str_len)
        return err_set(e, ERR_PARSE, "%s: metadata %s holds a NUL byte at offset %zu (expected text)", g->path, key, len);
    *out = kv->str;
    return 0;
}

int gguf_get_arr_str(const Gguf *g, const char *key, const GgufStr **items, uint64_t *n, Err *e) {
    const GgufKV *kv = want(g, key, e);
    if (!kv) return -1;
    if (kv->type != GGUF_ARRAY || kv->arr_type != GGUF_STRING) return wrong_type(g, kv, "an array of strings", e);
    *items = kv->strs;
    *n = kv->n;
    return 0;
}

double gguf_arr_f64(const GgufKV *kv, uint64_t i) {
    int64_t si = 0;
    uint64_t u = 0;
    double f = 0;
    decode_scalar(kv->arr_type, (const uint8_t *)kv->arr + i * scalar_size(kv->arr_type), &si, &u, &f);
    return f;
}

int64_t gguf_arr_i64(const GgufKV *kv, uint64_t i) {
    int64_t si = 0;
    uint64_t u = 0;
    double f = 0;
    int t = kv->arr_type;
    decode_scalar(t, (const uint8_t *)kv->arr + i * scalar_size(t), &si, &u, &f);
    if (t == GGUF_F32 || t == GGUF_F64) return (int64_t)f;
    return is_signed_type(t) ? si : (int64_t)(u <= INT64_MAX ? u : INT64_MAX);
}

int gguf_get_arr_i32(const Gguf *g, const char *key, int32_t **out, uint64_t *n, Err *e) {
    const GgufKV *kv = want(g, key, e);
    if (!kv) return -1;
    if (kv->type != GGUF_ARRAY || !is_int_type(kv->arr_type)) return wrong_type(g, kv, "an array of integers", e);
    int32_t *v = xmalloc((size_t)(kv->n ? kv->n : 1) * sizeof(int32_t));
    for (uint64_t i = 0; i < kv->n; i++) {
        int64_t x = gguf_arr_i64(kv, i);
        if (x < INT32_MIN || x > INT32_MAX) {
            free(v);
            return err_set(e, ERR_PARSE, "%s: metadata %s[%llu] = %lld does not fit in int32", g->path, key,
                           (unsigned long long)i, (long long)x);
        }
        v[i] = (int32_t)x;
    }
    *out = v;
    *n = kv->n;
    return 0;
}

int gguf_get_arr_f32(const Gguf *g, const char *key, float **out, uint64_t *n, Err *e) {
    const GgufKV *kv = want(g, key, e);
    if (!kv) return -1;
    if (kv->type != GGUF_ARRAY || kv->arr_type == GGUF_STRING || kv->arr_type == GGUF_BOOL ||
        !scalar_size(kv->arr_type))
        return wrong_type(g, kv, "an array of numbers", e);
    float *v = xmalloc((size_t)(kv->n ? kv->n : 1) * sizeof(float));
    if (kv->arr_type == GGUF_F32) memcpy(v, kv->arr, (size_t)kv->n * 4);
    else
        for (uint64_t i = 0; i < kv->n; i++) v[i] = (float)gguf_arr_f64(kv, i);
    *out = v;
    *n = kv->n;
    return 0;
}

/* ---- Q/K row permutation ---- */

static int permute(void *data, int64_t rows, size_t row_bytes, int n_head, int undo, Err *e) {
    if (n_head <= 0 || rows % (2 * (int64_t)n_head))
        return err_set(e, ERR_ARG, "Q/K permutation: %lld rows do not split into %d heads of an even size",
                       (long long)rows, n_head);
    int64_t hd = rows / n_head, half = hd / 2;
    size_t head_bytes = (size_t)hd * row_bytes;
    uint8_t *tmp = xmalloc(head_bytes);
    for (int h = 0; h < n_head; h++) {
        uint8_t *head = (uint8_t *)data + (size_t)h * head_bytes;
        for (int64_t s = 0; s < 2; s++)
            for (int64_t i = 0; i < half; i++) {
                int64_t hf = s * half + i, gg = 2 * i + s; /* HF row, GGUF row */
                int64_t dst = undo ? hf : gg, src = undo ? gg : hf;
                memcpy(tmp + (size_t)dst * row_bytes, head + (size_t)src * row_bytes, row_bytes);
            }
        memcpy(head, tmp, head_bytes);
    }
    free(tmp);
    return 0;
}

int gguf_qk_permuted(const Gguf *g) {
    const GgufKV *a = gguf_find_key(g, "general.architecture");
    return a && a->type == GGUF_STRING && !strcmp(a->str, "llama");
}

int gguf_unpermute_qk(void *data, int64_t rows, size_t row_bytes, int n_head, Err *e) {
    return permute(data, rows, row_bytes, n_head, 1, e);
}

int gguf_permute_qk(void *data, int64_t rows, size_t row_bytes, int n_head, Err *e) {
    return permute(data, rows, row_bytes, n_head, 0, e);
}
