#include "model/convert_mix.h"

#include <stdio.h>
#include <string.h>
#include <strings.h>

#include "formats/arch.h"
#include "formats/dtype.h"
#include "formats/safetensors.h"
#include "model/convert.h"

/* llama_ftype numbers (llama.h): written as general.file_type. */
enum {
    FT_F32 = 0, FT_F16 = 1, FT_Q4_0 = 2, FT_Q4_1 = 3, FT_Q8_0 = 7, FT_Q5_0 = 8, FT_Q5_1 = 9,
    FT_Q2_K = 10, FT_Q3_K_S = 11, FT_Q3_K_M = 12, FT_Q3_K_L = 13, FT_Q4_K_S = 14, FT_Q4_K_M = 15,
    FT_Q5_K_S = 16, FT_Q5_K_M = 17, FT_Q6_K = 18, FT_IQ4_NL = 25, FT_IQ4_XS = 30, FT_BF16 = 32,
};

typedef struct Preset {
    const char *name;
    int ftype, base;
} Preset;

/* llama-quantize's names; the aliases after the presets they name, so a
 * preset's own name is found first when naming it. */
static const Preset PRESETS[] = {
    {"Q2_K", FT_Q2_K, DT_Q2_K},     {"Q3_K_S", FT_Q3_K_S, DT_Q3_K}, {"Q3_K_M", FT_Q3_K_M, DT_Q3_K},
    {"Q3_K_L", FT_Q3_K_L, DT_Q3_K}, {"Q4_K_S", FT_Q4_K_S, DT_Q4_K}, {"Q4_K_M", FT_Q4_K_M, DT_Q4_K},
    {"Q5_K_S", FT_Q5_K_S, DT_Q5_K}, {"Q5_K_M", FT_Q5_K_M, DT_Q5_K}, {"Q6_K", FT_Q6_K, DT_Q6_K},
    {"Q4_0", FT_Q4_0, DT_Q4_0},     {"Q4_1", FT_Q4_1, DT_Q4_1},     {"Q5_0", FT_Q5_0, DT_Q5_0},
    {"Q5_1", FT_Q5_1, DT_Q5_1},     {"Q8_0", FT_Q8_0, DT_Q8_0},     {"IQ4_NL", FT_IQ4_NL, DT_IQ4_NL},
    {"IQ4_XS", FT_IQ4_XS, DT_IQ4_XS}, {"F16", FT_F16, DT_F16},      {"BF16", FT_BF16, DT_BF16},
    {"F32", FT_F32, DT_F32},        {"Q3_K", FT_Q3_K_M, DT_Q3_K},   {"Q4_K", FT_Q4_K_M, DT_Q4_K},
    {"Q5_K", FT_Q5_K_M, DT_Q5_K},
};
#define N_PRESETS (sizeof PRESETS / sizeof *PRESETS)

static const Preset *preset_of(int type) {
    if (type < CONVERT_MIX_BASE) return NULL;
    for (size_t i = 0; i < N_PRESETS; i++)
        if (PRESETS[i].ftype == type - CONVERT_MIX_BASE) return &PRESETS[i];
    return NULL;
}

int convert_mix_is_preset(int type) { return preset_of(type) != NULL; }

int convert_mix_parse(const char *name, int *type, Err *e) {
    for (size_t i = 0; i < N_PRESETS; i++)
        if (!strcasecmp(name, PRESETS[i].name)) {
            *type = CONVERT_MIX_BASE + PRESETS[i].ftype;
            return 0;
        }
    return err_set(e, ERR_ARG, "llama.cpp preset \"%s\": expected one of " CONVERT_MIX_NAMES, name);
}

const char *convert_mix_name(int type) {
    const Preset *p = preset_of(type);
    return p ? p->name : dtype_name(type);
}

int convert_mix_file_type(int type) {
    const Preset *p = preset_of(type);
    return p ? p->ftype : -1;
}

int convert_mix_default_type(int type) {
    const Preset *p = preset_of(type);
    return p ? p->base : -1;
}

int convert_mix_init(ConvertMix *m, int type, const ModelConfig *c, const SafeTensors *st, Err *e) {
    const Preset *p = preset_of(type);
    if (!p) return err_set(e, ERR_ARG, "convert type %d is not a llama.cpp preset", type);
    memset(m, 0, sizeof *m);
    m->ftype = p->ftype;
    m->base = p->base;
    m->n_layer = c->n_layers;
    m->n_gqa = c->n_kv_heads > 0 ? c->n_heads / c->n_kv_heads : 0;
    m->n_expert = 0; /* no architecture aloe converts has experts */
    for (int i = 0; st && i < st_count(st); i++) {
        int layer;
        if (arch_kind_of_hf(st_tensor(st, i)->name, &layer) == PARAM_LM_HEAD) m->has_output = 1;
    }
    /* llama.cpp's model size class (llama-model.cpp, load_hparams): only
     * "70B" changes a choice; it is 80 layers of these architectures (a
     * llama without GQA is "65B") */
    const ArchDesc *ad = arch_desc(c->arch);
    const char *g = ad ? ad->gguf : "";
    m->is_70b = c->n_layers == 80 && (!strcmp(g, "qwen2") || !strcmp(g, "olmo") ||
                                      (!strcmp(g, "llama") && c->n_heads != c->n_kv_heads));
    return 0;
}

static int ends_with(const char *s, const char *suffix) {
    size_t n = strlen(s), m = strlen(suffix);
    return n >= m && !strcmp(s + n - m, suffix);
}

/* llama.cpp's "more bits" layers: the first and last eighth, and every
 * third layer between (the layers that matter most for perplexity). */
static int use_more_bits(int i, int n) { return i < n / 8 || i >= 7 * n / 8 || (i - n / 8) % 3 == 2; }

/* The layer number in "blk.N.…" (0 for a name without one). */
static int layer_of(const char *name) {
    int l = 0;
    return sscanf(name, "blk.%d.", &l) == 1 ? l : 0;
}

/* The type before the row fallback: llama_tensor_get_type's rules for
 * the presets above (no importance matrix, not Falcon). */
static int choose(const ConvertMix *m, const char *name, int64_t cols) {
    int ft = m->ftype, t = m->base, moe8 = m->n_expert == 8;
    int i = layer_of(name), n = m->n_layer;
    if (!strcmp(name, "output.weight") || (!m->has_output && !strcmp(name, "token_embd.weight"))) {
        /* the head decides every token: Q6_K unless the preset is Q8_0, or
         * Q8_0 when its rows are not whole blocks of the preset's type */
        if (cols % dtype_block_size(t)) return DT_Q8_0;
        return t == DT_Q8_0 ? DT_Q8_0 : DT_Q6_K;
    }
    if (!strcmp(name, "token_embd.weight")) return t; /* only the IQ1-IQ3 and ternary presets change it */
    if (strstr(name, "attn_v.weight")) {
        /* V is the smallest attention matrix with GQA (n_gqa times smaller
         * than Q), so more bits cost little */
        if (ft == FT_Q2_K) t = m->n_gqa >= 4 ? DT_Q4_K : DT_Q3_K;
        else if (ft == FT_Q3_K_M) t = i < 2 ? DT_Q5_K : DT_Q4_K;
        else if (ft == FT_Q3_K_L) t = DT_Q5_K;
        else if ((ft == FT_IQ4_NL || ft == FT_IQ4_XS) && m->n_gqa >= 4) t = DT_Q5_K;
        else if ((ft == FT_Q4_K_M || ft == FT_Q5_K_M) && use_more_bits(i, n)) t = DT_Q6_K;
        else if (ft == FT_Q4_K_S && i < 4) t = DT_Q5_K;
        if (m->is_70b && (t == DT_Q3_K || t == DT_Q4_K)) t = DT_Q5_K;
        if (moe8) t = DT_Q8_0;
        return t;
    }
    if (strstr(name, "attn_k.weight")) return moe8 ? DT_Q8_0 : t;
    if (strstr(name, "attn_q.weight")) return t; /* only the IQ3 presets change it */
    if (strstr(name, "ffn_down")) {
        if (ft == FT_Q2_K) t = DT_Q3_K;
        else if (ft == FT_Q3_K_M) t = i < n / 16 ? DT_Q5_K : DT_Q4_K; /* Falcon's exception aside */
        else if (ft == FT_Q3_K_L) t = DT_Q5_K;
        else if (ft == FT_Q4_K_M) t = use_more_bits(i, n) ? DT_Q6_K : t;
        else if ((ft == FT_IQ4_NL || ft == FT_IQ4_XS) && i < n / 8) t = DT_Q5_K;
        else if (ft == FT_Q5_K_M && use_more_bits(i, n)) t = DT_Q6_K;
        else if (ft == FT_Q4_K_S && i < n / 8) t = DT_Q5_K;
        return t;
    }
    if (strstr(name, "attn_output.weight")) {
        if (moe8) {
            if (ft == FT_Q2_K || ft == FT_Q3_K_S || ft == FT_Q3_K_M || ft == FT_IQ4_NL || ft == FT_Q4_K_S ||
                ft == FT_Q4_K_M || ft == FT_IQ4_XS)
                t = DT_Q5_K;
        } else if (ft == FT_Q2_K) t = DT_Q3_K;
        else if (ft == FT_Q3_K_M) t = DT_Q4_K;
        else if (ft == FT_Q3_K_L) t = DT_Q5_K;
        return t;
    }
    if (strstr(name, "attn_qkv.weight")) {
        if (ft == FT_Q3_K_M || ft == FT_Q3_K_L) t = DT_Q4_K;
        else if (ft == FT_Q4_K_M) t = DT_Q5_K;
        else if (ft == FT_Q5_K_M) t = DT_Q6_K;
        return t;
    }
    return t; /* ffn_gate and ffn_up change only in IQ3_XS */
}

int convert_mix_tensor_type(const ConvertMix *m, const char *name, int ndim, int64_t cols) {
    /* what llama.cpp quantises: matrices named *weight, but not norms or
     * an MoE router */
    if (ndim < 2 || !ends_with(name, "weight") || strstr(name, "_norm.weight") || strstr(name, "ffn_gate_inp.weight"))
        return DT_F32;
    if (!dtype_is_quantized(m->base)) return m->base; /* F16, BF16, F32: no per-tensor choice */
    return dtype_row_fallback(choose(m, name, cols), cols);
}
