/* The paper's embedder, paraphrase-MiniLM-L6-v2, is a sentence-transformers
 * directory of the older kind: pre-v3 module class paths, the boolean
 * pooling flags (mean pooling on) and no Normalize module. The local engine
 * must pool by mean and leave the vector unnormalised, as
 * sentence-transformers does: checked on the tiny fixture laid out that way
 * (st_minilm_layout.h) against the fixture's embeddings and cosines. */
#include <jansson.h>
#include <math.h>
#include <stdlib.h>

#include "base/fileio.h"
#include "base/mem.h"
#include "formats/safetensors.h"
#include "model/encoder.h"
#include "st_minilm_layout.h"
#include "test.h"

#define FIXTURE "fixtures/models/tiny-bert-st"

static double dot(const float *a, const float *b, int n) {
    double s = 0;
    for (int i = 0; i < n; i++) s += (double)a[i] * b[i];
    return s;
}

static void test_mean_pooled_unnormalised_as_sentence_transformers(void) {
    NEED_SHARED(src, FIXTURE);
    char *dir = st_minilm_layout(src);
    CHECK(dir);
    Err e;
    Encoder *enc = encoder_load(dir, &e);
    CHECK_MSG(enc, "%s", e.msg);
    CHECK_EQ_INT(encoder_config(enc)->pooling, ENC_POOL_MEAN);
    CHECK_EQ_INT(encoder_config(enc)->normalize, 0);
    CHECK(encoder_is_model_dir(dir));

    char *jpath = path_join(src, "expected.json");
    json_t *root = json_load_file(jpath, 0, NULL);
    free(jpath);
    json_t *sents = json_object_get(root, "sentences"), *cos = json_object_get(root, "cosine");
    int n = (int)json_array_size(sents);
    CHECK(n >= 2 && (int)json_array_size(cos) == n);
    const char *text[16];
    for (int i = 0; i < n && i < 16; i++) text[i] = json_string_value(json_array_get(sents, i));
    float *vecs = NULL;
    int dim = 0;
    CHECK_OK(encoder_embed(enc, text, n, &vecs, &dim, &e), &e);

    /* The fixture's embeddings are these vectors after its Normalize module:
     * v/|v| must match them as closely as the normalised path does (1e-5,
     * float32 against PyTorch's float32), and the vectors themselves must
     * not be unit length (mean pooling alone; the random tiny model's means
     * are far from the unit sphere). */
    char *spath = path_join(src, "expected.safetensors");
    SafeTensors *st = st_open(spath, &e);
    free(spath);
    CHECK_MSG(st, "%s", e.msg);
    const TensorView *t = st_get(st, "embeddings", &e);
    CHECK_MSG(t, "%s", e.msg);
    CHECK_EQ_INT(tensor_cols(t), dim);
    float *want = tensor_to_f32_alloc(t, &e);
    int unit = 0;
    for (int i = 0; i < n; i++) {
        const float *v = vecs + (size_t)i * dim;
        double norm = sqrt(dot(v, v, dim));
        if (fabs(norm - 1) < 1e-3) unit++;
        for (int k = 0; k < dim; k++)
            CHECK_MSG(fabs(v[k] / norm - want[(size_t)i * dim + k]) < 1e-5, "sentence %d dim %d: %g vs %g", i, k,
                      v[k] / norm, want[(size_t)i * dim + k]);
    }
    CHECK_MSG(unit == 0, "%d of %d vectors are unit length: normalised although no Normalize module", unit, n);
    /* the cosines the pool filter uses are sentence-transformers' */
    for (int i = 0; i < n; i++)
        for (int j = 0; j < n; j++) {
            const float *a = vecs + (size_t)i * dim, *b = vecs + (size_t)j * dim;
            double c = dot(a, b, dim) / sqrt(dot(a, a, dim) * dot(b, b, dim));
            CHECK_NEAR(c, json_number_value(json_array_get(json_array_get(cos, i), j)), 1e-5);
        }
    free(want);
    st_close(st);
    free(vecs);
    json_decref(root);
    encoder_free(enc);
    test_system("rm -rf '%s'", dir);
    free(dir);
    free(src);
}

int main(void) {
    RUN(test_mean_pooled_unnormalised_as_sentence_transformers);
    return test_summary();
}
