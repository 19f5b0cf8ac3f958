/* encode: training examples (message lists, train/data.h) into token ids
 * with the model's chat template, as TRL does:
 *
 *  - the conversation is rendered (chat_template_render) and the text
 *    encoded without adding special tokens (the template writes them);
 *  - a reply's tokens are those between the render of the messages before
 *    it with the generation prompt and the render including it, i.e. the
 *    reply text and the template's end of turn (e.g. "<|im_end|>\n"). The
 *    same rule gives a DPO completion: everything after the prompt render.
 *    Each shorter render must be a token prefix of the longer one; a template
 *    for which that fails is an error naming the example.
 *  - max_len > 0 drops the oldest turns (a system message stays; the last
 *    user message and the reply trained on never go) until the sequence
 *    fits; an example that cannot fit is an error (ERR_ARG) the caller may
 *    skip. Raw-text DPO pairs (TRL's standard format: BOS + prompt, the
 *    completion + EOS) lose prompt tokens from the left instead. */
#ifndef ALOE_TRAIN_ENCODE_H
#define ALOE_TRAIN_ENCODE_H

#include <stdint.h>

#include "base/err.h"
#include "tok/chat_template.h"
#include "tok/tok.h"
#include "train/data.h"

typedef struct Encoder {
    const Tokenizer *tok;
    const ChatTemplate *tmpl;
    ChatRenderOpts opts;
    int max_len; /* 0: no limit */
} Encoder;

typedef struct SftEncoded {
    int32_t *ids;
    uint8_t *is_target; /* per token */
    int n;
    int dropped; /* messages dropped to fit max_len */
} SftEncoded;

typedef struct DpoEncoded {
    int32_t *chosen, *rejected; /* each = the prompt's n_prompt tokens + its completion */
    int n_chosen, n_rejected, n_prompt;
    int dropped;
} DpoEncoded;

int sft_encode(const Encoder *enc, const SftExample *x, SftEncoded *out, Err *e);
void sft_encoded_free(SftEncoded *s);
int dpo_encode(const Encoder *enc, const DpoExample *x, DpoEncoded *out, Err *e);
void dpo_encoded_free(DpoEncoded *d);

#endif
