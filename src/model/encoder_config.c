/* encoder_config: the sentence-transformers side of a model directory —
 * which modules it chains (modules.json), how the Pooling module pools
 * (1_Pooling/config.json, in both the pooling_mode string form and the
 * older pooling_mode_* booleans) and the Transformer's
 * sentence_bert_config.json. The BERT hyper-parameters themselves come from
 * formats/hfdir. */
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "base/fileio.h"
#include "base/log.h"
#include "base/mem.h"
#include "formats/hfdir.h"
#include "model/encoder_internal.h"

static const char *const POOL_NAMES[] = {"mean", "cls", "max", "mean_sqrt_len_tokens", "lasttoken"};

const char *encoder_pooling_name(int pooling) {
    if (pooling < 0 || pooling >= (int)(sizeof POOL_NAMES / sizeof *POOL_NAMES)) return "?";
    return POOL_NAMES[pooling];
}

/* Parses path as JSON; a missing file is ERR_NOTFOUND naming it. */
static json_t *load_json(const char *path, Err *e) {
    if (!file_exists(path)) {
        err_set(e, ERR_NOTFOUND, "%s: file not found", path);
        return NULL;
    }
    json_error_t je;
    json_t *root = json_load_file(path, 0, &je);
    if (!root) err_set(e, ERR_PARSE, "%s:%d: %s", path, je.line, je.text);
    return root;
}

static int pool_from_name(const char *name, const char *path, int *out, Err *e) {
    for (int i = 0; i < (int)(sizeof POOL_NAMES / sizeof *POOL_NAMES); i++)
        if (!strcmp(name, POOL_NAMES[i])) {
            *out = i;
            return 0;
        }
    return err_set(e, ERR_UNSUPPORTED,
                   "%s: pooling_mode \"%s\" is not supported (mean, cls, max, mean_sqrt_len_tokens, "
                   "lasttoken)",
                   path, name);
}

/* The older form: one boolean per mode, several may be true (their results
 * are concatenated by sentence-transformers; we support exactly one). */
static int pool_from_flags(json_t *root, const char *path, int *out, Err *e) {
    static const struct {
        const char *key;
        int mode;
    } flags[] = {
        {"pooling_mode_mean_tokens", ENC_POOL_MEAN},
        {"pooling_mode_cls_token", ENC_POOL_CLS},
        {"pooling_mode_max_tokens", ENC_POOL_MAX},
        {"pooling_mode_mean_sqrt_len_tokens", ENC_POOL_MEAN_SQRT_LEN},
        {"pooling_mode_lasttoken", ENC_POOL_LASTTOKEN},
        {"pooling_mode_weightedmean_tokens", -1},
    };
    int n_on = 0;
    for (size_t i = 0; i < sizeof flags / sizeof *flags; i++) {
        json_t *v = json_object_get(root, flags[i].key);
        if (!json_is_true(v)) continue;
        if (flags[i].mode < 0)
            return err_set(e, ERR_UNSUPPORTED, "%s: %s is not supported (mean, cls, max, mean_sqrt_len, lasttoken)",
                           path, flags[i].key);
        *out = flags[i].mode;
        n_on++;
    }
    if (n_on == 0)
        return err_set(e, ERR_PARSE, "%s: no pooling mode: expected \"pooling_mode\" or a true pooling_mode_* field",
                       path);
    if (n_on > 1)
        return err_set(e, ERR_UNSUPPORTED,
                       "%s: %d pooling_mode_* fields are true; concatenated poolings are not supported", path, n_on);
    return 0;
}

static int read_pooling(const char *module_dir, EncoderStConfig *sc, Err *e) {
    char *path = path_join(module_dir, "config.json");
    json_t *root = load_json(path, e);
    int rc = -1;
    if (!root) goto done;
    if (!json_is_object(root)) {
        err_set(e, ERR_PARSE, "%s: expected a JSON object", path);
        goto done;
    }
    json_t *mode = json_object_get(root, "pooling_mode");
    if (json_is_array(mode) && json_array_size(mode) == 1) mode = json_array_get(mode, 0);
    if (mode && !json_is_null(mode)) {
        if (!json_is_string(mode)) {
            err_set(e, ERR_UNSUPPORTED, "%s: pooling_mode: expected one mode name as a string", path);
            goto done;
        }
        if (pool_from_name(json_string_value(mode), path, &sc->pooling, e)) goto done;
    } else if (pool_from_flags(root, path, &sc->pooling, e)) {
        goto done;
    }
    json_t *dim = json_object_get(root, "embedding_dimension");
    if (!dim) dim = json_object_get(root, "word_embedding_dimension");
    if (dim && !json_is_integer(dim)) {
        err_set(e, ERR_PARSE, "%s: embedding_dimension: expected an integer", path);
        goto done;
    }
    sc->pool_dim = dim ? (int)json_integer_value(dim) : 0;
    rc = 0;
done:
    json_decref(root);
    free(path);
    return rc;
}

/* sentence_bert_config.json is optional; so are both of its fields. */
static int read_sbert_config(const char *model_dir, EncoderStConfig *sc, Err *e) {
    char *path = path_join(model_dir, "sentence_bert_config.json");
    int rc = -1;
    json_t *root = NULL;
    if (!file_exists(path)) {
        rc = 0;
        goto done;
    }
    if (!(root = load_json(path, e))) goto done;
    json_t *msl = json_object_get(root, "max_seq_length");
    if (msl && !json_is_null(msl)) {
        if (!json_is_integer(msl) || json_integer_value(msl) < 2) {
            err_set(e, ERR_PARSE, "%s: max_seq_length: expected an integer >= 2", path);
            goto done;
        }
        sc->max_seq_len = (int)json_integer_value(msl);
    }
    json_t *lc = json_object_get(root, "do_lower_case");
    if (lc && !json_is_boolean(lc)) {
        err_set(e, ERR_PARSE, "%s: do_lower_case: expected true or false", path);
        goto done;
    }
    sc->lowercase = json_is_true(lc);
    rc = 0;
done:
    json_decref(root);
    free(path);
    return rc;
}

/* "sentence_transformers.models.Pooling" and, since v6,
 * "sentence_transformers.base.modules.pooling.Pooling": the class name is
 * what matters. */
static const char *module_class(const char *type) {
    const char *dot = strrchr(type, '.');
    return dot ? dot + 1 : type;
}

static int read_modules(const char *dir, const char *path, json_t *root, EncoderStConfig *sc, Err *e) {
    if (!json_is_array(root)) return err_set(e, ERR_PARSE, "%s: expected a JSON array of modules", path);
    int stage = 0; /* 0: want Transformer, 1: want Pooling, 2: Normalize allowed, 3: done */
    for (size_t i = 0; i < json_array_size(root); i++) {
        json_t *m = json_array_get(root, i);
        const char *type = json_string_value(json_object_get(m, "type"));
        const char *mpath = json_string_value(json_object_get(m, "path"));
        if (!type || !mpath)
            return err_set(e, ERR_PARSE, "%s: module %zu: expected string fields \"type\" and \"path\"", path, i);
        const char *cls = module_class(type);
        char *mdir = mpath[0] ? path_join(dir, mpath) : xstrdup(dir);
        int rc = 0;
        if (!strcmp(cls, "Transformer") && stage == 0) {
            sc->model_dir = mdir;
            mdir = NULL;
            rc = read_sbert_config(sc->model_dir, sc, e);
            stage = 1;
        } else if (!strcmp(cls, "Pooling") && stage == 1) {
            rc = read_pooling(mdir, sc, e);
            stage = 2;
        } else if (!strcmp(cls, "Normalize") && stage == 2) {
            sc->normalize = 1;
            stage = 3;
        } else {
            rc = err_set(e, ERR_UNSUPPORTED,
                         "%s: module %zu (%s): expected the chain Transformer, Pooling[, Normalize]", path, i, type);
        }
        free(mdir);
        if (rc) return -1;
    }
    if (stage < 2)
        return err_set(e, ERR_PARSE, "%s: no %s module", path, stage == 0 ? "Transformer" : "Pooling");
    return 0;
}

int encoder_st_config_load(const char *dir, EncoderStConfig *sc, Err *e) {
    memset(sc, 0, sizeof *sc);
    if (!file_is_dir(dir)) return err_set(e, ERR_NOTFOUND, "%s: not a model directory", dir);
    char *path = path_join(dir, "modules.json");
    int rc = -1;
    if (!file_exists(path)) {
        /* Say what we assume only about a directory that is a BERT model. */
        ModelConfig mc;
        Err ignored;
        if (hf_config_load(dir, &mc, &ignored) == 0 && mc.arch == ARCH_BERT)
            log_info("%s: no modules.json: a plain BERT model, using mean pooling and L2 normalisation", dir);
        sc->model_dir = xstrdup(dir);
        sc->pooling = ENC_POOL_MEAN;
        sc->normalize = 1;
        rc = 0;
        goto done;
    }
    json_t *root = load_json(path, e);
    if (!root) goto done;
    rc = read_modules(dir, path, root, sc, e);
    json_decref(root);
done:
    free(path);
    if (rc) encoder_st_config_free(sc);
    return rc;
}

void encoder_st_config_free(EncoderStConfig *sc) {
    free(sc->model_dir);
    sc->model_dir = NULL;
}

int encoder_is_model_dir(const char *dir) {
    if (!file_is_dir(dir)) return 0;
    char *modules = path_join(dir, "modules.json");
    int st = file_exists(modules);
    free(modules);
    if (st) return 1;
    ModelConfig mc;
    Err e;
    return hf_config_load(dir, &mc, &e) == 0 && mc.arch == ARCH_BERT;
}
