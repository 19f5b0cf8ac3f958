/* chat_render: the native renderer of each chat template family, and the
 * settings that tell the variants of a family apart. Internal to the chat
 * template module (chat_template.h is the public side). */
#ifndef ALOE_TOK_CHAT_RENDER_H
#define ALOE_TOK_CHAT_RENDER_H

#include "base/err.h"
#include "base/mem.h"
#include "tok/chat_template.h"
#include "tok/jinja.h"

typedef enum ChatFamily {
    CHAT_CHATML,  /* <|im_start|>role\n...<|im_end|>\n (Qwen2/2.5 and others) */
    CHAT_QWEN3,   /* ChatML plus <think> handling */
    CHAT_LLAMA3,  /* Llama 3 (8B-Instruct): headers, trimmed content, <|eot_id|> */
    CHAT_LLAMA31, /* Llama 3.1/3.2/3.3: Llama 3 plus the dated system block */
    CHAT_GEMMA,   /* <start_of_turn>user|model ... <end_of_turn> */
    CHAT_PHI3,    /* <|user|>\n...<|end|>\n */
    CHAT_MISTRAL, /* Mistral Nemo: [INST]...[/INST]reply</s> */
    CHAT_JINJA    /* any other template: only the interpreter renders it */
} ChatFamily;

struct ChatTemplate {
    ChatFamily family;     /* the recognised family (names it, gives its stop strings) */
    JinjaTemplate *jinja;  /* the template text, interpreted: renders when set */
    char **stops;          /* interpreted: end-of-turn markers found in the text (NULL-ended) */
    const char *name;     /* static: "qwen2.5", "llama3.1", ... */
    char *bos, *eos;      /* token texts (owned, may be NULL) */
    int uses_bos;         /* the template writes {{ bos_token }} */
    char *default_system; /* chatml: system turn when the chat has none */
    int gen_prompt_always; /* llama3: the template appends the assistant header unconditionally */
    char *cutoff;         /* llama3.1: "Cutting Knowledge Date: " text */
    char *default_date;   /* llama3.1: date_string when none is given */
    int date_from_clock;  /* llama3.2: date_string = strftime_now("%d %b %Y") */
    int phi_has_system;   /* phi3: renders <|system|> turns */
    int phi_skip_empty_system; /* phi3: ... only when the content is not empty */
    int phi_eos_at_end;   /* phi3: eos_token ends a render without a generation prompt */
};

/* Renders msgs into b (appending). The messages' roles and contents have been
 * checked (non-NULL, role one of system/user/assistant) by the caller. */
int chat_render(const ChatTemplate *t, const ChatMsg *msgs, int n, int add_generation_prompt,
                const ChatRenderOpts *opts, StrBuf *b, Err *e);

/* Python's str.strip() with no argument (Jinja's `trim` filter): strips the
 * code points Python counts as whitespace, which include U+00A0, U+2000..
 * U+200A, U+3000 and others beyond ASCII. Returns the start; *len the
 * length of the kept span. */
const char *chat_py_strip(const char *s, size_t *len);

#endif
