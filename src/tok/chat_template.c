/* chat_template: a model's chat template, rendered by the Jinja interpreter
 * (jinja.h), and the named built-in families (`--chat-template NAME`).
 *
 * Any template text (tokenizer_config.json `chat_template`,
 * chat_template.jinja, GGUF `tokenizer.chat_template`, or a .jinja file named
 * on the command line) is parsed and interpreted. The family of a known
 * template is still recognised, to name it and to know its end-of-turn
 * markers; an unknown one is named "jinja" and its markers are the known
 * end-of-turn texts the template writes.
 *
 * Recognition works on a normalised form of the template, so that the same
 * template reformatted (indentation, {%- vs {%, "..." vs '...', '\n' written
 * as an escape or as a real newline, message['role'] vs message.role) is
 * still recognised:
 *   - comments are dropped; whitespace outside string literals is dropped;
 *   - string literals are decoded and re-quoted with '...';
 *   - whitespace-control marks ({%- -%}) are dropped;
 *   - x['name'] becomes x.name.
 * The named families without a template text are rendered natively
 * (chat_render.c). */
#include "tok/chat_template.h"

#include <ctype.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "base/fileio.h"
#include "base/mem.h"
#include "tok/chat_render.h"

/* ---- Normalised template text --------------------------------------------- */

typedef struct TplText {
    StrBuf norm;
    char **lits; /* decoded string literals and data (non-tag) text, in order */
    int n_lits, cap_lits;
} TplText;

static void tpl_add_lit(TplText *t, char *s) {
    if (t->n_lits == t->cap_lits) {
        t->cap_lits = t->cap_lits ? 2 * t->cap_lits : 32;
        t->lits = xrealloc(t->lits, (size_t)t->cap_lits * sizeof *t->lits);
    }
    t->lits[t->n_lits++] = s;
}

static void tpl_free(TplText *t) {
    sb_free(&t->norm);
    for (int i = 0; i < t->n_lits; i++) free(t->lits[i]);
    free(t->lits);
}

/* Reads the literal that starts at s[*i] (the quote); decodes the escapes
 * Jinja (Python) strings use in templates. */
static void tpl_read_string(TplText *t, const char *s, size_t *i) {
    char q = s[(*i)++];
    StrBuf lit;
    sb_init(&lit);
    while (s[*i] && s[*i] != q) {
        char c = s[*i];
        if (c == '\\' && s[*i + 1]) {
            char d = s[++*i];
            switch (d) {
            case 'n': sb_appendc(&lit, '\n'); break;
            case 't': sb_appendc(&lit, '\t'); break;
            case 'r': sb_appendc(&lit, '\r'); break;
            case '\\': case '\'': case '"': sb_appendc(&lit, d); break;
            default: sb_appendc(&lit, '\\'); sb_appendc(&lit, d); break;
            }
        } else {
            sb_appendc(&lit, c);
        }
        (*i)++;
    }
    if (s[*i]) (*i)++;
    sb_appendc(&t->norm, '\'');
    if (lit.len) sb_appendn(&t->norm, lit.s, lit.len);
    sb_appendc(&t->norm, '\'');
    tpl_add_lit(t, lit.len ? sb_take(&lit) : xstrdup(""));
    sb_free(&lit);
}

static int is_ident(const char *s) {
    if (!isalpha((unsigned char)*s) && *s != '_') return 0;
    for (; *s; s++)
        if (!isalnum((unsigned char)*s) && *s != '_') return 0;
    return 1;
}

/* x['name'] is written x.name, so both spellings normalise alike. Returns 1
 * (and advances *i past the ']') when s[*i] starts such a subscript. */
static int tpl_read_subscript(TplText *t, const char *s, size_t *i) {
    size_t j = *i + 1;
    while (isspace((unsigned char)s[j])) j++;
    if (s[j] != '\'' && s[j] != '"') return 0;
    const char *end = strchr(s + j + 1, s[j]);
    if (!end) return 0;
    size_t k = (size_t)(end - s) + 1;
    while (isspace((unsigned char)s[k])) k++;
    if (s[k] != ']') return 0;
    char *name = xstrndup(s + j + 1, (size_t)(end - (s + j + 1)));
    if (!is_ident(name)) {
        free(name);
        return 0;
    }
    sb_appendc(&t->norm, '.');
    sb_append(&t->norm, name);
    tpl_add_lit(t, name);
    *i = k + 1;
    return 1;
}

/* Copies the tag opening at s[*i] ("{{" or "{%") into the normal form. */
static void tpl_read_tag(TplText *t, const char *s, size_t *i) {
    char close = s[*i + 1] == '{' ? '}' : '%';
    sb_appendc(&t->norm, '{');
    sb_appendc(&t->norm, s[*i + 1]);
    *i += 2;
    if (s[*i] == '-' || s[*i] == '+') (*i)++;
    while (s[*i]) {
        char c = s[*i];
        if ((c == '-' || c == '+') && s[*i + 1] == close && s[*i + 2] == '}') {
            (*i)++;
        } else if (c == close && s[*i + 1] == '}') {
            sb_appendc(&t->norm, close);
            sb_appendc(&t->norm, '}');
            *i += 2;
            return;
        } else if (c == '\'' || c == '"') {
            tpl_read_string(t, s, i);
        } else if (c == '[' && tpl_read_subscript(t, s, i)) {
            continue;
        } else {
            if (!isspace((unsigned char)c)) sb_appendc(&t->norm, c);
            (*i)++;
        }
    }
}

static void tpl_normalise(const char *s, TplText *t) {
    memset(t, 0, sizeof *t);
    sb_init(&t->norm);
    size_t i = 0;
    while (s[i]) {
        if (s[i] == '{' && s[i + 1] == '#') {
            const char *end = strstr(s + i + 2, "#}");
            i = end ? (size_t)(end - s) + 2 : strlen(s);
        } else if (s[i] == '{' && (s[i + 1] == '{' || s[i + 1] == '%')) {
            tpl_read_tag(t, s, &i);
        } else {
            size_t a = i;
            while (s[i] && !(s[i] == '{' && (s[i + 1] == '{' || s[i + 1] == '%' || s[i + 1] == '#')))
                i++;
            int blank = 1;
            for (size_t k = a; k < i; k++) {
                if (!isspace((unsigned char)s[k])) {
                    sb_appendc(&t->norm, s[k]);
                    blank = 0;
                }
            }
            if (!blank) tpl_add_lit(t, xstrndup(s + a, i - a));
        }
    }
    if (!t->norm.s) sb_append(&t->norm, "");
}

static int has(const TplText *t, const char *needle) {
    return strstr(t->norm.s, needle) != NULL;
}

/* The text between prefix and suffix inside one literal that starts with
 * prefix, e.g. the default system prompt of '<|im_start|>system\nYou are
 * ...<|im_end|>\n'. NULL if no literal has a non-empty one. */
static char *tpl_find_between(const TplText *t, const char *prefix, const char *suffix) {
    size_t np = strlen(prefix);
    for (int i = 0; i < t->n_lits; i++) {
        const char *l = t->lits[i];
        if (strncmp(l, prefix, np) != 0) continue;
        const char *end = strstr(l + np, suffix);
        if (end && end > l + np) return xstrndup(l + np, (size_t)(end - (l + np)));
    }
    return NULL;
}

/* The literal assigned by `{% set NAME = '...' %}`, or NULL. */
static char *tpl_find_set(const TplText *t, const char *name) {
    char *pat = xasprintf("{%%set%s='", name);
    const char *p = strstr(t->norm.s, pat);
    char *v = NULL;
    if (p) {
        p += strlen(pat);
        const char *q = strchr(p, '\'');
        if (q) v = xstrndup(p, (size_t)(q - p));
    }
    free(pat);
    return v;
}

/* ---- Families ------------------------------------------------------------- */

static const char *const NAMES[] = {"chatml", "qwen2.5", "qwen3", "llama3", "llama3.1", "llama3.2",
                                    "gemma", "phi3", "mistral-nemo", NULL};

static const char QWEN_SYSTEM[] = "You are Qwen, created by Alibaba Cloud. You are a helpful assistant.";

const char *const *chat_template_names(void) { return NAMES; }

char *chat_template_names_joined(void) {
    StrBuf b;
    sb_init(&b);
    for (int i = 0; NAMES[i]; i++) {
        if (i) sb_append(&b, ", ");
        sb_append(&b, NAMES[i]);
    }
    return sb_take(&b);
}

const char *chat_template_name(const ChatTemplate *t) { return t->name; }

ChatRenderOpts chat_render_opts_default(void) {
    ChatRenderOpts o = {.enable_thinking = 1, .date = NULL};
    return o;
}

void chat_template_free(ChatTemplate *t) {
    if (!t) return;
    jinja_free(t->jinja);
    for (int i = 0; t->stops && t->stops[i]; i++) free(t->stops[i]);
    free(t->stops);
    free(t->bos);
    free(t->eos);
    free(t->default_system);
    free(t->cutoff);
    free(t->default_date);
    free(t);
}

static ChatTemplate *tpl_new(ChatFamily f, const char *name) {
    ChatTemplate *t = xcalloc(1, sizeof *t);
    t->family = f;
    t->name = name;
    return t;
}

/* The special-token texts a family needs must exist. */
static ChatTemplate *tpl_finish(ChatTemplate *t, const char *bos, const char *eos, Err *e) {
    int needs_eos = t->family == CHAT_MISTRAL || (t->family == CHAT_PHI3 && t->phi_eos_at_end);
    if (t->uses_bos && !bos) {
        err_set(e, ERR_ARG, "chat template %s writes the BOS token (bos_token), but the tokenizer "
                            "defines none", t->name);
        chat_template_free(t);
        return NULL;
    }
    if (needs_eos && !eos) {
        err_set(e, ERR_ARG, "chat template %s writes the EOS token (eos_token), but the tokenizer "
                            "defines none", t->name);
        chat_template_free(t);
        return NULL;
    }
    t->bos = bos ? xstrdup(bos) : NULL;
    t->eos = eos ? xstrdup(eos) : NULL;
    return t;
}

static const char CHATML_TURN[] = "'<|im_start|>'+message.role+'\n'+message.content+'<|im_end|>'";

/* ChatML and Qwen3; NULL with *why set when the template is ChatML-like but
 * not in a form we render. */
static ChatTemplate *detect_chatml(const TplText *tt, const char **why) {
    if (!has(tt, CHATML_TURN) || !has(tt, "add_generation_prompt")) {
        *why = "a ChatML (<|im_start|>) template whose turns are not written as "
               "'<|im_start|>' + role + '\\n' + content + '<|im_end|>'";
        return NULL;
    }
    if (has(tt, "<think>") || has(tt, "enable_thinking")) {
        if (has(tt, "enable_thinking") && has(tt, "'<think>\n\n</think>\n\n'") &&
            has(tt, "last_query_index") && has(tt, "'</think>'inmessage.content"))
            return tpl_new(CHAT_QWEN3, "qwen3");
        *why = "a ChatML template with <think> handling that is not Qwen3's";
        return NULL;
    }
    ChatTemplate *t = tpl_new(CHAT_CHATML, "chatml");
    t->default_system = tpl_find_between(tt, "<|im_start|>system\n", "<|im_end|>");
    if (t->default_system && !strcmp(t->default_system, QWEN_SYSTEM)) t->name = "qwen2.5";
    return t;
}

static ChatTemplate *detect_llama(const TplText *tt, const char **why) {
    if (!has(tt, "'<|start_header_id|>'+message.role+'<|end_header_id|>\n\n'+message.content|trim+"
                 "'<|eot_id|>'")) {
        *why = "a Llama 3 header template whose turns are not written as "
               "'<|start_header_id|>' + role + '<|end_header_id|>\\n\\n' + content|trim + '<|eot_id|>'";
        return NULL;
    }
    ChatTemplate *t;
    char *cutoff = tpl_find_between(tt, "Cutting Knowledge Date: ", "\n");
    if (cutoff) {
        t = tpl_new(CHAT_LLAMA31, "llama3.1");
        t->cutoff = cutoff;
        t->default_date = tpl_find_set(tt, "date_string");
        t->date_from_clock = has(tt, "date_string=strftime_now('%d %b %Y')");
        if (t->date_from_clock) t->name = "llama3.2";
        if (!has(tt, "'Today Date: '+date_string+'\n\n'") ||
            (!t->default_date && !t->date_from_clock)) {
            *why = "a Llama 3.1-style template without the \"Today Date: \" + date_string line";
            chat_template_free(t);
            return NULL;
        }
    } else {
        t = tpl_new(CHAT_LLAMA3, "llama3");
        t->gen_prompt_always = !has(tt, "add_generation_prompt");
    }
    return t;
}

static ChatTemplate *detect_gemma(const TplText *tt, const char **why) {
    if (!has(tt, "'<start_of_turn>'+role+'\n'+message.content|trim+'<end_of_turn>\n'") ||
        !has(tt, "'model'")) {
        *why = "a <start_of_turn> template that is not Gemma 1/2's";
        return NULL;
    }
    return tpl_new(CHAT_GEMMA, "gemma");
}

static ChatTemplate *detect_phi3(const TplText *tt, const char **why) {
    if (!has(tt, "'<|user|>\n'+message.content+'<|end|>\n'") ||
        !has(tt, "'<|assistant|>\n'+message.content+'<|end|>\n'") ||
        !has(tt, "add_generation_prompt")) {
        *why = "a <|user|> template that is not Phi-3's";
        return NULL;
    }
    ChatTemplate *t = tpl_new(CHAT_PHI3, "phi3");
    t->phi_has_system = has(tt, "'<|system|>\n'+message.content+'<|end|>\n'");
    t->phi_skip_empty_system = has(tt, "message.role=='system'andmessage.content");
    t->phi_eos_at_end = has(tt, "eos_token");
    return t;
}

static ChatTemplate *detect_mistral(const TplText *tt, const char **why) {
    if (!has(tt, "'[INST]'+system_message+'\n\n'+message.content+'[/INST]'") ||
        !has(tt, "'[INST]'+message.content+'[/INST]'") || !has(tt, "message.content+eos_token")) {
        *why = "an [INST] template that is not Mistral Nemo's (other Mistral forms put spaces or "
               "the system prompt elsewhere)";
        return NULL;
    }
    return tpl_new(CHAT_MISTRAL, "mistral-nemo");
}

/* End-of-turn texts a template may write; those it does write, and its EOS
 * text, end generation. */
static const char *const TURN_ENDS[] = {
    "<|im_end|>", "<|eot_id|>", "<|eom_id|>", "<end_of_turn>", "<|end|>", "<|END_OF_TURN_TOKEN|>",
    "<|end_of_text|>", "<|endoftext|>", "<|EOT|>", "<|end_of_turn|>", "<｜end▁of▁sentence｜>",
    "<|user|>", "<|observation|>", "</s>", NULL};

static void find_stops(ChatTemplate *t, const char *text, const char *eos) {
    int n = 0;
    t->stops = xcalloc(sizeof TURN_ENDS / sizeof *TURN_ENDS + 2, sizeof *t->stops);
    for (int i = 0; TURN_ENDS[i]; i++)
        if (strstr(text, TURN_ENDS[i])) t->stops[n++] = xstrdup(TURN_ENDS[i]);
    if (eos && *eos) {
        int dup = 0;
        for (int i = 0; i < n; i++) dup |= !strcmp(t->stops[i], eos);
        if (!dup) t->stops[n++] = xstrdup(eos);
    }
}

/* The family of a known template (for its name and stop strings), or NULL. */
static ChatTemplate *recognise(const char *text) {
    TplText tt;
    tpl_normalise(text, &tt);
    const char *why = NULL;
    ChatTemplate *t = NULL;
    if (has(&tt, "<|im_start|>")) t = detect_chatml(&tt, &why);
    else if (has(&tt, "<|start_header_id|>")) t = detect_llama(&tt, &why);
    else if (has(&tt, "<start_of_turn>")) t = detect_gemma(&tt, &why);
    else if (has(&tt, "<|user|>")) t = detect_phi3(&tt, &why);
    else if (has(&tt, "[INST]")) t = detect_mistral(&tt, &why);
    if (t) t->uses_bos = has(&tt, "bos_token");
    tpl_free(&tt);
    return t;
}

ChatTemplate *chat_template_detect(const char *text, const char *bos, const char *eos, Err *e) {
    if (!text || !*text) {
        err_set(e, ERR_ARG, "empty chat template text");
        return NULL;
    }
    JinjaTemplate *j = jinja_parse(text, NULL, e);
    if (!j) {
        err_wrap(e, "chat template");
        return NULL;
    }
    ChatTemplate *t = recognise(text);
    if (!t) t = tpl_new(CHAT_JINJA, "jinja");
    t->jinja = j;
    find_stops(t, text, eos);
    /* A template may write bos_token without the tokenizer having one: as in
     * transformers, it is then undefined and prints as "". */
    t->bos = bos ? xstrdup(bos) : NULL;
    t->eos = eos ? xstrdup(eos) : NULL;
    return t;
}

/* --chat-template PATH: a .jinja file (any name with a '/' or ending in
 * .jinja is taken as a path). */
static ChatTemplate *from_file(const char *path, const char *bos, const char *eos, Err *e) {
    char *text = NULL;
    if (file_read_text(path, "a chat template", &text, NULL, e)) return NULL;
    ChatTemplate *t = chat_template_detect(text, bos, eos, e);
    if (!t) err_wrap(e, "%s", path);
    free(text);
    return t;
}

ChatTemplate *chat_template_by_name(const char *name, const char *bos, const char *eos, Err *e) {
    ChatTemplate *t = NULL;
    if (!name) name = "";
    if (!strcmp(name, "chatml")) {
        t = tpl_new(CHAT_CHATML, "chatml");
    } else if (!strcmp(name, "qwen2.5")) {
        t = tpl_new(CHAT_CHATML, "qwen2.5");
        t->default_system = xstrdup(QWEN_SYSTEM);
    } else if (!strcmp(name, "qwen3")) {
        t = tpl_new(CHAT_QWEN3, "qwen3");
    } else if (!strcmp(name, "llama3")) {
        /* The later Meta-Llama-3-8B-Instruct template, which honours
         * add_generation_prompt (the first one always appended the header). */
        t = tpl_new(CHAT_LLAMA3, "llama3");
        t->uses_bos = 1;
    } else if (!strcmp(name, "llama3.1") || !strcmp(name, "llama3.2")) {
        t = tpl_new(CHAT_LLAMA31, !strcmp(name, "llama3.1") ? "llama3.1" : "llama3.2");
        t->uses_bos = 1;
        t->cutoff = xstrdup("December 2023");
        t->default_date = xstrdup("26 Jul 2024");
        t->date_from_clock = !strcmp(name, "llama3.2");
    } else if (!strcmp(name, "gemma")) {
        t = tpl_new(CHAT_GEMMA, "gemma");
        t->uses_bos = 1;
    } else if (!strcmp(name, "phi3")) {
        /* Phi-3.5-mini-instruct's template. */
        t = tpl_new(CHAT_PHI3, "phi3");
        t->phi_has_system = t->phi_skip_empty_system = t->phi_eos_at_end = 1;
    } else if (!strcmp(name, "mistral-nemo")) {
        t = tpl_new(CHAT_MISTRAL, "mistral-nemo");
        t->uses_bos = 1;
    } else if (strchr(name, '/') || (strlen(name) > 6 && !strcmp(name + strlen(name) - 6, ".jinja"))) {
        return from_file(name, bos, eos, e);
    } else {
        char *names = chat_template_names_joined();
        err_set(e, ERR_ARG,
                "unknown chat template '%s'; known templates: %s, or the path of a .jinja file",
                name, names);
        free(names);
        return NULL;
    }
    return tpl_finish(t, bos, eos, e);
}

/* ---- Rendering -------------------------------------------------------------- */

static int check_messages(const ChatTemplate *t, const ChatMsg *m, int n, Err *e) {
    if (n <= 0 || !m) return err_set(e, ERR_ARG, "chat template %s: no messages to render", t->name);
    for (int i = 0; i < n; i++) {
        if (!m[i].role) return err_set(e, ERR_ARG, "chat message %d: missing role", i);
        if (!m[i].content)
            return err_set(e, ERR_ARG, "chat message %d (%s): missing content", i, m[i].role);
        if (!t->jinja && strcmp(m[i].role, "system") && strcmp(m[i].role, "user") &&
            strcmp(m[i].role, "assistant"))
            return err_set(e, ERR_UNSUPPORTED,
                           "chat message %d: role '%s' is not supported by chat template %s "
                           "(supported roles: system, user, assistant)",
                           i, m[i].role, t->name);
    }
    return 0;
}

/* The variables transformers' apply_chat_template passes: messages, tools
 * and documents (None), add_generation_prompt, the special tokens, and the
 * extra keyword arguments (enable_thinking=False only when asked, so a
 * template's default applies otherwise; date_string when given). */
static json_t *render_vars(const ChatTemplate *t, const ChatMsg *msgs, int n, int agp,
                           const ChatRenderOpts *opts) {
    json_t *v = json_object(), *m = json_array();
    for (int i = 0; i < n; i++)
        json_array_append_new(m, json_pack("{s:s,s:s}", "role", msgs[i].role, "content",
                                           msgs[i].content));
    json_object_set_new(v, "messages", m);
    json_object_set_new(v, "tools", json_null());
    json_object_set_new(v, "documents", json_null());
    json_object_set_new(v, "add_generation_prompt", json_boolean(agp));
    if (t->bos) json_object_set_new(v, "bos_token", json_string(t->bos));
    if (t->eos) json_object_set_new(v, "eos_token", json_string(t->eos));
    if (!opts->enable_thinking) json_object_set_new(v, "enable_thinking", json_false());
    if (opts->date) json_object_set_new(v, "date_string", json_string(opts->date));
    return v;
}

int chat_template_render(const ChatTemplate *t, const ChatMsg *msgs, int n,
                         int add_generation_prompt, const ChatRenderOpts *opts, char **out,
                         Err *e) {
    *out = NULL;
    ChatRenderOpts def = chat_render_opts_default();
    if (!opts) opts = &def;
    if (check_messages(t, msgs, n, e)) return -1;
    if (t->jinja) {
        json_t *v = render_vars(t, msgs, n, add_generation_prompt != 0, opts);
        int rc = jinja_render(t->jinja, v, 0, out, e);
        json_decref(v);
        if (rc) err_wrap(e, "chat template %s", t->name);
        return rc;
    }
    StrBuf b;
    sb_init(&b);
    if (chat_render(t, msgs, n, add_generation_prompt != 0, opts, &b, e)) {
        sb_free(&b);
        return -1;
    }
    if (!b.s) sb_append(&b, "");
    *out = sb_take(&b);
    return 0;
}

const char *const *chat_template_stop_strings(const ChatTemplate *t) {
    static const char *const chatml[] = {"<|im_end|>", "<|endoftext|>", NULL};
    static const char *const llama[] = {"<|eot_id|>", "<|eom_id|>", "<|end_of_text|>", NULL};
    static const char *const gemma[] = {"<end_of_turn>", "<eos>", NULL};
    static const char *const phi[] = {"<|end|>", "<|endoftext|>", NULL};
    static const char *const mistral[] = {"</s>", NULL};
    static const char *const none[] = {NULL};
    if (t->family == CHAT_JINJA) return (const char *const *)t->stops;
    switch (t->family) {
    case CHAT_CHATML: case CHAT_QWEN3: return chatml;
    case CHAT_LLAMA3: case CHAT_LLAMA31: return llama;
    case CHAT_GEMMA: return gemma;
    case CHAT_PHI3: return phi;
    case CHAT_MISTRAL: return mistral;
    case CHAT_JINJA: break;
    }
    return none;
}
