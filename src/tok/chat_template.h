/* chat_template: renders a conversation into the prompt text a chat model
 * was trained on, byte for byte what transformers' apply_chat_template
 * renders for the same template.
 *
 * Not a Jinja interpreter: each known template family has a native renderer
 * (chat_render.c), and the family is *recognised* from the template text the
 * model ships (tokenizer_config.json `chat_template`, chat_template.jinja, or
 * GGUF `tokenizer.chat_template`) by its distinctive content, ignoring
 * whitespace and quoting style. Where templates of one family differ (a
 * default system prompt, a date, whether the BOS text is part of the
 * template), the differences are read from the template text. A template
 * that is not recognised is an error naming the known families, never a
 * guess; a caller may name the family instead (`--chat-template NAME`).
 *
 * The output is TEXT: the BOS text appears when the template writes
 * `{{ bos_token }}`, so the tokenizer must then encode it without adding a
 * second BOS. Tool calls and tool roles are out of scope: a message whose
 * role the family does not render is an error naming the role. */
#ifndef ALOE_TOK_CHAT_TEMPLATE_H
#define ALOE_TOK_CHAT_TEMPLATE_H

#include "base/err.h"

typedef struct ChatMsg {
    const char *role; /* "system", "user" or "assistant" */
    const char *content;
} ChatMsg;

typedef struct ChatRenderOpts {
    /* Qwen3: 0 renders the generation prompt with an empty think block, as
     * apply_chat_template(..., enable_thinking=False) does; 1 is the
     * template's default. Ignored by other families. */
    int enable_thinking;
    /* Llama 3.1/3.2: the "Today Date: " text (e.g. "26 Jul 2024"), as the
     * `date_string` template variable. NULL: the template's default (a fixed
     * date for 3.1, today's local date for 3.2, as transformers'
     * strftime_now gives it). Ignored by other families. */
    const char *date;
} ChatRenderOpts;

/* enable_thinking = 1, date = NULL. */
ChatRenderOpts chat_render_opts_default(void);

typedef struct ChatTemplate ChatTemplate;

/* Recognises the family of template_text and reads its variant settings.
 * bos_text / eos_text are the tokenizer's BOS / EOS token texts (NULL when it
 * has none); a template that writes one of them needs it. */
ChatTemplate *chat_template_detect(const char *template_text, const char *bos_text,
                                   const char *eos_text, Err *e);
/* A family by name (one of chat_template_names()), with the settings of the
 * reference template of that name. */
ChatTemplate *chat_template_by_name(const char *name, const char *bos_text,
                                    const char *eos_text, Err *e);
void chat_template_free(ChatTemplate *t);

/* NULL-terminated list of the names chat_template_by_name accepts. */
const char *const *chat_template_names(void);
/* The names joined with ", " (for error messages and --help; caller frees). */
char *chat_template_names_joined(void);
/* The family name of t ("qwen2.5", "llama3.1", ...). */
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
/* Loads and recognises the template of an HF directory; with name non-NULL
 * the family is taken by name instead (the directory still supplies the
 * BOS/EOS texts, and need not hold a template). */
ChatTemplate *chat_template_open_hf(const char *dir, const char *name, Err *e);

#endif
