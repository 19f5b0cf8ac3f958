/* tok: text <-> token ids for the model families aloe runs.
 *
 * Three models behind one type:
 *   - byte-level BPE (GPT-2, Llama 3, Qwen2/2.5/3): regex pre-tokenizer,
 *     bytes mapped to printable characters, merges applied by rank;
 *   - SentencePiece BPE (Llama 2, Mistral v0.1, Phi-3): merges by score,
 *     "▁" for spaces, <0xNN> byte fallback;
 *   - WordPiece (BERT): lowercase/accent-strip normaliser, greedy longest
 *     match with a continuation prefix.
 * A tokenizer comes from a Hugging Face tokenizer.json (tok_load_hf), from the
 * metadata of a GGUF file (tok_load_gguf), or from plain arrays (tok_new), so
 * that any container format can feed it.
 *
 * A Tokenizer is read-only after loading: encode/decode may run from several
 * threads at once. */
#ifndef ALOE_TOK_TOK_H
#define ALOE_TOK_TOK_H

#include <stddef.h>
#include <stdint.h>

#include "base/err.h"
#include "base/mem.h"

typedef struct Tokenizer Tokenizer;

typedef enum { TOK_BPE = 1, TOK_SPM, TOK_WPM } TokModel;

/* Token types, numbered as GGUF's tokenizer.ggml.token_type. */
enum {
    TOK_TYPE_NORMAL = 1,
    TOK_TYPE_UNKNOWN = 2,
    TOK_TYPE_CONTROL = 3,      /* special: matched in text only with parse_special */
    TOK_TYPE_USER_DEFINED = 4, /* added token: always matched in text */
    TOK_TYPE_UNUSED = 5,
    TOK_TYPE_BYTE = 6          /* SentencePiece <0xNN> */
};

/* The plain constructor's input. Strings are NUL-terminated and copied. */
typedef struct TokVocab {
    TokModel model;
    int n;                    /* vocabulary size */
    const char *const *text;  /* [n] token texts as the vocabulary stores them */
    const float *score;       /* [n] SentencePiece scores, or NULL */
    const int32_t *type;      /* [n] TOK_TYPE_*, or NULL (all normal) */
    int n_merges;             /* BPE: merges by rank, as "left right" strings */
    const char *const *merges;
} TokVocab;

/* Builds a tokenizer with the model's default settings: BPE uses the GPT-2
 * pre-tokenizer; SPM adds a space prefix; WPM uses "▁" as word start (the
 * GGUF convention). CONTROL / USER_DEFINED tokens become added tokens. */
Tokenizer *tok_new(const TokVocab *v, Err *e);

/* Selects the BPE pre-tokenizer by llama.cpp's name (tokenizer.ggml.pre):
 * "gpt-2", "llama3"/"llama-bpe", "qwen2", "default", ... */
int tok_set_pre(Tokenizer *t, const char *name, Err *e);
/* Special ids (-1 = none) and whether add_special adds BOS / EOS. */
void tok_set_specials(Tokenizer *t, int bos, int eos, int unk, int pad, int add_bos, int add_eos);
/* Adds an end-of-turn id (eos is always one). */
void tok_add_eot(Tokenizer *t, int id);
void tok_set_add_space_prefix(Tokenizer *t, int on);

/* From a directory holding tokenizer.json (and optionally
 * tokenizer_config.json), or a tokenizer.json path. */
Tokenizer *tok_load_hf(const char *dir_or_tokenizer_json, Err *e);
/* From tokenizer.json text in memory (name is used in messages). */
Tokenizer *tok_load_hf_mem(const char *json, size_t len, const char *name, Err *e);
/* From the tokenizer.ggml.* metadata of a GGUF file. */
Tokenizer *tok_load_gguf(const char *path, Err *e);
/* The same from an open GGUF (gguf_open or gguf_open_mem; messages name
 * its path). */
struct Gguf;
Tokenizer *tok_from_gguf(const struct Gguf *g, Err *e);
/* Either, by looking at the path: a .gguf file, a directory or a .json file. */
Tokenizer *tok_load(const char *path, Err *e);
void tok_free(Tokenizer *t);

/* text -> ids (*ids malloc'd, caller frees). add_special adds the model's
 * BOS/EOS (or [CLS]/[SEP]); parse_special lets special-token text such as
 * "<|im_end|>" in the input become that token (otherwise it is plain text).
 * Added tokens that are not special are always matched. */
int tok_encode(const Tokenizer *t, const char *text, int add_special, int parse_special,
               int32_t **ids, int *n, Err *e);
/* The same for a text of known length (may hold NUL bytes). */
int tok_encode_n(const Tokenizer *t, const char *text, size_t len, int add_special,
                 int parse_special, int32_t **ids, int *n, Err *e);

/* ids -> text (malloc'd). skip_special drops control tokens such as BOS.
 * Errors on an id outside the vocabulary. */
char *tok_decode(const Tokenizer *t, const int32_t *ids, int n, int skip_special, Err *e);
/* The bytes one token stands for (not NUL-terminated, may be part of a
 * UTF-8 sequence); NULL for an id out of range. */
const char *tok_token_bytes(const Tokenizer *t, int id, int *len);

/* A decoder for streaming output: it only ever emits whole UTF-8
 * sequences, holding back the first bytes of a character split across
 * tokens; invalid bytes come out as U+FFFD. */
typedef struct TokStream {
    const Tokenizer *t;
    int skip_special;
    int started; /* a token has been emitted (SentencePiece drops the first space) */
    unsigned char pend[4];
    int npend;
} TokStream;

void tok_stream_init(TokStream *s, const Tokenizer *t, int skip_special);
/* Appends to out the text that id completes. Returns -1 for a bad id. */
int tok_stream_push(TokStream *s, int32_t id, StrBuf *out, Err *e);
/* Ends the stream: a held-back incomplete sequence becomes U+FFFD. */
void tok_stream_flush(TokStream *s, StrBuf *out);

/* The token's text as the vocabulary stores it (e.g. "Ġthe", "▁the"). */
const char *tok_token_str(const Tokenizer *t, int id);
int tok_vocab_size(const Tokenizer *t);
/* SentencePiece score (0 when the vocabulary has none) and TOK_TYPE_* of a
 * token; 0 for an id out of range. */
float tok_token_score(const Tokenizer *t, int id);
int tok_token_type(const Tokenizer *t, int id);
TokModel tok_model(const Tokenizer *t);
/* Id of a token by its exact vocabulary text, -1 if absent. */
int tok_find(const Tokenizer *t, const char *token_text);
int tok_bos(const Tokenizer *t);
int tok_eos(const Tokenizer *t);
int tok_pad(const Tokenizer *t);
int tok_unk(const Tokenizer *t);
/* End-of-turn ids (eos, <|im_end|>, <|eot_id|>, <|end|>, ...). */
const int32_t *tok_eot(const Tokenizer *t, int *n);
int tok_is_eot(const Tokenizer *t, int id);
/* A control / special token (not normal text). */
int tok_is_special(const Tokenizer *t, int id);

#endif
