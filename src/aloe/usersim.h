/* usersim: what the user simulator sees, shared by dialogues and bench.
 *
 * The simulator role-plays a persona; its conversation is the real one with
 * the roles swapped (its own messages are "assistant", the replies it gets
 * are "user"). Two forms, chosen by the prompt texts:
 *   - PROMPT_USER_FIRST_TURN non-empty (rubric): a system message with
 *     PROMPT_USER_SIMULATOR filled with the persona, then FIRST_TURN as the
 *     first user message;
 *   - PROMPT_USER_FIRST_TURN "" (paper): no system message; the filled
 *     PROMPT_USER_SIMULATOR is the first user message, as the reference run
 *     sends it (models without a system role take it the same way).
 * Every reply the simulator sees is followed by "\n" + PROMPT_USER_REPLY_SUFFIX
 * when that text is non-empty (the paper's "within three sentences" reminder).
 *
 * Role-played messages often carry stage directions ("*smiles*"); the paper
 * removes them before anyone else sees the message, and so do we
 * (usersim_strip_stage_directions), keeping the raw text in the records. */
#ifndef ALOE_ALOE_USERSIM_H
#define ALOE_ALOE_USERSIM_H

#include "aloe/prompts.h"
#include "llm/llm.h"

typedef struct UsersimView {
    LlmMessage *m; /* the request's messages; contents point into owned or the caller's strings */
    int n;
    char **owned;  /* strings made for this view */
    int n_owned;
} UsersimView;

/* The simulator's messages after `done` finished turns: users[i] is what it
 * said at turn i+1 (as the others saw it, stage directions removed) and
 * replies[i] the reply the conversation continued with. The view borrows
 * users/replies: keep them alive until usersim_view_free. */
void usersim_view(UsersimView *v, const Prompts *P, const char *profile, const char *personality,
                  const char *const *users, const char *const *replies, int done);
void usersim_view_free(UsersimView *v);

/* The message without stage directions: every *...* span on one line is
 * removed (the reference's rule; "**bold**" keeps its word, as each "**" is
 * an empty span), runs of white
 * space become one space, and the ends are trimmed. A message that is
 * nothing but stage directions keeps its words with the asterisks removed
 * (an empty turn would stall the conversation). Returns a new string. */
char *usersim_strip_stage_directions(const char *text);

#endif
