/* test_arch_config: the per-architecture tables and the quirk fields
 * config.json sets for OLMo, OLMo 2, Gemma 2, Gemma 3 and Phi-3
 * (formats/arch.c, formats/hfdir.c): both config dialects, the defaults
 * transformers leaves out of saved configs, fused tensors' rows, names
 * per architecture, and the errors for what the engine does not run. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/fileio.h"
#include "formats/arch.h"
#include "formats/gguf.h"
#include "formats/gguf_write.h"
#include "formats/hfdir.h"
#include "test.h"

#define BASE "\"hidden_size\":32,\"intermediate_size\":64,\"num_hidden_layers\":4,\"num_attention_heads\":4," \
             "\"num_key_value_heads\":2,\"vocab_size\":100"

static int parse(const char *json, ModelConfig *c, Err *e) { return hf_config_parse(json, "t/config.json", c, e); }

static void test_every_kind_has_a_generic_row(void) {
    for (int k = 0; k < PARAM_COUNT; k++) CHECK_MSG(arch_tensor((ParamKind)k) != NULL, "kind %d", k);
    /* Llama's list lacks the post-norms; OLMo's every norm */
    CHECK(!arch_tensor_of(ARCH_LLAMA, PARAM_POST_ATTN_NORM) && !arch_tensor_of(ARCH_OLMO, PARAM_ATTN_NORM));
    CHECK(!arch_tensor_of(ARCH_OLMO, PARAM_OUT_NORM) && arch_tensor_of(ARCH_OLMO2, PARAM_POST_FFN_NORM));
}

static void test_gemma2(void) {
    ModelConfig c;
    Err e;
    /* tie_word_embeddings left out, as transformers saves Gemma's default */
    CHECK_OK(parse("{\"architectures\":[\"Gemma2ForCausalLM\"]," BASE ",\"head_dim\":16,\"query_pre_attn_scalar\":64,"
                   "\"attn_logit_softcapping\":50.0,\"final_logit_softcapping\":30.0,\"sliding_window\":4096,"
                   "\"hidden_activation\":\"gelu_pytorch_tanh\"}",
                   &c, &e),
             &e);
    CHECK_EQ_INT(c.arch, ARCH_GEMMA2);
    CHECK_EQ_INT(c.tie_word_embeddings, 1);
    CHECK(c.attn_scale == 0.125f && c.attn_softcap == 50.0f && c.final_softcap == 30.0f);
    CHECK(c.embed_scale == sqrtf(32.0f) && c.norm_offset == 1.0f && !c.norms_folded);
    CHECK(c.act == ACT_GELU_TANH && c.pre_norm && c.post_norm && c.norm_type == NORM_RMS);
    CHECK_EQ_INT(c.swa_pattern, 2);
    CHECK(arch_layer_sliding(&c, 0) && !arch_layer_sliding(&c, 1) && arch_layer_sliding(&c, 2));
    CHECK(arch_has(&c, PARAM_POST_ATTN_NORM) && !arch_has(&c, PARAM_LM_HEAD) && !arch_has(&c, PARAM_Q_NORM));
    char n[96];
    CHECK(!arch_hf_name_of(ARCH_GEMMA2, PARAM_FFN_NORM, 3, n, sizeof n) &&
          !strcmp(n, "model.layers.3.pre_feedforward_layernorm.weight"));
    CHECK(!gguf_name_from_hf_arch(ARCH_GEMMA2, "model.layers.3.post_attention_layernorm.weight", n, sizeof n) &&
          !strcmp(n, "blk.3.post_attention_norm.weight"));
    /* the same HF name is Llama's MLP pre-norm */
    CHECK(!gguf_name_from_hf("model.layers.3.post_attention_layernorm.weight", n, sizeof n) &&
          !strcmp(n, "blk.3.ffn_norm.weight"));
    CHECK(parse("{\"architectures\":[\"Gemma2ForCausalLM\"]," BASE ",\"hidden_act\":\"silu\"}", &c, &e) == -1);
    CHECK_MSG(strstr(e.msg, "t/config.json: field \"hidden_act\" = silu: Gemma2ForCausalLM runs with gelu_pytorch_tanh"),
              "%s", e.msg);
}

static void test_gemma3_dialects(void) {
    ModelConfig a, b;
    Err e;
    /* transformers 4: top-level rope_theta, rope_scaling, rope_local_base_freq, sliding_window_pattern */
    CHECK_OK(parse("{\"architectures\":[\"Gemma3ForCausalLM\"]," BASE ",\"head_dim\":16,\"sliding_window\":16,"
                   "\"rope_theta\":1000000.0,\"rope_local_base_freq\":10000.0,\"sliding_window_pattern\":3,"
                   "\"rope_scaling\":{\"rope_type\":\"linear\",\"factor\":8.0},\"query_pre_attn_scalar\":32}",
                   &a, &e),
             &e);
    /* transformers 5: per-layer-type rope_parameters and layer_types */
    CHECK_OK(parse("{\"model_type\":\"gemma3_text\",\"architectures\":[\"Gemma3ForCausalLM\"]," BASE
                   ",\"head_dim\":16,\"sliding_window\":16,\"query_pre_attn_scalar\":32,"
                   "\"layer_types\":[\"sliding_attention\",\"sliding_attention\",\"full_attention\",\"sliding_attention\"],"
                   "\"rope_parameters\":{\"full_attention\":{\"rope_type\":\"linear\",\"factor\":8.0,\"rope_theta\":1000000.0},"
                   "\"sliding_attention\":{\"rope_type\":\"default\",\"rope_theta\":10000.0}}}",
                   &b, &e),
             &e);
    char diff[256];
    CHECK_MSG(!model_config_diff(&a, &b, diff, sizeof diff), "%s", diff);
    CHECK(a.rope.type == ROPE_LINEAR && a.rope.factor == 8.0f && a.rope.theta == 1e6f && a.rope.local_theta == 1e4f);
    CHECK(a.qk_norm && !a.qk_norm_full && a.swa_pattern == 3 && a.attn_softcap == 0);
    CHECK(arch_layer_sliding(&a, 0) && arch_layer_sliding(&a, 1) && !arch_layer_sliding(&a, 2) && arch_layer_sliding(&a, 3));
    /* a pattern that is not periodic is refused, not run differently */
    CHECK(parse("{\"architectures\":[\"Gemma3ForCausalLM\"]," BASE ",\"sliding_window\":16,\"layer_types\":"
                "[\"sliding_attention\",\"full_attention\",\"full_attention\",\"sliding_attention\"]}",
                &a, &e) == -1);
    CHECK_MSG(strstr(e.msg, "layer_types[2] = full_attention breaks the period 2"), "%s", e.msg);
    /* local theta default when the config has none (Gemma3TextConfig's) */
    CHECK_OK(parse("{\"architectures\":[\"Gemma3ForCausalLM\"]," BASE ",\"sliding_window\":16}", &a, &e), &e);
    CHECK(a.rope.local_theta == 10000.0f && a.swa_pattern == 6);
}

static void test_phi3_longrope(void) {
    ModelConfig c;
    Err e;
    CHECK_OK(parse("{\"architectures\":[\"Phi3ForCausalLM\"]," BASE ",\"max_position_embeddings\":256,"
                   "\"original_max_position_embeddings\":64,\"sliding_window\":32,\"hidden_act\":\"silu\","
                   "\"rope_scaling\":{\"type\":\"longrope\",\"short_factor\":[1,1.25,2.5,4],\"long_factor\":[1.5,4,12,40]}}",
                   &c, &e),
             &e);
    CHECK(c.rope.type == ROPE_LONGROPE && c.rope.n_factors == 4 && c.rope.original_max_pos == 64);
    CHECK(c.rope.long_factor[3] == 40.0f && c.rope.short_factor[1] == 1.25f);
    /* sqrt(1 + ln(256/64) / ln 64) */
    CHECK(fabsf(c.rope.attn_factor - (float)sqrt(1 + log(4.0) / log(64.0))) < 1e-7f);
    CHECK(arch_layer_sliding(&c, 0) && arch_layer_sliding(&c, 3));
    /* fused: q rows 0..31, k 32..47, v 48..63 of qkv_proj; gate 0..63, up 64..127 of gate_up_proj */
    long long off, rows;
    CHECK(arch_fused_rows(&c, PARAM_WV, &off, &rows) == PARAM_WQ && off == 48 && rows == 64);
    CHECK(arch_fused_rows(&c, PARAM_W_UP, &off, &rows) == PARAM_W_GATE && off == 64 && rows == 128);
    CHECK(arch_fused_rows(&c, PARAM_WO, &off, &rows) == PARAM_WO && off == 0 && rows == 32);
    char n[96];
    CHECK(!hf_name_from_gguf_arch(ARCH_PHI3, "blk.1.ffn_up.weight", n, sizeof n) &&
          !strcmp(n, "model.layers.1.mlp.gate_up_proj.weight"));
    CHECK(!gguf_name_from_hf_arch(ARCH_PHI3, "model.layers.0.self_attn.qkv_proj.weight", n, sizeof n) &&
          !strcmp(n, "blk.0.attn_qkv.weight"));
    CHECK(parse("{\"architectures\":[\"Phi3ForCausalLM\"]," BASE
                ",\"rope_scaling\":{\"type\":\"longrope\",\"short_factor\":[1,2],\"long_factor\":[1,2,3,4]}}",
                &c, &e) == -1);
    CHECK_MSG(strstr(e.msg, "t/config.json: field \"rope_scaling.short_factor\" must be a list of 4 numbers"), "%s",
              e.msg);
    /* partial rotary (Phi-4-mini): int(8 · 0.75) = 6 dims turned; an odd count or none is refused */
    CHECK_OK(parse("{\"architectures\":[\"Phi3ForCausalLM\"]," BASE ",\"partial_rotary_factor\":0.75}", &c, &e), &e);
    CHECK(c.rope.rot_dim == 6 && rope_dims(&c) == 6);
    CHECK(parse("{\"architectures\":[\"Phi3ForCausalLM\"]," BASE ",\"partial_rotary_factor\":0.625}", &c, &e) == -1);
    CHECK_MSG(strstr(e.msg, "t/config.json: partial_rotary_factor = 0.625 must be"), "%s", e.msg);
    CHECK(parse("{\"architectures\":[\"Phi3ForCausalLM\"]," BASE ",\"partial_rotary_factor\":0.1}", &c, &e) == -1);
}

static void test_olmo(void) {
    ModelConfig c;
    Err e;
    CHECK_OK(parse("{\"architectures\":[\"OlmoForCausalLM\"]," BASE ",\"clip_qkv\":8.0}", &c, &e), &e);
    CHECK(c.norm_type == NORM_LAYER_NOPARAM && c.norm_eps == 1e-5f && c.clip_qkv == 8.0f && c.pre_norm);
    CHECK(!arch_has(&c, PARAM_ATTN_NORM) && !arch_has(&c, PARAM_OUT_NORM) && arch_has(&c, PARAM_LM_HEAD));
    CHECK_OK(parse("{\"architectures\":[\"OlmoForCausalLM\"]," BASE ",\"clip_qkv\":null}", &c, &e), &e);
    CHECK(c.clip_qkv == 0);
    CHECK_OK(parse("{\"architectures\":[\"Olmo2ForCausalLM\"]," BASE "}", &c, &e), &e);
    CHECK(c.qk_norm && c.qk_norm_full && !c.pre_norm && c.post_norm && c.norm_type == NORM_RMS);
    long long r, cl;
    arch_shape(&c, PARAM_K_NORM, &r, &cl);
    CHECK(r == 16 && cl == 0); /* the whole k projection, not a head */
    CHECK(!arch_has(&c, PARAM_ATTN_NORM) && !arch_has(&c, PARAM_FFN_NORM) && arch_has(&c, PARAM_POST_FFN_NORM));
}

/* A Gemma GGUF from llama.cpp's converter has no attention.scale key:
 * llama.cpp's loader scores the 27B models (Gemma 2: 46 layers; Gemma 3:
 * 62) with 1/sqrt(hidden/heads) -- their query_pre_attn_scalar -- and the
 * others with 1/sqrt(head_dim); a Gemma 2 file without a window has
 * 4096. Metadata only: the config reader needs no tensors. */
static int gemma_gguf_config(const char *arch, int layers, const char *scale_key, ModelConfig *c, Err *e) {
    char *dir = test_tmpdir(), *path = path_join(dir, "g.gguf"), k[96];
    GgufWriter *w = gguf_writer_new();
    gguf_set_str(w, "general.architecture", arch);
#define K(s) (snprintf(k, sizeof k, "%s.%s", arch, s), k)
    gguf_set_u32(w, K("block_count"), (uint32_t)layers);
    gguf_set_u32(w, K("context_length"), 8192);
    gguf_set_u32(w, K("embedding_length"), 256);
    gguf_set_u32(w, K("feed_forward_length"), 512);
    gguf_set_u32(w, K("attention.head_count"), 4);
    gguf_set_u32(w, K("attention.head_count_kv"), 2);
    gguf_set_u32(w, K("attention.key_length"), 128);
    gguf_set_u32(w, K("attention.value_length"), 128);
    gguf_set_u32(w, K("vocab_size"), 16);
    gguf_set_f32(w, K("attention.layer_norm_rms_epsilon"), 1e-6f);
    if (scale_key) gguf_set_f32(w, K(scale_key), 0.25f);
#undef K
    int rc = gguf_writer_write(w, path, e);
    gguf_writer_free(w);
    Gguf *g = rc ? NULL : gguf_open(path, e);
    rc = g ? gguf_model_config(g, c, e) : -1;
    if (g) gguf_close(g);
    free(path), free(dir);
    return rc;
}

static void test_gemma_gguf_scale_rule(void) {
    ModelConfig c;
    Err e;
    CHECK_OK(gemma_gguf_config("gemma2", 46, NULL, &c, &e), &e);
    CHECK_NEAR(c.attn_scale, 1.0 / sqrt(256.0 / 4), 1e-7); /* 27B: hidden/heads = 64, not head_dim 128 */
    CHECK_EQ_INT(c.sliding_window, 4096);
    CHECK_OK(gemma_gguf_config("gemma2", 26, NULL, &c, &e), &e);
    CHECK(!(c.attn_scale > 0) || fabs(c.attn_scale - 1.0 / sqrt(128.0)) < 1e-7); /* head_dim's */
    CHECK_OK(gemma_gguf_config("gemma3", 62, NULL, &c, &e), &e);
    CHECK_NEAR(c.attn_scale, 1.0 / sqrt(256.0 / 4), 1e-7);
    CHECK_OK(gemma_gguf_config("gemma2", 46, "attention.scale", &c, &e), &e); /* the key wins */
    CHECK_NEAR(c.attn_scale, 0.25, 1e-7);
}

int main(void) {
    RUN(test_every_kind_has_a_generic_row);
    RUN(test_gemma2);
    RUN(test_gemma3_dialects);
    RUN(test_phi3_longrope);
    RUN(test_olmo);
    RUN(test_gemma_gguf_scale_rule);
    return test_summary();
}
