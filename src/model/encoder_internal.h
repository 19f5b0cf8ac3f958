/* encoder_internal: the Encoder's parts, shared by its loader, its two
 * forward paths (fast and reference) and its pooling. Not a public API. */
#ifndef ALOE_MODEL_ENCODER_INTERNAL_H
#define ALOE_MODEL_ENCODER_INTERNAL_H

#include <pthread.h>

#include "formats/safetensors.h"
#include "kernels/threads.h"
#include "model/encoder.h"
#include "tok/tok.h"

/* One transformer layer; matrices are [out, in] as nn.Linear stores them. */
typedef struct EncoderLayer {
    const float *wq, *bq, *wk, *bk, *wv, *bv; /* [hidden, hidden] */
    const float *wo, *bo;                     /* attention.output.dense */
    const float *ln1_w, *ln1_b;               /* attention.output.LayerNorm */
    const float *w1, *b1;                     /* intermediate.dense [intermediate, hidden] */
    const float *w2, *b2;                     /* output.dense [hidden, intermediate] */
    const float *ln2_w, *ln2_b;               /* output.LayerNorm */
} EncoderLayer;

typedef struct EncoderWeights {
    const float *word;   /* [vocab, hidden] */
    const float *pos;    /* [max_pos, hidden] */
    const float *type0;  /* row 0 of token_type_embeddings, or NULL */
    const float *emb_ln_w, *emb_ln_b;
    EncoderLayer *layers; /* [n_layers] */
} EncoderWeights;

struct Encoder {
    EncoderConfig cfg;
    EncoderWeights w;
    SafeTensors *st;  /* F32 weights point into its map */
    float **owned;    /* converted or random weights, freed with the encoder */
    int n_owned;
    Tokenizer *tok;   /* NULL for encoder_new_random */
    int threads;
    /* The pool runs the linear layers. It serves one forward pass at a time
     * (a pool is not reentrant): concurrent callers take turns under mu,
     * each pass using every thread anyway. */
    ThreadPool *tp;
    pthread_mutex_t *mu; /* a pointer: const Encoder calls lock it */
};

/* Where a sentence-transformers directory keeps things and how it pools. */
typedef struct EncoderStConfig {
    char *model_dir;  /* the Transformer module's directory (malloc'd) */
    int pooling;      /* EncoderPooling */
    int pool_dim;     /* the Pooling module's embedding dimension, 0 if unset */
    int normalize;
    int max_seq_len;  /* sentence_bert_config max_seq_length, 0 if unset */
    int lowercase;
} EncoderStConfig;

/* Reads modules.json and the module configs of dir; a directory without
 * modules.json is a plain BertModel (mean pooling, normalised). */
int encoder_st_config_load(const char *dir, EncoderStConfig *sc, Err *e);
void encoder_st_config_free(EncoderStConfig *sc);

/* Pools the hidden states h[len, dim] of one text into out[dim] and
 * normalises it if asked. */
void encoder_pool(const EncoderConfig *c, const float *h, int len, float *out);

/* Checks n token sequences against the model (length, id range). */
int encoder_check_ids(const Encoder *enc, const int32_t *const *ids, const int *lens, int n, Err *e);

#endif
