/* tok_gguf: a Tokenizer from the tokenizer.ggml.* metadata of a GGUF file,
 * with llama.cpp's conventions:
 *   model "gpt2"  -> byte-level BPE (tokens, merges, token_type; the
 *                    pre-tokenizer regex chosen by tokenizer.ggml.pre);
 *   model "llama" -> SentencePiece BPE (tokens, scores, token_type);
 *   model "bert"  -> WordPiece with "▁" marking word starts.
 * bos/eos/unk/pad ids and add_bos/add_eos/add_space_prefix come from their
 * keys, with llama.cpp's defaults when absent. */
#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include "base/log.h"
#include "formats/gguf.h"
#include "tok/tok_internal.h"

static int opt_id(const Gguf *g, const char *key) {
    const GgufKV *kv = gguf_find_key(g, key);
    if (!kv || kv->type == GGUF_ARRAY || kv->type == GGUF_STRING) return -1;
    return kv->type == GGUF_I32 || kv->type == GGUF_I64 || kv->type == GGUF_I8 || kv->type == GGUF_I16
               ? (int)kv->i
               : (int)kv->u;
}

static int opt_bool(const Gguf *g, const char *key, int dflt) {
    const GgufKV *kv = gguf_find_key(g, key);
    return kv && kv->type == GGUF_BOOL ? kv->u != 0 : dflt;
}

/* NUL-terminated copies of a string array (tokens may not hold NUL). */
static char **copy_strs(const GgufStr *s, uint64_t n, const char *path, const char *key, Err *e) {
    char **out = xcalloc(n ? n : 1, sizeof(char *));
    for (uint64_t i = 0; i < n; i++) {
        if (memchr(s[i].s, 0, s[i].len)) {
            for (uint64_t j = 0; j < i; j++) free(out[j]);
            free(out);
            return err_set(e, ERR_PARSE, "%s: %s[%llu] holds a NUL byte", path, key, (unsigned long long)i), NULL;
        }
        out[i] = xstrndup(s[i].s, s[i].len);
    }
    return out;
}

static void free_strs(char **s, uint64_t n) {
    if (!s) return;
    for (uint64_t i = 0; i < n; i++) free(s[i]);
    free(s);
}

static void set_rstrip(Tokenizer *t, const char *text, int on) {
    int id = tok_find(t, text);
    for (int i = 0; id >= 0 && i < t->n_added; i++)
        if (t->added[i].id == id) t->added[i].rstrip = (uint8_t)on;
}

/* GGUF stores no lstrip/rstrip flags. llama.cpp's vocabulary loader sets
 * them itself for the models whose tokenizer.json has them, keyed on
 * general.name: for Phi-3 every special (control / user-defined) token
 * takes the whitespace after it -- as Phi-3's own tokenizer.json says with
 * "rstrip": true -- except <unk>, <s> and <|endoftext|>. Without this,
 * "<|user|>\nHello" keeps the newline and the next word loses its "▁". */
static void apply_name_quirks(Tokenizer *t, const Gguf *g) {
    const GgufKV *kv = gguf_find_key(g, "general.name");
    if (!kv || kv->type != GGUF_STRING) return;
    char *name = xstrdup(kv->str);
    for (char *c = name; *c; c++) *c = (char)tolower((unsigned char)*c);
    if (strstr(name, "phi-3") || strstr(name, "phi3")) {
        for (int i = 0; i < t->n_added; i++) t->added[i].rstrip = 1;
        set_rstrip(t, "</s>", 1);
        set_rstrip(t, "<unk>", 0);
        set_rstrip(t, "<s>", 0);
        set_rstrip(t, "<|endoftext|>", 0);
    }
    free(name);
}

static Tokenizer *from_gguf(const Gguf *g, const char *path, Err *e) {
    const char *model;
    if (gguf_get_str(g, "tokenizer.ggml.model", &model, e)) return err_wrap(e, "%s", path), NULL;
    TokModel kind;
    if (!strcmp(model, "gpt2")) kind = TOK_BPE;
    else if (!strcmp(model, "llama")) kind = TOK_SPM;
    else if (!strcmp(model, "bert")) kind = TOK_WPM;
    else
        return err_set(e, ERR_UNSUPPORTED, "%s: tokenizer.ggml.model \"%s\" is not supported (gpt2, llama, bert)",
                       path, model),
               NULL;
    const GgufStr *toks, *merges = NULL;
    uint64_t n, n_merges = 0, n_scores = 0, n_types = 0;
    if (gguf_get_arr_str(g, "tokenizer.ggml.tokens", &toks, &n, e)) return err_wrap(e, "%s", path), NULL;
    if (n == 0 || n > 10000000) return err_set(e, ERR_PARSE, "%s: tokenizer.ggml.tokens: %llu tokens", path, (unsigned long long)n), NULL;
    float *scores = NULL;
    int32_t *types = NULL;
    char **text = NULL, **mtext = NULL;
    Tokenizer *t = NULL;
    if (gguf_find_key(g, "tokenizer.ggml.scores") &&
        gguf_get_arr_f32(g, "tokenizer.ggml.scores", &scores, &n_scores, e))
        goto fail;
    if (gguf_find_key(g, "tokenizer.ggml.token_type") &&
        gguf_get_arr_i32(g, "tokenizer.ggml.token_type", &types, &n_types, e))
        goto fail;
    if ((scores && n_scores != n) || (types && n_types != n)) {
        err_set(e, ERR_PARSE, "%s: tokenizer.ggml.scores/token_type: %llu/%llu entries for %llu tokens", path,
                (unsigned long long)n_scores, (unsigned long long)n_types, (unsigned long long)n);
        goto fail;
    }
    if (kind == TOK_BPE && gguf_get_arr_str(g, "tokenizer.ggml.merges", &merges, &n_merges, e)) goto fail;
    if (n_merges > 0x7fffffff) {
        err_set(e, ERR_PARSE, "%s: tokenizer.ggml.merges: %llu merges is too many", path, (unsigned long long)n_merges);
        goto fail;
    }
    if (!(text = copy_strs(toks, n, path, "tokenizer.ggml.tokens", e))) goto fail;
    if (merges && !(mtext = copy_strs(merges, n_merges, path, "tokenizer.ggml.merges", e))) goto fail;
    TokVocab v = {kind, (int)n, (const char *const *)text, scores, types, (int)n_merges, (const char *const *)mtext};
    if (!(t = tok_new(&v, e))) { /* the arrays are checked above: what is left to fail is a merge */
        err_wrap(e, "%s: tokenizer.ggml.merges", path);
        goto fail;
    }

    int add_bos = kind != TOK_BPE, add_eos = kind == TOK_WPM;
    int bos = opt_id(g, "tokenizer.ggml.bos_token_id"), eos = opt_id(g, "tokenizer.ggml.eos_token_id");
    if (kind == TOK_BPE) {
        const char *pre = "default";
        if (gguf_find_key(g, "tokenizer.ggml.pre") && gguf_get_str(g, "tokenizer.ggml.pre", &pre, e)) goto fail_t;
        if (!strcmp(pre, "default"))
            log_warn("%s: no BPE pre-tokenizer named (tokenizer.ggml.pre); using GPT-2's regex", path);
        if (tok_set_pre(t, pre, e)) goto fail_t;
        /* llama.cpp: Llama 3 looks words up whole before merging, and adds BOS */
        if ((!strcmp(pre, "llama3") || !strcmp(pre, "llama-bpe") || !strcmp(pre, "llama-v3"))) {
            t->ignore_merges = 1;
            add_bos = 1;
        }
    } else if (kind == TOK_WPM) {
        int cls = opt_id(g, "tokenizer.ggml.cls_token_id"), sep = opt_id(g, "tokenizer.ggml.seperator_token_id");
        if (cls >= 0) bos = cls;
        if (sep >= 0) eos = sep;
    }
    add_bos = opt_bool(g, "tokenizer.ggml.add_bos_token", add_bos);
    add_eos = opt_bool(g, "tokenizer.ggml.add_eos_token", add_eos);
    tok_set_specials(t, bos, eos, opt_id(g, "tokenizer.ggml.unknown_token_id"),
                     opt_id(g, "tokenizer.ggml.padding_token_id"), add_bos, add_eos);
    if (kind == TOK_SPM) tok_set_add_space_prefix(t, opt_bool(g, "tokenizer.ggml.add_space_prefix", 1));
    apply_name_quirks(t, g);
    tok_add_eot(t, opt_id(g, "tokenizer.ggml.eot_token_id"));
    tok_add_eot(t, opt_id(g, "tokenizer.ggml.eom_token_id"));
    static const char *const eot[] = {"<|im_end|>", "<|eot_id|>", "<|eom_id|>", "<|end|>", "<end_of_turn>"};
    for (size_t k = 0; k < sizeof eot / sizeof eot[0]; k++) {
        int id = tok_find(t, eot[k]);
        if (id >= 0 && t->type[id] == TOK_TYPE_CONTROL) tok_add_eot(t, id);
    }
    free_strs(text, n);
    free_strs(mtext, n_merges);
    free(scores);
    free(types);
    return t;
fail_t:
    err_wrap(e, "%s", path);
    tok_free(t);
    t = NULL;
fail:
    free_strs(text, n);
    free_strs(mtext, n_merges);
    free(scores);
    free(types);
    return NULL;
}

Tokenizer *tok_load_gguf(const char *path, Err *e) {
    Gguf *g = gguf_open(path, e);
    if (!g) return NULL;
    Tokenizer *t = from_gguf(g, path, e);
    gguf_close(g);
    return t;
}

Tokenizer *tok_from_gguf(const Gguf *g, Err *e) { return from_gguf(g, gguf_path(g), e); }
