/* st_minilm_layout: a copy of the tiny-bert-st fixture laid out as the hub's
 * sentence-transformers/paraphrase-MiniLM-L6-v2 is (the paper's embedder):
 * modules.json with the pre-v3 class paths and no Normalize module,
 * 1_Pooling/config.json in the older boolean form with mean pooling on, and
 * sentence_bert_config.json with do_lower_case false. Same weights, so the
 * fixture's embeddings hold up to the missing L2 normalisation. For
 * test_encoder_minilm_layout and the personas default-embedder test. */
#ifndef ALOE_TESTS_ST_MINILM_LAYOUT_H
#define ALOE_TESTS_ST_MINILM_LAYOUT_H

#include <stdlib.h>
#include <string.h>

#include "base/fileio.h"
#include "base/mem.h"
#include "test.h"

static inline int st_minilm_write(const char *dir, const char *rel, const char *text) {
    char *p = path_join(dir, rel);
    Err e;
    int rc = file_write_atomic(p, text, strlen(text), &e);
    free(p);
    return rc;
}

/* Makes DIR (a new directory: caller frees the path, removes the tree) from
 * the fixture at src; NULL on failure. */
static inline char *st_minilm_layout(const char *src) {
    char *tmp = test_tmpdir();
    if (!tmp) return NULL;
    char *dir = path_join(tmp, "paraphrase-MiniLM-L6-v2");
    free(tmp);
    int rc = test_system("cp -r '%s' '%s' && chmod -R u+w '%s' && rm -r '%s/2_Normalize'", src, dir, dir, dir);
    if (!rc)
        rc = st_minilm_write(
            dir, "modules.json",
            "[\n  {\"idx\": 0, \"name\": \"0\", \"path\": \"\", \"type\": \"sentence_transformers.models.Transformer\"},\n"
            "  {\"idx\": 1, \"name\": \"1\", \"path\": \"1_Pooling\", \"type\": "
            "\"sentence_transformers.models.Pooling\"}\n]\n");
    if (!rc)
        rc = st_minilm_write(dir, "1_Pooling/config.json",
                             "{\n  \"word_embedding_dimension\": 64,\n  \"pooling_mode_cls_token\": false,\n"
                             "  \"pooling_mode_mean_tokens\": true,\n  \"pooling_mode_max_tokens\": false,\n"
                             "  \"pooling_mode_mean_sqrt_len_tokens\": false\n}\n");
    if (!rc)
        rc = st_minilm_write(dir, "sentence_bert_config.json",
                             "{\n  \"max_seq_length\": 64,\n  \"do_lower_case\": false\n}\n");
    if (rc) {
        free(dir);
        return NULL;
    }
    return dir;
}

#endif
