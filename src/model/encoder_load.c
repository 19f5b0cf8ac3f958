/* encoder_load: an Encoder from a model directory (or from random numbers):
 * its configuration, its tokenizer, and pointers to its weights. F32
 * weights are used in place in the safetensors map; F16/BF16 ones are
 * converted once to F32. */
#include <jansson.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "base/fileio.h"
#include "base/log.h"
#include "base/mem.h"
#include "base/pool.h"
#include "base/rng.h"
#include "formats/hfdir.h"
#include "model/encoder_internal.h"

static float *own(Encoder *enc, float *p) {
    enc->owned = xrealloc(enc->owned, (size_t)(enc->n_owned + 1) * sizeof *enc->owned);
    enc->owned[enc->n_owned++] = p;
    return p;
}

/* Binds the weight prefix+name of shape [rows, cols] (cols 0: a vector of
 * rows) to *dst. */
static int bind(Encoder *enc, const char *prefix, const char *name, int64_t rows, int64_t cols,
                const float **dst, Err *e) {
    char full[256];
    snprintf(full, sizeof full, "%s%s", prefix, name);
    const TensorView *t = st_find(enc->st, full);
    if (!t) return err_set(e, ERR_NOTFOUND, "%s: no tensor %s (a BertModel weight)", st_path(enc->st), full);
    int64_t shape[2] = {rows, cols};
    if (tensor_check_shape(t, cols ? 2 : 1, shape, e)) return err_wrap(e, "%s", st_file_of(enc->st, t));
    if (t->dtype == DT_F32 && (uintptr_t)t->data % sizeof(float) == 0) {
        *dst = t->data;
        return 0;
    }
    float *f = tensor_to_f32_alloc(t, e);
    if (!f) return -1;
    *dst = own(enc, f);
    return 0;
}

static int bind_layer(Encoder *enc, const char *prefix, int l, EncoderLayer *L, Err *e) {
    int64_t h = enc->cfg.hidden, m = enc->cfg.intermediate;
    char p[128];
    snprintf(p, sizeof p, "%sencoder.layer.%d.", prefix, l);
    return bind(enc, p, "attention.self.query.weight", h, h, &L->wq, e) ||
           bind(enc, p, "attention.self.query.bias", h, 0, &L->bq, e) ||
           bind(enc, p, "attention.self.key.weight", h, h, &L->wk, e) ||
           bind(enc, p, "attention.self.key.bias", h, 0, &L->bk, e) ||
           bind(enc, p, "attention.self.value.weight", h, h, &L->wv, e) ||
           bind(enc, p, "attention.self.value.bias", h, 0, &L->bv, e) ||
           bind(enc, p, "attention.output.dense.weight", h, h, &L->wo, e) ||
           bind(enc, p, "attention.output.dense.bias", h, 0, &L->bo, e) ||
           bind(enc, p, "attention.output.LayerNorm.weight", h, 0, &L->ln1_w, e) ||
           bind(enc, p, "attention.output.LayerNorm.bias", h, 0, &L->ln1_b, e) ||
           bind(enc, p, "intermediate.dense.weight", m, h, &L->w1, e) ||
           bind(enc, p, "intermediate.dense.bias", m, 0, &L->b1, e) ||
           bind(enc, p, "output.dense.weight", h, m, &L->w2, e) ||
           bind(enc, p, "output.dense.bias", h, 0, &L->b2, e) ||
           bind(enc, p, "output.LayerNorm.weight", h, 0, &L->ln2_w, e) ||
           bind(enc, p, "output.LayerNorm.bias", h, 0, &L->ln2_b, e);
}

static int bind_weights(Encoder *enc, const char *model_dir, Err *e) {
    const EncoderConfig *c = &enc->cfg;
    /* BertModel saves bare names; BertForMaskedLM and friends nest them under "bert." */
    const char *prefix = st_find(enc->st, "embeddings.word_embeddings.weight") ? "" : "bert.";
    EncoderWeights *w = &enc->w;
    if (bind(enc, prefix, "embeddings.word_embeddings.weight", c->vocab, c->hidden, &w->word, e) ||
        bind(enc, prefix, "embeddings.position_embeddings.weight", c->max_pos, c->hidden, &w->pos, e) ||
        bind(enc, prefix, "embeddings.LayerNorm.weight", c->hidden, 0, &w->emb_ln_w, e) ||
        bind(enc, prefix, "embeddings.LayerNorm.bias", c->hidden, 0, &w->emb_ln_b, e))
        return -1;
    if (c->type_vocab > 0 &&
        bind(enc, prefix, "embeddings.token_type_embeddings.weight", c->type_vocab, c->hidden, &w->type0, e))
        return -1;
    /* num_hidden_layers against the weights before the layer table is sized by it */
    char last[160];
    snprintf(last, sizeof last, "%sencoder.layer.%d.output.LayerNorm.bias", prefix, c->n_layers - 1);
    if (!st_find(enc->st, last))
        return err_set(e, ERR_PARSE, "%s/config.json: num_hidden_layers = %d, but %s has no tensor %s", model_dir,
                       c->n_layers, st_path(enc->st), last);
    w->layers = xcalloc((size_t)c->n_layers, sizeof *w->layers);
    for (int l = 0; l < c->n_layers; l++)
        if (bind_layer(enc, prefix, l, &w->layers[l], e)) return -1;
    return 0;
}

/* config.json fields that hfdir does not interpret but that change the
 * maths: the activation and the kind of position embedding. */
static int check_bert_variant(const char *model_dir, Err *e) {
    char *path = path_join(model_dir, "config.json");
    json_error_t je;
    json_t *root = json_load_file(path, 0, &je);
    int rc = -1;
    if (!root) {
        err_set(e, ERR_PARSE, "%s:%d: %s", path, je.line, je.text);
        goto done;
    }
    json_t *act = json_object_get(root, "hidden_act");
    if (act && !(json_is_string(act) && !strcmp(json_string_value(act), "gelu"))) {
        err_set(e, ERR_UNSUPPORTED, "%s: hidden_act: expected \"gelu\" (exact erf GELU)", path);
        goto done;
    }
    json_t *pet = json_object_get(root, "position_embedding_type");
    if (pet && !(json_is_string(pet) && !strcmp(json_string_value(pet), "absolute"))) {
        err_set(e, ERR_UNSUPPORTED, "%s: position_embedding_type: expected \"absolute\"", path);
        goto done;
    }
    rc = 0;
done:
    json_decref(root);
    free(path);
    return rc;
}

/* tokenizer_config.json's model_max_length, or 0 when absent or the
 * "unlimited" placeholder (1e30) transformers writes. */
static int tokenizer_max_length(const char *model_dir) {
    char *path = path_join(model_dir, "tokenizer_config.json");
    json_t *root = json_load_file(path, 0, NULL);
    free(path);
    json_t *v = json_object_get(root, "model_max_length");
    int n = json_is_integer(v) && json_integer_value(v) > 0 && json_integer_value(v) < (1 << 24)
                ? (int)json_integer_value(v)
                : 0;
    json_decref(root);
    return n;
}

/* sentence-transformers: max_seq_length if set, else the smaller of the
 * tokenizer's model_max_length and max_position_embeddings. */
static int pick_max_seq_len(const EncoderStConfig *sc, int max_pos) {
    if (sc->max_seq_len > 0) {
        if (sc->max_seq_len > max_pos)
            log_warn("%s: max_seq_length %d exceeds max_position_embeddings %d; using %d", sc->model_dir,
                     sc->max_seq_len, max_pos, max_pos);
        return sc->max_seq_len < max_pos ? sc->max_seq_len : max_pos;
    }
    int t = tokenizer_max_length(sc->model_dir);
    return t > 0 && t < max_pos ? t : max_pos;
}

static int config_from_hf(const EncoderStConfig *sc, EncoderConfig *c, Err *e) {
    ModelConfig mc;
    if (hf_config_load(sc->model_dir, &mc, e)) return -1;
    if (mc.arch != ARCH_BERT)
        return err_set(e, ERR_UNSUPPORTED, "%s/config.json: architectures: expected BertModel, got %s",
                       sc->model_dir, model_arch_name(mc.arch));
    if (mc.hidden_size % mc.n_heads)
        return err_set(e, ERR_PARSE, "%s/config.json: hidden_size %d is not a multiple of num_attention_heads %d",
                       sc->model_dir, mc.hidden_size, mc.n_heads);
    if (check_bert_variant(sc->model_dir, e)) return -1;
    *c = (EncoderConfig){
        .hidden = mc.hidden_size,
        .n_layers = mc.n_layers,
        .n_heads = mc.n_heads,
        .intermediate = mc.intermediate_size,
        .vocab = mc.vocab_size,
        .max_pos = mc.max_pos,
        .type_vocab = mc.type_vocab_size,
        .eps = mc.norm_eps,
        .max_seq_len = pick_max_seq_len(sc, mc.max_pos),
        .pooling = sc->pooling,
        .normalize = sc->normalize,
        .lowercase = sc->lowercase,
    };
    if (sc->pool_dim && sc->pool_dim != c->hidden)
        return err_set(e, ERR_PARSE, "%s: Pooling embedding_dimension %d differs from hidden_size %d", sc->model_dir,
                       sc->pool_dim, c->hidden);
    return 0;
}

static Encoder *encoder_alloc(void) {
    Encoder *enc = xcalloc(1, sizeof *enc);
    enc->threads = pool_cpu_count();
    enc->tp = tp_create(enc->threads);
    enc->mu = xmalloc(sizeof *enc->mu);
    pthread_mutex_init(enc->mu, NULL);
    return enc;
}

Encoder *encoder_load(const char *dir, Err *e) {
    EncoderStConfig sc;
    if (encoder_st_config_load(dir, &sc, e)) return NULL;
    Encoder *enc = encoder_alloc();
    if (config_from_hf(&sc, &enc->cfg, e)) goto fail;
    if (!(enc->tok = tok_load_hf(sc.model_dir, e))) {
        err_wrap(e, "%s: tokenizer", sc.model_dir);
        goto fail;
    }
    if (tok_vocab_size(enc->tok) > enc->cfg.vocab) {
        err_set(e, ERR_PARSE, "%s: tokenizer has %d tokens but config.json vocab_size is %d", sc.model_dir,
                tok_vocab_size(enc->tok), enc->cfg.vocab);
        goto fail;
    }
    /* the file itself when there is one, so that messages name it */
    char *weights = path_join(sc.model_dir, "model.safetensors");
    enc->st = st_open(file_exists(weights) ? weights : sc.model_dir, e);
    free(weights);
    if (!enc->st) goto fail;
    if (bind_weights(enc, sc.model_dir, e)) goto fail;
    log_debug("%s: BERT %d layers, hidden %d, %s pooling%s, max %d tokens", dir, enc->cfg.n_layers,
              enc->cfg.hidden, encoder_pooling_name(enc->cfg.pooling), enc->cfg.normalize ? ", normalised" : "",
              enc->cfg.max_seq_len);
    encoder_st_config_free(&sc);
    return enc;
fail:
    encoder_st_config_free(&sc);
    encoder_free(enc);
    return NULL;
}

/* n floats from N(mean, std). */
static const float *random_block(Encoder *enc, Rng *r, size_t n, float mean, float std) {
    float *p = own(enc, xmalloc(n * sizeof *p));
    for (size_t i = 0; i < n; i++) p[i] = mean + std * rng_normal(r);
    return p;
}

Encoder *encoder_new_random(const EncoderConfig *cfg, uint64_t seed, Err *e) {
    const EncoderConfig *c = cfg;
    if (c->hidden <= 0 || c->n_heads <= 0 || c->hidden % c->n_heads || c->n_layers <= 0 || c->intermediate <= 0 ||
        c->vocab <= 0 || c->max_pos <= 0 || c->max_seq_len <= 0 || c->max_seq_len > c->max_pos || c->pooling < 0 ||
        c->pooling > ENC_POOL_LASTTOKEN) {
        err_set(e, ERR_ARG, "encoder_new_random: inconsistent shape");
        return NULL;
    }
    Encoder *enc = encoder_alloc();
    enc->cfg = *cfg;
    Rng r;
    rng_seed(&r, seed);
    size_t h = (size_t)c->hidden, m = (size_t)c->intermediate;
    const float s = 0.1f; /* as the fixture model: large enough for peaked attention */
    EncoderWeights *w = &enc->w;
    w->word = random_block(enc, &r, (size_t)c->vocab * h, 0, s);
    w->pos = random_block(enc, &r, (size_t)c->max_pos * h, 0, s);
    w->type0 = c->type_vocab > 0 ? random_block(enc, &r, h, 0, s) : NULL;
    w->emb_ln_w = random_block(enc, &r, h, 1, 0.1f);
    w->emb_ln_b = random_block(enc, &r, h, 0, 0.1f);
    w->layers = xcalloc((size_t)c->n_layers, sizeof *w->layers);
    for (int l = 0; l < c->n_layers; l++) {
        EncoderLayer *L = &w->layers[l];
        L->wq = random_block(enc, &r, h * h, 0, s);
        L->bq = random_block(enc, &r, h, 0, s);
        L->wk = random_block(enc, &r, h * h, 0, s);
        L->bk = random_block(enc, &r, h, 0, s);
        L->wv = random_block(enc, &r, h * h, 0, s);
        L->bv = random_block(enc, &r, h, 0, s);
        L->wo = random_block(enc, &r, h * h, 0, s);
        L->bo = random_block(enc, &r, h, 0, s);
        L->ln1_w = random_block(enc, &r, h, 1, 0.1f);
        L->ln1_b = random_block(enc, &r, h, 0, 0.1f);
        L->w1 = random_block(enc, &r, m * h, 0, s);
        L->b1 = random_block(enc, &r, m, 0, s);
        L->w2 = random_block(enc, &r, h * m, 0, s);
        L->b2 = random_block(enc, &r, h, 0, s);
        L->ln2_w = random_block(enc, &r, h, 1, 0.1f);
        L->ln2_b = random_block(enc, &r, h, 0, 0.1f);
    }
    return enc;
}

void encoder_free(Encoder *enc) {
    if (!enc) return;
    for (int i = 0; i < enc->n_owned; i++) free(enc->owned[i]);
    free(enc->owned);
    free(enc->w.layers);
    if (enc->st) st_close(enc->st);
    if (enc->tok) tok_free(enc->tok);
    tp_free(enc->tp);
    pthread_mutex_destroy(enc->mu);
    free(enc->mu);
    free(enc);
}

const EncoderConfig *encoder_config(const Encoder *enc) { return &enc->cfg; }
int encoder_dim(const Encoder *enc) { return enc->cfg.hidden; }
void encoder_set_threads(Encoder *enc, int threads) {
    pthread_mutex_lock(enc->mu);
    enc->threads = threads > 0 ? threads : 1;
    tp_free(enc->tp);
    enc->tp = tp_create(enc->threads);
    pthread_mutex_unlock(enc->mu);
}
