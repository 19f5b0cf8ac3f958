#include "train/lora.h"

#include <jansson.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "base/fileio.h"
#include "base/mem.h"
#include "formats/jsonl.h"

static const char *const MODULES[LORA_N_TARGETS] = {"q_proj", "k_proj", "v_proj", "o_proj",
                                                    "gate_proj", "up_proj", "down_proj"};
static const char *const SHORT[LORA_N_TARGETS] = {"q", "k", "v", "o", "gate", "up", "down"};

const char *lora_module_name(int target) {
    return target >= 0 && target < LORA_N_TARGETS ? MODULES[target] : "?";
}

float lora_scale(const LoraConfig *c) {
    return (float)(c->use_rslora ? c->alpha / sqrt((double)c->r) : c->alpha / c->r);
}

/* The target bits a module name stands for (0: none). Phi-3's fused
 * modules stand for their parts: qkv_proj for q, k, v; gate_up_proj for
 * gate and up (the training decoder adapts them as one module). */
static unsigned targets_of(const char *name, size_t len) {
    for (int t = 0; t < LORA_N_TARGETS; t++)
        if ((strlen(SHORT[t]) == len && !strncmp(name, SHORT[t], len)) ||
            (strlen(MODULES[t]) == len && !strncmp(name, MODULES[t], len)))
            return 1u << t;
    static const struct {
        const char *name;
        unsigned bits;
    } FUSED[] = {{"qkv_proj", 1u << LORA_Q | 1u << LORA_K | 1u << LORA_V},
                 {"qkv", 1u << LORA_Q | 1u << LORA_K | 1u << LORA_V},
                 {"gate_up_proj", 1u << LORA_GATE | 1u << LORA_UP},
                 {"gate_up", 1u << LORA_GATE | 1u << LORA_UP}};
    for (size_t i = 0; i < sizeof FUSED / sizeof *FUSED; i++)
        if (strlen(FUSED[i].name) == len && !strncmp(name, FUSED[i].name, len)) return FUSED[i].bits;
    return 0;
}

int lora_targets_parse(const char *list, unsigned *out, Err *e) {
    *out = 0;
    if (!strcmp(list, "all") || !strcmp(list, "all-linear")) {
        *out = (1u << LORA_N_TARGETS) - 1;
        return 0;
    }
    const char *p = list;
    while (*p) {
        const char *end = strchr(p, ',');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        unsigned t = targets_of(p, len);
        if (!t)
            return err_set(e, ERR_ARG, "LoRA targets: unknown module \"%.*s\": expected a list of "
                           "q,k,v,o,gate,up,down (or q_proj, ...; Phi-3's qkv_proj, gate_up_proj), or all", (int)len, p);
        *out |= t;
        if (!end) break;
        p = end + 1;
    }
    if (!*out) return err_set(e, ERR_ARG, "LoRA targets: empty list");
    return 0;
}

int lora_config_check(const LoraConfig *c, Err *e) {
    if (c->r <= 0) return err_set(e, ERR_ARG, "LoRA rank must be > 0, got %d", c->r);
    if (!(c->alpha > 0)) return err_set(e, ERR_ARG, "LoRA alpha must be > 0, got %g", c->alpha);
    if (!c->targets) return err_set(e, ERR_ARG, "LoRA: no target modules");
    if (!(c->dropout >= 0 && c->dropout < 1))
        return err_set(e, ERR_ARG, "LoRA dropout must be in [0, 1), got %g", c->dropout);
    return 0;
}

/* Fields of peft variants we do not implement must be absent, null, false,
 * empty or (for bias) "none". */
static int reject_variants(json_t *root, const char *path, Err *e) {
    static const char *const off[] = {"use_dora", "fan_in_fan_out", "lora_bias", "use_qalora"};
    for (size_t i = 0; i < sizeof off / sizeof *off; i++)
        if (json_is_true(json_object_get(root, off[i])))
            return err_set(e, ERR_UNSUPPORTED, "%s: %s is true: not supported", path, off[i]);
    static const char *const empty[] = {"rank_pattern", "alpha_pattern", "layers_to_transform", "modules_to_save",
                                        "layer_replication", "trainable_token_indices"};
    for (size_t i = 0; i < sizeof empty / sizeof *empty; i++) {
        json_t *v = json_object_get(root, empty[i]);
        if (v && !json_is_null(v) && !(json_is_object(v) && json_object_size(v) == 0) &&
            !(json_is_array(v) && json_array_size(v) == 0))
            return err_set(e, ERR_UNSUPPORTED, "%s: %s is set: not supported", path, empty[i]);
    }
    json_t *bias = json_object_get(root, "bias");
    if (bias && !(json_is_string(bias) && !strcmp(json_string_value(bias), "none")))
        return err_set(e, ERR_UNSUPPORTED, "%s: bias: only \"none\" is supported", path);
    return 0;
}

static int parse_targets(json_t *v, const char *path, unsigned *out, Err *e) {
    *out = 0;
    if (json_is_string(v)) {
        if (!strcmp(json_string_value(v), "all-linear")) return lora_targets_parse("all", out, e);
        return err_set(e, ERR_UNSUPPORTED, "%s: target_modules: a regular expression (\"%s\") is not supported; "
                       "expected a list of module names", path, json_string_value(v));
    }
    if (!json_is_array(v) || json_array_size(v) == 0)
        return err_set(e, ERR_PARSE, "%s: target_modules: expected a non-empty list of module names, got %s", path,
                       v ? json_type_name(v) : "nothing");
    size_t i;
    json_t *m;
    json_array_foreach(v, i, m) {
        const char *s = json_string_value(m);
        unsigned t = s ? targets_of(s, strlen(s)) : 0;
        if (!t)
            return err_set(e, ERR_UNSUPPORTED, "%s: target_modules[%zu]: %s%s%s is not one of q_proj, k_proj, "
                           "v_proj, o_proj, gate_proj, up_proj, down_proj, qkv_proj, gate_up_proj", path, i,
                           s ? "\"" : "", s ? s : json_type_name(m), s ? "\"" : "");
        *out |= t;
    }
    return 0;
}

int lora_config_load(const char *dir, LoraConfig *c, Err *e) {
    memset(c, 0, sizeof *c);
    char *path = path_join(dir, "adapter_config.json");
    json_error_t je;
    json_t *root = json_load_file(path, 0, &je);
    int rc = 0;
    if (!root) {
        rc = err_set(e, file_exists(path) ? ERR_PARSE : ERR_NOTFOUND, "%s: %s", path, je.text);
        goto out;
    }
    json_t *type = json_object_get(root, "peft_type");
    if (type && !(json_is_string(type) && !strcmp(json_string_value(type), "LORA"))) {
        rc = err_set(e, ERR_UNSUPPORTED, "%s: peft_type: expected \"LORA\"", path);
        goto out;
    }
    json_t *r = json_object_get(root, "r"), *alpha = json_object_get(root, "lora_alpha");
    if (!json_is_integer(r) || json_integer_value(r) <= 0) {
        rc = err_set(e, ERR_PARSE, "%s: r: expected a positive integer", path);
        goto out;
    }
    if (!json_is_number(alpha)) {
        rc = err_set(e, ERR_PARSE, "%s: lora_alpha: expected a number", path);
        goto out;
    }
    c->r = (int)json_integer_value(r);
    c->alpha = json_number_value(alpha);
    c->dropout = json_number_value(json_object_get(root, "lora_dropout"));
    c->use_rslora = json_is_true(json_object_get(root, "use_rslora"));
    rc = reject_variants(root, path, e) || parse_targets(json_object_get(root, "target_modules"), path, &c->targets, e)
             ? -1 : 0;
out:
    if (root) json_decref(root);
    free(path);
    return rc;
}

void lora_dropout_init(LoraDropout *d, double p, uint64_t seed, uint64_t pass, int layer, int target) {
    uint64_t k = rng_mix(seed ^ 0x6c6f7261ull /* "lora" */);
    k = rng_mix(k + LORA_DROPOUT_GOLDEN * (pass + 1));
    d->key = rng_mix(k + LORA_DROPOUT_GOLDEN * ((uint64_t)layer * LORA_N_TARGETS + (uint64_t)target + 1));
    double thr = p * 4294967296.0;
    d->threshold = thr >= 4294967295.0 ? UINT32_MAX : (uint32_t)(thr + 0.5);
    d->inv_keep = (float)(1.0 / (1.0 - p));
}

void lora_init_weights(float *A, float *B, int in, int out, int r, Rng *rng) {
    double bound = 1.0 / sqrt((double)in);
    for (long i = 0; i < (long)r * in; i++) A[i] = (float)((2 * rng_uniform(rng) - 1) * bound);
    memset(B, 0, (size_t)out * r * sizeof *B);
}
