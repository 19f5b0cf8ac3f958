/* convert_tok: a Hugging Face tokenizer as GGUF tokenizer.* metadata, with
 * the rules of llama.cpp's converter (get_vocab_base and SpecialVocab):
 *   - tokens: id i's vocabulary text; added tokens by their content, CONTROL
 *     when special or when they look special (<|...|>), else USER_DEFINED;
 *     ids the tokenizer lacks up to config's vocab_size are "[PAD<i>]",
 *     UNUSED;
 *   - merges "left right" (pairs with spaces get them as U+0120);
 *   - special ids from tokenizer_config.json's *_token strings, then
 *     config.json's *_token_id for those still unset;
 *   - the pre-tokenizer is named by its regex, since llama.cpp selects its
 *     regex by that name.
 * Only byte-level BPE is handled (Llama 3, Qwen2/2.5/3, and the Mistral
 * releases that use a byte-level tokenizer); SentencePiece-style
 * tokenizer.json files are refused with that reason. */
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "base/fileio.h"
#include "base/mem.h"
#include "formats/gguf_write.h"
#include "formats/hfdir.h"
#include "model/convert.h"
#include "tok/tok.h"

/* llama.cpp's names for the regexes it knows (llama-vocab.cpp); a regex
 * appears once, under the name llama.cpp's converter gives it. */
static const struct {
    const char *name, *regex;
} PRE[] = {
    {"llama-bpe", "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}{1,3}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|"
                  "\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"},
    {"qwen2", "(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\\r\\n\\p{L}\\p{N}]?\\p{L}+|\\p{N}| ?[^\\s\\p{L}\\p{N}]+[\\r\\n]*|"
              "\\s*[\\r\\n]+|\\s+(?!\\S)|\\s+"},
};

typedef struct Vocab {
    int n;
    char **text;    /* [n] */
    int32_t *type;  /* [n] TOK_TYPE_* */
} Vocab;

static void vocab_free(Vocab *v) {
    for (int i = 0; i < v->n; i++) free(v->text[i]);
    free(v->text);
    free(v->type);
}

static int looks_special(const char *s) {
    size_t n = strlen(s);
    return n >= 4 && !strncmp(s, "<|", 2) && !strcmp(s + n - 2, "|>");
}

/* Replaces every "▁" in s by a space (in place). */
static void meta_to_space(char *s) {
    char *o = s;
    for (const char *p = s; *p;) {
        if (!strncmp(p, "\xe2\x96\x81", 3)) *o++ = ' ', p += 3;
        else *o++ = *p++;
    }
    *o = 0;
}

static int read_vocab(json_t *tj, const char *path, int vocab_size, Vocab *v, Err *e) {
    v->n = vocab_size;
    v->text = xcalloc((size_t)vocab_size, sizeof(char *));
    v->type = xcalloc((size_t)vocab_size, sizeof(int32_t));
    json_t *vocab = json_object_get(json_object_get(tj, "model"), "vocab"), *id;
    if (!json_is_object(vocab)) return err_set(e, ERR_PARSE, "%s: model.vocab: expected an object", path);
    const char *text;
    json_object_foreach(vocab, text, id) {
        json_int_t i = json_integer_value(id);
        if (!json_is_integer(id) || i < 0 || i >= vocab_size)
            return err_set(e, ERR_PARSE, "%s: model.vocab[\"%s\"]: id outside config.json's vocab_size %d", path, text,
                           vocab_size);
        free(v->text[i]);
        v->text[i] = xstrdup(text);
        v->type[i] = TOK_TYPE_NORMAL;
    }
    json_t *added = json_object_get(tj, "added_tokens"), *a;
    size_t k;
    json_array_foreach(added, k, a) {
        json_t *jid = json_object_get(a, "id");
        const char *content = json_string_value(json_object_get(a, "content"));
        json_int_t i = json_integer_value(jid);
        if (!json_is_integer(jid) || !content || i < 0 || i >= vocab_size)
            return err_set(e, ERR_PARSE, "%s: added_tokens[%zu]: expected an id below vocab_size %d and a content", path,
                           k, vocab_size);
        free(v->text[i]);
        v->text[i] = xstrdup(content);
        if (json_is_true(json_object_get(a, "special")) || looks_special(content)) {
            v->type[i] = TOK_TYPE_CONTROL;
        } else {
            meta_to_space(v->text[i]);
            v->type[i] = TOK_TYPE_USER_DEFINED;
        }
    }
    for (int i = 0; i < vocab_size; i++)
        if (!v->text[i]) {
            v->text[i] = xasprintf("[PAD%d]", i);
            v->type[i] = TOK_TYPE_UNUSED;
        }
    return 0;
}

/* "left right" strings; the list form [left, right] (transformers >= 4.45)
 * may hold spaces, which llama.cpp stores as U+0120. */
static int write_merges(GgufWriter *w, json_t *tj, const char *path, Err *e) {
    json_t *merges = json_object_get(json_object_get(tj, "model"), "merges"), *m;
    if (!json_is_array(merges)) return err_set(e, ERR_PARSE, "%s: model.merges: expected an array", path);
    size_t n = json_array_size(merges), i;
    char **out = xcalloc(n ? n : 1, sizeof(char *));
    int rc = 0;
    json_array_foreach(merges, i, m) {
        if (json_is_string(m)) {
            out[i] = xstrdup(json_string_value(m));
            continue;
        }
        const char *l = json_string_value(json_array_get(m, 0)), *r = json_string_value(json_array_get(m, 1));
        if (!l || !r || json_array_size(m) != 2) {
            rc = err_set(e, ERR_PARSE, "%s: model.merges[%zu]: expected \"a b\" or [\"a\", \"b\"]", path, i);
            break;
        }
        StrBuf b;
        sb_init(&b);
        for (int side = 0; side < 2; side++) {
            if (side) sb_appendc(&b, ' ');
            for (const char *p = side ? r : l; *p; p++)
                if (*p == ' ') sb_append(&b, "\xc4\xa0");
                else sb_appendc(&b, *p);
        }
        out[i] = sb_take(&b);
    }
    if (!rc) gguf_set_arr_str(w, "tokenizer.ggml.merges", (const char *const *)out, n);
    for (size_t j = 0; j < n; j++) free(out[j]);
    free(out);
    return rc;
}

/* Finds the pre-tokenizer's byte-level flag and its Split regex. */
static void scan_pre(json_t *p, int *byte_level, const char **regex, int *n_regex, int *byte_regex) {
    const char *type = json_string_value(json_object_get(p, "type"));
    if (!type) return;
    if (!strcmp(type, "Sequence")) {
        json_t *x;
        size_t i;
        json_array_foreach(json_object_get(p, "pretokenizers"), i, x) scan_pre(x, byte_level, regex, n_regex, byte_regex);
    } else if (!strcmp(type, "ByteLevel")) {
        *byte_level = 1;
        json_t *ur = json_object_get(p, "use_regex");
        *byte_regex |= !json_is_boolean(ur) || json_is_true(ur);
    } else if (!strcmp(type, "Split")) {
        *regex = json_string_value(json_object_get(json_object_get(p, "pattern"), "Regex"));
        (*n_regex)++;
    }
}

static int pre_name(json_t *tj, const char *path, const char **name, Err *e) {
    int byte_level = 0, n_regex = 0, byte_regex = 0;
    const char *regex = NULL;
    json_t *model = json_object_get(tj, "model");
    const char *mtype = json_string_value(json_object_get(model, "type"));
    if (!mtype || strcmp(mtype, "BPE"))
        return err_set(e, ERR_UNSUPPORTED, "%s: model type \"%s\": GGUF export handles BPE tokenizers only", path,
                       mtype ? mtype : "?");
    scan_pre(json_object_get(tj, "pre_tokenizer"), &byte_level, &regex, &n_regex, &byte_regex);
    if (!byte_level)
        return err_set(e, ERR_UNSUPPORTED,
                       "%s: a SentencePiece-style tokenizer (no ByteLevel pre-tokenizer): GGUF export handles "
                       "byte-level BPE tokenizers only (Llama 3, Qwen2/2.5/3)",
                       path);
    if (n_regex == 0 && byte_regex) {
        *name = "gpt-2";
        return 0;
    }
    for (size_t i = 0; n_regex == 1 && regex && i < sizeof PRE / sizeof *PRE; i++)
        if (!strcmp(regex, PRE[i].regex)) {
            *name = PRE[i].name;
            return 0;
        }
    return err_set(e, ERR_UNSUPPORTED,
                   "%s: pre_tokenizer: its regex is not one llama.cpp knows by name (known: the GPT-2, Llama 3 and "
                   "Qwen2 regexes)",
                   path);
}

static int find_text(const Vocab *v, const char *s) {
    for (int i = v->n - 1; i >= 0; i--) /* added tokens live at the end */
        if (!strcmp(v->text[i], s)) return i;
    return -1;
}

/* tokenizer_config.json's "<kind>_token" (a string or {"content": ...}). */
static int config_token(json_t *tc, const char *kind, const Vocab *v) {
    char key[32];
    snprintf(key, sizeof key, "%s_token", kind);
    json_t *x = json_object_get(tc, key);
    if (json_is_object(x)) x = json_object_get(x, "content");
    return json_is_string(x) ? find_text(v, json_string_value(x)) : -1;
}

/* config.json's "<kind>_token_id" (an integer, or a list whose first one). */
static int config_id(json_t *cfg, const char *kind) {
    char key[32];
    snprintf(key, sizeof key, "%s_token_id", kind);
    json_t *x = json_object_get(cfg, key);
    if (json_is_array(x)) x = json_array_get(x, 0);
    return json_is_integer(x) ? (int)json_integer_value(x) : -1;
}

/* flags: JSON_DECODE_INT_AS_REAL for tokenizer_config.json, whose
 * model_max_length (1e30) overflows a JSON integer. */
static json_t *load_optional(const char *dir, const char *file, size_t flags) {
    char *p = path_join(dir, file);
    json_t *j = json_load_file(p, flags, NULL);
    free(p);
    return j;
}

static void set_special_ids(GgufWriter *w, const char *dir, const Vocab *v) {
    json_t *tc = load_optional(dir, "tokenizer_config.json", JSON_DECODE_INT_AS_REAL);
    json_t *cfg = load_optional(dir, "config.json", 0);
    static const char *const KINDS[] = {"bos", "eos", "unk", "pad"};
    static const char *const KEYS[] = {"tokenizer.ggml.bos_token_id", "tokenizer.ggml.eos_token_id",
                                       "tokenizer.ggml.unknown_token_id", "tokenizer.ggml.padding_token_id"};
    for (int k = 0; k < 4; k++) {
        int id = config_token(tc, KINDS[k], v);
        if (id < 0) id = config_id(cfg, KINDS[k]);
        if (id >= 0 && id < v->n) gguf_set_u32(w, KEYS[k], (uint32_t)id);
    }
    json_decref(tc);
    json_decref(cfg);
}

/* add_bos / add_eos: whether the post-processor's single-sequence template
 * puts a special token before / after the text (what transformers does on
 * encode), so llama.cpp and aloe add the same tokens. */
static void set_add_special(GgufWriter *w, json_t *tj) {
    int bos = 0, eos = 0;
    json_t *pp = json_object_get(tj, "post_processor"), *list = NULL, *x;
    const char *type = json_string_value(json_object_get(pp, "type"));
    if (type && !strcmp(type, "Sequence")) {
        size_t i;
        json_array_foreach(json_object_get(pp, "processors"), i, x) {
            const char *t = json_string_value(json_object_get(x, "type"));
            if (t && !strcmp(t, "TemplateProcessing")) list = json_object_get(x, "single");
        }
    } else if (type && !strcmp(type, "TemplateProcessing")) {
        list = json_object_get(pp, "single");
    }
    size_t n = json_array_size(list);
    if (n) {
        bos = json_object_get(json_array_get(list, 0), "SpecialToken") != NULL;
        eos = json_object_get(json_array_get(list, n - 1), "SpecialToken") != NULL;
    }
    gguf_set_bool(w, "tokenizer.ggml.add_bos_token", bos);
    gguf_set_bool(w, "tokenizer.ggml.add_eos_token", eos);
}

int convert_set_tokenizer(GgufWriter *w, const char *dir, int vocab_size, Err *e) {
    char *path = path_join(dir, "tokenizer.json");
    json_error_t je;
    json_t *tj = json_load_file(path, 0, &je);
    if (!tj) {
        int rc = file_exists(path) ? err_set(e, ERR_PARSE, "%s:%d: %s", path, je.line, je.text)
                                   : err_set(e, ERR_NOTFOUND, "%s: not found (GGUF export needs the tokenizer)", path);
        free(path);
        return rc;
    }
    Vocab v = {0};
    const char *pre = NULL;
    int rc = pre_name(tj, path, &pre, e) || read_vocab(tj, path, vocab_size, &v, e) ? -1 : 0;
    if (!rc) {
        gguf_set_str(w, "tokenizer.ggml.model", "gpt2");
        gguf_set_str(w, "tokenizer.ggml.pre", pre);
        gguf_set_arr_str(w, "tokenizer.ggml.tokens", (const char *const *)v.text, (uint64_t)v.n);
        gguf_set_arr(w, "tokenizer.ggml.token_type", GGUF_I32, v.type, (uint64_t)v.n);
        rc = write_merges(w, tj, path, e);
    }
    if (!rc) {
        set_special_ids(w, dir, &v);
        set_add_special(w, tj);
        char *tpl = NULL;
        rc = hf_chat_template_load(dir, NULL, &tpl, e);
        if (!rc && tpl) gguf_set_str(w, "tokenizer.chat_template", tpl);
        free(tpl);
    }
    vocab_free(&v);
    json_decref(tj);
    free(path);
    return rc;
}
