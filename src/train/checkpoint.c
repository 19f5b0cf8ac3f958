#include "train/checkpoint.h"

#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "base/fileio.h"
#include "base/mem.h"
#include "formats/safetensors.h"
#include "model/convert.h"

int ckpt_dtype_parse(const char *name, int *dtype, Err *e) {
    if (!strcmp(name, "float32") || !strcmp(name, "f32")) *dtype = DT_F32;
    else if (!strcmp(name, "bfloat16") || !strcmp(name, "bf16")) *dtype = DT_BF16;
    else if (!strcmp(name, "float16") || !strcmp(name, "f16")) *dtype = DT_F16;
    else return err_set(e, ERR_ARG, "save dtype: expected float32, bfloat16 or float16, got \"%s\"", name);
    return 0;
}

static const char *torch_dtype_name(int dtype) {
    return dtype == DT_BF16 ? "bfloat16" : dtype == DT_F16 ? "float16" : "float32";
}

/* n floats converted to dtype, in a new buffer. */
static void *convert(const float *x, size_t n, int dtype) {
    if (dtype == DT_F32) {
        float *y = xmalloc(n * sizeof *y + 1);
        memcpy(y, x, n * sizeof *y);
        return y;
    }
    uint16_t *y = xmalloc(n * sizeof *y + 1);
    for (size_t i = 0; i < n; i++) y[i] = dtype == DT_BF16 ? f32_to_bf16(x[i]) : f32_to_f16(x[i]);
    return y;
}

/* Views of a table's tensors over block, converted to dtype (the data of
 * each view is a new buffer: free with free_views). */
static TensorView *make_views(const TdTensor *tensors, int n, const float *block, int dtype) {
    TensorView *views = xcalloc((size_t)(n ? n : 1), sizeof *views);
    for (int i = 0; i < n; i++) {
        const TdTensor *t = &tensors[i];
        TensorView *v = &views[i];
        v->name = t->name;
        v->dtype = dtype;
        v->ndim = t->ndim;
        for (int d = 0; d < TENSOR_MAX_DIMS; d++) v->shape[d] = 1;
        if (t->ndim == 2) v->shape[0] = t->rows, v->shape[1] = t->cols;
        else v->shape[0] = t->cols;
        v->data = convert(block + t->offset, t->numel, dtype);
        v->nbytes = dtype_nbytes(dtype, (int64_t)t->numel);
    }
    return views;
}

static void free_views(TensorView *views, int n) {
    for (int i = 0; i < n; i++) free((void *)views[i].data);
    free(views);
}

static int check_save_dtype(const char *path, int dtype, Err *e) {
    if (dtype != DT_F32 && dtype != DT_BF16 && dtype != DT_F16)
        return err_set(e, ERR_ARG, "%s: can only save float32, bfloat16 or float16, not %s", path, dtype_name(dtype));
    return 0;
}

/* Writes the tensors of a table over block to path in dtype. */
static int write_tensors(const char *path, const TdTensor *tensors, int n, const float *block, int dtype,
                         const char *const *metadata, Err *e) {
    if (check_save_dtype(path, dtype, e)) return -1;
    TensorView *views = make_views(tensors, n, block, dtype);
    int rc = st_write(path, views, n, metadata, e);
    free_views(views, n);
    return rc;
}

static int write_json(const char *path, json_t *root, Err *e) {
    char *s = json_dumps(root, JSON_INDENT(2) | JSON_PRESERVE_ORDER);
    size_t len = strlen(s);
    s = xrealloc(s, len + 2);
    s[len] = '\n';
    int rc = file_write_atomic(path, s, len + 1, e);
    free(s);
    return rc;
}

/* The base's config.json with its dtype key (transformers 5's "dtype" or 4's
 * "torch_dtype", whichever it has; "torch_dtype" if neither) rewritten. */
static int write_config(const char *base_dir, const char *out_dir, int dtype, Err *e) {
    char *src = path_join(base_dir, "config.json"), *dst = path_join(out_dir, "config.json");
    json_error_t je;
    json_t *root = json_load_file(src, JSON_PRESERVE_ORDER, &je);
    int rc;
    if (!root) {
        rc = err_set(e, file_exists(src) ? ERR_PARSE : ERR_NOTFOUND, "%s: %s", src, je.text);
    } else {
        int has_new = json_object_get(root, "dtype") != NULL, has_old = json_object_get(root, "torch_dtype") != NULL;
        if (has_new) json_object_set_new(root, "dtype", json_string(torch_dtype_name(dtype)));
        if (has_old || !has_new) json_object_set_new(root, "torch_dtype", json_string(torch_dtype_name(dtype)));
        rc = write_json(dst, root, e);
        json_decref(root);
    }
    free(src), free(dst);
    return rc;
}

/* Files a model directory carries besides weights and config. */
static const char *const COMPANIONS[] = {"tokenizer.json",        "tokenizer_config.json", "special_tokens_map.json",
                                         "chat_template.jinja",   "generation_config.json", "tokenizer.model",
                                         "vocab.json",            "merges.txt",            "added_tokens.json"};

static int copy_companions(const char *base_dir, const char *out_dir, Err *e) {
    for (size_t i = 0; i < sizeof COMPANIONS / sizeof *COMPANIONS; i++) {
        char *src = path_join(base_dir, COMPANIONS[i]), *dst = path_join(out_dir, COMPANIONS[i]);
        int rc = 0;
        if (file_exists(src)) {
            char *data;
            size_t len;
            rc = file_read_all(src, &data, &len, e) || file_write_atomic(dst, data, len, e);
            if (!rc) free(data);
        }
        free(src), free(dst);
        if (rc) return -1;
    }
    return 0;
}

/* 1 for a shard file name of transformers' convention
 * ("model-00001-of-00003.safetensors"). */
/* The weights as transformers lays them out (st_write_model: one file or
 * shards, never a mix of two saves). */
static int write_weights(const TrainDecoder *m, const char *out_dir, int dtype, uint64_t max_shard_bytes, Err *e) {
    if (check_save_dtype(out_dir, dtype, e)) return -1;
    TensorView *views = make_views(m->tensors, m->n_tensors, m->params, dtype);
    static const char *const meta[] = {"format", "pt", NULL};
    int rc = st_write_model(out_dir, views, m->n_tensors, meta, (size_t)max_shard_bytes, e);
    free_views(views, m->n_tensors);
    return rc;
}

/* The GGUF is made from the directory just written, so it holds exactly
 * what the safetensors hold (in their dtype, then converted). */
static int write_gguf(const char *out_dir, int type, Err *e) {
    char *path = path_join(out_dir, "model.gguf");
    int rc = convert_hf_to_gguf(out_dir, path, type, e);
    free(path);
    return rc;
}

int ckpt_save_model_opts(const TrainDecoder *m, const char *base_dir, const char *out_dir, const CkptSaveOpts *o,
                         Err *e) {
    /* a frozen base's matrices are not in params: saving them would write zeros */
    if (m->frozen)
        return err_set(e, ERR_ARG, "%s: the model's base is frozen in its stored dtype (LoRA); save the adapter, or "
                                   "merge it (aloe merge)", out_dir);
    int gguf_type = -1;
    if (o->gguf_type) {
        if (convert_type_parse(o->gguf_type, &gguf_type, e)) return -1;
        if (!base_dir) return err_set(e, ERR_ARG, "%s: a GGUF export needs the base model's config and tokenizer", out_dir);
    }
    if (file_mkdirs(out_dir, e) || write_weights(m, out_dir, o->dtype, o->max_shard_bytes, e)) return -1;
    if (base_dir && (write_config(base_dir, out_dir, o->dtype, e) || copy_companions(base_dir, out_dir, e))) return -1;
    return gguf_type >= 0 ? write_gguf(out_dir, gguf_type, e) : 0;
}

int ckpt_save_model(const TrainDecoder *m, const char *base_dir, const char *out_dir, int dtype, Err *e) {
    CkptSaveOpts o = {dtype, 0, NULL};
    return ckpt_save_model_opts(m, base_dir, out_dir, &o, e);
}

/* Decimal units as transformers' max_shard_size ("5GB" = 5e9), binary ones
 * with "i" ("5GiB" = 5 * 2^30). */
int ckpt_size_parse(const char *s, uint64_t *bytes, Err *e) {
    static const struct {
        const char *unit;
        double mult;
    } UNITS[] = {{"", 1},        {"b", 1},           {"kb", 1e3},           {"mb", 1e6},
                 {"gb", 1e9},    {"tb", 1e12},       {"kib", 1024.0},       {"mib", 1048576.0},
                 {"gib", 1073741824.0}, {"tib", 1099511627776.0}};
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (end != s && !errno && v > 0) {
        while (*end == ' ') end++;
        for (size_t i = 0; i < sizeof UNITS / sizeof *UNITS; i++) {
            if (strcasecmp(end, UNITS[i].unit)) continue;
            double b = v * UNITS[i].mult;
            if (b >= 1 && b < 1.8e19) {
                *bytes = (uint64_t)b;
                return 0;
            }
        }
    }
    return err_set(e, ERR_ARG, "size \"%s\": expected a positive number of bytes with an optional unit "
                   "(e.g. 500MB, 2GB, 1GiB, 1000000)", s);
}

int ckpt_save_adapter(const TrainDecoder *m, const char *base_model, const char *out_dir, int dtype, Err *e) {
    if (!m->lora_on) return err_set(e, ERR_ARG, "save adapter: the model has no LoRA adapters");
    if (file_mkdirs(out_dir, e)) return -1;
    char *path = path_join(out_dir, "adapter_model.safetensors");
    static const char *const meta[] = {"format", "pt", NULL};
    int rc = write_tensors(path, m->lora_tensors, m->n_lora_tensors, m->lora_params, dtype, meta, e);
    free(path);
    if (rc) return -1;
    /* The fields peft writes for a plain LoRA; variants stay off. */
    json_t *c = json_object();
    json_object_set_new(c, "peft_type", json_string("LORA"));
    json_object_set_new(c, "task_type", json_string("CAUSAL_LM"));
    json_object_set_new(c, "base_model_name_or_path", base_model ? json_string(base_model) : json_null());
    json_object_set_new(c, "r", json_integer(m->lora.r));
    json_object_set_new(c, "lora_alpha", json_real(m->lora.alpha));
    json_object_set_new(c, "lora_dropout", json_real(m->lora.dropout));
    json_t *targets = json_array();
    for (int t = 0; t < LORA_N_TARGETS; t++)
        if (m->lora.targets & (1u << t)) json_array_append_new(targets, json_string(lora_module_name(t)));
    json_object_set_new(c, "target_modules", targets);
    json_object_set_new(c, "bias", json_string("none"));
    json_object_set_new(c, "use_rslora", json_boolean(m->lora.use_rslora));
    json_object_set_new(c, "use_dora", json_false());
    json_object_set_new(c, "fan_in_fan_out", json_false());
    json_object_set_new(c, "inference_mode", json_true());
    json_object_set_new(c, "init_lora_weights", json_true());
    json_object_set_new(c, "modules_to_save", json_null());
    json_object_set_new(c, "layers_to_transform", json_null());
    json_object_set_new(c, "rank_pattern", json_object());
    json_object_set_new(c, "alpha_pattern", json_object());
    char *cp = path_join(out_dir, "adapter_config.json");
    rc = write_json(cp, c, e);
    free(cp);
    json_decref(c);
    return rc;
}

int ckpt_adapter_load(TrainDecoder *m, const char *adapter_dir, const char *model_name, Err *e) {
    if (!td_lora_load(m, adapter_dir, e)) return 0;
    /* a shape mismatch means an adapter for another base model: say which */
    char *shape = strstr(e->msg, ": shape ");
    if (e->code != ERR_PARSE || !shape || strncmp(e->msg, "tensor ", 7)) return -1;
    char detail[sizeof e->msg];
    snprintf(detail, sizeof detail, "%s", e->msg);
    char *any = strstr(detail, " (-1 = any)");
    if (any && !strstr(detail, "-1,") && !strstr(detail, "-1]")) *any = 0;
    char *cp = path_join(adapter_dir, "adapter_config.json");
    json_t *c = json_load_file(cp, 0, NULL);
    const char *base = json_string_value(json_object_get(c, "base_model_name_or_path"));
    char *file = path_join(adapter_dir, "adapter_model.safetensors");
    err_set(e, ERR_ARG, "%s: the adapter was made for base model \"%s\" (%s: base_model_name_or_path), not for %s: %s",
            file, base ? base : "(not recorded)", cp, model_name, detail);
    free(file);
    free(cp);
    json_decref(c);
    return -1;
}

/* ---- optimiser state ---- */

int ckpt_save_optimizer(const Trainer *t, const char *path, Err *e) {
    char step[32], adam_step[32], n[32];
    snprintf(step, sizeof step, "%ld", t->step);
    snprintf(adam_step, sizeof adam_step, "%ld", t->opt.step);
    snprintf(n, sizeof n, "%zu", t->n);
    const char *const meta[] = {"format", "pt", "step", step, "adamw_step", adam_step, "numel", n, NULL};
    TensorView v[2];
    memset(v, 0, sizeof v);
    const char *names[2] = {"exp_avg", "exp_avg_sq"};
    const float *data[2] = {t->opt.m, t->opt.v};
    for (int i = 0; i < 2; i++) {
        v[i].name = names[i];
        v[i].dtype = DT_F32;
        v[i].ndim = 1;
        for (int d = 0; d < TENSOR_MAX_DIMS; d++) v[i].shape[d] = 1;
        v[i].shape[0] = (int64_t)t->n;
        v[i].data = data[i];
        v[i].nbytes = t->n * sizeof(float);
    }
    return st_write(path, v, 2, meta, e);
}

static int meta_long(const SafeTensors *st, const char *key, long *out, Err *e) {
    const char *s = st_metadata(st, key);
    char *end;
    if (!s || (*out = strtol(s, &end, 10), *end) || *out < 0)
        return err_set(e, ERR_PARSE, "%s: metadata %s: expected a non-negative integer", st_path(st), key);
    return 0;
}

int ckpt_load_optimizer(Trainer *t, const char *path, Err *e) {
    SafeTensors *st = st_open(path, e);
    if (!st) return -1;
    long step, adam_step;
    int rc = meta_long(st, "step", &step, e) || meta_long(st, "adamw_step", &adam_step, e) ? -1 : 0;
    const char *names[2] = {"exp_avg", "exp_avg_sq"};
    float *dst[2] = {t->opt.m, t->opt.v};
    for (int i = 0; i < 2 && !rc; i++) {
        const TensorView *v = st_get(st, names[i], e);
        if (!v) rc = -1;
        else if (v->dtype != DT_F32 || (size_t)tensor_numel(v) != t->n)
            rc = err_set(e, ERR_ARG, "%s: %s has %lld values, the trainable parameters %zu: a checkpoint of "
                         "another model or adapter", path, names[i], (long long)tensor_numel(v), t->n);
        else memcpy(dst[i], v->data, t->n * sizeof(float));
    }
    if (!rc) t->step = step, t->opt.step = adam_step;
    st_close(st);
    return rc;
}
