/* Sentence embeddings: the tiny-bert-st fixture (ids, embeddings, cosine
 * matrix from sentence-transformers), the fast path against the naive
 * padded reference on random weights, pooling modes, concurrency, and the
 * errors a broken model directory gets. */
#include <jansson.h>
#include <pthread.h>
#include <stdlib.h>

#include "base/fileio.h"
#include "base/log.h"
#include "base/mem.h"
#include "base/rng.h"
#include "formats/safetensors.h"
#include "kernels/encoder_ops.h"
#include "model/encoder.h"
#include "model/encoder_internal.h"
#include "test.h"

#define FIXTURE "fixtures/models/tiny-bert-st"

static double cosine(const float *a, const float *b, int n) {
    double ab = 0, aa = 0, bb = 0;
    for (int i = 0; i < n; i++) ab += (double)a[i] * b[i], aa += (double)a[i] * a[i], bb += (double)b[i] * b[i];
    return ab / sqrt(aa * bb);
}

static double max_abs_diff(const float *a, const float *b, size_t n) {
    double m = 0;
    for (size_t i = 0; i < n; i++)
        if (fabs((double)a[i] - b[i]) > m) m = fabs((double)a[i] - b[i]);
    return m;
}

/* The fixture's sentences and input_ids. */
typedef struct Expected {
    json_t *root;
    int n;
    const char *text[8];
    int32_t *ids[8];
    int lens[8];
} Expected;

static int expected_load(const char *dir, Expected *x) {
    memset(x, 0, sizeof *x);
    char *path = path_join(dir, "expected.json");
    x->root = json_load_file(path, 0, NULL);
    free(path);
    json_t *sents = json_object_get(x->root, "sentences"), *ids = json_object_get(x->root, "input_ids");
    if (!json_is_array(sents) || json_array_size(sents) > 8 || json_array_size(ids) != json_array_size(sents))
        return -1;
    x->n = (int)json_array_size(sents);
    for (int i = 0; i < x->n; i++) {
        x->text[i] = json_string_value(json_array_get(sents, i));
        json_t *row = json_array_get(ids, i);
        x->lens[i] = (int)json_array_size(row);
        x->ids[i] = xmalloc((size_t)x->lens[i] * sizeof(int32_t));
        for (int j = 0; j < x->lens[i]; j++) x->ids[i][j] = (int32_t)json_integer_value(json_array_get(row, j));
    }
    return 0;
}

static void expected_free(Expected *x) {
    for (int i = 0; i < x->n; i++) free(x->ids[i]);
    json_decref(x->root);
}

static void test_fixture_config(void) {
    NEED_SHARED(dir, FIXTURE);
    Err e;
    Encoder *enc = encoder_load(dir, &e);
    CHECK_MSG(enc, "%s", e.msg);
    const EncoderConfig *c = encoder_config(enc);
    CHECK_EQ_INT(c->hidden, 64);
    CHECK_EQ_INT(c->n_layers, 2);
    CHECK_EQ_INT(c->n_heads, 4);
    CHECK_EQ_INT(c->intermediate, 128);
    CHECK_EQ_INT(c->pooling, ENC_POOL_MEAN);
    CHECK_EQ_INT(c->normalize, 1);
    /* no max_seq_length in sentence_bert_config.json: tokenizer_config's 64 < 128 positions */
    CHECK_EQ_INT(c->max_seq_len, 64);
    CHECK_NEAR(c->eps, 1e-12, 1e-15);
    encoder_free(enc);
    CHECK(encoder_is_model_dir(dir));
    char *llama = test_shared_path("fixtures/models/tiny-llama3");
    if (llama) CHECK(!encoder_is_model_dir(llama));
    free(llama);
    CHECK(!encoder_is_model_dir("/nonexistent"));
    free(dir);
}

static void test_fixture_ids(void) {
    NEED_SHARED(dir, FIXTURE);
    Err e;
    Expected x;
    CHECK(expected_load(dir, &x) == 0);
    Encoder *enc = encoder_load(dir, &e);
    CHECK_MSG(enc, "%s", e.msg);
    for (int i = 0; i < x.n; i++) {
        int32_t *ids;
        int n;
        CHECK_OK(encoder_tokenize(enc, x.text[i], &ids, &n, &e), &e);
        CHECK_EQ_INT(n, x.lens[i]);
        for (int j = 0; j < n; j++) CHECK_MSG(ids[j] == x.ids[i][j], "sentence %d token %d", i, j);
        free(ids);
    }
    /* truncation keeps [CLS] first and [SEP] last */
    StrBuf long_text;
    sb_init(&long_text);
    for (int i = 0; i < 200; i++) sb_append(&long_text, "word ");
    int32_t *ids;
    int n;
    CHECK_OK(encoder_tokenize(enc, long_text.s, &ids, &n, &e), &e);
    CHECK_EQ_INT(n, 64);
    CHECK_EQ_INT(ids[0], 2);
    CHECK_EQ_INT(ids[63], 3);
    free(ids);
    sb_free(&long_text);
    encoder_free(enc);
    expected_free(&x);
    free(dir);
}

/* Checks vecs[n, dim] against expected.safetensors and the cosine matrix. */
static void check_against_fixture(const char *dir, const float *vecs, int n, int dim) {
    Err e;
    char *path = path_join(dir, "expected.safetensors");
    SafeTensors *st = st_open(path, &e);
    free(path);
    CHECK_MSG(st, "%s", e.msg);
    const TensorView *t = st_get(st, "embeddings", &e);
    CHECK_MSG(t, "%s", e.msg);
    CHECK_EQ_INT(tensor_rows(t), n);
    CHECK_EQ_INT(tensor_cols(t), dim);
    float *want = tensor_to_f32_alloc(t, &e);
    double worst = 1;
    for (int i = 0; i < n; i++) {
        double c = cosine(vecs + i * dim, want + i * dim, dim);
        if (c < worst) worst = c;
        CHECK_MSG(c >= 0.99999, "sentence %d: cosine %.8f to the expected embedding", i, c);
    }
    double diff = max_abs_diff(vecs, want, (size_t)n * dim);
    CHECK(diff < 1e-5);
    printf("  vs sentence-transformers: worst 1 - cosine %.2g, max abs diff %.2g\n", 1 - worst, diff);
    free(want);
    st_close(st);
    char *jpath = path_join(dir, "expected.json");
    json_t *root = json_load_file(jpath, 0, NULL);
    free(jpath);
    json_t *cos = json_object_get(root, "cosine");
    CHECK((int)json_array_size(cos) == n);
    for (int i = 0; i < n; i++)
        for (int j = 0; j < n; j++) {
            double want_c = json_number_value(json_array_get(json_array_get(cos, i), j));
            CHECK_NEAR(cosine(vecs + i * dim, vecs + j * dim, dim), want_c, 1e-5);
        }
    json_decref(root);
}

static void test_fixture_embeddings(void) {
    NEED_SHARED(dir, FIXTURE);
    Err e;
    Expected x;
    CHECK(expected_load(dir, &x) == 0);
    Encoder *enc = encoder_load(dir, &e);
    CHECK_MSG(enc, "%s", e.msg);
    float *vecs, *from_ids, *ref;
    int dim;
    CHECK_OK(encoder_embed(enc, x.text, x.n, &vecs, &dim, &e), &e);
    CHECK_EQ_INT(dim, 64);
    check_against_fixture(dir, vecs, x.n, dim);
    /* the ids path and the naive reference give the same */
    CHECK_OK(encoder_embed_ids(enc, (const int32_t *const *)x.ids, x.lens, x.n, &from_ids, &dim, &e), &e);
    CHECK(max_abs_diff(vecs, from_ids, (size_t)x.n * dim) == 0);
    CHECK_OK(encoder_embed_ids_ref(enc, (const int32_t *const *)x.ids, x.lens, x.n, &ref, &dim, &e), &e);
    CHECK(max_abs_diff(vecs, ref, (size_t)x.n * dim) < 1e-5);
    free(vecs), free(from_ids), free(ref);
    encoder_free(enc);
    expected_free(&x);
    free(dir);
}

static EncoderConfig small_config(int pooling, int normalize) {
    return (EncoderConfig){.hidden = 64, .n_layers = 2, .n_heads = 4, .intermediate = 96, .vocab = 97,
                           .max_pos = 128, .type_vocab = 2, .eps = 1e-12f, .max_seq_len = 128,
                           .pooling = pooling, .normalize = normalize};
}

/* n random sequences of 1..maxlen ids. */
static void random_ids(Rng *r, int n, int maxlen, int vocab, int32_t **ids, int *lens) {
    for (int s = 0; s < n; s++) {
        lens[s] = 1 + (int)rng_below(r, (uint64_t)maxlen);
        ids[s] = xmalloc((size_t)lens[s] * sizeof **ids);
        for (int p = 0; p < lens[s]; p++) ids[s][p] = (int32_t)rng_below(r, (uint64_t)vocab);
    }
}

static void test_fast_matches_reference(void) {
    Err e;
    Rng r;
    rng_seed(&r, 7);
    enum { N = 12 };
    int32_t *ids[N];
    int lens[N];
    random_ids(&r, N, 60, 97, ids, lens);
    for (int pool = ENC_POOL_MEAN; pool <= ENC_POOL_LASTTOKEN; pool++) {
        EncoderConfig c = small_config(pool, pool == ENC_POOL_MEAN);
        Encoder *enc = encoder_new_random(&c, 42 + pool, &e);
        CHECK_MSG(enc, "%s", e.msg);
        float *fast, *ref;
        int dim;
        CHECK_OK(encoder_embed_ids(enc, (const int32_t *const *)ids, lens, N, &fast, &dim, &e), &e);
        CHECK_OK(encoder_embed_ids_ref(enc, (const int32_t *const *)ids, lens, N, &ref, &dim, &e), &e);
        double scale = 0;
        for (int i = 0; i < N * dim; i++) scale = fmax(scale, fabs(ref[i]));
        double d = max_abs_diff(fast, ref, (size_t)N * dim);
        CHECK_MSG(d <= 1e-5 * fmax(scale, 1), "%s pooling: max |fast - ref| %.3g (scale %.3g)",
                  encoder_pooling_name(pool), d, scale);
        /* one text alone gives what it gives in the batch */
        float *alone;
        CHECK_OK(encoder_embed_ids(enc, (const int32_t *const *)ids + 5, lens + 5, 1, &alone, &dim, &e), &e);
        CHECK(max_abs_diff(alone, fast + 5 * dim, (size_t)dim) <= 1e-5 * fmax(scale, 1));
        free(fast), free(ref), free(alone);
        encoder_free(enc);
    }
    for (int s = 0; s < N; s++) free(ids[s]);
}

/* More tokens than one chunk: texts split across chunks give the same. */
static void test_chunking(void) {
    Err e;
    Rng r;
    rng_seed(&r, 11);
    enum { N = 48 };
    int32_t *ids[N];
    int lens[N];
    random_ids(&r, N, 128, 97, ids, lens);
    EncoderConfig c = small_config(ENC_POOL_MEAN, 1);
    c.n_layers = 1;
    Encoder *enc = encoder_new_random(&c, 3, &e);
    CHECK_MSG(enc, "%s", e.msg);
    float *all, *one;
    int dim, total = 0;
    for (int s = 0; s < N; s++) total += lens[s];
    CHECK(total > 2048);
    CHECK_OK(encoder_embed_ids(enc, (const int32_t *const *)ids, lens, N, &all, &dim, &e), &e);
    for (int s = 0; s < N; s += 7) {
        CHECK_OK(encoder_embed_ids(enc, (const int32_t *const *)ids + s, lens + s, 1, &one, &dim, &e), &e);
        CHECK_MSG(max_abs_diff(one, all + s * dim, (size_t)dim) < 1e-6, "text %d", s);
        free(one);
    }
    free(all);
    encoder_free(enc);
    for (int s = 0; s < N; s++) free(ids[s]);
}

static void test_pooling_by_hand(void) {
    EncoderConfig c = small_config(ENC_POOL_MEAN, 0);
    c.hidden = 2;
    const float h[] = {1, -2, 3, 4, -1, 0}; /* 3 tokens x 2 */
    float out[2];
    encoder_pool(&c, h, 3, out);
    CHECK_NEAR(out[0], 1, 1e-7);
    CHECK_NEAR(out[1], 2.0 / 3, 1e-7);
    c.pooling = ENC_POOL_CLS;
    encoder_pool(&c, h, 3, out);
    CHECK(out[0] == 1 && out[1] == -2);
    c.pooling = ENC_POOL_MAX;
    encoder_pool(&c, h, 3, out);
    CHECK(out[0] == 3 && out[1] == 4);
    c.pooling = ENC_POOL_LASTTOKEN;
    encoder_pool(&c, h, 3, out);
    CHECK(out[0] == -1 && out[1] == 0);
    c.pooling = ENC_POOL_MEAN_SQRT_LEN;
    encoder_pool(&c, h, 3, out);
    CHECK_NEAR(out[0], 3 / sqrt(3), 1e-6);
    c.pooling = ENC_POOL_MAX;
    c.normalize = 1;
    encoder_pool(&c, h, 3, out);
    CHECK_NEAR(out[0], 0.6, 1e-7);
    CHECK_NEAR(out[1], 0.8, 1e-7);
    CHECK(encoder_pooling_name(ENC_POOL_MEAN_SQRT_LEN)[0] == 'm');
}

/* The kernels on values worked out by hand (torch gives the same). */
static void test_encoder_ops(void) {
    float g[] = {1, -1, 0, 3, -6};
    enc_gelu(g, 5, 2);
    CHECK_NEAR(g[0], 0.841344746, 1e-7); /* x Phi(x), Phi(1) = 0.841344746 */
    CHECK_NEAR(g[1], -0.158655254, 1e-7);
    CHECK(g[2] == 0);
    CHECK_NEAR(g[3], 2.995950348, 1e-6);
    CHECK_NEAR(g[4], 0, 1e-8); /* erf(-4.24) is -1 in float32, in torch too */
    float x[] = {1, 2, 3, 4}, w[] = {1, 1, 2, 2}, b[] = {0, 1, 0, 1}, y[4];
    enc_layernorm(y, x, w, b, 1, 4, 0);
    double sd = sqrt(1.25); /* mean 2.5, biased variance 1.25 */
    CHECK_NEAR(y[0], -1.5 / sd, 1e-6);
    CHECK_NEAR(y[1], -0.5 / sd + 1, 1e-6);
    CHECK_NEAR(y[2], 2 * 0.5 / sd, 1e-6);
    CHECK_NEAR(y[3], 2 * 1.5 / sd + 1, 1e-6);
    /* two texts of 1 and 2 tokens, one head of width 1: a token sees only its own text */
    float q[] = {1, 1, 1}, k[] = {5, 0, 0}, v[] = {7, 2, 4}, o[3];
    int starts[] = {0, 1, 3};
    enc_attention(o, q, k, v, starts, 2, 1, 1, 2);
    CHECK_NEAR(o[0], 7, 1e-6);
    CHECK_NEAR(o[1], 3, 1e-6); /* equal scores: the mean of 2 and 4 */
    CHECK_NEAR(o[2], 3, 1e-6);
    float lin[2];
    const float W[] = {1, 2, 3, 4, 5, 6}, B[] = {10, 20}, X[] = {1, 1, 1};
    enc_linear(NULL, lin, X, W, B, 1, 3, 2);
    CHECK_NEAR(lin[0], 16, 1e-6);
    CHECK_NEAR(lin[1], 35, 1e-6);
}

typedef struct {
    const Encoder *enc;
    const char *const *texts;
    int n;
    float *vecs;
    int rc;
} Caller;

static void *caller_main(void *arg) {
    Caller *c = arg;
    Err e;
    int dim;
    for (int rep = 0; rep < 5 && !c->rc; rep++) {
        free(c->vecs);
        c->rc = encoder_embed(c->enc, c->texts, c->n, &c->vecs, &dim, &e);
    }
    return NULL;
}

static void test_concurrent_callers(void) {
    NEED_SHARED(dir, FIXTURE);
    Err e;
    Expected x;
    CHECK(expected_load(dir, &x) == 0);
    Encoder *enc = encoder_load(dir, &e);
    CHECK_MSG(enc, "%s", e.msg);
    float *serial;
    int dim;
    CHECK_OK(encoder_embed(enc, x.text, x.n, &serial, &dim, &e), &e);
    Caller callers[4];
    pthread_t th[4];
    for (int i = 0; i < 4; i++) {
        callers[i] = (Caller){enc, x.text, x.n, NULL, 0};
        CHECK(pthread_create(&th[i], NULL, caller_main, &callers[i]) == 0);
    }
    for (int i = 0; i < 4; i++) pthread_join(th[i], NULL);
    for (int i = 0; i < 4; i++) {
        CHECK_EQ_INT(callers[i].rc, 0);
        CHECK(max_abs_diff(callers[i].vecs, serial, (size_t)x.n * dim) == 0);
        free(callers[i].vecs);
    }
    free(serial);
    encoder_free(enc);
    expected_free(&x);
    free(dir);
}

static void test_bad_ids(void) {
    EncoderConfig c = small_config(ENC_POOL_MEAN, 1);
    Err e;
    Encoder *enc = encoder_new_random(&c, 1, &e);
    CHECK_MSG(enc, "%s", e.msg);
    int32_t bad[] = {1, 97, 2}, *ids[] = {bad};
    int lens[] = {3};
    float *v;
    CHECK(encoder_embed_ids(enc, (const int32_t *const *)ids, lens, 1, &v, NULL, &e) == -1);
    CHECK_MSG(strstr(e.msg, "id 97"), "%s", e.msg);
    lens[0] = 0;
    CHECK(encoder_embed_ids(enc, (const int32_t *const *)ids, lens, 1, &v, NULL, &e) == -1);
    const char *texts[] = {"hello"};
    CHECK(encoder_embed(enc, texts, 1, &v, NULL, &e) == -1);
    CHECK_MSG(strstr(e.msg, "no tokenizer"), "%s", e.msg);
    int dim = 0;
    CHECK_OK(encoder_embed_ids(enc, NULL, NULL, 0, &v, &dim, &e), &e); /* no texts: no rows */
    CHECK_EQ_INT(dim, 64);
    free(v);
    c.hidden = 63;
    CHECK(encoder_new_random(&c, 1, &e) == NULL);
    encoder_free(enc);
}

/* A writable copy of the fixture model in a fresh temporary directory. */
static char *copy_fixture(const char *dir) {
    char *tmp = test_tmpdir();
    if (!tmp) return NULL;
    char *copy = path_join(tmp, "m");
    free(tmp);
    if (test_system("cp -r '%s' '%s' && chmod -R u+w '%s'", dir, copy, copy) != 0) {
        free(copy);
        return NULL;
    }
    return copy;
}

static int write_text(const char *dir, const char *rel, const char *text) {
    char *p = path_join(dir, rel);
    Err e;
    int rc = file_write_atomic(p, text, strlen(text), &e);
    free(p);
    return rc;
}

/* Loading must fail with a message holding both needles. */
#define CHECK_LOAD_FAILS(d, needle1, needle2)                                                  \
    do {                                                                                       \
        Err e_;                                                                                \
        Encoder *enc_ = encoder_load(d, &e_);                                                  \
        CHECK_MSG(!enc_, "%s: loaded but should fail", d);                                     \
        CHECK_MSG(strstr(e_.msg, needle1) && strstr(e_.msg, needle2), "message: %s", e_.msg); \
    } while (0)

static void test_bad_directories(void) {
    NEED_SHARED(dir, FIXTURE);
    char *m = copy_fixture(dir);
    CHECK(m);
    const char *tr = "{\"idx\":0,\"name\":\"0\",\"path\":\"\",\"type\":\"sentence_transformers.models.Transformer\"}";
    const char *po = "{\"idx\":1,\"name\":\"1\",\"path\":\"1_Pooling\",\"type\":\"sentence_transformers.models.Pooling\"}";
    char *only_tr = xasprintf("[%s]", tr);
    CHECK(write_text(m, "modules.json", only_tr) == 0);
    CHECK_LOAD_FAILS(m, "modules.json", "no Pooling module");
    char *with_dense = xasprintf(
        "[%s,%s,{\"idx\":2,\"name\":\"2\",\"path\":\"2_Dense\",\"type\":\"sentence_transformers.models.Dense\"}]", tr,
        po);
    CHECK(write_text(m, "modules.json", with_dense) == 0);
    CHECK_LOAD_FAILS(m, "modules.json", "sentence_transformers.models.Dense");
    char *ok = xasprintf("[%s,%s]", tr, po);
    CHECK(write_text(m, "modules.json", ok) == 0);
    CHECK(write_text(m, "1_Pooling/config.json", "{\"embedding_dimension\": 64, \"pooling_mode\": \"weightedmean\"}") == 0);
    CHECK_LOAD_FAILS(m, "1_Pooling/config.json", "pooling_mode \"weightedmean\"");
    CHECK(write_text(m, "1_Pooling/config.json",
                     "{\"word_embedding_dimension\": 64, \"pooling_mode_cls_token\": true, "
                     "\"pooling_mode_mean_tokens\": true}") == 0);
    CHECK_LOAD_FAILS(m, "1_Pooling/config.json", "concatenated");
    CHECK(write_text(m, "1_Pooling/config.json", "{\"embedding_dimension\": 32, \"pooling_mode\": \"max\"}") == 0);
    CHECK_LOAD_FAILS(m, "embedding_dimension 32", "hidden_size 64");
    CHECK(test_system("rm '%s/1_Pooling/config.json'", m) == 0);
    CHECK_LOAD_FAILS(m, "1_Pooling/config.json", "not found");
    /* the old boolean form loads, without Normalize: unnormalised cls vectors */
    CHECK(write_text(m, "1_Pooling/config.json",
                     "{\"word_embedding_dimension\": 64, \"pooling_mode_cls_token\": true}") == 0);
    Err e;
    Encoder *enc = encoder_load(m, &e);
    CHECK_MSG(enc, "%s", e.msg);
    CHECK_EQ_INT(encoder_config(enc)->pooling, ENC_POOL_CLS);
    CHECK_EQ_INT(encoder_config(enc)->normalize, 0);
    encoder_free(enc);
    CHECK(write_text(m, "sentence_bert_config.json", "{\"max_seq_length\": \"long\"}") == 0);
    CHECK_LOAD_FAILS(m, "sentence_bert_config.json", "max_seq_length");
    CHECK(write_text(m, "sentence_bert_config.json", "{\"max_seq_length\": 16, \"do_lower_case\": true}") == 0);
    enc = encoder_load(m, &e);
    CHECK_MSG(enc, "%s", e.msg);
    CHECK_EQ_INT(encoder_config(enc)->max_seq_len, 16);
    CHECK_EQ_INT(encoder_config(enc)->lowercase, 1);
    encoder_free(enc);
    char *cfg_text;
    char *cfg_path = path_join(m, "config.json");
    CHECK_OK(file_read_all(cfg_path, &cfg_text, NULL, &e), &e);
    char *relu = xstrdup(cfg_text);
    char *act = strstr(relu, "\"gelu\"");
    CHECK(act);
    memcpy(act, "\"relu\"", 6);
    CHECK(write_text(m, "config.json", relu) == 0);
    CHECK_LOAD_FAILS(m, "config.json", "hidden_act");
    CHECK(write_text(m, "config.json", cfg_text) == 0);
    CHECK(test_system("rm '%s/model.safetensors'", m) == 0);
    CHECK_LOAD_FAILS(m, m, "model.safetensors");
    free(cfg_text), free(relu), free(cfg_path), free(only_tr), free(with_dense), free(ok);
    test_system("rm -rf '%s'", m);
    free(m);
    free(dir);
}

/* Writes dir/model.safetensors from src's tensors with each name given a
 * prefix, leaving out the tensor named skip (may be NULL), in F32 or
 * converted to F16. */
static int rewrite_weights(const char *src_dir, const char *dir, const char *prefix, const char *skip, int f16) {
    Err e;
    SafeTensors *st = st_open(src_dir, &e);
    if (!st) return -1;
    int n = st_count(st), k = 0;
    TensorView *views = xcalloc((size_t)n, sizeof *views);
    char **names = xcalloc((size_t)n, sizeof *names);
    for (int i = 0; i < n; i++) {
        const TensorView *t = st_tensor(st, i);
        if (skip && !strcmp(t->name, skip)) continue;
        views[k] = *t;
        views[k].name = names[k] = xasprintf("%s%s", prefix, t->name);
        if (f16) {
            int64_t n = tensor_numel(t);
            uint16_t *h = xmalloc((size_t)n * sizeof *h);
            for (int64_t j = 0; j < n; j++) h[j] = f32_to_f16(((const float *)t->data)[j]);
            views[k].data = h;
            views[k].dtype = DT_F16;
            views[k].nbytes = (size_t)n * sizeof *h;
        }
        k++;
    }
    char *out = path_join(dir, "model.safetensors");
    int rc = st_write(out, views, k, NULL, &e);
    for (int i = 0; i < k; i++) {
        free(names[i]);
        if (f16) free((void *)views[i].data);
    }
    free(names), free(views), free(out);
    st_close(st);
    return rc;
}

/* A plain BertModel directory (no modules.json) means mean pooling + L2,
 * which is what the fixture uses: same embeddings. Weight names may carry
 * a "bert." prefix; a missing weight is named. */
static void test_plain_bert_directory(void) {
    NEED_SHARED(dir, FIXTURE);
    char *m = copy_fixture(dir);
    CHECK(m);
    CHECK(test_system("rm -r '%s/modules.json' '%s/1_Pooling' '%s/2_Normalize'", m, m, m) == 0);
    CHECK(rewrite_weights(dir, m, "bert.", NULL, 0) == 0);
    Expected x;
    CHECK(expected_load(dir, &x) == 0);
    Err e;
    Encoder *enc = encoder_load(m, &e);
    CHECK_MSG(enc, "%s", e.msg);
    CHECK(encoder_is_model_dir(m)); /* by config.json alone */
    float *vecs;
    int dim;
    CHECK_OK(encoder_embed(enc, x.text, x.n, &vecs, &dim, &e), &e);
    check_against_fixture(dir, vecs, x.n, dim);
    encoder_free(enc);
    /* F16 weights are converted on load: close to the F32 result */
    CHECK(rewrite_weights(dir, m, "", NULL, 1) == 0);
    enc = encoder_load(m, &e);
    CHECK_MSG(enc, "%s", e.msg);
    float *half;
    CHECK_OK(encoder_embed(enc, x.text, x.n, &half, &dim, &e), &e);
    for (int i = 0; i < x.n; i++) {
        double c = cosine(half + i * dim, vecs + i * dim, dim);
        CHECK_MSG(c > 0.9999, "F16 sentence %d: cosine %.6f", i, c);
    }
    free(half);
    encoder_free(enc);
    CHECK(rewrite_weights(dir, m, "", "encoder.layer.1.output.LayerNorm.bias", 0) == 0);
    CHECK_LOAD_FAILS(m, "encoder.layer.1.output.LayerNorm.bias", "model.safetensors");
    free(vecs);
    expected_free(&x);
    test_system("rm -rf '%s'", m);
    free(m);
    free(dir);
}

/* aloe embed on the fixture: one array per text, equal to the library's. */
static void test_cmd_embed(void) {
    NEED_SHARED(dir, FIXTURE);
    char *aloe = test_build_path("aloe");
    /* cmd_embed exists: a build without it is a failure, not a skip */
    CHECK_MSG(test_system("'%s' embed --help >/dev/null 2>&1", aloe) == 0, "%s embed --help failed", aloe);
    char *tmp = test_tmpdir();
    CHECK(tmp);
    char *in = path_join(tmp, "in.jsonl"), *out = path_join(tmp, "out.jsonl");
    Expected x;
    CHECK(expected_load(dir, &x) == 0);
    FILE *f = fopen(in, "w");
    CHECK(f);
    for (int i = 0; i < x.n; i++) {
        json_t *js = json_string(x.text[i]);
        char *line = json_dumps(js, JSON_ENCODE_ANY);
        fprintf(f, "%s\n", line);
        free(line);
        json_decref(js);
    }
    fclose(f);
    CHECK_EQ_INT(test_system("'%s' embed --model '%s' --jsonl '%s' > '%s'", aloe, dir, in, out), 0);
    Err e;
    Encoder *enc = encoder_load(dir, &e);
    CHECK_MSG(enc, "%s", e.msg);
    float *want;
    int dim;
    CHECK_OK(encoder_embed(enc, x.text, x.n, &want, &dim, &e), &e);
    char *text;
    CHECK_OK(file_read_all(out, &text, NULL, &e), &e);
    char *p = text;
    for (int i = 0; i < x.n; i++) {
        char *nl = strchr(p, '\n');
        CHECK_MSG(nl, "line %d missing", i + 1);
        json_t *arr = json_loadb(p, (size_t)(nl - p), 0, NULL);
        CHECK_MSG(json_is_array(arr) && (int)json_array_size(arr) == dim, "line %d: not an array of %d", i + 1, dim);
        for (int j = 0; j < dim; j++) CHECK((float)json_number_value(json_array_get(arr, j)) == want[i * dim + j]);
        json_decref(arr);
        p = nl + 1;
    }
    CHECK(*p == 0);
    /* a bad directory fails with its message and status 1 */
    CHECK_EQ_INT(test_system("'%s' embed --model '%s/nope' hi 2>/dev/null", aloe, tmp), 1);
    CHECK_EQ_INT(test_system("'%s' embed --model '%s' 2>/dev/null", aloe, dir), 2);
    free(text), free(want);
    encoder_free(enc);
    expected_free(&x);
    test_system("rm -rf '%s'", tmp);
    free(in), free(out), free(tmp), free(aloe), free(dir);
}

int main(void) {
    log_set_level(LOG_WARN); /* the plain-directory notice is expected here */
    RUN(test_fixture_config);
    RUN(test_fixture_ids);
    RUN(test_fixture_embeddings);
    RUN(test_fast_matches_reference);
    RUN(test_chunking);
    RUN(test_pooling_by_hand);
    RUN(test_encoder_ops);
    RUN(test_concurrent_callers);
    RUN(test_bad_ids);
    RUN(test_bad_directories);
    RUN(test_plain_bert_directory);
    RUN(test_cmd_embed);
    return test_summary();
}
