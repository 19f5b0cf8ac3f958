#include <stdlib.h>

#include "base/fileio.h"
#include "base/mem.h"
#include "formats/gguf.h"
#include "formats/gguf_write.h"
#include "formats/safetensors.h"
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
                            "Qwen2ForCausalLM, Qwen3ForCausalLM, MistralForCausalLM, OlmoForCausalLM, "
                            "Olmo2ForCausalLM, Gemma2ForCausalLM, Gemma3ForCausalLM, Gemma3ForConditionalGeneration, "
                            "Phi3ForCausalLM, BertModel)"),
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
    CHECK_MSG(strstr(e.msg, "unsupported GGUF architecture gpt2 (supported: llama, qwen2, qwen3, olmo, olmo2, gemma2, gemma3, "
                                "phi3, bert)"), "%s", e.msg);
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

static void write_text(const char *dir, const char *name, const char *text) {
    char *p = path_join(dir, name);
    Err e;
    file_write_atomic(p, text, strlen(text), &e);
    free(p);
}

static void test_chat_template(void) {
    char *dir = test_shared_path("fixtures/models/tiny-llama3");
    char *qwen = test_shared_path("tokenizer-data/qwen3");
    if (!dir || !qwen) SKIP("shared fixtures not found (set ALOE_SHARED)");
    char *t;
    Err e;
    CHECK_OK(hf_chat_template_load(dir, NULL, &t, &e), &e);
    CHECK(t && strstr(t, "<|start_header_id|>"));
    free(t);
    CHECK_OK(hf_chat_template_load(qwen, NULL, &t, &e), &e); /* inside tokenizer_config.json */
    CHECK(t && strstr(t, "<|im_start|>"));
    free(t);
    char *tmp = test_tmpdir();
    CHECK_OK(hf_chat_template_load(tmp, NULL, &t, &e), &e);
    CHECK(t == NULL);
    write_text(tmp, "tokenizer_config.json",
               "{\"chat_template\":[{\"name\":\"default\",\"template\":\"D\"},{\"name\":\"tool_use\",\"template\":\"T\"}]}");
    CHECK_OK(hf_chat_template_load(tmp, NULL, &t, &e), &e);
    CHECK_EQ_STR(t, "D");
    free(t);
    /* hub files hold integers beyond int64 (model_max_length) */
    write_text(tmp, "tokenizer_config.json",
               "{\"model_max_length\": 1000000000000000019884624838656, \"chat_template\": \"D\"}");
    CHECK_OK(hf_chat_template_load(tmp, NULL, &t, &e), &e);
    CHECK_EQ_STR(t, "D");
    free(t);
    write_text(tmp, "tokenizer_config.json",
               "{\"chat_template\":[{\"name\":\"default\",\"template\":\"D\"},{\"name\":\"tool_use\",\"template\":\"T\"}]}");
    CHECK_OK(hf_chat_template_load(tmp, "tool_use", &t, &e), &e);
    CHECK_EQ_STR(t, "T");
    free(t);
    CHECK(hf_chat_template_load(tmp, "rag", &t, &e) == -1);
    CHECK_MSG(strstr(e.msg, "no chat template named rag"), "%s", e.msg);
    write_text(tmp, "tokenizer_config.json", "{\"chat_template\":3}");
    CHECK(hf_chat_template_load(tmp, NULL, &t, &e) == -1);
    CHECK_MSG(strstr(e.msg, "\"chat_template\" must be a string or a list"), "%s", e.msg);
    free(tmp);
    free(dir);
    free(qwen);
}

/* llama.cpp's converter wrote tiny-llama3's rope_freqs.weight with its
 * default original_max_position_embeddings = 8192, not the config's 32
 * (it did not find the key in the transformers-5 rope_parameters). With
 * that value our formula reproduces the tensor; with the config's own
 * value the factors differ, which a model loading the GGUF must know. */
static void test_rope_factors_match_llama_cpp(void) {
    Err e;
    int rc;
    ModelConfig c = load_fixture("tiny-llama3", &e, &rc);
    char *p = test_shared_path("fixtures/gguf/tiny-llama3-f32.gguf");
    if (rc == 1 || !p) SKIP("shared fixtures not found (set ALOE_SHARED)");
    Gguf *g = gguf_open(p, &e);
    CHECK(g != NULL);
    const TensorView *t = gguf_find_tensor(g, "rope_freqs.weight");
    CHECK(t && t->shape[0] == c.head_dim / 2);
    float f[64];
    RopeConfig r = c.rope;
    r.original_max_pos = 8192;
    rope_freq_factors(&r, c.head_dim, f);
    const float *ref = t->data;
    for (int i = 0; i < c.head_dim / 2; i++) CHECK_NEAR(f[i], ref[i], 1e-6 * ref[i]);
    CHECK(ref[4] > 2.69f && ref[4] < 2.70f); /* one blended frequency */
    rope_freq_factors(&c.rope, c.head_dim, f); /* the config's 32 */
    CHECK(f[0] == 1.0f);
    for (int i = 1; i < c.head_dim / 2; i++) CHECK(f[i] == 8.0f);
    RopeConfig lin = {.type = ROPE_LINEAR, .theta = 1e4f, .factor = 4};
    rope_freq_factors(&lin, 8, f);
    CHECK(f[0] == 4.0f && f[3] == 4.0f);
    RopeConfig def = {.type = ROPE_DEFAULT, .theta = 1e4f, .factor = 1};
    rope_freq_factors(&def, 8, f);
    CHECK(f[0] == 1.0f && f[3] == 1.0f);
    gguf_close(g);
    free(p);
}

/* HF directory -> GGUF through the writer: the metadata reads back as the
 * same ModelConfig (Qwen3 included, which has no llama.cpp fixture), and
 * for the models llama.cpp converted, every tensor equals its file's. */
static void test_export_hf_to_gguf(void) {
    for (int m = 0; m < 4; m++) {
        char *rel = xasprintf("fixtures/models/%s", MODELS[m]);
        char *dir = test_shared_path(rel);
        free(rel);
        if (!dir) SKIP("shared fixtures not found (set ALOE_SHARED)");
        ModelConfig c;
        Err e;
        CHECK_OK(hf_config_load(dir, &c, &e), &e);
        SafeTensors *st = st_open(dir, &e);
        CHECK_MSG(st != NULL, "%s", e.msg);
        GgufWriter *w = gguf_writer_new();
        CHECK_OK(gguf_set_model_config(w, &c, &e), &e);
        int permute = c.arch == ARCH_LLAMA || c.arch == ARCH_MISTRAL;
        void **copies = calloc((size_t)st_count(st), sizeof(void *));
        char **names = calloc((size_t)st_count(st), sizeof(char *));
        float freqs[64];
        if (c.rope.type == ROPE_LLAMA3) {
            rope_freq_factors(&c.rope, c.head_dim, freqs);
            TensorView rf = {.name = "rope_freqs.weight", .dtype = DT_F32, .ndim = 1, .shape = {c.head_dim / 2, 1, 1, 1},
                             .data = freqs, .nbytes = (size_t)c.head_dim / 2 * 4};
            CHECK_OK(gguf_writer_add_tensor(w, &rf, &e), &e);
        }
        for (int i = 0; i < st_count(st); i++) {
            TensorView t = *st_tensor(st, i);
            char gname[128];
            CHECK_MSG(!gguf_name_from_hf(t.name, gname, sizeof gname), "no GGUF name for %s", t.name);
            names[i] = xstrdup(gname);
            t.name = names[i];
            int is_q = strstr(gname, "attn_q.weight") != NULL, is_k = strstr(gname, "attn_k.weight") != NULL;
            if (permute && (is_q || is_k)) {
                copies[i] = xmalloc(t.nbytes);
                memcpy(copies[i], t.data, t.nbytes);
                CHECK_OK(gguf_permute_qk(copies[i], t.shape[0], tensor_row_bytes(&t), is_q ? c.n_heads : c.n_kv_heads, &e), &e);
                t.data = copies[i];
            }
            CHECK_OK(gguf_writer_add_tensor(w, &t, &e), &e);
        }
        char *tmp = test_tmpdir(), *out = path_join(tmp, "x.gguf");
        CHECK_OK(gguf_writer_write(w, out, &e), &e);
        gguf_writer_free(w);
        Gguf *g = gguf_open(out, &e);
        CHECK_MSG(g != NULL, "%s", e.msg);
        ModelConfig back;
        CHECK_OK(gguf_model_config(g, &back, &e), &e);
        char diff[256];
        CHECK_MSG(!model_config_diff(&c, &back, diff, sizeof diff), "%s: %s", MODELS[m], diff);
        if (c.arch == ARCH_QWEN3) CHECK(back.qk_norm && back.head_dim == 32);
        rel = xasprintf("fixtures/gguf/%s-f32.gguf", MODELS[m]);
        char *ref_path = test_shared_path(rel);
        free(rel);
        if (ref_path && file_exists(ref_path)) {
            Gguf *ref = gguf_open(ref_path, &e);
            CHECK(ref != NULL);
            CHECK_EQ_INT(gguf_n_tensors(g), gguf_n_tensors(ref));
            for (int i = 0; i < gguf_n_tensors(ref); i++) {
                const TensorView *a = gguf_tensor(ref, i), *b = gguf_find_tensor(g, a->name);
                CHECK_MSG(b != NULL, "%s missing", a->name);
                if (!strcmp(a->name, "rope_freqs.weight")) continue; /* see test_rope_factors_match_llama_cpp */
                CHECK_MSG(a->nbytes == b->nbytes && !memcmp(a->data, b->data, a->nbytes), "%s differs", a->name);
            }
            gguf_close(ref);
        }
        free(ref_path);
        gguf_close(g);
        for (int i = 0; i < st_count(st); i++) {
            free(copies[i]);
            free(names[i]);
        }
        free(copies);
        free(names);
        st_close(st);
        free(out);
        free(tmp);
        free(dir);
    }
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
    RUN(test_chat_template);
    RUN(test_rope_factors_match_llama_cpp);
    RUN(test_export_hf_to_gguf);
    return test_summary();
}
