/* data: training examples as message lists, from aloe conversation trees and
 * from TRL JSONL. Tokenisation (chat template, truncation) comes after this
 * layer; here an example is only messages and which of them carry the loss.
 *
 * Inputs, detected per record:
 *  - aloe tree (docs/DESIGN.md §2): {"profile", "personality", "conversations": [
 *      {"user", "assistant": {"preferred", "rejected"}, "chosen": "preferred"|
 *      "rejected", ...}, ...]}. "chosen" says which reply the conversation
 *    actually continued with. For turn k the history is, for every earlier
 *    turn j, the real user message and the reply actually chosen at j; then
 *    the user message of turn k.
 *      SFT: one example per turn, history + turn k's preferred reply (or the
 *           rejected one: the paper's control), loss on that reply only. The
 *           history's replies never carry loss, since some were rejected ones.
 *      DPO: one pair per turn: prompt = history, chosen = preferred,
 *           rejected = rejected.
 *    profile and personality are hidden from the model, as in the paper.
 *  - TRL "messages" (SFT): [{"role", "content"}, ...]; the loss is on the last
 *    assistant message (later messages are dropped) or on every assistant
 *    message.
 *  - TRL preference (DPO): "prompt", "chosen", "rejected", each a message
 *    list, or all three plain strings (TRL's standard format: raw text, no
 *    chat template). Without "prompt", the prompt is the longest common
 *    message prefix of chosen and rejected (TRL's implicit prompt).
 * Bad records are errors naming the file, line and field. */
#ifndef ALOE_TRAIN_DATA_H
#define ALOE_TRAIN_DATA_H

#include <stddef.h>
#include <stdint.h>

#include "base/err.h"

typedef struct TrainMsg {
    char *role; /* "system", "user", "assistant", ... */
    char *content;
} TrainMsg;

typedef struct MsgList {
    TrainMsg *items;
    int n, cap;
} MsgList;

void msgs_push(MsgList *l, const char *role, const char *content);
void msgs_free(MsgList *l);

typedef struct SftExample {
    MsgList msgs;
    uint8_t *is_target; /* per message: 1 = the loss is on this message */
    char *where;        /* "file:line" or "file:line: turn k", for later messages */
} SftExample;

typedef struct SftData {
    SftExample *items;
    int n, cap;
} SftData;

typedef enum { BRANCH_PREFERRED, BRANCH_REJECTED } TreeBranch;
typedef enum { LOSS_ON_LAST, LOSS_ON_ALL_ASSISTANT } LossOn;

typedef struct SftOptions {
    TreeBranch branch; /* which reply of a tree turn is the target */
    LossOn loss_on;    /* for TRL "messages" records */
} SftOptions;

/* The examples one tree expands to may hold at most this many bytes (each
 * turn's example repeats the history before it); a larger tree is an error
 * naming the file and line. Lines are at most JSONL_MAX_LINE (16 MiB). */
#define TRAIN_MAX_TREE_BYTES ((size_t)256 << 20)

/* Appends every example of a JSONL file (trees or TRL messages, mixed). */
int sft_data_load(const char *path, const SftOptions *o, SftData *out, Err *e);
/* The same over a buffer; `name` is used in messages. */
int sft_data_load_buf(const char *name, const char *buf, size_t len, const SftOptions *o, SftData *out, Err *e);
void sft_data_free(SftData *d);

typedef struct DpoExample {
    MsgList prompt, chosen, rejected;
    int raw_text; /* 1: one "text" message each, tokenised as is (no template) */
    char *where;
} DpoExample;

typedef struct DpoData {
    DpoExample *items;
    int n, cap;
} DpoData;

/* Appends every pair of a JSONL file (trees or TRL preference records). */
int dpo_data_load(const char *path, DpoData *out, Err *e);
int dpo_data_load_buf(const char *name, const char *buf, size_t len, DpoData *out, Err *e);
void dpo_data_free(DpoData *d);

int tree_branch_parse(const char *name, TreeBranch *out, Err *e);
int loss_on_parse(const char *name, LossOn *out, Err *e);

#endif
