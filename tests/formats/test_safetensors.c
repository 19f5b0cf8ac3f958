#include <dirent.h>
#include <stdint.h>
#include <stdlib.h>

#include "base/fileio.h"
#include "base/mem.h"
#include "base/rng.h"
#include "formats/hfdir.h"
#include "formats/safetensors.h"
#include "test.h"

typedef struct Fixture {
    const char *dir;
    int n_tensors;
    const char *embed; /* embedding tensor name */
    int64_t vocab, hidden;
} Fixture;

static const Fixture FIXTURES[] = {
    {"tiny-llama3", 21, "model.embed_tokens.weight", 1029, 64},
    {"tiny-qwen2", 26, "model.embed_tokens.weight", 1027, 64},
    {"tiny-mistral", 30, "model.embed_tokens.weight", 1027, 96},
    {"tiny-qwen3", 24, "model.embed_tokens.weight", 1027, 64},
    {"tiny-bert-st", 39, "embeddings.word_embeddings.weight", 5, 64},
};

static void test_fixture_models(void) {
    char *root = test_shared_path("fixtures/models");
    if (!root) SKIP("shared fixtures not found (set ALOE_SHARED)");
    for (size_t i = 0; i < sizeof FIXTURES / sizeof FIXTURES[0]; i++) {
        const Fixture *f = &FIXTURES[i];
        char *dir = path_join(root, f->dir);
        Err e;
        SafeTensors *st = st_open(dir, &e);
        CHECK_MSG(st != NULL, "%s: %s", f->dir, e.msg);
        CHECK_EQ_INT(st_count(st), f->n_tensors);
        CHECK_EQ_STR(st_metadata(st, "format"), "pt");
        const TensorView *emb = st_get(st, f->embed, &e);
        CHECK_MSG(emb != NULL, "%s", e.msg);
        CHECK_OK(tensor_check_shape(emb, 2, (int64_t[]){f->vocab, f->hidden}, &e), &e);
        CHECK_EQ_INT(emb->dtype, DT_F32);
        CHECK_EQ_INT(emb->nbytes, f->vocab * f->hidden * 4);
        /* every tensor's bytes lie inside the file and sorting by name holds */
        for (int k = 1; k < st_count(st); k++) CHECK(strcmp(st_tensor(st, k - 1)->name, st_tensor(st, k)->name) < 0);
        CHECK(st_find(st, "no.such.tensor") == NULL);
        CHECK(st_get(st, "no.such.tensor", &e) == NULL);
        CHECK_MSG(strstr(e.msg, "no tensor no.such.tensor"), "%s", e.msg);
        st_close(st);
        free(dir);
    }
    free(root);
}

/* Every decoder fixture (and its -ref copy) has exactly the tensors its
 * config.json implies, with the implied shapes. */
static int expect_shape(const SafeTensors *st, const char *name, int64_t d0, int64_t d1, int *count) {
    const TensorView *t = st_find(st, name);
    if (!t) {
        test_fail(__FILE__, __LINE__, "%s: missing %s", st_path(st), name);
        return -1;
    }
    int64_t want[2] = {d0, d1};
    Err e;
    if (tensor_check_shape(t, d1 ? 2 : 1, want, &e)) {
        test_fail(__FILE__, __LINE__, "%s", e.msg);
        return -1;
    }
    ++*count;
    return 0;
}

static void test_fixture_shapes_follow_config(void) {
    const char *models[] = {"tiny-llama3", "tiny-qwen2", "tiny-mistral", "tiny-qwen3",
                            "tiny-llama3-ref", "tiny-qwen2-ref", "tiny-mistral-ref", "tiny-qwen3-ref"};
    for (int m = 0; m < 8; m++) {
        char *rel = xasprintf("fixtures/models/%s", models[m]);
        char *dir = test_shared_path(rel);
        free(rel);
        if (!dir) SKIP("shared fixtures not found (set ALOE_SHARED)");
        ModelConfig c;
        Err e;
        CHECK_OK(hf_config_load(dir, &c, &e), &e);
        SafeTensors *st = st_open(dir, &e);
        CHECK_MSG(st != NULL, "%s", e.msg);
        int n = 0, H = c.hidden_size, hd = c.head_dim, I = c.intermediate_size;
        if (expect_shape(st, "model.embed_tokens.weight", c.vocab_size, H, &n) ||
            expect_shape(st, "model.norm.weight", H, 0, &n))
            return;
        if (!c.tie_word_embeddings && expect_shape(st, "lm_head.weight", c.vocab_size, H, &n)) return;
        for (int l = 0; l < c.n_layers; l++) {
            char b[128];
#define L(s) (snprintf(b, sizeof b, "model.layers.%d.%s", l, s), b)
            if (expect_shape(st, L("input_layernorm.weight"), H, 0, &n) ||
                expect_shape(st, L("post_attention_layernorm.weight"), H, 0, &n) ||
                expect_shape(st, L("self_attn.q_proj.weight"), c.n_heads * hd, H, &n) ||
                expect_shape(st, L("self_attn.k_proj.weight"), c.n_kv_heads * hd, H, &n) ||
                expect_shape(st, L("self_attn.v_proj.weight"), c.n_kv_heads * hd, H, &n) ||
                expect_shape(st, L("self_attn.o_proj.weight"), H, c.n_heads * hd, &n) ||
                expect_shape(st, L("mlp.gate_proj.weight"), I, H, &n) || expect_shape(st, L("mlp.up_proj.weight"), I, H, &n) ||
                expect_shape(st, L("mlp.down_proj.weight"), H, I, &n))
                return;
            if (c.attention_bias &&
                (expect_shape(st, L("self_attn.q_proj.bias"), c.n_heads * hd, 0, &n) ||
                 expect_shape(st, L("self_attn.k_proj.bias"), c.n_kv_heads * hd, 0, &n) ||
                 expect_shape(st, L("self_attn.v_proj.bias"), c.n_kv_heads * hd, 0, &n)))
                return;
            if (c.qk_norm && (expect_shape(st, L("self_attn.q_norm.weight"), hd, 0, &n) ||
                              expect_shape(st, L("self_attn.k_norm.weight"), hd, 0, &n)))
                return;
#undef L
        }
        CHECK_MSG(n == st_count(st), "%s: %d tensors expected, %d present", models[m], n, st_count(st));
        st_close(st);
        free(dir);
    }
}

/* The peft adapters are plain safetensors too. */
static void test_fixture_lora_adapters(void) {
    const char *models[] = {"tiny-llama3-lora", "tiny-qwen2-lora", "tiny-mistral-lora", "tiny-qwen3-lora"};
    for (int m = 0; m < 4; m++) {
        char *rel = xasprintf("fixtures/models/%s/adapter_model.safetensors", models[m]);
        char *p = test_shared_path(rel);
        free(rel);
        if (!p) SKIP("shared fixtures not found (set ALOE_SHARED)");
        Err e;
        SafeTensors *st = st_open(p, &e);
        CHECK_MSG(st != NULL, "%s", e.msg);
        CHECK(st_count(st) > 0);
        int a = 0, b = 0;
        for (int i = 0; i < st_count(st); i++) {
            const TensorView *t = st_tensor(st, i);
            CHECK_EQ_INT(t->ndim, 2);
            if (strstr(t->name, "lora_A")) {
                a++;
                CHECK_EQ_INT(t->shape[0], 4); /* r = 4 */
            }
            if (strstr(t->name, "lora_B")) {
                b++;
                CHECK_EQ_INT(t->shape[1], 4);
            }
        }
        CHECK(a > 0 && a == b && a + b == st_count(st));
        st_close(st);
        free(p);
    }
}

static void test_fixture_expected_files(void) {
    const char *models[] = {"tiny-llama3", "tiny-qwen2", "tiny-mistral", "tiny-qwen3"};
    const int64_t vocab[] = {1029, 1027, 1027, 1027};
    for (int i = 0; i < 4; i++) {
        char *rel = xasprintf("fixtures/models/%s/expected.safetensors", models[i]);
        char *p = test_shared_path(rel);
        free(rel);
        if (!p) SKIP("shared fixtures not found (set ALOE_SHARED)");
        Err e;
        SafeTensors *st = st_open(p, &e);
        CHECK_MSG(st != NULL, "%s", e.msg);
        const TensorView *l = st_get(st, "forward.logits", &e);
        CHECK_MSG(l != NULL, "%s", e.msg);
        CHECK_EQ_INT(l->ndim, 3);
        CHECK_EQ_INT(l->shape[0], 2);
        CHECK_EQ_INT(l->shape[2], vocab[i]);
        float v;
        memcpy(&v, l->data, 4);
        CHECK(isfinite(v));
        st_close(st);
        free(p);
    }
}

static void test_write_read_back(void) {
    char *dir = test_tmpdir();
    char *p = path_join(dir, "out.safetensors");
    float f32[6] = {1, -2, 3.5f, 0, 1e-8f, -1e8f};
    uint16_t f16[3], bf16[5];
    for (int i = 0; i < 3; i++) f16[i] = f32_to_f16(f32[i]);
    for (int i = 0; i < 5; i++) bf16[i] = f32_to_bf16(f32[i]);
    int64_t i64[2] = {-1, (int64_t)1 << 40};
    TensorView t[] = {
        {.name = "half", .dtype = DT_F16, .ndim = 1, .shape = {3}, .data = f16, .nbytes = 6},
        {.name = "w", .dtype = DT_F32, .ndim = 2, .shape = {2, 3}, .data = f32, .nbytes = 24},
        {.name = "b", .dtype = DT_BF16, .ndim = 1, .shape = {5}, .data = bf16, .nbytes = 10},
        {.name = "ids", .dtype = DT_I64, .ndim = 1, .shape = {2}, .data = i64, .nbytes = 16},
        {.name = "scalar", .dtype = DT_F32, .ndim = 0, .shape = {1}, .data = f32, .nbytes = 4},
    };
    const char *meta[] = {"format", "pt", "note", "written by aloe", NULL};
    Err e;
    CHECK_OK(st_write(p, t, 5, meta, &e), &e);
    SafeTensors *st = st_open(p, &e);
    CHECK_MSG(st != NULL, "%s", e.msg);
    CHECK_EQ_INT(st_count(st), 5);
    CHECK_EQ_STR(st_metadata(st, "note"), "written by aloe");
    for (int i = 0; i < 5; i++) {
        const TensorView *r = st_find(st, t[i].name);
        CHECK(r != NULL);
        CHECK_EQ_INT(r->dtype, t[i].dtype);
        CHECK_EQ_INT(r->ndim, t[i].ndim);
        for (int d = 0; d < t[i].ndim; d++) CHECK_EQ_INT(r->shape[d], t[i].shape[d]);
        CHECK_EQ_INT(r->nbytes, t[i].nbytes);
        CHECK(memcmp(r->data, t[i].data, t[i].nbytes) == 0);
        /* aligned to the element size: the writer orders data by it */
        CHECK_EQ_INT((uintptr_t)r->data % dtype_block_bytes(r->dtype), 0);
    }
    st_close(st);
    /* rewriting replaces the file and leaves no temporary behind */
    CHECK_OK(st_write(p, t + 1, 1, NULL, &e), &e);
    st = st_open(p, &e);
    CHECK(st != NULL);
    CHECK_EQ_INT(st_count(st), 1);
    CHECK(st_metadata(st, "format") == NULL);
    st_close(st);
    DIR *d = opendir(dir);
    int files = 0;
    for (struct dirent *de; (de = readdir(d));) files += de->d_name[0] != '.';
    closedir(d);
    CHECK_EQ_INT(files, 1);
    /* bad input to the writer */
    TensorView dup[2] = {t[1], t[1]};
    CHECK(st_write(p, dup, 2, NULL, &e) == -1);
    CHECK_MSG(strstr(e.msg, "tensor w given twice"), "%s", e.msg);
    TensorView q = t[1];
    q.dtype = DT_Q8_0;
    CHECK(st_write(p, &q, 1, NULL, &e) == -1);
    CHECK_MSG(strstr(e.msg, "q8_0 cannot be stored"), "%s", e.msg);
    free(p);
    free(dir);
}

/* Writes a raw file: 8-byte length, header text, then data bytes. */
static char *raw_file(const char *dir, const char *name, const char *header, size_t data_len) {
    char *p = path_join(dir, name);
    size_t hl = strlen(header), n = 8 + hl + data_len;
    uint8_t *buf = xcalloc(1, n);
    for (int i = 0; i < 8; i++) buf[i] = (uint8_t)((uint64_t)hl >> (8 * i));
    memcpy(buf + 8, header, hl);
    Err e;
    file_write_atomic(p, buf, n, &e);
    free(buf);
    return p;
}

static void expect_error(const char *dir, const char *header, size_t data_len, const char *msg) {
    char *p = raw_file(dir, "bad.safetensors", header, data_len);
    Err e;
    SafeTensors *st = st_open(p, &e);
    if (st) {
        st_close(st);
        test_fail(__FILE__, __LINE__, "opened a corrupt file: %s", header);
    } else if (!strstr(e.msg, msg)) {
        test_fail(__FILE__, __LINE__, "message \"%s\" lacks \"%s\"", e.msg, msg);
    }
    free(p);
}

static void test_corrupt_headers(void) {
    char *dir = test_tmpdir();
    expect_error(dir, "{\"w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}", 8, "header JSON");
    expect_error(dir, "{\"w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,16]}}", 8,
                 "tensor w: data_offsets [0, 16] outside the 8 data bytes");
    expect_error(dir, "{\"w\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,8]}}", 8,
                 "tensor w: 8 bytes for 3 elements of F32");
    expect_error(dir, "{\"w\":{\"dtype\":\"F8_E9\",\"shape\":[2],\"data_offsets\":[0,8]}}", 8,
                 "tensor w: unsupported dtype F8_E9");
    expect_error(dir, "{\"w\":{\"dtype\":\"F32\",\"shape\":[1,1,1,1,2],\"data_offsets\":[0,8]}}", 8,
                 "tensor w: 5 dimensions");
    expect_error(dir, "{\"w\":{\"dtype\":\"F32\",\"shape\":[-2],\"data_offsets\":[0,8]}}", 8, "tensor w: shape[0]");
    expect_error(dir, "{\"w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8,0]}}", 8, "tensor w: data_offsets");
    expect_error(dir, "{\"w\":{\"dtype\":\"F32\",\"shape\":[2]}}", 8, "tensor w: \"data_offsets\"");
    expect_error(dir, "{\"__metadata__\":{\"a\":1}}", 0, "__metadata__.a must be a string");
    expect_error(dir,
                 "{\"w\":{\"dtype\":\"F32\",\"shape\":[1099511627776,1099511627776,1099511627776,16],"
                 "\"data_offsets\":[0,8]}}",
                 8, "tensor w: shape overflows");
    expect_error(dir, "[]", 0, "header must be a JSON object");
    /* a length prefix larger than the file */
    char *p = path_join(dir, "short.safetensors");
    uint8_t big[12] = {0xff, 0xff, 0, 0, 0, 0, 0, 0, '{', '}', ' ', ' '};
    Err e;
    file_write_atomic(p, big, sizeof big, &e);
    CHECK(st_open(p, &e) == NULL);
    CHECK_MSG(strstr(e.msg, "header length 65535 exceeds the file"), "%s", e.msg);
    file_write_atomic(p, big, 3, &e);
    CHECK(st_open(p, &e) == NULL);
    CHECK_MSG(strstr(e.msg, "too short"), "%s", e.msg);
    free(p);
    free(dir);
}

/* Every truncation and random header damage of a valid file is either
 * rejected or yields views that stay inside the file. */
static void test_truncation_and_damage_never_crash(void) {
    char *dir = test_tmpdir();
    char *p = path_join(dir, "ok.safetensors"), *q = path_join(dir, "cut.safetensors");
    float w[64];
    for (int i = 0; i < 64; i++) w[i] = (float)i;
    TensorView t[2] = {{.name = "a", .dtype = DT_F32, .ndim = 2, .shape = {8, 4}, .data = w, .nbytes = 128},
                       {.name = "b", .dtype = DT_F16, .ndim = 1, .shape = {64}, .data = w, .nbytes = 128}};
    Err e;
    CHECK_OK(st_write(p, t, 2, NULL, &e), &e);
    char *buf;
    size_t len;
    CHECK_OK(file_read_all(p, &buf, &len, &e), &e);
    for (size_t cut = 0; cut < len; cut += 3) {
        file_write_atomic(q, buf, cut, &e);
        SafeTensors *st = st_open(q, &e);
        CHECK_MSG(st == NULL, "truncated at %zu but opened", cut);
    }
    Rng r;
    rng_seed(&r, 5);
    uint64_t hl = 0;
    for (int i = 7; i >= 0; i--) hl = hl << 8 | (uint8_t)buf[i];
    for (int trial = 0; trial < 300; trial++) {
        char *d = xmalloc(len);
        memcpy(d, buf, len);
        for (int k = 0; k < 3; k++) d[8 + rng_below(&r, hl)] = (char)("0123456789[],:\"{} -x"[rng_below(&r, 20)]);
        file_write_atomic(q, d, len, &e);
        SafeTensors *st = st_open(q, &e);
        if (st) {
            for (int i = 0; i < st_count(st); i++) {
                const TensorView *v = st_tensor(st, i);
                CHECK(v->nbytes <= len);
                /* touch every byte: a view outside the map would fault */
                unsigned sum = 0;
                for (size_t k = 0; k < v->nbytes; k++) sum += ((const uint8_t *)v->data)[k];
                (void)sum;
            }
            st_close(st);
        }
        free(d);
    }
    free(buf);
    free(p);
    free(q);
    free(dir);
}

static void test_sharded(void) {
    char *dir = test_tmpdir();
    float a[4] = {1, 2, 3, 4}, b[2] = {5, 6}, c[3] = {7, 8, 9};
    TensorView s1[2] = {{.name = "layer.0.w", .dtype = DT_F32, .ndim = 2, .shape = {2, 2}, .data = a, .nbytes = 16},
                        {.name = "layer.0.b", .dtype = DT_F32, .ndim = 1, .shape = {2}, .data = b, .nbytes = 8}};
    TensorView s2[1] = {{.name = "head.w", .dtype = DT_F32, .ndim = 1, .shape = {3}, .data = c, .nbytes = 12}};
    char *p1 = path_join(dir, "model-00001-of-00002.safetensors");
    char *p2 = path_join(dir, "model-00002-of-00002.safetensors");
    char *idx = path_join(dir, "model.safetensors.index.json");
    const char *meta[] = {"format", "pt", NULL};
    Err e;
    CHECK_OK(st_write(p1, s1, 2, meta, &e), &e);
    CHECK_OK(st_write(p2, s2, 1, meta, &e), &e);
    const char *names[] = {"layer.0.w", "layer.0.b", "head.w"};
    const char *shards[] = {"model-00001-of-00002.safetensors", "model-00001-of-00002.safetensors",
                            "model-00002-of-00002.safetensors"};
    CHECK_OK(st_write_index(idx, names, shards, 3, 36, &e), &e);
    const char *opens[2] = {dir, idx};
    for (int k = 0; k < 2; k++) {
        SafeTensors *st = st_open(opens[k], &e);
        CHECK_MSG(st != NULL, "%s", e.msg);
        CHECK_EQ_INT(st_count(st), 3);
        const TensorView *h = st_find(st, "head.w"), *w = st_find(st, "layer.0.w");
        CHECK(h && w);
        CHECK(((const float *)h->data)[2] == 9);
        CHECK(((const float *)w->data)[3] == 4);
        CHECK_EQ_STR(st_metadata(st, "format"), "pt");
        st_close(st);
    }
    /* an index that puts a tensor in the wrong shard */
    shards[2] = "model-00001-of-00002.safetensors";
    CHECK_OK(st_write_index(idx, names, shards, 3, 36, &e), &e);
    CHECK(st_open(dir, &e) == NULL);
    CHECK_MSG(strstr(e.msg, "tensor head.w is not in its shard model-00001-of-00002.safetensors"), "%s", e.msg);
    /* an index naming a missing shard */
    shards[2] = "model-00003-of-00002.safetensors";
    CHECK_OK(st_write_index(idx, names, shards, 3, 36, &e), &e);
    CHECK(st_open(dir, &e) == NULL);
    CHECK_MSG(strstr(e.msg, "model-00003-of-00002.safetensors"), "%s", e.msg);
    /* a path-escaping shard name */
    shards[2] = "../x.safetensors";
    CHECK_OK(st_write_index(idx, names, shards, 3, 36, &e), &e);
    CHECK(st_open(dir, &e) == NULL);
    CHECK_MSG(strstr(e.msg, "weight_map.head.w must be a shard file name"), "%s", e.msg);
    free(p1);
    free(p2);
    free(idx);
    free(dir);
}

/* A fixture model rewritten with st_write_model in small shards reads back
 * identically, and rewriting it whole replaces the sharded layout. */
static void test_write_model_sharded_and_whole(void) {
    char *src = test_shared_path("fixtures/models/tiny-qwen3");
    if (!src) SKIP("shared fixtures not found (set ALOE_SHARED)");
    Err e;
    SafeTensors *a = st_open(src, &e);
    CHECK_MSG(a != NULL, "%s", e.msg);
    int n = st_count(a);
    TensorView *t = xmalloc((size_t)n * sizeof(TensorView));
    for (int i = 0; i < n; i++) t[i] = *st_tensor(a, i);
    char *dir = test_tmpdir();
    const char *meta[] = {"format", "pt", NULL};
    CHECK_OK(st_write_model(dir, t, n, meta, 100000, &e), &e);
    char *idx = path_join(dir, "model.safetensors.index.json"), *one = path_join(dir, "model.safetensors");
    CHECK(file_exists(idx) && !file_exists(one));
    /* several shards, each at most the limit unless one tensor is larger */
    int shards = 0;
    DIR *d = opendir(dir);
    for (struct dirent *de; (de = readdir(d));) {
        if (strncmp(de->d_name, "model-000", 9)) continue;
        shards++;
        char *p = path_join(dir, de->d_name);
        SafeTensors *s1 = st_open(p, &e);
        CHECK_MSG(s1 != NULL, "%s", e.msg);
        size_t bytes = 0;
        for (int i = 0; i < st_count(s1); i++) bytes += st_tensor(s1, i)->nbytes;
        CHECK_MSG(bytes <= 100000 || st_count(s1) == 1, "%s holds %zu bytes", de->d_name, bytes);
        st_close(s1);
        free(p);
    }
    closedir(d);
    CHECK_MSG(shards >= 5, "%d shards", shards);
    for (int pass = 0; pass < 2; pass++) {
        SafeTensors *b = st_open(dir, &e);
        CHECK_MSG(b != NULL, "%s", e.msg);
        CHECK_EQ_INT(st_count(b), n);
        for (int i = 0; i < n; i++) {
            const TensorView *x = st_find(b, t[i].name);
            CHECK(x && x->nbytes == t[i].nbytes && !memcmp(x->data, t[i].data, x->nbytes));
        }
        CHECK_EQ_STR(st_metadata(b, "format"), "pt");
        st_close(b);
        if (pass == 0) {
            CHECK_OK(st_write_model(dir, t, n, meta, 0, &e), &e);
            CHECK(!file_exists(idx) && file_exists(one));
        }
    }
    free(idx);
    free(one);
    free(t);
    st_close(a);
    free(dir);
    free(src);
}

static void test_missing(void) {
    char *dir = test_tmpdir();
    Err e;
    CHECK(st_open(dir, &e) == NULL);
    CHECK_MSG(strstr(e.msg, "no model.safetensors or model.safetensors.index.json"), "%s", e.msg);
    CHECK_EQ_INT(e.code, ERR_NOTFOUND);
    char *p = path_join(dir, "nope.safetensors");
    CHECK(st_open(p, &e) == NULL);
    free(p);
    free(dir);
}

int main(void) {
    RUN(test_fixture_models);
    RUN(test_fixture_shapes_follow_config);
    RUN(test_fixture_lora_adapters);
    RUN(test_fixture_expected_files);
    RUN(test_write_read_back);
    RUN(test_corrupt_headers);
    RUN(test_truncation_and_damage_never_crash);
    RUN(test_sharded);
    RUN(test_write_model_sharded_and_whole);
    RUN(test_missing);
    return test_summary();
}
