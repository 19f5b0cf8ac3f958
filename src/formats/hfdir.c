/* hfdir: ModelConfig from config.json / generation_config.json / GGUF. */
#include "formats/hfdir.h"

#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/fileio.h"
#include "base/log.h"
#include "base/mem.h"
#include "formats/arch.h"
#include "formats/dtype.h"
#include "formats/gguf_write.h"
#include "formats/safetensors.h"

const char *model_arch_name(int arch) {
    const ArchDesc *a = arch_desc(arch);
    return a ? a->hf : "?";
}

const char *model_arch_supported(void) { return arch_hf_names(); }

/* ---- JSON field helpers: each names the file and field on error ---- */

typedef struct Json {
    json_t *root;
    const char *name;
    Err *e;
} Json;

static int j_int(Json *j, json_t *obj, const char *key, int def, int required, int *out) {
    json_t *v = json_object_get(obj, key);
    if (!v || json_is_null(v)) {
        if (required) return err_set(j->e, ERR_PARSE, "%s: missing integer field \"%s\"", j->name, key);
        *out = def;
        return 0;
    }
    if (!json_is_integer(v) || json_integer_value(v) < 0 || json_integer_value(v) > 0x7fffffff)
        return err_set(j->e, ERR_PARSE, "%s: field \"%s\" must be a non-negative integer", j->name, key);
    *out = (int)json_integer_value(v);
    return 0;
}

static int j_num(Json *j, json_t *obj, const char *key, double def, double *out) {
    json_t *v = json_object_get(obj, key);
    if (!v || json_is_null(v)) {
        *out = def;
        return 0;
    }
    if (!json_is_number(v)) return err_set(j->e, ERR_PARSE, "%s: field \"%s\" must be a number", j->name, key);
    *out = json_number_value(v);
    return 0;
}

/* A number that must be positive and finite as a float (RoPE bases, norm
 * epsilons, scaling factors): zero, a negative or a NaN would turn every
 * activation into NaN without an error. field names it in messages
 * ("rope_parameters.rope_theta"). */
static int j_posf(Json *j, json_t *obj, const char *key, const char *field, double def, float *out) {
    double d = def;
    if (j_num(j, obj, key, def, &d)) return -1;
    float f = (float)d;
    if (!(f > 0) || !isfinite(f))
        return err_set(j->e, ERR_PARSE, "%s: field \"%s\" = %g must be a positive finite number", j->name, field, d);
    *out = f;
    return 0;
}

static int j_numf(Json *j, json_t *obj, const char *key, double def, float *out) {
    double d = def;
    if (j_num(j, obj, key, def, &d)) return -1;
    *out = (float)d;
    return 0;
}

static int j_bool(Json *j, json_t *obj, const char *key, int def, int *out) {
    json_t *v = json_object_get(obj, key);
    if (!v || json_is_null(v)) {
        *out = def;
        return 0;
    }
    if (!json_is_boolean(v)) return err_set(j->e, ERR_PARSE, "%s: field \"%s\" must be true or false", j->name, key);
    *out = json_is_true(v);
    return 0;
}

/* bos/eos/pad ids: an integer, null, or a list of integers. */
static int j_ids(Json *j, json_t *obj, const char *key, int *ids, int max, int *n) {
    json_t *v = json_object_get(obj, key);
    *n = 0;
    if (!v || json_is_null(v)) return 0;
    if (json_is_integer(v)) {
        ids[(*n)++] = (int)json_integer_value(v);
        return 0;
    }
    if (!json_is_array(v)) return err_set(j->e, ERR_PARSE, "%s: field \"%s\" must be an integer or a list of integers", j->name, key);
    size_t i;
    json_t *x;
    json_array_foreach(v, i, x) {
        if (!json_is_integer(x))
            return err_set(j->e, ERR_PARSE, "%s: field \"%s\"[%zu] must be an integer", j->name, key, i);
        if (*n < max) ids[(*n)++] = (int)json_integer_value(x);
    }
    return 0;
}

static int j_one_id(Json *j, json_t *obj, const char *key, int *out) {
    int ids[MODEL_MAX_EOS], n;
    if (j_ids(j, obj, key, ids, MODEL_MAX_EOS, &n)) return -1;
    *out = n ? ids[0] : -1;
    return 0;
}

static int find_arch(Json *j, int *arch) {
    json_t *archs = json_object_get(j->root, "architectures"), *mt = json_object_get(j->root, "model_type");
    if (archs && !json_is_null(archs) &&
        (!json_is_array(archs) || (json_array_size(archs) > 0 && !json_is_string(json_array_get(archs, 0)))))
        return err_set(j->e, ERR_PARSE, "%s: field \"architectures\" must be a list of class names (strings)", j->name);
    if (mt && !json_is_null(mt) && !json_is_string(mt))
        return err_set(j->e, ERR_PARSE, "%s: field \"model_type\" must be a string, got %s", j->name,
                       json_is_number(mt) ? "a number" : json_is_boolean(mt) ? "a boolean" : json_is_array(mt) ? "a list" : "an object");
    const char *hf = json_is_array(archs) ? json_string_value(json_array_get(archs, 0)) : NULL;
    const char *type = json_string_value(mt);
    const ArchDesc *a = arch_by_hf(hf, type);
    if (a) {
        *arch = a->arch;
        return 0;
    }
    return err_set(j->e, ERR_UNSUPPORTED, "%s: unsupported architecture %s (supported: %s)", j->name,
                   hf ? hf : type ? type : "(none given)", model_arch_supported());
}

static int parse_dtype(Json *j, int *out) {
    const char *key = "dtype";
    json_t *v = json_object_get(j->root, key);
    if (!v || json_is_null(v)) v = json_object_get(j->root, key = "torch_dtype");
    *out = DT_F32;
    if (!v || json_is_null(v)) return 0;
    const char *s = json_string_value(v);
    if (!s)
        return err_set(j->e, ERR_PARSE, "%s: field \"%s\" must be a string (float32, float16 or bfloat16)", j->name, key);
    if (!strcmp(s, "float32")) *out = DT_F32;
    else if (!strcmp(s, "float16")) *out = DT_F16;
    else if (!strcmp(s, "bfloat16")) *out = DT_BF16;
    else return err_set(j->e, ERR_UNSUPPORTED, "%s: field \"%s\" = \"%s\" (expected float32, float16 or bfloat16)", j->name, key, s);
    return 0;
}

int rope_dims(const ModelConfig *c) {
    return c->rope.rot_dim > 0 && c->rope.rot_dim < c->head_dim ? c->rope.rot_dim : c->head_dim;
}

/* A list of rope_dims/2 positive factors (LongRoPE's long_factor / short_factor). */
static int j_factors(Json *j, json_t *src, const char *key, const char *sec, int n, float *out) {
    json_t *v = json_object_get(src, key);
    if (!json_is_array(v) || (int)json_array_size(v) != n)
        return err_set(j->e, ERR_PARSE, "%s: field \"%s.%s\" must be a list of %d numbers (rotary dims / 2)", j->name, sec,
                       key, n);
    for (int i = 0; i < n; i++) {
        json_t *x = json_array_get(v, (size_t)i);
        double d = json_is_number(x) ? json_number_value(x) : -1;
        if (!(d > 0) || !isfinite((float)d))
            return err_set(j->e, ERR_PARSE, "%s: field \"%s.%s\"[%d] must be a positive number", j->name, sec, key, i);
        out[i] = (float)d;
    }
    return 0;
}

/* LongRoPE (Phi-3): the factors, original_max_position_embeddings (in the
 * section or at the top level; max_position_embeddings when neither) and
 * the cos/sin factor transformers' _compute_longrope_parameters derives. */
static int parse_longrope(Json *j, json_t *src, const char *sec, const ModelConfig *c, RopeConfig *r) {
    int n = rope_dims(c) / 2;
    if (n > ROPE_MAX_FACTORS || n <= 0)
        return err_set(j->e, ERR_UNSUPPORTED, "%s: longrope with %d rotary dims (at most %d)", j->name, rope_dims(c),
                       2 * ROPE_MAX_FACTORS);
    r->type = ROPE_LONGROPE;
    r->n_factors = n;
    if (j_factors(j, src, "long_factor", sec, n, r->long_factor) || j_factors(j, src, "short_factor", sec, n, r->short_factor))
        return -1;
    int orig = 0;
    if (j_int(j, src, "original_max_position_embeddings", 0, 0, &orig)) return -1;
    if (!orig && j_int(j, j->root, "original_max_position_embeddings", 0, 0, &orig)) return -1;
    double factor;
    if (orig) {
        factor = (double)c->max_pos / orig;
    } else {
        orig = c->max_pos;
        if (j_num(j, src, "factor", 1.0, &factor)) return -1;
    }
    r->original_max_pos = orig;
    double af;
    if (j_num(j, src, "attention_factor", -1, &af)) return -1;
    if (af < 0) af = factor <= 1.0 || orig <= 1 ? 1.0 : sqrt(1 + log(factor) / log((double)orig));
    r->attn_factor = (float)af;
    if (!(r->attn_factor > 0) || !isfinite(r->attn_factor))
        return err_set(j->e, ERR_PARSE, "%s: field \"%s.attention_factor\" must be a positive number", j->name, sec);
    return 0;
}

/* transformers 5 keeps everything under rope_parameters (per layer type
 * for Gemma 3: {"full_attention": {...}, "sliding_attention": {...}});
 * transformers 4 has top-level rope_theta and an optional rope_scaling
 * object (Gemma 3: rope_local_base_freq beside them). */
static int parse_rope(Json *j, const ModelConfig *c, RopeConfig *r) {
    json_t *params = json_object_get(j->root, "rope_parameters");
    json_t *scaling = json_object_get(j->root, "rope_scaling");
    int rot_dim = r->rot_dim; /* parse_partial_rotary's */
    memset(r, 0, sizeof *r);
    r->rot_dim = rot_dim;
    if (j_posf(j, j->root, "rope_theta", "rope_theta", 10000.0, &r->theta)) return -1;
    if (json_object_get(j->root, "rope_local_base_freq") &&
        j_posf(j, j->root, "rope_local_base_freq", "rope_local_base_freq", 10000.0, &r->local_theta))
        return -1;
    json_t *src = NULL;
    const char *sec = "rope_parameters";
    if (params && !json_is_null(params) && !json_is_object(params))
        return err_set(j->e, ERR_PARSE, "%s: \"rope_parameters\" must be an object or null", j->name);
    if (json_is_object(params) && json_is_object(json_object_get(params, "full_attention"))) {
        json_t *local = json_object_get(params, "sliding_attention");
        if (json_is_object(local) &&
            j_posf(j, local, "rope_theta", "rope_parameters.sliding_attention.rope_theta", 10000.0, &r->local_theta))
            return -1;
        params = json_object_get(params, "full_attention");
        sec = "rope_parameters.full_attention";
    }
    if (json_is_object(params)) {
        char f[96];
        snprintf(f, sizeof f, "%s.rope_theta", sec);
        if (j_posf(j, params, "rope_theta", f, r->theta, &r->theta)) return -1;
        src = params;
    } else if (json_is_object(scaling)) {
        src = scaling;
        sec = "rope_scaling";
    } else if (scaling && !json_is_null(scaling)) {
        return err_set(j->e, ERR_PARSE, "%s: \"rope_scaling\" must be an object or null", j->name);
    }
    r->type = ROPE_DEFAULT;
    r->factor = 1;
    r->attn_factor = 1;
    if (!src) return 0;
    json_t *t = json_object_get(src, "rope_type");
    if (!t) t = json_object_get(src, "type");
    const char *type = json_string_value(t);
    char f1[96], f2[96], f3[96];
    if (t && !json_is_null(t) && !type)
        return err_set(j->e, ERR_PARSE, "%s: field \"%s.rope_type\" must be a string", j->name, sec);
    if (!type || !strcmp(type, "default")) return 0;
    snprintf(f1, sizeof f1, "%s.factor", sec);
    if (!strcmp(type, "linear")) {
        r->type = ROPE_LINEAR;
        return j_posf(j, src, "factor", f1, 1.0, &r->factor);
    }
    /* "su" is LongRoPE's first name (Phi-3 configs of 2024) */
    if (!strcmp(type, "longrope") || !strcmp(type, "su")) return parse_longrope(j, src, sec, c, r);
    if (!strcmp(type, "llama3")) {
        r->type = ROPE_LLAMA3;
        snprintf(f2, sizeof f2, "%s.low_freq_factor", sec);
        snprintf(f3, sizeof f3, "%s.high_freq_factor", sec);
        if (j_posf(j, src, "factor", f1, 8.0, &r->factor) || j_posf(j, src, "low_freq_factor", f2, 1.0, &r->low_freq_factor) ||
            j_posf(j, src, "high_freq_factor", f3, 4.0, &r->high_freq_factor) ||
            j_int(j, src, "original_max_position_embeddings", 8192, 0, &r->original_max_pos))
            return -1;
        /* the blend divides by their difference */
        if (r->high_freq_factor <= r->low_freq_factor)
            return err_set(j->e, ERR_PARSE, "%s: %s (%g) must be larger than %s (%g)", j->name, f3,
                           (double)r->high_freq_factor, f2, (double)r->low_freq_factor);
        return 0;
    }
    return err_set(j->e, ERR_UNSUPPORTED, "%s: rope type %s is not supported (default, linear, llama3, longrope)",
                   j->name, type);
}

/* A positive number or null/absent (0): soft-caps, clip_qkv. */
static int j_opt_pos(Json *j, const char *key, float *out) {
    json_t *v = json_object_get(j->root, key);
    *out = 0;
    if (!v || json_is_null(v)) return 0;
    return j_posf(j, j->root, key, key, 0, out);
}

/* Which layers attend within sliding_window: transformers 5's layer_types
 * list, or sliding_window_pattern (Gemma 3 in transformers 4), as a period
 * (ModelConfig.swa_pattern); a list that is not periodic that way is
 * refused rather than run differently. */
static int parse_layer_types(Json *j, ModelConfig *c) {
    /* only the architectures with local and global layers (Gemma): the
     * others' layer_types (transformers 5 writes it for Llama and Qwen too)
     * say what sliding_window and use_sliding_window already say */
    if (!arch_desc(c->arch)->swa_pattern) return 0;
    json_t *lt = json_object_get(j->root, "layer_types");
    if (!lt || json_is_null(lt)) {
        if (j_int(j, j->root, "sliding_window_pattern", 0, 0, &c->swa_pattern)) return -1;
        return 0;
    }
    if (!json_is_array(lt) || (int)json_array_size(lt) != c->n_layers)
        return err_set(j->e, ERR_PARSE, "%s: field \"layer_types\" must be a list of %d strings (num_hidden_layers)",
                       j->name, c->n_layers);
    int first_full = -1, any_sliding = 0;
    for (int l = 0; l < c->n_layers; l++) {
        const char *s = json_string_value(json_array_get(lt, (size_t)l));
        int sliding = s && !strcmp(s, "sliding_attention");
        if (!s || (!sliding && strcmp(s, "full_attention")))
            return err_set(j->e, ERR_PARSE, "%s: layer_types[%d] must be \"sliding_attention\" or \"full_attention\"",
                           j->name, l);
        any_sliding |= sliding;
        if (!sliding && first_full < 0) first_full = l;
    }
    if (!any_sliding) {
        c->sliding_window = 0; /* every layer global */
        return 0;
    }
    c->swa_pattern = first_full < 0 ? -1 : first_full + 1; /* -1: every layer local */
    for (int l = 0; l < c->n_layers && c->swa_pattern > 0; l++) {
        const char *s = json_string_value(json_array_get(lt, (size_t)l));
        if (!strcmp(s, "sliding_attention") != ((l + 1) % c->swa_pattern != 0))
            return err_set(j->e, ERR_UNSUPPORTED, "%s: layer_types[%d] = %s breaks the period %d of full-attention layers "
                           "(only periodic patterns are supported)", j->name, l, s, c->swa_pattern);
    }
    return 0;
}

/* The MLP activation config.json names must be the one the architecture
 * runs (arch_config_quirks' act). */
static int check_act(Json *j, const ModelConfig *c) {
    const char *key = "hidden_activation";
    json_t *v = json_object_get(j->root, key);
    if (!v || json_is_null(v)) v = json_object_get(j->root, key = "hidden_act");
    if (!v || json_is_null(v)) return 0;
    const char *s = json_string_value(v);
    int act = !s ? -1 : !strcmp(s, "silu") || !strcmp(s, "swish") ? ACT_SILU
              : !strcmp(s, "gelu_pytorch_tanh") || !strcmp(s, "gelu_new") || !strcmp(s, "gelu_fast") ? ACT_GELU_TANH
              : -1;
    if (act != c->act)
        return err_set(j->e, ERR_UNSUPPORTED, "%s: field \"%s\" = %s: %s runs with %s", j->name, key, s ? s : "(not a string)",
                       model_arch_name(c->arch), c->act == ACT_SILU ? "silu" : "gelu_pytorch_tanh");
    return 0;
}

/* Gemma3TextConfig's defaults (transformers' configuration_gemma3.py) for
 * the fields a Gemma 3 config leaves out: a multimodal checkpoint's
 * text_config holds only the fields that differ from them (gemma-3-4b's:
 * hidden_size, intermediate_size, num_hidden_layers, rope_scaling,
 * sliding_window), and the generic defaults below (head_dim =
 * hidden/heads, 2048 positions, rope_theta 1e4) are other numbers. */
static void gemma3_text_defaults(json_t *o) {
    static const struct {
        const char *key;
        double v;
    } D[] = {
        {"vocab_size", 262208},       {"hidden_size", 2304},          {"intermediate_size", 9216},
        {"num_hidden_layers", 26},    {"num_attention_heads", 8},     {"num_key_value_heads", 4},
        {"head_dim", 256},            {"max_position_embeddings", 131072}, {"query_pre_attn_scalar", 256},
        {"sliding_window", 4096},     {"pad_token_id", 0},            {"eos_token_id", 1},
        {"bos_token_id", 2},
    };
    for (size_t i = 0; i < sizeof D / sizeof D[0]; i++)
        if (!json_object_get(o, D[i].key)) json_object_set_new(o, D[i].key, json_integer((json_int_t)D[i].v));
    if (!json_object_get(o, "rms_norm_eps")) json_object_set_new(o, "rms_norm_eps", json_real(1e-6));
    if (!json_object_get(o, "rope_theta")) json_object_set_new(o, "rope_theta", json_real(1e6));
    if (!json_object_get(o, "rope_local_base_freq")) json_object_set_new(o, "rope_local_base_freq", json_real(1e4));
}

/* A multimodal checkpoint's text decoder config: config.json's text_config
 * (absent or null: the text class's defaults, as transformers builds it),
 * with the token ids config.json keeps at the top level (gemma-3-4b-it's
 * eos_token_id [1, 106]) and its dtype when text_config has none.
 * vision_config and the other top-level fields are not the decoder's. */
static json_t *text_config_of(Json *j) {
    json_t *tc = json_object_get(j->root, "text_config");
    if (tc && !json_is_null(tc) && !json_is_object(tc)) {
        err_set(j->e, ERR_PARSE, "%s: field \"text_config\" must be an object (the text decoder's config)", j->name);
        return NULL;
    }
    json_t *m = json_is_object(tc) ? json_deep_copy(tc) : json_object();
    static const char *const ids[] = {"bos_token_id", "eos_token_id", "pad_token_id"};
    for (size_t i = 0; i < sizeof ids / sizeof ids[0]; i++) {
        json_t *v = json_object_get(j->root, ids[i]);
        if (v) json_object_set(m, ids[i], v);
    }
    static const char *const dt[] = {"dtype", "torch_dtype"};
    if (!json_object_get(m, "dtype") && !json_object_get(m, "torch_dtype"))
        for (size_t i = 0; i < 2; i++) {
            json_t *v = json_object_get(j->root, dt[i]);
            if (v) json_object_set(m, dt[i], v);
        }
    return m;
}

/* partial_rotary_factor f (Phi-4-mini 0.75): RoPE turns the first
 * int(head_dim · f) dims of each head (transformers' rule, in
 * modeling_rope_utils and Phi-3's rotary_ndims), an even number > 0. Set
 * before parse_rope: LongRoPE's factor lists are that long / 2. */
static int parse_partial_rotary(Json *j, ModelConfig *c) {
    double prf = 1;
    /* transformers 5 may keep it in rope_parameters */
    json_t *params = json_object_get(j->root, "rope_parameters"), *src = j->root;
    if (!json_object_get(src, "partial_rotary_factor") && json_is_object(params)) src = params;
    if (j_num(j, src, "partial_rotary_factor", 1.0, &prf)) return -1;
    int rot = (int)(c->head_dim * prf);
    if (!(prf > 0 && prf <= 1) || rot < 2 || rot % 2)
        return err_set(j->e, ERR_PARSE,
                       "%s: partial_rotary_factor = %g must be in (0, 1] and turn an even number >= 2 of the %d "
                       "dims of a head (got %d)",
                       j->name, prf, c->head_dim, rot);
    c->rope.rot_dim = rot < c->head_dim ? rot : 0;
    return 0;
}

int hf_config_parse(const char *text, const char *name, ModelConfig *c, Err *e) {
    json_error_t je;
    json_t *root = json_loads(text, 0, &je);
    if (!root) return err_set(e, ERR_PARSE, "%s:%d: %s", name, je.line, je.text);
    Json j = {root, name, e};
    memset(c, 0, sizeof *c);
    int rc = -1;
    char *text_name = NULL;
    if (!json_is_object(root)) {
        err_set(e, ERR_PARSE, "%s: expected a JSON object", name);
        goto done;
    }
    if (find_arch(&j, &c->arch)) goto done;
    if (arch_desc(c->arch)->flags & ARCHF_TEXT_OF_MM) {
        json_t *tc = text_config_of(&j);
        if (!tc) goto done;
        json_decref(root);
        j.root = root = tc;
        /* messages name the section the fields are in */
        j.name = text_name = xasprintf("%s: text_config", name);
    }
    if (arch_canonical(c->arch) == ARCH_GEMMA3) gemma3_text_defaults(root);
    int bert = c->arch == ARCH_BERT;
    if (j_int(&j, root, "hidden_size", 0, 1, &c->hidden_size) ||
        j_int(&j, root, "intermediate_size", 0, 1, &c->intermediate_size) ||
        j_int(&j, root, "num_hidden_layers", 0, 1, &c->n_layers) ||
        j_int(&j, root, "num_attention_heads", 0, 1, &c->n_heads) || j_int(&j, root, "vocab_size", 0, 1, &c->vocab_size))
        goto done;
    if (c->n_heads <= 0 || c->hidden_size <= 0) {
        err_set(e, ERR_PARSE, "%s: hidden_size and num_attention_heads must be positive", name);
        goto done;
    }
    if (j_int(&j, root, "num_key_value_heads", c->n_heads, 0, &c->n_kv_heads) ||
        j_int(&j, root, "head_dim", c->hidden_size / c->n_heads, 0, &c->head_dim) ||
        j_int(&j, root, "max_position_embeddings", 2048, 0, &c->max_pos) ||
        j_posf(&j, root, bert ? "layer_norm_eps" : "rms_norm_eps", bert ? "layer_norm_eps" : "rms_norm_eps",
               bert ? 1e-12 : 1e-6, &c->norm_eps) ||
        j_bool(&j, root, "tie_word_embeddings", bert || (arch_desc(c->arch)->flags & ARCHF_TIED_DEFAULT),
               &c->tie_word_embeddings) ||
        j_bool(&j, root, "attention_bias", 0, &c->attention_bias) || parse_partial_rotary(&j, c) ||
        parse_rope(&j, c, &c->rope) ||
        j_one_id(&j, root, "bos_token_id", &c->bos_id) ||
        j_ids(&j, root, "eos_token_id", c->eos_ids, MODEL_MAX_EOS, &c->n_eos) ||
        j_one_id(&j, root, "pad_token_id", &c->pad_id) || parse_dtype(&j, &c->dtype) ||
        j_int(&j, root, "type_vocab_size", 0, 0, &c->type_vocab_size) ||
        j_int(&j, root, "sliding_window", 0, 0, &c->sliding_window))
        goto done;
    if (c->n_kv_heads <= 0 || c->n_heads % c->n_kv_heads) {
        err_set(e, ERR_PARSE, "%s: num_attention_heads %d is not a multiple of num_key_value_heads %d", name,
                c->n_heads, c->n_kv_heads);
        goto done;
    }
    if (j_opt_pos(&j, "attn_logit_softcapping", &c->attn_softcap) ||
        j_opt_pos(&j, "final_logit_softcapping", &c->final_softcap) || j_opt_pos(&j, "clip_qkv", &c->clip_qkv) ||
        parse_layer_types(&j, c))
        goto done;
    float qpas = 0;
    if (j_opt_pos(&j, "query_pre_attn_scalar", &qpas)) goto done;
    if (qpas > 0) c->attn_scale = (float)pow(qpas, -0.5);
    arch_config_quirks(c);
    if ((arch_desc(c->arch)->flags & ARCHF_DECODER) && check_act(&j, c)) goto done;
    if (!bert) c->type_vocab_size = 0;
    /* Qwen2/3 write a sliding_window size but only use it when asked */
    json_t *use_sw = json_object_get(root, "use_sliding_window");
    if ((arch_desc(c->arch)->flags & ARCHF_SW_OPT_IN) && !json_is_true(use_sw)) c->sliding_window = 0;
    rc = 0;
done:
    free(text_name);
    json_decref(root);
    return rc;
}

/* The multimodal Gemma 3's tensor layout, from the weights: the
 * published checkpoints' "language_model.model." or transformers >= 4.52's
 * "model.language_model." (the embedding's name tells). One log line says
 * the other towers' tensors are not used. No weights (or unreadable ones):
 * the published layout; the loader reports what is missing. */
static void mm_layout(const char *dir, ModelConfig *c) {
    Err ignore = {0};
    SafeTensors *st = st_open(dir, &ignore);
    if (!st) return;
    const ArchDesc *a = arch_desc(c->arch);
    for (int arch = 0; arch < ARCH_COUNT; arch++) {
        const ArchDesc *b = arch_desc(arch);
        const ArchTensor *emb = arch_tensor_of(arch, PARAM_EMBED);
        if (b && emb && (b->flags & ARCHF_TEXT_OF_MM) && !strcmp(b->hf, a->hf) && st_find(st, emb->hf)) {
            c->arch = arch;
            break;
        }
    }
    int other = 0, n = st_count(st), layer;
    for (int i = 0; i < n; i++) other += arch_kind_of_hf_in(c->arch, st_tensor(st, i)->name, &layer) < 0;
    if (other)
        log_info("%s: %s: running its text decoder; the %d other tensors (vision tower, projector) are not used", dir,
                 a->hf, other);
    st_close(st);
}

int hf_config_load(const char *dir, ModelConfig *cfg, Err *e) {
    char *p = path_join(dir, "config.json"), *text;
    size_t len;
    int rc = file_read_all(p, &text, &len, e);
    if (!rc) {
        rc = hf_config_parse(text, p, cfg, e);
        free(text);
    }
    if (!rc && (arch_desc(cfg->arch)->flags & ARCHF_TEXT_OF_MM)) mm_layout(dir, cfg);
    free(p);
    return rc;
}

void gen_config_init(GenConfig *g) {
    memset(g, 0, sizeof *g);
    g->bos_id = -1;
    g->pad_id = -1;
    g->temperature = 1;
    g->top_p = 1;
    g->top_k = 50;
    g->repetition_penalty = 1;
}

static int gen_field(Json *j, const char *key, float *val, int *has) {
    json_t *v = json_object_get(j->root, key);
    if (!v || json_is_null(v)) return 0;
    if (j_numf(j, j->root, key, 0, val)) return -1;
    *has = 1;
    return 0;
}

int hf_genconfig_parse(const char *text, const char *name, GenConfig *g, Err *e) {
    json_error_t je;
    json_t *root = json_loads(text, 0, &je);
    if (!root) return err_set(e, ERR_PARSE, "%s:%d: %s", name, je.line, je.text);
    Json j = {root, name, e};
    int rc = -1;
    if (!json_is_object(root)) {
        err_set(e, ERR_PARSE, "%s: expected a JSON object", name);
        goto done;
    }
    if (j_one_id(&j, root, "bos_token_id", &g->bos_id) || j_ids(&j, root, "eos_token_id", g->eos_ids, MODEL_MAX_EOS, &g->n_eos) ||
        j_one_id(&j, root, "pad_token_id", &g->pad_id) || gen_field(&j, "temperature", &g->temperature, &g->has_temperature) ||
        gen_field(&j, "top_p", &g->top_p, &g->has_top_p) || gen_field(&j, "min_p", &g->min_p, &g->has_min_p) ||
        gen_field(&j, "repetition_penalty", &g->repetition_penalty, &g->has_repetition_penalty) ||
        j_int(&j, root, "max_new_tokens", 0, 0, &g->max_new_tokens))
        goto done;
    if (json_object_get(root, "top_k") && !json_is_null(json_object_get(root, "top_k"))) {
        if (j_int(&j, root, "top_k", 50, 0, &g->top_k)) goto done;
        g->has_top_k = 1;
    }
    if (json_object_get(root, "do_sample") && !json_is_null(json_object_get(root, "do_sample"))) {
        if (j_bool(&j, root, "do_sample", 0, &g->do_sample)) goto done;
        g->has_do_sample = 1;
    }
    rc = 0;
done:
    json_decref(root);
    return rc;
}

int hf_genconfig_load(const char *dir, GenConfig *g, Err *e) {
    gen_config_init(g);
    char *p = path_join(dir, "generation_config.json"), *text;
    size_t len;
    int rc = 0;
    if (file_exists(p)) {
        rc = file_read_all(p, &text, &len, e);
        if (!rc) {
            rc = hf_genconfig_parse(text, p, g, e);
            free(text);
        }
    }
    free(p);
    return rc;
}

/* ---- chat template ---- */

static int template_from_config(json_t *ct, const char *path, const char *name, char **out, Err *e) {
    if (json_is_string(ct)) {
        *out = xstrdup(json_string_value(ct));
        return 0;
    }
    if (!json_is_array(ct)) return err_set(e, ERR_PARSE, "%s: \"chat_template\" must be a string or a list", path);
    size_t i;
    json_t *item;
    json_array_foreach(ct, i, item) {
        const char *n = json_string_value(json_object_get(item, "name"));
        const char *t = json_string_value(json_object_get(item, "template"));
        if (!n || !t)
            return err_set(e, ERR_PARSE, "%s: chat_template[%zu] must have string \"name\" and \"template\"", path, i);
        if (!strcmp(n, name ? name : "default")) {
            *out = xstrdup(t);
            return 0;
        }
    }
    return err_set(e, ERR_NOTFOUND, "%s: no chat template named %s", path, name ? name : "default");
}

int hf_chat_template_load(const char *dir, const char *name, char **out, Err *e) {
    *out = NULL;
    char *jinja = path_join(dir, "chat_template.jinja"), *text = NULL;
    size_t len;
    int rc = 0;
    if (!name && file_exists(jinja)) {
        rc = file_read_text(jinja, "a chat template", out, NULL, e);
        free(jinja);
        return rc;
    }
    free(jinja);
    char *cfg = path_join(dir, "tokenizer_config.json");
    if (file_exists(cfg)) {
        rc = file_read_all(cfg, &text, &len, e);
        json_error_t je;
        /* hub configs hold integers beyond int64 (model_max_length) */
        json_t *root = rc ? NULL : json_loadb(text, len, JSON_DECODE_INT_AS_REAL, &je);
        if (!rc && !root) rc = err_set(e, ERR_PARSE, "%s:%d: %s", cfg, je.line, je.text);
        json_t *ct = json_object_get(root, "chat_template");
        if (!rc && ct && !json_is_null(ct)) rc = template_from_config(ct, cfg, name, out, e);
        else if (!rc && name) rc = err_set(e, ERR_NOTFOUND, "%s: no chat template named %s", cfg, name);
        json_decref(root);
        free(text);
    }
    free(cfg);
    return rc;
}

/* ---- GGUF ---- */

static int g_u32(const Gguf *g, const char *arch, const char *key, int def, int required, int *out, Err *e) {
    char k[128];
    snprintf(k, sizeof k, "%s.%s", arch, key);
    if (!gguf_find_key(g, k) && !required) {
        *out = def;
        return 0;
    }
    uint32_t v;
    if (gguf_get_u32(g, k, &v, e)) return -1;
    if (v > 0x7fffffff) return err_set(e, ERR_PARSE, "%s: %s = %u is too large", gguf_path(g), k, v);
    *out = (int)v;
    return 0;
}

static int g_f32(const Gguf *g, const char *arch, const char *key, float def, float *out, Err *e) {
    char k[128];
    snprintf(k, sizeof k, "%s.%s", arch, key);
    if (!gguf_find_key(g, k)) {
        *out = def;
        return 0;
    }
    return gguf_get_f32(g, k, out, e);
}

/* g_f32 for values that must be positive and finite (see j_posf). */
static int g_posf(const Gguf *g, const char *arch, const char *key, float def, float *out, Err *e) {
    if (g_f32(g, arch, key, def, out, e)) return -1;
    if (!(*out > 0) || !isfinite(*out))
        return err_set(e, ERR_PARSE, "%s: metadata %s.%s = %g must be a positive finite number", gguf_path(g), arch, key,
                       (double)*out);
    return 0;
}

static int gguf_token_id(const Gguf *g, const char *key, int *out, Err *e) {
    *out = -1;
    if (!gguf_find_key(g, key)) return 0;
    int32_t v;
    if (gguf_get_i32(g, key, &v, e)) return -1;
    *out = v;
    return 0;
}

/* A LongRoPE factor tensor (rope_factors_long/short.weight) of n floats into out. */
static int gguf_factors(const Gguf *g, const char *name, int n, float *out, Err *e) {
    const TensorView *t = gguf_get_tensor(g, name, e);
    if (!t) return -1;
    int64_t shape = n;
    if (tensor_check_shape(t, 1, &shape, e)) return -1;
    float *f = tensor_to_f32_alloc(t, e);
    if (!f) return -1;
    memcpy(out, f, (size_t)n * sizeof(float));
    free(f);
    for (int i = 0; i < n; i++)
        if (!(out[i] > 0) || !isfinite(out[i]))
            return err_set(e, ERR_PARSE, "%s: tensor %s[%d] = %g must be a positive number", gguf_path(g), name, i,
                           (double)out[i]);
    return 0;
}

static int gguf_rope(const Gguf *g, const char *a, int head_dim, RopeConfig *r, Err *e) {
    memset(r, 0, sizeof *r);
    /* llama.cpp's n_rot: the leading dims of each head RoPE turns */
    int rot = head_dim;
    if (g_u32(g, a, "rope.dimension_count", head_dim, 0, &rot, e)) return -1;
    if (rot < 2 || rot > head_dim || rot % 2)
        return err_set(e, ERR_PARSE, "%s: %s.rope.dimension_count = %d must be even, in [2, key_length %d]",
                       gguf_path(g), a, rot, head_dim);
    r->rot_dim = rot < head_dim ? rot : 0;
    r->factor = 1;
    r->attn_factor = 1;
    if (g_posf(g, a, "rope.freq_base", 10000.0f, &r->theta, e)) return -1;
    char k[128];
    snprintf(k, sizeof k, "%s.rope.freq_base_swa", a);
    if (gguf_find_key(g, k) && g_posf(g, a, "rope.freq_base_swa", 10000.0f, &r->local_theta, e)) return -1;
    snprintf(k, sizeof k, "%s.rope.scaling.type", a);
    const char *type = NULL;
    if (gguf_find_key(g, k) && gguf_get_str(g, k, &type, e)) return -1;
    if (type && !strcmp(type, "linear")) {
        r->type = ROPE_LINEAR;
        if (g_posf(g, a, "rope.scaling.factor", 1.0f, &r->factor, e)) return -1;
    } else if (type && strcmp(type, "none")) {
        return err_set(e, ERR_UNSUPPORTED, "%s: rope scaling %s is not supported (none, linear, or rope_freqs.weight)",
                       gguf_path(g), type);
    }
    if (gguf_find_tensor(g, "rope_freqs.weight")) {
        r->type = ROPE_LLAMA3;
        r->freqs_from_tensor = 1;
        if (g_u32(g, a, "rope.scaling.original_context_length", 0, 0, &r->original_max_pos, e)) return -1;
    }
    /* LongRoPE: llama.cpp keeps the factors as tensors */
    if (gguf_find_tensor(g, "rope_factors_long.weight") || gguf_find_tensor(g, "rope_factors_short.weight")) {
        int n = (r->rot_dim ? r->rot_dim : head_dim) / 2;
        if (n <= 0 || n > ROPE_MAX_FACTORS)
            return err_set(e, ERR_UNSUPPORTED, "%s: LongRoPE with %d rotary dims (at most %d)", gguf_path(g), 2 * n,
                           2 * ROPE_MAX_FACTORS);
        r->type = ROPE_LONGROPE;
        r->n_factors = n;
        if (gguf_factors(g, "rope_factors_long.weight", n, r->long_factor, e) ||
            gguf_factors(g, "rope_factors_short.weight", n, r->short_factor, e) ||
            g_u32(g, a, "rope.scaling.original_context_length", 0, 0, &r->original_max_pos, e) ||
            g_posf(g, a, "rope.scaling.attn_factor", 1.0f, &r->attn_factor, e))
            return -1;
    }
    return 0;
}

/* g_f32 for optional positive values, 0 when absent (soft-caps, clamp_kqv). */
static int g_opt_pos(const Gguf *g, const char *arch, const char *key, float *out, Err *e) {
    char k[128];
    snprintf(k, sizeof k, "%s.%s", arch, key);
    *out = 0;
    return gguf_find_key(g, k) ? g_posf(g, arch, key, 0, out, e) : 0;
}

int gguf_model_config(const Gguf *g, ModelConfig *c, Err *e) {
    const char *a;
    memset(c, 0, sizeof *c);
    if (gguf_get_str(g, "general.architecture", &a, e)) return -1;
    const ArchDesc *ad = arch_by_gguf(a);
    /* llama.cpp writes a multimodal model as two files: the text model
     * (gemma3, ...) and the vision tower and projector ("clip", the mmproj
     * file) */
    if (!ad && !strcmp(a, "clip"))
        return err_set(e, ERR_UNSUPPORTED, "%s: a vision projector (mmproj) file, general.architecture clip: aloe runs "
                       "the text model, the other .gguf llama.cpp wrote beside it", gguf_path(g));
    if (!ad)
        return err_set(e, ERR_UNSUPPORTED, "%s: unsupported GGUF architecture %s (supported: %s)", gguf_path(g), a,
                       arch_gguf_names());
    c->arch = ad->arch;
    int bert = c->arch == ARCH_BERT;
    if (g_u32(g, a, "block_count", 0, 1, &c->n_layers, e) || g_u32(g, a, "embedding_length", 0, 1, &c->hidden_size, e) ||
        g_u32(g, a, "feed_forward_length", 0, 1, &c->intermediate_size, e) ||
        g_u32(g, a, "attention.head_count", 0, 1, &c->n_heads, e) ||
        g_u32(g, a, "context_length", 2048, 0, &c->max_pos, e))
        return -1;
    if (c->n_heads <= 0) return err_set(e, ERR_PARSE, "%s: %s.attention.head_count must be positive", gguf_path(g), a);
    if (g_u32(g, a, "attention.head_count_kv", c->n_heads, 0, &c->n_kv_heads, e) ||
        g_u32(g, a, "attention.key_length", c->hidden_size / c->n_heads, 0, &c->head_dim, e) ||
        g_posf(g, a, bert ? "attention.layer_norm_epsilon" : "attention.layer_norm_rms_epsilon", bert ? 1e-12f : 1e-6f,
               &c->norm_eps, e) ||
        g_u32(g, a, "attention.sliding_window", 0, 0, &c->sliding_window, e) ||
        g_u32(g, a, "attention.sliding_window_pattern", 0, 0, &c->swa_pattern, e) ||
        gguf_rope(g, a, c->head_dim, &c->rope, e) || g_opt_pos(g, a, "attn_logit_softcapping", &c->attn_softcap, e) ||
        g_opt_pos(g, a, "final_logit_softcapping", &c->final_softcap, e) ||
        g_opt_pos(g, a, "attention.clamp_kqv", &c->clip_qkv, e) || g_opt_pos(g, a, "attention.scale", &c->attn_scale, e))
        return -1;
    if (c->n_kv_heads <= 0 || c->n_heads % c->n_kv_heads)
        return err_set(e, ERR_PARSE, "%s: head_count %d is not a multiple of head_count_kv %d", gguf_path(g),
                       c->n_heads, c->n_kv_heads);
    const ArchTensor *emb_t = arch_tensor_of(c->arch, PARAM_EMBED), *head_t = arch_tensor_of(c->arch, PARAM_LM_HEAD);
    const TensorView *emb = emb_t ? gguf_find_tensor(g, emb_t->gguf) : NULL;
    const GgufKV *tokens = gguf_find_key(g, "tokenizer.ggml.tokens");
    if (g_u32(g, a, "vocab_size", 0, 0, &c->vocab_size, e)) return -1;
    /* the vocabulary size is an int everywhere after this */
    if (!c->vocab_size && emb && emb->shape[0] > 0x7fffffff)
        return err_set(e, ERR_PARSE, "%s: tensor token_embd.weight: %lld rows is too many for a vocabulary", gguf_path(g),
                       (long long)emb->shape[0]);
    if (!c->vocab_size && emb) c->vocab_size = (int)emb->shape[0];
    if (!c->vocab_size && tokens && tokens->type == GGUF_ARRAY && tokens->n <= 0x7fffffff) c->vocab_size = (int)tokens->n;
    if (!c->vocab_size) return err_set(e, ERR_PARSE, "%s: cannot tell the vocabulary size", gguf_path(g));
    c->tie_word_embeddings = emb && !(head_t && gguf_find_tensor(g, head_t->gguf));
    /* presence as the architecture's quirks imply it, then as the file shows
     * it: a llama file with q biases has an o_proj bias too (arch_config_quirks) */
    char name[64];
    c->attention_bias =
        !arch_gguf_name_of(c->arch, PARAM_BQ, 0, name, sizeof name) && gguf_find_tensor(g, name) != NULL;
    c->qk_norm = !arch_gguf_name_of(c->arch, PARAM_Q_NORM, 0, name, sizeof name) && gguf_find_tensor(g, name) != NULL;
    /* llama.cpp's converter stores Gemma's norms as w + 1 */
    c->norms_folded = 1;
    /* attention.scale is the score scale itself (aloe writes it for a
     * query_pre_attn_scalar other than head_dim; llama.cpp's default is
     * 1/sqrt(head_dim)). llama.cpp's converter writes no such key for
     * Gemma: its loader knows the 27B models (Gemma 2: 46 layers, Gemma 3:
     * 62), whose query_pre_attn_scalar is hidden/heads, not head_dim, by
     * their layer count, and so must we; and a Gemma 2 file without a
     * window has Gemma 2's 4096. */
    int gemma2 = c->arch == ARCH_GEMMA2, gemma3 = arch_canonical(c->arch) == ARCH_GEMMA3;
    if (!(c->attn_scale > 0) && ((gemma2 && c->n_layers == 46) || (gemma3 && c->n_layers == 62)))
        c->attn_scale = 1.0f / sqrtf((float)(c->hidden_size / c->n_heads));
    if (gemma2 && !c->sliding_window) c->sliding_window = 4096;
    if (ad->flags & ARCHF_DECODER) arch_config_quirks(c);
    const TensorView *q =
        arch_gguf_name_of(c->arch, PARAM_WQ, 0, name, sizeof name) ? NULL : gguf_find_tensor(g, name);
    c->dtype = q ? q->dtype : DT_F32;
    if (bert && g_u32(g, "tokenizer.ggml", "token_type_count", 2, 0, &c->type_vocab_size, e)) return -1;
    if (gguf_token_id(g, "tokenizer.ggml.bos_token_id", &c->bos_id, e) ||
        gguf_token_id(g, "tokenizer.ggml.padding_token_id", &c->pad_id, e))
        return -1;
    int eos;
    if (gguf_token_id(g, "tokenizer.ggml.eos_token_id", &eos, e)) return -1;
    if (eos >= 0) c->eos_ids[c->n_eos++] = eos;
    int eot;
    if (gguf_token_id(g, "tokenizer.ggml.eot_token_id", &eot, e)) return -1;
    if (eot >= 0 && eot != eos) c->eos_ids[c->n_eos++] = eot;
    return 0;
}

/* ---- RoPE factors and GGUF metadata ---- */

void rope_freq_factors(const RopeConfig *r, int head_dim, float *factors) {
    int n = head_dim / 2;
    for (int i = 0; i < n; i++) {
        double f = 1.0;
        if (r->type == ROPE_LINEAR) {
            f = r->factor;
        } else if (r->type == ROPE_LLAMA3) {
            /* long wavelengths are slowed by `factor`, short ones kept,
             * and the band between blended smoothly */
            double inv = pow(r->theta, -2.0 * i / head_dim), wavelen = 2 * M_PI / inv;
            double old = r->original_max_pos, lo = old / r->low_freq_factor, hi = old / r->high_freq_factor;
            if (wavelen < hi) f = 1.0;
            else if (wavelen > lo) f = r->factor;
            else {
                double smooth = (old / wavelen - r->low_freq_factor) / (r->high_freq_factor - r->low_freq_factor);
                f = 1.0 / ((1 - smooth) / r->factor + smooth);
            }
        }
        factors[i] = (float)f;
    }
}

int gguf_set_model_config(GgufWriter *w, const ModelConfig *c, Err *e) {
    const ArchDesc *ad = arch_desc(c->arch);
    const char *a = ad ? ad->gguf : NULL;
    if (!a) return err_set(e, ERR_UNSUPPORTED, "no GGUF architecture for %s", model_arch_name(c->arch));
    /* llama.cpp turns adjacent pairs of the first n_rot dims there, and
     * the converter's Q/K row permutation is over the whole head */
    if ((ad->flags & ARCHF_GGUF_PERMUTED) && rope_dims(c) < c->head_dim)
        return err_set(e, ERR_UNSUPPORTED,
                       "%s with partial_rotary_factor < 1 (%d of %d dims turned): no GGUF conversion (its Q/K row "
                       "permutation is over the whole head)",
                       model_arch_name(c->arch), rope_dims(c), c->head_dim);
    char k[128];
#define KEY(s) (snprintf(k, sizeof k, "%s.%s", a, s), k)
    gguf_set_str(w, "general.architecture", a);
    gguf_set_u32(w, KEY("block_count"), (uint32_t)c->n_layers);
    gguf_set_u32(w, KEY("context_length"), (uint32_t)c->max_pos);
    gguf_set_u32(w, KEY("embedding_length"), (uint32_t)c->hidden_size);
    gguf_set_u32(w, KEY("feed_forward_length"), (uint32_t)c->intermediate_size);
    gguf_set_u32(w, KEY("attention.head_count"), (uint32_t)c->n_heads);
    gguf_set_u32(w, KEY("attention.head_count_kv"), (uint32_t)c->n_kv_heads);
    gguf_set_u32(w, KEY("attention.key_length"), (uint32_t)c->head_dim);
    gguf_set_u32(w, KEY("attention.value_length"), (uint32_t)c->head_dim);
    gguf_set_u32(w, KEY("vocab_size"), (uint32_t)c->vocab_size);
    if (c->arch == ARCH_BERT) {
        gguf_set_f32(w, KEY("attention.layer_norm_epsilon"), c->norm_eps);
        gguf_set_u32(w, "tokenizer.ggml.token_type_count", (uint32_t)c->type_vocab_size);
    } else {
        gguf_set_f32(w, KEY("rope.freq_base"), c->rope.theta);
        gguf_set_u32(w, KEY("rope.dimension_count"), (uint32_t)rope_dims(c));
        /* OLMo's LayerNorm: the key llama.cpp reads for it */
        gguf_set_f32(w, KEY(c->norm_type == NORM_LAYER_NOPARAM ? "attention.layer_norm_epsilon"
                                                               : "attention.layer_norm_rms_epsilon"),
                     c->norm_eps);
    }
    /* the quirks llama.cpp keeps as keys (llama-arch.cpp's names) */
    if (c->attn_softcap > 0) gguf_set_f32(w, KEY("attn_logit_softcapping"), c->attn_softcap);
    if (c->final_softcap > 0) gguf_set_f32(w, KEY("final_logit_softcapping"), c->final_softcap);
    if (c->clip_qkv > 0) gguf_set_f32(w, KEY("attention.clamp_kqv"), c->clip_qkv);
    /* llama.cpp scores with 1/sqrt(key_length) for Gemma; another
     * query_pre_attn_scalar is kept as the scale itself */
    if (c->attn_scale > 0 && fabsf(c->attn_scale - 1.0f / sqrtf((float)c->head_dim)) > 1e-7f * c->attn_scale)
        gguf_set_f32(w, KEY("attention.scale"), c->attn_scale);
    if (c->sliding_window && c->swa_pattern > 0)
        gguf_set_u32(w, KEY("attention.sliding_window_pattern"), (uint32_t)c->swa_pattern);
    if (c->rope.local_theta > 0) gguf_set_f32(w, KEY("rope.freq_base_swa"), c->rope.local_theta);
    if (c->rope.type == ROPE_LONGROPE) {
        /* the factors are tensors (rope_factors_long/short.weight: the converter's) */
        gguf_set_f32(w, KEY("rope.scaling.attn_factor"), c->rope.attn_factor);
        gguf_set_u32(w, KEY("rope.scaling.original_context_length"), (uint32_t)c->rope.original_max_pos);
    }
    if (c->rope.type == ROPE_LINEAR) {
        gguf_set_str(w, KEY("rope.scaling.type"), "linear");
        gguf_set_f32(w, KEY("rope.scaling.factor"), c->rope.factor);
    }
    if (c->sliding_window) gguf_set_u32(w, KEY("attention.sliding_window"), (uint32_t)c->sliding_window);
#undef KEY
    return 0;
}

/* ---- tensor names: the architecture table's two columns ---- */

int hf_name_from_gguf(const char *name, char *out, size_t size) {
    int l, k = arch_kind_of_gguf(name, &l);
    return k < 0 ? -1 : arch_hf_name((ParamKind)k, l, out, size);
}

int gguf_name_from_hf(const char *name, char *out, size_t size) {
    int l, k = arch_kind_of_hf(name, &l);
    return k < 0 ? -1 : arch_gguf_name((ParamKind)k, l, out, size);
}

int hf_name_from_gguf_arch(int arch, const char *name, char *out, size_t size) {
    int l, k = arch_kind_of_gguf_in(arch, name, &l);
    return k < 0 ? -1 : arch_hf_name_of(arch, (ParamKind)k, l, out, size);
}

int gguf_name_from_hf_arch(int arch, const char *name, char *out, size_t size) {
    int l, k = arch_kind_of_hf_in(arch, name, &l);
    return k < 0 ? -1 : arch_gguf_name_of(arch, (ParamKind)k, l, out, size);
}

/* ---- comparison ---- */

static int feq(float a, float b) { return fabsf(a - b) <= 1e-6f * fmaxf(fabsf(a), fabsf(b)); }

int model_config_diff(const ModelConfig *a, const ModelConfig *b, char *buf, size_t size) {
#define DIFF_INT(f)                                                                          \
    if (a->f != b->f) {                                                                      \
        snprintf(buf, size, "%s: %d != %d", #f, (int)a->f, (int)b->f);                       \
        return 1;                                                                            \
    }
#define DIFF_F(f)                                                                            \
    if (!feq(a->f, b->f)) {                                                                  \
        snprintf(buf, size, "%s: %g != %g", #f, (double)a->f, (double)b->f);                 \
        return 1;                                                                            \
    }
    /* llama.cpp converts Mistral checkpoints to the llama architecture, and
     * the multimodal Gemma 3's text decoder to gemma3 */
    int arch_a = arch_canonical(a->arch), arch_b = arch_canonical(b->arch);
    if (arch_a != arch_b) {
        snprintf(buf, size, "arch: %s != %s", model_arch_name(a->arch), model_arch_name(b->arch));
        return 1;
    }
    DIFF_INT(hidden_size) DIFF_INT(intermediate_size) DIFF_INT(n_layers) DIFF_INT(n_heads) DIFF_INT(n_kv_heads)
    DIFF_INT(head_dim) DIFF_INT(vocab_size) DIFF_INT(max_pos) DIFF_F(norm_eps) DIFF_INT(tie_word_embeddings)
    DIFF_INT(attention_bias) DIFF_INT(o_bias) DIFF_INT(qk_norm) DIFF_INT(sliding_window) DIFF_INT(type_vocab_size)
    DIFF_INT(rope.type) DIFF_F(rope.theta)
    DIFF_INT(norm_type) DIFF_F(norm_offset) DIFF_INT(pre_norm) DIFF_INT(post_norm) DIFF_INT(act) DIFF_F(embed_scale)
    DIFF_F(attn_scale) DIFF_F(attn_softcap) DIFF_F(final_softcap) DIFF_F(clip_qkv) DIFF_INT(qk_norm_full)
    DIFF_F(rope.local_theta) DIFF_F(rope.attn_factor) DIFF_INT(rope.n_factors) DIFF_INT(rope.rot_dim)
    if (a->sliding_window || b->sliding_window) {
        DIFF_INT(swa_pattern)
    }
    for (int i = 0; i < a->rope.n_factors && i < ROPE_MAX_FACTORS; i++) {
        DIFF_F(rope.long_factor[i]) DIFF_F(rope.short_factor[i])
    }
    /* factors are only comparable when both sides store them as numbers */
    if (!a->rope.freqs_from_tensor && !b->rope.freqs_from_tensor) {
        DIFF_F(rope.factor) DIFF_F(rope.low_freq_factor) DIFF_F(rope.high_freq_factor) DIFF_INT(rope.original_max_pos)
    }
#undef DIFF_INT
#undef DIFF_F
    if (size) buf[0] = 0;
    return 0;
}
