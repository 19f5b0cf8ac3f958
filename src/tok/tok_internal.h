/* The Tokenizer's insides, shared by the files of the tok layer only. */
#ifndef ALOE_TOK_INTERNAL_H
#define ALOE_TOK_INTERNAL_H

#define PCRE2_CODE_UNIT_WIDTH 8
#include <pcre2.h>
#include <stddef.h>
#include <stdint.h>

#include "tok/tok.h"

/* String -> id, open addressing; keys are the tokenizer's own strings. */
typedef struct StrMap {
    int32_t *slot; /* id or -1 */
    uint32_t mask;
} StrMap;

/* (left id, right id) -> merge rank and merged id. */
typedef struct PairMap {
    uint64_t *key; /* (left+1) << 32 | (right+1); 0 = empty */
    int32_t *rank, *merged;
    uint32_t mask;
} PairMap;

typedef struct AddedTok {
    int id;
    const char *text; /* = t->text[id] unless the content differs */
    int len;
    uint8_t special, lstrip, rstrip, normalized, single_word;
} AddedTok;

enum { NORM_NONE = 0, NORM_NFC = 1, NORM_BERT = 2 };

struct Tokenizer {
    TokModel model;
    int n;
    char **text;       /* [n] vocabulary strings, in text_pool */
    char *text_pool, *piece_pool;
    int *len;          /* [n] */
    float *score;      /* [n] SPM scores (0 when absent) */
    uint8_t *type;     /* [n] TOK_TYPE_* */
    char **piece;      /* [n] decoded bytes of each token, in piece_pool */
    int *piece_len;
    StrMap map;
    PairMap merges;

    /* pre-tokenizer (BPE): a sequence of regex splits, then byte mapping */
    pcre2_code *re[4];
    int n_re;
    int byte_level;      /* map bytes to printable chars (GPT-2 scheme) */
    int prefix_space;    /* ByteLevel add_prefix_space */
    int ignore_merges;   /* a word found whole in the vocab is one token */
    int byte_id[256];    /* BPE: id of each byte's single-char token */
    int fuse_unk;        /* character BPE: consecutive unknowns are one token */
    /* Metaspace pre-tokenizer (character BPE): spaces -> meta_repl */
    char meta_repl[8];   /* "" = no Metaspace */
    int meta_prepend;    /* 0 never, 1 first segment, 2 always */
    int meta_split;
    /* Prepend / Replace normalisers of SentencePiece-style tokenizer.json */
    char norm_prepend[8];
    int norm_space_to_meta; /* Replace " " -> "▁" */

    /* normaliser */
    int norm;            /* NORM_* */
    int bert_lower, bert_strip_accents, bert_chinese, bert_clean;

    /* SentencePiece */
    int add_space_prefix;
    int byte_fallback;   /* SPM/BPE: <0xNN> tokens */
    int spm_byte[256];

    /* WordPiece */
    char wp_start[8], wp_cont[8]; /* word-start and continuation prefixes */
    int wp_max_chars;

    /* added tokens, matched before the model */
    AddedTok *added;
    int n_added;
    uint8_t added_first[256]; /* first bytes of added tokens, to skip the search */
    int strip_unicode_ws;     /* lstrip/rstrip take Unicode whitespace (tokenizer.json), else ASCII (llama.cpp) */

    /* post-processor: ids around the sequence when add_special */
    int32_t pre_ids[4], post_ids[4];
    int n_pre, n_post;

    int bos, eos, unk, pad;
    int32_t *eot;
    int n_eot;
    int strip_decoded_space; /* SPM: drop the space the prefix put at the start */
    int wp_decode;           /* WordPiece decoding: join with spaces, cleanup */
};

/* vocab.c */
uint32_t tok_hash(const char *s, size_t n);
int strmap_get(const Tokenizer *t, const char *s, size_t n);
int pairmap_get(const PairMap *m, int a, int b, int *merged);
/* Adds an added token; content (NULL: the vocabulary text) is a malloc'd
 * string the tokenizer takes over. */
void tok_add_added(Tokenizer *t, int id, const char *content, int special, int lstrip, int rstrip,
                   int normalized, int single_word);
int tok_add_merges(Tokenizer *t, int n, const char *const *left, const char *const *right, Err *e);
void tok_build_pieces(Tokenizer *t);

/* bytelevel.c: the GPT-2 byte <-> printable character mapping */
/* UTF-8 of the character byte b maps to; returns its length (1 or 2). */
int bytelevel_char(unsigned char b, char out[2]);
/* The byte a code point stands for, or -1 if it is not a mapped char. */
int bytelevel_byte(uint32_t cp);

/* utf8 helpers (unicode.c) */
/* Decodes one code point; returns its length (>= 1); *cp = 0xFFFD when invalid. */
int utf8_decode(const unsigned char *s, size_t n, uint32_t *cp);
int utf8_encode(uint32_t cp, char out[4]);
/* Length of the sequence a lead byte starts (1..4), 0 for a non-lead byte. */
int utf8_seq_len(unsigned char lead);

/* Id vector */
typedef struct IdVec {
    int32_t *v;
    int n, cap;
} IdVec;
void idvec_push(IdVec *v, int32_t id);

/* heap.c: merge candidates, smallest key first, then leftmost pos */
typedef struct TokCand {
    double key;
    int32_t pos, a, b, c;
} TokCand;
typedef struct TokHeap {
    TokCand *v;
    int n, cap;
} TokHeap;
void tokheap_push(TokHeap *h, TokCand c);
TokCand tokheap_pop(TokHeap *h);

/* pretok.c */
int pretok_compile(Tokenizer *t, const char *pattern, Err *e);
/* Splits text by the pre-tokenizer regexes; calls fn for each piece. */
typedef void (*PieceFn)(const Tokenizer *t, const char *s, size_t n, IdVec *out);
void pretok_split(const Tokenizer *t, const char *s, size_t n, PieceFn fn, IdVec *out);
extern const char *const TOK_RE_GPT2, *const TOK_RE_LLAMA3, *const TOK_RE_QWEN2;

/* bpe.c, spm.c, wordpiece.c: one pre-tokenized piece (or normalised text) -> ids */
void bpe_encode_word(const Tokenizer *t, const char *s, size_t n, IdVec *out);
void bpe_encode(const Tokenizer *t, const char *s, size_t n, int first, IdVec *out);
void bpe_encode_chars(const Tokenizer *t, const char *s, size_t n, IdVec *out);
void spm_encode(const Tokenizer *t, const char *s, size_t n, int space_prefix, IdVec *out);
void wpm_encode(const Tokenizer *t, const char *s, size_t n, IdVec *out);
/* Bert normaliser (clean, Chinese padding, lowercase, accents): malloc'd. */
char *bert_normalize(const Tokenizer *t, const char *s, size_t n, size_t *out_n);

#endif
