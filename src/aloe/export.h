/* export: conversation trees -> TRL training JSONL.
 *
 * A tree (see dialogues.h) is one path through a conversation with a
 * preference pair at every turn. For turn k the context is the real
 * history along the path actually taken: u1, a1, ..., u(k-1), a(k-1), uk,
 * where ai = assistant_i[chosen_i] (the reference instead repeated the
 * first user message on every turn). Then:
 *   SFT  {"messages": [context..., {"role":"assistant","content": branch reply}]}
 *        one record per turn; branch = "preferred" (or "rejected", a control)
 *   DPO  {"prompt": [context...], "chosen": [{"role":"assistant", preferred}],
 *         "rejected": [{"role":"assistant", rejected}]}
 *        one record per turn
 * A turn whose pair was dropped (null preferred/rejected) gives no record,
 * but its taken reply stays in the history of the turns after it. An
 * optional system message starts every context. */
#ifndef ALOE_ALOE_EXPORT_H
#define ALOE_ALOE_EXPORT_H

#include <jansson.h>

#include "base/err.h"

typedef struct ExportOptions {
    const char *branch; /* "preferred" (default) or "rejected" */
    const char *system; /* NULL: no system message */
} ExportOptions;

typedef struct ExportStats {
    long trees, turns, sft, dpo, dropped;
} ExportStats;

/* Appends the records of one tree to sft and/or dpo (arrays; either may be
 * NULL). `where` ("trees.jsonl:3") prefixes error messages, which name the
 * field: "trees.jsonl:3: conversations[2].chosen: expected ...". */
int export_tree(json_t *tree, const ExportOptions *o, json_t *sft, json_t *dpo, ExportStats *st, const char *where,
                Err *e);

/* Reads trees from in_path and writes sft_path and/or dpo_path (either may
 * be NULL) atomically. */
int export_run(const char *in_path, const char *sft_path, const char *dpo_path, const ExportOptions *o,
               ExportStats *st, Err *e);

#endif
