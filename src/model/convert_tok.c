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
 * Byte-level BPE (Llama 3, Qwen2/2.5/3, Mistral-Nemo) becomes llama.cpp's
 * "gpt2" model. SentencePiece-style BPE (Llama 2, Mistral 7B: "▁" for
 * spaces, <0xNN> byte fallback) becomes its "llama" model, which merges by
 * token score rather than by merge rank: a token gets minus the rank of the
 * first merge that makes it, so the order is the tokenizer.json's (llama.cpp
 * would read scores from tokenizer.model; aloe reads tokenizer.json only).
 * A Metaspace pre-tokenizer with prepend_scheme "first" differs from
 * SentencePiece for a text that starts with a space (SentencePiece adds a
 * "▁" anyway); GGUF cannot say "first", so such texts may tokenise
 * differently there. */
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "base/fileio.h"
#include "base/mem.h"
#include "formats/gguf_write.h"
#include "model/convert.h"
#include "tok/chat_template.h"
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
    float *score;   /* [n] SentencePiece-style only, else NULL */
} Vocab;

static void vocab_free(Vocab *v) {
    for (int i = 0; v->text && i < v->n; i++) free(v->text[i]);
    free(v->text);
    free(v->type);
    free(v->score);
}

/* What the tokenizer.json is, as far as the GGUF cares. */
typedef struct TokShape {
    int spm;          /* SentencePiece-style (else byte-level) */
    const char *pre;  /* tokenizer.ggml.pre */
    int space_prefix; /* SentencePiece-style: "▁" put before the text */
} TokShape;

static int is_byte_token(const char *s) {
    return strlen(s) == 6 && !strncmp(s, "<0x", 3) && s[5] == '>' && strchr("0123456789ABCDEFabcdef", s[3]) &&
           strchr("0123456789ABCDEFabcdef", s[4]);
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

static int read_vocab(json_t *tj, const char *path, int vocab_size, int spm, Vocab *v, Err *e) {
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
        v->type[i] = spm && is_byte_token(text) ? TOK_TYPE_BYTE : TOK_TYPE_NORMAL;
    }
    const char *unk = json_string_value(json_object_get(json_object_get(tj, "model"), "unk_token"));
    json_t *unk_id = unk ? json_object_get(vocab, unk) : NULL;
    if (spm && json_is_integer(unk_id)) v->type[json_integer_value(unk_id)] = TOK_TYPE_UNKNOWN;
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
        if (v->type[i] == TOK_TYPE_UNKNOWN || v->type[i] == TOK_TYPE_BYTE) {
            continue; /* SentencePiece's own kinds, listed as added tokens too */
        } else if (json_is_true(json_object_get(a, "special")) || looks_special(content)) {
            v->type[i] = TOK_TYPE_CONTROL;
        } else if (spm) {
            v->type[i] = TOK_TYPE_USER_DEFINED;
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

/* The two sides of merge i (either form), or -1. */
static int merge_sides(json_t *m, char **l, char **r) {
    if (json_is_string(m)) {
        const char *s = json_string_value(m), *sp = strchr(s, ' ');
        if (!sp || sp == s || strchr(sp + 1, ' ')) return -1;
        *l = xstrndup(s, (size_t)(sp - s));
        *r = xstrdup(sp + 1);
        return 0;
    }
    const char *a = json_string_value(json_array_get(m, 0)), *b = json_string_value(json_array_get(m, 1));
    if (!a || !b || json_array_size(m) != 2) return -1;
    *l = xstrdup(a);
    *r = xstrdup(b);
    return 0;
}

/* SentencePiece-style scores: -(rank of the first merge making the token);
 * tokens no merge makes (characters, bytes, specials) rank after all. */
static int spm_scores(json_t *tj, const char *path, Vocab *v, Err *e) {
    json_t *model = json_object_get(tj, "model"), *vocab = json_object_get(model, "vocab");
    json_t *merges = json_object_get(model, "merges"), *m;
    size_t n = json_array_size(merges), i;
    v->score = xmalloc((size_t)v->n * sizeof(float));
    for (int k = 0; k < v->n; k++) v->score[k] = -(float)n - 1;
    json_array_foreach(merges, i, m) {
        char *l, *r;
        if (merge_sides(m, &l, &r))
            return err_set(e, ERR_PARSE, "%s: model.merges[%zu]: expected \"a b\" or [\"a\", \"b\"]", path, i);
        char *both = xasprintf("%s%s", l, r);
        json_t *id = json_object_get(vocab, both);
        free(l), free(r), free(both);
        json_int_t k = json_integer_value(id);
        if (!json_is_integer(id) || k < 0 || k >= v->n)
            return err_set(e, ERR_PARSE, "%s: model.merges[%zu] makes a token that is not in the vocabulary", path, i);
        if (v->score[k] < -(float)i) v->score[k] = -(float)i;
    }
    return 0;
}

/* One side of a merge with its spaces as U+0120 ("Ġ"). */
static void put_side(StrBuf *b, const char *s) {
    for (; *s; s++)
        if (*s == ' ') sb_append(b, "\xc4\xa0");
        else sb_appendc(b, *s);
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
        char *l, *r;
        if (merge_sides(m, &l, &r)) {
            rc = err_set(e, ERR_PARSE, "%s: model.merges[%zu]: expected \"a b\" or [\"a\", \"b\"]", path, i);
            break;
        }
        StrBuf b;
        sb_init(&b);
        put_side(&b, l);
        sb_appendc(&b, ' ');
        put_side(&b, r);
        out[i] = sb_take(&b);
        free(l), free(r);
    }
    if (!rc) gguf_set_arr_str(w, "tokenizer.ggml.merges", (const char *const *)out, n);
    for (size_t j = 0; j < n; j++) free(out[j]);
    free(out);
    return rc;
}

typedef struct PreScan {
    int byte_level, byte_regex, n_regex;
    const char *regex;
    const char *meta_scheme; /* Metaspace's prepend_scheme ("always", "first", "never"), NULL if none */
    int prepend;             /* a Prepend normaliser */
} PreScan;

static void scan_pre(json_t *p, PreScan *ps) {
    const char *type = json_string_value(json_object_get(p, "type"));
    if (!type) return;
    if (!strcmp(type, "Sequence")) {
        json_t *x;
        size_t i;
        json_array_foreach(json_object_get(p, "pretokenizers"), i, x) scan_pre(x, ps);
    } else if (!strcmp(type, "ByteLevel")) {
        ps->byte_level = 1;
        json_t *ur = json_object_get(p, "use_regex");
        ps->byte_regex |= !json_is_boolean(ur) || json_is_true(ur);
    } else if (!strcmp(type, "Split")) {
        ps->regex = json_string_value(json_object_get(json_object_get(p, "pattern"), "Regex"));
        ps->n_regex++;
    } else if (!strcmp(type, "Metaspace")) {
        ps->meta_scheme = json_string_value(json_object_get(p, "prepend_scheme"));
        if (!ps->meta_scheme) /* before prepend_scheme existed */
            ps->meta_scheme = json_is_false(json_object_get(p, "add_prefix_space")) ? "never" : "always";
    }
}

static void scan_norm(json_t *n, PreScan *ps) {
    const char *type = json_string_value(json_object_get(n, "type"));
    if (!type) return;
    if (!strcmp(type, "Sequence")) {
        json_t *x;
        size_t i;
        json_array_foreach(json_object_get(n, "normalizers"), i, x) scan_norm(x, ps);
    } else if (!strcmp(type, "Prepend")) {
        ps->prepend = 1;
    }
}

static int tok_shape(json_t *tj, const char *path, TokShape *sh, Err *e) {
    PreScan ps = {0};
    json_t *model = json_object_get(tj, "model");
    const char *mtype = json_string_value(json_object_get(model, "type"));
    if (!mtype || strcmp(mtype, "BPE"))
        return err_set(e, ERR_UNSUPPORTED, "%s: model type \"%s\": GGUF export handles BPE tokenizers only", path,
                       mtype ? mtype : "?");
    scan_pre(json_object_get(tj, "pre_tokenizer"), &ps);
    scan_norm(json_object_get(tj, "normalizer"), &ps);
    memset(sh, 0, sizeof *sh);
    if (!ps.byte_level) {
        if (!ps.meta_scheme && !ps.prepend && !json_is_true(json_object_get(model, "byte_fallback")))
            return err_set(e, ERR_UNSUPPORTED,
                           "%s: a BPE tokenizer that is neither byte-level (ByteLevel pre-tokenizer) nor "
                           "SentencePiece-style (Metaspace, Prepend normaliser or byte_fallback)",
                           path);
        sh->spm = 1;
        sh->pre = "default";
        sh->space_prefix = ps.prepend || (ps.meta_scheme && strcmp(ps.meta_scheme, "never"));
        return 0;
    }
    if (ps.n_regex == 0 && ps.byte_regex) {
        sh->pre = "gpt-2";
        return 0;
    }
    for (size_t i = 0; ps.n_regex == 1 && ps.regex && i < sizeof PRE / sizeof *PRE; i++)
        if (!strcmp(ps.regex, PRE[i].regex)) {
            sh->pre = PRE[i].name;
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

/* The template as transformers finds it (chat_template.jinja, .json or
 * tokenizer_config.json); none is not an error. */
static int set_chat_template(GgufWriter *w, const char *dir, Err *e) {
    char *tpl, *bos, *eos;
    if (chat_template_load_hf(dir, &tpl, &bos, &eos, e)) return e->code == ERR_NOTFOUND ? 0 : -1;
    gguf_set_str(w, "tokenizer.chat_template", tpl);
    free(tpl), free(bos), free(eos);
    return 0;
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
    TokShape sh;
    int rc = tok_shape(tj, path, &sh, e) || read_vocab(tj, path, vocab_size, sh.spm, &v, e) ? -1 : 0;
    if (!rc && sh.spm) rc = spm_scores(tj, path, &v, e);
    if (!rc) {
        gguf_set_str(w, "tokenizer.ggml.model", sh.spm ? "llama" : "gpt2");
        gguf_set_str(w, "tokenizer.ggml.pre", sh.pre);
        gguf_set_arr_str(w, "tokenizer.ggml.tokens", (const char *const *)v.text, (uint64_t)v.n);
        if (sh.spm) gguf_set_arr(w, "tokenizer.ggml.scores", GGUF_F32, v.score, (uint64_t)v.n);
        gguf_set_arr(w, "tokenizer.ggml.token_type", GGUF_I32, v.type, (uint64_t)v.n);
        if (sh.spm) gguf_set_bool(w, "tokenizer.ggml.add_space_prefix", sh.space_prefix);
        else rc = write_merges(w, tj, path, e);
    }
    if (!rc) {
        set_special_ids(w, dir, &v);
        set_add_special(w, tj);
        rc = set_chat_template(w, dir, e);
    }
    vocab_free(&v);
    json_decref(tj);
    free(path);
    return rc;
}
