#include <stdlib.h>

#include "base/fileio.h"
#include "base/mem.h"
#include "formats/gguf.h"
#include "formats/hfdir.h"
#include "test.h"

static const char *MODELS[] = {"tiny-llama3", "tiny-qwen2", "tiny-mistral", "tiny-qwen3"};

static int load_json_file(const char *dir, const char *file, ModelConfig *c, Err *e) {
    char *p = path_join(dir, file), *text;
    size_t len;
    int rc = file_read_all(p, &text, &len, e);
    if (!rc) {
        rc = hf_config_parse(text, p, c, e);
        free(text);
    }
    free(p);
    return rc;
}

static void test_config_and_legacy_config_agree(void) {
    char *root = test_shared_path("fixtures/models");
    if (!root) SKIP("shared fixtures not found (set ALOE_SHARED)");
    for (int i = 0; i < 4; i++) {
        char *dir = path_join(root, MODELS[i]);
        ModelConfig a, b;
        Err e;
        CHECK_OK(hf_config_load(dir, &a, &e), &e);
        CHECK_OK(load_json_file(dir, "config.legacy.json", &b, &e), &e);
        char diff[256];
        CHECK_MSG(!model_config_diff(&a, &b, diff, sizeof diff), "%s: %s", MODELS[i], diff);
        CHECK_MSG(!memcmp(&a, &b, sizeof a), "%s: structs differ outside the compared fields", MODELS[i]);
        free(dir);
    }
    free(root);
}

static ModelConfig load_fixture(const char *name, Err *e, int *rc) {
    ModelConfig c;
    memset(&c, 0, sizeof c);
    char *rel = xasprintf("fixtures/models/%s", name);
    char *dir = test_shared_path(rel);
    free(rel);
    *rc = dir ? hf_config_load(dir, &c, e) : 1;
    free(dir);
    return c;
}

static void test_fixture_values(void) {
    Err e;
    int rc;
    ModelConfig c = load_fixture("tiny-llama3", &e, &rc);
    if (rc == 1) SKIP("shared fixtures not found (set ALOE_SHARED)");
    CHECK_OK(rc, &e);
    CHECK_EQ_INT(c.arch, ARCH_LLAMA);
    CHECK_EQ_INT(c.hidden_size, 64);
    CHECK_EQ_INT(c.intermediate_size, 192);
    CHECK_EQ_INT(c.n_layers, 2);
    CHECK_EQ_INT(c.n_heads, 4);
    CHECK_EQ_INT(c.n_kv_heads, 2);
    CHECK_EQ_INT(c.head_dim, 16);
    CHECK_EQ_INT(c.vocab_size, 1029);
    CHECK_EQ_INT(c.max_pos, 256);
    CHECK(c.norm_eps == 1e-5f);
    CHECK_EQ_INT(c.tie_word_embeddings, 0);
    CHECK_EQ_INT(c.attention_bias, 0);
    CHECK_EQ_INT(c.rope.type, ROPE_LLAMA3);
    CHECK(c.rope.theta == 500000.0f);
    CHECK(c.rope.factor == 8.0f && c.rope.low_freq_factor == 1.0f && c.rope.high_freq_factor == 4.0f);
    CHECK_EQ_INT(c.rope.original_max_pos, 32);
    CHECK_EQ_INT(c.bos_id, 1);
    CHECK_EQ_INT(c.n_eos, 1);
    CHECK_EQ_INT(c.eos_ids[0], 2);
    CHECK_EQ_INT(c.pad_id, -1);
    CHECK_EQ_INT(c.dtype, DT_F32);

    c = load_fixture("tiny-qwen2", &e, &rc);
    CHECK_OK(rc, &e);
    CHECK_EQ_INT(c.arch, ARCH_QWEN2);
    CHECK_EQ_INT(c.attention_bias, 1); /* implied by the architecture */
    CHECK_EQ_INT(c.tie_word_embeddings, 1);
    CHECK_EQ_INT(c.rope.type, ROPE_DEFAULT);
    CHECK(c.rope.theta == 1e6f);
    CHECK(c.norm_eps == 1e-6f);
    CHECK_EQ_INT(c.head_dim, 16);
    CHECK_EQ_INT(c.bos_id, -1);
    CHECK_EQ_INT(c.n_eos, 0);
    CHECK_EQ_INT(c.sliding_window, 0);

    c = load_fixture("tiny-qwen3", &e, &rc);
    CHECK_OK(rc, &e);
    CHECK_EQ_INT(c.arch, ARCH_QWEN3);
    CHECK_EQ_INT(c.head_dim, 32); /* not hidden/heads = 16 */
    CHECK_EQ_INT(c.qk_norm, 1);
    CHECK_EQ_INT(c.attention_bias, 0);
    CHECK_EQ_INT(c.tie_word_embeddings, 1);

    c = load_fixture("tiny-mistral", &e, &rc);
    CHECK_OK(rc, &e);
    CHECK_EQ_INT(c.arch, ARCH_MISTRAL);
    CHECK_EQ_INT(c.hidden_size, 96);
    CHECK_EQ_INT(c.n_heads, 6);
    CHECK_EQ_INT(c.n_layers, 3);
    CHECK_EQ_INT(c.intermediate_size, 224);
    CHECK_EQ_INT(c.tie_word_embeddings, 0);

    c = load_fixture("tiny-bert-st", &e, &rc);
    CHECK_OK(rc, &e);
    CHECK_EQ_INT(c.arch, ARCH_BERT);
    CHECK_EQ_INT(c.vocab_size, 5);
    CHECK_EQ_INT(c.type_vocab_size, 2);
    CHECK(c.norm_eps == 1e-12f);
    CHECK_EQ_INT(c.pad_id, 0);
    CHECK_EQ_INT(c.max_pos, 128);
}

static void test_defaults_and_variants(void) {
    ModelConfig c;
    Err e;
    /* transformers-4 style without head_dim / num_key_value_heads; eos list; bf16 */
    const char *t4 = "{\"architectures\":[\"LlamaForCausalLM\"],\"hidden_size\":4096,\"intermediate_size\":14336,"
                     "\"num_hidden_layers\":32,\"num_attention_heads\":32,\"vocab_size\":128256,"
                     "\"rope_theta\":500000.0,\"rope_scaling\":{\"type\":\"linear\",\"factor\":2.0},"
                     "\"eos_token_id\":[128001,128008,128009],\"bos_token_id\":128000,\"torch_dtype\":\"bfloat16\"}";
    CHECK_OK(hf_config_parse(t4, "t4.json", &c, &e), &e);
    CHECK_EQ_INT(c.n_kv_heads, 32);
    CHECK_EQ_INT(c.head_dim, 128);
    CHECK_EQ_INT(c.rope.type, ROPE_LINEAR);
    CHECK(c.rope.factor == 2.0f);
    CHECK_EQ_INT(c.n_eos, 3);
    CHECK_EQ_INT(c.eos_ids[2], 128009);
    CHECK_EQ_INT(c.dtype, DT_BF16);
    CHECK(c.norm_eps == 1e-6f);
    /* model_type alone identifies the architecture */
    CHECK_OK(hf_config_parse("{\"model_type\":\"qwen2\",\"hidden_size\":8,\"intermediate_size\":8,"
                             "\"num_hidden_layers\":1,\"num_attention_heads\":2,\"vocab_size\":10,"
                             "\"sliding_window\":4096,\"use_sliding_window\":false}",
                             "m.json", &c, &e),
             &e);
    CHECK_EQ_INT(c.arch, ARCH_QWEN2);
    CHECK_EQ_INT(c.sliding_window, 0);
    CHECK_EQ_INT(c.rope.type, ROPE_DEFAULT);
    CHECK(c.rope.theta == 10000.0f);
}

static void test_config_errors(void) {
    ModelConfig c;
    Err e;
    CHECK(hf_config_parse("{\"architectures\":[\"GPT2LMHeadModel\"]}", "x/config.json", &c, &e) == -1);
    CHECK_MSG(strstr(e.msg, "x/config.json: unsupported architecture GPT2LMHeadModel (supported: LlamaForCausalLM, "
                            "Qwen2ForCausalLM, Qwen3ForCausalLM, MistralForCausalLM, BertModel)"),
              "%s", e.msg);
    CHECK_EQ_INT(e.code, ERR_UNSUPPORTED);
    CHECK(hf_config_parse("{\"architectures\":[\"LlamaForCausalLM\"],\"hidden_size\":64}", "c.json", &c, &e) == -1);
    CHECK_MSG(strstr(e.msg, "c.json: missing integer field \"intermediate_size\""), "%s", e.msg);
    const char *base = "{\"architectures\":[\"LlamaForCausalLM\"],\"hidden_size\":64,\"intermediate_size\":8,"
                       "\"num_hidden_layers\":1,\"num_attention_heads\":4,\"vocab_size\":10,";
    char *s = xasprintf("%s\"num_key_value_heads\":\"two\"}", base);
    CHECK(hf_config_parse(s, "c.json", &c, &e) == -1);
    CHECK_MSG(strstr(e.msg, "field \"num_key_value_heads\" must be a non-negative integer"), "%s", e.msg);
    free(s);
    s = xasprintf("%s\"num_key_value_heads\":3}", base);
    CHECK(hf_config_parse(s, "c.json", &c, &e) == -1);
    CHECK_MSG(strstr(e.msg, "not a multiple of num_key_value_heads 3"), "%s", e.msg);
    free(s);
    s = xasprintf("%s\"rope_parameters\":{\"rope_type\":\"yarn\",\"factor\":4}}", base);
    CHECK(hf_config_parse(s, "c.json", &c, &e) == -1);
    CHECK_MSG(strstr(e.msg, "rope type yarn is not supported"), "%s", e.msg);
    free(s);
    s = xasprintf("%s\"eos_token_id\":[1,\"x\"]}", base);
    CHECK(hf_config_parse(s, "c.json", &c, &e) == -1);
    CHECK_MSG(strstr(e.msg, "field \"eos_token_id\"[1] must be an integer"), "%s", e.msg);
    free(s);
    CHECK(hf_config_parse("{\"hidden", "c.json", &c, &e) == -1);
    CHECK_MSG(strstr(e.msg, "c.json:1:"), "%s", e.msg);
    char *dir = test_tmpdir();
    CHECK(hf_config_load(dir, &c, &e) == -1);
    CHECK_MSG(strstr(e.msg, "config.json"), "%s", e.msg);
    free(dir);
}

static void test_generation_config(void) {
    char *dir = test_shared_path("fixtures/models/tiny-llama3");
    if (!dir) SKIP("shared fixtures not found (set ALOE_SHARED)");
    GenConfig g;
    Err e;
    CHECK_OK(hf_genconfig_load(dir, &g, &e), &e);
    CHECK_EQ_INT(g.bos_id, 1);
    CHECK_EQ_INT(g.n_eos, 1);
    CHECK_EQ_INT(g.eos_ids[0], 2);
    CHECK_EQ_INT(g.has_temperature, 0);
    CHECK(g.temperature == 1.0f);
    free(dir);
    CHECK_OK(hf_genconfig_parse("{\"do_sample\":true,\"temperature\":0.7,\"top_p\":0.8,\"top_k\":20,"
                                "\"repetition_penalty\":1.05,\"eos_token_id\":[151645,151643]}",
                                "g.json", &g, &e),
             &e);
    CHECK(g.do_sample && g.has_do_sample);
    CHECK(g.has_temperature && fabsf(g.temperature - 0.7f) < 1e-7f);
    CHECK(g.has_top_p && fabsf(g.top_p - 0.8f) < 1e-7f);
    CHECK(g.has_top_k && g.top_k == 20);
    CHECK(g.has_repetition_penalty);
    CHECK_EQ_INT(g.n_eos, 2);
    CHECK_EQ_INT(g.eos_ids[1], 151643);
    /* a directory without the file keeps the defaults */
    char *empty = test_tmpdir();
    CHECK_OK(hf_genconfig_load(empty, &g, &e), &e);
    CHECK_EQ_INT(g.top_k, 50);
    CHECK_EQ_INT(g.n_eos, 0);
    free(empty);
    CHECK(hf_genconfig_parse("{\"temperature\":\"hot\"}", "g.json", &g, &e) == -1);
    CHECK_MSG(strstr(e.msg, "g.json: field \"temperature\" must be a number"), "%s", e.msg);
}

static void test_gguf_config_matches_hf(void) {
    const char *models[] = {"llama3", "qwen2", "mistral"};
    const char *types[] = {"f32", "f16", "bf16", "q8_0"};
    for (int m = 0; m < 3; m++) {
        char *rel = xasprintf("fixtures/models/tiny-%s", models[m]);
        char *dir = test_shared_path(rel);
        free(rel);
        if (!dir) SKIP("shared fixtures not found (set ALOE_SHARED)");
        ModelConfig hf;
        Err e;
        CHECK_OK(hf_config_load(dir, &hf, &e), &e);
        free(dir);
        for (int t = 0; t < 4; t++) {
            rel = xasprintf("fixtures/gguf/tiny-%s-%s.gguf", models[m], types[t]);
            char *p = test_shared_path(rel);
            free(rel);
            CHECK(p != NULL);
            Gguf *g = gguf_open(p, &e);
            CHECK_MSG(g != NULL, "%s", e.msg);
            ModelConfig gc;
            CHECK_OK(gguf_model_config(g, &gc, &e), &e);
            char diff[256];
            CHECK_MSG(!model_config_diff(&hf, &gc, diff, sizeof diff), "%s: %s", p, diff);
            CHECK_EQ_INT(gc.dtype, t == 0 ? DT_F32 : t == 1 ? DT_F16 : t == 2 ? DT_BF16 : DT_Q8_0);
            if (m == 0) CHECK(gc.rope.freqs_from_tensor);
            CHECK(gc.n_eos >= 1); /* the tokenizer's eos */
            gguf_close(g);
            free(p);
        }
    }
    /* a difference is reported */
    ModelConfig a, b;
    memset(&a, 0, sizeof a);
    b = a;
    b.n_kv_heads = 3;
    char diff[128];
    CHECK(model_config_diff(&a, &b, diff, sizeof diff) == 1);
    CHECK_EQ_STR(diff, "n_kv_heads: 0 != 3");
}

static void test_gguf_vocab_files(void) {
    char *p = test_shared_path("tokenizer-data/llama.cpp-vocab/ggml-vocab-llama-spm.gguf");
    if (!p) SKIP("shared tokenizer data not found (set ALOE_SHARED)");
    Err e;
    Gguf *g = gguf_open(p, &e);
    CHECK_MSG(g != NULL, "%s", e.msg);
    ModelConfig c;
    CHECK_OK(gguf_model_config(g, &c, &e), &e);
    CHECK_EQ_INT(c.arch, ARCH_LLAMA);
    CHECK_EQ_INT(c.n_layers, 32);
    CHECK_EQ_INT(c.hidden_size, 4096);
    CHECK_EQ_INT(c.head_dim, 128);
    CHECK_EQ_INT(c.vocab_size, 32000);
    CHECK_EQ_INT(c.bos_id, 1);
    CHECK_EQ_INT(c.eos_ids[0], 2);
    CHECK(c.rope.theta == 10000.0f);
    gguf_close(g);
    free(p);
    p = test_shared_path("tokenizer-data/llama.cpp-vocab/ggml-vocab-gpt-2.gguf");
    g = gguf_open(p, &e);
    CHECK_MSG(g != NULL, "%s", e.msg);
    CHECK(gguf_model_config(g, &c, &e) == -1);
    CHECK_MSG(strstr(e.msg, "unsupported GGUF architecture gpt2 (supported: llama, qwen2, qwen3, bert)"), "%s", e.msg);
    gguf_close(g);
    free(p);
    p = test_shared_path("tokenizer-data/llama.cpp-vocab/ggml-vocab-bert-bge.gguf");
    g = gguf_open(p, &e);
    CHECK_MSG(g != NULL, "%s", e.msg);
    CHECK_OK(gguf_model_config(g, &c, &e), &e);
    CHECK_EQ_INT(c.arch, ARCH_BERT);
    CHECK_EQ_INT(c.vocab_size, 30522);
    CHECK(c.norm_eps == 1e-12f);
    CHECK_EQ_INT(c.type_vocab_size, 2);
    gguf_close(g);
    free(p);
}

static void test_tensor_names(void) {
    char out[128];
    CHECK_OK(hf_name_from_gguf("blk.12.attn_q.weight", out, sizeof out), &(Err){0});
    CHECK_EQ_STR(out, "model.layers.12.self_attn.q_proj.weight");
    CHECK_OK(gguf_name_from_hf("model.layers.3.mlp.down_proj.weight", out, sizeof out), &(Err){0});
    CHECK_EQ_STR(out, "blk.3.ffn_down.weight");
    CHECK_OK(gguf_name_from_hf("lm_head.weight", out, sizeof out), &(Err){0});
    CHECK_EQ_STR(out, "output.weight");
    CHECK_OK(hf_name_from_gguf("blk.0.attn_k_norm.weight", out, sizeof out), &(Err){0});
    CHECK_EQ_STR(out, "model.layers.0.self_attn.k_norm.weight");
    CHECK(hf_name_from_gguf("rope_freqs.weight", out, sizeof out) == -1);
    CHECK(hf_name_from_gguf("blk..attn_q.weight", out, sizeof out) == -1);
    CHECK(hf_name_from_gguf("blk.1.attn_q.weightx", out, sizeof out) == -1);
    CHECK(hf_name_from_gguf("blk.1.attn_q.weight", out, 10) == -1); /* too small */
}

int main(void) {
    RUN(test_config_and_legacy_config_agree);
    RUN(test_fixture_values);
    RUN(test_defaults_and_variants);
    RUN(test_config_errors);
    RUN(test_generation_config);
    RUN(test_gguf_config_matches_hf);
    RUN(test_gguf_vocab_files);
    RUN(test_tensor_names);
    return test_summary();
}
