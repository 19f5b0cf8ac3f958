/* safetensors: reader (single file, sharded index, model directory) and
 * atomic writer. */
#include "formats/safetensors.h"

#include <dirent.h>
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/fileio.h"
#include "base/mem.h"
#include "formats/outfile.h"

/* The format's own cap on header size; anything larger is corrupt. */
#define ST_MAX_HEADER (100u << 20)

typedef struct Shard {
    char *path;
    FileMap map;
} Shard;

struct SafeTensors {
    char *path;
    Shard *shards;
    int n_shards;
    TensorView *t; /* sorted by name */
    int n, cap;
    char **meta; /* key, value, key, value ... */
    int n_meta;
};

static void add_meta(SafeTensors *st, const char *k, const char *v) {
    st->meta = xrealloc(st->meta, (size_t)(st->n_meta + 1) * 2 * sizeof(char *));
    st->meta[2 * st->n_meta] = xstrdup(k);
    st->meta[2 * st->n_meta + 1] = xstrdup(v);
    st->n_meta++;
}

static int parse_shape(const char *file, const char *name, json_t *shape, TensorView *t, Err *e) {
    if (!json_is_array(shape))
        return err_set(e, ERR_PARSE, "%s: tensor %s: \"shape\" must be an array", file, name);
    size_t nd = json_array_size(shape);
    if (nd > TENSOR_MAX_DIMS)
        return err_set(e, ERR_UNSUPPORTED, "%s: tensor %s: %zu dimensions (at most %d supported)", file, name, nd,
                       TENSOR_MAX_DIMS);
    t->ndim = (int)nd;
    for (int i = 0; i < TENSOR_MAX_DIMS; i++) t->shape[i] = 1;
    for (size_t i = 0; i < nd; i++) {
        json_t *d = json_array_get(shape, i);
        if (!json_is_integer(d) || json_integer_value(d) < 0 || json_integer_value(d) > (1LL << 40))
            return err_set(e, ERR_PARSE, "%s: tensor %s: shape[%zu] must be a non-negative integer", file, name, i);
        t->shape[i] = json_integer_value(d);
    }
    return 0;
}

static int parse_tensor(SafeTensors *st, const char *file, const char *name, json_t *v, const uint8_t *data,
                        size_t data_size, Err *e) {
    if (!json_is_object(v)) return err_set(e, ERR_PARSE, "%s: tensor %s: expected an object", file, name);
    json_t *dt = json_object_get(v, "dtype"), *offs = json_object_get(v, "data_offsets");
    if (!json_is_string(dt)) return err_set(e, ERR_PARSE, "%s: tensor %s: missing string \"dtype\"", file, name);
    int dtype = dtype_from_name(json_string_value(dt));
    if (dtype == DT_INVALID || !dtype_st_name(dtype))
        return err_set(e, ERR_UNSUPPORTED, "%s: tensor %s: unsupported dtype %s", file, name, json_string_value(dt));
    TensorView t = {.dtype = dtype};
    if (parse_shape(file, name, json_object_get(v, "shape"), &t, e)) return -1;
    if (!json_is_array(offs) || json_array_size(offs) != 2 || !json_is_integer(json_array_get(offs, 0)) ||
        !json_is_integer(json_array_get(offs, 1)))
        return err_set(e, ERR_PARSE, "%s: tensor %s: \"data_offsets\" must be [begin, end]", file, name);
    json_int_t b = json_integer_value(json_array_get(offs, 0)), end = json_integer_value(json_array_get(offs, 1));
    if (b < 0 || end < b || (uint64_t)end > data_size)
        return err_set(e, ERR_PARSE, "%s: tensor %s: data_offsets [%lld, %lld] outside the %zu data bytes", file, name,
                       (long long)b, (long long)end, data_size);
    int64_t numel;
    if (tensor_shape_numel(t.shape, t.ndim, &numel))
        return err_set(e, ERR_PARSE, "%s: tensor %s: shape overflows (its non-zero dimensions multiply past INT64_MAX)", file, name);
    size_t want = dtype_nbytes(dtype, numel);
    if ((numel && !want) || (uint64_t)(end - b) != want)
        return err_set(e, ERR_PARSE, "%s: tensor %s: %lld bytes for %lld elements of %s (expected %zu)", file, name,
                       (long long)(end - b), (long long)numel, dtype_st_name(dtype), want);
    t.name = xstrdup(name);
    t.data = data + b;
    t.nbytes = want;
    if (st->n == st->cap) {
        st->cap = st->cap ? 2 * st->cap : 64;
        st->t = xrealloc(st->t, (size_t)st->cap * sizeof(TensorView));
    }
    st->t[st->n++] = t;
    return 0;
}

typedef struct Extent {
    size_t begin, end;
    const char *name;
} Extent;

static int cmp_extent(const void *a, const void *b) {
    const Extent *x = a, *y = b;
    if (x->begin != y->begin) return x->begin < y->begin ? -1 : 1;
    return strcmp(x->name, y->name);
}

/* The format (and the reference reader) wants the data section covered
 * exactly: tensors may not share bytes (writing one would change
 * another), leave holes, or be followed by bytes no tensor claims (room
 * for a second file hidden behind the first). Empty tensors cover nothing. */
static int check_extents(const SafeTensors *st, int first, const char *path, const uint8_t *data, size_t data_size,
                         Err *e) {
    Extent *x = xmalloc((size_t)(st->n - first + 1) * sizeof *x);
    int m = 0, rc = 0;
    for (int i = first; i < st->n; i++)
        if (st->t[i].nbytes) {
            size_t b = (size_t)((const uint8_t *)st->t[i].data - data);
            x[m++] = (Extent){b, b + st->t[i].nbytes, st->t[i].name};
        }
    qsort(x, (size_t)m, sizeof *x, cmp_extent);
    size_t at = 0;
    for (int k = 0; k < m && !rc; k++) {
        if (k > 0 && x[k].begin < x[k - 1].end)
            rc = err_set(e, ERR_PARSE, "%s: tensor %s: data_offsets [%zu, %zu] overlap tensor %s [%zu, %zu] (tensors must not share bytes)",
                         path, x[k].name, x[k].begin, x[k].end, x[k - 1].name, x[k - 1].begin, x[k - 1].end);
        else if (x[k].begin > at)
            rc = err_set(e, ERR_PARSE, "%s: data bytes [%zu, %zu) before tensor %s belong to no tensor (the format allows no holes)",
                         path, at, x[k].begin, x[k].name);
        at = x[k].end;
    }
    if (!rc && at != data_size)
        rc = err_set(e, ERR_PARSE, "%s: %zu trailing bytes after the tensor data (the tensors end at data byte %zu of %zu)",
                     path, data_size - at, at, data_size);
    free(x);
    return rc;
}

/* Parses one file's bytes (p, size) and appends its tensors (and, if
 * want_meta, its metadata). */
static int parse_buf(SafeTensors *st, const char *path, const uint8_t *p, size_t size, int want_meta, Err *e) {
    uint64_t hlen = 0;
    if (size < 8) return err_set(e, ERR_PARSE, "%s: too short for a safetensors file (%zu bytes)", path, size);
    for (int i = 7; i >= 0; i--) hlen = hlen << 8 | p[i];
    if (hlen > size - 8 || hlen > ST_MAX_HEADER)
        return err_set(e, ERR_PARSE, "%s: header length %llu exceeds the file (%zu bytes)", path,
                       (unsigned long long)hlen, size);
    json_error_t je;
    json_t *h = json_loadb((const char *)p + 8, (size_t)hlen, JSON_REJECT_DUPLICATES, &je);
    if (!h) return err_set(e, ERR_PARSE, "%s: header JSON: %s (at byte %d)", path, je.text, je.position);
    int rc = 0;
    if (!json_is_object(h)) rc = err_set(e, ERR_PARSE, "%s: header must be a JSON object", path);
    const char *k;
    json_t *v;
    int first = st->n;
    json_object_foreach(h, k, v) {
        if (rc) break;
        if (!strcmp(k, "__metadata__")) {
            if (!json_is_object(v)) {
                rc = err_set(e, ERR_PARSE, "%s: __metadata__ must be an object of strings", path);
                break;
            }
            const char *mk;
            json_t *mv;
            json_object_foreach(v, mk, mv) {
                if (!json_is_string(mv)) {
                    rc = err_set(e, ERR_PARSE, "%s: __metadata__.%s must be a string", path, mk);
                    break;
                }
                if (want_meta) add_meta(st, mk, json_string_value(mv));
            }
            continue;
        }
        rc = parse_tensor(st, path, k, v, p + 8 + hlen, size - 8 - (size_t)hlen, e);
    }
    if (!rc) rc = check_extents(st, first, path, p + 8 + hlen, size - 8 - (size_t)hlen, e);
    json_decref(h);
    return rc;
}

/* Maps one file and appends its tensors. */
static int load_file(SafeTensors *st, const char *path, int want_meta, Err *e) {
    st->shards = xrealloc(st->shards, (size_t)(st->n_shards + 1) * sizeof(Shard));
    Shard *sh = &st->shards[st->n_shards];
    sh->path = xstrdup(path);
    if (file_map(path, &sh->map, e)) {
        free(sh->path);
        return -1;
    }
    st->n_shards++;
    return parse_buf(st, path, sh->map.data, sh->map.size, want_meta, e);
}

static int cmp_view(const void *a, const void *b) {
    return strcmp(((const TensorView *)a)->name, ((const TensorView *)b)->name);
}

static int finish(SafeTensors *st, Err *e) {
    if (st->n > 1) qsort(st->t, (size_t)st->n, sizeof(TensorView), cmp_view);
    for (int i = 1; i < st->n; i++)
        if (!strcmp(st->t[i - 1].name, st->t[i].name))
            return err_set(e, ERR_PARSE, "%s: tensor %s appears twice", st->path, st->t[i].name);
    return 0;
}

/* Opens every shard named in the index's weight_map, then checks that each
 * tensor the index names is in the shard it says. */
static int load_index(SafeTensors *st, const char *index_path, Err *e) {
    char *text = NULL;
    size_t len;
    if (file_read_all(index_path, &text, &len, e)) return -1;
    json_error_t je;
    json_t *root = json_loadb(text, len, 0, &je);
    free(text);
    if (!root) return err_set(e, ERR_PARSE, "%s:%d: %s", index_path, je.line, je.text);
    json_t *wm = json_object_get(root, "weight_map");
    int rc = 0;
    if (!json_is_object(wm)) rc = err_set(e, ERR_PARSE, "%s: missing object \"weight_map\"", index_path);
    char *dir = xstrdup(index_path);
    char *slash = strrchr(dir, '/');
    if (slash) slash[1] = 0;
    else dir[0] = 0;
    const char *name;
    json_t *file;
    /* shard files, in first-seen order, each opened once */
    char **files = NULL;
    int n_files = 0;
    json_object_foreach(wm, name, file) {
        if (rc) break;
        if (!json_is_string(file) || strchr(json_string_value(file), '/') || !strcmp(json_string_value(file), "..")) {
            rc = err_set(e, ERR_PARSE, "%s: weight_map.%s must be a shard file name", index_path, name);
            break;
        }
        int seen = 0;
        for (int i = 0; i < n_files && !seen; i++) seen = !strcmp(files[i], json_string_value(file));
        if (seen) continue;
        files = xrealloc(files, (size_t)(n_files + 1) * sizeof(char *));
        files[n_files++] = xstrdup(json_string_value(file));
        char *p = xasprintf("%s%s", dir, json_string_value(file));
        rc = load_file(st, p, n_files == 1, e);
        free(p);
    }
    if (!rc && n_files == 0) rc = err_set(e, ERR_PARSE, "%s: weight_map is empty", index_path);
    if (!rc) rc = finish(st, e);
    json_object_foreach(wm, name, file) {
        if (rc) break;
        const TensorView *t = st_find(st, name);
        const char *f = json_string_value(file);
        size_t fl = strlen(f), tl;
        if (!t) {
            rc = err_set(e, ERR_PARSE, "%s: tensor %s is not in its shard %s", index_path, name, f);
            break;
        }
        if (t->nbytes == 0) continue; /* an empty tensor's pointer may sit at a map's end */
        /* which shard holds t? compare map ranges */
        for (int i = 0; i < st->n_shards; i++) {
            const Shard *sh = &st->shards[i];
            const uint8_t *b = sh->map.data;
            if ((const uint8_t *)t->data >= b && (const uint8_t *)t->data < b + sh->map.size) {
                tl = strlen(sh->path);
                if (tl < fl || strcmp(sh->path + tl - fl, f))
                    rc = err_set(e, ERR_PARSE, "%s: tensor %s is in %s, not in %s as the index says", index_path,
                                 name, sh->path, f);
                break;
            }
        }
    }
    for (int i = 0; i < n_files; i++) free(files[i]);
    free(files);
    free(dir);
    json_decref(root);
    return rc;
}

static int has_suffix(const char *s, const char *suf) {
    size_t a = strlen(s), b = strlen(suf);
    return a >= b && !strcmp(s + a - b, suf);
}

SafeTensors *st_open(const char *path, Err *e) {
    SafeTensors *st = xcalloc(1, sizeof *st);
    st->path = xstrdup(path);
    int rc;
    if (file_is_dir(path)) {
        char *idx = path_join(path, "model.safetensors.index.json");
        char *one = path_join(path, "model.safetensors");
        if (file_exists(idx)) rc = load_index(st, idx, e);
        else if (file_exists(one)) rc = load_file(st, one, 1, e) || finish(st, e);
        else
            rc = err_set(e, ERR_NOTFOUND, "%s: no model.safetensors or model.safetensors.index.json", path);
        free(idx);
        free(one);
    } else if (has_suffix(path, ".json")) {
        rc = load_index(st, path, e);
    } else {
        rc = load_file(st, path, 1, e) || finish(st, e);
    }
    if (rc) {
        st_close(st);
        return NULL;
    }
    return st;
}

SafeTensors *st_open_mem(const void *data, size_t size, const char *name, Err *e) {
    SafeTensors *st = xcalloc(1, sizeof *st);
    st->path = xstrdup(name ? name : "(memory)");
    if (parse_buf(st, st->path, data, size, 1, e) || finish(st, e)) {
        st_close(st);
        return NULL;
    }
    return st;
}

void st_close(SafeTensors *st) {
    if (!st) return;
    for (int i = 0; i < st->n; i++) free((char *)st->t[i].name);
    free(st->t);
    for (int i = 0; i < st->n_shards; i++) {
        file_unmap(&st->shards[i].map);
        free(st->shards[i].path);
    }
    free(st->shards);
    for (int i = 0; i < 2 * st->n_meta; i++) free(st->meta[i]);
    free(st->meta);
    free(st->path);
    free(st);
}

const TensorView *st_find(const SafeTensors *st, const char *name) {
    TensorView key = {.name = name};
    if (!st->n) return NULL;
    return bsearch(&key, st->t, (size_t)st->n, sizeof(TensorView), cmp_view);
}

const TensorView *st_get(const SafeTensors *st, const char *name, Err *e) {
    const TensorView *t = st_find(st, name);
    if (!t) err_set(e, ERR_NOTFOUND, "%s: no tensor %s", st->path, name);
    return t;
}

const char *st_file_of(const SafeTensors *st, const TensorView *t) {
    for (int i = 0; t && i < st->n_shards; i++) {
        const uint8_t *b = st->shards[i].map.data, *d = t->data;
        if (b && d >= b && d <= b + st->shards[i].map.size) return st->shards[i].path;
    }
    return st->path;
}

int st_count(const SafeTensors *st) { return st->n; }
const TensorView *st_tensor(const SafeTensors *st, int i) { return i >= 0 && i < st->n ? &st->t[i] : NULL; }
const char *st_path(const SafeTensors *st) { return st->path; }

const FileMap *st_map_holding(const SafeTensors *st, const void *p, size_t n) {
    for (int i = 0; i < st->n_shards; i++)
        if (file_map_holds(&st->shards[i].map, p, n)) return &st->shards[i].map;
    return NULL;
}

const char *st_metadata(const SafeTensors *st, const char *key) {
    for (int i = 0; i < st->n_meta; i++)
        if (!strcmp(st->meta[2 * i], key)) return st->meta[2 * i + 1];
    return NULL;
}

/* ---- writer ---- */

/* Data goes in order of decreasing element size so every tensor starts
 * aligned to its element size (the format forbids holes, so no padding
 * between tensors); the header is padded with spaces to a multiple of 8. */
static int *write_order(const TensorView *t, int n) {
    int *ord = xmalloc((size_t)(n ? n : 1) * sizeof(int));
    int k = 0;
    for (size_t es = 8; es >= 1; es /= 2)
        for (int i = 0; i < n; i++)
            if (dtype_block_bytes(t[i].dtype) == es) ord[k++] = i;
    return ord;
}

static int check_tensors(const char *path, const TensorView *t, int n, Err *e) {
    for (int i = 0; i < n; i++) {
        if (!t[i].name || !t[i].name[0]) return err_set(e, ERR_ARG, "%s: tensor %d has no name", path, i);
        if (!strcmp(t[i].name, "__metadata__")) return err_set(e, ERR_ARG, "%s: tensor name __metadata__ is reserved", path);
        if (!dtype_st_name(t[i].dtype))
            return err_set(e, ERR_UNSUPPORTED, "%s: tensor %s: dtype %s cannot be stored in safetensors", path,
                           t[i].name, dtype_name(t[i].dtype));
        if (t[i].ndim < 0 || t[i].ndim > TENSOR_MAX_DIMS)
            return err_set(e, ERR_ARG, "%s: tensor %s: bad ndim %d", path, t[i].name, t[i].ndim);
        if (dtype_nbytes(t[i].dtype, tensor_numel(&t[i])) != t[i].nbytes)
            return err_set(e, ERR_ARG, "%s: tensor %s: nbytes %zu does not match its shape", path, t[i].name,
                           t[i].nbytes);
        for (int j = 0; j < i; j++)
            if (!strcmp(t[i].name, t[j].name)) return err_set(e, ERR_ARG, "%s: tensor %s given twice", path, t[i].name);
    }
    return 0;
}

static char *build_header(const TensorView *t, int n, const int *ord, const char *const *metadata, size_t *len) {
    json_t *h = json_object();
    if (metadata && metadata[0]) {
        json_t *m = json_object();
        for (int i = 0; metadata[i] && metadata[i + 1]; i += 2)
            json_object_set_new(m, metadata[i], json_string(metadata[i + 1]));
        json_object_set_new(h, "__metadata__", m);
    }
    size_t off = 0;
    for (int k = 0; k < n; k++) {
        const TensorView *x = &t[ord[k]];
        json_t *o = json_object(), *shape = json_array();
        for (int d = 0; d < x->ndim; d++) json_array_append_new(shape, json_integer(x->shape[d]));
        json_object_set_new(o, "dtype", json_string(dtype_st_name(x->dtype)));
        json_object_set_new(o, "shape", shape);
        json_object_set_new(o, "data_offsets",
                            json_pack("[II]", (json_int_t)off, (json_int_t)(off + x->nbytes)));
        json_object_set_new(h, x->name, o);
        off += x->nbytes;
    }
    char *s = json_dumps(h, JSON_COMPACT | JSON_PRESERVE_ORDER);
    json_decref(h);
    size_t l = strlen(s), padded = (l + 7) / 8 * 8;
    s = xrealloc(s, padded + 1);
    memset(s + l, ' ', padded - l);
    s[padded] = 0;
    *len = padded;
    return s;
}

int st_write(const char *path, const TensorView *t, int n, const char *const *metadata, Err *e) {
    if (check_tensors(path, t, n, e)) return -1;
    int *ord = write_order(t, n);
    size_t hlen;
    char *header = build_header(t, n, ord, metadata, &hlen);
    uint8_t lenbytes[8];
    for (int i = 0; i < 8; i++) lenbytes[i] = (uint8_t)((uint64_t)hlen >> (8 * i));
    OutFile o;
    int rc = outfile_open(&o, path, e);
    if (!rc) rc = outfile_write(&o, lenbytes, 8, e) || outfile_write(&o, header, hlen, e);
    for (int k = 0; k < n && !rc; k++) rc = outfile_write(&o, t[ord[k]].data, t[ord[k]].nbytes, e);
    if (!rc) rc = outfile_commit(&o, e);
    else if (o.path) outfile_abort(&o);
    free(header);
    free(ord);
    return rc ? -1 : 0;
}

int st_write_index(const char *path, const char *const *names, const char *const *shard_of, int n,
                   size_t total_size, Err *e) {
    json_t *root = json_object(), *meta = json_object(), *wm = json_object();
    json_object_set_new(meta, "total_size", json_integer((json_int_t)total_size));
    json_object_set_new(root, "metadata", meta);
    for (int i = 0; i < n; i++) json_object_set_new(wm, names[i], json_string(shard_of[i]));
    json_object_set_new(root, "weight_map", wm);
    char *s = json_dumps(root, JSON_INDENT(2) | JSON_SORT_KEYS);
    json_decref(root);
    int rc = file_write_atomic(path, s, strlen(s), e);
    free(s);
    return rc;
}

/* "model-00001-of-00003.safetensors": a shard name of st_write_model's layout. */
static int is_shard_name(const char *name) {
    int a, b, len = -1;
    return strlen(name) == 32 && sscanf(name, "model-%5d-of-%5d.safetensors%n", &a, &b, &len) == 2 && len == 32;
}

/* Removes the shard files of dir that are not among keep (n_keep names):
 * those of an earlier save with another number of shards, or all of them
 * when the weights are now one model.safetensors. */
static int remove_stale_shards(const char *dir, char *const *keep, int n_keep, Err *e) {
    DIR *d = opendir(dir);
    if (!d) return err_set(e, ERR_IO, "%s: cannot list the directory: %s", dir, strerror(errno));
    int rc = 0;
    struct dirent *de;
    while ((de = readdir(d)) && !rc) {
        int kept = 0;
        for (int s = 0; s < n_keep && !kept; s++) kept = !strcmp(de->d_name, keep[s]);
        if (kept || !is_shard_name(de->d_name)) continue;
        char *p = path_join(dir, de->d_name);
        if (unlink(p) && errno != ENOENT) rc = err_set(e, ERR_IO, "%s: cannot remove a stale shard: %s", p, strerror(errno));
        free(p);
    }
    closedir(d);
    return rc;
}

int st_write_model(const char *dir, const TensorView *t, int n, const char *const *metadata, size_t max_shard_bytes,
                   Err *e) {
    if (check_tensors(dir, t, n, e)) return -1;
    /* shard boundaries: shard_start[s] is the first tensor of shard s */
    int *start = xmalloc((size_t)(n + 1) * sizeof(int)), n_shards = 0;
    size_t total = 0, cur = 0;
    for (int i = 0; i < n; i++) {
        if (i == 0 || (max_shard_bytes && cur > 0 && cur + t[i].nbytes > max_shard_bytes)) {
            start[n_shards++] = i;
            cur = 0;
        }
        cur += t[i].nbytes;
        total += t[i].nbytes;
    }
    if (n_shards == 0) start[n_shards++] = 0;
    start[n_shards] = n;
    char *single = path_join(dir, "model.safetensors"), *index = path_join(dir, "model.safetensors.index.json");
    int rc = 0;
    if (n_shards == 1) {
        rc = st_write(single, t, n, metadata, e);
        if (!rc) unlink(index);
        if (!rc) rc = remove_stale_shards(dir, NULL, 0, e);
    } else {
        const char **names = xmalloc((size_t)n * sizeof(char *)), **shard_of = xmalloc((size_t)n * sizeof(char *));
        char **files = xcalloc((size_t)n_shards, sizeof(char *));
        /* New shards may overwrite old ones of the same names: the old index
         * goes first, so that a crash never leaves one that mixes two saves. */
        if (unlink(index) && errno != ENOENT) rc = err_set(e, ERR_IO, "%s: cannot remove: %s", index, strerror(errno));
        for (int s = 0; s < n_shards && !rc; s++) {
            files[s] = xasprintf("model-%05d-of-%05d.safetensors", s + 1, n_shards);
            char *p = path_join(dir, files[s]);
            rc = st_write(p, t + start[s], start[s + 1] - start[s], metadata, e);
            free(p);
            for (int i = start[s]; i < start[s + 1]; i++) {
                names[i] = t[i].name;
                shard_of[i] = files[s];
            }
        }
        if (!rc) rc = st_write_index(index, names, shard_of, n, total, e);
        if (!rc) unlink(single);
        if (!rc) rc = remove_stale_shards(dir, files, n_shards, e);
        for (int s = 0; s < n_shards; s++) free(files[s]);
        free(files);
        free(names);
        free(shard_of);
    }
    free(single);
    free(index);
    free(start);
    return rc;
}
