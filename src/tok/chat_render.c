/* chat_render: one native renderer per chat template family.
 *
 * Each renderer is the Jinja source of its reference template read as C,
 * without the tool-calling branches (tools are out of scope and rejected
 * before we get here). Comments quote the template where its behaviour is
 * surprising, since that behaviour is exactly what must be reproduced. */
#include "tok/chat_render.h"

#include <string.h>
#include <time.h>

/* ---- Python string semantics ------------------------------------------ */

/* Decodes the UTF-8 code point at s[0..n); returns its length (1 for a
 * malformed byte, which then counts as a non-space). */
static int utf8_decode(const unsigned char *s, size_t n, unsigned *cp) {
    unsigned c = s[0];
    int len = c < 0x80 ? 1 : (c >> 5) == 6 ? 2 : (c >> 4) == 14 ? 3 : (c >> 3) == 30 ? 4 : 0;
    if (len == 0 || (size_t)len > n) {
        *cp = 0xFFFD;
        return 1;
    }
    unsigned v = len == 1 ? c : len == 2 ? c & 0x1F : len == 3 ? c & 0x0F : c & 0x07;
    for (int i = 1; i < len; i++) {
        if ((s[i] & 0xC0) != 0x80) {
            *cp = 0xFFFD;
            return 1;
        }
        v = (v << 6) | (s[i] & 0x3F);
    }
    *cp = v;
    return len;
}

/* str.isspace(): bidirectional class WS, B or S, or category Zs. */
static int py_isspace(unsigned c) {
    return (c >= 0x09 && c <= 0x0D) || (c >= 0x1C && c <= 0x20) || c == 0x85 || c == 0xA0 ||
           c == 0x1680 || (c >= 0x2000 && c <= 0x200A) || c == 0x2028 || c == 0x2029 ||
           c == 0x202F || c == 0x205F || c == 0x3000;
}

const char *chat_py_strip(const char *s, size_t *len) {
    const unsigned char *p = (const unsigned char *)s;
    size_t n = strlen(s), a = 0, z = n;
    while (a < z) {
        unsigned cp;
        int k = utf8_decode(p + a, z - a, &cp);
        if (!py_isspace(cp)) break;
        a += k;
    }
    while (z > a) {
        size_t start = z - 1; /* back up to the lead byte of the last code point */
        while (start > a && (p[start] & 0xC0) == 0x80 && z - start < 4) start--;
        unsigned cp;
        int k = utf8_decode(p + start, z - start, &cp);
        if (start + (size_t)k != z) cp = 0xFFFD; /* stray continuation bytes */
        if (!py_isspace(cp)) break;
        z = start;
    }
    *len = z - a;
    return s + a;
}

static void append_trimmed(StrBuf *b, const char *s) {
    size_t n;
    const char *p = chat_py_strip(s, &n);
    sb_appendn(b, p, n);
}

/* s.lstrip('\n') / s.rstrip('\n') over the span [*a, *z). */
static void lstrip_nl(const char *s, size_t *a, size_t z) {
    while (*a < z && s[*a] == '\n') (*a)++;
}
static void rstrip_nl(const char *s, size_t a, size_t *z) {
    while (*z > a && s[*z - 1] == '\n') (*z)--;
}

static const char *last_strstr(const char *s, size_t n, const char *needle) {
    size_t m = strlen(needle);
    if (m > n) return NULL;
    for (size_t i = n - m + 1; i-- > 0;)
        if (!memcmp(s + i, needle, m)) return s + i;
    return NULL;
}

/* ---- ChatML (Qwen2 / Qwen2.5) ------------------------------------------ */

static int render_chatml(const ChatTemplate *t, const ChatMsg *m, int n, int agp, StrBuf *b) {
    /* {%- if messages[0]['role'] == 'system' %} ... {%- else %} default system */
    if (strcmp(m[0].role, "system") == 0) {
        sb_printf(b, "<|im_start|>system\n%s<|im_end|>\n", m[0].content);
    } else if (t->default_system) {
        sb_printf(b, "<|im_start|>system\n%s<|im_end|>\n", t->default_system);
    }
    for (int i = 0; i < n; i++) {
        if (i == 0 && strcmp(m[i].role, "system") == 0) continue; /* written above */
        sb_printf(b, "<|im_start|>%s\n%s<|im_end|>\n", m[i].role, m[i].content);
    }
    if (agp) sb_append(b, "<|im_start|>assistant\n");
    return 0;
}

/* ---- Qwen3 ---------------------------------------------------------------- */

static int qwen3_is_tool_response(const char *s) {
    size_t n = strlen(s), a = strlen("<tool_response>"), z = strlen("</tool_response>");
    return n >= a && n >= z && !strncmp(s, "<tool_response>", a) &&
           !strcmp(s + n - z, "</tool_response>");
}

static void render_qwen3_assistant(const ChatMsg *msg, int after_last_query, int is_last,
                                   StrBuf *b) {
    const char *c = msg->content;
    size_t n = strlen(c);
    /* content = whole message; reasoning_content = '' unless '</think>' in it:
     *   content   = content.split('</think>')[-1].lstrip('\n')
     *   reasoning = content.split('</think>')[0].rstrip('\n').split('<think>')[-1].lstrip('\n') */
    size_t ca = 0, cz = n, ra = 0, rz = 0;
    const char *close = strstr(c, "</think>");
    if (close) {
        const char *last_close = last_strstr(c, n, "</think>");
        ca = (size_t)(last_close - c) + strlen("</think>");
        lstrip_nl(c, &ca, cz);
        rz = (size_t)(close - c);
        rstrip_nl(c, 0, &rz);
        const char *open = last_strstr(c, rz, "<think>");
        ra = open ? (size_t)(open - c) + strlen("<think>") : 0;
        lstrip_nl(c, &ra, rz);
    }
    sb_append(b, "<|im_start|>assistant\n");
    /* Turns after the last user query keep their reasoning (always, for the
     * final turn); earlier turns are written without it. */
    if (after_last_query && (is_last || rz > ra)) {
        /* '<think>\n' + reasoning.strip('\n') + '\n</think>\n\n' + content.lstrip('\n') */
        lstrip_nl(c, &ra, rz);
        rstrip_nl(c, ra, &rz);
        sb_append(b, "<think>\n");
        sb_appendn(b, c + ra, rz - ra);
        sb_append(b, "\n</think>\n\n");
        lstrip_nl(c, &ca, cz);
    }
    sb_appendn(b, c + ca, cz - ca);
    sb_append(b, "<|im_end|>\n");
}

static int render_qwen3(const ChatMsg *m, int n, int agp, const ChatRenderOpts *o, StrBuf *b) {
    if (strcmp(m[0].role, "system") == 0)
        sb_printf(b, "<|im_start|>system\n%s<|im_end|>\n", m[0].content);
    /* ns.last_query_index: the last user message that is not a wrapped tool
     * response; messages|length - 1 when there is none. */
    int last_query = n - 1;
    for (int i = n - 1; i >= 0; i--) {
        if (strcmp(m[i].role, "user") == 0 && !qwen3_is_tool_response(m[i].content)) {
            last_query = i;
            break;
        }
    }
    for (int i = 0; i < n; i++) {
        if (strcmp(m[i].role, "assistant") == 0) {
            render_qwen3_assistant(&m[i], i > last_query, i == n - 1, b);
        } else if (i > 0 || strcmp(m[i].role, "system") != 0) {
            sb_printf(b, "<|im_start|>%s\n%s<|im_end|>\n", m[i].role, m[i].content);
        }
    }
    if (agp) {
        sb_append(b, "<|im_start|>assistant\n");
        /* {%- if enable_thinking is defined and enable_thinking is false %} */
        if (!o->enable_thinking) sb_append(b, "<think>\n\n</think>\n\n");
    }
    return 0;
}

/* ---- Llama 3 / 3.1 ------------------------------------------------------- */

static void llama3_turn(StrBuf *b, const char *role, const char *content) {
    /* '<|start_header_id|>' + role + '<|end_header_id|>\n\n' + content | trim + '<|eot_id|>' */
    sb_printf(b, "<|start_header_id|>%s<|end_header_id|>\n\n", role);
    append_trimmed(b, content);
    sb_append(b, "<|eot_id|>");
}

static int render_llama3(const ChatTemplate *t, const ChatMsg *m, int n, int agp, StrBuf *b) {
    /* The BOS is glued to the first message's text, so it appears once. */
    if (t->uses_bos) sb_append(b, t->bos);
    for (int i = 0; i < n; i++) llama3_turn(b, m[i].role, m[i].content);
    /* Llama-3-8B-Instruct's first template has no `if add_generation_prompt`:
     * it always ends with the assistant header. */
    if (agp || t->gen_prompt_always) sb_append(b, "<|start_header_id|>assistant<|end_header_id|>\n\n");
    return 0;
}

/* strftime_now("%d %b %Y"), as transformers defines it (local time). */
static void today_string(char *buf, size_t cap) {
    time_t now = time(NULL);
    struct tm tm;
    localtime_r(&now, &tm);
    if (!strftime(buf, cap, "%d %b %Y", &tm)) buf[0] = 0;
}

static int render_llama31(const ChatTemplate *t, const ChatMsg *m, int n, int agp,
                          const ChatRenderOpts *o, StrBuf *b) {
    char today[64];
    const char *date = o->date;
    if (!date && t->date_from_clock) {
        today_string(today, sizeof today);
        date = today;
    }
    if (!date) date = t->default_date;
    if (t->uses_bos) sb_append(b, t->bos);
    /* The first system message moves into the dated system block (trimmed);
     * without one the block still comes, with an empty message. */
    int first = 0;
    sb_printf(b, "<|start_header_id|>system<|end_header_id|>\n\nCutting Knowledge Date: %s\n"
                 "Today Date: %s\n\n",
              t->cutoff, date);
    if (strcmp(m[0].role, "system") == 0) {
        append_trimmed(b, m[0].content);
        first = 1;
    }
    sb_append(b, "<|eot_id|>");
    for (int i = first; i < n; i++) llama3_turn(b, m[i].role, m[i].content);
    if (agp) sb_append(b, "<|start_header_id|>assistant<|end_header_id|>\n\n");
    return 0;
}

/* ---- Gemma ---------------------------------------------------------------- */

static int render_gemma(const ChatTemplate *t, const ChatMsg *m, int n, int agp, StrBuf *b,
                        Err *e) {
    /* Gemma has no system role: Gemma 2's template raises "System role not
     * supported". Like Gemma 3's template (and llama.cpp), a leading system
     * message is prepended to the first user turn, separated by "\n\n", so
     * the pipeline's roles that need a system prompt can use Gemma. */
    const char *system = NULL;
    int first = 0;
    if (strcmp(m[0].role, "system") == 0) {
        system = m[0].content;
        first = 1;
    }
    if (first == n) return err_set(e, ERR_ARG, "gemma: a system message needs a user message after it");
    if (t->uses_bos) sb_append(b, t->bos);
    for (int i = first; i < n; i++) {
        int k = i - first;
        /* (message['role'] == 'user') != (loop.index0 % 2 == 0) → raise */
        if ((strcmp(m[i].role, "user") == 0) != (k % 2 == 0))
            return err_set(e, ERR_ARG,
                           "gemma: message %d (%s): conversation roles must alternate "
                           "user/assistant/user/assistant/...",
                           i, m[i].role);
        const char *role = strcmp(m[i].role, "assistant") == 0 ? "model" : m[i].role;
        sb_printf(b, "<start_of_turn>%s\n", role);
        if (k == 0 && system) {
            sb_append(b, system);
            sb_append(b, "\n\n");
        }
        append_trimmed(b, m[i].content);
        sb_append(b, "<end_of_turn>\n");
    }
    if (agp) sb_append(b, "<start_of_turn>model\n");
    return 0;
}

/* ---- Phi-3 / Phi-3.5 ------------------------------------------------------ */

static int render_phi3(const ChatTemplate *t, const ChatMsg *m, int n, int agp, StrBuf *b,
                       Err *e) {
    if (t->uses_bos) sb_append(b, t->bos);
    for (int i = 0; i < n; i++) {
        if (strcmp(m[i].role, "system") == 0) {
            if (!t->phi_has_system)
                return err_set(e, ERR_ARG, "%s: message %d: this template has no system role",
                               t->name, i);
            /* {% if message['role'] == 'system' and message['content'] %} */
            if (t->phi_skip_empty_system && !m[i].content[0]) continue;
        }
        sb_printf(b, "<|%s|>\n%s<|end|>\n", m[i].role, m[i].content);
    }
    if (agp) sb_append(b, "<|assistant|>\n");
    else if (t->phi_eos_at_end) sb_append(b, t->eos);
    return 0;
}

/* ---- Mistral Nemo --------------------------------------------------------- */

static int render_mistral(const ChatTemplate *t, const ChatMsg *m, int n, StrBuf *b, Err *e) {
    const char *system = NULL;
    int first = 0;
    if (strcmp(m[0].role, "system") == 0) {
        system = m[0].content;
        first = 1;
    }
    for (int i = first; i < n; i++) {
        if ((strcmp(m[i].role, "user") == 0) != ((i - first) % 2 == 0))
            return err_set(e, ERR_ARG,
                           "%s: message %d (%s): after the optional system message, conversation "
                           "roles must alternate user/assistant/user/assistant/...",
                           t->name, i, m[i].role);
    }
    if (t->uses_bos) sb_append(b, t->bos);
    for (int i = first; i < n; i++) {
        if (strcmp(m[i].role, "user") == 0) {
            /* The system message goes into the LAST message only, and only if
             * that is a user message: a chat ending with an assistant reply
             * renders without it (this is what the template does). */
            if (i == n - 1 && system)
                sb_printf(b, "[INST]%s\n\n%s[/INST]", system, m[i].content);
            else
                sb_printf(b, "[INST]%s[/INST]", m[i].content);
        } else {
            sb_append(b, m[i].content);
            sb_append(b, t->eos);
        }
    }
    /* The template never looks at add_generation_prompt: after [/INST] the
     * model's reply starts directly. */
    return 0;
}

int chat_render(const ChatTemplate *t, const ChatMsg *msgs, int n, int agp,
                const ChatRenderOpts *opts, StrBuf *b, Err *e) {
    switch (t->family) {
    case CHAT_CHATML: return render_chatml(t, msgs, n, agp, b);
    case CHAT_QWEN3: return render_qwen3(msgs, n, agp, opts, b);
    case CHAT_LLAMA3: return render_llama3(t, msgs, n, agp, b);
    case CHAT_LLAMA31: return render_llama31(t, msgs, n, agp, opts, b);
    case CHAT_GEMMA: return render_gemma(t, msgs, n, agp, b, e);
    case CHAT_PHI3: return render_phi3(t, msgs, n, agp, b, e);
    case CHAT_MISTRAL: return render_mistral(t, msgs, n, b, e);
    case CHAT_JINJA: break; /* rendered by the interpreter (chat_template_render) */
    }
    return err_set(e, ERR_INTERNAL, "chat template: unknown family %d", (int)t->family);
}
