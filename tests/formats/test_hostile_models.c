/* Hostile model files (issue 11.5): each is refused before anything is
 * allocated from its numbers, with an error that names the file and the
 * field or tensor and what was expected -- through the library and through
 * `aloe logits`, which must exit with status 1, never 134 (abort) or a
 * signal. Config cases edit a copy of the tiny-qwen2 fixture (its weights
 * symlinked), so they skip without the shared fixtures. */
#include <jansson.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/fileio.h"
#include "base/mem.h"
#include "formats/gguf.h"
#include "formats/gguf_write.h"
#include "formats/hfdir.h"
#include "formats/safetensors.h"
#include "model/decoder.h"
#include "test.h"

/* ---- byte builders ---- */

typedef struct {
    uint8_t *p;
    size_t n, cap;
} Bytes;

static void put(Bytes *b, const void *s, size_t n) {
    if (b->n + n > b->cap) {
        b->cap = (b->n + n) * 2 + 64;
        b->p = xrealloc(b->p, b->cap);
    }
    memcpy(b->p + b->n, s, n);
    b->n += n;
}
static void put_u32(Bytes *b, uint32_t v) { put(b, &v, 4); }
static void put_u64(Bytes *b, uint64_t v) { put(b, &v, 8); }
static void put_str(Bytes *b, const char *s) {
    put_u64(b, strlen(s));
    put(b, s, strlen(s));
}

typedef struct {
    const char *name;
    uint64_t dim; /* a 1-D F32 tensor of dim elements */
    uint64_t offset;
} GTensor;

/* A GGUF v3 file with no metadata and 1-D F32 tensors at the given
 * offsets, followed by data_bytes of data. */
static Bytes gguf_bytes(const GTensor *t, int n, size_t data_bytes) {
    Bytes b = {0};
    put(&b, "GGUF", 4);
    put_u32(&b, 3);
    put_u64(&b, (uint64_t)n);
    put_u64(&b, 0);
    for (int i = 0; i < n; i++) {
        put_str(&b, t[i].name);
        put_u32(&b, 1);
        put_u64(&b, t[i].dim);
        put_u32(&b, DT_F32);
        put_u64(&b, t[i].offset);
    }
    static const uint8_t zeros[64];
    put(&b, zeros, (32 - b.n % 32) % 32);
    for (size_t i = 0; i < data_bytes; i++) put(&b, zeros, 1);
    return b;
}

/* A safetensors image: header JSON text (padded to 8), then data_bytes. */
static Bytes st_bytes(const char *header, size_t data_bytes) {
    Bytes b = {0};
    size_t hl = strlen(header), padded = (hl + 7) / 8 * 8;
    put_u64(&b, padded);
    put(&b, header, hl);
    for (size_t i = hl; i < padded; i++) put(&b, " ", 1);
    static const uint8_t zero = 0;
    for (size_t i = 0; i < data_bytes; i++) put(&b, &zero, 1);
    return b;
}

#define CHECK_HAS(msg, s) CHECK_MSG(strstr((msg), (s)) != NULL, "message \"%s\" lacks \"%s\"", (msg), (s))

/* ---- the shared finding: a dimension product past INT64_MAX ---- */

/* tests/data/formats/gguf-numel-overflow.gguf (from fuzz_gguf, see
 * /work/shared/findings): dims [0, 0x4700000000000000, 0x0100000003465547];
 * the zero hid the overflow from the reader, and tensor_numel, multiplying
 * in the other order, overflowed (UBSan). Before the fix gguf_open_mem
 * accepted it. */
static void test_gguf_numel_overflow_finding(void) {
    char *data;
    size_t len;
    Err e;
    CHECK_OK(file_read_all("tests/data/formats/gguf-numel-overflow.gguf", &data, &len, &e), &e);
    Gguf *g = gguf_open_mem(data, len, "numel.gguf", &e);
    CHECK_MSG(g == NULL, "accepted a tensor of more than INT64_MAX elements");
    CHECK_HAS(e.msg, "numel.gguf: tensor \"\": shape [72057594092868935, 5116089176692883456, 0]");
    CHECK_HAS(e.msg, "more than INT64_MAX elements");
    free(data);
    /* tensor_numel on a hand-made view saturates instead of overflowing */
    TensorView v = {.name = "x", .dtype = DT_F32, .ndim = 3, .shape = {INT64_MAX / 2, 4, 1, 1}};
    CHECK(tensor_numel(&v) == INT64_MAX);
    v.shape[2] = 0;
    CHECK(tensor_numel(&v) == 0);
    int64_t numel;
    CHECK(tensor_shape_numel(v.shape, 3, &numel) == -1);
    /* and the CLI says so with status 1 */
    char *dir = test_tmpdir(), *model = path_join(dir, "bad.gguf"), *aloe = test_build_path("aloe");
    CHECK(test_system("cp tests/data/formats/gguf-numel-overflow.gguf %s", model) == 0);
    int rc = test_system("%s logits -m %s --ids 1 -o %s/o.st 2>%s/err", aloe, model, dir, dir);
    CHECK_EQ_INT(rc, 1);
    char *err = path_join(dir, "err"), *text;
    CHECK_OK(file_read_all(err, &text, &len, &e), &e);
    CHECK_HAS(text, "bad.gguf: tensor \"\"");
    free(text), free(err), free(model), free(aloe), free(dir);
}

/* ---- tensors sharing bytes, holes, trailing bytes ---- */

static void test_gguf_overlapping_tensors(void) {
    GTensor t[] = {{"a", 8, 0}, {"b", 8, 0}};
    Bytes b = gguf_bytes(t, 2, 32);
    Err e;
    Gguf *g = gguf_open_mem(b.p, b.n, "overlap.gguf", &e);
    CHECK_MSG(g == NULL, "two tensors on the same bytes were accepted");
    CHECK_HAS(e.msg, "overlap.gguf: tensor b: data [0, 32) overlaps tensor a [0, 32)");
    free(b.p);
    /* partly: b starts inside a */
    GTensor u[] = {{"a", 16, 0}, {"b", 8, 32}};
    b = gguf_bytes(u, 2, 64);
    CHECK(gguf_open_mem(b.p, b.n, "overlap.gguf", &e) == NULL);
    CHECK_HAS(e.msg, "tensor b: data [32, 64) overlaps tensor a [0, 64)");
    free(b.p);
    /* the same layout without the overlap loads, and empty tensors may sit anywhere */
    GTensor ok[] = {{"a", 8, 0}, {"b", 8, 32}, {"c", 0, 32}};
    b = gguf_bytes(ok, 3, 64);
    g = gguf_open_mem(b.p, b.n, "ok.gguf", &e);
    CHECK_MSG(g != NULL, "%s", e.msg);
    gguf_close(g);
    free(b.p);
}

static void test_safetensors_layout(void) {
    Err e;
    /* two tensors on the same 16 bytes */
    Bytes b = st_bytes("{\"a\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]},"
                       "\"b\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]}}",
                       16);
    CHECK(st_open_mem(b.p, b.n, "overlap.safetensors", &e) == NULL);
    CHECK_HAS(e.msg, "overlap.safetensors: tensor b: data_offsets [0, 16] overlap tensor a [0, 16]");
    free(b.p);
    /* trailing bytes after the data */
    b = st_bytes("{\"a\":{\"dtype\":\"F32\",\"shape\":[4],\"data_offsets\":[0,16]}}", 20);
    CHECK(st_open_mem(b.p, b.n, "trailing.safetensors", &e) == NULL);
    CHECK_HAS(e.msg, "trailing.safetensors: 4 trailing bytes after the tensor data (the tensors end at data byte 16 of 20)");
    free(b.p);
    /* a hole between tensors */
    b = st_bytes("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
                 "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[12,20]}}",
                 20);
    CHECK(st_open_mem(b.p, b.n, "hole.safetensors", &e) == NULL);
    CHECK_HAS(e.msg, "hole.safetensors: data bytes [8, 12) before tensor b belong to no tensor");
    free(b.p);
    /* exact cover (with an empty tensor) loads */
    b = st_bytes("{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
                 "\"z\":{\"dtype\":\"F32\",\"shape\":[0],\"data_offsets\":[4,4]},"
                 "\"b\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8,16]}}",
                 16);
    SafeTensors *st = st_open_mem(b.p, b.n, "ok.safetensors", &e);
    CHECK_MSG(st != NULL, "%s", e.msg);
    st_close(st);
    free(b.p);
    /* a shape past INT64_MAX (within the per-dim cap) */
    b = st_bytes("{\"a\":{\"dtype\":\"F32\",\"shape\":[1099511627776,1099511627776],\"data_offsets\":[0,0]}}", 0);
    CHECK(st_open_mem(b.p, b.n, "big.safetensors", &e) == NULL);
    CHECK_HAS(e.msg, "big.safetensors: tensor a: shape overflows");
    free(b.p);
}

/* ---- config.json ---- */

/* A copy of tiny-qwen2 (weights and tokenizer symlinked) whose config.json
 * is the fixture's with `edit` applied: "key=json" pairs separated by ';',
 * key "rope_parameters.rope_theta" reaching one level down, json "DELETE"
 * removing the key. NULL when the fixtures are absent. */
static char *fixture_with_config(const char *fixture, const char *edit);
static char *model_with_config(const char *edit) { return fixture_with_config("tiny-qwen2", edit); }

static char *fixture_with_config(const char *fixture, const char *edit) {
    char rel_name[128];
    snprintf(rel_name, sizeof rel_name, "fixtures/models/%s", fixture);
    char *rel = test_shared_path(rel_name);
    if (!rel) return NULL;
    char *src = realpath(rel, NULL); /* the symlinks must not depend on the working directory */
    free(rel);
    char *dir = test_tmpdir();
    static const char *const files[] = {"model.safetensors", "tokenizer.json", "tokenizer_config.json",
                                        "generation_config.json", "chat_template.jinja", "modules.json",
                                        "1_Pooling", "2_Normalize", "sentence_bert_config.json", "vocab.txt"};
    for (size_t i = 0; i < sizeof files / sizeof files[0]; i++) {
        char *a = path_join(src, files[i]), *b = path_join(dir, files[i]);
        if (file_exists(a) && symlink(a, b)) abort();
        free(a), free(b);
    }
    char *cfg_src = path_join(src, "config.json"), *cfg = path_join(dir, "config.json");
    json_t *root = json_load_file(cfg_src, 0, NULL);
    char *ed = xstrdup(edit);
    for (char *item = strtok(ed, ";"); item; item = strtok(NULL, ";")) {
        char *eq = strchr(item, '=');
        *eq = 0;
        json_t *obj = root;
        char *dot = strchr(item, '.'), *key = item;
        if (dot) {
            *dot = 0;
            obj = json_object_get(root, item);
            key = dot + 1;
        }
        if (!strcmp(eq + 1, "DELETE")) json_object_del(obj, key);
        else json_object_set_new(obj, key, json_loads(eq + 1, JSON_DECODE_ANY, NULL));
    }
    json_dump_file(root, cfg, JSON_INDENT(1));
    json_decref(root);
    free(ed), free(cfg_src), free(cfg), free(src);
    return dir;
}

/* Loads dir through the library and through `aloe logits`: both must fail,
 * the CLI with status 1, and both messages must hold want (with "DIR"
 * standing for the directory's path). */
static int check_refused(const char *dir, const char *want_rel) {
    char want[1024];
    size_t k = 0;
    for (const char *p = want_rel; *p && k + strlen(dir) + 2 < sizeof want;) {
        if (!strncmp(p, "DIR", 3)) k += (size_t)snprintf(want + k, sizeof want - k, "%s", dir), p += 3;
        else want[k++] = *p++;
    }
    want[k] = 0;
    Err e;
    Model *m = model_load(dir, 1, &e);
    if (m) {
        model_free(m);
        printf("    %s: loaded, expected an error with \"%s\"\n", dir, want);
        return 0;
    }
    if (!strstr(e.msg, want)) {
        printf("    library: \"%s\" lacks \"%s\"\n", e.msg, want);
        return 0;
    }
    char *aloe = test_build_path("aloe");
    int rc = test_system("%s logits -m %s --ids 1,2 -o %s/o.st 2>%s/err", aloe, dir, dir, dir);
    free(aloe);
    char *err = path_join(dir, "err"), *text = NULL;
    size_t len;
    int ok = rc == 1 && !file_read_all(err, &text, &len, &e) && strstr(text, want);
    if (!ok) printf("    aloe logits: status %d, stderr \"%s\" (want status 1 and \"%s\")\n", rc, text ? text : "", want);
    free(text), free(err);
    return ok;
}

static void test_config_sizes_checked_before_allocation(void) {
    static const struct {
        const char *edit, *want;
    } cases[] = {
        /* exit 134 "out of memory (allocating 173056263232 bytes)" before */
        {"num_hidden_layers=1000000",
         "DIR/config.json: num_hidden_layers = 1000000, but DIR has no tensor "
         "model.layers.999999.input_layernorm.weight (it holds 2 layers)"},
        {"hidden_size=1073741824",
         "DIR/model.safetensors: tensor model.embed_tokens.weight: shape [1027, 64], expected [1027, 1073741824] = "
         "[vocab_size, hidden_size] from DIR/config.json"},
        {"intermediate_size=2147483647",
         "tensor model.layers.0.mlp.gate_proj.weight: shape [160, 64], expected [2147483647, 64] = "
         "[intermediate_size, hidden_size] from DIR/config.json"},
        {"vocab_size=5000", "expected [5000, 64] = [vocab_size, hidden_size]"},
        {"num_attention_heads=2147483647;num_key_value_heads=1;head_dim=2147483646",
         "DIR/model.safetensors: tensor model.layers.0.self_attn.q_proj.weight: shape [64, 64], expected "
         "[4611686011984936962, 64] = [num_attention_heads * head_dim, hidden_size] from DIR/config.json"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *dir = model_with_config(cases[i].edit);
        if (!dir) SKIP("shared fixtures not found (set ALOE_SHARED)");
        CHECK_MSG(check_refused(dir, cases[i].want), "case %s", cases[i].edit);
        free(dir);
    }
}

static void test_config_values_checked(void) {
    static const struct {
        const char *edit, *want;
    } cases[] = {
        {"rope_parameters.rope_theta=-1",
         "DIR/config.json: field \"rope_parameters.rope_theta\" = -1 must be a positive finite number"},
        {"rope_parameters.rope_theta=0", "field \"rope_parameters.rope_theta\" = 0 must be a positive finite number"},
        {"rope_parameters=null;rope_theta=-5", "DIR/config.json: field \"rope_theta\" = -5 must be a positive"},
        {"rms_norm_eps=0", "DIR/config.json: field \"rms_norm_eps\" = 0 must be a positive finite number"},
        {"rms_norm_eps=-1e-6", "field \"rms_norm_eps\" = -1e-06 must be a positive finite number"},
        /* underflows to 0 as a float */
        {"rms_norm_eps=1e-300", "field \"rms_norm_eps\" = 1e-300 must be a positive finite number"},
        {"rms_norm_eps=\"small\"", "DIR/config.json: field \"rms_norm_eps\" must be a number"},
        {"model_type=5;architectures=DELETE", "DIR/config.json: field \"model_type\" must be a string, got a number"},
        {"architectures=\"Qwen2ForCausalLM\"", "DIR/config.json: field \"architectures\" must be a list"},
        {"dtype=DELETE;torch_dtype=16",
         "DIR/config.json: field \"torch_dtype\" must be a string (float32, float16 or bfloat16)"},
        {"dtype=\"int4\"", "DIR/config.json: field \"dtype\" = \"int4\" (expected float32, float16 or bfloat16)"},
        {"rope_parameters={\"rope_type\":\"llama3\",\"rope_theta\":10000,\"factor\":0}",
         "field \"rope_parameters.factor\" = 0 must be a positive finite number"},
        {"rope_parameters={\"rope_type\":\"llama3\",\"rope_theta\":10000,\"low_freq_factor\":4,\"high_freq_factor\":1}",
         "rope_parameters.high_freq_factor (1) must be larger than rope_parameters.low_freq_factor (4)"},
        {"rope_parameters=7", "DIR/config.json: \"rope_parameters\" must be an object or null"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *dir = model_with_config(cases[i].edit);
        if (!dir) SKIP("shared fixtures not found (set ALOE_SHARED)");
        CHECK_MSG(check_refused(dir, cases[i].want), "case %s", cases[i].edit);
        free(dir);
    }
    /* the fixture itself still loads */
    char *dir = model_with_config("use_cache=true");
    Err e;
    Model *m = model_load(dir, 1, &e);
    CHECK_MSG(m != NULL, "%s", e.msg);
    model_free(m);
    free(dir);
}

/* The BERT encoder: the same checks through `aloe embed`. */
static void test_bert_config_checked(void) {
    static const struct {
        const char *edit, *want;
    } cases[] = {
        {"num_hidden_layers=1000000",
         "DIR/config.json: num_hidden_layers = 1000000, but DIR/model.safetensors has no tensor "
         "encoder.layer.999999.output.LayerNorm.bias"},
        {"layer_norm_eps=0", "DIR/config.json: field \"layer_norm_eps\" = 0 must be a positive finite number"},
        {"intermediate_size=1073741824",
         "DIR/model.safetensors: tensor encoder.layer.0.intermediate.dense.weight: shape [128, 64], expected "
         "[1073741824, 64]"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *dir = fixture_with_config("tiny-bert-st", cases[i].edit);
        if (!dir) SKIP("shared fixtures not found (set ALOE_SHARED)");
        char want[1024];
        size_t k = 0;
        for (const char *p = cases[i].want; *p && k + strlen(dir) + 2 < sizeof want;) {
            if (!strncmp(p, "DIR", 3)) k += (size_t)snprintf(want + k, sizeof want - k, "%s", dir), p += 3;
            else want[k++] = *p++;
        }
        want[k] = 0;
        char *aloe = test_build_path("aloe"), *err = path_join(dir, "err"), *text = NULL;
        int rc = test_system("%s embed -m %s hello >/dev/null 2>%s", aloe, dir, err);
        size_t len;
        Err e;
        CHECK_EQ_INT(rc, 1);
        CHECK_OK(file_read_all(err, &text, &len, &e), &e);
        CHECK_MSG(strstr(text, want), "case %s: \"%s\" lacks \"%s\"", cases[i].edit, text, want);
        free(text), free(err), free(aloe), free(dir);
    }
}

/* ---- GGUF metadata ---- */

static const char *skip_tensor; /* gguf_with leaves this tensor out */

/* A GGUF decoder model from the tiny-qwen2 f32 fixture's tensors and keys,
 * with `key` replaced by an f32 or u32 value. */
static char *gguf_with(const char *key, int is_float, double value) {
    char *src = test_shared_path("fixtures/gguf/tiny-qwen2-f32.gguf");
    if (!src) return NULL;
    Err e;
    Gguf *g = gguf_open(src, &e);
    if (!g) abort();
    GgufWriter *w = gguf_writer_new();
    for (int i = 0; i < gguf_n_kv(g); i++)
        if (strcmp(gguf_kv(g, i)->key, "general.alignment")) gguf_set_kv(w, gguf_kv(g, i));
    if (is_float) gguf_set_f32(w, key, (float)value);
    else gguf_set_u32(w, key, (uint32_t)value);
    for (int i = 0; i < gguf_n_tensors(g); i++)
        if ((!skip_tensor || strcmp(gguf_tensor(g, i)->name, skip_tensor)) &&
            gguf_writer_add_tensor(w, gguf_tensor(g, i), &e))
            abort();
    char *dir = test_tmpdir(), *out = path_join(dir, "m.gguf");
    if (gguf_writer_write(w, out, &e)) abort();
    gguf_writer_free(w);
    gguf_close(g);
    free(src), free(dir);
    return out;
}

static void test_gguf_metadata_checked(void) {
    static const struct {
        const char *key;
        int is_float;
        double value;
        const char *want;
    } cases[] = {
        {"qwen2.rope.freq_base", 1, -10000, "metadata qwen2.rope.freq_base = -10000 must be a positive finite number"},
        {"qwen2.rope.freq_base", 1, NAN, "metadata qwen2.rope.freq_base = nan must be a positive finite number"},
        {"qwen2.attention.layer_norm_rms_epsilon", 1, 0,
         "metadata qwen2.attention.layer_norm_rms_epsilon = 0 must be a positive finite number"},
        {"qwen2.attention.layer_norm_rms_epsilon", 1, INFINITY,
         "metadata qwen2.attention.layer_norm_rms_epsilon = inf must be a positive finite number"},
        {"qwen2.block_count", 0, 1000000,
         "metadata qwen2.block_count = 1000000, but there is no tensor blk.999999.attn_norm.weight (the file holds 2 "
         "blocks)"},
        {"qwen2.embedding_length", 0, 1u << 30, "tensor token_embd.weight: shape [1027, 64], expected [1027, 1073741824]"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        char *path = gguf_with(cases[i].key, cases[i].is_float, cases[i].value);
        if (!path) SKIP("shared fixtures not found (set ALOE_SHARED)");
        char want[512];
        snprintf(want, sizeof want, "%s: %s", path, cases[i].want);
        Err e;
        Model *m = model_load(path, 1, &e);
        CHECK_MSG(m == NULL, "case %s: loaded", cases[i].key);
        CHECK_MSG(strstr(e.msg, want), "case %s: \"%s\" lacks \"%s\"", cases[i].key, e.msg, want);
        char *aloe = test_build_path("aloe");
        int rc = test_system("%s logits -m %s --ids 1,2 -o %s.st 2>/dev/null", aloe, path, path);
        CHECK_EQ_INT(rc, 1);
        free(aloe);
        free(path);
    }
}

/* A tensor the config implies is missing: named once with the file (the
 * loader used to put the path in front of the reader's message again). */
static void test_gguf_missing_tensor(void) {
    skip_tensor = "blk.1.ffn_up.weight";
    char *path = gguf_with("qwen2.context_length", 0, 256);
    skip_tensor = NULL;
    if (!path) SKIP("shared fixtures not found (set ALOE_SHARED)");
    char want[512];
    snprintf(want, sizeof want, "%s: no tensor blk.1.ffn_up.weight", path);
    Err e;
    CHECK(model_load(path, 1, &e) == NULL);
    CHECK_EQ_STR(e.msg, want);
    free(path);
}

/* A GGUF string holding a NUL would be cut short silently by the
 * NUL-terminated copy every reader gets. */
static void test_gguf_string_with_nul(void) {
    GgufWriter *w = gguf_writer_new();
    GgufStr s = {"abc\0def", 7};
    GgufKV kv = {.key = "general.name", .type = GGUF_STRING, .n = 1, .str = (char *)s.s, .str_len = s.len};
    gguf_set_kv(w, &kv);
    char *dir = test_tmpdir(), *out = path_join(dir, "nul.gguf");
    Err e;
    CHECK_OK(gguf_writer_write(w, out, &e), &e);
    gguf_writer_free(w);
    Gguf *g = gguf_open(out, &e);
    CHECK_MSG(g != NULL, "%s", e.msg);
    const char *v;
    CHECK(gguf_get_str(g, "general.name", &v, &e) == -1);
    CHECK_HAS(e.msg, "nul.gguf: metadata general.name holds a NUL byte at offset 3");
    gguf_close(g);
    free(out), free(dir);
}

int main(void) {
    RUN(test_gguf_numel_overflow_finding);
    RUN(test_gguf_overlapping_tensors);
    RUN(test_safetensors_layout);
    RUN(test_config_sizes_checked_before_allocation);
    RUN(test_config_values_checked);
    RUN(test_bert_config_checked);
    RUN(test_gguf_metadata_checked);
    RUN(test_gguf_missing_tensor);
    RUN(test_gguf_string_with_nul);
    return test_summary();
}
