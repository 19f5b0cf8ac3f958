/* convert_mix: llama.cpp's quantisation presets (llama-quantize's Q4_K_M,
 * Q5_K_M, Q2_K ...) as aloe convert writes them: one type per tensor,
 * chosen by the tensor's role, its layer and the model's shape as
 * llama.cpp's quantiser chooses it (src/llama-quant.cpp,
 * llama_tensor_get_type, at the commit tests/data/gguf-mix/README.md
 * names), without an importance matrix:
 *
 *  - the output matrix (or, when the embedding is tied, token_embd) gets
 *    Q6_K, or Q8_0 when its rows are not whole blocks of the preset's type
 *    (Q8_0 keeps Q8_0);
 *  - attn_v, ffn_down, attn_output and a fused attn_qkv get more bits in
 *    the mixes: per preset, in the first/last eighth of the layers and
 *    every third layer between (use_more_bits), in the first 2 or 4
 *    layers, or when n_head / n_head_kv >= 4 (GQA);
 *  - an 80-layer llama/qwen2/olmo ("70B") bumps attn_v from Q3_K/Q4_K to
 *    Q5_K; with 8 experts attn_v and attn_k are Q8_0 and attn_output Q5_K;
 *  - a row that is not whole blocks of the chosen type falls back as
 *    dtype_row_fallback says (Q4_K -> Q5_0, Q5_K -> Q5_1, Q6_K -> Q8_0,
 *    Q2_K/Q3_K/IQ4_XS -> IQ4_NL, then F16);
 *  - vectors, norms and biases stay F32.
 *
 * A preset is passed to convert_hf_to_gguf as its `type`, encoded
 * CONVERT_MIX_BASE + its llama_ftype number, so the pure DType values keep
 * their meaning. */
#ifndef ALOE_MODEL_CONVERT_MIX_H
#define ALOE_MODEL_CONVERT_MIX_H

#include <stdint.h>

#include "base/err.h"
#include "formats/hfdir.h"

struct SafeTensors;

#define CONVERT_MIX_BASE 1000

/* The preset names as llama-quantize spells them (Q3_K, Q4_K and Q5_K are
 * its aliases of the _M mixes), for messages. */
#define CONVERT_MIX_NAMES                                                                                            \
    "Q2_K, Q3_K_S, Q3_K_M, Q3_K_L, Q4_K_S, Q4_K_M, Q5_K_S, Q5_K_M, Q6_K, Q4_0, Q4_1, Q5_0, Q5_1, Q8_0, IQ4_NL, " \
    "IQ4_XS, F16, BF16, F32 (Q3_K, Q4_K, Q5_K: the _M mixes)"

/* 1 if type is a preset (CONVERT_MIX_BASE + ftype). */
int convert_mix_is_preset(int type);
/* The preset named name, compared case-insensitively ("q4_k_m"), as a
 * convert type; -1 with an error listing the names. */
int convert_mix_parse(const char *name, int *type, Err *e);
/* "Q4_K_M" for a preset, dtype_name otherwise. */
const char *convert_mix_name(int type);
/* general.file_type for a preset (its llama_ftype), -1 for another type. */
int convert_mix_file_type(int type);
/* The preset's base DType (Q4_K for Q4_K_M), -1 for another type. */
int convert_mix_default_type(int type);

/* What the choice needs to know of the model. */
typedef struct ConvertMix {
    int ftype;        /* llama_ftype */
    int base;         /* the preset's DType */
    int n_layer;
    int n_gqa;        /* n_head / n_head_kv (integer division, as llama.cpp) */
    int n_expert;     /* 0 or 1: dense */
    int has_output;   /* the file has output.weight (an untied head) */
    int is_70b;       /* llama.cpp calls the model 70B (80 layers of llama with GQA, qwen2, olmo) */
} ConvertMix;

/* m for preset type and model c whose tensors are st (has_output: st holds
 * the untied head). 0, or -1 if type is not a preset. */
int convert_mix_init(ConvertMix *m, int type, const ModelConfig *c, const struct SafeTensors *st, Err *e);
/* The type of the GGUF tensor `name` with ndim dimensions and rows of cols
 * values (ne[0]). */
int convert_mix_tensor_type(const ConvertMix *m, const char *name, int ndim, int64_t cols);

#endif
