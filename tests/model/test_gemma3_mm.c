/* test_gemma3_mm: Gemma3ForConditionalGeneration, the class most Gemma 3
 * downloads have (gemma-3-4b/12b/27b), run as its text decoder.
 *
 * tests/data/arch/gemma3-mm is tests/data/arch/models/tiny-gemma3 in that
 * layout (scripts/make_gemma3_mm.py): the config nested in text_config,
 * which omits every field equal to Gemma3TextConfig's default (rope_theta,
 * rope_local_base_freq, rms_norm_eps, ...), tensors under
 * "language_model.model.", two dummy tensors of the vision tower and
 * projector. The same weights must give the same numbers: its logits equal
 * tiny-gemma3's bit for bit (the same f32 weights through the same
 * forward), in both hub layouts (the second, "model.language_model.", is
 * written here from the first) and through a GGUF `aloe convert` writes
 * of it (which reads back as the text model's gemma3). Against the gold
 * logits: within 1e-4, the float32 tolerance the gold's README derives. */
#include <jansson.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/fileio.h"
#include "base/mem.h"
#include "formats/gguf_write.h"
#include "formats/safetensors.h"
#include "model/convert.h"
#include "model/decoder.h"
#include "test.h"

#define MM "tests/data/arch/gemma3-mm"
#define TEXT "tests/data/arch/models/tiny-gemma3"

/* The gold forward rows: ids [rows, T] and logits [rows, T, V]. */
typedef struct Gold {
    int rows, T, V;
    int32_t *ids;
    float *logits;
} Gold;

static int gold_load(Gold *g, Err *e) {
    json_error_t je;
    json_t *j = json_load_file(TEXT "/expected.json", 0, &je);
    if (!j) return err_set(e, ERR_PARSE, "%s", je.text);
    json_t *in = json_object_get(json_object_get(j, "forward"), "input_ids");
    g->rows = (int)json_array_size(in);
    g->T = (int)json_array_size(json_array_get(in, 0));
    g->ids = xmalloc((size_t)g->rows * g->T * sizeof *g->ids);
    for (int r = 0; r < g->rows; r++)
        for (int t = 0; t < g->T; t++)
            g->ids[r * g->T + t] = (int32_t)json_integer_value(json_array_get(json_array_get(in, (size_t)r), (size_t)t));
    json_decref(j);
    SafeTensors *st = st_open(TEXT "/expected.safetensors", e);
    if (!st) return -1;
    const TensorView *t = st_get(st, "forward.logits", e);
    if (!t) return st_close(st), -1;
    g->V = (int)t->shape[2];
    g->logits = xmalloc(t->nbytes);
    memcpy(g->logits, t->data, t->nbytes);
    st_close(st);
    return 0;
}

/* The model at path's logits over every gold row (caller frees), and its config. */
static float *logits_of(const char *path, const Gold *g, ModelConfig *cfg, Err *e) {
    Model *m = model_load(path, 2, e);
    if (!m) return NULL;
    *cfg = m->cfg;
    float *out = xmalloc((size_t)g->rows * g->T * g->V * sizeof(float));
    int rc = m->cfg.vocab_size == g->V ? 0 : err_set(e, ERR_PARSE, "vocab %d", m->cfg.vocab_size);
    for (int r = 0; r < g->rows && !rc; r++) {
        KvCache kv;
        rc = kv_cache_init(&kv, m, g->T, e) ||
             model_forward(m, &kv, g->ids + (size_t)r * g->T, g->T, 0, out + (size_t)r * g->T * g->V, 1, e);
        kv_cache_free(&kv);
    }
    model_free(m);
    if (rc) free(out), out = NULL;
    return out;
}

static double max_abs(const float *a, const float *b, size_t n) {
    double w = 0;
    for (size_t i = 0; i < n; i++) w = fmax(w, fabs((double)a[i] - b[i]));
    return w;
}

static void test_config(void) {
    ModelConfig mm, text;
    Err e = {0};
    CHECK_OK(hf_config_load(MM, &mm, &e), &e);
    CHECK_OK(hf_config_load(TEXT, &text, &e), &e);
    char diff[256];
    CHECK_MSG(!model_config_diff(&mm, &text, diff, sizeof diff), "%s", diff);
    CHECK_EQ_INT(mm.arch, ARCH_GEMMA3_MM);
    /* from the defaults, as Gemma3TextConfig fills them */
    CHECK(mm.rope.theta == 1e6f && mm.rope.local_theta == 1e4f && mm.norm_eps == 1e-6f && mm.tie_word_embeddings);
    /* from the top level */
    CHECK(mm.n_eos == 1 && mm.eos_ids[0] == 1026 && mm.pad_id == 1024 && mm.bos_id == -1 && mm.dtype == DT_F32);
}

/* gemma-3-4b-it's config.json as published (vision_config shortened):
 * text_config holds five fields, the rest are the class's defaults. */
static void test_sparse_hub_config(void) {
    const char *json =
        "{\"architectures\": [\"Gemma3ForConditionalGeneration\"], \"boi_token_index\": 255999,"
        " \"eoi_token_index\": 256000, \"eos_token_id\": [1, 106], \"image_token_index\": 262144,"
        " \"initializer_range\": 0.02, \"mm_tokens_per_image\": 256, \"model_type\": \"gemma3\","
        " \"text_config\": {\"hidden_size\": 2560, \"intermediate_size\": 10240, \"model_type\": \"gemma3_text\","
        " \"num_hidden_layers\": 34, \"rope_scaling\": {\"factor\": 8.0, \"rope_type\": \"linear\"},"
        " \"sliding_window\": 1024}, \"torch_dtype\": \"bfloat16\", \"transformers_version\": \"4.50.0.dev0\","
        " \"vision_config\": {\"hidden_size\": 1152, \"image_size\": 896, \"model_type\": \"siglip_vision_model\"}}";
    ModelConfig c;
    Err e = {0};
    CHECK_OK(hf_config_parse(json, "g/config.json", &c, &e), &e);
    CHECK_EQ_INT(c.arch, ARCH_GEMMA3_MM);
    CHECK(c.hidden_size == 2560 && c.intermediate_size == 10240 && c.n_layers == 34 && c.sliding_window == 1024);
    CHECK(c.n_heads == 8 && c.n_kv_heads == 4 && c.head_dim == 256 && c.vocab_size == 262208 && c.max_pos == 131072);
    CHECK(c.rope.type == ROPE_LINEAR && c.rope.factor == 8.0f && c.rope.theta == 1e6f && c.rope.local_theta == 1e4f);
    CHECK(fabsf(c.attn_scale - 1.0f / 16) < 1e-7f); /* query_pre_attn_scalar 256 */
    CHECK(c.swa_pattern == 6 && c.tie_word_embeddings && c.dtype == DT_BF16 && c.norm_offset == 1.0f);
    CHECK(c.n_eos == 2 && c.eos_ids[0] == 1 && c.eos_ids[1] == 106 && c.bos_id == 2 && c.pad_id == 0);
    /* the fields are text_config's, and messages say so */
    CHECK(hf_config_parse("{\"architectures\": [\"Gemma3ForConditionalGeneration\"], \"text_config\": 3}",
                          "g/config.json", &c, &e) == -1);
    CHECK_MSG(strstr(e.msg, "g/config.json: field \"text_config\" must be an object"), "%s", e.msg);
    CHECK(hf_config_parse("{\"architectures\": [\"Gemma3ForConditionalGeneration\"], "
                          "\"text_config\": {\"hidden_size\": -2}}", "g/config.json", &c, &e) == -1);
    CHECK_MSG(strstr(e.msg, "g/config.json: text_config: field \"hidden_size\""), "%s", e.msg);
    /* no text_config at all: Gemma3TextConfig() (gemma-3's 2B-sized text model) */
    CHECK_OK(hf_config_parse("{\"architectures\": [\"Gemma3ForConditionalGeneration\"]}", "g/config.json", &c, &e), &e);
    CHECK(c.hidden_size == 2304 && c.n_layers == 26 && c.intermediate_size == 9216 && c.sliding_window == 4096);
}

/* dir/model.safetensors: MM's tensors with "language_model.model." ->
 * "model.language_model." (transformers >= 4.52's names), and its config. */
static int write_tf5_layout(const char *dir, Err *e) {
    SafeTensors *st = st_open(MM, e);
    if (!st) return -1;
    int n = st_count(st);
    TensorView *t = xcalloc((size_t)n, sizeof *t);
    char **names = xcalloc((size_t)n, sizeof *names);
    for (int i = 0; i < n; i++) {
        t[i] = *st_tensor(st, i);
        const char *p = "language_model.model.";
        names[i] = !strncmp(t[i].name, p, strlen(p)) ? xasprintf("model.language_model.%s", t[i].name + strlen(p))
                                                      : xasprintf("model.%s", t[i].name);
        t[i].name = names[i];
    }
    char *path = path_join(dir, "model.safetensors"), *cfg = path_join(dir, "config.json"), *text = NULL;
    size_t len;
    int rc = st_write(path, t, n, NULL, e) || file_read_all(MM "/config.json", &text, &len, e) ||
             file_write_atomic(cfg, text, len, e);
    for (int i = 0; i < n; i++) free(names[i]);
    free(names), free(t), free(path), free(cfg), free(text);
    st_close(st);
    return rc ? -1 : 0;
}

static void test_logits_equal_text_model(void) {
    Gold g = {0};
    Err e = {0};
    CHECK_OK(gold_load(&g, &e), &e);
    size_t n = (size_t)g.rows * g.T * g.V;
    ModelConfig ct, cm, c5, cg;
    float *text = logits_of(TEXT, &g, &ct, &e);
    CHECK_OK(!text, &e);
    float *mm = logits_of(MM, &g, &cm, &e);
    CHECK_OK(!mm, &e);
    CHECK_EQ_INT(cm.arch, ARCH_GEMMA3_MM);
    if (text && mm) {
        CHECK(!memcmp(text, mm, n * sizeof(float)));
        double d = max_abs(mm, g.logits, n);
        CHECK_MSG(d <= 1e-4, "gemma3-mm vs gold: max |d| %.3g", d);
    }
    /* transformers >= 4.52's layout */
    char *dir = test_tmpdir();
    CHECK_OK(write_tf5_layout(dir, &e), &e);
    float *tf5 = logits_of(dir, &g, &c5, &e);
    CHECK_OK(!tf5, &e);
    CHECK_EQ_INT(c5.arch, ARCH_GEMMA3_MM2);
    if (text && tf5) CHECK(!memcmp(text, tf5, n * sizeof(float)));
    /* GGUF: the text model as llama.cpp writes it (gemma3, no vision tensors) */
    char *gg = path_join(dir, "mm.gguf");
    CHECK_OK(convert_hf_to_gguf(MM, gg, DT_F32, &e), &e);
    Gguf *f = gguf_open(gg, &e);
    CHECK_OK(!f, &e);
    if (f) {
        const char *a = NULL;
        CHECK(!gguf_get_str(f, "general.architecture", &a, &e) && a && !strcmp(a, "gemma3"));
        int vision = 0;
        for (int i = 0; i < gguf_n_tensors(f); i++) vision += strstr(gguf_tensor(f, i)->name, "vision") != NULL;
        CHECK_EQ_INT(vision, 0);
        gguf_close(f);
    }
    float *gl = logits_of(gg, &g, &cg, &e);
    CHECK_OK(!gl, &e);
    CHECK_EQ_INT(cg.arch, ARCH_GEMMA3);
    if (gl) {
        double d = max_abs(gl, g.logits, n);
        CHECK_MSG(d <= 1e-4, "gemma3-mm GGUF vs gold: max |d| %.3g", d);
    }
    free(gg), free(gl), free(tf5), free(text), free(mm), free(g.ids), free(g.logits);
    file_remove_tree(dir, &e);
    free(dir);
}

/* llama.cpp's other file of a multimodal model, the vision projector:
 * refused with a message that says which file to pass. */
static void test_mmproj_refused(void) {
    char *dir = test_tmpdir(), *p = path_join(dir, "mmproj-model-f16.gguf");
    Err e = {0};
    GgufWriter *w = gguf_writer_new();
    gguf_set_str(w, "general.architecture", "clip");
    CHECK_OK(gguf_writer_write(w, p, &e), &e);
    gguf_writer_free(w);
    Model *m = model_load(p, 1, &e);
    CHECK(!m);
    CHECK_MSG(strstr(e.msg, "vision projector (mmproj)") && strstr(e.msg, "text model"), "%s", e.msg);
    model_free(m);
    file_remove_tree(dir, &e);
    free(p), free(dir);
}

int main(void) {
    RUN(test_config);
    RUN(test_sparse_hub_config);
    RUN(test_logits_equal_text_model);
    RUN(test_mmproj_refused);
    return test_summary();
}
