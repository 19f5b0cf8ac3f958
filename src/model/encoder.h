/* encoder: sentence embeddings from a BERT-family encoder, as
 * sentence-transformers computes them.
 *
 * A model is either
 *   - a sentence-transformers directory: modules.json lists a Transformer
 *     (a Hugging Face BertModel directory, usually the root), a Pooling
 *     module (1_Pooling/config.json) and optionally Normalize; the
 *     Transformer's sentence_bert_config.json gives max_seq_length and
 *     do_lower_case; or
 *   - a plain Hugging Face BertModel directory (no modules.json): mean
 *     pooling and L2 normalisation, the usual sentence-embedding recipe
 *     (said in a log line).
 * Weights come from model.safetensors (F32, F16 or BF16; names with or
 * without a "bert." prefix), text through the directory's tokenizer.json.
 *
 * Forward: word + position + token-type-0 embeddings, LayerNorm, then per
 * layer post-LN self-attention and GELU MLP; pooling over the text's own
 * tokens; optional L2 normalisation. Any number of threads may call
 * encoder_embed on one Encoder at once: their forward passes take turns on
 * the encoder's thread pool. */
#ifndef ALOE_MODEL_ENCODER_H
#define ALOE_MODEL_ENCODER_H

#include <stdint.h>

#include "base/err.h"

typedef enum EncoderPooling {
    ENC_POOL_MEAN = 0,      /* mean of the token vectors */
    ENC_POOL_CLS,           /* the first token ([CLS]) */
    ENC_POOL_MAX,           /* element-wise max */
    ENC_POOL_MEAN_SQRT_LEN, /* sum / sqrt(number of tokens) */
    ENC_POOL_LASTTOKEN,     /* the last token */
} EncoderPooling;

typedef struct EncoderConfig {
    int hidden;        /* hidden_size */
    int n_layers;      /* num_hidden_layers */
    int n_heads;       /* num_attention_heads */
    int intermediate;  /* intermediate_size */
    int vocab;         /* vocab_size */
    int max_pos;       /* max_position_embeddings */
    int type_vocab;    /* type_vocab_size (0: no token-type embeddings) */
    float eps;         /* layer_norm_eps */
    int max_seq_len;   /* texts are truncated to this many tokens (specials included) */
    int pooling;       /* EncoderPooling */
    int normalize;     /* L2-normalise the pooled vector */
    int lowercase;     /* sentence_bert_config do_lower_case: lowercase before tokenising */
} EncoderConfig;

typedef struct Encoder Encoder;

/* 1 if dir looks like a model for this encoder (a sentence-transformers
 * directory with modules.json, or config.json naming BertModel), so a
 * caller holding a local model spec can pick the encoder over the decoder. */
int encoder_is_model_dir(const char *dir);

/* Loads a model directory (see above). Errors name the file and field. */
Encoder *encoder_load(const char *dir, Err *e);
/* A model with weights drawn from N(0, 0.1) (LayerNorm weights N(1, 0.1),
 * biases N(0, 0.1)) for tests and benchmarks; no tokenizer, so only
 * encoder_embed_ids works. */
Encoder *encoder_new_random(const EncoderConfig *cfg, uint64_t seed, Err *e);
void encoder_free(Encoder *enc);

const EncoderConfig *encoder_config(const Encoder *enc);
/* Output dimension (hidden size). */
int encoder_dim(const Encoder *enc);
/* Threads for the forward pass (the linear layers on the encoder's own
 * kernel pool, attention and GELU); default: the number of CPUs. Not to be
 * called while another thread is embedding. */
void encoder_set_threads(Encoder *enc, int threads);

/* Embeds n texts: *vecs gets n * *dim floats (malloc'd, caller frees), row
 * i the embedding of texts[i]. Texts are tokenised with [CLS] .. [SEP] and
 * truncated to max_seq_len tokens (keeping the final [SEP]). */
int encoder_embed(const Encoder *enc, const char *const *texts, int n, float **vecs, int *dim,
                  Err *e);

/* Embeds n token sequences given as ids (specials included, used as
 * given): seq i is ids[i][0 .. lens[i]-1]. Each must be 1 .. max_pos long
 * with ids < vocab. */
int encoder_embed_ids(const Encoder *enc, const int32_t *const *ids, const int *lens, int n,
                      float **vecs, int *dim, Err *e);

/* The token ids encoder_embed uses for text (after lowercasing and
 * truncation); *ids malloc'd. */
int encoder_tokenize(const Encoder *enc, const char *text, int32_t **ids, int *n, Err *e);

/* The same as encoder_embed_ids, computed the naive way PyTorch does it:
 * all texts padded to the longest, an attention mask over the padding,
 * plain loops, no BLAS, no threads. The reference the fast path is tested
 * against. */
int encoder_embed_ids_ref(const Encoder *enc, const int32_t *const *ids, const int *lens, int n,
                          float **vecs, int *dim, Err *e);

/* "mean", "cls", ... */
const char *encoder_pooling_name(int pooling);

#endif
