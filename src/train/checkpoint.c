#include "train/checkpoint.h"

#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <unistd.h>

#include "base/fileio.h"
#include "base/log.h"
#include "base/mem.h"
#include "formats/jsonl.h"
#include "formats/safetensors.h"
#include "model/convert.h"
#include "model/convert_mix.h"

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

/* Trained from a multimodal checkpoint's text decoder (Gemma 3's
 * Gemma3ForConditionalGeneration): only the text decoder was trained, so
 * the checkpoint is that model alone, as its text class saves it
 * (Gemma3ForCausalLM, model.* names). Written under the multimodal config
 * and names, transformers would build the vision tower with random
 * weights. */
int ckpt_saves_text_only(const TrainDecoder *m) {
    const ArchDesc *a = arch_desc(m->cfg.arch);
    return a && (a->flags & ARCHF_TEXT_OF_MM);
}

/* The multimodal config flattened to its text model's: text_config's
 * fields (those it leaves out are the text config class's defaults, as
 * they were there), the top-level token ids and dtype it lacks, and the
 * text class's names. */
static json_t *text_config_from_mm(json_t *root, int arch, const char *src, Err *e) {
    json_t *tc = json_object_get(root, "text_config");
    if (!json_is_object(tc)) {
        err_set(e, ERR_PARSE, "%s: field \"text_config\" must be an object (a multimodal checkpoint's text model)", src);
        return NULL;
    }
    const ArchDesc *t = arch_desc(arch_canonical(arch));
    json_t *out = json_object();
    json_t *archs = json_array();
    json_array_append_new(archs, json_string(t->hf));
    json_object_set_new(out, "architectures", archs);
    json_object_set_new(out, "model_type", json_string(t->type));
    const char *key;
    json_t *v;
    json_object_foreach(tc, key, v) {
        if (strcmp(key, "architectures") && strcmp(key, "model_type")) json_object_set(out, key, v);
    }
    static const char *const TOP[] = {"bos_token_id", "eos_token_id", "pad_token_id", "torch_dtype", "dtype",
                                      "transformers_version"};
    for (size_t i = 0; i < sizeof TOP / sizeof *TOP; i++)
        if (!json_object_get(out, TOP[i]) && (v = json_object_get(root, TOP[i]))) json_object_set(out, TOP[i], v);
    return out;
}

/* The base's config.json with its dtype key (transformers 5's "dtype" or 4's
 * "torch_dtype", whichever it has; "torch_dtype" if neither) rewritten;
 * a multimodal base's flattened to its text model's (ckpt_saves_text_only). */
static int write_config(const TrainDecoder *m, const char *base_dir, const char *out_dir, int dtype, Err *e) {
    char *src = path_join(base_dir, "config.json"), *dst = path_join(out_dir, "config.json");
    json_error_t je;
    json_t *root = json_load_file(src, JSON_PRESERVE_ORDER, &je);
    int rc;
    if (root && ckpt_saves_text_only(m)) {
        json_t *flat = text_config_from_mm(root, m->cfg.arch, src, e);
        json_decref(root);
        root = flat;
        if (!root) {
            free(src), free(dst);
            return -1;
        }
    }
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
    char(*names)[96] = NULL;
    if (ckpt_saves_text_only(m)) { /* the text class's names (Gemma3ForCausalLM: model.*) */
        names = xcalloc((size_t)(m->n_tensors ? m->n_tensors : 1), sizeof *names);
        for (int i = 0; i < m->n_tensors; i++) {
            int layer, k = arch_kind_of_hf_in(m->cfg.arch, m->tensors[i].name, &layer);
            if (k >= 0 && !arch_hf_name_of(arch_canonical(m->cfg.arch), (ParamKind)k, layer, names[i], sizeof names[i]))
                views[i].name = names[i];
        }
    }
    static const char *const meta[] = {"format", "pt", NULL};
    int rc = st_write_model(out_dir, views, m->n_tensors, meta, (size_t)max_shard_bytes, e);
    free_views(views, m->n_tensors);
    free(names);
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
    if (base_dir && (write_config(m, base_dir, out_dir, o->dtype, e) || copy_companions(base_dir, out_dir, e))) return -1;
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
    for (int t = 0; t < LORA_N_TARGETS; t++) {
        char mod[64]; /* the model's module names (Phi-3: qkv_proj once for q, k, v) */
        if ((m->lora.targets & (1u << t)) && td_lora_module(m, t, mod, sizeof mod))
            json_array_append_new(targets, json_string(mod));
    }
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

/* ---- training checkpoints ---- */

#define STATE_FILE "trainer_state.json"
#define OPTIMIZER_FILE "optimizer.safetensors"

char *ckpt_dir_path(const char *out, long step) {
    char name[48];
    snprintf(name, sizeof name, "checkpoint-%ld", step);
    return path_join(out, name);
}

/* The step of a name "checkpoint-N" (digits only), else -1. */
static long checkpoint_step(const char *name) {
    if (strncmp(name, "checkpoint-", 11) || !name[11] || (name[11] == '0' && name[12])) return -1;
    long v = 0;
    for (const char *p = name + 11; *p; p++) {
        if (*p < '0' || *p > '9' || v > 100000000000L) return -1;
        v = v * 10 + (*p - '0');
    }
    return v;
}

int ckpt_stage(const char *out, const char *name, char **staging, Err *e) {
    char *leaf = xasprintf("%s.tmp.%d", name, (int)getpid());
    *staging = path_join(out, leaf);
    free(leaf);
    if (file_remove_tree(*staging, e) || file_mkdirs(*staging, e)) {
        free(*staging);
        *staging = NULL;
        return -1;
    }
    return 0;
}

/* "files": the size of every file in dir (trainer_state.json aside). */
static int add_file_sizes(json_t *state, const char *dir, Err *e) {
    char **names;
    int n;
    if (file_list_dir(dir, &names, &n, e)) return -1;
    json_t *files = json_object();
    for (int i = 0; i < n; i++) {
        if (!strcmp(names[i], STATE_FILE)) continue;
        char *p = path_join(dir, names[i]);
        json_object_set_new(files, names[i], json_integer(file_size(p)));
        free(p);
    }
    file_list_free(names, n);
    json_object_set_new(state, "files", files);
    return 0;
}

/* Removes out's checkpoints other than keep. */
int ckpt_remove_others(const char *out, long keep, Err *e) {
    char **names;
    int n, rc = 0;
    if (file_list_dir(out, &names, &n, e)) return -1;
    for (int i = 0; i < n && !rc; i++) {
        long s = checkpoint_step(names[i]);
        if (s < 0 || s == keep) continue;
        char *p = path_join(out, names[i]);
        rc = file_remove_tree(p, e);
        free(p);
    }
    file_list_free(names, n);
    return rc;
}

int ckpt_commit(const char *out, const char *staging, long step, json_t *state, Err *e) {
    char *sp = path_join(staging, STATE_FILE);
    int rc = add_file_sizes(state, staging, e) || write_json(sp, state, e) || file_fsync_dir(staging, e) ? -1 : 0;
    free(sp);
    if (rc) return -1;
    char *final = ckpt_dir_path(out, step), *aside = NULL;
    /* A directory of the same step (one resuming skipped as incomplete)
     * goes out of the way first: rename cannot replace a full directory. */
    if (file_exists(final)) {
        aside = xasprintf("%s.tmp.%d.old", final, (int)getpid());
        rc = file_remove_tree(aside, e) || file_rename(final, aside, e);
    }
    if (!rc) rc = file_rename(staging, final, e);
    if (!rc && aside) rc = file_remove_tree(aside, e);
    /* the new one is durable under its name: the earlier ones can go */
    if (!rc) rc = ckpt_remove_others(out, step, e);
    free(final), free(aside);
    return rc ? -1 : 0;
}

static int check_safetensors(const char *path, Err *e) {
    SafeTensors *st = st_open(path, e);
    if (!st) return -1;
    st_close(st);
    return 0;
}

int ckpt_verify(const char *dir, long step, json_t **state, Err *e) {
    if (state) *state = NULL;
    char *sp = path_join(dir, STATE_FILE);
    json_error_t je;
    json_t *s = json_load_file(sp, 0, &je);
    int rc = 0;
    json_t *gs = json_object_get(s, "global_step"), *files = json_object_get(s, "files");
    if (!s && !file_exists(sp)) rc = err_set(e, ERR_NOTFOUND, "%s: %s", sp, je.text);
    else if (!s) rc = err_set(e, ERR_PARSE, "%s:%d:%d: %s", sp, je.line, je.column, je.text);
    else if (!json_is_integer(gs) || json_integer_value(gs) < 0)
        rc = err_set(e, ERR_PARSE, "%s: global_step: expected a non-negative integer, got %s", sp, json_type_name(gs));
    else if (step >= 0 && json_integer_value(gs) != step)
        rc = err_set(e, ERR_PARSE, "%s: global_step: expected %ld (the directory's step), got %lld", sp, step,
                     (long long)json_integer_value(gs));
    else if (!json_is_object(files) || !json_object_get(files, OPTIMIZER_FILE))
        rc = err_set(e, ERR_PARSE, "%s: files: expected the size of every file, %s included", sp, OPTIMIZER_FILE);
    const char *name;
    json_t *size;
    if (!rc) json_object_foreach(files, name, size) {
        /* plain names in the directory: never a path that leads out of it */
        if (!name[0] || strchr(name, '/') || !strcmp(name, ".") || !strcmp(name, "..")) {
            rc = err_set(e, ERR_PARSE, "%s: files: \"%s\" is not a file name", sp, name);
            break;
        }
        char *p = path_join(dir, name);
        long long have = file_size(p);
        if (!json_is_integer(size))
            rc = err_set(e, ERR_PARSE, "%s: files.%s: expected its size in bytes (an integer), got %s", sp, name,
                         json_type_name(size));
        else if (have != json_integer_value(size))
            rc = err_set(e, ERR_PARSE, "%s: %lld bytes, %s says %lld", p, have, sp, (long long)json_integer_value(size));
        size_t len = strlen(name);
        if (!rc && len > 12 && !strcmp(name + len - 12, ".safetensors")) rc = check_safetensors(p, e);
        free(p);
        if (rc) break;
    }
    if (!rc) {
        char *op = path_join(dir, OPTIMIZER_FILE);
        SafeTensors *st = st_open(op, e);
        long ostep = -1;
        rc = st ? meta_long(st, "step", &ostep, e) : -1;
        if (!rc && ostep != json_integer_value(gs))
            rc = err_set(e, ERR_PARSE, "%s: step %ld, %s: global_step %lld", op, ostep, sp, (long long)json_integer_value(gs));
        if (st) st_close(st);
        free(op);
    }
    free(sp);
    if (!rc && state) *state = s;
    else if (s) json_decref(s);
    return rc;
}

/* Steps of out's checkpoint-N directories, newest first. */
static long *checkpoint_steps(const char *out, int *count) {
    char **names;
    int n;
    Err ignore;
    *count = 0;
    if (file_list_dir(out, &names, &n, &ignore)) return NULL;
    long *steps = xmalloc((size_t)(n ? n : 1) * sizeof *steps);
    for (int i = 0; i < n; i++) {
        char *p = path_join(out, names[i]);
        long s = checkpoint_step(names[i]);
        if (s >= 0 && file_is_dir(p)) steps[(*count)++] = s;
        free(p);
    }
    file_list_free(names, n);
    for (int i = 1; i < *count; i++) /* insertion sort, descending: a handful of entries */
        for (int j = i; j > 0 && steps[j] > steps[j - 1]; j--) {
            long t = steps[j];
            steps[j] = steps[j - 1], steps[j - 1] = t;
        }
    return steps;
}

char *ckpt_newest_name(const char *out) {
    int n;
    long *steps = checkpoint_steps(out, &n);
    char *name = n ? xasprintf("checkpoint-%ld", steps[0]) : NULL;
    free(steps);
    return name;
}

int ckpt_latest(const char *out, char **dir, long *step, json_t **state, Err *e) {
    int n;
    long *steps = checkpoint_steps(out, &n);
    *dir = NULL;
    char first_problem[sizeof e->msg] = "";
    for (int i = 0; i < n && !*dir; i++) {
        char *d = ckpt_dir_path(out, steps[i]);
        if (!ckpt_verify(d, steps[i], state, e)) {
            *dir = d;
            *step = steps[i];
            break;
        }
        log_warn("%s is not a complete checkpoint (%s); trying an earlier one", d, e->msg);
        if (!first_problem[0]) snprintf(first_problem, sizeof first_problem, "%s", e->msg);
        free(d);
    }
    free(steps);
    if (*dir) return 0;
    if (n) return err_set(e, ERR_PARSE, "%s: none of its %d checkpoint directories is complete (%s)", out, n, first_problem);
    return err_set(e, ERR_NOTFOUND, "%s: no checkpoint (checkpoint-N directory) to resume from", out);
}

int ckpt_clean_tmp(const char *out, Err *e) {
    char **names;
    int n, rc = 0;
    if (file_list_dir(out, &names, &n, e)) return e->code == ERR_NOTFOUND ? 0 : -1;
    for (int i = 0; i < n && !rc; i++) {
        if (!strstr(names[i], ".tmp.")) continue;
        char *p = path_join(out, names[i]);
        rc = file_remove_tree(p, e);
        free(p);
    }
    file_list_free(names, n);
    return rc;
}

/* Names a model or adapter directory's save owns (what ckpt_publish may
 * replace or remove in out); the last two are where earlier versions kept
 * a checkpoint's optimiser state beside the model. */
static int model_file(const char *name) {
    static const char *const OWN[] = {"config.json",         "adapter_config.json",  "model.safetensors",
                                      "model.safetensors.index.json", "adapter_model.safetensors", "model.gguf",
                                      OPTIMIZER_FILE,        STATE_FILE};
    for (size_t i = 0; i < sizeof OWN / sizeof *OWN; i++)
        if (!strcmp(name, OWN[i])) return 1;
    for (size_t i = 0; i < sizeof COMPANIONS / sizeof *COMPANIONS; i++)
        if (!strcmp(name, COMPANIONS[i])) return 1;
    int a, b, end = 0;
    return sscanf(name, "model-%5d-of-%5d.safetensors%n", &a, &b, &end) == 2 && end && !name[end];
}

static int is_marker(const char *name) {
    return !strcmp(name, "config.json") || !strcmp(name, "adapter_config.json");
}

/* Links src's files of one kind (markers or the others) into out. */
static int link_files(const char *src, const char *out, char **names, int n, int markers, Err *e) {
    for (int i = 0; i < n; i++) {
        if (is_marker(names[i]) != markers || !strcmp(names[i], OPTIMIZER_FILE) || !strcmp(names[i], STATE_FILE))
            continue;
        char *a = path_join(src, names[i]), *b = path_join(out, names[i]);
        int rc = file_is_dir(a) ? 0 : file_link_atomic(a, b, e);
        free(a), free(b);
        if (rc) return -1;
    }
    return 0;
}

int ckpt_publish(const char *src, const char *out, Err *e) {
    char **have = NULL, **names = NULL;
    int n_have = 0, n = 0, rc = file_mkdirs(out, e) || file_list_dir(src, &names, &n, e) ||
                                     file_list_dir(out, &have, &n_have, e) ? -1 : 0;
    /* 1. out stops being a model: its config goes first */
    for (int i = 0; i < n_have && !rc; i++) {
        if (!is_marker(have[i])) continue;
        char *p = path_join(out, have[i]);
        rc = file_unlink(p, e);
        free(p);
    }
    if (!rc) rc = file_fsync_dir(out, e);
    /* 2. files of the earlier save that this one does not have */
    for (int i = 0; i < n_have && !rc; i++) {
        if (!model_file(have[i]) || is_marker(have[i])) continue;
        int kept = 0;
        for (int j = 0; j < n && !kept; j++)
            kept = !strcmp(have[i], names[j]) && strcmp(names[j], OPTIMIZER_FILE) && strcmp(names[j], STATE_FILE);
        char *p = path_join(out, have[i]);
        if (!kept) rc = file_unlink(p, e);
        free(p);
    }
    /* 3. the new files, then 4. the config that makes out a model again */
    if (!rc) rc = link_files(src, out, names, n, 0, e) || link_files(src, out, names, n, 1, e) ? -1 : 0;
    file_list_free(names, n);
    file_list_free(have, n_have);
    return rc;
}

/* Removes <out>.tmp.* beside out (no trailing '/'): what killed saves into
 * it left. */
static int clean_siblings(const char *out, Err *e) {
    char *copy = xstrdup(out);
    char *slash = strrchr(copy, '/');
    const char *parent = slash ? (slash == copy ? "/" : copy) : ".", *base = slash ? slash + 1 : copy;
    if (slash && slash != copy) *slash = 0;
    char *prefix = xasprintf("%s.tmp.", base);
    char **names;
    int n, rc = 0;
    if (!file_list_dir(parent, &names, &n, e)) {
        for (int i = 0; i < n && !rc; i++) {
            if (strncmp(names[i], prefix, strlen(prefix))) continue;
            char *p = path_join(parent, names[i]);
            rc = file_remove_tree(p, e);
            free(p);
        }
        file_list_free(names, n);
    } else {
        rc = e->code == ERR_NOTFOUND ? 0 : -1;
    }
    free(prefix), free(copy);
    return rc;
}

int ckpt_save_model_atomic(const TrainDecoder *m, const char *base_dir, const char *out, const CkptSaveOpts *o,
                           Err *e) {
    char *copy = xstrdup(out);
    size_t len = strlen(copy);
    while (len > 1 && copy[len - 1] == '/') copy[--len] = 0;
    char *stage = xasprintf("%s.tmp.%d", copy, (int)getpid());
    int rc = clean_siblings(copy, e) || ckpt_save_model_opts(m, base_dir, stage, o, e) || ckpt_publish(stage, copy, e) ||
                     file_remove_tree(stage, e) ? -1 : 0;
    if (rc) {
        Err ignore;
        file_remove_tree(stage, &ignore);
    }
    free(stage), free(copy);
    return rc;
}
