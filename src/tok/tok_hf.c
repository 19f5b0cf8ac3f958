/* tok_hf: a Tokenizer from a Hugging Face tokenizer.json.
 *
 * Supported, as the tokenizers library defines them: models BPE and
 * WordPiece. BPE is either byte-level (GPT-2, Llama 3, Qwen: a ByteLevel
 * pre-tokenizer after optional regex Splits) or SentencePiece-style over
 * characters (Llama 2, Mistral v0.1: "▁" for spaces from a Metaspace
 * pre-tokenizer or Prepend/Replace normalisers, <0xNN> byte_fallback).
 * Normalisers NFC, BertNormalizer, Prepend, Replace(" " -> "▁") and
 * Sequences of them; pre-tokenizers Split (regex, Isolated), ByteLevel,
 * Metaspace, BertPreTokenizer; post-processors TemplateProcessing,
 * BertProcessing, RobertaProcessing, ByteLevel and Sequences. Anything else
 * is refused with its name rather than silently tokenised differently.
 * Special ids (bos/eos/pad) come from tokenizer_config.json (and
 * generation_config.json) beside the file when there is one. */
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "base/fileio.h"
#include "base/log.h"
#include "tok/tok_internal.h"
#include "tok/tok_json.h"

/* What the scanner collects. Strings go into one pool (offsets, since the
 * pool moves as it grows) to keep a 150k-token load to a few allocations. */
typedef struct {
    StrBuf pool;
    size_t *text; /* [n] offset of token id's text, NONE for a hole */
    int n, cap;
    size_t *merge; /* [2 * n_merges] offsets of left and right */
    int n_merges, cap_merges;
    int has_merges; /* the model section had a "merges" key */
    json_t *rest;  /* top-level keys but "model" */
    json_t *model; /* model keys but "vocab" and "merges" */
} HfFile;

#define NONE ((size_t)-1)

static void hf_free(HfFile *h) {
    sb_free(&h->pool);
    free(h->text);
    free(h->merge);
    json_decref(h->rest);
    json_decref(h->model);
}

static size_t pool_add(HfFile *h, const char *s, size_t n) {
    size_t at = h->pool.len;
    sb_appendn(&h->pool, s, n);
    sb_appendc(&h->pool, 0);
    return at;
}

static void set_text(HfFile *h, long id, const char *s, size_t n) {
    if (id >= h->cap) {
        int cap = h->cap ? h->cap : 1024;
        while (cap <= id) cap *= 2;
        h->text = xrealloc(h->text, cap * sizeof(size_t));
        for (int i = h->cap; i < cap; i++) h->text[i] = NONE;
        h->cap = cap;
    }
    if (id >= h->n) h->n = (int)id + 1;
    h->text[id] = pool_add(h, s, n);
}

static int put_json(JScan *j, json_t *obj, const char *key, const char *from, Err *e) {
    json_error_t je;
    json_t *v = json_loadb(from, j->p - from, JSON_DECODE_ANY, &je);
    if (!v) return err_set(e, ERR_PARSE, "%s: key \"%s\": %s", j->name, key, je.text);
    json_object_set_new(obj, key, v);
    return 0;
}

static int read_vocab(JScan *j, HfFile *h, StrBuf *tok, Err *e) {
    if (js_expect(j, '{', e)) return -1;
    if (js_peek(j, '}')) return 0;
    for (long count = 1;; count++) {
        long id;
        if (js_string(j, tok, e) || js_expect(j, ':', e) || js_int(j, &id, e)) return -1;
        if (id < 0 || id >= 4000000) return js_fail(j, e, "a token id between 0 and 4000000");
        set_text(h, id, tok->s, tok->len);
        if (js_peek(j, ',')) continue;
        if (js_expect(j, '}', e)) return -1;
        /* ids are dense in real files; far-off ids would make a huge table of holes */
        if (h->n > 2 * count + 1024)
            return err_set(e, ERR_PARSE, "%s: model.vocab: %ld tokens but ids up to %d (expected ids from 0 without large gaps)",
                           j->name, count, h->n - 1);
        return 0;
    }
}

static void push_merge(HfFile *h, const char *l, const char *r) {
    if (h->n_merges == h->cap_merges) {
        h->cap_merges = h->cap_merges ? h->cap_merges * 2 : 4096;
        h->merge = xrealloc(h->merge, 2 * h->cap_merges * sizeof(size_t));
    }
    h->merge[2 * h->n_merges] = pool_add(h, l, strlen(l));
    h->merge[2 * h->n_merges + 1] = pool_add(h, r, strlen(r));
    h->n_merges++;
}

/* merges: ["a b", ...] (tokenizers < 0.20) or [["a", "b"], ...] */
static int read_merges(JScan *j, HfFile *h, StrBuf *a, StrBuf *b, Err *e) {
    if (js_expect(j, '[', e)) return -1;
    if (js_peek(j, ']')) return 0;
    for (;;) {
        if (js_peek(j, '[')) {
            if (js_string(j, a, e) || js_expect(j, ',', e) || js_string(j, b, e) || js_expect(j, ']', e))
                return -1;
            push_merge(h, a->s, b->s);
        } else {
            if (js_string(j, a, e)) return -1;
            char *sp = strchr(a->s, ' ');
            if (!sp || strchr(sp + 1, ' ') || sp == a->s || !sp[1])
                return js_fail(j, e, "a merge of the form \"left right\"");
            *sp = 0;
            push_merge(h, a->s, sp + 1);
        }
        if (js_peek(j, ',')) continue;
        return js_expect(j, ']', e);
    }
}

static int read_model(JScan *j, HfFile *h, Err *e) {
    StrBuf key, a, b;
    sb_init(&key);
    sb_init(&a);
    sb_init(&b);
    int rc = js_expect(j, '{', e);
    h->model = json_object();
    if (!rc && !js_peek(j, '}')) {
        for (;;) {
            if ((rc = js_string(j, &key, e)) || (rc = js_expect(j, ':', e))) break;
            js_ws(j);
            if (!strcmp(key.s, "vocab")) {
                rc = read_vocab(j, h, &a, e);
            } else if (!strcmp(key.s, "merges")) {
                rc = read_merges(j, h, &a, &b, e);
                h->has_merges = 1;
            } else {
                const char *from = j->p;
                rc = js_skip(j, 0, e) || put_json(j, h->model, key.s, from, e) ? -1 : 0;
            }
            if (rc) break;
            if (js_peek(j, ',')) continue;
            rc = js_expect(j, '}', e);
            break;
        }
    }
    sb_free(&key);
    sb_free(&a);
    sb_free(&b);
    return rc;
}

static int read_buf(const char *buf, size_t len, const char *path, HfFile *h, Err *e) {
    JScan j = {buf, buf, buf + len, path};
    /* the strings take about half the file: size the pool once */
    h->pool.cap = len / 2 + 64;
    h->pool.s = xmalloc(h->pool.cap);
    h->pool.s[0] = 0;
    StrBuf key;
    sb_init(&key);
    h->rest = json_object();
    int rc = js_expect(&j, '{', e), seen_model = 0;
    if (!rc && !js_peek(&j, '}')) {
        for (;;) {
            if ((rc = js_string(&j, &key, e)) || (rc = js_expect(&j, ':', e))) break;
            js_ws(&j);
            if (!strcmp(key.s, "model")) {
                if (seen_model) {
                    rc = js_fail(&j, e, "one \"model\" section, not two");
                    break;
                }
                rc = read_model(&j, h, e);
                seen_model = 1;
            } else {
                const char *from = j.p;
                rc = js_skip(&j, 0, e) || put_json(&j, h->rest, key.s, from, e) ? -1 : 0;
            }
            if (rc) break;
            if (js_peek(&j, ',')) continue;
            rc = js_expect(&j, '}', e);
            break;
        }
    }
    if (!rc) {
        js_ws(&j);
        if (j.p != j.end) rc = js_fail(&j, e, "the end of the file after the top-level object");
    }
    if (!rc && !seen_model) rc = err_set(e, ERR_PARSE, "%s: no \"model\" section", path);
    sb_free(&key);
    return rc;
}

static int read_file(const char *path, HfFile *h, Err *e) {
    FileMap m;
    if (file_map(path, &m, e)) return -1;
    int rc = read_buf(m.data ? m.data : "", m.size, path, h, e);
    file_unmap(&m);
    return rc;
}

/* ---- configuration sections ---- */

static const char *jstr(const json_t *o, const char *k) { return json_string_value(json_object_get(o, k)); }
static int jbool(const json_t *o, const char *k, int dflt) {
    json_t *v = json_object_get(o, k);
    return json_is_boolean(v) ? json_is_true(v) : dflt;
}

static int set_normalizer(Tokenizer *t, const json_t *n, const char *path, Err *e) {
    if (!n || json_is_null(n)) return 0;
    const char *type = jstr(n, "type");
    if (!type) return err_set(e, ERR_PARSE, "%s: normalizer: expected an object with \"type\"", path);
    if (!strcmp(type, "Sequence")) {
        json_t *list = json_object_get(n, "normalizers"), *x;
        size_t i;
        if (!json_is_array(list)) return err_set(e, ERR_PARSE, "%s: normalizer Sequence: expected \"normalizers\" array", path);
        json_array_foreach(list, i, x) if (set_normalizer(t, x, path, e)) return -1;
        return 0;
    }
    if (!strcmp(type, "NFC")) {
        t->norm = NORM_NFC;
        return 0;
    }
    if (!strcmp(type, "BertNormalizer")) {
        t->norm = NORM_BERT;
        t->bert_clean = jbool(n, "clean_text", 1);
        t->bert_chinese = jbool(n, "handle_chinese_chars", 1);
        t->bert_lower = jbool(n, "lowercase", 1);
        json_t *sa = json_object_get(n, "strip_accents");
        /* null: strip accents exactly when lowercasing, as BERT does */
        t->bert_strip_accents = json_is_boolean(sa) ? json_is_true(sa) : t->bert_lower;
        return 0;
    }
    if (!strcmp(type, "Prepend")) {
        const char *pre = jstr(n, "prepend");
        if (!pre || strlen(pre) >= sizeof t->norm_prepend)
            return err_set(e, ERR_PARSE, "%s: Prepend normalizer: expected a short \"prepend\" string", path);
        strcpy(t->norm_prepend, pre);
        return 0;
    }
    if (!strcmp(type, "Replace")) {
        const char *from = jstr(json_object_get(n, "pattern"), "String"), *to = jstr(n, "content");
        if (from && to && !strcmp(from, " ") && !strcmp(to, "\xe2\x96\x81")) {
            t->norm_space_to_meta = 1;
            return 0;
        }
        return err_set(e, ERR_UNSUPPORTED, "%s: Replace normalizer: only \" \" -> \"\xe2\x96\x81\" is supported", path);
    }
    return err_set(e, ERR_UNSUPPORTED,
                   "%s: normalizer type \"%s\" is not supported (NFC, BertNormalizer, Prepend, Replace)", path, type);
}

static int set_pre_tokenizer(Tokenizer *t, const json_t *p, const char *path, int *byte_level, Err *e) {
    if (!p || json_is_null(p)) return 0;
    const char *type = jstr(p, "type");
    if (!type) return err_set(e, ERR_PARSE, "%s: pre_tokenizer: expected an object with \"type\"", path);
    if (!strcmp(type, "Sequence")) {
        json_t *list = json_object_get(p, "pretokenizers"), *x;
        size_t i;
        if (!json_is_array(list)) return err_set(e, ERR_PARSE, "%s: pre_tokenizer Sequence: expected \"pretokenizers\" array", path);
        json_array_foreach(list, i, x) if (set_pre_tokenizer(t, x, path, byte_level, e)) return -1;
        return 0;
    }
    if (!strcmp(type, "ByteLevel")) {
        *byte_level = 1;
        t->prefix_space = jbool(p, "add_prefix_space", 0);
        if (jbool(p, "use_regex", 1) && pretok_compile(t, TOK_RE_GPT2, e)) return err_wrap(e, "%s", path);
        return 0;
    }
    if (!strcmp(type, "Split")) {
        json_t *pat = json_object_get(p, "pattern");
        const char *beh = jstr(p, "behavior");
        if (jbool(p, "invert", 0) || !beh || strcmp(beh, "Isolated"))
            return err_set(e, ERR_UNSUPPORTED, "%s: Split pre-tokenizer: only behavior Isolated without invert is supported", path);
        const char *re = jstr(pat, "Regex"), *lit = jstr(pat, "String");
        /* an empty pattern matches everywhere and splits nothing off: a broken file, not a choice */
        if ((re && !*re) || (!re && lit && !*lit))
            return err_set(e, ERR_PARSE, "%s: pre_tokenizer Split: pattern.%s is empty (expected a pattern that "
                           "splits the text)", path, re ? "Regex" : "String");
        if (re) return pretok_compile(t, re, e) ? err_wrap(e, "%s", path) : 0;
        if (lit) {
            char *q = xasprintf("\\Q%s\\E", lit);
            int rc = pretok_compile(t, q, e);
            free(q);
            return rc ? err_wrap(e, "%s", path) : 0;
        }
        return err_set(e, ERR_PARSE, "%s: Split pre-tokenizer: expected pattern {\"Regex\": ...} or {\"String\": ...}", path);
    }
    if (!strcmp(type, "BertPreTokenizer") && t->model == TOK_WPM) return 0;
    if (!strcmp(type, "Metaspace") && t->model == TOK_BPE) {
        const char *repl = jstr(p, "replacement"), *scheme = jstr(p, "prepend_scheme");
        if (!repl || !*repl || strlen(repl) >= sizeof t->meta_repl)
            return err_set(e, ERR_PARSE, "%s: Metaspace: expected a \"replacement\" character", path);
        strcpy(t->meta_repl, repl);
        if (scheme) t->meta_prepend = !strcmp(scheme, "always") ? 2 : !strcmp(scheme, "first") ? 1 : 0;
        else t->meta_prepend = jbool(p, "add_prefix_space", 1) ? 2 : 0; /* before prepend_scheme existed */
        t->meta_split = jbool(p, "split", 1);
        return 0;
    }
    return err_set(e, ERR_UNSUPPORTED, "%s: pre_tokenizer type \"%s\" is not supported for this model", path, type);
}

/* The decoder section: aloe decodes from each token's bytes (byte-level
 * BPE, "▁" -> space with <0xNN> fallback, WordPiece's "##" joining), which
 * is what these decoder types do. Another type would turn ids into text in
 * a way we do not, so it is refused by name rather than decoded wrongly. */
static int check_decoder(const json_t *d, const char *path, int depth, Err *e) {
    if (!d || json_is_null(d)) return 0;
    const char *type = jstr(d, "type");
    if (!type) return err_set(e, ERR_PARSE, "%s: decoder: expected an object with a string \"type\"", path);
    if (!strcmp(type, "Sequence")) {
        json_t *list = json_object_get(d, "decoders"), *x;
        size_t i;
        if (!json_is_array(list))
            return err_set(e, ERR_PARSE, "%s: decoder Sequence: expected a \"decoders\" array", path);
        if (depth > 8) return err_set(e, ERR_PARSE, "%s: decoder: Sequences nested too deeply", path);
        json_array_foreach(list, i, x) if (check_decoder(x, path, depth + 1, e)) return -1;
        return 0;
    }
    static const char *const known[] = {"ByteLevel", "Metaspace", "WordPiece", "Replace", "ByteFallback", "Fuse", "Strip"};
    for (size_t i = 0; i < sizeof known / sizeof known[0]; i++)
        if (!strcmp(type, known[i])) return 0;
    return err_set(e, ERR_UNSUPPORTED,
                   "%s: decoder type \"%s\" is not supported (ByteLevel, Metaspace, WordPiece, Replace, ByteFallback, "
                   "Fuse, Strip and Sequences of them)", path, type);
}

static int special_id(const Tokenizer *t, const json_t *v) {
    /* "[CLS]" / ["[CLS]", 101] / {"id": "[CLS]", "ids": [101]} forms */
    if (json_is_array(v)) return (int)json_integer_value(json_array_get(v, 1));
    if (json_is_string(v)) return tok_find(t, json_string_value(v));
    return -1;
}

static int set_post(Tokenizer *t, const json_t *p, const char *path, Err *e) {
    if (!p || json_is_null(p)) return 0;
    const char *type = jstr(p, "type");
    if (!type) return err_set(e, ERR_PARSE, "%s: post_processor: expected an object with \"type\"", path);
    if (!strcmp(type, "Sequence")) {
        json_t *list = json_object_get(p, "processors"), *x;
        size_t i;
        json_array_foreach(list, i, x) if (set_post(t, x, path, e)) return -1;
        return 0;
    }
    if (!strcmp(type, "ByteLevel")) return 0;
    if (!strcmp(type, "BertProcessing") || !strcmp(type, "RobertaProcessing")) {
        t->pre_ids[0] = special_id(t, json_object_get(p, "cls"));
        t->post_ids[0] = special_id(t, json_object_get(p, "sep"));
        t->n_pre = t->pre_ids[0] >= 0;
        t->n_post = t->post_ids[0] >= 0;
        return 0;
    }
    if (!strcmp(type, "TemplateProcessing")) {
        json_t *single = json_object_get(p, "single"), *x, *specials = json_object_get(p, "special_tokens");
        size_t i;
        int after = 0;
        t->n_pre = t->n_post = 0;
        json_array_foreach(single, i, x) {
            if (json_object_get(x, "Sequence")) {
                after = 1;
                continue;
            }
            const char *name = jstr(json_object_get(x, "SpecialToken"), "id");
            json_t *ids = json_object_get(json_object_get(specials, name ? name : ""), "ids"), *idv;
            if (!name || !json_is_array(ids))
                return err_set(e, ERR_PARSE, "%s: TemplateProcessing: special token \"%s\" has no ids", path,
                               name ? name : "?");
            size_t k;
            json_array_foreach(ids, k, idv) {
                int id = (int)json_integer_value(idv);
                if (id < 0 || id >= t->n)
                    return err_set(e, ERR_PARSE, "%s: TemplateProcessing: id %d outside the vocabulary", path, id);
                if (after ? t->n_post >= 4 : t->n_pre >= 4)
                    return err_set(e, ERR_UNSUPPORTED, "%s: TemplateProcessing: more than 4 special tokens", path);
                if (after) t->post_ids[t->n_post++] = id;
                else t->pre_ids[t->n_pre++] = id;
            }
        }
        return 0;
    }
    return err_set(e, ERR_UNSUPPORTED, "%s: post_processor type \"%s\" is not supported", path, type);
}

static int config_token(const Tokenizer *t, const json_t *cfg, const char *key) {
    json_t *v = json_object_get(cfg, key);
    if (json_is_object(v)) v = json_object_get(v, "content");
    return json_is_string(v) ? tok_find(t, json_string_value(v)) : -1;
}

/* A config file beside tokenizer.json, NULL when absent. Hub files often
 * hold integers too big for JSON's int64 (model_max_length
 * 1000000000000000019884624838656), so numbers are read as reals; a file
 * that still does not parse is warned about, not silently ignored. */
static json_t *load_config(const char *dir, const char *file) {
    char *p = path_join(dir, file);
    json_t *j = NULL;
    if (file_exists(p)) {
        json_error_t je;
        j = json_load_file(p, JSON_DECODE_INT_AS_REAL, &je);
        if (!j) log_warn("%s:%d: %s (its special tokens are not used)", p, je.line, je.text);
    }
    free(p);
    return j;
}

static int json_id(const json_t *v) { return json_is_number(v) ? (int)json_number_value(v) : -1; }

/* bos/eos/pad/unk and the end-of-turn list, from tokenizer_config.json and
 * generation_config.json when they are beside tokenizer.json. */
static void set_specials_from_config(Tokenizer *t, const char *dir) {
    json_t *cfg = NULL, *gen = NULL;
    if (dir) {
        cfg = load_config(dir, "tokenizer_config.json");
        gen = load_config(dir, "generation_config.json");
    }
    int bos = config_token(t, cfg, "bos_token"), eos = config_token(t, cfg, "eos_token");
    int pad = config_token(t, cfg, "pad_token"), unk = config_token(t, cfg, "unk_token");
    if (bos < 0 && t->n_pre > 0 && t->model != TOK_WPM) bos = t->pre_ids[0];
    if (eos < 0) {
        static const char *const guesses[] = {"<|end_of_text|>", "<|endoftext|>", "</s>"};
        for (size_t i = 0; i < sizeof guesses / sizeof guesses[0] && eos < 0; i++) eos = tok_find(t, guesses[i]);
    }
    if (t->model == TOK_WPM) {
        if (pad < 0) pad = tok_find(t, "[PAD]");
        if (eos < 0) eos = tok_find(t, "[SEP]");
    }
    t->bos = bos;
    t->eos = eos;
    t->pad = pad;
    if (unk >= 0) t->unk = unk;
    if (eos >= 0) tok_add_eot(t, eos);
    json_t *ge = json_object_get(gen, "eos_token_id"), *x;
    size_t i;
    if (json_is_number(ge)) tok_add_eot(t, json_id(ge));
    json_array_foreach(ge, i, x) if (json_id(x) >= 0) tok_add_eot(t, json_id(x));
    /* end-of-turn markers of the chat formats we know */
    static const char *const eot[] = {"<|im_end|>", "<|eot_id|>", "<|eom_id|>", "<|end|>", "<end_of_turn>"};
    for (size_t k = 0; k < sizeof eot / sizeof eot[0]; k++) {
        int id = tok_find(t, eot[k]);
        if (id >= 0 && t->type[id] == TOK_TYPE_CONTROL) tok_add_eot(t, id);
    }
    json_decref(cfg);
    json_decref(gen);
}

/* The added_tokens list: ids, content and matching flags. */
static int read_added(HfFile *h, const char *path, Err *e) {
    json_t *list = json_object_get(h->rest, "added_tokens"), *a;
    size_t i;
    if (list && !json_is_array(list)) return err_set(e, ERR_PARSE, "%s: added_tokens: expected an array", path);
    json_array_foreach(list, i, a) {
        json_t *id = json_object_get(a, "id");
        const char *content = jstr(a, "content");
        if (!json_is_integer(id) || !content || json_integer_value(id) < 0 || json_integer_value(id) > 10000000)
            return err_set(e, ERR_PARSE, "%s: added_tokens[%zu]: expected {\"id\": int, \"content\": string}", path, i);
        long k = (long)json_integer_value(id);
        if (k >= (long)h->n + (long)json_array_size(list) + 1024)
            return err_set(e, ERR_PARSE, "%s: added_tokens[%zu]: id %ld is far past the vocabulary (%d tokens)", path,
                           i, k, h->n);
        if (k >= h->n || h->text[k] == NONE) set_text(h, k, content, strlen(content));
    }
    return 0;
}

static void apply_added(Tokenizer *t, const HfFile *h) {
    json_t *list = json_object_get(h->rest, "added_tokens"), *a;
    size_t i;
    json_array_foreach(list, i, a) {
        int id = (int)json_integer_value(json_object_get(a, "id"));
        const char *content = jstr(a, "content");
        int special = jbool(a, "special", 0);
        t->type[id] = special ? TOK_TYPE_CONTROL : TOK_TYPE_USER_DEFINED;
        const char *c = strcmp(content, t->text[id]) ? xstrdup(content) : NULL;
        tok_add_added(t, id, c, special, jbool(a, "lstrip", 0), jbool(a, "rstrip", 0),
                      jbool(a, "normalized", !special), jbool(a, "single_word", 0));
    }
}

static Tokenizer *build(HfFile *h, const char *path, const char *dir, Err *e) {
    const char *mtype = jstr(h->model, "type");
    TokModel model;
    if (!mtype && h->n_merges > 0) mtype = "BPE";
    if (!mtype) return err_set(e, ERR_PARSE, "%s: model: expected \"type\"", path), NULL;
    if (!strcmp(mtype, "BPE")) model = TOK_BPE;
    else if (!strcmp(mtype, "WordPiece")) model = TOK_WPM;
    else return err_set(e, ERR_UNSUPPORTED, "%s: model type \"%s\" is not supported (BPE, WordPiece)", path, mtype), NULL;
    /* the model's own vocabulary: added tokens alone cannot tokenise text
     * (every prompt would come out empty) */
    if (h->n == 0)
        return err_set(e, ERR_PARSE, "%s: model.vocab is empty (a %s model needs its vocabulary)", path, mtype), NULL;
    /* required, as the tokenizers library requires it: a BPE file that
     * lost its merges would tokenise every word into single characters */
    if (model == TOK_BPE && !h->has_merges)
        return err_set(e, ERR_PARSE, "%s: model.merges is missing (a BPE model needs its list of merges)", path), NULL;
    if (check_decoder(json_object_get(h->rest, "decoder"), path, 0, e)) return NULL;
    if (read_added(h, path, e)) return NULL;
    const char **text = xmalloc(h->n * sizeof(char *));
    for (int i = 0; i < h->n; i++) text[i] = h->text[i] == NONE ? "" : h->pool.s + h->text[i]; /* "": a hole */
    TokVocab v = {model, h->n, text, NULL, NULL, 0, NULL};
    Tokenizer *t = tok_new(&v, e);
    free(text);
    if (!t) return err_wrap(e, "%s", path), NULL;
    apply_added(t, h);
    t->strip_unicode_ws = 1;
    if (model == TOK_BPE) {
        const char **l = xmalloc((h->n_merges + 1) * sizeof(char *)), **r = xmalloc((h->n_merges + 1) * sizeof(char *));
        for (int i = 0; i < h->n_merges; i++) {
            l[i] = h->pool.s + h->merge[2 * i];
            r[i] = h->pool.s + h->merge[2 * i + 1];
        }
        int rc = tok_add_merges(t, h->n_merges, l, r, e);
        free(l);
        free(r);
        if (rc) {
            err_wrap(e, "%s: model.merges", path);
            goto fail;
        }
        t->ignore_merges = jbool(h->model, "ignore_merges", 0);
        t->byte_fallback = jbool(h->model, "byte_fallback", 0);
        t->fuse_unk = jbool(h->model, "fuse_unk", 0);
        for (int i = 0; i < t->n_re; i++) pcre2_code_free(t->re[i]);
        t->n_re = 0;
        int byte_level = 0;
        if (set_pre_tokenizer(t, json_object_get(h->rest, "pre_tokenizer"), path, &byte_level, e)) goto fail;
        /* byte-level (GPT-2 style) or character BPE (SentencePiece style, "▁" for spaces) */
        t->byte_level = byte_level;
        if (byte_level && (t->byte_fallback || t->meta_repl[0])) goto unsupported_bpe;
        if (!byte_level && t->n_re > 0) goto unsupported_bpe;
    } else {
        const char *cont = jstr(h->model, "continuing_subword_prefix");
        snprintf(t->wp_cont, sizeof t->wp_cont, "%s", cont ? cont : "##");
        t->wp_start[0] = 0;
        json_t *mx = json_object_get(h->model, "max_input_chars_per_word");
        if (json_is_integer(mx)) t->wp_max_chars = (int)json_integer_value(mx);
        int dummy = 0;
        t->norm = NORM_NONE;
        if (set_pre_tokenizer(t, json_object_get(h->rest, "pre_tokenizer"), path, &dummy, e)) goto fail;
    }
    const char *unk = jstr(h->model, "unk_token");
    if (unk) t->unk = tok_find(t, unk);
    if (set_normalizer(t, json_object_get(h->rest, "normalizer"), path, e)) goto fail;
    if (set_post(t, json_object_get(h->rest, "post_processor"), path, e)) goto fail;
    /* the space a SentencePiece-style prefix put in front is dropped again when decoding */
    t->strip_decoded_space = t->norm_prepend[0] || t->meta_prepend;
    set_specials_from_config(t, dir);
    tok_build_pieces(t);
    return t;
unsupported_bpe:
    err_set(e, ERR_UNSUPPORTED,
            "%s: unsupported BPE layout: expected either byte-level BPE (ByteLevel pre-tokenizer, optional "
            "regex Splits) or SentencePiece-style BPE (Metaspace or Prepend/Replace, optional byte_fallback)",
            path);
fail:
    tok_free(t);
    return NULL;
}

Tokenizer *tok_load_hf(const char *p, Err *e) {
    char *path, *dir;
    if (file_is_dir(p)) {
        path = path_join(p, "tokenizer.json");
        dir = xstrdup(p);
    } else {
        path = xstrdup(p);
        const char *slash = strrchr(p, '/');
        dir = slash ? xstrndup(p, slash - p) : xstrdup(".");
    }
    Tokenizer *t = NULL;
    HfFile h = {0};
    if (!file_exists(p))
        err_set(e, ERR_NOTFOUND, "%s: not found (expected a directory with tokenizer.json, a tokenizer.json file or a .gguf file)", p);
    else if (!file_exists(path)) err_set(e, ERR_NOTFOUND, "%s: no tokenizer.json in this directory", path);
    else if (read_file(path, &h, e) == 0) t = build(&h, path, dir, e);
    hf_free(&h);
    free(path);
    free(dir);
    return t;
}

Tokenizer *tok_load_hf_mem(const char *json, size_t len, const char *name, Err *e) {
    HfFile h = {0};
    Tokenizer *t = read_buf(json, len, name, &h, e) == 0 ? build(&h, name, NULL, e) : NULL;
    hf_free(&h);
    return t;
}

Tokenizer *tok_load(const char *path, Err *e) {
    size_t n = strlen(path);
    if (n >= 5 && !strcmp(path + n - 5, ".gguf")) return tok_load_gguf(path, e);
    return tok_load_hf(path, e);
}
