/* chat_template: renders a conversation into the prompt text a chat model
 * was trained on, byte for byte what transformers' apply_chat_template
 * renders for the same template.
 *
 * The template text the model ships (tokenizer_config.json `chat_template`,
 * chat_template.jinja, or GGUF `tokenizer.chat_template`) is interpreted by
 * aloe's Jinja interpreter (jinja.h) with the variables transformers passes.
 * Its family is also recognised where it is a known one (chat_template_name
 * then says "qwen2.5", "llama3.1", ...; otherwise "jinja"), which gives the
 * end-of-turn markers generation stops at. A caller may name a built-in
 * family instead (`--chat-template NAME`), rendered natively, or the path of
 * a .jinja file.
 *
 * The output is TEXT: the BOS text appears when the template writes
 * `{{ bos_token }}`, so the tokenizer must then encode it without adding a
 * second BOS. Messages carry a role and text content; an interpreted
 * template decides which roles it accepts (its raise_exception fails the
 * render with the template's message). */
#ifndef ALOE_TOK_CHAT_TEMPLATE_H
#define ALOE_TOK_CHAT_TEMPLATE_H

#include "base/err.h"

typedef struct ChatMsg {
    const char *role; /* "system", "user" or "assistant" */
    const char *content;
} ChatMsg;

typedef struct ChatRenderOpts {
    /* 0: apply_chat_template(..., enable_thinking=False) (Qwen3 renders an
     * empty think block); 1: the variable is left undefined, the template's
     * default. */
    int enable_thinking;
    /* The `date_string` template variable (Llama 3.1/3.2's "Today Date: "
     * text, e.g. "26 Jul 2024"). NULL: undefined, the template's default (a
     * fixed date for 3.1, today's local date for 3.2, as transformers'
     * strftime_now gives it). */
    const char *date;
} ChatRenderOpts;

/* enable_thinking = 1, date = NULL. */
ChatRenderOpts chat_render_opts_default(void);

typedef struct ChatTemplate ChatTemplate;

/* Parses template_text for the interpreter (an error names the template
 * line and column) and recognises its family if known. bos_text / eos_text
 * are the tokenizer's BOS / EOS token texts (NULL when it has none: the
 * template then sees them undefined, as transformers leaves them). */
ChatTemplate *chat_template_detect(const char *template_text, const char *bos_text,
                                   const char *eos_text, Err *e);
/* A family by name (one of chat_template_names()), with the settings of the
 * reference template of that name; or, for a name with a '/' or ending in
 * ".jinja", the template in that file (interpreted). */
ChatTemplate *chat_template_by_name(const char *name, const char *bos_text,
                                    const char *eos_text, Err *e);
void chat_template_free(ChatTemplate *t);

/* NULL-terminated list of the names chat_template_by_name accepts. */
const char *const *chat_template_names(void);
/* The names joined with ", " (for error messages and --help; caller frees). */
char *chat_template_names_joined(void);
/* The family name of t ("qwen2.5", "llama3.1", ...; "jinja" for a template
 * of no known family). */
const char *chat_template_name(const ChatTemplate *t);

/* Renders msgs[0..n) into *out (caller frees). add_generation_prompt appends
 * the header of the assistant turn to come. opts may be NULL (defaults). */
int chat_template_render(const ChatTemplate *t, const ChatMsg *msgs, int n,
                         int add_generation_prompt, const ChatRenderOpts *opts, char **out,
                         Err *e);

/* NULL-terminated end-of-turn markers of t's family (e.g. "<|im_end|>",
 * "<|eot_id|>"): generation stops when the model writes one. */
const char *const *chat_template_stop_strings(const ChatTemplate *t);

/* The chat template and special-token texts of a Hugging Face model
 * directory: chat_template.jinja beside tokenizer_config.json if present,
 * else tokenizer_config.json's `chat_template` (a string, or a list of
 * {name, template} objects of which "default" is taken); bos_token and
 * eos_token from tokenizer_config.json (a string, {"content": ...}, or null).
 * Outputs are caller-freed; *bos_text / *eos_text may be set to NULL. */
int chat_template_load_hf(const char *dir, char **template_text, char **bos_text,
                          char **eos_text, Err *e);
/* Loads the template of an HF directory (chat_template_detect); with name
 * non-NULL it is taken by name instead (the directory still supplies the
 * BOS/EOS texts, and need not hold a template). */
ChatTemplate *chat_template_open_hf(const char *dir, const char *name, Err *e);

#endif
